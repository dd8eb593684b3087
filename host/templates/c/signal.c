/* {{name}}.c: a 440 Hz sine at half scale, mono. Edit, run ./build.sh, and
 * the playing version is replaced keeping the oscillator's phase (osc#0).
 *
 * Build: ./build.sh (clang --target=wasm32, no libc; -> out/{{name}}.wasm).
 * Play live: lel-host run out/
 * lel.h (the lel C SDK) documents every helper.
 */
#include "lel.h"

static lel_osc osc;

int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_osc_init(&osc, LEL_SINE);
  return 1; /* channels */
}

void lel_frame(const lel_ctx *cx, double *out) {
  (void)cx;
  out[0] = lel_gain(lel_osc_tick(&osc, 440.0), 0.5);
}
