//! The one guard around every audio callback: flush-to-zero for denormals and
//! the `assert_no_alloc` check that the callback neither allocates nor frees.
//!
//! `assert_no_alloc` runs here in counting mode in every build (debug and
//! release): a violation on the audio thread increments a thread-local
//! counter instead of aborting the show, and the mixer publishes it to the
//! control side ([`Stats::violations`]), where the tests assert it is zero.
//! Allocations made while a guest traps (wasmtime builds an error value) are
//! counted apart, as fault-path allocations: expected, and measured.

use std::sync::atomic::AtomicU64;

/// Counters shared with the control side (plain atomics, wait-free).
#[derive(Default, Debug)]
pub struct Stats {
    /// Allocations or frees on the audio thread outside the fault path.
    pub violations: AtomicU64,
    /// Allocations or frees while handling a guest fault (expected).
    pub fault_allocations: AtomicU64,
    /// Blocks rendered.
    pub blocks: AtomicU64,
    /// Callbacks that came later than one buffer period after the previous.
    pub late_callbacks: AtomicU64,
    /// Retired versions the audio thread could not queue (the garbage queue
    /// was full) and leaked rather than drop on the audio thread.
    pub leaked: AtomicU64,
    /// Events lost because their queue was full.
    pub lost_events: AtomicU64,
}

/// Allocator calls seen on this thread inside `assert_no_alloc` scopes.
pub fn violation_count() -> u64 {
    assert_no_alloc::violation_count() as u64
}

/// Run `f` as audio-thread code: denormals flushed to zero and, when
/// `check_alloc` is set, every allocator call counted (see
/// [`violation_count`]). The check is off by default in the binary: the
/// counting mode prints a line to stderr when it fires, which only tests and
/// `--check-alloc` runs want.
pub fn run<T>(check_alloc: bool, f: impl FnOnce() -> T) -> T {
    let _ftz = ScopedFtz::enable();
    let _mark = AudioThreadMark::set();
    if check_alloc {
        assert_no_alloc::assert_no_alloc(f)
    } else {
        f()
    }
}

thread_local! {
    static ON_AUDIO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
pub struct ScopedFtz {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl ScopedFtz {
    pub fn enable() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            // FTZ (bit 15) and DAZ (bit 6).
            write_mxcsr(saved | 0x8040);
            ScopedFtz { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        ScopedFtz {}
    }
}

impl Drop for ScopedFtz {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
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
