//! Parameters and events of `lel:signal@0.2.0` on the audio side: each
//! version's parameter cells (where the host writes the value in force at a
//! block's first frame), the 16-byte events written into a version's event
//! buffer before each `process` call, and the backlog of events that did
//! not fit (delivered in the next blocks at frame 0). Also the checks of a
//! `param` declaration, shared with the loader (which calls them during
//! `init`). The per-block functions run on the audio thread or a pool
//! worker and never allocate.

use super::consts;
use super::layout::{ClaimCode, ClaimError};
use super::messages::{EventKind, NoteEvent};

/// Most parameters one version may declare.
pub const MAX_PARAMS: usize = consts::MAX_PARAMS as usize;
/// Longest parameter key, in bytes.
pub const MAX_PARAM_KEY_LEN: usize = consts::MAX_PARAM_KEY_LEN as usize;
/// Longest unit, in bytes.
pub const MAX_UNIT_LEN: usize = consts::MAX_UNIT_LEN as usize;
/// Bytes of one event in a guest's event buffer.
pub const EVENT_BYTES: u32 = consts::EVENT_BYTES;
/// Events a version keeps for later blocks when its event buffer is full
/// (beyond them, the newest are dropped and counted).
pub const BACKLOG_EVENTS: usize = 1024;
/// Marks a cell whose parameter has no signal-wide id yet.
pub const NO_ID: u32 = u32::MAX;

/// One parameter as a version's `init` declared it (loader side).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub key: Box<str>,
    pub default: f32,
    pub min: f32,
    pub max: f32,
    pub unit: Box<str>,
    /// 0: continuous; N >= 2: N values from `min` to `max`.
    pub steps: u32,
    /// Offset of its cell in the state region.
    pub offset: u32,
}

/// Is `key` a valid parameter key (1 to 64 bytes of ASCII letters, digits,
/// `_`, `-`, `.`)?
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= MAX_PARAM_KEY_LEN
        && key
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// Check a `param` declaration (everything but placing its cell): the
/// `count` parameters declared before it in this `init`. Loader side (the
/// messages allocate). Returns the key and unit as text.
pub fn check_decl(
    key: &[u8],
    default: f32,
    min: f32,
    max: f32,
    unit: &[u8],
    steps: u32,
    count: usize,
) -> Result<(String, String), ClaimError> {
    let err = |code, message: String| Err(ClaimError { code, message });
    let shown = String::from_utf8_lossy(&key[..key.len().min(MAX_PARAM_KEY_LEN + 8)]).into_owned();
    if !valid_key(key) {
        let why = if key.is_empty() {
            "is empty".to_string()
        } else if key.len() > MAX_PARAM_KEY_LEN {
            format!("is {} bytes, the limit is {MAX_PARAM_KEY_LEN}", key.len())
        } else {
            "has a character other than an ASCII letter, digit, `_`, `-` or `.` (it appears in OSC addresses)".to_string()
        };
        return err(ClaimCode::BadKey, format!("param key {shown:?} {why}"));
    }
    let key = shown;
    let Ok(unit) = std::str::from_utf8(unit) else {
        return err(
            ClaimCode::BadUnit,
            format!("param \"{key}\": its unit is not valid UTF-8"),
        );
    };
    if unit.len() > MAX_UNIT_LEN {
        return err(
            ClaimCode::BadUnit,
            format!(
                "param \"{key}\": its unit {unit:?} is {} bytes, the limit is {MAX_UNIT_LEN}",
                unit.len()
            ),
        );
    }
    let range_err = |why: String| {
        err(
            ClaimCode::BadRange,
            format!(
                "param \"{key}\" (default {default}, min {min}, max {max}, steps {steps}): {why}"
            ),
        )
    };
    if !(default.is_finite() && min.is_finite() && max.is_finite()) {
        return range_err("default, min and max must be finite numbers".into());
    }
    if min >= max {
        return range_err("min must be below max".into());
    }
    if default < min || default > max {
        return range_err("the default lies outside min..max".into());
    }
    if steps == 1 {
        return range_err(
            "1 step is not a parameter (0: continuous, 2 or more: that many values)".into(),
        );
    }
    if count >= MAX_PARAMS {
        return err(
            ClaimCode::TooManyParams,
            format!(
                "param \"{key}\" is one more than the {MAX_PARAMS} parameters a version may declare"
            ),
        );
    }
    Ok((key, unit.to_string()))
}

/// `value` clamped to `min..=max` and snapped to the nearest of `steps`
/// evenly spaced values (`steps` < 2: continuous).
#[inline]
pub fn snap(value: f32, min: f32, max: f32, steps: u32) -> f32 {
    let v = if value.is_nan() {
        min
    } else {
        value.clamp(min, max)
    };
    if steps < 2 {
        return v;
    }
    let n = (steps - 1) as f32;
    let k = ((v - min) / (max - min) * n).round();
    (min + (max - min) * (k / n)).clamp(min, max)
}

/// A version's parameter as the audio thread keeps it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamCell {
    /// The signal-wide id of its key (given by the control side; stable
    /// across the signal's versions), [`NO_ID`] until then.
    pub id: u32,
    /// Address of its `f32` cell in the module's memory.
    pub addr: u32,
    pub min: f32,
    pub max: f32,
    pub steps: u32,
    /// The value in force (written to the cell before each block).
    pub value: f32,
    /// Set by the player (kept across reloads), or still the default.
    pub user_set: bool,
}

/// What a slot is given to deliver in one block: an event due in it, at
/// `offset` frames from the block's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockEvent {
    pub offset: u32,
    pub what: Delivery,
}

/// A parameter change (by the signal-wide id of its key) or a note or
/// controller event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Delivery {
    Param { id: u32, value: f32 },
    Note(NoteEvent),
}

/// One event as the guest reads it (see `process` in `wit/lel.wit`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuestEvent {
    pub frame: u32,
    pub kind: u8,
    pub channel: u8,
    pub number: u16,
    pub value: f32,
}

impl GuestEvent {
    pub fn from_note(frame: u32, n: &NoteEvent) -> Self {
        GuestEvent {
            frame,
            kind: n.kind as u8,
            channel: n.channel,
            number: n.number,
            value: n.value,
        }
    }

    fn param(frame: u32, index: usize, value: f32) -> Self {
        GuestEvent {
            frame,
            kind: EventKind::Param as u8,
            channel: 0,
            number: index as u16,
            value,
        }
    }

    /// The 16 little-endian bytes the guest reads.
    #[inline]
    pub fn bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.frame.to_le_bytes());
        b[4] = self.kind;
        b[5] = self.channel;
        b[6..8].copy_from_slice(&self.number.to_le_bytes());
        b[8..12].copy_from_slice(&self.value.to_le_bytes());
        b
    }
}

/// A version's parameters, event buffer and backlog.
#[derive(Debug, Default)]
pub struct Controls {
    pub cells: Box<[ParamCell]>,
    /// The event buffer: address and capacity in events (`None`: the
    /// module takes no events).
    pub buffer: Option<(u32, u32)>,
    /// Events that did not fit in the buffer, for the next blocks (frame 0),
    /// allocated once with room for [`BACKLOG_EVENTS`] when there is a buffer.
    pub backlog: std::collections::VecDeque<GuestEvent>,
    /// Events dropped because the backlog was full.
    pub dropped: u64,
    /// How many of those were reported.
    pub dropped_reported: u64,
    /// The clock of the last block whose events this version was given.
    pub fed_at: Option<u64>,
}

impl Controls {
    /// Controls for the given cells and buffer; the backlog is allocated
    /// here (loader side), never later.
    pub fn new(cells: Box<[ParamCell]>, buffer: Option<(u32, u32)>) -> Self {
        let backlog = if buffer.is_some() {
            std::collections::VecDeque::with_capacity(BACKLOG_EVENTS)
        } else {
            std::collections::VecDeque::new()
        };
        Controls {
            cells,
            buffer,
            backlog,
            dropped: 0,
            dropped_reported: 0,
            fed_at: None,
        }
    }

    /// Apply this block's parameter changes to the values (for a version
    /// that is not rendered this block: a rollback target, or a version
    /// that took over in its middle).
    pub fn follow(&mut self, events: &[BlockEvent]) {
        for e in events {
            if let Delivery::Param { id, value } = e.what
                && let Some(c) = self.cells.iter_mut().find(|c| c.id == id)
            {
                c.value = snap(value, c.min, c.max, c.steps);
                c.user_set = true;
            }
        }
    }

    /// Before a `process` call at `clock`: write every cell's value (the
    /// value at the block's first frame) and this block's events, after the
    /// backlog, into `memory`; then apply the changes to the values. Returns
    /// how many events were written.
    pub fn feed(&mut self, memory: &mut [u8], clock: u64, events: &[BlockEvent]) -> u32 {
        self.fed_at = Some(clock);
        for c in self.cells.iter() {
            let a = c.addr as usize;
            if let Some(cell) = memory.get_mut(a..a + 4) {
                cell.copy_from_slice(&c.value.to_le_bytes());
            }
        }
        let Some((ptr, capacity)) = self.buffer else {
            self.follow(events);
            return 0;
        };
        let mut n = 0u32;
        let write = |memory: &mut [u8], n: &mut u32, e: GuestEvent| {
            let at = ptr as usize + *n as usize * EVENT_BYTES as usize;
            if let Some(slot) = memory.get_mut(at..at + EVENT_BYTES as usize) {
                slot.copy_from_slice(&e.bytes());
            }
            *n += 1;
        };
        while n < capacity {
            let Some(mut e) = self.backlog.pop_front() else {
                break;
            };
            e.frame = 0;
            write(memory, &mut n, e);
        }
        for e in events {
            let g = match e.what {
                Delivery::Param { id, value } => {
                    let Some(i) = self.cells.iter().position(|c| c.id == id) else {
                        continue;
                    };
                    let c = &mut self.cells[i];
                    c.value = snap(value, c.min, c.max, c.steps);
                    c.user_set = true;
                    GuestEvent::param(e.offset, i, c.value)
                }
                Delivery::Note(note) => GuestEvent::from_note(e.offset, &note),
            };
            if n < capacity && self.backlog.is_empty() {
                write(memory, &mut n, g);
            } else if self.backlog.len() < self.backlog.capacity() {
                // Within capacity: never reallocates.
                self.backlog.push_back(GuestEvent { frame: 0, ..g });
            } else {
                self.dropped += 1;
            }
        }
        n
    }

    /// A new version takes over from `old`: values the player set there
    /// (by signal-wide id) come along, clamped and snapped to this
    /// version's ranges; the others keep what the control side gave.
    pub fn take_values_from(&mut self, old: &Controls) {
        for c in self.cells.iter_mut() {
            if let Some(o) = old.cells.iter().find(|o| o.id == c.id && o.user_set) {
                c.value = snap(o.value, c.min, c.max, c.steps);
                c.user_set = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapping_clamps_and_rounds_to_the_steps() {
        assert_eq!(snap(5.0, 0.0, 1.0, 0), 1.0);
        assert_eq!(snap(0.3, 0.0, 1.0, 0), 0.3);
        assert_eq!(snap(0.3, 0.0, 1.0, 2), 0.0);
        assert_eq!(snap(0.6, 0.0, 1.0, 2), 1.0);
        assert_eq!(snap(7.4, 0.0, 10.0, 11), 7.0);
        assert_eq!(snap(-3.0, -12.0, 12.0, 25), -3.0);
        assert_eq!(snap(f32::NAN, 2.0, 4.0, 0), 2.0);
    }

    #[test]
    fn declarations_are_checked_with_their_codes() {
        let ok = |k: &[u8]| check_decl(k, 1.0, 0.0, 2.0, b"Hz", 0, 0);
        assert!(ok(b"cut.off-1_A").is_ok());
        assert_eq!(ok(b"").unwrap_err().code, ClaimCode::BadKey);
        assert_eq!(ok(b"a b").unwrap_err().code, ClaimCode::BadKey);
        assert_eq!(ok(b"a/b").unwrap_err().code, ClaimCode::BadKey);
        assert_eq!(ok(&[b'k'; 65]).unwrap_err().code, ClaimCode::BadKey);
        assert!(ok(&[b'k'; 64]).is_ok());
        let code = |d: f32, lo: f32, hi: f32, unit: &[u8], steps: u32, count: usize| {
            check_decl(b"k", d, lo, hi, unit, steps, count)
                .map(|_| ())
                .map_err(|e| e.code)
        };
        assert_eq!(code(0.5, 0.0, 1.0, b"", 2, 63), Ok(()));
        assert_eq!(code(0.5, 1.0, 1.0, b"", 0, 0), Err(ClaimCode::BadRange));
        assert_eq!(code(2.0, 0.0, 1.0, b"", 0, 0), Err(ClaimCode::BadRange));
        assert_eq!(
            code(f32::NAN, 0.0, 1.0, b"", 0, 0),
            Err(ClaimCode::BadRange)
        );
        assert_eq!(
            code(0.5, 0.0, f32::INFINITY, b"", 0, 0),
            Err(ClaimCode::BadRange)
        );
        assert_eq!(code(0.5, 0.0, 1.0, b"", 1, 0), Err(ClaimCode::BadRange));
        assert_eq!(
            code(0.5, 0.0, 1.0, &[b'u'; 17], 0, 0),
            Err(ClaimCode::BadUnit)
        );
        assert_eq!(code(0.5, 0.0, 1.0, b"\xff", 0, 0), Err(ClaimCode::BadUnit));
        assert_eq!(
            code(0.5, 0.0, 1.0, b"", 0, 64),
            Err(ClaimCode::TooManyParams)
        );
    }

    fn cell(id: u32, addr: u32) -> ParamCell {
        ParamCell {
            id,
            addr,
            min: 0.0,
            max: 10.0,
            steps: 0,
            value: 1.0,
            user_set: false,
        }
    }

    fn read(memory: &[u8], at: usize) -> GuestEvent {
        let b = &memory[at..at + 16];
        GuestEvent {
            frame: u32::from_le_bytes(b[0..4].try_into().unwrap()),
            kind: b[4],
            channel: b[5],
            number: u16::from_le_bytes(b[6..8].try_into().unwrap()),
            value: f32::from_le_bytes(b[8..12].try_into().unwrap()),
        }
    }

    #[test]
    fn cells_hold_the_block_start_value_and_overflow_waits_for_frame_zero() {
        let mut c = Controls::new(vec![cell(7, 0)].into_boxed_slice(), Some((16, 2)));
        let mut mem = vec![0u8; 64];
        let note = |offset, key| BlockEvent {
            offset,
            what: Delivery::Note(NoteEvent::note_on(0, key, 0.5)),
        };
        let events = [
            note(3, 60),
            BlockEvent {
                offset: 5,
                what: Delivery::Param { id: 7, value: 4.0 },
            },
            note(9, 62),
        ];
        assert_eq!(c.feed(&mut mem, 0, &events), 2);
        assert_eq!(f32::from_le_bytes(mem[0..4].try_into().unwrap()), 1.0);
        assert_eq!(read(&mem, 16).frame, 3);
        assert_eq!(read(&mem, 32), GuestEvent::param(5, 0, 4.0));
        assert_eq!(c.backlog.len(), 1);
        assert_eq!(c.feed(&mut mem, 128, &[note(1, 64)]), 2);
        assert_eq!(f32::from_le_bytes(mem[0..4].try_into().unwrap()), 4.0);
        assert_eq!((read(&mem, 16).frame, read(&mem, 16).number), (0, 62));
        assert_eq!((read(&mem, 32).frame, read(&mem, 32).number), (1, 64));
        assert!(c.backlog.is_empty());
    }
}
