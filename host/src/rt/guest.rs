//! What every guest store carries, and the policies that run inside guest
//! calls: the per-store host state, the deadline policy that judges a call
//! past its epoch deadline, and the memory/table limits. Used on the audio
//! thread (inside `process`) and by the loader (inside `init`); shared by
//! both sides, so it lives here in the real-time core.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::cpu;
use super::layout::Claims;
use super::log_ring::LogProducer;

/// Per-store data: what the host functions need.
pub struct HostState {
    pub signal: Arc<str>,
    /// Present only while `init` runs: `claim` is refused otherwise.
    pub claims: Option<Claims>,
    /// Address of the state region in the module's memory.
    pub state_base: u32,
    /// The first failed claim or `param`: it rejects the version even if
    /// the guest ignored the error code.
    pub claim_error: Option<String>,
    /// The parameters declared during `init` (`lel:signal@0.2.0`), in order.
    pub params: Vec<super::params::ParamDecl>,
    /// Log lines sent during `process` (the audio thread): a bounded ring
    /// drained by a control thread. `None` while loading: logged at once.
    pub log_ring: Option<LogProducer>,
    /// The lines `init` logs are dropped: this is the optimised build of a
    /// version whose fast build logged them already.
    pub quiet_init: bool,
    pub limits: GuestLimits,
    /// Budget bookkeeping for the call in progress.
    pub overrun: Overrun,
}

/// The limits of one guest call: a CPU-time budget (what judges a runaway)
/// and a wall-time bound far above it (the last resort for a call that never
/// gets the CPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// CPU time the call may use.
    pub cpu: Duration,
    /// Wall time after which the call is stopped even if it did not use its
    /// CPU budget (it was starved, and waiting longer helps no one).
    pub wall: Duration,
    /// The epoch tick of the engine the call runs in ([`cpu::TICK`], or
    /// [`cpu::OFFLINE_TICK`] offline): deadlines are counted in it.
    pub tick: Duration,
}

impl CallLimits {
    /// Epoch ticks to the first deadline: the CPU budget in wall time (a
    /// call cannot use more CPU than wall time passes).
    pub fn first_deadline_ticks(&self) -> u64 {
        cpu::ticks_for(self.cpu.min(self.wall), self.tick)
    }
}

/// How a call that ran past its epoch deadline is judged: by the CPU time
/// the call itself used, never by the time it waited. At the call's start
/// the thread's CPU time is taken as an upper bound without a system call
/// ([`cpu::call_start`]); at each deadline the thread's CPU clock is read
/// (the overrun path only) and the call is stopped once it used its budget,
/// else extended by the ticks its remaining budget needs. A call preempted
/// by the OS is never stopped for that, up to the wall-time last resort.
///
/// The thread's CPU clock also counts time the CPU spent on interrupts while
/// the thread was current (this kernel has no separate IRQ time accounting),
/// and bursts of that were seen to add several milliseconds to one call of a
/// legal module on a busy machine. Guest code reaches an epoch check at every
/// loop back-edge and function entry, so a deadline callback that comes well
/// after its deadline means the guest was not running for that long: the CPU
/// time charged to the thread meanwhile (at most that lateness) is not
/// counted against the call. A real runaway loop checks
/// continuously, its callbacks come on time, and it is stopped as before.
#[derive(Clone, Copy, Debug)]
pub struct Overrun {
    limits: CallLimits,
    start: cpu::CallStart,
    /// When the current deadline was set (wall, [`cpu::now_ns`]) and how
    /// many ticks it was set to.
    deadline_set_ns: u64,
    deadline_ticks: u64,
    /// CPU time found used at the last deadline callback (undiscounted).
    used_at_last_ns: u64,
    /// CPU time not counted against the call: charged while the guest could
    /// not have been running (late callbacks).
    excused_ns: u64,
    /// The last stop was for wall time (the call was starved of the CPU),
    /// not for using its CPU budget.
    pub starved: bool,
    /// CPU time the stopped call was found to have used.
    pub used: Duration,
}

impl Default for Overrun {
    fn default() -> Self {
        Overrun {
            limits: CallLimits {
                cpu: Duration::from_secs(1),
                wall: Duration::from_secs(10),
                tick: cpu::TICK,
            },
            start: cpu::CallStart::default(),
            deadline_set_ns: 0,
            deadline_ticks: 0,
            used_at_last_ns: 0,
            excused_ns: 0,
            starved: false,
            used: Duration::ZERO,
        }
    }
}

impl Overrun {
    /// Start judging a call (no system call on a registered thread). Returns
    /// the epoch ticks to its first deadline.
    pub fn start(&mut self, limits: CallLimits) -> u64 {
        self.limits = limits;
        self.start = cpu::call_start();
        self.starved = false;
        self.deadline_set_ns = self.start.wall_ns;
        self.deadline_ticks = limits.first_deadline_ticks();
        self.used_at_last_ns = 0;
        self.excused_ns = 0;
        self.deadline_ticks
    }

    /// When the call started, on [`cpu::now_ns`]'s clock.
    pub fn started_ns(&self) -> u64 {
        self.start.wall_ns
    }

    /// CPU time used since the call started, at least (reads the thread's
    /// CPU clock: a system call, for slow paths only).
    pub fn cpu_used(&self) -> Duration {
        Duration::from_nanos(cpu::thread_cpu_ns().saturating_sub(self.start.cpu_ns))
    }

    /// Called by wasmtime when the deadline passes (on the calling thread,
    /// only for calls past their budget in wall time): stop the call, or
    /// extend it.
    fn on_deadline(&mut self) -> wasmtime::UpdateDeadline {
        let charged = cpu::thread_cpu_ns().saturating_sub(self.start.cpu_ns);
        let now = cpu::now_ns();
        // How late this callback is: the guest reached no epoch check for
        // that long after its deadline, so it was not running then.
        // The ticker sleeps a tick between increments, so its ticks run
        // somewhat longer than a tick: a quarter of the span and one tick
        // of slack keep that drift from being taken for lateness.
        let tick = self.limits.tick.as_nanos() as u64;
        let span = self.deadline_ticks * tick;
        let late = now.saturating_sub(self.deadline_set_ns + span);
        let slack = tick + span / 4;
        if late > slack {
            let since_last = charged.saturating_sub(self.used_at_last_ns);
            self.excused_ns += (late - slack).min(since_last);
        }
        self.used_at_last_ns = charged;
        let used = Duration::from_nanos(charged.saturating_sub(self.excused_ns));
        let wall = Duration::from_nanos(now.saturating_sub(self.start.wall_ns));
        self.used = used;
        if used >= self.limits.cpu {
            return wasmtime::UpdateDeadline::Interrupt;
        }
        if wall >= self.limits.wall {
            self.starved = true;
            return wasmtime::UpdateDeadline::Interrupt;
        }
        let left = (self.limits.cpu - used).min(self.limits.wall - wall);
        let ticks = cpu::ticks_for(left, self.limits.tick)
            .saturating_sub(1)
            .max(1);
        self.deadline_set_ns = now;
        self.deadline_ticks = ticks;
        wasmtime::UpdateDeadline::Continue(ticks)
    }
}

/// Install the deadline policy of [`Overrun`] on a store.
pub fn install_deadline_policy(store: &mut wasmtime::Store<HostState>) {
    store.epoch_deadline_callback(|mut ctx| Ok(ctx.data_mut().overrun.on_deadline()));
}

/// Per-module memory and table caps: a memory bomb gets a failed grow, not
/// the host's RAM. Runs inside guest calls (any thread); never allocates.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
    /// Which limits refused a grow (each reported once by the control side).
    pub refused: Refused,
}

/// The limits that refused a grow, and those already reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refused {
    memory: bool,
    table: bool,
    reported_memory: bool,
    reported_table: bool,
}

/// What a refused grow was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowKind {
    Memory,
    Table,
}

impl Refused {
    /// A refusal not reported yet (each kind once).
    pub fn take(&mut self) -> Option<GrowKind> {
        if self.memory && !self.reported_memory {
            self.reported_memory = true;
            Some(GrowKind::Memory)
        } else if self.table && !self.reported_table {
            self.reported_table = true;
            Some(GrowKind::Table)
        } else {
            None
        }
    }
}

impl GuestLimits {
    pub const DEFAULT_MEMORY: usize = 256 << 20;
    pub const DEFAULT_TABLE: usize = 100_000;
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            max_memory_bytes: Self::DEFAULT_MEMORY,
            max_table_elements: Self::DEFAULT_TABLE,
            refused: Refused::default(),
        }
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory_bytes;
        self.refused.memory |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_table_elements;
        self.refused.table |= !ok;
        Ok(ok)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}
