//! `IntoResponse` for [`MmapError`] (feature `axum`): handlers can return `Result<Response, MmapError>`.

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};

use crate::MmapError;
use crate::service::error_response;

/// The same answer [`MmapServe`](crate::MmapServe) gives: the error's status with a short plain-text reason
/// (no path leaks to the client), `Retry-After` on 503, and 5xx logged once.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use mmap_serve::MmapError;
/// let response = MmapError::InvalidRange("0..10 past the end".into()).into_response();
/// assert_eq!(response.status(), 416);
/// ```
impl IntoResponse for MmapError {
    fn into_response(self) -> Response {
        error_response(&self).map(Body::new)
    }
}
