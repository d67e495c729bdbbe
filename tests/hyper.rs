//! hyper 1 + hyper-util: the `hyper_server` example's server on 127.0.0.1:0, over HTTP/1.1 and HTTP/2, driven by
//! hyper's client and by curl.

mod common;
#[path = "../examples/hyper_server.rs"]
mod hyper_server;

use common::find;
use common::net::{check_full_range_multi_304, check_multipart, fetch, have, pattern_file};
use http::Method;

const LEN: usize = 3 << 20;

async fn start(root: &std::path::Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let root = root.to_path_buf();
    tokio::spawn(async move { hyper_server::run(listener, &root).await });
    url
}

#[tokio::test]
async fn http1_full_range_multipart_and_304() {
    let dir = tempfile::tempdir().expect("temp dir");
    pattern_file(dir.path(), "weights.bin", LEN);
    let url = start(dir.path()).await;
    check_full_range_multi_304(false, &format!("{url}/weights.bin"), LEN).await;
}

#[tokio::test]
async fn http2_full_range_multipart_and_304() {
    let dir = tempfile::tempdir().expect("temp dir");
    pattern_file(dir.path(), "weights.bin", LEN);
    let url = start(dir.path()).await;
    check_full_range_multi_304(true, &format!("{url}/weights.bin"), LEN).await;
}

#[tokio::test]
async fn head_keeps_the_length_and_errors_are_answered_over_the_wire() {
    let dir = tempfile::tempdir().expect("temp dir");
    pattern_file(dir.path(), "weights.bin", LEN);
    let url = start(dir.path()).await;
    for http2 in [false, true] {
        let head = fetch(http2, Method::HEAD, &format!("{url}/weights.bin"), &[]).await;
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), LEN.to_string());
        assert!(head.body.is_empty());
        let past = fetch(
            http2,
            Method::GET,
            &format!("{url}/weights.bin"),
            &[("range", "bytes=99999999-")],
        )
        .await;
        assert_eq!(past.status, 416);
        assert_eq!(past.header("content-range"), format!("bytes */{LEN}"));
        assert_eq!(
            fetch(http2, Method::GET, &format!("{url}/missing"), &[])
                .await
                .status,
            404
        );
        let post = fetch(http2, Method::POST, &format!("{url}/weights.bin"), &[]).await;
        assert_eq!(
            (post.status.as_u16(), post.header("allow")),
            (405, "GET, HEAD")
        );
    }
}

#[tokio::test]
async fn curl_single_and_multi_range() {
    if !have("curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    pattern_file(dir.path(), "weights.bin", LEN);
    let url = format!("{}/weights.bin", start(dir.path()).await);
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-D", "-", "-r", "0-99,200-299", &url])
        .output()
        .await
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    let split = find(&out.stdout, b"\r\n\r\n").expect("headers end");
    let head = std::str::from_utf8(&out.stdout[..split]).expect("ascii");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name))
            .expect(name)
            .to_string()
    };
    let body = &out.stdout[split + 4..];
    assert_eq!(
        body.len(),
        field("content-length: ").parse::<usize>().expect("length")
    );
    assert_eq!(
        check_multipart(&field("content-type: "), body, LEN),
        [(0, 99), (200, 299)]
    );

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
            .all(|(i, b)| *b == common::byte_at(4096 + i as u64))
    );
}
