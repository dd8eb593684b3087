//! Parameters: constants, functions of the context, or mono signals, read
//! once per sample.

use crate::claim::{Binder, Error};
use crate::ctx::Ctx;

/// A helper's parameter, read once per sample.
///
/// * a constant: `800`, `0.4`, `2.5f32` (`CONST` is true: helpers compute
///   their coefficients once, in `init`, and never read it again);
/// * a function of the context: `|c: &Ctx| 0.5 * sin(c.t * 0.3)` (the
///   closure needs the `&Ctx` annotation);
/// * a mono signal: `osc(0.2).range(400, 2000)`, `adsr(gate, ...)`, whose
///   own state is claimed like any helper's.
pub trait Param {
    /// True when the value never changes.
    const CONST: bool = false;

    /// Claims the parameter's state, if it has any (mono signals do).
    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        let _ = b;
        Ok(())
    }

    /// The value for the sample `cx` describes.
    fn get(&mut self, cx: &Ctx) -> f64;
}

impl Param for f64 {
    const CONST: bool = true;
    #[inline(always)]
    fn get(&mut self, _: &Ctx) -> f64 {
        *self
    }
}

impl Param for f32 {
    const CONST: bool = true;
    #[inline(always)]
    fn get(&mut self, _: &Ctx) -> f64 {
        *self as f64
    }
}

impl Param for i32 {
    const CONST: bool = true;
    #[inline(always)]
    fn get(&mut self, _: &Ctx) -> f64 {
        *self as f64
    }
}

impl Param for u32 {
    const CONST: bool = true;
    #[inline(always)]
    fn get(&mut self, _: &Ctx) -> f64 {
        *self as f64
    }
}

impl<F: Fn(&Ctx) -> f64> Param for F {
    #[inline(always)]
    fn get(&mut self, cx: &Ctx) -> f64 {
        self(cx)
    }
}

/// A derived value cached on its parameter: recomputed only when the
/// parameter's value changes, computed once in `bind` for constants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cached<C> {
    last: f64,
    pub(crate) value: C,
}

impl<C: Copy> Cached<C> {
    pub(crate) const fn new(value: C) -> Self {
        Cached {
            last: f64::NAN,
            value,
        }
    }

    /// Computes the value of a constant parameter (in `bind`); others are
    /// left alone (reading a signal parameter would advance it).
    pub(crate) fn bind<P: Param>(&mut self, p: &mut P, cx: &Ctx, f: impl Fn(f64) -> C) {
        if P::CONST {
            let v = p.get(cx);
            self.last = v;
            self.value = f(v);
        }
    }

    /// The value for this sample: the one from `bind` for constants, else
    /// `f(p)` recomputed when `p` changed.
    #[inline(always)]
    pub(crate) fn get<P: Param>(&mut self, p: &mut P, cx: &Ctx, f: impl Fn(f64) -> C) -> C {
        if P::CONST {
            return self.value;
        }
        let v = p.get(cx);
        if v != self.last {
            self.last = v;
            self.value = f(v);
        }
        self.value
    }
}
