//! A directory tree: URL path segments become path components beneath a root, lexically; no file-system I/O
//! (symbolic links are the confinement's, checked when the service opens the file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderValue;

use super::names::{decode_segment, is_plain_name};
use super::{NeverPending, Resolution, Resolve, ResolvedFile, Resolving};
use crate::http::encoding::{Codings, ContentCoding};

/// Resolves URL paths to files beneath a root directory.
///
/// [`resolve_path`](Self::resolve_path) is purely lexical (no file-system I/O); every file it returns is
/// [confined](ResolvedFile::confined_to) to the root, so symbolic links are checked when the service opens
/// the file. Cloning is cheap: the configuration is shared.
///
/// # How a URL path maps to a file
///
/// The path is split on `/`, empty segments are skipped (`//a` is `/a`), and each segment is
/// percent-decoded exactly once, so `%2F` never becomes a separator and `%252e` names a file literally
/// called `%2e`. Then, for each decoded segment:
///
/// | segment | answer |
/// |---|---|
/// | malformed escape (`%zz`, `%4`), not UTF-8 (also overlong forms such as `%C0%AE`) | 400 Bad Request |
/// | `.` or `..`, raw or encoded | 400 Bad Request |
/// | contains `/` or `\` (only possible encoded, or raw `\`), NUL or another control character | 400 Bad Request |
/// | contains `:` | 400 Bad Request |
/// | starts with `.` (hidden, including `...`), unless [`allow_hidden`](Self::allow_hidden) | Not Found |
/// | anything else, including non-ASCII names | a path component |
///
/// Bad requests take precedence over hidden components wherever they appear. A name made only of three or
/// more dots (`...`) is an ordinary name on Unix, so it is not rejected, only treated as hidden.
///
/// `:` is refused everywhere, on every platform, though Unix allows it in names: it is the drive
/// (`C:`) and alternate-data-stream (`file::$DATA`) syntax of Windows, and refusing it everywhere keeps a
/// tree's behaviour the same wherever it is served. Serve such names with a custom [`Resolve`]r.
///
/// A path that ends in `/`, or has no segments at all (`/`), names a directory: it resolves to the
/// [index file](Self::index_file) in it if one is configured, else Not Found. With an index file, a path
/// without the `/` that turns out to name a directory is redirected to the one with it (301). A path that does not start with
/// `/` (the `*` of `OPTIONS *`) is Not Found.
///
/// The file gets a `Content-Type` from its extension: one of [`content_type_for`](Self::content_type_for) if
/// set, else `mime_guess`'s (`application/octet-stream` when unknown), with `; charset=utf-8` on text types
/// (see [`charset`](Self::charset)); the configured `Cache-Control`; and `Content-Disposition: attachment`
/// with its name when its extension or URL path says it is a [download](Self::download_extension).
///
/// With [precompressed](Self::precompressed_gzip) variants on, `/app.js` may be answered with the sidecar
/// `app.js.br`, `app.js.zst`, `app.js.gz` or `app.js.zz` beside it, as the request's `Accept-Encoding`
/// prefers (see [`ResolvedFile::precompressed`]); the sidecar's name is the file's with a suffix, so it
/// obeys the same hidden-name and symbolic-link rules.
///
/// # Examples
///
/// ```
/// use mmap_serve::{DirResolver, Resolution};
///
/// let site = DirResolver::new("/srv/www").index_file("index.html");
///
/// let Resolution::File(file) = site.resolve_path("/docs/") else { panic!("expected a file") };
/// assert_eq!(file.path, std::path::Path::new("/srv/www/docs/index.html"));
/// assert_eq!(file.content_type.as_ref().unwrap(), "text/html; charset=utf-8");
///
/// assert!(matches!(site.resolve_path("/.git/config"), Resolution::NotFound));
/// let Resolution::Reject(bad) = site.resolve_path("/%2e%2e/etc/passwd") else { panic!("expected a rejection") };
/// assert_eq!(bad.status(), http::StatusCode::BAD_REQUEST);
/// ```
#[derive(Debug, Clone)]
#[must_use = "its setters return the changed value; drop it and the setting is lost"]
pub struct DirResolver {
    config: Arc<DirConfig>,
}

/// The shared settings of a [`DirResolver`].
#[derive(Debug, Clone)]
struct DirConfig {
    root: Arc<Path>,
    allow_hidden: bool,
    index_file: Option<Box<str>>,
    cache_control: Option<HeaderValue>,
    follow_symlinks: bool,
    /// The charset parameter added to text types (None: none added).
    charset: Option<Box<str>>,
    /// The user's types, by lowercase extension; looked at before `mime_guess`.
    types: Vec<(Box<str>, HeaderValue)>,
    /// Lowercase extensions served as downloads.
    download_extensions: Vec<Box<str>>,
    /// URL path prefixes (as received, before decoding) served as downloads.
    download_prefixes: Vec<Box<str>>,
    /// The precompressed sidecars looked for beside every file.
    codings: Codings,
}

impl DirResolver {
    /// Serves the files beneath `root` (absolute, or relative to the working directory when a file is
    /// opened).
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{DirResolver, Resolution};
    ///
    /// let Resolution::File(file) = DirResolver::new("data").resolve_path("/a/b.bin") else { panic!() };
    /// assert_eq!(file.path, std::path::Path::new("data/a/b.bin"));
    /// ```
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            config: Arc::new(DirConfig {
                root: Arc::from(root.into()),
                allow_hidden: false,
                index_file: None,
                cache_control: None,
                follow_symlinks: true,
                charset: Some("utf-8".into()),
                types: Vec::new(),
                download_extensions: Vec::new(),
                download_prefixes: Vec::new(),
                codings: Codings::default(),
            }),
        }
    }

    /// Whether path components starting with `.` (`.git`, `.env`, `.well-known`) may be served.
    ///
    /// When not allowed they answer Not Found rather than 400, so as not to confirm that they exist.
    ///
    /// Default: `false`.
    pub fn allow_hidden(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).allow_hidden = yes;
        self
    }

    /// The file served for a URL path naming a directory (`/` or `/docs/`), e.g. `index.html`.
    ///
    /// `name` is one file name, not a path: a name that is empty, `.` or `..`, or contains `/`, `\`, `:` or
    /// a control character, is never used (directory requests stay Not Found). It may start with `.`.
    ///
    /// Default: none, so a URL path ending in `/` is Not Found.
    pub fn index_file(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).index_file = Some(name.into().into_boxed_str());
        self
    }

    /// The `Cache-Control` of every file served.
    ///
    /// Default: none (no `Cache-Control` field).
    pub fn cache_control(mut self, value: HeaderValue) -> Self {
        Arc::make_mut(&mut self.config).cache_control = Some(value);
        self
    }

    /// Whether symbolic links beneath the root are followed; their targets must lie beneath the root
    /// either way. With `false`, a link anywhere below the root answers Not Found (the root itself may be a
    /// link).
    ///
    /// Default: `true`.
    pub fn follow_symlinks(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).follow_symlinks = yes;
        self
    }

    /// The charset parameter added to text types (`text/*` and `application/javascript`): browsers render a
    /// text file without one in a legacy encoding (windows-1252), not UTF-8. `None` adds none. JSON gets none
    /// whatever this says: RFC 8259 §11 defines no charset parameter for it (JSON is UTF-8).
    ///
    /// Default: `Some("utf-8")`, as Go's `FileServer` and static-web-server do.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{DirResolver, Resolution};
    ///
    /// let Resolution::File(f) = DirResolver::new("/srv").resolve_path("/notes.txt") else { panic!() };
    /// assert_eq!(f.content_type.unwrap(), "text/plain; charset=utf-8");
    /// let latin = DirResolver::new("/srv").charset(Some("iso-8859-1"));
    /// let Resolution::File(f) = latin.resolve_path("/notes.txt") else { panic!() };
    /// assert_eq!(f.content_type.unwrap(), "text/plain; charset=iso-8859-1");
    /// let Resolution::File(f) = DirResolver::new("/srv").charset(None).resolve_path("/a.css") else { panic!() };
    /// assert_eq!(f.content_type.unwrap(), "text/css");
    /// ```
    ///
    /// # Panics
    ///
    /// When `charset` is not a token (RFC 9110 §5.6.2): letters, digits and `!#$%&'*+-.^_`|~` only.
    pub fn charset(mut self, charset: Option<&str>) -> Self {
        if let Some(name) = charset {
            assert!(
                !name.is_empty() && name.bytes().all(is_tchar),
                "charset {name:?} is not a token"
            );
        }
        Arc::make_mut(&mut self.config).charset = charset.map(Into::into);
        self
    }

    /// The `Content-Type` of files with the extension `ext` (compared without regard to case, given without
    /// the dot), instead of the guess; the charset rule does not touch it. Calls add up.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderValue;
    /// use mmap_serve::{DirResolver, Resolution};
    ///
    /// let models = DirResolver::new("/srv")
    ///     .content_type_for("safetensors", HeaderValue::from_static("application/x-safetensors"))
    ///     .content_type_for("gguf", HeaderValue::from_static("application/x-gguf"));
    /// let Resolution::File(f) = models.resolve_path("/llama.GGUF") else { panic!() };
    /// assert_eq!(f.content_type.unwrap(), "application/x-gguf");
    /// ```
    pub fn content_type_for(mut self, ext: &str, content_type: HeaderValue) -> Self {
        let ext = ext
            .trim_start_matches('.')
            .to_ascii_lowercase()
            .into_boxed_str();
        let types = &mut Arc::make_mut(&mut self.config).types;
        types.retain(|(known, _)| *known != ext);
        types.push((ext, content_type));
        self
    }

    /// Serves files with the extension `ext` (compared without regard to case, without the dot) as
    /// downloads: `Content-Disposition: attachment` with the file's name (see [`ResolvedFile::download_as`]).
    /// Calls add up.
    ///
    /// Default: none; every file is shown inline where the browser can.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{DirResolver, Resolution};
    ///
    /// let site = DirResolver::new("/srv").download_extension("safetensors");
    /// let Resolution::File(f) = site.resolve_path("/m/llama%20v2.safetensors") else { panic!() };
    /// assert_eq!(f.content_disposition.unwrap(), "attachment; filename=\"llama v2.safetensors\"");
    /// let Resolution::File(f) = site.resolve_path("/m/README.md") else { panic!() };
    /// assert!(f.content_disposition.is_none());
    /// ```
    pub fn download_extension(mut self, ext: &str) -> Self {
        let ext = ext
            .trim_start_matches('.')
            .to_ascii_lowercase()
            .into_boxed_str();
        Arc::make_mut(&mut self.config)
            .download_extensions
            .push(ext);
        self
    }

    /// Serves every file whose URL path starts with `prefix` (as the request spells it, e.g. `/downloads/`)
    /// as a download, like [`download_extension`](Self::download_extension). Calls add up.
    ///
    /// Default: none.
    pub fn download_path_prefix(mut self, prefix: &str) -> Self {
        Arc::make_mut(&mut self.config)
            .download_prefixes
            .push(prefix.into());
        self
    }

    /// Serves `{name}.gz` (gzip) in place of a file `name` to requests that prefer gzip, when it exists.
    ///
    /// Each of the four `precompressed_` settings adds a coding; with several, a request gets the one it
    /// gives the highest q-value, equals going in the order `br`, `zstd`, `gzip`, `deflate`, and a sidecar
    /// that does not exist gives way to the next, then to the file itself. Every answer about a file then
    /// carries `Vary: Accept-Encoding`, sidecar or not. Sidecars are made by the deployer (`gzip -k`,
    /// `brotli -k`, `zstd -k`): nothing is compressed on the fly. See [`ResolvedFile::precompressed`] for
    /// what a sidecar's response carries.
    ///
    /// Default: off (no sidecar is looked for, and files pay nothing for the feature).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::header;
    /// use mmap_serve::{DirResolver, MmapServe};
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let root = tempfile::tempdir()?;
    /// # std::fs::write(root.path().join("app.js"), "console.log('hello, world');\n".repeat(40))?;
    /// # std::fs::write(root.path().join("app.js.gz"), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
    /// let serve = MmapServe::new(DirResolver::new(root.path()).precompressed_gzip().precompressed_br());
    /// let request = http::Request::get("/app.js").header("accept-encoding", "gzip, br;q=0.9").body(())?;
    /// let response = serve.clone().oneshot(request).await?;
    /// assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    /// assert_eq!(response.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    /// assert_eq!(response.headers()[header::VARY], "accept-encoding");
    ///
    /// // No Accept-Encoding: the file itself.
    /// let response = serve.oneshot(http::Request::get("/app.js").body(())?).await?;
    /// assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
    /// assert_eq!(response.headers()[header::VARY], "accept-encoding");
    /// # Ok(()) }
    /// ```
    pub fn precompressed_gzip(self) -> Self {
        self.precompressed(ContentCoding::Gzip)
    }

    /// Serves `{name}.br` (Brotli) in place of a file `name` to requests that prefer `br`, as
    /// [`precompressed_gzip`](Self::precompressed_gzip) does for gzip.
    ///
    /// Default: off.
    pub fn precompressed_br(self) -> Self {
        self.precompressed(ContentCoding::Brotli)
    }

    /// Serves `{name}.zst` (Zstandard) in place of a file `name` to requests that prefer `zstd`, as
    /// [`precompressed_gzip`](Self::precompressed_gzip) does for gzip.
    ///
    /// Default: off.
    pub fn precompressed_zstd(self) -> Self {
        self.precompressed(ContentCoding::Zstd)
    }

    /// Serves `{name}.zz` (the zlib format of the `deflate` coding, RFC 9110 §8.4.1.2) in place of a file
    /// `name` to requests that prefer `deflate`, as [`precompressed_gzip`](Self::precompressed_gzip) does for
    /// gzip. The `.zz` name is tower-http's, so trees made for its `precompressed_deflate` work unchanged.
    ///
    /// Default: off.
    pub fn precompressed_deflate(self) -> Self {
        self.precompressed(ContentCoding::Deflate)
    }

    fn precompressed(mut self, coding: ContentCoding) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.codings = config.codings.with(coding);
        self
    }

    /// Resolves a raw (still percent-encoded) URL path, without I/O; [`Resolve::resolve`] calls it with the
    /// request's path.
    ///
    /// See the [type docs](Self) for the rules.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{DirResolver, Resolution};
    ///
    /// let site = DirResolver::new("/srv/www");
    /// let Resolution::File(file) = site.resolve_path("/caf%C3%A9/menu.pdf") else { panic!() };
    /// assert_eq!(file.path, std::path::Path::new("/srv/www/café/menu.pdf"));
    /// assert_eq!(file.content_type.as_ref().unwrap(), "application/pdf");
    /// ```
    pub fn resolve_path(&self, uri_path: &str) -> Resolution {
        let config = &*self.config;
        let Some(below_root) = uri_path.strip_prefix('/') else {
            return Resolution::NotFound;
        };
        let mut path = PathBuf::with_capacity(config.root.as_os_str().len() + uri_path.len() + 16);
        path.push(&config.root);
        let mut hidden = false;
        let mut has_segment = false;
        for raw in below_root.split('/').filter(|s| !s.is_empty()) {
            let segment = match decode_segment(raw) {
                Ok(segment) => segment,
                Err(rejection) => return Resolution::Reject(rejection),
            };
            hidden |= segment.starts_with('.');
            has_segment = true;
            path.push(&*segment);
        }
        if hidden && !config.allow_hidden {
            return Resolution::NotFound;
        }
        let index = config
            .index_file
            .as_deref()
            .filter(|name| is_plain_name(name));
        let names_directory = !has_segment || below_root.ends_with('/');
        if names_directory {
            match index {
                Some(index) => path.push(index),
                None => return Resolution::NotFound,
            }
        }
        // `/docs` for a directory with an index: redirected to `/docs/`, whose relative links then work.
        let file = self
            .file(path, uri_path)
            .redirect_if_directory(index.is_some() && !names_directory);
        Resolution::File(file)
    }

    /// The file at `path` (already beneath the root, named by `uri_path`) with this resolver's headers and
    /// confinement.
    fn file(&self, path: PathBuf, uri_path: &str) -> ResolvedFile {
        let config = &*self.config;
        let ext = extension_of(&path);
        let content_type = self.content_type(ext);
        let download = (!config.download_extensions.is_empty()
            && ext.is_some_and(|ext| {
                config
                    .download_extensions
                    .iter()
                    .any(|d| d.as_bytes().eq_ignore_ascii_case(ext))
            }))
            || config
                .download_prefixes
                .iter()
                .any(|prefix| uri_path.starts_with(&**prefix));
        let name = download.then(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let mut file = ResolvedFile::new(path)
            .content_type(content_type)
            .confined_to(Arc::clone(&config.root))
            .follow_symlinks(config.follow_symlinks);
        if let Some(cache_control) = &config.cache_control {
            file = file.cache_control(cache_control.clone());
        }
        if let Some(name) = name {
            file = file.download_as(&name);
        }
        if !config.codings.is_empty() {
            file = file.with_codings(config.codings);
        }
        file
    }

    /// The Content-Type of a file with extension `ext`: the user's, else the guess with the charset rule.
    fn content_type(&self, ext: Option<&[u8]>) -> HeaderValue {
        let config = &*self.config;
        if let Some(ext) = ext
            && let Some((_, value)) = config
                .types
                .iter()
                .find(|(known, _)| known.as_bytes().eq_ignore_ascii_case(ext))
        {
            return value.clone();
        }
        guessed_type(ext, config.charset.as_deref())
    }
}

impl Resolve for DirResolver {
    type Future = NeverPending;

    fn resolve(&self, head: &http::request::Parts) -> Resolving<NeverPending> {
        Resolving::Ready(self.resolve_path(head.uri.path()))
    }
}

/// The media type for `path`'s extension (mime_guess), `application/octet-stream` when unknown.
///
/// mime_guess searches its table case-insensitively on every call, which profiles as the costliest step of a
/// cached 4 KiB Range request; requests mostly repeat one extension, so each thread remembers its last answer.
/// The type `mime_guess` knows for `ext` (`application/octet-stream` when none), with `; charset={charset}` on
/// text types. Each thread remembers its last answer: requests for one kind of file in a row (the common
/// case) pay for neither the guess nor the value's allocation.
fn guessed_type(ext: Option<&[u8]>, charset: Option<&str>) -> HeaderValue {
    use std::cell::RefCell;
    const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
    /// The last extension and charset asked for, and the answer.
    struct Guess {
        ext: Box<[u8]>,
        charset: Option<Box<str>>,
        value: HeaderValue,
    }
    thread_local! {
        static LAST: RefCell<Option<Guess>> = const { RefCell::new(None) };
    }
    let Some(ext) = ext else {
        return OCTET_STREAM;
    };
    let remembered = LAST.with_borrow(|last| match last {
        Some(guess) if *guess.ext == *ext && guess.charset.as_deref() == charset => {
            Some(guess.value.clone())
        }
        _ => None,
    });
    remembered.unwrap_or_else(|| {
        // An extension that is not UTF-8 is no type mime_guess knows.
        let guess = std::str::from_utf8(ext)
            .ok()
            .and_then(|ext| mime_guess::from_ext(ext).first_raw());
        let value = match guess {
            None => OCTET_STREAM,
            Some(essence) => match charset.filter(|_| takes_charset(essence)) {
                Some(charset) => HeaderValue::from_maybe_shared(bytes::Bytes::from(format!(
                    "{essence}; charset={charset}"
                )))
                .unwrap_or(HeaderValue::from_static(essence)),
                None => HeaderValue::from_static(essence),
            },
        };
        LAST.with_borrow_mut(|last| {
            *last = Some(Guess {
                ext: ext.into(),
                charset: charset.map(Into::into),
                value: value.clone(),
            });
        });
        value
    })
}

/// Whether a type gets a charset parameter: text types and JavaScript under its legacy name, whose bytes a
/// browser decodes by it (JSON is UTF-8 by definition and has no such parameter).
fn takes_charset(essence: &str) -> bool {
    essence.starts_with("text/") || essence == "application/javascript"
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `path.extension()` as bytes, read off the last name (`Path::extension` parses every component first).
fn extension_of(path: &Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    let name = path.as_os_str().as_bytes().rsplit(|&b| b == b'/').next()?;
    if name == b".." {
        return None;
    }
    // A leading dot starts a hidden name, not an extension.
    let dot = name
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&dot| dot > 0)?;
    name.get(dot + 1..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use proptest::prelude::*;
    use std::path::Component;
    use std::time::{Duration, Instant};

    const ROOT: &str = "/srv/www";

    #[derive(Debug)]
    enum Expect {
        BadRequest,
        NotFound,
        /// A file at this path below the root.
        File(&'static str),
    }
    use Expect::{BadRequest, File, NotFound};

    /// Asserts that `path` is the root followed by plain names only.
    fn assert_lexically_under_root(path: &Path, root: &Path) {
        let below = path
            .strip_prefix(root)
            .unwrap_or_else(|_| panic!("{} escapes {}", path.display(), root.display()));
        for component in below.components() {
            let Component::Normal(name) = component else {
                panic!("{} has a non-plain component {component:?}", path.display());
            };
            let name = name.to_str().expect("resolved names are UTF-8");
            assert!(name != "." && name != "..", "{}", path.display());
            assert!(!name.contains(['/', '\\', '\0', ':']), "{}", path.display());
        }
    }

    fn check(resolver: &DirResolver, uri_path: &str, expect: &Expect) {
        let got = resolver.resolve_path(uri_path);
        match (expect, &got) {
            (BadRequest, Resolution::Reject(r)) => {
                assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri_path:?}");
                assert!(!r.reason().is_empty());
            }
            (NotFound, Resolution::NotFound) => {}
            (File(rel), Resolution::File(file)) => {
                assert_lexically_under_root(&file.path, Path::new(ROOT));
                assert_eq!(file.path, Path::new(ROOT).join(rel), "{uri_path:?}");
                let confinement = file.confinement().expect("dir files are confined");
                assert_eq!(&*confinement.root, Path::new(ROOT));
            }
            _ => panic!("{uri_path:?}: expected {expect:?}, got {got:?}"),
        }
    }

    #[test]
    fn hostile_paths_are_rejected_hidden_or_kept_under_root() {
        let resolver = DirResolver::new(ROOT);
        let cases: &[(&str, Expect)] = &[
            // Dot segments, raw and encoded in every case mix.
            ("/../etc/passwd", BadRequest),
            ("/%2e%2e/etc/passwd", BadRequest),
            ("/%2E%2E/x", BadRequest),
            ("/.%2e/x", BadRequest),
            ("/%2e./x", BadRequest),
            ("/a/../../x", BadRequest),
            ("/a/./b", BadRequest),
            ("/.", BadRequest),
            ("/..", BadRequest),
            ("/%2e", BadRequest),
            ("/a/%2e%2e", BadRequest),
            ("/a/..", BadRequest),
            // Encoded separators never split a segment.
            ("/..%2fetc", BadRequest),
            ("/%2e%2e%2fetc%2fpasswd", BadRequest),
            ("/a%2f..%2f..%2fetc", BadRequest),
            ("/%2fetc/passwd", BadRequest),
            ("/%2F", BadRequest),
            ("/a%2fb", BadRequest),
            // Backslashes, raw and encoded.
            ("/a\\..\\b", BadRequest),
            ("/%5c..%5cx", BadRequest),
            ("/%5C", BadRequest),
            ("/..\\", BadRequest),
            // NUL and other control characters.
            ("/x%00.txt", BadRequest),
            ("/%00", BadRequest),
            ("/a%0ab", BadRequest),
            ("/a%0d%0aSet-Cookie", BadRequest),
            ("/%7f", BadRequest),
            ("/%c2%85", BadRequest), // U+0085, a C1 control
            ("/x/..%00/", BadRequest),
            // Invalid UTF-8, overlong dots and slashes included.
            ("/%c0%ae%c0%ae/x", BadRequest),
            ("/%e0%80%ae/x", BadRequest),
            ("/%c0%af", BadRequest),
            ("/%ff", BadRequest),
            ("/%ed%a0%80", BadRequest), // a UTF-16 surrogate
            ("/%c3", BadRequest),
            // Malformed escapes.
            ("/%zz", BadRequest),
            ("/%4", BadRequest),
            ("/%", BadRequest),
            ("/a%", BadRequest),
            ("/%%2e%2e", BadRequest),
            ("/%g0", BadRequest),
            ("/%2", BadRequest),
            // Drive letters and alternate data streams.
            ("/C:/Windows", BadRequest),
            ("/c:", BadRequest),
            ("/a/C:", BadRequest),
            ("/file.txt::$DATA", BadRequest),
            ("/%3a", BadRequest),
            ("/C%3A/Windows", BadRequest),
            // Hidden components: not found, whatever their position.
            ("/.git/config", NotFound),
            ("/.env", NotFound),
            ("/a/.hidden/b", NotFound),
            ("/%2egit/config", NotFound),
            ("/....//x", NotFound),
            ("/.../x", NotFound),
            ("/...", NotFound),
            ("/..hidden", NotFound),
            ("/.well-known/security.txt", NotFound),
            // A bad request anywhere wins over a hidden component.
            ("/.git/../x", BadRequest),
            // Directories without an index file.
            ("/", NotFound),
            ("//", NotFound),
            ("/a/b/", NotFound),
            ("/a//", NotFound),
            // Not an origin-form path.
            ("", NotFound),
            ("*", NotFound),
            ("etc/passwd", NotFound),
            // Double encoding decodes once: literal `%2e%2e` and `%2f` names.
            ("/%252e%252e/x", File("%2e%2e/x")),
            ("/%252f", File("%2f")),
            ("/%25", File("%")),
            // Empty segments are skipped.
            ("//etc/passwd", File("etc/passwd")),
            ("/a//b", File("a/b")),
            ("///a", File("a")),
            // Ordinary and unusual but harmless names.
            ("/index.html", File("index.html")),
            ("/a.b.c", File("a.b.c")),
            ("/a..b", File("a..b")),
            ("/a.", File("a.")),
            ("/~user", File("~user")),
            ("/+%20x", File("+ x")),
            ("/a;b=c", File("a;b=c")),
            ("/caf%C3%A9.txt", File("café.txt")),
            ("/café.txt", File("café.txt")),
            ("/日本語/ファイル.bin", File("日本語/ファイル.bin")),
            ("/%E2%88%95etc", File("∕etc")), // U+2215 division slash is a plain character
            ("/%EF%BC%8Fetc", File("／etc")), // U+FF0F fullwidth solidus, likewise
        ];
        assert!(cases.len() >= 30);
        for (uri_path, expect) in cases {
            check(&resolver, uri_path, expect);
        }
    }

    #[test]
    fn allow_hidden_serves_dot_names_but_still_rejects_dot_segments() {
        let resolver = DirResolver::new(ROOT).allow_hidden(true);
        let cases: &[(&str, Expect)] = &[
            (
                "/.well-known/security.txt",
                File(".well-known/security.txt"),
            ),
            ("/.env", File(".env")),
            ("/.../x", File(".../x")),
            ("/....//x", File("..../x")),
            ("/%2egit", File(".git")),
            ("/..", BadRequest),
            ("/%2e%2e/x", BadRequest),
            ("/.", BadRequest),
        ];
        for (uri_path, expect) in cases {
            check(&resolver, uri_path, expect);
        }
    }

    #[test]
    fn index_file_serves_directory_paths() {
        let resolver = DirResolver::new(ROOT).index_file("index.html");
        let cases: &[(&str, Expect)] = &[
            ("/", File("index.html")),
            ("//", File("index.html")),
            ("/docs/", File("docs/index.html")),
            ("/docs//", File("docs/index.html")),
            ("/docs", File("docs")),
            ("/.git/", NotFound),
            ("/%2e%2e/", BadRequest),
        ];
        for (uri_path, expect) in cases {
            check(&resolver, uri_path, expect);
        }
        let Resolution::File(file) = resolver.resolve_path("/") else {
            panic!("index resolves");
        };
        assert_eq!(
            file.content_type.as_ref().expect("typed"),
            "text/html; charset=utf-8"
        );
        // Only a path without the slash may turn out to be a directory to redirect, and only with an index.
        let redirects = |resolver: &DirResolver, uri_path| match resolver.resolve_path(uri_path) {
            Resolution::File(file) => file.redirects_directory(),
            other => panic!("{uri_path}: {other:?}"),
        };
        assert!(redirects(&resolver, "/docs"));
        assert!(!redirects(&resolver, "/docs/"));
        assert!(!redirects(&DirResolver::new(ROOT), "/docs"));
    }

    #[test]
    fn unusable_index_file_names_leave_directories_not_found() {
        for name in [
            "",
            ".",
            "..",
            "../secret",
            "a/b",
            "a\\b",
            "C:",
            "x\0",
            "x\n",
        ] {
            let resolver = DirResolver::new(ROOT).index_file(name);
            check(&resolver, "/", &NotFound);
            check(&resolver, "/docs/", &NotFound);
        }
        let hidden_index = DirResolver::new(ROOT).index_file(".index");
        check(&hidden_index, "/", &File(".index"));
    }

    #[test]
    fn extension_of_agrees_with_path_extension() {
        for name in [
            "/r/a.bin",
            "/r/a",
            "/r/.hidden",
            "/r/.hidden.txt",
            "/r/a.",
            "/r/...",
            "/r/..",
            "/r/a.b.c",
            "/r/dir.d/file",
            "/r/dir.d/file.x",
            "r",
            "r.txt",
            "/r/é.pdf",
            "/r/a..b",
        ] {
            let path = Path::new(name);
            assert_eq!(
                extension_of(path),
                path.extension().map(std::os::unix::ffi::OsStrExt::as_bytes),
                "{name}"
            );
        }
    }

    #[test]
    fn text_types_carry_the_charset_and_json_and_binaries_do_not() {
        let content_type = |resolver: &DirResolver, uri_path: &str| {
            let Resolution::File(file) = resolver.resolve_path(uri_path) else {
                panic!("{uri_path} resolves");
            };
            file.content_type
                .expect("typed")
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        let utf8 = DirResolver::new(ROOT);
        for (uri_path, expected) in [
            ("/a.txt", "text/plain; charset=utf-8"),
            ("/a.md", "text/markdown; charset=utf-8"),
            ("/a.csv", "text/csv; charset=utf-8"),
            ("/a.json", "application/json"),
            ("/a.bin", "application/octet-stream"),
            ("/a.png", "image/png"),
        ] {
            assert_eq!(content_type(&utf8, uri_path), expected, "{uri_path}");
        }
        let js = content_type(&utf8, "/app.js");
        assert!(js.ends_with("javascript; charset=utf-8"), "{js}");
        // The remembered answer of one resolver is not another's.
        let none = DirResolver::new(ROOT).charset(None);
        assert_eq!(content_type(&none, "/a.txt"), "text/plain");
        assert_eq!(content_type(&utf8, "/a.txt"), "text/plain; charset=utf-8");
    }

    #[test]
    #[should_panic(expected = "is not a token")]
    fn a_charset_that_is_not_a_token_is_refused() {
        let _ = DirResolver::new(ROOT).charset(Some("utf-8\r\nX: y"));
    }

    #[test]
    fn the_users_types_come_first_whatever_the_case() {
        let resolver = DirResolver::new(ROOT)
            .content_type_for(".TXT", HeaderValue::from_static("text/x-mine"))
            .content_type_for("txt", HeaderValue::from_static("text/x-yours"));
        let Resolution::File(file) = resolver.resolve_path("/a.Txt") else {
            panic!("resolves");
        };
        assert_eq!(
            file.content_type.expect("typed"),
            "text/x-yours",
            "the last call wins"
        );
    }

    #[test]
    fn downloads_by_extension_or_path_prefix_name_the_file() {
        let resolver = DirResolver::new(ROOT)
            .download_extension("SAFETENSORS")
            .download_path_prefix("/dl/");
        let disposition = |uri_path: &str| {
            let Resolution::File(file) = resolver.resolve_path(uri_path) else {
                panic!("{uri_path} resolves");
            };
            file.content_disposition
                .map(|v| v.to_str().expect("ascii").to_owned())
        };
        assert_eq!(
            disposition("/m/w.safetensors").as_deref(),
            Some("attachment; filename=\"w.safetensors\"")
        );
        assert_eq!(
            disposition("/dl/caf%C3%A9.txt").as_deref(),
            Some("attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%C3%A9.txt")
        );
        assert_eq!(disposition("/m/readme.txt"), None);
        assert_eq!(disposition("/dlx/a.txt"), None);
    }

    #[test]
    fn content_type_is_guessed_from_the_extension() {
        let resolver = DirResolver::new(ROOT);
        let cases = [
            ("/a.html", "text/html; charset=utf-8"),
            ("/a.css", "text/css; charset=utf-8"),
            ("/a.json", "application/json"),
            ("/a.PNG", "image/png"),
            ("/v.mp4", "video/mp4"),
            ("/w.tensor", "application/octet-stream"),
            ("/noext", "application/octet-stream"),
            ("/a.tar.gz", "application/gzip"),
        ];
        for (uri_path, expected) in cases {
            let Resolution::File(file) = resolver.resolve_path(uri_path) else {
                panic!("{uri_path} resolves");
            };
            assert_eq!(
                file.content_type.as_ref().expect("typed"),
                expected,
                "{uri_path}"
            );
        }
    }

    #[test]
    fn settings_are_carried_to_the_file() {
        let resolver = DirResolver::new(ROOT)
            .cache_control(HeaderValue::from_static("public, max-age=60"))
            .follow_symlinks(false);
        let Resolution::File(file) = resolver.resolve_path("/a.bin") else {
            panic!("resolves");
        };
        assert_eq!(
            file.cache_control.as_ref().expect("set"),
            "public, max-age=60"
        );
        assert!(file.etag.as_ref().is_none());
        assert!(!file.immutable);
        let confinement = file.confinement().expect("confined");
        assert!(!confinement.follow_symlinks);

        let Resolution::File(default) = DirResolver::new(ROOT).resolve_path("/a.bin") else {
            panic!("resolves");
        };
        assert!(default.cache_control.as_ref().is_none());
        assert!(default.confinement().expect("confined").follow_symlinks);
    }

    #[test]
    fn clones_share_configuration_and_builders_do_not_affect_clones() {
        let base = DirResolver::new(ROOT);
        let clone = base.clone();
        assert!(Arc::ptr_eq(&base.config, &clone.config));
        let hidden = clone.allow_hidden(true);
        check(&base, "/.env", &NotFound);
        check(&hidden, "/.env", &File(".env"));
    }

    #[test]
    fn relative_root_stays_relative() {
        let resolver = DirResolver::new("public");
        let Resolution::File(file) = resolver.resolve_path("/a/b.txt") else {
            panic!("resolves");
        };
        assert_eq!(file.path, Path::new("public/a/b.txt"));
    }

    #[test]
    fn resolve_uses_the_request_path_without_query() {
        let resolver = DirResolver::new(ROOT);
        let (head, ()) = http::Request::get("/a/b.txt?x=../../etc")
            .body(())
            .expect("valid request")
            .into_parts();
        let Resolving::Ready(Resolution::File(file)) = resolver.resolve(&head) else {
            panic!("resolves");
        };
        assert_eq!(file.path, Path::new("/srv/www/a/b.txt"));
    }

    #[test]
    fn very_long_paths_take_bounded_time() {
        let resolver = DirResolver::new(ROOT);
        let cases = [
            ("/a".repeat(10_000), "many plain segments"),
            ("/..".repeat(10_000), "many dot segments"),
            ("/%2e%2e".repeat(10_000), "many encoded dot segments"),
            (
                format!("/{}", "%41".repeat(30_000)),
                "one long encoded segment",
            ),
            ("/".repeat(100_000), "only slashes"),
            (format!("/{}", ".".repeat(100_000)), "one long dotted name"),
        ];
        for (uri_path, what) in &cases {
            let start = Instant::now();
            let got = resolver.resolve_path(uri_path);
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{what} took too long"
            );
            match got {
                Resolution::File(file) => assert_lexically_under_root(&file.path, Path::new(ROOT)),
                Resolution::NotFound | Resolution::Reject(_) => {}
            }
        }
        let Resolution::File(file) = resolver.resolve_path(&cases[0].0) else {
            panic!("plain segments resolve");
        };
        assert_eq!(file.path.components().count(), 3 + 10_000);
    }

    /// Pieces that, concatenated, make paths full of traps.
    fn hostile_piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "/",
            "/",
            "/",
            ".",
            "..",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%5c",
            "\\",
            "%00",
            "%",
            "%2",
            "%zz",
            "%25",
            "%c0",
            "%ae",
            "%c0%ae",
            "%e0%80%ae",
            ":",
            "%3a",
            "a",
            "b.txt",
            "é",
            "%C3%A9",
            "~",
            " ",
            "%0a",
            "%7f",
            ".git",
            "C:",
        ])
    }

    proptest! {
        #[test]
        fn any_resolved_file_is_lexically_beneath_the_root(
            pieces in prop::collection::vec(hostile_piece(), 0..24),
            allow_hidden in any::<bool>(),
            index in any::<bool>(),
        ) {
            let mut resolver = DirResolver::new(ROOT).allow_hidden(allow_hidden);
            if index {
                resolver = resolver.index_file("index.html");
            }
            let uri_path = pieces.concat();
            if let Resolution::File(file) = resolver.resolve_path(&uri_path) {
                assert_lexically_under_root(&file.path, Path::new(ROOT));
                if !allow_hidden {
                    let below = file.path.strip_prefix(ROOT).expect("under root");
                    for name in below.iter() {
                        prop_assert!(!name.to_string_lossy().starts_with('.'), "{uri_path:?}");
                    }
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_escape(uri_path in "/\\PC{0,64}", allow_hidden in any::<bool>()) {
            let resolver = DirResolver::new(ROOT).allow_hidden(allow_hidden);
            if let Resolution::File(file) = resolver.resolve_path(&uri_path) {
                assert_lexically_under_root(&file.path, Path::new(ROOT));
            }
        }
    }
}
