//! The Rust guest SDK through the host: the examples under `examples/rust/`
//! and the test guests under `tests/guests/` are built for wasm32 from
//! source (once, by the first test that needs them), checked against
//! `wit/lel.wit`, and rendered offline: frequencies, levels, equal-power
//! panning, the shared clock, and every stateful helper's state surviving a
//! hot swap.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use lel_host::{Renderer, Settings};

use crate::util::*;

const SR: u32 = 48_000;

/// Every guest crate the tests use, built in one cargo invocation.
const GUESTS: [&str; 6] = [
    "sine",
    "filtered-delayed-sine",
    "another-signal",
    "drum-pattern",
    "swap-probe-a",
    "swap-probe-b",
];

const INSTALL_HINT: &str = "The Rust examples are built for WebAssembly; if the \
     wasm32 target is missing, install it with `rustup target add wasm32-unknown-unknown`.";

/// Folder of the built `.wasm` files (`target/guests/wasm32-unknown-unknown/release`).
fn guests() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_guests) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

fn build_guests() -> Result<PathBuf, String> {
    let root = repo_root();
    // A target of its own: the outer `cargo test` holds the lock on the
    // workspace's target directory.
    let target = root.join("target").join("guests");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .current_dir(&root)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc:?}: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let wasm_std = sysroot.join("lib/rustlib/wasm32-unknown-unknown");
    if !wasm_std.is_dir() {
        return Err(format!(
            "the wasm32-unknown-unknown target is not installed (no {}): \
             run `rustup target add wasm32-unknown-unknown`",
            wasm_std.display()
        ));
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .env("CARGO_TARGET_DIR", &target);
    for g in GUESTS {
        cmd.args(["-p", g]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}. {INSTALL_HINT}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the Rust guests failed ({}):\n{}\n{INSTALL_HINT}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(target.join("wasm32-unknown-unknown").join("release"))
}

/// Path of guest `name`'s module (`-` becomes `_` in the file name).
fn wasm(name: &str) -> PathBuf {
    guests().join(format!("{}.wasm", name.replace('-', "_")))
}

fn bytes(name: &str) -> Vec<u8> {
    let p = wasm(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// An offline renderer judging calls as `lel-host render` does
/// ([`OFFLINE_RUNAWAY`]; `Renderer::new`'s real-time budget of half a
/// block once muted a version during a stall of this machine).
fn renderer(channels: usize) -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels,
        block: 128,
        runaway: Some(OFFLINE_RUNAWAY),
        ..Settings::default()
    })
    .expect("renderer")
}

/// Frames at `seconds`.
fn at(seconds: f64) -> usize {
    (seconds * SR as f64).round() as usize
}

/// Channel `ch` of `x` between `from` and `to` seconds.
fn window(x: &[f32], channels: usize, ch: usize, from: f64, to: f64) -> Vec<f32> {
    channel(x, channels, ch)[at(from)..at(to)].to_vec()
}

#[test]
fn rust_examples_satisfy_the_contract() {
    for g in GUESTS {
        let b = bytes(g);
        if let Err(e) = lel_host::contract::validate(&b) {
            panic!("{g}: does not satisfy wit/lel.wit: {e}");
        }
        println!("{g}: {} bytes", b.len());
        assert!(b.len() < 64 * 1024, "{g} is {} bytes", b.len());
    }
}

#[test]
fn sine_example_is_440_hz_at_half_scale() {
    let mut r = renderer(2);
    r.load(&wasm("sine")).expect("load sine");
    let out = r.render(at(1.1));
    assert!(all_finite(&out));
    // After the fade-in: one second.
    let l = window(&out, 2, 0, 0.1, 1.1);
    let rr = window(&out, 2, 1, 0.1, 1.1);
    assert_eq!(l, rr, "a mono signal goes to every output");
    let f = dominant_frequency(&l, SR);
    assert!((f - 440.0).abs() < 0.05, "{f} Hz");
    assert!((peak(&l) - 0.5).abs() < 1e-3, "peak {}", peak(&l));
    assert!(
        (rms(&l) - 0.5 / 2f64.sqrt()).abs() < 1e-3,
        "rms {}",
        rms(&l)
    );
    assert!(max_step(&l) <= sine_step_bound(0.5, 440.0, SR));
}

#[test]
fn filtered_delayed_sine_example_filters_pulses_and_echoes() {
    let mut r = renderer(1);
    r.load(&wasm("filtered-delayed-sine")).expect("load");
    let out = r.render(at(2.0));
    assert!(all_finite(&out));
    assert!(peak(&out) < 0.45, "peak {}", peak(&out));
    let f = dominant_frequency(&out[at(0.5)..at(2.0)], SR);
    assert!((f - 440.0).abs() < 0.5, "{f} Hz");
    // Before the first echo (0.25 s) only the dry half plays:
    // 0.4 gain * 0.5 mix * 0.875 (one-pole at 800 Hz, at 440 Hz) * tremolo.
    let dry = rms(&out[at(0.05)..at(0.24)]);
    assert!((0.06..0.11).contains(&dry), "dry {dry}");
    // The tremolo: 10 ms levels swing by more than 3x at 5 Hz.
    let levels: Vec<f64> = (2..24)
        .map(|k| rms(&out[at(k as f64 * 0.01)..at(k as f64 * 0.01 + 0.01)]))
        .collect();
    let (lo, hi) = levels
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi > 3.0 * lo, "tremolo {lo} .. {hi}");
    // Once the echoes come in, the level more than doubles.
    let wet = rms(&out[at(0.5)..at(0.74)]);
    assert!(wet > 1.8 * dry, "echoes: {wet} vs dry {dry}");
}

#[test]
fn another_signal_example_pans_with_equal_power() {
    let mut r = renderer(2);
    r.load(&wasm("another-signal")).expect("load");
    let out = r.render(at(6.0));
    assert!(all_finite(&out));
    let l = channel(&out, 2, 0);
    let rr = channel(&out, 2, 1);
    let f = dominant_frequency(&l[at(0.5)..at(1.5)], SR);
    assert!((f - 220.0).abs() < 0.05, "{f} Hz");
    // Equal power: L^2 + R^2 is the sine's power (0.5^2 / 2) everywhere.
    for k in 1..55 {
        let (a, b) = (at(k as f64 * 0.1), at(k as f64 * 0.1 + 0.1));
        let p = rms(&l[a..b]).powi(2) + rms(&rr[a..b]).powi(2);
        assert!(
            (p - 0.125).abs() < 0.002,
            "power {p} at {} s",
            k as f64 * 0.1
        );
    }
    // The position follows sin(0.3 t): around t = 1 s, R/L = tan((p + 1) pi / 4).
    let (a, b) = (at(0.99), at(1.01));
    let ratio = rms(&rr[a..b]) / rms(&l[a..b]);
    let want = ((0.3f64.sin() + 1.0) * std::f64::consts::FRAC_PI_4).tan();
    assert!(
        (ratio / want - 1.0).abs() < 0.02,
        "R/L {ratio}, expected {want}"
    );
}

/// Onset strength of `x` per 1 ms (48 frames): how much the energy of
/// the last 20 ms rose over the 20 ms before. Peaks where hits start; 20 ms
/// hold a whole cycle of the kick, so the waveforms' phases (which depend
/// on when a copy was loaded) hardly matter.
fn onset_strength(x: &[f32]) -> Vec<f64> {
    let e: Vec<f64> = x.chunks(48).map(|c| rms(c).powi(2)).collect();
    let smooth: Vec<f64> = (0..e.len())
        .map(|k| e[k.saturating_sub(19)..=k].iter().sum::<f64>())
        .collect();
    (0..smooth.len())
        .map(|k| (smooth[k] - smooth[k.saturating_sub(20)]).max(0.0))
        .collect()
}

/// The lag (in 1 ms windows, within +-`max`) at which `b` best matches
/// `a`, and the normalised correlation there.
fn best_lag(a: &[f64], b: &[f64], max: isize) -> (isize, f64) {
    let n = a.len() as isize;
    let mut best = (0, f64::MIN);
    for lag in -max..=max {
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for i in max..n - max {
            let (x, y) = (a[i as usize], b[(i + lag) as usize]);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        let c = ab / (aa * bb).sqrt().max(1e-30);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

#[test]
fn drum_pattern_example_stays_on_the_shared_clock() {
    let step = SR as usize * 60 / (120 * 4); // 6000 frames
    let bar = 16 * step;
    let late = 2 * step + step / 2; // half a step off the grid
    let drums = bytes("drum-pattern");
    let from = 2 * bar; // compare bars 3 and 4
    // A copy playing from the start.
    let mut early = renderer(1);
    early.load_bytes("drums", &drums).expect("load");
    let a = early.render(from + 2 * bar);
    assert!(all_finite(&a));
    assert!(peak(&a) < 0.891, "peak {}", peak(&a));
    // A copy loaded half a step late on the running clock.
    let mut later = renderer(1);
    later.render(late);
    assert_eq!(later.clock(), late as u64);
    later.load_bytes("drums", &drums).expect("load");
    let b = later.render(from + 2 * bar - late);
    // Both copies together, the second loaded half a step late.
    let mut both = renderer(1);
    both.load_bytes("drums-a", &drums).expect("load a");
    let mut ab = both.render(late);
    both.load_bytes("drums-b", &drums).expect("load b");
    ab.extend(both.render(from + 2 * bar - late));

    // Each copy played throughout: no fault (a muted copy would read as
    // a clock error below).
    for (what, r) in [
        ("early", &mut early),
        ("late", &mut later),
        ("both", &mut both),
    ] {
        let notices = r.take_notices();
        assert_eq!(
            faults(&notices),
            0,
            "the {what} render faulted: {notices:?}"
        );
    }
    let env_a = onset_strength(&a[from..]);
    let env_b = onset_strength(&b[from - late..]);
    let env_ab = onset_strength(&ab[from..]);
    let (lag, c) = best_lag(&env_a, &env_b, 200);
    // Within 10 ms (the onsets are 20 ms ramps, and the copies' waveforms
    // differ in phase); a copy on its own clock would be 62.5 ms off.
    assert!(
        lag.abs() <= 10 && c > 0.7,
        "the late copy is {lag} ms off the early one (correlation {c:.3})"
    );
    let (lag, c) = best_lag(&env_a, &env_ab, 200);
    assert!(
        lag.abs() <= 10 && c > 0.7,
        "two copies together are {lag} ms off one alone (correlation {c:.3})"
    );
    // And the test can tell: half a step (62.5 ms) off is seen as such.
    let shifted = onset_strength(&a[from - step / 2..a.len() - step / 2]);
    let (lag, _) = best_lag(&env_a, &shifted, 200);
    assert!(lag.abs() >= 50, "a half-step shift measured as {lag} ms");
}

/// The probe's channels and the helper each one exercises.
const PROBE: [&str; 8] = [
    "saw oscillator phase",
    "noise and one-pole lowpass",
    "square and one-pole highpass",
    "resonant biquad lowpass",
    "tremolo phase",
    "delay line",
    "ADSR envelope",
    "func's user slots",
];

#[test]
fn every_stateful_helper_keeps_its_state_across_a_swap() {
    let (a, b) = (bytes("swap-probe-a"), bytes("swap-probe-b"));
    let total = at(2.0);
    let swap = 132 * 128; // 0.352 s: after the burst, before its first echo
    // Version A straight through.
    let mut r = renderer(8);
    r.load_bytes("probe", &a).expect("load a");
    let straight = r.render(total);
    // Version A, then B (half the output gain) swapped in mid-stream.
    let mut r = renderer(8);
    r.load_bytes("probe", &a).expect("load a");
    let mut swapped = r.render(swap);
    r.load_bytes("probe", &b).expect("swap to b");
    swapped.extend(r.render(total - swap));
    assert!(all_finite(&swapped));
    // Both versions played their part: no fault (a muted B would read as
    // state lost at the swap below).
    let notices = r.take_notices();
    assert_eq!(faults(&notices), 0, "a version faulted: {notices:?}");

    for (ch, what) in PROBE.iter().enumerate() {
        let s = &channel(&swapped, 8, ch)[swap..];
        let reference = &channel(&straight, 8, ch)[swap..];
        assert!(rms(reference) > 0.01, "{what}: silent probe channel");
        let worst = s
            .iter()
            .zip(reference)
            .map(|(&x, &y)| (x as f64 - 0.5 * y as f64).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-5,
            "{what} (channel {ch}) did not continue across the swap: off by {worst}"
        );
    }
    // The burst ended at 0.3 s, in version A; its echo (0.4 s later) is
    // played by version B from the delay line it inherited.
    let echo = rms(&window(&swapped, 8, 5, 0.45, 0.65));
    assert!(echo > 0.1, "echo after the swap: rms {echo}");
    // A fresh B loaded at the same moment has an empty line: no echo.
    let mut r = renderer(8);
    r.render(swap);
    r.load_bytes("probe", &b).expect("load b");
    let fresh = r.render(total - swap);
    let none = rms(&channel(&fresh, 8, 5)[at(0.45) - swap..at(0.65) - swap]);
    assert!(none < 1e-4, "a fresh delay line echoes: rms {none}");
}
