//! MIDI: a Standard MIDI File (written here with midly, with tempo changes)
//! rendered with every onset on its frame and the right pitch, and its
//! controllers, bends and pressure on their frames; `--set`;
//! the MIDI map (channels, controllers to parameters); random MIDI bytes
//! that never disturb the music or allocate on the audio thread; and the
//! real path end to end: a JACK server (jackd2, dummy driver), a JACK MIDI
//! source (jack_midiseq, from jackd2's example clients) connected to
//! `lel-host run --midi`, and what the module played in `--record`; and a
//! JACK client of the test's (`tests/jack/midi_source.c`) sending
//! controllers, bends, decoys on another channel and garbage through
//! `--midi-map`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lel_host::Settings;
use lel_host::testing::{self as input, MidiMap};
use lel_host::{RenderSettings, Renderer};
use midly::num::{u4, u7, u15, u24, u28};
use midly::{Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::fixtures;
use crate::util::{
    audio_thread_allocations, channel, dominant_frequency, lel_host_bin, peak, read_wav, run_ok,
    tempdir, write,
};

const SR: u32 = 48_000;

fn hz(key: u8) -> f64 {
    440.0 * 2f64.powf((key as f64 - 69.0) / 12.0)
}

fn ev(delta: u32, kind: TrackEventKind<'static>) -> TrackEvent<'static> {
    TrackEvent {
        delta: u28::new(delta),
        kind,
    }
}

fn note(on: bool, key: u8, vel: u8) -> TrackEventKind<'static> {
    let (key, vel) = (u7::new(key), u7::new(vel));
    TrackEventKind::Midi {
        channel: u4::new(0),
        message: if on {
            MidiMessage::NoteOn { key, vel }
        } else {
            MidiMessage::NoteOff { key, vel }
        },
    }
}

/// Where each note of [`song`] starts, in frames, computed by hand from its
/// tempo map: 96 ticks a beat; 120 bpm (0.5 s a beat) for the first 4 beats
/// (2 s), then 90 bpm (2/3 s a beat) in the tempo track.
fn expected_onset(tick: u64) -> f64 {
    let beat = tick as f64 / 96.0;
    let seconds = if beat <= 4.0 {
        beat * 0.5
    } else {
        2.0 + (beat - 4.0) * (2.0 / 3.0)
    };
    seconds * SR as f64
}

/// A format-1 file: a tempo track (120 bpm, then 90 bpm at beat 4) and a
/// note track of (tick, key, length in ticks) notes at velocity 127, with
/// odd tick positions so that onsets fall between blocks.
fn song() -> (Vec<u8>, Vec<(u64, u8)>) {
    let notes: Vec<(u64, u8, u64)> = vec![
        (37, 69, 60),
        (150, 76, 50),
        (290, 57, 70),
        (401, 72, 60), // the tempo changes at tick 384
        (530, 64, 80),
        (700, 81, 40),
    ];
    let tempo = vec![
        ev(
            0,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000))),
        ),
        ev(
            384,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(666_667))),
        ),
        ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
    ];
    let mut track = Vec::new();
    let mut now = 0u64;
    for &(t, k, len) in &notes {
        track.push(ev((t - now) as u32, note(true, k, 127)));
        track.push(ev(len as u32, note(false, k, 0)));
        now = t + len;
    }
    track.push(ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)));
    let smf = Smf {
        header: Header::new(midly::Format::Parallel, Timing::Metrical(u15::new(96))),
        tracks: vec![tempo, track],
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    (bytes, notes.iter().map(|&(t, k, _)| (t, k)).collect())
}

/// Onsets: the first non-zero sample after at least `gap` exact zeros.
fn onsets(x: &[f32], gap: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut zeros = gap;
    for (i, &v) in x.iter().enumerate() {
        if v == 0.0 {
            zeros += 1;
        } else {
            if zeros >= gap {
                out.push(i);
            }
            zeros = 0;
        }
    }
    out
}

#[test]
fn render_midi_file_puts_every_onset_on_its_frame_with_its_pitch() {
    let dir = tempdir();
    let module = write(dir.path(), "synth.wat", &fixtures::synth());
    let (bytes, notes) = song();
    let mid = dir.path().join("song.mid");
    std::fs::write(&mid, bytes).unwrap();
    let wav = dir.path().join("song.wav");
    run_ok(
        Command::new(lel_host_bin())
            .arg("render")
            .arg(&module)
            .arg("--midi")
            .arg(&mid)
            .args(["--set", "synth.gain=0.8", "--seconds", "6.5", "-o"])
            .arg(&wav),
        "render --midi",
        "",
    );
    let (_, sr, samples) = read_wav(&wav);
    assert_eq!(sr, SR);
    let left = channel(&samples, 2, 0);
    let found = onsets(&left, 1000);
    assert_eq!(found.len(), notes.len(), "one onset per note: {found:?}");
    for (i, (&(tick, key), &at)) in notes.iter().zip(&found).enumerate() {
        let want = expected_onset(tick);
        // The first sample may be an exact zero of the sine: within one sample.
        assert!(
            (at as f64 - want).abs() <= 1.0,
            "note {i} (tick {tick}) starts at frame {at}, expected {want:.2}"
        );
        let seg = &left[at..at + 8192];
        let f = dominant_frequency(seg, SR);
        assert!(
            (f - hz(key)).abs() < hz(key) * 0.01,
            "note {i}: key {key} should sound at {:.1} Hz, found {f:.1}",
            hz(key)
        );
        // --set synth.gain=0.8, velocity 127.
        let p = peak(seg);
        assert!((p - 0.8).abs() < 0.01, "note {i}: peak {p}");
    }
}

/// A 0.2 guest that shows every event kind as a level, so the render shows
/// the exact frame of each: 4 channels, the latest control-change value,
/// the pitch bend, the channel pressure, and the velocity of the held note
/// (0 after its note-off). Events apply at their frames.
fn event_probe() -> String {
    r#"(module
  (memory (export "memory") 4)
  (global $cc (mut f32) (f32.const 0))
  (global $bend (mut f32) (f32.const 0))
  (global $pressure (mut f32) (f32.const 0))
  (global $velocity (mut f32) (f32.const 0))
  (global $key (mut i32) (i32.const -1))
  (func (export "events-ptr") (result i32) (i32.const 8192))
  (func (export "events-len") (result i32) (i32.const 4096))
  (func (export "init") (param i32 i32) (result i32) (i32.const 4))
  (func $event (param $e i32)
    (local $kind i32) (local $v f32)
    (local.set $kind (i32.load8_u offset=4 (local.get $e)))
    (local.set $v (f32.load offset=8 (local.get $e)))
    (if (i32.eq (local.get $kind) (i32.const 1)) (then
      (global.set $key (i32.load16_u offset=6 (local.get $e)))
      (global.set $velocity (local.get $v))))
    (if (i32.and (i32.eq (local.get $kind) (i32.const 2))
          (i32.eq (i32.load16_u offset=6 (local.get $e)) (global.get $key)))
      (then (global.set $velocity (f32.const 0))))
    (if (i32.eq (local.get $kind) (i32.const 3)) (then (global.set $cc (local.get $v))))
    (if (i32.eq (local.get $kind) (i32.const 4)) (then (global.set $bend (local.get $v))))
    (if (i32.eq (local.get $kind) (i32.const 5)) (then (global.set $pressure (local.get $v)))))
  (func (export "process") (param $frames i32) (param $clock i64) (param $n i32) (result i32)
    (local $i i32) (local $e i32) (local $ev i32) (local $p i32)
    (local.set $p (i32.const 65536))
    (block $end (loop $frame
      (br_if $end (i32.ge_u (local.get $i) (local.get $frames)))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $e) (local.get $n)))
        (local.set $ev (i32.add (i32.const 8192) (i32.shl (local.get $e) (i32.const 4))))
        (br_if $done (i32.gt_u (i32.load (local.get $ev)) (local.get $i)))
        (call $event (local.get $ev))
        (local.set $e (i32.add (local.get $e) (i32.const 1)))
        (br $next)))
      (f32.store (local.get $p) (global.get $cc))
      (f32.store offset=4 (local.get $p) (global.get $bend))
      (f32.store offset=8 (local.get $p) (global.get $pressure))
      (f32.store offset=12 (local.get $p) (global.get $velocity))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $frame)))
    (i32.const 65536)))
"#
    .to_string()
}

/// `render --midi` plays a file's controllers, pitch bends and channel
/// pressure as well as its notes, each from its exact frame through the
/// tempo map (computed here by hand), with its value: the probe's four
/// channels, compared frame by frame with the levels they must hold.
#[test]
fn render_midi_file_puts_controllers_bend_and_pressure_on_their_frames() {
    use midly::PitchBend;
    use midly::num::u14;
    let on = |channel: u8, message: MidiMessage| TrackEventKind::Midi {
        channel: u4::new(channel),
        message,
    };
    let cc = |v: u8| MidiMessage::Controller {
        controller: u7::new(1),
        value: u7::new(v),
    };
    let bend = |raw: u16| MidiMessage::PitchBend {
        bend: PitchBend(u14::new(raw)),
    };
    let pressure = |v: u8| MidiMessage::ChannelAftertouch { vel: u7::new(v) };
    let note_on = |key: u8, v: u8| MidiMessage::NoteOn {
        key: u7::new(key),
        vel: u7::new(v),
    };
    let note_off = |key: u8| MidiMessage::NoteOff {
        key: u7::new(key),
        vel: u7::new(0),
    };
    // (tick, message, channel of the probe it moves, the value it shows).
    let script: Vec<(u64, MidiMessage, usize, f32)> = vec![
        (37, cc(64), 0, 64.0 / 127.0),
        (101, bend(6144), 1, -0.25),
        (150, note_on(60, 100), 3, 100.0 / 127.0),
        (211, pressure(90), 2, 90.0 / 127.0),
        (290, note_off(60), 3, 0.0),
        (401, cc(20), 0, 20.0 / 127.0), // the tempo changes at tick 384
        (455, bend(12_288), 1, 0.5),
        (530, pressure(30), 2, 30.0 / 127.0),
        (577, note_on(64, 50), 3, 50.0 / 127.0),
        (700, note_on(64, 0), 3, 0.0), // velocity 0: a note-off
    ];
    let tempo = vec![
        ev(
            0,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000))),
        ),
        ev(
            384,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(666_667))),
        ),
        ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
    ];
    let mut track = Vec::new();
    let mut now = 0;
    for &(tick, message, _, _) in &script {
        track.push(ev((tick - now) as u32, on(2, message)));
        now = tick;
    }
    track.push(ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)));
    let smf = Smf {
        header: Header::new(midly::Format::Parallel, Timing::Metrical(u15::new(96))),
        tracks: vec![tempo, track],
    };
    let dir = tempdir();
    let mid = dir.path().join("controls.mid");
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    std::fs::write(&mid, bytes).unwrap();
    let module = write(dir.path(), "probe.wat", &event_probe());
    let wav = dir.path().join("probe.wav");
    run_ok(
        Command::new(lel_host_bin())
            .arg("render")
            .arg(&module)
            .arg("--midi")
            .arg(&mid)
            .args(["--channels", "4", "--seconds", "4.5", "-o"])
            .arg(&wav),
        "render --midi",
        "",
    );
    let (ch, sr, samples) = read_wav(&wav);
    assert_eq!((ch, sr), (4, SR));
    for probe in 0..4 {
        let x = channel(&samples, 4, probe);
        // The frames (rounded) at which this channel's value changes.
        let changes: Vec<(usize, f32)> = script
            .iter()
            .filter(|s| s.2 == probe)
            .map(|&(tick, _, _, v)| (expected_onset(tick).round() as usize, v))
            .collect();
        let mut want = 0.0f32;
        let mut next = changes.iter().peekable();
        for (n, &s) in x.iter().enumerate() {
            while let Some(&&(at, v)) = next.peek() {
                if at > n {
                    break;
                }
                want = v;
                next.next();
            }
            assert!(
                (s - want).abs() < 1e-6,
                "probe channel {probe}, frame {n}: {s}, expected {want} (changes at {changes:?})"
            );
        }
        assert!(
            next.peek().is_none(),
            "channel {probe}: every change rendered"
        );
    }
}

#[test]
fn render_set_and_midi_errors_are_named() {
    let dir = tempdir();
    let module = write(dir.path(), "synth.wat", &fixtures::synth());
    let wav = dir.path().join("x.wav");
    let bad = |args: &[&str]| {
        let out = Command::new(lel_host_bin())
            .arg("render")
            .arg(&module)
            .args(args)
            .arg("-o")
            .arg(&wav)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(bad(&["--set", "synth.gain=3"]).contains("out of range (0 to 1)"));
    assert!(bad(&["--set", "synth.cutoff=3"]).contains("cutoff"));
    assert!(bad(&["--set", "gain=3"]).contains("SIGNAL.PARAM=VALUE"));
    let junk = write(dir.path(), "junk.mid", "MThd not really");
    let e = bad(&["--midi", junk.to_str().unwrap()]);
    assert!(
        e.contains("junk.mid") && e.contains("Standard MIDI File"),
        "{e}"
    );
    let map = write(dir.path(), "map.toml", "[channels]\nsynth = [0]\n");
    let e = bad(&["--midi-map", map.to_str().unwrap()]);
    assert!(e.contains("map.toml") && e.contains("1 to 16"), "{e}");
}

fn renderer() -> Renderer {
    let mut r = Renderer::new(RenderSettings {
        sample_rate: SR,
        channels: 2,
        block: 128,
    })
    .unwrap();
    r.load_bytes("synth", fixtures::synth().as_bytes()).unwrap();
    r
}

/// The map: a signal hears only its channels; a mapped controller sets the
/// parameter over its range.
#[test]
fn midi_map_routes_channels_and_controllers() {
    let mut map = MidiMap::parse(
        "[channels]\nsynth = [2]\n\n[[cc]]\ncontroller = 74\nparam = \"synth.gain\"\n",
    )
    .unwrap();
    let mut r = renderer();
    let mut midi = |r: &mut Renderer, bytes: &[u8]| {
        let play = input::parse_midi(bytes).expect("a channel message");
        let at = r.clock();
        input::apply(r, &mut map, &input::Command::Midi(play), at).unwrap();
    };
    midi(&mut r, &[0x90, 69, 127]); // channel 1: not heard
    let a = channel(&r.render(4800), 2, 0);
    assert_eq!(peak(&a), 0.0, "channel 1 is not routed to synth");
    midi(&mut r, &[0x91, 69, 127]); // channel 2
    let b = channel(&r.render(4800), 2, 0);
    assert!(
        (peak(&b) - 0.5).abs() < 0.01,
        "channel 2 plays: {}",
        peak(&b)
    );
    midi(&mut r, &[0xB5, 74, 100]); // CC 74 on any channel -> gain 100/127
    let c = channel(&r.render(4800), 2, 0);
    let want = 100.0 / 127.0;
    assert!(
        (peak(&c) - want).abs() < 0.01,
        "CC 74 at 100 sets gain {want}: {}",
        peak(&c)
    );
    assert!((r.params("synth").unwrap()[0].value - want).abs() < 1e-6);
    midi(&mut r, &[0xB0, 74, 0]);
    let d = channel(&r.render(4800), 2, 0);
    assert_eq!(peak(&d[128..]), 0.0, "CC 74 at 0 sets gain 0");
}

/// Random MIDI bytes, 10,000 messages a second of audio, into a synth with
/// a sine beside it: nothing crashes, the sine (right channel) stays
/// sample-exact, and the audio thread allocates nothing.
#[test]
fn random_midi_bytes_never_disturb_the_music_or_allocate() {
    let sine = fixtures::sine(330.0, 0.25);
    let seconds = 3usize;
    let settings = Settings {
        sample_rate: SR,
        channels: 2,
        block: 128,
        check_alloc: true,
        ..Settings::default()
    };
    let mut reference = Renderer::with_settings(settings.clone()).unwrap();
    reference.load_bytes("sine", sine.as_bytes()).unwrap();
    let want = channel(&reference.render(seconds * SR as usize), 2, 1);

    let mut r = Renderer::with_settings(settings).unwrap();
    r.load_bytes("synth", fixtures::synth().as_bytes()).unwrap();
    r.load_bytes("sine", sine.as_bytes()).unwrap();
    // The synth at most 0.5 (0.75 with the sine): below the master
    // limiter, which is linked across channels.
    r.set_gain("synth", 0.5, 0).unwrap();
    let mut map = MidiMap::default();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = Vec::new();
    let (mut parsed, mut sent) = (0u64, 0u64);
    // 100-frame chunks carry 60 messages each (28,800 a second): half of
    // them random bytes, half random channel messages (of which note on
    // and off, control change, pressure and bend are events: over 10,000
    // events a second).
    while out.len() < seconds * SR as usize * 2 {
        for k in 0..60 {
            let len = (rand() % 4) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
            if k % 2 == 0 {
                bytes = vec![
                    0x80 | (rand() as u8 % 0x70),
                    rand() as u8 & 0x7F,
                    rand() as u8 & 0x7F,
                ];
            }
            sent += 1;
            if let Some(play) = input::parse_midi(&bytes) {
                parsed += 1;
                let at = r.clock() + rand() % 100;
                let _ = input::apply(&mut r, &mut map, &input::Command::Midi(play), at);
            }
        }
        out.extend(r.render(100));
    }
    assert!(
        parsed >= 10_000 * seconds as u64,
        "{sent} sent, {parsed} parsed: 10,000 events a second"
    );
    let right = channel(&out, 2, 1);
    let first_diff = right.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "the sine beside is sample-exact");
    assert_eq!(
        audio_thread_allocations(&mut r),
        0,
        "no audio-thread allocation"
    );
    assert!(
        peak(&channel(&out, 2, 0)) > 0.0,
        "the synth played the notes that parsed"
    );
}

const JACK_HINT: &str =
    "JACK (jackd2) is needed for the MIDI test: run scripts/setup (apt-get install jackd2)";

/// A JACK server for the test (the dummy driver), stopped on drop. One at
/// a time on the machine, under a fixed name: JACK keeps a small registry
/// of servers in shared memory, and a server that died without stopping
/// leaves its entry behind; an entry of the same name is reclaimed, one of
/// another name fills the registry ("Too many servers already active").
struct Jack {
    name: String,
    children: Vec<Child>,
    _lock: std::fs::File,
}

/// Stop a child gracefully (SIGTERM: jackd leaves JACK's registry clean),
/// and kill it if it does not end within 5 s.
fn stop(c: &mut Child) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Jack {
    fn start() -> Jack {
        for tool in ["jackd", "jack_midiseq", "jack_lsp"] {
            let found = std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
            assert!(found, "`{tool}` not found. {JACK_HINT}");
        }
        let lock = std::fs::File::create(std::env::temp_dir().join("lel-host-jack-test.lock"))
            .expect("create the JACK test lock file");
        // SAFETY: flock(2) on a file descriptor we own, for the File's life.
        let r = unsafe {
            use std::os::fd::AsRawFd as _;
            libc::flock(lock.as_raw_fd(), libc::LOCK_EX)
        };
        assert_eq!(r, 0, "lock the JACK test lock file");
        let name = "lel-host-test".to_string();
        // jackd's messages, for a failure's report (a file: a pipe nobody
        // reads could fill and stall the server).
        let log_path = std::env::temp_dir().join("lel-host-jack-test.log");
        let log = std::fs::File::create(&log_path).expect("create the jackd log");
        let server = Command::new("jackd")
            .args([
                "--no-realtime",
                "-n",
                &name,
                "-d",
                "dummy",
                "-r",
                "48000",
                "-p",
                "256",
            ])
            .env("JACK_NO_START_SERVER", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start jackd: {e}. {JACK_HINT}"));
        let mut jack = Jack {
            name,
            children: vec![server],
            _lock: lock,
        };
        // Up when it lists its ports.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = jack.cmd("jack_lsp").output().unwrap();
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("system:") {
                break;
            }
            if let Ok(Some(status)) = jack.children[0].try_wait() {
                let err = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("jackd exited ({status}) before it was ready:\n{err}\n{JACK_HINT}");
            }
            assert!(Instant::now() < deadline, "jackd did not start within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        jack
    }

    /// A command talking to this server.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("JACK_DEFAULT_SERVER", &self.name)
            .env("JACK_NO_START_SERVER", "1");
        c
    }

    /// Start a client and wait until its port `port` exists.
    fn client(&mut self, c: &mut Command, port: &str) {
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}. {JACK_HINT}"));
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.cmd("jack_lsp").output().unwrap();
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == port)
            {
                return;
            }
            assert!(Instant::now() < deadline, "JACK port {port} did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `lel-host run MODULE --midi PORT --record WAV` on this server.
    fn lel_host(&self, module: &Path, port: &str, wav: &Path, seconds: &str) -> (String, String) {
        let out = run_ok(
            self.cmd(lel_host_bin().to_str().unwrap())
                .args([
                    "run",
                    "--device",
                    "none",
                    "--no-console",
                    "--stats",
                    "--seconds",
                    seconds,
                ])
                .args(["--midi", port, "--record"])
                .arg(wav)
                .arg(module),
            "lel-host run --midi",
            "",
        );
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

impl Drop for Jack {
    fn drop(&mut self) {
        // Clients first, the server last.
        for c in self.children.iter_mut().rev() {
            stop(c);
        }
    }
}

/// `tests/jack/midi_source.c` built into `dir` (a JACK MIDI source of the
/// tests': a script with decoys and garbage, or a dense stream).
fn midi_source(dir: &Path) -> std::path::PathBuf {
    let source = dir.join("midi_source");
    run_ok(
        Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&source)
            .arg(crate::util::repo_root().join("tests/jack/midi_source.c"))
            .arg("-ljack"),
        "cc midi_source.c",
        "install a C compiler and JACK's headers: apt-get install gcc libjack-jackd2-dev (scripts/setup does)",
    );
    source
}

/// What lel-host reported about its JACK MIDI input when it closed:
/// (messages taken, allocations on JACK's process thread).
fn jack_thread_report(stderr: &str, port: &str) -> (u64, u64) {
    let head = format!("MIDI from {port}: ");
    let line = stderr
        .lines()
        .find_map(|l| l.split_once(&head).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no report on the MIDI input from {port}:\n{stderr}"));
    let num = |s: &str| -> u64 {
        s.trim()
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number in {line:?}"))
    };
    let (messages, rest) = line.split_once(" messages, ").expect("messages");
    (num(messages), num(rest))
}

/// The real MIDI path: jack_midiseq plays A4 (key 69, velocity 64) for
/// 12,000 frames every 24,000 frames into lel-host's JACK MIDI input; the
/// recording holds those notes, at 440 Hz, with those lengths and that
/// spacing. A second run takes 10,000 MIDI events a second through JACK
/// with no audio-thread allocation.
#[test]
fn jack_midi_plays_the_module_end_to_end() {
    let dir = tempdir();
    let module = write(dir.path(), "synth.wat", &fixtures::synth());
    let mut jack = Jack::start();
    jack.client(
        jack.cmd("jack_midiseq")
            .args(["lelseq", "24000", "0", "69", "12000"]),
        "lelseq:out",
    );
    let wav = dir.path().join("jack.wav");
    // `lel-host devices` lists the source; `--midi` takes its number.
    let devices = run_ok(
        jack.cmd(lel_host_bin().to_str().unwrap()).arg("devices"),
        "lel-host devices",
        "",
    );
    let listing = String::from_utf8_lossy(&devices.stdout).to_string();
    let number = listing
        .lines()
        .find_map(|l| l.trim().strip_suffix(": lelseq:out"))
        .unwrap_or_else(|| panic!("`devices` lists lelseq:out as a MIDI source:\n{listing}"))
        .to_string();
    let (_, stderr) = jack.lel_host(&module, &number, &wav, "4");
    assert!(stderr.contains("playing MIDI from lelseq:out"), "{stderr}");
    let (_, sr, samples) = read_wav(&wav);
    assert_eq!(sr, SR);
    let left = channel(&samples, 2, 0);
    let starts = onsets(&left, 2000);
    assert!(starts.len() >= 4, "at least 4 notes in 4 s: {starts:?}");
    // JACK's dummy driver keeps time by sleeping, without real-time
    // priority here, so its clock runs slow against lel-host's: 4 % on an
    // idle machine, over 20 % on this loaded one, and unevenly when the
    // machine is busy (a stall can stretch one spacing); and a note lands
    // at the start of lel-host's next block. So: every note at its pitch
    // and level; and the rhythm, the spacing from 0.9 to 1.6 times 24,000
    // frames and each note about half of it (JACK's ratio), in at least 3
    // of the spacings.
    let mut in_time = 0;
    for (w, &s) in starts.windows(2).zip(&starts) {
        let period = (w[1] - w[0]) as f64;
        let end = s + left[s..]
            .windows(64)
            .position(|w| w.iter().all(|&x| x == 0.0))
            .expect("the note ends");
        let d = (end - s) as f64;
        if (0.9..1.6).contains(&(period / 24_000.0)) && (d / period - 0.5).abs() < 0.1 {
            in_time += 1;
        } else {
            eprintln!("a note of {d} frames, {period} before the next: JACK's clock stalled");
        }
        let seg = &left[s..s + 8192];
        let f = dominant_frequency(seg, SR);
        assert!((f - 440.0).abs() < 3.0, "key 69 is 440 Hz, found {f}");
        let p = peak(seg);
        let want = 0.5 * 64.0 / 127.0;
        assert!((p - want).abs() < 0.01, "gain 0.5 x velocity 64: {p}");
    }
    assert!(
        in_time >= 3,
        "notes 24,000 frames apart, each half of it (on JACK's clock), in {in_time} spacings of {starts:?}"
    );

    // Over 10,000 events a second: the test's source in its dense mode
    // (100 notes on and off every JACK cycle, about 18,750 a second on
    // JACK's clock, which runs slow here), for 4 s.
    let source = midi_source(dir.path());
    jack.client(
        jack.cmd(source.to_str().unwrap()).args(["dense", "dense"]),
        "dense:out",
    );
    let wav = dir.path().join("dense.wav");
    let (stdout, stderr) = jack.lel_host(&module, "dense:out", &wav, "4");
    assert!(stderr.contains("playing MIDI from dense:out"), "{stderr}");
    assert!(
        stdout.contains(" 0 audio-thread allocations"),
        "no allocation on the audio thread under 10,000 MIDI events a second:\n{stdout}"
    );
    // Nor on JACK's process thread, where lel-host's callback reads them;
    // and over 10,000 a second were taken (30,000 in at most 4 s).
    let (messages, allocations) = jack_thread_report(&stderr, "dense:out");
    assert!(messages >= 30_000, "{messages} MIDI messages taken in 4 s");
    assert_eq!(allocations, 0, "allocations on JACK's process thread");
    let (_, _, samples) = read_wav(&wav);
    let left = channel(&samples, 2, 0);
    // Every cycle ends on a held note: the synth sounds throughout.
    let busy = left.chunks(4800).skip(10).filter(|c| peak(c) > 0.1).count();
    assert!(
        busy >= 25,
        "the dense notes are heard ({busy} of 30 chunks)"
    );
}

/// `lel-host run --midi keys` for one second of a sine, with `env` set,
/// where MIDI cannot work: exactly one line of its log speaks of JACK, it
/// holds every one of `words`, and the sine plays on.
fn midi_fails_in_one_line_and_the_sine_plays_on(env: (&str, &Path), what: &str, words: &[&str]) {
    let dir = tempdir();
    let module = write(dir.path(), "sine.wat", &fixtures::sine(440.0, 0.5));
    let wav = dir.path().join("out.wav");
    let out = run_ok(
        Command::new(lel_host_bin())
            .env(env.0, env.1)
            .env("JACK_NO_START_SERVER", "1")
            .args(["run", "--device", "none", "--no-console", "--seconds", "1"])
            .args(["--midi", "keys", "--record"])
            .arg(&wav)
            .arg(&module),
        what,
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.to_lowercase().contains("jack"))
        .collect();
    assert_eq!(lines.len(), 1, "one line about MIDI: {stderr}");
    for w in words {
        assert!(lines[0].contains(w), "{w:?} in the line: {stderr}");
    }
    let (_, _, samples) = read_wav(&wav);
    let left = channel(&samples, 2, 0);
    assert!((peak(&left) - 0.5).abs() < 0.01, "the sine plays on");
    let f = dominant_frequency(&left[4800..], SR);
    assert!((f - 440.0).abs() < 3.0, "{f} Hz");
}

/// No JACK server: `--midi` says so in one line and the music plays on.
#[test]
fn midi_without_a_jack_server_says_so_and_plays_on() {
    midi_fails_in_one_line_and_the_sine_plays_on(
        ("JACK_DEFAULT_SERVER", Path::new("lel-test-no-such-server")),
        "lel-host run --midi without JACK",
        &["--midi", "no JACK server"],
    );
}

/// The real MIDI path with every kind of message and garbage:
/// `tests/jack/midi_source.c` (built here with `cc`, a JACK client) plays
/// `examples/wat/mono.wat` (as `lead`) on channel 2 through `lel-host run
/// --midi --midi-map`: a controller mapped to its `level`, notes, a pitch
/// bend, decoys on channel 1 (a note, the controller at 0, a full bend)
/// that the map keeps from `lead`, and 60 garbage events every JACK cycle
/// (about 11,000 a second: stray data, system bytes, cut and corrupted
/// channel-2 messages, random channel-1 messages). The recording holds the
/// script exactly: every note at 440 Hz with the level the controller set,
/// the bend heard a semitone up on every other note, the decoys never
/// heard; the run ends on time with 0 audio-thread allocations.
#[test]
fn jack_midi_controllers_bend_and_garbage_end_to_end() {
    let dir = tempdir();
    let source = midi_source(dir.path());
    let module = write(
        dir.path(),
        "lead.wat",
        &fixtures::example("examples/wat/mono.wat"),
    );
    let map = write(
        dir.path(),
        "map.toml",
        "[channels]\nlead = [2]\n\n[[cc]]\ncontroller = 74\nparam = \"lead.level\"\nchannel = 2\n",
    );
    let mut jack = Jack::start();
    jack.client(jack.cmd(source.to_str().unwrap()).arg("src"), "src:out");
    let wav = dir.path().join("lead.wav");
    let out = run_ok(
        jack.cmd(lel_host_bin().to_str().unwrap())
            .args(["run", "--device", "none", "--no-console", "--stats"])
            .args(["--seconds", "8", "--midi", "src:out", "--midi-map"])
            .arg(&map)
            .arg("--record")
            .arg(&wav)
            .arg(&module),
        "lel-host run --midi --midi-map",
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("playing MIDI from src:out"), "{stderr}");
    // Garbage included, JACK's process thread allocated nothing in our
    // callback; only channel messages were taken.
    let (_, allocations) = jack_thread_report(&stderr, "src:out");
    assert_eq!(allocations, 0, "allocations on JACK's process thread");
    assert!(
        stdout.contains(" 0 audio-thread allocations"),
        "no allocation on the audio thread:\n{stdout}"
    );
    let (_, sr, samples) = read_wav(&wav);
    assert_eq!(sr, SR);
    let left = channel(&samples, 2, 0);
    assert!(
        left.len() >= 6 * SR as usize,
        "most of the 8 s run was recorded (late blocks on a loaded machine lose some): {} frames",
        left.len()
    );
    let starts = onsets(&left, 2000);
    // The first onset may be a note already under way when lel-host
    // connected: the notes from the second on are checked.
    assert!(starts.len() >= 5, "at least 5 notes in 8 s: {starts:?}");
    let (high, low) = (100.0 / 127.0, 50.0 / 127.0);
    let mut levels = Vec::new();
    for &s in &starts[1..] {
        let Some(d) = left[s..]
            .windows(64)
            .position(|w| w.iter().all(|&x| x == 0.0))
        else {
            continue; // still sounding at the end of the recording
        };
        // lel-host frames per JACK frame over this note (24,000 JACK frames
        // long): JACK's dummy clock runs slow here, and unevenly when the
        // machine is loaded (JACK runs its clients without real-time
        // priority in this test), so a note it stretched or cut is not
        // checked; at least three notes must be.
        let r = d as f64 / 24_000.0;
        if !(0.9..1.6).contains(&r) {
            eprintln!("a note of {d} frames (not 24,000 JACK frames): skipped");
            continue;
        }
        let at = |jack_frames: f64| s + (jack_frames * r) as usize;
        // The bend comes 8,000 JACK frames into the note.
        let before_bend = &left[s + 1500..at(6000.0)];
        let after_bend = &left[at(11_000.0)..at(22_000.0)];
        let level = peak(before_bend) as f64;
        let bent = if (level - high).abs() < 0.01 {
            true
        } else {
            assert!(
                (level - low).abs() < 0.01,
                "the level is CC 74's on channel 2 (100 or 50 of 127), not a decoy's: {level}"
            );
            false
        };
        levels.push(bent);
        let f = dominant_frequency(before_bend, SR);
        assert!(
            (f - 440.0).abs() < 4.0,
            "key 69 at 440 Hz (no decoy note or bend): {f}"
        );
        let want = if bent { 466.16 } else { 440.0 };
        let f = dominant_frequency(after_bend, SR);
        assert!((f - want).abs() < 4.0, "after the bend time {want} Hz: {f}");
        assert!(
            (peak(after_bend) as f64 - level).abs() < 0.01,
            "the level holds through the note"
        );
    }
    assert!(levels.len() >= 3, "at least 3 notes checked: {levels:?}");
    assert!(
        levels.contains(&true) && levels.contains(&false),
        "both of the controller's values heard: {levels:?}"
    );
}

/// No libjack (a file of that name that is no library, first on
/// `LD_LIBRARY_PATH`, stands in for a machine without JACK): `--midi` says
/// so in one line naming the package, the music plays on, and `devices`
/// says the same about MIDI sources.
#[test]
fn midi_without_libjack_says_so_and_plays_on() {
    let dir = tempdir();
    let libs = dir.path().join("lib");
    std::fs::create_dir(&libs).unwrap();
    std::fs::write(libs.join("libjack.so.0"), b"not a library").unwrap();
    midi_fails_in_one_line_and_the_sine_plays_on(
        ("LD_LIBRARY_PATH", &libs),
        "lel-host run --midi without libjack",
        &["--midi", "JACK is not installed", "apt-get install jackd2"],
    );
    let devices = run_ok(
        Command::new(lel_host_bin())
            .env("LD_LIBRARY_PATH", &libs)
            .arg("devices"),
        "lel-host devices without libjack",
        "",
    );
    let listing = String::from_utf8_lossy(&devices.stdout);
    assert!(
        listing.contains("MIDI sources: JACK is not installed"),
        "{listing}"
    );
}

/// Both sources at once, live: over 10,000 MIDI events a second through
/// JACK (the test's source, dense) into one synth and 10,000 OSC messages a
/// second (notes and gain changes) into another, for two seconds: 0
/// audio-thread allocations (and none on JACK's process thread), both
/// heard, and the host still answers OSC afterwards.
#[test]
fn osc_and_jack_midi_floods_at_once_allocate_nothing() {
    use crate::osc::{client, free_port, msg, wait_for_signal};
    use rosc::OscType;
    let dir = tempdir();
    let synth = write(dir.path(), "synth.wat", &fixtures::synth());
    let pad = write(dir.path(), "pad.wat", &fixtures::synth());
    // The pad hears no MIDI (jack_midiseq plays channel 1): OSC only.
    let map = write(dir.path(), "map.toml", "[channels]\npad = [16]\n");
    let source = midi_source(dir.path());
    let mut jack = Jack::start();
    jack.client(
        jack.cmd(source.to_str().unwrap()).args(["dense", "dense"]),
        "dense:out",
    );
    let wav = dir.path().join("both.wav");
    let port = free_port();
    let child = jack
        .cmd(lel_host_bin().to_str().unwrap())
        .args(["run", "--device", "none", "--no-console", "--stats"])
        .args(["--seconds", "6", "--midi", "dense:out", "--midi-map"])
        .arg(&map)
        .arg("--osc")
        .arg(port.to_string())
        .arg("--record")
        .arg(&wav)
        .arg(&synth)
        .arg(&pad)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lel-host");
    let to: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let c = client();
    wait_for_signal(&c, to, "pad");
    // 10,000 messages a second for 2 s, in bursts of 100 every 10 ms: gain
    // changes and notes for the pad.
    let start = Instant::now();
    for burst in 0..200u32 {
        for i in 0..100u32 {
            let bytes = if i % 2 == 0 {
                msg(
                    "/lel/pad/gain",
                    vec![OscType::Float(0.05 + 0.1 * ((burst + i) % 5) as f32 / 4.0)],
                )
            } else {
                msg(
                    "/lel/pad/note",
                    vec![OscType::Int(72 + (i % 12) as i32), OscType::Int(100)],
                )
            };
            let _ = c.send_to(&bytes, to);
        }
        let next = start + Duration::from_millis(10 * (burst as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // Still answering and still taking parameter changes: a last gain,
    // then the pad's parameters asked for (UDP may drop a datagram on a
    // busy machine: up to five tries).
    wait_for_signal(&client(), to, "synth");
    let q = client();
    let gain_now = || {
        q.send_to(&msg("/lel/pad/gain", vec![OscType::Float(0.0625)]), to)
            .unwrap();
        q.send_to(&msg("/lel/pad/params", vec![]), to).unwrap();
        let params = crate::osc::reply(&q);
        params
            .iter()
            .find(|m| m.args.first() == Some(&OscType::String("gain".into())))
            .and_then(|m| m.args.get(1).cloned())
    };
    let got: Vec<_> = (0..5).map(|_| gain_now()).collect();
    assert!(
        got.contains(&Some(OscType::Float(0.0625))),
        "the pad takes a gain after the floods: {got:?}"
    );
    let out = child.wait_with_output().expect("lel-host finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("playing MIDI from dense:out"), "{stderr}");
    let (messages, allocations) = jack_thread_report(&stderr, "dense:out");
    assert!(messages >= 40_000, "{messages} MIDI messages taken in 6 s");
    assert_eq!(allocations, 0, "allocations on JACK's process thread");
    assert!(
        stdout.contains(" 0 audio-thread allocations"),
        "no allocation on the audio thread under 10,000 OSC and 10,000 MIDI events a second:\n{stdout}"
    );
    let (_, _, samples) = read_wav(&wav);
    assert!(samples.iter().all(|x| x.is_finite()));
    let left = channel(&samples, 2, 0);
    // Both busy: the synth's dense notes (48 of every 96 frames) and the
    // pad's held notes; chunks of 0.1 s with sound, most of the run.
    let busy = left
        .chunks(4800)
        .skip(10)
        .filter(|c| peak(c) > 0.05)
        .count();
    assert!(busy >= 30, "the floods are heard ({busy} of the chunks)");
}
