//! The master stage: the last thing before the device. A peak limiter that
//! leaves everything below -1 dBFS untouched and never lets a sample past
//! 0 dBFS. Runs on the audio thread.
//!
//! Gain is computed from an envelope with instant attack and exponential
//! release, linked across channels: while the envelope is under the
//! threshold the gain is exactly 1 (transparent); above it the gain brings
//! the peak down to the threshold. A final clamp to [-1, 1] guards against
//! anything the arithmetic could leave over.

/// -1 dBFS.
pub const THRESHOLD: f32 = 0.891_250_9;
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

    /// Limit `block` (interleaved) in place. Non-finite input never reaches
    /// here (slots drop it), but is zeroed all the same.
    pub fn process(&mut self, block: &mut [f32]) {
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

    #[test]
    fn non_finite_is_zeroed() {
        let mut out = vec![f32::NAN, f32::INFINITY, 0.5, -0.5];
        Master::new(2, 48_000).process(&mut out);
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
}
