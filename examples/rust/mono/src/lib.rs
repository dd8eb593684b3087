//! `mono`: the smallest playable signal, the same in every language (C, Zig,
//! AssemblyScript, WAT): a sine at the last note's pitch (with the pitch
//! bend), on while the note is held, scaled by its velocity and by the
//! parameter `level` (0 to 1, default 0.5, smoothed over 20 ms). Mono.
//!
//! ```sh
//! scripts/build-examples rust      # -> target/examples/mono-rust.wasm
//! lel-host run target/examples/mono-rust.wasm --osc 9000
//! oscsend localhost 9000 /lel/mono-rust/note ii 69 127
//! oscsend localhost 9000 /lel/mono-rust/level f 0.2
//! ```
//!
//! (No envelope: a note starts and stops at its frame, on purpose, so the
//! languages' outputs can be compared sample by sample.)

#![cfg_attr(target_arch = "wasm32", no_std)]

use lel::prelude::*;

lel::signal!(osc(pitch()) * gate() * velocity() * param("level", 0.5));
