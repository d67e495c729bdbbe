//! Verifying a file against the digest its resolver named ([`ResolvedFile::verify`]): once per cache entry,
//! on the blocking pool, before any response about it; no HTTP decisions (a mismatch is answered by
//! `respond`).
//!
//! Where it runs: the verdict lives on the cache [`Entry`], so a hit on a verified entry costs one load and a
//! comparison of digests (in `proceed`, on the worker); an entry with no verdict yet goes to the blocking
//! open, which hashes it (one request hashes, concurrent ones wait for its verdict); an entry known not to
//! match goes there too, with its file re-checked against the disk, so that a repaired file is mapped and
//! hashed anew while an unchanged one is refused without hashing it again.

use bytes::Bytes;

use crate::cache::Entry;
use crate::mmap::file::{Content, MmapFile};
use crate::mmap::residency::Residency;
use crate::resolve::{ContentDigest, ResolvedFile};
use crate::{MmapError, Revalidate};

/// Largest piece of a file read on demand that is hashed at once.
const READ_PIECE: u64 = 1 << 20;

/// The pieces a mapping is hashed in: while one is hashed, the next, when it is not in memory, is brought
/// in from disk on a scoped thread (`MADV_WILLNEED` + `MADV_POPULATE_READ`, as bodies bring frames in), so
/// a cold block costs about the longer of its read and its hash rather than their sum of page faults.
const HASH_PIECE: usize = 8 << 20;

/// What is known of a cached entry's content against what the resolver asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// Servable: not to be verified, or verified to match.
    Cleared,
    /// Not hashed yet against this digest: the blocking open hashes it.
    Unknown,
    /// Known not to match: never served while the file is unchanged.
    Mismatch,
}

/// The standing of `entry` for `file`; never hashes or waits.
pub(super) fn standing(entry: &Entry, file: &ResolvedFile) -> Standing {
    let Some(digest) = file.verification() else {
        return Standing::Cleared;
    };
    match entry.verdict(digest.code(), digest.digest()) {
        Some(true) => Standing::Cleared,
        Some(false) => Standing::Mismatch,
        None => Standing::Unknown,
    }
}

/// The revalidation policy for the blocking open of an entry in `standing`: one known not to match is
/// compared with the disk whatever the policy (an immutable file is otherwise never looked at again), so that
/// a repaired file is picked up.
pub(super) fn open_policy(standing: Standing, policy: Revalidate) -> Revalidate {
    match standing {
        Standing::Mismatch => Revalidate::Always,
        Standing::Cleared | Standing::Unknown => policy,
    }
}

/// Hashes `entry`'s content against `digest` unless its verdict is known (blocking: run it on the blocking
/// pool); logs a mismatch the once it is found.
///
/// # Errors
///
/// A read error of a file read on demand ([`MmapError::Io`]); no verdict is kept then.
pub(super) fn verify(entry: &Entry, digest: &ContentDigest) -> Result<(), MmapError> {
    let file = entry.file();
    let (matches, hashed_here) =
        entry.verdict_or_check(digest.code(), digest.digest(), || match file.content() {
            Content::Memory(bytes) => Ok(hash_in_memory(file, bytes, digest)),
            Content::Pread(on_demand) => {
                let mut hasher = digest.hasher();
                let mut at = 0;
                while at < on_demand.len() {
                    let end = (at + READ_PIECE).min(on_demand.len());
                    let piece = on_demand
                        .read(at..end)
                        .map_err(|e| MmapError::from_io(file.path(), e))?;
                    hasher.update(&piece);
                    at = end;
                }
                Ok(digest.is_digest_of(hasher.as_mut()))
            }
        })?;
    if hashed_here && !matches {
        tracing::error!(
            path = %file.path().display(),
            multihash = format_args!("{:#x}", digest.code()),
            "mmap-serve: {}; not served while the file is unchanged",
            digest.reason(),
        );
    }
    Ok(())
}

/// Whether `bytes`, the content of `file` (a mapping, or a heap copy of a small file), hash to `digest`.
fn hash_in_memory(file: &MmapFile, bytes: &Bytes, digest: &ContentDigest) -> bool {
    let Some(mapping) = file.mapping() else {
        return digest.matches(bytes);
    };
    let mut hasher = digest.hasher();
    let pieces: Vec<&[u8]> = bytes.chunks(HASH_PIECE).collect();
    std::thread::scope(|scope| {
        let mut ahead = None;
        for (i, piece) in pieces.iter().enumerate() {
            // This piece's bring-in (started while the last one was hashed) is done, or it faults here.
            if let Some(bringing) = ahead.take() {
                let _ = std::thread::ScopedJoinHandle::join(bringing);
            }
            if let Some(&next) = pieces.get(i + 1) {
                if file.residency(next, 0) == Residency::Cold {
                    // An error (a truncated file) only leaves the pages to fault, onto the SIGBUS guard's zero
                    // pages: the hash then does not match.
                    ahead = Some(scope.spawn(move || mapping.bring_in(next, 0)));
                }
            }
            hasher.update(piece);
        }
    });
    digest.is_digest_of(hasher.as_mut())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmap::file::MmapFile;
    use multihash_codetable::{Code, MultihashDigest};

    fn entry(content: &[u8]) -> (tempfile::TempDir, Entry) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b");
        std::fs::write(&path, content).expect("write");
        (dir, Entry::new(MmapFile::new(&path).expect("open"), 0))
    }

    fn sha256(content: &[u8]) -> ContentDigest {
        let mh = Code::Sha2_256.digest(content);
        ContentDigest::new(0x12, mh.digest()).expect("sha2-256")
    }

    #[test]
    fn a_matching_file_is_cleared_once_hashed() {
        let content = crate::testing::pattern(100_000);
        let (_dir, entry) = entry(&content);
        let file = ResolvedFile::new("/b").verify(sha256(&content));
        assert_eq!(standing(&entry, &file), Standing::Unknown);
        verify(&entry, file.verification().expect("digest")).expect("hashed");
        assert_eq!(standing(&entry, &file), Standing::Cleared);
    }

    #[test]
    fn a_file_that_does_not_match_is_a_mismatch_and_rechecked_on_open() {
        let (_dir, entry) = entry(b"tampered");
        let file = ResolvedFile::new("/b").verify(sha256(b"original"));
        verify(&entry, file.verification().expect("digest")).expect("hashed");
        assert_eq!(standing(&entry, &file), Standing::Mismatch);
        assert_eq!(
            open_policy(Standing::Mismatch, Revalidate::Never),
            Revalidate::Always
        );
        assert_eq!(
            open_policy(Standing::Unknown, Revalidate::Never),
            Revalidate::Never
        );
    }

    #[test]
    fn unverified_files_are_cleared_and_verdicts_are_per_digest() {
        let (_dir, entry) = entry(b"abc");
        assert_eq!(
            standing(&entry, &ResolvedFile::new("/b")),
            Standing::Cleared
        );
        let good = ResolvedFile::new("/b").verify(sha256(b"abc"));
        let bad = ResolvedFile::new("/b").verify(sha256(b"abd"));
        let blake = Code::Blake3_256.digest(b"abc");
        let other = ResolvedFile::new("/b")
            .verify(ContentDigest::new(0x1e, blake.digest()).expect("blake3"));
        for file in [&good, &bad, &other] {
            verify(&entry, file.verification().expect("digest")).expect("hashed");
        }
        assert_eq!(standing(&entry, &good), Standing::Cleared);
        assert_eq!(
            standing(&entry, &bad),
            Standing::Mismatch,
            "a further digest's verdict"
        );
        assert_eq!(standing(&entry, &other), Standing::Cleared);
        let (matches, hashed) = entry
            .verdict_or_check::<()>(0x12, sha256(b"abd").digest(), || panic!("hashed again"))
            .expect("known");
        assert_eq!((matches, hashed), (false, false));
        let (matches, _) = entry
            .verdict_or_check::<()>(0x1e, blake.digest(), || panic!("hashed again"))
            .expect("known");
        assert!(matches);
    }

    #[test]
    fn a_mapping_of_many_pieces_is_hashed_whole_cold_or_warm() {
        let len = 2 * HASH_PIECE + 12_345;
        let content = crate::testing::pattern(len);
        let mut damaged = content.clone();
        damaged[2 * HASH_PIECE + 1] ^= 1; // in the last piece, brought in ahead
        for (bytes, matches) in [(&content, true), (&damaged, false)] {
            let (dir, entry) = entry(bytes);
            assert!(entry.file().is_mapped());
            // Out of the page cache (if the file system lets it go), so that pieces are brought in ahead.
            let file = std::fs::File::open(dir.path().join("b")).expect("open");
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
            let Content::Memory(mapped) = entry.file().content() else {
                panic!("mapped")
            };
            assert_eq!(
                hash_in_memory(entry.file(), mapped, &sha256(&content)),
                matches
            );
            // Warm now: the same verdict.
            assert_eq!(
                hash_in_memory(entry.file(), mapped, &sha256(&content)),
                matches
            );
        }
    }

    #[test]
    fn concurrent_first_checks_hash_once() {
        let content = crate::testing::pattern(1 << 20);
        let (_dir, entry) = entry(&content);
        let digest = sha256(&content);
        let hashes = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let (matches, _) = entry
                        .verdict_or_check::<()>(digest.code(), digest.digest(), || {
                            hashes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok(digest.matches(&content))
                        })
                        .expect("checked");
                    assert!(matches);
                });
            }
        });
        assert_eq!(hashes.into_inner(), 1);
    }
}
