//! [`SafetensorsResolver`]: which tensor of a safetensors file a request names, as a window of the file; it
//! reads the file's header through the cache (on the blocking pool, once per mapping) and never decides how
//! to answer.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, StatusCode};
use tokio::task::JoinHandle;

use super::{DirResolver, Rejection, Resolution, Resolve, ResolvedFile, Resolving};
use crate::cache::Entry;
use crate::mmap::file::MmapFile;
use crate::{MmapCache, MmapError, Revalidate};

mod header;
#[cfg(test)]
mod tests;

#[cfg(feature = "fuzzing")]
pub(crate) use header::index_of_file;
use header::{Index, Malformed, header_len, parse};

static OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
static JSON: HeaderValue = HeaderValue::from_static("application/json");

const MALFORMED_ESCAPE: Rejection =
    Rejection::bad_request("malformed percent-encoding in tensor name");

/// Serves `.safetensors` files beneath a [`DirResolver`]'s root, and each tensor in them as a representation
/// of its own.
///
/// | URL path | answer |
/// |---|---|
/// | `/{path}.safetensors` | the whole file, exactly as the `DirResolver` serves it |
/// | `/{path}.safetensors/tensors/{name}` | the bytes of tensor `name`: `application/octet-stream`, with `X-Tensor-Dtype` (`F16`) and `X-Tensor-Shape` (`4096,11008`; empty for a scalar) |
/// | `/{path}.safetensors/header` | the file's header exactly as stored: the raw JSON bytes `8..8 + N` (`application/json`), names, dtypes, shapes, `data_offsets` and `__metadata__` as the file has them, with any padding spaces the writer added |
/// | anything else | whatever the `DirResolver` answers |
///
/// A tensor and the header are [windows](ResolvedFile::window) of the file: zero-copy slices of the same cached
/// mapping, each with its own `Content-Length` and strong `ETag` (the file's with the window appended: two
/// tensors never share one, and rewriting the file changes all of them), and every Range, precondition, HEAD
/// and multipart rule of the service in the window's coordinates (`bytes=0-1023` is the first KiB of the
/// tensor). The header is served raw rather than re-serialized: it is what `safetensors` readers parse, it
/// costs no JSON writer, and it is a window like the tensors, cached and validated the same way.
///
/// # Names
///
/// `{name}` is everything after `/tensors/`, percent-decoded once: `model.layers.0.mlp.up_proj.weight` is
/// written as it is; a slash in a name may be written as `/` or as `%2F` (both name the same tensor; `%2F`
/// keeps clients from collapsing `.` and `..` segments, so `%2E%2E` is needed for a name that has one). A
/// malformed escape is 400, and a name that is in no header (`__metadata__` included) is 404. The file part
/// is the path up to the first `.safetensors/` that `tensors/` or `header` follows, resolved by the
/// `DirResolver` (with its confinement, hidden-file and escaping rules), so a directory named `*.safetensors`
/// cannot hold entries named `tensors` or `header` that this resolver would serve.
///
/// # The header
///
/// The header is parsed once per mapping, on the blocking pool, and kept with the cache's entry for the
/// mapping: dropped with it, and parsed again only when the file changes (the new version gets a new entry).
/// A request for a cached file whose header is parsed makes no system call and parses nothing: a hash
/// lookup of the path, one of the name. The parse is the `safetensors` crate's (its checks of the offsets
/// against each other and against dtype x shape), with its 100 MB cap on the header; a file that fails it
/// (header length past the end of the file or over the cap, invalid UTF-8 or JSON, offsets overlapping, out
/// of order, outside the data or inconsistent with dtype x shape, data not ending at the end of the file) is
/// answered 500 with `malformed safetensors header` for each tensor and header request, logged once per
/// version of the file with the reason; the whole file is still served as a file.
///
/// The resolver pins the version of the file it read the header of ([`ResolvedFile::version`]): a file that
/// changes between the resolver's look and the answer gets a 503 with `Retry-After: 1`, never the new
/// file's bytes under the old header's offsets. Each tensor request looks the mapping up twice (the
/// resolver for the header, the service for the bytes), so [`CacheStats::hits`](crate::CacheStats) counts
/// two hits for it.
///
/// Give the service the resolver's cache ([`MmapServe::with_cache`](crate::MmapServe::with_cache)): with
/// another one, each mapping is made twice.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use mmap_serve::{DirResolver, MmapCache, MmapServe, SafetensorsResolver};
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let root = tempfile::tempdir()?;
/// # let json = br#"{"embed.weight":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}"#;
/// # let mut file = (json.len() as u64).to_le_bytes().to_vec();
/// # file.extend_from_slice(json); file.extend(0..12u8);
/// # std::fs::write(root.path().join("model.safetensors"), file)?;
/// let cache = Arc::new(MmapCache::default());
/// let tensors = SafetensorsResolver::new(DirResolver::new(root.path()), Arc::clone(&cache));
/// let serve = MmapServe::with_cache(tensors, cache);
///
/// let request = http::Request::get("/model.safetensors/tensors/embed.weight").body(())?;
/// let response = serve.clone().oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["content-length"], "12");
/// assert_eq!(response.headers()["x-tensor-dtype"], "F16");
/// assert_eq!(response.headers()["x-tensor-shape"], "2,3");
///
/// let request = http::Request::get("/model.safetensors/tensors/nope").body(())?;
/// assert_eq!(serve.oneshot(request).await?.status(), 404);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SafetensorsResolver {
    dir: DirResolver,
    cache: Arc<MmapCache>,
}

impl SafetensorsResolver {
    /// Serves the files `dir` resolves, and the tensors of its `.safetensors` files, reading headers through
    /// `cache` (give the service the same cache).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mmap_serve::{DirResolver, MmapCache, SafetensorsResolver};
    ///
    /// let cache = Arc::new(MmapCache::new(64));
    /// let models = SafetensorsResolver::new(DirResolver::new("/srv/models"), Arc::clone(&cache));
    /// assert!(Arc::ptr_eq(models.cache(), &cache));
    /// ```
    pub fn new(dir: DirResolver, cache: Arc<MmapCache>) -> Self {
        Self { dir, cache }
    }

    /// The directory resolver that names the files.
    pub fn dir(&self) -> &DirResolver {
        &self.dir
    }

    /// The cache the headers are read through.
    pub fn cache(&self) -> &Arc<MmapCache> {
        &self.cache
    }
}

impl Resolve for SafetensorsResolver {
    type Future = SafetensorsFuture;

    fn resolve(&self, head: &http::request::Parts) -> Resolving<SafetensorsFuture> {
        let path = head.uri.path();
        let Some((file_path, part)) = split(path) else {
            return Resolving::Ready(self.dir.resolve_path(path));
        };
        let part = match part {
            Ok(Part::Unnamable) => return Resolving::Ready(Resolution::NotFound),
            Ok(part) => part,
            Err(rejection) => return Resolving::Ready(Resolution::Reject(rejection)),
        };
        let file = match self.dir.resolve_path(file_path) {
            Resolution::File(file) => file,
            other => return Resolving::Ready(other),
        };
        let policy = policy_for(&file, &self.cache);
        let tag = file.confinement().map_or(0, |c| c.tag());
        // The hot path: a fresh mapping whose header is parsed, no system call and no parse.
        if let Some(entry) = self.cache.fresh_entry(&file.path, policy, tag)
            && let Some(parsed) = entry.attachment::<Parsed>()
        {
            return Resolving::Ready(answer(file, &part, entry.file(), parsed));
        }
        let cache = Arc::clone(&self.cache);
        let part = part.into_owned();
        let job = move || look_up(&cache, file, &part, policy);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Resolving::Pending(SafetensorsFuture {
                job: runtime.spawn_blocking(job),
            }),
            Err(_) => Resolving::Ready(job()),
        }
    }
}

/// The future of a [`SafetensorsResolver`] that must map a file or parse its header first: that work runs on
/// Tokio's blocking pool, and this waits for it.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct SafetensorsFuture {
    job: JoinHandle<Resolution>,
}

impl Future for SafetensorsFuture {
    type Output = Resolution;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resolution> {
        Poll::Ready(match ready!(Pin::new(&mut self.job).poll(cx)) {
            Ok(resolution) => resolution,
            Err(error) => {
                tracing::error!(%error, "mmap-serve: reading a safetensors header failed: answering 500");
                Resolution::Reject(Rejection::server_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error",
                ))
            }
        })
    }
}

/// What a request names inside a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    /// The header's JSON.
    Header,
    /// The tensor of this (decoded) name.
    Tensor(Cow<'a, str>),
    /// A tensor whose name decodes to bytes that are not UTF-8, which no header can hold: 404.
    Unnamable,
}

impl Part<'_> {
    fn into_owned(self) -> Part<'static> {
        match self {
            Self::Header => Part::Header,
            Self::Tensor(name) => Part::Tensor(Cow::Owned(name.into_owned())),
            Self::Unnamable => Part::Unnamable,
        }
    }
}

/// The file part of `uri_path` and what it names inside the file, when it names something inside a
/// `.safetensors` file: the path up to the first `.safetensors/` followed by `header` or `tensors/{name}`.
fn split(uri_path: &str) -> Option<(&str, Result<Part<'_>, Rejection>)> {
    const SUFFIX: &[u8] = b".safetensors/";
    // A scan for each `.`, then a comparison: `str::find` builds a two-way searcher per call, which cost
    // more than the rest of the split on short paths (measured: about 500 instructions a request).
    let bytes = uri_path.as_bytes();
    for (at, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'.') {
        if !bytes[at..].starts_with(SUFFIX) {
            continue;
        }
        // Both cuts are next to ASCII bytes of the suffix: char boundaries.
        let end = at + SUFFIX.len();
        let (file, rest) = (&uri_path[..end - 1], &uri_path[end..]);
        if rest == "header" {
            return Some((file, Ok(Part::Header)));
        }
        if let Some(name) = rest.strip_prefix("tensors/") {
            return Some((file, decode_name(name)));
        }
    }
    None
}

/// The tensor a raw name from the URL names, percent-decoded once; 400 for a malformed escape.
fn decode_name(raw: &str) -> Result<Part<'_>, Rejection> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| b == b'%') {
        let escape = bytes.get(i + at + 1..i + at + 3);
        if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
            return Err(MALFORMED_ESCAPE);
        }
        i += at + 3;
    }
    if i == 0 {
        // No escape (the usual name: dots, letters, digits, `/`): the name is the raw text, already UTF-8
        // (measured: the decoder's copy and re-check cost about 1,400 instructions a request).
        return Ok(Part::Tensor(Cow::Borrowed(raw)));
    }
    Ok(
        match percent_encoding::percent_decode_str(raw).decode_utf8() {
            Ok(name) => Part::Tensor(name),
            Err(_) => Part::Unnamable,
        },
    )
}

/// The revalidation policy the service uses for `file` (immutable content is never re-checked), so that the
/// resolver and the service agree on which mapping is fresh.
fn policy_for(file: &ResolvedFile, cache: &MmapCache) -> Revalidate {
    if file.immutable {
        Revalidate::Never
    } else {
        cache.revalidation()
    }
}

/// A mapping's header as this resolver attaches it to the cache's entry.
type Parsed = Result<Index, Unusable>;

/// Why a file's tensors cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    /// Not a well-formed safetensors file: 500 "malformed safetensors header".
    Malformed,
    /// Reading the header failed (a file read on demand, shortened under us): 500. Kept with its entry like
    /// a parse, but such a file is never cached, so the next request reads again.
    Unreadable,
}

/// The blocking half: the file's mapping from the cache (opened beneath the resolver's root, as the service
/// opens it), its header parsed and attached to the entry unless it is already, and the answer.
fn look_up(
    cache: &MmapCache,
    file: ResolvedFile,
    part: &Part<'_>,
    policy: Revalidate,
) -> Resolution {
    let opened = match file.confinement() {
        None => cache.entry(&file.path, policy),
        Some(root) => cache.entry_beneath(&file.path, policy, root.tag(), || root.open(&file.path)),
    };
    match opened {
        Ok(entry) => with_parsed(&entry, |parsed| answer(file, part, entry.file(), parsed)),
        Err(err) => unopenable(&err),
    }
}

/// Calls `f` with the entry's parsed header, read and parsed (and a malformed one logged) once per entry.
fn with_parsed<T>(entry: &Entry, f: impl FnOnce(&Parsed) -> T) -> T {
    match entry.attach_with(|| read_header(entry.file())) {
        Some(parsed) => f(parsed),
        // The entry's one slot holds another kind of attachment: parse for this request alone.
        None => f(&read_header(entry.file())),
    }
}

/// Why reading a header failed.
enum Failure {
    Read(MmapError),
    Malformed(Malformed),
}

/// Reads and parses `file`'s header (a blocking read for a file read on demand, slices of the mapping
/// otherwise); a failure is logged here, once per entry.
fn read_header(file: &MmapFile) -> Parsed {
    let len = file.size();
    let read = || -> Result<Index, Failure> {
        let prefix = file.range(0..len.min(8)).map_err(Failure::Read)?;
        let n = header_len(&prefix, len).map_err(Failure::Malformed)?;
        let json = file.range(8..8 + n).map_err(Failure::Read)?;
        parse(&json, len).map_err(Failure::Malformed)
    };
    read().map_err(|failure| match failure {
        Failure::Read(error) => {
            tracing::error!(path = %file.path().display(), %error, "mmap-serve: reading a safetensors header failed");
            Unusable::Unreadable
        }
        Failure::Malformed(reason) => {
            tracing::error!(path = %file.path().display(), %reason, "mmap-serve: malformed safetensors header");
            Unusable::Malformed
        }
    })
}

/// What `file` (as the resolver named it) answers for `part`, given the header `parsed` from `mapped`.
fn answer(file: ResolvedFile, part: &Part<'_>, mapped: &MmapFile, parsed: &Parsed) -> Resolution {
    let index = match parsed {
        Ok(index) => index,
        Err(Unusable::Malformed) => {
            return Resolution::Reject(Rejection::server_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "malformed safetensors header",
            ));
        }
        Err(Unusable::Unreadable) => {
            return Resolution::Reject(Rejection::server_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
            ));
        }
    };
    // Set in place rather than through the builder setters, each of which moves the whole value.
    let mut file = file;
    match part {
        Part::Header => {
            file.window = Some(index.header.clone());
            file.content_type = Some(JSON.clone());
        }
        Part::Tensor(name) => {
            let Some(tensor) = index.tensors.get(&**name) else {
                return Resolution::NotFound;
            };
            file.window = Some(tensor.window.clone());
            file.content_type = Some(OCTET_STREAM.clone());
            // The tensor's fields, made with the index; a resolver's own fields (none from DirResolver today)
            // would be kept before them.
            file.headers = Some(match file.headers.take() {
                None => Arc::clone(&tensor.fields),
                Some(mut own) => {
                    let map = Arc::make_mut(&mut own);
                    for (name, value) in tensor.fields.iter() {
                        map.append(name.clone(), value.clone());
                    }
                    own
                }
            });
        }
        Part::Unnamable => return Resolution::NotFound,
    }
    file.version = Some(*mapped.identity());
    // The file's name as a download would be the wrong name for a part of it.
    file.content_disposition = None;
    Resolution::File(file)
}

/// The answer for a file that could not be opened: not there (404, or the next service for the layer form),
/// refused (the error's 4xx), or a server error (logged here, once).
fn unopenable(err: &MmapError) -> Resolution {
    let status = err.status_code();
    if status == StatusCode::NOT_FOUND {
        return Resolution::NotFound;
    }
    if status.is_client_error() {
        return Resolution::reject(status, status.canonical_reason().unwrap_or("refused"));
    }
    tracing::error!(error = %err, source = ?std::error::Error::source(err), "mmap-serve: opening a safetensors file failed");
    let reason = if status == StatusCode::SERVICE_UNAVAILABLE {
        "service unavailable: out of resources, retry shortly"
    } else {
        "internal server error"
    };
    Resolution::Reject(Rejection::server_error(status, reason))
}
