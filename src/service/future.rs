//! The futures of [`MmapServe`](super::MmapServe): resolve, map on a blocking thread when needed, answer.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http::request::Parts;
use pin_project_lite::pin_project;
use tokio::task::JoinHandle;

use super::{error_response, not_found, open_blocking, policy_for, render};
use crate::http::body::MmapBody;
use crate::http::response::{self, Limits};
use crate::http::target;
use crate::resolve::{Resolution, ResolvedFile, Resolving};
use crate::{MmapCache, MmapError, MmapFile, Resolve};

/// The response future of [`MmapServe`](super::MmapServe).
///
/// A request for a cached file that the resolver names at once is answered inside `call`, and this future
/// only hands the response over; otherwise it drives the resolver's future and the blocking open.
pub struct ResponseFuture<R: Resolve> {
    kind: Kind<R>,
}

enum Kind<R: Resolve> {
    Serving(Pin<Box<Serving<R>>>),
    Ready(Option<Response<MmapBody>>),
}

impl<R: Resolve> ResponseFuture<R> {
    pub(crate) fn start(start: Start<R>) -> Self {
        match start {
            Start::Done(outcome) => Self::ready(answer(outcome)),
            Start::Later(serving) => Self {
                kind: Kind::Serving(serving),
            },
        }
    }

    pub(crate) fn ready(response: Response<MmapBody>) -> Self {
        Self {
            kind: Kind::Ready(Some(response)),
        }
    }
}

impl<R: Resolve> fmt::Debug for ResponseFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Serving(_) => "serving",
            Kind::Ready(Some(_)) => "ready",
            Kind::Ready(None) => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<R: Resolve> Future for ResponseFuture<R> {
    type Output = Result<Response<MmapBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match &mut self.get_mut().kind {
            Kind::Serving(serving) => answer(ready!(serving.as_mut().poll(cx))),
            Kind::Ready(response) => response
                .take()
                .expect("ResponseFuture polled after completion"),
        }))
    }
}

/// The response `MmapServe` gives for `outcome`: a file it has not is 404.
fn answer(outcome: Outcome) -> Response<MmapBody> {
    match outcome {
        Outcome::Response(response) => response,
        Outcome::NotFound(parts) => response::without_content_for_head(&parts.method, not_found()),
    }
}

/// How serving a request ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The answer.
    Response(Response<MmapBody>),
    /// The resolver had no file, or the file it named does not exist (or is a directory, FIFO, ...):
    /// the request head, for whoever handles it next.
    NotFound(Parts),
}

/// How serving a request goes on once it has started.
#[expect(
    clippy::large_enum_variant,
    reason = "returned and matched at once, never stored: boxing the answer would cost the hot path an allocation"
)]
pub(crate) enum Start<R: Resolve> {
    /// Answered at once: the resolver decided without waiting, and the file needed no blocking open.
    Done(Outcome),
    /// Waiting for the resolver or for a blocking open (boxed: the hot path never builds one, and the small
    /// futures that hold it are cheaper to move).
    Later(Pin<Box<Serving<R>>>),
}

pin_project! {
    /// Serving one GET or HEAD: the states that exist are resolving and waiting for a blocking open.
    pub(crate) struct Serving<R: Resolve> {
        #[pin]
        state: State<R::Future>,
        parts: Option<Parts>,
        cache: Arc<MmapCache>,
        limits: Limits,
        check_host: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Resolving { #[pin] resolve: F },
        Opening { open: JoinHandle<Result<Arc<MmapFile>, MmapError>>, file: ResolvedFile },
        Done,
    }
}

impl<R: Resolve> Serving<R> {
    /// Starts serving the GET or HEAD request `parts` with `resolver`: at once when the resolver decides
    /// without waiting and the file is cached and fresh (the hot path, no future built). `check_host`: refuse
    /// a bad Host field before serving a file (the caller has not checked it).
    pub(crate) fn start(
        resolver: &R,
        parts: Parts,
        cache: &Arc<MmapCache>,
        limits: Limits,
        check_host: bool,
    ) -> Start<R> {
        let (state, parts) = match resolver.resolve(&parts) {
            Resolving::Ready(resolution) => {
                match proceed(resolution, parts, cache, limits, check_host) {
                    Step::Done(outcome) => return Start::Done(outcome),
                    Step::Open { open, file, parts } => (State::Opening { open, file }, parts),
                }
            }
            Resolving::Pending(resolve) => (State::Resolving { resolve }, parts),
        };
        Start::Later(Box::pin(Self {
            state,
            parts: Some(parts),
            cache: Arc::clone(cache),
            limits,
            check_host,
        }))
    }
}

impl<R: Resolve> Future for Serving<R> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Resolving { resolve } => {
                    let resolution = ready!(resolve.poll(cx));
                    let parts = this.parts.take().expect("parts are taken once");
                    match proceed(
                        resolution,
                        parts,
                        this.cache,
                        *this.limits,
                        *this.check_host,
                    ) {
                        Step::Done(outcome) => {
                            this.state.set(State::Done);
                            return Poll::Ready(outcome);
                        }
                        Step::Open { open, file, parts } => {
                            *this.parts = Some(parts);
                            this.state.set(State::Opening { open, file });
                        }
                    }
                }
                StateProj::Opening { open, file } => {
                    let opened = match ready!(Pin::new(open).poll(cx)) {
                        Ok(opened) => opened,
                        Err(join_error) => Err(MmapError::Io {
                            path: file.path.display().to_string(),
                            source: std::io::Error::other(join_error.to_string()),
                        }),
                    };
                    let parts = this.parts.take().expect("parts are taken once");
                    let outcome = finish(parts, opened, file, *this.limits);
                    this.state.set(State::Done);
                    return Poll::Ready(outcome);
                }
                StateProj::Done => panic!("mmap-serve future polled after completion"),
            }
        }
    }
}

/// What a resolution leads to.
enum Step {
    /// An answer at once.
    Done(Outcome),
    /// A blocking open of `file` to wait for.
    Open {
        open: JoinHandle<Result<Arc<MmapFile>, MmapError>>,
        file: ResolvedFile,
        parts: Parts,
    },
}

/// Goes on from `resolution`: a request for a file with a bad Host field or target is 400 (when `check_host`);
/// a cached, fresh mapping is answered without a syscall; anything else is opened (and mapped) on a blocking thread, or right
/// here outside a Tokio runtime.
fn proceed(
    resolution: Resolution,
    parts: Parts,
    cache: &Arc<MmapCache>,
    limits: Limits,
    check_host: bool,
) -> Step {
    let file = match resolution {
        Resolution::File(file) => file,
        Resolution::NotFound => return Step::Done(Outcome::NotFound(parts)),
        Resolution::Reject(rejection) => {
            let r = response::text(rejection.status(), rejection.reason());
            let r = response::without_content_for_head(&parts.method, r);
            return Step::Done(Outcome::Response(r));
        }
    };
    if let Some(refusal) = check_host
        .then(|| target::refusal(&parts, limits.require_host))
        .flatten()
    {
        return Step::Done(Outcome::Response(refusal));
    }
    let policy = policy_for(&file, cache);
    // A confined file must have been verified beneath this very root.
    let fresh = cache.get_if_fresh_where(&file.path, policy, |mapped| {
        file.confinement()
            .is_none_or(|c| mapped.confined_to() == c.tag())
    });
    if let Some(mapped) = fresh {
        return Step::Done(Outcome::Response(render(&parts, &mapped, &file, limits)));
    }
    let cache = Arc::clone(cache);
    let (path, confinement) = (file.path.clone(), file.confinement().cloned());
    let job = move || open_blocking(&cache, path, confinement, policy);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Step::Open {
            open: runtime.spawn_blocking(job),
            file,
            parts,
        },
        Err(_) => Step::Done(finish(parts, job(), &file, limits)),
    }
}

/// The outcome of a blocking open: a file that is not there (404) is "not found", for a layer to pass on; a
/// directory is redirected to its `/` form when the resolver asked for that.
fn finish(
    parts: Parts,
    opened: Result<Arc<MmapFile>, MmapError>,
    file: &ResolvedFile,
    limits: Limits,
) -> Outcome {
    match opened {
        Ok(mapped) => Outcome::Response(render(&parts, &mapped, file, limits)),
        Err(MmapError::IsADirectory(_)) if file.redirects_directory() => {
            match response::to_directory(&parts.uri) {
                Some(r) => Outcome::Response(response::without_content_for_head(&parts.method, r)),
                None => Outcome::NotFound(parts),
            }
        }
        Err(err) if err.status_code() == http::StatusCode::NOT_FOUND => Outcome::NotFound(parts),
        Err(err) => Outcome::Response(response::without_content_for_head(
            &parts.method,
            error_response(&err),
        )),
    }
}
