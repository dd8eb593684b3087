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
