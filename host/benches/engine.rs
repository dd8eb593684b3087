//! Benchmarks, reported as ratios measured in one run (this machine is
//! noisy; absolute times are not comparable between runs):
//!
//! 1. wasm vs native: the `filtered-delayed-sine` chain of the Rust SDK,
//!    compiled to wasm32 and played through the whole engine (mixer, master,
//!    control side), against the same chain compiled natively and run by the
//!    SDK's native harness.
//! 2. the engine's cost per signal: 1 vs 32 copies of `examples/wat/sine.wat`.
//! 3. the pool: 8 and 64 copies of `host/benches/heavy.wat` rendered with
//!    `--threads 1` and `--threads 2` (the speed-up), and what the pool costs
//!    per block when there is nothing to share (1 light signal) and when a
//!    light block is shared anyway (2 light signals, sharing forced).
//!
//! 4. state claims: 5,000 vs 20,000 claims placed (and carried) in one go.
//!
//! Run with `cargo bench -p lel-host` (builds the guest for wasm32 first);
//! `cargo bench -p lel-host -- pool` runs part 3 only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lel::prelude::*;
use lel_host::control::Settings;
use lel_host::offline::Renderer;

const SR: u32 = 48_000;
const SECONDS: usize = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn build_chain_wasm() -> PathBuf {
    let target = repo().join("target/guests");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "filtered-delayed-sine",
        ])
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building the guest failed (rustup target add wasm32-unknown-unknown?)"
    );
    target.join("wasm32-unknown-unknown/release/filtered_delayed_sine.wasm")
}

fn engine() -> Renderer {
    engine_on(1, Settings::default().parallel_min)
}

fn engine_on(threads: usize, parallel_min: Duration) -> Renderer {
    Renderer::with_settings(Settings {
        sample_rate: SR,
        channels: 1,
        block: 128,
        threads,
        parallel_min,
        // Workers at real-time priority when allowed, as in `run`.
        realtime: true,
        // Offline: no call is ever stopped for taking long.
        call_budget: 4.0,
        ..Settings::default()
    })
    .unwrap()
}

/// `n` copies of `text` (each at another level, so none is a duplicate).
fn load_copies(r: &mut Renderer, text: &str, n: usize) {
    for i in 0..n {
        let t = format!("{text}\n;; copy {i}\n");
        r.load_bytes(&format!("s{i}"), t.as_bytes()).unwrap();
    }
}

/// While alive, a real-time thread keeps another core from other processes
/// by spinning on `pause` (which leaves the core's execution units to a
/// hyperthread sibling): a `--threads 1` run then has the machine to itself
/// as much as a `--threads 2` run has.
struct QuietCore(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl QuietCore {
    fn start() -> QuietCore {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            lel_host::rt::priority::promote(lel_host::rt::priority::Role::Audio);
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        QuietCore(stop, Some(h))
    }
}

impl Drop for QuietCore {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

/// Per-block time of `frames` frames on `r`, best of `runs`.
fn per_block(r: &mut Renderer, frames: usize, runs: usize) -> f64 {
    let mut out = vec![0.0f32; frames];
    r.render_into(&mut out); // first calls, out of the timing
    let t = best(runs, || r.render_into(&mut out));
    t.as_nanos() as f64 / (frames / 128) as f64 / 1e3
}

/// Best of `runs` timings of `f` (the least disturbed by other processes).
fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    // `cargo bench -p lel-host -- pool` runs only the pool's part (3.),
    // `-- claims` only part 4.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "claims") {
        claims();
        return;
    }
    let only_pool = args.iter().any(|a| a == "pool");
    if !only_pool {
        wasm_and_signals();
    }
    pool();
    claims();
}

/// 4. State claims: 5,000 vs 20,000 claims in one `init`'s placement (a
///    first version, then a second that carries every block): linear-ish
///    placement gives a ratio near 4, quadratic near 16.
fn claims() {
    use lel_host::rt::layout::{Claims, Layout};
    let place = |n: usize| {
        let keys: Vec<String> = (0..n).map(|i| format!("voice#{i}")).collect();
        best(3, || {
            let mut c = Claims::new(Layout::default(), n as u32 * 16);
            for k in &keys {
                c.claim(k.as_bytes(), 16, 16).unwrap();
            }
            let v1 = c.finish();
            let mut c = Claims::new(v1, n as u32 * 16);
            for k in &keys {
                c.claim(k.as_bytes(), 16, 16).unwrap();
            }
            std::hint::black_box(c.finish());
        })
    };
    let (small, large) = (place(5_000), place(20_000));
    println!(
        "claims: 5,000 in {:.1} ms, 20,000 in {:.1} ms (twice each: placed, then carried): ratio {:.1} for 4x the claims",
        small.as_secs_f64() * 1e3,
        large.as_secs_f64() * 1e3,
        large.as_secs_f64() / small.as_secs_f64()
    );
}

fn wasm_and_signals() {
    let frames = SR as usize * SECONDS;
    let realtime = Duration::from_secs(SECONDS as u64);

    // 1. wasm vs native, interleaved in one run.
    let wasm_path = build_chain_wasm();
    let mut wasm = engine();
    wasm.load(&wasm_path).unwrap();
    let mut native = lel::testing::Harness::new(SR, || {
        osc(440)
            .lowpass(800)
            .tremolo(5, 0.8)
            .delay(0.5, 0.25)
            .gain(0.4)
    })
    .unwrap();
    let mut w_out = vec![0.0f32; frames];
    let t_wasm = best(5, || wasm.render_into(&mut w_out));
    let t_native = best(5, || {
        std::hint::black_box(native.render(frames));
    });
    println!("filtered-delayed-sine, {SECONDS} s of mono audio in 128-frame blocks (best of 5):");
    println!(
        "  wasm through lel-host: {:7.1} ms ({:6.0}x real time)",
        t_wasm.as_secs_f64() * 1e3,
        realtime.as_secs_f64() / t_wasm.as_secs_f64()
    );
    println!(
        "  native (SDK harness):  {:7.1} ms ({:6.0}x real time)",
        t_native.as_secs_f64() * 1e3,
        realtime.as_secs_f64() / t_native.as_secs_f64()
    );
    println!(
        "  ratio wasm / native:   {:.2}",
        t_wasm.as_secs_f64() / t_native.as_secs_f64()
    );

    // 2. Cost per signal.
    let sine = std::fs::read_to_string(repo().join("examples/wat/sine.wat")).unwrap();
    let per = |n: usize| {
        let mut r = engine();
        for i in 0..n {
            r.load_bytes(
                &format!("sine{i}"),
                sine.replace("440", &format!("{}", 200 + i)).as_bytes(),
            )
            .unwrap();
        }
        let mut out = vec![0.0f32; SR as usize * 5];
        best(3, || r.render_into(&mut out))
    };
    let (one, many) = (per(1), per(32));
    let block_budget = 128.0 / SR as f64 * 1e9;
    let blocks = (SR * 5 / 128) as f64;
    println!("engine, 5 s of sine.wat signals (best of 3):");
    println!(
        "  1 signal:   {:6.2} us per block ({:.2} % of the 2.67 ms block period)",
        one.as_nanos() as f64 / blocks / 1e3,
        one.as_nanos() as f64 / blocks / block_budget * 100.0
    );
    println!(
        "  32 signals: {:6.2} us per block ({:.2} % of the block period); {:.2} us per signal",
        many.as_nanos() as f64 / blocks / 1e3,
        many.as_nanos() as f64 / blocks / block_budget * 100.0,
        (many.as_nanos() as f64 - one.as_nanos() as f64) / blocks / 31.0 / 1e3
    );
}

fn pool() {
    // 3. The pool, both thread counts in one run, interleaved. The rendering
    // threads (this one and the workers) ask for real-time priority, as in
    // `run`: on a machine busy with other processes, the scheduler's share
    // for this process would otherwise decide the ratio, not the pool. And
    // `--threads 1` runs keep the other core quiet (see `QuietCore`), so that
    // both sides have the machine to themselves.
    let rt = lel_host::rt::priority::promote(lel_host::rt::priority::Role::Audio);
    println!(
        "pool: rendering threads at {} priority",
        if rt {
            "real-time (SCHED_FIFO)"
        } else {
            "normal (real-time refused)"
        }
    );
    let heavy = std::fs::read_to_string(repo().join("host/benches/heavy.wat")).unwrap();
    let block_us = 128.0 / SR as f64 * 1e6;
    println!("pool, host/benches/heavy.wat signals, 128-frame blocks (best of 5):");
    // Runs short enough (under 0.5 s of CPU) and a pause before each, so
    // that the kernel's real-time throttling (95 % of every second) never
    // cuts into a measurement.
    let rest = || std::thread::sleep(Duration::from_millis(1100));
    for (n, frames) in [(8usize, 128 * 96), (64, 128 * 16)] {
        let mut one = engine_on(1, Settings::default().parallel_min);
        let mut two = engine_on(2, Settings::default().parallel_min);
        load_copies(&mut one, &heavy, n);
        load_copies(&mut two, &heavy, n);
        let (mut t1, mut t2) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            rest();
            let quiet = QuietCore::start();
            t1 = t1.min(per_block(&mut one, frames, 1));
            drop(quiet);
            rest();
            t2 = t2.min(per_block(&mut two, frames, 1));
        }
        println!(
            "  {n:2} heavy signals: --threads 1 {t1:8.1} us per block ({:5.1} % of the period), \
             --threads 2 {t2:8.1} us: speed-up {:.2}x ({} of the 2-thread blocks shared)",
            t1 / block_us * 100.0,
            t1 / t2,
            two.parallel_blocks()
        );
    }
    let light = std::fs::read_to_string(repo().join("examples/wat/sine.wat")).unwrap();
    let frames = 128 * 375;
    let mut one = engine_on(1, Settings::default().parallel_min);
    let mut two = engine_on(2, Settings::default().parallel_min);
    load_copies(&mut one, &light, 1);
    load_copies(&mut two, &light, 1);
    let mut forced1 = engine_on(1, Duration::ZERO);
    let mut forced2 = engine_on(2, Duration::ZERO);
    load_copies(&mut forced1, &light, 2);
    load_copies(&mut forced2, &light, 2);
    let (mut a, mut b, mut c, mut d) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..5 {
        rest();
        let quiet = QuietCore::start();
        a = a.min(per_block(&mut one, frames, 1));
        // The light case never wakes the worker: the other core stays quiet.
        b = b.min(per_block(&mut two, frames, 1));
        c = c.min(per_block(&mut forced1, frames, 1));
        drop(quiet);
        d = d.min(per_block(&mut forced2, frames, 1));
    }
    println!(
        "  1 light signal (sine.wat): --threads 1 {a:.2} us per block, --threads 2 {b:.2} us: \
         pool overhead {:+.2} us per block ({} blocks shared)",
        b - a,
        two.parallel_blocks()
    );
    println!(
        "  2 light signals, every block shared (forced): --threads 1 {c:.2} us, --threads 2 {d:.2} us: \
         {:+.2} us per block to hand out, join and wait ({} blocks shared)",
        d - c,
        forced2.parallel_blocks()
    );
}
