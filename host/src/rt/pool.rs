//! The slots and the threads that render them: the audio thread plus N-1
//! pre-spawned workers share out the active slots of one block. Runs on the
//! audio thread (which hands the work out, joins it and waits for the end)
//! and on the workers.
//!
//! Per block, with no lock, allocation or system call on the fault-free path:
//! the audio thread publishes the block (its context and the list of active
//! slots) and a new generation in one atomic word, `ticket` (generation,
//! count of slots and next work index). Every thread, the audio
//! thread included, claims slots by compare-and-swap on that word, renders
//! each into the slot's own buffer and outbox, and counts it `done`. The
//! audio thread, having run out of slots to claim, waits for `done` to reach
//! the count. A claim succeeds only for the current generation, so a worker
//! that wakes late can never take a slot of a later block.
//!
//! Parking: a worker spins for [`WORKER_SPIN`] after its last slot, then
//! parks (`std::thread::park`, a futex on Linux). The audio thread unparks
//! only as many workers as the block can use, and only when the block is
//! heavy: when the guest time of the previous block is below
//! `MixerConfig::parallel_min`, the audio thread renders alone and touches no
//! worker at all (an unpark of a parked thread is a system call; the light
//! case then costs nothing but a sum of the slots' timings). Unparking a
//! thread that is still spinning is a single atomic swap.
//!
//! Every worker runs its blocks under the audio thread's guard (flush to
//! zero, allocation counting, the audio-thread mark), is registered for CPU
//! sampling so its guest calls are judged by its own CPU time, warms wasmtime
//! up before its first block and, when playing live, gets the audio thread's
//! real-time priority.
//!
//! Output and events do not depend on the thread count: a slot's block is
//! computed the same way on any thread, the mixer sums the slot buffers in
//! slot order and drains the per-slot outboxes in slot order.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use super::callback::WarmUp;
use super::guard::{self, Stats};
use super::kernels;
use super::outbox::SlotOutbox;
use super::slot::{BlockCtx, Slot};

/// How long a worker spins for the next block before it parks.
pub const WORKER_SPIN: Duration = Duration::from_micros(50);
/// How long the audio thread spins for a slot still being rendered by a
/// worker before it naps between checks (only when a worker was preempted
/// mid-slot or runs a long call: the audio thread cannot take over a slot in
/// progress).
const JOIN_SPIN: Duration = Duration::from_micros(500);
/// The nap between those checks.
const JOIN_NAP: Duration = Duration::from_micros(50);

/// Most slots a pool can hand out (a 16-bit index in the ticket).
pub const MAX_SLOTS: usize = 0xffff;

/// One slot with its outbox, on a cache line of its own.
#[repr(align(128))]
struct Lane {
    slot: UnsafeCell<Slot>,
    out: UnsafeCell<SlotOutbox>,
}

/// What the audio thread and the workers share.
struct Shared {
    lanes: Box<[Lane]>,
    /// Slot indices to render this block, in slot order.
    work: Box<[AtomicUsize]>,
    /// Their count (read by the audio thread only; workers take the count
    /// of their generation from `ticket`).
    count: AtomicUsize,
    ctx: UnsafeCell<BlockCtx>,
    /// Generation (high 32 bits), the count of slots to render (bits 16 to
    /// 31) and the next index into `work` (low 16 bits).
    ticket: AtomicU64,
    /// Slots finished in the current generation.
    done: AtomicUsize,
    stop: AtomicBool,
    check_alloc: bool,
    /// Workers ask for the audio thread's real-time priority.
    realtime: bool,
    stats: Arc<Stats>,
}

// SAFETY: the `UnsafeCell`s are accessed under one protocol. A lane (and the
// context) is written by the audio thread only while no generation is in
// flight (between the end of one `render` and the publication of the next,
// with `&mut Pool`); during a generation, a lane is touched only by the one
// thread whose compare-and-swap claimed its index, and `ctx` is only read.
// The `ticket` store (Release) / claim (Acquire) and the `done` increment
// (Release) / the audio thread's load (Acquire) order these accesses. A
// `Slot` (wasmtime stores included) may move between threads: it is `Send`.
unsafe impl Sync for Shared {}

impl Shared {
    /// Claim and render slots of generation `generation` until none is left.
    /// Returns the allocator calls made on this thread while guests faulted.
    fn work_on(&self, generation: u64) -> u64 {
        let mut faults = 0;
        loop {
            // Generation, count and next index all come from one word, so a
            // worker still looping after its generation ended can never mix
            // them with a later block's.
            let t = self.ticket.load(Ordering::Acquire);
            let (index, count) = ((t & 0xffff) as usize, ((t >> 16) & 0xffff) as usize);
            if t >> 32 != generation || index >= count {
                return faults;
            }
            if self
                .ticket
                .compare_exchange_weak(t, t + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let i = self.work[index].load(Ordering::Relaxed);
            // SAFETY: this thread claimed `index` of this generation, so it
            // alone touches lane `i` until it counts it done; the audio
            // thread does not write `ctx` during a generation.
            unsafe {
                let lane = &self.lanes[i];
                let out = &mut *lane.out.get();
                (*lane.slot.get()).process(&*self.ctx.get(), out);
                faults += out.fault_allocations;
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// The slots of a mixer and the workers that help render them.
pub struct Pool {
    shared: Arc<Shared>,
    /// The slots that may be playing, in slot order: every slot handed out
    /// by [`Pool::lane`] since it was last found idle. `render` looks at
    /// these alone, so a block costs nothing per empty slot (a scan of all
    /// 1,100 lanes was most of the engine's fixed work per block). Its
    /// capacity is the slot count: inserting never allocates.
    live: Vec<usize>,
    /// `listed[i]`: slot `i` is in `live`.
    listed: Box<[bool]>,
    workers: Vec<(Thread, JoinHandle<()>)>,
    generation: u64,
    /// Blocks rendered by more than one thread (for tests and benchmarks).
    parallel_blocks: u64,
}

/// What [`Pool::render_then`] calls with each slot it rendered, and the
/// slot's outbox.
pub type Then<'a> = &'a mut dyn FnMut(usize, &Slot, &mut SlotOutbox);

impl Pool {
    /// `slots` empty slots and `threads - 1` workers, each warmed up with a
    /// first call into wasm (on `engine`) before its first block, and given
    /// real-time priority when `realtime`.
    ///
    /// # Errors
    /// When a worker thread cannot be spawned.
    pub fn new(
        slots: Box<[Slot]>,
        threads: usize,
        engine: Option<&wasmtime::Engine>,
        check_alloc: bool,
        realtime: bool,
        stats: Arc<Stats>,
        ctx: BlockCtx,
    ) -> std::io::Result<Pool> {
        let n = slots.len();
        if n > MAX_SLOTS {
            return Err(std::io::Error::other(format!(
                "{n} slots: the pool renders at most {MAX_SLOTS}"
            )));
        }
        let shared = Arc::new(Shared {
            lanes: slots
                .into_vec()
                .into_iter()
                .map(|s| Lane {
                    slot: UnsafeCell::new(s),
                    out: UnsafeCell::new(SlotOutbox::default()),
                })
                .collect(),
            work: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            count: AtomicUsize::new(0),
            ctx: UnsafeCell::new(ctx),
            ticket: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            check_alloc,
            realtime,
            stats,
        });
        let mut pool = Pool {
            shared,
            live: Vec::with_capacity(n),
            listed: vec![false; n].into_boxed_slice(),
            workers: Vec::new(),
            generation: 0,
            parallel_blocks: 0,
        };
        for k in 1..threads.max(1) {
            let shared = pool.shared.clone();
            let warm_up = engine.and_then(|e| WarmUp::new(e).ok());
            let handle = std::thread::Builder::new()
                .name(format!("lel-pool-{k}"))
                .spawn(move || worker(&shared, warm_up))?;
            pool.workers.push((handle.thread().clone(), handle));
        }
        Ok(pool)
    }

    /// Threads that render: the audio thread plus the workers.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    pub fn len(&self) -> usize {
        self.shared.lanes.len()
    }

    /// Blocks rendered by more than one thread so far.
    pub fn parallel_blocks(&self) -> u64 {
        self.parallel_blocks
    }

    /// Slot `i` and its outbox, between blocks (listed as possibly playing
    /// from now on).
    pub fn lane(&mut self, i: usize) -> (&mut Slot, &mut SlotOutbox) {
        let lane = &self.shared.lanes[i];
        if !self.listed[i] {
            self.listed[i] = true;
            let at = self.live.partition_point(|&k| k < i);
            // Within capacity (one entry per slot at most): no allocation.
            self.live.insert(at, i);
        }
        // SAFETY: `&mut self` and no generation in flight (every `render`
        // waits for its last slot): no worker touches any lane now.
        unsafe { (&mut *lane.slot.get(), &mut *lane.out.get()) }
    }

    /// Slot `i`, between blocks.
    pub fn slot(&self, i: usize) -> &Slot {
        // SAFETY: no generation in flight (see `lane`), and `&self` excludes
        // `lane`'s `&mut` for as long as this reference lives.
        unsafe { &*self.shared.lanes[i].slot.get() }
    }

    /// Render the non-idle slots for `ctx`, each into its own buffer and
    /// outbox; afterwards [`Pool::active_slot`] lists them in slot order. Several
    /// threads share the work when the pool has workers, more than one slot
    /// is active and the last block's guest time reached `parallel_min`.
    /// When this thread renders alone, `then` is called with each slot right
    /// after it rendered (in slot order, its output and its structure still
    /// in the cache). Returns the allocator calls made on this thread while
    /// guests faulted, and whether `then` was called.
    pub fn render_then(
        &mut self,
        ctx: &BlockCtx,
        parallel_min: Duration,
        mut then: Option<Then<'_>>,
    ) -> (u64, bool) {
        let shared = &*self.shared;
        let mut count = 0;
        let mut busy = 0u64;
        let listed = &mut self.listed;
        self.live.retain(|&i| {
            // SAFETY: no generation in flight (see `lane`).
            let slot = unsafe { &*shared.lanes[i].slot.get() };
            if slot.is_idle() {
                // Idle slots only start playing through `lane`, which lists
                // them again.
                listed[i] = false;
                return false;
            }
            shared.work[count].store(i, Ordering::Relaxed);
            count += 1;
            busy += slot.busy_nanos();
            true
        });
        shared.count.store(count, Ordering::Relaxed);
        // SAFETY: no generation in flight: nobody reads `ctx` now.
        unsafe { *shared.ctx.get() = *ctx };
        let helpers = self.workers.len().min(count.saturating_sub(1));
        let parallel = helpers > 0 && busy >= parallel_min.as_nanos() as u64;
        if !parallel {
            // The light case: this thread alone, no worker touched.
            let mut faults = 0;
            for index in 0..count {
                // Two slots ahead, the slot itself; one ahead, what it
                // points to (its slot was fetched one round ago).
                if index + 2 < count {
                    let ahead = &shared.lanes[shared.work[index + 2].load(Ordering::Relaxed)];
                    kernels::prefetch(ahead.slot.get().cast(), size_of::<Slot>());
                }
                if index + 1 < count {
                    let next = &shared.lanes[shared.work[index + 1].load(Ordering::Relaxed)];
                    // SAFETY: no generation in flight (see `lane`); a shared
                    // borrow of another lane's slot than the one rendered.
                    unsafe { &*next.slot.get() }.prefetch();
                }
                let i = shared.work[index].load(Ordering::Relaxed);
                let lane = &shared.lanes[i];
                // SAFETY: no generation in flight (see `lane`).
                let (slot, out) = unsafe { (&mut *lane.slot.get(), &mut *lane.out.get()) };
                slot.process(ctx, out);
                faults += out.fault_allocations;
                if let Some(then) = then.as_mut() {
                    then(i, slot, out);
                }
            }
            return (faults, then.is_some());
        }
        self.parallel_blocks += 1;
        shared.stats.shared_blocks.fetch_add(1, Ordering::Relaxed);
        // Generation 0 is the workers' starting point: never published.
        self.generation = (self.generation % 0xffff_ffff) + 1;
        shared.done.store(0, Ordering::Relaxed);
        shared.ticket.store(
            self.generation << 32 | (count as u64) << 16,
            Ordering::Release,
        );
        for (thread, _) in &self.workers[..helpers] {
            thread.unpark();
        }
        let faults = shared.work_on(self.generation);
        let started = Instant::now();
        while shared.done.load(Ordering::Acquire) < count {
            if started.elapsed() < JOIN_SPIN {
                std::hint::spin_loop();
            } else {
                // A worker was preempted in the middle of a slot (or its
                // guest runs away until its budget stops it): sleep in short
                // steps, leaving the CPU to it rather than spinning it away.
                std::thread::park_timeout(JOIN_NAP);
            }
        }
        (faults, false)
    }

    /// How many slots the last [`Pool::render_then`] rendered.
    pub fn active_count(&self) -> usize {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// The `k`-th slot the last [`Pool::render_then`] rendered, in slot order.
    pub fn active_slot(&self, k: usize) -> usize {
        self.shared.work[k].load(Ordering::Relaxed)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for (thread, _) in &self.workers {
            thread.unpark();
        }
        for (_, handle) in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

/// A worker: warm up, then render its share of every block it is woken for.
fn worker(shared: &Shared, warm_up: Option<WarmUp>) {
    // Once, before the first block (system calls and a lock are fine here):
    // the audio thread's real-time priority when playing live, and the CPU
    // clock registration so that guest calls here are judged by this
    // thread's own CPU time.
    if shared.realtime {
        super::priority::promote(super::priority::Role::Audio);
    }
    let _cpu = super::cpu::register_guest_thread();
    if let Some(mut w) = warm_up {
        // Outside the guard: wasmtime's per-thread setup allocates, once.
        w.call();
    }
    let mut seen = 0u64;
    loop {
        // Wait for a new generation: spin a little, then park.
        let spin_start = Instant::now();
        let mut spins = 0u32;
        let generation = loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            let g = shared.ticket.load(Ordering::Acquire) >> 32;
            if g != seen {
                break g;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || spin_start.elapsed() < WORKER_SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::park();
            }
        };
        seen = generation;
        guard::run(shared.check_alloc, || {
            let before = guard::violation_count();
            let faults = shared.work_on(generation);
            let violations = (guard::violation_count() - before).saturating_sub(faults);
            if violations > 0 {
                shared
                    .stats
                    .violations
                    .fetch_add(violations, Ordering::Relaxed);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    //! The guard on the workers: an allocation made while a worker renders
    //! a slot (outside any fault) is counted, like one on the audio thread.

    use std::sync::atomic::AtomicU64;

    use wasmtime::{Config, Engine, Linker, Module, Store};

    use super::*;
    use crate::rt::guest::{CallLimits, HostState};
    use crate::rt::layout::Layout;
    use crate::rt::version::{Process, Version};

    /// Calls of the allocating host function made on a pool worker, each
    /// one allocation and one free.
    static WORKER_CALLS: AtomicU64 = AtomicU64::new(0);

    /// A version whose `process` spins for about a millisecond (so that
    /// both threads take a slot) and calls `alloc`, a host function that
    /// allocates and frees a buffer: a non-fault allocation inside a slot.
    fn version(engine: &Engine, id: u64) -> Box<Version> {
        let wat = r#"(module
            (import "test" "alloc" (func $alloc))
            (memory (export "memory") 1)
            (func (export "process") (param i32 i64) (result i32)
              (local $i i32)
              (loop $spin
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $spin (i32.lt_u (local.get $i) (i32.const 1000000))))
              (call $alloc)
              (i32.const 1024)))"#;
        let module = Module::new(engine, wat::parse_str(wat).unwrap()).unwrap();
        let mut linker = Linker::new(engine);
        linker
            .func_wrap("test", "alloc", || {
                let on_worker = std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("lel-pool"));
                let buf = std::hint::black_box(vec![1u8; 64]);
                drop(buf);
                if on_worker {
                    WORKER_CALLS.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
        let mut store = Store::new(
            engine,
            HostState {
                signal: "test".into(),
                claims: None,
                state_base: 0,
                claim_error: None,
                params: Vec::new(),
                log_ring: None,
                quiet_init: false,
                limits: Default::default(),
                overrun: Default::default(),
                stop: None,
            },
        );
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let process = Process::V1(instance.get_typed_func(&mut store, "process").unwrap());
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        Box::new(Version {
            id,
            channels: 1,
            store,
            process,
            memory,
            state_base: 0,
            layout: Layout::default(),
            controls: Default::default(),
            seen_memory: (0, 0),
            globals: Vec::new(),
        })
    }

    #[test]
    fn an_allocation_on_a_worker_is_counted() {
        let mut config = Config::new();
        config.memory_may_move(false);
        let engine = Engine::new(&config).unwrap();
        assert_eq!(
            crate::rt::callback::WARM_UP_MODULE,
            wat::parse_str(r#"(module (func (export "w")))"#).unwrap(),
            "the warm-up module is the trivial one"
        );
        WarmUp::new(&engine).expect("the warm-up module compiles");
        let ctx = BlockCtx {
            frames: 128,
            clock: 0,
            out_channels: 1,
            call: CallLimits {
                cpu: Duration::from_secs(1),
                wall: Duration::from_secs(10),
            },
            fade_frames: 0,
            xfade_frames: 0,
            rollback_frames: 0,
            block_nanos: 2_666_666,
            sample_rate: 48_000,
        };
        let stats = Arc::new(Stats::default());
        let slots = (0..2).map(|i| Slot::new(i, 128, 1)).collect();
        let mut pool = Pool::new(slots, 2, Some(&engine), true, false, stats.clone(), ctx).unwrap();
        for i in 0..2 {
            let (slot, out) = pool.lane(i);
            slot.load(version(&engine, i as u64), false, false, &ctx, out);
        }
        // The audio thread (this test's thread) runs outside the guard here:
        // only the worker's allocator calls can be counted.
        // At least 50 blocks, and more until the worker took a slot (on a
        // busy machine it may not be woken in time for any of the first
        // 50: this thread then renders both slots itself).
        let start = std::time::Instant::now();
        let mut blocks = 0;
        while blocks < 50
            || (WORKER_CALLS.load(Ordering::Relaxed) == 0
                && start.elapsed() < Duration::from_secs(10))
        {
            pool.render_then(&ctx, Duration::ZERO, None);
            blocks += 1;
        }
        assert!(pool.parallel_blocks() == blocks, "every block was shared");
        // A worker publishes its count after it has said it is done with
        // the block: joined, every count is in.
        drop(pool);
        let calls = WORKER_CALLS.load(Ordering::Relaxed);
        assert!(calls > 0, "the worker rendered slots");
        assert_eq!(
            stats.violations.load(Ordering::Relaxed),
            2 * calls,
            "one allocation and one free per call on the worker, all counted"
        );
    }
}
