/* lel.h: the C guest SDK for lel-host, one header: the lel:signal@0.1.0
 * contract (wit/lel.wit) as host imports and module exports, and static
 * inline DSP helpers that compute the same samples as the Rust SDK
 * (guest-sdk/README.md, "Algorithms"), each claiming its state under the
 * same key ("osc#0", "lowpass#0", ...) so a reload keeps it.
 *
 * A signal is one C file that includes this header once and defines two
 * functions:
 *
 *     #include "lel.h"
 *
 *     static lel_osc osc;
 *
 *     int lel_setup(const lel_setup_ctx *s) {   // inside `init`: claim state
 *         lel_osc_init(&osc, LEL_SINE);
 *         return 1;                              // channels
 *     }
 *
 *     void lel_frame(const lel_ctx *cx, double *out) {   // once per frame
 *         out[0] = 0.5 * lel_osc_tick(&osc, 440.0);
 *     }
 *
 * Build it without libc for wasm32 (Debian's clang and lld are enough):
 *
 *     clang --target=wasm32 -O2 -ffreestanding -nostdlib -ffp-contract=off \
 *           -mbulk-memory -mnontrapping-fptoint -Wl,--no-entry \
 *           -Wl,--strip-all -I guest-sdk/c -o sine.wasm sine.c
 *
 * The exports (`state-ptr`, `state-len`, `init`, `process`) are named in
 * this header with `export_name` (LEL_EXPORT), the imports (`claim`, `log`)
 * with `import_module`/`import_name`; wasm-ld exports `memory`. Define
 * LEL_STATE_BYTES (default 1 MiB) or LEL_OUTPUT_SAMPLES (default 8192)
 * before the include to resize the state region or the static output
 * buffer, or LEL_NO_EXPORTS to write the exports yourself with LEL_EXPORT,
 * `lel_state_region` and the helpers (LEL_NATIVE compiles the header for
 * the build machine, for testing the math).
 *
 * The contract's constants (error codes, log levels, limits) and the host
 * imports are in lel_constants.h, which this header includes: keep the two
 * files together. It is generated from wit/constants.txt, like the other
 * SDKs' constants, so every SDK uses the host's numbers.
 *
 * Helpers are mono: one instance per channel (a stereo filter is two
 * `lel_lowpass`, keys lowpass#0 and lowpass#1). Their `_init` functions
 * claim state and may only be called from `lel_setup`; the n-th helper of a
 * kind initialised gets the key "kind#n", or the name set just before with
 * `lel_name("...")`. A failed claim is remembered and `init` returns its
 * error code, which rejects the version (the playing one keeps playing).
 */
#ifndef LEL_H
#define LEL_H

#include <stddef.h>
#include <stdint.h>

#include "lel_constants.h"

#if !defined(__wasm32__) && !defined(LEL_NATIVE)
#error "lel.h builds signal modules for wasm32: clang --target=wasm32 ..."
#endif

#ifndef LEL_STATE_BYTES
#define LEL_STATE_BYTES ((uint32_t)LEL_DEFAULT_STATE_BYTES)
#endif
#ifndef LEL_OUTPUT_SAMPLES
#define LEL_OUTPUT_SAMPLES ((uint32_t)LEL_DEFAULT_OUTPUT_SAMPLES)
#endif

/* ---- the contract -------------------------------------------------- */

/* The host imports (`lel_host_claim`, `lel_host_log`), `claim`'s error
 * codes (LEL_REGION_FULL .. LEL_NO_STATE_REGION), the SDKs' own codes
 * that `init` returns (LEL_BAD_ARGS, LEL_OUTPUT_TOO_SMALL,
 * LEL_BAD_CHANNELS, ...) and the limits (LEL_MAX_KEY_LEN, LEL_MAX_ALIGN,
 * LEL_MAX_CHANNELS) are in lel_constants.h. */

/* Exports a function under `name`, which may be any string ("state-ptr"). */
#define LEL_EXPORT(name) __attribute__((export_name(name)))

/* Log levels, for lel_log. */
enum {
  LEL_ERROR = LEL_LOG_ERROR,
  LEL_WARN = LEL_LOG_WARN,
  LEL_INFO = LEL_LOG_INFO,
  LEL_DEBUG = LEL_LOG_DEBUG,
  LEL_TRACE = LEL_LOG_TRACE
};

/* ---- what a signal defines ------------------------------------------- */

/* What `lel_setup` gets: the sample rate and the most frames per block. */
typedef struct lel_setup_ctx {
  double sample_rate;
  uint32_t max_frames;
} lel_setup_ctx;

/* One event (contract 0.2), as the host writes it: 16 bytes. */
typedef struct lel_event {
  uint32_t frame;   /* frame in the block */
  uint8_t kind;     /* LEL_NOTE_ON .. LEL_PARAM */
  uint8_t channel;  /* MIDI channel - 1 */
  uint16_t number;  /* key, controller or parameter index */
  float value;      /* velocity, controller value, bend, pressure, value */
  uint32_t reserved;
} lel_event;

/* Where a frame is: as `Ctx` in the Rust SDK. */
typedef struct lel_ctx {
  double sample_rate;
  uint64_t clock;       /* absolute frame index of this frame */
  double t;             /* clock / sample_rate, in seconds */
  uint64_t block_clock; /* `process`'s clock: the block's first frame */
  uint32_t frames;      /* frames in this block */
  uint32_t frame;       /* index of this frame in the block */
  uint32_t channels;
  const lel_event *events; /* the events at this frame (already applied to */
  uint32_t n_events;       /* parameters and notes; `lel_poly_begin` reads them) */
} lel_ctx;

/* Claim state, precompute; return the channel count (1 to
 * LEL_MAX_CHANNELS). */
int lel_setup(const lel_setup_ctx *s);
/* One frame: write `out[0 .. channels)` (zeros when called). `process`
 * inlines it into its loop (always_inline: a call would be a function
 * entry, where the host checks for runaways, on every frame). */
void lel_frame(const lel_ctx *cx, double *out) __attribute__((always_inline));

/* ---- math: the Rust SDK's `lel::math`, without libc ----------------- */

#define LEL_PI 3.14159265358979323846
#define LEL_TAU 6.28318530717958647692

static inline double lel_floor(double x) { return __builtin_floor(x); }
static inline double lel_ceil(double x) { return __builtin_ceil(x); }
static inline double lel_fabs(double x) { return __builtin_fabs(x); }
static inline double lel_sqrt(double x) { return __builtin_sqrt(x); }
static inline double lel_fract(double x) { return x - lel_floor(x); }

/* `x` limited to [lo, hi], NaN mapped to lo. */
static inline double lel_clamp(double x, double lo, double hi) {
  if (x >= lo) return x <= hi ? x : hi;
  return lo;
}

static inline uint64_t lel__bits(double x) {
  union { double f; uint64_t u; } v = {x};
  return v.u;
}
static inline double lel__from_bits(uint64_t u) {
  union { uint64_t u; double f; } v = {u};
  return v.f;
}

/* sin, cos and exp: ports of the Rust SDK's (`libm` 0.2, itself a port of
 * musl/FreeBSD msun), statement for statement, so C computes the same bits
 * as Rust. Exact to libm for |x| < 2^20 pi/2 (about 1.6e6); beyond that the
 * reduction is a plain one, less precise (oscillators keep x in [0, 2 pi)). */

static inline void lel__rem_pio2_medium(double x, uint32_t ix, int32_t *n, double *y0, double *y1) {
  const double to_int = 1.5 / 2.2204460492503131e-16, inv_pio2 = 6.36619772367581382433e-01;
  const double pio2_1 = 1.57079632673412561417e+00, pio2_1t = 6.07710050650619224932e-11;
  const double pio2_2 = 6.07710050630396597660e-11, pio2_2t = 2.02226624879595063154e-21;
  const double pio2_3 = 2.02226624871116645580e-21, pio2_3t = 8.47842766036889956997e-32;
  double tmp = x * inv_pio2 + to_int;
  double f_n = tmp - to_int;
  double r = x - f_n * pio2_1;
  double w = f_n * pio2_1t;
  double y = r - w;
  int32_t ey = (int32_t)(lel__bits(y) >> 52) & 0x7ff;
  int32_t ex = (int32_t)(ix >> 20);
  *n = (int32_t)f_n;
  if (ex - ey > 16) {
    double t = r;
    w = f_n * pio2_2;
    r = t - w;
    w = f_n * pio2_2t - ((t - r) - w);
    y = r - w;
    ey = (int32_t)(lel__bits(y) >> 52) & 0x7ff;
    if (ex - ey > 49) {
      t = r;
      w = f_n * pio2_3;
      r = t - w;
      w = f_n * pio2_3t - ((t - r) - w);
      y = r - w;
    }
  }
  *y0 = y;
  *y1 = (r - y) - w;
}

/* x = n pi/2 + y0 + y1, |y0 + y1| <= pi/4; returns n. */
static inline int32_t lel__rem_pio2(double x, double *y0, double *y1) {
  const double pio2_1 = 1.57079632673412561417e+00, pio2_1t = 6.07710050650619224932e-11;
  int sign = (int)(lel__bits(x) >> 63);
  uint32_t ix = (uint32_t)(lel__bits(x) >> 32) & 0x7fffffff;
  int32_t n;
  double z;
  if (ix <= 0x400f6a7a) {            /* |x| ~<= 5pi/4 */
    if ((ix & 0xfffff) == 0x921fb) { /* |x| ~= pi/2 or 2pi/2 */
      lel__rem_pio2_medium(x, ix, &n, y0, y1);
      return n;
    }
    if (ix <= 0x4002d97c) {          /* |x| ~<= 3pi/4 */
      if (!sign) {
        z = x - pio2_1; *y0 = z - pio2_1t; *y1 = (z - *y0) - pio2_1t; return 1;
      }
      z = x + pio2_1; *y0 = z + pio2_1t; *y1 = (z - *y0) + pio2_1t; return -1;
    }
    if (!sign) {
      z = x - 2.0 * pio2_1; *y0 = z - 2.0 * pio2_1t; *y1 = (z - *y0) - 2.0 * pio2_1t; return 2;
    }
    z = x + 2.0 * pio2_1; *y0 = z + 2.0 * pio2_1t; *y1 = (z - *y0) + 2.0 * pio2_1t; return -2;
  }
  if (ix <= 0x401c463b) {            /* |x| ~<= 9pi/4 */
    if (ix <= 0x4015fdbc) {          /* |x| ~<= 7pi/4 */
      if (ix == 0x4012d97c) {        /* |x| ~= 3pi/2 */
        lel__rem_pio2_medium(x, ix, &n, y0, y1);
        return n;
      }
      if (!sign) {
        z = x - 3.0 * pio2_1; *y0 = z - 3.0 * pio2_1t; *y1 = (z - *y0) - 3.0 * pio2_1t; return 3;
      }
      z = x + 3.0 * pio2_1; *y0 = z + 3.0 * pio2_1t; *y1 = (z - *y0) + 3.0 * pio2_1t; return -3;
    }
    if (ix == 0x401921fb) {          /* |x| ~= 4pi/2 */
      lel__rem_pio2_medium(x, ix, &n, y0, y1);
      return n;
    }
    if (!sign) {
      z = x - 4.0 * pio2_1; *y0 = z - 4.0 * pio2_1t; *y1 = (z - *y0) - 4.0 * pio2_1t; return 4;
    }
    z = x + 4.0 * pio2_1; *y0 = z + 4.0 * pio2_1t; *y1 = (z - *y0) + 4.0 * pio2_1t; return -4;
  }
  if (ix < 0x413921fb) {             /* |x| ~< 2^20 pi/2 */
    lel__rem_pio2_medium(x, ix, &n, y0, y1);
    return n;
  }
  /* Large: not libm's Payne-Hanek reduction; a plain one (see above). */
  {
    double k = __builtin_floor(x / (LEL_PI / 2) + 0.5);
    *y0 = (x - k * pio2_1) - k * pio2_1t;
    *y1 = 0.0;
    return (int32_t)(k - 4.0 * __builtin_floor(k * 0.25));
  }
}

static inline double lel__k_sin(double x, double y, int iy) {
  const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
               S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
               S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  double z = x * x;
  double w = z * z;
  double r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
  double v = z * x;
  if (iy == 0) return x + v * (S1 + z * r);
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

static inline double lel__k_cos(double x, double y) {
  const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
               C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
               C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  double z = x * x;
  double w = z * z;
  double r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
  double hz = 0.5 * z;
  double v = 1.0 - hz;
  return v + (((1.0 - v) - hz) + (z * r - x * y));
}

/* The sine of `p` turns plus `quarters` quarter turns: the Rust SDK's
 * `lel::math::sin_turns`, the same operations in the same order (the same
 * bits). No library call; within 1e-15 of the exact value. */
static inline double lel__turns(double p, double quarters) {
  const double S3 = 0.16666666666666666, S5 = 0.0083333333333333332,
               S7 = 0.00019841269841269841, S9 = 2.7557319223985893e-06,
               S11 = 2.505210838544172e-08, S13 = 1.6059043836821613e-10,
               S15 = 7.6471637318198164e-13;
  const double C4 = 0.041666666666666664, C6 = 0.0013888888888888889,
               C8 = 2.4801587301587302e-05, C10 = 2.7557319223985888e-07,
               C12 = 2.08767569878681e-09, C14 = 1.1470745597729725e-11,
               C16 = 4.7794773323873853e-14;
  const double ROUND = 6755399441055744.0; /* 1.5 * 2^52 */
  double q = (4.0 * p + ROUND) - ROUND;
  double r = p - q * 0.25;
  double x = r * LEL_TAU;
  double z = x * x;
  double z2 = z * z;
  double z4 = z2 * z2;
  double m = q + quarters;
  double k = m - 4.0 * ((m * 0.25 + ROUND) - ROUND);
  double v;
  if (k == 1.0 || k == -1.0) {
    double lo = (1.0 - z * 0.5) + z2 * (C4 - z * C6);
    double hi = (C8 - z * C10) + z2 * (C12 - z * C14);
    v = lo + z4 * (hi + z4 * C16);
  } else {
    double lo = (1.0 - z * S3) + z2 * (S5 - z * S7);
    double hi = (S9 - z * S11) + z2 * (S13 - z * S15);
    v = x * (lo + z4 * hi);
  }
  return (k < 0.0 || k == 2.0) ? -v : v;
}

/* `sin(LEL_TAU * p)`: the sine of `p` full turns (oscillators, tremolo). */
static inline double lel_sin_turns(double p) { return lel__turns(p, 0.0); }
/* `cos(LEL_TAU * p)`: the cosine of `p` full turns. */
static inline double lel_cos_turns(double p) { return lel__turns(p, 1.0); }

/* Sine of `x` radians. */
static inline double lel_sin(double x) {
  uint32_t ix = (uint32_t)(lel__bits(x) >> 32) & 0x7fffffff;
  double y0, y1;
  if (ix <= 0x3fe921fb) {            /* |x| ~< pi/4 */
    if (ix < 0x3e500000) return x;   /* |x| < 2^-26 */
    return lel__k_sin(x, 0.0, 0);
  }
  if (ix >= 0x7ff00000) return x - x;
  switch (lel__rem_pio2(x, &y0, &y1) & 3) {
    case 0: return lel__k_sin(y0, y1, 1);
    case 1: return lel__k_cos(y0, y1);
    case 2: return -lel__k_sin(y0, y1, 1);
    default: return -lel__k_cos(y0, y1);
  }
}

/* Cosine of `x` radians. */
static inline double lel_cos(double x) {
  uint32_t ix = (uint32_t)(lel__bits(x) >> 32) & 0x7fffffff;
  double y0, y1;
  if (ix <= 0x3fe921fb) {
    if (ix < 0x3e46a09e) return 1.0; /* |x| < 2^-27 sqrt 2 */
    return lel__k_cos(x, 0.0);
  }
  if (ix >= 0x7ff00000) return x - x;
  switch (lel__rem_pio2(x, &y0, &y1) & 3) {
    case 0: return lel__k_cos(y0, y1);
    case 1: return -lel__k_sin(y0, y1, 1);
    case 2: return -lel__k_cos(y0, y1);
    default: return lel__k_sin(y0, y1, 1);
  }
}

/* x * 2^n. */
static inline double lel_scalbn(double x, int32_t n) {
  const double p1023 = 0x1p1023, m1022p53 = 0x1p-969;
  if (n > 1023) {
    x *= p1023; n -= 1023;
    if (n > 1023) { x *= p1023; n -= 1023; if (n > 1023) n = 1023; }
  } else if (n < -1022) {
    x *= m1022p53; n += 1022 - 53;
    if (n < -1022) { x *= m1022p53; n += 1022 - 53; if (n < -1022) n = -1022; }
  }
  return x * lel__from_bits((uint64_t)(0x3ff + n) << 52);
}

/* e^x. */
static inline double lel_exp(double x) {
  const double ln2hi = 6.93147180369123816490e-01, ln2lo = 1.90821492927058770002e-10,
               invln2 = 1.44269504088896338700e+00, P1 = 1.66666666666666019037e-01,
               P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05,
               P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08;
  double hi, lo, c, xx, y;
  int32_t k;
  uint32_t hx = (uint32_t)(lel__bits(x) >> 32);
  int32_t sign = (int32_t)(hx >> 31);
  hx &= 0x7fffffff;
  if (hx >= 0x4086232b) {            /* |x| >= 708.39 */
    if (x != x) return x;
    if (x > 709.782712893383973096) return x * 0x1p1023;
    if (x < -745.13321910194110842) return 0.0;
  }
  if (hx > 0x3fd62e42) {             /* |x| > 0.5 ln2 */
    if (hx >= 0x3ff0a2b2)            /* |x| >= 1.5 ln2 */
      k = (int32_t)(invln2 * x + (sign ? -0.5 : 0.5));
    else
      k = 1 - sign - sign;
    hi = x - (double)k * ln2hi;
    lo = (double)k * ln2lo;
    x = hi - lo;
  } else if (hx > 0x3e300000) {      /* |x| > 2^-28 */
    k = 0;
    hi = x;
    lo = 0.0;
  } else {
    return 1.0 + x;
  }
  xx = x * x;
  c = x - xx * (P1 + xx * (P2 + xx * (P3 + xx * (P4 + xx * P5))));
  y = 1.0 + (x * c / (2.0 - c) - lo + hi);
  return k == 0 ? y : lel_scalbn(y, k);
}

/* ---- state ----------------------------------------------------------- */

static _Alignas(LEL_MAX_ALIGN) unsigned char lel__state[LEL_STATE_BYTES];
static _Alignas(LEL_MAX_ALIGN) float lel__out_static[LEL_OUTPUT_SAMPLES];
static _Alignas(8) lel_event lel__events[LEL_DEFAULT_EVENT_CAPACITY];

typedef struct lel_note_state lel_note_state;

static struct {
  int error;           /* first failed claim (0: none) */
  const char *name;    /* lel_name(): the key of the next claim */
  uint32_t counters[9];
  float *params[LEL_MAX_PARAMS]; /* value cells, by index */
  uint32_t n_params;
  lel_note_state *notes;         /* claimed by the first note helper */
  double sample_rate;
  uint32_t max_frames;
  uint32_t channels;
  float *out;
  int ready;
} lel__rt;

enum { LEL_K_OSC, LEL_K_NOISE, LEL_K_LOWPASS, LEL_K_HIGHPASS, LEL_K_BIQUAD,
       LEL_K_TREMOLO, LEL_K_DELAY, LEL_K_ENV, LEL_K_POLY };
static const char *const lel__kinds[9] = {
    "osc", "noise", "lowpass", "highpass", "biquad", "tremolo", "delay", "env", "poly"};

static inline size_t lel__strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

/* Send `msg` to the host's log (levels LEL_ERROR .. LEL_TRACE). */
static inline void lel_log(int level, const char *msg) {
  lel_host_log(level, msg, (int32_t)lel__strlen(msg));
}

/* The key of the next claim is `name` instead of "kind#n" (the index of
 * "kind" is still taken, so naming one helper renumbers no other). */
static inline void lel_name(const char *name) { lel__rt.name = name; }

/* Claims `size` bytes aligned to `align` under `key` (a C string); returns
 * the block, or NULL after logging the failure (`init` then returns the
 * error code and the version is rejected). */
static inline void *lel_claim(const char *key, uint32_t size, uint32_t align) {
  int32_t r = lel_host_claim(key, (int32_t)lel__strlen(key), (int32_t)size, (int32_t)align);
  if (r < 0) {
    if (lel__rt.error == 0) {
      char msg[LEL_MAX_KEY_LEN + 40];
      const char *pre = "lel: init failed, claim '";
      size_t n = 0, i;
      for (i = 0; pre[i]; i++) msg[n++] = pre[i];
      for (i = 0; key[i] && i < LEL_MAX_KEY_LEN; i++) msg[n++] = key[i];
      msg[n++] = '\'';
      msg[n++] = ':';
      msg[n++] = ' ';
      msg[n++] = '-';
      if (r <= -10) msg[n++] = (char)('0' + (-r / 10) % 10);
      msg[n++] = (char)('0' + (-r) % 10);
      lel_host_log(LEL_ERROR, msg, (int32_t)n);
      lel__rt.error = r;
    }
    return NULL;
  }
  return (void *)(uintptr_t)(uint32_t)r;
}

/* Logs a failed `claim`/`param` of `key` with `code` (the first only). */
static inline void lel__fail(const char *what, const char *key, int32_t code) {
  if (lel__rt.error) return;
  char msg[LEL_MAX_KEY_LEN + 48];
  const char *pre = "lel: init failed, ";
  size_t n = 0, i;
  for (i = 0; pre[i]; i++) msg[n++] = pre[i];
  for (i = 0; what[i]; i++) msg[n++] = what[i];
  msg[n++] = ' ';
  msg[n++] = '\'';
  for (i = 0; key[i] && i < LEL_MAX_KEY_LEN; i++) msg[n++] = key[i];
  msg[n++] = '\'';
  msg[n++] = ':';
  msg[n++] = ' ';
  msg[n++] = '-';
  if (code <= -10) msg[n++] = (char)('0' + (-code / 10) % 10);
  msg[n++] = (char)('0' + (-code) % 10);
  lel_host_log(LEL_ERROR, msg, (int32_t)n);
  lel__rt.error = code;
}

/* Claims a block for a helper of kind `kind`: under "kind#n", or the name
 * set with lel_name(). Blocks are LEL_CLAIM_ALIGN-aligned (16 bytes), as in
 * every SDK. */
static inline void *lel__claim_kind(int kind, uint32_t size) {
  uint32_t index = lel__rt.counters[kind]++;
  const char *name = lel__rt.name;
  lel__rt.name = NULL;
  if (name) return lel_claim(name, size, LEL_CLAIM_ALIGN);
  char key[24];
  const char *k = lel__kinds[kind];
  size_t n = 0;
  while (*k) key[n++] = *k++;
  key[n++] = '#';
  char digits[10];
  int d = 0;
  do {
    digits[d++] = (char)('0' + index % 10);
    index /= 10;
  } while (index);
  while (d) key[n++] = digits[--d];
  key[n] = 0;
  return lel_claim(key, size, LEL_CLAIM_ALIGN);
}

/* The sample rate while in `lel_setup` (and after). */
static inline double lel_sample_rate(void) { return lel__rt.sample_rate; }

/* For exports of your own (LEL_NO_EXPORTS): the state region (return its
 * address and LEL_STATE_BYTES from `state-ptr`/`state-len`), the static
 * output buffer (LEL_OUTPUT_SAMPLES floats), and the bracket around the
 * helpers' `_init` calls in `init`: lel_begin_init() resets the key
 * counters, lel_init_error() is the first failed claim's code (or 0). */
static inline void *lel_state_region(void) { return lel__state; }
static inline float *lel_output_buffer(void) { return lel__out_static; }
static inline void lel_begin_init(double sample_rate) {
  int i;
  lel__rt.error = 0;
  lel__rt.name = NULL;
  for (i = 0; i < 9; i++) lel__rt.counters[i] = 0;
  lel__rt.n_params = 0;
  lel__rt.notes = NULL;
  lel__rt.sample_rate = sample_rate;
}
static inline int lel_init_error(void) { return lel__rt.error; }

/* ---- parameters (contract 0.2) ------------------------------------------ */

/* A host parameter: declared in `lel_setup` with `lel_param_init`, read
 * once per frame with `lel_param_tick` (smoothed: a straight ramp to each
 * new value lasting 20 ms, none for a stepped parameter; the law of the
 * Rust SDK's README, "Algorithms"). Declare each key once. */
typedef struct lel_param {
  float *cell;
  uint32_t index, ramp, left;
  double y, target, step;
} lel_param;

/* Sets the ramp time in seconds (0: none); call after lel_param_init. */
static inline void lel_param_smooth(lel_param *p, double seconds) {
  double n = lel_floor(seconds * lel__rt.sample_rate + 0.5);
  p->ramp = (n >= 1.0 && n < 4.0e9) ? (uint32_t)n : 1u;
}

/* Declares parameter `key` (1 to 64 ASCII letters, digits, `_`, `-`, `.`)
 * with its default, range, unit ("" for none) and steps (0 continuous,
 * n >= 2 values). A failure rejects the version (logged). */
static inline void lel_param_init(lel_param *p, const char *key, double def, double min,
                                  double max, const char *unit, uint32_t steps) {
  p->cell = NULL;
  p->target = __builtin_nan("");
  p->left = 0;
  p->y = def;
  p->step = 0.0;
  lel_param_smooth(p, steps == 0 ? 0.02 : 0.0);
  if (lel__rt.n_params >= LEL_MAX_PARAMS) {
    lel__fail("param", key, LEL_TOO_MANY_PARAMS);
    return;
  }
  int32_t r = lel_host_param(key, (int32_t)lel__strlen(key), (float)def, (float)min,
                             (float)max, unit, (int32_t)lel__strlen(unit), (int32_t)steps);
  if (r < 0) {
    lel__fail("param", key, r);
    return;
  }
  p->cell = (float *)(uintptr_t)(uint32_t)r;
  p->index = lel__rt.n_params;
  lel__rt.params[lel__rt.n_params++] = p->cell;
}

/* The value the host holds now (no smoothing). */
static inline double lel_param_value(const lel_param *p) {
  return p->cell ? (double)*p->cell : p->y;
}

/* The smoothed value for this frame (call once per frame). */
static inline double lel_param_tick(lel_param *p) {
  if (!p->cell) return p->y;
  double x = (double)*p->cell;
  if (x != p->target) {
    if (p->target != p->target || p->ramp <= 1) {
      p->y = x;
      p->left = 0;
    } else {
      p->step = (x - p->y) / (double)p->ramp;
      p->left = p->ramp;
    }
    p->target = x;
  }
  if (p->left > 0) {
    p->left--;
    p->y = p->left == 0 ? p->target : p->y + p->step;
  }
  return p->y;
}

/* ---- notes (contract 0.2) ------------------------------------------------ */

/* The monophonic note state, claimed under "notes" (544 bytes): every
 * channel plays it (omni). Law: a note-on sets key, velocity and the gate;
 * a note-off closes the gate only if it releases the last key played. */
struct lel_note_state {
  uint32_t key, gate, played;
  float velocity, bend, pressure;
  uint32_t reserved[2];
  float cc[128];
};

/* Claims the note state (in `lel_setup`; once is enough, more are free). */
static inline void lel_notes_init(void) {
  if (lel__rt.notes) return;
  lel__rt.notes = (lel_note_state *)lel_claim("notes", (uint32_t)sizeof(lel_note_state),
                                              LEL_CLAIM_ALIGN);
}

static inline void lel__note_apply(lel_note_state *n, const lel_event *e) {
  switch (e->kind) {
    case LEL_NOTE_ON:
      n->key = e->number & 127u;
      n->velocity = e->value;
      n->gate = 1;
      n->played = 1;
      break;
    case LEL_NOTE_OFF:
      if (n->key == e->number) n->gate = 0;
      break;
    case LEL_CONTROL_CHANGE:
      if (e->number < 128) n->cc[e->number] = e->value;
      break;
    case LEL_PITCH_BEND: n->bend = e->value; break;
    case LEL_CHANNEL_PRESSURE: n->pressure = e->value; break;
    default: break;
  }
}

/* Frequency of `key` bent by `bend` (-1..1, two semitones each way):
 * 440 exp((key - 69 + 2 bend) ln2 / 12). */
static inline double lel_key_hz(double key, double bend) {
  return 440.0 * lel_exp((key - 69.0 + 2.0 * bend) * (0.69314718055994530942 / 12.0));
}

/* The mono note values (after lel_notes_init): gate 0/1, pitch in Hz with
 * the bend (440 before any note), velocity 0..1, key (69 before any
 * note), controller n 0..1, bend -1..1, pressure 0..1. */
static inline double lel_gate(void) { return lel__rt.notes ? (double)lel__rt.notes->gate : 0.0; }
static inline double lel_pitch(void) {
  lel_note_state *n = lel__rt.notes;
  if (!n) return 440.0;
  return lel_key_hz(n->played ? (double)n->key : 69.0, (double)n->bend);
}
static inline double lel_velocity(void) { return lel__rt.notes ? (double)lel__rt.notes->velocity : 0.0; }
static inline double lel_key(void) {
  lel_note_state *n = lel__rt.notes;
  return n && n->played ? (double)n->key : 69.0;
}
static inline double lel_cc(uint32_t c) { return lel__rt.notes ? (double)lel__rt.notes->cc[c & 127u] : 0.0; }
static inline double lel_bend(void) { return lel__rt.notes ? (double)lel__rt.notes->bend : 0.0; }
static inline double lel_pressure(void) { return lel__rt.notes ? (double)lel__rt.notes->pressure : 0.0; }

/* Applies one event: a parameter change writes its cell, anything else
 * goes to the note state (if claimed). */
static inline void lel__apply(const lel_event *e) {
  if (e->kind == LEL_PARAM) {
    if (e->number < lel__rt.n_params && e->value == e->value) *lel__rt.params[e->number] = e->value;
  } else if (lel__rt.notes) {
    lel__note_apply(lel__rt.notes, e);
  }
}

/* ---- polyphony ---------------------------------------------------------- */

#define LEL_MAX_VOICES 16

typedef struct lel_voice_slot {
  float velocity;
  uint32_t key, gate, used; /* gate: 0 released, 1 held, 2 restarted now */
  uint64_t on, off;
} lel_voice_slot;

typedef struct lel_poly_state {
  uint64_t order, reserved;
  lel_voice_slot voices[LEL_MAX_VOICES];
} lel_poly_state;

/* A voice allocator for `n` voices (1 to 16), its table claimed under
 * "poly#n" (528 bytes). The policy of the Rust SDK's `poly`: a note-on
 * takes the voice already playing that key, else the free voice released
 * longest ago (never-used first, lowest index on ties), else steals the
 * voice held longest; a held voice taking a note reads gate 0 for one
 * frame so its envelope restarts. */
typedef struct lel_poly {
  lel_poly_state *s;
  uint32_t n;
  float bend;
  double hz[LEL_MAX_VOICES];
} lel_poly;

/* What a voice plays this frame. */
typedef struct lel_voice {
  double hz, gate, velocity;
  uint32_t key;
} lel_voice;

static inline void lel_poly_init(lel_poly *p, uint32_t n) {
  uint32_t i;
  p->n = n < 1 ? 1 : n > LEL_MAX_VOICES ? LEL_MAX_VOICES : n;
  p->s = (lel_poly_state *)lel__claim_kind(LEL_K_POLY, (uint32_t)sizeof(lel_poly_state));
  lel_notes_init();
  p->bend = __builtin_nanf("");
  for (i = 0; i < LEL_MAX_VOICES; i++) p->hz[i] = 440.0;
}

static inline uint32_t lel__poly_note_on(lel_poly_state *s, uint32_t n, uint32_t key, float vel) {
  uint32_t i, pick = n;
  for (i = 0; i < n; i++)
    if (s->voices[i].used && s->voices[i].key == key && (pick == n || s->voices[i].on >= s->voices[pick].on))
      pick = i;
  if (pick == n) {
    uint64_t best = 0;
    for (i = 0; i < n; i++) {
      if (s->voices[i].gate != 0) continue;
      uint64_t t = s->voices[i].used ? s->voices[i].off : 0;
      if (pick == n || t < best) pick = i, best = t;
    }
  }
  if (pick == n) {
    pick = 0;
    for (i = 1; i < n; i++)
      if (s->voices[i].on < s->voices[pick].on) pick = i;
  }
  lel_voice_slot *v = &s->voices[pick];
  s->order++;
  v->gate = v->gate ? 2u : 1u;
  v->key = key;
  v->velocity = vel;
  v->used = 1;
  v->on = s->order;
  return pick;
}

/* Call at the start of every frame, before the voices: hands this
 * frame's note-ons and note-offs to the voices. */
static inline void lel_poly_begin(lel_poly *p, const lel_ctx *cx) {
  lel_poly_state *s = p->s;
  uint32_t i, j, n = p->n;
  if (!s) return;
  float bend = lel__rt.notes ? lel__rt.notes->bend : 0.0f;
  int retune = bend != p->bend;
  p->bend = bend;
  for (j = 0; j < cx->n_events; j++) {
    const lel_event *e = &cx->events[j];
    if (e->kind == LEL_NOTE_ON) {
      i = lel__poly_note_on(s, n, e->number & 127u, e->value);
      p->hz[i] = lel_key_hz((double)s->voices[i].key, (double)bend);
    } else if (e->kind == LEL_NOTE_OFF) {
      for (i = 0; i < n; i++) {
        lel_voice_slot *v = &s->voices[i];
        if (v->gate && v->key == e->number) {
          s->order++;
          v->gate = 0;
          v->off = s->order;
        }
      }
    }
  }
  if (retune)
    for (i = 0; i < n; i++)
      p->hz[i] = lel_key_hz(s->voices[i].used ? (double)s->voices[i].key : 69.0, (double)bend);
}

/* Voice `i` this frame (after lel_poly_begin). */
static inline lel_voice lel_poly_voice(lel_poly *p, uint32_t i) {
  lel_voice r = {440.0, 0.0, 0.0, 69};
  if (!p->s || i >= p->n) return r;
  lel_voice_slot *v = &p->s->voices[i];
  r.hz = p->hz[i];
  r.gate = v->gate == 1 ? 1.0 : 0.0;
  r.velocity = (double)v->velocity;
  r.key = v->key;
  if (v->gate == 2) v->gate = 1;
  return r;
}

/* ---- oscillators ----------------------------------------------------- */

typedef enum { LEL_SINE, LEL_SAW, LEL_SQUARE, LEL_TRIANGLE } lel_wave;

/* An oscillator: phase in cycles [0, 1), key "osc#n", 8 bytes. Every wave
 * shares the kind "osc", so changing the wave keeps the phase. */
typedef struct lel_osc {
  double *phase;
  double inv_sr;
  lel_wave wave;
} lel_osc;

static inline void lel_osc_init(lel_osc *o, lel_wave wave) {
  o->wave = wave;
  o->phase = (double *)lel__claim_kind(LEL_K_OSC, 8);
  o->inv_sr = 1.0 / lel__rt.sample_rate;
}

/* The PolyBLEP residual of a step at phase 0, for phase `p`, increment `dt`. */
static inline double lel_poly_blep(double p, double dt) {
  if (p < dt) {
    double x = p / dt;
    return x + x - x * x - 1.0;
  } else if (p > 1.0 - dt) {
    double x = (p - 1.0) / dt;
    return x * x + x + x + 1.0;
  }
  return 0.0;
}

/* The wave at phase `p` with increment `dt` (for band-limiting). */
static inline double lel_wave_sample(lel_wave w, double p, double dt) {
  switch (w) {
    case LEL_SAW:
      return 2.0 * p - 1.0 - lel_poly_blep(p, dt);
    case LEL_SQUARE: {
      double naive = p < 0.5 ? 1.0 : -1.0;
      double q = p + 0.5;
      q = q >= 1.0 ? q - 1.0 : q;
      return naive + lel_poly_blep(p, dt) - lel_poly_blep(q, dt);
    }
    case LEL_TRIANGLE: {
      double q = p + 0.25;
      q = q - lel_floor(q);
      return 1.0 - 4.0 * lel_fabs(q - 0.5);
    }
    default:
      return lel_sin_turns(p);
  }
}

/* The next sample at `freq` Hz (phase-continuous when `freq` changes). */
static inline double lel_osc_tick(lel_osc *o, double freq) {
  double inc = freq * o->inv_sr;
  double p = *o->phase;
  double dt = lel_fabs(inc);
  double y = lel_wave_sample(o->wave, p, dt < 0.5 ? dt : 0.5);
  double q = p + inc;
  *o->phase = q - lel_floor(q);
  return y;
}

/* An oscillator whose wave is a sine, fixed: the same key ("osc#n"), phase
 * and samples as an lel_osc playing LEL_SINE (a reload may swap one for the
 * other), without the test of the wave every frame. */
typedef struct lel_sine_osc {
  double *phase;
  double inv_sr;
} lel_sine_osc;

static inline void lel_sine_osc_init(lel_sine_osc *o) {
  o->phase = (double *)lel__claim_kind(LEL_K_OSC, 8);
  o->inv_sr = 1.0 / lel__rt.sample_rate;
}

static inline double lel_sine_osc_tick(lel_sine_osc *o, double freq) {
  double inc = freq * o->inv_sr;
  double p = *o->phase;
  *o->phase = lel_fract(p + inc);
  return lel_sin_turns(p);
}

/* White noise in [-1, 1): xorshift32 (13, 17, 5), key "noise#n", 4 bytes.
 * A fresh (zero) state starts from the seed; a carried one runs on. */
typedef struct lel_noise {
  uint32_t *x;
  uint32_t seed;
} lel_noise;

#define LEL_NOISE_SEED 0x2545F491u

static inline void lel_noise_init(lel_noise *n, uint32_t seed) {
  n->seed = seed ? seed : LEL_NOISE_SEED;
  n->x = (uint32_t *)lel__claim_kind(LEL_K_NOISE, 4);
}

static inline double lel_noise_tick(lel_noise *n) {
  uint32_t x = *n->x ? *n->x : n->seed;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *n->x = x;
  return (double)x * (2.0 / 4294967296.0) - 1.0;
}

/* ---- filters ---------------------------------------------------------- */

/* The one-pole coefficient for `cutoff` Hz: 1 - exp(-2 pi fc / sr). */
static inline double lel_one_pole_coefficient(double cutoff, double sr) {
  double fc = lel_clamp(cutoff, 0.0, 0.5 * sr);
  return 1.0 - lel_exp(-LEL_TAU * fc / sr);
}

/* One-pole lowpass (`y += a (x - y)`), key "lowpass#n"; or highpass
 * (`x - y`), key "highpass#n". State: one double. The coefficient is
 * recomputed only when the cutoff changes. */
typedef struct lel_one_pole {
  double *y;
  double sr, last, a;
} lel_one_pole;
typedef lel_one_pole lel_lowpass;
typedef lel_one_pole lel_highpass;

static inline void lel__one_pole_init(lel_one_pole *f, int kind) {
  f->y = (double *)lel__claim_kind(kind, 8);
  f->sr = lel__rt.sample_rate;
  f->last = __builtin_nan("");
  f->a = 0.0;
}
static inline void lel_lowpass_init(lel_lowpass *f) { lel__one_pole_init(f, LEL_K_LOWPASS); }
static inline void lel_highpass_init(lel_highpass *f) { lel__one_pole_init(f, LEL_K_HIGHPASS); }

static inline double lel__one_pole_step(lel_one_pole *f, double x, double cutoff) {
  if (cutoff != f->last) {
    f->last = cutoff;
    f->a = lel_one_pole_coefficient(cutoff, f->sr);
  }
  double y = *f->y;
  y += f->a * (x - y);
  *f->y = y;
  return y;
}
static inline double lel_lowpass_tick(lel_lowpass *f, double x, double cutoff) {
  return lel__one_pole_step(f, x, cutoff);
}
static inline double lel_highpass_tick(lel_highpass *f, double x, double cutoff) {
  return x - lel__one_pole_step(f, x, cutoff);
}

/* A one-pole at a cutoff given once, at init: the same key, state and
 * samples as lel_lowpass / lel_highpass ticked at that cutoff (a reload
 * may swap one for the other), the coefficient computed when claimed. */
typedef struct lel_fixed_one_pole {
  double *y;
  double a;
} lel_fixed_one_pole;
typedef lel_fixed_one_pole lel_fixed_lowpass;
typedef lel_fixed_one_pole lel_fixed_highpass;

static inline void lel__fixed_one_pole_init(lel_fixed_one_pole *f, int kind, double cutoff) {
  f->y = (double *)lel__claim_kind(kind, 8);
  f->a = lel_one_pole_coefficient(cutoff, lel__rt.sample_rate);
}
static inline void lel_fixed_lowpass_init(lel_fixed_lowpass *f, double cutoff) {
  lel__fixed_one_pole_init(f, LEL_K_LOWPASS, cutoff);
}
static inline void lel_fixed_highpass_init(lel_fixed_highpass *f, double cutoff) {
  lel__fixed_one_pole_init(f, LEL_K_HIGHPASS, cutoff);
}
static inline double lel__fixed_one_pole_step(lel_fixed_one_pole *f, double x) {
  double y = *f->y;
  y += f->a * (x - y);
  *f->y = y;
  return y;
}
static inline double lel_fixed_lowpass_tick(lel_fixed_lowpass *f, double x) {
  return lel__fixed_one_pole_step(f, x);
}
static inline double lel_fixed_highpass_tick(lel_fixed_highpass *f, double x) {
  return x - lel__fixed_one_pole_step(f, x);
}

typedef enum { LEL_BQ_LOWPASS, LEL_BQ_HIGHPASS, LEL_BQ_BANDPASS } lel_biquad_mode;

/* Resonant biquad (RBJ cookbook, transposed direct form II), key
 * "biquad#n" whatever the mode; state: s1, s2 (16 bytes). */
typedef struct lel_biquad {
  double *s; /* s[0] = s1, s[1] = s2 */
  lel_biquad_mode mode;
  double sr, last_fc, last_q;
  double b0, b1, b2, a1, a2;
} lel_biquad;

static inline void lel_biquad_init(lel_biquad *b, lel_biquad_mode mode) {
  b->s = (double *)lel__claim_kind(LEL_K_BIQUAD, 16);
  b->mode = mode;
  b->sr = lel__rt.sample_rate;
  b->last_fc = b->last_q = __builtin_nan("");
}

static inline void lel_biquad_coefficients(lel_biquad *b, double cutoff, double q) {
  double sr = b->sr;
  double fc = lel_clamp(cutoff, 1.0, 0.49 * sr);
  q = q >= 0.01 ? q : 0.01;
  double w0 = 2.0 * LEL_PI * fc / sr;
  double s = lel_sin(w0), c = lel_cos(w0);
  double alpha = s / (2.0 * q);
  double b0, b1, b2;
  switch (b->mode) {
    case LEL_BQ_HIGHPASS:
      b0 = (1.0 + c) / 2.0, b1 = -(1.0 + c), b2 = (1.0 + c) / 2.0;
      break;
    case LEL_BQ_BANDPASS:
      b0 = alpha, b1 = 0.0, b2 = -alpha;
      break;
    default:
      b0 = (1.0 - c) / 2.0, b1 = 1.0 - c, b2 = (1.0 - c) / 2.0;
  }
  double a0 = 1.0 + alpha;
  b->b0 = b0 / a0;
  b->b1 = b1 / a0;
  b->b2 = b2 / a0;
  b->a1 = -2.0 * c / a0;
  b->a2 = (1.0 - alpha) / a0;
}

static inline double lel_biquad_tick(lel_biquad *b, double x, double cutoff, double q) {
  if (cutoff != b->last_fc || q != b->last_q) {
    b->last_fc = cutoff;
    b->last_q = q;
    lel_biquad_coefficients(b, cutoff, q);
  }
  double *s = b->s;
  double y = b->b0 * x + s[0];
  s[0] = b->b1 * x - b->a1 * y + s[1];
  s[1] = b->b2 * x - b->a2 * y;
  return y;
}

/* ---- effects ---------------------------------------------------------- */

/* Tremolo: x * (1 - depth * (0.5 - 0.5 cos(2 pi p))), p advancing at
 * `rate` Hz from full level; key "tremolo#n", the phase (8 bytes). */
typedef struct lel_tremolo {
  double *phase;
  double inv_sr;
} lel_tremolo;

static inline void lel_tremolo_init(lel_tremolo *t) {
  t->phase = (double *)lel__claim_kind(LEL_K_TREMOLO, 8);
  t->inv_sr = 1.0 / lel__rt.sample_rate;
}

static inline double lel_tremolo_tick(lel_tremolo *t, double x, double rate, double depth) {
  double inc = rate * t->inv_sr;
  double p = *t->phase;
  double g = 1.0 - depth * (0.5 - 0.5 * lel_cos_turns(p));
  double q = p + inc;
  *t->phase = q - lel_floor(q);
  return x * g;
}

/* Echo with feedback and fractional delay, key "delay#n". Block: a 16-byte
 * head (the write position, then padding), then len = ceil(max_seconds *
 * sr) + 2 floats. Per sample, d = clamp(seconds * sr, 1, len - 2):
 * y = a + (d - floor(d)) (b - a), a the sample written floor(d) ago, b the
 * one before; the line gets x + feedback y; out (1 - mix) x + mix y.
 * `feedback` and `mix` default to 0.5; set them after init. */
typedef struct lel_delay {
  uint32_t *pos;
  float *line;
  uint32_t len;
  double sr;
  double feedback, mix;
  /* The delay in samples for the last `seconds` seen: whole and fraction
   * (recomputed only when `seconds` changes). */
  double last_seconds, frac;
  uint32_t di;
} lel_delay;

static inline uint32_t lel_delay_line_len(double max_seconds, double sr) {
  double n = lel_ceil(max_seconds * sr);
  if (n != n || n < 1.0) n = 1.0;
  if (n > 4294967293.0) n = 4294967293.0;
  return (uint32_t)n + 2u;
}

static inline void lel_delay_init(lel_delay *d, double max_seconds) {
  double sr = lel__rt.sample_rate;
  uint32_t len = lel_delay_line_len(max_seconds, sr);
  uint64_t bytes = (uint64_t)len * 4u + 16u;
  d->sr = sr;
  d->feedback = 0.5;
  d->mix = 0.5;
  d->len = 0;
  d->last_seconds = __builtin_nan("");
  if (bytes > 0xffffffffu) {
    lel__rt.counters[LEL_K_DELAY]++;
    if (!lel__rt.error) lel__rt.error = LEL_REGION_FULL;
    return;
  }
  unsigned char *p = (unsigned char *)lel__claim_kind(LEL_K_DELAY, (uint32_t)bytes);
  if (!p) return;
  d->pos = (uint32_t *)p;
  d->line = (float *)(p + 16);
  d->len = len;
}

static inline double lel_delay_tick(lel_delay *d, double x, double seconds) {
  uint32_t len = d->len;
  if (len < 3) return x;
  if (seconds != d->last_seconds) {
    double dd = lel_clamp(seconds * d->sr, 1.0, (double)(len - 2));
    d->last_seconds = seconds;
    d->di = (uint32_t)dd;
    d->frac = dd - (double)d->di;
  }
  uint32_t di = d->di;
  double frac = d->frac;
  uint32_t w = *d->pos;
  if (w >= len) w = 0;
  uint32_t r0 = w + len - di;
  if (r0 >= len) r0 -= len;
  uint32_t r1 = r0 == 0 ? len - 1 : r0 - 1;
  double a = (double)d->line[r0], b = (double)d->line[r1];
  double y = a + frac * (b - a);
  d->line[w] = (float)(x + d->feedback * y);
  *d->pos = w + 1 == len ? 0 : w + 1;
  return (1.0 - d->mix) * x + d->mix * y;
}

/* Every channel times `g`. */
/* ---- envelopes: the Rust SDK's adsr ------------------------------------ */

typedef struct lel_env_state {
  double level;
  uint32_t stage, gate; /* stage: 0 idle, 1 attack, 2 decay, 3 sustain, 4 release */
} lel_env_state;

typedef struct lel_env {
  lel_env_state *s;
  double sr;
} lel_env;

/* Claims an envelope's state ("env#n", 16 bytes). */
static inline void lel_env_init(lel_env *e) {
  e->s = (lel_env_state *)lel__claim_kind(LEL_K_ENV, 16);
  e->sr = lel__rt.sample_rate;
}

static inline double lel__env_step(double seconds, double sr) {
  double n = seconds * sr;
  return n > 1.0 ? 1.0 / n : 1.0;
}

/* Linear ADSR: gate on while > 0, times in seconds; level in [0, 1]. */
static inline double lel_adsr_tick(lel_env *e, double gate, double attack, double decay,
                                   double sustain, double release) {
  lel_env_state *s = e->s;
  uint32_t on = gate > 0.0;
  sustain = lel_clamp(sustain, 0.0, 1.0);
  if (!s) return 0.0;
  if (on && !s->gate) s->stage = 1;
  else if (!on && s->gate) s->stage = 4;
  s->gate = on;
  switch (s->stage) {
    case 1:
      s->level += lel__env_step(attack, e->sr);
      if (s->level >= 1.0) { s->level = 1.0; s->stage = 2; }
      break;
    case 2:
      s->level -= (1.0 - sustain) * lel__env_step(decay, e->sr);
      if (s->level <= sustain) { s->level = sustain; s->stage = 3; }
      break;
    case 3: s->level = sustain; break;
    case 4:
      s->level -= lel__env_step(release, e->sr);
      if (s->level <= 0.0) { s->level = 0.0; s->stage = 0; }
      break;
    default: s->level = 0.0; s->stage = 0;
  }
  return s->level;
}

static inline double lel_gain(double x, double g) { return x * g; }

/* Equal-power pan of a mono `x` to (left, right), `p` in [-1, 1]:
 * theta = (p + 1) pi / 4, gains (cos theta, sin theta). */
static inline void lel_pan(double x, double p, double *left, double *right) {
  double theta = (lel_clamp(p, -1.0, 1.0) + 1.0) * (LEL_PI / 4.0);
  *left = x * lel_cos(theta);
  *right = x * lel_sin(theta);
}

/* ---- the exports ------------------------------------------------------ */

#ifndef LEL_NO_EXPORTS

LEL_EXPORT("state-ptr") uint32_t lel_export_state_ptr(void) {
  return (uint32_t)(uintptr_t)lel_state_region();
}

LEL_EXPORT("state-len") uint32_t lel_export_state_len(void) {
  return (uint32_t)sizeof lel__state;
}

LEL_EXPORT("events-ptr") uint32_t lel_export_events_ptr(void) {
  return (uint32_t)(uintptr_t)lel__events;
}

LEL_EXPORT("events-len") uint32_t lel_export_events_len(void) {
  return (uint32_t)sizeof lel__events;
}

LEL_EXPORT("init") int32_t lel_export_init(uint32_t sample_rate, uint32_t max_frames) {
  lel__rt.ready = 0;
  if (sample_rate == 0 || max_frames == 0) return LEL_BAD_ARGS;
  lel_begin_init((double)sample_rate);
  lel__rt.max_frames = max_frames;
  lel_setup_ctx s = {(double)sample_rate, max_frames};
  int ch = lel_setup(&s);
  if (lel_init_error()) return lel_init_error();
  if (ch < 0) return ch;
  if (ch < 1 || ch > LEL_MAX_CHANNELS) return LEL_BAD_CHANNELS;
  uint64_t need = (uint64_t)max_frames * (uint32_t)ch;
  if (need <= LEL_OUTPUT_SAMPLES) {
    lel__rt.out = lel__out_static;
  } else {
    /* A bigger block than the static buffer holds: fresh pages for it. */
    uint64_t pages = (need * 4 + 65535) / 65536;
    if (pages > 65536) return LEL_OUTPUT_TOO_SMALL;
#ifdef __wasm32__
    int32_t prev = __builtin_wasm_memory_grow(0, (uint32_t)pages);
#else
    int32_t prev = -1; /* LEL_NATIVE: no linear memory to grow */
#endif
    if (prev < 0) return LEL_OUTPUT_TOO_SMALL;
    lel__rt.out = (float *)(uintptr_t)((uint32_t)prev * 65536u);
  }
  lel__rt.channels = (uint32_t)ch;
  lel__rt.ready = 1;
  return ch;
}

/* Frames `process` renders per loop iteration, `lel_frame` written out
 * (inlined) this many times: the same samples in the same order as one
 * frame per iteration, but the host's runaway check, which sits on every
 * loop header and function entry, runs 4 times less (README,
 * "Performance"). As in the Rust SDK (guest-sdk/src/rt.rs, UNROLL). */
#define LEL__UNROLL 4

/* Frame `i` of the block into `o` (`ch` samples). `f` holds zeros in
 * `[0, ch)` before and after: the samples are taken and cleared in one
 * pass, without a loop for one or two channels. */
static inline __attribute__((always_inline)) void lel__one(lel_ctx *cx, uint32_t i, uint32_t ch,
                                                           double *f, float *o) {
  uint32_t c;
  cx->frame = i;
  cx->clock = cx->block_clock + i;
  cx->t = (double)cx->clock / cx->sample_rate;
  lel_frame(cx, f);
  if (ch == 1) {
    o[0] = (float)f[0];
    f[0] = 0.0;
  } else if (ch == 2) {
    o[0] = (float)f[0];
    o[1] = (float)f[1];
    f[0] = 0.0;
    f[1] = 0.0;
  } else {
    for (c = 0; c < ch; c++) {
      o[c] = (float)f[c];
      f[c] = 0.0;
    }
  }
}

LEL_EXPORT("process") uint32_t lel_export_process(uint32_t frames, uint64_t clock,
                                                  uint32_t events) {
  float *out = lel__rt.out;
  uint32_t ch = lel__rt.channels, i, c, k = 0;
  if (!lel__rt.ready) {
    uint32_t n = frames;
    if (n > LEL_OUTPUT_SAMPLES) n = LEL_OUTPUT_SAMPLES;
    for (i = 0; i < n; i++) lel__out_static[i] = 0.0f;
    return (uint32_t)(uintptr_t)lel__out_static;
  }
  if (frames > lel__rt.max_frames) frames = lel__rt.max_frames;
  lel_ctx cx = {lel__rt.sample_rate, clock, 0.0, clock, frames, 0, ch, lel__events, 0};
  double f[LEL_MAX_CHANNELS];
  for (c = 0; c < ch; c++) f[c] = 0.0;
  if (events > LEL_DEFAULT_EVENT_CAPACITY) events = LEL_DEFAULT_EVENT_CAPACITY;
  for (i = 0; i < frames;) {
    /* The frame of the next event (late or out-of-order ones at the
     * first frame still to render, past-the-end ones at the last). */
    uint32_t next = frames;
    if (k < events) next = lel__events[k].frame < frames ? lel__events[k].frame : frames - 1;
    if (next >= i + LEL__UNROLL) {
      /* LEL__UNROLL frames without events. */
      cx.events = lel__events + k;
      cx.n_events = 0;
      lel__one(&cx, i, ch, f, out + i * ch);
      lel__one(&cx, i + 1, ch, f, out + (i + 1) * ch);
      lel__one(&cx, i + 2, ch, f, out + (i + 2) * ch);
      lel__one(&cx, i + 3, ch, f, out + (i + 3) * ch);
      i += LEL__UNROLL;
    } else {
      /* One frame, with the events at it (if any). */
      uint32_t first = k;
      while (k < events && (lel__events[k].frame < frames ? lel__events[k].frame : frames - 1) <= i)
        lel__apply(&lel__events[k++]);
      cx.events = lel__events + first;
      cx.n_events = k - first;
      lel__one(&cx, i, ch, f, out + i * ch);
      i++;
    }
  }
  return (uint32_t)(uintptr_t)out;
}

#endif /* LEL_NO_EXPORTS */

#endif /* LEL_H */
