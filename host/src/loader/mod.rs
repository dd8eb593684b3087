//! The loader: turns module bytes into a [`Version`] ready for the audio
//! thread. Validates against the contract, compiles (once per content hash),
//! instantiates, finds the state region and runs `init`, placing its claims
//! (and the cells of its parameters, `lel:signal@0.2.0`) against the layout
//! of the version now playing, then finds its event buffer. Runs on loader
//! threads, never on the audio thread.

pub mod cache;
pub mod guest_log;
pub mod instrument;
mod operands;
pub mod runtime;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use crate::contract::{self, ContractError, ContractVersion};
use crate::rt::guest::{self, GuestLimits, HostState};
use crate::rt::layout::{Claims, Layout, MAX_ALIGN};
use crate::rt::log_ring::{self, LogConsumer};
use crate::rt::params::{Controls, EVENT_BYTES, NO_ID, ParamCell, ParamDecl};
use crate::rt::version::{Process, Version};
use cache::{Hash, ModuleCache, Source};
use runtime::Runtime;

/// Most output channels a signal may have (`wit/constants.txt`).
pub const MAX_CHANNELS: i32 = crate::rt::consts::MAX_CHANNELS as i32;

/// The guest code a load runs, for messages: where a trap or a runaway
/// happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    Start,
    StatePtr,
    StateLen,
    Init,
    EventsPtr,
    EventsLen,
}

impl std::fmt::Display for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Export::Start => "the start function",
            Export::StatePtr => "`state-ptr`",
            Export::StateLen => "`state-len`",
            Export::Init => "`init`",
            Export::EventsPtr => "`events-ptr`",
            Export::EventsLen => "`events-len`",
        })
    }
}

/// Why a version was rejected. The playing version, if any, keeps playing.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("does not compile: {0}")]
    Compile(String),
    #[error("cannot be instantiated: {0}")]
    Instantiate(String),
    /// Not compiled for now, for a reason of the moment (too many stopped
    /// compiles still finishing, no thread): not held against the bytes.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    StateRegion(String),
    #[error("{0}")]
    EventBuffer(String),
    #[error("{0}")]
    Claim(String),
    #[error(
        "`init` returned {0}{name}: the module rejected this version (see its log for why)",
        name = init_code_name(*.0)
    )]
    InitFailed(i32),
    #[error("`init` returned {0} channels; a signal has 1 to {MAX_CHANNELS}")]
    Channels(i32),
    #[error("{0} trapped: {1}")]
    Trap(Export, String),
    #[error("{0} used {1:?} of CPU time without returning (runaway loop?)")]
    Timeout(Export, Duration),
    #[error(
        "{0} did not return within {1:?} of wall time, having had only {2:?} of CPU: the machine is too busy; save the file again to retry"
    )]
    Starved(Export, Duration, Duration),
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// Not something to read as a module (a FIFO, a device, a folder, a
    /// symbolic link loop): never retried.
    #[error("{0}")]
    NotAFile(String),
    #[error(
        "left out: {0} signals play already, the most at once (`--max-signals`); remove one or raise the limit"
    )]
    NoFreeSlot(usize),
    /// The same bytes failed before with this message (not parsed or
    /// compiled again); `partial`: that failure may come from a partial write.
    #[error("{message}")]
    Repeated { message: String, partial: bool },
}

/// ` (`output-too-small`, a lel SDK's code)` for a code of
/// `wit/constants.txt`, else nothing (the module's own code).
fn init_code_name(code: i32) -> String {
    use crate::rt::consts;
    if let Some(c) = consts::code("sdk-code", code) {
        format!(" (`{}`, a lel SDK's code)", c.name)
    } else if let Some(c) = consts::code("claim-code", code) {
        format!(" (`{}`, a claim code)", c.name)
    } else {
        String::new()
    }
}

impl LoadError {
    /// Is this failure decided by the module's bytes alone (so identical
    /// bytes fail identically, whatever plays)?
    pub fn is_of_the_bytes(&self) -> bool {
        matches!(self, LoadError::Contract(_) | LoadError::Compile(_))
    }

    /// Could a file still being written have caused this? Such failures are
    /// retried by the watcher before being reported; the others come from a
    /// complete module and are reported at once.
    pub fn may_be_partial_write(&self) -> bool {
        if let LoadError::Repeated { partial, .. } = self {
            return *partial;
        }
        matches!(
            self,
            LoadError::Io(_)
                | LoadError::Compile(_)
                | LoadError::Contract(
                    ContractError::Truncated
                        | ContractError::NotWasm { .. }
                        | ContractError::Invalid(_)
                )
        )
    }
}

/// Fixed facts for every version a loader prepares.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub sample_rate: u32,
    pub max_frames: u32,
    pub init_timeout: Duration,
    /// CPU time one module's compile may use.
    pub compile_limit: Duration,
    /// Memory one module's compile may hold.
    pub compile_memory: usize,
    pub limits: GuestLimits,
}

/// What a successful load found.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub signal: String,
    pub version: u64,
    pub channels: u32,
    pub hash: Hash,
    /// Bytes in the state region.
    pub state_len: u32,
    pub layout: Layout,
    pub source: Source,
    /// Compile (or cache lookup) time.
    pub compile: Duration,
    /// Instantiate and `init` time.
    pub init: Duration,
    /// The contract version the module was built against.
    pub contract: ContractVersion,
    /// The parameters its `init` declared, in order (index = position).
    pub params: Vec<ParamDecl>,
    /// Built by the fast tier (an optimised build is to take over).
    pub fast: bool,
    /// Events its event buffer holds (`None`: it has none).
    pub event_capacity: Option<u32>,
}

/// A version and what comes with it.
pub struct Prepared {
    pub version: Box<Version>,
    pub report: LoadReport,
    pub log: LogConsumer,
}

pub struct Loader {
    runtime: Arc<Runtime>,
    cache: ModuleCache,
    config: LoaderConfig,
    next_id: AtomicU64,
}

/// The event buffer (`ptr`, `len` bytes) and the state region (`base`,
/// `len` bytes) must not overlap.
fn check_apart((ptr, len): (u32, u32), (base, state_len): (u32, u32)) -> Result<(), LoadError> {
    let (events_end, state_end) = (ptr as u64 + len as u64, base as u64 + state_len as u64);
    if state_len > 0 && len > 0 && (ptr as u64) < state_end && (base as u64) < events_end {
        return Err(LoadError::EventBuffer(format!(
            "the event buffer {ptr:#x}..{events_end:#x} overlaps the state region {base:#x}..{state_end:#x} (give the events a buffer of their own)"
        )));
    }
    Ok(())
}

/// A parameter cell for each declared parameter, at its default, in the
/// state region at `base`.
fn param_cells(params: &[ParamDecl], base: u32) -> Box<[ParamCell]> {
    params
        .iter()
        .map(|p| ParamCell {
            id: NO_ID,
            addr: base + p.offset,
            min: p.min,
            max: p.max,
            steps: p.steps,
            value: p.default,
            user_set: false,
        })
        .collect()
}

impl Loader {
    pub fn new(
        runtime: Arc<Runtime>,
        config: LoaderConfig,
        cache_dir: Option<std::path::PathBuf>,
    ) -> Self {
        Loader {
            runtime,
            cache: ModuleCache::new(cache_dir).with_compile_limit(cache::CompileLimit {
                cpu: config.compile_limit,
                memory: config.compile_memory,
            }),
            config,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Prepare a version of `signal` from binary module `bytes`, placing its
    /// claims against `previous` (the layout of the version playing now).
    ///
    /// # Errors
    /// A [`LoadError`] naming what is wrong; nothing is handed to the audio
    /// thread.
    pub fn prepare(
        &self,
        signal: &str,
        bytes: &[u8],
        previous: &Layout,
    ) -> Result<Prepared, LoadError> {
        self.prepare_tier(signal, bytes, previous, false)
    }

    /// The optimised build of version `id`, which plays from its fast build
    /// (prepared from the same `bytes` against the same `previous`): it
    /// takes that version's id.
    ///
    /// # Errors
    /// As [`Loader::prepare`].
    pub fn prepare_optimised(
        &self,
        signal: &str,
        bytes: &[u8],
        previous: &Layout,
        id: u64,
    ) -> Result<Prepared, LoadError> {
        self.prepare_with(signal, bytes, previous, false, Some(id))
    }

    /// [`Loader::prepare`]; with `fast`, a module not compiled before is
    /// built by the runtime's fast tier (if it has one), not cached, and
    /// its report says so ([`LoadReport::fast`]): the caller then prepares
    /// the optimised build too, to take over from it.
    ///
    /// # Errors
    /// As [`Loader::prepare`].
    pub fn prepare_tier(
        &self,
        signal: &str,
        bytes: &[u8],
        previous: &Layout,
        fast: bool,
    ) -> Result<Prepared, LoadError> {
        self.prepare_with(signal, bytes, previous, fast, None)
    }

    /// [`Loader::prepare_tier`], as version `id` if given (else a new id).
    fn prepare_with(
        &self,
        signal: &str,
        bytes: &[u8],
        previous: &Layout,
        fast: bool,
        id: Option<u64>,
    ) -> Result<Prepared, LoadError> {
        let shape = contract::validate(bytes)?;
        if let Some(why) = runtime::over_limits(bytes, &self.config.limits) {
            return Err(LoadError::Instantiate(why));
        }
        let hash = cache::hash(bytes);
        let tier = match &self.runtime.fast {
            Some(t) if fast && !self.cache.has(&hash) => Some(t),
            _ => None,
        };
        let (engine, linker) = match tier {
            Some(t) => (&t.engine, &t.linker),
            None => (&self.runtime.engine, &self.runtime.linker),
        };
        let t0 = Instant::now();
        let compiled = match tier {
            Some(t) => match self.cache.compile_uncached(engine, bytes) {
                // What the baseline compiler cannot do, the optimised
                // build may: that one plays first instead.
                Err(e) if cache::worth_retrying_optimised(&e) => {
                    tracing::debug!(
                        "{signal}: no fast build ({}: {e:#}); the optimised build plays first",
                        t.compiler.name()
                    );
                    return self.prepare_with(signal, bytes, previous, false, id);
                }
                other => other.map(|m| (m, Source::Compiled)),
            },
            None => self.cache.get(engine, &hash, bytes),
        };
        let (module, source) = compiled.map_err(|e| match e.downcast_ref::<cache::NotNow>() {
            Some(not_now) => LoadError::Busy(not_now.to_string()),
            None => LoadError::Compile(format!("{e:#}")),
        })?;
        let compile = t0.elapsed();

        let t1 = Instant::now();
        let stops = match tier {
            Some(t) => &t.stops,
            None => &self.runtime.stops,
        };
        let mut store = self.store(signal, engine, stops)?;
        // The optimised build of a version (its `id` given): its fast build
        // printed what `init` logs.
        store.data_mut().quiet_init = id.is_some();
        let linker = with_stop_imports(linker, &mut store, stops)?;
        // The watchdog judges calls on registered threads only.
        if !crate::rt::cpu::ensure_registered() {
            return Err(LoadError::Busy(
                "not loaded now: too many threads run guest code in this process for the watchdog to watch one more; save it again".into(),
            ));
        }
        // One budget for the start function, `state-ptr`/`len`, `init` and
        // `events-ptr`/`len`; whatever way this returns, the call is no
        // longer watched afterwards (`_watching` is dropped before `store`).
        {
            let data = store.data_mut();
            data.overrun.start(self.load_limits(), data.stop.as_ref());
        }
        let _watching = Unwatch;
        let instance = match linker.instantiate(&mut store, &module) {
            // The fast tier's few pooled instances all in use: build it
            // the usual way.
            Err(e) if tier.is_some() && e.downcast_ref::<Trap>().is_none() => {
                return self.prepare_with(signal, bytes, previous, false, id);
            }
            other => other,
        };
        let instance = instance.map_err(|e| match e.downcast_ref::<Trap>() {
            Some(_) => self.guest_error(Export::Start, e, &mut store),
            None => LoadError::Instantiate(format!("{e:#}")),
        })?;
        let memory = instance
            .get_memory(&mut store, contract::MEMORY_EXPORT)
            .ok_or_else(|| LoadError::Instantiate("exports no memory".into()))?;
        let (state_base, state_len) = if shape.has_state_region {
            self.state_region(&mut store, &instance, &memory)?
        } else {
            (0, 0)
        };
        {
            let data = store.data_mut();
            data.state_base = state_base;
            data.claims = Some(if shape.has_state_region {
                Claims::new(previous.clone(), state_len)
            } else {
                Claims::without_region()
            });
        }
        let channels = self.init(&mut store, &instance)?;
        let layout = store.data_mut().claims.take().expect("set above").finish();
        let params = std::mem::take(&mut store.data_mut().params);
        let buffer = if shape.has_event_buffer {
            let (ptr, len) = self.event_buffer(&mut store, &instance, &memory)?;
            check_apart((ptr, len), (state_base, state_len))?;
            Some((ptr, len / EVENT_BYTES))
        } else {
            None
        };
        let process = match shape.version {
            ContractVersion::V0_1 => instance
                .get_typed_func::<(i32, i64), i32>(&mut store, "process")
                .map(Process::V1),
            ContractVersion::V0_2 => instance
                .get_typed_func::<(i32, i64, i32), i32>(&mut store, "process")
                .map(Process::V2),
        }
        .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let cells = param_cells(&params, state_base);
        let (log_tx, log_rx) = log_ring::ring(&self.runtime.log_pending);
        store.data_mut().log_ring = Some(log_tx);
        let id = id.unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        let report = LoadReport {
            signal: signal.to_string(),
            version: id,
            channels,
            hash,
            state_len,
            layout: layout.clone(),
            source,
            compile,
            init: t1.elapsed(),
            contract: shape.version,
            params,
            event_capacity: buffer.map(|(_, capacity)| capacity),
            fast: tier.is_some(),
        };
        let globals = exported_globals(&instance, &mut store);
        let version = Box::new(Version {
            id,
            channels,
            store,
            process,
            memory,
            state_base,
            layout,
            controls: Controls::new(cells, buffer),
            seen_memory: (0, 0),
            globals,
        });
        Ok(Prepared {
            version,
            report,
            log: log_rx,
        })
    }

    /// A store for one version, with its limits and its stop flag.
    fn store(
        &self,
        signal: &str,
        engine: &wasmtime::Engine,
        stops: &Arc<crate::rt::stop::StopFlags>,
    ) -> Result<Store<HostState>, LoadError> {
        let stop = stops.word().ok_or_else(|| {
            LoadError::Busy(format!(
                "not loaded now: all {} stop flags of the engine are in use (too many versions alive at once); save it again",
                crate::rt::stop::StopFlags::WORDS
            ))
        })?;
        let mut store = Store::new(
            engine,
            HostState {
                signal: signal.into(),
                claims: None,
                state_base: 0,
                claim_error: None,
                params: Vec::new(),
                log_ring: None,
                quiet_init: false,
                limits: self.config.limits.clone(),
                overrun: Default::default(),
                stop: Some(stop),
            },
        );
        store.limiter(|s| &mut s.limits);
        Ok(store)
    }

    fn load_limits(&self) -> guest::CallLimits {
        guest::CallLimits {
            cpu: self.config.init_timeout,
            // Far above the budget: a loader thread at normal priority on a
            // very busy machine may get a small share of a core.
            wall: self.config.init_timeout * 30,
        }
    }

    /// A call into the guest during the load failed: say where and why.
    fn guest_error(
        &self,
        export: Export,
        e: wasmtime::Error,
        store: &mut Store<HostState>,
    ) -> LoadError {
        let data = store.data_mut();
        let stopped = data.overrun.finish(data.stop.as_ref());
        let overrun = &data.overrun;
        match e.downcast_ref::<Trap>() {
            // Trapped at a stop check (or just as it was stopped).
            _ if stopped && overrun.starved => {
                LoadError::Starved(export, self.load_limits().wall, overrun.used)
            }
            _ if stopped => LoadError::Timeout(export, self.config.init_timeout),
            Some(t) => LoadError::Trap(export, trap_text(*t)),
            None => LoadError::Trap(export, format!("{e:#}")),
        }
    }

    /// Call the export `name` (`() -> i32`, such as `state-ptr`), its result
    /// as an address or a length.
    fn call_u32(
        &self,
        store: &mut Store<HostState>,
        instance: &wasmtime::Instance,
        export: Export,
        name: &str,
    ) -> Result<u32, LoadError> {
        let f = instance
            .get_typed_func::<(), i32>(&mut *store, name)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        f.call(&mut *store, ())
            .map(|v| v as u32)
            .map_err(|e| self.guest_error(export, e, store))
    }

    /// Call `state-ptr` and `state-len` and check the region they give.
    fn state_region(
        &self,
        store: &mut Store<HostState>,
        instance: &wasmtime::Instance,
        memory: &wasmtime::Memory,
    ) -> Result<(u32, u32), LoadError> {
        let ptr = self.call_u32(store, instance, Export::StatePtr, "state-ptr")?;
        let len = self.call_u32(store, instance, Export::StateLen, "state-len")?;
        let size = memory.data_size(&*store) as u64;
        if !ptr.is_multiple_of(MAX_ALIGN) {
            return Err(LoadError::StateRegion(format!(
                "`state-ptr` returned {ptr:#x}, which is not {MAX_ALIGN}-byte aligned (align the state buffer to {MAX_ALIGN})"
            )));
        }
        if ptr as u64 + len as u64 > size {
            return Err(LoadError::StateRegion(format!(
                "the state region {ptr:#x}..{:#x} lies outside the module's {size}-byte memory",
                ptr as u64 + len as u64
            )));
        }
        Ok((ptr, len))
    }

    /// Call `events-ptr` and `events-len` (after `init`) and check the
    /// buffer they give: 8-byte aligned, inside memory.
    fn event_buffer(
        &self,
        store: &mut Store<HostState>,
        instance: &wasmtime::Instance,
        memory: &wasmtime::Memory,
    ) -> Result<(u32, u32), LoadError> {
        let ptr = self.call_u32(store, instance, Export::EventsPtr, "events-ptr")?;
        let len = self.call_u32(store, instance, Export::EventsLen, "events-len")?;
        let size = memory.data_size(&*store) as u64;
        if !ptr.is_multiple_of(8) {
            return Err(LoadError::EventBuffer(format!(
                "`events-ptr` returned {ptr:#x}, which is not 8-byte aligned (align the event buffer to 8)"
            )));
        }
        if ptr as u64 + len as u64 > size {
            return Err(LoadError::EventBuffer(format!(
                "the event buffer {ptr:#x}..{:#x} (`events-ptr`, `events-len`) lies outside the module's {size}-byte memory",
                ptr as u64 + len as u64
            )));
        }
        Ok((ptr, len))
    }

    /// Run `init` and check what it returned: the channel count.
    fn init(
        &self,
        store: &mut Store<HostState>,
        instance: &wasmtime::Instance,
    ) -> Result<u32, LoadError> {
        let init = instance
            .get_typed_func::<(i32, i32), i32>(&mut *store, "init")
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let ret = init
            .call(
                &mut *store,
                (
                    self.config.sample_rate as i32,
                    self.config.max_frames as i32,
                ),
            )
            .map_err(|e| self.guest_error(Export::Init, e, store))?;
        if let Some(msg) = store.data_mut().claim_error.take() {
            return Err(LoadError::Claim(msg));
        }
        if ret < 0 {
            return Err(LoadError::InitFailed(ret));
        }
        if ret == 0 || ret > MAX_CHANNELS {
            return Err(LoadError::Channels(ret));
        }
        Ok(ret as u32)
    }
}

/// The module's mutable numeric globals, as the rewrite exported them
/// ([`instrument::GLOBAL_EXPORT`]), in index order.
fn exported_globals(
    instance: &wasmtime::Instance,
    store: &mut Store<HostState>,
) -> Vec<wasmtime::Global> {
    let mut found: Vec<(u32, wasmtime::Global)> = instance
        .exports(&mut *store)
        .filter_map(|e| {
            let index = e
                .name()
                .strip_prefix(instrument::GLOBAL_EXPORT)?
                .parse()
                .ok()?;
            Some((index, e.into_global()?))
        })
        .collect();
    found.sort_by_key(|&(i, _)| i);
    found.into_iter().map(|(_, g)| g).collect()
}

/// The loader thread's load call is no longer watched when this is dropped
/// (see [`crate::rt::cpu::unpublish`]).
struct Unwatch;

impl Drop for Unwatch {
    fn drop(&mut self) {
        crate::rt::cpu::unpublish();
    }
}

/// `linker` with the stop imports of the store's instance: the engine's
/// stop flags and the offset of the instance's word (see
/// [`instrument`]).
fn with_stop_imports(
    linker: &wasmtime::Linker<HostState>,
    store: &mut Store<HostState>,
    stops: &crate::rt::stop::StopFlags,
) -> Result<wasmtime::Linker<HostState>, LoadError> {
    let offset = store
        .data()
        .stop
        .as_ref()
        .map_or(0, crate::rt::stop::StopWord::offset);
    let word = wasmtime::Global::new(
        &mut *store,
        wasmtime::GlobalType::new(wasmtime::ValType::I32, wasmtime::Mutability::Const),
        wasmtime::Val::I32(offset),
    )
    .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
    let mut linker = linker.clone();
    linker
        .define(
            &*store,
            instrument::STOP_MODULE,
            instrument::FLAGS_NAME,
            stops.memory().clone(),
        )
        .and_then(|l| {
            l.define(
                &*store,
                instrument::STOP_MODULE,
                instrument::WORD_NAME,
                word,
            )
        })
        .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
    Ok(linker)
}

/// "integer divide by zero", without wasmtime's "wasm trap: " prefix.
pub fn trap_text(t: Trap) -> String {
    let s = t.to_string();
    s.strip_prefix("wasm trap: ").unwrap_or(&s).to_string()
}
