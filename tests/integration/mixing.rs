//! Per-signal gain, mute and solo through the control-event queue: each
//! change starts on its exact frame, ramps without a click, and solo leaves
//! only the soloed signals audible. Checked on rendered sines.

use std::time::Duration;

use lel_host::Renderer;
use lel_host::Settings;

use crate::fixtures::sine;
use crate::util::*;

const SR: u32 = 48_000;
/// The ramp of every change: the fade time (10 ms by default).
const RAMP: usize = 480;

fn engine() -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: 128,
        check_alloc: true,
        init_timeout: Duration::from_millis(500),
        ..Settings::default()
    })
    .expect("engine")
}

fn with_sines(freqs: &[f64]) -> Renderer {
    let mut r = engine();
    for (i, f) in freqs.iter().enumerate() {
        r.load_bytes(&format!("s{i}"), sine(*f, 0.25).as_bytes())
            .expect("sine loads");
    }
    r
}

#[test]
fn a_gain_change_starts_on_its_exact_frame_and_ramps_to_its_level() {
    let mut r = with_sines(&[440.0]);
    let mut x = r.render(1000);
    // Mid-block (blocks are 128 frames; the clock is at 1000).
    let at = 1000 + 77;
    r.set_gain("s0", 0.5, at as u64).unwrap();
    x.extend(r.render(3000));
    let ideal = |n: usize| sine_at(440.0, 0.25, n, SR);
    for (n, &s) in x.iter().enumerate().take(at + 1) {
        assert!(
            (s as f64 - ideal(n)).abs() < 1e-6,
            "frame {n} before the change: {s} vs {}",
            ideal(n)
        );
    }
    for (n, &s) in x.iter().enumerate().skip(at) {
        let k = (n - at).min(RAMP) as f64;
        let gain = 1.0 - 0.5 * k / RAMP as f64;
        assert!(
            (s as f64 - gain * ideal(n)).abs() < 2e-5,
            "frame {n} ({} after the change): {s} vs {}",
            n - at,
            gain * ideal(n)
        );
    }
    // The first frame that differs from the unchanged sine is the one after
    // `at` (where the ramp's first step lands).
    let first = (0..x.len())
        .find(|&n| (x[n] as f64 - ideal(n)).abs() > 1e-5 && ideal(n).abs() > 0.05)
        .expect("the gain changed");
    assert!(
        (at + 1..at + 8).contains(&first),
        "first change at {first}, event at {at}"
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn mute_and_unmute_ramp_without_a_click_and_the_signal_keeps_running() {
    let mut r = with_sines(&[440.0]);
    let mut x = r.render(2000);
    r.mute("s0", true, 2050).unwrap();
    r.mute("s0", false, 6000).unwrap();
    x.extend(r.render(8000));
    let bound = sine_step_bound(0.25, 440.0, SR);
    assert!(
        max_step(&x) <= bound,
        "a click: step {} above the sine's own {bound}",
        max_step(&x)
    );
    assert!(peak(&x[2050 + RAMP..6000]) == 0.0, "silent while muted");
    // Unmuted: the sine is where it would have been (it kept running).
    for (n, &s) in x.iter().enumerate().skip(6000 + RAMP) {
        let ideal = sine_at(440.0, 0.25, n, SR);
        assert!((s as f64 - ideal).abs() < 1e-6, "frame {n}: {s} vs {ideal}");
    }
}

#[test]
fn solo_leaves_only_the_soloed_signals_and_mute_still_wins() {
    let freqs = [300.0, 500.0, 700.0];
    let mut r = with_sines(&freqs);
    let c = r.clock();
    let seg = 12_000u64;
    // 0: all three; 1: solo s1; 2: solo s1 and s2; 3: s2 muted too;
    // 4: solo off everywhere, s2 still muted.
    r.solo("s1", true, c + seg).unwrap();
    r.solo("s2", true, c + 2 * seg).unwrap();
    r.mute("s2", true, c + 3 * seg).unwrap();
    r.solo("s1", false, c + 4 * seg).unwrap();
    r.solo("s2", false, c + 4 * seg).unwrap();
    let x = r.render(5 * seg as usize);
    let heard = |k: usize| -> Vec<bool> {
        // Skip the ramp at the start of the segment.
        let w = &x[k * seg as usize + 2 * RAMP..(k + 1) * seg as usize];
        freqs
            .iter()
            .map(|&f| band_energy_db(w, SR, f, 20.0) > -20.0)
            .collect()
    };
    assert_eq!(heard(0), [true, true, true], "no solo: all");
    assert_eq!(heard(1), [false, true, false], "solo s1");
    assert_eq!(heard(2), [false, true, true], "solo s1 and s2");
    assert_eq!(heard(3), [false, true, false], "s2 soloed but muted");
    assert_eq!(heard(4), [true, true, false], "solo off, s2 muted");
    assert!(
        max_step(&x) < 0.1,
        "no click at any change: {}",
        max_step(&x)
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn an_event_for_a_past_frame_applies_at_the_next_block_and_bad_requests_are_refused() {
    let mut r = with_sines(&[440.0]);
    r.render(1024);
    r.mute("s0", true, 0).unwrap();
    let x = r.render(1024);
    assert!(
        x[0] != 0.0 && x[RAMP..].iter().all(|&s| s == 0.0),
        "muted from the block's start"
    );
    let e = r.set_gain("s0", f32::NAN, 0).unwrap_err().to_string();
    assert!(e.contains("gain NaN for s0 is out of range"), "{e}");
    let e = r.mute("nope", true, 0).unwrap_err().to_string();
    assert!(e.contains("no signal named `nope`"), "{e}");
}

#[test]
fn a_reloaded_signal_keeps_its_mute_and_a_new_signal_in_a_freed_slot_starts_unmuted() {
    let mut r = with_sines(&[440.0]);
    r.mute("s0", true, 0).unwrap();
    r.render(2048);
    r.load_bytes("s0", sine(550.0, 0.25).as_bytes()).unwrap();
    let x = r.render(2048);
    assert!(peak(&x) == 0.0, "still muted after the swap");
    assert!(r.unload("s0"));
    r.render(4096);
    r.load_bytes("t", sine(660.0, 0.25).as_bytes()).unwrap();
    let y = r.render(4096);
    assert!(
        rms(&y[2048..]) > 0.1,
        "the next signal in that slot is heard"
    );
}

/// The master meter reads the level of each block it lets through (its
/// peak exactly, its RMS to rounding) in every way a block comes about:
/// one signal's samples as they are (the master then takes the level that
/// signal's own check measured), two signals, a muted signal beside one
/// playing, no signal, a mono signal in two channels, and a signal too loud
/// that the limiter brings down.
#[test]
fn the_master_meter_reads_each_block_it_lets_through() {
    // (case, channels, amplitudes, whether the second signal is muted)
    let cases: [(&str, usize, &[f64], bool); 6] = [
        ("one signal", 1, &[0.25], false),
        ("two signals", 1, &[0.25, 0.2], false),
        ("one muted beside one playing", 1, &[0.25, 0.2], true),
        ("no signal", 1, &[], false),
        ("mono in two channels", 2, &[0.25], false),
        ("too loud", 1, &[3.0], false),
    ];
    for (case, channels, amps, mute_second) in cases {
        let mut r = Renderer::with_settings(Settings {
            sample_rate: SR,
            channels,
            block: 128,
            ..Settings::default()
        })
        .expect("engine");
        for (i, amp) in amps.iter().enumerate() {
            r.load_bytes(
                &format!("s{i}"),
                sine(330.0 + 110.0 * i as f64, *amp).as_bytes(),
            )
            .expect("sine loads");
        }
        if mute_second {
            r.mute("s1", true, 0).expect("mute");
        }
        // Past the fade-in and the mute's ramp.
        r.render(20 * 128);
        let _ = r.control().levels().take_master();
        let mut loudest = 0.0f32;
        for block in 0..40 {
            let out = r.render(128);
            let level = r.control().levels().take_master();
            assert_eq!(level.peak, peak(&out), "{case}: peak of block {block}");
            let want = rms(&out);
            assert!(
                (f64::from(level.rms) - want).abs() <= 1e-6 * want,
                "{case}: RMS of block {block}: {} against {want}",
                level.rms
            );
            loudest = loudest.max(level.peak);
        }
        let expected = match case {
            "no signal" => 0.0,
            "two signals" => 0.3,
            "too loud" => 0.891,
            _ => 0.24,
        };
        assert!(
            loudest >= expected && loudest <= 0.8913,
            "{case}: loudest block peak {loudest}"
        );
    }
}
