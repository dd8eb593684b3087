//! MIDI input (`run --midi PORT`): MIDI bytes into [`Play`] events, and the
//! live input through JACK MIDI (our own JACK client over jack-sys;
//! libjack is loaded when MIDI is first used, so a machine without JACK
//! plays on without MIDI). Threads: the process callback runs on JACK's
//! process thread and only reads the cycle's events, parses them and pushes
//! them into a wait-free ring, allocating nothing (counted, and reported
//! when the input closes); a forwarding thread of ours drains the ring
//! every millisecond and hands the events to the control loop.

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
    use std::ffi::{CStr, CString, c_char, c_int, c_void};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    use jack_sys as j;

    use super::{Play, choose, parse};
    use crate::rt::guard;

    /// The JACK client name lel-host's MIDI input registers as.
    pub const CLIENT: &str = "lel-host";

    /// libjack's own messages (it prints to stderr when there is no server)
    /// go to the debug log.
    extern "C" fn quiet(msg: *const c_char) {
        if msg.is_null() {
            return;
        }
        // SAFETY: libjack passes a NUL-terminated string valid for the call.
        let s = unsafe { CStr::from_ptr(msg) };
        tracing::debug!("jack: {}", s.to_string_lossy());
    }

    /// Load libjack and silence its printing.
    fn jack() -> anyhow::Result<()> {
        if j::library().is_err() {
            anyhow::bail!(
                "JACK is not installed (libjack.so.0 not found; `apt-get install jackd2`)"
            );
        }
        // SAFETY: plain function pointers with the signature libjack expects;
        // the library is loaded (checked above).
        unsafe {
            j::jack_set_error_function(Some(quiet));
            j::jack_set_info_function(Some(quiet));
        }
        Ok(())
    }

    /// A JACK client, closed on drop.
    struct Client(*mut j::jack_client_t);

    // SAFETY: a jack_client_t handle may be used from any thread for the
    // calls made here (libjack locks internally); it is closed once, on drop.
    unsafe impl Send for Client {}

    impl Client {
        fn open() -> anyhow::Result<Client> {
            jack()?;
            let name = CString::new(CLIENT).expect("no NUL in the client name");
            // SAFETY: `name` is a valid C string for the call; a null status
            // pointer is allowed.
            let p = unsafe {
                j::jack_client_open(name.as_ptr(), j::JackNoStartServer, std::ptr::null_mut())
            };
            if p.is_null() {
                anyhow::bail!(
                    "no MIDI system: no JACK server is running (start one, e.g. `jackd -d dummy`, or with qjackctl)"
                );
            }
            Ok(Client(p))
        }

        /// The JACK MIDI output ports (sources), by full name.
        fn sources(&self) -> Vec<String> {
            let ty = CString::new(j::RAW_MIDI_TYPE).expect("no NUL in the port type");
            // SAFETY: a live client; null name pattern; `ty` valid for the call.
            let list = unsafe {
                j::jack_get_ports(
                    self.0,
                    std::ptr::null(),
                    ty.as_ptr(),
                    j::JackPortIsOutput as std::ffi::c_ulong,
                )
            };
            let mut out = Vec::new();
            if list.is_null() {
                return out;
            }
            let mut i = 0;
            loop {
                // SAFETY: `list` is a NULL-terminated array from libjack; `i`
                // stays within it (we stop at the NULL).
                let p = unsafe { *list.add(i) };
                if p.is_null() {
                    break;
                }
                // SAFETY: each entry is a NUL-terminated port name.
                out.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
                i += 1;
            }
            // SAFETY: the array came from jack_get_ports, freed once.
            unsafe { j::jack_free(list as *mut c_void) };
            out
        }
    }

    impl Drop for Client {
        fn drop(&mut self) {
            // SAFETY: the handle from jack_client_open, closed once; closing
            // deactivates first, so no process callback runs after this.
            unsafe { j::jack_client_close(self.0) };
        }
    }

    /// The MIDI sources lel-host can listen to (JACK MIDI output ports).
    ///
    /// # Errors
    /// No JACK library or server.
    pub fn list_ports() -> anyhow::Result<Vec<String>> {
        Ok(Client::open()?.sources())
    }

    /// What JACK's process callback works with.
    struct Shared {
        port: *mut j::jack_port_t,
        tx: rtrb::Producer<Play>,
        /// Messages lost because the ring was full.
        lost: Arc<AtomicU64>,
        /// Allocator calls made inside the callback (the check of
        /// `rt::guard`, always on here).
        allocations: Arc<AtomicU64>,
        /// Channel messages taken.
        taken: Arc<AtomicU64>,
    }

    /// JACK's process thread: read this cycle's MIDI events, parse each,
    /// push it into the ring. No allocation, lock or system call of ours.
    unsafe extern "C" fn process(nframes: j::jack_nframes_t, arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `Shared` registered with this callback; it
        // lives (boxed, never moved) until the client is closed, and only
        // this callback touches it meanwhile.
        let s = unsafe { &mut *(arg as *mut Shared) };
        let before = guard::violation_count();
        guard::run(true, || {
            // SAFETY: our registered port, in its process callback.
            let buf = unsafe { j::jack_port_get_buffer(s.port, nframes) };
            if buf.is_null() {
                return;
            }
            // SAFETY: the port's MIDI buffer for this cycle.
            let n = unsafe { j::jack_midi_get_event_count(buf) };
            for i in 0..n {
                let mut ev = std::mem::MaybeUninit::<j::jack_midi_event_t>::uninit();
                // SAFETY: `ev` is writable; `i` is below the event count.
                if unsafe { j::jack_midi_event_get(ev.as_mut_ptr(), buf, i) } != 0 {
                    continue;
                }
                // SAFETY: jack_midi_event_get returned 0, so it filled `ev`.
                let ev = unsafe { ev.assume_init() };
                let bytes: &[u8] = if ev.buffer.is_null() || ev.size == 0 {
                    &[]
                } else {
                    // SAFETY: libjack's event data, `size` bytes, valid for
                    // this cycle.
                    unsafe { std::slice::from_raw_parts(ev.buffer, ev.size) }
                };
                if let Some(p) = parse(bytes) {
                    if s.tx.push(p).is_err() {
                        s.lost.fetch_add(1, Ordering::Relaxed);
                    } else {
                        s.taken.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let made = guard::violation_count() - before;
        if made > 0 {
            s.allocations.fetch_add(made, Ordering::Relaxed);
        }
        0
    }

    /// A live MIDI input: a JACK client with one MIDI input port connected
    /// to the source, and the forwarding thread.
    pub struct MidiIn {
        client: Option<Client>,
        shared: Option<Box<Shared>>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
        pub port: String,
        lost: Arc<AtomicU64>,
        allocations: Arc<AtomicU64>,
        taken: Arc<AtomicU64>,
    }

    impl MidiIn {
        /// Listen to source `want` (number or name, see [`choose`]);
        /// `deliver` gets every event, on the forwarding thread.
        ///
        /// # Errors
        /// No JACK, no such port, or JACK refused the port or connection.
        pub fn open(want: &str, deliver: impl Fn(Play) + Send + 'static) -> anyhow::Result<MidiIn> {
            let client = Client::open()?;
            let names = client.sources();
            let i = choose(&names, want)?;
            let port_name = CString::new("midi_in").expect("no NUL");
            let ty = CString::new(j::RAW_MIDI_TYPE).expect("no NUL in the port type");
            // SAFETY: a live client; both strings valid for the call.
            let port = unsafe {
                j::jack_port_register(
                    client.0,
                    port_name.as_ptr(),
                    ty.as_ptr(),
                    j::JackPortIsInput as std::ffi::c_ulong,
                    0,
                )
            };
            anyhow::ensure!(
                !port.is_null(),
                "--midi {want}: JACK refused lel-host's MIDI input port"
            );
            let (tx, mut rx) = rtrb::RingBuffer::<Play>::new(8192);
            let lost = Arc::new(AtomicU64::new(0));
            let allocations = Arc::new(AtomicU64::new(0));
            let taken = Arc::new(AtomicU64::new(0));
            let mut shared = Box::new(Shared {
                port,
                tx,
                lost: lost.clone(),
                allocations: allocations.clone(),
                taken: taken.clone(),
            });
            let arg = &mut *shared as *mut Shared as *mut c_void;
            // SAFETY: a live, inactive client; `process` has JACK's callback
            // signature; `arg` outlives the client (dropped after it).
            let set = unsafe { j::jack_set_process_callback(client.0, Some(process), arg) };
            // SAFETY: a live client with its callback set.
            anyhow::ensure!(
                set == 0 && unsafe { j::jack_activate(client.0) } == 0,
                "--midi {want}: JACK refused to start lel-host's MIDI input"
            );
            let source = CString::new(names[i].as_str())?;
            // SAFETY: our registered port; its name lives as long as the port.
            let dest = unsafe { CStr::from_ptr(j::jack_port_name(port)) }.to_owned();
            // SAFETY: a live, active client; both names valid for the call.
            let r = unsafe { j::jack_connect(client.0, source.as_ptr(), dest.as_ptr()) };
            anyhow::ensure!(
                r == 0,
                "--midi {want}: cannot connect {} to {}",
                names[i],
                dest.to_string_lossy()
            );
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
                client: Some(client),
                shared: Some(shared),
                stop,
                thread: Some(thread),
                port: names[i].clone(),
                lost,
                allocations,
                taken,
            })
        }
    }

    impl Drop for MidiIn {
        fn drop(&mut self) {
            // The client first: after jack_client_close no callback runs,
            // so the callback's state can go.
            self.client.take();
            self.shared.take();
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
            tracing::info!(
                "MIDI from {}: {} messages, {} allocations on JACK's process thread",
                self.port,
                self.taken.load(Ordering::Relaxed),
                self.allocations.load(Ordering::Relaxed)
            );
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
