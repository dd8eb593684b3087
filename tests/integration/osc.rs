//! OSC over real UDP sockets on 127.0.0.1: parameter changes and notes land
//! in the right block, queries are answered, errors are answered and change
//! nothing, garbage never disturbs the music; and `lel-host run --osc` end to
//! end, recorded, with a flood of 10,000 messages a second and no
//! audio-thread allocation.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lel_host::testing::{Incoming, MidiMap, OscServer, Target as _};
use lel_host::{RenderSettings, Renderer};
use rosc::{OscMessage, OscPacket, OscType};

use crate::fixtures;
use crate::util::{channel, dominant_frequency, lel_host_bin, peak, read_wav, tempdir, write};

const SR: u32 = 48_000;
const BLOCK: usize = 128;

pub fn msg(addr: &str, args: Vec<OscType>) -> Vec<u8> {
    rosc::encoder::encode(&OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    }))
    .unwrap()
}

/// A client socket with a read timeout.
pub fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// The next packet the client receives, decoded, as flat messages.
pub fn reply(s: &UdpSocket) -> Vec<OscMessage> {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = s.recv_from(&mut buf).expect("an OSC reply within 5 s");
    let (_, p) = rosc::decoder::decode_udp(&buf[..n]).expect("a valid OSC reply");
    let mut out = Vec::new();
    fn flat(p: OscPacket, out: &mut Vec<OscMessage>) {
        match p {
            OscPacket::Message(m) => out.push(m),
            OscPacket::Bundle(b) => b.content.into_iter().for_each(|p| flat(p, out)),
        }
    }
    flat(p, &mut out);
    out
}

/// An offline engine playing the synth, with an OSC server whose packets
/// the test applies between blocks (as the live control loop does).
struct Rig {
    r: Renderer,
    server: OscServer,
    rx: mpsc::Receiver<Incoming>,
    out: Vec<f32>,
}

impl Rig {
    fn new(extra: &[(&str, String)]) -> Rig {
        let mut r = Renderer::new(RenderSettings {
            sample_rate: SR,
            channels: 2,
            block: BLOCK as u32,
        })
        .unwrap();
        r.load_bytes("synth", fixtures::synth().as_bytes()).unwrap();
        for (name, text) in extra {
            r.load_bytes(name, text.as_bytes()).unwrap();
        }
        let (tx, rx) = mpsc::channel();
        let server = OscServer::start("127.0.0.1:0".parse().unwrap(), move |inc| {
            let _ = tx.send(inc);
        })
        .unwrap();
        Rig {
            r,
            server,
            rx,
            out: Vec::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn blocks(&mut self, n: usize) {
        let b = self.r.render(n * BLOCK);
        self.out.extend(b);
    }

    /// Wait for the packet sent to arrive and apply it at the next block.
    fn take(&mut self) {
        let inc = self
            .rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the OSC packet arrives within 5 s");
        let at = self.r.now();
        self.server
            .answer(&mut self.r, &mut MidiMap::default(), &inc, at);
    }

    fn left(&self) -> Vec<f32> {
        channel(&self.out, 2, 0)
    }
}

#[test]
fn osc_note_and_parameter_change_land_in_the_next_block() {
    let mut rig = Rig::new(&[]);
    let c = client();
    rig.blocks(10);
    assert_eq!(peak(&rig.left()), 0.0, "silent before any note");

    // A note: it starts on the first frame of the block after it arrived.
    c.send_to(
        &msg("/lel/synth/note", vec![OscType::Int(69), OscType::Int(127)]),
        rig.addr(),
    )
    .unwrap();
    rig.take();
    let note_at = rig.r.clock() as usize;
    rig.blocks(40);
    let left = rig.left();
    assert_eq!(note_at, 10 * BLOCK);
    assert_eq!(
        peak(&left[..note_at]),
        0.0,
        "nothing before the note's block"
    );
    assert!(
        left[note_at..note_at + 2].iter().any(|&x| x != 0.0),
        "sound from the note's first frame: {:?}",
        &left[note_at..note_at + 4]
    );
    let tone = &left[note_at..];
    let p = peak(tone);
    assert!((p - 0.5).abs() < 0.01, "gain 0.5 x velocity 1: peak {p}");
    let f = dominant_frequency(tone, SR);
    assert!((f - 440.0).abs() < 3.0, "key 69 is 440 Hz, got {f}");

    // A parameter change: exactly from the next block's first frame.
    c.send_to(
        &msg("/lel/synth/gain", vec![OscType::Float(0.25)]),
        rig.addr(),
    )
    .unwrap();
    rig.take();
    let set_at = rig.r.clock() as usize;
    rig.blocks(40);
    let left = rig.left();
    let before = peak(&left[set_at - 2 * BLOCK..set_at]);
    let after = peak(&left[set_at..set_at + 2 * BLOCK]);
    assert!((before - 0.5).abs() < 0.02, "0.5 up to the block: {before}");
    assert!(
        (after - 0.25).abs() < 0.01,
        "0.25 from the block on: {after}"
    );
    assert_eq!(
        rig.r.params("synth").unwrap()[0].value,
        0.25,
        "the host keeps the value"
    );

    // A note-off (velocity 0) closes the gate at the next block.
    c.send_to(
        &msg("/lel/synth/note", vec![OscType::Int(69), OscType::Int(0)]),
        rig.addr(),
    )
    .unwrap();
    rig.take();
    let off_at = rig.r.clock() as usize;
    rig.blocks(4);
    let left = rig.left();
    assert!(peak(&left[off_at - BLOCK..off_at]) > 0.2);
    assert_eq!(
        peak(&left[off_at..]),
        0.0,
        "silent from the release's block"
    );
}

/// `/lel/<signal>/cc i i` reaches the module as a control-change event on
/// the first frame of the block after the packet arrived (the synth takes
/// controller 7 as its gain until its cell's value returns at the next
/// block), and a bundle's messages apply together, in order, at one block.
#[test]
fn osc_cc_and_bundles_land_in_the_next_block() {
    let mut rig = Rig::new(&[]);
    let c = client();
    rig.blocks(4);
    let note = OscPacket::Message(OscMessage {
        addr: "/lel/synth/note".into(),
        args: vec![OscType::Int(69), OscType::Int(127)],
    });
    let cc = OscPacket::Message(OscMessage {
        addr: "/lel/synth/cc".into(),
        args: vec![OscType::Int(7), OscType::Int(32)],
    });
    let bundle = rosc::encoder::encode(&OscPacket::Bundle(rosc::OscBundle {
        timetag: (0, 1).into(),
        content: vec![note, cc],
    }))
    .unwrap();
    c.send_to(&bundle, rig.addr()).unwrap();
    rig.take();
    let at = rig.r.clock() as usize;
    rig.blocks(3);
    let left = rig.left();
    assert_eq!(peak(&left[..at]), 0.0, "nothing before the bundle's block");
    assert!(left[at + 1] != 0.0, "the note from the block's first frame");
    let first = peak(&left[at..at + BLOCK]);
    assert!(
        (first - 32.0 / 127.0).abs() < 0.01,
        "the note, then CC 7 = 32 at the same frame: {first}"
    );
    let next = peak(&left[at + BLOCK..at + 2 * BLOCK]);
    assert!((next - 0.5).abs() < 0.01, "the cell's gain again: {next}");

    // A lone /cc: exactly the block after it arrived.
    c.send_to(
        &msg("/lel/synth/cc", vec![OscType::Int(7), OscType::Int(100)]),
        rig.addr(),
    )
    .unwrap();
    rig.take();
    let at = rig.r.clock() as usize;
    rig.blocks(2);
    let left = rig.left();
    let levels = [
        peak(&left[at - BLOCK..at]),
        peak(&left[at..at + BLOCK]),
        peak(&left[at + BLOCK..at + 2 * BLOCK]),
    ];
    let want = [0.5, 100.0 / 127.0, 0.5];
    for (l, w) in levels.iter().zip(want) {
        assert!(
            (l - w).abs() < 0.01,
            "block peaks {levels:?}, expected {want:?}"
        );
    }
}

#[test]
fn osc_queries_are_answered_and_errors_change_nothing() {
    let mut rig = Rig::new(&[("sine", fixtures::sine(330.0, 0.25))]);
    let c = client();
    rig.blocks(2);

    c.send_to(&msg("/lel/signals", vec![]), rig.addr()).unwrap();
    rig.take();
    let m = reply(&c);
    assert_eq!(m[0].addr, "/lel/signals");
    assert_eq!(
        m[0].args,
        vec![
            OscType::String("sine".into()),
            OscType::String("synth".into())
        ]
    );

    c.send_to(&msg("/lel/synth/params", vec![]), rig.addr())
        .unwrap();
    rig.take();
    let m = reply(&c);
    assert_eq!(m[0].addr, "/lel/synth/params");
    assert_eq!(m[0].args, vec![OscType::Int(1)]);
    assert_eq!(m[1].addr, "/lel/synth/param");
    assert_eq!(
        m[1].args,
        vec![
            OscType::String("gain".into()),
            OscType::Float(0.5),
            OscType::Float(0.5),
            OscType::Float(0.0),
            OscType::Float(1.0),
            OscType::String(String::new()),
            OscType::Int(0),
        ]
    );

    // Errors: each answered with /lel/error naming what is wrong.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            msg("/lel/synth/gain", vec![OscType::Float(2.0)]),
            "out of range",
        ),
        (
            msg("/lel/synth/cutoff", vec![OscType::Float(1.0)]),
            "cutoff",
        ),
        (msg("/lel/bass/gain", vec![OscType::Float(0.1)]), "bass"),
        (msg("/lel/bass/params", vec![]), "bass"),
        (
            msg("/lel/synth/note", vec![OscType::Int(300), OscType::Int(1)]),
            "key 300",
        ),
        (
            msg("/lel/synth/gain", vec![OscType::String("x".into())]),
            "number",
        ),
        (b"not osc at all".to_vec(), "malformed"),
    ];
    for (bytes, needle) in &cases {
        c.send_to(bytes, rig.addr()).unwrap();
        // Malformed packets are answered by the OSC thread itself; the rest
        // reach the control side.
        if !needle.contains("malformed")
            && !needle.contains("number")
            && !needle.contains("key 300")
        {
            rig.take();
        }
        let m = reply(&c);
        assert_eq!(m[0].addr, "/lel/error", "{needle}");
        let OscType::String(text) = &m[0].args[0] else {
            panic!("an error message string")
        };
        assert!(text.contains(needle), "`{text}` should name `{needle}`");
    }
    assert!(
        rig.rx.try_recv().is_err(),
        "nothing else reached the engine"
    );
    let p = &rig.r.params("synth").unwrap()[0];
    assert_eq!((p.value, p.user_set), (0.5, false), "the gain is unchanged");
}

/// Garbage packets of every kind, while a sine plays beside the synth:
/// the sine (alone on the right channel) stays sample-exact, and the
/// server still answers afterwards.
#[test]
fn garbage_osc_never_disturbs_the_music() {
    let sine = fixtures::sine(330.0, 0.25);
    let blocks = 200;
    let reference = {
        let mut r = Renderer::new(RenderSettings {
            sample_rate: SR,
            channels: 2,
            block: BLOCK as u32,
        })
        .unwrap();
        r.load_bytes("sine", sine.as_bytes()).unwrap();
        channel(&r.render(blocks * BLOCK), 2, 1)
    };
    let mut rig = Rig::new(&[("sine", sine)]);
    // The synth at most 0.5 (0.75 with the sine): below the master
    // limiter, which is linked across channels.
    rig.r.set_gain("synth", 0.5, 0).unwrap();
    let c = client();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = msg("/lel/synth/note", vec![OscType::Int(60), OscType::Int(100)]);
    let mut sent = 0u64;
    for _ in 0..blocks {
        for _ in 0..10 {
            let len = (rand() % 200) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
            match rand() % 4 {
                // A valid packet cut short or with bytes flipped.
                0 => {
                    bytes = valid[..(rand() as usize % valid.len())].to_vec();
                }
                1 => {
                    bytes = valid.clone();
                    let i = rand() as usize % bytes.len();
                    bytes[i] = rand() as u8;
                }
                // An address that looks right, with random arguments.
                2 => {
                    bytes = b"/lel/synth/gain\0,".to_vec();
                    bytes.extend((0..len).map(|_| rand() as u8));
                }
                _ => {}
            }
            c.send_to(&bytes, rig.addr()).unwrap();
            sent += 1;
        }
        // What parsed is applied; nothing may reach the sine.
        while let Ok(inc) = rig.rx.try_recv() {
            let at = rig.r.now();
            rig.server
                .answer(&mut rig.r, &mut MidiMap::default(), &inc, at);
        }
        rig.blocks(1);
    }
    let right = channel(&rig.out, 2, 1);
    assert_eq!(right.len(), reference.len());
    let first_diff = right.iter().zip(&reference).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "the sine beside is sample-exact");
    // The server is still there and answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rig
        .server
        .received
        .load(std::sync::atomic::Ordering::Relaxed)
        < sent
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    while rig.rx.try_recv().is_ok() {}
    let q = client();
    q.send_to(&msg("/lel/signals", vec![]), rig.addr()).unwrap();
    rig.take();
    assert_eq!(reply(&q)[0].addr, "/lel/signals");
}

/// A port free at the moment (the OS picks it; lel-host binds it next).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Ask `/lel/signals` until the live host answers with `want` playing.
pub fn wait_for_signal(c: &UdpSocket, to: SocketAddr, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        let _ = c.send_to(&msg("/lel/signals", vec![]), to);
        if let Ok((n, _)) = c.recv_from(&mut buf)
            && let Ok((_, OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n])
            && m.args.contains(&OscType::String(want.into()))
        {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            return;
        }
    }
    panic!("lel-host did not answer /lel/signals with {want} within 30 s");
}

/// `lel-host run --osc` end to end: a note and a gain change sent over UDP
/// are heard in the recording, each change on one block boundary; 10,000
/// OSC messages a second (notes and parameter changes, with garbage mixed
/// in) for two seconds cause no audio-thread allocation and no late block
/// of ours, and the host still answers.
#[test]
fn run_with_osc_plays_notes_and_parameters_live() {
    let dir = tempdir();
    let module = write(dir.path(), "synth.wat", &fixtures::synth());
    let wav = dir.path().join("live.wav");
    let port = free_port();
    let child = std::process::Command::new(lel_host_bin())
        .args([
            "run",
            "--device",
            "none",
            "--no-console",
            "--stats",
            "--seconds",
            "9",
        ])
        .arg("--osc")
        .arg(port.to_string())
        .arg("--record")
        .arg(&wav)
        .arg(&module)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lel-host");
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let c = client();
    wait_for_signal(&c, to, "synth");
    c.send_to(
        &msg("/lel/synth/note", vec![OscType::Int(81), OscType::Int(127)]),
        to,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.send_to(&msg("/lel/synth/gain", vec![OscType::Float(0.2)]), to)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The flood: 10,000 messages a second for 2 s, in bursts of 100 every
    // 10 ms; gain values that keep the level between 0.1 and 0.3, notes of
    // the same key, and one garbage packet in ten.
    let start = Instant::now();
    for burst in 0..200u32 {
        for i in 0..100u32 {
            let bytes = match i % 10 {
                0 => b"\x00garbage\xff".to_vec(),
                1..=5 => msg(
                    "/lel/synth/gain",
                    vec![OscType::Float(
                        0.1 + 0.2 * ((burst * 100 + i) % 7) as f32 / 6.0,
                    )],
                ),
                _ => msg(
                    "/lel/synth/note",
                    vec![OscType::Int(81), OscType::Int(100 + (i % 20) as i32)],
                ),
            };
            // A refused send (an ICMP answer to an earlier packet) is
            // not the host's failure: it is checked as still answering below.
            let _ = c.send_to(&bytes, to);
        }
        let next = start + Duration::from_millis(10 * (burst as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // Still answering (drain the error replies to the garbage first).
    let q = client();
    wait_for_signal(&q, to, "synth");
    let out = child.wait_with_output().expect("lel-host finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(" 0 audio-thread allocations"),
        "no allocation on the audio thread under 10,000 OSC messages a second:\n{stdout}"
    );
    assert!(
        stderr.contains(&format!("listening for OSC on 127.0.0.1:{port}")),
        "{stderr}"
    );

    let (ch, sr, samples) = read_wav(&wav);
    assert_eq!((ch, sr), (2, SR));
    let left = channel(&samples, 2, 0);
    let onset = left
        .iter()
        .position(|&x| x != 0.0)
        .expect("the note is heard");
    // Block peaks: silence, then 0.5 (gain 0.5, velocity 1), then 0.2.
    let peaks: Vec<f32> = left[onset..].chunks(BLOCK).map(peak).collect();
    let first_low = peaks
        .iter()
        .position(|&p| p < 0.3)
        .expect("the gain change is heard");
    assert!(first_low > 50, "about 0.5 s of the note at 0.5 first");
    assert!(
        peaks[..first_low - 1]
            .iter()
            .all(|&p| (p - 0.5).abs() < 0.02),
        "0.5 until the change"
    );
    let f = dominant_frequency(&left[onset..onset + 16_384], SR);
    assert!((f - 880.0).abs() < 4.0, "key 81 is 880 Hz, got {f}");
    let after: Vec<f32> = peaks[first_low + 1..first_low + 40].to_vec();
    assert!(
        after.iter().all(|&p| (p - 0.2).abs() < 0.01),
        "0.2 after the change: {after:?}"
    );
    // During the flood the level stays within what was sent (gain 0.1 to
    // 0.3 times velocity 100..119 / 127): no stray values.
    let tail = &left[left.len() - SR as usize..];
    assert!(
        peak(tail) <= 0.3 * 119.0 / 127.0 + 0.01,
        "peak {}",
        peak(tail)
    );
}

/// MIDI learn over OSC: `/lel/synth/gain/learn`, then the next controller
/// that moves (any channel) sets the gain over its range, at once and from
/// then on; learning an unknown parameter is answered with an error.
#[test]
fn midi_learn_maps_the_next_controller() {
    let mut rig = Rig::new(&[]);
    let mut map = MidiMap::default();
    let c = client();
    c.send_to(&msg("/lel/synth/nope/learn", vec![]), rig.addr())
        .unwrap();
    let inc = rig.rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let at = rig.r.now();
    rig.server.answer(&mut rig.r, &mut map, &inc, at);
    let m = reply(&c);
    assert_eq!(m[0].addr, "/lel/error");
    assert!(
        format!("{:?}", m[0].args).contains("nope"),
        "{:?}",
        m[0].args
    );

    c.send_to(&msg("/lel/synth/gain/learn", vec![]), rig.addr())
        .unwrap();
    let inc = rig.rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let at = rig.r.now();
    rig.server.answer(&mut rig.r, &mut map, &inc, at);
    let midi = |rig: &mut Rig, map: &mut MidiMap, bytes: &[u8]| {
        let play = lel_host::testing::parse_midi(bytes).unwrap();
        let at = rig.r.now();
        lel_host::testing::apply(&mut rig.r, map, &lel_host::testing::Command::Midi(play), at)
            .unwrap();
    };
    midi(&mut rig, &mut map, &[0x90, 69, 127]);
    midi(&mut rig, &mut map, &[0xB3, 20, 127]); // learned: gain 1.0
    assert_eq!(rig.r.params("synth").unwrap()[0].value, 1.0);
    midi(&mut rig, &mut map, &[0xB0, 20, 0]); // any channel: gain 0
    assert_eq!(rig.r.params("synth").unwrap()[0].value, 0.0);
    midi(&mut rig, &mut map, &[0xB0, 21, 127]); // another controller: no change
    assert_eq!(rig.r.params("synth").unwrap()[0].value, 0.0);
    midi(&mut rig, &mut map, &[0xB0, 20, 50]);
    rig.blocks(40);
    let want = 50.0 / 127.0;
    let p = peak(&rig.left());
    assert!((p - want).abs() < 0.01, "gain {want} heard: {p}");
}
