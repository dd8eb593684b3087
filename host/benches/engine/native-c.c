/* native-c.c: a C SDK example compiled for the build machine, as a shared
 * library the benchmark loads (part 3: each SDK's chain against the same
 * source compiled natively). LEL_EXAMPLE names the example's source file:
 *
 *   clang -O2 -std=c11 -shared -fPIC -ffp-contract=off -DLEL_NATIVE \
 *         -DLEL_EXAMPLE='"examples/c/chain.c"' -I guest-sdk/c -I . \
 *         -o chain-c.so host/benches/engine/native-c.c -lm
 *
 * The host side lel-host gives a module is played here by hand: `claim`
 * hands out zeroed blocks below 2 GiB (the SDK keeps a block's address in
 * 32 bits, as in wasm32), `init` and `process` are called as the engine
 * calls them, one 128-frame block at a time, and each block's samples are
 * copied out (as the engine reads them out of the module's memory). */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include LEL_EXAMPLE

#define HEAP_BYTES (64u << 20)
static unsigned char *heap;
static uint32_t heap_used;

int32_t lel_host_claim(const char *key, int32_t key_len, int32_t size, int32_t align) {
  (void)key;
  (void)key_len;
  if (!heap || size < 0 || align <= 0) return -1;
  uint32_t at = (heap_used + (uint32_t)align - 1) & ~((uint32_t)align - 1);
  if ((uint64_t)at + (uint32_t)size > HEAP_BYTES) return -1;
  heap_used = at + (uint32_t)size;
  return (int32_t)(uintptr_t)(heap + at);
}

void lel_host_log(int32_t level, const char *msg, int32_t msg_len) {
  (void)level;
  (void)msg;
  (void)msg_len;
}

int32_t lel_host_param(const char *key, int32_t key_len, float default_value, float min, float max,
                       const char *unit, int32_t unit_len, int32_t steps) {
  (void)key, (void)key_len, (void)default_value, (void)min, (void)max;
  (void)unit, (void)unit_len, (void)steps;
  return -1;
}

/* `init` at `sample_rate` for blocks of `block` frames: the channel count,
 * or a negative code (-100: no memory below 2 GiB for the claims). */
int32_t lel_native_init(uint32_t sample_rate, uint32_t block) {
  if (!heap) {
    void *p = mmap(NULL, HEAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                   -1, 0);
    if (p == MAP_FAILED) return -100;
    heap = (unsigned char *)p;
  }
  return lel_export_init(sample_rate, block);
}

/* Render `frames` frames (`channels` each) into `out`, `block` at a time. */
void lel_native_render(float *out, uint64_t frames, uint32_t channels, uint32_t block,
                       uint64_t *clock) {
  uint64_t done = 0;
  while (done < frames) {
    uint32_t n = frames - done < block ? (uint32_t)(frames - done) : block;
    lel_export_process(n, *clock, 0);
    memcpy(out + done * channels, lel__rt.out, (size_t)n * channels * sizeof(float));
    done += n;
    *clock += n;
  }
}
