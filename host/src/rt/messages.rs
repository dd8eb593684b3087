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
    /// The slot finished fading out and is empty.
    Unloaded { slot: SlotId, version: u64 },
    /// The slot began fading out (an unload took effect) at `clock`.
    Unloading { slot: SlotId, clock: u64 },
    /// From `clock` on, blocks are `frames` long (sent for the first block
    /// and whenever the device's buffer changes the block length).
    Block { frames: u32, clock: u64 },
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
/// Parameter and note events will join these.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum ControlKind {
    /// Linear gain of the signal (1: unchanged).
    Gain(f32),
    /// Silence the signal (it keeps running) or bring it back.
    Mute(bool),
    /// While any signal is soloed, only soloed signals are heard.
    Solo(bool),
}
