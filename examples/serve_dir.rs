//! `serve_dir`: tower-http's `ServeDir` behind the same hyper server as `serve`, the comparison point of the
//! load bench (`bench/load.sh`).
//!
//! ```sh
//! cargo run --release --example serve_dir -- --root DIR --listen 127.0.0.1:8081 --threads 1
//! ```
//!
//! `GET /{relative path}` answers with the file as `ServeDir` does: one range per request (a request for
//! several ranges gets 416), ETag and Last-Modified preconditions, the file read through `tokio::fs` in
//! 64 KiB chunks (its default).
//!
//! Runtime settings, as in `serve`: a multi-threaded Tokio runtime with `--threads` workers (default 1 here)
//! and `TCP_NODELAY` on every connection.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

const USAGE: &str = "usage: serve_dir [--root DIR] [--listen ADDR] [--threads N]";

#[derive(Debug)]
struct Args {
    root: PathBuf,
    listen: SocketAddr,
    threads: usize,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        root: PathBuf::from("."),
        listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
        threads: 1,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--root" => parsed.root = PathBuf::from(value()?),
            "--listen" => parsed.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--threads" => match value()?.parse() {
                Ok(n) if n > 0 => parsed.threads = n,
                _ => return Err("--threads takes a positive number".into()),
            },
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(parsed)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "serve_dir: serving {} at http://{addr}/ ({} worker threads)",
        args.root.display(),
        args.threads
    );
    let service = TowerToHyperService::new(ServeDir::new(&args.root));
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or similar: back off briefly instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service.clone())
            .into_owned();
        tokio::spawn(async move {
            // Errors here are clients going away mid-response: nothing to do.
            let _ = connection.await;
        });
    }
}
