//! State keys: automatic `type#index` keys counted per helper type in call
//! order, explicit names, and the build session that resets the counters.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The longest key the contract allows, in bytes.
pub const MAX_KEY_LEN: usize = crate::contract::MAX_KEY_LEN;

/// Helper types with automatic keys, in the order of [`COUNTERS`].
const KINDS: [&str; 9] = [
    "osc", "noise", "lowpass", "highpass", "biquad", "tremolo", "delay", "env", "poly",
];

static COUNTERS: [AtomicU32; KINDS.len()] = [const { AtomicU32::new(0) }; KINDS.len()];

/// The key a stateful helper claims its block under.
///
/// Created when the helper is called: `osc(440)` takes the next `osc` index,
/// so the `n`-th oscillator called while building the signal is `osc#n`.
/// [`Key::named`] replaces the key with a fixed name (the index stays taken,
/// so naming a helper never renumbers the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    kind: &'static str,
    index: u32,
    name: Option<&'static str>,
}

impl Key {
    /// The next automatic key of helper type `kind` (one of the SDK's
    /// helper types: `osc`, `noise`, `lowpass`, `highpass`, `biquad`,
    /// `tremolo`, `delay`, `env`).
    pub(crate) fn auto(kind: &'static str) -> Key {
        let slot = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        let index = COUNTERS[slot].fetch_add(1, Ordering::Relaxed);
        Key {
            kind,
            index,
            name: None,
        }
    }

    /// A fixed key, for a block not counted per type (the user slots).
    pub(crate) const fn fixed(name: &'static str) -> Key {
        Key {
            kind: name,
            index: 0,
            name: Some(name),
        }
    }

    /// This key renamed to `name`.
    pub fn named(self, name: &'static str) -> Key {
        Key {
            name: Some(name),
            ..self
        }
    }

    /// The helper type (`"osc"`, `"lowpass"`, ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Writes the key's bytes into `buf` (`name`, or `kind#index`) and
    /// returns them. A name longer than `buf` comes back truncated: the
    /// claimer sees a 257-byte key and rejects it as too long.
    pub fn write<'b>(&self, buf: &'b mut KeyBuf) -> &'b [u8] {
        buf.len = 0;
        match self.name {
            Some(n) => buf.push(n.as_bytes()),
            None => {
                buf.push(self.kind.as_bytes());
                buf.push(b"#");
                let mut digits = [0u8; 10];
                let mut i = digits.len();
                let mut v = self.index;
                loop {
                    i -= 1;
                    digits[i] = b'0' + (v % 10) as u8;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                buf.push(&digits[i..]);
            }
        }
        buf.as_bytes()
    }
}

/// A key's bytes: room for one byte more than the longest valid key.
#[derive(Clone, Copy)]
pub struct KeyBuf {
    bytes: [u8; MAX_KEY_LEN + 1],
    len: usize,
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf {
            bytes: [0; MAX_KEY_LEN + 1],
            len: 0,
        }
    }
}

impl KeyBuf {
    pub(crate) fn push(&mut self, s: &[u8]) {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

static SESSION: AtomicBool = AtomicBool::new(false);

/// A build session: building and binding one signal. Holding it serialises
/// builds (native tests build signals on many threads; wasm has one) and
/// starts every helper type's counter at 0.
pub(crate) struct Session(());

impl Session {
    /// Waits for any other build to finish, then resets the counters.
    pub(crate) fn begin() -> Session {
        while SESSION
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        for c in &COUNTERS {
            c.store(0, Ordering::Relaxed);
        }
        Session(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        SESSION.store(false, Ordering::Release);
    }
}
