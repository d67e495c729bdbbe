//! `SafetensorsResolver` through `MmapServe`: checkpoints written by the real Python `safetensors` and `numpy`
//! packages (tests/safetensors_client.py) read back tensor by tensor over HTTP and compared with
//! `safe_open(...).get_tensor(name)`; ETags, 304 and rewrites; and, without Python, malformed files,
//! multipart ranges inside a tensor and a file truncated below its tensors.
//!
//! The Python tests install `safetensors` and `numpy` with pip when they are missing, and skip with a printed
//! reason when that fails; `.ci/run` installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use common::{get, parse_byteranges, send, text};
use http::StatusCode;
use mmap_serve::{DirResolver, MmapCache, MmapServe, Revalidate, SafetensorsResolver};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/safetensors_client.py");

/// Whether `python3` can import safetensors and numpy, after a `pip install` if it could not; prints why
/// not when it cannot.
fn python_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let imports = || {
            Command::new("python3")
                .args(["-c", "import safetensors, numpy"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if imports() {
            return true;
        }
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "safetensors", "numpy"])
            .status();
        let ready = imports();
        if !ready {
            eprintln!(
                "skipped: python3 with the safetensors and numpy packages is not available (pip install safetensors numpy; CI installs them)"
            );
        }
        ready
    })
}

/// Runs the Python client with `args`; panics with its output when it fails.
fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(CLIENT)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Writes the Python checkpoint `variant` to `path` by write-then-rename (a new inode, as a deploy would).
fn write_checkpoint(path: &Path, variant: u32) {
    let tmp = path.with_extension("tmp");
    python(&[
        "write",
        tmp.to_str().expect("UTF-8 path"),
        &variant.to_string(),
    ]);
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A service over `root` whose cache re-checks the file at every request (so a test sees a change at once).
fn serve(root: &Path) -> MmapServe<SafetensorsResolver> {
    let cache = Arc::new(
        MmapCache::builder()
            .revalidation(Revalidate::Always)
            .build(),
    );
    let resolver = SafetensorsResolver::new(DirResolver::new(root), Arc::clone(&cache));
    MmapServe::with_cache(resolver, cache)
}

/// A safetensors file with header `json` and `data_len` data bytes (byte `i` is `i % 251`).
fn safetensors_bytes(json: impl AsRef<[u8]>, data_len: usize) -> Vec<u8> {
    let json = json.as_ref();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json);
    out.extend((0..data_len).map(|i| (i % 251) as u8));
    out
}

/// The names of the tensors in the header the service serves for `file_url`.
async fn tensor_names(svc: &MmapServe<SafetensorsResolver>, file_url: &str) -> Vec<String> {
    let (status, _, body) = send(svc.clone(), get(&format!("{file_url}/header"), &[])).await;
    assert_eq!(status, StatusCode::OK);
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).expect("the header is JSON");
    let mut names: Vec<_> = header
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "__metadata__")
        .collect();
    names.sort();
    names
}

fn tensor_url(file_url: &str, name: &str) -> String {
    let encoded: String = percent_encode(name);
    format!("{file_url}/tensors/{encoded}")
}

/// `name` with every byte but unreserved ones percent-encoded (so `/` is `%2F`).
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tensor_python_wrote_reads_back_over_http_as_safe_open_gives_it() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.safetensors");
    write_checkpoint(&path, 0);
    let app = axum::Router::new().fallback_service(serve(dir.path()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/m.safetensors",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let path_text = path.to_str().expect("UTF-8 path").to_owned();
    let out = tokio::task::spawn_blocking(move || python(&["check", &path_text, &url]))
        .await
        .expect("the client ran");
    assert_eq!(out.trim(), "checked 15 tensors");
}

#[tokio::test]
async fn a_tensor_s_etag_answers_304_and_rewriting_the_file_changes_every_tensor_s_etag() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.safetensors");
    write_checkpoint(&path, 0);
    let svc = serve(dir.path());
    let names = tensor_names(&svc, "/m.safetensors").await;
    assert_eq!(names.len(), 15);
    let etags = |svc: MmapServe<SafetensorsResolver>, names: Vec<String>| async move {
        let mut tags = Vec::new();
        for name in &names {
            let (status, headers, _) =
                send(svc.clone(), get(&tensor_url("/m.safetensors", name), &[])).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            tags.push(text(&headers, "etag").to_owned());
        }
        tags
    };
    let before = etags(svc.clone(), names.clone()).await;
    let mut unique = before.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "no two tensors share an ETag");
    for (name, tag) in names.iter().zip(&before) {
        assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
        let url = tensor_url("/m.safetensors", name);
        let (status, headers, body) = send(svc.clone(), get(&url, &[("if-none-match", tag)])).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{name}");
        assert_eq!(text(&headers, "etag"), tag);
        assert!(body.is_empty());
        // Another tensor's tag does not validate this one.
        let other = before.iter().find(|t| *t != tag).expect("another tag");
        let (status, _, _) = send(svc.clone(), get(&url, &[("if-none-match", other)])).await;
        assert_eq!(status, StatusCode::OK, "{name}");
    }

    // The same names with other values, deployed by rename.
    write_checkpoint(&path, 1);
    let renamed = etags(svc.clone(), names.clone()).await;
    for ((name, old), new) in names.iter().zip(&before).zip(&renamed) {
        assert_ne!(old, new, "{name}");
        let url = tensor_url("/m.safetensors", name);
        let (status, _, _) = send(svc.clone(), get(&url, &[("if-none-match", old)])).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name}: the old tag no longer matches"
        );
    }

    // And rewritten in place (the same inode).
    python(&["write", path.to_str().expect("UTF-8 path"), "2"]);
    let rewritten = etags(svc.clone(), names.clone()).await;
    for ((name, old), new) in names.iter().zip(&renamed).zip(&rewritten) {
        assert_ne!(old, new, "{name}");
    }
}

#[tokio::test]
async fn malformed_files_are_a_500_that_says_so_and_the_file_itself_is_still_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#;
    let mut past_end = safetensors_bytes(good, 4);
    past_end[..8].copy_from_slice(&1_000u64.to_le_bytes());
    let mut over_cap = safetensors_bytes(good, 4);
    over_cap[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("short", vec![1, 2, 3]),
        ("past-end", past_end),
        ("over-cap", over_cap),
        ("not-utf8", safetensors_bytes(b"{\"\xff\":1}", 0)),
        ("not-json", safetensors_bytes("{\"a\":{", 0)),
        (
            "overlap",
            safetensors_bytes(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                6,
            ),
        ),
        (
            "reversed",
            safetensors_bytes(
                r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#,
                4,
            ),
        ),
        (
            "outside",
            safetensors_bytes(
                r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#,
                4,
            ),
        ),
        (
            "dtype-shape",
            safetensors_bytes(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                4,
            ),
        ),
    ];
    for (name, bytes) in &cases {
        std::fs::write(dir.path().join(format!("{name}.safetensors")), bytes).expect("write");
    }
    let svc = serve(dir.path());
    for (name, bytes) in &cases {
        for part in ["tensors/a", "header"] {
            let (status, headers, body) = send(
                svc.clone(),
                get(&format!("/{name}.safetensors/{part}"), &[]),
            )
            .await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{name} {part}");
            assert_eq!(&body[..], b"malformed safetensors header\n", "{name}");
            assert!(headers.get("etag").is_none());
        }
        let (status, _, body) = send(svc.clone(), get(&format!("/{name}.safetensors"), &[])).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &bytes[..]),
            "{name}: the file as a file"
        );
    }
    // A good file beside them: an unknown tensor is 404, a malformed escape 400.
    std::fs::write(
        dir.path().join("good.safetensors"),
        safetensors_bytes(good, 4),
    )
    .expect("write");
    let status = |uri: &'static str| {
        let svc = svc.clone();
        async move { send(svc, get(uri, &[])).await.0 }
    };
    assert_eq!(status("/good.safetensors/tensors/a").await, StatusCode::OK);
    assert_eq!(
        status("/good.safetensors/tensors/b").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("/good.safetensors/tensors/__metadata__").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("/good.safetensors/tensors/%zz").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status("/missing.safetensors/tensors/a").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("/../good.safetensors/tensors/a").await,
        StatusCode::BAD_REQUEST
    );
}

/// A mapped checkpoint (past the small-file threshold) of two U8 tensors: `a` 100,000 bytes, then `b` 50,000.
fn two_tensor_file(dir: &Path) -> (PathBuf, Vec<u8>, u64) {
    let json = r#"{"a":{"dtype":"U8","shape":[1000,100],"data_offsets":[0,100000]},"b":{"dtype":"U8","shape":[50000],"data_offsets":[100000,150000]}}"#;
    let bytes = safetensors_bytes(json, 150_000);
    let path = dir.join("two.safetensors");
    std::fs::write(&path, &bytes).expect("write");
    (path, bytes, 8 + json.len() as u64)
}

#[tokio::test]
async fn several_ranges_inside_a_tensor_are_a_multipart_of_the_tensor_s_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_path, bytes, data) = two_tensor_file(dir.path());
    let svc = serve(dir.path());
    let b = &bytes[(data + 100_000) as usize..];
    let (status, headers, body) = send(
        svc.clone(),
        get(
            "/two.safetensors/tensors/b",
            &[("range", "bytes=0-9,40000-40099,-5")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let boundary = common::boundary_of(text(&headers, "content-type"));
    let parts = parse_byteranges(&body, &boundary);
    assert_eq!(parts.len(), 3);
    for part in parts {
        assert_eq!(part.complete_length, 50_000);
        assert_eq!(
            part.content_type.as_deref(),
            Some("application/octet-stream")
        );
        let r = part.range.start as usize..part.range.end as usize;
        assert_eq!(&part.data[..], &b[r], "{:?}", part.range);
    }
    // If-Range with the tensor's own tag keeps the range; with the file's tag it does not apply.
    let (_, headers, _) = send(svc.clone(), get("/two.safetensors/tensors/b", &[])).await;
    let tag = text(&headers, "etag").to_owned();
    let (_, file_headers, _) = send(svc.clone(), get("/two.safetensors", &[])).await;
    let file_tag = text(&file_headers, "etag").to_owned();
    assert!(
        tag.starts_with(file_tag.trim_end_matches('"')),
        "{tag} from {file_tag}"
    );
    let ranged = |tag: String| {
        let svc = svc.clone();
        async move {
            let h = [("range", "bytes=5-9"), ("if-range", tag.as_str())];
            send(svc, get("/two.safetensors/tensors/b", &h)).await
        }
    };
    let (status, _, body) = ranged(tag).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::PARTIAL_CONTENT, &b[5..10])
    );
    let (status, _, body) = ranged(file_tag).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 50_000));
}

#[tokio::test]
async fn a_parsed_mapping_serves_every_tensor_from_one_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    two_tensor_file(dir.path());
    let cache = Arc::new(MmapCache::new(8));
    let resolver = SafetensorsResolver::new(DirResolver::new(dir.path()), Arc::clone(&cache));
    let svc = MmapServe::with_cache(resolver, Arc::clone(&cache));
    for _ in 0..5 {
        for uri in [
            "/two.safetensors/tensors/a",
            "/two.safetensors/tensors/b",
            "/two.safetensors/header",
        ] {
            assert_eq!(send(svc.clone(), get(uri, &[])).await.0, StatusCode::OK);
        }
    }
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.entries), (1, 1), "{stats:?}");
    assert!(stats.mapped_bytes > 0, "the file is mapped");
}

#[tokio::test]
async fn a_file_truncated_below_its_tensors_is_a_500_and_never_a_slice_past_its_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, bytes, data) = two_tensor_file(dir.path());
    let svc = serve(dir.path());
    let (status, _, body) = send(svc.clone(), get("/two.safetensors/tensors/b", &[])).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &bytes[(data + 100_000) as usize..])
    );
    // Cut inside `a`: `b` lies wholly past the new end.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(data + 50_000)
        .expect("truncate");
    for uri in ["/two.safetensors/tensors/b", "/two.safetensors/tensors/a"] {
        let (status, _, body) = send(svc.clone(), get(uri, &[])).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert_eq!(&body[..], b"malformed safetensors header\n");
    }
    let (status, headers, _) = send(svc.clone(), get("/two.safetensors", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(common::content_length(&headers), data + 50_000);
}
