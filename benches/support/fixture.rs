//! The benches' fixture files, written once per bench: byte `i` is `i % 251`, as in the tests.

use std::path::{Path, PathBuf};

/// Writes `len` pattern bytes to `dir/name` and returns the path.
pub fn fixture(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, data).expect("write fixture");
    path
}
