//! What shapes an engine: rate, channels, block, slots, budgets, fades,
//! limits. Plain data, built by the command line or a test, read by the
//! control side and turned into the mixer's configuration. Non-real-time.

use std::path::PathBuf;
use std::time::Duration;

use crate::rt::guest::{CallLimits, GuestLimits};
use crate::rt::mixer::MixerConfig;

/// Everything that shapes an engine.
#[derive(Clone, Debug)]
pub struct Settings {
    pub sample_rate: u32,
    pub channels: usize,
    /// Largest block asked of a guest.
    pub block: u32,
    /// How many signals can play at once (`--max-signals`).
    pub slots: usize,
    /// Share of the block period of CPU time one `process` call may use
    /// before it is stopped as a runaway (real-time playing).
    pub call_budget: f64,
    /// Offline rendering: no real-time deadline; a `process` call is a
    /// runaway only after using this much CPU time (replaces `call_budget`).
    pub runaway: Option<Duration>,
    pub init_timeout: Duration,
    /// CPU time one module's compile may use before it is rejected.
    pub compile_limit: Duration,
    /// Memory one module's compile may hold before it is rejected.
    pub compile_memory: usize,
    pub fade: Duration,
    /// Crossfade on swap (zero: instant swap).
    pub xfade: Duration,
    /// A fault within this time after a swap rolls back to the previous version.
    pub rollback: Duration,
    pub limits: GuestLimits,
    pub cache_dir: Option<PathBuf>,
    pub check_alloc: bool,
    /// Threads rendering signals in parallel (the audio thread plus workers);
    /// 0: one per core.
    pub threads: usize,
    /// Guest time per block from which workers are woken to share a block
    /// (zero: every block with two signals or more is shared).
    pub parallel_min: Duration,
    /// Render workers ask for real-time priority, like the audio thread
    /// (`run`; an offline render stays at normal priority).
    pub realtime: bool,
    /// A saved module not compiled before plays from a fast build first
    /// (compiled in about half the time, runs slower), and its optimised
    /// build takes over a few milliseconds later, bit for bit the same
    /// (`run`; `--no-fast-build` turns it off).
    pub fast_tier: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sample_rate: 48_000,
            channels: 2,
            block: 128,
            slots: 1_000,
            call_budget: 0.5,
            runaway: None,
            init_timeout: Duration::from_secs(1),
            compile_limit: crate::loader::cache::COMPILE_CPU_LIMIT,
            compile_memory: crate::loader::cache::COMPILE_MEMORY_LIMIT,
            fade: Duration::from_millis(10),
            xfade: Duration::ZERO,
            rollback: Duration::from_secs(3),
            limits: GuestLimits::default(),
            cache_dir: crate::loader::cache::default_dir(),
            check_alloc: false,
            threads: 0,
            parallel_min: MixerConfig::PARALLEL_MIN,
            realtime: false,
            fast_tier: false,
        }
    }
}

impl Settings {
    fn frames(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * self.sample_rate as f64).round() as u64
    }

    /// The CPU budget of one `process` call.
    pub fn call_budget_time(&self) -> Duration {
        match self.runaway {
            Some(d) => d,
            None => Duration::from_secs_f64(
                self.block as f64 / self.sample_rate as f64 * self.call_budget,
            ),
        }
    }

    /// The watchdog's tick for this engine: [`cpu::OFFLINE_TICK`] offline
    /// (a runaway budget of seconds), [`cpu::TICK`] when playing.
    ///
    /// [`cpu::OFFLINE_TICK`]: crate::rt::cpu::OFFLINE_TICK
    /// [`cpu::TICK`]: crate::rt::cpu::TICK
    pub fn tick(&self) -> Duration {
        match self.runaway {
            Some(_) => crate::rt::cpu::OFFLINE_TICK,
            None => crate::rt::cpu::TICK,
        }
    }

    /// The limits of one `process` call: its CPU budget, and a wall-time
    /// last resort far above it: at least 2 s and 50 times the budget when
    /// playing (a real-time thread always gets the CPU; one that does not is
    /// starved so long only on a machine far too busy to play), ten times
    /// the budget (at least 20 s) offline.
    pub fn call_limits(&self) -> CallLimits {
        let cpu = self.call_budget_time();
        let wall = match self.runaway {
            Some(d) => (d * 10).max(Duration::from_secs(20)),
            None => (cpu * 50).max(Duration::from_secs(2)),
        };
        CallLimits { cpu, wall }
    }

    pub(super) fn mixer_config(&self) -> MixerConfig {
        MixerConfig {
            sample_rate: self.sample_rate,
            channels: self.channels,
            block: self.block,
            slots: self.slots,
            call: self.call_limits(),
            fade_frames: self.frames(self.fade).max(1) as u32,
            xfade_frames: self.frames(self.xfade) as u32,
            rollback_frames: self.frames(self.rollback),
            check_alloc: self.check_alloc,
            threads: self.render_threads(),
            parallel_min: self.parallel_min,
            realtime: self.realtime,
        }
    }

    /// The threads that render: `threads`, or one per core when it is 0.
    pub fn render_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}
