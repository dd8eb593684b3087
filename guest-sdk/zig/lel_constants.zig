//! lel_constants.zig: the lel:signal@0.2.0 contract's constants and host imports
//! for the Zig SDK (lel.zig imports it), generated from wit/lel.wit and
//! wit/constants.txt by lel-host's build script (host/build/constants.rs):
//! do not edit; run scripts/gen-constants after changing those.

/// The contract package and version this SDK speaks.
pub const package = "lel:signal@0.2.0";
/// The import module of the host's functions.
pub const host_module = "lel:signal/host@0.2.0";

// Limits the host enforces.
/// Longest `claim` key, in bytes (a key is 1 to this many bytes of UTF-8).
pub const max_key_len = 256;
/// Largest alignment a claim may ask for; `state-ptr` must be aligned to it.
pub const max_align = 16;
/// Most output channels `init` may return (it returns 1 to this many).
pub const max_channels = 64;
/// Largest module file the host loads (64 MiB).
pub const max_module_bytes = 67108864;
/// Most parameters one version may declare with `param` (0.2.0).
pub const max_params = 64;
/// Longest parameter key, in bytes (ASCII letters, digits, `_`, `-`, `.`).
pub const max_param_key_len = 64;
/// Longest parameter unit, in bytes of UTF-8.
pub const max_unit_len = 16;
/// Bytes of one event in a module's event buffer (0.2.0).
pub const event_bytes = 16;

// What `claim` and `param` return to the module when they fail: the contract's
// codes, returned by the host (the range -1 to -15 is the contract's; -3 is
// `claim`'s only, -7 to -9 are `param`'s only).
/// The state region cannot hold the block.
pub const region_full: i32 = -1;
/// The key is empty, longer than max-key-len bytes, or not UTF-8.
pub const bad_key: i32 = -2;
/// The alignment is not a power of two, or above max-align.
pub const bad_align: i32 = -3;
/// The key was already claimed in this `init`.
pub const duplicate_key: i32 = -4;
/// `claim` is only callable during `init`.
pub const not_in_init: i32 = -5;
/// The module exports no `state-ptr`/`state-len`, or they describe memory it
/// does not have.
pub const no_state_region: i32 = -6;
/// `param`: default, min or max not finite, min not below max, default outside
/// min..max, or steps 1.
pub const bad_range: i32 = -7;
/// `param`: more than max-params parameters in one `init`.
pub const too_many_params: i32 = -8;
/// `param`: the unit is longer than max-unit-len bytes, or not UTF-8.
pub const bad_unit: i32 = -9;

// What a module built with one of the lel SDKs returns from `init` when the
// SDK itself fails (the range -16 to -31 is the SDKs'). SDK-private: the host
// never returns them and only names them in its message; every SDK uses the
// same numbers for the same failures (some failures exist in some SDKs only).
/// `init` got a zero sample rate or max-frames.
pub const bad_args: i32 = -16;
/// The output buffer cannot hold max-frames frames of every channel.
pub const output_too_small: i32 = -17;
/// The host answered a claim with an address outside the state region, or
/// misaligned (Rust SDK).
pub const bad_address: i32 = -18;
/// `init` or `process` was re-entered (Rust SDK).
pub const busy: i32 = -19;
/// The signal asked for a channel count outside 1 to max-channels (C, Zig and
/// AssemblyScript SDKs).
pub const bad_channels: i32 = -20;

// Levels of the `log` import (a level above log-trace is logged as trace).
/// Something failed.
pub const log_error: i32 = 0;
/// Something is wrong but the signal plays on.
pub const log_warn: i32 = 1;
/// Worth knowing.
pub const log_info: i32 = 2;
/// Detail for debugging.
pub const log_debug: i32 = 3;
/// Even more detail.
pub const log_trace: i32 = 4;

// The kind of an event in a module's event buffer (byte 4 of each 16-byte
// event, 0.2.0).
/// A note starts: number = key 0..127, value = velocity 0..1.
pub const note_on: u8 = 1;
/// A note ends: number = key, value = release velocity 0..1.
pub const note_off: u8 = 2;
/// A MIDI controller moved: number = controller 0..127, value = 0..1.
pub const control_change: u8 = 3;
/// The pitch wheel moved: value = -1..1 (the range in semitones is the
/// guest's).
pub const pitch_bend: u8 = 4;
/// Channel aftertouch: value = 0..1.
pub const channel_pressure: u8 = 5;
/// A parameter changed at this frame: number = its index, value = the new
/// value.
pub const param: u8 = 6;

// The SDKs' defaults (not the contract's): every SDK sizes its module the
// same.
/// Bytes in the state region of a module (1 MiB).
pub const default_state_bytes = 1048576;
/// `f32` samples in the static output buffer.
pub const default_output_samples = 8192;
/// Alignment of every block the SDKs' helpers claim.
pub const claim_align = 16;
/// Events in an SDK's static event buffer (4096 bytes, 0.2.0).
pub const default_event_capacity = 256;

/// The host's functions.
pub const host = struct {
    pub extern "lel:signal/host@0.2.0" fn claim(key: [*]const u8, key_len: i32, size: i32, @"align": i32) i32;
    pub extern "lel:signal/host@0.2.0" fn log(level: i32, msg: [*]const u8, msg_len: i32) void;
    pub extern "lel:signal/host@0.2.0" fn param(key: [*]const u8, key_len: i32, default: f32, min: f32, max: f32, unit: [*]const u8, unit_len: i32, steps: i32) i32;
};
