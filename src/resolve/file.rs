//! What a resolver answers: a file to serve with the headers it chose, nothing, or a rejection; plain data,
//! no I/O and no HTTP decisions.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};
use http::{HeaderValue, StatusCode};

use super::{Confinement, ContentDigest};
#[cfg(doc)]
use super::{DirResolver, Resolve};
use crate::FileIdentity;
use crate::http::encoding::{Codings, ContentCoding};

/// The answer of a [`Resolve`]r.
#[derive(Debug)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per request and matched at once: boxing the file would cost every request an allocation"
)]
pub enum Resolution {
    /// Serve this file.
    File(ResolvedFile),
    /// Nothing here: `MmapServe` answers 404 Not Found, the layer form passes the request to its inner
    /// service.
    NotFound,
    /// The request is malformed for this resolver (an invalid CID, a `..` segment): answered with the
    /// rejection's status and reason, by the layer form too.
    Reject(Rejection),
}

impl Resolution {
    /// Serve `file`; the same as `Resolution::File(file)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{Resolution, ResolvedFile};
    ///
    /// let r = Resolution::file(ResolvedFile::new("/srv/blob.bin"));
    /// assert!(matches!(r, Resolution::File(_)));
    /// ```
    pub fn file(file: ResolvedFile) -> Self {
        Self::File(file)
    }

    /// Reject the request with `status` and a short `reason`; see [`Rejection::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http::StatusCode;
    /// use mmap_serve::Resolution;
    ///
    /// let r = Resolution::reject(StatusCode::BAD_REQUEST, "invalid CID");
    /// let Resolution::Reject(rejection) = r else { panic!("expected a rejection") };
    /// assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
    /// assert_eq!(rejection.reason(), "invalid CID");
    /// ```
    pub fn reject(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Reject(Rejection::new(status, reason))
    }
}

/// Why a resolver refused a request: a 4xx status and a short reason for the response body.
#[derive(Debug, Clone)]
pub struct Rejection {
    status: StatusCode,
    reason: Cow<'static, str>,
}

impl Rejection {
    /// A rejection answered with `status` and `reason`.
    ///
    /// A rejection is the client's fault, so `status` must be a 4xx code; any other status is replaced by
    /// 400 Bad Request (RFC 9110 §15.5.1) rather than let a resolver answer success or a server error
    /// through this path.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::StatusCode;
    /// use mmap_serve::Rejection;
    ///
    /// let gone = Rejection::new(StatusCode::GONE, "withdrawn");
    /// assert_eq!(gone.status(), StatusCode::GONE);
    /// // Not a client error: becomes 400.
    /// assert_eq!(Rejection::new(StatusCode::OK, "oops").status(), StatusCode::BAD_REQUEST);
    /// ```
    pub fn new(status: StatusCode, reason: impl Into<Cow<'static, str>>) -> Self {
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            reason: reason.into(),
        }
    }

    /// A 5xx answer with `reason`, for the crate's own resolvers when they must read a file to resolve a
    /// request and cannot (a malformed safetensors header, an I/O error): the client could not have avoided
    /// it, so it is no rejection of the request, but it travels the same way and the layer form answers it
    /// too. A `status` that is not 5xx becomes 500.
    pub(crate) fn server_error(status: StatusCode, reason: &'static str) -> Self {
        let status = if status.is_server_error() {
            status
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self {
            status,
            reason: Cow::Borrowed(reason),
        }
    }

    /// A 400 Bad Request rejection with a static reason, usable in `const` items.
    pub(crate) const fn bad_request(reason: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: Cow::Borrowed(reason),
        }
    }

    /// The status code to answer with: 4xx for every rejection made with [`new`](Self::new); the crate's
    /// [`SafetensorsResolver`](crate::SafetensorsResolver) also answers 5xx this way, for a file it cannot read
    /// (a malformed safetensors header is a 500).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The short, human-readable reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A file to serve, with the response headers its resolver chose.
///
/// Built with [`ResolvedFile::new`] and builder setters. The setters are named after the setting; because a
/// method name can't be both a setter and a getter, the getters of the three header settings carry a `get_`
/// prefix (as `std::process::Command` does).
///
/// # Examples
///
/// ```
/// use http::HeaderValue;
/// use mmap_serve::ResolvedFile;
///
/// let file = ResolvedFile::new("/srv/models/llama.safetensors")
///     .content_type(HeaderValue::from_static("application/octet-stream"))
///     .cache_control(HeaderValue::from_static("public, max-age=3600"))
///     .confined_to(std::path::Path::new("/srv/models"));
/// assert_eq!(file.cache_control.as_ref().unwrap(), "public, max-age=3600");
/// assert!(!file.immutable);
/// ```
#[derive(Debug, Clone)]
#[must_use = "its setters return the changed value; drop it and the setting is lost"]
pub struct ResolvedFile {
    /// The file to serve.
    pub path: PathBuf,
    /// The Content-Type to send; `None` sends `application/octet-stream`.
    pub content_type: Option<HeaderValue>,
    /// An ETag to send instead of the one derived from the file's identity (a CID, a content hash).
    pub etag: Option<HeaderValue>,
    /// A Cache-Control value to send with 200, 206 and 304 responses.
    pub cache_control: Option<HeaderValue>,
    /// A Content-Disposition value to send with 200 and 206 responses (RFC 6266): whether a browser shows the
    /// file or saves it, and under which name. See [`download_as`](Self::download_as).
    pub content_disposition: Option<HeaderValue>,
    /// Whether the content never changes: the cache then never revalidates the mapping.
    pub immutable: bool,
    /// The byte range of the file that is the whole representation, when it is not the whole file; see
    /// [`window`](Self::window).
    pub window: Option<Range<u64>>,
    /// The version of the file the resolver's answer was decided from; see [`version`](Self::version).
    pub version: Option<FileIdentity>,
    follow_symlinks: bool,
    confinement: Option<Confinement>,
    redirect_if_directory: bool,
    /// The precompressed sidecars `{path}.{ext}` the service may look for; see [`precompressed`](Self::precompressed).
    codings: Codings,
    /// Further fields for every response about the file; behind a pointer and absent unless a resolver adds
    /// one, so that a file without them costs the hot path nothing to make, move and drop (measured: an
    /// inline empty `HeaderMap` cost about 230 instructions per request). Shared, so that a resolver can hand
    /// out fields it made once (a tensor's dtype and shape) without building a map per request.
    pub(crate) headers: Option<Arc<HeaderMap>>,
    verify: Option<ContentDigest>,
    bytes: Option<Bytes>,
    if_missing: Option<Rejection>,
}

impl ResolvedFile {
    /// A file at `path` (absolute, or relative to the process's working directory), with no headers chosen.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::ResolvedFile;
    ///
    /// let file = ResolvedFile::new("data/train.bin");
    /// assert_eq!(file.path, std::path::Path::new("data/train.bin"));
    /// assert!(file.content_type.as_ref().is_none());
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            content_type: None,
            etag: None,
            cache_control: None,
            content_disposition: None,
            immutable: false,
            window: None,
            version: None,
            follow_symlinks: true,
            confinement: None,
            redirect_if_directory: false,
            codings: Codings::default(),
            headers: None,
            verify: None,
            bytes: None,
            if_missing: None,
        }
    }

    /// Sets the `Content-Type` of the response.
    ///
    /// Default: none, and the service falls back to `application/octet-stream`.
    pub fn content_type(mut self, value: HeaderValue) -> Self {
        self.content_type = Some(value);
        self
    }

    /// Sets the entity tag, a complete `ETag` field value such as `"v1"` or `W/"v1"` (RFC 9110 §8.8.3).
    ///
    /// Default: none, and the service derives a strong ETag from the file's identity (device, inode,
    /// length, modification time).
    pub fn etag(mut self, value: HeaderValue) -> Self {
        self.etag = Some(value);
        self
    }

    /// Sets the `Content-Disposition` of 200 and 206 responses, a complete field value (RFC 6266).
    ///
    /// Default: none (no `Content-Disposition` field: browsers show what they can).
    pub fn content_disposition(mut self, value: HeaderValue) -> Self {
        self.content_disposition = Some(value);
        self
    }

    /// Asks browsers to save the file as `name` rather than show it: `Content-Disposition: attachment` with
    /// the name in `filename` (an ASCII fallback, where each other character is `_`) and, for a name that is
    /// not plain ASCII, exactly in `filename*` (RFC 8187). Quotes, backslashes and line breaks in `name`
    /// are encoded, never sent as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::ResolvedFile;
    ///
    /// let file = ResolvedFile::new("/srv/m/7f3a.bin").download_as("modèle.safetensors");
    /// assert_eq!(
    ///     file.content_disposition.unwrap(),
    ///     "attachment; filename=\"mod_le.safetensors\"; filename*=UTF-8''mod%C3%A8le.safetensors"
    /// );
    /// ```
    pub fn download_as(self, name: &str) -> Self {
        use crate::http::disposition::{Disposition, content_disposition};
        self.content_disposition(content_disposition(Disposition::Attachment, name))
    }

    /// Names the file `name` while letting browsers show it (`Content-Disposition: inline` with the name,
    /// encoded as for [`download_as`](Self::download_as)): the name a user's "save as" proposes.
    pub fn inline_as(self, name: &str) -> Self {
        use crate::http::disposition::{Disposition, content_disposition};
        self.content_disposition(content_disposition(Disposition::Inline, name))
    }

    /// Adds a field to every response about the file (200, 206, 304, 412 and 416), after those already
    /// added; a name added twice is sent twice. Names the service sets itself are not replaced: the
    /// service's framing (`Content-Length`, `Content-Range`), validators (`ETag`, `Last-Modified`) and the
    /// setters above (`Content-Type`, `Cache-Control`, `Content-Disposition`) always win, so a resolver cannot
    /// make a response contradict its body.
    ///
    /// Default: no further fields (and nothing allocated).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{HeaderValue, header};
    /// use mmap_serve::ResolvedFile;
    ///
    /// let file = ResolvedFile::new("/srv/app.js")
    ///     .header(header::VARY, HeaderValue::from_static("Accept-Encoding"))
    ///     .header(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    /// assert_eq!(file.headers().unwrap()[header::VARY], "Accept-Encoding");
    /// ```
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        Arc::make_mut(self.headers.get_or_insert_default()).append(name, value);
        self
    }

    /// Lets the service answer with the sidecar `{path}.{ext}` encoded with `coding` (`app.js.gz` for gzip,
    /// see [`ContentCoding::extension`]) when the request's `Accept-Encoding` prefers it (RFC 9110 §12.5.3)
    /// and the sidecar exists; calls add up, and equally acceptable codings go in [`ContentCoding`]'s order.
    /// Nothing is compressed on the fly.
    ///
    /// The sidecar is then the selected representation: its own `Content-Length`, `ETag` and
    /// `Last-Modified`, `Content-Encoding: {coding}`, ranges and preconditions evaluated against its bytes;
    /// this file's `Content-Type`, `Cache-Control`, `Content-Disposition` and further fields. It is opened,
    /// mapped, cached and revalidated like any file, beneath the same root with the same symbolic-link rule
    /// when this file is [confined](Self::confined_to), and [immutable](Self::immutable) when this file is.
    /// A sidecar that is missing is remembered as missing for the cache's revalidation interval
    /// ([`Revalidate::Every`](crate::Revalidate::Every)'s, or the `fallback` of
    /// [`Revalidate::Watch`](crate::Revalidate::Watch): absences are not watched), so that a tree without
    /// sidecars costs one failed open per sidecar and interval, not one per request. An [`etag`](Self::etag)
    /// set here is not sent with a sidecar, which gets the tag derived from its own identity: the
    /// resolver's tag names this file's bytes, not the sidecar's, and a tag derived from it would claim the
    /// two match without anyone having checked.
    ///
    /// Every answer about a file with sidecars (200, 206, 304, 412, 416, with a sidecar or without) carries
    /// `Vary: Accept-Encoding`, which tells caches that it depends on that field (RFC 9110 §12.5.5); the
    /// service adds it after the resolver's own `Vary` fields, which are kept.
    ///
    /// A [window](Self::window) or a pinned [version](Self::version) names this file's own bytes, so a
    /// file with either is always served as itself: its sidecars are not looked for, and it has no `Vary`
    /// of the service's.
    ///
    /// Default: no sidecars (nothing looked for, no `Vary` of the service's).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::header;
    /// use mmap_serve::{ContentCoding, DirResolver, MmapServe, ResolvedFile};
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let root = tempfile::tempdir()?;
    /// # std::fs::write(root.path().join("app.js"), "let a = 1;\n")?;
    /// # std::fs::write(root.path().join("app.js.br"), [0x0b, 0x05, 0x80, 0x6c, 0x65, 0x74, 0x20, 0x61, 0x20, 0x3d, 0x20, 0x31, 0x3b, 0x0a, 0x03])?;
    /// # let path = root.path().join("app.js");
    /// let resolver = move |_: &http::request::Parts| {
    ///     let file = ResolvedFile::new(path.clone())
    ///         .precompressed(ContentCoding::Brotli)
    ///         .precompressed(ContentCoding::Gzip);
    ///     std::future::ready(mmap_serve::Resolution::file(file))
    /// };
    /// let request = http::Request::get("/app.js").header("accept-encoding", "gzip, br").body(())?;
    /// let response = MmapServe::new(resolver).oneshot(request).await?;
    /// // No app.js.gz: the Brotli sidecar, equally acceptable and first in ContentCoding's order anyway.
    /// assert_eq!(response.headers()[header::CONTENT_ENCODING], "br");
    /// assert_eq!(response.headers()[header::VARY], "accept-encoding");
    /// # Ok(()) }
    /// ```
    pub fn precompressed(self, coding: ContentCoding) -> Self {
        self.with_codings(Codings::default().with(coding))
    }

    /// [`precompressed`](Self::precompressed) for each of `codings` at once.
    #[inline]
    pub(crate) fn with_codings(mut self, codings: Codings) -> Self {
        self.codings = self.codings.union(codings);
        self
    }

    /// The codings whose sidecars the service may look for: none for a [window](Self::window), a pinned
    /// [version](Self::version) or a [verified](Self::verify) file, which all name the file's own bytes.
    pub(crate) fn codings(&self) -> Codings {
        if self.window.is_some() || self.version.is_some() || self.verify.is_some() {
            return Codings::default();
        }
        self.codings
    }

    /// The further fields added with [`header`](Self::header), if any.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_deref()
    }

    /// Sets the `Cache-Control` of the response.
    ///
    /// Default: none (no `Cache-Control` field).
    pub fn cache_control(mut self, value: HeaderValue) -> Self {
        self.cache_control = Some(value);
        self
    }

    /// Serves the bytes `range` of the file (half-open, in file offsets) as the whole representation: one
    /// tensor of a checkpoint, one member of an uncompressed archive.
    ///
    /// Everything the service does for a file it does for the window, in the window's coordinates: its own
    /// `Content-Length`; Range requests are relative to the window (`bytes=0-9` is its first ten bytes, and
    /// `Content-Range` gives the window's length, RFC 9110 §14.4); every precondition, HEAD and multipart.
    /// The bytes are zero-copy slices of the same cached mapping, watched for truncation and change as the
    /// file's are.
    ///
    /// The window has an entity-tag of its own (RFC 9110 §8.8.3): the file's (the one derived from its
    /// identity, or [`etag`](Self::etag)'s) with `-{start}-{end}` appended inside the quotes, so
    /// `"a0-1f2e"` becomes `"a0-1f2e-8-24"`. Two windows of one file never share one, and a changed file
    /// changes them all; a weak file tag gives weak window tags. `Last-Modified` is the file's.
    ///
    /// A window that does not lie inside the file as the cache maps it when the request is answered (the file
    /// was shortened since the resolver chose the window, or never was that long) is answered 500 Internal
    /// Server Error, logged: the resolver named bytes that are not there, which the client could not have
    /// avoided. (A resolver that chose the window from the file's content should also pin the
    /// [`version`](Self::version) it read, and then a changed file is a 503 to retry instead.)
    ///
    /// Default: none (the whole file is the representation).
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{MmapServe, Resolution, ResolvedFile};
    /// use tower::ServiceExt;
    /// # let d = tempfile::tempdir()?; let path = d.path().join("pack.bin");
    /// # std::fs::write(&path, (0..=255u8).collect::<Vec<_>>())?;
    /// // `/member` is bytes 16..48 of pack.bin.
    /// let serve = MmapServe::new(move |_: &http::request::Parts| {
    ///     std::future::ready(Resolution::file(ResolvedFile::new(&path).window(16..48)))
    /// });
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let request = http::Request::get("/member").header("range", "bytes=0-3").body(())?;
    /// let response = rt.block_on(serve.oneshot(request))?;
    /// assert_eq!(response.status(), 206);
    /// assert_eq!(response.headers()["content-range"], "bytes 0-3/32");
    /// assert!(response.headers()["etag"].to_str()?.ends_with("-16-48\""));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn window(mut self, range: Range<u64>) -> Self {
        self.window = Some(range);
        self
    }

    /// Serves the file only if the cache maps this very version of it (device, inode, length and times, as
    /// [`FileIdentity`] compares them): for a resolver whose answer depends on the file's content, such as a
    /// [window](Self::window) found in the file's own index. When the file changed between the resolver's look
    /// and the answer, the request is answered 503 Service Unavailable with `Retry-After: 1` (RFC 9110
    /// §15.6.4), never with the new file's bytes under the old decision; the retry resolves afresh.
    ///
    /// Default: none (any version the cache holds is served).
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{MmapFile, ResolvedFile};
    /// # let d = tempfile::tempdir()?; let path = d.path().join("m.bin"); std::fs::write(&path, [0u8; 64])?;
    /// let seen = *MmapFile::new(&path)?.identity();
    /// let file = ResolvedFile::new(&path).window(8..24).version(seen);
    /// assert_eq!(file.version, Some(seen));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn version(mut self, identity: FileIdentity) -> Self {
        self.version = Some(identity);
        self
    }

    /// When `path` turns out to be a directory, answers 301 Moved Permanently to the request's URL with a `/`
    /// appended (`Location: ./name/`, relative, so that it stays right under a path prefix a router strips),
    /// instead of 404: for resolvers that serve an index file for `name/`, as [`DirResolver`] does when it has
    /// an [index file](DirResolver::index_file).
    ///
    /// Default: `false`.
    pub fn redirect_if_directory(mut self, yes: bool) -> Self {
        self.redirect_if_directory = yes;
        self
    }

    pub(crate) fn redirects_directory(&self) -> bool {
        self.redirect_if_directory
    }

    /// Declares that the file's content never changes, so a cached mapping of it is never revalidated.
    ///
    /// Use it for content-addressed files only: the bytes under `path` must never change while served.
    ///
    /// Default: `false` (the cache revalidates under its policy).
    pub fn immutable(mut self, yes: bool) -> Self {
        self.immutable = yes;
        self
    }

    /// Requires that the file, once every symbolic link is followed, lies beneath `root`.
    ///
    /// The service enforces this when it opens the file, off the async executor; a target outside `root` is
    /// answered 404 Not Found, exactly like a missing one. `root` may be relative or itself a symbolic link:
    /// it is resolved again at each open.
    ///
    /// No check is separate from the open (it is one `openat2(2)` call on Linux 5.6 and later, otherwise a
    /// walk that opens one component at a time relative to the directory it holds and never lets the kernel
    /// follow a link): someone who can write beneath `root` and swaps a directory for a symbolic link while a
    /// request is being served cannot lead it outside.
    ///
    /// Default: not confined (the path is opened as given).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use mmap_serve::ResolvedFile;
    ///
    /// let file = ResolvedFile::new("/srv/www/index.html").confined_to(Path::new("/srv/www"));
    /// # let _ = file;
    /// ```
    pub fn confined_to(mut self, root: impl Into<Arc<Path>>) -> Self {
        self.confinement = Some(Confinement::new(root.into(), self.follow_symlinks));
        self
    }

    /// Whether symbolic links between the confinement root and the file may be followed.
    ///
    /// With `false`, any symbolic link below the root (the root itself may be one) makes the file answer
    /// 404 Not Found. Only meaningful for a file [confined](Self::confined_to) to a root; with `true`, the
    /// targets of links must still lie beneath the root.
    ///
    /// Default: `true`.
    pub fn follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        if let Some(confinement) = &mut self.confinement {
            confinement.follow_symlinks = yes;
        }
        self
    }

    /// Serves the file only if its content hashes to `digest`: the service hashes it once per cached mapping
    /// (on the blocking pool, before the first byte of any response about it, a `HEAD`, a range or a 304
    /// included) and keeps the verdict with the mapping, so a file is hashed again only when it changed and was
    /// mapped anew. Content that does not match is answered `500 Internal Server Error` with
    /// `Cache-Control: no-store` and never served; the mismatch is logged once per mapping.
    ///
    /// Concurrent first requests for one file do not each hash it: one hashes, the others wait for its
    /// verdict (each on a blocking thread).
    ///
    /// Default: not verified.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{ContentDigest, ResolvedFile};
    ///
    /// let file = ResolvedFile::new("/srv/blocks/b").verify(ContentDigest::sha2_256([0; 32]));
    /// assert_eq!(file.verification().map(ContentDigest::code), Some(0x12));
    /// ```
    pub fn verify(mut self, digest: ContentDigest) -> Self {
        self.verify = Some(digest);
        self
    }

    /// The digest the content must match, if the file is [verified](Self::verify).
    pub fn verification(&self) -> Option<&ContentDigest> {
        self.verify.as_ref()
    }

    /// Serves `content` as the representation instead of the file at `path`, which is then never opened
    /// (nor its confinement checked): for content a resolver knows without a store, such as an IPFS identity
    /// CID's. Ranges, preconditions and every header setting apply as to a file. Without an
    /// [ETag](Self::etag) of the resolver's, the response gets a strong one made from the content's BLAKE3
    /// hash (computed here); there is no `Last-Modified`.
    ///
    /// Default: none (the file at `path` is served).
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::ResolvedFile;
    ///
    /// let file = ResolvedFile::new("/dev/null").bytes(bytes::Bytes::from_static(b"hello"));
    /// assert!(file.etag.is_some());
    /// ```
    pub fn bytes(mut self, content: Bytes) -> Self {
        if self.etag.is_none() {
            self.etag = Some(content_etag(&content));
        }
        self.bytes = Some(content);
        self
    }

    /// The content to serve instead of the file, when the resolver gave one.
    pub(crate) fn memory(&self) -> Option<&Bytes> {
        self.bytes.as_ref()
    }

    /// Answers `rejection` when the file does not exist, instead of Not Found (which a layer passes on to its
    /// inner service): for a resolver that must say more than "not here", such as an IPFS gateway answering
    /// `Cache-Control: only-if-cached` with 412 Precondition Failed. Whether the file exists is found out on
    /// the blocking pool, as for any file not in the cache.
    ///
    /// Default: none (a missing file is Not Found).
    pub fn if_missing(mut self, rejection: Rejection) -> Self {
        self.if_missing = Some(rejection);
        self
    }

    /// What a missing file is answered with, when not Not Found.
    pub(crate) fn missing(&self) -> Option<&Rejection> {
        self.if_missing.as_ref()
    }

    /// The root the file must stay beneath, if it is confined; the service opens the file with
    /// [`Confinement::open`].
    pub(crate) fn confinement(&self) -> Option<&Confinement> {
        self.confinement.as_ref()
    }
}

/// A strong entity-tag for `content`: the first 128 bits of its BLAKE3 hash, in hex.
pub(crate) fn content_etag(content: &[u8]) -> HeaderValue {
    use multihash_codetable::{Code, MultihashDigest};
    let hash = Code::Blake3_256.digest(content);
    let hex: String = hash.digest()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    HeaderValue::try_from(format!("\"b3-{hex}\"")).expect("a quoted hex entity-tag")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_keeps_client_error_status() {
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::GONE,
            StatusCode::URI_TOO_LONG,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
        ] {
            assert_eq!(Rejection::new(status, "r").status(), status);
        }
    }

    #[test]
    fn rejection_with_non_client_error_status_becomes_bad_request() {
        for status in [
            StatusCode::CONTINUE,
            StatusCode::OK,
            StatusCode::MOVED_PERMANENTLY,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert_eq!(
                Rejection::new(status, "r").status(),
                StatusCode::BAD_REQUEST
            );
        }
    }

    #[test]
    fn rejection_reason_accepts_static_and_owned_strings() {
        assert_eq!(
            Rejection::new(StatusCode::BAD_REQUEST, "static").reason(),
            "static"
        );
        assert_eq!(
            Rejection::new(StatusCode::BAD_REQUEST, format!("owned {}", 1)).reason(),
            "owned 1"
        );
        assert_eq!(Rejection::bad_request("const").reason(), "const");
        assert_eq!(
            Rejection::bad_request("const").status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn resolved_file_defaults() {
        let file = ResolvedFile::new("/f");
        assert_eq!(file.path, Path::new("/f"));
        assert!(file.content_type.as_ref().is_none());
        assert!(file.etag.as_ref().is_none());
        assert!(file.cache_control.as_ref().is_none());
        assert!(!file.immutable);
        assert!(file.confinement().is_none());
    }

    #[test]
    fn resolved_file_setters_are_read_back() {
        let file = ResolvedFile::new("/r/f")
            .content_type(HeaderValue::from_static("text/plain"))
            .etag(HeaderValue::from_static("\"v1\""))
            .cache_control(HeaderValue::from_static("no-cache"))
            .immutable(true)
            .confined_to(Path::new("/r"));
        assert_eq!(
            file.content_type.as_ref().map(|v| v.as_bytes()),
            Some(&b"text/plain"[..])
        );
        assert_eq!(
            file.etag.as_ref().map(|v| v.as_bytes()),
            Some(&b"\"v1\""[..])
        );
        assert_eq!(
            file.cache_control.as_ref().map(|v| v.as_bytes()),
            Some(&b"no-cache"[..])
        );
        assert!(file.immutable);
        let confinement = file.confinement().expect("confined");
        assert_eq!(&*confinement.root, Path::new("/r"));
        assert!(confinement.follow_symlinks);
    }

    #[test]
    fn bytes_keep_a_resolvers_etag_or_make_one_from_the_content() {
        let content = Bytes::from_static(b"abc");
        let made = ResolvedFile::new("/f").bytes(content.clone());
        let again = ResolvedFile::new("/g").bytes(content.clone());
        assert_eq!(made.etag, again.etag, "the same content, the same tag");
        let other = ResolvedFile::new("/f").bytes(Bytes::from_static(b"abd"));
        assert_ne!(made.etag, other.etag);
        let tag = made.etag.expect("made").to_str().expect("ascii").to_owned();
        assert!(
            tag.starts_with("\"b3-") && tag.ends_with('"') && tag.len() == 37,
            "{tag}"
        );
        let kept = ResolvedFile::new("/f")
            .etag(HeaderValue::from_static("\"mine\""))
            .bytes(content);
        assert_eq!(kept.etag.as_ref().expect("kept"), "\"mine\"");
        assert_eq!(kept.memory().map(|b| &b[..]), Some(&b"abc"[..]));
    }

    #[test]
    fn verification_and_the_missing_answer_are_read_back() {
        let file = ResolvedFile::new("/f");
        assert!(
            file.verification().is_none() && file.missing().is_none() && file.memory().is_none()
        );
        let file = file
            .verify(ContentDigest::blake3([7; 32]))
            .if_missing(Rejection::new(StatusCode::PRECONDITION_FAILED, "not here"));
        assert_eq!(file.verification(), Some(&ContentDigest::blake3([7; 32])));
        assert_eq!(
            file.missing().map(Rejection::status),
            Some(StatusCode::PRECONDITION_FAILED)
        );
    }

    #[test]
    fn follow_symlinks_applies_whichever_order_it_is_set_in() {
        let before = ResolvedFile::new("/r/f")
            .follow_symlinks(false)
            .confined_to(Path::new("/r"));
        let after = ResolvedFile::new("/r/f")
            .confined_to(Path::new("/r"))
            .follow_symlinks(false);
        for file in [before, after] {
            assert!(!file.confinement().expect("confined").follow_symlinks);
        }
    }
}
