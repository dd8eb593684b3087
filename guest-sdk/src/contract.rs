//! The `lel:signal@0.2.0` contract's constants and host imports for the Rust SDK,
//! generated from wit/lel.wit and wit/constants.txt by lel-host's build
//! script (host/build/constants.rs): do not edit; run scripts/gen-constants
//! after changing those

/// The contract package and version this SDK speaks.
pub const PACKAGE: &str = "lel:signal@0.2.0";
/// The import module of the host's functions.
pub const HOST_MODULE: &str = "lel:signal/host@0.2.0";

// Limits the host enforces.
/// Longest `claim` key, in bytes (a key is 1 to this many bytes of UTF-8).
pub const MAX_KEY_LEN: usize = 256;
/// Largest alignment a claim may ask for; `state-ptr` must be aligned to it.
pub const MAX_ALIGN: usize = 16;
/// Most output channels `init` may return (it returns 1 to this many).
pub const MAX_CHANNELS: usize = 64;
/// Largest module file the host loads (64 MiB).
pub const MAX_MODULE_BYTES: usize = 67108864;
/// Most parameters one version may declare with `param` (0.2.0).
pub const MAX_PARAMS: usize = 64;
/// Longest parameter key, in bytes (ASCII letters, digits, `_`, `-`, `.`).
pub const MAX_PARAM_KEY_LEN: usize = 64;
/// Longest parameter unit, in bytes of UTF-8.
pub const MAX_UNIT_LEN: usize = 16;
/// Bytes of one event in a module's event buffer (0.2.0).
pub const EVENT_BYTES: usize = 16;

// What `claim` and `param` return to the module when they fail: the contract's
// codes, returned by the host (the range -1 to -15 is the contract's; -3 is
// `claim`'s only, -7 to -9 are `param`'s only).
/// The state region cannot hold the block.
pub const REGION_FULL: i32 = -1;
/// The key is empty, longer than max-key-len bytes, or not UTF-8.
pub const BAD_KEY: i32 = -2;
/// The alignment is not a power of two, or above max-align.
pub const BAD_ALIGN: i32 = -3;
/// The key was already claimed in this `init`.
pub const DUPLICATE_KEY: i32 = -4;
/// `claim` is only callable during `init`.
pub const NOT_IN_INIT: i32 = -5;
/// The module exports no `state-ptr`/`state-len`, or they describe memory it
/// does not have.
pub const NO_STATE_REGION: i32 = -6;
/// `param`: default, min or max not finite, min not below max, default outside
/// min..max, or steps 1.
pub const BAD_RANGE: i32 = -7;
/// `param`: more than max-params parameters in one `init`.
pub const TOO_MANY_PARAMS: i32 = -8;
/// `param`: the unit is longer than max-unit-len bytes, or not UTF-8.
pub const BAD_UNIT: i32 = -9;

// What a module built with one of the lel SDKs returns from `init` when the
// SDK itself fails (the range -16 to -31 is the SDKs'). SDK-private: the host
// never returns them and only names them in its message; every SDK uses the
// same numbers for the same failures (some failures exist in some SDKs only).
/// `init` got a zero sample rate or max-frames.
pub const BAD_ARGS: i32 = -16;
/// The output buffer cannot hold max-frames frames of every channel.
pub const OUTPUT_TOO_SMALL: i32 = -17;
/// The host answered a claim with an address outside the state region, or
/// misaligned (Rust SDK).
pub const BAD_ADDRESS: i32 = -18;
/// `init` or `process` was re-entered (Rust SDK).
pub const BUSY: i32 = -19;
/// The signal asked for a channel count outside 1 to max-channels (C, Zig and
/// AssemblyScript SDKs).
pub const BAD_CHANNELS: i32 = -20;

// Levels of the `log` import (a level above log-trace is logged as trace).
/// Something failed.
pub const LOG_ERROR: i32 = 0;
/// Something is wrong but the signal plays on.
pub const LOG_WARN: i32 = 1;
/// Worth knowing.
pub const LOG_INFO: i32 = 2;
/// Detail for debugging.
pub const LOG_DEBUG: i32 = 3;
/// Even more detail.
pub const LOG_TRACE: i32 = 4;

// The kind of an event in a module's event buffer (byte 4 of each 16-byte
// event, 0.2.0).
/// A note starts: number = key 0..127, value = velocity 0..1.
pub const NOTE_ON: u8 = 1;
/// A note ends: number = key, value = release velocity 0..1.
pub const NOTE_OFF: u8 = 2;
/// A MIDI controller moved: number = controller 0..127, value = 0..1.
pub const CONTROL_CHANGE: u8 = 3;
/// The pitch wheel moved: value = -1..1 (the range in semitones is the
/// guest's).
pub const PITCH_BEND: u8 = 4;
/// Channel aftertouch: value = 0..1.
pub const CHANNEL_PRESSURE: u8 = 5;
/// A parameter changed at this frame: number = its index, value = the new
/// value.
pub const PARAM: u8 = 6;

// The SDKs' defaults (not the contract's): every SDK sizes its module the
// same.
/// Bytes in the state region of a module (1 MiB).
pub const DEFAULT_STATE_BYTES: usize = 1048576;
/// `f32` samples in the static output buffer.
pub const DEFAULT_OUTPUT_SAMPLES: usize = 8192;
/// Alignment of every block the SDKs' helpers claim.
pub const CLAIM_ALIGN: usize = 16;
/// Events in an SDK's static event buffer (4096 bytes, 0.2.0).
pub const DEFAULT_EVENT_CAPACITY: usize = 256;

/// The host's functions (`lel:signal/host@0.2.0`), on wasm32.
#[cfg(target_arch = "wasm32")]
#[rustfmt::skip]
pub(crate) mod host {
    #[link(wasm_import_module = "lel:signal/host@0.2.0")]
    unsafe extern "C" {
        /// `claim` of `wit/lel.wit`.
        pub fn claim(key_ptr: i32, key_len: i32, size: i32, align: i32) -> i32;
        /// `log` of `wit/lel.wit`.
        pub fn log(level: i32, msg_ptr: i32, msg_len: i32);
        /// `param` of `wit/lel.wit`.
        pub fn param(key_ptr: i32, key_len: i32, default: f32, min: f32, max: f32, unit_ptr: i32, unit_len: i32, steps: i32) -> i32;
    }
}
