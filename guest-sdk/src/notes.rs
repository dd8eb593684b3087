//! Monophonic note access (contract 0.2 events): `gate()`, `pitch()`,
//! `velocity()`, `cc(n)`, `bend()`, `pressure()`, parameters and mono
//! signals reading the note state the runtime updates at each event's
//! frame. Runs on the thread that calls `process`.

use core::ptr::NonNull;

use crate::claim::{Binder, Error};
use crate::ctx::Ctx;
use crate::events::NoteState;
use crate::node::{Node, node_ops};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Gate,
    Pitch,
    Velocity,
    Key,
    Cc(u8),
    Bend,
    Pressure,
}

/// A value of the monophonic note state (omni: every MIDI channel and OSC
/// plays it), as a parameter or a mono signal. The state is claimed once
/// per signal under the key `notes`, so a reload keeps the note held.
#[derive(Clone, Copy, Debug)]
pub struct NoteValue {
    what: What,
    notes: Option<NonNull<NoteState>>,
    /// `pitch()`'s last (key, bend bits, played) and its frequency: the
    /// exp is computed only when one of them changes.
    last: (u32, u32, u32),
    hz: f64,
}

fn note(what: What) -> NoteValue {
    NoteValue {
        what,
        notes: None,
        last: (u32::MAX, 0, 0),
        hz: 440.0,
    }
}

/// 1 while the last key played is held, else 0 (last-note priority: a
/// note-off of another key leaves it on).
pub fn gate() -> NoteValue {
    note(What::Gate)
}

/// The last key played, in Hz, with the pitch bend (two semitones each
/// way): `440 * exp((key - 69 + 2 bend) ln2 / 12)`; 440 before any note.
pub fn pitch() -> NoteValue {
    note(What::Pitch)
}

/// The last note-on's velocity, 0 to 1 (0 before any note).
pub fn velocity() -> NoteValue {
    note(What::Velocity)
}

/// The last key played, 0 to 127 (69 before any note).
pub fn key() -> NoteValue {
    note(What::Key)
}

/// Controller `n`'s value (0 to 127 mapped to 0 to 1), 0 until it moves.
pub fn cc(n: u8) -> NoteValue {
    note(What::Cc(n & 127))
}

/// The pitch bend, -1 to 1.
pub fn bend() -> NoteValue {
    note(What::Bend)
}

/// The channel pressure, 0 to 1.
pub fn pressure() -> NoteValue {
    note(What::Pressure)
}

impl Node for NoteValue {
    type Frame = [f64; 1];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.notes = Some(b.notes()?);
        self.last = (u32::MAX, 0, 0);
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, _: &Ctx) -> [f64; 1] {
        let Some(p) = self.notes else {
            return [0.0];
        };
        // SAFETY: `p` is the claimed `notes` block (aligned, `Pod`), which
        // the runtime writes only between frames.
        let n = unsafe { &*p.as_ptr() };
        [match self.what {
            What::Gate => n.gate as f64,
            What::Pitch => {
                let now = (n.key, n.bend.to_bits(), n.played);
                if now != self.last {
                    self.last = now;
                    self.hz = n.hz();
                }
                self.hz
            }
            What::Velocity => n.velocity as f64,
            What::Key => {
                if n.played != 0 {
                    n.key as f64
                } else {
                    69.0
                }
            }
            What::Cc(c) => n.cc[c as usize] as f64,
            What::Bend => n.bend as f64,
            What::Pressure => n.pressure as f64,
        }]
    }
}

node_ops! {
    [] NoteValue;
}
