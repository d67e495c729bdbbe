//! `ceiling`: the fastest a hyper file server can be on this machine, the upper bound of the load bench
//! (`bench/load.sh`).
//!
//! ```sh
//! cargo run --release --example ceiling -- --root DIR --listen 127.0.0.1:8083 --threads 1
//! ```
//!
//! Every file under `--root` is read into memory at start; `GET /{relative path}` answers from those
//! `Bytes` with no file I/O, every body a zero-copy slice of them and every header value formatted at start.
//! It does just what the bench's workloads need, correctly: 200 with the whole file, a single range (206),
//! several ranges (206 `multipart/byteranges`), 416, `If-None-Match` (304, weak comparison) and `If-Range`
//! (strong comparison), HEAD, 404 and 405. It does not coalesce or limit ranges beyond a count, and it
//! never notices a file changing on disk: it is a yardstick, not a server to deploy.
//!
//! With `--checks` it also makes the system calls mmap-serve makes to keep its promises for every GET answer
//! that sends bytes of a mapped file (a 200 or a 206; files small enough for mmap-serve to hold on the heap
//! need none), and ignores what they say: before each part sent (the whole file for a 200), whether its pages
//! are in memory (`MmapFile::range_resident` polled once, one `mincore(2)` on a mapping of the file), and once
//! per answer whether the file on disk is still the one loaded (one `fstat(2)`). The load bench runs it beside the plain ceiling to show what those
//! checks cost on the machine, apart from everything else a server does.
//!
//! Runtime settings, as in `serve`: a multi-threaded Tokio runtime with `--threads` workers (default 1 here),
//! the same hyper-util `auto` connection builder, and `TCP_NODELAY` on every connection.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::error::Error;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use hyper::service::service_fn;
use tokio::net::TcpListener;

/// The multipart boundary of every response. Fixed for speed; a yardstick can afford it (a real server
/// must pick one that cannot occur in the body, or at least one nobody can predict).
macro_rules! boundary {
    () => {
        "ceiling0boundary0a8f3c1d9e7b"
    };
}
const BOUNDARY: &str = boundary!();
/// The Content-Type of a multipart answer.
const MULTIPART_TYPE: &str = concat!("multipart/byteranges; boundary=", boundary!());

/// More ranges than this in one request get the whole file (RFC 9110 §14.2 lets a server ignore Range).
const MAX_RANGES: usize = 64;

#[path = "support/server.rs"]
mod server;

fn main() -> Result<(), Box<dyn Error>> {
    let mut checks = false;
    let flags = [server::Flag {
        name: "--checks",
        value: None,
        help: "before each part a GET answer sends of a mapped file, mincore(2) its pages, and fstat(2) the \
               file once per answer, as mmap-serve does (results ignored; default: no system calls)",
    }];
    let args = server::args("ceiling", 8083, 1, &flags, |_, _| {
        checks = true;
        Ok(())
    });
    server::run(args.threads, run(args, checks))
}

async fn run(args: server::Args, checks: bool) -> Result<(), Box<dyn Error>> {
    let root = args.root.clone().ok_or("--root is required")?;
    let files = Arc::new(Files::load(&root, checks)?);
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "ceiling: serving {} files ({} MiB, in memory) from {} at http://{addr}/ ({} worker threads{})",
        files.by_path.len(),
        files.total_len() >> 20,
        root.display(),
        args.threads,
        if checks {
            ", with mmap-serve's system calls"
        } else {
            ""
        }
    );
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        std::future::ready(Ok::<_, Infallible>(files.respond(&request)))
    });
    server::accept(listener, service, &args).await
}

/// Every file under the root, keyed by its URL path (`/dir/name`).
struct Files {
    by_path: HashMap<String, File>,
}

/// One preloaded file and its preformatted header values.
struct File {
    bytes: Bytes,
    /// With `--checks`: the file mapped, and open, for the system calls of mmap-serve's checks.
    checks: Option<(mmap_serve::MmapFile, std::fs::File)>,
    content_type: HeaderValue,
    content_length: HeaderValue,
    etag: HeaderValue,
    last_modified: HeaderValue,
}

impl Files {
    /// Reads every regular file under `root` into memory.
    fn load(root: &Path, checks: bool) -> std::io::Result<Self> {
        let mut by_path = HashMap::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    dirs.push(path);
                } else if kind.is_file() {
                    let relative = path
                        .strip_prefix(root)
                        .expect("read_dir yields paths under the directory it reads");
                    let Some(relative) = relative.to_str() else {
                        continue; // Not valid UTF-8: no URL path can name it here.
                    };
                    by_path.insert(format!("/{relative}"), File::load(&path, checks)?);
                }
            }
        }
        Ok(Self { by_path })
    }

    fn total_len(&self) -> usize {
        self.by_path.values().map(|f| f.bytes.len()).sum()
    }

    fn respond<B>(&self, request: &Request<B>) -> Response<Body> {
        let head = request.method() == Method::HEAD;
        if !head && request.method() != Method::GET {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, HEAD")
                .body(Body::empty())
                .expect("a valid response");
        }
        let Some(file) = self.by_path.get(request.uri().path()) else {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::empty())
                .expect("a valid response");
        };
        file.respond(request.headers(), head)
    }
}

impl File {
    fn load(path: &Path, checks: bool) -> std::io::Result<Self> {
        let bytes = Bytes::from(std::fs::read(path)?);
        let checks = if checks {
            let mapped = mmap_serve::MmapFile::new(path).map_err(std::io::Error::other)?;
            Some((mapped, std::fs::File::open(path)?))
        } else {
            None
        };
        let modified = std::fs::metadata(path)?.modified()?;
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        let value = |s: String| HeaderValue::try_from(s).expect("ASCII without control characters");
        Ok(Self {
            content_type: value(mime.to_string()),
            content_length: HeaderValue::from(bytes.len()),
            etag: value(format!("\"{:x}-{nanos:x}\"", bytes.len())),
            last_modified: value(httpdate::fmt_http_date(modified)),
            bytes,
            checks,
        })
    }

    /// RFC 9110 §13.2.2 reduced to the headers the bench sends: If-None-Match (step 3), then Range
    /// (step 5) unless If-Range names another representation.
    fn respond(&self, headers: &http::HeaderMap, head: bool) -> Response<Body> {
        if let Some(condition) = headers.get(header::IF_NONE_MATCH) {
            if none_match_fails(condition.as_bytes(), self.etag.as_bytes()) {
                // §15.4.5: a 304 carries the validators a 200 would have.
                return Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .header(header::ETAG, self.etag.clone())
                    .header(header::LAST_MODIFIED, self.last_modified.clone())
                    .body(Body::empty())
                    .expect("a valid response");
            }
        }
        let len = self.bytes.len() as u64;
        let range_applies = headers
            .get(header::IF_RANGE)
            .is_none_or(|tag| tag.as_bytes() == self.etag.as_bytes()); // §13.1.5: strong comparison
        let ranges = match headers.get(header::RANGE) {
            Some(range) if range_applies => parse_ranges(range.as_bytes(), len),
            _ => Ranges::Ignore,
        };
        let builder = Response::builder()
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, self.etag.clone())
            .header(header::LAST_MODIFIED, self.last_modified.clone());
        let body = |b: Body| if head { Body::empty() } else { b };
        match ranges {
            Ranges::Ignore => {
                if !head {
                    self.check(std::slice::from_ref(&(0..len)));
                }
                builder
                    .header(header::CONTENT_TYPE, self.content_type.clone())
                    .header(header::CONTENT_LENGTH, self.content_length.clone())
                    .body(body(Body::one(self.bytes.clone())))
                    .expect("a valid response")
            }
            // §15.5.17: 416 says how long the representation is.
            Ranges::Unsatisfiable => builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .expect("a valid response"),
            Ranges::Satisfiable(parts) if parts.len() == 1 => {
                let part = &parts[0];
                if !head {
                    self.check(&parts);
                }
                builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_TYPE, self.content_type.clone())
                    .header(header::CONTENT_RANGE, content_range(part, len))
                    .header(header::CONTENT_LENGTH, part.end - part.start)
                    .body(body(Body::one(self.slice(part))))
                    .expect("a valid response")
            }
            Ranges::Satisfiable(parts) => {
                if !head {
                    self.check(&parts);
                }
                let pieces = self.multipart(&parts);
                let length: usize = pieces.iter().map(Bytes::len).sum();
                builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(MULTIPART_TYPE),
                    )
                    .header(header::CONTENT_LENGTH, length)
                    .body(body(Body::many(pieces)))
                    .expect("a valid response")
            }
        }
    }

    fn slice(&self, part: &Range<u64>) -> Bytes {
        // Parts are inside 0..len, and len came from a usize.
        self.bytes.slice(part.start as usize..part.end as usize)
    }

    /// With `--checks`, for an answer that sends `parts` of the file: the system calls mmap-serve makes for
    /// it, their results ignored. For a mapped file (a small one is on the heap, and costs none), before each
    /// part whether its pages are in memory (`range_resident` polled once: one `mincore`, and no more while
    /// the pages are in, as the bench keeps them), then one `fstat` of the open file, as mmap-serve's body
    /// makes before its last frame.
    fn check(&self, parts: &[Range<u64>]) {
        let Some((mapped, open)) = &self.checks else {
            return;
        };
        for part in parts {
            let ready = std::pin::pin!(mapped.range_resident(part.clone()));
            let _ = ready.poll(&mut Context::from_waker(std::task::Waker::noop()));
        }
        if mapped.is_mapped() {
            let _ = std::hint::black_box(open.metadata());
        }
    }

    /// §14.6: each part behind a delimiter line and its own Content-Type and Content-Range, then the close
    /// delimiter. The framing is written into one buffer and split, the data are slices of the file.
    fn multipart(&self, parts: &[Range<u64>]) -> VecDeque<Bytes> {
        let len = self.bytes.len() as u64;
        let mut framing = BytesMut::with_capacity(parts.len() * 128 + BOUNDARY.len() + 8);
        let mut pieces = VecDeque::with_capacity(parts.len() * 2 + 1);
        for part in parts {
            framing.put_slice(b"\r\n--");
            framing.put_slice(BOUNDARY.as_bytes());
            framing.put_slice(b"\r\nContent-Type: ");
            framing.put_slice(self.content_type.as_bytes());
            framing.put_slice(b"\r\nContent-Range: ");
            framing.put_slice(content_range(part, len).as_bytes());
            framing.put_slice(b"\r\n\r\n");
            pieces.push_back(framing.split().freeze());
            pieces.push_back(self.slice(part));
        }
        framing.put_slice(b"\r\n--");
        framing.put_slice(BOUNDARY.as_bytes());
        framing.put_slice(b"--\r\n");
        pieces.push_back(framing.freeze());
        pieces
    }
}

fn content_range(part: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", part.start, part.end - 1)
}

/// §13.1.2: If-None-Match fails (the answer is 304 for GET and HEAD) when it is `*` or lists a tag that
/// matches the current one under weak comparison.
fn none_match_fails(condition: &[u8], etag: &[u8]) -> bool {
    fn opaque(tag: &[u8]) -> &[u8] {
        tag.strip_prefix(b"W/").unwrap_or(tag)
    }
    let current = opaque(etag);
    condition
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .any(|t| t == b"*" || opaque(t) == current)
}

/// What a Range header asks of a representation of a given length.
#[derive(Debug, PartialEq)]
enum Ranges {
    /// Not `bytes=`, malformed, or too many parts: send the whole representation (§14.2).
    Ignore,
    /// No part overlaps the representation: 416 (§15.5.17).
    Unsatisfiable,
    /// The parts that overlap it, clamped, in request order (not coalesced).
    Satisfiable(Vec<Range<u64>>),
}

/// §14.1.2 byte ranges: `first-last`, `first-`, `-suffix`, comma-separated with optional whitespace.
fn parse_ranges(value: &[u8], len: u64) -> Ranges {
    let Some(specs) = value.strip_prefix(b"bytes=") else {
        return Ranges::Ignore;
    };
    let mut parts = Vec::new();
    for spec in specs.split(|&b| b == b',').map(|s| s.trim_ascii()) {
        if spec.is_empty() {
            continue; // Empty list elements are allowed (§5.6.1).
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return Ranges::Ignore;
        };
        let (first, last) = (number(&spec[..dash]), number(&spec[dash + 1..]));
        let part = match (dash == 0, first, last) {
            (true, _, Some(suffix)) if suffix > 0 => len.saturating_sub(suffix)..len,
            (true, _, Some(_)) => continue, // `-0` selects nothing.
            (false, Some(first), None) if dash + 1 == spec.len() => first..len,
            (false, Some(first), Some(last)) if first <= last => {
                first..last.saturating_add(1).min(len)
            }
            _ => return Ranges::Ignore,
        };
        if part.start < len {
            parts.push(part);
        }
        if parts.len() > MAX_RANGES {
            return Ranges::Ignore;
        }
    }
    if parts.is_empty() {
        Ranges::Unsatisfiable
    } else {
        Ranges::Satisfiable(parts)
    }
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A body of zero or more `Bytes` frames with an exact length.
struct Body {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl Body {
    fn empty() -> Self {
        Self::many(VecDeque::new())
    }

    fn one(bytes: Bytes) -> Self {
        Self::many(VecDeque::from([bytes]))
    }

    fn many(pieces: VecDeque<Bytes>) -> Self {
        let remaining = pieces.iter().map(|b| b.len() as u64).sum();
        Self { pieces, remaining }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.pieces.pop_front();
        if let Some(bytes) = &next {
            self.remaining -= bytes.len() as u64;
        }
        Poll::Ready(next.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110_section_14_1_2() {
        let ok = |v: Vec<Range<u64>>| Ranges::Satisfiable(v);
        let cases: &[(&str, Ranges)] = &[
            ("bytes=0-99", ok(vec![0..100])),
            ("bytes=900-", ok(vec![900..1000])),
            ("bytes=-100", ok(vec![900..1000])),
            ("bytes=-5000", ok(vec![0..1000])),
            ("bytes=990-2000", ok(vec![990..1000])),
            ("bytes=0-0, 10-19 ,-1", ok(vec![0..1, 10..20, 999..1000])),
            ("bytes=1000-", Ranges::Unsatisfiable),
            ("bytes=-0", Ranges::Unsatisfiable),
            ("bytes=5-4", Ranges::Ignore),
            ("bytes=a-b", Ranges::Ignore),
            ("items=0-1", Ranges::Ignore),
        ];
        for (value, expected) in cases {
            assert_eq!(&parse_ranges(value.as_bytes(), 1000), expected, "{value}");
        }
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(none_match_fails(b"\"a\"", b"\"a\""));
        assert!(none_match_fails(b"W/\"a\"", b"\"a\""));
        assert!(none_match_fails(b"\"b\", \"a\"", b"\"a\""));
        assert!(none_match_fails(b"*", b"\"a\""));
        assert!(!none_match_fails(b"\"b\"", b"\"a\""));
    }
}
