//! Guest behaviour at the edges of what the host allows, beside a clean
//! sine that must come out sample-exact: thousands of claims in one `init`,
//! the documented `claim` codes, table growth on the audio thread.

use std::time::Duration;

use lel_host::Renderer;
use lel_host::{Notice, Settings};

use crate::fixtures::{self, count_of};
use crate::util::*;

const SR: u32 = 48_000;
const BLOCK: usize = 128;

fn engine() -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: BLOCK as u32,
        check_alloc: true,
        ..Settings::default()
    })
    .expect("engine")
}

/// `examples/wat/sine.wat` loaded as `sine` at 0.5, 440 Hz.
fn with_sine() -> Renderer {
    let mut r = engine();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    r
}

/// A module whose `init` claims `count` blocks of 8 bytes in a loop (keys
/// `v` + 4 letters) and keeps a block counter in the first one; it outputs
/// `counter * 1e-5` like [`fixtures::counter`].
fn many_claims(count: u32) -> String {
    format!(
        r#"(module
  (import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 256) "vaaaa")
  (global $counter (mut i32) (i32.const 0))
  (func (export "state-ptr") (result i32) (i32.const 65536))
  (func (export "state-len") (result i32) (i32.const {len}))
  (func (export "init") (param i32 i32) (result i32)
    (local $i i32) (local $k i32) (local $r i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const {count})))
      ;; key "v" + one letter a..p per 4 bits of $i
      (local.set $k (i32.const 0))
      (block $kd (loop $kl
        (br_if $kd (i32.ge_u (local.get $k) (i32.const 4)))
        (i32.store8 (i32.add (i32.const 257) (local.get $k))
          (i32.add (i32.const 97)
            (i32.and (i32.shr_u (local.get $i) (i32.shl (local.get $k) (i32.const 2))) (i32.const 15))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $kl)))
      (local.set $r (call $claim (i32.const 256) (i32.const 5) (i32.const 8) (i32.const 8)))
      (if (i32.lt_s (local.get $r) (i32.const 0)) (then (return (local.get $r))))
      (if (i32.eqz (local.get $i)) (then (global.set $counter (local.get $r))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $v f32)
    (i32.store (global.get $counter) (i32.add (i32.load (global.get $counter)) (i32.const 1)))
    (local.set $v (f32.mul (f32.convert_i32_s (i32.load (global.get $counter))) (f32.const 1e-5)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
      (f32.store (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 4096)))
"#,
        len = count * 8
    )
}

#[test]
fn twenty_thousand_claims_in_one_init_load_and_carry_beside_a_clean_sine() {
    let mut r = with_sine();
    let text = many_claims(20_000);
    // The default init limit (1 s) applies; the claims take a few ms of it.
    assert_eq!(Settings::default().init_timeout, Duration::from_secs(1));
    let v1 = r
        .load_bytes("many", text.as_bytes())
        .unwrap_or_else(|e| panic!("{e:#}"))
        .unwrap();
    println!("20,000 claims: init took {:?}", v1.init);
    assert_eq!(v1.layout.blocks.len(), 20_000);
    let mut x = r.render(100 * BLOCK);
    // A new version claims the same 20,000 keys: every block is carried.
    let v2 = r
        .load_bytes("many", fixtures::resaved(&text, 1).as_bytes())
        .unwrap_or_else(|e| panic!("{e:#}"))
        .unwrap();
    println!("20,000 carried claims: init took {:?}", v2.init);
    assert!(v2.layout.blocks.iter().all(|b| b.carried));
    x.extend(r.render(100 * BLOCK));
    // The counter went on from 100 across the swap; the sine was never disturbed.
    for (b, block) in x.chunks(BLOCK).enumerate() {
        let count = count_of(block[0] - sine_at(440.0, 0.5, b * BLOCK, SR) as f32);
        assert_eq!(count, b as i64 + 1, "block {b}");
    }
    for (n, &s) in x.iter().enumerate() {
        let count = (n / BLOCK + 1) as f64 * 1e-5;
        let err = (s as f64 - sine_at(440.0, 0.5, n, SR) - count).abs();
        assert!(err < 1e-5, "frame {n}: {s}");
    }
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn claim_without_a_state_region_returns_the_documented_code() {
    // `init` traps unless `claim` returned -6 (wit/lel.wit: no state region);
    // with -6 the version is rejected with the claim's message.
    let text = fixtures::module(
        r#"(import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (data (i32.const 16) "osc#0")"#,
        "(if (i32.ne (call $claim (i32.const 16) (i32.const 5) (i32.const 8) (i32.const 8)) (i32.const -6)) (then unreachable)) (i32.const 1)",
        "(i32.const 0)",
    );
    let mut r = with_sine();
    let err = format!("{:#}", r.load_bytes("lead", text.as_bytes()).unwrap_err());
    assert_eq!(
        err,
        "lead: claim \"osc#0\" made by a module with no state region (export `state-ptr` and `state-len`, or claim nothing)"
    );
    let x = r.render(SR as usize / 10);
    assert_exact_sine(&x, SR);
}

/// A mono module that grows its table by one element at every `process`
/// call (from 1 element, no declared maximum) and outputs the table's size
/// times 1e-5 on every sample.
fn table_grower() -> String {
    r#"(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "init") (param i32 i32) (result i32) (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $v f32)
    (drop (table.grow $t (ref.null func) (i32.const 1)))
    (local.set $v (f32.mul (f32.convert_i32_u (table.size $t)) (f32.const 1e-5)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
      (f32.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 1024)))
"#
    .to_string()
}

/// Each block of `x` is the sine plus the grower's table size * 1e-5; the
/// sizes seen, block by block.
fn table_sizes(x: &[f32]) -> Vec<i64> {
    for (n, &s) in x.iter().enumerate() {
        let size = count_of(s - sine_at(440.0, 0.5, n, SR) as f32);
        let block_start =
            count_of(x[n / BLOCK * BLOCK] - sine_at(440.0, 0.5, n / BLOCK * BLOCK, SR) as f32);
        assert_eq!(
            size, block_start,
            "frame {n}: the sine is exact, the block constant"
        );
    }
    x.chunks(BLOCK)
        .enumerate()
        .map(|(b, c)| count_of(c[0] - sine_at(440.0, 0.5, b * BLOCK, SR) as f32))
        .collect()
}

#[test]
fn growing_a_table_every_block_never_allocates_on_the_audio_thread() {
    // 3 seconds at one element per block: 1,125 grows, each on the audio
    // thread. The tables come from the engine's pool, already spanning the
    // table limit, so a grow only moves the bound.
    let mut r = with_sine();
    r.load_bytes("grower", table_grower().as_bytes()).unwrap();
    let x = r.render(3 * SR as usize);
    let sizes = table_sizes(&x);
    for (b, &size) in sizes.iter().enumerate() {
        assert_eq!(size, b as i64 + 2, "block {b}: the table grew by one");
    }
    assert!(
        !r.take_notices()
            .iter()
            .any(|n| matches!(n, lel_host::Notice::GrowRefused { .. })),
        "within the limit"
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn a_refused_table_grow_names_the_table_limit() {
    let dir = tempdir();
    let mut r = Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: BLOCK as u32,
        check_alloc: true,
        limits: lel_host::GuestLimits {
            max_table_elements: 500,
            ..Default::default()
        },
        ..Settings::default()
    })
    .unwrap();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    let path = write(dir.path(), "grower.wat", &table_grower());
    r.load(&path).unwrap();
    let x = r.render(2 * SR as usize);
    let notices = r.take_notices();
    assert_eq!(faults(&notices), 0, "{notices:?}");
    let sizes = table_sizes(&x);
    // 1 element + one per block, up to the limit; then it stays there and plays on.
    assert_eq!(sizes[..499], (2..=500).collect::<Vec<i64>>()[..]);
    assert!(
        sizes[499..].iter().all(|&s| s == 500),
        "{:?}",
        &sizes[495..]
    );
    let messages: Vec<String> = notices
        .into_iter()
        .filter_map(|n| match n {
            lel_host::Notice::GrowRefused { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        [format!(
            "grower: a table grow was refused: the module is over its 500-element table limit ({})",
            path.display()
        )],
        "reported once, naming the table limit"
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

/// A mono module that logs `per_block` lines ("line") from every `process`
/// call and outputs silence.
fn flood(per_block: u32) -> String {
    fixtures::module(
        r#"(import "lel:signal/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (data (i32.const 16) "line")"#,
        "(i32.const 1)",
        &format!(
            "(local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const {per_block})))
      (call $log (i32.const 2) (i32.const 16) (i32.const 4))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 1024)"
        ),
    )
}

/// The guest's lines printed, and the drops summarised, in a log.
fn flood_lines(stderr: &str) -> (u64, Vec<u64>) {
    let printed = stderr
        .lines()
        .filter(|l| l.ends_with("flood: line"))
        .count() as u64;
    let summaries = stderr
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("WARN flood: ")?;
            let n = rest
                .strip_suffix(" log lines dropped in the last second")
                .or_else(|| rest.strip_suffix(" log line dropped in the last second"))?;
            Some(n.replace(',', "").parse::<u64>().expect("a count"))
        })
        .collect();
    (printed, summaries)
}

#[test]
fn a_log_flood_in_render_is_rate_limited_and_every_dropped_line_is_counted() {
    // 20 lines per block for 3 s: 22,500 lines (7,500 a second). At most 20
    // a second are printed; every other one is counted in a summary. The
    // budget is raised so that the loaded test machine cannot make a
    // `process` call of 20 host calls look like a runaway.
    let dir = tempdir();
    std::fs::copy(
        repo_root().join("examples/wat/sine.wat"),
        dir.path().join("sine.wat"),
    )
    .unwrap();
    write(dir.path(), "flood.wat", &flood(20));
    let wav = dir.path().join("out.wav");
    let started = std::time::Instant::now();
    let out = run_ok(
        std::process::Command::new(lel_host_bin())
            .args([
                "render",
                "--seconds",
                "3",
                "--channels",
                "1",
                "--budget",
                "400",
                "-o",
            ])
            .arg(&wav)
            .arg(dir.path())
            .env("NO_COLOR", "1"),
        "lel-host render",
        "",
    );
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (printed, summaries) = flood_lines(&stderr);
    assert!(!summaries.is_empty(), "{stderr}");
    // printed + dropped = logged: 20 lines per `process` call, 1,125 calls
    // of 128 frames (a few more: `render` renders in 0.1 s chunks, each
    // ending with one shorter block).
    assert!(!stderr.contains("muted"), "{stderr}");
    let logged = printed + summaries.iter().sum::<u64>();
    assert_eq!(logged % 20, 0, "whole calls: {logged}");
    let calls = logged / 20;
    assert!((1_125..=1_125 + 30).contains(&calls), "{calls} calls");
    assert!(
        printed as f64 <= 20.0 * (wall + 1.0),
        "{printed} lines printed in {wall:.1} s"
    );
    let (_, _, x) = read_wav(&wav);
    assert_exact_sine(&x, SR);
}

#[test]
fn a_log_flood_in_run_is_rate_limited_per_second() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    write(&music, "flood.wat", &flood(20));
    std::fs::copy(
        repo_root().join("examples/wat/sine.wat"),
        music.join("sine.wat"),
    )
    .unwrap();
    let wav = dir.path().join("played.wav");
    let out = run_ok(
        std::process::Command::new(lel_host_bin())
            .args([
                "run",
                "--device",
                "none",
                "--seconds",
                "3",
                "--budget",
                "400",
                "--record",
            ])
            .arg(&wav)
            .arg(&music)
            .env("NO_COLOR", "1"),
        "lel-host run",
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (printed, summaries) = flood_lines(&stderr);
    // 3 s of real time: at most 20 lines in each of (at most) 4 windows.
    assert!(printed <= 80, "{printed} lines printed:\n{stderr}");
    assert!(printed >= 20, "the first lines are printed:\n{stderr}");
    assert!(summaries.len() >= 2, "a summary per second:\n{stderr}");
    // About 375 blocks of 20 lines a second, less the 20 printed.
    assert!(
        summaries.iter().take(2).all(|&n| n > 1_000),
        "{summaries:?}"
    );
    let (channels, _, samples) = read_wav(&wav);
    let left = channel(&samples, channels as usize, 0);
    let first = left.iter().position(|s| s.abs() > 1e-6).unwrap();
    assert!(first < SR as usize / 10);
    let bound = sine_step_bound(0.5, 440.0, SR);
    assert!(max_step(&left) < bound, "the sine plays on, unbroken");
}

#[test]
fn traps_under_stats_are_counted_without_a_line_from_the_audio_thread() {
    // `--stats` counts audio-thread allocations; a trap allocates (wasmtime's
    // error value). That is counted as a fault-path allocation, silently.
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    write(
        &music,
        "bad.wat",
        &fixtures::faulty(20, "(unreachable)", ""),
    );
    let out = run_ok(
        std::process::Command::new(lel_host_bin())
            .args(["run", "--device", "none", "--seconds", "1", "--stats"])
            .arg(&music)
            .env("NO_COLOR", "1"),
        "lel-host run",
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad: trap: wasm `unreachable` instruction executed in process"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stats = stdout
        .lines()
        .find(|l| l.starts_with("stats: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(stats.contains(" 0 audio-thread allocations ("), "{stats}");
    assert!(
        !stats.contains("(0 on fault paths)"),
        "the trap's allocations are counted: {stats}"
    );
    // Every line on stderr is lel-host's own log or the stats: nothing else.
    for line in stderr.lines() {
        let l = line.trim_start();
        assert!(
            l.starts_with("INFO ") || l.starts_with("WARN ") || l.starts_with("ERROR "),
            "a stray line on stderr: {line:?}\n{stderr}"
        );
    }
}

/// Versions of the sine that differ only in frequency: same compiled size.
fn versions(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let bytes = wat::parse_str(fixtures::sine(300.0 + i as f64, 0.5)).unwrap();
            (lel_host::testing::hash(&bytes), bytes)
        })
        .collect()
}

#[test]
fn the_memory_cache_keeps_the_most_recently_used_modules_within_its_bytes() {
    use lel_host::{
        Source,
        testing::{CacheLimits, ModuleCache},
    };
    let runtime = lel_host::testing::Runtime::new().unwrap();
    let engine = &runtime.engine;
    let v = versions(6);
    // One module's size sets the limit: room for three.
    let probe = ModuleCache::with_limits(None, CacheLimits::default());
    probe.get(engine, &v[0].0, &v[0].1).unwrap();
    let one = probe.memory_usage().0;
    assert!(one > 1_000, "a compiled module holds memory: {one} bytes");
    let limit = 3 * one + one / 2;
    let cache = ModuleCache::with_limits(
        None,
        CacheLimits {
            memory_bytes: limit,
            disk_bytes: 0,
        },
    );
    for (h, b) in &v[..3] {
        assert_eq!(cache.get(engine, h, b).unwrap().1, Source::Compiled);
    }
    // Use the oldest again: it becomes the most recent.
    assert_eq!(
        cache.get(engine, &v[0].0, &v[0].1).unwrap().1,
        Source::Memory
    );
    for (h, b) in &v[3..5] {
        cache.get(engine, h, b).unwrap();
        let (bytes, count) = cache.memory_usage();
        assert!(bytes <= limit, "{bytes} > {limit}");
        assert_eq!(count, 3);
    }
    // v1 and v2 (least recently used) went; v0 (used again), v3, v4 stay.
    let kept: Vec<bool> = v[..5].iter().map(|(h, _)| cache.in_memory(h)).collect();
    assert_eq!(kept, [true, false, false, true, true]);
    assert_eq!(
        cache.get(engine, &v[1].0, &v[1].1).unwrap().1,
        Source::Compiled
    );
}

#[test]
fn the_disk_cache_keeps_the_most_recently_used_files_within_its_bytes() {
    use lel_host::{
        Source,
        testing::{CacheLimits, ModuleCache},
    };
    let runtime = lel_host::testing::Runtime::new().unwrap();
    let engine = &runtime.engine;
    let dir = tempdir();
    let v = versions(6);
    let cwasm = |h: &str| dir.path().join(lel_host::testing::file_name(h));
    let disk_bytes = || -> u64 {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    // One serialized module sets the limit: room for three.
    let probe = ModuleCache::with_limits(Some(dir.path().to_path_buf()), CacheLimits::default());
    probe.get(engine, &v[0].0, &v[0].1).unwrap();
    probe.wait_for_disk();
    let one = disk_bytes();
    assert!(one > 1_000, "{one} bytes on disk");
    let limits = CacheLimits {
        memory_bytes: 0, // nothing kept in memory: every lookup goes to disk
        disk_bytes: 3 * one + one / 2,
    };
    let cache = || ModuleCache::with_limits(Some(dir.path().to_path_buf()), limits);
    let c = cache();
    for (h, b) in &v[1..3] {
        assert_eq!(c.get(engine, h, b).unwrap().1, Source::Compiled);
        c.wait_for_disk();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A new process (a fresh cache) loads v0 from disk: a use.
    let c = cache();
    assert_eq!(c.get(engine, &v[0].0, &v[0].1).unwrap().1, Source::Disk);
    std::thread::sleep(std::time::Duration::from_millis(20));
    for (h, b) in &v[3..5] {
        assert_eq!(c.get(engine, h, b).unwrap().1, Source::Compiled);
        c.wait_for_disk();
        assert!(
            disk_bytes() <= limits.disk_bytes,
            "{} > {}",
            disk_bytes(),
            limits.disk_bytes
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kept: Vec<bool> = v[..5].iter().map(|(h, _)| cwasm(h).exists()).collect();
    assert_eq!(
        kept,
        [true, false, false, true, true],
        "least recently used went first"
    );
    // Each evicted module went with its checksum file.
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 6, "three modules and their checksums");
    let c = cache();
    assert_eq!(c.get(engine, &v[4].0, &v[4].1).unwrap().1, Source::Disk);
    assert_eq!(c.get(engine, &v[1].0, &v[1].1).unwrap().1, Source::Compiled);
}

/// A mono module with one claimed f32, "g". `v1` keeps a NaN in it and
/// outputs 0.1 (it never reads it); `v2` starts `g` at 1 when it finds 0
/// (fresh state) and outputs `0.2 * g`: with v1's NaN carried over, NaN.
fn nan_state(v2: bool) -> String {
    let process = if v2 {
        "(if (f32.eq (f32.load (global.get $g)) (f32.const 0)) (then (f32.store (global.get $g) (f32.const 1))))
    (local.set $v (f32.mul (f32.const 0.2) (f32.load (global.get $g))))"
    } else {
        "(f32.store (global.get $g) (f32.const nan))
    (local.set $v (f32.const 0.1))"
    };
    format!(
        r#"(module
  (import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "g")
  (global $g (mut i32) (i32.const 0))
  (func (export "state-ptr") (result i32) (i32.const 4096))
  (func (export "state-len") (result i32) (i32.const 64))
  (func (export "init") (param i32 i32) (result i32)
    (global.set $g (call $claim (i32.const 16) (i32.const 1) (i32.const 4) (i32.const 4)))
    (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32) (local $v f32)
    {process}
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $frames)))
      (f32.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.const 1024)))
"#
    )
}

#[test]
fn a_fault_right_after_carrying_nan_state_blames_the_state_and_restarts_fresh_once() {
    let dir = tempdir();
    let mut r = with_sine();
    let path = dir.path().join("lead.wat");
    std::fs::write(&path, nan_state(false)).unwrap();
    r.load(&path).unwrap();
    let mut x = r.render(20 * BLOCK);
    // The fix is saved: it carries "g" (a NaN) and faults on its first block.
    std::fs::write(&path, nan_state(true)).unwrap();
    let swapped_at = x.len();
    let v2 = r.load(&path).unwrap().unwrap();
    assert!(v2.layout.blocks[0].carried);
    x.extend(r.render(SR as usize / 2));
    let notices = r.take_notices();
    let message = notices
        .iter()
        .find_map(|n| match n {
            Notice::Faulted {
                signal, message, ..
            } if signal == "lead" => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{notices:?}"));
    assert_eq!(
        message,
        format!(
            "lead: process produced a non-finite sample (NaN or infinity) ({}); muted; the state carried over from the previous version may have caused this: restarting this version once with fresh state",
            path.display()
        )
    );
    assert_eq!(faults(&notices), 1, "the fresh restart plays: {notices:?}");
    // The restarted version starts `g` fresh and plays 0.2 beside the sine,
    // which was never disturbed; nothing non-finite reached the output.
    let lead: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(n, &s)| s as f64 - sine_at(440.0, 0.5, n, SR))
        .collect();
    assert!(lead[..swapped_at].iter().all(|l| (l - 0.1).abs() < 1e-5));
    assert!(
        lead.iter().all(|l| (-1e-5..=0.2 + 1e-5).contains(l)),
        "finite, in range"
    );
    let tail = &lead[lead.len() - BLOCK..];
    assert!(
        tail.iter().all(|l| (l - 0.2).abs() < 1e-5),
        "the fresh version plays: {}",
        tail[0]
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn a_module_that_starts_over_a_limit_is_rejected_naming_the_limit() {
    let mut r = with_sine();
    let big_memory = fixtures::module("", "(i32.const 1)", "(i32.const 0)").replace(
        "(memory (export \"memory\") 1)",
        "(memory (export \"memory\") 5000)",
    );
    let err = format!(
        "{:#}",
        r.load_bytes("big", big_memory.as_bytes()).unwrap_err()
    );
    assert_eq!(
        err,
        "big: cannot be instantiated: its memory starts at 5000 pages (312.5 MiB), above the 256 MiB memory limit (start smaller and grow it)"
    );
    let big_table = fixtures::module("(table 200000 funcref)", "(i32.const 1)", "(i32.const 0)");
    let err = format!(
        "{:#}",
        r.load_bytes("big", big_table.as_bytes()).unwrap_err()
    );
    assert_eq!(
        err,
        "big: cannot be instantiated: its table 0 starts with 200000 elements, above the 100000-element table limit"
    );
    let x = r.render(SR as usize / 10);
    assert_exact_sine(&x, SR);
}

/// [`nan_state`]'s fix, faulting only on its 8th block: it plays 0.2 for
/// seven blocks, then `0.2 * g` (with `g` set to 1 when it starts at 0).
fn nan_state_late() -> String {
    nan_state(true).replace(
        "(if (f32.eq (f32.load (global.get $g)) (f32.const 0)) (then (f32.store (global.get $g) (f32.const 1))))
    (local.set $v (f32.mul (f32.const 0.2) (f32.load (global.get $g))))",
        "(global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (f32.eq (f32.load (global.get $g)) (f32.const 0)) (then (f32.store (global.get $g) (f32.const 1))))
    (local.set $v (f32.const 0.2))
    (if (i32.ge_u (global.get $n) (i32.const 8))
      (then (local.set $v (f32.mul (f32.const 0.2) (f32.load (global.get $g))))))",
    )
    .replace(
        "(global $g (mut i32) (i32.const 0))",
        "(global $g (mut i32) (i32.const 0))\n  (global $n (mut i32) (i32.const 0))",
    )
}

#[test]
fn a_fault_during_the_crossfade_after_carrying_nan_state_restarts_fresh_also_without_a_file() {
    // Loaded from bytes (no file to read again), with a 20 ms crossfade
    // (7.5 blocks): the fix faults on its 8th block, still within the
    // crossfade, so the carried state is blamed and the same version is
    // restarted with fresh state.
    let mut r = Renderer::with_settings(Settings {
        channels: 1,
        check_alloc: true,
        cache_dir: None,
        xfade: std::time::Duration::from_millis(20),
        ..Settings::default()
    })
    .unwrap();
    r.load_bytes("lead", nan_state(false).as_bytes()).unwrap();
    r.render(20 * BLOCK);
    let v2 = r
        .load_bytes("lead", nan_state_late().as_bytes())
        .unwrap()
        .unwrap();
    assert!(v2.layout.blocks[0].carried);
    let x = r.render(SR as usize / 2);
    let notices = r.take_notices();
    let faults: Vec<&str> = notices
        .iter()
        .filter_map(|n| match n {
            Notice::Faulted { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        faults,
        [
            "lead: process produced a non-finite sample (NaN or infinity) (lead); muted; the state carried over from the previous version may have caused this: restarting this version once with fresh state"
        ],
        "one fault, then the fresh restart plays: {notices:?}"
    );
    // Finite throughout; the restart carries nothing, so it is crossfaded
    // in with equal power (0.1 cos + 0.2 sin peaks at sqrt(0.05)).
    let peak = 0.05f64.sqrt() + 1e-5;
    assert!(
        x.iter()
            .all(|s| s.is_finite() && (-1e-5..=peak).contains(&(*s as f64)))
    );
    let tail = &x[x.len() - BLOCK..];
    assert!(
        tail.iter().all(|&s| (s as f64 - 0.2).abs() < 1e-5),
        "the restarted version plays with fresh state: {}",
        tail[0]
    );
    assert_eq!(audio_thread_allocations(&mut r), 0);
}
