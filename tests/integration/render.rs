//! Rendering real audio: frequency, level, channel mapping, no non-finite
//! samples, through the library and through `lel-host render`/`check`.

use std::process::Command;

use lel_host::{RenderSettings, Renderer};

use crate::fixtures;
use crate::util::*;

const SR: u32 = 48_000;

fn renderer(channels: usize) -> Renderer {
    Renderer::new(RenderSettings {
        sample_rate: SR,
        channels,
        block: 128,
    })
    .expect("engine")
}

#[test]
fn sine_wat_is_440_hz_at_half_scale_on_every_channel() {
    let mut r = renderer(2);
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    let out = r.render(SR as usize * 2);
    assert!(all_finite(&out));
    for ch in 0..2 {
        let x = channel(&out, 2, ch);
        let f = dominant_frequency(&x[SR as usize..], SR);
        assert!(
            (f - 440.0).abs() < 0.5,
            "channel {ch}: expected 440 Hz, got {f:.3}"
        );
        let level = rms(&x[SR as usize..]);
        let expected = 0.5 / 2f64.sqrt();
        assert!(
            (level - expected).abs() < 1e-3,
            "channel {ch}: rms expected {expected:.4}, got {level:.4}"
        );
        assert!(
            (peak(&x) - 0.5).abs() < 1e-3,
            "channel {ch}: peak {}",
            peak(&x)
        );
    }
}

#[test]
fn stereo_module_maps_its_channels_to_the_first_outputs() {
    // Four outputs: a stereo signal fills the first two, leaves 3 and 4 silent.
    let mut r = renderer(4);
    r.load(&repo_root().join("examples/wat/stereo.wat"))
        .unwrap();
    let out = r.render(SR as usize);
    let (l, rr) = (channel(&out, 4, 0), channel(&out, 4, 1));
    let fl = dominant_frequency(&l, SR);
    let fr = dominant_frequency(&rr, SR);
    assert!((fl - 220.0).abs() < 0.5, "left: {fl}");
    assert!((fr - 330.0).abs() < 0.5, "right: {fr}");
    assert!((peak(&l) - 0.3).abs() < 1e-3);
    assert_eq!(peak(&channel(&out, 4, 2)), 0.0, "third output silent");
    assert_eq!(peak(&channel(&out, 4, 3)), 0.0, "fourth output silent");

    // One output: only the stereo signal's first channel reaches it.
    let mut r = renderer(1);
    r.load(&repo_root().join("examples/wat/stereo.wat"))
        .unwrap();
    let out = r.render(SR as usize);
    let f = dominant_frequency(&out, SR);
    assert!(
        (f - 220.0).abs() < 0.5,
        "mono output gets the left channel: {f}"
    );
    assert!(
        band_energy_db(&out, SR, 330.0, 5.0) < -60.0,
        "no right channel in a mono output"
    );
}

#[test]
fn signals_are_summed_and_the_master_never_passes_zero_dbfs() {
    // Four loud sines in phase sum to 3.2: the limiter must hold them below 0 dBFS.
    let dir = tempdir();
    let mut r = renderer(2);
    for i in 0..4 {
        r.load(&write(
            dir.path(),
            &format!("s{i}.wat"),
            &fixtures::sine(440.0, 0.8),
        ))
        .unwrap();
    }
    let out = r.render(SR as usize);
    assert!(all_finite(&out));
    let p = peak(&out);
    assert!(p <= 1.0, "peak {p} passed 0 dBFS");
    assert!(p > 0.85, "limited, not muted: {p}");
    let f = dominant_frequency(&channel(&out, 2, 0), SR);
    assert!((f - 440.0).abs() < 0.5);
}

#[test]
fn render_command_writes_a_float_wav_with_both_examples() {
    let dir = tempdir();
    let wav = dir.path().join("out.wav");
    let out = run_ok(
        Command::new(lel_host_bin())
            .args(["render", "--seconds", "2", "-o"])
            .arg(&wav)
            .arg(repo_root().join("examples/wat/sine.wat"))
            .arg(repo_root().join("examples/wat/stereo.wat")),
        "lel-host render",
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // indicatif draws its bar with block characters and redraws with `\r`.
    assert!(
        !stderr.contains(['\u{2588}', '\u{2591}', '\r']),
        "no progress bar when piped: {stderr}"
    );
    let (channels, rate, samples) = read_wav(&wav);
    assert_eq!((channels, rate), (2, 48_000));
    assert_eq!(samples.len(), 2 * 2 * 48_000, "exactly 2 s");
    assert!(all_finite(&samples));
    let l = channel(&samples, 2, 0);
    let r = channel(&samples, 2, 1);
    // Left: sine 440 (0.5) + stereo's left 220 (0.3); right: 440 + 330.
    assert!(band_energy_db(&l, 48_000, 440.0, 3.0) > -3.5);
    assert!(band_energy_db(&l, 48_000, 220.0, 3.0) > -8.0);
    assert!(band_energy_db(&l, 48_000, 330.0, 3.0) < -60.0);
    assert!(band_energy_db(&r, 48_000, 330.0, 3.0) > -8.0);
    assert!(band_energy_db(&r, 48_000, 220.0, 3.0) < -60.0);
}

#[test]
fn render_command_honours_rate_channels_and_block() {
    let dir = tempdir();
    let wav = dir.path().join("out.wav");
    run_ok(
        Command::new(lel_host_bin())
            .args([
                "render",
                "--seconds",
                "1",
                "--sample-rate",
                "44100",
                "--channels",
                "1",
                "--block",
                "64",
                "-o",
            ])
            .arg(&wav)
            .arg(repo_root().join("examples/wat/sine.wat")),
        "lel-host render",
        "",
    );
    let (channels, rate, samples) = read_wav(&wav);
    assert_eq!((channels, rate, samples.len()), (1, 44_100, 44_100));
    let f = dominant_frequency(&samples, 44_100);
    assert!((f - 440.0).abs() < 0.5, "440 Hz at 44.1 kHz: {f}");
}

#[test]
fn check_command_lists_channels_and_claims_and_sets_the_exit_status() {
    let out = run_ok(
        Command::new(lel_host_bin())
            .arg("check")
            .arg(repo_root().join("examples/wat")),
        "lel-host check",
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok    sine: 1 channel, state 8 of 1024 bytes claimed: \"osc#0\" 8 B"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "ok    stereo: 2 channels, state 16 of 1024 bytes claimed: \"osc#0\" 8 B, \"osc#1\" 8 B"
        ),
        "{stdout}"
    );

    let dir = tempdir();
    write(dir.path(), "good.wat", &fixtures::silent());
    write(
        dir.path(),
        "bad.wat",
        &fixtures::module("", "(i32.const -40)", "(i32.const 0)"),
    );
    let out = Command::new(lel_host_bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a bad module fails the check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok    good: 1 channel, no state claimed"),
        "{stdout}"
    );
    assert!(stdout.contains("error bad: "), "{stdout}");
    assert!(stdout.contains("bad.wat: `init` returned -40"), "{stdout}");
}

#[test]
fn render_keeps_playing_the_good_modules_when_one_is_bad() {
    let dir = tempdir();
    std::fs::copy(
        repo_root().join("examples/wat/sine.wat"),
        dir.path().join("sine.wat"),
    )
    .unwrap();
    write(dir.path(), "broken.wasm", "not wasm at all");
    let wav = dir.path().join("out.wav");
    let out = Command::new(lel_host_bin())
        .args(["render", "--seconds", "1", "-o"])
        .arg(&wav)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a rejected module is an error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.wasm: not a WebAssembly module"),
        "{stderr}"
    );
    let (_, _, samples) = read_wav(&wav);
    let f = dominant_frequency(&channel(&samples, 2, 0), 48_000);
    assert!((f - 440.0).abs() < 0.5, "the sine still rendered: {f}");
}

#[test]
fn more_versions_loaded_at_once_than_the_queue_holds_join_in_order_without_a_hang() {
    // 4 slots: the command queue holds 256 hand-overs. 300 versions of one
    // sine (amplitudes 0.001 to 0.300, phase carried) are loaded before a
    // single frame is rendered: the first 256 are handed over at the first
    // block (the 256th plays), the other 44 at the next one (the 300th).
    // It used to hang: the hand-over waited for room that only rendering
    // makes.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = Renderer::with_settings(lel_host::Settings {
            sample_rate: SR,
            channels: 1,
            slots: 4,
            cache_dir: None,
            ..lel_host::Settings::default()
        })
        .unwrap();
        for i in 1..=300 {
            let amp = i as f64 / 1000.0;
            r.load_bytes("sine", fixtures::sine(440.0, amp).as_bytes())
                .unwrap();
        }
        let _ = tx.send(r.render(3 * 128));
    });
    let x = rx
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("300 loads and 3 blocks rendered (not a hang)");
    for (n, &s) in x.iter().enumerate() {
        let amp = if n < 128 { 0.256 } else { 0.3 };
        assert!(
            (s as f64 - sine_at(440.0, amp, n, SR)).abs() < 1e-5,
            "frame {n}: {s}"
        );
    }
}
