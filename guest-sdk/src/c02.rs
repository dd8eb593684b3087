//! The 0.2 constants of SPEC-0.2 (`wit/constants.txt` once the contract
//! lands there; then these become `contract::...`). Not generated yet.
#![allow(dead_code)]

/// Most parameters a module may declare.
pub const MAX_PARAMS: usize = 64;
/// Longest parameter key, in bytes.
pub const MAX_PARAM_KEY_LEN: usize = 64;
/// Longest parameter unit, in bytes.
pub const MAX_UNIT_LEN: usize = 16;
/// Bytes of one event.
pub const EVENT_BYTES: usize = 16;
/// Bad range.
pub const BAD_RANGE: i32 = -7;
/// Too many params.
pub const TOO_MANY_PARAMS: i32 = -8;
/// Bad unit.
pub const BAD_UNIT: i32 = -9;
/// Event kinds.
pub const NOTE_ON: i32 = 1;
/// Note off.
pub const NOTE_OFF: i32 = 2;
/// CC.
pub const CONTROL_CHANGE: i32 = 3;
/// Bend.
pub const PITCH_BEND: i32 = 4;
/// Pressure.
pub const CHANNEL_PRESSURE: i32 = 5;
/// Param.
pub const PARAM: i32 = 6;
/// Events in an SDK's static event buffer.
pub const DEFAULT_EVENT_CAPACITY: usize = 256;
