//! The trustless gateway through the service: verified blocks, formats, identity CIDs, `only-if-cached`.

use std::path::Path;

use ::cid::Cid as Cid64;
use ::cid::multihash::Multihash;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use multihash_codetable::{Code, MultihashDigest};
use tower::ServiceExt;

use super::super::CidResolver;
use crate::{MmapBody, MmapServe};

const RAW_CODEC: u64 = 0x55;

/// Writes `content` into `store` as a raw block hashed with `code`; returns the block's CID.
fn block(store: &Path, content: &[u8], code: Code) -> String {
    let cid = Cid64::new_v1(RAW_CODEC, code.digest(content)).to_string();
    std::fs::write(store.join(&cid), content).expect("write the block");
    cid
}

/// A block whose byte `at` was flipped after its CID was computed: its CID and what the store holds.
fn tampered(store: &Path, len: usize, at: usize) -> (String, Vec<u8>) {
    let mut data = content(len);
    let cid = block(store, &data, Code::Sha2_256);
    data[at] ^= 0xff;
    std::fs::write(store.join(&cid), &data).expect("tamper");
    (cid, data)
}

fn content(len: usize) -> Vec<u8> {
    crate::testing::pattern(len)
}

/// Request fields of a test case.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// What came back: status, fields and every byte of the body.
struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ascii"))
    }
}

async fn send(
    serve: &MmapServe<CidResolver>,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response: Response<MmapBody> = serve
        .clone()
        .oneshot(request.body(()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.to_vec(),
    }
}

async fn get(serve: &MmapServe<CidResolver>, uri: &str, headers: &[(&str, &str)]) -> Got {
    send(serve, Method::GET, uri, headers).await
}

#[tokio::test]
async fn verified_blocks_are_served_for_sha2_256_blake3_and_others() {
    let store = tempfile::tempdir().expect("store");
    let data = content(300_000);
    for code in [
        Code::Sha2_256,
        Code::Blake3_256,
        Code::Sha2_512,
        Code::Sha3_256,
    ] {
        let cid = block(store.path(), &data, code);
        let serve = MmapServe::new(CidResolver::new(store.path()));
        let got = get(&serve, &format!("/ipfs/{cid}"), &[]).await;
        assert_eq!(got.status, 200, "{code:?}");
        assert!(got.body == data, "{code:?}");
        // A hit on the verified mapping.
        let again = get(&serve, &format!("/ipfs/{cid}"), &[("range", "bytes=10-19")]).await;
        assert_eq!(
            (again.status, &again.body[..]),
            (206, &data[10..20]),
            "{code:?}"
        );
    }
}

#[tokio::test]
async fn a_tampered_block_is_500_and_no_byte_of_it_is_served() {
    let store = tempfile::tempdir().expect("store");
    let (cid, _) = tampered(store.path(), 200_000, 150_000);
    let serve = MmapServe::new(CidResolver::new(store.path()));
    let uri = format!("/ipfs/{cid}");
    let raw = format!("/ipfs/{cid}?format=raw");
    let cases: [(Method, &str, Fields); 6] = [
        (Method::GET, &uri, &[]),
        (Method::GET, &uri, &[("range", "bytes=0-99")]), // untouched by the flip
        (Method::GET, &uri, &[("range", "bytes=0-9,100-199")]),
        (Method::HEAD, &uri, &[]),
        (Method::GET, &uri, &[("if-none-match", "\"x\"")]),
        (Method::GET, &raw, &[]),
    ];
    // The second round answers from the verdict kept with the mapping.
    for _round in 0..2 {
        for (method, uri, headers) in &cases {
            let got = send(&serve, method.clone(), uri, headers).await;
            assert_eq!(got.status, 500, "{method} {uri} {headers:?}");
            assert_eq!(got.header("cache-control"), Some("no-store"));
            assert!(got.header("etag").is_none());
            assert!(got.header("content-range").is_none());
            if *method == Method::GET {
                assert_eq!(got.body, b"block does not match its CID\n");
            }
        }
    }
}

#[tokio::test]
async fn a_repaired_block_is_served_once_replaced() {
    let store = tempfile::tempdir().expect("store");
    let (cid, _) = tampered(store.path(), 50_000, 10);
    let serve = MmapServe::new(CidResolver::new(store.path()));
    let uri = format!("/ipfs/{cid}");
    assert_eq!(get(&serve, &uri, &[]).await.status, 500);
    let good = content(50_000);
    let fresh = store.path().join("repair.tmp");
    std::fs::write(&fresh, &good).expect("write");
    std::fs::rename(&fresh, store.path().join(&cid)).expect("rename over");
    let got = get(&serve, &uri, &[]).await;
    assert_eq!((got.status, got.body == good), (200, true));
}

#[tokio::test]
async fn verification_off_serves_the_block_as_stored() {
    let store = tempfile::tempdir().expect("store");
    let (cid, data) = tampered(store.path(), 20_000, 5);
    let serve = MmapServe::new(CidResolver::new(store.path()).verify(false));
    let got = get(&serve, &format!("/ipfs/{cid}"), &[]).await;
    assert_eq!((got.status, got.body == data), (200, true));
}

#[tokio::test]
async fn identity_cids_are_answered_from_the_cid_without_the_store() {
    // No store at all: touching it would be a 404.
    let serve = MmapServe::new(CidResolver::new("/nonexistent/mmap-serve-store"));
    for query in ["", "?format=raw"] {
        let uri = format!("/ipfs/bafkqaaa{query}");
        let got = get(&serve, &uri, &[]).await;
        assert_eq!(got.status, 200, "{query}");
        assert!(got.body.is_empty());
        assert_eq!(got.header("content-length"), Some("0"));
        assert_eq!(send(&serve, Method::HEAD, &uri, &[]).await.status, 200);
    }
    let hello = Multihash::wrap(0x00, b"hello world").expect("fits");
    let inline = Cid64::new_v1(RAW_CODEC, hello).to_string();
    let got = get(&serve, &format!("/ipfs/{inline}?format=raw"), &[]).await;
    assert_eq!((got.status, &got.body[..]), (200, &b"hello world"[..]));
    assert_eq!(got.header("content-type"), Some("application/vnd.ipld.raw"));
    let etag = format!("\"{inline}.raw\"");
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    assert_eq!(
        got.header("cache-control"),
        Some("public, max-age=29030400, immutable")
    );
    assert!(got.header("last-modified").is_none());
    let range = get(&serve, &format!("/ipfs/{inline}"), &[("range", "bytes=6-")]).await;
    assert_eq!((range.status, &range.body[..]), (206, &b"world"[..]));
    let only = [("cache-control", "only-if-cached")];
    let cached = send(&serve, Method::HEAD, &format!("/ipfs/{inline}"), &only).await;
    assert_eq!(cached.status, 200, "an identity block is always here");
    let raw = format!("/ipfs/{inline}?format=raw");
    let not_modified = get(&serve, &raw, &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
}

#[tokio::test]
async fn a_raw_block_has_the_trustless_gateway_headers() {
    let store = tempfile::tempdir().expect("store");
    let data = content(10_000);
    let cid = block(store.path(), &data, Code::Sha2_256);
    let serve = MmapServe::new(CidResolver::new(store.path()));
    let got = get(&serve, &format!("/ipfs/{cid}?format=raw"), &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.body == data);
    let expect = [
        ("content-type", "application/vnd.ipld.raw".to_owned()),
        (
            "content-disposition",
            format!("attachment; filename=\"{cid}.bin\""),
        ),
        ("x-content-type-options", "nosniff".to_owned()),
        ("etag", format!("\"{cid}.raw\"")),
        ("x-ipfs-path", format!("/ipfs/{cid}")),
        ("x-ipfs-roots", cid.clone()),
        ("vary", "Accept".to_owned()),
        (
            "cache-control",
            "public, max-age=29030400, immutable".to_owned(),
        ),
        ("content-length", "10000".to_owned()),
        ("accept-ranges", "bytes".to_owned()),
    ];
    for (name, value) in &expect {
        assert_eq!(got.header(name), Some(value.as_str()), "{name}");
    }
    assert!(
        got.header("content-location").is_none(),
        "format was in the URL"
    );
    let named = format!("/ipfs/{cid}?format=raw&filename=w%C3%A9ights.bin");
    assert_eq!(
        get(&serve, &named, &[]).await.header("content-disposition"),
        Some("attachment; filename=\"w_ights.bin\"; filename*=UTF-8''w%C3%A9ights.bin")
    );
    // The plain bytes: the configured type, the CID's own ETag, no nosniff or attachment.
    let plain = get(&serve, &format!("/ipfs/{cid}"), &[]).await;
    assert_eq!(
        plain.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(plain.header("etag"), Some(format!("\"{cid}\"").as_str()));
    assert_eq!(plain.header("vary"), Some("Accept"));
    assert_eq!(plain.header("x-ipfs-roots"), Some(cid.as_str()));
    assert!(plain.header("content-disposition").is_none());
    assert!(plain.header("x-content-type-options").is_none());
    let download = get(&serve, &format!("/ipfs/{cid}?download=true"), &[]).await;
    assert_eq!(download.header("content-disposition"), Some("attachment"));
    let inline = get(&serve, &format!("/ipfs/{cid}?filename=a.txt"), &[]).await;
    assert_eq!(
        inline.header("content-disposition"),
        Some("inline; filename=\"a.txt\"")
    );
}

#[tokio::test]
async fn accept_chooses_raw_and_the_query_wins() {
    let store = tempfile::tempdir().expect("store");
    let cid = block(store.path(), &content(1000), Code::Blake3_256);
    let serve = MmapServe::new(CidResolver::new(store.path()));
    let uri = format!("/ipfs/{cid}");
    let raw = [("accept", "application/vnd.ipld.raw")];
    let car = [("accept", "application/vnd.ipld.car")];
    let by_accept = get(&serve, &uri, &raw).await;
    assert_eq!(by_accept.status, 200);
    assert_eq!(
        by_accept.header("content-type"),
        Some("application/vnd.ipld.raw")
    );
    assert_eq!(
        by_accept.header("content-location"),
        Some(format!("{uri}?format=raw").as_str())
    );
    let with_query = get(&serve, &format!("{uri}?filename=x.bin"), &raw).await;
    assert_eq!(
        with_query.header("content-location"),
        Some(format!("{uri}?filename=x.bin&format=raw").as_str())
    );
    // The query wins over Accept, both ways.
    let asked_car = get(&serve, &format!("{uri}?format=car"), &raw).await;
    assert_eq!(asked_car.status, 406);
    assert!(String::from_utf8_lossy(&asked_car.body).contains("format=raw"));
    let asked_raw = get(&serve, &format!("{uri}?format=raw"), &car).await;
    assert_eq!(
        asked_raw.header("content-type"),
        Some("application/vnd.ipld.raw")
    );
    assert_eq!(get(&serve, &uri, &car).await.status, 406);
    assert_eq!(
        get(&serve, &format!("{uri}?format=zip"), &[]).await.status,
        400
    );
    let browser = get(&serve, &uri, &[("accept", "text/html,*/*;q=0.8")]).await;
    assert_eq!(
        browser.header("content-type"),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn only_if_cached_is_412_when_missing_and_200_when_present() {
    let store = tempfile::tempdir().expect("store");
    let cid = block(store.path(), &content(4096), Code::Sha2_256);
    let missing = Cid64::new_v1(RAW_CODEC, Code::Sha2_256.digest(b"not stored")).to_string();
    let serve = MmapServe::new(CidResolver::new(store.path()));
    let only = [("cache-control", "only-if-cached")];
    for method in [Method::GET, Method::HEAD] {
        let absent = format!("/ipfs/{missing}?format=raw");
        assert_eq!(
            send(&serve, method.clone(), &absent, &only).await.status,
            412
        );
        let present = format!("/ipfs/{cid}?format=raw");
        let got = send(&serve, method.clone(), &present, &only).await;
        assert_eq!(got.status, 200, "{method}");
        assert_eq!(got.header("content-length"), Some("4096"));
    }
    // Without only-if-cached a missing block is 404 (trustless-gateway "404 Not Found").
    let plain_miss = get(&serve, &format!("/ipfs/{missing}"), &[]).await;
    assert_eq!(plain_miss.status, 404);
}

#[tokio::test]
async fn an_only_if_cached_head_probes_presence_without_hashing() {
    let store = tempfile::tempdir().expect("store");
    let (cid, _) = tampered(store.path(), 8192, 1);
    let serve = MmapServe::new(CidResolver::new(store.path()));
    let uri = format!("/ipfs/{cid}?format=raw");
    let only = [("cache-control", "only-if-cached")];
    let probe = send(&serve, Method::HEAD, &uri, &only).await;
    assert_eq!(probe.status, 200, "present, and not hashed");
    // Whatever sends bytes, or would answer as a GET does, hashes it first.
    assert_eq!(get(&serve, &uri, &only).await.status, 500);
    assert_eq!(send(&serve, Method::HEAD, &uri, &[]).await.status, 500);
}

#[tokio::test]
async fn head_ranges_multipart_and_304_by_the_raw_etag() {
    let store = tempfile::tempdir().expect("store");
    let data = content(100_000);
    let cid = block(store.path(), &data, Code::Sha2_256);
    let serve = MmapServe::new(CidResolver::new(store.path()));
    let uri = format!("/ipfs/{cid}?format=raw");
    let raw_etag = format!("\"{cid}.raw\"");
    let head = send(&serve, Method::HEAD, &uri, &[]).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("100000"));
    assert_eq!(head.header("etag"), Some(raw_etag.as_str()));
    let single = get(&serve, &uri, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(single.status, 206);
    assert!(single.body == data[1000..2000]);
    assert_eq!(
        single.header("content-range"),
        Some("bytes 1000-1999/100000")
    );
    assert_eq!(single.header("x-ipfs-roots"), Some(cid.as_str()));
    let multi = get(&serve, &uri, &[("range", "bytes=0-9,50000-50009")]).await;
    assert_eq!(multi.status, 206);
    let framing = multi.header("content-type").expect("a type");
    assert!(framing.starts_with("multipart/byteranges; boundary="));
    let body = String::from_utf8_lossy(&multi.body);
    assert!(
        body.contains("Content-Type: application/vnd.ipld.raw"),
        "{body}"
    );
    assert!(
        body.contains("Content-Range: bytes 50000-50009/100000"),
        "{body}"
    );
    let not_modified = get(&serve, &uri, &[("if-none-match", &raw_etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some(raw_etag.as_str()));
    assert_eq!(not_modified.header("vary"), Some("Accept"));
    // The plain bytes' tag names another representation.
    let plain_etag = format!("\"{cid}\"");
    let other = get(&serve, &uri, &[("if-none-match", &plain_etag)]).await;
    assert_eq!(other.status, 200);
    let plain = format!("/ipfs/{cid}");
    let plain_304 = get(&serve, &plain, &[("if-none-match", &plain_etag)]).await;
    assert_eq!(plain_304.status, 304);
}

#[tokio::test]
async fn a_trustless_only_gateway_refuses_plain_requests_and_serves_raw_blocks() {
    let store = tempfile::tempdir().expect("store");
    let data = content(5_000);
    let cid = block(store.path(), &data, Code::Sha2_256);
    let serve = MmapServe::new(CidResolver::new(store.path()).trustless_only(true));
    let uri = format!("/ipfs/{cid}");
    let plain = get(&serve, &uri, &[]).await;
    assert_eq!(plain.status, 400);
    assert!(
        String::from_utf8_lossy(&plain.body).contains("format=raw"),
        "the reason says how to ask"
    );
    let identity = get(&serve, "/ipfs/bafkqaaa", &[]).await;
    assert_eq!(identity.status, 400, "identity CIDs obey it too");
    let raw = get(&serve, &format!("{uri}?format=raw"), &[]).await;
    assert_eq!((raw.status, raw.body == data), (200, true));
    assert_eq!(raw.header("content-type"), Some("application/vnd.ipld.raw"));
    let by_accept = get(&serve, &uri, &[("accept", "application/vnd.ipld.raw")]).await;
    assert_eq!((by_accept.status, by_accept.body == data), (200, true));
    let head = send(&serve, Method::HEAD, &format!("{uri}?format=raw"), &[]).await;
    assert_eq!(head.status, 200);
    // By default a plain request keeps getting the block's bytes.
    let default = MmapServe::new(CidResolver::new(store.path()));
    let plain = get(&default, &uri, &[]).await;
    assert_eq!((plain.status, plain.body == data), (200, true));
}
