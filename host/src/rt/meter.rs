//! Per-signal CPU meters: how much of the block period each signal's guest
//! calls take, published through atomics (no allocation, no system call) for
//! the overload line, `--stats` and a live console. The audio thread adds
//! each block's time per slot ([`Meters::record`]); the control side takes
//! the totals since its last look ([`Meters::take`]). Times are monotonic
//! clock readings around the calls: on a real-time thread the OS does not
//! preempt, so they are the calls' own cost.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct SlotMeter {
    // Written by the audio thread only (plain loads and stores: two locked
    // adds per signal and block were a fifth of the mixer's own time with
    // 100 signals, `perf annotate`).
    /// Totals since the slot's first block.
    busy_ns: AtomicU64,
    block_ns: AtomicU64,
    /// Largest share of one block, in millionths, since the take
    /// `peak_since` counts.
    peak_ppm: AtomicU64,
    peak_since: AtomicU64,
    /// Share of the recent blocks, in millionths: each block weighs an
    /// eighth (not restarted by `take`).
    recent_ppm: AtomicU64,
    /// Takes so far (written by the control side only): the audio thread
    /// starts a new peak when it sees this move.
    takes: AtomicU64,
}

/// A slot's totals at the last take (control side only; apart from the
/// meters, whose lines the audio thread walks every block).
#[derive(Default)]
struct Taken {
    busy_ns: AtomicU64,
    block_ns: AtomicU64,
}

/// One meter per slot.
pub struct Meters {
    slots: Box<[SlotMeter]>,
    taken: Box<[Taken]>,
}

/// A slot's use of the block period since the last [`Meters::take`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SlotLoad {
    /// Mean share of the block period (1.0 = the whole block).
    pub share: f64,
    /// The largest share in any one block.
    pub peak: f64,
}

/// A block's length, and the millionths of it each nanosecond is, in
/// 32.32 fixed point: the mixer makes one per block ([`BlockLength::new`]),
/// so a slot's share is a multiplication, not a division per signal.
#[derive(Clone, Copy, Debug)]
pub struct BlockLength {
    ns: u64,
    ppm_per_ns: u64,
}

impl BlockLength {
    pub fn new(ns: u64) -> Self {
        BlockLength {
            ns,
            ppm_per_ns: ((1_000_000u128 << 32) / u128::from(ns.max(1))) as u64,
        }
    }

    /// `busy_ns` in millionths of the block.
    fn ppm(self, busy_ns: u64) -> u64 {
        ((u128::from(busy_ns) * u128::from(self.ppm_per_ns)) >> 32) as u64
    }
}

impl Meters {
    pub fn new(slots: usize) -> Self {
        Meters {
            slots: (0..slots).map(|_| SlotMeter::default()).collect(),
            taken: (0..slots).map(|_| Taken::default()).collect(),
        }
    }

    /// Audio thread (the only writer of these): `slot` took `busy_ns` of a
    /// block of length `block`.
    pub fn record(&self, slot: usize, busy_ns: u64, block: BlockLength) {
        let Some(m) = self.slots.get(slot) else {
            return;
        };
        let add = |a: &AtomicU64, x: u64| a.store(a.load(Ordering::Relaxed) + x, Ordering::Relaxed);
        add(&m.busy_ns, busy_ns);
        add(&m.block_ns, block.ns);
        let ppm = block.ppm(busy_ns);
        let takes = m.takes.load(Ordering::Relaxed);
        if m.peak_since.load(Ordering::Relaxed) != takes {
            // Taken since: a new peak starts with this block.
            m.peak_since.store(takes, Ordering::Relaxed);
            m.peak_ppm.store(ppm, Ordering::Relaxed);
        } else if ppm > m.peak_ppm.load(Ordering::Relaxed) {
            m.peak_ppm.store(ppm, Ordering::Relaxed);
        }
        let recent = m.recent_ppm.load(Ordering::Relaxed);
        m.recent_ppm
            .store((recent * 7 + ppm) / 8, Ordering::Relaxed);
    }

    /// Control side: the share of the block period `slot` used in its
    /// recent blocks (0 if it has not played), without restarting anything.
    pub fn recent(&self, slot: usize) -> f64 {
        self.slots
            .get(slot)
            .map_or(0.0, |m| m.recent_ppm.load(Ordering::Relaxed) as f64 / 1e6)
    }

    /// Control side (one caller at a time): the load of `slot` since the
    /// last call (`None` when it rendered no block meanwhile). A block the
    /// audio thread records while this runs counts in the next take, its
    /// peak possibly in neither.
    pub fn take(&self, slot: usize) -> Option<SlotLoad> {
        let (m, taken) = (self.slots.get(slot)?, self.taken.get(slot)?);
        let block = m.block_ns.load(Ordering::Relaxed);
        let busy = m.busy_ns.load(Ordering::Relaxed);
        let takes = m.takes.load(Ordering::Relaxed);
        let peak = if m.peak_since.load(Ordering::Relaxed) == takes {
            m.peak_ppm.load(Ordering::Relaxed)
        } else {
            0
        };
        let block = block - taken.block_ns.swap(block, Ordering::Relaxed);
        let busy = busy - taken.busy_ns.swap(busy, Ordering::Relaxed);
        m.takes.store(takes + 1, Ordering::Relaxed);
        (block > 0).then(|| SlotLoad {
            share: busy as f64 / block as f64,
            peak: peak as f64 / 1e6,
        })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_peaks_add_up_and_restart() {
        let m = Meters::new(2);
        let block = BlockLength::new(4_000);
        m.record(1, 1_000, block);
        m.record(1, 3_000, block);
        let l = m.take(1).unwrap();
        assert_eq!(l.share, 0.5);
        assert_eq!(l.peak, 0.75);
        assert_eq!(m.take(1), None, "restarted");
        // 1/8 of 25 %, then 1/8 of 75 % added to 7/8 of that.
        assert_eq!(
            m.recent(1),
            ((250_000 / 8) * 7 / 8 + 750_000 / 8) as f64 / 1e6
        );
        assert_eq!(m.recent(0), 0.0);
        assert_eq!(m.take(0), None, "never rendered");
        m.record(1, 2_000, block);
        assert_eq!(
            m.take(1),
            Some(SlotLoad {
                share: 0.5,
                peak: 0.5
            }),
            "the peak restarted with the take"
        );
    }
}
