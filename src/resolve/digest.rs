//! [`ContentDigest`]: the digest a file's content must hash to, as plain data (a multihash code and its
//! digest); hashing bytes against it is CPU work only, no I/O and no HTTP.
//!
//! The hash functions are the `multihash-codetable` crate's (the multiformats project's own table, each backed
//! by the RustCrypto or BLAKE crates with their SIMD and SHA-NI code); this file only maps a code to one.

use multihash_codetable::{
    Blake2b256, Blake2b512, Blake2s128, Blake2s256, Blake3Hasher, Keccak224, Keccak256, Keccak384,
    Keccak512, Sha1, Sha2_256, Sha2_512, Sha3_224, Sha3_256, Sha3_384, Sha3_512,
};
use multihash_derive::Hasher;

/// Longest digest kept: the longest output in the table (SHA-512, SHA3-512, BLAKE2b-512, BLAKE3's first 64
/// bytes).
const MAX_DIGEST: usize = 64;

/// What the service answers when content does not match a digest a resolver named without a reason of its own.
const DEFAULT_REASON: &str = "content does not match its digest";

/// The digest a file's content must hash to before any byte of it is served: a hash function, named by its
/// multihash code, and the expected digest.
///
/// Give it to [`ResolvedFile::verify`](crate::ResolvedFile::verify): the service hashes the file once per
/// cached mapping, on the blocking pool, and answers `500 Internal Server Error` (never a byte of the
/// content) when it does not match. [`CidResolver`](crate::CidResolver) makes one from each CID.
///
/// Supported multihash codes (the `multihash-codetable` crate's table): sha1 `0x11`, sha2-256 `0x12`,
/// sha2-512 `0x13`, sha3-512/384/256/224 `0x14`–`0x17`, keccak-224/256/384/512 `0x1a`–`0x1d`, blake3 `0x1e`
/// (any length up to 64 bytes, from its extendable output), blake2b-256 `0xb220`, blake2b-512 `0xb240`,
/// blake2s-128 `0xb250` and blake2s-256 `0xb260`. A digest shorter than the function's output is a truncated
/// multihash: the content matches when its hash starts with it.
///
/// # Examples
///
/// ```
/// use mmap_serve::ContentDigest;
///
/// // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
/// let abc = [
///     0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
///     0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
/// ];
/// let digest = ContentDigest::sha2_256(abc);
/// assert!(digest.matches(b"abc"));
/// assert!(!digest.matches(b"abd"));
/// assert_eq!(ContentDigest::new(0x12, &abc), Some(digest));
/// // A code outside the table (murmur3-128) cannot be verified.
/// assert_eq!(ContentDigest::new(0x22, &abc[..16]), None);
/// ```
#[derive(Clone)]
pub struct ContentDigest {
    code: u64,
    len: u8,
    digest: [u8; MAX_DIGEST],
    /// What a mismatch is answered with (not part of the digest's identity for a verdict).
    reason: &'static str,
}

impl ContentDigest {
    /// The digest `digest` of the hash function with multihash code `code`, or None when this build cannot
    /// compute that function (see the type's docs), `digest` is empty, or it is longer than the function's
    /// output.
    pub fn new(code: u64, digest: &[u8]) -> Option<Self> {
        let output = output_len(code)?;
        if digest.is_empty() || digest.len() > output {
            return None;
        }
        let mut bytes = [0; MAX_DIGEST];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(Self {
            code,
            len: u8::try_from(digest.len()).expect("at most 64 bytes"),
            digest: bytes,
            reason: DEFAULT_REASON,
        })
    }

    /// A SHA-256 digest (multihash code `0x12`).
    pub fn sha2_256(digest: [u8; 32]) -> Self {
        Self::new(0x12, &digest).expect("sha2-256 is in the table")
    }

    /// A BLAKE3 digest of the default 32-byte length (multihash code `0x1e`).
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::ContentDigest;
    ///
    /// // BLAKE3 of the empty input (the reference implementation's test vectors).
    /// let empty = [
    ///     0xaf, 0x13, 0x49, 0xb9, 0xf5, 0xf9, 0xa1, 0xa6, 0xa0, 0x40, 0x4d, 0xea, 0x36, 0xdc, 0xc9, 0x49,
    ///     0x9b, 0xcb, 0x25, 0xc9, 0xad, 0xc1, 0x12, 0xb7, 0xcc, 0x9a, 0x93, 0xca, 0xe4, 0x1f, 0x32, 0x62,
    /// ];
    /// assert!(ContentDigest::blake3(empty).matches(b""));
    /// ```
    pub fn blake3(digest: [u8; 32]) -> Self {
        Self::new(0x1e, &digest).expect("blake3 is in the table")
    }

    /// The multihash code of the hash function.
    pub fn code(&self) -> u64 {
        self.code
    }

    /// The expected digest (as long as the multihash says: a truncated one is shorter than the output).
    pub fn digest(&self) -> &[u8] {
        &self.digest[..usize::from(self.len)]
    }

    /// Whether `content` hashes to this digest. CPU work proportional to `content`'s length: the service
    /// calls it on the blocking pool.
    pub fn matches(&self, content: &[u8]) -> bool {
        let mut hasher = self.hasher();
        hasher.update(content);
        self.is_digest_of(hasher.as_mut())
    }

    /// A hasher of this digest's function, for content read in pieces.
    pub(crate) fn hasher(&self) -> Box<dyn Hasher + Send> {
        hasher(self.code).expect("made only for codes in the table")
    }

    /// Whether what `hasher` has been fed hashes to this digest.
    pub(crate) fn is_digest_of(&self, hasher: &mut dyn Hasher) -> bool {
        hasher.finalize().starts_with(self.digest())
    }

    /// The reason a mismatch is answered with (a resolver's own, such as "block does not match its CID").
    pub(crate) fn reason(&self) -> &'static str {
        self.reason
    }

    /// Answers a mismatch with `reason` instead of the generic one.
    pub(crate) fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }
}

/// Two digests are equal when they name the same function and the same digest.
impl PartialEq for ContentDigest {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.digest() == other.digest()
    }
}

impl Eq for ContentDigest {}

impl std::fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: String = self.digest().iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "ContentDigest({:#x}, {hex})", self.code)
    }
}

/// The output length of the hash function with multihash `code`, or None when the table has none.
fn output_len(code: u64) -> Option<usize> {
    Some(match code {
        0x11 => 20,
        0x12 | 0x16 | 0x1b | 0xb220 | 0xb260 => 32,
        0x13 | 0x14 | 0x1d | 0xb240 => 64,
        0x15 | 0x1c => 48,
        0x17 | 0x1a => 28,
        0x1e => MAX_DIGEST, // BLAKE3 is extendable: its first 64 bytes, of which any prefix is a digest
        0xb250 => 16,
        _ => return None,
    })
}

/// A hasher for multihash `code`, or None when the table has none.
fn hasher(code: u64) -> Option<Box<dyn Hasher + Send>> {
    Some(match code {
        0x11 => Box::new(Sha1::default()),
        0x12 => Box::new(Sha2_256::default()),
        0x13 => Box::new(Sha2_512::default()),
        0x14 => Box::new(Sha3_512::default()),
        0x15 => Box::new(Sha3_384::default()),
        0x16 => Box::new(Sha3_256::default()),
        0x17 => Box::new(Sha3_224::default()),
        0x1a => Box::new(Keccak224::default()),
        0x1b => Box::new(Keccak256::default()),
        0x1c => Box::new(Keccak384::default()),
        0x1d => Box::new(Keccak512::default()),
        0x1e => Box::new(Blake3Hasher::<MAX_DIGEST>::default()),
        0xb220 => Box::new(Blake2b256::default()),
        0xb240 => Box::new(Blake2b512::default()),
        0xb250 => Box::new(Blake2s128::default()),
        0xb260 => Box::new(Blake2s256::default()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};

    /// The table's codes (its `Code` enum has no sha1, whose hasher it has: tested on its own below).
    const CODES: [u64; 15] = [
        0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0xb220, 0xb240, 0xb250,
        0xb260,
    ];

    #[test]
    fn every_code_hashes_as_the_code_table_does() {
        let content = b"the quick brown fox jumps over the lazy dog";
        for code in CODES {
            let table = Code::try_from(code).expect("in the table").digest(content);
            let digest = ContentDigest::new(code, table.digest()).expect("supported");
            assert!(digest.matches(content), "{code:#x}");
            assert!(!digest.matches(b"the quick brown fox"), "{code:#x}");
            let output = if code == 0x1e {
                MAX_DIGEST
            } else {
                table.size().into()
            };
            assert_eq!(output_len(code), Some(output), "{code:#x}");
        }
    }

    #[test]
    fn sha1_hashes_the_fips_vector() {
        // SHA-1("abc"), FIPS 180-2 appendix A.1.
        let abc = [
            0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
            0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d,
        ];
        let digest = ContentDigest::new(0x11, &abc).expect("sha1");
        assert!(digest.matches(b"abc"));
        assert!(!digest.matches(b"abd"));
    }

    #[test]
    fn truncated_digests_match_the_prefix() {
        let full = Code::Sha2_256.digest(b"x");
        let short = ContentDigest::new(0x12, &full.digest()[..8]).expect("truncated");
        assert!(short.matches(b"x"));
        assert!(!short.matches(b"y"));
    }

    #[test]
    fn blake3_matches_at_every_length_of_its_extendable_output() {
        let mut xof = [0u8; 64];
        let mut h = Blake3Hasher::<64>::default();
        h.update(b"block");
        xof.copy_from_slice(h.finalize());
        assert_eq!(&xof[..32], Code::Blake3_256.digest(b"block").digest());
        for len in [1, 20, 32, 33, 64] {
            let digest = ContentDigest::new(0x1e, &xof[..len]).expect("supported");
            assert!(digest.matches(b"block"), "{len}");
            assert!(!digest.matches(b"Block"), "{len}");
        }
    }

    #[test]
    fn unverifiable_digests_are_none() {
        assert!(
            ContentDigest::new(0x00, b"").is_none(),
            "identity: nothing to hash"
        );
        assert!(
            ContentDigest::new(0x22, &[0; 16]).is_none(),
            "murmur3 is not in the table"
        );
        assert!(ContentDigest::new(0x12, &[]).is_none(), "empty");
        assert!(
            ContentDigest::new(0x12, &[0; 33]).is_none(),
            "longer than sha2-256"
        );
        assert!(
            ContentDigest::new(0x1e, &[0; 65]).is_none(),
            "longer than kept"
        );
    }

    #[test]
    fn the_reason_is_not_part_of_equality_of_digests_but_is_kept() {
        let d = ContentDigest::sha2_256([1; 32]);
        assert_eq!(d.reason(), DEFAULT_REASON);
        let cid = d.clone().with_reason("block does not match its CID");
        assert_eq!(cid.reason(), "block does not match its CID");
        assert_eq!(cid, d);
    }
}
