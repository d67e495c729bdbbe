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
