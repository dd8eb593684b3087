//! The `Node` trait: a signal that renders one frame per call, with every
//! helper as a chaining method, plus `+`/`*` and "mono signal as parameter"
//! for every node type.

use crate::claim::{Binder, Error};
use crate::ctx::Ctx;
use crate::filter::{Biquad, Highpass, Lowpass, Mode};
use crate::frame::Frame;
use crate::fx::{Append, Delay, Gain, Join, Map, Pan, PanFrame, Range, Tremolo, Upmix};
use crate::param::Param;

/// A signal: renders one frame (`[f64; N]`) per call.
///
/// Nodes are plain generic structs: a chain like
/// `osc(440).lowpass(800).gain(0.4)` is one concrete type whose `tick`
/// inlines into the runtime's per-block loop (no `dyn`, no allocation).
pub trait Node: Sized {
    /// One sample per channel: `[f64; N]`.
    type Frame: Frame;

    /// Claims state (for itself, its input and its parameters) and
    /// precomputes. Called once, inside `init`.
    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error>;

    /// Renders the frame `cx` describes.
    fn tick(&mut self, cx: &Ctx) -> Self::Frame;

    /// One-pole lowpass at `cutoff` Hz (6 dB/octave), per channel.
    fn lowpass<P: Param>(self, cutoff: P) -> Lowpass<Self, P> {
        Lowpass::new(self, cutoff)
    }

    /// One-pole highpass at `cutoff` Hz (6 dB/octave), per channel.
    fn highpass<P: Param>(self, cutoff: P) -> Highpass<Self, P> {
        Highpass::new(self, cutoff)
    }

    /// Resonant biquad (RBJ cookbook) of the given mode, per channel.
    fn biquad<F: Param, Q: Param>(self, mode: Mode, cutoff: F, q: Q) -> Biquad<Self, F, Q> {
        Biquad::new(self, mode, cutoff, q)
    }

    /// Resonant 12 dB/octave lowpass: `biquad(Mode::Lowpass, cutoff, q)`.
    fn lpf<F: Param, Q: Param>(self, cutoff: F, q: Q) -> Biquad<Self, F, Q> {
        Biquad::new(self, Mode::Lowpass, cutoff, q)
    }

    /// Resonant 12 dB/octave highpass: `biquad(Mode::Highpass, cutoff, q)`.
    fn hpf<F: Param, Q: Param>(self, cutoff: F, q: Q) -> Biquad<Self, F, Q> {
        Biquad::new(self, Mode::Highpass, cutoff, q)
    }

    /// Bandpass (0 dB at the centre): `biquad(Mode::Bandpass, centre, q)`.
    fn bpf<F: Param, Q: Param>(self, centre: F, q: Q) -> Biquad<Self, F, Q> {
        Biquad::new(self, Mode::Bandpass, centre, q)
    }

    /// Tremolo: gain `1 - depth * (0.5 - 0.5 * cos(2 pi phase))`, the phase
    /// advancing at `rate` Hz.
    fn tremolo<R: Param, D: Param>(self, rate: R, depth: D) -> Tremolo<Self, R, D> {
        Tremolo::new(self, rate, depth)
    }

    /// Echo: a delay line of `max_seconds`, read `seconds` behind (linear
    /// interpolation), feedback 0.5 and mix 0.5 unless set with
    /// `.feedback(...)` / `.mix(...)`.
    fn delay<T: Param>(self, max_seconds: impl Into<f64>, seconds: T) -> Delay<Self, T, f64, f64> {
        Delay::new(self, max_seconds.into(), seconds)
    }

    /// Multiplies every channel by `g`.
    fn gain<G: Param>(self, g: G) -> Gain<Self, G> {
        Gain::new(self, g)
    }

    /// Equal-power pan, `p` in `[-1, 1]` (left to right): mono in, stereo
    /// out; a stereo input is balanced (unity gains at `p = 0`).
    fn pan<P: Param>(self, p: P) -> Pan<Self, P>
    where
        Self::Frame: PanFrame,
    {
        Pan::new(self, p)
    }

    /// Maps `[-1, 1]` onto `[lo, hi]` (for a modulator):
    /// `lo + (x + 1) / 2 * (hi - lo)`.
    fn range<A: Param, B: Param>(self, lo: A, hi: B) -> Range<Self, A, B> {
        Range::new(self, lo, hi)
    }

    /// Applies `f(cx, x)` to every channel's sample (a waveshaper, an
    /// offset, ...).
    fn map<F: Fn(&Ctx, f64) -> f64>(self, f: F) -> Map<Self, F> {
        Map::new(self, f)
    }

    /// Adds the mono signal `next` as one more channel: `a.join(b)` is
    /// stereo, `a.join(b).join(c)` three channels, and so on (up to 16).
    fn join<B: Node<Frame = [f64; 1]>>(self, next: B) -> Join<Self, B>
    where
        Self::Frame: Append,
    {
        Join::new(self, next)
    }

    /// Copies a mono signal to `N` channels.
    fn upmix<const N: usize>(self) -> Upmix<Self, N>
    where
        Self: Node<Frame = [f64; 1]>,
    {
        Upmix::new(self)
    }
}

/// For every node type: `a + b` (sum), `a * b` (product, e.g. ring
/// modulation or an envelope as VCA), and mono nodes as parameters.
macro_rules! node_ops {
    ($( [$($g:ident $(: $b:path)?),*] $t:ty ;)*) => {$(
        impl<$($g $(: $b)?,)* Rhs: $crate::Node> core::ops::Add<Rhs> for $t
        where
            $t: $crate::Node,
            Rhs: $crate::Node<Frame = <$t as $crate::Node>::Frame>,
        {
            type Output = $crate::fx::Sum<$t, Rhs>;
            fn add(self, rhs: Rhs) -> Self::Output {
                $crate::fx::Sum::new(self, rhs)
            }
        }

        impl<$($g $(: $b)?,)* Rhs: $crate::Node> core::ops::Mul<Rhs> for $t
        where
            $t: $crate::Node,
            Rhs: $crate::Node<Frame = <$t as $crate::Node>::Frame>,
        {
            type Output = $crate::fx::Prod<$t, Rhs>;
            fn mul(self, rhs: Rhs) -> Self::Output {
                $crate::fx::Prod::new(self, rhs)
            }
        }

        impl<$($g $(: $b)?,)*> $crate::Param for $t
        where
            $t: $crate::Node<Frame = [f64; 1]>,
        {
            fn bind(&mut self, b: &mut $crate::Binder<'_>) -> Result<(), $crate::Error> {
                $crate::Node::bind(self, b)
            }

            #[inline(always)]
            fn get(&mut self, cx: &$crate::Ctx) -> f64 {
                $crate::Node::tick(self, cx)[0]
            }
        }
    )*};
}
pub(crate) use node_ops;
