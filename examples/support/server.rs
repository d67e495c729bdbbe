//! What the `serve`, `serve_dir` and `ceiling` examples share, so that the load bench compares services and not
//! servers: the flags (`--root`, `--listen`, `--threads`, and the connection limits), the Tokio runtime, and the
//! accept loop (hyper-util `auto`, HTTP/1.1 and h2c, `TCP_NODELAY`, Ctrl-C drains open connections for up to
//! ten seconds).
//!
//! Connection limits, so that idle and slow clients cannot hold a server that faces the public:
//! - `--header-timeout SECS` (default 30, 0 turns it off): an HTTP/1.1 connection that has not sent a whole
//!   request head this long after it opened, or after its last response, is closed. hyper starts the timer when
//!   a connection waits for a head, so it is the keep-alive idle timeout too (nginx's `client_header_timeout`
//!   and `keepalive_timeout` in one). HTTP/2 connections get a ping every 20 s and are closed when a ping goes
//!   unanswered for 20 s.
//! - `--max-connections N` (default 4096): connections served at once; past it the server stops accepting and
//!   new clients wait in the kernel's listen backlog until one closes.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The flags every example server takes.
#[derive(Debug)]
pub struct Args {
    /// `--root DIR`, if given.
    pub root: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: SocketAddr,
    /// `--threads N`: Tokio worker threads.
    pub threads: usize,
    /// `--header-timeout SECS`: how long a connection may take to send a request head, counted from when it
    /// opened or sent its last response (None: no limit).
    pub header_timeout: Option<Duration>,
    /// `--max-connections N`: connections served at once.
    pub max_connections: usize,
}

/// The default `--header-timeout`: hyper's own default, and nginx's `client_header_timeout` is 60 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `--max-connections`: well under the descriptor limit of a default service unit (`LimitNOFILE`
/// 524,288 soft on systemd, 1,024 on some shells: raise `ulimit -n` to serve more).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// A flag of one example's own, besides the shared ones: its name, its value's name (None for a switch) and
/// what it does, with its default.
pub struct Flag {
    pub name: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

/// Parses the process's flags, or prints the usage of `name` and exits (status 0 for `--help`, 2 for a bad flag).
///
/// `extra` lists the example's own flags; `on_extra` gets each one given, with its value (None for a switch),
/// and says what is wrong with it.
pub fn args(
    name: &str,
    default_port: u16,
    default_threads: usize,
    extra: &[Flag],
    mut on_extra: impl FnMut(&str, Option<String>) -> Result<(), String>,
) -> Args {
    let usage = usage(name, default_port, default_threads, extra);
    match parse(
        std::env::args().skip(1),
        default_port,
        default_threads,
        extra,
        &mut on_extra,
    ) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{usage}");
            std::process::exit(0);
        }
        Err(message) => {
            eprintln!("{message}\n{usage}");
            std::process::exit(2);
        }
    }
}

fn usage(name: &str, default_port: u16, default_threads: usize, extra: &[Flag]) -> String {
    let mut text = format!(
        "usage: {name} [FLAGS]\n\
         \x20 --root DIR              the directory to serve (default: a generated demo directory)\n\
         \x20 --listen ADDR           address to listen on (default: 127.0.0.1:{default_port})\n\
         \x20 --threads N             Tokio worker threads (default: {default_threads})\n\
         \x20 --header-timeout SECS   close a connection that sends no whole request head this long after it\n\
         \x20                         opened or after its last response; 0: never (default: {})\n\
         \x20 --max-connections N     connections served at once; more wait to be accepted (default: {})\n",
        DEFAULT_HEADER_TIMEOUT.as_secs(),
        DEFAULT_MAX_CONNECTIONS,
    );
    for flag in extra {
        let head = match flag.value {
            Some(value) => format!("{} {value}", flag.name),
            None => flag.name.to_string(),
        };
        if head.len() < 24 {
            text.push_str(&format!("  {head:<24}{}\n", flag.help));
        } else {
            text.push_str(&format!("  {head}\n  {:<24}{}\n", "", flag.help));
        }
    }
    text.push_str("  -h, --help              this text");
    text
}

/// What takes an example's own flag and its value, and says what is wrong with it.
type OnExtra<'a> = dyn FnMut(&str, Option<String>) -> Result<(), String> + 'a;

/// The flags in `args`; None when they ask for the usage.
fn parse(
    mut args: impl Iterator<Item = String>,
    default_port: u16,
    default_threads: usize,
    extra: &[Flag],
    on_extra: &mut OnExtra<'_>,
) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        root: None,
        listen: SocketAddr::from(([127, 0, 0, 1], default_port)),
        threads: default_threads,
        header_timeout: Some(DEFAULT_HEADER_TIMEOUT),
        max_connections: DEFAULT_MAX_CONNECTIONS,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--root" => parsed.root = Some(PathBuf::from(value()?)),
            "--listen" => parsed.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--threads" => match value()?.parse() {
                Ok(n) if n > 0 => parsed.threads = n,
                _ => return Err("--threads takes a positive number".into()),
            },
            "--header-timeout" => match value()?.parse::<u64>() {
                Ok(0) => parsed.header_timeout = None,
                Ok(secs) => parsed.header_timeout = Some(Duration::from_secs(secs)),
                Err(_) => return Err("--header-timeout takes a number of seconds".into()),
            },
            "--max-connections" => match value()?.parse() {
                Ok(n) if n > 0 => parsed.max_connections = n,
                _ => return Err("--max-connections takes a positive number".into()),
            },
            "-h" | "--help" => return Ok(None),
            other => match extra.iter().find(|f| f.name == other) {
                Some(f) => {
                    let given = match f.value {
                        Some(_) => Some(value()?),
                        None => None,
                    };
                    on_extra(other, given).map_err(|e| format!("{other}: {e}"))?;
                }
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(Some(parsed))
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

/// Accepts connections on `listener` until Ctrl-C, serving each with `service` under the limits in `args`,
/// then drains them.
pub async fn accept<S, B>(
    listener: TcpListener,
    service: S,
    args: &Args,
) -> Result<(), Box<dyn Error>>
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(args.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(args.max_connections));
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        // A free slot first: at the limit, clients wait in the listen backlog, not in this process.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut ctrl_c => {
                eprintln!("shutting down: waiting for open connections");
                break;
            }
        };
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
                    // Errors here are clients going away mid-response or timing out: nothing to do.
                    let _ = connection.await;
                    drop(slot);
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
