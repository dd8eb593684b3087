//! Shared test helpers: temp dirs, audio analysis (frequency, level, continuity)
//! and building guest modules from source.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

/// Root of the repository (the folder holding the workspace `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// A fresh temporary folder, removed when the value is dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lel-test-")
        .tempdir()
        .expect("create temp dir")
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write fixture");
    p
}

/// One channel out of interleaved samples.
pub fn channel(interleaved: &[f32], channels: usize, ch: usize) -> Vec<f32> {
    interleaved
        .iter()
        .skip(ch)
        .step_by(channels)
        .copied()
        .collect()
}

pub fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / x.len() as f64).sqrt()
}

pub fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, &s| m.max(s.abs()))
}

pub fn db(x: f64) -> f64 {
    20.0 * x.max(1e-30).log10()
}

pub fn all_finite(x: &[f32]) -> bool {
    x.iter().all(|s| s.is_finite())
}

/// Magnitude spectrum of `x` (Hann window), one value per bin of `sr / n` Hz.
pub fn spectrum(x: &[f32]) -> Vec<f64> {
    let n = x.len();
    let mut buf: Vec<Complex<f64>> = x
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            Complex::new(s as f64 * w, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    buf[..n / 2].iter().map(|c| c.norm()).collect()
}

/// The strongest frequency in `x`, refined between bins by Gaussian
/// (log-parabolic) interpolation: within a few hundredths of a hertz for a
/// pure tone a second long.
pub fn dominant_frequency(x: &[f32], sample_rate: u32) -> f64 {
    let mag = spectrum(x);
    let k = (1..mag.len() - 1)
        .max_by(|&a, &b| mag[a].total_cmp(&mag[b]))
        .expect("signal long enough");
    let (a, b, c) = (
        mag[k - 1].max(1e-300).ln(),
        mag[k].max(1e-300).ln(),
        mag[k + 1].max(1e-300).ln(),
    );
    let delta = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f64 + delta) * sample_rate as f64 / x.len() as f64
}

/// Energy of `x` within `hz +- width` relative to its total energy, in dB.
pub fn band_energy_db(x: &[f32], sample_rate: u32, hz: f64, width: f64) -> f64 {
    let mag = spectrum(x);
    let bin = sample_rate as f64 / x.len() as f64;
    let total: f64 = mag.iter().map(|m| m * m).sum();
    let band: f64 = mag
        .iter()
        .enumerate()
        .filter(|(i, _)| ((*i as f64) * bin - hz).abs() <= width)
        .map(|(_, m)| m * m)
        .sum();
    10.0 * (band / total.max(1e-300)).log10()
}

/// The largest sample-to-sample step in `x`. A sine of amplitude `a` at `f`
/// Hz never steps by more than `2 pi f a / sr`; a click or a phase jump does.
pub fn max_step(x: &[f32]) -> f32 {
    x.windows(2).fold(0.0f32, |m, w| m.max((w[1] - w[0]).abs()))
}

/// `amp * sin(2 pi hz n / sample_rate)`: the reference a sine module that
/// started at clock 0 must match.
pub fn sine_at(hz: f64, amp: f64, n: usize, sample_rate: u32) -> f64 {
    amp * (std::f64::consts::TAU * hz * n as f64 / sample_rate as f64).sin()
}

/// `x` is, sample for sample (within 1e-5), the 440 Hz sine at half scale
/// of `examples/wat/sine.wat`, from its first frame.
pub fn assert_exact_sine(x: &[f32], sample_rate: u32) {
    for (n, &s) in x.iter().enumerate() {
        assert!(
            (s as f64 - sine_at(440.0, 0.5, n, sample_rate)).abs() < 1e-5,
            "frame {n}: {s}"
        );
    }
}

/// The step bound of a sine of amplitude `amp` at `hz`, with 10 % slack.
pub fn sine_step_bound(amp: f64, hz: f64, sample_rate: u32) -> f32 {
    (1.1 * 2.0 * std::f64::consts::PI * hz * amp / sample_rate as f64) as f32
}

/// Read a 32-bit float WAV written by lel-host: (channels, sample rate, samples).
pub fn read_wav(path: &Path) -> (u16, u32, Vec<f32>) {
    let mut r =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(spec.sample_format, hound::SampleFormat::Float, "float WAV");
    assert_eq!(spec.bits_per_sample, 32, "32-bit WAV");
    let samples: Vec<f32> = r.samples::<f32>().map(|s| s.expect("sample")).collect();
    (spec.channels, spec.sample_rate, samples)
}

/// Run a command, panicking with its output (and what to install) on failure.
pub fn run_ok(cmd: &mut Command, what: &str, install_hint: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}. {install_hint}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n{install_hint}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Path of the `lel-host` binary built for these tests.
pub fn lel_host_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lel-host"))
}

/// Allocator calls the engine's audio-thread code made outside fault paths
/// (counted by lel-host's allocator when `Settings::check_alloc` is on).
pub fn audio_thread_allocations(r: &mut lel_host::Renderer) -> u64 {
    r.control()
        .stats()
        .violations
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// How many of `notices` say a signal faulted (trap, runaway, non-finite
/// output, ...).
pub fn faults(notices: &[lel_host::Notice]) -> usize {
    notices
        .iter()
        .filter(|n| matches!(n, lel_host::Notice::Faulted { .. }))
        .count()
}

/// `lel-host render`'s runaway budget (2 s of CPU in one call), for renders
/// that compare sound rather than time: a real-time budget can be exceeded
/// by a stall of a shared machine, and the muted version then reads as a
/// wrong sample.
pub const OFFLINE_RUNAWAY: std::time::Duration = std::time::Duration::from_secs(2);
