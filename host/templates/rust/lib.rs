//! {{name}}: a 440 Hz sine at half scale, mono. Edit, run ./build.sh, and
//! the playing version is replaced keeping the oscillator's phase (key osc#0).
//!
//! Build: ./build.sh (cargo build --release --target wasm32-unknown-unknown,
//! copied to out/{{name}}.wasm). Play live: lel-host run out/

#![cfg_attr(target_arch = "wasm32", no_std)]

use lel::prelude::*;

lel::signal!(osc(440).gain(0.5));
