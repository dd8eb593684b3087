//! `drum-pattern`: a one-bar, 16-step pattern at 120 BPM (kick, snare,
//! hi-hat and a saw bass line) sequenced from the host's shared clock.
//!
//! Nothing here counts time itself: every step, gate and pitch sweep is a
//! function of the absolute clock (`Ctx::step`, `Ctx::step_phase`), which
//! all signals share and no reload resets. Load it twice, or load it next
//! to another clocked signal, at any moment: they play on the same grid,
//! and a rebuilt version comes in on the beat. Mono, peaks near -4 dBFS.
//!
//! Build: `cargo build --target wasm32-unknown-unknown --release -p drum-pattern`.
//! Play: `lel-host run target/wasm32-unknown-unknown/release/drum_pattern.wasm`
//! (or watch that folder).

#![cfg_attr(target_arch = "wasm32", no_std)]

use lel::prelude::*;

/// Tempo: quarter notes per minute.
const BPM: f64 = 120.0;
/// Steps per beat: sixteenth notes.
const PER_BEAT: f64 = 4.0;

const KICK: [u8; 16] = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0];
const SNARE: [u8; 16] = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
const HAT: [u8; 16] = [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1];
/// Bass notes (MIDI numbers), 0 for a rest.
const BASS: [u8; 16] = [36, 0, 36, 0, 39, 0, 36, 0, 43, 0, 41, 0, 39, 0, 34, 0];

/// The step of the bar, 0..16.
fn step(c: &Ctx) -> usize {
    (c.step(BPM, PER_BEAT) % 16) as usize
}

/// A gate that is on for the first `length` (fraction of a step) of every
/// step where `pattern` has a hit.
fn gate(pattern: &[u8; 16], c: &Ctx, length: f64) -> f64 {
    let on = pattern[step(c)] != 0 && c.step_phase(BPM, PER_BEAT) < length;
    if on { 1.0 } else { 0.0 }
}

/// Seconds since the latest step where `pattern` has a hit.
fn since_hit(pattern: &[u8; 16], c: &Ctx) -> f64 {
    let now = step(c);
    let back = (0..16)
        .find(|k| pattern[(now + 16 - k) % 16] != 0)
        .unwrap_or(0);
    back as f64 * 60.0 / (BPM * PER_BEAT) + c.since_step(BPM, PER_BEAT)
}

/// The bass note of the latest step that has one.
fn bass_hz(c: &Ctx) -> f64 {
    let now = step(c);
    let note = (0..16).map(|k| BASS[(now + 16 - k) % 16]).find(|&n| n != 0);
    hz_from_midi(note.unwrap_or(36) as f64)
}

lel::signal!({
    // Kick: a sine swept from 155 Hz down to 45 Hz after every hit.
    let kick = sine(|c: &Ctx| 45.0 + 110.0 * exp(-35.0 * since_hit(&KICK, c))).gain(ar(
        |c: &Ctx| gate(&KICK, c, 0.1),
        0.001,
        0.35,
    ));
    // Snare: band-passed noise over a short 185 Hz body.
    let snare = (noise().seed(1).bpf(1800, 0.8) + triangle(185).gain(0.6)).gain(ar(
        |c: &Ctx| gate(&SNARE, c, 0.05),
        0.001,
        0.18,
    ));
    // Hi-hat: high-passed noise, very short.
    let hat = noise()
        .seed(2)
        .hpf(7000, 0.7)
        .gain(ar(|c: &Ctx| gate(&HAT, c, 0.02), 0.0005, 0.05));
    // Bass: a saw through a resonant lowpass that closes after each note.
    let bass = saw(bass_hz)
        .lpf(
            |c: &Ctx| 250.0 + 1500.0 * exp(-12.0 * c.since_step(BPM, PER_BEAT)),
            3.0,
        )
        .gain(adsr(|c: &Ctx| gate(&BASS, c, 0.6), 0.003, 0.08, 0.6, 0.1));
    kick.gain(0.3) + snare.gain(0.15) + hat.gain(0.08) + bass.gain(0.14)
});
