/* Shared subscriptions across the cluster, on NATS queue groups (see cluster_share.h). */
#include "broker/cluster_share.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/map.h"
#include "broker/broker.h"
#include "broker/cluster_nats.h"
#include "broker/worker.h"
#include "cluster/cluster.h"
#include "cluster/kvkey.h"
#include "session/msg.h"

#define SUBJECT_MAX 1024

/* One $share/G/F with local members. */
struct group {
	unsigned refs;		   /* local members */
	natsSubscription *subs[3]; /* F's subjects under vs.s (one or two), and vs.sl */
	char share[];		   /* "$share/G/F", NUL-terminated */
};

struct vs_cluster_share {
	struct vs_broker *b;
	natsConnection *pub;
	pthread_mutex_t lock;
	struct vs_map groups; /* "$share/G/F" -> struct group * */
	struct vs_map by_sub; /* natsSubscription * (its bytes) -> struct group * */
	atomic_size_t n_groups;
	atomic_bool remote; /* another node has groups */
};

/* A copy NATS chose this node for: to one local member of the subscription's group. */
static void on_share_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	struct vs_cluster_share *s = arg;
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
	if (!share)
		goto out; /* unsubscribed meanwhile */
	if (vs_cluster_frame_decode(data, (size_t)(len > 0 ? len : 0), &f, &why) < 0) {
		vs_log(b->log, VS_LOG_WARN, "cluster: a message on %s dropped: %s",
		       natsMsg_GetSubject(nm), why);
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
	struct vs_mail mail = {.type = VS_MAIL_CLUSTER, .msg = m, .share = share};
	share = NULL;
	vs_worker_post_now(&b->workers[h % (uint32_t)b->n_workers], &mail);
out:
	free(share);
	natsMsg_Destroy(nm);
}

struct vs_cluster_share *vs_cluster_share_new(struct vs_broker *b, natsConnection *pub)
{
	struct vs_cluster_share *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->b = b;
	s->pub = pub;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

static void group_free(struct group *g)
{
	for (int i = 0; i < 3; i++)
		natsSubscription_Destroy(g->subs[i]);
	free(g);
}

void vs_cluster_share_close(struct vs_cluster_share *s)
{
	if (!s)
		return;
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	pthread_mutex_lock(&s->lock);
	while (vs_map_next(&s->groups, &it, &key, &klen, &val)) {
		struct group *g = val;
		for (int i = 0; i < 3; i++) {
			natsSubscription_Destroy(g->subs[i]);
			g->subs[i] = NULL; /* its key in by_sub stays: a late callback finds g */
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
	char a[SUBJECT_MAX], c[SUBJECT_MAX], queue[VS_SHARE_QUEUE];
	vs_share_queue(g->share + 7, glen, filter, flen, queue);
	int n = vs_cluster_filter_subjects((const uint8_t *)filter, flen, a, c, sizeof(a));
	const char *subjects[3] = {a, c, VS_SHARE_LONG};
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
		if (!g->subs[i])
			continue;
		vs_map_del(&s->by_sub, &g->subs[i], sizeof(g->subs[i]));
		natsSubscription_Unsubscribe(g->subs[i]);
	}
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

size_t vs_cluster_share_groups(struct vs_cluster_share *s)
{
	return s ? atomic_load(&s->n_groups) : 0;
}

void vs_cluster_share_remote(struct vs_cluster_share *s, bool any)
{
	atomic_store(&s->remote, any);
}
