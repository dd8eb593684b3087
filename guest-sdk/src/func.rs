//! Free-form sources: `func` (per-sample user code with the signal's own
//! persistent slots, the original engine's `s.state`), `value` (a parameter
//! as a signal) and `silence`.

use core::ptr::NonNull;

use crate::claim::{Binder, Error};
use crate::ctx::Ctx;
use crate::node::{Node, node_ops};
use crate::param::Param;

/// Number of user slots.
pub const SLOTS: usize = 64;

/// The signal's user slots: `SLOTS` `f64`s claimed once per signal under
/// the key `"state"` (512 bytes), zero in a fresh signal, carried over to
/// the next version like every helper's state. Every `func` of a signal
/// sees the same slots.
pub type Slots = [f64; SLOTS];

/// A mono source computed by `f(cx, slots)` once per sample.
pub struct Func<F> {
    f: F,
    slots: Option<NonNull<Slots>>,
}

/// A mono source from your own per-sample code, with persistent slots:
///
/// ```
/// use lel::prelude::*;
/// // A sine from its own phase accumulator, kept in slot 0.
/// let s = func(|c, s| {
///     let y = sin(TAU * s[0]);
///     s[0] = lel::math::fract(s[0] + 330.0 / c.sample_rate);
///     y
/// });
/// # let _ = s;
/// ```
pub fn func<F: FnMut(&Ctx, &mut Slots) -> f64>(f: F) -> Func<F> {
    Func { f, slots: None }
}

impl<F: FnMut(&Ctx, &mut Slots) -> f64> Node for Func<F> {
    type Frame = [f64; 1];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.slots = Some(b.slots()?);
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> [f64; 1] {
        let Some(p) = self.slots else {
            return [0.0];
        };
        // SAFETY: `p` is the signal's claimed slots block (aligned `f64`s,
        // valid for any bytes). Several `func`s share it, but a `&mut` to it
        // only lives during one call of one of them: nodes tick one at a
        // time, and `f` cannot reach another node.
        let slots = unsafe { &mut *p.as_ptr() };
        [(self.f)(cx, slots)]
    }
}

/// A parameter (constant, function of the context, or mono signal) as a
/// mono signal.
pub struct Value<P> {
    p: P,
}

/// `p` as a mono signal: `value(0.25)`, `value(|c: &Ctx| sin(c.t))`.
pub fn value<P: Param>(p: P) -> Value<P> {
    Value { p }
}

/// A mono signal of zeros.
pub fn silence() -> Value<f64> {
    Value { p: 0.0 }
}

impl<P: Param> Node for Value<P> {
    type Frame = [f64; 1];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.p.bind(b)
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> [f64; 1] {
        [self.p.get(cx)]
    }
}

node_ops! {
    [F: FnMut(&Ctx, &mut Slots) -> f64] Func<F>;
    [P: Param] Value<P>;
}
