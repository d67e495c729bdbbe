//! `ipfs_gateway`: a trustless IPFS gateway (raw blocks) over a flat block store, every block verified
//! against its CID before it is served; HTTP/1.1 and HTTP/2 cleartext on one port.
//!
//! ```sh
//! # Write a 1 GiB raw block with its real CID into ./blocks (prints the CID), then serve the store:
//! cargo run --release --example ipfs_gateway -- --store ./blocks --make-block 1073741824 --hash blake3
//! cargo run --release --example ipfs_gateway -- --store ./blocks --listen 127.0.0.1:8080
//! curl -s -o /dev/null -w '%{http_code} %{time_total}s\n' 'http://127.0.0.1:8080/ipfs/{cid}?format=raw'
//! curl -s -I http://127.0.0.1:8080/ipfs/bafkqaaa                      # the trustless probe
//! ```
//!
//! Flags: `--store DIR` (default `./blocks`), `--listen ADDR` (default `127.0.0.1:8080`), `--no-verify`
//! (serve blocks as stored). `--make-block BYTES` writes a raw block of `BYTES` pattern bytes (byte `i` is
//! `i % 251`) named by its CIDv1 (`--hash sha2-256`, the default, or `blake3`), prints the CID and exits;
//! with `--tamper` it flips the block's middle byte after computing the CID (a damaged block, for trying the
//! 500 by hand). The block is written and hashed in pieces, so making a large one needs little memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mmap_serve::{CidResolver, MmapServe};
use tokio::net::TcpListener;

/// The hash functions `--hash` names, as multihash codes.
pub const SHA2_256: u64 = 0x12;
pub const BLAKE3: u64 = 0x1e;

/// The gateway over `store`: `/ipfs/{cid}` (and `/{cid}`), verified unless `verify` is false.
pub fn gateway(store: &Path, verify: bool) -> MmapServe<CidResolver> {
    MmapServe::new(CidResolver::new(store).verify(verify)).require_host(true)
}

/// Accepts connections on `listener` forever, serving the gateway over `store`.
pub async fn run(listener: TcpListener, store: &Path, verify: bool) {
    let serve = gateway(store, verify);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let serve = serve.clone();
        let service = service_fn(move |request| serve.respond(request));
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Writes a raw block of `len` pattern bytes into `store`, named by its CIDv1 with the hash `code`
/// ([`SHA2_256`] or [`BLAKE3`]); flips its middle byte after hashing when `tamper`. Returns the CID.
pub fn make_block(store: &Path, len: u64, code: u64, tamper: bool) -> std::io::Result<String> {
    use multihash_codetable::{Blake3_256, Sha2_256};
    use multihash_derive::Hasher;
    let mut hasher: Box<dyn Hasher> = match code {
        SHA2_256 => Box::new(Sha2_256::default()),
        BLAKE3 => Box::new(Blake3_256::default()),
        _ => return Err(std::io::Error::other("--hash takes sha2-256 or blake3")),
    };
    std::fs::create_dir_all(store)?;
    let tmp = store.join(format!(".make-block-{}", std::process::id()));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    // 251 × 4096 bytes: a whole number of pattern periods, so every piece starts at byte value 0.
    let piece: Vec<u8> = (0..251 * 4096).map(|i| (i % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        hasher.update(&piece[..n]);
        out.write_all(&piece[..n])?;
        left -= n as u64;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    if tamper && len > 0 {
        use std::os::unix::fs::FileExt;
        let at = len / 2;
        let byte = ((at % 251) as u8) ^ 0xff;
        file.write_all_at(&[byte], at)?;
    }
    file.sync_all()?;
    let multihash = cid::multihash::Multihash::<64>::wrap(code, hasher.finalize())
        .map_err(std::io::Error::other)?;
    let cid = cid::Cid::new_v1(0x55, multihash).to_string();
    std::fs::rename(&tmp, store.join(&cid))?;
    Ok(cid)
}

struct Flags {
    store: PathBuf,
    listen: String,
    verify: bool,
    make_block: Option<u64>,
    hash: u64,
    tamper: bool,
}

fn flags() -> Result<Flags, String> {
    let mut flags = Flags {
        store: PathBuf::from("./blocks"),
        listen: "127.0.0.1:8080".into(),
        verify: true,
        make_block: None,
        hash: SHA2_256,
        tamper: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => flags.store = value()?.into(),
            "--listen" => flags.listen = value()?,
            "--no-verify" => flags.verify = false,
            "--make-block" => {
                flags.make_block = Some(value()?.parse().map_err(|_| "--make-block takes bytes")?);
            }
            "--hash" => {
                flags.hash = match value()?.as_str() {
                    "sha2-256" => SHA2_256,
                    "blake3" => BLAKE3,
                    _ => return Err("--hash takes sha2-256 or blake3".into()),
                };
            }
            "--tamper" => flags.tamper = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (see the example's docs)"
                ));
            }
        }
    }
    Ok(flags)
}

#[allow(
    dead_code,
    reason = "the tests include this file for `run` and `make_block`"
)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = flags()?;
    if let Some(len) = flags.make_block {
        let cid = make_block(&flags.store, len, flags.hash, flags.tamper)?;
        println!("{cid}");
        return Ok(());
    }
    let listener = TcpListener::bind(&flags.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let verified = if flags.verify {
        "verified"
    } else {
        "not verified"
    };
    println!(
        "ipfs_gateway: serving the blocks of {} at {url}/ipfs/{{cid}} ({verified})",
        flags.store.display()
    );
    println!("  curl -s -I {url}/ipfs/bafkqaaa");
    println!("  curl -s -o block.bin '{url}/ipfs/{{cid}}?format=raw'");
    run(listener, &flags.store, flags.verify).await;
    Ok(())
}
