//! The bring-in queue and the threads that drain it: cold frames wait here and are brought in in batches; no
//! decision of which frames are cold (the body's), and no system call but those of `mmap::residency` and
//! the threads' own spawning and parking.
//!
//! # Why batches on a few threads, not a blocking task per frame
//!
//! A drainer takes every frame waiting (up to [`BATCH`] asked for at once), asks for all of them
//! (`MADV_WILLNEED` on each, which only queues the reads), then waits for the oldest (`MADV_POPULATE_READ`)
//! and hands it back, and goes round again: frames that arrived meanwhile are asked for after each wait. The
//! disk sees as many reads at once as it would from as many threads, but the process pays no thread wake-up
//! per frame, and the block layer submits reads asked for together at once (on this machine's virtual disk,
//! one doorbell to the host instead of one per read). Measured with the C3 workload of `bench/cold.sh` by
//! hand (64 connections of random 4 KiB ranges of an evicted 4 GiB file, `serve --threads 2` on one core, 8 s
//! runs, alternating): a Tokio blocking task per frame (the design before this one) served 30,700-32,300
//! requests/s at 6.6-7.6 us of user and 23-24 us of system CPU per request; one drainer 51,000-55,000 at
//! 3.6-3.9 and 10-11 us; nginx with `aio threads` 39,100-41,500 at 3.1-3.8 and 20-22 us. More drainers
//! sharing the same frames did worse (a prototype taking whole batches: 49,700 on one drainer, 33,800 on
//! four), since each took smaller batches. So one drainer serves the process, and another starts (up to
//! [`MAX_DRAINERS`]) only when more than a batch waits, or when frames wait or are asked for while no
//! drainer has gone round for [`STALLED`] (all are waiting for slow reads); those extra drainers end once
//! nothing waits or is asked for. The stall rule is looked at when a frame arrives, and by a watch thread
//! every [`STALLED`] while frames wait or are asked for and no drainer is parked, so a frame that arrives
//! just after every drainer got stuck waits about twice [`STALLED`] at most for a new one to take it,
//! whatever else arrives, unless all [`MAX_DRAINERS`] are stuck (then it waits for the first of them to go
//! round). The watch parks untimed while nothing waits: a process whose frames are resident pays nothing for
//! it, one bringing frames in pays up to 200 wake-ups a second.
//!
//! The frames asked for and not yet waited for are the queue's, not one drainer's: a slow read holds back
//! only the drainer waiting for it, and a drainer started while it is stuck waits for the frames asked for
//! after it (measured on C3 by hand, three alternating 8 s runs each: 49,900-50,800 requests/s with the
//! frames a drainer's own, 49,700-50,600 shared). After any wait longer than [`SLOW_WAIT`] the frames asked
//! for are looked at (`mincore`) and those already in are handed back before the drainer waits again. A
//! frame whose receiver is gone (its response was dropped: the client left) before a drainer takes it is
//! not asked for; one dropped after is not waited for.
//!
//! Drainers are plain threads of their own, not Tokio blocking tasks: they serve every runtime of the
//! process, and a runtime shutting down cannot drop a drainer that frames of another runtime wait on. An idle
//! drainer, and the watch with nothing to watch, exit after [`IDLE`].

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::mmap::map::Mapping;
use crate::mmap::residency::Residency;

/// The most frames asked for of the disk that no drainer waits for yet: 64 (an NVMe drive reaches
/// its random-read peak at a queue depth of 32 to 64, a SATA SSD at 32, a virtual disk sooner).
const BATCH: usize = 64;

/// The most drainer threads at once: 4.
const MAX_DRAINERS: usize = 4;

/// How long no drainer may go round while frames wait before another one is started: 5 ms, several times
/// a round's wait on a solid-state disk.
const STALLED: Duration = Duration::from_millis(5);

/// A round's wait after which the other frames in flight are looked at before the next wait: 1 ms.
const SLOW_WAIT: Duration = Duration::from_millis(1);

/// How long a drainer with nothing to do waits before it exits: 10 s, as Tokio's blocking threads.
const IDLE: Duration = Duration::from_secs(10);

/// A cold frame waiting to be brought in, and where its result goes.
struct Waiting {
    mapping: Arc<Mapping>,
    frame: Bytes,
    tail: usize,
    /// Bytes after the tail to ask for as well, without waiting for them (the body's next frames).
    ahead: usize,
    /// Where the frame goes once in; none for bytes only to be asked for ([`ask`]).
    done: Option<oneshot::Sender<io::Result<Bytes>>>,
}

struct Queue {
    /// Frames not yet asked for.
    waiting: VecDeque<Waiting>,
    /// Frames asked for (`MADV_WILLNEED`), oldest first, that no drainer waits for yet.
    asked: VecDeque<Waiting>,
    /// Frames asked for that a drainer has taken out of `asked` to see which are in (`hand_back_those_in`).
    checking: usize,
    /// Drainer threads alive.
    drainers: usize,
    /// Drainers parked on [`WORK`] for want of frames.
    idle: usize,
    /// When a drainer last went round (took what had arrived, before its next wait): the drainers are all
    /// stuck on reads when this is old while frames wait.
    last_round: Option<Instant>,
    watch: Watch,
}

/// What the watch thread is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// None runs.
    Gone,
    /// Parked until a frame waits, or is asked for, with no drainer parked.
    Parked,
    /// Looking at the stall rule every [`STALLED`] while frames wait or are asked for.
    Timing,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    waiting: VecDeque::new(),
    asked: VecDeque::new(),
    checking: 0,
    drainers: 0,
    idle: 0,
    last_round: None,
    watch: Watch::Gone,
});

/// Wakes a parked drainer when frames arrive.
static WORK: Condvar = Condvar::new();

/// Wakes the parked watch thread when frames wait with no drainer parked.
static WATCHED: Condvar = Condvar::new();

fn queue() -> MutexGuard<'static, Queue> {
    // Nothing is left half-done under the lock: a panic elsewhere leaves the queue usable.
    QUEUE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Queues `frame`, a slice of `mapping`, and the `tail` bytes after it to be brought in, and the `ahead`
/// bytes after those to be asked for; the receiver yields the frame once its pages are in memory.
pub(super) fn submit(
    mapping: Arc<Mapping>,
    frame: Bytes,
    tail: usize,
    ahead: usize,
) -> oneshot::Receiver<io::Result<Bytes>> {
    let (done, result) = oneshot::channel();
    push(Waiting {
        mapping,
        frame,
        tail,
        ahead,
        done: Some(done),
    });
    result
}

/// Queues `bytes`, a slice of `mapping`, to be asked for and not waited for.
pub(super) fn ask(mapping: Arc<Mapping>, bytes: Bytes) {
    push(Waiting {
        mapping,
        frame: bytes,
        tail: 0,
        ahead: 0,
        done: None,
    });
}

/// Queues a frame whose receiver is already gone, as a response dropped before its frame was taken.
#[cfg(test)]
pub(super) fn submit_abandoned(mapping: Arc<Mapping>, frame: Bytes) {
    let (done, result) = oneshot::channel();
    drop(result);
    push(Waiting {
        mapping,
        frame,
        tail: 0,
        ahead: 0,
        done: Some(done),
    });
}

/// Queues `frames`, slices of `mapping`, all at once, so that the drainer that takes one takes all (while
/// fewer than [`BATCH`] are asked for).
#[cfg(test)]
pub(super) fn submit_together(
    mapping: &Arc<Mapping>,
    frames: Vec<Bytes>,
) -> Vec<oneshot::Receiver<io::Result<Bytes>>> {
    let mut queue = queue();
    let mut results = Vec::new();
    for frame in frames {
        let (done, result) = oneshot::channel();
        queue.waiting.push_back(Waiting {
            mapping: Arc::clone(mapping),
            frame,
            tail: 0,
            ahead: 0,
            done: Some(done),
        });
        results.push(result);
    }
    see_taken(queue);
    results
}

/// Queues `waiting` and sees that a drainer will take it.
fn push(waiting: Waiting) {
    let mut queue = queue();
    queue.waiting.push_back(waiting);
    see_taken(queue);
}

/// Sees that a drainer will take the frames just queued: a parked one, a new one, or one the watch starts.
fn see_taken(queue: MutexGuard<'static, Queue>) {
    if queue.idle > 0 {
        WORK.notify_one();
    } else if wants_another(&queue, Instant::now()) {
        start_drainer(queue);
    } else {
        arm_watch(queue);
    }
}

/// Sees that the watch looks at the frames waiting, none of whose drainers is parked: wakes it when it is
/// parked, starts it when there is none.
fn arm_watch(mut queue: MutexGuard<'static, Queue>) {
    match queue.watch {
        Watch::Timing => {}
        Watch::Parked => {
            queue.watch = Watch::Timing;
            WATCHED.notify_one();
        }
        Watch::Gone => start_watch(queue),
    }
}

/// Gives a drainer's place back; the last one out also forgets when a drainer last went round, so that the
/// first frames of the next burst do not take a new drainer's start for a stall.
fn leave(queue: &mut Queue) {
    queue.drainers -= 1;
    if queue.drainers == 0 {
        queue.last_round = None;
    }
}

/// Whether the drainers, none of them idle, should get one more for the frames waiting or asked for: there
/// are none, or fewer than [`MAX_DRAINERS`] and either more than a batch waits or none of them has gone
/// round for [`STALLED`] (each is waiting for a slow read).
fn wants_another(queue: &Queue, now: Instant) -> bool {
    let stuck = queue
        .last_round
        .is_some_and(|round| now.duration_since(round) >= STALLED);
    let pending = !queue.waiting.is_empty() || !queue.asked.is_empty();
    pending
        && (queue.drainers == 0
            || (queue.drainers < MAX_DRAINERS && (queue.waiting.len() > BATCH || stuck)))
}

/// Starts one more drainer (counted under `queue`'s lock, released before the thread is spawned). When no
/// thread can be started and none runs, the frames waiting are brought in on the calling thread instead
/// (blocking it: there is no other way left to answer them).
fn start_drainer(mut queue: MutexGuard<'static, Queue>) {
    queue.drainers += 1;
    drop(queue);
    let spawned = std::thread::Builder::new()
        .name("mmap-serve-bring-in".into())
        .spawn(drain);
    if spawned.is_err() {
        let mut queue = self::queue();
        leave(&mut queue);
        if queue.drainers == 0 {
            // Frames asked for are left by a drainer that panicked.
            let asked: Vec<Waiting> = queue.asked.drain(..).collect();
            let stranded: Vec<Waiting> = queue.waiting.drain(..).collect();
            drop(queue);
            for waiting in asked {
                waiting.finish(true);
            }
            for waiting in stranded {
                waiting.finish(false);
            }
        } else if !queue.waiting.is_empty() {
            // The drainers there are take them; the watch starts another once they are all stuck.
            arm_watch(queue);
        }
    }
}

/// Starts the watch thread, timing at once. When it cannot be started, frames are left to the stall rule
/// on arrivals and rounds alone, and the next frame that waits tries again.
fn start_watch(mut queue: MutexGuard<'static, Queue>) {
    queue.watch = Watch::Timing;
    drop(queue);
    let spawned = std::thread::Builder::new()
        .name("mmap-serve-bring-in-watch".into())
        .spawn(watch);
    if spawned.is_err() {
        self::queue().watch = Watch::Gone;
    }
}

/// The watch's life: while frames wait and no drainer is parked it looks at the stall rule every
/// [`STALLED`] and starts a drainer when it holds; once nothing waits it parks until something does, and
/// exits after [`IDLE`] parked.
fn watch() {
    let _watching = Watching;
    let mut queue = queue();
    loop {
        if queue.watch == Watch::Timing {
            queue = WATCHED
                .wait_timeout(queue, STALLED)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            if queue.waiting.is_empty() && queue.asked.is_empty() {
                queue.watch = Watch::Parked;
            } else if queue.idle == 0 && wants_another(&queue, Instant::now()) {
                start_drainer(queue);
                queue = self::queue();
            }
        } else {
            let (parked, timeout) = WATCHED
                .wait_timeout_while(queue, IDLE, |q| q.watch == Watch::Parked)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue = parked;
            if timeout.timed_out() && queue.watch == Watch::Parked {
                queue.watch = Watch::Gone;
                return;
            }
        }
    }
}

/// The watch's mark in [`Queue::watch`], taken down should the watch panic, so that the next frame that
/// waits starts another.
struct Watching;

impl Drop for Watching {
    fn drop(&mut self) {
        if std::thread::panicking() {
            queue().watch = Watch::Gone;
        }
    }
}

/// A drainer's life: it asks for the frames waiting (up to [`BATCH`] asked for and not yet waited for, across
/// the drainers), waits for the oldest frame asked for and hands it back, and goes round again, so frames
/// that arrive meanwhile are asked for after each wait instead of after a whole batch; once nothing waits and
/// nothing is asked for it parks, and exits after [`IDLE`] (a drainer started for a backlog exits at once).
/// The frames asked for are the queue's, not the drainer's: while one drainer waits for a slow read, another
/// (started by the watch) waits for the frames asked for after it.
fn drain() {
    let _counted = Counted;
    loop {
        let mut queue = queue();
        if queue.asked.is_empty() && queue.waiting.is_empty() {
            if queue.drainers > 1 {
                leave(&mut queue);
                return;
            }
            queue.idle += 1;
            let (parked, timeout) = WORK
                .wait_timeout_while(queue, IDLE, |q| q.waiting.is_empty())
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue = parked;
            queue.idle -= 1;
            if timeout.timed_out() && queue.waiting.is_empty() {
                leave(&mut queue);
                return;
            }
        }
        let now = Instant::now();
        queue.last_round = Some(now);
        let take = queue
            .waiting
            .len()
            .min(BATCH.saturating_sub(queue.asked.len() + queue.checking));
        // Frames nobody waits for any more are not asked for; dropped once the lock is let go, since the
        // last handle on a mapping unmaps it.
        let (gone, arrived): (Vec<Waiting>, Vec<Waiting>) =
            queue.waiting.drain(..take).partition(Waiting::is_abandoned);
        // With nothing new to ask for, the oldest frame asked for before is taken under this same lock.
        let mut oldest = if arrived.is_empty() {
            queue.asked.pop_front()
        } else {
            None
        };
        // More waiting than there is room for: another drainer takes it. Whatever is left, the watch looks
        // after should this drainer get stuck. (None is idle: a drainer parks only when it is the only one.)
        if wants_another(&queue, now) {
            start_drainer(queue);
        } else if !queue.waiting.is_empty() || !queue.asked.is_empty() {
            arm_watch(queue);
        } else {
            drop(queue);
        }
        drop(gone);
        if !arrived.is_empty() {
            for waiting in &arrived {
                waiting
                    .mapping
                    .ask_for(&waiting.frame, waiting.tail + waiting.ahead);
            }
            let mut queue = self::queue();
            // Bytes only to be asked for are done with.
            queue
                .asked
                .extend(arrived.into_iter().filter(|waiting| waiting.done.is_some()));
            oldest = queue.asked.pop_front();
            if queue.asked.is_empty() {
                drop(queue);
            } else {
                arm_watch(queue);
            }
        }
        // None when another drainer took every frame asked for meanwhile.
        let Some(oldest) = oldest else {
            continue;
        };
        oldest.finish(true);
        if now.elapsed() >= SLOW_WAIT {
            hand_back_those_in();
        }
    }
}

/// A drainer's place in [`Queue::drainers`], given back should the drainer panic (the frames it held then
/// end with an error, their senders dropped: the one it was waiting for, or those a hand-back had taken
/// out), with a new drainer started for the frames still waiting or asked for.
struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = queue();
            leave(&mut queue);
            if (!queue.waiting.is_empty() || !queue.asked.is_empty()) && queue.idle == 0 {
                start_drainer(queue);
            }
        }
    }
}

/// After a slow wait: hands back every frame asked for whose pages are in by now, and puts the others back,
/// in order, before those asked for meanwhile. One drainer at a time looks (another skips it), so that the
/// frames put back are older than any asked for meanwhile; while they are out they count towards
/// [`BATCH`].
fn hand_back_those_in() {
    let asked = {
        let mut queue = queue();
        if queue.checking > 0 || queue.asked.is_empty() {
            return;
        }
        let asked = std::mem::take(&mut queue.asked);
        queue.checking = asked.len();
        asked
    };
    let _out = CheckingOut;
    let (cold, resident): (VecDeque<Waiting>, VecDeque<Waiting>) =
        asked.into_iter().partition(|waiting| {
            waiting.mapping.residency(&waiting.frame, waiting.tail) == Residency::Cold
        });
    {
        let mut queue = queue();
        queue.checking = 0;
        if !cold.is_empty() {
            let mut cold = cold;
            cold.append(&mut queue.asked);
            queue.asked = cold;
            arm_watch(queue);
        }
    }
    // Outside the lock, once the cold ones are back where every drainer and the watch see them.
    for waiting in resident {
        waiting.finish(true);
    }
}

/// A hand-back's frames out of [`Queue::asked`], whose count in [`Queue::checking`] is given back should the
/// hand-back panic (those frames then end with an error, their senders dropped), so that hand-backs and the
/// batch's room are not lost with it.
struct CheckingOut;

impl Drop for CheckingOut {
    fn drop(&mut self) {
        if std::thread::panicking() {
            queue().checking = 0;
        }
    }
}

impl Waiting {
    /// Whether the frame's response was dropped: nobody waits for it any more.
    fn is_abandoned(&self) -> bool {
        self.done.as_ref().is_some_and(oneshot::Sender::is_closed)
    }

    /// Brings the frame in and hands it back: waits for the read asked for before when `asked`, asks for it
    /// and waits otherwise; a frame nobody waits for any more is dropped without the wait.
    fn finish(self, asked: bool) {
        let Self {
            mapping,
            frame,
            tail,
            done: Some(done),
            ..
        } = self
        else {
            return;
        };
        if done.is_closed() {
            return;
        }
        let result = if asked {
            super::wait_for(&mapping, frame, tail)
        } else {
            super::bring_in(&mapping, frame, tail)
        };
        let _ = done.send(result);
    }
}
