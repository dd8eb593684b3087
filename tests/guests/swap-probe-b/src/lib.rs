//! `swap-probe-b`: test-only guest for `tests/integration/sdk.rs`: the
//! signal of `swap-probe-a` with the output gain halved (0.25), so swapping
//! A for B mid-stream must give exactly half of A's output if every helper
//! kept its state.

#![cfg_attr(target_arch = "wasm32", no_std)]

#[path = "../../swap-probe-a/src/probe.rs"]
mod probe;

lel::signal!(probe::probe(0.25));
