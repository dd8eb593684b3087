//! The master stage: the last thing before the device. A peak limiter that
//! leaves everything below -1 dBFS untouched and never lets a sample past
//! 0 dBFS, and reads the level of what it lets through (for the master
//! meter; in the quiet case in the same pass as its own test). Runs on the
//! audio thread.
//!
//! Gain is computed from an envelope with instant attack and exponential
//! release, linked across channels: while the envelope is under the
//! threshold the gain is exactly 1 (transparent); above it the gain brings
//! the peak down to the threshold. A final clamp to [-1, 1] guards against
//! anything the arithmetic could leave over.

/// -1 dBFS.
pub const THRESHOLD: f32 = 0.891_250_9;
use super::level;

/// Release time constant.
const RELEASE_SECONDS: f32 = 0.1;

pub struct Master {
    channels: usize,
    envelope: f32,
    release: f32,
}

impl Master {
    pub fn new(channels: usize, sample_rate: u32) -> Self {
        Master {
            channels,
            envelope: 0.0,
            release: (-1.0 / (RELEASE_SECONDS * sample_rate as f32)).exp(),
        }
    }

    /// Limit `block` (interleaved) in place and return its level after
    /// limiting (peak and RMS, as [`level::measure`] reads it). Non-finite
    /// input never reaches here (slots drop it), but is zeroed all the same.
    pub fn process(&mut self, block: &mut [f32]) -> (f32, f32) {
        if let Some(level) = self.quiet(block) {
            return level;
        }
        self.limit(block);
        level::measure(block)
    }

    /// [`Master::process`] for a block whose level the caller knows, bit
    /// for bit what [`level::measure`] would read, and whose samples are
    /// all finite: then the quiet test needs no pass over the samples.
    pub fn process_measured(&mut self, block: &mut [f32], level: (f32, f32)) -> (f32, f32) {
        // `quiet`'s test without the pass: with every sample finite, none
        // is above the threshold exactly when the peak is not.
        if self.envelope <= THRESHOLD && level.0 <= THRESHOLD {
            self.envelope = level.0.max(self.envelope * self.release);
            return level;
        }
        self.process(block)
    }

    /// [`Master::process`]'s quiet case: the block's level (and the
    /// envelope moved on) when the block passes unchanged.
    #[inline]
    fn quiet(&mut self, block: &[f32]) -> Option<(f32, f32)> {
        // The quiet case, one vectorized pass that also measures the level:
        // every sample finite and at most the threshold, and the envelope
        // not above it. Then no frame of the loop below would change a
        // sample, and the envelope stays at or under the threshold, where
        // its exact value never matters: the first frame whose peak passes
        // the threshold sets the envelope to that peak whatever it was. So
        // the output is bit for bit the loop's, for about a tenth of its
        // cost (its envelope is a chain of dependent multiplications, one
        // per frame).
        if self.envelope <= THRESHOLD {
            let (level, over) = level::measure_under(block, THRESHOLD);
            if !over {
                self.envelope = level.0.max(self.envelope * self.release);
                return Some(level);
            }
        }
        None
    }

    /// The limiter, frame by frame.
    fn limit(&mut self, block: &mut [f32]) {
        for frame in block.chunks_exact_mut(self.channels) {
            let mut peak = 0.0f32;
            for s in frame.iter_mut() {
                if !s.is_finite() {
                    *s = 0.0;
                }
                peak = peak.max(s.abs());
            }
            self.envelope = if peak > self.envelope {
                peak
            } else {
                peak.max(self.envelope * self.release)
            };
            if self.envelope > THRESHOLD {
                let gain = THRESHOLD / self.envelope;
                for s in frame.iter_mut() {
                    *s = (*s * gain).clamp(-1.0, 1.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| {
                let s = amp * (i as f32 * 0.0576).sin();
                [s, s]
            })
            .collect()
    }

    #[test]
    fn transparent_below_minus_one_dbfs() {
        let input = sine(0.88, 48_000);
        let mut out = input.clone();
        Master::new(2, 48_000).process(&mut out);
        assert_eq!(input, out, "bit-exact below the threshold");
    }

    #[test]
    fn nothing_passes_zero_dbfs() {
        let mut out = sine(8.0, 48_000);
        Master::new(2, 48_000).process(&mut out);
        let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak <= THRESHOLD + 1e-6, "peak {peak}");
        assert!(peak > 0.85, "still audible: {peak}");
    }

    /// Quiet stretches, loud bursts, silence, a NaN, in blocks of 128
    /// frames: the quiet shortcut leaves every sample as the frame loop
    /// alone does, bit for bit.
    #[test]
    fn the_quiet_shortcut_changes_no_sample() {
        let mut input = Vec::new();
        for (amp, n) in [
            (0.5, 3000),
            (3.0, 700),
            (0.88, 9000),
            (0.0, 500),
            (1.5, 64),
            (0.2, 20_000),
        ] {
            input.extend(sine(amp, n));
        }
        input[2 * 12_001] = f32::NAN;
        let (mut fast, mut slow) = (input.clone(), input.clone());
        let (mut a, mut b) = (Master::new(2, 48_000), Master::new(2, 48_000));
        let mut shortcuts = 0;
        for (f, s) in fast.chunks_mut(256).zip(slow.chunks_mut(256)) {
            // `process`, counting the shortcuts.
            if a.quiet(f).is_some() {
                shortcuts += 1;
            } else {
                a.limit(f);
            }
            b.limit(s);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&fast) == bits(&slow), "the shortcut changed samples");
        assert!(
            shortcuts > 100,
            "the shortcut was taken ({shortcuts} blocks)"
        );
        assert!(slow.iter().any(|s| *s != 0.0 && s.abs() < 0.5));
    }

    /// Quiet blocks, limited blocks and a NaN: the level `process` returns
    /// is the measure of the block it leaves, bit for bit.
    #[test]
    fn the_level_is_that_of_the_output() {
        let mut m = Master::new(2, 48_000);
        let (mut quiet, mut loud) = (0, 0);
        for (k, amp) in [0.5f32, 3.0, 0.88, 0.2, 1.2, 0.0].into_iter().enumerate() {
            let mut block = sine(amp, 256);
            if k == 3 {
                block[7] = f32::NAN;
            }
            let level = m.process(&mut block);
            let want = level::measure(&block);
            assert_eq!(
                (level.0.to_bits(), level.1.to_bits()),
                (want.0.to_bits(), want.1.to_bits()),
                "block {k}"
            );
            if level.0 <= THRESHOLD && amp < THRESHOLD {
                quiet += 1;
            } else {
                loud += 1;
            }
        }
        assert!(quiet >= 3 && loud >= 2, "{quiet} quiet, {loud} limited");
    }

    /// Quiet blocks, loud ones, the quiet ones after them (the envelope
    /// still above the threshold) and silence: given the block's level as
    /// `measure` reads it, `process_measured` leaves every sample and
    /// returns every level as `process` does, bit for bit.
    #[test]
    fn a_known_level_changes_nothing() {
        let (mut a, mut b) = (Master::new(2, 48_000), Master::new(2, 48_000));
        let mut limited = 0;
        for (k, amp) in [0.5f32, 0.2, 3.0, 0.4, 0.4, 0.4, 0.0, 0.88, 1.5, 0.3]
            .into_iter()
            .enumerate()
        {
            for _ in 0..20 {
                let block = sine(amp, 128);
                let (mut x, mut y) = (block.clone(), block.clone());
                let got = a.process_measured(&mut x, level::measure(&block));
                let want = b.process(&mut y);
                let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
                assert!(bits(&x) == bits(&y), "block of amplitude {amp} ({k})");
                assert_eq!(
                    (got.0.to_bits(), got.1.to_bits()),
                    (want.0.to_bits(), want.1.to_bits())
                );
                limited += usize::from(x != block);
            }
        }
        assert!(limited > 40, "the limiter worked in {limited} blocks");
    }

    #[test]
    fn non_finite_is_zeroed() {
        let mut out = vec![f32::NAN, f32::INFINITY, 0.5, -0.5];
        Master::new(2, 48_000).process(&mut out);
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
}
