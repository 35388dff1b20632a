/*
 * `viesti bench`: what clients send and receive. A publisher sends within its windows (the
 * packet identifiers it has free, and the end-to-end window of messages not yet delivered) or at
 * its rate; a subscriber counts each message it gets by publisher stream (loss, duplicates) and
 * records its latency; acknowledgements free the windows. The connection under it is in
 * bench_client.c; the design is described at the top of bench_run.c.
 */
#include "cmd/bench_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "base/error.h"

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
void vs_bench_pump(struct client *c, int64_t now)
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
		vs_bench_fail(c, why, 0);
		return -1;
	}
	if (c->ssl && b->c->tls_resume)
		keep_session(c);
	if (b->c->version == VS_V5 && (ca->props.present & (1ull << VS_PROP_RECEIVE_MAX)) &&
	    ca->props.receive_max < c->window)
		c->window = ca->props.receive_max;
	if (c->role != R_SUB) {
		c->state = C_READY;
		vs_bench_handshake_done(c, true);
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
	return vs_bench_queue(c, &p);
}

static int on_suback(struct client *c, const struct vs_suback *sa)
{
	if (c->state != C_SUBACK)
		return VS_EPROTO;
	if (sa->count < 1 || sa->codes[0] >= 0x80) {
		vs_bench_fail(c, "SUBSCRIBE refused", 0);
		return -1;
	}
	c->state = C_READY;
	vs_bench_handshake_done(c, true);
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
		return vs_bench_queue_ack(c, VS_PUBREL, a->packet_id);
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
			return vs_bench_queue_ack(c, VS_PUBACK, p->publish.packet_id);
		if (p->publish.qos == 2)
			return vs_bench_queue_ack(c, VS_PUBREC, p->publish.packet_id);
		return 0;
	case VS_PUBREL:
		return vs_bench_queue_ack(c, VS_PUBCOMP, p->ack.packet_id);
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBCOMP:
		return on_pub_ack(c, p->type, &p->ack);
	case VS_DISCONNECT: {
		char why[48];
		snprintf(why, sizeof(why), "DISCONNECT from the broker (0x%02x)",
			 p->disconnect.reason);
		vs_bench_fail(c, why, 0);
		return -1;
	}
	default:
		return 0;
	}
}

/* Decodes and handles the whole packets in buf. Returns the bytes consumed, or -1 if the client
 * failed (it is closed). */
ssize_t vs_bench_parse(struct client *c, const uint8_t *buf, size_t len, int64_t now)
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
			vs_bench_fail(c, what, 0);
			return -1;
		}
		int rc = on_packet(c, &p, now);
		if (c->state == C_CLOSED)
			return -1;
		if (rc < 0) {
			vs_bench_fail(c, "protocol", rc);
			return -1;
		}
		off += (size_t)k;
	}
	return (ssize_t)off;
}
