//! Helpers for the crate's unit tests only: no behaviour of the crate lives here.

/// Re-running the test binary on one test in a child process: the same file the integration tests use as
/// `common::child`, so the helper exists once.
#[path = "../tests/common/child.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with the integration tests, which use other parts of it, and written with their `pub`"
)]
pub(crate) mod child;

/// `len` bytes of the fixture pattern: byte `i` is `i % 251`, so any range can be checked by recomputing it.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
