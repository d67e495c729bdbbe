//! [`MmapBody`]: a response body whose frames are zero-copy `Bytes` slices of a mapping, and every I/O a body
//! does (residency checks and bring-ins, pread frames on the blocking pool, the final re-check of the file);
//! no HTTP decisions.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::runtime::Handle;

use crate::MmapError;
use crate::cache::FrameCounters;
use crate::http::multipart::{Multipart, Piece};
use crate::mmap::file::{Content, MmapFile};
use crate::mmap::residency::Residency;

mod residency;
mod segment;

pub use residency::ResidentRange;
pub(crate) use segment::Segment;

use residency::{Job, ask_ahead, spawn_bring_in, spawn_read};

/// How many bytes a watched body holds back for its last frame, sent only once the file has been re-checked.
const FINAL_PIECE: usize = 4096;

/// The most a cold run of bytes has asked for ahead of the frame being sent: four frames, at most 16 MiB.
/// A frame's bring-in asks for that much after it; each frame handed out after it uses some of it, and once
/// half is left the body asks for the next half (without waiting for it), so a cold download keeps the disk
/// reading while the server sends. Measured with C2 of `bench/cold.sh` by hand (four full GETs of an evicted
/// 1 GiB file, 1 MiB frames, `serve --threads 2` on one core, three alternating runs each): asking only for
/// the next frame at each bring-in, 3,239-3,420 MB/s at 237-254 us of CPU per MB (the frame after one that
/// came in resident had not been asked for, and the worker waited for it); this window, 3,758-3,778 MB/s at
/// 219-221.
fn read_ahead_window(chunk_size: usize) -> usize {
    chunk_size.saturating_mul(4).min(16 << 20)
}

/// Bodies of at most this many bytes do not wait for their copies: the `writev` that follows their last check
/// normally copies all of them at once, and waiting would cost each a second one (measured with
/// `bench/load.sh`: a 3 x 1 KiB multipart request fell from 0.94x to 0.50x of the in-memory ceiling, random
/// 64 KiB ranges from 0.95x to 0.88x).
const WAIT_FOR_COPIES_ABOVE: u64 = 64 * 1024;

/// What a body serving a mapped file checks so that it never completes with wrong bytes, and never hands a
/// worker a frame that is not in memory.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    /// The file whose mapping the frames slice.
    pub(crate) file: Arc<MmapFile>,
    /// Re-check the file's identity before the last frame (false for immutable, content-addressed files).
    pub(crate) recheck_identity: bool,
    /// Where residency is counted: the cache the file came from (None for a body built by hand).
    pub(crate) counters: Option<Arc<FrameCounters>>,
    /// Hold the last frame until the server has let go of every earlier one (see
    /// [`MmapServe::wait_for_copies`](crate::MmapServe::wait_for_copies)).
    pub(crate) wait_for_copies: bool,
}

/// The frames of a body that the server still holds, for a body whose last check waits until it holds none:
/// hyper drops a frame once it has written it to the socket (the kernel has copied its bytes) or, for
/// HTTP/2, into its own buffer.
#[derive(Debug, Default)]
struct Copies {
    outstanding: AtomicUsize,
    /// The body's task, while it waits.
    waker: Mutex<Option<Waker>>,
}

/// A frame handed out by a body that waits for its copies: counted until the server drops it.
struct Held {
    bytes: Bytes,
    copies: Arc<Copies>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.copies.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waker = self
                .copies
                .waker
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// The default largest frame a body yields: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// The response body of [`MmapServe`](crate::MmapServe): slices of a mapped file, and for multipart responses the
/// framing between them, yielded as [`Bytes`] frames of at most a chunk size each.
///
/// No frame is a copy: each is a reference-counted slice of the file's mapping (or of one framing buffer), and
/// the size hint is always exact, so servers send `Content-Length` and no chunked encoding. (The exception is
/// a file that may change while the SIGBUS guard cannot protect a mapping of it: that file is read with `pread`
/// on a blocking thread, a frame of at most 256 KiB at a time.)
///
/// A body that slices a mapping checks it as it goes, best effort: before each frame, that the mapping was not
/// poisoned (the file truncated under it), and before its last frame, whatever its length, that the file on
/// disk is still the one mapped (one `fstat` of the mapped inode through the descriptor the file keeps, or a
/// `stat` of the path past the process's share of descriptors: a write in place changes the mtime and ctime
/// when it begins, while its inotify event, which poisons the mapping, comes once it ends); bodies of
/// immutable files skip it.
/// Any such body longer than 4 KiB holds its last 4 KiB back for a frame of their own, sent only after the
/// checks (unless the chunk size is 0: one frame per slice). A body read with `pread` fails on a short read
/// and re-checks the open file before its last frame, whatever its length.
/// A file that another process had open for writing when it was opened is poisoned from the start
/// ([`MmapFile::opened_while_written`](crate::MmapFile::opened_while_written)), so every body of it ends with
/// an error before its first frame, whatever its length. When a check fails the body ends with an error, so
/// the server aborts the connection and the client sees
/// fewer bytes than `Content-Length` promised instead of a complete response with wrong bytes.
///
/// What the last check covers: every byte the server has copied out of the mapping by the time it polls the
/// last frame. A server may poll a frame before it has written the earlier ones: hyper 1's HTTP/1 connection
/// (its default "queue" write strategy, used on sockets with vectored writes) keeps frames uncopied in a
/// queue and polls the next one as soon as the queue holds fewer than 16 frames and less than 408 KiB (its
/// `DEFAULT_MAX_BUFFER_SIZE`, 8 KiB + 400 KiB); the kernel copies them at the next `writev`. So a change
/// landing after the last check can still reach up to that much of a response's end, on a watched file only
/// when it lands within the moments the server takes to write those bytes: the watch poisons the mapping
/// when the change happens, but no frame is left to fail.
///
/// # Cold pages
///
/// A body that slices a mapping never hands the server a frame whose pages are not in memory, so no async
/// worker waits for the disk when it writes one. Before it yields a frame of a mapping, it asks the kernel
/// whether exactly that frame's pages are in the page cache (one `mincore(2)` per frame, on the worker, no
/// allocation; the last 4 KiB held back are checked, and brought in, with the frame before them, in the same
/// call; in a `multipart/byteranges` body, the parts that follow a part in ascending order and end within the
/// chunk size of its start (1 MiB by default, 2 MiB at most) are checked in the same call too, and not again,
/// unless a page between them is cold: then each part is checked alone, and the pages between parts are never
/// read). When they are, the frame is yielded at once. When they are not, the frame is queued for the crate's
/// bring-in threads, which take the cold frames of every body in batches (`MADV_WILLNEED` on each frame of
/// a batch, one read-ahead request per frame that the disk queues with the others, then
/// `MADV_POPULATE_READ` on each in turn, up to 64 in flight), and yielded once it is in; the worker serves
/// other connections meanwhile. A file truncated under a bring-in makes it fail instead of raising SIGBUS:
/// the body ends with an error, and the file is never served again. Outside a Tokio runtime, the bring-in
/// runs inline in `poll_frame`.
///
/// Bodies read ahead: when one frame is handed out, the next one is split off and checked, and brought in if
/// it is cold, while the server writes the first; and a frame's bring-in also asks for the four frames after
/// it (at most 16 MiB), without waiting for them, and the body asks for more as it uses them. So a cold
/// download proceeds at the disk's pace, with up to four frames' reads in flight, rather than one frame at a
/// time. Read-ahead never goes past the body's own bytes (the ranges the
/// client asked for), whatever [`MmapConfig`](crate::MmapConfig) says: the kernel's own read-around follows
/// its hints (`MADV_RANDOM` turns it off, `MADV_SEQUENTIAL` widens it).
///
/// What a worker may still wait for: the `mincore` call itself (a page-table and page-cache walk under the
/// process's memory-map lock: 1.5 to 2.5 microseconds per frame of 4 KiB to 1 MiB of resident pages measured
/// on a 2-core virtual machine, mostly the cost of entering the kernel; longer while another thread maps or
/// unmaps); the bring-in queue's lock, when it queues a cold frame (a bring-in thread holds it only to take
/// the frames waiting, never while it waits for the disk); the start of a bring-in thread, when its cold frame
/// finds none running or a backlog (a `clone` and a stack mapping, on the worker that queued it), and, should
/// the system refuse any thread while none runs, the bring-ins themselves, made inline on that worker; and
/// pages evicted again between the check and the server's `write` (memory pressure in that window), which
/// fault on the worker as before. `mincore` reports the page cache truthfully only for files the process
/// owns or may write (Linux hides it for other files and calls every page resident);
/// frames of any other mapped file are therefore always brought in by the bring-in threads, a thread hop
/// per frame even when warm. The cache's [`CacheStats`](crate::CacheStats) count frames sent resident and
/// frames brought in, and the time bodies waited for the latter.
///
/// # Examples
///
/// ```
/// use http_body::Body;
/// use mmap_serve::MmapBody;
/// let body = MmapBody::from(bytes::Bytes::from_static(b"hello"));
/// assert_eq!(body.size_hint().exact(), Some(5));
/// ```
#[derive(Debug)]
pub struct MmapBody {
    kind: Kind,
    chunk_size: usize,
    watch: Option<Watch>,
    failed: bool,
    /// The next frame, split off ahead of time: checked and in memory, or on its way from the blocking pool
    /// (boxed: a body sending one resident frame, the hot path, never makes one, and stays small to move).
    next: Option<Box<Next>>,
    /// The earlier frames the server still holds, for a body that waits for them before its last check.
    copies: Option<Arc<Copies>>,
    /// How many of the next frames were found in memory (or brought in) with an earlier check: the held-back
    /// last piece with the frame before it, and the first frame when `poll_first_ready` checked it.
    checked_ahead: u8,
    /// How many bytes after the frame being made ready a bring-in of this body has asked for and no frame
    /// has used yet (at most [`read_ahead_window`]): more than 0 once a frame of a long run came in cold.
    asked_ahead: u32,
}

/// How much of a run of `len` bytes the next frame takes: a chunk, except that a run longer than `held_back`
/// keeps its last `held_back` bytes for a frame of their own, sent only after the checks in `checked` — even
/// a run that fits one chunk. (More than `len` means all of it.)
fn first_frame_len(len: u64, chunk_size: usize, held_back: u64) -> usize {
    if len > held_back && len.saturating_sub(chunk_size as u64) < held_back {
        // Less than a chunk: `len - held_back < chunk_size`.
        (len - held_back) as usize
    } else {
        chunk_size
    }
}

/// How much of what is left of a run after a frame is the last piece held back right after it (checked and
/// brought in with that frame): all of it when it is no longer than `FINAL_PIECE`, none otherwise.
fn tail_of(rest: u64) -> usize {
    if rest <= FINAL_PIECE as u64 {
        rest as usize
    } else {
        0
    }
}

/// A frame split off before it is handed out.
#[derive(Debug)]
enum Next {
    /// Ready to send (a frame in memory, or the outcome of a read or bring-in made inline).
    Ready(io::Result<Bytes>),
    /// Off the workers: a `pread` on the blocking pool, or the bring-in of a frame of a mapping.
    Coming {
        job: Job,
        len: u64,
        /// A bring-in (counted in the stats), not a read.
        bring_in: bool,
        /// When the body first had to wait for it.
        waiting_since: Option<Instant>,
    },
}

impl Next {
    fn len(&self) -> u64 {
        match self {
            Self::Ready(Ok(frame)) => frame.len() as u64,
            Self::Ready(Err(_)) => 0,
            Self::Coming { len, .. } => *len,
        }
    }
}

#[derive(Debug)]
enum Kind {
    /// What is left of one contiguous run of bytes.
    Single(Segment),
    /// A multipart/byteranges body: the piece being sent and the index of the next one.
    Multipart(Box<MultipartState>),
}

#[derive(Debug)]
struct MultipartState {
    layout: Multipart,
    content: Content,
    /// Where the representation the layout's ranges are relative to starts in `content` (a window's start).
    offset: u64,
    current: Segment,
    next_piece: usize,
    remaining: u64,
    /// The addresses of the mapping that a check of an earlier frame found in memory together with it: the
    /// parts close after that frame, whose frames are then not checked again (see [`NEARBY_PARTS`]).
    resident: Range<usize>,
    /// False once a check of a frame and the parts after it found some page between them cold: the frames
    /// are then checked one by one, so that a cold gap no part needs is never read.
    nearby: bool,
}

/// How far past the start of a frame of a multipart body the check of that frame reaches to cover the parts
/// after it, at most (and never past the body's chunk size, 1 MiB by default): one `mincore` call for every
/// part within it instead of one each (a tensor client gathering rows asks for many close ranges of one file
/// in one request). 2 MiB is what one call looks at (`mmap::residency`).
const NEARBY_PARTS: usize = 2 << 20;

impl MultipartState {
    /// Whether `frame` lies where an earlier check found the mapping in memory.
    fn known_resident(&self, frame: &[u8]) -> bool {
        let start = frame.as_ptr() as usize;
        !frame.is_empty()
            && start >= self.resident.start
            && start + frame.len() <= self.resident.end
    }

    /// How many bytes after `frame` (a slice of the mapping that ends its part) the parts that follow it
    /// reach: each starting at or after the end of the one before, all ending within `limit` bytes of the
    /// frame's start. 0 when no part qualifies, or `frame` is not the end of a part of a mapping.
    fn nearby_parts(&self, frame: &[u8], limit: usize) -> usize {
        let Content::Memory(bytes) = &self.content else {
            return 0;
        };
        if !self.nearby || self.current.len() > 0 || self.next_piece % 2 == 1 {
            return 0;
        }
        let base = bytes.as_ptr() as usize;
        let (start, end) = (
            frame.as_ptr() as usize,
            frame.as_ptr() as usize + frame.len(),
        );
        let mut reach = end;
        // This part's data was piece `next_piece - 1`, so the next part is `next_piece / 2`.
        let mut part = self.next_piece / 2;
        while let Some(data) = self.layout.part_data(part) {
            let (Ok(from), Ok(to)) = (
                usize::try_from(self.offset + data.start),
                usize::try_from(self.offset + data.end),
            ) else {
                break;
            };
            let (from, to) = (base + from, base + to);
            if from < reach || to - start > limit {
                break;
            }
            reach = to;
            part += 1;
        }
        reach - end
    }
}

impl MmapBody {
    /// A body with no bytes.
    pub fn empty() -> Self {
        Self::from(Bytes::new())
    }

    /// One run of bytes, sent in frames of at most `chunk_size` bytes (0 means one frame).
    pub(crate) fn single(segment: Segment, chunk_size: usize) -> Self {
        Self::with_kind(Kind::Single(segment), chunk_size)
    }

    /// One slice, sent in frames of at most `chunk_size` bytes (0 means one frame).
    pub(crate) fn slice(data: Bytes, chunk_size: usize) -> Self {
        Self::single(Segment::Memory(data), chunk_size)
    }

    /// The multipart body laid out by `layout` over the representation that starts at `offset` in `content`
    /// (0 for the whole file, a window's start otherwise).
    pub(crate) fn multipart(
        layout: Multipart,
        content: Content,
        offset: u64,
        chunk_size: usize,
    ) -> Self {
        let remaining = layout.content_length();
        let state = MultipartState {
            layout,
            content,
            offset,
            current: Segment::Memory(Bytes::new()),
            next_piece: 0,
            remaining,
            resident: 0..0,
            nearby: true,
        };
        Self::with_kind(Kind::Multipart(Box::new(state)), chunk_size)
    }

    fn with_kind(kind: Kind, chunk_size: usize) -> Self {
        Self {
            kind,
            chunk_size: effective(chunk_size),
            watch: None,
            failed: false,
            next: None,
            copies: None,
            checked_ahead: 0,
            asked_ahead: 0,
        }
    }

    /// The bytes in `range` of `file`, sent in frames of at most [`DEFAULT_CHUNK_SIZE`] bytes, each checked as
    /// the service's bodies are (see the type's docs): the body a handler builds for one range of a file.
    ///
    /// No frame is handed to the server before its pages are in memory: cold frames are brought in on the
    /// blocking pool. The body re-checks the file's identity before its last frame, and ends with an error
    /// when the file changed.
    ///
    /// # Errors
    ///
    /// [`MmapError::InvalidRange`] when `range` does not lie inside the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http_body_util::BodyExt;
    /// use mmap_serve::{MmapBody, MmapFile};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let d = tempfile::tempdir()?; let path = d.path().join("w.bin");
    /// # std::fs::write(&path, (0..3_000_000u32).map(|i| i as u8).collect::<Vec<_>>())?;
    /// let file = Arc::new(MmapFile::new(&path)?);
    /// let body = MmapBody::file_range(Arc::clone(&file), 1_000..2_500_000)?;
    /// let bytes = body.collect().await?.to_bytes();
    /// assert_eq!(bytes.len(), 2_499_000);
    /// assert_eq!(bytes, file.range(1_000..2_500_000)?);
    /// # Ok(()) }
    /// ```
    pub fn file_range(file: Arc<MmapFile>, range: Range<u64>) -> Result<Self, MmapError> {
        file.check_range(&range)?;
        let segment = Segment::of(file.content(), range).expect("checked just above");
        let watch = file.is_shared().then(|| Watch {
            file,
            recheck_identity: true,
            counters: None,
            wait_for_copies: false,
        });
        Ok(Self::single(segment, DEFAULT_CHUNK_SIZE).watched(watch))
    }

    /// Checks `watch` while sending (see the type's docs).
    pub(crate) fn watched(mut self, watch: Option<Watch>) -> Self {
        self.copies = watch
            .as_ref()
            .filter(|w| w.wait_for_copies && self.remaining() > WAIT_FOR_COPIES_ABOVE)
            .map(|_| Arc::default());
        self.watch = watch;
        self
    }

    fn remaining(&self) -> u64 {
        let planned = match &self.kind {
            Kind::Single(segment) => segment.len(),
            Kind::Multipart(state) => state.remaining,
        };
        planned + self.next.as_ref().map_or(0, |next| next.len())
    }

    /// The next frame, in memory and checked against the watch; an error ends the body.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let next = match self.next.take() {
            Some(next) => *next,
            None => match self.next_frame() {
                None => return Poll::Ready(None),
                Some(segment) => self.prepare(segment),
            },
        };
        let frame = ready!(self.poll_ready(next, cx));
        // The last frame waits until the server has let go of every earlier one, so that its check sees any
        // change made before their bytes were copied out.
        if let (Some(copies), Ok(_)) = (&self.copies, &frame)
            && self.remaining() == 0
            && copies.outstanding.load(Ordering::Acquire) > 0
        {
            *copies
                .waker
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cx.waker().clone());
            // Let go of meanwhile: no wake is coming, go on.
            if copies.outstanding.load(Ordering::Acquire) > 0 {
                self.next = Some(Box::new(Next::Ready(frame)));
                return Poll::Pending;
            }
        }
        let frame = self.checked(frame);
        if frame.is_ok() {
            self.read_ahead();
        }
        let frame = match (frame, &self.copies) {
            (Ok(bytes), Some(copies)) if self.remaining() != 0 => {
                copies.outstanding.fetch_add(1, Ordering::AcqRel);
                Ok(Bytes::from_owner(Held {
                    bytes,
                    copies: Arc::clone(copies),
                }))
            }
            (frame, _) => frame,
        };
        Poll::Ready(Some(frame))
    }

    /// `next`'s frame once it is ready; while it is not, `next` is kept for the next poll.
    fn poll_ready(&mut self, next: Next, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        match next {
            Next::Ready(frame) => Poll::Ready(frame),
            Next::Coming {
                mut job,
                len,
                bring_in,
                waiting_since,
            } => match Pin::new(&mut job).poll(cx) {
                Poll::Pending => {
                    self.next = Some(Box::new(Next::Coming {
                        job,
                        len,
                        bring_in,
                        waiting_since: waiting_since.or_else(|| Some(Instant::now())),
                    }));
                    Poll::Pending
                }
                Poll::Ready(done) => {
                    if bring_in {
                        self.count_bring_in(waiting_since);
                    }
                    Poll::Ready(done)
                }
            },
        }
    }

    /// Has the first frame of a mapping in memory before the response is handed to the server, so that its
    /// head and first bytes leave together (hyper writes the head alone when the first frame is not ready):
    /// ready at once when the frame is resident (checked here, and not again when it is polled) or there is
    /// no such frame; pending while a cold one is brought in (it is then the next frame polled).
    pub(crate) fn poll_first_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.watch.is_none() || self.next.is_some() || self.failed || self.checked_ahead > 0 {
            return Poll::Ready(());
        }
        let Kind::Single(Segment::Memory(bytes)) = &self.kind else {
            return Poll::Ready(());
        };
        let limit =
            first_frame_len(bytes.len() as u64, self.chunk_size, self.held_back()).min(bytes.len());
        let rest = bytes.len() - limit;
        let tail = tail_of(rest as u64);
        let watch = self.watch.as_ref().expect("checked above");
        match watch.file.residency(&bytes[..limit], tail) {
            Residency::Resident => {
                // The frame and its held-back tail: neither is checked again.
                self.checked_ahead = 1 + u8::from(tail > 0);
                Poll::Ready(())
            }
            Residency::Unmapped => Poll::Ready(()),
            Residency::Cold => {
                let Some(Segment::Memory(frame)) = self.next_frame() else {
                    return Poll::Ready(());
                };
                let next = self.bring_in(frame, tail);
                match self.poll_ready(next, cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(frame) => {
                        self.next = Some(Box::new(Next::Ready(frame)));
                        Poll::Ready(())
                    }
                }
            }
        }
    }

    /// Makes `segment` ready to send: a frame of a mapping is checked (one `mincore`) and, when cold, queued
    /// for the bring-in threads; a range to read is read on the runtime's blocking pool. Without a runtime the
    /// work runs here. (The runtime is looked up only for that work: a resident frame costs no thread-local
    /// lookup.) The last piece held back right after a frame is checked, and brought in, with that frame: one
    /// system call and one disk request for both, and none of its own.
    fn prepare(&mut self, segment: Segment) -> Next {
        let tail = match &self.kind {
            Kind::Single(rest) => tail_of(rest.len()),
            Kind::Multipart(_) => 0,
        };
        match segment {
            Segment::Memory(frame) => {
                let Some(watch) = &self.watch else {
                    return Next::Ready(Ok(frame));
                };
                // This frame is part of what was asked for ahead.
                let used = u32::try_from(frame.len()).unwrap_or(u32::MAX);
                self.asked_ahead = self.asked_ahead.saturating_sub(used);
                let residency = if self.checked_ahead > 0 {
                    self.checked_ahead -= 1;
                    Residency::Resident
                } else if let Kind::Multipart(state) = &mut self.kind {
                    if state.known_resident(&frame) {
                        Residency::Resident
                    } else {
                        let limit = self.chunk_size.min(NEARBY_PARTS);
                        check_with_nearby_parts(state, &watch.file, &frame, limit)
                    }
                } else {
                    let residency = watch.file.residency(&frame, tail);
                    if residency == Residency::Resident {
                        self.checked_ahead = u8::from(tail > 0);
                    }
                    residency
                };
                match residency {
                    Residency::Cold => self.bring_in(frame, tail),
                    Residency::Resident => {
                        if let Some(counters) = &watch.counters {
                            counters.resident.fetch_add(1, Ordering::Relaxed);
                        }
                        if self.asked_ahead > 0 {
                            self.ask_further_ahead();
                        }
                        Next::Ready(Ok(frame))
                    }
                    Residency::Unmapped => Next::Ready(Ok(frame)),
                }
            }
            Segment::Read(file, range) => {
                let len = range.end - range.start;
                match Handle::try_current() {
                    Ok(runtime) => Next::Coming {
                        job: spawn_read(&runtime, file, range),
                        len,
                        bring_in: false,
                        waiting_since: None,
                    },
                    // Outside a Tokio runtime there is no blocking pool to hand the read to.
                    Err(_) => Next::Ready(file.read(range)),
                }
            }
        }
    }

    /// Brings `frame`, a cold slice of the mapping, and the `tail` bytes after it in: by the bring-in threads,
    /// or here without a runtime. The bring-in threads also ask for the body's next frames (up to
    /// [`read_ahead_window`]), without waiting for them, so that a cold download keeps the disk reading.
    fn bring_in(&mut self, frame: Bytes, tail: usize) -> Next {
        let Some(mapping) = self.watch.as_ref().and_then(|w| w.file.mapping()).cloned() else {
            return Next::Ready(Ok(frame));
        };
        // The tail comes in with the frame: it needs no check of its own.
        self.checked_ahead = u8::from(tail > 0);
        let len = frame.len() as u64;
        let window = read_ahead_window(self.chunk_size);
        let ahead = match &self.kind {
            Kind::Single(rest) if tail == 0 => {
                usize::try_from(rest.len()).map_or(window, |rest| rest.min(window))
            }
            _ => 0,
        };
        match Handle::try_current() {
            Ok(_) => {
                self.asked_ahead = u32::try_from(ahead).unwrap_or(u32::MAX);
                Next::Coming {
                    job: spawn_bring_in(mapping, frame, tail, ahead),
                    len,
                    bring_in: true,
                    waiting_since: None,
                }
            }
            Err(_) => {
                let done = residency::bring_in(&mapping, frame, tail);
                self.count_bring_in(None);
                Next::Ready(done)
            }
        }
    }

    /// Once half of what a cold run asked for ahead is used, asks for as much again after it (up to
    /// [`read_ahead_window`] ahead of the frame being made ready, and never past the run), not waiting for it.
    fn ask_further_ahead(&mut self) {
        let window = read_ahead_window(self.chunk_size);
        let asked = self.asked_ahead as usize;
        if asked > window / 2 {
            return;
        }
        let Kind::Single(Segment::Memory(rest)) = &self.kind else {
            return;
        };
        let want = rest.len().min(window);
        let Some(mapping) = self.watch.as_ref().and_then(|w| w.file.mapping()) else {
            return;
        };
        if want > asked {
            ask_ahead(Arc::clone(mapping), rest.slice(asked..want));
            self.asked_ahead = u32::try_from(want).unwrap_or(u32::MAX);
        }
    }

    /// Splits off the frame after the one just handed out and starts making it ready, while the server sends
    /// the first: only for a watched body (the others are bytes in memory) on a Tokio runtime (without one,
    /// frames are made ready when they are asked for).
    fn read_ahead(&mut self) {
        // Only within one run of bytes longer than a frame: a body of short pieces (multipart framing and
        // small parts) is never split ahead, so read-ahead allocates nothing for it.
        let more_of_this_run = match &self.kind {
            Kind::Single(segment) => segment.len() > 0,
            Kind::Multipart(state) => state.current.len() > 0,
        };
        if self.watch.is_none() || self.next.is_some() || !more_of_this_run {
            return;
        }
        if Handle::try_current().is_err() {
            return;
        }
        if let Some(segment) = self.next_frame() {
            self.next = Some(Box::new(self.prepare(segment)));
        }
    }

    /// Counts a finished bring-in, and the time waited for it since `waiting_since`.
    fn count_bring_in(&self, waiting_since: Option<Instant>) {
        if let Some(counters) = self.watch.as_ref().and_then(|w| w.counters.as_ref()) {
            counters.brought_in.fetch_add(1, Ordering::Relaxed);
            if let Some(since) = waiting_since {
                let waited = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
                counters.wait_nanos.fetch_add(waited, Ordering::Relaxed);
            }
        }
    }

    /// `frame` if it may be sent: it was read whole, and the watch finds the file intact.
    fn checked(&mut self, frame: io::Result<Bytes>) -> io::Result<Bytes> {
        let result = frame.and_then(|frame| match &self.watch {
            None => Ok(frame),
            Some(watch) => {
                // The poison flag (one atomic load) is checked before every frame. The file's identity (one
                // `fstat`, or a `stat` of the path: `MmapFile::still_matches`) is re-checked before the last
                // frame of every body of a file that may change, whatever its length: a write in place changes
                // the file's mtime and ctime when it begins, but its inotify event (the poison) comes only once
                // the write is done (a `pwrite` of 64 MiB took 22 ms here), and is read by the watch thread a
                // moment later, so the flag alone passed short responses carrying the new bytes with the old
                // length and ETag (the chaos bench, seed 14: one in 5,097 responses).
                let recheck = watch.recheck_identity && self.remaining() == 0;
                if watch.file.is_poisoned() || (recheck && !watch.file.still_matches()) {
                    Err(io::Error::other("the file changed"))
                } else {
                    Ok(frame)
                }
            }
        });
        result.map_err(|e| {
            self.failed = true;
            match &self.watch {
                Some(watch) => {
                    // A short read, or a bring-in that found the file truncated, is the file changing too:
                    // never served again from the cache.
                    watch.file.mark_changed();
                    io::Error::new(
                        e.kind(),
                        format!(
                            "{} changed while being served: {e}",
                            watch.file.path().display()
                        ),
                    )
                }
                None => e,
            }
        })
    }

    /// How much of its end a body holds back for a last frame of its own: `FINAL_PIECE` for a watched body
    /// (`chunk_size(0)` asks for one frame per slice: nothing is held back then).
    fn held_back(&self) -> u64 {
        if self.watch.is_some() && self.chunk_size != usize::MAX {
            FINAL_PIECE as u64
        } else {
            0
        }
    }

    /// Splits off the next frame to send: bytes, or a range to read.
    fn next_frame(&mut self) -> Option<Segment> {
        let chunk_size = self.chunk_size;
        let held_back = self.held_back();
        match &mut self.kind {
            Kind::Single(segment) => {
                let limit = first_frame_len(segment.len(), chunk_size, held_back);
                segment.take(limit)
            }
            Kind::Multipart(state) => loop {
                if let Some(frame) = state.current.take(chunk_size) {
                    state.remaining -= frame.len();
                    return Some(frame);
                }
                state.current = match state.layout.piece_at(state.next_piece)? {
                    Piece::Framing(bytes) => Segment::Memory(bytes),
                    Piece::Data(range) => {
                        let at = state.offset;
                        Segment::of(&state.content, at + range.start..at + range.end)?
                    }
                };
                state.next_piece += 1;
            },
        }
    }
}

/// Whether `frame`, a frame of a multipart body, is in memory, asked together with the parts close after it
/// (one `mincore` for all of them): when they are all in, their frames are not checked again; when some page
/// among them is cold, `frame` is asked alone, and so is every later frame of the body.
fn check_with_nearby_parts(
    state: &mut MultipartState,
    file: &MmapFile,
    frame: &[u8],
    limit: usize,
) -> Residency {
    let ahead = state.nearby_parts(frame, limit);
    if ahead == 0 {
        return file.residency(frame, 0);
    }
    match file.residency(frame, ahead) {
        Residency::Resident => {
            let start = frame.as_ptr() as usize;
            state.resident = start..start + frame.len() + ahead;
            Residency::Resident
        }
        Residency::Cold => {
            state.nearby = false;
            file.residency(frame, 0)
        }
        Residency::Unmapped => Residency::Unmapped,
    }
}

fn effective(chunk_size: usize) -> usize {
    if chunk_size == 0 {
        usize::MAX
    } else {
        chunk_size
    }
}

impl From<Bytes> for MmapBody {
    fn from(data: Bytes) -> Self {
        Self::slice(data, DEFAULT_CHUNK_SIZE)
    }
}

impl Default for MmapBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl Body for MmapBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.get_mut()
            .poll_next(cx)
            .map(|next| next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::segment::READ_CHUNK;
    use super::*;
    use crate::http::multipart::{Boundary, Multipart};
    use crate::mmap::pread::PreadFile;

    fn drain(mut body: MmapBody) -> (Vec<Bytes>, u64) {
        let hint = body.size_hint().exact().expect("exact");
        let mut frames = Vec::new();
        while let Some(frame) = body.next_frame() {
            let Segment::Memory(frame) = frame else {
                panic!("a body of bytes in memory reads nothing")
            };
            assert!(!frame.is_empty());
            frames.push(frame);
            assert_eq!(
                body.size_hint().exact(),
                Some(hint - frames.iter().map(|f| f.len() as u64).sum::<u64>())
            );
        }
        assert!(body.is_end_stream());
        (frames, hint)
    }

    #[test]
    fn a_slice_is_sent_in_chunks_that_point_into_it() {
        let data = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let (frames, hint) = drain(MmapBody::slice(data.clone(), 4096));
        assert_eq!(hint, 10_000);
        assert_eq!(
            frames.iter().map(Bytes::len).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );
        assert_eq!(frames[1].as_ptr(), data[4096..].as_ptr(), "zero-copy");
        assert_eq!(frames.concat(), data);
    }

    #[test]
    fn chunk_size_zero_sends_one_frame_and_empty_bodies_end_at_once() {
        let (frames, _) = drain(MmapBody::slice(Bytes::from(vec![1; 5000]), 0));
        assert_eq!(frames.len(), 1);
        let empty = MmapBody::empty();
        assert!(empty.is_end_stream());
        assert_eq!(drain(empty).0.len(), 0);
    }

    #[test]
    fn multipart_frames_concatenate_to_the_layout() {
        let file = Bytes::from((0..50_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let parts = [0..10, 20_000..30_000, 49_990..50_000];
        let layout = Multipart::new(&parts, 50_000, b"application/x-test", Boundary::new());
        let expected: Vec<u8> = (0..layout.piece_count())
            .flat_map(|i| layout.piece(i, &file).expect("piece").to_vec())
            .collect();
        let (frames, hint) = drain(MmapBody::multipart(layout, Content::Memory(file), 0, 4096));
        assert_eq!(hint, expected.len() as u64);
        assert!(frames.iter().all(|f| f.len() <= 4096));
        assert_eq!(frames.concat(), expected);
    }

    /// A waker that counts its wakes.
    struct Counted(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A body of a mapped 100 KB file (more than bodies that never wait) that waits for its copies, with the
    /// file.
    fn waiting_body_of(len: usize) -> (tempfile::TempDir, Arc<MmapFile>, MmapBody) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.bin");
        std::fs::write(&path, pattern(len)).expect("write");
        let file = Arc::new(MmapFile::new(&path).expect("map"));
        assert!(file.is_shared(), "mapped");
        let watch = Watch {
            file: Arc::clone(&file),
            recheck_identity: true,
            counters: None,
            wait_for_copies: true,
        };
        let segment = Segment::of(file.content(), 0..len as u64).expect("inside");
        (
            dir,
            file,
            MmapBody::single(segment, DEFAULT_CHUNK_SIZE).watched(Some(watch)),
        )
    }

    fn waiting_body() -> (tempfile::TempDir, Arc<MmapFile>, MmapBody) {
        waiting_body_of(100_000)
    }

    /// Asserts that `body` hands out its second frame while the server still holds its first.
    fn hands_out_the_last_frame_while_the_first_is_held(mut body: MmapBody) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(Some(Ok(_held))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("first");
        };
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
    }

    #[test]
    fn a_body_of_at_most_64_kib_never_waits_for_its_copies() {
        let (_dir, _file, body) = waiting_body_of(WAIT_FOR_COPIES_ABOVE as usize);
        hands_out_the_last_frame_while_the_first_is_held(body);
    }

    #[test]
    fn the_last_frame_waits_until_the_server_lets_go_of_the_earlier_ones_then_checks() {
        for change in [false, true] {
            let (_dir, file, mut body) = waiting_body();
            let counted = Arc::new(Counted(Default::default()));
            let waker = std::task::Waker::from(Arc::clone(&counted));
            let mut cx = Context::from_waker(&waker);
            let Poll::Ready(Some(Ok(first))) = Pin::new(&mut body).poll_frame(&mut cx) else {
                panic!("the first frame at once");
            };
            let first = first.into_data().expect("data");
            assert_eq!(first.len(), 100_000 - FINAL_PIECE);
            assert_eq!(
                first,
                pattern(100_000)[..first.len()],
                "the mapping's bytes"
            );
            // The server still holds the first frame: the last one waits, and nothing is checked yet.
            assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
            assert!(
                Pin::new(&mut body).poll_frame(&mut cx).is_pending(),
                "still"
            );
            if change {
                file.mark_changed(); // a change while the first frame's bytes were not copied out yet
            }
            assert_eq!(counted.0.load(Ordering::SeqCst), 0);
            drop(first);
            assert_eq!(
                counted.0.load(Ordering::SeqCst),
                1,
                "letting go wakes the body"
            );
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(last))) if !change => {
                    assert_eq!(
                        last.into_data().expect("data"),
                        pattern(100_000)[100_000 - FINAL_PIECE..]
                    );
                    assert!(matches!(
                        Pin::new(&mut body).poll_frame(&mut cx),
                        Poll::Ready(None)
                    ));
                }
                Poll::Ready(Some(Err(_))) if change => {}
                other => panic!("change {change}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_body_that_waited_re_checks_the_file_on_disk_before_its_last_frame() {
        let (dir, _file, mut body) = waiting_body();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(Some(Ok(first))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("the first frame at once");
        };
        // A write in place while the server copies the first frame: nothing has poisoned the mapping (no
        // watch here, as when its event is not read yet), but the file's mtime changed.
        write_in_place(dir.path());
        drop(first);
        assert!(
            matches!(
                Pin::new(&mut body).poll_frame(&mut cx),
                Poll::Ready(Some(Err(_)))
            ),
            "the change fails the body"
        );
    }

    /// Overwrites the first bytes of `dir`'s `w.bin` in place, past the filesystem's timestamp tick (so that
    /// its mtime moves), with no watch to report it.
    fn write_in_place(dir: &std::path::Path) {
        use std::os::unix::fs::FileExt;
        std::thread::sleep(std::time::Duration::from_millis(20));
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("w.bin"))
            .expect("open");
        writer.write_all_at(&[0xEE; 16], 0).expect("write");
    }

    #[test]
    fn a_short_body_re_checks_the_file_on_disk_before_its_only_frame() {
        // One frame (4 KiB) and two (60 KiB: a frame and the held-back piece) of a mapped file, neither
        // waiting for its copies: each re-checks the file before its last frame all the same.
        for len in [4096, 60 * 1024] {
            let (dir, file, _) = waiting_body_of(100_000);
            let watch = Watch {
                file: Arc::clone(&file),
                recheck_identity: true,
                counters: None,
                wait_for_copies: true,
            };
            let segment = Segment::of(file.content(), 0..len).expect("inside");
            let body = MmapBody::single(segment, DEFAULT_CHUNK_SIZE).watched(Some(watch));
            assert!(body.copies.is_none(), "a short body does not wait");
            // A write in place that has begun (its mtime is set) and whose inotify event, which would poison
            // the mapping, has not come yet: a long `pwrite` sends it only when it ends.
            write_in_place(dir.path());
            let (frames, error) = poll_all(body, || {});
            assert!(error.is_some(), "{len} bytes: the change fails the body");
            let sent: u64 = frames.iter().map(|f| f.len() as u64).sum();
            assert!(sent < len, "{len} bytes: never complete ({sent} sent)");
        }
    }

    #[test]
    fn a_body_that_does_not_wait_hands_out_its_last_frame_while_the_first_is_held() {
        let (_dir, _file, body) = waiting_body();
        let mut body = body;
        body.copies = None;
        hands_out_the_last_frame_while_the_first_is_held(body);
    }

    /// A file of `len` pattern bytes, opened for reading on demand.
    fn pread_file(len: usize) -> (tempfile::TempDir, std::path::PathBuf, Content) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f.bin");
        std::fs::write(&path, pattern(len)).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        (
            dir,
            path,
            Content::Pread(Arc::new(PreadFile::new(file, len as u64))),
        )
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Polls `body` to its end outside any runtime (reads run inline): the frames, and the error if it ended
    /// with one. `meddle` runs once, after the first frame.
    fn poll_all(mut body: MmapBody, meddle: impl FnOnce()) -> (Vec<Bytes>, Option<io::Error>) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut meddle = Some(meddle);
        let mut frames = Vec::new();
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    frames.push(frame.into_data().expect("data"));
                    if let Some(meddle) = meddle.take() {
                        meddle();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready(), "ended");
                    return (frames, Some(e));
                }
                Poll::Ready(None) => return (frames, None),
                Poll::Pending => panic!("nothing to wait for outside a runtime"),
            }
        }
    }

    #[test]
    fn a_file_read_on_demand_is_sent_in_bounded_frames_of_its_bytes() {
        let len = 1_000_000;
        let (_d, _p, content) = pread_file(len);
        let segment = Segment::of(&content, 1000..len as u64).expect("inside");
        let body = MmapBody::single(segment, 0);
        assert_eq!(body.size_hint().exact(), Some(len as u64 - 1000));
        let (frames, error) = poll_all(body, || {});
        assert!(error.is_none(), "{error:?}");
        assert!(
            frames.iter().all(|f| f.len() <= READ_CHUNK),
            "chunk size 0 still reads in bounded frames"
        );
        assert_eq!(frames.concat(), pattern(len)[1000..]);
        assert!(Segment::of(&content, 0..len as u64 + 1).is_none());
    }

    #[test]
    fn a_file_read_on_demand_that_shrinks_ends_the_body_with_an_error() {
        let len = 2_000_000;
        let (_d, path, content) = pread_file(len);
        let body = MmapBody::single(
            Segment::of(&content, 0..len as u64).expect("inside"),
            1 << 20,
        );
        let (frames, error) = poll_all(body, || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open")
                .set_len(300_000)
                .expect("truncate");
        });
        let error = error.expect("a short read is an error");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        let sent: usize = frames.iter().map(Bytes::len).sum();
        assert!(sent < len, "{sent}");
        assert_eq!(
            frames.concat(),
            pattern(len)[..sent],
            "every byte sent is the file's"
        );
    }

    #[test]
    fn a_multipart_body_over_a_file_read_on_demand_equals_the_one_over_memory() {
        let len = 700_000;
        let (_d, _p, content) = pread_file(len);
        let memory = Bytes::from(pattern(len));
        let parts = [0..10, 300_000..650_000, 699_990..700_000];
        let layout = Multipart::new(&parts, len as u64, b"application/x-test", Boundary::new());
        let (from_memory, _) = drain(MmapBody::multipart(
            layout.clone(),
            Content::Memory(memory),
            0,
            4096,
        ));
        let (read, error) = poll_all(MmapBody::multipart(layout, content, 0, 4096), || {});
        assert!(error.is_none(), "{error:?}");
        assert_eq!(read.concat(), from_memory.concat());
    }

    #[test]
    fn a_multipart_body_at_an_offset_sends_the_window_s_bytes_from_memory_and_from_reads() {
        let len = 300_000;
        let (_d, _p, content) = pread_file(len);
        let file = Bytes::from(pattern(len));
        // The window 1000..201_000 of the file, as the representation its own ranges count from.
        let window = file.slice(1000..201_000);
        let parts = [0..10, 50_000..120_000, 199_990..200_000];
        let layout = Multipart::new(&parts, 200_000, b"application/x-test", Boundary::new());
        let expected: Vec<u8> = (0..layout.piece_count())
            .flat_map(|i| layout.piece(i, &window).expect("piece").to_vec())
            .collect();
        let (from_memory, hint) = drain(MmapBody::multipart(
            layout.clone(),
            Content::Memory(file),
            1000,
            4096,
        ));
        assert_eq!(hint, expected.len() as u64);
        assert_eq!(from_memory.concat(), expected);
        let (read, error) = poll_all(MmapBody::multipart(layout, content, 1000, 4096), || {});
        assert!(error.is_none(), "{error:?}");
        assert_eq!(read.concat(), expected);
    }

    #[tokio::test]
    async fn on_a_runtime_reads_run_on_the_blocking_pool_and_the_hint_stays_exact() {
        use http_body_util::BodyExt;
        let len = 600_000;
        let (_d, _p, content) = pread_file(len);
        let mut body = MmapBody::single(
            Segment::of(&content, 0..len as u64).expect("inside"),
            1 << 20,
        );
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.expect("read").into_data().expect("data"));
            assert_eq!(body.size_hint().exact(), Some((len - got.len()) as u64));
        }
        assert_eq!(got, pattern(len));
    }
}
