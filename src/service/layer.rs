//! [`MmapServeLayer`], the fall-through form: files when the resolver has one, the inner service otherwise;
//! it decides nothing about files itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::future::{Outcome, Serving, Start, first_frame_ready};
use super::serve::MmapServe;
use crate::Resolve;
use crate::body::MmapBody;
use crate::http::target::is_get_or_head;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Layer`] that puts an [`MmapServe`] in front of another service.
///
/// GET and HEAD requests for which the resolver names a file are answered from the mapping (including 304,
/// 412 and 416, 403 when the file cannot be read, 400 when the request's Host field is repeated or malformed,
/// and a 301 to `name/` when the file is a directory and the resolver serves an index file); a resolver's
/// rejection (say 400 for an invalid CID) is answered too. Every other request — the resolver found nothing,
/// the named file does not exist, or the method is not GET or HEAD — goes on to the inner service untouched,
/// body included.
///
/// # Examples
///
/// ```
/// use mmap_serve::{DirResolver, MmapServe, MmapServeLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let root = tempfile::tempdir()?; std::fs::write(root.path().join("a.bin"), b"file bytes")?;
/// let app = ServiceBuilder::new()
///     .layer(MmapServeLayer::new(MmapServe::new(DirResolver::new(root.path()))))
///     .service(service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("from the handler")))
///     }));
/// let file = app.clone().oneshot(http::Request::get("/a.bin").body(())?).await?;
/// assert_eq!(file.headers()["content-length"], "10");
/// let other = app.oneshot(http::Request::get("/api/health").body(())?).await?;
/// assert_eq!(other.headers().get("content-length"), None);
/// # Ok(()) }
/// ```
pub struct MmapServeLayer<R> {
    serve: MmapServe<R>,
}

impl<R> MmapServeLayer<R> {
    /// A layer that tries `serve` first.
    pub fn new(serve: MmapServe<R>) -> Self {
        Self { serve }
    }
}

impl<R> MmapServe<R> {
    /// This service as a layer in front of another: see [`MmapServeLayer`].
    pub fn into_layer(self) -> MmapServeLayer<R> {
        MmapServeLayer::new(self)
    }
}

impl<R> Clone for MmapServeLayer<R> {
    fn clone(&self) -> Self {
        Self {
            serve: self.serve.clone(),
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for MmapServeLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapServeLayer")
            .field("serve", &self.serve)
            .finish()
    }
}

impl<R, S> Layer<S> for MmapServeLayer<R> {
    type Service = FallThrough<R, S>;

    fn layer(&self, inner: S) -> Self::Service {
        FallThrough {
            serve: self.serve.clone(),
            inner,
        }
    }
}

/// The service made by [`MmapServeLayer`]: a file when the resolver names one, `S` otherwise.
pub struct FallThrough<R, S> {
    serve: MmapServe<R>,
    inner: S,
}

impl<R, S: Clone> Clone for FallThrough<R, S> {
    fn clone(&self) -> Self {
        Self {
            serve: self.serve.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<R: fmt::Debug, S: fmt::Debug> fmt::Debug for FallThrough<R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallThrough")
            .field("serve", &self.serve)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<R, S, B, ResBody> Service<Request<B>> for FallThrough<R, S>
where
    R: Resolve,
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<FallThroughBody<ResBody>>;
    type Error = S::Error;
    type Future = FallThroughFuture<R, S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Take the instance that was driven ready, leaving a fresh clone behind (tower's "be careful" rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !is_get_or_head(request.method()) {
            return FallThroughFuture {
                state: FallState::Inner {
                    future: inner.call(request),
                },
            };
        }
        let (parts, body) = request.into_parts();
        // A bad Host field refuses the files this layer serves; every other request passes on untouched.
        let refusal = self.serve.refusal(&parts);
        let state = match self.serve.start(parts, refusal) {
            Start::Done(Outcome::Response(response)) => FallState::Ready {
                response: Some(response),
            },
            Start::Done(Outcome::NotFound(parts)) => FallState::Inner {
                future: inner.call(Request::from_parts(parts, body)),
            },
            Start::Later(serving) => FallState::Serving {
                serving,
                inner: Some(inner),
                body: Some(body),
            },
        };
        FallThroughFuture { state }
    }
}

pin_project! {
    /// The response future of [`FallThrough`].
    pub struct FallThroughFuture<R, S, B>
    where
        R: Resolve,
        S: Service<Request<B>>,
    {
        #[pin]
        state: FallState<R, S, B>,
    }
}

pin_project! {
    #[project = FallProj]
    enum FallState<R, S, B>
    where
        R: Resolve,
        S: Service<Request<B>>,
    {
        Serving { serving: Pin<Box<Serving<R>>>, inner: Option<S>, body: Option<B> },
        Inner { #[pin] future: S::Future },
        Ready { response: Option<Response<MmapBody>> },
    }
}

impl<R, S, B> fmt::Debug for FallThroughFuture<R, S, B>
where
    R: Resolve,
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            FallState::Serving { .. } => "serving",
            FallState::Inner { .. } => "inner",
            FallState::Ready { response: Some(_) } => "ready",
            FallState::Ready { response: None } => "done",
        };
        f.debug_struct("FallThroughFuture")
            .field("state", &state)
            .finish()
    }
}

impl<R, S, B, ResBody> Future for FallThroughFuture<R, S, B>
where
    R: Resolve,
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<FallThroughBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                FallProj::Serving {
                    serving,
                    inner,
                    body,
                } => match ready!(serving.as_mut().poll(cx)) {
                    Outcome::Response(response) => {
                        this.state.set(FallState::Ready {
                            response: Some(response),
                        });
                    }
                    Outcome::NotFound(parts) => {
                        let body = body.take().expect("the request body is handed on once");
                        let mut inner = inner.take().expect("the inner service is called once");
                        let future = inner.call(Request::from_parts(parts, body));
                        this.state.set(FallState::Inner { future });
                    }
                },
                FallProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(FallThroughBody::inner)));
                }
                FallProj::Ready { response } => {
                    let response = ready!(first_frame_ready(response, cx));
                    return Poll::Ready(Ok(response.map(FallThroughBody::mmap)));
                }
            }
        }
    }
}

pin_project! {
    /// The body of a [`FallThrough`] response: a file's, or the inner service's.
    #[derive(Debug)]
    pub struct FallThroughBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    #[derive(Debug)]
    enum BodyKind<B> {
        Mmap { #[pin] body: MmapBody },
        Inner { #[pin] body: B },
    }
}

impl<B> FallThroughBody<B> {
    fn mmap(body: MmapBody) -> Self {
        Self {
            kind: BodyKind::Mmap { body },
        }
    }

    fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }
}

impl<B> Body for FallThroughBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProj::Mmap { body } => body.poll_frame(cx).map_err(Into::into),
            BodyKindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Mmap { body } => body.is_end_stream(),
            BodyKind::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Mmap { body } => body.size_hint(),
            BodyKind::Inner { body } => body.size_hint(),
        }
    }
}
