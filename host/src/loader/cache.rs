//! Compiled-module cache keyed by content hash: in memory and on disk (as
//! wasmtime serialized modules), so reloading a known version or restarting
//! lel-host is near-instant. Both are bounded and evict the least recently
//! used modules by bytes (defaults [`DEFAULT_MEMORY_BYTES`] and
//! [`DEFAULT_DISK_BYTES`], or `LEL_CACHE_MEMORY_MB` / `LEL_CACHE_DISK_MB`).
//! Identical bytes are compiled once even when several loads ask at the same
//! time (two signals with the same module, a retry): the first compiles, the
//! others wait for its result ([`Flight`]). A compile runs on a thread of
//! its own and is abandoned past its CPU-time limit ([`compile_bounded`]).
//! Runs on loader threads (compiles on `lel-compile` threads, disk writes
//! and eviction on a writer thread).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use wasmtime::{Engine, Module};

use crate::rt::guard::{AllocAccount, Charge, charge_allocations};

/// Content hash of module bytes (BLAKE3, hex).
pub type Hash = String;

pub fn hash(bytes: &[u8]) -> Hash {
    blake3::hash(bytes).to_hex().to_string()
}

/// Compiled code kept in memory by default: 128 MiB (a small signal's
/// compiled image is some tens of KiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 128 << 20;
/// Serialized modules kept on disk by default: 512 MiB.
pub const DEFAULT_DISK_BYTES: u64 = 512 << 20;

/// Where compiled modules are kept between runs: `$LEL_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/lel-host`, else `~/.cache/lel-host`. `LEL_CACHE_DIR=off`
/// disables the disk cache.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os("LEL_CACHE_DIR") {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("lel-host")),
    }
}

/// How much each cache may hold, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    pub memory_bytes: u64,
    pub disk_bytes: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            disk_bytes: DEFAULT_DISK_BYTES,
        }
    }
}

impl CacheLimits {
    /// The defaults, overridden by `LEL_CACHE_MEMORY_MB` and
    /// `LEL_CACHE_DISK_MB` (whole MiB; unreadable values are ignored with a
    /// warning).
    pub fn from_env() -> Self {
        Self::from_values(
            std::env::var("LEL_CACHE_MEMORY_MB").ok().as_deref(),
            std::env::var("LEL_CACHE_DISK_MB").ok().as_deref(),
        )
    }

    /// [`CacheLimits::from_env`] given the variables' values.
    pub fn from_values(memory_mb: Option<&str>, disk_mb: Option<&str>) -> Self {
        let mb = |name: &str, value: Option<&str>, default: u64| match value {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => n.saturating_mul(1 << 20),
                Err(_) => {
                    tracing::warn!(
                        "{name}={v:?} is not a whole number of MiB; using {} MiB",
                        default >> 20
                    );
                    default
                }
            },
            None => default,
        };
        CacheLimits {
            memory_bytes: mb("LEL_CACHE_MEMORY_MB", memory_mb, DEFAULT_MEMORY_BYTES),
            disk_bytes: mb("LEL_CACHE_DISK_MB", disk_mb, DEFAULT_DISK_BYTES),
        }
    }
}

/// How a module was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Compiled,
    Memory,
    Disk,
}

/// The in-memory cache: modules by hash, with their size and last use.
#[derive(Default)]
struct Lru {
    modules: HashMap<Hash, (Module, u64, u64)>,
    /// Last use (a counter) -> hash: the oldest first.
    order: BTreeMap<u64, Hash>,
    bytes: u64,
    tick: u64,
}

impl Lru {
    fn get(&mut self, hash: &str) -> Option<Module> {
        self.tick += 1;
        let tick = self.tick;
        let (module, _, used) = self.modules.get_mut(hash)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, hash.to_string());
        Some(module.clone())
    }

    fn insert(&mut self, hash: &str, module: Module, limit: u64) {
        if self.modules.contains_key(hash) {
            return;
        }
        let size = module_bytes(&module);
        self.tick += 1;
        self.modules
            .insert(hash.to_string(), (module, size, self.tick));
        self.order.insert(self.tick, hash.to_string());
        self.bytes += size;
        // The newest module stays even if it alone is over the limit.
        while self.bytes > limit && self.modules.len() > 1 {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, size, _)) = self.modules.remove(&oldest) {
                self.bytes -= size;
            }
        }
    }
}

/// Memory a compiled module holds: its code and data image.
fn module_bytes(module: &Module) -> u64 {
    let range = module.image_range();
    (range.end as usize - range.start as usize) as u64
}

/// CPU time one module's compile may use. No hand-written or SDK-built
/// signal comes near it (they compile in milliseconds); modules within the
/// size limits that would compile for much longer exist (deeply nested
/// blocks, thousands of locals live through a long function).
pub const COMPILE_CPU_LIMIT: Duration = Duration::from_secs(5);

/// Memory one module's compile may hold (bytes allocated by its threads and
/// not yet freed, at their peak) before it is rejected.
pub const COMPILE_MEMORY_LIMIT: usize = 256 << 20;

/// What one compile may use.
#[derive(Clone, Copy, Debug)]
pub struct CompileLimit {
    /// CPU time of all its threads.
    pub cpu: Duration,
    /// Bytes its threads hold at their peak.
    pub memory: usize,
}

impl Default for CompileLimit {
    fn default() -> Self {
        CompileLimit {
            cpu: COMPILE_CPU_LIMIT,
            memory: COMPILE_MEMORY_LIMIT,
        }
    }
}

thread_local! {
    /// A compile pool thread's charge of its allocations to its compile.
    static POOL_CHARGE: std::cell::RefCell<Option<Charge>> = const { std::cell::RefCell::new(None) };
}

/// What a compile thread says.
enum CompileMsg {
    Done(wasmtime::Result<Module>),
}

/// The threads of one compile: each one's CPU clock and thread id.
type CompileThreads = Arc<Mutex<Vec<(libc::clockid_t, libc::pid_t)>>>;

/// Record the calling thread in `threads` and lower its priority.
fn enlist(threads: &CompileThreads) {
    crate::rt::priority::background();
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid place for the id; `pthread_self` is this
    // (live) thread. On failure the clock is not used.
    if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } == 0 {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((clock, tid));
    }
}

/// Compiles stopped at their limit that may still be running (at idle
/// priority, holding their memory) before an engine refuses to start more.
pub const MAX_ABANDONED: usize = 2;

/// A compile that did not run for a reason of the moment, not of the
/// module's bytes ([`MAX_ABANDONED`] stopped compiles still finishing, no
/// thread to be had): not remembered as a failure of those bytes; saving
/// again later compiles them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotNow(pub String);

impl NotNow {
    fn busy(stopped: usize) -> Self {
        NotNow(format!(
            "not compiled now: {stopped} earlier compiles that ran over their time limit are still finishing in the background (at idle priority, holding their memory); save it again once they are done"
        ))
    }
}

/// A compile thread's state: running, done, or abandoned by its loader.
const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// A compile's threads, kept from one compile to the next: a rayon pool of
/// one thread per core (at most 8), named `lel-compile-N`, at the loaders'
/// priority, each with its CPU clock listed. A save then does not wait for
/// threads to start (0.05 to 0.4 ms each, more on a busy machine).
struct Crew {
    pool: rayon::ThreadPool,
    threads: CompileThreads,
}

/// Idle crews kept for the next compiles (more are started when several
/// compile at once).
const IDLE_CREWS: usize = 2;

impl Crew {
    fn new() -> Result<Crew, rayon::ThreadPoolBuildError> {
        let threads = CompileThreads::default();
        let enlisted = threads.clone();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cores.min(8))
            .thread_name(|i| format!("lel-compile-{i}"))
            .start_handler(move |_| enlist(&enlisted))
            .exit_handler(|_| drop(POOL_CHARGE.with(|c| c.borrow_mut().take())))
            // A panic in the compiler is caught where it is called; one in a
            // job of the pool itself must not abort the process either.
            .panic_handler(|_| {})
            .build()?;
        Ok(Crew { pool, threads })
    }

    /// Charge the allocations of every thread of the crew to `account` from
    /// now on (`None`: to no account; what each thread charged but had not
    /// added to its account yet is added now).
    fn charge(&self, account: Option<&Arc<AllocAccount>>) {
        self.pool.broadcast(|_| {
            POOL_CHARGE.with(|c| {
                // The old guard goes first: guards nest on a thread.
                drop(c.borrow_mut().take());
                *c.borrow_mut() = account.map(charge_allocations);
            });
        });
    }

    /// CPU time the crew's threads used so far.
    fn cpu(&self) -> Duration {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.iter().filter_map(|(clock, _)| cpu_of(*clock)).sum()
    }

    /// Move every thread of the crew to idle priority (an abandoned compile
    /// runs on only when nothing else wants the CPU).
    fn idle(&self) {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tid) in threads.iter() {
            idle(*tid);
        }
    }
}

/// Compile `bytes` on a crew of its own ([`Crew`]: one taken from `crews`,
/// or a new one; returned there afterwards), judged by the CPU time the
/// crew used meanwhile and the memory its threads hold (their allocations
/// are charged to the compile's [`AllocAccount`]): past `limit.cpu` (or,
/// on a machine too busy to give it the CPU, 20 times that in wall time) or
/// `limit.memory`, the compile is abandoned with a message naming the limit
/// (a compile that finished over the memory limit is rejected all the
/// same). wasmtime cannot stop a compile, so the abandoned crew runs on to
/// its end at idle priority (SCHED_IDLE: only when nothing else wants the
/// CPU), its module is dropped and its threads end; while `abandoned` (the
/// engine's count of them) is at [`MAX_ABANDONED`], no new compile starts
/// ([`NotNow`]), so their memory stays bounded. An abandoned compile holds
/// no thread that other compiles need.
fn compile_bounded(
    engine: &Engine,
    bytes: &[u8],
    limit: CompileLimit,
    abandoned: &Arc<AtomicUsize>,
    crews: &Mutex<Vec<Crew>>,
) -> wasmtime::Result<Module> {
    let cpu = limit.cpu;
    let stopped = abandoned.load(Ordering::Acquire);
    if stopped >= MAX_ABANDONED {
        return Err(wasmtime::Error::new(NotNow::busy(stopped)));
    }
    let idle_crew = crews.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let crew = match idle_crew {
        Some(c) => c,
        None => Crew::new().map_err(|e| {
            wasmtime::Error::new(NotNow(format!(
                "not compiled now: cannot start the compile threads ({e}); save it again"
            )))
        })?,
    };
    let memory = Arc::new(AllocAccount::default());
    crew.charge(Some(&memory));
    let cpu_before = crew.cpu();
    let (tx, rx) = std::sync::mpsc::channel();
    let (engine, owned) = (engine.clone(), bytes.to_vec());
    let state = Arc::new(AtomicU8::new(RUNNING));
    let (job_state, count) = (state.clone(), abandoned.clone());
    crew.pool.spawn(move || {
        // The stop checks are written in here, under the same CPU and
        // memory limits as the compile.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let checked = super::instrument::instrument(&owned).map_err(wasmtime::Error::new)?;
            Module::new(&engine, &checked)
        }))
        .unwrap_or_else(|_| Err(wasmtime::Error::msg("the compiler panicked")));
        drop(owned);
        if job_state.swap(DONE, Ordering::AcqRel) == ABANDONED {
            count.fetch_sub(1, Ordering::AcqRel);
        }
        let _ = tx.send(CompileMsg::Done(result));
    });
    let start = std::time::Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(CompileMsg::Done(result)) => {
                // Every charge is in the account once it is unset.
                crew.charge(None);
                tracing::debug!(
                    "compile: {:.1} ms, at most {} KiB held",
                    start.elapsed().as_secs_f64() * 1e3,
                    memory.peak() >> 10
                );
                let mut idle_crews = crews.lock().unwrap_or_else(|e| e.into_inner());
                if idle_crews.len() < IDLE_CREWS {
                    idle_crews.push(crew);
                }
                drop(idle_crews);
                // Over the memory limit between two looks: rejected all the
                // same, so the verdict does not depend on timing.
                if memory.peak() > limit.memory {
                    return Err(over_memory(limit));
                }
                return result;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(wasmtime::Error::msg("the compiler panicked"));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let used = crew.cpu().saturating_sub(cpu_before);
        let over_cpu = used > cpu;
        let memory_over = memory.peak() > limit.memory;
        if !over_cpu && !memory_over && start.elapsed() <= cpu * 20 {
            continue;
        }
        abandoned.fetch_add(1, Ordering::AcqRel);
        if state
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // It finished just now: take its result after all.
            abandoned.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        // The crew is not kept: its threads end once the compile does.
        crew.idle();
        drop(crew);
        if memory_over {
            return Err(over_memory(limit));
        }
        let what = if over_cpu { "CPU" } else { "wall" };
        return Err(wasmtime::Error::new(OverLimit(format!(
            "it used more than {} s of {what} time compiling, the limit per module (no hand-written or SDK-built signal comes near it); simplify it (fewer locals, less nesting, smaller functions)",
            cpu.as_secs_f64()
        ))));
    }
}

/// The error of a compile that held more memory than `limit` allows.
fn over_memory(limit: CompileLimit) -> wasmtime::Error {
    wasmtime::Error::new(OverLimit(format!(
        "it used more than {} MiB of memory compiling, the limit per module (no hand-written or SDK-built signal comes near it); simplify it (fewer locals, less nesting, smaller functions)",
        limit.memory >> 20
    )))
}

/// A compile stopped at its CPU, wall-time or memory limit.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OverLimit(pub String);

/// Did a fast-tier compile fail where the optimised compiler may succeed
/// (the baseline compiler does not support something the module uses, or
/// panicked)? Not for a compile that could not run now, one stopped at its
/// limits (the optimised compiler would take longer still), or a module
/// refused for what it is (its stop checks cannot be written in).
pub fn worth_retrying_optimised(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<NotNow>().is_none()
        && e.downcast_ref::<OverLimit>().is_none()
        && e.downcast_ref::<super::instrument::InstrumentError>()
            .is_none()
}

/// CPU time used by the thread whose CPU clock is `clock` (`None` once it
/// has exited).
fn cpu_of(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock of a thread that
    // has exited makes the call fail (EINVAL), which is handled.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Move thread `tid` of this process to SCHED_IDLE.
fn idle(tid: libc::pid_t) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; an id of a thread that has
    // exited makes the call fail, which is harmless. (The thread is called
    // abandoned before this, so it only exits after finishing a compile;
    // its id being reused by then would take the process's pid space
    // wrapping around meanwhile.)
    unsafe {
        libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param);
    }
}

/// A compile's result as its waiters get it: the module, or the error's
/// message and whether it was [`NotNow`].
type Shared = Result<Module, (String, bool)>;

/// One compile under way, and its result once there: the loads that ask for
/// the same hash meanwhile wait for it instead of compiling again.
#[derive(Default)]
struct Flight {
    /// Waiters get a [`NotNow`] as that, not as a compile error.
    result: Mutex<Option<Shared>>,
    done: Condvar,
}

impl Flight {
    fn finish(&self, result: &wasmtime::Result<(Module, Source)>) {
        let shared = match result {
            Ok((m, _)) => Ok(m.clone()),
            Err(e) => Err((format!("{e:#}"), e.downcast_ref::<NotNow>().is_some())),
        };
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(shared);
        self.done.notify_all();
    }

    fn wait(&self) -> wasmtime::Result<Module> {
        let mut result = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = &*result {
                return r.clone().map_err(|(message, not_now)| match not_now {
                    true => wasmtime::Error::new(NotNow(message)),
                    false => wasmtime::Error::msg(message),
                });
            }
            result = self.done.wait(result).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub struct ModuleCache {
    dir: Option<PathBuf>,
    limits: CacheLimits,
    /// What one compile may use ([`CompileLimit::default`] by default).
    compile: CompileLimit,
    /// Compiles stopped at that limit and still running.
    abandoned: Arc<AtomicUsize>,
    /// Compile threads kept for the next compiles.
    crews: Mutex<Vec<Crew>>,
    memory: Mutex<Lru>,
    /// Compiles (or disk loads) under way, by hash.
    in_flight: Mutex<HashMap<Hash, Arc<Flight>>>,
    /// Disk writes under way (joined by [`ModuleCache::wait_for_disk`]).
    writers: Mutex<Vec<JoinHandle<()>>>,
}

impl ModuleCache {
    /// A cache with the limits of [`CacheLimits::from_env`].
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self::with_limits(dir, CacheLimits::from_env())
    }

    pub fn with_limits(dir: Option<PathBuf>, limits: CacheLimits) -> Self {
        ModuleCache {
            dir,
            limits,
            compile: CompileLimit::default(),
            abandoned: Arc::default(),
            crews: Mutex::new(Vec::new()),
            memory: Mutex::new(Lru::default()),
            in_flight: Mutex::default(),
            writers: Mutex::new(Vec::new()),
        }
    }

    /// Stop compiles that use more than `limit`.
    pub fn with_compile_limit(mut self, limit: CompileLimit) -> Self {
        self.compile = limit;
        self
    }

    /// The compiled module for `bytes`, compiling it at most once while it
    /// stays cached. When a compile of the same hash is under way, waits for
    /// it and shares its module (reported as [`Source::Memory`]) or its error.
    ///
    /// # Errors
    /// When the module does not compile.
    pub fn get(
        &self,
        engine: &Engine,
        hash: &Hash,
        bytes: &[u8],
    ) -> wasmtime::Result<(Module, Source)> {
        if let Some(m) = self.lock_memory().get(hash) {
            return Ok((m, Source::Memory));
        }
        let (flight, leader) = {
            let mut flights = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match flights.get(hash) {
                Some(f) => (f.clone(), false),
                None => {
                    // Checked again under the lock: a compile may have
                    // finished since.
                    if let Some(m) = self.lock_memory().get(hash) {
                        return Ok((m, Source::Memory));
                    }
                    let f = Arc::new(Flight::default());
                    flights.insert(hash.clone(), f.clone());
                    (f, true)
                }
            }
        };
        if !leader {
            return flight.wait().map(|m| (m, Source::Memory));
        }
        // The leader: whatever happens (even a panic in the compiler), the
        // waiters get an answer and the flight is removed.
        struct Land<'a> {
            cache: &'a ModuleCache,
            hash: &'a Hash,
            flight: Arc<Flight>,
            done: bool,
        }
        impl Drop for Land<'_> {
            fn drop(&mut self) {
                if !self.done {
                    self.flight
                        .finish(&Err(wasmtime::Error::msg("the compiler panicked")));
                }
                let mut flights = self
                    .cache
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                flights.remove(self.hash);
            }
        }
        let mut land = Land {
            cache: self,
            hash,
            flight,
            done: false,
        };
        let result = self.load_or_compile(engine, hash, bytes);
        if let Ok((module, _)) = &result {
            self.lock_memory()
                .insert(hash, module.clone(), self.limits.memory_bytes);
        }
        land.flight.finish(&result);
        land.done = true;
        drop(land);
        result
    }

    /// From the disk cache, else compiled (and written to disk off the
    /// caller's thread).
    fn load_or_compile(
        &self,
        engine: &Engine,
        hash: &Hash,
        bytes: &[u8],
    ) -> wasmtime::Result<(Module, Source)> {
        if let Some(m) = self.load_disk(engine, hash) {
            return Ok((m, Source::Disk));
        }
        let m = compile_bounded(engine, bytes, self.compile, &self.abandoned, &self.crews)?;
        // Off the reload's critical path: the swap need not wait for the
        // disk.
        if let Some(dir) = self.dir.clone() {
            let (hash, module, limit) = (hash.clone(), m.clone(), self.limits.disk_bytes);
            let writer = std::thread::Builder::new()
                .name("lel-cache-write".into())
                .spawn(move || {
                    store_disk(&dir, &hash, &module);
                    evict_disk(&dir, limit);
                });
            if let Ok(w) = writer {
                let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
                writers.retain(|w| !w.is_finished());
                writers.push(w);
            }
        }
        Ok((m, Source::Compiled))
    }

    /// Compile `bytes` with `engine` (another tier's) under the same limits
    /// as every compile, without caching the result.
    ///
    /// # Errors
    /// When the module does not compile, or not within the limits.
    pub fn compile_uncached(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Module> {
        compile_bounded(engine, bytes, self.compile, &self.abandoned, &self.crews)
    }

    /// Is a compiled module for `hash` at hand, in memory or on disk (so
    /// that [`ModuleCache::get`] will not compile)?
    pub fn has(&self, hash: &str) -> bool {
        self.in_memory(hash)
            || self
                .dir
                .as_deref()
                .is_some_and(|d| paths(d, hash).0.is_file())
    }

    /// Bytes of compiled code held in memory, and how many modules.
    pub fn memory_usage(&self) -> (u64, usize) {
        let lru = self.lock_memory();
        (lru.bytes, lru.modules.len())
    }

    /// Is the module with this hash in the memory cache?
    pub fn in_memory(&self, hash: &str) -> bool {
        self.lock_memory().modules.contains_key(hash)
    }

    /// Wait until every disk write started so far is done.
    pub fn wait_for_disk(&self) {
        let writers = std::mem::take(&mut *self.writers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in writers {
            let _ = w.join();
        }
    }

    fn lock_memory(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load_disk(&self, engine: &Engine, hash: &str) -> Option<Module> {
        let (path, check) = paths(self.dir.as_deref()?, hash);
        let bytes = std::fs::read(&path).ok()?;
        // The artifact is trusted only if it is exactly what this cache wrote.
        if std::fs::read_to_string(&check).ok()? != blake3::hash(&bytes).to_hex().as_str() {
            return None;
        }
        // SAFETY: `bytes` were produced by `Module::serialize` in `store_disk`
        // (the checksum written beside them matches), and wasmtime itself
        // rejects artifacts of another version or configuration.
        let module = unsafe { Module::deserialize(engine, &bytes) }.ok()?;
        // A use: the disk cache evicts the least recently used first.
        let _ = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(module)
    }
}

/// What the compiled code is of, beside the module's bytes: bumped when the
/// loader changes what it writes into modules (`loader::instrument`, since
/// `stop2` `loader::operands`, since `stop3` the checks leaving by a
/// branch to one trap after the body), so that no artifact of an older
/// rewrite is used.
const REWRITE: &str = "stop3";

/// The name of the file that holds the compiled module of `hash` in the
/// cache folder (its checksum is beside it, with `.b3` added).
pub fn file_name(hash: &str) -> String {
    format!("{hash}-{REWRITE}.cwasm")
}

fn paths(dir: &Path, hash: &str) -> (PathBuf, PathBuf) {
    let name = file_name(hash);
    (dir.join(&name), dir.join(format!("{name}.b3")))
}

/// Serialize a compiled module into the cache folder (atomically: a temp file
/// renamed into place, then its checksum).
fn store_disk(dir: &Path, hash: &str, module: &Module) {
    let (path, check) = paths(dir, hash);
    let Ok(bytes) = module.serialize() else {
        return;
    };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        std::fs::write(&check, blake3::hash(&bytes).to_hex().as_str())
    };
    if let Err(e) = write() {
        tracing::debug!("module cache {}: {e}", path.display());
    }
}

/// Delete the least recently used modules (oldest modification time: written
/// or last loaded) until the folder's `.cwasm` files fit in `limit` bytes.
fn evict_disk(dir: &Path, limit: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    if total <= limit {
        return;
    }
    files.sort();
    // The newest file stays even if it alone is over the limit.
    for (_, size, path) in &files[..files.len() - 1] {
        if total <= limit {
            break;
        }
        if std::fs::remove_file(path).is_ok() {
            let _ = std::fs::remove_file(path.with_extension("cwasm.b3"));
            total -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_whole_mib_values_with_defaults() {
        assert_eq!(CacheLimits::from_values(None, None), CacheLimits::default());
        assert_eq!(
            CacheLimits::from_values(Some("16"), Some(" 0 ")),
            CacheLimits {
                memory_bytes: 16 << 20,
                disk_bytes: 0
            }
        );
        assert_eq!(
            CacheLimits::from_values(Some("lots"), Some("-1")),
            CacheLimits::default()
        );
    }
}
