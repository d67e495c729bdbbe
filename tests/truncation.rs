//! A served file truncated or rewritten under a live download, with the server in a child process (the `serve`
//! example) so that a crash would be seen: the server must live, the client must get fewer bytes than
//! Content-Length promised (never a complete response with wrong bytes), and the next request must see the file
//! as it now is.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::net::{Serve, pattern_file};

const LEN: usize = 64 << 20;

/// A slow client: sends a GET, reads the head and `first` body bytes, runs `meddle`, then reads to the end.
/// Returns (Content-Length, body bytes received).
fn download_while(url: &str, path: &str, first: usize, meddle: impl FnOnce()) -> (usize, usize) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let body_start = loop {
        let n = stream.read(&mut buf).expect("read head");
        assert!(n > 0, "closed before the head");
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = common::find(&head, b"\r\n\r\n") {
            break at + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .trim()
        .parse()
        .expect("number");
    let mut received = head.len() - body_start;
    while received < first {
        let n = stream.read(&mut buf).expect("read body");
        assert!(n > 0, "closed early");
        received += n;
    }
    meddle();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    (length, received)
}

fn alive(serve: &mut Serve) -> bool {
    serve.child.try_wait().expect("wait").is_none()
}

/// The value of the header `name` (lowercase) in the answer to a HEAD of `url`, or "" when it has none.
fn head_field(url: &str, name: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-I", url])
        .output()
        .expect("curl");
    let prefix = format!("{name}: ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn length_now(url: &str) -> String {
    head_field(url, "content-length")
}

fn truncate_by_another_process(path: &Path, size: &str) {
    let status = Command::new("truncate")
        .args(["-s", size])
        .arg(path)
        .status()
        .expect("truncate");
    assert!(status.success());
}

fn scenario(meddle: impl FnOnce(&Path), new_len: Option<usize>) {
    if !common::net::have("curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let file = pattern_file(&root, "big.bin", LEN);
    let mut serve = Serve::start(&root);
    let url = format!("{}/big.bin", serve.url);
    // Map it once and let the revalidation interval pass, so the download starts from a cached mapping.
    assert_eq!(length_now(&url), LEN.to_string());
    let (length, received) = download_while(&serve.url, "/big.bin", 2 << 20, || meddle(&file));
    assert_eq!(length, LEN);
    assert!(
        received < length,
        "a changed file must not look complete: got {received} of {length}"
    );
    assert!(alive(&mut serve), "the server died");
    std::thread::sleep(Duration::from_millis(1100)); // the default revalidation interval
    if let Some(new_len) = new_len {
        assert_eq!(
            length_now(&url),
            new_len.to_string(),
            "the next request sees the new length"
        );
    }
    assert!(alive(&mut serve), "the server died");
}

#[test]
fn truncated_to_one_mebibyte_by_another_process() {
    scenario(|p| truncate_by_another_process(p, "1M"), Some(1 << 20));
}

#[test]
fn truncated_to_zero_by_another_process() {
    scenario(|p| truncate_by_another_process(p, "0"), Some(0));
}

#[test]
fn truncated_by_another_thread() {
    scenario(
        |p| {
            let path = p.to_path_buf();
            std::thread::spawn(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .expect("open")
                    .set_len(1 << 20)
                    .expect("truncate")
            })
            .join()
            .expect("thread");
        },
        Some(1 << 20),
    );
}

#[test]
fn truncation_of_only_the_last_chunk() {
    scenario(
        |p| truncate_by_another_process(p, &(LEN - 4096).to_string()),
        Some(LEN - 4096),
    );
}

#[test]
fn rewritten_in_place_with_the_same_length() {
    scenario(
        |p| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .expect("open");
            std::os::unix::fs::FileExt::write_all_at(&f, &[0xEE; 4096], (LEN - 8192) as u64)
                .expect("write");
            f.set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
                .expect("mtime");
        },
        Some(LEN),
    );
}

/// The supported deploy, under a live download: a new file written beside the old one and renamed over it.
/// The download finishes complete, with every byte of the old file; the next request gets the new file and
/// a new ETag.
#[test]
fn replaced_by_rename_the_download_finishes_with_the_old_bytes() {
    if !common::net::have("curl") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let file = pattern_file(&root, "big.bin", LEN);
    let serve = Serve::start(&root);
    let url = format!("{}/big.bin", serve.url);
    let old_etag = head_field(&url, "etag");
    assert!(!old_etag.is_empty());
    let saved = dir.path().join("download.bin");
    // 64 MiB at 16 MiB/s: the rename lands about a quarter of the way in.
    let mut download = Command::new("curl")
        .args(["-s", "-f", "--limit-rate", "16M", "-o"])
        .arg(&saved)
        .arg(&url)
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(1000));
    let staging = dir.path().join("big.bin.new");
    std::fs::write(&staging, vec![0x5A; LEN / 2]).expect("write the new version");
    std::fs::rename(&staging, &file).expect("rename over the served file");
    let status = download.wait().expect("curl ran");
    assert!(status.success(), "the download was cut: {status}");
    let got = std::fs::read(&saved).expect("downloaded file");
    assert_eq!(got.len(), LEN);
    assert!(
        got == common::pattern(0..LEN as u64),
        "every byte is the old file's"
    );
    std::thread::sleep(Duration::from_millis(1100)); // the default revalidation interval
    assert_eq!(length_now(&url), (LEN / 2).to_string());
    assert_ne!(head_field(&url, "etag"), old_etag);
}
