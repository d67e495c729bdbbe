//! Helpers for the socket tests: fixture files, a hyper client, and the checks every framework integration
//! must pass over a real connection.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Writes `dir/name` with `len` fixture bytes and returns its path.
pub fn pattern_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create fixture dir");
    }
    std::fs::write(&path, super::pattern(0..len as u64)).expect("write fixture");
    path
}

/// A response, read whole.
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Fetched {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends one request with hyper's client (HTTP/2 prior knowledge when `http2`).
pub async fn fetch(http2: bool, method: Method, url: &str, headers: &[(&str, &str)]) -> Fetched {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http::<Empty<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Fetched {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Parses a multipart/byteranges body (with the strict parser of `common`), checks every part's bytes
/// against the fixture pattern and its complete length against `len`; returns the parts as inclusive
/// `(first, last)`.
pub fn check_multipart(content_type: &str, body: &[u8], len: usize) -> Vec<(usize, usize)> {
    super::parse_byteranges(body, &super::boundary_of(content_type))
        .into_iter()
        .map(|part| {
            assert_eq!(part.complete_length, len as u64);
            assert!(
                part.data[..] == super::pattern(part.range.clone())[..],
                "{:?}",
                part.range
            );
            (part.range.start as usize, part.range.end as usize - 1)
        })
        .collect()
}

/// What every integration must do through its framework: a full GET, a Range, a multi-range and a 304,
/// against a fixture file of `len` bytes at `url`.
pub async fn check_full_range_multi_304(http2: bool, url: &str, len: usize) {
    let full = fetch(http2, Method::GET, url, &[]).await;
    assert_eq!(full.status, StatusCode::OK, "{url}");
    assert_eq!(full.header("content-length"), len.to_string());
    assert_eq!(full.body.len(), len);
    assert!(
        full.body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == super::byte_at(i as u64))
    );
    let etag = full.header("etag").to_string();
    assert!(etag.starts_with('"'), "strong ETag: {etag}");

    let one = fetch(http2, Method::GET, url, &[("range", "bytes=1000-1099")]).await;
    assert_eq!(one.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        one.header("content-range"),
        format!("bytes 1000-1099/{len}")
    );
    assert!(
        one.body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == super::byte_at(1000 + i as u64))
    );
    assert_eq!(one.body.len(), 100);

    let multi = fetch(
        http2,
        Method::GET,
        url,
        &[("range", "bytes=0-99,200-299,-10")],
    )
    .await;
    assert_eq!(multi.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(multi.header("content-length"), multi.body.len().to_string());
    let parts = check_multipart(multi.header("content-type"), &multi.body, len);
    assert_eq!(parts, [(0, 99), (200, 299), (len - 10, len - 1)]);

    let cached = fetch(http2, Method::GET, url, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert_eq!(cached.header("etag"), etag);
    assert!(cached.body.is_empty());
}

/// The anonymous resident memory (`RssAnon`, KiB) of process `pid`, as `/proc/PID/status` gives it.
pub fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon")
}

/// Whether an external program runs here; prints why a test is skipped when it does not.
pub fn have(program: &str) -> bool {
    let ok = std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: {program} is not installed (CI installs it)");
    }
    ok
}

/// The `serve` example, running on an ephemeral port until dropped.
pub struct Serve {
    pub child: Child,
    pub url: String,
    /// Kept open: the banner's later lines must not meet a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Serve {
    pub fn start(root: &Path) -> Self {
        Self::start_with(root, &[])
    }

    /// As [`start`](Self::start), with more flags (`--header-timeout 1`, say).
    pub fn start_with(root: &Path, flags: &[&str]) -> Self {
        // Examples are built next to the test binaries: target/<profile>/examples/serve.
        let exe = std::env::current_exe().expect("test binary path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("examples/serve");
        assert!(
            bin.exists(),
            "{} missing: `cargo test` builds the examples",
            bin.display()
        );
        let mut child = Command::new(bin)
            .args([
                "--root",
                root.to_str().expect("utf-8 temp path"),
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "2",
            ])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut first).expect("banner");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("URL in the banner")
            .trim_end_matches('/')
            .to_string();
        Self {
            child,
            url,
            _stdout: stdout,
        }
    }
}

impl Serve {
    /// The banner's lines after the first, up to its last ("Ctrl-C to stop.").
    pub fn rest_of_banner(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self._stdout.read_line(&mut line).expect("banner");
            if n == 0 || line.starts_with("Ctrl-C") {
                return lines;
            }
            lines.push(line.trim_end().to_string());
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
