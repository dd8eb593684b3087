//! The block loop: at each block boundary apply queued commands (loads,
//! swaps, unloads), let every slot render into its own buffer, sum the
//! buffers in slot order, then run the master stage. The same code serves the
//! live audio callback and offline rendering. Runs on the audio thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::guard::{self, Stats};
use super::guest::CallLimits;
use super::master::Master;
use super::messages::{Command, Event, Garbage};
use super::outbox::{Outbox, SlotOutbox};
use super::slot::{BlockCtx, Slot};

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
}

/// The audio-thread half of the engine.
pub struct Mixer {
    config: MixerConfig,
    slots: Box<[Slot]>,
    /// One outbox per slot, drained in slot order.
    slot_outs: Box<[SlotOutbox]>,
    /// The slots rendered this block, in slot order.
    active: Box<[usize]>,
    active_len: usize,
    commands: rtrb::Consumer<Command>,
    outbox: Outbox,
    master: Master,
    clock: u64,
    stats: Arc<Stats>,
}

/// The queue ends the control side keeps.
pub struct MixerLink {
    pub commands: rtrb::Producer<Command>,
    pub garbage: rtrb::Consumer<Garbage>,
    pub events: rtrb::Consumer<Event>,
    pub stats: Arc<Stats>,
}

impl Mixer {
    /// Build a mixer and the other ends of its queues. Everything the block
    /// loop needs is allocated here.
    pub fn new(config: MixerConfig) -> (Mixer, MixerLink) {
        let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(256);
        let (garbage_tx, garbage_rx) = rtrb::RingBuffer::new(1024);
        let (event_tx, event_rx) = rtrb::RingBuffer::new(1024);
        let stats = Arc::new(Stats::default());
        let mixer = Mixer {
            config,
            slots: (0..config.slots)
                .map(|i| Slot::new(i, config.block, config.channels))
                .collect(),
            slot_outs: (0..config.slots).map(|_| SlotOutbox::default()).collect(),
            active: vec![0; config.slots].into_boxed_slice(),
            active_len: 0,
            commands: cmd_rx,
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
        };
        let link = MixerLink {
            commands: cmd_tx,
            garbage: garbage_rx,
            events: event_rx,
            stats,
        };
        (mixer, link)
    }

    pub fn config(&self) -> &MixerConfig {
        &self.config
    }

    /// Frames rendered so far: the clock of the next block.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Fill `out` (interleaved, any whole number of frames), splitting it into
    /// blocks of at most `config.block` frames.
    pub fn render(&mut self, out: &mut [f32]) {
        guard::run(self.config.check_alloc, || {
            let before = guard::violation_count();
            self.outbox.fault_allocations = 0;
            let step = self.config.block as usize * self.config.channels;
            for block in out.chunks_mut(step) {
                self.render_block(block);
            }
            let faults = self.outbox.fault_allocations;
            let violations = (guard::violation_count() - before).saturating_sub(faults);
            self.stats
                .violations
                .fetch_add(violations, Ordering::Relaxed);
            self.stats
                .fault_allocations
                .fetch_add(faults, Ordering::Relaxed);
            // Publish the outbox's overflow counts (they only ever grow).
            self.stats
                .leaked
                .store(self.outbox.leaked, Ordering::Relaxed);
            self.stats
                .lost_events
                .store(self.outbox.lost_events, Ordering::Relaxed);
        });
    }

    fn render_block(&mut self, block: &mut [f32]) {
        let c = &self.config;
        let frames = (block.len() / c.channels) as u32;
        let ctx = BlockCtx {
            frames,
            clock: self.clock,
            out_channels: c.channels,
            call: c.call,
            fade_frames: c.fade_frames,
            xfade_frames: c.xfade_frames,
            rollback_frames: c.rollback_frames,
            block_nanos: frames as u64 * 1_000_000_000 / c.sample_rate as u64,
            sample_rate: c.sample_rate,
        };
        while let Ok(cmd) = self.commands.pop() {
            match cmd {
                Command::Load {
                    slot,
                    version,
                    fade_in,
                } => match self.slots.get_mut(slot) {
                    Some(s) => {
                        let out = &mut self.slot_outs[slot];
                        s.load(version, fade_in, &ctx, out);
                        out.drain_into(&mut self.outbox);
                    }
                    None => self.outbox.retire(version),
                },
                Command::Unload { slot } => {
                    if let Some(s) = self.slots.get_mut(slot) {
                        s.unload(&ctx);
                    }
                }
            }
        }
        self.active_len = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.is_idle() {
                self.active[self.active_len] = i;
                self.active_len += 1;
            }
        }
        for &i in &self.active[..self.active_len] {
            self.slots[i].process(&ctx, &mut self.slot_outs[i]);
        }
        self.mix(block, frames);
        self.master.process(block);
        self.clock += frames as u64;
        self.stats.blocks.fetch_add(1, Ordering::Relaxed);
    }

    /// Sum the slots' buffers into `block` in slot order and pass their
    /// outboxes on, also in slot order: the result does not depend on which
    /// thread rendered which slot.
    fn mix(&mut self, block: &mut [f32], frames: u32) {
        block.fill(0.0);
        let ch = self.config.channels;
        for &i in &self.active[..self.active_len] {
            self.slot_outs[i].drain_into(&mut self.outbox);
            for (d, s) in block.iter_mut().zip(self.slots[i].output(frames, ch)) {
                *d += s;
            }
        }
    }
}
