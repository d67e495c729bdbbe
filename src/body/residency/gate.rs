//! A test hook: holds the bring-ins of chosen frames until a test lets them go, so a test can observe a body
//! while a bring-in is under way without depending on how fast the disk is.

use std::sync::{Arc, Condvar, Mutex};

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

static GATES: Mutex<Vec<(usize, usize, Arc<Gate>)>> = Mutex::new(Vec::new());

/// Holds the bring-in of any frame inside `bytes` (a slice of a mapping) until the gate returned is opened.
pub(crate) fn hold(bytes: &Bytes) -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    let start = bytes.as_ptr() as usize;
    GATES
        .lock()
        .expect("gates")
        .push((start, start + bytes.len(), Arc::clone(&gate)));
    gate
}

/// Called by every bring-in before it starts: waits while a gate holds `frame`.
pub(super) fn wait(frame: &Bytes) {
    let at = frame.as_ptr() as usize;
    let gate = GATES
        .lock()
        .expect("gates")
        .iter()
        .find(|(start, end, _)| (*start..*end).contains(&at))
        .map(|(_, _, gate)| Arc::clone(gate));
    if let Some(gate) = gate {
        gate.reached.notify_one();
        let mut open = gate.open.lock().expect("gate");
        while !*open {
            open = gate.opened.wait(open).expect("gate");
        }
    }
}
