//! Reloads, natively: with the harness's host-like claimer, a rebuilt signal
//! continues every helper's state exactly; changed sizes start fresh;
//! names keep state through reordering.

mod common;

use common::*;
use lel::Node;
use lel::prelude::*;
use lel::testing::Harness;

/// Renders `a` for `before` frames, swaps to `b`, renders `after` frames;
/// returns (swapped output, `a` rendered straight through).
fn swapped<A: Node, B: Node>(
    before: usize,
    after: usize,
    a: impl Fn() -> A,
    b: impl FnOnce() -> B,
) -> (Vec<f32>, Vec<f32>) {
    let mut h = Harness::new(SR, &a).unwrap();
    let mut out = h.render(before);
    let mut h = h.swap(b).unwrap();
    assert!(h.claimed().iter().all(|c| c.carried), "{:?}", h.claimed());
    out.extend(h.render(after));
    let mut r = Harness::new(SR, &a).unwrap();
    (out, r.render(before + after))
}

#[test]
fn every_stateful_helper_continues_across_a_swap() {
    fn check<N: Node>(what: &str, build: impl Fn() -> N) {
        let (out, straight) = swapped(10_000, 30_000, &build, &build);
        assert_eq!(out, straight, "{what} lost its state in the swap");
        assert!(rms(&out[10_000..]) > 1e-3, "{what} is silent");
    }
    check("sine", || sine(440));
    check("saw", || saw(220.5));
    check("square", || square(110));
    check("triangle", || triangle(330));
    check("noise", || noise().seed(5));
    check("lowpass", || noise().lowpass(500));
    check("highpass", || square(110).highpass(300));
    check("biquad", || saw(97).lpf(400, 4));
    check("tremolo", || sine(300).tremolo(3, 0.9));
    check("delay", || {
        sine(440)
            .gain(|c: &Ctx| if c.t < 0.1 { 1.0 } else { 0.0 })
            .delay(1.0, 0.3)
    });
    check("adsr", || {
        sine(500).gain(adsr(
            |c: &Ctx| if c.t < 0.5 { 1.0 } else { 0.0 },
            0.05,
            0.1,
            0.5,
            0.5,
        ))
    });
    check("func slots", || {
        func(|c, s| {
            let y = sin(TAU * s[0]);
            s[0] = lel::math::fract(s[0] + 250.0 / c.sample_rate);
            y
        })
    });
    check("stereo chain", || {
        stereo(saw(110), noise())
            .lpf(800, 2)
            .delay(0.5, 0.2)
            .pan(|c: &Ctx| sin(c.t))
    });
}

#[test]
fn the_delay_tail_of_the_first_version_is_heard_after_the_swap() {
    // Version 1 plays a 0.1 s burst; version 2 plays nothing new (its input
    // is silent), but it inherits the line: the echo at 0.3 s is still there.
    let burst = || {
        sine(440)
            .gain(|c: &Ctx| if c.t < 0.1 { 1.0 } else { 0.0 })
            .delay(1.0, 0.3)
            .mix(1.0)
            .feedback(0.0)
    };
    let silent = || sine(440).gain(0.0).delay(1.0, 0.3).mix(1.0).feedback(0.0);
    let mut h = Harness::new(SR, burst).unwrap();
    let first = h.render(9600); // 0.2 s: burst over, echo not yet
    let mut h = h.swap(silent).unwrap();
    let after = h.render(19_200); // 0.2 .. 0.6 s
    assert!(rms(&first[..4800]) < 1e-9, "wet only: nothing before 0.3 s");
    let echo = &after[4800..9600]; // 0.3 .. 0.4 s
    assert!((rms(echo) - 0.5f64.sqrt()).abs() < 0.01, "{}", rms(echo));
    // Without the carried line (a fresh signal) there is no echo.
    let mut fresh = Harness::new(SR, silent).unwrap();
    fresh.advance_clock(9600);
    assert!(rms(&fresh.render(19_200)) < 1e-9);
}

#[test]
fn changing_a_parameter_keeps_the_state_and_never_clicks() {
    let mut h = Harness::new(SR, || sine(440).lowpass(2000)).unwrap();
    let mut out = h.render(10_000);
    let mut h = h.swap(|| sine(660).lowpass(1500)).unwrap();
    out.extend(h.render(10_000));
    let bound = 1.05 * 2.0 * std::f64::consts::PI * 660.0 / SR as f64;
    assert!(max_step(&out) < bound, "{}", max_step(&out));
    // Switching the waveform keeps the phase too (all are `osc`).
    let h = Harness::new(SR, || sine(440)).unwrap();
    let h = h.swap(|| saw(440)).unwrap();
    assert_eq!(h.claimed()[0].key, "osc#0");
    assert!(h.claimed()[0].carried);
}

#[test]
fn a_changed_size_starts_fresh() {
    let mut h = Harness::new(SR, || value(1.0).delay(0.5, 0.1)).unwrap();
    h.render(1000);
    // A longer line: a new block, zeroed (the echo restarts).
    let h = h.swap(|| value(1.0).delay(1.0, 0.1)).unwrap();
    assert!(!h.claimed()[0].carried);
    // Mono to stereo: the lowpass's block doubles, fresh again.
    let h = Harness::new(SR, || value(1.0).lowpass(10)).unwrap();
    let h = h.swap(|| value(1.0).lowpass(10).upmix::<2>()).unwrap();
    assert!(h.claimed()[0].carried, "upmix after the filter: still mono");
    let h = h.swap(|| value(1.0).upmix::<2>().lowpass(10)).unwrap();
    assert!(!h.claimed()[0].carried);
}

#[test]
fn names_keep_state_through_reordering() {
    // Unnamed: inserting an oscillator before the lead renumbers it, so
    // the lead gets the new oscillator's (fresh) state and vice versa.
    let h = Harness::new(SR, || osc(440)).unwrap();
    let h = h.swap(|| osc(55) + osc(440)).unwrap();
    assert_eq!(h.keys(), ["osc#0", "osc#1"]);
    assert!(h.claimed()[0].carried, "osc#0 is now the 55 Hz one");
    // Named: the lead keeps its own state wherever it moves.
    let mut h = Harness::new(SR, || osc(440).named("lead")).unwrap();
    let a = h.render(1000);
    let mut h = h
        .swap(|| osc(55).gain(0.0) + osc(440).named("lead"))
        .unwrap();
    let b = h.render(1000);
    let mut r = Harness::new(SR, || osc(440)).unwrap();
    let straight = r.render(2000);
    assert_eq!([a, b].concat(), straight);
}
