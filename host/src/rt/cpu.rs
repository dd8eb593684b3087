//! Thread CPU time for judging guest calls, and the watchdog that stops a
//! call once it has used its CPU budget. Reading a thread's CPU clock is a
//! real system call on Linux (no vDSO), so threads that run guest calls
//! register here ([`register_guest_thread`]) and a watchdog thread of its
//! own reads each registered thread's CPU clock every tick. A call starts
//! from an upper bound of its thread's CPU time so far (the last sample +
//! wall time since it: a thread cannot use more CPU than wall time passes),
//! so the CPU a call is found to have used is never over-estimated, and a
//! preempted call is never blamed. The calling thread publishes the call it
//! is making ([`begin_call`]: atomics and one monotonic clock read, no
//! system call); the watchdog, finding that call past its CPU budget (or,
//! as a last resort, its wall-time bound), turns the call's stop flag
//! ([`super::stop`]) on, and the guest traps at its next check.
//!
//! The watchdog wakes every [`TICK`] while a playing engine is registered
//! ([`watch_every`]), every [`OFFLINE_TICK`] while only offline ones are:
//! one wake-up per tick for the whole process (each a preemption of the
//! audio thread once the watchdog is real-time, and CPU time in every
//! render).

use std::cell::Cell;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::clock::{now_ns, read};
use super::stop::STOP;

/// How often the watchdog samples the registered threads' CPU clocks and
/// judges their calls while an engine that plays is registered: a call is
/// stopped at most about a tick after it used its budget.
pub const TICK: Duration = Duration::from_micros(500);

/// The watchdog's tick while only offline engines (`render`, `replay`) are
/// registered: their calls have seconds of CPU time before they count as
/// runaways, so a tick 20 times longer still stops one within 1 % of its
/// budget, with 20 times fewer wake-ups (whose sleeps and clock reads were
/// 2 to 3 % of a render's CPU time).
pub const OFFLINE_TICK: Duration = Duration::from_millis(10);

/// Most threads registered at once (audio threads, workers, renderers).
const MAX_THREADS: usize = 512;

/// One registered thread's published sample.
struct Entry {
    /// Claimed by a live registration.
    used: AtomicBool,
    /// Bumped by every registration: a sample is valid only for its owner.
    generation: AtomicU64,
    /// The thread's CPU clock id (`clockid_t`).
    clock: AtomicI32,
    /// Seqlock over the three fields below: odd while the watchdog writes.
    seq: AtomicU64,
    sample_generation: AtomicU64,
    cpu_ns: AtomicU64,
    /// Wall time ([`now_ns`]) read just before `cpu_ns`.
    wall_ns: AtomicU64,
    /// The thread's calls so far (written by the thread only): the low
    /// bits of its call numbers.
    calls: AtomicU32,
    /// Seqlock over the call in progress (written by the thread only, read
    /// by the watchdog): odd while the thread writes.
    call_seq: AtomicU64,
    /// Address of the call's stop word; 0 while no call is watched.
    call_word: AtomicUsize,
    /// The call's number (what the word holds while it runs).
    call_number: AtomicI32,
    /// Upper bound of the thread's CPU time at the call's start, and the
    /// wall time then.
    call_cpu_ns: AtomicU64,
    call_wall_ns: AtomicU64,
    /// The call's CPU budget and wall-time bound.
    call_cpu_limit_ns: AtomicU64,
    call_wall_limit_ns: AtomicU64,
    /// The watchdog's verdict on the last call it stopped (written before
    /// the stop flag, so a thread that sees its flag sees these): the CPU
    /// it had used, and whether it was stopped for wall time.
    stopped_used_ns: AtomicU64,
    stopped_starved: AtomicBool,
}

/// A call as published for the watchdog.
#[derive(Clone, Copy)]
struct Call {
    word: usize,
    number: i32,
    cpu_ns: u64,
    wall_ns: u64,
    cpu_limit_ns: u64,
    wall_limit_ns: u64,
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
            calls: AtomicU32::new(0),
            call_seq: AtomicU64::new(0),
            call_word: AtomicUsize::new(0),
            call_number: AtomicI32::new(0),
            call_cpu_ns: AtomicU64::new(0),
            call_wall_ns: AtomicU64::new(0),
            call_cpu_limit_ns: AtomicU64::new(0),
            call_wall_limit_ns: AtomicU64::new(0),
            stopped_used_ns: AtomicU64::new(0),
            stopped_starved: AtomicBool::new(false),
        }
    }

    /// Owner thread only: publish `call` (`None`: no call is running).
    fn publish(&self, call: Option<Call>) {
        let s = self.call_seq.load(Ordering::Relaxed);
        self.call_seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        match call {
            Some(c) => {
                self.call_number.store(c.number, Ordering::Relaxed);
                self.call_cpu_ns.store(c.cpu_ns, Ordering::Relaxed);
                self.call_wall_ns.store(c.wall_ns, Ordering::Relaxed);
                // The limits seldom change from call to call.
                if self.call_cpu_limit_ns.load(Ordering::Relaxed) != c.cpu_limit_ns {
                    self.call_cpu_limit_ns
                        .store(c.cpu_limit_ns, Ordering::Relaxed);
                }
                if self.call_wall_limit_ns.load(Ordering::Relaxed) != c.wall_limit_ns {
                    self.call_wall_limit_ns
                        .store(c.wall_limit_ns, Ordering::Relaxed);
                }
                self.call_word.store(c.word, Ordering::Relaxed);
            }
            None => self.call_word.store(0, Ordering::Relaxed),
        }
        self.call_seq.store(s + 2, Ordering::Release);
    }

    /// Watchdog: the call in progress, if any (`None` also while the
    /// thread is writing: it is then between calls).
    fn call(&self) -> Option<Call> {
        let s1 = self.call_seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let c = Call {
            word: self.call_word.load(Ordering::Relaxed),
            number: self.call_number.load(Ordering::Relaxed),
            cpu_ns: self.call_cpu_ns.load(Ordering::Relaxed),
            wall_ns: self.call_wall_ns.load(Ordering::Relaxed),
            cpu_limit_ns: self.call_cpu_limit_ns.load(Ordering::Relaxed),
            wall_limit_ns: self.call_wall_limit_ns.load(Ordering::Relaxed),
        };
        fence(Ordering::Acquire);
        (self.call_seq.load(Ordering::Relaxed) == s1 && c.word != 0).then_some(c)
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

    /// Watchdog only (the single writer).
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
/// The watchdog thread (woken when there is new work after an idle spell).
static WATCHDOG: OnceLock<Option<std::thread::Thread>> = OnceLock::new();
/// The ticks asked for by live engines ([`watch_every`]): (registration,
/// tick in [`TICK`]s).
static RATES: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
/// The watchdog's period in [`TICK`]s: the shortest tick asked for (1 when
/// none is).
static BASE_TICKS: AtomicU64 = AtomicU64::new(1);
static NEXT_RATE: AtomicU64 = AtomicU64::new(0);
/// Watchdog passes begun and ended: odd while a pass runs (see
/// [`wait_for_watch_pass`]).
static PASS: AtomicU64 = AtomicU64::new(0);
/// A real-time thread registered: the watchdog then asks for real-time
/// priority too (above it). Offline renders leave it at normal priority, so
/// that many engines in one machine (tests, renders) do not fill it with
/// real-time wake-ups.
static REALTIME_WANTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's registration: (entry index, generation).
    static ME: Cell<Option<(usize, u64)>> = const { Cell::new(None) };
    /// A registration owned by the thread itself (see [`ensure_registered`]).
    static OWNED: std::cell::RefCell<Option<GuestThread>> = const { std::cell::RefCell::new(None) };
}

/// CPU time the calling thread has used, read from the kernel: a system
/// call. Only for threads that are not real-time or for the overrun path.
pub fn thread_cpu_ns() -> u64 {
    read(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
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
/// thread, outside the real-time path (it may start the watchdog thread and
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
    start_watchdog();
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
/// the audio callback's, an offline renderer's or a loader's. Returns
/// whether the thread is registered (false only when the table is full:
/// its calls are then not watched).
pub fn ensure_registered() -> bool {
    if ME.with(Cell::get).is_some() {
        return true;
    }
    match register_guest_thread() {
        Some(g) => {
            OWNED.with(|o| *o.borrow_mut() = Some(g));
            true
        }
        None => false,
    }
}

fn start_watchdog() {
    let watchdog = WATCHDOG.get_or_init(|| {
        let _ = now_ns();
        let spawned = std::thread::Builder::new()
            .name("lel-cpu-clock".into())
            .spawn(|| {
                let mut promoted = false;
                let mut calibration = super::clock::Calibration::default();
                loop {
                    calibration.step();
                    if !promoted && realtime_wanted() {
                        promoted = true;
                        super::priority::promote(super::priority::Role::Ticker);
                    }
                    if REGISTERED.load(Ordering::Relaxed) == 0 {
                        // Idle: woken early by a registration.
                        std::thread::park_timeout(Duration::from_millis(20));
                        continue;
                    }
                    PASS.fetch_add(1, Ordering::SeqCst);
                    watch_all();
                    PASS.fetch_add(1, Ordering::SeqCst);
                    let base = BASE_TICKS.load(Ordering::Relaxed).max(1);
                    // A registration that shortens the period unparks.
                    std::thread::park_timeout(TICK * base as u32);
                }
            });
        match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(e) => {
                tracing::warn!("cannot start the CPU clock watchdog ({e}): guest calls read their thread's CPU clock themselves, and runaways are not stopped");
                None
            }
        }
    });
    if let Some(thread) = watchdog {
        thread.unpark();
    }
}

/// The ticks engines asked for ([`watch_every`]) changed (its lock held).
fn update_base(list: &[(u64, u64)]) {
    let base = list.iter().map(|&(_, every)| every).min().unwrap_or(1);
    BASE_TICKS.store(base, Ordering::Relaxed);
}

/// An engine's request for a watchdog tick; withdrawn when dropped.
pub struct WatchRate {
    id: u64,
}

/// Have the watchdog wake at least every `tick` ([`TICK`] to play,
/// [`OFFLINE_TICK`] offline; rounded to whole [`TICK`]s) while the returned
/// value lives (the watchdog is started if need be).
pub fn watch_every(tick: Duration) -> WatchRate {
    let id = NEXT_RATE.fetch_add(1, Ordering::Relaxed);
    let every = u64::try_from(tick.as_nanos() / TICK.as_nanos())
        .unwrap_or(u64::MAX)
        .clamp(1, 1_000);
    {
        let mut list = RATES.lock().unwrap_or_else(|e| e.into_inner());
        list.push((id, every));
        update_base(&list);
    }
    start_watchdog();
    WatchRate { id }
}

impl Drop for WatchRate {
    fn drop(&mut self) {
        let mut list = RATES.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|&(id, _)| id != self.id);
        update_base(&list);
    }
}

/// Has a real-time thread registered in this process? Then the watchdog
/// should be real-time too (above it).
pub fn realtime_wanted() -> bool {
    REALTIME_WANTED.load(Ordering::Relaxed)
}

/// Watchdog: read every registered thread's CPU clock, publish it, and
/// stop the thread's call if it is past its budget.
fn watch_all() {
    for e in ENTRIES.iter() {
        if !e.used.load(Ordering::Acquire) {
            continue;
        }
        let generation = e.generation.load(Ordering::Acquire);
        let clock = e.clock.load(Ordering::Relaxed);
        // The call first, then the clocks: a call that started after this
        // read is judged at the next tick.
        let call = e.call();
        // Wall time first: cpu + (now - wall) is then an upper bound.
        let wall = now_ns();
        let Some(cpu) = read(clock) else {
            continue;
        };
        e.write(generation, cpu, wall);
        if let Some(c) = call {
            judge(e, c, cpu, wall);
        }
    }
}

/// Wait until a watchdog pass in progress, if any, is over: after that, no
/// address of a call that ended before this was called is in the
/// watchdog's hands. For a stop word about to be freed (microseconds, off
/// the audio thread).
pub fn wait_for_watch_pass() {
    fence(Ordering::SeqCst);
    let p = PASS.load(Ordering::SeqCst);
    if p & 1 == 1 {
        while PASS.load(Ordering::SeqCst) == p {
            std::thread::yield_now();
        }
    }
}

/// Stop `call` if it used its CPU budget, or ran past its wall-time bound.
fn judge(e: &Entry, call: Call, cpu: u64, wall: u64) {
    let used = cpu.saturating_sub(call.cpu_ns);
    let starved = if used >= call.cpu_limit_ns {
        false
    } else if wall.saturating_sub(call.wall_ns) >= call.wall_limit_ns {
        true
    } else {
        return;
    };
    e.stopped_used_ns.store(used, Ordering::Relaxed);
    e.stopped_starved.store(starved, Ordering::Relaxed);
    // SAFETY: `call.word` is the address of a `StopWord`'s cell that was
    // live when this pass read it: a thread publishes it only while its
    // store (which owns the word) is in a call, and unpublishes it before
    // the call returns. A `StopWord` waits for the pass in progress before
    // it is freed (`wait_for_watch_pass`), and the memory it lies in lives
    // at least as long as its words, so the address is valid until this
    // pass ends. The exchange only succeeds if the word still holds this
    // call's number, which no other call has (numbers carry the thread's
    // entry index and its own call count).
    let word = unsafe { &*(call.word as *const AtomicI32) };
    let _ = word.compare_exchange(
        call.number,
        call.number | STOP,
        Ordering::Release,
        Ordering::Relaxed,
    );
}

/// A guest call being watched on this thread (see [`begin_call`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Watch {
    /// The call's number (what its stop word holds while it runs).
    pub number: i32,
    /// The thread's entry + 1; 0: the call is not watched (the thread is
    /// not registered, or the call has no stop word).
    entry: u32,
}

#[cfg(test)]
impl Watch {
    /// Whether the watchdog knows of the call.
    pub fn watched(&self) -> bool {
        self.entry != 0
    }
}

/// Nanoseconds of `d`, in 64 bits (no 128-bit arithmetic: this runs before
/// every guest call).
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// Before a guest call: take its start (`start_of`), write a fresh call
/// number into `word` and publish the call, with its `cpu` budget and
/// `wall` bound, for the watchdog. On a registered thread: atomics and one
/// monotonic clock read. Without a word, or on a thread that is not
/// registered (its table full), the call is not watched.
pub fn begin_call(word: Option<&AtomicI32>, cpu: Duration, wall: Duration) -> (CallStart, Watch) {
    let me = ME.with(Cell::get);
    let start = start_of(me);
    let (Some(word), Some((i, _))) = (word, me) else {
        if let Some(w) = word {
            w.store(0, Ordering::Relaxed);
        }
        return (start, Watch::default());
    };
    let e = &ENTRIES[i];
    let n = e.calls.load(Ordering::Relaxed).wrapping_add(1);
    e.calls.store(n, Ordering::Relaxed);
    // 9 bits of entry index, 22 of the thread's call count: positive, and
    // never the number of a call on another thread.
    let number = ((i as i32) << 22) | (n & 0x3f_ffff) as i32;
    word.store(number, Ordering::Relaxed);
    e.publish(Some(Call {
        word: word as *const AtomicI32 as usize,
        number,
        cpu_ns: start.cpu_ns,
        wall_ns: start.wall_ns,
        cpu_limit_ns: nanos(cpu),
        wall_limit_ns: nanos(wall),
    }));
    let watch = Watch {
        number,
        entry: i as u32 + 1,
    };
    (start, watch)
}

/// This thread's call is no longer watched (idempotent; for a loader
/// whose budget spans several calls, whichever way the load ends).
pub fn unpublish() {
    if let Some((i, _)) = ME.with(Cell::get) {
        ENTRIES[i].publish(None);
    }
}

/// After the call [`begin_call`] published: no longer watched. Returns the
/// watchdog's verdict if it stopped that call: (CPU used, stopped for wall
/// time rather than CPU).
pub fn end_call(word: &AtomicI32, watch: Watch) -> Option<(Duration, bool)> {
    let e = ENTRIES.get(watch.entry.checked_sub(1)? as usize)?;
    e.publish(None);
    (word.load(Ordering::Acquire) == watch.number | STOP).then(|| {
        (
            Duration::from_nanos(e.stopped_used_ns.load(Ordering::Relaxed)),
            e.stopped_starved.load(Ordering::Relaxed),
        )
    })
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

#[cfg(test)]
pub fn call_start() -> CallStart {
    start_of(ME.with(Cell::get))
}

/// [`call_start`] for the registration `me`.
fn start_of(me: Option<(usize, u64)>) -> CallStart {
    let wall = now_ns();
    let sampled = me
        .and_then(|(i, g)| ENTRIES[i].read(g))
        .map(|(cpu, at)| cpu + super::clock::upper_bound_of(wall.saturating_sub(at)));
    CallStart {
        cpu_ns: sampled.unwrap_or_else(thread_cpu_ns),
        wall_ns: wall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that keeps using CPU is stopped by the watchdog once it used
    /// its budget (its word turns negative, and the verdict says how much
    /// it used); one that sleeps past its budget in wall time is not.
    #[test]
    fn the_watchdog_stops_a_call_that_used_its_budget_not_one_that_waited() {
        let _me = register_guest_thread().expect("registered");
        let _rate = watch_every(TICK);
        let word = AtomicI32::new(0);
        let budget = Duration::from_millis(5);
        let (_, watch) = begin_call(Some(&word), budget, Duration::from_secs(20));
        assert!(watch.watched() && watch.number > 0);
        assert_eq!(word.load(Ordering::Relaxed), watch.number);
        let t = Instant::now();
        while word.load(Ordering::Acquire) >= 0 && t.elapsed() < Duration::from_secs(10) {
            std::hint::spin_loop();
        }
        let verdict = end_call(&word, watch);
        let (used, starved) = verdict.expect("the busy call was stopped");
        assert!(!starved, "stopped for its CPU, not for wall time");
        assert!(
            used >= budget,
            "stopped after {used:?} of CPU, below its {budget:?}"
        );

        let (_, watch) = begin_call(Some(&word), budget, Duration::from_secs(20));
        assert_eq!(
            word.load(Ordering::Relaxed),
            watch.number,
            "a fresh number clears the flag"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            end_call(&word, watch),
            None,
            "a call that waited 40 ms but used no CPU was stopped"
        );
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
