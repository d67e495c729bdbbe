//! warp 0.4: the `warp_filter` example's filter on 127.0.0.1:0; requests it has no file for reach the next filter.

mod common;
#[path = "../examples/warp_filter.rs"]
mod warp_filter;

use common::net::{check_full_range_multi_304, fetch, pattern_file};
use http::Method;

const LEN: usize = 1 << 20;

#[tokio::test]
async fn full_range_multipart_304_and_fall_through() {
    let dir = tempfile::tempdir().expect("temp dir");
    pattern_file(dir.path(), "weights.bin", LEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = warp_filter::app(dir.path());
    tokio::spawn(warp::serve(app).incoming(listener).run());

    check_full_range_multi_304(false, &format!("{url}/weights.bin"), LEN).await;
    let next = fetch(false, Method::GET, &format!("{url}/missing.bin"), &[]).await;
    assert_eq!(next.status, 200);
    assert_eq!(&next.body[..], b"no such file; this is the next filter\n");
}
