//! RFC 9110 decisions and header values, pure: no std::fs, tokio, libc or rustix, no `Response`, and nothing
//! of the cache or the mapping; every function here maps plain data to an answer.
//!
//! A request flows through `target` (is it well formed, which method), then `answer`, which combines
//! `preconditions` (§13.2.2) and `range` (§14), with `multipart` laying out a multi-range answer; `fields`
//! holds the field-value helpers they share, `disposition` the
//! `Content-Disposition` values resolvers ask for, and `encoding` which precompressed variant a request gets.

pub(crate) mod answer;
pub(crate) mod disposition;
pub(crate) mod encoding;
pub(crate) mod fields;
pub(crate) mod multipart;
pub(crate) mod preconditions;
pub(crate) mod range;
pub(crate) mod target;
