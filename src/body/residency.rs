//! Bringing cold frames of a mapping into memory off the async workers: where a bring-in runs and
//! [`MmapFile::range_resident`] for handlers; the system calls themselves are `mmap::residency`'s.
//!
//! A frame whose pages `mincore` finds in memory is sent at once, on the worker (the hot path: one system
//! call, no allocation, no hop). Any other is queued for the bring-in threads (`queue.rs`), which take the
//! frames waiting together (`MADV_WILLNEED` on each, then `MADV_POPULATE_READ` on each in turn) and hand
//! each back once it is in; the worker serves other connections meanwhile. A range read on demand (`pread`,
//! for files the SIGBUS guard cannot protect) is read on Tokio's blocking pool. Outside a Tokio runtime the
//! work runs inline, on the caller's thread.

use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::MmapError;
use crate::mmap::file::{Content, MmapFile};
use crate::mmap::map::Mapping;
use crate::mmap::residency::Residency;

#[cfg(test)]
pub(crate) mod gate;
mod queue;
#[cfg(test)]
mod tests;

/// A frame on its way from off the workers: brought in by the bring-in threads, or read with `pread` on the
/// blocking pool.
#[derive(Debug)]
pub(super) enum Job {
    BroughtIn(oneshot::Receiver<io::Result<Bytes>>),
    Read(JoinHandle<io::Result<Bytes>>),
}

impl Future for Job {
    type Output = io::Result<Bytes>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::BroughtIn(result) => Pin::new(result).poll(cx).map(|sent| {
                // A bring-in thread never drops a frame without an answer, short of a panic there.
                sent.unwrap_or_else(|_| Err(io::Error::other("the bring-in of the frame was lost")))
            }),
            Self::Read(job) => Pin::new(job)
                .poll(cx)
                .map(|joined_job| joined_job.unwrap_or_else(|e| Err(joined(e)))),
        }
    }
}

/// Queues `frame`, a slice of `mapping`, and the `tail` bytes after it for the bring-in threads, and yields
/// the frame once it is in memory; the `ahead` bytes after those are asked for too, and not waited for.
pub(super) fn spawn_bring_in(
    mapping: Arc<Mapping>,
    frame: Bytes,
    tail: usize,
    ahead: usize,
) -> Job {
    Job::BroughtIn(queue::submit(mapping, frame, tail, ahead))
}

/// Queues `bytes`, a slice of `mapping`, to be asked for (`MADV_WILLNEED`) by the bring-in threads, and
/// not waited for: a cold run's read-ahead.
pub(super) fn ask_ahead(mapping: Arc<Mapping>, bytes: Bytes) {
    queue::ask(mapping, bytes);
}

/// Reads `range` of `file` on `runtime`'s blocking pool.
pub(super) fn spawn_read(
    runtime: &Handle,
    file: Arc<crate::mmap::pread::PreadFile>,
    range: Range<u64>,
) -> Job {
    Job::Read(runtime.spawn_blocking(move || file.read(range)))
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

/// Waits here (blocking) until `frame` and the `tail` bytes after it, already asked for
/// ([`Mapping::ask_for`]), are in memory, and yields the frame.
///
/// # Errors
///
/// `UnexpectedEof` when the file was truncated under the frame.
fn wait_for(mapping: &Mapping, frame: Bytes, tail: usize) -> io::Result<Bytes> {
    #[cfg(test)]
    gate::wait(&frame);
    mapping.populate(&frame, tail).map(|()| frame)
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
    /// poll; otherwise it queues them for the crate's bring-in threads, which ask for the whole range in one
    /// read-ahead request (`MADV_WILLNEED`, together with the other cold ranges waiting, up to 64) and then
    /// wait for it (`MADV_POPULATE_READ`), and it is ready after. A file read on demand
    /// ([`reads_on_demand`](Self::reads_on_demand)) is read on Tokio's blocking pool; bytes on the heap (small
    /// files) are ready at once. Outside a Tokio runtime the work runs inline, in `poll`.
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
            Self::BringIn(mapping, bytes) => spawn_bring_in(mapping, bytes, 0, 0),
            Self::Read(file, range) => spawn_read(runtime, file, range),
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
                    Poll::Ready(done) => done,
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
