//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, not part of the API): thin wrappers over the
//! crate's pure header logic, with plain public types.

use std::ops::Range;
use std::time::{Duration, UNIX_EPOCH};

use crate::http::preconditions::{self, Precondition, Validators};
use crate::http::range::{self, RangePlan};

/// What [`plan_ranges`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole file.
    Full,
    /// 206 with one part.
    Single(Range<u64>),
    /// 206 multipart/byteranges.
    Multi(Vec<Range<u64>>),
    /// 416.
    Unsatisfiable,
}

/// The Range planner on a raw header value.
pub fn plan_ranges(header: &[u8], len: u64, max_ranges: usize) -> Plan {
    match range::plan_ranges(header, len, max_ranges) {
        RangePlan::Full => Plan::Full,
        RangePlan::Single(part) => Plan::Single(part),
        RangePlan::Multi(parts) => Plan::Multi(parts),
        RangePlan::Unsatisfiable => Plan::Unsatisfiable,
    }
}

/// What [`evaluate_preconditions`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; whether a Range applies.
    Proceed(bool),
    /// 304.
    NotModified,
    /// 412.
    Failed,
}

/// RFC 9110 §13.2.2 for a representation with entity-tag `etag` modified at `last_modified_secs`.
pub fn evaluate_preconditions(
    method: &http::Method,
    headers: &http::HeaderMap,
    etag: &[u8],
    last_modified_secs: u64,
) -> Verdict {
    let time = UNIX_EPOCH + Duration::from_secs(last_modified_secs);
    let formatted = httpdate::fmt_http_date(time);
    let validators = Validators {
        etag,
        etag_is_ours: false,
        last_modified: Some(time),
        last_modified_value: Some(formatted.as_bytes()),
        strong_date_from: Some(std::time::UNIX_EPOCH),
    };
    match preconditions::evaluate_preconditions(method, headers, &validators) {
        Precondition::Proceed { range_applies } => Verdict::Proceed(range_applies),
        Precondition::NotModified => Verdict::NotModified,
        Precondition::Failed => Verdict::Failed,
    }
}

/// One tensor of a safetensors header, as [`safetensors_index`] checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorWindow {
    /// The tensor's name.
    pub name: String,
    /// Its bytes, in file offsets.
    pub window: Range<u64>,
    /// `X-Tensor-Dtype`.
    pub dtype: String,
    /// `X-Tensor-Shape`.
    pub shape: String,
}

/// The safetensors header parser on a whole file: the header's window and the tensors' (any order), or why
/// the file is malformed.
pub fn safetensors_index(file: &[u8]) -> Result<(Range<u64>, Vec<TensorWindow>), String> {
    let index = crate::resolve::index_of_file(file).map_err(|e| e.to_string())?;
    let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let tensors = index
        .tensors
        .iter()
        .map(|(name, t)| TensorWindow {
            name: name.to_string(),
            window: t.window.clone(),
            dtype: text(t.dtype()),
            shape: text(t.shape()),
        })
        .collect();
    Ok((index.header, tensors))
}
