//! Criterion benchmarks, one group per layer.
//!
//! - `cargo bench --bench http_benchmarks -- mmap`: the mmap core — a cache hit, a cache miss on a 1 MiB file,
//!   4 KiB and 1 MiB range slices, and a mapped range against `File::read_at` of the same bytes.
//! - `cargo bench --bench http_benchmarks -- http`: `MmapServe` beside tower-http's `ServeDir` on the same
//!   files, each called with `oneshot` and its body drained — a full 4 KiB file, a random 4 KiB range of a
//!   1 GiB file, a 3-range request and a 304.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapCache, MmapServe, Revalidate};
use tower::ServiceExt;

const MIB: u64 = 1 << 20;

#[path = "support/fixture.rs"]
mod support;
use support::fixture;

fn mmap(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let one = fixture(dir.path(), "one.bin", MIB);
    let big = fixture(dir.path(), "big.bin", 64 * MIB);
    let cache = MmapCache::new(100);
    let mut g = c.benchmark_group("mmap");

    cache.get_or_create(&one).expect("map");
    g.bench_function("cache_hit", |b| {
        b.iter(|| cache.get_or_create(black_box(&one)))
    });
    g.bench_function("cache_hit_fresh", |b| {
        b.iter(|| cache.get_if_fresh(black_box(&one), Revalidate::default()))
    });
    g.bench_function("cache_miss_1m", |b| {
        b.iter_batched(
            || cache.remove(&one),
            |_| cache.get_or_create(black_box(&one)).expect("map"),
            BatchSize::PerIteration,
        )
    });

    let file = cache.get_or_create(&big).expect("map");
    for (name, len) in [("range_4k", 4096), ("range_1m", MIB)] {
        g.bench_function(name, |b| {
            let mut offset = 0;
            b.iter(|| {
                offset = (offset + 7 * 4096 + 123) % (64 * MIB - len);
                file.range(black_box(offset..offset + len))
                    .expect("in bounds")
            })
        });
    }

    let handle = File::open(&big).expect("open");
    for (label, len) in [("1m", MIB), ("64m", 64 * MIB)] {
        g.throughput(Throughput::Bytes(len));
        g.bench_with_input(BenchmarkId::new("mapped_range", label), &len, |b, &len| {
            b.iter(|| file.range(black_box(0..len)).expect("in bounds"))
        });
        let mut buf = vec![0u8; len as usize];
        g.bench_with_input(BenchmarkId::new("read_at", label), &len, |b, _| {
            b.iter(|| handle.read_exact_at(black_box(&mut buf), 0).expect("read"))
        });
    }
    g.finish();
}

/// Sends `request` to a clone of `service` and drains the body; returns the status and the bytes received.
async fn drain<S, B>(service: &S, request: Request<()>) -> (StatusCode, usize)
where
    S: tower::Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let mut body = std::pin::pin!(response.into_body());
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            received += data.len();
        }
    }
    (status, received)
}

fn http(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    fixture(dir.path(), "small.bin", 4096);
    let gib = dir.path().join("big.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(File::create(&gib).expect("create"));
        let block: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
        for _ in 0..1024 {
            f.write_all(&block).expect("write");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let mmap = MmapServe::new(DirResolver::new(dir.path()));
    let serve_dir = tower_http::services::ServeDir::new(dir.path());
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut request = Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).expect("request")
    };
    let etag_of = |path: &str| {
        runtime.block_on(async {
            let (mmap_tag, dir_tag) = (
                mmap.clone().oneshot(get(path, &[])).await.expect("mmap"),
                serve_dir
                    .clone()
                    .oneshot(get(path, &[]))
                    .await
                    .expect("servedir"),
            );
            let tag = |h: &http::HeaderMap| {
                h.get("etag")
                    .map(|v| v.to_str().expect("ascii").to_string())
            };
            (tag(mmap_tag.headers()), tag(dir_tag.headers()))
        })
    };
    let (mmap_etag, dir_etag) = etag_of("/small.bin");
    let mmap_etag = mmap_etag.expect("MmapServe sends an ETag");

    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("full_4k/mmap_serve", |b| {
        b.to_async(&runtime)
            .iter(|| drain(&mmap, get("/small.bin", &[])))
    });
    g.bench_function("full_4k/serve_dir", |b| {
        b.to_async(&runtime)
            .iter(|| drain(&serve_dir, get("/small.bin", &[])))
    });

    let mut offset = 0u64;
    let mut next_range = move || {
        offset = (offset + 7_919 * 4096 + 4_001) % ((1 << 30) - 4096);
        format!("bytes={}-{}", offset, offset + 4095)
    };
    let (mmap_ref, dir_ref) = (&mmap, &serve_dir);
    for (name, service) in [("mmap_serve", true), ("serve_dir", false)] {
        g.bench_function(format!("range_4k_of_1g/{name}"), |b| {
            b.to_async(&runtime).iter_batched(
                &mut next_range,
                |range| async move {
                    let request = get("/big.bin", &[("range", &range)]);
                    let (status, n) = if service {
                        drain(mmap_ref, request).await
                    } else {
                        drain(dir_ref, request).await
                    };
                    assert_eq!((status, n), (StatusCode::PARTIAL_CONTENT, 4096));
                },
                BatchSize::SmallInput,
            )
        });
    }

    g.throughput(Throughput::Elements(1));
    let three = [("range", "bytes=0-99,524288-524387,1048476-1048575")];
    g.bench_function("multipart_3/mmap_serve", |b| {
        b.to_async(&runtime)
            .iter(|| drain(&mmap, get("/big.bin", &three)))
    });
    // ServeDir has no multipart support: it answers 416, which is what this measures.
    g.bench_function("multipart_3/serve_dir", |b| {
        b.to_async(&runtime)
            .iter(|| drain(&serve_dir, get("/big.bin", &three)))
    });

    g.bench_function("not_modified/mmap_serve", |b| {
        let inm = [("if-none-match", mmap_etag.as_str())];
        b.to_async(&runtime)
            .iter(|| drain(&mmap, get("/small.bin", &inm)))
    });
    if let Some(dir_etag) = dir_etag {
        g.bench_function("not_modified/serve_dir", |b| {
            let inm = [("if-none-match", dir_etag.as_str())];
            b.to_async(&runtime)
                .iter(|| drain(&serve_dir, get("/small.bin", &inm)))
        });
    } else {
        // ServeDir sends no ETag; If-Modified-Since is its only validator.
        let (_, lm) = runtime.block_on(async {
            let r = serve_dir
                .clone()
                .oneshot(get("/small.bin", &[]))
                .await
                .expect("servedir");
            (
                r.status(),
                r.headers()["last-modified"]
                    .to_str()
                    .expect("ascii")
                    .to_string(),
            )
        });
        g.bench_function("not_modified/serve_dir", |b| {
            let ims = [("if-modified-since", lm.as_str())];
            b.to_async(&runtime)
                .iter(|| drain(&serve_dir, get("/small.bin", &ims)))
        });
    }
    g.finish();
}

criterion_group!(benches, mmap, http);
criterion_main!(benches);
