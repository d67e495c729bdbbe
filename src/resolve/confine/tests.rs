//! Every rule of [`Confinement::open`], checked both ways it resolves: through `openat2` where the kernel has it
//! (through the walk where it has not), and through the walk alone, as on a kernel without `openat2`.

use super::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Component, PathBuf};

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

/// The two ways a confined file is opened.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// [`Confinement::open`]: `openat2` on this kernel if it has it, the walk for what `openat2` refuses.
    Open,
    /// [`Confinement::open_by_walk`]: the walk alone.
    Walk,
}

const WAYS: [Way; 2] = [Way::Open, Way::Walk];

/// The bytes of the file `c` opens at `path`, one `way`.
fn read(c: &Confinement, way: Way, path: &Path) -> io::Result<Vec<u8>> {
    let mut file = match way {
        Way::Open => c.open(path)?,
        Way::Walk => c.open_by_walk(path)?,
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Both ways open `path` and read `expected`.
#[track_caller]
fn assert_reads(c: &Confinement, path: &Path, expected: &[u8]) {
    for way in WAYS {
        match read(c, way, path) {
            Ok(bytes) => assert_eq!(bytes, expected, "{way:?} {}", path.display()),
            Err(e) => panic!("{way:?} {}: {e}", path.display()),
        }
    }
}

/// Both ways refuse `path` with `NotFound`.
#[track_caller]
fn assert_not_found(c: &Confinement, path: &Path) {
    for way in WAYS {
        match read(c, way, path) {
            Err(e) => assert_eq!(
                e.kind(),
                io::ErrorKind::NotFound,
                "{way:?} {}: {e}",
                path.display()
            ),
            Ok(bytes) => panic!(
                "{way:?} {} opened: {:?}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            ),
        }
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
fn plain_file_inside_root_is_opened() {
    let tree = Tree::new();
    for follow in [true, false] {
        let c = tree.confinement(follow);
        assert_reads(&c, &tree.root().join("sub/deep.txt"), b"deep");
        assert_reads(&c, &tree.root().join("inside.txt"), b"in");
    }
}

#[test]
fn symlink_inside_root_to_file_inside_is_followed() {
    let tree = Tree::new();
    symlink("sub/deep.txt", tree.root().join("link")).expect("symlink");
    symlink(tree.root().join("sub/deep.txt"), tree.root().join("abs")).expect("symlink");
    symlink("../inside.txt", tree.root().join("sub/up")).expect("symlink");
    symlink("sub", tree.root().join("subdir")).expect("symlink");
    let c = tree.confinement(true);
    assert_reads(&c, &tree.root().join("link"), b"deep");
    assert_reads(&c, &tree.root().join("abs"), b"deep");
    assert_reads(&c, &tree.root().join("sub/up"), b"in");
    assert_reads(&c, &tree.root().join("subdir/deep.txt"), b"deep");
}

#[test]
fn dotdot_in_a_link_target_may_move_within_the_root() {
    let tree = Tree::new();
    symlink("sub/../inside.txt", tree.root().join("rel")).expect("symlink");
    symlink(
        tree.root().join("sub/../sub/deep.txt"),
        tree.root().join("abs"),
    )
    .expect("symlink");
    symlink("sub", tree.root().join("subdir")).expect("symlink");
    let c = tree.confinement(true);
    assert_reads(&c, &tree.root().join("rel"), b"in");
    assert_reads(&c, &tree.root().join("abs"), b"deep");
    // `..` after a linked directory leaves the link's target, as the kernel resolves it.
    assert_reads(&c, &tree.root().join("subdir/../inside.txt"), b"in");
}

#[test]
fn symlink_to_file_outside_root_is_not_found() {
    let tree = Tree::new();
    symlink(tree.outside().join("secret"), tree.root().join("leak")).expect("symlink");
    assert_not_found(&tree.confinement(true), &tree.root().join("leak"));
}

#[test]
fn symlinked_directory_pointing_outside_is_not_found() {
    let tree = Tree::new();
    symlink(tree.outside(), tree.root().join("out")).expect("symlink");
    assert_not_found(&tree.confinement(true), &tree.root().join("out/secret"));
}

#[test]
fn relative_dotdot_symlink_escaping_root_is_not_found() {
    let tree = Tree::new();
    symlink("../outside/secret", tree.root().join("up")).expect("symlink");
    symlink("../../outside", tree.root().join("sub/updir")).expect("symlink");
    let c = tree.confinement(true);
    assert_not_found(&c, &tree.root().join("up"));
    assert_not_found(&c, &tree.root().join("sub/updir/secret"));
}

#[test]
fn absolute_link_climbing_out_by_dotdot_is_not_found() {
    let tree = Tree::new();
    // Lexically it starts with the root; resolved, it leaves it.
    symlink(
        tree.root().join("../outside/secret"),
        tree.root().join("climb"),
    )
    .expect("symlink");
    assert_not_found(&tree.confinement(true), &tree.root().join("climb"));
}

#[test]
fn sibling_directory_sharing_the_root_name_prefix_is_outside() {
    let tree = Tree::new();
    let sibling = tree.base().join("root2");
    fs::create_dir(&sibling).expect("mkdir root2");
    fs::write(sibling.join("f"), b"x").expect("write");
    symlink("../root2/f", tree.root().join("sib")).expect("symlink");
    symlink(sibling.join("f"), tree.root().join("abs-sib")).expect("symlink");
    let c = tree.confinement(true);
    assert_not_found(&c, &tree.root().join("sib"));
    assert_not_found(&c, &tree.root().join("abs-sib"));
}

#[test]
fn lexical_dotdot_escaping_root_is_not_found() {
    let tree = Tree::new();
    let path = tree.root().join("../outside/secret");
    assert_not_found(&tree.confinement(true), &path);
    assert_not_found(&tree.confinement(false), &path);
}

#[test]
fn path_not_beneath_root_at_all_is_not_found() {
    let tree = Tree::new();
    let path = tree.outside().join("secret");
    assert_not_found(&tree.confinement(true), &path);
    assert_not_found(&tree.confinement(false), &path);
}

#[test]
fn in_root_symlink_is_refused_without_follow_symlinks() {
    let tree = Tree::new();
    symlink("sub/deep.txt", tree.root().join("link")).expect("symlink");
    symlink("sub", tree.root().join("subdir")).expect("symlink");
    symlink(tree.root().join("inside.txt"), tree.root().join("abs")).expect("symlink");
    let strict = tree.confinement(false);
    assert_not_found(&strict, &tree.root().join("link"));
    assert_not_found(&strict, &tree.root().join("subdir/deep.txt"));
    assert_not_found(&strict, &tree.root().join("abs"));
}

#[test]
fn missing_file_is_not_found() {
    let tree = Tree::new();
    for follow in [true, false] {
        let c = tree.confinement(follow);
        assert_not_found(&c, &tree.root().join("nope"));
        assert_not_found(&c, &tree.root().join("nope/deeper"));
    }
}

#[test]
fn file_used_as_directory_is_not_found() {
    let tree = Tree::new();
    for follow in [true, false] {
        assert_not_found(&tree.confinement(follow), &tree.root().join("inside.txt/x"));
    }
}

#[test]
fn dangling_symlink_is_not_found() {
    let tree = Tree::new();
    symlink("nowhere", tree.root().join("dangling")).expect("symlink");
    assert_not_found(&tree.confinement(true), &tree.root().join("dangling"));
}

#[test]
fn symlink_loop_is_not_found() {
    let tree = Tree::new();
    symlink("b", tree.root().join("a")).expect("symlink");
    symlink("a", tree.root().join("b")).expect("symlink");
    symlink("self/x", tree.root().join("self")).expect("symlink");
    let c = tree.confinement(true);
    assert_not_found(&c, &tree.root().join("a"));
    assert_not_found(&c, &tree.root().join("self"));
}

#[test]
fn link_expansions_are_bounded_like_the_kernels() {
    let tree = Tree::new();
    // link0 -> inside.txt, link{i} -> link{i-1}: opening link{n} expands n + 1 links.
    symlink("inside.txt", tree.root().join("link0")).expect("symlink");
    for i in 1..=walk::MAX_LINK_EXPANSIONS {
        symlink(
            format!("link{}", i - 1),
            tree.root().join(format!("link{i}")),
        )
        .expect("symlink");
    }
    let c = tree.confinement(true);
    let last = walk::MAX_LINK_EXPANSIONS - 1;
    assert_reads(&c, &tree.root().join(format!("link{last}")), b"in");
    let over = walk::MAX_LINK_EXPANSIONS;
    assert_not_found(&c, &tree.root().join(format!("link{over}")));
}

#[test]
fn relative_root_works() {
    let tree = Tree::new();
    let rel_root = relative_to_cwd(&tree.root());
    assert!(rel_root.is_relative());
    for follow in [true, false] {
        let c = Confinement::new(rel_root.clone().into(), follow);
        assert_reads(&c, &rel_root.join("inside.txt"), b"in");
    }
    symlink(tree.root().join("inside.txt"), tree.root().join("abs")).expect("symlink");
    let c = Confinement::new(rel_root.clone().into(), true);
    assert_reads(&c, &rel_root.join("abs"), b"in");
    assert_not_found(&c, &rel_root.join("../outside/secret"));
}

#[test]
fn root_that_is_itself_a_symlink_works() {
    let tree = Tree::new();
    let link_root = tree.base().join("current");
    symlink("root", &link_root).expect("symlink root");
    for follow in [true, false] {
        let c = Confinement::new(link_root.clone().into(), follow);
        assert_reads(&c, &link_root.join("sub/deep.txt"), b"deep");
    }
    symlink(tree.outside(), tree.root().join("out")).expect("symlink");
    // An absolute link is compared with the root's canonical path, not with the link to it.
    symlink(tree.root().join("inside.txt"), tree.root().join("abs")).expect("symlink");
    let c = Confinement::new(link_root.clone().into(), true);
    assert_not_found(&c, &link_root.join("out/secret"));
    assert_reads(&c, &link_root.join("abs"), b"in");
}

#[test]
fn switching_a_symlinked_root_is_seen_by_the_next_open() {
    let tree = Tree::new();
    let v2 = tree.base().join("v2");
    fs::create_dir(&v2).expect("mkdir v2");
    fs::write(v2.join("new.txt"), b"new").expect("write");
    let link_root = tree.base().join("current");
    symlink("root", &link_root).expect("symlink root");
    let c = Confinement::new(link_root.clone().into(), true);
    assert_reads(&c, &link_root.join("inside.txt"), b"in");
    fs::remove_file(&link_root).expect("unlink");
    symlink("v2", &link_root).expect("relink");
    assert_reads(&c, &link_root.join("new.txt"), b"new");
    assert_not_found(&c, &link_root.join("inside.txt"));
}

#[test]
fn missing_root_is_not_found() {
    let tree = Tree::new();
    let c = Confinement::new(tree.base().join("no-root").into(), true);
    assert_not_found(&c, &tree.base().join("no-root/f"));
}

#[test]
fn a_directory_swapped_for_a_link_outside_never_leads_outside() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let tree = Tree::new();
    fs::write(tree.outside().join("deep.txt"), b"secret").expect("write outside deep");
    let sub = tree.root().join("sub");
    let parked = tree.root().join("parked");
    // Both kinds of way out: an absolute link, and a relative one climbing above the root.
    let links = [tree.root().join("abs-out"), tree.root().join("rel-out")];
    symlink(tree.outside(), &links[0]).expect("symlink");
    symlink("../outside", &links[1]).expect("symlink");
    let target = sub.join("deep.txt");
    let confinements = [tree.confinement(true), tree.confinement(false)];
    let stop = AtomicBool::new(false);

    /// Stops the swapper however the opening side ends, a failed assertion included.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    let (inside, refused) = std::thread::scope(|s| {
        let stop_swapping = StopOnDrop(&stop);
        let swapper = s.spawn(|| {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let link = &links[(rounds % 2) as usize];
                // `sub` is a directory, then missing, then a link out, then missing, then a directory again.
                fs::rename(&sub, &parked).expect("park the directory");
                fs::rename(link, &sub).expect("link in its place");
                fs::rename(&sub, link).expect("take the link back");
                fs::rename(&parked, &sub).expect("restore the directory");
                rounds += 1;
            }
            rounds
        });
        let (mut inside, mut refused) = (0u32, 0u32);
        for round in 0..200_000u32 {
            for c in &confinements {
                for way in WAYS {
                    match read(c, way, &target) {
                        Ok(bytes) => {
                            assert_eq!(bytes, b"deep", "{way:?} read through the swapped link");
                            inside += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{way:?}: {e}");
                            refused += 1;
                        }
                    }
                }
            }
            if (round >= 5_000 && inside >= 100 && refused >= 100) || swapper.is_finished() {
                break;
            }
        }
        drop(stop_swapping);
        let rounds = swapper.join().expect("swapper thread");
        assert!(rounds > 0, "the swapper never ran");
        (inside, refused)
    });
    // Both outcomes occurred, so the opens really raced the swaps.
    assert!(
        inside > 0 && refused > 0,
        "inside {inside}, refused {refused}"
    );
}

/// A FIFO whose writer is blocked in `open` until some process opens the read end: if the confinement opened
/// it (even non-blocking, even for a moment), the writer would wake.
#[test]
fn a_fifo_is_refused_without_ever_being_opened() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tree = Tree::new();
    let fifo = tree.root().join("pipe");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::RUSR | Mode::WUSR).expect("mkfifo");
    symlink("pipe", tree.root().join("to-pipe")).expect("symlink");
    let woke = Arc::new(AtomicBool::new(false));
    let writer = {
        let (fifo, woke) = (fifo.clone(), Arc::clone(&woke));
        std::thread::spawn(move || {
            let opened = fs::OpenOptions::new().write(true).open(&fifo);
            woke.store(true, Ordering::SeqCst);
            opened
        })
    };
    // Let the writer reach its blocking open before anything could open the read end.
    std::thread::sleep(std::time::Duration::from_millis(200));
    for follow in [true, false] {
        let c = tree.confinement(follow);
        for way in WAYS {
            for path in [fifo.clone(), tree.root().join("to-pipe")] {
                let e = read(&c, way, &path).expect_err("a FIFO is not served");
                assert_eq!(
                    e.kind(),
                    io::ErrorKind::NotFound,
                    "{way:?} {}",
                    path.display()
                );
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!woke.load(Ordering::SeqCst), "the FIFO was opened");
    // Release the writer: open the read end ourselves.
    let _reader = rustix::fs::open(&fifo, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
        .expect("open the read end");
    writer.join().expect("writer").expect("writer opened");
    assert!(woke.load(Ordering::SeqCst));
}

#[test]
fn a_directory_is_refused_as_a_directory() {
    let tree = Tree::new();
    for follow in [true, false] {
        let c = tree.confinement(follow);
        for way in WAYS {
            for path in [tree.root().join("sub"), tree.root()] {
                let e = read(&c, way, &path).expect_err("a directory is not served");
                assert_eq!(
                    e.kind(),
                    io::ErrorKind::IsADirectory,
                    "{way:?} {}",
                    path.display()
                );
            }
        }
    }
}

/// The status the service answers for an open that failed with `e` (`MmapError::from_io`, as for every open).
fn status_of(e: io::Error) -> http::StatusCode {
    crate::MmapError::from_io(Path::new("/r/f"), e).status_code()
}

#[test]
fn a_system_call_error_is_answered_as_for_an_unconfined_open_but_an_escape() {
    use http::StatusCode;
    // Every errno Linux defines (1..=133): the confined answer is the unconfined one, but for `EXDEV`, with
    // which `RESOLVE_BENEATH` refuses a path leaving the root: that looks like a missing file.
    for errno in 1..=133 {
        let kernel = || io::Error::from_raw_os_error(errno);
        let expected = if Errno::from_raw_os_error(errno) == Errno::XDEV {
            StatusCode::NOT_FOUND
        } else {
            status_of(kernel())
        };
        assert_eq!(
            status_of(confine_error(kernel())),
            expected,
            "errno {errno}"
        );
    }
    // The case that used to differ: retry later (503), whether confined or not.
    let eagain = io::Error::from_raw_os_error(Errno::AGAIN.raw_os_error());
    assert_eq!(
        status_of(confine_error(eagain)),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[test]
fn a_failing_open_beneath_the_root_answers_as_an_unconfined_open_does() {
    let tree = Tree::new();
    symlink("loop", tree.root().join("loop")).expect("symlink");
    let too_long = "n".repeat(256);
    let cases = [
        tree.root().join("missing"),
        tree.root().join("missing/deeper"),
        tree.root().join("inside.txt/x"),
        tree.root().join("sub"),
        tree.root().join(&too_long),
        tree.root().join(format!("sub/{too_long}/x")),
        tree.root().join("loop"),
        // Not a name any file system accepts: the same error as an unconfined open, not a refusal.
        tree.root().join("nul\0byte"),
    ];
    for follow in [true, false] {
        let c = tree.confinement(follow);
        for way in WAYS {
            for path in &cases {
                let unconfined = crate::MmapFile::new(path)
                    .map(drop)
                    .expect_err("no file to serve")
                    .status_code();
                let confined = status_of(read(&c, way, path).expect_err("no file to serve"));
                assert_eq!(confined, unconfined, "{way:?} follow {follow} {path:?}");
            }
        }
    }
}
