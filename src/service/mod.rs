//! [`MmapServe`]: the tower `Service` that answers GET and HEAD from cached mappings.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower_service::Service;

use crate::http::body::{DEFAULT_CHUNK_SIZE, MmapBody};
use crate::http::response::{self, Limits, Representation};
use crate::http::target;
use crate::resolve::{Confinement, ResolvedFile};
use crate::{MmapCache, MmapError, MmapFile, Resolve, Revalidate};

mod future;
mod layer;

pub use future::ResponseFuture;
pub(crate) use future::{Outcome, Serving, Start};
pub use layer::{FallThrough, FallThroughBody, FallThroughFuture, MmapServeLayer};

/// The default most range-specs honoured in one Range header; more get the whole file (200).
///
/// Tensor clients gather many rows in one request, so this is high; amplification is bounded anyway because
/// overlapping ranges are merged and a multipart answer larger than the file is replaced by the file.
pub const DEFAULT_MAX_RANGES: usize = 1024;

/// Serves files from memory maps with RFC 9110 semantics: a tower [`Service`] for any request body type.
///
/// For each request the [resolver](Resolve) names a file; the service takes its mapping from the shared
/// [`MmapCache`] and answers:
///
/// - `GET` 200 with `Content-Length`, `Content-Type`, a strong `ETag`, `Last-Modified`, `Accept-Ranges: bytes`;
///   `HEAD` with the same headers and no body; the other methods of RFC 9110 (and PATCH) 405 with
///   `Allow: GET, HEAD`, unknown ones 501;
/// - the five conditional headers in the order of RFC 9110 §13.2.2 (412, 304, and If-Range);
/// - single ranges (206), several ranges (206 `multipart/byteranges`, overlapping ones merged, refused in
///   favour of the 200 when the multipart answer would be larger than the file or has more than
///   [`max_ranges`](Self::max_ranges) parts), and 416 when no range is satisfiable.
///
/// Bodies are [`MmapBody`]: zero-copy slices of the mapping. The service never fails: every error is a
/// response (404, 403, 400 from the resolver or for a repeated or malformed Host field (see
/// [`require_host`](Self::require_host)), 301 to `name/` for a directory when the resolver serves an index
/// file, 503 with `Retry-After` when the process is out of file descriptors or address space, 500 for other
/// I/O errors, which are logged once with `tracing`).
///
/// # Blocking work
///
/// A cache hit that needs no revalidation is answered inline, without a syscall. Everything that may wait on
/// the file system — the confinement check, `open`, `fstat`, `mmap`, and the revalidation `stat` when the
/// policy says one is due — runs in `tokio::task::spawn_blocking`, so a slow disk never stalls the async
/// workers. The one exception is the revalidation of a mapped file on a local filesystem, a `stat` that
/// cannot wait (see [`MmapCache::get_if_fresh`]). Outside a Tokio runtime that work runs inline, in `call` or
/// `poll`.
///
/// # Examples
///
/// ```
/// use mmap_serve::{DirResolver, MmapServe};
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let root = tempfile::tempdir()?; std::fs::write(root.path().join("weights.bin"), vec![7u8; 100_000])?;
/// let serve = MmapServe::new(DirResolver::new(root.path()));
/// let request = http::Request::get("/weights.bin").header("range", "bytes=0-9").body(())?;
/// let response = serve.oneshot(request).await?;
/// assert_eq!(response.status(), 206);
/// assert_eq!(response.headers()["content-range"], "bytes 0-9/100000");
/// # Ok(()) }
/// ```
pub struct MmapServe<R> {
    resolver: Arc<R>,
    cache: Arc<MmapCache>,
    limits: Limits,
}

impl<R: Resolve> MmapServe<R> {
    /// Serves what `resolver` names, from a cache of its own ([`MmapCache::default`]).
    pub fn new(resolver: R) -> Self {
        Self::with_cache(resolver, Arc::new(MmapCache::default()))
    }

    /// Serves what `resolver` names, from `cache`, which may be shared with other services and handlers.
    ///
    /// Mapping hints ([`MmapConfig`](crate::MmapConfig)), bounds and the revalidation policy are the cache's.
    pub fn with_cache(resolver: R, cache: Arc<MmapCache>) -> Self {
        Self {
            resolver: Arc::new(resolver),
            cache,
            limits: Limits {
                max_ranges: DEFAULT_MAX_RANGES,
                chunk_size: DEFAULT_CHUNK_SIZE,
                require_host: false,
            },
        }
    }

    /// Whether an HTTP/1.1 request without a Host field is refused with 400 Bad Request. Default: false.
    ///
    /// RFC 9112 §3.2 requires the refusal of the server that read the request off the wire, so turn this on
    /// where this service answers requests straight from a hyper connection (the `serve` example does) and
    /// hyper, which does not check Host, is the only thing in front of it. It is off by default because a
    /// request built in a program (`http::Request::get("/f")`, as in tests) is HTTP/1.1 without Host.
    ///
    /// A repeated or malformed Host field, and userinfo in the request target (RFC 9110 §4.2.4), are refused
    /// with 400 either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{DirResolver, MmapServe};
    /// use tower::ServiceExt;
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a.txt"), "a")?;
    /// let serve = MmapServe::new(DirResolver::new(dir.path())).require_host(true);
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let without = http::Request::get("/a.txt").body(())?;
    /// let status = rt.block_on(serve.clone().oneshot(without))?.status();
    /// assert_eq!(status, http::StatusCode::BAD_REQUEST);
    /// let with = http::Request::get("/a.txt").header("host", "example.com").body(())?;
    /// assert_eq!(rt.block_on(serve.oneshot(with))?.status(), http::StatusCode::OK);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn require_host(mut self, yes: bool) -> Self {
        self.limits.require_host = yes;
        self
    }

    /// The most range-specs honoured in one Range header; a request with more gets the whole file (200).
    /// Default: [`DEFAULT_MAX_RANGES`] (1024).
    pub fn max_ranges(mut self, max_ranges: usize) -> Self {
        self.limits.max_ranges = max_ranges;
        self
    }

    /// The largest body frame handed to the server, in bytes (0: no limit). Default: 1 MiB.
    ///
    /// A mapped body longer than one frame sends its last 4 KiB in a frame of their own, after re-checking the
    /// file (see [`MmapBody`]).
    pub fn chunk_size(mut self, chunk_size: usize) -> Self {
        self.limits.chunk_size = chunk_size;
        self
    }

    /// The cache the mappings live in.
    pub fn cache(&self) -> &Arc<MmapCache> {
        &self.cache
    }

    /// The resolver.
    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// This service as a layer in front of another: see [`MmapServeLayer`].
    pub fn into_layer(self) -> MmapServeLayer<R> {
        MmapServeLayer::new(self)
    }

    /// Starts serving a GET or HEAD.
    pub(crate) fn start(&self, parts: http::request::Parts, check_host: bool) -> Start<R> {
        Serving::start(&*self.resolver, parts, &self.cache, self.limits, check_host)
    }
}

impl<R> Clone for MmapServe<R> {
    fn clone(&self) -> Self {
        Self {
            resolver: Arc::clone(&self.resolver),
            cache: Arc::clone(&self.cache),
            limits: self.limits,
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for MmapServe<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapServe")
            .field("resolver", &self.resolver)
            .field("cache", &self.cache)
            .field("max_ranges", &self.limits.max_ranges)
            .field("chunk_size", &self.limits.chunk_size)
            .finish()
    }
}

impl<R: Resolve, B> Service<Request<B>> for MmapServe<R> {
    type Response = Response<MmapBody>;
    type Error = Infallible;
    type Future = ResponseFuture<R>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, _body) = request.into_parts();
        // RFC 9112 §3.2: a bad Host field is refused whatever the method and whatever the resolver says.
        if let Some(refusal) = target::refusal(&parts, self.limits.require_host) {
            return ResponseFuture::ready(refusal);
        }
        if is_get_or_head(&parts.method) {
            ResponseFuture::start(self.start(parts, false))
        } else {
            ResponseFuture::ready(response::method_not_allowed_or_implemented(&parts.method))
        }
    }
}

pub(crate) fn is_get_or_head(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The revalidation policy for one resolved file: immutable content is never re-checked.
pub(crate) fn policy_for(file: &ResolvedFile, cache: &MmapCache) -> Revalidate {
    if file.immutable {
        Revalidate::Never
    } else {
        cache.revalidation()
    }
}

/// The blocking half of a miss: confinement check, then the cache's open-or-revalidate.
///
/// A confined file is served only once the cached mapping is known to be the very file the checked path
/// names: a cache shared with an unconfined resolver or handler may hold a mapping of the same path opened
/// through a link that leaves this root, and that mapping must not leak through here.
pub(crate) fn open_blocking(
    cache: &MmapCache,
    path: PathBuf,
    confinement: Option<Confinement>,
    revalidate: Revalidate,
) -> Result<Arc<MmapFile>, MmapError> {
    let Some(confinement) = confinement else {
        return cache.get_or_create_with(&path, revalidate);
    };
    let open_beneath = |cache: &MmapCache| -> Result<MmapFile, MmapError> {
        let file = confinement
            .open(&path)
            .map_err(|e| MmapError::from_io(&path, e))?;
        cache.map_open_file(&path, file, revalidate)
    };
    let opened_here = std::cell::Cell::new(false);
    let result = cache.get_or_open(&path, revalidate, |cache| {
        opened_here.set(true);
        open_beneath(cache)
    });
    // On an error nothing stale stays behind: revalidation already removed a changed entry, and a failed open
    // inserted none (removing the key here could only drop an entry another request just cached).
    let file = result?;
    let tag = confinement.tag();
    if opened_here.get() || file.confined_to() == tag {
        file.set_confined_to(tag);
        return Ok(file);
    }
    // Cached by another route (an unconfined resolver or handler sharing the cache): serve it only if it is
    // the very file that opening beneath the root finds now.
    let beneath = open_beneath(cache)?;
    if beneath.identity() == file.identity() {
        file.set_confined_to(tag);
        Ok(file)
    } else {
        // Replace it, so that the next confined request is a plain hit.
        let beneath = Arc::new(beneath);
        beneath.set_confined_to(tag);
        cache.replace(&path, Arc::clone(&beneath));
        Ok(beneath)
    }
}

/// The answer for a file the cache produced (or failed to).
pub(crate) fn render(
    parts: &http::request::Parts,
    file: &Arc<MmapFile>,
    resolved: &ResolvedFile,
    limits: Limits,
) -> Response<MmapBody> {
    let v = file.validators();
    let rep = Representation {
        content: file.content(),
        content_type: resolved
            .content_type
            .as_ref()
            .unwrap_or(&response::DEFAULT_CONTENT_TYPE),
        etag: resolved.etag.as_ref().unwrap_or(&v.etag),
        etag_is_ours: resolved.etag.is_none(),
        last_modified: &v.last_modified,
        last_modified_time: v.last_modified_time,
        strong_date_from: file.strong_date_from(),
        content_length: &v.length,
        cache_control: resolved.cache_control.as_ref(),
        watched: file.is_shared().then_some(file),
        recheck_identity: !resolved.immutable,
    };
    response::respond(&parts.method, &parts.headers, &rep, limits)
}

/// The response for an error on the way to a file; 5xx are logged here, once.
pub(crate) fn error_response(err: &MmapError) -> Response<MmapBody> {
    let status = err.status_code();
    match err {
        MmapError::Exhausted { .. } => {
            tracing::warn!(error = %err, source = ?std::error::Error::source(err), "answering 503");
            let mut r = response::text(
                status,
                "service unavailable: out of resources, retry shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        _ if status.is_server_error() => {
            tracing::error!(error = %err, source = ?std::error::Error::source(err), "answering 500");
            response::text(status, "internal server error")
        }
        _ => response::text(status, status.canonical_reason().unwrap_or("error")),
    }
}

pub(crate) fn not_found() -> Response<MmapBody> {
    response::text(StatusCode::NOT_FOUND, "not found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DirResolver;

    #[test]
    fn services_futures_and_bodies_are_send_sync_clone() {
        fn clone_send_sync<T: Clone + Send + Sync + 'static>() {}
        fn send<T: Send + 'static>() {}
        clone_send_sync::<MmapServe<DirResolver>>();
        send::<ResponseFuture<DirResolver>>();
        send::<MmapBody>();
        send::<
            FallThroughFuture<
                DirResolver,
                tower::util::BoxCloneSyncService<Request<()>, Response<MmapBody>, Infallible>,
                (),
            >,
        >();
    }
}
