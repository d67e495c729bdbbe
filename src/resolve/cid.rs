//! A content-addressed store: an IPFS content identifier (CID) in the URL path names `{store}/{cid}{ext}`,
//! checked lexically; no file-system I/O (the store's confinement is checked when the service opens the file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use super::names::is_name_suffix;
use super::{NeverPending, Resolution, Resolve, ResolvedFile, Resolving};

/// Longest CID string considered at all: bounds the work of validating one (a CIDv1 with a 64-byte digest
/// is about 150 characters in base32, under 800 even in base2).
const MAX_CID_LEN: usize = 1024;

/// Longest file name most Unix file systems accept (`NAME_MAX`).
const MAX_FILE_NAME_LEN: usize = 255;

/// IPFS gateway caching for content that can never change: a year (RFC 9111 §5.2.2.1), `immutable`
/// (RFC 8246).
const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=29030400, immutable";

/// Resolves IPFS paths (`/ipfs/{cid}`) and bare paths (`/{cid}`) to files in a flat content-addressed
/// store, `{store}/{cid}{extension}`.
///
/// Checks are lexical (no file-system I/O). A CID is used verbatim as a file name, so it must contain only
/// ASCII letters and digits: that keeps every name inside the store, and rules out the multibase encodings
/// that use other characters (base64's `+`, `/`, `=`); no CID is normalized to another encoding, so the
/// store names files by the exact string clients request (usually `Qm…` for CIDv0, `bafy…` for CIDv1).
///
/// A CID is whatever the `cid` crate parses (CIDv0, and CIDv1 in any multibase encoding whose characters are
/// letters and digits), with every set of the crate's features: enabling a feature never changes which
/// paths resolve.
///
/// | path | valid CID | invalid CID |
/// |---|---|---|
/// | `/ipfs/{cid}` (when [`ipfs_paths`](Self::ipfs_paths)) | the file | 400 Bad Request `invalid CID` |
/// | `/{cid}` (when [`bare_paths`](Self::bare_paths)) | the file | Not Found, so a layer falls through |
/// | `/ipfs/{cid}/…`, `/{cid}/…`, anything else | Not Found | Not Found |
///
/// A file is answered the way IPFS gateways answer: `ETag: "{cid}"`,
/// `Cache-Control: public, max-age=29030400, immutable`, declared [immutable](ResolvedFile::immutable), and
/// [confined](ResolvedFile::confined_to) to the store (symbolic links followed, their targets inside it).
/// A valid CID whose file name would exceed 255 bytes can't be in the store: Not Found.
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
/// assert!(file.immutable);
///
/// let Resolution::Reject(bad) = store.resolve_path("/ipfs/not-a-cid") else { panic!() };
/// assert_eq!(bad.reason(), "invalid CID");
/// assert!(matches!(store.resolve_path("/favicon.ico"), Resolution::NotFound));
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

    /// The `Content-Type` of every file served.
    ///
    /// Default: `application/octet-stream`.
    pub fn content_type(mut self, value: HeaderValue) -> Self {
        Arc::make_mut(&mut self.config).content_type = value;
        self
    }

    /// Resolves a raw URL path, without I/O; [`Resolve::resolve`] calls it with the request's path.
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
        let cid = rest;
        if !is_valid_cid(cid) {
            return match form {
                Form::Ipfs => Resolution::reject(StatusCode::BAD_REQUEST, "invalid CID"),
                Form::Bare => Resolution::NotFound,
            };
        }
        if !is_name_suffix(&config.extension)
            || cid.len() + config.extension.len() > MAX_FILE_NAME_LEN
        {
            return Resolution::NotFound;
        }
        Resolution::File(self.file(cid))
    }

    /// The store's file for a valid `cid`, with gateway headers.
    fn file(&self, cid: &str) -> ResolvedFile {
        let config = &*self.config;
        let mut name = String::with_capacity(cid.len() + config.extension.len());
        name.push_str(cid);
        name.push_str(&config.extension);
        let etag = HeaderValue::try_from(format!("\"{cid}\""))
            .expect("a quoted ASCII alphanumeric CID is a valid header value");
        ResolvedFile::new(config.store.join(name))
            .content_type(config.content_type.clone())
            .etag(etag)
            .cache_control(HeaderValue::from_static(IMMUTABLE_CACHE_CONTROL))
            .immutable(true)
            .confined_to(Arc::clone(&config.store))
            .follow_symlinks(true)
    }
}

impl Resolve for CidResolver {
    type Future = NeverPending;

    fn resolve(&self, head: &http::request::Parts) -> Resolving<NeverPending> {
        Resolving::Ready(self.resolve_path(head.uri.path()))
    }
}

/// Whether `s` is a CID safe to use as a file name: ASCII letters and digits only, of bounded length, and a
/// CID by the rules of the build (see [`CidResolver`]).
fn is_valid_cid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
        && parses_as_cid(s)
}

/// Whether the `cid` crate parses `s`: the one definition of a CID, whatever the crate's features.
fn parses_as_cid(s: &str) -> bool {
    ::cid::Cid::try_from(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "/var/blocks";
    const V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
    const V1: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    /// CIDv1, raw codec, SHA-256 of the empty string.
    const V1_RAW: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    #[derive(Debug)]
    enum Expect {
        BadRequest,
        NotFound,
        /// The store's file for this CID.
        File(&'static str),
    }
    use Expect::{BadRequest, File, NotFound};

    fn check(resolver: &CidResolver, uri_path: &str, expect: &Expect) {
        let got = resolver.resolve_path(uri_path);
        match (expect, &got) {
            (BadRequest, Resolution::Reject(r)) => {
                assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri_path}");
                assert_eq!(r.reason(), "invalid CID");
            }
            (NotFound, Resolution::NotFound) => {}
            (File(cid), Resolution::File(file)) => {
                assert_eq!(file.path, Path::new(STORE).join(cid), "{uri_path}");
            }
            _ => panic!("{uri_path:?}: expected {expect:?}, got {got:?}"),
        }
    }

    /// CIDv1, dag-pb, SHA-256 of the empty string, in base58btc (`z`).
    const V1_BASE58: &str = "zdj7Wkkhxcu2rsiN6GUyHCLsSLL47kdUNfjbFqBUUhMFTZKBi";

    #[test]
    fn the_same_paths_resolve_whatever_the_crates_features() {
        // A syntactic fallback once built without the `cid` crate accepted the first two and refused the
        // third; now there is one definition, the `cid` crate's, whatever the features.
        let almost_v0 = format!("Qm{}", "A".repeat(44)); // the length and prefix of a CIDv0, not one
        let resolver = CidResolver::new(STORE);
        for invalid in ["baaaaaaa", almost_v0.as_str()] {
            assert!(!is_valid_cid(invalid), "{invalid}");
            check(&resolver, &format!("/ipfs/{invalid}"), &BadRequest);
            check(&resolver, &format!("/{invalid}"), &NotFound);
        }
        assert!(is_valid_cid(V1_BASE58));
        check(&resolver, &format!("/ipfs/{V1_BASE58}"), &File(V1_BASE58));
        check(&resolver, &format!("/{V1_BASE58}"), &File(V1_BASE58));
    }

    #[test]
    fn well_known_cids_are_valid() {
        for cid in [V0, V1, V1_RAW] {
            assert!(is_valid_cid(cid), "{cid}");
        }
    }

    #[test]
    fn malformed_cids_are_invalid() {
        let long = format!("b{}", "a".repeat(MAX_CID_LEN));
        let cases = [
            "",
            "Qm",
            &V0[..45],                                                     // one short
            &format!("{V0}a"),                                             // one long
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbd0",              // `0` is not base58
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdl",              // nor `l`
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb/G",              // a separator
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd1", // `1` is not base32
            &V1[..58], // impossible base32 length
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd=", // padding
            "ba",
            "b",
            "hello",
            "index.html",
            "..",
            "Qm..",
            "mAVUSICwmtGto/8aP+ZtFPB0wQTQTQi1wZIO/oPmKXohiZueu", // base64: valid multibase, unfit for a file name
            &long,
            "bafy\u{0}",
            "ｂａｆｙ",
        ];
        for cid in cases {
            assert!(!is_valid_cid(cid), "{cid:?}");
        }
    }

    #[test]
    fn ipfs_and_bare_forms_resolve() {
        let resolver = CidResolver::new(STORE);
        let cases: &[(String, Expect)] = &[
            (format!("/ipfs/{V0}"), File(V0)),
            (format!("/ipfs/{V1}"), File(V1)),
            (format!("/{V0}"), File(V0)),
            (format!("/{V1_RAW}"), File(V1_RAW)),
            // Invalid CIDs: a bad request under /ipfs/, not ours elsewhere.
            ("/ipfs/not-a-cid".to_owned(), BadRequest),
            ("/ipfs/".to_owned(), BadRequest),
            ("/ipfs/..".to_owned(), BadRequest),
            ("/ipfs/%2e%2e".to_owned(), BadRequest),
            (format!("/ipfs/{}", &V0[..45]), BadRequest),
            (format!("/ipfs/%51{}", &V0[1..]), BadRequest), // percent-encoded CIDs are not decoded
            ("/favicon.ico".to_owned(), NotFound),
            ("/".to_owned(), NotFound),
            ("/..".to_owned(), NotFound),
            ("/ipfs".to_owned(), NotFound),
            (format!("/{}", &V1[..58]), NotFound),
            // Anything after the CID.
            (format!("/ipfs/{V1}/"), NotFound),
            (format!("/ipfs/{V1}/readme.md"), NotFound),
            (format!("/ipfs/{V1}/../../etc/passwd"), NotFound),
            (format!("/{V0}/"), NotFound),
            (format!("/{V0}/x"), NotFound),
            // Not the IPFS prefix.
            (format!("//ipfs/{V0}"), NotFound),
            (format!("/IPFS/{V0}"), NotFound),
            (format!("/ipns/{V0}"), NotFound),
            (format!("ipfs/{V0}"), NotFound),
            (V0.to_owned(), NotFound),
            (String::new(), NotFound),
        ];
        for (uri_path, expect) in cases {
            check(&resolver, uri_path, expect);
        }
    }

    #[test]
    fn disabled_forms_are_not_found() {
        let no_ipfs = CidResolver::new(STORE).ipfs_paths(false);
        check(&no_ipfs, &format!("/ipfs/{V0}"), &NotFound);
        check(&no_ipfs, "/ipfs/not-a-cid", &NotFound);
        check(&no_ipfs, &format!("/{V0}"), &File(V0));

        let no_bare = CidResolver::new(STORE).bare_paths(false);
        check(&no_bare, &format!("/{V0}"), &NotFound);
        check(&no_bare, &format!("/ipfs/{V0}"), &File(V0));
        check(&no_bare, "/ipfs/not-a-cid", &BadRequest);

        let neither = CidResolver::new(STORE).ipfs_paths(false).bare_paths(false);
        check(&neither, &format!("/{V0}"), &NotFound);
        check(&neither, &format!("/ipfs/{V0}"), &NotFound);
    }

    #[test]
    fn a_cid_named_ipfs_prefix_is_still_bare_when_ipfs_paths_are_off() {
        // With /ipfs/ off, `/ipfs/{cid}` has two segments: not a bare CID either.
        let resolver = CidResolver::new(STORE).ipfs_paths(false);
        check(&resolver, &format!("/ipfs/{V1}"), &NotFound);
    }

    #[test]
    fn extension_is_appended_to_the_file_name() {
        let resolver = CidResolver::new(STORE).extension(".tensor");
        let Resolution::File(file) = resolver.resolve_path(&format!("/ipfs/{V1}")) else {
            panic!("resolves");
        };
        assert_eq!(file.path, Path::new(&format!("{STORE}/{V1}.tensor")));
        // The ETag names the CID, not the file.
        assert_eq!(file.etag.as_ref().expect("etag"), &format!("\"{V1}\""));
    }

    #[test]
    fn unusable_extension_resolves_nothing() {
        for ext in ["/../../etc/passwd", "/x", "\\x", ".a\0", ".a\n"] {
            let resolver = CidResolver::new(STORE).extension(ext);
            check(&resolver, &format!("/ipfs/{V0}"), &NotFound);
            check(&resolver, &format!("/{V0}"), &NotFound);
        }
    }

    #[test]
    fn file_name_longer_than_name_max_is_not_found() {
        let resolver = CidResolver::new(STORE).extension("x".repeat(MAX_FILE_NAME_LEN));
        check(&resolver, &format!("/ipfs/{V0}"), &NotFound);
        let fits = CidResolver::new(STORE).extension("x".repeat(MAX_FILE_NAME_LEN - V0.len()));
        assert!(matches!(
            fits.resolve_path(&format!("/ipfs/{V0}")),
            Resolution::File(_)
        ));
    }

    #[test]
    fn gateway_headers_are_carried() {
        let resolver = CidResolver::new(STORE);
        let Resolution::File(file) = resolver.resolve_path(&format!("/{V0}")) else {
            panic!("resolves");
        };
        assert_eq!(file.etag.as_ref().expect("etag"), &format!("\"{V0}\""));
        assert_eq!(
            file.cache_control.as_ref().expect("cache-control"),
            "public, max-age=29030400, immutable"
        );
        assert_eq!(
            file.content_type.as_ref().expect("content-type"),
            "application/octet-stream"
        );
        assert!(file.immutable);
        let confinement = file.confinement().expect("confined");
        assert_eq!(&*confinement.root, Path::new(STORE));
        assert!(confinement.follow_symlinks);
    }

    #[test]
    fn content_type_is_configurable() {
        let resolver = CidResolver::new(STORE).content_type(HeaderValue::from_static("video/mp4"));
        let Resolution::File(file) = resolver.resolve_path(&format!("/{V1}")) else {
            panic!("resolves");
        };
        assert_eq!(
            file.content_type.as_ref().expect("content-type"),
            "video/mp4"
        );
    }

    #[test]
    fn resolve_uses_the_request_path() {
        let resolver = CidResolver::new(STORE);
        let (head, ()) = http::Request::get(format!("/ipfs/{V1}?filename=a.bin"))
            .body(())
            .expect("valid request")
            .into_parts();
        let Resolving::Ready(Resolution::File(file)) = resolver.resolve(&head) else {
            panic!("resolves");
        };
        assert_eq!(file.path, Path::new(STORE).join(V1));
    }

    /// CIDs computed from known digests, in every alphanumeric multibase encoding.
    mod computed {
        use super::*;
        use ::cid::Cid;
        use ::cid::multibase::Base;
        use ::cid::multihash::Multihash;

        const SHA2_256: u64 = 0x12;
        const RAW: u64 = 0x55;
        const DAG_PB: u64 = 0x70;

        /// SHA-256 of the empty string.
        const EMPTY_SHA256: [u8; 32] = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];

        fn digest() -> Multihash<64> {
            Multihash::wrap(SHA2_256, &EMPTY_SHA256).expect("32-byte digest fits")
        }

        #[test]
        fn computed_cids_match_the_literals() {
            assert_eq!(Cid::new_v1(RAW, digest()).to_string(), V1_RAW);
        }

        #[test]
        fn computed_cids_resolve_in_every_alphanumeric_base() {
            let resolver = CidResolver::new(STORE);
            let v0 = Cid::new_v0(digest()).expect("sha2-256 makes a CIDv0");
            let v1 = Cid::new_v1(DAG_PB, digest());
            let mut encodings = vec![v0.to_string(), v1.to_string()];
            for base in [
                Base::Base32Lower,
                Base::Base32Upper,
                Base::Base36Lower,
                Base::Base58Btc,
                Base::Base16Lower,
            ] {
                encodings.push(v1.to_string_of_base(base).expect("v1 encodes in any base"));
            }
            for cid in &encodings {
                assert!(cid.bytes().all(|b| b.is_ascii_alphanumeric()), "{cid}");
                let Resolution::File(file) = resolver.resolve_path(&format!("/ipfs/{cid}")) else {
                    panic!("{cid} resolves");
                };
                assert_eq!(file.path, Path::new(STORE).join(cid));
            }
        }

        #[test]
        fn valid_cid_too_long_for_a_file_name_is_not_found() {
            let base2 = Cid::new_v1(DAG_PB, digest())
                .to_string_of_base(Base::Base2)
                .expect("v1 encodes in any base");
            assert!(base2.len() > MAX_FILE_NAME_LEN);
            assert!(is_valid_cid(&base2));
            let resolver = CidResolver::new(STORE);
            assert!(matches!(
                resolver.resolve_path(&format!("/ipfs/{base2}")),
                Resolution::NotFound
            ));
        }

        #[test]
        fn valid_cids_in_bases_unfit_for_file_names_are_refused() {
            let resolver = CidResolver::new(STORE);
            let v1 = Cid::new_v1(RAW, digest());
            let mut refused = 0;
            for base in [Base::Base64, Base::Base64Url, Base::Base32PadLower] {
                let cid = v1.to_string_of_base(base).expect("v1 encodes in any base");
                if cid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    continue; // This digest happens to encode without special characters.
                }
                refused += 1;
                assert!(matches!(
                    resolver.resolve_path(&format!("/{cid}")),
                    Resolution::NotFound
                ));
            }
            assert!(refused > 0, "padded base32 always has '='");
        }

        #[test]
        fn corrupted_structure_is_invalid() {
            // Valid base32 characters and length, but version 2: not a CID.
            let mut bytes = Cid::new_v1(RAW, digest()).to_bytes();
            bytes[0] = 2;
            let bogus = ::cid::multibase::encode(Base::Base32Lower, bytes);
            assert!(!is_valid_cid(&bogus), "{bogus}");
        }
    }
}
