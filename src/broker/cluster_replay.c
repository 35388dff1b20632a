/* The stream read for a session that came here (rebuilt or handed over), and each message of
 * it taken once: the window rebuilt sessions share, two copies of a session meeting, and the
 * skips of late deliveries (cluster_session_int.h). */
#include "broker/cluster_session_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/vec.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/cluster_nats.h"
#include "codec/codec.h"
#include "session/session.h"

/* s does not take the stream's messages up to cut should they reach this node live from now
 * on (its consumer behind): it has them, or its client acknowledged them on the node it came
 * from (vs_cluster_session_skips). Nothing to do when this node has routed that far already. */
static void add_skip(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t cut)
{
	if (cut <= vs_cjs_taken(vs_cluster_cjs(cs->b->cluster)))
		return;
	pthread_mutex_lock(&cs->skip_lock);
	uint32_t i = 0;
	while (i < cs->n_skips && cs->skips[i].s != s)
		i++;
	if (i < cs->n_skips) {
		if (cut > cs->skips[i].cut)
			cs->skips[i].cut = cut;
	} else if (VS_VEC_GROW(cs->skips, cs->cap_skips, cs->n_skips + 1, 8) == 0) {
		cs->skips[cs->n_skips++] = (struct skip){.s = vs_session_ref(s), .cut = cut};
	}
	if (cut > atomic_load(&cs->b->roam_cut))
		atomic_store(&cs->b->roam_cut, cut);
	pthread_mutex_unlock(&cs->skip_lock);
}

/* s has the stream's message sseq and does not take it again (s locked, or not yet in the
 * trie). taken: vs_cjs_taken() a moment ago. */
static void add_also(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t sseq,
		     uint64_t taken)
{
	if (sseq <= taken)
		return; /* routed here completely: it comes no more */
	pthread_mutex_lock(&cs->skip_lock);
	uint32_t i = 0;
	while (i < cs->n_skips && cs->skips[i].s != s)
		i++;
	if (i == cs->n_skips && VS_VEC_GROW(cs->skips, cs->cap_skips, cs->n_skips + 1, 8) == 0)
		cs->skips[cs->n_skips++] = (struct skip){.s = vs_session_ref(s)};
	if (i < cs->n_skips &&
	    vs_map_put(&cs->skips[i].also, &sseq, sizeof(sseq), (void *)1, NULL) == 0) {
		if (sseq > cs->skips[i].also_max)
			cs->skips[i].also_max = sseq;
		if (sseq > atomic_load(&cs->b->roam_cut))
			atomic_store(&cs->b->roam_cut, sseq);
	}
	pthread_mutex_unlock(&cs->skip_lock);
}

void vs_cs_skip_came(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t cut)
{
	add_skip(cs, s, cut);
	/* What it has beyond cut (the old node routes out of order) may reach this node late
	 * too. */
	uint64_t taken = vs_cjs_taken(vs_cluster_cjs(cs->b->cluster));
	for (struct vs_ring *r = &s->inflight; r; r = r == &s->inflight ? &s->queue : NULL)
		for (uint32_t i = 0; i < r->count; i++) {
			const struct vs_qentry *e = vs_ring_at(r, i);
			if (e->msg && e->msg->sseq > cut)
				add_also(cs, s, e->msg->sseq, taken);
		}
}

/* Forgets the skips this node has routed past (the giver thread, every 100 ms). */
void vs_cs_prune_skips(struct vs_cluster_sessions *cs)
{
	pthread_mutex_lock(&cs->skip_lock);
	bool none = cs->n_skips == 0;
	pthread_mutex_unlock(&cs->skip_lock);
	if (none)
		return;
	uint64_t taken = vs_cjs_taken(vs_cluster_cjs(cs->b->cluster)), max = 0;
	pthread_mutex_lock(&cs->skip_lock);
	for (uint32_t i = 0; i < cs->n_skips;) {
		struct skip *k = &cs->skips[i];
		uint64_t top = k->cut > k->also_max ? k->cut : k->also_max;
		if (top <= taken) {
			vs_session_unref(k->s);
			vs_map_fini(&k->also);
			*k = cs->skips[--cs->n_skips];
			continue;
		}
		max = top > max ? top : max;
		i++;
	}
	atomic_store(&cs->b->roam_cut, max);
	pthread_mutex_unlock(&cs->skip_lock);
}

bool vs_cluster_session_skips(struct vs_broker *b, const struct vs_session *s, uint64_t sseq)
{
	struct vs_cluster_sessions *cs = vs_cluster_sessions_of(b);
	if (!cs)
		return false;
	bool skip = false;
	pthread_mutex_lock(&cs->skip_lock); /* a few entries, while a node catches up */
	for (uint32_t i = 0; i < cs->n_skips && !skip; i++)
		skip =
		    cs->skips[i].s == s && (sseq <= cs->skips[i].cut ||
					    (sseq <= cs->skips[i].also_max &&
					     vs_map_get(&cs->skips[i].also, &sseq, sizeof(sseq))));
	pthread_mutex_unlock(&cs->skip_lock);
	return skip;
}

void vs_cs_window_clear(struct window *w)
{
	for (uint32_t i = 0; i < w->n; i++) {
		vs_msg_unref(w->v[i].msg);
		free(w->v[i].topic);
	}
	w->n = 0;
	w->bytes = 0;
	w->lo = 1;
	w->hi = 0;
}

/* Appends the stream's messages from sequence from up to last (or until a limit) to w, whose
 * hi is from - 1 (or which is empty: lo becomes from). */
static void window_read(struct vs_broker *b, struct window *w, uint64_t from, uint64_t last,
			int64_t until)
{
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = VS_CJS_STREAM;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = from;
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;
	if (js_SubscribeSync(&sub, vs_cluster_js(b), VS_CJS_SUBJECTS, NULL, &so, &jerr) != NATS_OK)
		return;
	if (!w->n && w->hi < w->lo)
		w->lo = from;
	uint64_t seq = from - 1;
	int64_t left;
	while (seq < last && w->n < REPLAY_MAX && w->bytes < WINDOW_BYTES &&
	       (left = until - vs_now_ms()) > 0 && !atomic_load(&b->stopping)) {
		natsMsg *m = NULL;
		if (natsSubscription_NextMsg(&m, sub, left < WAIT_MS ? left : WAIT_MS) != NATS_OK)
			break;
		jsMsgMetaData *meta = NULL;
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK)
			seq = meta->Sequence.Stream;
		jsMsgMetaData_Destroy(meta);
		struct vs_cluster_frame f;
		const char *why;
		int len = natsMsg_GetDataLength(m);
		struct vs_buf origin = {(const uint8_t *)"", 0};
		struct vs_msg *msg = NULL;
		if (vs_cluster_frame_decode((const uint8_t *)natsMsg_GetData(m),
					    (size_t)(len > 0 ? len : 0), &f, &why) == 0 &&
		    f.publish.qos > 0)
			msg = vs_msg_new(&f.publish.topic, &f.publish, &origin, vs_now_ms());
		natsMsg_Destroy(m);
		w->hi = seq;
		if (!msg)
			continue;
		msg->remote = true;
		msg->sseq = seq; /* held as a live one is (cluster.c), and known to vs_cs_merge() */
		msg->held = &b->stream_held;
		char *topic = strndup((const char *)msg->topic.p, msg->topic.len);
		if (!topic || VS_VEC_GROW(w->v, w->cap, w->n + 1, 256) < 0) {
			free(topic);
			vs_msg_unref(msg);
			w->hi = seq - 1; /* read again next time */
			break;
		}
		w->v[w->n++] = (struct wmsg){seq, msg, topic};
		w->bytes += msg->payload.len + msg->topic.len;
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
}

/*
 * The stream sequences of the messages whose PUBREC s's client gave, on any node (the journal
 * VS_RECS, vs_cjs_received) from floor on, into recs: a rebuild sends their PUBREL instead of
 * the message.
 * Bounded by until; what is not read is at least once, as before the journal.
 */
static void read_recs(struct vs_broker *b, const struct vs_session *s, uint64_t floor,
		      struct vs_map *recs, int64_t until)
{
	char subj[VS_CJS_RECS_SUBJECT_MAX];
	if (!vs_cjs_recs_subject(s->client_id, s->id_len, subj))
		return;
	/* Its last entry says where to stop (none: nothing to read). */
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	if (js_GetLastMsg(&m, vs_cluster_js(b), VS_CJS_RECS, subj, NULL, &jerr) != NATS_OK)
		return;
	uint64_t last = natsMsg_GetSequence(m);
	natsMsg_Destroy(m);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = VS_CJS_RECS;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverAll;
	natsSubscription *sub = NULL;
	if (js_SubscribeSync(&sub, vs_cluster_js(b), subj, NULL, &so, &jerr) != NATS_OK)
		return;
	uint64_t seq = 0;
	int64_t left;
	while (seq < last && (left = until - vs_now_ms()) > 0 && !atomic_load(&b->stopping)) {
		if (natsSubscription_NextMsg(&m, sub, left < WAIT_MS ? left : WAIT_MS) != NATS_OK)
			break;
		const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
		int len = natsMsg_GetDataLength(m);
		for (int i = 0; i + 8 <= len; i += 8) {
			uint64_t rec = 0;
			for (int k = 0; k < 8; k++)
				rec = rec << 8 | d[i + k];
			if (rec >= floor) /* what the rebuild reads */
				vs_map_put(recs, &rec, sizeof(rec), (void *)1,
					   NULL); /* no memory: twice */
		}
		jsMsgMetaData *meta = NULL;
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK)
			seq = meta->Sequence.Stream;
		else
			seq = last; /* not JetStream's: stop */
		jsMsgMetaData_Destroy(meta);
		natsMsg_Destroy(m);
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
}

/*
 * Queues in s the messages of w from sequence floor up to last that its subscriptions match
 * and that it does not hold already (came with it, or live meanwhile), while its queue has room
 * for them (max). Under s's lock throughout, as vs_deliver decides: then s skips what comes
 * live up to the last sequence covered, and only that (a read that stopped short must not make
 * it skip what nobody queued). Returns how many; *covered: the sequence covered up to.
 */
static uint32_t match(struct vs_cluster_sessions *cs, struct window *w, struct vs_session *s,
		      uint64_t floor, uint64_t last, int64_t max, struct vs_map *recs,
		      uint64_t *covered)
{
	uint32_t n = 0, i = 0;
	while (i < w->n && w->v[i].seq < floor)
		i++;
	pthread_mutex_lock(&s->lock); /* in the trie: others deliver to it too */
	struct vs_map have;
	memset(&have, 0, sizeof(have));
	for (struct vs_ring *r = &s->inflight; r; r = r == &s->inflight ? &s->queue : NULL)
		for (uint32_t k = 0; k < r->count; k++) {
			const struct vs_qentry *e = vs_ring_at(r, k);
			if (e->msg && e->msg->sseq)
				vs_map_put(&have, &e->msg->sseq, sizeof(e->msg->sseq), (void *)1,
					   NULL); /* no memory: at least once */
		}
	/* Read up to here (w->hi), unless the queue filled first. */
	uint64_t upto = w->hi < last ? w->hi : last;
	for (; i < w->n && w->v[i].seq <= last; i++) {
		if (s->queue.count >= (uint64_t)max) {
			upto = w->v[i].seq - 1;
			break;
		}
		struct vs_msg *msg = w->v[i].msg;
		if (vs_map_get(&have, &w->v[i].seq, sizeof(w->v[i].seq))) {
			if (recs) /* it came live meanwhile: goes as it is (release_rest) */
				vs_map_del(recs, &w->v[i].seq, sizeof(w->v[i].seq));
			continue;
		}
		/* One copy per message, at the highest QoS its subscriptions grant, with their
		 * identifiers [MQTT-3.3.4-3..5]; shared subscriptions had theirs in the group. */
		uint32_t ids[16], n_ids = 0;
		int qos = -1;
		for (uint32_t k = 0; k < vs_session_n_subs(s); k++) {
			const struct vs_session_sub *x = &s->subs->v[k];
			if (strncmp(x->filter, "$share/", 7) == 0 ||
			    !vs_topic_match(x->filter, w->v[i].topic))
				continue;
			uint8_t q = x->qos < msg->qos ? x->qos : msg->qos;
			qos = q > qos ? q : qos;
			if (x->sub_id && n_ids < 16)
				ids[n_ids++] = x->sub_id;
		}
		if (qos < 0)
			continue;
		struct vs_qentry e = {
		    .msg = vs_msg_ref(msg), .qos = (uint8_t)qos, .seq = ++s->next_seq};
		if (qos == 2 && recs && vs_map_del(recs, &w->v[i].seq, sizeof(w->v[i].seq))) {
			/* Its client gave the PUBREC for it: it gets the PUBREL again (with the
			 * packet id it had: vs_cjs_packet_id), not the message [MQTT-4.3.3]. */
			e.state = VS_Q_WAIT_PUBCOMP;
			e.packet_id = vs_cjs_packet_id(w->v[i].seq);
			if (vs_session_find_inflight(s, e.packet_id) >= 0 ||
			    vs_ring_push(&s->inflight, &e) < 0)
				vs_qentry_fini(&e);
			continue;
		}
		if (vs_qentry_set_sub_ids(&e, ids, n_ids) < 0 || vs_ring_push(&s->queue, &e) < 0) {
			vs_qentry_fini(&e);
		} else {
			s->queued_bytes += msg->payload.len;
			n++;
		}
	}
	if (upto >= floor)
		add_skip(cs, s, upto);
	pthread_mutex_unlock(&s->lock);
	vs_map_fini(&have);
	*covered = upto;
	return n;
}

/*
 * The PUBRECs of the journal that no message matched here answered: a message of a shared
 * group, one its subscriptions no longer match, one past where the replay stopped. Its client
 * holds each one's packet id until a PUBREL [MQTT-4.3.3], and would take a later message with
 * that id for a resend of the first and drop it: each gets its PUBREL, without a message.
 * Not those that came live while the replay ran (in flight or queued: sent with the same id).
 */
static void release_rest(struct vs_session *s, struct vs_map *recs)
{
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	if (!recs->count)
		return;
	pthread_mutex_lock(&s->lock);
	for (uint32_t k = 0; k < s->queue.count; k++) {
		const struct vs_qentry *q = vs_ring_at(&s->queue, k);
		if (q->msg && q->msg->sseq)
			vs_map_del(recs, &q->msg->sseq, sizeof(q->msg->sseq));
	}
	while (vs_map_next(recs, &it, &key, &klen, &val)) {
		uint64_t sseq;
		memcpy(&sseq, key, sizeof(sseq));
		struct vs_qentry e = {.qos = 2,
				      .state = VS_Q_WAIT_PUBCOMP,
				      .packet_id = vs_cjs_packet_id(sseq),
				      .seq = ++s->next_seq};
		if (vs_session_find_inflight(s, e.packet_id) < 0)
			vs_ring_push(&s->inflight, &e); /* no memory: the id stays held */
	}
	pthread_mutex_unlock(&s->lock);
}

/* Queues in s (not yet anyone's but this thread's) the QoS 1/2 messages of the stream after
 * sequence floor - 1 that its subscriptions match: what reached the dead node for it, or was
 * on its way there, after it went offline. At most max_queued_messages, and for at most
 * REPLAY_MS. With shared, the window serves the sessions that come after it, and a part
 * beyond its limits is read for this session alone; without, all of it is. Returns how many. */
static uint32_t replay(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t floor,
		       bool shared, struct vs_map *recs)
{
	struct vs_broker *b = cs->b;
	if (!floor || !vs_session_n_subs(s))
		return 0;
	int64_t until = vs_now_ms() + REPLAY_MS;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus st;
	while ((st = js_GetStreamInfo(&si, vs_cluster_js(b), VS_CJS_STREAM, NULL, &jerr)) !=
		   NATS_OK &&
	       vs_cluster_transient(st) && vs_now_ms() < until && !atomic_load(&b->stopping))
		nats_Sleep(RETRY_READ_MS); /* a moment without a leader, say */
	if (st != NATS_OK) {
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: client %s's session: the stream %s cannot be read (%s): what was "
		       "published for it from sequence %llu on is missing",
		       s->client_id, VS_CJS_STREAM, natsStatus_GetText(st),
		       (unsigned long long)floor);
		return 0;
	}
	uint64_t last = si->State.LastSeq, first = si->State.FirstSeq;
	jsStreamInfo_Destroy(si);
	if (first > floor && floor <= last) {
		/* Not a read that ran short: the stream no longer has them. */
		vs_log(
		    b->log, VS_LOG_WARN,
		    "cluster: client %s's session: the stream %s no longer has sequences %llu to "
		    "%llu (removed by its limits: cluster_stream_max_age): those messages are "
		    "missing for it",
		    s->client_id, VS_CJS_STREAM, (unsigned long long)floor,
		    (unsigned long long)(first > last ? last : first - 1));
		floor = first;
	}
	if (last < floor)
		return 0;
	int64_t max = b->conf->max_queued_messages;
	if (max <= 0)
		max = REPLAY_MAX;
	struct window *w = &cs->window;
	uint64_t covered = 0, from = floor;
	uint32_t n = 0;
	if (shared) {
		pthread_mutex_lock(&w->lock);
		until = vs_now_ms() + REPLAY_MS; /* from here: not spent waiting for the lock */
		/* Behind what it has (read again from floor), or stale: read anew. */
		if (floor < w->lo || floor > w->hi + 1 || vs_now_ms() - w->used_ms > WINDOW_KEEP_MS)
			vs_cs_window_clear(w);
		if (w->hi < last)
			window_read(b, w, w->hi >= w->lo ? w->hi + 1 : floor, last, until);
		w->used_ms = vs_now_ms();
		n = w->hi >= floor ? match(cs, w, s, floor, last, max, recs, &covered) : 0;
		/* The window may have been read further for another session (its last is
		 * later), or not at all (hi 0 after a failed read): this one takes floor..last. */
		from = w->hi >= floor ? covered + 1 : floor;
		pthread_mutex_unlock(&w->lock);
	}
	struct window alone = {.lo = 1, .hi = 0};
	bool full = false;
	while (from <= last && vs_now_ms() < until && !atomic_load(&b->stopping)) {
		if (s->queue.count >= (uint64_t)max) {
			full = true;
			break;
		}
		window_read(b, &alone, from, last, until);
		if (alone.hi < from) { /* nothing came: read again, while there is time */
			nats_Sleep(RETRY_READ_MS);
			continue;
		}
		n += match(cs, &alone, s, from, last, max, recs, &covered);
		from = covered + 1;
		if (covered < alone.hi && covered < last) {
			full = true;
			break;
		}
		vs_cs_window_clear(&alone);
	}
	vs_cs_window_clear(&alone);
	free(alone.v);
	if (from <= last) /* never silent: these are acknowledged messages */
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: client %s's session: the stream %s read up to sequence %llu of "
		       "%llu (%s): the messages after are missing for it",
		       s->client_id, VS_CJS_STREAM, (unsigned long long)(from - 1),
		       (unsigned long long)last,
		       full ? "its queue is full: max_queued_messages" : "no time left: 10 s");
	return n;
}

uint32_t vs_cs_replay(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t floor,
		      bool shared)
{
	/* A rebuild: what its client completed up to its PUBREC on the dead node (or before),
	 * released whatever the read of the stream finds (none: no subscriptions left, say). */
	struct vs_map recs;
	memset(&recs, 0, sizeof(recs));
	if (shared && floor)
		read_recs(cs->b, s, floor, &recs, vs_now_ms() + REPLAY_MS);
	uint32_t n = replay(cs, s, floor, shared, shared ? &recs : NULL);
	if (shared)
		release_rest(s, &recs);
	vs_map_fini(&recs);
	return n;
}
/* Moves what src holds for its client (queued, and sent but not acknowledged) to the end of
 * dst's queue, to be sent again: two copies of one session meet (at least once). Not moved:
 * a message from the stream that dst has too (the same stream sequence: both copies took it,
 * see take()), and with upto (dst came from a node that had routed the stream up to there to
 * it, and closed its connection first), one of the stream up to upto, which dst has or its
 * client acknowledged, and a QoS 0 one (at most once: dst may have had it). dst locked; src
 * ended or not yet anyone's. Returns how many moved; *same, how many were not. */
uint32_t vs_cs_merge(struct vs_session *dst, struct vs_session *src, uint64_t upto, uint32_t *same,
		     struct vs_cluster_sessions *cs)
{
	struct vs_map have; /* the stream sequences dst holds */
	memset(&have, 0, sizeof(have));
	bool indexed = true;
	for (struct vs_ring *r = &dst->inflight; r; r = r == &dst->inflight ? &dst->queue : NULL)
		for (uint32_t i = 0; i < r->count; i++) {
			const struct vs_qentry *e = vs_ring_at(r, i);
			if (e->msg && e->msg->sseq &&
			    vs_map_put(&have, &e->msg->sseq, sizeof(e->msg->sseq), (void *)1,
				       NULL) < 0)
				indexed = false; /* no memory: at least once */
		}
	pthread_mutex_lock(&src->lock);
	uint32_t n = 0;
	*same = 0;
	uint64_t taken = cs ? vs_cjs_taken(vs_cluster_cjs(cs->b->cluster)) : 0;
	for (struct vs_ring *r = &src->inflight; r; r = r == &src->inflight ? &src->queue : NULL) {
		for (uint32_t i = 0; i < r->count; i++) {
			struct vs_qentry e = *vs_ring_at(r, i);
			if (!e.msg || (e.qos == 2 && e.state == VS_Q_WAIT_PUBCOMP)) {
				vs_qentry_fini(&e); /* delivered: only its PUBREL was left */
				continue;
			}
			uint64_t sseq = e.msg->sseq;
			if ((upto && (e.qos == 0 || (sseq && sseq <= upto))) ||
			    (indexed && sseq && vs_map_get(&have, &sseq, sizeof(sseq)))) {
				vs_qentry_fini(&e);
				(*same)++;
				continue;
			}
			size_t bytes = e.msg->payload.len;
			e.state = VS_Q_QUEUED;
			e.packet_id = 0;
			e.dup = false;
			e.seq = ++dst->next_seq;
			if (vs_ring_push(&dst->queue, &e) < 0) {
				vs_qentry_fini(&e);
				continue;
			}
			dst->queued_bytes += bytes;
			n++;
			/* Both were in the trie: a worker that gave it to src may be about to give
			 * it to dst too. */
			if (cs && sseq)
				add_also(cs, dst, sseq, taken);
		}
		free(r->e);
		memset(r, 0, sizeof(*r));
	}
	src->queued_bytes = 0;
	vs_msg_unref(src->will); /* its session goes on in dst */
	src->will = NULL;
	pthread_mutex_unlock(&src->lock);
	vs_map_fini(&have);
	/* What came from src holds the node's stream floor as dst's own entries do. */
	vs_session_hold(dst, dst->conn && dst->expiry > 0);
	return n;
}
