//! OSC over UDP (`run --osc [ADDR:]PORT`): a thread of its own receives
//! packets, decodes them (rosc) into [`Request`]s and hands them to the
//! control loop, which applies them through the control queue and answers
//! queries and errors to the sender. The thread never waits on the control
//! loop or the audio thread: a malformed packet is answered from here and
//! nothing else happens.
//!
//! | address | arguments | does |
//! |---|---|---|
//! | `/lel/<signal>/<param>` | one number | sets the parameter (plain units) |
//! | `/lel/<signal>/note` | key, velocity (0..127; 0 releases) | plays a note |
//! | `/lel/<signal>/cc` | controller, value (0..127) | sends a control change |
//! | `/lel/<signal>/<param>/learn` | none | MIDI learn: the next controller that moves sets the parameter |
//! | `/lel/signals` | none | answered with `/lel/signals s...` |
//! | `/lel/<signal>/params` | none | answered with a bundle: `/lel/<signal>/params i` (count), then one `/lel/<signal>/param s f f f f s i` per parameter (key, value, default, min, max, unit, steps) |
//!
//! Errors are answered with `/lel/error s` (and logged, at most a few lines
//! a second).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

use super::{Command, LogLimit, MidiMap, Play, Target};

/// One request from a packet.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Do(Command),
    /// `/lel/signals`
    Signals,
    /// `/lel/<signal>/params`
    Params(String),
}

/// What one packet asked for, and who sent it.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub from: SocketAddr,
    pub requests: Vec<Request>,
}

/// `[ADDR:]PORT` with 127.0.0.1 as the default address.
///
/// # Errors
/// Neither a port nor an address with a port.
pub fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        anyhow::anyhow!(
            "--osc {s}: expected PORT or ADDRESS:PORT (for example --osc 9000, or --osc 0.0.0.0:9000 to listen on every interface)"
        )
    })
}

/// Decode one packet into requests.
///
/// # Errors
/// A message explaining what is wrong (sent back as `/lel/error`).
pub fn parse_packet(bytes: &[u8]) -> Result<Vec<Request>, String> {
    let (_, packet) = rosc::decoder::decode_udp(bytes)
        .map_err(|e| format!("malformed OSC packet ({} bytes): {e}", bytes.len()))?;
    let mut out = Vec::new();
    flatten(packet, &mut out)?;
    Ok(out)
}

/// Bundles are applied at once, in order (their time tags are not used).
fn flatten(p: OscPacket, out: &mut Vec<Request>) -> Result<(), String> {
    match p {
        OscPacket::Message(m) => out.push(parse_message(&m)?),
        OscPacket::Bundle(b) => {
            for p in b.content {
                flatten(p, out)?;
            }
        }
    }
    Ok(())
}

fn number(a: &OscType) -> Option<f64> {
    match *a {
        OscType::Int(i) => Some(i as f64),
        OscType::Long(i) => Some(i as f64),
        OscType::Float(f) => Some(f as f64),
        OscType::Double(d) => Some(d),
        _ => None,
    }
}

/// A MIDI-style number 0..127 (integral).
fn midi_number(m: &OscMessage, i: usize, what: &str) -> Result<u8, String> {
    let v = number(&m.args[i]).ok_or_else(|| {
        format!(
            "{}: the {what} must be a number, got {:?}",
            m.addr, m.args[i]
        )
    })?;
    if v.fract() != 0.0 || !(0.0..=127.0).contains(&v) {
        return Err(format!(
            "{}: {what} {v} is out of range (a whole number from 0 to 127)",
            m.addr
        ));
    }
    Ok(v as u8)
}

fn parse_message(m: &OscMessage) -> Result<Request, String> {
    let parts: Vec<&str> = m.addr.split('/').collect();
    let shape = || {
        format!(
            "{} with {} argument(s): not an address lel-host knows (/lel/<signal>/<param> f, /lel/<signal>/note i i, /lel/<signal>/cc i i, /lel/<signal>/<param>/learn, /lel/signals, /lel/<signal>/params)",
            m.addr,
            m.args.len()
        )
    };
    match parts.as_slice() {
        ["", "lel", "signals"] if m.args.is_empty() => Ok(Request::Signals),
        ["", "lel", signal, key, "learn"]
            if m.args.is_empty() && !signal.is_empty() && !key.is_empty() =>
        {
            Ok(Request::Do(Command::Learn {
                signal: (*signal).into(),
                key: (*key).into(),
            }))
        }
        ["", "lel", signal, "params"] if m.args.is_empty() && !signal.is_empty() => {
            Ok(Request::Params((*signal).into()))
        }
        ["", "lel", signal, "note"] if m.args.len() == 2 && !signal.is_empty() => {
            let key = midi_number(m, 0, "key")?;
            let velocity = midi_number(m, 1, "velocity")?;
            Ok(Request::Do(Command::Event {
                signal: (*signal).into(),
                play: Play::note(0, key, velocity as f32 / 127.0),
            }))
        }
        ["", "lel", signal, "cc"] if m.args.len() == 2 && !signal.is_empty() => {
            let controller = midi_number(m, 0, "controller")?;
            let value = midi_number(m, 1, "value")?;
            Ok(Request::Do(Command::Event {
                signal: (*signal).into(),
                play: Play::Control {
                    channel: 0,
                    controller,
                    value: value as f32 / 127.0,
                },
            }))
        }
        ["", "lel", signal, key] if m.args.len() == 1 && !signal.is_empty() && !key.is_empty() => {
            let v = number(&m.args[0]).ok_or_else(|| {
                format!(
                    "{}: a parameter value must be a number, got {:?}",
                    m.addr, m.args[0]
                )
            })?;
            if !v.is_finite() {
                return Err(format!("{}: the value {v} is not finite", m.addr));
            }
            Ok(Request::Do(Command::Set {
                signal: (*signal).into(),
                key: (*key).into(),
                value: v as f32,
            }))
        }
        _ => Err(shape()),
    }
}

fn message(addr: String, args: Vec<OscType>) -> OscPacket {
    OscPacket::Message(OscMessage { addr, args })
}

/// The OSC server: its receiving thread and a socket to answer from.
pub struct OscServer {
    socket: UdpSocket,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    errors: LogLimit,
    /// Packets received and malformed ones (for tests and `--stats`).
    pub received: Arc<AtomicU64>,
    pub malformed: Arc<AtomicU64>,
}

impl OscServer {
    /// Bind `addr` and start receiving; `deliver` gets every packet's
    /// requests (it must not block: the live host sends them to the
    /// control loop's channel).
    ///
    /// # Errors
    /// The address cannot be bound (in use, not this machine's).
    pub fn start(
        addr: SocketAddr,
        deliver: impl Fn(Incoming) + Send + 'static,
    ) -> anyhow::Result<OscServer> {
        let socket = UdpSocket::bind(addr).with_context(|| {
            format!(
                "--osc {addr}: cannot listen for OSC there (is another program using the port?)"
            )
        })?;
        let local = socket.local_addr()?;
        let rx = socket.try_clone()?;
        // Wake up now and then to notice `stop`.
        rx.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let malformed = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, received, malformed) = (stop.clone(), received.clone(), malformed.clone());
            std::thread::Builder::new()
                .name("lel-osc".into())
                .spawn(move || receive(rx, &stop, &received, &malformed, deliver))?
        };
        Ok(OscServer {
            socket,
            local,
            stop,
            thread: Some(thread),
            errors: LogLimit::new("OSC"),
            received,
            malformed,
        })
    }

    /// The address it listens on (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Apply a packet's requests at frame `at` (the control loop calls
    /// this): commands go to the engine, queries and errors are answered.
    pub fn answer<T: Target + ?Sized>(
        &mut self,
        target: &mut T,
        map: &mut MidiMap,
        inc: &Incoming,
        at: u64,
    ) {
        for r in &inc.requests {
            match r {
                Request::Do(cmd) => {
                    if let Err(e) = super::apply(target, map, cmd, at) {
                        let msg = format!("{e:#}");
                        self.errors.warn(&format!("{msg} (from {})", inc.from));
                        self.send(inc.from, &error(&msg));
                    }
                }
                Request::Signals => {
                    let names = target.signals().into_iter().map(OscType::String).collect();
                    self.send(inc.from, &message("/lel/signals".into(), names));
                }
                Request::Params(signal) => match target.params(signal) {
                    None => {
                        let msg = format!("no signal named `{signal}` is playing");
                        self.send(inc.from, &error(&msg));
                    }
                    Some(params) => {
                        let mut content = vec![message(
                            format!("/lel/{signal}/params"),
                            vec![OscType::Int(params.len() as i32)],
                        )];
                        for p in params {
                            content.push(message(
                                format!("/lel/{signal}/param"),
                                vec![
                                    OscType::String(p.key),
                                    OscType::Float(p.value),
                                    OscType::Float(p.default),
                                    OscType::Float(p.min),
                                    OscType::Float(p.max),
                                    OscType::String(p.unit),
                                    OscType::Int(p.steps as i32),
                                ],
                            ));
                        }
                        let bundle = OscPacket::Bundle(OscBundle {
                            timetag: OscTime::from((0, 1)),
                            content,
                        });
                        self.send(inc.from, &bundle);
                    }
                },
            }
        }
    }

    fn send(&self, to: SocketAddr, p: &OscPacket) {
        if let Ok(bytes) = rosc::encoder::encode(p) {
            // UDP: a reply that cannot be sent is not retried.
            let _ = self.socket.send_to(&bytes, to);
        }
    }
}

fn error(msg: &str) -> OscPacket {
    message("/lel/error".into(), vec![OscType::String(msg.into())])
}

impl Drop for OscServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The receiving thread: decode, answer malformed packets at once, pass
/// the rest on.
fn receive(
    socket: UdpSocket,
    stop: &AtomicBool,
    received: &AtomicU64,
    malformed: &AtomicU64,
    deliver: impl Fn(Incoming),
) {
    let mut buf = vec![0u8; 65_536];
    let mut errors = LogLimit::new("OSC");
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            // An ICMP "port unreachable" from an earlier reply, and the like.
            Err(_) => continue,
        };
        received.fetch_add(1, Ordering::Relaxed);
        match parse_packet(&buf[..n]) {
            Ok(requests) if requests.is_empty() => {}
            Ok(requests) => deliver(Incoming { from, requests }),
            Err(msg) => {
                malformed.fetch_add(1, Ordering::Relaxed);
                errors.warn(&format!("{msg} (from {from})"));
                if let Ok(bytes) = rosc::encoder::encode(&error(&msg)) {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(addr: &str, args: Vec<OscType>) -> Vec<u8> {
        rosc::encoder::encode(&message(addr.into(), args)).unwrap()
    }

    #[test]
    fn addresses() {
        let p = |a: &str, args| parse_packet(&packet(a, args));
        assert_eq!(
            p("/lel/bass/cutoff", vec![OscType::Float(800.0)]).unwrap(),
            vec![Request::Do(Command::Set {
                signal: "bass".into(),
                key: "cutoff".into(),
                value: 800.0
            })]
        );
        assert_eq!(
            p("/lel/bass/note", vec![OscType::Int(60), OscType::Int(127)]).unwrap(),
            vec![Request::Do(Command::Event {
                signal: "bass".into(),
                play: Play::NoteOn {
                    channel: 0,
                    key: 60,
                    velocity: 1.0
                }
            })]
        );
        assert!(matches!(
            p("/lel/bass/note", vec![OscType::Int(60), OscType::Int(0)]).unwrap()[0],
            Request::Do(Command::Event {
                play: Play::NoteOff { key: 60, .. },
                ..
            })
        ));
        // A parameter may be called `note`: one argument sets it.
        assert!(matches!(
            p("/lel/bass/note", vec![OscType::Float(0.5)]).unwrap()[0],
            Request::Do(Command::Set { .. })
        ));
        assert_eq!(p("/lel/signals", vec![]).unwrap(), vec![Request::Signals]);
        assert_eq!(
            p("/lel/bass/cutoff/learn", vec![]).unwrap(),
            vec![Request::Do(Command::Learn {
                signal: "bass".into(),
                key: "cutoff".into()
            })]
        );
        assert_eq!(
            p("/lel/bass/params", vec![]).unwrap(),
            vec![Request::Params("bass".into())]
        );
        for (a, args) in [
            ("/lel/bass/note", vec![OscType::Int(128), OscType::Int(1)]),
            (
                "/lel/bass/note",
                vec![OscType::Float(60.5), OscType::Int(1)],
            ),
            ("/lel/bass/cc", vec![OscType::Int(1), OscType::Int(-1)]),
            ("/lel/bass/cutoff", vec![OscType::String("x".into())]),
            ("/lel/bass/cutoff", vec![OscType::Float(f32::NAN)]),
            ("/other/bass/cutoff", vec![OscType::Float(1.0)]),
            ("/lel/bass/cutoff", vec![]),
            ("/lel//x", vec![OscType::Float(1.0)]),
        ] {
            assert!(p(a, args.clone()).is_err(), "{a} {args:?}");
        }
        assert!(parse_packet(b"garbage!").is_err());
        assert!(parse_packet(&[]).is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("9000").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:9001").unwrap(),
            "0.0.0.0:9001".parse().unwrap()
        );
        assert!(parse_listen("localhost").is_err());
    }
}
