//! One signal on the audio thread: the version playing, the one being
//! crossfaded out, the last good one kept for rollback, and the fades between
//! them. Each slot renders into its own buffer (the mixer sums the buffers in
//! slot order), so slots can render on any thread of the pool. Runs on the
//! audio thread or a pool worker; allocation-free on the fault-free path.

use std::time::Instant;

use super::guard::violation_count;
use super::guest::CallLimits;
use super::kernels;
use super::messages::{Event, Fault, SlotId};
use super::outbox::SlotOutbox;
use super::params::BlockEvent;
use super::strip::{PENDING_CAPACITY, SlotOut};
use super::version::Version;

/// A fault within this many blocks of a swap that carried state (or of the
/// end of its crossfade) is reported as possibly caused by that state.
pub const CARRY_SUSPECT_BLOCKS: u64 = 4;

/// A level above +24 dBFS for more than one block is a fault.
pub const ABSURD_PEAK: f32 = 15.85;

/// Per-block facts every slot needs.
#[derive(Clone, Copy, Debug)]
pub struct BlockCtx {
    pub frames: u32,
    pub clock: u64,
    pub out_channels: usize,
    /// The limits of each guest call (CPU budget, wall-time last resort).
    pub call: CallLimits,
    /// Frames of a fade in / fade out / rollback ramp.
    pub fade_frames: u32,
    /// Frames of a crossfade on swap (0: instant swap).
    pub xfade_frames: u32,
    /// How long after a swap a fault rolls back to the previous version.
    pub rollback_frames: u64,
    /// Block period in nanoseconds (for the slow-call warning).
    pub block_nanos: u64,
    pub sample_rate: u32,
}

/// A linear gain ramp.
#[derive(Clone, Copy, Debug)]
struct Ramp {
    value: f32,
    target: f32,
    step: f32,
}

impl Ramp {
    const ONE: Ramp = Ramp {
        value: 1.0,
        target: 1.0,
        step: 0.0,
    };

    fn to(from: f32, target: f32, frames: u32) -> Ramp {
        Ramp {
            value: from,
            target,
            step: (target - from) / frames.max(1) as f32,
        }
    }

    #[inline]
    fn next(&mut self) -> f32 {
        let v = self.value;
        if self.value != self.target {
            self.value += self.step;
            if (self.step > 0.0 && self.value > self.target)
                || (self.step < 0.0 && self.value < self.target)
            {
                self.value = self.target;
            }
        }
        v
    }

    fn done(&self) -> bool {
        self.value == self.target
    }
}

/// One signal slot.
pub struct Slot {
    id: SlotId,
    live: Option<Box<Version>>,
    fade: Ramp,
    /// The version being crossfaded out, and the frames left.
    outgoing: Option<Box<Version>>,
    xfade_left: u32,
    xfade_len: u32,
    /// The crossfade's law: linear when state was carried, else equal power.
    xfade_law: Law,
    /// The last version swapped in with carried state, and the clock of the
    /// swap: a fault soon after may come from that state.
    carried_swap: Option<(u64, u64)>,
    /// The last good version and the clock until which it may come back.
    previous: Option<Box<Version>>,
    rollback_until: u64,
    unloading: bool,
    loud_blocks: u32,
    slow_reported_at: Option<u64>,
    /// This block's output (interleaved, the mixer's channel count),
    /// allocated once for the largest block.
    buf: Box<[f32]>,
    /// Whether `buf` holds this block (it is cleared only when something
    /// is mixed into it).
    filled: bool,
    /// This block's output is the live version's own, at unity gain: where
    /// its samples are in the version's memory (address and length, as the
    /// call returned them and `Version::output` checked them) and their
    /// channels. The mixer reads them there; `buf` is not used.
    direct: Option<(usize, usize, usize)>,
    /// Where the live version's samples were last time (address, bytes;
    /// (0, 0) before): usually where they will be again, so they can be
    /// fetched into the cache before the call (see [`Slot::prefetch`]).
    last_out: (usize, usize),
    /// Wall time the guest calls of the last block took (for the pool's
    /// choice between one thread and several).
    busy_nanos: u64,
    /// Peak and RMS of the last block's output, measured right after it was
    /// rendered (reading it again later, after the other slots, found it
    /// out of the cache).
    level: (f32, f32),
    /// The parameter and note events due in this block, in frame order,
    /// handed over by the mixer before the slots render (room for every
    /// event the mixer can hold, allocated once).
    events: Vec<BlockEvent>,
    /// A fault to report for this version's next call instead of calling it
    /// (see [`super::messages::Command::Fault`]).
    forced: Option<(u64, Fault)>,
    /// When dropped events were last reported (at most once a second).
    dropped_reported_at: Option<u64>,
}

impl Slot {
    /// A slot for blocks of up to `max_frames` frames of `channels` channels.
    pub fn new(id: SlotId, max_frames: u32, channels: usize) -> Self {
        Slot {
            id,
            live: None,
            fade: Ramp::ONE,
            outgoing: None,
            xfade_left: 0,
            xfade_len: 0,
            xfade_law: Law::EqualPower,
            carried_swap: None,
            previous: None,
            rollback_until: 0,
            unloading: false,
            loud_blocks: 0,
            slow_reported_at: None,
            buf: vec![0.0; max_frames as usize * channels].into_boxed_slice(),
            filled: false,
            direct: None,
            last_out: (0, 0),
            busy_nanos: 0,
            level: (0.0, 0.0),
            events: Vec::with_capacity(PENDING_CAPACITY),
            forced: None,
            dropped_reported_at: None,
        }
    }

    /// An event due in the next block (called by the mixer before the
    /// slots render). An idle slot drops it. Returns whether it was taken.
    pub fn push_event(&mut self, e: BlockEvent) -> bool {
        if !self.is_idle() && self.events.len() < self.events.capacity() {
            // Within capacity: never reallocates.
            self.events.push(e);
            true
        } else {
            false
        }
    }

    /// Fault `version` at its next call in this slot (this block).
    pub fn force_fault(&mut self, version: u64, fault: Fault) {
        self.forced = Some((version, fault));
    }

    /// The block rendered by the last [`Slot::process`] (`frames` frames
    /// of the mixer's `channels`): in the slot's buffer, or the live
    /// version's samples in its memory.
    pub fn output(&self, frames: u32, channels: usize) -> SlotOut<'_> {
        match self.direct {
            Some((addr, len, ch)) if self.live.is_some() => {
                // SAFETY: these are the bytes the live version returned from
                // this block's call, checked to lie inside its memory
                // (`Version::output`). That memory is written, grown or
                // freed only by a later call of the version or after it is
                // retired, and both happen only in a later `&mut self`
                // method (`process`, `load`, `unload`), which this shared
                // borrow excludes. (Looking the memory up again through its
                // store here took a sixth of the engine's time per signal
                // with 1,000 signals: cache misses.)
                let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
                debug_assert_eq!(len, frames as usize * ch * 4);
                SlotOut::Guest {
                    bytes,
                    channels: ch,
                }
            }
            _ => SlotOut::Mixed(&self.buf[..frames as usize * channels]),
        }
    }

    /// Start fetching into the cache what rendering this slot touches
    /// first: its live version's structure and the samples that version
    /// returned last block (a hint, see [`kernels::prefetch`]; called for
    /// the next slot while this thread renders one).
    pub fn prefetch(&self) {
        if let Some(v) = &self.live {
            kernels::prefetch((&raw const **v).cast(), size_of::<Version>());
        }
        let (at, bytes) = self.last_out;
        kernels::prefetch(at as *const u8, bytes.min(128));
    }

    /// Peak and RMS of the block rendered by the last [`Slot::process`].
    pub fn level(&self) -> (f32, f32) {
        self.level
    }

    /// Wall time the last block's guest calls took, in nanoseconds.
    pub fn busy_nanos(&self) -> u64 {
        self.busy_nanos
    }

    pub fn is_idle(&self) -> bool {
        self.live.is_none() && self.outgoing.is_none() && self.previous.is_none()
    }

    /// Start or swap in `new` at this block boundary.
    pub fn load(
        &mut self,
        mut new: Box<Version>,
        fade_in: bool,
        restart: bool,
        ctx: &BlockCtx,
        out: &mut SlotOutbox,
    ) {
        self.loud_blocks = 0;
        let Some(old) = self.live.take() else {
            self.fade = if fade_in {
                Ramp::to(0.0, 1.0, ctx.fade_frames)
            } else {
                Ramp::ONE
            };
            self.unloading = false;
            out.event(Event::Started {
                slot: self.id,
                version: new.id,
                clock: ctx.clock,
            });
            self.live = Some(new);
            return;
        };
        let carried = new.carry_state_from(&old);
        self.carried_swap = (carried > 0).then_some((new.id, ctx.clock));
        out.event(Event::Swapped {
            slot: self.id,
            version: new.id,
            old: old.id,
            clock: ctx.clock,
            carried,
            at: Instant::now(),
        });
        if self.unloading {
            // A new save while fading out: come back.
            self.unloading = false;
            self.fade = Ramp::to(self.fade.value, 1.0, ctx.fade_frames);
        }
        let xfade = if restart {
            ctx.xfade_frames.max(ctx.fade_frames)
        } else {
            ctx.xfade_frames
        };
        if xfade > 0 {
            if let Some(v) = self.outgoing.take() {
                out.retire(v);
            }
            self.outgoing = Some(old);
            self.xfade_left = xfade;
            self.xfade_len = xfade;
            self.xfade_law = Law::for_swap(carried);
        } else {
            self.keep_previous(old, ctx, out);
        }
        self.live = Some(new);
    }

    /// The optimised build `new` of the fast-tier version playing (the same
    /// id) takes over at this block boundary, mid-crossfade or not; the
    /// fast one is retired. Anything else (that version faulted, was
    /// replaced or unloaded meanwhile): `new` is retired unused.
    pub fn tier_up(&mut self, mut new: Box<Version>, ctx: &BlockCtx, out: &mut SlotOutbox) {
        let id = new.id;
        let unloading = self.unloading;
        let playing = self.live.as_mut().filter(|v| v.id == id && !unloading);
        let taken = if let Some(fast) = playing
            && new.take_over_from(fast)
        {
            out.retire(std::mem::replace(fast, new));
            true
        } else {
            out.retire(new);
            false
        };
        out.event(Event::TieredUp {
            slot: self.id,
            version: id,
            clock: ctx.clock,
            taken,
            at: Instant::now(),
        });
    }

    fn keep_previous(&mut self, old: Box<Version>, ctx: &BlockCtx, out: &mut SlotOutbox) {
        if let Some(v) = self.previous.replace(old) {
            out.retire(v);
        }
        self.rollback_until = ctx.clock + ctx.rollback_frames;
    }

    /// Fade out, then retire every version of this slot.
    pub fn unload(&mut self, ctx: &BlockCtx) {
        self.unloading = true;
        self.fade = Ramp::to(self.fade.value, 0.0, ctx.fade_frames);
    }

    /// Render this slot's block into its own buffer (see [`Slot::output`]).
    pub fn process(&mut self, ctx: &BlockCtx, out: &mut SlotOutbox) {
        let mut buf = std::mem::take(&mut self.buf);
        let mix = &mut buf[..ctx.frames as usize * ctx.out_channels];
        self.filled = false;
        self.direct = None;
        self.busy_nanos = 0;
        self.process_into(ctx, mix, out);
        if self.live.is_none() {
            self.direct = None;
        }
        if self.direct.is_none() {
            if !self.filled {
                mix.fill(0.0);
            }
            self.level = super::level::measure(mix);
        }
        self.forced = None;
        self.buf = buf;
    }

    fn process_into(&mut self, ctx: &BlockCtx, mix: &mut [f32], out: &mut SlotOutbox) {
        let mut events = std::mem::take(&mut self.events);
        self.render_versions(ctx, mix, out, &events);
        // Versions not rendered in this block (kept for rollback, or taken
        // back after a fault) still follow the parameter values.
        for v in [&mut self.live, &mut self.outgoing, &mut self.previous]
            .into_iter()
            .flatten()
        {
            v.follow(ctx.clock, &events);
        }
        events.clear();
        self.events = events;
    }

    fn render_versions(
        &mut self,
        ctx: &BlockCtx,
        mix: &mut [f32],
        out: &mut SlotOutbox,
        events: &[BlockEvent],
    ) {
        // Both versions of a crossfade follow the same fade ramp from here.
        let fade_at_start = self.fade;
        if let Some(mut v) = self.live.take() {
            let xfade = (self.xfade_left, self.xfade_len);
            let law = self.xfade_law;
            let mut fade = fade_at_start;
            let mut n = 0u32;
            // Fully faded in and no crossfade: every frame's gain is exactly 1.
            let unity = fade.value == 1.0 && fade.done() && (xfade.0 == 0 || xfade.1 == 0);
            let result = self.render(&mut v, ctx, events, mix, out, unity, |_| {
                let x = crossfade_gain(xfade, law, n, true);
                n += 1;
                fade.next() * x
            });
            match result {
                Ok(()) => {
                    self.fade = fade;
                    self.live = Some(v);
                }
                Err(fault) => self.fault(v, fault, ctx, out),
            }
        }
        if let Some(mut v) = self.outgoing.take() {
            let xfade = (self.xfade_left, self.xfade_len);
            let law = self.xfade_law;
            let mut fade = fade_at_start;
            let mut n = 0u32;
            let result = self.render(&mut v, ctx, events, mix, out, false, |_| {
                let x = crossfade_gain(xfade, law, n, false);
                n += 1;
                fade.next() * x
            });
            match result {
                Ok(()) => self.outgoing = Some(v),
                Err(fault) => {
                    out.event(Event::Faulted {
                        after_carry: false,
                        slot: self.id,
                        version: v.id,
                        fault,
                        clock: ctx.clock,
                    });
                    out.retire(v);
                }
            }
            self.xfade_left = self.xfade_left.saturating_sub(ctx.frames);
            if self.xfade_left == 0
                && let Some(old) = self.outgoing.take()
            {
                self.keep_previous(old, ctx, out);
            }
        }
        if self.previous.is_some() && ctx.clock > self.rollback_until {
            let v = self.previous.take().expect("checked");
            out.retire(v);
        }
        if self.unloading && self.fade.done() {
            self.unloading = false;
            let id = self.live.as_ref().map_or(0, |v| v.id);
            for v in [self.live.take(), self.outgoing.take(), self.previous.take()]
                .into_iter()
                .flatten()
            {
                out.retire(v);
            }
            out.event(Event::Unloaded {
                slot: self.id,
                version: id,
            });
        }
    }

    /// A version failed: silence it and, if a good version is at hand, go back to it.
    fn fault(&mut self, v: Box<Version>, fault: Fault, ctx: &BlockCtx, out: &mut SlotOutbox) {
        let after_carry = self.carried_swap.is_some_and(|(id, at)| {
            id == v.id
                && ctx.clock
                    < at + CARRY_SUSPECT_BLOCKS * ctx.frames as u64 + ctx.xfade_frames as u64
        });
        out.event(Event::Faulted {
            slot: self.id,
            version: v.id,
            fault,
            clock: ctx.clock,
            after_carry,
        });
        let from = v.id;
        out.retire(v);
        self.loud_blocks = 0;
        let back = if let Some(old) = self.outgoing.take() {
            // Mid-crossfade: the old version is still running; take it back.
            let level = crossfade_gain((self.xfade_left, self.xfade_len), self.xfade_law, 0, false);
            self.xfade_left = 0;
            Some((old, level))
        } else if ctx.clock <= self.rollback_until {
            self.previous.take().map(|p| (p, 0.0))
        } else {
            None
        };
        if let Some((good, level)) = back {
            out.event(Event::RolledBack {
                slot: self.id,
                from,
                to: good.id,
                clock: ctx.clock,
            });
            self.fade = Ramp::to(
                level,
                if self.unloading { 0.0 } else { 1.0 },
                ctx.fade_frames,
            );
            self.live = Some(good);
        }
    }

    /// Give one version this block's parameter values and events, call it
    /// and mix its output with a per-frame gain.
    #[allow(clippy::too_many_arguments)]
    fn render(
        &mut self,
        v: &mut Version,
        ctx: &BlockCtx,
        events: &[BlockEvent],
        mix: &mut [f32],
        out: &mut SlotOutbox,
        unity: bool,
        mut gain: impl FnMut(usize) -> f32,
    ) -> Result<(), Fault> {
        if let Some((id, fault)) = self.forced
            && id == v.id
        {
            self.forced = None;
            return Err(fault);
        }
        let before = violation_count();
        let n = v.feed(ctx.clock, events);
        let c = &mut v.controls;
        if c.dropped > c.dropped_reported
            && self
                .dropped_reported_at
                .is_none_or(|at| ctx.clock >= at + ctx.sample_rate as u64)
        {
            out.event(Event::EventsDropped {
                slot: self.id,
                version: v.id,
                count: c.dropped - c.dropped_reported,
            });
            c.dropped_reported = c.dropped;
            self.dropped_reported_at = Some(ctx.clock);
        }
        let result = v.process(ctx.frames, ctx.clock, n, ctx.call);
        let took = v.since_call_start_ns();
        self.busy_nanos += took;
        if let Some(kind) = v.take_grow_refusal() {
            out.event(Event::GrowRefused {
                slot: self.id,
                version: v.id,
                kind,
            });
        }
        let ptr = match result {
            Ok(p) => p,
            Err((fault, error)) => {
                out.fault_allocations += violation_count() - before;
                if let Some(e) = error {
                    out.retire_error(e);
                }
                return Err(fault);
            }
        };
        // Most of the block's time in one signal: say so (once in a while),
        // if the call itself used that CPU time, not the OS preempting it.
        // The CPU clock is read only on this slow path.
        if took * 2 > ctx.block_nanos
            && self
                .slow_reported_at
                .is_none_or(|at| ctx.clock > at + 5 * ctx.sample_rate as u64)
        {
            let cpu = (v.last_call_cpu().as_nanos() as u64).min(took);
            if cpu * 2 > ctx.block_nanos {
                self.slow_reported_at = Some(ctx.clock);
                out.event(Event::Slow {
                    slot: self.id,
                    version: v.id,
                    micros: (cpu / 1000) as u32,
                    percent: (cpu * 100 / ctx.block_nanos.max(1)) as u32,
                });
            }
        }
        let ch = v.channels as usize;
        let samples = v.output(ptr, ctx.frames)?;
        let oc = ctx.out_channels;
        // The one version playing, at unity, its channels all mapped: the
        // mixer can read its samples where they are (see `Slot::output`).
        let direct = unity && !self.filled && self.outgoing.is_none() && (ch == 1 || ch <= oc);
        let checked = if direct {
            kernels::peak_and_squares(samples)
        } else {
            kernels::peak(samples).map(|p| (p, 0.0))
        };
        let Some((peak, squares)) = checked else {
            return Err(Fault::NonFinite);
        };
        if peak > ABSURD_PEAK {
            self.loud_blocks += 1;
            if self.loud_blocks > 1 {
                return Err(Fault::TooLoud { peak });
            }
        } else {
            self.loud_blocks = 0;
        }
        if direct {
            self.direct = Some((samples.as_ptr() as usize, samples.len(), ch));
            self.last_out = (samples.as_ptr() as usize, samples.len());
            // As `level::measure` of the mixed block: a mono signal is in
            // every output channel, N channels in the first N of `oc`.
            let values = ctx.frames as usize * if ch == 1 { 1 } else { oc };
            self.level = (peak, (squares / values.max(1) as f32).sqrt());
            return Ok(());
        }
        if !self.filled {
            mix.fill(0.0);
            self.filled = true;
        }
        if unity {
            kernels::add_unity(mix, samples, ch, oc);
            return Ok(());
        }
        for (i, (frame, dst)) in samples
            .chunks_exact(ch * 4)
            .zip(mix.chunks_exact_mut(oc))
            .enumerate()
        {
            let g = gain(i);
            if ch == 1 {
                let s = f32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) * g;
                dst.iter_mut().for_each(|d| *d += s);
            } else {
                for (d, b) in dst.iter_mut().zip(frame.chunks_exact(4)) {
                    *d += f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * g;
                }
            }
        }
        Ok(())
    }
}

/// How the two versions of a crossfade are weighed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Law {
    /// Gains sum to 1 (`1 - t`, `t`): constant level for correlated versions.
    /// With carried state the new version continues the old one's phases and
    /// memories, so the two are (nearly) the same signal: equal power would
    /// swell by up to +3 dB at the middle.
    Linear,
    /// Squared gains sum to 1 (`cos`, `sin`): constant level for
    /// uncorrelated versions (nothing carried: each starts from its own state).
    EqualPower,
}

impl Law {
    fn for_swap(carried_blocks: u32) -> Law {
        if carried_blocks > 0 {
            Law::Linear
        } else {
            Law::EqualPower
        }
    }
}

/// Crossfade gain at frame `n` of this block: rising for the new version,
/// falling for the old. With no crossfade running: 1 for the new.
#[inline]
fn crossfade_gain((left, len): (u32, u32), law: Law, n: u32, rising: bool) -> f32 {
    if len == 0 || left == 0 {
        return if rising { 1.0 } else { 0.0 };
    }
    let done = (len - left + n).min(len) as f32 / len as f32;
    match (law, rising) {
        (Law::Linear, true) => done,
        (Law::Linear, false) => 1.0 - done,
        (Law::EqualPower, true) => (done * std::f32::consts::FRAC_PI_2).sin(),
        (Law::EqualPower, false) => (done * std::f32::consts::FRAC_PI_2).cos(),
    }
}
