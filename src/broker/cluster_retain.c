/* Retained messages across the cluster, in a JetStream key-value bucket (see cluster_retain.h). */
#include "broker/cluster_retain.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/map.h"
#include "broker/broker.h"
#include "broker/cluster_nats.h"
#include "cluster/cluster.h"
#include "cluster/kvkey.h"
#include "session/msg.h"
#include "topic/retain.h"

#define KV_SUBJECT "$KV." VS_RETAIN_BUCKET "."
#define FRAME_HEAD (2 + VS_CLUSTER_NODE_MAX + 8)

struct vs_cluster_retain {
	struct vs_broker *b;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool ready;	      /* the bucket is bound: puts go to it */
	atomic_uint_fast64_t applied; /* changes from the bucket stored here */
	pthread_mutex_t lock;	      /* orders local stores with puts; guards pending, watcher */
	struct vs_map pending;	      /* topic -> sequence number of this node's last put */
	struct vs_map pending_ms;     /* topic -> when that put was made (monotonic ms) */
	struct vs_map unsynced;	      /* topics published here before the bucket was bound */
	uint64_t seq;		      /* of this node's puts (under lock) */
	kvStore *kv;		      /* the thread's */
	kvWatcher *watcher;	      /* the thread's; under lock so that stop can end its wait */
};

static bool is_sys(const struct vs_msg *m)
{
	return m->topic.len >= 4 && memcmp(m->topic.p, "$SYS", 4) == 0;
}

/* The value of m: a frame of this node with sequence number seq. malloc'd; NULL on failure. */
static uint8_t *make_value(struct vs_broker *b, struct vs_msg *m, uint64_t seq, size_t *len)
{
	struct vs_delivery d = {.version = VS_V5, .qos = m->qos, .retain = true};
	d.packet_id = m->qos ? 1 : 0;
	int64_t now = vs_now_ms();
	ssize_t plen = vs_msg_encoded_size(m, &d, now);
	if (plen < 0)
		return NULL;
	uint8_t *buf = malloc(FRAME_HEAD + (size_t)plen);
	if (!buf)
		return NULL;
	ssize_t h = vs_cluster_frame_head(vs_cluster_node(b), seq, buf, FRAME_HEAD);
	ssize_t n = h < 0 ? h : vs_msg_encode(m, &d, now, buf + h, (size_t)plen);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	*len = (size_t)(h + n);
	return buf;
}

/* Its put is no longer pending (r->lock held). */
static void pending_del(struct vs_cluster_retain *r, const void *topic, size_t len)
{
	vs_map_del(&r->pending, topic, len);
	vs_map_del(&r->pending_ms, topic, len);
}

/* Puts m in the bucket and marks its topic pending (r->lock held). */
static void put_locked(struct vs_cluster_retain *r, struct vs_msg *m)
{
	struct vs_broker *b = r->b;
	char subject[sizeof(KV_SUBJECT) + VS_KVKEY_MAX];
	memcpy(subject, KV_SUBJECT, sizeof(KV_SUBJECT) - 1);
	char *key = subject + sizeof(KV_SUBJECT) - 1;
	vs_kvkey_encode(m->topic.p, m->topic.len, key, VS_KVKEY_MAX + 1);
	uint64_t seq = ++r->seq;
	size_t len = 0;
	uint8_t *value = make_value(b, m, seq, &len);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	natsStatus s = value ? js_PublishAsync(vs_cluster_js(b), subject, value, (int)len, &po)
			     : NATS_NO_MEMORY;
	free(value);
	if (s != NATS_OK) {
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: retained message of %.*s not written to the bucket: %s; other "
		       "nodes do not get it",
		       (int)m->topic.len, (const char *)m->topic.p, natsStatus_GetText(s));
		pending_del(r, m->topic.p, m->topic.len);
		return;
	}
	if (vs_map_put(&r->pending, m->topic.p, m->topic.len, (void *)(uintptr_t)seq, NULL) < 0 ||
	    vs_map_put(&r->pending_ms, m->topic.p, m->topic.len, (void *)(intptr_t)vs_now_ms(),
		       NULL) < 0)
		pending_del(r, m->topic.p, m->topic.len); /* the bucket's order alone decides */
}

bool vs_cluster_retain(struct vs_broker *b, struct vs_msg *m, uint64_t *version)
{
	struct vs_cluster_retain *r = vs_cluster_retain_state(b);
	bool ready = r && atomic_load(&r->ready);
	if (m->remote && ready && !is_sys(m))
		return false;			  /* the bucket brings it */
	void *stored = m->payload.len ? m : NULL; /* [MQTT-3.3.1-10] empty clears */
	if (!r || m->remote || is_sys(m)) {
		vs_retain_put(b->retain, (const char *)m->topic.p, m->topic.len, stored, version);
		return true;
	}
	pthread_mutex_lock(&r->lock);
	vs_retain_put(b->retain, (const char *)m->topic.p, m->topic.len, stored, version);
	if (atomic_load(&r->ready))
		put_locked(r, m);
	else /* written when the bucket is bound (sync_unsynced) */
		vs_map_put(&r->unsynced, m->topic.p, m->topic.len, (void *)1, NULL);
	pthread_mutex_unlock(&r->lock);
	return true;
}

void vs_cluster_retain_on_behalf(struct vs_broker *b, const struct vs_cluster_frame *f)
{
	struct vs_buf origin = {(const uint8_t *)"", 0};
	struct vs_msg *m = vs_msg_new(&f->publish.topic, &f->publish, &origin, vs_now_ms());
	if (!m)
		return;
	uint64_t version;
	vs_cluster_retain(b, m, &version);
	vs_msg_unref(m);
}

void vs_cluster_retain_failed(struct vs_broker *b, jsPubAckErr *pae)
{
	struct vs_cluster_retain *r = vs_cluster_retain_state(b);
	struct vs_cluster_frame f;
	const char *why;
	const void *data = natsMsg_GetData(pae->Msg);
	int len = natsMsg_GetDataLength(pae->Msg);
	if (!r || vs_cluster_frame_decode(data, (size_t)(len > 0 ? len : 0), &f, &why) < 0)
		return;
	const struct vs_buf *t = &f.publish.topic;
	vs_log(b->log, VS_LOG_WARN,
	       "cluster: retained message of %.*s not written to the bucket: %s; other nodes do "
	       "not get it",
	       (int)t->len, (const char *)t->p,
	       pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
	pthread_mutex_lock(&r->lock);
	if ((uintptr_t)vs_map_get(&r->pending, t->p, t->len) == f.seq)
		pending_del(r, t->p, t->len);
	pthread_mutex_unlock(&r->lock);
}

/* The message of a bucket entry, aged by the time it spent there (for its expiry). NULL when it
 * clears its topic, has expired, or on no memory. */
static struct vs_msg *entry_msg(kvEntry *e, const struct vs_cluster_frame *f)
{
	if (f->publish.payload.len == 0)
		return NULL;
	struct vs_buf origin = {(const uint8_t *)"", 0};
	int64_t now = vs_now_ms();
	struct vs_msg *m = vs_msg_new(&f->publish.topic, &f->publish, &origin, now);
	if (!m)
		return NULL;
	m->remote = true;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t age = wall_ms - kvEntry_Created(e) / 1000000; /* Created is in ns */
	if (age > 0)
		m->created_ms = now - age;
	if (vs_msg_expired(m, now, NULL)) { /* [MQTT-3.3.2-5] */
		vs_msg_unref(m);
		return NULL;
	}
	return m;
}

/* Applies one change of the bucket to the store (see the file's comment for the rules). */
static void apply(struct vs_cluster_retain *r, kvEntry *e)
{
	struct vs_broker *b = r->b;
	struct vs_cluster_frame f;
	const char *why;
	if (kvEntry_Operation(e) != kvOp_Put)
		return; /* deleted or purged by hand: nothing of ours */
	const void *data = kvEntry_Value(e);
	int len = kvEntry_ValueLen(e);
	if (vs_cluster_frame_decode(data, (size_t)(len > 0 ? len : 0), &f, &why) < 0) {
		vs_log(b->log, VS_LOG_WARN, "cluster: key %s of bucket %s skipped: %s",
		       kvEntry_Key(e), VS_RETAIN_BUCKET, why);
		return;
	}
	const struct vs_buf *t = &f.publish.topic;
	const char *self = vs_cluster_node(b);
	bool mine = f.node.len == strlen(self) && memcmp(f.node.p, self, f.node.len) == 0;
	struct vs_msg *m = entry_msg(e, &f);
	pthread_mutex_lock(&r->lock);
	uint64_t pending = (uintptr_t)vs_map_get(&r->pending, t->p, t->len);
	bool store = true;
	if (pending && mine && f.seq == pending) {
		pending_del(r, t->p, t->len); /* our last put: stored already */
		store = false;
	} else if (pending) {
		store = false; /* a put of ours comes later in the bucket: it wins */
	}
	if (store) {
		vs_retain_put(b->retain, (const char *)t->p, t->len, m, NULL);
		atomic_fetch_add(&r->applied, 1);
	}
	pthread_mutex_unlock(&r->lock);
	if (m)
		vs_msg_unref(m);
}

static void take_ref(void *ctx, void *msg)
{
	*(struct vs_msg **)ctx = vs_msg_ref(msg);
}

/* Puts what was published here before the bucket was bound, as the store holds it now (an
 * empty message for a topic cleared since), and opens the bucket to puts (r->lock held). */
static void sync_unsynced(struct vs_cluster_retain *r)
{
	struct vs_broker *b = r->b;
	size_t it = 0, n = 0;
	const char *topic;
	size_t len;
	void *val;
	while (vs_map_next(&r->unsynced, &it, &topic, &len, &val)) {
		struct vs_msg *m = NULL;
		vs_retain_match(b->retain, topic, len, take_ref, &m); /* no wildcard: itself */
		if (!m)
			m = vs_msg_make(topic, len, "", 0, 0, true, NULL, NULL, vs_now_ms());
		if (m) {
			put_locked(r, m);
			vs_msg_unref(m);
			n++;
		}
	}
	vs_map_fini(&r->unsynced);
	atomic_store(&r->ready, true);
	if (n)
		vs_log(b->log, VS_LOG_NOTICE,
		       "cluster: %zu retained message(s) published here before bucket %s was "
		       "there written to it",
		       n, VS_RETAIN_BUCKET);
}

/* Sleeps up to ms unless stopped. */
static void nap(struct vs_cluster_retain *r, int ms)
{
	for (int i = 0; i < ms / 50 && !atomic_load(&r->stop); i++)
		nats_Sleep(50);
}

/* Binds the bucket, creating it when it is not there. */
static natsStatus bind_bucket(struct vs_cluster_retain *r)
{
	return vs_cluster_bucket(r->b, &r->kv, VS_RETAIN_BUCKET,
				 "Viesti: retained messages (docs/cluster.md)", 0);
}

/*
 * A put of ours that the watch has not shown within STALE_MS: the bucket keeps one value per
 * topic, and a put from another node stored right after ours replaces it before the watch
 * delivers it, so ours never comes, and the later put was skipped as older than ours (apply()).
 * The bucket is read for such topics and its value stored here.
 */
enum { STALE_MS = 1000 };

struct stale {
	char *topic;
	size_t len;
	uint64_t seq;
};

static void resolve_stale(struct vs_cluster_retain *r)
{
	int64_t now = vs_now_ms();
	struct stale v[64];
	size_t n = 0, it = 0, klen;
	const char *key;
	void *val;
	pthread_mutex_lock(&r->lock);
	while (n < 64 && vs_map_next(&r->pending_ms, &it, &key, &klen, &val)) {
		if (now - (intptr_t)val < STALE_MS || !(v[n].topic = malloc(klen)))
			continue;
		memcpy(v[n].topic, key, klen);
		v[n].len = klen;
		v[n].seq = (uintptr_t)vs_map_get(&r->pending, key, klen);
		n++;
	}
	pthread_mutex_unlock(&r->lock);
	bool reachable = true;
	for (size_t i = 0; i < n; i++) {
		if (!reachable || atomic_load(&r->stop)) { /* tried again at the next round */
			free(v[i].topic);
			continue;
		}
		char k[VS_KVKEY_MAX + 1];
		vs_kvkey_encode((const uint8_t *)v[i].topic, v[i].len, k, sizeof(k));
		kvEntry *e = NULL;
		natsStatus s = kvStore_Get(&e, r->kv, k);
		reachable = s == NATS_OK || s == NATS_NOT_FOUND;
		struct vs_cluster_frame f;
		const char *why;
		int len = s == NATS_OK ? kvEntry_ValueLen(e) : 0;
		bool ok = s == NATS_OK &&
			  vs_cluster_frame_decode(kvEntry_Value(e), (size_t)(len > 0 ? len : 0), &f,
						  &why) == 0;
		struct vs_msg *m = ok ? entry_msg(e, &f) : NULL;
		pthread_mutex_lock(&r->lock);
		if ((uintptr_t)vs_map_get(&r->pending, v[i].topic, v[i].len) == v[i].seq) {
			if (ok) {
				vs_retain_put(r->b->retain, v[i].topic, v[i].len, m, NULL);
				atomic_fetch_add(&r->applied, 1);
			}
			if (ok || s == NATS_NOT_FOUND)
				pending_del(r, v[i].topic, v[i].len);
		}
		pthread_mutex_unlock(&r->lock);
		if (m)
			vs_msg_unref(m);
		kvEntry_Destroy(e);
		free(v[i].topic);
	}
}

static void *watch_main(void *arg)
{
	struct vs_cluster_retain *r = arg;
	struct vs_broker *b = r->b;
	bool warned = false;
	uint64_t initial = 0;
	int64_t resolved_ms = 0;
	while (!atomic_load(&r->stop)) {
		if (!r->kv) {
			natsStatus s = bind_bucket(r);
			if (s != NATS_OK) {
				if (!warned)
					vs_log(b->log, VS_LOG_WARN,
					       "cluster: no JetStream bucket %s yet (%s): retained "
					       "messages stay on each node until there is",
					       VS_RETAIN_BUCKET, nats_GetLastError(NULL));
				warned = true;
				r->kv = NULL;
				nap(r, 1000);
				continue;
			}
		}
		if (!r->watcher) {
			kvWatcher *w = NULL;
			if (!vs_cluster_connected(
				b)) { /* a request would only wait out its timeout */
				nap(r, 100);
				continue;
			}
			if (kvStore_WatchAll(&w, r->kv, NULL) != NATS_OK) {
				nap(r, 1000);
				continue;
			}
			pthread_mutex_lock(&r->lock);
			r->watcher = w;
			if (!atomic_load(&r->ready))
				sync_unsynced(r);
			pthread_mutex_unlock(&r->lock);
			initial = 0;
		}
		kvEntry *e = NULL;
		natsStatus s = kvWatcher_Next(&e, r->watcher, 500);
		if (vs_now_ms() - resolved_ms >= STALE_MS / 4) {
			resolve_stale(r);
			resolved_ms = vs_now_ms();
		}
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			if (!atomic_load(&r->stop))
				vs_log(b->log, VS_LOG_WARN,
				       "cluster: watching bucket %s: %s; watching again",
				       VS_RETAIN_BUCKET, natsStatus_GetText(s));
			pthread_mutex_lock(&r->lock);
			kvWatcher_Destroy(r->watcher);
			r->watcher = NULL;
			pthread_mutex_unlock(&r->lock);
			nap(r, 500);
			continue;
		}
		if (!e) {
			vs_log(b->log, VS_LOG_NOTICE,
			       "cluster: %llu retained message(s) read from bucket %s",
			       (unsigned long long)initial, VS_RETAIN_BUCKET);
			continue;
		}
		apply(r, e);
		initial++;
		kvEntry_Destroy(e);
	}
	return NULL;
}

struct vs_cluster_retain *vs_cluster_retain_start(struct vs_broker *b)
{
	struct vs_cluster_retain *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->b = b;
	pthread_mutex_init(&r->lock, NULL);
	if (pthread_create(&r->thread, NULL, watch_main, r) != 0) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return NULL;
	}
	return r;
}

void vs_cluster_retain_stop(struct vs_cluster_retain *r)
{
	if (!r)
		return;
	atomic_store(&r->stop, true);
	/* Without NATS, stopping the watcher asks the server to delete its consumer and waits out
	 * the timeout: then it is left for vs_cluster_retain_close (the thread sees the stop
	 * within its 500 ms wait). */
	bool up = vs_cluster_connected(r->b);
	pthread_mutex_lock(&r->lock);
	if (r->watcher && up)
		kvWatcher_Stop(r->watcher);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	atomic_store(&r->ready, false);
	if (up)
		vs_cluster_retain_close(r);
}

void vs_cluster_retain_close(struct vs_cluster_retain *r)
{
	if (!r)
		return;
	kvWatcher_Destroy(r->watcher);
	kvStore_Destroy(r->kv);
	r->watcher = NULL;
	r->kv = NULL;
}

void vs_cluster_retain_free(struct vs_cluster_retain *r)
{
	if (!r)
		return;
	vs_map_fini(&r->pending);
	vs_map_fini(&r->pending_ms);
	vs_map_fini(&r->unsynced);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

bool vs_cluster_retain_ready(struct vs_cluster_retain *r)
{
	return r && atomic_load(&r->ready);
}

uint64_t vs_cluster_retain_applied(struct vs_cluster_retain *r)
{
	return r ? atomic_load(&r->applied) : 0;
}
