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
    busy_ns: AtomicU64,
    block_ns: AtomicU64,
    /// Largest share of one block, in millionths.
    peak_ppm: AtomicU64,
    /// Share of the recent blocks, in millionths: each block weighs an
    /// eighth (not restarted by `take`).
    recent_ppm: AtomicU64,
}

/// One meter per slot.
pub struct Meters {
    slots: Box<[SlotMeter]>,
}

/// A slot's use of the block period since the last [`Meters::take`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SlotLoad {
    /// Mean share of the block period (1.0 = the whole block).
    pub share: f64,
    /// The largest share in any one block.
    pub peak: f64,
}

impl Meters {
    pub fn new(slots: usize) -> Self {
        Meters {
            slots: (0..slots).map(|_| SlotMeter::default()).collect(),
        }
    }

    /// Audio thread: `slot` took `busy_ns` of a block lasting `block_ns`.
    pub fn record(&self, slot: usize, busy_ns: u64, block_ns: u64) {
        let Some(m) = self.slots.get(slot) else {
            return;
        };
        m.busy_ns.fetch_add(busy_ns, Ordering::Relaxed);
        m.block_ns.fetch_add(block_ns, Ordering::Relaxed);
        let ppm = busy_ns.saturating_mul(1_000_000) / block_ns.max(1);
        // As the level meters' peaks (`level.rs`): a locked update only
        // when this block raises the peak.
        if ppm > m.peak_ppm.load(Ordering::Relaxed) {
            m.peak_ppm.fetch_max(ppm, Ordering::Relaxed);
        }
        // One writer (the audio thread): a plain load and store.
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

    /// Control side: the load of `slot` since the last call (`None` when it
    /// rendered no block meanwhile); the counters restart from zero.
    pub fn take(&self, slot: usize) -> Option<SlotLoad> {
        let m = self.slots.get(slot)?;
        let block = m.block_ns.swap(0, Ordering::Relaxed);
        let busy = m.busy_ns.swap(0, Ordering::Relaxed);
        let peak = m.peak_ppm.swap(0, Ordering::Relaxed);
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
        m.record(1, 1_000, 4_000);
        m.record(1, 3_000, 4_000);
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
    }
}
