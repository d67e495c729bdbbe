//! Bad days: the process out of file descriptors, or out of address space for a mapping, answers 503 with
//! Retry-After, and recovers when they return. Each test runs in a child process, because it lowers one of the
//! process's limits.

mod common;

use common::child;
use http::StatusCode;
use mmap_serve::{DirResolver, MmapServe};

#[test]
fn out_of_file_descriptors_answers_503_and_recovers() {
    if !child::in_child("out_of_file_descriptors_answers_503_and_recovers") {
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

/// The process's address space in bytes (`VmSize`), as the kernel counts it against `RLIMIT_AS`.
fn address_space_in_use() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .expect("VmSize in /proc/self/status");
    kib * 1024
}

/// Sets the soft `RLIMIT_AS` to `bytes` (at most the hard limit, which stays, so that the soft one can be
/// raised again) and returns the soft limit it replaced.
fn set_soft_address_space_limit(bytes: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) };
    assert_eq!(rc, 0, "getrlimit");
    let previous = limit.rlim_cur;
    limit.rlim_cur = bytes.min(limit.rlim_max);
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    assert_eq!(rc, 0, "setrlimit");
    previous
}

#[test]
fn out_of_address_space_answers_503_and_recovers() {
    if !child::in_child("out_of_address_space_answers_503_and_recovers") {
        return;
    }
    // What an exhausted `vm.max_map_count` looks like too: `mmap` fails with ENOMEM.
    const LEN: u64 = 256 << 20;
    // Room for the runtime and the allocator, a quarter of the mapping that must not fit.
    const MARGIN: u64 = 64 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let big = std::fs::File::create(dir.path().join("big.bin")).expect("create big.bin");
    big.set_len(LEN).expect("extend big.bin (sparse)");
    drop(big);
    common::net::pattern_file(dir.path(), "small.bin", 1 << 10);
    let serve = MmapServe::new(DirResolver::new(dir.path()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // Start the blocking pool's thread (its stack, its malloc arena) while address space is plentiful.
    let (status, _, _) =
        runtime.block_on(common::send(serve.clone(), common::get("/small.bin", &[])));
    assert_eq!(status, StatusCode::OK);
    serve.cache().clear();

    let previous = set_soft_address_space_limit(address_space_in_use() + MARGIN);
    let (status, headers, body) =
        runtime.block_on(common::send(serve.clone(), common::get("/big.bin", &[])));
    set_soft_address_space_limit(previous);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert_eq!(common::text(&headers, "retry-after"), "1");
    assert!(serve.cache().is_empty(), "a failure is not cached");

    let (status, _, body) =
        runtime.block_on(common::send(serve.clone(), common::get("/big.bin", &[])));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, LEN);
}
