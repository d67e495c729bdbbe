//! Resolvers end to end: hostile paths against a real tree with a secret beside it, index files, special
//! files, CIDs, closures and custom rejections.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use mmap_serve::{CidResolver, DirResolver, MmapServe, Resolution, ResolvedFile};

use crate::common::{Fixture, SECRET, child, get, pattern, send, text};

/// Whether `body` holds any of the secret's bytes (a run long enough to be unmistakable).
fn leaks_secret(body: &[u8]) -> bool {
    body.windows(16).any(|w| SECRET.windows(16).any(|s| s == w))
}

/// A tree full of traps: in-root files, hidden files, links out of the root (to the secret file and to the
/// directory holding it), links inside the root, and a file literally named `%2e%2e`.
fn hostile_tree() -> Fixture {
    let fx = Fixture::new();
    fx.file("public.bin", 100);
    fx.file("sub/inner.bin", 100);
    fx.file(".hidden", 100);
    fx.file(".git/config", 100);
    fx.file("%2e%2e/x.bin", 100);
    symlink(fx.secret(), fx.root().join("leak_abs")).expect("absolute link to the secret");
    symlink("../outside/secret.txt", fx.root().join("leak_rel")).expect("relative link");
    symlink(fx.outside(), fx.root().join("outdir")).expect("link to the outside directory");
    symlink("../../outside", fx.root().join("sub/up")).expect("nested link out");
    symlink("sub", fx.root().join("indir")).expect("link to a directory inside");
    symlink("public.bin", fx.root().join("alias.bin")).expect("link to a file inside");
    symlink(fx.root().join("leak_abs"), fx.root().join("chain")).expect("link to a link out");
    symlink("loop", fx.root().join("loop")).expect("a link to itself");
    symlink("ping", fx.root().join("pong")).expect("a link cycle");
    symlink("pong", fx.root().join("ping")).expect("a link cycle");
    fx.file("café.txt", 100);
    fx.file("a b.bin", 100);
    fx
}

#[tokio::test]
async fn the_secret_is_readable_so_confinement_is_what_keeps_it_out() {
    let fx = hostile_tree();
    // A resolver rooted one level up does serve it: the hostile-path table below could see a leak.
    let above = MmapServe::new(DirResolver::new(fx.base()));
    let (status, _, body) = send(above, get("/outside/secret.txt", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(leaks_secret(&body));
}

#[tokio::test]
async fn hostile_paths_never_reach_outside_the_root() {
    use StatusCode as S;
    let fx = hostile_tree();
    let bad = S::BAD_REQUEST;
    let none = S::NOT_FOUND;
    let cases: &[(&str, StatusCode)] = &[
        // Dot segments, raw and encoded.
        ("/../outside/secret.txt", bad),
        ("/%2e%2e/outside/secret.txt", bad),
        ("/%2E%2E/outside/secret.txt", bad),
        ("/.%2e/outside/secret.txt", bad),
        ("/%2e./outside/secret.txt", bad),
        ("/sub/../../outside/secret.txt", bad),
        ("/sub/%2e%2e/%2e%2e/outside/secret.txt", bad),
        ("//../outside/secret.txt", bad),
        ("/./leak_abs", bad),
        ("/..", bad),
        ("/.", bad),
        ("http://example.com/../outside/secret.txt", bad),
        // Encoded slashes never split a segment.
        ("/..%2foutside%2fsecret.txt", bad),
        ("/%2e%2e%2foutside%2fsecret.txt", bad),
        ("/%2f..%2foutside%2fsecret.txt", bad),
        ("/outdir%2fsecret.txt", bad),
        ("/%2F%2E%2E%2Foutside", bad),
        // Double encoding decodes once: a literal name, which is not the parent directory.
        ("/%252e%252e/outside/secret.txt", none),
        ("/%252e%252e%252foutside%252fsecret.txt", none),
        (
            "/sub/%252e%252e%252f%252e%252e%252foutside%252fsecret.txt",
            none,
        ),
        // Backslashes, raw and encoded.
        ("/..\\outside\\secret.txt", bad),
        ("/%5c..%5coutside%5csecret.txt", bad),
        ("/..%5Coutside", bad),
        ("/sub\\..\\..\\outside\\secret.txt", bad),
        // NUL and other controls.
        ("/leak_abs%00", bad),
        ("/public.bin%00.txt", bad),
        ("/%00/../outside/secret.txt", bad),
        ("/sub%0a/../outside", bad),
        // Overlong UTF-8 dots and slashes, and other invalid UTF-8.
        ("/%c0%ae%c0%ae/outside/secret.txt", bad),
        ("/%e0%80%ae%e0%80%ae/outside/secret.txt", bad),
        ("/..%c0%afoutside%c0%afsecret.txt", bad),
        ("/%c0%2e%c0%2e/outside/secret.txt", bad),
        ("/%f0%80%80%ae%f0%80%80%ae/outside/secret.txt", bad),
        ("/%ff%fe/secret.txt", bad),
        // Malformed escapes, including the IIS `%u` form.
        ("/%u002e%u002e/outside/secret.txt", bad),
        ("/%%32%65%%32%65/outside/secret.txt", bad),
        ("/%2/outside", bad),
        // Drive letters and alternate data streams.
        ("/C:/outside/secret.txt", bad),
        ("/leak_abs::$DATA", bad),
        // Symbolic links out of the root, to the file, to its directory, through a chain.
        ("/leak_abs", none),
        ("/leak_rel", none),
        ("/chain", none),
        ("/outdir/secret.txt", none),
        ("/sub/up/secret.txt", none),
        ("/indir/up/secret.txt", none),
        ("/outdir/", none),
        // Hidden names, raw and encoded, and dot-dot lookalikes that are hidden names.
        ("/.hidden", none),
        ("/.git/config", none),
        ("/%2ehidden", none),
        ("/%2Egit/config", none),
        ("/..;/outside/secret.txt", none),
        ("/.../outside/secret.txt", none),
        ("/....//outside/secret.txt", none),
        // Link loops, and names or paths too long for the file system: not found, not a server error.
        ("/loop", none),
        ("/ping", none),
        ("/loop/x", none),
        ("/x".repeat(3000).leak(), none),
        (format!("/{}", "x".repeat(300)).leak(), none),
        (format!("/{}", "%41".repeat(300)).leak(), none),
        // Paths that name nothing under the root.
        ("/outside/secret.txt", none),
        ("/secret.txt", none),
        ("/leak_abs/", none),
        // GET * is not a path at all (RFC 9112 §3.2.4: the asterisk-form is for OPTIONS).
        ("*", StatusCode::BAD_REQUEST),
    ];
    assert!(cases.len() >= 30);
    for (uri, expected) in cases {
        let (status, _, body) = send(fx.serve(), get(uri, &[])).await;
        assert!(!leaks_secret(&body), "{uri} leaked the secret");
        assert_eq!(status, *expected, "{uri}");
    }
    // With links refused altogether, the links out are still not found.
    let strict = MmapServe::new(DirResolver::new(fx.root()).follow_symlinks(false));
    for uri in [
        "/leak_abs",
        "/leak_rel",
        "/chain",
        "/outdir/secret.txt",
        "/sub/up/secret.txt",
    ] {
        let (status, _, body) = send(strict.clone(), get(uri, &[])).await;
        assert!(!leaks_secret(&body), "{uri} leaked the secret");
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn links_and_odd_names_inside_the_root_are_served() {
    let fx = hostile_tree();
    for uri in [
        "/public.bin",
        "/alias.bin",
        "/indir/inner.bin",
        "/sub//inner.bin",
        "/%252e%252e/x.bin",
        "/caf%C3%A9.txt",
        "/café.txt",
        "/a%20b.bin",
        "/public.bin?../../outside/secret.txt",
    ] {
        let (status, _, body) = send(fx.serve(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(body == pattern(0..100), "{uri}");
    }
    // Without following links, a link inside the root is refused too.
    let strict = MmapServe::new(DirResolver::new(fx.root()).follow_symlinks(false));
    for uri in ["/alias.bin", "/indir/inner.bin"] {
        let (status, _, _) = send(strict.clone(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    let (status, _, _) = send(strict, get("/public.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn allow_hidden_serves_dot_files() {
    let fx = hostile_tree();
    let open = MmapServe::new(DirResolver::new(fx.root()).allow_hidden(true));
    let (status, _, body) = send(open.clone(), get("/.hidden", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == pattern(0..100));
    let (status, _, _) = send(open, get("/%2e%2e/outside/secret.txt", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn index_file_serves_directory_paths() {
    let fx = Fixture::new();
    fx.file("index.html", 100);
    fx.file("docs/index.html", 200);
    fx.dir("empty");
    let serve = MmapServe::new(DirResolver::new(fx.root()).index_file("index.html"));
    for (uri, len) in [("/", 100), ("/docs/", 200), ("/docs/index.html", 200)] {
        let (status, headers, body) = send(serve.clone(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(
            text(&headers, "content-type"),
            "text/html; charset=utf-8",
            "{uri}"
        );
        assert!(body == pattern(0..len), "{uri}");
    }
    // A directory without its slash is redirected to it (see basics.rs); with it, an empty one is not found.
    for (uri, expected) in [
        ("/docs", StatusCode::MOVED_PERMANENTLY),
        ("/empty", StatusCode::MOVED_PERMANENTLY),
        ("/empty/", StatusCode::NOT_FOUND),
    ] {
        let (status, _, _) = send(serve.clone(), get(uri, &[])).await;
        assert_eq!(status, expected, "{uri}");
    }
    // Without an index file, directory paths are not found.
    for uri in ["/", "/docs/"] {
        let (status, _, _) = send(fx.serve(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn a_directory_is_404() {
    let fx = Fixture::new();
    fx.file("dir/file.bin", 10);
    for uri in ["/dir", "/dir/"] {
        let (status, _, _) = send(fx.serve(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn a_fifo_in_the_root_is_404_without_blocking() {
    let fx = Fixture::new();
    let fifo = fx.root().join("pipe.bin");
    let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: `name` is a valid NUL-terminated path that outlives the call; mkfifo only reads it.
    let rc = unsafe { libc::mkfifo(name.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        send(fx.serve(), get("/pipe.bin", &[])),
    );
    let (status, _, body) = answer.await.expect("a FIFO must not block the request");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.windows(10).any(|w| w == &pattern(0..10)[..]));
}

#[tokio::test]
async fn sockets_devices_and_fifos_are_404_never_opened_and_never_cached() {
    let fx = Fixture::new();
    let root = fx.root();
    let _listener =
        std::os::unix::net::UnixListener::bind(root.join("sock.bin")).expect("bind a unix socket");
    let fifo = std::ffi::CString::new(root.join("pipe.bin").as_os_str().as_encoded_bytes())
        .expect("no NUL");
    // SAFETY: `fifo` is a valid NUL-terminated path that outlives the call; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let mut names = vec!["/sock.bin", "/pipe.bin"];
    let device = std::ffi::CString::new(root.join("zero.bin").as_os_str().as_encoded_bytes())
        .expect("no NUL");
    // SAFETY: as above; a character device with /dev/zero's numbers (1, 5), made only where allowed.
    let made = unsafe { libc::mknod(device.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) };
    if made == 0 {
        names.push("/zero.bin");
    } else {
        eprintln!(
            "no device node: mknod refused ({})",
            std::io::Error::last_os_error()
        );
    }
    fx.file("ok.bin", 100_000);
    let serve = fx.serve();
    for name in names {
        let answer =
            tokio::time::timeout(Duration::from_secs(5), send(serve.clone(), get(name, &[])));
        let (status, _, body) = answer
            .await
            .expect("a special file must not block the request");
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
        assert!(body.len() < 100, "{name}: {} bytes", body.len());
    }
    assert!(serve.cache().is_empty(), "nothing special is cached");
    let (status, _, body) = send(serve.clone(), get("/ok.bin", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == pattern(0..100_000));
    assert_eq!(serve.cache().len(), 1);
}

#[tokio::test]
async fn a_file_that_vanishes_between_resolve_and_open_is_404_and_not_cached() {
    let fx = Fixture::new();
    let path = fx.file("gone.bin", 100_000);
    // A resolver that names the file and then (as another process might) removes it before the open.
    let serve = MmapServe::new(move |_: &http::request::Parts| {
        let path = path.clone();
        async move {
            std::fs::remove_file(&path).ok();
            Resolution::File(ResolvedFile::new(path))
        }
    });
    let (status, _, _) = send(serve.clone(), get("/gone.bin", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(serve.cache().is_empty());
}

#[tokio::test]
async fn an_unreadable_file_is_403() {
    let fx = Fixture::new();
    let path = fx.file("locked.bin", 100);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    if std::fs::File::open(&path).is_err() {
        let (status, _, body) = send(fx.serve(), get("/locked.bin", &[])).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!body.windows(10).any(|w| w == &pattern(0..10)[..]));
        return;
    }
    // Mode 000 does not stop this process (root, or CAP_DAC_OVERRIDE): run this test again as `nobody`.
    const TEST: &str = "resolvers::an_unreadable_file_is_403";
    assert!(
        !child::is_child(TEST),
        "the unprivileged child can still read a mode-000 file"
    );
    let output = child::rerun(TEST)
        .env("TMPDIR", std::env::temp_dir())
        .uid(65534)
        .gid(65534)
        .output();
    match output {
        Ok(output) => child::assert_passed(&output),
        Err(e) => eprintln!(
            "skipping an_unreadable_file_is_403: this process can read a mode-000 file and could not \
             re-run the test as nobody ({e})"
        ),
    }
}

const CID_V1: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const CID_V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

#[tokio::test]
async fn cid_resolver_serves_ipfs_paths_with_gateway_headers() {
    let fx = Fixture::new();
    fx.file(CID_V1, 5000);
    fx.file(CID_V0, 70_000);
    // Pattern bytes under well-known CIDs: not those blocks, so not verified (tests/ipfs_gateway.rs and the
    // resolver's own tests serve real blocks, verified).
    let serve = MmapServe::new(CidResolver::new(fx.root()).verify(false));
    for (cid, len) in [(CID_V1, 5000), (CID_V0, 70_000)] {
        for uri in [format!("/ipfs/{cid}"), format!("/{cid}")] {
            let (status, headers, body) = send(serve.clone(), get(&uri, &[])).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(text(&headers, "etag"), format!("\"{cid}\""), "{uri}");
            assert_eq!(
                text(&headers, "cache-control"),
                "public, max-age=29030400, immutable",
                "{uri}"
            );
            assert_eq!(text(&headers, "content-type"), "application/octet-stream");
            assert!(body == pattern(0..len), "{uri}");
        }
    }
    // The CID is the validator: a client holding it revalidates to 304, with the gateway headers.
    let etag = format!("\"{CID_V1}\"");
    let uri = format!("/ipfs/{CID_V1}");
    let (status, headers, body) = send(serve.clone(), get(&uri, &[("if-none-match", &etag)])).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(text(&headers, "etag"), etag);
    assert_eq!(
        text(&headers, "cache-control"),
        "public, max-age=29030400, immutable"
    );
    // Ranges work on CIDs too.
    let (status, headers, _) = send(serve, get(&uri, &[("range", "bytes=-10")])).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(text(&headers, "content-range"), "bytes 4990-4999/5000");
}

#[tokio::test]
async fn cid_resolver_rejects_an_invalid_cid_with_400() {
    let fx = Fixture::new();
    fx.file("not-a-cid", 10);
    let serve = MmapServe::new(CidResolver::new(fx.root()));
    for uri in [
        "/ipfs/not-a-cid",
        "/ipfs/Qm123",
        "/ipfs/%2e%2e",
        "/ipfs/bafy!!",
        "/ipfs/",
    ] {
        let (status, _, body) = send(serve.clone(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(body.starts_with(b"invalid CID"), "{uri}");
    }
    // A bare path that is not a CID is simply not ours, and a valid CID not in the store is not found.
    for uri in [
        "/not-a-cid",
        &format!("/ipfs/{CID_V1}"),
        &format!("/ipfs/{CID_V1}/file"),
    ] {
        let (status, _, _) = send(serve.clone(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

/// Which CIDs a store serves does not depend on the crate's features: files named like a CID but not one are
/// never served (400 under `/ipfs/`, 404 bare), and a base58btc CIDv1 is (this runs with and without
/// `--no-default-features`).
#[tokio::test]
async fn cid_answers_are_the_same_whatever_the_features() {
    let fx = Fixture::new();
    let almost_v0 = format!("Qm{}", "A".repeat(44));
    let v1_base58 = "zdj7Wkkhxcu2rsiN6GUyHCLsSLL47kdUNfjbFqBUUhMFTZKBi";
    for name in ["baaaaaaa", almost_v0.as_str(), v1_base58] {
        fx.file(name, 100);
    }
    // Which paths resolve, not what the blocks hold: the pattern bytes do not match these CIDs.
    let serve = MmapServe::new(CidResolver::new(fx.root()).verify(false));
    for not_a_cid in ["baaaaaaa", almost_v0.as_str()] {
        let uri = format!("/ipfs/{not_a_cid}");
        let (status, _, body) = send(serve.clone(), get(&uri, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(body.starts_with(b"invalid CID"), "{uri}");
        let uri = format!("/{not_a_cid}");
        let (status, _, _) = send(serve.clone(), get(&uri, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    for uri in [format!("/ipfs/{v1_base58}"), format!("/{v1_base58}")] {
        let (status, headers, body) = send(serve.clone(), get(&uri, &[])).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(text(&headers, "etag"), format!("\"{v1_base58}\""), "{uri}");
        assert!(body == pattern(0..100), "{uri}");
    }
}

#[tokio::test]
async fn a_closure_resolver_serves_what_it_names_with_its_headers() {
    let fx = Fixture::new();
    let small = fx.file("weights/small.bin", 1000);
    let resolver = move |head: &http::request::Parts| {
        let file = match head.uri.path() {
            "/weights/small" => Resolution::file(
                ResolvedFile::new(small.clone())
                    .content_type(HeaderValue::from_static("application/x-tensor"))
                    .etag(HeaderValue::from_static("\"small-v3\""))
                    .cache_control(HeaderValue::from_static("private, max-age=5")),
            ),
            _ => Resolution::NotFound,
        };
        async move { file }
    };
    let serve = MmapServe::new(resolver);
    let (status, headers, body) = send(serve.clone(), get("/weights/small", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&headers, "content-type"), "application/x-tensor");
    assert_eq!(text(&headers, "etag"), "\"small-v3\"");
    assert_eq!(text(&headers, "cache-control"), "private, max-age=5");
    assert!(body == pattern(0..1000));
    let (status, _, _) = send(
        serve.clone(),
        get("/weights/small", &[("if-match", "\"small-v3\"")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(serve, get("/weights/large", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_custom_rejection_is_answered_with_its_status_and_reason() {
    let resolver = |head: &http::request::Parts| {
        let answer = if head.uri.path().starts_with("/banned") {
            Resolution::reject(
                StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
                "withdrawn by court order",
            )
        } else {
            // A rejection can't claim success or blame the server: it becomes 400.
            Resolution::reject(StatusCode::INTERNAL_SERVER_ERROR, "not a client error")
        };
        std::future::ready(answer)
    };
    let serve = MmapServe::new(resolver);
    let (status, headers, body) = send(serve.clone(), get("/banned/x", &[])).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(&body[..], b"withdrawn by court order\n");
    assert!(text(&headers, "content-type").starts_with("text/plain"));
    let (status, _, body) = send(serve, get("/other", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(&body[..], b"not a client error\n");
}
