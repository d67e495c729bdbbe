//! Heap allocations per request on the hot path (a cached, fresh mapping): counted with a counting global
//! allocator, on this thread only, from the service call to the last body frame. Counts are exact and
//! repeatable, unlike timings, so they are pinned here: a change that adds an allocation to the hot path
//! (or saves one) fails this test and has to say why.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use mmap_serve::{DirResolver, MmapServe};
use tower::ServiceExt;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an atomic and a
// thread-local `Cell` that needs no allocation (a `const` initialiser).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout, which the caller guarantees is valid.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while serving `request` and draining the body (the request is built
/// before counting starts: it is the client's, not the server's).
fn allocations_for(
    runtime: &tokio::runtime::Runtime,
    serve: &MmapServe<DirResolver>,
    uri: &str,
    headers: &[(&str, &str)],
) -> (u64, http::StatusCode) {
    let request = common::get(uri, headers);
    let serve = serve.clone();
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let status = runtime.block_on(async move {
        let response = serve.oneshot(request).await.expect("infallible");
        let status = response.status();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            drop(frame.expect("frame"));
        }
        status
    });
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed), status)
}

/// A request (name, URI, headers) and the allocations it costs.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u64);

#[test]
fn the_hot_path_allocates_only_what_it_must() {
    let fx = common::Fixture::new();
    fx.file("small.bin", 4096);
    fx.file("big.bin", 4 << 20);
    let serve = fx.serve();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let etag = {
        let (_, headers, _) =
            runtime.block_on(common::send(serve.clone(), common::get("/small.bin", &[])));
        common::text(&headers, "etag").to_string()
    };
    runtime.block_on(common::send(serve.clone(), common::get("/big.bin", &[])));

    // Every answer pays 3: the resolved path (1) and the response's header map (2, hyper needs one).
    // A range adds its Content-Length and Content-Range (1 each, formatted on the stack); multipart adds
    // the planned ranges, the framing buffer (which also holds its Content-Type and Content-Length), its
    // part table, the body state and the framing buffer's first shared slice; a 416 adds its Content-Range.
    let cases: [Case; 5] = [
        ("full 4 KiB", "/small.bin", &[], 3),
        (
            "4 KiB range",
            "/big.bin",
            &[("range", "bytes=4096-8191")],
            5,
        ),
        (
            "3 ranges",
            "/big.bin",
            &[("range", "bytes=0-1023,2000000-2001023,4193280-4194303")],
            8,
        ),
        ("304", "/small.bin", &[("if-none-match", &etag)], 3),
        ("416", "/big.bin", &[("range", "bytes=99999999-")], 4),
    ];
    let mut report = Vec::new();
    for (name, uri, headers, _) in &cases {
        // The first call warms what is allocated once per thread (the resolver's media-type memo, ...).
        allocations_for(&runtime, &serve, uri, headers);
        let (n, status) = allocations_for(&runtime, &serve, uri, headers);
        report.push((name, n, status));
    }
    println!("allocations per request: {report:?}");
    for ((name, n, status), (_, _, _, expected)) in report.iter().zip(&cases) {
        assert!(status.as_u16() < 500, "{name}: {status}");
        // Exact, not a bound: one allocation fewer is news too, and the pinned count should say so.
        assert_eq!(n, expected, "{name}: allocations per request");
    }
}
