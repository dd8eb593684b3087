//! Time under load: with two CPU-bound busy processes running for the whole
//! test, and again while `cargo build` of a guest runs, lel-host must keep
//! real time in `run` (0 late blocks for a sine, a sample-exact recording),
//! render heavy modules completely in `render` (no real-time deadline), play
//! an overload in `run` without muting anyone while counting the lost time,
//! and still stop a real runaway, a trap and a hanging `init` within their
//! CPU budgets. The heavy modules' cost is calibrated on this machine at test
//! time (CPU time of a short render), not hard-coded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lel_host::Renderer;
use lel_host::Settings;

use crate::fixtures;
use crate::util::*;

const SR: u32 = 48_000;
const BLOCK: usize = 128;

/// One load scenario at a time: two at once would be twice the load asked for.
static SERIAL: Mutex<()> = Mutex::new(());

/// Background load: child processes in a process group of their own,
/// killed (the whole group) when dropped.
struct Load {
    children: Vec<Child>,
    what: &'static str,
}

impl Load {
    /// Two processes spinning on a CPU each.
    fn busy() -> Load {
        let children = (0..2)
            .map(|_| {
                group(Command::new("sh").args(["-c", "while :; do :; done"]))
                    .spawn()
                    .expect("start a busy `sh` loop")
            })
            .collect();
        Load {
            children,
            what: "two busy processes",
        }
    }

    /// `cargo build` of a guest (the Rust `sine` example for wasm32), clean
    /// and again, for as long as the test runs. Each finished build appends
    /// a line to `builds`.
    fn cargo(target: &Path, builds: &Path) -> Load {
        let script = format!(
            "while :; do cargo build --offline --release --target wasm32-unknown-unknown -p sine --target-dir '{t}' -q && echo built >> '{b}'; cargo clean --target-dir '{t}' -q; done",
            t = target.display(),
            b = builds.display()
        );
        let child = group(Command::new("sh").args(["-c", &script]))
            .current_dir(repo_root())
            .spawn()
            .expect("start cargo build in the background");
        Load {
            children: vec![child],
            what: "cargo build",
        }
    }
}

fn group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SAFETY: kill(2) on the process group this test created.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    Duration::from_nanos(lel_host::testing::thread_cpu_ns())
}

/// `host/benches/heavy.wat` with `work` filter steps per frame and level `amp`.
fn heavy(work: u32, amp: f32) -> String {
    fixtures::example("host/benches/heavy.wat")
        .replace(
            "(global $work i32 (i32.const 256))",
            &format!("(global $work i32 (i32.const {work}))"),
        )
        .replace("(f32.const 0.25)", &format!("(f32.const {amp:?})"))
}

/// The `$work` that makes heavy.wat use `share` of a 128-frame block at
/// 48 kHz on this machine: its CPU time per block is measured (before any
/// load starts) with 256 and with 2,048 steps, which gives the cost of a
/// step and the block's fixed cost (the host's part, large in a debug
/// build), and scaled. (Scaling the 256-step time alone counted the fixed
/// cost as steps: once the stop checks made a step cheaper, the modules
/// came out at 29 % instead of 40 %.)
fn calibrate(share: f64) -> u32 {
    let per_block = |work: u32| {
        let mut r = Renderer::with_settings(Settings {
            channels: 1,
            threads: 1,
            cache_dir: None,
            ..Settings::default()
        })
        .expect("engine");
        r.load_bytes("heavy", heavy(work, 0.25).as_bytes())
            .expect("heavy.wat loads");
        r.render(BLOCK * 50);
        let blocks = 400;
        let t0 = thread_cpu();
        r.render(BLOCK * blocks);
        (thread_cpu() - t0).as_secs_f64() / blocks as f64
    };
    let (low, high) = (per_block(256), per_block(2048));
    let per_step = ((high - low) / (2048.0 - 256.0)).max(1e-9);
    let fixed = (low - 256.0 * per_step).max(0.0);
    let period = BLOCK as f64 / SR as f64;
    let work = ((share * period - fixed) / per_step).round().max(0.0) as u32;
    println!(
        "calibration: {:.3} us per block per step, {:.1} us fixed per block: {work} steps for {:.0} % of the block",
        per_step * 1e6,
        fixed * 1e6,
        share * 100.0
    );
    work.max(8)
}

/// A canary held up at least this long means the machine stalled.
const STALL: Duration = Duration::from_millis(3);

/// A stall this long can make a call that needs about 1 ms use up a
/// budget of 10.67 ms (four 128-frame blocks) of CPU time, as the guest
/// thread's CPU clock counts it.
const MUTE_STALL: Duration = Duration::from_millis(8);

/// One real-time thread per core (SCHED_FIFO 90, above lel-host's audio
/// and ticker threads, pinned), each waking every millisecond and keeping
/// the longest it was held up past its wake-up time.
struct Canaries {
    worst_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Canaries {
    fn start() -> Canaries {
        use std::sync::atomic::Ordering;
        let worst_us = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cores = std::thread::available_parallelism().unwrap().get();
        let threads = (0..cores)
            .map(|core| {
                let (worst_us, stop) = (worst_us.clone(), stop.clone());
                std::thread::spawn(move || {
                    // SAFETY: plain system calls on the calling thread with
                    // valid, initialised arguments.
                    let ok = unsafe {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(core, &mut set);
                        let pinned = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
                        let param = libc::sched_param { sched_priority: 90 };
                        pinned == 0 && libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0
                    };
                    assert!(
                        ok,
                        "the canary on core {core} needs real-time priority (run as root)"
                    );
                    while !stop.load(Ordering::Relaxed) {
                        let due = Instant::now() + Duration::from_millis(1);
                        std::thread::sleep(Duration::from_millis(1));
                        let late = Instant::now().saturating_duration_since(due);
                        worst_us.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Canaries {
            worst_us,
            stop,
            threads,
        }
    }

    /// The longest any canary was held up since the start or the last reset.
    fn worst(&self) -> Duration {
        Duration::from_micros(self.worst_us.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn reset(&self) {
        self.worst_us.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Canaries {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lel_host() -> Command {
    let mut c = Command::new(lel_host_bin());
    c.env("NO_COLOR", "1").env("LEL_LOG", "info");
    c
}

/// Start a command with its output collected; `finish` waits for it.
fn start(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lel-host")
}

fn finish(child: Child, what: &str) -> (bool, String) {
    let out = child.wait_with_output().expect(what);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

/// `N late blocks, S s of audio lost` and `ran R s` from a `--stats` line.
fn stats_of(log: &str) -> (u64, f64, f64) {
    let line = log
        .lines()
        .find(|l| l.starts_with("stats: "))
        .unwrap_or_else(|| panic!("no stats line:\n{log}"));
    let late = line
        .split("; ")
        .find_map(|p| p.split_once(" late blocks, ").map(|(n, _)| n))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("late blocks in {line}"));
    let lost = line
        .split(" late blocks, ")
        .nth(1)
        .and_then(|r| r.split(" s of audio lost").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("lost time in {line}"));
    let ran = line
        .strip_prefix("stats: ran ")
        .and_then(|r| r.split(" s;").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("run time in {line}"));
    (late, lost, ran)
}

/// The first `overload:` line: the total share and each signal's, in percent.
fn overload_of(log: &str) -> (f64, Vec<(String, f64)>) {
    let line = log
        .lines()
        .find_map(|l| l.split("overload: the signals need ").nth(1))
        .unwrap_or_else(|| panic!("no overload line:\n{log}"));
    let (total, rest) = line.split_once(" % of the block (").expect(line);
    let list = rest.split(')').next().expect(line);
    let shares = list
        .split(", ")
        .map(|p| {
            let (n, v) = p.trim_end_matches(" %").rsplit_once(' ').expect(p);
            (n.to_string(), v.parse::<f64>().expect(p))
        })
        .collect();
    (total.parse().expect(line), shares)
}

/// Every scenario of the issue, with `load` running throughout.
fn under(load: Load, dir: &Path, works: (u32, u32)) -> Load {
    let (work30, work40) = works;
    // Phase 0: a slow `init` and a compile bomb at the start delay no one:
    // the sine is heard within 100 ms of the stream's start.
    let start_dir = dir.join("start");
    std::fs::create_dir_all(&start_dir).unwrap();
    crate::loading::slow_starters_delay_no_one(&start_dir, load.what);
    let sine = repo_root().join("examples/wat/sine.wat");
    // Phase 1 (20 s): a sine in `run` on the silent clock, and a 30 % module
    // rendered for 20 s, side by side.
    let played = dir.join("sine.wav");
    let sine_run = || {
        start(
            lel_host()
                .args(["run", "--device", "none", "--seconds", "20", "--stats"])
                .arg("--record")
                .arg(&played)
                .arg(&sine),
        )
    };
    let canaries = Canaries::start();
    let run = sine_run();
    let heavy30 = write(dir, "heavy30.wat", &heavy(work30, 0.25));
    let rendered = dir.join("heavy30.wav");
    let render = start(
        lel_host()
            .args(["render", "--seconds", "20", "--channels", "1", "-o"])
            .arg(&rendered)
            .arg(&heavy30),
    );
    let (ok, mut log) = finish(run, "run");
    assert!(ok, "{}: run failed:\n{log}", load.what);
    // This machine is a virtual machine on a shared host: now and then it
    // does not run at all for some milliseconds (seen: one late block in
    // about half of the 20-second runs of some hours, 5 to 90 ms lost
    // while the signals needed 0 % of the block, with the lel-host of
    // before this session as with today's). A canary real-time thread on
    // each core, above the audio, sees such stalls: a run with late blocks
    // counts only if no canary was held up meanwhile; such a run is tried
    // again, up to 8 runs in all (one evening here, 3 runs in a row had
    // late blocks each while a core stalled for 12 to 23 ms).
    for attempt in 2..=8 {
        if stats_of(&log).0 == 0 {
            break;
        }
        let stall = canaries.worst();
        assert!(
            stall >= STALL,
            "{}: late blocks while no core stalled (the canaries were held up {stall:?} at most):\n{log}",
            load.what
        );
        println!(
            "{}: run {} had late blocks while a core stalled for {stall:?}, trying again:\n{log}",
            load.what,
            attempt - 1
        );
        canaries.reset();
        let (ok, again) = finish(sine_run(), "run");
        assert!(ok, "{}: run failed:\n{again}", load.what);
        log = again;
    }
    let (late, lost, _) = stats_of(&log);
    assert_eq!(late, 0, "{}: late blocks:\n{log}", load.what);
    assert_eq!(lost, 0.0, "{}: lost time:\n{log}", load.what);
    let (ch, rate, x) = read_wav(&played);
    assert_eq!((ch, rate), (2, SR));
    let x = channel(&x, 2, 0);
    assert!(x.len() as f64 >= 19.5 * SR as f64, "{} frames", x.len());
    continuous_sine(&x[joined(&x)..], load.what);
    let (ok, log) = finish(render, "render");
    assert!(ok, "{}: render of a 30 % module failed:\n{log}", load.what);
    assert!(!log.contains("muted"), "{}:\n{log}", load.what);
    complete(&rendered, 20.0, load.what);

    // Phase 2: three 40 % modules: `run` plays them all, reports the
    // overload with each share and counts the lost time; `render` renders
    // them completely.
    let three = dir.join("three");
    std::fs::create_dir_all(&three).unwrap();
    for (name, amp) in [("bass", 0.2), ("pad", 0.15), ("lead", 0.1)] {
        write(&three, &format!("{name}.wat"), &heavy(work40, amp));
    }
    let three_run = || {
        start(
            lel_host()
                // One thread: the three must share it (with a worker each,
                // the machine's two cores could meet their need).
                .args(["run", "--device", "none", "--seconds", "8", "--stats"])
                .args(["--threads", "1"])
                .arg("--record")
                .arg(dir.join("three.wav"))
                .arg(&three),
        )
    };
    let rendered3 = dir.join("three-render.wav");
    let three_render = || {
        start(
            lel_host()
                .args(["render", "--seconds", "3", "--channels", "1", "-o"])
                .arg(&rendered3)
                .arg(&three),
        )
    };
    // Nothing is muted: each call is judged by the CPU time it used. A
    // stall of the virtual machine during a call can still count as the
    // call's CPU time (seen: "process exceeded its 10.67 ms budget" for a
    // module that needs 1 ms, while phase 1's canaries saw a core stall
    // 12 ms); a run with a mute counts only if no canary was held up for
    // most of the budget meanwhile, and is tried again, up to 4 in all.
    canaries.reset();
    let (mut run, mut render) = (three_run(), three_render());
    let mut attempt = 1;
    let (log, render_log) = loop {
        let (ok, log) = finish(run, "run");
        assert!(ok, "{}: run failed:\n{log}", load.what);
        let (ok, render_log) = finish(render, "render");
        assert!(
            ok,
            "{}: render of 3 x 40 % failed:\n{render_log}",
            load.what
        );
        if !log.contains("muted") && !render_log.contains("muted") {
            break (log, render_log);
        }
        let stall = canaries.worst();
        assert!(
            attempt < 4 && stall >= MUTE_STALL,
            "{}: muted while no core stalled for {MUTE_STALL:?} (the canaries were held up {stall:?} at most; attempt {attempt}):\n{log}\n{render_log}",
            load.what
        );
        println!(
            "{}: attempt {attempt} muted a signal while a core stalled for {stall:?}, trying again:\n{log}\n{render_log}",
            load.what
        );
        attempt += 1;
        canaries.reset();
        (run, render) = (three_run(), three_render());
    };
    drop(canaries);
    let (total, shares) = overload_of(&log);
    assert!(total >= 100.0, "{log}");
    let mut names: Vec<&str> = shares.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["bass", "lead", "pad"], "{log}");
    for (name, share) in &shares {
        assert!(
            (20.0..=80.0).contains(share),
            "{}: {name} {share} % (calibrated for 40 %)",
            load.what
        );
    }
    let (late, lost, ran) = stats_of(&log);
    assert!(
        late > 0 && lost > 0.0,
        "{}: lost time counted:\n{log}",
        load.what
    );
    let (_, _, rec) = read_wav(&dir.join("three.wav"));
    let played = rec.len() as f64 / 2.0 / SR as f64;
    assert!(
        (played + lost - ran).abs() < 0.3,
        "{}: played {played:.2} s + lost {lost:.2} s should be the {ran:.2} s run",
        load.what
    );
    assert!(!render_log.contains("muted"), "{render_log}");
    complete(&rendered3, 3.0, load.what);

    // Phase 3: the isolation scenarios still hold (judged by CPU time).
    let m = crate::isolation::contained("(loop $l (br $l))", "");
    assert!(
        m.starts_with("bad: process exceeded its 1.33 ms budget (runaway loop?)"),
        "{m}"
    );
    let m = crate::isolation::contained("(unreachable)", "");
    assert!(m.starts_with("bad: trap: wasm `unreachable`"), "{m}");
    crate::isolation::hanging_init_is_stopped();
    load
}

/// Where a recorded sine has fully joined: 0.1 s past its first sound (the
/// fade-in of a signal that joins a running stream). From there the sine
/// follows the shared clock exactly.
fn joined(x: &[f32]) -> usize {
    let first = x.iter().position(|s| *s != 0.0).expect("the sine played");
    first + SR as usize / 10
}

/// A 440 Hz sine of amplitude 0.5 with no phase jump or gap anywhere: no
/// sample-to-sample step beyond the sine's own, the level everywhere.
fn continuous_sine(x: &[f32], what: &str) {
    assert!(
        max_step(x) <= sine_step_bound(0.5, 440.0, SR),
        "{what}: the recorded sine jumps (step {})",
        max_step(x)
    );
    for (b, block) in x.chunks_exact(BLOCK * 8).enumerate() {
        assert!(
            (rms(block) - 0.5 / 2f64.sqrt()).abs() < 0.05,
            "{what}: level {} at block {b}",
            rms(block)
        );
    }
    let f = dominant_frequency(&x[..SR as usize / 2], SR);
    assert!((f - 440.0).abs() < 0.5, "{what}: {f} Hz");
}

/// A mono render of `seconds`, with sound in every block after the first
/// 10 ms (no silent stretch).
fn complete(wav: &Path, seconds: f64, what: &str) {
    let (_, rate, x) = read_wav(wav);
    assert_eq!(x.len(), (seconds * rate as f64).round() as usize, "{what}");
    for (b, block) in x.chunks(BLOCK).enumerate().skip(4) {
        assert!(
            rms(block) > 0.03,
            "{what}: block {b} of {} is silent",
            wav.display()
        );
    }
}

fn setup() -> (tempfile::TempDir, (u32, u32)) {
    let dir = tempdir();
    let works = (calibrate(0.30), calibrate(0.40));
    (dir, works)
}

#[test]
fn time_holds_with_two_busy_processes() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, works) = setup();
    let load = Load::busy();
    drop(under(load, dir.path(), works));
}

#[test]
fn time_holds_while_cargo_builds_a_guest() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, works) = setup();
    let target: PathBuf = dir.path().join("target");
    let builds = dir.path().join("builds.txt");
    let started = Instant::now();
    let load = Load::cargo(&target, &builds);
    drop(under(load, dir.path(), works));
    let n = std::fs::read_to_string(&builds)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    assert!(
        n >= 1,
        "no guest build finished in {:.0} s: the load was not there (is the target installed? `rustup target add wasm32-unknown-unknown`)",
        started.elapsed().as_secs_f64()
    );
}

/// Without permission for real-time scheduling (run as user `nobody`, or with
/// `RLIMIT_RTPRIO` 0 when not root), `run` says once what to do and plays on.
#[test]
fn a_refused_real_time_priority_is_one_clear_line_and_the_music_plays_on() {
    let dir = tempdir();
    let sine = dir.path().join("sine.wat");
    std::fs::copy(repo_root().join("examples/wat/sine.wat"), &sine).unwrap();
    let wav = dir.path().join("played.wav");
    // The unprivileged user must be able to write the recording.
    run_ok(
        Command::new("chmod").arg("-R").arg("a+rwx").arg(dir.path()),
        "chmod",
        "",
    );
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c
    } else {
        let mut c = Command::new("prlimit");
        c.args(["--rtprio=0", "--"]);
        c
    };
    cmd.arg(lel_host_bin())
        .args(["run", "--device", "none", "--seconds", "1.5", "--record"])
        .arg(&wav)
        .arg(&sine)
        .env("HOME", dir.path())
        .env("LEL_CACHE_DIR", "off")
        .env("NO_COLOR", "1");
    let out = run_ok(
        &mut cmd,
        "lel-host run without real-time permission",
        "setpriv and prlimit come with util-linux: `apt-get install util-linux`",
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("real-time priority was refused"))
        .collect();
    assert_eq!(refusals.len(), 1, "one line:\n{log}");
    for hint in ["ulimit -r", "`audio` group", "rtkit"] {
        assert!(
            refusals[0].contains(hint),
            "says what to do ({hint}):\n{log}"
        );
    }
    let (_, _, x) = read_wav(&wav);
    let x = channel(&x, 2, 0);
    assert!(x.len() >= SR as usize, "it played on: {} frames", x.len());
    continuous_sine(&x[joined(&x)..], "no real-time priority");
}

/// `--shed`: after 3 overloaded seconds in a row the most expensive signal
/// is muted, and the log says which; the others play on.
#[test]
fn shed_mutes_the_most_expensive_signal_after_a_sustained_overload() {
    let work = calibrate(0.45);
    let dir = tempdir();
    for (name, w) in [("bass", work), ("pad", work), ("lead", work * 3 / 2)] {
        write(dir.path(), &format!("{name}.wat"), &heavy(w, 0.1));
    }
    let (ok, log) = finish(
        start(
            lel_host()
                .args([
                    "run",
                    "--device",
                    "none",
                    "--seconds",
                    "7",
                    "--threads",
                    "1",
                ])
                .arg("--shed")
                .arg(dir.path()),
        ),
        "run --shed",
    );
    assert!(ok, "{log}");
    let (total, _) = overload_of(&log);
    assert!(total >= 100.0, "{log}");
    let shed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("overload: muted "))
        .collect();
    assert!(
        shed.first()
            .is_some_and(|l| l.contains("overload: muted lead (")
                && l.contains("to keep up (--shed); save its file again to bring it back")),
        "the most expensive one, named:\n{log}"
    );
}
