//! The `mmap_tensor_server` example (the original guide's app) on 127.0.0.1:0.

mod common;
#[path = "../examples/mmap_tensor_server.rs"]
mod mmap_tensor_server;

use std::sync::Arc;

use common::net::fetch;
use http::Method;
use mmap_serve::MmapCache;
use mmap_tensor_server::{AppState, DEMO_CID, app, create_demo_storage, demo_bytes};

async fn start() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    create_demo_storage(dir.path()).expect("storage");
    let state = AppState {
        mmap_cache: Arc::new(MmapCache::new(100)),
        storage_path: dir.path().to_path_buf(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    (dir, url)
}

#[tokio::test]
async fn tensors_whole_ranged_and_by_query() {
    let (_dir, url) = start().await;
    let expected = demo_bytes(4 << 20, 1, 0);
    let full = fetch(false, Method::GET, &format!("{url}/tensor/example1"), &[]).await;
    assert_eq!(
        (full.status.as_u16(), full.header("x-served-by")),
        (200, "mmap")
    );
    assert_eq!(&full.body[..], &expected[..]);

    let header_range = fetch(
        false,
        Method::GET,
        &format!("{url}/tensor/example1"),
        &[("range", "bytes=10-19")],
    )
    .await;
    assert_eq!(header_range.status, 206);
    assert_eq!(&header_range.body[..], &expected[10..20]);

    let query = fetch(
        false,
        Method::GET,
        &format!("{url}/tensor/example1?start=100&end=200"),
        &[],
    )
    .await;
    assert_eq!(query.status, 206);
    assert_eq!(
        query.header("content-range"),
        format!("bytes 100-199/{}", 4 << 20)
    );
    assert_eq!(&query.body[..], &expected[100..200]);
    assert_eq!(query.header("x-served-by"), "mmap");

    let past = fetch(
        false,
        Method::GET,
        &format!("{url}/tensor/example1?start=0&end=99999999"),
        &[],
    )
    .await;
    assert_eq!(past.status, 416);
    let reversed = fetch(
        false,
        Method::GET,
        &format!("{url}/tensor/example1?start=9&end=1"),
        &[],
    )
    .await;
    assert_eq!(reversed.status, 400);
    let bad_name = fetch(
        false,
        Method::GET,
        &format!("{url}/tensor/..%2fsecret"),
        &[],
    )
    .await;
    assert_eq!(bad_name.status, 400);
    assert_eq!(
        fetch(false, Method::GET, &format!("{url}/tensor/nope"), &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn ipfs_by_cid_and_cache_stats() {
    let (_dir, url) = start().await;
    let block = fetch(false, Method::GET, &format!("{url}/ipfs/{DEMO_CID}"), &[]).await;
    assert_eq!(block.status, 200);
    assert_eq!(block.header("etag"), format!("\"{DEMO_CID}\""));
    assert_eq!(
        block.header("cache-control"),
        "public, max-age=29030400, immutable"
    );
    assert_eq!(&block.body[..], &demo_bytes(1 << 20, 7, 3)[..]);
    assert_eq!(
        fetch(false, Method::GET, &format!("{url}/ipfs/not-a-cid"), &[])
            .await
            .status,
        400
    );

    let again = fetch(false, Method::GET, &format!("{url}/ipfs/{DEMO_CID}"), &[]).await;
    assert_eq!(again.status, 200);
    let stats = fetch(false, Method::GET, &format!("{url}/cache/stats"), &[]).await;
    assert_eq!(stats.header("content-type"), "application/json");
    let text = String::from_utf8(stats.body.to_vec()).expect("utf-8");
    for key in [
        "\"entries\":1",
        "\"mapped_bytes\":1048576",
        "\"hits\":1",
        "\"misses\":1",
        "\"evictions\":0",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
}

#[tokio::test]
async fn the_demo_checkpoint_s_tensors_header_and_file() {
    let (dir, url) = start().await;
    let file = std::fs::read(dir.path().join("models/demo.safetensors")).expect("the checkpoint");
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    let data = 8 + n;
    let header = fetch(
        false,
        Method::GET,
        &format!("{url}/models/demo.safetensors/header"),
        &[],
    )
    .await;
    assert_eq!(header.status, 200);
    assert_eq!(header.header("content-type"), "application/json");
    assert_eq!(&header.body[..], &file[8..data]);
    let json: serde_json::Value = serde_json::from_slice(&header.body).expect("JSON");

    for (name, dtype, shape, bytes) in mmap_tensor_server::demo_tensors() {
        let encoded = name.replace('/', "%2F");
        let tensor = fetch(
            false,
            Method::GET,
            &format!("{url}/models/demo.safetensors/tensors/{encoded}"),
            &[],
        )
        .await;
        assert_eq!(tensor.status, 200, "{name}");
        assert_eq!(&tensor.body[..], &bytes[..], "{name}");
        assert_eq!(tensor.header("x-tensor-dtype"), dtype.to_string());
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        assert_eq!(tensor.header("x-tensor-shape"), dims.join(","));
        assert_eq!(tensor.header("x-served-by"), "mmap");
        // The file holds them at the header's offsets.
        let offsets = &json[name]["data_offsets"];
        let begin = data + offsets[0].as_u64().expect("begin") as usize;
        let end = data + offsets[1].as_u64().expect("end") as usize;
        assert_eq!(&file[begin..end], &bytes[..], "{name}");
    }
    let ranged = fetch(
        false,
        Method::GET,
        &format!("{url}/models/demo.safetensors/tensors/positions"),
        &[("range", "bytes=8-15")],
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.header("content-range"), "bytes 8-15/1024");
    assert_eq!(&ranged.body[..], &(-63i64).to_le_bytes());
    let whole = fetch(
        false,
        Method::GET,
        &format!("{url}/models/demo.safetensors"),
        &[],
    )
    .await;
    assert_eq!((whole.status.as_u16(), whole.body.len()), (200, file.len()));
    let unknown = fetch(
        false,
        Method::GET,
        &format!("{url}/models/demo.safetensors/tensors/nope"),
        &[],
    )
    .await;
    assert_eq!(unknown.status, 404);
}
