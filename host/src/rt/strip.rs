//! Per-signal mute, solo and gain, applied while the slots' buffers are
//! summed: control events (frame-timestamped, from their own wait-free
//! queue) split the block at their frames, and every level change ramps
//! linearly over the fade time, so a change starts on its exact frame and
//! never clicks. Parameter and note events wait here for their block too,
//! and are handed to their slots before the slots render
//! ([`Strips::dispatch`]). Runs on the audio thread; never allocates.

use super::kernels;
use super::messages::{ControlEvent, ControlKind};
use super::params::{BlockEvent, Delivery};

/// Most control events waiting for their frame (more stay in the queue).
pub const PENDING_CAPACITY: usize = 256;

/// One signal's strip: its settings and the level actually applied.
#[derive(Clone, Copy, Debug)]
struct Strip {
    gain: f32,
    mute: bool,
    solo: bool,
    /// The level applied to the next frame, where it heads and by how much
    /// it moves per frame.
    level: f32,
    target: f32,
    step: f32,
}

impl Strip {
    const DEFAULT: Strip = Strip {
        gain: 1.0,
        mute: false,
        solo: false,
        level: 1.0,
        target: 1.0,
        step: 0.0,
    };

    /// Held at exactly `level` for the whole block (no ramp under way).
    #[inline]
    fn steady_at(&self, level: f32) -> bool {
        self.level == self.target && self.level == level
    }

    #[inline]
    fn next(&mut self) -> f32 {
        let v = self.level;
        if self.level != self.target {
            self.level += self.step;
            if (self.step > 0.0 && self.level > self.target)
                || (self.step < 0.0 && self.level < self.target)
            {
                self.level = self.target;
            }
        }
        v
    }
}

/// The strips of all slots and the control events not yet due.
pub struct Strips {
    strips: Box<[Strip]>,
    /// Events waiting for their frame, ordered by frame (stable: events for
    /// the same frame keep their arrival order).
    pending: Vec<ControlEvent>,
    events: rtrb::Consumer<ControlEvent>,
    soloed: usize,
    ramp_frames: u32,
}

impl Strips {
    pub fn new(slots: usize, ramp_frames: u32, events: rtrb::Consumer<ControlEvent>) -> Self {
        Strips {
            strips: vec![Strip::DEFAULT; slots].into_boxed_slice(),
            pending: Vec::with_capacity(PENDING_CAPACITY),
            events,
            soloed: 0,
            ramp_frames: ramp_frames.max(1),
        }
    }

    /// Take what arrived from the queue, keeping `pending` ordered.
    fn receive(&mut self) {
        while self.pending.len() < self.pending.capacity() {
            let Ok(e) = self.events.pop() else { break };
            let at = self.pending.partition_point(|p| p.at <= e.at);
            // Within capacity: never reallocates.
            self.pending.insert(at, e);
        }
    }

    /// At the start of a block (`clock` .. `clock + frames`): take what
    /// arrived from the queue, and hand every parameter and note event due
    /// in the block to `deliver` (the event at its offset in the block,
    /// and as applied: its slot, and its `at` the frame it takes effect at),
    /// in frame order (stable); they leave the pending list. Gain, mute and
    /// solo events stay for [`Strips::mix`].
    pub fn dispatch(
        &mut self,
        clock: u64,
        frames: u32,
        mut deliver: impl FnMut(BlockEvent, ControlEvent),
    ) {
        self.receive();
        let end = clock + frames as u64;
        let mut keep = 0;
        for k in 0..self.pending.len() {
            let e = self.pending[k];
            let what = match e.kind {
                ControlKind::Param { id, value } if e.at < end => {
                    Some(Delivery::Param { id, value })
                }
                ControlKind::Note(n) if e.at < end => Some(Delivery::Note(n)),
                _ => None,
            };
            match what {
                Some(what) => {
                    let offset = e.at.saturating_sub(clock);
                    deliver(
                        BlockEvent {
                            offset: offset as u32,
                            what,
                        },
                        ControlEvent {
                            at: clock + offset,
                            ..e
                        },
                    )
                }
                None => {
                    self.pending[keep] = e;
                    keep += 1;
                }
            }
        }
        self.pending.truncate(keep);
    }

    /// Sum `slots` (slot index, its output) into `block` (interleaved,
    /// `channels` per frame), applying the events due in this block
    /// (`clock` .. `clock + frames`) at their frames. Sums in the order given.
    /// Only events taken in by [`Strips::dispatch`] at the block's start
    /// count (so none due in the block is missed by the slots). Each event
    /// applied is passed to `applied` with the frame it took effect at.
    pub fn mix<'a>(
        &mut self,
        block: &mut [f32],
        channels: usize,
        clock: u64,
        slots: impl Iterator<Item = (usize, SlotOut<'a>)> + Clone,
        applied: &mut impl FnMut(ControlEvent),
    ) {
        let frames = (block.len() / channels) as u64;
        let mut start = 0u64;
        loop {
            let end = match self.pending.first() {
                Some(e) if e.at < clock + frames => e.at.saturating_sub(clock).max(start),
                _ => frames,
            };
            if end > start {
                let (s, e) = (start as usize, end as usize);
                self.sum(
                    &mut block[s * channels..e * channels],
                    channels,
                    slots.clone().map(|(i, b)| (i, b.frames(s, e, channels))),
                );
            }
            start = end;
            if start >= frames {
                break;
            }
            // Apply every event of frame `clock + start`.
            let due = self.pending.partition_point(|p| p.at <= clock + start);
            for k in 0..due {
                let e = self.pending[k];
                self.apply(e);
                applied(ControlEvent {
                    at: clock + start,
                    ..e
                });
            }
            self.pending.drain(..due);
            self.retarget();
        }
    }

    /// Whether no event takes effect in the block of `frames` at `clock`
    /// (the slots can then be summed one by one, each as it is rendered).
    pub fn none_due(&self, clock: u64, frames: u32) -> bool {
        self.pending
            .first()
            .is_none_or(|e| e.at >= clock + frames as u64)
    }

    /// Add slot `i`'s output into `block` through its strip: in a block in
    /// which [`Strips::none_due`], calling this for each slot in slot order
    /// sums exactly as [`Strips::mix`] into a zeroed block. `blank` says
    /// that `block` is to be taken as zeros but was not written yet: the
    /// first slot added exactly is copied in (each sample plus zero, the
    /// same bits as zero plus the sample) instead of added to zeros written
    /// first; any other first slot zeroes it before adding. `blank` is
    /// cleared once `block` holds something. Says how it was added.
    pub fn mix_one(
        &mut self,
        block: &mut [f32],
        channels: usize,
        i: usize,
        out: SlotOut<'_>,
        blank: &mut bool,
    ) -> Added {
        let strip = &self.strips[i];
        let added = match out {
            _ if strip.steady_at(0.0) => Added::Nothing,
            SlotOut::Guest { channels: ch, .. } if strip.steady_at(1.0) && ch == channels => {
                Added::Exact
            }
            _ => Added::Other,
        };
        if *blank {
            match (added, out) {
                (Added::Nothing, _) => return added,
                (Added::Exact, SlotOut::Guest { bytes, .. }) => {
                    kernels::copy_unity(block, bytes);
                    *blank = false;
                    return added;
                }
                _ => {
                    block.fill(0.0);
                    *blank = false;
                }
            }
        }
        self.sum(block, channels, std::iter::once((i, out)));
        added
    }

    fn sum<'a>(
        &mut self,
        block: &mut [f32],
        channels: usize,
        slots: impl Iterator<Item = (usize, SlotOut<'a>)>,
    ) {
        for (i, src) in slots {
            let strip = &mut self.strips[i];
            if strip.steady_at(0.0) {
                continue;
            }
            match src {
                SlotOut::Mixed(src) if strip.steady_at(1.0) => {
                    for (d, s) in block.iter_mut().zip(src) {
                        *d += s;
                    }
                }
                SlotOut::Mixed(src) => {
                    for (dst, frame) in block
                        .chunks_exact_mut(channels)
                        .zip(src.chunks_exact(channels))
                    {
                        let g = strip.next();
                        for (d, s) in dst.iter_mut().zip(frame) {
                            *d += s * g;
                        }
                    }
                }
                SlotOut::Guest {
                    bytes,
                    channels: ch,
                } if strip.steady_at(1.0) => {
                    kernels::add_unity(block, bytes, ch, channels);
                }
                SlotOut::Guest {
                    bytes,
                    channels: ch,
                } => {
                    for (dst, frame) in block
                        .chunks_exact_mut(channels)
                        .zip(bytes.chunks_exact(ch * 4))
                    {
                        let g = strip.next();
                        kernels::add_frame(dst, frame, g);
                    }
                }
            }
        }
    }

    fn apply(&mut self, e: ControlEvent) {
        let Some(strip) = self.strips.get_mut(e.slot) else {
            return;
        };
        match e.kind {
            ControlKind::Gain(g) => strip.gain = g,
            ControlKind::Mute(m) => strip.mute = m,
            ControlKind::Solo(s) => {
                if s != strip.solo {
                    strip.solo = s;
                    if s {
                        self.soloed += 1;
                    } else {
                        self.soloed -= 1;
                    }
                }
            }
            // Handed to the slot by `dispatch` (one for an idle slot ends here).
            ControlKind::Param { .. } | ControlKind::Note(_) => {}
        }
    }

    /// Point every strip's ramp at its level under the current settings.
    fn retarget(&mut self) {
        let any_solo = self.soloed > 0;
        for strip in self.strips.iter_mut() {
            let audible = !strip.mute && (!any_solo || strip.solo);
            let target = if audible { strip.gain } else { 0.0 };
            if target != strip.target {
                strip.target = target;
                strip.step = (target - strip.level) / self.ramp_frames as f32;
                if strip.step == 0.0 {
                    // Too close to ramp (or flushed to zero): jump.
                    strip.level = target;
                }
            }
        }
    }

    /// A slot was emptied or given to another signal: back to the defaults.
    pub fn reset(&mut self, slot: usize) {
        if let Some(strip) = self.strips.get_mut(slot) {
            if strip.solo {
                self.soloed -= 1;
            }
            *strip = Strip::DEFAULT;
            self.retarget();
        }
    }
}

/// How [`Strips::mix_one`] added a slot's block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Not at all: its strip is silent (muted, or another slot soloed).
    Nothing,
    /// Each sample as it is: the version's samples, checked finite where
    /// they lie in its memory, with the mixer's channel count, at unity.
    Exact,
    /// Through a gain ramp, a channel mapping or the slot's own buffer.
    Other,
}

/// A slot's block as the mixer reads it.
#[derive(Clone, Copy, Debug)]
pub enum SlotOut<'a> {
    /// In the slot's buffer: interleaved, the mixer's channel count.
    Mixed(&'a [f32]),
    /// Straight from the memory of the one version playing at unity gain:
    /// `channels` interleaved little-endian `f32` per frame (mono goes to
    /// every output channel, N channels to the first N), the same sums as
    /// through the slot's buffer.
    Guest { bytes: &'a [u8], channels: usize },
}

impl<'a> SlotOut<'a> {
    /// Frames `from..to` of it (`channels`: the mixer's).
    fn frames(self, from: usize, to: usize, channels: usize) -> SlotOut<'a> {
        match self {
            SlotOut::Mixed(b) => SlotOut::Mixed(&b[from * channels..to * channels]),
            // The guest's own channel count, not the mixer's.
            SlotOut::Guest {
                bytes,
                channels: ch,
            } => SlotOut::Guest {
                bytes: &bytes[from * ch * 4..to * ch * 4],
                channels: ch,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strips(ramp: u32) -> (Strips, rtrb::Producer<ControlEvent>) {
        let (tx, rx) = rtrb::RingBuffer::new(16);
        (Strips::new(2, ramp, rx), tx)
    }

    fn ev(at: u64, slot: usize, kind: ControlKind) -> ControlEvent {
        ControlEvent { at, slot, kind }
    }

    /// Mix one block of a constant 1.0 from slot 0 (mono).
    fn block(s: &mut Strips, clock: u64, frames: usize) -> Vec<f32> {
        let src = vec![1.0f32; frames];
        let mut out = vec![0.0f32; frames];
        s.dispatch(clock, frames as u32, |_, _| {});
        s.mix(
            &mut out,
            1,
            clock,
            std::iter::once((0usize, SlotOut::Mixed(&src[..]))),
            &mut |_| {},
        );
        out
    }

    #[test]
    fn an_event_waits_for_its_block_and_frame() {
        let (mut s, mut tx) = strips(1);
        tx.push(ev(70, 0, ControlKind::Gain(0.5))).unwrap();
        assert!(block(&mut s, 0, 64).iter().all(|&v| v == 1.0), "not yet");
        let b = block(&mut s, 64, 64);
        // A one-frame ramp starting at frame 70 (index 6): the old level on
        // that frame, the new one from the next.
        assert!(b[..7].iter().all(|&v| v == 1.0), "{b:?}");
        assert!(b[7..].iter().all(|&v| v == 0.5), "{b:?}");
    }

    #[test]
    fn events_of_one_frame_apply_in_arrival_order_and_later_ones_after() {
        let (mut s, mut tx) = strips(1);
        tx.push(ev(10, 0, ControlKind::Gain(0.25))).unwrap();
        tx.push(ev(5, 0, ControlKind::Gain(2.0))).unwrap();
        tx.push(ev(10, 0, ControlKind::Gain(0.5))).unwrap();
        let b = block(&mut s, 0, 32);
        assert_eq!(
            b[6], 2.0,
            "the earlier frame first, whatever the arrival order"
        );
        assert_eq!(b[31], 0.5, "the last one sent for frame 10 wins");
    }

    #[test]
    fn solo_silences_the_others_and_unsolo_brings_them_back() {
        let (mut s, mut tx) = strips(1);
        tx.push(ev(0, 1, ControlKind::Solo(true))).unwrap();
        let b = block(&mut s, 0, 8);
        assert!(b[1..].iter().all(|&v| v == 0.0), "slot 0 not soloed: {b:?}");
        tx.push(ev(8, 1, ControlKind::Solo(false))).unwrap();
        let b = block(&mut s, 8, 8);
        assert!(b[1..].iter().all(|&v| v == 1.0), "{b:?}");
        tx.push(ev(16, 1, ControlKind::Solo(true))).unwrap();
        block(&mut s, 16, 8);
        s.reset(1);
        let b = block(&mut s, 24, 8);
        assert!(
            b[1..].iter().all(|&v| v == 1.0),
            "a reset slot's solo goes: {b:?}"
        );
    }
}
