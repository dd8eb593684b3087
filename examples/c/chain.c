/* chain.c: the filtered, delayed sine, as the original engine's
 * pipe(osc(440), lowpass(800), tremolo(5, 0.8), delay(0.5, 0.25), gain(0.4)):
 * a 440 Hz sine through a one-pole lowpass at 800 Hz, a 5 Hz tremolo of
 * depth 0.8, an echo every 0.25 s (line of 0.5 s, feedback 0.5, mix 0.5)
 * and a gain of 0.4. Mono. The same samples as examples/rust/filtered-delayed-sine.
 *
 * Build:  scripts/build-examples c   (-> target/examples/chain-c.wasm; the
 *         clang command is in guest-sdk/c/lel.h)
 * Run:    lel-host run target/examples/chain-c.wasm
 * Live:   lel-host run target/examples/   then edit a number, save and run
 *         scripts/build-examples c: the phases, the filter's memory and the
 *         echoes in the line carry over (keys osc#0, lowpass#0, tremolo#0,
 *         delay#0, claimed in this order like the Rust SDK's).
 */
#include "lel.h"

static lel_sine_osc osc;
static lel_fixed_lowpass lowpass;
static lel_tremolo tremolo;
static lel_delay echo;

int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_sine_osc_init(&osc);
  lel_fixed_lowpass_init(&lowpass, 800.0);
  lel_tremolo_init(&tremolo);
  lel_delay_init(&echo, 0.5); /* feedback and mix: 0.5 unless set here */
  return 1;
}

void lel_frame(const lel_ctx *cx, double *out) {
  (void)cx;
  double x = lel_sine_osc_tick(&osc, 440.0);
  x = lel_fixed_lowpass_tick(&lowpass, x);
  x = lel_tremolo_tick(&tremolo, x, 5.0, 0.8);
  x = lel_delay_tick(&echo, x, 0.25);
  out[0] = lel_gain(x, 0.4);
}
