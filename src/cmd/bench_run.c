/*
 * The load generator behind `viesti bench`.
 *
 * Every connection is a struct client driven by hand: the codec encodes CONNECT, SUBSCRIBE,
 * acks and DISCONNECT into the client's output buffer and decodes whatever the broker sends, over
 * a non-blocking socket registered in one worker thread's epoll loop (over TLS, a session of
 * client/tls.h on that socket, its handshake stepped by the same loop). No client library is used,
 * so the generator costs little more than the system calls it makes, and what it measures is the
 * broker. The PUBLISH of a publisher is encoded once into a template at set-up; sending a message
 * copies the template and patches the packet identifier and the first 16 payload bytes:
 *
 *     payload[0..8)   send time, CLOCK_MONOTONIC ns (native byte order: same machine)
 *     payload[8..12)  publisher id (0..P-1)
 *     payload[12..16) sequence number of this publisher (0, 1, 2, ...)
 *
 * so a subscriber computes end-to-end latency, and loss and duplicates per publisher stream.
 *
 * The main thread only orchestrates, through one atomic phase that workers poll between loop
 * turns (their epoll timeout is at most 5 ms):
 *
 *     SUBS  subscribers connect and subscribe (at most `burst` handshakes in flight at once,
 *           so the broker's listen backlog never overflows into SYN retransmits)
 *     PUBS  publishers (and conn's idle clients) connect
 *     RUN   publishers send; t_run, t_measure (after the warm-up) and t_stop are fixed first
 *     STOP  publishers stop; subscribers drain for up to `drain` seconds, until every message
 *           sent was received (or, at QoS 0, until nothing has arrived for 250 ms)
 *     BYE   every client sends DISCONNECT and waits for the broker to close (up to 2 s)
 *     EXIT  workers close what is left and return
 *
 * Ownership: a client, its buffers and its stream trackers belong to its worker; the main thread
 * reads them only after joining the workers (or, for publishers' sequence numbers, after every
 * worker has acknowledged STOP with a release increment of `stopped`). Counters that the main
 * thread reads while workers run are per-worker relaxed atomics with a single writer. The one
 * shared structure is the set of trackers of a $share group, under `shared_mu`.
 *
 * Files: this one has the worker threads' loop, the set-up and the main thread's phases and
 * results; bench_client.c a client's connection (TCP, TLS, WebSocket, the handshake, reading,
 * writing, failing); bench_traffic.c what it sends and receives (publishing within the windows,
 * the broker's packets, the accounting of every message); bench_int.h what they share.
 */
#include "cmd/bench_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"

/* ---- the worker ---- */

static void enter_phase(struct worker *w, int phase)
{
	struct bench *b = w->b;
	w->phase = phase;
	if (phase == P_PUBS)
		w->next = 0;
	if (phase == P_RUN) {
		int64_t now = vs_now_ns();
		for (uint32_t i = 0; i < w->npubs; i++) {
			vs_bench_pump(w->pubs[i], now);
			if (w->pubs[i]->state == C_READY)
				vs_bench_flush(w->pubs[i]);
		}
	}
	if (phase == P_STOP) {
		for (uint32_t i = 0; i < w->npubs; i++)
			if (w->pubs[i]->state == C_READY)
				vs_bench_flush(
				    w->pubs[i]); /* drops EPOLLOUT interest of QoS 0 publishers */
		atomic_fetch_add_explicit(&b->stopped, 1, memory_order_release);
	}
	if (phase == P_BYE) {
		struct vs_packet p = {.type = VS_DISCONNECT};
		for (uint32_t k = 0; k < 2; k++)
			for (uint32_t i = 0; i < w->nlist[k]; i++) {
				struct client *c = w->lists[k][i];
				if (c->state == C_CLOSED || c->state == C_NEW)
					continue;
				if (c->state != C_READY || vs_bench_queue(c, &p) < 0) {
					vs_bench_close(c);
					continue;
				}
				c->state = C_BYE;
				vs_bench_flush(c);
			}
	}
}

static void tick(struct worker *w)
{
	int k = w->phase == P_SUBS ? 0 : 1;
	if (w->phase <= P_RUN) {
		while (w->handshaking < w->burst && w->next < w->nlist[k])
			vs_bench_connect(w->lists[k][w->next++]);
	}
	if (w->phase != P_RUN || w->npubs == 0)
		return;
	/* Rate-limited and blocked publishers are looked at every half millisecond; those
	 * waiting on the end-to-end window after every loop turn (their subscribers may just
	 * have received). */
	int64_t now = vs_now_ns();
	bool every = w->b->e2e;
	if (!every && now - w->last_tick < 500000)
		return;
	w->last_tick = now;
	for (uint32_t i = 0; i < w->npubs; i++) {
		struct client *c = w->pubs[i];
		if (c->state != C_READY || !(every || w->b->c->rate > 0 || c->blocked))
			continue;
		size_t before = c->out.len;
		bool was_blocked = c->blocked;
		vs_bench_pump(c, now);
		if (c->out.len != before || c->blocked != was_blocked || vs_bytes_avail(&c->out))
			vs_bench_flush(c);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	for (;;) {
		int ph = atomic_load_explicit(&b->phase, memory_order_acquire);
		while (w->phase < ph)
			enter_phase(w, w->phase + 1);
		if (ph == P_EXIT)
			break;
		tick(w);
		/* Phases are polled: 1 ms while connecting or publishing, 5 ms otherwise. */
		int timeout = w->phase < P_RUN || (w->phase == P_RUN && w->npubs) ? 1 : 5;
		vs_loop_run_once(&w->loop, timeout);
	}
	for (uint32_t k = 0; k < 2; k++)
		for (uint32_t i = 0; i < w->nlist[k]; i++)
			vs_bench_close(w->lists[k][i]);
	return NULL;
}

/* ---- set-up ---- */

static int make_publisher(struct bench *b, struct client *c)
{
	const struct vs_bench_conf *cf = b->c;
	char topic[256];
	snprintf(topic, sizeof(topic), "%s/%u", cf->prefix,
		 cf->scenario == VS_BENCH_FANOUT ? 0 : c->idx);
	uint8_t *zeros = calloc(1, cf->payload);
	if (!zeros)
		return -ENOMEM;
	memset(zeros, 'x', cf->payload);
	struct vs_packet p = {.type = VS_PUBLISH};
	p.publish.qos = (uint8_t)cf->qos;
	p.publish.topic = (struct vs_buf){(const uint8_t *)topic, strlen(topic)};
	p.publish.packet_id = cf->qos ? 1 : 0;
	p.publish.payload = (struct vs_buf){zeros, cf->payload};
	ssize_t n = vs_codec_size(&p, cf->version);
	if (n < 0 || !(c->tmpl = malloc((size_t)n))) {
		free(zeros);
		return n < 0 ? (int)n : -ENOMEM;
	}
	n = vs_codec_encode(&p, cf->version, c->tmpl, (size_t)n);
	free(zeros);
	if (n < 0)
		return (int)n;
	uint32_t remaining;
	enum vs_reason why;
	int hdr = vs_codec_frame(c->tmpl, (size_t)n, &remaining, &why);
	if (hdr <= 0)
		return VS_EPROTO;
	c->tmpl_len = (uint32_t)n;
	c->pid_off = (uint32_t)hdr + 2 + (uint32_t)strlen(topic);
	c->pay_off = (uint32_t)n - cf->payload;
	c->offset = (double)c->idx / (double)cf->pubs;
	c->window = cf->window;
	if (cf->qos > 0 && !(c->slots = calloc(cf->window, 1)))
		return -ENOMEM;
	return 0;
}

static int make_subscriber(struct bench *b, struct client *c)
{
	const struct vs_bench_conf *cf = b->c;
	char f[300];
	switch (cf->scenario) {
	case VS_BENCH_PAIRS:
		snprintf(f, sizeof(f), "%s/%u", cf->prefix, c->idx);
		break;
	case VS_BENCH_FANOUT:
		snprintf(f, sizeof(f), "%s/0", cf->prefix);
		break;
	case VS_BENCH_SHARED:
		snprintf(f, sizeof(f), "$share/bench/%s/+", cf->prefix);
		break;
	case VS_BENCH_SUB:
		snprintf(f, sizeof(f), "%s/#", cf->prefix);
		break;
	default:
		snprintf(f, sizeof(f), "%s/+", cf->prefix);
		break;
	}
	c->filter = strdup(f);
	return c->filter ? 0 : -ENOMEM;
}

static int setup_clients(struct bench *b)
{
	const struct vs_bench_conf *cf = b->c;
	bool idle = cf->scenario == VS_BENCH_CONN;
	b->ncl = cf->pubs + cf->subs;
	b->cl = calloc(b->ncl ? b->ncl : 1, sizeof(*b->cl));
	if (!b->cl)
		return -ENOMEM;
	for (uint32_t t = 0; t < cf->threads; t++) {
		struct worker *w = &b->w[t];
		uint32_t cap = b->ncl / cf->threads + 1;
		w->lists[0] = calloc(cap, sizeof(struct client *));
		w->lists[1] = calloc(cap, sizeof(struct client *));
		w->pubs = calloc(cap, sizeof(struct client *));
		if (!w->lists[0] || !w->lists[1] || !w->pubs)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < b->ncl; i++) {
		struct client *c = &b->cl[i];
		struct worker *w = &b->w[i % cf->threads];
		c->w = w;
		c->io.fd = -1;
		c->state = C_NEW;
		int rc;
		if (i < cf->subs && !idle) {
			c->role = R_SUB;
			c->idx = i;
			rc = make_subscriber(b, c);
			w->lists[0][w->nlist[0]++] = c;
		} else if (idle) {
			c->role = R_IDLE;
			c->idx = i;
			rc = 0;
			w->lists[1][w->nlist[1]++] = c;
		} else {
			c->role = R_PUB;
			c->idx = i - cf->subs;
			rc = make_publisher(b, c);
			w->lists[1][w->nlist[1]++] = c;
			w->pubs[w->npubs++] = c;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int setup(struct bench *b)
{
	const struct vs_bench_conf *cf = b->c;
	b->runid = (uint32_t)vs_now_ns() ^ ((uint32_t)getpid() << 16);
	double hold = cf->warmup + cf->duration + cf->drain + 60;
	b->keepalive = hold > 65535 ? 65535 : (uint16_t)hold;
	b->e2e = cf->qos > 0 && cf->pubs > 0 && cf->subs > 0 &&
		 (cf->scenario == VS_BENCH_PAIRS || cf->scenario == VS_BENCH_FANIN ||
		  cf->scenario == VS_BENCH_FANOUT || cf->scenario == VS_BENCH_SHARED);
	b->factor = cf->scenario == VS_BENCH_FANOUT ? cf->subs : 1;
	b->w = calloc(cf->threads, sizeof(*b->w));
	if (!b->w)
		return -ENOMEM;
	if (cf->scenario == VS_BENCH_SHARED) {
		b->shared = calloc(cf->pubs ? cf->pubs : 1, sizeof(*b->shared));
		if (!b->shared)
			return -ENOMEM;
		for (uint32_t i = 0; i < cf->pubs; i++)
			vs_stream_init(&b->shared[i]);
		pthread_mutex_init(&b->shared_mu, NULL);
	}
	for (uint32_t t = 0; t < cf->threads; t++) {
		struct worker *w = &b->w[t];
		w->b = b;
		w->burst = cf->burst / cf->threads ? cf->burst / cf->threads : 1;
		w->phase = P_SUBS;
		vs_hist_init(&w->lat);
		if (cf->by_publisher && cf->pubs) {
			if (!(w->by_pub = malloc(cf->pubs * sizeof(*w->by_pub))))
				return -ENOMEM;
			for (uint32_t i = 0; i < cf->pubs; i++)
				vs_hist_init(&w->by_pub[i]);
		}
		w->loop.epfd = -1;
		int rc = vs_loop_init(&w->loop);
		if (rc < 0)
			return rc;
		if (!(w->rbuf = malloc(READ_CHUNK)))
			return -ENOMEM;
	}
	return setup_clients(b);
}

static void teardown(struct bench *b)
{
	for (uint32_t i = 0; i < b->ncl; i++) {
		struct client *c = &b->cl[i];
		free(c->tmpl);
		free(c->slots);
		free(c->filter);
		for (uint32_t k = 0; k < c->st.n; k++)
			free(c->st.v[k]);
		free(c->st.v);
		vs_bytes_fini(&c->in);
		vs_bytes_fini(&c->out);
	}
	free(b->cl);
	if (b->w) {
		for (uint32_t t = 0; t < b->c->threads; t++) {
			struct worker *w = &b->w[t];
			vs_loop_fini(&w->loop);
			SSL_SESSION_free(w->resume);
			free(w->rbuf);
			free(w->by_pub);
			free(w->lists[0]);
			free(w->lists[1]);
			free(w->pubs);
		}
	}
	free(b->w);
	if (b->shared) {
		pthread_mutex_destroy(&b->shared_mu);
		free(b->shared);
	}
}

/* ---- the main thread: phases, progress, results ---- */

struct totals {
	uint64_t sent, m_sent, received, m_received, unique, ready, failed, open;
};

static struct totals sum(struct bench *b)
{
	struct totals t = {0};
	for (uint32_t i = 0; i < b->c->threads; i++) {
		struct worker *w = &b->w[i];
		t.sent += rd(&w->sent);
		t.m_sent += rd(&w->m_sent);
		t.received += rd(&w->received);
		t.m_received += rd(&w->m_received);
		t.unique += rd(&w->unique);
		t.ready += rd(&w->ready);
		t.failed += rd(&w->failed);
		t.open += rd(&w->open);
	}
	return t;
}

static void set_phase(struct bench *b, int phase)
{
	atomic_store_explicit(&b->phase, phase, memory_order_release);
}

static void nap(void)
{
	struct timespec ts = {0, 1000000};
	nanosleep(&ts, NULL);
}

static const char *const phase_names[] = {"subs", "pubs", "run", "drain", "bye", "exit"};

/* One line a second on stderr while the run lasts. */
static void progress(struct bench *b, int64_t start, int64_t *last, struct totals *prev)
{
	int64_t now = vs_now_ns();
	if (!b->c->progress || now - *last < 1000000000)
		return;
	struct totals t = sum(b);
	double dt = (double)(now - *last) * 1e-9;
	fprintf(stderr, "[%6.1fs] %-5s conns %llu/%u  sent %.0f/s  recv %.0f/s  total %llu/%llu\n",
		(double)(now - start) * 1e-9, phase_names[atomic_load(&b->phase)],
		(unsigned long long)t.ready, b->ncl, (double)(t.sent - prev->sent) / dt,
		(double)(t.received - prev->received) / dt, (unsigned long long)t.sent,
		(unsigned long long)t.received);
	*prev = t;
	*last = now;
}

/* What the subscribers should receive, once publishers have stopped. */
static uint64_t expected_deliveries(struct bench *b)
{
	const struct vs_bench_conf *cf = b->c;
	uint64_t all = 0, e = 0;
	for (uint32_t i = cf->subs; i < b->ncl; i++)
		all += b->cl[i].seq;
	switch (cf->scenario) {
	case VS_BENCH_PAIRS:
		for (uint32_t i = 0; i < cf->subs && cf->subs + i < b->ncl; i++)
			e += b->cl[cf->subs + i].seq;
		return e;
	case VS_BENCH_FANIN:
	case VS_BENCH_SHARED:
		return all;
	case VS_BENCH_FANOUT:
		return all * cf->subs;
	default:
		return 0;
	}
}

/* Waits until the handshakes of this phase are done (ok or failed). */
static int wait_connected(struct bench *b, uint64_t target, int64_t t0, int64_t *plast,
			  struct totals *prev, char *err, size_t errlen)
{
	int64_t limit = 30000000000ll + (int64_t)target * 5000000;
	for (;;) {
		struct totals t = sum(b);
		if (t.ready + t.failed >= target)
			return 0;
		if (vs_now_ns() - t0 > limit) {
			snprintf(err, errlen, "connecting timed out: %llu of %llu connected",
				 (unsigned long long)t.ready, (unsigned long long)target);
			return VS_ESTATE;
		}
		progress(b, t0, plast, prev);
		nap();
	}
}

static void run_until(struct bench *b, int64_t until, int64_t t0, int64_t *plast,
		      struct totals *prev)
{
	while (vs_now_ns() < until) {
		progress(b, t0, plast, prev);
		nap();
	}
}

/* Subscribers drain: until everything expected arrived, the drain time is over, or (QoS 0,
 * where loss is allowed) nothing arrived for a while. */
static void drain(struct bench *b, struct vs_bench_result *r, int64_t t0, int64_t *plast,
		  struct totals *prev)
{
	const struct vs_bench_conf *cf = b->c;
	while (atomic_load_explicit(&b->stopped, memory_order_acquire) < cf->threads)
		nap();
	int64_t start = vs_now_ns(), end = start + (int64_t)(cf->drain * 1e9);
	r->expected = expected_deliveries(b);
	if (cf->subs == 0 || cf->scenario == VS_BENCH_SUB || cf->scenario == VS_BENCH_CONN)
		return;
	uint64_t last_unique = sum(b).unique;
	int64_t last_change = start;
	for (;;) {
		int64_t now = vs_now_ns();
		uint64_t u = sum(b).unique;
		if (u >= r->expected || now >= end)
			break;
		if (u != last_unique) {
			last_unique = u;
			last_change = now;
		} else if (cf->qos == 0 && now - last_change > QOS0_IDLE_NS) {
			break;
		}
		progress(b, t0, plast, prev);
		nap();
	}
	r->drain_s = (double)(vs_now_ns() - start) * 1e-9;
}

void vs_bench_result_fini(struct vs_bench_result *res)
{
	free(res->by_pub);
	res->by_pub = NULL;
}

static void collect(struct bench *b, struct vs_bench_result *r)
{
	const struct vs_bench_conf *cf = b->c;
	struct totals t = sum(b);
	r->connected = t.ready;
	r->connect_failed = t.failed;
	r->sent = t.sent;
	r->m_sent = t.m_sent;
	r->received = t.received;
	r->m_received = t.m_received;
	r->unique = t.unique;
	vs_hist_init(&r->lat);
	uint64_t gaps = 0;
	for (uint32_t i = 0; i < cf->threads; i++) {
		struct worker *w = &b->w[i];
		r->acked += w->acked;
		r->dups += w->dups;
		r->rejected += w->rejected;
		r->foreign += w->foreign;
		r->errors += w->errors;
		r->tls_resumed += w->tls_resumed;
		vs_hist_merge(&r->lat, &w->lat);
	}
	if (cf->by_publisher && cf->pubs && (r->by_pub = malloc(cf->pubs * sizeof(*r->by_pub)))) {
		for (uint32_t p = 0; p < cf->pubs; p++) {
			vs_hist_init(&r->by_pub[p]);
			for (uint32_t i = 0; i < cf->threads; i++)
				vs_hist_merge(&r->by_pub[p], &b->w[i].by_pub[p]);
		}
	}
	for (uint32_t i = 0; i < b->ncl; i++)
		for (uint32_t k = 0; k < b->cl[i].st.n; k++)
			if (b->cl[i].st.v[k])
				gaps += vs_stream_gaps(b->cl[i].st.v[k]);
	if (cf->scenario == VS_BENCH_SUB)
		r->lost = gaps;
	else if (r->expected > r->unique)
		r->lost = r->expected - r->unique;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	r->cpu_user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
	r->cpu_sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Connect time: from the first connect() of each connect phase to its last handshake,
 * summed over the two phases. */
static double connect_seconds(struct bench *b)
{
	double s = 0;
	for (int k = 0; k < 2; k++) {
		int64_t first = 0, last = 0;
		for (uint32_t i = 0; i < b->c->threads; i++) {
			int64_t f =
			    atomic_load_explicit(&b->w[i].first_start[k], memory_order_relaxed);
			int64_t l =
			    atomic_load_explicit(&b->w[i].last_done[k], memory_order_relaxed);
			if (f && (!first || f < first))
				first = f;
			if (l > last)
				last = l;
		}
		if (first && last > first)
			s += (double)(last - first) * 1e-9;
	}
	return s;
}

static int orchestrate(struct bench *b, struct vs_bench_result *r, char *err, size_t errlen)
{
	const struct vs_bench_conf *cf = b->c;
	int64_t t0 = vs_now_ns(), plast = t0;
	struct totals prev = {0};
	uint32_t nsubs = cf->scenario == VS_BENCH_CONN ? 0 : cf->subs;
	int rc = wait_connected(b, nsubs, t0, &plast, &prev, err, errlen);
	int64_t t_pubs = vs_now_ns();
	if (rc == 0) {
		set_phase(b, P_PUBS);
		rc = wait_connected(b, b->ncl, t_pubs, &plast, &prev, err, errlen);
	}
	r->connect_s = connect_seconds(b);
	if (rc < 0)
		return rc;
	b->t_run = vs_now_ns();
	b->t_measure = b->t_run + (int64_t)(cf->warmup * 1e9);
	b->t_stop = b->t_measure + (int64_t)(cf->duration * 1e9);
	set_phase(b, P_RUN);
	run_until(b, b->t_stop, t0, &plast, &prev);
	set_phase(b, P_STOP);
	drain(b, r, t0, &plast, &prev);
	r->m_seconds = cf->duration;
	set_phase(b, P_BYE);
	int64_t bye = vs_now_ns();
	while (sum(b).open > 0 && vs_now_ns() - bye < BYE_WAIT_NS)
		nap();
	r->elapsed_s = (double)(vs_now_ns() - t0) * 1e-9;
	return 0;
}

int vs_bench_run(const struct vs_bench_conf *c, struct vs_bench_result *res, char *err,
		 size_t errlen)
{
	struct bench b = {.c = c};
	err[0] = 0;
	int rc = setup(&b);
	if (rc < 0) {
		snprintf(err, errlen, "set-up: %s", vs_strerror(rc));
		teardown(&b);
		return rc;
	}
	uint32_t started = 0;
	for (; started < c->threads; started++) {
		if ((rc = pthread_create(&b.w[started].tid, NULL, worker_main, &b.w[started]))) {
			snprintf(err, errlen, "pthread_create: %s", strerror(rc));
			rc = -rc;
			break;
		}
	}
	if (started == c->threads)
		rc = orchestrate(&b, res, err, errlen);
	set_phase(&b, P_EXIT);
	for (uint32_t t = 0; t < started; t++)
		pthread_join(b.w[t].tid, NULL);
	collect(&b, res);
	for (uint32_t t = 0; t < c->threads; t++)
		if (b.w[t].err[0]) {
			fprintf(stderr, "viesti bench: first error: %s\n", b.w[t].err);
			break;
		}
	teardown(&b);
	return rc;
}
