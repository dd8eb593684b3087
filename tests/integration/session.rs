//! Sessions: a live run on the silent clock, steered from the console in a
//! real terminal (`tmux`), recorded with `--record` and `--session`, then
//! `lel-host replay`ed: the replay must equal the recording sample for
//! sample. The same run checks the console's `s` (solo), `+` (gain), `r`
//! (retry a faulted signal) and `f` (restart with fresh state) in the
//! recording, at the frames the session says they took effect, and a 0.2
//! synth played over OSC (`--osc`: a note, a parameter change) whose row
//! shows its parameter's value, then removed (an unload, faded out). Damaged and
//! incomplete session folders get errors naming the file and the fault.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::console::{Tmux, cpu, require_tmux, row};
use crate::fixtures::{sine, synth};
use crate::osc::{client, free_port, msg};
use crate::util::*;
use rosc::OscType;

const SR: u32 = 48_000;
const AMP: f64 = 0.2;
/// `--xfade 20`: 960 frames.
const XFADE: u64 = 960;

/// `sine(freq)` with `code` run at the start of every `process` call
/// (`$calls` counts the calls, `$clock` is the block's clock).
fn sine_with(freq: f64, code: &str) -> String {
    let text = sine(freq, AMP);
    let text = text.replace(
        "  (func (export \"process\")",
        "  (global $calls (mut i32) (i32.const 0))\n  (func (export \"process\")",
    );
    let start = "(local.set $phase (f64.load (global.get $phase_at)))";
    assert!(
        text.contains(start),
        "sine.wat changed: update this fixture"
    );
    text.replacen(
        start,
        &format!(
            "(global.set $calls (i32.add (global.get $calls) (i32.const 1)))\n    {code}\n    {start}"
        ),
        1,
    )
}

/// The energy of `x` within `hz +- 20` Hz, in dB (absolute: compare two
/// windows of the same length).
fn tone_db(x: &[f32], hz: f64) -> f64 {
    let mag = spectrum(x);
    let bin = SR as f64 / x.len() as f64;
    let e: f64 = mag
        .iter()
        .enumerate()
        .filter(|(i, _)| (*i as f64 * bin - hz).abs() <= 20.0)
        .map(|(_, m)| m * m)
        .sum();
    10.0 * e.max(1e-300).log10()
}

/// The line under `signal`'s row: its parameters, if it has any.
fn params_line<'a>(screen: &'a str, signal: &str) -> Option<&'a str> {
    let r = row(screen, signal)?;
    let mut lines = screen.lines().skip_while(|l| *l != r);
    lines.next();
    lines.next().filter(|l| l.contains("params: "))
}

/// Save `text` as `dir/name` the way editors do: a temp file renamed into place.
fn save(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// One event line of `session.txt`: frame, what, `key=value` fields.
#[derive(Debug)]
struct Line {
    at: u64,
    what: String,
    f: HashMap<String, String>,
}

fn lines(session: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(session.join("session.txt")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut w = l.splitn(3, ' ');
            let at = w.next()?.parse().ok()?;
            let what = w.next()?.to_string();
            let rest = w.next().unwrap_or("");
            let mut f = HashMap::new();
            // `signal=` is last and takes the rest of the line.
            let (head, signal) = match rest.find("signal=") {
                Some(i) => (&rest[..i], Some(&rest[i + 7..])),
                None => (rest, None),
            };
            for kv in head.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    f.insert(k.to_string(), v.to_string());
                }
            }
            if let Some(s) = signal {
                f.insert("signal".into(), s.to_string());
            }
            Some(Line { at, what, f })
        })
        .collect()
}

/// The slot each signal played in (from its load lines).
fn slots(ls: &[Line]) -> HashMap<String, String> {
    ls.iter()
        .filter(|l| l.what == "load")
        .map(|l| (l.f["signal"].clone(), l.f["slot"].clone()))
        .collect()
}

fn count(ls: &[Line], what: &str, field: &str, value: &str) -> usize {
    ls.iter()
        .filter(|l| l.what == what && l.f.get(field).is_some_and(|v| v == value))
        .count()
}

/// The frame of the `n`-th (from 0) `what` line of `signal`'s slot whose
/// fields include `field=value`.
fn frame_of(ls: &[Line], what: &str, slot: &str, field: &str, value: &str, n: usize) -> u64 {
    ls.iter()
        .filter(|l| {
            l.what == what && l.f["slot"] == slot && l.f.get(field).is_some_and(|v| v == value)
        })
        .nth(n)
        .unwrap_or_else(|| panic!("no {what} {field}={value} #{n} for slot {slot}: {ls:#?}"))
        .at
}

#[test]
fn a_live_session_steered_from_the_console_replays_bit_for_bit() {
    require_tmux();
    let dir = tempdir();
    let mods = dir.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    let session = dir.path().join("session");
    let record = dir.path().join("live.wav");
    write(&mods, "alpha.wat", &sine(440.0, AMP));
    write(&mods, "beta.wat", &sine(1000.0, AMP));
    write(&mods, "gamma.wat", &sine(660.0, AMP));
    // A 0.2 synth (a `gain` parameter, notes), played over OSC.
    write(&mods, "synth.wat", &synth());
    let port = free_port();
    // Traps in every block of the first second: muted by the host until `r`.
    write(
        &mods,
        "delta.wat",
        &sine_with(
            1500.0,
            "(if (i64.lt_u (local.get $clock) (i64.const 48000)) (then unreachable))",
        ),
    );
    let command = format!(
        "{} run {} --device none --sample-rate {SR} --channels 1 --xfade 20 --osc {port} --record {} --session {}; echo \"exit status $?\"; sleep 60",
        lel_host_bin().display(),
        mods.display(),
        record.display(),
        session.display()
    );
    let t = Tmux::start(
        &format!("lel-session-{}", std::process::id()),
        dir.path(),
        &command,
    );
    let wait_session = |what: &str, ok: &dyn Fn(&[Line]) -> bool| {
        let start = Instant::now();
        loop {
            let ls = lines(&session);
            if ok(&ls) {
                return ls;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; the session: {ls:#?}\nthe screen:\n{}",
                t.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    t.wait("every signal listed", Duration::from_secs(60), |s| {
        ["alpha", "beta", "gamma", "synth"]
            .iter()
            .all(|n| row(s, n).and_then(cpu).is_some())
            && row(s, "delta").is_some_and(|r| r.contains("muted: trap"))
    });

    // Two swaps of alpha (crossfaded, phase carried).
    save(&mods, "alpha.wat", &sine(550.0, AMP));
    wait_session("alpha's first swap", &|ls| {
        count(ls, "load", "signal", "alpha") == 2
    });
    save(&mods, "alpha.wat", &sine(770.0, AMP));
    wait_session("alpha's second swap", &|ls| {
        count(ls, "load", "signal", "alpha") == 3
    });
    // gamma: a version whose 41st call counts to 400 million (a few
    // hundred ms of CPU: a runaway at `run`'s budget of four blocks, 10.7
    // ms, by far; 30 million, about 11 ms here, once returned just under
    // it), but a call that returns offline, where the budget is 2 s: the
    // replay must force this fault from the session; beta: one that traps
    // after 40 blocks (it traps again on replay by itself). Both roll back.
    save(
        &mods,
        "gamma.wat",
        &sine_with(
            660.0,
            "(if (i32.eq (global.get $calls) (i32.const 41)) (then
      (loop $spin
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $spin (i32.lt_u (local.get $i) (i32.const 400000000))))
      (local.set $i (i32.const 0))))",
        ),
    );
    wait_session("gamma's runaway and rollback", &|ls| {
        count(ls, "fault", "kind", "timeout") == 1 && ls.iter().any(|l| l.what == "rollback")
    });
    save(
        &mods,
        "beta.wat",
        &sine_with(
            1000.0,
            "(if (i32.gt_u (global.get $calls) (i32.const 40)) (then unreachable))",
        ),
    );
    wait_session("beta's trap and rollback", &|ls| {
        ls.iter().filter(|l| l.what == "rollback").count() == 2
    });

    // The synth over OSC: a note (A5, velocity 64), then its `gain`
    // parameter from 0.5 to 0.25; its row shows the parameter's value.
    let osc = client();
    let to: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let screen = t.wait(
        "the synth's parameter in its row",
        Duration::from_secs(10),
        |s| params_line(s, "synth").is_some(),
    );
    let p = params_line(&screen, "synth").unwrap();
    assert!(
        p.contains("params: gain 0.5 "),
        "the default: {p}\n{screen}"
    );
    std::thread::sleep(Duration::from_millis(300));
    osc.send_to(
        &msg("/lel/synth/note", vec![OscType::Int(81), OscType::Int(64)]),
        to,
    )
    .unwrap();
    wait_session("the note", &|ls| ls.iter().any(|l| l.what == "note"));
    std::thread::sleep(Duration::from_millis(500));
    osc.send_to(&msg("/lel/synth/gain", vec![OscType::Float(0.25)]), to)
        .unwrap();
    wait_session("the parameter change", &|ls| {
        ls.iter().any(|l| l.what == "param")
    });
    t.wait(
        "the new value in the synth's row",
        Duration::from_secs(10),
        |s| params_line(s, "synth").is_some_and(|p| p.contains("params: gain 0.25 ")),
    );
    std::thread::sleep(Duration::from_millis(400));
    // The synth's file removed: it fades out (an `unload`).
    std::fs::remove_file(mods.join("synth.wat")).unwrap();
    wait_session("the synth unloaded", &|ls| {
        ls.iter().any(|l| l.what == "unload")
    });
    t.wait("the synth's row gone", Duration::from_secs(10), |s| {
        row(s, "synth").is_none()
    });
    std::thread::sleep(Duration::from_millis(300));

    // Rows: alpha (selected: the first row), beta, delta, gamma.
    t.keys("m");
    wait_session("alpha muted", &|ls| count(ls, "mute", "on", "yes") == 1);
    t.keys("j");
    t.keys("s");
    wait_session("beta soloed", &|ls| count(ls, "solo", "on", "yes") == 1);
    std::thread::sleep(Duration::from_millis(600));
    t.keys("+");
    wait_session("beta +3 dB", &|ls| ls.iter().any(|l| l.what == "gain"));
    t.wait("beta's row at +3 dB", Duration::from_secs(10), |s| {
        row(s, "beta").is_some_and(|r| r.contains("+3.0 dB"))
    });
    std::thread::sleep(Duration::from_millis(600));
    t.keys("s");
    let ls = wait_session("beta unsoloed", &|ls| count(ls, "solo", "on", "no") == 1);
    // delta's trap is over after a second of clock: `r` tries the same
    // bytes again (the clock runs on from the unsolo's frame in real time).
    let now = ls.last().unwrap().at;
    if now < 72_000 {
        std::thread::sleep(Duration::from_secs_f64((72_000 - now) as f64 / SR as f64));
    }
    t.keys("j");
    t.keys("r");
    wait_session("delta loaded again", &|ls| {
        count(ls, "load", "signal", "delta") == 2
    });
    t.wait("delta's row playing", Duration::from_secs(10), |s| {
        row(s, "delta").is_some_and(|r| !r.contains("muted"))
    });
    std::thread::sleep(Duration::from_millis(600));
    // Back to alpha: unmute, solo, restart with fresh state.
    t.keys("k");
    t.keys("k");
    t.keys("m");
    wait_session("alpha unmuted", &|ls| count(ls, "mute", "on", "no") == 1);
    t.keys("s");
    wait_session("alpha soloed", &|ls| count(ls, "solo", "on", "yes") == 2);
    std::thread::sleep(Duration::from_millis(600));
    t.keys("f");
    wait_session("alpha restarted", &|ls| {
        count(ls, "load", "restart", "yes") == 1
    });
    t.wait(
        "the restart in the log pane",
        Duration::from_secs(10),
        |s| s.contains("alpha: restarting the same version with fresh state (console)"),
    );
    std::thread::sleep(Duration::from_millis(600));
    t.keys("q");
    let end = t.wait("lel-host to exit", Duration::from_secs(30), |s| {
        s.contains("exit status")
    });
    assert!(end.contains("exit status 0"), "exit status 0:\n{end}");
    drop(t);

    // What the session says.
    let ls = lines(&session);
    let text = std::fs::read_to_string(session.join("session.txt")).unwrap();
    assert!(text.contains("\nxfade-ns 20000000\n"), "{text}");
    assert!(text.lines().last().unwrap().starts_with("end "), "{text}");
    let slot = slots(&ls);
    let alpha_swaps = ls
        .iter()
        .filter(|l| l.what == "load" && l.f["signal"] == "alpha" && l.f["against"] != "-")
        .count();
    assert_eq!(alpha_swaps, 2, "two swaps carrying state: {text}");
    assert_eq!(
        count(&ls, "fault", "forced", "yes"),
        1,
        "the runaway: {text}"
    );
    assert!(
        ls.iter().any(|l| l.what == "fault"
            && l.f["slot"] == slot["beta"]
            && l.f["kind"] == "trap"
            && l.f["forced"] == "no"),
        "beta's trap: {text}"
    );
    // Modules are stored once per content.
    let modules = std::fs::read_dir(session.join("modules")).unwrap().count();
    assert_eq!(
        modules,
        ls.iter()
            .filter(|l| l.what == "load")
            .map(|l| &l.f["module"])
            .collect::<std::collections::HashSet<_>>()
            .len(),
        "one file per module content: {text}"
    );

    // The replay is the recording, sample for sample.
    let replayed = dir.path().join("replay.wav");
    let out = run_ok(
        Command::new(lel_host_bin())
            .arg("replay")
            .arg(&session)
            .arg("-o")
            .arg(&replayed)
            .env("LEL_LOG", "info"),
        "lel-host replay",
        "",
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("replayed"), "{log}");
    let (channels, rate, live) = read_wav(&record);
    let (c2, r2, again) = read_wav(&replayed);
    assert_eq!((channels, rate), (1, SR));
    assert_eq!((c2, r2), (1, SR));
    assert!(
        live.len() > 5 * SR as usize,
        "{} samples recorded",
        live.len()
    );
    assert_eq!(live.len(), again.len(), "the replay is as long as the run");
    if let Some(i) = (0..live.len()).find(|&i| live[i].to_bits() != again[i].to_bits()) {
        panic!(
            "the replay differs from the recording first at frame {i}: {} vs {}\n{text}",
            live[i], again[i]
        );
    }

    // The console's keys, in the recording, at the frames they took effect.
    let span = |a: u64, b: u64| &live[a as usize..b as usize];
    // OSC: the note starts the synth (A5, 880 Hz) on its frame; the
    // parameter halves it (-6.02 dB) on its frame.
    let note = ls.iter().find(|l| l.what == "note").unwrap();
    assert_eq!(
        (note.f["kind"].as_str(), note.f["number"].as_str()),
        ("1", "81"),
        "a note-on of key 81: {text}"
    );
    let param = ls.iter().find(|l| l.what == "param").unwrap();
    assert_eq!(param.f["slot"], slot["synth"]);
    assert_eq!(param.f["value"], "0.25", "{text}");
    let (n0, p0) = (note.at, param.at);
    const W: u64 = 9600;
    assert!(p0 - n0 > 2 * W, "note at {n0}, parameter at {p0}");
    // (Short windows around the note: beta's rollback, a step in the mix,
    // is at least 300 ms before it.)
    let silent = tone_db(span(n0 - W / 4, n0), 880.0);
    let on = tone_db(span(n0, n0 + W / 4), 880.0);
    assert!(
        on - silent > 30.0,
        "the note starts the synth: {silent:.1} -> {on:.1} dB"
    );
    let steady = tone_db(span(n0, n0 + W), 880.0);
    let before_param = tone_db(span(p0 - W, p0), 880.0);
    let halved = tone_db(span(p0, p0 + W), 880.0);
    assert!(
        (before_param - steady).abs() < 0.1,
        "steady until the change: {steady:.2} then {before_param:.2} dB"
    );
    assert!(
        (halved - before_param + 6.02).abs() < 0.1,
        "gain 0.5 -> 0.25 is -6.02 dB: {before_param:.2} -> {halved:.2} dB"
    );
    // The removal: the synth fades out over 10 ms from the unload's frame.
    let unload = ls.iter().find(|l| l.what == "unload").unwrap();
    assert_eq!(unload.f["slot"], slot["synth"], "{text}");
    let u0 = unload.at;
    assert!(u0 > p0 + W, "unloaded at {u0}, after the parameter change");
    let playing = tone_db(span(u0 - W / 4, u0), 880.0);
    let gone = tone_db(span(u0 + 480, u0 + 480 + W / 4), 880.0);
    assert!(
        playing - gone > 30.0,
        "the synth is gone after its fade: {playing:.1} -> {gone:.1} dB"
    );
    let (beta, alpha) = (&slot["beta"], &slot["alpha"]);
    let solo_on = frame_of(&ls, "solo", beta, "on", "yes", 0);
    let solo_off = frame_of(&ls, "solo", beta, "on", "no", 0);
    let gain_at = ls.iter().find(|l| l.what == "gain").unwrap();
    assert_eq!(gain_at.f["slot"], *beta);
    let g: f64 = gain_at.f["value"].parse().unwrap();
    assert!((db(g) - 3.0).abs() < 0.01, "`+` is +3 dB: {g}");
    let before = span(solo_on + XFADE, gain_at.at);
    let after = span(gain_at.at + XFADE, solo_off);
    // `s`: beta alone (gamma at 660 Hz and alpha are silent).
    for (part, what) in [(before, "soloed"), (after, "soloed, +3 dB")] {
        assert!(
            part.len() > SR as usize / 4,
            "{what}: {} frames",
            part.len()
        );
        let b = band_energy_db(part, SR, 1000.0, 20.0);
        let gm = band_energy_db(part, SR, 660.0, 20.0);
        assert!(b > -1.0, "{what}: beta is all there is ({b:.1} dB)");
        assert!(gm < -60.0, "{what}: gamma is silent ({gm:.1} dB)");
    }
    // No click from `s`, `+` and the unsolo: while they ramp, the sum of
    // what plays (beta raised by 3 dB, gamma, the synth at 0.126, alpha
    // muted just before) never steps further than its sines can.
    let mute_at = frame_of(&ls, "mute", alpha, "on", "yes", 0);
    let keys = span(mute_at, solo_off + 2 * XFADE);
    let bound = sine_step_bound(AMP * 1.42, 1000.0, SR)
        + sine_step_bound(AMP, 660.0, SR)
        + sine_step_bound(AMP, 770.0, SR)
        + sine_step_bound(0.13, 880.0, SR);
    let step = max_step(keys);
    assert!(
        step <= bound,
        "no click from m, s, + and unsolo: step {step} > {bound}"
    );
    // `+`: 3 dB louder.
    let rise = db(rms(after)) - db(rms(before));
    assert!((rise - 3.0).abs() < 0.1, "`+` raised beta by {rise:.2} dB");
    assert!(
        (db(rms(before)) - db(AMP / 2f64.sqrt())).abs() < 0.1,
        "beta at its own level before `+`"
    );
    // After unsolo, the others are back (gamma, rolled back, plays).
    let back = span(solo_off + XFADE, solo_off + XFADE + SR as u64 / 4);
    assert!(band_energy_db(back, SR, 660.0, 20.0) > -15.0, "gamma back");
    // `r`: delta, faulted at the start, plays after the retry (no new fault).
    let delta = &slot["delta"];
    let retry = ls
        .iter()
        .filter(|l| l.what == "load" && l.f["signal"] == "delta")
        .nth(1)
        .unwrap()
        .at;
    assert!(retry > 48_000, "retried after delta's trap window: {text}");
    assert_eq!(
        ls.iter()
            .filter(|l| l.what == "fault" && &l.f["slot"] == delta)
            .count(),
        1,
        "delta faulted once, before the retry: {text}"
    );
    let alpha_solo = frame_of(&ls, "solo", alpha, "on", "yes", 0);
    let played = span(retry + XFADE, alpha_solo);
    assert!(
        band_energy_db(played, SR, 1500.0, 20.0) > -15.0,
        "delta plays after `r`"
    );
    // `f`: alpha (770 Hz, soloed) starts again from phase 0 at the restart
    // frame, crossfaded: no click, and the fresh oscillator matches a sine
    // that starts there.
    let restart = ls
        .iter()
        .find(|l| l.what == "load" && l.f["restart"] == "yes")
        .unwrap();
    assert_eq!(restart.f["signal"], "alpha");
    assert_eq!(restart.f["against"], "-", "nothing carried: {text}");
    let f0 = restart.at;
    let tail = span(alpha_solo + XFADE, live.len() as u64);
    let step = max_step(tail);
    // An equal-power crossfade of two 770 Hz sines of nearby phases swells
    // by up to sqrt 2 at its middle (and its slope with it); a jump to the
    // fresh phase would step by up to twice the amplitude.
    let bound = sine_step_bound(AMP, 770.0, SR) * 1.45;
    assert!(
        step <= bound,
        "no click around the restart: step {step} > {bound}"
    );
    let fresh = |n: u64| sine_at(770.0, AMP, (n - f0) as usize, SR);
    let err = (f0 + XFADE..f0 + XFADE + 4000)
        .map(|n| (live[n as usize] as f64 - fresh(n)).abs())
        .fold(0.0, f64::max);
    assert!(
        err < 1e-4,
        "the restarted alpha is a sine from phase 0 at frame {f0}: error {err}"
    );
    // Before it, the old oscillator (phase carried since the start) played
    // on: it is not that fresh sine (unless its phase was near 0 by chance).
    let old_err = (f0 - 2000..f0)
        .map(|n| {
            (live[n as usize] as f64
                - AMP * (std::f64::consts::TAU * 770.0 * (n as f64 - f0 as f64) / SR as f64).sin())
            .abs()
        })
        .fold(0.0, f64::max);
    let old_rms = rms(span(f0 - 2000, f0));
    assert!(
        (db(old_rms) - db(AMP / 2f64.sqrt())).abs() < 0.2,
        "alpha alone before the restart: {:.2} dBFS",
        db(old_rms)
    );
    eprintln!(
        "restart at frame {f0}: the old phase differed from the fresh one by up to {old_err:.3}"
    );
}

/// A short session written by `run`, to damage.
fn recorded_session(dir: &Path) -> std::path::PathBuf {
    let mods = dir.join("mods");
    std::fs::create_dir(&mods).unwrap();
    write(&mods, "a.wat", &sine(440.0, AMP));
    let session = dir.join("s");
    run_ok(
        Command::new(lel_host_bin())
            .arg("run")
            .arg(&mods)
            .args([
                "--device",
                "none",
                "--seconds",
                "1.5",
                "--no-console",
                "--session",
            ])
            .arg(&session),
        "lel-host run --session",
        "",
    );
    session
}

/// `lel-host replay DIR`: its error (it must fail).
fn replay_error(session: &Path, out: &Path) -> String {
    let o = Command::new(lel_host_bin())
        .arg("replay")
        .arg(session)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert!(!o.status.success(), "a damaged session must fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn damaged_or_incomplete_sessions_are_refused_naming_the_file_and_the_fault() {
    let dir = tempdir();
    let good = recorded_session(dir.path());
    let out = dir.path().join("out.wav");
    let text = std::fs::read_to_string(good.join("session.txt")).unwrap();
    let module = std::fs::read_dir(good.join("modules"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let module_name = module.file_name().unwrap().to_string_lossy().into_owned();
    // The intact session replays.
    run_ok(
        Command::new(lel_host_bin())
            .arg("replay")
            .arg(&good)
            .arg("-o")
            .arg(&out),
        "lel-host replay",
        "",
    );

    let copy = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(d.join("modules")).unwrap();
        std::fs::write(d.join("session.txt"), &text).unwrap();
        std::fs::copy(&module, d.join("modules").join(&module_name)).unwrap();
        d
    };
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Damage, Vec<String>)> = vec![
        (
            "no session.txt",
            Box::new(|d: &Path| std::fs::remove_file(d.join("session.txt")).unwrap()),
            vec!["session.txt: missing".into()],
        ),
        (
            "not a session",
            Box::new(|d: &Path| std::fs::write(d.join("session.txt"), "hello\n").unwrap()),
            vec!["session.txt line 1: not a lel-host session".into()],
        ),
        (
            "cut short (the run was killed)",
            Box::new(|d: &Path| {
                let cut: String = text
                    .lines()
                    .filter(|l| !l.starts_with("end "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(d.join("session.txt"), cut).unwrap()
            }),
            vec![
                "session.txt: incomplete: no `end` line".into(),
                "`lel-host replay --partial` renders that much".into(),
            ],
        ),
        (
            "a garbled line",
            Box::new(|d: &Path| {
                let bad = text.replace(" load slot=", " load slto=");
                std::fs::write(d.join("session.txt"), bad).unwrap()
            }),
            vec!["session.txt line 10".into(), "expected `slot=...`".into()],
        ),
        (
            "a missing module",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("modules").join(&module_name)).unwrap()
            }),
            vec![
                format!("modules/{module_name}: missing"),
                "loads it as `a`".into(),
            ],
        ),
        (
            "a damaged module",
            Box::new(|d: &Path| {
                let p = d.join("modules").join(&module_name);
                let mut b = std::fs::read(&p).unwrap();
                let last = b.len() - 1;
                b[last] ^= 1;
                std::fs::write(&p, b).unwrap()
            }),
            vec![
                format!("modules/{module_name}: damaged"),
                "not to its name".into(),
            ],
        ),
    ];
    for (i, (what, damage, expect)) in cases.iter().enumerate() {
        let d = copy(&format!("case{i}"));
        damage(&d);
        let err = replay_error(&d, &out);
        for e in expect {
            assert!(
                err.contains(e.as_str()),
                "{what}: expected `{e}` in:\n{err}"
            );
        }
        assert!(err.lines().count() <= 2, "{what}: one clear line:\n{err}");
    }
    // A session cut short (the machine crashed: no `end`, a half-written
    // last line) replays with `--partial` up to its last `played` line: the
    // intact replay's first frames, bit for bit.
    let (_, _, full) = read_wav(&out);
    let cut = copy("cut");
    let played: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("played ").map(|p| p.parse().unwrap()))
        .collect();
    let last = *played.last().expect("`played` lines every half second");
    assert!(last >= 24_000, "{text}");
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("end ")).collect();
    lines.push("96000 loa");
    std::fs::write(cut.join("session.txt"), lines.join("\n")).unwrap();
    let partial = dir.path().join("partial.wav");
    let o = run_ok(
        Command::new(lel_host_bin())
            .arg("replay")
            .arg(&cut)
            .arg("--partial")
            .arg("-o")
            .arg(&partial)
            .env("LEL_LOG", "info"),
        "lel-host replay --partial",
        "",
    );
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("is cut short; left out"), "{log}");
    assert!(log.contains(&format!("up to frame {last}")), "{log}");
    let (_, _, some) = read_wav(&partial);
    assert_eq!(
        some.len() as u64,
        last * 2,
        "stereo, up to the last `played`"
    );
    assert!(
        (0..some.len()).all(|i| some[i].to_bits() == full[i].to_bits()),
        "the partial replay is the full one's beginning"
    );

    let err = replay_error(&dir.path().join("nowhere"), &out);
    assert!(err.contains("nowhere: no such session folder"), "{err}");
}

/// Parameters and notes in a session: an engine driven by the library
/// (`Renderer`, the same control side as `run`) records a session while a
/// 0.2 guest gets parameter changes and notes at exact frames, is reloaded
/// (crossfaded, the player's value kept) and gets a change due after a
/// reload handed over before it; `lel-host replay` gives the same samples.
#[test]
fn parameter_changes_and_notes_replay_bit_for_bit() {
    use lel_host::{NoteEvent, Renderer, Settings};
    let dir = tempdir();
    let session = dir.path().join("s");
    let mut r = Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: 128,
        xfade: Duration::from_millis(5),
        ..Settings::default()
    })
    .unwrap();
    r.record_session(&session).unwrap();
    let v1 = crate::params::dc(0.1, 64);
    r.load_bytes("dc", v1.as_bytes()).unwrap();
    let mut live = r.render(128 * 10);
    let at = r.clock() + 37;
    assert_eq!(r.set_param("dc", "level", 0.3, at).unwrap(), 0.3);
    r.send_event("dc", NoteEvent::note_on(0, 60, 1.0), at + 200)
        .unwrap();
    live.extend(r.render(128 * 20));
    // A new version (another default): the player's 0.3 is kept.
    let v2 = crate::params::dc(0.05, 64).replace(
        "(i32.const 1))\n  (func (export \"process\")",
        "(i32.const 1))\n  (global $v2 i32 (i32.const 2))\n  (func (export \"process\")",
    );
    assert_ne!(v1, v2, "a different module");
    r.load_bytes("dc", v2.as_bytes()).unwrap();
    live.extend(r.render(128 * 20));
    r.send_event("dc", NoteEvent::note_off(0, 60, 0.0), r.clock() + 5)
        .unwrap();
    // A change for a frame ahead, then a reload handed over before it.
    let later = r.clock() + 128 * 6 + 11;
    r.set_param("dc", "level", 0.2, later).unwrap();
    r.load_bytes("dc", v1.as_bytes()).unwrap();
    live.extend(r.render(128 * 20));
    r.finish_session().unwrap();

    let text = std::fs::read_to_string(session.join("session.txt")).unwrap();
    assert_eq!(text.matches(" param ").count(), 2, "{text}");
    assert_eq!(text.matches(" note ").count(), 2, "{text}");
    // The values are in the audio: 0.1, then 0.3 from its frame, plus the
    // note's 0.25 while it is held, and 0.2 at the last change.
    assert_eq!(live[(at - 1) as usize], 0.1);
    assert_eq!(live[at as usize], 0.3);
    assert_eq!(live[(at + 200) as usize], 0.55);
    assert_eq!(
        live[(later - 1) as usize],
        0.3,
        "the reload before the change's frame plays the value then in force"
    );
    assert_eq!(live[later as usize], 0.2);

    let out = dir.path().join("replay.wav");
    run_ok(
        Command::new(lel_host_bin())
            .arg("replay")
            .arg(&session)
            .arg("-o")
            .arg(&out),
        "lel-host replay",
        "",
    );
    let (_, _, again) = read_wav(&out);
    assert_eq!(live.len(), again.len());
    if let Some(i) = (0..live.len()).find(|&i| live[i].to_bits() != again[i].to_bits()) {
        panic!(
            "the replay differs first at frame {i}: {} vs {}\n{text}",
            live[i], again[i]
        );
    }

    // Damaged parameter and note lines are refused, naming the line
    // (rather than replaying something else without a word).
    let param = text.lines().find(|l| l.contains(" param ")).unwrap();
    let note = text.lines().find(|l| l.contains(" note ")).unwrap();
    let line_of = |l: &str| text.lines().position(|x| x == l).unwrap() + 1;
    let slot = param
        .split("slot=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let id = param
        .split("id=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let value = param.split("value=").nth(1).unwrap();
    let cases = [
        (
            param,
            param.replace(&format!("id={id}"), "id=77"),
            "has no parameter of id 77",
        ),
        (
            param,
            param.replace(&format!("slot={slot}"), "slot=9"),
            "a control event for slot 9, where nothing was loaded before",
        ),
        (
            param,
            param.replace(&format!("value={value}"), "value=NaN"),
            "a parameter's value must be a finite number",
        ),
        (
            note,
            note.replace("channel=0", "channel=16"),
            "out of range",
        ),
    ];
    for (i, (from, to, expect)) in cases.iter().enumerate() {
        let d = dir.path().join(format!("damaged{i}"));
        std::fs::create_dir_all(d.join("modules")).unwrap();
        for m in std::fs::read_dir(session.join("modules")).unwrap() {
            let m = m.unwrap().path();
            std::fs::copy(&m, d.join("modules").join(m.file_name().unwrap())).unwrap();
        }
        assert_ne!(from, to, "the damage changes the line");
        std::fs::write(d.join("session.txt"), text.replacen(from, to, 1)).unwrap();
        let err = replay_error(&d, &dir.path().join("damaged.wav"));
        let at = format!("session.txt line {}", line_of(from));
        assert!(
            err.contains(expect) && err.contains(&at),
            "`{to}`: expected `{at}: ... {expect}` in:\n{err}"
        );
    }
}
