/* poly-synth.c: examples/rust/poly-synth in C, the same samples. Eight
 * voices, each a band-limited saw through a resonant lowpass (`cutoff`,
 * q 0.7) and an ADSR (5 ms attack, 100 ms decay, sustain 0.7, `release`)
 * times the note's velocity, summed at a gain of 0.2. Mono.
 *
 * Parameters: `cutoff` (20 to 20,000 Hz, default 2,000) and `release`
 * (0.01 to 5 s, default 0.3), smoothed over 20 ms. Notes: MIDI or OSC
 * (`/lel/poly-synth-c/note ii 60 100`), every channel.
 *
 * Build:  scripts/build-examples c   (-> target/examples/poly-synth-c.wasm)
 * Run:    lel-host run target/examples/poly-synth-c.wasm --osc 9000
 * Keys:   poly#0, notes, then per voice osc#i, biquad#i, env#i: the Rust
 *         SDK's, so either language can replace the other mid-note.
 */
#include "lel.h"

#define VOICES 8

static lel_param cutoff, release;
static lel_poly poly;
static lel_osc osc[VOICES];
static lel_biquad filter[VOICES];
static lel_env env[VOICES];

int lel_setup(const lel_setup_ctx *s) {
  int i;
  (void)s;
  lel_param_init(&cutoff, "cutoff", 2000.0, 20.0, 20000.0, "Hz", 0);
  lel_param_init(&release, "release", 0.3, 0.01, 5.0, "s", 0);
  lel_poly_init(&poly, VOICES);
  for (i = 0; i < VOICES; i++) {
    lel_osc_init(&osc[i], LEL_SAW);
    lel_biquad_init(&filter[i], LEL_BQ_LOWPASS);
    lel_env_init(&env[i]);
  }
  return 1;
}

void lel_frame(const lel_ctx *cx, double *out) {
  double fc = lel_param_tick(&cutoff), rel = lel_param_tick(&release), sum = 0.0;
  int i;
  lel_poly_begin(&poly, cx);
  for (i = 0; i < VOICES; i++) {
    lel_voice v = lel_poly_voice(&poly, i);
    double y = lel_biquad_tick(&filter[i], lel_osc_tick(&osc[i], v.hz), fc, 0.7);
    sum += y * lel_adsr_tick(&env[i], v.gate, 0.005, 0.1, 0.7, rel) * v.velocity;
  }
  out[0] = sum * 0.2;
}
