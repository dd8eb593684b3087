//! lel-host: a live-coding audio host for WebAssembly signal modules.
//!
//! Data flow, from the sound card back to the file on disk:
//!
//! ```text
//! device -> callback (rt/callback.rs) -> mixer (rt/mixer.rs) -> slots
//!        (rt/slot.rs) -> versions (rt/version.rs)
//! watcher (live/watcher.rs: when) -> load pipeline (control/pipeline.rs:
//!        read with files.rs, prepare with loader/) -> control (control/)
//! ```
//!
//! - [`rt`]: everything that runs on the audio thread. Nothing there
//!   allocates, locks, logs or touches a file.
//! - [`loader`]: validates, compiles, instantiates and `init`s module
//!   versions, placing their state claims (loader threads).
//! - [`control`]: the control side of the engine: the one load pipeline
//!   (startup, `render`, `check`, the watcher), each signal's status,
//!   unloading, retired versions, events as notices.
//! - [`files`]: module files: names, folders, reading regular files only.
//! - [`input`]: sources of control: OSC (its own thread), MIDI (JACK,
//!   forwarded by a thread of its own), MIDI files and `--set`, applied by
//!   the control loop through the control-event queue.
//! - [`offline`]: the engine driven without a device (`render`, tests).
//! - [`contract`]: the `lel:signal` ABI, generated from `wit/lel.wit`.

pub mod check;
pub mod cli;
pub mod contract;
pub mod control;
pub mod files;
pub mod input;
pub mod live;
pub mod loader;
pub mod offline;
pub mod rt;
pub mod scaffold;
pub mod wav;

/// Every allocation in the process goes through a counting wrapper of the
/// system allocator, so that audio-thread code run under [`rt::guard::run`]
/// with the check on counts any allocation it makes (silently).
#[global_allocator]
static ALLOCATOR: rt::guard::CountingAllocator = rt::guard::CountingAllocator;
