//! Instructions per request for tensors of a cached safetensors file, as callgrind counts them, beside the same
//! 4 KiB range of a plain file: what `SafetensorsResolver` and windows add to the hot path.
//!
//! Run as `benches/instructions.rs` is (see `bench/instructions.sh`): under `valgrind --tool=callgrind` with two
//! request counts per case, the difference divided by the difference in requests. Run directly
//! (`cargo bench --bench tensor_instructions`), it serves every case once and checks the status.
//!
//! ```sh
//! exe=$(cargo bench --bench tensor_instructions --no-run 2>&1 | sed -n 's/.*(\(.*tensor_instructions-[0-9a-f]*\)).*/\1/p')
//! for n in 300 3300; do valgrind --tool=callgrind --callgrind-out-file=/dev/null $exe tensor_range_4k $n 2>&1 | grep Collected; done
//! ```
//!
//! Cases: `range_4k` (a 4 KiB range of a plain mapped file, `DirResolver`), `wrapped_range_4k` (the same request
//! through `SafetensorsResolver`, which hands it to its `DirResolver`), `tensor_4k` (a whole 4 KiB tensor) and
//! `tensor_range_4k` (a 4 KiB range of a 1 MiB tensor), both of a mapped file whose header is parsed.

use std::hint::black_box;
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapCache, MmapServe, SafetensorsResolver};
use tower::ServiceExt;

/// (name, whether through `SafetensorsResolver`, URI, Range, expected status).
const CASES: [(&str, bool, &str, &str, StatusCode); 4] = [
    (
        "range_4k",
        false,
        "/big.bin",
        "bytes=4096-8191",
        StatusCode::PARTIAL_CONTENT,
    ),
    (
        "wrapped_range_4k",
        true,
        "/big.bin",
        "bytes=4096-8191",
        StatusCode::PARTIAL_CONTENT,
    ),
    (
        "tensor_4k",
        true,
        "/m.safetensors/tensors/t",
        "",
        StatusCode::OK,
    ),
    (
        "tensor_range_4k",
        true,
        "/m.safetensors/tensors/model.layers.0.mlp.up_proj.weight",
        "bytes=4096-8191",
        StatusCode::PARTIAL_CONTENT,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    // Sparse: the requests slice the mappings and never read their pages.
    std::fs::File::create(dir.path().join("big.bin"))
        .and_then(|f| f.set_len(1 << 30))
        .expect("create big.bin");
    let json = r#"{"t":{"dtype":"U8","shape":[4096],"data_offsets":[0,4096]},"model.layers.0.mlp.up_proj.weight":{"dtype":"F16","shape":[512,1024],"data_offsets":[4096,1052672]}}"#;
    let mut checkpoint = (json.len() as u64).to_le_bytes().to_vec();
    checkpoint.extend_from_slice(json.as_bytes());
    checkpoint.resize(checkpoint.len() + 1_052_672, 0);
    std::fs::write(dir.path().join("m.safetensors"), checkpoint).expect("write m.safetensors");

    let cache = Arc::new(MmapCache::default());
    let plain = MmapServe::with_cache(DirResolver::new(dir.path()), Arc::clone(&cache));
    let tensors = MmapServe::with_cache(
        SafetensorsResolver::new(DirResolver::new(dir.path()), Arc::clone(&cache)),
        cache,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (selected, count) = match args.as_slice() {
        [case, count] => (
            Some(case.as_str()),
            count.parse().expect("COUNT is a number"),
        ),
        _ => (None, 1),
    };
    for (name, wrapped, uri, range, expected) in CASES {
        if selected.is_some_and(|s| s != name) {
            continue;
        }
        runtime.block_on(async {
            for _ in 0..count {
                let response = if wrapped {
                    tensors.clone().oneshot(request(uri, range)).await
                } else {
                    plain.clone().oneshot(request(uri, range)).await
                };
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

fn request(uri: &str, range: &str) -> Request<()> {
    let mut builder = Request::get(uri);
    if !range.is_empty() {
        builder = builder.header("range", range);
    }
    builder.body(()).expect("a valid request")
}
