//! 1,000 concurrent slow clients of a 1 GiB file against the `serve` child process: each gets bytes, the
//! server's anonymous memory (RssAnon) stays under 64 MiB while they all stall, another client is served
//! while they do, and every one of them is still served afterwards. Behaviour only: how fast the other
//! client is served depends on the machine's load, so no time is asserted.

mod common;

use common::net::{Serve, rss_anon_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 1000;

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

    // Each slow client reads until its first bytes arrive, reports them, and then stops reading (its
    // response stalls on a full socket) until the test releases it.
    let (first_bytes, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let (release, released) = tokio::sync::watch::channel(false);
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let addr = addr.clone();
        let first_bytes = first_bytes.clone();
        let mut released = released.clone();
        clients.push(tokio::spawn(async move {
            // A connection the kernel drops from a full accept queue (1,000 connects at once on a loaded
            // machine) is retried, a few times at most: what is under test is the server once connected.
            let mut buf = [0u8; 4096];
            let mut attempts = 0;
            let (mut stream, first) = loop {
                attempts += 1;
                let mut stream = tokio::net::TcpStream::connect(&addr)
                    .await
                    .expect("connect");
                let request = format!("GET /big.bin HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                let sent = stream.write_all(request.as_bytes()).await.is_ok();
                let first = if sent {
                    stream.read(&mut buf).await.unwrap_or(0)
                } else {
                    0
                };
                if first > 0 || attempts == 3 {
                    break (stream, first);
                }
            };
            if attempts > 1 {
                eprintln!("a slow client connected on attempt {attempts}");
            }
            first_bytes.send(first).expect("the test listens");
            released
                .wait_for(|go| *go)
                .await
                .expect("the test releases");
            // Released: the stalled response goes on.
            let more = stream.read(&mut buf).await.unwrap_or(0);
            (first, more)
        }));
    }
    drop(first_bytes);
    let mut slow_ok = 0;
    for _ in 0..CLIENTS {
        if reported.recv().await.expect("every client reports") > 0 {
            slow_ok += 1;
        }
    }
    assert_eq!(slow_ok, CLIENTS, "every slow client received bytes");
    let during = rss_anon_kib(serve.child.id());

    // Every slow client is stalled now, and stays so until released below: this client is served meanwhile.
    let fetched = common::net::fetch(
        false,
        http::Method::GET,
        &format!("{}/small.bin", serve.url),
        &[],
    )
    .await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body.len(), 4096);
    let after = rss_anon_kib(serve.child.id());

    release.send(true).expect("clients are waiting");
    let mut resumed = 0;
    for client in clients {
        let (first, more) = client.await.expect("client");
        assert!(first > 0);
        if more > 0 {
            resumed += 1;
        }
    }
    eprintln!(
        "RssAnon before {before} KiB, with {CLIENTS} stalled slow clients {during} KiB, after serving another \
         client {after} KiB; {resumed} slow clients received more after their stall"
    );
    for rss in [during, after] {
        assert!(
            rss < 64 * 1024,
            "RssAnon {rss} KiB with {CLIENTS} slow clients"
        );
    }
    assert_eq!(resumed, CLIENTS, "every slow client was still being served");
}
