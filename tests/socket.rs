//! Real sockets: `MmapServe` behind a hyper server on 127.0.0.1:0, driven by hyper's client over HTTP/1.1 and
//! HTTP/2, and by curl where it is installed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mmap_serve::{DirResolver, MmapServe};
use tokio::net::TcpListener;

const LEN: usize = 3 << 20;

fn byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("weights.bin");
    std::fs::write(&path, (0..LEN).map(byte).collect::<Vec<_>>()).expect("write fixture");
    (dir, path)
}

/// Starts the service on an ephemeral loopback port; the server lives as long as the runtime.
async fn start(root: &Path) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = TowerToHyperService::new(MmapServe::new(DirResolver::new(root)));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn get(
    http2: bool,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    method: http::Method,
) -> (StatusCode, HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http::<Empty<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Parses a multipart/byteranges body and checks every part against the fixture; returns the part ranges.
fn check_multipart(content_type: &str, body: &[u8]) -> Vec<(usize, usize)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart content type");
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let at = find(rest, delimiter.as_bytes()).expect("delimiter");
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end_of_headers = find(rest, b"\r\n\r\n").expect("part headers");
        let head = std::str::from_utf8(&rest[..end_of_headers]).expect("ascii headers");
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: bytes "))
            .expect("Content-Range in part");
        let (span, total) = range.split_once('/').expect("total");
        assert_eq!(total.parse::<usize>().expect("len"), LEN);
        let (first, last) = span.split_once('-').expect("span");
        let (first, last): (usize, usize) =
            (first.parse().expect("first"), last.parse().expect("last"));
        let data = &rest[end_of_headers + 4..end_of_headers + 4 + (last - first + 1)];
        assert!(
            data.iter().enumerate().all(|(i, b)| *b == byte(first + i)),
            "part {first}-{last} bytes"
        );
        rest = &rest[end_of_headers + 4 + data.len()..];
        parts.push((first, last));
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn full_range_multi_and_304(http2: bool) {
    let (dir, _) = fixture();
    let addr = start(dir.path()).await;
    let (status, headers, body) = get(http2, addr, "/weights.bin", &[], http::Method::GET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), LEN.to_string());
    assert!(body.iter().enumerate().all(|(i, b)| *b == byte(i)));
    let etag = header(&headers, "etag").to_string();

    let (status, headers, body) = get(
        http2,
        addr,
        "/weights.bin",
        &[("range", "bytes=1000000-1000099")],
        http::Method::GET,
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 1000000-1000099/{LEN}")
    );
    assert_eq!(body.len(), 100);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == byte(1_000_000 + i))
    );

    let (status, headers, body) = get(
        http2,
        addr,
        "/weights.bin",
        &[("range", "bytes=0-99,200-299,-10")],
        http::Method::GET,
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&headers, "content-length"), body.len().to_string());
    let parts = check_multipart(header(&headers, "content-type"), &body);
    assert_eq!(parts, [(0, 99), (200, 299), (LEN - 10, LEN - 1)]);

    let (status, headers, body) = get(
        http2,
        addr,
        "/weights.bin",
        &[("if-none-match", &etag)],
        http::Method::GET,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(header(&headers, "etag"), etag);
    assert!(body.is_empty());

    let (status, headers, body) = get(http2, addr, "/weights.bin", &[], http::Method::HEAD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "content-length"),
        LEN.to_string(),
        "HEAD keeps the GET length"
    );
    assert!(body.is_empty());

    let (status, headers, _) = get(
        http2,
        addr,
        "/weights.bin",
        &[("range", "bytes=99999999-")],
        http::Method::GET,
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&headers, "content-range"), format!("bytes */{LEN}"));

    let (status, _, _) = get(http2, addr, "/missing.bin", &[], http::Method::GET).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn http1_full_range_multipart_and_304() {
    full_range_multi_and_304(false).await;
}

#[tokio::test]
async fn http2_full_range_multipart_and_304() {
    full_range_multi_and_304(true).await;
}

#[tokio::test]
async fn curl_multi_range_is_parsed_and_verified() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: curl is not installed (CI installs it)");
        return;
    }
    let (dir, _) = fixture();
    let addr = start(dir.path()).await;
    let url = format!("http://{addr}/weights.bin");
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-D", "-", "-r", "0-99,200-299", &url])
        .output()
        .await
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    let split = find(&out.stdout, b"\r\n\r\n").expect("headers end");
    let head = std::str::from_utf8(&out.stdout[..split]).expect("ascii");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .expect("content-type");
    let body = &out.stdout[split + 4..];
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .parse()
        .expect("number");
    assert_eq!(body.len(), length);
    assert_eq!(check_multipart(content_type, body), [(0, 99), (200, 299)]);

    // A single range through curl: exactly the bytes asked for.
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-f", "-r", "4096-8191", &url])
        .output()
        .await
        .expect("run curl");
    assert_eq!(out.stdout.len(), 4096);
    assert!(
        out.stdout
            .iter()
            .enumerate()
            .all(|(i, b)| *b == byte(4096 + i))
    );
}
