//! [`FileIdentity`]: which file a mapping was made from, as plain data; no HTTP types here.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The identity of a file on disk at the moment it was opened: device, inode, length and timestamps.
///
/// Two identities are equal only if the file is the same inode with the same length and the same
/// modification and status-change times, so a replacement by rename (new inode), a rewrite in place (new mtime
/// and ctime) and a truncation (new length) all compare unequal. The cache re-maps a file whose identity on
/// disk no longer equals the one it was mapped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    /// The identity described by `metadata` (from `stat` or `fstat`).
    pub fn from_metadata(metadata: &Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
        }
    }

    /// Whether the open file described by `metadata` (from `fstat`) still has this identity's content: same
    /// device, inode, length and mtime, and same ctime unless the file has been unlinked — replacing a file by
    /// rename unlinks the old inode, which moves its ctime, and responses begun on it must finish.
    pub(crate) fn still_describes(&self, metadata: &Metadata) -> bool {
        let now = Self::from_metadata(metadata);
        let same = (now.dev, now.ino, now.len, now.mtime_ns)
            == (self.dev, self.ino, self.len, self.mtime_ns);
        same && (metadata.nlink() == 0 || now.ctime_ns == self.ctime_ns)
    }

    /// An identity from its parts, for tests elsewhere in the crate.
    #[cfg(test)]
    pub(crate) fn from_parts(dev: u64, ino: u64, len: u64, mtime_ns: i128, ctime_ns: i128) -> Self {
        Self {
            dev,
            ino,
            len,
            mtime_ns,
            ctime_ns,
        }
    }

    /// The device the file lives on.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The modification time, with the file system's precision.
    pub fn modified(&self) -> SystemTime {
        system_time(self.mtime_ns)
    }

    /// The status-change time (ctime), which also moves when a rewrite restores the old mtime.
    pub fn changed(&self) -> SystemTime {
        system_time(self.ctime_ns)
    }

    /// A strong entity-tag (RFC 9110 §8.8.3), quoted: the length in hex and a 64-bit digest of device, inode,
    /// mtime and ctime. It changes whenever the identity does.
    pub fn etag(&self) -> String {
        let mut h = Mix::default();
        for word in [
            self.dev,
            self.ino,
            self.mtime_ns as u64,
            (self.mtime_ns >> 64) as u64,
            self.ctime_ns as u64,
            (self.ctime_ns >> 64) as u64,
        ] {
            h.push(word);
        }
        format!("\"{:x}-{:016x}\"", self.len, h.finish())
    }
}

fn system_time(ns: i128) -> SystemTime {
    let magnitude = Duration::from_nanos(u64::try_from(ns.unsigned_abs()).unwrap_or(u64::MAX));
    if ns >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

/// A small deterministic 64-bit mixer (splitmix64 finaliser): stable across Rust releases, unlike `DefaultHasher`,
/// so an ETag survives a rebuild of the server.
#[derive(Default)]
struct Mix(u64);

impl Mix {
    fn push(&mut self, word: u64) {
        self.0 = splitmix(self.0 ^ word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn identity_changes_when_the_file_is_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"one").unwrap();
        let before = FileIdentity::from_metadata(&fs::metadata(&path).unwrap());
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        let after = FileIdentity::from_metadata(&fs::metadata(&path).unwrap());
        assert_eq!(before.ino(), after.ino());
        assert_ne!(before, after);
        assert_ne!(before.etag(), after.etag());
    }

    #[test]
    fn etag_is_a_quoted_strong_tag_that_depends_on_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, vec![0u8; 300]).unwrap();
        let id = FileIdentity::from_metadata(&fs::metadata(&path).unwrap());
        let tag = id.etag();
        assert!(
            tag.starts_with("\"12c-") && tag.ends_with('"') && tag.len() == 22,
            "{tag}"
        );
        for changed in [
            FileIdentity {
                dev: id.dev + 1,
                ..id
            },
            FileIdentity {
                ino: id.ino + 1,
                ..id
            },
            FileIdentity {
                len: id.len + 1,
                ..id
            },
            FileIdentity {
                mtime_ns: id.mtime_ns + 1,
                ..id
            },
            FileIdentity {
                ctime_ns: id.ctime_ns + 1,
                ..id
            },
        ] {
            assert_ne!(changed.etag(), tag);
        }
        assert_eq!(id.etag(), tag, "deterministic");
    }

    #[test]
    fn times_before_the_epoch_do_not_panic() {
        let id = FileIdentity::from_parts(1, 2, 3, -5_000_000_000, i128::MIN / 2);
        assert!(id.modified() < UNIX_EPOCH);
        let _ = id.changed();
        let _ = id.etag();
    }
}
