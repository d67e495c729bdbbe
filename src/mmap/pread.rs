//! [`PreadFile`]: a file read on demand with `pread(2)`, for when a mapping of it could not be protected; no
//! HTTP, no cache policy.
//!
//! A mapping of a file that may change is safe only while the SIGBUS guard is active (see `guard/`): if
//! `sigaction` refused the handler, another library replaced it, or the guard's registry is full, a truncation
//! under the mapping would kill the process. Such files are not mapped at all: they are kept open and read,
//! a frame at a time, into fresh buffers. A read of a shortened file comes back short instead of faulting,
//! and [`PreadFile::read`] turns that into an error, so a response ends early instead of lying.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use bytes::{Bytes, BytesMut};

use super::identity::FileIdentity;

/// An open file and the length it had when opened; every read is checked against that length.
#[derive(Debug)]
pub(crate) struct PreadFile {
    file: File,
    len: u64,
}

impl PreadFile {
    /// Keeps `file`, open for reading, whose length was `len` when its identity was taken.
    pub(crate) fn new(file: File, len: u64) -> Self {
        Self { file, len }
    }

    /// The length the file had when opened.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The bytes in `range` (inside `0..len()`), read now into a buffer of their own.
    ///
    /// Blocking. Retries interrupted and partial reads; a read that reaches the end of the file before
    /// `range.end` means the file was shortened since it was opened.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a range outside `0..len()`, `UnexpectedEof` when the file is now shorter, or the
    /// error of `pread(2)`.
    pub(crate) fn read(&self, range: Range<u64>) -> io::Result<Bytes> {
        if range.start > range.end || range.end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {}..{} is outside the file's {} bytes",
                    range.start, range.end, self.len
                ),
            ));
        }
        let want = usize::try_from(range.end - range.start)
            .map_err(|_| io::Error::other("range too large for memory"))?;
        let mut buf = BytesMut::zeroed(want);
        let mut done = 0;
        while done < want {
            let at = range.start + done as u64;
            match self.file.read_at(&mut buf[done..], at) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "file ends at {at}, before the {} bytes it had when opened",
                            self.len
                        ),
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf.freeze())
    }

    /// Whether the open file still has `identity`'s content (one `fstat` of the descriptor kept here, so a
    /// replacement by rename does not count: this descriptor still reads the old inode).
    pub(crate) fn still_matches(&self, identity: &FileIdentity) -> bool {
        self.file
            .metadata()
            .is_ok_and(|m| identity.still_describes(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn opened(
        len: usize,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        PreadFile,
        FileIdentity,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f.bin");
        fs::write(&path, crate::testing::pattern(len)).expect("write");
        let file = File::open(&path).expect("open");
        let identity = FileIdentity::from_metadata(&file.metadata().expect("fstat"));
        (dir, path, PreadFile::new(file, len as u64), identity)
    }

    #[test]
    fn reads_exactly_the_range_asked_for() {
        let (_d, _p, f, _) = opened(100_000);
        let got = f.read(99_000..100_000).expect("read");
        assert_eq!(got.len(), 1000);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, &b)| b == ((99_000 + i) % 251) as u8)
        );
        assert!(f.read(5..5).expect("empty range").is_empty());
    }

    #[test]
    #[allow(
        clippy::reversed_empty_ranges,
        reason = "a reversed range is among the inputs under test"
    )]
    fn a_range_outside_the_opened_length_is_invalid_input() {
        let (_d, _p, f, _) = opened(1000);
        for bad in [0..1001, 1000..1001, 10..5] {
            let e = f.read(bad.clone()).expect_err("outside");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn a_file_shortened_since_it_was_opened_reads_as_unexpected_eof() {
        let (_d, path, f, identity) = opened(100_000);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open for writing")
            .set_len(10_000)
            .expect("truncate");
        assert_eq!(f.read(0..10_000).expect("what is left").len(), 10_000);
        let e = f.read(0..100_000).expect_err("shortened");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(!f.still_matches(&identity));
    }

    #[test]
    fn a_file_replaced_by_rename_still_reads_and_matches_the_old_inode() {
        let (d, path, f, identity) = opened(100_000);
        let tmp = d.path().join("new.tmp");
        fs::write(&tmp, vec![0u8; 50]).expect("write");
        fs::rename(&tmp, &path).expect("rename");
        assert!(f.still_matches(&identity));
        assert_eq!(f.read(1..2).expect("old inode")[0], 1);
    }
}
