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
//! The crate's public face is small: the command line ([`Cli`], [`run`]),
//! the engine driven without a device ([`Renderer`]), its [`Settings`] and
//! [`Notice`]s, parameters and events ([`ParamInfo`], [`NoteEvent`]), and
//! the [`contract`] (the `lel:signal` ABI). Everything else
//! is private to the crate, so the compiler reports what is dead:
//!
//! - `rt`: everything that runs on the audio thread. Nothing there
//!   allocates, locks, logs or touches a file. It imports nothing upstream.
//! - `loader`: validates, compiles, instantiates and `init`s module
//!   versions, placing their state claims (loader threads).
//! - `control`: the control side of the engine: the one load pipeline
//!   (startup, `render`, `check`, the watcher), each signal's status,
//!   unloading, retired versions, events as notices.
//! - `live`: `run`: the device, the watcher, the console.
//! - `files`: module files: names, folders, reading regular files only.
//! - `input`: sources of control: OSC (its own thread), MIDI (JACK,
//!   forwarded by a thread of its own), MIDI files and `--set`, applied by
//!   the control loop through the control-event queue.
//! - `offline`: the engine driven without a device (`render`, tests).
//! - `session`: `run --session DIR` records a performance; `replay`
//!   renders it again offline, bit for bit.
//! - `check`, `scaffold`, `wav`, `cli`: the other subcommands and the
//!   command line.
//!
//! [`testing`] re-exports the few internals that the integration tests and
//! the benchmarks reach into; it is not an API.

pub mod contract;

mod check;
mod cli;
mod control;
mod files;
mod input;
mod live;
mod loader;
mod offline;
mod rt;
mod scaffold;
mod session;
mod wav;

pub use cli::{Cli, run};
pub use control::{Notice, ParamInfo, Settings};
pub use live::console::log_writer;
pub use loader::LoadReport;
pub use loader::cache::Source;
pub use offline::{RenderSettings, Renderer};
pub use rt::guest::GuestLimits;
pub use rt::messages::{EventKind, NoteEvent};
pub use rt::params::ParamDecl;
pub use scaffold::ZIG_VERSION;

/// Internals that the integration tests (`tests/integration/`) and the
/// benchmarks (`host/benches/`) use directly: the module cache and the
/// compiler, the state layout, thread priority and CPU clocks, the drop
/// counters of retired versions, and the control side without a renderer.
/// Not an API: these follow the code.
#[doc(hidden)]
pub mod testing {
    pub use crate::control::Control;
    pub use crate::input::midi::parse as parse_midi;
    pub use crate::input::osc::{Incoming, OscServer};
    pub use crate::input::{Command, MidiMap, Play, Target, apply};
    pub use crate::live::console::strip_ansi;
    pub use crate::loader::cache::{CacheLimits, ModuleCache, file_name, hash};
    pub use crate::loader::instrument::{FLAGS_NAME, STOP_MODULE, WORD_NAME, instrument};
    pub use crate::loader::runtime::Runtime;
    pub use crate::rt::clock::counter_in_use;
    pub use crate::rt::cpu::thread_cpu_ns;
    pub use crate::rt::kernels::clean_vector_state;
    pub use crate::rt::layout::{Claims, Layout};
    pub use crate::rt::priority::{Role, promote};
    pub use crate::rt::version::{DROPPED, DROPPED_ON_AUDIO_THREAD};
}

/// Every allocation in the process goes through a counting wrapper of the
/// system allocator, so that audio-thread code run under [`rt::guard::run`]
/// with the check on counts any allocation it makes (silently).
#[global_allocator]
static ALLOCATOR: rt::guard::CountingAllocator = rt::guard::CountingAllocator;
