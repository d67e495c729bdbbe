//! What verifying blocks costs `CidResolver`: a hit on a verified block against the same hit with
//! verification off (a 4 KiB range of a 1 MiB raw block, through `oneshot`, body drained), and a first
//! request, which maps and hashes the block (`first_1m_*`; the 1 GiB figures are in the README, measured with
//! `examples/ipfs_gateway.rs` and curl).
//!
//! `cargo bench --bench ipfs`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use mmap_serve::{CidResolver, MmapCache, MmapServe};
use multihash_codetable::{Code, MultihashDigest};
use std::sync::Arc;
use tower::ServiceExt;

const MIB: usize = 1 << 20;

/// Writes 1 MiB of pattern bytes into `store` as a raw block hashed with `code`; returns its CID.
fn block(store: &std::path::Path, code: Code) -> String {
    let data: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    let cid = cid::Cid::new_v1(0x55, code.digest(&data)).to_string();
    std::fs::write(store.join(&cid), &data).expect("write the block");
    cid
}

async fn drain(serve: &MmapServe<CidResolver>, uri: &str, range: Option<&str>) -> usize {
    let mut request = Request::get(uri);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = serve
        .clone()
        .oneshot(request.body(()).expect("request"))
        .await
        .expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.into_body().collect().await.expect("body");
    body.to_bytes().len()
}

fn cid(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let store = tempfile::tempdir().expect("store");
    let sha = block(store.path(), Code::Sha2_256);
    let b3 = block(store.path(), Code::Blake3_256);
    let mut g = c.benchmark_group("cid");
    for (id, verify) in [("hit_4k_verified", true), ("hit_4k_unverified", false)] {
        let serve = MmapServe::new(CidResolver::new(store.path()).verify(verify));
        let uri = format!("/ipfs/{sha}?format=raw");
        rt.block_on(drain(&serve, &uri, None));
        g.throughput(Throughput::Bytes(4096));
        g.bench_function(id, |b| {
            b.to_async(&rt)
                .iter(|| drain(&serve, &uri, Some("bytes=4096-8191")))
        });
    }
    for (id, cid) in [("first_1m_sha2_256", &sha), ("first_1m_blake3", &b3)] {
        let cache = Arc::new(MmapCache::new(16));
        let serve = MmapServe::with_cache(CidResolver::new(store.path()), Arc::clone(&cache));
        let uri = format!("/ipfs/{cid}?format=raw");
        g.throughput(Throughput::Bytes(MIB as u64));
        g.bench_function(id, |b| {
            b.to_async(&rt).iter_batched(
                || cache.clear(),
                |()| drain(&serve, &uri, Some("bytes=0-0")),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, cid);
criterion_main!(benches);
