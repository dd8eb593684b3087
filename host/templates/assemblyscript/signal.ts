// {{name}}.ts: a 440 Hz sine at half scale, mono. Edit, run ./build.sh, and
// the playing version is replaced keeping the oscillator's phase (osc#0).
//
// Build: ./build.sh (AssemblyScript from npm, with the lel-transform.mjs
// adapter; -> out/{{name}}.wasm). Play live: lel-host run out/
// lel.ts (the lel AssemblyScript SDK) documents every helper.

import { Ctx, Osc, Setup, gain, signal } from "./lel";
// The contract's exports (lel-transform.mjs names statePtr/stateLen `state-ptr`/`state-len`).
export { statePtr, stateLen, init, process } from "./lel";

const osc = new Osc();

function setup(s: Setup): i32 {
  osc.claim();
  return 1; // channels
}

function frame(cx: Ctx, out: StaticArray<f64>): void {
  out[0] = gain(osc.tick(440), 0.5);
}

signal(setup, frame);
