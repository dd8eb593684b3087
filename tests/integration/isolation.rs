//! A faulty module never takes the music down: each misbehaviour, rendered
//! beside a clean sine. The sine must come out sample-exact (no block
//! missing, no dropout), the faulty signal silenced from the failing block
//! on, and the message must name the signal, the file and the cause.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lel_host::Renderer;
use lel_host::{Notice, Settings};

use crate::fixtures::{self, count_of, counter, faulty};
use crate::util::*;

const SR: u32 = 48_000;
const BLOCK: usize = 128;

fn engine() -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: BLOCK as u32,
        check_alloc: true,
        init_timeout: Duration::from_millis(500),
        ..Settings::default()
    })
    .expect("engine")
}

fn ideal_sine(n: usize) -> f64 {
    sine_at(440.0, 0.5, n, SR)
}

/// Render `bad` (faulting after 40 blocks) beside `examples/wat/sine.wat`
/// for one second. Checks the sine is intact and the faulty signal silent
/// from the fault on; returns the fault message.
pub(crate) fn contained(bad: &str, extra: &str) -> String {
    let dir = tempdir();
    let mut r = engine();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    let path = write(dir.path(), "bad.wat", &faulty(40, bad, extra));
    r.load(&path).unwrap();
    let x = r.render(SR as usize);
    let notices = r.take_notices();
    let (clock, message) = notices
        .iter()
        .find_map(|n| match n {
            Notice::Faulted {
                signal,
                clock,
                message,
                ..
            } if signal == "bad" => Some((*clock as usize, message.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no fault reported: {notices:?}"));
    assert_eq!(clock, 40 * BLOCK, "the fault is the 41st block");
    for (n, &s) in x.iter().enumerate() {
        let dc = if n < clock { 0.1 } else { 0.0 };
        let err = (s as f64 - ideal_sine(n) - dc).abs();
        assert!(
            err < 1e-5,
            "frame {n}: {s}, expected sine + {dc}: the clean signal was disturbed"
        );
    }
    let stats = r.control().stats();
    assert_eq!(
        stats.violations.load(Ordering::Relaxed),
        0,
        "no allocation on the audio thread's fault-free path"
    );
    assert!(
        message.contains(&path.display().to_string()),
        "names the file: {message}"
    );
    message
}

#[test]
fn runaway_loop_in_process_is_stopped_within_about_a_block() {
    let m = contained("(loop $l (br $l))", "");
    assert!(
        m.starts_with("bad: process exceeded its 1.33 ms budget (runaway loop?)"),
        "{m}"
    );
}

#[test]
fn unreachable() {
    let m = contained("(unreachable)", "");
    assert!(
        m.starts_with("bad: trap: wasm `unreachable` instruction executed in process"),
        "{m}"
    );
}

#[test]
fn out_of_bounds_access() {
    let m = contained("(drop (i32.load (i32.const -4)))", "");
    assert!(
        m.starts_with("bad: trap: out of bounds memory access in process"),
        "{m}"
    );
}

#[test]
fn integer_division_by_zero() {
    let m = contained("(drop (i32.div_s (global.get $n) (i32.const 0)))", "");
    assert!(
        m.starts_with("bad: trap: integer divide by zero in process"),
        "{m}"
    );
}

#[test]
fn stack_overflow() {
    let m = contained("(call $recurse)", "(func $recurse (call $recurse))");
    assert!(
        m.starts_with("bad: trap: call stack exhausted in process"),
        "{m}"
    );
}

#[test]
fn failed_indirect_call() {
    let m = contained(
        "(call_indirect (type $t) (i32.const 0))",
        "(type $t (func)) (table 1 funcref)",
    );
    assert!(
        m.starts_with("bad: trap: uninitialized element in process"),
        "{m}"
    );
    let m = contained(
        "(call_indirect (type $t) (i32.const 0))",
        "(type $t (func)) (table funcref (elem $wrong)) (func $wrong (param i32))",
    );
    assert!(
        m.starts_with("bad: trap: indirect call type mismatch in process"),
        "{m}"
    );
}

#[test]
fn samples_outside_memory() {
    let m = contained("(return (i32.const 65500))", "");
    assert!(
        m.starts_with(
            "bad: process returned samples at 0xffdc..0x101dc, outside its 65536-byte memory"
        ),
        "{m}"
    );
}

#[test]
fn nan_and_infinity() {
    let m = contained("(return (call $fill (f32.const nan)))", "");
    assert!(
        m.starts_with("bad: process produced a non-finite sample (NaN or infinity)"),
        "{m}"
    );
    let m = contained("(return (call $fill (f32.const -inf)))", "");
    assert!(
        m.starts_with("bad: process produced a non-finite sample (NaN or infinity)"),
        "{m}"
    );
}

#[test]
fn an_absurd_level_is_muted_after_one_block_and_limited_meanwhile() {
    let dir = tempdir();
    let mut r = engine();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    r.load(&write(
        dir.path(),
        "bad.wat",
        &faulty(40, "(return (call $fill (f32.const 100)))", ""),
    ))
    .unwrap();
    let x = r.render(SR as usize);
    let notices = r.take_notices();
    let (clock, message) = notices
        .iter()
        .find_map(|n| match n {
            Notice::Faulted { clock, message, .. } => Some((*clock as usize, message.clone())),
            _ => None,
        })
        .expect("a fault");
    assert_eq!(clock, 41 * BLOCK, "muted on the second loud block");
    assert!(
        message.starts_with(
            "bad: output stayed above +24 dBFS for more than a block (peak +40.0 dBFS)"
        ),
        "{message}"
    );
    assert!(
        peak(&x) <= 1.0,
        "the master held the loud block under 0 dBFS: {}",
        peak(&x)
    );
    // Once the limiter has released (well under a second), the sine is exact again.
    for (n, &s) in x.iter().enumerate().skip(clock + SR as usize / 2) {
        assert!((s as f64 - ideal_sine(n)).abs() < 1e-5, "frame {n}");
    }
}

#[test]
fn a_memory_bomb_gets_a_failed_grow_reported_once() {
    let dir = tempdir();
    let mut r = engine();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    // Grow by 16 MiB until refused, every block.
    let bomb = "(block $b (loop $l (br_if $b (i32.eq (memory.grow (i32.const 256)) (i32.const -1))) (br $l)))";
    r.load(&write(dir.path(), "bomb.wat", &faulty(10, bomb, "")))
        .unwrap();
    let x = r.render(SR as usize / 2);
    let notices = r.take_notices();
    let refusals: Vec<_> = notices
        .iter()
        .filter_map(|n| match n {
            Notice::GrowRefused { signal, message } if signal == "bomb" => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(refusals.len(), 1, "reported once: {notices:?}");
    assert_eq!(
        refusals[0],
        &format!(
            "bomb: a memory grow was refused: the module is over its 256 MiB memory limit ({})",
            dir.path().join("bomb.wat").display()
        )
    );
    assert_eq!(
        faults(&notices),
        0,
        "a refused grow is the module's problem, not a fault"
    );
    // The bomb keeps playing its 0.1 beside the sine.
    for (n, &s) in x.iter().enumerate() {
        assert!((s as f64 - ideal_sine(n) - 0.1).abs() < 1e-5, "frame {n}");
    }
}

#[test]
fn a_hanging_init_is_stopped_and_holds_back_no_one() {
    hanging_init_is_stopped();
}

/// A hanging `init` is stopped after its CPU budget and the sine beside it
/// loads and plays sample-exact (also run under load by `timing`).
pub(crate) fn hanging_init_is_stopped() {
    let dir = tempdir();
    std::fs::copy(
        repo_root().join("examples/wat/sine.wat"),
        dir.path().join("sine.wat"),
    )
    .unwrap();
    write(
        dir.path(),
        "hang.wat",
        &fixtures::module("", "(loop $l (br $l)) (i32.const 1)", "(i32.const 0)"),
    );
    let mut r = engine();
    let items: Vec<(String, std::path::PathBuf)> = ["hang", "sine"]
        .iter()
        .map(|n| (n.to_string(), dir.path().join(format!("{n}.wat"))))
        .collect();
    let results = r.control().load_files(&items);
    let err = results[0]
        .as_ref()
        .expect_err("the hanging init is rejected")
        .to_string();
    assert_eq!(
        err,
        "`init` used 500ms of CPU time without returning (runaway loop?)"
    );
    assert!(results[1].is_ok(), "the sine loads");
    let x = r.render(SR as usize / 4);
    for (n, &s) in x.iter().enumerate() {
        assert!((s as f64 - ideal_sine(n)).abs() < 1e-5, "frame {n}");
    }
}

#[test]
fn a_bad_save_soon_after_a_good_one_rolls_back_with_its_state() {
    let dir = tempdir();
    let mut r = engine();
    let path = dir.path().join("lead.wat");
    // Version 1: counts blocks in its state.
    std::fs::write(&path, counter(&[("n", 8)], "n", 1024)).unwrap();
    r.load(&path).unwrap();
    let a = r.render(100 * BLOCK);
    assert_eq!(count_of(a[a.len() - 1]), 100);
    // Version 2 carries the count, then traps after a few blocks.
    let bad = counter(&[("n", 8)], "n", 1024).replace(
        "(i32.store (global.get $counter)",
        "(if (i32.gt_s (i32.load (global.get $counter)) (i32.const 105)) (then unreachable))\n    (i32.store (global.get $counter)",
    );
    std::fs::write(&path, bad).unwrap();
    r.load(&path).unwrap();
    let b = r.render(50 * BLOCK);
    let notices = r.take_notices();
    assert!(notices.iter().any(|n| matches!(n, Notice::Faulted { message, .. } if message.contains("trap: wasm `unreachable`"))), "{notices:?}");
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::RolledBack { signal, .. } if signal == "lead")),
        "{notices:?}"
    );
    // Blocks counting 101..106 come from version 2 (carried count); it traps
    // on the next. Then version 1 is back with its own state (100 at the
    // swap), fading in over 10 ms (4 blocks), and counts on.
    let counts: Vec<i64> = b.chunks(BLOCK).map(|c| count_of(c[BLOCK - 1])).collect();
    assert_eq!(&counts[..6], &[101, 102, 103, 104, 105, 106]);
    assert_eq!(counts[6], 0, "the faulting block is silent");
    assert!(
        counts[7] > 0 && counts[7] < 101,
        "fading back in: {}",
        counts[7]
    );
    assert_eq!(
        counts[11], 105,
        "the last good version resumed with its state"
    );
    assert_eq!(counts[49], 143);
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn a_bad_save_long_after_the_last_good_one_stays_muted_until_the_next_save() {
    let dir = tempdir();
    let mut r = Renderer::with_settings(Settings {
        channels: 1,
        rollback: Duration::from_millis(100),
        ..Settings::default()
    })
    .unwrap();
    let path = dir.path().join("lead.wat");
    std::fs::write(&path, faulty(1_000_000, "", "")).unwrap();
    r.load(&path).unwrap();
    r.render(SR as usize / 10);
    std::fs::write(&path, faulty(100, "(unreachable)", "")).unwrap();
    r.load(&path).unwrap();
    let x = r.render(SR as usize / 2);
    assert!(
        !r.take_notices()
            .iter()
            .any(|n| matches!(n, Notice::RolledBack { .. }))
    );
    assert!(x[120 * BLOCK..].iter().all(|&s| s == 0.0), "muted");
    // A new save plays again.
    std::fs::write(&path, faulty(1_000_000, "", "").replace("0.1", "0.2")).unwrap();
    r.load(&path).unwrap();
    let y = r.render(SR as usize / 10);
    assert!((y[y.len() - 1] - 0.2).abs() < 1e-6);
}

#[test]
fn a_file_over_the_size_cap_is_refused_before_it_is_read() {
    let dir = tempdir();
    let path = dir.path().join("huge.wasm");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(65 << 20).unwrap();
    let mut r = engine();
    let err = format!("{:#}", r.load(&path).unwrap_err());
    assert!(
        err.ends_with(
            "the file is 68157440 bytes, above the 67108864-byte limit for a signal module"
        ),
        "{err}"
    );
}

#[test]
fn claims_that_overflow_are_rejected() {
    let text = fixtures::module(
        r#"(import "lel:signal/host@0.1.0" "claim" (func $claim (param i32 i32 i32 i32) (result i32)))
  (func (export "state-ptr") (result i32) (i32.const 1024))
  (func (export "state-len") (result i32) (i32.const 1024))
  (data (i32.const 16) "k")"#,
        "(drop (call $claim (i32.const 16) (i32.const 1) (i32.const -16) (i32.const 16))) (i32.const 1)",
        "(i32.const 0)",
    );
    let mut r = engine();
    let err = format!("{:#}", r.load_bytes("big", text.as_bytes()).unwrap_err());
    assert_eq!(
        err,
        "big: state region of 1024 bytes cannot hold claim \"k\" of 4294967280 bytes (enlarge the module's state region)"
    );
}

#[test]
fn faults_and_rollbacks_leave_the_fault_free_path_allocation_free() {
    // Loads, swaps, crossfades, removals, traps, NaN and a rollback, all under
    // the counting guard: zero allocations outside fault paths, and the
    // fault-path allocations are measured. No version is dropped on the
    // audio thread.
    let dir = tempdir();
    let mut r = Renderer::with_settings(Settings {
        channels: 2,
        xfade: Duration::from_millis(20),
        check_alloc: true,
        ..Settings::default()
    })
    .unwrap();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    r.load(&repo_root().join("examples/wat/stereo.wat"))
        .unwrap();
    let lead = dir.path().join("lead.wat");
    for (i, text) in [
        fixtures::sine(440.0, 0.2),
        fixtures::sine(550.0, 0.2),
        faulty(5, "(unreachable)", ""),
        fixtures::sine(660.0, 0.2),
        faulty(5, "(return (call $fill (f32.const nan)))", ""),
        faulty(5, "(loop $l (br $l))", ""),
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(&lead, text).unwrap();
        r.load(&lead)
            .unwrap_or_else(|e| panic!("version {i}: {e:#}"));
        r.render(SR as usize / 5);
    }
    r.unload("stereo");
    r.render(SR as usize / 5);
    let notices = r.take_notices();
    assert!(
        notices
            .iter()
            .filter(|n| matches!(n, Notice::RolledBack { .. }))
            .count()
            >= 3,
        "{notices:?}"
    );
    let stats = r.control().stats();
    assert_eq!(
        stats.violations.load(Ordering::Relaxed),
        0,
        "the fault-free path never allocates"
    );
    let fault_allocs = stats.fault_allocations.load(Ordering::Relaxed);
    assert!(
        fault_allocs > 0,
        "traps allocate (in wasmtime), and that is counted: {fault_allocs}"
    );
    println!("allocations on fault paths: {fault_allocs} for 2 traps");
    assert_eq!(
        lel_host::testing::DROPPED_ON_AUDIO_THREAD.load(Ordering::Relaxed),
        0
    );
    assert!(
        lel_host::testing::DROPPED.load(Ordering::Relaxed) > 0,
        "retired versions were dropped"
    );
}

#[test]
fn render_stops_only_a_real_runaway_and_says_so_in_its_exit_status() {
    let dir = tempdir();
    std::fs::copy(
        repo_root().join("examples/wat/sine.wat"),
        dir.path().join("sine.wat"),
    )
    .unwrap();
    write(dir.path(), "bass.wat", &faulty(10, "(loop $l (br $l))", ""));
    let wav = dir.path().join("out.wav");
    let out = std::process::Command::new(lel_host_bin())
        .args([
            "render",
            "--seconds",
            "0.5",
            "--channels",
            "1",
            "--runaway-seconds",
            "0.05",
            "-o",
        ])
        .arg(&wav)
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "bass: process used 50 ms of CPU time in one call without returning (runaway loop?)"
        ),
        "{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a muted signal fails the render"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("rendered 0.5 s to")
            && last
                .contains("but 1 signal muted (bass): the file is not what the modules would play"),
        "the last line says so: {last}"
    );
    let (_, _, x) = read_wav(&wav);
    assert_eq!(x.len(), SR as usize / 2, "the whole length was rendered");
    for (n, &s) in x.iter().enumerate().skip(10 * BLOCK) {
        assert!(
            (s as f64 - ideal_sine(n)).abs() < 1e-5,
            "frame {n}: the sine plays on"
        );
    }
    let bad = std::process::Command::new(lel_host_bin())
        .args(["render", "--runaway-seconds", "0", "-o"])
        .arg(&wav)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("--runaway-seconds 0 is out of range (0.001 to 3600)")
    );
}

#[test]
fn run_keeps_a_configurable_share_of_the_block_as_the_call_budget() {
    let bad = std::process::Command::new(lel_host_bin())
        .args(["run", "--budget", "0", "--device", "none", "."])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("--budget 0 is out of range (1 to 400 percent of the block period)")
    );
}

#[test]
fn overflowing_queues_lose_events_and_leak_versions_but_never_free_on_the_audio_thread() {
    // The control side stops draining: 1,200 swaps pile up 1,200 events and
    // 1,200 retired versions against queues of 1,024.
    let (mut control, mut mixer) = lel_host::testing::Control::new(Settings {
        channels: 1,
        check_alloc: true,
        cache_dir: None,
        ..Settings::default()
    })
    .unwrap();
    let versions = [fixtures::sine(440.0, 0.5), fixtures::sine(441.0, 0.5)];
    let binaries: Vec<Vec<u8>> = versions
        .iter()
        .map(|t| wat::parse_str(t).unwrap())
        .collect();
    let mut out = vec![0.0f32; BLOCK];
    for round in 0..6 {
        for i in 0..200 {
            control
                .load("lead", &binaries[(round * 200 + i) % 2], None)
                .unwrap();
        }
        mixer.render(&mut out);
    }
    let stats = control.stats().clone();
    assert!(
        stats.lost_events.load(Ordering::Relaxed) > 0,
        "events were lost"
    );
    assert!(
        stats.leaked.load(Ordering::Relaxed) > 0,
        "versions were leaked, not dropped"
    );
    assert_eq!(
        stats.violations.load(Ordering::Relaxed),
        0,
        "and nothing was freed on the audio thread"
    );
    // Draining again works, and the music goes on.
    control.poll();
    control
        .load(
            "lead",
            &wat::parse_str(fixtures::sine(660.0, 0.5)).unwrap(),
            None,
        )
        .unwrap();
    let mut x = vec![0.0f32; SR as usize / 2];
    mixer.render(&mut x);
    assert!((dominant_frequency(&x, SR) - 660.0).abs() < 1.0);
}
