/* The PUBREC journal and the QoS 2 resends that JetStream may not have taken (cluster_js.h,
 * cluster_js_int.h). */
#include "broker/cluster_js.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/map.h"
#include "base/vec.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_js_int.h"
#include "broker/cluster_nats.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "cluster/keys.h"
#include "session/session.h"

bool vs_cjs_recs_subject(const char *client_id, size_t len, char out[VS_CJS_RECS_SUBJECT_MAX])
{
	size_t n = sizeof(VS_CJS_RECS_PREFIX) - 1;
	memcpy(out, VS_CJS_RECS_PREFIX, n);
	return vs_cluster_token((const uint8_t *)client_id, len, out + n,
				VS_CJS_RECS_SUBJECT_MAX - n) >= 0;
}

/* Publishes the PUBRECs gathered for one client (vs_cjs_received) as one journal entry. */
void vs_cjs_flush_recs(struct wjs *p, struct vs_cjs *j)
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
		vs_cjs_flush_recs(p, j);
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

static void unsure_free(void *val)
{
	struct unsure *u = val;
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
		atomic_store_explicit(&s->unsure, true, memory_order_release);
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
void vs_cjs_settle_q2(struct vs_cjs *j, struct wjs *p, bool failed, int64_t now_ms)
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
	/* Most sessions never had an entry: their PUBRELs take no lock, even while the table
	 * holds other sessions' entries (after an outage, of clients that never come back). */
	if (!j || !atomic_load_explicit(&j->n_unsure, memory_order_relaxed) ||
	    !atomic_load_explicit(&s->unsure, memory_order_acquire))
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

void vs_cjs_unsure_fini(struct vs_cjs *j)
{
	vs_map_fini_with(&j->unsure, unsure_free);
}
