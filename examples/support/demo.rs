//! Demo content shared by the examples (`serve`, `mmap_tensor_server`): a safetensors checkpoint written by
//! the `safetensors` crate, a raw IPFS block named by its real CID, and a writer that never shows a server a
//! torn file.

use std::path::Path;

/// Writes `bytes` to `path` by write-then-rename, unless `path` already holds them.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, path)?;
    }
    Ok(())
}

/// The demo checkpoint's tensors: name, dtype, shape and little-endian bytes.
pub fn demo_tensors() -> Vec<(&'static str, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    use safetensors::Dtype;
    // 128 KiB, so that the file is past the small-file threshold and memory-mapped.
    let embed: Vec<u8> = (0..256 * 128)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    // F16 bit patterns 0x3c00.. (1.0 and up): finite halves without a conversion crate.
    let q_proj: Vec<u8> = (0..32 * 32u16)
        .flat_map(|i| (0x3c00 + i).to_le_bytes())
        .collect();
    let positions: Vec<u8> = (0..128i64).flat_map(|i| (i - 64).to_le_bytes()).collect();
    vec![
        (
            "model.embed_tokens.weight",
            Dtype::F32,
            vec![256, 128],
            embed,
        ),
        ("layers.0/attn.q_proj", Dtype::F16, vec![32, 32], q_proj),
        ("positions", Dtype::I64, vec![128], positions),
    ]
}

/// `demo_tensors` as a safetensors file, written by the `safetensors` crate.
pub fn demo_checkpoint() -> Vec<u8> {
    let tensors = demo_tensors();
    let views = tensors.iter().map(|(name, dtype, shape, bytes)| {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
            .expect("the bytes match dtype x shape");
        (*name, view)
    });
    let views: Vec<_> = views.collect();
    safetensors::serialize(views.iter().map(|(name, view)| (*name, view)), None)
        .expect("a valid checkpoint")
}

/// Writes `bytes` into the flat block store `store` as a raw IPFS block, named by its CIDv1 (raw codec, sha2-256
/// computed here with the `multihash-codetable` crate), unless it is there already; returns the CID.
pub fn write_raw_block(store: &Path, bytes: &[u8]) -> std::io::Result<String> {
    use multihash_codetable::{Code, MultihashDigest};
    std::fs::create_dir_all(store)?;
    let cid = cid::Cid::new_v1(0x55, Code::Sha2_256.digest(bytes)).to_string();
    write_if_changed(&store.join(&cid), bytes)?;
    Ok(cid)
}
