//! Swapping versions between blocks: the phase of a sine continues when its
//! state carries, a resized key starts fresh, released keys free their
//! space, and thousands of versions never exhaust the region.

use lel_host::Renderer;
use lel_host::{Notice, Settings};

use crate::fixtures::{self, count_of, counter};
use crate::util::*;

const SR: u32 = 48_000;

/// A mono engine whose audio-thread code counts any allocation.
fn mono() -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: 128,
        check_alloc: true,
        ..Settings::default()
    })
    .expect("engine")
}

/// `amp * sin(2 pi f n / SR)` for n in `from..from + len`.
fn ideal(f: f64, amp: f64, from: usize, len: usize) -> Vec<f32> {
    (from..from + len)
        .map(|n| sine_at(f, amp, n, SR) as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn a_swapped_sine_continues_its_phase_exactly() {
    let dir = tempdir();
    let path = write(dir.path(), "lead.wat", &fixtures::sine(440.0, 0.5));
    let mut r = mono();
    r.load(&path).unwrap();
    let before = r.render(10_000); // not a whole number of blocks, on purpose
    // The new version is louder; it must pick up the phase where the old left it.
    write(dir.path(), "lead.wat", &fixtures::sine(440.0, 0.25));
    let report = r.load(&path).unwrap().expect("new content loads");
    assert!(
        report.layout.get("osc#0").unwrap().carried,
        "osc#0 is carried"
    );
    let after = r.render(20_000);
    let notices = r.take_notices();
    let swap_at = notices
        .iter()
        .find_map(|n| match n {
            Notice::Swapped { clock, carried, .. } => Some((*clock, *carried)),
            _ => None,
        })
        .expect("a swap notice");
    assert_eq!(swap_at.1, 1, "one block carried");
    let swap = swap_at.0 as usize;
    // The swap lands on the next block boundary: where the last render ended.
    assert_eq!(swap, 10_000);
    let all: Vec<f32> = before.iter().chain(&after).copied().collect();
    assert!(
        max_diff(&all[..swap], &ideal(440.0, 0.5, 0, swap)) < 1e-5,
        "old version exact"
    );
    let tail = &all[swap..];
    let err = max_diff(tail, &ideal(440.0, 0.25, swap, tail.len()));
    assert!(
        err < 1e-5,
        "after the swap the phase continues: max error {err}"
    );
}

#[test]
fn a_frequency_change_is_click_free() {
    let dir = tempdir();
    let path = write(dir.path(), "lead.wat", &fixtures::sine(440.0, 0.5));
    let mut r = mono();
    r.load(&path).unwrap();
    let mut out = r.render(4_000);
    write(dir.path(), "lead.wat", &fixtures::sine(660.0, 0.5));
    r.load(&path).unwrap();
    out.extend(r.render(4_000));
    let bound = sine_step_bound(0.5, 660.0, SR);
    assert!(
        max_step(&out) < bound,
        "largest step {} over the bound {bound}",
        max_step(&out)
    );
    let f = dominant_frequency(&out[4_096..], SR);
    assert!((f - 660.0).abs() < 1.0, "new pitch {f}");
}

#[test]
fn a_key_whose_size_changed_starts_fresh() {
    let dir = tempdir();
    let path = write(dir.path(), "lead.wat", &fixtures::sine(440.0, 0.5));
    let mut r = mono();
    r.load(&path).unwrap();
    let before = r.render(1_000 * 128);
    // Claim 16 bytes instead of 8 under the same key: a fresh, zeroed block.
    let resized = fixtures::sine(440.0, 0.5).replace(
        "(i32.const 5) (i32.const 8) (i32.const 8)",
        "(i32.const 5) (i32.const 16) (i32.const 8)",
    );
    write(dir.path(), "lead.wat", &resized);
    let report = r.load(&path).unwrap().unwrap();
    assert!(!report.layout.get("osc#0").unwrap().carried);
    let after = r.render(4_800);
    assert!(max_diff(&before, &ideal(440.0, 0.5, 0, before.len())) < 1e-5);
    // The phase restarts at zero at the swap.
    let err = max_diff(&after, &ideal(440.0, 0.5, 0, after.len()));
    assert!(err < 1e-5, "fresh phase from 0: max error {err}");
}

/// Render `blocks` blocks and return the counter shown by the last one.
fn counted(r: &mut Renderer, blocks: usize) -> i64 {
    let out = r.render(blocks * 128);
    count_of(*out.last().unwrap())
}

#[test]
fn claims_are_carried_fresh_released_and_exhausted_as_specified() {
    let mut r = mono();
    let load = |r: &mut Renderer, keys: &[(&str, u32)], watch: &str| {
        r.load_bytes("counter", counter(keys, watch, 1024).as_bytes())
    };
    load(&mut r, &[("a", 8), ("b", 8)], "a").unwrap();
    assert_eq!(counted(&mut r, 10), 10);
    // Same keys, other order: "a" carried, the count continues.
    load(&mut r, &[("b", 8), ("a", 8)], "a").unwrap();
    assert_eq!(counted(&mut r, 10), 20, "carried");
    // "a" resized: fresh.
    load(&mut r, &[("a", 16)], "a").unwrap();
    assert_eq!(counted(&mut r, 10), 10, "resized key starts fresh");
    // A version without "a" releases it; claimed again later it is fresh.
    load(&mut r, &[("c", 8)], "c").unwrap();
    assert_eq!(counted(&mut r, 5), 5);
    load(&mut r, &[("c", 8), ("a", 16)], "a").unwrap();
    assert_eq!(counted(&mut r, 5), 5, "released key comes back fresh");
    // Exhaustion: a clear error, and the playing version keeps counting.
    let err = load(&mut r, &[("a", 16), ("big", 4096)], "a").unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "counter: state region of 1024 bytes cannot hold claim \"big\" of 4096 bytes (enlarge the module's state region)"
    );
    assert_eq!(counted(&mut r, 5), 10, "the previous version plays on");
}

#[test]
fn ten_thousand_versions_with_shifting_keys_never_exhaust_the_region() {
    // Five modules in rotation, each keeping "keep" and claiming other keys
    // of other sizes; the region (2048 bytes) holds only a few versions' worth.
    let variants: Vec<String> = (0..5)
        .map(|v| {
            let k1 = format!("voice#{v}");
            let k2 = format!("delay#{}", v % 3);
            counter(
                &[
                    (k1.as_str(), 200 + v * 40),
                    ("keep", 8),
                    (k2.as_str(), 300 + v * 16),
                ],
                "keep",
                2048,
            )
        })
        .collect();
    let mut r = mono();
    for i in 0..10_000 {
        r.load_bytes("churn", variants[i % 5].as_bytes())
            .unwrap_or_else(|e| panic!("version {i}: {e:#}"));
        let out = r.render(128);
        assert_eq!(
            count_of(out[127]),
            i as i64 + 1,
            "version {i}: \"keep\" carried"
        );
    }
    // Every retired version was handed back and dropped off the audio thread.
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

/// A mono engine with 20 ms crossfades that played `lead` (440 Hz at 0.5)
/// for 4,096 frames and has just been handed its next version (440 Hz at
/// 0.25, same phase): the crossfade starts with the next block. Returns the
/// engine and what it played so far.
fn crossfading_to_a_quieter_sine() -> (Renderer, Vec<f32>) {
    let mut r = Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        xfade: std::time::Duration::from_millis(20),
        check_alloc: true,
        ..Settings::default()
    })
    .unwrap();
    r.load_bytes("lead", fixtures::sine(440.0, 0.5).as_bytes())
        .unwrap();
    let x = r.render(4_096);
    r.load_bytes("lead", fixtures::sine(440.0, 0.25).as_bytes())
        .unwrap();
    (r, x)
}

#[test]
fn a_crossfade_with_carried_state_is_linear_with_both_versions_running() {
    // Old and new version play the same phase (state carried) at 0.5 and
    // 0.25: they are correlated, so the gains sum to one and the output is
    // exactly (0.5 (1 - t) + 0.25 t) * sin(phase), t = progress.
    let (mut r, mut x) = crossfading_to_a_quieter_sine();
    x.extend(r.render(4_096));
    let len = 960; // 20 ms
    for (n, &s) in x.iter().enumerate() {
        let phase = sine_at(440.0, 1.0, n, SR);
        let want = if n < 4_096 {
            0.5 * phase
        } else if n < 4_096 + len {
            let t = (n - 4_096) as f64 / len as f64;
            (0.5 * (1.0 - t) + 0.25 * t) * phase
        } else {
            0.25 * phase
        };
        assert!(
            (s as f64 - want).abs() < 1e-5,
            "frame {n}: {s}, expected {want:.6}"
        );
    }
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn a_crossfade_between_identical_versions_keeps_the_level_within_a_tenth_of_a_db() {
    // A save that changes nothing audible (an unused global) carries the
    // phase: the crossfade must not swell (equal power would add +3.01 dB
    // at its middle).
    let mut r = Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        xfade: std::time::Duration::from_millis(50),
        check_alloc: true,
        ..Settings::default()
    })
    .unwrap();
    let text = fixtures::sine(440.0, 0.5);
    r.load_bytes("lead", text.as_bytes()).unwrap();
    let mut x = r.render(4_096);
    let again = fixtures::resaved(&text, 1);
    let report = r.load_bytes("lead", again.as_bytes()).unwrap().unwrap();
    assert!(report.layout.blocks.iter().all(|b| b.carried));
    x.extend(r.render(SR as usize / 10));
    // 25 ms windows (11 periods of 440 Hz): each one's level against the sine's.
    let reference = 0.5 / 2f64.sqrt();
    for (i, w) in x.chunks_exact(1_200).enumerate() {
        let level = db(rms(w) / reference);
        assert!(
            level.abs() < 0.1,
            "window {i}: {level:+.3} dB against the sine's level"
        );
    }
    assert_exact_sine(&x, SR);
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn a_crossfade_without_carried_state_is_equal_power() {
    // The new version claims another key: it starts from its own (zero)
    // phase, uncorrelated with the old one, and the gains are cos and sin.
    let mut r = Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        xfade: std::time::Duration::from_millis(20),
        check_alloc: true,
        ..Settings::default()
    })
    .unwrap();
    r.load_bytes("lead", fixtures::sine(440.0, 0.5).as_bytes())
        .unwrap();
    let mut x = r.render(4_096);
    let fresh = fixtures::sine(440.0, 0.25).replace("\"osc#0\"", "\"osc#1\"");
    let report = r.load_bytes("lead", fresh.as_bytes()).unwrap().unwrap();
    assert!(report.layout.blocks.iter().all(|b| !b.carried));
    x.extend(r.render(2_048));
    let len = 960;
    for (n, &s) in x.iter().enumerate().skip(4_096) {
        let a = std::f64::consts::FRAC_PI_2 * ((n - 4_096).min(len) as f64 / len as f64);
        let want = 0.5 * a.cos() * sine_at(440.0, 1.0, n, SR)
            + 0.25 * a.sin() * sine_at(440.0, 1.0, n - 4_096, SR);
        assert!(
            (s as f64 - want).abs() < 1e-5,
            "frame {n}: {s}, expected {want:.6}"
        );
    }
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn compiled_modules_are_cached_by_content_in_memory_and_on_disk() {
    use lel_host::Source;
    let cache = tempdir();
    let engine = || {
        Renderer::with_settings(Settings {
            channels: 1,
            cache_dir: Some(cache.path().to_path_buf()),
            ..Settings::default()
        })
        .unwrap()
    };
    let a = fixtures::sine(441.0, 0.5);
    let b = fixtures::sine(442.0, 0.5);
    let mut r = engine();
    assert_eq!(
        r.load_bytes("s", a.as_bytes()).unwrap().unwrap().source,
        Source::Compiled
    );
    assert_eq!(
        r.load_bytes("s", b.as_bytes()).unwrap().unwrap().source,
        Source::Compiled
    );
    // Back to a known version: from memory.
    assert_eq!(
        r.load_bytes("s", a.as_bytes()).unwrap().unwrap().source,
        Source::Memory
    );
    // The same bytes again: nothing to do.
    assert!(
        r.load_bytes("s", a.as_bytes()).unwrap().is_none(),
        "identical content is skipped"
    );
    // A restart: from disk, and it plays. (The disk copy is written in the
    // background: wait for both checksums.)
    let written = || {
        std::fs::read_dir(cache.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "b3")
            })
            .count()
    };
    let start = std::time::Instant::now();
    while written() < 2 && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut r = engine();
    assert_eq!(
        r.load_bytes("s", b.as_bytes()).unwrap().unwrap().source,
        Source::Disk
    );
    let f = dominant_frequency(&r.render(SR as usize), SR);
    assert!((f - 442.0).abs() < 0.5, "{f}");
    // A damaged cache entry is ignored (recompiled), never trusted.
    for e in std::fs::read_dir(cache.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "cwasm") {
            let mut bytes = std::fs::read(&p).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&p, bytes).unwrap();
        }
    }
    let mut r = engine();
    assert_eq!(
        r.load_bytes("s", a.as_bytes()).unwrap().unwrap().source,
        Source::Compiled
    );
}

/// A module that logs "tick N" from every `process` call.
fn chatty() -> String {
    fixtures::module(
        r#"(import "lel:signal/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (data (i32.const 16) "tick")"#,
        "(i32.const 1)",
        "(call $log (i32.const 2) (i32.const 16) (i32.const 4)) (i32.const 1024)",
    )
}

#[test]
fn guest_log_lines_from_process_go_through_the_ring_without_allocating() {
    let mut r = mono();
    r.load_bytes("chatty", chatty().as_bytes()).unwrap();
    r.render(SR as usize);
    assert_eq!(audio_thread_allocations(&mut r), 0);
}

#[test]
fn guest_log_lines_from_process_reach_the_log_tagged_with_the_signal() {
    let dir = tempdir();
    let path = write(dir.path(), "chatty.wat", &chatty());
    let out = run_ok(
        std::process::Command::new(lel_host_bin())
            .args(["run", "--device", "none", "--seconds", "0.3"])
            .arg(&path)
            .env("NO_COLOR", "1"),
        "lel-host run",
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.ends_with("chatty: tick")),
        "{stderr}"
    );
}

#[test]
fn unloading_during_a_crossfade_fades_both_versions_together() {
    // Swap (20 ms crossfade) and unload (10 ms fade) at the same block
    // boundary: the output is the crossfade times the fade, then silence.
    let (mut r, _) = crossfading_to_a_quieter_sine();
    r.unload("lead");
    let x = r.render(2_048);
    for (i, &s) in x.iter().enumerate() {
        let n = 4_096 + i;
        let phase = sine_at(440.0, 1.0, n, SR);
        let t = i as f64 / 960.0;
        let fade = (1.0 - i as f64 / 480.0).max(0.0);
        let want = (0.5 * (1.0 - t) + 0.25 * t) * phase * fade;
        assert!(
            (s as f64 - want).abs() < 1e-5,
            "frame {i}: {s}, expected {want:.6}"
        );
    }
    assert_eq!(audio_thread_allocations(&mut r), 0);
}
