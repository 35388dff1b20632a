/* Persistent sessions that move between nodes (cluster_session.h). */
#include "broker/cluster_session.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/cluster_nats.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "cluster/cluster.h"
#include "cluster/keys.h"
#include "persist/store.h"
#include "session/session.h"

#define TOKEN_MAX  (3 * VS_CLUSTER_NODE_MAX + 1)
#define KEY_TOKEN  200 /* longer client tokens are keyed by a hash */
#define KEY_MAX    (KEY_TOKEN + 24)
#define SUBJECT    "vs.h."
#define WAIT_MS    3000 /* for each chunk of an answer */
#define CHUNK_HEAD 9	/* kind, chunk number, chunk count (big-endian) */
#define HOPS_MAX   4	/* a handover follows a connection from worker to worker at most so often */

/* A CONNECT waiting for the cluster (on the session thread's queue). */
struct job {
	struct job *next;
	int worker;
	uint32_t slot;
	uint64_t conn_id;
	bool clean;
	size_t idlen;
	char id[]; /* NUL-terminated */
};

struct vs_cluster_sessions {
	struct vs_broker *b;
	char tok[TOKEN_MAX]; /* this node's id as a token */
	kvStore *kv;
	atomic_bool ready; /* the bucket is bound: CONNECTs ask */
	natsSubscription *sub;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock; /* the queue */
	pthread_cond_t cond;
	struct job *head, **tail;
	uint32_t n_jobs;
};

enum { JOBS_MAX = 100000 };

static void key_of(const char *id, size_t idlen, char *out)
{
	char tok[KEY_TOKEN + 1];
	ssize_t n = idlen * 3 < sizeof(tok)
			? vs_cluster_token((const uint8_t *)id, idlen, tok, sizeof(tok))
			: -1;
	if (n > 0) {
		snprintf(out, KEY_MAX, "%s", tok);
		return;
	}
	/* "=h" never starts a token: escapes are "=" and two upper-case hex digits. */
	snprintf(out, KEY_MAX, "=h%016llx%016llx",
		 (unsigned long long)vs_hash64(0x56534553534e31ull, id, idlen),
		 (unsigned long long)vs_hash64(0x56534553534e32ull, id, idlen));
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int worker_of(struct vs_broker *b, const char *id, size_t idlen)
{
	int idx = (int)(vs_hash64(0, id, idlen) % (uint64_t)b->n_workers);
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_map_get(&b->sessions, id, idlen);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (s->connected && s->owner)
			idx = ((struct vs_worker *)s->owner)->idx;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	return idx;
}

/* ---- The asking side: a CONNECT on this node -------------------------------------------- */

bool vs_cluster_session_ask(struct vs_conn *c)
{
	struct vs_broker *b = c->w->b;
	struct vs_connecting *cn = c->connecting;
	if (!b->cluster || cn->asked || c->id_assigned || c->bridge)
		return false;
	if (cn->clean && c->session_expiry == 0)
		return false; /* nothing of it outlives this connection */
	struct vs_cluster_sessions *cs = vs_cluster_sessions_of(b);
	if (!cs || !atomic_load(&cs->ready))
		return false; /* no NATS yet: this node decides alone */
	size_t idlen = strlen(c->client_id);
	struct job *j = malloc(sizeof(*j) + idlen + 1);
	if (!j)
		return false;
	*j = (struct job){.worker = c->w->idx,
			  .slot = c->slot,
			  .conn_id = c->id,
			  .clean = cn->clean,
			  .idlen = idlen};
	memcpy(j->id, c->client_id, idlen + 1);
	pthread_mutex_lock(&cs->lock);
	bool queued = cs->n_jobs < JOBS_MAX;
	if (queued) {
		*cs->tail = j;
		cs->tail = &j->next;
		cs->n_jobs++;
		pthread_cond_signal(&cs->cond);
	}
	pthread_mutex_unlock(&cs->lock);
	if (!queued) {
		free(j);
		return false;
	}
	cn->asked = true;
	cn->step = VS_CS_ROAM;
	vs_conn_park(c);
	return true;
}

/* Reads the answer of node `owner` (chunks on inbox sub) into a session, or NULL. */
static struct vs_session *receive(struct vs_cluster_sessions *cs, natsSubscription *sub,
				  const char *owner, const struct job *j)
{
	struct vs_broker *b = cs->b;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint32_t got = 0, total = 1;
	const char *why = NULL;
	while (got < total && !why) {
		natsMsg *m = NULL;
		natsStatus st = natsSubscription_NextMsg(&m, sub, WAIT_MS);
		if (st != NATS_OK) {
			why = st == NATS_NO_RESPONDERS ? "it is not there" : natsStatus_GetText(st);
			break;
		}
		const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
		int n = natsMsg_GetDataLength(m);
		if (n < CHUNK_HEAD || get_be32(d + 1) != got || get_be32(d + 5) == 0) {
			why = "a malformed answer";
		} else if (d[0] == 'N') {
			total = 0; /* it has none (ended, expired) */
		} else if (d[0] != 'S') {
			why = "it could not let it go (connected there again?)";
		} else {
			total = get_be32(d + 5);
			uint8_t *nb = realloc(buf, len + (size_t)n - CHUNK_HEAD);
			if (!nb) {
				why = "no memory";
			} else {
				buf = nb;
				memcpy(buf + len, d + CHUNK_HEAD, (size_t)n - CHUNK_HEAD);
				len += (size_t)n - CHUNK_HEAD;
				got++;
			}
		}
		natsMsg_Destroy(m);
	}
	struct vs_session *s = NULL;
	if (!why && total) {
		s = vs_bp_session_import(b, j->id, j->idlen, buf, len, &why);
		if (s)
			vs_log(b->log, VS_LOG_NOTICE,
			       "cluster: session of client %s taken from node %s (%zu bytes: %u "
			       "subscriptions, %u queued, %u inflight)",
			       j->id, owner, len, vs_session_n_subs(s), s->queue.count,
			       s->inflight.count);
	}
	if (why)
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: session of client %s not taken from node %s: %s; it starts anew "
		       "here",
		       j->id, owner, why);
	else if (!total)
		vs_log(b->log, VS_LOG_INFO, "cluster: node %s had no session of client %s left",
		       owner, j->id);
	free(buf);
	return s;
}

/* Asks node owner for j's session: request 'R', the asking node, the client id. */
static struct vs_session *fetch(struct vs_cluster_sessions *cs, const char *owner,
				const struct job *j)
{
	struct vs_broker *b = cs->b;
	natsConnection *nc = vs_cluster_nc(b);
	char otok[TOKEN_MAX], subject[TOKEN_MAX + 8];
	if (!nc || vs_cluster_token((const uint8_t *)owner, strlen(owner), otok, sizeof(otok)) < 0)
		return NULL;
	snprintf(subject, sizeof(subject), SUBJECT "%s", otok);
	const char *me = vs_cluster_node(b);
	size_t melen = strlen(me);
	uint8_t *req = malloc(2 + melen + j->idlen);
	natsInbox *inbox = NULL;
	natsSubscription *sub = NULL;
	struct vs_session *s = NULL;
	if (!req || natsInbox_Create(&inbox) != NATS_OK ||
	    natsConnection_SubscribeSync(&sub, nc, inbox) != NATS_OK)
		goto out;
	req[0] = 'R';
	req[1] = (uint8_t)melen;
	memcpy(req + 2, me, melen);
	memcpy(req + 2 + melen, j->id, j->idlen);
	if (natsConnection_PublishRequest(nc, subject, inbox, req, (int)(2 + melen + j->idlen)) ==
	    NATS_OK)
		s = receive(cs, sub, owner, j);
out:
	if (sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	natsInbox_Destroy(inbox);
	free(req);
	return s;
}

/* Takes j's client id for this node, by compare-and-set; returns its session when another node
 * had it and gave it. */
static struct vs_session *take(struct vs_cluster_sessions *cs, const struct job *j)
{
	struct vs_broker *b = cs->b;
	const char *me = vs_cluster_node(b);
	char key[KEY_MAX];
	key_of(j->id, j->idlen, key);
	for (int attempt = 0; attempt < 4; attempt++) {
		kvEntry *e = NULL;
		uint64_t rev = 0;
		natsStatus st = kvStore_Get(&e, cs->kv, key);
		if (st == NATS_NOT_FOUND) {
			if (kvStore_CreateString(&rev, cs->kv, key, me) == NATS_OK)
				return NULL; /* first here */
			continue;	     /* another node was quicker: read again */
		}
		if (st != NATS_OK) {
			vs_log(b->log, VS_LOG_WARN,
			       "cluster: reading the owner of client %s in bucket %s: %s; going on "
			       "here",
			       j->id, VS_SESSIONS_BUCKET, natsStatus_GetText(st));
			return NULL;
		}
		char owner[VS_CLUSTER_NODE_MAX + 1];
		int vlen = kvEntry_ValueLen(e);
		if (vlen < 0 || vlen > VS_CLUSTER_NODE_MAX)
			vlen = 0;
		memcpy(owner, kvEntry_Value(e), (size_t)vlen);
		owner[vlen] = 0;
		uint64_t last = kvEntry_Revision(e);
		kvEntry_Destroy(e);
		if (strcmp(owner, me) == 0)
			return NULL; /* ours already */
		if (kvStore_UpdateString(&rev, cs->kv, key, me, last) != NATS_OK)
			continue; /* it changed since: read again */
		if (j->clean)
			return NULL; /* the old one ends there on this client's claim */
		return fetch(cs, owner, j);
	}
	vs_log(b->log, VS_LOG_WARN,
	       "cluster: the owner of client %s kept changing in bucket %s; going on here", j->id,
	       VS_SESSIONS_BUCKET);
	return NULL;
}

static void answer(struct vs_cluster_sessions *cs, struct job *j, struct vs_session *s)
{
	struct vs_mail m = {
	    .type = VS_MAIL_ROAMED, .session = s, .slot = j->slot, .conn_id = j->conn_id};
	vs_worker_post_now(&cs->b->workers[j->worker], &m);
	free(j);
}

static natsStatus bind_bucket(struct vs_cluster_sessions *cs)
{
	jsCtx *js = vs_cluster_js(cs->b);
	natsStatus st = js_KeyValue(&cs->kv, js, VS_SESSIONS_BUCKET);
	if (st == NATS_OK)
		return st;
	kvConfig kc;
	kvConfig_Init(&kc);
	kc.Bucket = VS_SESSIONS_BUCKET;
	kc.Description = "Viesti: the node that has each client id's session (docs/cluster.md)";
	kc.History = 1;
	kc.StorageType = js_FileStorage;
	kc.Replicas = cs->b->conf->cluster_replicas;
	st = js_CreateKeyValue(&cs->kv, js, &kc);
	if (st != NATS_OK) /* another node made it meanwhile */
		st = js_KeyValue(&cs->kv, js, VS_SESSIONS_BUCKET);
	return st;
}

static void *run(void *arg)
{
	struct vs_cluster_sessions *cs = arg;
	while (!atomic_load(&cs->stop)) {
		if (!cs->kv) {
			if (bind_bucket(cs) != NATS_OK) {
				cs->kv = NULL;
				nats_Sleep(500);
				continue;
			}
			atomic_store(&cs->ready, true);
		}
		pthread_mutex_lock(&cs->lock);
		if (!cs->head) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&cs->cond, &cs->lock, &until);
		}
		struct job *j = cs->head;
		if (j) {
			cs->head = j->next;
			if (!cs->head)
				cs->tail = &cs->head;
			cs->n_jobs--;
		}
		pthread_mutex_unlock(&cs->lock);
		if (j)
			answer(cs, j, take(cs, j));
	}
	return NULL;
}

/* ---- The answering side: this node has the session ---------------------------------------- */

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cluster_sessions *cs = arg;
	const uint8_t *d = (const uint8_t *)natsMsg_GetData(nm);
	int len = natsMsg_GetDataLength(nm);
	if (atomic_load(&cs->stop) || len < 2 || d[0] != 'R' || 2 + d[1] > len ||
	    !natsMsg_GetReply(nm)) {
		natsMsg_Destroy(nm);
		return;
	}
	size_t idlen = (size_t)len - 2 - d[1];
	char *id = malloc(idlen + 1);
	if (!id) {
		natsMsg_Destroy(nm);
		return; /* the asking node's wait runs out: the client starts anew there */
	}
	memcpy(id, d + 2 + d[1], idlen);
	id[idlen] = 0;
	struct vs_mail m = {.type = VS_MAIL_HANDOVER, .reason = 'R', .share = id, .ack = nm};
	vs_worker_post_now(&cs->b->workers[worker_of(cs->b, id, strnlen(id, idlen))], &m);
}

void vs_cluster_session_end(struct vs_broker *b, const char *client_id, size_t idlen)
{
	char *id = strndup(client_id, idlen);
	if (!id)
		return;
	struct vs_mail m = {.type = VS_MAIL_HANDOVER, .reason = 'D', .share = id};
	vs_worker_post_now(&b->workers[worker_of(b, id, strlen(id))], &m);
}

static void reply(struct vs_broker *b, natsMsg *req, char kind, const uint8_t *data, size_t len)
{
	natsConnection *nc = vs_cluster_nc(b);
	const char *to = natsMsg_GetReply(req);
	if (!nc || !to)
		return;
	int64_t maxp = natsConnection_GetMaxPayload(nc);
	size_t step = maxp > 4096 ? (size_t)maxp - 64 : 4032;
	uint32_t total = len ? (uint32_t)((len + step - 1) / step) : 1;
	uint8_t *chunk = malloc(CHUNK_HEAD + (len < step ? len : step));
	if (!chunk)
		return;
	for (uint32_t i = 0; i < total; i++) {
		size_t off = (size_t)i * step, n = len - off < step ? len - off : step;
		if (!len)
			n = 0;
		chunk[0] = (uint8_t)kind;
		put_be32(chunk + 1, i);
		put_be32(chunk + 5, total);
		if (n)
			memcpy(chunk + CHUNK_HEAD, data + off, n);
		natsConnection_Publish(nc, to, chunk, (int)(CHUNK_HEAD + n));
	}
	free(chunk);
}

/* Empties an exported session: what it held travels with it. s locked. */
static void let_go(struct vs_worker *w, struct vs_session *s)
{
	vs_stat_gauge(&w->stats.queued, -(int64_t)s->queue.count);
	vs_stat_gauge(&w->stats.inflight, -(int64_t)s->inflight.count);
	for (struct vs_ring *r = &s->queue; r; r = r == &s->queue ? &s->inflight : NULL) {
		for (uint32_t i = 0; i < r->count; i++)
			vs_qentry_fini(vs_ring_at(r, i));
		free(r->e);
		memset(r, 0, sizeof(*r));
	}
	s->queued_bytes = 0;
	vs_msg_unref(s->will); /* the session resumes elsewhere: not sent [MQTT-3.1.3-9] */
	s->will = NULL;
	vs_feed_clear(s);
}

void vs_cluster_session_handover(struct vs_worker *w, const struct vs_mail *m)
{
	struct vs_broker *b = w->b;
	const char *id = m->share;
	size_t idlen = strlen(id);
	natsMsg *req = m->ack;
	bool resume = m->reason == 'R';
	const char *to = req ? natsMsg_GetData(req) + 2 : "";
	int to_len = req ? (uint8_t)natsMsg_GetData(req)[1] : 0;

	/* A connection still open here closes first: a take-over, which resumes or not as the
	 * new connection does. On another worker, the mail follows it there. */
	struct vs_worker *ow = NULL;
	uint32_t slot = 0;
	uint64_t conn_id = 0;
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_map_get(&b->sessions, id, idlen);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (s->connected && !s->bridge) {
			ow = s->owner;
			slot = s->conn_slot;
			conn_id = s->conn_id;
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	if (ow && ow != w && m->reply_to < HOPS_MAX) {
		struct vs_mail f = *m;
		f.reply_to++;
		if (vs_worker_post(w, ow->idx, &f) == 0)
			return; /* share and ack go with it */
	}
	if (ow == w)
		vs_worker_takeover(w, slot, conn_id, resume);

	/* Out of the registry, under its lock: from here on it is this mail's. */
	char kind = 'N';
	pthread_mutex_lock(&b->reg_lock);
	s = vs_map_get(&b->sessions, id, idlen);
	if (s && !s->bridge) {
		pthread_mutex_lock(&s->lock);
		if (s->connected) {
			kind = 'B';
		} else {
			kind = 'S';
			vs_map_del(&b->sessions, id, idlen);
			vs_broker_sessions_changed(b);
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	if (kind != 'S') {
		if (req)
			reply(b, req, kind, NULL, 0);
		goto out;
	}
	if (!resume) {
		vs_logc(b->log, VS_LOG_INFO, id,
			"cluster: client %s started clean on another node: its session here ends",
			id);
		vs_router_end_session(w, s); /* its will goes, as on one node */
		vs_session_unref(s);
		goto out;
	}
	struct vs_store_buf out;
	vs_store_buf_init(&out);
	pthread_mutex_lock(&s->lock);
	bool expired = s->expiry != UINT32_MAX &&
		       w->now_ms - s->offline_since_ms >= (int64_t)s->expiry * 1000;
	int rc = expired ? 0 : vs_bp_session_export(b, s, &out);
	if (rc == 0 && !expired)
		let_go(w, s);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		/* Kept here: better than lost. The client starts anew on the other node. */
		vs_log(b->log, VS_LOG_ERR, "cluster: session of client %s cannot be handed over: %s",
		       id, rc == -ENOMEM ? "no memory" : "too large");
		pthread_mutex_lock(&b->reg_lock);
		if (vs_map_get(&b->sessions, id, idlen) ||
		    vs_map_put(&b->sessions, s->client_id, s->id_len, s, NULL) < 0) {
			pthread_mutex_unlock(&b->reg_lock);
			vs_router_end_session(w, s);
			vs_session_unref(s);
		} else {
			vs_broker_sessions_changed(b);
			pthread_mutex_unlock(&b->reg_lock);
		}
		reply(b, req, 'B', NULL, 0);
		vs_store_buf_fini(&out);
		goto out;
	}
	/* Ends here without a will and without messages (they went with it); its subscriptions
	 * leave the trie, its SESSION_DEL goes into the store. */
	vs_router_end_session(w, s);
	vs_session_unref(s);
	reply(b, req, expired ? 'N' : 'S', out.data, out.len);
	if (!expired)
		vs_log(b->log, VS_LOG_NOTICE,
		       "cluster: session of client %s handed over to node %.*s (%zu bytes)", id,
		       to_len, to, out.len);
	vs_store_buf_fini(&out);
out:
	free(m->share);
	if (req)
		natsMsg_Destroy(req);
}

/* ---- Arrival ------------------------------------------------------------------------------ */

/* A session from another node into this one's registry, trie and store. Takes s's reference. */
static void install(struct vs_worker *w, struct vs_session *s)
{
	struct vs_broker *b = w->b;
	struct vs_session *old = NULL;
	bool busy = false;
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *cur = vs_map_get(&b->sessions, s->client_id, s->id_len);
	if (cur) {
		pthread_mutex_lock(&cur->lock);
		busy = cur->connected || cur->bridge;
		pthread_mutex_unlock(&cur->lock);
		if (!busy) {
			vs_map_del(&b->sessions, s->client_id, s->id_len);
			old = cur;
		}
	}
	if (!busy && vs_map_put(&b->sessions, s->client_id, s->id_len, s, NULL) < 0)
		busy = true;
	if (!busy || old)
		vs_broker_sessions_changed(b);
	pthread_mutex_unlock(&b->reg_lock);
	if (old) {
		/* An older copy of this node's (a crash before its hand-over was stored): it ends
		 * silently, before the new one's records (replay goes by client id). */
		pthread_mutex_lock(&old->lock);
		vs_msg_unref(old->will);
		old->will = NULL;
		pthread_mutex_unlock(&old->lock);
		vs_router_end_session(w, old);
		vs_session_unref(old);
	}
	if (busy) {
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: session of client %s came from another node while one is "
		       "connected here: the one here is kept",
		       s->client_id);
		s->ended = true;
		vs_session_unref(s);
		return;
	}
	vs_bp_session_subscribe(b, s);
	pthread_mutex_lock(&s->lock);
	vs_bp_session_record(w, s);
	vs_stat_gauge(&w->stats.queued, s->queue.count);
	vs_stat_gauge(&w->stats.inflight, s->inflight.count);
	pthread_mutex_unlock(&s->lock);
}

void vs_cluster_session_arrived(struct vs_worker *w, const struct vs_mail *m)
{
	struct vs_conn *c = vs_worker_conn(w, m->slot, m->conn_id);
	if (c && (!c->connecting || c->connecting->step != VS_CS_ROAM))
		c = NULL;
	w->cur = c; /* its CONNACK waits for the session's records */
	if (m->session)
		install(w, m->session);
	if (c) {
		c->connecting->step = VS_CS_NONE;
		c->parked = false;
		enum vs_handled h = vs_connect_resume(c);
		if (h == VS_GO_ON && !c->parked)
			vs_conn_unpark(c);
	}
	w->cur = NULL;
}

/* ---- Start and stop ----------------------------------------------------------------------- */

struct vs_cluster_sessions *vs_cluster_sessions_start(struct vs_broker *b)
{
	struct vs_cluster_sessions *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->b = b;
	cs->tail = &cs->head;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->cond, NULL);
	const char *node = vs_cluster_node(b);
	char subject[TOKEN_MAX + 8];
	ssize_t n = vs_cluster_token((const uint8_t *)node, strlen(node), cs->tok, sizeof(cs->tok));
	snprintf(subject, sizeof(subject), SUBJECT "%s", cs->tok);
	if (n <= 0 ||
	    natsConnection_Subscribe(&cs->sub, vs_cluster_nc(b), subject, on_request, cs) !=
		NATS_OK ||
	    pthread_create(&cs->thread, NULL, run, cs) != 0) {
		vs_cluster_sessions_free(cs);
		return NULL;
	}
	cs->started = true;
	return cs;
}

void vs_cluster_sessions_stop(struct vs_cluster_sessions *cs)
{
	if (!cs)
		return;
	atomic_store(&cs->stop, true);
	if (cs->sub)
		natsSubscription_Unsubscribe(cs->sub);
	if (!cs->started)
		return;
	pthread_mutex_lock(&cs->lock);
	pthread_cond_signal(&cs->cond);
	pthread_mutex_unlock(&cs->lock);
	pthread_join(cs->thread, NULL);
	cs->started = false;
}

void vs_cluster_sessions_free(struct vs_cluster_sessions *cs)
{
	if (!cs)
		return;
	vs_cluster_sessions_stop(cs);
	for (struct job *j = cs->head, *next; j; j = next) {
		next = j->next;
		free(j); /* its connection is closed with its worker */
	}
	natsSubscription_Destroy(cs->sub);
	kvStore_Destroy(cs->kv);
	pthread_cond_destroy(&cs->cond);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}
