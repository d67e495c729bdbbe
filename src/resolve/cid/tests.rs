//! The resolver's rules, lexical and through the service.

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
        &V1[..58],                                                     // impossible base32 length
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
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
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

/// The gateway through the service (`oneshot`), on stores of real blocks.
mod gateway;
