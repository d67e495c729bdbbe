//! Cold frames: evicted from the page cache, held at the bring-in by a test gate, so that what the body and the
//! runtime do meanwhile can be seen without any timing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::BodyExt;
use tower::ServiceExt;

use super::gate;
use crate::mmap::residency::Residency;
use crate::{DirResolver, MmapBody, MmapCache, MmapFile, MmapServe};

const LEN: usize = 4 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A directory on a disk (not a tmpfs, whose pages cannot be evicted) holding `cold.bin` (`LEN` pattern
/// bytes, written, synced and evicted from the page cache) and `hot.bin` (4 KiB); `None`, with the reason
/// printed, when no such directory exists here.
fn cold_fixture() -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let on_tmpfs =
        rustix::fs::statfs(dir.path()).is_ok_and(|s| s.f_type as u64 as u32 == 0x0102_1994);
    if on_tmpfs {
        eprintln!(
            "skipped: {} is a tmpfs, whose pages cannot be evicted",
            dir.path().display()
        );
        return None;
    }
    std::fs::write(dir.path().join("hot.bin"), vec![7u8; 4096]).expect("write hot.bin");
    let path = dir.path().join("cold.bin");
    std::fs::write(&path, pattern(LEN)).expect("write cold.bin");
    evict(&path);
    Some((dir, path))
}

fn evict(path: &Path) {
    let file = std::fs::File::open(path).expect("open");
    file.sync_all().expect("fsync");
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
}

/// The cold fixture mapped with `config`, or `None` when it could not be made cold.
fn cold_file(config: crate::MmapConfig) -> Option<(tempfile::TempDir, MmapFile)> {
    let (dir, path) = cold_fixture()?;
    let file = MmapFile::with_config(&path, config).expect("map");
    is_cold(&file, LEN as u64).then_some((dir, file))
}

/// The cold fixture mapped with `MmapConfig::random()`: no read-around of the kernel's own, so only what a
/// bring-in or a body asks for comes in.
fn cold_file_without_read_around() -> Option<(tempfile::TempDir, MmapFile)> {
    cold_file(crate::MmapConfig::random())
}

/// Whether `file`'s first `len` bytes are out of memory; prints why the test is skipped when not.
fn is_cold(file: &MmapFile, len: u64) -> bool {
    let cold = file.residency(&file.range(0..len).expect("inside"), 0) == Residency::Cold;
    if !cold {
        eprintln!("skipped: posix_fadvise(DONTNEED) left the fixture in memory");
    }
    cold
}

#[test]
fn a_cold_frame_is_sent_only_once_resident_and_the_worker_serves_others_meanwhile() {
    let Some((dir, path)) = cold_fixture() else {
        return;
    };
    let cache = Arc::new(MmapCache::new(10));
    let serve = MmapServe::with_cache(DirResolver::new(dir.path()), Arc::clone(&cache));
    let file = cache.get_or_create(&path).expect("map");
    if !is_cold(&file, 1 << 20) {
        return;
    }
    let gate = gate::hold(&file.bytes());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let request = http::Request::get("/cold.bin").header("range", "bytes=0-1048575");
        let cold = tokio::spawn(serve.clone().oneshot(request.body(()).expect("request")));
        // The first frame is being brought in (held at the gate), on the blocking pool.
        gate.reached.notified().await;
        let hot = http::Request::get("/hot.bin").body(()).expect("request");
        let hot = serve.clone().oneshot(hot).await.expect("infallible");
        assert_eq!(hot.status(), http::StatusCode::OK);
        let hot = hot
            .into_body()
            .collect()
            .await
            .expect("hot body")
            .to_bytes();
        assert_eq!(
            hot,
            vec![7u8; 4096],
            "the worker answered another request meanwhile"
        );
        assert!(
            !cold.is_finished(),
            "the response is handed over only once its first frame is in memory"
        );
        gate.open();
        let mut body = cold.await.expect("task").expect("infallible").into_body();
        // Its first frame is ready at the first poll: the server writes it with the head.
        let mut first = std::pin::pin!(body.frame());
        let polled = std::future::Future::poll(
            first.as_mut(),
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
        );
        let std::task::Poll::Ready(Some(Ok(frame))) = polled else {
            panic!("the first frame was not ready: {polled:?}");
        };
        let frame = frame.into_data().expect("data");
        assert_eq!(file.residency(&frame, 0), Residency::Resident);
        assert_eq!(frame, pattern(LEN)[..frame.len()]);
    });
    let stats = cache.stats();
    assert!(stats.frames_brought_in >= 1, "{stats:?}");
    assert!(stats.bring_in_wait_nanos > 0, "{stats:?}");
}

#[test]
fn a_long_cold_body_reads_ahead_and_every_frame_arrives_resident() {
    let Some((_dir, path)) = cold_fixture() else {
        return;
    };
    let file = Arc::new(MmapFile::new(&path).expect("map"));
    if !is_cold(&file, LEN as u64) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut body = MmapBody::file_range(Arc::clone(&file), 0..LEN as u64).expect("inside");
        let first = next_data(&mut body).await;
        assert_eq!(file.residency(&first, 0), Residency::Resident);
        // Handing out the first frame split off the second and started bringing it in: its pages come in
        // without the body being polled again.
        let second = file
            .range(first.len() as u64..2 * first.len() as u64)
            .expect("inside");
        let mut got = first.to_vec();
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("ok").into_data().expect("data");
            assert_eq!(file.residency(&frame, 0), Residency::Resident);
            got.extend_from_slice(&frame);
        }
        assert_eq!(got, pattern(LEN));
        assert_eq!(file.residency(&second, 0), Residency::Resident);
    });
}

#[test]
fn a_cold_download_keeps_asking_ahead_of_the_frames_it_sends_and_no_further() {
    let Some((_dir, file)) = cold_file_without_read_around() else {
        return;
    };
    let file = Arc::new(file);
    const FRAME: usize = 65_536;
    let window = super::super::read_ahead_window(FRAME);
    assert_eq!(window, 4 * FRAME);
    let sixth = file
        .range((5 * FRAME) as u64..(6 * FRAME) as u64)
        .expect("inside");
    let far = file
        .range(1 << 20..(1 << 20) + FRAME as u64)
        .expect("inside");
    if file.residency(&sixth, 0) != Residency::Cold || file.residency(&far, 0) != Residency::Cold {
        eprintln!("skipped: posix_fadvise(DONTNEED) left the frames looked at in memory");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut body = MmapBody::file_range(Arc::clone(&file), 0..LEN as u64).expect("inside");
        body.chunk_size = FRAME;
        for i in 0..3 {
            let frame = next_data(&mut body).await;
            assert_eq!(frame, pattern(LEN)[i * FRAME..(i + 1) * FRAME]);
        }
        // Three frames sent (the fourth made ready): the first bring-in asked for frames 1-4, and half of
        // that used, the body asked for frames 5 and 6. A generous bound that only a missing request reaches.
        assert_eq!(
            resident_within_30_s(&file, &sixth).await,
            Residency::Resident,
            "frames past the first bring-in's were asked for"
        );
        assert_eq!(
            file.residency(&far, 0),
            Residency::Cold,
            "nothing past the window was"
        );
    });
}

/// The next frame of `body`, which must be data.
async fn next_data(body: &mut MmapBody) -> bytes::Bytes {
    body.frame()
        .await
        .expect("frame")
        .expect("ok")
        .into_data()
        .expect("data")
}

/// Sends the whole body of `file` on a current-thread runtime; returns its bytes and the residency checks
/// made meanwhile.
fn send_counting_checks(file: &Arc<MmapFile>) -> (Vec<u8>, usize) {
    use crate::mmap::residency::CHECKS;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let before = CHECKS.with(std::cell::Cell::get);
    let got = runtime.block_on(async {
        let body = MmapBody::file_range(Arc::clone(file), 0..file.size()).expect("inside");
        body.collect().await.expect("sent").to_bytes().to_vec()
    });
    (got, CHECKS.with(std::cell::Cell::get) - before)
}

#[test]
fn the_last_piece_held_back_is_checked_with_the_frame_before_it() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let path = dir.path().join("warm.bin");
    std::fs::write(&path, pattern(100_000)).expect("write");
    let file = Arc::new(MmapFile::new(&path).expect("map"));
    // Two frames, the last 4 KiB held back: one check for both.
    let (got, checks) = send_counting_checks(&file);
    assert_eq!(got, pattern(100_000));
    assert_eq!(checks, 1);
}

#[test]
fn a_response_checks_its_first_frame_before_it_is_handed_over_and_not_again() {
    use crate::mmap::residency::CHECKS;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    std::fs::write(dir.path().join("warm.bin"), pattern(100_000)).expect("write");
    let serve = MmapServe::new(DirResolver::new(dir.path()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let request = || http::Request::get("/warm.bin").body(()).expect("request");
        // The first request maps the file (on the blocking pool); the second is answered from the cache.
        serve.clone().oneshot(request()).await.expect("infallible");
        let before = CHECKS.with(std::cell::Cell::get);
        let response = serve.clone().oneshot(request()).await.expect("infallible");
        assert_eq!(
            CHECKS.with(std::cell::Cell::get) - before,
            1,
            "checked before"
        );
        let got = response
            .into_body()
            .collect()
            .await
            .expect("sent")
            .to_bytes();
        assert_eq!(got, pattern(100_000));
        assert_eq!(
            CHECKS.with(std::cell::Cell::get) - before,
            1,
            "the frame and the last piece held back, once"
        );
    });
}

#[test]
fn a_cold_last_piece_comes_in_with_the_frame_before_it_and_is_not_checked_again() {
    let Some((_dir, path)) = cold_fixture() else {
        return;
    };
    let file = Arc::new(MmapFile::new(&path).expect("map"));
    if !is_cold(&file, LEN as u64) {
        return;
    }
    // Four frames of 1 MiB, the last one 4 KiB short, then the 4 KiB held back: four checks.
    let (got, checks) = send_counting_checks(&file);
    assert_eq!(got, pattern(LEN));
    assert_eq!(checks, 4);
}

#[test]
fn a_file_truncated_under_a_cold_bring_in_ends_the_body_with_an_error() {
    let Some((_dir, path)) = cold_fixture() else {
        return;
    };
    let file = Arc::new(MmapFile::new(&path).expect("map"));
    if !is_cold(&file, 1 << 20) {
        return;
    }
    let gate = gate::hold(&file.bytes());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut body = MmapBody::file_range(Arc::clone(&file), 0..LEN as u64).expect("inside");
        let drain = tokio::spawn(async move {
            let mut sent = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => sent += frame.into_data().expect("data").len(),
                    Err(e) => return (sent, Some(e)),
                }
            }
            (sent, None)
        });
        gate.reached.notified().await;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(0))
            .expect("truncate");
        gate.open();
        let (sent, error) = drain.await.expect("task");
        assert!(error.is_some(), "the body must not complete");
        assert!(sent < LEN, "{sent}");
    });
    assert!(file.is_poisoned(), "never served again");
}

#[test]
fn range_resident_brings_a_cold_range_in_and_reports_truncation() {
    let Some((_dir, path)) = cold_fixture() else {
        return;
    };
    let file = MmapFile::new(&path).expect("map");
    if !is_cold(&file, LEN as u64) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let rows = runtime
        .block_on(file.range_resident(65_536..200_000))
        .expect("rows");
    assert_eq!(file.residency(&rows, 0), Residency::Resident);
    assert_eq!(rows, pattern(LEN)[65_536..200_000]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(4096))
        .expect("truncate");
    assert!(
        runtime
            .block_on(file.range_resident(1 << 20..2 << 20))
            .is_err()
    );
    assert!(file.is_poisoned());
}

#[test]
fn outside_a_runtime_a_cold_frame_is_brought_in_inline() {
    let Some((_dir, path)) = cold_fixture() else {
        return;
    };
    let file = Arc::new(MmapFile::new(&path).expect("map"));
    if !is_cold(&file, 1 << 20) {
        return;
    }
    let mut body = MmapBody::file_range(Arc::clone(&file), 0..(1 << 20)).expect("inside");
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let frame = match http_body::Body::poll_frame(std::pin::Pin::new(&mut body), &mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().expect("data"),
        other => panic!("a frame at once outside a runtime: {other:?}"),
    };
    assert_eq!(file.residency(&frame, 0), Residency::Resident);
}

/// `file`'s mapping, for handing frames to the bring-in queue directly.
fn mapping_of(file: &MmapFile) -> Arc<crate::mmap::map::Mapping> {
    Arc::clone(file.mapping().expect("a mapped file"))
}

#[test]
fn cold_frames_queued_together_come_back_each_with_its_own_bytes_and_a_truncated_file_fails_alone()
{
    let Some((dir, path)) = cold_fixture() else {
        return;
    };
    let other = dir.path().join("other.bin");
    std::fs::write(&other, vec![9u8; LEN]).expect("write other.bin");
    evict(&other);
    let file = MmapFile::new(&path).expect("map");
    let shrinking = MmapFile::new(&other).expect("map");
    if !is_cold(&file, LEN as u64) || !is_cold(&shrinking, LEN as u64) {
        return;
    }
    // Truncated under its mapping before its frames are brought in: each of them must fail, and only they.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&other)
        .and_then(|f| f.set_len(4096))
        .expect("truncate");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let queue = |of: &MmapFile, start: usize, len: usize| {
            let frame = of
                .range(start as u64..(start + len) as u64)
                .expect("inside");
            super::spawn_bring_in(mapping_of(of), frame, 0, 0)
        };
        let mut jobs = Vec::new();
        for i in 0..16 {
            let start = (i * 251 * 1024) % (LEN - 65_536);
            jobs.push((start, true, queue(&file, start, 65_536)));
            let at = (1 << 20) + i * 65_536;
            jobs.push((at, false, queue(&shrinking, at, 4096)));
        }
        for (start, intact, job) in jobs {
            let got = job.await;
            if intact {
                let frame = got.expect("an intact file's frame");
                assert_eq!(frame, pattern(LEN)[start..start + 65_536], "at {start}");
                assert_eq!(file.residency(&frame, 0), Residency::Resident);
            } else {
                let err = got.expect_err("a frame past the new end");
                assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "at {start}");
            }
        }
    });
}

#[test]
fn a_frame_queued_the_moment_every_bring_in_thread_is_stuck_on_a_slow_read_is_brought_in_by_another()
 {
    let Some((dir, path)) = cold_fixture() else {
        return;
    };
    let other = dir.path().join("other.bin");
    std::fs::write(&other, pattern(LEN)).expect("write other.bin");
    evict(&other);
    let slow = MmapFile::new(&path).expect("map");
    let file = MmapFile::new(&other).expect("map");
    if !is_cold(&slow, LEN as u64) || !is_cold(&file, LEN as u64) {
        return;
    }
    // The slow read: held at the gate until the end of the test.
    let gate = gate::hold(&slow.bytes());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let held = super::spawn_bring_in(
            mapping_of(&slow),
            slow.range(0..65_536).expect("inside"),
            0,
            0,
        );
        let mut held = std::pin::pin!(held);
        gate.reached.notified().await;
        // Queued at once: the drainer holding the slow read went round a moment ago, so only the watch sees,
        // a stall period later, that nothing takes the frame; nothing else arrives to show it.
        let frame = file.range(1 << 20..(1 << 20) + 65_536).expect("inside");
        let next = super::spawn_bring_in(mapping_of(&file), frame, 0, 0);
        let got = while_held(
            next,
            held.as_mut(),
            "brought in while the slow read is still held",
        )
        .await
        .expect("bytes");
        assert_eq!(got, pattern(LEN)[1 << 20..(1 << 20) + 65_536]);
        gate.open();
        let slow_frame = held.await.expect("the held frame, once let go");
        assert_eq!(slow_frame, pattern(LEN)[..65_536]);
    });
}

#[test]
fn a_frame_asked_for_with_a_slow_one_is_handed_back_while_the_slow_read_is_still_held() {
    let Some((_dir, file)) = cold_file(crate::MmapConfig::default()) else {
        return;
    };
    let slow = file.range(0..65_536).expect("inside");
    let quick = file.range(1 << 20..(1 << 20) + 65_536).expect("inside");
    // The slow read: held at the gate until the end of the test.
    let gate = gate::hold(&slow);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Taken together, by one drainer, which asks for both and waits for the older one first.
        let mut results =
            super::queue::submit_together(&mapping_of(&file), vec![slow, quick]).into_iter();
        let (held, quick) = (results.next().expect("two"), results.next().expect("two"));
        let mut held = std::pin::pin!(held);
        gate.reached.notified().await;
        let got = while_held(
            quick,
            held.as_mut(),
            "handed back while the slow read is still held",
        )
        .await
        .expect("sent")
        .expect("bytes");
        assert_eq!(got, pattern(LEN)[1 << 20..(1 << 20) + 65_536]);
        gate.open();
        let slow_frame = held
            .await
            .expect("sent")
            .expect("the held frame, once let go");
        assert_eq!(slow_frame, pattern(LEN)[..65_536]);
    });
}

#[test]
fn a_frame_whose_response_is_gone_is_not_read() {
    let Some((_dir, file)) = cold_file_without_read_around() else {
        return;
    };
    let abandoned = file.range(0..65_536).expect("inside");
    let wanted = file.range(1 << 20..(1 << 20) + 65_536).expect("inside");
    if file.residency(&abandoned, 0) != Residency::Cold {
        eprintln!("skipped: posix_fadvise(DONTNEED) left the abandoned frame in memory");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        super::queue::submit_abandoned(mapping_of(&file), abandoned.clone());
        // Queued after it: once this one is in, the abandoned one has been taken (and dropped) before.
        let got = super::spawn_bring_in(mapping_of(&file), wanted.clone(), 0, 0)
            .await
            .expect("the wanted frame");
        assert_eq!(got, pattern(LEN)[1 << 20..(1 << 20) + 65_536]);
    });
    assert_eq!(file.residency(&wanted, 0), Residency::Resident);
    assert_eq!(
        file.residency(&abandoned, 0),
        Residency::Cold,
        "the abandoned frame was read"
    );
}

/// `range`'s residency in `file` once it is no longer cold, or after 30 s: a read asked for and not waited
/// for lands on its own, and the generous bound is only reached when it was never asked for.
async fn resident_within_30_s(file: &MmapFile, range: &bytes::Bytes) -> Residency {
    let mut waited = 0;
    while file.residency(range, 0) == Residency::Cold && waited < 30_000 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 10;
    }
    file.residency(range, 0)
}

/// What `other` yields, which must come while `held` (a read held at a gate) stays pending: `what` is the
/// failure, reached only at a generous bound that only a hang reaches.
async fn while_held<F: std::future::Future, H: std::future::Future>(
    other: F,
    held: std::pin::Pin<&mut H>,
    what: &str,
) -> F::Output {
    let got = tokio::time::timeout(std::time::Duration::from_secs(60), other)
        .await
        .unwrap_or_else(|_| panic!("{what}"));
    assert!(
        futures_poll_once(held).is_pending(),
        "the held read is still waiting"
    );
    got
}

/// Polls `future` once with a waker that does nothing.
fn futures_poll_once<F: std::future::Future>(
    future: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    future.poll(&mut cx)
}

#[test]
fn a_bring_in_asks_for_the_bytes_ahead_of_its_frame_without_waiting_for_them() {
    let Some((_dir, file)) = cold_file_without_read_around() else {
        return;
    };
    let ahead = file.range(1 << 20..2 << 20).expect("inside");
    let beyond = file.range(2 << 20..3 << 20).expect("inside");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let frame = file.range(0..1 << 20).expect("inside");
        let got = super::spawn_bring_in(mapping_of(&file), frame, 0, 1 << 20)
            .await
            .expect("the frame");
        assert_eq!(got, pattern(LEN)[..1 << 20]);
        // The read asked for ahead lands on its own; a generous bound that only a missing request reaches.
        assert_eq!(
            resident_within_30_s(&file, &ahead).await,
            Residency::Resident,
            "the bytes ahead were asked for"
        );
        assert_eq!(
            file.residency(&beyond, 0),
            Residency::Cold,
            "and nothing past them"
        );
    });
}

/// `GET /{name}` with a Range header of `ranges`, answered by `serve` on a current-thread runtime once a HEAD
/// request has mapped the file: the data of each part of the multipart answer, in order, and the residency
/// checks made while the answer was made and sent.
fn multipart_counting_checks(
    serve: &MmapServe<DirResolver>,
    name: &str,
    ranges: &[std::ops::Range<usize>],
) -> (Vec<Vec<u8>>, usize) {
    use crate::mmap::residency::CHECKS;
    let spec: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end - 1))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let uri = format!("/{name}");
        let head = http::Request::head(&uri).body(()).expect("request");
        serve.clone().oneshot(head).await.expect("infallible");
        let request = http::Request::get(&uri)
            .header("range", format!("bytes={}", spec.join(",")))
            .body(())
            .expect("request");
        let before = CHECKS.with(std::cell::Cell::get);
        let response = serve.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), http::StatusCode::PARTIAL_CONTENT);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("sent")
            .to_bytes();
        let checks = CHECKS.with(std::cell::Cell::get) - before;
        // Each part: its headers up to a blank line, then exactly the range's bytes.
        let mut parts = Vec::new();
        let mut at = 0;
        for range in ranges {
            let blank = body[at..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a part's headers end");
            let start = at + blank + 4;
            parts.push(body[start..start + range.len()].to_vec());
            at = start + range.len();
        }
        (parts, checks)
    })
}

#[test]
fn the_parts_of_a_multipart_answer_close_to_each_other_are_checked_with_one_call() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let content = pattern(3 << 20);
    std::fs::write(dir.path().join("rows.bin"), &content).expect("write");
    let serve = MmapServe::new(DirResolver::new(dir.path()));
    // Ten rows within 80 KiB, then two more 2 MiB further on (past the reach of one check).
    let mut ranges: Vec<_> = (0..10).map(|i| i * 8192..i * 8192 + 100).collect();
    ranges.extend([2 << 20..(2 << 20) + 100, (2 << 20) + 8192..(2 << 20) + 8292]);
    let (parts, checks) = multipart_counting_checks(&serve, "rows.bin", &ranges);
    for (part, range) in parts.iter().zip(&ranges) {
        assert_eq!(part[..], content[range.clone()]);
    }
    assert_eq!(
        checks, 2,
        "one check for the first ten parts, one for the last two"
    );
}

#[test]
fn a_cold_page_between_the_parts_of_a_multipart_answer_is_not_read() {
    use std::os::unix::fs::FileExt;
    let Some((dir, path)) = cold_fixture() else {
        return;
    };
    // Five parts, 64 KiB apart: their own pages read into memory (no read-ahead), the pages between cold.
    let ranges: Vec<_> = (0..5).map(|i| i * 65536..i * 65536 + 100).collect();
    let file = std::fs::File::open(&path).expect("open");
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random).expect("fadvise");
    for range in &ranges {
        file.read_exact_at(&mut [0; 100], range.start as u64)
            .expect("read");
    }
    let cache = Arc::new(MmapCache::new(10));
    let serve = MmapServe::with_cache(DirResolver::new(dir.path()), Arc::clone(&cache));
    let mapped = cache.get_or_create(&path).expect("map");
    let gap = || mapped.residency(&mapped.range(32768..36864).expect("inside"), 0);
    let parts_in = ranges.iter().all(|r| {
        mapped.residency(
            &mapped.range(r.start as u64..r.end as u64).expect("inside"),
            0,
        ) == Residency::Resident
    });
    if gap() != Residency::Cold || !parts_in {
        eprintln!("skipped: the page cache did not keep the parts in and the gap out");
        return;
    }
    let (parts, checks) = multipart_counting_checks(&serve, "cold.bin", &ranges);
    let content = pattern(LEN);
    for (part, range) in parts.iter().zip(&ranges) {
        assert_eq!(part[..], content[range.clone()]);
    }
    // The check of the first part with the four after it finds the gap cold; then each part is asked alone.
    assert_eq!(checks, 1 + 5);
    assert_eq!(
        cache.stats().frames_brought_in,
        0,
        "every part was in memory"
    );
    assert_eq!(gap(), Residency::Cold, "the gap was never read");
}
