//! Range headers that try to make the server work (`cargo bench --bench amplification`), in the `http` group:
//! how long `MmapServe` takes over them. `tests/service/amplification.rs` asserts what is answered; the times
//! it used to bound (5 s and 10 s, which a busy machine can exceed) are measured here instead.
//!
//! - `ranges_10000_over_limit`: 10,000 one-byte members against the default limit of 1,024, answered 200
//!   with the whole 10,000-byte file;
//! - `ranges_10000_within_raised_limit`: 10,000 disjoint 200-byte members of a 10 MB file with
//!   `max_ranges(10_000)`, answered 206 with every part.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapServe};
use tower::ServiceExt;

#[path = "support/fixture.rs"]
mod support;
use support::fixture;

/// `bytes=` followed by `count` disjoint ranges of `width` bytes, `stride` apart.
fn spread(count: u64, width: u64, stride: u64) -> String {
    let specs: Vec<String> = (0..count)
        .map(|i| format!("{}-{}", i * stride, i * stride + width - 1))
        .collect();
    format!("bytes={}", specs.join(","))
}

/// Sends one GET of `path` with `range` and drains the body; returns the status and the bytes received.
async fn drain(service: &MmapServe<DirResolver>, path: &str, range: &str) -> (StatusCode, usize) {
    let request = Request::get(path)
        .header("range", range)
        .body(())
        .expect("request");
    let response: Response<_> = service.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body: Bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body.len())
}

fn amplification(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let _ = fixture(dir.path(), "f.bin", 10_000);
    let _ = fixture(dir.path(), "big.bin", 10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let default = MmapServe::new(DirResolver::new(dir.path()));
    let raised = MmapServe::new(DirResolver::new(dir.path())).max_ranges(10_000);
    let over = spread(10_000, 1, 1);
    let within = spread(10_000, 200, 1000);
    // What each case answers, checked once outside the timings.
    let answer = |service, path, range| runtime.block_on(drain(service, path, range));
    assert_eq!(answer(&default, "/f.bin", &over), (StatusCode::OK, 10_000));
    let (status, len) = answer(&raised, "/big.bin", &within);
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(len > 10_000 * 200, "every part, with its framing");

    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ranges_10000_over_limit", |b| {
        b.to_async(&runtime)
            .iter(|| drain(&default, "/f.bin", black_box(&over)))
    });
    g.sample_size(10);
    g.bench_function("ranges_10000_within_raised_limit", |b| {
        b.to_async(&runtime)
            .iter(|| drain(&raised, "/big.bin", black_box(&within)))
    });
    g.finish();
}

criterion_group!(benches, amplification);
criterion_main!(benches);
