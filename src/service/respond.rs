//! Renders what the service decided into a `Response`: a file's answer (as `http::answer` decides it), the
//! error and refusal answers, and the one place a HEAD response loses its content; no I/O, no decisions.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use crate::MmapError;
use crate::body::{MmapBody, Segment, Watch};
use crate::cache::{Entry, FrameCounters};
use crate::http::answer::{Answer, Selected, answer};
use crate::http::encoding::ContentCoding;
use crate::http::fields::decimal;
use crate::http::multipart::Multipart;
use crate::http::preconditions::Validators;
use crate::http::range::{content_range, unsatisfied_content_range};
use crate::http::target::is_known_method;
use crate::mmap::file::Content;
use crate::resolve::{Rejection, ResolvedFile, content_etag};

/// Per-service settings that shape responses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// More range-specs than this in one Range header get the whole representation (200).
    pub(crate) max_ranges: usize,
    /// Largest body frame.
    pub(crate) chunk_size: usize,
    /// A mapped body's last frame waits until the server has let go of the earlier ones.
    pub(crate) wait_for_copies: bool,
}

/// What the service answers a request with, before it is rendered.
#[derive(Debug)]
pub(crate) enum Reply<'a> {
    /// The file the resolver named, as the cache holds it.
    File {
        entry: &'a Entry,
        resolved: &'a ResolvedFile,
        /// The coding of `entry` when it is a precompressed variant of `resolved` (its sidecar).
        coding: Option<ContentCoding>,
        limits: Limits,
        /// Where the body counts the residency of its frames: the cache's.
        frames: &'a Arc<FrameCounters>,
    },
    /// Content the resolver gave instead of a file ([`ResolvedFile::bytes`]), answered as a file would be.
    Bytes {
        content: &'a Bytes,
        resolved: &'a ResolvedFile,
        limits: Limits,
        frames: &'a Arc<FrameCounters>,
    },
    /// 500: the file does not match the digest its resolver named (the reason says so; logged already).
    Mismatch(&'static str),
    /// 400: the request target or its Host field is malformed (the reason says how).
    Refused(&'static str),
    /// The resolver's rejection.
    Rejected(&'a Rejection),
    /// The method is not GET or HEAD: 405 or 501.
    Method,
    /// 404.
    NotFound,
    /// 301 to this location (a directory named without its slash).
    Redirect(HeaderValue),
    /// An error on the way to the file.
    Error(&'a MmapError),
}

/// The response to the request `head` for `reply`: RFC 9110 §9.3.2 forbids content in any response to HEAD,
/// error responses included (HTTP/2 servers such as hyper's send whatever the body yields), so this is the
/// one place a HEAD response loses its body.
pub(crate) fn render(head: &Parts, reply: Reply<'_>) -> Response<MmapBody> {
    let mut response = match reply {
        Reply::File {
            entry,
            resolved,
            coding,
            limits,
            frames,
        } => match checked_window(entry, resolved) {
            Ok(window) => {
                let rep = Representation::of(entry, resolved, coding, frames, window.as_ref());
                file(head, &rep, limits)
            }
            Err(unservable) => unservable.response(),
        },
        Reply::Bytes {
            content,
            resolved,
            limits,
            frames,
        } => {
            // `bytes` made an ETag; one cleared since (the field is public) is made again.
            let made;
            let etag = match &resolved.etag {
                Some(etag) => etag,
                None => {
                    made = content_etag(content);
                    &made
                }
            };
            let content = Content::Memory(content.clone());
            let length = decimal(content.len());
            let rep = Representation::of_bytes(&content, &length, etag, resolved, frames);
            file(head, &rep, limits)
        }
        Reply::Mismatch(reason) => {
            // Never stored by a cache (RFC 9111 §5.2.2.5): the next request may find the file repaired.
            let mut r = text(StatusCode::INTERNAL_SERVER_ERROR, reason);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Reply::Refused(reason) => text(StatusCode::BAD_REQUEST, reason),
        Reply::Rejected(rejection) => text(rejection.status(), rejection.reason()),
        Reply::Method => method_not_allowed_or_implemented(&head.method),
        Reply::NotFound => text(StatusCode::NOT_FOUND, "not found"),
        Reply::Redirect(location) => {
            let mut r = text(
                StatusCode::MOVED_PERMANENTLY,
                "moved to the directory's URL with a /",
            );
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        Reply::Error(err) => error_response(err),
    };
    if head.method == Method::HEAD {
        *response.body_mut() = MmapBody::empty();
    }
    response
}

/// A resolver's [window](ResolvedFile::window), found inside the mapping that answers, with the fields that
/// differ from the file's formatted once.
#[derive(Debug)]
struct Window {
    range: Range<u64>,
    /// The file's entity-tag with `-{start}-{end}` inside its quotes.
    etag: HeaderValue,
}

/// Why the mapping that answers cannot serve what the resolver decided.
#[derive(Debug, Clone, Copy)]
enum Unservable {
    /// It is another version of the file than the one the resolver pinned.
    Changed,
    /// The window is not inside it.
    OutsideFile,
}

impl Unservable {
    fn response(self) -> Response<MmapBody> {
        match self {
            // RFC 9110 §15.6.4: the file changed between the resolver's look and this answer; a retry
            // resolves against the new version.
            Self::Changed => {
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the file changed while the request was resolved; retry",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            Self::OutsideFile => text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        }
    }
}

/// The resolver's window checked against `entry`, the mapping that answers (None: the whole file), or why
/// that mapping cannot serve what the resolver decided: another version than the one it pinned (503, to
/// retry), or a window that is not inside it (500, logged here).
fn checked_window(entry: &Entry, resolved: &ResolvedFile) -> Result<Option<Window>, Unservable> {
    let file = entry.file();
    if let Some(version) = &resolved.version
        && version != file.identity()
    {
        tracing::debug!(path = %file.path().display(), "the file changed while resolving: answering 503");
        return Err(Unservable::Changed);
    }
    let Some(range) = &resolved.window else {
        return Ok(None);
    };
    let len = file.content().len();
    if range.start > range.end || range.end > len {
        tracing::error!(
            path = %file.path().display(),
            window = ?range,
            len,
            "answering 500: the resolver's window is not inside the file"
        );
        return Err(Unservable::OutsideFile);
    }
    let file_etag = resolved.etag.as_ref().unwrap_or(&entry.validators().etag);
    Ok(Some(Window {
        range: range.clone(),
        etag: window_etag(file_etag, range),
    }))
}

/// `file_etag` with `-{start}-{end}` appended inside its closing quote (after the value, if it has none):
/// `"a0-1f"` → `"a0-1f-8-24"`, `W/"v1"` → `W/"v1-8-24"` (RFC 9110 §8.8.3: a window of a weakly validated file
/// is weakly validated too). Two numbers are always appended, so the file's tag and the window are told apart
/// from the right.
fn window_etag(file_etag: &HeaderValue, range: &Range<u64>) -> HeaderValue {
    let tag = file_etag.as_bytes();
    let (value, closing) = match tag.strip_suffix(b"\"") {
        Some(value) => (value, &b"\""[..]),
        None => (tag, &b""[..]),
    };
    let mut start = itoa::Buffer::new();
    let mut end = itoa::Buffer::new();
    let (start, end) = (start.format(range.start), end.format(range.end));
    let mut out = Vec::with_capacity(tag.len() + start.len() + end.len() + 2);
    out.extend_from_slice(value);
    out.push(b'-');
    out.extend_from_slice(start.as_bytes());
    out.push(b'-');
    out.extend_from_slice(end.as_bytes());
    out.extend_from_slice(closing);
    HeaderValue::from_maybe_shared(Bytes::from(out))
        .expect("a field value with digits and dashes added is a field value")
}

/// What is being served: the whole representation and its metadata, borrowed (each field value is cloned
/// once, into the response).
#[derive(Debug, Clone, Copy)]
struct Representation<'a> {
    /// Every byte of the file (a zero-copy view of the mapping, or the file to read them from).
    content: &'a Content,
    /// Where the representation starts in `content` (0 unless a resolver named a window).
    offset: u64,
    /// The representation's length: `content.len()`, or the window's.
    len: u64,
    content_type: &'a HeaderValue,
    etag: &'a HeaderValue,
    /// None for content a resolver gave, which has no modification time.
    last_modified: Option<&'a HeaderValue>,
    validators: Validators<'a>,
    /// `len` as a header value, formatted once per file; None for a window, whose full answer formats it.
    content_length: Option<&'a HeaderValue>,
    cache_control: Option<&'a HeaderValue>,
    content_disposition: Option<&'a HeaderValue>,
    /// The variant's coding, sent as `Content-Encoding` (RFC 9110 §8.4) with 200 and 206.
    coding: Option<ContentCoding>,
    /// The resolver's further fields, for every response about the file.
    extra: Option<&'a HeaderMap>,
    /// Another process had the file open for writing when it was opened: no version of it is final yet.
    being_written: bool,
    /// Whether the file has precompressed variants, so that every answer about it varies with
    /// Accept-Encoding (RFC 9110 §12.5.5).
    varies: bool,
    /// What the body must watch while it sends a shared mapping or a file read on demand (None for bytes on
    /// the heap), and whether it re-checks the file's identity before the last frame (not for immutable files).
    watched: Option<(&'a Arc<crate::MmapFile>, bool)>,
    /// The cache's residency counters, for the body.
    frames: &'a Arc<FrameCounters>,
}

/// The content type sent when a resolver names none.
static DEFAULT_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/octet-stream");

impl<'a> Representation<'a> {
    /// The representation of `entry` that `resolved` names: the whole file, `window` of it (checked by
    /// [`checked_window`]), or the whole of its variant in `coding`.
    fn of(
        entry: &'a Entry,
        resolved: &'a ResolvedFile,
        coding: Option<ContentCoding>,
        frames: &'a Arc<FrameCounters>,
        window: Option<&'a Window>,
    ) -> Self {
        let file = entry.file();
        let v = entry.validators();
        // A variant's tag is its own file's (§8.8.3: another representation, another tag): the resolver's
        // names the identity's bytes. (A resolver naming a window or a version gets no variant.)
        let theirs = resolved.etag.as_ref().filter(|_| coding.is_none());
        let (etag, content_length, offset, len) = match window {
            Some(w) => (&w.etag, None, w.range.start, w.range.end - w.range.start),
            None => (
                theirs.unwrap_or(&v.etag),
                Some(&v.length),
                0,
                file.content().len(),
            ),
        };
        // One this crate made (a window's too) is a well-formed strong entity-tag: preconditions need not
        // parse it.
        let etag_is_ours = theirs.is_none();
        Self {
            content: file.content(),
            offset,
            len,
            content_type: resolved
                .content_type
                .as_ref()
                .unwrap_or(&DEFAULT_CONTENT_TYPE),
            etag,
            last_modified: Some(&v.last_modified),
            validators: Validators {
                etag: etag.as_bytes(),
                etag_is_ours,
                last_modified: Some(v.last_modified_time),
                last_modified_value: Some(v.last_modified.as_bytes()),
                strong_date_from: entry.strong_date_from(),
            },
            content_length,
            cache_control: resolved.cache_control.as_ref(),
            content_disposition: resolved.content_disposition.as_ref(),
            coding,
            extra: resolved.headers(),
            being_written: file.opened_while_written(),
            varies: !resolved.codings().is_empty(),
            watched: file.is_shared().then_some((file, !resolved.immutable)),
            frames,
        }
    }

    /// `content`, which a resolver gave (its length formatted as `length`), tagged `etag`, with the resolver's
    /// metadata: there is no Last-Modified, and nothing for the body to watch.
    fn of_bytes(
        content: &'a Content,
        length: &'a HeaderValue,
        etag: &'a HeaderValue,
        resolved: &'a ResolvedFile,
        frames: &'a Arc<FrameCounters>,
    ) -> Self {
        Self {
            content,
            offset: 0,
            len: content.len(),
            content_type: resolved
                .content_type
                .as_ref()
                .unwrap_or(&DEFAULT_CONTENT_TYPE),
            etag,
            last_modified: None,
            validators: Validators {
                etag: etag.as_bytes(),
                etag_is_ours: false,
                last_modified: None,
                last_modified_value: None,
                strong_date_from: None,
            },
            content_length: Some(length),
            cache_control: resolved.cache_control.as_ref(),
            content_disposition: resolved.content_disposition.as_ref(),
            coding: None,
            extra: resolved.headers(),
            being_written: false,
            varies: false,
            watched: None,
            frames,
        }
    }

    fn watch(&self, limits: Limits) -> Option<Watch> {
        self.watched.map(|(file, recheck_identity)| Watch {
            file: Arc::clone(file),
            recheck_identity,
            counters: Some(Arc::clone(self.frames)),
            wait_for_copies: limits.wait_for_copies,
        })
    }
}

/// The response to a GET or HEAD of `rep` (the body is cut for HEAD by [`render`]).
fn file(head: &Parts, rep: &Representation<'_>, limits: Limits) -> Response<MmapBody> {
    let selected = Selected {
        validators: rep.validators,
        len: rep.len,
        content_type: rep.content_type.as_bytes(),
    };
    let answer = answer(&head.method, &head.headers, &selected, limits.max_ranges);
    if rep.being_written {
        // An answer with content aborts (its body is poisoned); one without (HEAD, 304, 412, 416) would carry
        // the labels of an unfinished file: RFC 9110 §15.6.4, 503 with Retry-After (§10.2.3) instead.
        let has_content = matches!(answer, Answer::Full | Answer::Single(_) | Answer::Multi(_));
        if head.method == Method::HEAD || !has_content {
            return being_written();
        }
    }
    match answer {
        Answer::PreconditionFailed => precondition_failed(rep),
        Answer::NotModified => not_modified(rep),
        Answer::Full => full(rep, limits),
        Answer::Single(part) => single(rep, part, limits),
        Answer::Multi(layout) => multi(rep, layout, limits),
        Answer::Unsatisfiable => unsatisfiable(rep),
    }
}

/// RFC 9110 §13.1.1-§13.1.4: 412, with the resolver's further fields.
fn precondition_failed(rep: &Representation<'_>) -> Response<MmapBody> {
    let mut response = empty(StatusCode::PRECONDITION_FAILED);
    extra_headers(response.headers_mut(), rep);
    response
}

/// Fields only the service sets, on any answer about a file: a resolver's value for one of them is dropped,
/// even on an answer that has none (a 304 has no Content-Length, and must not get one).
const SERVICE_FIELDS: [header::HeaderName; 10] = [
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::CONTENT_TYPE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::ACCEPT_RANGES,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONNECTION,
];

/// Adds the resolver's further fields but those only the service sets, and `Vary: Accept-Encoding` for a
/// file with precompressed variants.
fn extra_headers(h: &mut HeaderMap, rep: &Representation<'_>) {
    if let Some(extra) = rep.extra {
        // Each value with its name, in order (measured: a look-up of the name in the response and the
        // resolver's map per name cost about 300 instructions a field).
        for (name, value) in extra {
            // A variant's Content-Encoding is the service's (RFC 9110 §8.4); the others are in the list.
            if SERVICE_FIELDS.contains(name)
                || (rep.coding.is_some() && name == header::CONTENT_ENCODING)
            {
                continue;
            }
            h.append(name.clone(), value.clone());
        }
    }
    if rep.varies {
        // After the resolver's own Vary fields, which the loop above would otherwise drop.
        h.append(header::VARY, ACCEPT_ENCODING);
    }
}

const ACCEPT_RANGES_BYTES: HeaderValue = HeaderValue::from_static("bytes");
const ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

fn full(rep: &Representation<'_>, limits: Limits) -> Response<MmapBody> {
    let mut response = sized_for(body(rep, 0..rep.len, limits), rep.extra);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, rep.content_type.clone());
    let length = rep.content_length.cloned();
    h.insert(
        header::CONTENT_LENGTH,
        length.unwrap_or_else(|| decimal(rep.len)),
    );
    representation_headers(h, rep);
    response
}

/// RFC 9110 §14.4 and §15.3.7: one part, with Content-Range.
fn single(rep: &Representation<'_>, part: Range<u64>, limits: Limits) -> Response<MmapBody> {
    let len = rep.len;
    let mut response = sized_for(body(rep, part.clone(), limits), rep.extra);
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, rep.content_type.clone());
    h.insert(header::CONTENT_LENGTH, decimal(part.end - part.start));
    h.insert(header::CONTENT_RANGE, content_range(&part, len));
    representation_headers(h, rep);
    response
}

/// RFC 9110 §14.6: multipart/byteranges as `layout` frames it.
fn multi(rep: &Representation<'_>, layout: Multipart, limits: Limits) -> Response<MmapBody> {
    let content_type = layout.content_type();
    let content_length = layout.content_length_value();
    let body = MmapBody::multipart(layout, rep.content.clone(), rep.offset, limits.chunk_size);
    let mut response = sized_for(body.watched(rep.watch(limits)), rep.extra);
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, content_length);
    representation_headers(h, rep);
    response
}

/// The body sending `range` of the representation (in its coordinates), watched as the representation says.
fn body(rep: &Representation<'_>, range: Range<u64>, limits: Limits) -> MmapBody {
    // `answer` keeps parts inside 0..len, and a window lies inside the content; anything else would be a bug
    // here, answered with no bytes.
    let in_file = rep.offset + range.start..rep.offset + range.end;
    let segment = Segment::of(rep.content, in_file).unwrap_or(Segment::Memory(Bytes::new()));
    MmapBody::single(segment, limits.chunk_size).watched(rep.watch(limits))
}

/// RFC 9110 §15.5.17: 416 with the current length.
fn unsatisfiable(rep: &Representation<'_>) -> Response<MmapBody> {
    let mut response = empty(StatusCode::RANGE_NOT_SATISFIABLE);
    let h = response.headers_mut();
    h.insert(header::CONTENT_RANGE, unsatisfied_content_range(rep.len));
    h.insert(header::ACCEPT_RANGES, ACCEPT_RANGES_BYTES);
    extra_headers(h, rep);
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
    extra_headers(h, rep);
    response
}

fn representation_headers(h: &mut HeaderMap, rep: &Representation<'_>) {
    h.insert(header::ACCEPT_RANGES, ACCEPT_RANGES_BYTES);
    h.insert(header::ETAG, rep.etag.clone());
    if let Some(lm) = rep.last_modified {
        h.insert(header::LAST_MODIFIED, lm.clone());
    }
    if let Some(cc) = rep.cache_control {
        h.insert(header::CACHE_CONTROL, cc.clone());
    }
    if let Some(cd) = rep.content_disposition {
        h.insert(header::CONTENT_DISPOSITION, cd.clone());
    }
    if let Some(coding) = rep.coding {
        h.insert(header::CONTENT_ENCODING, coding.header_value());
    }
    extra_headers(h, rep);
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

/// [`sized`], with room for a resolver's `extra` fields too: one allocation of the larger table rather than
/// the small one and a grow (the grow cost a tensor answer with two `X-` fields about 1,100 instructions,
/// callgrind).
fn sized_for(body: MmapBody, extra: Option<&HeaderMap>) -> Response<MmapBody> {
    let Some(extra) = extra.filter(|extra| !extra.is_empty()) else {
        return sized(body);
    };
    let mut response = Response::new(body);
    *response.headers_mut() = HeaderMap::with_capacity(6 + extra.len());
    response
}

/// A response with a status and no content (Content-Length: 0 where the status allows one).
fn empty(status: StatusCode) -> Response<MmapBody> {
    let mut response = sized(MmapBody::empty());
    *response.status_mut() = status;
    if status != StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    response
}

/// A short plain-text explanation with `status`.
fn text(status: StatusCode, reason: &str) -> Response<MmapBody> {
    let body = Bytes::from(format!("{reason}\n"));
    let mut response = sized(MmapBody::slice(body.clone(), 0));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, TEXT_PLAIN);
    h.insert(header::CONTENT_LENGTH, decimal(body.len() as u64));
    response
}

/// RFC 9110 §15.6.4: 503 with `Retry-After` (§10.2.3) for a file another process is still writing.
fn being_written() -> Response<MmapBody> {
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the file is being written: retry shortly",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The response for an error on the way to a file; 5xx are logged here, once.
pub(crate) fn error_response(err: &MmapError) -> Response<MmapBody> {
    let status = err.status_code();
    match err {
        MmapError::Exhausted { .. } => {
            tracing::warn!(error = %err, source = ?std::error::Error::source(err), "answering 503");
            let mut r = text(
                status,
                "service unavailable: out of resources, retry shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        // Expected while files are written: the client retries, nothing is wrong with the server.
        MmapError::BeingWritten(_) => {
            tracing::debug!(error = %err, "answering 503");
            being_written()
        }
        _ if status.is_server_error() => {
            tracing::error!(error = %err, source = ?std::error::Error::source(err), "answering 500");
            text(status, "internal server error")
        }
        _ => text(status, status.canonical_reason().unwrap_or("error")),
    }
}

/// The answer to a method other than GET and HEAD: 405 for a method this server knows (RFC 9110 §15.5.6,
/// naming the methods the resource supports), 501 for one it does not implement at all (§9.1, §15.6.2).
fn method_not_allowed_or_implemented(method: &Method) -> Response<MmapBody> {
    if is_known_method(method) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    } else {
        text(StatusCode::NOT_IMPLEMENTED, "method not implemented")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmap::file::MmapFile;

    const LIMITS: Limits = Limits {
        max_ranges: 1024,
        chunk_size: 1 << 20,
        wait_for_copies: false,
    };

    fn head(method: Method, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut request = http::Request::builder().method(method).uri("/f");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).expect("a request").into_parts().0
    }

    fn header<'r>(r: &'r Response<MmapBody>, name: &str) -> Option<&'r str> {
        r.headers().get(name).map(|v| v.to_str().expect("ascii"))
    }

    /// An entry for a small file of the usual pattern, and what a resolver says of it.
    fn fixture() -> (tempfile::TempDir, Entry, ResolvedFile) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, crate::testing::pattern(1000)).expect("write");
        let entry = Entry::new(MmapFile::new(&path).expect("open"), 0);
        let resolved = ResolvedFile::new(&path)
            .content_type(HeaderValue::from_static("application/x-test"))
            .cache_control(HeaderValue::from_static("max-age=60"));
        (dir, entry, resolved)
    }

    fn run(method: Method, headers: &[(&'static str, &'static str)]) -> Response<MmapBody> {
        let (_dir, entry, resolved) = fixture();
        run_on(&entry, &resolved, method, headers)
    }

    fn run_on(
        entry: &Entry,
        resolved: &ResolvedFile,
        method: Method,
        headers: &[(&'static str, &'static str)],
    ) -> Response<MmapBody> {
        let frames = Arc::default();
        let reply = Reply::File {
            entry,
            resolved,
            coding: None,
            limits: LIMITS,
            frames: &frames,
        };
        render(&head(method, headers), reply)
    }

    #[test]
    fn a_plain_get_is_200_with_every_validator() {
        let (_dir, entry, resolved) = fixture();
        let r = run_on(&entry, &resolved, Method::GET, &[]);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("1000"));
        assert_eq!(header(&r, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&r, "etag"), Some(entry.file().etag().as_str()));
        assert_eq!(
            header(&r, "last-modified"),
            Some(entry.file().last_modified().as_str())
        );
        assert_eq!(header(&r, "content-type"), Some("application/x-test"));
        assert_eq!(header(&r, "cache-control"), Some("max-age=60"));
    }

    #[test]
    fn head_has_the_get_headers_and_no_body() {
        let r = run(Method::HEAD, &[("range", "bytes=0-9")]);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("1000"));
        assert!(http_body::Body::is_end_stream(r.body()));
    }

    #[test]
    fn every_reply_to_head_has_no_body() {
        let head = head(Method::HEAD, &[]);
        let err = MmapError::Io {
            path: "f".into(),
            source: std::io::Error::other("boom"),
        };
        let rejection = Rejection::new(StatusCode::BAD_REQUEST, "invalid CID");
        for reply in [
            Reply::Refused("invalid Host header"),
            Reply::Rejected(&rejection),
            Reply::NotFound,
            Reply::Redirect(HeaderValue::from_static("./d/")),
            Reply::Error(&err),
        ] {
            let r = render(&head, reply);
            assert!(http_body::Body::is_end_stream(r.body()), "{:?}", r.status());
            assert_ne!(header(&r, "content-length"), Some("0"), "the GET's length");
        }
    }

    #[test]
    fn a_single_range_is_206_with_content_range() {
        let r = run(Method::GET, &[("range", "bytes=10-19")]);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&r, "content-range"), Some("bytes 10-19/1000"));
        assert_eq!(header(&r, "content-length"), Some("10"));
    }

    #[test]
    fn several_ranges_are_a_multipart_206() {
        let r = run(Method::GET, &[("range", "bytes=0-99,500-599")]);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert!(
            header(&r, "content-type")
                .expect("ct")
                .starts_with("multipart/byteranges; boundary=")
        );
    }

    #[test]
    fn unsatisfiable_is_416_with_the_length() {
        let r = run(Method::GET, &[("range", "bytes=1000-")]);
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&r, "content-range"), Some("bytes */1000"));
    }

    #[test]
    fn not_modified_carries_validators_and_cache_control_only() {
        let (_dir, entry, resolved) = fixture();
        let etag = entry.file().etag();
        let r = run_on(
            &entry,
            &resolved,
            Method::GET,
            &[("if-none-match", etag.clone().leak())],
        );
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&r, "etag"), Some(etag.as_str()));
        assert_eq!(header(&r, "cache-control"), Some("max-age=60"));
        assert!(header(&r, "last-modified").is_none());
        assert!(header(&r, "content-length").is_none());
        assert!(header(&r, "content-type").is_none());
    }

    #[test]
    fn further_fields_are_on_every_answer_and_never_replace_the_services() {
        let (_dir, entry, resolved) = fixture();
        let resolved = resolved
            .header(header::VARY, HeaderValue::from_static("Accept-Encoding"))
            .header(header::VARY, HeaderValue::from_static("Accept"))
            .header(header::ETAG, HeaderValue::from_static("\"forged\""))
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("1"));
        let etag = entry.file().etag();
        let cases: [&[(&'static str, &'static str)]; 6] = [
            &[],
            &[("range", "bytes=0-9")],
            &[("range", "bytes=0-9,20-29")],
            &[("range", "bytes=5000-")],
            &[("if-none-match", etag.clone().leak())],
            &[("if-match", "\"other\"")],
        ];
        let mut statuses = Vec::new();
        for headers in cases {
            let r = run_on(&entry, &resolved, Method::GET, headers);
            statuses.push(r.status().as_u16());
            let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
            assert_eq!(vary, ["Accept-Encoding", "Accept"], "{}", r.status());
            assert_ne!(header(&r, "content-length"), Some("1"), "{}", r.status());
            if let Some(tag) = header(&r, "etag") {
                assert_eq!(tag, etag, "{}", r.status());
            }
        }
        assert_eq!(statuses, [200, 206, 206, 416, 304, 412]);
    }

    /// The body of `r`, collected (the bodies here are in memory or mapped: no runtime needed).
    fn body_of(r: Response<MmapBody>) -> Vec<u8> {
        use http_body::Body;
        let mut body = std::pin::pin!(r.into_body());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        while let std::task::Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
            if let Ok(data) = frame.expect("a frame").into_data() {
                out.extend_from_slice(&data);
            }
        }
        out
    }

    #[test]
    fn a_window_is_a_representation_of_its_own() {
        let (_dir, entry, resolved) = fixture();
        let file = crate::testing::pattern(1000);
        let resolved = resolved.window(100..300);
        let file_etag = entry.file().etag();
        let etag = format!("{}-100-300\"", file_etag.strip_suffix('"').expect("quoted"));

        let r = run_on(&entry, &resolved, Method::GET, &[]);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("200"));
        assert_eq!(header(&r, "etag"), Some(etag.as_str()));
        assert_eq!(
            header(&r, "last-modified"),
            Some(entry.file().last_modified().as_str())
        );
        assert_eq!(body_of(r), file[100..300]);

        // RFC 9110 §14.4: Content-Range in the window's coordinates.
        let r = run_on(&entry, &resolved, Method::GET, &[("range", "bytes=10-19")]);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&r, "content-range"), Some("bytes 10-19/200"));
        assert_eq!(body_of(r), file[110..120]);
        let r = run_on(&entry, &resolved, Method::GET, &[("range", "bytes=-5")]);
        assert_eq!(header(&r, "content-range"), Some("bytes 195-199/200"));
        assert_eq!(body_of(r), file[295..300]);

        let r = run_on(&entry, &resolved, Method::GET, &[("range", "bytes=200-")]);
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&r, "content-range"), Some("bytes */200"));

        let r = run_on(
            &entry,
            &resolved,
            Method::GET,
            &[("if-none-match", etag.clone().leak())],
        );
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&r, "etag"), Some(etag.as_str()));
        // The file's own tag does not validate the window.
        let r = run_on(
            &entry,
            &resolved,
            Method::GET,
            &[("if-match", file_etag.clone().leak())],
        );
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

        let r = run_on(&entry, &resolved, Method::HEAD, &[]);
        assert_eq!(header(&r, "content-length"), Some("200"));
        assert!(http_body::Body::is_end_stream(r.body()));
    }

    #[test]
    fn a_multipart_answer_about_a_window_frames_the_window_s_bytes() {
        let (_dir, entry, resolved) = fixture();
        let file = crate::testing::pattern(1000);
        let resolved = resolved.window(500..900);
        let r = run_on(
            &entry,
            &resolved,
            Method::GET,
            &[("range", "bytes=0-9,390-399")],
        );
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        let text = body_of(r);
        let find = |needle: &[u8]| text.windows(needle.len()).position(|w| w == needle);
        let first = find(b"Content-Range: bytes 0-9/400\r\n\r\n").expect("first part");
        let second = find(b"Content-Range: bytes 390-399/400\r\n\r\n").expect("second part");
        let at = |header_at: usize| header_at + b"Content-Range: bytes 0-9/400\r\n\r\n".len();
        assert_eq!(text[at(first)..at(first) + 10], file[500..510]);
        let second_data = second + b"Content-Range: bytes 390-399/400\r\n\r\n".len();
        assert_eq!(text[second_data..second_data + 10], file[890..900]);
    }

    #[test]
    fn two_windows_of_one_file_and_a_window_of_a_changed_file_never_share_a_tag() {
        let (_dir, entry, resolved) = fixture();
        let tag = |entry: &Entry, window: Range<u64>| {
            let r = run_on(entry, &resolved.clone().window(window), Method::GET, &[]);
            header(&r, "etag").expect("an etag").to_owned()
        };
        let a = tag(&entry, 0..10);
        assert_ne!(a, tag(&entry, 10..20));
        assert_ne!(a, tag(&entry, 0..11));
        assert_ne!(a, entry.file().etag(), "the whole file's");
        let path = entry.file().path().to_path_buf();
        std::fs::write(&path, crate::testing::pattern(1001)).expect("rewrite");
        let changed = Entry::new(MmapFile::new(&path).expect("open"), 0);
        assert_ne!(a, tag(&changed, 0..10));
    }

    #[test]
    fn window_tags_keep_the_file_tag_s_strength_and_quotes() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(window_etag(&v("\"a-1\""), &(8..24)), "\"a-1-8-24\"");
        assert_eq!(window_etag(&v("W/\"v1\""), &(0..0)), "W/\"v1-0-0\"");
        assert_eq!(
            window_etag(&v("\"x\""), &(u64::MAX - 1..u64::MAX)),
            "\"x-18446744073709551614-18446744073709551615\""
        );
        // A resolver's malformed tag gets the numbers all the same.
        assert_eq!(window_etag(&v("bare"), &(1..2)), "bare-1-2");
    }

    #[test]
    fn a_resolver_s_own_tag_is_the_base_of_its_window_s() {
        let (_dir, entry, resolved) = fixture();
        let resolved = resolved
            .etag(HeaderValue::from_static("W/\"v7\""))
            .window(0..10);
        let r = run_on(&entry, &resolved, Method::GET, &[]);
        assert_eq!(header(&r, "etag"), Some("W/\"v7-0-10\""));
        // RFC 9110 §13.1.2: If-None-Match compares weakly.
        let r = run_on(
            &entry,
            &resolved,
            Method::GET,
            &[("if-none-match", "\"v7-0-10\"")],
        );
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn a_window_outside_the_file_is_a_500_and_never_a_slice() {
        let (_dir, entry, resolved) = fixture();
        for window in [900..1001, 1001..1002, Range { start: 20, end: 10 }] {
            for method in [Method::GET, Method::HEAD] {
                let r = run_on(
                    &entry,
                    &resolved.clone().window(window.clone()),
                    method,
                    &[],
                );
                assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{window:?}");
                assert!(header(&r, "etag").is_none());
            }
        }
        let r = run_on(
            &entry,
            &resolved.clone().window(1000..1000),
            Method::GET,
            &[],
        );
        assert_eq!(r.status(), StatusCode::OK, "an empty window at the end");
        assert_eq!(header(&r, "content-length"), Some("0"));
    }

    #[test]
    fn a_pinned_version_that_is_not_the_mapped_one_is_a_503_to_retry() {
        let (_dir, entry, resolved) = fixture();
        let seen = *entry.file().identity();
        let r = run_on(
            &entry,
            &resolved.clone().version(seen).window(0..10),
            Method::GET,
            &[],
        );
        assert_eq!(r.status(), StatusCode::OK);
        let other = crate::FileIdentity::from_parts(1, 2, 1000, 3, 4);
        let r = run_on(
            &entry,
            &resolved.clone().version(other).window(0..10),
            Method::GET,
            &[],
        );
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&r, "retry-after"), Some("1"));
        assert!(header(&r, "etag").is_none());
        let r = run_on(&entry, &resolved.clone().version(other), Method::GET, &[]);
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "without a window too"
        );
    }

    #[test]
    fn bytes_a_resolver_gives_are_answered_as_a_file_without_last_modified() {
        let content = Bytes::from_static(b"hello world");
        let resolved = ResolvedFile::new("/never/opened").bytes(content.clone());
        let etag = resolved.etag.clone().expect("made from the content");
        let frames = Arc::default();
        let reply = |headers: &[(&'static str, &'static str)]| {
            let reply = Reply::Bytes {
                content: &content,
                resolved: &resolved,
                limits: LIMITS,
                frames: &frames,
            };
            render(&head(Method::GET, headers), reply)
        };
        let full = reply(&[]);
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(header(&full, "content-length"), Some("11"));
        assert_eq!(header(&full, "etag"), etag.to_str().ok());
        assert!(header(&full, "last-modified").is_none());
        let part = reply(&[("range", "bytes=6-")]);
        assert_eq!(header(&part, "content-range"), Some("bytes 6-10/11"));
        let tag: &'static str = etag.to_str().expect("ascii").to_owned().leak();
        assert_eq!(
            reply(&[("if-none-match", tag)]).status(),
            StatusCode::NOT_MODIFIED
        );
        // An ETag cleared after `bytes` made one is made again.
        let mut untagged = ResolvedFile::new("/never/opened").bytes(content.clone());
        untagged.etag = None;
        let r = render(
            &head(Method::GET, &[]),
            Reply::Bytes {
                content: &content,
                resolved: &untagged,
                limits: LIMITS,
                frames: &frames,
            },
        );
        assert_eq!(header(&r, "etag"), etag.to_str().ok());
    }

    #[test]
    fn a_mismatch_is_500_with_its_reason_and_never_stored() {
        let r = render(
            &head(Method::GET, &[]),
            Reply::Mismatch("block does not match its CID"),
        );
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(header(&r, "content-length"), Some("29"));
    }

    #[test]
    fn a_failed_precondition_is_412() {
        let r = run(Method::GET, &[("if-match", "\"other\"")]);
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(header(&r, "content-length"), Some("0"));
    }

    #[test]
    fn a_directory_redirect_is_301_with_its_location() {
        let r = render(
            &head(Method::GET, &[]),
            Reply::Redirect(HeaderValue::from_static("./docs/")),
        );
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(header(&r, "location"), Some("./docs/"));
    }

    #[test]
    fn method_not_allowed_names_get_and_head_and_unknown_methods_are_501() {
        let r = render(&head(Method::POST, &[]), Reply::Method);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
        let brew = Method::from_bytes(b"BREW").expect("a method");
        let r = render(&head(brew, &[]), Reply::Method);
        assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    }
}
