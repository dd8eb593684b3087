// sine.ts: the smallest AssemblyScript signal: a 440 Hz sine at half scale,
// mono (the same samples as examples/rust/sine).
//
// Build:  scripts/build-examples     (or by hand, from this folder, after npm ci:)
//   npx asc sine.ts --transform ../../guest-sdk/assemblyscript/lel-transform.mjs \
//       --runtime stub -O3 --noAssert --use abort= -o ../../target/examples/sine-as.wasm
// Run:    lel-host run target/examples/sine-as.wasm
// Live:   lel-host run target/examples/   then edit, save, scripts/build-examples:
//         the phase (key "osc#0") carries over.

import { Ctx, Osc, Setup, gain, signal } from "../../guest-sdk/assemblyscript/lel";
// The contract's exports (the transform names statePtr/stateLen `state-ptr`/`state-len`).
export { statePtr, stateLen, eventsPtr, eventsLen, init, process } from "../../guest-sdk/assemblyscript/lel";

const osc = new Osc();

function setup(s: Setup): i32 {
  osc.claim();
  return 1;
}

function frame(cx: Ctx, out: StaticArray<f64>): void {
  out[0] = gain(osc.tick(440), 0.5);
}

signal(setup, frame);
