//! lel.zig: the Zig guest SDK for lel-host (Zig 0.15). The lel:signal@0.1.0
//! contract (wit/lel.wit) as host imports and module exports, and DSP
//! helpers that compute the same samples as the Rust SDK
//! (guest-sdk/README.md, "Algorithms"), each claiming its state under the
//! same key ("osc#0", "lowpass#0", ...) so a reload keeps it.
//!
//! A signal is a root file with `setup` and `frame`, handed to `lel.signal`:
//!
//!     const lel = @import("lel");
//!
//!     var osc: lel.Osc = .{};
//!
//!     pub fn setup(s: lel.Setup) lel.Error!u32 { // inside `init`: claim state
//!         _ = s;
//!         try osc.claim(.sine, .{});
//!         return 1; // channels
//!     }
//!
//!     pub fn frame(cx: *const lel.Ctx, out: []f64) void { // once per frame
//!         _ = cx;
//!         out[0] = 0.5 * osc.tick(440);
//!     }
//!
//!     comptime {
//!         lel.signal(@This());
//!     }
//!
//! Build it for wasm32-freestanding (no libc, no WASI):
//!
//!     python3 -m ziglang build-exe -target wasm32-freestanding -O ReleaseFast \
//!         -fno-entry -fstrip -rdynamic --dep lel -Mroot=sine.zig -Mlel=lel.zig \
//!         -femit-bin=sine.wasm
//!
//! The helpers can instead live in one struct, the root's `pub var
//! helpers`, with `frame` taking a pointer to it as a third parameter:
//!
//!     const Helpers = struct { osc: lel.Osc = .{} };
//!     pub var helpers: Helpers = .{};
//!     // setup claims them as before: try helpers.osc.claim(.sine, .{});
//!     pub fn frame(cx: *const lel.Ctx, out: []f64, h: *Helpers) void {
//!         _ = cx;
//!         out[0] = 0.5 * h.osc.tick(440);
//!     }
//!
//! `process` then copies `helpers` into a local at the start of each block
//! and back at its end, and the compiler keeps their fields in registers
//! from frame to frame: with globals it must read them from memory again
//! after every store a helper makes to its state (any store in wasm memory
//! could have changed them). `frame` uses `h`, not the global, while the
//! block runs. The same samples; examples/zig/chain.zig renders in 6 to 9 %
//! less time in wasm (README, "Performance").
//!
//! `lel.signal` exports `state-ptr`, `state-len`, `init` and `process`; the
//! root may declare `pub const state_bytes` (default 1 MiB) and
//! `pub const output_samples` (default 8192) to resize the state region and
//! the static output buffer.
//!
//! For measuring, a signal also builds for the build machine: a root file
//! that declares `pub const lel_native_host` (the host functions `claim`,
//! `log`, `param`) and calls `lel.Signal(S).init`/`.process` itself (as
//! host/benches/engine/native-zig.zig does).
//!
//! The contract's constants (error codes, log levels, limits) and the host
//! imports are in lel_constants.zig beside this file (generated from
//! wit/constants.txt, like the other SDKs' constants), re-exported here as
//! `lel.constants`: keep the two files together.
//!
//! Helpers are mono: one instance per channel. `claim` may only be called
//! from `setup`; the n-th helper of a kind claimed gets the key "kind#n", or
//! `.{ .name = "..." }` (the index of its kind is still taken, so naming one
//! helper renumbers no other).

const builtin = @import("builtin");
const std = @import("std");

// ---- the contract ----------------------------------------------------------

/// The contract's constants and host imports (lel_constants.zig).
pub const constants = @import("lel_constants.zig");
/// Built for the build machine instead (a benchmark's reference: the root
/// file then provides the host functions as `lel_native_host`).
const native = builtin.target.cpu.arch != .wasm32;
const host = if (native) @import("root").lel_native_host else constants.host;

/// An address as the contract's 32-bit pointer (natively: its low bits; a
/// native build keeps the blocks it claims below 4 GiB).
inline fn addr32(p: anytype) u32 {
    return if (native) @truncate(@intFromPtr(p)) else @intCast(@intFromPtr(p));
}

/// Why a signal could not be set up: `claim`'s errors and the SDKs' own
/// (wit/constants.txt). `init` returns `code(err)`, which rejects the
/// version. `Unknown` is a claim code this SDK does not know (from a newer
/// host): `init` returns it as the host gave it, as every SDK does.
pub const Error = error{
    RegionFull,
    BadKey,
    BadAlign,
    DuplicateKey,
    NotInInit,
    NoStateRegion,
    BadArgs,
    OutputTooSmall,
    BadChannels,
    BadRange,
    TooManyParams,
    BadUnit,
    Unknown,
};

/// The contract's (and the Rust SDK's) code for `err`.
pub fn code(err: Error) i32 {
    return switch (err) {
        error.RegionFull => constants.region_full,
        error.BadKey => constants.bad_key,
        error.BadAlign => constants.bad_align,
        error.DuplicateKey => constants.duplicate_key,
        error.NotInInit => constants.not_in_init,
        error.NoStateRegion => constants.no_state_region,
        error.BadArgs => constants.bad_args,
        error.OutputTooSmall => constants.output_too_small,
        error.BadChannels => constants.bad_channels,
        error.BadRange => constants.bad_range,
        error.TooManyParams => constants.too_many_params,
        error.BadUnit => constants.bad_unit,
        error.Unknown => rt.unknown_code,
    };
}

fn fromCode(c: i32) Error {
    return switch (c) {
        constants.region_full => error.RegionFull,
        constants.bad_key => error.BadKey,
        constants.bad_align => error.BadAlign,
        constants.duplicate_key => error.DuplicateKey,
        constants.not_in_init => error.NotInInit,
        constants.no_state_region => error.NoStateRegion,
        constants.bad_range => error.BadRange,
        constants.too_many_params => error.TooManyParams,
        constants.bad_unit => error.BadUnit,
        else => blk: {
            rt.unknown_code = c;
            break :blk error.Unknown;
        },
    };
}

pub const Level = enum(i32) {
    err = constants.log_error,
    warn = constants.log_warn,
    info = constants.log_info,
    debug = constants.log_debug,
    trace = constants.log_trace,
};

/// Sends `msg` to the host's log.
pub fn log(level: Level, msg: []const u8) void {
    host.log(@intFromEnum(level), msg.ptr, @intCast(msg.len));
}

// ---- what a signal gets ---------------------------------------------------

/// What `setup` gets: the sample rate and the most frames per block.
pub const Setup = struct {
    sample_rate: f64,
    max_frames: u32,
};

/// One event (contract 0.2) as the host writes it: 16 bytes.
pub const Event = extern struct {
    /// Frame in the block.
    frame: u32,
    /// `event_kind.note_on` .. `event_kind.param`.
    kind: u8,
    /// MIDI channel - 1.
    channel: u8,
    /// Key, controller or parameter index.
    number: u16,
    /// Velocity, controller value, bend, pressure or parameter value.
    value: f32,
    reserved: u32,
};

/// The event kinds (lel_constants.zig).
pub const event_kind = struct {
    pub const note_on: u8 = constants.note_on;
    pub const note_off: u8 = constants.note_off;
    pub const control_change: u8 = constants.control_change;
    pub const pitch_bend: u8 = constants.pitch_bend;
    pub const channel_pressure: u8 = constants.channel_pressure;
    pub const param: u8 = constants.param;
};
const max_params = constants.max_params;
const event_capacity = constants.default_event_capacity;

/// Where a frame is: as `Ctx` in the Rust SDK.
pub const Ctx = struct {
    sample_rate: f64,
    /// Absolute frame index of this frame.
    clock: u64,
    /// `clock / sample_rate`, in seconds.
    t: f64,
    /// `process`'s clock: the block's first frame.
    block_clock: u64,
    /// Frames in this block.
    frames: u32,
    /// Index of this frame in the block.
    frame: u32,
    channels: u32,
    /// The events at this frame (already applied to parameters and notes).
    events: []const Event = &.{},
};

// ---- math: the Rust SDK's `lel::math` ------------------------------------

pub const pi: f64 = 3.14159265358979323846;
pub const tau: f64 = 6.28318530717958647692;

pub inline fn floor(x: f64) f64 {
    return @floor(x);
}
pub inline fn ceil(x: f64) f64 {
    return @ceil(x);
}
pub inline fn fract(x: f64) f64 {
    return x - @floor(x);
}

/// `x` limited to `[lo, hi]`, NaN mapped to `lo`.
pub inline fn clamp(x: f64, lo: f64, hi: f64) f64 {
    if (x >= lo) return if (x <= hi) x else hi;
    return lo;
}

/// The sine of `p` turns plus `quarters` quarter turns: the Rust SDK's
/// `lel::math::sin_turns`, the same operations in the same order (the same
/// bits). No library call; within 1e-15 of the exact value.
inline fn turns(p: f64, quarters: f64) f64 {
    const S3: f64 = 0.16666666666666666;
    const S5: f64 = 0.0083333333333333332;
    const S7: f64 = 0.00019841269841269841;
    const S9: f64 = 2.7557319223985893e-06;
    const S11: f64 = 2.505210838544172e-08;
    const S13: f64 = 1.6059043836821613e-10;
    const S15: f64 = 7.6471637318198164e-13;
    const C4: f64 = 0.041666666666666664;
    const C6: f64 = 0.0013888888888888889;
    const C8: f64 = 2.4801587301587302e-05;
    const C10: f64 = 2.7557319223985888e-07;
    const C12: f64 = 2.08767569878681e-09;
    const C14: f64 = 1.1470745597729725e-11;
    const C16: f64 = 4.7794773323873853e-14;
    const round: f64 = 6755399441055744.0; // 1.5 * 2^52
    const q = (4.0 * p + round) - round;
    const r = p - q * 0.25;
    const x = r * tau;
    const z = x * x;
    const z2 = z * z;
    const z4 = z2 * z2;
    const m = q + quarters;
    const k = m - 4.0 * ((m * 0.25 + round) - round);
    var v: f64 = undefined;
    if (k == 1.0 or k == -1.0) {
        const lo = (1.0 - z * 0.5) + z2 * (C4 - z * C6);
        const hi = (C8 - z * C10) + z2 * (C12 - z * C14);
        v = lo + z4 * (hi + z4 * C16);
    } else {
        const lo = (1.0 - z * S3) + z2 * (S5 - z * S7);
        const hi = (S9 - z * S11) + z2 * (S13 - z * S15);
        v = x * (lo + z4 * hi);
    }
    return if (k < 0.0 or k == 2.0) -v else v;
}

/// `sin(tau * p)`: the sine of `p` full turns (oscillators, tremolo).
pub inline fn sinTurns(p: f64) f64 {
    return turns(p, 0.0);
}
/// `cos(tau * p)`: the cosine of `p` full turns.
pub inline fn cosTurns(p: f64) f64 {
    return turns(p, 1.0);
}

// Zig's own `@sin`, `@cos` and `@exp` (compiler_rt: ports of musl) give the
// same bits as the Rust SDK's libm, so the helpers use them as they are.

/// Sine of `x` radians.
pub inline fn sin(x: f64) f64 {
    return @sin(x);
}
/// Cosine of `x` radians.
pub inline fn cos(x: f64) f64 {
    return @cos(x);
}
/// `e^x`.
pub inline fn exp(x: f64) f64 {
    return @exp(x);
}

// ---- state ----------------------------------------------------------------

const Kind = enum(u4) { osc, noise, lowpass, highpass, biquad, tremolo, delay, env, poly };

const Runtime = struct {
    in_init: bool = false,
    counters: [9]u32 = [_]u32{0} ** 9,
    params: [max_params]*f32 = undefined,
    n_params: u32 = 0,
    notes: ?*NoteState = null,
    sample_rate: f64 = 0,
    max_frames: u32 = 0,
    channels: u32 = 0,
    out: [*]f32 = undefined,
    ready: bool = false,
    /// The last claim code `fromCode` did not know.
    unknown_code: i32 = constants.region_full,
};

var rt: Runtime = .{};

/// Options of a helper's `claim`.
pub const Claim = struct {
    /// The key instead of "kind#n".
    name: ?[]const u8 = null,
};

/// Claims `size` bytes aligned to `alignment` under `name`: the block, or
/// the error (logged); only inside `setup`.
pub fn claimBytes(name: []const u8, size: u32, alignment: u32) Error![*]align(constants.claim_align) u8 {
    const r = host.claim(name.ptr, @intCast(name.len), @bitCast(size), @bitCast(alignment));
    if (r < 0) {
        var msg: [constants.max_key_len + 40]u8 = undefined;
        var n: usize = 0;
        for ("lel: init failed, claim '") |c| {
            msg[n] = c;
            n += 1;
        }
        for (name[0..@min(name.len, constants.max_key_len)]) |c| {
            msg[n] = c;
            n += 1;
        }
        for ("': -") |c| {
            msg[n] = c;
            n += 1;
        }
        if (r <= -10) {
            msg[n] = '0' + @as(u8, @intCast(@mod(@divTrunc(-r, 10), 10)));
            n += 1;
        }
        msg[n] = '0' + @as(u8, @intCast(@mod(-r, 10)));
        n += 1;
        log(.err, msg[0..n]);
        return fromCode(r);
    }
    return @ptrFromInt(@as(usize, @intCast(r)));
}

fn claimKind(kind: Kind, size: u32, opt: Claim) Error![*]align(constants.claim_align) u8 {
    const slot = @intFromEnum(kind);
    var index = rt.counters[slot];
    rt.counters[slot] += 1;
    if (opt.name) |name| return claimBytes(name, size, constants.claim_align);
    var buf: [24]u8 = undefined;
    const tag = @tagName(kind);
    @memcpy(buf[0..tag.len], tag);
    var n = tag.len;
    buf[n] = '#';
    n += 1;
    var digits: [10]u8 = undefined;
    var d: usize = 0;
    while (true) {
        digits[d] = '0' + @as(u8, @intCast(index % 10));
        d += 1;
        index /= 10;
        if (index == 0) break;
    }
    while (d > 0) {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    return claimBytes(buf[0..n], size, constants.claim_align);
}

// ---- parameters and notes (contract 0.2) ------------------------------------

const host_param = host.param;

/// A host parameter: `claim` it in `setup`, `tick` it once per frame for
/// the smoothed value (a straight ramp to each new value lasting 20 ms,
/// none for a stepped parameter: the Rust SDK's law). Declare a key once.
pub const Param = struct {
    cell: ?*f32 = null,
    index: u32 = 0,
    ramp: u32 = 1,
    left: u32 = 0,
    y: f64 = 0,
    target: f64 = nan,
    step: f64 = 0,

    /// Declares `name` with its default, range, unit ("" for none) and
    /// steps (0 continuous, n >= 2 values).
    pub fn claim(self: *Param, name: []const u8, default: f64, min: f64, max: f64, unit: []const u8, steps: u32) Error!void {
        self.* = .{ .y = default };
        self.smooth(if (steps == 0) 0.02 else 0.0);
        if (rt.n_params >= max_params) return error.TooManyParams;
        const r = host_param(name.ptr, @intCast(name.len), @floatCast(default), @floatCast(min), @floatCast(max), unit.ptr, @intCast(unit.len), @bitCast(steps));
        if (r < 0) {
            log(.err, "lel: init failed, param rejected");
            return fromCode(r);
        }
        const cell: *f32 = @ptrFromInt(@as(usize, @intCast(r)));
        self.cell = cell;
        self.index = rt.n_params;
        rt.params[rt.n_params] = cell;
        rt.n_params += 1;
    }

    /// Sets the ramp time in seconds (0: none).
    pub fn smooth(self: *Param, seconds: f64) void {
        const n = @floor(seconds * rt.sample_rate + 0.5);
        self.ramp = if (n >= 1.0 and n < 4.0e9) @intFromFloat(n) else 1;
    }

    /// The value the host holds now (no smoothing).
    pub fn value(self: *const Param) f64 {
        return if (self.cell) |c| c.* else self.y;
    }

    /// The smoothed value for this frame (once per frame).
    pub fn tick(self: *Param) f64 {
        const c = self.cell orelse return self.y;
        const x: f64 = c.*;
        if (x != self.target) {
            if (self.target != self.target or self.ramp <= 1) {
                self.y = x;
                self.left = 0;
            } else {
                self.step = (x - self.y) / @as(f64, @floatFromInt(self.ramp));
                self.left = self.ramp;
            }
            self.target = x;
        }
        if (self.left > 0) {
            self.left -= 1;
            self.y = if (self.left == 0) self.target else self.y + self.step;
        }
        return self.y;
    }
};

/// The monophonic note state, claimed under "notes" (544 bytes; every
/// channel plays it). A note-on sets key, velocity and the gate; a
/// note-off closes the gate only if it releases the last key played.
pub const NoteState = extern struct {
    key: u32,
    gate: u32,
    played: u32,
    velocity: f32,
    bend: f32,
    pressure: f32,
    reserved: [2]u32,
    cc: [128]f32,

    fn apply(n: *NoteState, e: *const Event) void {
        switch (e.kind) {
            event_kind.note_on => {
                n.key = e.number & 127;
                n.velocity = e.value;
                n.gate = 1;
                n.played = 1;
            },
            event_kind.note_off => if (n.key == e.number) {
                n.gate = 0;
            },
            event_kind.control_change => if (e.number < 128) {
                n.cc[e.number] = e.value;
            },
            event_kind.pitch_bend => n.bend = e.value,
            event_kind.channel_pressure => n.pressure = e.value,
            else => {},
        }
    }
};

/// Claims the note state (in `setup`; once is enough).
pub fn notes() Error!void {
    if (rt.notes != null) return;
    const p = try claimBytes("notes", @sizeOf(NoteState), constants.claim_align);
    rt.notes = @ptrCast(p);
}

/// `440 exp((k - 69 + 2 bend) ln2 / 12)`: `k` bent by `bend` (-1..1).
pub fn keyHz(k: f64, bend_value: f64) f64 {
    return 440.0 * exp((k - 69.0 + 2.0 * bend_value) * (0.69314718055994530942 / 12.0));
}

/// 1 while the last key played is held, else 0.
pub fn gate() f64 {
    return if (rt.notes) |n| @floatFromInt(n.gate) else 0;
}
/// The last key's frequency with the bend, in Hz (440 before any note).
pub fn pitch() f64 {
    const n = rt.notes orelse return 440.0;
    return keyHz(if (n.played != 0) @floatFromInt(n.key) else 69.0, n.bend);
}
/// The last note-on's velocity, 0..1.
pub fn velocity() f64 {
    return if (rt.notes) |n| n.velocity else 0;
}
/// The last key played, 0..127 (69 before any note).
pub fn key() f64 {
    const n = rt.notes orelse return 69.0;
    return if (n.played != 0) @floatFromInt(n.key) else 69.0;
}
/// Controller `c`, 0..1.
pub fn cc(c: u7) f64 {
    return if (rt.notes) |n| n.cc[c] else 0;
}
/// The pitch bend, -1..1.
pub fn bend() f64 {
    return if (rt.notes) |n| n.bend else 0;
}
/// The channel pressure, 0..1.
pub fn pressure() f64 {
    return if (rt.notes) |n| n.pressure else 0;
}

fn applyEvent(e: *const Event) void {
    if (e.kind == event_kind.param) {
        if (e.number < rt.n_params and e.value == e.value) rt.params[e.number].* = e.value;
    } else if (rt.notes) |n| n.apply(e);
}

/// The sample rate (set before `setup` runs).
pub fn sampleRate() f64 {
    return rt.sample_rate;
}

// ---- oscillators ----------------------------------------------------------

pub const Wave = enum { sine, saw, square, triangle };

/// The PolyBLEP residual of a step at phase 0, for phase `p`, increment `dt`.
pub fn polyBlep(p: f64, dt: f64) f64 {
    if (p < dt) {
        const x = p / dt;
        return x + x - x * x - 1.0;
    } else if (p > 1.0 - dt) {
        const x = (p - 1.0) / dt;
        return x * x + x + x + 1.0;
    }
    return 0.0;
}

/// The wave at phase `p` with increment `dt` (for band-limiting).
pub fn waveSample(w: Wave, p: f64, dt: f64) f64 {
    return switch (w) {
        .sine => sinTurns(p),
        .saw => 2.0 * p - 1.0 - polyBlep(p, dt),
        .square => blk: {
            const naive: f64 = if (p < 0.5) 1.0 else -1.0;
            var q = p + 0.5;
            q = if (q >= 1.0) q - 1.0 else q;
            break :blk naive + polyBlep(p, dt) - polyBlep(q, dt);
        },
        .triangle => blk: {
            var q = p + 0.25;
            q = q - floor(q);
            break :blk 1.0 - 4.0 * @abs(q - 0.5);
        },
    };
}

/// An oscillator: phase in cycles `[0, 1)`, key "osc#n", 8 bytes. Every
/// wave shares the kind "osc", so changing the wave keeps the phase.
pub const Osc = struct {
    phase: *f64 = undefined,
    inv_sr: f64 = 0,
    wave: Wave = .sine,

    pub fn claim(self: *Osc, wave: Wave, opt: Claim) Error!void {
        self.wave = wave;
        self.phase = @ptrCast(try claimKind(.osc, 8, opt));
        self.inv_sr = 1.0 / rt.sample_rate;
    }

    /// The next sample at `freq` Hz (phase-continuous when `freq` changes).
    pub inline fn tick(self: *Osc, freq: f64) f64 {
        const inc = freq * self.inv_sr;
        const dt = @abs(inc);
        return @call(.always_inline, waveSample, .{ self.wave, advance(self.phase, inc), if (dt < 0.5) dt else 0.5 });
    }
};

/// A sine oscillator: `Osc` with the wave fixed (the Rust SDK's `osc()`,
/// whose wave is a type). Same phase, key ("osc#n") and samples as an
/// `Osc` playing `.sine`, so a reload may swap one for the other keeping
/// the phase. In a chain it is the faster one: `Osc` chooses between the
/// four waves every frame (README, "Signals in any language").
pub const SineOsc = struct {
    phase: *f64 = undefined,
    inv_sr: f64 = 0,

    pub fn claim(self: *SineOsc, opt: Claim) Error!void {
        self.phase = @ptrCast(try claimKind(.osc, 8, opt));
        self.inv_sr = 1.0 / rt.sample_rate;
    }

    /// The next sample at `freq` Hz (phase-continuous when `freq` changes).
    pub inline fn tick(self: *SineOsc, freq: f64) f64 {
        return sinTurns(advance(self.phase, freq * self.inv_sr));
    }
};

/// An oscillator's phase for this frame; the next one is `inc` cycles on,
/// wrapped to `[0, 1)`.
inline fn advance(phase: *f64, inc: f64) f64 {
    const p = phase.*;
    const q = p + inc;
    phase.* = q - floor(q);
    return p;
}

/// White noise in `[-1, 1)`: xorshift32 (13, 17, 5), key "noise#n", 4
/// bytes. A fresh (zero) state starts from the seed; a carried one runs on.
pub const Noise = struct {
    x: *u32 = undefined,
    seed: u32 = default_seed,

    pub const default_seed: u32 = 0x2545F491;

    pub fn claim(self: *Noise, seed: u32, opt: Claim) Error!void {
        self.seed = if (seed == 0) default_seed else seed;
        self.x = @ptrCast(try claimKind(.noise, 4, opt));
    }

    pub inline fn tick(self: *Noise) f64 {
        var x = if (self.x.* == 0) self.seed else self.x.*;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.x.* = x;
        return @as(f64, @floatFromInt(x)) * (2.0 / 4294967296.0) - 1.0;
    }
};

// ---- filters ---------------------------------------------------------------

/// The one-pole coefficient for `cutoff` Hz: `1 - exp(-2 pi fc / sr)`.
pub fn onePoleCoefficient(cutoff: f64, sr: f64) f64 {
    const fc = clamp(cutoff, 0.0, 0.5 * sr);
    return 1.0 - exp(-tau * fc / sr);
}

fn OnePole(comptime kind: Kind) type {
    return struct {
        const Self = @This();
        y: *f64 = undefined,
        sr: f64 = 0,
        last: f64 = 0,
        a: f64 = 0,

        pub fn claim(self: *Self, opt: Claim) Error!void {
            self.y = @ptrCast(try claimKind(kind, 8, opt));
            self.sr = rt.sample_rate;
            self.last = nan;
        }

        /// The next sample for input `x` at `cutoff` Hz (the coefficient is
        /// recomputed only when the cutoff changes).
        pub inline fn tick(self: *Self, x: f64, cutoff: f64) f64 {
            if (cutoff != self.last) {
                self.last = cutoff;
                self.a = onePoleCoefficient(cutoff, self.sr);
            }
            var y = self.y.*;
            y += self.a * (x - y);
            self.y.* = y;
            return if (kind == .highpass) x - y else y;
        }
    };
}

const nan: f64 = @bitCast(@as(u64, 0x7ff8000000000000));

/// One-pole lowpass `y += a (x - y)`, key "lowpass#n", one f64.
pub const Lowpass = OnePole(.lowpass);
/// One-pole highpass `x - y`, key "highpass#n", one f64.
pub const Highpass = OnePole(.highpass);

pub const BiquadMode = enum { lowpass, highpass, bandpass };

/// Resonant biquad (RBJ cookbook, transposed direct form II), key
/// "biquad#n" whatever the mode; state s1, s2 (16 bytes).
pub const Biquad = struct {
    s: *[2]f64 = undefined,
    mode: BiquadMode = .lowpass,
    sr: f64 = 0,
    last_fc: f64 = 0,
    last_q: f64 = 0,
    b0: f64 = 0,
    b1: f64 = 0,
    b2: f64 = 0,
    a1: f64 = 0,
    a2: f64 = 0,

    pub fn claim(self: *Biquad, mode: BiquadMode, opt: Claim) Error!void {
        self.s = @ptrCast(try claimKind(.biquad, 16, opt));
        self.mode = mode;
        self.sr = rt.sample_rate;
        self.last_fc = nan;
        self.last_q = nan;
    }

    pub fn coefficients(self: *Biquad, cutoff: f64, q_in: f64) void {
        const sr = self.sr;
        const fc = clamp(cutoff, 1.0, 0.49 * sr);
        const q = if (q_in >= 0.01) q_in else 0.01;
        const w0 = 2.0 * pi * fc / sr;
        const s = sin(w0);
        const c = cos(w0);
        const alpha = s / (2.0 * q);
        var b0: f64 = undefined;
        var b1: f64 = undefined;
        var b2: f64 = undefined;
        switch (self.mode) {
            .lowpass => {
                b0 = (1.0 - c) / 2.0;
                b1 = 1.0 - c;
                b2 = (1.0 - c) / 2.0;
            },
            .highpass => {
                b0 = (1.0 + c) / 2.0;
                b1 = -(1.0 + c);
                b2 = (1.0 + c) / 2.0;
            },
            .bandpass => {
                b0 = alpha;
                b1 = 0.0;
                b2 = -alpha;
            },
        }
        const a0 = 1.0 + alpha;
        self.b0 = b0 / a0;
        self.b1 = b1 / a0;
        self.b2 = b2 / a0;
        self.a1 = -2.0 * c / a0;
        self.a2 = (1.0 - alpha) / a0;
    }

    pub inline fn tick(self: *Biquad, x: f64, cutoff: f64, q: f64) f64 {
        if (cutoff != self.last_fc or q != self.last_q) {
            self.last_fc = cutoff;
            self.last_q = q;
            self.coefficients(cutoff, q);
        }
        const s = self.s;
        const y = self.b0 * x + s[0];
        s[0] = self.b1 * x - self.a1 * y + s[1];
        s[1] = self.b2 * x - self.a2 * y;
        return y;
    }
};

// ---- effects -----------------------------------------------------------------

/// Tremolo: `x * (1 - depth * (0.5 - 0.5 cos(2 pi p)))`, `p` advancing at
/// `rate` Hz from full level; key "tremolo#n", the phase (8 bytes).
pub const Tremolo = struct {
    phase: *f64 = undefined,
    inv_sr: f64 = 0,

    pub fn claim(self: *Tremolo, opt: Claim) Error!void {
        self.phase = @ptrCast(try claimKind(.tremolo, 8, opt));
        self.inv_sr = 1.0 / rt.sample_rate;
    }

    pub inline fn tick(self: *Tremolo, x: f64, rate: f64, depth: f64) f64 {
        const inc = rate * self.inv_sr;
        const p = self.phase.*;
        const g = 1.0 - depth * (0.5 - 0.5 * cosTurns(p));
        const q = p + inc;
        self.phase.* = q - floor(q);
        return x * g;
    }
};

/// Echo with feedback and fractional delay, key "delay#n". Block: a 16-byte
/// head (the write position, then padding), then `len = ceil(max_seconds *
/// sr) + 2` f32s. Per sample, `d = clamp(seconds * sr, 1, len - 2)`:
/// `y = a + (d - floor(d)) (b - a)`, `a` the sample written `floor(d)` ago,
/// `b` the one before; the line gets `x + feedback y`; the output is
/// `(1 - mix) x + mix y`.
pub const Delay = struct {
    pos: *u32 = undefined,
    line: [*]f32 = undefined,
    len: u32 = 0,
    sr: f64 = 0,
    feedback: f64 = 0.5,
    mix: f64 = 0.5,

    pub fn lineLen(max_seconds: f64, sr: f64) u32 {
        var n = ceil(max_seconds * sr);
        if (n != n or n < 1.0) n = 1.0;
        if (n > 4294967293.0) n = 4294967293.0;
        return @as(u32, @intFromFloat(n)) + 2;
    }

    pub fn claim(self: *Delay, max_seconds: f64, opt: Claim) Error!void {
        self.sr = rt.sample_rate;
        const len = lineLen(max_seconds, self.sr);
        const bytes = @as(u64, len) * 4 + 16;
        if (bytes > 0xffffffff) {
            rt.counters[@intFromEnum(Kind.delay)] += 1;
            return error.RegionFull;
        }
        const p = try claimKind(.delay, @intCast(bytes), opt);
        self.pos = @ptrCast(p);
        self.line = @ptrCast(@alignCast(p + 16));
        self.len = len;
    }

    pub inline fn tick(self: *Delay, x: f64, seconds: f64) f64 {
        const len = self.len;
        if (len < 3) return x;
        const d = clamp(seconds * self.sr, 1.0, @floatFromInt(len - 2));
        // `d` < 2^30 (the line's bytes fit in 32 bits): the signed
        // conversion, one instruction in wasm (the unsigned one compiles to
        // a range check and two branches).
        const di: u32 = @intCast(@as(i32, @intFromFloat(d)));
        const frac = d - @as(f64, @floatFromInt(di));
        var w = self.pos.*;
        if (w >= len) w = 0;
        var r0 = w + len - di;
        if (r0 >= len) r0 -= len;
        const r1 = if (r0 == 0) len - 1 else r0 - 1;
        const a: f64 = self.line[r0];
        const b: f64 = self.line[r1];
        const y = a + frac * (b - a);
        self.line[w] = @floatCast(x + self.feedback * y);
        self.pos.* = if (w + 1 == len) 0 else w + 1;
        return (1.0 - self.mix) * x + self.mix * y;
    }
};

/// `x` times `g`.
// ---- envelopes: the Rust SDK's adsr -----------------------------------------

/// Linear ADSR (key "env#n", 16 bytes): gate on while > 0, times in
/// seconds, level in [0, 1]; the Rust SDK's `adsr`, formula for formula.
pub const Env = struct {
    s: *extern struct { level: f64, stage: u32, gate: u32 } = undefined,
    sr: f64 = 0,
    ok: bool = false,

    pub fn claim(self: *Env, opt: Claim) Error!void {
        self.s = @ptrCast(try claimKind(.env, 16, opt));
        self.sr = rt.sample_rate;
        self.ok = true;
    }

    fn step(seconds: f64, sr: f64) f64 {
        const n = seconds * sr;
        return if (n > 1.0) 1.0 / n else 1.0;
    }

    pub fn tick(self: *Env, gate_value: f64, attack: f64, decay: f64, sustain_in: f64, release: f64) f64 {
        if (!self.ok) return 0;
        const st = self.s;
        const on: u32 = if (gate_value > 0.0) 1 else 0;
        const sustain = clamp(sustain_in, 0.0, 1.0);
        if (on == 1 and st.gate == 0) {
            st.stage = 1;
        } else if (on == 0 and st.gate != 0) {
            st.stage = 4;
        }
        st.gate = on;
        switch (st.stage) {
            1 => {
                st.level += step(attack, self.sr);
                if (st.level >= 1.0) {
                    st.level = 1.0;
                    st.stage = 2;
                }
            },
            2 => {
                st.level -= (1.0 - sustain) * step(decay, self.sr);
                if (st.level <= sustain) {
                    st.level = sustain;
                    st.stage = 3;
                }
            },
            3 => st.level = sustain,
            4 => {
                st.level -= step(release, self.sr);
                if (st.level <= 0.0) {
                    st.level = 0.0;
                    st.stage = 0;
                }
            },
            else => {
                st.level = 0.0;
                st.stage = 0;
            },
        }
        return st.level;
    }
};

// ---- polyphony ---------------------------------------------------------------

pub const max_voices = 16;

/// A voice of the table (32 bytes): gate 0 released, 1 held, 2 restarted now.
pub const VoiceSlot = extern struct { velocity: f32, key: u32, gate: u32, used: u32, on: u64, off: u64 };

const PolyState = extern struct { order: u64, reserved: u64, voices: [max_voices]VoiceSlot };

/// What a voice plays this frame.
pub const Voice = struct { hz: f64, gate: f64, velocity: f64, key: u32 };

/// A voice allocator for `n` voices (1 to 16), its table under "poly#n"
/// (528 bytes). The Rust SDK's `poly` policy: a note-on takes the voice
/// already playing that key, else the free voice released longest ago
/// (never-used first, lowest index on ties), else steals the voice held
/// longest; a held voice taking a note reads gate 0 for one frame.
pub const Poly = struct {
    s: ?*PolyState = null,
    n: u32 = 1,
    bend: f32 = std.math.nan(f32),
    hz: [max_voices]f64 = [_]f64{440.0} ** max_voices,

    pub fn claim(self: *Poly, n: u32, opt: Claim) Error!void {
        self.n = @max(1, @min(n, max_voices));
        self.s = @ptrCast(try claimKind(.poly, @sizeOf(PolyState), opt));
        try notes();
        self.bend = std.math.nan(f32);
    }

    fn noteOn(s: *PolyState, n: u32, k: u32, vel: f32) u32 {
        var pick: u32 = n;
        var i: u32 = 0;
        while (i < n) : (i += 1) {
            const v = &s.voices[i];
            if (v.used != 0 and v.key == k and (pick == n or v.on >= s.voices[pick].on)) pick = i;
        }
        if (pick == n) {
            var best: u64 = 0;
            i = 0;
            while (i < n) : (i += 1) {
                const v = &s.voices[i];
                if (v.gate != 0) continue;
                const t: u64 = if (v.used != 0) v.off else 0;
                if (pick == n or t < best) {
                    pick = i;
                    best = t;
                }
            }
        }
        if (pick == n) {
            pick = 0;
            i = 1;
            while (i < n) : (i += 1) {
                if (s.voices[i].on < s.voices[pick].on) pick = i;
            }
        }
        const v = &s.voices[pick];
        s.order += 1;
        v.gate = if (v.gate != 0) 2 else 1;
        v.key = k;
        v.velocity = vel;
        v.used = 1;
        v.on = s.order;
        return pick;
    }

    /// Call at the start of every frame: hands this frame's note-ons and
    /// note-offs to the voices. Inline, the test for a frame with nothing
    /// to do (most): a call would be a function entry, where the host
    /// checks for runaways, on every frame.
    pub inline fn begin(self: *Poly, cx: *const Ctx) void {
        const b: f32 = if (rt.notes) |ns| ns.bend else 0;
        if (cx.events.len != 0 or b != self.bend) self.update(cx, b);
    }

    fn update(self: *Poly, cx: *const Ctx, b: f32) void {
        const s = self.s orelse return;
        const n = self.n;
        const retune = b != self.bend;
        self.bend = b;
        for (cx.events) |*e| {
            if (e.kind == event_kind.note_on) {
                const i = noteOn(s, n, e.number & 127, e.value);
                self.hz[i] = keyHz(@floatFromInt(s.voices[i].key), b);
            } else if (e.kind == event_kind.note_off) {
                var i: u32 = 0;
                while (i < n) : (i += 1) {
                    const v = &s.voices[i];
                    if (v.gate != 0 and v.key == e.number) {
                        s.order += 1;
                        v.gate = 0;
                        v.off = s.order;
                    }
                }
            }
        }
        if (retune) {
            var i: u32 = 0;
            while (i < n) : (i += 1) {
                const v = &s.voices[i];
                self.hz[i] = keyHz(if (v.used != 0) @floatFromInt(v.key) else 69.0, b);
            }
        }
    }

    /// Voice `i` this frame (after `begin`).
    pub fn voice(self: *Poly, i: u32) Voice {
        const s = self.s orelse return .{ .hz = 440, .gate = 0, .velocity = 0, .key = 69 };
        const v = &s.voices[i];
        const r = Voice{ .hz = self.hz[i], .gate = if (v.gate == 1) 1.0 else 0.0, .velocity = v.velocity, .key = v.key };
        if (v.gate == 2) v.gate = 1;
        return r;
    }
};

pub inline fn gain(x: f64, g: f64) f64 {
    return x * g;
}

/// Equal-power pan of a mono `x` to `.{ left, right }`, `p` in `[-1, 1]`:
/// `theta = (p + 1) pi / 4`, gains `(cos theta, sin theta)`.
pub fn pan(x: f64, p: f64) [2]f64 {
    const theta = (clamp(p, -1.0, 1.0) + 1.0) * (pi / 4.0);
    return .{ x * cos(theta), x * sin(theta) };
}

// ---- the exports -------------------------------------------------------------

pub const max_channels = constants.max_channels;

/// Frames `process` renders per loop iteration, the root's `frame` written
/// out (inlined) this many times: the same samples in the same order as
/// one frame per iteration, but the host's runaway check, which sits on
/// every loop header and function entry, runs 4 times less (README,
/// "Performance"). As in the Rust SDK (guest-sdk/src/rt.rs, UNROLL).
const unroll = 4;

/// Exports `state-ptr`, `state-len`, `init` and `process` for the signal
/// `S` (a root file with `setup` and `frame`). Call it from a `comptime`
/// block of the root file.
pub fn signal(comptime S: type) void {
    const E = Signal(S);
    @export(&E.statePtr, .{ .name = "state-ptr" });
    @export(&E.stateLen, .{ .name = "state-len" });
    @export(&E.eventsPtr, .{ .name = "events-ptr" });
    @export(&E.eventsLen, .{ .name = "events-len" });
    @export(&E.init, .{ .name = "init" });
    @export(&E.process, .{ .name = "process" });
}

/// The exports of [`signal`] for `S`, as functions (a native build's
/// harness calls them directly; `output` is where `process` rendered).
pub fn Signal(comptime S: type) type {
    return struct {
        const state_bytes: usize = if (@hasDecl(S, "state_bytes")) S.state_bytes else constants.default_state_bytes;
        const output_samples: usize = if (@hasDecl(S, "output_samples")) S.output_samples else constants.default_output_samples;
        var state: [state_bytes]u8 align(constants.max_align) = undefined;
        var out_static: [output_samples]f32 align(constants.max_align) = undefined;
        var events: [event_capacity]Event align(8) = undefined;

        pub fn eventsPtr() callconv(.c) u32 {
            return addr32(&events);
        }

        pub fn eventsLen() callconv(.c) u32 {
            return @sizeOf(@TypeOf(events));
        }

        pub fn statePtr() callconv(.c) u32 {
            return addr32(&state);
        }

        pub fn stateLen() callconv(.c) u32 {
            return state_bytes;
        }

        pub fn init(sample_rate: u32, max_frames: u32) callconv(.c) i32 {
            rt.ready = false;
            if (sample_rate == 0 or max_frames == 0) return code(error.BadArgs);
            rt.counters = [_]u32{0} ** 9;
            rt.n_params = 0;
            rt.notes = null;
            rt.sample_rate = @floatFromInt(sample_rate);
            rt.max_frames = max_frames;
            rt.in_init = true;
            const ch = S.setup(.{ .sample_rate = rt.sample_rate, .max_frames = max_frames }) catch |e| {
                rt.in_init = false;
                return code(e);
            };
            rt.in_init = false;
            if (ch < 1 or ch > max_channels) return code(error.BadChannels);
            const need = @as(u64, max_frames) * ch;
            if (need <= output_samples) {
                rt.out = &out_static;
            } else {
                // A bigger block than the static buffer holds: fresh pages.
                const pages = (need * 4 + 65535) / 65536;
                if (pages > 65536) return code(error.OutputTooSmall);
                const prev: i32 = if (native) -1 else @wasmMemoryGrow(0, @intCast(pages));
                if (prev < 0) return code(error.OutputTooSmall);
                rt.out = @ptrFromInt(@as(usize, @intCast(prev)) * 65536);
            }
            rt.channels = ch;
            rt.ready = true;
            return @intCast(ch);
        }

        /// The root's `helpers` (see the top of this file), if it declares them.
        const has_helpers = @hasDecl(S, "helpers");
        const Helpers = if (has_helpers) @TypeOf(S.helpers) else void;

        /// Frame `i` of the block into the output: `frame` inlined, its
        /// samples taken from `f` and cleared. `C` is the channel count when
        /// the compiler knows it (1 or 2: no loop, and `f` lives in
        /// registers), 0 when `ch` is read at run time.
        inline fn one(comptime C: u32, cx: *Ctx, i: u32, ch: u32, f: *[if (C == 0) max_channels else C]f64, h: *Helpers) void {
            cx.frame = i;
            cx.clock = cx.block_clock + i;
            cx.t = @as(f64, @floatFromInt(cx.clock)) / cx.sample_rate;
            if (has_helpers) {
                @call(.always_inline, S.frame, .{ cx, f[0..ch], h });
            } else {
                @call(.always_inline, S.frame, .{ cx, f[0..ch] });
            }
            const o = rt.out + i * ch;
            if (C != 0) {
                inline for (0..C) |c| {
                    o[c] = @floatCast(f[c]);
                    f[c] = 0;
                }
            } else {
                for (0..ch) |c| {
                    o[c] = @floatCast(f[c]);
                    f[c] = 0;
                }
            }
        }

        pub fn process(frames_in: u32, clock: u64, n_events: u32) callconv(.c) u32 {
            if (!rt.ready) {
                const n = @min(frames_in, output_samples);
                @memset(out_static[0..n], 0);
                return addr32(&out_static);
            }
            const frames = @min(frames_in, rt.max_frames);
            // A slice of the buffer, not the array: indexing the array
            // copied all of it (4 KB) onto the stack for every look.
            const evs: []const Event = events[0..@min(n_events, event_capacity)];
            // Mono and stereo each get a loop of their own, compiled for
            // that channel count.
            switch (rt.channels) {
                1 => render(1, frames, clock, evs),
                2 => render(2, frames, clock, evs),
                else => render(0, frames, clock, evs),
            }
            return addr32(rt.out);
        }

        fn render(comptime C: u32, frames: u32, clock: u64, evs: []const Event) void {
            const ch: u32 = if (C == 0) rt.channels else C;
            var cx = Ctx{
                .sample_rate = rt.sample_rate,
                .clock = clock,
                .t = 0,
                .block_clock = clock,
                .frames = frames,
                .frame = 0,
                .channels = ch,
            };
            // `f` holds zeros in `[0, ch)` whenever `frame` is called
            // (`one` takes the samples and clears them in one pass).
            var f: [if (C == 0) max_channels else C]f64 = undefined;
            if (C != 0) {
                f = [_]f64{0} ** C;
            } else @memset(f[0..ch], 0);
            // The block's copy of the helpers: a local whose fields the
            // compiler may keep in registers (no store to wasm memory can
            // change them), written back when the block is done.
            var h: Helpers = if (has_helpers) S.helpers else {};
            defer if (has_helpers) {
                S.helpers = h;
            };
            var k: u32 = 0;
            var i: u32 = 0;
            while (i < frames) {
                // The frame of the next event (late ones at the first frame
                // still to render, past-the-end ones at the last).
                const next = if (k < evs.len) @min(evs[k].frame, frames - 1) else frames;
                if (next >= i + unroll) {
                    // `unroll` frames without events, `frame` written out.
                    cx.events = evs[k..k];
                    inline for (0..unroll) |j| one(C, &cx, i + @as(u32, j), ch, &f, &h);
                    i += unroll;
                } else {
                    // One frame, with the events at it (if any).
                    const first = k;
                    while (k < evs.len and @min(evs[k].frame, frames - 1) <= i) : (k += 1) applyEvent(&evs[k]);
                    cx.events = evs[first..k];
                    one(C, &cx, i, ch, &f, &h);
                    i += 1;
                }
            }
        }

        pub fn output() [*]f32 {
            return rt.out;
        }
    };
}

comptime {
    if (native and !@hasDecl(@import("root"), "lel_native_host"))
        @compileError("lel.zig builds signal modules for wasm32-freestanding");
}
