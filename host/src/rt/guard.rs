//! The one guard around every audio callback: flush-to-zero for denormals and
//! the check that the callback neither allocates nor frees.
//!
//! The process's allocator is [`CountingAllocator`]: the system allocator,
//! which also counts the allocator calls a thread makes inside a checked
//! scope ([`run`] with `check_alloc`). Counting is all it does there: it
//! never prints or aborts (the audio thread never writes to stderr), and the
//! mixer publishes the count to the control side ([`Stats::violations`]),
//! where the tests and `--stats` read it. Allocations made while a guest
//! traps (wasmtime builds an error value) are counted apart, as fault-path
//! allocations: expected, and measured. The allocator also keeps
//! [`AllocAccount`]s: the bytes that the threads charged to one (a module's
//! compile) hold, so that a compile can be judged by its memory.
//! Runs on the audio thread (the allocator: on every thread).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};

/// Counters shared with the control side (plain atomics, wait-free).
#[derive(Default, Debug)]
pub struct Stats {
    /// Allocations or frees on the audio thread outside the fault path.
    pub violations: AtomicU64,
    /// Allocations or frees while handling a guest fault (expected).
    pub fault_allocations: AtomicU64,
    /// Blocks rendered.
    pub blocks: AtomicU64,
    /// Late blocks: deadlines the output missed (the silent clock counts
    /// each exactly; a device's callbacks that came more than half a period
    /// late are counted as such).
    pub late_callbacks: AtomicU64,
    /// Audio time lost to late blocks (the device or clock had nothing to
    /// play), in nanoseconds.
    pub lost_nanos: AtomicU64,
    /// Retired versions the audio thread could not queue (the garbage queue
    /// was full) and leaked rather than drop on the audio thread.
    pub leaked: AtomicU64,
    /// Events lost because their queue was full.
    pub lost_events: AtomicU64,
    /// Blocks rendered by more than one thread of the pool.
    pub shared_blocks: AtomicU64,
}

/// Allocator calls seen on this thread inside checked scopes.
pub fn violation_count() -> u64 {
    VIOLATIONS.with(|c| c.get())
}

/// Run `f` as audio-thread code: denormals flushed to zero and, when
/// `check_alloc` is set (tests, `--stats`), every allocator call counted (see
/// [`violation_count`]), silently.
pub fn run<T>(check_alloc: bool, f: impl FnOnce() -> T) -> T {
    let _ftz = ScopedFtz::enable();
    let _mark = AudioThreadMark::set();
    let _check = check_alloc.then(CheckScope::enter);
    f()
}

thread_local! {
    static ON_AUDIO_THREAD: Cell<bool> = const { Cell::new(false) };
    // Plain `const` cells without destructors: reading them from inside the
    // allocator never allocates and never fails.
    static CHECKING: Cell<u32> = const { Cell::new(0) };
    static VIOLATIONS: Cell<u64> = const { Cell::new(0) };
    /// The account this thread's allocations are charged to (null: none).
    static ACCOUNT: Cell<*const AllocAccount> = const { Cell::new(std::ptr::null()) };
    /// Bytes charged on this thread and not yet added to its account.
    static PENDING: Cell<isize> = const { Cell::new(0) };
}

/// A thread adds its charges to its account in steps of at least this many
/// bytes: a compiler allocates often, and an atomic update of an account
/// shared by its threads on every allocation made compiles about a
/// millisecond slower (a small module: 1.9 ms instead of 1.4 alone). An
/// account's figures are exact to this much per thread.
const CHARGE_STEP: isize = 64 << 10;

/// Bytes held by the allocations of the threads charged to it (allocated
/// minus freed by them), and the most they held at once.
#[derive(Default, Debug)]
pub struct AllocAccount {
    live: AtomicIsize,
    peak: AtomicIsize,
}

impl AllocAccount {
    /// The most bytes the charged threads held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed).max(0) as usize
    }

    fn add(&self, delta: isize) {
        let now = self.live.fetch_add(delta, Ordering::Relaxed) + delta;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

/// While this lives, the calling thread's allocations and frees are charged
/// to an account (see [`charge_allocations`]).
pub struct Charge {
    /// Keeps the account alive while the thread's pointer to it is set.
    account: Arc<AllocAccount>,
    previous: *const AllocAccount,
}

/// Charge the calling thread's allocations and frees to `account` until the
/// returned guard is dropped (on this thread).
pub fn charge_allocations(account: &Arc<AllocAccount>) -> Charge {
    let previous = ACCOUNT.with(|c| c.replace(Arc::as_ptr(account)));
    // What is pending so far belongs to the account charged until now.
    let pending = PENDING.with(|p| p.replace(0));
    if !previous.is_null() {
        // SAFETY: a non-null pointer was set by an enclosing guard, which
        // still holds an `Arc` of its account (guards nest on a thread).
        unsafe { &*previous }.add(pending);
    }
    Charge {
        account: account.clone(),
        previous,
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        // What is pending goes to this account; then unset the pointer
        // before the account's `Arc` (a field) is released.
        let pending = PENDING.with(|p| p.replace(0));
        self.account.add(pending);
        ACCOUNT.with(|c| c.set(self.previous));
    }
}

#[inline]
fn charge(delta: isize) {
    let _ = ACCOUNT.try_with(|a| {
        let a = a.get();
        if a.is_null() {
            return;
        }
        let _ = PENDING.try_with(|p| {
            let pending = p.get() + delta;
            if pending.abs() < CHARGE_STEP {
                p.set(pending);
                return;
            }
            p.set(0);
            // SAFETY: the pointer is set only by `charge_allocations`, whose
            // guard holds an `Arc` of the account and unsets the pointer
            // before it lets go of it; so the account is alive here.
            unsafe { &*a }.add(pending);
        });
    });
}

/// Allocator calls on this thread are counted while one of these lives.
struct CheckScope;

impl CheckScope {
    fn enter() -> Self {
        CHECKING.with(|c| c.set(c.get() + 1));
        CheckScope
    }
}

impl Drop for CheckScope {
    fn drop(&mut self) {
        CHECKING.with(|c| c.set(c.get() - 1));
    }
}

#[inline]
fn note_allocator_call() {
    // `try_with`: during thread teardown the cells may be gone; then there
    // is nothing to count.
    let _ = CHECKING.try_with(|checking| {
        if checking.get() > 0 {
            let _ = VIOLATIONS.try_with(|v| v.set(v.get() + 1));
        }
    });
}

/// The process's global allocator (set in `lib.rs`): the system allocator,
/// counting calls made inside checked scopes (see [`run`]).
pub struct CountingAllocator;

// SAFETY: every method forwards to `System` with the same arguments; the
// only additions are thread-local counter and account updates (atomics),
// which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocator_call();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocator_call();
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_allocator_call();
        charge(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` (every allocation here does) with
        // this `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocator_call();
        // SAFETY: as for `dealloc`, and the caller's contract for `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            charge(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Is the calling code running inside [`run`] (audio-thread code)?
pub fn on_audio_thread() -> bool {
    ON_AUDIO_THREAD.with(|c| c.get())
}

/// Marks the thread as running audio code for its lifetime.
struct AudioThreadMark(bool);

impl AudioThreadMark {
    fn set() -> Self {
        AudioThreadMark(ON_AUDIO_THREAD.with(|c| c.replace(true)))
    }
}

impl Drop for AudioThreadMark {
    fn drop(&mut self) {
        ON_AUDIO_THREAD.with(|c| c.set(self.0));
    }
}

/// Sets the FTZ/DAZ bits of the x86 MXCSR for its lifetime (a no-op on other
/// architectures), so decaying filters never hit denormal slowdowns.
/// Scopes nest: inside one, another costs a thread-local read, not a read
/// and two writes of MXCSR (which took about 10 ns a block, `perf`), so an
/// offline render holds one scope around all its blocks
/// ([`crate::Renderer::render_into`]).
pub struct ScopedFtz {
    /// MXCSR as it was before this scope set the bits (`None`: an outer
    /// scope holds them).
    #[cfg(target_arch = "x86_64")]
    saved: Option<u32>,
}

thread_local! {
    /// An [`ScopedFtz`] on this thread holds the bits set.
    static FTZ_HELD: Cell<bool> = const { Cell::new(false) };
}

impl ScopedFtz {
    pub fn enable() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if FTZ_HELD.with(Cell::get) {
                return ScopedFtz { saved: None };
            }
            let saved = read_mxcsr();
            // FTZ (bit 15) and DAZ (bit 6).
            write_mxcsr(saved | 0x8040);
            FTZ_HELD.with(|h| h.set(true));
            ScopedFtz { saved: Some(saved) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        ScopedFtz {}
    }
}

impl Drop for ScopedFtz {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(saved) = self.saved {
            write_mxcsr(saved);
            FTZ_HELD.with(|h| h.set(false));
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut v: u32 = 0;
    // SAFETY: `stmxcsr` stores the 32-bit MXCSR register to the given valid,
    // aligned stack location; it has no other effect.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack, preserves_flags)) };
    v
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(v: u32) {
    // SAFETY: `ldmxcsr` loads MXCSR from a valid stack location; only the
    // FTZ/DAZ bits differ from the value read before, which changes how
    // denormals are rounded on this thread and nothing else.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack, readonly, preserves_flags))
    };
}

#[cfg(test)]
mod tests {
    use super::ScopedFtz;
    use std::hint::black_box;

    /// Half the smallest normal `f32`: a subnormal, or zero when results
    /// are flushed.
    fn half_of_smallest() -> f32 {
        black_box(f32::MIN_POSITIVE) * black_box(0.5)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn denormals_are_flushed_in_nested_scopes_until_the_outer_one_ends() {
        assert!(half_of_smallest() > 0.0, "subnormals before any scope");
        let outer = ScopedFtz::enable();
        assert_eq!(half_of_smallest(), 0.0, "flushed in a scope");
        {
            let _inner = ScopedFtz::enable();
            assert_eq!(half_of_smallest(), 0.0, "flushed in the inner scope");
        }
        assert_eq!(
            half_of_smallest(),
            0.0,
            "still flushed after the inner scope ended"
        );
        drop(outer);
        assert!(
            half_of_smallest() > 0.0,
            "subnormals again after the outer scope"
        );
        let again = ScopedFtz::enable();
        assert_eq!(half_of_smallest(), 0.0, "a new scope sets the bits again");
        drop(again);
        assert!(half_of_smallest() > 0.0);
    }
}
