//! The helpers against the math: oscillator frequency and level, band
//! limiting, filter responses, exact delays, the pan law, noise, tremolo and
//! envelope curves.

mod common;

use common::*;
use lel::prelude::*;
use lel::{Coefficients, pan_gains};
use std::f64::consts::{FRAC_1_SQRT_2, PI};

#[test]
fn oscillators_have_their_frequency_and_level() {
    let n = SR as usize; // 1 s: bins of 1 Hz
    let sin = render(n, || sine(440));
    assert!((dominant_frequency(&sin) - 440.0).abs() < 0.02);
    assert!((rms(&sin) - 0.5f64.sqrt()).abs() < 1e-4, "{}", rms(&sin));
    assert!((peak(&sin) - 1.0).abs() < 1e-4);
    assert_eq!(sin[0], 0.0, "starts at phase 0");

    let saw = render(n, || saw(440));
    assert!((dominant_frequency(&saw) - 440.0).abs() < 0.02);
    assert!(
        (rms(&saw) - 1.0 / 3f64.sqrt()).abs() < 0.01,
        "{}",
        rms(&saw)
    );

    let square = render(n, || square(440));
    assert!((dominant_frequency(&square) - 440.0).abs() < 0.02);
    assert!((rms(&square) - 1.0).abs() < 0.02, "{}", rms(&square));

    let tri = render(n, || triangle(440));
    assert!((dominant_frequency(&tri) - 440.0).abs() < 0.02);
    assert!(
        (rms(&tri) - 1.0 / 3f64.sqrt()).abs() < 1e-3,
        "{}",
        rms(&tri)
    );
    assert!((peak(&tri) - 1.0).abs() < 1e-3);

    // `osc` is the sine.
    assert_eq!(render(1000, || osc(440)), render(1000, || sine(440)));
}

#[test]
fn waveforms_follow_their_formulas() {
    // 1 kHz at 48 kHz: dt = 1/48; sample n has phase n/48 (mod 1).
    let dt = 1000.0 / SR as f64;
    let blep = |t: f64| {
        if t < dt {
            let x = t / dt;
            2.0 * x - x * x - 1.0
        } else if t > 1.0 - dt {
            let x = (t - 1.0) / dt;
            x * x + 2.0 * x + 1.0
        } else {
            0.0
        }
    };
    let saw = render(96, || saw(1000));
    let square = render(96, || square(1000));
    let tri = render(96, || triangle(1000));
    let mut p = 0.0f64;
    for i in 0..96 {
        let s = 2.0 * p - 1.0 - blep(p);
        let q = (p + 0.5) % 1.0;
        let sq = if p < 0.5 { 1.0 } else { -1.0 } + blep(p) - blep(q);
        let tr = 1.0 - 4.0 * (((p + 0.25) % 1.0) - 0.5).abs();
        assert!((saw[i] as f64 - s).abs() < 1e-6, "saw {i}");
        assert!((square[i] as f64 - sq).abs() < 1e-6, "square {i}");
        assert!((tri[i] as f64 - tr).abs() < 1e-6, "triangle {i}");
        p += dt;
        p -= p.floor();
    }
}

#[test]
fn sine_of_turns_is_the_library_sine_within_1e15() {
    // The oscillators' and the tremolo's sine and cosine of a phase in
    // turns, against the C library's, on an exactly reduced argument (the
    // phase's distance to its nearest whole turn is exact, so only one
    // rounding enters the reference). A million phases over eight turns,
    // both signs, and the quarter turns themselves.
    let mut worst = 0.0f64;
    let mut check = |p: f64| {
        let x = 2.0 * PI * (p - p.round());
        for (got, want) in [
            (lel::math::sin_turns(p), x.sin()),
            (lel::math::cos_turns(p), x.cos()),
        ] {
            let e = (got - want).abs();
            assert!(e < 1e-15, "phase {p}: {got} vs {want}");
            worst = worst.max(e);
        }
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..1_000_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        check((seed >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0);
    }
    for q in -16..=16 {
        check(q as f64 * 0.25);
    }
    assert!(worst > 0.0, "the comparison ran");
    assert_eq!(lel::math::sin_turns(0.0), 0.0);
    assert_eq!(lel::math::sin_turns(0.25), 1.0);
    assert_eq!(lel::math::cos_turns(0.5), -1.0);
}

#[test]
fn frequency_changes_are_phase_continuous() {
    // 440 Hz, then 660 Hz from 0.1 s: no jump beyond a 660 Hz sine's slope.
    let x = render(9600, || {
        sine(|c: &Ctx| if c.t < 0.1 { 440.0 } else { 660.0 })
    });
    let bound = 1.05 * 2.0 * PI * 660.0 / SR as f64;
    assert!(max_step(&x) < bound, "{} >= {bound}", max_step(&x));
    // A modulated (vibrato) frequency input, from a signal.
    let v = render(48_000, || sine(sine(5).range(438, 442)));
    assert!((dominant_frequency(&v) - 440.0).abs() < 0.1);
    assert!(max_step(&v) < 1.05 * 2.0 * PI * 442.0 / SR as f64);
}

/// Energy away from the harmonics of `f0` (more than 25 Hz from every
/// multiple), relative to the total, in dB.
fn inharmonic_db(x: &[f32], f0: f64) -> f64 {
    let p = power_spectrum(x, true);
    let bin = SR as f64 / x.len() as f64;
    let total: f64 = p.iter().sum();
    let off: f64 = p
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let f = *i as f64 * bin;
            let h = (f / f0).round() * f0;
            (f - h).abs() > 25.0
        })
        .map(|(_, v)| v)
        .sum();
    10.0 * (off / total).log10()
}

#[test]
fn band_limited_oscillators_alias_far_less_than_naive_ones() {
    let n = SR as usize;
    let f0 = 5000.0;
    let naive_saw = render(n, || {
        func(move |c, s| {
            let y = 2.0 * s[0] - 1.0;
            s[0] = lel::math::fract(s[0] + f0 / c.sample_rate);
            y
        })
    });
    let naive_square = render(n, || {
        func(move |c, s| {
            let y = if s[0] < 0.5 { 1.0 } else { -1.0 };
            s[0] = lel::math::fract(s[0] + f0 / c.sample_rate);
            y
        })
    });
    let blep_saw = render(n, || saw(f0));
    let blep_square = render(n, || square(f0));
    let (ns, bs) = (inharmonic_db(&naive_saw, f0), inharmonic_db(&blep_saw, f0));
    let (nq, bq) = (
        inharmonic_db(&naive_square, f0),
        inharmonic_db(&blep_square, f0),
    );
    println!("aliasing, 5 kHz at 48 kHz: saw naive {ns:.1} dB, PolyBLEP {bs:.1} dB");
    println!("aliasing, 5 kHz at 48 kHz: square naive {nq:.1} dB, PolyBLEP {bq:.1} dB");
    assert!(bs < ns - 10.0, "saw: {bs:.1} dB vs naive {ns:.1} dB");
    assert!(bq < nq - 10.0, "square: {bq:.1} dB vs naive {nq:.1} dB");
    assert!(bs < -20.0 && bq < -20.0);
}

/// Gain of `filter` (applied to a sine at `hz`) in dB, measured after the
/// filter has settled.
fn gain_db<N: Node>(hz: f64, filter: impl FnOnce(lel::Osc<lel::Sine, f64>) -> N) -> f64 {
    let y = render(48_000, || filter(sine(hz)));
    let settled = &y[24_000..];
    db(rms(settled) / 0.5f64.sqrt())
}

#[test]
fn one_pole_lowpass_is_3db_down_at_its_cutoff() {
    for fc in [100.0, 1000.0, 5000.0] {
        let g = gain_db(fc, |s| s.lowpass(fc));
        assert!((g + 3.01).abs() < 0.5, "lowpass {fc} Hz: {g:.2} dB");
        // A decade above: about -20 dB (6 dB/octave).
        if fc <= 1000.0 {
            let g10 = gain_db(10.0 * fc, |s| s.lowpass(fc));
            assert!(
                (g10 + 20.0).abs() < 1.5,
                "lowpass {fc} Hz at x10: {g10:.2} dB"
            );
        }
    }
    // DC passes unchanged.
    let dc = render(48_000, || value(1.0).lowpass(100));
    assert!((dc[47_999] - 1.0).abs() < 1e-6);
}

#[test]
fn one_pole_highpass_is_3db_down_at_its_cutoff() {
    for fc in [100.0, 1000.0] {
        let g = gain_db(fc, |s| s.highpass(fc));
        assert!((g + 3.01).abs() < 0.7, "highpass {fc} Hz: {g:.2} dB");
    }
    // DC is removed, high frequencies pass.
    let dc = render(48_000, || value(1.0).highpass(100));
    assert!(dc[47_999].abs() < 1e-6);
    assert!(gain_db(10_000.0, |s| s.highpass(100)).abs() < 0.1);
}

/// |H(e^jw)| of a biquad, in dB.
fn biquad_db(k: Coefficients, hz: f64) -> f64 {
    let w = 2.0 * PI * hz / SR as f64;
    let (c1, s1, c2, s2) = (w.cos(), -w.sin(), (2.0 * w).cos(), -(2.0 * w).sin());
    let num = (k.b0 + k.b1 * c1 + k.b2 * c2, k.b1 * s1 + k.b2 * s2);
    let den = (1.0 + k.a1 * c1 + k.a2 * c2, k.a1 * s1 + k.a2 * s2);
    10.0 * ((num.0 * num.0 + num.1 * num.1) / (den.0 * den.0 + den.1 * den.1)).log10()
}

#[test]
fn biquad_matches_the_cookbook_response() {
    let fc = 1000.0;
    for (mode, q) in [
        (Mode::Lowpass, FRAC_1_SQRT_2),
        (Mode::Lowpass, 4.0),
        (Mode::Highpass, FRAC_1_SQRT_2),
        (Mode::Highpass, 2.0),
        (Mode::Bandpass, 1.0),
        (Mode::Bandpass, 5.0),
    ] {
        let k = Coefficients::rbj(mode, fc, q, SR as f64);
        // At the cutoff: gain q for low/highpass, 0 dB for the bandpass.
        let want = match mode {
            Mode::Bandpass => 0.0,
            _ => 20.0 * f64::log10(q),
        };
        assert!((biquad_db(k, fc) - want).abs() < 1e-9);
        for hz in [100.0, 300.0, 1000.0, 3000.0, 10_000.0] {
            let measured = gain_db(hz, |s| s.biquad(mode, fc, q));
            let theory = biquad_db(k, hz);
            assert!(
                (measured - theory).abs() < 0.05,
                "{mode:?} q {q} at {hz} Hz: {measured:.3} dB, expected {theory:.3} dB"
            );
        }
    }
    // 12 dB/octave: a decade away is about -40 dB.
    assert!(gain_db(10_000.0, |s| s.lpf(1000, FRAC_1_SQRT_2)) < -38.0);
    assert!(gain_db(100.0, |s| s.hpf(1000, FRAC_1_SQRT_2)) < -38.0);
    // Bandpass: down on both sides.
    assert!(gain_db(100.0, |s| s.bpf(1000, 5)) < -25.0);
    assert!(gain_db(10_000.0, |s| s.bpf(1000, 5)) < -25.0);
}

/// A deterministic test input, exactly representable in `f32`.
fn probe_input(clock: u64) -> f64 {
    let h = clock.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    (h as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32 as f64
}

#[test]
fn delay_returns_the_input_exactly_n_samples_later() {
    for n in [1usize, 100, 12_000] {
        let d = n as f64 / SR as f64;
        let input: Vec<f32> = (0..30_000).map(|c| probe_input(c) as f32).collect();
        let out = render(30_000, || {
            value(|c: &Ctx| probe_input(c.clock))
                .delay(0.5, d)
                .feedback(0.0)
                .mix(1.0)
        });
        assert!(out[..n].iter().all(|&s| s == 0.0), "silent for {n} samples");
        for i in n..30_000 {
            assert!(
                (out[i] - input[i - n]).abs() <= 1e-6,
                "n = {n}, sample {i}: {} vs {}",
                out[i],
                input[i - n]
            );
        }
        if n == 12_000 {
            // 0.25 s at 48 kHz is exactly 12000 samples: bit-exact.
            assert_eq!(&out[n..], &input[..30_000 - n]);
        }
    }
}

#[test]
fn delay_interpolates_and_feeds_back() {
    // Fractional: 10.5 samples of a ramp lands halfway between samples.
    let out = render(200, || {
        value(|c: &Ctx| c.clock as f64 / 1024.0)
            .delay(0.01, 10.5 / SR as f64)
            .feedback(0.0)
            .mix(1.0)
    });
    for (i, &v) in out.iter().enumerate().skip(11) {
        assert!((v as f64 - (i as f64 - 10.5) / 1024.0).abs() < 1e-6, "{i}");
    }
    // Feedback 0.5, mix 0.5 (the defaults): an impulse comes back every
    // 100 samples at half the level each time; the dry half passes at once.
    let out = render(500, || {
        value(|c: &Ctx| if c.clock == 0 { 1.0 } else { 0.0 }).delay(0.01, 100.0 / SR as f64)
    });
    assert!((out[0] - 0.5).abs() < 1e-6);
    for k in 1..5 {
        let want = 0.5 * 0.5f64.powi(k - 1);
        assert!(
            (out[100 * k as usize] as f64 - want).abs() < 1e-6,
            "echo {k}"
        );
    }
    let rest: f64 = out
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 100 != 0)
        .map(|(_, v)| v.abs() as f64)
        .sum();
    assert!(rest < 1e-9);
}

#[test]
fn pan_keeps_power_constant() {
    for p in [-1.0, -0.5, 0.0, 0.3, 1.0] {
        let mut h = lel::testing::Harness::new(SR, || sine(440).pan(p)).unwrap();
        let x = render(4800, || sine(440));
        let lr = h.render(4800);
        for (i, &s) in x.iter().enumerate() {
            let (l, r) = (lr[2 * i] as f64, lr[2 * i + 1] as f64);
            let s = s as f64;
            assert!((l * l + r * r - s * s).abs() < 1e-6, "p {p} sample {i}");
        }
    }
    // Modulated: constant power all the way across.
    let mut h =
        lel::testing::Harness::new(SR, || value(0.5).pan(|c: &Ctx| (c.t * 20.0).sin())).unwrap();
    let lr = h.render(48_000);
    for f in lr.chunks(2) {
        let pw = f[0] as f64 * f[0] as f64 + f[1] as f64 * f[1] as f64;
        assert!((pw - 0.25).abs() < 1e-6);
    }
    // Centre: both sides at 1/sqrt(2); hard left: all left.
    let (l, r) = pan_gains(0.0, 1.0);
    assert!((l - 0.5f64.sqrt()).abs() < 1e-12 && (r - 0.5f64.sqrt()).abs() < 1e-12);
    let (l, r) = pan_gains(-1.0, 1.0);
    assert!((l - 1.0).abs() < 1e-12 && r.abs() < 1e-12);
    // Stereo balance: unity at the centre, equal power elsewhere.
    let mut h = lel::testing::Harness::new(SR, || stereo(value(0.3), value(0.3)).pan(0.0)).unwrap();
    let lr = h.render(10);
    assert!((lr[0] - 0.3).abs() < 1e-6 && (lr[1] - 0.3).abs() < 1e-6);
    let mut h = lel::testing::Harness::new(SR, || stereo(value(0.3), value(0.3)).pan(0.6)).unwrap();
    let lr = h.render(10);
    let pw = (lr[0] as f64).powi(2) + (lr[1] as f64).powi(2);
    assert!((pw - 2.0 * 0.09).abs() < 1e-6);
}

#[test]
fn noise_is_deterministic_for_a_seed() {
    let a = render(48_000, || noise().seed(42));
    let b = render(48_000, || noise().seed(42));
    let c = render(48_000, || noise().seed(43));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // xorshift32 (13, 17, 5) from the seed, mapped to [-1, 1).
    let mut x = 42u32;
    for &s in &a[..1000] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        assert_eq!(s, (x as f64 * (2.0 / 4_294_967_296.0) - 1.0) as f32);
    }
    // White and uniform: mean 0, rms 1/sqrt(3), flat spectrum.
    let mean = a.iter().map(|&s| s as f64).sum::<f64>() / a.len() as f64;
    assert!(mean.abs() < 0.01);
    assert!((rms(&a) - 1.0 / 3f64.sqrt()).abs() < 0.01);
    let p = power_spectrum(&a, false);
    let low: f64 = p[100..12_000].iter().sum::<f64>() / 11_900.0;
    let high: f64 = p[12_000..23_900].iter().sum::<f64>() / 11_900.0;
    assert!(
        (db(low / high) / 2.0).abs() < 0.5,
        "{}",
        db(low / high) / 2.0
    );
    // Seed 0 means the default seed.
    assert_eq!(render(100, || noise().seed(0)), render(100, noise));
}

#[test]
fn tremolo_follows_its_formula() {
    let (rate, depth) = (5.0, 0.8);
    let out = render(48_000, || value(1.0).tremolo(rate, depth));
    for (n, &v) in out.iter().enumerate().step_by(97) {
        let p = (n as f64 * rate / SR as f64).fract();
        let want = 1.0 - depth * (0.5 - 0.5 * (2.0 * PI * p).cos());
        assert!((v as f64 - want).abs() < 1e-6, "{n}");
    }
    assert_eq!(out[0], 1.0);
    assert!(
        (out[4800] as f64 - 0.2).abs() < 1e-6,
        "trough at half a period"
    );
}

#[test]
fn adsr_follows_its_segments() {
    // Gate on for the first 0.5 s; attack 10 ms, decay 100 ms to 0.5,
    // release 200 ms (from full level).
    let env = render(48_000, || {
        adsr(
            |c: &Ctx| if c.t < 0.5 { 1.0 } else { 0.0 },
            0.01,
            0.1,
            0.5,
            0.2,
        )
    });
    let at = |t: f64| env[(t * SR as f64) as usize] as f64;
    assert!((at(0.005) - 0.5).abs() < 0.01, "half-way up the attack");
    assert!((at(0.0101) - 1.0).abs() < 0.01, "top of the attack");
    assert!((at(0.06) - 0.75).abs() < 0.01, "half-way down the decay");
    assert!((at(0.3) - 0.5).abs() < 1e-9, "sustain");
    assert!((at(0.55) - 0.25).abs() < 0.01, "release: 0.05 s at 5 per s");
    assert_eq!(at(0.7), 0.0, "idle after the release");
    let steps = max_step(&env);
    assert!(
        steps < 1.0 / (0.01 * SR as f64) + 1e-6,
        "linear segments, no jumps"
    );
    // AR: holds full level while the gate is on.
    let ar = render(4800, || ar(1.0, 0.001, 0.1));
    assert_eq!(ar[4799], 1.0);
}

#[test]
fn gain_range_map_join_upmix_and_sums() {
    let g = render(10, || value(0.5).gain(0.4));
    assert!((g[3] - 0.2).abs() < 1e-7);
    let r = render(10, || value(0.0).range(100, 300));
    assert_eq!(r[0], 200.0);
    let m = render(10, || value(0.5).map(|_, x| x * x));
    assert_eq!(m[0], 0.25);
    let s = render(10, || value(0.25) + value(0.5));
    assert_eq!(s[0], 0.75);
    let p = render(10, || value(0.25) * value(0.5));
    assert_eq!(p[0], 0.125);
    let mut h =
        lel::testing::Harness::new(SR, || value(0.1).join(value(0.2)).join(value(0.3))).unwrap();
    assert_eq!(h.channels(), 3);
    assert_eq!(h.render(1), vec![0.1, 0.2, 0.3]);
    let mut h = lel::testing::Harness::new(SR, || value(0.1).upmix::<4>().gain(2)).unwrap();
    assert_eq!(h.render(1), vec![0.2; 4]);
    // Helpers on N channels run N independent states: a stereo lowpass of
    // two different inputs equals two mono lowpasses.
    let mut h = lel::testing::Harness::new(SR, || {
        stereo(sine(300), saw(700)).lowpass(500).delay(0.1, 0.01)
    })
    .unwrap();
    let lr = h.render(2000);
    let l = render(2000, || sine(300).lowpass(500).delay(0.1, 0.01));
    let r = render(2000, || saw(700).lowpass(500).delay(0.1, 0.01));
    for i in 0..2000 {
        assert_eq!(lr[2 * i], l[i]);
        assert_eq!(lr[2 * i + 1], r[i]);
    }
    // `pipe!` is the method chain.
    let a = render(500, || lel::pipe!(osc(440), lowpass(800), gain(0.4)));
    let b = render(500, || osc(440).lowpass(800).gain(0.4));
    assert_eq!(a, b);
}

#[test]
fn context_knows_the_clock_and_the_steps() {
    let mut h = lel::testing::Harness::new(SR, || value(|c: &Ctx| c.t)).unwrap();
    h.advance_clock(48_000 * 3);
    let t = h.render(2);
    assert_eq!(t[0], 3.0);
    assert_eq!(t[1], (3.0 + 1.0 / 48_000.0) as f32);
    // 120 BPM, 4 steps per beat at 48 kHz: a step is 6000 frames.
    let c = Ctx::new(48_000.0, 6000 * 5 + 1500, 1);
    assert_eq!(c.step(120.0, 4.0), 5);
    assert!((c.step_phase(120.0, 4.0) - 0.25).abs() < 1e-12);
    assert!((c.since_step(120.0, 4.0) - 0.03125).abs() < 1e-12);
    assert!((c.beats(120.0) - 1.3125).abs() < 1e-12);
}
