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
 */
#include "cmd/bench_run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/error.h"
#include "codec/codec.h"
#include "net/loop.h"
#include "net/ws.h"

enum phase { P_SUBS, P_PUBS, P_RUN, P_STOP, P_BYE, P_EXIT };
enum role { R_PUB, R_SUB, R_IDLE };
enum cstate { C_NEW, C_TCP, C_TLS, C_WS, C_CONNACK, C_SUBACK, C_READY, C_BYE, C_CLOSED };

#define READ_CHUNK   (64 * 1024)
#define MAX_PUB_ID   (1u << 20) /* trackers are not made for ids above this (foreign payloads) */
#define BYE_WAIT_NS  2000000000ll
#define QOS0_IDLE_NS 250000000ll

/* The trackers of one subscriber, indexed by publisher id - lo. */
struct streams {
	uint32_t lo, n;
	struct vs_stream **v;
};

struct worker;

struct client {
	struct vs_io io; /* io.fd is -1 when closed */
	struct worker *w;
	uint8_t role;  /* enum role */
	uint8_t state; /* enum cstate */
	bool blocked;  /* QoS 0 full speed: output over the bound, retried at the next tick */
	uint32_t idx;  /* publisher id, or subscriber / idle index */
	SSL *ssl;      /* TLS: the session on io.fd; NULL for plain TCP */
	struct vs_transport *ws; /* --ws-path: the WebSocket over the socket (or ssl); else NULL */
	struct vs_bytes in, out;
	/* Publisher. */
	uint8_t *tmpl; /* the encoded PUBLISH */
	uint32_t tmpl_len;
	uint32_t pid_off; /* offset of the packet identifier in tmpl (QoS > 0) */
	uint32_t pay_off; /* offset of the payload in tmpl */
	double offset;	  /* rate mode: this publisher's phase within one period, [0, 1) */
	uint64_t seq;	  /* messages sent (next sequence number) */
	uint32_t window;  /* outstanding messages allowed (--window, or the broker's maximum) */
	uint32_t inflight;
	uint32_t cursor; /* where to look for a free packet identifier */
	uint8_t *slots;	 /* per packet id - 1: 0 free, 1 awaiting PUBACK/PUBREC, 2 PUBCOMP */
	/* End-to-end window (QoS > 0 with subscribers here): deliveries of this publisher's
	 * messages to our subscribers, counted by whichever worker receives them. */
	_Atomic uint64_t delivered;
	uint64_t written_off; /* deliveries given up on after a stall (the broker dropped them) */
	uint64_t stall_mark;  /* delivered + written_off when the current stall began */
	int64_t stall_since;  /* 0 when not stalled */
	/* Subscriber. */
	char *filter;
	struct streams st;
};

struct bench;

struct worker {
	struct bench *b;
	pthread_t tid;
	struct vs_loop loop;
	int phase;		  /* the last phase this worker acted on */
	struct client **lists[2]; /* what to connect in P_SUBS and in P_PUBS */
	uint32_t nlist[2];
	uint32_t next;	      /* next client of the current list to connect */
	uint32_t handshaking; /* connecting, awaiting CONNACK or SUBACK */
	uint32_t burst;
	struct client **pubs;
	uint32_t npubs;
	int64_t last_tick;
	uint8_t *rbuf; /* READ_CHUNK bytes: reads of clients with no partial packet pending */
	char err[160]; /* the first error, for the report */
	/* Written by this worker only; read by the main thread while it runs. */
	_Atomic uint64_t sent, m_sent, received, m_received, unique, ready, failed, open;
	_Atomic int64_t first_start[2]; /* the first connect() of each connect phase (0: none) */
	_Atomic int64_t last_done[2];	/* when the last handshake of each connect phase finished */
	/* Read by the main thread after joining. */
	uint64_t acked, dups, rejected, foreign, errors, tls_resumed;
	SSL_SESSION *resume; /* --tls-resume: the session later connections resume */
	struct vs_hist lat;
	struct vs_hist *by_pub; /* --by-publisher: lat by publisher id (pubs of them) */
};

struct bench {
	const struct vs_bench_conf *c;
	_Atomic int phase;
	_Atomic uint32_t stopped;	  /* workers that saw P_STOP */
	int64_t t_run, t_measure, t_stop; /* set before P_RUN is published */
	uint32_t runid;
	uint16_t keepalive;
	bool e2e;	 /* QoS > 0 publishers also wait for their messages to reach subscribers */
	uint32_t factor; /* deliveries per message (subscribers of one topic) */
	struct worker *w;
	struct client *cl;
	uint32_t ncl;
	struct vs_stream *shared; /* per publisher, for VS_BENCH_SHARED */
	pthread_mutex_t shared_mu;
};

static inline void bump(_Atomic uint64_t *a, uint64_t n)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t rd(_Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* ---- closing and failing ---- */

static void close_client(struct client *c)
{
	if (c->io.fd < 0)
		return;
	vs_loop_del(&c->w->loop, &c->io);
	if (c->ws) {
		c->ws->ops->close(c->ws); /* the socket and the session stay ours */
		free(c->ws);
		c->ws = NULL;
	}
	vs_tls_session_free(c->ssl);
	c->ssl = NULL;
	close(c->io.fd);
	c->io.fd = -1;
	c->state = C_CLOSED;
	vs_bytes_fini(&c->in);
	vs_bytes_fini(&c->out);
	bump(&c->w->open, (uint64_t)-1);
}

static void handshake_done(struct client *c, bool ok)
{
	struct worker *w = c->w;
	w->handshaking--;
	bump(ok ? &w->ready : &w->failed, 1);
	int k = c->role == R_SUB ? 0 : 1;
	atomic_store_explicit(&w->last_done[k], vs_now_ns(), memory_order_relaxed);
}

static void fail(struct client *c, const char *what, int err)
{
	struct worker *w = c->w;
	if (c->state == C_CLOSED)
		return;
	if (c->state == C_BYE) {
		/* After our DISCONNECT the broker closes at once, possibly while our last acks
		 * are on their way: a write or read error now is the end we asked for. */
		close_client(c);
		return;
	}
	if (!w->err[0])
		snprintf(w->err, sizeof(w->err), "%s %u: %s%s%s",
			 c->role == R_PUB   ? "publisher"
			 : c->role == R_SUB ? "subscriber"
					    : "client",
			 c->idx, what, err ? ": " : "", err ? vs_strerror(err) : "");
	w->errors++;
	if (c->state == C_TCP || c->state == C_TLS || c->state == C_WS || c->state == C_CONNACK ||
	    c->state == C_SUBACK)
		handshake_done(c, false);
	close_client(c);
}

/* ---- output ---- */

static bool qos0_full_speed(const struct client *c)
{
	const struct vs_bench_conf *cf = c->w->b->c;
	return c->role == R_PUB && cf->qos == 0 && cf->rate <= 0;
}

/* A failed TLS call: its reason when TLS said one, else the system error. */
static void fail_io(struct client *c, const char *what, ssize_t err, const char *why)
{
	char s[200];
	if (err != VIESTI_ETLS) {
		fail(c, what, (int)err);
		return;
	}
	snprintf(s, sizeof(s), "%s: %s", what, why);
	fail(c, s, 0);
}

/* One write of the head of the output: bytes taken, -EAGAIN, or an error (-errno, or
 * VIESTI_ETLS with why filled). */
static ssize_t write_out(struct client *c, char *why, size_t whylen)
{
	if (c->ws) {
		ssize_t n =
		    c->ws->ops->write(c->ws, vs_bytes_head(&c->out), vs_bytes_avail(&c->out));
		if (n < 0)
			snprintf(why, whylen, "%s", vs_transport_why(c->ws));
		return n;
	}
	if (c->ssl)
		return vs_tls_write(c->ssl, vs_bytes_head(&c->out), vs_bytes_avail(&c->out), why,
				    whylen);
	ssize_t n = send(c->io.fd, vs_bytes_head(&c->out), vs_bytes_avail(&c->out),
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n;
}

/* Writes what it can; keeps EPOLLOUT registered while output is pending (or while a QoS 0
 * full-speed publisher may write more). Returns 0, or -1 if the client failed. */
static int flush(struct client *c)
{
	while (vs_bytes_avail(&c->out) > 0) {
		char why[160];
		ssize_t n = write_out(c, why, sizeof(why));
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			fail_io(c, "write", n, why);
			return -1;
		}
		vs_bytes_consume(&c->out, (size_t)n);
	}
	uint32_t ev = EPOLLIN;
	if (vs_bytes_avail(&c->out) > 0 ||
	    (qos0_full_speed(c) && !c->blocked && c->w->phase == P_RUN && c->state == C_READY))
		ev |= EPOLLOUT;
	if (vs_loop_mod(&c->w->loop, &c->io, ev) < 0) {
		fail(c, "epoll", -errno);
		return -1;
	}
	return 0;
}

/* Encodes p onto the client's output. */
static int queue(struct client *c, const struct vs_packet *p)
{
	int version = c->w->b->c->version;
	ssize_t n = vs_codec_size(p, version);
	if (n < 0)
		return (int)n;
	int rc = vs_bytes_reserve(&c->out, (size_t)n);
	if (rc < 0)
		return rc;
	n = vs_codec_encode(p, version, c->out.data + c->out.len, c->out.cap - c->out.len);
	if (n < 0)
		return (int)n;
	c->out.len += (size_t)n;
	return 0;
}

static int queue_ack(struct client *c, int type, uint16_t id)
{
	struct vs_packet p = {.type = (uint8_t)type};
	p.ack.packet_id = id;
	return queue(c, &p);
}

/* ---- publishing ---- */

/* A free packet identifier (slot + 1), or 0 when the window is full. */
static uint16_t take_slot(struct client *c)
{
	if (c->inflight >= c->window)
		return 0;
	uint32_t cap = c->w->b->c->window;
	for (uint32_t i = 0; i < cap; i++) {
		uint32_t s = (c->cursor + i) % cap;
		if (!c->slots[s]) {
			c->slots[s] = 1;
			c->cursor = (s + 1) % cap;
			c->inflight++;
			return (uint16_t)(s + 1);
		}
	}
	return 0;
}

static void free_slot(struct client *c, uint16_t id)
{
	uint32_t cap = c->w->b->c->window;
	if (id == 0 || id > cap || !c->slots[id - 1])
		return;
	c->slots[id - 1] = 0;
	c->inflight--;
}

/*
 * The end-to-end window. A broker acknowledges a QoS 1 or 2 PUBLISH once it has taken the
 * message, not once a subscriber has it, and drops what overflows a subscriber's queue
 * (max_queued_messages): with the ack window alone, a full-speed publisher measures how fast
 * the broker can take messages it will then throw away. So when our own subscribers receive the
 * messages, a publisher also keeps at most `window` messages per subscriber between sending and
 * delivery. A delivery that never comes (the broker dropped it) would close the window for good:
 * after a second without progress the missing deliveries are written off (they count as lost).
 */
static bool e2e_room(struct client *c, int64_t now)
{
	struct bench *b = c->w->b;
	if (!b->e2e)
		return true;
	uint64_t done = atomic_load_explicit(&c->delivered, memory_order_relaxed) + c->written_off;
	uint64_t sent = c->seq * b->factor;
	if (sent < done + (uint64_t)c->window * b->factor) {
		c->stall_since = 0;
		return true;
	}
	if (c->stall_since == 0 || c->stall_mark != done) {
		c->stall_since = now;
		c->stall_mark = done;
		return false;
	}
	if (now - c->stall_since < 1000000000)
		return false;
	c->written_off += sent - done;
	c->stall_since = 0;
	return true;
}

/* Appends one PUBLISH. Returns false when a window is full or memory ran out. */
static bool publish_one(struct client *c, int64_t now)
{
	struct bench *b = c->w->b;
	uint16_t id = 0;
	if (!e2e_room(c, now))
		return false;
	if (b->c->qos > 0 && !(id = take_slot(c)))
		return false;
	if (vs_bytes_reserve(&c->out, c->tmpl_len) < 0)
		return false;
	uint8_t *p = c->out.data + c->out.len;
	memcpy(p, c->tmpl, c->tmpl_len);
	if (id) {
		p[c->pid_off] = (uint8_t)(id >> 8);
		p[c->pid_off + 1] = (uint8_t)id;
	}
	uint8_t *pay = p + c->pay_off;
	memcpy(pay, &now, 8);
	put32(pay + 8, c->idx);
	put32(pay + 12, (uint32_t)c->seq);
	c->out.len += c->tmpl_len;
	c->seq++;
	bump(&c->w->sent, 1);
	if (now >= b->t_measure)
		bump(&c->w->m_sent, 1);
	return true;
}

/* QoS 0 as fast as possible: write while the bytes queued in the kernel plus ours stay under the
 * bound; above it, stop and let the next tick look again, so the generator measures the broker
 * instead of filling socket buffers. */
static void pump_qos0(struct client *c, int64_t now)
{
	uint32_t bound = c->w->b->c->out_bound;
	if (vs_bytes_avail(&c->out) > 0)
		return;
	int queued = 0;
	if (ioctl(c->io.fd, SIOCOUTQ, &queued) < 0)
		queued = 0;
	if ((uint32_t)queued >= bound) {
		c->blocked = true;
		return;
	}
	c->blocked = false;
	uint32_t n = (bound - (uint32_t)queued) / c->tmpl_len;
	if (n == 0)
		n = 1;
	if (n > 1024)
		n = 1024;
	while (n-- && publish_one(c, now))
		;
}

/* Sends what is due: everything the window allows (full speed), or what the rate says by now. */
static void pump(struct client *c, int64_t now)
{
	struct bench *b = c->w->b;
	if (c->role != R_PUB || c->state != C_READY || c->w->phase != P_RUN || now >= b->t_stop)
		return;
	if (b->c->rate <= 0) {
		if (b->c->qos == 0)
			pump_qos0(c, now);
		else
			while (publish_one(c, now))
				;
		return;
	}
	double due = (double)(now - b->t_run) * 1e-9 * b->c->rate + c->offset;
	uint64_t target = due > 0 ? (uint64_t)due : 0;
	for (uint32_t burst = 0; c->seq < target && burst < 4096; burst++)
		if (!publish_one(c, now))
			break;
}

/* ---- receiving ---- */

static struct vs_stream *stream_of(struct streams *st, uint32_t id)
{
	if (id >= MAX_PUB_ID)
		return NULL;
	if (st->n == 0 || id < st->lo || id >= st->lo + st->n) {
		uint32_t lo = st->n == 0 ? id : (id < st->lo ? id : st->lo);
		uint32_t hi =
		    st->n == 0 ? id + 1 : (id >= st->lo + st->n ? id + 1 : st->lo + st->n);
		struct vs_stream **v = calloc(hi - lo, sizeof(*v));
		if (!v)
			return NULL;
		for (uint32_t i = 0; i < st->n; i++)
			v[st->lo - lo + i] = st->v[i];
		free(st->v);
		st->v = v;
		st->lo = lo;
		st->n = hi - lo;
	}
	struct vs_stream **slot = &st->v[id - st->lo];
	if (!*slot && (*slot = malloc(sizeof(**slot))))
		vs_stream_init(*slot);
	return *slot;
}

static bool see(struct client *c, uint32_t id, uint32_t seq)
{
	struct bench *b = c->w->b;
	if (b->shared) {
		if (id >= b->c->pubs)
			return false;
		pthread_mutex_lock(&b->shared_mu);
		bool fresh = vs_stream_see(&b->shared[id], seq);
		pthread_mutex_unlock(&b->shared_mu);
		return fresh;
	}
	struct vs_stream *s = stream_of(&c->st, id);
	return s && vs_stream_see(s, seq);
}

static void on_message(struct client *c, const struct vs_publish *p, int64_t now)
{
	struct worker *w = c->w;
	struct bench *b = w->b;
	bump(&w->received, 1);
	if (w->phase >= P_RUN && now >= b->t_measure && now < b->t_stop)
		bump(&w->m_received, 1);
	if (p->payload.len < 16) {
		w->foreign++;
		return;
	}
	int64_t ts;
	uint32_t id, seq;
	memcpy(&ts, p->payload.p, 8);
	memcpy(&id, p->payload.p + 8, 4);
	memcpy(&seq, p->payload.p + 12, 4);
	if (ts > now || now - ts > 3600ll * 1000000000) {
		w->foreign++;
		return;
	}
	if (see(c, id, seq)) {
		bump(&w->unique, 1);
		if (b->e2e && id < b->c->pubs)
			atomic_fetch_add_explicit(&b->cl[b->c->subs + id].delivered, 1,
						  memory_order_relaxed);
	} else {
		w->dups++;
	}
	if (w->phase >= P_RUN && ts >= b->t_measure && ts < b->t_stop) {
		vs_hist_record(&w->lat, (uint64_t)(now - ts));
		if (w->by_pub && id < b->c->pubs)
			vs_hist_record(&w->by_pub[id], (uint64_t)(now - ts));
	}
}

/* --tls-resume: counts a resumed handshake, and keeps the first resumable session (by the time
 * the CONNACK is read, a TLS 1.3 server's tickets have been read too). */
static void keep_session(struct client *c)
{
	struct worker *w = c->w;
	if (SSL_session_reused(c->ssl))
		w->tls_resumed++;
	if (w->resume)
		return;
	SSL_SESSION *s = SSL_get1_session(c->ssl);
	if (s && SSL_SESSION_is_resumable(s))
		w->resume = s;
	else
		SSL_SESSION_free(s);
}

static int on_connack(struct client *c, const struct vs_connack *ca)
{
	struct bench *b = c->w->b;
	if (c->state != C_CONNACK)
		return VS_EPROTO;
	if (ca->reason != 0) {
		char why[48];
		snprintf(why, sizeof(why), "CONNACK refused (0x%02x)", ca->reason);
		fail(c, why, 0);
		return -1;
	}
	if (c->ssl && b->c->tls_resume)
		keep_session(c);
	if (b->c->version == VS_V5 && (ca->props.present & (1ull << VS_PROP_RECEIVE_MAX)) &&
	    ca->props.receive_max < c->window)
		c->window = ca->props.receive_max;
	if (c->role != R_SUB) {
		c->state = C_READY;
		handshake_done(c, true);
		return 0;
	}
	struct vs_sub_entry e = {
	    .filter = {(const uint8_t *)c->filter, strlen(c->filter)},
	    .qos = (uint8_t)b->c->qos,
	};
	struct vs_packet p = {.type = VS_SUBSCRIBE};
	p.subscribe.packet_id = 1;
	p.subscribe.count = 1;
	p.subscribe.entries = &e;
	c->state = C_SUBACK;
	return queue(c, &p);
}

static int on_suback(struct client *c, const struct vs_suback *sa)
{
	if (c->state != C_SUBACK)
		return VS_EPROTO;
	if (sa->count < 1 || sa->codes[0] >= 0x80) {
		fail(c, "SUBSCRIBE refused", 0);
		return -1;
	}
	c->state = C_READY;
	handshake_done(c, true);
	return 0;
}

/* A PUBACK, PUBREC or PUBCOMP for one of our messages. */
static int on_pub_ack(struct client *c, int type, const struct vs_ack *a)
{
	struct worker *w = c->w;
	uint32_t cap = w->b->c->window;
	if (a->packet_id == 0 || a->packet_id > cap || !c->slots[a->packet_id - 1])
		return 0; /* not ours, or already settled */
	if (a->reason >= 0x80) {
		w->rejected++;
		free_slot(c, a->packet_id);
		return 0;
	}
	if (type == VS_PUBREC) {
		c->slots[a->packet_id - 1] = 2;
		return queue_ack(c, VS_PUBREL, a->packet_id);
	}
	free_slot(c, a->packet_id);
	w->acked++;
	return 0;
}

static int on_packet(struct client *c, const struct vs_packet *p, int64_t now)
{
	switch (p->type) {
	case VS_CONNACK:
		return on_connack(c, &p->connack);
	case VS_SUBACK:
		return on_suback(c, &p->suback);
	case VS_PUBLISH:
		on_message(c, &p->publish, now);
		if (p->publish.qos == 1)
			return queue_ack(c, VS_PUBACK, p->publish.packet_id);
		if (p->publish.qos == 2)
			return queue_ack(c, VS_PUBREC, p->publish.packet_id);
		return 0;
	case VS_PUBREL:
		return queue_ack(c, VS_PUBCOMP, p->ack.packet_id);
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBCOMP:
		return on_pub_ack(c, p->type, &p->ack);
	case VS_DISCONNECT: {
		char why[48];
		snprintf(why, sizeof(why), "DISCONNECT from the broker (0x%02x)",
			 p->disconnect.reason);
		fail(c, why, 0);
		return -1;
	}
	default:
		return 0;
	}
}

/* Decodes and handles the whole packets in buf. Returns the bytes consumed, or -1 if the client
 * failed (it is closed). */
static ssize_t parse(struct client *c, const uint8_t *buf, size_t len, int64_t now)
{
	struct vs_decode_opts opts = {.version = (uint8_t)c->w->b->c->version};
	size_t off = 0;
	while (off < len) {
		struct vs_packet p;
		enum vs_reason why;
		ssize_t k = vs_codec_decode(buf + off, len - off, &opts, &p, &why);
		if (k == 0)
			break;
		if (k < 0) {
			char what[48];
			snprintf(what, sizeof(what), "malformed packet from the broker (0x%02x)",
				 why);
			fail(c, what, 0);
			return -1;
		}
		int rc = on_packet(c, &p, now);
		if (c->state == C_CLOSED)
			return -1;
		if (rc < 0) {
			fail(c, "protocol", rc);
			return -1;
		}
		off += (size_t)k;
	}
	return (ssize_t)off;
}

/* One read of up to READ_CHUNK bytes (whole TLS records): bytes, 0 at the end of the stream,
 * -EAGAIN, or an error (-errno, or VIESTI_ETLS with why filled). */
static ssize_t read_in(struct client *c, uint8_t *dst, char *why, size_t whylen)
{
	if (c->ws) {
		ssize_t n = c->ws->ops->read(c->ws, dst, READ_CHUNK);
		if (n < 0)
			snprintf(why, whylen, "%s", vs_transport_why(c->ws));
		return n;
	}
	if (c->ssl)
		return vs_tls_read(c->ssl, dst, READ_CHUNK, why, whylen);
	ssize_t n = recv(c->io.fd, dst, READ_CHUNK, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
	return n;
}

/* One read per wake-up. A client with no partial packet reads into the worker's buffer, so ten
 * thousand idle connections hold no input memory. Returns 0, or -1 if the client is closed. */
static int read_input(struct client *c)
{
	struct worker *w = c->w;
	bool direct = vs_bytes_avail(&c->in) == 0;
	uint8_t *dst = w->rbuf;
	if (!direct) {
		if (vs_bytes_reserve(&c->in, READ_CHUNK) < 0) {
			fail(c, "out of memory", -ENOMEM);
			return -1;
		}
		dst = c->in.data + c->in.len;
	}
	char why[160];
	ssize_t n = read_in(c, dst, why, sizeof(why));
	if (n == -EAGAIN)
		return 0;
	if (n < 0) {
		if (c->state == C_BYE) {
			close_client(c);
			return -1;
		}
		fail_io(c, "read", n, why);
		return -1;
	}
	if (n == 0) {
		if (c->state == C_BYE)
			close_client(c); /* the broker closed after our DISCONNECT: a clean end */
		else
			fail(c, "closed by the broker", 0);
		return -1;
	}
	int64_t now = vs_now_ns();
	if (direct) {
		ssize_t k = parse(c, dst, (size_t)n, now);
		if (k < 0)
			return -1;
		if (k < n && vs_bytes_append(&c->in, dst + k, (size_t)(n - k)) < 0) {
			fail(c, "out of memory", -ENOMEM);
			return -1;
		}
	} else {
		c->in.len += (size_t)n;
		ssize_t k = parse(c, vs_bytes_head(&c->in), vs_bytes_avail(&c->in), now);
		if (k < 0)
			return -1;
		vs_bytes_consume(&c->in, (size_t)k);
		vs_bytes_shrink(&c->in, 0);
	}
	if (c->role == R_PUB && w->b->c->qos > 0)
		pump(c, now); /* acks opened the window */
	return 0;
}

/* ---- connecting ---- */

static int send_connect(struct client *c)
{
	struct bench *b = c->w->b;
	char id[40];
	snprintf(id, sizeof(id), "vb%08x-%c%u", b->runid,
		 c->role == R_PUB   ? 'p'
		 : c->role == R_SUB ? 's'
				    : 'c',
		 c->idx);
	struct vs_packet p = {.type = VS_CONNECT};
	p.connect.version = (uint8_t)b->c->version;
	p.connect.clean = !b->c->persistent;
	if (b->c->persistent && b->c->version == VS_V5) {
		p.connect.props.present |= 1ull << VS_PROP_SESSION_EXPIRY;
		p.connect.props.session_expiry = 3600;
	}
	p.connect.keepalive = b->keepalive;
	p.connect.client_id = (struct vs_buf){(const uint8_t *)id, strlen(id)};
	c->state = C_CONNACK;
	return queue(c, &p);
}

static void on_io(struct vs_io *io, uint32_t events);

static void start_connect(struct client *c)
{
	struct worker *w = c->w;
	const struct vs_bench_conf *cf = w->b->c;
	int k = c->role == R_SUB ? 0 : 1;
	if (!atomic_load_explicit(&w->first_start[k], memory_order_relaxed))
		atomic_store_explicit(&w->first_start[k], vs_now_ns(), memory_order_relaxed);
	w->handshaking++;
	c->state = C_TCP;
	int fd = socket(cf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail(c, "socket", -errno);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->io.fd = fd;
	c->io.fn = on_io;
	bump(&w->open, 1);
	if (vs_loop_add(&w->loop, &c->io, EPOLLOUT) < 0) {
		fail(c, "epoll", -errno);
		return;
	}
	bool other = c->role == R_SUB && cf->sub_addrlen;
	const struct sockaddr_storage *to = other ? &cf->sub_addr : &cf->addr;
	if (connect(fd, (const struct sockaddr *)to, other ? cf->sub_addrlen : cf->addrlen) < 0 &&
	    errno != EINPROGRESS)
		fail(c, "connect", -errno);
}

static void mqtt_connect(struct client *c)
{
	int rc = send_connect(c);
	if (rc < 0) {
		fail(c, "encode CONNECT", rc);
		return;
	}
	flush(c);
}

/* ---- --ws-path: MQTT over WebSocket ---- */

/* The WebSocket transport runs over a borrowed transport: the client's own socket, or its TLS
 * session, which the client keeps, resumes and closes itself. */
static ssize_t borrowed_read(struct vs_transport *t, void *buf, size_t len)
{
	struct client *c = t->state;
	if (c->ssl) {
		char why[160];
		return vs_tls_read(c->ssl, buf, len, why, sizeof(why));
	}
	ssize_t n = recv(c->io.fd, buf, len, MSG_DONTWAIT);
	return n < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : n;
}

static ssize_t borrowed_write(struct vs_transport *t, const void *buf, size_t len)
{
	struct client *c = t->state;
	if (c->ssl) {
		char why[160];
		return vs_tls_write(c->ssl, buf, len, why, sizeof(why));
	}
	ssize_t n = send(c->io.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : n;
}

static bool borrowed_more(const struct vs_transport *t)
{
	const struct client *c = t->state;
	return c->ssl && SSL_has_pending(c->ssl);
}

static void borrowed_close(struct vs_transport *t)
{
	t->fd = -1;
}

static const struct vs_transport_ops borrowed = {
    .name = "bench",
    .read = borrowed_read,
    .write = borrowed_write,
    .close = borrowed_close,
    .more = borrowed_more,
};

/* Steps the upgrade; waits for the event it asks for, then sends CONNECT. */
static void ws_step(struct client *c)
{
	int rc = c->ws->ops->finish(c->ws);
	if (rc == 0)
		mqtt_connect(c);
	else if (rc != -EAGAIN)
		fail_io(c, "WebSocket upgrade", VIESTI_ETLS, vs_transport_why(c->ws));
	else if (vs_loop_mod(&c->w->loop, &c->io, c->ws->wait) < 0)
		fail(c, "epoll", -errno);
}

static void ws_start(struct client *c)
{
	const struct vs_bench_conf *cf = c->w->b->c;
	struct vs_transport inner = {.ops = &borrowed, .state = c, .fd = c->io.fd};
	int port = ntohs(cf->addr.ss_family == AF_INET6
			     ? ((const struct sockaddr_in6 *)&cf->addr)->sin6_port
			     : ((const struct sockaddr_in *)&cf->addr)->sin_port);
	c->ws = calloc(1, sizeof(*c->ws));
	if (!c->ws || vs_transport_ws_client(c->ws, &inner, cf->host ? cf->host : "localhost", port,
					     cf->ws_path, NULL) < 0) {
		free(c->ws);
		c->ws = NULL;
		fail(c, "out of memory", -ENOMEM);
		return;
	}
	c->state = C_WS;
	ws_step(c);
}

/* After TCP (and TLS): the upgrade, or straight to CONNECT. */
static void transport_ready(struct client *c)
{
	if (c->w->b->c->ws_path)
		ws_start(c);
	else
		mqtt_connect(c);
}

/* Steps the TLS handshake; waits for the event OpenSSL asks for, then sends CONNECT. */
static void tls_step(struct client *c)
{
	uint32_t wait = EPOLLIN;
	char why[160];
	int rc = vs_tls_handshake(c->ssl, &wait, why, sizeof(why));
	if (rc == 0) {
		transport_ready(c);
	} else if (rc != -EAGAIN) {
		fail_io(c, "TLS handshake", rc, why);
	} else if (vs_loop_mod(&c->w->loop, &c->io, wait) < 0) {
		fail(c, "epoll", -errno);
	}
}

static void tcp_connected(struct client *c)
{
	const struct vs_bench_conf *cf = c->w->b->c;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fail(c, "connect", -err);
		return;
	}
	if (!cf->tls) {
		transport_ready(c);
		return;
	}
	char why[160];
	int rc = vs_tls_session_new(cf->tls, c->io.fd, cf->host, &c->ssl, why, sizeof(why));
	if (rc < 0) {
		fail_io(c, "TLS", rc, why);
		return;
	}
	if (c->w->resume)
		SSL_set_session(c->ssl, c->w->resume);
	c->state = C_TLS;
	tls_step(c);
}

static void on_io(struct vs_io *io, uint32_t events)
{
	struct client *c = (struct client *)((char *)io - offsetof(struct client, io));
	if (c->state == C_TCP) {
		tcp_connected(c);
		return;
	}
	if (c->state == C_TLS) {
		tls_step(c);
		return;
	}
	if (c->state == C_WS) {
		ws_step(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && read_input(c) < 0)
		return;
	if ((events & EPOLLOUT) && qos0_full_speed(c) && vs_bytes_avail(&c->out) == 0)
		pump(c, vs_now_ns());
	flush(c);
}

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
			pump(w->pubs[i], now);
			if (w->pubs[i]->state == C_READY)
				flush(w->pubs[i]);
		}
	}
	if (phase == P_STOP) {
		for (uint32_t i = 0; i < w->npubs; i++)
			if (w->pubs[i]->state == C_READY)
				flush(w->pubs[i]); /* drops EPOLLOUT interest of QoS 0 publishers */
		atomic_fetch_add_explicit(&b->stopped, 1, memory_order_release);
	}
	if (phase == P_BYE) {
		struct vs_packet p = {.type = VS_DISCONNECT};
		for (uint32_t k = 0; k < 2; k++)
			for (uint32_t i = 0; i < w->nlist[k]; i++) {
				struct client *c = w->lists[k][i];
				if (c->state == C_CLOSED || c->state == C_NEW)
					continue;
				if (c->state != C_READY || queue(c, &p) < 0) {
					close_client(c);
					continue;
				}
				c->state = C_BYE;
				flush(c);
			}
	}
}

static void tick(struct worker *w)
{
	int k = w->phase == P_SUBS ? 0 : 1;
	if (w->phase <= P_RUN) {
		while (w->handshaking < w->burst && w->next < w->nlist[k])
			start_connect(w->lists[k][w->next++]);
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
		pump(c, now);
		if (c->out.len != before || c->blocked != was_blocked || vs_bytes_avail(&c->out))
			flush(c);
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
			close_client(w->lists[k][i]);
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
