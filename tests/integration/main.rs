//! The integration-test binary for lel-host: one binary, one module per
//! concern. Audio is rendered for real and decoded (frequency, level,
//! continuity); guest modules are built from source (`.wat` text, Rust
//! crates) by the tests themselves.
//!
//! - `render`: the offline engine and the `render`/`check` commands
//! - `swap`:   hot swaps between blocks, state carried or fresh, claims
//! - `errors`: every rejection, with the message the musician sees
//! - `live`:   `lel-host run` watching files, on the silent clock
//! - `device`: the real cpal path through an ALSA device
//! - `architecture`: the source tree's shape (the real-time core is a leaf)

mod architecture;
mod device;
mod errors;
mod fixtures;
mod fuzz;
mod isolation;
mod languages;
mod limits;
mod live;
mod render;
mod sdk;
mod swap;
mod util;
