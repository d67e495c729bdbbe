//! What [`Resolve::resolve`] returns: an answer decided at once, or the future that will decide it. Plain
//! data and one trivial future; no I/O.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::Resolution;
#[cfg(doc)]
use super::Resolve;

/// What [`Resolve::resolve`] returns: the answer, or the future that gives it.
///
/// The service answers a [`Ready`](Self::Ready) resolution inside `call` when the file is cached (the hot
/// path, no future built), and awaits a [`Pending`](Self::Pending) one. Either can be awaited: `Resolving` is
/// [`IntoFuture`], so `resolver.resolve(&head).await` gives the [`Resolution`].
///
/// # Examples
///
/// ```
/// use mmap_serve::{CidResolver, Resolution, Resolve, Resolving};
///
/// let store = CidResolver::new("/var/blocks");
/// let (head, ()) = http::Request::get("/ipfs/not-a-cid").body(())?.into_parts();
/// // Decided at once: no executor needed.
/// let Resolving::Ready(Resolution::Reject(rejection)) = store.resolve(&head) else { panic!() };
/// assert_eq!(rejection.reason(), "invalid CID");
///
/// // Or awaited, whichever way it was decided.
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// let resolution = rt.block_on(async { store.resolve(&head).await });
/// assert!(matches!(resolution, Resolution::Reject(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a resolution does nothing until it is answered"]
#[expect(
    clippy::large_enum_variant,
    reason = "returned by every resolve and matched at once: boxing the resolution would cost each request an allocation"
)]
pub enum Resolving<F> {
    /// Decided without waiting.
    Ready(Resolution),
    /// To be awaited.
    Pending(F),
}

impl<F: Future<Output = Resolution>> IntoFuture for Resolving<F> {
    type Output = Resolution;
    type IntoFuture = ResolvingFuture<F>;

    fn into_future(self) -> ResolvingFuture<F> {
        match self {
            Self::Ready(resolution) => ResolvingFuture {
                ready: Some(resolution),
                pending: None,
            },
            Self::Pending(future) => ResolvingFuture {
                ready: None,
                pending: Some(future),
            },
        }
    }
}

pin_project! {
    /// The future of a [`Resolving`] (its [`IntoFuture`] form): ready at the first poll with an answer
    /// decided at once, else the resolver's own future.
    ///
    /// # Panics
    ///
    /// Polled again after it gave a [`Resolving::Ready`] answer.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct ResolvingFuture<F> {
        ready: Option<Resolution>,
        #[pin]
        pending: Option<F>,
    }
}

impl<F: Future<Output = Resolution>> Future for ResolvingFuture<F> {
    type Output = Resolution;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resolution> {
        let this = self.project();
        if let Some(resolution) = this.ready.take() {
            return Poll::Ready(resolution);
        }
        this.pending
            .as_pin_mut()
            .expect("a decided ResolvingFuture is polled once")
            .poll(cx)
    }
}

/// The [`Resolve::Future`] of a resolver that always decides at once, as [`DirResolver`] and [`CidResolver`]
/// do: it has no values, so its [`Resolving::Pending`] can never be built.
///
/// With it, `let Resolving::Ready(resolution) = resolver.resolve(&head);` is an irrefutable pattern, and
/// the contract "this resolver never waits" is the type's, checked by the compiler, rather than a promise
/// in prose. (`std::future::Ready<Resolution>` would also do, but a resolver could then return `Pending`
/// and every caller would have to handle it.)
///
/// [`DirResolver`]: super::DirResolver
/// [`CidResolver`]: super::CidResolver
///
/// # Examples
///
/// ```
/// use mmap_serve::{DirResolver, NeverPending, Resolution, Resolve, Resolving};
///
/// let site = DirResolver::new("/srv/www");
/// let (head, ()) = http::Request::get("/.env").body(())?.into_parts();
/// let Resolving::Ready(resolution) = site.resolve(&head);
/// assert!(matches!(resolution, Resolution::NotFound));
/// # let _: Resolving<NeverPending> = site.resolve(&head);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeverPending {}

impl Future for NeverPending {
    type Output = Resolution;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Resolution> {
        match *self {}
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::task::Waker;

    /// The answer of `resolving` if it is ready at its first poll.
    pub(in crate::resolve) fn now<F: Future<Output = Resolution>>(
        resolving: Resolving<F>,
    ) -> Resolution {
        let future = std::pin::pin!(resolving.into_future());
        match future.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(resolution) => resolution,
            Poll::Pending => panic!("not ready at the first poll"),
        }
    }

    #[test]
    fn a_ready_answer_is_ready_at_the_first_poll() {
        let ready = Resolving::<NeverPending>::Ready(Resolution::NotFound);
        assert!(matches!(now(ready), Resolution::NotFound));
    }

    #[test]
    fn a_pending_answer_is_its_futures() {
        let pending = Resolving::Pending(std::future::ready(Resolution::NotFound));
        assert!(matches!(now(pending), Resolution::NotFound));
        let mut never_ready =
            std::pin::pin!(Resolving::Pending(std::future::pending::<Resolution>()).into_future());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(never_ready.as_mut().poll(&mut cx).is_pending());
        assert!(never_ready.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    #[should_panic(expected = "polled once")]
    fn a_decided_future_polled_again_panics() {
        let mut future =
            std::pin::pin!(Resolving::<NeverPending>::Ready(Resolution::NotFound).into_future());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_ready());
        let _ = future.as_mut().poll(&mut cx);
    }

    #[test]
    fn resolvers_that_never_wait_are_irrefutably_ready() {
        use crate::resolve::{CidResolver, DirResolver, Resolve};
        let (head, ()) = http::Request::get("/a.bin")
            .body(())
            .expect("valid request")
            .into_parts();
        let Resolving::Ready(resolution) = DirResolver::new("/srv").resolve(&head);
        assert!(matches!(resolution, Resolution::File(_)));
        let Resolving::Ready(resolution) = CidResolver::new("/srv").resolve(&head);
        assert!(matches!(resolution, Resolution::NotFound));
    }
}
