//! Renders the answer to a GET or HEAD of a file: the decisions of RFC 9110 §13 and §14 made by the pure
//! modules beside this one, turned into a `Response` — no I/O.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::{MmapBody, Segment, Watch};
use super::multipart::{Boundary, Multipart, multipart_length};
use super::preconditions::{Precondition, Validators, evaluate_preconditions};
use super::range::{RangePlan, content_range, plan_ranges, unsatisfied_content_range};
use crate::mmap::file::{Content, MmapFile};

/// What is being served: the whole representation and its metadata, borrowed (each field value is cloned
/// once, into the response).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Representation<'a> {
    /// Every byte of the file (a zero-copy view of the mapping, or the file to read them from).
    pub(crate) content: &'a Content,
    pub(crate) content_type: &'a HeaderValue,
    pub(crate) etag: &'a HeaderValue,
    /// `etag` is one this crate made: a well-formed strong entity-tag, so preconditions need not parse it.
    pub(crate) etag_is_ours: bool,
    pub(crate) last_modified: &'a HeaderValue,
    /// `last_modified` as a time, whole seconds.
    pub(crate) last_modified_time: SystemTime,
    /// From when `last_modified` is a strong validator, for If-Range (None: never).
    pub(crate) strong_date_from: Option<SystemTime>,
    /// `content.len()` as a header value, formatted once per file.
    pub(crate) content_length: &'a HeaderValue,
    pub(crate) cache_control: Option<&'a HeaderValue>,
    /// The mapped file the body must watch while it sends its bytes (None for bytes on the heap).
    pub(crate) watched: Option<&'a Arc<MmapFile>>,
    /// Whether the watch re-checks the file's identity before the last frame (false for immutable files).
    pub(crate) recheck_identity: bool,
}

impl Representation<'_> {
    fn watch(&self) -> Option<Watch> {
        self.watched.map(|file| Watch {
            file: Arc::clone(file),
            recheck_identity: self.recheck_identity,
        })
    }
}

/// Per-service settings that shape responses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// More range-specs than this in one Range header get the whole representation (200).
    pub(crate) max_ranges: usize,
    /// Largest body frame.
    pub(crate) chunk_size: usize,
    /// Refuse HTTP/1.1 requests without a Host field (400).
    pub(crate) require_host: bool,
}

const ACCEPT_RANGES_BYTES: HeaderValue = HeaderValue::from_static("bytes");
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// The content type sent when a resolver names none.
pub(crate) static DEFAULT_CONTENT_TYPE: HeaderValue = OCTET_STREAM;

/// The response to a GET or HEAD (the caller answers other methods with [`method_not_allowed_or_implemented`]).
pub(crate) fn respond(
    method: &Method,
    headers: &HeaderMap,
    rep: &Representation<'_>,
    limits: Limits,
) -> Response<MmapBody> {
    let validators = Validators {
        etag: rep.etag.as_bytes(),
        etag_is_ours: rep.etag_is_ours,
        last_modified: Some(rep.last_modified_time),
        last_modified_value: Some(rep.last_modified.as_bytes()),
        strong_date_from: rep.strong_date_from,
    };
    let range_applies = match evaluate_preconditions(method, headers, &validators) {
        Precondition::Failed => return empty(StatusCode::PRECONDITION_FAILED),
        Precondition::NotModified => return not_modified(rep),
        Precondition::Proceed { range_applies } => range_applies,
    };
    let len = rep.content.len();
    // RFC 9110 §14.2: GET is the only method range handling is defined for; HEAD gets the 200 headers.
    // Range is a singleton field: two field lines combine into an invalid ranges-specifier, which is ignored.
    let mut lines = headers.get_all(header::RANGE).iter();
    let range = match (lines.next(), lines.next()) {
        (Some(only), None) if method == Method::GET && range_applies => Some(only),
        _ => None,
    };
    let plan = range.map_or(RangePlan::Full, |value| {
        plan_ranges(value.as_bytes(), len, limits.max_ranges)
    });
    let mut response = match plan {
        RangePlan::Full => full(rep, limits),
        RangePlan::Single(part) => single(rep, part, limits),
        RangePlan::Multi(parts) => multi(rep, &parts, limits),
        RangePlan::Unsatisfiable => unsatisfiable(len),
    };
    if method == Method::HEAD {
        *response.body_mut() = MmapBody::empty();
    }
    response
}

fn full(rep: &Representation<'_>, limits: Limits) -> Response<MmapBody> {
    let mut response = sized(body(rep, 0..rep.content.len(), limits));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, rep.content_type.clone());
    h.insert(header::CONTENT_LENGTH, rep.content_length.clone());
    representation_headers(h, rep);
    response
}

/// RFC 9110 §14.4 and §15.3.7: one part, with Content-Range.
fn single(
    rep: &Representation<'_>,
    part: std::ops::Range<u64>,
    limits: Limits,
) -> Response<MmapBody> {
    let len = rep.content.len();
    let mut response = sized(body(rep, part.clone(), limits));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, rep.content_type.clone());
    h.insert(header::CONTENT_LENGTH, decimal(part.end - part.start));
    h.insert(header::CONTENT_RANGE, content_range(&part, len));
    representation_headers(h, rep);
    response
}

/// RFC 9110 §14.6 multipart/byteranges — unless it would be larger than the whole representation, in which
/// case the 200 is both smaller and correct (§14.2 lets a server ignore Range).
fn multi(
    rep: &Representation<'_>,
    parts: &[std::ops::Range<u64>],
    limits: Limits,
) -> Response<MmapBody> {
    let len = rep.content.len();
    let boundary = Boundary::new();
    let ct = rep.content_type.as_bytes();
    if multipart_length(parts, len, ct, boundary.as_str().len()) > len {
        return full(rep, limits);
    }
    let layout = Multipart::new(parts, len, ct, boundary);
    let content_type = layout.content_type();
    let content_length = layout.content_length_value();
    let body = MmapBody::multipart(layout, rep.content.clone(), limits.chunk_size);
    let mut response = sized(body.watched(rep.watch()));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, content_length);
    representation_headers(h, rep);
    response
}

/// The body sending `range` of the representation, watched as the representation says.
fn body(rep: &Representation<'_>, range: std::ops::Range<u64>, limits: Limits) -> MmapBody {
    // plan_ranges keeps parts inside 0..len; anything else would be a bug here, answered with no bytes.
    let segment = Segment::of(rep.content, range).unwrap_or(Segment::Memory(Bytes::new()));
    MmapBody::single(segment, limits.chunk_size).watched(rep.watch())
}

/// RFC 9110 §15.5.17: 416 with the current length.
fn unsatisfiable(len: u64) -> Response<MmapBody> {
    let mut response = empty(StatusCode::RANGE_NOT_SATISFIABLE);
    let h = response.headers_mut();
    h.insert(header::CONTENT_RANGE, unsatisfied_content_range(len));
    h.insert(header::ACCEPT_RANGES, ACCEPT_RANGES_BYTES);
    response
}

/// RFC 9110 §15.4.5: 304 carries the fields a 200 would have that guide cache updates (ETag, Cache-Control;
/// hyper adds Date), and no content. Other representation metadata SHOULD NOT be sent: not even
/// Last-Modified, which helps only a response without an ETag, and every response here has one.
fn not_modified(rep: &Representation<'_>) -> Response<MmapBody> {
    let mut response = empty(StatusCode::NOT_MODIFIED);
    let h = response.headers_mut();
    h.insert(header::ETAG, rep.etag.clone());
    if let Some(cc) = rep.cache_control {
        h.insert(header::CACHE_CONTROL, cc.clone());
    }
    response
}

fn representation_headers(h: &mut HeaderMap, rep: &Representation<'_>) {
    h.insert(header::ACCEPT_RANGES, ACCEPT_RANGES_BYTES);
    h.insert(header::ETAG, rep.etag.clone());
    h.insert(header::LAST_MODIFIED, rep.last_modified.clone());
    if let Some(cc) = rep.cache_control {
        h.insert(header::CACHE_CONTROL, cc.clone());
    }
}

/// A response whose header map has room for the fields this module sets, so that it allocates once.
///
/// Six fields (seven for a 206 with Cache-Control, which grows the map once): the smallest table http's
/// `HeaderMap` makes for more has 12 slots, about 1.2 KiB, which glibc serves from its slow path rather than
/// its per-thread cache (measured: about 500 instructions per request more, malloc and free together).
fn sized(body: MmapBody) -> Response<MmapBody> {
    let mut response = Response::new(body);
    *response.headers_mut() = HeaderMap::with_capacity(6);
    response
}

/// A response with a status and no content (Content-Length: 0 where the status allows one).
pub(crate) fn empty(status: StatusCode) -> Response<MmapBody> {
    let mut response = sized(MmapBody::empty());
    *response.status_mut() = status;
    if status != StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    response
}

/// `n` in decimal as a header value, in one allocation (`HeaderValue::from(u64)` makes two).
fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n))
        .expect("decimal digits are a valid field value")
}

/// A short plain-text explanation with `status`.
pub(crate) fn text(status: StatusCode, reason: &str) -> Response<MmapBody> {
    let body = Bytes::from(format!("{reason}\n"));
    let mut response = sized(MmapBody::slice(body.clone(), 0));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, TEXT_PLAIN);
    h.insert(header::CONTENT_LENGTH, decimal(body.len() as u64));
    response
}

/// `response` as the answer to `method`: RFC 9110 §9.3.2 forbids content in any response to HEAD, error
/// responses included (HTTP/2 servers such as hyper's send whatever the body yields).
pub(crate) fn without_content_for_head(
    method: &Method,
    mut response: Response<MmapBody>,
) -> Response<MmapBody> {
    if method == Method::HEAD {
        *response.body_mut() = MmapBody::empty();
    }
    response
}

/// 301 Moved Permanently from `…/name` (a directory) to `…/name/` (RFC 9110 §15.4.2), query kept; None when the
/// path has no last name to add the `/` to (it ends in `/` already). `Location` is the relative `./name/`: it
/// resolves against the client's URL, so it stays right when a router stripped a prefix from the path this
/// service sees (`./` keeps a name with a `:` from reading as a scheme). Bytes a URI reference may not hold
/// (non-ASCII, spaces, `"{}` and the like, which the `http` crate lets through) are percent-encoded.
pub(crate) fn to_directory(uri: &http::Uri) -> Option<Response<MmapBody>> {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    // Not pchar (RFC 3986 §3.3), `%` aside: the escapes the client sent stay as they are.
    const NOT_PCHAR: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'<')
        .add(b'>')
        .add(b'[')
        .add(b'\\')
        .add(b']')
        .add(b'^')
        .add(b'`')
        .add(b'{')
        .add(b'|')
        .add(b'}');
    let name = uri
        .path()
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())?;
    let mut location = format!("./{}/", utf8_percent_encode(name, NOT_PCHAR));
    if let Some(query) = uri.query() {
        location.push('?');
        location.extend(utf8_percent_encode(query, NOT_PCHAR));
    }
    let value = HeaderValue::from_maybe_shared(Bytes::from(location)).ok()?;
    let mut response = text(
        StatusCode::MOVED_PERMANENTLY,
        "moved to the directory's URL with a /",
    );
    response.headers_mut().insert(header::LOCATION, value);
    Some(response)
}

/// The answer to a method other than GET and HEAD: 405 for a method this server knows (RFC 9110 §15.5.6),
/// 501 for one it does not implement at all (§9.1, §15.6.2).
pub(crate) fn method_not_allowed_or_implemented(method: &Method) -> Response<MmapBody> {
    if super::target::is_known_method(method) {
        method_not_allowed()
    } else {
        text(StatusCode::NOT_IMPLEMENTED, "method not implemented")
    }
}

/// RFC 9110 §15.5.6: 405 names the methods the resource supports.
fn method_not_allowed() -> Response<MmapBody> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const LIMITS: Limits = Limits {
        max_ranges: 1024,
        chunk_size: 1 << 20,
        require_host: false,
    };

    static CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/x-test");
    static ETAG: HeaderValue = HeaderValue::from_static("\"tag\"");
    static LAST_MODIFIED: HeaderValue = HeaderValue::from_static("Tue, 14 Nov 2023 22:13:20 GMT");
    static CACHE_CONTROL: HeaderValue = HeaderValue::from_static("max-age=60");

    fn rep<'a>(data: &'a Content, length: &'a HeaderValue) -> Representation<'a> {
        Representation {
            content: data,
            content_type: &CONTENT_TYPE,
            etag: &ETAG,
            etag_is_ours: true,
            last_modified: &LAST_MODIFIED,
            last_modified_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            strong_date_from: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_001)),
            content_length: length,
            cache_control: Some(&CACHE_CONTROL),
            watched: None,
            recheck_identity: true,
        }
    }

    fn get(method: Method, headers: &[(&'static str, &'static str)]) -> (Method, HeaderMap) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_static(v));
        }
        (method, map)
    }

    fn run(
        data: &Content,
        method: Method,
        headers: &[(&'static str, &'static str)],
    ) -> Response<MmapBody> {
        let (m, h) = get(method, headers);
        let length = HeaderValue::from(data.len());
        respond(&m, &h, &rep(data, &length), LIMITS)
    }

    fn header<'r>(r: &'r Response<MmapBody>, name: &str) -> Option<&'r str> {
        r.headers().get(name).map(|v| v.to_str().expect("ascii"))
    }

    fn data() -> Content {
        Content::Memory(Bytes::from(
            (0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn a_plain_get_is_200_with_every_validator() {
        let d = data();
        let r = run(&d, Method::GET, &[]);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("1000"));
        assert_eq!(header(&r, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&r, "etag"), Some("\"tag\""));
        assert_eq!(
            header(&r, "last-modified"),
            Some("Tue, 14 Nov 2023 22:13:20 GMT")
        );
        assert_eq!(header(&r, "content-type"), Some("application/x-test"));
        assert_eq!(header(&r, "cache-control"), Some("max-age=60"));
    }

    #[test]
    fn head_has_the_get_headers_and_no_body_and_ignores_range() {
        let d = data();
        let r = run(&d, Method::HEAD, &[("range", "bytes=0-9")]);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("1000"));
        assert!(http_body::Body::is_end_stream(r.body()));
    }

    #[test]
    fn a_single_range_is_206_with_content_range() {
        let d = data();
        let r = run(&d, Method::GET, &[("range", "bytes=10-19")]);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&r, "content-range"), Some("bytes 10-19/1000"));
        assert_eq!(header(&r, "content-length"), Some("10"));
    }

    #[test]
    fn multipart_is_refused_when_larger_than_the_whole() {
        let d = data();
        let many: &'static str = "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20";
        let r = run(&d, Method::GET, &[("range", many)]);
        assert_eq!(r.status(), StatusCode::OK);
        let r = run(&d, Method::GET, &[("range", "bytes=0-99,500-599")]);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert!(
            header(&r, "content-type")
                .expect("ct")
                .starts_with("multipart/byteranges; boundary=")
        );
    }

    #[test]
    fn two_range_field_lines_are_an_invalid_range_and_ignored() {
        let d = data();
        let r = run(
            &d,
            Method::GET,
            &[("range", "bytes=0-9"), ("range", "bytes=20-29")],
        );
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("1000"));
    }

    #[test]
    fn unsatisfiable_is_416_with_the_length() {
        let d = data();
        let r = run(&d, Method::GET, &[("range", "bytes=1000-")]);
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&r, "content-range"), Some("bytes */1000"));
    }

    #[test]
    fn not_modified_carries_validators_and_cache_control_only() {
        let d = data();
        let r = run(&d, Method::GET, &[("if-none-match", "\"tag\"")]);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&r, "etag"), Some("\"tag\""));
        assert_eq!(header(&r, "cache-control"), Some("max-age=60"));
        assert!(header(&r, "last-modified").is_none());
        assert!(header(&r, "content-length").is_none());
        assert!(header(&r, "content-type").is_none());
    }

    #[test]
    fn failed_preconditions_are_412_and_if_range_mismatch_sends_200() {
        let d = data();
        assert_eq!(
            run(&d, Method::GET, &[("if-match", "\"other\"")]).status(),
            StatusCode::PRECONDITION_FAILED
        );
        let r = run(
            &d,
            Method::GET,
            &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
        );
        assert_eq!(r.status(), StatusCode::OK);
        let r = run(
            &d,
            Method::GET,
            &[("range", "bytes=0-9"), ("if-range", "\"tag\"")],
        );
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    }

    #[test]
    fn decimal_renders_every_magnitude() {
        for n in [0, 1, 9, 10, 99, 100, 4096, 1 << 40, u64::MAX - 1, u64::MAX] {
            assert_eq!(decimal(n), n.to_string().as_str());
        }
    }

    #[test]
    fn a_directory_redirect_is_relative_and_a_valid_uri_reference() {
        let location = |uri: &str| {
            to_directory(&uri.parse().expect("a URI"))
                .map(|r| header(&r, "location").expect("a Location").to_owned())
        };
        assert_eq!(location("/docs").as_deref(), Some("./docs/"));
        assert_eq!(location("/a/b?x=1&y").as_deref(), Some("./b/?x=1&y"));
        // The client's escapes stay; what a URI reference may not hold is escaped.
        assert_eq!(location("/a%20b").as_deref(), Some("./a%20b/"));
        assert_eq!(location("/a{b}?x=1").as_deref(), Some("./a%7Bb%7D/?x=1"));
        assert_eq!(location("/caf\u{e9}").as_deref(), Some("./caf%C3%A9/"));
        // Nothing to add a slash to.
        assert_eq!(location("/docs/"), None);
        assert_eq!(location("/"), None);
        let r = to_directory(&"/docs".parse().expect("a URI")).expect("a redirect");
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn method_not_allowed_names_get_and_head() {
        let r = method_not_allowed();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    }
}
