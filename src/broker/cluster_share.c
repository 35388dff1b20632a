/* Shared subscriptions across the cluster, on NATS queue groups (see cluster_share.h). */
#include "broker/cluster_share.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/map.h"
#include "broker/broker.h"
#include "broker/cluster_interest.h"
#include "broker/cluster_js.h"
#include "broker/cluster_nats.h"
#include "broker/worker.h"
#include "cluster/cluster.h"
#include "cluster/kvkey.h"
#include "session/msg.h"

#define SUBJECT_MAX 1024

/* One $share/G/F with local members. */
struct group {
	unsigned refs;		    /* local members */
	natsSubscription *subs[3];  /* F's subjects under vs.s (one or two), and vs.sl */
	natsSubscription *jsubs[3]; /* its JetStream consumers' (bound by the thread) */
	int n_subjects;		    /* of F: 1 or 2 ("vs.m.>" when F's are too long) */
	bool bound;		    /* jsubs there: its subjects are in vs_interest, and its QoS
				     * 1/2 messages go through JetStream (before: core vs.s) */
	uint64_t ticket;	    /* the barrier's ticket of those vs_interest writes */
	char *subjects[2];	    /* F's subjects under vs.m */
	char queue[VS_SHARE_QUEUE];
	char share[]; /* "$share/G/F", NUL-terminated */
};

/* A group whose JetStream consumers are to be bound (the thread's queue). */
struct bind {
	struct bind *next;
	char share[];
};

struct vs_cluster_share {
	struct vs_broker *b;
	natsConnection *pub;
	pthread_mutex_t lock;
	struct vs_map groups; /* "$share/G/F" -> struct group * */
	struct vs_map by_sub; /* natsSubscription * (its bytes) -> struct group * */
	atomic_size_t n_groups;
	atomic_bool remote; /* another node has groups */
	pthread_t thread;   /* binds groups to their JetStream consumers */
	bool started;
	bool stop;	     /* under lock */
	pthread_cond_t cond; /* with lock: binds queued, or stop */
	struct bind *binds;
};

/* A copy NATS (or, js, JetStream: acknowledged once routed and stored) chose this node for: to
 * one local member of the subscription's group. */
static void take_copy(struct vs_cluster_share *s, natsSubscription *sub, natsMsg *nm, bool js)
{
	struct vs_broker *b = s->b;
	char *share = NULL;
	pthread_mutex_lock(&s->lock);
	struct group *g = vs_map_get(&s->by_sub, &sub, sizeof(sub));
	if (g)
		share = strdup(g->share);
	pthread_mutex_unlock(&s->lock);
	struct vs_cluster_frame f;
	const char *why;
	const uint8_t *data = (const uint8_t *)natsMsg_GetData(nm);
	int len = natsMsg_GetDataLength(nm);
	bool never = false; /* JetStream: not to be sent again (else: to another node) */
	if (!share)
		goto out; /* unsubscribed meanwhile */
	if (vs_cluster_frame_decode(data, (size_t)(len > 0 ? len : 0), &f, &why) < 0) {
		vs_log(b->log, VS_LOG_WARN, "cluster: a message on %s dropped: %s",
		       natsMsg_GetSubject(nm), why);
		never = true;
		goto out;
	}
	struct vs_buf origin = {(const uint8_t *)"", 0};
	struct vs_msg *m = vs_msg_new(&f.publish.topic, &f.publish, &origin, vs_now_ms());
	if (!m)
		goto out;
	m->remote = true;
	vs_cluster_count(b, 0, 1);
	/* One worker per origin node, as for its other messages: its order is kept. */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < f.node.len; i++)
		h = (h ^ f.node.p[i]) * 16777619u;
	int k = (int)(h % (uint32_t)b->n_workers);
	struct vs_mail mail = {.type = VS_MAIL_CLUSTER, .msg = m, .share = share};
	share = NULL;
	if (js) {
		mail.ack = nm; /* the worker acknowledges it after its commit */
		vs_cjs_track(vs_cluster_cjs(b->cluster), k, nm, 0);
		nm = NULL;
	}
	vs_worker_post_now(&b->workers[k], &mail);
out:
	free(share);
	if (nm && js && never)
		natsMsg_Term(nm, NULL);
	else if (nm && js)
		natsMsg_Nak(nm, NULL);
	natsMsg_Destroy(nm);
}

static void on_share_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	take_copy(arg, sub, nm, false);
}

static void on_share_js(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	take_copy(arg, sub, nm, true);
}

/* ---- JetStream: each group's durable consumers (one per subject of F, and one for long
 * topics), shared by every node with members through the group's NATS queue ---------------- */

enum {
	GROUP_ACK_WAIT_S = 10, /* a node that took a message and died: another node gets it then */
	GROUP_MAX_ACK_PENDING = 8192,
	GROUP_IDLE_S = 3600, /* a consumer no node has used for this long is deleted by NATS */
};

/* Binds (creating it if no node has) consumer i of g: subject is F's subject under vs.m (or
 * vs.l). Returns the subscription, or NULL. */
static natsSubscription *bind_one(struct vs_cluster_share *s, const char *queue, int i,
				  const char *subject)
{
	jsCtx *js = vs_cluster_js(s->b);
	char name[VS_SHARE_QUEUE + 8], deliver[VS_SHARE_QUEUE + 16], filter[SUBJECT_MAX + 8];
	snprintf(name, sizeof(name), "%s_%d", queue, i);
	snprintf(deliver, sizeof(deliver), "vs.sd.%s.%d", queue, i);
	snprintf(filter, sizeof(filter), "vs.q.%s", subject);
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus st = js_GetConsumerInfo(&ci, js, VS_CJS_STREAM, name, NULL, &jerr);
	if (st == NATS_NOT_FOUND) {
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = name;
		cc.DeliverSubject = deliver;
		cc.DeliverGroup = queue;
		cc.DeliverPolicy = js_DeliverNew;
		cc.AckPolicy = js_AckExplicit;
		cc.AckWait = (int64_t)GROUP_ACK_WAIT_S * 1000000000;
		cc.MaxAckPending = GROUP_MAX_ACK_PENDING;
		cc.FilterSubject = filter;
		cc.InactiveThreshold = (int64_t)GROUP_IDLE_S * 1000000000;
		st = js_AddConsumer(&ci, js, VS_CJS_STREAM, &cc, NULL, &jerr);
		if (st != NATS_OK) /* another node made it meanwhile */
			st = js_GetConsumerInfo(&ci, js, VS_CJS_STREAM, name, NULL, &jerr);
	}
	jsConsumerInfo_Destroy(ci);
	if (st != NATS_OK)
		return NULL;
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = VS_CJS_STREAM;
	so.Consumer = name; /* bound: the library never deletes it */
	so.Queue = queue;
	so.ManualAck = true;
	natsSubscription *sub = NULL;
	if (js_Subscribe(&sub, js, filter, on_share_js, s, NULL, &so, &jerr) != NATS_OK)
		return NULL;
	return sub;
}

/* Binds the consumers of group share, if it still has members here. Returns 0, or -1 to try
 * again later (JetStream not there yet). */
static int bind_group(struct vs_cluster_share *s, const char *share)
{
	char queue[VS_SHARE_QUEUE], subjects[3][SUBJECT_MAX];
	int n = 0;
	pthread_mutex_lock(&s->lock);
	struct group *g = vs_map_get(&s->groups, share, strlen(share));
	if (g && !g->jsubs[0]) {
		memcpy(queue, g->queue, sizeof(queue));
		for (; n < g->n_subjects; n++)
			snprintf(subjects[n], SUBJECT_MAX, "%s", g->subjects[n]);
		snprintf(subjects[n++], SUBJECT_MAX, "vs.l");
	}
	pthread_mutex_unlock(&s->lock);
	if (!n)
		return 0;
	if (!vs_cjs_ready(vs_cluster_cjs(s->b->cluster)))
		return -1;
	natsSubscription *subs[3] = {NULL, NULL, NULL};
	for (int i = 0; i < n; i++)
		if (!(subs[i] = bind_one(s, queue, i, subjects[i])))
			break;
	bool ok = subs[n - 1] != NULL;
	pthread_mutex_lock(&s->lock);
	g = vs_map_get(&s->groups, share, strlen(share));
	if (ok && g && !g->jsubs[0]) {
		for (int i = 0; i < n; i++) {
			g->jsubs[i] = subs[i];
			vs_map_put(&s->by_sub, &g->jsubs[i], sizeof(g->jsubs[i]), g, NULL);
			subs[i] = NULL;
		}
		/* Only now: a QoS 1/2 message put in the stream before the consumers were there
		 * would reach no member (they start with what comes next). */
		g->bound = true;
		for (int i = 0; i < g->n_subjects; i++) {
			uint64_t t = vs_cluster_interest_note(vs_cluster_interest_state(s->b),
							      g->subjects[i], g->queue, true);
			g->ticket = t > g->ticket ? t : g->ticket;
		}
		vs_log(s->b->log, VS_LOG_DEBUG,
		       "cluster: %s reads its JetStream consumers: its QoS 1/2 messages go through "
		       "them",
		       share);
	}
	pthread_mutex_unlock(&s->lock);
	if (ok) { /* SUBACKs of its members may wait for this (subscribe.c) */
		struct vs_mail m = {.type = VS_MAIL_HELD};
		for (int i = 0; i < s->b->n_workers; i++)
			vs_worker_post_now(&s->b->workers[i], &m);
	}
	for (int i = 0; i < n; i++) { /* not bound in full, or the group went meanwhile */
		if (subs[i])
			natsSubscription_Unsubscribe(subs[i]);
		natsSubscription_Destroy(subs[i]);
	}
	if (!ok)
		vs_log(s->b->log, VS_LOG_WARN,
		       "cluster: the JetStream consumers of %s are not there yet (%s): its QoS 1/2 "
		       "messages wait for them",
		       share, nats_GetLastError(NULL));
	return ok ? 0 : -1;
}

static void *run(void *arg)
{
	struct vs_cluster_share *s = arg;
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct bind *x = s->binds;
		if (!x) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		s->binds = x->next;
		pthread_mutex_unlock(&s->lock);
		int rc = bind_group(s, x->share);
		pthread_mutex_lock(&s->lock);
		if (rc < 0 && !s->stop) { /* again in a second */
			x->next = s->binds;
			s->binds = x;
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec++;
			pthread_cond_timedwait(&s->cond, &s->lock, &until);
			continue;
		}
		free(x);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct vs_cluster_share *vs_cluster_share_new(struct vs_broker *b, natsConnection *pub)
{
	struct vs_cluster_share *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->b = b;
	s->pub = pub;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (pthread_create(&s->thread, NULL, run, s) != 0) {
		vs_cluster_share_free(s);
		return NULL;
	}
	s->started = true;
	return s;
}

static void group_free(struct group *g)
{
	for (int i = 0; i < 3; i++) {
		natsSubscription_Destroy(g->subs[i]);
		natsSubscription_Destroy(g->jsubs[i]);
	}
	free(g->subjects[0]);
	free(g->subjects[1]);
	free(g);
}

void vs_cluster_share_close(struct vs_cluster_share *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->started = false;
	}
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	pthread_mutex_lock(&s->lock);
	while (vs_map_next(&s->groups, &it, &key, &klen, &val)) {
		struct group *g = val;
		for (int i = 0; i < 3; i++) {
			natsSubscription_Destroy(g->subs[i]);
			natsSubscription_Destroy(g->jsubs[i]);
			g->subs[i] = g->jsubs[i] = NULL; /* keys in by_sub stay: a late callback
							  * finds g */
		}
	}
	pthread_mutex_unlock(&s->lock);
}

void vs_cluster_share_free(struct vs_cluster_share *s)
{
	if (!s)
		return;
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&s->groups, &it, &key, &klen, &val))
		group_free(val);
	vs_map_fini(&s->groups);
	vs_map_fini(&s->by_sub);
	for (struct bind *x = s->binds, *next; x; x = next) {
		next = x->next;
		free(x);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Replaces the "vs.m" that starts subject with "vs.s". */
static void share_subject(char *subject)
{
	subject[3] = 's';
}

/* Subscribes g's queue to F's subjects and vs.sl. Returns 0 or -1 (s->lock held). */
static int subscribe(struct vs_cluster_share *s, struct group *g, const char *filter, size_t flen,
		     size_t glen)
{
	natsConnection *nc = vs_cluster_nc(s->b);
	char a[SUBJECT_MAX], c[SUBJECT_MAX], *queue = g->queue;
	vs_share_queue(g->share + 7, glen, filter, flen, queue);
	int n = vs_cluster_filter_subjects((const uint8_t *)filter, flen, a, c, sizeof(a));
	const char *subjects[3] = {a, c, VS_SHARE_LONG};
	/* Its QoS 1/2 messages go through JetStream once the thread has bound the group's
	 * consumers (bind_group: then the other nodes are told, in vs_interest); until then they
	 * come on core vs.s, at most once. A filter too long for subjects takes every subject. */
	for (int i = 0; i < (n < 0 ? 1 : n); i++) {
		if (!(g->subjects[i] = strdup(n < 0 ? VS_CLUSTER_PREFIX ".>" : i ? c : a)))
			return -1;
		g->n_subjects++;
	}
	struct bind *x = malloc(sizeof(*x) + strlen(g->share) + 1);
	if (x) {
		strcpy(x->share, g->share);
		x->next = s->binds;
		s->binds = x;
		pthread_cond_signal(&s->cond);
	}
	if (n < 0) {
		snprintf(a, sizeof(a), VS_SHARE_PREFIX ".>");
		n = 1;
	} else {
		share_subject(a);
		share_subject(c);
	}
	subjects[n] = VS_SHARE_LONG;
	for (int i = 0; i <= n; i++) {
		if (natsConnection_QueueSubscribe(&g->subs[i], nc, subjects[i], queue, on_share_msg,
						  s) != NATS_OK ||
		    vs_map_put(&s->by_sub, &g->subs[i], sizeof(g->subs[i]), g, NULL) < 0)
			return -1;
	}
	return 0;
}

static void unsubscribe(struct vs_cluster_share *s, struct group *g)
{
	for (int i = 0; i < 3; i++) {
		if (g->subs[i]) {
			vs_map_del(&s->by_sub, &g->subs[i], sizeof(g->subs[i]));
			natsSubscription_Unsubscribe(g->subs[i]);
		}
		if (g->jsubs[i]) { /* the consumer stays: other nodes' members use it too */
			vs_map_del(&s->by_sub, &g->jsubs[i], sizeof(g->jsubs[i]));
			natsSubscription_Unsubscribe(g->jsubs[i]);
		}
	}
	for (int i = 0; g->bound && i < g->n_subjects; i++)
		vs_cluster_interest_note(vs_cluster_interest_state(s->b), g->subjects[i], g->queue,
					 false);
}

void vs_cluster_share_interest(struct vs_cluster_share *s, const char *share, size_t len, int delta)
{
	const char *slash = memchr(share + 7, '/', len - 7);
	if (!slash)
		return;
	size_t glen = (size_t)(slash - share - 7);
	pthread_mutex_lock(&s->lock);
	struct group *g = vs_map_get(&s->groups, share, len);
	if (delta > 0 && g) {
		g->refs++;
	} else if (delta > 0) {
		g = calloc(1, sizeof(*g) + len + 1);
		if (g) {
			memcpy(g->share, share, len);
			g->refs = 1;
		}
		if (!g || vs_map_put(&s->groups, share, len, g, NULL) < 0 ||
		    subscribe(s, g, slash + 1, len - (size_t)(slash + 1 - share), glen) < 0) {
			vs_log(s->b->log, VS_LOG_ERR,
			       "cluster: cannot subscribe %.*s in NATS: its members here get no "
			       "messages of other nodes",
			       (int)len, share);
			if (g) {
				unsubscribe(s, g);
				vs_map_del(&s->groups, share, len);
				group_free(g);
			}
		} else {
			atomic_fetch_add(&s->n_groups, 1);
		}
	} else if (g && --g->refs == 0) {
		unsubscribe(s, g);
		vs_map_del(&s->groups, share, len);
		group_free(g);
		atomic_fetch_sub(&s->n_groups, 1);
	}
	pthread_mutex_unlock(&s->lock);
}

bool vs_cluster_share_forward(struct vs_cluster_share *s, const char *subject, const void *f,
			      int len)
{
	if (!atomic_load_explicit(&s->n_groups, memory_order_relaxed) &&
	    !atomic_load_explicit(&s->remote, memory_order_relaxed))
		return false;
	char copy[SUBJECT_MAX];
	if (strncmp(subject, VS_CLUSTER_PREFIX ".", sizeof(VS_CLUSTER_PREFIX)) == 0) {
		snprintf(copy, sizeof(copy), "%s", subject);
		share_subject(copy);
	} else {
		snprintf(copy, sizeof(copy), VS_SHARE_LONG);
	}
	return natsConnection_Publish(s->pub, copy, f, len) == NATS_OK;
}

bool vs_cluster_share_wants(struct vs_cluster_share *s, const char *subject)
{
	if (!s || !atomic_load_explicit(&s->n_groups, memory_order_relaxed))
		return false;
	bool want = false;
	size_t it = 0, klen;
	const char *key;
	void *val;
	pthread_mutex_lock(&s->lock);
	while (!want && vs_map_next(&s->groups, &it, &key, &klen, &val)) {
		struct group *g = val;
		for (int i = 0; g->bound && i < g->n_subjects && !want; i++)
			want = vs_cluster_subject_match(g->subjects[i], subject);
	}
	pthread_mutex_unlock(&s->lock);
	return want;
}

uint64_t vs_cluster_share_pending(struct vs_cluster_share *s, const char *share, size_t len)
{
	/* Without JetStream the group's QoS 1/2 goes on core NATS: nothing to wait for. */
	if (!s || !vs_cjs_ready(vs_cluster_cjs(s->b->cluster)))
		return 0;
	pthread_mutex_lock(&s->lock);
	struct group *g = vs_map_get(&s->groups, share, len);
	uint64_t t = !g ? 0 : !g->bound ? UINT64_MAX : g->ticket;
	pthread_mutex_unlock(&s->lock);
	return t == UINT64_MAX || !vs_cluster_interest_confirmed(vs_cluster_interest_state(s->b), t)
		   ? t
		   : 0;
}

size_t vs_cluster_share_groups(struct vs_cluster_share *s)
{
	return s ? atomic_load(&s->n_groups) : 0;
}

void vs_cluster_share_remote(struct vs_cluster_share *s, bool any)
{
	atomic_store(&s->remote, any);
}
