//! The block loop: at each block boundary apply queued commands (loads,
//! swaps, unloads), let every slot render into its own buffer (on the
//! audio thread alone or shared with the [`pool`](super::pool)'s workers,
//! each slot given the parameter and note events due in the block first),
//! sum the buffers in slot order, then run the master stage. The same code
//! serves the live audio callback and offline rendering. Runs on the audio
//! thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::guard::{self, Stats};
use super::guest::CallLimits;
use super::level::Levels;
use super::master::Master;
use super::messages::{Command, ControlEvent, Event, Garbage};
use super::meter::{BlockLength, Meters};
use super::outbox::{Outbox, SlotOutbox};
use super::pool::Pool;
use super::slot::{BlockCtx, Slot};
use super::strip::{Added, Strips};

/// Fixed facts of a mixer, chosen before the stream starts.
#[derive(Clone, Copy, Debug)]
pub struct MixerConfig {
    pub sample_rate: u32,
    pub channels: usize,
    /// Largest block a guest is asked for (`max_frames` of `init`).
    pub block: u32,
    pub slots: usize,
    /// The limits of one guest call.
    pub call: CallLimits,
    pub fade_frames: u32,
    pub xfade_frames: u32,
    pub rollback_frames: u64,
    /// Count allocator calls on this thread (see [`guard`]).
    pub check_alloc: bool,
    /// Threads rendering slots: the audio thread plus `threads - 1` workers.
    pub threads: usize,
    /// Guest time of a block (measured on the block before) from which the
    /// workers are woken to share it; below it the audio thread renders alone.
    pub parallel_min: Duration,
    /// The workers ask for real-time priority (playing live).
    pub realtime: bool,
}

impl MixerConfig {
    /// Below this much guest time per block, waking a worker (a system call
    /// when it is parked, and a few microseconds until it runs) would cost
    /// about as much as it could save.
    pub const PARALLEL_MIN: Duration = Duration::from_micros(100);
}

/// The audio-thread half of the engine.
pub struct Mixer {
    config: MixerConfig,
    pool: Pool,
    commands: rtrb::Consumer<Command>,
    /// Per-signal gain, mute and solo, fed by the control-event queue.
    strips: Strips,
    /// The clock, published for the control side's event timestamps.
    shared_clock: Arc<AtomicU64>,
    outbox: Outbox,
    master: Master,
    clock: u64,
    stats: Arc<Stats>,
    meters: Arc<Meters>,
    levels: Arc<Levels>,
    /// Allocator calls on this thread while guests faulted (this render call).
    own_faults: u64,
    /// Frames of the last render call (an [`Event::Buffer`] says when it changes).
    last_frames: u32,
}

/// The queue ends the control side keeps.
pub struct MixerLink {
    pub commands: rtrb::Producer<Command>,
    pub garbage: rtrb::Consumer<Garbage>,
    pub events: rtrb::Consumer<Event>,
    pub stats: Arc<Stats>,
    /// Per-signal CPU use, by slot.
    pub meters: Arc<Meters>,
    /// Per-slot and master peak/RMS levels, by slot.
    pub levels: Arc<Levels>,
    /// Frame-timestamped control events (gain, mute, solo) in: a queue of
    /// its own, independent of the load queue.
    pub controls: rtrb::Producer<ControlEvent>,
    /// The mixer's clock at the start of its last block.
    pub clock: Arc<AtomicU64>,
}

impl Mixer {
    /// Build a mixer and the other ends of its queues. Everything the block
    /// loop needs is allocated here, and the pool's workers are started
    /// (each warmed up with a call into wasm on `engine`, when given).
    ///
    /// # Errors
    /// When a worker thread cannot be started.
    pub fn new(
        config: MixerConfig,
        engine: Option<&wasmtime::Engine>,
    ) -> std::io::Result<(Mixer, MixerLink)> {
        super::kernels::detect();
        // Room for a first version of every slot before the first block
        // (`render` loads them all first).
        let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(256.max(2 * config.slots));
        let (garbage_tx, garbage_rx) = rtrb::RingBuffer::new(1024);
        let (event_tx, event_rx) = rtrb::RingBuffer::new(1024);
        let (control_tx, control_rx) = rtrb::RingBuffer::new(1024);
        let clock = Arc::new(AtomicU64::new(0));
        let stats = Arc::new(Stats::default());
        let meters = Arc::new(Meters::new(config.slots));
        let levels = Arc::new(Levels::new(config.slots));
        let slots = (0..config.slots)
            .map(|i| Slot::new(i, config.block, config.channels))
            .collect();
        let ctx = Self::ctx(&config, 0, config.block);
        let pool = Pool::new(
            slots,
            config.threads,
            engine,
            config.check_alloc,
            config.realtime,
            stats.clone(),
            ctx,
        )?;
        let mixer = Mixer {
            config,
            pool,
            commands: cmd_rx,
            strips: Strips::new(config.slots, config.fade_frames, control_rx),
            shared_clock: clock.clone(),
            outbox: Outbox {
                garbage: garbage_tx,
                events: event_tx,
                leaked: 0,
                lost_events: 0,
                fault_allocations: 0,
            },
            master: Master::new(config.channels, config.sample_rate),
            clock: 0,
            stats: stats.clone(),
            meters: meters.clone(),
            levels: levels.clone(),
            own_faults: 0,
            last_frames: 0,
        };
        let link = MixerLink {
            commands: cmd_tx,
            garbage: garbage_rx,
            events: event_rx,
            stats,
            meters,
            levels,
            controls: control_tx,
            clock,
        };
        Ok((mixer, link))
    }

    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// Frames rendered so far: the clock of the next block.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Threads that render slots (this one plus the pool's workers).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Blocks rendered by more than one thread so far.
    pub fn parallel_blocks(&self) -> u64 {
        self.pool.parallel_blocks()
    }

    /// Fill `out` (interleaved, any whole number of frames), splitting it into
    /// blocks of at most `config.block` frames.
    pub fn render(&mut self, out: &mut [f32]) {
        guard::run(self.config.check_alloc, || {
            let before = guard::violation_count();
            self.outbox.fault_allocations = 0;
            self.own_faults = 0;
            let frames = (out.len() / self.config.channels) as u32;
            if frames != self.last_frames && frames > 0 {
                self.last_frames = frames;
                self.outbox.event(Event::Buffer {
                    frames,
                    clock: self.clock,
                });
            }
            let step = self.config.block as usize * self.config.channels;
            for block in out.chunks_mut(step) {
                self.render_block(block);
            }
            // Workers publish their own counts; this thread's are these.
            // Locked adds only when there is something to add (offline,
            // this runs after every block).
            let violations = (guard::violation_count() - before).saturating_sub(self.own_faults);
            if violations > 0 {
                self.stats
                    .violations
                    .fetch_add(violations, Ordering::Relaxed);
            }
            if self.outbox.fault_allocations > 0 {
                self.stats
                    .fault_allocations
                    .fetch_add(self.outbox.fault_allocations, Ordering::Relaxed);
            }
            // Publish the outbox's overflow counts (they only ever grow).
            self.stats
                .leaked
                .store(self.outbox.leaked, Ordering::Relaxed);
            self.stats
                .lost_events
                .store(self.outbox.lost_events, Ordering::Relaxed);
        });
    }

    fn ctx(c: &MixerConfig, clock: u64, frames: u32) -> BlockCtx {
        BlockCtx {
            frames,
            clock,
            out_channels: c.channels,
            call: c.call,
            fade_frames: c.fade_frames,
            xfade_frames: c.xfade_frames,
            rollback_frames: c.rollback_frames,
            block_nanos: frames as u64 * 1_000_000_000 / c.sample_rate as u64,
            sample_rate: c.sample_rate,
        }
    }

    fn render_block(&mut self, block: &mut [f32]) {
        let frames = (block.len() / self.config.channels) as u32;
        let ctx = Self::ctx(&self.config, self.clock, frames);
        while let Ok(cmd) = self.commands.pop() {
            match cmd {
                Command::Load {
                    slot,
                    version,
                    fade_in,
                    restart,
                } if slot < self.pool.len() => {
                    let (s, out) = self.pool.lane(slot);
                    if s.is_idle() {
                        // A new signal in this slot: default strip.
                        self.strips.reset(slot);
                    }
                    s.load(version, fade_in, restart, &ctx, out);
                    out.drain_into(&mut self.outbox);
                }
                Command::Load { version, .. } => self.outbox.retire(version),
                Command::TierUp { slot, version } if slot < self.pool.len() => {
                    let (s, out) = self.pool.lane(slot);
                    s.tier_up(version, &ctx, out);
                    out.drain_into(&mut self.outbox);
                }
                Command::TierUp { version, .. } => self.outbox.retire(version),
                Command::Unload { slot } if slot < self.pool.len() => {
                    self.pool.lane(slot).0.unload(&ctx);
                    self.outbox.event(Event::Unloading {
                        slot,
                        clock: self.clock,
                    });
                }
                Command::Unload { .. } => {}
                Command::Fault {
                    slot,
                    version,
                    fault,
                } if slot < self.pool.len() => {
                    self.pool.lane(slot).0.force_fault(version, fault);
                }
                Command::Fault { .. } => {}
            }
        }
        // Parameter and note events due in this block go to their slots
        // before any slot renders (on whichever thread).
        // Each one a slot took is reported as applied at its frame.
        let (pool, outbox) = (&mut self.pool, &mut self.outbox);
        self.strips.dispatch(self.clock, frames, |e, applied| {
            if applied.slot < pool.len() && pool.lane(applied.slot).0.push_event(e) {
                outbox.event(Event::Applied(applied));
            }
        });
        // A slot rendered on this thread is done with at once, while it is
        // in the cache (with hundreds of slots, a second pass over them
        // after all rendered found each one out of the cache again): its
        // outbox is passed on and its load and level published, in slot
        // order as `mix` and `meter` do. With no strip event in this block
        // it is also summed into the block: the same sums in the same order
        // as `mix` makes.
        let ch = self.config.channels;
        let summing = self.strips.none_due(self.clock, frames);
        // Zeros, written only if no slot's samples are copied in first
        // (`Strips::mix_one`).
        let mut blank = summing;
        let (strips, outbox) = (&mut self.strips, &mut self.outbox);
        let (meters, levels) = (&self.meters, &self.levels);
        let mut went_idle = false;
        let mut summed = Summed::Silence;
        let length = BlockLength::new(ctx.block_nanos);
        let mut done = |i: usize, slot: &Slot, out: &mut SlotOutbox| {
            if summing {
                let added = strips.mix_one(block, ch, i, slot.output(frames, ch), &mut blank);
                summed = summed.then(added, slot.level());
            }
            out.drain_into(outbox);
            Self::meter_one(meters, levels, i, slot, length);
            went_idle |= slot.is_idle();
        };
        let (faults, serial) =
            self.pool
                .render_then(&ctx, self.config.parallel_min, Some(&mut done));
        self.own_faults += faults;
        if blank {
            block.fill(0.0);
        }
        if serial {
            if !summing {
                self.mix(block, frames);
            }
            if went_idle {
                self.reset_idle_strips();
            }
        } else {
            self.drain_outboxes();
            self.mix(block, frames);
            self.reset_idle_strips();
            self.meter(length);
        }
        // Summed here slot by slot, the block may be silence or one slot's
        // samples as they are, whose level that slot read already (the same
        // eight lanes over the same values, when the block is whole chunks
        // of eight): the master's quiet test then needs no pass of its own.
        let known = if serial && summing && block.len().is_multiple_of(8) {
            summed.level()
        } else {
            None
        };
        let level = match known {
            Some(level) => self.master.process_measured(block, level),
            None => self.master.process(block),
        };
        self.levels.record_master_measured(level);
        self.clock += frames as u64;
        self.shared_clock.store(self.clock, Ordering::Relaxed);
        // The mixer is the counter's only writer: no locked add needed.
        let blocks = self.stats.blocks.load(Ordering::Relaxed);
        self.stats.blocks.store(blocks + 1, Ordering::Relaxed);
    }

    /// Publish each rendered slot's share of this block and its level.
    fn meter(&self, length: BlockLength) {
        for k in 0..self.pool.active_count() {
            let i = self.pool.active_slot(k);
            Self::meter_one(&self.meters, &self.levels, i, self.pool.slot(i), length);
        }
    }

    fn meter_one(meters: &Meters, levels: &Levels, i: usize, slot: &Slot, length: BlockLength) {
        meters.record(i, slot.busy_nanos(), length);
        if slot.is_idle() {
            levels.clear(i);
        } else {
            levels.record_slot_measured(i, slot.level());
        }
    }

    /// Pass the rendered slots' outboxes on, in slot order: the result does
    /// not depend on which thread rendered which slot.
    fn drain_outboxes(&mut self) {
        for k in 0..self.pool.active_count() {
            let i = self.pool.active_slot(k);
            self.pool.lane(i).1.drain_into(&mut self.outbox);
        }
    }

    /// Sum the slots' outputs into `block` in slot order through their
    /// strips (gain, mute, solo).
    fn mix(&mut self, block: &mut [f32], frames: u32) {
        let n = self.pool.active_count();
        block.fill(0.0);
        let (ch, pool) = (self.config.channels, &self.pool);
        let slots = (0..n).map(|k| {
            let i = pool.active_slot(k);
            (i, pool.slot(i).output(frames, ch))
        });
        let outbox = &mut self.outbox;
        self.strips.mix(block, ch, self.clock, slots, &mut |e| {
            outbox.event(Event::Applied(e))
        });
    }

    /// Slots unloaded in this block: their mute, solo and gain go with them
    /// (after the whole block is mixed: a solo holds for the whole block).
    fn reset_idle_strips(&mut self) {
        for k in 0..self.pool.active_count() {
            let i = self.pool.active_slot(k);
            if self.pool.slot(i).is_idle() {
                self.strips.reset(i);
            }
        }
    }
}

/// What a block summed slot by slot (as each is rendered) holds so far.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Summed {
    /// Zeros: no slot added anything.
    Silence,
    /// One slot's samples exactly ([`Added::Exact`]), and that slot's level.
    One((f32, f32)),
    /// Anything else.
    Mixed,
}

impl Summed {
    /// After a slot with `level` was added as `added`.
    fn then(self, added: Added, level: (f32, f32)) -> Summed {
        match (self, added) {
            (s, Added::Nothing) => s,
            (Summed::Silence, Added::Exact) => Summed::One(level),
            _ => Summed::Mixed,
        }
    }

    /// The block's level as [`super::level::measure`] reads it, when known
    /// without looking at the samples.
    fn level(self) -> Option<(f32, f32)> {
        match self {
            Summed::Silence => Some((0.0, 0.0)),
            Summed::One(level) => Some(level),
            Summed::Mixed => None,
        }
    }
}
