//! Clients nobody here wrote, against the `serve` example binary: curl (single and multi-range, and a
//! resumed download with `-C -`) and aria2c (8 connections, segmented). Each skips with a printed reason when
//! its client is not installed; `.ci/run` installs both.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::find;
use common::net::{Serve, check_multipart, have, pattern_file};

const LEN: usize = 64 << 20;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8(out.stdout)
        .expect("hex")
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

fn fixture() -> (tempfile::TempDir, PathBuf, Serve) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("root")).expect("root");
    let file = pattern_file(&dir.path().join("root"), "big.bin", LEN);
    let serve = Serve::start(&dir.path().join("root"));
    (dir, file, serve)
}

#[test]
fn aria2c_segmented_download_matches_sha256() {
    if !have("aria2c") {
        return;
    }
    let (dir, file, serve) = fixture();
    let out_dir = dir.path().join("aria");
    let status = Command::new("aria2c")
        .args([
            "-x",
            "8",
            "-s",
            "8",
            "-k",
            "1M",
            "--quiet=true",
            "--allow-overwrite=true",
            "--file-allocation=none",
        ])
        .arg("-d")
        .arg(&out_dir)
        .args(["-o", "big.bin"])
        .arg(format!("{}/big.bin", serve.url))
        .status()
        .expect("run aria2c");
    assert!(status.success(), "aria2c failed: {status}");
    assert_eq!(sha256(&out_dir.join("big.bin")), sha256(&file));
}

#[test]
fn curl_resumes_an_interrupted_download() {
    if !have("curl") {
        return;
    }
    let (dir, file, serve) = fixture();
    let out = dir.path().join("partial.bin");
    let url = format!("{}/big.bin", serve.url);
    // Interrupted: a rate limit and a time limit stop it part-way (curl exits 28, operation timed out).
    let first = Command::new("curl")
        .args(["-s", "--limit-rate", "8M", "--max-time", "1", "-o"])
        .arg(&out)
        .arg(&url)
        .status()
        .expect("run curl");
    assert_eq!(
        first.code(),
        Some(28),
        "the first download should be cut short"
    );
    let partial = std::fs::metadata(&out).expect("partial file").len();
    assert!(
        partial > 0 && partial < LEN as u64,
        "partial length {partial}"
    );
    // Resumed: `-C -` asks for `Range: bytes={partial}-` and appends the 206 body.
    let resumed = Command::new("curl")
        .args(["-s", "-f", "-C", "-", "-o"])
        .arg(&out)
        .arg(&url)
        .status()
        .expect("run curl");
    assert!(resumed.success(), "resume failed: {resumed}");
    assert_eq!(sha256(&out), sha256(&file));
}

#[test]
fn curl_single_and_multi_range_against_serve() {
    if !have("curl") {
        return;
    }
    let (_dir, _file, serve) = fixture();
    let url = format!("{}/big.bin", serve.url);
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-r", "0-99,1048576-1049599,-100"])
        .arg(&url)
        .output()
        .expect("run curl");
    let split = find(&out.stdout, b"\r\n\r\n").expect("end of headers");
    let head = std::str::from_utf8(&out.stdout[..split]).expect("ascii");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .expect("type");
    let parts = check_multipart(content_type, &out.stdout[split + 4..], LEN);
    assert_eq!(
        parts,
        [(0, 99), (1 << 20, (1 << 20) + 1023), (LEN - 100, LEN - 1)]
    );

    let single = Command::new("curl")
        .args(["-s", "-f", "-r", "1000-1999"])
        .arg(&url)
        .output()
        .expect("curl");
    assert_eq!(single.stdout.len(), 1000);
    assert!(
        single
            .stdout
            .iter()
            .enumerate()
            .all(|(i, b)| *b == common::byte_at(1000 + i as u64))
    );
}
