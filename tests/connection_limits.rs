//! The `serve` example as a server that faces the public: connections that never finish a request head, and
//! idle keep-alive connections, are closed after `--header-timeout`, while other clients are served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::net::{Serve, pattern_file};

/// How many clients stall at once: more than a default `ulimit -n` of 1,024 would allow, fewer than
/// `--max-connections`' default.
const STALLED: usize = 2000;

/// Long enough that a server which never times out fails the test, far past the 1 s timeout under test.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Whether the server closed `stream` (end of stream or a reset) before sending it a whole response.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(GIVE_UP))
        .expect("read timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // hyper may answer a timed-out head with 408 before it closes; the close is what counts.
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) => panic!(
                "still open after {GIVE_UP:?} ({e}); read {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

/// One request on a fresh connection, read to its end (`Connection: close`): the status line and body.
fn get(addr: &str, path: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let status = String::from_utf8_lossy(
        &response[..response[..split]
            .iter()
            .position(|&b| b == b'\r')
            .unwrap_or(split)],
    )
    .into_owned();
    (status, response[split + 4..].to_vec())
}

#[test]
fn half_sent_heads_are_closed_after_the_timeout_while_others_are_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    pattern_file(dir.path(), "f.bin", 10_000);
    let serve = Serve::start_with(dir.path(), &["--header-timeout", "1"]);
    let addr = serve.url.trim_start_matches("http://").to_string();
    let mut stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).expect("connect a stalled client");
            stream
                .write_all(b"GET /f.bin HTTP/1.1\r\nHost: x\r\nRan")
                .expect("half a head");
            stream
        })
        .collect();
    // Another client is served while they hold their connections open.
    let (status, body) = get(&addr, "/f.bin");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, common::pattern(0..10_000));
    for (i, stream) in stalled.iter_mut().enumerate() {
        assert!(closed_by_server(stream), "stalled client {i}");
    }
    // And the server still serves once they are gone.
    assert_eq!(get(&addr, "/f.bin").0, "HTTP/1.1 200 OK");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    pattern_file(dir.path(), "f.bin", 100);
    let serve = Serve::start_with(dir.path(), &["--header-timeout", "1"]);
    let addr = serve.url.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    write!(stream, "GET /f.bin HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
    // Read the whole response (its head ends the first blank line; the body is 100 bytes), then stay idle.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(GIVE_UP))
        .expect("read timeout");
    while response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .is_none_or(|end| response.len() < end + 4 + 100)
    {
        let n = stream.read(&mut buf).expect("the response");
        assert!(n > 0, "closed before the response was complete");
        response.extend_from_slice(&buf[..n]);
    }
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));
    assert!(closed_by_server(&mut stream), "the idle connection");
}
