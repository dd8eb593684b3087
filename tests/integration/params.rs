//! Contract 0.2 (`lel:signal@0.2.0`): parameters and events, on rendered
//! audio, with WAT guests written here. A 0.1.0 module plays as before; a
//! parameter change lands on its exact frame; values survive reloads (the
//! player's kept, unset ones take the new default); a note starts sound at
//! its frame; events beyond a guest's buffer come in the next blocks at
//! frame 0; every `param` error code with its message; no allocation on the
//! audio thread under 10,000 events a second; 1 and 2 threads bit-identical.

use std::time::Duration;

use lel_host::{NoteEvent, Renderer, Settings};

use crate::fixtures;
use crate::util::*;

const SR: u32 = 48_000;

fn engine(threads: usize) -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: 128,
        threads,
        parallel_min: Duration::ZERO,
        check_alloc: true,
        init_timeout: Duration::from_millis(500),
        ..Settings::default()
    })
    .expect("engine")
}

pub(crate) const IMPORTS: &str = r#"
  (import "lel:signal/host@0.2.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (import "lel:signal/host@0.2.0" "param" (func $param (param i32 i32 f32 f32 f32 i32 i32 i32) (result i32)))"#;

/// A 0.2 guest whose output is a plain value, so the audio shows the exact
/// frame of every change: its parameter `level` (default `level`, 0 to 0.5,
/// applied at the frame of its `param` events) plus, while a note is held,
/// a quarter of the note's velocity (applied at the note's frame; kept in
/// claimed state). Its event buffer holds `capacity` events.
pub(crate) fn dc(level: f32, capacity: u32) -> String {
    format!(
        r#"(module{IMPORTS}
  (memory (export "memory") 2)
  (data (i32.const 16) "level")
  (data (i32.const 32) "note")
  (global $level (mut i32) (i32.const 0))
  (global $note (mut i32) (i32.const 0))
  (func (export "state-ptr") (result i32) (i32.const 4096))
  (func (export "state-len") (result i32) (i32.const 256))
  (func (export "events-ptr") (result i32) (i32.const 8192))
  (func (export "events-len") (result i32) (i32.const {len}))
  (func (export "init") (param i32 i32) (result i32)
    (global.set $level (call $param (i32.const 16) (i32.const 5) (f32.const {level:?})
      (f32.const 0) (f32.const 0.5) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (i32.lt_s (global.get $level) (i32.const 0)) (then (return (global.get $level))))
    (global.set $note (call $claim (i32.const 32) (i32.const 4) (i32.const 4) (i32.const 4)))
    (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (param $n i32) (result i32)
    (local $i i32) (local $e i32) (local $ev i32) (local $lv f32) (local $kind i32)
    (local.set $lv (f32.load (global.get $level)))
    (loop $frame
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $e) (local.get $n)))
          (local.set $ev (i32.add (i32.const 8192) (i32.shl (local.get $e) (i32.const 4))))
          (br_if $done (i32.gt_u (i32.load (local.get $ev)) (local.get $i)))
          (local.set $kind (i32.load8_u offset=4 (local.get $ev)))
          (if (i32.and (i32.eq (local.get $kind) (i32.const 6))
                (i32.eqz (i32.load16_u offset=6 (local.get $ev))))
            (then (local.set $lv (f32.load offset=8 (local.get $ev)))))
          (if (i32.eq (local.get $kind) (i32.const 1))
            (then (f32.store (global.get $note)
              (f32.mul (f32.load offset=8 (local.get $ev)) (f32.const 0.25)))))
          (if (i32.eq (local.get $kind) (i32.const 2))
            (then (f32.store (global.get $note) (f32.const 0))))
          (local.set $e (i32.add (local.get $e) (i32.const 1)))
          (br $next)))
      (f32.store (i32.add (i32.const 16384) (i32.shl (local.get $i) (i32.const 2)))
        (f32.add (local.get $lv) (f32.load (global.get $note))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $frame (i32.lt_u (local.get $i) (local.get $frames))))
    (i32.const 16384)))
"#,
        len = capacity * 16
    )
}

/// `sin(2 pi t)` for `t` in [0, 1), from `examples/wat/sine.wat`.
fn sin_turns() -> String {
    let text = fixtures::example("examples/wat/sine.wat");
    let at = text
        .find("  (func $sin_turns")
        .expect("sine.wat has $sin_turns");
    let end = text.rfind(')').expect("the module ends");
    text[at..end].to_string()
}

/// A 0.2 sine with parameters `freq` (Hz; default `freq`, range `lo` to
/// `hi`) and `level` (default `level`, 0 to 0.5), both applied at their
/// events' frames; its phase is claimed state.
fn sine(freq: f32, lo: f32, hi: f32, level: f32) -> String {
    format!(
        r#"(module{IMPORTS}
  (memory (export "memory") 2)
  (data (i32.const 16) "freq")
  (data (i32.const 24) "level")
  (data (i32.const 32) "Hz")
  (data (i32.const 40) "osc#0")
  (global $freq (mut i32) (i32.const 0))
  (global $level (mut i32) (i32.const 0))
  (global $phase (mut i32) (i32.const 0))
  (global $sr (mut f64) (f64.const 48000))
  (func (export "state-ptr") (result i32) (i32.const 4096))
  (func (export "state-len") (result i32) (i32.const 256))
  (func (export "events-ptr") (result i32) (i32.const 8192))
  (func (export "events-len") (result i32) (i32.const 4096))
  (func (export "init") (param $rate i32) (param i32) (result i32)
    (global.set $sr (f64.convert_i32_u (local.get $rate)))
    (global.set $freq (call $param (i32.const 16) (i32.const 4) (f32.const {freq:?})
      (f32.const {lo:?}) (f32.const {hi:?}) (i32.const 32) (i32.const 2) (i32.const 0)))
    (global.set $level (call $param (i32.const 24) (i32.const 5) (f32.const {level:?})
      (f32.const 0) (f32.const 0.5) (i32.const 0) (i32.const 0) (i32.const 0)))
    (global.set $phase (call $claim (i32.const 40) (i32.const 5) (i32.const 8) (i32.const 8)))
    (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (param $n i32) (result i32)
    (local $i i32) (local $e i32) (local $ev i32) (local $f f64) (local $lv f64) (local $p f64)
    (local.set $f (f64.promote_f32 (f32.load (global.get $freq))))
    (local.set $lv (f64.promote_f32 (f32.load (global.get $level))))
    (local.set $p (f64.load (global.get $phase)))
    (loop $frame
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $e) (local.get $n)))
          (local.set $ev (i32.add (i32.const 8192) (i32.shl (local.get $e) (i32.const 4))))
          (br_if $done (i32.gt_u (i32.load (local.get $ev)) (local.get $i)))
          (if (i32.eq (i32.load8_u offset=4 (local.get $ev)) (i32.const 6))
            (then
              (if (i32.eqz (i32.load16_u offset=6 (local.get $ev)))
                (then (local.set $f (f64.promote_f32 (f32.load offset=8 (local.get $ev)))))
                (else (local.set $lv (f64.promote_f32 (f32.load offset=8 (local.get $ev))))))))
          (local.set $e (i32.add (local.get $e) (i32.const 1)))
          (br $next)))
      (f32.store (i32.add (i32.const 16384) (i32.shl (local.get $i) (i32.const 2)))
        (f32.demote_f64 (f64.mul (local.get $lv) (call $sin_turns (local.get $p)))))
      (local.set $p (f64.add (local.get $p) (f64.div (local.get $f) (global.get $sr))))
      (if (f64.ge (local.get $p) (f64.const 1))
        (then (local.set $p (f64.sub (local.get $p) (f64.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $frame (i32.lt_u (local.get $i) (local.get $frames))))
    (f64.store (global.get $phase) (local.get $p))
    (i32.const 16384))
{sin})
"#,
        sin = sin_turns()
    )
}

/// What the [`sine`] guest renders from frame 0 when its frequency is
/// `f0` until frame `at` and `f1` from there (the same f64 arithmetic).
fn sine_reference(f0: f32, f1: f32, at: usize, level: f32, frames: usize) -> Vec<f64> {
    let mut p = 0.0f64;
    let mut out = Vec::with_capacity(frames);
    for n in 0..frames {
        let f = if n < at { f0 } else { f1 } as f64;
        out.push(level as f64 * (std::f64::consts::TAU * p).sin());
        p += f / SR as f64;
        if p >= 1.0 {
            p -= 1.0;
        }
    }
    out
}

#[test]
fn a_0_1_module_plays_as_before_and_the_same_code_as_0_2_plays_the_same() {
    let v1 = fixtures::sine(440.0, 0.25);
    let v2 = v1
        .replace("lel:signal/host@0.1.0", "lel:signal/host@0.2.0")
        .replace(
            "(param $frames i32) (param $clock i64) (result i32)",
            "(param $frames i32) (param $clock i64) (param $events i32) (result i32)",
        );
    assert_ne!(v1, v2);
    let shape1 = lel_host::contract::validate(&wat::parse_str(&v1).unwrap()).unwrap();
    let shape2 = lel_host::contract::validate(&wat::parse_str(&v2).unwrap()).unwrap();
    assert_eq!(shape1.version, lel_host::contract::ContractVersion::V0_1);
    assert_eq!(shape2.version, lel_host::contract::ContractVersion::V0_2);
    let render = |text: &str| {
        let mut r = engine(1);
        let report = r.load_bytes("s", text.as_bytes()).unwrap().unwrap();
        assert!(report.params.is_empty());
        assert_eq!(report.event_capacity, None);
        let x = r.render(48_000);
        assert_eq!(audio_thread_allocations(&mut r), 0);
        x
    };
    let (a, b) = (render(&v1), render(&v2));
    for (n, &s) in a.iter().enumerate() {
        let ideal = sine_at(440.0, 0.25, n, SR);
        assert!((s as f64 - ideal).abs() < 1e-6, "frame {n}: {s} vs {ideal}");
    }
    assert_eq!(
        a, b,
        "0.1.0 and 0.2.0 builds of the same code render the same samples"
    );
    // A 0.2 signal ignores events it has no buffer for, and a 0.1 one too.
    let mut r = engine(1);
    r.load_bytes("s", v1.as_bytes()).unwrap();
    r.send_event("s", NoteEvent::note_on(0, 60, 1.0), 100)
        .unwrap();
    assert_eq!(r.render(48_000), a);
    assert_eq!(r.params("s"), Some(vec![]));
}

#[test]
fn a_param_change_lands_on_its_exact_frame() {
    let mut r = engine(1);
    let report = r
        .load_bytes("dc", dc(0.1, 256).as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(report.event_capacity, Some(256));
    assert_eq!(report.params.len(), 1);
    let mut x = r.render(1000);
    let at = r.clock() + 77; // the middle of a block
    assert_eq!(r.set_param("dc", "level", 0.3, at).unwrap(), 0.3);
    x.extend(r.render(1000));
    for (n, &s) in x.iter().enumerate() {
        let want = if (n as u64) < at { 0.1 } else { 0.3 };
        assert_eq!(s, want, "frame {n} (change at {at})");
    }
    let p = &r.params("dc").unwrap()[0];
    assert_eq!((p.key.as_str(), p.value, p.user_set), ("level", 0.3, true));
    assert_eq!((p.default, p.min, p.max, p.index), (0.1, 0.0, 0.5, 0));

    // A real tone: the frequency changes at its frame, phase-continuous.
    let mut r = engine(1);
    r.load_bytes("sine", sine(440.0, 20.0, 4000.0, 0.25).as_bytes())
        .unwrap();
    let mut x = r.render(24_000);
    let at = 24_000 + 77;
    assert_eq!(
        r.set_param("sine", "freq", 880.0, at as u64).unwrap(),
        880.0
    );
    x.extend(r.render(24_000));
    let want = sine_reference(440.0, 880.0, at, 0.25, x.len());
    for (n, (&s, w)) in x.iter().zip(&want).enumerate() {
        assert!(
            (s as f64 - w).abs() < 1e-6,
            "frame {n}: {s} vs {w} (change at {at})"
        );
    }
    assert!((dominant_frequency(&x[..24_000], SR) - 440.0).abs() < 1.0);
    assert!((dominant_frequency(&x[24_100..], SR) - 880.0).abs() < 1.0);
    assert!(max_step(&x) < sine_step_bound(0.25, 880.0, SR));
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn steps_snap_and_bad_requests_change_nothing() {
    let text = dc(0.1, 16).replace(
        "(global.set $note (call $claim",
        r#"(drop (call $param (i32.const 48) (i32.const 4) (f32.const 0) (f32.const 0)
      (f32.const 1) (i32.const 0) (i32.const 0) (i32.const 2)))
    (drop (call $param (i32.const 56) (i32.const 4) (f32.const 0) (f32.const -12)
      (f32.const 12) (i32.const 64) (i32.const 2) (i32.const 25)))
    (global.set $note (call $claim"#,
    );
    let text = text.replace(
        r#"(data (i32.const 32) "note")"#,
        r#"(data (i32.const 32) "note") (data (i32.const 48) "gate") (data (i32.const 56) "semi") (data (i32.const 64) "st")"#,
    );
    let mut r = engine(1);
    r.load_bytes("dc", text.as_bytes()).unwrap();
    let before = r.params("dc").unwrap();
    assert_eq!(
        before
            .iter()
            .map(|p| (p.key.as_str(), p.steps, p.index))
            .collect::<Vec<_>>(),
        vec![("level", 0, 0), ("gate", 2, 1), ("semi", 25, 2)]
    );
    assert_eq!(before[2].unit, "st");
    assert_eq!(before[2].range(), "-12 to 12 st in 25 steps");
    assert_eq!(r.set_param("dc", "gate", 0.4, 0).unwrap(), 0.0);
    assert_eq!(r.set_param("dc", "gate", 0.6, 0).unwrap(), 1.0);
    assert_eq!(r.set_param("dc", "semi", 3.4, 0).unwrap(), 3.0);
    assert_eq!(r.set_param("dc", "semi", -7.6, 0).unwrap(), -8.0);
    let x = r.render(256);
    assert!(x.iter().all(|&s| s == 0.1));
    let before = r.params("dc").unwrap();

    let err = |r: &mut Renderer, signal: &str, key: &str, v: f32| {
        format!("{:#}", r.set_param(signal, key, v, 0).unwrap_err())
    };
    assert_eq!(
        err(&mut r, "dc", "level", 0.7),
        "dc.level: 0.7 is out of range (0 to 0.5); dc.level stays 0.1"
    );
    assert_eq!(
        err(&mut r, "dc", "semi", -13.0),
        "dc.semi: -13 is out of range (-12 to 12 st in 25 steps); dc.semi stays -8"
    );
    assert_eq!(
        err(&mut r, "dc", "level", f32::NAN),
        "dc.level: NaN is out of range (0 to 0.5); dc.level stays 0.1"
    );
    assert_eq!(
        err(&mut r, "dc", "cutoff", 1.0),
        "dc has no parameter `cutoff` (its parameters: level, gate, semi)"
    );
    assert_eq!(
        err(&mut r, "bass", "level", 0.1),
        "no signal named `bass` is playing"
    );
    assert_eq!(r.params("dc").unwrap(), before, "nothing changed");
    assert_eq!(r.params("bass"), None);
    let x = r.render(256);
    assert!(x.iter().all(|&s| s == 0.1), "the sound did not change");

    // Events are checked the same way.
    let ev =
        |r: &mut Renderer, e: NoteEvent| format!("{:#}", r.send_event("dc", e, 0).unwrap_err());
    assert_eq!(
        ev(&mut r, NoteEvent::note_on(16, 60, 0.5)),
        "channel 16 for dc is out of range (0 to 15, the MIDI channel minus one)"
    );
    assert_eq!(
        ev(&mut r, NoteEvent::note_on(0, 128, 0.5)),
        "key 128 for dc is out of range (0 to 127)"
    );
    assert_eq!(
        ev(&mut r, NoteEvent::note_on(0, 60, 1.5)),
        "NoteOn value 1.5 for dc is out of range (0 to 1)"
    );
    assert_eq!(
        ev(&mut r, NoteEvent::pitch_bend(0, -1.5)),
        "PitchBend value -1.5 for dc is out of range (-1 to 1)"
    );
    assert_eq!(
        format!(
            "{:#}",
            r.send_event("bass", NoteEvent::note_on(0, 1, 1.0), 0)
                .unwrap_err()
        ),
        "no signal named `bass` is loaded"
    );
    assert!(r.render(256).iter().all(|&s| s == 0.1));
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn values_survive_reloads_the_players_kept_unset_ones_take_the_new_default() {
    let mut r = engine(1);
    r.load_bytes("sine", sine(440.0, 20.0, 4000.0, 0.25).as_bytes())
        .unwrap();
    r.render(4800);
    r.set_param("sine", "freq", 660.0, 0).unwrap();
    r.render(4800);
    // v2: new defaults for both; `freq` was set by the player, `level` not.
    r.load_bytes("sine", sine(300.0, 20.0, 4000.0, 0.1).as_bytes())
        .unwrap();
    let x = r.render(48_000);
    let tail = &x[4800..];
    assert!(
        (dominant_frequency(tail, SR) - 660.0).abs() < 0.5,
        "freq kept"
    );
    assert!(
        (peak(tail) - 0.1).abs() < 1e-3,
        "level took the new default: {}",
        peak(tail)
    );
    let p = r.params("sine").unwrap();
    assert_eq!((p[0].value, p[0].user_set), (660.0, true));
    assert_eq!((p[1].value, p[1].user_set, p[1].default), (0.1, false, 0.1));
    // v3: a narrower range clamps the player's value.
    r.load_bytes("sine", sine(300.0, 20.0, 500.0, 0.2).as_bytes())
        .unwrap();
    let x = r.render(48_000);
    assert!(
        (dominant_frequency(&x[4800..], SR) - 500.0).abs() < 0.5,
        "clamped to the new max"
    );
    assert!((peak(&x[4800..]) - 0.2).abs() < 1e-3);
    assert_eq!(r.params("sine").unwrap()[0].value, 500.0);
    // Set again, then reload mid-block with a crossfade partner: both sides
    // see the value (the new version swaps in with it).
    r.set_param("sine", "level", 0.05, r.clock() + 5).unwrap();
    r.load_bytes("sine", sine(300.0, 20.0, 4000.0, 0.4).as_bytes())
        .unwrap();
    let x = r.render(48_000);
    assert!(
        (peak(&x[4800..]) - 0.05).abs() < 1e-3,
        "{}",
        peak(&x[4800..])
    );
    assert!(
        (dominant_frequency(&x[4800..], SR) - 500.0).abs() < 0.5,
        "500 was the player's value then"
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn a_note_starts_and_ends_sound_at_its_frames() {
    let mut r = engine(1);
    r.load_bytes("dc", dc(0.0, 256).as_bytes()).unwrap();
    let mut x = r.render(1000);
    let on = r.clock() + 33;
    let off = on + 300;
    let again = off + 17;
    r.send_event("dc", NoteEvent::note_on(0, 60, 0.8), on)
        .unwrap();
    r.send_event("dc", NoteEvent::note_off(0, 60, 0.0), off)
        .unwrap();
    // A note-on of velocity 0 is a note-off.
    r.send_event("dc", NoteEvent::note_on(0, 62, 1.0), again)
        .unwrap();
    r.send_event("dc", NoteEvent::note_on(0, 62, 0.0), again + 100)
        .unwrap();
    x.extend(r.render(2000));
    let level = |n: u64| {
        if (on..off).contains(&n) {
            0.2
        } else if (again..again + 100).contains(&n) {
            0.25
        } else {
            0.0
        }
    };
    for (n, &s) in x.iter().enumerate() {
        assert_eq!(s, level(n as u64), "frame {n} (on {on}, off {off})");
    }
    // MIDI bytes map onto the same events.
    assert_eq!(
        NoteEvent::from_midi(&[0x93, 60, 127]),
        Some(NoteEvent::note_on(3, 60, 1.0))
    );
    assert_eq!(
        NoteEvent::from_midi(&[0x90, 60, 0]),
        Some(NoteEvent::note_off(0, 60, 0.0))
    );
    assert_eq!(
        NoteEvent::from_midi(&[0xe0, 0, 0x40]),
        Some(NoteEvent::pitch_bend(0, 0.0))
    );
    assert_eq!(
        NoteEvent::from_midi(&[0xe1, 0, 0]),
        Some(NoteEvent::pitch_bend(1, -1.0))
    );
    assert_eq!(NoteEvent::from_midi(&[0x90, 200, 1]), None);
    assert_eq!(NoteEvent::from_midi(&[0xc0, 5]), None);
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn events_beyond_the_buffer_arrive_in_the_next_blocks_at_frame_zero() {
    let mut r = engine(1);
    r.load_bytes("dc", dc(0.0, 2).as_bytes()).unwrap();
    let mut x = r.render(256);
    let start = r.clock();
    let velocity = |k: u64| (k + 1) as f32 * 0.125;
    for k in 0..5u64 {
        r.send_event(
            "dc",
            NoteEvent::note_on(0, 60 + k as u8, velocity(k)),
            start + 10 + k,
        )
        .unwrap();
    }
    x.extend(r.render(128 * 4));
    let s = start as usize;
    let b = &x[s..];
    let heard = |k: u64| velocity(k) * 0.25;
    // Block 1 has room for two: the notes at frames 10 and 11.
    assert!(b[..10].iter().all(|&v| v == 0.0));
    assert_eq!(b[10], heard(0));
    assert!(
        b[11..128].iter().all(|&v| v == heard(1)),
        "{:?}",
        &b[11..16]
    );
    // Block 2: the next two at frame 0 (the later one stands).
    assert!(
        b[128..256].iter().all(|&v| v == heard(3)),
        "{:?}",
        &b[128..132]
    );
    // Block 3: the last one at frame 0.
    assert!(b[256..].iter().all(|&v| v == heard(4)));
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

/// A 0.2 module whose `init` runs `body` (its `param` calls) and traps
/// unless the last call returned `code`.
fn declaring(body: &str, code: i32, region: u32) -> String {
    format!(
        r#"(module{IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 16) "level")
  (data (i32.const 32) "a b")
  (data (i32.const 48) "abcdefghijklmnopq")
  (data (i32.const 80) "\ff")
  (data (i32.const 128) "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk")
  (func (export "state-ptr") (result i32) (i32.const 4096))
  (func (export "state-len") (result i32) (i32.const {region}))
  (func (export "init") (param i32 i32) (result i32) (local $r i32)
    {body}
    (if (i32.ne (local.get $r) (i32.const {code})) (then unreachable))
    (i32.const 1))
  (func (export "process") (param i32 i64 i32) (result i32) (i32.const 1024)))
"#
    )
}

/// `(local.set $r (call $param KEY DEFAULT MIN MAX UNIT STEPS))`.
fn call(
    key: (u32, u32),
    default: &str,
    min: &str,
    max: &str,
    unit: (u32, u32),
    steps: u32,
) -> String {
    format!(
        "(local.set $r (call $param (i32.const {}) (i32.const {}) (f32.const {default}) (f32.const {min}) (f32.const {max}) (i32.const {}) (i32.const {}) (i32.const {steps})))\n",
        key.0, key.1, unit.0, unit.1
    )
}

#[test]
fn every_param_error_code_comes_with_its_message() {
    let level = (16, 5);
    let ok = |k: (u32, u32)| call(k, "0.5", "0", "1", (0, 0), 0);
    // 65 distinct keys: the slices of "abcdefghijklmnopq" of 1 to 5 bytes.
    let letters = "abcdefghijklmnopq";
    let mut keys = Vec::new();
    for len in 1..=5u32 {
        for start in 0..=(17 - len) {
            keys.push((48 + start, len));
        }
    }
    let sixty_five: String = keys[..65].iter().map(|&k| ok(k)).collect();
    let (start, len) = keys[64];
    let last = &letters[(start - 48) as usize..(start - 48 + len) as usize];
    let too_many =
        format!("param \"{last}\" is one more than the 64 parameters a version may declare");
    let cases: Vec<(String, i32, u32, &str)> = vec![
        (
            ok(level) + &ok((48, 1)),
            -1,
            4,
            "state region of 4 bytes is full: the cell of param \"a\" of 4 bytes does not fit beside the 4 bytes already claimed (enlarge the module's state region)",
        ),
        (
            ok((32, 3)),
            -2,
            256,
            "param key \"a b\" has a character other than an ASCII letter, digit, `_`, `-` or `.` (it appears in OSC addresses)",
        ),
        (ok((32, 0)), -2, 256, "param key \"\" is empty"),
        (
            ok((128, 65)),
            -2,
            256,
            "param key \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\" is 65 bytes, the limit is 64",
        ),
        (
            ok(level) + &ok(level),
            -4,
            256,
            "param \"level\" is declared twice in one init (give each parameter its own key)",
        ),
        (
            call(level, "1", "0", "1", (0, 0), 1),
            -7,
            256,
            "param \"level\" (default 1, min 0, max 1, steps 1): 1 step is not a parameter (0: continuous, 2 or more: that many values)",
        ),
        (
            call(level, "0.5", "1", "0", (0, 0), 0),
            -7,
            256,
            "param \"level\" (default 0.5, min 1, max 0, steps 0): min must be below max",
        ),
        (
            call(level, "2", "0", "1", (0, 0), 0),
            -7,
            256,
            "param \"level\" (default 2, min 0, max 1, steps 0): the default lies outside min..max",
        ),
        (
            call(level, "nan", "0", "1", (0, 0), 0),
            -7,
            256,
            "param \"level\" (default NaN, min 0, max 1, steps 0): default, min and max must be finite numbers",
        ),
        (sixty_five, -8, 4096, &too_many),
        (
            call(level, "0.5", "0", "1", (48, 17), 0),
            -9,
            256,
            "param \"level\": its unit \"abcdefghijklmnopq\" is 17 bytes, the limit is 16",
        ),
        (
            call(level, "0.5", "0", "1", (80, 1), 0),
            -9,
            256,
            "param \"level\": its unit is not valid UTF-8",
        ),
    ];
    for (body, code, region, message) in cases {
        let mut r = engine(1);
        let err = r
            .load_bytes("p", declaring(&body, code, region).as_bytes())
            .expect_err("a failed param rejects the version");
        assert_eq!(format!("{err:#}"), format!("p: {message}"), "code {code}");
    }
    // -6: no state region.
    let text = declaring(&ok(level), -6, 0)
        .replace(
            r#"(func (export "state-ptr") (result i32) (i32.const 4096))"#,
            "",
        )
        .replace(
            r#"(func (export "state-len") (result i32) (i32.const 0))"#,
            "",
        );
    let err = engine(1).load_bytes("p", text.as_bytes()).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "p: `param` called by a module with no state region (export `state-ptr` and `state-len`: parameter cells live there)"
    );
    // -5: outside `init` the call fails and changes nothing; the guest sees the code.
    let text = format!(
        r#"(module{IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 16) "level")
  (func (export "state-ptr") (result i32) (i32.const 4096))
  (func (export "state-len") (result i32) (i32.const 256))
  (func (export "init") (param i32 i32) (result i32) (i32.const 1))
  (func (export "process") (param $frames i32) (param i64 i32) (result i32) (local $i i32) (local $v f32)
    (local.set $v (f32.mul (f32.const 0.01) (f32.convert_i32_s
      (call $param (i32.const 16) (i32.const 5) (f32.const 0) (f32.const 0) (f32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))))
    (loop $l
      (f32.store (i32.add (i32.const 8192) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $frames))))
    (i32.const 8192)))
"#
    );
    let mut r = engine(1);
    r.load_bytes("late", text.as_bytes()).unwrap();
    let x = r.render(256);
    let code = -5.0f32 * 0.01; // as the guest computes it
    assert!(x.iter().all(|&s| s == code), "{:?}", &x[..4]);
    assert_eq!(r.params("late"), Some(vec![]));
    // A failed version leaves the playing one playing, with its values.
    let mut r = engine(1);
    r.load_bytes("dc", dc(0.1, 16).as_bytes()).unwrap();
    r.set_param("dc", "level", 0.2, 0).unwrap();
    assert!(
        r.load_bytes("dc", declaring(&ok((32, 3)), -2, 256).as_bytes())
            .is_err()
    );
    assert!(r.render(512).iter().all(|&s| s == 0.2));
    assert_eq!(r.params("dc").unwrap()[0].value, 0.2);
}

#[test]
fn a_0_2_module_is_checked_against_0_2() {
    let reject = |text: &str| {
        let err = engine(1).load_bytes("m", text.as_bytes()).unwrap_err();
        format!("{err:#}")
    };
    let mixed = dc(0.1, 4).replace(
        r#"(import "lel:signal/host@0.2.0" "claim""#,
        r#"(import "lel:signal/host@0.1.0" "claim""#,
    );
    assert_eq!(
        reject(&mixed),
        "m: imports `claim` from `lel:signal/host@0.1.0` and `param` from `lel:signal/host@0.2.0`: a module is built against one contract version (rebuild it against lel:signal@0.2.0 alone)"
    );
    let old_process = dc(0.1, 4).replace("(param $n i32) (result i32)", "(result i32)");
    assert_eq!(
        reject(&old_process.replace("(local.get $n)", "(i32.const 0)")),
        "m: `process` has type (i32, i64) -> i32, expected (i32, i64, i32) -> i32 (it imports from `lel:signal/host@0.2.0`, so it is a 0.2.0 module, whose `process` takes `events`)"
    );
    let half = dc(0.1, 4).replace(
        r#"(func (export "events-len") (result i32) (i32.const 64))"#,
        "",
    );
    assert_eq!(
        reject(&half),
        "m: exports `events-ptr` but not `events-len`: the event buffer needs both (or neither, for a module that takes no events)"
    );
    let misaligned = dc(0.1, 4).replace(
        "(i32.const 8192))\n  (func (export \"events-len\")",
        "(i32.const 8196))\n  (func (export \"events-len\")",
    );
    assert_eq!(
        reject(&misaligned),
        "m: `events-ptr` returned 0x2004, which is not 8-byte aligned (align the event buffer to 8)"
    );
    let outside = dc(0.1, 4).replace("(i32.const 64))", "(i32.const 200000))");
    assert_eq!(
        reject(&outside),
        "m: the event buffer 0x2000..0x32d40 (`events-ptr`, `events-len`) lies outside the module's 131072-byte memory"
    );
    let overlapping = dc(0.1, 4).replace(
        "(result i32) (i32.const 8192))",
        "(result i32) (i32.const 4160))",
    );
    assert_eq!(
        reject(&overlapping),
        "m: the event buffer 0x1040..0x1080 overlaps the state region 0x1000..0x1100 (give the events a buffer of their own)"
    );
    let wrong = dc(0.1, 4).replace("@0.2.0", "@0.3.0");
    assert_eq!(
        reject(&wrong),
        "m: module targets `lel:signal/host@0.3.0`, this host speaks 0.1.0 and 0.2.0 (rebuild it against lel:signal@0.2.0)"
    );
    let param_in_0_1 = fixtures::module(
        r#"(import "lel:signal/host@0.1.0" "param" (func (param i32 i32 f32 f32 f32 i32 i32 i32) (result i32)))"#,
        "(i32.const 1)",
        "(i32.const 0)",
    );
    assert_eq!(
        reject(&param_in_0_1),
        "m: imports `param` from `lel:signal/host@0.1.0`, which lel-host does not provide: a signal may import only `claim` and `log` from `lel:signal/host@0.1.0` (build without libc/WASI, e.g. `-nostdlib`)"
    );
}

/// Per block, 27 events (10,368 a second at 48 kHz and 128-frame blocks)
/// spread over two signals: notes and parameter changes.
fn stream(r: &mut Renderer, blocks: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for b in 0..blocks {
        let clock = r.clock();
        for k in 0..27u64 {
            let at = clock + k * 4 + 1;
            let v = ((b * 27 + k as usize) % 100) as f32 / 250.0;
            match k % 3 {
                0 => {
                    r.set_param("dc", "level", v, at).unwrap();
                }
                1 => r
                    .send_event("dc", NoteEvent::note_on(0, (k % 128) as u8, v), at)
                    .unwrap(),
                _ => {
                    r.set_param("sine", "freq", 200.0 + v * 1000.0, at).unwrap();
                }
            }
        }
        out.extend(r.render(128));
    }
    out
}

#[test]
fn ten_thousand_events_a_second_allocate_nothing_on_the_audio_thread() {
    for threads in [1, 2] {
        let mut r = engine(threads);
        r.load_bytes("dc", dc(0.0, 256).as_bytes()).unwrap();
        r.load_bytes("sine", sine(440.0, 20.0, 4000.0, 0.1).as_bytes())
            .unwrap();
        let blocks = 2 * SR as usize / 128; // two seconds
        let x = stream(&mut r, blocks);
        assert_eq!(x.len(), blocks * 128);
        assert!(all_finite(&x));
        // The last event of each block stands at its end: dc's level (the
        // event at k = 24) plus the note of k = 25, plus the sine.
        assert_eq!(audio_thread_allocations(&mut r), 0, "threads {threads}");
        let p = r.params("dc").unwrap();
        let last = ((blocks - 1) * 27 + 24) % 100;
        assert_eq!(p[0].value, last as f32 / 250.0);
    }
}

#[test]
fn one_and_two_threads_render_events_bit_identically() {
    let session = |threads: usize| {
        let mut r = engine_xfade(threads, 20);
        r.load_bytes("dc", dc(0.0, 4).as_bytes()).unwrap();
        r.load_bytes("sine", sine(440.0, 20.0, 4000.0, 0.1).as_bytes())
            .unwrap();
        let mut x = stream(&mut r, 100);
        // A reload (carrying the player's values, crossfaded) in the middle
        // of the stream.
        r.load_bytes("sine", sine(300.0, 20.0, 2000.0, 0.3).as_bytes())
            .unwrap();
        x.extend(stream(&mut r, 100));
        assert_eq!(audio_thread_allocations(&mut r), 0);
        (x, r.parallel_blocks())
    };
    let (one, _) = session(1);
    let (two, shared) = session(2);
    assert!(shared > 100, "blocks were shared between threads: {shared}");
    assert_eq!(one.len(), two.len());
    let first = one
        .iter()
        .zip(&two)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(first, None, "threads 1 and 2 differ");
}

fn engine_xfade(threads: usize, xfade_ms: u64) -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: 128,
        threads,
        parallel_min: Duration::ZERO,
        xfade: Duration::from_millis(xfade_ms),
        check_alloc: true,
        init_timeout: Duration::from_millis(500),
        ..Settings::default()
    })
    .expect("engine")
}

#[test]
fn both_sides_of_a_crossfade_and_a_rollback_target_follow_the_values() {
    // Crossfade: the old and the new version each get a change made in the
    // middle of it at its frame, so their linear crossfade (state carried)
    // sums to the new value from that frame on.
    let mut r = engine_xfade(1, 20);
    r.load_bytes("dc", dc(0.1, 16).as_bytes()).unwrap();
    let mut x = r.render(1024);
    r.set_param("dc", "level", 0.2, 0).unwrap();
    x.extend(r.render(1024));
    // The new version's default (0.45) does not apply: the player set 0.2.
    r.load_bytes("dc", dc(0.45, 16).as_bytes()).unwrap();
    let swap = r.clock() as usize;
    let at = swap + 300; // within the 960-frame crossfade
    r.set_param("dc", "level", 0.4, at as u64).unwrap();
    x.extend(r.render(4096));
    for (n, &s) in x.iter().enumerate().skip(2048) {
        let want = if n < at { 0.2 } else { 0.4 };
        assert!(
            (s - want).abs() < 1e-6,
            "frame {n} (swap {swap}, change {at}): {s}"
        );
    }
    assert_eq!(r.params("dc").unwrap()[0].default, 0.45);

    // Rollback: a version that traps soon after its swap gives way to the
    // previous one, which followed the change made meanwhile.
    let mut r = engine(1);
    r.load_bytes("dc", dc(0.1, 16).as_bytes()).unwrap();
    r.render(1024);
    let trapping = dc(0.25, 16)
        .replace(
            "(global $note (mut i32) (i32.const 0))",
            "(global $note (mut i32) (i32.const 0)) (global $calls (mut i32) (i32.const 0))",
        )
        .replace(
            "    (local.set $lv (f32.load (global.get $level)))",
            "    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (i32.gt_u (global.get $calls) (i32.const 20)) (then unreachable))
    (local.set $lv (f32.load (global.get $level)))",
        );
    r.load_bytes("dc", trapping.as_bytes()).unwrap();
    let x = r.render(128 * 4);
    assert!(
        x.iter().all(|&s| s == 0.25),
        "the new version plays its default"
    );
    r.set_param("dc", "level", 0.3, r.clock() + 10).unwrap();
    let x = r.render(128 * 40);
    let notices = r.take_notices();
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, lel_host::Notice::RolledBack { .. })),
        "{notices:?}"
    );
    assert!(x[..10].iter().all(|&s| s == 0.25));
    let tail = &x[x.len() - 1024..];
    assert!(
        tail.iter().all(|&s| s == 0.3),
        "the rollback target has the value: {:?}",
        &tail[..4]
    );
    let p = &r.params("dc").unwrap()[0];
    assert_eq!(
        (p.value, p.default, p.user_set),
        (0.3, 0.1, true),
        "the table is the rollback target's again"
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn check_lists_parameters_and_the_event_buffer() {
    let dir = tempdir();
    let path = write(dir.path(), "synth.wat", &sine(440.0, 20.0, 4000.0, 0.25));
    let out = std::process::Command::new(lel_host_bin())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "ok    synth: 1 channel, state 8 of 256 bytes claimed: \"osc#0\" 8 B; contract 0.2.0: parameters freq 440 (20 to 4000 Hz), level 0.25 (0 to 0.5); events: 256 a block ({})",
            path.display()
        )
    );
}

#[test]
fn events_beyond_buffer_and_backlog_are_counted_and_reported() {
    // A guest that takes one event a block, sent 200 a block for six
    // blocks: five are taken, 1,024 wait in the backlog and 170 are dropped.
    let mut r = engine(1);
    r.load_bytes("dc", dc(0.0, 1).as_bytes()).unwrap();
    r.render(128);
    for _ in 0..6 {
        let at = r.clock();
        for k in 0..200u32 {
            r.send_event("dc", NoteEvent::note_on(0, (k % 128) as u8, 0.5), at)
                .unwrap();
        }
        r.render(128);
    }
    r.render(SR as usize * 3 / 2);
    let dropped: Vec<u64> = r
        .take_notices()
        .into_iter()
        .filter_map(|n| match n {
            lel_host::Notice::EventsDropped { signal, count } if signal == "dc" => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(dropped.iter().sum::<u64>(), 170, "{dropped:?}");
    assert!(
        dropped.len() <= 2,
        "at most one report a second: {dropped:?}"
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}
