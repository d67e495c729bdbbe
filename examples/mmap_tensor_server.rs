//! `mmap_tensor_server`: the original guide's tensor server, working as it describes.
//!
//! ```sh
//! cargo run --example mmap_tensor_server --features axum                 # generated demo storage
//! cargo run --example mmap_tensor_server --features axum -- --storage DIR --listen 127.0.0.1:8080
//! ```
//!
//! - `GET /tensor/{name}`: the whole tensor `{storage}/{name}.tensor`, honouring Range and conditional headers;
//! - `GET /tensor/{name}?start=S&end=E`: 206 with bytes `S..E` (end exclusive), 416 out of bounds, 400 if S > E;
//! - `GET /ipfs/{cid}`: the same store addressed by CID through `CidResolver` (immutable, `ETag: "{cid}"`);
//! - `GET /cache/stats`: the shared cache's counters as JSON (with how many frames were sent from memory and
//!   how many were brought in from disk first);
//! - `GET /models/{file}.safetensors`: a safetensors checkpoint under `{storage}/models` through
//!   `SafetensorsResolver`, `/models/{file}.safetensors/tensors/{name}` one tensor of it (its bytes, with
//!   `X-Tensor-Dtype` and `X-Tensor-Shape`; a `/` in a name may be written `%2F`), and
//!   `/models/{file}.safetensors/header` its header JSON. The demo storage has `models/demo.safetensors`.
//!
//! Every response carries `X-Served-By: mmap`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mmap_serve::{
    CidResolver, DirResolver, MmapBody, MmapCache, MmapError, MmapFile, MmapServe, NeverPending,
    Resolution, Resolve, ResolvedFile, Resolving, SafetensorsResolver,
};
use serde::Deserialize;
use tower::ServiceExt;

#[path = "support/demo.rs"]
#[allow(
    dead_code,
    reason = "shared with `serve`, which uses other parts of it"
)]
mod demo;
use demo::write_if_changed;
pub use demo::{demo_checkpoint, demo_tensors};

/// The CIDv1 (raw, sha2-256) of the generated `demo_bytes(1 MiB, 7, 3)` tensor.
pub const DEMO_CID: &str = "bafkreiaxfqk5ylqswuhfepmomv6l4753chaqkmssxpy6cqyqo7kx3aji7u";

#[derive(Clone)]
pub struct AppState {
    pub mmap_cache: Arc<MmapCache>,
    pub storage_path: PathBuf,
}

/// A custom resolver: `/tensor/{name}` is `{storage}/{name}.tensor`.
#[derive(Debug)]
struct TensorNames {
    storage: PathBuf,
}

impl Resolve for TensorNames {
    type Future = NeverPending;

    fn resolve(&self, head: &http::request::Parts) -> Resolving<NeverPending> {
        Resolving::Ready(match head.uri.path().strip_prefix("/tensor/") {
            Some(name) if is_tensor_name(name) => Resolution::File(ResolvedFile::new(
                self.storage.join(format!("{name}.tensor")),
            )),
            _ => Resolution::reject(
                StatusCode::BAD_REQUEST,
                "tensor names are letters, digits, '-' and '_'",
            ),
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    start: Option<u64>,
    end: Option<u64>,
}

/// The whole app, for `main` and for the tests.
pub fn app(state: AppState) -> Router {
    let tensors = MmapServe::with_cache(
        TensorNames {
            storage: state.storage_path.clone(),
        },
        Arc::clone(&state.mmap_cache),
    );
    let cids = MmapServe::with_cache(
        CidResolver::new(&state.storage_path)
            .extension(".tensor")
            .bare_paths(false),
        Arc::clone(&state.mmap_cache),
    );
    // `/models/...` reaches the service with the prefix stripped: `/demo.safetensors/tensors/embed.weight`.
    let models = MmapServe::with_cache(
        SafetensorsResolver::new(
            DirResolver::new(state.storage_path.join("models")),
            Arc::clone(&state.mmap_cache),
        ),
        Arc::clone(&state.mmap_cache),
    );
    Router::new()
        .route(
            "/tensor/{cid}",
            get(get_tensor).with_state((state.clone(), tensors)),
        )
        .route_service("/ipfs/{cid}", cids)
        .nest_service("/models", models)
        .route("/cache/stats", get(cache_stats))
        .layer(axum::middleware::map_response(served_by))
        .with_state(state)
}

async fn served_by(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-served-by", HeaderValue::from_static("mmap"));
    response
}

/// `?start=S&end=E` is the guide's range handler; without it the request goes through `MmapServe`, which
/// answers Range, If-None-Match, HEAD and the rest as RFC 9110 says.
async fn get_tensor(
    State((state, tensors)): State<(AppState, MmapServe<TensorNames>)>,
    UrlPath(cid): UrlPath<String>,
    Query(range): Query<RangeQuery>,
    request: Request,
) -> Result<Response, MmapError> {
    if !is_tensor_name(&cid) {
        return Ok((
            StatusCode::BAD_REQUEST,
            "tensor names are letters, digits, '-' and '_'\n",
        )
            .into_response());
    }
    let file_path = state.storage_path.join(format!("{cid}.tensor"));
    match (range.start, range.end) {
        (None, None) => {}
        (Some(start), Some(end)) => return get_tensor_range(&state, &file_path, start, end).await,
        _ => return Ok((StatusCode::BAD_REQUEST, "give both start and end\n").into_response()),
    }
    let response = tensors
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    Ok(response.into_response())
}

async fn get_tensor_range(
    state: &AppState,
    file_path: &Path,
    start: u64,
    end: u64,
) -> Result<Response, MmapError> {
    if start > end {
        return Ok((StatusCode::BAD_REQUEST, "start is after end\n").into_response());
    }
    let mmap_file = mapped(state, file_path).await?;
    // Zero-copy frames of the mapping, each brought into memory off the async workers before it is sent (a
    // cold tensor never stalls other requests); Err(InvalidRange) becomes 416 through `IntoResponse`.
    let body = MmapBody::file_range(Arc::clone(&mmap_file), start..end)?;
    if start == end {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Response::builder()
        .status(StatusCode::PARTIAL_CONTENT)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", start, end - 1, mmap_file.size()),
        )
        .header(header::ETAG, mmap_file.etag())
        .body(axum::body::Body::new(body))
        .expect("every header value above is valid"))
}

/// The mapping from the shared cache: at once on a fresh hit, through a blocking thread otherwise.
async fn mapped(state: &AppState, path: &Path) -> Result<Arc<MmapFile>, MmapError> {
    let cache = Arc::clone(&state.mmap_cache);
    if let Some(file) = cache.get_if_fresh(path, cache.revalidation()) {
        return Ok(file);
    }
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || cache.get_or_create(&path))
        .await
        .unwrap_or_else(|e| {
            Err(MmapError::Io {
                path: String::new(),
                source: std::io::Error::other(e),
            })
        })
}

async fn cache_stats(State(state): State<AppState>) -> Response {
    let s = state.mmap_cache.stats();
    let json = format!(
        "{{\"entries\":{},\"mapped_bytes\":{},\"hits\":{},\"misses\":{},\"evictions\":{},\"stale\":{},\
         \"frames_resident\":{},\"frames_brought_in\":{},\"bring_in_wait_nanos\":{}}}\n",
        s.entries,
        s.mapped_bytes,
        s.hits,
        s.misses,
        s.evictions,
        s.stale,
        s.frames_resident,
        s.frames_brought_in,
        s.bring_in_wait_nanos
    );
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

fn is_tensor_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `len` bytes where byte `i` is `(i * mul + add) % 256`.
pub fn demo_bytes(len: usize, mul: usize, add: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * mul + add) % 256) as u8).collect()
}

/// Writes the demo tensors into `dir` (each by write-then-rename, so a running server never sees a torn file).
pub fn create_demo_storage(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tensors = [
        ("example1".to_string(), demo_bytes(4 << 20, 1, 0)),
        ("example2".to_string(), demo_bytes(1 << 20, 3, 1)),
        (DEMO_CID.to_string(), demo_bytes(1 << 20, 7, 3)),
    ];
    for (name, bytes) in tensors {
        write_if_changed(&dir.join(format!("{name}.tensor")), &bytes)?;
    }
    let models = dir.join("models");
    std::fs::create_dir_all(&models)?;
    write_if_changed(&models.join("demo.safetensors"), &demo_checkpoint())
}

#[allow(
    dead_code,
    reason = "the tests include this file for `app` and call `main` never"
)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut storage = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--storage", Some(dir)) => storage = Some(PathBuf::from(dir)),
            ("--listen", Some(addr)) => listen = addr.parse()?,
            _ => {
                eprintln!("usage: mmap_tensor_server [--storage DIR] [--listen ADDR]");
                std::process::exit(2);
            }
        }
    }
    let storage_path = match storage {
        Some(dir) => dir,
        None => {
            let dir = std::env::temp_dir().join("mmap-tensor-server-storage");
            create_demo_storage(&dir)?;
            dir
        }
    };
    let state = AppState {
        mmap_cache: Arc::new(MmapCache::new(100)),
        storage_path,
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!(
        "mmap_tensor_server: serving {} at {url}",
        state.storage_path.display()
    );
    println!("try:");
    println!("  curl -s {url}/tensor/example1 | wc -c");
    println!("  curl -s -i '{url}/tensor/example1?start=0&end=100'");
    println!("  curl -s -i -r 0-15 {url}/tensor/example2");
    println!("  curl -s -I {url}/ipfs/{DEMO_CID}");
    println!("  curl -s {url}/cache/stats");
    println!("  curl -s {url}/models/demo.safetensors/header");
    println!("  curl -s -i {url}/models/demo.safetensors/tensors/positions -r 0-15");
    println!(
        "  curl -s {url}/models/demo.safetensors/tensors/model.embed_tokens.weight | python3 -c \
         'import sys, numpy as np; print(np.frombuffer(sys.stdin.buffer.read(), \"<f4\").reshape(256, 128))'"
    );
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
