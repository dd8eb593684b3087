/*
 * pcm_paced.c - ALSA ioplug "paced null" playback sink.
 *
 * Like the built-in `null` PCM (discards samples) but consumes them at the
 * nominal sample rate using CLOCK_MONOTONIC + a timerfd poll descriptor, so
 * callback-driven clients (cpal, PortAudio, ...) run in real time instead of
 * spinning. Put it behind the `file` plugin to capture what was played.
 *
 * Build: cc -O2 -Wall -shared -fPIC -o libasound_module_pcm_paced.so pcm_paced.c -lasound
 * Use:   pcm_type.paced { lib "/abs/path/libasound_module_pcm_paced.so" }
 *        pcm.x { type paced  [format "FLOAT_LE"] [rate 48000] [channels 2] }
 *
 * Underrun semantics: if the app falls behind, the clock stalls (no xrun, no
 * catch-up burst) - the sink only ever "plays" what was written.
 *
 * Fault injection for tests: with `gone_if "/abs/path"`, the device behaves
 * as unplugged while that file exists: opening fails and writes fail with
 * ENODEV.
 */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	snd_pcm_ioplug_t io;
	int tfd;
	uint64_t hw;            /* frames consumed (absolute) */
	uint64_t anchor_hw;     /* hw at anchor_ns */
	uint64_t anchor_ns;
	snd_pcm_uframes_t avail_min;
	char *gone_if;          /* while this file exists, the device is "unplugged" */
} paced_t;

static int is_gone(const char *path)
{
	return path && access(path, F_OK) == 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void arm(paced_t *p, uint64_t ns)
{
	struct itimerspec its = {0};
	if (ns == 0)
		ns = 1; /* 0 would disarm; 1 ns == fire immediately */
	its.it_value.tv_sec = ns / 1000000000ull;
	its.it_value.tv_nsec = ns % 1000000000ull;
	timerfd_settime(p->tfd, 0, &its, NULL);
}

static void disarm(paced_t *p)
{
	struct itimerspec its = {0};
	timerfd_settime(p->tfd, 0, &its, NULL);
}

/* Advance the virtual hardware pointer according to the monotonic clock. */
static uint64_t update_hw(paced_t *p)
{
	snd_pcm_ioplug_t *io = &p->io;
	if (io->state != SND_PCM_STATE_RUNNING && io->state != SND_PCM_STATE_DRAINING)
		return p->hw;
	uint64_t now = now_ns();
	uint64_t target = p->anchor_hw + (now - p->anchor_ns) * (uint64_t)io->rate / 1000000000ull;
	uint64_t appl = io->appl_ptr;
	if (target > appl) { /* underrun: stall the clock at what was written */
		target = appl;
		p->anchor_hw = appl;
		p->anchor_ns = now;
	}
	p->hw = target;
	return target;
}

static snd_pcm_sframes_t paced_pointer(snd_pcm_ioplug_t *io)
{
	return (snd_pcm_sframes_t)update_hw(io->private_data);
}

static int paced_start(snd_pcm_ioplug_t *io)
{
	paced_t *p = io->private_data;
	p->anchor_hw = p->hw = io->hw_ptr;
	p->anchor_ns = now_ns();
	return 0;
}

static int paced_stop(snd_pcm_ioplug_t *io)
{
	disarm(io->private_data);
	return 0;
}

static int paced_prepare(snd_pcm_ioplug_t *io)
{
	paced_t *p = io->private_data;
	p->hw = p->anchor_hw = 0;
	p->anchor_ns = now_ns();
	arm(p, 0);
	return 0;
}

static int paced_pause(snd_pcm_ioplug_t *io, int enable)
{
	paced_t *p = io->private_data;
	if (enable) {
		update_hw(p);
		disarm(p);
	} else {
		p->anchor_hw = p->hw;
		p->anchor_ns = now_ns();
		arm(p, 0);
	}
	return 0;
}

static int paced_sw_params(snd_pcm_ioplug_t *io, snd_pcm_sw_params_t *params)
{
	paced_t *p = io->private_data;
	snd_pcm_uframes_t am = 1;
	snd_pcm_sw_params_get_avail_min(params, &am);
	p->avail_min = am ? am : 1;
	return 0;
}

static snd_pcm_sframes_t paced_transfer(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
					snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
	paced_t *p = io->private_data;
	(void)areas; (void)offset;
	if (is_gone(p->gone_if))
		return -ENODEV;
	return size; /* discard */
}

static int paced_delay(snd_pcm_ioplug_t *io, snd_pcm_sframes_t *delayp)
{
	paced_t *p = io->private_data;
	*delayp = (snd_pcm_sframes_t)(io->appl_ptr - update_hw(p));
	return 0;
}

static int paced_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds,
			      unsigned short *revents)
{
	paced_t *p = io->private_data;
	uint64_t cnt;
	(void)pfd; (void)nfds;
	while (read(p->tfd, &cnt, sizeof cnt) > 0)
		;
	*revents = 0;
	switch (io->state) {
	case SND_PCM_STATE_DRAINING: { /* wake when everything written has been "played" */
		uint64_t used = io->appl_ptr - update_hw(p);
		if (used == 0) {
			*revents = POLLOUT;
			arm(p, 0);
		} else {
			arm(p, used * 1000000000ull / io->rate + 1000);
		}
		break;
	}
	case SND_PCM_STATE_PREPARED:
	case SND_PCM_STATE_RUNNING: {
		uint64_t hw = update_hw(p);
		uint64_t used = io->appl_ptr - hw;
		uint64_t avail = used >= io->buffer_size ? 0 : io->buffer_size - used;
		if (avail >= p->avail_min) {
			*revents = POLLOUT;
			arm(p, 0); /* level-triggered: stay readable until written */
		} else {
			uint64_t need = p->avail_min - avail;
			arm(p, need * 1000000000ull / io->rate + 1000);
		}
		break;
	}
	case SND_PCM_STATE_XRUN:
	case SND_PCM_STATE_SUSPENDED:
	case SND_PCM_STATE_DISCONNECTED:
		*revents = POLLOUT | POLLERR;
		break;
	default:
		break;
	}
	return 0;
}

static int paced_close(snd_pcm_ioplug_t *io)
{
	paced_t *p = io->private_data;
	close(p->tfd);
	free(p->gone_if);
	free(p);
	return 0;
}

static const snd_pcm_ioplug_callback_t paced_cb = {
	.start = paced_start,
	.stop = paced_stop,
	.pointer = paced_pointer,
	.transfer = paced_transfer,
	.close = paced_close,
	.sw_params = paced_sw_params,
	.prepare = paced_prepare,
	.pause = paced_pause,
	.poll_revents = paced_poll_revents,
	.delay = paced_delay,
};

SND_PCM_PLUGIN_DEFINE_FUNC(paced)
{
	snd_config_iterator_t i, next;
	const char *fmt_s = NULL;
	const char *gone_s = NULL;
	long rate = 0, channels = 0;
	int err;
	(void)root;

	snd_config_for_each(i, next, conf) {
		snd_config_t *n = snd_config_iterator_entry(i);
		const char *id;
		if (snd_config_get_id(n, &id) < 0)
			continue;
		if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
			continue;
		if (!strcmp(id, "format") && snd_config_get_string(n, &fmt_s) >= 0)
			continue;
		if (!strcmp(id, "rate") && snd_config_get_integer(n, &rate) >= 0)
			continue;
		if (!strcmp(id, "channels") && snd_config_get_integer(n, &channels) >= 0)
			continue;
		if (!strcmp(id, "gone_if") && snd_config_get_string(n, &gone_s) >= 0)
			continue;
		SNDERR("paced: unknown or invalid field %s", id);
		return -EINVAL;
	}
	if (stream != SND_PCM_STREAM_PLAYBACK) {
		SNDERR("paced: playback only");
		return -EINVAL;
	}

	if (is_gone(gone_s))
		return -ENODEV;
	paced_t *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (gone_s && !(p->gone_if = strdup(gone_s))) {
		free(p);
		return -ENOMEM;
	}
	p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (p->tfd < 0) {
		err = -errno;
		free(p->gone_if);
		free(p);
		return err;
	}
	p->avail_min = 1;
	p->io.version = SND_PCM_IOPLUG_VERSION;
	p->io.name = "Paced null sink (real-time clocked)";
	p->io.flags = SND_PCM_IOPLUG_FLAG_BOUNDARY_WA;
	p->io.poll_fd = p->tfd;
	p->io.poll_events = POLLIN;
	p->io.mmap_rw = 0;
	p->io.callback = &paced_cb;
	p->io.private_data = p;

	err = snd_pcm_ioplug_create(&p->io, name, stream, mode);
	if (err < 0) {
		close(p->tfd);
		free(p->gone_if);
		free(p);
		return err;
	}

	static const unsigned int acc[] = {
		SND_PCM_ACCESS_RW_INTERLEAVED, SND_PCM_ACCESS_RW_NONINTERLEAVED,
		SND_PCM_ACCESS_MMAP_INTERLEAVED, SND_PCM_ACCESS_MMAP_NONINTERLEAVED,
	};
	static const unsigned int all_fmts[] = {
		SND_PCM_FORMAT_S8, SND_PCM_FORMAT_U8, SND_PCM_FORMAT_S16_LE, SND_PCM_FORMAT_U16_LE,
		SND_PCM_FORMAT_S24_LE, SND_PCM_FORMAT_S32_LE, SND_PCM_FORMAT_U32_LE,
		SND_PCM_FORMAT_FLOAT_LE, SND_PCM_FORMAT_FLOAT64_LE,
	};
	unsigned int one_fmt;
	const unsigned int *fmts = all_fmts;
	unsigned int nfmts = sizeof(all_fmts) / sizeof(all_fmts[0]);
	if (fmt_s) {
		snd_pcm_format_t f = snd_pcm_format_value(fmt_s);
		if (f == SND_PCM_FORMAT_UNKNOWN) {
			SNDERR("paced: bad format %s", fmt_s);
			snd_pcm_ioplug_delete(&p->io);
			return -EINVAL;
		}
		one_fmt = f;
		fmts = &one_fmt;
		nfmts = 1;
	}
	if ((err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_ACCESS, 4, acc)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_FORMAT, nfmts, fmts)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_CHANNELS,
						   channels ? channels : 1, channels ? channels : 32)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_RATE,
						   rate ? rate : 8000, rate ? rate : 192000)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 64, 1 << 17)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, 128, 1 << 18)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 32)) < 0) {
		snd_pcm_ioplug_delete(&p->io);
		return err;
	}
	*pcmp = p->io.pcm;
	return 0;
}

SND_PCM_PLUGIN_SYMBOL(paced);
