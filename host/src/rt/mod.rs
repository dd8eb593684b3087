//! Real-time code: everything in this folder runs on the audio thread (and
//! slots also on the render workers of [`pool`], under the same guard).
//!
//! Nothing here allocates, frees, locks, logs or touches a file on the
//! fault-free path (allocator calls counted in the tests and under
//! `--stats`, see [`guard`]). Versions arrive ready-made from the loader through a
//! wait-free queue; retired ones leave through another to be dropped
//! elsewhere; what happens is reported as plain [`messages::Event`]s.
//!
//! Data flow: audio callback -> [`guard`] -> [`mixer::Mixer`] -> [`pool::Pool`]
//! -> [`slot::Slot`] (each into its own buffer) -> [`version::Version`] (a
//! guest instance); the slot buffers summed in slot order through
//! [`strip::Strips`] (gain, mute, solo) -> [`master::Master`].

pub mod callback;
pub mod clock;
pub mod consts;
pub mod cpu;
pub mod guard;
pub mod guest;
pub mod kernels;
pub mod layout;
pub mod level;
pub mod log_ring;
pub mod master;
pub mod messages;
pub mod meter;
pub mod mixer;
pub mod outbox;
pub mod params;
pub mod pool;
pub mod priority;
pub mod slot;
pub mod stop;
pub mod strip;
pub mod version;
