/* Other nodes' subjects, for QoS 1/2 through JetStream only when wanted (cluster_interest.h). */
#include "broker/cluster_interest.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/map.h"
#include "broker/broker.h"
#include "broker/cluster_nats.h"
#include "cluster/cluster.h"
#include "cluster/keys.h"

#define TOKEN_MAX (3 * VS_CLUSTER_NODE_MAX + 1)

/* A write to the bucket, made on the thread in the order asked. */
struct op {
	struct op *next;
	char *subject;
	char *tag; /* a shared group's queue, or NULL */
	bool add;
};

struct vs_cluster_interest {
	struct vs_broker *b;
	char tok[TOKEN_MAX]; /* this node's id, escaped: its keys start with it and a '.' */
	size_t tok_len;
	kvStore *kv;
	pthread_t thread;
	bool started;
	atomic_bool stop;

	pthread_mutex_t lock; /* the queue */
	pthread_cond_t cond;
	struct op *head, **tail;
	uint32_t n_ops;
	int64_t retry_ms;  /* a write failed: when to try again (thread only) */
	int64_t warned_ms; /* thread only */

	pthread_rwlock_t rw; /* what follows */
	struct vs_map keys;  /* other nodes' key -> their subject (char *) */
	struct vs_map
	    subjects; /* distinct subjects of other nodes -> how many keys (as a pointer) */
	bool known;   /* the bucket was read once */
};

enum {
	OPS_MAX = 100000,
	RETRY_MS = 500,
	WARN_EVERY_MS = 10000,
};

/* A shared group's subject has a key of its own (its tag, the group's queue, goes into the
 * hash): it comes and goes with the group, apart from ordinary subscriptions and other groups
 * on the same subject. */
static void key_of(const struct vs_cluster_interest *ci, const char *subject, const char *tag,
		   char *out, size_t cap)
{
	uint64_t h = vs_hash64(0x5649455354494e54ull, subject, strlen(subject));
	if (tag)
		h = vs_hash64(h, tag, strlen(tag));
	snprintf(out, cap, "%s.%016llx", ci->tok, (unsigned long long)h);
}

void vs_cluster_interest_note(struct vs_cluster_interest *ci, const char *subject, const char *tag,
			      bool add)
{
	/* A stopping broker takes its subscriptions down: its persistent sessions still want
	 * their messages when it is back, so the bucket keeps them. */
	if (!ci || atomic_load_explicit(&ci->b->stopping, memory_order_relaxed))
		return;
	struct op *o = calloc(1, sizeof(*o));
	if (!o || !(o->subject = strdup(subject)) || (tag && !(o->tag = strdup(tag)))) {
		if (o)
			free(o->subject);
		free(o);
		return; /* not noted: the other nodes keep sending it through JetStream, or not */
	}
	o->add = add;
	pthread_mutex_lock(&ci->lock);
	if (ci->n_ops < OPS_MAX) {
		*ci->tail = o;
		ci->tail = &o->next;
		ci->n_ops++;
		pthread_cond_signal(&ci->cond);
		o = NULL;
	}
	pthread_mutex_unlock(&ci->lock);
	if (o) {
		free(o->subject);
		free(o->tag);
		free(o);
	}
}

bool vs_cluster_interest_remote(struct vs_cluster_interest *ci, const char *subject)
{
	if (!ci)
		return true;
	bool want = false;
	pthread_rwlock_rdlock(&ci->rw);
	if (!ci->known) {
		want = true;
	} else {
		size_t it = 0, klen;
		const char *key;
		void *val;
		while (!want && vs_map_next(&ci->subjects, &it, &key, &klen, &val))
			want = vs_cluster_subject_match(key, subject);
	}
	pthread_rwlock_unlock(&ci->rw);
	return want;
}

int64_t vs_cluster_interest_count(struct vs_cluster_interest *ci)
{
	if (!ci)
		return -1;
	pthread_rwlock_rdlock(&ci->rw);
	int64_t n = ci->known ? (int64_t)ci->subjects.count : -1;
	pthread_rwlock_unlock(&ci->rw);
	return n;
}

/* Map keys are not NUL-terminated: the subjects map is keyed with the terminating NUL, so that
 * a key is a C string for vs_cluster_subject_match(). */
static void subject_count(struct vs_cluster_interest *ci, const char *subject, int delta)
{
	size_t len = strlen(subject) + 1;
	intptr_t n = (intptr_t)vs_map_get(&ci->subjects, subject, len) + delta;
	if (n > 0)
		vs_map_put(&ci->subjects, subject, len, (void *)n, NULL);
	else
		vs_map_del(&ci->subjects, subject, len);
}

/* A change of the bucket (watch thread). */
static void apply(struct vs_cluster_interest *ci, kvEntry *e)
{
	const char *key = kvEntry_Key(e);
	size_t klen = strlen(key);
	if (klen > ci->tok_len && memcmp(key, ci->tok, ci->tok_len) == 0 && key[ci->tok_len] == '.')
		return; /* this node's own */
	bool put = kvEntry_Operation(e) == kvOp_Put;
	char *subject = NULL;
	if (put) {
		int n = kvEntry_ValueLen(e);
		const char *v = kvEntry_Value(e);
		if (n <= 0 || !v || memchr(v, '\0', (size_t)n) ||
		    !(subject = malloc((size_t)n + 1)))
			return;
		memcpy(subject, v, (size_t)n);
		subject[n] = '\0';
	}
	pthread_rwlock_wrlock(&ci->rw);
	char *old = vs_map_del(&ci->keys, key, klen);
	if (old) {
		subject_count(ci, old, -1);
		free(old);
	}
	if (subject) {
		if (vs_map_put(&ci->keys, key, klen, subject, NULL) == 0)
			subject_count(ci, subject, 1);
		else
			free(subject);
	}
	pthread_rwlock_unlock(&ci->rw);
	vs_log(ci->b->log, VS_LOG_DEBUG, "cluster: %s %s of another node (%s)",
	       put ? "subject" : "no more subject", put ? kvEntry_ValueString(e) : key, key);
}

static natsStatus bind_bucket(struct vs_cluster_interest *ci)
{
	return vs_cluster_bucket(ci->b, &ci->kv, VS_INTEREST_BUCKET,
				 "Viesti: the subjects each node subscribes to (docs/cluster.md)",
				 0);
}

/* The first waiting change, left in the queue (only this thread takes changes out). */
static struct op *first_op(struct vs_cluster_interest *ci)
{
	pthread_mutex_lock(&ci->lock);
	struct op *o = ci->head;
	pthread_mutex_unlock(&ci->lock);
	return o;
}

static void drop_first_op(struct vs_cluster_interest *ci)
{
	pthread_mutex_lock(&ci->lock);
	struct op *o = ci->head;
	ci->head = o->next;
	if (!ci->head)
		ci->tail = &ci->head;
	ci->n_ops--;
	pthread_mutex_unlock(&ci->lock);
	free(o->subject);
	free(o->tag);
	free(o);
}

/*
 * Writes the waiting changes in order. One that fails for a moment (vs_cluster_transient)
 * stays first in the queue and is tried again RETRY_MS later, the others behind it: a subject
 * missing from the bucket would make the other nodes send this node's QoS 1/2 messages on core
 * NATS, at most once. Writes fail for a moment when JetStream has no leader for the bucket yet
 * (just made on a cluster of NATS servers: "no responders") or while NATS reconnects.
 */
static void run_ops(struct vs_cluster_interest *ci)
{
	struct op *o;
	while ((o = first_op(ci))) {
		char key[TOKEN_MAX + 24];
		key_of(ci, o->subject, o->tag, key, sizeof(key));
		uint64_t rev;
		natsStatus s = o->add ? kvStore_PutString(&rev, ci->kv, key, o->subject)
				      : kvStore_Delete(ci->kv, key);
		bool again = s != NATS_OK && vs_cluster_transient(s);
		int64_t now = vs_now_ms();
		if (s != NATS_OK && (!again || now - ci->warned_ms >= WARN_EVERY_MS)) {
			ci->warned_ms = now;
			vs_log(ci->b->log, VS_LOG_WARN, "cluster: %s subject %s in bucket %s: %s%s",
			       o->add ? "storing" : "deleting", o->subject, VS_INTEREST_BUCKET,
			       natsStatus_GetText(s), again ? " (trying again)" : "");
		}
		if (again) {
			ci->retry_ms = now + RETRY_MS;
			return;
		}
		drop_first_op(ci);
	}
}

static void *run(void *arg)
{
	struct vs_cluster_interest *ci = arg;
	kvWatcher *w = NULL;
	while (!atomic_load(&ci->stop)) {
		if (!ci->kv && bind_bucket(ci) != NATS_OK) {
			ci->kv = NULL;
			nats_Sleep(500);
			continue;
		}
		if (!w && kvStore_WatchAll(&w, ci->kv, NULL) != NATS_OK) {
			w = NULL;
			nats_Sleep(500);
			continue;
		}
		if (vs_now_ms() >= ci->retry_ms)
			run_ops(ci);
		kvEntry *e = NULL;
		natsStatus s = kvWatcher_Next(&e, w, 50);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			kvWatcher_Destroy(w);
			w = NULL;
			continue; /* watched again: the initial values come again, replacing */
		}
		if (!e) { /* the initial values are all in */
			pthread_rwlock_wrlock(&ci->rw);
			if (!ci->known)
				vs_log(ci->b->log, VS_LOG_NOTICE,
				       "cluster: %zu subject(s) of other nodes read from bucket %s",
				       ci->subjects.count, VS_INTEREST_BUCKET);
			ci->known = true;
			pthread_rwlock_unlock(&ci->rw);
			continue;
		}
		apply(ci, e);
		kvEntry_Destroy(e);
	}
	if (w) {
		kvWatcher_Stop(w);
		kvWatcher_Destroy(w);
	}
	return NULL;
}

struct vs_cluster_interest *vs_cluster_interest_start(struct vs_broker *b)
{
	struct vs_cluster_interest *ci = calloc(1, sizeof(*ci));
	if (!ci)
		return NULL;
	ci->b = b;
	ci->tail = &ci->head;
	pthread_mutex_init(&ci->lock, NULL);
	pthread_cond_init(&ci->cond, NULL);
	pthread_rwlock_init(&ci->rw, NULL);
	const char *node = vs_cluster_node(b);
	ssize_t n = vs_cluster_token((const uint8_t *)node, strlen(node), ci->tok, sizeof(ci->tok));
	ci->tok_len = n > 0 ? (size_t)n : 0;
	if (n <= 0 || pthread_create(&ci->thread, NULL, run, ci) != 0) {
		vs_cluster_interest_free(ci);
		return NULL;
	}
	ci->started = true;
	return ci;
}

void vs_cluster_interest_stop(struct vs_cluster_interest *ci)
{
	if (!ci || !ci->started)
		return;
	atomic_store(&ci->stop, true);
	pthread_join(ci->thread, NULL);
	ci->started = false;
}

void vs_cluster_interest_free(struct vs_cluster_interest *ci)
{
	if (!ci)
		return;
	vs_cluster_interest_stop(ci);
	for (struct op *o = ci->head, *next; o; o = next) {
		next = o->next;
		free(o->subject);
		free(o->tag);
		free(o);
	}
	size_t it = 0, klen;
	const char *key;
	void *val;
	while (vs_map_next(&ci->keys, &it, &key, &klen, &val))
		free(val);
	vs_map_fini(&ci->keys);
	vs_map_fini(&ci->subjects);
	kvStore_Destroy(ci->kv);
	pthread_rwlock_destroy(&ci->rw);
	pthread_cond_destroy(&ci->cond);
	pthread_mutex_destroy(&ci->lock);
	free(ci);
}
