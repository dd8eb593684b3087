//! What every guest store carries, and the policies that run inside guest
//! calls: the per-store host state, the deadline policy that judges a call
//! past its epoch deadline, and the memory/table limits. Used on the audio
//! thread (inside `process`) and by the loader (inside `init`); shared by
//! both sides, so it lives here in the real-time core.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::layout::Claims;
use super::log_ring::LogProducer;

/// Per-store data: what the host functions need.
pub struct HostState {
    pub signal: Arc<str>,
    /// Present only while `init` runs: `claim` is refused otherwise.
    pub claims: Option<Claims>,
    /// Address of the state region in the module's memory.
    pub state_base: u32,
    /// The first failed claim: it rejects the version even if the guest
    /// ignored the error code.
    pub claim_error: Option<String>,
    /// Log lines sent during `process` (the audio thread): a bounded ring
    /// drained by a control thread. `None` while loading: logged at once.
    pub log_ring: Option<LogProducer>,
    pub limits: GuestLimits,
    /// Budget bookkeeping for the call in progress.
    pub overrun: Overrun,
}

/// How a call that ran past its epoch deadline is judged. The deadline is
/// wall time (the epoch ticker); before a call is stopped, the thread's CPU
/// time confirms the guest was actually running: an audio thread the OS
/// preempted gets more time instead of a wrongly muted signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrun {
    /// Ticks of the call's budget.
    pub budget_ticks: u64,
    /// Thread CPU time and wall time at the first deadline of this call.
    first: Option<(Duration, std::time::Instant)>,
    extensions: u32,
}

impl Overrun {
    /// Most one-tick extensions granted to a call that is not getting the CPU.
    const MAX_EXTENSIONS: u32 = 16;

    /// Reset at the start of every call (no system call).
    pub fn start(&mut self, budget_ticks: u64) {
        self.budget_ticks = budget_ticks;
        self.first = None;
        self.extensions = 0;
    }

    /// Called by wasmtime when the deadline passes (on the calling thread,
    /// only for calls past their budget): stop the call, or extend it. The
    /// first deadline grants one more tick and notes the thread's CPU time;
    /// at the next, a guest that had the CPU for at least half of that time
    /// is stopped. So a runaway is stopped about one tick after its budget,
    /// within its block.
    fn on_deadline(&mut self) -> wasmtime::UpdateDeadline {
        let cpu = thread_cpu_time();
        let now = std::time::Instant::now();
        match self.first {
            None => {
                self.first = Some((cpu, now));
                wasmtime::UpdateDeadline::Continue(1)
            }
            Some((cpu0, wall0)) => {
                let used = cpu.saturating_sub(cpu0);
                let wall = now.duration_since(wall0);
                if used * 2 >= wall || self.extensions >= Self::MAX_EXTENSIONS {
                    wasmtime::UpdateDeadline::Interrupt
                } else {
                    // Preempted: measure again over a fresh tick.
                    self.extensions += 1;
                    self.first = Some((cpu, now));
                    wasmtime::UpdateDeadline::Continue(1)
                }
            }
        }
    }
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is
    // supported on every Linux; on failure `ts` stays zero, which only makes
    // the call look preempted (it is then stopped after MAX_EXTENSIONS).
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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
