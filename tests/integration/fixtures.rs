//! WAT fixtures generated as text: small modules that claim given keys, or
//! misbehave in one precise way. Reviewable in a diff; compiled by the host
//! like any `.wat` file.

#![allow(dead_code)]

use crate::util::repo_root;

/// The text of an example module, e.g. `examples/wat/sine.wat`.
pub fn example(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `examples/wat/sine.wat` with another frequency and amplitude.
pub fn sine(freq: f64, amp: f64) -> String {
    example("examples/wat/sine.wat")
        .replace(
            "(global $freq f64 (f64.const 440))",
            &format!("(global $freq f64 (f64.const {freq:?}))"),
        )
        .replace(
            "(global $amp f64 (f64.const 0.5))",
            &format!("(global $amp f64 (f64.const {amp:?}))"),
        )
}

/// A module that claims `keys` (name, size) in order and keeps an `i32`
/// counter in the block of `watch`: each `process` adds one to it and
/// outputs `counter * 1e-5` on every sample. Carried state shows as a
/// continuing count, fresh state as a count starting over.
pub fn counter(keys: &[(&str, u32)], watch: &str, region: u32) -> String {
    let mut data = String::new();
    let mut claims = String::new();
    let mut at = 256;
    for (k, size) in keys {
        data.push_str(&format!("  (data (i32.const {at}) \"{k}\")\n"));
        let claim = format!(
            "(call $claim (i32.const {at}) (i32.const {}) (i32.const {size}) (i32.const 4))",
            k.len()
        );
        if *k == watch {
            claims.push_str(&format!("    (global.set $counter {claim})\n"));
        } else {
            claims.push_str(&format!("    (drop {claim})\n"));
        }
        at += k.len() as u32 + 1;
    }
    format!(
        r#"(module
  (import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
{data}  (global $counter (mut i32) (i32.const 0))
  (func (export "state-ptr") (result i32) (i32.const 4096))
  (func (export "state-len") (result i32) (i32.const {region}))
  (func (export "init") (param i32 i32) (result i32)
{claims}    (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $v f32)
    (i32.store (global.get $counter) (i32.add (i32.load (global.get $counter)) (i32.const 1)))
    (local.set $v (f32.mul (f32.convert_i32_s (i32.load (global.get $counter))) (f32.const 1e-5)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
      (f32.store (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 65536)))
"#
    )
}

/// The counter a block of [`counter`] output shows.
pub fn count_of(sample: f32) -> i64 {
    (sample as f64 / 1e-5).round() as i64
}

/// A minimal valid module with `extra` spliced in first (imports, exports) and the
/// given `init` and `process` bodies.
pub fn module(extra: &str, init: &str, process: &str) -> String {
    format!(
        r#"(module
{extra}
  (memory (export "memory") 1)
  (func (export "init") (param i32 i32) (result i32) {init})
  (func (export "process") (param i32 i64) (result i32) {process}))
"#
    )
}

/// A silent mono module.
pub fn silent() -> String {
    module("", "(i32.const 1)", "(i32.const 1024)")
}

/// A mono module that outputs a constant 0.1 for `after` blocks, then runs
/// `bad` (WAT instructions) at the start of every `process` call. `extra`
/// adds module-level items (helper functions, tables). `(call $fill (f32.const
/// X))` returns a block of X.
pub fn faulty(after: u32, bad: &str, extra: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  {extra}
  (func $fill (param $v f32) (result i32)
    (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const 4096)))
      (f32.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 1024))
  (func (export "init") (param i32 i32) (result i32) (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (i32.gt_u (global.get $n) (i32.const {after})) (then {bad}))
    (call $fill (f32.const 0.1))))
"#
    )
}

/// `text` saved again with a change that alters the module's bytes but not
/// its sound (an unused global), so it loads as a new version.
pub fn resaved(text: &str, n: u32) -> String {
    let end = text.rfind(')').expect("a module ends with `)`");
    format!(
        "{}\n  (global $resaved{n} i32 (i32.const {n})){}",
        &text[..end],
        &text[end..]
    )
}

/// A `lel:signal@0.2.0` synth (stereo, sound on the left channel only, the
/// right one silent so that a signal beside it can be checked sample-exact
/// on the right): one parameter `gain` (0..1, default 0.5, index 0) read
/// from its cell and applied at its `param` events' frames; note-on sets
/// the pitch (equal temperament, A4 = 440 Hz) and the gate (the velocity)
/// at the event's frame, the same key's note-off closes the gate;
/// controller 7 sets the gain too (as the guest sees it, not a parameter).
/// Output: `gain * gate * sin`.
pub fn synth() -> String {
    r#"(module
  (import "lel:signal/host@0.2.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (import "lel:signal/host@0.2.0" "param" (func $param (param i32 i32 f32 f32 f32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; Keys at 64.., event buffer 512..4608 (256 events), pitch table
  ;; 4608..5632, state region 8192..9216, output from 16384.
  (data (i32.const 64) "osc#0")
  (data (i32.const 80) "gain")
  (global $phase_at (mut i32) (i32.const 0))
  (global $gain_at (mut i32) (i32.const 0))
  (global $sr (mut f64) (f64.const 48000))
  (global $hz (mut f64) (f64.const 440))
  (global $key (mut i32) (i32.const -1))
  (global $gate (mut f32) (f32.const 0))
  (global $gain (mut f32) (f32.const 0))
  (func (export "state-ptr") (result i32) (i32.const 8192))
  (func (export "state-len") (result i32) (i32.const 1024))
  (func (export "events-ptr") (result i32) (i32.const 512))
  (func (export "events-len") (result i32) (i32.const 4096))
  (func (export "init") (param $sample_rate i32) (param $max i32) (result i32)
    (local $k i32) (local $f f64)
    (if (i32.gt_u (local.get $max) (i32.const 4096)) (then (return (i32.const -1))))
    (global.set $sr (f64.convert_i32_u (local.get $sample_rate)))
    (global.set $phase_at (call $claim (i32.const 64) (i32.const 5) (i32.const 8) (i32.const 8)))
    (if (i32.lt_s (global.get $phase_at) (i32.const 0)) (then (return (global.get $phase_at))))
    (global.set $gain_at (call $param (i32.const 80) (i32.const 4) (f32.const 0.5) (f32.const 0) (f32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (i32.lt_s (global.get $gain_at) (i32.const 0)) (then (return (global.get $gain_at))))
    ;; key 0 is 440 * 2^(-69/12) Hz; each key a semitone up.
    (local.set $f (f64.const 8.175798915643707))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $k) (i32.const 128)))
      (f64.store (i32.add (i32.const 4608) (i32.shl (local.get $k) (i32.const 3))) (local.get $f))
      (local.set $f (f64.mul (local.get $f) (f64.const 1.0594630943592953)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $l)))
    (i32.const 2))
  (func $event (param $e i32)
    (local $kind i32) (local $n i32) (local $v f32)
    (local.set $kind (i32.load8_u offset=4 (local.get $e)))
    (local.set $n (i32.load16_u offset=6 (local.get $e)))
    (local.set $v (f32.load offset=8 (local.get $e)))
    (if (i32.eq (local.get $kind) (i32.const 1)) (then
      (global.set $key (local.get $n))
      (global.set $hz (f64.load (i32.add (i32.const 4608) (i32.shl (i32.and (local.get $n) (i32.const 127)) (i32.const 3)))))
      (global.set $gate (local.get $v))))
    (if (i32.and (i32.eq (local.get $kind) (i32.const 2)) (i32.eq (local.get $n) (global.get $key))) (then
      (global.set $gate (f32.const 0))))
    (if (i32.and (i32.eq (local.get $kind) (i32.const 3)) (i32.eq (local.get $n) (i32.const 7))) (then
      (global.set $gain (local.get $v))))
    (if (i32.and (i32.eq (local.get $kind) (i32.const 6)) (i32.eq (local.get $n) (i32.const 0))) (then
      (global.set $gain (local.get $v)))))
  (func (export "process") (param $frames i32) (param $clock i64) (param $events i32) (result i32)
    (local $i i32) (local $e i32) (local $phase f64) (local $p i32)
    (global.set $gain (f32.load (global.get $gain_at)))
    (local.set $phase (f64.load (global.get $phase_at)))
    (local.set $p (i32.const 16384))
    (block $done (loop $frame
      (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
      (block $ev_done (loop $ev
        (br_if $ev_done (i32.ge_u (local.get $e) (local.get $events)))
        (br_if $ev_done (i32.gt_u (i32.load (i32.add (i32.const 512) (i32.shl (local.get $e) (i32.const 4)))) (local.get $i)))
        (call $event (i32.add (i32.const 512) (i32.shl (local.get $e) (i32.const 4))))
        (local.set $e (i32.add (local.get $e) (i32.const 1)))
        (br $ev)))
      (f32.store (local.get $p)
        (f32.mul (f32.mul (global.get $gain) (global.get $gate))
          (f32.demote_f64 (call $sin_turns (local.get $phase)))))
      (f32.store offset=4 (local.get $p) (f32.const 0))
      (local.set $phase (f64.add (local.get $phase) (f64.div (global.get $hz) (global.get $sr))))
      (if (f64.ge (local.get $phase) (f64.const 1))
        (then (local.set $phase (f64.sub (local.get $phase) (f64.const 1)))))
      (local.set $p (i32.add (local.get $p) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $frame)))
    (f64.store (global.get $phase_at) (local.get $phase))
    (i32.const 16384))
  (func $sin_turns (param $t f64) (result f64)
    (local $x f64) (local $x2 f64)
    (local.set $x
      (if (result f64) (f64.lt (local.get $t) (f64.const 0.25))
        (then (local.get $t))
        (else
          (if (result f64) (f64.lt (local.get $t) (f64.const 0.75))
            (then (f64.sub (f64.const 0.5) (local.get $t)))
            (else (f64.sub (local.get $t) (f64.const 1)))))))
    (local.set $x (f64.mul (local.get $x) (f64.const 6.283185307179586)))
    (local.set $x2 (f64.mul (local.get $x) (local.get $x)))
    (f64.mul (local.get $x)
      (f64.add (f64.const 1)
        (f64.mul (local.get $x2)
          (f64.add (f64.const -0.16666666666666666)
            (f64.mul (local.get $x2)
              (f64.add (f64.const 0.008333333333333333)
                (f64.mul (local.get $x2)
                  (f64.add (f64.const -1.984126984126984e-4)
                    (f64.mul (local.get $x2)
                      (f64.add (f64.const 2.755731922398589e-6)
                        (f64.mul (local.get $x2) (f64.const -2.505210838544172e-8))))))))))))))
"#
    .to_string()
}
