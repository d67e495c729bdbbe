//! The plain answers: GET 200 with exact headers, HEAD, and every other method.

use http::{Method, StatusCode};
use mmap_serve::{MmapServe, Resolution, ResolvedFile};

use crate::common::{Fixture, MTIME_HTTP, content_length, get, pattern, request, send, text};

#[tokio::test]
async fn get_answers_200_with_exact_length_type_validators_and_accept_ranges() {
    let fx = Fixture::new();
    fx.file("data.bin", 100_000);
    let (status, headers, body) = send(fx.serve(), get("/data.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&headers, "content-length"), "100000");
    assert_eq!(text(&headers, "content-type"), "application/octet-stream");
    assert_eq!(text(&headers, "accept-ranges"), "bytes");
    assert_eq!(text(&headers, "last-modified"), MTIME_HTTP);
    let etag = text(&headers, "etag");
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "a strong entity-tag: {etag}"
    );
    assert!(headers.get("content-range").is_none());
    assert!(body == pattern(0..100_000), "the whole file");
}

#[tokio::test]
async fn content_type_comes_from_the_extension() {
    let fx = Fixture::new();
    let cases = [
        ("page.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("data.json", "application/json"),
        ("photo.PNG", "image/png"),
        ("clip.mp4", "video/mp4"),
        ("doc.pdf", "application/pdf"),
        ("weights.safetensors", "application/octet-stream"),
        ("no_extension", "application/octet-stream"),
    ];
    for (name, expected) in cases {
        fx.file(name, 10);
        let (status, headers, _) = send(fx.serve(), get(&format!("/{name}"), &[])).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(text(&headers, "content-type"), expected, "{name}");
    }
}

#[tokio::test]
async fn a_download_carries_content_disposition_on_200_206_and_head_but_not_304() {
    let fx = Fixture::new();
    fx.file("model.safetensors", 10_000);
    let serve = || {
        MmapServe::new(mmap_serve::DirResolver::new(fx.root()).download_extension("safetensors"))
    };
    let expected = "attachment; filename=\"model.safetensors\"";
    let (status, headers, _) = send(serve(), get("/model.safetensors", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&headers, "content-disposition"), expected);
    let etag = text(&headers, "etag").to_owned();
    let (status, headers, body) = send(
        serve(),
        get("/model.safetensors", &[("range", "bytes=0-9")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(text(&headers, "content-disposition"), expected);
    assert!(body == pattern(0..10));
    let head = request(Method::HEAD, "/model.safetensors", &[]);
    let (_, headers, _) = send(serve(), head).await;
    assert_eq!(text(&headers, "content-disposition"), expected);
    // RFC 9110 §15.4.5: a 304 carries what guides cache updates, not the representation's metadata.
    let (status, headers, _) = send(
        serve(),
        get("/model.safetensors", &[("if-none-match", &etag)]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(headers.get("content-disposition").is_none());
}

#[tokio::test]
async fn a_file_without_a_chosen_content_type_is_application_octet_stream() {
    let fx = Fixture::new();
    // `.html` would be text/html with DirResolver; a resolver that names no type gets the default.
    let path = fx.file("page.html", 10);
    let serve = MmapServe::new(move |_: &http::request::Parts| {
        std::future::ready(Resolution::file(ResolvedFile::new(path.clone())))
    });
    let (status, headers, _) = send(serve, get("/anything", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&headers, "content-type"), "application/octet-stream");
}

#[tokio::test]
async fn etag_is_stable_for_one_file_and_differs_between_files() {
    let fx = Fixture::new();
    fx.file("a.bin", 1000);
    fx.file("b.bin", 1000);
    let serve = fx.serve();
    let (_, first, _) = send(serve.clone(), get("/a.bin", &[])).await;
    let (_, again, _) = send(serve.clone(), get("/a.bin", &[])).await;
    let (_, other, _) = send(serve, get("/b.bin", &[])).await;
    assert_eq!(text(&first, "etag"), text(&again, "etag"));
    assert_ne!(text(&first, "etag"), text(&other, "etag"));
}

#[tokio::test]
async fn head_has_the_get_headers_and_an_empty_body() {
    let fx = Fixture::new();
    fx.file("page.html", 5000);
    let serve = fx.serve();
    let (get_status, get_headers, _) = send(serve.clone(), get("/page.html", &[])).await;
    let (status, headers, body) = send(serve, request(Method::HEAD, "/page.html", &[])).await;
    assert_eq!((get_status, status), (StatusCode::OK, StatusCode::OK));
    assert!(body.is_empty());
    assert_eq!(content_length(&headers), 5000);
    for name in [
        "content-length",
        "content-type",
        "etag",
        "last-modified",
        "accept-ranges",
    ] {
        assert_eq!(headers.get(name), get_headers.get(name), "{name}");
    }
}

#[tokio::test]
async fn other_methods_get_405_with_allow_get_head() {
    let fx = Fixture::new();
    fx.file("a.bin", 100);
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
    ] {
        let (status, headers, body) =
            send(fx.serve(), request(method.clone(), "/a.bin", &[])).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(text(&headers, "allow"), "GET, HEAD", "{method}");
        assert!(
            !body.windows(10).any(|w| w == &pattern(0..10)[..]),
            "{method} must not send the file"
        );
    }
}

#[tokio::test]
async fn unknown_methods_get_501() {
    let fx = Fixture::new();
    fx.file("a.bin", 100);
    // RFC 9110 §9.1: a method the server does not recognise SHOULD get 501; method names are case-sensitive.
    for name in ["FOO", "PROPFIND", "get"] {
        let method = Method::from_bytes(name.as_bytes()).expect("a method token");
        let (status, _, body) = send(fx.serve(), request(method, "/a.bin", &[])).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{name}");
        assert_eq!(body, "method not implemented\n", "{name}");
    }
}

#[tokio::test]
async fn a_repeated_or_invalid_host_or_userinfo_is_400() {
    let fx = Fixture::new();
    fx.file("a.bin", 100);
    // RFC 9112 §3.2 (Host) and RFC 9110 §4.2.4 (userinfo).
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 4] = [
        (
            "/a.bin",
            &[("host", "a"), ("host", "b")],
            "more than one Host header\n",
        ),
        ("/a.bin", &[("host", "a b/c")], "invalid Host header\n"),
        ("/a.bin", &[("host", "a@b")], "invalid Host header\n"),
        (
            "http://user@localhost/a.bin",
            &[("host", "localhost")],
            "userinfo in the request target\n",
        ),
    ];
    for (uri, headers, reason) in cases {
        let (status, _, body) = send(fx.serve(), get(uri, headers)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {headers:?}");
        assert_eq!(body, reason, "{uri} {headers:?}");
    }
    // A target whose form does not fit the method (RFC 9112 §3.2.3, §3.2.4).
    for (method, uri) in [
        (Method::GET, "a.bin"),
        (Method::GET, "*"),
        (Method::HEAD, "localhost:80"),
    ] {
        let (status, _, _) = send(fx.serve(), request(method.clone(), uri, &[("host", "a")])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}");
    }
    // Whatever the method, and whether or not a file is there.
    for (method, uri) in [
        (Method::POST, "/a.bin"),
        (Method::GET, "/missing.bin"),
        (Method::GET, "/"),
    ] {
        let headers = [("host", "a"), ("host", "b")];
        let (status, _, _) = send(fx.serve(), request(method.clone(), uri, &headers)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}");
    }
    for host in ["localhost", "localhost:8080", "127.0.0.1", "[::1]:80", ""] {
        let (status, _, _) = send(fx.serve(), get("/a.bin", &[("host", host)])).await;
        assert_eq!(status, StatusCode::OK, "{host:?}");
    }
}

#[tokio::test]
async fn a_missing_host_is_400_only_when_required_and_only_for_http11() {
    let fx = Fixture::new();
    fx.file("a.bin", 100);
    let strict = fx.serve().require_host(true);
    let (status, _, body) = send(strict.clone(), get("/a.bin", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "missing Host header\n");
    let (status, _, _) = send(strict.clone(), get("/a.bin", &[("host", "localhost")])).await;
    assert_eq!(status, StatusCode::OK);
    for version in [http::Version::HTTP_10, http::Version::HTTP_2] {
        let mut request = get("/a.bin", &[]);
        *request.version_mut() = version;
        let (status, _, _) = send(strict.clone(), request).await;
        assert_eq!(status, StatusCode::OK, "{version:?}");
    }
    // Off by default: a request built in a program has no Host.
    let (status, _, _) = send(fx.serve(), get("/a.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_directory_without_its_slash_is_redirected_when_it_has_an_index() {
    let fx = Fixture::new();
    fx.write("docs/index.html", b"<p>docs</p>");
    fx.file(".hidden/index.html", 10);
    let serve = MmapServe::new(mmap_serve::DirResolver::new(fx.root()).index_file("index.html"));
    for (uri, location) in [("/docs", "./docs/"), ("/docs?q=1", "./docs/?q=1")] {
        let (status, headers, _) = send(serve.clone(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{uri}");
        assert_eq!(text(&headers, "location"), location, "{uri}");
    }
    let (status, headers, body) = send(serve.clone(), request(Method::HEAD, "/docs", &[])).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(text(&headers, "location"), "./docs/");
    assert!(body.is_empty());
    let (status, _, body) = send(serve.clone(), get("/docs/", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "<p>docs</p>");
    // Hidden, missing, or a file: no redirect.
    for (uri, expected) in [
        ("/.hidden", StatusCode::NOT_FOUND),
        ("/nope", StatusCode::NOT_FOUND),
        ("/docs/index.html", StatusCode::OK),
    ] {
        let (status, _, _) = send(serve.clone(), get(uri, &[])).await;
        assert_eq!(status, expected, "{uri}");
    }
}

#[tokio::test]
async fn a_missing_file_or_a_directory_is_404() {
    let fx = Fixture::new();
    fx.dir("sub");
    fx.file("sub/inner.bin", 10);
    for uri in ["/missing.bin", "/sub", "/sub/", "/sub/inner.bin/x", "/"] {
        let (status, _, _) = send(fx.serve(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn head_responses_never_carry_content_even_for_errors() {
    let fx = Fixture::new();
    fx.file("a.bin", 100);
    fx.dir("sub");
    // RFC 9110 §9.3.2: the server MUST NOT send content in the response to HEAD, whatever the status.
    // (HTTP/1.1 servers drop it anyway; hyper's HTTP/2 server sends whatever the body yields.)
    let cases = [
        ("/a.bin", StatusCode::OK),
        ("/missing.bin", StatusCode::NOT_FOUND),
        ("/sub", StatusCode::NOT_FOUND),
        ("/.hidden", StatusCode::NOT_FOUND),
        ("/%2e%2e/secret", StatusCode::BAD_REQUEST),
        ("/a%00.bin", StatusCode::BAD_REQUEST),
    ];
    for (uri, expected) in cases {
        let (status, _, body) = send(fx.serve(), request(Method::HEAD, uri, &[])).await;
        assert_eq!(status, expected, "HEAD {uri}");
        assert!(body.is_empty(), "HEAD {uri} sent {body:?}");
    }
    let reject = MmapServe::new(|_: &http::request::Parts| {
        std::future::ready(Resolution::reject(StatusCode::GONE, "withdrawn"))
    });
    let (status, _, body) = send(reject, request(Method::HEAD, "/x", &[])).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(body.is_empty(), "HEAD of a rejection sent {body:?}");
}
