//! A content-addressed store and an IPFS trustless gateway over it: the CID in the URL path names
//! `{store}/{cid}{ext}`, checked lexically, and the request head the representation; no file-system I/O (the
//! store's confinement is checked, and the block verified, when the service opens the file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, StatusCode};

use super::names::is_name_suffix;
use super::{ContentDigest, NeverPending, Rejection, Resolution, Resolve, ResolvedFile, Resolving};
use format::{Asked, Format, RAW};

mod format;
#[cfg(test)]
mod tests;

/// Longest CID string considered at all: bounds the work of validating one (a CIDv1 with a 64-byte digest
/// is about 150 characters in base32, under 800 even in base2).
const MAX_CID_LEN: usize = 1024;

/// Longest digest a CID may carry, identity CIDs' inline content included: boxo's limit (its `verifcid`
/// package accepts identity digests of up to 128 bytes), so that what Kubo makes, this gateway reads.
const MAX_DIGEST_LEN: usize = 128;

/// A CID as the `cid` crate parses it, with room for the longest digest accepted.
type Cid = ::cid::CidGeneric<MAX_DIGEST_LEN>;

/// The multihash code of the identity "hash", whose digest is the content itself.
const IDENTITY: u64 = 0x00;

/// Longest file name most Unix file systems accept (`NAME_MAX`).
const MAX_FILE_NAME_LEN: usize = 255;

/// IPFS gateway caching for content that can never change: a year (RFC 9111 §5.2.2.1), `immutable`
/// (RFC 8246); path-gateway "`Cache-Control` (response header)" MUST.
const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=29030400, immutable";

/// What a block that does not hash to its CID is answered with (500, and never a byte of it).
const MISMATCH: &str = "block does not match its CID";

/// What `only-if-cached` is answered with when the block is not in the store (path-gateway "412
/// Precondition Failed", "Use with only-if-cached").
const NOT_CACHED: &str = "block not in this gateway's store (only-if-cached)";

/// Resolves IPFS paths (`/ipfs/{cid}`) and bare paths (`/{cid}`) to the blocks of a flat content-addressed
/// store, `{store}/{cid}{extension}`, and answers them as an IPFS trustless gateway does.
///
/// Checks are lexical (no file-system I/O). A CID is used verbatim as a file name, so it must contain only
/// ASCII letters and digits: that keeps every name inside the store, and rules out the multibase encodings
/// that use other characters (base64's `+`, `/`, `=`); no CID is normalized to another encoding, so the
/// store names files by the exact string clients request (usually `Qm…` for CIDv0, `bafy…` for CIDv1).
///
/// A CID is whatever the `cid` crate parses (CIDv0, and CIDv1 in any multibase encoding whose characters are
/// letters and digits, with a digest of at most 128 bytes), with every set of the crate's features:
/// enabling a feature never changes which paths resolve.
///
/// | path | valid CID | invalid CID |
/// |---|---|---|
/// | `/ipfs/{cid}` (when [`ipfs_paths`](Self::ipfs_paths)) | the block | 400 Bad Request `invalid CID` |
/// | `/{cid}` (when [`bare_paths`](Self::bare_paths)) | the block | Not Found, so a layer falls through |
/// | `/ipfs/{cid}/…`, `/{cid}/…`, anything else | Not Found | Not Found |
///
/// # Verified blocks
///
/// Every block is hashed against its CID's multihash before the first byte of any response about it (see
/// [`ResolvedFile::verify`]: once per cached mapping, on the blocking pool, the verdict kept with the
/// mapping): a block that does not match is answered `500 Internal Server Error`, `block does not match its
/// CID`, with `Cache-Control: no-store`, and the mismatch is logged once. The hash functions are those of
/// [`ContentDigest`] (sha2-256 and blake3 among them); a CID whose hash function is not among them is served
/// as stored. [`verify(false)`](Self::verify) turns this off. A `HEAD` with `Cache-Control: only-if-cached`
/// is a probe of presence and is answered without hashing.
///
/// # The gateway
///
/// What the IPFS HTTP gateway specifications (specs.ipfs.tech) ask of a gateway serving raw blocks:
///
/// - **Format** (path-gateway "`format`" and "`Accept`", trustless-gateway "`format`"): `?format=raw`, or an
///   `Accept` that admits `application/vnd.ipld.raw` without `format`, gets the raw block; the query wins
///   over `Accept`. `?format=car`, `tar`, `dag-json`, `dag-cbor`, `json` or `cbor`, and an `Accept` naming
///   only such formats, are 406 Not Acceptable with the reason; `?format=ipns-record` and an unknown format
///   are 400. Anything else gets the block's bytes as [`content_type`](Self::content_type), or 400 from a
///   [`trustless_only`](Self::trustless_only) gateway.
/// - **A raw block** (trustless-gateway "Block Responses", "Response Headers"): `Content-Type:
///   application/vnd.ipld.raw`, `Content-Disposition: attachment; filename="{cid}.bin"` (`?filename=`
///   names it instead), `X-Content-Type-Options: nosniff`, `ETag: "{cid}.raw"` (path-gateway "`Etag`": the
///   format is part of it), and `Content-Location: …?format=raw` when `Accept` chose it.
/// - **Every answer about a block**: `X-Ipfs-Path: /ipfs/{cid}`, `X-Ipfs-Roots: {cid}`, `Vary: Accept`,
///   `Cache-Control: public, max-age=29030400, immutable`; the plain bytes have `ETag: "{cid}"` and take
///   `?filename=` (inline) and `?download=true` (attachment). Ranges, multipart ranges, `HEAD` and the
///   conditional requests are the service's, as for any file.
/// - **Identity CIDs** (multihash code `0x00`, such as `bafkqaaa`, the empty block that trustless-gateway's
///   "Dedicated Probe Paths" probe with): answered from the CID itself, without touching the store.
/// - **`Cache-Control: only-if-cached`** (path-gateway "`only-if-cached`", trustless-gateway
///   "`Cache-Control: only-if-cached`"): 412 Precondition Failed when the block is not in the store, found
///   out by opening it on the blocking pool without reading it; a block that is there is answered as usual.
/// - `Service-Worker: script` is 400 (path-gateway "`Service-Worker`").
///
/// Not served: CAR streams, IPNS, paths below a CID, deserialized UnixFS. The ETag of a range is the
/// representation's (RFC 9110 §8.8.3), not the per-range one path-gateway suggests.
///
/// Blocks are declared [immutable](ResolvedFile::immutable) and [confined](ResolvedFile::confined_to) to
/// the store (symbolic links followed, their targets inside it). A valid CID whose file name would exceed
/// 255 bytes can't be in the store: Not Found.
///
/// # Examples
///
/// ```
/// use mmap_serve::{CidResolver, Resolution};
///
/// let store = CidResolver::new("/var/blocks").extension(".bin");
/// let cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
///
/// let Resolution::File(file) = store.resolve_path(&format!("/ipfs/{cid}")) else { panic!() };
/// assert_eq!(file.path, std::path::Path::new(&format!("/var/blocks/{cid}.bin")));
/// assert_eq!(file.etag.as_ref().unwrap(), &format!("\"{cid}\""));
/// assert_eq!(file.verification().unwrap().code(), 0x12, "sha2-256");
/// assert!(file.immutable);
///
/// let Resolution::Reject(bad) = store.resolve_path("/ipfs/not-a-cid") else { panic!() };
/// assert_eq!(bad.reason(), "invalid CID");
/// assert!(matches!(store.resolve_path("/favicon.ico"), Resolution::NotFound));
/// ```
///
/// A raw block, asked for as a trustless client does:
///
/// ```
/// use mmap_serve::{CidResolver, Resolution, Resolve, Resolving};
///
/// let store = CidResolver::new("/var/blocks");
/// let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
/// let (head, ()) = http::Request::get(format!("/ipfs/{cid}?format=raw")).body(())?.into_parts();
/// let Resolving::Ready(Resolution::File(file)) = store.resolve(&head) else { panic!() };
/// assert_eq!(file.headers().expect("the gateway's fields")["x-ipfs-roots"], cid);
/// assert_eq!(file.content_type.unwrap(), "application/vnd.ipld.raw");
/// assert_eq!(file.etag.unwrap(), format!("\"{cid}.raw\""));
/// assert_eq!(file.content_disposition.unwrap(), format!("attachment; filename=\"{cid}.bin\""));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "its setters return the changed value; drop it and the setting is lost"]
pub struct CidResolver {
    config: Arc<CidConfig>,
}

/// The shared settings of a [`CidResolver`].
#[derive(Debug, Clone)]
struct CidConfig {
    store: Arc<Path>,
    extension: Box<str>,
    ipfs_paths: bool,
    bare_paths: bool,
    content_type: HeaderValue,
    verify: bool,
    trustless_only: bool,
}

/// Where in the URL path the CID was found, which decides how an invalid one is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `/ipfs/{cid}`: the client asked for a CID, an invalid one is its mistake.
    Ipfs,
    /// `/{cid}`: any path looks like this, an invalid CID just means "not ours".
    Bare,
}

impl CidResolver {
    /// Serves the files of the flat store directory `store` (absolute, or relative to the working directory
    /// when a file is opened).
    pub fn new(store: impl Into<PathBuf>) -> Self {
        Self {
            config: Arc::new(CidConfig {
                store: Arc::from(store.into()),
                extension: Box::from(""),
                ipfs_paths: true,
                bare_paths: true,
                content_type: HeaderValue::from_static("application/octet-stream"),
                verify: true,
                trustless_only: false,
            }),
        }
    }

    /// A suffix appended to the CID to make the file name, e.g. `.tensor` for `{store}/{cid}.tensor`.
    ///
    /// It must not contain `/`, `\` or a control character; with such an extension nothing resolves (Not
    /// Found), so that no request can reach outside the store.
    ///
    /// Default: `""` (the file is named by the CID alone).
    pub fn extension(mut self, ext: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).extension = ext.into().into_boxed_str();
        self
    }

    /// Whether `/ipfs/{cid}` paths resolve; an invalid CID there is answered 400 Bad Request.
    ///
    /// Default: `true`.
    pub fn ipfs_paths(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).ipfs_paths = yes;
        self
    }

    /// Whether `/{cid}` paths resolve; an invalid CID there is Not Found, so that the layer form passes
    /// other requests (`/favicon.ico`) to its inner service.
    ///
    /// Default: `true`.
    pub fn bare_paths(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).bare_paths = yes;
        self
    }

    /// The `Content-Type` of a block's plain bytes (a raw block, `?format=raw`, is always
    /// `application/vnd.ipld.raw`).
    ///
    /// Default: `application/octet-stream`.
    pub fn content_type(mut self, value: HeaderValue) -> Self {
        Arc::make_mut(&mut self.config).content_type = value;
        self
    }

    /// Whether each block is hashed against its CID before it is served (see the type's docs, "Verified
    /// blocks"). Turn it off for a store whose integrity is checked otherwise: its blocks are then served
    /// as stored, and the first request of a large one does not wait for a hash of it.
    ///
    /// Default: `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{CidResolver, Resolution};
    ///
    /// let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    /// let trusted = CidResolver::new("/var/blocks").verify(false);
    /// let Resolution::File(file) = trusted.resolve_path(&format!("/{cid}")) else { panic!() };
    /// assert!(file.verification().is_none());
    /// ```
    pub fn verify(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).verify = yes;
        self
    }

    /// Whether only verifiable answers are given, as a trustless-only gateway does (trustless-gateway spec:
    /// "response type is always fully verifiable"): a request for a valid CID that asks for no trustless
    /// format (neither `?format=raw` nor `Accept: application/vnd.ipld.raw`) is answered 400 Bad Request with
    /// a reason that says how to ask, instead of the block's plain bytes. Identity CIDs obey it too.
    ///
    /// Default: `false` (a plain request gets the block's bytes with the configured
    /// [`content_type`](Self::content_type)).
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{CidResolver, Resolution};
    ///
    /// let gateway = CidResolver::new("/var/blocks").trustless_only(true);
    /// let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    /// let Resolution::Reject(plain) = gateway.resolve_path(&format!("/ipfs/{cid}")) else { panic!() };
    /// assert_eq!(plain.status(), 400);
    /// ```
    pub fn trustless_only(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).trustless_only = yes;
        self
    }

    /// Resolves a raw URL path as a plain `GET` of it (no query, no `Accept`), without I/O;
    /// [`Resolve::resolve`] resolves the whole request head.
    ///
    /// See the [type docs](Self) for the rules.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{CidResolver, Resolution};
    ///
    /// let store = CidResolver::new("/var/blocks").ipfs_paths(false);
    /// let cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
    /// assert!(matches!(store.resolve_path(&format!("/{cid}")), Resolution::File(_)));
    /// assert!(matches!(store.resolve_path(&format!("/ipfs/{cid}")), Resolution::NotFound));
    /// ```
    pub fn resolve_path(&self, uri_path: &str) -> Resolution {
        self.resolve_with(uri_path, None, || Ok(Asked::default()))
    }

    /// Resolves `uri_path`, asking the request what it wants (`asked`) only once the CID is known to be ours;
    /// `query` is the request's, for a Content-Location.
    fn resolve_with(
        &self,
        uri_path: &str,
        query: Option<&str>,
        asked: impl FnOnce() -> Result<Asked, Rejection>,
    ) -> Resolution {
        let config = &*self.config;
        let (form, rest) = match uri_path.strip_prefix("/ipfs/") {
            Some(rest) if config.ipfs_paths => (Form::Ipfs, rest),
            _ => match uri_path.strip_prefix('/') {
                Some(rest) if config.bare_paths => (Form::Bare, rest),
                _ => return Resolution::NotFound,
            },
        };
        // Anything after the CID (`/ipfs/{cid}/file`, or a trailing `/`) would need a directory: not ours.
        if rest.contains('/') {
            return Resolution::NotFound;
        }
        let text = rest;
        let Some(cid) = parse_cid(text) else {
            return match form {
                Form::Ipfs => Resolution::reject(StatusCode::BAD_REQUEST, "invalid CID"),
                Form::Bare => Resolution::NotFound,
            };
        };
        let asked = match asked() {
            Ok(asked) => asked,
            Err(rejection) => return Resolution::Reject(rejection),
        };
        if config.trustless_only && asked.format() == Format::Plain {
            return Resolution::reject(StatusCode::BAD_REQUEST, ONLY_TRUSTLESS);
        }
        let identity = cid.hash().code() == IDENTITY;
        if !identity
            && (!is_name_suffix(&config.extension)
                || text.len() + config.extension.len() > MAX_FILE_NAME_LEN)
        {
            return Resolution::NotFound;
        }
        let mut file = self.representation(text, &asked, uri_path, query);
        if identity {
            // The digest is the content: nothing to open, verify or miss.
            return Resolution::File(file.bytes(Bytes::copy_from_slice(cid.hash().digest())));
        }
        file = file
            .immutable(true)
            .confined_to(Arc::clone(&config.store))
            .follow_symlinks(true);
        // A HEAD with only-if-cached is a probe of presence: answered without reading the block.
        let probe = asked.head && asked.only_if_cached;
        if config.verify && !probe {
            if let Some(digest) = ContentDigest::new(cid.hash().code(), cid.hash().digest()) {
                file = file.verify(digest.with_reason(MISMATCH));
            }
        }
        if asked.only_if_cached {
            file = file.if_missing(Rejection::new(StatusCode::PRECONDITION_FAILED, NOT_CACHED));
        }
        Resolution::File(file)
    }

    /// The store's file for the valid CID `cid`, with the headers of the representation `asked` for (a
    /// request for `uri_path` with `query`).
    fn representation(
        &self,
        cid: &str,
        asked: &Asked,
        uri_path: &str,
        query: Option<&str>,
    ) -> ResolvedFile {
        let config = &*self.config;
        let mut name = String::with_capacity(cid.len() + config.extension.len());
        name.push_str(cid);
        name.push_str(&config.extension);
        // Letters and digits, and the ASCII around them: valid field values.
        let value = |text: String| HeaderValue::try_from(text).expect("an ASCII CID");
        let mut file = ResolvedFile::new(config.store.join(name))
            .cache_control(HeaderValue::from_static(IMMUTABLE_CACHE_CONTROL))
            .header(X_IPFS_PATH, value(format!("/ipfs/{cid}")))
            .header(X_IPFS_ROOTS, value(cid.to_owned()))
            // The answer depends on Accept (RFC 9110 §12.5.5).
            .header(header::VARY, HeaderValue::from_static("Accept"));
        match asked.format() {
            Format::Plain => {
                file = file
                    .content_type(config.content_type.clone())
                    .etag(value(format!("\"{cid}\"")));
                // path-gateway "`Content-Disposition`": inline with a filename, attachment on download=true.
                file = match (&asked.filename, asked.download) {
                    (Some(name), Some(true)) => file.download_as(name),
                    (Some(name), _) => file.inline_as(name),
                    (None, Some(true)) => {
                        file.content_disposition(HeaderValue::from_static("attachment"))
                    }
                    (None, _) => file,
                };
            }
            Format::Raw => {
                let name = asked
                    .filename
                    .clone()
                    .unwrap_or_else(|| format!("{cid}.bin"));
                file = file
                    .content_type(HeaderValue::from_static(RAW))
                    .etag(value(format!("\"{cid}.raw\"")))
                    .download_as(&name)
                    .header(
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    );
                if asked.by_accept {
                    // path-gateway "`Content-Location`": the URL with `format`, so that caches keep the
                    // block apart from the plain answer.
                    let location = match query {
                        Some(q) if !q.is_empty() => format!("{uri_path}?{q}&format=raw"),
                        _ => format!("{uri_path}?format=raw"),
                    };
                    if let Ok(location) = HeaderValue::try_from(location) {
                        file = file.header(header::CONTENT_LOCATION, location);
                    }
                }
            }
        }
        file
    }
}

/// The reason of a plain request to a [trustless-only](CidResolver::trustless_only) gateway.
const ONLY_TRUSTLESS: &str = "this gateway answers only verifiable formats: add ?format=raw or Accept: application/vnd.ipld.raw";

/// `X-Ipfs-Path`: the requested content path (path-gateway "`X-Ipfs-Path`").
const X_IPFS_PATH: HeaderName = HeaderName::from_static("x-ipfs-path");
/// `X-Ipfs-Roots`: the CIDs of the path's logical roots, here the one CID (path-gateway "`X-Ipfs-Roots`").
const X_IPFS_ROOTS: HeaderName = HeaderName::from_static("x-ipfs-roots");

impl Resolve for CidResolver {
    type Future = NeverPending;

    fn resolve(&self, head: &http::request::Parts) -> Resolving<NeverPending> {
        let plain = &self.config.content_type;
        Resolving::Ready(self.resolve_with(head.uri.path(), head.uri.query(), || {
            format::asked(head, plain)
        }))
    }
}

/// `s` as a CID safe to use as a file name: ASCII letters and digits only, of bounded length, and a CID by the
/// rules of the build (see [`CidResolver`]).
fn parse_cid(s: &str) -> Option<Cid> {
    if s.is_empty() || s.len() > MAX_CID_LEN || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    // The `cid` crate is the one definition of a CID, whatever its features.
    Cid::try_from(s).ok()
}

/// Whether `s` is a CID safe to use as a file name (see [`parse_cid`]).
#[cfg(test)]
fn is_valid_cid(s: &str) -> bool {
    parse_cid(s).is_some()
}
