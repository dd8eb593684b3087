//! Shared helpers of the SDK's native tests: rendering with the harness and
//! measuring level, frequency and spectra.

#![allow(dead_code)]

use lel::Node;
use lel::testing::Harness;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

pub const SR: u32 = 48_000;

/// Renders `frames` frames of channel 0 of `build()`'s signal at `SR`.
pub fn render<N: Node>(frames: usize, build: impl FnOnce() -> N) -> Vec<f32> {
    let mut h = Harness::new(SR, build).expect("bind");
    h.render_channel(frames, 0)
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| s as f64 * s as f64).sum::<f64>() / x.len() as f64).sqrt()
}

pub fn peak(x: &[f32]) -> f64 {
    x.iter().fold(0.0f64, |m, &s| m.max((s as f64).abs()))
}

pub fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

pub fn max_step(x: &[f32]) -> f64 {
    x.windows(2)
        .fold(0.0f64, |m, w| m.max((w[1] as f64 - w[0] as f64).abs()))
}

/// Power spectrum (|X|^2) of `x`, with a Hann window when `hann`.
pub fn power_spectrum(x: &[f32], hann: bool) -> Vec<f64> {
    let n = x.len();
    let mut buf: Vec<Complex<f64>> = x
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = if hann {
                0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()
            } else {
                1.0
            };
            Complex::new(s as f64 * w, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    buf[..n / 2].iter().map(|c| c.norm_sqr()).collect()
}

/// The strongest frequency, refined by log-parabolic interpolation.
pub fn dominant_frequency(x: &[f32]) -> f64 {
    let mag: Vec<f64> = power_spectrum(x, true).iter().map(|p| p.sqrt()).collect();
    let k = (1..mag.len() - 1)
        .max_by(|&a, &b| mag[a].total_cmp(&mag[b]))
        .unwrap();
    let (a, b, c) = (mag[k - 1].ln(), mag[k].ln(), mag[k + 1].ln());
    let delta = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f64 + delta) * SR as f64 / x.len() as f64
}
