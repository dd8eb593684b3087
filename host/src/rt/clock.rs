//! The monotonic clock of every call budget, CPU meter and watchdog
//! judgement ([`now_ns`]). Each guest call reads it twice (its start, and
//! its length for the meters), so with hundreds of small signals its cost
//! is a share of the per-signal overhead.
//!
//! It is `CLOCK_MONOTONIC_RAW` until the watchdog thread has calibrated
//! the CPU's time-stamp counter against it, and from then on the counter
//! read directly (`rdtsc`) and scaled: measured on the development machine,
//! 8 ns per read instead of 20 ns through the vDSO. The counter is used
//! only where the kernel itself uses it as its clock source (so it runs at
//! a constant rate, in every power state, in step on every CPU) and the CPU
//! says its counter is invariant; elsewhere the clock stays the system
//! call's. Calibration takes no thread's time: the watchdog notes a pair of
//! readings when it starts and a second pair [`CALIBRATION`] later, and the
//! clock continues from the system clock's value at that moment. Its rate
//! is then the system clock's within a few parts per million (two clock
//! reads' uncertainty over [`CALIBRATION`]); [`upper_bound_of`] adds that
//! margin (and more) where a bound must not be exceeded.
//!
//! Read on every thread, the audio thread included ([`now_ns`]: atomics and
//! one counter read); calibrated on the watchdog thread
//! ([`Calibration::step`], which reads a file once).

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long the watchdog counts time-stamp counter ticks against the
/// system clock before the clock switches to the counter.
pub const CALIBRATION: Duration = Duration::from_millis(50);

/// Nanoseconds per counter tick, in 32.32 fixed point (0: not calibrated,
/// the system clock is read).
static SCALE: AtomicU64 = AtomicU64::new(0);
/// The counter and the system clock at the same moment (written before
/// `SCALE`, read after it).
static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static BASE_NS: AtomicU64 = AtomicU64::new(0);

/// Monotonic time in nanoseconds (the same timebase on every thread). No
/// system call, no lock; wait-free. Read directly, two per guest call,
/// where `Instant::elapsed` added a checked subtraction and a 128-bit
/// conversion to each.
#[inline]
pub fn now_ns() -> u64 {
    let scale = SCALE.load(Ordering::Acquire);
    if scale != 0 {
        let ticks = read_tsc().wrapping_sub(BASE_TSC.load(Ordering::Relaxed));
        let ns = ((u128::from(ticks) * u128::from(scale)) >> 32) as u64;
        return BASE_NS.load(Ordering::Relaxed).wrapping_add(ns);
    }
    system_ns()
}

/// Is [`now_ns`] reading the time-stamp counter?
pub fn counter_in_use() -> bool {
    SCALE.load(Ordering::Acquire) != 0
}

/// An upper bound of the time `ns` of [`now_ns`]'s clock stands for: the
/// calibrated counter's rate may be off by a few parts per million, and a
/// pair of readings taken as the clock switched over by a few clock reads.
#[inline]
pub fn upper_bound_of(ns: u64) -> u64 {
    ns.saturating_add(ns >> 12).saturating_add(2_000)
}

/// `CLOCK_MONOTONIC_RAW` (the vDSO: no system call). Raw, not
/// `CLOCK_MONOTONIC` (which `Instant` reads): that one is slewed by NTP, a
/// few parts per million slower or faster than the threads' CPU clocks,
/// and a CPU time bound computed from wall time (`cpu::call_start`) came
/// out 25 ns short of the real CPU time once.
pub fn system_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC_RAW).unwrap_or(0)
}

/// The clock `clock` in nanoseconds (a thread's CPU clock is a real system
/// call; `None` for the clock of a thread that has exited).
pub fn read(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; a clock id of a thread that
    // has exited makes the call fail (EINVAL), which is handled.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_tsc() -> u64 {
    // SAFETY: `rdtsc` exists on every x86-64 CPU and reads a counter; it is
    // only reached once `usable` found the counter invariant and the
    // kernel's clock source.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn read_tsc() -> u64 {
    0
}

/// Can the counter stand in for the system clock here? Reads a file: off
/// the audio thread (the watchdog, once).
fn usable() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("LEL_SYSTEM_CLOCK").is_some() {
            return false;
        }
        // Leaf 0x80000000 gives the highest extended leaf; 0x80000007 is
        // read only if present (EDX bit 8: the invariant counter).
        use core::arch::x86_64::__cpuid;
        let invariant =
            __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
        let source = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .unwrap_or_default();
        invariant && source.trim() == "tsc"
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The watchdog's calibration, a step each time it wakes.
#[derive(Default)]
pub struct Calibration {
    state: State,
}

#[derive(Default)]
enum State {
    #[default]
    Unstarted,
    /// The first pair of readings (system clock, counter).
    Counting {
        ns: u64,
        tsc: u64,
    },
    Done,
}

impl Calibration {
    /// Take a step: the first pair of readings, then (once [`CALIBRATION`]
    /// has passed) the second, and switch [`now_ns`] to the counter.
    pub fn step(&mut self) {
        match self.state {
            State::Unstarted => {
                self.state = if usable() {
                    let (ns, tsc) = pair();
                    State::Counting { ns, tsc }
                } else {
                    State::Done
                };
            }
            State::Counting { ns, tsc } => {
                let (now, now_tsc) = pair();
                let span = now.saturating_sub(ns);
                if span < CALIBRATION.as_nanos() as u64 {
                    return;
                }
                let ticks = now_tsc.wrapping_sub(tsc);
                if ticks > 0 && ticks < u64::MAX / 2 {
                    let scale = ((u128::from(span) << 32) / u128::from(ticks)) as u64;
                    // Once per process: a second calibration (a test's) does
                    // not move the clock under threads reading it.
                    static PUBLISHED: Once = Once::new();
                    PUBLISHED.call_once(|| {
                        BASE_TSC.store(now_tsc, Ordering::Relaxed);
                        BASE_NS.store(now, Ordering::Relaxed);
                        SCALE.store(scale.max(1), Ordering::Release);
                    });
                }
                self.state = State::Done;
            }
            State::Done => {}
        }
    }
}

/// The system clock and the counter, read as close together as can be: the
/// tightest of a few tries (the counter read on both sides of the clock).
fn pair() -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..16 {
        let a = read_tsc();
        let ns = system_ns();
        let b = read_tsc();
        let width = b.wrapping_sub(a);
        if width < best.0 {
            best = (width, ns, a + width / 2);
        }
    }
    (best.1, best.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Once calibrated (where the counter is usable), the clock keeps the
    /// system clock's time: within microseconds at once, and at its rate.
    #[test]
    fn the_counter_clock_keeps_the_system_clocks_time() {
        let mut c = Calibration::default();
        let t = Instant::now();
        c.step();
        while !matches!(c.state, State::Done) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
            c.step();
        }
        assert!(matches!(c.state, State::Done), "calibration never ended");
        if !usable() {
            assert!(!counter_in_use());
            eprintln!("the time-stamp counter is not usable here: the system clock is read");
            return;
        }
        assert!(counter_in_use());
        for pause in [0u64, 20, 200] {
            std::thread::sleep(Duration::from_millis(pause));
            let (a, b) = (system_ns(), now_ns());
            let apart = a.abs_diff(b);
            assert!(
                apart < 20_000,
                "after {pause} ms: the counter clock is {apart} ns from the system clock"
            );
        }
        // Monotonic over many reads.
        let mut last = now_ns();
        for _ in 0..1_000_000 {
            let n = now_ns();
            assert!(n >= last, "went back from {last} to {n}");
            last = n;
        }
    }
}
