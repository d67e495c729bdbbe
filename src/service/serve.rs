//! [`MmapServe`]: the tower `Service` that answers GET and HEAD from cached mappings; its settings and its
//! entry point, no decisions of its own.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::{MmapServeFuture, Serving, Start};
use super::respond::{Limits, Reply, render};
use crate::body::{DEFAULT_CHUNK_SIZE, MmapBody};
use crate::http::target;
use crate::{MmapCache, Resolve};

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
/// `poll`. The bodies keep the disk off the workers too: a frame whose pages are not in memory is brought in
/// on the blocking pool before the server gets it (see [`MmapBody`], "Cold pages").
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
    require_host: bool,
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
                wait_for_copies: false,
            },
            require_host: false,
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
    #[must_use = "a setter returns the changed service"]
    pub fn require_host(mut self, yes: bool) -> Self {
        self.require_host = yes;
        self
    }

    /// The most range-specs honoured in one Range header; a request with more gets the whole file (200).
    /// Default: [`DEFAULT_MAX_RANGES`] (1024).
    #[must_use = "a setter returns the changed service"]
    pub fn max_ranges(mut self, max_ranges: usize) -> Self {
        self.limits.max_ranges = max_ranges;
        self
    }

    /// The largest body frame handed to the server, in bytes (0: no limit). Default: 1 MiB.
    ///
    /// A mapped body longer than 4 KiB sends its last 4 KiB in a frame of their own, after re-checking the
    /// file (see [`MmapBody`]).
    #[must_use = "a setter returns the changed service"]
    pub fn chunk_size(mut self, chunk_size: usize) -> Self {
        self.limits.chunk_size = chunk_size;
        self
    }

    /// Whether a mapped body holds its last frame until the server has let go of every earlier frame, so that
    /// the body's last check (the poison flag, and the file's identity) sees any change made before their
    /// bytes were copied out of the mapping. Default: false.
    ///
    /// A server may poll a frame before it has written the earlier ones: hyper 1's HTTP/1 connection keeps up
    /// to 408 KiB of frames uncopied in its write queue and polls the next one meanwhile, so without this a
    /// body shorter than that is checked for the last time before any of its bytes has reached the kernel,
    /// and a file rewritten in place in those moments can complete a response with the new bytes under the
    /// old labels. hyper drops a frame once it is written to the socket (HTTP/1) or into its own buffer
    /// (HTTP/2), which this waits for.
    ///
    /// Turn it on only where the bodies go to such a server (hyper, and axum, warp and tonic over it): a
    /// consumer that keeps the frames it was given, such as `http_body_util::BodyExt::collect`, would wait
    /// for ever for a body's last frame. The `serve` example turns it on. Immutable files and bytes in memory
    /// never wait, nor do bodies of at most 64 KiB: the `writev` that follows their last check normally copies
    /// all of their bytes at once, so what remains for them is a change landing in the moment between the two
    /// (or while a client too slow to take 64 KiB holds them in the queue).
    ///
    /// Cost: a longer body that fits hyper's queue is written with two `writev` calls instead of one, its last
    /// 4 KiB after the rest. Waiting in bodies of 64 KiB and less cost too much for what it covers (measured
    /// with `bench/load.sh`: 3 x 1 KiB multipart requests fell from 0.94x to 0.50x of the in-memory ceiling,
    /// random 64 KiB ranges from 0.95x to 0.88x), so they do not.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmap_serve::{DirResolver, MmapServe};
    /// let serve = MmapServe::new(DirResolver::new("./public")).wait_for_copies(true);
    /// ```
    #[must_use = "a setter returns the changed service"]
    pub fn wait_for_copies(mut self, yes: bool) -> Self {
        self.limits.wait_for_copies = yes;
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

    /// Answers `request`: what [`Service::call`] does, through a shared reference and with no readiness to
    /// wait for (the service is always ready).
    ///
    /// This is the way to mount the service on a hyper 1 server: `hyper::service::service_fn(move |request|
    /// serve.respond(request))`. hyper calls its service as soon as it has parsed a request head, and the
    /// request is answered (and its head dropped) right there. `hyper_util`'s `TowerToHyperService` instead
    /// holds the request in its future until the connection polls it, and hyper reads the socket in between:
    /// the head, a slice of hyper's read buffer, still holds that buffer, so each request costs a fresh
    /// 8 KiB buffer (measured through the `serve` binary under callgrind: about 1,000 instructions more per
    /// request, 6% of a 4 KiB GET).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use hyper_util::rt::{TokioExecutor, TokioIo};
    /// use hyper_util::server::conn::auto;
    /// use mmap_serve::{DirResolver, MmapServe};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let serve = MmapServe::new(DirResolver::new("./data"));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// loop {
    ///     let (stream, _) = listener.accept().await?;
    ///     let serve = serve.clone();
    ///     let service = hyper::service::service_fn(move |request| serve.respond(request));
    ///     tokio::spawn(async move {
    ///         let builder = auto::Builder::new(TokioExecutor::new());
    ///         let _ = builder.serve_connection(TokioIo::new(stream), service).await;
    ///     });
    /// }
    /// # }
    /// ```
    pub fn respond<B>(&self, request: Request<B>) -> MmapServeFuture<R> {
        let (head, _body) = request.into_parts();
        // RFC 9112 §3.2: a bad Host field is refused whatever the method and whatever the resolver says.
        let reply = match self.refusal(&head) {
            Some(reason) => Reply::Refused(reason),
            None if target::is_get_or_head(&head.method) => {
                return MmapServeFuture::start(self.start(head, None));
            }
            None => Reply::Method,
        };
        MmapServeFuture::ready(render(&head, reply))
    }

    /// Why `head` is refused with 400 before any file is looked for: a malformed target or Host field, or
    /// (with [`require_host`](Self::require_host)) a missing one. The one place both forms check it.
    pub(super) fn refusal(&self, head: &http::request::Parts) -> Option<&'static str> {
        target::refusal(head, self.require_host)
    }

    /// Starts serving the GET or HEAD `head`; a file the resolver names is answered with 400 `refusal`
    /// instead, when there is one (the layer's rule: it refuses only the requests it would serve).
    pub(super) fn start(
        &self,
        head: http::request::Parts,
        refusal: Option<&'static str>,
    ) -> Start<R> {
        Serving::start(&*self.resolver, head, &self.cache, self.limits, refusal)
    }
}

impl<R> Clone for MmapServe<R> {
    fn clone(&self) -> Self {
        Self {
            resolver: Arc::clone(&self.resolver),
            cache: Arc::clone(&self.cache),
            limits: self.limits,
            require_host: self.require_host,
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
            .field("require_host", &self.require_host)
            .finish()
    }
}

impl<R: Resolve, B> Service<Request<B>> for MmapServe<R> {
    type Response = Response<MmapBody>;
    type Error = Infallible;
    type Future = MmapServeFuture<R>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.respond(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DirResolver, FallThroughFuture};

    #[test]
    fn services_futures_and_bodies_are_send_sync_clone() {
        fn clone_send_sync<T: Clone + Send + Sync + 'static>() {}
        fn send<T: Send + 'static>() {}
        clone_send_sync::<MmapServe<DirResolver>>();
        send::<MmapServeFuture<DirResolver>>();
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
