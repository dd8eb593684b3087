//! `filtered-delayed-sine`: the original engine's
//! `pipe(osc(440), lowpass(800), tremolo(5, 0.8), delay(0.5, 0.25), gain(0.4))`:
//! a 440 Hz sine through a one-pole lowpass at 800 Hz, a 5 Hz tremolo of
//! depth 0.8, an echo every 0.25 s (line of 0.5 s, feedback 0.5, mix 0.5)
//! and a gain of 0.4. Mono.
//!
//! Build: `cargo build --target wasm32-unknown-unknown --release -p filtered-delayed-sine`.
//! Play: `lel-host run target/wasm32-unknown-unknown/release/filtered_delayed_sine.wasm`
//! (or watch that folder). Edit a number and rebuild: the phase, the filter's
//! memory, the tremolo's phase and the echoes in the delay line carry over
//! (keys `osc#0`, `lowpass#0`, `tremolo#0`, `delay#0`).

#![cfg_attr(target_arch = "wasm32", no_std)]

use lel::prelude::*;

// The same chain, written with `pipe!`:
// lel::pipe!(osc(440), lowpass(800), tremolo(5, 0.8), delay(0.5, 0.25), gain(0.4))
lel::signal!(
    osc(440)
        .lowpass(800)
        .tremolo(5, 0.8)
        .delay(0.5, 0.25)
        .gain(0.4)
);
