//! `serve`: every file under a directory over HTTP/1.1 and HTTP/2 (cleartext), from memory maps.
//!
//! ```sh
//! cargo run --release --example serve                      # serves a generated demo directory
//! cargo run --release --example serve -- --root DIR --listen 127.0.0.1:8080 --threads 1
//! ```
//!
//! `GET /{relative path}` answers with the file, with Range, multipart ranges, conditional requests and HEAD as
//! RFC 9110 says. Ctrl-C stops accepting and lets open connections finish (up to ten seconds).
//!
//! Runtime settings: a multi-threaded Tokio runtime with `--threads` workers (default: one per core),
//! `TCP_NODELAY` on every connection so small responses leave at once instead of waiting on Nagle, and a cache
//! of up to 16,384 files (the default 1,024 thrashes on trees with more hot files than that).

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::service::TowerToHyperService;
use mmap_serve::{DirResolver, MmapCache, MmapServe};
use tokio::net::TcpListener;

#[path = "support/server.rs"]
mod server;

fn main() -> Result<(), Box<dyn Error>> {
    let args = server::args(
        "serve",
        8080,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    server::run(args.threads, run(args))
}

async fn run(args: server::Args) -> Result<(), Box<dyn Error>> {
    let root = match args.root {
        Some(root) => root,
        None => demo_dir()?,
    };
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    print_banner(addr, &root, args.threads);
    // Room for large trees: a cached file costs one mapping (no descriptor), well under vm.max_map_count.
    let cache = MmapCache::builder().max_files(16 * 1024).build();
    // Straight behind hyper, which leaves RFC 9112's Host rule to the service.
    let service = MmapServe::with_cache(
        DirResolver::new(&root).index_file("index.html"),
        Arc::new(cache),
    )
    .require_host(true);
    server::accept(listener, TowerToHyperService::new(service)).await
}

/// A demo directory in the system temp dir, made once: a page, a text file, JSON and an 8 MiB binary.
fn demo_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join("mmap-serve-demo");
    std::fs::create_dir_all(dir.join("tensors"))?;
    let tensor: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let files: [(&str, &[u8]); 4] = [
        (
            "index.html",
            b"<!doctype html><title>mmap-serve</title><h1>mmap-serve demo</h1>\n\
              <p><a href=\"/hello.txt\">hello.txt</a> <a href=\"/tensors/weights.bin\">weights.bin</a></p>\n",
        ),
        ("hello.txt", b"Hello from a memory map.\n"),
        ("meta.json", b"{\"name\": \"weights\", \"dtype\": \"u8\", \"shape\": [8388608]}\n"),
        ("tensors/weights.bin", &tensor),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        let current = std::fs::metadata(&path).map(|m| m.len()).ok();
        if current != Some(bytes.len() as u64) {
            // Write beside and rename over: a server may be mapping the old file (see the safety model).
            let tmp = dir.join(format!("{name}.tmp"));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)?;
        }
    }
    Ok(dir)
}

fn print_banner(addr: SocketAddr, root: &Path, threads: usize) {
    use std::io::Write;
    let url = format!("http://{addr}");
    let banner = format!(
        "mmap-serve: serving {root} at {url}/ ({threads} worker threads)\n\
         try:\n\
         \x20 curl -i {url}/hello.txt\n\
         \x20 curl -s -r 0-99 {url}/tensors/weights.bin | xxd | head -3\n\
         \x20 curl -s -i -r 0-9,4096-4105 {url}/tensors/weights.bin\n\
         \x20 curl -s -I {url}/tensors/weights.bin\n\
         Ctrl-C to stop.\n",
        root = root.display()
    );
    // Errors ignored: a closed stdout (a supervisor that read the URL and left) is no reason to stop serving.
    let _ = std::io::stdout().lock().write_all(banner.as_bytes());
    let _ = std::io::stdout().flush();
}
