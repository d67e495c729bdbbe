//! Bringing cold frames of a mapping into memory off the async workers: where a bring-in runs, how many run at
//! once, and [`MmapFile::range_resident`] for handlers; the system calls themselves are `mmap::residency`'s.
//!
//! A frame whose pages `mincore` finds in memory is sent at once, on the worker (the hot path: one system
//! call, no allocation, no hop). Any other is brought in on Tokio's blocking pool (`spawn_blocking`) with
//! `MADV_WILLNEED` and `MADV_POPULATE_READ`, and handed out only after; at most [`MAX_BRING_INS`] bring-ins
//! run at once, process-wide, so a burst of cold requests queues its disk reads instead of taking every
//! blocking thread. Outside a Tokio runtime the bring-in runs inline, on the caller's thread.

use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::MmapError;
use crate::mmap::file::{Content, MmapFile};
use crate::mmap::map::Mapping;
use crate::mmap::residency::Residency;

#[cfg(test)]
pub(crate) mod gate;
#[cfg(test)]
mod tests;

/// The most bring-ins running at once in the process: 64.
///
/// Enough to keep a disk's queue full (an NVMe drive reaches its random-read peak at a queue depth of 32 to
/// 64, a SATA SSD at 32, a virtual disk sooner) with frames of up to a chunk each, and far below Tokio's 512
/// blocking threads, which `open`s, `stat`s and `pread`s also need. Bring-ins past the bound wait their turn
/// without holding a thread.
pub(crate) const MAX_BRING_INS: usize = 64;

static BRING_INS: Semaphore = Semaphore::const_new(MAX_BRING_INS);

/// A frame on its way from the blocking pool: read with `pread`, or brought in.
pub(super) type Job = JoinHandle<io::Result<Bytes>>;

/// Brings `frame`, a slice of `mapping`, and the `tail` bytes after it into memory on `runtime`'s blocking
/// pool once a bring-in permit is free (see [`MAX_BRING_INS`]), and yields the frame.
pub(super) fn spawn_bring_in(
    runtime: &Handle,
    mapping: Arc<Mapping>,
    frame: Bytes,
    tail: usize,
) -> Job {
    match BRING_INS.try_acquire() {
        Ok(permit) => runtime.spawn_blocking(move || {
            let _permit = permit;
            bring_in(&mapping, frame, tail)
        }),
        // All permits taken: a small task waits for one, holding no blocking thread meanwhile.
        Err(_) => {
            let blocking = runtime.clone();
            runtime.spawn(async move {
                let permit = BRING_INS.acquire().await.map_err(io::Error::other)?;
                let job = blocking.spawn_blocking(move || {
                    let _permit = permit;
                    bring_in(&mapping, frame, tail)
                });
                job.await.unwrap_or_else(|e| Err(joined(e)))
            })
        }
    }
}

/// Brings `frame`, a slice of `mapping`, and the `tail` bytes after it into memory here and now (blocking),
/// and yields the frame.
///
/// # Errors
///
/// `UnexpectedEof` when the file was truncated under the frame.
pub(super) fn bring_in(mapping: &Mapping, frame: Bytes, tail: usize) -> io::Result<Bytes> {
    #[cfg(test)]
    gate::wait(&frame);
    mapping.bring_in(&frame, tail).map(|()| frame)
}

/// A blocking job that panicked or was cancelled, as the I/O error the body ends with.
pub(super) fn joined(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(e.to_string())
}

impl MmapFile {
    /// The bytes in `range`, zero-copy as [`range`](Self::range) returns them, once they are in memory: an
    /// async [`range`](Self::range) that never makes a Tokio worker wait for the disk.
    ///
    /// [`range`](Self::range) and [`bytes`](Self::bytes) hand out slices of the mapping without looking at
    /// them, and the first touch of a page that is not in the page cache (hyper's `write` of the response, a
    /// handler reading a tensor) waits for the disk on whatever thread touches it. This future checks the
    /// range's pages instead (one `mincore(2)`): when all are in memory it is ready at once, on its first
    /// poll; otherwise it brings them in on Tokio's blocking pool, one read-ahead request for the whole range
    /// (`MADV_WILLNEED`, then `MADV_POPULATE_READ`), at most 64 such bring-ins at a time in the process, and
    /// is ready after. A file read on demand ([`reads_on_demand`](Self::reads_on_demand)) is read on the
    /// blocking pool; bytes on the heap (small files) are ready at once. Outside a Tokio runtime the work
    /// runs inline, in `poll`.
    ///
    /// The pages can still be evicted again before they are sent, under memory pressure; to send a large
    /// range, build an [`MmapBody::file_range`](crate::MmapBody::file_range), which checks every frame.
    ///
    /// # Errors
    ///
    /// [`MmapError::InvalidRange`] as for [`range`](Self::range); [`MmapError::Io`] when the file was
    /// truncated under the mapping (the file is then poisoned: [`is_poisoned`](Self::is_poisoned)) or a read
    /// on demand failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::MmapFile;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let d = tempfile::tempdir()?; let path = d.path().join("w.bin");
    /// # std::fs::write(&path, (0..1_000_000u32).map(|i| i as u8).collect::<Vec<_>>())?;
    /// let tensor = MmapFile::new(&path)?;
    /// let rows = tensor.range_resident(65_536..131_072).await?;
    /// assert_eq!(rows.len(), 65_536);
    /// assert_eq!(rows[1], 1);
    /// assert!(tensor.range_resident(0..2_000_000).await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn range_resident(&self, range: Range<u64>) -> ResidentRange<'_> {
        let state = match self.range_plan(range) {
            Err(e) => State::Done(Some(Err(e))),
            Ok(Plan::Ready(bytes)) => State::Done(Some(Ok(bytes))),
            Ok(Plan::Job(work)) => State::Start(Some(work)),
        };
        ResidentRange { file: self, state }
    }

    /// What [`range_resident`](Self::range_resident) has to do for `range`.
    fn range_plan(&self, range: Range<u64>) -> Result<Plan, MmapError> {
        match self.content() {
            Content::Memory(_) => {
                let bytes = self.range(range)?;
                match (self.residency(&bytes, 0), self.mapping()) {
                    (Residency::Cold, Some(mapping)) => {
                        Ok(Plan::Job(Work::BringIn(Arc::clone(mapping), bytes)))
                    }
                    _ => Ok(Plan::Ready(bytes)),
                }
            }
            Content::Pread(file) => {
                // Checked as `range` checks it, read later, off the worker.
                self.check_range(&range)?;
                Ok(Plan::Job(Work::Read(Arc::clone(file), range)))
            }
        }
    }
}

enum Plan {
    Ready(Bytes),
    Job(Work),
}

/// Blocking work for one range.
enum Work {
    BringIn(Arc<Mapping>, Bytes),
    Read(Arc<crate::mmap::pread::PreadFile>, Range<u64>),
}

impl Work {
    fn run(self) -> io::Result<Bytes> {
        match self {
            Self::BringIn(mapping, bytes) => bring_in(&mapping, bytes, 0),
            Self::Read(file, range) => file.read(range),
        }
    }

    fn spawn(self, runtime: &Handle) -> Job {
        match self {
            Self::BringIn(mapping, bytes) => spawn_bring_in(runtime, mapping, bytes, 0),
            Self::Read(file, range) => runtime.spawn_blocking(move || file.read(range)),
        }
    }
}

/// The future of [`MmapFile::range_resident`]: the range's bytes, once they are in memory.
#[must_use = "futures do nothing unless polled"]
pub struct ResidentRange<'a> {
    /// Poisoned when the bring-in finds the file truncated: it is never served again.
    file: &'a MmapFile,
    state: State,
}

enum State {
    /// Blocking work not yet handed to the pool (it is spawned on the first poll, inside the runtime).
    Start(Option<Work>),
    Running(Job),
    Done(Option<Result<Bytes, MmapError>>),
}

impl std::fmt::Debug for ResidentRange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Start(_) => "starting",
            State::Running(_) => "bringing in",
            State::Done(Some(_)) => "ready",
            State::Done(None) => "done",
        };
        f.debug_struct("ResidentRange")
            .field("path", &self.file.path())
            .field("state", &state)
            .finish()
    }
}

impl Future for ResidentRange<'_> {
    type Output = Result<Bytes, MmapError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let done = match &mut this.state {
                State::Start(work) => {
                    let work = work.take().expect("work is taken once");
                    match Handle::try_current() {
                        Ok(runtime) => {
                            this.state = State::Running(work.spawn(&runtime));
                            continue;
                        }
                        Err(_) => work.run(),
                    }
                }
                State::Running(job) => match Pin::new(job).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(joined_job) => joined_job.unwrap_or_else(|e| Err(joined(e))),
                },
                State::Done(result) => {
                    return Poll::Ready(
                        result
                            .take()
                            .expect("ResidentRange polled after completion"),
                    );
                }
            };
            let result = done.map_err(|source| {
                // Truncated under the mapping, or a short read: the file changed.
                this.file.mark_changed();
                MmapError::from_io(this.file.path(), source)
            });
            this.state = State::Done(None);
            return Poll::Ready(result);
        }
    }
}
