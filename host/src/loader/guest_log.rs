//! Guest log lines, rate-limited per signal: at most [`LINES_PER_SECOND`]
//! lines of one signal are printed in any one-second window; the rest are
//! counted and summarised once the window ends (`bass: 3,412 log lines
//! dropped in the last second`), so a module that logs in a loop cannot
//! flood the terminal or slow the host down.
//! Used on loader threads (lines logged during `init`) and on the control
//! thread (lines from `process`, drained from each version's ring); never on
//! the audio thread.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Most lines of one signal printed per second.
pub const LINES_PER_SECOND: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);

/// One signal's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    printed: u32,
    dropped: u64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            start: now,
            printed: 0,
            dropped: 0,
        }
    }

    /// If the window is over, start the next one; returns the lines the
    /// ended window dropped (to be summarised), if any.
    fn roll(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.start) < WINDOW {
            return None;
        }
        let dropped = self.dropped;
        *self = Window::new(now);
        (dropped > 0).then_some(dropped)
    }

    /// May a line be printed now? Counts it as dropped if not.
    fn admit(&mut self) -> bool {
        if self.printed < LINES_PER_SECOND {
            self.printed += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

/// The per-signal windows of one engine.
#[derive(Debug, Default)]
pub struct GuestLog {
    windows: Mutex<HashMap<String, Window>>,
    /// Some window has dropped lines to summarise when it ends: until then
    /// [`GuestLog::flush`], called after every block when rendering
    /// offline, has nothing to do and takes no lock and reads no clock.
    dropping: AtomicBool,
}

impl GuestLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Print a guest's line (tagged with its signal) unless the signal is
    /// over its rate; then count it.
    pub fn line(&self, signal: &str, level: i32, text: &str) {
        let admitted = self.with_window(signal, Window::admit);
        if admitted {
            emit(signal, level, text);
        }
    }

    /// Count `n` lines of `signal` lost before they reached this log (the
    /// audio thread's ring was full).
    pub fn dropped(&self, signal: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.with_window(signal, |w| w.dropped += n);
    }

    /// Run `f` on the signal's current window, after summarising the one
    /// that ended (if any).
    fn with_window<T>(&self, signal: &str, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let w = windows
            .entry(signal.to_string())
            .or_insert_with(|| Window::new(now));
        if let Some(n) = w.roll(now) {
            summary(signal, n);
        }
        let result = f(w);
        if w.dropped > 0 {
            // Under the lock: `flush` cannot clear it before it is set.
            self.dropping.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Summarise the windows that ended (call regularly).
    pub fn flush(&self) {
        if !self.dropping.load(Ordering::Relaxed) {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (signal, w) in windows.iter_mut() {
            if let Some(n) = w.roll(now) {
                summary(signal, n);
            }
        }
        self.dropping
            .store(windows.values().any(|w| w.dropped > 0), Ordering::Relaxed);
    }

    /// Summarise every window now, ended or not (at exit).
    pub fn finish(&self) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for (signal, w) in windows.iter_mut() {
            if w.dropped > 0 {
                summary(signal, w.dropped);
                w.dropped = 0;
            }
        }
    }
}

impl Drop for GuestLog {
    fn drop(&mut self) {
        self.finish();
    }
}

fn summary(signal: &str, dropped: u64) {
    let lines = if dropped == 1 { "line" } else { "lines" };
    tracing::warn!(
        "{signal}: {} log {lines} dropped in the last second",
        thousands(dropped)
    );
}

/// Route a guest's log line to `tracing`, tagged with the signal's name.
/// Levels are those of `wit/constants.txt`; above debug is trace.
fn emit(signal: &str, level: i32, text: &str) {
    use crate::rt::consts::{LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_WARN};
    match level {
        i32::MIN..=LOG_ERROR => tracing::error!("{signal}: {text}"),
        LOG_WARN => tracing::warn!("{signal}: {text}"),
        LOG_INFO => tracing::info!("{signal}: {text}"),
        LOG_DEBUG => tracing::debug!("{signal}: {text}"),
        _ => tracing::trace!("{signal}: {text}"),
    }
}

/// `3412` -> `3,412`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_share_then_counts_and_summarises_once_it_ends() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        let admitted = (0..5_000).filter(|_| w.admit()).count();
        assert_eq!(admitted, LINES_PER_SECOND as usize);
        assert_eq!(
            w.roll(t0 + Duration::from_millis(999)),
            None,
            "not over yet"
        );
        assert_eq!(
            w.roll(t0 + Duration::from_millis(1_000)),
            Some(5_000 - LINES_PER_SECOND as u64)
        );
        assert!(w.admit(), "a new window prints again");
        assert_eq!(
            w.roll(t0 + Duration::from_millis(2_500)),
            None,
            "nothing dropped"
        );
    }

    #[test]
    fn counts_read_with_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3_412), "3,412");
        assert_eq!(thousands(73_000), "73,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
