//! The swap probe's signal, shared by `swap-probe-a` and `swap-probe-b`:
//! every stateful helper of the SDK on its own output channel, so a test can
//! see which one (if any) loses its state when the module is swapped.
//!
//! Channels (all within +-0.8 before the output gain):
//! 0 saw (oscillator phase), 1 noise -> one-pole lowpass, 2 square ->
//! one-pole highpass, 3 saw -> resonant biquad lowpass, 4 sine -> tremolo,
//! 5 a 0.3 s burst -> delay (echoes every 0.4 s), 6 sine x ADSR (gate on
//! from 0.1 s to 0.6 s), 7 `func` keeping its own phase in a user slot.

use lel::prelude::*;

/// The probe at output gain `out`.
pub fn probe(out: f64) -> impl Node {
    let ch0 = saw(220.5).gain(0.8);
    let ch1 = noise().seed(7).lowpass(2000).gain(1.2);
    let ch2 = square(110).highpass(300).gain(0.6);
    let ch3 = saw(97).lpf(400, 2).gain(0.35);
    let ch4 = sine(300).tremolo(3, 0.9).gain(0.8);
    let burst = |c: &Ctx| if c.t < 0.3 { 0.8 } else { 0.0 };
    let ch5 = sine(440).gain(burst).delay(1.0, 0.4).feedback(0.6).mix(1.0);
    let gate = |c: &Ctx| if (0.1..0.6).contains(&c.t) { 1.0 } else { 0.0 };
    let ch6 = sine(500).gain(adsr(gate, 0.05, 0.1, 0.5, 0.8)).gain(0.8);
    let ch7 = func(|c, s| {
        let y = sin(TAU * s[0]);
        s[0] = lel::math::fract(s[0] + 250.0 / c.sample_rate);
        y * 0.8
    });
    ch0.join(ch1)
        .join(ch2)
        .join(ch3)
        .join(ch4)
        .join(ch5)
        .join(ch6)
        .join(ch7)
        .gain(out)
}
