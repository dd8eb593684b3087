//! The shared WebAssembly runtime: one wasmtime `Engine` configured for
//! real-time calls, the epoch ticker that bounds every call into a guest, and
//! the host functions (`claim`, `log`) a module may import.
//! Built once on the control thread; the ticker has a thread of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Caller, Config, Engine, Linker, OptLevel, ResourceLimiter};

use super::state::{ClaimCode, Claims};
use crate::contract;
use crate::rt::log_ring::{LogLine, LogProducer};

/// How often the epoch advances. Call budgets are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_micros(500);

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
    /// Set when a grow was refused; reported once by the control side.
    pub refused: bool,
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
            refused: false,
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
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_table_elements;
        self.refused |= !ok;
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

/// The engine and everything compiled modules share.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Runtime {
    /// Build the engine, the linker with the host functions, and start the
    /// epoch ticker thread.
    ///
    /// # Errors
    /// When wasmtime cannot be set up on this machine.
    pub fn new() -> anyhow::Result<Arc<Self>> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            // Traps on the audio thread should allocate as little as
            // possible: no backtrace capture.
            .wasm_backtrace_max_frames(None)
            .cranelift_opt_level(OptLevel::Speed)
            .max_wasm_stack(256 << 10);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        let host = contract::host_module();
        linker.func_wrap(host, "claim", claim)?;
        linker.func_wrap(host, "log", log)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("lel-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Arc::new(Runtime {
            engine,
            linker,
            ticker: Some((stop, ticker)),
        }))
    }

    /// Epoch ticks that cover `budget` (at least two, so that a call started
    /// just before a tick still gets one full tick).
    pub fn ticks_for(budget: Duration) -> u64 {
        (budget.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

fn guest_bytes(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = caller.get_export(contract::MEMORY_EXPORT)?.into_memory()?;
    let data = memory.data(&caller);
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    data.get(ptr..ptr.checked_add(len)?).map(<[u8]>::to_vec)
}

/// `claim(key_ptr, key_len, size, align) -> i32`: only during `init`, on a
/// loader thread, so allocating here is fine.
fn claim(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    size: i32,
    align: i32,
) -> i32 {
    if caller.data().claims.is_none() {
        return ClaimCode::NotInInit as i32;
    }
    let Some(key) = guest_bytes(&mut caller, key_ptr, key_len) else {
        let msg = format!("claim key at {key_ptr:#x}+{key_len} lies outside the module's memory");
        caller.data_mut().claim_error.get_or_insert(msg);
        return ClaimCode::BadKey as i32;
    };
    let base = caller.data().state_base;
    let state = caller.data_mut();
    let result =
        state
            .claims
            .as_mut()
            .expect("checked above")
            .claim(&key, size as u32, align as u32);
    match result {
        Ok(offset) => {
            // Fresh or carried, the block starts zeroed; carried bytes are
            // copied in at the swap.
            if let Some(memory) = caller
                .get_export(contract::MEMORY_EXPORT)
                .and_then(|e| e.into_memory())
            {
                let start = (base + offset) as usize;
                if let Some(block) = memory
                    .data_mut(&mut caller)
                    .get_mut(start..start + size as usize)
                {
                    block.fill(0);
                }
            }
            (base + offset) as i32
        }
        Err(e) => {
            caller.data_mut().claim_error.get_or_insert(e.message);
            e.code as i32
        }
    }
}

/// `log(level, ptr, len)`: straight to `tracing` while loading; through the
/// bounded ring (no allocation, no I/O) while playing.
fn log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) {
    if caller.data().log_ring.is_some() {
        let Some(memory) = caller
            .get_export(contract::MEMORY_EXPORT)
            .and_then(|e| e.into_memory())
        else {
            return;
        };
        let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
        let line = memory
            .data(&caller)
            .get(ptr..ptr.saturating_add(len))
            .map(|bytes| LogLine::new(level, bytes));
        if let (Some(line), Some(ring)) = (line, caller.data_mut().log_ring.as_mut()) {
            let _ = ring.push(line);
        }
        return;
    }
    let text = guest_bytes(&mut caller, ptr, len).unwrap_or_default();
    emit_guest_log(
        &caller.data().signal,
        level,
        &String::from_utf8_lossy(&text),
    );
}

/// Route a guest's log line to `tracing`, tagged with the signal's name.
pub fn emit_guest_log(signal: &str, level: i32, text: &str) {
    match level {
        i32::MIN..=0 => tracing::error!("{signal}: {text}"),
        1 => tracing::warn!("{signal}: {text}"),
        2 => tracing::info!("{signal}: {text}"),
        3 => tracing::debug!("{signal}: {text}"),
        _ => tracing::trace!("{signal}: {text}"),
    }
}
