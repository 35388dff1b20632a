/*
 * Broker persistence hooks: see persist.h. Records are built from live objects; the store
 * encodes them into the worker's buffer without locking or syscalls.
 */
#include "broker/persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/vec.h"
#include "broker/cluster_js.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "persist/store.h"
#include "session/session.h"

static struct vs_rec_str str(const void *p, size_t len)
{
	struct vs_rec_str r = {p, len};
	return r;
}

static struct vs_rec_str sid(const struct vs_session *s)
{
	return str(s->client_id, s->id_len);
}

/* Wall-clock seconds of a monotonic time, for records that must count across restarts. */
static int64_t wall_of(int64_t mono_ms, int64_t now_ms)
{
	return vs_wall_s() - (now_ms - mono_ms) / 1000;
}

static int commit_store(struct vs_worker *w);
static int stored(struct vs_worker *w, int rc);

static void append_rec(struct vs_worker *w, const struct vs_rec *r)
{
	int rc = vs_store_append(&w->pbuf, r);
	if (rc < 0)
		vs_log(w->b->log, VS_LOG_ERR, "persistence: cannot record %s: %s",
		       vs_rec_type_name(r->type), rc == -ENOMEM ? "out of memory" : "too large");
}

static void append(struct vs_worker *w, const struct vs_rec *r)
{
	/* What the current client is told next depends on this record being stored. */
	if (w->cur)
		w->cur->durable_pending = true;
	append_rec(w, r);
}

void vs_bp_session(struct vs_worker *w, struct vs_session *s)
{
	if (!w->b->store)
		return;
	struct vs_rec r = {.type = VS_REC_SESSION};
	r.u.session.client_id = sid(s);
	r.u.session.expiry_interval = s->expiry;
	r.u.session.protocol_version = s->version;
	r.u.session.offline_since_wall = s->connected ? 0 : s->offline_since_wall;
	s->persisted = true;
	append(w, &r);
}

void vs_bp_session_del(struct vs_worker *w, struct vs_session *s)
{
	if (!w->b->store || !s->persisted)
		return;
	s->persisted = false;
	struct vs_rec r = {.type = VS_REC_SESSION_DEL};
	r.u.client_id = sid(s);
	append(w, &r);
}

void vs_bp_sub(struct vs_worker *w, struct vs_session *s, const char *filter, size_t len,
	       uint8_t qos, uint8_t options, uint32_t sub_id)
{
	if (!w->b->store || !s->persisted)
		return;
	struct vs_rec r = {.type = VS_REC_SUB};
	r.u.sub.client_id = sid(s);
	r.u.sub.filter = str(filter, len);
	r.u.sub.qos = qos;
	r.u.sub.options = options;
	r.u.sub.sub_id = sub_id;
	append(w, &r);
}

void vs_bp_unsub(struct vs_worker *w, struct vs_session *s, const char *filter, size_t len)
{
	if (!w->b->store || !s->persisted)
		return;
	struct vs_rec r = {.type = VS_REC_UNSUB};
	r.u.sub.client_id = sid(s);
	r.u.sub.filter = str(filter, len);
	append(w, &r);
}

enum { STORE_ID_BLOCK = 1024 };

/* Gives m its store id if it has none yet: returns the id this call gave it, or 0 when it had
 * one. The MSG record of an id given here is the caller's to write (write_msg). */
static uint64_t give_id(struct vs_worker *w, struct vs_msg *m)
{
	uint64_t id = atomic_load_explicit(&m->store_id, memory_order_acquire);
	if (id)
		return 0;
	/* A block at a time: one shared counter written by every thread for every message cost
	 * more than the record itself when two threads stored (a cache line going back and forth).
	 */
	if (w->store_id == w->store_id_end) {
		w->store_id = atomic_fetch_add(&w->b->next_store_id, STORE_ID_BLOCK);
		w->store_id_end = w->store_id + STORE_ID_BLOCK;
	}
	uint64_t fresh = w->store_id++;
	if (!atomic_compare_exchange_strong(&m->store_id, &id, fresh))
		return 0; /* another worker gave it one meanwhile, and writes its record */
	return fresh;
}

static void write_msg(struct vs_worker *w, struct vs_msg *m, uint64_t id)
{
	struct vs_rec r;
	vs_bp_msg_rec(m, id, w->now_ms, vs_wall_s(), &r);
	append(w, &r);
}

/* Writes the message body once (the first record that needs it) and returns its id. */
static uint64_t msg_id(struct vs_worker *w, struct vs_msg *m)
{
	uint64_t fresh = give_id(w, m);
	if (!fresh)
		return atomic_load_explicit(&m->store_id, memory_order_acquire);
	write_msg(w, m, fresh);
	return fresh;
}

uint64_t vs_bp_give_id(struct vs_worker *w, struct vs_msg *m)
{
	return w->b->store ? give_id(w, m) : 0;
}

void vs_bp_msg_rec(const struct vs_msg *m, uint64_t id, int64_t now_ms, int64_t now_wall,
		   struct vs_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->type = VS_REC_MSG;
	struct vs_rec_msg *x = &r->u.msg;
	x->msg_id = id;
	x->topic = str(m->topic.p, m->topic.len);
	x->payload = str(m->payload.p ? m->payload.p : (const uint8_t *)"", m->payload.len);
	x->qos = m->qos;
	x->retain = m->retain;
	x->created_wall = now_wall - (now_ms - m->created_ms) / 1000;
	x->has_expiry = m->has_expiry;
	x->expiry_interval = m->expiry_interval;
	x->has_payload_format = m->has_payload_format;
	x->payload_format = m->payload_format;
	x->content_type = str(m->content_type.p, m->content_type.len);
	x->response_topic = str(m->response_topic.p, m->response_topic.len);
	x->correlation_data = str(m->correlation_data.p, m->correlation_data.len);
	x->user_props_raw = str(m->user_raw.p, m->user_raw.len);
	x->origin_client_id = str(m->origin.p ? m->origin.p : (const uint8_t *)"", m->origin.len);
	x->sseq = m->sseq; /* a session handed over keeps holding the stream floor (cluster) */
}

void vs_bp_queue_rec(const struct vs_session *s, const struct vs_qentry *e, uint64_t msg_id,
		     struct vs_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->type = VS_REC_QUEUE;
	struct vs_rec_queue *q = &r->u.queue;
	q->client_id = sid(s);
	q->msg_id = msg_id;
	q->qos = e->qos;
	q->retain = e->retain;
	q->state = e->state;
	q->packet_id = e->packet_id;
	q->dup = e->dup;
	q->sub_ids = e->n_sub_ids ? vs_qentry_sub_ids(e) : NULL;
	q->n_sub_ids = e->n_sub_ids;
	q->seq = e->seq;
}

void vs_bp_retain(struct vs_worker *w, struct vs_msg *m, bool set, uint64_t version)
{
	/* $SYS is the broker's own, republished every sys_interval: never stored. */
	if (!w->b->store || (m->topic.len >= 4 && memcmp(m->topic.p, "$SYS", 4) == 0))
		return;
	struct vs_rec r = {.type = set ? VS_REC_RETAIN : VS_REC_RETAIN_DEL};
	r.u.retain.topic = str(m->topic.p, m->topic.len);
	r.u.retain.version = version;
	if (set)
		r.u.retain.msg_id = msg_id(w, m);
	append(w, &r);
}

void vs_bp_queue(struct vs_worker *w, struct vs_session *s, const struct vs_qentry *e)
{
	if (s->persisted)
		vs_bp_queue_written(w, s, e, 0);
}

void vs_bp_queue_written(struct vs_worker *w, struct vs_session *s, const struct vs_qentry *e,
			 uint64_t given)
{
	if (!w->b->store || !e->msg)
		return;
	if (given)
		write_msg(w, e->msg, given); /* the id given under the lock is this message's */
	struct vs_rec r;
	vs_bp_queue_rec(s, e, given ? given : msg_id(w, e->msg), &r);
	append(w, &r);
}

void vs_bp_dequeue(struct vs_worker *w, struct vs_session *s, const struct vs_qentry *e)
{
	if (s->persisted)
		vs_bp_dequeued(w, s, e);
}

void vs_bp_dequeued(struct vs_worker *w, struct vs_session *s, const struct vs_qentry *e)
{
	struct vs_msg *m = e->msg;
	if (!w->b->store || !m)
		return;
	uint64_t id = atomic_load_explicit(&m->store_id, memory_order_acquire);
	if (!id)
		return; /* never recorded */
	struct vs_rec r = {.type = VS_REC_DEQUEUE};
	r.u.dequeue.client_id = sid(s);
	r.u.dequeue.msg_id = id;
	r.u.dequeue.seq = e->seq;
	/* Nothing the client is told waits for it: a PUBACK or PUBCOMP gets no answer, and a
	 * delivery whose end is lost is sent again after a restart (with DUP; a PUBREL for QoS 2,
	 * which the client answers whether it knows the id or not [MQTT-4.3.3-11]). So the
	 * subscriber's next deliveries are not held for the sync with persistence_fsync batch,
	 * nor withdrawn when a commit fails. */
	append_rec(w, &r);
}

void vs_bp_inqos2(struct vs_worker *w, struct vs_session *s, uint16_t id, bool add)
{
	if (!w->b->store || !s->persisted)
		return;
	struct vs_rec r = {.type = VS_REC_INQOS2};
	r.u.inqos2.client_id = sid(s);
	r.u.inqos2.packet_id = id;
	r.u.inqos2.add = add;
	append(w, &r);
}

void vs_bp_will(struct vs_worker *w, struct vs_session *s, struct vs_msg *will, int64_t at_ms)
{
	if (!w->b->store || !s->persisted)
		return;
	struct vs_rec r = {.type = VS_REC_WILL};
	r.u.will.client_id = sid(s);
	r.u.will.msg_id = msg_id(w, will);
	r.u.will.publish_at_wall = wall_of(at_ms, w->now_ms);
	append(w, &r);
}

void vs_bp_will_connected(struct vs_worker *w, struct vs_session *s, struct vs_msg *will,
			  uint32_t delay)
{
	if (!w->b->store || !s->persisted)
		return;
	struct vs_rec r = {.type = VS_REC_WILL};
	r.u.will.client_id = sid(s);
	r.u.will.msg_id = msg_id(w, will);
	r.u.will.publish_at_wall = -(int64_t)delay - 1;
	append(w, &r);
}

void vs_bp_will_del(struct vs_worker *w, struct vs_session *s)
{
	if (!w->b->store || !s->persisted)
		return;
	struct vs_rec r = {.type = VS_REC_WILL_DEL};
	r.u.will.client_id = sid(s);
	append(w, &r);
}

bool vs_bp_healthy(const struct vs_broker *b)
{
	return !b->store || vs_store_healthy(b->store);
}

/* The cluster's part of a commit (cluster_js.h): this turn's QoS 1/2 messages for other nodes
 * acknowledged by JetStream, and the messages of other nodes routed this turn acknowledged to
 * JetStream once stored here. Nothing without a cluster. */
static int commit_cluster(struct vs_worker *w, int stored)
{
	return w->b->cluster ? vs_cjs_commit(w, stored == 0) : 0;
}

int vs_bp_commit(struct vs_worker *w)
{
	int rc = commit_store(w);
	int crc = commit_cluster(w, rc);
	return rc < 0 ? rc : crc;
}

static int commit_store(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	if (!b->store || w->pbuf.len == 0)
		return 0;
	int64_t t0 = vs_now_ns();
	int rc = vs_store_commit(b->store, &w->pbuf);
	vs_prom_hist_observe(&b->commit_hist, (uint64_t)(vs_now_ns() - t0));
	return stored(w, rc);
}

static int stored(struct vs_worker *w, int rc)
{
	struct vs_broker *b = w->b;
	if (rc < 0) {
		if (!atomic_exchange(&b->store_warned, true))
			vs_log(b->log, VS_LOG_ERR,
			       "persistence: cannot write to %s: %s. QoS 1/2 messages are refused "
			       "until it can (QoS 0 goes on)",
			       b->conf->persistence_location ? b->conf->persistence_location : ".",
			       strerror(-rc));
		return rc;
	}
	if (atomic_load_explicit(&b->store_warned, memory_order_relaxed) &&
	    atomic_exchange(&b->store_warned, false))
		vs_log(b->log, VS_LOG_NOTICE, "persistence: writing works again");
	return 0;
}

/* ---- persistence_fsync batch: writes that are not waited for ---- */

void vs_bp_start(struct vs_broker *b, void (*synced)(void *ctx))
{
	if (!b->store)
		return;
	/* A cluster's commit acknowledges JetStream's messages once they are stored here, and
	 * waits for JetStream's acknowledgements in the same turn: it keeps the commit that
	 * waits. */
	b->store_async = b->conf->persistence_fsync == VS_CONF_FSYNC_BATCH && !b->cluster;
	if (b->store_async)
		vs_store_set_notify(b->store, synced, b);
}

static void buf_recycle(struct vs_worker *w, struct vs_store_buf *buf)
{
	buf->len = buf->nrec = 0;
	if (w->n_pool < sizeof(w->pool) / sizeof(w->pool[0]))
		w->pool[w->n_pool++] = *buf;
	else
		vs_store_buf_fini(buf);
	memset(buf, 0, sizeof(*buf));
}

int64_t vs_bp_write(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	if (w->pbuf.len == 0)
		return 0;
	int64_t t0 = vs_now_ns();
	int64_t seq = vs_store_write(b->store, &w->pbuf);
	vs_prom_hist_observe(&b->commit_hist, (uint64_t)(vs_now_ns() - t0));
	if (stored(w, seq < 0 ? (int)seq : 0) < 0)
		return seq; /* the records stay in pbuf: written again next turn */
	if (VS_VEC_GROW(w->flight, w->cap_flight, w->n_flight + 1, 8) < 0) {
		/* Nowhere to keep them until the sync: wait for it here. */
		int rc = stored(w, vs_store_sync_upto(b->store, (uint64_t)seq));
		if (rc < 0)
			return rc;
		w->pbuf.len = w->pbuf.nrec = 0;
		return seq;
	}
	w->flight[w->n_flight++] = (struct vs_bp_flight){w->pbuf, (uint64_t)seq};
	if (w->n_pool)
		w->pbuf = w->pool[--w->n_pool];
	else
		vs_store_buf_init(&w->pbuf);
	return seq;
}

/*
 * The writes of w that are synced give their buffers back. When a sync failed after one of
 * them was written, its records, and those of every later write of w (so that they keep their
 * order in the log: records are idempotent, not commutative), go back in front of this turn's,
 * to be written again at the end of the turn.
 */
void vs_bp_settle(struct vs_worker *w, uint64_t synced, uint64_t failed)
{
	uint32_t i = 0;
	while (i < w->n_flight && w->flight[i].seq > failed && w->flight[i].seq <= synced)
		i++;
	uint32_t done = i;
	if (i < w->n_flight && w->flight[i].seq <= failed) {
		size_t len = w->pbuf.len, nrec = w->pbuf.nrec;
		for (uint32_t k = i; k < w->n_flight; k++) {
			len += w->flight[k].buf.len;
			nrec += w->flight[k].buf.nrec;
		}
		uint8_t *data = malloc(len ? len : 1);
		if (data) {
			size_t at = 0;
			for (uint32_t k = i; k < w->n_flight; k++) {
				memcpy(data + at, w->flight[k].buf.data, w->flight[k].buf.len);
				at += w->flight[k].buf.len;
			}
			if (w->pbuf.len)
				memcpy(data + at, w->pbuf.data, w->pbuf.len);
			free(w->pbuf.data);
			w->pbuf.data = data;
			w->pbuf.len = w->pbuf.cap = len;
			w->pbuf.nrec = nrec;
			done = w->n_flight;
		} else {
			vs_log(w->b->log, VS_LOG_ERR,
			       "persistence: out of memory: records whose sync failed are not "
			       "written again yet");
		}
	}
	if (!done)
		return;
	for (uint32_t k = 0; k < done; k++)
		buf_recycle(w, &w->flight[k].buf);
	memmove(w->flight, w->flight + done, (w->n_flight - done) * sizeof(*w->flight));
	w->n_flight -= done;
}

void vs_bp_worker_fini(struct vs_worker *w)
{
	for (uint32_t k = 0; k < w->n_flight; k++)
		vs_store_buf_fini(&w->flight[k].buf);
	free(w->flight);
	for (uint32_t k = 0; k < w->n_pool; k++)
		vs_store_buf_fini(&w->pool[k]);
	w->flight = NULL;
	w->n_flight = w->n_pool = 0;
}
