//! The speed benchmark (issue 14), reported as ratios measured in one run:
//! this machine is shared and noisy, so each comparison alternates its two
//! sides several times and prints the median ratio and its spread.
//!
//! 1. The workload (`tests/guests/bench-voices`: N voices of table sine,
//!    one-pole lowpass and gain summed to stereo, on the raw contract):
//!    wasm through the whole engine vs the same Rust code compiled natively,
//!    for 1, 100 and 1,000 voices.
//! 2. The same workload, 100 voices for 60 s: `lel-host render` vs
//!    SuperCollider's `scsynth` in NRT mode (SynthDef and score written here).
//! 3. The SDK's `filtered-delayed-sine` chain vs the same chain native; the
//!    C, Zig and AssemblyScript SDKs' chains vs the native Rust chain, and
//!    the C and Zig ones also vs the same source compiled natively by the
//!    same compiler (`engine/native.rs`).
//! 4. Per-signal overhead: a signal that does nothing, 1,000 of them.
//! 5. Save-to-sound latency: `lel-host run` as a child, a small module saved
//!    again and again (new code: compiled; code seen before: cached).
//! 6. Where the time goes: the workload native, as wasm straight through
//!    wasmtime with no checks, with wasmtime's epoch checks and with
//!    lel-host's stop checks, through the engine, and as the fast build
//!    (Winch; and Cranelift unoptimised, the fast build without Winch); the
//!    same for every SDK's chain.
//!
//! 7. The pool and the claims (`engine/pool.rs`): `--threads 2` vs 1 on
//!    heavy signals, and claim placement's growth.
//!
//! Run with `scripts/bench` (installs `supercollider-server`) or
//! `cargo bench -p lel-host`; `-- pool` or `-- claims` runs part 7 alone.
//! `LEL_BENCH_REPS` sets the repetitions (5); `LEL_BENCH_PARTS=4,5` runs
//! only those parts; `LEL_BENCH_PERFMAP=1` names part 6's compiled wasm
//! functions for `perf report` (`/tmp/perf-PID.map`).
//! Runs on the main thread (the children are lel-host and scsynth).

#[path = "engine/native.rs"]
mod native;
#[path = "engine/pool.rs"]
mod pool;
#[path = "engine/sc.rs"]
mod sc;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lel::prelude::*;
use lel_host::Renderer;
use lel_host::Settings;

const SR: u32 = 48_000;
const BLOCK: usize = 128;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn out_dir() -> PathBuf {
    let d = repo().join("target/bench");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn reps() -> usize {
    std::env::var("LEL_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1)
}

/// Build a guest package for wasm32 (release) and return its module,
/// copied to `target/bench/<name>.wasm`.
fn build_wasm(package: &str, env: &[(&str, &str)], name: &str) -> PathBuf {
    let target = repo().join("target/guests");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            package,
        ])
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", &target)
        .envs(env.iter().copied())
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building {package} for wasm32 failed (rustup target add wasm32-unknown-unknown?)"
    );
    let built = target.join(format!(
        "wasm32-unknown-unknown/release/{}.wasm",
        package.replace('-', "_")
    ));
    let dest = out_dir().join(format!("{name}.wasm"));
    std::fs::copy(&built, &dest).unwrap();
    dest
}

fn engine(channels: usize) -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels,
        block: BLOCK as u32,
        // Time is measured here, not judged: a loaded machine must not get
        // 1,000 voices muted as a runaway.
        call_budget: 100.0,
        slots: 1100,
        // One rendering thread: the native side and scsynth use one core.
        threads: 1,
        ..Settings::default()
    })
    .unwrap()
}

/// The time `f` takes, started with the vector registers' upper halves
/// clean (see `Direct::render`): whatever ran before (a native library of
/// part 3) must not slow the SSE code of the side measured next.
fn time(f: impl FnOnce()) -> f64 {
    lel_host::testing::clean_vector_state();
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// Median, min and max.
fn spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn show((med, lo, hi): (f64, f64, f64)) -> String {
    format!("{med:.2}x (spread {lo:.2} to {hi:.2})")
}

/// Alternate `a` and `b` `reps` times; the per-round time ratios a / b and
/// the best times of each side.
fn compare(reps: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Vec<f64>, f64, f64) {
    let (mut ratios, mut best_a, mut best_b) = (Vec::new(), f64::MAX, f64::MAX);
    for _ in 0..reps {
        let ta = time(&mut a);
        let tb = time(&mut b);
        ratios.push(ta / tb);
        best_a = best_a.min(ta);
        best_b = best_b.min(tb);
    }
    (ratios, best_a, best_b)
}

/// `  {label} = median ratio (spread); best A ms vs B ms` of [`compare`]'s
/// rounds.
fn ratio_line(label: &str, (ratios, ta, tb): (Vec<f64>, f64, f64)) -> String {
    format!(
        "  {label} = {}; best {:.1} ms vs {:.1} ms",
        show(spread(ratios)),
        ta * 1e3,
        tb * 1e3
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, load average {}", load())
}

/// Start the engine's watchdog and give it the time to calibrate the
/// time-stamp counter (README, "A cheaper clock"), so that every part
/// measures the clock the engine plays with. Names that clock.
fn settle_clock() -> &'static str {
    let _runtime = lel_host::testing::Runtime::new().unwrap();
    let t = Instant::now();
    while !lel_host::testing::counter_in_use() && t.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if lel_host::testing::counter_in_use() {
        "the time-stamp counter, calibrated against CLOCK_MONOTONIC_RAW"
    } else {
        "CLOCK_MONOTONIC_RAW (the time-stamp counter is not usable here, or LEL_SYSTEM_CLOCK is set)"
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    // `-- pool` runs only the pool's part, `-- claims` only the claims'.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "claims") {
        pool::claims();
        return;
    }
    if args.iter().any(|a| a == "pool") {
        pool::pool();
        return;
    }
    // `-- dump MODULE OUT`: the machine code lel-host's own engine makes of
    // MODULE, as an ELF file (`objdump -d OUT`), to see the checks it emits.
    if let Some(at) = args.iter().position(|a| a == "dump") {
        let runtime = lel_host::testing::Runtime::new().unwrap();
        let module = wasmtime::Module::from_file(&runtime.engine, &args[at + 1]).unwrap();
        std::fs::write(&args[at + 2], module.serialize().unwrap()).unwrap();
        return;
    }
    println!("machine: {}", machine());
    println!("engine clock: {}", settle_clock());
    let reps = reps();
    // LEL_BENCH_PARTS=4,5 runs only those parts (all by default).
    let parts = std::env::var("LEL_BENCH_PARTS").unwrap_or_else(|_| "1,2,3,4,5,6,7".into());
    let part = |n: &str| parts.split(',').any(|p| p.trim() == n);
    if part("1") {
        voices_vs_native(reps);
    }
    if part("2") {
        versus_scsynth(reps.min(3));
    }
    if part("3") {
        sdk_chain_vs_native(reps);
    }
    if part("4") {
        per_signal_overhead(reps.min(3));
    }
    if part("5") {
        save_to_sound();
    }
    if part("6") {
        where_the_time_goes(reps);
    }
    println!("load average at the end: {}", load());
    if part("7") {
        pool::pool();
        pool::claims();
    }
}

/// Section 1: the raw workload, wasm through the engine vs native, one
/// sample per loop iteration and eight (the same code, unrolled, on both
/// sides).
fn voices_vs_native(reps: usize) {
    println!(
        "\n1. workload (table sine, one-pole lowpass, gain, summed to stereo; raw contract, no SDK), \
         48 kHz in {BLOCK}-frame blocks, wasm through lel-host vs the same Rust code native, {reps} rounds:"
    );
    for (n, seconds) in [(1usize, 60usize), (100, 10), (1000, 1)] {
        for unroll in [1usize, 8] {
            let wasm_path = voices_wasm(n, unroll);
            let frames = SR as usize * seconds;
            let mut wasm = engine(2);
            wasm.load(&wasm_path).unwrap();
            let mut native = Box::new(bench_voices::Bank::new());
            native.init(SR, n);
            let mut w_out = vec![0.0f32; frames * 2];
            let mut n_out = vec![0.0f32; frames * 2];
            let (ratios, tw, tn) = compare(
                reps,
                || wasm.render_into(&mut w_out),
                || native_voices(&mut native, unroll, &mut n_out),
            );
            // Both sides rendered the same rounds: the last ones must match.
            let same = w_out == n_out;
            println!(
                "  {n:4} voices, {seconds:2} s, {unroll} frame(s) per iteration: lel-host / native = {}; \
                 best {:.1} ms vs {:.1} ms ({:.2} vs {:.2} ns per voice-sample); identical output: {}",
                show(spread(ratios)),
                tw * 1e3,
                tn * 1e3,
                tw * 1e9 / (frames * n) as f64,
                tn * 1e9 / (frames * n) as f64,
                if same { "yes" } else { "NO" }
            );
        }
    }
}

fn voices_wasm(n: usize, unroll: usize) -> PathBuf {
    build_wasm(
        "bench-voices",
        &[
            ("LEL_BENCH_VOICES", &n.to_string()),
            ("LEL_BENCH_UNROLL", &unroll.to_string()),
        ],
        &format!("voices-{n}-x{unroll}"),
    )
}

/// The native side: the same blocks, copied out as a host would.
fn native_voices(bank: &mut bench_voices::Bank, unroll: usize, out: &mut [f32]) {
    for chunk in out.chunks_mut(BLOCK * 2) {
        let frames = chunk.len() / 2;
        let s = match unroll {
            4 => bank.process_unrolled::<4>(frames),
            8 => bank.process_unrolled::<8>(frames),
            16 => bank.process_unrolled::<16>(frames),
            _ => bank.process(frames),
        };
        chunk.copy_from_slice(s);
    }
    std::hint::black_box(out);
}

/// A module called straight through wasmtime (no lel-host), block by block,
/// its output copied out. `claim` is a bump allocator over the state region.
/// 0.1.0 modules (`bench-voices`) and 0.2.0 ones (the SDK's chain, called
/// with no events) both work.
struct Direct {
    store: wasmtime::Store<u32>,
    process: Process,
    memory: wasmtime::Memory,
    channels: usize,
    clock: u64,
    epochs: bool,
}

/// How a module is kept from running away, for part 6's comparison.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Checks {
    /// Not at all.
    None,
    /// wasmtime's epoch interruption (what lel-host used before its own
    /// stop checks): a check at every function entry and loop header whose
    /// slow path calls into wasmtime.
    Epochs,
    /// lel-host's stop checks, written into the module at load
    /// (`loader/instrument.rs`).
    Stop,
}

/// Which of lel-host's compilers (`loader/runtime.rs`).
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// The optimised build: Cranelift, `speed`.
    Optimised,
    /// The fast build: Winch, wasmtime's baseline compiler (its
    /// trampolines from Cranelift unoptimised).
    Winch,
    /// The fast build where Winch cannot run: Cranelift with no
    /// optimisation and single-pass register allocation.
    CraneliftFast,
}

/// The compiler as lel-host sets it up for `build`, for modules with
/// `checks`.
fn compiler(checks: Checks, build: Build) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(checks == Checks::Epochs);
    if checks == Checks::Stop {
        config.wasm_threads(true).shared_memory(true);
    }
    match build {
        Build::Optimised => {
            config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        }
        Build::Winch => {
            config
                .strategy(wasmtime::Strategy::Winch)
                .cranelift_opt_level(wasmtime::OptLevel::None)
                .cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
        }
        Build::CraneliftFast => {
            config
                .cranelift_opt_level(wasmtime::OptLevel::None)
                .cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
        }
    }
    config
}

/// `bytes` as lel-host compiles them: with its stop checks.
fn with_stop_checks(bytes: &[u8]) -> Vec<u8> {
    lel_host::testing::instrument(bytes).expect("a valid module")
}

/// `process` of a 0.1.0 or a 0.2.0 module.
enum Process {
    V01(wasmtime::TypedFunc<(i32, i64), i32>),
    V02(wasmtime::TypedFunc<(i32, i64, i32), i32>),
}

impl Direct {
    /// `fast`: with the compiler settings of lel-host's fast build.
    fn new(path: &Path, checks: Checks, build: Build) -> Direct {
        let mut config = compiler(checks, build);
        config.compiler_inlining(wasmtime::Inlining::No);
        // LEL_BENCH_PERFMAP=1: name the compiled functions for `perf report`.
        if std::env::var_os("LEL_BENCH_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&config).unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        if checks == Checks::Stop {
            bytes = with_stop_checks(&bytes);
        }
        let module = wasmtime::Module::new(&engine, &bytes).unwrap();
        let mut linker = wasmtime::Linker::<u32>::new(&engine);
        for v in [
            lel_host::contract::ContractVersion::V0_1,
            lel_host::contract::ContractVersion::V0_2,
        ] {
            let host = v.spec().host_module;
            linker
                .func_wrap(
                    host,
                    "claim",
                    |mut c: wasmtime::Caller<'_, u32>, _k: i32, _l: i32, size: i32, align: i32| {
                        let at = c.data().next_multiple_of(align.max(1) as u32);
                        *c.data_mut() = at + size as u32;
                        at as i32
                    },
                )
                .unwrap()
                .func_wrap(host, "log", |_: i32, _: i32, _: i32| {})
                .unwrap();
        }
        let mut store = wasmtime::Store::new(&engine, 0u32);
        store.set_epoch_deadline(1 << 40);
        if checks == Checks::Stop {
            // The stop flags, never set here: what is measured is the
            // checks' cost.
            use lel_host::testing::{FLAGS_NAME, STOP_MODULE, WORD_NAME};
            let flags =
                wasmtime::SharedMemory::new(&engine, wasmtime::MemoryType::shared(1, 1)).unwrap();
            let word = wasmtime::Global::new(
                &mut store,
                wasmtime::GlobalType::new(wasmtime::ValType::I32, wasmtime::Mutability::Const),
                wasmtime::Val::I32(0),
            )
            .unwrap();
            linker
                .define(&store, STOP_MODULE, FLAGS_NAME, flags)
                .unwrap()
                .define(&store, STOP_MODULE, WORD_NAME, word)
                .unwrap();
        }
        // Any other host function (`param`, ...) answers 0: the modules
        // measured here declare no parameters, they only import them.
        linker
            .define_unknown_imports_as_default_values(&mut store, &module)
            .unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        if let Ok(f) = instance.get_typed_func::<(), i32>(&mut store, "state-ptr") {
            let base = f.call(&mut store, ()).unwrap() as u32;
            *store.data_mut() = base;
        }
        let init = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "init")
            .unwrap();
        let channels = init.call(&mut store, (SR as i32, BLOCK as i32)).unwrap() as usize;
        let process = match instance.get_typed_func(&mut store, "process") {
            Ok(f) => Process::V01(f),
            Err(_) => Process::V02(instance.get_typed_func(&mut store, "process").unwrap()),
        };
        Direct {
            process,
            memory: instance.get_memory(&mut store, "memory").unwrap(),
            store,
            channels,
            clock: 0,
            epochs: checks == Checks::Epochs,
        }
    }

    fn render(&mut self, out: &mut [f32]) {
        for chunk in out.chunks_mut(BLOCK * self.channels) {
            let frames = chunk.len() / self.channels;
            if self.epochs {
                self.store.set_epoch_deadline(1 << 40);
            }
            let (f, c) = (frames as i32, self.clock as i64);
            // As the engine does before every guest call: the native
            // builds compared with may leave the AVX registers' upper
            // halves dirty, which slowed a fast build's code fourfold.
            lel_host::testing::clean_vector_state();
            let p = match &self.process {
                Process::V01(p) => p.call(&mut self.store, (f, c)),
                Process::V02(p) => p.call(&mut self.store, (f, c, 0)),
            }
            .unwrap() as usize;
            let bytes = &self.memory.data(&self.store)[p..p + chunk.len() * 4];
            for (d, b) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
                *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            self.clock += frames as u64;
        }
    }
}

/// Section 6, where the time goes: native; wasm straight through wasmtime
/// with no checks, wasmtime's epoch checks, lel-host's stop checks; the
/// whole engine; the fast build (Winch, stop checks) and the fast build
/// where Winch cannot run (Cranelift unoptimised, stop checks).
fn where_the_time_goes(reps: usize) {
    const SECONDS: usize = 5;
    println!(
        "\n6. where the time goes ({SECONDS} s; ns per frame and voice, best of {reps}; ratios to native):"
    );
    let frames = SR as usize * SECONDS;
    let row = |label: &str,
               units: usize,
               channels: usize,
               path: &Path,
               native: &mut dyn FnMut(&mut [f32])| {
        let mut bare = Direct::new(path, Checks::None, Build::Optimised);
        let mut epochs = Direct::new(path, Checks::Epochs, Build::Optimised);
        let mut stop = Direct::new(path, Checks::Stop, Build::Optimised);
        let mut winch = Direct::new(path, Checks::Stop, Build::Winch);
        let mut unoptimised = Direct::new(path, Checks::Stop, Build::CraneliftFast);
        let mut engine = engine(channels);
        engine.load(path).unwrap();
        let mut out = vec![0.0f32; frames * channels];
        let mut best = [f64::MAX; 7];
        for _ in 0..reps {
            let t = [
                time(|| native(&mut out)),
                time(|| bare.render(&mut out)),
                time(|| epochs.render(&mut out)),
                time(|| stop.render(&mut out)),
                time(|| engine.render_into(&mut out)),
                time(|| winch.render(&mut out)),
                time(|| unoptimised.render(&mut out)),
            ];
            for (b, t) in best.iter_mut().zip(t) {
                *b = b.min(t);
            }
        }
        let per = |t: f64| t * 1e9 / (frames * units) as f64;
        println!(
            "  {label}: native {:.2}; wasm, no checks {:.2}x; epoch checks {:.2}x; stop checks (lel-host) {:.2}x; \
             whole engine {:.2}x; fast build (Winch) {:.2}x; Cranelift unoptimised {:.2}x",
            per(best[0]),
            best[1] / best[0],
            best[2] / best[0],
            best[3] / best[0],
            best[4] / best[0],
            best[5] / best[0],
            best[6] / best[0],
        );
    };
    const N: usize = 100;
    for unroll in [1usize, 4, 8, 16] {
        let path = voices_wasm(N, unroll);
        let mut native = Box::new(bench_voices::Bank::new());
        native.init(SR, N);
        row(
            &format!("{N} voices, {unroll} frame(s) per iteration"),
            N,
            2,
            &path,
            &mut |out| native_voices(&mut native, unroll, out),
        );
    }
    let path = out_dir().join("filtered-delayed-sine.wasm");
    let mut native = lel::testing::Harness::new(SR, chain).unwrap();
    row("SDK filtered-delayed-sine", 1, 1, &path, &mut |out| {
        native.render_into(out)
    });
    // The other SDKs' chains, against the native Rust chain (the same
    // samples): how much is the guest's code, how much the engine's path.
    for (lang, name) in [("c", "C"), ("zig", "Zig"), ("as", "AssemblyScript")] {
        match lang_chain(lang) {
            Some(path) => row(
                &format!("{name} SDK's chain (vs the native Rust chain)"),
                1,
                1,
                &path,
                &mut |out| native.render_into(out),
            ),
            None => {
                println!("  {name} SDK's chain: SKIPPED, `scripts/build-examples {lang}` failed")
            }
        }
    }
}

/// CPU time (user + system) of all waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_CHILDREN is always
    // supported.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Run a command to completion, quietly; (wall, CPU) seconds.
fn run_timed(cmd: &mut Command) -> (f64, f64) {
    let cpu0 = children_cpu();
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("start the command");
    let wall = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (wall, children_cpu() - cpu0)
}

fn rms(path: &Path) -> f64 {
    let mut r = hound::WavReader::open(path).unwrap();
    let (sum, n) = r
        .samples::<f32>()
        .map(|s| s.unwrap() as f64)
        .fold((0.0, 0usize), |(s, n), x| (s + x * x, n + 1));
    (sum / n.max(1) as f64).sqrt()
}

/// 2. `lel-host render` vs `scsynth -N`, 100 voices, 60 s.
fn versus_scsynth(reps: usize) {
    let (n, seconds) = (100usize, 60.0);
    println!(
        "\n2. the same workload, {n} voices, {seconds} s at 48 kHz: `lel-host render` vs SuperCollider \
         `scsynth -N` (NRT, block 128), whole processes, {reps} rounds:"
    );
    let Some(scsynth) = find_scsynth() else {
        println!(
            "  SKIPPED: scsynth not found. Install it with `apt-get install supercollider-server` \
             (scripts/bench does)."
        );
        return;
    };
    let dir = out_dir();
    let score = dir.join("voices.osc");
    std::fs::write(&score, sc::score(n, seconds)).unwrap();
    std::fs::write(dir.join("voice.scsyndef"), sc::synthdef("voice")).unwrap();
    for unroll in [1usize, 8] {
        let wasm = dir.join(format!("voices-{n}-x{unroll}.wasm"));
        println!("  guest with {unroll} frame(s) per loop iteration:");
        scsynth_round(reps, &scsynth, &wasm, &score, seconds);
    }
}

fn scsynth_round(reps: usize, scsynth: &Path, wasm: &Path, score: &Path, seconds: f64) {
    let dir = out_dir();
    let (lel_wav, sc_wav) = (dir.join("lel.wav"), dir.join("scsynth.wav"));
    let lel = env!("CARGO_BIN_EXE_lel-host");
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let (mut best_lel, mut best_sc) = ((f64::MAX, f64::MAX), (f64::MAX, f64::MAX));
    for _ in 0..reps {
        let l = run_timed(
            Command::new(lel)
                .arg("render")
                .arg(wasm)
                .arg("-o")
                .arg(&lel_wav)
                .args(["--seconds", &seconds.to_string(), "--threads", "1"])
                .env("LEL_CACHE_DIR", "off"),
        );
        let s = run_timed(
            Command::new(scsynth)
                .arg("-N")
                .arg(score)
                .arg("_")
                .arg(&sc_wav)
                .args(["48000", "WAV", "float"])
                .args(["-o", "2", "-i", "0", "-z", "128", "-n", "4096", "-D", "0"]),
        );
        wall.push(l.0 / s.0);
        cpu.push(l.1 / s.1);
        best_lel = (best_lel.0.min(l.0), best_lel.1.min(l.1));
        best_sc = (best_sc.0.min(s.0), best_sc.1.min(s.1));
    }
    let (rl, rs) = (rms(&lel_wav), rms(&sc_wav));
    println!(
        "    lel-host / scsynth, wall time: {}; best {:.0} ms vs {:.0} ms",
        show(spread(wall)),
        best_lel.0 * 1e3,
        best_sc.0 * 1e3
    );
    println!(
        "    lel-host / scsynth, CPU time:  {}; best {:.0} ms vs {:.0} ms",
        show(spread(cpu)),
        best_lel.1 * 1e3,
        best_sc.1 * 1e3
    );
    println!(
        "    same sound: RMS {rl:.4} (lel-host) vs {rs:.4} (scsynth){}",
        if (rl / rs - 1.0).abs() < 0.1 {
            ""
        } else {
            "  <- DIFFERENT: the comparison is not of the same work"
        }
    );
}

fn find_scsynth() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("scsynth"))
            .find(|f| f.is_file())
    })
}

/// 3. The SDK chain vs native.
fn sdk_chain_vs_native(reps: usize) {
    const SECONDS: usize = 20;
    println!(
        "\n3. the SDK's filtered-delayed-sine, {SECONDS} s mono in {BLOCK}-frame blocks: \
         wasm through lel-host vs the same chain native (SDK harness), {reps} rounds:"
    );
    let frames = SR as usize * SECONDS;
    let wasm_path = build_wasm("filtered-delayed-sine", &[], "filtered-delayed-sine");
    let mut wasm = engine(1);
    wasm.load(&wasm_path).unwrap();
    let mut native = lel::testing::Harness::new(SR, chain).unwrap();
    // Both sides render into buffers allocated once (the native side's
    // `render` would allocate and zero 3.8 MB per round, in its time).
    let (mut w_out, mut n_out) = (vec![0.0f32; frames], vec![0.0f32; frames]);
    let rounds = compare(
        reps,
        || wasm.render_into(&mut w_out),
        || native.render_into(std::hint::black_box(&mut n_out)),
    );
    let tw = rounds.1;
    println!(
        "{} ({:.0}x real time)",
        ratio_line("lel-host / native", rounds),
        SECONDS as f64 / tw
    );
    // The same chain from the other SDKs (`examples/{c,zig,assemblyscript}`):
    // they compute the same samples bit for bit (the language tests), so
    // the native Rust chain is their native reference too.
    let langs = out_dir().join("langs");
    for (lang, name) in [("c", "C"), ("zig", "Zig"), ("as", "AssemblyScript")] {
        let Some(path) = lang_chain(lang) else {
            println!(
                "  {name} SDK's chain: SKIPPED, `scripts/build-examples {lang}` failed (scripts/setup-languages \
                 installs the toolchains; scripts/bench runs it)"
            );
            continue;
        };
        let mut wasm = engine(1);
        wasm.load(&path).unwrap();
        let rounds = compare(
            reps,
            || wasm.render_into(&mut w_out),
            || native.render_into(std::hint::black_box(&mut n_out)),
        );
        println!(
            "{}",
            ratio_line(&format!("{name} SDK's chain / native Rust chain"), rounds)
        );
        // The chain natively: the same source through the same compiler
        // (AssemblyScript has no native compiler).
        let lib = langs.join(format!("chain-{lang}-native.so"));
        let (built, compiler) = match lang {
            "c" => (
                native::Native::c(&repo(), "examples/c/chain.c", &lib, SR, BLOCK as u32),
                "clang -O2",
            ),
            "zig" => (
                native::Native::zig(&repo(), "examples/zig/chain.zig", &lib, SR, BLOCK as u32),
                "zig ReleaseFast",
            ),
            _ => continue,
        };
        match built {
            Ok(mut lib) => {
                let rounds = compare(
                    reps,
                    || wasm.render_into(&mut w_out),
                    || lib.render_into(std::hint::black_box(&mut n_out)),
                );
                let label = format!("{name} SDK's chain / the same {name} native ({compiler})");
                println!("{}", ratio_line(&label, rounds));
            }
            Err(e) => println!("  {name} SDK's chain natively: FAILED, {e}"),
        }
    }
}

/// The chain example of the SDK for `lang` (`c`, `zig`, `as`), built by
/// `scripts/build-examples` into the bench's folder (None if it failed).
fn lang_chain(lang: &str) -> Option<PathBuf> {
    let langs = out_dir().join("langs");
    let built = Command::new(repo().join("scripts/build-examples"))
        .arg(lang)
        .env("LEL_EXAMPLES_OUT", &langs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    built.then(|| langs.join(format!("chain-{lang}.wasm")))
}

/// `examples/rust/filtered-delayed-sine`, natively.
fn chain() -> impl Node {
    osc(440)
        .lowpass(800)
        .tremolo(5, 0.8)
        .delay(0.5, 0.25)
        .gain(0.4)
}

/// A signal that does nothing: returns silence already in its memory.
const EMPTY: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "init") (param i32 i32) (result i32) (i32.const 1))
  (func (export "process") (param i32 i64) (result i32) (i32.const 1024)))"#;

/// Part 4, the engine's cost per signal: with 1,000 signals (the issue's
/// figure; every signal's lines are out of the caches by its next block),
/// and with 100 (they fit).
fn per_signal_overhead(reps: usize) {
    const SECONDS: usize = 2;
    const N: usize = 1000;
    println!(
        "\n4. per-signal overhead: signals that do nothing (call, checks, mix), stereo out, \
         {SECONDS} s in {BLOCK}-frame blocks, best of {reps}:"
    );
    let frames = SR as usize * SECONDS;
    let blocks = (frames / BLOCK) as f64;
    let period_us = BLOCK as f64 / SR as f64 * 1e6;
    let per_block = |n: usize| {
        let mut r = engine(2);
        for i in 0..n {
            r.load_bytes(&format!("empty{i}"), EMPTY.as_bytes())
                .unwrap();
            if i % 100 == 99 {
                // Let the mixer take the queued loads (its queue is bounded).
                r.render(BLOCK);
            }
        }
        let mut out = vec![0.0f32; frames * 2];
        r.render_into(&mut out); // warm up
        (0..reps)
            .map(|_| time(|| r.render_into(&mut out)))
            .fold(f64::MAX, f64::min)
            / blocks
            * 1e6
    };
    let (none, hundred, many) = (per_block(0), per_block(100), per_block(N));
    let each = (many - none) / N as f64;
    println!(
        "  engine alone: {none:.2} us per block; {N} signals: {many:.0} us per block = {:.0} % of \
         the {period_us:.0} us block period (goal: under 50 %)",
        many / period_us * 100.0
    );
    println!(
        "  per signal: {each:.3} us per block with {N} signals (goal: at most 0.3 us); {:.3} us \
         with 100",
        (hundred - none) / 100.0
    );
}

/// 5. File change to swap, `lel-host run --device none` as a child.
fn save_to_sound() {
    // LEL_BENCH_SAVES=N: N saves per tier (9 by default).
    let saves = std::env::var("LEL_BENCH_SAVES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9usize)
        .max(1);
    println!(
        "\n5. save-to-sound latency (`lel-host run`, silent clock; small .wat module saved by \
         rename-into-place, {saves} times per tier):"
    );
    let sine = std::fs::read_to_string(repo().join("examples/wat/sine.wat")).unwrap();
    let version = |k: usize| sine.replace("440", &format!("{}", 300 + k));
    load_breakdown(&version);
    let new_code: Vec<String> = (1..=saves).map(version).collect();
    // Versions seen before (alternating, so each differs from the one playing).
    let seen: Vec<String> = (0..saves).map(|k| version(1 + k % 2)).collect();
    let tiers = saves_in_run(&[], &version(0), &[&new_code[..], &seen[..]].concat());
    let single = saves_in_run(&["--no-fast-build"], &version(0), &new_code);
    let show = |tier: &str, l: Vec<(f64, f64)>| {
        let (med, lo, hi) = spread(l.iter().map(|x| x.0).collect());
        let (compile, _, _) = spread(l.iter().map(|x| x.1).collect());
        println!(
            "  {tier:44} median {med:5.1} ms (min {lo:.1}, max {hi:.1}), of which compiling or \
             lookup {compile:.1} ms"
        );
    };
    show(
        "new code, sounding from its fast build",
        tiers[..saves].iter().map(|s| s.swap).collect(),
    );
    show(
        "new code, its optimised build taking over",
        tiers[..saves].iter().filter_map(|s| s.tier_up).collect(),
    );
    show(
        "code seen before (cached)",
        tiers[saves..].iter().map(|s| s.swap).collect(),
    );
    show(
        "new code, `--no-fast-build` (optimised only)",
        single.iter().map(|s| s.swap).collect(),
    );
    println!("  (goal: sound within 5 ms of a save, median)");
}

/// One save's latencies in `run`, from its log lines: (file change to
/// swap, compile or lookup) in ms, and the same for the optimised build
/// taking over from a fast build.
struct Save {
    swap: (f64, f64),
    tier_up: Option<(f64, f64)>,
}

/// Start `lel-host run` (with `args`) on a folder playing `first`, save
/// each of `saves` in turn and read the latencies from its log.
fn saves_in_run(args: &[&str], first: &str, saves: &[String]) -> Vec<Save> {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    let save = |text: &str| {
        let tmp = music.join(".sine.wat.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, music.join("sine.wat")).unwrap();
    };
    save(first);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lel-host"))
        .arg("run")
        .arg(&music)
        .args(["--device", "none", "--seconds", "120"])
        .args(args)
        .env("LEL_CACHE_DIR", dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lel-host run");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("lel-host run never printed `{what}`"),
            }
        }
    };
    // (latency, compile) from a swap or tier-up line.
    let figures = |line: &str| -> (f64, f64) {
        let number = |before: &str, after: &str| -> f64 {
            let at = line
                .find(before)
                .unwrap_or_else(|| panic!("no `{before}` in: {line}"));
            let rest = &line[at + before.len()..];
            rest[..rest.find(after).unwrap()].trim().parse().unwrap()
        };
        let latency = line
            .split(", ")
            .find_map(|p| p.strip_suffix(" ms after the file changed"))
            .unwrap_or_else(|| panic!("no latency in: {line}"))
            .trim()
            .parse()
            .unwrap();
        (latency, number("compiled in ", " ms)"))
    };
    wait_for("playing on the silent clock");
    let mut out = Vec::new();
    for (k, text) in saves.iter().enumerate() {
        let n = k + 2;
        std::thread::sleep(Duration::from_millis(150));
        save(text);
        let swap = wait_for(&format!("swapped in version {n} "));
        let tier_up = swap.contains("(fast build,").then(|| {
            figures(&wait_for(&format!(
                "the optimised build of version {n} took over"
            )))
        });
        out.push(Save {
            swap: figures(&swap),
            tier_up,
        });
    }
    // SAFETY: plain kill(2) of our own child; SIGINT makes it stop cleanly.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    out
}

/// Part 5's breakdown: what one load of the small module costs, in the
/// engine (compile and instantiate + `init`, from the load report), and
/// Cranelift's compile time under other settings, medians of 9.
fn load_breakdown(version: &dyn Fn(usize) -> String) {
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // No compiled-module cache: every load here compiles (the versions are
    // the same on every run of the bench).
    let mut r = Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 2,
        block: BLOCK as u32,
        threads: 1,
        cache_dir: None,
        ..Settings::default()
    })
    .unwrap();
    let (mut compile, mut init) = (Vec::new(), Vec::new());
    for k in 0..9 {
        let report = r
            .load_bytes("sine", version(100 + k).as_bytes())
            .unwrap()
            .expect("a new version");
        compile.push(report.compile.as_secs_f64() * 1e3);
        init.push(report.init.as_secs_f64() * 1e3);
        r.render(BLOCK);
    }
    println!(
        "  in the engine (no watcher): compile {:.2} ms, instantiate + init {:.3} ms",
        med(compile),
        med(init)
    );
    let bytes: Vec<Vec<u8>> = (0..9)
        .map(|k| wat::parse_str(version(200 + k)).unwrap())
        .collect();
    for (label, build, parallel) in [
        (
            "optimised build (Cranelift `speed`), parallel as lel-host",
            Build::Optimised,
            true,
        ),
        ("optimised build, one thread", Build::Optimised, false),
        ("fast build (Winch)", Build::Winch, true),
        (
            "fast build without Winch (Cranelift `none`, single-pass register allocation)",
            Build::CraneliftFast,
            true,
        ),
    ] {
        let mut config = compiler(Checks::Stop, build);
        config.parallel_compilation(parallel);
        let e = wasmtime::Engine::new(&config).unwrap();
        wasmtime::Module::new(&e, with_stop_checks(&bytes[0])).unwrap();
        let t: Vec<f64> = bytes
            .iter()
            .map(|b| time(|| drop(wasmtime::Module::new(&e, with_stop_checks(b)).unwrap())) * 1e3)
            .collect();
        println!("  compile alone, {label}: {:.2} ms", med(t));
    }
    // The same two builds of the Rust SDK's examples, as a musician saves
    // them (one module each, compiled 9 times).
    for name in ["filtered-delayed-sine", "poly-synth"] {
        let module = std::fs::read(build_wasm(name, &[], name)).unwrap();
        let t = |build: Build| {
            let e = wasmtime::Engine::new(&compiler(Checks::Stop, build)).unwrap();
            med((0..9)
                .map(|_| {
                    time(|| drop(wasmtime::Module::new(&e, with_stop_checks(&module)).unwrap()))
                        * 1e3
                })
                .collect())
        };
        println!(
            "  compile alone, SDK {name} ({} KB): optimised {:.2} ms, fast (Winch) {:.2} ms, \
             Cranelift unoptimised {:.2} ms",
            module.len() / 1024,
            t(Build::Optimised),
            t(Build::Winch),
            t(Build::CraneliftFast)
        );
    }
}
