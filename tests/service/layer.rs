//! The fall-through form: `MmapServeLayer` answers what names a file, the inner service the rest.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mmap_serve::{CidResolver, DirResolver, MmapServe, MmapServeLayer};
use tower::{Layer, Service, service_fn};

use crate::common::{Fixture, get, pattern, send, text};

/// An inner service that echoes what reached it, and counts its calls.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(move |request: Request<Full<Bytes>>| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let (head, body) = request.into_parts();
            let body = body.collect().await.expect("infallible").to_bytes();
            let echoed = format!(
                "inner: {} {} {}",
                head.method,
                head.uri,
                String::from_utf8_lossy(&body)
            );
            let mut response = Response::new(Full::new(Bytes::from(echoed)));
            response
                .headers_mut()
                .insert("x-inner", http::HeaderValue::from_static("yes"));
            Ok::<_, Infallible>(response)
        }
    })
}

/// A request with `method`, `uri` and `body`.
fn with_body(method: Method, uri: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid request")
}

/// A fixture with `a.bin`, and the layer around an echoing inner service with its call counter.
fn app(
    fx: &Fixture,
) -> (
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<impl http_body::Body<Data = Bytes, Error: std::fmt::Debug>>,
        Error = Infallible,
    > + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = MmapServeLayer::new(MmapServe::new(DirResolver::new(fx.root())));
    (layer.layer(echo(Arc::clone(&calls))), calls)
}

#[tokio::test]
async fn a_present_file_is_served_by_the_layer() {
    let fx = Fixture::new();
    fx.file("a.bin", 1000);
    let (app, calls) = app(&fx);
    let (status, headers, body) = send(app.clone(), with_body(Method::GET, "/a.bin", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-inner").is_none());
    assert!(body == pattern(0..1000));
    // Ranges and conditionals too.
    let request = Request::get("/a.bin")
        .header("range", "bytes=10-19")
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let (status, headers, _) = send(app, request).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(text(&headers, "content-range"), "bytes 10-19/1000");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_missing_file_falls_through_to_the_inner_service() {
    let fx = Fixture::new();
    let (app, calls) = app(&fx);
    let (status, headers, body) = send(app, with_body(Method::GET, "/api/health?x=1", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&headers, "x-inner"), "yes");
    assert_eq!(&body[..], b"inner: GET /api/health?x=1 ");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_get_body_reaches_the_inner_service_when_no_file_is_found() {
    let fx = Fixture::new();
    let (app, _) = app(&fx);
    let (_, _, body) = send(app, with_body(Method::GET, "/search", "query body")).await;
    assert_eq!(&body[..], b"inner: GET /search query body");
}

#[tokio::test]
async fn other_methods_go_to_the_inner_service_with_their_body() {
    let fx = Fixture::new();
    fx.file("a.bin", 1000);
    let (app, calls) = app(&fx);
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let (status, headers, body) = send(
            app.clone(),
            with_body(method.clone(), "/a.bin", "the payload"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{method}");
        assert_eq!(text(&headers, "x-inner"), "yes", "{method}");
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("inner: {method} /a.bin the payload")
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_resolver_not_found_falls_through() {
    let fx = Fixture::new();
    fx.file(".env", 10);
    fx.file("dir/x.bin", 10);
    let (app, calls) = app(&fx);
    // A hidden name and a directory path are "not ours" for DirResolver.
    for uri in ["/.env", "/dir/", "/"] {
        let (_, headers, _) = send(app.clone(), with_body(Method::GET, uri, "")).await;
        assert_eq!(text(&headers, "x-inner"), "yes", "{uri}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_resolver_rejection_is_answered_by_the_layer() {
    let fx = Fixture::new();
    let (app, calls) = app(&fx);
    let (status, headers, _) = send(
        app.clone(),
        with_body(Method::GET, "/%2e%2e/outside/secret.txt", ""),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get("x-inner").is_none());
    let (status, _, body) = send(app, with_body(Method::HEAD, "/%2e%2e/x", "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.is_empty(), "no content in a response to HEAD");

    let calls_cid = Arc::new(AtomicUsize::new(0));
    let cid = MmapServeLayer::new(MmapServe::new(CidResolver::new(fx.root())))
        .layer(echo(Arc::clone(&calls_cid)));
    let (status, _, body) = send(cid.clone(), with_body(Method::GET, "/ipfs/nope", "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with(b"invalid CID"));
    // A bare path that is not a CID is not the resolver's: it falls through.
    let (_, headers, _) = send(cid, with_body(Method::GET, "/favicon.ico", "")).await;
    assert_eq!(text(&headers, "x-inner"), "yes");

    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(calls_cid.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn conditional_answers_come_from_the_layer() {
    let fx = Fixture::new();
    fx.file("a.bin", 1000);
    let (app, calls) = app(&fx);
    let (_, headers, _) = send(app.clone(), with_body(Method::GET, "/a.bin", "")).await;
    let etag = text(&headers, "etag").to_owned();
    let request = Request::get("/a.bin")
        .header("if-none-match", etag)
        .body(Full::new(Bytes::new()))
        .expect("valid");
    let (status, _, body) = send(app, request).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_layer_works_inside_a_service_builder() {
    let fx = Fixture::new();
    fx.file("a.bin", 10);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = tower::ServiceBuilder::new()
        .layer(MmapServe::new(DirResolver::new(fx.root())).into_layer())
        .service(echo(Arc::clone(&calls)));
    let (_, _, body) = send(app.clone(), with_body(Method::GET, "/a.bin", "")).await;
    assert!(body == pattern(0..10));
    let (_, _, body) = send(app, with_body(Method::GET, "/b.bin", "")).await;
    assert_eq!(&body[..], b"inner: GET /b.bin ");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_layer_accepts_the_inner_services_request_body_type() {
    // Here `Request<()>`: the layer takes whatever body type the inner service does.
    let fx = Fixture::new();
    fx.file("a.bin", 10);
    let inner = service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
    });
    let app = MmapServe::new(DirResolver::new(fx.root()))
        .into_layer()
        .layer(inner);
    let (_, _, body) = send(app.clone(), get("/a.bin", &[])).await;
    assert!(body == pattern(0..10));
    let (_, _, body) = send(app, get("/nope", &[])).await;
    assert_eq!(&body[..], b"inner");
}
