//! The watch's bookkeeping: which cached entries (and which mapped files, for as long as they live) each inotify
//! watch stands for, and which of them an event reaches; no system calls (the caller adds and removes the
//! watches) and no policy.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use inotify::{EventMask, WatchDescriptor};

use crate::cache::entry::Entry;
use crate::mmap::file::MmapFile;

/// Entries by their address (stable while they live; each is removed before it is freed).
type Members = Few<Weak<Entry>>;

/// A few values by id, in a vector: a file's watch and its name stand for one entry and one mapped file nearly
/// always, and a `HashMap` would allocate a table of four buckets for each. Measured with massif on `serve`
/// with 3,000 cached files: the watch's maps took 570 of the 1,850 heap bytes each file cost; as vectors, the
/// process held 27.5 instead of 31.9 MiB of RssAnon with 16,384 cached files (mapped, each requested once).
#[derive(Debug)]
struct Few<V>(Vec<(usize, V)>);

impl<V> Default for Few<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> Few<V> {
    fn insert(&mut self, id: usize, value: V) {
        match self.0.iter_mut().find(|(at, _)| *at == id) {
            Some(slot) => slot.1 = value,
            None => {
                // Room for exactly one more: most never hold a second.
                self.0.reserve_exact(1);
                self.0.push((id, value));
            }
        }
    }

    fn remove(&mut self, id: &usize) {
        if let Some(at) = self.0.iter().position(|(of, _)| of == id) {
            self.0.swap_remove(at);
        }
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, value)| value)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every watch of one cache, by watch descriptor number.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// Watches on the inodes of cached files (one per inode, shared by hard links).
    files: HashMap<i32, FileWatch>,
    /// Watches on directories: each cached file's parent and every directory above it.
    dirs: HashMap<i32, DirWatch>,
    /// The directories whose path is known to name the watched directory (no symbolic link on the way, not
    /// moved since), so that a miss beneath one adds only its file's watch.
    known: HashMap<PathBuf, i32>,
}

#[derive(Debug)]
struct FileWatch {
    wd: WatchDescriptor,
    entries: Members,
    /// The mapped files of this inode, by address, for as long as each lives: a response may still be sending
    /// one whose entry is gone (the path renamed over, the entry evicted), and a write to the inode must
    /// still fail it. The watch stays while an entry or a file uses it.
    files: Few<Weak<MmapFile>>,
    /// The kernel dropped the watch (IN_IGNORED): nothing to remove.
    dead: bool,
}

impl FileWatch {
    fn is_unused(&self) -> bool {
        self.entries.is_empty() && self.files.is_empty()
    }
}

#[derive(Debug)]
struct DirWatch {
    wd: WatchDescriptor,
    path: PathBuf,
    /// This directory's number, then its parent's, up to `/`.
    chain: Vec<i32>,
    /// The cached files directly in this directory, by name.
    names: HashMap<OsString, Members>,
    /// How many cached files are in or beneath it.
    users: usize,
    /// Watched for the events about its names (it holds cached files), not only for its own move.
    for_names: bool,
    dead: bool,
}

/// One entry's place in the table, kept by the entry's registration until it is dropped.
#[derive(Debug)]
pub(super) struct Member {
    id: usize,
    file: i32,
    dir: i32,
    name: OsString,
}

/// One mapped file's place in the table, kept by the file (through the watch's registration) until it is freed.
#[derive(Debug)]
pub(super) struct FileMember {
    id: usize,
    file: i32,
}

/// What an event asks of an entry it reaches, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Effect {
    /// The path changed (a rename over it, a delete, a move): the entry is stale, its inode intact.
    Forget,
    /// The inode's metadata changed: stale, and poisoned if the path still names it and it is no longer the
    /// version mapped (the final re-check of a body would say the same).
    Check,
    /// The inode's bytes or length changed: stale and poisoned.
    Poison,
}

/// What one batch of events reached: the entries, each with the strongest effect asked of it, and the mapped
/// files whose bytes changed, whether or not an entry still holds them. Dropped only once the table is no
/// longer held: a reference upgraded here may be the last one, and its drop takes the table.
#[derive(Debug, Default)]
pub(super) struct Reached {
    pub(super) entries: HashMap<usize, (Arc<Entry>, Effect)>,
    pub(super) changed_files: Vec<Arc<MmapFile>>,
}

/// The inode events a cached file is watched for.
pub(super) fn file_effect(mask: EventMask) -> Option<Effect> {
    if mask.contains(EventMask::MODIFY) {
        Some(Effect::Poison)
    } else if mask.intersects(EventMask::ATTRIB | EventMask::CLOSE_WRITE) {
        Some(Effect::Check)
    } else if mask.intersects(
        EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED | EventMask::UNMOUNT,
    ) {
        Some(Effect::Forget)
    } else {
        None
    }
}

/// Whether a directory event is about the directory itself (moved, deleted, unmounted).
fn is_about_itself(mask: EventMask) -> bool {
    mask.intersects(
        EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED | EventMask::UNMOUNT,
    )
}

/// Whether a directory event is about one of its names (created, deleted, moved in or out).
fn is_about_a_name(mask: EventMask) -> bool {
    mask.intersects(
        EventMask::CREATE | EventMask::DELETE | EventMask::MOVED_FROM | EventMask::MOVED_TO,
    )
}

impl Table {
    /// The number of the watched directory that `path` is known to name.
    pub(super) fn known_dir(&self, path: &Path) -> Option<i32> {
        self.known.get(path).copied()
    }

    /// Whether the directory numbered `dir` is watched for the events about its names.
    pub(super) fn watches_names(&self, dir: i32) -> bool {
        self.dirs.get(&dir).is_some_and(|d| d.for_names)
    }

    /// Records that the directory numbered `dir` is now watched for the events about its names.
    pub(super) fn set_watches_names(&mut self, dir: i32) {
        if let Some(d) = self.dirs.get_mut(&dir) {
            d.for_names = true;
        }
    }

    /// Records the watch `wd` of the directory `path` (for the events about its names when `for_names`),
    /// whose parent's watch is `parent` (None for `/`), and returns its number; None when `wd` already
    /// watches the directory under another path (it was moved since, or is reached by two paths), which this
    /// table does not follow.
    pub(super) fn add_dir(
        &mut self,
        wd: WatchDescriptor,
        path: &Path,
        parent: Option<i32>,
        for_names: bool,
    ) -> Option<i32> {
        let id = wd.get_watch_descriptor_id();
        let mut chain = vec![id];
        if let Some(parent) = parent {
            chain.extend_from_slice(&self.dirs.get(&parent)?.chain);
        }
        match self.dirs.entry(id) {
            Slot::Occupied(dir) if dir.get().path != path || dir.get().dead => return None,
            Slot::Occupied(mut dir) => dir.get_mut().for_names |= for_names,
            Slot::Vacant(slot) => {
                slot.insert(DirWatch {
                    wd,
                    path: path.to_path_buf(),
                    chain,
                    names: HashMap::new(),
                    users: 0,
                    for_names,
                    dead: false,
                });
            }
        }
        self.known.insert(path.to_path_buf(), id);
        Some(id)
    }

    /// Records that `entry`, named `name` in the watched directory `dir`, is watched through `file`.
    pub(super) fn add_member(
        &mut self,
        entry: &Arc<Entry>,
        file: WatchDescriptor,
        dir: i32,
        name: &OsStr,
    ) -> Member {
        let id = Arc::as_ptr(entry) as usize;
        let weak = Arc::downgrade(entry);
        let file_id = file.get_watch_descriptor_id();
        let watch = self.files.entry(file_id).or_insert_with(|| FileWatch {
            wd: file,
            entries: Members::default(),
            files: Few::default(),
            dead: false,
        });
        watch.entries.insert(id, weak.clone());
        let chain = match self.dirs.get_mut(&dir) {
            Some(parent) => {
                parent
                    .names
                    .entry(name.to_os_string())
                    .or_default()
                    .insert(id, weak);
                parent.chain.clone()
            }
            None => Vec::new(),
        };
        for up in chain {
            if let Some(d) = self.dirs.get_mut(&up) {
                d.users += 1;
            }
        }
        Member {
            id,
            file: file_id,
            dir,
            name: name.to_os_string(),
        }
    }

    /// Records that `file`, mapped from the inode watched through `file_wd` (already recorded by
    /// [`add_member`](Self::add_member)), is reached by that inode's changes for as long as it lives.
    pub(super) fn add_file(
        &mut self,
        file_wd: &WatchDescriptor,
        file: &Arc<MmapFile>,
    ) -> FileMember {
        let id = Arc::as_ptr(file) as usize;
        let wd = file_wd.get_watch_descriptor_id();
        if let Some(watch) = self.files.get_mut(&wd) {
            watch.files.insert(id, Arc::downgrade(file));
        }
        FileMember { id, file: wd }
    }

    /// Forgets the mapped file `member` (it is being freed); returns the watch if nothing uses it any more.
    pub(super) fn remove_file(&mut self, member: &FileMember) -> Option<WatchDescriptor> {
        let Slot::Occupied(mut watch) = self.files.entry(member.file) else {
            return None;
        };
        watch.get_mut().files.remove(&member.id);
        if !watch.get().is_unused() {
            return None;
        }
        let watch = watch.remove();
        (!watch.dead).then_some(watch.wd)
    }

    /// Forgets `member`; returns the watches nothing uses any more, for the caller to remove.
    pub(super) fn remove_member(&mut self, member: &Member) -> Vec<WatchDescriptor> {
        let mut unused = Vec::new();
        if let Slot::Occupied(mut watch) = self.files.entry(member.file) {
            watch.get_mut().entries.remove(&member.id);
            if watch.get().is_unused() {
                let watch = watch.remove();
                if !watch.dead {
                    unused.push(watch.wd);
                }
            }
        }
        let chain = match self.dirs.get_mut(&member.dir) {
            Some(parent) => {
                if let Some(named) = parent.names.get_mut(&member.name) {
                    named.remove(&member.id);
                    if named.is_empty() {
                        parent.names.remove(&member.name);
                    }
                }
                parent.chain.clone()
            }
            None => Vec::new(),
        };
        for up in chain {
            let Slot::Occupied(mut dir) = self.dirs.entry(up) else {
                continue;
            };
            dir.get_mut().users = dir.get().users.saturating_sub(1);
            if dir.get().users == 0 {
                let dir = dir.remove();
                if self.known.get(&dir.path) == Some(&up) {
                    self.known.remove(&dir.path);
                }
                if !dir.dead {
                    unused.push(dir.wd);
                }
            }
        }
        unused
    }

    /// Forgets the file watch `file` when no entry uses it (a watch added for a lookup that then failed);
    /// returns it for the caller to remove.
    pub(super) fn drop_unused_file(&mut self, file: &WatchDescriptor) -> Option<WatchDescriptor> {
        let used = self
            .files
            .get(&file.get_watch_descriptor_id())
            .is_some_and(|w| !w.is_unused());
        (!used).then(|| file.clone())
    }

    /// Forgets the directories no cached file is in or beneath (watches added for a lookup that then failed);
    /// returns their watches.
    pub(super) fn drop_unused_dirs(&mut self) -> Vec<WatchDescriptor> {
        let unused: Vec<i32> = self
            .dirs
            .iter()
            .filter(|(_, d)| d.users == 0)
            .map(|(&id, _)| id)
            .collect();
        let mut watches = Vec::new();
        for id in unused {
            if let Some(dir) = self.dirs.remove(&id) {
                if self.known.get(&dir.path) == Some(&id) {
                    self.known.remove(&dir.path);
                }
                if !dir.dead {
                    watches.push(dir.wd);
                }
            }
        }
        watches
    }

    /// Adds to `reached` the entries the event (`mask`, on the watch numbered `wd`, about `name`) reaches.
    pub(super) fn reach(
        &mut self,
        wd: i32,
        mask: EventMask,
        name: Option<&OsStr>,
        reached: &mut Reached,
    ) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            // Events were lost: every file may have changed, and every directory may have moved.
            self.known.clear();
            self.everything(Effect::Check, reached);
            return;
        }
        if let Some(watch) = self.files.get_mut(&wd) {
            if let Some(effect) = file_effect(mask) {
                add(reached, &watch.entries, effect);
                if effect == Effect::Poison {
                    // The inode's bytes changed: every mapping of it, at the path or no longer.
                    reached
                        .changed_files
                        .extend(watch.files.values().filter_map(Weak::upgrade));
                }
            }
            watch.dead |= mask.contains(EventMask::IGNORED);
            return;
        }
        let Some(dir) = self.dirs.get_mut(&wd) else {
            return; // a watch removed a moment ago
        };
        dir.dead |= mask.contains(EventMask::IGNORED);
        if is_about_itself(mask) {
            let path = dir.path.clone();
            self.beneath(&path, reached);
        } else if let Some(name) = name.filter(|_| is_about_a_name(mask)) {
            if let Some(named) = dir.names.get(name) {
                add(reached, named, Effect::Forget);
            }
            // A directory on the way to cached files, replaced, moved or deleted.
            let child = dir.path.join(name);
            if self.known.contains_key(&child) {
                self.beneath(&child, reached);
            }
        }
    }

    /// Adds every entry of a memory-mapped file to `reached` with `effect`.
    pub(super) fn everything_mapped(&self, effect: Effect, reached: &mut Reached) {
        for watch in self.files.values() {
            for weak in watch.entries.values() {
                if let Some(entry) = weak.upgrade().filter(|e| e.file().is_mapped()) {
                    push(reached, entry, effect);
                }
            }
        }
    }

    /// Every entry, with `effect`; and, since what the lost events said is unknown, every mapped file no entry
    /// holds any more, as changed (an entry's file is checked through the entry, against its path; one no
    /// longer at its path cannot be checked).
    fn everything(&self, effect: Effect, reached: &mut Reached) {
        for watch in self.files.values() {
            add(reached, &watch.entries, effect);
            let held: Vec<Arc<Entry>> = watch.entries.values().filter_map(Weak::upgrade).collect();
            for file in watch.files.values().filter_map(Weak::upgrade) {
                if !held.iter().any(|e| Arc::ptr_eq(e.file(), &file)) {
                    reached.changed_files.push(file);
                }
            }
            // `held` is dropped here, under the table: `reached` holds each of these entries too.
            drop(held);
        }
    }

    /// Every file in or beneath `path`, forgotten; the directories there must be verified again.
    fn beneath(&mut self, path: &Path, reached: &mut Reached) {
        for dir in self.dirs.values() {
            if dir.path.starts_with(path) {
                for named in dir.names.values() {
                    add(reached, named, Effect::Forget);
                }
            }
        }
        self.known.retain(|known, _| !known.starts_with(path));
    }

    /// The number of directories and of files watched, for tests.
    #[cfg(test)]
    pub(super) fn counts(&self) -> (usize, usize) {
        (self.dirs.len(), self.files.len())
    }
}

fn add(reached: &mut Reached, members: &Members, effect: Effect) {
    for weak in members.values() {
        if let Some(entry) = weak.upgrade() {
            push(reached, entry, effect);
        }
    }
}

fn push(reached: &mut Reached, entry: Arc<Entry>, effect: Effect) {
    let slot = reached
        .entries
        .entry(Arc::as_ptr(&entry) as usize)
        .or_insert((entry, effect));
    slot.1 = slot.1.max(effect);
}
