//! `lel-host run` as a musician uses it: a child process playing a watched
//! folder on the silent clock (`--device none`) and recording what it played,
//! while the test rewrites, replaces, renames, half-writes, adds and removes
//! module files the way real tools do. The recording is decoded and checked.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fixtures;
use crate::util::*;

pub const SR: u32 = 48_000;

/// A running `lel-host run` whose stderr is collected line by line.
pub struct LiveRun {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub record: PathBuf,
    /// The exit status `finish` expects: success, or 1 when a file was
    /// rejected at start.
    success: bool,
}

impl LiveRun {
    /// Start `lel-host run <args> --record <dir>/played.wav`.
    pub fn start(dir: &Path, args: &[&str], envs: &[(&str, &Path)]) -> LiveRun {
        let record = dir.join("played.wav");
        let mut cmd = Command::new(lel_host_bin());
        cmd.arg("run").args(args).arg("--record").arg(&record);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.env("LEL_LOG", "info").env("NO_COLOR", "1");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lel-host run");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock()
                        .unwrap()
                        .push(lel_host::testing::strip_ansi(&line));
                }
            });
        }
        LiveRun {
            child,
            log,
            record,
            success: true,
        }
    }

    /// Some files are rejected at start: the run ends with exit status 1.
    pub fn expect_rejections(mut self) -> Self {
        self.success = false;
        self
    }

    /// The process id of `lel-host run`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait until a log line contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "no log line with {needle:?} within {timeout:?}; log:\n{}",
            self.log()
        );
    }

    /// Stop it as Ctrl-C would (SIGINT), then [`LiveRun::finish`].
    pub fn interrupt(self) -> (String, Vec<f32>) {
        run_ok(
            Command::new("kill")
                .arg("-INT")
                .arg(self.child.id().to_string()),
            "kill -INT",
            "",
        );
        self.finish()
    }

    /// Wait for the process to end (it was started with `--seconds`).
    pub fn finish(mut self) -> (String, Vec<f32>) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the readers drain
                assert_eq!(
                    status.code(),
                    Some(if self.success { 0 } else { 1 }),
                    "lel-host run's exit status ({status}):\n{}",
                    self.log()
                );
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "lel-host run did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (channels, rate, samples) = read_wav(&self.record);
        assert_eq!((channels, rate), (2, SR));
        (self.log(), channel(&samples, 2, 0))
    }
}

/// Where a first version of a sine starts in `x`: `run` starts the stream
/// at once and each signal joins in the first block after it is ready, so
/// the sine (phase 0 at its own first frame, whose sample is sin 0 = 0)
/// starts a few blocks in, and `x` is silent before that. Returns the frame
/// of the sine's first frame.
pub fn sine_onset(x: &[f32]) -> usize {
    let first = x
        .iter()
        .position(|&s| s != 0.0)
        .unwrap_or_else(|| panic!("the sine never played ({} frames)", x.len()));
    first.saturating_sub(1)
}

/// From [`sine_onset`] on, `x` is `amp * sin(2 pi 440 (n - onset) / SR)`,
/// sample-exact, and silent before: returns the onset.
pub fn assert_sine_from_onset(x: &[f32], amp: f64) -> usize {
    let onset = sine_onset(x);
    for (n, &s) in x.iter().enumerate().skip(onset) {
        let want = sine_at(440.0, amp, n - onset, SR);
        assert!(
            (s as f64 - want).abs() < 1e-5,
            "frame {n} (onset {onset}): {s}, expected {want:.6}: the sine was disturbed"
        );
    }
    onset
}

/// Where `x` stops being `amp_a * sin(2 pi f (n - onset) / SR)` (from the
/// sine's onset, see [`sine_onset`]) and, from there on, is `amp_b *
/// sin(...)` with the same phase: returns the swap frame. Panics if either
/// part deviates (a phase jump, a click, a missing block).
pub fn assert_continuous_swap(x: &[f32], f: f64, amp_a: f64, amp_b: f64) -> usize {
    let onset = sine_onset(x);
    let ideal = |n: usize| sine_at(f, 1.0, n - onset, SR);
    let swap = (onset..x.len())
        .find(|&n| (x[n] as f64 - amp_a * ideal(n)).abs() > 1e-4)
        .unwrap_or_else(|| panic!("no swap: the first version played throughout"));
    for (n, &s) in x.iter().enumerate().skip(swap) {
        let err = (s as f64 - amp_b * ideal(n)).abs();
        assert!(
            err < 1e-4,
            "after the swap at frame {swap} (onset {onset}), frame {n} is {s}, expected {:.6}: the phase jumped",
            amp_b * ideal(n)
        );
    }
    swap
}

fn folder_with_sine(amp: f64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, amp)).unwrap();
    (dir, music)
}

/// [`folder_with_sine`], as a binary `sine.wasm`.
fn folder_with_wasm_sine(amp: f64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(
        music.join("sine.wasm"),
        wat::parse_str(fixtures::sine(440.0, amp)).unwrap(),
    )
    .unwrap();
    (dir, music)
}

fn run_folder(dir: &Path, music: &Path, seconds: &str) -> LiveRun {
    let m = music.to_str().unwrap();
    let run = LiveRun::start(dir, &[m, "--device", "none", "--seconds", seconds], &[]);
    run.wait_for("playing on the silent clock", Duration::from_secs(20));
    // The stream starts at once; the first version joins when it is ready.
    run.wait_for(": loaded (", Duration::from_secs(20));
    run
}

#[test]
fn rewriting_a_file_swaps_it_in_with_its_phase() {
    let (dir, music) = folder_with_sine(0.5);
    let run = run_folder(dir.path(), &music, "2.5");
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.25)).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(log.contains("ms after the file changed"), "{log}");
    let swap = assert_continuous_swap(&x, 440.0, 0.5, 0.25);
    assert!(
        swap > SR as usize / 2,
        "swapped after the rewrite, not before: {swap}"
    );
    assert!(
        x.len() >= SR as usize * 2,
        "recorded the whole run: {}",
        x.len()
    );
}

#[test]
fn cargo_style_replace_by_hard_link_is_a_reload() {
    // Start from a binary module, as cargo writes them.
    let (dir, music) = folder_with_wasm_sine(0.5);
    let run = run_folder(dir.path(), &music, "2.5");
    std::thread::sleep(Duration::from_millis(700));
    // cargo: build into deps/, then remove the old output and hard-link the new one.
    let deps = dir.path().join("deps");
    std::fs::create_dir(&deps).unwrap();
    std::fs::write(
        deps.join("sine.wasm"),
        wat::parse_str(fixtures::sine(440.0, 0.25)).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(music.join("sine.wasm")).unwrap();
    std::fs::hard_link(deps.join("sine.wasm"), music.join("sine.wasm")).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(
        !log.contains("fading out"),
        "a replace is not a removal:\n{log}"
    );
    assert!(!log.contains("unloaded"), "{log}");
    assert_continuous_swap(&x, 440.0, 0.5, 0.25);
}

#[test]
fn an_editor_renaming_a_temp_file_into_place_is_a_reload() {
    let (dir, music) = folder_with_sine(0.5);
    let run = run_folder(dir.path(), &music, "2.5");
    std::thread::sleep(Duration::from_millis(700));
    let tmp = music.join(".sine.wat.swp");
    std::fs::write(&tmp, fixtures::sine(440.0, 0.25)).unwrap();
    std::fs::rename(&tmp, music.join("sine.wat")).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(!log.contains(".swp"), "temp files are ignored:\n{log}");
    assert_continuous_swap(&x, 440.0, 0.5, 0.25);
}

#[test]
fn a_half_written_file_is_never_loaded_and_the_full_one_is() {
    use std::io::Write as _;
    let (dir, music) = folder_with_wasm_sine(0.5);
    let run = run_folder(dir.path(), &music, "2.5");
    std::thread::sleep(Duration::from_millis(600));
    let full = wat::parse_str(fixtures::sine(440.0, 0.25)).unwrap();
    let mut f = std::fs::File::create(music.join("sine.wasm")).unwrap();
    f.write_all(&full[..full.len() / 2]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    f.write_all(&full[full.len() / 2..]).unwrap();
    drop(f);
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(
        !log.contains("rejected"),
        "the partial file was retried, not reported:\n{log}"
    );
    assert_eq!(
        log.matches("sine: swapped in version").count(),
        1,
        "one swap, to the full file:\n{log}"
    );
    assert_continuous_swap(&x, 440.0, 0.5, 0.25);
}

#[test]
fn adding_a_file_fades_it_in_and_removing_one_fades_it_out() {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    // Start with a silent module so the folder has something to play.
    std::fs::write(music.join("quiet.wat"), fixtures::silent()).unwrap();
    let run = run_folder(dir.path(), &music, "3");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    run.wait_for("sine: playing", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(900));
    std::fs::remove_file(music.join("sine.wat")).unwrap();
    run.wait_for("sine: unloaded", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(log.contains("sine.wat was removed; fading out"), "{log}");
    let start = x
        .iter()
        .position(|s| s.abs() > 1e-6)
        .expect("the sine started");
    let end = x
        .iter()
        .rposition(|s| s.abs() > 1e-6)
        .expect("the sine ended");
    let bound = sine_step_bound(0.5, 440.0, SR);
    assert!(
        max_step(&x) < bound,
        "no click at start or end: step {} > {bound}",
        max_step(&x)
    );
    // ~10 ms ramps: the first 5 ms are quieter than full scale, the middle is full.
    let head = peak(&x[start..start + 240]);
    assert!(head < 0.3, "fades in: peak of the first 5 ms is {head}");
    assert!(
        (peak(&x[start + 4_800..end - 4_800]) - 0.5).abs() < 1e-3,
        "full level in between"
    );
    let tail = peak(&x[end - 240..=end]);
    assert!(tail < 0.3, "fades out: peak of the last 5 ms is {tail}");
    assert!(
        x[end + 1..].iter().all(|&s| s == 0.0),
        "silent after unloading"
    );
}

#[test]
fn a_crossfaded_swap_with_carried_state_keeps_the_level_and_is_click_free() {
    let (dir, music) = folder_with_sine(0.5);
    let m = music.to_str().unwrap();
    let run = LiveRun::start(
        dir.path(),
        &[m, "--device", "none", "--seconds", "2.5", "--xfade", "50"],
        &[],
    );
    run.wait_for("playing on the silent clock", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(700));
    // A save that sounds the same (state carried, so the two versions play
    // the same phase): the 50 ms crossfade must keep the level (equal power
    // would swell by +3.01 dB at its middle).
    let same = fixtures::resaved(&fixtures::sine(440.0, 0.5), 1);
    std::fs::write(music.join("sine.wat"), same).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(log.contains("1 state block carried"), "{log}");
    let bound = sine_step_bound(0.5, 440.0, SR);
    assert!(max_step(&x) < bound, "no click: {} > {bound}", max_step(&x));
    let first = x.iter().position(|s| s.abs() > 1e-3).unwrap();
    assert!(first < SR as usize / 10);
    // From the end of the fade-in on, every 25 ms window (11 periods) is at
    // the sine's level within 0.1 dB, through the crossfade.
    let reference = 0.5 / 2f64.sqrt();
    for (i, w) in x[first + 960..].chunks_exact(1_200).enumerate() {
        let level = db(rms(w) / reference);
        assert!(level.abs() < 0.1, "window {i}: {level:+.3} dB");
    }
    assert_eq!(dominant_frequency(&x[x.len() - 4_800..], SR).round(), 440.0);
}

#[test]
fn stats_show_swap_latency_and_no_audio_thread_allocation() {
    let (dir, music) = folder_with_sine(0.5);
    let m = music.to_str().unwrap();
    let run = LiveRun::start(
        dir.path(),
        &[
            m,
            "--device",
            "none",
            "--seconds",
            "3",
            "--stats",
            "--xfade",
            "20",
        ],
        &[],
    );
    run.wait_for("playing on the silent clock", Duration::from_secs(20));
    // Loads, swaps, crossfades, additions and removals under the counting guard.
    for (i, amp) in [0.25, 0.4, 0.3].iter().enumerate() {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, *amp)).unwrap();
        run.wait_for(
            &format!("sine: swapped in version {}", i + 2),
            Duration::from_secs(10),
        );
    }
    std::fs::write(music.join("other.wat"), fixtures::sine(660.0, 0.1)).unwrap();
    run.wait_for("other: playing", Duration::from_secs(10));
    std::fs::remove_file(music.join("other.wat")).unwrap();
    run.wait_for("other: unloaded", Duration::from_secs(10));
    let (log, _) = run.finish();
    let line = log
        .lines()
        .find(|l| l.starts_with("stats: "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("3 swaps"), "{line}");
    assert!(line.contains("file-change-to-swap latency min"), "{line}");
    assert!(
        line.contains(" 0 audio-thread allocations (0 on fault paths)"),
        "{line}"
    );
}

#[test]
fn a_faulty_module_in_run_is_muted_and_the_rest_plays_on() {
    let (dir, music) = folder_with_sine(0.5);
    std::fs::write(
        music.join("bad.wat"),
        fixtures::faulty(40, "(drop (i32.div_s (global.get $n) (i32.const 0)))", ""),
    )
    .unwrap();
    let run = run_folder(dir.path(), &music, "1.5");
    run.wait_for(
        "bad: trap: integer divide by zero in process",
        Duration::from_secs(10),
    );
    let (log, x) = run.finish();
    assert!(log.contains("bad.wat); muted"), "names the file:\n{log}");
    // Each joined when it was ready, at a block boundary: the sine from its
    // onset, and `bad` adding 0.1 for 40 blocks from its own, then nothing.
    // Find the sine's onset: the one block boundary after which what is left
    // is 0.1 or 0 on every frame.
    let residual = |onset: usize| -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(n, &s)| {
                let sine = if n < onset {
                    0.0
                } else {
                    sine_at(440.0, 0.5, n - onset, SR)
                };
                s as f64 - sine
            })
            .collect()
    };
    let only_dc = |r: &[f64]| r.iter().all(|v| v.abs() < 1e-5 || (v - 0.1).abs() < 1e-5);
    let r = (0..x.len() / 2)
        .step_by(128)
        .map(residual)
        .find(|r| only_dc(r))
        .unwrap_or_else(|| panic!("the sine is not sample-exact from any block boundary"));
    let dc: Vec<usize> = (0..r.len())
        .filter(|&n| (r[n] - 0.1).abs() < 1e-5)
        .collect();
    let (start, end) = (dc[0], dc[dc.len() - 1] + 1);
    assert_eq!(start % 128, 0, "`bad` starts at a block boundary: {start}");
    assert_eq!(
        end - start,
        40 * 128,
        "`bad` played 40 blocks, then was muted"
    );
    assert_eq!(dc.len(), end - start, "`bad` played without a gap");
}

#[test]
fn a_broken_save_is_rejected_with_the_file_named_and_the_old_version_plays_on() {
    let (dir, music) = folder_with_sine(0.5);
    let run = run_folder(dir.path(), &music, "2");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(music.join("sine.wat"), "(module (func").unwrap();
    run.wait_for("sine: rejected", Duration::from_secs(10));
    let (log, x) = run.finish();
    let line = log.lines().find(|l| l.contains("sine: rejected")).unwrap();
    assert!(
        line.contains("sine.wat: invalid WebAssembly: WAT text does not parse"),
        "{line}"
    );
    assert!(
        line.ends_with("; the playing version keeps playing"),
        "{line}"
    );
    assert_eq!(
        log.matches("sine: rejected").count(),
        1,
        "reported once, after the retries:\n{log}"
    );
    assert_sine_from_onset(&x, 0.5);
}

#[test]
fn a_watched_folder_deleted_from_under_the_watcher_is_reported_not_a_crash() {
    let (dir, music) = folder_with_sine(0.5);
    let run = run_folder(dir.path(), &music, "1.5");
    std::thread::sleep(Duration::from_millis(400));
    std::fs::remove_dir_all(&music).unwrap();
    run.wait_for("the watched folder was removed", Duration::from_secs(10));
    run.wait_for("sine: unloaded", Duration::from_secs(10));
    let (log, _) = run.finish();
    assert!(log.contains("sine.wat was removed; fading out"), "{log}");
}

/// Build a guest crate for wasm32 (release), failing with what to install.
fn cargo_wasm(krate: &Path, target: &Path) {
    run_ok(
        Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
            .current_dir(krate)
            .env("CARGO_TARGET_DIR", target),
        "cargo build of a guest crate",
        "needs the wasm32 target: rustup target add wasm32-unknown-unknown (scripts/setup does)",
    );
}

#[test]
fn watching_the_folder_cargo_builds_into_swaps_in_each_rebuild() {
    // A guest crate of its own, built by cargo into its target folder while
    // lel-host watches target/wasm32-unknown-unknown/release/.
    let dir = tempdir();
    let krate = dir.path().join("tone");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            r#"[package]
name = "tone"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
lel-guest = {{ path = "{}" }}

[profile.release]
lto = true
panic = "abort"
codegen-units = 1

[workspace]
"#,
            repo_root().join("guest-sdk").display()
        ),
    )
    .unwrap();
    std::fs::copy(repo_root().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let source = |gain: &str| {
        format!(
            "#![cfg_attr(target_arch = \"wasm32\", no_std)]\nuse lel::prelude::*;\nlel::signal!(osc(440).gain({gain}));\n"
        )
    };
    std::fs::write(krate.join("src/lib.rs"), source("0.5")).unwrap();
    let target = dir.path().join("target");
    cargo_wasm(&krate, &target);
    let release = target.join("wasm32-unknown-unknown/release");
    let run = LiveRun::start(
        dir.path(),
        &[release.to_str().unwrap(), "--device", "none"],
        &[],
    );
    run.wait_for("tone: playing", Duration::from_secs(20));
    std::fs::write(krate.join("src/lib.rs"), source("0.25")).unwrap();
    cargo_wasm(&krate, &target);
    run.wait_for("tone: swapped in version", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let (log, x) = run.interrupt();
    assert!(
        !log.contains("fading out"),
        "cargo's replace is a reload, not a removal:\n{log}"
    );
    assert!(
        log.contains("recorded "),
        "Ctrl-C finished the recording:\n{log}"
    );
    assert_continuous_swap(&x, 440.0, 0.5, 0.25);
}

#[test]
fn a_save_whose_init_hangs_does_not_hold_back_another_save() {
    let (dir, music) = folder_with_sine(0.5);
    let run = run_folder(dir.path(), &music, "60");
    std::thread::sleep(Duration::from_millis(500));
    // Both files change together; `hang`'s init never returns (stopped
    // once it used its 1 s of CPU time: later in wall time on a busy
    // machine).
    std::fs::write(
        music.join("hang.wat"),
        fixtures::module("", "(loop $l (br $l)) (i32.const 1)", "(i32.const 0)"),
    )
    .unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.25)).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    run.wait_for("hang: rejected", Duration::from_secs(30));
    let (log, x) = run.interrupt();
    let line = log
        .lines()
        .find(|l| l.contains("sine: swapped in version"))
        .unwrap();
    // The swap's own latency is printed: it was not held until the hanging
    // init's 1 s timeout (a normal reload takes milliseconds; 700 ms leaves
    // room for a loaded machine).
    let ms: f64 = line
        .split(", ")
        .find_map(|p| p.strip_suffix(" ms after the file changed"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(ms < 700.0, "the sine waited for the hanging init: {line}");
    assert!(
        log.contains("`init` used 1s of CPU time without returning (runaway loop?)"),
        "{log}"
    );
    assert_continuous_swap(&x, 440.0, 0.5, 0.25);
}

/// A folder holding `name.wat` = `text`, played by `run` on the silent clock
/// for `seconds` (plus `extra` arguments) with a compiled-module cache of
/// its own, so that every new version compiles; returns once the first
/// version has played for `settle`. The folder is `dir/music`.
fn play_new_folder(
    name: &str,
    text: &str,
    seconds: &str,
    extra: &[&str],
    settle: Duration,
) -> (tempfile::TempDir, PathBuf, LiveRun) {
    let dir = tempdir();
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join(format!("{name}.wat")), text).unwrap();
    let m = music.to_str().unwrap().to_string();
    let mut args = vec![m.as_str(), "--device", "none", "--seconds", seconds];
    args.extend_from_slice(extra);
    let cache = dir.path().join("cache");
    let run = LiveRun::start(dir.path(), &args, &[("LEL_CACHE_DIR", &cache)]);
    run.wait_for(": loaded (", Duration::from_secs(20));
    std::thread::sleep(settle);
    (dir, music, run)
}

/// `run` a folder with `name.wat` = `first` for 3 s with a session, save
/// `second` (new code: compiled for the first time, into a cache of the
/// run's own) and wait for its optimised build to take over from its fast
/// build. Returns the log and channel 0 of what played, after checking that
/// the session replays to exactly the samples that played.
fn fast_then_optimised(name: &str, first: &str, second: &str) -> (String, Vec<f32>) {
    let sessions = tempdir();
    let session = sessions.path().join("session");
    let s = session.to_str().unwrap();
    let settle = Duration::from_millis(800);
    let extra = ["--session", s, "--stats"];
    let (dir, music, run) = play_new_folder(name, first, "3", &extra, settle);
    let tmp = music.join(format!(".{name}.wat.tmp"));
    std::fs::write(&tmp, second).unwrap();
    std::fs::rename(&tmp, music.join(format!("{name}.wat"))).unwrap();
    run.wait_for(
        &format!("{name}: the optimised build of version 2 took over from its fast build"),
        Duration::from_secs(10),
    );
    let (log, x) = run.finish();
    assert!(
        log.contains(&format!(
            "{name}: swapped in version 2 (fast build, compiled in"
        )),
        "the new code played from its fast build first:\n{log}"
    );
    // `--stats` gives both latencies.
    let stats = log.lines().find(|l| l.starts_with("stats: ")).unwrap();
    assert!(
        stats.contains("1 swaps; file-change-to-swap latency min ")
            && stats.contains("; optimised builds taking over from fast builds (1): min "),
        "{stats}"
    );
    // The session replays (the optimised build from the swap on) to the
    // same samples the fast and then the optimised build played.
    let replayed = dir.path().join("replay.wav");
    run_ok(
        Command::new(lel_host_bin())
            .arg("replay")
            .arg(&session)
            .arg("-o")
            .arg(&replayed),
        "lel-host replay",
        "",
    );
    let (_, _, live) = read_wav(&dir.path().join("played.wav"));
    let (_, _, again) = read_wav(&replayed);
    let n = live.len().min(again.len());
    assert!(n > SR as usize * 4, "most of the run replayed: {n}");
    let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&live[..n]) == bits(&again[..n]),
        "the replay differs from what played:\n{log}"
    );
    (log, x)
}

/// The count each block of a [`fixtures::counter`]-like module shows, and
/// the places where it does not rise by one or stay (before, after).
fn counts_and_restarts(x: &[f32]) -> (Vec<i64>, Vec<(i64, i64)>) {
    let counts: Vec<i64> = x.iter().map(|&v| fixtures::count_of(v)).collect();
    let restarts = counts
        .windows(2)
        .filter(|w| w[1] != w[0] && w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    (counts, restarts)
}

#[test]
fn new_code_sounds_from_a_fast_build_and_the_optimised_build_takes_over_without_a_step() {
    // Version 1 counts in its block `a`; version 2 claims a new block `b`
    // and counts there from zero. Its fast build plays first and counts `b`
    // up for some blocks; the optimised build must go on from that count
    // (every claimed block taken over, new ones too), not start again.
    let (_, x) = fast_then_optimised(
        "count",
        &fixtures::counter(&[("a", 4)], "a", 1024),
        &fixtures::counter(&[("a", 4), ("b", 4)], "b", 1024),
    );
    // Block by block (128 frames each): the count rises by one per block,
    // except once, where version 2 starts its own count.
    let (counts, restarts) = counts_and_restarts(&x);
    assert_eq!(
        restarts.len(),
        1,
        "one step only, where version 2 takes over counting from 1 (the signal starts from silence, count 0, at 1): {restarts:?}"
    );
    assert_eq!(restarts[0].1, 1, "version 2 counts from 1: {restarts:?}");
    assert!(
        *counts.last().unwrap() > 100,
        "version 2 counted on to the end: {}",
        counts.last().unwrap()
    );
    // A count kept in a mutable wasm global rather than a claimed block:
    // the optimised build takes the global over too (lel-host exports a
    // module's mutable globals to itself for that), so it goes on counting
    // where the fast build was instead of starting again at the tier-up.
    let in_global = fixtures::counter(&[("a", 4)], "a", 1024)
        .replace(
            "(i32.store (global.get $counter) (i32.add (i32.load (global.get $counter)) (i32.const 1)))",
            "(global.set $n (i32.add (global.get $n) (i32.const 1)))",
        )
        .replace(
            "(i32.load (global.get $counter))) (f32.const 1e-5)",
            "(global.get $n)) (f32.const 1e-5)",
        )
        .replace(
            "(global $counter (mut i32) (i32.const 0))",
            "(global $counter (mut i32) (i32.const 0))\n  (global $n (mut i32) (i32.const 0))",
        );
    assert!(
        in_global.contains("(global.get $n)) (f32.const"),
        "fixtures::counter changed"
    );
    let (_, x) = fast_then_optimised(
        "global",
        &fixtures::counter(&[("a", 4)], "a", 1024),
        &in_global,
    );
    let (_, restarts) = counts_and_restarts(&x);
    assert_eq!(
        restarts.len(),
        1,
        "one step only, where version 2 starts its count in a global: {restarts:?}"
    );
    assert_eq!(restarts[0].1, 1, "version 2 counts from 1: {restarts:?}");
    // Floating-point DSP (the sine's f64 phase and polynomial): the fast
    // build computes the same bits as the optimised one (checked by the
    // replay), and the swap carries the phase.
    let (_, x) = fast_then_optimised(
        "sine",
        &fixtures::sine(440.0, 0.5),
        &fixtures::sine(440.0, 0.25),
    );
    assert_continuous_swap(&x, 440.0, 0.5, 0.25);
}

#[test]
fn no_fast_build_swaps_in_the_optimised_build_only() {
    let (dir, music) = folder_with_sine(0.5);
    let m = music.to_str().unwrap();
    let args = [m, "--device", "none", "--seconds", "2", "--no-fast-build"];
    let run = LiveRun::start(dir.path(), &args, &[]);
    run.wait_for(": loaded (", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(600));
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.25)).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(!log.contains("fast build"), "{log}");
    assert_continuous_swap(&x, 440.0, 0.5, 0.25);
}

#[test]
fn a_heavy_signal_plays_new_code_only_from_its_optimised_build() {
    // About 2 ms of work a block (three quarters of the 2.7 ms block here):
    // its fast build, about twice as slow, would make late blocks.
    let heavy = |n: u32| {
        fixtures::module(
            "",
            "(i32.const 1)",
            &format!(
                "(local $i i32)
                 (loop $spin
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $spin (i32.lt_u (local.get $i) (i32.const {n}))))
                 (i32.const 1024)"
            ),
        )
    };
    let settle = Duration::from_millis(700);
    let (_dir, music, run) = play_new_folder("heavy", &heavy(2_000_000), "2.5", &[], settle);
    std::fs::write(music.join("heavy.wat"), heavy(2_000_001)).unwrap();
    run.wait_for("heavy: swapped in version 2", Duration::from_secs(10));
    let (log, _) = run.finish();
    assert!(
        !log.contains("fast build"),
        "new code of a heavy signal swaps in from its optimised build:\n{log}"
    );
}

/// A module that fills its block through tail calls (`return_call`), every
/// sample `level`: the optimising compiler takes tail calls, the fast
/// tier's baseline compiler (Winch) does not.
fn tail_calls(level: f32) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "init") (param i32 i32) (result i32) (i32.const 1))
  (func $fill (param $i i32) (param $n i32) (result i32)
    (if (result i32) (i32.ge_u (local.get $i) (local.get $n))
      (then (i32.const 1024))
      (else
        (f32.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))
                   (f32.const {level}))
        (return_call $fill (i32.add (local.get $i) (i32.const 1)) (local.get $n)))))
  (func (export "process") (param $n i32) (param $c i64) (result i32)
    (return_call $fill (i32.const 0) (local.get $n))))"#
    )
}

#[test]
fn new_code_the_fast_tier_cannot_compile_plays_from_its_optimised_build() {
    let settle = Duration::from_millis(700);
    let extra = ["--stats"];
    let (_dir, music, run) = play_new_folder("tail", &tail_calls(0.1), "2.5", &extra, settle);
    let tmp = music.join(".tail.wat.tmp");
    std::fs::write(&tmp, tail_calls(0.3)).unwrap();
    std::fs::rename(&tmp, music.join("tail.wat")).unwrap();
    run.wait_for("tail: swapped in version 2", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(
        log.contains("tail: swapped in version 2 (compiled in"),
        "the new code swapped in from its optimised build:\n{log}"
    );
    assert!(!log.contains("fast build"), "{log}");
    // What played: 0.1 before the swap, 0.3 after it (and only the
    // crossfade between).
    let at = |v: f32| x.iter().position(|s| (s - v).abs() < 1e-6);
    let first = at(0.1).expect("the first version played");
    let second = at(0.3).expect("the new code played");
    assert!(first < second, "0.1 at {first}, then 0.3 at {second}");
    assert!(
        x[second..].iter().all(|s| (s - 0.3).abs() < 1e-6),
        "the new code plays on to the end"
    );
}

/// `run` a 440 Hz sine at 0.5, then save the same sine at 0.25 with
/// `inserted` before its first load of the phase (new code: a fast build
/// plays it first) and wait for the rollback. Checks that the new code
/// played from its fast build, went back to version 1, and that version 1
/// plays on to the end (440 Hz at its level); returns the log.
fn fast_build_rolls_back(inserted: &str) -> String {
    let settle = Duration::from_millis(600);
    let sine = fixtures::sine(440.0, 0.5);
    let (_dir, music, run) = play_new_folder("sine", &sine, "2.5", &[], settle);
    let load = "(local.set $phase (f64.load (global.get $phase_at)))";
    let broken = fixtures::sine(440.0, 0.25).replace(load, &format!("{inserted} {load}"));
    assert_ne!(broken, fixtures::sine(440.0, 0.25), "{inserted} is in");
    std::fs::write(music.join("sine.wat"), broken).unwrap();
    run.wait_for("rolled back", Duration::from_secs(10));
    let (log, x) = run.finish();
    assert!(log.contains("(fast build, compiled in"), "{log}");
    assert!(
        log.contains("rolled back to the last good version (1)"),
        "{log}"
    );
    // The first version plays on to the end.
    let tail = &x[x.len() - SR as usize / 2..];
    assert!((dominant_frequency(tail, SR) - 440.0).abs() < 2.0);
    assert!(
        (rms(tail) - 0.5 / 2f64.sqrt()).abs() < 0.01,
        "{}",
        rms(tail)
    );
    log
}

#[test]
fn a_fast_build_that_faults_rolls_back_and_its_optimised_build_never_plays() {
    // New code that traps in its first call: its fast build faults, the
    // version before comes back, and the optimised build (on its way) is
    // dropped when it arrives instead of trapping a second time. (Then, as
    // after any fault right after a swap with carried state, the same
    // bytes once more with fresh state, as version 3: they trap again and
    // roll back again. Version 3 comes from the compiled-module cache if
    // version 2's optimised build got there first, else as a fast build
    // whose optimised build may take over before it traps: a race that does
    // not matter here.)
    let log = fast_build_rolls_back("unreachable");
    assert!(
        !log.contains("the optimised build of version 2 took over"),
        "{log}"
    );
}

#[test]
fn a_runaway_in_a_fast_build_is_stopped_and_the_last_good_version_plays_on() {
    // New code that never returns from `process`: its fast build (Winch
    // here) plays first, and only the stop checks compiled into it can end
    // the call.
    let log = fast_build_rolls_back("(loop $forever (br $forever))");
    assert!(log.contains("budget (runaway loop?)"), "{log}");
}

#[test]
fn what_init_logs_is_printed_once_per_version_not_again_by_its_optimised_build() {
    let module = |extra: &str| {
        format!(
            r#"(module
  (import "lel:signal/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "init says hello")
  {extra}
  (func (export "init") (param i32 i32) (result i32)
    (call $log (i32.const 2) (i32.const 16) (i32.const 15))
    (i32.const 1))
  (func (export "process") (param i32 i64) (result i32) (i32.const 1024)))"#
        )
    };
    let settle = Duration::from_millis(500);
    let (_dir, music, run) = play_new_folder("talk", &module(""), "2", &[], settle);
    std::fs::write(music.join("talk.wat"), module("(global i32 (i32.const 7))")).unwrap();
    run.wait_for(
        "talk: the optimised build of version 2 took over",
        Duration::from_secs(10),
    );
    let (log, _) = run.finish();
    assert_eq!(
        log.matches("talk: init says hello").count(),
        2,
        "version 1 and version 2 (its fast build) each said it once:\n{log}"
    );
}
