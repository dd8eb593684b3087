//! What shapes an engine: rate, channels, block, slots, budgets, fades,
//! limits. Plain data, built by the command line or a test, read by the
//! control side and turned into the mixer's configuration. Non-real-time.

use std::path::PathBuf;
use std::time::Duration;

use crate::loader::runtime::Runtime;
use crate::rt::guest::GuestLimits;
use crate::rt::mixer::MixerConfig;

/// Everything that shapes an engine.
#[derive(Clone, Debug)]
pub struct Settings {
    pub sample_rate: u32,
    pub channels: usize,
    /// Largest block asked of a guest.
    pub block: u32,
    /// How many signals can play at once.
    pub slots: usize,
    /// Share of the block period one `process` call may take before it is
    /// stopped (epoch deadline).
    pub call_budget: f64,
    pub init_timeout: Duration,
    pub fade: Duration,
    /// Crossfade on swap (zero: instant swap).
    pub xfade: Duration,
    /// A fault within this time after a swap rolls back to the previous version.
    pub rollback: Duration,
    pub limits: GuestLimits,
    pub cache_dir: Option<PathBuf>,
    pub check_alloc: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sample_rate: 48_000,
            channels: 2,
            block: 128,
            slots: 64,
            call_budget: 0.5,
            init_timeout: Duration::from_secs(1),
            fade: Duration::from_millis(10),
            xfade: Duration::ZERO,
            rollback: Duration::from_secs(3),
            limits: GuestLimits::default(),
            cache_dir: crate::loader::cache::default_dir(),
            check_alloc: false,
        }
    }
}

impl Settings {
    fn frames(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * self.sample_rate as f64).round() as u64
    }

    /// The budget of one `process` call.
    pub fn call_budget_time(&self) -> Duration {
        Duration::from_secs_f64(self.block as f64 / self.sample_rate as f64 * self.call_budget)
    }

    pub(super) fn mixer_config(&self) -> MixerConfig {
        MixerConfig {
            sample_rate: self.sample_rate,
            channels: self.channels,
            block: self.block,
            slots: self.slots,
            budget_ticks: Runtime::ticks_for(self.call_budget_time()),
            fade_frames: self.frames(self.fade).max(1) as u32,
            xfade_frames: self.frames(self.xfade) as u32,
            rollback_frames: self.frames(self.rollback),
            check_alloc: self.check_alloc,
        }
    }
}
