//! What `lel-host run` reads from a watched folder, and when: special files
//! (FIFOs, links to devices, link loops, folders with a module's name) are
//! refused with a message and never block; hidden and editor lock files are
//! ignored. Each case runs beside a clean sine that must come out of the
//! recording sample-exact.

use std::path::Path;
use std::time::Duration;

use crate::fixtures;
use crate::live::{LiveRun, SR, assert_sine_from_onset};
use crate::util::*;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

/// The special files of one round, named with `tag`.
fn make_special_files(music: &Path, tag: &str) {
    mkfifo(&music.join(format!("fifo{tag}.wasm")));
    std::os::unix::fs::symlink("/dev/zero", music.join(format!("zero{tag}.wasm"))).unwrap();
    let lp = music.join(format!("loop{tag}.wasm"));
    std::os::unix::fs::symlink(&lp, &lp).unwrap();
    std::fs::create_dir(music.join(format!("dir{tag}.wasm"))).unwrap();
    // An editor's temp file and an Emacs lock file (a dangling link).
    std::fs::write(
        music.join(format!(".tmp{tag}.wat")),
        fixtures::sine(440.0, 0.5),
    )
    .unwrap();
    std::os::unix::fs::symlink("user@host.1234:1", music.join(format!(".#sine{tag}.wat"))).unwrap();
}

fn expect_refusals(log: &str, music: &Path, tag: &str) {
    let m = music.display();
    for (name, why) in [
        (
            "fifo",
            "not a regular file but a FIFO (named pipe); only regular files are loaded",
        ),
        (
            "zero",
            "not a regular file but a character device; only regular files are loaded",
        ),
        (
            "loop",
            "a loop of symbolic links (or a chain too long to follow); only regular files are loaded",
        ),
        (
            "dir",
            "not a regular file but a folder; only regular files are loaded",
        ),
    ] {
        let line = format!("{name}{tag}: rejected: {m}/{name}{tag}.wasm: {why}");
        assert!(log.contains(&line), "want {line:?} in:\n{log}");
        assert_eq!(
            log.matches(&format!("{name}{tag}: rejected")).count(),
            1,
            "reported once:\n{log}"
        );
    }
    assert!(!log.contains(".tmp"), "temp files are ignored:\n{log}");
    assert!(!log.contains(".#"), "lock files are ignored:\n{log}");
}

#[test]
fn special_hidden_and_lock_files_are_refused_or_ignored_and_the_sine_plays_on_exactly() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    make_special_files(&music, "");
    let m = music.to_str().unwrap();
    let run = LiveRun::start(dir.path(), &[m, "--device", "none", "--seconds", "2"], &[])
        .expect_rejections();
    run.wait_for("playing on the silent clock", Duration::from_secs(20));
    // The same again while playing: the watcher sees them appear.
    make_special_files(&music, "2");
    run.wait_for("dir2: rejected", Duration::from_secs(10));
    run.wait_for("fifo2: rejected", Duration::from_secs(10));
    // `--seconds` still ends the run, and the recording is finalised.
    let (log, x) = run.finish();
    expect_refusals(&log, &music, "");
    expect_refusals(&log, &music, "2");
    assert!(x.len() >= SR as usize, "{} frames recorded", x.len());
    assert_sine_from_onset(&x, 0.5);
}

#[test]
fn ctrl_c_stops_a_run_whose_folder_holds_a_fifo() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    mkfifo(&music.join("pipe.wasm"));
    let m = music.to_str().unwrap();
    let run = LiveRun::start(dir.path(), &[m, "--device", "none"], &[]).expect_rejections();
    run.wait_for("playing on the silent clock", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let (log, x) = run.interrupt();
    assert!(log.contains("pipe: rejected"), "{log}");
    assert!(
        log.contains("recorded "),
        "the recording was finalised:\n{log}"
    );
    assert_sine_from_onset(&x, 0.5);
}

/// `lel-host render` of `folder` for `seconds` (mono), returning stderr, the
/// exit code and the samples.
fn render_folder(folder: &Path, seconds: &str, extra: &[&str]) -> (String, Option<i32>, Vec<f32>) {
    let wav = folder.with_extension("wav");
    let out = std::process::Command::new(lel_host_bin())
        .args(["render", "--channels", "1", "--seconds", seconds])
        .args(extra)
        .arg("-o")
        .arg(&wav)
        .arg(folder)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (_, _, x) = read_wav(&wav);
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
        x,
    )
}

#[test]
fn a_compile_bomb_is_rejected_by_its_function_count_and_the_sine_plays_on() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    let bomb = fixtures::module(&"(func)".repeat(50_000), "(i32.const 1)", "(i32.const 0)");
    std::fs::write(music.join("bomb.wat"), bomb).unwrap();
    let (log, code, x) = render_folder(&music, "0.5", &[]);
    let want = format!(
        "bomb: rejected: {}/bomb.wat: the module defines 50002 functions, above the limit of 10000 per signal (no hand-written or SDK-built signal comes near it; compiling it would take seconds and hundreds of MB)",
        music.display()
    );
    assert!(log.contains(&want), "want {want:?} in:\n{log}");
    assert_eq!(code, Some(1), "a rejected file is an error:\n{log}");
    assert_exact_sine(&x, SR);
}

#[test]
fn wat_text_over_16_mib_is_refused_before_it_is_parsed_and_the_sine_plays_on() {
    // Valid WAT, padded with a comment to just over 16 MiB: parsing that
    // much text would take seconds and hundreds of MB.
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    let mut big = fixtures::sine(220.0, 0.5);
    big.push_str(";; ");
    big.push_str(&"x".repeat((16 << 20) - big.len() + 1));
    big.push('\n');
    std::fs::write(music.join("big.wat"), &big).unwrap();
    let (log, code, x) = render_folder(&music, "0.2", &[]);
    let want = format!(
        "big: rejected: {}/big.wat: the WAT text is {} bytes, above the 16777216-byte limit for text (parsing it would take seconds and hundreds of MB); give lel-host the binary `.wasm` (`wasm-tools parse` or your compiler writes it)",
        music.display(),
        big.len()
    );
    assert!(log.contains(&want), "want {want:?} in:\n{log}");
    assert_eq!(code, Some(1), "{log}");
    assert_exact_sine(&x, SR);
}

#[test]
fn a_thousand_signals_in_a_folder_all_play() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    let quiet = fixtures::sine(440.0, 0.0004);
    for i in 0..1000 {
        std::fs::write(music.join(format!("s{i:04}.wat")), &quiet).unwrap();
    }
    let (log, code, x) = render_folder(&music, "0.1", &[]);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(log.matches(": loaded (").count(), 1000, "{log}");
    // A thousand sines in phase: one sine at 0.4, up to float rounding.
    for (n, &s) in x.iter().enumerate() {
        assert!(
            (s as f64 - sine_at(440.0, 0.4, n, SR)).abs() < 1e-4,
            "frame {n}: {s}"
        );
    }
}

#[test]
fn max_signals_leaves_out_the_last_files_by_name_and_names_each() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    for name in ["e", "c", "a", "d", "b"] {
        std::fs::write(
            music.join(format!("{name}.wat")),
            fixtures::sine(440.0, 0.1),
        )
        .unwrap();
    }
    for _ in 0..2 {
        let (log, code, x) = render_folder(&music, "0.1", &["--max-signals", "3"]);
        assert_eq!(code, Some(1), "{log}");
        for name in ["a", "b", "c"] {
            assert!(log.contains(&format!("{name}: loaded (")), "{log}");
        }
        for name in ["d", "e"] {
            let want = format!(
                "{name}: rejected: {}/{name}.wat: left out: 3 signals play already, the most at once (`--max-signals`); remove one or raise the limit",
                music.display()
            );
            assert!(log.contains(&want), "want {want:?} in:\n{log}");
        }
        for (n, &s) in x.iter().enumerate() {
            assert!(
                (s as f64 - sine_at(440.0, 0.3, n, SR)).abs() < 1e-5,
                "frame {n}"
            );
        }
    }
}

#[test]
fn the_stream_starts_at_once_and_a_slow_init_or_a_compile_bomb_delays_no_one() {
    let dir = tempdir();
    slow_starters_delay_no_one(dir.path(), "idle");
}

/// A sine, a 0.9 s `init` and a compile bomb in the folder at the start of
/// `run` (with a cold compiled-module cache): the stream starts at once, the
/// bomb is rejected, and the sine is heard within 100 ms of the stream's
/// start, sample-exact from its first frame. Also run under load
/// (`timing.rs`).
pub fn slow_starters_delay_no_one(dir: &Path, what: &str) {
    let music = dir.join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    // An `init` that counts down 3.2 billion times: 0.8 to 1 s of CPU time
    // on this machine (a slower one stops it at the 1 s limit), then plays
    // silence.
    let slow = fixtures::module(
        "",
        "(local $i i32) (local.set $i (i32.const 0xC0000000)) (loop $l (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $l (local.get $i))) (i32.const 1)",
        "(i32.const 0)",
    );
    std::fs::write(music.join("slow.wat"), slow).unwrap();
    let bomb = fixtures::module(&"(func)".repeat(50_000), "(i32.const 1)", "(i32.const 0)");
    std::fs::write(music.join("bomb.wat"), bomb).unwrap();
    let m = music.to_str().unwrap();
    let cache = dir.join("cache");
    let run = LiveRun::start(
        dir,
        &[m, "--device", "none"],
        &[("LEL_CACHE_DIR", cache.as_path())],
    )
    .expect_rejections();
    // Under load the slow `init` (judged by its CPU time) takes seconds of
    // wall time: play until it is done, then stop as Ctrl-C would.
    run.wait_for("slow: ", Duration::from_secs(60));
    let (log, x) = run.interrupt();
    let line = |needle: &str| {
        log.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{what}: no {needle:?} in:\n{log}"))
    };
    assert!(
        line("playing on the silent clock") < line("sine: loaded ("),
        "{what}: the stream started before any signal was ready:\n{log}"
    );
    assert!(line("sine: loaded (") < line("slow: "), "{what}:\n{log}");
    assert!(line("bomb: rejected") < line("slow: "), "{what}:\n{log}");
    let onset = assert_sine_from_onset(&x, 0.5);
    println!(
        "{what}: the sine is heard {:.1} ms after the stream's start; log:\n{log}",
        onset as f64 * 1e3 / SR as f64
    );
    assert!(
        onset < SR as usize / 10,
        "{what}: the sine is heard {onset} frames after the stream's start (want < 100 ms):\n{log}"
    );
}

/// Each thread of a running process: its name, nice value and whether its
/// policy is SCHED_FIFO (from `/proc/PID/task/*/stat`).
fn threads_of(pid: u32) -> Vec<(String, i64, bool)> {
    tasks_of(pid)
        .into_iter()
        .map(|(name, nice, policy)| (name, nice, policy == 1))
        .collect()
}

/// Each thread of a running process: its name, nice value and scheduling
/// policy (1 FIFO, 5 IDLE).
fn tasks_of(pid: u32) -> Vec<(String, i64, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = match std::fs::read_to_string(task.unwrap().path().join("stat")) {
            Ok(s) => s,
            Err(_) => continue, // the thread ended meanwhile
        };
        // `pid (comm) state ...`: comm may hold spaces; fields count from
        // after its closing parenthesis (field 3 is the state).
        let open = stat.find('(').unwrap();
        let close = stat.rfind(')').unwrap();
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let nice: i64 = fields[19 - 3].parse().unwrap();
        let policy: u32 = fields[41 - 3].parse().unwrap();
        out.push((name, nice, policy));
    }
    out
}

#[test]
fn compiles_run_on_a_bounded_pool_of_threads_below_the_audio() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    // A module big enough that its compile lasts long enough to be seen
    // (tens of milliseconds, also at normal priority on an idle machine).
    let big = fixtures::module(
        &"(func (result f32) (f32.mul (f32.const 1) (f32.const 2)))".repeat(4_000),
        "(i32.const 1)",
        "(i32.const 0)",
    );
    std::fs::write(music.join("big.wat"), big).unwrap();
    let cache = dir.path().join("cache");
    let run = LiveRun::start(
        dir.path(),
        &[
            music.to_str().unwrap(),
            "--device",
            "none",
            "--seconds",
            "2",
        ],
        &[("LEL_CACHE_DIR", cache.as_path())],
    );
    // Each module compiles on a crew of `lel-compile-N` threads: look for
    // them until `big` is loaded.
    let mut compile = Vec::new();
    let start = std::time::Instant::now();
    while !run.log().contains("big: loaded (") {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", run.log());
        compile.extend(
            threads_of(run.pid())
                .into_iter()
                .filter(|t| t.0.starts_with("lel-compile")),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let threads = threads_of(run.pid());
    let (_, x) = run.finish();
    assert_sine_from_onset(&x, 0.5);
    let cores = std::thread::available_parallelism().unwrap().get();
    let named = |prefix: &str| -> Vec<&(String, i64, bool)> {
        threads.iter().filter(|t| t.0.starts_with(prefix)).collect()
    };
    assert!(!compile.is_empty(), "a compile thread was seen");
    // Each load in flight compiles on a crew of one thread per core of its
    // own (the global pool, for the warm-up module, one more); at most two
    // idle crews are kept.
    assert!(
        named("lel-compile").len() <= (cores + 2).clamp(4, 16) * (cores.min(8) + 1),
        "a bounded number of compile threads: {threads:?}"
    );
    let load = named("lel-load");
    assert!(
        !load.is_empty() && load.len() <= (cores + 2).clamp(4, 16),
        "a bounded pool of loaders: {threads:?}"
    );
    // Below the audio: at nice 5, or at normal priority when the audio
    // thread (here the silent clock) is real-time, which no normal thread
    // can preempt; never real-time themselves.
    let audio_realtime = threads.iter().any(|(name, _, fifo)| {
        *fifo && (name.starts_with("lel-clock") || name.starts_with("lel-audio"))
    });
    for (name, nice, fifo) in compile.iter().chain(load.iter().copied()) {
        assert!(
            (*nice >= 5 || audio_realtime) && !fifo,
            "{name} runs below the audio (nice {nice}, real-time {fifo}, audio real-time {audio_realtime})"
        );
    }
    // Only the threads of the stream and the clocks are real-time (when the
    // system allows it), always above every compile and load.
    for (name, _, fifo) in &threads {
        if *fifo {
            assert!(
                ["lel-clock", "lel-cpu-clock", "lel-pool", "lel-audio"]
                    .iter()
                    .any(|p| name.starts_with(p)),
                "{name} is real-time: {threads:?}"
            );
        }
    }
    // The threads that run guest code unnamed: none (rayon's own pool would
    // show as `lel-host`, the process's name, next to the main thread).
    assert_eq!(
        named("lel-host").len(),
        1,
        "only the main thread keeps the process's name: {threads:?}"
    );
}

#[test]
fn identical_bytes_loaded_at_once_are_compiled_once() {
    // Three signals with the same module, all asked for at the start: their
    // loads run side by side, and one compile serves all three. The module
    // carries 3,000 extra functions so that its compile (tens of ms) surely
    // overlaps the other loads.
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    let padding = "(func (result f32) (f32.mul (f32.const 1) (f32.const 2)))".repeat(3_000);
    let mut sine = fixtures::sine(440.0, 0.1);
    let end = sine.rfind(')').unwrap();
    sine.insert_str(end, &padding);
    for name in ["a", "b", "c"] {
        std::fs::write(music.join(format!("{name}.wat")), &sine).unwrap();
    }
    let wav = dir.path().join("out.wav");
    let out = std::process::Command::new(lel_host_bin())
        .args(["render", "--channels", "1", "--seconds", "0.2", "-o"])
        .arg(&wav)
        .arg(&music)
        .env("LEL_CACHE_DIR", "off")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches(": loaded (").count(), 3, "{log}");
    assert_eq!(
        log.matches(", compiled in ").count(),
        1,
        "one compile:\n{log}"
    );
    assert_eq!(
        log.matches(", from the in-memory cache").count(),
        2,
        "the other two waited for it:\n{log}"
    );
    // Three identical sines in phase.
    let (_, _, x) = read_wav(&wav);
    for (n, &s) in x.iter().enumerate() {
        assert!(
            (s as f64 - sine_at(440.0, 0.3, n, SR)).abs() < 1e-5,
            "frame {n}: {s}"
        );
    }
}

/// One function of `depth` nested blocks (within the size limits).
fn nested_blocks(depth: usize) -> String {
    fixtures::module(
        &format!(
            "(func {} {})",
            "block ".repeat(depth),
            "i32.const 0 br_if 0 end ".repeat(depth)
        ),
        "(i32.const 1)",
        "(i32.const 0)",
    )
}

#[test]
fn a_module_whose_compile_holds_too_much_memory_is_rejected_naming_the_limit_and_the_sine_plays_on()
{
    // 10,000 nested blocks hold about 46 MiB while they compile, the sine
    // about 0.2 MiB (`LEL_LOG=debug lel-host check` prints what each compile
    // held). Under the default limit the nest compiles; with a limit of
    // 16 MiB it is rejected, naming the limit, while a sine beside it plays
    // on exactly.
    let nest = nested_blocks(10_000);
    let mut plain = lel_host::Renderer::with_settings(lel_host::Settings {
        channels: 1,
        cache_dir: None,
        ..lel_host::Settings::default()
    })
    .unwrap();
    plain
        .load_bytes("nest", nest.as_bytes())
        .expect("compiles under the default limit");
    let mut r = lel_host::Renderer::with_settings(lel_host::Settings {
        channels: 1,
        cache_dir: None,
        check_alloc: true,
        compile_memory: 16 << 20,
        ..lel_host::Settings::default()
    })
    .unwrap();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    let mut x = r.render(SR as usize / 10);
    let e = r.load_bytes("nest", nest.as_bytes()).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "nest: does not compile: it used more than 16 MiB of memory compiling, the limit per module (no hand-written or SDK-built signal comes near it); simplify it (fewer locals, less nesting, smaller functions)"
    );
    x.extend(r.render(SR as usize / 10));
    assert_exact_sine(&x, SR);
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn a_module_that_compiles_too_long_is_rejected_naming_the_limit_and_the_sine_plays_on() {
    // 40,000 nested blocks (280 KB, within the size limits) take about 5 s
    // of CPU to compile here (30,000: 3 s; the time grows with the square
    // of the depth); with a compile limit of 0.3 s it is rejected after
    // that much CPU time, while a sine beside it plays on exactly.
    let mut r = lel_host::Renderer::with_settings(lel_host::Settings {
        channels: 1,
        cache_dir: None,
        check_alloc: true,
        compile_limit: Duration::from_millis(300),
        ..lel_host::Settings::default()
    })
    .unwrap();
    r.load(&repo_root().join("examples/wat/sine.wat")).unwrap();
    let mut x = r.render(SR as usize / 10);
    let nest = nested_blocks(40_000);
    let e = r.load_bytes("nest", nest.as_bytes()).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "nest: does not compile: it used more than 0.3 s of CPU time compiling, the limit per module (no hand-written or SDK-built signal comes near it); simplify it (fewer locals, less nesting, smaller functions)"
    );
    // wasmtime cannot stop a compile: it runs on to its end, at idle
    // priority only.
    let abandoned: Vec<_> = tasks_of(std::process::id())
        .into_iter()
        .filter(|t| t.0.starts_with("lel-compile"))
        .collect();
    let idle = abandoned.iter().filter(|t| t.2 == 5).count();
    assert!(
        idle > 0,
        "the abandoned compile runs at SCHED_IDLE: {abandoned:?}"
    );
    // The same bytes again: the failure is remembered, nothing compiles (a
    // second compile would be one more idle thread by the time it fails).
    let again = r.load_bytes("nest", nest.as_bytes()).unwrap_err();
    assert_eq!(format!("{again:#}"), format!("{e:#}"));
    let idle_now = tasks_of(std::process::id())
        .into_iter()
        .filter(|t| t.0.starts_with("lel-compile") && t.2 == 5)
        .count();
    assert!(
        idle_now <= idle,
        "compiled again: {idle_now} idle compiles, {idle} before"
    );
    // A second stopped compile (other bytes), then a third module: with two
    // stopped compiles still running it is not compiled now, and its bytes
    // are not held against it.
    let over = "it used more than 0.3 s of CPU time compiling, the limit per module";
    let other = nest.replace("(func block", "(func nop block");
    let e = r.load_bytes("nest", other.as_bytes()).unwrap_err();
    assert!(format!("{e:#}").contains(over), "{e:#}");
    let third = nest.replace("(func block", "(func nop nop block");
    let e = r.load_bytes("third", third.as_bytes()).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "third: not compiled now: 2 earlier compiles that ran over their time limit are still finishing in the background (at idle priority, holding their memory); save it again once they are done"
    );
    x.extend(r.render(SR as usize / 10));
    // Let them finish sooner (back to normal priority) and wait for them.
    let stopped = idle_compiles();
    // Each compile has a crew of threads (`lel-compile-0` and more, one per
    // core), kept for the next compile unless it was stopped. Other tests
    // of this process may have stopped compiles of their own right now
    // (the threads are the process's): at least this test's two.
    let crews = stopped
        .iter()
        .filter(|(name, _)| name == "lel-compile-0")
        .count();
    assert!(crews >= 2, "two stopped compiles: {stopped:?}");
    for (_, tid) in &stopped {
        let _ = std::process::Command::new("chrt")
            .args(["-o", "-p", "0", tid])
            .status();
    }
    let start = std::time::Instant::now();
    while stopped
        .iter()
        .any(|(_, tid)| std::path::Path::new("/proc/self/task").join(tid).exists())
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the stopped compiles never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Compiled again: over the limit this time, not refused from memory.
    let e = r.load_bytes("third", third.as_bytes()).unwrap_err();
    assert!(format!("{e:#}").contains(over), "{e:#}");
    x.extend(r.render(SR as usize / 10));
    assert_exact_sine(&x, SR);
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

/// This process's stopped compiles: the names and ids of its `lel-compile`
/// threads (each compile's crew, `lel-compile-N`) at SCHED_IDLE.
fn idle_compiles() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let name = &stat[open + 1..close];
        if name.starts_with("lel-compile") && fields[41 - 3] == "5" {
            let tid = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name.to_string(), tid));
        }
    }
    out
}
