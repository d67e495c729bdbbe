//! A safetensors header, checked and turned into the byte windows of its tensors: pure, no I/O (the resolver
//! reads the bytes) and no HTTP answer beyond the field values it formats once.
//!
//! The format (<https://github.com/huggingface/safetensors>): 8 bytes, a little-endian `u64` N; N bytes of
//! UTF-8 JSON, an object mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (and
//! an optional `"__metadata__"` object of strings); then the data, tensor bytes at `begin..end` counted from
//! the end of the header, so that a tensor is the file's bytes `8 + N + begin .. 8 + N + end`.
//!
//! The JSON and the offsets are checked by the `safetensors` crate itself (its `Metadata` deserializer, the
//! one `SafeTensors::read_metadata` uses): the offsets, sorted, must tile the data from 0 without a gap or an
//! overlap, each tensor's length must be its dtype's size times its shape's product (without overflow, and
//! whole bytes), and an end may not come before its begin. What `read_metadata` checks on the whole buffer
//! is checked here on the file's length instead, so the data is never read: the 100 MB header cap, the
//! header inside the file, and the data ending exactly at the end of the file. The fuzz target
//! `safetensors_header` holds this parser to the crate's `read_metadata` on arbitrary files.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use safetensors::tensor::Metadata;

/// The largest header accepted, in bytes: the `safetensors` crate's own cap (its `MAX_HEADER_SIZE`).
pub(crate) const MAX_HEADER_LEN: u64 = 100_000_000;

/// The length of the header-length field that opens every file.
const LEN_FIELD: u64 = 8;

/// A checked header: where it is, and each tensor's window with its field values.
#[derive(Debug)]
pub(crate) struct Index {
    /// The header's JSON in file offsets: `8..8 + N`.
    pub(crate) header: Range<u64>,
    /// The tensors, by name.
    pub(crate) tensors: HashMap<Box<str>, Tensor>,
}

/// One tensor of a checked header.
#[derive(Debug)]
pub(crate) struct Tensor {
    /// Its bytes in file offsets, `8 + N + begin .. 8 + N + end`: inside the file, by the checks.
    pub(crate) window: Range<u64>,
    /// `X-Tensor-Dtype` (the dtype as the format names it: `F16`, `BF16`, `F8_E4M3`) and `X-Tensor-Shape`
    /// (decimal dimensions joined by commas, `4096,11008`; empty for a scalar), the further fields of every
    /// answer about the tensor, made
    /// once per parse and shared by every request (measured: a map built per request cost about 1,000
    /// instructions, its allocation, two inserts and its drop).
    pub(crate) fields: Arc<HeaderMap>,
}

/// Why a file is not a well-formed safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn malformed(reason: impl Into<String>) -> Malformed {
    Malformed(reason.into())
}

/// The header's length N from the file's first bytes (`prefix`, at least 8 of them unless the file is
/// shorter) and the file's length: the header must fit in the file and under [`MAX_HEADER_LEN`].
pub(crate) fn header_len(prefix: &[u8], file_len: u64) -> Result<u64, Malformed> {
    let Some(field) = prefix.first_chunk::<8>().filter(|_| file_len >= LEN_FIELD) else {
        return Err(malformed(format!(
            "the file's {file_len} bytes are shorter than the 8-byte header length"
        )));
    };
    let n = u64::from_le_bytes(*field);
    if n > MAX_HEADER_LEN {
        return Err(malformed(format!(
            "header length {n} is over the {MAX_HEADER_LEN}-byte cap"
        )));
    }
    if n > file_len - LEN_FIELD {
        return Err(malformed(format!(
            "header length {n} runs past the end of the file ({file_len} bytes)"
        )));
    }
    Ok(n)
}

/// Checks `json`, the N bytes after the length field of a file of `file_len` bytes, and indexes its tensors.
pub(crate) fn parse(json: &[u8], file_len: u64) -> Result<Index, Malformed> {
    let n = json.len() as u64;
    let data_start = LEN_FIELD + n;
    if data_start > file_len {
        return Err(malformed("the header runs past the end of the file"));
    }
    let text =
        std::str::from_utf8(json).map_err(|e| malformed(format!("header is not UTF-8: {e}")))?;
    // The crate's deserializer checks the offsets against each other and against dtype x shape.
    let metadata: Metadata = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let data_len = metadata.data_len() as u64;
    if data_start.checked_add(data_len) != Some(file_len) {
        return Err(malformed(format!(
            "the tensors cover {data_len} bytes of data, the file has {}",
            file_len - data_start
        )));
    }
    let infos = metadata.tensors();
    let mut tensors = HashMap::with_capacity(infos.len());
    for (name, info) in infos {
        let (begin, end) = info.data_offsets;
        // Both are at most `data_len` (checked above to fit in the file): no overflow.
        let window = data_start + begin as u64..data_start + end as u64;
        let dtype = HeaderValue::try_from(info.dtype.to_string())
            .map_err(|_| malformed("a dtype name that is not a field value"))?;
        let mut shape = String::with_capacity(info.shape.len() * 6);
        for (i, dim) in info.shape.iter().enumerate() {
            if i > 0 {
                shape.push(',');
            }
            shape.push_str(itoa::Buffer::new().format(*dim));
        }
        let shape = HeaderValue::try_from(shape).expect("digits and commas are a field value");
        tensors.insert(
            name.into_boxed_str(),
            Tensor {
                window,
                fields: Arc::new(tensor_fields(dtype, shape)),
            },
        );
    }
    Ok(Index {
        header: LEN_FIELD..data_start,
        tensors,
    })
}

/// The index of a whole file held in memory: [`header_len`] then [`parse`] (for tests and the fuzz target).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn index_of_file(file: &[u8]) -> Result<Index, Malformed> {
    let len = file.len() as u64;
    let n = header_len(file, len)?;
    // `header_len` keeps 8 + n inside the file, whose length came from a usize.
    parse(&file[8..8 + n as usize], len)
}

/// `X-Tensor-Dtype`: a tensor's dtype as the format names it (`F16`, `BF16`, `I64`, `F8_E4M3`, ...).
pub(crate) static X_TENSOR_DTYPE: HeaderName = HeaderName::from_static("x-tensor-dtype");
/// `X-Tensor-Shape`: a tensor's dimensions in decimal, joined by commas (`4096,11008`; empty for a scalar).
pub(crate) static X_TENSOR_SHAPE: HeaderName = HeaderName::from_static("x-tensor-shape");

/// The further fields of an answer about a tensor: its dtype and its shape.
fn tensor_fields(dtype: HeaderValue, shape: HeaderValue) -> HeaderMap {
    let mut fields = HeaderMap::with_capacity(2);
    fields.insert(X_TENSOR_DTYPE.clone(), dtype);
    fields.insert(X_TENSOR_SHAPE.clone(), shape);
    fields
}

#[cfg(any(test, feature = "fuzzing"))]
impl Tensor {
    /// Its `X-Tensor-Dtype`.
    pub(crate) fn dtype(&self) -> &HeaderValue {
        &self.fields[&X_TENSOR_DTYPE]
    }

    /// Its `X-Tensor-Shape`.
    pub(crate) fn shape(&self) -> &HeaderValue {
        &self.fields[&X_TENSOR_SHAPE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with header `json` (as given, not re-serialized) and `data_len` bytes of data.
    fn file(json: &str, data_len: usize) -> Vec<u8> {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.extend((0..data_len).map(|i| i as u8));
        out
    }

    fn reason(file: &[u8]) -> String {
        index_of_file(file).expect_err("malformed").to_string()
    }

    const TWO: &str = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2,3],"data_offsets":[8,20]},"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#;

    #[test]
    fn a_good_header_gives_each_tensor_its_window_dtype_and_shape() {
        let f = file(TWO, 20);
        let index = index_of_file(&f).expect("well formed");
        let n = TWO.len() as u64;
        assert_eq!(index.header, 8..8 + n);
        assert_eq!(index.tensors.len(), 2, "__metadata__ is no tensor");
        let a = &index.tensors["a"];
        assert_eq!(a.window, 8 + n..8 + n + 8);
        assert_eq!(
            (a.dtype().as_bytes(), a.shape().as_bytes()),
            (&b"I32"[..], &b"2"[..])
        );
        let b = &index.tensors["b"];
        assert_eq!(b.window, 8 + n + 8..8 + n + 20);
        assert_eq!(
            (b.dtype().as_bytes(), b.shape().as_bytes()),
            (&b"F16"[..], &b"2,3"[..])
        );
        assert_eq!(b.window.end, f.len() as u64);
    }

    #[test]
    fn scalars_empty_tensors_and_padding_are_well_formed() {
        let json = r#"{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"e":{"dtype":"BF16","shape":[0,4],"data_offsets":[8,8]}}    "#;
        let index = index_of_file(&file(json, 8)).expect("well formed");
        assert_eq!(index.tensors["s"].shape(), "");
        let e = &index.tensors["e"];
        assert_eq!(e.window.start, e.window.end);
        assert!(
            index_of_file(&file("{}", 0))
                .expect("no tensors")
                .tensors
                .is_empty()
        );
    }

    #[test]
    fn a_header_length_past_the_file_or_the_cap_is_malformed() {
        assert!(reason(b"").contains("shorter than the 8-byte"));
        assert!(reason(&[1, 0, 0]).contains("shorter than the 8-byte"));
        let mut f = file(TWO, 20);
        let len = f.len() as u64;
        f[..8].copy_from_slice(&len.to_le_bytes());
        assert!(reason(&f).contains("past the end"), "{}", reason(&f));
        f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(reason(&f).contains("cap"));
        f[..8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
        assert!(reason(&f).contains("cap"));
    }

    #[test]
    fn bad_text_and_bad_offsets_are_malformed() {
        let cases: [(&str, &[u8], usize); 10] = [
            ("not UTF-8", b"{\"\xff\":1}", 0),
            ("not JSON", b"{\"a\":", 0),
            ("not an object", b"[]", 0),
            (
                "overlapping",
                br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                6,
            ),
            (
                "a gap",
                br#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                6,
            ),
            (
                "end before begin",
                br#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#,
                4,
            ),
            (
                "dtype x shape",
                br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                4,
            ),
            (
                "overflowing shape",
                br#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#,
                0,
            ),
            (
                "past the data",
                br#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#,
                4,
            ),
            (
                "short of the file's end",
                br#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
                4,
            ),
        ];
        for (what, json, data_len) in cases {
            let mut f = (json.len() as u64).to_le_bytes().to_vec();
            f.extend_from_slice(json);
            f.extend(std::iter::repeat_n(0u8, data_len));
            assert!(index_of_file(&f).is_err(), "{what}");
        }
        let unknown = r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
        assert!(index_of_file(&file(unknown, 16)).is_err(), "unknown dtype");
    }

    #[test]
    fn accepts_exactly_what_the_safetensors_crate_accepts_on_these_files() {
        let samples = [
            file(TWO, 20),
            file(TWO, 21),
            file("{}", 0),
            file("{}", 1),
            file(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#,
                1,
            ),
            file(
                r#"{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#,
                1,
            ),
        ];
        for f in samples {
            let ours = index_of_file(&f).map(|i| {
                let mut w: Vec<_> = i.tensors.values().map(|t| t.window.clone()).collect();
                w.sort_by_key(|r| r.start);
                w
            });
            let theirs = safetensors::SafeTensors::read_metadata(&f);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{ours:?} {theirs:?}");
        }
    }
}
