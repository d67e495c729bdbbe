//! A test hook: holds the bring-ins of chosen frames until a test lets them go, so a test can observe a body
//! while a bring-in is under way without depending on how fast the disk is.

use std::sync::{Arc, Condvar, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::Notify;

/// One held address range, and whether it is released.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Notified each time a bring-in reaches the gate.
    pub(crate) reached: Notify,
}

impl Gate {
    /// Lets every bring-in held here (and any later one) go.
    pub(crate) fn open(&self) {
        *self.open.lock().expect("gate") = true;
        self.opened.notify_all();
    }
}

/// The gates of live tests, weakly: a gate ends with its test's handle, so a later mapping at the same
/// addresses (munmap frees them for reuse at once) never meets a gate of a test that has finished.
static GATES: Mutex<Vec<(usize, usize, Weak<Gate>)>> = Mutex::new(Vec::new());

/// Holds the bring-in of any frame inside `bytes` (a slice of a mapping) until the gate returned is opened;
/// the hold ends when the gate is dropped.
pub(crate) fn hold(bytes: &Bytes) -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    let start = bytes.as_ptr() as usize;
    let mut gates = GATES.lock().expect("gates");
    gates.retain(|(_, _, gate)| gate.strong_count() > 0);
    gates.push((start, start + bytes.len(), Arc::downgrade(&gate)));
    gate
}

/// Called by every bring-in before it starts: waits while a gate holds `frame`.
pub(super) fn wait(frame: &Bytes) {
    let at = frame.as_ptr() as usize;
    let gate = GATES
        .lock()
        .expect("gates")
        .iter()
        .filter(|(start, end, _)| (*start..*end).contains(&at))
        .find_map(|(_, _, gate)| gate.upgrade());
    if let Some(gate) = gate {
        gate.reached.notify_one();
        let mut open = gate.open.lock().expect("gate");
        while !*open {
            open = gate.opened.wait(open).expect("gate");
        }
    }
}
