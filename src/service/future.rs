//! The futures of [`MmapServe`](super::MmapServe): resolve, map on a blocking thread when needed, answer.

use std::convert::Infallible;
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
use crate::resolve::{Resolution, ResolvedFile};
use crate::{MmapCache, MmapError, MmapFile, Resolve};

pin_project! {
    /// The response future of [`MmapServe`](super::MmapServe).
    pub struct ResponseFuture<R: Resolve> {
        #[pin]
        kind: Kind<R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<R: Resolve> {
        Serving { #[pin] serving: Serving<R> },
        Ready { response: Option<Response<MmapBody>> },
    }
}

impl<R: Resolve> ResponseFuture<R> {
    pub(crate) fn serving(serving: Serving<R>) -> Self {
        Self {
            kind: Kind::Serving { serving },
        }
    }

    pub(crate) fn ready(response: Response<MmapBody>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl<R: Resolve> Future for ResponseFuture<R> {
    type Output = Result<Response<MmapBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Serving { serving } => Poll::Ready(Ok(match ready!(serving.poll(cx)) {
                Outcome::Response(response) => response,
                Outcome::NotFound(parts) => {
                    response::without_content_for_head(&parts.method, not_found())
                }
            })),
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
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

pin_project! {
    /// Serving one GET or HEAD: the states that exist are resolving and waiting for a blocking open.
    pub(crate) struct Serving<R: Resolve> {
        #[pin]
        state: State<R::Future>,
        parts: Option<Parts>,
        cache: Arc<MmapCache>,
        limits: Limits,
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
    pub(crate) fn new(
        resolve: R::Future,
        parts: Parts,
        cache: Arc<MmapCache>,
        limits: Limits,
    ) -> Self {
        Self {
            state: State::Resolving { resolve },
            parts: Some(parts),
            cache,
            limits,
        }
    }
}

impl<R: Resolve> Future for Serving<R> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Resolving { resolve } => {
                    let file = match ready!(resolve.poll(cx)) {
                        Resolution::File(file) => file,
                        Resolution::NotFound => {
                            this.state.set(State::Done);
                            let parts = this.parts.take().expect("parts are taken once");
                            return Poll::Ready(Outcome::NotFound(parts));
                        }
                        Resolution::Reject(rejection) => {
                            this.state.set(State::Done);
                            let r = response::text(rejection.status(), rejection.reason());
                            let method = &this.parts.as_ref().expect("parts are taken once").method;
                            let r = response::without_content_for_head(method, r);
                            return Poll::Ready(Outcome::Response(r));
                        }
                    };
                    let policy = policy_for(&file, this.cache);
                    let parts = this.parts.as_ref().expect("parts are taken once");
                    // The hot path: a mapping that needs no check is answered without a syscall.
                    // A confined file must have been verified beneath this very root.
                    let fresh = this.cache.get_if_fresh_where(&file.path, policy, |mapped| {
                        file.confinement()
                            .is_none_or(|c| mapped.confined_to() == c.tag())
                    });
                    if let Some(mapped) = fresh {
                        this.state.set(State::Done);
                        return Poll::Ready(Outcome::Response(render(
                            parts,
                            &mapped,
                            &file,
                            *this.limits,
                        )));
                    }
                    let cache = Arc::clone(this.cache);
                    let (path, confinement) = (file.path.clone(), file.confinement().cloned());
                    let job = move || open_blocking(&cache, path, confinement, policy);
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => {
                            let open = runtime.spawn_blocking(job);
                            this.state.set(State::Opening { open, file });
                        }
                        Err(_) => {
                            this.state.set(State::Done);
                            let parts = this.parts.take().expect("parts are taken once");
                            return Poll::Ready(finish(parts, job(), &file, *this.limits));
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

/// The outcome of a blocking open: a file that is not there (404) is "not found", for a layer to pass on.
fn finish(
    parts: Parts,
    opened: Result<Arc<MmapFile>, MmapError>,
    file: &ResolvedFile,
    limits: Limits,
) -> Outcome {
    match opened {
        Ok(mapped) => Outcome::Response(render(&parts, &mapped, file, limits)),
        Err(err) if err.status_code() == http::StatusCode::NOT_FOUND => Outcome::NotFound(parts),
        Err(err) => Outcome::Response(response::without_content_for_head(
            &parts.method,
            error_response(&err),
        )),
    }
}
