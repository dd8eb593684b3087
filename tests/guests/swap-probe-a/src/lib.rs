//! `swap-probe-a`: test-only guest for `tests/integration/sdk.rs`: every
//! stateful helper on its own channel (see `probe.rs`), output gain 0.5.
//! `swap-probe-b` is the same signal at gain 0.25: a rebuilt version that
//! differs only in a harmless way, to swap to mid-stream.

#![cfg_attr(target_arch = "wasm32", no_std)]

mod probe;

lel::signal!(probe::probe(0.5));
