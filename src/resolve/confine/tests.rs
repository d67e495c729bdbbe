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
