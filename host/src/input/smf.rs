//! Standard MIDI Files for `render --midi FILE.mid` (midly): every track's
//! notes, controllers, pitch bends and channel pressure, placed at their
//! exact frame through the file's tempo map. Runs on the main thread before
//! rendering; the render loop sends each event at its frame.

use std::path::Path;

use anyhow::Context as _;
use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

use super::Play;

/// An event at the frame it happens on (counted from the render's start).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timed {
    pub frame: u64,
    pub play: Play,
}

/// Read a `.mid` file into events at frames of `sample_rate`, sorted by
/// frame (events at one frame keep the file's order: track, then position).
///
/// # Errors
/// The file and what is wrong with it.
pub fn read(path: &Path, sample_rate: u32) -> anyhow::Result<Vec<Timed>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the MIDI file", path.display()))?;
    events(&bytes, sample_rate).with_context(|| {
        format!(
            "{}: not a Standard MIDI File lel-host can play",
            path.display()
        )
    })
}

/// See [`read`].
///
/// # Errors
/// What is wrong with the file.
pub fn events(bytes: &[u8], sample_rate: u32) -> anyhow::Result<Vec<Timed>> {
    let smf = Smf::parse(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        smf.header.format != midly::Format::Sequential,
        "format 2 (sequential tracks) is not supported; save it as format 0 or 1"
    );
    // Every event with its absolute tick; tempo changes from any track.
    let mut all: Vec<(u64, usize, TrackEventKind)> = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        for ev in track {
            tick += u32::from(ev.delta) as u64;
            all.push((tick, all.len(), ev.kind));
        }
    }
    all.sort_by_key(|&(tick, order, _)| (tick, order));
    let sr = sample_rate as u128;
    let to_frame: Box<dyn Fn(u64, u128) -> u64> = match smf.header.timing {
        Timing::Metrical(tpb) => {
            let tpb = u16::from(tpb).max(1) as u128;
            // `acc`: time in units of 1 / (tpb * 1e6) s.
            Box::new(move |_, acc| ((acc * sr * 2 + tpb * 1_000_000) / (tpb * 2_000_000)) as u64)
        }
        Timing::Timecode(fps, sub) => {
            let per_second = fps.as_f32() as f64 * sub.max(1) as f64;
            Box::new(move |tick, _| (tick as f64 * sample_rate as f64 / per_second).round() as u64)
        }
    };
    let mut out = Vec::new();
    // Tempo map: microseconds per beat (120 bpm until told otherwise).
    let mut tempo = 500_000u128;
    let (mut last_tick, mut acc) = (0u64, 0u128);
    for (tick, _, kind) in all {
        acc += (tick - last_tick) as u128 * tempo;
        last_tick = tick;
        match kind {
            TrackEventKind::Meta(MetaMessage::Tempo(t)) => tempo = u32::from(t).max(1) as u128,
            TrackEventKind::Midi { channel, message } => {
                let channel = u8::from(channel);
                let unit = |v: midly::num::u7| u8::from(v) as f32 / 127.0;
                let play = match message {
                    MidiMessage::NoteOn { key, vel } => {
                        Some(Play::note(channel, key.into(), unit(vel)))
                    }
                    MidiMessage::NoteOff { key, vel } => Some(Play::NoteOff {
                        channel,
                        key: key.into(),
                        velocity: unit(vel),
                    }),
                    MidiMessage::Controller { controller, value } => Some(Play::Control {
                        channel,
                        controller: controller.into(),
                        value: unit(value),
                    }),
                    MidiMessage::PitchBend { bend } => Some(Play::PitchBend {
                        channel,
                        value: bend.as_f32().max(-1.0),
                    }),
                    MidiMessage::ChannelAftertouch { vel } => Some(Play::Pressure {
                        channel,
                        value: unit(vel),
                    }),
                    _ => None,
                };
                if let Some(play) = play {
                    out.push(Timed {
                        frame: to_frame(tick, acc),
                        play,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use midly::num::{u4, u7, u15, u24, u28};
    use midly::{Header, TrackEvent};

    fn ev(delta: u32, kind: TrackEventKind<'static>) -> TrackEvent<'static> {
        TrackEvent {
            delta: u28::new(delta),
            kind,
        }
    }

    #[test]
    fn tempo_map_is_honoured() {
        let on = |key: u8| TrackEventKind::Midi {
            channel: u4::new(0),
            message: MidiMessage::NoteOn {
                key: u7::new(key),
                vel: u7::new(100),
            },
        };
        // 480 ticks a beat; 120 bpm for one beat (0.5 s), then 60 bpm.
        let smf = Smf {
            header: Header::new(midly::Format::SingleTrack, Timing::Metrical(u15::new(480))),
            tracks: vec![vec![
                ev(0, on(60)),
                ev(
                    480,
                    TrackEventKind::Meta(MetaMessage::Tempo(u24::new(1_000_000))),
                ),
                ev(0, on(62)),
                ev(240, on(64)),
                ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
            ]],
        };
        let mut bytes = Vec::new();
        smf.write_std(&mut bytes).unwrap();
        let e = events(&bytes, 48_000).unwrap();
        let frames: Vec<u64> = e.iter().map(|t| t.frame).collect();
        assert_eq!(frames, vec![0, 24_000, 48_000]);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(events(b"MThd nonsense", 48_000).is_err());
        assert!(events(&[], 48_000).is_err());
    }
}
