//! What crosses the wait-free queues between the control side and the audio
//! thread. Commands go in; retired versions (to be dropped elsewhere) and
//! events (plain values, turned into log lines off the audio thread) come out.

use super::version::Version;

/// Index of a signal slot in the mixer's fixed table.
pub type SlotId = usize;

/// Control side -> audio thread.
pub enum Command {
    /// Start `version` in `slot`, or swap it in for the one playing there at
    /// the next block boundary, carrying its state.
    Load {
        slot: SlotId,
        version: Box<Version>,
        /// Ramp the signal in (a file added while playing).
        fade_in: bool,
        /// A restart with fresh state: crossfade (equal power) from the
        /// version playing over at least the fade time, so the fresh start
        /// does not click even when swaps are instant (`--xfade 0`).
        restart: bool,
    },
    /// `version` is the optimised build of the fast-tier version of the
    /// same id playing in `slot`: it takes over at this block boundary with
    /// everything that version keeps ([`Version::take_over_from`]), no
    /// crossfade (the two compute the same samples). Retired unused if that
    /// version no longer plays.
    TierUp { slot: SlotId, version: Box<Version> },
    /// Fade the slot out and retire its versions.
    Unload { slot: SlotId },
    /// Fault `version` in `slot` at this block as if its `process` call had
    /// failed with `fault`, without calling it (a session replay reproducing
    /// a fault that depends on time, not on the module: a runaway stopped by
    /// its CPU budget, a starved call).
    Fault {
        slot: SlotId,
        version: u64,
        fault: Fault,
    },
}

/// Audio thread -> dropper: things whose drop would allocate, free or lock.
pub enum Garbage {
    Version(Box<Version>),
    Error(wasmtime::Error),
}

/// Why a version was silenced. Plain data: formatting happens off the audio
/// thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// `process` used its CPU-time budget without returning (runaway).
    Timeout,
    /// `process` did not return within the wall-time last resort, although
    /// it had not used its CPU budget: the thread was starved of the CPU.
    Starved,
    /// `process` trapped.
    Trap(wasmtime::Trap),
    /// `process` failed in another way (e.g. a host function error).
    Failed,
    /// The returned samples lie outside the module's memory.
    BadPointer { ptr: u32, bytes: u32, memory: u32 },
    /// A sample was NaN or infinite.
    NonFinite,
    /// The output stayed above +24 dBFS for more than a block.
    TooLoud { peak: f32 },
}

/// Audio thread -> control side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// A first version of the slot began playing.
    Started {
        slot: SlotId,
        version: u64,
        clock: u64,
    },
    /// `version` replaced `old` at `clock`, with `carried` state blocks copied.
    Swapped {
        slot: SlotId,
        version: u64,
        old: u64,
        clock: u64,
        carried: u32,
        /// Wall time of the swap (for file-change-to-swap latency).
        at: std::time::Instant,
    },
    /// The optimised build of `version` took over from its fast build
    /// (`taken`), or came too late and was dropped (that version no longer
    /// plays).
    TieredUp {
        slot: SlotId,
        version: u64,
        clock: u64,
        taken: bool,
        /// Wall time of the tier-up.
        at: std::time::Instant,
    },
    /// The slot finished fading out and is empty.
    Unloaded { slot: SlotId, version: u64 },
    /// The slot began fading out (an unload took effect) at `clock`.
    Unloading { slot: SlotId, clock: u64 },
    /// From `clock` on, the device asks for `frames` at a time (each split
    /// into blocks of at most the mixer's block). Sent for the first buffer
    /// and whenever the size changes.
    Buffer { frames: u32, clock: u64 },
    /// A control event took effect; its `at` is the frame it was applied at
    /// (the frame asked for, or the start of the block it arrived in).
    Applied(ControlEvent),
    /// `version` was silenced.
    Faulted {
        slot: SlotId,
        version: u64,
        fault: Fault,
        clock: u64,
        /// Within the first blocks after a swap that carried state into
        /// this version (the state may be the cause).
        after_carry: bool,
    },
    /// After a fault, the slot went back to the last good version.
    RolledBack {
        slot: SlotId,
        from: u64,
        to: u64,
        clock: u64,
    },
    /// A memory or table grow was refused by the limiter (once per version
    /// and kind).
    GrowRefused {
        slot: SlotId,
        version: u64,
        kind: super::guest::GrowKind,
    },
    /// Events for `version` were dropped (`count` since the last report,
    /// at most one report a second per slot): its event buffer and its
    /// backlog were full.
    EventsDropped {
        slot: SlotId,
        version: u64,
        count: u64,
    },
    /// A call took more than `percent` of the block period.
    Slow {
        slot: SlotId,
        version: u64,
        micros: u32,
        percent: u32,
    },
}

/// Control side -> audio thread, through the control-event queue (apart from
/// the load queue): a change that applies at an exact frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControlEvent {
    /// The frame (on the mixer's clock, counted from the engine's start) it
    /// applies at. A frame already past applies at the start of the next block.
    pub at: u64,
    pub slot: SlotId,
    pub kind: ControlKind,
}

/// What a [`ControlEvent`] changes. Gain, mute and solo ramp over the fade
/// time (10 ms by default) from their frame on, so no change clicks.
/// Parameter and note events go to the signal's versions: the mixer hands
/// each slot the ones due in a block before the slots render, and every
/// version rendered gets them in its event buffer at their frames
/// (`lel:signal@0.2.0`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum ControlKind {
    /// Linear gain of the signal (1: unchanged).
    Gain(f32),
    /// Silence the signal (it keeps running) or bring it back.
    Mute(bool),
    /// While any signal is soloed, only soloed signals are heard.
    Solo(bool),
    /// Set the parameter whose signal-wide id (given by the control side
    /// to each key) is `id` to `value` (plain units; each version clamps it
    /// to its range and snaps it to its steps). Sent by
    /// `Control::set_param`, which checks it.
    Param { id: u32, value: f32 },
    /// A note or controller event for the signal's versions.
    Note(NoteEvent),
}

/// The kind of an event in a guest's event buffer (`wit/constants.txt`,
/// `[event-kind]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    NoteOn = super::consts::NOTE_ON,
    NoteOff = super::consts::NOTE_OFF,
    ControlChange = super::consts::CONTROL_CHANGE,
    PitchBend = super::consts::PITCH_BEND,
    ChannelPressure = super::consts::CHANNEL_PRESSURE,
    /// A parameter change (made by `Control::set_param`, never sent as a
    /// [`NoteEvent`]).
    Param = super::consts::PARAM,
}

/// A note or controller event as a guest receives it (see `process` in
/// `wit/lel.wit`): `channel` 0..15 (the MIDI channel minus one), `number`
/// the key or controller 0..127 (0 for pitch-bend and pressure), `value`
/// the velocity or controller value 0..1, or the bend -1..1.
/// `Control::send_event` checks these ranges and turns a note-on of
/// velocity 0 into a note-off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoteEvent {
    pub kind: EventKind,
    pub channel: u8,
    pub number: u16,
    pub value: f32,
}

impl NoteEvent {
    /// Key `key` (0..127) starts with `velocity` 0..1 (0 is a note-off).
    pub fn note_on(channel: u8, key: u8, velocity: f32) -> Self {
        NoteEvent {
            kind: EventKind::NoteOn,
            channel,
            number: key as u16,
            value: velocity,
        }
    }

    /// Key `key` ends, with a release velocity 0..1.
    pub fn note_off(channel: u8, key: u8, velocity: f32) -> Self {
        NoteEvent {
            kind: EventKind::NoteOff,
            channel,
            number: key as u16,
            value: velocity,
        }
    }

    /// Controller `controller` (0..127) moved to `value` 0..1.
    pub fn control_change(channel: u8, controller: u8, value: f32) -> Self {
        NoteEvent {
            kind: EventKind::ControlChange,
            channel,
            number: controller as u16,
            value,
        }
    }

    /// The pitch wheel moved to `bend`, -1..1 (0: centre).
    pub fn pitch_bend(channel: u8, bend: f32) -> Self {
        NoteEvent {
            kind: EventKind::PitchBend,
            channel,
            number: 0,
            value: bend,
        }
    }

    /// Channel pressure (aftertouch) `pressure`, 0..1.
    pub fn channel_pressure(channel: u8, pressure: f32) -> Self {
        NoteEvent {
            kind: EventKind::ChannelPressure,
            channel,
            number: 0,
            value: pressure,
        }
    }

    /// The event a MIDI channel message stands for, with the contract's
    /// scaling: velocities, controller values and pressure `v / 127`, the
    /// 14-bit bend `(v - 8192) / 8192` (clamped to -1..1), a note-on of
    /// velocity 0 as a note-off. `None` for other messages (program change,
    /// polyphonic aftertouch, system messages) and malformed ones.
    pub fn from_midi(bytes: &[u8]) -> Option<Self> {
        let (&status, data) = bytes.split_first()?;
        let channel = status & 0x0f;
        let d = |i: usize| data.get(i).copied().filter(|b| *b < 0x80);
        let seven = |v: u8| v as f32 / 127.0;
        Some(match status & 0xf0 {
            0x80 => NoteEvent::note_off(channel, d(0)?, seven(d(1)?)),
            0x90 if d(1)? == 0 => NoteEvent::note_off(channel, d(0)?, 0.0),
            0x90 => NoteEvent::note_on(channel, d(0)?, seven(d(1)?)),
            0xb0 => NoteEvent::control_change(channel, d(0)?, seven(d(1)?)),
            0xd0 => NoteEvent::channel_pressure(channel, seven(d(0)?)),
            0xe0 => {
                let v = (d(0)? as i32) | (d(1)? as i32) << 7;
                NoteEvent::pitch_bend(channel, ((v - 8192) as f32 / 8192.0).clamp(-1.0, 1.0))
            }
            _ => return None,
        })
    }
}
