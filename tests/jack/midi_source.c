/*
 * midi_source.c - a JACK MIDI source for lel-host's MIDI test (the test
 * builds it with `cc`, runs it as a JACK client beside `jackd -d dummy` and
 * connects lel-host's `--midi` to it). Runs on JACK's process thread only:
 * no allocation there, all state static.
 *
 * Usage: midi_source CLIENT_NAME [dense]   (one output port, CLIENT_NAME:out)
 *
 * With `dense`: in every process cycle, 50 note-offs (of the keys the
 * previous cycle played) and 50 note-ons on channel 1, velocity 48,
 * alternating and ending on a note-on (about 18,750 events a second at
 * 256 frames a cycle); nothing else. Without it:
 *
 * Every period of 36,000 frames (on JACK's clock), numbered n from 0:
 *   frame     0  channel 2: pitch bend centre; CC 74 = 100 (n even) or 50 (n odd)
 *   frame   500  channel 2: note-on key 69 velocity 127
 *   frame  2000  channel 1: note-on key 81, CC 74 = 0, pitch bend +1 (decoys:
 *                a signal that hears only channel 2 must ignore them)
 *   frame  8500  channel 2: pitch bend +0.5 (n even only)
 *   frame 24500  channel 2: note-off key 69
 * and in every process cycle, 60 events of garbage (about 11,000 a second
 * at 256 frames a cycle): stray data bytes, system bytes, truncated channel
 * messages on channel 2, channel-2 status bytes followed by status bytes,
 * and random channel-1 messages. None of it is a complete channel-2
 * message, so what channel 2 plays is exactly the script above.
 */
#include <jack/jack.h>
#include <jack/midiport.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PERIOD 36000u
#define GARBAGE_PER_CYCLE 60u

static jack_port_t *out_port;
static uint64_t pos; /* frames since the first cycle */
static uint32_t seed = 0x2545F491u;
static volatile sig_atomic_t done;

static uint32_t rnd(void) {
  seed ^= seed << 13;
  seed ^= seed >> 17;
  seed ^= seed << 5;
  return seed;
}

static void put(void *buf, jack_nframes_t at, const uint8_t *bytes, size_t len) {
  jack_midi_event_write(buf, at, bytes, len);
}

/* One garbage event at frame `at` of this cycle. */
static void garbage(void *buf, jack_nframes_t at, uint32_t i) {
  uint8_t b[8];
  size_t len = 1 + rnd() % 6;
  size_t k;
  static const uint8_t ch2_three[4] = {0x81, 0x91, 0xB1, 0xE1};
  switch (i % 5) {
  case 0: /* stray data bytes */
    for (k = 0; k < len; k++) b[k] = rnd() & 0x7F;
    break;
  case 1: /* system bytes (sysex, clock, reset, ...) and anything after */
    b[0] = 0xF0 | (rnd() & 0x0F);
    for (k = 1; k < len; k++) b[k] = rnd() & 0xFF;
    break;
  case 2: /* a channel-2 message cut short */
    if (rnd() & 1) {
      b[0] = 0xD1; /* pressure without its data byte */
      len = 1;
    } else {
      b[0] = ch2_three[rnd() % 4];
      b[1] = rnd() & 0x7F;
      len = 1 + rnd() % 2;
    }
    break;
  case 3: /* a channel-2 status byte followed by a status byte */
    b[0] = ch2_three[rnd() % 4];
    b[1] = 0x80 | (rnd() & 0x7F);
    b[2] = rnd() & 0x7F;
    len = 3;
    break;
  default: /* a random channel-1 message: valid, but not for channel 2 */
    b[0] = 0x80 | ((rnd() % 7) << 4);
    b[1] = rnd() & 0x7F;
    b[2] = rnd() & 0x7F;
    len = 3;
    break;
  }
  put(buf, at, b, len);
}

/* The script's event at `offset` of period `n`, if any, written at `at`. */
static void script(void *buf, jack_nframes_t at, uint64_t offset, uint64_t n) {
  if (offset == 0) {
    const uint8_t centre[3] = {0xE1, 0x00, 0x40};
    const uint8_t cc[3] = {0xB1, 74, (uint8_t)(n % 2 == 0 ? 100 : 50)};
    put(buf, at, centre, 3);
    put(buf, at, cc, 3);
  } else if (offset == 500) {
    const uint8_t on[3] = {0x91, 69, 127};
    put(buf, at, on, 3);
  } else if (offset == 2000) {
    const uint8_t on[3] = {0x90, 81, 127};
    const uint8_t cc[3] = {0xB0, 74, 0};
    const uint8_t bend[3] = {0xE0, 0x7F, 0x7F};
    put(buf, at, on, 3);
    put(buf, at, cc, 3);
    put(buf, at, bend, 3);
  } else if (offset == 8500 && n % 2 == 0) {
    const uint8_t bend[3] = {0xE1, 0x00, 0x60}; /* 12288: +0.5 */
    put(buf, at, bend, 3);
  } else if (offset == 24500) {
    const uint8_t off[3] = {0x81, 69, 0};
    put(buf, at, off, 3);
  }
}

static int dense_mode;

#define DENSE_NOTES 50u

/* The dense stream: note-off of the key held in slot i, note-on of a new
 * one, for every slot, spread over the cycle. */
static void dense(void *buf, jack_nframes_t nframes) {
  static uint8_t held[DENSE_NOTES];
  static uint32_t next;
  for (uint32_t i = 0; i < DENSE_NOTES; i++) {
    jack_nframes_t at = (jack_nframes_t)((uint64_t)i * nframes / DENSE_NOTES);
    if (held[i]) {
      const uint8_t off[3] = {0x80, held[i], 0};
      put(buf, at, off, 3);
    }
    held[i] = (uint8_t)(60 + next++ % 24);
    const uint8_t on[3] = {0x90, held[i], 48};
    put(buf, at, on, 3);
  }
}

static int process(jack_nframes_t nframes, void *arg) {
  (void)arg;
  void *buf = jack_port_get_buffer(out_port, nframes);
  jack_midi_clear_buffer(buf);
  if (dense_mode) {
    dense(buf, nframes);
    pos += nframes;
    return 0;
  }
  uint32_t g = 0;
  for (jack_nframes_t f = 0; f < nframes; f++) {
    uint64_t p = pos + f;
    script(buf, f, p % PERIOD, p / PERIOD);
    /* garbage spread evenly over the cycle */
    while (g < GARBAGE_PER_CYCLE && (uint64_t)g * nframes / GARBAGE_PER_CYCLE == f) {
      garbage(buf, f, g);
      g++;
    }
  }
  pos += nframes;
  return 0;
}

static void stop(int sig) {
  (void)sig;
  done = 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "dense") != 0)) {
    fprintf(stderr, "usage: %s CLIENT_NAME [dense]\n", argv[0]);
    return 2;
  }
  dense_mode = argc == 3;
  jack_status_t status;
  jack_client_t *client = jack_client_open(argv[1], JackNoStartServer, &status);
  if (!client) {
    fprintf(stderr, "midi_source: cannot connect to the JACK server (status 0x%x)\n", status);
    return 1;
  }
  out_port = jack_port_register(client, "out", JACK_DEFAULT_MIDI_TYPE, JackPortIsOutput, 0);
  if (!out_port || jack_set_process_callback(client, process, NULL) || jack_activate(client)) {
    fprintf(stderr, "midi_source: cannot set up the client\n");
    return 1;
  }
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  while (!done) usleep(20000);
  jack_client_close(client);
  return 0;
}
