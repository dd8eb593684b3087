//! The context every parameter and helper sees for each sample: sample rate,
//! block, absolute clock (frames and seconds) and channel count.

use crate::events::Event;
use crate::math::floor;
use crate::poly::VoiceNow;

/// Where a sample is on the host's shared timeline, and what the signal is.
///
/// Parameters are evaluated once per sample with the context of that sample:
/// `clock` and `t` advance by one frame each time. The clock is shared by
/// every signal the host plays and never resets on reload, so anything
/// computed from it (an LFO from `t`, a sequencer step from [`Ctx::step`])
/// stays in time across modules and versions.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Ctx {
    /// Sample rate in Hz.
    pub sample_rate: f64,
    /// Absolute frame index of this sample on the host's timeline.
    pub clock: u64,
    /// Time of this sample in seconds: `clock / sample_rate`.
    pub t: f64,
    /// Absolute frame index of the block's first frame (`process`'s `clock`).
    pub block_clock: u64,
    /// Frames in this block.
    pub frames: u32,
    /// Index of this frame within the block (`clock - block_clock`).
    pub frame: u32,
    /// Output channels of the signal (what `init` returned).
    pub channels: u32,
    /// The events at this frame (set by the runtime for one frame only).
    pub(crate) events: *const Event,
    pub(crate) n_events: u32,
    /// The voice a `poly` is rendering (set by the poly for its voices).
    pub(crate) voice: VoiceNow,
}

impl Ctx {
    /// The context of frame `clock` at `sample_rate`, alone in a block of one
    /// frame, for a signal of `channels` channels.
    pub fn new(sample_rate: f64, clock: u64, channels: u32) -> Self {
        Ctx {
            sample_rate,
            clock,
            t: clock as f64 / sample_rate,
            block_clock: clock,
            frames: 1,
            frame: 0,
            channels,
            events: core::ptr::null(),
            n_events: 0,
            voice: VoiceNow::NONE,
        }
    }

    /// The events at this frame (notes, controllers, parameter changes),
    /// in the host's order; empty on most frames.
    #[inline(always)]
    pub(crate) fn events(&self) -> &[Event] {
        if self.n_events == 0 {
            return &[];
        }
        // SAFETY: the runtime (or the test harness) sets `events` to
        // `n_events` events of the block's buffer for the one frame it
        // renders with this context, and clears it before the buffer
        // changes; `Ctx` escapes no further than a helper's `tick`.
        unsafe { core::slice::from_raw_parts(self.events, self.n_events as usize) }
    }

    /// The voice a `poly` is rendering (`VoiceNow::NONE` outside one).
    #[inline(always)]
    pub(crate) fn voice(&self) -> &VoiceNow {
        &self.voice
    }

    /// Moves the context to frame `frame` of the block starting at
    /// `block_clock` (what the runtime does before each sample).
    #[inline(always)]
    pub fn seek(&mut self, block_clock: u64, frames: u32, frame: u32) {
        self.block_clock = block_clock;
        self.frames = frames;
        self.frame = frame;
        self.clock = block_clock + frame as u64;
        self.t = self.clock as f64 / self.sample_rate;
    }

    /// Beats elapsed since clock 0 at `bpm` beats per minute:
    /// `clock * bpm / (60 * sample_rate)`.
    #[inline]
    pub fn beats(&self, bpm: f64) -> f64 {
        self.clock as f64 * (bpm / 60.0) / self.sample_rate
    }

    /// Steps elapsed since clock 0 (fractional), with `per_beat` steps per
    /// beat at `bpm`: `clock * (bpm * per_beat / 60) / sample_rate`.
    #[inline]
    pub fn steps(&self, bpm: f64, per_beat: f64) -> f64 {
        self.clock as f64 * (bpm * per_beat / 60.0) / self.sample_rate
    }

    /// Index of the current step: `floor(steps(bpm, per_beat))`.
    #[inline]
    pub fn step(&self, bpm: f64, per_beat: f64) -> u64 {
        floor(self.steps(bpm, per_beat)) as u64
    }

    /// Position within the current step, in `[0, 1)`.
    #[inline]
    pub fn step_phase(&self, bpm: f64, per_beat: f64) -> f64 {
        let s = self.steps(bpm, per_beat);
        s - floor(s)
    }

    /// Seconds since the current step began.
    #[inline]
    pub fn since_step(&self, bpm: f64, per_beat: f64) -> f64 {
        self.step_phase(bpm, per_beat) * 60.0 / (bpm * per_beat)
    }
}
