//! Parameters and note events on the control side (`lel:signal@0.2.0`):
//! each signal's table of parameters by key (the values the host owns, kept
//! across versions), and the calls that play a signal from outside its
//! code: [`Control::set_param`], [`Control::send_event`],
//! [`Control::params`]. They travel to the audio thread on the
//! control-event queue, stamped with their frame, like gain, mute and solo
//! (see `mixing.rs`). Non-real-time (any thread holding the `Control`).
//!
//! For the other parts of lel-host (OSC, MIDI, `render --set`, the console,
//! session recording): a parameter is named by its signal and key; values
//! are plain units between the parameter's `min` and `max`; `at` is a frame
//! on the engine's clock ([`Control::clock`] is the next block's first
//! frame, a frame already past applies at the start of the next block).
//! Everything here either changes nothing and says why (`Err`), or queues
//! exactly one control event.

use crate::rt::messages::{ControlKind, EventKind, NoteEvent};
use crate::rt::params::{ParamDecl, snap};
use crate::rt::version::Version;

use super::Control;

/// One parameter of a playing signal, as its current version declared it,
/// with the value in force.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub key: String,
    /// Its index in the current version (the `number` of its events).
    pub index: u32,
    /// The latest value set (or the default), in plain units.
    pub value: f32,
    pub default: f32,
    pub min: f32,
    pub max: f32,
    pub unit: String,
    /// 0: continuous; N >= 2: N evenly spaced values from `min` to `max`.
    pub steps: u32,
    /// Set by the player (kept across reloads), not just the default.
    pub user_set: bool,
}

impl ParamInfo {
    /// `20 to 20000 Hz`, `0 to 1 in 2 steps`.
    pub fn range(&self) -> String {
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        let steps = if self.steps >= 2 {
            format!(" in {} steps", self.steps)
        } else {
            String::new()
        };
        format!("{} to {}{unit}{steps}", self.min, self.max)
    }
}

/// One key of a signal's table.
#[derive(Debug)]
struct Entry {
    /// Signal-wide id of the key, unique in the engine: what parameter
    /// events name on their way to the audio thread.
    id: u32,
    info: ParamInfo,
    /// Declared by the current version.
    declared: bool,
}

/// A signal's parameters by key: every key any of its versions declared
/// (values of keys a version dropped are kept, should one come back).
#[derive(Debug, Default)]
pub(super) struct SignalParams {
    entries: Vec<Entry>,
    /// The declarations of recent versions (for a rollback), newest last.
    versions: Vec<(u64, Vec<ParamDecl>)>,
}

impl SignalParams {
    /// A version is handed over: adopt its declarations, give each of its
    /// cells its key's id and starting value (a value the player set,
    /// clamped and snapped to the new range; else the new default).
    pub(super) fn adopt(
        &mut self,
        version: &mut Version,
        id: u64,
        decls: &[ParamDecl],
        next_id: &mut u32,
    ) {
        self.versions.push((id, decls.to_vec()));
        if self.versions.len() > 4 {
            self.versions.remove(0);
        }
        self.declare(decls, next_id);
        for (cell, decl) in version.params_mut().iter_mut().zip(decls) {
            let e = self
                .entries
                .iter()
                .find(|e| *e.info.key == *decl.key)
                .expect("declared above");
            cell.id = e.id;
            cell.value = e.info.value;
            cell.user_set = e.info.user_set;
        }
    }

    /// The audio thread went back to version `id`: its declarations are
    /// the current ones again.
    pub(super) fn rolled_back(&mut self, id: u64, next_id: &mut u32) {
        if let Some((_, decls)) = self.versions.iter().find(|(v, _)| *v == id).cloned() {
            self.declare(&decls, next_id);
        }
    }

    fn declare(&mut self, decls: &[ParamDecl], next_id: &mut u32) {
        for e in &mut self.entries {
            e.declared = false;
        }
        for (index, d) in decls.iter().enumerate() {
            let at = match self.entries.iter().position(|e| *e.info.key == *d.key) {
                Some(at) => at,
                None => {
                    let id = *next_id;
                    *next_id = next_id.wrapping_add(1);
                    self.entries.push(Entry {
                        id,
                        info: ParamInfo {
                            key: d.key.to_string(),
                            index: 0,
                            value: d.default,
                            default: d.default,
                            min: d.min,
                            max: d.max,
                            unit: String::new(),
                            steps: 0,
                            user_set: false,
                        },
                        declared: false,
                    });
                    self.entries.len() - 1
                }
            };
            let e = &mut self.entries[at];
            let value = if e.info.user_set {
                snap(e.info.value, d.min, d.max, d.steps)
            } else {
                d.default
            };
            e.info = ParamInfo {
                key: d.key.to_string(),
                index: index as u32,
                value,
                default: d.default,
                min: d.min,
                max: d.max,
                unit: d.unit.to_string(),
                steps: d.steps,
                user_set: e.info.user_set,
            };
            e.declared = true;
        }
    }

    /// The player set the parameter of signal-wide id `id` (a replayed
    /// session): its value in the table, snapped to the current range.
    pub(super) fn set_by_id(&mut self, id: u32, value: f32) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            let i = &e.info;
            e.info.value = snap(value, i.min, i.max, i.steps);
            e.info.user_set = true;
        }
    }

    /// Has any version of this signal declared the key of id `id`?
    pub(super) fn knows(&self, id: u32) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// The current version's parameters, in index order.
    pub(super) fn list(&self) -> Vec<ParamInfo> {
        let mut v: Vec<ParamInfo> = self
            .entries
            .iter()
            .filter(|e| e.declared)
            .map(|e| e.info.clone())
            .collect();
        v.sort_by_key(|p| p.index);
        v
    }
}

impl Control {
    /// Set parameter `key` of `signal` to `value` from frame `at` on.
    /// Returns the value applied: `value` snapped to the parameter's steps.
    /// The value is the player's from then on: it survives reloads (clamped
    /// to a new version's range), where an unset parameter takes each new
    /// version's default.
    ///
    /// # Errors
    /// An unknown signal or parameter, a value that is not a number or lies
    /// outside the parameter's range (the message names the signal, the
    /// parameter and its range), or a full control-event queue. Nothing
    /// changes then.
    pub fn set_param(
        &mut self,
        signal: &str,
        key: &str,
        value: f32,
        at: u64,
    ) -> anyhow::Result<f32> {
        let rec = self
            .signals
            .get(signal)
            .filter(|r| r.playing.is_some())
            .ok_or_else(|| anyhow::anyhow!("no signal named `{signal}` is playing"))?;
        let Some(e) = rec
            .params
            .entries
            .iter()
            .find(|e| e.declared && e.info.key == key)
        else {
            let known: Vec<String> = rec.params.list().into_iter().map(|p| p.key).collect();
            anyhow::bail!(
                "{signal} has no parameter `{key}` ({})",
                if known.is_empty() {
                    "it declares none".to_string()
                } else {
                    format!("its parameters: {}", known.join(", "))
                }
            );
        };
        let info = &e.info;
        anyhow::ensure!(
            value.is_finite() && value >= info.min && value <= info.max,
            "{signal}.{key}: {value} is out of range ({}); {signal}.{key} stays {}",
            info.range(),
            info.value
        );
        let value = snap(value, info.min, info.max, info.steps);
        let id = e.id;
        self.send_control(signal, ControlKind::Param { id, value }, at)?;
        let rec = self.signals.get_mut(signal).expect("found above");
        let e = rec
            .params
            .entries
            .iter_mut()
            .find(|e| e.id == id)
            .expect("found above");
        e.info.value = value;
        e.info.user_set = true;
        Ok(value)
    }

    /// Send a note or controller event to `signal`, at frame `at`: every
    /// version of it that takes events gets it in its event buffer at that
    /// frame (a signal without an event buffer, or a 0.1.0 one, ignores
    /// it). A note-on of velocity 0 is sent as a note-off.
    ///
    /// # Errors
    /// An unknown signal; a channel above 15, a key or controller above
    /// 127, a value outside its range (velocity, controller value and
    /// pressure 0..1, bend -1..1) or not a number; a [`EventKind::Param`]
    /// event (use [`Control::set_param`]); a full queue. Nothing is sent then.
    pub fn send_event(&mut self, signal: &str, event: NoteEvent, at: u64) -> anyhow::Result<()> {
        let mut e = event;
        let (lo, hi, numbered) = match e.kind {
            EventKind::NoteOn | EventKind::NoteOff => (0.0, 1.0, true),
            EventKind::ControlChange => (0.0, 1.0, true),
            EventKind::PitchBend => (-1.0, 1.0, false),
            EventKind::ChannelPressure => (0.0, 1.0, false),
            EventKind::Param => anyhow::bail!(
                "a param event for {signal} is made by set_param (by key), not send_event"
            ),
        };
        anyhow::ensure!(
            e.channel <= 15,
            "channel {} for {signal} is out of range (0 to 15, the MIDI channel minus one)",
            e.channel
        );
        if numbered {
            anyhow::ensure!(
                e.number <= 127,
                "{} {} for {signal} is out of range (0 to 127)",
                if e.kind == EventKind::ControlChange {
                    "controller"
                } else {
                    "key"
                },
                e.number
            );
        } else {
            e.number = 0;
        }
        anyhow::ensure!(
            e.value.is_finite() && e.value >= lo && e.value <= hi,
            "{:?} value {} for {signal} is out of range ({lo} to {hi})",
            e.kind,
            e.value
        );
        if e.kind == EventKind::NoteOn && e.value == 0.0 {
            e.kind = EventKind::NoteOff;
        }
        self.send_control(signal, ControlKind::Note(e), at)
    }

    /// For a replayed session: whether the signal in `slot` has had a
    /// parameter of signal-wide id `id` (`None`: no signal in that slot).
    pub(crate) fn knows_param(&self, slot: crate::rt::messages::SlotId, id: u32) -> Option<bool> {
        self.signals
            .values()
            .find(|s| s.slot == slot)
            .map(|s| s.params.knows(id))
    }

    /// The parameters of `signal`'s current version, in index order, with
    /// their values; `None` when no signal of that name plays.
    pub fn params(&self, signal: &str) -> Option<Vec<ParamInfo>> {
        self.signals
            .get(signal)
            .filter(|r| r.playing.is_some())
            .map(|r| r.params.list())
    }
}
