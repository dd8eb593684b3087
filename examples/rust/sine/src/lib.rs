//! `sine`: the smallest signal: a 440 Hz sine, mono, amplitude 0.5 (-6 dBFS).
//!
//! Build (from this folder, or from anywhere in the workspace with
//! `-p sine`):
//!
//! ```sh
//! cargo build --target wasm32-unknown-unknown --release
//! ```
//!
//! Play it (paths from the repository root, where the workspace's `target/`
//! is):
//!
//! ```sh
//! lel-host run target/wasm32-unknown-unknown/release/sine.wasm
//! ```
//!
//! or have `lel-host` watch `target/wasm32-unknown-unknown/release/` and
//! rebuild after an edit: the new version takes over with the oscillator's
//! phase intact (its state is claimed under the key `osc#0`).

#![cfg_attr(target_arch = "wasm32", no_std)]

use lel::prelude::*;

lel::signal!(osc(440).gain(0.5));
