//! Which variant of a file a request gets: the precompressed sidecar of the best acceptable coding that
//! exists, else the file itself. The choice of codings is `http::encoding`'s; this looks their sidecars up in
//! the cache (no system call for a fresh entry or a remembered absence) and opens them on the blocking pool;
//! no rendering.
//!
//! A sidecar is a file like any other: one cache entry each, keyed by its own path, revalidated under the
//! same policy as the file, opened beneath the same root by the same [`Confinement`]. One that is not there
//! is remembered as missing ([`MmapCache::note_missing`]) and the next coding is tried, then the file itself.
//! A file without sidecars (the resolver named no coding) costs one test of an empty set.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

use crate::cache::Entry;
use crate::http::encoding::{ContentCoding, Preference, preferred_codings};
use crate::resolve::{Confinement, ResolvedFile};
use crate::{MmapCache, MmapError, Revalidate};

/// What the cache knows at once of the variants a request may get.
pub(super) enum Lookup {
    /// A fresh cached sidecar: the answer, with no system call.
    Cached(Arc<Entry>, ContentCoding),
    /// The sidecars to open, best first, before the file itself; none: the file itself it is.
    Open(Preference),
}

/// What the cache knows at once of the variants of `file` a request with `headers` may get, under `policy`
/// and beneath the confinement `tag`: a fresh sidecar, or the sidecars left to open (those remembered
/// missing skipped). Out of line: files without sidecars never call it.
#[inline(never)]
pub(super) fn cached(
    file: &ResolvedFile,
    headers: &HeaderMap,
    cache: &MmapCache,
    policy: Revalidate,
    tag: u64,
) -> Lookup {
    let codings = file.codings();
    let preference = preferred_codings(headers.get_all(ACCEPT_ENCODING), codings);
    for (tried, coding) in preference.codings().enumerate() {
        let path = sidecar(&file.path, coding);
        if let Some(entry) = cache.fresh_entry(&path, policy, tag) {
            return Lookup::Cached(entry, coding);
        }
        if !cache.known_missing(&path, tag, policy) {
            return Lookup::Open(preference.skip(tried));
        }
    }
    Lookup::Open(Preference::default())
}

/// What a blocking open found: the entry to serve (or why there is none) and, for a sidecar, its coding.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) entry: Result<Arc<Entry>, MmapError>,
    pub(super) coding: Option<ContentCoding>,
}

/// Opens the first of `sidecars` of `path` that exists, else `path` itself (blocking), each with
/// `open_one`; a sidecar that is not there is remembered missing, one that cannot be opened for another
/// reason (permissions, descriptors) is skipped.
pub(super) fn open(
    cache: &MmapCache,
    path: &Path,
    confinement: Option<&Confinement>,
    policy: Revalidate,
    sidecars: Preference,
    open_one: impl Fn(
        &MmapCache,
        &Path,
        Option<&Confinement>,
        Revalidate,
    ) -> Result<Arc<Entry>, MmapError>,
) -> Opened {
    let tag = confinement.map_or(0, Confinement::tag);
    for coding in sidecars.codings() {
        let variant = sidecar(path, coding);
        // Another request may have found it missing meanwhile.
        if cache.known_missing(&variant, tag, policy) {
            continue;
        }
        match open_one(cache, &variant, confinement, policy) {
            Ok(entry) => {
                return Opened {
                    entry: Ok(entry),
                    coding: Some(coding),
                };
            }
            Err(err) if err.status_code() == http::StatusCode::NOT_FOUND => {
                cache.note_missing(&variant, tag);
            }
            Err(err) => {
                tracing::debug!(error = %err, "mmap-serve: a precompressed variant cannot be opened; trying the next");
            }
        }
    }
    Opened {
        entry: open_one(cache, path, confinement, policy),
        coding: None,
    }
}

/// The path of `path`'s sidecar in `coding`: `{path}.{extension}`.
fn sidecar(path: &Path, coding: ContentCoding) -> PathBuf {
    let extension = coding.extension();
    let mut name = OsString::with_capacity(path.as_os_str().len() + 1 + extension.len());
    name.push(path.as_os_str());
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_is_the_path_and_the_codings_extension() {
        let path = Path::new("/srv/www/app.js");
        assert_eq!(
            sidecar(path, ContentCoding::Gzip),
            Path::new("/srv/www/app.js.gz")
        );
        assert_eq!(
            sidecar(path, ContentCoding::Zstd),
            Path::new("/srv/www/app.js.zst")
        );
        assert_eq!(
            sidecar(Path::new("x"), ContentCoding::Deflate),
            Path::new("x.zz")
        );
    }
}
