//! Parts of the benchmark kept from before the speed work: the pool's
//! speed-up with `--threads 1` vs `--threads 2` on heavy signals and its cost
//! on light ones, and the claim placement's growth (5,000 vs 20,000 claims).
//! Run by `cargo bench -p lel-host` after the speed sections, or alone with
//! `-- pool` / `-- claims`. Runs on the benchmark's thread.

use std::time::{Duration, Instant};

use lel_host::Renderer;
use lel_host::Settings;

use super::{SR, repo};

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
            lel_host::testing::promote(lel_host::testing::Role::Audio);
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

/// 4. State claims: 5,000 vs 20,000 claims in one `init`'s placement (a
///    first version, then a second that carries every block): linear-ish
///    placement gives a ratio near 4, quadratic near 16.
pub fn claims() {
    use lel_host::testing::{Claims, Layout};
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

pub fn pool() {
    // 3. The pool, both thread counts in one run, interleaved. The rendering
    // threads (this one and the workers) ask for real-time priority, as in
    // `run`: on a machine busy with other processes, the scheduler's share
    // for this process would otherwise decide the ratio, not the pool. And
    // `--threads 1` runs keep the other core quiet (see `QuietCore`), so that
    // both sides have the machine to themselves.
    let rt = lel_host::testing::promote(lel_host::testing::Role::Audio);
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
