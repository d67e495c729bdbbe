//! Precompressed sidecars (`app.js.br`, `.zst`, `.gz`, `.zz`): which one a request gets, and that the one it
//! gets is the selected representation (its own length, ETag, Last-Modified and ranges, the original's type,
//! `Vary: Accept-Encoding` on every answer), first through `tower::ServiceExt::oneshot`, then through real
//! clients against the `serve` example: `curl --compressed`, Python `requests` and headless Chromium (each
//! skipped with a printed reason when missing; `.ci/run` installs them).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use mmap_serve::{
    ContentCoding, DirResolver, MmapCache, MmapServe, Resolution, ResolvedFile, Revalidate,
};

use common::net::{Serve, have};
use common::{Fixture, get, parse_content_range, pattern, request, send, text, write_with_mtime};

/// The original's length, and each sidecar's (different, so a body tells which file it came from).
const LEN: u64 = 10_000;
const BR: usize = 1_111;
const ZST: usize = 1_222;
const GZ: usize = 1_333;
const ZZ: usize = 1_444;

/// Bytes that name their file: `tag` repeated to `len`.
fn marked(tag: &str, len: usize) -> Vec<u8> {
    tag.bytes().cycle().take(len).collect()
}

/// `root/app.js` with the sidecars of `codings` (of the lengths above), all with the fixture mtime.
fn tree(codings: &[ContentCoding]) -> Fixture {
    let fx = Fixture::new();
    fx.file("app.js", LEN);
    for coding in codings {
        let (name, len) = match coding {
            ContentCoding::Brotli => ("app.js.br", BR),
            ContentCoding::Zstd => ("app.js.zst", ZST),
            ContentCoding::Gzip => ("app.js.gz", GZ),
            ContentCoding::Deflate => ("app.js.zz", ZZ),
            _ => unreachable!("the four codings"),
        };
        fx.write(name, &marked(coding.token(), len));
    }
    fx
}

/// A service over the fixture's root with all four codings on.
fn serve(fx: &Fixture) -> MmapServe<DirResolver> {
    let resolver = DirResolver::new(fx.root())
        .precompressed_br()
        .precompressed_zstd()
        .precompressed_gzip()
        .precompressed_deflate();
    MmapServe::new(resolver)
}

fn encoding(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("content-encoding")
        .map(|v| v.to_str().expect("ascii"))
}

fn vary(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn the_preferred_sidecar_is_served_as_the_representation() {
    let fx = tree(&[ContentCoding::Gzip]);
    let svc = serve(&fx);
    let (status, identity, body) = send(svc.clone(), get("/app.js", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == pattern(0..LEN));
    assert_eq!(encoding(&identity), None);
    assert_eq!(vary(&identity), ["accept-encoding"]);

    // The sidecar's mtime differs from the original's: Last-Modified must be the sidecar's.
    let gz = fx.root().join("app.js.gz");
    std::fs::File::options()
        .write(true)
        .open(&gz)
        .expect("open")
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        .expect("mtime");
    let (status, h, body) = send(svc, get("/app.js", &[("accept-encoding", "gzip")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, marked("gzip", GZ));
    assert_eq!(encoding(&h), Some("gzip"));
    assert_eq!(text(&h, "content-length"), GZ.to_string());
    assert_eq!(text(&h, "content-type"), text(&identity, "content-type"));
    assert!(text(&h, "content-type").contains("javascript"));
    assert_eq!(text(&h, "last-modified"), "Sun, 13 Sep 2020 12:26:40 GMT");
    assert_ne!(text(&h, "etag"), text(&identity, "etag"));
    assert!(text(&h, "etag").starts_with('"'), "strong");
    assert_eq!(text(&h, "accept-ranges"), "bytes");
    assert_eq!(vary(&h), ["accept-encoding"]);
}

#[tokio::test]
async fn codings_go_by_q_value_then_br_zstd_gzip_deflate() {
    let fx = tree(&[
        ContentCoding::Brotli,
        ContentCoding::Zstd,
        ContentCoding::Gzip,
        ContentCoding::Deflate,
    ]);
    let svc = serve(&fx);
    for (accept, expected) in [
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip, deflate, zstd", Some("zstd")),
        ("deflate, gzip", Some("gzip")),
        ("deflate", Some("deflate")),
        ("x-gzip", Some("gzip")),
        ("br;q=0.5, gzip;q=0.9, identity;q=0.1", Some("gzip")),
        ("*", Some("br")),
        ("*;q=0.5, zstd", Some("zstd")),
        ("br;q=0, *", Some("zstd")),
        ("gzip;q=0.5", None),
        ("gzip;q=0", None),
        ("", None),
        ("compress", None),
        ("identity", None),
        // Nothing acceptable, identity refused: the file itself rather than 406 (see http::encoding).
        ("identity;q=0", None),
        ("*;q=0", None),
    ] {
        let (status, h, body) =
            send(svc.clone(), get("/app.js", &[("accept-encoding", accept)])).await;
        assert_eq!(status, StatusCode::OK, "{accept:?}");
        assert_eq!(encoding(&h), expected, "{accept:?}");
        let len = match expected {
            Some("br") => BR,
            Some("zstd") => ZST,
            Some("gzip") => GZ,
            Some("deflate") => ZZ,
            _ => LEN as usize,
        };
        assert_eq!(body.len(), len, "{accept:?}");
        assert_eq!(vary(&h), ["accept-encoding"], "{accept:?}");
    }
}

#[tokio::test]
async fn only_the_configured_codings_are_looked_for() {
    let fx = tree(&[ContentCoding::Brotli, ContentCoding::Gzip]);
    let gzip_only = MmapServe::new(DirResolver::new(fx.root()).precompressed_gzip());
    let (_, h, _) = send(
        gzip_only,
        get("/app.js", &[("accept-encoding", "br, gzip")]),
    )
    .await;
    assert_eq!(encoding(&h), Some("gzip"));

    // Without any: no sidecar, no Vary, whatever exists on disk.
    let plain = MmapServe::new(DirResolver::new(fx.root()));
    let (_, h, body) = send(plain, get("/app.js", &[("accept-encoding", "br, gzip")])).await;
    assert_eq!(encoding(&h), None);
    assert!(body == pattern(0..LEN));
    assert!(vary(&h).is_empty());
}

#[tokio::test]
async fn a_missing_sidecar_gives_way_to_the_next_then_to_the_file_and_is_remembered() {
    let fx = tree(&[ContentCoding::Gzip]);
    let cache = Arc::new(
        MmapCache::builder()
            .revalidation(Revalidate::Every(Duration::from_secs(3600)))
            .build(),
    );
    let svc = MmapServe::with_cache(
        DirResolver::new(fx.root())
            .precompressed_br()
            .precompressed_gzip(),
        Arc::clone(&cache),
    );
    // br is preferred, missing: gzip.
    for _ in 0..5 {
        let (_, h, _) = send(
            svc.clone(),
            get("/app.js", &[("accept-encoding", "br, gzip")]),
        )
        .await;
        assert_eq!(encoding(&h), Some("gzip"));
    }
    // Two opens in all (the missing br, the gzip), not one per request.
    assert_eq!(cache.stats().misses, 2, "{:?}", cache.stats());
    // Only br acceptable, missing: the file itself, and br is not tried again.
    for _ in 0..5 {
        let (_, h, body) = send(svc.clone(), get("/app.js", &[("accept-encoding", "br")])).await;
        assert_eq!(encoding(&h), None);
        assert!(body == pattern(0..LEN));
    }
    assert_eq!(cache.stats().misses, 3, "{:?}", cache.stats());

    // Within the interval a new sidecar is not seen; `remove` forgets the absence.
    let br = fx.write("app.js.br", &marked("br", BR));
    let (_, h, _) = send(svc.clone(), get("/app.js", &[("accept-encoding", "br")])).await;
    assert_eq!(encoding(&h), None);
    cache.remove(&br);
    let (_, h, _) = send(svc.clone(), get("/app.js", &[("accept-encoding", "br")])).await;
    assert_eq!(encoding(&h), Some("br"));
}

#[tokio::test]
async fn under_always_a_new_sidecar_is_seen_at_once() {
    let fx = tree(&[]);
    let cache = Arc::new(
        MmapCache::builder()
            .revalidation(Revalidate::Always)
            .build(),
    );
    let svc = MmapServe::with_cache(DirResolver::new(fx.root()).precompressed_gzip(), cache);
    let (_, h, _) = send(svc.clone(), get("/app.js", &[("accept-encoding", "gzip")])).await;
    assert_eq!(encoding(&h), None);
    fx.write("app.js.gz", &marked("gzip", GZ));
    let (_, h, body) = send(svc.clone(), get("/app.js", &[("accept-encoding", "gzip")])).await;
    assert_eq!(encoding(&h), Some("gzip"));
    assert_eq!(body, marked("gzip", GZ));
}

#[tokio::test]
async fn a_range_of_a_variant_is_a_range_of_the_sidecar() {
    let fx = tree(&[ContentCoding::Gzip]);
    let svc = serve(&fx);
    let gz = marked("gzip", GZ);
    let accept = ("accept-encoding", "gzip");
    let (status, h, body) = send(
        svc.clone(),
        get("/app.js", &[accept, ("range", "bytes=10-109")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        parse_content_range(text(&h, "content-range")),
        (10..110, GZ as u64)
    );
    assert_eq!(&body[..], &gz[10..110]);
    assert_eq!(encoding(&h), Some("gzip"));
    assert_eq!(vary(&h), ["accept-encoding"]);

    // Several ranges: multipart parts of the sidecar.
    let (status, h, body) = send(
        svc.clone(),
        get("/app.js", &[accept, ("range", "bytes=0-3,1000-1003")]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let parts = common::parse_byteranges(&body, &common::boundary_of(text(&h, "content-type")));
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].complete_length, GZ as u64);
    assert_eq!(&parts[1].data[..], &gz[1000..1004]);
    assert_eq!(encoding(&h), Some("gzip"));

    // Past the sidecar's end (though inside the original): 416 with the sidecar's length.
    let (status, h, _) = send(
        svc.clone(),
        get("/app.js", &[accept, ("range", "bytes=5000-")]),
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(text(&h, "content-range"), format!("bytes */{GZ}"));
    assert_eq!(vary(&h), ["accept-encoding"]);
}

#[tokio::test]
async fn validators_are_the_variants_own() {
    let fx = tree(&[ContentCoding::Gzip]);
    let svc = serve(&fx);
    let accept = ("accept-encoding", "gzip");
    let (_, identity, _) = send(svc.clone(), get("/app.js", &[])).await;
    let (_, variant, _) = send(svc.clone(), get("/app.js", &[accept])).await;
    let (id_tag, gz_tag) = (text(&identity, "etag"), text(&variant, "etag"));

    // If-None-Match: 304 for the variant's own tag, with Vary; the identity's tag does not match it.
    let (status, h, _) = send(
        svc.clone(),
        get("/app.js", &[accept, ("if-none-match", gz_tag)]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(text(&h, "etag"), gz_tag);
    assert_eq!(vary(&h), ["accept-encoding"]);
    let (status, _, body) = send(
        svc.clone(),
        get("/app.js", &[accept, ("if-none-match", id_tag)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), GZ);
    let (status, _, _) = send(svc.clone(), get("/app.js", &[("if-none-match", gz_tag)])).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a gzip tag does not validate the identity"
    );

    // If-Range: the variant's tag keeps the range, the identity's gets the whole variant.
    let range = ("range", "bytes=0-9");
    let (status, _, body) = send(
        svc.clone(),
        get("/app.js", &[accept, range, ("if-range", gz_tag)]),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body.len(), 10);
    let (status, _, body) = send(
        svc.clone(),
        get("/app.js", &[accept, range, ("if-range", id_tag)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), GZ);

    // If-Match with the identity's tag fails for the variant: 412, with Vary.
    let (status, h, _) = send(svc.clone(), get("/app.js", &[accept, ("if-match", id_tag)])).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(vary(&h), ["accept-encoding"]);
}

#[tokio::test]
async fn head_of_a_variant_has_its_encoding_and_length() {
    let fx = tree(&[ContentCoding::Brotli]);
    let svc = serve(&fx);
    let (status, h, body) = send(
        svc,
        request(Method::HEAD, "/app.js", &[("accept-encoding", "br")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(encoding(&h), Some("br"));
    assert_eq!(text(&h, "content-length"), BR.to_string());
}

#[tokio::test]
async fn a_changed_sidecar_is_served_new_under_revalidation() {
    let fx = tree(&[ContentCoding::Gzip]);
    let cache = Arc::new(
        MmapCache::builder()
            .revalidation(Revalidate::Always)
            .build(),
    );
    let svc = MmapServe::with_cache(DirResolver::new(fx.root()).precompressed_gzip(), cache);
    let accept = ("accept-encoding", "gzip");
    let (_, old, _) = send(svc.clone(), get("/app.js", &[accept])).await;
    let staging = fx.base().join("app.js.gz.new");
    write_with_mtime(&staging, &marked("GZIP", GZ + 1));
    std::fs::rename(&staging, fx.root().join("app.js.gz")).expect("rename");
    let (_, new, body) = send(svc, get("/app.js", &[accept])).await;
    assert_eq!(body, marked("GZIP", GZ + 1));
    assert_ne!(text(&new, "etag"), text(&old, "etag"));
}

#[tokio::test]
async fn a_sidecar_obeys_the_roots_rules() {
    let fx = tree(&[]);
    let accept = ("accept-encoding", "gzip");
    // A link to a file outside the root: never followed, the file itself is served.
    std::os::unix::fs::symlink(fx.secret(), fx.root().join("app.js.gz")).expect("symlink");
    let svc = MmapServe::new(DirResolver::new(fx.root()).precompressed_gzip());
    let (status, h, body) = send(svc, get("/app.js", &[accept])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding(&h), None);
    assert!(body == pattern(0..LEN));

    // A link inside the root, with links refused: the file itself.
    std::fs::remove_file(fx.root().join("app.js.gz")).expect("rm");
    fx.write("real.gz", &marked("gzip", GZ));
    std::os::unix::fs::symlink("real.gz", fx.root().join("app.js.gz")).expect("symlink");
    let strict = DirResolver::new(fx.root())
        .precompressed_gzip()
        .follow_symlinks(false);
    let (_, h, _) = send(MmapServe::new(strict), get("/app.js", &[accept])).await;
    assert_eq!(encoding(&h), None);
    // ... and with links followed, the sidecar.
    let lax = DirResolver::new(fx.root()).precompressed_gzip();
    let (_, h, body) = send(MmapServe::new(lax), get("/app.js", &[accept])).await;
    assert_eq!(encoding(&h), Some("gzip"));
    assert_eq!(body, marked("gzip", GZ));

    // A directory named like a sidecar: the file itself.
    fx.file("lib.js", 100);
    fx.dir("lib.js.gz");
    let svc = MmapServe::new(DirResolver::new(fx.root()).precompressed_gzip());
    let (status, h, body) = send(svc.clone(), get("/lib.js", &[accept])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding(&h), None);
    assert_eq!(body.len(), 100);

    // Hidden names stay hidden, sidecar or not.
    fx.write(".env.gz", b"SECRET=1");
    fx.write(".env", b"SECRET=1");
    let (status, _, _) = send(svc, get("/.env", &[accept])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_sidecar_without_its_original_is_served_to_those_who_accept_it() {
    let fx = Fixture::new();
    fx.write("only.css.gz", &marked("gzip", GZ));
    let svc = MmapServe::new(DirResolver::new(fx.root()).precompressed_gzip());
    let (status, h, _) = send(
        svc.clone(),
        get("/only.css", &[("accept-encoding", "gzip")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding(&h), Some("gzip"));
    assert!(text(&h, "content-type").starts_with("text/css"));
    let (status, _, _) = send(svc, get("/only.css", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_resolvers_etag_is_not_reused_for_a_variant() {
    let fx = tree(&[ContentCoding::Zstd]);
    let root = fx.root();
    let resolver = move |_: &http::request::Parts| {
        let file = ResolvedFile::new(root.join("app.js"))
            .etag(http::HeaderValue::from_static("\"sha256-abc\""))
            .precompressed(ContentCoding::Zstd)
            .header(http::header::VARY, http::HeaderValue::from_static("Origin"));
        std::future::ready(Resolution::file(file))
    };
    let svc = MmapServe::new(resolver);
    let (_, identity, _) = send(svc.clone(), get("/app.js", &[])).await;
    assert_eq!(text(&identity, "etag"), "\"sha256-abc\"");
    let (_, variant, body) =
        send(svc.clone(), get("/app.js", &[("accept-encoding", "zstd")])).await;
    assert_eq!(body, marked("zstd", ZST));
    assert_eq!(encoding(&variant), Some("zstd"));
    assert_ne!(text(&variant, "etag"), "\"sha256-abc\"");
    // The resolver's own Vary is kept beside the service's, on every answer.
    assert_eq!(vary(&variant), ["origin", "accept-encoding"]);
    assert_eq!(vary(&identity), ["origin", "accept-encoding"]);
    let (status, _, _) = send(
        svc,
        get(
            "/app.js",
            &[
                ("accept-encoding", "zstd"),
                ("if-none-match", "\"sha256-abc\""),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_window_or_a_pinned_version_is_served_as_the_file_itself_never_as_a_sidecar() {
    let fx = tree(&[ContentCoding::Gzip]);
    let root = fx.root();
    let cache = Arc::new(MmapCache::new(16));
    let mapped = cache
        .get_or_create(root.join("app.js"))
        .expect("the original maps");
    let version = *mapped.identity();
    let resolver = move |parts: &http::request::Parts| {
        let file = ResolvedFile::new(root.join("app.js")).precompressed(ContentCoding::Gzip);
        let file = if parts.uri.path() == "/window" {
            file.window(100..200)
        } else {
            file.version(version)
        };
        std::future::ready(Resolution::file(file))
    };
    let svc = MmapServe::with_cache(resolver, cache);
    let (status, window, body) =
        send(svc.clone(), get("/window", &[("accept-encoding", "gzip")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        pattern(100..200),
        "the window's bytes of the original"
    );
    assert_eq!(encoding(&window), None);
    assert!(vary(&window).is_empty(), "{:?}", vary(&window));
    let (status, pinned, body) = send(svc, get("/pinned", &[("accept-encoding", "gzip")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        pattern(0..LEN),
        "the pinned version is the original's"
    );
    assert_eq!(encoding(&pinned), None);
}

// ---- Real clients against the `serve` example's `--precompressed`. ----

/// A site with a script and its real gzip sidecar (and a page that runs it).
fn site() -> (Fixture, Vec<u8>) {
    let fx = Fixture::new();
    let script: Vec<u8> = format!(
        "document.getElementById('out').textContent = 'ran ' + {};\n{}",
        "'gzip-sidecar'",
        "// padding that compresses well\n".repeat(200)
    )
    .into_bytes();
    fx.write("app.js", &script);
    fx.write(
        "app.js.gz",
        &gzip(b"document.getElementById('out').textContent = 'ran from the .gz';\n"),
    );
    fx.write(
        "index.html",
        b"<!doctype html><html><body><p id=\"out\">not run</p><script src=\"/app.js\"></script></body></html>\n",
    );
    (fx, script)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

#[test]
fn curl_compressed_decodes_the_gzip_sidecar() {
    if !have("curl") {
        return;
    }
    let (fx, _) = site();
    let serve = Serve::start_with(&fx.root(), &["--precompressed"]);
    let out = Command::new("curl")
        .args(["-s", "--compressed", "-D", "-"])
        .arg(format!("{}/app.js", serve.url))
        .output()
        .expect("run curl");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("vary: accept-encoding"),
        "{head}"
    );
    assert_eq!(
        body,
        "document.getElementById('out').textContent = 'ran from the .gz';\n"
    );
    // Without --compressed curl sends no Accept-Encoding: the file itself.
    let plain = Command::new("curl")
        .args(["-s", "-D", "-"])
        .arg(format!("{}/app.js", serve.url))
        .output()
        .expect("run curl");
    let text = String::from_utf8(plain.stdout).expect("utf-8");
    assert!(!text.contains("content-encoding"), "{text}");
    assert!(text.contains("'gzip-sidecar'"));
}

#[test]
fn python_requests_decodes_the_gzip_sidecar_and_ranges_it() {
    let python = Command::new("python3")
        .args(["-c", "import requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python {
        eprintln!("skipped: python3 with requests is not installed (CI installs it)");
        return;
    }
    let (fx, _) = site();
    let gz = std::fs::read(fx.root().join("app.js.gz")).expect("read");
    let serve = Serve::start_with(&fx.root(), &["--precompressed"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/precompressed_requests.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("{}/app.js", serve.url))
        .arg(gz.len().to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Chromium binary, if one is installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn chromium_runs_a_script_served_from_its_gzip_sidecar() {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium is not installed (CI installs it: apt-get install chromium)");
        return;
    };
    let (fx, _) = site();
    let serve = Serve::start_with(&fx.root(), &["--precompressed"]);
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{}/index.html", serve.url))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<p id=\"out\">ran from the .gz</p>"),
        "the page's DOM: {dom}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
