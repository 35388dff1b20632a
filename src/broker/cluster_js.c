/* The cluster's JetStream part: the stream, this node's consumer and thread, the group commit
 * of QoS 1/2 (see cluster_js.h, cluster_js_int.h). */
#include "broker/cluster_js.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/map.h"
#include "base/vec.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_js_int.h"
#include "broker/cluster_nats.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/worker.h"
#include "cluster/keys.h"
#include "session/session.h"

void vs_cjs_warn(struct vs_cjs *j, const char *what, natsStatus s)
{
	int64_t now = vs_now_ms();
	if (now - j->warned_ms < WARN_EVERY_MS)
		return;
	j->warned_ms = now;
	vs_log(j->b->log, VS_LOG_WARN, "cluster: %s: %s (%s)", what, natsStatus_GetText(s),
	       nats_GetLastError(NULL));
}

bool vs_cjs_ready(const struct vs_cjs *j)
{
	return j && atomic_load_explicit(&j->ready, memory_order_acquire);
}

/* ---- the stream and this node's consumer ---- */

static natsStatus add_stream(struct vs_cjs *j, const char *name, const char *subject,
			     int64_t per_subject)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, j->js, name, NULL, &jerr);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return NATS_OK;
	}
	if (s != NATS_NOT_FOUND)
		return s;
	jsStreamConfig cfg;
	jsStreamConfig_Init(&cfg);
	const char *subjects[] = {subject};
	cfg.Name = name;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.MaxAge = (int64_t)j->b->conf->cluster_stream_max_age * 1000000000;
	cfg.Replicas = j->b->conf->cluster_replicas;
	if (per_subject)
		cfg.MaxMsgsPerSubject = per_subject;
	s = js_AddStream(&si, j->js, &cfg, NULL, &jerr);
	jsStreamInfo_Destroy(si);
	return s != NATS_OK && jerr == JSStreamNameExistErr ? NATS_OK : s; /* another node's */
}

/* The messages, and the journal of the PUBRECs they got (vs_cjs_received). A journal that
 * JetStream refuses (an account's limit on streams, say) is done without: QoS 1/2 go on, and a
 * session rebuilt after its node's death while it was connected gets its QoS 2 messages at
 * least once. One that fails for a moment (no leader yet) is tried again with the rest. */
static natsStatus make_stream(struct vs_cjs *j)
{
	natsStatus s = add_stream(j, STREAM, QOS_SUBJECTS, 0);
	if (s != NATS_OK || atomic_load(&j->journal))
		return s;
	natsStatus r = add_stream(j, VS_CJS_RECS, VS_CJS_RECS_PREFIX ">", VS_CJS_RECS_KEEP);
	if (r == NATS_OK)
		atomic_store(&j->journal, true);
	else if (vs_cluster_transient(r))
		return r;
	else
		vs_cjs_warn(j,
			    "creating the stream " VS_CJS_RECS " (QoS 2 of a session rebuilt after "
			    "its node died connected: at least once)",
			    r);
	return NATS_OK;
}

static void on_js_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg);

static natsStatus make_consumer(struct vs_cjs *j)
{
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	int64_t ack_wait = (int64_t)j->b->conf->cluster_ack_wait * 1000000000;
	natsStatus s = js_GetConsumerInfo(&ci, j->js, STREAM, j->consumer, NULL, &jerr);
	uint_fast64_t floor = s == NATS_OK ? ci->AckFloor.Stream : 0;
	if (s == NATS_OK && ci->Config && ci->Config->AckWait != ack_wait) {
		/* Made by an earlier life with another cluster_ack_wait: this one's counts. */
		jsConsumerConfig cc = *ci->Config;
		cc.AckWait = ack_wait;
		jsConsumerInfo *up = NULL;
		if (js_UpdateConsumer(&up, j->js, STREAM, &cc, NULL, &jerr) != NATS_OK)
			vs_log(j->b->log, VS_LOG_WARN,
			       "cluster: consumer %s keeps its ack wait of %lld s: JetStream "
			       "refused cluster_ack_wait %d (%s)",
			       j->consumer, (long long)(ci->Config->AckWait / 1000000000),
			       j->b->conf->cluster_ack_wait, nats_GetLastError(NULL));
		jsConsumerInfo_Destroy(up);
	}
	if (s == NATS_NOT_FOUND) {
		jsStreamInfo *si = NULL;
		if (js_GetStreamInfo(&si, j->js, STREAM, NULL, &jerr) == NATS_OK)
			floor = si->State.LastSeq; /* it starts after this */
		jsStreamInfo_Destroy(si);
		/* A push consumer on a subject of its own, so that a restarted node binds to it
		 * again and resumes where it left off. A new one starts with what comes next. */
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = j->consumer;
		cc.DeliverSubject = j->deliver;
		cc.DeliverPolicy = js_DeliverNew;
		cc.AckPolicy = js_AckExplicit;
		cc.AckWait = ack_wait;
		cc.MaxAckPending = MAX_ACK_PENDING;
		cc.FilterSubject = QOS_SUBJECTS;
		s = js_AddConsumer(&ci, j->js, STREAM, &cc, NULL, &jerr);
	}
	/* Where it stands: a new consumer at the stream's end, an old one at what it
	 * acknowledged. vs_cjs_floor() starts there, not at the stream's first message. */
	uint_fast64_t max = atomic_load(&j->recv_max);
	while (floor > max && !atomic_compare_exchange_weak(&j->recv_max, &max, floor))
		;
	if (!j->start_floor)
		j->start_floor = floor;
	jsConsumerInfo_Destroy(ci);
	if (s != NATS_OK)
		return s;
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = STREAM;
	so.Consumer = j->consumer; /* bound: the library never deletes it */
	so.ManualAck = true;
	return js_Subscribe(&j->sub, j->js, QOS_SUBJECTS, on_js_msg, j, NULL, &so, &jerr);
}

/* Makes the stream, consumer and buckets, and publishes what this node left in an earlier
 * life. Returns 0 when JetStream is ready. */
static int setup(struct vs_cjs *j)
{
	if (natsConnection_Status(j->nc) != NATS_CONN_STATUS_CONNECTED)
		return -1;
	natsStatus s = make_stream(j);
	const char *what = "the streams " STREAM " and " VS_CJS_RECS;
	if (s == NATS_OK && !j->sub && (s = make_consumer(j)) != NATS_OK)
		what = "this node's consumer";
	if (s == NATS_OK && !j->nodes &&
	    (s = vs_cluster_bucket(j->b, &j->nodes, NODES_BUCKET,
				   "Viesti: node leases (docs/cluster.md)", j->lease_ms)) !=
		NATS_OK)
		what = "the bucket " NODES_BUCKET;
	if (s == NATS_OK && !j->wills &&
	    (s = vs_cluster_bucket(j->b, &j->wills, WILLS_BUCKET,
				   "Viesti: wills of connected clients (docs/cluster.md)", 0)) !=
		NATS_OK)
		what = "the bucket " WILLS_BUCKET;
	if (s == NATS_OK && (s = vs_cjs_renew_lease(j)) != NATS_OK)
		what = "this node's lease";
	if (s != NATS_OK) {
		char w[96];
		snprintf(w, sizeof(w), "JetStream not ready (%s); QoS 1/2 crosses on core NATS",
			 what);
		vs_cjs_warn(j, w, s);
		return -1;
	}
	vs_cjs_reap(j, true);
	atomic_store_explicit(&j->ready, true, memory_order_release);
	vs_log(j->b->log, VS_LOG_NOTICE,
	       "cluster: node %s JetStream ready (stream %s, consumer %s)", j->node, STREAM,
	       j->consumer);
	return 0;
}

/* The JetStream thread: sets JetStream up until it is ready, then writes will updates as they
 * come, renews the lease and looks for dead nodes every third of the lease, each on its own
 * schedule (a long queue of will updates delays neither). */
static void *run(void *arg)
{
	struct vs_cjs *j = arg;
	pthread_mutex_lock(&j->lock);
	while (!j->stop) {
		pthread_mutex_unlock(&j->lock);
		if (!vs_cluster_connected(j->b)) { /* without NATS, requests only time out */
			pthread_mutex_lock(&j->lock);
			if (!j->stop) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec += 100000000L;
				ts.tv_sec += ts.tv_nsec / 1000000000L;
				ts.tv_nsec %= 1000000000L;
				pthread_cond_timedwait(&j->cond, &j->lock, &ts);
			}
			continue;
		}
		if (!vs_cjs_ready(j) && setup(j) == 0)
			j->next_reap = j->next_lease = vs_now_ms() + j->lease_ms / 3;
		if (vs_cjs_ready(j)) {
			vs_cjs_run_ops(j, j->next_reap);
			vs_cjs_keep_lease(j);
			if (vs_now_ms() >= j->next_reap) {
				vs_cjs_reap(j, false);
				j->next_reap = vs_now_ms() + j->lease_ms / 3;
			}
		}
		pthread_mutex_lock(&j->lock);
		bool due = j->head && vs_cjs_ready(j) && vs_now_ms() >= j->retry_ms;
		if (j->stop || due)
			continue;
		int64_t next = j->next_lease < j->next_reap ? j->next_lease : j->next_reap;
		if (j->head && j->retry_ms < next)
			next = j->retry_ms;
		int64_t wait = vs_cjs_ready(j) ? next - vs_now_ms() : 500;
		if (wait > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000;
			ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&j->cond, &j->lock, &ts);
		}
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* ---- QoS 1/2 messages ---- */

static void on_pub_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	struct wjs *p = closure;
	pthread_mutex_lock(&p->lock);
	p->done++;
	if (pae || !pa)
		p->failed++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	natsMsg_Destroy(m);
}

/* Numbers the frame in buf and publishes it with the shared context, synchronously (the
 * JetStream thread's wills). */
natsStatus vs_cjs_publish_frame(struct vs_cjs *j, const char *subject, uint8_t *buf, size_t head,
				size_t len, const char *msg_id)
{
	char subj[SUBJECT_MAX + sizeof(QOS_PREFIX)];
	snprintf(subj, sizeof(subj), QOS_PREFIX "%s", subject);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = PUB_WAIT_MS;
	po.MsgId = msg_id;
	pthread_mutex_lock(&j->pub_lock);
	vs_cluster_frame_head(j->node, ++j->seq, buf, head);
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(NULL, j->js, subj, buf, (int)len, &po, &jerr);
	pthread_mutex_unlock(&j->pub_lock);
	return s;
}

uint64_t vs_cjs_publish(struct vs_worker *w, struct vs_cjs *j, const char *subject, uint8_t *buf,
			size_t head, size_t len, uint64_t again)
{
	struct wjs *p = &j->w[w->idx];
	char subj[SUBJECT_MAX + sizeof(QOS_PREFIX)], id[VS_CLUSTER_NODE_MAX + 24];
	snprintf(subj, sizeof(subj), QOS_PREFIX "%s", subject);
	/* What the current client is told next waits for JetStream (vs_cjs_commit). */
	if (w->cur)
		w->cur->durable_pending = true;
	p->dirty = true;
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = PUB_WAIT_MS;
	po.MsgId = id;
	natsStatus s = NATS_CONNECTION_DISCONNECTED;
	/* Numbered and handed to the connection under one lock: a node's sequence numbers grow
	 * in the stream's order, which the receivers' duplicate check relies on. */
	pthread_mutex_lock(&j->pub_lock);
	uint64_t seq = ++j->seq;
	uint8_t flags = buf[0] & VS_CLUSTER_FRAME_LOOP;
	vs_cluster_frame_head(j->node, seq, buf, head);
	buf[0] |= flags;
	snprintf(id, sizeof(id), "%s:%llu", j->node, (unsigned long long)(again ? again : seq));
	if (natsConnection_Status(j->nc) == NATS_CONN_STATUS_CONNECTED)
		s = js_PublishAsync(p->js, subj, buf, (int)len, &po);
	pthread_mutex_unlock(&j->pub_lock);
	p->tried = again ? again : seq;
	if (s != NATS_OK) {
		p->failed_now = true;
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	p->sent++;
	pthread_mutex_unlock(&p->lock);
	return seq;
}

/* Waits (bounded) until JetStream has answered every publish of p; true when all were taken. */
static bool wait_published(struct wjs *p)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (PUB_WAIT_MS + 1000) / 1000;
	pthread_mutex_lock(&p->lock);
	while (p->done < p->sent)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) != 0)
			break;
	bool ok = p->done >= p->sent && p->failed == p->failed_seen && !p->failed_now;
	p->failed_seen = p->failed;
	pthread_mutex_unlock(&p->lock);
	p->failed_now = false;
	return ok;
}

int vs_cjs_commit(struct vs_worker *w, bool stored)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!j || !j->w)
		return 0;
	struct wjs *p = &j->w[w->idx];
	int rc = 0;
	vs_cjs_flush_recs(p, j);
	if (p->dirty) {
		p->dirty = false;
		if (!wait_published(p)) {
			rc = -EIO;
			if (w->now_ms - p->warned_ms >= WARN_EVERY_MS) {
				p->warned_ms = w->now_ms;
				vs_log(w->b->log, VS_LOG_WARN,
				       "cluster: JetStream did not take QoS 1/2 messages: their "
				       "publishers are disconnected unacknowledged");
			}
		}
	}
	if (p->n_q2)
		vs_cjs_settle_q2(j, p, rc < 0, w->now_ms);
	/* Given back, they come again behind newer ones, which seen would take for copies: it
	 * forgets (at least once: what else it drops now may come twice). Set before the nak. */
	if (!stored && p->n_acks)
		atomic_store(&j->forget, true);
	if (p->n_acks)
		vs_cjs_settle(j, p, p->n_acks, !stored);
	for (uint32_t i = 0; i < p->n_acks; i++) {
		if (stored)
			natsMsg_Ack(p->acks[i], NULL);
		else
			natsMsg_Nak(p->acks[i], NULL);
		natsMsg_Destroy(p->acks[i]);
	}
	p->n_acks = 0;
	return rc;
}

void vs_cjs_routed(struct vs_worker *w, void *ack)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	struct wjs *p = j && j->w ? &j->w[w->idx] : NULL;
	if (!p || VS_VEC_GROW(p->acks, p->cap_acks, p->n_acks + 1, 64) < 0) {
		if (j) {
			atomic_store(&j->forget, true); /* sent again after the ack wait */
			if (p)				/* the next in order after those routed */
				vs_cjs_settle_at(j, p, p->n_acks);
		}
		vs_cjs_drop(ack);
		return;
	}
	p->acks[p->n_acks++] = ack;
}

void vs_cjs_refuse(struct vs_worker *w, void *ack, bool never)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	struct wjs *p = j && j->w ? &j->w[w->idx] : NULL;
	if (p) /* the next in order after those routed */
		vs_cjs_settle_at(j, p, p->n_acks);
	if (never)
		natsMsg_Term(ack, NULL);
	else
		natsMsg_Nak(ack, NULL);
	natsMsg_Destroy(ack);
}

void vs_cjs_drop(void *ack)
{
	natsMsg_Destroy(ack);
}

/* A message of the stream (the library's delivery thread). */
static void on_js_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cjs *j = arg;
	uint64_t seq; /* its stream sequence, 0 when unknown */
	bool again;   /* sent before */
	bool lost =
	    vs_cjs_was_lost(j, nm, &seq, &again); /* first: every delivery counts, also refused */
	struct vs_cluster_frame f;
	const char *why;
	const uint8_t *data = (const uint8_t *)natsMsg_GetData(nm);
	int len = natsMsg_GetDataLength(nm);
	if (vs_cluster_frame_decode(data, (size_t)(len > 0 ? len : 0), &f, &why) < 0) {
		vs_log(j->b->log, VS_LOG_WARN, "cluster: a message on %s dropped: %s",
		       natsMsg_GetSubject(nm), why);
		natsMsg_Term(nm, NULL);
		goto out;
	}
	if (atomic_load_explicit(&j->forget, memory_order_relaxed) &&
	    atomic_exchange(&j->forget, false)) {
		vs_map_fini(&j->seen);
		memset(&j->seen, 0, sizeof(j->seen));
	}
	/* Its own were routed here when published, except to this node's persistent sessions
	 * (cluster_durable_sessions; the frame says whether one took it): routed now, for them
	 * only (cluster.h). Any it has routed
	 * already (sent again after a lost acknowledgement) is acknowledged and skipped; but not
	 * one whose first delivery was lost on the way (its sequence is behind newer ones, yet it
	 * was never routed). */
	bool own = f.node.len == strlen(j->node) && memcmp(f.node.p, j->node, f.node.len) == 0;
	if (own && seq && f.seq > atomic_load(&j->own_stamp)) { /* the sequence first */
		atomic_store(&j->own_sseq, seq);
		atomic_store(&j->own_stamp, f.seq);
	}
	uint64_t last = (uintptr_t)vs_map_get(&j->seen, f.node.p, f.node.len);
	if ((own && !(f.loop && j->b->conf->cluster_durable_sessions)) ||
	    (f.seq <= last && !lost)) {
		if (seq)
			vs_cjs_came_back(j, seq);
		vs_cjs_note_received(j, seq);
		natsMsg_Ack(nm, NULL);
		goto out;
	}
	/* Sent again after this node's restart, having been routed and stored here before
	 * (its acknowledgement lost with the node): not routed twice. */
	if (again && seq && vs_bp_routed_before(j->b, seq)) {
		vs_cjs_came_back(j, seq);
		vs_cjs_note_received(j, seq);
		natsMsg_Ack(nm, NULL);
		goto out;
	}
	/* Noted first: once delivered, nm (which f points into) is the worker's. */
	if (f.seq > last)
		vs_map_put(&j->seen, f.node.p, f.node.len, (void *)(uintptr_t)f.seq, NULL);
	/* Tracked by its worker (vs_cjs_track) before recv_max moves: the floor never runs
	 * ahead of what was taken. */
	if (vs_cluster_deliver(j->cl, &f, nm, seq, own, again) < 0) {
		if (seq)
			vs_cjs_give_back(j, seq);
		vs_cjs_note_received(j, seq);
		atomic_store(&j->forget, true); /* it comes again, maybe behind newer ones */
		natsMsg_Nak(nm, NULL);
		goto out;
	}
	vs_cjs_note_received(j, seq);
	vs_cjs_update_gap_low(j);
	return; /* the worker acknowledges it */
out:
	vs_cjs_update_gap_low(j);
	natsMsg_Destroy(nm);
}

/* ---- life ---- */

static int init_workers(struct vs_cjs *j, char *err, size_t errlen)
{
	j->n_w = j->b->n_workers;
	j->w = calloc((size_t)j->n_w, sizeof(*j->w));
	if (!j->w)
		goto out_nomem;
	for (int i = 0; i < j->n_w; i++) {
		struct wjs *p = &j->w[i];
		pthread_mutex_init(&p->lock, NULL);
		pthread_mutex_init(&p->tlock, NULL);
		pthread_cond_init(&p->cond, NULL);
		jsOptions o;
		jsOptions_Init(&o);
		o.PublishAsync.MaxPending = PUB_MAX_PENDING;
		o.PublishAsync.StallWait = PUB_WAIT_MS; /* a turn of more than MaxPending waits */
		o.PublishAsync.AckHandler = on_pub_ack;
		o.PublishAsync.AckHandlerClosure = p;
		natsStatus s = natsConnection_JetStream(&p->js, j->nc, &o);
		if (s != NATS_OK) {
			snprintf(err, errlen, "cluster: JetStream context: %s",
				 natsStatus_GetText(s));
			return -1;
		}
	}
	return 0;
out_nomem:
	snprintf(err, errlen, "cluster: no memory");
	return -1;
}

int vs_cjs_start(struct vs_cluster *cl, struct vs_broker *b, struct vs_cjs **out, char *err,
		 size_t errlen)
{
	struct vs_cjs *j = calloc(1, sizeof(*j));
	if (!j) {
		snprintf(err, errlen, "cluster: no memory");
		return -1;
	}
	*out = j;
	j->cl = cl;
	j->b = b;
	j->nc = vs_cluster_nc(b);
	j->js = vs_cluster_js(b);
	j->node = vs_cluster_node(b);
	j->lease_ms = b->conf->cluster_lease_ms;
	j->seq = (uint64_t)vs_wall_ns(); /* newer than an earlier life's (cluster.c) */
	j->tail = &j->head;
	pthread_mutex_init(&j->pub_lock, NULL);
	pthread_mutex_init(&j->nlock, NULL);
	pthread_mutex_init(&j->ulock, NULL);
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	if (vs_cluster_token((const uint8_t *)j->node, strlen(j->node), j->node_tok,
			     sizeof(j->node_tok)) < 0) {
		snprintf(err, errlen, "cluster: node id too long");
		return -1;
	}
	snprintf(j->consumer, sizeof(j->consumer), VS_CJS_CONSUMER_FMT, j->node_tok);
	snprintf(j->deliver, sizeof(j->deliver), DELIVER_PREFIX "%s", j->node_tok);
	if (init_workers(j, err, errlen) < 0)
		return -1;
	/* Ready before the first client when NATS is there; otherwise the thread keeps trying. */
	setup(j);
	if (pthread_create(&j->thread, NULL, run, j) != 0) {
		snprintf(err, errlen, "cluster: cannot start the JetStream thread");
		return -1;
	}
	j->thread_started = true;
	return 0;
}

void vs_cjs_stopping(struct vs_cjs *j)
{
	if (!j || !j->thread_started)
		return;
	pthread_mutex_lock(&j->lock);
	j->stop = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

void vs_cjs_stop(struct vs_cjs *j)
{
	if (!j || !j->thread_started)
		return;
	vs_cjs_stopping(j);
	pthread_join(j->thread, NULL);
	j->thread_started = false;
	/* Will updates not written yet: done now, so a clean stop leaves no will behind (one try:
	 * the first that fails for a moment ends it). */
	j->retry_ms = 0;
	if (vs_cjs_ready(j) && vs_cluster_connected(j->b)) /* without NATS each would time out */
		vs_cjs_run_ops(j, INT64_MAX);
}

void vs_cjs_free(struct vs_cjs *j)
{
	if (!j)
		return;
	natsSubscription_Destroy(j->sub);
	kvStore_Destroy(j->nodes);
	kvStore_Destroy(j->wills);
	for (int i = 0; j->w && i < j->n_w; i++) {
		struct wjs *p = &j->w[i];
		for (uint32_t k = 0; k < p->n_acks; k++)
			natsMsg_Destroy(p->acks[k]);
		free(p->acks);
		jsCtx_Destroy(p->js);
		free(p->tq);
		free(p->rec_subj);
		free(p->recs);
		for (uint32_t k = 0; k < p->n_q2; k++)
			vs_session_unref(p->q2[k].s);
		free(p->q2);
		pthread_mutex_destroy(&p->lock);
		pthread_mutex_destroy(&p->tlock);
		pthread_cond_destroy(&p->cond);
	}
	free(j->naked);
	pthread_mutex_destroy(&j->nlock);
	free(j->w);
	for (struct op *o = j->head, *next; o; o = next) {
		next = o->next;
		free(o->key);
		free(o->val);
		free(o);
	}
	vs_map_fini(&j->seen);
	vs_map_fini(&j->known);
	vs_cjs_unsure_fini(j);
	pthread_mutex_destroy(&j->ulock);
	vs_cluster_gaps_fini(&j->lost);
	pthread_mutex_destroy(&j->pub_lock);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
}
