//! The live console in a real terminal: `lel-host run` inside a detached
//! `tmux` session of a fixed size, its screen read with `capture-pane`, keys
//! pressed with `send-keys`. Checks every signal's row (CPU figure, a level
//! meter that reads the signal's level and moves), a faulty module's row
//! saying why it is muted, `m` muting one signal in the recording without a
//! click while the other plays on, `-` lowering the other by 3 dB a press, and `q` finalising the recording.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fixtures::{faulty, sine};
use crate::util::*;

const SR: u32 = 48_000;
pub(crate) const INSTALL: &str = "install tmux: `apt-get install tmux` (scripts/setup does)";

/// Fail, naming the install command, if tmux is not there.
pub(crate) fn require_tmux() {
    let tmux = Command::new("tmux").arg("-V").output();
    assert!(
        tmux.is_ok_and(|o| o.status.success()),
        "tmux is missing: {INSTALL}"
    );
}

/// A detached tmux session, killed when dropped.
pub(crate) struct Tmux {
    name: String,
}

impl Tmux {
    pub(crate) fn start(name: &str, dir: &Path, command: &str) -> Tmux {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", name])
            .output();
        run_ok(
            Command::new("tmux")
                .args([
                    "new-session",
                    "-d",
                    "-s",
                    name,
                    "-x",
                    "200",
                    "-y",
                    "45",
                    "-c",
                ])
                .arg(dir)
                .arg(command)
                .env("LEL_LOG", "info"),
            "tmux new-session",
            INSTALL,
        );
        Tmux {
            name: name.to_string(),
        }
    }

    pub(crate) fn screen(&self) -> String {
        let out = run_ok(
            Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name]),
            "tmux capture-pane",
            INSTALL,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn keys(&self, keys: &str) {
        run_ok(
            Command::new("tmux").args(["send-keys", "-t", &self.name, keys]),
            "tmux send-keys",
            INSTALL,
        );
    }

    /// Wait until `ok` holds for the screen; panic with the screen if not.
    pub(crate) fn wait(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
    }
}

/// The table row of `signal` (its name, then a space, in a line with a meter).
pub(crate) fn row<'a>(screen: &'a str, signal: &str) -> Option<&'a str> {
    let name = format!(" {signal} ");
    screen
        .lines()
        .find(|l| l.contains(&name) && l.contains("] "))
}

/// A row's CPU share now, in percent (`  0.3 % pk   1.2 %`).
pub(crate) fn cpu(row: &str) -> Option<f64> {
    let at = row.find(" % pk ")?;
    row[..at].split_whitespace().last()?.parse().ok()
}

/// A row's meter reading: (RMS dBFS, peak dBFS) after `[....]`.
fn level(row: &str) -> Option<(f64, f64)> {
    let after = &row[row.find("] ")? + 2..];
    let mut it = after.split_whitespace();
    let rms = it.next()?.parse().ok()?;
    let peak = it.next()?.parse().ok()?;
    Some((rms, peak))
}

#[test]
fn console_lists_signals_with_cpu_and_meters_mutes_without_a_click_and_quits() {
    require_tmux();
    let dir = tempdir();
    let mods = dir.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    write(&mods, "alpha.wat", &sine(440.0, 0.25));
    write(&mods, "beta.wat", &sine(1000.0, 0.25));
    // Traps in its first call: muted from the start, so it adds no click.
    write(&mods, "bad.wat", &faulty(0, "unreachable", ""));
    let record = dir.path().join("out.wav");
    let command = format!(
        "{} run {} --device none --sample-rate {SR} --channels 1 --threads 2 --record {}; echo \"exit status $?\"; sleep 60",
        lel_host_bin().display(),
        mods.display(),
        record.display()
    );
    let t = Tmux::start(
        &format!("lel-console-{}", std::process::id()),
        dir.path(),
        &command,
    );

    // Every signal is listed with a CPU figure (published once a second).
    let screen = t.wait(
        "both sines listed with a CPU figure",
        Duration::from_secs(60),
        |s| {
            ["alpha", "beta"]
                .iter()
                .all(|n| row(s, n).and_then(cpu).is_some())
        },
    );
    assert!(
        screen.contains("silent clock"),
        "header names the output:\n{screen}"
    );
    assert!(screen.contains("q quit"), "keys documented:\n{screen}");
    // The header: rate, channels, block, threads; the master meter, late
    // blocks and lost time.
    let head: Vec<&str> = screen.lines().take(2).collect();
    for field in [
        "| 48000 Hz | 1 ch | block 128 | 2 threads |",
        "master [",
        "| late blocks ",
        "| lost ",
    ] {
        assert!(
            head.iter().any(|l| l.contains(field)),
            "`{field}` in the header:\n{screen}"
        );
    }
    // The faulty module's row says why it is muted.
    let bad = row(&screen, "bad").unwrap_or_else(|| panic!("a row for bad:\n{screen}"));
    assert!(bad.contains("muted: trap"), "bad's row says why: {bad}");

    // The meters read each sine's level (amplitude 0.25: peak -12.0 dBFS,
    // RMS -15.1 dBFS, the RMS of one block wobbling with its phase) and move.
    let mut readings = Vec::new();
    for _ in 0..10 {
        let s = t.screen();
        for n in ["alpha", "beta"] {
            let r = row(&s, n).unwrap_or_else(|| panic!("row {n}:\n{s}"));
            let (rms, peak) = level(r).unwrap_or_else(|| panic!("meter of {n}: {r}"));
            assert!((peak + 12.04).abs() < 0.3, "{n} peak {peak} dBFS: {r}");
            assert!((rms + 15.05).abs() < 1.5, "{n} RMS {rms} dBFS: {r}");
            readings.push((n, rms));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let distinct = |n: &str| {
        let mut v: Vec<String> = readings
            .iter()
            .filter(|(m, _)| *m == n)
            .map(|(_, r)| format!("{r}"))
            .collect();
        v.sort();
        v.dedup();
        v.len()
    };
    assert!(
        distinct("alpha") > 1 && distinct("beta") > 1,
        "the meters move: {readings:?}"
    );

    // `m` on the first row (alpha, selected until a key moves the
    // selection, whichever signal loaded first) mutes it.
    t.keys("m");
    t.wait("alpha muted", Duration::from_secs(10), |s| {
        row(s, "alpha").is_some_and(|r| r.contains("muted (m)"))
    });
    // Down to beta (rows are sorted: alpha, bad, beta), `-` twice: -6 dB.
    t.keys("j");
    t.keys("j");
    t.keys("-");
    t.keys("-");
    t.wait("beta at -6 dB", Duration::from_secs(10), |s| {
        row(s, "beta").is_some_and(|r| r.contains("-6.0 dB"))
    });
    std::thread::sleep(Duration::from_secs(2));
    t.keys("q");
    let end = t.wait("lel-host to exit", Duration::from_secs(30), |s| {
        s.contains("exit status")
    });
    assert!(end.contains("exit status 0"), "exit status 0:\n{end}");
    assert!(
        end.contains("recorded"),
        "the log is back on the terminal after the console:\n{end}"
    );

    let (channels, rate, x) = read_wav(&record);
    assert_eq!((channels, rate), (1, SR));
    assert!(
        x.len() > 3 * SR as usize,
        "at least 3 s recorded: {}",
        x.len()
    );
    let bound = sine_step_bound(0.25, 440.0, SR) + sine_step_bound(0.25, 1000.0, SR);
    let step = max_step(&x);
    assert!(step <= bound, "no click: max step {step} > {bound}");
    // The last second: beta alone; a second from the start: both.
    let tail = &x[x.len() - SR as usize..];
    let early = &x[SR as usize / 2..SR as usize * 3 / 2];
    // Beta alone at half its amplitude: RMS 0.125 / sqrt 2.
    let tail_db = db(rms(tail));
    assert!(
        (tail_db - db(0.125 / 2f64.sqrt())).abs() < 0.3,
        "beta at -6 dB in the last second: {tail_db:.2} dBFS"
    );
    for (part, what, alpha_on) in [(early, "before the mute", true), (tail, "after", false)] {
        let a = band_energy_db(part, SR, 440.0, 20.0);
        let b = band_energy_db(part, SR, 1000.0, 20.0);
        assert!(b > -10.0, "{what}: beta plays ({b:.1} dB)");
        if alpha_on {
            assert!(a > -10.0, "{what}: alpha plays ({a:.1} dB)");
        } else {
            assert!(a < -60.0, "{what}: alpha is silent ({a:.1} dB)");
        }
    }
}

/// Not on a terminal, or told `--no-console`, `run` prints its log lines
/// as it did before the console existed: in a real terminal (`tmux`) with
/// `--no-console`, and with standard input not a terminal, the screen shows
/// the lines and no full-screen view; piped, standard error has the same
/// lines and not one terminal control sequence, standard output nothing.
#[test]
fn without_a_terminal_or_with_no_console_run_prints_its_log_lines() {
    require_tmux();
    let dir = tempdir();
    let mods = dir.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    write(&mods, "alpha.wat", &sine(440.0, 0.25));
    let record = dir.path().join("out.wav");
    let run = format!(
        "{} run {} --device none --seconds 2 --record {}",
        lel_host_bin().display(),
        mods.display(),
        record.display()
    );
    let lines = [
        "INFO playing on the silent clock (no device)",
        "INFO alpha: loaded (",
        "INFO alpha: playing (",
        "INFO recorded ",
    ];
    for (what, command) in [
        ("--no-console", format!("{run} --no-console")),
        (
            "standard input not a terminal",
            format!("{run} < /dev/null"),
        ),
    ] {
        let t = Tmux::start(
            &format!("lel-noconsole-{}", std::process::id()),
            dir.path(),
            &format!("{command}; echo \"exit status $?\"; sleep 60"),
        );
        let screen = t.wait(what, Duration::from_secs(60), |s| s.contains("exit status"));
        assert!(screen.contains("exit status 0"), "{what}:\n{screen}");
        for l in lines {
            assert!(screen.contains(l), "{what}: `{l}` on the screen:\n{screen}");
        }
        // The console's key line and its panel's top border (a log line
        // may say " signals ": a late-block warning on a busy machine).
        assert!(
            !screen.contains("q quit") && !screen.contains("┌ signals"),
            "{what}: no console:\n{screen}"
        );
    }

    // Piped (as in CI).
    let out = run_ok(
        Command::new(lel_host_bin())
            .arg("run")
            .arg(&mods)
            .args(["--device", "none", "--seconds", "2", "--record"])
            .arg(&record)
            .stdin(std::process::Stdio::null())
            .env_remove("LEL_LOG"),
        "lel-host run, piped",
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal control sequence when piped: {stderr:?}"
    );
    // Every line a log line; the four of this run in order (on a busy
    // machine a late-block warning may come between them).
    let mut want = lines.iter().peekable();
    for g in stderr.lines() {
        let g = g.trim_start();
        assert!(
            ["INFO ", "WARN ", "ERROR "]
                .iter()
                .any(|p| g.starts_with(p)),
            "a log line: `{g}` in:\n{stderr}"
        );
        if want.peek().is_some_and(|l| g.starts_with(*l)) {
            want.next();
        }
    }
    assert!(
        want.peek().is_none(),
        "`{}` expected in:\n{stderr}",
        want.peek().unwrap()
    );
    let (_, _, x) = read_wav(&record);
    // `--seconds 2` on the silent clock: about 2 s (a block more or less
    // on a busy machine), stereo.
    assert!(
        x.len().abs_diff(2 * 2 * SR as usize) <= 2 * SR as usize / 10,
        "2 s of stereo recorded: {} samples",
        x.len()
    );
}

/// What just failed to load, on screen: a module that never loaded says
/// `rejected:` and why; a new version of a playing signal that fails says
/// so on the signal's row while the old version plays on (its meter, and
/// the recording: one unbroken sine). `q` then exits with status 1, as
/// `run` does whenever something was rejected.
#[test]
fn console_rows_say_what_was_rejected_and_the_old_version_plays_on() {
    require_tmux();
    let dir = tempdir();
    let mods = dir.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    write(&mods, "good.wat", &sine(440.0, 0.25));
    write(
        &mods,
        "junk.wat",
        "(module (func (export \"process\") (result i32) oops))",
    );
    let record = dir.path().join("out.wav");
    let command = format!(
        "{} run {} --device none --sample-rate {SR} --channels 1 --record {}; echo \"exit status $?\"; sleep 60",
        lel_host_bin().display(),
        mods.display(),
        record.display()
    );
    let t = Tmux::start(
        &format!("lel-rejected-{}", std::process::id()),
        dir.path(),
        &command,
    );
    let screen = t.wait("junk rejected", Duration::from_secs(60), |s| {
        row(s, "junk").is_some_and(|r| r.contains("rejected: "))
            && row(s, "good").and_then(cpu).is_some()
    });
    let junk = row(&screen, "junk").unwrap();
    assert!(
        junk.contains("rejected: invalid WebAssembly"),
        "junk's row says why: {junk}"
    );
    // A broken save of good.wat (renamed into place, as editors do).
    let tmp = mods.join(".good.wat.tmp");
    std::fs::write(&tmp, "(module (func").unwrap();
    std::fs::rename(&tmp, mods.join("good.wat")).unwrap();
    let screen = t.wait(
        "good's new version rejected",
        Duration::from_secs(30),
        |s| row(s, "good").is_some_and(|r| r.contains("playing; new version rejected: ")),
    );
    let good = row(&screen, "good").unwrap();
    let (_, peak) = level(good).unwrap_or_else(|| panic!("good's meter: {good}"));
    assert!(
        (peak + 12.04).abs() < 0.3,
        "the old version plays on at its level: {good}"
    );
    std::thread::sleep(Duration::from_secs(1));
    t.keys("q");
    let end = t.wait("lel-host to exit", Duration::from_secs(30), |s| {
        s.contains("exit status")
    });
    assert!(
        end.contains("exit status 1"),
        "a rejection is reported in the exit status:\n{end}"
    );
    let (_, _, x) = read_wav(&record);
    assert!(x.len() > SR as usize, "{} frames recorded", x.len());
    // One unbroken sine from its fade-in to the end (the frames before
    // the first version started are silence).
    let start = x.iter().position(|s| s.abs() > 0.0).unwrap() + SR as usize / 50;
    let step = max_step(&x[start..]);
    let bound = sine_step_bound(0.25, 440.0, SR);
    assert!(
        step <= bound,
        "no break in good's sine: step {step} > {bound}"
    );
    let tail = &x[x.len() - SR as usize / 2..];
    assert!(
        (db(rms(tail)) - db(0.25 / 2f64.sqrt())).abs() < 0.1,
        "good at its level to the end: {:.2} dBFS",
        db(rms(tail))
    );
}

/// The clip mark: a signal whose samples reach 0 dBFS (a sine of amplitude
/// 1.5, which the master's limiter brings back under 0 dBFS) shows `CLIP`
/// beside its meter; a quiet one beside it does not.
#[test]
fn console_marks_a_signal_that_clips() {
    require_tmux();
    let dir = tempdir();
    let mods = dir.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    write(&mods, "loud.wat", &sine(440.0, 1.5));
    write(&mods, "quiet.wat", &sine(1000.0, 0.1));
    let command = format!(
        "{} run {} --device none --sample-rate {SR} --channels 1; echo \"exit status $?\"; sleep 60",
        lel_host_bin().display(),
        mods.display(),
    );
    let t = Tmux::start(
        &format!("lel-clip-{}", std::process::id()),
        dir.path(),
        &command,
    );
    let screen = t.wait("both listed", Duration::from_secs(60), |s| {
        ["loud", "quiet"]
            .iter()
            .all(|n| row(s, n).and_then(cpu).is_some())
    });
    let loud = row(&screen, "loud").unwrap();
    let quiet = row(&screen, "quiet").unwrap();
    assert!(loud.contains("CLIP"), "loud clips: {loud}");
    assert!(!quiet.contains("CLIP"), "quiet does not: {quiet}");
    let (_, peak) = level(loud).unwrap();
    assert!(
        (peak - 3.52).abs() < 0.1,
        "loud's peak is +3.5 dBFS: {loud}"
    );
    t.keys("q");
    let end = t.wait("lel-host to exit", Duration::from_secs(30), |s| {
        s.contains("exit status")
    });
    assert!(end.contains("exit status 0"), "{end}");
}
