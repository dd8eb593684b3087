//! Rendering on several threads: `--threads 2` must give output and events
//! bit-identical to `--threads 1`, through swaps, crossfades, faults,
//! rollbacks, unloads and control events, with the pool's workers really
//! taking part.

use std::time::Duration;

use lel_host::Renderer;
use lel_host::{Notice, Settings};

use crate::fixtures::{self, counter, faulty, sine};
use crate::util::*;

const SR: u32 = 48_000;

fn engine(threads: usize) -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 2,
        // Long blocks and a generous budget: a first call into a fresh
        // instance can take milliseconds on a loaded machine, and a time-out
        // there would differ between runs, not between thread counts.
        block: 512,
        call_budget: 4.0,
        threads,
        // Share every block with two signals or more, however light.
        parallel_min: Duration::ZERO,
        xfade: Duration::from_millis(20),
        check_alloc: true,
        init_timeout: Duration::from_millis(500),
        ..Settings::default()
    })
    .expect("engine")
}

/// One scripted session: signals start, swap with crossfades, fault (alone,
/// mid-crossfade, shortly after a swap, by running away), roll back and
/// unload. Returns the audio, the notices (without the timing-dependent
/// `Slow` ones) and the blocks rendered by more than one thread.
fn session(threads: usize) -> (Vec<f32>, Vec<Notice>, u64) {
    let mut r = engine(threads);
    assert_eq!(r.threads(), threads);
    let mut out = Vec::new();
    let load = |r: &mut Renderer, name: &str, text: &str| {
        r.load_bytes(name, text.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    };
    load(&mut r, "a", &sine(440.0, 0.2));
    load(&mut r, "b", &sine(660.0, 0.2));
    load(&mut r, "c", &counter(&[("n", 4)], "n", 64));
    load(
        &mut r,
        "stereo",
        &fixtures::example("examples/wat/stereo.wat"),
    );
    load(
        &mut r,
        "heavy",
        &fixtures::example("host/benches/heavy.wat").replace("256", "16"),
    );
    // Faults on its 30th block with no version to go back to: silenced.
    load(&mut r, "lonely", &faulty(30, "unreachable", ""));
    out.extend(r.render(SR as usize / 10));
    // Control events inside blocks.
    let c = r.clock();
    r.set_gain("a", 0.5, c + 100).unwrap();
    r.mute("b", true, c + 300).unwrap();
    r.mute("b", false, c + 2000).unwrap();
    r.solo("stereo", true, c + 3000).unwrap();
    r.solo("stereo", false, c + 4000).unwrap();
    // A swap with a crossfade; a carried counter swap.
    load(&mut r, "a", &sine(550.0, 0.2));
    load(&mut r, "c", &counter(&[("n", 4), ("m", 8)], "n", 64));
    out.extend(r.render(SR as usize / 20));
    // A bad version that faults mid-crossfade: the old one is taken back.
    load(&mut r, "b", &faulty(3, "unreachable", ""));
    out.extend(r.render(SR as usize / 10));
    // A bad version faulting after its crossfade, within the rollback
    // window: back to the previous version.
    load(
        &mut r,
        "a",
        &faulty(20, "(i32.div_s (i32.const 1) (i32.const 0)) drop", ""),
    );
    out.extend(r.render(SR as usize / 5));
    // A runaway (stopped by its time budget), then an unload while another
    // signal crossfades.
    load(&mut r, "c", &faulty(2, "(loop $x (br $x))", ""));
    out.extend(r.render(SR as usize / 10));
    load(&mut r, "stereo", &sine(330.0, 0.1));
    assert!(r.unload("heavy"));
    out.extend(r.render(SR as usize / 5));
    let notices = r
        .take_notices()
        .into_iter()
        .filter(|n| !matches!(n, Notice::Slow { .. }))
        .map(|n| match n {
            // How a runaway was judged (by CPU time, or by wall time when
            // the machine was too busy to give it the CPU) depends on the
            // machine's load, not on the thread count: the event itself
            // (signal, version, clock) must match, not its diagnosis.
            Notice::Faulted {
                signal,
                version,
                clock,
                message,
            } if signal == "c" && message.contains("budget") => Notice::Faulted {
                signal,
                version,
                clock,
                message: "runaway stopped".into(),
            },
            n => n,
        })
        .collect();
    assert_eq!(audio_thread_allocations(&mut r), 0, "threads {threads}");
    (out, notices, r.parallel_blocks())
}

fn count(notices: &[Notice], f: impl Fn(&Notice) -> bool) -> usize {
    notices.iter().filter(|n| f(n)).count()
}

#[test]
fn two_threads_render_bit_identical_audio_and_events_through_swaps_faults_and_rollbacks() {
    let (one, one_notices, one_shared) = session(1);
    let (two, two_notices, two_shared) = session(2);
    assert_eq!(one_shared, 0, "one thread never shares a block");
    let blocks = one.len() / 2 / 512;
    assert!(
        two_shared as usize > blocks / 2,
        "the worker took part in only {two_shared} of {blocks} blocks"
    );
    // The session did what it says, so the comparison covers it.
    let n = &one_notices;
    assert!(
        count(n, |n| matches!(n, Notice::Swapped { .. })) >= 6,
        "{n:#?}"
    );
    assert_eq!(
        count(n, |n| matches!(n, Notice::Faulted { .. })),
        4,
        "{n:#?}"
    );
    assert_eq!(
        count(n, |n| matches!(n, Notice::RolledBack { .. })),
        3,
        "{n:#?}"
    );
    assert_eq!(
        count(n, |n| matches!(n, Notice::Unloaded { .. })),
        1,
        "{n:#?}"
    );
    assert!(all_finite(&one) && rms(&one) > 0.05, "real audio");
    assert_eq!(one.len(), two.len());
    let first_difference = one
        .iter()
        .zip(&two)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(
        first_difference, None,
        "the outputs differ from sample {first_difference:?} on"
    );
    let differing: Vec<_> = one_notices
        .iter()
        .zip(&two_notices)
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        differing.is_empty() && one_notices.len() == two_notices.len(),
        "the events differ (one thread, two threads): {differing:#?}\n{one_notices:#?}\n{two_notices:#?}"
    );
}

/// `render --threads 1` and `--threads 2` write the same bytes, with
/// heavy signals (shared between threads), a stereo one and one that faults.
#[test]
fn render_command_with_two_threads_writes_the_same_file_as_with_one() {
    let dir = tempdir();
    let heavy = fixtures::example("host/benches/heavy.wat");
    for i in 0..3 {
        write(
            dir.path(),
            &format!("heavy{i}.wat"),
            &heavy.replace("0.25", &format!("0.{}", 1 + i)),
        );
    }
    write(
        dir.path(),
        "stereo.wat",
        &fixtures::example("examples/wat/stereo.wat"),
    );
    write(dir.path(), "bad.wat", &faulty(20, "unreachable", ""));
    let render = |threads: &str| {
        let wav = dir.path().join(format!("out{threads}.wav"));
        let out = std::process::Command::new(lel_host_bin())
            .arg("render")
            .arg(dir.path())
            .args(["--seconds", "1", "--block", "1024"])
            .args(["--threads", threads, "-o"])
            .arg(&wav)
            .output()
            .expect("lel-host render");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        // `bad` traps and is muted: the render says so and fails.
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(
            log.lines()
                .last()
                .is_some_and(|l| l.contains("but 1 signal muted (bad)")),
            "{log}"
        );
        (std::fs::read(&wav).expect("the WAV file"), log)
    };
    let (one, log_one) = render("1");
    let (two, log_two) = render("2");
    assert!(
        log_one.contains("on 1 thread (0 blocks shared)"),
        "{log_one}"
    );
    let shared: u64 = log_two
        .split("on 2 threads (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no thread summary in: {log_two}"));
    assert!(
        shared > 20,
        "only {shared} of 50 blocks were shared: {log_two}"
    );
    assert!(
        log_one.contains("bad") && log_two.contains("bad"),
        "the fault is reported"
    );
    let (_, _, samples) = read_wav(&dir.path().join("out1.wav"));
    assert!(rms(&samples) > 0.05, "real audio");
    assert!(one == two, "the WAV files differ");
}

/// Without `--threads`: `render` uses one thread per core, at most one per
/// signal; `run` one per core (signals may be added while it plays).
#[test]
fn the_default_is_a_thread_per_core_and_render_uses_at_most_one_per_signal() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let dir = tempdir();
    let quiet = sine(440.0, 0.2);
    let render = |signals: usize| {
        let music = dir.path().join(format!("music{signals}"));
        std::fs::create_dir(&music).unwrap();
        for i in 0..signals {
            write(&music, &format!("s{i}.wat"), &quiet);
        }
        let out = std::process::Command::new(lel_host_bin())
            .arg("render")
            .arg(&music)
            .args(["--seconds", "0.1", "-o"])
            .arg(dir.path().join(format!("out{signals}.wav")))
            .output()
            .expect("lel-host render");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        let (_, _, x) = read_wav(&dir.path().join(format!("out{signals}.wav")));
        let left: Vec<f32> = x.iter().step_by(2).copied().collect();
        for (n, &s) in left.iter().enumerate() {
            let want = signals as f64 * sine_at(440.0, 0.2, n, 48_000);
            assert!((s as f64 - want).abs() < 1e-5, "frame {n}: {s}");
        }
        log
    };
    for signals in [1, 3] {
        let log = render(signals);
        let threads = cores.min(signals);
        let want = format!(
            "on {threads} thread{} (",
            if threads == 1 { "" } else { "s" }
        );
        assert!(
            log.contains(&want),
            "{signals} signals: want {want:?} in {log}"
        );
    }
    let run = crate::live::LiveRun::start(
        dir.path(),
        &[
            dir.path().join("music1").to_str().unwrap(),
            "--device",
            "none",
            "--seconds",
            "0.5",
            "--stats",
        ],
        &[],
    );
    let (log, _) = run.finish();
    let want = format!("; {cores} render threads, ");
    assert!(log.contains(&want), "run: want {want:?} in {log}");
}

#[test]
fn threads_out_of_range_is_a_clear_error() {
    let dir = tempdir();
    let out = std::process::Command::new(lel_host_bin())
        .arg("render")
        .arg(repo_root().join("examples/wat/sine.wat"))
        .args(["--threads", "0", "-o"])
        .arg(dir.path().join("x.wav"))
        .output()
        .expect("run lel-host");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--threads 0 is out of range"), "{err}");
}

/// `run --threads 2` on the silent clock: heavy signals are shared with the
/// worker block after block, nothing allocates on either thread, and what
/// was played is the music.
#[test]
fn run_with_two_threads_shares_heavy_blocks_without_allocating() {
    use crate::live::LiveRun;
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), sine(440.0, 0.3)).unwrap();
    // 256 steps a frame: about 100 us a block each here, so that the three
    // together are worth sharing (64 were enough while epoch checks made
    // the same loop cost twice as much).
    let heavy = fixtures::example("host/benches/heavy.wat");
    for i in 0..3 {
        std::fs::write(
            music.join(format!("heavy{i}.wat")),
            heavy.replace("0.25", "0.02"),
        )
        .unwrap();
    }
    let m = music.to_str().unwrap();
    let run = LiveRun::start(
        dir.path(),
        &[
            m,
            "--device",
            "none",
            "--seconds",
            "2",
            "--stats",
            "--threads",
            "2",
        ],
        &[],
    );
    run.wait_for("playing on the silent clock", Duration::from_secs(20));
    let (log, x) = run.finish();
    let line = log
        .lines()
        .find(|l| l.starts_with("stats: "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(" 0 audio-thread allocations (0 on fault paths)"),
        "{line}"
    );
    assert!(line.contains("; 2 render threads, "), "{line}");
    let shared: u64 = line
        .split("2 render threads, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(shared > 50, "only {shared} blocks shared: {line}");
    let tail = &x[x.len() / 2..];
    assert!(
        (dominant_frequency(tail, SR) - 440.0).abs() < 1.0,
        "the sine is what was played: {} Hz",
        dominant_frequency(tail, SR)
    );
}

/// A mono module that counts down 200,000 loop iterations in every call
/// (a fraction of a millisecond), outputs silence, and traps in its 6th call.
fn busy_then_trap() -> String {
    r#"(module
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func (export "init") (param i32 i32) (result i32) (i32.const 1))
  (func (export "process") (param $frames i32) (param $clock i64) (result i32)
    (local $i i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (local.set $i (i32.const 200000))
    (loop $l
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (local.get $i)))
    (if (i32.gt_u (global.get $n) (i32.const 5)) (then unreachable))
    (i32.const 1024)))
"#
    .to_string()
}

/// The allocation count covers every thread that renders: 16 signals that
/// each take a fraction of a millisecond and all trap in the same block (a
/// trap allocates inside wasmtime, counted on the fault path), rendered with
/// 1 and with 2 threads, every block shared. The worker takes its share of
/// those calls, traps included, and its allocations are counted like the
/// audio thread's: the same fault-path count either way, and none outside
/// fault paths.
#[test]
fn allocations_on_a_worker_are_counted_like_the_audio_threads() {
    let count = |threads: usize| {
        let mut r = engine(threads);
        for i in 0..16 {
            r.load_bytes(&format!("t{i}"), busy_then_trap().as_bytes())
                .unwrap();
        }
        r.render(12 * 512);
        assert_eq!(faults(&r.take_notices()), 16);
        let stats = r.control().stats().clone();
        (
            stats
                .fault_allocations
                .load(std::sync::atomic::Ordering::Relaxed),
            stats.violations.load(std::sync::atomic::Ordering::Relaxed),
            r.parallel_blocks(),
        )
    };
    let (one, one_violations, _) = count(1);
    let (two, two_violations, shared) = count(2);
    println!("fault-path allocations: {one} on one thread, {two} on two ({shared} blocks shared)");
    // Blocks 0 to 5 (the traps) were shared; after them nothing plays.
    assert_eq!(
        shared, 6,
        "the worker was called for every block with signals"
    );
    assert!(one >= 16, "each trap allocates: {one}");
    assert_eq!(
        two, one,
        "every trap's allocations counted, whichever thread ran it"
    );
    assert_eq!((one_violations, two_violations), (0, 0));
}
