//! Every way a module is rejected, with the message the musician sees: it
//! names the file, says what is wrong and what would fix it.

use std::process::Command;

use lel_host::{RenderSettings, Renderer};

use crate::fixtures::{self, module};
use crate::util::*;

/// Load `text` as `name` (a `.wat` or `.wasm` file) and return the error.
fn rejection(name: &str, bytes: &[u8]) -> String {
    let dir = tempdir();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let mut r = Renderer::new(RenderSettings::default()).unwrap();
    let err = r.load(&path).expect_err("the module must be rejected");
    let msg = format!("{err:#}");
    let shown = path.display().to_string();
    assert!(
        msg.starts_with(&format!("{shown}: ")),
        "the message names the file: {msg}"
    );
    msg[shown.len() + 2..].to_string()
}

fn wat(name: &str, text: &str) -> String {
    rejection(name, text.as_bytes())
}

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("fixture parses")
}

#[test]
fn missing_process() {
    let text = r#"(module (memory (export "memory") 1) (func (export "init") (param i32 i32) (result i32) (i32.const 1)))"#;
    assert_eq!(
        wat("m.wat", text),
        "missing export `process`: a signal must export `memory`, `init`, `process`"
    );
}

#[test]
fn process_of_the_wrong_type() {
    let text = module("", "(i32.const 1)", "(i32.const 0)").replace(
        r#"(func (export "process") (param i32 i64) (result i32)"#,
        r#"(func (export "process") (param f32) (result i32)"#,
    );
    assert_eq!(
        wat("m.wat", &text),
        "`process` has type (f32) -> i32, expected (i32, i64) -> i32 (0.1.0), or (i32, i64, i32) -> i32 (0.2.0)"
    );
}

#[test]
fn wrong_contract_version() {
    let text = module(
        r#"(import "lel:signal/host@9.9.9" "claim" (func (param i32 i32 i32 i32) (result i32)))"#,
        "(i32.const 1)",
        "(i32.const 0)",
    );
    assert_eq!(
        wat("m.wat", &text),
        "module targets `lel:signal/host@9.9.9`, this host speaks 0.1.0 and 0.2.0 (rebuild it against lel:signal@0.2.0)"
    );
}

#[test]
fn unknown_import() {
    let text = module(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        "(i32.const 1)",
        "(i32.const 0)",
    );
    assert_eq!(
        wat("m.wat", &text),
        "imports `fd_write` from `wasi_snapshot_preview1`, which lel-host does not provide: a signal may import only `claim`, `log` and `param` from `lel:signal/host@0.2.0` (build without libc/WASI, e.g. `-nostdlib`)"
    );
}

#[test]
fn an_export_in_lel_hosts_own_namespace() {
    // lel-host exports a module's mutable globals to itself under
    // `lel-host:global:N` (see the README, "Stop checks instead of epoch
    // checks"): a module may not use such names.
    let text = module(
        r#"(global (export "lel-host:global:1") (mut i32) (i32.const 0))"#,
        "(i32.const 1)",
        "(i32.const 0)",
    );
    let msg = wat("m.wat", &text);
    assert!(
        msg.contains(
            "it exports `lel-host:global:1`: names starting with `lel-host:` are lel-host's own; rename it"
        ),
        "{msg}"
    );
}

#[test]
fn import_of_the_wrong_type() {
    let text = module(
        r#"(import "lel:signal/host@0.1.0" "claim" (func (param i32) (result i32)))"#,
        "(i32.const 1)",
        "(i32.const 0)",
    );
    assert_eq!(
        wat("m.wat", &text),
        "import `claim` has type (i32) -> i32, expected (i32, i32, i32, i32) -> i32"
    );
}

#[test]
fn init_returns_an_error_code() {
    assert_eq!(
        wat("m.wat", &module("", "(i32.const -40)", "(i32.const 0)")),
        "`init` returned -40: the module rejected this version (see its log for why)"
    );
}

#[test]
fn init_returns_no_channels() {
    assert_eq!(
        wat("m.wat", &module("", "(i32.const 0)", "(i32.const 0)")),
        "`init` returned 0 channels; a signal has 1 to 64"
    );
}

#[test]
fn init_traps() {
    assert_eq!(
        wat(
            "m.wat",
            &module(
                "",
                "(i32.div_s (i32.const 1) (i32.const 0))",
                "(i32.const 0)"
            )
        ),
        "`init` trapped: integer divide by zero"
    );
}

#[test]
fn state_claim_too_big_for_the_region() {
    let text = fixtures::counter(&[("big", 4096)], "big", 1024);
    assert_eq!(
        wat("m.wat", &text),
        "state region of 1024 bytes cannot hold claim \"big\" of 4096 bytes (enlarge the module's state region)"
    );
}

#[test]
fn malformed_claims() {
    let claim = r#"(import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (func (export "state-ptr") (result i32) (i32.const 1024))
  (func (export "state-len") (result i32) (i32.const 1024))
  (data (i32.const 16) "\ff\fe")
  (data (i32.const 32) "k")"#;
    let init = |args: &str| format!("(drop (call $claim {args})) (i32.const 1)");
    let k = "(i32.const 32) (i32.const 1) (i32.const 4) (i32.const 4)";
    assert_eq!(
        wat(
            "m.wat",
            &module(
                claim,
                &init("(i32.const 16) (i32.const 2) (i32.const 4) (i32.const 4)"),
                "(i32.const 0)"
            )
        ),
        "claim key \"\u{fffd}\u{fffd}\" is not valid UTF-8"
    );
    assert_eq!(
        wat(
            "m.wat",
            &module(
                claim,
                &init("(i32.const 32) (i32.const 1) (i32.const 4) (i32.const 3)"),
                "(i32.const 0)"
            )
        ),
        "claim \"k\" asks for alignment 3; it must be a power of two up to 16"
    );
    assert_eq!(
        wat(
            "m.wat",
            &module(
                claim,
                &format!("(drop (call $claim {k})) {}", init(k)),
                "(i32.const 0)"
            )
        ),
        "claim \"k\" is made twice in one init (give each helper its own key)"
    );
    assert_eq!(
        wat(
            "m.wat",
            &module(
                claim,
                &init("(i32.const 65530) (i32.const 100) (i32.const 4) (i32.const 4)"),
                "(i32.const 0)"
            )
        ),
        "claim key at 0xfffa+100 lies outside the module's memory"
    );
}

#[test]
fn half_a_state_region() {
    let text = module(
        r#"(func (export "state-ptr") (result i32) (i32.const 1024))"#,
        "(i32.const 1)",
        "(i32.const 0)",
    );
    assert_eq!(
        wat("m.wat", &text),
        "exports `state-ptr` but not `state-len`: the state region needs both (or neither, for a module that claims nothing)"
    );
}

#[test]
fn misaligned_or_outside_state_region() {
    let region = |ptr: u32, len: u32| {
        format!(
            r#"(func (export "state-ptr") (result i32) (i32.const {ptr})) (func (export "state-len") (result i32) (i32.const {len}))"#
        )
    };
    assert_eq!(
        wat(
            "m.wat",
            &module(&region(1028, 64), "(i32.const 1)", "(i32.const 0)")
        ),
        "`state-ptr` returned 0x404, which is not 16-byte aligned (align the state buffer to 16)"
    );
    assert_eq!(
        wat(
            "m.wat",
            &module(&region(65536 - 16, 64), "(i32.const 1)", "(i32.const 0)")
        ),
        "the state region 0xfff0..0x10030 lies outside the module's 65536-byte memory"
    );
}

#[test]
fn not_a_module_truncated_and_text_in_a_wasm_file() {
    assert_eq!(
        rejection("m.wasm", b"hello, world"),
        "not a WebAssembly module (it does not start with the `\\0asm` magic bytes)"
    );
    assert_eq!(
        rejection("m.wasm", b""),
        "not a WebAssembly module (it does not start with the `\\0asm` magic bytes); the file is empty (was it still being written?)"
    );
    assert_eq!(
        rejection("m.wasm", fixtures::silent().as_bytes()),
        "not a WebAssembly module (it does not start with the `\\0asm` magic bytes); it looks like WAT text: give it the `.wat` extension"
    );
    let full = wasm(&fixtures::silent());
    for cut in [6, 9, full.len() / 2, full.len() - 1] {
        assert_eq!(
            rejection("m.wasm", &full[..cut]),
            "truncated file: the module ends in the middle of a section (was it still being written?)",
            "cut at {cut} of {}",
            full.len()
        );
    }
    assert!(
        wat("m.wat", "(module (func").starts_with("invalid WebAssembly: WAT text does not parse: ")
    );
}

#[test]
fn components_are_refused() {
    let component = wat::parse_str("(component)").unwrap();
    assert_eq!(
        rejection("m.wasm", &component),
        "this is a WebAssembly component; lel-host plays core modules (build for `wasm32-unknown-unknown`, not a component target)"
    );
}

#[test]
fn a_shared_memory_is_refused() {
    let text = r#"(module
      (memory (export "memory") 1 1 shared)
      (func (export "init") (param i32 i32) (result i32) (i32.const 1))
      (func (export "process") (param i32 i64) (result i32) (i32.const 1024)))"#;
    assert_eq!(
        wat("m.wat", text),
        "its memory is shared (the WebAssembly threads proposal); a signal's memory may not be (build without threads: no `-pthread`, no `+atomics`/`+shared-memory`)"
    );
}

#[test]
fn check_names_the_file_and_the_cause_and_exits_1() {
    let dir = tempdir();
    let path = write(
        dir.path(),
        "lead.wat",
        &module("", "(i32.const -40)", "(i32.const 0)"),
    );
    let out = Command::new(lel_host_bin())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!(
            "error lead: {}: `init` returned -40: the module rejected this version (see its log for why)",
            path.display()
        )
    );
    let missing = Command::new(lel_host_bin())
        .arg("check")
        .arg(dir.path().join("nope.wasm"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("nope.wasm: no such file or folder"),
        "{stderr}"
    );
}

#[test]
fn a_trap_or_a_loop_during_the_load_names_the_export_it_happened_in() {
    let region = |ptr: &str, len: &str| {
        format!(
            r#"(func (export "state-ptr") (result i32) {ptr}) (func (export "state-len") (result i32) {len})"#
        )
    };
    let cases = [
        (
            module(
                &region("(unreachable)", "(i32.const 64)"),
                "(i32.const 1)",
                "(i32.const 0)",
            ),
            "`state-ptr` trapped: wasm `unreachable` instruction executed",
        ),
        (
            module(
                &region("(i32.const 1024)", "(loop $l (br $l)) (i32.const 0)"),
                "(i32.const 1)",
                "(i32.const 0)",
            ),
            "`state-len` used 1s of CPU time without returning (runaway loop?)",
        ),
        (
            module(
                "(func $boom (drop (i32.div_s (i32.const 1) (i32.const 0)))) (start $boom)",
                "(i32.const 1)",
                "(i32.const 0)",
            ),
            "the start function trapped: integer divide by zero",
        ),
        (
            module("", "(unreachable)", "(i32.const 0)"),
            "`init` trapped: wasm `unreachable` instruction executed",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(wat("m.wat", &text), want);
    }
}
