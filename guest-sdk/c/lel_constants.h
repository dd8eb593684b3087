/* lel_constants.h: the lel:signal@0.2.0 contract's constants and host
 * imports for the C SDK (lel.h includes it), generated from wit/lel.wit
 * and wit/constants.txt by lel-host's build script
 * (host/build/constants.rs): do not edit; run scripts/gen-constants after
 * changing those. */
#ifndef LEL_CONSTANTS_H
#define LEL_CONSTANTS_H

#include <stdint.h>

/* The contract package and version this SDK speaks. */
#define LEL_PACKAGE "lel:signal@0.2.0"
/* The import module of the host's functions. */
#define LEL_HOST_MODULE "lel:signal/host@0.2.0"

/* Limits the host enforces. */
#define LEL_MAX_KEY_LEN 256 /* Longest `claim` key, in bytes (a key is 1 to this many bytes of UTF-8). */
#define LEL_MAX_ALIGN 16 /* Largest alignment a claim may ask for; `state-ptr` must be aligned to it. */
#define LEL_MAX_CHANNELS 64 /* Most output channels `init` may return (it returns 1 to this many). */
#define LEL_MAX_MODULE_BYTES 67108864 /* Largest module file the host loads (64 MiB). */
#define LEL_MAX_PARAMS 64 /* Most parameters one version may declare with `param` (0.2.0). */
#define LEL_MAX_PARAM_KEY_LEN 64 /* Longest parameter key, in bytes (ASCII letters, digits, `_`, `-`, `.`). */
#define LEL_MAX_UNIT_LEN 16 /* Longest parameter unit, in bytes of UTF-8. */
#define LEL_EVENT_BYTES 16 /* Bytes of one event in a module's event buffer (0.2.0). */

/* What `claim` and `param` return to the module when they fail: the
 * contract's codes, returned by the host (the range -1 to -15 is the
 * contract's; -3 is `claim`'s only, -7 to -9 are `param`'s only). */
#define LEL_REGION_FULL (-1) /* The state region cannot hold the block. */
#define LEL_BAD_KEY (-2) /* The key is empty, longer than max-key-len bytes, or not UTF-8. */
#define LEL_BAD_ALIGN (-3) /* The alignment is not a power of two, or above max-align. */
#define LEL_DUPLICATE_KEY (-4) /* The key was already claimed in this `init`. */
#define LEL_NOT_IN_INIT (-5) /* `claim` is only callable during `init`. */
#define LEL_NO_STATE_REGION (-6) /* The module exports no `state-ptr`/`state-len`, or they describe memory it does not have. */
#define LEL_BAD_RANGE (-7) /* `param`: default, min or max not finite, min not below max, default outside min..max, or steps 1. */
#define LEL_TOO_MANY_PARAMS (-8) /* `param`: more than max-params parameters in one `init`. */
#define LEL_BAD_UNIT (-9) /* `param`: the unit is longer than max-unit-len bytes, or not UTF-8. */

/* What a module built with one of the lel SDKs returns from `init` when
 * the SDK itself fails (the range -16 to -31 is the SDKs'). SDK-private:
 * the host never returns them and only names them in its message; every
 * SDK uses the same numbers for the same failures (some failures exist in
 * some SDKs only). */
#define LEL_BAD_ARGS (-16) /* `init` got a zero sample rate or max-frames. */
#define LEL_OUTPUT_TOO_SMALL (-17) /* The output buffer cannot hold max-frames frames of every channel. */
#define LEL_BAD_ADDRESS (-18) /* The host answered a claim with an address outside the state region, or misaligned (Rust SDK). */
#define LEL_BUSY (-19) /* `init` or `process` was re-entered (Rust SDK). */
#define LEL_BAD_CHANNELS (-20) /* The signal asked for a channel count outside 1 to max-channels (C, Zig and AssemblyScript SDKs). */

/* Levels of the `log` import (a level above log-trace is logged as trace). */
#define LEL_LOG_ERROR 0 /* Something failed. */
#define LEL_LOG_WARN 1 /* Something is wrong but the signal plays on. */
#define LEL_LOG_INFO 2 /* Worth knowing. */
#define LEL_LOG_DEBUG 3 /* Detail for debugging. */
#define LEL_LOG_TRACE 4 /* Even more detail. */

/* The kind of an event in a module's event buffer (byte 4 of each 16-byte
 * event, 0.2.0). */
#define LEL_NOTE_ON 1 /* A note starts: number = key 0..127, value = velocity 0..1. */
#define LEL_NOTE_OFF 2 /* A note ends: number = key, value = release velocity 0..1. */
#define LEL_CONTROL_CHANGE 3 /* A MIDI controller moved: number = controller 0..127, value = 0..1. */
#define LEL_PITCH_BEND 4 /* The pitch wheel moved: value = -1..1 (the range in semitones is the guest's). */
#define LEL_CHANNEL_PRESSURE 5 /* Channel aftertouch: value = 0..1. */
#define LEL_PARAM 6 /* A parameter changed at this frame: number = its index, value = the new value. */

/* The SDKs' defaults (not the contract's): every SDK sizes its module the
 * same. */
#define LEL_DEFAULT_STATE_BYTES 1048576 /* Bytes in the state region of a module (1 MiB). */
#define LEL_DEFAULT_OUTPUT_SAMPLES 8192 /* `f32` samples in the static output buffer. */
#define LEL_CLAIM_ALIGN 16 /* Alignment of every block the SDKs' helpers claim. */
#define LEL_DEFAULT_EVENT_CAPACITY 256 /* Events in an SDK's static event buffer (4096 bytes, 0.2.0). */

/* The host's functions. */
__attribute__((import_module(LEL_HOST_MODULE), import_name("claim")))
int32_t lel_host_claim(const char *key, int32_t key_len, int32_t size, int32_t align);
__attribute__((import_module(LEL_HOST_MODULE), import_name("log")))
void lel_host_log(int32_t level, const char *msg, int32_t msg_len);
__attribute__((import_module(LEL_HOST_MODULE), import_name("param")))
int32_t lel_host_param(const char *key, int32_t key_len, float default_value, float min, float max, const char *unit, int32_t unit_len, int32_t steps);

#endif /* LEL_CONSTANTS_H */
