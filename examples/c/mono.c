/* mono.c: examples/rust/mono in C, the same samples: a sine at the last
 * note's pitch (with the bend), on while the note is held, times its
 * velocity and the parameter `level` (0 to 1, default 0.5, smoothed over
 * 20 ms). Mono. Keys: osc#0, notes (the Rust SDK's).
 *
 * Build:  scripts/build-examples c   (-> target/examples/mono-c.wasm)
 * Run:    lel-host run target/examples/mono-c.wasm --osc 9000
 */
#include "lel.h"

static lel_osc osc;
static lel_param level;

int lel_setup(const lel_setup_ctx *s) {
  (void)s;
  lel_osc_init(&osc, LEL_SINE);
  lel_notes_init();
  lel_param_init(&level, "level", 0.5, 0.0, 1.0, "", 0);
  return 1;
}

void lel_frame(const lel_ctx *cx, double *out) {
  (void)cx;
  out[0] = lel_osc_tick(&osc, lel_pitch()) * lel_gate() * lel_velocity() * lel_param_tick(&level);
}
