//! The real cpal path, end to end, on a machine without a sound card: ALSA's
//! `file` plugin in front of a paced null sink (`tests/alsa/pcm_paced.c`, a
//! tiny ALSA plugin built here) gives cpal a real device that plays at 48 kHz
//! in real time and writes every frame it receives to a raw f32 file. The
//! test plays a sine through `lel-host run`, rewrites the module on disk
//! mid-run, and decodes what the device received.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fixtures;
use crate::live::{LiveRun, SR, assert_continuous_swap, assert_sine_from_onset};
use crate::util::*;

/// Build the paced sink and write an ALSA configuration whose default
/// device is `cpal_tap`, capturing to `<dir>/device.raw`. Returns
/// (ALSA_CONFIG_PATH file, raw output file).
fn alsa_rig(dir: &Path) -> (PathBuf, PathBuf) {
    alsa_rig_at(dir, 48_000)
}

/// [`alsa_rig`] with a device that plays only `rate` Hz.
fn alsa_rig_at(dir: &Path, rate: u32) -> (PathBuf, PathBuf) {
    let so = dir.join("libasound_module_pcm_paced.so");
    run_ok(
        Command::new("cc")
            .args(["-O2", "-Wall", "-DPIC", "-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(repo_root().join("tests/alsa/pcm_paced.c"))
            .arg("-lasound"),
        "building the ALSA test plugin",
        "install a C compiler and the ALSA headers: apt-get install gcc libasound2-dev (scripts/setup does)",
    );
    let raw = dir.join("device.raw");
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"pcm_type.paced {{
    lib "{so}"
}}
pcm.cpal_tap {{
    type file
    slave.pcm {{ type paced format "FLOAT_LE" rate {rate} channels 2 }}
    file "{raw}"
    format "raw"
    hint {{ show on description "lel-host test capture (f32le 48k stereo raw)" }}
}}
pcm.!default "cpal_tap"
"#,
            so = so.display(),
            raw = raw.display(),
        ),
    )
    .unwrap();
    (conf, raw)
}

/// `lel-host run ARGS MODULE` to completion with the rig's ALSA
/// configuration; returns its log.
fn run_on_rig(conf: &Path, home: &Path, args: &[&str], module: &Path) -> String {
    let out = run_ok(
        Command::new(lel_host_bin())
            .arg("run")
            .args(args)
            .arg(module)
            .env("ALSA_CONFIG_PATH", conf)
            .env("HOME", home)
            .env("NO_COLOR", "1"),
        "lel-host run",
        "",
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_raw(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn cpal_plays_a_sine_and_a_rewrite_swaps_without_a_phase_jump() {
    let dir = tempdir();
    let (conf, raw) = alsa_rig(dir.path());
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    let home = dir.path().to_path_buf();
    let run = LiveRun::start(
        dir.path(),
        &[music.to_str().unwrap(), "--seconds", "3", "--buffer", "256"],
        &[("ALSA_CONFIG_PATH", &conf), ("HOME", &home)],
    );
    run.wait_for("playing on device `default`", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1_000));
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.25)).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, recorded) = run.finish();
    assert!(
        !log.contains("silent"),
        "played on the device, not the silent clock:\n{log}"
    );

    let device = read_raw(&raw);
    let left = channel(&device, 2, 0);
    let right = channel(&device, 2, 1);
    // Paced at real time: about 3 s reached the device.
    let secs = left.len() as f64 / SR as f64;
    assert!(
        (2.5..4.0).contains(&secs),
        "the device received {secs:.2} s in a 3 s run"
    );
    assert_eq!(left, right, "mono to both channels");
    // Level and pitch before the swap, then the same phase after it.
    let swap = assert_continuous_swap(&left, 440.0, 0.5, 0.25);
    assert!(
        swap > SR as usize / 2,
        "swap after the rewrite: frame {swap}"
    );
    let f = dominant_frequency(&left[..SR as usize / 2], SR);
    assert!((f - 440.0).abs() < 0.5, "440 Hz on the device: {f}");
    assert!((peak(&left[..swap]) - 0.5).abs() < 1e-3);
    // `--record` wrote exactly what the device got.
    assert_eq!(
        &recorded[..left.len().min(recorded.len())],
        &left[..left.len().min(recorded.len())]
    );
}

#[test]
fn devices_lists_the_device_with_its_formats() {
    let dir = tempdir();
    let (conf, _) = alsa_rig(dir.path());
    let out = run_ok(
        Command::new(lel_host_bin())
            .arg("devices")
            .env("ALSA_CONFIG_PATH", &conf)
            .env("HOME", dir.path()),
        "lel-host devices",
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cpal_tap: lel-host test capture"),
        "{stdout}"
    );
    assert!(stdout.contains("2 ch, 48000..48000 Hz, f32"), "{stdout}");
}

#[test]
fn without_a_device_run_says_so_and_plays_on_the_silent_clock() {
    let dir = tempdir();
    // An ALSA configuration with no devices at all.
    let conf = write(dir.path(), "asound.conf", "# nothing here\n");
    let sine = repo_root().join("examples/wat/sine.wat");
    let run = LiveRun::start(
        dir.path(),
        &[sine.to_str().unwrap(), "--seconds", "1"],
        &[("ALSA_CONFIG_PATH", &conf), ("HOME", dir.path())],
    );
    let (log, x) = run.finish();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no usable output device"))
        .collect();
    assert_eq!(warnings.len(), 1, "said in one line:\n{log}");
    assert!(
        warnings[0].contains("playing on a silent real-time clock"),
        "{log}"
    );
    let secs = x.len() as f64 / SR as f64;
    assert!(
        (0.8..1.5).contains(&secs),
        "the silent clock kept real time: {secs:.2} s recorded"
    );
    assert!((dominant_frequency(&x, SR) - 440.0).abs() < 0.5);
}

#[test]
fn a_device_that_disappears_is_reopened_or_replaced_by_the_silent_clock_keeping_every_signal() {
    let dir = tempdir();
    let (conf, raw) = alsa_rig(dir.path());
    // While `gone` exists the device is unplugged: writes and opens fail.
    let gone = dir.path().join("gone");
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        "channels 2 }",
        &format!("channels 2 gone_if \"{}\" }}", gone.display()),
    );
    std::fs::write(&conf, text).unwrap();
    let sine = repo_root().join("examples/wat/sine.wat");
    let run = LiveRun::start(
        dir.path(),
        &[
            sine.to_str().unwrap(),
            "--seconds",
            "2.5",
            "--buffer",
            "256",
        ],
        &[("ALSA_CONFIG_PATH", &conf), ("HOME", dir.path())],
    );
    run.wait_for("playing on device `default`", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(&gone, "").unwrap();
    run.wait_for(
        "continuing on a silent real-time clock",
        Duration::from_secs(10),
    );
    let (log, recorded) = run.finish();
    assert!(log.contains("audio device failed"), "{log}");
    assert!(log.contains("reopening it"), "{log}");
    // The device got the first part; the recording has all of it, and the
    // sine never lost its phase across the switch to the silent clock.
    let device = channel(&read_raw(&raw), 2, 0);
    assert!(
        device.len() > SR as usize / 2,
        "the device played before it went: {}",
        device.len()
    );
    assert!(
        recorded.len() as f64 / SR as f64 > 2.0,
        "kept playing after the device went"
    );
    // (`assert_sine_from_onset` fails on any frame that is not the sine's,
    // from its first: state lost in the switch, a gap or a jump.)
    assert_sine_from_onset(&recorded, 0.5);
}

#[test]
fn devices_check_tells_whether_the_default_device_can_play() {
    let dir = tempdir();
    let (conf, _) = alsa_rig(dir.path());
    let ok = Command::new(lel_host_bin())
        .args(["devices", "--check"])
        .env("ALSA_CONFIG_PATH", &conf)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("can play 48000 Hz stereo (f32)"));
    let empty = write(dir.path(), "empty.conf", "# no devices\n");
    let none = Command::new(lel_host_bin())
        .args(["devices", "--check"])
        .env("ALSA_CONFIG_PATH", &empty)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stdout).starts_with("no usable output device: "));
}

#[test]
fn a_device_that_cannot_play_48_khz_is_played_at_its_own_rate_unless_one_is_asked_for() {
    let dir = tempdir();
    let (conf, raw) = alsa_rig_at(dir.path(), 44_100);
    let sine = repo_root().join("examples/wat/sine.wat");
    let log = run_on_rig(&conf, dir.path(), &["--seconds", "1"], &sine);
    assert!(
        log.contains("the device cannot play 48000 Hz, 2 channels: using its 44100 Hz, 2 channels"),
        "{log}"
    );
    assert!(
        log.contains("playing on device `default` at 44100 Hz"),
        "{log}"
    );
    let left = channel(&read_raw(&raw), 2, 0);
    assert!(left.len() > 30_000, "{} frames", left.len());
    let f = dominant_frequency(&left[..32_768], 44_100);
    assert!((f - 440.0).abs() < 0.5, "440 Hz at 44.1 kHz: {f}");

    // Asked for 48 kHz explicitly: not possible here, so the silent clock.
    let log = run_on_rig(
        &conf,
        dir.path(),
        &["--seconds", "0.3", "--sample-rate", "48000"],
        &sine,
    );
    assert!(log.contains("cannot play 2 channels at 48000 Hz"), "{log}");
    assert!(log.contains("playing on a silent real-time clock"), "{log}");
}

#[test]
fn probing_a_missing_device_prints_lel_hosts_one_line_and_no_raw_alsa_errors() {
    // An ALSA configuration whose default device does not exist: alsa-lib
    // reports `Unknown PCM ...` through its own error printer on every
    // probe. lel-host silences that printer while it probes and says what
    // happened in one line of its own.
    let dir = tempdir();
    let conf = dir.path().join("asound.conf");
    std::fs::write(
        &conf,
        "pcm.!default \"lel_no_such_device\"\nctl.!default \"lel_no_such_device\"\n",
    )
    .unwrap();
    let wav = dir.path().join("played.wav");
    let out = run_ok(
        Command::new(lel_host_bin())
            .args(["run", "--seconds", "1", "--record"])
            .arg(&wav)
            .arg(repo_root().join("examples/wat/sine.wat"))
            .env("ALSA_CONFIG_PATH", &conf)
            .env("HOME", dir.path())
            .env("NO_COLOR", "1"),
        "lel-host run",
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ALSA lib"),
        "raw alsa-lib lines on stderr:\n{stderr}"
    );
    let device_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("output device"))
        .collect();
    assert_eq!(
        device_lines.len(),
        1,
        "one line about the device:\n{stderr}"
    );
    assert!(
        device_lines[0]
            .contains("no usable output device (device `default`: cannot read its configurations")
            && device_lines[0].ends_with("playing on a silent real-time clock"),
        "{stderr}"
    );
    // The sine played on the silent clock, sample-exact.
    let (channels, _, samples) = read_wav(&wav);
    let left = channel(&samples, channels as usize, 0);
    assert!(left.len() > 40_000, "{} frames", left.len());
    assert_sine_from_onset(&left, 0.5);
}

/// A session recorded on the real cpal path, with a device buffer that is
/// not a whole number of blocks (200 frames: blocks of 128 and 72), replays
/// to what the device received and `--record` wrote, bit for bit.
#[test]
fn a_session_on_the_device_with_an_odd_buffer_replays_what_the_device_played() {
    let dir = tempdir();
    let (conf, raw) = alsa_rig(dir.path());
    let music = dir.path().join("music");
    std::fs::create_dir(&music).unwrap();
    std::fs::write(music.join("sine.wat"), fixtures::sine(440.0, 0.5)).unwrap();
    let session = dir.path().join("session");
    let home = dir.path().to_path_buf();
    let run = LiveRun::start(
        dir.path(),
        &[
            music.to_str().unwrap(),
            "--seconds",
            "2",
            "--buffer",
            "200",
            "--xfade",
            "7",
            "--session",
            session.to_str().unwrap(),
        ],
        &[("ALSA_CONFIG_PATH", &conf), ("HOME", &home)],
    );
    run.wait_for("playing on device `default`", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(music.join("sine.wat"), fixtures::sine(660.0, 0.25)).unwrap();
    run.wait_for("sine: swapped in version", Duration::from_secs(10));
    let (log, recorded) = run.finish();
    assert!(!log.contains("silent"), "played on the device:\n{log}");
    let text = std::fs::read_to_string(session.join("session.txt")).unwrap();
    let buffers: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split_once(" buffer ").map(|(_, n)| n.parse().unwrap()))
        .collect();
    assert!(
        buffers.iter().any(|b| b % 128 != 0),
        "the device's buffer is not a whole number of blocks: {buffers:?}\n{text}"
    );
    assert!(
        buffers.len() < 10,
        "a buffer line only when the size changes: {buffers:?}"
    );

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
    let (channels, _, again) = read_wav(&out);
    assert_eq!(channels, 2);
    // (`LiveRun` gives the recording's first channel.)
    let left = channel(&again, 2, 0);
    assert_eq!(left.len(), recorded.len(), "as long as the recording");
    if let Some(i) = (0..left.len()).find(|&i| left[i].to_bits() != recorded[i].to_bits()) {
        panic!("the replay differs from the recording at frame {i}\n{text}");
    }
    let device = read_raw(&raw);
    assert!(device.len() > SR as usize, "the device played");
    let n = device.len().min(again.len());
    assert!(
        (0..n).all(|i| again[i].to_bits() == device[i].to_bits()),
        "the replay is what the device received"
    );
}
