//! `warp_filter`: `MmapServe` as a warp 0.4 filter that rejects what it has no file for, so later filters run.
//!
//! ```sh
//! cargo run --example warp_filter -- DIR       # serves DIR (default: the current directory) under /files
//! ```
//!
//! warp's reply body can be built from `Bytes` but not from another body type, so the filter collects the
//! response frames: a plain or single-range response is one frame (chunk size 0), a zero-copy slice of the
//! mapping; only multipart responses are joined into one buffer.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapServe};
use tower::ServiceExt;
use warp::{Filter, Reply};

/// A filter serving files under `root`: files, 304, 206, 416 and the rest; 404s become rejections.
pub fn files(
    root: &Path,
) -> impl Filter<Extract = (http::Response<Bytes>,), Error = warp::Rejection> + Clone + use<> {
    let serve = MmapServe::new(DirResolver::new(root)).chunk_size(0);
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and_then(
            move |method, path: warp::path::FullPath, query: String, headers| {
                let serve = serve.clone();
                async move {
                    let uri = if query.is_empty() {
                        path.as_str().to_string()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    let mut request = http::Request::new(());
                    *request.method_mut() = method;
                    *request.uri_mut() = uri.parse().map_err(|_| warp::reject::not_found())?;
                    *request.headers_mut() = headers;
                    let response = serve
                        .oneshot(request)
                        .await
                        .unwrap_or_else(|never: Infallible| match never {});
                    if response.status() == http::StatusCode::NOT_FOUND {
                        return Err(warp::reject::not_found());
                    }
                    let (parts, body) = response.into_parts();
                    let mut frames = Vec::new();
                    let mut body = body;
                    while let Some(frame) = body.frame().await {
                        match frame.map(|f| f.into_data()) {
                            Ok(Ok(data)) => frames.push(data),
                            Ok(Err(_trailers)) => {}
                            // The file changed while being read: answer 503 rather than wrong bytes.
                            Err(_) => {
                                let mut failed = http::Response::new(Bytes::new());
                                *failed.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                                return Ok(failed);
                            }
                        }
                    }
                    let bytes = if frames.len() == 1 {
                        frames.remove(0)
                    } else {
                        Bytes::from(frames.concat())
                    };
                    Ok(http::Response::from_parts(parts, bytes))
                }
            },
        )
}

/// The whole app: files first, then a greeting for everything else.
pub fn app(
    root: &Path,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + use<> {
    let fallback = warp::any().map(|| "no such file; this is the next filter\n".into_response());
    files(root)
        .map(|r: http::Response<Bytes>| r.into_response())
        .or(fallback)
        .unify()
}

#[allow(dead_code, reason = "the tests include this file for `app`")]
#[tokio::main]
async fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
    println!("warp_filter: serving {root} at http://{addr}");
    println!("  curl -s -r 0-63 http://{addr}/Cargo.toml");
    println!("  curl -s http://{addr}/nope");
    warp::serve(app(Path::new(&root))).run(addr).await;
}
