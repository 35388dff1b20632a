/*
 * The router: see router.h. Matching, per-session merging, shared-group choice, delivery into
 * sessions and draining sessions into connections.
 */
#include "base/vec.h"
#include "broker/trace.h"
#include "broker/router.h"

#include "broker/bridge.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "base/clock.h"
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/cluster_retain.h"
#include "broker/cluster_session.h"
#include "broker/conn.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/worker.h"
#include "session/session.h"
#include "topic/retain.h"
#include "topic/tree.h"

bool vs_conn_out_full(const struct vs_conn *c);

struct route_ctx {
	struct vs_worker *w;
	struct vs_msg *msg;
	const struct vs_session *origin;
	int delivered;	      /* shared deliveries made during the match */
	bool skip_shared;     /* the cluster picks the node of each shared delivery (cluster.h) */
	bool origin_no_local; /* a No Local subscription of origin's matched (and was skipped) */
};

/* The QoS a subscriber gets: min(published, subscribed) [MQTT-3.8.4-8], or with
 * upgrade_outgoing_qos (Mosquitto) the subscription's own. */
static uint8_t out_qos(const struct vs_broker *b, uint8_t sub_qos, uint8_t msg_qos)
{
	if (b->conf->upgrade_outgoing_qos)
		return sub_qos;
	return sub_qos < msg_qos ? sub_qos : msg_qos;
}

static int push_match(struct vs_worker *w, const struct vs_match *m)
{
	if (VS_VEC_GROW(w->matches, w->cap_matches, w->n_matches + 1, 64) < 0)
		return -ENOMEM;
	w->matches[w->n_matches++] = *m;
	return 0;
}

/*
 * A shared group: one member gets the message, round robin, connected members first. It is
 * delivered here, under the trie's read lock, so a member whose session has just ended (its
 * vs_router_end_session() has not yet taken it out of the trie) is skipped for the next one instead
 * of losing the message. Shared deliveries are not merged with the session's other matches: each
 * subscription gets its copy.
 */
static void deliver_shared(struct route_ctx *r, const struct vs_sub *members, size_t n,
			   atomic_uint *cursor)
{
	unsigned start = atomic_fetch_add_explicit(cursor, 1, memory_order_relaxed);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < n; k++) {
			const struct vs_sub *sub = &members[(start + k) % n];
			struct vs_session *s = sub->owner;
			if (pass == 0 && !__atomic_load_n(&s->connected, __ATOMIC_RELAXED))
				continue;
			uint8_t qos = out_qos(r->w->b, sub->qos, r->msg->qos);
			uint32_t id = sub->sub_id;
			int rc = vs_deliver(r->w, s, r->msg, qos,
					    sub->retain_as_published && r->msg->retain,
					    id ? &id : NULL, id ? 1 : 0, "");
			if (rc >= 0) {
				r->delivered += rc;
				return;
			}
		}
	}
}

static void on_match(void *ctx, const struct vs_sub *members, size_t n, atomic_uint *cursor)
{
	struct route_ctx *r = ctx;
	const struct vs_sub *sub = members;
	const char *share = NULL;
	if (cursor) {
		if (!r->skip_shared)
			deliver_shared(r, members, n, cursor);
		return;
	} else if (sub->no_local && sub->owner == r->origin) {
		r->origin_no_local = true; /* its other matches take it now (forward()) */
		return;			   /* [MQTT-3.8.3-3] No Local */
	}
	struct vs_match m = {.s = sub->owner,
			     .sub_id = sub->sub_id,
			     .rap = sub->retain_as_published,
			     .no_local = sub->no_local,
			     .share = share};
	m.qos = out_qos(r->w->b, sub->qos, r->msg->qos);
	/* A reference taken under the trie's read lock: once the lock is gone, another worker may
	 * end and free the session (vs_router_end_session removes it from the trie first). */
	if (push_match(r->w, &m) == 0)
		vs_session_ref(m.s);
}

static int cmp_match(const void *a, const void *b)
{
	const struct vs_match *x = a, *y = b;
	return x->s < y->s ? -1 : x->s > y->s;
}

static void on_group(void *ctx, const struct vs_sub *members, size_t n, atomic_uint *cursor)
{
	deliver_shared(ctx, members, n, cursor);
}

int vs_route_shared(struct vs_worker *w, struct vs_msg *msg, const char *share)
{
	const char *g = strchr(share + 7, '/'); /* "$share/" GROUP "/" FILTER */
	char stack[512], *topic = stack;
	if (!g)
		return 0;
	if (msg->topic.len >= sizeof(stack) && !(topic = malloc(msg->topic.len + 1)))
		return 0;
	memcpy(topic, msg->topic.p, msg->topic.len);
	topic[msg->topic.len] = '\0';
	struct route_ctx r = {.w = w, .msg = msg};
	/* The NATS subjects cover the filter loosely ('$' topics, long ones): MQTT decides. */
	bool match = vs_topic_match(g + 1, topic);
	if (match)
		vs_tree_group(w->b->tree, share, strlen(share), on_group, &r);
	if (topic != stack)
		free(topic);
	return match ? (int)r.delivered : -1;
}

/* The barrier's ticket of the subscriptions added on this thread since the last take. */
static _Thread_local uint64_t sub_ticket;

uint64_t vs_router_sub_ticket(void)
{
	uint64_t t = sub_ticket;
	sub_ticket = 0;
	return t;
}

int vs_router_sub_add(struct vs_broker *b, const char *filter, size_t len, const struct vs_sub *sub)
{
	int rc = vs_tree_add(b->tree, filter, len, sub);
	if (rc >= 0 && b->cluster) {
		uint64_t t = vs_cluster_interest(b, filter, len, rc == 1 ? 1 : 0);
		if (t > sub_ticket)
			sub_ticket = t;
	}
	return rc;
}

int vs_router_sub_remove(struct vs_broker *b, const char *filter, size_t len, const void *owner)
{
	int rc = vs_tree_remove(b->tree, filter, len, owner);
	if (rc == 1 && b->cluster)
		vs_cluster_interest(b, filter, len, -1);
	return rc;
}

/* Whether session s takes QoS 1/2 through JetStream in a cluster (cluster.h): it outlives its
 * connection (read without its lock: the expiry changes only at a CONNECT, and either value is
 * safe here, the two deliveries being decided by the same read in each node's routing). */
static bool durable_session(const struct vs_session *s)
{
	return __atomic_load_n(&s->expiry, __ATOMIC_RELAXED) > 0;
}

/* Merges the matches of one session, matches[i..j) [MQTT-3.3.4-2]; returns j. */
static uint32_t merge_session(struct vs_worker *w, uint32_t i, uint8_t *qos, bool *rap,
			      bool *no_local)
{
	struct vs_match *m = &w->matches[i];
	uint32_t j = i;
	*qos = m->qos;
	*rap = false;
	*no_local = false;
	for (; j < w->n_matches && w->matches[j].s == m->s; j++) {
		struct vs_match *x = &w->matches[j];
		if (x->qos > *qos)
			*qos = x->qos;
		*rap |= x->rap;
		*no_local |= x->no_local;
	}
	return j;
}

/*
 * In a cluster with cluster_durable_sessions, a QoS 1/2 message for a persistent session of
 * this node goes through JetStream, and the session takes it when it comes back from the
 * stream (msg->loop), not now: should this node die after the PUBACK, the session, rebuilt on
 * another node, finds it in the stream. Sessions that take it through a No Local subscription
 * take it now (the stream's copy does not say who published it), and so does the publisher's
 * own session when a No Local subscription of its matched. Decides each session's way once
 * (m->from_stream on its first match, the expiry read once), forwards msg to the other nodes,
 * and returns whether its copy comes back here for them: only then do they wait for it.
 */
static bool forward(struct vs_worker *w, struct vs_msg *msg, const struct route_ctx *r)
{
	bool mine = false, ours = msg->qos && !msg->remote && w->b->conf->cluster_durable_sessions;
	for (uint32_t i = 0; i < w->n_matches;) {
		uint8_t qos;
		bool rap, no_local;
		uint32_t j = merge_session(w, i, &qos, &rap, &no_local);
		struct vs_match *m = &w->matches[i];
		no_local |= m->s == r->origin && r->origin_no_local;
		m->from_stream = ours && qos > 0 && !no_local && durable_session(m->s);
		mine |= m->from_stream;
		i = j;
	}
	bool loop = false;
	/* Sessions that take it now hold a message that is in the stream too, at a place this
	 * node learns when its copy comes back (cluster_session.c, a session's key). */
	uint64_t stamp = vs_cluster_forward(w, msg, mine, &loop);
	if (stamp)
		atomic_store_explicit(&msg->stamp, stamp, memory_order_relaxed);
	return loop;
}

int vs_route(struct vs_worker *w, struct vs_msg *msg, const struct vs_session *origin)
{
	struct vs_broker *b = w->b;
	if (msg->retain && b->conf->retain_available && !msg->loop) {
		/* [MQTT-3.3.1-5] store; [MQTT-3.3.1-10] an empty payload removes. In a cluster
		 * the bucket of retained messages decides (cluster_retain.h). */
		uint64_t version = 0;
		bool stored = true;
		if (b->cluster)
			stored = vs_cluster_retain(b, msg, &version);
		else
			vs_retain_put(b->retain, (const char *)msg->topic.p, msg->topic.len,
				      msg->payload.len ? msg : NULL, &version);
		if (stored)
			vs_bp_retain(w, msg, msg->payload.len > 0, version);
	}
	/* A loop message's shared deliveries were made when it was published. */
	struct route_ctx r = {.w = w,
			      .msg = msg,
			      .origin = origin,
			      .skip_shared =
				  msg->loop || (b->cluster && vs_cluster_shares_remote(b))};
	w->n_matches = 0;
	vs_tree_match(b->tree, (const char *)msg->topic.p, msg->topic.len, on_match, &r);
	if (w->n_matches > 1)
		qsort(w->matches, w->n_matches, sizeof(*w->matches), cmp_match);
	bool later = b->cluster && !msg->loop && forward(w, msg, &r);
	int delivered = r.delivered;
	for (uint32_t i = 0; i < w->n_matches;) {
		struct vs_match *m = &w->matches[i];
		uint8_t qos;
		bool rap, no_local;
		uint32_t j = merge_session(w, i, &qos, &rap, &no_local);
		uint32_t n_ids = 0;
		for (uint32_t k = i; k < j; k++)
			if (w->matches[k].sub_id &&
			    VS_VEC_GROW(w->sub_ids, w->cap_sub_ids, n_ids + 1, 16) == 0)
				w->sub_ids[n_ids++] = w->matches[k].sub_id;
		/* [MQTT-3.3.1-12] live messages carry RETAIN 0 unless Retain As Published. */
		bool retain = rap && msg->retain;
		/* Now, or from the stream's copy (forward()): one of the two. The stream's copy
		 * does not know its publisher: a session with a matching No Local subscription
		 * took the message when it was published. */
		bool from_stream = msg->loop ? qos > 0 && !no_local && durable_session(m->s)
					     : later && m->from_stream;
		if (!msg->loop && from_stream)
			delivered++; /* counted now: a subscriber, for PUBACK 0x10 and the API */
		else if (!msg->loop || from_stream)
			delivered +=
			    vs_deliver(w, m->s, msg, qos, retain, w->sub_ids, n_ids, NULL) > 0;
		for (uint32_t k = i; k < j; k++)
			vs_session_unref(w->matches[k].s);
		i = j;
	}
	w->n_matches = 0;
	return delivered;
}

/* Whether s's user may read msg: its listener's ACL, as of the last reload, matched against
 * the topic as the client sees it (without its listener's mount point). */
static bool may_read(const struct vs_session *s, const struct vs_acl *acl, const struct vs_msg *msg)
{
	if (!acl)
		return true;
	long skip = vs_mount_strip(s->listener, msg->topic.p, msg->topic.len);
	if (skip < 0)
		skip = 0; /* outside the mount point: matched whole, and never sent (send_entry) */
	return vs_acl_check(acl, s->client_id, s->username, (const char *)msg->topic.p + skip,
			    msg->topic.len - (size_t)skip, VS_ACL_READ);
}

/* The ACL that decides what s may read: its listener's, as of the last reload. */
static const struct vs_acl *session_acl(const struct vs_session *s)
{
	return s->listener ? vs_listener_sec(s->listener)->acl : NULL;
}

static void log_drop(struct vs_worker *w, struct vs_session *s)
{
	vs_stat_add(&w->stats.pub_dropped, 1);
	/* One line per power of two, so a stuck client cannot flood the log. */
	if ((s->dropped & (s->dropped - 1)) == 0)
		vs_logc(w->b->log, VS_LOG_NOTICE, s->client_id,
			"outgoing queue of client %s is full: %u message(s) dropped so far",
			s->client_id, s->dropped);
}

static bool queue_full(const struct vs_config *conf, const struct vs_session *s,
		       const struct vs_msg *msg)
{
	return (conf->max_queued_messages > 0 &&
		s->queue.count >= (uint32_t)conf->max_queued_messages) ||
	       (conf->max_queued_bytes > 0 &&
		s->queued_bytes + msg->payload.len > conf->max_queued_bytes);
}

/*
 * Backpressure instead of loss: when the queue of a connected subscriber is full but it is
 * still draining, the message is queued anyway and the publisher is throttled (w->congested_on),
 * so publishers slow to the pace of their subscribers, as a single-threaded broker's would. The
 * overshoot is bounded by what the publishers had already sent, and by a hard cap. A subscriber
 * that has taken nothing for STUCK_MS (no message sent to it: its window is full of unacked
 * ones, or its socket of unread bytes, conn.c) is stuck: its queue limit holds and messages are
 * dropped, so one client that stops reading slows nobody down for longer than that. Past
 * max_unsent_bytes it is disconnected (vs_router_drain_session). Offline queues always keep their
 * limit.
 */
enum { STUCK_MS = 200 };

/* The publisher of the message being routed is slowed for s's queue (s->lock held). */
static void congest(struct vs_worker *w, struct vs_session *s)
{
	w->congested_on = !w->congested_on || w->congested_on == s ? s : VS_QUEUES;
	s->congested = true;
	/* Under s->lock, which the owner's drain takes before it looks: a drain that clears
	 * s->congested sees this shard as one to tell (vs_worker_resume_publishers). */
	atomic_store_explicit(&w->any_paused, true, memory_order_relaxed);
}

static bool overshoot(struct vs_worker *w, const struct vs_config *conf, struct vs_session *s)
{
	if (!s->connected || w->now_ms - s->last_drain_ms > STUCK_MS ||
	    __atomic_load_n(&s->stalled, __ATOMIC_RELAXED))
		return false;
	uint32_t hard = conf->max_queued_messages > 0
			    ? (uint32_t)conf->max_queued_messages * 16 + 16384
			    : UINT32_MAX;
	if (s->queue.count >= hard ||
	    (conf->max_queued_bytes > 0 && s->queued_bytes >= conf->max_queued_bytes * 16)) {
		/* Dropped, and its publisher slowed all the same: the subscriber still drains,
		 * and reading the publisher on at full speed would only feed the drops (50 QoS 0
		 * publishers into one subscriber read and dropped millions a second, and left
		 * the subscriber's thread less time to deliver). */
		congest(w, s);
		return false;
	}
	/* Up to four times the limit is absorbed quietly (publishers' windows usually bound it);
	 * beyond that the publisher is slowed down. */
	if (conf->max_queued_messages <= 0 ||
	    s->queue.count >= (uint32_t)conf->max_queued_messages * 4)
		congest(w, s);
	return true;
}

bool vs_router_unblocked(struct vs_worker *w, struct vs_session *s)
{
	const struct vs_config *conf = w->b->conf;
	/* Publishers resume at a quarter of where they were paused (four times the message limit,
	 * back within it); with a byte limit only, they were paused at the limit, and resume
	 * below half of it: either way a gap, so that a queue at its limit does not pause and
	 * resume them for every message. */
	uint64_t bytes_ok = conf->max_queued_messages > 0 ? (uint64_t)conf->max_queued_bytes
							  : (uint64_t)conf->max_queued_bytes / 2;
	if (!s->congested ||
	    (conf->max_queued_messages > 0 &&
	     s->queue.count > (uint32_t)conf->max_queued_messages) ||
	    (conf->max_queued_bytes > 0 && s->queued_bytes > bytes_ok))
		return false;
	s->congested = false;
	return true;
}

/* vs_deliver() with s->lock held, and without waking the owner: returns 1 if queued, 0 if
 * dropped, -1 if the session has ended. With `later`, a queued entry the store must record
 * may be copied there instead (later->msg set), for the caller to record once it has let go
 * of the lock (vs_bp_queue_written with *given). The message keeps the caller's reference
 * meanwhile: the entry's may be gone as soon as the lock is. */
static int queue_locked(struct vs_worker *w, struct vs_session *s, struct vs_msg *msg, uint8_t qos,
			bool retain, const uint32_t *sub_ids, uint32_t n_sub_ids, const char *share,
			struct vs_qentry *later, uint64_t *given)
{
	const struct vs_config *conf = w->b->conf;
	/* The ACL is read-only and the username changes only under reg_lock at attach; a check
	 * against the previous connection's name during a take-over is harmless (the resumed
	 * session is checked again, vs_router_recheck_session). */
	if (!may_read(s, session_acl(s), msg))
		return 0;
	if (s->ended)
		return -1;
	if (!s->connected && qos == 0 && !conf->queue_qos0_messages)
		return 0;
	if (queue_full(conf, s, msg) && !overshoot(w, conf, s)) {
		s->dropped++;
		log_drop(w, s);
		return 0;
	}
	struct vs_qentry e = {.msg = vs_msg_ref(msg),
			      .qos = qos,
			      .retain = retain,
			      .share = share,
			      .seq = ++s->next_seq};
	if (s->conn && s->expiry > 0)
		vs_qentry_hold(&e);
	if (vs_qentry_set_sub_ids(&e, sub_ids, n_sub_ids) < 0 || vs_ring_push(&s->queue, &e) < 0) {
		vs_qentry_fini(&e);
		return 0;
	}
	vs_stat_gauge(&w->stats.queued, 1);
	s->queued_bytes += msg->payload.len;
	/* QoS 0 is stored only when it waits for an offline client (queue_qos0_messages). */
	if (s->persisted && (qos > 0 || !s->connected)) {
		if (later && e.n_sub_ids <= 1) {
			*later = e; /* its identifiers inline: the copy outlives the entry */
			*given = vs_bp_give_id(w, msg);
		} else
			vs_bp_queue(w, s, &e);
	}
	return 1;
}

/* Whether s (locked) holds the stream's message sseq, queued or in flight. A scan, bounded:
 * past HOLDS_SCAN_MAX entries it says no (a QoS 2 message sent again after a failed commit may
 * then be queued twice) rather than stall the session's lock for every message sent again. */
enum { HOLDS_SCAN_MAX = 4096 };

static bool holds(struct vs_session *s, uint64_t sseq)
{
	if ((uint64_t)s->inflight.count + s->queue.count > HOLDS_SCAN_MAX)
		return false;
	for (struct vs_ring *r = &s->inflight; r; r = r == &s->inflight ? &s->queue : NULL)
		for (uint32_t i = 0; i < r->count; i++) {
			const struct vs_qentry *e = vs_ring_at(r, i);
			if (e->msg && e->msg->sseq == sseq)
				return true;
		}
	return false;
}

int vs_deliver(struct vs_worker *w, struct vs_session *s, struct vs_msg *msg, uint8_t qos,
	       bool retain, const uint32_t *sub_ids, uint32_t n_sub_ids, const char *share)
{
	pthread_mutex_lock(&s->lock);
	/* Sent again by JetStream (its acknowledgement lost with this node's previous life, or a
	 * commit that failed): a session that has it (restored from the store, or given it
	 * before the failure) does not take it twice. A scan, for these rare ones only. */
	if (msg->again && !share && holds(s, msg->sseq)) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	/* A session handed over here has what its old node had routed to it, and what was read
	 * for it from the stream (cluster_session.h); decided under its lock, under which that
	 * changes. */
	if (!share && msg->sseq &&
	    msg->sseq <= atomic_load_explicit(&w->b->roam_cut, memory_order_relaxed) && !s->ended &&
	    vs_cluster_session_skips(w->b, s, msg->sseq)) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	struct vs_qentry rec = {.msg = NULL};
	uint64_t given = 0;
	int rc = queue_locked(w, s, msg, qos, retain, sub_ids, n_sub_ids, share, &rec, &given);
	if (rc > 0 && s->connected && !s->notified) {
		s->notified = true;
		struct vs_worker *owner = s->owner;
		if (owner == w) {
			vs_worker_want_drain(w, s);
		} else {
			struct vs_mail m = {.type = VS_MAIL_DRAIN, .session = vs_session_ref(s)};
			vs_worker_post(w, owner->idx, &m);
		}
	}
	pthread_mutex_unlock(&s->lock);
	/* The records (the message's body among them, the first time) are encoded outside the
	 * lock, which the subscriber's thread takes for every delivery and acknowledgement. */
	if (rec.msg)
		vs_bp_queue_written(w, s, &rec, given);
	return rc;
}

/* Room in s's queue for a retained message of the feed: strictly under the queue's limits
 * (live messages keep the overshoot allowance). */
static bool feed_room(const struct vs_config *conf, const struct vs_session *s)
{
	return (conf->max_queued_messages <= 0 ||
		s->queue.count < (uint32_t)conf->max_queued_messages) &&
	       (conf->max_queued_bytes == 0 || s->queued_bytes < conf->max_queued_bytes);
}

/* Moves retained messages from s's feed into its queue while there is room (s->lock held). */
static void feed_queue(struct vs_worker *w, struct vs_session *s)
{
	while (vs_feed_len(s) && feed_room(w->b->conf, s)) {
		struct vs_feed_entry e;
		vs_feed_pop(s, &e);
		/* [MQTT-3.3.1-8] retained messages sent on subscribe carry RETAIN 1. */
		queue_locked(w, s, e.msg, e.qos, true, e.sub_id ? &e.sub_id : NULL,
			     e.sub_id ? 1 : 0, NULL, NULL, NULL);
		vs_msg_unref(e.msg);
	}
}

int vs_feed_retained(struct vs_worker *w, struct vs_session *s, struct vs_msg **msgs, size_t n,
		     uint8_t qos, uint32_t sub_id)
{
	size_t fed = 0;
	pthread_mutex_lock(&s->lock);
	for (; fed < n && !s->ended; fed++) {
		int64_t max = w->b->conf->max_retained_feed;
		if (max > 0 && vs_feed_len(s) >= (uint64_t)max)
			break;
		uint8_t q = out_qos(w->b, qos, msgs[fed]->qos);
		if (vs_feed_push(s, msgs[fed], q, sub_id) < 0) {
			fed++; /* push dropped that reference */
			break;
		}
	}
	for (size_t i = fed; i < n; i++)
		vs_msg_unref(msgs[i]);
	bool wake = vs_feed_len(s) && s->connected && s->owner == w;
	pthread_mutex_unlock(&s->lock);
	if (wake)
		vs_worker_want_drain(w, s);
	if (fed < n)
		vs_logc(w->b->log, VS_LOG_NOTICE, s->client_id,
			"client %s: %zu retained message(s) not sent on "
			"subscribe: more than max_retained_feed (%d) waiting",
			s->client_id, n - fed, w->b->conf->max_retained_feed);
	return (int)fed;
}

/* Keeps, in order, the entries of r that s's user may read; returns how many were dropped.
 * One pass: every entry is popped and the kept ones pushed back (which never allocates). */
static uint32_t drop_unreadable(struct vs_worker *w, struct vs_session *s, struct vs_ring *r,
				bool queued)
{
	uint32_t n = r->count, dropped = 0;
	const struct vs_acl *acl = session_acl(s);
	for (uint32_t i = 0; i < n; i++) {
		struct vs_qentry e;
		vs_ring_pop(r, &e);
		if (e.state == VS_Q_WAIT_PUBCOMP || may_read(s, acl, e.msg)) {
			vs_ring_push(r, &e);
			continue;
		}
		if (queued)
			s->queued_bytes -= e.msg->payload.len;
		vs_stat_gauge(queued ? &w->stats.queued : &w->stats.inflight, -1);
		vs_bp_dequeue(w, s, &e);
		vs_qentry_fini(&e);
		dropped++;
	}
	return dropped;
}

/* Drops what s's user may not read (s->lock held); returns how many. */
static uint32_t recheck_locked(struct vs_worker *w, struct vs_session *s)
{
	s->acl_stale = false;
	if (!session_acl(s))
		return 0;
	return drop_unreadable(w, s, &s->queue, true) + drop_unreadable(w, s, &s->inflight, false);
}

static void log_rechecked(struct vs_worker *w, const struct vs_session *s, uint32_t dropped,
			  const char *after)
{
	if (dropped)
		vs_logc(w->b->log, VS_LOG_NOTICE, s->client_id,
			"client %s: %u message(s) dropped %s: user %s may "
			"not read them (ACL)",
			s->client_id, dropped, after, s->username ? s->username : "(anonymous)");
}

/* Chooses the outgoing topic alias for a topic (5.0, client's Topic Alias Maximum > 0). */
static void choose_alias(struct vs_conn *c, struct vs_msg *m, struct vs_delivery *d)
{
	if (!c->client_alias_max)
		return;
	if (!c->out_alias && !(c->out_alias = calloc(1, sizeof(*c->out_alias))))
		return; /* sent without an alias */
	void *v = vs_map_get(c->out_alias, m->topic.p, m->topic.len);
	if (v) {
		d->topic_alias = (uint16_t)(uintptr_t)v;
		d->alias_only = true;
		return;
	}
	if (c->out_alias_next >= c->client_alias_max)
		return;
	/* Tentative: registered by send_entry() only once the PUBLISH carrying it is written, or
	 * the client would later get an alias it never learned [MQTT-3.3.2-12]. */
	d->topic_alias = (uint16_t)(c->out_alias_next + 1);
}

/* Encodes one entry into the connection's output. Returns 0, or -1 when the message cannot be
 * sent to this client (too large for its Maximum Packet Size [MQTT-3.1.2-25]). */
static int send_entry(struct vs_conn *c, struct vs_qentry *e, int64_t now)
{
	struct vs_delivery d = {.version = c->version,
				.qos = e->qos,
				.retain = e->retain,
				.dup = e->dup,
				.packet_id = e->packet_id,
				.n_sub_ids = e->n_sub_ids,
				.sub_ids = vs_qentry_sub_ids(e)};
	/* Outside the mount point only when the session came from another listener: such a
	 * message is not for this client's view of the tree. */
	long skip = vs_mount_strip(c->listener, e->msg->topic.p, e->msg->topic.len);
	if (skip < 0)
		return -1;
	d.topic_skip = (uint16_t)skip;
	if (c->version == VS_V5)
		choose_alias(c, e->msg, &d);
	ssize_t n = vs_msg_encoded_size(e->msg, &d, now);
	if (n > 0 && c->client_max_packet && (uint64_t)n > c->client_max_packet && d.topic_alias) {
		d.topic_alias = 0; /* retry without */
		d.alias_only = false;
		n = vs_msg_encoded_size(e->msg, &d, now);
	}
	if (n < 0 || (c->client_max_packet && (uint64_t)n > c->client_max_packet))
		return -1;
	if (vs_bytes_reserve(&c->out, (size_t)n) < 0)
		return -1;
	n = vs_msg_encode(e->msg, &d, now, c->out.data + c->out.len, (size_t)n);
	if (n < 0)
		return -1;
	if (d.topic_alias && !d.alias_only &&
	    vs_map_put(c->out_alias, e->msg->topic.p, e->msg->topic.len,
		       (void *)(uintptr_t)d.topic_alias, NULL) == 0)
		c->out_alias_next = d.topic_alias; /* the client learns it from this PUBLISH */
	c->out.len += (size_t)n;
	if (vs_trace_on(c->w->b->log))
		vs_trace_publish_out(c, e->msg, e->dup, e->qos, d.retain, e->packet_id);
	e->dup = true;
	/* Delivered twice were its store records lost (worker.c, held output). */
	if (e->qos == 2 && c->w->b->store_async)
		c->needs_sync = true;
	vs_stat_add(&c->w->stats.pub_sent, 1);
	vs_stat_add(&c->w->stats.pub_bytes_sent, e->msg->payload.len);
	vs_stat_add(&c->w->stats.msgs_sent, 1);
	return 0;
}

static uint32_t window(const struct vs_conn *c, const struct vs_broker *b)
{
	uint32_t win = c->client_receive_max; /* [MQTT-3.3.4-7] */
	if (b->out_window && b->out_window < win)
		win = b->out_window;
	return win;
}

/* Payload bytes of s's messages in flight (s->lock held), for max_inflight_bytes. The window
 * holds a few dozen entries at most, so they are summed when needed rather than tracked. */
static uint64_t inflight_bytes(struct vs_session *s)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < s->inflight.count; i++) {
		const struct vs_qentry *e = vs_ring_at(&s->inflight, i);
		if (e->msg)
			n += e->msg->payload.len;
	}
	return n;
}

/* Whether one more QoS 1/2 message may go out: the count window, and as Mosquitto's
 * max_inflight_bytes, while the bytes in flight are under the limit (so one message larger
 * than the limit still goes, alone). */
static bool window_open(const struct vs_session *s, uint32_t win, uint64_t bytes, uint64_t max)
{
	return s->inflight.count < win && (max == 0 || bytes < max);
}

void vs_router_drain_session(struct vs_worker *w, struct vs_session *s)
{
	int64_t now = w->now_ms;
	if (s->bridge) {
		/* Set at start-up, before any routing: read unlocked. Only its owner drains it. */
		if (s->owner == w)
			vs_bridge_drain(w, s);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->notified = false;
	struct vs_conn *c = s->conn;
	if (!c || s->owner != w || c->state != VS_CONN_ACTIVE) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	uint32_t win = window(c, w->b);
	uint64_t max_bytes = w->b->conf->max_inflight_bytes;
	uint64_t in_bytes = max_bytes ? inflight_bytes(s) : 0;
	bool sent = false, blocked = false;
	/* A reload changed the ACLs: what waits was checked against the old ones. */
	uint32_t dropped = s->acl_stale ? recheck_locked(w, s) : 0;
	feed_queue(w, s);
	while (s->queue.count) {
		if (vs_conn_out_full(c)) {
			c->want_drain = true;
			blocked = true;
			break;
		}
		struct vs_qentry *e = vs_ring_at(&s->queue, 0);
		if (e->qos && !window_open(s, win, in_bytes, max_bytes)) {
			blocked = true;
			break;
		}
		/* In a cluster, a QoS 2 message of the stream goes with the packet id its stream
		 * sequence gives (vs_cjs_packet_id), which a node rebuilding the session would use
		 * again; it waits while a message sent earlier holds that id (rare: ids repeat
		 * every 65,535 sequences), the order kept. */
		uint16_t sid = e->qos == 2 && e->msg->sseq ? vs_cjs_packet_id(e->msg->sseq) : 0;
		if (sid && vs_session_find_inflight(s, sid) >= 0) {
			blocked = true;
			break;
		}
		struct vs_qentry x;
		vs_ring_pop(&s->queue, &x);
		vs_stat_gauge(&w->stats.queued, -1);
		s->queued_bytes -= x.msg->payload.len;
		if (vs_msg_expired(x.msg, now, NULL)) {
			vs_bp_dequeue(w, s, &x);
			vs_qentry_fini(&x); /* [MQTT-3.3.2-5] expired: not sent */
			continue;
		}
		if (x.qos) {
			x.packet_id = sid ? sid : vs_session_next_id(s);
			x.state = x.qos == 1 ? VS_Q_WAIT_PUBACK : VS_Q_WAIT_PUBREC;
			/* The run of free ids after next_id (vs_session_next_id) may hold it. */
			if (sid && sid >= s->next_id && sid - s->next_id < s->free_ids)
				s->free_ids = 0;
		}
		if (send_entry(c, &x, now) < 0 || !x.qos || vs_ring_push(&s->inflight, &x) < 0) {
			vs_bp_dequeue(w, s, &x);
			vs_qentry_fini(&x);
		} else {
			vs_stat_gauge(&w->stats.inflight, 1);
			in_bytes += x.msg->payload.len;
			/* QoS 2 must resume with the same packet id; a QoS 1 message lost from the
			 * log in this state is just sent again after a restart (at least once). */
			if (x.qos == 2)
				vs_bp_queue(w, s, &x);
		}
		sent = true;
		if (!s->queue.count && !blocked)
			feed_queue(w, s); /* the queue emptied: retained messages take its room */
	}
	if (sent || !s->queue.count)
		s->last_drain_ms = now;
	uint64_t unsent = vs_bytes_avail(&c->out) + s->queued_bytes;
	bool resume = vs_router_unblocked(w, s);
	pthread_mutex_unlock(&s->lock);
	if (resume)
		vs_worker_resume_publishers(w, s);
	log_rechecked(w, s, dropped, "from its queue after a reload");
	uint64_t cap = w->b->conf->max_unsent_bytes;
	if (cap && unsent > cap && !sent) {
		/* Nothing more could go out, and this much waits: the client does not read (or
		 * acknowledge) what it is sent. It is disconnected before it holds more. */
		char why[128];
		snprintf(why, sizeof(why),
			 "not reading: %llu bytes unsent for %lld ms "
			 "(max_unsent_bytes %llu)",
			 (unsigned long long)unsent, (long long)(now - s->last_drain_ms),
			 (unsigned long long)cap);
		vs_conn_close(c, VS_RC_QUOTA_EXCEEDED, why);
		return;
	}
	if (sent)
		vs_worker_want_flush(w, c);
}

bool vs_router_resume_session(struct vs_worker *w, struct vs_session *s)
{
	int64_t now = w->now_ms;
	pthread_mutex_lock(&s->lock);
	struct vs_conn *c = s->conn;
	if (!c || s->owner != w) {
		pthread_mutex_unlock(&s->lock);
		return true;
	}
	/* Encoding into the connection's output takes no lock, so the session stays locked. */
	int unsent_pubrel = -1;
	for (uint32_t i = 0; i < s->inflight.count;) {
		struct vs_qentry *e = vs_ring_at(&s->inflight, i);
		if (e->state == VS_Q_WAIT_PUBCOMP) {
			/* A PUBREL that cannot go out (no memory; a Maximum Packet Size below 4)
			 * would leave the exchange stalled for ever: the client is closed, below,
			 * once the session is unlocked. */
			if (vs_conn_send_ack(c, VS_PUBREL, e->packet_id, 0) < 0) {
				unsent_pubrel = e->packet_id;
				break;
			}
			i++;
			continue;
		}
		e->dup = true; /* [MQTT-4.4.0-1] resend with DUP */
		if (send_entry(c, e, now) < 0) {
			/* Too large for this connection's Maximum Packet Size [MQTT-3.1.2-25]:
			 * treated as delivered, so it does not hold a window slot for ever. */
			vs_bp_dequeue(w, s, e);
			vs_qentry_fini(e);
			vs_ring_remove(&s->inflight, i);
			vs_stat_gauge(&w->stats.inflight, -1);
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&s->lock);
	if (unsent_pubrel >= 0) /* fails again, and closes c saying why */
		return vs_conn_reply_ack(c, VS_PUBREL, (uint16_t)unsent_pubrel, 0) == VS_GO_ON;
	vs_worker_want_flush(w, c);
	vs_router_drain_session(w, s);
	return true;
}

void vs_router_recheck_session(struct vs_worker *w, struct vs_session *s)
{
	pthread_mutex_lock(&s->lock);
	uint32_t dropped = recheck_locked(w, s);
	pthread_mutex_unlock(&s->lock);
	log_rechecked(w, s, dropped, "from the resumed session");
}

void vs_publish_will(struct vs_worker *w, struct vs_msg *will)
{
	will->created_ms = w->now_ms;
	vs_route(w, will, NULL);
}

/* Re-delivery of an ended member's message to the rest of its shared group. */
struct reroute_ctx {
	struct vs_worker *w;
	struct vs_session *gone;
	const struct vs_qentry *e;
};

/* Called for every subscription matching the message's topic: only shared groups that have
 * the ended session as a member are considered, and one other member gets the message. Plain
 * subscribers and other groups already had their copy; the retained store is not touched. */
static void on_reroute_match(void *ctx, const struct vs_sub *members, size_t n, atomic_uint *cursor)
{
	struct reroute_ctx *r = ctx;
	if (!cursor)
		return;
	const struct vs_sub *mine = NULL;
	for (size_t k = 0; k < n && !mine; k++)
		if (members[k].owner == r->gone)
			mine = &members[k];
	if (!mine || n < 2)
		return;
	unsigned start = atomic_fetch_add_explicit(cursor, 1, memory_order_relaxed);
	const struct vs_sub *pick = NULL;
	for (size_t k = 0; k < n; k++) {
		const struct vs_sub *x = &members[(start + k) % n];
		if (x->owner == r->gone)
			continue;
		if (!pick || __atomic_load_n(&((struct vs_session *)x->owner)->connected,
					     __ATOMIC_RELAXED)) {
			pick = x;
			if (__atomic_load_n(&((struct vs_session *)x->owner)->connected,
					    __ATOMIC_RELAXED))
				break;
		}
	}
	uint8_t qos = out_qos(r->w->b, pick->qos, r->e->msg->qos);
	uint32_t id = pick->sub_id;
	vs_deliver(r->w, pick->owner, r->e->msg, qos, pick->retain_as_published && r->e->retain,
		   id ? &id : NULL, id ? 1 : 0, "");
}

/* Hands the messages an ending session got through shared subscriptions to the other members
 * of their groups. Runs while the session is still in the trie (so its groups can be found).
 * A QoS 2 message already acknowledged with PUBREC was delivered: it is not sent again. */
static void reroute_shared(struct vs_worker *w, struct vs_session *gone, struct vs_ring *r)
{
	for (uint32_t i = 0; i < r->count; i++) {
		struct vs_qentry *e = vs_ring_at(r, i);
		if (!e->share || !e->msg || e->state == VS_Q_WAIT_PUBCOMP)
			continue;
		struct reroute_ctx ctx = {w, gone, e};
		vs_tree_match(w->b->tree, (const char *)e->msg->topic.p, e->msg->topic.len,
			      on_reroute_match, &ctx);
	}
	vs_ring_clear(r);
}

void vs_router_end_session(struct vs_worker *w, struct vs_session *s)
{
	struct vs_broker *b = w->b;
	pthread_mutex_lock(&b->reg_lock);
	if (vs_registry_get(&b->sessions, s->client_id, s->id_len) == s) {
		vs_registry_del(&b->sessions, s->client_id, s->id_len);
		vs_broker_sessions_changed(b);
		vs_session_unref(s); /* the registry's reference */
	}
	pthread_mutex_lock(&s->lock);
	s->ended = true;
	/* Under reg_lock too: a session made for the client id after this one numbers its
	 * deliveries after this one's last (b->ended_seq), which no longer changes. */
	if (vs_seq_before(atomic_load_explicit(&b->ended_seq, memory_order_relaxed), s->next_seq))
		atomic_store_explicit(&b->ended_seq, s->next_seq, memory_order_relaxed);
	pthread_mutex_unlock(&b->reg_lock);
	bool keyed = b->cluster && !s->bridge && (s->keyed || s->expiry > 0);
	vs_bp_session_del(w, s);
	struct vs_session_subs *subs = s->subs;
	s->subs = NULL;
	struct vs_ring q = s->queue, inf = s->inflight;
	memset(&s->queue, 0, sizeof(s->queue));
	memset(&s->inflight, 0, sizeof(s->inflight));
	vs_stat_gauge(&w->stats.queued, -(int64_t)q.count);
	vs_stat_gauge(&w->stats.inflight, -(int64_t)inf.count);
	s->queued_bytes = 0;
	struct vs_msg *will = s->will;
	s->will = NULL;
	vs_feed_clear(s);
	pthread_mutex_unlock(&s->lock);
	/* Deliveries to s are dropped from here on (ended); its groups still list it. */
	reroute_shared(w, s, &inf);
	reroute_shared(w, s, &q);
	free(q.e);
	free(inf.e);
	for (uint32_t i = 0; subs && i < subs->n; i++)
		vs_router_sub_remove(b, subs->v[i].filter, subs->v[i].len, s);
	vs_session_subs_free(subs);
	if (will) {
		/* [MQTT-3.1.3-9] the session ended before the will delay: publish now. */
		vs_publish_will(w, will);
		vs_msg_unref(will);
	}
	/* Its key in the cluster goes too: a node that finds it naming this node, dead, would
	 * rebuild the session. */
	if (keyed)
		vs_cluster_session_note(b, s->client_id, s->id_len, false);
}
