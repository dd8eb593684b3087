//! MIDI input (`run --midi PORT`): MIDI bytes into [`Play`] events, and the
//! live input through JACK MIDI (midir's JACK backend; libjack is loaded
//! when MIDI is first used, so a machine without JACK plays on without
//! MIDI). Threads: midir's callback runs on JACK's process thread and only
//! parses and pushes into a wait-free ring; a forwarding thread of ours
//! drains the ring every millisecond and hands the events to the control
//! loop.

use super::Play;

/// One MIDI message as [`Play`] (channel messages only: note on/off,
/// control change, pitch bend, channel pressure). Everything else (system
/// messages, running status, truncated or stray data bytes) is `None`.
pub fn parse(bytes: &[u8]) -> Option<Play> {
    let status = *bytes.first()?;
    if status & 0x80 == 0 || status >= 0xF0 {
        return None;
    }
    let channel = status & 0x0F;
    let data = |i: usize| bytes.get(i).copied().filter(|b| b & 0x80 == 0);
    let unit = |v: u8| v as f32 / 127.0;
    match status & 0xF0 {
        0x80 => Some(Play::NoteOff {
            channel,
            key: data(1)?,
            velocity: unit(data(2)?),
        }),
        0x90 => Some(Play::note(channel, data(1)?, unit(data(2)?))),
        0xB0 => Some(Play::Control {
            channel,
            controller: data(1)?,
            value: unit(data(2)?),
        }),
        0xD0 => Some(Play::Pressure {
            channel,
            value: unit(data(1)?),
        }),
        0xE0 => {
            let v = (data(1)? as i32) | ((data(2)? as i32) << 7);
            Some(Play::PitchBend {
                channel,
                value: ((v - 8192) as f32 / 8192.0).max(-1.0),
            })
        }
        _ => None,
    }
}

/// Pick a port by number (its place in the list) or name (exact, else
/// the only one containing it).
///
/// # Errors
/// No port, or several, matches: the message lists the ports.
#[cfg_attr(not(feature = "midi"), allow(dead_code))]
pub fn choose(ports: &[String], want: &str) -> anyhow::Result<usize> {
    let list = || {
        if ports.is_empty() {
            "there are no MIDI sources".to_string()
        } else {
            let l: Vec<String> = ports
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{i}: {p}"))
                .collect();
            format!("the MIDI sources are {}", l.join(", "))
        }
    };
    if let Ok(i) = want.parse::<usize>() {
        return if i < ports.len() {
            Ok(i)
        } else {
            Err(anyhow::anyhow!(
                "--midi {want}: no MIDI source number {i}; {}",
                list()
            ))
        };
    }
    if let Some(i) = ports.iter().position(|p| p == want) {
        return Ok(i);
    }
    let hits: Vec<usize> = (0..ports.len())
        .filter(|&i| ports[i].contains(want))
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(anyhow::anyhow!(
            "--midi {want}: no such MIDI source; {}",
            list()
        )),
        _ => Err(anyhow::anyhow!(
            "--midi {want}: several MIDI sources match; {}",
            list()
        )),
    }
}

#[cfg(feature = "midi")]
pub use jack_in::{MidiIn, list_ports};

#[cfg(not(feature = "midi"))]
/// This build has no MIDI input.
pub fn list_ports() -> anyhow::Result<Vec<String>> {
    anyhow::bail!("this lel-host was built without MIDI input (the `midi` feature)")
}

#[cfg(not(feature = "midi"))]
pub struct MidiIn {
    pub port: String,
}

#[cfg(not(feature = "midi"))]
impl MidiIn {
    /// # Errors
    /// Always: this build has no MIDI input.
    pub fn open(_port: &str, _deliver: impl Fn(Play) + Send + 'static) -> anyhow::Result<MidiIn> {
        anyhow::bail!("this lel-host was built without MIDI input (the `midi` feature)")
    }
}

#[cfg(feature = "midi")]
mod jack_in {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    use super::{Play, choose, parse};

    /// The JACK client name lel-host's MIDI input registers as.
    pub const CLIENT: &str = "lel-host";

    /// libjack's own messages (it prints to stderr when there is no server)
    /// go to the debug log.
    extern "C" fn quiet(msg: *const std::ffi::c_char) {
        if msg.is_null() {
            return;
        }
        // SAFETY: libjack passes a NUL-terminated string valid for the call.
        let s = unsafe { std::ffi::CStr::from_ptr(msg) };
        tracing::debug!("jack: {}", s.to_string_lossy());
    }

    /// Load libjack and silence its printing.
    fn jack() -> anyhow::Result<()> {
        if jack_sys::library().is_err() {
            anyhow::bail!(
                "JACK is not installed (libjack.so.0 not found; `apt-get install jackd2`)"
            );
        }
        // SAFETY: plain function pointers with the signature libjack expects;
        // the library is loaded (checked above).
        unsafe {
            jack_sys::jack_set_error_function(Some(quiet));
            jack_sys::jack_set_info_function(Some(quiet));
        }
        Ok(())
    }

    fn input() -> anyhow::Result<midir::MidiInput> {
        jack()?;
        let mut i = midir::MidiInput::new(CLIENT).map_err(|_| {
            anyhow::anyhow!(
                "no MIDI system: no JACK server is running (start one, e.g. `jackd -d dummy`, or with qjackctl)"
            )
        })?;
        i.ignore(midir::Ignore::All);
        Ok(i)
    }

    /// The MIDI sources lel-host can listen to (JACK MIDI output ports).
    ///
    /// # Errors
    /// No JACK library or server.
    pub fn list_ports() -> anyhow::Result<Vec<String>> {
        let i = input()?;
        Ok(i.ports()
            .iter()
            .filter_map(|p| i.port_name(p).ok())
            .collect())
    }

    /// A live MIDI input: the JACK connection and the forwarding thread.
    pub struct MidiIn {
        _conn: midir::MidiInputConnection<rtrb::Producer<Play>>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
        pub port: String,
        /// Messages lost because the ring was full (reported at the end).
        lost: Arc<AtomicU64>,
    }

    impl MidiIn {
        /// Listen to source `want` (number or name, see [`choose`]);
        /// `deliver` gets every event, on the forwarding thread.
        ///
        /// # Errors
        /// No JACK, no such port, or JACK refused the connection.
        pub fn open(want: &str, deliver: impl Fn(Play) + Send + 'static) -> anyhow::Result<MidiIn> {
            let input = input()?;
            let ports = input.ports();
            let names: Vec<String> = ports
                .iter()
                .map(|p| input.port_name(p).unwrap_or_default())
                .collect();
            let i = choose(&names, want)?;
            let (tx, mut rx) = rtrb::RingBuffer::<Play>::new(8192);
            let lost = Arc::new(AtomicU64::new(0));
            let conn = {
                let lost = lost.clone();
                input
                    .connect(
                        &ports[i],
                        "midi_in",
                        // JACK's process thread: parse and push, nothing else.
                        move |_, bytes, tx: &mut rtrb::Producer<Play>| {
                            if let Some(p) = parse(bytes)
                                && tx.push(p).is_err()
                            {
                                lost.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        tx,
                    )
                    .map_err(|e| {
                        anyhow::anyhow!("--midi {want}: cannot connect to {}: {e}", names[i])
                    })?
            };
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name("lel-midi".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            while let Ok(p) = rx.pop() {
                                deliver(p);
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })?
            };
            Ok(MidiIn {
                _conn: conn,
                stop,
                thread: Some(thread),
                port: names[i].clone(),
                lost,
            })
        }
    }

    impl Drop for MidiIn {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            let lost = self.lost.load(Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(
                    "MIDI: {lost} messages from {} were lost (more than 8192 arrived within a millisecond)",
                    self.port
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages() {
        assert_eq!(
            parse(&[0x91, 60, 127]),
            Some(Play::NoteOn {
                channel: 1,
                key: 60,
                velocity: 1.0
            })
        );
        assert!(matches!(parse(&[0x90, 60, 0]), Some(Play::NoteOff { .. })));
        assert_eq!(
            parse(&[0xE0, 0, 0x40]),
            Some(Play::PitchBend {
                channel: 0,
                value: 0.0
            })
        );
        assert_eq!(
            parse(&[0xE0, 0, 0]),
            Some(Play::PitchBend {
                channel: 0,
                value: -1.0
            })
        );
        assert!(matches!(
            parse(&[0xBF, 74, 127]),
            Some(Play::Control {
                channel: 15,
                controller: 74,
                ..
            })
        ));
        for bad in [
            &[][..],
            &[0x90, 60],
            &[60, 100],
            &[0x90, 0x80, 1],
            &[0xF8],
            &[0xC0, 5],
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ports_by_number_or_name() {
        let p = vec!["synth:out".to_string(), "keys:midi_out".to_string()];
        assert_eq!(choose(&p, "1").unwrap(), 1);
        assert_eq!(choose(&p, "keys").unwrap(), 1);
        assert_eq!(choose(&p, "synth:out").unwrap(), 0);
        assert!(format!("{}", choose(&p, "out").unwrap_err()).contains("several"));
        assert!(format!("{}", choose(&p, "5").unwrap_err()).contains("1: keys:midi_out"));
    }
}
