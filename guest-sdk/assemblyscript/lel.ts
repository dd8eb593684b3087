// lel.ts: the AssemblyScript guest SDK for lel-host. The lel:signal@0.2.0
// contract (wit/lel.wit) as host imports and module exports (parameters,
// note events, the monophonic note helpers, the voice allocator `Poly` and
// the ADSR `Env` included), and DSP helpers
// that compute the same samples as the Rust SDK (guest-sdk/README.md,
// "Algorithms"), each claiming its state under the same key ("osc#0",
// "lowpass#0", ...) so a reload keeps it.
//
// A signal is an entry file that re-exports the contract's functions and
// hands its `setup` and `frame` to `signal`:
//
//     import { Ctx, Osc, Setup, gain, signal } from "./lel";
//     export { statePtr, stateLen, init, process } from "./lel";
//
//     const osc = new Osc();
//
//     function setup(s: Setup): i32 {   // inside `init`: claim state
//       osc.claim();
//       return 1;                       // channels
//     }
//
//     function frame(cx: Ctx, out: StaticArray<f64>): void {  // per frame
//       out[0] = gain(osc.tick(440), 0.5);
//     }
//
//     signal(setup, frame);
//
// A signal that reads notes or events also re-exports `eventsPtr` and
// `eventsLen` (the event buffer). Build it with the adapter transform that
// names `statePtr`/`stateLen`/`eventsPtr`/`eventsLen` as the contract's
// `state-ptr`/`state-len`/`events-ptr`/`events-len` (AssemblyScript cannot
// spell a dash in an export name) and puts `frame` inside `process` when
// `signal` is handed a function the entry file declares (see
// lel-transform.mjs):
//
//     npx asc sine.ts --transform ./lel-transform.mjs --runtime stub \
//         -O3 --noAssert --use abort= -o sine.wasm
//
// The transform reads the fields of helpers held in module-level variables
// once per block, unless `process` writes them (lel-transform.mjs): set a
// helper's fields through the helper (`osc.wave = Wave.Saw`), never
// through its address (`changetype<usize>(osc)`), which it would not see.
//
// Helpers are mono: one instance per channel. `claim` may only be called
// from `setup`; the n-th helper of a kind claimed gets the key "kind#n", or
// the name passed to `claim("...")` (the index of its kind is still taken,
// so naming one helper renumbers no other). A failed claim is logged and
// remembered, and `init` returns its error code, which rejects the version.
//
// The state region is STATE_BYTES (1 MiB) and the static output buffer
// OUTPUT_SAMPLES floats: edit the constants below to change them.
//
// The contract's constants (error codes, log levels, limits) and the host
// imports are in lel_constants.ts beside this file (generated from
// wit/constants.txt, like the other SDKs' constants) and re-exported here:
// keep the two files together.

// ---- the contract ----------------------------------------------------------

import {
  CLAIM_ALIGN, DEFAULT_OUTPUT_SAMPLES, DEFAULT_STATE_BYTES, LOG_DEBUG, LOG_ERROR, LOG_INFO,
  LOG_TRACE, LOG_WARN, MAX_ALIGN, MAX_CHANNELS, REGION_FULL, BAD_ARGS,
  OUTPUT_TOO_SMALL, BAD_CHANNELS, hostClaim, hostLog, hostParam, NOTE_ON, NOTE_OFF,
  CONTROL_CHANGE, PITCH_BEND, CHANNEL_PRESSURE, PARAM, MAX_PARAMS, DEFAULT_EVENT_CAPACITY,
  TOO_MANY_PARAMS,
} from "./lel_constants";
export * from "./lel_constants";

export const enum Level {
  Error = LOG_ERROR, Warn = LOG_WARN, Info = LOG_INFO, Debug = LOG_DEBUG, Trace = LOG_TRACE,
}

const STATE_BYTES: i32 = DEFAULT_STATE_BYTES;
const OUTPUT_SAMPLES: i32 = DEFAULT_OUTPUT_SAMPLES;

const STATE: usize = memory.data(STATE_BYTES, MAX_ALIGN);
const OUT_STATIC: usize = memory.data(OUTPUT_SAMPLES * 4, MAX_ALIGN);
const SCRATCH_BYTES: i32 = 1024;
const SCRATCH: usize = memory.data(SCRATCH_BYTES, 16);

/// Encodes `s` as UTF-8 into the scratch buffer: all of it if it fits, else
/// as many of its first UTF-16 units as surely fit (one unit is at most 3
/// bytes); returns the bytes written.
function toScratch(s: string): i32 {
  const max = SCRATCH_BYTES / 3;
  const units = String.UTF8.byteLength(s) <= SCRATCH_BYTES ? s.length : (s.length < max ? s.length : max);
  return <i32>String.UTF8.encodeUnsafe(changetype<usize>(s), units, SCRATCH);
}

/// Sends `msg` to the host's log.
export function log(level: Level, msg: string): void {
  hostLog(level, SCRATCH, toScratch(msg));
}

// ---- what a signal gets ------------------------------------------------------

/// What `setup` gets: the sample rate and the most frames per block.
export class Setup {
  sampleRate: f64 = 0;
  maxFrames: u32 = 0;
}

/// Where a frame is: as `Ctx` in the Rust SDK.
export class Ctx {
  /** Address of the first event at this frame (16 bytes each; already
   * applied to parameters and notes). */
  events: usize = 0;
  /** Events at this frame. */
  nEvents: u32 = 0;
  sampleRate: f64 = 0;
  /** `process`'s clock: the block's first frame. */
  blockClock: u64 = 0;
  /** Frames in this block. */
  frames: u32 = 0;
  /** Index of this frame in the block. */
  frame: u32 = 0;
  channels: u32 = 0;
  // `clock` and `t` are computed when read: `process` sets only `frame`
  // per frame. Stored per frame, `t`'s division ran in every frame of every
  // signal (the object is a global: asc cannot drop stores nobody reads),
  // a tenth of the chain example's time.
  /** Absolute frame index of this frame. */
  // @ts-ignore: decorator
  @inline get clock(): u64 { return this.blockClock + <u64>this.frame; }
  /** `clock / sampleRate`, in seconds. */
  // @ts-ignore: decorator
  @inline get t(): f64 { return <f64>this.clock / this.sampleRate; }
}

// ---- math: the Rust SDK's `lel::math` ---------------------------------------

export const PI: f64 = 3.14159265358979323846;
export const TAU: f64 = 6.28318530717958647692;

// @ts-ignore: decorator
@inline export function floor(x: f64): f64 { return Math.floor(x); }
// @ts-ignore: decorator
@inline export function fract(x: f64): f64 { return x - Math.floor(x); }

/** `x` limited to `[lo, hi]`, NaN mapped to `lo`. */
// @ts-ignore: decorator
@inline export function clamp(x: f64, lo: f64, hi: f64): f64 {
  if (x >= lo) return x <= hi ? x : hi;
  return lo;
}

// sin and cos are AssemblyScript's own (`Math.sin`, `Math.cos`: ports of
// musl, the same bits as the Rust SDK's libm). `exp` is ported from the Rust
// SDK's libm here, because asc -O3 picks a table-driven `Math.exp` that
// rounds differently in the last bit for some inputs.

/**
 * The sine of `p` turns plus `quarters` quarter turns: the Rust SDK's
 * `lel::math::sin_turns`, the same operations in the same order (the same
 * bits). No library call; within 1e-15 of the exact value.
 */
// @ts-ignore: decorator
@inline function turns(p: f64, quarters: f64): f64 {
  const S3: f64 = 0.16666666666666666, S5: f64 = 0.0083333333333333332,
    S7: f64 = 0.00019841269841269841, S9: f64 = 2.7557319223985893e-06,
    S11: f64 = 2.505210838544172e-08, S13: f64 = 1.6059043836821613e-10,
    S15: f64 = 7.6471637318198164e-13;
  const C4: f64 = 0.041666666666666664, C6: f64 = 0.0013888888888888889,
    C8: f64 = 2.4801587301587302e-05, C10: f64 = 2.7557319223985888e-07,
    C12: f64 = 2.08767569878681e-09, C14: f64 = 1.1470745597729725e-11,
    C16: f64 = 4.7794773323873853e-14;
  const ROUND: f64 = 6755399441055744.0; // 1.5 * 2^52
  const q = (4.0 * p + ROUND) - ROUND;
  const r = p - q * 0.25;
  const x = r * TAU;
  const z = x * x;
  const z2 = z * z;
  const z4 = z2 * z2;
  const m = q + quarters;
  const k = m - 4.0 * ((m * 0.25 + ROUND) - ROUND);
  let v: f64;
  // The Rust SDK's `c - z * k` written `z * -k + c`: the same bits
  // (negating a product is exact, and addition commutes), and the
  // constant is the second operand: wasmtime then reads it from memory in
  // the instruction, where a constant subtracted from took two more
  // instructions and a register each time (LLVM rewrites it so for the
  // other SDKs; binaryen does not).
  if (k == 1.0 || k == -1.0) {
    const lo = (z * -0.5 + 1.0) + z2 * (z * -C6 + C4);
    const hi = (z * -C10 + C8) + z2 * (z * -C14 + C12);
    v = lo + z4 * (hi + z4 * C16);
  } else {
    const lo = (z * -S3 + 1.0) + z2 * (z * -S7 + S5);
    const hi = (z * -S11 + S9) + z2 * (z * -S15 + S13);
    v = x * (lo + z4 * hi);
  }
  return (k < 0.0 || k == 2.0) ? -v : v;
}

/** `sin(TAU * p)`: the sine of `p` full turns (oscillators, tremolo). */
// @ts-ignore: decorator
@inline export function sinTurns(p: f64): f64 { return turns(p, 0.0); }
/** `cos(TAU * p)`: the cosine of `p` full turns. */
// @ts-ignore: decorator
@inline export function cosTurns(p: f64): f64 { return turns(p, 1.0); }

/** Sine of `x` radians. */
// @ts-ignore: decorator
@inline export function sin(x: f64): f64 { return Math.sin(x); }
/** Cosine of `x` radians. */
// @ts-ignore: decorator
@inline export function cos(x: f64): f64 { return Math.cos(x); }

/** `x * 2^n`. */
export function scalbn(x: f64, n: i32): f64 {
  if (n > 1023) {
    x *= reinterpret<f64>(0x7FE0000000000000); n -= 1023;
    if (n > 1023) { x *= reinterpret<f64>(0x7FE0000000000000); n -= 1023; if (n > 1023) n = 1023; }
  } else if (n < -1022) {
    x *= reinterpret<f64>(0x0360000000000000); n += 1022 - 53;
    if (n < -1022) { x *= reinterpret<f64>(0x0360000000000000); n += 1022 - 53; if (n < -1022) n = -1022; }
  }
  return x * reinterpret<f64>(<u64>(0x3FF + n) << 52);
}

/** `e^x`: libm's (FreeBSD msun) algorithm, statement for statement. */
export function exp(x: f64): f64 {
  const ln2hi = 6.93147180369123816490e-01, ln2lo = 1.90821492927058770002e-10,
    invln2 = 1.44269504088896338700e+00, P1 = 1.66666666666666019037e-01,
    P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05,
    P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08;
  let hx = <u32>(reinterpret<u64>(x) >> 32);
  const sign = <i32>(hx >> 31);
  hx &= 0x7FFFFFFF;
  if (hx >= 0x4086232B) {
    if (isNaN(x)) return x;
    if (x > 709.782712893383973096) return x * reinterpret<f64>(0x7FE0000000000000);
    if (x < -745.13321910194110842) return 0;
  }
  let hi: f64, lo: f64, k: i32;
  if (hx > 0x3FD62E42) {
    if (hx >= 0x3FF0A2B2) k = <i32>(invln2 * x + (sign ? -0.5 : 0.5));
    else k = 1 - sign - sign;
    hi = x - <f64>k * ln2hi;
    lo = <f64>k * ln2lo;
    x = hi - lo;
  } else if (hx > 0x3E300000) {
    k = 0; hi = x; lo = 0;
  } else {
    return 1.0 + x;
  }
  const xx = x * x;
  const c = x - xx * (P1 + xx * (P2 + xx * (P3 + xx * (P4 + xx * P5))));
  const y = 1.0 + (x * c / (2.0 - c) - lo + hi);
  return k == 0 ? y : scalbn(y, k);
}

// ---- state -----------------------------------------------------------------

const enum Kind { Osc = 0, Noise, Lowpass, Highpass, Biquad, Tremolo, Delay, Env, Poly }
const KINDS: StaticArray<string> = ["osc", "noise", "lowpass", "highpass", "biquad", "tremolo", "delay", "env", "poly"];

const counters = new StaticArray<u32>(9);
let claimError: i32 = 0;
let sampleRate_: f64 = 0;
let maxFrames_: u32 = 0;
let channels_: u32 = 0;
let out_: usize = 0;
let ready: bool = false;

/// The sample rate (set before `setup` runs).
export function sampleRate(): f64 { return sampleRate_; }

/// Claims `size` bytes aligned to `align` under `key`: the block's address,
/// or 0 after logging the failure (`init` then returns the error code).
export function claim(key: string, size: u32, align: u32): usize {
  const r = hostClaim(SCRATCH, toScratch(key), <i32>size, <i32>align);
  if (r < 0) {
    if (claimError == 0) {
      claimError = r;
      log(Level.Error, "lel: init failed, claim '" + key + "': " + r.toString());
    }
    return 0;
  }
  return <usize>r;
}

function claimKind(kind: Kind, size: u32, name: string): usize {
  const index = counters[kind];
  counters[kind] = index + 1;
  if (name.length > 0) return claim(name, size, CLAIM_ALIGN);
  return claim(KINDS[kind] + "#" + index.toString(), size, CLAIM_ALIGN);
}

// ---- parameters and notes (contract 0.2) -------------------------------------

const NOTE_ON_KIND: u8 = <u8>NOTE_ON;
const NOTE_OFF_KIND: u8 = <u8>NOTE_OFF;
const CONTROL_CHANGE_KIND: u8 = <u8>CONTROL_CHANGE;
const PITCH_BEND_KIND: u8 = <u8>PITCH_BEND;
const CHANNEL_PRESSURE_KIND: u8 = <u8>CHANNEL_PRESSURE;
const PARAM_KIND: u8 = <u8>PARAM;
const MAX_PARAMS_: i32 = MAX_PARAMS;
const EVENT_CAPACITY: i32 = DEFAULT_EVENT_CAPACITY;
const TOO_MANY_PARAMS_: i32 = TOO_MANY_PARAMS;

const EVENTS: usize = memory.data(EVENT_CAPACITY * 16, 8);
const PARAMS: usize = memory.data(MAX_PARAMS_ * 4, 4);
let nParams: i32 = 0;
let notes_: usize = 0;

/// A host parameter: `claim` it in `setup`, `tick` it once per frame for
/// the smoothed value (a straight ramp to each new value lasting 20 ms,
/// none for a stepped parameter: the Rust SDK's law). Declare a key once.
export class Param {
  cell: usize = 0;
  index: i32 = 0;
  ramp: u32 = 1;
  left: u32 = 0;
  y: f64 = 0;
  target: f64 = NaN;
  step: f64 = 0;

  /// Declares `key` with its default, range, unit ("" for none) and steps
  /// (0 continuous, n >= 2 values). A failure is logged and rejects the
  /// version.
  claim(key: string, def: f64, min: f64, max: f64, unit: string = "", steps: u32 = 0): void {
    this.cell = 0;
    this.y = def;
    this.target = NaN;
    this.left = 0;
    this.smooth(steps == 0 ? 0.02 : 0.0);
    if (nParams >= MAX_PARAMS_) {
      if (claimError == 0) claimError = TOO_MANY_PARAMS_;
      return;
    }
    const keyLen = toScratch(key);
    const unitAt = SCRATCH + 512;
    const unitLen = <i32>String.UTF8.encodeUnsafe(changetype<usize>(unit), unit.length < 16 ? unit.length : 16, unitAt);
    const r = hostParam(SCRATCH, keyLen, <f32>def, <f32>min, <f32>max, unitAt, unitLen, <i32>steps);
    if (r < 0) {
      if (claimError == 0) {
        claimError = r;
        log(Level.Error, "lel: init failed, param '" + key + "': " + r.toString());
      }
      return;
    }
    this.cell = <usize>r;
    this.index = nParams;
    store<u32>(PARAMS + (<usize>nParams << 2), <u32>r);
    nParams++;
  }

  /// Sets the ramp time in seconds (0: none).
  smooth(seconds: f64): void {
    const n = Math.floor(seconds * sampleRate_ + 0.5);
    this.ramp = n >= 1.0 && n < 4.0e9 ? <u32>n : 1;
  }

  /// The value the host holds now (no smoothing).
  value(): f64 { return this.cell ? <f64>load<f32>(this.cell) : this.y; }

  /// The smoothed value for this frame (once per frame).
  tick(): f64 {
    if (!this.cell) return this.y;
    const x = <f64>load<f32>(this.cell);
    if (x != this.target) {
      if (isNaN(this.target) || this.ramp <= 1) {
        this.y = x;
        this.left = 0;
      } else {
        this.step = (x - this.y) / <f64>this.ramp;
        this.left = this.ramp;
      }
      this.target = x;
    }
    if (this.left > 0) {
      this.left--;
      this.y = this.left == 0 ? this.target : this.y + this.step;
    }
    return this.y;
  }
}

// The monophonic note state, claimed under "notes" (544 bytes; every
// channel plays it): key u32 @0, gate u32 @4, played u32 @8, velocity f32
// @12, bend f32 @16, pressure f32 @20, cc f32[128] @32. A note-on sets key,
// velocity and the gate; a note-off closes the gate only if it releases
// the last key played.

/// Claims the note state (in `setup`; once is enough).
export function notes(): void {
  if (notes_ == 0) notes_ = claim("notes", 544, CLAIM_ALIGN);
}

/// `440 exp((key - 69 + 2 bend) ln2 / 12)`: `key` bent by `bend` (-1..1).
export function keyHz(key: f64, bendValue: f64): f64 {
  return 440.0 * exp((key - 69.0 + 2.0 * bendValue) * (0.69314718055994530942 / 12.0));
}

/// 1 while the last key played is held, else 0.
export function gate(): f64 { return notes_ ? <f64>load<u32>(notes_, 4) : 0.0; }
/// The last key's frequency with the bend, in Hz (440 before any note).
export function pitch(): f64 {
  if (!notes_) return 440.0;
  const key: f64 = load<u32>(notes_, 8) ? <f64>load<u32>(notes_) : 69.0;
  return keyHz(key, <f64>load<f32>(notes_, 16));
}
/// The last note-on's velocity, 0..1.
export function velocity(): f64 { return notes_ ? <f64>load<f32>(notes_, 12) : 0.0; }
/// The last key played, 0..127 (69 before any note).
export function key(): f64 {
  if (!notes_) return 69.0;
  return load<u32>(notes_, 8) ? <f64>load<u32>(notes_) : 69.0;
}
/// Controller `c`, 0..1.
export function cc(c: u32): f64 { return notes_ ? <f64>load<f32>(notes_ + 32 + (<usize>(c & 127) << 2)) : 0.0; }
/// The pitch bend, -1..1.
export function bend(): f64 { return notes_ ? <f64>load<f32>(notes_, 16) : 0.0; }
/// The channel pressure, 0..1.
export function pressure(): f64 { return notes_ ? <f64>load<f32>(notes_, 20) : 0.0; }

function applyEvent(e: usize): void {
  const kind = load<u8>(e, 4);
  const number = <u32>load<u16>(e, 6);
  const value = load<f32>(e, 8);
  if (kind == PARAM_KIND) {
    if (<i32>number < nParams && value == value) store<f32>(<usize>load<u32>(PARAMS + (<usize>number << 2)), value);
    return;
  }
  const n = notes_;
  if (!n) return;
  if (kind == NOTE_ON_KIND) {
    store<u32>(n, number & 127);
    store<f32>(n, value, 12);
    store<u32>(n, 1, 4);
    store<u32>(n, 1, 8);
  } else if (kind == NOTE_OFF_KIND) {
    if (load<u32>(n) == number) store<u32>(n, 0, 4);
  } else if (kind == CONTROL_CHANGE_KIND) {
    if (number < 128) store<f32>(n + 32 + (<usize>number << 2), value);
  } else if (kind == PITCH_BEND_KIND) {
    store<f32>(n, value, 16);
  } else if (kind == CHANNEL_PRESSURE_KIND) {
    store<f32>(n, value, 20);
  }
}

// ---- oscillators -----------------------------------------------------------

export const enum Wave { Sine = 0, Saw, Square, Triangle }

/// The PolyBLEP residual of a step at phase 0, for phase `p`, increment `dt`.
export function polyBlep(p: f64, dt: f64): f64 {
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
export function waveSample(w: Wave, p: f64, dt: f64): f64 {
  switch (w) {
    case Wave.Saw: return 2.0 * p - 1.0 - polyBlep(p, dt);
    case Wave.Square: {
      const naive: f64 = p < 0.5 ? 1.0 : -1.0;
      let q = p + 0.5;
      q = q >= 1.0 ? q - 1.0 : q;
      return naive + polyBlep(p, dt) - polyBlep(q, dt);
    }
    case Wave.Triangle: {
      let q = p + 0.25;
      q = q - Math.floor(q);
      return Math.abs(q - 0.5) * -4.0 + 1.0; // 1 - 4 |q - 0.5| (see `turns`)
    }
    default: return sinTurns(p);
  }
}

/// What every oscillator holds: its phase in cycles `[0, 1)`, key "osc#n",
/// 8 bytes, and the sample period. Every oscillator claims the kind "osc",
/// so changing the wave, or `Osc` for `SineOsc`, keeps the phase.
class Phase {
  phase: usize = 0;
  invSr: f64 = 0;

  claim(name: string = ""): void {
    this.phase = claimKind(Kind.Osc, 8, name);
    this.invSr = 1.0 / sampleRate_;
  }

  /// The phase of this frame; the next one is `inc` cycles on.
  protected advance(inc: f64): f64 {
    const p = load<f64>(this.phase);
    const q = p + inc;
    store<f64>(this.phase, q - Math.floor(q));
    return p;
  }
}

/// An oscillator of any wave (see `Phase` for its state).
export class Osc extends Phase {
  constructor(public wave: Wave = Wave.Sine) { super(); }

  /// The next sample at `freq` Hz (phase-continuous when `freq` changes).
  tick(freq: f64): f64 {
    const inc = freq * this.invSr;
    const dt = Math.abs(inc);
    return waveSample(this.wave, this.advance(inc), dt < 0.5 ? dt : 0.5);
  }
}

/// A sine oscillator: `Osc` with the wave fixed (the Rust SDK's `osc()`,
/// whose wave is a type). Same phase, key ("osc#n") and samples as an
/// `Osc` playing `Wave.Sine`, so the two swap for each other on a reload
/// keeping the phase. In a chain it is the faster one: no wave to test
/// every frame (what the filtered, delayed sine needs beside the
/// transform's fields read once per block: README "Performance").
export class SineOsc extends Phase {
  /// The next sample at `freq` Hz (phase-continuous when `freq` changes).
  tick(freq: f64): f64 {
    return sinTurns(this.advance(freq * this.invSr));
  }
}

export const NOISE_SEED: u32 = 0x2545F491;

/// White noise in `[-1, 1)`: xorshift32 (13, 17, 5), key "noise#n", 4
/// bytes. A fresh (zero) state starts from the seed; a carried one runs on.
export class Noise {
  x: usize = 0;
  seed: u32;
  constructor(seed: u32 = 0) { this.seed = seed == 0 ? NOISE_SEED : seed; }

  claim(name: string = ""): void {
    this.x = claimKind(Kind.Noise, 4, name);
  }

  tick(): f64 {
    let x = load<u32>(this.x);
    if (x == 0) x = this.seed;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    store<u32>(this.x, x);
    return <f64>x * (2.0 / 4294967296.0) - 1.0;
  }
}

// ---- filters ---------------------------------------------------------------

/// The one-pole coefficient for `cutoff` Hz: `1 - exp(-2 pi fc / sr)`.
export function onePoleCoefficient(cutoff: f64, sr: f64): f64 {
  const fc = clamp(cutoff, 0.0, 0.5 * sr);
  return 1.0 - exp(-TAU * fc / sr);
}

/// One step of a one-pole filter whose state `y` (an f64) is at `at`:
/// `y += a (x - y)`, the new `y`.
// @ts-ignore: decorator
@inline function onePoleStep(at: usize, a: f64, x: f64): f64 {
  let y = load<f64>(at);
  y += a * (x - y);
  store<f64>(at, y);
  return y;
}

class OnePole {
  y: usize = 0;
  sr: f64 = 0;
  last: f64 = NaN;
  a: f64 = 0;

  protected claimAs(kind: Kind, name: string): void {
    this.y = claimKind(kind, 8, name);
    this.sr = sampleRate_;
    this.last = NaN;
  }

  protected step(x: f64, cutoff: f64): f64 {
    if (cutoff != this.last) {
      this.last = cutoff;
      this.a = onePoleCoefficient(cutoff, this.sr);
    }
    return onePoleStep(this.y, this.a, x);
  }
}

/// One-pole lowpass `y += a (x - y)`, key "lowpass#n", one f64.
export class Lowpass extends OnePole {
  claim(name: string = ""): void { this.claimAs(Kind.Lowpass, name); }
  /// The next sample for input `x` at `cutoff` Hz (the coefficient is
  /// recomputed only when the cutoff changes).
  tick(x: f64, cutoff: f64): f64 { return this.step(x, cutoff); }
}

/// One-pole highpass `x - y`, key "highpass#n", one f64.
export class Highpass extends OnePole {
  claim(name: string = ""): void { this.claimAs(Kind.Highpass, name); }
  tick(x: f64, cutoff: f64): f64 { return x - this.step(x, cutoff); }
}

/// What the one-pole filters at a fixed cutoff hold: the coefficient,
/// computed once when claimed (the Rust SDK's `.lowpass(800.0)`, whose
/// constant cutoff is folded at bind). `process` never writes it, so the
/// transform reads it once per block; `Lowpass` tests its cutoff every
/// frame. Same key, state and samples as `Lowpass`/`Highpass` at that
/// cutoff, so a reload may swap one for the other keeping the memory.
class FixedOnePole {
  y: usize = 0;
  a: f64 = 0;
  constructor(public cutoff: f64) {}

  protected claimAs(kind: Kind, name: string): void {
    this.y = claimKind(kind, 8, name);
    this.a = onePoleCoefficient(this.cutoff, sampleRate_);
  }

  protected step(x: f64): f64 { return onePoleStep(this.y, this.a, x); }
}

/// `Lowpass` at the cutoff given to `new` (Hz): `new FixedLowpass(800)`.
export class FixedLowpass extends FixedOnePole {
  claim(name: string = ""): void { this.claimAs(Kind.Lowpass, name); }
  tick(x: f64): f64 { return this.step(x); }
}

/// `Highpass` at the cutoff given to `new` (Hz).
export class FixedHighpass extends FixedOnePole {
  claim(name: string = ""): void { this.claimAs(Kind.Highpass, name); }
  tick(x: f64): f64 { return x - this.step(x); }
}

export const enum BiquadMode { Lowpass = 0, Highpass, Bandpass }

/// Resonant biquad (RBJ cookbook, transposed direct form II), key
/// "biquad#n" whatever the mode; state s1, s2 (16 bytes).
export class Biquad {
  s: usize = 0;
  sr: f64 = 0;
  lastFc: f64 = NaN;
  lastQ: f64 = NaN;
  b0: f64 = 0; b1: f64 = 0; b2: f64 = 0; a1: f64 = 0; a2: f64 = 0;
  constructor(public mode: BiquadMode = BiquadMode.Lowpass) {}

  claim(name: string = ""): void {
    this.s = claimKind(Kind.Biquad, 16, name);
    this.sr = sampleRate_;
    this.lastFc = NaN;
    this.lastQ = NaN;
  }

  coefficients(cutoff: f64, qIn: f64): void {
    const sr = this.sr;
    const fc = clamp(cutoff, 1.0, 0.49 * sr);
    const q = qIn >= 0.01 ? qIn : 0.01;
    const w0 = 2.0 * PI * fc / sr;
    const s = sin(w0);
    const c = cos(w0);
    const alpha = s / (2.0 * q);
    let b0: f64, b1: f64, b2: f64;
    if (this.mode == BiquadMode.Highpass) {
      b0 = (1.0 + c) / 2.0; b1 = -(1.0 + c); b2 = (1.0 + c) / 2.0;
    } else if (this.mode == BiquadMode.Bandpass) {
      b0 = alpha; b1 = 0.0; b2 = -alpha;
    } else {
      b0 = (1.0 - c) / 2.0; b1 = 1.0 - c; b2 = (1.0 - c) / 2.0;
    }
    const a0 = 1.0 + alpha;
    this.b0 = b0 / a0;
    this.b1 = b1 / a0;
    this.b2 = b2 / a0;
    this.a1 = -2.0 * c / a0;
    this.a2 = (1.0 - alpha) / a0;
  }

  tick(x: f64, cutoff: f64, q: f64): f64 {
    if (cutoff != this.lastFc || q != this.lastQ) {
      this.lastFc = cutoff;
      this.lastQ = q;
      this.coefficients(cutoff, q);
    }
    const s1 = load<f64>(this.s), s2 = load<f64>(this.s, 8);
    const y = this.b0 * x + s1;
    store<f64>(this.s, this.b1 * x - this.a1 * y + s2);
    store<f64>(this.s, this.b2 * x - this.a2 * y, 8);
    return y;
  }
}

// ---- effects ---------------------------------------------------------------

/// Tremolo: `x * (1 - depth * (0.5 - 0.5 cos(2 pi p)))`, `p` advancing at
/// `rate` Hz from full level; key "tremolo#n", the phase (8 bytes).
export class Tremolo {
  phase: usize = 0;
  invSr: f64 = 0;

  claim(name: string = ""): void {
    this.phase = claimKind(Kind.Tremolo, 8, name);
    this.invSr = 1.0 / sampleRate_;
  }

  tick(x: f64, rate: f64, depth: f64): f64 {
    const inc = rate * this.invSr;
    const p = load<f64>(this.phase);
    // 1 - depth (0.5 - 0.5 cos), constants second (see `turns`).
    const g = (cosTurns(p) * -0.5 + 0.5) * -depth + 1.0;
    const q = p + inc;
    store<f64>(this.phase, q - Math.floor(q));
    return x * g;
  }
}

/// Echo with feedback and fractional delay, key "delay#n". Block: a 16-byte
/// head (the write position, then padding), then `len = ceil(maxSeconds *
/// sr) + 2` f32s. Per sample, `d = clamp(seconds * sr, 1, len - 2)`:
/// `y = a + (d - floor(d)) (b - a)`, `a` the sample written `floor(d)` ago,
/// `b` the one before; the line gets `x + feedback y`; the output is
/// `(1 - mix) x + mix y`. `feedback` and `mix` default to 0.5.
export class Delay {
  pos: usize = 0;
  line: usize = 0;
  len: u32 = 0;
  sr: f64 = 0;
  feedback: f64 = 0.5;
  mix: f64 = 0.5;
  /// The delay in samples for the last `seconds` seen, whole and fraction
  /// (recomputed only when `seconds` changes).
  lastSeconds: f64 = NaN;
  di: u32 = 0;
  frac: f64 = 0;
  constructor(public maxSeconds: f64) {}

  static lineLen(maxSeconds: f64, sr: f64): u32 {
    let n = Math.ceil(maxSeconds * sr);
    if (isNaN(n) || n < 1.0) n = 1.0;
    if (n > 4294967293.0) n = 4294967293.0;
    return <u32>n + 2;
  }

  claim(name: string = ""): void {
    this.sr = sampleRate_;
    const len = Delay.lineLen(this.maxSeconds, this.sr);
    const bytes = <u64>len * 4 + 16;
    if (bytes > 0xffffffff) {
      counters[Kind.Delay] += 1;
      if (claimError == 0) claimError = REGION_FULL;
      return;
    }
    const p = claimKind(Kind.Delay, <u32>bytes, name);
    if (p == 0) return;
    this.pos = p;
    this.line = p + 16;
    this.len = len;
  }

  tick(x: f64, seconds: f64): f64 {
    const len = this.len;
    if (len < 3) return x;
    if (seconds != this.lastSeconds) {
      const d = clamp(seconds * this.sr, 1.0, <f64>(len - 2));
      this.lastSeconds = seconds;
      this.di = <u32>d;
      this.frac = d - <f64>this.di;
    }
    const di = this.di;
    const frac = this.frac;
    let w = load<u32>(this.pos);
    if (w >= len) w = 0;
    let r0 = w + len - di;
    if (r0 >= len) r0 -= len;
    const r1 = r0 == 0 ? len - 1 : r0 - 1;
    const a = <f64>load<f32>(this.line + (<usize>r0 << 2));
    const b = <f64>load<f32>(this.line + (<usize>r1 << 2));
    const y = a + frac * (b - a);
    store<f32>(this.line + (<usize>w << 2), <f32>(x + this.feedback * y));
    store<u32>(this.pos, w + 1 == len ? 0 : w + 1);
    return (1.0 - this.mix) * x + this.mix * y;
  }
}

// ---- the ADSR and the voice allocator (contract 0.2) -------------------------

function envStep(seconds: f64, sr: f64): f64 {
  const n = seconds * sr;
  return n > 1.0 ? 1.0 / n : 1.0;
}

/// The ADSR (the Rust SDK's `adsr`): key "env#n", 16 bytes (level f64 @0,
/// stage u32 @8: 0 idle, 1 attack, 2 decay, 3 sustain, 4 release; gate u32
/// @12). A rising gate starts the attack and a falling one the release,
/// from the level where it is. Times in seconds; the level is 0 to 1.
export class Env {
  s: usize = 0;

  claim(name: string = ""): void {
    this.s = claimKind(Kind.Env, 16, name);
  }

  tick(gateValue: f64, attack: f64, decay: f64, sustainIn: f64, release: f64): f64 {
    const s = this.s;
    if (!s) return 0.0;
    const on: u32 = gateValue > 0.0 ? 1 : 0;
    const sustain = clamp(sustainIn, 0.0, 1.0);
    const was = load<u32>(s, 12);
    let stage = load<u32>(s, 8);
    if (on == 1 && was == 0) {
      stage = 1;
    } else if (on == 0 && was != 0) {
      stage = 4;
    }
    store<u32>(s, on, 12);
    let level = load<f64>(s);
    const sr = sampleRate_;
    switch (stage) {
      case 1: {
        level += envStep(attack, sr);
        if (level >= 1.0) { level = 1.0; stage = 2; }
        break;
      }
      case 2: {
        level -= (1.0 - sustain) * envStep(decay, sr);
        if (level <= sustain) { level = sustain; stage = 3; }
        break;
      }
      case 3: { level = sustain; break; }
      case 4: {
        level -= envStep(release, sr);
        if (level <= 0.0) { level = 0.0; stage = 0; }
        break;
      }
      default: { level = 0.0; stage = 0; }
    }
    store<f64>(s, level);
    store<u32>(s, stage, 8);
    return level;
  }
}

const MAX_VOICES: u32 = 16;

/// What a voice plays this frame (`Poly.voice` reuses one object: read it
/// before asking for the next voice).
export class Voice {
  hz: f64 = 440.0;
  gate: f64 = 0.0;
  velocity: f64 = 0.0;
  key: u32 = 69;
}

/// A voice allocator for `n` voices (1 to 16), its table under "poly#n"
/// (528 bytes: order u64 @0, then 16 voices of 32 bytes from @16: velocity
/// f32, key u32, gate u32 (0 off, 1 held, 2 restarted), used u32, on u64,
/// off u64). The Rust SDK's `poly` policy: a note-on takes the voice
/// already playing that key, else the free voice released longest ago
/// (never-used first, lowest index on ties), else steals the voice held
/// longest; a held voice taking a note reads gate 0 for one frame. Call
/// `begin(cx)` at the start of every frame, then `voice(i)` for each voice.
export class Poly {
  s: usize = 0;
  n: u32 = 1;
  bend: f32 = NaN;
  hz: StaticArray<f64> = new StaticArray<f64>(16);
  v: Voice = new Voice();

  claim(n: u32, name: string = ""): void {
    this.n = n < 1 ? 1 : (n > MAX_VOICES ? MAX_VOICES : n);
    this.s = claimKind(Kind.Poly, 528, name);
    notes();
    this.bend = NaN;
    for (let i = 0; i < <i32>MAX_VOICES; i++) unchecked(this.hz[i] = 440.0);
  }

  private slot(i: u32): usize { return this.s + 16 + (<usize>i << 5); }

  private noteOn(k: u32, vel: f32): u32 {
    const n = this.n;
    let pick = n;
    for (let i: u32 = 0; i < n; i++) {
      const v = this.slot(i);
      if (load<u32>(v, 12) != 0 && load<u32>(v, 4) == k
          && (pick == n || load<u64>(v, 16) >= load<u64>(this.slot(pick), 16))) pick = i;
    }
    if (pick == n) {
      let best: u64 = 0;
      for (let i: u32 = 0; i < n; i++) {
        const v = this.slot(i);
        if (load<u32>(v, 8) != 0) continue;
        const t: u64 = load<u32>(v, 12) != 0 ? load<u64>(v, 24) : 0;
        if (pick == n || t < best) {
          pick = i;
          best = t;
        }
      }
    }
    if (pick == n) {
      pick = 0;
      for (let i: u32 = 1; i < n; i++) {
        if (load<u64>(this.slot(i), 16) < load<u64>(this.slot(pick), 16)) pick = i;
      }
    }
    const v = this.slot(pick);
    const order = load<u64>(this.s) + 1;
    store<u64>(this.s, order);
    store<u32>(v, load<u32>(v, 8) != 0 ? 2 : 1, 8);
    store<u32>(v, k, 4);
    store<f32>(v, vel);
    store<u32>(v, 1, 12);
    store<u64>(v, order, 16);
    return pick;
  }

  /// Hands this frame's note-ons and note-offs to the voices.
  begin(cx: Ctx): void {
    const s = this.s;
    if (!s) return;
    const n = this.n;
    const b: f32 = notes_ ? load<f32>(notes_, 16) : 0.0;
    const retune = b != this.bend;
    this.bend = b;
    for (let j: u32 = 0; j < cx.nEvents; j++) {
      const e = cx.events + (<usize>j << 4);
      const kind = load<u8>(e, 4);
      const number = <u32>load<u16>(e, 6);
      if (kind == NOTE_ON_KIND) {
        const i = this.noteOn(number & 127, load<f32>(e, 8));
        unchecked(this.hz[i] = keyHz(<f64>load<u32>(this.slot(i), 4), <f64>b));
      } else if (kind == NOTE_OFF_KIND) {
        for (let i: u32 = 0; i < n; i++) {
          const v = this.slot(i);
          if (load<u32>(v, 8) != 0 && load<u32>(v, 4) == number) {
            const order = load<u64>(s) + 1;
            store<u64>(s, order);
            store<u32>(v, 0, 8);
            store<u64>(v, order, 24);
          }
        }
      }
    }
    if (retune) {
      for (let i: u32 = 0; i < n; i++) {
        const v = this.slot(i);
        unchecked(this.hz[i] = keyHz(load<u32>(v, 12) != 0 ? <f64>load<u32>(v, 4) : 69.0, <f64>b));
      }
    }
  }

  /// Voice `i` this frame (after `begin`).
  voice(i: u32): Voice {
    const r = this.v;
    if (!this.s) {
      r.hz = 440.0;
      r.gate = 0.0;
      r.velocity = 0.0;
      r.key = 69;
      return r;
    }
    const v = this.slot(i);
    const g = load<u32>(v, 8);
    r.hz = unchecked(this.hz[i]);
    r.gate = g == 1 ? 1.0 : 0.0;
    r.velocity = <f64>load<f32>(v);
    r.key = load<u32>(v, 4);
    if (g == 2) store<u32>(v, 1, 8);
    return r;
  }
}

/// `x` times `g`.
// @ts-ignore: decorator
@inline export function gain(x: f64, g: f64): f64 { return x * g; }

/// Equal-power pan of a mono `x`: writes left and right into `out[0]`,
/// `out[1]`; `p` in `[-1, 1]`, `theta = (p + 1) pi / 4`, gains
/// `(cos theta, sin theta)`.
export function pan(x: f64, p: f64, out: StaticArray<f64>): void {
  const theta = (clamp(p, -1.0, 1.0) + 1.0) * (PI / 4.0);
  out[0] = x * cos(theta);
  out[1] = x * sin(theta);
}

// ---- the exports -----------------------------------------------------------

let setupFn: (s: Setup) => i32 = (s: Setup): i32 => 1;
let frameFn: (cx: Ctx, out: StaticArray<f64>) => void = (cx: Ctx, out: StaticArray<f64>): void => {};
const frameBuf = new StaticArray<f64>(MAX_CHANNELS);
const ctx = new Ctx();
const setupArg = new Setup();

/// Declares the signal: `setup` claims state and returns the channel count
/// (1 to 64); `frame` writes one frame's channels into `out`.
export function signal(setup: (s: Setup) => i32, frame: (cx: Ctx, out: StaticArray<f64>) => void): void {
  setupFn = setup;
  frameFn = frame;
}

/// Contract export `state-ptr` (renamed by lel-transform.mjs).
export function statePtr(): u32 { return <u32>STATE; }

/// Contract export `state-len` (renamed by lel-transform.mjs).
export function stateLen(): u32 { return <u32>STATE_BYTES; }

/// Contract export `events-ptr` (renamed by lel-transform.mjs).
export function eventsPtr(): u32 { return <u32>EVENTS; }

/// Contract export `events-len` (renamed by lel-transform.mjs).
export function eventsLen(): u32 { return <u32>(EVENT_CAPACITY * 16); }

/// Contract export `init`: claims state, returns the channel count.
export function init(sampleRate: u32, maxFrames: u32): i32 {
  ready = false;
  if (sampleRate == 0 || maxFrames == 0) return BAD_ARGS;
  for (let i = 0; i < 9; i++) counters[i] = 0;
  nParams = 0;
  notes_ = 0;
  claimError = 0;
  sampleRate_ = <f64>sampleRate;
  maxFrames_ = maxFrames;
  setupArg.sampleRate = sampleRate_;
  setupArg.maxFrames = maxFrames;
  const ch = setupFn(setupArg);
  if (claimError != 0) return claimError;
  if (ch < 0) return ch;
  if (ch < 1 || ch > MAX_CHANNELS) return BAD_CHANNELS;
  const need = <u64>maxFrames * <u64>ch;
  if (need <= <u64>OUTPUT_SAMPLES) {
    out_ = OUT_STATIC;
  } else {
    // A bigger block than the static buffer holds: fresh pages for it.
    const pages = (need * 4 + 65535) / 65536;
    if (pages > 65536) return OUTPUT_TOO_SMALL;
    const prev = memory.grow(<i32>pages);
    if (prev < 0) return OUTPUT_TOO_SMALL;
    out_ = <usize>prev << 16;
  }
  channels_ = <u32>ch;
  ready = true;
  return ch;
}

/// Frames `process` renders per loop iteration, `frame` written out this
/// many times: the same samples in the same order as one frame per
/// iteration, but the host's runaway check, which sits on every loop
/// header and function entry, runs 4 times less (README, "Performance").
/// As in the Rust SDK (guest-sdk/src/rt.rs, UNROLL).
const UNROLL: u32 = 4;

// The five places `process` calls `frame` (four frames of a loop
// iteration, and one frame alone), each its own function called once.
// Built as they are, each calls `frame` through the table (a function
// reference). lel-transform.mjs replaces each one's body with a copy of
// the signal's `frame` (when the entry file hands `signal` a function it
// declares) and has Binaryen inline the five into `process`: no call and
// no function entry per frame.
function __lelFrame0(cx: Ctx, out: StaticArray<f64>): void { frameFn(cx, out); }
function __lelFrame1(cx: Ctx, out: StaticArray<f64>): void { frameFn(cx, out); }
function __lelFrame2(cx: Ctx, out: StaticArray<f64>): void { frameFn(cx, out); }
function __lelFrame3(cx: Ctx, out: StaticArray<f64>): void { frameFn(cx, out); }
function __lelFrame4(cx: Ctx, out: StaticArray<f64>): void { frameFn(cx, out); }

/// Sets `cx` for frame `i` of the block.
// @ts-ignore: decorator
@inline function seek(cx: Ctx, i: u32): void {
  cx.frame = i;
}

/// Takes a frame's `ch` samples from `f` into `o` and clears them (`f`
/// holds zeros in `[0, ch)` whenever `frame` is called), without a loop
/// for one or two channels.
// @ts-ignore: decorator
@inline function emit(ch: u32, f: StaticArray<f64>, o: usize): void {
  if (ch == 1) {
    store<f32>(o, <f32>unchecked(f[0]));
    unchecked(f[0] = 0.0);
  } else if (ch == 2) {
    store<f32>(o, <f32>unchecked(f[0]));
    store<f32>(o, <f32>unchecked(f[1]), 4);
    unchecked(f[0] = 0.0);
    unchecked(f[1] = 0.0);
  } else {
    for (let c: u32 = 0; c < ch; c++) {
      store<f32>(o + (<usize>c << 2), <f32>unchecked(f[c]));
      unchecked(f[c] = 0.0);
    }
  }
}

/// Contract export `process`: renders `frames` frames from `clock`, returns
/// the address of the interleaved f32 samples.
export function process(frames: u32, clock: u64, events: u32): u32 {
  if (!ready) {
    const n = frames < <u32>OUTPUT_SAMPLES ? frames : <u32>OUTPUT_SAMPLES;
    memory.fill(OUT_STATIC, 0, <usize>n << 2);
    return <u32>OUT_STATIC;
  }
  if (frames > maxFrames_) frames = maxFrames_;
  const ch = channels_;
  const cx = ctx;
  cx.sampleRate = sampleRate_;
  cx.blockClock = clock;
  cx.frames = frames;
  cx.channels = ch;
  const f = frameBuf;
  for (let c: u32 = 0; c < ch; c++) unchecked(f[c] = 0.0);
  const out = out_;
  const step = <usize>ch << 2;
  if (events > <u32>EVENT_CAPACITY) events = <u32>EVENT_CAPACITY;
  let k: u32 = 0;
  let i: u32 = 0;
  while (i < frames) {
    // The frame of the next event (late ones at the first frame still to
    // render, past-the-end ones at the last).
    let next = frames;
    if (k < events) {
      const at = load<u32>(EVENTS + (<usize>k << 4));
      next = at < frames ? at : frames - 1;
    }
    const o = out + <usize>i * step;
    if (next >= i + UNROLL) {
      // UNROLL frames without events.
      cx.events = EVENTS + (<usize>k << 4);
      cx.nEvents = 0;
      seek(cx, i);
      __lelFrame0(cx, f);
      emit(ch, f, o);
      seek(cx, i + 1);
      __lelFrame1(cx, f);
      emit(ch, f, o + step);
      seek(cx, i + 2);
      __lelFrame2(cx, f);
      emit(ch, f, o + 2 * step);
      seek(cx, i + 3);
      __lelFrame3(cx, f);
      emit(ch, f, o + 3 * step);
      i += UNROLL;
    } else {
      // One frame, with the events at it (if any).
      const first = k;
      while (k < events) {
        const at = load<u32>(EVENTS + (<usize>k << 4));
        if ((at < frames ? at : frames - 1) > i) break;
        applyEvent(EVENTS + (<usize>k << 4));
        k++;
      }
      cx.events = EVENTS + (<usize>first << 4);
      cx.nEvents = k - first;
      seek(cx, i);
      __lelFrame4(cx, f);
      emit(ch, f, o);
      i++;
    }
  }
  return <u32>out;
}
