//! Instructions per request on the hot path, as callgrind counts them: exact and repeatable where timings on
//! a shared machine are not, so a change to the hot path can be judged by one run before and one after.
//!
//! `bench/instructions.sh` runs this binary under `valgrind --tool=callgrind` twice per case, with two request
//! counts, and prints the difference divided by the difference in requests (set-up cancels out). Each request
//! is a `oneshot` call of `MmapServe` on a cached, fresh mapping with its body drained, the request built
//! inside the loop as a server would receive it. Run directly (`cargo bench --bench instructions`), it serves
//! every case once and checks the status.
//!
//! ```sh
//! target/release/deps/instructions-* CASE COUNT     # CASE: full_4k, range_4k, multipart_3, not_modified,
//!                                                   # gzip_4k, gzip_missing_4k, identity_variants_on_4k
//! ```
//!
//! The last three go to a second service whose `DirResolver` has `precompressed_gzip()` on: `gzip_4k` gets
//! the cached sidecar `small.bin.gz`, `gzip_missing_4k` asks for gzip of a file without one (the absence
//! remembered), `identity_variants_on_4k` sends no Accept-Encoding. The first four are unchanged by the
//! feature: their resolver has no sidecar configured.
//!
//! The cache has the default revalidation policy (a watch, on Linux); `REVALIDATE=every` runs the same cases
//! under `Revalidate::Every(1 s)`, to compare the two hot paths in one build.

use std::hint::black_box;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

use mmap_serve::{DirResolver, MmapCache, MmapServe, Revalidate};
use tower::ServiceExt;

/// (name, URI, Range, expected status); `not_modified` sends the file's ETag in If-None-Match.
const CASES: [(&str, &str, &str, StatusCode); 7] = [
    ("full_4k", "/small.bin", "", StatusCode::OK),
    (
        "range_4k",
        "/big.bin",
        "bytes=4096-8191",
        StatusCode::PARTIAL_CONTENT,
    ),
    (
        "multipart_3",
        "/big.bin",
        "bytes=0-1023,536870912-536871935,1073740800-1073741823",
        StatusCode::PARTIAL_CONTENT,
    ),
    ("not_modified", "/small.bin", "", StatusCode::NOT_MODIFIED),
    ("gzip_4k", "/small.bin", "", StatusCode::OK),
    ("gzip_missing_4k", "/other.bin", "", StatusCode::OK),
    ("identity_variants_on_4k", "/small.bin", "", StatusCode::OK),
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("small.bin"), vec![7u8; 4096]).expect("write small.bin");
    std::fs::write(dir.path().join("other.bin"), vec![7u8; 4096]).expect("write other.bin");
    // Not real gzip: only its being there counts.
    std::fs::write(dir.path().join("small.bin.gz"), vec![8u8; 512]).expect("write small.bin.gz");
    // Sparse: the requests slice the mapping and never read its pages.
    std::fs::File::create(dir.path().join("big.bin"))
        .and_then(|f| f.set_len(1 << 30))
        .expect("create big.bin");
    let revalidation = match std::env::var("REVALIDATE").as_deref() {
        Ok("every") => Revalidate::Every(Duration::from_secs(1)),
        _ => Revalidate::default(),
    };
    let cache = Arc::new(MmapCache::builder().revalidation(revalidation).build());
    let serve = MmapServe::with_cache(DirResolver::new(dir.path()), Arc::clone(&cache));
    let variants = MmapServe::with_cache(DirResolver::new(dir.path()).precompressed_gzip(), cache);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let etag = runtime.block_on(async {
        let response = serve
            .clone()
            .oneshot(request("/small.bin", "", "", ""))
            .await;
        response.expect("infallible").headers()["etag"]
            .to_str()
            .expect("ascii")
            .to_owned()
    });
    let (selected, count) = match args.as_slice() {
        [case, count] => (
            Some(case.as_str()),
            count.parse().expect("COUNT is a number"),
        ),
        _ => (None, 1),
    };
    for (name, uri, range, expected) in CASES {
        if selected.is_some_and(|s| s != name) {
            continue;
        }
        let etag = if name == "not_modified" {
            etag.as_str()
        } else {
            ""
        };
        let (serve, accept) = match name {
            "gzip_4k" | "gzip_missing_4k" => (&variants, "gzip"),
            "identity_variants_on_4k" => (&variants, ""),
            _ => (&serve, ""),
        };
        runtime.block_on(async {
            // Warm: the sidecar mapped, or its absence remembered.
            let warm = serve
                .clone()
                .oneshot(request(uri, range, etag, accept))
                .await;
            let _ = warm.expect("infallible").into_body().collect().await;
            for _ in 0..count {
                let response = serve
                    .clone()
                    .oneshot(request(uri, range, etag, accept))
                    .await;
                let response = response.expect("infallible");
                assert_eq!(response.status(), expected, "{name}");
                let mut body = response.into_body();
                while let Some(frame) = body.frame().await {
                    black_box(frame.expect("frame"));
                }
            }
        });
        if selected.is_none() {
            println!("{name}: {expected}");
        }
    }
}

fn request(uri: &str, range: &str, etag: &str, accept_encoding: &str) -> Request<()> {
    let mut builder = Request::get(uri);
    if !accept_encoding.is_empty() {
        builder = builder.header("accept-encoding", accept_encoding);
    }
    if !range.is_empty() {
        builder = builder.header("range", range);
    }
    if !etag.is_empty() {
        builder = builder.header("if-none-match", etag);
    }
    builder.body(()).expect("a valid request")
}
