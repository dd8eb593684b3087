//! `f64` math for `#![no_std]` signals (`core` has no `sin`): thin wrappers
//! over `libm`, the sine and cosine of a phase in turns without a library
//! call (the oscillators'), a cheap exact `floor`, and a few musical
//! conversions.

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

/// `sin(TAU * p)`: the sine of `p` full turns, for an oscillator's phase
/// (the SDK's sine oscillator and tremolo use it). No library call: `p` is
/// taken to the nearest quarter turn exactly (for `|p|` below 2^49), and
/// the rest, at most an eighth of a turn, goes through the Taylor series
/// of sine or cosine to the term that leaves an error under 1e-16. Within
/// 1e-15 of the exact value (tested against the C library on a million
/// phases: at most 4.4e-16). In wasm, where each `libm` call is a function
/// entry with its own runaway check (then wasmtime's epoch check) and the
/// general argument reduction ran at about 1.7x native, the SDK chain
/// `filtered-delayed-sine` rendered about a fifth faster with it (see the
/// README's Performance section).
#[inline(always)]
pub fn sin_turns(p: f64) -> f64 {
    turns(p, 0.0)
}

/// `cos(TAU * p)`: the cosine of `p` full turns (see [`sin_turns`]).
#[inline(always)]
pub fn cos_turns(p: f64) -> f64 {
    turns(p, 1.0)
}

/// The sine of `p` turns plus `quarters` quarter turns. The C, Zig and
/// AssemblyScript SDKs do the same operations in the same order (the same
/// bits; `guest-sdk/README.md`, "Algorithms").
#[inline(always)]
fn turns(p: f64, quarters: f64) -> f64 {
    // 1/n!, the nearest f64 (the other SDKs write them with 17 digits).
    const S3: f64 = 0.16666666666666666;
    const S5: f64 = 0.008333333333333333;
    const S7: f64 = 0.0001984126984126984;
    const S9: f64 = 2.7557319223985893e-06;
    const S11: f64 = 2.505210838544172e-08;
    const S13: f64 = 1.6059043836821613e-10;
    const S15: f64 = 7.647163731819816e-13;
    const C4: f64 = 0.041666666666666664;
    const C6: f64 = 0.001388888888888889;
    const C8: f64 = 2.48015873015873e-05;
    const C10: f64 = 2.755731922398589e-07;
    const C12: f64 = 2.08767569878681e-09;
    const C14: f64 = 1.1470745597729725e-11;
    const C16: f64 = 4.779477332387385e-14;
    // 1.5 * 2^52: adding and subtracting it rounds a number below 2^51
    // in magnitude to the nearest whole one (ties to even), in two
    // additions (a `floor` is a dozen instructions where the CPU has no
    // rounding instruction).
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let q = (4.0 * p + ROUND) - ROUND;
    // Exact: `q / 4` is representable and within a factor of two of `p`
    // (or `q` is 0).
    let r = p - q * 0.25;
    let x = r * TAU;
    let z = x * x;
    let z2 = z * z;
    let z4 = z2 * z2;
    // The quarter turn modulo 4, as -2 to 2, in floating point (exact for
    // whole numbers; no conversion to an integer, which traps on NaN in
    // other languages).
    let m = q + quarters;
    let k = m - 4.0 * ((m * 0.25 + ROUND) - ROUND);
    // By quarter turn: sin x, cos x, -sin x, -cos x. Only the series
    // needed is summed (the branch follows the phase: it changes four
    // times a cycle, so it is predicted). Its terms are grouped in pairs
    // (Estrin's scheme), so that they add up in a tree, not in one chain of
    // dependent multiply-adds.
    let v = if k == 1.0 || k == -1.0 {
        let lo = (1.0 - z * 0.5) + z2 * (C4 - z * C6);
        let hi = (C8 - z * C10) + z2 * (C12 - z * C14);
        lo + z4 * (hi + z4 * C16)
    } else {
        let lo = (1.0 - z * S3) + z2 * (S5 - z * S7);
        let hi = (S9 - z * S11) + z2 * (S13 - z * S15);
        x * (lo + z4 * hi)
    };
    if k < 0.0 || k == 2.0 { -v } else { v }
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

/// Largest integer not above `x`, exactly (`+0.0` for `-0.0`, like the
/// conversion to an integer and back it replaces).
#[inline(always)]
pub fn floor(x: f64) -> f64 {
    // Below 2^51 in magnitude, adding and subtracting 1.5 * 2^52 rounds
    // `x` to the nearest whole number exactly; one less if that is above
    // `x`: two additions and a compare. A conversion to an integer and
    // back is a dozen instructions with branches in wasmtime's code
    // (`i64.trunc_sat_f64_s` checks for NaN and for its range).
    const ROUND: f64 = 6_755_399_441_055_744.0;
    if x.abs() < 2_251_799_813_685_248.0 {
        let r = (x + ROUND) - ROUND;
        return if r > x { r - 1.0 } else { r };
    }
    // At or beyond 2^52 every f64 is an integer; NaN and infinities too
    // come back as they are. (Inline: a call in a loop makes wasmtime keep
    // the loop's values in memory around it.)
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// `q - floor(q)`, bit for bit, for any `q`; without the floor when `q` is
/// in `[0, 2)`, as a phase in `[0, 1)` is after an increment of less than
/// a turn.
#[inline(always)]
pub(crate) fn wrap_phase(q: f64) -> f64 {
    if q >= 1.0 {
        if q < 2.0 { q - 1.0 } else { q - floor(q) }
    } else if q >= 0.0 {
        q
    } else {
        q - floor(q)
    }
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

#[cfg(test)]
mod tests {
    use super::{floor, wrap_phase};

    /// Numbers around every place where `floor` or `wrap_phase` changes
    /// course (0, the halves, 1, 2, 2^51, 2^52, both signs), a pseudo-random
    /// spread over every magnitude, NaN and the infinities.
    fn cases() -> impl Iterator<Item = f64> {
        let edges = [
            0.0,
            0.5,
            1.0,
            1.5,
            2.0,
            3.0,
            1e-300,
            0.25,
            2f64.powi(51),
            2f64.powi(52),
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
        ];
        let near = edges.into_iter().flat_map(|e| {
            let up = |x: f64| f64::from_bits(x.to_bits() + 1);
            let down = |x: f64| {
                if x == 0.0 {
                    -f64::MIN_POSITIVE
                } else {
                    f64::from_bits(x.to_bits() - 1)
                }
            };
            [e, up(e), down(e), e + 0.5, e - 0.5, e + 0.25]
        });
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let random = (0..200_000).map(move |_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Any finite double (random exponent), or a phase-sized one.
            if seed & 1 == 0 {
                let x = f64::from_bits(seed >> 1);
                if x.is_finite() { x } else { 0.75 }
            } else {
                (seed >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 1.0
            }
        });
        near.flat_map(|x| [x, -x]).chain(random).chain([f64::NAN])
    }

    #[test]
    fn floor_is_the_library_floor() {
        for x in cases() {
            let (got, want) = (floor(x), x.floor());
            if x.is_nan() {
                assert!(got.is_nan());
            } else if x == 0.0 {
                // `-0.0` gives `+0.0` (as the conversion it replaced did).
                assert_eq!(got.to_bits(), 0.0f64.to_bits(), "{x:e}");
            } else {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "floor({x:e}) = {got:e}, not {want:e}"
                );
            }
        }
    }

    #[test]
    fn wrap_phase_is_q_minus_its_floor_bit_for_bit() {
        for q in cases() {
            let (got, want) = (wrap_phase(q), q - floor(q));
            if q.is_nan() || q.is_infinite() {
                assert!(got.is_nan() && want.is_nan(), "{q:e}");
            } else {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "wrap_phase({q:e}) = {got:e}, not {want:e}"
                );
            }
        }
    }
}
