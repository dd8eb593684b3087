//! Where audio-thread code puts what it must not drop or print itself:
//! retired versions, wasmtime errors and events. Each slot has a small
//! [`SlotOutbox`] of fixed capacity (filled by whichever thread renders the
//! slot); the audio thread drains them in slot order into the shared
//! [`Outbox`], whose wait-free queues the control side reads. So events and
//! retirements come out in the same order whatever thread rendered a slot.
//! Runs on the audio thread and the pool's workers; never allocates.

use super::messages::{Event, Garbage};
use super::version::Version;

/// The audio thread's ends of the outgoing queues.
pub struct Outbox {
    pub garbage: rtrb::Producer<Garbage>,
    pub events: rtrb::Producer<Event>,
    /// Versions that could not be queued (queue full) and were leaked rather
    /// than dropped here.
    pub leaked: u64,
    pub lost_events: u64,
    /// Allocator calls made while a guest faulted (this render call).
    pub fault_allocations: u64,
}

impl Outbox {
    pub fn retire(&mut self, v: Box<Version>) {
        self.garbage(Garbage::Version(v));
    }

    fn garbage(&mut self, g: Garbage) {
        if let Err(rtrb::PushError::Full(g)) = self.garbage.push(g) {
            // Dropping here would free on the audio thread: leak instead.
            std::mem::forget(g);
            self.leaked += 1;
        }
    }

    pub fn event(&mut self, e: Event) {
        if self.events.push(e).is_err() {
            self.lost_events += 1;
        }
    }
}

/// Most events / retired items one slot can produce in one block (a fault,
/// a rollback, an end of crossfade and an unload together stay well below).
const SLOT_OUTBOX_CAPACITY: usize = 16;

/// One slot's outgoing items of the block in progress: plain vectors whose
/// capacity is reserved up front and never exceeded (so pushing never
/// allocates). Items beyond the capacity are leaked / lost and counted, like
/// a full queue.
pub struct SlotOutbox {
    events: Vec<Event>,
    garbage: Vec<Garbage>,
    /// Allocator calls made while this slot's guest faulted.
    pub fault_allocations: u64,
    leaked: u64,
    lost_events: u64,
}

impl Default for SlotOutbox {
    fn default() -> Self {
        SlotOutbox {
            events: Vec::with_capacity(SLOT_OUTBOX_CAPACITY),
            garbage: Vec::with_capacity(SLOT_OUTBOX_CAPACITY),
            fault_allocations: 0,
            leaked: 0,
            lost_events: 0,
        }
    }
}

impl SlotOutbox {
    pub fn retire(&mut self, v: Box<Version>) {
        self.garbage(Garbage::Version(v));
    }

    pub fn retire_error(&mut self, e: wasmtime::Error) {
        self.garbage(Garbage::Error(e));
    }

    fn garbage(&mut self, g: Garbage) {
        if self.garbage.len() < self.garbage.capacity() {
            self.garbage.push(g);
        } else {
            std::mem::forget(g);
            self.leaked += 1;
        }
    }

    pub fn event(&mut self, e: Event) {
        if self.events.len() < self.events.capacity() {
            self.events.push(e);
        } else {
            self.lost_events += 1;
        }
    }

    /// Move everything into the shared outbox, in the order it came (audio
    /// thread only).
    pub fn drain_into(&mut self, out: &mut Outbox) {
        for e in self.events.drain(..) {
            out.event(e);
        }
        for g in self.garbage.drain(..) {
            out.garbage(g);
        }
        out.fault_allocations += std::mem::take(&mut self.fault_allocations);
        out.leaked += std::mem::take(&mut self.leaked);
        out.lost_events += std::mem::take(&mut self.lost_events);
    }
}
