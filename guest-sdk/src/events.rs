//! Events (contract 0.2): the 16-byte records the host writes into the
//! module's event buffer before each `process` call (notes, controllers,
//! pitch bend, channel pressure, parameter changes), the monophonic note
//! state they drive, and how the runtime applies them at their frame. Runs
//! on whatever thread calls `process` (the host's audio thread).

use bytemuck::{Pod, Zeroable};
use core::ptr::NonNull;

use crate::contract;
use crate::math::exp;

/// Event kinds (`event` in `wit/lel.wit`).
pub mod kind {
    use crate::contract;
    /// Note on: `number` the key, `value` the velocity in `(0, 1]`.
    pub const NOTE_ON: u8 = contract::NOTE_ON;
    /// Note off: `number` the key, `value` the release velocity.
    pub const NOTE_OFF: u8 = contract::NOTE_OFF;
    /// Control change: `number` the controller, `value` in `[0, 1]`.
    pub const CONTROL_CHANGE: u8 = contract::CONTROL_CHANGE;
    /// Pitch bend: `value` in `[-1, 1]`.
    pub const PITCH_BEND: u8 = contract::PITCH_BEND;
    /// Channel pressure: `value` in `[0, 1]`.
    pub const CHANNEL_PRESSURE: u8 = contract::CHANNEL_PRESSURE;
    /// Parameter change: `number` the parameter's index, `value` the new value.
    pub const PARAM: u8 = contract::PARAM;
}

/// One event as the host writes it (16 bytes, little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Event {
    /// Frame within the block, `0 <= frame < frames`.
    pub frame: u32,
    /// One of [`kind`].
    pub kind: u8,
    /// MIDI channel - 1 (0 for OSC notes and parameter events).
    pub channel: u8,
    /// Key, controller number or parameter index.
    pub number: u16,
    /// Velocity, controller value, bend, pressure or parameter value.
    pub value: f32,
    /// Reserved (0).
    pub reserved: u32,
}

const _: () = assert!(size_of::<Event>() == contract::EVENT_BYTES);

impl Event {
    /// A note-on of `key` at `velocity` (0..1), at frame 0.
    pub fn note_on(key: u8, velocity: f32) -> Event {
        Event::new(kind::NOTE_ON, key as u16, velocity)
    }

    /// A note-off of `key`, at frame 0.
    pub fn note_off(key: u8) -> Event {
        Event::new(kind::NOTE_OFF, key as u16, 0.0)
    }

    /// Controller `number` set to `value` (0..1), at frame 0.
    pub fn cc(number: u8, value: f32) -> Event {
        Event::new(kind::CONTROL_CHANGE, number as u16, value)
    }

    /// Pitch bend `value` (-1..1), at frame 0.
    pub fn bend(value: f32) -> Event {
        Event::new(kind::PITCH_BEND, 0, value)
    }

    /// Channel pressure `value` (0..1), at frame 0.
    pub fn pressure(value: f32) -> Event {
        Event::new(kind::CHANNEL_PRESSURE, 0, value)
    }

    /// An event of `kind` with `number` and `value`, at frame 0.
    pub fn new(kind: u8, number: u16, value: f32) -> Event {
        Event {
            frame: 0,
            kind,
            channel: 0,
            number,
            value,
            reserved: 0,
        }
    }

    /// The same event on MIDI channel `channel` (0..15).
    pub fn on_channel(mut self, channel: u8) -> Event {
        self.channel = channel;
        self
    }
}

/// Events an SDK module's static buffer holds per block.
pub const EVENT_CAPACITY: usize = contract::DEFAULT_EVENT_CAPACITY;

/// The module's event buffer (`events-ptr`, `events-len`): 8-aligned.
#[repr(C, align(8))]
pub struct EventBuf(pub [Event; EVENT_CAPACITY]);

/// Pitch bend range of the SDK's note helpers, in semitones each way.
pub const BEND_SEMITONES: f64 = 2.0;

/// The monophonic note state, claimed under the key `notes` by the first
/// note helper (`gate()`, `pitch()`, `velocity()`, `cc(n)`, `bend()`,
/// `pressure()`, `poly`) and kept across reloads. 544 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct NoteState {
    /// The last key played (valid once `played` is 1).
    pub key: u32,
    /// 1 while the last key played is held.
    pub gate: u32,
    /// 1 once a note was played.
    pub played: u32,
    /// The last note-on's velocity.
    pub velocity: f32,
    /// Pitch bend, -1..1.
    pub bend: f32,
    /// Channel pressure, 0..1.
    pub pressure: f32,
    /// Padding.
    pub reserved: [u32; 2],
    /// Controllers 0..127, each 0..1.
    pub cc: [f32; 128],
}

impl NoteState {
    /// Applies a note, controller, bend or pressure event (any channel:
    /// the helpers are omni). The law, shared by every SDK: a note-on sets
    /// `key`, `velocity` and the gate; a note-off closes the gate only when
    /// it releases the last key played (last-note priority, no stack).
    pub fn apply(&mut self, ev: &Event) {
        match ev.kind {
            kind::NOTE_ON => {
                self.key = ev.number as u32 & 127;
                self.velocity = ev.value;
                self.gate = 1;
                self.played = 1;
            }
            kind::NOTE_OFF if self.key == ev.number as u32 => self.gate = 0,
            kind::CONTROL_CHANGE => {
                if let Some(c) = self.cc.get_mut(ev.number as usize) {
                    *c = ev.value;
                }
            }
            kind::PITCH_BEND => self.bend = ev.value,
            kind::CHANNEL_PRESSURE => self.pressure = ev.value,
            _ => {}
        }
    }

    /// The frequency of the last key played with the pitch bend, in Hz
    /// (440 before any note).
    pub fn hz(&self) -> f64 {
        let key = if self.played != 0 { self.key } else { 69 };
        key_hz(key as f64, self.bend as f64)
    }
}

/// `440 * exp((key - 69 + 2 bend) * ln2 / 12)`: the frequency of `key` with
/// a pitch bend of `bend` (-1..1, two semitones each way).
#[inline]
pub fn key_hz(key: f64, bend: f64) -> f64 {
    440.0 * exp((key - 69.0 + BEND_SEMITONES * bend) * (core::f64::consts::LN_2 / 12.0))
}

/// What the runtime needs to apply events: the parameters' value cells by
/// index, and the note state (if a note helper claimed it).
#[derive(Clone, Copy)]
pub struct Input {
    pub(crate) params: [Option<NonNull<f32>>; contract::MAX_PARAMS],
    pub(crate) count: usize,
    pub(crate) notes: Option<NonNull<NoteState>>,
}

impl Default for Input {
    fn default() -> Self {
        Input::new()
    }
}

impl Input {
    /// No parameters, no note state.
    pub const fn new() -> Input {
        Input {
            params: [None; contract::MAX_PARAMS],
            count: 0,
            notes: None,
        }
    }

    /// Number of parameters declared.
    pub fn param_count(&self) -> usize {
        self.count
    }

    /// Applies one event: a parameter change writes the parameter's cell
    /// (clamping is the host's job; a NaN is ignored), anything else goes
    /// to the note state.
    #[inline]
    pub(crate) fn apply(&self, ev: &Event) {
        if ev.kind == kind::PARAM {
            if let Some(Some(cell)) = self.params.get(ev.number as usize)
                && !ev.value.is_nan()
            {
                // SAFETY: `cell` is a parameter cell the host handed out in
                // the state region (checked by the binder), read by the
                // parameter's helpers only between frames.
                unsafe { cell.as_ptr().write(ev.value) };
            }
        } else if let Some(n) = self.notes {
            // SAFETY: `n` is the claimed `notes` block (aligned, `Pod`); the
            // helpers reading it only do so while a frame renders, not now.
            unsafe { (*n.as_ptr()).apply(ev) };
        }
    }
}
