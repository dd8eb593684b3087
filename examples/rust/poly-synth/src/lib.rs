//! `poly-synth`: an 8-voice instrument to play from MIDI or OSC. Each voice
//! is a band-limited saw through a resonant lowpass (`cutoff`, q 0.7) and an
//! ADSR (5 ms attack, 100 ms decay, sustain 0.7, `release`), scaled by the
//! note's velocity; the voices are summed at a gain of 0.2. Mono.
//!
//! Parameters: `cutoff` (20 to 20,000 Hz, default 2,000) and `release`
//! (0.01 to 5 s, default 0.3), both smoothed over 20 ms.
//!
//! ```sh
//! scripts/build-examples rust      # -> target/examples/poly-synth-rust.wasm
//! lel-host run target/examples/poly-synth-rust.wasm --osc 9000 --midi 0
//! oscsend localhost 9000 /lel/poly-synth-rust/note ii 60 100
//! oscsend localhost 9000 /lel/poly-synth-rust/cutoff f 600
//! ```
//!
//! Rebuild it while notes ring: the voice table (`poly#0`), every voice's
//! oscillator, filter and envelope (`osc#0`..`osc#7`, `biquad#0`..,
//! `env#0`..) and the note state (`notes`) carry over, and the host keeps
//! the knob positions. The same instrument in C: `examples/c/poly-synth.c`.

#![cfg_attr(target_arch = "wasm32", no_std)]

use lel::prelude::*;

lel::signal!(
    poly(8, |v| {
        saw(v.hz()).lpf(
            param("cutoff", 2000.0).range(20.0, 20_000.0).unit("Hz"),
            0.7,
        ) * adsr(
            v.gate(),
            0.005,
            0.1,
            0.7,
            param("release", 0.3).range(0.01, 5.0).unit("s"),
        ) * v.velocity()
    })
    .gain(0.2)
);
