//! One source for the contract's constants (`wit/constants.txt` with
//! `wit/lel.wit`): the SDKs' constant files are exactly what the build
//! generates from it, and every SDK, compiled by its own toolchain (C, Zig,
//! AssemblyScript; Rust natively), sees the host's numbers and imports from
//! the host's module. A missing toolchain fails the test, naming the
//! install command.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use lel_host::contract::{self, CONSTANTS};

use crate::util::*;

/// The generated files (in the build's `$OUT_DIR/sdk/`) and where each SDK
/// keeps its checked-in copy.
const GENERATED: [(&str, &str); 4] = [
    ("contract.rs", "guest-sdk/src/contract.rs"),
    ("lel_constants.h", "guest-sdk/c/lel_constants.h"),
    ("lel_constants.zig", "guest-sdk/zig/lel_constants.zig"),
    (
        "lel_constants.ts",
        "guest-sdk/assemblyscript/lel_constants.ts",
    ),
];

const INSTALL: &str = "Install the toolchains with scripts/setup-languages \
     (apt-get install clang lld; pip install --target target/tools/ziglang ziglang; \
     npm ci in examples/assemblyscript).";

/// The contract version the SDKs' generated files declare.
fn sdk_spec() -> &'static contract::VersionSpec {
    contract::spec(contract::SDK_VERSION).expect("SDK_VERSION is a version of wit/lel.wit")
}

/// The host's value of the constant `name`.
fn host(name: &str) -> i64 {
    CONSTANTS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not in wit/constants.txt"))
        .value
}

#[test]
fn the_sdks_constant_files_are_the_ones_generated_from_the_contract() {
    let generated = Path::new(env!("OUT_DIR")).join("sdk");
    let update = std::env::var_os("LEL_UPDATE_CONSTANTS").is_some();
    let mut stale = Vec::new();
    for (name, path) in GENERATED {
        let want = std::fs::read_to_string(generated.join(name)).unwrap();
        let file = repo_root().join(path);
        let have = std::fs::read_to_string(&file).unwrap_or_default();
        if have == want {
            continue;
        }
        if update {
            std::fs::write(&file, &want).unwrap();
            eprintln!("wrote {path}");
            continue;
        }
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        stale.push(format!(
            "{path} (line {}: has {:?}, the contract gives {:?})",
            line + 1,
            have.lines().nth(line).unwrap_or("<end>"),
            want.lines().nth(line).unwrap_or("<end>")
        ));
    }
    assert!(
        stale.is_empty(),
        "SDK constant files differ from what wit/constants.txt and wit/lel.wit generate:\n  {}\n\
         Run scripts/gen-constants to rewrite them (never edit them by hand).",
        stale.join("\n  ")
    );
}

#[test]
fn the_constant_table_is_the_documented_one() {
    // Spot checks against the contract's prose (the build checks the rest of
    // lel.wit's numbers against the table), and the code ranges.
    assert_eq!(host("max-key-len"), 256);
    assert_eq!(host("max-align"), 16);
    assert_eq!(host("max-channels"), 64);
    assert_eq!(host("region-full"), -1);
    assert_eq!(host("no-state-region"), -6);
    assert_eq!(host("log-error"), 0);
    assert_eq!(host("log-trace"), 4);
    for c in CONSTANTS {
        match c.group {
            "claim-code" => assert!((-15..=-1).contains(&c.value), "{c:?}"),
            "sdk-code" => assert!((-31..=-16).contains(&c.value), "{c:?}"),
            _ => assert!(c.value >= 0, "{c:?}"),
        }
    }
    let names: BTreeSet<_> = CONSTANTS.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), CONSTANTS.len(), "names are unique");
}

/// The Rust SDK's constants and the parts of its API built on them.
#[test]
fn the_rust_sdk_agrees_with_the_host() {
    use lel::contract as k;
    use lel::log::Level;
    assert_eq!(
        k::PACKAGE,
        format!("{}@{}", contract::PACKAGE, contract::SDK_VERSION)
    );
    assert_eq!(k::HOST_MODULE, sdk_spec().host_module);
    let sdk: Vec<(&str, i64)> = vec![
        ("max-key-len", k::MAX_KEY_LEN as i64),
        ("max-align", k::MAX_ALIGN as i64),
        ("max-channels", k::MAX_CHANNELS as i64),
        ("max-module-bytes", k::MAX_MODULE_BYTES as i64),
        ("region-full", lel::Error::REGION_FULL.0 as i64),
        ("bad-key", lel::Error::BAD_KEY.0 as i64),
        ("bad-align", lel::Error::BAD_ALIGN.0 as i64),
        ("duplicate-key", lel::Error::DUPLICATE_KEY.0 as i64),
        ("not-in-init", lel::Error::NOT_IN_INIT.0 as i64),
        ("no-state-region", lel::Error::NO_STATE_REGION.0 as i64),
        ("bad-args", lel::Error::BAD_ARGS.0 as i64),
        ("output-too-small", lel::Error::OUTPUT_TOO_SMALL.0 as i64),
        ("bad-address", lel::Error::BAD_ADDRESS.0 as i64),
        ("busy", lel::Error::BUSY.0 as i64),
        ("bad-channels", lel::Error::BAD_CHANNELS.0 as i64),
        ("log-error", Level::Error as i64),
        ("log-warn", Level::Warn as i64),
        ("log-info", Level::Info as i64),
        ("log-debug", Level::Debug as i64),
        ("log-trace", Level::Trace as i64),
        ("default-state-bytes", lel::DEFAULT_STATE_BYTES as i64),
        ("default-output-samples", lel::DEFAULT_OUTPUT_SAMPLES as i64),
        ("claim-align", lel::CLAIM_ALIGN as i64),
        ("max-params", k::MAX_PARAMS as i64),
        ("max-param-key-len", k::MAX_PARAM_KEY_LEN as i64),
        ("max-unit-len", k::MAX_UNIT_LEN as i64),
        ("event-bytes", k::EVENT_BYTES as i64),
        ("bad-range", k::BAD_RANGE as i64),
        ("too-many-params", k::TOO_MANY_PARAMS as i64),
        ("bad-unit", k::BAD_UNIT as i64),
        ("note-on", k::NOTE_ON as i64),
        ("note-off", k::NOTE_OFF as i64),
        ("control-change", k::CONTROL_CHANGE as i64),
        ("pitch-bend", k::PITCH_BEND as i64),
        ("channel-pressure", k::CHANNEL_PRESSURE as i64),
        ("param", k::PARAM as i64),
        ("default-event-capacity", k::DEFAULT_EVENT_CAPACITY as i64),
        // The SDK's API built on them.
        ("event-bytes", size_of::<lel::Event>() as i64),
        ("bad-range", lel::Error::BAD_RANGE.0 as i64),
        ("too-many-params", lel::Error::TOO_MANY_PARAMS.0 as i64),
        ("bad-unit", lel::Error::BAD_UNIT.0 as i64),
        ("note-on", lel::events::kind::NOTE_ON as i64),
        ("param", lel::events::kind::PARAM as i64),
        ("default-event-capacity", lel::events::EVENT_CAPACITY as i64),
    ];
    check_all("Rust", &sdk);
}

/// Every constant of the host's table is among `sdk` (pairs of a constant's
/// name and the SDK's value), and every value is the host's.
fn check_all(lang: &str, sdk: &[(&str, i64)]) {
    let mut wrong = Vec::new();
    for (name, value) in sdk {
        if *value != host(name) {
            wrong.push(format!("{name}: {value}, the host's is {}", host(name)));
        }
    }
    for c in CONSTANTS {
        if !sdk.iter().any(|(n, _)| *n == c.name) {
            wrong.push(format!("{}: not checked (add it to this test)", c.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "the {lang} SDK disagrees with the host:\n  {}",
        wrong.join("\n  ")
    );
}

fn snake(name: &str) -> String {
    name.replace('-', "_")
}

fn upper(name: &str) -> String {
    snake(name).to_ascii_uppercase()
}

/// `(constant, expression)` for every constant under the generated file's
/// name, then `extra` (the SDK's own API built on them).
fn probes(spell: impl Fn(&str) -> String, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    CONSTANTS
        .iter()
        .map(|c| (c.name.to_string(), spell(c.name)))
        .chain(extra.iter().map(|(n, e)| (n.to_string(), e.to_string())))
        .collect()
}

/// Instantiates `wasm` (its imports must all be the host's, from the
/// host's module, and include both of them), calls the export `k{i}` of
/// every probe and checks the values against the host's.
fn check_module(lang: &str, wasm: &[u8], probes: &[(String, String)]) {
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, wasm).unwrap();
    let imports: BTreeSet<(String, String)> = module
        .imports()
        .map(|i| (i.module().to_string(), i.name().to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = sdk_spec()
        .imports
        .iter()
        .map(|f| (f.module.to_string(), f.name.to_string()))
        .collect();
    assert_eq!(
        imports,
        want,
        "{lang}: the SDK imports the host's functions from {}",
        sdk_spec().host_module
    );
    let mut store = wasmtime::Store::new(&engine, ());
    let mut linker = wasmtime::Linker::new(&engine);
    linker.define_unknown_imports_as_traps(&module).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let mut values = Vec::new();
    for (i, (name, _)) in probes.iter().enumerate() {
        let f = instance
            .get_typed_func::<(), i32>(&mut store, &format!("k{i}"))
            .unwrap_or_else(|e| panic!("{lang}: export k{i} ({name}): {e}"));
        values.push((name.as_str(), f.call(&mut store, ()).unwrap() as i64));
    }
    check_all(lang, &values);
}

fn zig() -> Command {
    let mut c = Command::new("python3");
    c.env("PYTHONPATH", repo_root().join("target/tools/ziglang"))
        .args(["-m", "ziglang"]);
    c
}

#[test]
fn the_c_sdk_agrees_with_the_host() {
    let probes = probes(
        |n| format!("LEL_{}", upper(n)),
        &[
            ("log-error", "LEL_ERROR"),
            ("log-warn", "LEL_WARN"),
            ("log-info", "LEL_INFO"),
            ("log-debug", "LEL_DEBUG"),
            ("log-trace", "LEL_TRACE"),
            ("default-state-bytes", "LEL_STATE_BYTES"),
            ("default-output-samples", "LEL_OUTPUT_SAMPLES"),
            ("event-bytes", "sizeof(lel_event)"),
            (
                "default-event-capacity",
                "sizeof lel__events / sizeof(lel_event)",
            ),
        ],
    );
    let mut src = String::from("#define LEL_NO_EXPORTS\n#include \"lel.h\"\n");
    for (i, (_, e)) in probes.iter().enumerate() {
        src += &format!("LEL_EXPORT(\"k{i}\") int32_t k{i}(void) {{ return (int32_t)({e}); }}\n");
    }
    src += "LEL_EXPORT(\"imports\") int32_t imports(void) {\n  lel_log(LEL_INFO, \"x\");\n  static lel_param p;\n  lel_param_init(&p, \"k\", 0.5, 0.0, 1.0, \"\", 0);\n  return lel_host_claim(\"k\", 1, 8, LEL_CLAIM_ALIGN);\n}\n";
    check_module("C", &clang(&src), &probes);
}

/// `src` built with lel.h for wasm32 by clang.
fn clang(src: &str) -> Vec<u8> {
    let dir = tempdir();
    let c = write(dir.path(), "probe.c", src);
    let wasm = dir.path().join("probe.wasm");
    run_ok(
        Command::new("clang")
            .args([
                "--target=wasm32",
                "-O1",
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-ffreestanding",
                "-nostdlib",
                "-Wl,--no-entry",
            ])
            .arg("-I")
            .arg(repo_root().join("guest-sdk/c"))
            .arg("-o")
            .arg(&wasm)
            .arg(&c),
        "clang (the C SDK's probe)",
        INSTALL,
    );
    std::fs::read(&wasm).unwrap()
}

#[test]
fn the_host_names_an_sdk_code_that_init_returns() {
    // A C signal asking for one channel too many: lel.h's `init` refuses
    // with the SDKs' `bad-channels`, and the host's message names it.
    let src = format!(
        "#include \"lel.h\"\n\
         int lel_setup(const lel_setup_ctx *s) {{ (void)s; return {}; }}\n\
         void lel_frame(const lel_ctx *cx, double *out) {{ (void)cx; out[0] = 0.0; }}\n",
        host("max-channels") + 1
    );
    let wasm = clang(&src);
    let mut r = lel_host::Renderer::new(Default::default()).unwrap();
    let err = r
        .load_bytes("wide", &wasm)
        .expect_err("65 channels are refused");
    assert_eq!(
        format!("{err:#}"),
        format!(
            "wide: `init` returned {} (`bad-channels`, a lel SDK's code): the module rejected this version (see its log for why)",
            host("bad-channels")
        )
    );
}

#[test]
fn the_zig_sdk_agrees_with_the_host() {
    let codes = [
        ("region-full", "RegionFull"),
        ("bad-key", "BadKey"),
        ("bad-align", "BadAlign"),
        ("duplicate-key", "DuplicateKey"),
        ("not-in-init", "NotInInit"),
        ("no-state-region", "NoStateRegion"),
        ("bad-args", "BadArgs"),
        ("output-too-small", "OutputTooSmall"),
        ("bad-channels", "BadChannels"),
        ("bad-range", "BadRange"),
        ("too-many-params", "TooManyParams"),
        ("bad-unit", "BadUnit"),
    ];
    let levels = [
        ("log-error", "err"),
        ("log-warn", "warn"),
        ("log-info", "info"),
        ("log-debug", "debug"),
        ("log-trace", "trace"),
    ];
    let mut extra: Vec<(String, String)> = codes
        .iter()
        .map(|(n, e)| (n.to_string(), format!("lel.code(error.{e})")))
        .chain(
            levels
                .iter()
                .map(|(n, l)| (n.to_string(), format!("@intFromEnum(lel.Level.{l})"))),
        )
        .collect();
    extra.push(("max-channels".into(), "lel.max_channels".into()));
    extra.push(("event-bytes".into(), "@sizeOf(lel.Event)".into()));
    extra.push(("note-on".into(), "lel.event_kind.note_on".into()));
    extra.push(("param".into(), "lel.event_kind.param".into()));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let probes = probes(|n| format!("lel.constants.{}", snake(n)), &extra);
    let mut src = String::from("const lel = @import(\"lel\");\n");
    for (i, (_, e)) in probes.iter().enumerate() {
        src += &format!("export fn k{i}() i32 {{ return {e}; }}\n");
    }
    src += "export fn imports() i32 {\n    lel.log(.info, \"x\");\n    _ = lel.claimBytes(\"k\", 8, lel.constants.claim_align) catch |e| return lel.code(e);\n    var p: lel.Param = .{};\n    p.claim(\"k\", 0.5, 0.0, 1.0, \"\", 0) catch |e| return lel.code(e);\n    return 0;\n}\n";
    let dir = tempdir();
    let root = write(dir.path(), "probe.zig", &src);
    let wasm = dir.path().join("probe.wasm");
    let cache = repo_root().join("target/tools");
    run_ok(
        zig()
            .args([
                "build-exe",
                "-target",
                "wasm32-freestanding",
                "-O",
                "ReleaseSmall",
                "-fno-entry",
                "-rdynamic",
                "--cache-dir",
            ])
            .arg(cache.join("zig-cache"))
            .arg("--global-cache-dir")
            .arg(cache.join("zig-global-cache"))
            .args(["--dep", "lel"])
            .arg(format!("-Mroot={}", root.display()))
            .arg(format!(
                "-Mlel={}",
                repo_root().join("guest-sdk/zig/lel.zig").display()
            ))
            .arg(format!("-femit-bin={}", wasm.display())),
        "zig (the Zig SDK's probe)",
        INSTALL,
    );
    check_module("Zig", &std::fs::read(&wasm).unwrap(), &probes);
}

#[test]
fn the_assemblyscript_sdk_agrees_with_the_host() {
    let probes = probes(
        upper,
        &[
            ("log-error", "Level.Error"),
            ("log-warn", "Level.Warn"),
            ("log-info", "Level.Info"),
            ("log-debug", "Level.Debug"),
            ("log-trace", "Level.Trace"),
        ],
    );
    let names: BTreeSet<String> = CONSTANTS.iter().map(|c| upper(c.name)).collect();
    let mut src = format!(
        "import {{ {}, Level, Param, claim, log }} from \"./lel\";\n",
        names.into_iter().collect::<Vec<_>>().join(", ")
    );
    for (i, (_, e)) in probes.iter().enumerate() {
        src += &format!("export function k{i}(): i32 {{ return <i32>{e}; }}\n");
    }
    src += "export function imports(): i32 {\n  log(Level.Info, \"x\");\n  new Param().claim(\"k\", 0.5, 0.0, 1.0);\n  return <i32>claim(\"k\", 8, CLAIM_ALIGN);\n}\n";
    let dir = tempdir();
    for f in ["lel.ts", "lel_constants.ts"] {
        std::fs::copy(
            repo_root().join("guest-sdk/assemblyscript").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    write(dir.path(), "probe.ts", &src);
    let asc = repo_root().join("examples/assemblyscript/node_modules/.bin/asc");
    run_ok(
        Command::new(&asc).current_dir(dir.path()).args([
            "probe.ts",
            "--runtime",
            "stub",
            "-O1",
            "--use",
            "abort=",
            "-o",
            "probe.wasm",
        ]),
        "asc (the AssemblyScript SDK's probe)",
        INSTALL,
    );
    check_module(
        "AssemblyScript",
        &std::fs::read(dir.path().join("probe.wasm")).unwrap(),
        &probes,
    );
}
