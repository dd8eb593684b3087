//! Guests in every language: every example (C, Zig, AssemblyScript, WAT,
//! Rust with the lel SDK, Rust with wit-bindgen) is built from source by
//! `scripts/build-examples`, checked against `wit/lel.wit`, rendered, and
//! compared with the Rust SDK's rendering of the same signal; the chain's
//! state survives a reload in every language; and `lel-host new` makes a
//! project in every language that builds with one command and plays.
//!
//! A missing toolchain fails these tests, naming the install command
//! (`scripts/setup-languages` installs them all): a skipped language would be
//! an untested promise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use lel_host::Renderer;
use lel_host::Settings;

use crate::util::*;

const SR: u32 = 48_000;

const INSTALL: &str = "A toolchain is missing? Install them all with scripts/setup-languages \
     (apt-get install clang lld; pip install --target target/tools/ziglang ziglang; \
     npm ci in examples/assemblyscript; rustup target add wasm32-unknown-unknown).";

/// The chain in every language but Rust, whose rendering is the reference.
const CHAIN_LANGS: [&str; 4] = ["c", "zig", "as", "wat"];
/// The sine in every language but Rust.
const SINE_LANGS: [&str; 5] = ["c", "zig", "as", "wat", "wit"];

/// Languages whose SDK uses the very algorithms of the Rust SDK's `libm`
/// (C: ports of `sin`, `cos`, `exp`; Zig: compiler_rt's musl ports;
/// AssemblyScript: `Math.sin`/`Math.cos` and a port of `exp`) as well as
/// its formulas: they must render the same bits. WAT (short series for sin
/// and exp) and wit-bindgen (std's `sin`, the same libm) are held to
/// [`TOLERANCE`] only.
const EXACT_LANGS: [&str; 3] = ["c", "zig", "as"];

/// Largest difference allowed between a language's rendering and the Rust
/// SDK's, per sample. Every stage computes in f64 and rounds to f32 only in
/// the delay line and at the output: one f32 step near the chain's peak
/// (0.39) is 3e-8. The WAT chain's Taylor sine is off by at most 4e-8 and
/// the stages after it (lowpass <= 1, tremolo <= 1, delay with feedback 0.5
/// and mix 0.5 <= 1.5, gain 0.4) scale that by at most 0.6; with a few f32
/// roundings going the other way that stays below 2e-7 (measured: 3e-8).
/// 1e-6 leaves room for that and nothing more: a different formula, key
/// order, interpolation or feedback default moves samples by 1e-3 or more.
const TOLERANCE: f32 = 1e-6;

/// What `scripts/build-examples` built, read once per test run: every
/// module's binary (WAT compiled) by signal name. The tests play these bytes,
/// never the files again, so another process rebuilding `target/examples/`
/// meanwhile (a colleague's test run, `lel-host run` users) cannot mix
/// versions inside one test.
struct Built {
    dir: PathBuf,
    modules: BTreeMap<String, Vec<u8>>,
}

fn examples() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = repo_root().join("target/examples");
        run_ok(
            niced(&repo_root().join("scripts/build-examples"))
                .env("LEL_EXAMPLES_OUT", &dir)
                .current_dir(repo_root()),
            "scripts/build-examples",
            INSTALL,
        );
        let mut modules = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("wasm" | "wat")) {
                modules.insert(signal_of(&path), binary(&path));
            }
        }
        Built { dir, modules }
    })
}

/// The bytes of the built module `name-lang`.
fn module(name: &str, lang: &str) -> &'static [u8] {
    let signal = format!("{name}-{lang}");
    examples()
        .modules
        .get(&signal)
        .unwrap_or_else(|| panic!("{signal} was not built"))
}

/// A mono engine. These tests compare samples, not timing: each `process`
/// call may take 4 block periods (the most `--budget` allows) instead of
/// half of one, so a build running beside them cannot stop a guest.
fn mono() -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: 128,
        runaway: Some(OFFLINE_RUNAWAY),
        ..Settings::default()
    })
    .expect("engine")
}

/// `program` at a lower priority: builds (cargo, zig, asc) running beside
/// other tests should not starve their real-time-budgeted renders.
fn niced(program: &Path) -> Command {
    let mut c = Command::new("nice");
    c.args(["-n", "19"]).arg(program);
    c
}

/// `frames` frames of `module` alone (as the signal `signal`), on a mono engine.
fn render(signal: &str, module: &[u8], frames: usize) -> Vec<f32> {
    let mut r = mono();
    r.load_bytes(signal, module)
        .unwrap_or_else(|e| panic!("load {signal}: {e:#}"));
    r.render(frames)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// A module file's bytes, binary (`.wat` text compiled).
fn binary(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let text = path.extension().is_some_and(|e| e == "wat");
    lel_host::contract::to_binary(&bytes, text).expect("a module")
}

#[test]
fn every_built_module_satisfies_the_contract() {
    let built = examples();
    let dir = &built.dir;
    let mut sizes = BTreeMap::new();
    for (signal, bytes) in &built.modules {
        let shape = lel_host::contract::validate(bytes).unwrap_or_else(|e| panic!("{signal}: {e}"));
        assert!(
            shape.has_state_region,
            "{signal}: exports state-ptr/state-len"
        );
        sizes.insert(signal.clone(), bytes.len());
    }
    for name in ["sine", "chain"] {
        for lang in ["c", "zig", "as", "wat", "rust"] {
            assert!(
                sizes.contains_key(&format!("{name}-{lang}")),
                "{name}-{lang} missing from {}",
                dir.display()
            );
        }
    }
    assert!(sizes.contains_key("sine-wit"), "the wit-bindgen guest");
    // Module sizes (binary; WAT compiled), for examples/README.md.
    for (name, size) in &sizes {
        eprintln!("{name:>24} {size:>7} bytes");
    }

    // And the host's own check runs every `init`, with its claims.
    let out = run_ok(
        Command::new(lel_host_bin()).arg("check").arg(dir),
        "lel-host check target/examples/",
        "",
    );
    let report = String::from_utf8_lossy(&out.stdout);
    for lang in ["c", "zig", "as", "wat", "rust"] {
        let line = report
            .lines()
            .find(|l| l.contains(&format!("chain-{lang}:")))
            .unwrap_or_else(|| panic!("chain-{lang} checked:\n{report}"));
        for key in ["osc#0", "lowpass#0", "tremolo#0", "delay#0"] {
            assert!(line.contains(key), "chain-{lang} claims {key}: {line}");
        }
    }
}

fn signal_of(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn the_chain_sounds_the_same_in_every_language() {
    let frames = 2 * SR as usize;
    let reference = render("chain-rust", module("chain", "rust"), frames);
    // The reference is the chain: a 440 Hz tone with its echo, not silence.
    assert!(all_finite(&reference));
    let f = dominant_frequency(&reference[SR as usize..], SR);
    assert!((f - 440.0).abs() < 1.0, "chain-rust at 440 Hz: {f}");
    assert!(rms(&reference) > 0.05, "chain-rust is audible");
    for lang in CHAIN_LANGS {
        let out = render(&format!("chain-{lang}"), module("chain", lang), frames);
        let d = max_diff(&out, &reference);
        let same = out.iter().zip(&reference).filter(|(a, b)| a == b).count();
        eprintln!("chain-{lang}: max difference {d:e}, {same} of {frames} samples identical");
        assert!(
            d <= TOLERANCE,
            "chain-{lang} differs from chain-rust by {d:e} (> {TOLERANCE:e}): \
             does it still follow guest-sdk/README.md, \"Algorithms\"?"
        );
        if EXACT_LANGS.contains(&lang) {
            assert_eq!(
                same, frames,
                "chain-{lang} uses the Rust SDK's algorithms and libm's: it should match bit for bit"
            );
        }
    }
}

#[test]
fn the_sine_sounds_the_same_in_every_language() {
    let frames = SR as usize;
    let reference = render("sine-rust", module("sine", "rust"), frames);
    for lang in SINE_LANGS {
        let out = render(&format!("sine-{lang}"), module("sine", lang), frames);
        let f = dominant_frequency(&out, SR);
        assert!((f - 440.0).abs() < 0.1, "sine-{lang} at 440 Hz: {f}");
        assert!((peak(&out) - 0.5).abs() < 1e-3, "sine-{lang} peak");
        let d = max_diff(&out, &reference);
        assert!(
            d <= TOLERANCE,
            "sine-{lang} differs from sine-rust by {d:e}"
        );
        if EXACT_LANGS.contains(&lang) {
            assert_eq!(d, 0.0, "sine-{lang}: bit for bit");
        }
    }
}

/// `bytes` with a custom section appended: another version of the same
/// code (the host compares content), as a rebuild that changed nothing
/// audible would be.
fn another_version(bytes: &[u8]) -> Vec<u8> {
    let name = b"lel-test-version";
    let payload = b"2";
    let mut v = bytes.to_vec();
    v.push(0); // custom section
    v.push((1 + name.len() + payload.len()) as u8);
    v.push(name.len() as u8);
    v.extend_from_slice(name);
    v.extend_from_slice(payload);
    v
}

#[test]
fn the_chains_state_survives_a_reload_in_every_language() {
    // 1.3 s in, the delay line holds echoes, the filter and both phases are
    // mid-cycle: a new version that got any of it fresh would sound different.
    let before = 62_464; // 488 blocks
    let after = SR as usize;
    for lang in ["rust", "c", "zig", "as", "wat"] {
        let name = format!("chain-{lang}");
        let bytes = module("chain", lang);
        let straight = render(&name, bytes, before + after);

        let mut r = mono();
        r.load_bytes(&name, bytes).unwrap();
        let mut out = r.render(before);
        let report = r
            .load_bytes(&name, &another_version(bytes))
            .unwrap()
            .expect("a new version loads");
        for key in ["osc#0", "lowpass#0", "tremolo#0", "delay#0"] {
            let block = report
                .layout
                .get(key)
                .unwrap_or_else(|| panic!("{name} claims {key}"));
            assert!(block.carried, "{name}: {key} carried over");
        }
        out.extend(r.render(after));
        assert!(
            r.take_notices()
                .iter()
                .any(|n| matches!(n, lel_host::Notice::Swapped { .. })),
            "{name}: the new version swapped in"
        );
        assert_eq!(
            max_diff(&out, &straight),
            0.0,
            "{name}: reloaded, it goes on exactly as if nothing happened"
        );

        // The same version started fresh at that point sounds different
        // (no echoes yet, phases at 0): what the carried state preserved.
        let fresh = render(&name, bytes, after);
        let d = max_diff(&fresh, &straight[before..]);
        assert!(d > 0.01, "{name}: a fresh start differs ({d})");
    }
}

#[test]
fn one_signal_can_hop_between_languages_keeping_its_state() {
    // The SDKs share the Rust SDK's keys and block layouts, so the signal
    // `chain` started in Rust can be replaced by its C, Zig and
    // AssemblyScript builds in turn, every block carried, and it plays on
    // as if it had never changed (these four render the same bits).
    let reference = render("chain", module("chain", "rust"), 4 * SR as usize);
    let mut r = mono();
    r.load_bytes("chain", module("chain", "rust")).unwrap();
    let mut out = r.render(SR as usize);
    for lang in EXACT_LANGS {
        let report = r
            .load_bytes("chain", module("chain", lang))
            .unwrap()
            .expect("another module");
        assert!(
            report.layout.blocks.iter().all(|b| b.carried),
            "chain-{lang} takes over every block: {:?}",
            report.layout
        );
        out.extend(r.render(SR as usize));
    }
    assert_eq!(
        max_diff(&out, &reference),
        0.0,
        "Rust -> C -> Zig -> AssemblyScript, without a seam"
    );
}

/// Every helper of the SDKs at once (saw, square, triangle, noise, one-pole
/// highpass, the three biquads, gain, tremolo, delay, pan), in each
/// language, claiming in the same order so the keys match.
const HELPERS: [(&str, &str, &str); 4] = [
    (
        "rust",
        "src/lib.rs",
        r#"#![cfg_attr(target_arch = "wasm32", no_std)]
use lel::prelude::*;
lel::signal!(
    (saw(110).highpass(500)
        + square(220).lpf(1200, 2)
        + triangle(330).bpf(800, 0.7)
        + noise().hpf(3000, 0.9).gain(0.1))
    .gain(0.2)
    .tremolo(3, 0.5)
    .delay(0.3, 0.11)
    .pan(0.3)
);
"#,
    ),
    (
        "c",
        "helpers.c",
        r#"#include "lel.h"
static lel_osc a, b, c;
static lel_highpass hp;
static lel_biquad q1, q2, q3;
static lel_noise n;
static lel_tremolo tr;
static lel_delay d;
int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_osc_init(&a, LEL_SAW);
  lel_highpass_init(&hp);
  lel_osc_init(&b, LEL_SQUARE);
  lel_biquad_init(&q1, LEL_BQ_LOWPASS);
  lel_osc_init(&c, LEL_TRIANGLE);
  lel_biquad_init(&q2, LEL_BQ_BANDPASS);
  lel_noise_init(&n, 0);
  lel_biquad_init(&q3, LEL_BQ_HIGHPASS);
  lel_tremolo_init(&tr);
  lel_delay_init(&d, 0.3);
  return 2;
}
void lel_frame(const lel_ctx *cx, double *out) {
  (void)cx;
  double x = lel_highpass_tick(&hp, lel_osc_tick(&a, 110), 500);
  x += lel_biquad_tick(&q1, lel_osc_tick(&b, 220), 1200, 2);
  x += lel_biquad_tick(&q2, lel_osc_tick(&c, 330), 800, 0.7);
  x += lel_gain(lel_biquad_tick(&q3, lel_noise_tick(&n), 3000, 0.9), 0.1);
  x = lel_gain(x, 0.2);
  x = lel_tremolo_tick(&tr, x, 3, 0.5);
  x = lel_delay_tick(&d, x, 0.11);
  lel_pan(x, 0.3, &out[0], &out[1]);
}
"#,
    ),
    (
        "zig",
        "helpers.zig",
        r#"const lel = @import("lel");
var a: lel.Osc = .{};
var b: lel.Osc = .{};
var c: lel.Osc = .{};
var hp: lel.Highpass = .{};
var q1: lel.Biquad = .{};
var q2: lel.Biquad = .{};
var q3: lel.Biquad = .{};
var n: lel.Noise = .{};
var tr: lel.Tremolo = .{};
var d: lel.Delay = .{};
pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try a.claim(.saw, .{});
    try hp.claim(.{});
    try b.claim(.square, .{});
    try q1.claim(.lowpass, .{});
    try c.claim(.triangle, .{});
    try q2.claim(.bandpass, .{});
    try n.claim(0, .{});
    try q3.claim(.highpass, .{});
    try tr.claim(.{});
    try d.claim(0.3, .{});
    return 2;
}
pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    _ = cx;
    var x = hp.tick(a.tick(110), 500);
    x += q1.tick(b.tick(220), 1200, 2);
    x += q2.tick(c.tick(330), 800, 0.7);
    x += lel.gain(q3.tick(n.tick(), 3000, 0.9), 0.1);
    x = lel.gain(x, 0.2);
    x = tr.tick(x, 3, 0.5);
    x = d.tick(x, 0.11);
    out[0..2].* = lel.pan(x, 0.3);
}
comptime {
    lel.signal(@This());
}
"#,
    ),
    (
        "assemblyscript",
        "helpers.ts",
        r#"import { Biquad, BiquadMode, Ctx, Delay, Highpass, Noise, Osc, Setup, Tremolo, Wave, gain, pan, signal } from "./lel";
export { statePtr, stateLen, init, process } from "./lel";
const a = new Osc(Wave.Saw);
const b = new Osc(Wave.Square);
const c = new Osc(Wave.Triangle);
const hp = new Highpass();
const q1 = new Biquad(BiquadMode.Lowpass);
const q2 = new Biquad(BiquadMode.Bandpass);
const q3 = new Biquad(BiquadMode.Highpass);
const n = new Noise();
const tr = new Tremolo();
const d = new Delay(0.3);
function setup(s: Setup): i32 {
  a.claim(); hp.claim(); b.claim(); q1.claim(); c.claim(); q2.claim();
  n.claim(); q3.claim(); tr.claim(); d.claim();
  return 2;
}
function frame(cx: Ctx, out: StaticArray<f64>): void {
  let x = hp.tick(a.tick(110), 500);
  x += q1.tick(b.tick(220), 1200, 2);
  x += q2.tick(c.tick(330), 800, 0.7);
  x += gain(q3.tick(n.tick(), 3000, 0.9), 0.1);
  x = gain(x, 0.2);
  x = tr.tick(x, 3, 0.5);
  x = d.tick(x, 0.11);
  pan(x, 0.3, out);
}
signal(setup, frame);
"#,
    ),
];

/// A `lel-host new NAME --lang LANG` project in `parent` with its `source`
/// file replaced by `text`, built with the project's own command: its module.
fn built_with(parent: &Path, name: &str, lang: &str, source: &str, text: &str) -> Vec<u8> {
    built_saying(parent, name, lang, source, text, &[]).0
}

/// [`built_with`], the build run with `env` set: the module and what the
/// build printed on stderr.
fn built_saying(
    parent: &Path,
    name: &str,
    lang: &str,
    source: &str,
    text: &str,
    env: &[(&str, &str)],
) -> (Vec<u8>, String) {
    run_ok(
        Command::new(lel_host_bin())
            .args(["new", name, "--lang", lang, "--dir"])
            .arg(parent),
        &format!("lel-host new {name} --lang {lang}"),
        "",
    );
    let project = parent.join(name);
    std::fs::write(project.join(source), text).unwrap();
    let mut build = niced(&project.join("build.sh"));
    build
        .env_remove("CARGO_TARGET_DIR")
        .envs(env.iter().copied());
    let out = run_ok(&mut build, &format!("{lang}: ./build.sh"), INSTALL);
    let module = std::fs::read(project.join(format!("out/{name}.wasm"))).unwrap();
    (module, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What an AssemblyScript build said with `LEL_TRANSFORM_DEBUG=1`: the
/// fields in `once` are read once per block, those in `stay` are not, and
/// the transform says why each of those stays in memory.
fn assert_transform_said(said: &str, once: &[&str], stay: &[&str]) {
    let read = said
        .lines()
        .find(|l| l.contains("read once per block:"))
        .unwrap_or_else(|| panic!("the transform read no field once per block:\n{said}"));
    for field in once {
        assert!(
            read.contains(field),
            "{field} is read once per block: {read}"
        );
    }
    for field in stay {
        assert!(
            !read.contains(field),
            "{field} is written in process: {read}"
        );
        assert!(
            said.contains(&format!("{field} stays in memory")),
            "the transform says why {field} stays in memory:\n{said}"
        );
    }
}

/// A frame that changes its helpers' settings half-way: the oscillator's
/// wave to square, the echo's mix to nothing. In C and in AssemblyScript.
const CHANGES: [(&str, &str, &str); 2] = [
    (
        "c",
        "changes.c",
        r#"#include "lel.h"
static lel_osc o;
static lel_delay d;
int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_osc_init(&o, LEL_SINE);
  lel_delay_init(&d, 0.3);
  return 1;
}
void lel_frame(const lel_ctx *cx, double *out) {
  if (cx->clock == 24000) {
    o.wave = LEL_SQUARE;
    d.mix = 0.0;
  }
  out[0] = lel_gain(lel_delay_tick(&d, lel_osc_tick(&o, 440), 0.1), 0.3);
}
"#,
    ),
    (
        "assemblyscript",
        "changes.ts",
        r#"import { Ctx, Delay, Osc, Setup, Wave, gain, signal } from "./lel";
export { statePtr, stateLen, init, process } from "./lel";
const o = new Osc();
const d = new Delay(0.3);
function setup(s: Setup): i32 {
  o.claim();
  d.claim();
  return 1;
}
function frame(cx: Ctx, out: StaticArray<f64>): void {
  if (cx.clock == 24000) {
    o.wave = Wave.Square;
    d.mix = 0.0;
  }
  out[0] = gain(d.tick(o.tick(440), 0.1), 0.3);
}
signal(setup, frame);
"#,
    ),
];

/// lel-transform.mjs reads the AssemblyScript helpers' fields once per
/// block into locals, but only those nothing in `process` writes: a frame
/// that sets `o.wave` or `d.mix` gets the change at once, the same samples
/// as the C SDK (whose helpers are plain structs), while the fields it
/// does not write (the phase's address, the line's) are read once.
#[test]
fn assemblyscript_helpers_read_once_per_block_still_see_a_frame_change_them() {
    let dir = tempdir();
    let mut renders = Vec::new();
    for (lang, source, text) in CHANGES {
        let (bytes, said) = built_saying(
            &dir.path().join(lang),
            "changes",
            lang,
            source,
            text,
            &[("LEL_TRANSFORM_DEBUG", "1")],
        );
        if lang == "assemblyscript" {
            assert_transform_said(
                &said,
                &["changes/o.phase", "changes/d.line", "changes/d.feedback"],
                &["changes/o.wave", "changes/d.mix"],
            );
        }
        let mut r = mono();
        r.load_bytes("changes", &bytes).unwrap().unwrap();
        renders.push((lang, r.render(SR as usize)));
    }
    let (_, c) = &renders[0];
    let (_, asc) = &renders[1];
    // The change is heard: a sine with its echo, then a dry square (its
    // third harmonic a third of the fundamental).
    let before = &c[SR as usize / 4..SR as usize / 2];
    let after = &c[SR as usize * 3 / 4..];
    let third = |x: &[f32]| band_energy_db(x, SR, 1320.0, 20.0);
    assert!(
        third(before) < -60.0,
        "a sine first: {:.1} dB",
        third(before)
    );
    assert!(
        third(after) > -15.0,
        "a square after: {:.1} dB",
        third(after)
    );
    assert_eq!(
        max_diff(asc, c),
        0.0,
        "AssemblyScript gives the C SDK's bits before and after the change"
    );
}

/// The same AssemblyScript signal with one-pole filters whose cutoff is an
/// argument of every frame (`Lowpass`, `Highpass`) and with the fixed ones
/// (`FixedLowpass`, `FixedHighpass`: the cutoff given to `new`).
fn one_poles(variable: bool) -> String {
    let (lp, hp, lp_tick, hp_tick) = if variable {
        (
            "new Lowpass()",
            "new Highpass()",
            "lp.tick(x, 800)",
            "hp.tick(x, 300)",
        )
    } else {
        (
            "new FixedLowpass(800)",
            "new FixedHighpass(300)",
            "lp.tick(x)",
            "hp.tick(x)",
        )
    };
    format!(
        r#"import {{ Ctx, FixedHighpass, FixedLowpass, Highpass, Lowpass, Osc, Setup, Wave, gain, signal }} from "./lel";
export {{ statePtr, stateLen, init, process }} from "./lel";
const o = new Osc(Wave.Saw);
const lp = {lp};
const hp = {hp};
function setup(s: Setup): i32 {{
  o.claim();
  lp.claim();
  hp.claim();
  return 1;
}}
function frame(cx: Ctx, out: StaticArray<f64>): void {{
  let x = o.tick(110);
  x = {lp_tick};
  x = {hp_tick};
  out[0] = gain(x, 0.5);
}}
signal(setup, frame);
"#
    )
}

/// The signal `filters` (an oscillator, a lowpass and a highpass, keys
/// `osc#0`, `lowpass#0`, `highpass#0`) built with fixed helpers renders the
/// bits of its build with variable ones (`straight`: two seconds of it),
/// and a reload variable -> fixed -> variable half-way carries the phase
/// and both filters' memory each time, without a seam.
fn assert_fixed_play_and_swap_for_variable(variable: &[u8], fixed: &[u8], straight: &[f32]) {
    let frames = SR as usize;
    assert_eq!(
        max_diff(&render("filters", fixed, 2 * frames), straight),
        0.0,
        "the fixed helpers give the variable ones' bits"
    );
    let mut r = mono();
    r.load_bytes("filters", variable).unwrap();
    let mut out = r.render(frames / 2);
    for (bytes, then) in [(fixed, frames), (variable, frames / 2)] {
        let report = r
            .load_bytes("filters", bytes)
            .unwrap()
            .expect("the other version loads");
        for key in ["osc#0", "lowpass#0", "highpass#0"] {
            let block = report
                .layout
                .get(key)
                .unwrap_or_else(|| panic!("claims {key}"));
            assert!(block.carried, "{key} carried over");
        }
        out.extend(r.render(then));
    }
    assert_eq!(
        max_diff(&out, straight),
        0.0,
        "swapped both ways, it goes on exactly as if nothing happened"
    );
}

/// The fixed one-pole filters compute their coefficient once, when
/// claimed, so the transform reads it once per block (the variable ones
/// test their cutoff every frame and keep it in memory); they give the
/// variable ones' bits at the same cutoff, claim the same keys, and a
/// reload from one to the other goes on without a seam.
#[test]
fn assemblyscript_fixed_one_poles_play_the_variable_ones_bits_and_swap_for_them() {
    let dir = tempdir();
    let build = |variable: bool| {
        let name = if variable { "variable" } else { "fixed" };
        let (bytes, said) = built_saying(
            &dir.path().join(name),
            name,
            "assemblyscript",
            &format!("{name}.ts"),
            &one_poles(variable),
            &[("LEL_TRANSFORM_DEBUG", "1")],
        );
        (bytes, said)
    };
    let (variable, variable_said) = build(true);
    let (fixed, fixed_said) = build(false);
    assert_transform_said(&fixed_said, &["fixed/lp.a", "fixed/hp.a"], &[]);
    assert_transform_said(&variable_said, &[], &["variable/lp.a", "variable/hp.a"]);

    let frames = SR as usize;
    let straight = render("filters", &variable, 2 * frames);
    // A 110 Hz saw (harmonic n at 1/n) through both filters: the highpass
    // at 300 Hz brings the fundamental within 4 dB of the second harmonic
    // (6 dB above it in the saw), the lowpass at 800 Hz takes the 30th
    // harmonic more than 9 dB under the 15th (6 dB in the saw).
    let tail = &straight[frames / 2..frames];
    assert!(rms(tail) > 0.02, "the filtered saw sounds: {}", rms(tail));
    let db = |hz: f64| band_energy_db(tail, SR, hz, 10.0);
    assert!(
        db(220.0) > db(110.0) - 4.0,
        "the highpass: {:.1} dB at 220 Hz, {:.1} dB at 110 Hz",
        db(220.0),
        db(110.0)
    );
    assert!(
        db(3300.0) < db(1650.0) - 9.0,
        "the lowpass: {:.1} dB at 3300 Hz, {:.1} dB at 1650 Hz",
        db(3300.0),
        db(1650.0)
    );
    assert_fixed_play_and_swap_for_variable(&variable, &fixed, &straight);
}

/// The C SDK's sine oscillator and one-pole filters at a fixed cutoff
/// (`lel_sine_osc`, `lel_fixed_lowpass`, `lel_fixed_highpass`) against an
/// `lel_osc` playing `LEL_SINE` and `lel_lowpass`/`lel_highpass` given the
/// cutoff every frame.
fn c_sine_and_one_poles(fixed: bool) -> String {
    let (types, init, tick) = if fixed {
        (
            "static lel_sine_osc o;\nstatic lel_fixed_lowpass lp;\nstatic lel_fixed_highpass hp;",
            "lel_sine_osc_init(&o);\n  lel_fixed_lowpass_init(&lp, 800);\n  lel_fixed_highpass_init(&hp, 300);",
            "double x = lel_sine_osc_tick(&o, 440);\n  x = lel_fixed_lowpass_tick(&lp, x);\n  x = lel_fixed_highpass_tick(&hp, x);",
        )
    } else {
        (
            "static lel_osc o;\nstatic lel_lowpass lp;\nstatic lel_highpass hp;",
            "lel_osc_init(&o, LEL_SINE);\n  lel_lowpass_init(&lp);\n  lel_highpass_init(&hp);",
            "double x = lel_osc_tick(&o, 440);\n  x = lel_lowpass_tick(&lp, x, 800);\n  x = lel_highpass_tick(&hp, x, 300);",
        )
    };
    format!(
        r#"#include "lel.h"
{types}
int lel_setup(const lel_setup_ctx *s) {{
  (void)s;
  {init}
  return 1;
}}
void lel_frame(const lel_ctx *cx, double *out) {{
  (void)cx;
  {tick}
  out[0] = lel_gain(x, 0.5);
}}
"#
    )
}

/// `lel_sine_osc` has no wave to test every frame and the fixed one-poles
/// compute their coefficient when claimed: they give the variable helpers'
/// bits, claim the same keys, and a reload from one to the other goes on
/// without a seam.
#[test]
fn c_sine_osc_and_fixed_one_poles_play_the_variable_ones_bits_and_swap_for_them() {
    let dir = tempdir();
    let build = |fixed: bool| {
        let name = if fixed { "fixed" } else { "variable" };
        built_with(
            &dir.path().join(name),
            name,
            "c",
            &format!("{name}.c"),
            &c_sine_and_one_poles(fixed),
        )
    };
    let (variable, fixed) = (build(false), build(true));
    let frames = SR as usize;
    let straight = render("filters", &variable, 2 * frames);
    // A 440 Hz sine, a little quieter through both filters (a third of it
    // stays at 440 Hz: the highpass at 300 Hz and the lowpass at 800 Hz
    // each keep more than half), and nothing an octave up.
    let tail = &straight[frames / 2..frames];
    assert!(
        rms(tail) > 0.1 && rms(tail) < 0.5f64.sqrt() * 0.5,
        "the filtered sine sounds, softer: {}",
        rms(tail)
    );
    let db = |hz: f64| band_energy_db(tail, SR, hz, 10.0);
    assert!(
        db(880.0) < db(440.0) - 60.0,
        "a sine: {:.1} dB at 880 Hz, {:.1} dB at 440 Hz",
        db(880.0),
        db(440.0)
    );
    assert_fixed_play_and_swap_for_variable(&variable, &fixed, &straight);
}

/// A saw through an echo whose time steps every 0.1 s (0.05 s, 0.12 s,
/// 0.2 s, then NaN, which the delay takes as one sample), in every SDK: the
/// C and AssemblyScript delays keep the delay in samples from one frame to
/// the next and compute it again only when the time changes.
const MOVING_DELAY: [(&str, &str, &str); 4] = [
    (
        "rust",
        "src/lib.rs",
        r#"#![cfg_attr(target_arch = "wasm32", no_std)]
use lel::prelude::*;
fn seconds(c: &Ctx) -> f64 {
    match (c.clock / 4800) % 4 {
        0 => 0.05,
        1 => 0.12,
        2 => 0.2,
        _ => f64::NAN,
    }
}
lel::signal!(saw(220).delay(0.3, seconds).gain(0.3));
"#,
    ),
    (
        "c",
        "moving.c",
        r#"#include "lel.h"
static lel_osc o;
static lel_delay d;
int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_osc_init(&o, LEL_SAW);
  lel_delay_init(&d, 0.3);
  return 1;
}
static double seconds(uint64_t clock) {
  switch ((clock / 4800) % 4) {
    case 0: return 0.05;
    case 1: return 0.12;
    case 2: return 0.2;
    default: return __builtin_nan("");
  }
}
void lel_frame(const lel_ctx *cx, double *out) {
  out[0] = lel_gain(lel_delay_tick(&d, lel_osc_tick(&o, 220), seconds(cx->clock)), 0.3);
}
"#,
    ),
    (
        "zig",
        "moving.zig",
        r#"const std = @import("std");
const lel = @import("lel");
var o: lel.Osc = .{};
var d: lel.Delay = .{};
pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try o.claim(.saw, .{});
    try d.claim(0.3, .{});
    return 1;
}
fn seconds(clock: u64) f64 {
    return switch ((clock / 4800) % 4) {
        0 => 0.05,
        1 => 0.12,
        2 => 0.2,
        else => std.math.nan(f64),
    };
}
pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    out[0] = lel.gain(d.tick(o.tick(220), seconds(cx.clock)), 0.3);
}
comptime {
    lel.signal(@This());
}
"#,
    ),
    (
        "assemblyscript",
        "moving.ts",
        r#"import { Ctx, Delay, Osc, Setup, Wave, gain, signal } from "./lel";
export { statePtr, stateLen, init, process } from "./lel";
const o = new Osc(Wave.Saw);
const d = new Delay(0.3);
function setup(s: Setup): i32 {
  o.claim();
  d.claim();
  return 1;
}
function seconds(clock: u64): f64 {
  const k = (clock / 4800) % 4;
  return k == 0 ? 0.05 : k == 1 ? 0.12 : k == 2 ? 0.2 : NaN;
}
function frame(cx: Ctx, out: StaticArray<f64>): void {
  out[0] = gain(d.tick(o.tick(220), seconds(cx.clock)), 0.3);
}
signal(setup, frame);
"#,
    ),
];

#[test]
fn a_delay_time_that_moves_gives_the_rust_sdks_bits_in_every_language() {
    let dir = tempdir();
    let mut renders = Vec::new();
    for (lang, source, text) in MOVING_DELAY {
        let bytes = built_with(&dir.path().join(lang), "moving", lang, source, text);
        renders.push((lang, render("moving", &bytes, SR as usize)));
    }
    let (_, reference) = &renders[0];
    assert!(rms(reference) > 0.05, "it sounds: {}", rms(reference));
    for (lang, out) in &renders[1..] {
        assert_eq!(
            max_diff(out, reference),
            0.0,
            "{lang}: the moving delay gives the Rust SDK's bits"
        );
    }
    // A constant time would not: the steps change the samples.
    let still = built_with(
        &dir.path().join("still"),
        "moving",
        "c",
        "moving.c",
        &MOVING_DELAY[1].2.replace("seconds(cx->clock)", "0.05"),
    );
    assert!(
        max_diff(&render("moving", &still, SR as usize), reference) > 0.01,
        "the time's steps are heard"
    );
}

#[test]
fn every_helper_computes_the_rust_sdks_samples_in_every_language() {
    // Each is a `lel-host new helpers` project with its source replaced, so
    // this builds with the projects' one command too.
    let dir = tempdir();
    let mut renders = Vec::new();
    for (lang, source, text) in HELPERS {
        let bytes = built_with(&dir.path().join(lang), "helpers", lang, source, text);
        let mut r = Renderer::with_settings(Settings {
            sample_rate: SR,
            channels: 2,
            block: 128,
            runaway: Some(OFFLINE_RUNAWAY),
            ..Settings::default()
        })
        .unwrap();
        let report = r.load_bytes("helpers", &bytes).unwrap().unwrap();
        let keys: Vec<&str> = report.layout.blocks.iter().map(|b| &*b.key).collect();
        renders.push((lang, keys.join(" "), r.render(2 * SR as usize)));
    }
    let (_, keys, reference) = &renders[0];
    assert!(rms(reference) > 0.01, "the helpers make sound");
    for (lang, k, out) in &renders[1..] {
        assert_eq!(k, keys, "{lang} claims the Rust SDK's keys, in order");
        assert_eq!(
            max_diff(out, reference),
            0.0,
            "{lang}: every helper gives the Rust SDK's bits"
        );
    }
}

/// A three-channel signal in each SDK but Rust's: channel 0 a constant plus
/// the frame's time in seconds (`t`), channel 1 written on even frames only (the SDK hands `frame` zeros, so
/// odd frames are silent), channel 2 a ramp of the clock (all below the
/// master limiter's ceiling, so they arrive as computed). Three channels
/// take the SDKs' general path (one and two have their own).
const THREE: [(&str, &str, &str); 4] = [
    (
        "c",
        "three.c",
        r#"#include "lel.h"
int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  return 3;
}
void lel_frame(const lel_ctx *cx, double *out) {
  out[0] = 0.25 + cx->t;
  if (cx->clock % 2 == 0) out[1] = 0.5;
  out[2] = (double)(cx->clock % 100) / 400.0;
}
"#,
    ),
    (
        "zig",
        "three.zig",
        r#"const lel = @import("lel");
pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    return 3;
}
pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    out[0] = 0.25 + cx.t;
    if (cx.clock % 2 == 0) out[1] = 0.5;
    out[2] = @as(f64, @floatFromInt(cx.clock % 100)) / 400.0;
}
comptime {
    lel.signal(@This());
}
"#,
    ),
    (
        "assemblyscript",
        "three.ts",
        r#"import { Ctx, Setup, signal } from "./lel";
export { statePtr, stateLen, init, process } from "./lel";
function setup(s: Setup): i32 {
  return 3;
}
function frame(cx: Ctx, out: StaticArray<f64>): void {
  out[0] = 0.25 + cx.t;
  if (cx.clock % 2 == 0) out[1] = 0.5;
  out[2] = <f64>(cx.clock % 100) / 400.0;
}
signal(setup, frame);
"#,
    ),
    // `frame` as an arrow function: lel-transform.mjs finds no function
    // to put inside `process`, which then calls it through the table.
    (
        "assemblyscript",
        "three.ts",
        r#"import { Ctx, Setup, signal } from "./lel";
export { statePtr, stateLen, init, process } from "./lel";
function setup(s: Setup): i32 {
  return 3;
}
signal(setup, (cx: Ctx, out: StaticArray<f64>): void => {
  out[0] = 0.25 + cx.t;
  if (cx.clock % 2 == 0) out[1] = 0.5;
  out[2] = <f64>(cx.clock % 100) / 400.0;
});
"#,
    ),
];

#[test]
fn a_three_channel_signal_plays_every_frame_in_order_in_every_language() {
    let dir = tempdir();
    for (n, (lang, source, text)) in THREE.into_iter().enumerate() {
        let parent = dir.path().join(format!("{n}-{lang}"));
        let bytes = built_with(&parent, "three", lang, source, text);
        // 128 frames: whole groups of four; 61: one frame left over.
        for block in [128, 61] {
            let mut r = Renderer::with_settings(Settings {
                sample_rate: SR,
                channels: 3,
                block,
                runaway: Some(OFFLINE_RUNAWAY),
                ..Settings::default()
            })
            .unwrap();
            r.load_bytes("three", &bytes).unwrap();
            let out = r.render(1000);
            for (clock, frame) in out.chunks_exact(3).enumerate() {
                let want = [
                    (0.25 + clock as f64 / SR as f64) as f32,
                    if clock % 2 == 0 { 0.5 } else { 0.0 },
                    ((clock % 100) as f64 / 400.0) as f32,
                ];
                assert_eq!(
                    frame, want,
                    "{lang} (source {n}), blocks of {block}: frame {clock} of three channels"
                );
            }
        }
    }
}

#[test]
fn the_zig_version_is_pinned_once() {
    let want = lel_host::ZIG_VERSION;
    for script in ["scripts/setup-languages", "scripts/build-examples"] {
        let text = std::fs::read_to_string(repo_root().join(script)).unwrap();
        assert!(
            text.contains(&format!("ZIG_VERSION={want}\n")),
            "{script} pins Zig {want} like lel_host::ZIG_VERSION"
        );
    }
}

/// Replace `from` by `to` in the project's source file.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has {from}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn lel_host_new_makes_a_project_that_builds_and_plays_in_every_language() {
    let dir = tempdir();
    let langs = [
        ("rust", "src/lib.rs", "osc(440)", "osc(660)"),
        ("c", "tone.c", "440.0", "660.0"),
        ("zig", "tone.zig", "tick(440)", "tick(660)"),
        ("assemblyscript", "tone.ts", "tick(440)", "tick(660)"),
        ("wat", "tone.wat", "(f64.const 440)", "(f64.const 660)"),
    ];
    for (lang, source, from, to) in langs {
        let parent = dir.path().join(lang);
        run_ok(
            Command::new(lel_host_bin())
                .args(["new", "tone", "--lang", lang, "--dir"])
                .arg(&parent),
            &format!("lel-host new tone --lang {lang}"),
            "",
        );
        let project = parent.join("tone");
        assert!(project.join("README.md").is_file(), "{lang}: a README");
        let build = || {
            if lang != "wat" {
                run_ok(
                    niced(&project.join("build.sh")).env_remove("CARGO_TARGET_DIR"),
                    &format!("{lang}: ./build.sh"),
                    INSTALL,
                );
            }
        };
        let built = if lang == "wat" {
            project.join("tone.wat")
        } else {
            project.join("out/tone.wasm")
        };

        // One command builds it; it plays a 440 Hz sine at half scale.
        build();
        lel_host::contract::validate(&binary(&built)).unwrap_or_else(|e| panic!("{lang}: {e}"));
        let mut r = mono();
        r.load(&built).unwrap();
        let first = r.render(SR as usize);
        let f = dominant_frequency(&first[4800..], SR);
        assert!((f - 440.0).abs() < 0.5, "{lang}: 440 Hz, got {f}");
        assert!((peak(&first) - 0.5).abs() < 2e-3, "{lang}: half scale");

        // Live: edit the frequency, rebuild, reload: the phase carries, so
        // the change is click-free, and the new frequency plays.
        edit(&project.join(source), from, to);
        build();
        let report = r.load(&built).unwrap().expect("the new version loads");
        assert!(
            report.layout.get("osc#0").unwrap().carried,
            "{lang}: osc#0 carried"
        );
        let second = r.render(SR as usize);
        let f = dominant_frequency(&second[4800..], SR);
        assert!(
            (f - 660.0).abs() < 0.5,
            "{lang}: 660 Hz after the edit, got {f}"
        );
        let join = [&first[first.len() - 64..], &second[..64]].concat();
        let step = max_step(&join);
        assert!(
            step <= sine_step_bound(0.5, 660.0, SR),
            "{lang}: click-free swap (step {step})"
        );
    }
}

#[test]
fn the_assemblyscript_sdk_logs_long_non_ascii_lines_safely() {
    // 1,024 euro signs are 3,072 bytes of UTF-8: the SDK's 1,024-byte
    // scratch buffer must cut the line (at a character boundary), not
    // overflow into the module's other data (which made `init` trap).
    let dir = tempdir();
    for f in ["lel.ts", "lel_constants.ts", "lel-transform.mjs"] {
        std::fs::copy(
            repo_root().join("guest-sdk/assemblyscript").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    write(
        dir.path(),
        "long.ts",
        r#"import { Ctx, Level, Osc, Setup, gain, log, signal } from "./lel";
export { statePtr, stateLen, init, process } from "./lel";
const osc = new Osc();
function setup(s: Setup): i32 {
  log(Level.Info, "€".repeat(1024));
  osc.claim("€".repeat(300));
  return 1;
}
function frame(cx: Ctx, out: StaticArray<f64>): void { out[0] = gain(osc.tick(440), 0.5); }
signal(setup, frame);
"#,
    );
    let asc = repo_root().join("examples/assemblyscript/node_modules/.bin/asc");
    run_ok(
        niced(&asc).current_dir(dir.path()).args([
            "long.ts",
            "--transform",
            "./lel-transform.mjs",
            "--runtime",
            "stub",
            "-O3",
            "--noAssert",
            "--use",
            "abort=",
            "-o",
            "long.wasm",
        ]),
        "asc long.ts",
        INSTALL,
    );
    let bytes = std::fs::read(dir.path().join("long.wasm")).unwrap();
    let mut r = mono();
    let err = r
        .load_bytes("long", &bytes)
        .expect_err("a 900-byte key is refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("is 900 bytes, the limit is 256"),
        "the host sees the whole over-long key, not a trap: {msg}"
    );
}

// ---- playing (contract 0.2): parameters and notes in every language --------

use lel_host::NoteEvent;

/// The languages of `mono` besides Rust (its reference).
const MONO_LANGS: [&str; 4] = ["c", "zig", "as", "wat"];

/// A note-on of `key` at `velocity` for `signal` at clock frame `at`.
fn note_on(r: &mut Renderer, signal: &str, key: u8, velocity: f32, at: u64) {
    r.send_event(signal, NoteEvent::note_on(0, key, velocity), at)
        .unwrap_or_else(|e| panic!("note-on for {signal}: {e:#}"));
}

fn note_off(r: &mut Renderer, signal: &str, key: u8, at: u64) {
    r.send_event(signal, NoteEvent::note_off(0, key, 0.0), at)
        .unwrap_or_else(|e| panic!("note-off for {signal}: {e:#}"));
}

/// `mono` in one language, played one second: a note, the level turned
/// mid-note, a pitch bend, a legato note, a note-off of a key no longer the
/// last (ignored), the release, and a last note. Events fall inside
/// blocks (not on their boundaries).
fn play_mono(lang: &str) -> Vec<f32> {
    let signal = format!("mono-{lang}");
    let mut r = mono();
    r.load_bytes(&signal, module("mono", lang))
        .unwrap_or_else(|e| panic!("load {signal}: {e:#}"));
    note_on(&mut r, &signal, 69, 1.0, 1000);
    r.set_param(&signal, "level", 0.9, 5003).unwrap();
    r.send_event(&signal, NoteEvent::pitch_bend(0, 0.5), 9001)
        .unwrap();
    note_on(&mut r, &signal, 72, 0.6, 15_007);
    note_off(&mut r, &signal, 69, 17_000);
    note_off(&mut r, &signal, 72, 20_011);
    note_on(&mut r, &signal, 60, 0.8, 25_005);
    r.set_param(&signal, "level", 0.2, 30_000).unwrap();
    r.render(SR as usize)
}

#[test]
fn notes_and_a_parameter_sound_the_same_in_every_language() {
    let reference = play_mono("rust");
    // The reference plays what it was told, at the frames it was told.
    assert_eq!(peak(&reference[..1000]), 0.0, "silent before the note");
    assert!(reference[1001] != 0.0, "the note sounds from its frame");
    let f = dominant_frequency(&reference[1000..5000], SR);
    assert!((f - 440.0).abs() < 8.0, "key 69 at 440 Hz: {f}");
    let (a, b) = (peak(&reference[3000..5000]), peak(&reference[7000..9000]));
    assert!(
        (a - 0.5).abs() < 0.01 && (b - 0.9).abs() < 0.01,
        "level 0.5 then 0.9: {a} {b}"
    );
    let f = dominant_frequency(&reference[10_000..15_000], SR);
    assert!((f - 466.2).abs() < 8.0, "bent up a semitone: {f}");
    assert_eq!(
        peak(&reference[20_011..25_005]),
        0.0,
        "released at its frame"
    );
    for lang in MONO_LANGS {
        let out = play_mono(lang);
        let d = max_diff(&out, &reference);
        let same = out.iter().zip(&reference).filter(|(a, b)| a == b).count();
        eprintln!("mono-{lang}: max difference {d:e}, {same} samples identical");
        assert!(
            d <= TOLERANCE,
            "mono-{lang} differs from mono-rust by {d:e}"
        );
        if EXACT_LANGS.contains(&lang) {
            assert_eq!(d, 0.0, "mono-{lang}: bit for bit");
        }
    }
}

/// `examples/zig/mono.zig` with its helpers in one struct, `pub var
/// helpers`, that `frame` reads through a pointer (the Zig SDK's other
/// form: `process` works on the block's copy and writes it back).
const MONO_ZIG_HELPERS: &str = r#"const lel = @import("lel");
const Helpers = struct { osc: lel.Osc = .{}, level: lel.Param = .{} };
pub var helpers: Helpers = .{};
pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try helpers.osc.claim(.sine, .{});
    try lel.notes();
    try helpers.level.claim("level", 0.5, 0.0, 1.0, "", 0);
    return 1;
}
pub fn frame(cx: *const lel.Ctx, out: []f64, h: *Helpers) void {
    _ = cx;
    out[0] = h.osc.tick(lel.pitch()) * lel.gate() * lel.velocity() * h.level.tick();
}
comptime {
    lel.signal(@This());
}
"#;

/// The Zig SDK's helpers in one struct play what its globals play, bit for
/// bit, with the same notes and parameter changes: the parameter's ramps
/// (20 ms, several blocks) and the oscillator's phase go on from block to
/// block, so the block's copy of the helpers is written back.
#[test]
fn zig_helpers_in_one_struct_play_what_globals_play() {
    let dir = tempdir();
    let bytes = built_with(dir.path(), "mono", "zig", "mono.zig", MONO_ZIG_HELPERS);
    let mut r = mono();
    r.load_bytes("mono-zig", &bytes).unwrap();
    note_on(&mut r, "mono-zig", 69, 1.0, 1000);
    r.set_param("mono-zig", "level", 0.9, 5003).unwrap();
    r.send_event("mono-zig", NoteEvent::pitch_bend(0, 0.5), 9001)
        .unwrap();
    note_on(&mut r, "mono-zig", 72, 0.6, 15_007);
    note_off(&mut r, "mono-zig", 69, 17_000);
    note_off(&mut r, "mono-zig", 72, 20_011);
    note_on(&mut r, "mono-zig", 60, 0.8, 25_005);
    r.set_param("mono-zig", "level", 0.2, 30_000).unwrap();
    let out = r.render(SR as usize);
    let globals = play_mono("zig");
    assert!(peak(&out) > 0.5, "it plays: peak {}", peak(&out));
    let (a, b) = (peak(&out[3000..5000]), peak(&out[7000..9000]));
    assert!(
        (a - 0.5).abs() < 0.01 && (b - 0.9).abs() < 0.01,
        "level 0.5 then 0.9: {a} {b}"
    );
    assert_eq!(max_diff(&out, &globals), 0.0, "the same bits as mono-zig");
}

/// `mono` in one language with blocks of `block` frames, half a second:
/// events one to three frames apart (closer than the SDKs' four frames per
/// loop iteration), two at one frame, and some on block edges.
fn play_mono_in_blocks(lang: &str, block: u32) -> Vec<f32> {
    let signal = format!("mono-{lang}");
    let mut r = Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block,
        runaway: Some(OFFLINE_RUNAWAY),
        ..Settings::default()
    })
    .expect("engine");
    r.load_bytes(&signal, module("mono", lang))
        .unwrap_or_else(|e| panic!("load {signal}: {e:#}"));
    note_on(&mut r, &signal, 69, 1.0, 1000);
    r.set_param(&signal, "level", 0.9, 1001).unwrap();
    r.send_event(&signal, NoteEvent::pitch_bend(0, 0.5), 1003)
        .unwrap();
    note_on(&mut r, &signal, 72, 0.6, 1006);
    note_off(&mut r, &signal, 69, 1006);
    r.set_param(&signal, "level", 0.3, 5000).unwrap();
    r.set_param(&signal, "level", 0.7, 5002).unwrap();
    note_off(&mut r, &signal, 72, 9000);
    note_on(&mut r, &signal, 60, 0.8, 9001);
    r.send_event(&signal, NoteEvent::pitch_bend(0, -0.25), 9003)
        .unwrap();
    r.render(SR as usize / 2)
}

#[test]
fn every_sdk_renders_the_same_bits_in_blocks_of_any_length() {
    // The SDKs render four frames per loop iteration and the rest one by
    // one, and a frame with events alone: blocks whose length is not a
    // multiple of four, and events closer together than four frames, must
    // give the same samples as 128-frame blocks (block length changes
    // nothing a signal computes). The chain has no events: only the rest.
    let reference = play_mono_in_blocks("rust", 128);
    assert_eq!(peak(&reference[..1000]), 0.0, "silent before the note");
    assert!(reference[1001] != 0.0, "the note sounds from its frame");
    let chain = {
        let mut r = mono();
        r.load_bytes("chain", module("chain", "rust")).unwrap();
        r.render(SR as usize / 4)
    };
    assert!(rms(&chain) > 0.05, "the chain sounds");
    for block in [1, 3, 6, 61, 125] {
        for lang in ["rust", "c", "zig", "as"] {
            let out = play_mono_in_blocks(lang, block);
            assert_eq!(
                max_diff(&out, &reference),
                0.0,
                "mono-{lang} in blocks of {block}: bit for bit with 128-frame blocks of mono-rust"
            );
            let mut r = Renderer::with_settings(Settings {
                sample_rate: SR,
                channels: 1,
                block,
                runaway: Some(OFFLINE_RUNAWAY),
                ..Settings::default()
            })
            .expect("engine");
            r.load_bytes("chain", module("chain", lang)).unwrap();
            assert_eq!(
                max_diff(&r.render(SR as usize / 4), &chain),
                0.0,
                "chain-{lang} in blocks of {block}: bit for bit with 128-frame blocks of chain-rust"
            );
        }
    }
}

/// `poly-synth` in `lang`, played: a four-note chord, a cutoff sweep, five
/// more notes (the ninth steals), releases with a changed release time.
fn play_poly(lang: &str) -> (Renderer, String) {
    let signal = format!("poly-synth-{lang}");
    let mut r = mono();
    r.load_bytes(&signal, module("poly-synth", lang))
        .unwrap_or_else(|e| panic!("load {signal}: {e:#}"));
    (r, signal)
}

const CHORD: [u8; 4] = [57, 61, 64, 69];

fn hz(key: u8) -> f64 {
    440.0 * 2f64.powf((key as f64 - 69.0) / 12.0)
}

/// Peaks of the spectrum above `floor` times the strongest: local maxima,
/// interpolated.
fn peaks(x: &[f32], floor: f64) -> Vec<f64> {
    let mag = spectrum(x);
    let top = mag.iter().cloned().fold(0.0, f64::max);
    let bin = SR as f64 / (2.0 * (mag.len() as f64 - 1.0)).max(1.0);
    let mut out = Vec::new();
    for k in 2..mag.len() - 2 {
        let m = mag[k];
        if m > floor * top && m > mag[k - 1] && m >= mag[k + 1] && m > mag[k - 2] && m > mag[k + 2]
        {
            let (a, b, c) = (mag[k - 1].ln(), m.ln(), mag[k + 1].ln());
            out.push((k as f64 + 0.5 * (a - c) / (a - 2.0 * b + c)) * bin);
        }
    }
    out
}

fn has(peaks: &[f64], f: f64) -> bool {
    peaks.iter().any(|p| (p - f).abs() < 2.0)
}

fn score(r: &mut Renderer, signal: &str) -> Vec<f32> {
    for (i, k) in CHORD.iter().enumerate() {
        note_on(r, signal, *k, 1.0, 100 + i as u64 * 37);
    }
    let mut out = r.render(SR as usize / 2);
    let t = r.clock();
    r.set_param(signal, "cutoff", 600.0, t + 11).unwrap();
    for (i, k) in [72u8, 76, 79, 84, 88].iter().enumerate() {
        note_on(r, signal, *k, 0.7, t + 4800 + i as u64 * 501);
    }
    out.extend(r.render(SR as usize / 2));
    let t = r.clock();
    r.set_param(signal, "release", 1.5, t + 5).unwrap();
    for k in [61u8, 64, 69, 72, 76, 79, 84, 88] {
        note_off(r, signal, k, t + 700);
    }
    out.extend(r.render(SR as usize / 2));
    out
}

/// The poly-synth's languages besides Rust (its reference).
const POLY_LANGS: [&str; 3] = ["c", "zig", "as"];

#[test]
fn the_poly_synth_sounds_the_same_in_rust_c_zig_and_assemblyscript() {
    let (mut r, s) = play_poly("rust");
    let reference = score(&mut r, &s);
    assert!(rms(&reference) > 0.02, "poly-synth-rust is audible");
    for lang in POLY_LANGS {
        let (mut r, s) = play_poly(lang);
        let out = score(&mut r, &s);
        let d = max_diff(&out, &reference);
        let same = out.iter().zip(&reference).filter(|(a, b)| a == b).count();
        eprintln!("poly-synth-{lang}: max difference {d:e}, {same} samples identical");
        assert_eq!(
            d, 0.0,
            "poly-synth-{lang}: bit for bit with poly-synth-rust"
        );
    }
}

#[test]
fn the_poly_synth_plays_chords_and_the_ninth_note_steals_the_oldest() {
    for lang in ["rust", "c", "zig", "as"] {
        let (mut r, s) = play_poly(lang);
        for k in CHORD {
            note_on(&mut r, &s, k, 1.0, 0);
        }
        r.render(4800);
        let chord = peaks(&r.render(SR as usize / 2), 0.15);
        for k in CHORD {
            assert!(
                has(&chord, hz(k)),
                "{s}: {} Hz in the chord {chord:?}",
                hz(k)
            );
        }
        // Four more held notes fill the eight voices; the ninth takes the
        // voice of the oldest held note (57) and every other one sounds on.
        let t = r.clock();
        for (i, k) in [50u8, 53, 66, 71, 74].iter().enumerate() {
            note_on(&mut r, &s, *k, 1.0, t + i as u64 * 480);
        }
        r.render(4800);
        let all = peaks(&r.render(SR as usize / 2), 0.1);
        assert!(!has(&all, hz(57)), "{s}: 57 was stolen: {all:?}");
        for k in [61u8, 64, 69, 50, 53, 66, 71, 74] {
            assert!(has(&all, hz(k)), "{s}: {} Hz still sounds: {all:?}", hz(k));
        }
    }
}

#[test]
fn ringing_voices_and_knob_positions_survive_a_reload_and_a_language_hop() {
    let before = 24_064; // mid-note, mid-block of the events' blocks
    let after = SR as usize / 2;
    let setup = |r: &mut Renderer, s: &str| {
        r.set_param(s, "cutoff", 900.0, 0).unwrap();
        for k in CHORD {
            note_on(r, s, k, 0.9, 250);
        }
    };
    let (mut r, s) = play_poly("rust");
    setup(&mut r, &s);
    let straight = r.render(before + after);
    // The same instrument rebuilt, or its C, Zig or AssemblyScript build in
    // its place: every
    // voice's phase, filter and envelope, the voice table and the note
    // state carried, the cutoff the player set kept.
    for (lang, bytes) in [
        ("rust", another_version(module("poly-synth", "rust"))),
        ("c", module("poly-synth", "c").to_vec()),
        ("zig", module("poly-synth", "zig").to_vec()),
        ("as", module("poly-synth", "as").to_vec()),
    ] {
        let (mut r, s) = play_poly("rust");
        setup(&mut r, &s);
        let mut out = r.render(before);
        let report = r
            .load_bytes(&s, &bytes)
            .unwrap()
            .unwrap_or_else(|| panic!("{lang}: a new version loads"));
        for key in ["poly#0", "notes", "osc#0", "biquad#7", "env#3"] {
            let b = report
                .layout
                .get(key)
                .unwrap_or_else(|| panic!("{lang}: claims {key}"));
            assert!(b.carried, "{lang}: {key} carried over");
        }
        out.extend(r.render(after));
        let cutoff = r
            .params(&s)
            .unwrap()
            .into_iter()
            .find(|p| p.key == "cutoff")
            .unwrap();
        assert_eq!((cutoff.value, cutoff.user_set), (900.0, true), "{lang}");
        assert_eq!(
            max_diff(&out, &straight),
            0.0,
            "{lang}: the chord rings on through the reload as if nothing happened"
        );
        let chord = peaks(&out[before..], 0.15);
        for k in CHORD {
            assert!(
                has(&chord, hz(k)),
                "{lang}: {} Hz after the reload: {chord:?}",
                hz(k)
            );
        }
    }
}

#[test]
fn a_parameter_jump_does_not_click_on_the_host() {
    // mono-rust holds A4; its level jumps from 0.5 to 0.8, to 0.05 and back
    // to 0.8 inside blocks (0.8: below the master's -1 dBFS ceiling).
    // Smoothed, no step between samples is larger than the 440 Hz sine's
    // own largest step at 0.8.
    let mut r = mono();
    r.load_bytes("mono-rust", module("mono", "rust")).unwrap();
    note_on(&mut r, "mono-rust", 69, 1.0, 0);
    r.set_param("mono-rust", "level", 0.8, 6_000).unwrap();
    r.set_param("mono-rust", "level", 0.05, 6_100).unwrap();
    r.set_param("mono-rust", "level", 0.8, 12_345).unwrap();
    let out = r.render(SR as usize / 2);
    let bound = sine_step_bound(0.8, 440.0, SR);
    let step = max_step(&out);
    assert!(
        step <= bound,
        "largest step {step} > the sine's at 0.8, {bound}"
    );
    // And the level got there: 0.8 within 20 ms of the last change.
    let settled = peak(&out[12_345 + 960..20_000]);
    assert!((settled - 0.8).abs() < 0.01, "settled at {settled}");
}

/// The poly-synth played over OSC on a real UDP socket: a chord, a cutoff
/// move and a release, each packet applied at the next block (as the live
/// control loop does); the spectrum holds the chord, the knob is the
/// player's, and velocity 0 releases.
#[test]
fn the_poly_synth_plays_osc_notes_and_knobs_over_udp() {
    use lel_host::testing::{MidiMap, OscServer, Target as _};
    use rosc::OscType;
    let signal = "poly-synth-rust";
    let mut r = mono();
    r.load_bytes(signal, module("poly-synth", "rust")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut server = OscServer::start("127.0.0.1:0".parse().unwrap(), move |inc| {
        let _ = tx.send(inc);
    })
    .unwrap();
    let to = server.local_addr();
    let c = crate::osc::client();
    let mut send = |r: &mut Renderer, addr: &str, args: Vec<OscType>| {
        c.send_to(&crate::osc::msg(addr, args), to).unwrap();
        let inc = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the OSC packet arrives");
        let at = r.now();
        server.answer(r, &mut MidiMap::default(), &inc, at);
    };
    let note = |k: i32, v: i32| vec![OscType::Int(k), OscType::Int(v)];
    r.render(1280);
    for k in CHORD {
        send(&mut r, "/lel/poly-synth-rust/note", note(k as i32, 100));
    }
    send(
        &mut r,
        "/lel/poly-synth-rust/cutoff",
        vec![OscType::Float(900.0)],
    );
    r.render(4800);
    let chord = peaks(&r.render(SR as usize / 2), 0.15);
    for k in CHORD {
        assert!(
            has(&chord, hz(k)),
            "{} Hz in the OSC chord {chord:?}",
            hz(k)
        );
    }
    let cutoff = r
        .params(signal)
        .unwrap()
        .into_iter()
        .find(|p| p.key == "cutoff")
        .unwrap();
    assert_eq!((cutoff.value, cutoff.user_set), (900.0, true));
    for k in CHORD {
        send(&mut r, "/lel/poly-synth-rust/note", note(k as i32, 0));
    }
    // The release (0.3 s) runs out: silence within 0.35 s.
    r.render(16_800);
    assert_eq!(peak(&r.render(4800)), 0.0, "released by velocity 0");
}

/// The poly-synth rendered from a Standard MIDI File by `lel-host render
/// --midi` with `--set`: a chord, then a fifth note while it holds.
#[test]
fn the_poly_synth_renders_a_midi_file_chord() {
    use midly::num::{u4, u7, u15, u28};
    use midly::{Header, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
    let ev = |delta: u32, on: bool, key: u8| TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Midi {
            channel: u4::new(0),
            message: if on {
                MidiMessage::NoteOn {
                    key: u7::new(key),
                    vel: u7::new(110),
                }
            } else {
                MidiMessage::NoteOff {
                    key: u7::new(key),
                    vel: u7::new(0),
                }
            },
        },
    };
    // 96 ticks a beat at the default 120 bpm: a beat is 0.5 s.
    let mut track: Vec<TrackEvent> = CHORD.iter().map(|&k| ev(0, true, k)).collect();
    track.push(ev(96, true, 76));
    track.extend(
        CHORD
            .iter()
            .map(|&k| ev(if k == CHORD[0] { 192 } else { 0 }, false, k)),
    );
    track.push(ev(0, false, 76));
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(midly::MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(midly::Format::SingleTrack, Timing::Metrical(u15::new(96))),
        tracks: vec![track],
    };
    let dir = tempdir();
    let mid = dir.path().join("chord.mid");
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    std::fs::write(&mid, bytes).unwrap();
    let wasm = dir.path().join("poly-synth-rust.wasm");
    std::fs::write(&wasm, module("poly-synth", "rust")).unwrap();
    let wav = dir.path().join("chord.wav");
    run_ok(
        Command::new(lel_host_bin())
            .arg("render")
            .arg(&wasm)
            .arg("--midi")
            .arg(&mid)
            .args([
                "--set",
                "poly-synth-rust.cutoff=1200",
                "--seconds",
                "2",
                "-o",
            ])
            .arg(&wav),
        "render --midi",
        "",
    );
    let (ch, sr, samples) = read_wav(&wav);
    assert_eq!(sr, SR);
    let left = channel(&samples, ch as usize, 0);
    // Before the fifth note (0.05 to 0.5 s): the chord; after (0.6 to 1.4 s):
    // the chord and 76.
    let before = peaks(&left[2400..24_000], 0.15);
    for k in CHORD {
        assert!(has(&before, hz(k)), "{} Hz in {before:?}", hz(k));
    }
    let after = peaks(&left[28_800..67_200], 0.1);
    for k in CHORD.iter().chain([&76u8]) {
        assert!(has(&after, hz(*k)), "{} Hz in {after:?}", hz(*k));
    }
    // All released at 1.5 s; the release (0.3 s) is over by 1.85 s.
    assert_eq!(peak(&left[88_800..]), 0.0, "silent after the release");
}

// ---- contract 0.1.0 modules built by the SDKs before 0.2.0 ------------------

/// Modules the guest SDKs built when they emitted `lel:signal@0.1.0`
/// (`scripts/build-0.1-modules` rebuilds them from that commit): the chain
/// in Rust, C, Zig and AssemblyScript, and the wit-bindgen sine.
const V0_1_MODULES: [(&str, &str); 5] = [
    ("chain", "rust"),
    ("chain", "c"),
    ("chain", "zig"),
    ("chain", "as"),
    ("sine", "wit"),
];

/// A module built by an SDK of contract 0.1.0 plays exactly as today's
/// 0.2.0 build of the same code, ignores notes and has no parameters; and a
/// signal playing the 0.1.0 build takes today's 0.2.0 build as its next
/// version with every block of state carried, going on as if nothing
/// happened (an SDK upgrade mid-performance).
#[test]
fn modules_built_by_the_0_1_sdks_play_unchanged_and_upgrade_to_0_2_in_place() {
    use lel_host::contract::{ContractVersion, validate};
    let before = 62_464; // 1.3 s: echoes in the delay line, phases mid-cycle
    let after = SR as usize;
    for (name, lang) in V0_1_MODULES {
        let signal = format!("{name}-{lang}");
        let path = repo_root().join(format!("tests/integration/data/contract-0.1/{signal}.wasm"));
        let old = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let new = module(name, lang);
        assert_eq!(
            validate(&old).unwrap().version,
            ContractVersion::V0_1,
            "{signal}: the 0.1.0 build"
        );
        assert_eq!(
            validate(new).unwrap().version,
            ContractVersion::V0_2,
            "{signal}: today's build"
        );

        // Played alone, with a note sent to it: the sound of the code.
        let mut r = mono();
        let report = r.load_bytes(&signal, &old).unwrap().unwrap();
        assert!(report.params.is_empty(), "{signal}: no parameters");
        assert_eq!(report.event_capacity, None, "{signal}: no event buffer");
        r.send_event(&signal, NoteEvent::note_on(0, 60, 1.0), 1000)
            .unwrap();
        let straight_old = r.render(before + after);
        let straight_new = render(&signal, new, before + after);
        assert!(all_finite(&straight_old));
        let f = dominant_frequency(&straight_old[SR as usize..], SR);
        assert!((f - 440.0).abs() < 1.0, "{signal} (0.1.0) at 440 Hz: {f}");
        assert!(rms(&straight_old) > 0.05, "{signal} (0.1.0) is audible");
        assert_eq!(
            max_diff(&straight_old, &straight_new),
            0.0,
            "{signal}: the 0.1.0 build plays the 0.2.0 build's samples"
        );

        // Upgraded in place mid-echo.
        let mut r = mono();
        r.load_bytes(&signal, &old).unwrap();
        let mut out = r.render(before);
        let report = r
            .load_bytes(&signal, new)
            .unwrap()
            .expect("the 0.2.0 build loads as the next version");
        assert!(!report.layout.blocks.is_empty(), "{signal} claims state");
        for b in &report.layout.blocks {
            assert!(b.carried, "{signal}: {} carried from 0.1.0 to 0.2.0", b.key);
        }
        out.extend(r.render(after));
        assert!(
            r.take_notices()
                .iter()
                .any(|n| matches!(n, lel_host::Notice::Swapped { .. })),
            "{signal}: the 0.2.0 build swapped in"
        );
        assert_eq!(
            max_diff(&out, &straight_old),
            0.0,
            "{signal}: upgraded to 0.2.0, it goes on exactly as if nothing happened"
        );
    }
}

// ---- every note accessor, in every SDK ---------------------------------------

/// One signal reading every note accessor of the SDKs (controllers, channel
/// pressure, pitch bend, key, gate, velocity, pitch), on four channels, in
/// each language: the same formula, the same order of operations.
const NOTES: [(&str, &str, &str); 4] = [
    (
        "rust",
        "src/lib.rs",
        r#"#![cfg_attr(target_arch = "wasm32", no_std)]
use lel::prelude::*;
lel::signal!(
    (cc(1).gain(0.5) + cc(74).gain(0.25))
        .join(pressure().gain(0.5) + bend().gain(0.25))
        .join(key().gain(0.00390625) + (gate() * velocity()).gain(0.25))
        .join(osc(pitch()).gain(0.5))
);
"#,
    ),
    (
        "c",
        "notes.c",
        r#"#include "lel.h"
static lel_osc o;
int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_notes_init();
  lel_osc_init(&o, LEL_SINE);
  return 4;
}
void lel_frame(const lel_ctx *cx, double *out) {
  (void)cx;
  out[0] = lel_cc(1) * 0.5 + lel_cc(74) * 0.25;
  out[1] = lel_pressure() * 0.5 + lel_bend() * 0.25;
  out[2] = lel_key() * 0.00390625 + (lel_gate() * lel_velocity()) * 0.25;
  out[3] = lel_osc_tick(&o, lel_pitch()) * 0.5;
}
"#,
    ),
    (
        "zig",
        "notes.zig",
        r#"const lel = @import("lel");
var o: lel.Osc = .{};
pub fn setup(s: lel.Setup) lel.Error!u32 {
    _ = s;
    try lel.notes();
    try o.claim(.sine, .{});
    return 4;
}
pub fn frame(cx: *const lel.Ctx, out: []f64) void {
    _ = cx;
    out[0] = lel.cc(1) * 0.5 + lel.cc(74) * 0.25;
    out[1] = lel.pressure() * 0.5 + lel.bend() * 0.25;
    out[2] = lel.key() * 0.00390625 + (lel.gate() * lel.velocity()) * 0.25;
    out[3] = o.tick(lel.pitch()) * 0.5;
}
comptime {
    lel.signal(@This());
}
"#,
    ),
    (
        "assemblyscript",
        "notes.ts",
        r#"import { Ctx, Osc, Setup, bend, cc, gate, key, notes, pitch, pressure, signal, velocity } from "./lel";
export { statePtr, stateLen, eventsPtr, eventsLen, init, process } from "./lel";
const o = new Osc();
function setup(s: Setup): i32 {
  notes();
  o.claim();
  return 4;
}
function frame(cx: Ctx, out: StaticArray<f64>): void {
  out[0] = cc(1) * 0.5 + cc(74) * 0.25;
  out[1] = pressure() * 0.5 + bend() * 0.25;
  out[2] = key() * 0.00390625 + (gate() * velocity()) * 0.25;
  out[3] = o.tick(pitch()) * 0.5;
}
signal(setup, frame);
"#,
    ),
];

/// The score for [`NOTES`]: every kind of event, inside blocks, on several
/// channels (the note state is omni), including a note-off of a key no
/// longer the last (ignored) and a note-on of velocity 0 (a note-off).
fn play_notes(r: &mut Renderer) -> Vec<f32> {
    let s = "notes";
    let mut send = |e: NoteEvent, at: u64| {
        r.send_event(s, e, at)
            .unwrap_or_else(|e| panic!("event at {at}: {e:#}"))
    };
    send(NoteEvent::control_change(0, 1, 0.5), 700);
    send(NoteEvent::note_on(2, 60, 0.75), 1001);
    send(NoteEvent::channel_pressure(2, 0.25), 1500);
    send(NoteEvent::pitch_bend(5, -0.5), 10_222);
    send(NoteEvent::control_change(9, 74, 1.0), 11_000);
    send(NoteEvent::note_on(0, 67, 0.5), 20_097);
    send(NoteEvent::note_off(2, 60, 0.0), 21_000);
    send(NoteEvent::pitch_bend(0, 0.75), 30_001);
    send(NoteEvent::note_on(0, 67, 0.0), 40_003);
    send(NoteEvent::control_change(0, 1, 0.0), 41_000);
    r.render(SR as usize)
}

#[test]
fn every_note_accessor_reads_the_same_in_every_language() {
    let dir = tempdir();
    let mut renders = Vec::new();
    for (lang, source, text) in NOTES {
        let parent = dir.path().join(lang);
        run_ok(
            Command::new(lel_host_bin())
                .args(["new", "notes", "--lang", lang, "--dir"])
                .arg(&parent),
            &format!("lel-host new notes --lang {lang}"),
            "",
        );
        let project = parent.join("notes");
        std::fs::write(project.join(source), text).unwrap();
        run_ok(
            niced(&project.join("build.sh")).env_remove("CARGO_TARGET_DIR"),
            &format!("{lang}: ./build.sh"),
            INSTALL,
        );
        let bytes = std::fs::read(project.join("out/notes.wasm")).unwrap();
        let mut r = Renderer::with_settings(Settings {
            sample_rate: SR,
            channels: 4,
            block: 128,
            runaway: Some(OFFLINE_RUNAWAY),
            ..Settings::default()
        })
        .unwrap();
        r.load_bytes("notes", &bytes)
            .unwrap_or_else(|e| panic!("{lang}: {e:#}"));
        renders.push((lang, play_notes(&mut r)));
    }
    // The reference reads what it was sent, at the frames it was sent.
    let (_, reference) = &renders[0];
    let at = |ch: usize, n: usize| reference[n * 4 + ch] as f64;
    let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(
        near(at(0, 699), 0.0) && near(at(0, 700), 0.25),
        "cc 1 at 700"
    );
    assert!(
        near(at(0, 10_999), 0.25) && near(at(0, 11_000), 0.5),
        "cc 74 (channel 10) at 11,000"
    );
    assert!(near(at(0, 41_000), 0.25), "cc 1 back to 0 at 41,000");
    assert!(
        near(at(1, 1499), 0.0) && near(at(1, 1500), 0.125),
        "pressure at 1500"
    );
    assert!(near(at(1, 10_222), 0.125 - 0.125), "bend -0.5 at 10,222");
    assert!(near(at(1, 30_001), 0.125 + 0.1875), "bend 0.75 at 30,001");
    let key_gate = |key: f64, level: f64| key / 256.0 + level * 0.25;
    assert!(
        near(at(2, 1000), key_gate(69.0, 0.0)),
        "key 69 before any note"
    );
    assert!(near(at(2, 1001), key_gate(60.0, 0.75)), "note 60 at 1001");
    assert!(
        near(at(2, 20_096), key_gate(60.0, 0.75)) && near(at(2, 20_097), key_gate(67.0, 0.5)),
        "note 67 at 20,097"
    );
    assert!(
        near(at(2, 21_000), key_gate(67.0, 0.5)),
        "a note-off of 60 leaves 67 on"
    );
    assert!(
        near(at(2, 40_002), key_gate(67.0, 0.5)) && near(at(2, 40_003), key_gate(67.0, 0.0)),
        "velocity 0 releases 67 at 40,003"
    );
    let tone =
        |from: usize, to: usize| -> Vec<f32> { (from..to).map(|n| reference[n * 4 + 3]).collect() };
    let bent = |key: f64, semitones: f64| 440.0 * 2f64.powf((key + semitones - 69.0) / 12.0);
    for (from, to, want, what) in [
        (1001, 10_222, hz(60), "key 60"),
        (
            10_222,
            20_097,
            bent(60.0, -1.0),
            "key 60 bent down a semitone",
        ),
        (
            20_097,
            30_001,
            bent(67.0, -1.0),
            "key 67 bent down a semitone",
        ),
        (
            30_001,
            40_003,
            bent(67.0, 1.5),
            "key 67 bent up 1.5 semitones",
        ),
    ] {
        let f = dominant_frequency(&tone(from, to), SR);
        assert!((f - want).abs() < 2.0, "{what}: {f} Hz, expected {want:.1}");
    }
    for (lang, out) in &renders[1..] {
        assert_eq!(
            max_diff(out, reference),
            0.0,
            "{lang}: every note accessor gives the Rust SDK's bits"
        );
    }
}

/// The promise live: `lel-host run` on a folder with the poly-synth and
/// `--osc`; a chord and a cutoff move sent over UDP; the module file
/// replaced by a rebuild while the chord rings. The recording holds the
/// chord at the same level before the rebuild and after the new version
/// took over (a version starting without the voices' state would be
/// silent: nothing plays its notes again), and the host still holds the
/// player's cutoff.
#[test]
fn a_live_rebuild_keeps_the_chord_ringing_and_the_knob_where_it_was() {
    use crate::osc::{client, free_port, msg, reply, wait_for_signal};
    use rosc::OscType;
    use std::io::BufRead as _;
    use std::time::{Duration, Instant};
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    let bytes = module("poly-synth", "rust");
    std::fs::write(music.join("poly.wasm"), bytes).unwrap();
    let wav = dir.path().join("live.wav");
    let port = free_port();
    let mut child = Command::new(lel_host_bin())
        .args(["run", "--device", "none", "--no-console", "--seconds", "9"])
        .arg("--osc")
        .arg(port.to_string())
        .arg("--record")
        .arg(&wav)
        .arg(&music)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lel-host");
    // The log, line by line, with the time each line was read.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("poly: new version from") {
                let _ = tx.send(Instant::now());
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    let to: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let c = client();
    wait_for_signal(&c, to, "poly");
    for k in CHORD {
        c.send_to(
            &msg(
                "/lel/poly/note",
                vec![OscType::Int(k as i32), OscType::Int(100)],
            ),
            to,
        )
        .unwrap();
    }
    c.send_to(&msg("/lel/poly/cutoff", vec![OscType::Float(900.0)]), to)
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    // The rebuild: written beside, renamed into place (as an editor's save
    // replaces a file).
    let tmp = dir.path().join("poly.wasm.new");
    std::fs::write(&tmp, another_version(bytes)).unwrap();
    std::fs::rename(&tmp, music.join("poly.wasm")).unwrap();
    let swapped = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the rebuild is loaded within 20 s");
    std::thread::sleep(Duration::from_millis(200));
    c.send_to(&msg("/lel/poly/params", vec![]), to).unwrap();
    let params = reply(&c);
    let cutoff = params
        .iter()
        .find(|m| m.args.first() == Some(&OscType::String("cutoff".into())))
        .unwrap_or_else(|| panic!("cutoff in {params:?}"));
    assert_eq!(
        cutoff.args.get(1),
        Some(&OscType::Float(900.0)),
        "the player's cutoff after the rebuild: {cutoff:?}"
    );
    let status = child.wait().expect("lel-host finishes");
    let ended = Instant::now();
    let log = reader.join().unwrap();
    assert!(status.success(), "{log}");
    assert_eq!(
        log.matches("poly: new version from").count(),
        1,
        "one new version, from the rebuild:\n{log}"
    );
    // The recording ends when the run does: its last second comes after
    // the new version took over when that happened over 1.5 s before the end.
    let margin = ended - swapped;
    assert!(
        margin > Duration::from_millis(1500),
        "the rebuild took over {margin:?} before the end: too late to hear it"
    );

    let (ch, sr, samples) = read_wav(&wav);
    assert_eq!(sr, SR);
    let left = channel(&samples, ch as usize, 0);
    let onset = left
        .iter()
        .position(|&x| x != 0.0)
        .expect("the chord is heard");
    let s = SR as usize;
    // Sustained (attack and decay over) before the rebuild was written (2 s
    // after the notes), and the recording's last second but a little.
    let before = &left[onset + s / 2..onset + 3 * s / 2];
    let after = &left[left.len() - 6 * s / 5..left.len() - s / 5];
    let (a, b) = (rms(before), rms(after));
    assert!(a > 0.02, "the chord sounds: rms {a}");
    assert!(
        (b / a - 1.0).abs() < 0.1,
        "the chord rings on at its level through the rebuild: rms {a} then {b}"
    );
    for (what, x) in [("before", before), ("after", after)] {
        let p = peaks(x, 0.15);
        for k in CHORD {
            assert!(has(&p, hz(k)), "{} Hz {what} the rebuild: {p:?}", hz(k));
        }
    }
}

/// Code that used 256-bit AVX registers and left their upper halves dirty
/// (a native library without `vzeroupper`, on the audio thread before the
/// engine's block) must not slow the guests down. Compiled wasm mixes SSE
/// and AVX encodings, and with the upper halves dirty each of them pays
/// for the register state: without the `vzeroupper` the engine now runs
/// before every guest call, the Rust SDK's chain rendered 34 times slower
/// and this poly-synth 57 times (its optimised build), past its budget:
/// muted as a runaway. Here the registers are dirtied before every block
/// and the chord must play to the end, unmuted.
#[test]
fn a_guest_keeps_its_speed_when_host_code_left_the_vector_registers_dirty() {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            std::arch::is_x86_feature_detected!("avx"),
            "this test dirties the AVX registers: it needs a CPU with AVX (any x86-64 CPU since 2011)"
        );
        const BLOCK: usize = 1024;
        // The budget, a tenth of the 21 ms block (2.1 ms of CPU time):
        // the chord takes a few hundred microseconds a block, and 57 times
        // that is far past it.
        let mut r = Renderer::with_settings(Settings {
            sample_rate: SR,
            channels: 1,
            block: BLOCK as u32,
            call_budget: 0.1,
            threads: 1,
            ..Settings::default()
        })
        .expect("engine");
        let s = "poly-synth-rust";
        r.load_bytes(s, module("poly-synth", "rust"))
            .unwrap_or_else(|e| panic!("load {s}: {e:#}"));
        for k in CHORD {
            note_on(&mut r, s, k, 1.0, 0);
        }
        // Two seconds, the registers dirtied before every block, rendered
        // into one buffer (no allocation between the dirtying and the
        // block: an allocator's `memset` would clean them).
        let mut out = vec![0.0f32; 2 * SR as usize / BLOCK * BLOCK];
        for chunk in out.chunks_mut(BLOCK) {
            // SAFETY: the CPU has AVX (asserted above); the instruction
            // writes only ymm1, declared as clobbered.
            unsafe { std::arch::asm!("vxorps ymm1, ymm1, ymm1", out("ymm1") _) };
            r.render_into(chunk);
        }
        let notices = r.take_notices();
        assert_eq!(
            faults(&notices),
            0,
            "the poly-synth was stopped: {notices:?}"
        );
        // The chord sounds to the end: its four notes in the last half
        // second, at the level it started with.
        let tail = &out[out.len() - SR as usize / 2..];
        let chord = peaks(tail, 0.15);
        for k in CHORD {
            assert!(
                has(&chord, hz(k)),
                "{} Hz in the last half second: {chord:?}",
                hz(k)
            );
        }
        let head = rms(&out[4800..4800 + SR as usize / 2]);
        assert!(
            db(rms(tail) / head).abs() < 3.0,
            "the chord held its level: {:.4} then {:.4}",
            head,
            rms(tail)
        );
    }
}
