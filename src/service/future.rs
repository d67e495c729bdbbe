//! Serving one GET or HEAD: resolve, take the mapping from the cache (opening it on a blocking thread when
//! needed), and the futures that hand the answer over; rendering is `respond`'s, decisions are `http`'s.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http::request::Parts;
use pin_project_lite::pin_project;
use tokio::task::JoinHandle;

use super::respond::{Limits, Reply, render};
use super::variant::{self, Lookup, Opened};
use super::verify::{self, Standing};
use crate::body::MmapBody;
use crate::cache::{Entry, FrameCounters};
use crate::http::encoding::Preference;
use crate::http::target;
use crate::resolve::{Confinement, Resolution, ResolvedFile, Resolving};
use crate::{MmapCache, MmapError, Resolve, Revalidate};

/// The response future of [`MmapServe`](crate::MmapServe).
///
/// A request for a cached file that the resolver names at once is answered inside `call`, and this future
/// only hands the response over; otherwise it drives the resolver's future and the blocking open. Either way
/// it hands the response over once the first frame of its body is in memory: a cold one is brought in on
/// the blocking pool first (see [`MmapBody`]'s cold pages), so the server writes the head and the first
/// bytes together instead of the head alone and the bytes after a wait.
pub struct MmapServeFuture<R: Resolve> {
    kind: Kind<R>,
}

enum Kind<R: Resolve> {
    Serving(Pin<Box<Serving<R>>>),
    Ready(Option<Response<MmapBody>>),
}

impl<R: Resolve> MmapServeFuture<R> {
    pub(super) fn start(start: Start<R>) -> Self {
        match start {
            Start::Done(outcome) => Self::ready(outcome.into_response()),
            Start::Later(serving) => Self {
                kind: Kind::Serving(serving),
            },
        }
    }

    pub(super) fn ready(response: Response<MmapBody>) -> Self {
        Self {
            kind: Kind::Ready(Some(response)),
        }
    }
}

impl<R: Resolve> fmt::Debug for MmapServeFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Serving(_) => "serving",
            Kind::Ready(Some(_)) => "ready",
            Kind::Ready(None) => "done",
        };
        f.debug_struct("MmapServeFuture")
            .field("state", &state)
            .finish()
    }
}

impl<R: Resolve> Future for MmapServeFuture<R> {
    type Output = Result<Response<MmapBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Kind::Serving(serving) = &mut this.kind {
            this.kind = Kind::Ready(Some(ready!(serving.as_mut().poll(cx)).into_response()));
        }
        let Kind::Ready(response) = &mut this.kind else {
            unreachable!("a serving future was replaced by its response above");
        };
        Poll::Ready(Ok(ready!(first_frame_ready(response, cx))))
    }
}

/// `response` once the first frame of its body is in memory ([`MmapBody::poll_first_ready`]): the server
/// then writes its head and first bytes at once, and never waits for the disk meanwhile.
pub(super) fn first_frame_ready(
    response: &mut Option<Response<MmapBody>>,
    cx: &mut Context<'_>,
) -> Poll<Response<MmapBody>> {
    let ready = response
        .as_mut()
        .expect("response future polled after completion")
        .body_mut()
        .poll_first_ready(cx);
    ready.map(|()| response.take().expect("checked above"))
}

/// How serving a request ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The answer.
    Response(Response<MmapBody>),
    /// The resolver had no file, or the file it named does not exist (or is a directory, FIFO, ...):
    /// the request head, for whoever handles it next.
    NotFound(Parts),
}

impl Outcome {
    /// The response `MmapServe` gives: a file it has not is 404.
    fn into_response(self) -> Response<MmapBody> {
        match self {
            Self::Response(response) => response,
            Self::NotFound(head) => render(&head, Reply::NotFound),
        }
    }
}

/// How serving a request goes on once it has started.
#[expect(
    clippy::large_enum_variant,
    reason = "returned and matched at once, never stored: boxing the answer would cost the hot path an allocation"
)]
pub(super) enum Start<R: Resolve> {
    /// Answered at once: the resolver decided without waiting, and the file needed no blocking open.
    Done(Outcome),
    /// Waiting for the resolver or for a blocking open (boxed: the hot path never builds one, and the small
    /// futures that hold it are cheaper to move).
    Later(Pin<Box<Serving<R>>>),
}

pin_project! {
    /// Serving one GET or HEAD: the states that exist are resolving and waiting for a blocking open.
    pub(super) struct Serving<R: Resolve> {
        #[pin]
        state: State<R::Future>,
        head: Option<Parts>,
        cache: Arc<MmapCache>,
        limits: Limits,
        refusal: Option<&'static str>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Resolving { #[pin] resolve: F },
        Opening { open: JoinHandle<Opened>, file: ResolvedFile },
        Done,
    }
}

impl<R: Resolve> Serving<R> {
    /// Starts serving the GET or HEAD request `head` with `resolver`: at once when the resolver decides
    /// without waiting and the file is cached and fresh (the hot path, no future built). A file the resolver
    /// names is answered with 400 `refusal` instead, when there is one.
    pub(super) fn start(
        resolver: &R,
        head: Parts,
        cache: &Arc<MmapCache>,
        limits: Limits,
        refusal: Option<&'static str>,
    ) -> Start<R> {
        let (state, head) = match resolver.resolve(&head) {
            Resolving::Ready(resolution) => {
                match proceed(resolution, head, cache, limits, refusal) {
                    Step::Done(outcome) => return Start::Done(outcome),
                    Step::Open { open, file, head } => (State::Opening { open, file }, head),
                }
            }
            Resolving::Pending(resolve) => (State::Resolving { resolve }, head),
        };
        Start::Later(Box::pin(Self {
            state,
            head: Some(head),
            cache: Arc::clone(cache),
            limits,
            refusal,
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
                    let head = this.head.take().expect("the head is taken once");
                    match proceed(resolution, head, this.cache, *this.limits, *this.refusal) {
                        Step::Done(outcome) => {
                            this.state.set(State::Done);
                            return Poll::Ready(outcome);
                        }
                        Step::Open { open, file, head } => {
                            *this.head = Some(head);
                            this.state.set(State::Opening { open, file });
                        }
                    }
                }
                StateProj::Opening { open, file } => {
                    let opened = match ready!(Pin::new(open).poll(cx)) {
                        Ok(opened) => opened,
                        Err(join_error) => Opened {
                            entry: Err(MmapError::Io {
                                path: file.path.display().to_string(),
                                source: std::io::Error::other(join_error.to_string()),
                            }),
                            coding: None,
                        },
                    };
                    let head = this.head.take().expect("the head is taken once");
                    let frames = this.cache.frame_counters();
                    let outcome = finish(head, opened, file, *this.limits, frames);
                    this.state.set(State::Done);
                    return Poll::Ready(outcome);
                }
                StateProj::Done => panic!("mmap-serve future polled after completion"),
            }
        }
    }
}

/// What a resolution leads to.
#[expect(
    clippy::large_enum_variant,
    reason = "returned and matched at once, never stored: boxing either side would cost an allocation"
)]
enum Step {
    /// An answer at once.
    Done(Outcome),
    /// A blocking open of `file` to wait for.
    Open {
        open: JoinHandle<Opened>,
        file: ResolvedFile,
        head: Parts,
    },
}

/// Goes on from `resolution`: a file is answered with `refusal` when there is one; a cached, fresh mapping is
/// answered without a syscall; anything else is opened (and mapped) on a blocking thread, or right here
/// outside a Tokio runtime.
fn proceed(
    resolution: Resolution,
    head: Parts,
    cache: &Arc<MmapCache>,
    limits: Limits,
    refusal: Option<&'static str>,
) -> Step {
    let file = match resolution {
        Resolution::File(file) => file,
        Resolution::NotFound => return Step::Done(Outcome::NotFound(head)),
        Resolution::Reject(rejection) => {
            let r = render(&head, Reply::Rejected(&rejection));
            return Step::Done(Outcome::Response(r));
        }
    };
    if let Some(reason) = refusal {
        return Step::Done(Outcome::Response(render(&head, Reply::Refused(reason))));
    }
    if let Some(content) = file.memory() {
        let reply = Reply::Bytes {
            content,
            resolved: &file,
            limits,
            frames: cache.frame_counters(),
        };
        return Step::Done(Outcome::Response(render(&head, reply)));
    }
    let mut policy = policy_for(&file, cache);
    // A confined file must have been verified beneath this very root.
    let tag = file.confinement().map_or(0, Confinement::tag);
    // A precompressed variant the request prefers, when the resolver names some (RFC 9110 §12.5.3).
    let sidecars = if file.codings().is_empty() {
        Preference::default()
    } else {
        match variant::cached(&file, &head.headers, cache, policy, tag) {
            Lookup::Cached(entry, coding) => {
                let reply = Reply::File {
                    entry: &entry,
                    resolved: &file,
                    coding: Some(coding),
                    limits,
                    frames: cache.frame_counters(),
                };
                return Step::Done(Outcome::Response(render(&head, reply)));
            }
            Lookup::Open(sidecars) => sidecars,
        }
    };
    if sidecars.is_empty()
        && let Some(entry) = cache.fresh_entry(&file.path, policy, tag)
    {
        match verify::standing(&entry, &file) {
            Standing::Cleared => {
                let reply = Reply::File {
                    entry: &entry,
                    resolved: &file,
                    coding: None,
                    limits,
                    frames: cache.frame_counters(),
                };
                return Step::Done(Outcome::Response(render(&head, reply)));
            }
            // Hashed, or the file re-checked, on the blocking pool.
            standing => policy = verify::open_policy(standing, policy),
        }
    }
    let frames = cache.frame_counters();
    let cache = Arc::clone(cache);
    let (path, confinement) = (file.path.clone(), file.confinement().cloned());
    // A verified file has no sidecars (see `ResolvedFile::codings`): what is hashed is what is served.
    let digest = file.verification().cloned();
    let job = move || {
        let mut opened = variant::open(&cache, &path, confinement.as_ref(), policy, sidecars, open);
        if let (Some(digest), Ok(entry)) = (&digest, &opened.entry)
            && let Err(err) = verify::verify(entry, digest)
        {
            opened.entry = Err(err);
        }
        opened
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Step::Open {
            open: runtime.spawn_blocking(job),
            file,
            head,
        },
        Err(_) => Step::Done(finish(head, job(), &file, limits, frames)),
    }
}

/// The revalidation policy for one resolved file: immutable content is never re-checked.
fn policy_for(file: &ResolvedFile, cache: &MmapCache) -> Revalidate {
    if file.immutable {
        Revalidate::Never
    } else {
        cache.revalidation()
    }
}

/// The blocking half of a miss: the cache's open-or-revalidate, beneath the resolver's root when it has one.
fn open(
    cache: &MmapCache,
    path: &Path,
    confinement: Option<&Confinement>,
    policy: Revalidate,
) -> Result<Arc<Entry>, MmapError> {
    match confinement {
        None => cache.entry(path, policy),
        Some(root) => cache.entry_beneath(path, policy, root.tag(), || root.open(path)),
    }
}

/// The outcome of a blocking open: a file that is not there (404) is "not found", for a layer to pass on; a
/// directory is redirected to its `/` form when the resolver asked for that.
fn finish(
    head: Parts,
    opened: Opened,
    file: &ResolvedFile,
    limits: Limits,
    frames: &Arc<FrameCounters>,
) -> Outcome {
    let reply = match &opened.entry {
        Ok(entry) if verify::standing(entry, file) == Standing::Mismatch => {
            let digest = file
                .verification()
                .expect("only a verified file mismatches");
            Reply::Mismatch(digest.reason())
        }
        Ok(entry) => Reply::File {
            entry,
            resolved: file,
            coding: opened.coding,
            limits,
            frames,
        },
        Err(MmapError::IsADirectory(_)) if file.redirects_directory() => {
            match target::directory_location(&head.uri) {
                Some(location) => Reply::Redirect(location),
                None => return Outcome::NotFound(head),
            }
        }
        Err(err) if err.status_code() == http::StatusCode::NOT_FOUND => match file.missing() {
            Some(rejection) => Reply::Rejected(rejection),
            None => return Outcome::NotFound(head),
        },
        Err(err) => Reply::Error(err),
    };
    Outcome::Response(render(&head, reply))
}
