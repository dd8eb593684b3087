//! Host parameters (contract 0.2): `param("cutoff", 800.0).range(20.0,
//! 20_000.0)` declares a parameter with the host in `init` and reads the
//! value the host keeps in its cell, smoothed, once per sample. Runs on the
//! thread that calls `init` (declaring) and `process` (reading).

use core::ptr::NonNull;

use crate::claim::{Binder, Error, ParamDecl};
use crate::ctx::Ctx;
use crate::node::{Node, node_ops};

/// Default smoothing time of a continuous parameter, in seconds.
pub const DEFAULT_SMOOTH: f64 = 0.02;

/// A parameter the host owns: set from OSC, MIDI CC, `--set` or the
/// console, kept by key across reloads. Usable anywhere a [`Param`]
/// is (`saw(110).lpf(param("cutoff", 800.0).range(20.0, 20_000.0), 0.7)`)
/// and as a mono signal (`osc(220) * param("level", 0.5)`).
///
/// A change never jumps: the value follows a straight ramp to the new
/// target lasting [`Knob::smooth`] seconds (20 ms by default; none for a
/// stepped parameter), restarted from wherever it is when the target
/// changes again. The exact law is in the README's "Algorithms".
///
/// [`Param`]: crate::Param
#[derive(Clone, Copy, Debug)]
pub struct Knob {
    key: &'static str,
    default: f32,
    min: f32,
    max: f32,
    unit: &'static str,
    steps: u32,
    smooth: f64,
    cell: Option<NonNull<f32>>,
    ramp: u32,
    y: f64,
    target: f64,
    step: f64,
    left: u32,
}

/// Declares the host parameter `key` (1 to 64 ASCII letters, digits, `_`,
/// `-`, `.`) with its `default` value. Without [`Knob::range`] it ranges
/// over 0 to 1 when the default lies there, else 0 to twice the default
/// (twice the default to 0 for a negative default).
///
/// The same key declared again in a signal (in every voice of a `poly`)
/// is the same parameter: the first declaration's range, unit and steps
/// hold.
pub fn param(key: &'static str, default: f64) -> Knob {
    let d = default as f32;
    let (min, max) = if (0.0..=1.0).contains(&d) {
        (0.0, 1.0)
    } else if d > 1.0 {
        (0.0, 2.0 * d)
    } else {
        (2.0 * d, 0.0)
    };
    Knob {
        key,
        default: d,
        min,
        max,
        unit: "",
        steps: 0,
        smooth: f64::NAN,
        cell: None,
        ramp: 1,
        y: 0.0,
        target: f64::NAN,
        step: 0.0,
        left: 0,
    }
}

impl Knob {
    /// The parameter's range, `min < max`, the default in between.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = min as f32;
        self.max = max as f32;
        self
    }

    /// The unit shown next to the value (`"Hz"`, `"s"`, `"dB"`; at most 16
    /// bytes).
    pub fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    /// `n >= 2` evenly spaced values from min to max (the host snaps to
    /// them); `steps(2)` over 0..1 is a switch. A stepped parameter is not
    /// smoothed unless [`Knob::smooth`] says so.
    pub fn steps(mut self, n: u32) -> Self {
        self.steps = n;
        self
    }

    /// The ramp time of a change, in seconds (0: none).
    pub fn smooth(mut self, seconds: f64) -> Self {
        self.smooth = seconds;
        self
    }

    /// The key.
    pub fn key(&self) -> &'static str {
        self.key
    }
}

impl Node for Knob {
    type Frame = [f64; 1];

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        let d = ParamDecl {
            key: self.key.as_bytes(),
            default: self.default,
            min: self.min,
            max: self.max,
            unit: self.unit.as_bytes(),
            steps: self.steps,
        };
        self.cell = Some(b.param(&d)?);
        let seconds = if self.smooth.is_nan() {
            if self.steps == 0 { DEFAULT_SMOOTH } else { 0.0 }
        } else {
            self.smooth
        };
        let n = crate::math::floor(seconds * b.sample_rate() + 0.5);
        self.ramp = if (1.0..4.0e9).contains(&n) {
            n as u32
        } else {
            1
        };
        self.target = f64::NAN;
        self.left = 0;
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, _: &Ctx) -> [f64; 1] {
        let Some(cell) = self.cell else {
            return [self.default as f64];
        };
        // SAFETY: `cell` is the value cell the host handed out for this
        // parameter (inside the state region, 4-aligned, checked by the
        // binder); the host and the runtime write it only between frames.
        let x = unsafe { cell.as_ptr().read() } as f64;
        if x != self.target {
            if self.target.is_nan() || self.ramp <= 1 {
                // The first sample of this version (or no smoothing): start
                // at the value, no ramp.
                self.y = x;
                self.left = 0;
            } else {
                self.step = (x - self.y) / self.ramp as f64;
                self.left = self.ramp;
            }
            self.target = x;
        }
        if self.left > 0 {
            self.left -= 1;
            self.y = if self.left == 0 {
                self.target
            } else {
                self.y + self.step
            };
        }
        [self.y]
    }
}

node_ops! {
    [] Knob;
}
