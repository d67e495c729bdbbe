//! Bad days: the process out of file descriptors answers 503 with Retry-After, and recovers when they return.
//! Runs in a child process, because it lowers the process's descriptor limit.

mod common;

use http::StatusCode;
use mmap_serve::{DirResolver, MmapServe};

const CHILD: &str = "MMAP_SERVE_RESOURCES_CHILD";

fn in_child(test: &str) -> bool {
    common::in_child(CHILD, test)
}

#[test]
fn out_of_file_descriptors_answers_503_and_recovers() {
    if !in_child("out_of_file_descriptors_answers_503_and_recovers") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    common::net::pattern_file(dir.path(), "big.bin", 1 << 20);
    let serve = MmapServe::new(DirResolver::new(dir.path()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit");
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    let (status, headers, body) =
        runtime.block_on(common::send(serve.clone(), common::get("/big.bin", &[])));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert_eq!(common::text(&headers, "retry-after"), "1");
    assert!(serve.cache().is_empty(), "a failure is not cached");

    drop(hog);
    let (status, _, body) =
        runtime.block_on(common::send(serve.clone(), common::get("/big.bin", &[])));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 1 << 20);
}
