//! Polyphony: `poly(8, |voice| ...)` builds one copy of a voice graph per
//! voice, hands each note-on to a voice (allocation and stealing, see
//! [`poly`]) and sums the voices. The voice table and every voice's helpers
//! are claimed under stable keys, so a reload keeps ringing notes ringing.
//! Runs on the thread that calls `process`.

use core::ptr::NonNull;

use bytemuck::{Pod, Zeroable};

use crate::claim::{Binder, Error, One};
use crate::ctx::Ctx;
use crate::events::{NoteState, key_hz, kind};
use crate::frame::Frame;
use crate::key::Key;
use crate::node::{Node, node_ops};

/// Most voices a `poly` can have.
pub const MAX_VOICES: usize = 16;

/// The voice being rendered, as its graph's `voice.hz()`, `voice.gate()`,
/// ... read it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct VoiceNow {
    pub(crate) index: u32,
    pub(crate) key: u32,
    pub(crate) gate: f64,
    pub(crate) velocity: f64,
    pub(crate) hz: f64,
}

impl VoiceNow {
    /// Outside a `poly`: silent, A4.
    pub(crate) const NONE: VoiceNow = VoiceNow {
        index: 0,
        key: 69,
        gate: 0.0,
        velocity: 0.0,
        hz: 440.0,
    };
}

/// One voice of the table. 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct VoiceSlot {
    /// The note-on's velocity.
    pub velocity: f32,
    /// The key it plays.
    pub key: u32,
    /// 0 released (or never used), 1 held, 2 held and restarted this
    /// sample (the voice's gate reads 0 for one sample so envelopes
    /// retrigger).
    pub gate: u32,
    /// 1 once the voice played a note.
    pub used: u32,
    /// Order number of its last note-on.
    pub on: u64,
    /// Order number of its last note-off.
    pub off: u64,
}

/// A `poly`'s voice table, claimed under `poly#n` (528 bytes, whatever the
/// voice count).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PolyState {
    /// Note-ons and note-offs counted so far (the order numbers).
    pub order: u64,
    /// Padding.
    pub reserved: u64,
    /// The voices.
    pub voices: [VoiceSlot; MAX_VOICES],
}

impl PolyState {
    /// A note-on of `key` at `velocity` on `n` voices; returns the voice.
    /// The policy (every SDK's): the voice already playing `key` (held or
    /// ringing) if there is one; else the free voice released longest ago
    /// (never-used voices first, then the lowest index); else, every voice
    /// being held, the one held longest (stolen). A held voice taking a
    /// note restarts: its gate reads 0 for one sample.
    pub fn note_on(&mut self, n: usize, key: u32, velocity: f32) -> usize {
        let v = &self.voices[..n];
        let same = (0..n)
            .filter(|&i| v[i].used != 0 && v[i].key == key)
            .max_by_key(|&i| v[i].on);
        let free = || {
            (0..n)
                .filter(|&i| v[i].gate == 0)
                .min_by_key(|&i| if v[i].used != 0 { v[i].off } else { 0 })
        };
        let oldest = || (0..n).min_by_key(|&i| v[i].on).unwrap_or(0);
        let i = same.or_else(free).unwrap_or_else(oldest);
        self.order += 1;
        let s = &mut self.voices[i];
        s.gate = if s.gate != 0 { 2 } else { 1 };
        s.key = key;
        s.velocity = velocity;
        s.used = 1;
        s.on = self.order;
        i
    }

    /// A note-off of `key`: every voice holding it is released.
    pub fn note_off(&mut self, n: usize, key: u32) {
        for s in &mut self.voices[..n] {
            if s.gate != 0 && s.key == key {
                self.order += 1;
                s.gate = 0;
                s.off = self.order;
            }
        }
    }
}

/// A voice of a `poly`, handed to the closure that builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voice {
    index: u32,
}

impl Voice {
    /// Its index, 0 to voices - 1.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// The frequency of its key with the pitch bend, in Hz
    /// (`440 * exp((key - 69 + 2 bend) ln2 / 12)`).
    pub fn hz(&self) -> VoiceValue {
        VoiceValue(VoiceWhat::Hz)
    }

    /// 1 while its key is held, else 0.
    pub fn gate(&self) -> VoiceValue {
        VoiceValue(VoiceWhat::Gate)
    }

    /// Its note-on's velocity, 0 to 1.
    pub fn velocity(&self) -> VoiceValue {
        VoiceValue(VoiceWhat::Velocity)
    }

    /// Its key, 0 to 127.
    pub fn key(&self) -> VoiceValue {
        VoiceValue(VoiceWhat::Key)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VoiceWhat {
    Hz,
    Gate,
    Velocity,
    Key,
}

/// A value of the voice being rendered, as a parameter or mono signal.
#[derive(Clone, Copy, Debug)]
pub struct VoiceValue(VoiceWhat);

impl Node for VoiceValue {
    type Frame = [f64; 1];

    fn bind(&mut self, _: &mut Binder<'_>) -> Result<(), Error> {
        Ok(())
    }

    #[inline(always)]
    fn tick(&mut self, cx: &Ctx) -> [f64; 1] {
        let v = cx.voice();
        [match self.0 {
            VoiceWhat::Hz => v.hz,
            VoiceWhat::Gate => v.gate,
            VoiceWhat::Velocity => v.velocity,
            VoiceWhat::Key => v.key as f64,
        }]
    }
}

/// `n` voices of one graph, summed. See [`poly`].
pub struct Poly<V> {
    n: usize,
    voices: [Option<V>; MAX_VOICES],
    hz: [f64; MAX_VOICES],
    bend: f32,
    key: Key,
    state: One<PolyState>,
    notes: Option<NonNull<NoteState>>,
}

/// A polyphonic instrument: `build` is called once per voice (`n`, 1 to
/// 16) with a [`Voice`] whose `hz()`, `gate()`, `velocity()` and `key()`
/// the voice graph reads, and the voices are summed:
///
/// ```
/// use lel::prelude::*;
/// let synth = poly(8, |v| {
///     saw(v.hz()).lpf(param("cutoff", 2000.0).range(20.0, 20_000.0), 0.7)
///         * adsr(v.gate(), 0.005, 0.1, 0.7, param("release", 0.3).range(0.01, 5.0))
/// })
/// .gain(0.2);
/// # let _ = synth;
/// ```
///
/// Notes from every channel play it (omni). Voice allocation: a note-on
/// takes the voice already playing that key, else the free (released)
/// voice released longest ago, else steals the voice held longest. The
/// voice table is claimed under `poly#n`; each voice's helpers get the
/// usual automatic keys in build order (voice 0's `osc#0`, `biquad#0`,
/// `env#0`, then voice 1's `osc#1`, ...), so reloading the same instrument
/// keeps every voice ringing with its phase.
pub fn poly<V: Node, F: FnMut(Voice) -> V>(n: usize, mut build: F) -> Poly<V> {
    let n = n.clamp(1, MAX_VOICES);
    let key = Key::auto("poly");
    let voices = core::array::from_fn(|i| (i < n).then(|| build(Voice { index: i as u32 })));
    Poly {
        n,
        voices,
        hz: [440.0; MAX_VOICES],
        bend: f32::NAN,
        key,
        state: One::empty(),
        notes: None,
    }
}

impl<V: Node> Poly<V> {
    /// Claims the voice table under `name` instead of `poly#n`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.key = self.key.named(name);
        self
    }
}

impl<V: Node> Node for Poly<V> {
    type Frame = V::Frame;

    fn bind(&mut self, b: &mut Binder<'_>) -> Result<(), Error> {
        self.state = b.claim_one(&self.key)?;
        self.notes = Some(b.notes()?);
        self.bend = f32::NAN;
        for v in self.voices.iter_mut().flatten() {
            v.bind(b)?;
        }
        Ok(())
    }

    #[inline]
    fn tick(&mut self, cx: &Ctx) -> V::Frame {
        let mut out = V::Frame::splat(0.0);
        let n = self.n;
        let Some(st) = self.state.get() else {
            return out;
        };
        let bend = match self.notes {
            // SAFETY: the claimed `notes` block, written by the runtime
            // only between frames.
            Some(p) => unsafe { (*p.as_ptr()).bend },
            None => 0.0,
        };
        let retune = bend != self.bend;
        self.bend = bend;
        for ev in cx.events() {
            match ev.kind {
                kind::NOTE_ON => {
                    let i = st.note_on(n, ev.number as u32 & 127, ev.value);
                    self.hz[i] = key_hz(st.voices[i].key as f64, bend as f64);
                }
                kind::NOTE_OFF => st.note_off(n, ev.number as u32),
                _ => {}
            }
        }
        if retune {
            for i in 0..n {
                let k = if st.voices[i].used != 0 {
                    st.voices[i].key
                } else {
                    69
                };
                self.hz[i] = key_hz(k as f64, bend as f64);
            }
        }
        let mut vcx = *cx;
        for (i, v) in self.voices[..n].iter_mut().enumerate() {
            let s = &mut st.voices[i];
            vcx.voice = VoiceNow {
                index: i as u32,
                key: s.key,
                gate: if s.gate == 1 { 1.0 } else { 0.0 },
                velocity: s.velocity as f64,
                hz: self.hz[i],
            };
            if s.gate == 2 {
                s.gate = 1;
            }
            if let Some(v) = v {
                let y = v.tick(&vcx);
                for (o, x) in out.as_mut_slice().iter_mut().zip(y.as_slice()) {
                    *o += *x;
                }
            }
        }
        out
    }
}

node_ops! {
    [] VoiceValue;
    [V: Node] Poly<V>;
}
