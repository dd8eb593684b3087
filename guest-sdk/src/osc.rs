//! Sources: phase-accumulator oscillators (sine, PolyBLEP saw and square,
//! triangle) with a phase-continuous frequency input, and seeded white noise.

use core::marker::PhantomData;

use bytemuck::{Pod, Zeroable};

use crate::claim::{Binder, Error, One};
use crate::ctx::Ctx;
use crate::key::Key;
use crate::math::{floor, sin_turns, wrap_phase};
use crate::node::{Node, node_ops};
use crate::param::Param;

/// A waveform of phase `p` in `[0, 1)`; `dt` is the phase increment per
/// sample (`|f| / sample_rate`, at most 0.5), for band-limiting.
pub trait Wave {
    /// The sample at phase `p`.
    fn sample(p: f64, dt: f64) -> f64;
}

/// `sin(2 pi p)`.
pub struct Sine;
/// `2p - 1 - blep(p, dt)`: band-limited rising saw.
pub struct Saw;
/// `(p < 0.5 ? 1 : -1) + blep(p, dt) - blep(fract(p + 0.5), dt)`.
pub struct Square;
/// `1 - 4 |fract(p + 0.25) - 0.5|`: starts at 0 rising, like the sine.
pub struct Triangle;

/// The two-sample polynomial band-limited step residual (PolyBLEP) of a
/// discontinuity at phase 0, for phase `p` and increment `dt`.
#[inline(always)]
pub fn poly_blep(p: f64, dt: f64) -> f64 {
    if p < dt {
        let x = p / dt;
        x + x - x * x - 1.0
    } else if p > 1.0 - dt {
        let x = (p - 1.0) / dt;
        x * x + x + x + 1.0
    } else {
        0.0
    }
}

impl Wave for Sine {
    #[inline(always)]
    fn sample(p: f64, _: f64) -> f64 {
        sin_turns(p)
    }
}

impl Wave for Saw {
    #[inline(always)]
    fn sample(p: f64, dt: f64) -> f64 {
        2.0 * p - 1.0 - poly_blep(p, dt)
    }
}

impl Wave for Square {
    #[inline(always)]
    fn sample(p: f64, dt: f64) -> f64 {
        let naive = if p < 0.5 { 1.0 } else { -1.0 };
        let q = p + 0.5;
        let q = if q >= 1.0 { q - 1.0 } else { q };
        naive + poly_blep(p, dt) - poly_blep(q, dt)
    }
}

impl Wave for Triangle {
    #[inline(always)]
    fn sample(p: f64, _: f64) -> f64 {
        let q = p + 0.25;
        let q = q - floor(q);
        1.0 - 4.0 * (q - 0.5).abs()
    }
}

/// An oscillator's state: its phase in `[0, 1)`. Key `osc#n`; 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OscState {
    /// Phase in cycles, `[0, 1)`.
    pub phase: f64,
}

/// An oscillator of waveform `W` at frequency `F` (Hz). Mono.
///
/// All waveforms share the key type `osc`, so changing `sine` to `saw` in
/// code keeps the phase.
pub struct Osc<W, F> {
    freq: F,
    key: Key,
    state: One<OscState>,
    inv_sr: f64,
    _wave: PhantomData<W>,
}

impl<W: Wave, F: Param> Osc<W, F> {
    /// An oscillator at `freq` Hz.
    pub fn new(freq: F) -> Self {
        Osc {
            freq,
            key: Key::auto("osc"),
            state: One::empty(),
            inv_sr: 0.0,
            _wave: PhantomData,
        }
    }

    /// Claims the state under `name` instead of `osc#n`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.key = self.key.named(name);
        self
    }
}

impl<W: Wave, F: Param> Node for Osc<W, F> {
    type Frame = [f64; 1];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.freq.bind(b)?;
        self.state = b.claim_one(&self.key)?;
        self.inv_sr = 1.0 / b.sample_rate();
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> [f64; 1] {
        let inc = self.freq.get(cx) * self.inv_sr;
        let Some(st) = self.state.get() else {
            return [0.0];
        };
        let p = st.phase;
        let dt = inc.abs();
        let y = W::sample(p, if dt < 0.5 { dt } else { 0.5 });
        let q = p + inc;
        st.phase = wrap_phase(q);
        [y]
    }
}

/// Sine oscillator at `freq` Hz (`osc` in the original engine).
pub fn osc<F: Param>(freq: F) -> Osc<Sine, F> {
    Osc::new(freq)
}

/// Sine oscillator at `freq` Hz.
pub fn sine<F: Param>(freq: F) -> Osc<Sine, F> {
    Osc::new(freq)
}

/// Band-limited (PolyBLEP) saw at `freq` Hz, rising from -1 to 1.
pub fn saw<F: Param>(freq: F) -> Osc<Saw, F> {
    Osc::new(freq)
}

/// Band-limited (PolyBLEP) square at `freq` Hz, +1 for the first half cycle.
pub fn square<F: Param>(freq: F) -> Osc<Square, F> {
    Osc::new(freq)
}

/// Triangle at `freq` Hz, in phase with the sine.
pub fn triangle<F: Param>(freq: F) -> Osc<Triangle, F> {
    Osc::new(freq)
}

/// Noise state: the xorshift32 word (0 = not seeded yet). Key `noise#n`;
/// 4 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct NoiseState {
    /// The generator's state.
    pub x: u32,
}

/// White noise, uniform in `[-1, 1)`: xorshift32 (13, 17, 5). Mono.
pub struct Noise {
    seed: u32,
    key: Key,
    state: One<NoiseState>,
}

impl Noise {
    /// The seed used when none (or 0) is given.
    pub const DEFAULT_SEED: u32 = 0x2545_F491;

    /// Starts the generator from `seed` (0 means [`Noise::DEFAULT_SEED`]).
    /// Only a fresh state is seeded: a state carried over from the previous
    /// version keeps running.
    pub fn seed(mut self, seed: u32) -> Self {
        self.seed = if seed == 0 { Noise::DEFAULT_SEED } else { seed };
        self
    }

    /// Claims the state under `name` instead of `noise#n`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.key = self.key.named(name);
        self
    }
}

impl Node for Noise {
    type Frame = [f64; 1];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.state = b.claim_one(&self.key)?;
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, _: &Ctx) -> [f64; 1] {
        let Some(st) = self.state.get() else {
            return [0.0];
        };
        // A zero state is a fresh block (xorshift never reaches 0 from a
        // non-zero state): seed it here rather than in `init`, so a block
        // the host copies over after `init` is never overwritten.
        let mut x = if st.x == 0 { self.seed } else { st.x };
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        st.x = x;
        [x as f64 * (2.0 / 4_294_967_296.0) - 1.0]
    }
}

/// White noise with the default seed; `.seed(n)` picks another.
pub fn noise() -> Noise {
    Noise {
        seed: Noise::DEFAULT_SEED,
        key: Key::auto("noise"),
        state: One::empty(),
    }
}

node_ops! {
    [W: Wave, F: Param] Osc<W, F>;
    [] Noise;
}
