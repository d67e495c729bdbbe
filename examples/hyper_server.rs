//! `hyper_server`: `MmapServe` on a plain hyper 1 server, HTTP/1.1 and HTTP/2 cleartext on one port.
//!
//! ```sh
//! cargo run --example hyper_server -- DIR      # serves DIR (default: the current directory)
//! ```

use std::path::Path;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mmap_serve::{DirResolver, MmapServe};
use tokio::net::TcpListener;

/// Accepts connections on `listener` forever, serving files under `root`.
pub async fn run(listener: TcpListener, root: &Path) {
    let serve = MmapServe::new(DirResolver::new(root));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        // `respond` answers as soon as hyper has parsed a request head (see its docs).
        let serve = serve.clone();
        let service = service_fn(move |request| serve.respond(request));
        tokio::spawn(async move {
            // `auto` speaks HTTP/1.1, and HTTP/2 to clients that open with the h2c preface.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[allow(dead_code, reason = "the tests include this file for `run`")]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("hyper_server: serving {root} at {url}");
    println!("  curl -s -I {url}/Cargo.toml");
    println!("  curl -s --http2-prior-knowledge -r 0-63 {url}/Cargo.toml");
    run(listener, Path::new(&root)).await;
    Ok(())
}
