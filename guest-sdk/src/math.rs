//! `f64` math for `#![no_std]` signals (`core` has no `sin`): thin wrappers
//! over `libm`, a cheap exact `floor`, and a few musical conversions.

pub use core::f64::consts::{PI, TAU};

/// Sine of `x` radians.
#[inline]
pub fn sin(x: f64) -> f64 {
    libm::sin(x)
}

/// Cosine of `x` radians.
#[inline]
pub fn cos(x: f64) -> f64 {
    libm::cos(x)
}

/// Tangent of `x` radians.
#[inline]
pub fn tan(x: f64) -> f64 {
    libm::tan(x)
}

/// `e^x`.
#[inline]
pub fn exp(x: f64) -> f64 {
    libm::exp(x)
}

/// Natural logarithm.
#[inline]
pub fn ln(x: f64) -> f64 {
    libm::log(x)
}

/// `x^y`.
#[inline]
pub fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// Hyperbolic tangent: a soft clipper.
#[inline]
pub fn tanh(x: f64) -> f64 {
    libm::tanh(x)
}

/// Largest integer not above `x` (a truncation and a compare: cheaper than
/// `libm::floor`, which wasm32 cannot reach as an instruction on stable).
#[inline(always)]
pub fn floor(x: f64) -> f64 {
    // At or beyond 2^52 every f64 is an integer; NaN and infinities too
    // come back as they are.
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// `x` limited to `[lo, hi]`, NaN mapped to `lo` (plain compares: no
/// `fmin`/`fmax` library calls on wasm32).
#[inline(always)]
pub fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    if x >= lo {
        if x <= hi { x } else { hi }
    } else {
        lo
    }
}

/// Square root.
#[inline]
pub fn sqrt(x: f64) -> f64 {
    libm::sqrt(x)
}

/// `x - floor(x)`: the fractional part, in `[0, 1)` (and exactly `1.0` only
/// for tiny negative `x`, where `x + 1` rounds up).
#[inline]
pub fn fract(x: f64) -> f64 {
    x - floor(x)
}

/// Frequency of MIDI note `note` (69 = A4 = 440 Hz, 12 notes per octave):
/// `440 * 2^((note - 69) / 12)`.
#[inline]
pub fn hz_from_midi(note: f64) -> f64 {
    440.0 * pow(2.0, (note - 69.0) / 12.0)
}

/// Amplitude of a level in decibels: `10^(db / 20)`.
#[inline]
pub fn gain_from_db(db: f64) -> f64 {
    pow(10.0, db / 20.0)
}
