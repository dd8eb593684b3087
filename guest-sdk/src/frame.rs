//! Frames: one sample per channel, `[f64; N]`, so every signal's channel
//! count is known at compile time and per-channel loops unroll.

use bytemuck::Pod;

/// One frame of an `N`-channel signal: `[f64; N]`, `N >= 1`.
///
/// Helpers run one independent state per channel by zipping their state
/// block with the frame's channels.
pub trait Frame: Copy + 'static {
    /// Number of channels.
    const CHANNELS: usize;
    /// The frame as stored in a delay line: `[f32; N]`.
    type Stored: Pod;
    /// Every channel set to `x`.
    fn splat(x: f64) -> Self;
    /// The channels.
    fn as_slice(&self) -> &[f64];
    /// The channels, mutably.
    fn as_mut_slice(&mut self) -> &mut [f64];
    /// Rounded to `f32`, for a delay line.
    fn store(&self) -> Self::Stored;
    /// Widened back from a delay line.
    fn load(s: &Self::Stored) -> Self;
}

impl<const N: usize> Frame for [f64; N] {
    const CHANNELS: usize = {
        assert!(N >= 1, "a signal has at least one channel");
        assert!(
            N <= crate::contract::MAX_CHANNELS,
            "a signal has at most 64 channels (lel::contract::MAX_CHANNELS)"
        );
        N
    };
    type Stored = [f32; N];

    #[inline(always)]
    fn splat(x: f64) -> Self {
        [x; N]
    }

    #[inline(always)]
    fn as_slice(&self) -> &[f64] {
        self
    }

    #[inline(always)]
    fn as_mut_slice(&mut self) -> &mut [f64] {
        self
    }

    #[inline(always)]
    fn store(&self) -> [f32; N] {
        self.map(|x| x as f32)
    }

    #[inline(always)]
    fn load(s: &[f32; N]) -> Self {
        s.map(f64::from)
    }
}
