//! The integration-test binary for lel-host: one binary, one module per
//! concern. Audio is rendered for real and decoded (frequency, level,
//! continuity); guest modules are built from source (`.wat` text, Rust
//! crates) by the tests themselves.
//!
//! - `render`: the offline engine and the `render`/`check` commands
//! - `swap`:   hot swaps between blocks, state carried or fresh, claims
//! - `errors`: every rejection, with the message the musician sees
//! - `live`:   `lel-host run` watching files, on the silent clock
//! - `loading`: what is read and loaded from a folder, and when (special
//!   files, hidden files, slow and oversized modules)
//! - `device`: the real cpal path through an ALSA device
//! - `mixing`: per-signal gain, mute and solo at exact frames
//! - `params`: contract 0.2, parameters and events at exact frames
//! - `threads`: rendering on several threads, bit-identical to one
//! - `architecture`: the source tree's shape (the real-time core is a leaf)
//! - `console`: the live console in a real terminal (tmux)
//! - `constants`: the SDKs' constants agree with the host's (one table)
//! - `osc`:     OSC over real UDP: parameters, notes, queries, errors, garbage
//! - `midi`:    MIDI files, the MIDI map, random bytes, and JACK MIDI end to end

mod architecture;
mod console;
mod constants;
mod device;
mod errors;
mod fixtures;
mod fuzz;
mod isolation;
mod languages;
mod limits;
mod live;
mod loading;
mod midi;
mod mixing;
mod osc;
mod params;
mod render;
mod sdk;
mod session;
mod swap;
mod threads;
mod timing;
mod util;
