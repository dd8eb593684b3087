//! Real-time scheduling for the threads that must never wait: the audio
//! callback's thread, the silent clock and the CPU-clock watchdog ask
//! for SCHED_FIFO (the watchdog one step above the audio threads, so it can
//! always stop a runaway); compile, load and control threads stay at normal priority or
//! lower ([`background`]). Called once per thread, outside the real-time
//! path. When the system refuses, nothing fails: the refusal is noted and
//! [`take_refusal`] gives the control side one line saying what to do.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Who asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A thread that renders audio (the device callback, the silent clock,
    /// render workers).
    Audio,
    /// The CPU-clock watchdog (which stops runaway calls): above the audio
    /// threads.
    Ticker,
}

/// SCHED_FIFO priorities asked for (1..99; JACK and PipeWire use similar).
const AUDIO_PRIORITY: i32 = 70;
const TICKER_PRIORITY: i32 = 75;
/// `SCHED_RESET_ON_FORK`: threads these threads start do not inherit the
/// real-time policy.
const RESET_ON_FORK: i32 = 0x4000_0000;

static REFUSED: AtomicI32 = AtomicI32::new(0);
/// A thread that renders audio runs at real-time priority in this process.
static AUDIO_REALTIME: AtomicBool = AtomicBool::new(false);
static REPORTED: AtomicBool = AtomicBool::new(false);
static WHO: Mutex<Option<Role>> = Mutex::new(None);

thread_local! {
    static PROMOTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Ask for real-time (SCHED_FIFO) priority for the calling thread. Returns
/// whether it was granted. Idempotent per thread; may take a lock and make
/// system calls, so call it once before a thread's real-time work.
pub fn promote(role: Role) -> bool {
    if PROMOTED.with(|p| p.get()) {
        return true;
    }
    let wanted = match role {
        Role::Audio => AUDIO_PRIORITY,
        Role::Ticker => TICKER_PRIORITY,
    };
    let result = set_fifo(wanted).or_else(|err| {
        // A non-root user may be allowed up to RLIMIT_RTPRIO: stay within it,
        // keeping the watchdog above the audio threads.
        let limit = rtprio_limit();
        let capped = match role {
            Role::Audio => limit - 1,
            Role::Ticker => limit,
        };
        if capped >= 1 && capped < wanted {
            set_fifo(capped)
        } else {
            Err(err)
        }
    });
    match result {
        Ok(()) => {
            PROMOTED.with(|p| p.set(true));
            if role == Role::Audio {
                AUDIO_REALTIME.store(true, Ordering::Relaxed);
            }
            true
        }
        Err(errno) => {
            REFUSED.store(errno, Ordering::Relaxed);
            if let Ok(mut who) = WHO.lock() {
                who.get_or_insert(role);
            }
            false
        }
    }
}

fn set_fifo(priority: i32) -> Result<(), i32> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | RESET_ON_FORK, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EPERM))
    }
}

fn rtprio_limit() -> i32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur.min(99) as i32
}

/// Lower the calling thread's priority (nice 5): for compile, load and file
/// threads, so they never compete with playback. Idempotent enough to call
/// at the start of every job. Not when a thread that renders audio already
/// runs at real-time priority: no normal thread can take the CPU from it
/// then, and a compile at nice 5 on a busy machine waited behind every
/// other process (a small module's compile took 4 ms instead of 2.5, most of
/// a save's way to sound).
pub fn background() {
    if audio_is_realtime() {
        return;
    }
    // SAFETY: `gettid` has no preconditions; setpriority on our own thread id
    // only changes this thread's nice value (an error is harmless).
    unsafe {
        let tid = libc::gettid();
        if libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) < 5 {
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 5);
        }
    }
}

/// A thread that renders audio was granted real-time priority.
pub fn audio_is_realtime() -> bool {
    AUDIO_REALTIME.load(Ordering::Relaxed)
}

/// The policy of the calling thread is SCHED_FIFO.
pub fn is_realtime() -> bool {
    // SAFETY: no preconditions; 0 is the calling thread.
    unsafe { libc::sched_getscheduler(0) & !RESET_ON_FORK == libc::SCHED_FIFO }
}

/// The first refusal, once per process, as the line to print: what was
/// refused, why, and what the user can do. `None` when nothing was refused
/// or it was reported already.
pub fn take_refusal() -> Option<String> {
    let errno = REFUSED.load(Ordering::Relaxed);
    if errno == 0 || REPORTED.swap(true, Ordering::Relaxed) {
        return None;
    }
    let who = match WHO.lock().ok().and_then(|w| *w) {
        Some(Role::Ticker) => "the CPU-clock watchdog",
        _ => "the audio thread",
    };
    Some(refusal_message(who, errno))
}

fn refusal_message(who: &str, errno: i32) -> String {
    let why = std::io::Error::from_raw_os_error(errno);
    format!(
        "real-time priority was refused for {who} ({why}): playing at normal priority, so blocks may come late while the machine is busy. \
         To allow it: raise the limit (`ulimit -r 95` in the shell that starts lel-host, as root), or add `@audio - rtprio 95` to \
         /etc/security/limits.d/audio.conf and your user to the `audio` group (log in again), or let rtkit grant it"
    )
}
