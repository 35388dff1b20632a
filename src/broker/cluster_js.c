/* The cluster's JetStream part: QoS 1/2 between nodes, leases, wills (see cluster_js.h). */
#include "broker/cluster_js.h"
#include "broker/cluster_nats.h"
#include "broker/cluster_retain.h"

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
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/worker.h"
#include "cluster/cluster.h"
#include "cluster/gaps.h"
#include "cluster/keys.h"
#include "session/msg.h"
#include "session/session.h"

#define STREAM	       VS_CJS_STREAM
#define QOS_PREFIX     "vs.q."
#define QOS_SUBJECTS   VS_CJS_SUBJECTS
#define DELIVER_PREFIX "vs.d."
#define NODES_BUCKET   VS_CJS_NODES_BUCKET
#define WILLS_BUCKET   "vs_wills"
#define REAP_PREFIX    "reap."
#define SUBJECT_MAX    1100
#define KEY_MAX	       1024
#define TOKEN_MAX      (3 * VS_CLUSTER_NODE_MAX + 1)
#define HEAD_MAX       (2 + VS_CLUSTER_NODE_MAX + 8)

enum {
	PUB_MAX_PENDING = 4096, /* asynchronous publishes in flight per worker */
	PUB_WAIT_MS = 5000,	/* JetStream's acknowledgement of one publish */
	ACK_WAIT_S = 30,	/* before JetStream sends an unacknowledged message again */
	MAX_ACK_PENDING = 8192, /* messages handed to this node and not yet acknowledged */
	OPS_MAX = 100000,	/* will writes waiting for JetStream */
	WARN_EVERY_MS = 10000,
	RETRY_MS = 500,	     /* a will write that failed for a moment */
	UNSURE_MAX = 100000, /* QoS 2 messages remembered for a resend (vs_cjs_unsure) */
};

/* One per worker: a JetStream context of its own for asynchronous publishes, so that the end of
 * its turn waits for its own messages only; and the messages of other nodes it has routed. */
struct wjs {
	jsCtx *js;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t sent;	 /* publishes accepted by the library (worker, under lock) */
	uint64_t done;	 /* of which acknowledged or failed (ack handler, under lock) */
	uint64_t failed; /* of which failed (ack handler, under lock) */
	uint64_t failed_seen;
	bool dirty;	 /* published this turn (worker only) */
	bool failed_now; /* a publish of this turn was refused at once (worker only) */
	natsMsg **acks;	 /* routed this turn, to acknowledge at the commit (worker only) */
	uint32_t n_acks, cap_acks;
	/* The stream sequences of the messages handed to this worker and not yet acknowledged,
	 * in the order they were handed (its mailbox's, then its acks'): vs_cjs_floor(). */
	pthread_mutex_t tlock;
	uint64_t *tq;
	uint32_t tq_head, tq_n, tq_cap;
	int64_t warned_ms; /* worker only */
	/* The PUBRECs of this turn's client being read, for messages of the stream
	 * (vs_cjs_received): its journal subject and their sequences (8 bytes each, big-endian),
	 * published as one message when another client's come, or at the commit (worker only). */
	char *rec_subj;
	uint8_t *recs;
	size_t n_recs, cap_recs;
	uint64_t tried; /* the number of the last publish, made or failed (vs_cjs_tried) */
	/* This turn's QoS 2 messages from clients (vs_cjs_q2_published; worker only). */
	struct q2 *q2;
	uint32_t n_q2, cap_q2;
};

struct q2 {
	struct vs_session *s; /* a reference */
	uint64_t stamp;
	uint16_t pid;
};

/* A write to vs_wills, done on the JetStream thread in the order asked. */
struct op {
	struct op *next;
	char *key;
	uint8_t *val; /* a frame; NULL: delete */
	size_t len;
};

struct vs_cjs {
	struct vs_cluster *cl;
	struct vs_broker *b;
	natsConnection *nc;
	jsCtx *js; /* the node's shared context: API, buckets, the thread's publishes */
	const char *node;
	char node_tok[TOKEN_MAX];
	char consumer[TOKEN_MAX + 4];
	char deliver[TOKEN_MAX + 8];
	int64_t lease_ms;
	atomic_bool ready;   /* stream, consumer and buckets there */
	atomic_bool journal; /* the stream VS_RECS is there (vs_cjs_received) */
	natsSubscription *sub;
	kvStore *nodes, *wills;
	/* Node tokens whose wills this node looks after should their lease go (reap(); the
	 * JetStream thread's): those with a lease in vs_nodes, and those with wills in vs_wills
	 * when this node started. Dropped once a dead node has no will left. */
	struct vs_map known;
	bool listed; /* vs_wills listed whole once (reap()) */
	/* The last revision of vs_wills written before the node being reaped was seen dead: a
	 * will written after it is of that node's next life, not published (reap()). */
	uint64_t reap_upto;

	pthread_mutex_t pub_lock; /* sequence numbers in the order of publication */
	uint64_t seq;

	struct vs_map seen; /* origin node -> last sequence routed (delivery thread only) */
	struct vs_cluster_gaps lost; /* deliveries that never came (delivery thread only) */
	/* How far this node has taken the stream (vs_cjs_floor): the highest stream sequence
	 * received; those given back (negative ack, or dropped) until they come again; and
	 * whether that bookkeeping failed (no memory: the floor then stays where it started). */
	atomic_uint_fast64_t recv_max;
	uint64_t start_floor;
	atomic_uint_fast64_t gap_low;	/* the lowest lost sequence still to come again (above
					 * start_floor), 0: none (delivery thread writes) */
	atomic_uint_fast64_t ack_floor; /* the consumer's, as JetStream said last (keep_lease) */
	/* This node's own messages received back: the highest number (vs_cjs_publish) and the
	 * stream sequence it came with (delivery thread writes; vs_cjs_own_back) */
	atomic_uint_fast64_t own_stamp, own_sseq;
	pthread_mutex_t nlock;
	uint64_t *naked;
	uint32_t n_naked, cap_naked;
	atomic_bool untracked;
	atomic_bool forget; /* a worker gave messages back: seen no longer says what was routed */
	/* QoS 2 messages of clients that JetStream may not have taken (their commit failed):
	 * client id and packet id (unsure_key) -> struct unsure. */
	pthread_mutex_t ulock;
	struct vs_map unsure;
	atomic_uint n_unsure;
	int64_t unsure_warned_ms; /* under ulock */

	struct wjs *w;
	int n_w;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cond;
	bool stop;
	struct op *head, **tail;
	uint32_t n_ops;
	bool ops_warned;
	int64_t warned_ms;  /* JetStream thread only */
	int64_t next_lease; /* when to renew the lease next (JetStream thread only) */
	int64_t next_reap;  /* when to look for dead nodes' wills next (JetStream thread only) */
	int64_t retry_ms;   /* a will write failed: when to try again (JetStream thread only) */
};

static void warn_js(struct vs_cjs *j, const char *what, natsStatus s)
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
		warn_js(j,
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
	natsStatus s = js_GetConsumerInfo(&ci, j->js, STREAM, j->consumer, NULL, &jerr);
	uint_fast64_t floor = s == NATS_OK ? ci->AckFloor.Stream : 0;
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
		cc.AckWait = (int64_t)ACK_WAIT_S * 1000000000;
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

/* ---- leases and wills ---- */

static natsStatus renew_lease(struct vs_cjs *j)
{
	uint64_t rev;
	return kvStore_PutString(&rev, j->nodes, j->node_tok, j->node);
}

/*
 * Renews the lease when a third of it has passed. Called between the JetStream thread's other
 * writes too, not only when it is idle: a burst of will writes or of wills to publish (up to
 * OPS_MAX, each a JetStream round trip) can take longer than the lease, and a lease that lapses
 * makes the other nodes take this live node for dead and publish its clients' wills.
 */
static void keep_lease(struct vs_cjs *j)
{
	int64_t now = vs_now_ms();
	if (now < j->next_lease)
		return;
	natsStatus s = renew_lease(j);
	if (s != NATS_OK)
		warn_js(j, "renewing this node's lease", s);
	j->next_lease = now + j->lease_ms / 3;
	/* What JetStream says this node acknowledged: lost and given-back sequences at or below
	 * it are not waited for any more (vs_cjs_floor). */
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	if (js_GetConsumerInfo(&ci, j->js, STREAM, j->consumer, NULL, &jerr) == NATS_OK)
		atomic_store(&j->ack_floor, ci->AckFloor.Stream);
	jsConsumerInfo_Destroy(ci);
}

static natsStatus publish_frame(struct vs_cjs *j, const char *subject, uint8_t *buf, size_t head,
				size_t len, const char *msg_id);

/* Deletes the will at key if its revision is still rev: a will written meanwhile (its client
 * connected again to its node, restarted) stays. */
static void delete_will(struct vs_cjs *j, const char *key, uint64_t rev)
{
	char subject[sizeof("$KV." WILLS_BUCKET ".") + KEY_MAX];
	natsMsg *m = NULL;
	if ((size_t)snprintf(subject, sizeof(subject), "$KV.%s.%s", WILLS_BUCKET, key) >=
		sizeof(subject) ||
	    natsMsg_Create(&m, subject, NULL, NULL, 0) != NATS_OK)
		return;
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.ExpectLastSubjectSeq = rev;
	jsErrCode jerr = 0;
	natsStatus s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
	if (s == NATS_OK)
		s = js_PublishMsg(NULL, j->js, m, &po, &jerr);
	natsMsg_Destroy(m);
	if (s != NATS_OK && jerr != JSStreamWrongLastSequenceErr)
		warn_js(j, "deleting a published will", s);
}

/* Publishes the will stored at key (revision rev, frame val) as this node's message, to the
 * stream and to the clients here, then deletes it. */
static void publish_will(struct vs_cjs *j, const char *key, const uint8_t *val, size_t len,
			 uint64_t rev)
{
	struct vs_cluster_frame f;
	const char *why;
	if (vs_cluster_frame_decode(val, len, &f, &why) < 0) {
		vs_log(j->b->log, VS_LOG_WARN, "cluster: will %s dropped: %s", key, why);
		delete_will(j, key, rev);
		return;
	}
	size_t body = (size_t)((const uint8_t *)val + len - (f.node.p + f.node.len + 8));
	uint8_t *buf = malloc(HEAD_MAX + body);
	if (!buf)
		return;
	ssize_t h = vs_cluster_frame_head(j->node, 0, buf, HEAD_MAX);
	memcpy(buf + h, val + len - body, body);
	char subject[SUBJECT_MAX], id[KEY_MAX + 32];
	if (vs_cluster_topic_subject(f.publish.topic.p, f.publish.topic.len, subject,
				     sizeof(subject) - sizeof(QOS_PREFIX)) < 0)
		snprintf(subject, sizeof(subject), "vs.l");
	/* One id per stored will: a second survivor, or this one again after a failure, is
	 * dropped by the stream's duplicate window. */
	snprintf(id, sizeof(id), "will:%s:%llu", key, (unsigned long long)rev);
	natsStatus s = publish_frame(j, subject, buf, (size_t)h, (size_t)h + body, id);
	struct vs_cluster_frame mine;
	if (s == NATS_OK && vs_cluster_frame_decode(buf, (size_t)h + body, &mine, &why) == 0 &&
	    vs_cluster_deliver(j->cl, &mine, NULL, 0, false, false) == 0) {
		if (mine.publish.retain)
			vs_cluster_retain_on_behalf(j->b, &mine);
		vs_log(j->b->log, VS_LOG_NOTICE, "cluster: published will %s of a dead node", key);
		delete_will(j, key, rev);
	} else if (s != NATS_OK) {
		warn_js(j, "publishing a will of a dead node", s);
	}
	free(buf);
}

static void reap_key(struct vs_cjs *j, const char *key)
{
	kvEntry *e = NULL;
	if (kvStore_Get(&e, j->wills, key) != NATS_OK)
		return; /* gone meanwhile */
	if (kvEntry_Revision(e) > j->reap_upto) {
		kvEntry_Destroy(e); /* the node is back, and this client with it */
		return;
	}
	publish_will(j, key, (const uint8_t *)kvEntry_Value(e), (size_t)kvEntry_ValueLen(e),
		     kvEntry_Revision(e));
	kvEntry_Destroy(e);
}

/* Whether this node publishes the wills of node token tok, whose lease the caller found gone
 * (or, with self, this node's own from an earlier life): this node holds the claim
 * (compare-and-set: made here, or made earlier by this node). */
static bool ours_to_reap(struct vs_cjs *j, const char *tok, bool self)
{
	kvEntry *e = NULL;
	char claim[TOKEN_MAX + sizeof(REAP_PREFIX)];
	snprintf(claim, sizeof(claim), REAP_PREFIX "%s", tok);
	uint64_t rev;
	if (kvStore_CreateString(&rev, j->nodes, claim, j->node_tok) == NATS_OK) {
		if (!self)
			vs_log(
			    j->b->log, VS_LOG_NOTICE,
			    "cluster: the lease of node %s expired: publishing its clients' wills",
			    tok);
		return true;
	}
	e = NULL;
	bool mine = kvStore_Get(&e, j->nodes, claim) == NATS_OK &&
		    strcmp(kvEntry_ValueString(e), j->node_tok) == 0;
	kvEntry_Destroy(e);
	return mine;
}

/*
 * Calls fn for each key of bucket kv under filter (a watch of its keys, metadata only),
 * renewing the lease between keys, until fn returns false or every key there was is seen.
 * Returns how many keys fn was given, -1 when the watch failed. The time limit is 5 s per key,
 * not overall: kvStore_Keys's limit (5 s, shortened by the time since the start at every key,
 * so a few thousand keys exceed it) failed every start-up listing of a big vs_wills. Delete
 * markers are skipped here, not by the watch: its IgnoreDeletes counts the time of every
 * marker skipped against one call's limit, and a node's keys are mostly markers (one per
 * client that ever disconnected normally or whose will was published).
 */
static long each_key(struct vs_cjs *j, kvStore *kv, const char *filter,
		     bool (*fn)(struct vs_cjs *j, const char *key), const char *what)
{
	kvWatchOptions wo;
	kvWatchOptions_Init(&wo);
	wo.MetaOnly = true;
	kvWatcher *w = NULL;
	natsStatus s = kvStore_Watch(&w, kv, filter, &wo);
	long n = 0;
	while (s == NATS_OK) {
		kvEntry *e = NULL;
		if ((s = kvWatcher_Next(&e, w, 5000)) != NATS_OK || !e)
			break; /* NULL: every key there was is seen */
		bool put = kvEntry_Operation(e) == kvOp_Put, more = !put || fn(j, kvEntry_Key(e));
		kvEntry_Destroy(e);
		n += put;
		keep_lease(j);
		if (!more)
			break;
	}
	kvWatcher_Destroy(w);
	if (s != NATS_OK && s != NATS_NOT_FOUND) {
		warn_js(j, what, s);
		return -1;
	}
	return n;
}

static bool publish_key(struct vs_cjs *j, const char *key)
{
	reap_key(j, key);
	return true;
}

/*
 * The last revision of vs_wills now, or 0 when that cannot be read. With tok, 0 too when the
 * lease of node tok is there again: the node restarted. Its lease is written before any will of
 * its new life, so when the lease is not there after the revision is read, every will of the
 * new life has a later revision.
 */
static uint64_t wills_upto(struct vs_cjs *j, const char *tok)
{
	jsStreamInfo *si = NULL;
	uint64_t last = 0;
	if (js_GetStreamInfo(&si, j->js, "KV_" WILLS_BUCKET, NULL, NULL) == NATS_OK)
		last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	if (last && tok) {
		kvEntry *e = NULL;
		natsStatus s = kvStore_Get(&e, j->nodes, tok);
		kvEntry_Destroy(e);
		if (s != NATS_NOT_FOUND)
			last = 0;
	}
	return last;
}

static bool first_key(struct vs_cjs *j, const char *key)
{
	(void)j, (void)key;
	return false;
}

/* Adds the node token of key (a will's: its prefix; a lease's: the key) to known, except this
 * node's and the reaping claims. */
static bool learn_key(struct vs_cjs *j, const char *key, bool wills)
{
	ssize_t n = wills ? vs_cluster_will_key_node(key) : (ssize_t)strlen(key);
	size_t own = strlen(j->node_tok);
	if (n < 0 || n >= TOKEN_MAX || (!wills && strncmp(key, REAP_PREFIX, 5) == 0) ||
	    ((size_t)n == own && memcmp(key, j->node_tok, own) == 0))
		return true;
	if (!vs_map_get(&j->known, key, (size_t)n))
		vs_map_put(&j->known, key, (size_t)n, (void *)1, NULL);
	return true;
}

static bool learn_will(struct vs_cjs *j, const char *key)
{
	return learn_key(j, key, true);
}

static bool learn_lease(struct vs_cjs *j, const char *key)
{
	return learn_key(j, key, false);
}

/*
 * The wills of nodes whose lease is gone are published by the node that claims them (with
 * self, this node's own from an earlier life). The nodes looked at are those with a lease
 * (vs_nodes: a few keys) and, listed once at start-up, those that had wills then: each node's
 * wills are then found by a watch of its own keys, so a node does not list every client's will
 * every third of a lease (10 million of them took minutes). A dead node is claimed only while
 * it has wills: one that another node has reaped is forgotten, not claimed again once that
 * node's claim expires.
 */
static void reap(struct vs_cjs *j, bool self)
{
	char filter[TOKEN_MAX + 3];
	if (self) {
		snprintf(filter, sizeof(filter), "%s.>", j->node_tok);
		j->reap_upto = UINT64_MAX; /* no client here yet */
		if (ours_to_reap(j, j->node_tok, true))
			each_key(j, j->wills, filter, publish_key, "listing this node's wills");
		return;
	}
	/* Listed again at the next look when the listing failed. */
	if (!j->listed)
		j->listed = each_key(j, j->wills, ">", learn_will, "listing the wills") >= 0;
	each_key(j, j->nodes, ">", learn_lease, "listing the nodes' leases");
	struct vs_map gone = {0}; /* dead, and nothing of it left */
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&j->known, &it, &key, &klen, &val)) {
		char tok[TOKEN_MAX];
		snprintf(tok, sizeof(tok), "%.*s", (int)klen, key);
		kvEntry *e = NULL;
		natsStatus s = kvStore_Get(&e, j->nodes, tok);
		kvEntry_Destroy(e);
		if (s != NATS_NOT_FOUND)
			continue; /* alive, or unknown */
		snprintf(filter, sizeof(filter), "%s.>", tok);
		long n = each_key(j, j->wills, filter, first_key, "looking at a dead node's wills");
		if (n > 0 && ours_to_reap(j, tok, false)) {
			j->reap_upto = wills_upto(j, tok);
			if (j->reap_upto)
				n = each_key(j, j->wills, filter, publish_key,
					     "listing the wills of a dead node");
		}
		if (n == 0)
			vs_map_put(&gone, key, klen, (void *)1, NULL);
		keep_lease(j);
	}
	it = 0;
	while (vs_map_next(&gone, &it, &key, &klen, &val))
		vs_map_del(&j->known, key, klen);
	vs_map_fini(&gone);
	vs_log(j->b->log, VS_LOG_DEBUG,
	       "cluster: looked for nodes whose lease is gone (%zu other node(s) known)",
	       j->known.count);
}

/* The first waiting will write, left in the queue (only this thread takes writes out). */
static struct op *first_op(struct vs_cjs *j)
{
	pthread_mutex_lock(&j->lock);
	struct op *o = j->head;
	pthread_mutex_unlock(&j->lock);
	return o;
}

static void drop_first_op(struct vs_cjs *j)
{
	pthread_mutex_lock(&j->lock);
	struct op *o = j->head;
	j->head = o->next;
	if (!j->head)
		j->tail = &j->head;
	j->n_ops--;
	pthread_mutex_unlock(&j->lock);
	free(o->key);
	free(o->val);
	free(o);
}

/*
 * Writes the waiting will updates in order, until none is left or until the time until (ms):
 * the lease is kept between writes, and the reaping's turn comes even while wills keep coming.
 * A write that fails for a moment (vs_cluster_transient: a leader election after a NATS server
 * died) stays first and is tried again RETRY_MS later, the others behind it: a will missing
 * from vs_wills is not published when this node dies, and a delete missing leaves a cancelled
 * will there for a survivor (or this node, restarted) to publish.
 */
static void run_ops(struct vs_cjs *j, int64_t until)
{
	struct op *o;
	while (vs_now_ms() < until && vs_now_ms() >= j->retry_ms && (o = first_op(j))) {
		uint64_t rev;
		natsStatus s = o->val ? kvStore_Put(&rev, j->wills, o->key, o->val, (int)o->len)
				      : kvStore_Delete(j->wills, o->key);
		keep_lease(j);
		if (s != NATS_OK && vs_cluster_transient(s)) {
			warn_js(j,
				o->val ? "storing a will (trying again)"
				       : "deleting a will (trying again)",
				s);
			j->retry_ms = vs_now_ms() + RETRY_MS;
			return;
		}
		if (s != NATS_OK)
			warn_js(j, o->val ? "storing a will" : "deleting a will", s);
		drop_first_op(j);
	}
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
	if (s == NATS_OK && (s = renew_lease(j)) != NATS_OK)
		what = "this node's lease";
	if (s != NATS_OK) {
		char w[96];
		snprintf(w, sizeof(w), "JetStream not ready (%s); QoS 1/2 crosses on core NATS",
			 what);
		warn_js(j, w, s);
		return -1;
	}
	reap(j, true);
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
			run_ops(j, j->next_reap);
			keep_lease(j);
			if (vs_now_ms() >= j->next_reap) {
				reap(j, false);
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

void vs_cjs_will(struct vs_worker *w, const char *client_id, size_t len, struct vs_msg *will)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!j)
		return;
	char key[KEY_MAX];
	if (vs_cluster_will_key(j->node, (const uint8_t *)client_id, len, key, sizeof(key)) < 0)
		return; /* a client id this long keeps its will on this node only */
	struct op *o = calloc(1, sizeof(*o));
	if (!o || !(o->key = strdup(key)))
		goto out_free;
	if (will) {
		struct vs_delivery d = {.version = VS_V5, .qos = will->qos, .retain = will->retain};
		d.packet_id = will->qos ? 1 : 0;
		ssize_t plen = vs_msg_encoded_size(will, &d, w->now_ms);
		if (plen < 0 || !(o->val = malloc(HEAD_MAX + (size_t)plen)))
			goto out_free;
		ssize_t h = vs_cluster_frame_head(j->node, 0, o->val, HEAD_MAX);
		ssize_t n = vs_msg_encode(will, &d, w->now_ms, o->val + h, (size_t)plen);
		if (n <= 0)
			goto out_free;
		o->len = (size_t)(h + n);
	}
	pthread_mutex_lock(&j->lock);
	bool full = j->n_ops >= OPS_MAX;
	if (!full) {
		*j->tail = o;
		j->tail = &o->next;
		j->n_ops++;
		pthread_cond_signal(&j->cond);
	} else if (!j->ops_warned) {
		j->ops_warned = true;
		vs_log(w->b->log, VS_LOG_WARN,
		       "cluster: %d will updates wait for JetStream: further ones are dropped",
		       OPS_MAX);
	}
	pthread_mutex_unlock(&j->lock);
	if (!full)
		return;
out_free:
	if (o) {
		free(o->key);
		free(o->val);
	}
	free(o);
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
static natsStatus publish_frame(struct vs_cjs *j, const char *subject, uint8_t *buf, size_t head,
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

bool vs_cjs_recs_subject(const char *client_id, size_t len, char out[VS_CJS_RECS_SUBJECT_MAX])
{
	size_t n = sizeof(VS_CJS_RECS_PREFIX) - 1;
	memcpy(out, VS_CJS_RECS_PREFIX, n);
	return vs_cluster_token((const uint8_t *)client_id, len, out + n,
				VS_CJS_RECS_SUBJECT_MAX - n) >= 0;
}

/* Publishes the PUBRECs gathered for one client (vs_cjs_received) as one journal entry. */
static void flush_recs(struct wjs *p, struct vs_cjs *j)
{
	if (!p->n_recs)
		return;
	natsStatus s = NATS_CONNECTION_DISCONNECTED;
	if (natsConnection_Status(j->nc) == NATS_CONN_STATUS_CONNECTED)
		s = js_PublishAsync(p->js, p->rec_subj, p->recs, (int)p->n_recs, NULL);
	p->n_recs = 0;
	if (s != NATS_OK) {
		p->failed_now = true;
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->sent++;
	pthread_mutex_unlock(&p->lock);
}

void vs_cjs_received(struct vs_worker *w, const char *client_id, size_t len, uint64_t sseq)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!vs_cjs_ready(j) || !j->w || !atomic_load_explicit(&j->journal, memory_order_relaxed))
		return;
	struct wjs *p = &j->w[w->idx];
	char tok[VS_CJS_RECS_SUBJECT_MAX];
	if (!vs_cjs_recs_subject(client_id, len, tok))
		return; /* an id too long for a subject: at least once, as before */
	if (p->n_recs && strcmp(p->rec_subj, tok) != 0)
		flush_recs(p, j);
	if (!p->n_recs) {
		char *subj = strdup(tok);
		if (!subj)
			return;
		free(p->rec_subj);
		p->rec_subj = subj;
	}
	if (VS_VEC_GROW(p->recs, p->cap_recs, p->n_recs + 8, 256) < 0)
		return;
	for (int i = 0; i < 8; i++)
		p->recs[p->n_recs++] = (uint8_t)(sseq >> (56 - 8 * i));
	/* The PUBREL this turn gives the client waits for the entry (vs_cjs_commit). */
	if (w->cur)
		w->cur->durable_pending = true;
	p->dirty = true;
}

uint64_t vs_cjs_tried(struct vs_worker *w)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!j || !j->w)
		return 0;
	uint64_t t = j->w[w->idx].tried;
	j->w[w->idx].tried = 0;
	return t;
}

/* The key of client_id's packet id pid in unsure: in buf when it fits, else allocated (NULL:
 * no memory); *len its length. */
static char *unsure_key(const char *client_id, uint16_t pid, char *buf, size_t cap, size_t *len)
{
	size_t n = strlen(client_id);
	char *k = n + 2 <= cap ? buf : malloc(n + 2);
	if (!k)
		return NULL;
	memcpy(k, client_id, n);
	k[n] = (char)(pid >> 8);
	k[n + 1] = (char)(pid & 0xff);
	*len = n + 2;
	return k;
}

int vs_cjs_q2_published(struct vs_worker *w, struct vs_session *s, uint16_t pid, uint64_t stamp)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!j || !j->w)
		return 0;
	struct wjs *p = &j->w[w->idx];
	if (VS_VEC_GROW(p->q2, p->cap_q2, p->n_q2 + 1, 16) < 0)
		return -ENOMEM;
	p->q2[p->n_q2++] = (struct q2){vs_session_ref(s), stamp, pid};
	return 0;
}

/* An entry of unsure: the number, and the session it is of (a reference): the same client id
 * and packet id in another session (its client started clean) is another message. */
struct unsure {
	uint64_t stamp;
	struct vs_session *s;
};

static void unsure_free(struct unsure *u)
{
	vs_session_unref(u->s);
	free(u);
}

/* Drops the entries of sessions that ended (ulock held): they never come again. */
static void unsure_sweep(struct vs_cjs *j)
{
	size_t it = 0, n = 0, klen;
	const char *key;
	void *val;
	char **gone = NULL;
	size_t *lens = NULL, cap = 0, cap2 = 0;
	while (vs_map_next(&j->unsure, &it, &key, &klen, &val)) {
		struct unsure *u = val;
		pthread_mutex_lock(&u->s->lock);
		bool ended = u->s->ended;
		pthread_mutex_unlock(&u->s->lock);
		char *k = ended ? malloc(klen) : NULL;
		if (!k || VS_VEC_GROW(gone, cap, n + 1, 64) < 0 ||
		    VS_VEC_GROW(lens, cap2, n + 1, 64) < 0) {
			free(k);
			continue;
		}
		memcpy(k, key, klen);
		gone[n] = k;
		lens[n++] = klen;
	}
	for (size_t i = 0; i < n; i++) {
		struct unsure *u = vs_map_del(&j->unsure, gone[i], lens[i]);
		if (u) {
			unsure_free(u);
			atomic_fetch_sub(&j->n_unsure, 1);
		}
		free(gone[i]);
	}
	free(gone);
	free(lens);
}

/* Keeps s's QoS 2 message pid, published as number stamp, in unsure (ulock held); takes the
 * reference to s on success. */
static bool remember(struct vs_cjs *j, struct vs_session *s, uint16_t pid, uint64_t stamp)
{
	if (atomic_load(&j->n_unsure) >= UNSURE_MAX)
		return false;
	struct unsure *u = malloc(sizeof(*u));
	char buf[256], *key = NULL;
	size_t len = 0;
	if (u)
		key = unsure_key(s->client_id, pid, buf, sizeof(buf), &len);
	void *old = NULL;
	bool ok = key && vs_map_put(&j->unsure, key, len, u, &old) == 0;
	if (ok) {
		*u = (struct unsure){stamp, s};
		if (old)
			unsure_free(old);
		else
			atomic_fetch_add(&j->n_unsure, 1);
	} else {
		free(u);
	}
	if (key != buf)
		free(key);
	return ok;
}

static void warn_unsure(struct vs_cjs *j, uint32_t lost, int64_t now_ms)
{
	if (!lost || now_ms - j->unsure_warned_ms < WARN_EVERY_MS)
		return;
	j->unsure_warned_ms = now_ms;
	vs_log(j->b->log, VS_LOG_WARN,
	       "cluster: %u QoS 2 message(s) that JetStream may not have taken cannot be "
	       "remembered (%u are already): if it did not, their publishers' resends are "
	       "acknowledged without reaching the other nodes",
	       lost, (unsigned)atomic_load(&j->n_unsure));
}

/* End of the turn: this turn's QoS 2 messages from clients are known to be in the stream, or
 * (failed) not known to be. */
static void settle_q2(struct vs_cjs *j, struct wjs *p, bool failed, int64_t now_ms)
{
	uint32_t lost = 0;
	if (failed) {
		pthread_mutex_lock(&j->ulock);
		if (atomic_load(&j->n_unsure) + p->n_q2 >= UNSURE_MAX)
			unsure_sweep(j);
	}
	for (uint32_t i = 0; i < p->n_q2; i++) {
		struct q2 *q = &p->q2[i];
		if (failed && remember(j, q->s, q->pid, q->stamp))
			continue; /* the reference went with it */
		lost += failed;
		vs_session_unref(q->s);
	}
	if (failed) {
		warn_unsure(j, lost, now_ms);
		pthread_mutex_unlock(&j->ulock);
	}
	p->n_q2 = 0;
}

void vs_cjs_unsure_keep(struct vs_worker *w, struct vs_session *s, uint16_t pid, uint64_t stamp)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!j)
		return;
	pthread_mutex_lock(&j->ulock);
	if (remember(j, vs_session_ref(s), pid, stamp))
		s = NULL;
	else
		warn_unsure(j, 1, w->now_ms);
	pthread_mutex_unlock(&j->ulock);
	if (s)
		vs_session_unref(s);
}

uint64_t vs_cjs_unsure(struct vs_worker *w, struct vs_session *s, uint16_t pid)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!j || !atomic_load_explicit(&j->n_unsure, memory_order_relaxed))
		return 0;
	char buf[256];
	size_t len;
	char *key = unsure_key(s->client_id, pid, buf, sizeof(buf), &len);
	if (!key)
		return 0;
	pthread_mutex_lock(&j->ulock);
	struct unsure *u = vs_map_del(&j->unsure, key, len);
	if (u)
		atomic_fetch_sub(&j->n_unsure, 1);
	pthread_mutex_unlock(&j->ulock);
	if (key != buf)
		free(key);
	if (!u)
		return 0;
	uint64_t stamp = u->s == s ? u->stamp : 0; /* another session's: stale */
	unsure_free(u);
	return stamp;
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

static void settle(struct vs_cjs *j, struct wjs *p, uint32_t n, bool back);
static void settle_at(struct vs_cjs *j, struct wjs *p, uint32_t at);

int vs_cjs_commit(struct vs_worker *w, bool stored)
{
	struct vs_cjs *j = vs_cluster_cjs(w->b->cluster);
	if (!j || !j->w)
		return 0;
	struct wjs *p = &j->w[w->idx];
	int rc = 0;
	flush_recs(p, j);
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
		settle_q2(j, p, rc < 0, w->now_ms);
	/* Given back, they come again behind newer ones, which seen would take for copies: it
	 * forgets (at least once: what else it drops now may come twice). Set before the nak. */
	if (!stored && p->n_acks)
		atomic_store(&j->forget, true);
	if (p->n_acks)
		settle(j, p, p->n_acks, !stored);
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
				settle_at(j, p, p->n_acks);
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
		settle_at(j, p, p->n_acks);
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

/* What is still to come again holds the floor back (vs_cjs_floor); below the consumer's
 * starting point everything was acknowledged in an earlier life. Called once the message that
 * came is tracked (delivery thread). */
static void update_gap_low(struct vs_cjs *j)
{
	uint64_t low = 0;
	for (uint32_t i = 0; i < j->lost.n && !low; i++)
		if (j->lost.gap[i].hi > j->start_floor)
			low = j->lost.gap[i].lo > j->start_floor ? j->lost.gap[i].lo
								 : j->start_floor + 1;
	atomic_store(&j->gap_low, low);
}

/*
 * Whether nm comes again after its first delivery was lost (cluster/gaps.h): while this node's
 * connection moves to another NATS server, what the dead one was sending it is gone, and comes
 * again one ack wait later, behind messages routed since (delivery thread).
 */
static bool was_lost(struct vs_cjs *j, natsMsg *nm, uint64_t *seq, bool *again)
{
	jsMsgMetaData *meta = NULL;
	*seq = 0;
	*again = false;
	if (natsMsg_GetMetaData(&meta, nm) != NATS_OK)
		return false;
	*seq = meta->Sequence.Stream;
	*again = meta->NumDelivered > 1;
	bool lost = false;
	if (meta->NumDelivered <= 1) {
		uint64_t n = vs_cluster_gaps_first(&j->lost, meta->Sequence.Stream);
		if (n)
			vs_log(j->b->log, VS_LOG_NOTICE,
			       "cluster: %llu messages of the stream were lost on the way here: "
			       "they come again in %d s",
			       (unsigned long long)n, ACK_WAIT_S);
	} else {
		lost = vs_cluster_gaps_take(&j->lost, meta->Sequence.Stream);
	}
	jsMsgMetaData_Destroy(meta);
	return lost;
}

static void note_received(struct vs_cjs *j, uint64_t seq)
{
	uint_fast64_t max = atomic_load_explicit(&j->recv_max, memory_order_relaxed);
	while (seq > max && !atomic_compare_exchange_weak(&j->recv_max, &max, seq))
		;
}

static void give_back(struct vs_cjs *j, uint64_t seq)
{
	if (!seq)
		return; /* a shared group's copy, or unknown: nothing this node waits for */
	pthread_mutex_lock(&j->nlock);
	if (VS_VEC_GROW(j->naked, j->cap_naked, j->n_naked + 1, 16) < 0)
		atomic_store(&j->untracked, true);
	else
		j->naked[j->n_naked++] = seq;
	pthread_mutex_unlock(&j->nlock);
}

/* seq came again after it was given back. */
static void came_back(struct vs_cjs *j, uint64_t seq)
{
	pthread_mutex_lock(&j->nlock);
	for (uint32_t i = 0; i < j->n_naked; i++)
		if (j->naked[i] == seq) {
			j->naked[i] = j->naked[--j->n_naked];
			break;
		}
	pthread_mutex_unlock(&j->nlock);
}

void vs_cjs_track(struct vs_cjs *j, int worker, void *ack, uint64_t seq)
{
	(void)ack;
	if (!j || !j->w || worker < 0 || worker >= j->n_w)
		return;
	struct wjs *p = &j->w[worker];
	pthread_mutex_lock(&p->tlock);
	if (p->tq_n == p->tq_cap) {
		uint32_t cap = p->tq_cap ? p->tq_cap * 2 : 256;
		uint64_t *q = malloc(cap * sizeof(*q));
		if (!q) {
			atomic_store(&j->untracked, true);
			pthread_mutex_unlock(&p->tlock);
			return;
		}
		for (uint32_t i = 0; i < p->tq_n; i++)
			q[i] = p->tq[(p->tq_head + i) % p->tq_cap];
		free(p->tq);
		p->tq = q;
		p->tq_head = 0;
		p->tq_cap = cap;
	}
	p->tq[(p->tq_head + p->tq_n++) % p->tq_cap] = seq;
	pthread_mutex_unlock(&p->tlock);
	if (seq)
		came_back(j, seq);
}

/* The first n of worker p's messages were acknowledged, or (back) given back. */
static void settle(struct vs_cjs *j, struct wjs *p, uint32_t n, bool back)
{
	pthread_mutex_lock(&p->tlock);
	for (uint32_t i = 0; i < n && p->tq_n; i++) {
		uint64_t seq = p->tq[p->tq_head];
		p->tq_head = (p->tq_head + 1) % p->tq_cap;
		p->tq_n--;
		if (back)
			give_back(j, seq);
	}
	pthread_mutex_unlock(&p->tlock);
}

/* Worker p's message at position at (after the at routed before it) was dropped unacknowledged:
 * JetStream sends it again after the ack wait. */
static void settle_at(struct vs_cjs *j, struct wjs *p, uint32_t at)
{
	pthread_mutex_lock(&p->tlock);
	if (at < p->tq_n) {
		uint64_t seq = p->tq[(p->tq_head + at) % p->tq_cap];
		for (uint32_t i = at; i + 1 < p->tq_n; i++)
			p->tq[(p->tq_head + i) % p->tq_cap] =
			    p->tq[(p->tq_head + i + 1) % p->tq_cap];
		p->tq_n--;
		give_back(j, seq);
	}
	pthread_mutex_unlock(&p->tlock);
}

/* Below the lowest stream sequence this node has not finished taking (and, with held, that a
 * session of it still holds). */
static uint64_t floor_of(struct vs_cjs *j, bool with_held)
{
	if (!j)
		return 0;
	if (atomic_load(&j->untracked))
		return j->start_floor;
	/* Read first: a message tracked after the scans below raises it, never lowers it. */
	uint64_t max = atomic_load(&j->recv_max), acked = atomic_load(&j->ack_floor);
	uint64_t low = UINT64_MAX;
	for (int k = 0; k < j->n_w; k++) {
		struct wjs *p = &j->w[k];
		pthread_mutex_lock(&p->tlock);
		for (uint32_t i = 0; i < p->tq_n; i++) {
			uint64_t seq = p->tq[(p->tq_head + i) % p->tq_cap];
			if (seq && seq < low)
				low = seq;
		}
		pthread_mutex_unlock(&p->tlock);
	}
	pthread_mutex_lock(&j->nlock);
	for (uint32_t i = 0; i < j->n_naked; i++)
		if (j->naked[i] > acked && j->naked[i] < low)
			low = j->naked[i];
	pthread_mutex_unlock(&j->nlock);
	uint64_t gap = atomic_load(&j->gap_low);
	if (gap) /* below what JetStream says was acknowledged, a gap is stale: that bounds it */
		gap = gap > acked ? gap : acked + 1;
	if (gap && gap < low)
		low = gap;
	/* Taken, acknowledged to JetStream, and still held by a session (queued, in its window):
	 * should this node die, another rebuilding the session must read it again. */
	uint64_t held = with_held ? vs_minset_min(&j->b->stream_held) : UINT64_MAX;
	if (held < low)
		low = held;
	return low == UINT64_MAX ? max : low - 1 < max ? low - 1 : max;
}

uint64_t vs_cjs_floor(struct vs_cjs *j)
{
	return floor_of(j, true);
}

uint64_t vs_cjs_taken(struct vs_cjs *j)
{
	return floor_of(j, false);
}

bool vs_cjs_own_back(struct vs_cjs *j, uint64_t stamp, uint64_t *sseq)
{
	if (!j || atomic_load(&j->own_stamp) < stamp)
		return false;
	*sseq = atomic_load(&j->own_sseq); /* written first: at or after stamp's */
	return true;
}

/* A message of the stream (the library's delivery thread). */
static void on_js_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cjs *j = arg;
	uint64_t seq;				   /* its stream sequence, 0 when unknown */
	bool again;				   /* sent before */
	bool lost = was_lost(j, nm, &seq, &again); /* first: every delivery counts, also refused */
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
			came_back(j, seq);
		note_received(j, seq);
		natsMsg_Ack(nm, NULL);
		goto out;
	}
	/* Sent again after this node's restart, having been routed and stored here before
	 * (its acknowledgement lost with the node): not routed twice. */
	if (again && seq && vs_bp_routed_before(j->b, seq)) {
		came_back(j, seq);
		note_received(j, seq);
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
			give_back(j, seq);
		note_received(j, seq);
		atomic_store(&j->forget, true); /* it comes again, maybe behind newer ones */
		natsMsg_Nak(nm, NULL);
		goto out;
	}
	note_received(j, seq);
	update_gap_low(j);
	return; /* the worker acknowledges it */
out:
	update_gap_low(j);
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
		run_ops(j, INT64_MAX);
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
	size_t it = 0, klen;
	const char *key;
	void *val;
	while (vs_map_next(&j->unsure, &it, &key, &klen, &val))
		unsure_free(val);
	vs_map_fini(&j->unsure);
	pthread_mutex_destroy(&j->ulock);
	vs_cluster_gaps_fini(&j->lost);
	pthread_mutex_destroy(&j->pub_lock);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
}
