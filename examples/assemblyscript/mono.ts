// mono.ts: examples/rust/mono in AssemblyScript, the same samples: a sine
// at the last note's pitch (with the bend), on while the note is held,
// times its velocity and the parameter `level` (0 to 1, default 0.5,
// smoothed over 20 ms). Mono. Keys: osc#0, notes (the Rust SDK's).
//
// Build:  scripts/build-examples as   (-> target/examples/mono-as.wasm)
// Run:    lel-host run target/examples/mono-as.wasm --osc 9000

import { Ctx, Osc, Param, Setup, gate, notes, pitch, signal, velocity } from "../../guest-sdk/assemblyscript/lel";
// The contract's exports (the transform gives statePtr, stateLen, eventsPtr
// and eventsLen their dashed names).
export { statePtr, stateLen, eventsPtr, eventsLen, init, process } from "../../guest-sdk/assemblyscript/lel";

const osc = new Osc();
const level = new Param();

function setup(s: Setup): i32 {
  osc.claim();
  notes();
  level.claim("level", 0.5, 0.0, 1.0);
  return 1;
}

function frame(cx: Ctx, out: StaticArray<f64>): void {
  out[0] = osc.tick(pitch()) * gate() * velocity() * level.tick();
}

signal(setup, frame);
