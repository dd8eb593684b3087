//! Sources of control: what OSC, MIDI (live, from JACK), MIDI files and
//! `--set` say, in one form ([`Command`]), and how it is applied to the
//! engine's control side ([`Target`]: the live `Control` or the offline
//! `Renderer`). Non-real-time: the OSC and MIDI threads only parse and pass
//! commands on; the control loop applies them, and the audio thread gets
//! them through the frame-timestamped control-event queue.

pub mod map;
pub mod midi;
pub mod osc;
pub mod smf;
mod target;

pub use map::MidiMap;
pub use target::Target;

/// A note, controller or pressure event as the sources produce it (MIDI
/// numbers; values already scaled as the 0.2 contract delivers them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Play {
    /// Velocity 0..1 (MIDI v/127; a note-on with velocity 0 is a note-off).
    NoteOn {
        channel: u8,
        key: u8,
        velocity: f32,
    },
    NoteOff {
        channel: u8,
        key: u8,
        velocity: f32,
    },
    /// Controller 0..127, value 0..1 (v/127).
    Control {
        channel: u8,
        controller: u8,
        value: f32,
    },
    /// -1..1 (14-bit, 8192 is 0).
    PitchBend {
        channel: u8,
        value: f32,
    },
    /// 0..1.
    Pressure {
        channel: u8,
        value: f32,
    },
}

impl Play {
    /// The MIDI channel (0..15).
    pub fn channel(&self) -> u8 {
        match *self {
            Play::NoteOn { channel, .. }
            | Play::NoteOff { channel, .. }
            | Play::Control { channel, .. }
            | Play::PitchBend { channel, .. }
            | Play::Pressure { channel, .. } => channel,
        }
    }

    /// A note-on with velocity 0 is a note-off.
    pub fn note(channel: u8, key: u8, velocity: f32) -> Play {
        if velocity > 0.0 {
            Play::NoteOn {
                channel,
                key,
                velocity,
            }
        } else {
            Play::NoteOff {
                channel,
                key,
                velocity: 0.0,
            }
        }
    }
}

/// One thing a source asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Set `signal`'s parameter `key` (plain units; the host snaps it).
    Set {
        signal: String,
        key: String,
        value: f32,
    },
    /// An event for one named signal (OSC notes and controllers).
    Event { signal: String, play: Play },
    /// A MIDI message, routed by the [`MidiMap`]: to every signal that hears
    /// its channel, and a mapped controller also sets its parameter.
    Midi(Play),
    /// MIDI learn: the next controller that moves is mapped to `signal`'s
    /// parameter `key` (added to the map for this run, and said in a log
    /// line in the map file's words).
    Learn { signal: String, key: String },
}

/// Apply `cmd` to `target` at frame `at` (live: [`Target::now`], the next
/// block). Returns what was done, one line per change, for the debug log;
/// an error names the signal, parameter or range, and changes nothing.
///
/// # Errors
/// An unknown signal or parameter, a value out of range, a full queue.
pub fn apply<T: Target + ?Sized>(
    target: &mut T,
    map: &mut MidiMap,
    cmd: &Command,
    at: u64,
) -> anyhow::Result<()> {
    match cmd {
        Command::Learn { signal, key } => {
            let params = target
                .params(signal)
                .ok_or_else(|| anyhow::anyhow!("no signal named `{signal}` is playing"))?;
            anyhow::ensure!(
                params.iter().any(|p| &p.key == key),
                "{signal} has no parameter `{key}` to learn a controller for"
            );
            map.learn(signal, key);
            tracing::info!("MIDI learn: move a controller to map it to {signal}.{key}");
        }
        Command::Set { signal, key, value } => {
            target.set_param(signal, key, *value, at)?;
        }
        Command::Event { signal, play } => target.send_event(signal, *play, at)?,
        Command::Midi(play) => {
            // Everything routed is attempted; the first failure is reported.
            let mut first_err = None;
            for signal in target.signals() {
                if !map.hears(&signal, play.channel()) {
                    continue;
                }
                if let Err(e) = target.send_event(&signal, *play, at) {
                    first_err.get_or_insert(e);
                }
            }
            if let Play::Control {
                channel,
                controller,
                value,
            } = *play
            {
                if let Some(m) = map.learned(controller) {
                    tracing::info!(
                        "MIDI learn: controller {controller} (channel {}) now sets {}.{}; to keep it, add to the map file: [[cc]] controller = {controller}, param = \"{}.{}\"",
                        channel + 1,
                        m.signal,
                        m.param,
                        m.signal,
                        m.param
                    );
                }
                for m in map.controls(channel, controller) {
                    let r = match target.params(&m.signal) {
                        None => Err(anyhow::anyhow!(
                            "MIDI map: controller {controller} is mapped to {}.{}, but no signal named `{}` is playing",
                            m.signal,
                            m.param,
                            m.signal
                        )),
                        Some(params) => match params.iter().find(|p| p.key == m.param) {
                            None => Err(anyhow::anyhow!(
                                "MIDI map: controller {controller} is mapped to {}.{}, but {} has no parameter `{}`",
                                m.signal,
                                m.param,
                                m.signal,
                                m.param
                            )),
                            Some(p) => target
                                .set_param(&m.signal, &m.param, p.min + value * (p.max - p.min), at)
                                .map(|_| ()),
                        },
                    };
                    if let Err(e) = r {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `signal.param=value` (`render --set`), split at the last `.` before the
/// `=` (a parameter key may contain dots only if the signal name has none:
/// the signal is everything before the first `.`).
///
/// # Errors
/// A malformed assignment, named.
pub fn parse_set(s: &str) -> anyhow::Result<Command> {
    let bad = || {
        anyhow::anyhow!(
            "--set {s}: expected SIGNAL.PARAM=VALUE (for example --set bass.cutoff=800)"
        )
    };
    let (lhs, value) = s.split_once('=').ok_or_else(bad)?;
    let (signal, key) = lhs.split_once('.').ok_or_else(bad)?;
    if signal.is_empty() || key.is_empty() {
        return Err(bad());
    }
    let value: f32 = value
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--set {s}: `{value}` is not a number"))?;
    anyhow::ensure!(value.is_finite(), "--set {s}: the value must be finite");
    Ok(Command::Set {
        signal: signal.into(),
        key: key.into(),
        value,
    })
}

/// At most a few log lines a second from one source; the rest are counted
/// and summarised, so that a flood of bad packets cannot flood the log.
#[derive(Debug)]
pub struct LogLimit {
    what: &'static str,
    window: std::time::Instant,
    lines: u32,
    dropped: u64,
}

impl LogLimit {
    pub const LINES_PER_SECOND: u32 = 5;

    pub fn new(what: &'static str) -> Self {
        LogLimit {
            what,
            window: std::time::Instant::now(),
            lines: 0,
            dropped: 0,
        }
    }

    /// Log `msg` as a warning, unless this second's lines are used up.
    pub fn warn(&mut self, msg: &str) {
        let now = std::time::Instant::now();
        if now.duration_since(self.window) >= std::time::Duration::from_secs(1) {
            if self.dropped > 0 {
                tracing::warn!(
                    "{}: {} more messages like these in the last second were not shown",
                    self.what,
                    self.dropped
                );
            }
            self.window = now;
            self.lines = 0;
            self.dropped = 0;
        }
        if self.lines < Self::LINES_PER_SECOND {
            self.lines += 1;
            tracing::warn!("{}: {msg}", self.what);
        } else {
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_assignments() {
        assert_eq!(
            parse_set("bass.cutoff=800").unwrap(),
            Command::Set {
                signal: "bass".into(),
                key: "cutoff".into(),
                value: 800.0
            }
        );
        assert_eq!(
            parse_set("lead.env.release=0.5").unwrap(),
            Command::Set {
                signal: "lead".into(),
                key: "env.release".into(),
                value: 0.5
            }
        );
        for bad in [
            "bass",
            "bass=1",
            ".x=1",
            "bass.=1",
            "bass.x=loud",
            "bass.x=inf",
        ] {
            assert!(parse_set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_velocity_is_a_release() {
        assert!(matches!(
            Play::note(0, 60, 0.0),
            Play::NoteOff { key: 60, .. }
        ));
        assert!(matches!(
            Play::note(0, 60, 0.5),
            Play::NoteOn { key: 60, .. }
        ));
    }
}
