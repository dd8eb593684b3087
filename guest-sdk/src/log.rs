//! Logging to the host (`log` import): a message tagged with the signal's
//! name, at levels 0 error .. 4 trace. Natively (tests) messages are dropped.

use crate::contract;

/// Log levels of the contract (`wit/constants.txt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    /// 0
    Error = contract::LOG_ERROR,
    /// 1
    Warn = contract::LOG_WARN,
    /// 2
    Info = contract::LOG_INFO,
    /// 3
    Debug = contract::LOG_DEBUG,
    /// 4
    Trace = contract::LOG_TRACE,
}

/// Sends `msg` to the host's log. From `process`, messages go through a
/// bounded queue and may be dropped under load.
pub fn log(level: Level, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `msg.len()` bytes at `msg.as_ptr()`, a live
    // UTF-8 slice in this module's memory.
    unsafe {
        contract::host::log(level as i32, msg.as_ptr() as usize as i32, msg.len() as i32);
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, msg);
}

/// `log(Level::Error, msg)`.
pub fn error(msg: &str) {
    log(Level::Error, msg);
}

/// `log(Level::Warn, msg)`.
pub fn warn(msg: &str) {
    log(Level::Warn, msg);
}

/// `log(Level::Info, msg)`.
pub fn info(msg: &str) {
    log(Level::Info, msg);
}

/// `log(Level::Debug, msg)`.
pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// `log(Level::Trace, msg)`.
pub fn trace(msg: &str) {
    log(Level::Trace, msg);
}

/// A short message assembled without `core::fmt` (which would add kilobytes
/// to a module): text and integers appended into a fixed buffer, the excess
/// cut off.
///
/// ```
/// use lel::log::{Level, Line};
/// let mut line = Line::new();
/// line.text(b"voices: ").int(3);
/// assert_eq!(line.as_str(), "voices: 3");
/// line.send(Level::Info);
/// ```
pub struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl Line {
    /// An empty message.
    pub const fn new() -> Self {
        Line {
            buf: [0; 192],
            len: 0,
        }
    }

    /// Appends text (bytes; non-ASCII bytes are replaced by `?`).
    #[inline(never)]
    pub fn text(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            if self.len == self.buf.len() {
                break;
            }
            self.buf[self.len] = if b.is_ascii() { b } else { b'?' };
            self.len += 1;
        }
        self
    }

    /// Appends a decimal integer.
    pub fn int(&mut self, v: i64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut u = v.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (u % 10) as u8;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        if v < 0 {
            self.text(b"-");
        }
        self.text(&digits[i..])
    }

    /// The message so far.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes were written.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Sends the message at `level`.
    pub fn send(&self, level: Level) {
        log(level, self.as_str());
    }
}
