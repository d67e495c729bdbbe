//! `axum_router`: the ways to mount `MmapServe` in an axum 0.8 `Router`.
//!
//! ```sh
//! cargo run --example axum_router            # serves the `serve` example's demo layout from a temp dir
//! ```
//!
//! - `nest_service("/files", ...)`: everything under `/files/` from the root directory;
//! - `route_service("/weights", ...)`: one URL, one file, through a closure resolver;
//! - `fallback_service(...)`: whatever no route matched, from `{root}/public`;
//! - `MmapServeLayer` in front of the handlers under `/api`: a file from `{root}/api-static` (same URL path)
//!   when one exists, the handler otherwise.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::routing::get;
use mmap_serve::{DirResolver, MmapServe, MmapServeLayer, Resolution, ResolvedFile};

/// The router, for `main` and for the tests.
pub fn app(root: &Path) -> Router {
    let weights: PathBuf = root.join("weights.bin");
    let api = Router::new()
        .route("/api/hello", get(|| async { "hello from a handler\n" }))
        .route(
            "/api/cached.json",
            get(|| async { "from the handler: no file shadows me\n" }),
        )
        .layer(MmapServeLayer::new(MmapServe::new(DirResolver::new(
            root.join("api-static"),
        ))));
    Router::new()
        .nest_service("/files", MmapServe::new(DirResolver::new(root)))
        .route_service(
            "/weights",
            MmapServe::new(move |_: &http::request::Parts| {
                std::future::ready(Resolution::File(ResolvedFile::new(weights.clone())))
            }),
        )
        .merge(api)
        .fallback_service(MmapServe::new(
            DirResolver::new(root.join("public")).index_file("index.html"),
        ))
}

/// A small demo root: weights.bin (4 MiB), public/index.html, api-static/api/cached.json.
pub fn demo_root(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("public"))?;
    std::fs::create_dir_all(dir.join("api-static/api"))?;
    std::fs::write(
        dir.join("weights.bin"),
        (0..4u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )?;
    std::fs::write(
        dir.join("public/index.html"),
        "<h1>mmap-serve + axum</h1>\n",
    )?;
    std::fs::write(
        dir.join("api-static/api/cached.json"),
        "{\"from\": \"a file\"}\n",
    )?;
    Ok(())
}

#[allow(dead_code, reason = "the tests include this file for `app`")]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join("mmap-serve-axum-demo");
    demo_root(&root)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("axum_router: {url}");
    println!("  curl -s -r 0-15 {url}/files/weights.bin | xxd");
    println!("  curl -s -I {url}/weights");
    println!("  curl -s {url}/api/hello            # a handler");
    println!("  curl -s {url}/api/cached.json      # a file in front of the handler");
    println!("  curl -s {url}/                     # fallback_service: public/index.html");
    axum::serve(listener, app(&root)).await?;
    Ok(())
}
