//! DirResolver on arbitrary URL paths: never panics, and every file it names lies lexically beneath the root
//! (no `..`, no root or prefix component after it).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use mmap_serve::{DirResolver, Resolution};

fuzz_target!(|input: (&str, bool)| {
    let (path, allow_hidden) = input;
    let resolver = DirResolver::new("/srv/root").allow_hidden(allow_hidden).index_file("index.html");
    if let Resolution::File(file) = resolver.resolve_path(path) {
        let below = file.path.strip_prefix(Path::new("/srv/root")).expect("beneath the root");
        assert!(below.components().all(|c| matches!(c, Component::Normal(_))), "{path:?} -> {:?}", file.path);
    }
});
