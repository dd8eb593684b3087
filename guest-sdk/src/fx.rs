//! Effects and structure: tremolo, delay (fractional, with feedback), gain,
//! equal-power pan, range, map, upmix, join/stereo, and the `+`/`*` nodes.

use core::f64::consts::SQRT_2;

use bytemuck::{Pod, Zeroable};

use crate::claim::{Binder, Block, Error, One};
use crate::ctx::Ctx;
use crate::frame::Frame;
use crate::key::Key;
use crate::math::{PI, clamp, cos, cos_turns, sin, wrap_phase};
use crate::node::{Node, node_ops};
use crate::osc::OscState;
use crate::param::{Cached, Param};

/// Tremolo: every channel times `1 - depth * (0.5 - 0.5 * cos(2 pi p))`,
/// `p` a phase advancing at `rate` Hz (full level at `p = 0`). Key
/// `tremolo#n`; state one [`OscState`] (shared by all channels).
pub struct Tremolo<S, R, D> {
    src: S,
    rate: R,
    depth: D,
    key: Key,
    state: One<OscState>,
    inv_sr: f64,
}

impl<S: Node, R: Param, D: Param> Tremolo<S, R, D> {
    pub(crate) fn new(src: S, rate: R, depth: D) -> Self {
        Tremolo {
            src,
            rate,
            depth,
            key: Key::auto("tremolo"),
            state: One::empty(),
            inv_sr: 0.0,
        }
    }

    /// Claims the state under `name` instead of `tremolo#n`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.key = self.key.named(name);
        self
    }
}

impl<S: Node, R: Param, D: Param> Node for Tremolo<S, R, D> {
    type Frame = S::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)?;
        self.rate.bind(b)?;
        self.depth.bind(b)?;
        self.state = b.claim_one(&self.key)?;
        self.inv_sr = 1.0 / b.sample_rate();
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> S::Frame {
        let mut frame = self.src.tick(cx);
        let inc = self.rate.get(cx) * self.inv_sr;
        let depth = self.depth.get(cx);
        let Some(st) = self.state.get() else {
            return frame;
        };
        let p = st.phase;
        let g = 1.0 - depth * (0.5 - 0.5 * cos_turns(p));
        let q = p + inc;
        st.phase = wrap_phase(q);
        for v in frame.as_mut_slice() {
            *v *= g;
        }
        frame
    }
}

/// The head of a delay's block: the write position (then 12 bytes of
/// padding, so the line starts 16-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DelayHead {
    /// Frame of the line written next, in `[0, len)`.
    pub pos: u32,
    /// Padding.
    pub reserved: [u32; 3],
}

/// Echo with feedback and fractional delay, per channel.
///
/// Key `delay#n`; block: a [`DelayHead`], then `len = ceil(max_seconds * sr)
/// + 2` frames of `N` `f32`s (interleaved). Per sample, with the delay
/// `d = clamp(seconds * sr, 1, len - 2)` samples:
/// `y = a + (d - floor(d)) * (b - a)` where `a` is the frame written
/// `floor(d)` samples ago and `b` the one before it; the line gets
/// `x + feedback * y`; the output is `(1 - mix) * x + mix * y`.
pub struct Delay<S: Node, T, F, M> {
    src: S,
    max_seconds: f64,
    time: T,
    feedback: F,
    mix: M,
    key: Key,
    head: One<DelayHead>,
    line: Block<<S::Frame as Frame>::Stored>,
    sr: f64,
}

impl<S: Node, T: Param> Delay<S, T, f64, f64> {
    pub(crate) fn new(src: S, max_seconds: f64, time: T) -> Self {
        Delay {
            src,
            max_seconds,
            time,
            feedback: 0.5,
            mix: 0.5,
            key: Key::auto("delay"),
            head: One::empty(),
            line: Block::empty(),
            sr: 0.0,
        }
    }
}

impl<S: Node, T: Param, F: Param, M: Param> Delay<S, T, F, M> {
    /// How much of the delayed signal goes back into the line (default 0.5).
    pub fn feedback<G: Param>(self, feedback: G) -> Delay<S, T, G, M> {
        Delay {
            src: self.src,
            max_seconds: self.max_seconds,
            time: self.time,
            feedback,
            mix: self.mix,
            key: self.key,
            head: self.head,
            line: self.line,
            sr: self.sr,
        }
    }

    /// Dry/wet balance: 0 dry only, 1 delayed only (default 0.5).
    pub fn mix<G: Param>(self, mix: G) -> Delay<S, T, F, G> {
        Delay {
            src: self.src,
            max_seconds: self.max_seconds,
            time: self.time,
            feedback: self.feedback,
            mix,
            key: self.key,
            head: self.head,
            line: self.line,
            sr: self.sr,
        }
    }

    /// Claims the state under `name` instead of `delay#n`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.key = self.key.named(name);
        self
    }

    /// Frames in the line for `max_seconds` at `sample_rate`.
    pub fn line_len(max_seconds: f64, sample_rate: f64) -> usize {
        let n = libm::ceil(max_seconds * sample_rate);
        let n = if n.is_nan() || n < 1.0 {
            1.0
        } else {
            n.min(u32::MAX as f64)
        };
        n as usize + 2
    }
}

impl<S: Node, T: Param, F: Param, M: Param> Node for Delay<S, T, F, M> {
    type Frame = S::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)?;
        self.time.bind(b)?;
        self.feedback.bind(b)?;
        self.mix.bind(b)?;
        self.sr = b.sample_rate();
        let len = Self::line_len(self.max_seconds, self.sr);
        let frame = size_of::<<S::Frame as Frame>::Stored>();
        let bytes = len
            .checked_mul(frame)
            .and_then(|n| n.checked_add(size_of::<DelayHead>()))
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or(Error::REGION_FULL)?;
        let p = b.claim_bytes(&self.key, bytes as u32)?;
        const { assert!(size_of::<DelayHead>() == 16) };
        const { assert!(align_of::<<S::Frame as Frame>::Stored>() <= 16) };
        // SAFETY: the claimed block is `16 + len * frame` bytes, aligned to
        // 16 and ours alone: the head takes its first 16 bytes, the line the
        // `len` frames after them (aligned, since 16 is a multiple of the
        // frame's alignment). Both types are `Pod`.
        unsafe {
            self.head = One::from_raw(p.cast());
            self.line = Block::from_raw(p.add(size_of::<DelayHead>()).cast(), len);
        }
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> S::Frame {
        let x = self.src.tick(cx);
        let time = self.time.get(cx);
        let fb = self.feedback.get(cx);
        let mix = self.mix.get(cx);
        let line = self.line.get();
        let len = line.len();
        let Some(head) = self.head.get() else {
            return x;
        };
        if len < 3 {
            return x;
        }
        // A NaN time becomes 1 sample.
        let d = clamp(time * self.sr, 1.0, (len - 2) as f64);
        let di = d as usize;
        let frac = d - di as f64;
        let w = head.pos as usize;
        let w = if w < len { w } else { 0 };
        let r0 = w + len - di;
        let r0 = if r0 >= len { r0 - len } else { r0 };
        let r1 = if r0 == 0 { len - 1 } else { r0 - 1 };
        // SAFETY: `w < len` (checked), `1 <= di <= len - 2` (clamped), so
        // `w + len - di` lies in `[w + 2, w + len - 1]` and one subtraction
        // of `len` brings it below `len`; `r1 < len` as well.
        let (a, b) = unsafe {
            (
                S::Frame::load(line.get_unchecked(r0)),
                S::Frame::load(line.get_unchecked(r1)),
            )
        };
        let mut y = a;
        let mut out = x;
        let mut into = x;
        let lanes = y
            .as_mut_slice()
            .iter_mut()
            .zip(out.as_mut_slice())
            .zip(into.as_mut_slice())
            .zip(b.as_slice());
        for (((y, o), i), &b) in lanes {
            let a = *y;
            let xv = *o;
            *y = a + frac * (b - a);
            *i = xv + fb * *y;
            *o = (1.0 - mix) * xv + mix * *y;
        }
        // SAFETY: `w < len` (checked above).
        unsafe {
            *line.get_unchecked_mut(w) = into.store();
        }
        head.pos = if w + 1 == len { 0 } else { (w + 1) as u32 };
        out
    }
}

/// Every channel times `g`. Stateless.
pub struct Gain<S, G> {
    src: S,
    g: G,
}

impl<S: Node, G: Param> Gain<S, G> {
    pub(crate) fn new(src: S, g: G) -> Self {
        Gain { src, g }
    }
}

impl<S: Node, G: Param> Node for Gain<S, G> {
    type Frame = S::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)?;
        self.g.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> S::Frame {
        let mut frame = self.src.tick(cx);
        let g = self.g.get(cx);
        for v in frame.as_mut_slice() {
            *v *= g;
        }
        frame
    }
}

/// Frames that can be panned: mono (to stereo) and stereo (balance).
pub trait PanFrame: Frame {
    /// Scale of the cos/sin gains: 1 for mono, `sqrt(2)` for stereo (unity
    /// at the centre).
    const SCALE: f64;
    /// The frame panned with gains `gl`, `gr` (already scaled).
    fn pan(self, gl: f64, gr: f64) -> [f64; 2];
}

impl PanFrame for [f64; 1] {
    const SCALE: f64 = 1.0;
    #[inline(always)]
    fn pan(self, gl: f64, gr: f64) -> [f64; 2] {
        [self[0] * gl, self[0] * gr]
    }
}

impl PanFrame for [f64; 2] {
    const SCALE: f64 = SQRT_2;
    #[inline(always)]
    fn pan(self, gl: f64, gr: f64) -> [f64; 2] {
        [self[0] * gl, self[1] * gr]
    }
}

/// Equal-power pan gains for `p` in `[-1, 1]` (clamped):
/// `theta = (p + 1) * pi / 4`, `(scale * cos theta, scale * sin theta)`.
#[inline]
pub fn pan_gains(p: f64, scale: f64) -> (f64, f64) {
    // A NaN position becomes hard left instead of NaN gains.
    let theta = (clamp(p, -1.0, 1.0) + 1.0) * (PI / 4.0);
    (scale * cos(theta), scale * sin(theta))
}

/// Equal-power pan (mono to stereo) or balance (stereo). Stateless.
pub struct Pan<S, P> {
    src: S,
    p: P,
    gains: Cached<(f64, f64)>,
}

impl<S: Node, P: Param> Pan<S, P>
where
    S::Frame: PanFrame,
{
    pub(crate) fn new(src: S, p: P) -> Self {
        Pan {
            src,
            p,
            gains: Cached::new((0.0, 0.0)),
        }
    }
}

impl<S: Node, P: Param> Node for Pan<S, P>
where
    S::Frame: PanFrame,
{
    type Frame = [f64; 2];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)?;
        self.p.bind(b)?;
        self.gains
            .bind(&mut self.p, &b.ctx(), |p| pan_gains(p, S::Frame::SCALE));
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> [f64; 2] {
        let frame = self.src.tick(cx);
        let (gl, gr) = self
            .gains
            .get(&mut self.p, cx, |p| pan_gains(p, S::Frame::SCALE));
        frame.pan(gl, gr)
    }
}

/// Maps `[-1, 1]` onto `[lo, hi]`: `lo + (x + 1) * 0.5 * (hi - lo)`.
pub struct Range<S, A, B> {
    src: S,
    lo: A,
    hi: B,
}

impl<S: Node, A: Param, B: Param> Range<S, A, B> {
    pub(crate) fn new(src: S, lo: A, hi: B) -> Self {
        Range { src, lo, hi }
    }
}

impl<S: Node, A: Param, B: Param> Node for Range<S, A, B> {
    type Frame = S::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)?;
        self.lo.bind(b)?;
        self.hi.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> S::Frame {
        let mut frame = self.src.tick(cx);
        let (lo, hi) = (self.lo.get(cx), self.hi.get(cx));
        for v in frame.as_mut_slice() {
            *v = lo + (*v + 1.0) * 0.5 * (hi - lo);
        }
        frame
    }
}

/// `f(cx, x)` on every channel's sample. Stateless.
pub struct Map<S, F> {
    src: S,
    f: F,
}

impl<S: Node, F: Fn(&Ctx, f64) -> f64> Map<S, F> {
    pub(crate) fn new(src: S, f: F) -> Self {
        Map { src, f }
    }
}

impl<S: Node, F: Fn(&Ctx, f64) -> f64> Node for Map<S, F> {
    type Frame = S::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> S::Frame {
        let mut frame = self.src.tick(cx);
        for v in frame.as_mut_slice() {
            *v = (self.f)(cx, *v);
        }
        frame
    }
}

/// A mono signal copied to `N` channels.
pub struct Upmix<S, const N: usize> {
    src: S,
}

impl<S: Node<Frame = [f64; 1]>, const N: usize> Upmix<S, N> {
    pub(crate) fn new(src: S) -> Self {
        Upmix { src }
    }
}

impl<S: Node<Frame = [f64; 1]>, const N: usize> Node for Upmix<S, N> {
    type Frame = [f64; N];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.src.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> [f64; N] {
        [self.src.tick(cx)[0]; N]
    }
}

/// Frames that take one more channel: `[f64; N]` for `N` up to 15.
pub trait Append: Frame {
    /// The frame with one more channel.
    type Out: Frame;
    /// `self` followed by `x`.
    fn append(self, x: f64) -> Self::Out;
}

macro_rules! append {
    ($($n:literal)*) => {$(
        impl Append for [f64; $n] {
            type Out = [f64; $n + 1];
            #[inline(always)]
            fn append(self, x: f64) -> [f64; $n + 1] {
                let mut out = [x; $n + 1];
                out[..$n].copy_from_slice(&self);
                out
            }
        }
    )*};
}
append!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

/// A signal with a mono signal added as its next channel.
pub struct Join<A, B> {
    a: A,
    b: B,
}

impl<A: Node, B: Node<Frame = [f64; 1]>> Join<A, B>
where
    A::Frame: Append,
{
    pub(crate) fn new(a: A, b: B) -> Self {
        Join { a, b }
    }
}

impl<A: Node, B: Node<Frame = [f64; 1]>> Node for Join<A, B>
where
    A::Frame: Append,
{
    type Frame = <A::Frame as Append>::Out;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.a.bind(b)?;
        self.b.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> Self::Frame {
        let x = self.a.tick(cx);
        x.append(self.b.tick(cx)[0])
    }
}

/// `left` and `right` (both mono) as one stereo signal: `left.join(right)`.
pub fn stereo<L, R>(left: L, right: R) -> Join<L, R>
where
    L: Node<Frame = [f64; 1]>,
    R: Node<Frame = [f64; 1]>,
{
    Join::new(left, right)
}

/// `a + b`, channel by channel.
pub struct Sum<A, B> {
    a: A,
    b: B,
}

impl<A: Node, B: Node<Frame = A::Frame>> Sum<A, B> {
    pub(crate) fn new(a: A, b: B) -> Self {
        Sum { a, b }
    }
}

impl<A: Node, B: Node<Frame = A::Frame>> Node for Sum<A, B> {
    type Frame = A::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.a.bind(b)?;
        self.b.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> A::Frame {
        let mut x = self.a.tick(cx);
        let y = self.b.tick(cx);
        for (v, w) in x.as_mut_slice().iter_mut().zip(y.as_slice()) {
            *v += *w;
        }
        x
    }
}

/// `a * b`, channel by channel.
pub struct Prod<A, B> {
    a: A,
    b: B,
}

impl<A: Node, B: Node<Frame = A::Frame>> Prod<A, B> {
    pub(crate) fn new(a: A, b: B) -> Self {
        Prod { a, b }
    }
}

impl<A: Node, B: Node<Frame = A::Frame>> Node for Prod<A, B> {
    type Frame = A::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.a.bind(b)?;
        self.b.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> A::Frame {
        let mut x = self.a.tick(cx);
        let y = self.b.tick(cx);
        for (v, w) in x.as_mut_slice().iter_mut().zip(y.as_slice()) {
            *v *= *w;
        }
        x
    }
}

node_ops! {
    [S: Node, R: Param, D: Param] Tremolo<S, R, D>;
    [S: Node, T: Param, F: Param, M: Param] Delay<S, T, F, M>;
    [S: Node, G: Param] Gain<S, G>;
    [S: Node, P: Param] Pan<S, P>;
    [S: Node, A: Param, B: Param] Range<S, A, B>;
    [S: Node, F: Fn(&Ctx, f64) -> f64] Map<S, F>;
    [A: Node, B: Node] Join<A, B>;
    [A: Node, B: Node] Sum<A, B>;
    [A: Node, B: Node] Prod<A, B>;
}
