// poly-synth.ts: the poly-synth of examples/rust/poly-synth in
// AssemblyScript, sample for sample: 8 voices (Poly), each a band-limited
// saw through a resonant lowpass (`cutoff`, q 0.7) and an ADSR (Env: 5 ms
// attack, 100 ms decay, sustain 0.7, `release`), times the note's
// velocity; the voices summed at a gain of 0.2. Mono. The same keys as the
// Rust, C and Zig builds (poly#0, notes, osc#i, biquad#i, env#i), so one
// can replace another while a chord rings.
//
// Run it:  lel-host run target/examples/poly-synth-as.wasm --osc 9000 --midi 0
// Play it: oscsend localhost 9000 /lel/poly-synth-as/note ii 60 100

import { Biquad, BiquadMode, Ctx, Env, Osc, Param, Poly, Setup, Wave, signal } from "../../guest-sdk/assemblyscript/lel";
export { statePtr, stateLen, eventsPtr, eventsLen, init, process } from "../../guest-sdk/assemblyscript/lel";

const VOICES: i32 = 8;

const cutoff = new Param();
const release = new Param();
const poly = new Poly();
const osc = new StaticArray<Osc>(VOICES);
const filter = new StaticArray<Biquad>(VOICES);
const env = new StaticArray<Env>(VOICES);
for (let i = 0; i < VOICES; i++) {
  osc[i] = new Osc(Wave.Saw);
  filter[i] = new Biquad(BiquadMode.Lowpass);
  env[i] = new Env();
}

function setup(s: Setup): i32 {
  cutoff.claim("cutoff", 2000.0, 20.0, 20000.0, "Hz");
  release.claim("release", 0.3, 0.01, 5.0, "s");
  poly.claim(VOICES);
  for (let i = 0; i < VOICES; i++) {
    osc[i].claim();
    filter[i].claim();
    env[i].claim();
  }
  return 1;
}

function frame(cx: Ctx, out: StaticArray<f64>): void {
  const fc = cutoff.tick();
  const rel = release.tick();
  let sum = 0.0;
  poly.begin(cx);
  for (let i = 0; i < VOICES; i++) {
    const v = poly.voice(<u32>i);
    const y = filter[i].tick(osc[i].tick(v.hz), fc, 0.7);
    sum += y * env[i].tick(v.gate, 0.005, 0.1, 0.7, rel) * v.velocity;
  }
  out[0] = sum * 0.2;
}

signal(setup, frame);
