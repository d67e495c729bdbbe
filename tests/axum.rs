//! axum 0.8: the `axum_router` example's router on 127.0.0.1:0 — nest_service, route_service, fallback_service
//! and the layer in front of handlers — and the guide's handler style with `IntoResponse for MmapError`.

#[path = "../examples/axum_router.rs"]
mod axum_router;
mod common;

use common::net::{check_full_range_multi_304, fetch};
use http::Method;

async fn start() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    axum_router::demo_root(dir.path()).expect("demo root");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum_router::app(dir.path());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (dir, url)
}

#[tokio::test]
async fn nest_service_and_route_service_serve_files() {
    let (_dir, url) = start().await;
    check_full_range_multi_304(false, &format!("{url}/files/weights.bin"), 4 << 20).await;
    check_full_range_multi_304(true, &format!("{url}/weights"), 4 << 20).await;
}

#[tokio::test]
async fn fallback_service_serves_what_no_route_matched() {
    let (_dir, url) = start().await;
    let index = fetch(false, Method::GET, &format!("{url}/"), &[]).await;
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(&index.body[..], b"<h1>mmap-serve + axum</h1>\n");
    assert_eq!(
        fetch(false, Method::GET, &format!("{url}/nothing-here"), &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_layer_serves_a_file_when_there_is_one_and_the_handler_otherwise() {
    let (_dir, url) = start().await;
    let file = fetch(false, Method::GET, &format!("{url}/api/cached.json"), &[]).await;
    assert_eq!(
        (file.status.as_u16(), &file.body[..]),
        (200, &b"{\"from\": \"a file\"}\n"[..])
    );
    assert!(!file.header("etag").is_empty());
    let handler = fetch(false, Method::GET, &format!("{url}/api/hello"), &[]).await;
    assert_eq!(&handler.body[..], b"hello from a handler\n");
}

/// Needs the crate's `axum` feature (`IntoResponse for MmapError`); the other tests need only axum itself.
#[cfg(feature = "axum")]
#[tokio::test]
async fn the_guides_handler_style_compiles_and_maps_errors() {
    use axum::extract::{Path, State};
    use axum::http::{StatusCode, header};
    use axum::response::Response;
    use mmap_serve::{MmapCache, MmapError};
    use std::path::PathBuf;
    use std::sync::Arc;

    #[derive(Clone)]
    struct AppState {
        mmap_cache: Arc<MmapCache>,
        storage_path: PathBuf,
    }

    // The original guide's handler, as written there.
    async fn get_tensor(
        State(state): State<AppState>,
        Path(cid): Path<String>,
    ) -> Result<Response, MmapError> {
        let file_path = state.storage_path.join(format!("{}.tensor", cid));
        let mmap_file = state.mmap_cache.get_or_create(&file_path)?;
        let data = mmap_file.bytes();
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, data.len())
            .header("X-Served-By", "mmap")
            .body(data.into())
            .unwrap())
    }

    let dir = tempfile::tempdir().expect("temp dir");
    common::net::pattern_file(dir.path(), "t1.tensor", 100_000);
    let state = AppState {
        mmap_cache: Arc::new(MmapCache::new(100)),
        storage_path: dir.path().to_path_buf(),
    };
    let app = axum::Router::new()
        .route("/tensor/{cid}", axum::routing::get(get_tensor))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ok = fetch(false, Method::GET, &format!("{url}/tensor/t1"), &[]).await;
    assert_eq!(
        (ok.status.as_u16(), ok.body.len(), ok.header("x-served-by")),
        (200, 100_000, "mmap")
    );
    let missing = fetch(false, Method::GET, &format!("{url}/tensor/nope"), &[]).await;
    assert_eq!(missing.status, 404, "MmapError::FileNotFound answers 404");
    assert!(
        !String::from_utf8_lossy(&missing.body).contains(&dir.path().display().to_string()),
        "no path leak"
    );
}
