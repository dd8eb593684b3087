// chain.ts: the filtered, delayed sine, as the original engine's
// pipe(osc(440), lowpass(800), tremolo(5, 0.8), delay(0.5, 0.25), gain(0.4)):
// a 440 Hz sine through a one-pole lowpass at 800 Hz, a 5 Hz tremolo of
// depth 0.8, an echo every 0.25 s (line of 0.5 s, feedback 0.5, mix 0.5) and
// a gain of 0.4. Mono. The same samples as examples/rust/filtered-delayed-sine.
//
// Build:  scripts/build-examples as   (-> target/examples/chain-as.wasm; the
//         asc command is in guest-sdk/assemblyscript/lel.ts)
// Run:    lel-host run target/examples/chain-as.wasm
// Live:   lel-host run target/examples/   then edit a number, save and run
//         scripts/build-examples as: the phases, the filter's memory and the
//         echoes in the line carry over (keys osc#0, lowpass#0, tremolo#0,
//         delay#0, claimed in this order like the Rust SDK's).

import { Ctx, Delay, FixedLowpass, SineOsc, Setup, Tremolo, gain, signal } from "../../guest-sdk/assemblyscript/lel";
// The contract's exports (the transform names statePtr/stateLen `state-ptr`/`state-len`).
export { statePtr, stateLen, eventsPtr, eventsLen, init, process } from "../../guest-sdk/assemblyscript/lel";

const osc = new SineOsc();
const lowpass = new FixedLowpass(800);
const tremolo = new Tremolo();
const echo = new Delay(0.5); // feedback and mix: 0.5 unless set

function setup(s: Setup): i32 {
  osc.claim();
  lowpass.claim();
  tremolo.claim();
  echo.claim();
  return 1;
}

function frame(cx: Ctx, out: StaticArray<f64>): void {
  let x = osc.tick(440);
  x = lowpass.tick(x);
  x = tremolo.tick(x, 5, 0.8);
  x = echo.tick(x, 0.25);
  out[0] = gain(x, 0.4);
}

signal(setup, frame);
