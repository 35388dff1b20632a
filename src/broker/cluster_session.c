/* Persistent sessions that move between nodes: the session threads, the asking side of a
 * hand-over, rebuilds, and arrival (cluster_session.h, cluster_session_int.h). */
#include "broker/cluster_session_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/map.h"
#include "base/vec.h"
#include "broker/broker.h"
#include "broker/cluster_js.h"
#include "broker/cluster.h"
#include "broker/cluster_nats.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "cluster/cluster.h"
#include "cluster/keys.h"
#include "cluster/owner.h"
#include "codec/codec.h"
#include "persist/store.h"
#include "session/registry.h"
#include "session/session.h"

int vs_cs_worker_of(struct vs_broker *b, const char *id, size_t idlen)
{
	int idx = (int)(vs_hash64(0, id, idlen) % (uint64_t)b->n_workers);
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, id, idlen);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (s->connected && s->owner)
			idx = ((struct vs_worker *)s->owner)->idx;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	return idx;
}

/* The session thread of a client id: all its jobs, in order. */
static uint32_t shard_of(const char *id, size_t len)
{
	return (uint32_t)(vs_hash64(0x53484152u, id, len) % SHARDS);
}

/* Queues j (CONNECTs ahead of notes). Returns false (j freed) when the queue is full. */
static bool push(struct vs_cluster_sessions *cs, struct job *j)
{
	bool connect = j->kind == JOB_CONNECT;
	struct shard *sh = &cs->shards[shard_of(j->id, j->idlen)];
	pthread_mutex_lock(&sh->lock);
	/* A note reads the session when it runs: one waiting for this client id serves a second
	 * (a client sending SUBSCRIBE after SUBSCRIBE costs one key write per turn of the thread,
	 * not one per packet, each of all its subscriptions). */
	struct job *waiting =
	    j->kind == JOB_NOTE ? vs_map_get(&sh->queued_notes, j->id, j->idlen) : NULL;
	if (connect) {
		/* A note for the id waiting behind it (CONNECTs go first) that found no session
		 * would remove the key this CONNECT takes, before its session exists here. */
		struct job *n = vs_map_get(&sh->queued_notes, j->id, j->idlen);
		if (n)
			n->keep = true;
	}
	if (waiting) {
		waiting->floor = j->floor; /* the latest: offline (where the stream stood) or not */
		waiting->keep = false;
		pthread_mutex_unlock(&sh->lock);
		free(j);
		return true;
	}
	uint32_t *n = connect ? &sh->n_jobs : &sh->n_notes;
	bool queued =
	    *n < JOBS_MAX / SHARDS &&
	    (j->kind != JOB_NOTE || vs_map_put(&sh->queued_notes, j->id, j->idlen, j, NULL) == 0);
	if (queued) {
		struct job ***tail = connect ? &sh->tail : &sh->notes_tail;
		**tail = j;
		*tail = &j->next;
		(*n)++;
		pthread_cond_signal(&sh->cond);
	}
	pthread_mutex_unlock(&sh->lock);
	if (!queued)
		free(j);
	return queued;
}

void vs_cluster_sessions_counts(struct vs_cluster_sessions *cs, uint64_t *taken, uint64_t *given,
				uint64_t *rebuilt)
{
	*taken = cs ? atomic_load(&cs->taken) : 0;
	*given = cs ? atomic_load(&cs->given) : 0;
	*rebuilt = cs ? atomic_load(&cs->rebuilt) : 0;
}

struct job *vs_cs_new_job(uint8_t kind, const char *id, size_t idlen)
{
	struct job *j = malloc(sizeof(*j) + idlen + 1);
	if (!j)
		return NULL;
	*j = (struct job){.kind = kind, .idlen = idlen};
	memcpy(j->id, id, idlen);
	j->id[idlen] = 0;
	return j;
}

void vs_cluster_session_note(struct vs_broker *b, const char *client_id, size_t idlen, bool offline)
{
	struct vs_cluster_sessions *cs = vs_cluster_sessions_of(b);
	if (!cs || !atomic_load(&cs->ready))
		return;
	struct job *j = vs_cs_new_job(JOB_NOTE, client_id, idlen);
	if (!j)
		return; /* the key keeps what it said: a rebuild elsewhere may miss a change */
	if (offline)
		j->floor = vs_cjs_floor(vs_cluster_cjs(b->cluster)) + 1;
	push(cs, j);
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
	/* Before the buckets are bound the CONNECT waits for the first try (start-up: a session
	 * decided here alone could not be found by the node its client moves to next); after a
	 * try that failed (no NATS, no JetStream) this node decides alone. */
	if (!cs || (!atomic_load(&cs->ready) && atomic_load(&cs->tried)))
		return false;
	size_t idlen = strlen(c->client_id);
	struct job *j = malloc(sizeof(*j) + idlen + 1);
	if (!j)
		return false;
	*j = (struct job){.kind = JOB_CONNECT,
			  .worker = c->w->idx,
			  .slot = c->slot,
			  .conn_id = c->id,
			  .clean = cn->clean,
			  .idlen = idlen};
	memcpy(j->id, c->client_id, idlen + 1);
	uint32_t shard = shard_of(j->id, j->idlen);
	if (!push(cs, j))
		return false;
	vs_log(b->log, VS_LOG_DEBUG,
	       "cluster: client %s's CONNECT waits for session thread %u (bucket %s)", c->client_id,
	       shard, VS_SESSIONS_BUCKET);
	cn->asked = true;
	cn->step = VS_CS_ROAM;
	vs_conn_park(c);
	return true;
}

/* What an owner said when asked for a session. */
enum fetched {
	GOT,  /* the session (or it had none left: s NULL) */
	GONE, /* no answer: stopped, dead, or cut off from NATS */
};

/* Reads the answer of node `owner` (chunks on inbox sub) into *out. */
static enum fetched receive(struct vs_cluster_sessions *cs, natsSubscription *sub,
			    const char *owner, const struct job *j, struct vs_session **out,
			    uint64_t *routed)
{
	struct vs_broker *b = cs->b;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint32_t got = 0, total = 1;
	const char *why = NULL;
	*routed = 0;
	enum fetched r = GOT;
	int64_t until = vs_now_ms() + ANSWER_MS;
	*out = NULL;
	while (got < total && !why) {
		natsMsg *m = NULL;
		int64_t left = until - vs_now_ms();
		natsStatus st =
		    left <= 0 ? NATS_TIMEOUT
			      : natsSubscription_NextMsg(&m, sub, left < WAIT_MS ? left : WAIT_MS);
		if (st != NATS_OK) {
			why = st == NATS_NO_RESPONDERS ? "it is not there" : natsStatus_GetText(st);
			r = GONE;
			break;
		}
		const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
		int n = natsMsg_GetDataLength(m);
		/* The count is the first chunk's: a peer cannot make the answer grow as it goes. */
		if (n < CHUNK_HEAD || vs_cs_get_be32(d + 1) != got || vs_cs_get_be32(d + 5) == 0 ||
		    (got && vs_cs_get_be32(d + 5) != total) ||
		    (uint64_t)vs_cs_get_be32(d + 5) * (uint64_t)(n - CHUNK_HEAD) > ANSWER_MAX) {
			why = "a malformed answer";
		} else if (d[0] == 'N' && got == 0) {
			total = 0; /* it has none (ended, expired) */
		} else if (d[0] == 'B' && got == 0) {
			why = "it could not let it go (connected there again?)";
		} else if (d[0] != 'S' || len + (size_t)n > ANSWER_MAX) {
			why = "a malformed answer";
		} else {
			total = vs_cs_get_be32(d + 5);
			if (got == 0)
				*routed =
				    (uint64_t)vs_cs_get_be32(d + 9) << 32 | vs_cs_get_be32(d + 13);
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
	if (!why && total) {
		*out = vs_bp_session_import(b, j->id, j->idlen, buf, len, true, &why);
		if (*out) {
			why = NULL; /* it sets "" */
			atomic_fetch_add(&cs->taken, 1);
		}
		if (*out)
			vs_log(b->log, VS_LOG_NOTICE,
			       "cluster: session of client %s taken from node %s (%zu bytes: %u "
			       "subscriptions, %u queued, %u inflight)",
			       j->id, owner, len, vs_session_n_subs(*out), (*out)->queue.count,
			       (*out)->inflight.count);
	}
	if (why && r == GONE)
		vs_log(b->log, VS_LOG_NOTICE,
		       "cluster: node %s does not answer for client %s's session: %s", owner, j->id,
		       why);
	else if (why)
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: session of client %s not taken from node %s: %s; it starts anew "
		       "here",
		       j->id, owner, why);
	else if (!why && !total)
		vs_log(b->log, VS_LOG_INFO, "cluster: node %s had no session of client %s left",
		       owner, j->id);
	free(buf);
	return r;
}

/* A request to node owner about j's client: kind, the asking node, until when (wall-clock ms)
 * the owner may act on it, upto (the stream sequence the owner must have routed first, 'R'),
 * the client id. Returns its length, 0 when the owner's subject cannot be made. */
static size_t request(struct vs_cluster_sessions *cs, const char *owner, const struct job *j,
		      char kind, uint64_t deadline, uint64_t upto, uint8_t **out, char *subject,
		      size_t cap)
{
	char otok[TOKEN_MAX];
	*out = NULL;
	if (vs_cluster_token((const uint8_t *)owner, strlen(owner), otok, sizeof(otok)) < 0)
		return 0;
	snprintf(subject, cap, SUBJECT "%s", otok);
	const char *me = vs_cluster_node(cs->b);
	size_t melen = strlen(me), rlen = REQ_HEAD + melen + j->idlen;
	uint8_t *req = malloc(rlen);
	if (!req)
		return 0;
	req[0] = (uint8_t)kind;
	req[1] = (uint8_t)melen;
	memcpy(req + 2, me, melen);
	vs_cs_put_be32(req + 2 + melen, (uint32_t)(deadline >> 32));
	vs_cs_put_be32(req + 6 + melen, (uint32_t)deadline);
	vs_cs_put_be32(req + 10 + melen, (uint32_t)(upto >> 32));
	vs_cs_put_be32(req + 14 + melen, (uint32_t)upto);
	memcpy(req + REQ_HEAD + melen, j->id, j->idlen);
	*out = req;
	return rlen;
}

/* Asks node owner for j's session ('R'), once it has routed the stream up to upto. */
static enum fetched fetch(struct vs_cluster_sessions *cs, const char *owner, const struct job *j,
			  uint64_t upto, struct vs_session **out, uint64_t *routed)
{
	natsConnection *nc = vs_cluster_nc(cs->b);
	char subject[TOKEN_MAX + 8];
	uint8_t *req = NULL;
	natsInbox *inbox = NULL;
	natsSubscription *sub = NULL;
	enum fetched r = GOT;
	*out = NULL;
	/* The owner lets the session go only before this (wall-clock ms): one that answers after
	 * this node stopped waiting keeps it, rather than send it to nobody. */
	uint64_t deadline = (uint64_t)(vs_wall_ms() + WAIT_MS - 500);
	size_t rlen =
	    nc ? request(cs, owner, j, 'Q', deadline, upto, &req, subject, sizeof(subject)) : 0;
	if (!rlen || natsInbox_Create(&inbox) != NATS_OK ||
	    natsConnection_SubscribeSync(&sub, nc, inbox) != NATS_OK)
		goto out;
	if (natsConnection_PublishRequest(nc, subject, inbox, req, (int)rlen) == NATS_OK)
		r = receive(cs, sub, owner, j, out, routed);
out:
	if (sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	natsInbox_Destroy(inbox);
	free(req);
	return r;
}

/* Asks node owner to close j's client's connection there, if it has one ('C': a take-over
 * that resumes), and waits for it to have done so, at most CLOSE_MS: from then on the copy
 * there takes messages and acknowledges none (see take()). Returns NATS_OK when it answered,
 * NATS_NO_RESPONDERS when nothing listens on its subject (it is gone), or another failure. */
static natsStatus close_old(struct vs_cluster_sessions *cs, const char *owner, const struct job *j)
{
	natsConnection *nc = vs_cluster_nc(cs->b);
	char subject[TOKEN_MAX + 8];
	uint8_t *req = NULL;
	size_t rlen = nc ? request(cs, owner, j, 'C', (uint64_t)(vs_wall_ms() + CLOSE_MS), 0, &req,
				   subject, sizeof(subject))
			 : 0;
	natsMsg *reply = NULL;
	natsStatus st =
	    rlen ? natsConnection_Request(&reply, nc, subject, req, (int)rlen, CLOSE_MS) : NATS_ERR;
	natsMsg_Destroy(reply);
	free(req);
	return st;
}

/* A node that let a CONNECT ask it for a whole lease without answering, though its lease was
 * current (cut off from NATS in a way NATS has not noticed yet, or hung): the next CONNECTs
 * for its clients do not wait for it again, for a lease. */
static bool slow(struct vs_cluster_sessions *cs, const char *node)
{
	pthread_mutex_lock(&cs->slow_lock);
	int64_t until = (intptr_t)vs_map_get(&cs->slow, node, strlen(node));
	bool is = until && vs_now_ms() < until;
	if (until && !is)
		vs_map_del(&cs->slow, node, strlen(node));
	pthread_mutex_unlock(&cs->slow_lock);
	return is;
}

static void mark_slow(struct vs_cluster_sessions *cs, const char *node)
{
	int64_t until = vs_now_ms() + cs->b->conf->cluster_lease_ms;
	pthread_mutex_lock(&cs->slow_lock);
	vs_map_put(&cs->slow, node, strlen(node), (void *)(intptr_t)until, NULL);
	pthread_mutex_unlock(&cs->slow_lock);
	vs_log(cs->b->log, VS_LOG_WARN,
	       "cluster: node %s has not answered for a whole lease though its lease is current: "
	       "its clients' sessions are rebuilt without asking it for %d s",
	       node, cs->b->conf->cluster_lease_ms / 1000);
}

/* Whether node's lease in vs_nodes is current (cluster_js.h); true when that cannot be read. */
static bool alive(struct vs_cluster_sessions *cs, const char *node)
{
	char tok[TOKEN_MAX];
	if (!cs->nodes)
		return true;
	if (vs_cluster_token((const uint8_t *)node, strlen(node), tok, sizeof(tok)) < 0)
		return true;
	kvEntry *e = NULL;
	natsStatus st = kvStore_Get(&e, cs->nodes, tok);
	kvEntry_Destroy(e);
	return st != NATS_NOT_FOUND;
}

/* The stream sequence node's durable consumer has acknowledged everything up to (+ 1), or 0. */
static uint64_t consumer_floor(struct vs_cluster_sessions *cs, const char *node)
{
	char tok[TOKEN_MAX], name[TOKEN_MAX + 8];
	if (vs_cluster_token((const uint8_t *)node, strlen(node), tok, sizeof(tok)) < 0)
		return 0;
	snprintf(name, sizeof(name), VS_CJS_CONSUMER_FMT, tok);
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	uint64_t floor = 0;
	if (js_GetConsumerInfo(&ci, vs_cluster_js(cs->b), VS_CJS_STREAM, name, NULL, &jerr) ==
	    NATS_OK)
		floor = ci->AckFloor.Stream + 1;
	jsConsumerInfo_Destroy(ci);
	return floor;
}

/* The session of a node that does not answer, rebuilt from what its key says: its
 * subscriptions, and the stream's messages for them since it went offline there (or since what
 * that node last acknowledged, when it was connected). */
/* A key's entry as read: its owner (NUL-terminated; empty when the value is malformed) and the
 * rest of its value. */
struct owned {
	char owner[VS_CLUSTER_NODE_MAX + 1];
	struct vs_owner v;
};

static void read_entry(kvEntry *e, struct owned *o)
{
	int len = kvEntry_ValueLen(e);
	if (vs_owner_decode(kvEntry_Value(e), len > 0 ? (size_t)len : 0, &o->v) < 0) {
		memset(o, 0, sizeof(*o)); /* taken as no one's: overwritten at its revision */
		return;
	}
	memcpy(o->owner, o->v.node, o->v.node_len);
	o->owner[o->v.node_len] = 0;
}

/* The key where node writes its floor every second (write_floor): "=n" and its token, which
 * no client id's key can be ("=" starts an escape, followed by upper-case hex, or "=h"). */
static void floor_key(const char *node, char *out, size_t cap)
{
	char tok[TOKEN_MAX];
	if (vs_cluster_token((const uint8_t *)node, strlen(node), tok, sizeof(tok)) < 0)
		tok[0] = '\0';
	snprintf(out, cap, "=n%s", tok);
}

/* Where to read the stream from for a session of a dead node that was connected there: the
 * floor that node wrote last (every message it held then, and all it received since, come
 * after it), or its consumer's when it wrote none. */
static uint64_t node_floor(struct vs_cluster_sessions *cs, const char *node)
{
	char key[TOKEN_MAX + 4];
	floor_key(node, key, sizeof(key));
	kvEntry *e = NULL;
	uint64_t floor = 0;
	if (kvStore_Get(&e, cs->kv, key) == NATS_OK) {
		char num[24];
		int len = kvEntry_ValueLen(e);
		if (len > 0 && len < (int)sizeof(num)) {
			memcpy(num, kvEntry_Value(e), (size_t)len);
			num[len] = '\0';
			floor = strtoull(num, NULL, 10);
		}
	}
	kvEntry_Destroy(e);
	return floor ? floor : consumer_floor(cs, node);
}

/* Writes this node's floor (vs_cjs_floor() + 1) when it moved, every FLOOR_EVERY_MS (shard 0's
 * thread): what a node rebuilding one of its connected sessions reads from, should it die. */
static void write_floor(struct vs_cluster_sessions *cs)
{
	int64_t now = vs_now_ms();
	if (now < cs->floor_next_ms)
		return;
	cs->floor_next_ms = now + FLOOR_EVERY_MS;
	uint64_t floor = vs_cjs_floor(vs_cluster_cjs(cs->b->cluster)) + 1;
	if (floor == cs->floor_written)
		return;
	char key[TOKEN_MAX + 4], num[24];
	floor_key(vs_cluster_node(cs->b), key, sizeof(key));
	snprintf(num, sizeof(num), "%llu", (unsigned long long)floor);
	uint64_t rev;
	if (kvStore_PutString(&rev, cs->kv, key, num) == NATS_OK) {
		cs->floor_written = floor;
		vs_log(cs->b->log, VS_LOG_DEBUG,
		       "cluster: this node's stream floor for its connected sessions is %s", num);
	}
}

static struct vs_session *rebuild(struct vs_cluster_sessions *cs, const struct job *j,
				  const struct owned *o, uint64_t *from)
{
	struct vs_broker *b = cs->b;
	const char *why = "no subscriptions recorded";
	struct vs_session *s = o->v.recs_len ? vs_bp_session_import(b, j->id, j->idlen, o->v.recs,
								    o->v.recs_len, true, &why)
					     : NULL;
	if (!s) {
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: node %s, which had client %s's session, does not answer (%s in "
		       "bucket %s): it starts anew here",
		       o->owner, j->id, why, VS_SESSIONS_BUCKET);
		return NULL;
	}
	/* Read once the session is in the trie (run()): what comes after, it gets live. Up to
	 * the key's floor the session has each message (the whole state in the key) or its
	 * client acknowledged it: one that reaches this node late is not taken again. */
	*from = o->v.floor ? o->v.floor : node_floor(cs, o->owner);
	if (o->v.floor > 1)
		vs_cs_skip_came(cs, s, o->v.floor - 1);
	atomic_fetch_add(&cs->rebuilt, 1);
	vs_log(b->log, VS_LOG_NOTICE,
	       "cluster: node %s, which had client %s's session, does not answer: rebuilt here "
	       "with %u subscriptions, the stream %s to be read from sequence %llu",
	       o->owner, j->id, vs_session_n_subs(s), VS_CJS_STREAM,
	       (unsigned long long)(*from ? *from - 1 : 0));
	return s;
}

/*
 * Puts a copy of j's session as its key o says (its subscriptions, nothing queued) in this
 * node's registry and trie, before the owner is asked for the session: what is published from
 * then on reaches it here, and the copy that comes joins it (finish(), the messages both took
 * once). Returns it (a reference of the caller's; the registry has its own), or NULL when this
 * node has a copy already (that one serves) or the key names no subscriptions.
 */
static struct vs_session *place(struct vs_cluster_sessions *cs, const struct job *j,
				const struct owned *o)
{
	struct vs_broker *b = cs->b;
	const char *why;
	if (!o->v.recs_len)
		return NULL;
	struct vs_session *p =
	    vs_bp_session_import(b, j->id, j->idlen, o->v.recs, o->v.recs_len, false, &why);
	if (!p)
		return NULL;
	pthread_mutex_lock(&b->reg_lock);
	bool added = !vs_registry_get(&b->sessions, j->id, j->idlen) &&
		     vs_registry_add(&b->sessions, p) == 0;
	if (added)
		vs_broker_sessions_changed(b);
	pthread_mutex_unlock(&b->reg_lock);
	if (!added) {
		p->ended = true;
		vs_session_unref(p);
		return NULL;
	}
	vs_bp_session_subscribe(b, p);
	return vs_session_ref(p);
}

/* Waits, at most SETTLE_MS, until every other node knows this node's subjects noted so far
 * (the barrier of cluster_interest.h), then returns the stream's last sequence (0: unknown):
 * a QoS 1/2 message stored after it reaches this node's copy through the stream. */
static uint64_t settle(struct vs_cluster_sessions *cs)
{
	struct vs_broker *b = cs->b;
	uint64_t ticket = vs_cluster_barrier_ticket(b);
	int64_t until = vs_now_ms() + SETTLE_MS;
	while (vs_cluster_barrier_due(b, ticket) && vs_now_ms() < until && !atomic_load(&cs->stop))
		nats_Sleep(1);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	uint64_t last = 0;
	if (js_GetStreamInfo(&si, vs_cluster_js(b), VS_CJS_STREAM, NULL, &jerr) == NATS_OK)
		last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return last;
}

/*
 * Takes j's client id for this node, by compare-and-set; returns its session when another node
 * had it and gave it, or it was rebuilt because that node is gone.
 *
 * A hand-over loses nothing published meanwhile, anywhere, and takes each QoS 1/2 message once:
 * the owner first closes the client's connection there (close_old: from then on its copy
 * acknowledges nothing); this node places a copy of its own (place), waits until every node
 * knows its subjects (settle), and asks for the session naming the stream's last sequence
 * then. Every message stored up to there reaches the owner's copy, which the owner hands over
 * only once it has routed the stream that far (the giver, cluster_handover.c); every one stored
 * after reaches the placed copy through the stream; the two copies meet (finish()) by stream
 * sequence.
 */
static struct vs_session *take(struct vs_cluster_sessions *cs, const struct job *j, uint64_t *from,
			       struct vs_session **placed, uint64_t *cut)
{
	struct vs_broker *b = cs->b;
	const char *me = vs_cluster_node(b);
	char key[VS_OWNER_KEY_MAX];
	vs_owner_key((const uint8_t *)j->id, j->idlen, key);
	size_t vlen = 0;
	uint8_t *mine = vs_owner_encode(me, 0, NULL, 0, &vlen);
	struct vs_session *s = NULL;
	if (!mine)
		return NULL;
	for (int attempt = 0; attempt < 4; attempt++) {
		kvEntry *e = NULL;
		uint64_t rev = 0;
		natsStatus st = kvStore_Get(&e, cs->kv, key);
		if (st == NATS_NOT_FOUND) {
			if (kvStore_Create(&rev, cs->kv, key, mine, (int)vlen) == NATS_OK)
				goto out; /* first here */
			continue;	  /* another node was quicker: read again */
		}
		if (st != NATS_OK) {
			vs_log(b->log, VS_LOG_WARN,
			       "cluster: reading the owner of client %s in bucket %s: %s; going on "
			       "here",
			       j->id, VS_SESSIONS_BUCKET, natsStatus_GetText(st));
			goto out;
		}
		struct owned o;
		read_entry(e, &o);
		uint64_t last = kvEntry_Revision(e);
		if (strcmp(o.owner, me) == 0) {
			kvEntry_Destroy(e);
			goto out; /* ours already */
		}
		if (kvStore_Update(&rev, cs->kv, key, mine, (int)vlen, last) != NATS_OK) {
			kvEntry_Destroy(e);
			continue; /* it changed since: read again */
		}
		/* A clean start: the old one ends there on this client's claim. A node is asked
		 * while its lease is current (it may be slow: a pause, a large session), and
		 * taken for dead once its lease lapsed; a node too late to answer keeps its copy
		 * (fetch()), which joins the session when the client is back there (finish()). */
		int asks = b->conf->cluster_lease_ms / WAIT_MS + 2, ask = 0;
		enum fetched r = GONE;
		bool live = false;
		uint64_t upto = 0;
		natsStatus said = NATS_ERR;
		/* An owner that does not answer (dead, not yet known to be) gets no copy placed:
		 * the barrier would wait for it too. One with nothing on its subject is not asked
		 * for the session either: it is gone (the requests fail alike). */
		if (!j->clean && o.owner[0] && !slow(cs, o.owner) && alive(cs, o.owner) &&
		    (said = close_old(cs, o.owner, j)) == NATS_OK) {
			*placed = place(cs, j, &o);
			upto = settle(cs);
		}
		if (said == NATS_NO_RESPONDERS) {
			ask = asks;
			vs_cluster_peer_absent(b, o.owner);
		}
		for (; !j->clean && o.owner[0] && ask < asks && r == GONE && !slow(cs, o.owner) &&
		       !atomic_load(&b->stopping) && (live = alive(cs, o.owner));
		     ask++)
			r = fetch(cs, o.owner, j, upto, &s, cut);
		if (r == GONE && live && ask == asks) /* alive, and never answered */
			mark_slow(cs, o.owner);
		if (!j->clean && o.owner[0] && r == GONE)
			s = rebuild(cs, j, &o, from);
		else if (s && *cut == ROUTED_UNKNOWN) {
			/* The owner could not say how far it had routed the stream (its JetStream
			 * not ready yet: just restarted): read it from where a rebuild would. */
			*cut = 0;
			*from = o.v.floor ? o.v.floor : node_floor(cs, o.owner);
		}
		kvEntry_Destroy(e);
		goto out;
	}
	vs_log(b->log, VS_LOG_WARN,
	       "cluster: the owner of client %s kept changing in bucket %s; going on here", j->id,
	       VS_SESSIONS_BUCKET);
out:
	free(mine);
	return s;
}

/*
 * JOB_NOTE for a session that ended here, or no longer outlives its connection: removes its
 * client id's key if it names this node, only at the revision read (a purge of the key's subject
 * in the bucket's stream below the next sequence). A node that took the key meanwhile keeps it;
 * one that takes it after finds none and creates it. Left in place, the key would make a node
 * that finds this one dead rebuild a session that ended, and it would stay in the bucket for
 * ever (one per client id that ever had a persistent session).
 */
static void forget(struct vs_cluster_sessions *cs, const struct job *j)
{
	struct vs_broker *b = cs->b;
	char key[VS_OWNER_KEY_MAX];
	vs_owner_key((const uint8_t *)j->id, j->idlen, key);
	/* The journal of its PUBRECs (cluster_js.h) goes too, up to its last entry read before
	 * the key: a node that takes the key after it writes its entries after that. */
	char recs[VS_CJS_RECS_SUBJECT_MAX];
	uint64_t last_rec = 0;
	if (vs_cjs_recs_subject(j->id, j->idlen, recs)) {
		natsMsg *m = NULL;
		if (js_GetLastMsg(&m, vs_cluster_js(b), VS_CJS_RECS, recs, NULL, NULL) == NATS_OK)
			last_rec = natsMsg_GetSequence(m);
		natsMsg_Destroy(m);
	}
	kvEntry *e = NULL;
	if (kvStore_Get(&e, cs->kv, key) != NATS_OK)
		return; /* none (or NATS away: the key stays, naming this node while it lives) */
	struct owned o;
	read_entry(e, &o);
	uint64_t rev = kvEntry_Revision(e);
	kvEntry_Destroy(e);
	if (strcmp(o.owner, vs_cluster_node(b)) != 0)
		return; /* another node's now */
	char subject[sizeof("$KV." VS_SESSIONS_BUCKET ".") + VS_OWNER_KEY_MAX];
	snprintf(subject, sizeof(subject), "$KV.%s.%s", VS_SESSIONS_BUCKET, key);
	jsOptions opts;
	jsOptions_Init(&opts);
	opts.Stream.Purge.Subject = subject;
	opts.Stream.Purge.Sequence = rev + 1; /* up to and including rev, nothing newer */
	jsErrCode jerr = 0;
	natsStatus st = js_PurgeStream(vs_cluster_js(b), "KV_" VS_SESSIONS_BUCKET, &opts, &jerr);
	if (st != NATS_OK)
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: removing client %s's key from bucket %s: %s (JetStream error %d)",
		       j->id, VS_SESSIONS_BUCKET, natsStatus_GetText(st), (int)jerr);
	else
		vs_log(b->log, VS_LOG_DEBUG,
		       "cluster: client %s's session ended here: its key is removed from bucket %s",
		       j->id, VS_SESSIONS_BUCKET);
	if (st != NATS_OK || !last_rec)
		return;
	jsOptions_Init(&opts);
	opts.Stream.Purge.Subject = recs;
	opts.Stream.Purge.Sequence = last_rec + 1;
	if (js_PurgeStream(vs_cluster_js(b), VS_CJS_RECS, &opts, &jerr) != NATS_OK)
		vs_log(b->log, VS_LOG_WARN, "cluster: removing client %s's PUBRECs from stream %s",
		       j->id, VS_CJS_RECS); /* they go with the stream's age limit */
}

/* The highest stamp (msg.h) of the messages s holds (locked) that it took as published while
 * a copy went into the stream, 0: none. */
static uint64_t top_stamp(struct vs_session *s)
{
	uint64_t top = 0;
	for (struct vs_ring *r = &s->inflight; r; r = r == &s->inflight ? &s->queue : NULL)
		for (uint32_t i = 0; i < r->count; i++) {
			const struct vs_qentry *e = vs_ring_at(r, i);
			uint64_t st =
			    e->msg && !e->msg->sseq
				? atomic_load_explicit(&e->msg->stamp, memory_order_relaxed)
				: 0;
			top = st > top ? st : top;
		}
	return top;
}

/*
 * What j's key says of session s (locked): its settings and subscriptions, and (offline, held
 * messages few enough, the whole of it at most room bytes) its whole state as a hand-over
 * carries it, with *floor then the stream sequence after the one this node had routed up to.
 * Everything of the stream up to there that the session wanted is in the state or was
 * acknowledged by its client, so a node that rebuilds it should this one die reads the stream
 * only after it, and gives its client each message once, an unfinished QoS 2 exchange in
 * either direction included (rebuild()). Without the whole state *floor stays j's: where this
 * node stood in the stream when the session went offline (at least once). Returns 0 or a
 * negative error.
 *
 * A message the session took as published (No Local, cluster_durable_sessions false) has its
 * copy in the stream at a sequence unknown here: the whole state goes only when this node has
 * received its copy back and routed the stream that far (back_stamp and back_sseq, own_back()),
 * else a rebuild would give it twice, from the key and from the stream. Otherwise *need says
 * the stamp to wait for, and the key gets the settings and subscriptions.
 */
static int export_for_key(struct vs_broker *b, const struct job *j, struct vs_session *s,
			  int64_t room, uint64_t back_stamp, uint64_t back_sseq,
			  struct vs_store_buf *recs, uint64_t *floor, bool *whole, uint64_t *need)
{
	struct vs_cjs *cjs = vs_cluster_cjs(b->cluster);
	*floor = j->floor;
	*whole = false;
	*need = 0;
	if (j->kind == JOB_CHECK && !s->connected) {
		/* Restored at start-up, offline (a key written before, when it went offline,
		 * stays: note()). Offline sessions do not hold this node's floor back: the
		 * stream is to be read from below what it holds, and what reaches it from now. */
		uint64_t low = vs_cjs_ready(cjs) ? vs_cjs_taken(cjs) + 1 : 0;
		for (struct vs_ring *r = &s->inflight; r; r = r == &s->inflight ? &s->queue : NULL)
			for (uint32_t i = 0; i < r->count; i++) {
				const struct vs_qentry *e = vs_ring_at(r, i);
				if (e->msg && e->msg->sseq && (!low || e->msg->sseq < low))
					low = e->msg->sseq;
			}
		*floor = low;
		return vs_bp_session_export(b, s, false, recs);
	}
	if (j->floor && !s->connected && vs_cjs_ready(cjs) &&
	    s->queue.count + s->inflight.count <= WHOLE_MAX) {
		uint64_t routed = vs_cjs_taken(cjs), top = top_stamp(s);
		if (top && (top > back_stamp || routed < back_sseq))
			*need = top;
		else if (vs_bp_session_export(b, s, true, recs) == 0 &&
			 (int64_t)recs->len <= room) {
			*floor = routed + 1;
			*whole = true;
			return 0;
		}
		vs_store_buf_fini(recs);
		vs_store_buf_init(recs);
	}
	return vs_bp_session_export(b, s, false, recs);
}

/* Waits, at most until until_ms, until this node's consumer has received back its own message
 * numbered stamp and this node has routed the stream up to where it came: *sseq then a stream
 * sequence at or after that copy's, up to which this node has routed the stream. */
static bool own_back(struct vs_cjs *cjs, uint64_t stamp, int64_t until_ms, uint64_t *sseq)
{
	uint64_t at = 0;
	for (;;) {
		if (!at && !vs_cjs_own_back(cjs, stamp, &at))
			at = 0;
		if (at && vs_cjs_taken(cjs) >= at) {
			*sseq = at;
			return true;
		}
		if (vs_now_ms() >= until_ms)
			return false;
		nats_Sleep(GIVE_POLL_MS);
	}
}

/* JOB_NOTE and JOB_CHECK: the key of a session this node has. */
static void note(struct vs_cluster_sessions *cs, const struct job *j)
{
	struct vs_broker *b = cs->b;
	const char *me = vs_cluster_node(b);
	/* Stopping without NATS: each write would wait out its timeout, and the stop with it
	 * (the keys keep what they said: a rebuild elsewhere reads from an earlier floor). */
	if (atomic_load(&b->stopping) && !vs_cluster_connected(b))
		return;
	natsConnection *nc = vs_cluster_nc(b);
	int64_t maxp = nc ? natsConnection_GetMaxPayload(nc) : 0;
	int64_t room = maxp > 0 ? maxp - 1024 - (int64_t)strlen(me) - 24 : (1 << 20) - 1024;
	struct vs_store_buf recs;
	uint64_t floor, need, back_stamp = 0, back_sseq = 0;
	bool whole, ours, gone;
	int64_t until = vs_now_ms() + GIVE_WAIT_MS;
	for (;;) {
		vs_store_buf_init(&recs);
		/* The registry's lock only to find it: every CONNECT waits for that lock, and an
		 * export of a whole state can take a while. */
		pthread_mutex_lock(&b->reg_lock);
		struct vs_session *s = vs_registry_get(&b->sessions, j->id, j->idlen);
		if (s)
			vs_session_ref(s);
		pthread_mutex_unlock(&b->reg_lock);
		ours = whole = false;
		gone = !s;
		need = 0;
		floor = j->floor;
		if (s) {
			pthread_mutex_lock(&s->lock);
			/* A check is for sessions restored from the store: one connected here by
			 * now is this node's (its claim closed any other connection). */
			ours = !s->ended && !s->bridge && s->expiry > 0 &&
			       !(j->kind == JOB_CHECK && s->connected) &&
			       export_for_key(b, j, s, room, back_stamp, back_sseq, &recs, &floor,
					      &whole, &need) == 0;
			gone = !s->bridge && (s->ended || s->expiry == 0);
			pthread_mutex_unlock(&s->lock);
			vs_session_unref(s);
		}
		/* Its whole state once this node has its own messages' copies back (at most
		 * GIVE_WAIT_MS; then its subscriptions: at least once). */
		if (!ours || !need ||
		    !own_back(vs_cluster_cjs(b->cluster), need, until, &back_sseq))
			break;
		back_stamp = need;
		vs_store_buf_fini(&recs);
	}
	if (gone && j->kind == JOB_NOTE && !j->keep) {
		vs_store_buf_fini(&recs);
		forget(cs, j);
		return;
	}
	size_t vlen = 0;
	uint8_t *v = ours ? vs_owner_encode(me, floor, recs.data, recs.len, &vlen) : NULL;
	vs_store_buf_fini(&recs);
	if (!v)
		return; /* not this node's to write (a bridge's, or an export that failed) */
	if (maxp > 0 && (int64_t)vlen > maxp - 1024) {
		/* Too many subscriptions for one NATS message: the key keeps what it said (a
		 * rebuild elsewhere gets the subscriptions last recorded, docs/cluster.md). */
		free(v);
		return;
	}
	char key[VS_OWNER_KEY_MAX];
	vs_owner_key((const uint8_t *)j->id, j->idlen, key);
	kvEntry *e = NULL;
	uint64_t rev = 0;
	natsStatus st = kvStore_Get(&e, cs->kv, key);
	if (st == NATS_NOT_FOUND) {
		st = kvStore_Create(&rev, cs->kv, key, v, (int)vlen);
	} else if (st == NATS_OK) {
		struct owned o;
		read_entry(e, &o);
		bool mine = strcmp(o.owner, me) == 0;
		/* A key this node wrote when the session went offline says what a rebuild
		 * needs (its whole state, or where to read the stream from): kept. */
		if (j->kind == JOB_CHECK && mine && o.v.floor)
			st = NATS_OK;
		else if (!o.owner[0] || mine)
			st = kvStore_Update(&rev, cs->kv, key, v, (int)vlen, kvEntry_Revision(e));
		else if (j->kind == JOB_CHECK) {
			/* Restored here, taken by another node while this one was away. */
			vs_log(b->log, VS_LOG_NOTICE,
			       "cluster: client %s's session is node %s's now: it ends here", j->id,
			       o.owner);
			vs_cluster_session_drop(b, j->id, j->idlen);
		}
		kvEntry_Destroy(e);
	}
	if (st != NATS_OK)
		vs_log(b->log, VS_LOG_WARN, "cluster: writing client %s's key in bucket %s: %s",
		       j->id, VS_SESSIONS_BUCKET, natsStatus_GetText(st));
	else if (whole)
		vs_log(b->log, VS_LOG_DEBUG,
		       "cluster: client %s's key in bucket %s holds its whole state (%zu bytes), "
		       "stream %s routed to it up to %llu",
		       j->id, VS_SESSIONS_BUCKET, vlen, VS_CJS_STREAM,
		       (unsigned long long)(floor - 1));
	free(v);
}

/*
 * On the session thread: s (from another node, or rebuilt) into the registry and the trie at
 * once, so that what is published from now on reaches it; storing it, and ending a copy of it
 * this node had (*old, one reference: one kept when it was asked too late, or left by a crash
 * before its hand-over was stored), are its connection's worker's (arrived()). Returns s, or
 * NULL when a connection attached here meanwhile (without asking: no NATS then): what s held
 * then joins that connection's session.
 */
static struct vs_session *adopt(struct vs_cluster_sessions *cs, struct vs_session *s,
				struct vs_session **old)
{
	struct vs_broker *b = cs->b;
	*old = NULL;
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *cur = vs_registry_get(&b->sessions, s->client_id, s->id_len);
	if (cur) {
		pthread_mutex_lock(&cur->lock);
		bool busy = cur->connected || cur->bridge;
		uint32_t same;
		if (busy && !cur->bridge && vs_cs_merge(cur, s, 0, &same, NULL) && cur->connected &&
		    !cur->notified) {
			cur->notified = true;
			struct vs_mail m = {.type = VS_MAIL_DRAIN, .session = vs_session_ref(cur)};
			vs_worker_post_now(cur->owner, &m);
		}
		pthread_mutex_unlock(&cur->lock);
		if (busy) {
			pthread_mutex_unlock(&b->reg_lock);
			vs_log(b->log, VS_LOG_NOTICE,
			       "cluster: session of client %s came from another node while one is "
			       "connected here: its messages join the one here",
			       s->client_id);
			s->ended = true;
			vs_session_unref(s);
			return NULL;
		}
		vs_registry_del(&b->sessions, s->client_id, s->id_len);
		*old = cur; /* the registry's reference */
	}
	if (vs_registry_add(&b->sessions, s) < 0) {
		pthread_mutex_unlock(&b->reg_lock);
		vs_log(b->log, VS_LOG_ERR, "cluster: no memory for client %s's session",
		       s->client_id);
		s->ended = true;
		vs_session_unref(s);
		return NULL;
	}
	vs_broker_sessions_changed(b);
	pthread_mutex_unlock(&b->reg_lock);
	vs_bp_session_subscribe(b, s);
	return s;
}

/* The session that came (or none) is adopted; a copy placed for it (take()) joins it, and
 * when none came goes: the client starts anew. */
static void answer(struct vs_cluster_sessions *cs, struct job *j, struct vs_session *s,
		   uint64_t from, struct vs_session *placed, uint64_t cut)
{
	struct vs_broker *b = cs->b;
	struct vs_session *old = NULL;
	/* What came with it, for the worker's gauges (what reaches it live is counted by the
	 * workers that deliver it). */
	uint32_t queued = s ? s->queue.count : 0, inflight = s ? s->inflight.count : 0;
	if (s && cut)
		vs_cs_skip_came(cs, s, cut);
	if (s) {
		s = adopt(cs, s, &old); /* the placed copy, still in the registry, is old */
	} else if (placed) {
		pthread_mutex_lock(&b->reg_lock);
		pthread_mutex_lock(&placed->lock);
		bool ours = !placed->connected && !placed->bridge &&
			    vs_registry_get(&b->sessions, j->id, j->idlen) == placed;
		pthread_mutex_unlock(&placed->lock);
		if (ours) {
			vs_registry_del(&b->sessions, j->id, j->idlen);
			vs_broker_sessions_changed(b);
			old = placed; /* the registry's reference: ended by the worker */
		}
		pthread_mutex_unlock(&b->reg_lock);
	}
	bool joins = s && placed && old == placed; /* the cut applies to the placed copy only */
	if (placed)
		vs_session_unref(placed);
	/* A session handed over: what the old node had not routed to it yet, from the stream
	 * (little, unless that node was far behind: take()). */
	/* A rebuild shares the window with the others of a storm; a hand-over's few messages
	 * are read alone (it would wait behind the storm, and clear its window). */
	uint32_t n = s && from	? vs_cs_replay(cs, s, from, true)
		     : s && cut ? vs_cs_replay(cs, s, cut + 1, false)
				: 0;
	if (s && (from || n)) {
		/* Those its client had acknowledged with PUBREC are in flight now, their PUBREL
		 * due (cluster_replay.c). */
		pthread_mutex_lock(&s->lock);
		uint32_t now_inflight = s->inflight.count;
		pthread_mutex_unlock(&s->lock);
		vs_log(cs->b->log, VS_LOG_NOTICE,
		       "cluster: client %s's session got %u message(s) from stream %s, and %u "
		       "PUBREL(s) of those its client had received",
		       j->id, n, VS_CJS_STREAM, now_inflight - inflight);
		inflight = now_inflight;
	}
	struct vs_mail m = {.type = VS_MAIL_ROAMED,
			    .session = s ? vs_session_ref(s) : NULL,
			    .other = old,
			    .slot = j->slot,
			    .conn_id = j->conn_id,
			    .reply_slot = queued + n,
			    .reply_conn_id = inflight,
			    .upto = joins ? cut : 0,
			    .share = strdup(j->id)}; /* its client id (NULL: no memory) */
	vs_worker_post_now(&cs->b->workers[j->worker], &m);
	free(j);
}

static natsStatus bind_bucket(struct vs_cluster_sessions *cs)
{
	return vs_cluster_bucket(
	    cs->b, &cs->kv, VS_SESSIONS_BUCKET,
	    "Viesti: the node that has each client id's session (docs/cluster.md)", 0);
}

/* Once the bucket is there: every session restored from the store is checked against it. */
static void check_restored(struct vs_cluster_sessions *cs)
{
	struct vs_broker *b = cs->b;
	pthread_mutex_lock(&b->reg_lock);
	size_t it = 0;
	struct vs_session *s;
	while (vs_registry_next(&b->sessions, &it, &s)) {
		struct job *j = vs_cs_new_job(JOB_CHECK, s->client_id, s->id_len);
		if (j)
			push(cs, j);
	}
	pthread_mutex_unlock(&b->reg_lock);
}

/* Waits on c (m held) for at most ms milliseconds. */
void vs_cs_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, long ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += ms * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(c, m, &until);
}

static struct job *pop(struct shard *cs)
{
	pthread_mutex_lock(&cs->lock);
	if (!cs->head && !cs->notes)
		vs_cs_wait_ms(&cs->cond, &cs->lock, 200);
	struct job *j = cs->head;
	if (j) {
		if (!(cs->head = j->next))
			cs->tail = &cs->head;
		cs->n_jobs--;
	} else if ((j = cs->notes)) {
		if (!(cs->notes = j->next))
			cs->notes_tail = &cs->notes;
		cs->n_notes--;
		if (j->kind == JOB_NOTE)
			vs_map_del(&cs->queued_notes, j->id, j->idlen);
	}
	pthread_mutex_unlock(&cs->lock);
	return j;
}

/* Binds the buckets, every 500 ms until it can (shard 0's thread). */
static void bind_all(struct vs_cluster_sessions *cs)
{
	if (atomic_load(&cs->ready) || vs_now_ms() < cs->bind_ms)
		return;
	if (bind_bucket(cs) != NATS_OK) {
		kvStore_Destroy(cs->kv);
		cs->kv = NULL;
		cs->bind_ms = vs_now_ms() + 500;
		atomic_store(&cs->tried, true); /* CONNECTs decide alone meanwhile */
		return;
	}
	if (js_KeyValue(&cs->nodes, vs_cluster_js(cs->b), VS_CJS_NODES_BUCKET) != NATS_OK)
		cs->nodes = NULL; /* every owner taken for alive (alive()) */
	atomic_store(&cs->ready, true);
	atomic_store(&cs->tried, true);
	cs->check_ms = vs_now_ms() + CHECK_WAIT_MS;
	vs_log(cs->b->log, VS_LOG_NOTICE,
	       "cluster: node %s sessions ready (bucket %s): persistent sessions roam from now on",
	       vs_cluster_node(cs->b), VS_SESSIONS_BUCKET);
}

static void *run(void *arg)
{
	struct shard *sh = arg;
	struct vs_cluster_sessions *cs = sh->cs;
	while (!atomic_load(&cs->stop)) {
		/* Shard 0 binds for all; between its attempts it answers the CONNECTs that waited
		 * for its first (pop() waits at most 200 ms). */
		if (sh->idx == 0)
			bind_all(cs);
		/* The restored sessions' keys say where to read the stream from, which this node
		 * knows once its consumer is bound (export_for_key()): bound after the bucket when
		 * NATS was away at start-up. */
		if (sh->idx == 0 && cs->check_ms &&
		    (vs_cjs_ready(vs_cluster_cjs(cs->b->cluster)) || vs_now_ms() >= cs->check_ms)) {
			cs->check_ms = 0;
			check_restored(cs);
		}
		if (sh->idx == 0 && atomic_load(&cs->ready))
			write_floor(cs);
		if (sh->idx == 0 && pthread_mutex_trylock(&cs->window.lock) == 0) {
			if (cs->window.n && vs_now_ms() - cs->window.used_ms > WINDOW_KEEP_MS)
				vs_cs_window_clear(&cs->window); /* the memory goes back */
			pthread_mutex_unlock(&cs->window.lock);
		}
		struct job *j = pop(sh);
		if (!j)
			continue;
		if (j->kind == JOB_CONNECT) {
			/* A CONNECT made while shard 0 first binds the buckets waits for that
			 * (vs_cluster_session_ask); when it could not, this node decides alone. */
			while (!atomic_load(&cs->tried) && !atomic_load(&cs->stop))
				nats_Sleep(5);
			/* Stopping: its workers may take no more mail, so nothing is moved. */
			uint64_t from = 0;
			struct vs_session *placed = NULL;
			uint64_t cut = 0;
			struct vs_session *s =
			    atomic_load(&cs->b->stopping) || !atomic_load(&cs->ready)
				? NULL
				: take(cs, j, &from, &placed, &cut);
			answer(cs, j, s, from, placed, cut);
		} else {
			note(cs, j);
			free(j);
		}
	}
	return NULL;
}

/* ---- Arrival ------------------------------------------------------------------------------ */

/* On the connection's worker: a session adopted by the session thread is stored here, after
 * the end of the copy this node had, whose messages join it. */
static void finish(struct vs_worker *w, struct vs_session *s, struct vs_session *old,
		   uint32_t queued, uint32_t inflight, uint64_t upto)
{
	uint32_t n = 0, same = 0;
	if (old) {
		pthread_mutex_lock(&old->lock);
		vs_stat_gauge(&w->stats.queued, -(int64_t)old->queue.count);
		vs_stat_gauge(&w->stats.inflight, -(int64_t)old->inflight.count);
		pthread_mutex_unlock(&old->lock);
		if (s) {
			pthread_mutex_lock(&s->lock);
			n = vs_cs_merge(s, old, upto, &same, vs_cluster_sessions_of(w->b));
			pthread_mutex_unlock(&s->lock);
		}
		if (n || same)
			vs_log(w->b->log, VS_LOG_NOTICE,
			       "cluster: client %s's session had a copy here: %u message(s) of it "
			       "join the one that came (%u it had already)",
			       old->client_id, n, same);
		pthread_mutex_lock(&old->lock);
		vs_msg_unref(old->will); /* the session goes on */
		old->will = NULL;
		pthread_mutex_unlock(&old->lock);
		/* Its SESSION_DEL before the new one's records: replay goes by client id. */
		vs_router_end_session(w, old);
		vs_session_unref(old);
	}
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (!s->ended) {
		vs_bp_session_record(w, s);
		vs_stat_gauge(&w->stats.queued, queued + n);
		vs_stat_gauge(&w->stats.inflight, inflight);
	}
	pthread_mutex_unlock(&s->lock);
}

void vs_cluster_session_arrived(struct vs_worker *w, const struct vs_mail *m)
{
	struct vs_conn *c = vs_worker_conn(w, m->slot, m->conn_id);
	if (c && (!c->connecting || c->connecting->step != VS_CS_ROAM))
		c = NULL;
	w->cur = c; /* its CONNACK waits for the session's records */
	finish(w, m->session, m->other, m->reply_slot, (uint32_t)m->reply_conn_id, m->upto);
	if (m->session)
		vs_session_unref(m->session); /* the mail's */
	w->cur = NULL;
	/* Its client went before the answer: the note for the id that a CONNECT kept from
	 * removing the key (push()) is no longer kept, and this one says what the key is to be
	 * (the session that came, offline here; or none, and the key goes). */
	if (!c && m->share)
		vs_cluster_session_note(w->b, m->share, strlen(m->share), true);
	free(m->share);
	/* The session's subjects, new here, reach the other nodes before its CONNACK, as a
	 * SUBACK's do (subscribe.c): what they route after it goes through JetStream. */
	if (c && !vs_hold_connect(c, vs_cluster_barrier_ticket(w->b)))
		vs_cluster_session_resume(c);
}

void vs_cluster_session_resume(struct vs_conn *c)
{
	c->connecting->step = VS_CS_NONE;
	c->parked = false;
	struct vs_conn *outer = c->w->cur;
	c->w->cur = c; /* its CONNACK waits for the session's records */
	enum vs_handled h = vs_connect_resume(c);
	c->w->cur = outer;
	if (h == VS_GO_ON && !c->parked)
		vs_conn_unpark(c);
}

/* ---- Start and stop ----------------------------------------------------------------------- */

struct vs_cluster_sessions *vs_cluster_sessions_start(struct vs_broker *b)
{
	struct vs_cluster_sessions *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->b = b;
	pthread_mutex_init(&cs->slow_lock, NULL);
	pthread_mutex_init(&cs->skip_lock, NULL);
	pthread_mutex_init(&cs->window.lock, NULL);
	pthread_mutex_init(&cs->give_lock, NULL);
	pthread_cond_init(&cs->give_cond, NULL);
	vs_cs_window_clear(&cs->window);
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &cs->shards[i];
		sh->cs = cs;
		sh->idx = i;
		sh->tail = &sh->head;
		sh->notes_tail = &sh->notes;
		pthread_mutex_init(&sh->lock, NULL);
		pthread_cond_init(&sh->cond, NULL);
	}
	const char *node = vs_cluster_node(b);
	char subject[TOKEN_MAX + 8];
	ssize_t n = vs_cluster_token((const uint8_t *)node, strlen(node), cs->tok, sizeof(cs->tok));
	snprintf(subject, sizeof(subject), SUBJECT "%s", cs->tok);
	if (n <= 0) {
		vs_cluster_sessions_free(cs);
		return NULL;
	}
	/* The threads first: a failure before the subscription leaves no callback behind. */
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &cs->shards[i];
		if (pthread_create(&sh->thread, NULL, run, sh) != 0) {
			vs_cluster_sessions_free(cs);
			return NULL;
		}
		sh->started = true;
	}
	if (pthread_create(&cs->giver, NULL, vs_cs_giver, cs) != 0) {
		vs_cluster_sessions_free(cs);
		return NULL;
	}
	cs->giver_started = true;
	if (natsConnection_Subscribe(&cs->sub, vs_cluster_nc(b), subject, vs_cs_on_request, cs) !=
	    NATS_OK) {
		vs_cluster_sessions_free(cs);
		return NULL;
	}
	return cs;
}

void vs_cluster_sessions_stopping(struct vs_cluster_sessions *cs)
{
	if (!cs)
		return;
	atomic_store(&cs->stop, true);
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &cs->shards[i];
		pthread_mutex_lock(&sh->lock);
		pthread_cond_signal(&sh->cond);
		pthread_mutex_unlock(&sh->lock);
	}
	pthread_mutex_lock(&cs->give_lock);
	pthread_cond_signal(&cs->give_cond);
	pthread_mutex_unlock(&cs->give_lock);
}

void vs_cluster_sessions_stop(struct vs_cluster_sessions *cs)
{
	if (!cs)
		return;
	atomic_store(&cs->stop, true);
	if (cs->sub)
		natsSubscription_Unsubscribe(cs->sub);
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &cs->shards[i];
		if (!sh->started)
			continue;
		pthread_mutex_lock(&sh->lock);
		pthread_cond_signal(&sh->cond);
		pthread_mutex_unlock(&sh->lock);
		pthread_join(sh->thread, NULL);
		sh->started = false;
	}
	if (cs->giver_started) {
		pthread_mutex_lock(&cs->give_lock);
		pthread_cond_signal(&cs->give_cond);
		pthread_mutex_unlock(&cs->give_lock);
		pthread_join(cs->giver, NULL);
		cs->giver_started = false;
	}
}

void vs_cluster_sessions_close(struct vs_cluster_sessions *cs)
{
	if (!cs)
		return;
	vs_cluster_sessions_stop(cs);
	natsSubscription_Destroy(cs->sub);
	kvStore_Destroy(cs->kv);
	kvStore_Destroy(cs->nodes);
	cs->sub = NULL;
	cs->kv = cs->nodes = NULL;
	/* Requests still waiting are the library's messages too: freed while it is open (the
	 * asking node's wait runs out). vs_cs_on_request adds none once stop is set. */
	for (int i = 0; i < SHARDS; i++)
		for (struct job *j = cs->shards[i].head; j; j = j->next) {
			natsMsg_Destroy(j->req);
			j->req = NULL;
		}
	pthread_mutex_lock(&cs->give_lock);
	struct job *gives = cs->gives;
	cs->gives = NULL;
	pthread_mutex_unlock(&cs->give_lock);
	for (struct job *j = gives, *next; j; j = next) {
		next = j->next;
		natsMsg_Destroy(j->req);
		free(j);
	}
}

void vs_cluster_sessions_free(struct vs_cluster_sessions *cs)
{
	if (!cs)
		return;
	vs_cluster_sessions_close(cs);
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &cs->shards[i];
		for (struct job *j = sh->head, *next; j; j = next) {
			next = j->next;
			free(j); /* its request went in vs_cluster_sessions_close */
		}
		for (struct job *j = sh->notes, *next; j; j = next) {
			next = j->next;
			free(j);
		}
		vs_map_fini(&sh->queued_notes);
		pthread_cond_destroy(&sh->cond);
		pthread_mutex_destroy(&sh->lock);
	}
	vs_map_fini(&cs->slow);
	pthread_mutex_destroy(&cs->slow_lock);
	for (uint32_t i = 0; i < cs->n_skips; i++) {
		vs_session_unref(cs->skips[i].s);
		vs_map_fini(&cs->skips[i].also);
	}
	free(cs->skips);
	pthread_mutex_destroy(&cs->skip_lock);
	vs_cs_window_clear(&cs->window);
	free(cs->window.v);
	pthread_mutex_destroy(&cs->window.lock);
	pthread_cond_destroy(&cs->give_cond);
	pthread_mutex_destroy(&cs->give_lock);
	free(cs);
}
