//! The `serve` example's mounts beside its directory: the tensor endpoints of every `.safetensors` file
//! (on by default, `--no-tensors` off) and `--ipfs STORE`, a verified raw-block gateway at `/ipfs/`; and the
//! banner, whose every `curl` line names a URL that answers.

mod common;

use http::{Method, StatusCode};
use multihash_codetable::{Code, MultihashDigest};

use common::net::{Serve, fetch};
use common::pattern;

/// A checkpoint of two tensors (one named with a slash), written by the `safetensors` crate.
fn checkpoint() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let weight: Vec<u8> = (0..64u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let bias: Vec<u8> = (0..8u16).flat_map(|i| (0x3c00 + i).to_le_bytes()).collect();
    let views = [
        (
            "layer.0/weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![8, 8], &weight)
                .expect("view"),
        ),
        (
            "bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![8], &bias)
                .expect("view"),
        ),
    ];
    let file = safetensors::serialize(views.iter().map(|(n, v)| (*n, v)), None).expect("file");
    (file, weight, bias)
}

/// A raw block's CIDv1 (sha2-256).
fn cid_of(bytes: &[u8]) -> String {
    cid::Cid::new_v1(0x55, Code::Sha2_256.digest(bytes)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tensors_and_a_verified_block_store_beside_the_directory_and_a_banner_of_urls_that_answer()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, store) = (dir.path().join("root"), dir.path().join("blocks"));
    std::fs::create_dir_all(root.join("models")).expect("root");
    std::fs::create_dir_all(&store).expect("store");
    let (file, weight, bias) = checkpoint();
    std::fs::write(root.join("models/m.safetensors"), &file).expect("checkpoint");
    std::fs::write(root.join("notes.txt"), b"plain file\n").expect("file");
    let block = pattern(0..100_000);
    let cid = cid_of(&block);
    std::fs::write(store.join(&cid), &block).expect("block");

    let mut serve = Serve::start_with(&root, &["--ipfs", store.to_str().expect("utf-8")]);
    let url = serve.url.clone();
    let banner = serve.rest_of_banner();
    let targets: Vec<&str> = banner
        .iter()
        .filter(|line| line.trim_start().starts_with("curl"))
        .filter_map(|line| line.split_whitespace().find(|w| w.contains("http://")))
        .map(|w| w.trim_matches('\''))
        .collect();
    assert!(
        targets.iter().any(|t| t.contains("/tensors/"))
            && targets.iter().any(|t| t.contains("/ipfs/")),
        "{banner:#?}"
    );
    for target in &targets {
        let got = fetch(false, Method::GET, target, &[]).await;
        assert!(got.status.is_success(), "{target}: {}", got.status);
    }

    let tensor = fetch(
        false,
        Method::GET,
        &format!("{url}/models/m.safetensors/tensors/layer.0%2Fweight"),
        &[],
    )
    .await;
    assert_eq!(tensor.status, StatusCode::OK);
    assert_eq!(tensor.body, weight);
    assert_eq!(tensor.header("x-tensor-dtype"), "F32");
    assert_eq!(tensor.header("x-tensor-shape"), "8,8");
    let part = fetch(
        false,
        Method::GET,
        &format!("{url}/models/m.safetensors/tensors/bias"),
        &[("range", "bytes=2-5")],
    )
    .await;
    assert_eq!(
        (part.status, &part.body[..]),
        (StatusCode::PARTIAL_CONTENT, &bias[2..6])
    );
    let header = fetch(
        false,
        Method::GET,
        &format!("{url}/models/m.safetensors/header"),
        &[],
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&header.body).expect("the header's JSON");
    assert_eq!(json["bias"]["dtype"], "F16");
    let whole = fetch(
        false,
        Method::GET,
        &format!("{url}/models/m.safetensors"),
        &[],
    )
    .await;
    assert_eq!(
        whole.body, file,
        "the checkpoint itself is a file like any other"
    );
    let unknown = fetch(
        false,
        Method::GET,
        &format!("{url}/models/m.safetensors/tensors/nope"),
        &[],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Added after the banner, which names a block it has not hashed.
    let mut damaged = pattern(0..5_000);
    let damaged_cid = cid_of(&damaged);
    damaged[10] ^= 1;
    std::fs::write(store.join(&damaged_cid), &damaged).expect("damaged block");
    let raw = fetch(
        true,
        Method::GET,
        &format!("{url}/ipfs/{cid}?format=raw"),
        &[],
    )
    .await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.body, block);
    assert_eq!(raw.header("content-type"), "application/vnd.ipld.raw");
    assert_eq!(raw.header("x-ipfs-roots"), cid);
    let bad = fetch(
        false,
        Method::GET,
        &format!("{url}/ipfs/{damaged_cid}?format=raw"),
        &[],
    )
    .await;
    assert_eq!(
        bad.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a damaged block is never served"
    );
    assert!(
        !bad.body
            .windows(100)
            .any(|w| damaged.windows(100).next() == Some(w))
    );
    let probe = fetch(
        false,
        Method::GET,
        &format!("{url}/ipfs/bafkqaaa?format=raw"),
        &[],
    )
    .await;
    assert_eq!((probe.status, probe.body.len()), (StatusCode::OK, 0));
    // A block the store lacks is the gateway's 404, even where the directory has a file of that path.
    let absent = cid_of(b"not in the store");
    std::fs::create_dir_all(root.join("ipfs")).expect("dir");
    std::fs::write(root.join("ipfs").join(&absent), b"not a block").expect("decoy");
    let missing = fetch(
        false,
        Method::GET,
        &format!("{url}/ipfs/{absent}?format=raw"),
        &[],
    )
    .await;
    assert_eq!(
        (missing.status, &missing.body[..] == b"not a block"),
        (StatusCode::NOT_FOUND, false),
        "the directory's ipfs/{absent} is not served as a block"
    );
    // Nor under a spelling of the same URL (RFC 3986 §6.2.2.2), which the directory would decode to it.
    let encoded = fetch(false, Method::GET, &format!("{url}/%69pfs/{absent}"), &[]).await;
    assert_eq!(
        (encoded.status, &encoded.body[..] == b"not a block"),
        (StatusCode::NOT_FOUND, false)
    );
    let plain = fetch(false, Method::GET, &format!("{url}/notes.txt"), &[]).await;
    assert_eq!(
        plain.body,
        &b"plain file\n"[..],
        "the directory behind the gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tensors_leaves_the_checkpoint_a_plain_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _, _) = checkpoint();
    std::fs::write(dir.path().join("m.safetensors"), &file).expect("checkpoint");
    let serve = Serve::start_with(dir.path(), &["--no-tensors"]);
    let url = &serve.url;
    let tensor = fetch(
        false,
        Method::GET,
        &format!("{url}/m.safetensors/tensors/bias"),
        &[],
    )
    .await;
    assert_eq!(tensor.status, StatusCode::NOT_FOUND);
    let whole = fetch(false, Method::GET, &format!("{url}/m.safetensors"), &[]).await;
    assert_eq!(whole.body, file);
    let gateway = fetch(
        false,
        Method::GET,
        &format!("{url}/ipfs/bafkqaaa?format=raw"),
        &[],
    )
    .await;
    assert_eq!(
        gateway.status,
        StatusCode::NOT_FOUND,
        "no store mounted with --root alone"
    );
}
