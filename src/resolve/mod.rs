//! Which local file a request means, never how to answer it: no HTTP decisions, and no blocking I/O on the
//! executor (the one blocking step, opening a confined file, is [`Confinement::open`], which the service runs
//! on a blocking thread).
//!
//! The resolver guide is in the docs of the public [`Resolve`] trait, where `cargo doc` shows it.

use std::future::Future;
use std::sync::Arc;

mod cid;
mod confine;
mod digest;
mod dir;
mod file;
mod names;
mod resolving;
mod safetensors;

pub use cid::CidResolver;
pub(crate) use confine::Confinement;
pub use digest::ContentDigest;
pub use dir::DirResolver;
pub(crate) use file::content_etag;
pub use file::{Rejection, Resolution, ResolvedFile};
pub use resolving::{NeverPending, Resolving, ResolvingFuture};
#[cfg(feature = "fuzzing")]
pub(crate) use safetensors::index_of_file;
pub use safetensors::{SafetensorsFuture, SafetensorsResolver};

/// Maps a request head to the local file it names: the resolver of an [`MmapServe`](crate::MmapServe).
///
/// The service hands every request head to its resolver before it touches the disk. The resolver answers
/// with a [`Resolution`]: a [`ResolvedFile`] to serve, [`Resolution::NotFound`], or a [`Rejection`] for a
/// request that is malformed for this resolver. It says *which* file, never how to answer: ranges,
/// preconditions, `HEAD` and caching are the service's.
///
/// Implemented by [`DirResolver`] (a directory tree), [`CidResolver`] (a content-addressed store),
/// `Arc<R>` for any resolver `R`, and every closure `Fn(&http::request::Parts) -> impl Future<Output =
/// Resolution>` whose future owns what it needs.
///
/// # Where the work happens
///
/// `resolve` runs on the async executor for every request: do no blocking I/O there. The built-in resolvers
/// do no file-system I/O at all: they check the URL path lexically. A file that must stay beneath a root
/// carries that root ([`ResolvedFile::confined_to`]); the service opens such a file beneath its root inside
/// `tokio::task::spawn_blocking`, resolving every symbolic link on the way so that none leads outside.
///
/// # Writing a resolver
///
/// A resolver that knows its answer without waiting returns [`Resolving::Ready`]: a cached file is then
/// answered inside the service's `call`, with nothing moved into a future. Set `type Future` to
/// [`NeverPending`], which has no values: the compiler then knows that `Resolving::Pending` never occurs.
///
/// ```
/// use mmap_serve::{NeverPending, Resolution, Resolve, ResolvedFile, Resolving};
///
/// /// `/weights/{name}` is `{dir}/{name}.bin` for a few known names; everything else is not ours.
/// struct Weights {
///     dir: std::path::PathBuf,
/// }
///
/// impl Resolve for Weights {
///     type Future = NeverPending;
///
///     fn resolve(&self, head: &http::request::Parts) -> Resolving<NeverPending> {
///         Resolving::Ready(match head.uri.path().strip_prefix("/weights/") {
///             Some(name @ ("small" | "large")) => {
///                 Resolution::file(ResolvedFile::new(self.dir.join(format!("{name}.bin"))).immutable(true))
///             }
///             _ => Resolution::NotFound,
///         })
///     }
/// }
///
/// let weights = Weights { dir: "/srv/weights".into() };
/// let (head, ()) = http::Request::get("/weights/small").body(())?.into_parts();
/// // With `NeverPending`, `Ready` is the only case: the pattern is irrefutable.
/// let Resolving::Ready(resolution) = weights.resolve(&head);
/// let Resolution::File(file) = resolution else { panic!("expected a file") };
/// assert_eq!(file.path, std::path::Path::new("/srv/weights/small.bin"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A resolver that must wait (for a database, a remote index) returns [`Resolving::Pending`] with its
/// future; any `Fn(&http::request::Parts) -> impl Future<Output = Resolution>` closure is such a resolver.
/// The future must own what it needs, because it outlives the borrow of the request head; annotate the
/// closure's argument type so that the closure is general over that borrow. Whatever the resolver,
/// `resolver.resolve(&head).await` gives its answer ([`Resolving`] is [`IntoFuture`](std::future::IntoFuture)):
///
/// ```
/// use mmap_serve::{Resolution, ResolvedFile, Resolve};
///
/// // Serve `/weights/{name}` from one fixed file per name, everything else is not ours.
/// let resolver = |head: &http::request::Parts| {
///     let name = head.uri.path().strip_prefix("/weights/").map(str::to_owned);
///     async move {
///         match name.as_deref() {
///             Some("small") => Resolution::file(ResolvedFile::new("/srv/weights/small.bin")),
///             _ => Resolution::NotFound,
///         }
///     }
/// };
///
/// let (head, ()) = http::Request::get("/weights/small").body(())?.into_parts();
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// match rt.block_on(async { resolver.resolve(&head).await }) {
///     Resolution::File(file) => assert_eq!(file.path, std::path::Path::new("/srv/weights/small.bin")),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The built-in resolvers decide at once:
///
/// ```
/// use mmap_serve::{DirResolver, Resolution, Resolve, Resolving};
///
/// let resolver = DirResolver::new("/srv/www");
/// let (head, ()) = http::Request::get("/css/site.css").body(())?.into_parts();
/// let Resolving::Ready(Resolution::File(file)) = resolver.resolve(&head) else { panic!("expected a file") };
/// assert_eq!(file.path, std::path::Path::new("/srv/www/css/site.css"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// The future of an answer that is not decided at once, in [`Resolving::Pending`].
    ///
    /// It must not borrow the request: it owns what it needs. Resolvers that always decide at once use
    /// [`NeverPending`].
    type Future: Future<Output = Resolution> + Send + 'static;

    /// Decides which file, if any, the request `head` names: at once ([`Resolving::Ready`]) or by a future
    /// ([`Resolving::Pending`]).
    ///
    /// This runs on the async executor for every request: do no blocking I/O here.
    fn resolve(&self, head: &http::request::Parts) -> Resolving<Self::Future>;
}

impl<F, Fut> Resolve for F
where
    F: Fn(&http::request::Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resolution> + Send + 'static,
{
    type Future = Fut;

    fn resolve(&self, head: &http::request::Parts) -> Resolving<Fut> {
        Resolving::Pending(self(head))
    }
}

impl<R: Resolve> Resolve for Arc<R> {
    type Future = R::Future;

    fn resolve(&self, head: &http::request::Parts) -> Resolving<R::Future> {
        R::resolve(self, head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn head(uri: &str) -> http::request::Parts {
        let (head, ()) = http::Request::get(uri)
            .body(())
            .expect("test URI is valid")
            .into_parts();
        head
    }

    fn assert_resolver<R: Resolve>(_: &R) {}

    #[test]
    fn builtin_resolvers_and_arcs_are_resolvers() {
        assert_resolver(&DirResolver::new("/srv"));
        assert_resolver(&CidResolver::new("/srv"));
        assert_resolver(&Arc::new(DirResolver::new("/srv")));
        assert_resolver(&Arc::new(CidResolver::new("/srv")));
    }

    #[test]
    fn closure_owning_its_data_is_a_resolver() {
        let resolver = |h: &http::request::Parts| {
            let path = h.uri.path().to_owned();
            std::future::ready(Resolution::file(ResolvedFile::new(path)))
        };
        assert_resolver(&resolver);
        let Resolution::File(file) = resolving::tests::now(resolver.resolve(&head("/a/b"))) else {
            panic!("closure resolves to a file");
        };
        assert_eq!(file.path, Path::new("/a/b"));
    }

    #[test]
    fn a_closure_always_answers_by_its_future() {
        let resolver = |_: &http::request::Parts| std::future::ready(Resolution::NotFound);
        assert!(matches!(
            resolver.resolve(&head("/")),
            Resolving::Pending(_)
        ));
    }

    #[test]
    fn arc_delegates_to_inner_resolver() {
        let resolver = Arc::new(DirResolver::new("/srv"));
        let Resolving::Ready(Resolution::File(file)) = resolver.resolve(&head("/x.txt")) else {
            panic!("arc resolves like its inner resolver, at once");
        };
        assert_eq!(file.path, Path::new("/srv/x.txt"));
    }
}
