//! The watch thread: waits for inotify events (or the stop pipe, or the guard check four times a second) and marks
//! the entries they reach; never takes a lock of the cache's, and never drops an entry while it holds the
//! table (an entry's last reference may be the one it upgraded, and its drop takes the table).

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::linux::Shared;
use super::table::{Effect, Reached};
use crate::cache::store::Counters;
use crate::mmap::map::protection_active;

/// Room for a few hundred events per read (each is 16 bytes and its name).
pub(super) const BUFFER: usize = 16 << 10;

/// How often the thread checks the SIGBUS guard, events or not.
const TICK: Duration = Duration::from_millis(250);

/// The thread's body: returns when `stop`'s other end is closed (the cache was dropped), or on an error, after
/// which every watched file is treated as changed and no new one is watched.
pub(super) fn run(shared: &Shared, inotify: OwnedFd, stop: OwnedFd) {
    let mut guarded = true;
    let mut next_check = Instant::now() + TICK;
    loop {
        let (events, stopped) = {
            let mut fds = [
                PollFd::new(&inotify, PollFlags::IN),
                PollFd::new(&stop, PollFlags::IN),
            ];
            let wait = next_check.saturating_duration_since(Instant::now());
            let wait = Timespec {
                tv_sec: wait.as_secs().try_into().unwrap_or(1),
                tv_nsec: wait.subsec_nanos().into(),
            };
            match poll(&mut fds, Some(&wait)) {
                Ok(_) => (!fds[0].revents().is_empty(), !fds[1].revents().is_empty()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return give_up(shared, e.into()),
            }
        };
        if stopped {
            return;
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + TICK;
            // Mappings made under the guard are replaced once it is gone (new ones are then read with pread),
            // as a timed revalidation would; a watched file is otherwise never revalidated.
            if guarded && !protection_active() {
                guarded = false;
                let mut reached = Reached::default();
                shared
                    .lock()
                    .table
                    .everything_mapped(Effect::Forget, &mut reached);
                apply(shared, reached);
            }
        }
        if !events {
            continue;
        }
        #[cfg(test)]
        if shared.paused.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        // Read and dispatched under the table's lock (see `State::inotify`), applied once it is released.
        let mut reached = Reached::default();
        let applying = shared.applying();
        let read = shared.lock().read_into(&mut reached);
        apply(shared, reached);
        drop(applying);
        if let Err(e) = read {
            return give_up(shared, e);
        }
    }
}

/// Marks each reached entry changed (the next lookup replaces it) and does what its event asks of the file;
/// poisons the mapped files whose bytes changed. Runs with the table released (see [`Reached`]).
pub(super) fn apply(shared: &Shared, reached: Reached) {
    // The inode's bytes changed: its mappings are poisoned, those no entry holds any more included (a
    // response may still be sending one: an in-place change to an inode no longer at the path is a change).
    for file in &reached.changed_files {
        if file.is_shared() {
            file.mark_changed();
        }
    }
    for (_, (entry, effect)) in reached.entries {
        if entry.set_changed() {
            Counters::count(&shared.counters.changes_seen);
        }
        let file = entry.file();
        match effect {
            Effect::Forget => {}
            // One `stat`: poisons the file when the path still names it and it is no longer the version
            // mapped, as a body's final re-check would.
            Effect::Check => {
                let _ = file.still_matches();
            }
            Effect::Poison if file.is_shared() => file.mark_changed(),
            Effect::Poison => {}
        }
    }
}

/// The thread cannot go on: every watched file is treated as changed (each is re-opened, and revalidated by
/// time from then on) and no new one is watched.
fn give_up(shared: &Shared, error: io::Error) {
    tracing::error!(%error, "mmap-serve: the file watch failed; cached files are revalidated by time");
    shared.abandon();
    let mut reached = Reached::default();
    let mut state = shared.lock();
    state
        .table
        .reach(-1, inotify::EventMask::Q_OVERFLOW, None, &mut reached);
    drop(state);
    apply(shared, reached);
}
