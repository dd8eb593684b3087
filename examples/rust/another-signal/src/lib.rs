//! `another-signal`: a 220 Hz sine panned by `sin(t * 0.3)` (the original
//! engine's `pan(osc(220), s => Math.sin(s.t * 0.3))`): it drifts between
//! the speakers once every 21 seconds, with equal power all the way. Stereo;
//! the sine is at 0.5 before the pan, so no channel goes above -6 dBFS.
//!
//! Build: `cargo build --target wasm32-unknown-unknown --release -p another-signal`.
//! Play: `lel-host run target/wasm32-unknown-unknown/release/another_signal.wasm`
//! (or watch that folder). The pan follows the host's clock `t`, so it
//! picks up where it was after a reload.

#![cfg_attr(target_arch = "wasm32", no_std)]

use lel::prelude::*;

lel::signal!(osc(220).gain(0.5).pan(|c: &Ctx| sin(c.t * 0.3)));
