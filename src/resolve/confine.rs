//! Keeping an opened file beneath a root directory, symbolic links included.
//!
//! Resolvers check URL paths lexically and do no I/O; what the path means on disk (symbolic links, a root
//! that is itself a link) is decided here, in blocking code the service runs inside
//! `tokio::task::spawn_blocking` just before it opens the file.
//!
//! # Races
//!
//! On Linux 5.6 and later, [`Confinement::open`] resolves and opens in one `openat2(2)` call with
//! `RESOLVE_BENEATH` (and `RESOLVE_NO_SYMLINKS` when links are refused): a directory swapped for a link
//! between two steps cannot lead outside, because there are no two steps. Where `openat2` is unavailable, and
//! for paths crossing an absolute link (which `RESOLVE_BENEATH` always refuses), [`Confinement::check`]
//! canonicalizes and compares, then the canonical target is opened: someone able to write beneath the root
//! could swap a checked component for a link in between. That fallback protects against links the operator or
//! the content left in the tree, not against a concurrent attacker with write access to it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Flags every served file is opened with: read-only, and never blocking on a FIFO or becoming a terminal.
const OPEN_FLAGS: i32 = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// A root that a file must stay beneath once symbolic links are resolved.
#[derive(Debug, Clone)]
pub(crate) struct Confinement {
    /// The root as configured: possibly relative, possibly a symbolic link.
    pub(super) root: Arc<Path>,
    /// Whether links below the root may be followed (to targets that are still beneath it).
    pub(super) follow_symlinks: bool,
}

impl Confinement {
    /// Confines to `root`, following links below it if `follow_symlinks`.
    pub(super) fn new(root: Arc<Path>, follow_symlinks: bool) -> Self {
        Self {
            root,
            follow_symlinks,
        }
    }

    /// A non-zero digest of this confinement (root as configured, symlink policy), with which a cached
    /// mapping records the confinement it was last verified under.
    pub(crate) fn tag(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        // FNV-1a: deterministic, a few nanoseconds for a short root.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in self
            .root
            .as_os_str()
            .as_bytes()
            .iter()
            .chain([u8::from(self.follow_symlinks)].iter())
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h.max(1)
    }

    /// Opens `path` for reading, guaranteed to lie beneath the root.
    ///
    /// On Linux 5.6 and later this is one `openat2(2)` call relative to the root with `RESOLVE_BENEATH` (and
    /// `RESOLVE_NO_SYMLINKS` when links are refused): the kernel resolves and opens in one step, so a link
    /// swapped in concurrently cannot lead outside. Where `openat2` is missing or filtered (`ENOSYS`, `EPERM`),
    /// or `path` is not lexically beneath the configured root, or the path crosses an absolute symbolic link
    /// (which `RESOLVE_BENEATH` always refuses, even when it points inside the root), it falls back to
    /// [`check`](Self::check) and opening the canonical target.
    ///
    /// The file is opened non-blocking without a controlling terminal; the caller refuses anything that is not
    /// a regular file.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check): `NotFound` for a missing file and for any escape; resource errors (`EMFILE`,
    /// `ENFILE`, `ENOMEM`) unchanged, so that they can be answered with 503.
    pub(crate) fn open(&self, path: &Path) -> io::Result<File> {
        #[cfg(target_os = "linux")]
        if let Ok(below_root) = path.strip_prefix(&self.root) {
            match openat2::open_beneath(&self.root, below_root, self.follow_symlinks) {
                Ok(file) => return Ok(file),
                Err(e) if openat2::is_unsupported(&e) => {}
                // RESOLVE_BENEATH refuses every absolute link, even one to a file inside the root: let the
                // canonical check decide those.
                Err(e) if self.follow_symlinks && e.raw_os_error() == Some(libc::EXDEV) => {}
                Err(e) => return Err(openat2::client_error(e)),
            }
        }
        let target = self.check(path)?;
        OpenOptions::new()
            .read(true)
            .custom_flags(OPEN_FLAGS & !libc::O_RDONLY & !libc::O_CLOEXEC)
            .open(target)
    }

    /// Returns the path to open: the canonical target of `path`, guaranteed (as of this call) to lie under
    /// the canonical root.
    ///
    /// This does blocking file-system I/O; call it off the async executor. The root is canonicalized on
    /// every call rather than once, so that a root which is a symbolic link may be switched atomically to a
    /// new tree (the usual way to deploy one) and the next request sees it. A relative root is resolved
    /// against the current working directory at the time of the call.
    ///
    /// With `follow_symlinks`, `path` may be any path whose target (all links followed) lies beneath the
    /// canonical root. Without it, `path` must be lexically beneath the configured root (the root followed
    /// by plain names, as [`DirResolver`](super::DirResolver) builds it), and no component after the root may
    /// be a symbolic link; the root itself may be one.
    ///
    /// # Errors
    ///
    /// - `io::ErrorKind::NotFound` when the target is missing, lies outside the root, crosses a refused
    ///   symbolic link, or cannot be resolved for any other reason (a component not a directory, a loop,
    ///   no permission, a name too long). These all look the same, so that a client cannot learn anything
    ///   about the file system outside the root.
    /// - The error of canonicalizing the root itself, unchanged, when the root cannot be resolved (it is the
    ///   operator's configuration, not the client's input).
    pub(crate) fn check(&self, path: &Path) -> io::Result<PathBuf> {
        let root = fs::canonicalize(&self.root)?;
        if self.follow_symlinks {
            let target = fs::canonicalize(path).map_err(|_| not_found())?;
            // `starts_with` compares whole components: `/srv/www2` is not beneath `/srv/www`.
            if target.starts_with(&root) {
                Ok(target)
            } else {
                Err(not_found())
            }
        } else {
            let below_root = path.strip_prefix(&self.root).map_err(|_| not_found())?;
            walk_without_symlinks(root, below_root)
        }
    }
}

/// `openat2(2)` with `RESOLVE_BENEATH`: resolution and open in one kernel call.
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "openat2 has no wrapper in std or libc; it is called with libc::syscall"
)]
mod openat2 {
    use std::ffi::CString;
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    /// `struct open_how` of `<linux/openat2.h>` (version 0, 24 bytes).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }

    /// Opens `below_root` relative to the directory `root` without ever leaving it.
    pub(super) fn open_beneath(
        root: &Path,
        below_root: &Path,
        follow_symlinks: bool,
    ) -> io::Result<File> {
        // The root itself may be a link (a `current -> v2` deploy): it is followed here, once per open.
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(root)?;
        let relative = if below_root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            below_root
        };
        let name = CString::new(relative.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
        let mut resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        if !follow_symlinks {
            resolve |= libc::RESOLVE_NO_SYMLINKS;
        }
        let how = OpenHow {
            flags: super::OPEN_FLAGS as u64,
            mode: 0,
            resolve,
        };
        // SAFETY: `dir` is an open directory descriptor, `name` a NUL-terminated string, and `how` a valid
        // `open_how` whose size is passed with it; all three outlive the call, which writes to none of them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                name.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd)
            .map_err(|_| io::Error::other("openat2 returned an invalid descriptor"))?;
        // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Whether the kernel (or a seccomp filter) does not offer `openat2`.
    pub(super) fn is_unsupported(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::EPERM | libc::E2BIG)
        )
    }

    /// What a failed open means to a client: escapes look like a missing file; resource errors stay.
    pub(super) fn client_error(e: io::Error) -> io::Error {
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EACCES) => e,
            _ => io::ErrorKind::NotFound.into(),
        }
    }
}

/// Appends the plain names of `below_root` to the canonical `root` one at a time, refusing any component
/// that is a symbolic link, is missing, or is not a plain name.
fn walk_without_symlinks(root: PathBuf, below_root: &Path) -> io::Result<PathBuf> {
    let mut target = root;
    for component in below_root.components() {
        match component {
            Component::Normal(name) => {
                target.push(name);
                let metadata = fs::symlink_metadata(&target).map_err(|_| not_found())?;
                if metadata.file_type().is_symlink() {
                    return Err(not_found());
                }
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(not_found());
            }
        }
    }
    Ok(target)
}

/// The one error a client-facing failure turns into, whatever its cause.
fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A temporary tree: `outside/secret`, `root/inside.txt`, `root/sub/deep.txt`.
    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("create temp dir");
            let tree = Self { dir };
            fs::create_dir_all(tree.root().join("sub")).expect("mkdir root/sub");
            fs::create_dir_all(tree.outside()).expect("mkdir outside");
            fs::write(tree.root().join("inside.txt"), b"in").expect("write inside");
            fs::write(tree.root().join("sub/deep.txt"), b"deep").expect("write deep");
            fs::write(tree.outside().join("secret"), b"secret").expect("write secret");
            tree
        }

        fn base(&self) -> PathBuf {
            fs::canonicalize(self.dir.path()).expect("canonical temp dir")
        }

        fn root(&self) -> PathBuf {
            self.base().join("root")
        }

        fn outside(&self) -> PathBuf {
            self.base().join("outside")
        }

        fn confinement(&self, follow_symlinks: bool) -> Confinement {
            Confinement::new(self.root().into(), follow_symlinks)
        }
    }

    fn assert_not_found(result: io::Result<PathBuf>) {
        match result {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}"),
            Ok(p) => panic!("expected NotFound, got {}", p.display()),
        }
    }

    /// `abs` spelled relative to the current working directory (`../../tmp/...`).
    fn relative_to_cwd(abs: &Path) -> PathBuf {
        let cwd = fs::canonicalize(std::env::current_dir().expect("cwd")).expect("canonical cwd");
        let mut rel = PathBuf::new();
        for _ in cwd
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
        {
            rel.push("..");
        }
        rel.push(abs.strip_prefix("/").expect("absolute path"));
        rel
    }

    #[test]
    fn plain_file_inside_root_is_returned_canonical() {
        let tree = Tree::new();
        for follow in [true, false] {
            let got = tree
                .confinement(follow)
                .check(&tree.root().join("sub/deep.txt"))
                .expect("file inside root");
            assert_eq!(got, tree.root().join("sub/deep.txt"));
        }
    }

    #[test]
    fn symlink_inside_root_to_file_inside_is_followed() {
        let tree = Tree::new();
        symlink("sub/deep.txt", tree.root().join("link")).expect("symlink");
        let got = tree
            .confinement(true)
            .check(&tree.root().join("link"))
            .expect("in-root link");
        assert_eq!(got, tree.root().join("sub/deep.txt"));
    }

    #[test]
    fn symlink_to_file_outside_root_is_not_found() {
        let tree = Tree::new();
        symlink(tree.outside().join("secret"), tree.root().join("leak")).expect("symlink");
        assert_not_found(tree.confinement(true).check(&tree.root().join("leak")));
    }

    #[test]
    fn symlinked_directory_pointing_outside_is_not_found() {
        let tree = Tree::new();
        symlink(tree.outside(), tree.root().join("out")).expect("symlink");
        assert_not_found(
            tree.confinement(true)
                .check(&tree.root().join("out/secret")),
        );
    }

    #[test]
    fn relative_dotdot_symlink_escaping_root_is_not_found() {
        let tree = Tree::new();
        symlink("../outside/secret", tree.root().join("up")).expect("symlink");
        symlink("../../outside", tree.root().join("sub/updir")).expect("symlink");
        assert_not_found(tree.confinement(true).check(&tree.root().join("up")));
        assert_not_found(
            tree.confinement(true)
                .check(&tree.root().join("sub/updir/secret")),
        );
    }

    #[test]
    fn sibling_directory_sharing_the_root_name_prefix_is_outside() {
        let tree = Tree::new();
        let sibling = tree.base().join("root2");
        fs::create_dir(&sibling).expect("mkdir root2");
        fs::write(sibling.join("f"), b"x").expect("write");
        symlink("../root2/f", tree.root().join("sib")).expect("symlink");
        assert_not_found(tree.confinement(true).check(&tree.root().join("sib")));
    }

    #[test]
    fn lexical_dotdot_escaping_root_is_not_found() {
        let tree = Tree::new();
        let path = tree.root().join("../outside/secret");
        assert_not_found(tree.confinement(true).check(&path));
        assert_not_found(tree.confinement(false).check(&path));
    }

    #[test]
    fn path_not_beneath_root_at_all_is_not_found() {
        let tree = Tree::new();
        let path = tree.outside().join("secret");
        assert_not_found(tree.confinement(true).check(&path));
        assert_not_found(tree.confinement(false).check(&path));
    }

    #[test]
    fn in_root_symlink_is_refused_without_follow_symlinks() {
        let tree = Tree::new();
        symlink("sub/deep.txt", tree.root().join("link")).expect("symlink");
        symlink("sub", tree.root().join("subdir")).expect("symlink");
        assert_not_found(tree.confinement(false).check(&tree.root().join("link")));
        assert_not_found(
            tree.confinement(false)
                .check(&tree.root().join("subdir/deep.txt")),
        );
    }

    #[test]
    fn missing_file_is_not_found() {
        let tree = Tree::new();
        for follow in [true, false] {
            assert_not_found(tree.confinement(follow).check(&tree.root().join("nope")));
            assert_not_found(
                tree.confinement(follow)
                    .check(&tree.root().join("nope/deeper")),
            );
        }
    }

    #[test]
    fn file_used_as_directory_is_not_found() {
        let tree = Tree::new();
        for follow in [true, false] {
            let path = tree.root().join("inside.txt/x");
            assert_not_found(tree.confinement(follow).check(&path));
        }
    }

    #[test]
    fn dangling_symlink_is_not_found() {
        let tree = Tree::new();
        symlink("nowhere", tree.root().join("dangling")).expect("symlink");
        assert_not_found(tree.confinement(true).check(&tree.root().join("dangling")));
    }

    #[test]
    fn symlink_loop_is_not_found() {
        let tree = Tree::new();
        symlink("b", tree.root().join("a")).expect("symlink");
        symlink("a", tree.root().join("b")).expect("symlink");
        assert_not_found(tree.confinement(true).check(&tree.root().join("a")));
    }

    #[test]
    fn relative_root_works() {
        let tree = Tree::new();
        let rel_root = relative_to_cwd(&tree.root());
        assert!(rel_root.is_relative());
        for follow in [true, false] {
            let confinement = Confinement::new(rel_root.clone().into(), follow);
            let got = confinement
                .check(&rel_root.join("inside.txt"))
                .expect("file under relative root");
            assert_eq!(got, tree.root().join("inside.txt"));
        }
        let confinement = Confinement::new(rel_root.clone().into(), true);
        assert_not_found(confinement.check(&rel_root.join("../outside/secret")));
    }

    #[test]
    fn root_that_is_itself_a_symlink_works() {
        let tree = Tree::new();
        let link_root = tree.base().join("current");
        symlink("root", &link_root).expect("symlink root");
        for follow in [true, false] {
            let confinement = Confinement::new(link_root.clone().into(), follow);
            let got = confinement
                .check(&link_root.join("sub/deep.txt"))
                .expect("file under symlinked root");
            assert_eq!(got, tree.root().join("sub/deep.txt"));
        }
        symlink(tree.outside(), tree.root().join("out")).expect("symlink");
        let confinement = Confinement::new(link_root.clone().into(), true);
        assert_not_found(confinement.check(&link_root.join("out/secret")));
    }

    #[test]
    fn switching_a_symlinked_root_is_seen_by_the_next_check() {
        let tree = Tree::new();
        let v2 = tree.base().join("v2");
        fs::create_dir(&v2).expect("mkdir v2");
        fs::write(v2.join("new.txt"), b"new").expect("write");
        let link_root = tree.base().join("current");
        symlink("root", &link_root).expect("symlink root");
        let confinement = Confinement::new(link_root.clone().into(), true);
        assert!(confinement.check(&link_root.join("inside.txt")).is_ok());
        fs::remove_file(&link_root).expect("unlink");
        symlink("v2", &link_root).expect("relink");
        let got = confinement
            .check(&link_root.join("new.txt"))
            .expect("new tree visible");
        assert_eq!(got, v2.join("new.txt"));
    }

    #[test]
    fn missing_root_reports_its_own_error() {
        let tree = Tree::new();
        let confinement = Confinement::new(tree.base().join("no-root").into(), true);
        let err = confinement
            .check(&tree.base().join("no-root/f"))
            .expect_err("root is missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    fn read_opened(c: &Confinement, path: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        c.open(path)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    #[test]
    fn open_reads_files_and_in_root_links_beneath_the_root() {
        let tree = Tree::new();
        symlink(tree.root().join("sub/deep.txt"), tree.root().join("link")).expect("symlink");
        let c = tree.confinement(true);
        assert_eq!(
            read_opened(&c, &tree.root().join("inside.txt")).expect("open"),
            b"in"
        );
        assert_eq!(
            read_opened(&c, &tree.root().join("link")).expect("open"),
            b"deep"
        );
    }

    #[test]
    fn open_refuses_every_way_out_with_not_found() {
        let tree = Tree::new();
        symlink(tree.outside().join("secret"), tree.root().join("abs")).expect("symlink");
        symlink("../outside/secret", tree.root().join("rel")).expect("symlink");
        symlink(tree.outside(), tree.root().join("dir")).expect("symlink");
        symlink(tree.root().join("inside.txt"), tree.root().join("inner")).expect("symlink");
        let c = tree.confinement(true);
        for path in [
            tree.root().join("abs"),
            tree.root().join("rel"),
            tree.root().join("dir/secret"),
            tree.root().join("../outside/secret"),
            tree.root().join("missing"),
        ] {
            match read_opened(&c, &path) {
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{}: {e}", path.display()),
                Ok(bytes) => panic!(
                    "{} opened: {:?}",
                    path.display(),
                    String::from_utf8_lossy(&bytes)
                ),
            }
        }
        let strict = tree.confinement(false);
        let e = read_opened(&strict, &tree.root().join("inner")).expect_err("links refused");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            read_opened(&strict, &tree.root().join("inside.txt")).expect("plain file"),
            b"in"
        );
    }

    #[test]
    fn open_follows_a_symlinked_root() {
        let tree = Tree::new();
        let alias = tree.base().join("current");
        symlink(tree.root(), &alias).expect("symlink");
        let c = Confinement::new(alias.clone().into(), false);
        assert_eq!(
            read_opened(&c, &alias.join("sub/deep.txt")).expect("open"),
            b"deep"
        );
    }
}
