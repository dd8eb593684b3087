//! Property test of the loader and `check` against malformed input: mutated
//! valid modules and random modules from `wasm-smith`. Whatever the bytes,
//! the host must not panic or hang, and every rejection must be a clean error
//! with a message. Deterministic (seeded), so a failure reproduces.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use lel_host::Renderer;
use lel_host::Settings;

use crate::fixtures;
use crate::util::*;

/// xorshift64*: small, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len().max(1);
        match rng.below(6) {
            0 => {
                let i = rng.below(len);
                if i < b.len() {
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(len);
                if i < b.len() {
                    b[i] = [0x00, 0xff, 0x80, 0x7f, 0x41][rng.below(5)];
                }
            }
            2 => b.truncate(rng.below(len)),
            3 => {
                let (i, n) = (rng.below(len), 1 + rng.below(16));
                let chunk: Vec<u8> = b.iter().skip(i).take(n).copied().collect();
                let at = rng.below(b.len() + 1);
                b.splice(at..at, chunk);
            }
            4 => {
                let i = rng.below(len);
                let n = rng.below(16).min(b.len().saturating_sub(i));
                b.drain(i..i + n);
            }
            _ => {
                let i = rng.below(len);
                if i < b.len() {
                    b[i] = b[i].wrapping_add(1 + rng.below(3) as u8);
                }
            }
        }
    }
    b
}

/// Load `bytes` (validate, compile, instantiate, init), render a few blocks
/// if it loads; never panics. Returns the error text, if any.
fn exercise(r: &mut Renderer, bytes: &[u8]) -> Option<String> {
    let _ = lel_host::contract::validate(bytes);
    match r.control().load("fuzz", bytes, None) {
        Ok(_) => {
            r.render(512);
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

fn engine() -> Renderer {
    Renderer::with_settings(Settings {
        channels: 1,
        init_timeout: Duration::from_millis(200),
        cache_dir: None,
        ..Settings::default()
    })
    .unwrap()
}

#[test]
fn mutated_modules_never_panic_or_hang_and_fail_cleanly() {
    let seeds: Vec<Vec<u8>> = [
        fixtures::example("examples/wat/sine.wat"),
        fixtures::example("examples/wat/stereo.wat"),
        fixtures::counter(&[("a", 8), ("b", 16)], "a", 1024),
        fixtures::faulty(3, "(unreachable)", ""),
    ]
    .iter()
    .map(|t| wat::parse_str(t).unwrap())
    .collect();
    let mut rng = Rng(0x05ee_d1e1);
    let mut r = engine();
    let (mut rejected, mut loaded) = (0, 0);
    for case in 0..600 {
        let seed = &seeds[case % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        let started = Instant::now();
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| exercise(&mut r, &bytes)));
        let took = started.elapsed();
        match out {
            Ok(Some(msg)) => {
                assert!(
                    !msg.trim().is_empty(),
                    "case {case}: an empty error message"
                );
                rejected += 1;
            }
            Ok(None) => loaded += 1,
            Err(_) => panic!(
                "case {case}: the host panicked on {} mutated bytes",
                bytes.len()
            ),
        }
        assert!(took < Duration::from_secs(5), "case {case}: took {took:?}");
        if case % 50 == 49 {
            // Keep one engine, but start afresh now and then.
            r = engine();
        }
    }
    assert!(
        rejected > 100 && loaded > 10,
        "a useful mix: {rejected} rejected, {loaded} loaded"
    );
}

#[test]
fn random_wasm_smith_modules_never_panic_and_fail_cleanly() {
    let mut rng = Rng(0xdead_beef);
    let mut r = engine();
    for case in 0..200 {
        let data: Vec<u8> = (0..2048).map(|_| rng.next() as u8).collect();
        let mut u = Unstructured::new(&data);
        let config = wasm_smith::Config {
            max_memory32_bytes: 1 << 20,
            max_memories: 1,
            max_tables: 2,
            max_table_elements: 100,
            threads_enabled: false,
            exceptions_enabled: false,
            gc_enabled: false,
            ..Default::default()
        };
        let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
            continue;
        };
        let bytes = module.to_bytes();
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| exercise(&mut r, &bytes)));
        match out {
            Ok(Some(msg)) => assert!(!msg.is_empty(), "case {case}"),
            Ok(None) => {}
            Err(_) => panic!("case {case}: the host panicked on a wasm-smith module"),
        }
    }
}

#[test]
fn check_reports_every_mutant_cleanly() {
    // The `check` command over a folder of mutants: exit status 0 or 1, one
    // line per file, never a crash.
    let dir = tempdir();
    let seed = wat::parse_str(fixtures::example("examples/wat/sine.wat")).unwrap();
    let mut rng = Rng(42);
    for i in 0..40 {
        std::fs::write(
            dir.path().join(format!("m{i:02}.wasm")),
            mutate(&mut rng, &seed),
        )
        .unwrap();
    }
    let out = std::process::Command::new(lel_host_bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 40, "one line per module:\n{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("ok    ") || l.starts_with("error ")),
        "{stdout}"
    );
}
