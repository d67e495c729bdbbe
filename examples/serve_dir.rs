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
use std::path::PathBuf;
use std::task::{Context, Waker};

use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tower::Service;
use tower_http::services::ServeDir;

#[path = "support/server.rs"]
mod server;

fn main() -> Result<(), Box<dyn Error>> {
    let args = server::args("serve_dir", 8081, 1, &[], |_, _| Ok(()));
    server::run(args.threads, run(args))
}

async fn run(args: server::Args) -> Result<(), Box<dyn Error>> {
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "serve_dir: serving {} at http://{addr}/ ({} worker threads)",
        root.display(),
        args.threads
    );
    // Called as soon as hyper has a request head, as `serve` and `ceiling` are (see
    // `MmapServe::respond` for what `TowerToHyperService` would cost instead).
    let dir = ServeDir::new(&root);
    let service = service_fn(move |request: Request<Incoming>| {
        let mut dir = dir.clone();
        let ready = Service::<Request<Incoming>>::poll_ready(
            &mut dir,
            &mut Context::from_waker(Waker::noop()),
        );
        assert!(ready.is_ready(), "ServeDir is always ready");
        dir.call(request)
    });
    server::accept(listener, service, &args).await
}
