//! Thread CPU time for judging guest calls, with no system call on the audio
//! thread's fault-free path. Reading a thread's CPU clock is a real system
//! call on Linux (no vDSO), so threads that run guest calls register here
//! ([`register_guest_thread`]) and a sampler thread of its own reads each
//! registered thread's CPU clock every tick and publishes it, with the
//! wall time of the sample, through atomics. A call then starts from an
//! upper bound of its thread's CPU time so far (last sample + wall time since
//! it: a thread cannot use more CPU than wall time passes), so the CPU a call
//! is found to have used is never over-estimated, and a preempted call is
//! never blamed. Runs on any thread: [`call_start`] on the audio thread
//! (atomics and one monotonic clock read), the sampler on its own.
//!
//! The same thread advances the epoch of every engine that asked for it
//! ([`tick_epochs`]), each at its own tick ([`TICK`] to play,
//! [`OFFLINE_TICK`] offline): one wake-up per tick for the whole process,
//! not one per engine plus the sampler's (each a preemption of the audio
//! thread once the tickers are real-time, and CPU time in every render).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often the epoch of a playing engine advances and registered
/// threads' CPU clocks are sampled. Call budgets are whole ticks.
pub const TICK: Duration = Duration::from_micros(500);

/// The tick of an offline engine (`render`, `replay`): its calls have
/// seconds of CPU time before they count as runaways, so a tick 20 times
/// longer still stops one within 1 % of its budget, with 20 times fewer
/// wake-ups of the ticker (whose sleeps and clock reads were 2 to 3 % of a
/// render's CPU time). While only such engines are registered, the ticker
/// wakes at this rate; with a playing engine beside them, at [`TICK`], and
/// advances theirs every 20th wake.
pub const OFFLINE_TICK: Duration = Duration::from_millis(10);

/// Most threads registered at once (audio threads, workers, renderers).
const MAX_THREADS: usize = 128;

/// One registered thread's published sample.
struct Entry {
    /// Claimed by a live registration.
    used: AtomicBool,
    /// Bumped by every registration: a sample is valid only for its owner.
    generation: AtomicU64,
    /// The thread's CPU clock id (`clockid_t`).
    clock: AtomicI32,
    /// Seqlock over the three fields below: odd while the sampler writes.
    seq: AtomicU64,
    sample_generation: AtomicU64,
    cpu_ns: AtomicU64,
    /// Wall time ([`now_ns`]) read just before `cpu_ns`.
    wall_ns: AtomicU64,
}

impl Entry {
    const fn new() -> Self {
        Entry {
            used: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            clock: AtomicI32::new(0),
            seq: AtomicU64::new(0),
            sample_generation: AtomicU64::new(u64::MAX),
            cpu_ns: AtomicU64::new(0),
            wall_ns: AtomicU64::new(0),
        }
    }

    /// The last sample `(cpu, wall)` if it belongs to `generation`.
    fn read(&self, generation: u64) -> Option<(u64, u64)> {
        for _ in 0..4 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let g = self.sample_generation.load(Ordering::Relaxed);
            let cpu = self.cpu_ns.load(Ordering::Relaxed);
            let wall = self.wall_ns.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return (g == generation).then_some((cpu, wall));
            }
        }
        None
    }

    /// Sampler only (the single writer).
    fn write(&self, generation: u64, cpu: u64, wall: u64) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.sample_generation.store(generation, Ordering::Relaxed);
        self.cpu_ns.store(cpu, Ordering::Relaxed);
        self.wall_ns.store(wall, Ordering::Relaxed);
        self.seq.store(s + 2, Ordering::Release);
    }
}

static ENTRIES: [Entry; MAX_THREADS] = [const { Entry::new() }; MAX_THREADS];
static REGISTERED: AtomicUsize = AtomicUsize::new(0);
/// The sampler thread (woken when there is new work after an idle spell).
static SAMPLER: OnceLock<Option<std::thread::Thread>> = OnceLock::new();
/// Engines whose epochs advance, with their ticks.
static ENGINES: Mutex<Vec<Ticked>> = Mutex::new(Vec::new());
/// `ENGINES`' length, so that the ticker's idle check takes no lock.
static ENGINE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The ticker's period in [`TICK`]s: the shortest tick of the engines
/// registered (1 when there are none).
static BASE_TICKS: AtomicU64 = AtomicU64::new(1);

/// An engine registered with [`tick_epochs`].
struct Ticked {
    /// Registration number.
    id: u64,
    engine: wasmtime::Engine,
    /// Its tick, in [`TICK`]s.
    every: u64,
    /// [`TICK`]s still to pass before its next increment.
    left: u64,
}
static NEXT_TICKING: AtomicU64 = AtomicU64::new(0);
/// A real-time thread registered: the ticker (this sampler, which also
/// advances the epochs) then asks for real-time priority too. Offline renders leave them
/// at normal priority, so that many engines in one machine (tests, renders)
/// do not fill it with real-time wake-ups.
static REALTIME_WANTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's registration: (entry index, generation).
    static ME: Cell<Option<(usize, u64)>> = const { Cell::new(None) };
    /// A registration owned by the thread itself (see [`ensure_registered`]).
    static OWNED: std::cell::RefCell<Option<GuestThread>> = const { std::cell::RefCell::new(None) };
}

/// Nanoseconds of the raw monotonic clock (vDSO, no system call; 16 ns
/// here), read directly: two of these per guest call, where
/// `Instant::elapsed` added a checked subtraction and a 128-bit conversion
/// to each. Raw, not `CLOCK_MONOTONIC` (which `Instant` reads): that one is
/// slewed by NTP, a few parts per million slower or faster than the
/// threads' CPU clocks, and a CPU time bound computed from wall time
/// ([`call_start`]) came out 25 ns short of the real CPU time once.
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_RAW).unwrap_or(0)
}

/// CPU time the calling thread has used, read from the kernel: a system
/// call. Only for threads that are not real-time or for the overrun path.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; a clock id of a thread that
    // has exited makes the call fail (EINVAL), which is handled.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// A thread registered for CPU sampling; unregistered when dropped. Must be
/// dropped on the thread that registered.
pub struct GuestThread {
    index: usize,
    generation: u64,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for GuestThread {
    fn drop(&mut self) {
        ME.with(|me| {
            if me.get() == Some((self.index, self.generation)) {
                me.set(None);
            }
        });
        let e = &ENTRIES[self.index];
        e.generation.fetch_add(1, Ordering::AcqRel);
        e.used.store(false, Ordering::Release);
        REGISTERED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Register the calling thread as one that runs guest calls (an audio
/// thread, a render worker): its CPU clock is sampled every tick so that
/// calls on it are judged by CPU time without system calls. Call once per
/// thread, outside the real-time path (it may start the sampler thread and
/// waits for the first sample). `None` when the table is full or the thread
/// already registered; calls on the thread then read the CPU clock directly.
pub fn register_guest_thread() -> Option<GuestThread> {
    if ME.with(Cell::get).is_some() {
        return None;
    }
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `pthread_self()` is the calling, living thread; `clock` is a
    // valid out-pointer.
    if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } != 0 {
        return None;
    }
    let index = ENTRIES.iter().position(|e| {
        e.used
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })?;
    let e = &ENTRIES[index];
    e.clock.store(clock, Ordering::Relaxed);
    let generation = e.generation.fetch_add(1, Ordering::AcqRel) + 1;
    ME.with(|me| me.set(Some((index, generation))));
    REGISTERED.fetch_add(1, Ordering::Relaxed);
    if super::priority::is_realtime() {
        REALTIME_WANTED.store(true, Ordering::Relaxed);
    }
    start_sampler();
    // Wait (briefly) for the first sample, so that calls never need the
    // fallback of reading the clock themselves.
    let waited = Instant::now();
    while e.read(generation).is_none() && waited.elapsed() < Duration::from_millis(50) {
        std::thread::sleep(Duration::from_micros(200));
    }
    Some(GuestThread {
        index,
        generation,
        _not_send: std::marker::PhantomData,
    })
}

/// Register the calling thread for as long as it lives (idempotent; outside
/// the real-time path). For threads that run guest calls on and off, such as
/// the audio callback's or an offline renderer's.
pub fn ensure_registered() {
    if ME.with(Cell::get).is_some() {
        return;
    }
    if let Some(g) = register_guest_thread() {
        OWNED.with(|o| *o.borrow_mut() = Some(g));
    }
}

fn start_sampler() {
    let sampler = SAMPLER.get_or_init(|| {
        let _ = now_ns();
        let spawned = std::thread::Builder::new()
            .name("lel-cpu-clock".into())
            .spawn(|| {
                let mut promoted = false;
                loop {
                    if !promoted && realtime_wanted() {
                        promoted = true;
                        super::priority::promote(super::priority::Role::Ticker);
                    }
                    let threads = REGISTERED.load(Ordering::Relaxed);
                    if threads == 0 && ENGINE_COUNT.load(Ordering::Relaxed) == 0 {
                        // Idle: woken early by a registration.
                        std::thread::park_timeout(Duration::from_millis(20));
                        continue;
                    }
                    if threads > 0 {
                        sample_all();
                    }
                    let base = BASE_TICKS.load(Ordering::Relaxed).max(1);
                    std::thread::sleep(TICK * base as u32);
                    advance_epochs(base);
                }
            });
        match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                tracing::warn!("cannot start the CPU clock sampler ({e}): guest calls read their thread's CPU clock themselves, and no epoch advances (runaways are not stopped)");
                None
            }
        }
    });
    if let Some(thread) = sampler {
        thread.unpark();
    }
}

/// `passed` [`TICK`]s have passed: advance the epoch of every engine
/// registered with [`tick_epochs`] whose tick is over. If a registration
/// holds the list right now, this wake-up is skipped: a deadline then comes
/// one tick later (budgets have a tick of slack).
fn advance_epochs(passed: u64) {
    if ENGINE_COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    if let Ok(mut engines) = ENGINES.try_lock() {
        for t in engines.iter_mut() {
            t.left = t.left.saturating_sub(passed);
            if t.left == 0 {
                t.engine.increment_epoch();
                t.left = t.every;
            }
        }
    }
}

/// The ticker's period after a change of the list (with its lock held).
fn update_base(list: &[Ticked]) {
    ENGINE_COUNT.store(list.len(), Ordering::Relaxed);
    let base = list.iter().map(|t| t.every).min().unwrap_or(1);
    BASE_TICKS.store(base, Ordering::Relaxed);
}

/// Engines whose epochs advance every tick; they stop when this is
/// dropped.
pub struct EpochTicking {
    id: u64,
}

/// Advance the epochs of `engines` every `tick` ([`TICK`] or
/// [`OFFLINE_TICK`]; rounded to whole [`TICK`]s) from now on (on the
/// sampler's thread, started if need be), until the returned value is
/// dropped.
pub fn tick_epochs(engines: &[wasmtime::Engine], tick: Duration) -> EpochTicking {
    let id = NEXT_TICKING.fetch_add(1, Ordering::Relaxed);
    let every = u64::try_from(tick.as_nanos() / TICK.as_nanos())
        .unwrap_or(u64::MAX)
        .clamp(1, 1_000);
    {
        let mut list = ENGINES.lock().unwrap_or_else(|e| e.into_inner());
        list.extend(engines.iter().map(|e| Ticked {
            id,
            engine: e.clone(),
            every,
            left: every,
        }));
        update_base(&list);
    }
    start_sampler();
    EpochTicking { id }
}

impl Drop for EpochTicking {
    fn drop(&mut self) {
        let removed: Vec<_> = {
            let mut list = ENGINES.lock().unwrap_or_else(|e| e.into_inner());
            let gone = list.extract_if(.., |t| t.id == self.id).collect();
            update_base(&list);
            gone
        };
        // The engines' last references may go here, outside the lock.
        drop(removed);
    }
}

/// Has a real-time thread registered in this process? Then the tickers
/// should be real-time too (above it).
pub fn realtime_wanted() -> bool {
    REALTIME_WANTED.load(Ordering::Relaxed)
}

/// Read every registered thread's CPU clock and publish it.
fn sample_all() {
    for e in ENTRIES.iter() {
        if !e.used.load(Ordering::Acquire) {
            continue;
        }
        let generation = e.generation.load(Ordering::Acquire);
        let clock = e.clock.load(Ordering::Relaxed);
        // Wall time first: cpu + (now - wall) is then an upper bound.
        let wall = now_ns();
        if let Some(cpu) = clock_ns(clock) {
            e.write(generation, cpu, wall);
        }
    }
}

/// Taken at the start of a guest call: an upper bound of the thread's CPU
/// time so far, and the wall time. On a registered thread with a current
/// sample: atomics and one monotonic clock read. Otherwise the thread's CPU
/// clock is read directly (a system call: not on real-time threads).
#[derive(Clone, Copy, Debug, Default)]
pub struct CallStart {
    pub cpu_ns: u64,
    pub wall_ns: u64,
}

pub fn call_start() -> CallStart {
    let wall = now_ns();
    let sampled = ME
        .with(Cell::get)
        .and_then(|(i, g)| ENTRIES[i].read(g))
        .map(|(cpu, at)| cpu + wall.saturating_sub(at));
    CallStart {
        cpu_ns: sampled.unwrap_or_else(thread_cpu_ns),
        wall_ns: wall,
    }
}

/// Epoch ticks of length `tick` that cover `d` (at least two, so that a
/// call started just before a tick still gets one full tick).
pub fn ticks_for(d: Duration, tick: Duration) -> u64 {
    // In 64 bits: a 128-bit division (`Duration::as_nanos`) is a library
    // call, and this runs before every guest call.
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let tick = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
    (ns / tick).max(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine registered with [`OFFLINE_TICK`] has its epoch advanced
    /// that often, also while a playing engine (at [`TICK`]) is registered
    /// and the ticker wakes every [`TICK`]: a runaway loop with a deadline
    /// of 4 ticks runs at least 3 offline ticks (30 ms), and the playing
    /// engine's loop is stopped too.
    #[test]
    fn an_offline_engine_ticks_at_its_own_tick() {
        let engine = |tick: Duration| {
            let mut config = wasmtime::Config::new();
            config.epoch_interruption(true);
            let engine = wasmtime::Engine::new(&config).expect("engine");
            let ticking = tick_epochs(std::slice::from_ref(&engine), tick);
            (engine, ticking)
        };
        let spin = |engine: &wasmtime::Engine| {
            let wasm = wat::parse_str(r#"(module (func (export "spin") (loop (br 0))))"#)
                .expect("valid text");
            let module = wasmtime::Module::new(engine, wasm).expect("compiles");
            let mut store = wasmtime::Store::new(engine, ());
            store.set_epoch_deadline(4);
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instance");
            let f = instance
                .get_typed_func::<(), ()>(&mut store, "spin")
                .expect("spin");
            let t = Instant::now();
            let result = f.call(&mut store, ());
            (result.is_err(), t.elapsed())
        };
        let (offline, _o) = engine(OFFLINE_TICK);
        let (playing, _p) = engine(TICK);
        let (stopped, took) = spin(&offline);
        assert!(stopped, "the offline engine's runaway was stopped");
        assert!(
            took >= OFFLINE_TICK * 3,
            "4 offline ticks took only {took:?}: the engine ticked faster than {OFFLINE_TICK:?}"
        );
        let (stopped, _) = spin(&playing);
        assert!(stopped, "the playing engine's runaway was stopped");
    }

    #[test]
    fn a_call_start_never_over_estimates_the_cpu_used_since() {
        let _me = register_guest_thread().expect("registered");
        for _ in 0..200 {
            let exact = thread_cpu_ns();
            let start = call_start();
            assert!(
                start.cpu_ns >= exact,
                "upper bound {} below the real {exact}",
                start.cpu_ns
            );
            // Burn some CPU between calls.
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(50) {}
        }
    }
}
