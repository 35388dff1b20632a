/*
 * Persistence at start-up and compaction: replaying the store into the broker, and writing the
 * broker's whole state as a snapshot (after replay, and whenever the log has grown large).
 * On the first start with persistence on, a Mosquitto database found where Mosquitto kept it is
 * imported through the same replay callbacks (src/persist/mosqdb.h); the start-up snapshot then
 * makes it part of Viesti's store, and the Mosquitto file is only ever read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/vec.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "persist/mosqdb.h"
#include "persist/store.h"
#include "session/session.h"
#include "topic/retain.h"
#include "topic/tree.h"

/* A queue entry seen during replay, keyed by (session, message id). */
struct pending {
	struct vs_session *s; /* the session object it belongs to (borrowed from the registry) */
	uint64_t msg_id;
	uint32_t dseq; /* the session's delivery number (0 in older files) */
	uint64_t seq;  /* first appearance: queue order */
	bool tomb;     /* dequeued: later QUEUE records for it are stale */
	uint8_t qos, state;
	bool retain, dup;
	uint16_t packet_id;
	uint32_t n_sub_ids;
	uint32_t *sub_ids;
};

struct replay {
	struct vs_broker *b;
	struct vs_registry *sessions; /* &b->sessions at start-up; a private one for one imported
				       * session */
	bool importing;		      /* one session from another node (vs_bp_session_import) */
	int64_t now_ms, now_wall;
	struct vs_map msgs;	/* 8-byte id -> struct vs_msg * (one reference) */
	struct vs_map retained; /* topic -> msg id (as pointer-sized integer) */
	struct vs_map index;	/* (session ptr, msg id) -> pending index + 1 */
	struct vs_map wills;	/* session ptr -> its will's msg id (as pointer-sized integer) */
	struct vs_map floors;	/* session ptr -> its delivery floor | FLOOR_SET (on_session) */
	struct pending *pend;
	size_t n_pend, cap_pend;
	struct vs_session **dead; /* ended during replay, freed at the end */
	size_t n_dead, cap_dead;
	uint64_t max_id;
	uint64_t max_retain_version;
	uint64_t seq;
	uint64_t *routed; /* at start-up: the stream sequences of its MSG records */
	size_t n_routed, cap_routed;
};

/* The monotonic time (ms) of wall-clock second `wall`, as far as 68 years either side of now: a
 * damaged or hostile record (a store's, another node's) cannot overflow the arithmetic. */
static int64_t mono_of(const struct replay *r, int64_t wall)
{
	int64_t d = wall - r->now_wall;
	d = d < -(int64_t)INT32_MAX ? -(int64_t)INT32_MAX : d > INT32_MAX ? INT32_MAX : d;
	return r->now_ms + d * 1000;
}

static struct vs_session *find_session(struct replay *r, const struct vs_rec_str *id)
{
	return vs_registry_get(r->sessions, (const char *)id->p, id->len);
}

#define FLOOR_SET (1ull << 32)

/* s's floor from its last SESSION record that had one (vs_rec_session.floor). */
static bool floor_of(struct replay *r, struct vs_session *s, uint32_t *floor)
{
	uintptr_t v = (uintptr_t)vs_map_get(&r->floors, &s, sizeof(s));
	*floor = (uint32_t)v;
	return v != 0;
}

static int on_session(struct replay *r, const struct vs_rec_session *x)
{
	struct vs_session *s = find_session(r, &x->client_id);
	if (!s) {
		s = vs_session_new((const char *)x->client_id.p, x->client_id.len);
		if (!s || vs_registry_add(r->sessions, s) < 0) {
			vs_session_unref(s);
			return -ENOMEM;
		}
	}
	s->expiry = x->expiry_interval;
	s->version = x->protocol_version;
	/* Offline since the recorded time, or since now when it was connected at the crash; the
	 * expiry counts in wall-clock time across the restart. */
	int64_t since = x->offline_since_wall ? x->offline_since_wall : r->now_wall;
	s->offline_since_wall = since < 0 ? 0 : since > UINT32_MAX ? UINT32_MAX : (uint32_t)since;
	s->offline_since_ms = mono_of(r, since);
	s->persisted = true;
	/* A floor only rises: a lower one than replay has is older (a record committed after a
	 * snapshot had begun). */
	uint32_t had;
	bool rises = x->has_floor && (!floor_of(r, s, &had) || vs_seq_before(had, x->floor));
	if (rises) {
		/* Entries met so far stay; deliveries numbered before the floor that come later are
		 * over (vs_rec_session.floor). Numbers go on from the floor. */
		uintptr_t v = (uintptr_t)(FLOOR_SET | x->floor);
		if (vs_map_put(&r->floors, &s, sizeof(s), (void *)v, NULL) < 0)
			return -ENOMEM;
		if (vs_seq_before(s->next_seq, x->floor - 1))
			s->next_seq = x->floor - 1;
	}
	return 0;
}

static void on_session_del(struct replay *r, const struct vs_rec_str *id)
{
	struct vs_session *s = vs_registry_del(r->sessions, (const char *)id->p, id->len);
	if (!s)
		return;
	s->ended = true;
	vs_map_del(&r->floors, &s, sizeof(s));
	/* Pending entries point at s: keep it alive until the end of replay. */
	if (VS_VEC_GROW(r->dead, r->cap_dead, r->n_dead + 1, 16) < 0) {
		vs_session_unref(s); /* its entries are skipped: ended */
		return;
	}
	r->dead[r->n_dead++] = s;
}

static int on_msg(struct replay *r, const struct vs_rec_msg *x)
{
	if (vs_map_get(&r->msgs, &x->msg_id, sizeof(x->msg_id)))
		return 0;
	struct vs_props pr;
	memset(&pr, 0, sizeof(pr));
	if (x->has_payload_format) {
		pr.present |= 1ull << VS_PROP_PAYLOAD_FORMAT;
		pr.payload_format = x->payload_format;
	}
	if (x->has_expiry) {
		pr.present |= 1ull << VS_PROP_MESSAGE_EXPIRY;
		pr.message_expiry = x->expiry_interval;
	}
	if (x->content_type.p) {
		pr.present |= 1ull << VS_PROP_CONTENT_TYPE;
		pr.content_type = (struct vs_buf){x->content_type.p, x->content_type.len};
	}
	if (x->response_topic.p) {
		pr.present |= 1ull << VS_PROP_RESPONSE_TOPIC;
		pr.response_topic = (struct vs_buf){x->response_topic.p, x->response_topic.len};
	}
	if (x->correlation_data.p) {
		pr.present |= 1ull << VS_PROP_CORRELATION_DATA;
		pr.correlation_data =
		    (struct vs_buf){x->correlation_data.p, x->correlation_data.len};
	}
	if (x->user_props_raw.p && x->user_props_raw.len) {
		pr.user_raw = (struct vs_buf){x->user_props_raw.p, x->user_props_raw.len};
		/* n_user only informs encoding size checks; count the 0x26 entries lazily: 1 is
		 * enough to mark them present. */
		pr.n_user = 1;
	}
	struct vs_buf origin = {x->origin_client_id.p, x->origin_client_id.len};
	int64_t created_ms = mono_of(r, x->created_wall);
	struct vs_msg *m = vs_msg_make((const char *)x->topic.p, x->topic.len, x->payload.p,
				       x->payload.len, x->qos, x->retain, &pr, &origin, created_ms);
	if (!m)
		return -ENOMEM;
	atomic_store(&m->store_id, x->msg_id);
	if (x->sseq) { /* from a cluster's stream: held by connected sessions (vs_session_hold) */
		m->sseq = x->sseq;
		m->held = &r->b->stream_held;
		if (!r->importing &&
		    VS_VEC_GROW(r->routed, r->cap_routed, r->n_routed + 1, 256) == 0)
			r->routed[r->n_routed++] = x->sseq; /* no memory: routed twice */
	}
	if (x->msg_id > r->max_id)
		r->max_id = x->msg_id;
	if (vs_map_put(&r->msgs, &x->msg_id, sizeof(x->msg_id), m, NULL) < 0) {
		vs_msg_unref(m);
		return -ENOMEM;
	}
	return 0;
}

static struct pending *pending_for(struct replay *r, struct vs_session *s, uint64_t id,
				   uint32_t dseq, bool *fresh)
{
	/* Keyed by delivery too: the same message queued again for the same session (retained on
	 * re-subscribe) is a new entry, not the completed one. */
	uint8_t key[20];
	memcpy(key, &s, sizeof(s));
	memcpy(key + 8, &id, 8);
	memcpy(key + 16, &dseq, 4);
	uintptr_t at = (uintptr_t)vs_map_get(&r->index, key, sizeof(key));
	if (fresh)
		*fresh = !at;
	if (at)
		return &r->pend[at - 1];
	if (VS_VEC_GROW(r->pend, r->cap_pend, r->n_pend + 1, 256) < 0)
		return NULL;
	struct pending *p = &r->pend[r->n_pend++];
	memset(p, 0, sizeof(*p));
	p->s = s;
	p->msg_id = id;
	p->dseq = dseq;
	p->seq = r->seq++;
	if (vs_map_put(&r->index, key, sizeof(key), (void *)(uintptr_t)r->n_pend, NULL) < 0) {
		r->n_pend--;
		return NULL;
	}
	return p;
}

static int on_queue(struct replay *r, const struct vs_rec_queue *x)
{
	struct vs_session *s = find_session(r, &x->client_id);
	if (!s)
		return 0;
	bool fresh;
	struct pending *p = pending_for(r, s, x->msg_id, x->seq, &fresh);
	if (!p)
		return -ENOMEM;
	uint32_t floor;
	if (fresh && floor_of(r, s, &floor) && vs_seq_before(x->seq, floor)) {
		/* A delivery from before the floor that replay had not met: it ended before the
		 * snapshot (whose old log held its DEQUEUE), or belonged to the session this one
		 * replaced; this record was late from another thread. */
		p->tomb = true;
		return 0;
	}
	if (vs_seq_before(s->next_seq, x->seq))
		s->next_seq = x->seq;
	/* States only move forward; a late record from another worker never moves one back. */
	if (p->tomb || (p->qos && x->state < p->state))
		return 0;
	p->qos = x->qos;
	p->state = x->state;
	p->retain = x->retain;
	p->dup = x->dup;
	p->packet_id = x->packet_id;
	free(p->sub_ids);
	p->sub_ids = NULL;
	p->n_sub_ids = 0;
	if (x->n_sub_ids) {
		p->sub_ids = malloc(x->n_sub_ids * sizeof(uint32_t));
		if (!p->sub_ids)
			return -ENOMEM;
		memcpy(p->sub_ids, x->sub_ids, x->n_sub_ids * sizeof(uint32_t));
		p->n_sub_ids = (uint32_t)x->n_sub_ids;
	}
	return 0;
}

static int on_dequeue(struct replay *r, const struct vs_rec_dequeue *x)
{
	struct vs_session *s = find_session(r, &x->client_id);
	if (!s)
		return 0;
	struct pending *p = pending_for(r, s, x->msg_id, x->seq, NULL);
	if (!p)
		return -ENOMEM;
	p->tomb = true;
	return 0;
}

static int on_sub(struct replay *r, const struct vs_rec_sub *x, bool add)
{
	struct vs_session *s = find_session(r, &x->client_id);
	if (!s)
		return 0;
	if (!add)
		return vs_session_sub_del(s, (const char *)x->filter.p, x->filter.len), 0;
	return vs_session_sub_add(s, (const char *)x->filter.p, x->filter.len, x->qos, x->options,
				  x->sub_id) < 0
		   ? -ENOMEM
		   : 0;
}

static int on_will(struct replay *r, const struct vs_rec_will *x, bool set)
{
	struct vs_session *s = find_session(r, &x->client_id);
	if (!s)
		return 0;
	/* The message may come later in the log: remember the id, resolve at the end. */
	if (set && x->publish_at_wall < 0) /* the client was connected: its delay from now */
		s->will_at_ms =
		    mono_of(r, r->now_wall - 1 -
				   (x->publish_at_wall < -(int64_t)INT32_MAX ? -(int64_t)INT32_MAX
									     : x->publish_at_wall));
	else
		s->will_at_ms = set ? mono_of(r, x->publish_at_wall) : 0;
	if (!set || !x->msg_id) {
		vs_map_del(&r->wills, &s, sizeof(s));
		return 0;
	}
	return vs_map_put(&r->wills, &s, sizeof(s), (void *)(uintptr_t)x->msg_id, NULL) < 0
		   ? -ENOMEM
		   : 0;
}

/* The latest change per topic wins, by version (records from different workers can reach the
 * log out of order); version 0 (older files) is ordered by position. A deletion stays as an
 * entry with message id 0 until the end, so an older RETAIN cannot bring the topic back. */
struct retained_at {
	uint64_t msg_id;
	uint64_t version;
};

static int on_retain(struct replay *r, const struct vs_rec_retain *x, bool set)
{
	struct retained_at *cur = vs_map_get(&r->retained, x->topic.p, x->topic.len);
	if (x->version > r->max_retain_version)
		r->max_retain_version = x->version;
	if (cur && x->version && cur->version > x->version)
		return 0;
	if (!cur) {
		cur = malloc(sizeof(*cur));
		if (!cur || vs_map_put(&r->retained, x->topic.p, x->topic.len, cur, NULL) < 0) {
			free(cur);
			return -ENOMEM;
		}
	}
	cur->msg_id = set ? x->msg_id : 0;
	cur->version = x->version;
	return 0;
}

static int on_record(void *ctx, const struct vs_rec *rec)
{
	struct replay *r = ctx;
	struct vs_session *s;
	switch (rec->type) {
	case VS_REC_SESSION:
		return on_session(r, &rec->u.session);
	case VS_REC_SESSION_DEL:
		on_session_del(r, &rec->u.client_id);
		return 0;
	case VS_REC_SUB:
		return on_sub(r, &rec->u.sub, true);
	case VS_REC_UNSUB:
		return on_sub(r, &rec->u.sub, false);
	case VS_REC_MSG:
		return on_msg(r, &rec->u.msg);
	case VS_REC_RETAIN:
	case VS_REC_RETAIN_DEL:
		return on_retain(r, &rec->u.retain, rec->type == VS_REC_RETAIN);
	case VS_REC_QUEUE:
		return on_queue(r, &rec->u.queue);
	case VS_REC_DEQUEUE:
		return on_dequeue(r, &rec->u.dequeue);
	case VS_REC_INQOS2:
		s = find_session(r, &rec->u.inqos2.client_id);
		if (s && rec->u.inqos2.add)
			return vs_session_in_qos2_add(s, rec->u.inqos2.packet_id) < 0 ? -ENOMEM : 0;
		if (s)
			vs_session_in_qos2_del(s, rec->u.inqos2.packet_id);
		return 0;
	case VS_REC_WILL:
		return on_will(r, &rec->u.will, true);
	case VS_REC_WILL_DEL:
		return on_will(r, &rec->u.will, false);
	default:
		return 0;
	}
}

static struct vs_msg *msg_by_id(struct replay *r, uint64_t id)
{
	return vs_map_get(&r->msgs, &id, sizeof(id));
}

static int cmp_pending(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;
	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Moves replayed queue entries into their sessions, in their original order. */
static void rebuild_queues(struct replay *r)
{
	if (r->n_pend > 1)
		qsort(r->pend, r->n_pend, sizeof(*r->pend), cmp_pending);
	for (size_t i = 0; i < r->n_pend; i++) {
		struct pending *p = &r->pend[i];
		struct vs_msg *m = msg_by_id(r, p->msg_id);
		if (p->tomb || p->s->ended || !m) {
			free(p->sub_ids);
			continue;
		}
		struct vs_qentry e = {.msg = vs_msg_ref(m),
				      .qos = p->qos,
				      .retain = p->retain,
				      .state = p->state,
				      .packet_id = p->packet_id,
				      .seq = p->dseq,
				      .dup = p->state != VS_Q_QUEUED};
		vs_qentry_set_sub_ids(&e, p->sub_ids, p->n_sub_ids);
		free(p->sub_ids);
		struct vs_ring *ring = p->state == VS_Q_QUEUED ? &p->s->queue : &p->s->inflight;
		if (vs_ring_push(ring, &e) < 0) {
			vs_qentry_fini(&e);
			continue;
		}
		if (ring == &p->s->queue)
			p->s->queued_bytes += m->payload.len;
		if (r->importing)
			continue;
		if (ring == &p->s->queue)
			r->b->restored_queued++;
		else
			r->b->restored_inflight++;
	}
}

void vs_bp_session_subscribe(struct vs_broker *b, struct vs_session *s)
{
	for (uint32_t i = 0; i < vs_session_n_subs(s); i++) {
		const struct vs_session_sub *x = &s->subs->v[i];
		struct vs_sub sub = {.owner = s,
				     .sub_id = x->sub_id,
				     .qos = x->qos,
				     .no_local = (x->options >> 2) & 1,
				     .retain_as_published = (x->options >> 3) & 1,
				     .retain_handling = (x->options >> 4) & 3};
		vs_router_sub_add(b, x->filter, x->len, &sub);
	}
}

/* Subscriptions into the trie, wills resolved. */
static void rebuild_sessions(struct replay *r)
{
	struct vs_broker *b = r->b;
	size_t it = 0;
	struct vs_session *s;
	while (vs_registry_next(&b->sessions, &it, &s)) {
		vs_bp_session_subscribe(b, s);
		uint64_t will_id = (uintptr_t)vs_map_get(&r->wills, &s, sizeof(s));
		if (will_id) {
			struct vs_msg *m = msg_by_id(r, will_id);
			s->will = m ? vs_msg_ref(m) : NULL;
		}
	}
}

static void rebuild_retained(struct replay *r)
{
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&r->retained, &it, &key, &klen, &val)) {
		struct retained_at *at = val;
		struct vs_msg *m = at->msg_id ? msg_by_id(r, at->msg_id) : NULL;
		if (m)
			vs_retain_set(r->b->retain, key, klen, m);
	}
	vs_retain_version_floor(r->b->retain, r->max_retain_version + 1);
}

static void replay_fini(struct replay *r)
{
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&r->msgs, &it, &key, &klen, &val))
		vs_msg_unref(val);
	for (size_t i = 0; i < r->n_dead; i++)
		vs_session_unref(r->dead[i]);
	free(r->dead);
	vs_map_fini(&r->msgs);
	it = 0;
	while (vs_map_next(&r->retained, &it, &key, &klen, &val))
		free(val);
	vs_map_fini(&r->retained);
	vs_map_fini(&r->index);
	vs_map_fini(&r->wills);
	vs_map_fini(&r->floors);
	free(r->pend);
	free(r->routed);
}

/* b->routed_before from the stream sequences replayed: sorted, each once, the highest kept. */
static void keep_routed(struct vs_broker *b, struct replay *r)
{
	if (!r->n_routed)
		return;
	qsort(r->routed, r->n_routed, sizeof(*r->routed), vs_cmp_u64);
	size_t n = 0;
	for (size_t i = 0; i < r->n_routed; i++)
		if (!n || r->routed[i] != r->routed[n - 1])
			r->routed[n++] = r->routed[i];
	size_t from = n > VS_ROUTED_KEEP ? n - VS_ROUTED_KEEP : 0;
	memmove(r->routed, r->routed + from, (n - from) * sizeof(*r->routed));
	/* The replay's array had room for every record's: what is kept lives as long as the
	 * broker, so it gives the rest back. */
	uint64_t *kept = realloc(r->routed, (n - from) * sizeof(*r->routed));
	if (kept)
		r->routed = kept;
	free(b->routed_before);
	b->routed_before = r->routed;
	b->n_routed_before = n - from;
	r->routed = NULL;
	r->n_routed = r->cap_routed = 0;
}

bool vs_bp_routed_before(const struct vs_broker *b, uint64_t sseq)
{
	return b->n_routed_before && bsearch(&sseq, b->routed_before, b->n_routed_before,
					     sizeof(sseq), vs_cmp_u64) != NULL;
}

/* ---- Snapshots ---------------------------------------------------------------------------- */

struct snap {
	struct vs_broker *b;
	struct vs_store_snap *snap; /* NULL: records only go into *buf (one session's export) */
	struct vs_store_buf own;
	struct vs_store_buf *buf; /* &own, or the caller's */
	bool subs_only;		  /* a session's settings and subscriptions, nothing else */
	bool floor;		  /* each session's record again at its end, with the floor */
	struct vs_map written;	  /* message ids already in this snapshot */
	int64_t now_ms, now_wall;
	int err;
};

static void snap_flush(struct snap *x, bool force)
{
	if (x->err || !x->snap || (!force && x->buf->len < (1u << 20)))
		return;
	int rc = vs_store_snapshot_write(x->snap, x->buf);
	if (rc < 0)
		x->err = rc;
}

static void snap_append(struct snap *x, const struct vs_rec *r)
{
	if (x->err)
		return;
	int rc = vs_store_append(x->buf, r);
	if (rc < 0)
		x->err = rc;
	/* No write here: callers hold a session lock or the retained store's read lock, and no
	 * lock is held across a syscall. write_snapshot() flushes between sessions. */
}

static uint64_t snap_msg(struct snap *x, struct vs_msg *m)
{
	uint64_t id = atomic_load(&m->store_id);
	if (!id) {
		uint64_t fresh = atomic_fetch_add(&x->b->next_store_id, 1);
		if (atomic_compare_exchange_strong(&m->store_id, &id, fresh))
			id = fresh;
	}
	if (vs_map_get(&x->written, &id, sizeof(id)))
		return id;
	vs_map_put(&x->written, &id, sizeof(id), (void *)1, NULL);
	struct vs_rec r;
	vs_bp_msg_rec(m, id, x->now_ms, x->now_wall, &r);
	snap_append(x, &r);
	return id;
}

static void snap_entry(struct snap *x, struct vs_session *s, struct vs_qentry *e)
{
	if (!e->msg)
		return;
	struct vs_rec r;
	vs_bp_queue_rec(s, e, snap_msg(x, e->msg), &r);
	snap_append(x, &r);
}

/* One session's whole state. Called with s locked. */
static void snap_session(struct snap *x, struct vs_session *s)
{
	struct vs_rec_str id = {(const uint8_t *)s->client_id, s->id_len};
	struct vs_rec r = {.type = VS_REC_SESSION};
	r.u.session.client_id = id;
	r.u.session.expiry_interval = s->expiry;
	r.u.session.protocol_version = s->version;
	r.u.session.offline_since_wall = s->connected ? 0 : s->offline_since_wall;
	snap_append(x, &r);
	for (uint32_t i = 0; i < vs_session_n_subs(s); i++) {
		const struct vs_session_sub *sub = &s->subs->v[i];
		struct vs_rec sr = {.type = VS_REC_SUB};
		sr.u.sub.client_id = id;
		sr.u.sub.filter = (struct vs_rec_str){(const uint8_t *)sub->filter, sub->len};
		sr.u.sub.qos = sub->qos;
		sr.u.sub.options = sub->options;
		sr.u.sub.sub_id = sub->sub_id;
		snap_append(x, &sr);
	}
	if (x->subs_only)
		return;
	for (uint32_t i = 0; i < s->inflight.count; i++)
		snap_entry(x, s, vs_ring_at(&s->inflight, i));
	for (uint32_t i = 0; i < s->queue.count; i++)
		snap_entry(x, s, vs_ring_at(&s->queue, i));
	uint32_t pos = 0;
	uint16_t pid;
	while (vs_session_in_qos2_next(s, &pos, &pid)) {
		struct vs_rec qr = {.type = VS_REC_INQOS2};
		qr.u.inqos2.client_id = id;
		qr.u.inqos2.packet_id = pid;
		qr.u.inqos2.add = true;
		snap_append(x, &qr);
	}
	if (x->floor) {
		/* The same settings again, with the floor: every delivery numbered up to next_seq
		 * that is not above is over (a snapshot's: no DEQUEUE will say so once the old log
		 * is gone), or another session's (vs_bp_session_record). */
		r.u.session.has_floor = true;
		r.u.session.floor = s->next_seq + 1;
		snap_append(x, &r);
	}
	if (s->live_will && s->connected) {
		struct vs_rec wr = {.type = VS_REC_WILL};
		wr.u.will.client_id = id;
		wr.u.will.msg_id = snap_msg(x, s->live_will);
		wr.u.will.publish_at_wall = -(int64_t)s->live_will_delay - 1;
		snap_append(x, &wr);
	} else if (s->will) {
		struct vs_rec wr = {.type = VS_REC_WILL};
		wr.u.will.client_id = id;
		wr.u.will.msg_id = snap_msg(x, s->will);
		wr.u.will.publish_at_wall = x->now_wall + (s->will_at_ms - x->now_ms) / 1000;
		snap_append(x, &wr);
	}
}

static void snap_retained(void *ctx, const char *topic, size_t len, void *msg)
{
	struct snap *x = ctx;
	if (len >= 4 && memcmp(topic, "$SYS", 4) == 0)
		return;
	struct vs_rec r = {.type = VS_REC_RETAIN};
	r.u.retain.topic = (struct vs_rec_str){(const uint8_t *)topic, len};
	r.u.retain.msg_id = snap_msg(x, msg);
	/* Read under the store's read lock: any later change has a higher version. */
	r.u.retain.version = vs_retain_version(x->b->retain);
	snap_append(x, &r);
}

/*
 * Writes the broker's whole persistent state as a new snapshot: sessions are copied out of the
 * registry under reg_lock, then each is locked only while its records are encoded, so workers
 * are never stalled for long. Returns 0 or a negative error (the previous files then stay).
 */
static int write_snapshot(struct vs_broker *b)
{
	struct snap x = {.b = b, .floor = true, .now_ms = vs_now_ms(), .now_wall = vs_wall_s()};
	x.buf = &x.own;
	int rc = vs_store_snapshot_begin(b->store, &x.snap);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&b->reg_lock);
	size_t n = 0, it = 0;
	struct vs_session **all = malloc((b->sessions.count + 1) * sizeof(*all));
	struct vs_session *val;
	while (all && vs_registry_next(&b->sessions, &it, &val))
		all[n++] = vs_session_ref(val);
	pthread_mutex_unlock(&b->reg_lock);
	if (!all)
		x.err = -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct vs_session *s = all[i];
		pthread_mutex_lock(&s->lock);
		if (s->persisted && !s->ended)
			snap_session(&x, s);
		pthread_mutex_unlock(&s->lock);
		vs_session_unref(s);
		snap_flush(&x, false);
	}
	free(all);
	/* The retained store's read lock is held while fn runs: fn only encodes, into memory (the
	 * retained messages' records are written after the lock is released). */
	vs_retain_foreach(b->retain, snap_retained, &x);
	snap_flush(&x, true);
	rc = vs_store_snapshot_end(x.snap, x.err == 0);
	vs_store_buf_fini(&x.own);
	vs_map_fini(&x.written);
	return x.err ? x.err : rc;
}

/* ---- One session, between the nodes of a cluster (cluster_session.h) -------------------- */

int vs_bp_session_export(struct vs_broker *b, struct vs_session *s, bool whole,
			 struct vs_store_buf *out)
{
	struct snap x = {.b = b,
			 .buf = out,
			 .subs_only = !whole,
			 .now_ms = vs_now_ms(),
			 .now_wall = vs_wall_s()};
	snap_session(&x, s);
	vs_map_fini(&x.written);
	return x.err;
}

void vs_bp_session_record(struct vs_worker *w, struct vs_session *s)
{
	if (!w->b->store)
		return;
	if (w->cur) /* its CONNACK waits for these records, as for any (persist.c) */
		w->cur->durable_pending = true;
	struct snap x = {.b = w->b,
			 .buf = &w->pbuf,
			 .floor = true,
			 .now_ms = w->now_ms,
			 .now_wall = vs_wall_s()};
	/* Read after those sessions ended (under their lock): a replaced one ended before its
	 * successor was made, and reg_lock or the caller's thread orders the two. */
	uint32_t ended = atomic_load_explicit(&w->b->ended_seq, memory_order_relaxed);
	if (vs_seq_before(s->next_seq, ended))
		s->next_seq = ended;
	snap_session(&x, s);
	vs_map_fini(&x.written);
	if (x.err < 0)
		vs_log(w->b->log, VS_LOG_ERR, "persistence: cannot record session %s: %s",
		       s->client_id, vs_strerror(x.err));
	s->persisted = true;
}

/* The client id a record is about, or NULL (MSG, RETAIN: about no client). */
static const struct vs_rec_str *rec_client(const struct vs_rec *r)
{
	switch (r->type) {
	case VS_REC_SESSION:
		return &r->u.session.client_id;
	case VS_REC_SUB:
	case VS_REC_UNSUB:
		return &r->u.sub.client_id;
	case VS_REC_QUEUE:
		return &r->u.queue.client_id;
	case VS_REC_DEQUEUE:
		return &r->u.dequeue.client_id;
	case VS_REC_INQOS2:
		return &r->u.inqos2.client_id;
	default:
		return NULL;
	}
}

struct vs_session *vs_bp_session_import(struct vs_broker *b, const char *client_id, size_t idlen,
					const uint8_t *buf, size_t len, bool whole,
					const char **why)
{
	struct vs_registry sessions;
	memset(&sessions, 0, sizeof(sessions));
	struct replay r = {.b = b,
			   .sessions = &sessions,
			   .importing = true,
			   .now_ms = vs_now_ms(),
			   .now_wall = vs_wall_s()};
	uint32_t *scratch = NULL;
	size_t cap = 0, off = 0;
	int rc = 0;
	*why = "";
	while (off < len && rc == 0) {
		struct vs_rec rec;
		long k = vs_rec_decode(buf + off, len - off, &rec, &scratch, &cap);
		if (k <= 0) {
			rc = k == 0 ? VS_EPROTO : (int)k;
			*why = k == -ENOMEM ? "no memory" : "a damaged record";
			break;
		}
		off += (size_t)k;
		const struct vs_rec_str *id = rec_client(&rec);
		/* Only this client's session, its subscriptions, queue and QoS 2 state, and the
		 * messages they name; a will is not taken along (the new connection resumes the
		 * session, which drops it [MQTT-3.1.3-9]). */
		bool about = rec.type == VS_REC_MSG ||
			     (id && id->len == idlen && memcmp(id->p, client_id, idlen) == 0);
		if (!whole)
			about = about && (rec.type == VS_REC_SESSION || rec.type == VS_REC_SUB ||
					  rec.type == VS_REC_UNSUB);
		if (vs_rec_known(&rec) && about && rec.type != VS_REC_SESSION_DEL &&
		    (rc = on_record(&r, &rec)) < 0)
			*why = "no memory";
	}
	free(scratch);
	struct vs_session *s = NULL, *other;
	if (rc == 0 && !(s = vs_registry_del(&sessions, client_id, idlen)))
		*why = "no session in it";
	size_t it = 0;
	while (vs_registry_next(&sessions, &it, &other))
		other->ended = true; /* its queue entries are dropped */
	rebuild_queues(&r);
	if (s)
		s->persisted = false; /* not in this node's store yet: vs_bp_session_record() */
	/* Their ids were the other node's: this node's store gives them its own. */
	const char *key;
	size_t klen;
	void *val;
	it = 0;
	while (vs_map_next(&r.msgs, &it, &key, &klen, &val))
		atomic_store(&((struct vs_msg *)val)->store_id, 0);
	it = 0;
	while (vs_registry_next(&sessions, &it, &other))
		vs_session_unref(other);
	vs_registry_fini(&sessions);
	replay_fini(&r);
	return s;
}

static void *snapshot_thread(void *arg)
{
	struct vs_broker *b = arg;
	int64_t t0 = vs_now_ms();
	int rc = write_snapshot(b);
	if (rc < 0)
		vs_log(b->log, VS_LOG_ERR, "persistence: snapshot failed: %s", vs_strerror(rc));
	else
		vs_log(b->log, VS_LOG_INFO, "persistence: snapshot written in %lld ms",
		       (long long)(vs_now_ms() - t0));
	atomic_store(&b->snapshot_running, false);
	return NULL;
}

void vs_bp_maybe_compact(struct vs_broker *b)
{
	if (!b->store || atomic_load(&b->snapshot_running))
		return;
	struct vs_store_stats st;
	vs_store_get_stats(b->store, &st);
	bool asked = atomic_exchange(&b->snapshot_asked, false);
	if (!asked && st.segment_bytes < VS_BP_COMPACT_BYTES)
		return;
	if (b->snapshot_thread_started) {
		pthread_join(b->snapshot_thread, NULL);
		b->snapshot_thread_started = false;
	}
	atomic_store(&b->snapshot_running, true);
	if (pthread_create(&b->snapshot_thread, NULL, snapshot_thread, b) != 0) {
		atomic_store(&b->snapshot_running, false);
		return;
	}
	b->snapshot_thread_started = true;
}

static enum vs_fsync_policy policy_of(const struct vs_config *c)
{
	switch (c->persistence_fsync) {
	case VS_CONF_FSYNC_BATCH:
		return VS_FSYNC_BATCH;
	case VS_CONF_FSYNC_INTERVAL:
		return VS_FSYNC_INTERVAL;
	default:
		return VS_FSYNC_NEVER;
	}
}

/* ---- Importing a Mosquitto database ------------------------------------------------------ */

/* <persistence_location>/<persistence_file>: where Mosquitto keeps its database. */
static void mosqdb_path(const struct vs_config *c, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", c->persistence_location ? c->persistence_location : ".",
		 c->persistence_file ? c->persistence_file : "mosquitto.db");
}

/* <persistence_location>/<persistence_file>.d: Viesti's store, beside (never in place of) a
 * Mosquitto database file of the same name (docs/persistence.md). */
static void store_dir(const struct vs_config *c, char *out, size_t n)
{
	char path[4000];
	mosqdb_path(c, path, sizeof(path));
	snprintf(out, n, "%s.d", path);
}

/* Reads the whole file at path into a malloc'd buffer; the file is opened read-only. Returns 0,
 * or -errno (-ENOENT: there is none). */
static int read_whole(const char *path, uint8_t **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		goto out_close;
	}
	size_t want = (size_t)st.st_size, got = 0;
	uint8_t *p = malloc(want ? want : 1);
	if (!p) {
		rc = -ENOMEM;
		goto out_close;
	}
	while (got < want) {
		ssize_t k = read(fd, p + got, want - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			free(p);
			rc = k < 0 ? -errno : -EIO;
			goto out_close;
		}
		got += (size_t)k;
	}
	*buf = p;
	*len = got;
out_close:
	close(fd);
	return rc;
}

/* Logs what an import found wrong with the file itself (damage, or not importable at all). */
static void log_mosqdb_damage(const struct vs_log *log, const char *path,
			      const struct vs_mosqdb_info *p)
{
	if (p->damaged)
		vs_log(
		    log, VS_LOG_WARN,
		    "persistence: %s is damaged at byte %zu of %zu (%s): everything before it was "
		    "imported, the remaining %zu bytes were skipped",
		    path, p->valid_end, p->size, p->why, p->size - p->valid_end);
}

/* On the first start (the store did not exist), replays the Mosquitto database at
 * persistence_location/persistence_file, if there is one, into r. Never fails the start. */
static void import_first_start(struct vs_broker *b, struct replay *r)
{
	char path[4096];
	mosqdb_path(b->conf, path, sizeof(path));
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = read_whole(path, &buf, &len);
	if (rc == -ENOENT)
		return;
	if (rc < 0) {
		vs_log(b->log, VS_LOG_ERR,
		       "persistence: cannot read Mosquitto database %s: %s; "
		       "starting without it",
		       path, vs_strerror(rc));
		return;
	}
	struct vs_mosqdb_import_info info;
	rc = vs_mosqdb_import(buf, len, r->max_id, r->now_wall, on_record, r, &info);
	free(buf);
	if (rc == VS_EPROTO) {
		vs_log(b->log, VS_LOG_ERR, "persistence: %s not imported: %s; starting without it",
		       path, info.parse.why);
		return;
	}
	if (rc < 0)
		vs_log(b->log, VS_LOG_ERR,
		       "persistence: importing %s stopped: %s; what was read "
		       "so far is kept",
		       path, vs_strerror(rc));
	log_mosqdb_damage(b->log, path, &info.parse);
	char sum[512];
	vs_mosqdb_import_summary(&info, sum, sizeof(sum));
	vs_log(b->log, VS_LOG_NOTICE,
	       "persistence: imported from %s (Mosquitto format version %u): %s. The file is left "
	       "as it was; Viesti's store is %s.d",
	       path, info.parse.version, sum, path);
}

/* The replay callback of a manual import: only the highest message id in use matters. */
static int note_max_id(void *ctx, const struct vs_rec *rec)
{
	uint64_t *max = ctx;
	if (rec->type == VS_REC_MSG && rec->u.msg.msg_id > *max)
		*max = rec->u.msg.msg_id;
	return 0;
}

static int append_rec(void *ctx, const struct vs_rec *rec)
{
	int rc = vs_store_append(ctx, rec);
	return rc == VS_ETOOBIG ? 0 : rc; /* an over-long field: that record is left out */
}

int vs_bp_import_mosquitto(const struct vs_config *c, const char *file, FILE *out)
{
	char dir[4096], err[512];
	store_dir(c, dir, sizeof(dir));
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = read_whole(file, &buf, &len);
	if (rc < 0) {
		fprintf(out, "viesti broker: cannot read %s: %s\n", file, vs_strerror(rc));
		return rc;
	}
	struct vs_store *st;
	rc = vs_store_open(dir, VS_FSYNC_BATCH, 0, &c->log, &st, err, sizeof(err));
	if (rc < 0) {
		fprintf(out, "viesti broker: %s\n", err);
		goto out_free;
	}
	uint64_t max_id = 0;
	struct vs_store_replay_info ri;
	long n = vs_store_replay(st, note_max_id, &max_id, &ri);
	if (n < 0) {
		rc = (int)n;
		fprintf(out, "viesti broker: reading the store %s failed: %s\n", dir,
			vs_strerror(rc));
		goto out_close;
	}
	struct vs_store_buf sb;
	vs_store_buf_init(&sb);
	struct vs_mosqdb_import_info info;
	rc = vs_mosqdb_import(buf, len, max_id, vs_wall_s(), append_rec, &sb, &info);
	if (rc == VS_EPROTO)
		fprintf(out, "viesti broker: %s not imported: %s\n", file, info.parse.why);
	else if (rc < 0)
		fprintf(out, "viesti broker: importing %s failed: %s\n", file, vs_strerror(rc));
	else if ((rc = vs_store_commit(st, &sb)) < 0)
		fprintf(out, "viesti broker: writing to %s failed: %s\n", dir, vs_strerror(rc));
	vs_store_buf_fini(&sb);
	if (rc < 0)
		goto out_close;
	char sum[512];
	vs_mosqdb_import_summary(&info, sum, sizeof(sum));
	if (info.parse.damaged)
		fprintf(out,
			"%s is damaged at byte %zu of %zu (%s): the remaining %zu bytes were "
			"skipped\n",
			file, info.parse.valid_end, info.parse.size, info.parse.why,
			info.parse.size - info.parse.valid_end);
	fprintf(out, "imported %s (Mosquitto format version %u) into %s: %s%s\n", file,
		info.parse.version, dir, sum,
		n > 0 ? " (added to what the store held: same client ids and retained topics are "
			"replaced)"
		      : "");
	if (!c->persistence)
		fprintf(out, "note: persistence is off in this configuration; the broker reads the "
			     "store only with `persistence true`\n");
out_close:
	vs_store_close(st);
out_free:
	free(buf);
	return rc < 0 ? rc : 0;
}

/* Upper bounds of viesti_persist_commit_seconds, in nanoseconds: from a write(2) that only
 * copies (tens of microseconds) to an fsync on a slow disk. */
static const uint64_t commit_bounds[] = {
    50000,    100000,	250000,	  500000,    1000000,	2500000,   5000000,
    10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
};

int vs_bp_open(struct vs_broker *b, char *err, size_t errlen)
{
	const struct vs_config *c = b->conf;
	vs_prom_hist_init(&b->commit_hist, commit_bounds,
			  sizeof(commit_bounds) / sizeof(commit_bounds[0]));
	atomic_init(&b->next_store_id, 1);
	if (!c->persistence)
		return 0;
	char dir[4096];
	store_dir(c, dir, sizeof(dir));
	struct stat dst;
	bool fresh = stat(dir, &dst) < 0 && errno == ENOENT;
	int64_t t0 = vs_now_ms();
	int rc = vs_store_open(dir, policy_of(c), (unsigned)c->persistence_fsync_interval_ms,
			       b->log, &b->store, err, errlen);
	if (rc < 0)
		return rc;
	struct replay r = {
	    .b = b, .sessions = &b->sessions, .now_ms = vs_now_ms(), .now_wall = vs_wall_s()};
	struct vs_store_replay_info info;
	long n = vs_store_replay(b->store, on_record, &r, &info);
	if (n < 0) {
		snprintf(err, errlen, "persistence: reading %s failed: %s", dir,
			 vs_strerror((int)n));
		replay_fini(&r);
		return (int)n;
	}
	/* A store that never got as far as its first snapshot counts as new too. */
	if (fresh || (info.files == 0 && n == 0))
		import_first_start(b, &r);
	rebuild_queues(&r);
	rebuild_sessions(&r);
	vs_broker_sessions_changed(b); /* no worker runs yet: no lock needed */
	rebuild_retained(&r);
	keep_routed(b, &r);
	atomic_store(&b->next_store_id, r.max_id + 1);
	replay_fini(&r);
	vs_log(b->log, VS_LOG_NOTICE,
	       "persistence: %s: %ld records replayed in %lld ms: %zu sessions, %zu retained "
	       "messages, %zu subscriptions (fsync %s)",
	       dir, n, (long long)(vs_now_ms() - t0), b->sessions.count, vs_retain_count(b->retain),
	       vs_tree_count(b->tree),
	       c->persistence_fsync == VS_CONF_FSYNC_BATCH	? "batch"
	       : c->persistence_fsync == VS_CONF_FSYNC_INTERVAL ? "interval"
								: "never");
	/* Compact what was replayed into one snapshot, so the log starts empty. */
	rc = write_snapshot(b);
	if (rc < 0)
		vs_log(b->log, VS_LOG_WARN, "persistence: start-up snapshot failed: %s",
		       vs_strerror(rc));
	return 0;
}

void vs_bp_close(struct vs_broker *b)
{
	if (!b->store)
		return;
	if (b->snapshot_thread_started)
		pthread_join(b->snapshot_thread, NULL);
	int rc = write_snapshot(b);
	if (rc < 0)
		vs_log(b->log, VS_LOG_WARN, "persistence: final snapshot failed: %s",
		       vs_strerror(rc));
	vs_store_close(b->store);
	b->store = NULL;
	free(b->routed_before);
	b->routed_before = NULL;
	b->n_routed_before = 0;
}
