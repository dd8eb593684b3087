//! `bench-voices`: the benchmark workload of issue 14, written against the
//! raw contract with no SDK: N voices of a table sine (2048 points, linear
//! interpolation), a one-pole lowpass and a gain, panned (equal power) and
//! summed to stereo. Built for wasm32 it is a signal module (the voice count
//! is fixed when it is built: `LEL_BENCH_VOICES`, default 100); built
//! natively it is the same code the benchmark runs as its native side.
//! Every voice's parameters come from [`voice`], which the benchmark also
//! uses to write the SuperCollider score of the same workload.

#![cfg_attr(target_arch = "wasm32", no_std)]

/// Points in the sine table (one more is stored, for the interpolation).
pub const TABLE: usize = 2048;
const TABLE_SHIFT: u32 = 32 - TABLE.trailing_zeros();
const FRAC_MASK: u32 = (1 << TABLE_SHIFT) - 1;
const FRAC_SCALE: f32 = 1.0 / (1u32 << TABLE_SHIFT) as f32;

/// Most voices one bank holds.
pub const MAX_VOICES: usize = 1024;
/// Most frames per block (`max_frames` of `init` may not exceed it).
pub const MAX_FRAMES: usize = 1024;

/// The parameters of voice `i` of `n`: frequency (Hz), the lowpass
/// coefficient `a` of `y += a * (x - y)`, gain, and pan position in
/// `[-1, 1]`. Frequencies stay below 11 kHz and the gains sum to 0.8, so
/// the mix never reaches the master limiter.
pub fn voice(i: usize, n: usize) -> (f64, f64, f64, f64) {
    let freq = 110.0 + 10.0 * i as f64 + (i % 7) as f64 * 1.37;
    let a = 0.05 + 0.4 * ((i * 37) % 101) as f64 / 101.0;
    let gain = 0.8 / n.max(1) as f64;
    let pan = if n > 1 {
        -1.0 + 2.0 * i as f64 / (n - 1) as f64
    } else {
        0.0
    };
    (freq, a, gain, pan)
}

/// One voice's running state and constants.
#[derive(Clone, Copy, Default)]
struct Voice {
    phase: u32,
    inc: u32,
    y: f32,
    a: f32,
    gain: f32,
    left: f32,
    right: f32,
}

/// N voices and their stereo output buffer.
pub struct Bank {
    table: [f32; TABLE + 1],
    voices: [Voice; MAX_VOICES],
    n: usize,
    out: [f32; 2 * MAX_FRAMES],
}

impl Bank {
    /// An empty bank (all zero, so a `static` of it lives in `.bss`).
    pub const fn new() -> Self {
        Bank {
            table: [0.0; TABLE + 1],
            voices: [Voice {
                phase: 0,
                inc: 0,
                y: 0.0,
                a: 0.0,
                gain: 0.0,
                left: 0.0,
                right: 0.0,
            }; MAX_VOICES],
            n: 0,
            out: [0.0; 2 * MAX_FRAMES],
        }
    }

    /// Set up `n` voices (at most [`MAX_VOICES`]) at `sample_rate`.
    pub fn init(&mut self, sample_rate: u32, n: usize) {
        for (k, t) in self.table.iter_mut().enumerate() {
            *t = sin(core::f64::consts::TAU * k as f64 / TABLE as f64) as f32;
        }
        self.n = n.min(MAX_VOICES);
        for i in 0..self.n {
            let (freq, a, gain, pan) = voice(i, self.n);
            let angle = (pan + 1.0) * core::f64::consts::FRAC_PI_4;
            self.voices[i] = Voice {
                phase: 0,
                inc: (freq / sample_rate as f64 * 4_294_967_296.0) as u32,
                y: 0.0,
                a: a as f32,
                gain: gain as f32,
                left: cos(angle) as f32,
                right: sin(angle) as f32,
            };
        }
    }

    /// Render `frames` stereo frames (at most [`MAX_FRAMES`]); returns them
    /// interleaved. One sample per loop iteration.
    pub fn process(&mut self, frames: usize) -> &[f32] {
        self.render::<1>(frames)
    }

    /// The same samples as [`Bank::process`], bit for bit, computed `U`
    /// frames per loop iteration (the loop body repeated `U` times), so a
    /// runtime that checks for runaways on every loop back-edge checks `U`
    /// times less often.
    pub fn process_unrolled<const U: usize>(&mut self, frames: usize) -> &[f32] {
        self.render::<U>(frames)
    }

    fn render<const U: usize>(&mut self, frames: usize) -> &[f32] {
        let out = &mut self.out[..2 * frames.min(MAX_FRAMES)];
        out.fill(0.0);
        let table = &self.table;
        for v in &mut self.voices[..self.n] {
            let (mut phase, mut y) = (v.phase, v.y);
            let mut step = |frame: &mut [f32]| {
                let i = (phase >> TABLE_SHIFT) as usize;
                let frac = (phase & FRAC_MASK) as f32 * FRAC_SCALE;
                let (s0, s1) = (table[i], table[i + 1]);
                let x = s0 + (s1 - s0) * frac;
                y += v.a * (x - y);
                let s = y * v.gain;
                frame[0] += s * v.left;
                frame[1] += s * v.right;
                phase = phase.wrapping_add(v.inc);
            };
            let mut chunks = out.chunks_exact_mut(2 * U);
            for chunk in &mut chunks {
                for frame in chunk.chunks_exact_mut(2) {
                    step(frame);
                }
            }
            for frame in chunks.into_remainder().chunks_exact_mut(2) {
                step(frame);
            }
            (v.phase, v.y) = (phase, y);
        }
        out
    }
}

impl Default for Bank {
    fn default() -> Self {
        Self::new()
    }
}

/// sin(x) by its Taylor series after reduction to [-pi, pi] (set-up only;
/// `no_std` has no libm).
fn sin(x: f64) -> f64 {
    let tau = core::f64::consts::TAU;
    let mut x = x - tau * ((x / tau) as i64 as f64);
    if x > core::f64::consts::PI {
        x -= tau;
    } else if x < -core::f64::consts::PI {
        x += tau;
    }
    let (mut term, mut sum) = (x, x);
    for k in 1..20 {
        term *= -x * x / ((2 * k) as f64 * (2 * k + 1) as f64);
        sum += term;
    }
    sum
}

fn cos(x: f64) -> f64 {
    sin(x + core::f64::consts::FRAC_PI_2)
}

/// The voice count a wasm32 build plays: `LEL_BENCH_VOICES` at build time.
pub const VOICES: usize = parse(option_env!("LEL_BENCH_VOICES"), 100);
/// Frames per loop iteration of a wasm32 build: `LEL_BENCH_UNROLL` (1, 4,
/// 8 or 16) at build time.
pub const UNROLL: usize = parse(option_env!("LEL_BENCH_UNROLL"), 1);

const fn parse(s: Option<&str>, default: usize) -> usize {
    let Some(s) = s else { return default };
    let (b, mut n, mut i) = (s.as_bytes(), 0usize, 0);
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "LEL_BENCH_VOICES must be a number");
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    assert!(
        n >= 1 && n <= MAX_VOICES,
        "LEL_BENCH_VOICES and LEL_BENCH_UNROLL: 1 to 1024"
    );
    n
}

/// The contract's exports (wasm32 only): no imports, no state region.
#[cfg(target_arch = "wasm32")]
mod exports {
    use super::{Bank, MAX_FRAMES, UNROLL, VOICES};
    use core::cell::UnsafeCell;

    struct Cell(UnsafeCell<Bank>);
    // SAFETY: wasm32 modules here are single-threaded.
    unsafe impl Sync for Cell {}
    static BANK: Cell = Cell(UnsafeCell::new(Bank::new()));

    #[unsafe(no_mangle)]
    extern "C" fn init(sample_rate: i32, max_frames: i32) -> i32 {
        if sample_rate <= 0 || max_frames <= 0 || max_frames as usize > MAX_FRAMES {
            return -1;
        }
        // SAFETY: single-threaded; the host never re-enters an export.
        let bank = unsafe { &mut *BANK.0.get() };
        bank.init(sample_rate as u32, core::hint::black_box(VOICES));
        2
    }

    #[unsafe(no_mangle)]
    extern "C" fn process(frames: i32, _clock: i64) -> i32 {
        // SAFETY: as in `init`.
        let bank = unsafe { &mut *BANK.0.get() };
        let frames = frames.max(0) as usize;
        let out = match UNROLL {
            4 => bank.process_unrolled::<4>(frames),
            8 => bank.process_unrolled::<8>(frames),
            16 => bank.process_unrolled::<16>(frames),
            _ => bank.process(frames),
        };
        out.as_ptr() as usize as i32
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        core::arch::wasm32::unreachable()
    }
}
