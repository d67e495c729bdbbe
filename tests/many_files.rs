//! 16,384 small files, each requested once from the `serve` child process (whose cache holds 16,384): every
//! answer carries its own file's bytes, the cache keeps them (mapped beyond its heap budget, watched), and the
//! server's anonymous memory (RssAnon) stays at most 32 MiB. Behaviour only: no time is asserted.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::net::{Serve, rss_anon_kib};

const FILES: usize = 16_384;
const LEN: usize = 4096;
const CLIENTS: usize = 8;

/// The file's bytes: its own name, repeated, so that an answer shows which file it came from.
fn content(i: usize) -> Vec<u8> {
    let name = format!("d{:02}/f{:03}.bin\n", i / 256, i % 256);
    name.bytes().cycle().take(LEN).collect()
}

/// GETs every `CLIENTS`-th file from `first` on one keep-alive connection, checking each answer.
fn fetch_share(addr: &str, first: usize) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for i in (first..FILES).step_by(CLIENTS) {
        let path = format!("/d{:02}/f{:03}.bin", i / 256, i % 256);
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("request");
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{path}: {line}");
        let mut length = None;
        loop {
            line.clear();
            reader.read_line(&mut line).expect("field");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        assert_eq!(length, Some(LEN), "{path}");
        let mut body = vec![0; LEN];
        reader.read_exact(&mut body).expect("body");
        assert!(body == content(i), "{path}: another file's bytes");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn sixteen_thousand_cached_files_keep_anonymous_memory_under_32_mib() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    for i in 0..FILES {
        let sub = root.join(format!("d{:02}", i / 256));
        if i % 256 == 0 {
            std::fs::create_dir_all(&sub).expect("dir");
        }
        std::fs::write(sub.join(format!("f{:03}.bin", i % 256)), content(i)).expect("write");
    }
    let serve = Serve::start(&root);
    let pid = serve.child.id();
    let addr = serve.url.trim_start_matches("http://").to_string();
    std::thread::scope(|s| {
        for first in 0..CLIENTS {
            let addr = &addr;
            s.spawn(move || fetch_share(addr, first));
        }
    });

    let rss = rss_anon_kib(pid);
    let root_text = root.to_str().expect("utf-8 temp path");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mapped = maps.lines().filter(|l| l.contains(root_text)).count();
    eprintln!(
        "RssAnon {rss} KiB with {FILES} files of {LEN} bytes served, {mapped} of them mapped"
    );
    // The heap holds at most its budget (4 MiB: 1,024 of these files), and the cache all of them, but for a
    // few its shards may have pushed out early.
    assert!(
        mapped >= FILES - 1024 - FILES / 50,
        "{mapped} files mapped: the cache keeps them"
    );
    assert!(
        rss <= 32 * 1024,
        "RssAnon {rss} KiB with {FILES} cached files"
    );
}
