//! 1,000 concurrent slow clients of a 1 GiB file against the `serve` child process: the server's anonymous
//! memory (RssAnon) stays under 64 MiB, and another client is still served at once.

mod common;

use std::time::{Duration, Instant};

use common::net::Serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 1000;

fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_clients_keep_memory_bounded_and_others_served() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to write into, for the duration of each call.
    #[allow(unsafe_code)]
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < 4 * CLIENTS as u64 && limit.rlim_max >= 4 * CLIENTS as u64 {
            limit.rlim_cur = 4 * CLIENTS as u64;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    if limit.rlim_cur < 3 * CLIENTS as u64 {
        eprintln!(
            "skipped: the descriptor limit ({}) is too low for {CLIENTS} clients",
            limit.rlim_cur
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root");
    // Sparse: the memory under test is the server's, not the page cache's.
    std::fs::File::create(root.join("big.bin"))
        .expect("create")
        .set_len(1 << 30)
        .expect("1 GiB");
    common::net::pattern_file(&root, "small.bin", 4096);
    let serve = Serve::start(&root);
    let addr = serve.url.trim_start_matches("http://").to_string();
    let before = rss_anon_kib(serve.child.id());

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let addr = addr.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let request = format!("GET /big.bin HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("send");
            let mut buf = [0u8; 4096];
            let mut received = 0;
            // A few KiB a second, for six seconds.
            for _ in 0..6 {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => received += n,
                    _ => break,
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            received
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = rss_anon_kib(serve.child.id());

    let started = Instant::now();
    let fetched = common::net::fetch(
        false,
        http::Method::GET,
        &format!("{}/small.bin", serve.url),
        &[],
    )
    .await;
    let latency = started.elapsed();
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body.len(), 4096);

    let mut slow_ok = 0;
    for client in clients {
        if client.await.expect("client") > 0 {
            slow_ok += 1;
        }
    }
    eprintln!(
        "RssAnon before {before} KiB, with {CLIENTS} slow clients {during} KiB; another client served in {latency:?}; \
         {slow_ok} slow clients received data"
    );
    assert!(
        during < 64 * 1024,
        "RssAnon {during} KiB with {CLIENTS} slow clients"
    );
    assert!(
        latency < Duration::from_secs(2),
        "another client waited {latency:?}"
    );
    assert_eq!(slow_ok, CLIENTS, "every slow client was being served");
}
