//! Fixed-size log lines a guest sends from `process`: pushed on the audio
//! thread into a bounded wait-free ring (no allocation; a line that finds the
//! ring full is counted and dropped), drained by a control thread, which
//! rate-limits what it prints (`loader::guest_log`) and looks into the rings
//! only when a flag they share ([`Pending`]) says one got a line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Longest message kept; longer ones are cut.
pub const LOG_LINE_BYTES: usize = 120;

#[derive(Clone, Copy)]
pub struct LogLine {
    pub level: i32,
    len: u8,
    bytes: [u8; LOG_LINE_BYTES],
}

impl LogLine {
    pub fn new(level: i32, text: &[u8]) -> Self {
        let len = text.len().min(LOG_LINE_BYTES);
        let mut bytes = [0; LOG_LINE_BYTES];
        bytes[..len].copy_from_slice(&text[..len]);
        LogLine {
            level,
            len: len as u8,
            bytes,
        }
    }

    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes[..self.len as usize])
    }
}

/// The audio thread's end: pushes lines, counts those the full ring refused.
pub struct LogProducer {
    ring: rtrb::Producer<LogLine>,
    dropped: Arc<AtomicU64>,
    /// Shared by all the rings of an engine: set after a line was queued or
    /// dropped, so that the control side walks the rings only then (see
    /// [`Pending`]).
    pending: Arc<AtomicBool>,
}

impl LogProducer {
    /// Queue a line; when the ring is full the line is dropped and counted
    /// (no allocation, no wait).
    pub fn push(&mut self, line: LogLine) {
        if self.ring.push(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // After the push: whoever sees the flag sees the line.
        self.pending.store(true, Ordering::Release);
    }
}

/// The flag all the rings of an engine share: did any guest log (or drop a
/// line) since the control side last looked? With a thousand signals,
/// looking into every ring after every block (offline, the control side
/// polls after each one) was 3 % of the engine's time per signal.
#[derive(Debug, Default)]
pub struct Pending(Arc<AtomicBool>);

impl Pending {
    /// Control side: was anything logged since the last call? (Clears it.)
    pub fn take(&self) -> bool {
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::Acquire)
    }
}

/// The control side's end.
pub struct LogConsumer {
    ring: rtrb::Consumer<LogLine>,
    dropped: Arc<AtomicU64>,
}

impl LogConsumer {
    pub fn pop(&mut self) -> Option<LogLine> {
        self.ring.pop().ok()
    }

    /// Lines dropped because the ring was full, since the last call.
    pub fn take_dropped(&self) -> u64 {
        // Read first: the control side asks after every block offline, and
        // a swap is a locked instruction even when there is nothing to take.
        match self.dropped.load(Ordering::Relaxed) {
            0 => 0,
            _ => self.dropped.swap(0, Ordering::Relaxed),
        }
    }

    /// The version (the producer) is gone.
    pub fn is_abandoned(&self) -> bool {
        self.ring.is_abandoned()
    }
}

/// A ring for one loaded version, raising `pending` when it gets a line.
pub fn ring(pending: &Pending) -> (LogProducer, LogConsumer) {
    let (tx, rx) = rtrb::RingBuffer::new(64);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        LogProducer {
            ring: tx,
            dropped: dropped.clone(),
            pending: pending.0.clone(),
        },
        LogConsumer { ring: rx, dropped },
    )
}
