//! `MmapServe` driven through `tower::ServiceExt::oneshot`, one test per rule of RFC 9110 and of the crate's
//! contract, on temp-dir fixtures whose byte `i` is `i % 251` (so any range can be checked by recomputing it).
//!
//! The rules are grouped by concern, one module per file under `tests/service/`.

mod common;

#[path = "service/amplification.rs"]
mod amplification;
#[path = "service/basics.rs"]
mod basics;
#[path = "service/body.rs"]
mod body;
#[path = "service/cache.rs"]
mod cache;
#[path = "service/layer.rs"]
mod layer;
#[path = "service/preconditions.rs"]
mod preconditions;
#[path = "service/properties.rs"]
mod properties;
#[path = "service/ranges.rs"]
mod ranges;
#[path = "service/resolvers.rs"]
mod resolvers;
