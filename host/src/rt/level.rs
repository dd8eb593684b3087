//! Level meters: each slot's peak and RMS per block, and the master's,
//! published through atomics (`f32` bits in `AtomicU32`: no allocation, no
//! lock, no system call) for the live console. The audio thread measures
//! each block ([`Levels::record_slot_measured`],
//! [`Levels::record_master_measured`]); the control side takes the peak
//! since its last look and the RMS of the latest block ([`Levels::take`]).
//! Runs on the audio thread (recording) and the control thread (taking).

use std::sync::atomic::{AtomicU32, Ordering};

/// A sample at or above this magnitude counts as a clip (0 dBFS).
pub const CLIP: f32 = 1.0;

#[derive(Default)]
struct Meter {
    /// Largest |sample| since the last take (f32 bits; non-negative floats
    /// order like their bits, so `fetch_max` works on them).
    peak: AtomicU32,
    /// RMS of the latest block (f32 bits).
    rms: AtomicU32,
    /// Blocks with a clip since the last take.
    clips: AtomicU32,
}

/// A meter's reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Level {
    /// Largest |sample| since the last reading.
    pub peak: f32,
    /// RMS of the latest block (all channels).
    pub rms: f32,
    /// Did any block clip since the last reading?
    pub clipped: bool,
}

/// One meter per slot and one for the master output.
pub struct Levels {
    slots: Box<[Meter]>,
    master: Meter,
}

/// Peak and RMS of an interleaved block (non-finite samples count as 0;
/// the slots drop them anyway).
///
/// Eight partial sums and maxima side by side: one running sum would chain
/// every addition to the one before (about 4 cycles each, some 1,000 cycles
/// for a stereo block, per slot and block), where eight independent lanes
/// vectorize. A meter's RMS may differ from the serial sum's in the last
/// bits; the audio is not touched.
pub fn measure(block: &[f32]) -> (f32, f32) {
    measure_under(block, f32::INFINITY).0
}

/// [`measure`], and in the same pass whether any sample is non-finite or
/// above `limit` in magnitude (the master's quiet test).
#[inline]
pub fn measure_under(block: &[f32], limit: f32) -> ((f32, f32), bool) {
    let bytes: &[u8] = bytemuck::cast_slice(block);
    let super::kernels::Lanes {
        mut peak,
        squares: mut sum,
        mut over,
        taken,
    } = super::kernels::lanes(bytes, limit);
    // The rest, one per lane, as the lanes do it: |s|, or 0 when `s` is not
    // finite (a NaN fails the comparison), and the larger of two non-NaN
    // values by a plain comparison.
    for (k, s) in block[taken..].iter().enumerate() {
        let a = s.abs();
        over |= a.is_nan() || a > limit;
        let a = if a <= f32::MAX { a } else { 0.0 };
        peak[k] = if a > peak[k] { a } else { peak[k] };
        sum[k] += a * a;
    }
    let peak = peak.iter().fold(0.0f32, |m, p| m.max(*p));
    let sum: f32 = sum.iter().sum();
    let rms = if block.is_empty() {
        0.0
    } else {
        (sum / block.len() as f32).sqrt()
    };
    ((peak, rms), over)
}

impl Meter {
    fn record_measured(&self, peak: f32, rms: f32) {
        // Most blocks do not raise the peak: a plain read then, not a
        // locked compare-and-swap loop on the audio thread. A take in
        // between may restart the peak without this block's, which is then
        // at most the peak that take read.
        if peak.to_bits() > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(peak.to_bits(), Ordering::Relaxed);
        }
        self.rms.store(rms.to_bits(), Ordering::Relaxed);
        if peak >= CLIP {
            self.clips.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn take(&self) -> Level {
        Level {
            peak: f32::from_bits(self.peak.swap(0, Ordering::Relaxed)),
            rms: f32::from_bits(self.rms.load(Ordering::Relaxed)),
            clipped: self.clips.swap(0, Ordering::Relaxed) > 0,
        }
    }
}

impl Levels {
    pub fn new(slots: usize) -> Self {
        Levels {
            slots: (0..slots).map(|_| Meter::default()).collect(),
            master: Meter::default(),
        }
    }

    /// Audio thread: `slot`'s peak and RMS for this block, measured where
    /// it was rendered ([`measure`] of its output, while that was still in
    /// the cache of the thread that wrote it).
    pub fn record_slot_measured(&self, slot: usize, (peak, rms): (f32, f32)) {
        if let Some(m) = self.slots.get(slot) {
            m.record_measured(peak, rms);
        }
    }

    /// Audio thread: the level of the master stage's output for this
    /// block ([`measure`] of it, or [`Master::process`]'s reading).
    ///
    /// [`Master::process`]: super::master::Master::process
    pub fn record_master_measured(&self, (peak, rms): (f32, f32)) {
        self.master.record_measured(peak, rms);
    }

    /// Control side: `slot`'s level (peak since the last call).
    pub fn take(&self, slot: usize) -> Level {
        self.slots.get(slot).map(Meter::take).unwrap_or_default()
    }

    /// Control side: the master's level (peak since the last call).
    pub fn take_master(&self) -> Level {
        self.master.take()
    }

    /// A slot was emptied: its meter reads silence until it plays again.
    pub fn clear(&self, slot: usize) {
        if let Some(m) = self.slots.get(slot) {
            m.rms.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measure as first written (`is_finite`, `f32::max`), lane by lane.
    fn measure_plain(block: &[f32]) -> (f32, f32) {
        let (mut peak, mut sum) = ([0.0f32; 8], [0.0f32; 8]);
        for (i, s) in block.iter().enumerate() {
            let s = if s.is_finite() { *s } else { 0.0 };
            peak[i % 8] = peak[i % 8].max(s.abs());
            sum[i % 8] += s * s;
        }
        let peak = peak.iter().fold(0.0f32, |m, p| m.max(*p));
        let sum: f32 = sum.iter().sum();
        let rms = if block.is_empty() {
            0.0
        } else {
            (sum / block.len() as f32).sqrt()
        };
        (peak, rms)
    }

    #[test]
    fn measure_is_bit_identical_to_the_plain_loop() {
        for len in [0usize, 1, 7, 8, 9, 255, 256, 257] {
            let mut xs: Vec<f32> = (0..len)
                .map(|i| {
                    ((i * 37 % 101) as f32 - 50.0) * 0.013 * if i % 3 == 0 { -1.0 } else { 1.0 }
                })
                .collect();
            if len > 5 {
                xs[1] = f32::NAN;
                xs[3] = f32::INFINITY;
                xs[5] = f32::NEG_INFINITY;
            }
            let (p, r) = measure(&xs);
            let (wp, wr) = measure_plain(&xs);
            assert_eq!(
                (p.to_bits(), r.to_bits()),
                (wp.to_bits(), wr.to_bits()),
                "{len}"
            );
        }
        assert_eq!(measure(&[0.5, -0.9]).0, 0.9);
    }

    #[test]
    fn measure_under_flags_what_passes_the_limit() {
        let quiet: Vec<f32> = (0..300).map(|i| (i as f32 * 0.1).sin() * 0.8).collect();
        let (level, over) = measure_under(&quiet, 0.8);
        assert!(!over);
        assert_eq!(level, measure(&quiet), "the same reading");
        assert!(measure_under(&quiet, 0.7).1, "0.8 > 0.7");
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.81] {
            let mut x = quiet.clone();
            x[299] = bad;
            assert!(measure_under(&x, 0.8).1, "{bad}");
        }
    }

    #[test]
    fn peak_holds_until_taken_rms_is_the_latest_block() {
        let l = Levels::new(2);
        l.record_slot_measured(1, measure(&[0.5, -0.9, 0.0, 0.0]));
        l.record_slot_measured(1, measure(&[0.25, -0.25, 0.25, -0.25]));
        let r = l.take(1);
        assert_eq!(r.peak, 0.9);
        assert_eq!(r.rms, 0.25);
        assert!(!r.clipped);
        assert_eq!(l.take(1).peak, 0.0, "peak restarts");
        assert_eq!(l.take(0), Level::default(), "never played");
        l.record_master_measured(measure(&[1.0, 0.0]));
        assert!(l.take_master().clipped);
        assert!(!l.take_master().clipped, "clip mark restarts");
    }
}
