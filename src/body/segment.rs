//! [`Segment`]: a run of bytes a body still has to send, in memory or to be read; no I/O here (the body reads).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::mmap::file::Content;
use crate::mmap::pread::PreadFile;

/// The largest frame read with `pread` (files that cannot be mapped safely): each such frame is a buffer of
/// its own, so this bounds the memory a slow client can pin.
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// A run of bytes still to send.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    /// In memory: a slice of a mapping or of a buffer.
    Memory(Bytes),
    /// To be read from a file, this range of it.
    Read(Arc<PreadFile>, Range<u64>),
}

impl Segment {
    /// `range` of `content`; `None` when `range` does not lie inside it.
    pub(crate) fn of(content: &Content, range: Range<u64>) -> Option<Self> {
        if range.start > range.end || range.end > content.len() {
            return None;
        }
        Some(match content {
            // Inside the content, whose length came from a usize.
            Content::Memory(data) => {
                Self::Memory(data.slice(range.start as usize..range.end as usize))
            }
            Content::Pread(file) => Self::Read(Arc::clone(file), range),
        })
    }

    pub(super) fn len(&self) -> u64 {
        match self {
            Self::Memory(data) => data.len() as u64,
            Self::Read(_, range) => range.end - range.start,
        }
    }

    /// Splits off the next frame, of at most `limit` bytes, or `None` when the segment is used up.
    pub(super) fn take(&mut self, limit: usize) -> Option<Self> {
        match self {
            Self::Memory(data) => take_chunk(data, limit).map(Self::Memory),
            Self::Read(file, range) => {
                let len = (range.end - range.start).min(limit.min(READ_CHUNK) as u64);
                (len > 0).then(|| {
                    let frame = range.start..range.start + len;
                    range.start += len;
                    Self::Read(Arc::clone(file), frame)
                })
            }
        }
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
