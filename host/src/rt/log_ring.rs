//! Fixed-size log lines a guest sends from `process`: pushed on the audio
//! thread into a bounded wait-free ring (no allocation), drained and printed
//! by a control thread.

/// Longest message kept; longer ones are cut.
pub const LOG_LINE_BYTES: usize = 120;

#[derive(Clone, Copy)]
pub struct LogLine {
    pub level: i32,
    len: u8,
    bytes: [u8; LOG_LINE_BYTES],
}

impl LogLine {
    pub fn new(level: i32, text: &[u8]) -> Self {
        let len = text.len().min(LOG_LINE_BYTES);
        let mut bytes = [0; LOG_LINE_BYTES];
        bytes[..len].copy_from_slice(&text[..len]);
        LogLine {
            level,
            len: len as u8,
            bytes,
        }
    }

    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes[..self.len as usize])
    }
}

pub type LogProducer = rtrb::Producer<LogLine>;
pub type LogConsumer = rtrb::Consumer<LogLine>;

/// A ring for one loaded version.
pub fn ring() -> (LogProducer, LogConsumer) {
    rtrb::RingBuffer::new(64)
}
