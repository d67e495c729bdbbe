//! What the `serve`, `serve_dir` and `ceiling` examples share, so that the load bench compares services and not
//! servers: the flags (`--root`, `--listen`, `--threads`), the Tokio runtime, and the accept loop (hyper-util
//! `auto`, HTTP/1.1 and h2c, `TCP_NODELAY`, Ctrl-C drains open connections for up to ten seconds).

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// The flags every example server takes.
#[derive(Debug)]
pub struct Args {
    /// `--root DIR`, if given.
    pub root: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: SocketAddr,
    /// `--threads N`: Tokio worker threads.
    pub threads: usize,
}

/// Parses the process's flags, or prints the usage of `name` and exits with status 2.
pub fn args(name: &str, default_port: u16, default_threads: usize) -> Args {
    let usage = format!("usage: {name} [--root DIR] [--listen ADDR] [--threads N]");
    match parse(
        std::env::args().skip(1),
        default_port,
        default_threads,
        &usage,
    ) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    }
}

fn parse(
    mut args: impl Iterator<Item = String>,
    default_port: u16,
    default_threads: usize,
    usage: &str,
) -> Result<Args, String> {
    let mut parsed = Args {
        root: None,
        listen: SocketAddr::from(([127, 0, 0, 1], default_port)),
        threads: default_threads,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{usage}"))
        };
        match flag.as_str() {
            "--root" => parsed.root = Some(PathBuf::from(value()?)),
            "--listen" => parsed.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--threads" => match value()?.parse() {
                Ok(n) if n > 0 => parsed.threads = n,
                _ => return Err("--threads takes a positive number".into()),
            },
            "-h" | "--help" => return Err(usage.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{usage}")),
        }
    }
    Ok(parsed)
}

/// Runs `app` on a multi-threaded Tokio runtime with `threads` workers.
pub fn run<F>(threads: usize, app: F) -> Result<(), Box<dyn Error>>
where
    F: Future<Output = Result<(), Box<dyn Error>>>,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(app)
}

/// Accepts connections on `listener` until Ctrl-C, serving each with `service`, then drains them.
pub async fn accept<S, B>(listener: TcpListener, service: S) -> Result<(), Box<dyn Error>>
where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors or similar: back off briefly instead of spinning.
                        eprintln!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    // Errors here are clients going away mid-response: nothing to do.
                    let _ = connection.await;
                });
            }
            _ = &mut ctrl_c => {
                eprintln!("shutting down: waiting for open connections");
                break;
            }
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => eprintln!("gave up waiting for connections"),
    }
    Ok(())
}
