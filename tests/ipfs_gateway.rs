//! The `ipfs_gateway` example's trustless gateway on 127.0.0.1:0, over HTTP/1.1 and HTTP/2, driven by hyper's
//! client and by curl: verified raw blocks, a tampered one, the identity probe and `only-if-cached`.

mod common;
#[path = "../examples/ipfs_gateway.rs"]
mod ipfs_gateway;

use std::path::Path;

use common::net::{check_multipart, fetch, have};
use http::Method;

/// A block longer than a body frame (1 MiB) and than the small-file threshold, so that it is mapped.
const LEN: usize = (3 << 20) + 17;

async fn start(store: &Path, verify: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let store = store.to_path_buf();
    tokio::spawn(async move { ipfs_gateway::run(listener, &store, verify).await });
    url
}

#[tokio::test]
async fn a_verified_raw_block_over_http1_and_http2() {
    let store = tempfile::tempdir().expect("store");
    for code in [ipfs_gateway::SHA2_256, ipfs_gateway::BLAKE3] {
        let cid = ipfs_gateway::make_block(store.path(), LEN as u64, code, false).expect("block");
        let url = start(store.path(), true).await;
        let block = format!("{url}/ipfs/{cid}?format=raw");
        for http2 in [false, true] {
            let got = fetch(http2, Method::GET, &block, &[]).await;
            assert_eq!(got.status, 200, "{code:#x} http2={http2}");
            assert!(got.body[..] == common::pattern(0..LEN as u64)[..]);
            assert_eq!(got.header("content-type"), "application/vnd.ipld.raw");
            assert_eq!(got.header("etag"), format!("\"{cid}.raw\""));
            assert_eq!(got.header("x-ipfs-roots"), cid);
            assert_eq!(got.header("x-content-type-options"), "nosniff");
            assert_eq!(
                got.header("content-disposition"),
                format!("attachment; filename=\"{cid}.bin\"")
            );
            let range = fetch(http2, Method::GET, &block, &[("range", "bytes=-100")]).await;
            assert_eq!(range.status, 206);
            assert!(range.body[..] == common::pattern(LEN as u64 - 100..LEN as u64)[..]);
            let multi = [("range", "bytes=0-99,2000000-2000099")];
            let parts = fetch(http2, Method::GET, &block, &multi).await;
            assert_eq!(parts.status, 206);
            let ranges = check_multipart(parts.header("content-type"), &parts.body, LEN);
            assert_eq!(ranges, [(0, 99), (2_000_000, 2_000_099)]);
            let etag = format!("\"{cid}.raw\"");
            let again = fetch(http2, Method::GET, &block, &[("if-none-match", &etag)]).await;
            assert_eq!(again.status, 304);
        }
    }
}

#[tokio::test]
async fn a_tampered_block_is_500_with_no_byte_of_it_over_the_wire() {
    let store = tempfile::tempdir().expect("store");
    let cid = ipfs_gateway::make_block(store.path(), LEN as u64, ipfs_gateway::SHA2_256, true)
        .expect("block");
    let url = start(store.path(), true).await;
    let block = format!("{url}/ipfs/{cid}?format=raw");
    for http2 in [false, true] {
        for range in [None, Some("bytes=0-99")] {
            let headers: Vec<_> = range.map(|r| ("range", r)).into_iter().collect();
            let got = fetch(http2, Method::GET, &block, &headers).await;
            assert_eq!(got.status, 500, "http2={http2} {range:?}");
            assert_eq!(&got.body[..], b"block does not match its CID\n");
            assert_eq!(got.header("cache-control"), "no-store");
        }
    }
    // The same block from a gateway that does not verify: served as stored.
    let trusting = start(store.path(), false).await;
    let got = fetch(false, Method::GET, &format!("{trusting}/ipfs/{cid}"), &[]).await;
    assert_eq!((got.status, got.body.len()), (http::StatusCode::OK, LEN));
}

#[tokio::test]
async fn the_identity_probe_and_only_if_cached() {
    let store = tempfile::tempdir().expect("store");
    let cid =
        ipfs_gateway::make_block(store.path(), 4096, ipfs_gateway::BLAKE3, false).expect("block");
    // The CID of the same bytes under sha2-256 names no block of this store (made elsewhere).
    let elsewhere = tempfile::tempdir().expect("another store");
    let other = ipfs_gateway::make_block(elsewhere.path(), 4096, ipfs_gateway::SHA2_256, false)
        .expect("block");
    let url = start(store.path(), true).await;
    for method in [Method::GET, Method::HEAD] {
        let accept = [("accept", "application/vnd.ipld.raw")];
        let probe = fetch(
            false,
            method.clone(),
            &format!("{url}/ipfs/bafkqaaa"),
            &accept,
        )
        .await;
        assert_eq!(probe.status, 200, "{method}");
        assert!(probe.body.is_empty());
        assert_eq!(probe.header("content-type"), "application/vnd.ipld.raw");
        let only = [("cache-control", "only-if-cached")];
        let here = fetch(false, method.clone(), &format!("{url}/ipfs/{cid}"), &only).await;
        assert_eq!(here.status, 200, "{method}");
        let absent = fetch(false, method.clone(), &format!("{url}/ipfs/{other}"), &only).await;
        assert_eq!(absent.status, 412, "{method}");
    }
}

#[tokio::test]
async fn curl_downloads_the_block_it_asked_for_by_accept() {
    if !have("curl") {
        eprintln!("skipped: no curl");
        return;
    }
    let store = tempfile::tempdir().expect("store");
    let cid = ipfs_gateway::make_block(store.path(), LEN as u64, ipfs_gateway::SHA2_256, false)
        .expect("block");
    let url = start(store.path(), true).await;
    let out = store.path().join("downloaded.bin");
    let status = tokio::process::Command::new("curl")
        .args(["-s", "-f", "-H", "Accept: application/vnd.ipld.raw", "-o"])
        .arg(&out)
        .arg("-w")
        .arg("%{content_type}")
        .arg(format!("{url}/ipfs/{cid}"))
        .output()
        .await
        .expect("run curl");
    assert!(status.status.success(), "{status:?}");
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "application/vnd.ipld.raw"
    );
    let body = std::fs::read(&out).expect("downloaded");
    assert!(body[..] == common::pattern(0..LEN as u64)[..]);
}
