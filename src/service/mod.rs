//! The tower side: [`MmapServe`], its layer, the futures that serve a request, and the rendering of an answer
//! into a `Response`; the HTTP decisions are `http`'s, the files the cache's.
//!
//! A request goes `serve` (or `layer`) → `future` (resolve, cache, open; `variant` picks a precompressed
//! sidecar) → `respond` (render); no module here takes behaviour from this one.

mod future;
mod layer;
mod respond;
mod serve;
mod variant;
mod verify;

pub use future::MmapServeFuture;
pub use layer::{FallThrough, FallThroughBody, FallThroughFuture, MmapServeLayer};
#[cfg(feature = "axum")]
pub(crate) use respond::error_response;
pub use serve::{DEFAULT_MAX_RANGES, MmapServe};
