/* sine.c: the smallest C signal: a 440 Hz sine at half scale, mono (the
 * same samples as examples/rust/sine).
 *
 * Build:  scripts/build-examples     (or by hand:)
 *   clang --target=wasm32 -O2 -ffreestanding -nostdlib -ffp-contract=off \
 *         -mbulk-memory -mnontrapping-fptoint -Wl,--no-entry -Wl,--strip-all \
 *         -I guest-sdk/c -o target/examples/sine-c.wasm examples/c/sine.c
 * Run:    lel-host run target/examples/sine-c.wasm
 * Live:   lel-host run target/examples/   then edit, save, scripts/build-examples:
 *         the phase (key "osc#0") carries over.
 */
#include "lel.h"

static lel_osc osc;

int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_osc_init(&osc, LEL_SINE);
  return 1;
}

void lel_frame(const lel_ctx *cx, double *out) {
  (void)cx;
  out[0] = lel_gain(lel_osc_tick(&osc, 440.0), 0.5);
}
