//! What every guest store carries, and the policies that bound guest
//! calls: the per-store host state, how a call is judged against its CPU
//! budget (published for the watchdog), and the memory/table limits. Used
//! on the audio thread (inside `process`) and by the loader (inside
//! `init`); shared by both sides, so it lives here in the real-time core.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::cpu;
use super::layout::Claims;
use super::log_ring::LogProducer;
use super::stop::StopWord;

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
    /// This instance's stop flag (`None` for a module not built by the
    /// loader, whose calls are not watched).
    pub stop: Option<StopWord>,
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
}

/// How a guest call is judged: by the CPU time the call itself used, never
/// by the time it waited. At the call's start the thread's CPU time is
/// taken as an upper bound without a system call and
/// the call is published for the watchdog ([`cpu::begin_call`]), which
/// reads the thread's CPU clock every tick and turns the call's stop flag
/// on once the call used its budget (or, as a last resort, ran past its
/// wall-time bound); the guest traps at its next check
/// (`loader::instrument`). A call preempted by the OS is never stopped for
/// that, up to the wall-time last resort.
///
/// The thread's CPU clock also counts time the CPU spent on interrupts while
/// the thread was current (this kernel has no separate IRQ time
/// accounting). With epoch checks, whose slow path called back into the
/// host, a callback that came well after its deadline showed that the
/// guest had not been running, and that time was excused; the stop checks
/// report nothing back, so a call is judged by its thread's CPU clock
/// alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrun {
    start: cpu::CallStart,
    watch: cpu::Watch,
    /// The last stop was for wall time (the call was starved of the CPU),
    /// not for using its CPU budget.
    pub starved: bool,
    /// CPU time the stopped call was found to have used.
    pub used: Duration,
}

impl Overrun {
    /// Start judging a call whose stop word is `word` (no system call on a
    /// registered thread). Without a word, the call is not watched.
    pub fn start(&mut self, limits: CallLimits, word: Option<&StopWord>) {
        super::kernels::clean_vector_state();
        (self.start, self.watch) =
            cpu::begin_call(word.map(StopWord::cell), limits.cpu, limits.wall);
        self.starved = false;
    }

    /// The call (or calls: a load shares one budget among several) started
    /// with [`Overrun::start`] returned. Returns whether the watchdog
    /// stopped it ([`Overrun::used`] and [`Overrun::starved`] then say
    /// how).
    pub fn finish(&mut self, word: Option<&StopWord>) -> bool {
        let Some(w) = word else {
            return false;
        };
        match cpu::end_call(w.cell(), self.watch) {
            Some((used, starved)) => {
                self.used = used;
                self.starved = starved;
                true
            }
            None => false,
        }
    }

    /// When the call started, on [`super::clock::now_ns`]'s clock.
    pub fn started_ns(&self) -> u64 {
        self.start.wall_ns
    }

    /// CPU time used since the call started, at least (reads the thread's
    /// CPU clock: a system call, for slow paths only).
    pub fn cpu_used(&self) -> Duration {
        Duration::from_nanos(cpu::thread_cpu_ns().saturating_sub(self.start.cpu_ns))
    }
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
