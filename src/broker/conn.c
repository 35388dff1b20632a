/*
 * Connections: see conn.h. Reading (one read per wake-up, as much as fits), decoding whole
 * packets in place, the dispatch switch, output and closing.
 */
#include "base/vec.h"
#include "broker/conn.h"
#include "broker/cluster_session.h"
#include "broker/cluster_js.h"
#include "broker/trace.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "net/tls.h"
#include "broker/http.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "session/session.h"
#include "topic/tree.h"

/* Output above this many bytes stops draining the session queue until the socket catches up. */
#define OUT_HIGH_WATER (256 * 1024)
/* Input is read in chunks of at least this. */
#define READ_CHUNK (16 * 1024)

static void on_io(struct vs_io *io, uint32_t events);

static int take_slot(struct vs_worker *w, struct vs_conn *c)
{
	if (w->n_free) {
		c->slot = w->free_slots[--w->n_free];
	} else {
		/* Two arrays of one capacity: the free list can hold every slot. */
		uint32_t cap = w->cap_slots, fcap = w->cap_slots;
		if (VS_VEC_GROW(w->conns, cap, w->n_slots + 1, 64) < 0 ||
		    VS_VEC_GROW(w->free_slots, fcap, w->n_slots + 1, 64) < 0)
			return -ENOMEM; /* what grew stays, at the old capacity */
		w->cap_slots = cap < fcap ? cap : fcap;
		c->slot = w->n_slots++;
	}
	w->conns[c->slot] = c;
	w->n_conns++;
	return 0;
}

static void init_conn(struct vs_conn *c, struct vs_worker *w, struct vs_listener *l, int fd,
		      const char *addr)
{
	c->io.fd = fd;
	c->w = w;
	c->listener = l;
	c->id = ++w->next_conn_id;
	c->last_rx_ms = w->now_ms;
	c->request_problem_info = true;
	snprintf(c->addr, c->addr_room, "%s", addr);
}

/* A zeroed connection with room for addr (see vs_conn.addr). */
static struct vs_conn *conn_alloc(const char *addr, bool forwardable)
{
	size_t room = forwardable ? VS_CONN_ADDR_MAX : strnlen(addr, VS_CONN_ADDR_MAX - 1) + 1;
	struct vs_conn *c = calloc(1, offsetof(struct vs_conn, addr) + room);
	if (c)
		c->addr_room = (uint8_t)room;
	return c;
}

/* The connection's transport: TLS when its listener has a context, else the plain stream; under
 * a WebSocket on a websockets listener. */
static int make_transport(struct vs_conn *c, struct vs_listener *l, int fd)
{
	struct vs_transport inner;
	SSL_CTX *ctx = vs_listener_tls_get(l);
	int rc = 0;
	if (!ctx) {
		vs_transport_accept_tcp(&inner, fd);
	} else {
		rc = vs_transport_tls_accept(&inner, fd, ctx);
		SSL_CTX_free(ctx); /* the session holds its own reference */
		if (rc < 0)
			return rc;
	}
	if (!l->ws) {
		c->tp = inner;
		return 0;
	}
	rc = vs_transport_ws_accept(&c->tp, &inner, &l->ws_conf);
	if (rc < 0) {
		inner.fd = -1; /* the caller closes fd */
		inner.ops->close(&inner);
	}
	return rc;
}

int vs_conn_accept(struct vs_worker *w, struct vs_listener *l, int fd, const char *addr)
{
	struct vs_conn *c = conn_alloc(addr, l->ws);
	if (!c || make_transport(c, l, fd) < 0) {
		free(c);
		close(fd);
		return -ENOMEM;
	}
	if ((l->http && vs_http_conn_start(c) < 0) || take_slot(w, c) < 0) {
		vs_http_conn_free(c);
		c->tp.ops->close(&c->tp);
		free(c);
		return -ENOMEM;
	}
	init_conn(c, w, l, fd, addr);
	c->io.fn = on_io;
	uint32_t ev = EPOLLRDHUP | EPOLLET | (c->tp.wait ? c->tp.wait : EPOLLIN);
	if (vs_loop_add(&w->loop, &c->io, ev) < 0) {
		int rc = -errno;
		w->conns[c->slot] = NULL;
		w->free_slots[w->n_free++] = c->slot;
		w->n_conns--;
		vs_http_conn_free(c);
		c->tp.ops->close(&c->tp);
		free(c);
		return rc;
	}
	atomic_fetch_add(&l->connections, 1);
	atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
	atomic_fetch_add(&w->b->connections, 1);
	if (w->b->log->mosquitto && w->b->conf->connection_messages)
		vs_log(w->b->log, VS_LOG_NOTICE, "New connection from %s on port %d.", addr,
		       l->conf->port);
	return 0;
}

struct vs_conn *vs_conn_virtual(struct vs_worker *w, struct vs_listener *l, const char *addr,
				int (*open)(struct vs_transport *tp, struct vs_conn *c, void *arg),
				void *arg)
{
	struct vs_conn *c = conn_alloc(addr, false);
	if (!c)
		return NULL;
	if (open(&c->tp, c, arg) < 0) {
		free(c);
		return NULL;
	}
	if (take_slot(w, c) < 0) {
		c->tp.ops->close(&c->tp);
		free(c);
		return NULL;
	}
	init_conn(c, w, l, -1, addr);
	atomic_fetch_add(&l->connections, 1);
	atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
	atomic_fetch_add(&w->b->connections, 1);
	return c;
}

int vs_conn_send(struct vs_conn *c, const struct vs_packet *p)
{
	int version = c->version ? c->version : VS_V311;
	ssize_t n = vs_codec_size(p, version);
	if (n < 0)
		return (int)n;
	/* [MQTT-3.1.2-24] never send a packet larger than the client's Maximum Packet Size. */
	if (c->client_max_packet && (uint64_t)n > c->client_max_packet)
		return VS_ETOOBIG;
	int rc = vs_bytes_reserve(&c->out, (size_t)n);
	if (rc < 0)
		return rc;
	n = vs_codec_encode(p, version, c->out.data + c->out.len, (size_t)n);
	if (n < 0)
		return (int)n;
	c->out.len += (size_t)n;
	if (vs_trace_on(c->w->b->log))
		vs_trace_out(c, p);
	if (p->type == VS_CONNACK)
		c->release_out = true; /* most connections then idle (see vs_conn_flush) */
	/* What acknowledges records of this turn, a PUBREL, and a CONNACK (the session's records,
	 * its will's, may follow it in the same turn) wait for the sync (worker.c). */
	if ((c->durable_pending || p->type == VS_PUBREL || p->type == VS_CONNACK) &&
	    c->w->b->store_async)
		c->needs_sync = true;
	vs_stat_add(&c->w->stats.msgs_sent, 1);
	vs_worker_want_flush(c->w, c);
	return 0;
}

int vs_conn_send_ack(struct vs_conn *c, int type, uint16_t id, uint8_t reason)
{
	struct vs_packet p = {.type = (uint8_t)type};
	p.ack.packet_id = id;
	p.ack.reason = reason;
	return vs_conn_send(c, &p);
}

enum vs_handled vs_conn_reply(struct vs_conn *c, const struct vs_packet *p)
{
	int rc = vs_conn_send(c, p);
	if (rc == 0)
		return VS_GO_ON;
	char why[128];
	if (rc == VS_ETOOBIG)
		snprintf(why, sizeof(why),
			 "%s not sent: larger than the client's Maximum Packet Size "
			 "(%u)",
			 vs_packet_name(p->type), c->client_max_packet);
	else
		snprintf(why, sizeof(why), "%s not sent: %s", vs_packet_name(p->type),
			 vs_strerror(rc));
	vs_conn_close(c, rc == VS_ETOOBIG ? VS_RC_PACKET_TOO_LARGE : VS_RC_SERVER_BUSY, why);
	return VS_CLOSED;
}

enum vs_handled vs_conn_reply_ack(struct vs_conn *c, int type, uint16_t id, uint8_t reason)
{
	struct vs_packet p = {.type = (uint8_t)type};
	p.ack.packet_id = id;
	p.ack.reason = reason;
	return vs_conn_reply(c, &p);
}

/* What the transport says of its last failure, or the error code's text. */
static const char *transport_why(const struct vs_conn *c, int err)
{
	const char *w = vs_transport_why(&c->tp);
	return w[0] ? w : vs_strerror(err);
}

/*
 * A connection whose output waits for the socket is blocked from then on; any write clears it.
 * A client blocked for STALL_MS is not reading (its socket buffer is full): its session is marked
 * stalled, so that its queue's limit holds at once and its publishers are not slowed down for
 * it (router.c, overshoot), and the sweep disconnects it past max_unsent_bytes.
 */
enum { STALL_MS = 200 };

static void set_stalled(struct vs_conn *c, bool stalled)
{
	if (c->session && __atomic_load_n(&c->session->stalled, __ATOMIC_RELAXED) != stalled)
		__atomic_store_n(&c->session->stalled, stalled, __ATOMIC_RELAXED);
}

static void note_progress(struct vs_conn *c, bool wrote, bool pending)
{
	if (wrote && c->blocked_since_ms) {
		c->blocked_since_ms = 0;
		set_stalled(c, false);
	}
	if (pending && !c->blocked_since_ms)
		c->blocked_since_ms = c->w->now_ms ? c->w->now_ms : 1;
}

void vs_conn_check_stall(struct vs_conn *c)
{
	if (!c->blocked_since_ms || c->w->now_ms - c->blocked_since_ms < STALL_MS || !c->session)
		return;
	set_stalled(c, true);
	uint64_t cap = c->w->b->conf->max_unsent_bytes;
	if (!cap)
		return;
	pthread_mutex_lock(&c->session->lock);
	uint64_t unsent = vs_bytes_avail(&c->out) + c->session->queued_bytes;
	pthread_mutex_unlock(&c->session->lock);
	if (unsent <= cap)
		return;
	char why[128];
	snprintf(why, sizeof(why),
		 "not reading: %llu bytes unsent for %lld ms (max_unsent_bytes "
		 "%llu)",
		 (unsigned long long)unsent, (long long)(c->w->now_ms - c->blocked_since_ms),
		 (unsigned long long)cap);
	vs_conn_close(c, VS_RC_QUOTA_EXCEEDED, why);
}

/* Bytes of c's output that may be written now (none of it held). */
static size_t out_ready(const struct vs_conn *c)
{
	if (c->hold && c->hold->seq_a)
		return c->hold->ok;
	return vs_bytes_avail(&c->out);
}

bool vs_conn_flush_begin(struct vs_conn *c, size_t *ready)
{
	if (vs_bytes_avail(&c->out) == 0)
		return false;
	if (c->tp.wait)
		return false; /* the handshake is not done: written once it is */
	*ready = out_ready(c);
	return true;
}

void vs_conn_flush(struct vs_conn *c)
{
	size_t ready;
	if (!vs_conn_flush_begin(c, &ready))
		return;
	ssize_t n = ready ? c->tp.ops->write(&c->tp, vs_bytes_head(&c->out), ready) : 0;
	vs_conn_flush_written(c, n);
	vs_conn_flush_end(c, n, ready);
}

void vs_conn_flush_written(struct vs_conn *c, ssize_t n)
{
	if (n <= 0)
		return;
	struct vs_hold *h = c->hold;
	if (h && h->seq_a)
		h->ok -= (size_t)n;
	else
		c->durable_pending = false;
	vs_bytes_consume(&c->out, (size_t)n);
	vs_stat_add(&c->w->stats.bytes_sent, (uint64_t)n);
	vs_stat_add(&c->bytes_out, (uint64_t)n);
}

void vs_conn_flush_end(struct vs_conn *c, ssize_t n, size_t ready)
{
	if (n < 0 && n != -EAGAIN && n != -EINTR) {
		c->out.off = c->out.len = 0; /* nothing more can be written */
		char why[192];
		snprintf(why, sizeof(why), "write error: %s", transport_why(c, (int)n));
		vs_conn_close(c, -1, why);
		return;
	}
	/* Held bytes wait for the store, not for the socket: not blocked. */
	bool pending = (size_t)(n > 0 ? n : 0) < ready;
	note_progress(c, n > 0, pending);
	if (c->state != VS_CONN_CLOSING)
		vs_conn_update_events(c);
	if (c->hold)
		c->hold->seen = vs_bytes_avail(&c->out);
	if (!vs_bytes_avail(&c->out)) {
		/* The buffer that held only a CONNACK is given back at once, so that a burst of
		 * new, then idle connections does not hold one each until the sweep; busy
		 * connections keep theirs, up to 64 KiB. */
		vs_bytes_shrink(&c->out, c->release_out ? 0 : 64 * 1024);
		c->release_out = false;
		if (c->want_drain && c->session) {
			c->want_drain = false;
			vs_worker_want_drain(c->w, c->session);
		}
		if (c->http)
			vs_http_flushed(c); /* may close c */
	}
}

int vs_conn_hold(struct vs_conn *c, uint64_t seq)
{
	size_t avail = vs_bytes_avail(&c->out);
	if (!avail)
		return 0;
	if (!c->hold && !(c->hold = calloc(1, sizeof(*c->hold))))
		return -ENOMEM;
	struct vs_hold *h = c->hold;
	if (!h->seq_a) {
		/* What was unsent at the last flush is not this turn's: it may go. */
		size_t old = h->seen < avail ? h->seen : avail;
		if (old == avail)
			return 0;
		h->ok = old;
		h->a = avail - old;
		h->seq_a = seq;
		h->b = h->seq_b = 0;
		return 1;
	}
	size_t covered = h->ok + h->a + h->b;
	if (avail <= covered)
		return 1;
	if (!h->seq_b && seq <= h->seq_a) {
		h->a += avail - covered;
	} else {
		h->b += avail - covered;
		if (seq > h->seq_b)
			h->seq_b = seq;
	}
	return 1;
}

int vs_conn_release(struct vs_conn *c, uint64_t synced, uint64_t failed)
{
	struct vs_hold *h = c->hold;
	int rc = 0;
	while (h->seq_a) {
		if (h->seq_a <= failed || (h->seq_b && h->seq_b <= failed))
			return -1;
		if (h->seq_a > synced)
			break;
		h->ok += h->a;
		h->a = h->b;
		h->seq_a = h->seq_b;
		h->b = h->seq_b = 0;
		rc = 1;
	}
	if (!h->seq_a)
		h->ok = h->a = 0;
	return rc;
}

void vs_conn_update_events(struct vs_conn *c)
{
	/* Edge-triggered: a read that fills its buffer puts c on the worker's reread list (the
	 * socket may hold more); a shorter read emptied it, and new data brings a new edge. A
	 * change of interest (un-park, end of a throttle) re-arms the edge if data is waiting.
	 * EPOLLRDHUP: the peer's close can arrive with its last data, in one edge; a short read
	 * then takes the data, and only the next read sees the end (on_io reads it). */
	if (c->io.fd < 0)
		return; /* virtual: its owner feeds it */
	uint32_t ev = EPOLLET | EPOLLRDHUP | (c->parked || c->throttled ? 0 : EPOLLIN);
	if (out_ready(c))
		ev |= EPOLLOUT;
	if (c->tp.wait)
		ev = EPOLLET | EPOLLRDHUP | c->tp.wait; /* a handshake waits for what it asked */
	vs_loop_mod(&c->w->loop, &c->io, ev);
}

bool vs_conn_throttle(struct vs_conn *c, int64_t until_ms, const void *key)
{
	struct vs_worker *w = c->w;
	if (c->throttled)
		return false;
	if (VS_VEC_GROW(w->throttled, w->cap_throttled, w->n_throttled + 1, 16) < 0)
		return false; /* not throttled: the queues' hard limits still hold */
	w->throttled[w->n_throttled++] = (struct vs_paused){.c = c, .key = key};
	atomic_store_explicit(&w->any_paused, true, memory_order_relaxed);
	c->throttled = true;
	c->throttle_until_ms = until_ms;
	vs_conn_update_events(c);
	return true;
}

bool vs_conn_out_full(const struct vs_conn *c);
bool vs_conn_out_full(const struct vs_conn *c)
{
	return vs_bytes_avail(&c->out) >= OUT_HIGH_WATER;
}

static enum vs_handled dispatch(struct vs_conn *c, const struct vs_packet *p)
{
	if (vs_trace_on(c->w->b->log))
		vs_trace_in(c, p);
	if (c->state == VS_CONN_NEW && !c->connecting && p->type != VS_CONNECT) {
		/* [MQTT-3.1.0-1] the first packet must be CONNECT. */
		vs_conn_close(c, -1, "first packet is not CONNECT");
		return VS_CLOSED;
	}
	if (c->state == VS_CONN_NEW && c->connecting && p->type != VS_AUTH &&
	    p->type != VS_DISCONNECT) {
		/* [MQTT-3.1.2-30] before its CONNACK a client sends only AUTH or DISCONNECT. */
		vs_conn_close(c, VS_RC_PROTOCOL_ERROR, "packet before CONNACK");
		return VS_CLOSED;
	}
	switch (p->type) {
	case VS_CONNECT:
		if (c->state != VS_CONN_NEW) {
			/* [MQTT-3.1.0-2] a second CONNECT is a protocol error. */
			vs_conn_close(c, VS_RC_PROTOCOL_ERROR, "second CONNECT");
			return VS_CLOSED;
		}
		return vs_on_connect(c, &p->connect);
	case VS_PUBLISH:
		return vs_on_publish(c, &p->publish);
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		return vs_on_ack(c, p->type, &p->ack);
	case VS_SUBSCRIBE:
		return vs_on_subscribe(c, &p->subscribe);
	case VS_UNSUBSCRIBE:
		return vs_on_unsubscribe(c, &p->unsubscribe);
	case VS_PINGREQ: {
		struct vs_packet r = {.type = VS_PINGRESP};
		return vs_conn_reply(c, &r);
	}
	case VS_DISCONNECT:
		return vs_on_disconnect(c, &p->disconnect);
	case VS_AUTH:
		return vs_on_auth(c, &p->disconnect);
	default:
		/* CONNACK, SUBACK, UNSUBACK, PINGRESP from a client. */
		vs_conn_close(c, VS_RC_PROTOCOL_ERROR, "packet type not allowed from a client");
		return VS_CLOSED;
	}
}

/* The protocol level byte of a CONNECT at the head of b, or 0. */
static int connect_level(const struct vs_bytes *b)
{
	const uint8_t *p = vs_bytes_head(b);
	size_t n = vs_bytes_avail(b), hl = 1;
	while (hl < n && hl < 5 && (p[hl] & 0x80))
		hl++;
	hl++;
	if (hl + 2 > n)
		return 0;
	size_t at = hl + 2 + (((size_t)p[hl] << 8) | p[hl + 1]);
	return at < n ? p[at] : 0;
}

/* The largest packet c may send now: before its CONNECT is handled, max_connect_packet_size
 * also applies, so an unauthenticated client cannot make the broker hold a packet of
 * max_packet_size (or, without it, 256 MB). */
static uint32_t packet_limit(const struct vs_conn *c)
{
	const struct vs_config *conf = c->w->b->conf;
	uint32_t max = conf->max_packet_size;
	if (c->state == VS_CONN_NEW && conf->max_connect_packet_size &&
	    (!max || conf->max_connect_packet_size < max))
		max = conf->max_connect_packet_size;
	return max;
}

/* Decodes and handles every whole packet in the input buffer. Returns 0, or -1 when the
 * connection was closed. */
static int process_input(struct vs_conn *c, struct vs_bytes *src)
{
	if (c->http)
		return vs_http_input(c, src);
	while (vs_bytes_avail(src) > 0) {
		struct vs_decode_opts opts = {.version = c->version,
					      .max_packet_size = packet_limit(c)};
		struct vs_packet p;
		enum vs_reason why = VS_RC_MALFORMED;
		ssize_t n =
		    vs_codec_decode(vs_bytes_head(src), vs_bytes_avail(src), &opts, &p, &why);
		if (n == 0)
			return 0;
		if (n < 0) {
			char msg[80];
			snprintf(msg, sizeof(msg), "%s (0x%02X)", vs_reason_str(why), why);
			if (c->state == VS_CONN_NEW && why == VS_RC_UNSUPPORTED_VERSION) {
				/* [MQTT-3.1.2-2] answer CONNACK 0x84 (5.0) / return code 1, close.
				 */
				c->version = connect_level(src) == VS_V5 ? VS_V5 : VS_V311;
				struct vs_packet ack = {.type = VS_CONNACK};
				ack.connack.reason = c->version == VS_V5 ? VS_RC_UNSUPPORTED_VERSION
									 : VS_CONNACK3_BAD_VERSION;
				vs_conn_send(c, &ack);
				vs_conn_close(c, -1, msg);
				return -1;
			}
			vs_conn_close(c, why, msg);
			return -1;
		}
		c->last_rx_ms = c->w->now_ms;
		vs_stat_add(&c->w->stats.msgs_received, 1);
		/* Consumed before it is handled: whatever its handler does, a packet is handled
		 * once (p points into src's data, which consuming does not move). */
		vs_bytes_consume(src, (size_t)n);
		/* Records appended while this packet is handled make c's output wait for the commit
		 * (persist.c marks c->durable_pending). */
		struct vs_conn *outer = c->w->cur; /* a take-over pump nests one level */
		c->w->cur = c;
		enum vs_handled h = dispatch(c, &p);
		c->w->cur = outer;
		if (c->state == VS_CONN_CLOSING)
			return -1;
		if (h != VS_GO_ON) {
			/* A handler broke the contract (said closed without closing): close now
			 * rather than read on from an unknown state. */
			vs_conn_close(c, VS_RC_IMPL_SPECIFIC, "internal error in a handler");
			return -1;
		}
		if (c->parked)
			return 0; /* the CONNECT waits: what follows it is read after the wait */
	}
	return 0;
}

/*
 * Memory before authentication. Every connection that has not finished its CONNECT counts the
 * input it holds (a partial CONNECT) in b->connecting_bytes; past max_connecting_bytes the
 * connection that would add more is closed. Eight clients streaming CONNECTs that claimed
 * 256 MB once took the broker to 1.6 GB; now they cost at most max_connect_packet_size each
 * and max_connecting_bytes together.
 */
static void count_connecting(struct vs_conn *c)
{
	uint32_t now = c->state == VS_CONN_NEW ? (uint32_t)c->in.cap : 0;
	if (now == c->connecting_bytes)
		return;
	if (now > c->connecting_bytes)
		atomic_fetch_add(&c->w->b->connecting_bytes, now - c->connecting_bytes);
	else
		atomic_fetch_sub(&c->w->b->connecting_bytes, c->connecting_bytes - now);
	c->connecting_bytes = now;
}

/* Counts c's input; closes c when the budget is spent. Returns 0, or -1 when c was closed. */
static int check_connecting(struct vs_conn *c)
{
	const struct vs_config *conf = c->w->b->conf;
	count_connecting(c);
	uint64_t total = atomic_load(&c->w->b->connecting_bytes);
	if (!c->connecting_bytes || !conf->max_connecting_bytes ||
	    total <= conf->max_connecting_bytes)
		return 0;
	char why[128];
	snprintf(why, sizeof(why),
		 "connections before CONNECT hold %llu bytes "
		 "(max_connecting_bytes %llu)",
		 (unsigned long long)total, (unsigned long long)conf->max_connecting_bytes);
	vs_conn_close(c, VS_RC_SERVER_BUSY, why);
	return -1;
}

/* Room for the rest of the packet that starts c->in, so a large packet is read in few calls. */
static int reserve_packet(struct vs_conn *c)
{
	uint32_t rem;
	enum vs_reason why;
	size_t have = vs_bytes_avail(&c->in);
	if (c->http) {
		/* The rest of a request whose body is announced, growing with what arrived (at
		 * most as much again as it holds, at most 1 MiB per read): an announced length
		 * costs nothing until it is sent. */
		size_t miss = vs_http_missing(c);
		size_t want = miss < have ? miss : have;
		if (want < READ_CHUNK)
			want = READ_CHUNK;
		return vs_bytes_reserve(&c->in, want > (1u << 20) ? 1u << 20 : want);
	}
	/* Empty (a take-over pump reading while the shared buffer is busy): no storage yet. */
	int hl = have ? vs_codec_frame(vs_bytes_head(&c->in), have, &rem, &why) : 0;
	size_t want = READ_CHUNK;
	/* Grow with the data, at most 1 MiB per read: a client that announces a huge packet has to
	 * send it before it costs the broker memory. */
	if (hl > 0 && (size_t)hl + rem > have && (size_t)hl + rem - have > want)
		want = (size_t)hl + rem - have;
	if (want > (1u << 20))
		want = 1u << 20;
	return vs_bytes_reserve(&c->in, want);
}

/*
 * Reading the turn's connections in one system call. Before the events of a wait are handled,
 * every connection that epoll says is readable, and that would read into the shared buffer now
 * (plain TCP, nothing partial held, not paused, no hang-up or error reported), gets its one
 * receive queued in a batch (iobatch.h), each into a buffer of the dispatching thread's own;
 * the batch runs, and each connection's handler then takes its result as the result of its
 * read. A connection whose handler did not run or did not read (closed, paused, or parked
 * meanwhile by another's packet) has its bytes handled after the events, as a read's would be
 * (a parked connection keeps what follows its CONNECT in c->in). Only where two or more
 * connections are readable: one alone reads with recv(2).
 */
enum { PREFETCH_BUF = 64 * 1024 };

/* The thread's batch of receives while its events are handled (NULL: none). */
static __thread struct vs_worker *prefetch_host;

bool vs_conn_prefetch(struct vs_worker *h, const struct epoll_event *evs, int n)
{
	struct vs_iobatch *b = &h->sb;
	if (!b->ring || n < 2)
		return false;
	if (!h->pre) {
		h->pre = calloc(VS_PREFETCH_SLOTS, sizeof(*h->pre));
		if (!h->pre)
			return false;
	}
	uint32_t k = 0;
	for (int i = 0; i < n && k < VS_PREFETCH_SLOTS; i++) {
		struct vs_io *io = evs[i].data.ptr;
		uint32_t ev = evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
		if (io->fn != on_io || ev != EPOLLIN)
			continue;
		struct vs_conn *c = (struct vs_conn *)io;
		if (c->state == VS_CONN_CLOSING || c->tp.wait || c->parked || c->throttled ||
		    c->http || c->pre_slot || c->tp.ops != &vs_transport_tcp ||
		    vs_bytes_avail(&c->in))
			continue;
		struct vs_prefetch *p = &h->pre[k];
		if (!p->buf.cap && vs_bytes_reserve(&p->buf, PREFETCH_BUF) < 0)
			break;
		p->buf.off = p->buf.len = 0;
		if (!vs_iobatch_recv(b, c->tp.fd, p->buf.data, p->buf.cap))
			break;
		p->c = c;
		k++;
	}
	if (k < 2) {
		b->n = 0; /* dropped: nothing was read */
		return false;
	}
	vs_worker_run_batch(h);
	for (uint32_t j = 0; j < k; j++) {
		h->pre[j].n = b->res[j];
		h->pre[j].c->pre_slot = (uint8_t)(j + 1);
	}
	h->n_pre = k;
	h->pre_used = true;
	prefetch_host = h;
	vs_stat_add(&h->stats.reads_batched, k);
	vs_stat_add(&h->stats.read_batches, 1);
	return true;
}

/* c's prefetched read: its buffer, and its result in *n; NULL when io_uring did not make it
 * (c reads itself). */
static struct vs_bytes *take_prefetched(struct vs_conn *c, ssize_t *n)
{
	struct vs_prefetch *p = &prefetch_host->pre[c->pre_slot - 1];
	c->pre_slot = 0;
	p->c = NULL;
	*n = p->n;
	return p->n == VS_IOBATCH_UNDONE ? NULL : &p->buf;
}

static int read_once(struct vs_conn *c);

/* Defensive: a handler that runs takes its connection's read, and no path is known to leave
 * one; this hands what is left to its connection as its own read would have been. */
void vs_conn_prefetch_end(struct vs_worker *h)
{
	for (uint32_t j = 0; j < h->n_pre; j++) {
		struct vs_conn *c = h->pre[j].c;
		if (!c)
			continue; /* taken */
		struct vs_prefetch *p = &h->pre[j];
		if (c->state == VS_CONN_CLOSING) {
			c->pre_slot = 0;
			p->c = NULL;
			continue;
		}
		if (c->parked && p->n > 0) {
			/* Its CONNECT waits: what follows is handled when it is unparked. */
			c->pre_slot = 0;
			p->c = NULL;
			if (vs_bytes_append(&c->in, p->buf.data, (size_t)p->n) < 0)
				vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
			else
				check_connecting(c); /* its unpark reads the rest (vs_conn_pump) */
			continue;
		}
		read_once(c); /* a throttled one's bytes are handled as a read's that
			       * found it throttled midway */
	}
	h->n_pre = 0;
	prefetch_host = NULL;
}

/*
 * Reads once and handles what arrived. Idle connections own no input buffer: bytes are read into
 * the worker's shared buffer and handled there; only an incomplete packet's bytes are copied to
 * the connection (c->in), and later reads for that connection go there until it is whole.
 * Returns 0, 1 when the socket had nothing (EAGAIN), or -1 when c was closed.
 */
static int read_once(struct vs_conn *c)
{
	struct vs_worker *w = c->w;
	ssize_t n;
	/* Read already, with the turn's other connections (vs_conn_prefetch): handled as a read
	 * into the shared buffer. */
	struct vs_bytes *src = c->pre_slot ? take_prefetched(c, &n) : NULL;
	/* The shared buffer is busy when a handler reads another connection (a take-over pump). */
	bool shared = !src && vs_bytes_avail(&c->in) == 0 && !w->rbuf_busy;
	bool scratch = src || shared; /* src is not c->in: what is left is copied there */
	size_t room;
	if (src) {
		room = src->cap;
	} else {
		src = shared ? &w->rbuf : &c->in;
		if (shared) {
			src->off = src->len = 0;
		} else if (reserve_packet(c) < 0) {
			vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
			return -1;
		}
		room = src->cap - src->len;
		n = c->tp.ops->read(&c->tp, src->data + src->len, room);
	}
	if (n == 0) {
		/* A transport may say more ("WebSocket closed by peer (4001)"). */
		const char *why = vs_transport_why(&c->tp);
		vs_conn_close(c, -1,
			      c->graceful ? "disconnected"
			      : *why	  ? why
					  : "connection closed by peer");
		return -1;
	}
	if (n < 0) {
		if (n == -EINTR)
			vs_worker_want_reread(w, c); /* the edge is spent: try again next turn */
		if (n == -EAGAIN || n == -EINTR)
			return 1;
		char why[192];
		snprintf(why, sizeof(why), "read error: %s", transport_why(c, (int)n));
		vs_conn_close(c, -1, why);
		return -1;
	}
	src->len += (size_t)n;
	vs_stat_add(&w->stats.bytes_received, (uint64_t)n);
	vs_stat_add(&c->bytes_in, (uint64_t)n);
	if (vs_transport_read_more(&c->tp, (size_t)n, room))
		vs_worker_want_reread(w, c); /* edge-triggered: the socket may hold more */
	w->rbuf_busy |= shared;
	int rc = process_input(c, src);
	if (scratch) {
		if (shared)
			w->rbuf_busy = false;
		if (rc == 0 && vs_bytes_avail(src) &&
		    vs_bytes_append(&c->in, vs_bytes_head(src), vs_bytes_avail(src)) < 0) {
			vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
			rc = -1;
		}
		src->off = src->len = 0;
	}
	if (rc < 0)
		return -1;
	vs_bytes_shrink(&c->in, 0);
	return check_connecting(c);
}

void vs_conn_readable(struct vs_conn *c)
{
	if (c->parked || c->throttled)
		return;
	read_once(c);
}

int vs_conn_pump(struct vs_conn *c)
{
	for (int i = 0; i < 64; i++) {
		int rc = read_once(c);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		if (c->parked)
			return 0;
	}
	return 0;
}

void vs_conn_park(struct vs_conn *c)
{
	c->parked = true;
	vs_conn_update_events(c);
}

void vs_conn_unpark(struct vs_conn *c)
{
	c->parked = false;
	vs_conn_update_events(c);
	if (process_input(c, &c->in) == 0 && !c->parked)
		vs_conn_pump(c);
}

/*
 * One step of the transport's handshake (TLS): runs on the events it asked for. Once done, the
 * connection reads as usual: the client's CONNECT may already be waiting (it often comes in the
 * same flight as the handshake's last message), so it is read at once. Returns 0 while the
 * handshake goes on, 1 when done, -1 when it failed and c was closed.
 */
static int handshake(struct vs_conn *c)
{
	int rc = c->tp.ops->finish(&c->tp);
	if (rc == -EAGAIN) {
		vs_conn_update_events(c);
		return 0;
	}
	if (rc < 0) {
		char why[192];
		snprintf(why, sizeof(why), "%s", transport_why(c, rc));
		vs_conn_close(c, -1, why);
		return -1;
	}
	const char *fwd = vs_transport_ws_forwarded(&c->tp);
	if (fwd) {
		/* Behind a trusted proxy, the client is who it says it forwarded. */
		vs_log(c->w->b->log, VS_LOG_DEBUG, "connection from %s is %s (X-Forwarded-For)",
		       c->addr, fwd);
		snprintf(c->addr, c->addr_room, "%s", fwd);
	}
	vs_conn_update_events(c);
	if (vs_bytes_avail(&c->out))
		vs_worker_want_flush(c->w, c);
	return 1;
}

static void on_io(struct vs_io *io, uint32_t events)
{
	struct vs_conn *c = (struct vs_conn *)io;
	if (c->state == VS_CONN_CLOSING)
		return; /* closed earlier in this turn, freed at its end */
	if (c->tp.wait) {
		if (handshake(c) <= 0)
			return;
		events |= EPOLLIN; /* whatever followed the handshake */
	}
	if ((events & (EPOLLHUP | EPOLLERR)) && (c->throttled || c->parked)) {
		/* epoll reports these even with no interest set: a throttled or parked connection
		 * whose peer is gone would otherwise wake the loop until its pause ends. */
		vs_conn_close(c, -1, "connection lost");
		return;
	}
	if ((events & EPOLLRDHUP) && c->parked) {
		/* The client left while its CONNECT waits: nothing it sent matters any more, and
		 * its password check is cancelled (a flood of CONNECTs that leave costs no
		 * hashing). A throttled connection is read to its end once its pause is over. */
		vs_conn_close(c, -1, "connection closed by peer");
		return;
	}
	if (c->throttled && !c->parked && !(events & EPOLLOUT))
		return; /* its input waits for the end of the pause */
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		vs_conn_readable(c);
		if (c->state == VS_CONN_CLOSING)
			return;
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			vs_worker_want_reread(c->w, c); /* the close after the data: read it */
	}
	if (events & EPOLLOUT) {
		if (c->w->b->store || c->w->b->cluster)
			vs_worker_want_flush(c->w, c); /* after this turn's commit */
		else
			vs_conn_flush(c);
	}
}

/* Removes c from the worker's per-turn lists before it is freed. */
static void forget_flush(struct vs_conn *c)
{
	struct vs_worker *w = c->w;
	for (uint32_t i = 0; c->in_flush && i < w->n_flush; i++)
		if (w->flush[i] == c)
			w->flush[i] = NULL;
	c->in_flush = false;
	for (uint32_t i = 0; c->in_reread && i < w->n_reread; i++)
		if (w->reread[i] == c)
			w->reread[i] = NULL;
	c->in_reread = false;
	for (uint32_t i = 0; c->throttled && i < w->n_throttled; i++)
		if (w->throttled[i].c == c)
			w->throttled[i].c = NULL;
	c->throttled = false;
	for (uint32_t i = 0; c->hold && c->hold->listed && i < w->n_held; i++)
		if (w->held[i] == c)
			w->held[i] = NULL;
	free(c->hold);
	c->hold = NULL;
}

/*
 * Detaches the session and settles the will [MQTT-3.1.2-8]: after a graceful DISCONNECT there is
 * none; when a new connection takes over a session that goes on, there is none either (as
 * Mosquitto: the client is back before its will was due); a will with a delay waits in a session
 * that outlives the connection [MQTT-3.1.3-9]; otherwise it is published now. A session that does
 * not outlive the connection ends, and its will goes.
 */
static void detach_session(struct vs_conn *c)
{
	struct vs_session *s = c->session;
	struct vs_msg *will = c->will;
	bool mine = false, end = false;
	c->will = NULL;
	if (c->will_in_cluster && s) {
		/* Settled here (discarded, published below, or kept for its delay on this node). */
		vs_cjs_will(c->w, s->client_id, s->id_len, NULL);
		c->will_in_cluster = false;
	}
	if (c->graceful) {
		vs_msg_unref(will); /* [MQTT-3.14.4-3] discarded by a normal DISCONNECT */
		will = NULL;
	}
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (s->conn == c && s->conn_gen == c->session_gen) {
			mine = true;
			vs_msg_unref(s->live_will);
			s->live_will = NULL;
			s->conn = NULL;
			s->owner = NULL;
			s->connected = false;
			s->expiry = c->session_expiry;
			s->offline_since_ms = c->w->now_ms;
			s->offline_since_wall = vs_wall_s();
			end = s->expiry == 0;
			if (!end)
				vs_bp_session(c->w, s);
			if (will && c->superseded && !end) {
				vs_msg_unref(will); /* its session resumed elsewhere */
				will = NULL;
			}
			if (will && c->will_delay && !end) {
				vs_msg_unref(s->will);
				s->will = will;
				s->will_at_ms = c->w->now_ms + (int64_t)c->will_delay * 1000;
				vs_bp_will(c->w, s, will, s->will_at_ms);
				will = NULL;
			} else if (c->will_recorded && !end) {
				vs_bp_will_del(c->w, s); /* discarded, or published below */
			}
		} else if (will && !s->ended) {
			vs_msg_unref(will); /* taken over, the session goes on: not sent */
			will = NULL;
		}
		pthread_mutex_unlock(&s->lock);
	}
	if (will) {
		vs_publish_will(c->w, will);
		vs_msg_unref(will);
	}
	if (mine && end)
		vs_router_end_session(c->w, s);
	else if (mine && c->w->b->cluster && !c->bridge) { /* where the stream stands now */
		vs_cluster_session_note(c->w->b, s->client_id, s->id_len, true);
		/* That floor is below what it holds: it no longer holds the node's back. */
		pthread_mutex_lock(&s->lock);
		if (!s->connected)
			vs_session_hold(s, false);
		pthread_mutex_unlock(&s->lock);
	}
	if (s)
		vs_session_unref(s);
	c->session = NULL;
}

/*
 * Connections that end before CONNECT (scanners, floods, TLS on the wrong port) are logged one
 * line each up to PRE_LOG_BURST per second per worker; past that they are counted, and a line
 * every PRE_LOG_SUMMARY_MS says how many there were and names the last, so a flood of them
 * cannot flood the log.
 */
enum { PRE_LOG_BURST = 20, PRE_LOG_SUMMARY_MS = 10000 };

static void log_before_connect(struct vs_conn *c, const char *why)
{
	struct vs_worker *w = c->w;
	if (w->now_ms - w->pre_log_window_ms >= 1000) {
		w->pre_log_window_ms = w->now_ms;
		w->pre_logged = 0;
	}
	if (w->pre_logged < PRE_LOG_BURST && !w->pre_suppressed) {
		w->pre_logged++;
		vs_log(w->b->log, VS_LOG_NOTICE, "connection from %s closed before CONNECT: %s",
		       c->addr, why);
		return;
	}
	if (!w->pre_suppressed)
		w->pre_summary_ms = w->now_ms + PRE_LOG_SUMMARY_MS;
	w->pre_suppressed++;
	snprintf(w->pre_last, sizeof(w->pre_last), "%s: %s", c->addr, why);
	vs_conn_log_summary(w);
}

void vs_conn_log_summary(struct vs_worker *w)
{
	if (!w->pre_suppressed || w->now_ms < w->pre_summary_ms)
		return;
	vs_log(w->b->log, VS_LOG_NOTICE,
	       "%llu more connection(s) closed before CONNECT in the "
	       "last %d s, the last from %s",
	       (unsigned long long)w->pre_suppressed, PRE_LOG_SUMMARY_MS / 1000, w->pre_last);
	w->pre_suppressed = 0;
}

/*
 * Lingering close. When the broker closes a connection after telling it why (a DISCONNECT with
 * a reason code, a refusing CONNACK), the client may have sent more that was never read, and
 * closing a socket with unread input makes the kernel answer with a reset, which can destroy
 * the reason before the client reads it. So the socket is kept through a duplicate of its
 * descriptor after the connection is gone: on plain TCP, output the client had not taken yet is
 * still written; then the write side is shut down (the client sees the end after the reason),
 * and input is read and thrown away until the client closes, LINGER_MS pass or LINGER_BYTES
 * arrive. At most LINGER_MAX per worker; past that, sockets close at once. (TLS and WebSocket
 * output not yet written when the connection closes is lost: their sessions end with it.)
 */
enum { LINGER_MS = 2000, LINGER_BYTES = 1 << 20, LINGER_MAX = 4096 };

struct vs_linger {
	struct vs_io io; /* fd -1: ended, freed by the next sweep (an event for it may still wait
			  * in this turn's batch) */
	struct vs_worker *w;
	int64_t deadline_ms;
	size_t discarded;
	struct vs_bytes out; /* still to be written (plain TCP) */
};

static void linger_end(struct vs_worker *w, struct vs_linger *l)
{
	if (l->io.fd < 0)
		return;
	vs_loop_del(&w->loop, &l->io);
	close(l->io.fd);
	l->io.fd = -1;
	vs_bytes_fini(&l->out);
}

/* Writes what l still holds; once all is out, ends the write side. Returns -1 on an error. */
static int linger_write(struct vs_worker *w, struct vs_linger *l)
{
	while (vs_bytes_avail(&l->out)) {
		ssize_t n = write(l->io.fd, vs_bytes_head(&l->out), vs_bytes_avail(&l->out));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		vs_bytes_consume(&l->out, (size_t)n);
		vs_stat_add(&w->stats.bytes_sent, (uint64_t)n);
	}
	vs_bytes_fini(&l->out);
	shutdown(l->io.fd, SHUT_WR);
	return 0;
}

static void on_linger(struct vs_io *io, uint32_t events)
{
	struct vs_linger *l = (struct vs_linger *)io;
	if (l->io.fd < 0)
		return;
	if ((events & EPOLLOUT) && vs_bytes_avail(&l->out)) {
		if (linger_write(l->w, l) < 0) {
			linger_end(l->w, l);
			return;
		}
		if (!vs_bytes_avail(&l->out))
			vs_loop_mod(&l->w->loop, &l->io, EPOLLIN | EPOLLRDHUP);
	}
	char buf[4096];
	for (;;) {
		ssize_t n = read(l->io.fd, buf, sizeof(buf));
		if (n > 0 && (l->discarded += (size_t)n) < LINGER_BYTES)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n == 0 && vs_bytes_avail(&l->out)) {
			/* The client ended its side (SHUT_WR) but may still read what it is owed:
			 * stop reading, go on writing until the deadline. */
			vs_loop_mod(&l->w->loop, &l->io, EPOLLOUT);
			return;
		}
		break; /* the client closed, an error, or enough */
	}
	linger_end(l->w, l);
}

/* Keeps c's socket for a lingering close; returns NULL when it cannot (it just closes). */
static struct vs_linger *linger_start(struct vs_conn *c)
{
	struct vs_worker *w = c->w;
	if (c->io.fd < 0 || w->n_linger >= LINGER_MAX || atomic_load(&w->b->stopping))
		return NULL;
	if (VS_VEC_GROW(w->linger, w->cap_linger, w->n_linger + 1, 16) < 0)
		return NULL;
	struct vs_linger *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->io.fd = fcntl(c->io.fd, F_DUPFD_CLOEXEC, 0);
	l->io.fn = on_linger;
	l->w = w;
	l->deadline_ms = w->now_ms + LINGER_MS;
	if (l->io.fd < 0) {
		free(l);
		return NULL;
	}
	w->linger[w->n_linger++] = l;
	return l;
}

/* After the transport closed c's descriptor: the duplicate writes what is left, ends the write
 * side and drains. */
static void linger_arm(struct vs_worker *w, struct vs_linger *l)
{
	if (linger_write(w, l) < 0 ||
	    vs_loop_add(&w->loop, &l->io,
			EPOLLIN | EPOLLRDHUP | (vs_bytes_avail(&l->out) ? EPOLLOUT : 0)) < 0) {
		close(l->io.fd);
		l->io.fd = -1;
		vs_bytes_fini(&l->out);
	}
}

void vs_conn_linger_sweep(struct vs_worker *w, bool all)
{
	uint32_t keep = 0;
	for (uint32_t i = 0; i < w->n_linger; i++) {
		struct vs_linger *l = w->linger[i];
		if (l->io.fd >= 0 && !all && w->now_ms < l->deadline_ms) {
			w->linger[keep++] = l;
			continue;
		}
		linger_end(w, l);
		free(l);
	}
	w->n_linger = keep;
}

static void log_left_out(struct vs_conn *c)
{
	if (!c->log_dropped)
		return;
	vs_log(c->w->b->log, VS_LOG_NOTICE,
	       "client %s: %u%s more line(s) like those above left out (at most %d in 10 s)",
	       c->client_id ? c->client_id : c->addr, c->log_dropped,
	       c->log_dropped == UINT16_MAX ? "+" : "", VS_CONN_LOG_BURST);
	c->log_dropped = 0;
}

bool vs_conn_log_ok(struct vs_conn *c)
{
	uint16_t win = (uint16_t)(c->w->now_ms / 10000);
	if (win != c->log_window) {
		log_left_out(c);
		c->log_window = win;
		c->log_used = 0;
	}
	if (c->log_used < VS_CONN_LOG_BURST) {
		c->log_used++;
		return true;
	}
	if (c->log_dropped < UINT16_MAX)
		c->log_dropped++;
	return false;
}

void vs_conn_close(struct vs_conn *c, int reason, const char *why)
{
	struct vs_worker *w = c->w;
	if (c->state == VS_CONN_CLOSING)
		return;
	bool was_active = c->state == VS_CONN_ACTIVE;
	struct vs_broker *b = w->b;
	/* [MQTT-4.13.2-1] 5.0: tell the client why, when the spec lets the server send DISCONNECT
	 * (only after CONNACK [MQTT-3.14.0-1]). */
	if (c->version == VS_V5 && reason >= 0x80 &&
	    (was_active || reason != VS_RC_MAX_CONNECT_TIME)) {
		/* Before CONNACK the refusal is a CONNACK [MQTT-3.2.2-6]; after it, a DISCONNECT.
		 * Both may carry a Reason String whatever Request Problem Information says
		 * [MQTT-3.1.2-29]; it is dropped when the client's Maximum Packet Size is too
		 * small. */
		struct vs_packet d = {.type = was_active ? VS_DISCONNECT : VS_CONNACK};
		struct vs_props *pr = was_active ? &d.disconnect.props : &d.connack.props;
		if (was_active)
			d.disconnect.reason = (uint8_t)reason;
		else
			d.connack.reason = (uint8_t)reason;
		pr->present = 1ull << VS_PROP_REASON_STRING;
		pr->reason_string.p = (const uint8_t *)why;
		pr->reason_string.len = strlen(why);
		if (vs_conn_send(c, &d) < 0) {
			pr->present = 0;
			vs_conn_send(c, &d);
		}
	}
	log_left_out(c);
	c->state = VS_CONN_CLOSING;
	/* A reason, a refusal, an HTTP error answer...: see linger_start. */
	bool told = vs_bytes_avail(&c->out) > 0 || vs_http_lingers(c);
	/* What this connection was told must be stored before it is written. A failure covers
	 * the turn's other acknowledgements too: withdrawn at the turn's end (worker.c). */
	if (c->durable_pending && vs_bp_commit(w) < 0) {
		c->out.off = c->out.len = 0;
		w->commit_failed = true;
	}
	/* And what waits for the store's sync (rare enough to wait for it here): its held output,
	 * and what this turn gave it that will not be held now (worker.c, held output). */
	struct vs_hold *h = c->hold;
	uint64_t seq = 0;
	if (h && h->seq_a)
		seq = h->seq_b > h->seq_a ? h->seq_b : h->seq_a;
	if (c->needs_sync && w->n_flight && w->flight[w->n_flight - 1].seq > seq)
		seq = w->flight[w->n_flight - 1].seq;
	if (seq && vs_bytes_avail(&c->out) && vs_store_sync_upto(b->store, seq) < 0)
		c->out.off = c->out.len = 0;
	if (h)
		h->seq_a = h->seq_b = 0;
	c->needs_sync = false;
	vs_conn_flush(c);
	forget_flush(c);
	if (was_active) {
		if (b->conf->connection_messages && b->log->mosquitto)
			vs_log(b->log, VS_LOG_NOTICE, "Client %s disconnected.", c->client_id);
		else if (b->conf->connection_messages)
			vs_logc(b->log,
				reason >= 0x80 && reason != VS_RC_SERVER_SHUTTING_DOWN
				    ? VS_LOG_NOTICE
				    : VS_LOG_INFO,
				c->client_id, "client %s (%s) disconnected: %s", c->client_id,
				c->addr, why);
		atomic_fetch_sub(&b->clients_connected, 1);
	} else if (c->http) {
		vs_log(b->log, VS_LOG_DEBUG, "HTTP connection from %s closed: %s", c->addr, why);
	} else if (c->client_id) {
		vs_log(b->log, VS_LOG_NOTICE, "client '%s' (%s) refused: %s", c->client_id, c->addr,
		       why);
	} else {
		log_before_connect(c, why);
	}
	if (c->session && c->client_id == c->session->client_id)
		c->client_id = NULL; /* borrowed from the session (connect.c attach_session) */
	detach_session(c);
	struct vs_linger *l = told ? linger_start(c) : NULL;
	if (l && c->tp.ops == &vs_transport_tcp && !c->tp.wait) {
		l->out = c->out; /* what the socket did not take yet goes out after all */
		memset(&c->out, 0, sizeof(c->out));
	}
	if (c->io.fd >= 0)
		vs_loop_del(&w->loop, &c->io);
	c->tp.ops->close(&c->tp);
	if (l)
		linger_arm(w, l);
	atomic_fetch_sub(&c->listener->connections, 1);
	atomic_fetch_sub(&b->connections, 1);
	w->conns[c->slot] = NULL;
	w->free_slots[w->n_free++] = c->slot;
	w->n_conns--;
	vs_bytes_fini(&c->in);
	vs_bytes_fini(&c->out);
	count_connecting(c); /* nothing held any more */
	vs_alias_in_fini(&c->in_alias);
	if (c->out_alias) {
		vs_map_fini(c->out_alias);
		free(c->out_alias);
	}
	vs_connecting_free(c);
	vs_http_conn_free(c);
	free(c->client_id);
	free(c->username);
	c->client_id = c->username = NULL;
	/* Freed at the end of the loop turn: an event for this connection may still be waiting in
	 * the batch epoll_wait returned. */
	vs_worker_bury(w, c);
}
