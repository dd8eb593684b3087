//! Playing a signal, natively (contract 0.2): host parameters (declared
//! once, smoothed, kept across reloads), note events at their frames,
//! monophonic note access and polyphony (chords, allocation, stealing,
//! voices ringing on through a reload), all on rendered samples.

mod common;

use common::*;
use lel::Node;
use lel::prelude::*;
use lel::testing::Harness;

/// The poly-synth example's instrument, without its velocity scaling.
fn synth() -> impl Node<Frame = [f64; 1]> {
    poly(8, |v| {
        saw(v.hz()).lpf(
            param("cutoff", 2000.0).range(20.0, 20_000.0).unit("Hz"),
            0.7,
        ) * adsr(
            v.gate(),
            0.005,
            0.1,
            0.7,
            param("release", 0.3).range(0.01, 5.0).unit("s"),
        )
    })
    .gain(0.2)
}

/// Sine voices (clean spectra): sustain 1, release 50 ms.
fn sines() -> impl Node<Frame = [f64; 1]> {
    poly(8, |v| osc(v.hz()) * adsr(v.gate(), 0.002, 0.0, 1.0, 0.05)).gain(0.1)
}

fn hz(key: f64) -> f64 {
    440.0 * 2f64.powf((key - 69.0) / 12.0)
}

/// The frequencies of the spectrum's peaks above `floor` times the
/// strongest (local maxima, interpolated), ascending.
fn peaks(x: &[f32], floor: f64) -> Vec<f64> {
    let mag: Vec<f64> = power_spectrum(x, true).iter().map(|p| p.sqrt()).collect();
    let top = mag.iter().cloned().fold(0.0, f64::max);
    let mut out = Vec::new();
    for k in 2..mag.len() - 2 {
        let m = mag[k];
        if m > floor * top && m > mag[k - 1] && m >= mag[k + 1] && m > mag[k - 2] && m > mag[k + 2]
        {
            let (a, b, c) = (mag[k - 1].ln(), m.ln(), mag[k + 1].ln());
            let d = 0.5 * (a - c) / (a - 2.0 * b + c);
            out.push((k as f64 + d) * SR as f64 / x.len() as f64);
        }
    }
    out
}

fn has(peaks: &[f64], f: f64) -> bool {
    peaks.iter().any(|p| (p - f).abs() < 1.5)
}

#[test]
fn parameters_are_declared_once_per_key_in_order_with_range_and_unit() {
    let h = Harness::new(SR, synth).unwrap();
    let p = h.params();
    assert_eq!(p.len(), 2, "eight voices, one declaration per key: {p:?}");
    assert_eq!((p[0].key.as_str(), p[0].index), ("cutoff", 0));
    assert_eq!((p[0].value, p[0].min, p[0].max), (2000.0, 20.0, 20_000.0));
    assert_eq!(p[0].unit, "Hz");
    assert_eq!(
        (p[1].key.as_str(), p[1].index, p[1].value),
        ("release", 1, 0.3)
    );
    assert!(h.keys().contains(&"poly#0") && h.keys().contains(&"notes"));
    assert!(h.keys().contains(&"osc#7") && h.keys().contains(&"env#7"));
}

#[test]
fn bad_declarations_fail_init_with_the_contracts_codes() {
    let code = |b: fn() -> lel::Knob| Harness::new(SR, move || value(b())).err().map(|e| e.0);
    assert_eq!(code(|| param("a b", 0.5)), Some(-2), "space in key");
    assert_eq!(
        code(|| param("x", 5.0).range(0.0, 1.0)),
        Some(-7),
        "default outside"
    );
    assert_eq!(
        code(|| param("x", 0.5).range(1.0, 0.0)),
        Some(-7),
        "min > max"
    );
    assert_eq!(code(|| param("x", 0.5).steps(1)), Some(-7), "steps 1");
    assert_eq!(
        code(|| param("x", 0.5).unit("much too long a unit")),
        Some(-9)
    );
    assert_eq!(code(|| param("x", 0.5)), None);
}

#[test]
fn a_parameter_change_ramps_linearly_over_20_ms_from_its_frame() {
    let mut h = Harness::new(SR, || value(param("level", 0.0))).unwrap();
    h.set_param("level", 1.0, 1000).unwrap();
    let y = h.render_channel(3000, 0);
    let n = (0.02 * SR as f64) as usize; // 960 samples
    assert_eq!(y[999], 0.0, "nothing before the event's frame");
    assert!(
        (y[1000] as f64 - 1.0 / n as f64).abs() < 1e-6,
        "{}",
        y[1000]
    );
    assert!((y[1000 + n / 2 - 1] as f64 - 0.5).abs() < 1e-6);
    assert_eq!(y[1000 + n - 1], 1.0, "the ramp ends on the target");
    assert_eq!(y[2999], 1.0);
    let step = max_step(&y);
    assert!(
        step < 1.0 / n as f64 + 1e-6,
        "steps of at most 1/960: {step}"
    );
    assert_eq!(h.param("level"), Some(1.0));
}

#[test]
fn a_parameter_jump_does_not_click() {
    // A 440 Hz sine whose level jumps from 0.1 to 1 near a peak: smoothed,
    // no sample-to-sample step is larger than the full-level sine's own.
    let jump = |smooth: Option<f64>| {
        let mut h = Harness::new(SR, move || {
            let p = param("level", 0.1);
            osc(440)
                * value(match smooth {
                    Some(s) => p.smooth(s),
                    None => p,
                })
        })
        .unwrap();
        h.set_param("level", 1.0, 1000).unwrap();
        h.render_channel(4000, 0)
    };
    let sine_step = 2.0 * std::f64::consts::PI * 440.0 / SR as f64;
    let smoothed = max_step(&jump(None));
    let raw = max_step(&jump(Some(0.0)));
    assert!(
        smoothed < sine_step * 1.01,
        "smoothed {smoothed}, sine {sine_step}"
    );
    assert!(raw > 0.5, "unsmoothed, the jump is a click: {raw}");
}

#[test]
fn a_stepped_parameter_snaps_and_does_not_ramp() {
    let mut h = Harness::new(SR, || value(param("mode", 0.0).range(0.0, 3.0).steps(4))).unwrap();
    assert_eq!(h.set_param("mode", 1.8, 500).unwrap(), 2.0);
    assert!(h.set_param("mode", 4.0, 500).is_err(), "out of range");
    assert!(h.set_param("nope", 1.0, 500).is_err(), "unknown");
    let y = h.render_channel(1000, 0);
    assert_eq!((y[499], y[500]), (0.0, 2.0));
}

#[test]
fn user_set_values_survive_a_reload_and_unset_ones_take_the_new_default() {
    let mut h = Harness::new(SR, synth).unwrap();
    h.set_param("cutoff", 500.0, 0).unwrap();
    h.render(256);
    let h = h
        .swap(|| {
            poly(8, |v| {
                saw(v.hz()).lpf(param("cutoff", 3000.0).range(20.0, 20_000.0), 0.7)
                    * adsr(
                        v.gate(),
                        0.005,
                        0.1,
                        0.7,
                        param("release", 0.8).range(0.01, 5.0),
                    )
            })
            .gain(0.2)
        })
        .unwrap();
    assert_eq!(h.param("cutoff"), Some(500.0), "set by the user: kept");
    assert_eq!(h.param("release"), Some(0.8), "never set: the new default");
    // A narrower range clamps the kept value.
    let h = h
        .swap(|| value(param("cutoff", 300.0).range(20.0, 400.0)))
        .unwrap();
    assert_eq!(h.param("cutoff"), Some(400.0));
}

#[test]
fn mono_note_access_is_sample_accurate() {
    let mut h = Harness::new(SR, || value(gate()) * velocity()).unwrap();
    h.note_on(1234, 60, 0.5);
    h.note_on(1500, 64, 0.25);
    h.note_off(1600, 60); // not the last key: ignored
    h.note_off(2000, 64);
    let y = h.render_channel(2500, 0);
    assert_eq!((y[1233], y[1234], y[1499], y[1500]), (0.0, 0.5, 0.5, 0.25));
    assert_eq!((y[1999], y[2000]), (0.25, 0.0));
}

#[test]
fn pitch_follows_the_key_and_the_bend_and_cc_reads_controllers() {
    let mut h = Harness::new(SR, || osc(pitch()).gain(0.5).join(value(cc(7)))).unwrap();
    h.note_on(0, 57, 1.0);
    h.send(0, lel::Event::cc(7, 0.75));
    let a = h.render(SR as usize / 2);
    let left: Vec<f32> = a.iter().step_by(2).cloned().collect();
    assert!((dominant_frequency(&left) - 220.0).abs() < 0.5);
    assert_eq!(a[1], 0.75, "cc 7 from frame 0");
    h.send(h.clock(), lel::Event::bend(1.0));
    let b = h.render_channel(SR as usize / 2, 0);
    let f = dominant_frequency(&b);
    assert!(
        (f - hz(59.0)).abs() < 0.5,
        "bend +1 = two semitones up: {f}"
    );
}

#[test]
fn a_chord_plays_every_note() {
    let mut h = Harness::new(SR, synth).unwrap();
    for k in [60, 64, 67, 71] {
        h.note_on(100, k, 0.8);
    }
    h.render(4800);
    let y = h.render_channel(SR as usize / 2, 0);
    let p = peaks(&y, 0.2);
    for k in [60.0, 64.0, 67.0, 71.0] {
        assert!(has(&p, hz(k)), "{} Hz in {p:?}", hz(k));
    }
}

#[test]
fn the_ninth_note_steals_the_oldest_held_voice() {
    let keys = [48u8, 52, 55, 60, 64, 67, 72, 76, 79];
    let mut h = Harness::new(SR, sines).unwrap();
    for (i, &k) in keys[..8].iter().enumerate() {
        h.note_on(i as u64 * 100, k, 1.0);
    }
    h.render(4800);
    let before = peaks(&h.render_channel(SR as usize / 2, 0), 0.3);
    assert!(
        keys[..8].iter().all(|&k| has(&before, hz(k as f64))),
        "{before:?}"
    );
    h.note_on(h.clock(), keys[8], 1.0);
    h.render(4800);
    let after = peaks(&h.render_channel(SR as usize / 2, 0), 0.3);
    assert!(
        !has(&after, hz(48.0)),
        "the oldest (48) was stolen: {after:?}"
    );
    assert!(
        keys[1..].iter().all(|&k| has(&after, hz(k as f64))),
        "{after:?}"
    );
}

#[test]
fn a_new_note_takes_the_voice_released_longest_ago_not_a_held_one() {
    let keys = [48u8, 52, 55, 60, 64, 67, 72, 76];
    let mut h = Harness::new(SR, sines).unwrap();
    for &k in &keys {
        h.note_on(0, k, 1.0);
    }
    h.note_off(1000, 60);
    h.note_off(1100, 55);
    h.render(9600);
    h.note_on(h.clock(), 79, 1.0);
    h.render(4800);
    let p = peaks(&h.render_channel(SR as usize / 2, 0), 0.3);
    for k in [48u8, 52, 64, 67, 72, 76, 79] {
        assert!(has(&p, hz(k as f64)), "{k} in {p:?}");
    }
    // 55 released after 60: a second new note takes 55's voice, not a
    // held one.
    h.note_on(h.clock(), 84, 1.0);
    h.render(4800);
    let p = peaks(&h.render_channel(SR as usize / 2, 0), 0.3);
    for k in [48u8, 52, 64, 67, 72, 76, 79, 84] {
        assert!(has(&p, hz(k as f64)), "{k} in {p:?}");
    }
}

#[test]
fn ringing_voices_and_parameters_survive_a_reload_with_phase_continuity() {
    let play = |h: &mut Harness<_>| {
        h.set_param("cutoff", 900.0, 0).unwrap();
        for k in [57, 61, 64] {
            h.note_on(10, k, 1.0);
        }
    };
    // Straight through.
    let mut r = Harness::new(SR, synth).unwrap();
    play(&mut r);
    let whole = r.render_channel(24_000, 0);
    // Swapped mid-note to a rebuilt instrument.
    let mut h = Harness::new(SR, synth).unwrap();
    play(&mut h);
    let mut y = h.render_channel(12_000, 0);
    let mut h = h.swap(synth).unwrap();
    assert!(h.claimed().iter().all(|c| c.carried), "{:?}", h.claimed());
    assert_eq!(h.param("cutoff"), Some(900.0));
    y.extend(h.render_channel(12_000, 0));
    assert_eq!(
        y, whole,
        "the same samples: every phase, filter and envelope carried"
    );
    // Swapped to an edited instrument (a new release default): the notes
    // sound on, with no jump at the seam.
    let mut h = Harness::new(SR, synth).unwrap();
    play(&mut h);
    let a = h.render_channel(12_000, 0);
    let mut h = h
        .swap(|| {
            poly(8, |v| {
                saw(v.hz()).lpf(param("cutoff", 2000.0).range(20.0, 20_000.0), 0.7)
                    * adsr(
                        v.gate(),
                        0.005,
                        0.1,
                        0.7,
                        param("release", 1.5).range(0.01, 5.0),
                    )
            })
            .gain(0.25)
        })
        .unwrap();
    let b = h.render_channel(12_000, 0);
    let seam = (b[0] as f64 - a[a.len() - 1] as f64).abs();
    assert!(seam < 3.0 * max_step(&a[6000..]), "seam {seam}");
    assert!(rms(&b) > 0.9 * rms(&a[6000..]), "still sounding");
}
