//! Filters, one state per channel: one-pole lowpass and highpass, and the
//! resonant RBJ-cookbook biquad (lowpass, highpass, bandpass) in transposed
//! direct form II.

use bytemuck::{Pod, Zeroable};

use crate::claim::{Binder, Block, Error};
use crate::ctx::Ctx;
use crate::frame::Frame;
use crate::key::Key;
use crate::math::{PI, TAU, clamp, cos, exp, sin};
use crate::node::{Node, node_ops};
use crate::param::{Cached, Param};

/// The one-pole coefficient for `cutoff` Hz: `1 - exp(-2 pi fc / sr)`,
/// `fc` clamped to `[0, sr / 2]`.
#[inline]
pub fn one_pole_coefficient(cutoff: f64, sample_rate: f64) -> f64 {
    let fc = clamp(cutoff, 0.0, 0.5 * sample_rate);
    1.0 - exp(-TAU * fc / sample_rate)
}

/// One-pole lowpass: `y += a * (x - y)` per channel. Key `lowpass#n`; state
/// one `f64` per channel.
pub struct Lowpass<S, P> {
    src: S,
    cutoff: P,
    key: Key,
    state: Block<f64>,
    sr: f64,
    a: Cached<f64>,
}

/// One-pole highpass: `y += a * (x - y); out = x - y` per channel. Key
/// `highpass#n`; state one `f64` per channel.
pub struct Highpass<S, P> {
    src: S,
    cutoff: P,
    key: Key,
    state: Block<f64>,
    sr: f64,
    a: Cached<f64>,
}

macro_rules! one_pole {
    ($name:ident, $kind:literal, |$x:ident, $y:ident| $out:expr) => {
        impl<S: Node, P: Param> $name<S, P> {
            pub(crate) fn new(src: S, cutoff: P) -> Self {
                $name {
                    src,
                    cutoff,
                    key: Key::auto($kind),
                    state: Block::empty(),
                    sr: 0.0,
                    a: Cached::new(0.0),
                }
            }

            #[doc = concat!("Claims the state under `name` instead of `", $kind, "#n`.")]
            pub fn named(mut self, name: &'static str) -> Self {
                self.key = self.key.named(name);
                self
            }
        }

        impl<S: Node, P: Param> Node for $name<S, P> {
            type Frame = S::Frame;

            fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
                self.src.bind(b)?;
                self.cutoff.bind(b)?;
                self.state = b.claim(&self.key, S::Frame::CHANNELS)?;
                self.sr = b.sample_rate();
                let sr = self.sr;
                self.a.bind(&mut self.cutoff, &b.ctx(), |fc| {
                    one_pole_coefficient(fc, sr)
                });
                Ok(())
            }

            #[inline(always)]
            fn tick(&mut self, cx: &Ctx) -> S::Frame {
                let mut frame = self.src.tick(cx);
                let sr = self.sr;
                let a = self
                    .a
                    .get(&mut self.cutoff, cx, |fc| one_pole_coefficient(fc, sr));
                for (v, y) in frame.as_mut_slice().iter_mut().zip(self.state.get()) {
                    let $x = *v;
                    *y += a * ($x - *y);
                    let $y = *y;
                    *v = $out;
                }
                frame
            }
        }
    };
}

one_pole!(Lowpass, "lowpass", |_x, y| y);
one_pole!(Highpass, "highpass", |x, y| x - y);

/// What a biquad passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 12 dB/octave lowpass; gain `q` at the cutoff.
    Lowpass,
    /// 12 dB/octave highpass; gain `q` at the cutoff.
    Highpass,
    /// Bandpass with 0 dB at the centre, bandwidth set by `q`.
    Bandpass,
}

/// Normalised biquad coefficients: `y = b0 x + b1 x1 + b2 x2 - a1 y1 - a2 y2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    /// Feed-forward, current input.
    pub b0: f64,
    /// Feed-forward, one sample back.
    pub b1: f64,
    /// Feed-forward, two samples back.
    pub b2: f64,
    /// Feedback, one sample back.
    pub a1: f64,
    /// Feedback, two samples back.
    pub a2: f64,
}

impl Coefficients {
    /// RBJ Audio-EQ-Cookbook coefficients for `mode` at `cutoff` Hz with
    /// quality `q`: `fc` clamped to `[1, 0.49 sr]`, `q` to at least `0.01`;
    /// `w0 = 2 pi fc / sr`, `alpha = sin(w0) / (2 q)`, divided by
    /// `a0 = 1 + alpha`.
    pub fn rbj(mode: Mode, cutoff: f64, q: f64, sample_rate: f64) -> Self {
        let fc = clamp(cutoff, 1.0, 0.49 * sample_rate);
        let q = if q >= 0.01 { q } else { 0.01 };
        let w0 = 2.0 * PI * fc / sample_rate;
        let (s, c) = (sin(w0), cos(w0));
        let alpha = s / (2.0 * q);
        let (b0, b1, b2) = match mode {
            Mode::Lowpass => ((1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0),
            Mode::Highpass => ((1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0),
            Mode::Bandpass => (alpha, 0.0, -alpha),
        };
        let a0 = 1.0 + alpha;
        Coefficients {
            b0: b0 / a0,
            b1: b1 / a0,
            b2: b2 / a0,
            a1: -2.0 * c / a0,
            a2: (1.0 - alpha) / a0,
        }
    }
}

/// A biquad channel's state (transposed direct form II). 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct BiquadState {
    /// First delay element.
    pub s1: f64,
    /// Second delay element.
    pub s2: f64,
}

/// Resonant biquad filter, per channel. Key `biquad#n` (whatever the mode,
/// so switching modes keeps the memory); state [`BiquadState`] per channel.
pub struct Biquad<S, F, Q> {
    src: S,
    mode: Mode,
    cutoff: F,
    q: Q,
    key: Key,
    state: Block<BiquadState>,
    sr: f64,
    last: (f64, f64),
    k: Coefficients,
}

impl<S: Node, F: Param, Q: Param> Biquad<S, F, Q> {
    pub(crate) fn new(src: S, mode: Mode, cutoff: F, q: Q) -> Self {
        Biquad {
            src,
            mode,
            cutoff,
            q,
            key: Key::auto("biquad"),
            state: Block::empty(),
            sr: 0.0,
            last: (f64::NAN, f64::NAN),
            k: Coefficients {
                b0: 0.0,
                b1: 0.0,
                b2: 0.0,
                a1: 0.0,
                a2: 0.0,
            },
        }
    }

    /// Claims the state under `name` instead of `biquad#n`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.key = self.key.named(name);
        self
    }
}

impl<S: Node, F: Param, Q: Param> Node for Biquad<S, F, Q> {
    type Frame = S::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)?;
        self.cutoff.bind(b)?;
        self.q.bind(b)?;
        self.state = b.claim(&self.key, S::Frame::CHANNELS)?;
        self.sr = b.sample_rate();
        if F::CONST && Q::CONST {
            let cx = b.ctx();
            let (fc, q) = (self.cutoff.get(&cx), self.q.get(&cx));
            self.k = Coefficients::rbj(self.mode, fc, q, self.sr);
        }
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> S::Frame {
        let mut frame = self.src.tick(cx);
        if !(F::CONST && Q::CONST) {
            let v = (self.cutoff.get(cx), self.q.get(cx));
            if v != self.last {
                self.last = v;
                self.k = Coefficients::rbj(self.mode, v.0, v.1, self.sr);
            }
        }
        let k = self.k;
        for (v, st) in frame.as_mut_slice().iter_mut().zip(self.state.get()) {
            let x = *v;
            let y = k.b0 * x + st.s1;
            st.s1 = k.b1 * x - k.a1 * y + st.s2;
            st.s2 = k.b2 * x - k.a2 * y;
            *v = y;
        }
        frame
    }
}

node_ops! {
    [S: Node, P: Param] Lowpass<S, P>;
    [S: Node, P: Param] Highpass<S, P>;
    [S: Node, F: Param, Q: Param] Biquad<S, F, Q>;
}
