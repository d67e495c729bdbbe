//! Helpers shared by the service tests: fixture trees whose bytes can be recomputed for any range, a driver
//! that sends one request and drains the body, and a small multipart/byteranges parser written from RFC 9110
//! §14.6 and RFC 2046 §5.1.1 without looking at the crate's framing code; `net` has the socket-level helpers and
//! `child` re-runs a test in a child process.
#![allow(dead_code, reason = "each test crate uses the helpers it needs")]

pub mod child;
pub mod net;

use std::fmt::Debug;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapServe};
use tower::{Service, ServiceExt};

/// The modification time every fixture file gets, and its IMF-fixdate rendering.
pub const MTIME_SECS: u64 = 1_700_000_000;
pub const MTIME_HTTP: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

/// What the secret file outside every served root holds; no response may contain it.
pub const SECRET: &[u8] = b"TOP SECRET: this file lies outside the served root";

/// Byte `i` of every fixture file.
pub fn byte_at(i: u64) -> u8 {
    (i % 251) as u8
}

/// The bytes of a fixture file in `range`.
pub fn pattern(range: Range<u64>) -> Vec<u8> {
    range.map(byte_at).collect()
}

/// A temporary directory holding `root/` (what is served) and `outside/secret.txt` (what must never be).
#[derive(Debug)]
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// An empty `root/` beside `outside/secret.txt`.
    pub fn new() -> Self {
        let fixture = Self {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        };
        std::fs::create_dir(fixture.root()).expect("create root/");
        std::fs::create_dir(fixture.outside()).expect("create outside/");
        std::fs::write(fixture.secret(), SECRET).expect("write the secret");
        fixture
    }

    /// The temporary directory itself, canonical.
    pub fn base(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).expect("canonical temp dir")
    }

    /// The served directory.
    pub fn root(&self) -> PathBuf {
        self.base().join("root")
    }

    /// A directory beside the root, never served.
    pub fn outside(&self) -> PathBuf {
        self.base().join("outside")
    }

    /// The file outside the root.
    pub fn secret(&self) -> PathBuf {
        self.outside().join("secret.txt")
    }

    /// Writes `root/{rel}` with `len` pattern bytes (parents created) and the fixed mtime; returns its path.
    pub fn file(&self, rel: &str, len: u64) -> PathBuf {
        self.write(rel, &pattern(0..len))
    }

    /// Writes `root/{rel}` with `bytes` (parents created) and the fixed mtime; returns its path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(rel);
        write_with_mtime(&path, bytes);
        path
    }

    /// Creates the directory `root/{rel}` and its parents.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(&path).expect("create a fixture directory");
        path
    }

    /// An `MmapServe` over the root with a plain `DirResolver`.
    pub fn serve(&self) -> MmapServe<DirResolver> {
        MmapServe::new(DirResolver::new(self.root()))
    }
}

/// Writes `path` (parents created) and sets its mtime to [`MTIME_SECS`].
pub fn write_with_mtime(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent directories");
    }
    std::fs::write(path, bytes).expect("write a fixture file");
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("reopen the fixture file")
        .set_modified(UNIX_EPOCH + Duration::from_secs(MTIME_SECS))
        .expect("set the fixture's mtime");
}

/// A request with `method`, `uri` and `headers`, and an empty body.
pub fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("a valid test request")
}

/// A GET of `uri` with `headers`.
pub fn get(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    request(Method::GET, uri, headers)
}

/// Sends `request` to `svc` once and drains the body.
///
/// Also checks what holds for every body: an exact size hint, when one is given, is the drained length.
pub async fn send<S, B, RB>(svc: S, request: Request<B>) -> (StatusCode, HeaderMap, Bytes)
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Debug,
    RB: Body,
    RB::Error: Debug,
{
    let response = svc.oneshot(request).await.expect("the service answers");
    let (parts, body) = response.into_parts();
    let hint = body.size_hint().exact();
    let bytes = body.collect().await.expect("the body drains").to_bytes();
    if let Some(hint) = hint {
        assert_eq!(hint, bytes.len() as u64, "exact size hint vs body length");
    }
    (parts.status, parts.headers, bytes)
}

/// Sends `request` to `svc` once and returns the head, the body's size hint before any frame was polled,
/// and the data frames one by one.
pub async fn send_frames<S, B, RB>(
    svc: S,
    request: Request<B>,
) -> (http::response::Parts, Option<u64>, Vec<Bytes>)
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Debug,
    RB: Body<Data = Bytes> + Unpin,
    RB::Error: Debug,
{
    let response = svc.oneshot(request).await.expect("the service answers");
    let (parts, mut body) = response.into_parts();
    let hint = body.size_hint().exact();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("a frame");
        frames.push(frame.into_data().expect("only data frames"));
    }
    (parts, hint, frames)
}

/// A header's value as text; panics when it is missing or not text.
pub fn text<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing {name:?} in {headers:?}"))
        .to_str()
        .expect("a text header")
}

/// The Content-Length header as a number.
pub fn content_length(headers: &HeaderMap) -> u64 {
    text(headers, "content-length")
        .parse()
        .expect("a numeric Content-Length")
}

/// Parses `bytes {first}-{last}/{complete}` into the half-open range and the complete length.
pub fn parse_content_range(value: &str) -> (Range<u64>, u64) {
    let spec = value
        .strip_prefix("bytes ")
        .unwrap_or_else(|| panic!("Content-Range {value:?} is not in bytes"));
    let (range, complete) = spec
        .split_once('/')
        .unwrap_or_else(|| panic!("Content-Range {value:?} has no complete length"));
    let (first, last) = range
        .split_once('-')
        .unwrap_or_else(|| panic!("Content-Range {value:?} is not first-last"));
    let number = |s: &str| -> u64 {
        assert!(
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
            "Content-Range {value:?}: {s:?} is not 1*DIGIT"
        );
        s.parse().expect("a u64")
    };
    let (first, last) = (number(first), number(last));
    assert!(first <= last, "Content-Range {value:?} is reversed");
    (first..last + 1, number(complete))
}

/// One part of a multipart/byteranges body.
#[derive(Debug)]
pub struct Part {
    /// From the part's Content-Range.
    pub range: Range<u64>,
    /// The complete length from the part's Content-Range.
    pub complete_length: u64,
    /// The part's Content-Type, if it has one.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: Bytes,
}

/// The boundary parameter of a `multipart/byteranges` Content-Type (quoted or not).
pub fn boundary_of(content_type: &str) -> String {
    let (media_type, params) = content_type
        .split_once(';')
        .unwrap_or_else(|| panic!("{content_type:?} has no parameters"));
    assert!(
        media_type
            .trim()
            .eq_ignore_ascii_case("multipart/byteranges"),
        "{content_type:?} is not multipart/byteranges"
    );
    let value = params
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim())
        .unwrap_or_else(|| panic!("{content_type:?} has no boundary"));
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    // RFC 2046 §5.1.1: 1 to 70 characters.
    assert!((1..=70).contains(&value.len()), "boundary {value:?}");
    value.to_owned()
}

/// Parses a multipart/byteranges body strictly: a preamble ending in CRLF (or none), then parts each made of
/// a delimiter line, header lines, a blank line and exactly as many bytes as its Content-Range says, then the
/// close delimiter, then an optional CRLF. Panics on any deviation.
pub fn parse_byteranges(body: &[u8], boundary: &str) -> Vec<Part> {
    let dash_boundary = format!("--{boundary}").into_bytes();
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    // The first dash-boundary is at the start or right after the preamble's CRLF.
    let mut at = if body.starts_with(&dash_boundary) {
        dash_boundary.len()
    } else {
        find(body, &delimiter).expect("the body holds a delimiter") + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if let Some(after_close) = rest.strip_prefix(b"--") {
            assert!(
                after_close.is_empty() || after_close == b"\r\n",
                "unexpected bytes after the close delimiter: {:?}",
                String::from_utf8_lossy(after_close)
            );
            assert!(!parts.is_empty(), "a multipart body without parts");
            return parts;
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .expect("a CRLF after the delimiter");
        at = body.len() - rest.len();
        let headers_end = find(rest, b"\r\n\r\n").expect("a part header block") + 2;
        let header_block = std::str::from_utf8(&rest[..headers_end]).expect("ASCII part headers");
        let (mut range, mut content_type) = (None, None);
        for line in header_block.split_terminator("\r\n") {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("malformed part header {line:?}"));
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-range") {
                assert!(range.is_none(), "two Content-Range lines");
                range = Some(parse_content_range(value));
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_owned());
            }
        }
        let (range, complete_length) = range.expect("every part has a Content-Range");
        at += headers_end + 2;
        let data_len = usize::try_from(range.end - range.start).expect("a part that fits memory");
        assert!(
            body.len() >= at + data_len,
            "the body ends inside part {range:?}"
        );
        let data = Bytes::copy_from_slice(&body[at..at + data_len]);
        at += data_len;
        assert!(
            body[at..].starts_with(&delimiter),
            "part {range:?} is not followed by a delimiter"
        );
        at += delimiter.len();
        parts.push(Part {
            range,
            complete_length,
            content_type,
            data,
        });
    }
}

/// Checks a multipart/byteranges response against the fixture file of `len` bytes served as `content_type`:
/// Content-Length is the body's length, every part lies inside the file, names its complete length and holds
/// the file's bytes. Returns the parts' ranges in the order sent.
pub fn verify_multipart(
    headers: &HeaderMap,
    body: &[u8],
    len: u64,
    content_type: &str,
) -> Vec<Range<u64>> {
    assert_eq!(content_length(headers), body.len() as u64, "Content-Length");
    assert!(
        headers.get(header::CONTENT_RANGE).is_none(),
        "a multipart response has no top-level Content-Range"
    );
    let boundary = boundary_of(text(headers, "content-type"));
    let parts = parse_byteranges(body, &boundary);
    for part in &parts {
        assert!(
            part.range.start < part.range.end && part.range.end <= len,
            "part {:?} outside a {len}-byte file",
            part.range
        );
        assert_eq!(
            part.complete_length, len,
            "complete length of {:?}",
            part.range
        );
        assert_eq!(part.content_type.as_deref(), Some(content_type));
        assert!(
            part.data[..] == pattern(part.range.clone())[..],
            "bytes of part {:?}",
            part.range
        );
    }
    parts.into_iter().map(|part| part.range).collect()
}

/// Checks a single-part 206 against the fixture file of `len` bytes and returns its range.
pub fn verify_single(headers: &HeaderMap, body: &[u8], len: u64) -> Range<u64> {
    let (range, complete) = parse_content_range(text(headers, "content-range"));
    assert_eq!(complete, len, "complete length");
    assert!(range.end <= len, "{range:?} outside a {len}-byte file");
    assert_eq!(content_length(headers), body.len() as u64, "Content-Length");
    assert_eq!(body.len() as u64, range.end - range.start, "body length");
    assert!(body == &pattern(range.clone())[..], "bytes of {range:?}");
    range
}

/// Checks a 200 carrying the whole fixture file of `len` bytes, without Content-Range.
pub fn verify_whole(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    len: u64,
    why: &str,
) {
    assert_eq!(status, StatusCode::OK, "{why}");
    assert!(headers.get("content-range").is_none(), "{why}");
    assert_eq!(content_length(headers), len, "{why}");
    assert!(body == pattern(0..len), "{why}: the whole file");
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
