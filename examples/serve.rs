//! `serve`: every file under a directory over HTTP/1.1 and HTTP/2 (cleartext), from memory maps.
//!
//! ```sh
//! cargo run --release --example serve                      # serves a generated demo directory
//! cargo run --release --example serve -- --root DIR --listen 127.0.0.1:8080 --threads 1
//! cargo run --release --example serve -- --help            # every flag, with its default
//! ```
//!
//! `GET /{relative path}` answers with the file, with Range, multipart ranges, conditional requests and HEAD as
//! RFC 9110 says; with `--precompressed`, a sidecar `{path}.br`, `.zst`, `.gz` or `.zz` made beforehand
//! (`gzip -k app.js`) answers requests whose `Accept-Encoding` prefers it (nothing is compressed on the fly).
//! Every `.safetensors` file also answers `/{path}.safetensors/header` (its header JSON) and
//! `/{path}.safetensors/tensors/{name}` (one tensor's bytes, with `X-Tensor-Dtype` and `X-Tensor-Shape`)
//! unless `--no-tensors`; `--ipfs STORE` mounts a flat block store at `/ipfs/{cid}` as a verified trustless
//! gateway (`?format=raw`): every path under `/ipfs/` is the store's (a block it lacks is 404), every other one
//! the directory's. The demo directory has a checkpoint, and a demo block
//! store is mounted at `/ipfs/` when neither `--root` nor `--ipfs` is given.
//! Ctrl-C stops accepting and lets open connections finish (up to ten seconds). The banner prints `curl` lines
//! for files that exist under the root.
//!
//! Runtime settings: a multi-threaded Tokio runtime with `--threads` workers (default: one per core),
//! `TCP_NODELAY` on every connection so small responses leave at once instead of waiting on Nagle, a cache of
//! up to 16,384 files (`--cache-files`; the library's default 1,024 thrashes on trees with more hot files than
//! that), and the connection limits of `support/server.rs` (`--header-timeout`, `--max-connections`), so idle
//! and slow clients cannot hold the server.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::service::service_fn;
use mmap_serve::{
    CidResolver, DirResolver, MmapBody, MmapCache, MmapServe, MmapServeFuture, Resolve, Revalidate,
    SafetensorsResolver,
};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tokio::net::TcpListener;

#[path = "support/server.rs"]
mod server;

#[path = "support/demo.rs"]
#[allow(
    dead_code,
    reason = "shared with `mmap_tensor_server`, which uses other parts of it"
)]
mod demo;

/// What `serve` adds to the shared flags.
#[derive(Debug)]
struct Options {
    index: bool,
    hidden: bool,
    cache_files: usize,
    revalidation: Revalidate,
    precompressed: bool,
    tensors: bool,
    ipfs: Option<PathBuf>,
    wait_for_copies: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            index: true,
            hidden: false,
            cache_files: 16 * 1024,
            revalidation: Revalidate::default(),
            precompressed: false,
            tensors: true,
            ipfs: None,
            wait_for_copies: true,
        }
    }
}

const FLAGS: &[server::Flag] = &[
    server::Flag {
        name: "--no-index",
        value: None,
        help: "a URL path ending in / is not found (default: it serves the directory's index.html)",
    },
    server::Flag {
        name: "--hidden",
        value: None,
        help: "serve names that start with a dot (default: not found)",
    },
    server::Flag {
        name: "--precompressed",
        value: None,
        help: "serve the sidecars NAME.br, .zst, .gz, .zz when Accept-Encoding prefers them (default: off)",
    },
    server::Flag {
        name: "--no-tensors",
        value: None,
        help: "NAME.safetensors/header and NAME.safetensors/tensors/T are not found (default: answered)",
    },
    server::Flag {
        name: "--ipfs",
        value: Some("STORE"),
        help: "serve the flat block store STORE at /ipfs/{cid}, verified (default: none; the demo's own store \
               when --root is not given either)",
    },
    server::Flag {
        name: "--no-wait-for-copies",
        value: None,
        help: "a body's last check does not wait until hyper has written its earlier frames: faster medium \
               responses, but a file rewritten in place in those moments can complete one (default: waits)",
    },
    server::Flag {
        name: "--cache-files",
        value: Some("N"),
        help: "files kept mapped at once (default: 16384)",
    },
    server::Flag {
        name: "--revalidate",
        value: Some("SECS|always|never"),
        help: "how often a cached file is compared with the disk (default: the library's)",
    },
];

fn main() -> Result<(), Box<dyn Error>> {
    let mut options = Options::default();
    let args = server::args(
        "serve",
        8080,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        FLAGS,
        |flag, value| options.set(flag, value),
    );
    server::run(args.threads, run(args, options))
}

impl Options {
    fn set(&mut self, flag: &str, value: Option<String>) -> Result<(), String> {
        let value = value.unwrap_or_default();
        match flag {
            "--no-index" => self.index = false,
            "--hidden" => self.hidden = true,
            "--precompressed" => self.precompressed = true,
            "--no-tensors" => self.tensors = false,
            "--no-wait-for-copies" => self.wait_for_copies = false,
            "--ipfs" => self.ipfs = Some(PathBuf::from(value)),
            "--cache-files" => {
                self.cache_files = value.parse().map_err(|_| "takes a number of files")?;
            }
            "--revalidate" => {
                self.revalidation = match value.as_str() {
                    "always" => Revalidate::Always,
                    "never" => Revalidate::Never,
                    secs => Revalidate::Every(Duration::from_secs_f64(
                        secs.parse()
                            .ok()
                            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                            .ok_or("takes seconds, always or never")?,
                    )),
                };
            }
            _ => unreachable!("server::args passes only the flags in FLAGS"),
        }
        Ok(())
    }
}

async fn run(args: server::Args, options: Options) -> Result<(), Box<dyn Error>> {
    let (root, ipfs) = match (&args.root, &options.ipfs) {
        (Some(root), ipfs) => (root.clone(), ipfs.clone()),
        (None, Some(ipfs)) => (demo_dir()?, Some(ipfs.clone())),
        (None, None) => (demo_dir()?, Some(demo_blocks()?)),
    };
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    print_banner(addr, &root, ipfs.as_deref(), options.tensors, args.threads);
    // Room for large trees: a cached file costs one mapping (no descriptor), well under vm.max_map_count.
    let cache = Arc::new(
        MmapCache::builder()
            .max_files(options.cache_files)
            .revalidation(options.revalidation)
            .build(),
    );
    let mut resolver = DirResolver::new(&root).allow_hidden(options.hidden);
    if options.index {
        resolver = resolver.index_file("index.html");
    }
    if options.precompressed {
        resolver = resolver
            .precompressed_br()
            .precompressed_zstd()
            .precompressed_gzip()
            .precompressed_deflate();
    }
    // Straight behind hyper, which leaves RFC 9112's Host rule to the service, and which lets go of a frame
    // once it has written it: a body's last check may wait for that.
    let files = if options.tensors {
        let resolver = SafetensorsResolver::new(resolver, Arc::clone(&cache));
        let serve = MmapServe::with_cache(resolver, Arc::clone(&cache));
        Files::Tensors(
            serve
                .require_host(true)
                .wait_for_copies(options.wait_for_copies),
        )
    } else {
        let serve = MmapServe::with_cache(resolver, Arc::clone(&cache));
        Files::Plain(
            serve
                .require_host(true)
                .wait_for_copies(options.wait_for_copies),
        )
    };
    // The block store at `/ipfs/`, the directory for everything else.
    let blocks = ipfs.map(|store| {
        MmapServe::with_cache(CidResolver::new(store).bare_paths(false), cache).require_host(true)
    });
    // Mounted with `service_fn` and `respond`, which answers as soon as hyper has a request head (see
    // `MmapServe::respond` for what `TowerToHyperService` costs instead).
    match (files, blocks) {
        (Files::Tensors(files), None) => {
            let service = service_fn(move |request| files.respond(request));
            server::accept(listener, service, &args).await
        }
        (Files::Plain(files), None) => {
            let service = service_fn(move |request| files.respond(request));
            server::accept(listener, service, &args).await
        }
        (Files::Tensors(files), Some(blocks)) => {
            let gateway = Gateway { blocks, files };
            server::accept(listener, service_fn(move |r| gateway.respond(r)), &args).await
        }
        (Files::Plain(files), Some(blocks)) => {
            let gateway = Gateway { blocks, files };
            server::accept(listener, service_fn(move |r| gateway.respond(r)), &args).await
        }
    }
}

/// Whether a request's path is the block store's: its first segment is `ipfs`, spelled plainly or with
/// percent-encoded letters (`/%69pfs/...`, which RFC 3986 §6.2.2.2 makes the same URL, and which the directory
/// would decode to its `ipfs/` folder).
fn under_ipfs(path: &str) -> bool {
    let first = path.strip_prefix('/').and_then(|rest| rest.split_once('/'));
    first.is_some_and(|(segment, _)| {
        percent_encoding::percent_decode_str(segment).eq(b"ipfs".iter().copied())
    })
}

/// `/ipfs/...` to the block store, every other path to the directory's service. A routing rather than a
/// fall-through layer: a CID the store does not have is the gateway's 404, never a file of the directory
/// that happens to sit at `ipfs/{cid}` (which a layer would serve, unverified, as it passes on every
/// request whose file is missing).
struct Gateway<R> {
    blocks: MmapServe<CidResolver>,
    files: MmapServe<R>,
}

impl<R> Clone for Gateway<R> {
    fn clone(&self) -> Self {
        Self {
            blocks: self.blocks.clone(),
            files: self.files.clone(),
        }
    }
}

impl<R: Resolve> Gateway<R> {
    fn respond<B>(&self, request: Request<B>) -> Routed<R> {
        if under_ipfs(request.uri().path()) {
            Routed::Blocks(self.blocks.respond(request))
        } else {
            Routed::Files(self.files.respond(request))
        }
    }
}

/// The answer of the service a request was routed to.
enum Routed<R: Resolve> {
    Blocks(MmapServeFuture<CidResolver>),
    Files(MmapServeFuture<R>),
}

impl<R: Resolve> Future for Routed<R> {
    type Output = Result<Response<MmapBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Blocks(future) => Pin::new(future).poll(cx),
            Self::Files(future) => Pin::new(future).poll(cx),
        }
    }
}

/// The directory's service, with or without the tensor endpoints.
enum Files {
    Tensors(MmapServe<SafetensorsResolver>),
    Plain(MmapServe<DirResolver>),
}

/// A demo directory in the system temp dir, made once: a page, a text file, JSON and an 8 MiB binary.
fn demo_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join("mmap-serve-demo");
    std::fs::create_dir_all(dir.join("tensors"))?;
    let tensor: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let checkpoint = demo::demo_checkpoint();
    std::fs::create_dir_all(dir.join("models"))?;
    let files: [(&str, &[u8]); 5] = [
        (
            "index.html",
            b"<!doctype html><title>mmap-serve</title><h1>mmap-serve demo</h1>\n\
              <p><a href=\"/hello.txt\">hello.txt</a> <a href=\"/tensors/weights.bin\">weights.bin</a></p>\n",
        ),
        ("hello.txt", b"Hello from a memory map.\n"),
        ("meta.json", b"{\"name\": \"weights\", \"dtype\": \"u8\", \"shape\": [8388608]}\n"),
        ("tensors/weights.bin", &tensor),
        ("models/demo.safetensors", &checkpoint),
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

/// The demo's block store, beside the demo directory: one 64 KiB raw block, named by its CID.
fn demo_blocks() -> std::io::Result<PathBuf> {
    let store = std::env::temp_dir().join("mmap-serve-demo-blocks");
    let block: Vec<u8> = (0..64u32 << 10).map(|i| (i % 239) as u8).collect();
    demo::write_raw_block(&store, &block)?;
    Ok(store)
}

fn print_banner(addr: SocketAddr, root: &Path, ipfs: Option<&Path>, tensors: bool, threads: usize) {
    use std::io::Write;
    let url = format!("http://{addr}");
    let mut banner = format!(
        "mmap-serve: serving {root} at {url}/ ({threads} worker threads)\n",
        root = root.display()
    );
    let (files, checkpoint) = sample_files(root);
    if let Some(store) = ipfs {
        banner.push_str(&format!("blocks of {} at {url}/ipfs/\n", store.display()));
    }
    if files.is_empty() {
        banner
            .push_str("no readable files under the root yet; every path is 404 until there are\n");
    } else {
        banner.push_str("try:\n");
        for (path, len) in &files {
            let target = format!("{url}/{}", url_path(path));
            banner.push_str(&format!("  curl -i {target}\n"));
            if *len > 4096 {
                banner.push_str(&format!("  curl -s -i -r 0-9,4096-4105 {target}\n"));
                banner.push_str(&format!("  curl -s -I {target}\n"));
            }
        }
    }
    if let Some((path, tensor)) = checkpoint.filter(|_| tensors) {
        let target = format!("{url}/{}", url_path(&path));
        banner.push_str(&format!("  curl -s {target}/header\n"));
        if let Some(name) = tensor {
            let name = utf8_percent_encode(&name, SEGMENT);
            banner.push_str(&format!("  curl -s -i {target}/tensors/{name}\n"));
        }
    }
    if let Some(cid) = ipfs.and_then(first_block) {
        banner.push_str(&format!(
            "  curl -s -i -r 0-15 '{url}/ipfs/{cid}?format=raw'\n"
        ));
    }
    banner.push_str("Ctrl-C to stop.\n");
    // Errors ignored: a closed stdout (a supervisor that read the URL and left) is no reason to stop serving.
    let _ = std::io::stdout().lock().write_all(banner.as_bytes());
    let _ = std::io::stdout().flush();
}

/// A checkpoint found under the root, and the name of its first tensor when its header says.
type Checkpoint = (PathBuf, Option<String>);

/// Up to three files the server will answer, relative to `root`, with their lengths: the smallest and the
/// largest regular files among the first few hundred entries of a breadth-first walk, hidden names skipped
/// (the default resolver does not serve them); and the first `.safetensors` file of the walk.
fn sample_files(root: &Path) -> (Vec<(PathBuf, u64)>, Option<Checkpoint>) {
    let mut found = Vec::new();
    let mut dirs = std::collections::VecDeque::from([PathBuf::new()]);
    let mut seen = 0;
    while let Some(dir) = dirs.pop_front() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > 500 {
                break;
            }
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = dir.join(&name);
            if kind.is_dir() {
                dirs.push_back(path);
            } else if kind.is_file() {
                if let Ok(meta) = entry.metadata() {
                    found.push((path, meta.len()));
                }
            }
        }
    }
    let checkpoint = found
        .iter()
        .find(|(path, _)| path.extension().is_some_and(|e| e == "safetensors"))
        .map(|(path, _)| (path.clone(), first_tensor(&root.join(path))));
    found.sort_by_key(|(path, len)| (*len, path.clone()));
    let mut picked: Vec<(PathBuf, u64)> = found.first().cloned().into_iter().collect();
    if let Some(largest) = found.last().filter(|l| found.len() > 1 && **l != found[0]) {
        picked.push(largest.clone());
    }
    if let Some(middle) = found.get(found.len() / 2).filter(|m| !picked.contains(m)) {
        picked.insert(1.min(picked.len()), middle.clone());
    }
    (picked, checkpoint)
}

/// The first tensor a safetensors header names (its 8-byte length, then JSON), if the file has one.
fn first_tensor(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0; 8];
    file.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?.min(1 << 20);
    let mut header = vec![0; len];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    header
        .into_iter()
        .map(|(name, _)| name)
        .find(|name| name != "__metadata__")
}

/// A block of `store`: the first name that is all letters and digits, as CIDs are.
fn first_block(store: &Path) -> Option<String> {
    std::fs::read_dir(store)
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .find(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `path` as a URL path: each name percent-encoded where a path segment may not hold it (RFC 3986 §3.3).
fn url_path(path: &Path) -> String {
    path.iter()
        .map(|name| utf8_percent_encode(&name.to_string_lossy(), SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// What a path segment may not hold as it is (RFC 3986 §3.3), a `/` included.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');
