// lel_constants.ts: the lel:signal@0.2.0 contract's constants and host imports
// for the AssemblyScript SDK (lel.ts imports it), generated from
// wit/lel.wit and wit/constants.txt by lel-host's build script
// (host/build/constants.rs): do not edit; run scripts/gen-constants after
// changing those.

/** The contract package and version this SDK speaks. */
export const PACKAGE = "lel:signal@0.2.0";
/** The import module of the host's functions. */
export const HOST_MODULE = "lel:signal/host@0.2.0";

// Limits the host enforces.
/** Longest `claim` key, in bytes (a key is 1 to this many bytes of UTF-8). */
export const MAX_KEY_LEN: i32 = 256;
/** Largest alignment a claim may ask for; `state-ptr` must be aligned to it. */
export const MAX_ALIGN: i32 = 16;
/** Most output channels `init` may return (it returns 1 to this many). */
export const MAX_CHANNELS: i32 = 64;
/** Largest module file the host loads (64 MiB). */
export const MAX_MODULE_BYTES: i32 = 67108864;
/** Most parameters one version may declare with `param` (0.2.0). */
export const MAX_PARAMS: i32 = 64;
/** Longest parameter key, in bytes (ASCII letters, digits, `_`, `-`, `.`). */
export const MAX_PARAM_KEY_LEN: i32 = 64;
/** Longest parameter unit, in bytes of UTF-8. */
export const MAX_UNIT_LEN: i32 = 16;
/** Bytes of one event in a module's event buffer (0.2.0). */
export const EVENT_BYTES: i32 = 16;

// What `claim` and `param` return to the module when they fail: the contract's
// codes, returned by the host (the range -1 to -15 is the contract's; -3 is
// `claim`'s only, -7 to -9 are `param`'s only).
/** The state region cannot hold the block. */
export const REGION_FULL: i32 = -1;
/** The key is empty, longer than max-key-len bytes, or not UTF-8. */
export const BAD_KEY: i32 = -2;
/** The alignment is not a power of two, or above max-align. */
export const BAD_ALIGN: i32 = -3;
/** The key was already claimed in this `init`. */
export const DUPLICATE_KEY: i32 = -4;
/** `claim` is only callable during `init`. */
export const NOT_IN_INIT: i32 = -5;
/** The module exports no `state-ptr`/`state-len`, or they describe memory it does not have. */
export const NO_STATE_REGION: i32 = -6;
/** `param`: default, min or max not finite, min not below max, default outside min..max, or steps 1. */
export const BAD_RANGE: i32 = -7;
/** `param`: more than max-params parameters in one `init`. */
export const TOO_MANY_PARAMS: i32 = -8;
/** `param`: the unit is longer than max-unit-len bytes, or not UTF-8. */
export const BAD_UNIT: i32 = -9;

// What a module built with one of the lel SDKs returns from `init` when the
// SDK itself fails (the range -16 to -31 is the SDKs'). SDK-private: the host
// never returns them and only names them in its message; every SDK uses the
// same numbers for the same failures (some failures exist in some SDKs only).
/** `init` got a zero sample rate or max-frames. */
export const BAD_ARGS: i32 = -16;
/** The output buffer cannot hold max-frames frames of every channel. */
export const OUTPUT_TOO_SMALL: i32 = -17;
/** The host answered a claim with an address outside the state region, or misaligned (Rust SDK). */
export const BAD_ADDRESS: i32 = -18;
/** `init` or `process` was re-entered (Rust SDK). */
export const BUSY: i32 = -19;
/** The signal asked for a channel count outside 1 to max-channels (C, Zig and AssemblyScript SDKs). */
export const BAD_CHANNELS: i32 = -20;

// Levels of the `log` import (a level above log-trace is logged as trace).
/** Something failed. */
export const LOG_ERROR: i32 = 0;
/** Something is wrong but the signal plays on. */
export const LOG_WARN: i32 = 1;
/** Worth knowing. */
export const LOG_INFO: i32 = 2;
/** Detail for debugging. */
export const LOG_DEBUG: i32 = 3;
/** Even more detail. */
export const LOG_TRACE: i32 = 4;

// The kind of an event in a module's event buffer (byte 4 of each 16-byte
// event, 0.2.0).
/** A note starts: number = key 0..127, value = velocity 0..1. */
export const NOTE_ON: i32 = 1;
/** A note ends: number = key, value = release velocity 0..1. */
export const NOTE_OFF: i32 = 2;
/** A MIDI controller moved: number = controller 0..127, value = 0..1. */
export const CONTROL_CHANGE: i32 = 3;
/** The pitch wheel moved: value = -1..1 (the range in semitones is the guest's). */
export const PITCH_BEND: i32 = 4;
/** Channel aftertouch: value = 0..1. */
export const CHANNEL_PRESSURE: i32 = 5;
/** A parameter changed at this frame: number = its index, value = the new value. */
export const PARAM: i32 = 6;

// The SDKs' defaults (not the contract's): every SDK sizes its module the
// same.
/** Bytes in the state region of a module (1 MiB). */
export const DEFAULT_STATE_BYTES: i32 = 1048576;
/** `f32` samples in the static output buffer. */
export const DEFAULT_OUTPUT_SAMPLES: i32 = 8192;
/** Alignment of every block the SDKs' helpers claim. */
export const CLAIM_ALIGN: i32 = 16;
/** Events in an SDK's static event buffer (4096 bytes, 0.2.0). */
export const DEFAULT_EVENT_CAPACITY: i32 = 256;

// The host's functions.
@external("lel:signal/host@0.2.0", "claim")
export declare function hostClaim(key: usize, keyLen: i32, size: i32, align: i32): i32;
@external("lel:signal/host@0.2.0", "log")
export declare function hostLog(level: i32, msg: usize, msgLen: i32): void;
@external("lel:signal/host@0.2.0", "param")
export declare function hostParam(key: usize, keyLen: i32, defaultValue: f32, min: f32, max: f32, unit: usize, unitLen: i32, steps: i32): i32;
