//! [`MmapBody`]: a response body whose frames are zero-copy `Bytes` slices of a mapping.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::multipart::Multipart;
use crate::MmapFile;

/// How many bytes a watched body holds back for its last frame, sent only once the file has been re-checked.
const FINAL_PIECE: usize = 4096;

/// What a body serving a mapped file checks so that it never completes with wrong bytes.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    /// The file whose mapping the frames slice.
    pub(crate) file: Arc<MmapFile>,
    /// Re-check the file's identity before the last frame (false for immutable, content-addressed files).
    pub(crate) recheck_identity: bool,
}

/// The default largest frame a body yields: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// The response body of [`MmapServe`](crate::MmapServe): slices of a mapped file, and for multipart responses the
/// framing between them, yielded as [`Bytes`] frames of at most a chunk size each.
///
/// No frame is a copy: each is a reference-counted slice of the file's mapping (or of one framing buffer), and
/// the size hint is always exact, so servers send `Content-Length` and no chunked encoding.
///
/// A body that slices a mapping checks it as it goes, best effort: before each frame, that the mapping was not
/// poisoned (the file truncated under it), and before the last frame of a body longer than a chunk, that the
/// file on disk is still the one mapped. Any such body longer than 4 KiB holds its last 4 KiB back for a frame
/// of their own, sent only after the checks (unless the chunk size is 0: one frame per slice). When a check fails the body ends with an error, so the server
/// aborts the connection and the client sees fewer bytes than `Content-Length` promised instead of a complete
/// response with wrong bytes. (A server may poll the next frame before it has written the previous one, so a
/// change in the last moments of a response can still go unseen.)
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
    /// Whether the body was longer than one chunk when it was made (then its identity is re-checked).
    long: bool,
    failed: bool,
}

#[derive(Debug)]
enum Kind {
    /// What is left of one contiguous slice.
    Slice(Bytes),
    /// A multipart/byteranges body: the piece being sent and the index of the next one.
    Multipart(Box<MultipartState>),
}

#[derive(Debug)]
struct MultipartState {
    layout: Multipart,
    file: Bytes,
    current: Bytes,
    next_piece: usize,
    remaining: u64,
}

impl MmapBody {
    /// A body with no bytes.
    pub fn empty() -> Self {
        Self::from(Bytes::new())
    }

    /// One slice, sent in frames of at most `chunk_size` bytes (0 means one frame).
    pub(crate) fn slice(data: Bytes, chunk_size: usize) -> Self {
        Self {
            kind: Kind::Slice(data),
            chunk_size: effective(chunk_size),
            watch: None,
            long: false,
            failed: false,
        }
    }

    /// The multipart body laid out by `layout` over the whole representation `file`.
    pub(crate) fn multipart(layout: Multipart, file: Bytes, chunk_size: usize) -> Self {
        let remaining = layout.content_length();
        Self {
            kind: Kind::Multipart(Box::new(MultipartState {
                layout,
                file,
                current: Bytes::new(),
                next_piece: 0,
                remaining,
            })),
            chunk_size: effective(chunk_size),
            watch: None,
            long: false,
            failed: false,
        }
    }

    /// Checks `watch` while sending (see the type's docs).
    pub(crate) fn watched(mut self, watch: Option<Watch>) -> Self {
        self.long = self.remaining() > self.chunk_size as u64;
        self.watch = watch;
        self
    }

    fn remaining(&self) -> u64 {
        match &self.kind {
            Kind::Slice(data) => data.len() as u64,
            Kind::Multipart(state) => state.remaining,
        }
    }

    /// The next frame, checked against the watch; an error ends the body.
    fn poll_next(&mut self) -> Option<io::Result<Bytes>> {
        if self.failed {
            return None;
        }
        let Some(watch) = self.watch.clone() else {
            return self.next_frame().map(Ok);
        };
        let frame = self.next_frame()?;
        // The poison flag (one atomic load) is checked before every frame. The file's identity (one `stat`) is
        // re-checked before the last frame of bodies longer than a chunk only: a syscall per small response is
        // what the hot path must not pay, and those rely on the poison flag and the cache's revalidation.
        let recheck = self.remaining() == 0 && self.long && watch.recheck_identity;
        if watch.file.is_poisoned() || (recheck && !watch.file.still_matches()) {
            self.failed = true;
            return Some(Err(io::Error::other(format!(
                "{} changed while being served",
                watch.file.path().display()
            ))));
        }
        Some(Ok(frame))
    }

    fn next_frame(&mut self) -> Option<Bytes> {
        let chunk_size = self.chunk_size;
        // `chunk_size(0)` asks for one frame per slice: nothing is held back then.
        let held_back = if self.watch.is_some() && chunk_size != usize::MAX {
            FINAL_PIECE
        } else {
            0
        };
        match &mut self.kind {
            Kind::Slice(data) => {
                // A watched body longer than `held_back` keeps its last `held_back` bytes for a frame of
                // their own, sent only after the checks in `poll_next` — even a body that fits one chunk.
                let len = data.len();
                let limit = if len > held_back && len.saturating_sub(chunk_size) < held_back {
                    len - held_back
                } else {
                    chunk_size
                };
                take_chunk(data, limit)
            }
            Kind::Multipart(state) => loop {
                if let Some(frame) = take_chunk(&mut state.current, chunk_size) {
                    state.remaining -= frame.len() as u64;
                    return Some(frame);
                }
                state.current = state.layout.piece(state.next_piece, &state.file)?;
                state.next_piece += 1;
            },
        }
    }
}

fn effective(chunk_size: usize) -> usize {
    if chunk_size == 0 {
        usize::MAX
    } else {
        chunk_size
    }
}

/// Splits off the next frame of `data`, or `None` when it is used up.
fn take_chunk(data: &mut Bytes, chunk_size: usize) -> Option<Bytes> {
    if data.is_empty() {
        None
    } else if data.len() <= chunk_size {
        Some(std::mem::take(data))
    } else {
        Some(data.split_to(chunk_size))
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
        _cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        Poll::Ready(self.get_mut().poll_next().map(|r| r.map(Frame::data)))
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
    use super::*;
    use crate::http::multipart::{Boundary, Multipart};

    fn drain(mut body: MmapBody) -> (Vec<Bytes>, u64) {
        let hint = body.size_hint().exact().expect("exact");
        let mut frames = Vec::new();
        while let Some(frame) = body.next_frame() {
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
        let (frames, hint) = drain(MmapBody::multipart(layout, file, 4096));
        assert_eq!(hint, expected.len() as u64);
        assert!(frames.iter().all(|f| f.len() <= 4096));
        assert_eq!(frames.concat(), expected);
    }
}
