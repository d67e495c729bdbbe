//! The change watch: inotify watches on cached files and the directories above them, and the thread that
//! turns their events into marks on entries; no policy (when a watch is trusted is `revalidate.rs`'s), no
//! HTTP, and no removal from the cache (the next lookup of a marked entry replaces it).
//!
//! # What is watched
//!
//! For each cached file under [`Revalidate::Watch`](crate::Revalidate::Watch):
//!
//! - its inode, for `IN_MODIFY` (a write or a truncation: the entry is marked changed and the file poisoned,
//!   so bodies still sending it fail their next per-frame check without a syscall), `IN_ATTRIB` and
//!   `IN_CLOSE_WRITE` (marked changed; poisoned only when the path still names the inode and its identity
//!   moved, which is what a body's final re-check would conclude), `IN_DELETE_SELF` and `IN_MOVE_SELF`.
//!   The inode's watch lasts as long as the mapped file does, not only its entry: the file itself holds its
//!   membership, so while a response still sends a file whose path was renamed over (or whose entry was
//!   evicted), a write or truncation of that inode through a descriptor opened earlier still poisons the
//!   mapping, and the response fails at its next frame. An in-place change to an inode no longer at the
//!   path counts as a change; a stat of the path, which names another file by then, could not see it (a
//!   body's last check sees it too when the file kept its descriptor: one `fstat` of the mapped inode);
//! - its directory, for `IN_CREATE`, `IN_DELETE`, `IN_MOVED_FROM` and `IN_MOVED_TO` of its name: a watch on
//!   the old inode does not see a new file renamed over the path, the supported deploy. The old inode is then
//!   not poisoned: responses begun on it finish from it;
//! - every directory above, for its own move or deletion (`IN_MOVE_SELF`, `IN_DELETE_SELF`), so that a
//!   directory moved or swapped (`mv`, `RENAME_EXCHANGE`) on the path is seen too. Nothing else can change
//!   what such a path names: a directory is renamed over another only when that one is empty, and one on
//!   the way to a cached file is not. Watching only their own moves keeps busy directories such as `/tmp`
//!   from waking the thread for every file made in them.
//!
//! A directory is watched only once its path is known to have no symbolic link on it (`canonicalize`) and to
//! be on a local filesystem (the statfs magic of `mmap/file.rs`); then each directory's watch stands for one
//! path. A path through a symbolic link (a `current -> release-7` deploy), a file that is itself a link, a
//! network or FUSE filesystem, a failure to add a watch (`ENOSPC`: the per-user watch limit,
//! `/proc/sys/fs/inotify/max_user_watches`) or to make the inotify instance (`EMFILE`: `max_user_instances`,
//! 128 by default) leave the file unwatched: it is revalidated by time, and the failure is counted in
//! [`CacheStats::watch_failures`](crate::CacheStats::watch_failures).
//!
//! # What is not seen
//!
//! inotify reports changes made through this kernel's view of the filesystem. Writes from another machine
//! (NFS, SMB, a cluster filesystem: never watched, see above) and writes through a shared writable mapping
//! (reported only at the writer's close, as `IN_CLOSE_WRITE`, if at all) are not seen as they happen. A
//! change made through another mount of the same filesystem (a bind mount, another mount namespace, a
//! container's volume) is reported, since the events belong to the inode; a change of what is *mounted* on
//! the path is not. When the kernel's event queue overflows (`max_queued_events`) every watched file is
//! treated as changed, and every mapped file no entry holds any more (whose lost events may have been writes)
//! is poisoned. Without a watch (timed revalidation, a refused watch) an inode no longer at the path is
//! checked only by the `fstat` of a body's last check, through the descriptor a mapped file keeps within the
//! process's share (`mmap/descriptors.rs`), and not at all for files past that share.
//!
//! # The thread and the delay
//!
//! Each cache that watches has one thread, `mmap-serve-watch`, started with its first watched file and
//! stopped (and joined) when the cache is dropped. It sleeps in `poll(2)` on (a duplicate of) the inotify
//! descriptor and a pipe whose write end the cache holds; it also wakes four times a second to confirm that
//! the SIGBUS guard is still in place (a mapping made while it was is replaced once it is gone, as a timed
//! revalidation would). An event becomes visible as soon as the thread has read it: typically tens of microseconds after the
//! write or rename returns, bounded by how soon the scheduler runs the thread
//! ([`MmapCache::catch_up`](crate::MmapCache::catch_up) reads and applies what is queued on the caller's
//! thread instead, for a process that reads its own writes). A request that races a
//! rename's event is answered wholly from the old inode. One that races an in-place change's event can
//! still pair the old ETag and length with bytes already changed (the mapping shows the page cache as it
//! is): the window is that delay instead of the revalidation interval, and the checks a body makes before
//! its frames close it further. Events are read, and matched to entries, under the table's lock, by the
//! thread or by the lookup adding a watch, which first takes every event already queued: an event goes to the
//! entries that existed when it was read, so a file re-opened once its writer has closed it (the check at
//! open, `mmap/writers.rs`, proves the writer gone, and by then the kernel has queued all its events) is not
//! poisoned by that writer's last `IN_MODIFY`. What neither sees: a write made between the moment a file's
//! identity is taken (at open) and the moment its entry joins the watch, if the inode was already watched (the
//! event is then read for the members of that moment), within the same tick of the filesystem's clock and
//! without changing the length: the `stat` made once the watch is in place then finds the identity unchanged.
//! A writer must open the file after the open's check and write within those microseconds.
//!
//! # Why inotify, and this crate
//!
//! The watch must tell an inode's own changes (which poison in-flight bodies) from a new file appearing at
//! its path (which must not), and it must see each kind at once. The `inotify` crate (0.11, maintained by
//! the inotify-rs project) is a thin, safe wrapper over exactly those system calls: watch descriptors,
//! masks and events as the kernel gives them, a synchronous non-blocking read and no runtime of its own.
//! `notify`, the cross-platform crate built on it, adds its own event thread, debouncing and an event
//! taxonomy that folds these distinctions together, and the cache would still need Linux-specific rules
//! beneath it; elsewhere (kqueue, FSEvents) it offers nothing this policy can rely on, so other platforms
//! fall back to timed revalidation.

#[cfg(target_os = "linux")]
mod table;
#[cfg(all(test, target_os = "linux"))]
mod tests;
#[cfg(target_os = "linux")]
mod thread;

#[cfg(target_os = "linux")]
pub(in crate::cache) use linux::{Registration, Watcher};
#[cfg(not(target_os = "linux"))]
pub(in crate::cache) use other::{Registration, Watcher};

#[cfg(target_os = "linux")]
mod linux {
    use std::fmt;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
    use std::thread::JoinHandle;

    use inotify::{Inotify, WatchMask, Watches};

    use super::table::{FileMember, Member, Table};
    use crate::cache::entry::Entry;
    use crate::cache::store::Counters;
    use crate::mmap::file::on_local_filesystem;
    use crate::mmap::identity::FileIdentity;

    /// What a cached file's inode is watched for.
    const FILE: WatchMask = WatchMask::MODIFY
        .union(WatchMask::ATTRIB)
        .union(WatchMask::CLOSE_WRITE)
        .union(WatchMask::DELETE_SELF)
        .union(WatchMask::MOVE_SELF);

    /// What each directory above a cached file's own directory is watched for.
    const ANCESTOR: WatchMask = WatchMask::DELETE_SELF
        .union(WatchMask::MOVE_SELF)
        .union(WatchMask::ONLYDIR);

    /// What the directory of a cached file is watched for (the watch replaces an [`ANCESTOR`] one).
    const DIR: WatchMask = WatchMask::CREATE
        .union(WatchMask::DELETE)
        .union(WatchMask::MOVED_FROM)
        .union(WatchMask::MOVED_TO)
        .union(WatchMask::DELETE_SELF)
        .union(WatchMask::MOVE_SELF)
        .union(WatchMask::ONLYDIR)
        .union(WatchMask::EXCL_UNLINK);

    /// One cache's watch: the inotify instance's table and the thread that reads its events.
    pub(in crate::cache) struct Watcher {
        shared: Arc<Shared>,
        /// The write end of the thread's stop pipe: dropping it wakes the thread to end.
        stop: Option<OwnedFd>,
        thread: Option<JoinHandle<()>>,
    }

    /// What the cache, its entries and the thread share.
    pub(super) struct Shared {
        state: Mutex<State>,
        /// Held by whoever reads events, from the read until what they reach is applied (taken before
        /// `state`): so once [`Watcher::catch_up`] holds it, no event read earlier is still being applied.
        applying: Mutex<()>,
        pub(super) counters: Arc<Counters>,
        /// Set when the thread ended on an error: no new watch is trusted.
        abandoned: AtomicBool,
        /// A test hook: refuse every new watch, as a full watch limit would.
        #[cfg(test)]
        pub(super) refuse: AtomicBool,
        /// A test hook: the thread leaves events queued, as a thread not yet scheduled would.
        #[cfg(test)]
        pub(super) paused: AtomicBool,
    }

    pub(super) struct State {
        /// Read under this lock only, by the thread and by [`Watcher::watch`] alike: an event is dispatched to
        /// the entries registered when it is read, so a new entry never receives one queued before it joined.
        pub(super) inotify: Inotify,
        pub(super) buffer: Vec<u8>,
        pub(super) watches: Watches,
        pub(super) table: Table,
    }

    /// An entry's watches, held by the entry: dropping it removes the watches nothing else uses.
    pub(in crate::cache) struct Registration {
        shared: Arc<Shared>,
        member: Member,
    }

    /// A mapped file's membership of its inode's watch, held by the file itself (as its attachment) so that
    /// the watch outlives the entry while any response still sends the file: a write to the inode then
    /// poisons it even once the path names another file. Weak: once the cache (and its thread) is gone, no
    /// event is read, and nothing is left to remove.
    struct FileRegistration {
        shared: Weak<Shared>,
        member: FileMember,
    }

    impl Watcher {
        /// Makes the inotify instance and starts the thread.
        ///
        /// # Errors
        ///
        /// When the instance, the pipe or the thread cannot be made (the per-user instance limit, `EMFILE`).
        pub(in crate::cache) fn start(counters: Arc<Counters>) -> io::Result<Self> {
            let inotify = Inotify::init()?;
            // The thread sleeps on a duplicate of the descriptor, reading through the original under the lock.
            let readable = rustix::io::fcntl_dupfd_cloexec(&inotify, 0)?;
            let (wake, stop) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            let shared = Arc::new(Shared {
                state: Mutex::new(State {
                    watches: inotify.watches(),
                    inotify,
                    buffer: vec![0; super::thread::BUFFER],
                    table: Table::default(),
                }),
                applying: Mutex::new(()),
                counters,
                abandoned: AtomicBool::new(false),
                #[cfg(test)]
                refuse: AtomicBool::new(false),
                #[cfg(test)]
                paused: AtomicBool::new(false),
            });
            // The new thread tells when it runs: Rust's start-up of a thread (its signal stack) happens in
            // the thread, and must not meet a later shortage (of address space, say) that the caller of
            // `start` already got past; so `start` returns once the thread is running.
            let (running, started) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name("mmap-serve-watch".into())
                .stack_size(256 << 10)
                .spawn({
                    let shared = Arc::clone(&shared);
                    move || {
                        let _ = running.send(());
                        super::thread::run(&shared, readable, wake);
                    }
                })?;
            let _ = started.recv();
            Ok(Self {
                shared,
                stop: Some(stop),
                thread: Some(thread),
            })
        }

        /// Watches `entry`'s file, cached under `path`; returns whether it is watched (false: the caller
        /// revalidates it by time). Blocking: a few system calls, more for a directory not yet watched.
        ///
        /// The watches are in place before `path` is looked at again, so a change made since the file was
        /// opened is either seen by that look (and the entry marked changed) or reported by an event.
        pub(in crate::cache) fn watch(&self, entry: &Arc<Entry>, path: &Path) -> bool {
            let file = entry.file();
            if self.shared.abandoned.load(Ordering::Relaxed)
                || (file.is_mapped() && !file.checks_inline())
            {
                return false;
            }
            let Ok(path) = std::path::absolute(path) else {
                return false;
            };
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return false;
            };
            let member = {
                let _applying = self.shared.applying();
                let mut state = self.shared.lock();
                #[cfg(test)]
                if self.shared.refuse.load(Ordering::Relaxed) {
                    return false;
                }
                let dir = match state.table.known_dir(parent) {
                    Some(dir) => Some(dir),
                    None => state.watch_dirs(parent),
                };
                let Some(dir) = dir.filter(|&dir| state.watch_names(dir, parent)) else {
                    state.forget_unused_dirs();
                    return false;
                };
                let file_wd = match state.watches.add(&path, FILE) {
                    Ok(wd) => wd,
                    Err(_) => {
                        state.forget_unused_dirs();
                        return false;
                    }
                };
                // The path as it is now, the watches in place: a link (whose target's directory is not watched)
                // is not followed; anything else that differs from the file opened is a change.
                let now = std::fs::symlink_metadata(&path);
                if now.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
                    if let Some(unused) = state.table.drop_unused_file(&file_wd) {
                        let _ = state.watches.remove(unused);
                    }
                    state.forget_unused_dirs();
                    return false;
                }
                // Every event queued so far (a writer's last writes and its close, all queued before the
                // lease proved it gone) goes to the entries already registered, not to this one.
                let earlier = state.read_queued();
                let member = state.table.add_member(entry, file_wd.clone(), dir, name);
                let mapped = file
                    .is_shared()
                    .then(|| state.table.add_file(&file_wd, file));
                drop(state);
                super::thread::apply(&self.shared, earlier);
                if let Some(member) = mapped {
                    // Made with the entry, and an MmapFile has one entry: the first attachment. (Were it not,
                    // the refused one would be dropped here, with the table released, as its drop needs.)
                    let _ = file.attach(Box::new(FileRegistration {
                        shared: Arc::downgrade(&self.shared),
                        member,
                    }));
                }
                let changed = match &now {
                    Ok(m) => {
                        let in_place =
                            (m.dev(), m.ino()) == (file.identity().dev(), file.identity().ino());
                        if in_place && FileIdentity::from_metadata(m) != *file.identity() {
                            // Rewritten or truncated in place since it was opened: like an IN_MODIFY.
                            if file.is_shared() {
                                file.mark_changed();
                            }
                        }
                        FileIdentity::from_metadata(m) != *file.identity()
                    }
                    Err(_) => true, // deleted since: the next lookup finds out
                };
                if changed && entry.set_changed() {
                    Counters::count(&self.shared.counters.changes_seen);
                }
                member
            };
            entry.set_watched(Registration {
                shared: Arc::clone(&self.shared),
                member,
            });
            true
        }

        /// Reads every event queued now and applies it, here and now (see [`MmapCache::catch_up`]).
        ///
        /// [`MmapCache::catch_up`]: crate::MmapCache::catch_up
        pub(in crate::cache) fn catch_up(&self) {
            let _applying = self.shared.applying();
            let earlier = self.shared.lock().read_queued();
            super::thread::apply(&self.shared, earlier);
        }

        /// A test's view of the shared state, to see that it is freed with the cache.
        #[cfg(test)]
        pub(super) fn shared(&self) -> &Arc<Shared> {
            &self.shared
        }
    }

    impl Shared {
        pub(super) fn lock(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// The right to read events and apply them: see the `applying` field.
        pub(super) fn applying(&self) -> MutexGuard<'_, ()> {
            self.applying.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// The thread ended: no watch is trusted any more.
        pub(super) fn abandon(&self) {
            self.abandoned.store(true, Ordering::Relaxed);
        }
    }

    impl State {
        /// Reads every event queued now and finds what each reaches, without blocking; a read error is left
        /// for the thread, which meets it too. The caller applies what is returned once the lock is released.
        pub(super) fn read_queued(&mut self) -> super::table::Reached {
            let mut reached = super::table::Reached::default();
            let _ = self.read_into(&mut reached);
            reached
        }

        /// As [`read_queued`](Self::read_queued), into `reached`; the thread's read, which reports errors.
        pub(super) fn read_into(&mut self, reached: &mut super::table::Reached) -> io::Result<()> {
            let Self {
                inotify,
                buffer,
                table,
                ..
            } = self;
            loop {
                match inotify.read_events(buffer) {
                    Ok(events) => {
                        for event in events {
                            let wd = event.wd.get_watch_descriptor_id();
                            table.reach(wd, event.mask, event.name, reached);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }

        /// Watches `parent` and each directory above it not yet watched; returns `parent`'s number, or None
        /// when the path has a symbolic link (or `..`) on it, is not on a local filesystem, or a watch
        /// cannot be added.
        fn watch_dirs(&mut self, parent: &Path) -> Option<i32> {
            // Once per directory: with no link on the way, each directory's watch stands for its path.
            if std::fs::canonicalize(parent).ok()? != parent {
                return None;
            }
            if !on_local_filesystem(&std::fs::File::open(parent).ok()?) {
                return None;
            }
            let mut unknown = Vec::new();
            let mut above = None;
            for dir in parent.ancestors() {
                if let Some(known) = self.table.known_dir(dir) {
                    above = Some(known);
                    break;
                }
                unknown.push(dir);
            }
            for dir in unknown.into_iter().rev() {
                let for_names = dir == parent;
                let mask = if for_names { DIR } else { ANCESTOR };
                let wd = self.watches.add(dir, mask).ok()?;
                above = Some(self.table.add_dir(wd, dir, above, for_names)?);
            }
            above
        }

        /// Makes sure the directory numbered `dir` (at `path`) is watched for the events about its names; a
        /// directory first watched as another file's ancestor is not yet. Returns whether it is.
        fn watch_names(&mut self, dir: i32, path: &Path) -> bool {
            if self.table.watches_names(dir) {
                return true;
            }
            match self.watches.add(path, DIR) {
                Ok(wd) if wd.get_watch_descriptor_id() == dir => {
                    self.table.set_watches_names(dir);
                    true
                }
                _ => false,
            }
        }

        fn forget_unused_dirs(&mut self) {
            for unused in self.table.drop_unused_dirs() {
                let _ = self.watches.remove(unused);
            }
        }
    }

    impl Drop for Watcher {
        fn drop(&mut self) {
            drop(self.stop.take());
            if let Some(thread) = self.thread.take() {
                // The thread wakes at once on the closed pipe; it holds no lock of the cache's.
                let _ = thread.join();
            }
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            let mut state = self.shared.lock();
            for unused in state.table.remove_member(&self.member) {
                // Fails only for a watch the kernel already dropped.
                let _ = state.watches.remove(unused);
            }
        }
    }

    impl Drop for FileRegistration {
        fn drop(&mut self) {
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            let mut state = shared.lock();
            if let Some(unused) = state.table.remove_file(&self.member) {
                let _ = state.watches.remove(unused);
            }
        }
    }

    impl fmt::Debug for Watcher {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Watcher").finish_non_exhaustive()
        }
    }

    impl fmt::Debug for Registration {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Registration")
                .field("member", &self.member)
                .finish_non_exhaustive()
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use std::io;
    use std::path::Path;
    use std::sync::Arc;

    use crate::cache::entry::Entry;
    use crate::cache::store::Counters;

    /// No watch on this platform: every file is revalidated by time.
    #[derive(Debug)]
    pub(in crate::cache) struct Watcher;

    /// Never made on this platform.
    #[derive(Debug)]
    pub(in crate::cache) struct Registration;

    impl Watcher {
        pub(in crate::cache) fn start(_: Arc<Counters>) -> io::Result<Self> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }

        pub(in crate::cache) fn watch(&self, _: &Arc<Entry>, _: &Path) -> bool {
            false
        }

        pub(in crate::cache) fn catch_up(&self) {}
    }
}
