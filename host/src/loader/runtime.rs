//! The shared WebAssembly runtime: the wasmtime engines (the optimised
//! build's and, in `run`, the fast build's) configured for real-time calls,
//! each with the stop flags its modules import (every call into a guest is
//! bounded by the CPU-clock watchdog, `rt::cpu`, through them; see
//! `loader::instrument`), and the host functions (`claim`, `log`, and
//! `param` of `lel:signal@0.2.0`) a module may import, under the import
//! module of each contract version. Built once on the control thread.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Caller, Config, Engine, Linker, OptLevel, RegallocAlgorithm, Strategy};

use crate::contract;
use crate::rt::guest::{GuestLimits, HostState};
use crate::rt::layout::ClaimCode;
use crate::rt::log_ring::LogLine;
use crate::rt::stop::StopFlags;

use super::guest_log::GuestLog;

/// The engine and everything compiled modules share.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// The fast tier, when asked for: an engine whose compiles take a
    /// quarter of the time for code that runs slower (wasmtime's baseline compiler
    /// Winch; where it cannot run, Cranelift with no optimisation passes
    /// and single-pass register allocation: half the time); a saved
    /// module plays from it first while the optimised build is made (see
    /// `control::pipeline`). Wasm is deterministic, so both builds compute
    /// the same samples.
    pub fast: Option<Tier>,
    /// Guest log lines, rate-limited per signal (from `init` and, drained
    /// by the control side, from `process`).
    pub guest_log: Arc<GuestLog>,
    /// Raised when a version's log ring gets a line from `process`.
    pub log_pending: crate::rt::log_ring::Pending,
    /// The stop flags of [`Runtime::engine`]'s instances.
    pub stops: Arc<StopFlags>,
    /// The watchdog wakes at least every tick (see [`Runtime::with_tiers`])
    /// while this lives.
    _watching: crate::rt::cpu::WatchRate,
}

/// A second engine and its linker, with the same host functions and limits.
pub struct Tier {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// The stop flags of this engine's instances.
    pub stops: Arc<StopFlags>,
    /// The compiler behind [`Tier::engine`].
    pub compiler: Compiler,
}

/// Which compiler an engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiler {
    /// Cranelift, optimising (`speed`).
    Optimising,
    /// Winch, wasmtime's single-pass baseline compiler (the fast tier on
    /// x86-64 with AVX).
    Winch,
    /// Cranelift with no optimisation passes and single-pass register
    /// allocation (the fast tier where Winch cannot run).
    CraneliftFast,
}

impl Compiler {
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Optimising => "Cranelift",
            Compiler::Winch => "Winch",
            Compiler::CraneliftFast => "Cranelift, unoptimised",
        }
    }
}

/// Versions of the fast tier alive at once (each plays for a few blocks,
/// until its optimised build takes over).
pub const FAST_POOLED_INSTANCES: u32 = 64;

impl Runtime {
    /// Build the engine and the linker with the host functions; the
    /// watchdog judges its calls every tick from now on.
    ///
    /// # Errors
    /// When wasmtime cannot be set up on this machine.
    pub fn new() -> anyhow::Result<Arc<Self>> {
        Self::with_limits(&GuestLimits::default())
    }

    /// [`Runtime::new`], with instances pooled for the given per-module
    /// limits (see [`pooling`]).
    ///
    /// # Errors
    /// When wasmtime cannot be set up on this machine.
    pub fn with_limits(limits: &GuestLimits) -> anyhow::Result<Arc<Self>> {
        Self::with_tiers(limits, false, crate::rt::cpu::TICK)
    }

    /// [`Runtime::with_limits`], plus the fast tier if `fast`, with the
    /// watchdog waking every `tick` ([`crate::rt::cpu::TICK`] to play,
    /// [`crate::rt::cpu::OFFLINE_TICK`] offline): a runaway is stopped
    /// within about a tick of its budget.
    ///
    /// # Errors
    /// When wasmtime cannot be set up on this machine.
    pub fn with_tiers(
        limits: &GuestLimits,
        fast: bool,
        tick: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        start_compile_pool();
        let guest_log = Arc::new(GuestLog::new());
        let Tier {
            engine,
            linker,
            stops,
            ..
        } = tier(limits, POOLED_INSTANCES, Compiler::Optimising, &guest_log)?;
        let fast = if fast {
            // Winch where it runs (x86-64 with AVX); Cranelift unoptimised
            // elsewhere.
            Some(
                tier(limits, FAST_POOLED_INSTANCES, Compiler::Winch, &guest_log).or_else(|e| {
                    tracing::debug!(
                        "the fast tier cannot use Winch here ({e:#}): Cranelift, unoptimised"
                    );
                    tier(
                        limits,
                        FAST_POOLED_INSTANCES,
                        Compiler::CraneliftFast,
                        &guest_log,
                    )
                })?,
            )
        } else {
            None
        };
        Ok(Arc::new(Runtime {
            engine,
            linker,
            fast,
            guest_log,
            log_pending: Default::default(),
            stops,
            _watching: crate::rt::cpu::watch_every(tick),
        }))
    }
}

/// An engine configured for real-time calls, compiling with `compiler`,
/// with `instances` pooled, and its linker with the host functions.
fn tier(
    limits: &GuestLimits,
    instances: u32,
    compiler: Compiler,
    guest_log: &Arc<GuestLog>,
) -> anyhow::Result<Tier> {
    let mut config = Config::new();
    // Functions compile in parallel on a crew of threads that each compile
    // has to itself (see `cache::compile_bounded`), so a compile that must
    // be abandoned holds no shared compiler thread.
    config.allocation_strategy(pooling(limits, instances));
    config
        // No epoch checks: the loader writes cheaper stop checks into every
        // module (`loader::instrument`), reading a word of a shared memory
        // (the `threads` proposal, used for that memory only).
        .epoch_interruption(false)
        .wasm_threads(true)
        .shared_memory(true)
        // Traps on the audio thread should allocate as little as
        // possible: no backtrace capture.
        .wasm_backtrace_max_frames(None)
        .cranelift_opt_level(OptLevel::Speed)
        .max_wasm_stack(256 << 10)
        // A memory stays where it was instantiated (its pool slot reserves
        // room for its largest size): the audio thread keeps its address
        // (`Version::output`), and compiled code need not reload it.
        .memory_may_move(false);
    match compiler {
        Compiler::Optimising => {}
        // An SDK example compiles in a quarter of the optimised build's
        // time (about 2 ms instead of 8 to 10; a small module in 0.8 ms
        // instead of 1.3); its code runs 2x to 3.6x slower (`cargo bench
        // -p lel-host`, parts 5 and 6). It needs AVX (`Engine::new` fails
        // without). wasmtime still compiles the trampolines between host
        // and wasm with Cranelift: unoptimised, they took a small module's
        // compile from 1.0 to 0.8 ms (a third of it had been Cranelift's
        // optimising passes and register allocator on them) and an SDK
        // example's from 2.6 to 2.1 ms, for a few nanoseconds more per
        // call while the fast build plays.
        Compiler::Winch => {
            config
                .strategy(Strategy::Winch)
                .cranelift_opt_level(OptLevel::None)
                .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
        }
        // An SDK example in half the optimised build's time; its code runs
        // 2x to 2.4x slower.
        Compiler::CraneliftFast => {
            config
                .cranelift_opt_level(OptLevel::None)
                .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
        }
    }
    let engine = Engine::new(&config)?;
    let mut linker = Linker::new(&engine);
    for spec in contract::VERSIONS {
        let host = spec.host_module;
        for f in spec.imports {
            match f.name {
                "claim" => {
                    linker.func_wrap(host, "claim", claim)?;
                }
                "log" => {
                    let guest_log = guest_log.clone();
                    linker.func_wrap(
                        host,
                        "log",
                        move |caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
                            log(&guest_log, caller, level, ptr, len)
                        },
                    )?;
                }
                "param" => {
                    linker.func_wrap(host, "param", param)?;
                }
                other => anyhow::bail!(
                    "wit/lel.wit names a host function `{other}` ({host}) that lel-host does not implement"
                ),
            }
        }
    }
    let stops = StopFlags::new(&engine)?;
    Ok(Tier {
        engine,
        linker,
        stops,
        compiler,
    })
}

/// Module loads compile on crews of their own (`cache::compile_bounded`);
/// any other compile (the audio thread's warm-up module) uses rayon's
/// global pool, which lel-host starts itself before the first compile: one
/// thread per core, named `lel-compile-N`, each at the loaders' lower
/// priority (nice 5). Otherwise the pool would start on whichever thread
/// compiles first (the control thread) and inherit its normal priority.
/// Building the global pool works once per process; later calls change
/// nothing.
pub fn start_compile_pool() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("lel-compile-{i}"))
        .start_handler(|_| crate::rt::priority::background())
        .build_global();
}

/// Versions (instances) alive at once in one engine: 1,000 signals, each
/// with its playing version, the previous one kept for rollback and a new one
/// being loaded.
pub const POOLED_INSTANCES: u32 = 3_000;
/// Tables one module may define.
pub const MAX_TABLES: u32 = 4;

/// Instances come from a pool whose slots are reserved up front: each table
/// already spans its limit ([`GuestLimits::max_table_elements`]) and each
/// memory its reservation, so `table.grow` and `memory.grow` on the audio
/// thread only move a bound, never reallocate. Memory slots are 4 GiB of
/// address space each (bounds checks elided, as without a pool); only the
/// pages a module touches are real memory.
fn pooling(limits: &GuestLimits, instances: u32) -> wasmtime::InstanceAllocationStrategy {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(instances)
        .total_memories(instances)
        .total_tables(instances * MAX_TABLES)
        .max_memories_per_module(1)
        .max_tables_per_module(MAX_TABLES)
        .max_memory_size(limits.max_memory_bytes)
        .table_elements(limits.max_table_elements)
        // Room for the per-instance metadata of modules with many functions.
        .max_core_instance_size(16 << 20);
    wasmtime::InstanceAllocationStrategy::Pooling(pool)
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

/// `param(key_ptr, key_len, default, min, max, unit_ptr, unit_len, steps)
/// -> i32` (`lel:signal@0.2.0`): only during `init`, on a loader thread.
/// Checks the declaration (`rt::params::check_decl`), places its 4-byte cell
/// in the state region in the parameters' namespace, writes the default
/// there and returns the cell's address, or a code (see `wit/lel.wit`).
#[allow(clippy::too_many_arguments)]
fn param(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    default: f32,
    min: f32,
    max: f32,
    unit_ptr: i32,
    unit_len: i32,
    steps: i32,
) -> i32 {
    use crate::rt::params::{ParamDecl, check_decl};
    let fail = |caller: &mut Caller<'_, HostState>, code: ClaimCode, msg: String| -> i32 {
        caller.data_mut().claim_error.get_or_insert(msg);
        code as i32
    };
    let Some(claims) = caller.data().claims.as_ref() else {
        return ClaimCode::NotInInit as i32;
    };
    if !claims.has_region() {
        let msg = "`param` called by a module with no state region (export `state-ptr` and `state-len`: parameter cells live there)".to_string();
        return fail(&mut caller, ClaimCode::NoStateRegion, msg);
    }
    let Some(key) = guest_bytes(&mut caller, key_ptr, key_len) else {
        let msg = format!("param key at {key_ptr:#x}+{key_len} lies outside the module's memory");
        return fail(&mut caller, ClaimCode::BadKey, msg);
    };
    let Some(unit) = guest_bytes(&mut caller, unit_ptr, unit_len) else {
        let msg =
            format!("param unit at {unit_ptr:#x}+{unit_len} lies outside the module's memory");
        return fail(&mut caller, ClaimCode::BadUnit, msg);
    };
    let count = caller.data().params.len();
    let (key, unit) = match check_decl(&key, default, min, max, &unit, steps as u32, count) {
        Ok(k) => k,
        Err(e) => return fail(&mut caller, e.code, e.message),
    };
    let base = caller.data().state_base;
    let placed = caller
        .data_mut()
        .claims
        .as_mut()
        .expect("checked above")
        .param_cell(&key);
    let offset = match placed {
        Ok(o) => o,
        Err(e) => return fail(&mut caller, e.code, e.message),
    };
    if let Some(memory) = caller
        .get_export(contract::MEMORY_EXPORT)
        .and_then(|e| e.into_memory())
    {
        let at = (base + offset) as usize;
        if let Some(cell) = memory.data_mut(&mut caller).get_mut(at..at + 4) {
            cell.copy_from_slice(&default.to_le_bytes());
        }
    }
    caller.data_mut().params.push(ParamDecl {
        key: key.into(),
        default,
        min,
        max,
        unit: unit.into(),
        steps: steps as u32,
        offset,
    });
    (base + offset) as i32
}

/// `log(level, ptr, len)`: to the rate-limited guest log while loading;
/// through the bounded ring (no allocation, no I/O) while playing.
fn log(guest_log: &GuestLog, mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) {
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
            ring.push(line);
        }
        return;
    }
    if caller.data().quiet_init {
        return;
    }
    let text = guest_bytes(&mut caller, ptr, len).unwrap_or_default();
    guest_log.line(
        &caller.data().signal,
        level,
        &String::from_utf8_lossy(&text),
    );
}

/// Why a module cannot start within `limits`: a memory or table whose
/// *initial* size is over its limit (growing past a limit fails at run time
/// instead, reported by the limiter). Checked before compiling, so the
/// message names the limit. `None` when it fits (or does not parse: the
/// compiler says why).
pub fn over_limits(bytes: &[u8], limits: &GuestLimits) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            wasmparser::Payload::MemorySection(reader) => {
                for memory in reader {
                    let m = memory.ok()?;
                    let bytes = m.initial.saturating_mul(m.page_size() as u64);
                    if bytes > limits.max_memory_bytes as u64 {
                        return Some(format!(
                            "its memory starts at {} pages ({:.1} MiB), above the {} MiB memory limit (start smaller and grow it)",
                            m.initial,
                            bytes as f64 / (1 << 20) as f64,
                            limits.max_memory_bytes >> 20
                        ));
                    }
                }
            }
            wasmparser::Payload::TableSection(reader) => {
                let count = reader.count();
                if count > MAX_TABLES {
                    return Some(format!(
                        "it defines {count} tables; a module may have at most {MAX_TABLES}"
                    ));
                }
                for (i, table) in reader.into_iter().enumerate() {
                    let t = table.ok()?;
                    if t.ty.initial > limits.max_table_elements as u64 {
                        return Some(format!(
                            "its table {i} starts with {} elements, above the {}-element table limit",
                            t.ty.initial, limits.max_table_elements
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    None
}
