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

#define TOKEN_MAX      (3 * VS_CLUSTER_NODE_MAX + 1)
#define SUBJECT	       "vs.h."
#define WAIT_MS	       5000	    /* for each chunk of an answer */
#define ANSWER_MS      60000	    /* for a whole answer */
#define ANSWER_MAX     (1ull << 30) /* bytes of an answer */
#define REPLAY_MAX     100000	    /* messages a rebuild reads at most when queues have no limit */
#define CHUNK_HEAD     17 /* kind, chunk number, chunk count, routed (the giver; big-endian) */
#define HOPS_MAX       4 /* a handover follows a connection from worker to worker at most so often */
#define FLOOR_EVERY_MS 1000  /* this node's floor for its connected sessions (write_floor) */
#define REPLAY_MS      10000 /* reading the stream for a rebuilt session takes at most this long */
#define CLOSE_MS       1000  /* the owner closing the client's connection there ('C') */
#define SETTLE_MS      2500  /* the other nodes learning a placed session's subjects */
/* A request: kind, the length of the asking node's id, that id, a deadline and a stream
 * sequence (8 bytes each), the client id. */
#define REQ_HEAD       18
#define GIVE_WAIT_MS   1000 /* the owner waiting for its own routing before a hand-over */
#define GIVE_POLL_MS   5
#define ROUTED_UNKNOWN UINT64_MAX /* in an answer: the owner's JetStream is not ready */

/* What the session thread does for one client id. */
enum job_kind {
	JOB_CONNECT, /* a CONNECT waits: take the id, fetch its session */
	JOB_NOTE,    /* write the session's subscriptions (and where the stream stood when it
		      * went offline) into its key, while this node owns it */
	JOB_CHECK,   /* at start-up: a session restored here that another node owns ends here */
	JOB_GIVE,    /* another node asks for a session: wait until this node has routed the
		      * stream up to where it says, then hand the session over (the giver) */
};

struct job {
	struct job *next;
	uint8_t kind; /* enum job_kind */
	bool clean;   /* JOB_CONNECT: Clean Start */
	int worker;   /* JOB_CONNECT: the connection's */
	uint32_t slot;
	uint64_t conn_id;
	uint64_t floor;	  /* JOB_NOTE: vs_cjs_floor() when it went offline; 0 while connected.
			   * JOB_GIVE: the stream sequence to have routed before the hand-over */
	void *req;	  /* JOB_GIVE: the request (natsMsg) */
	int64_t until_ms; /* JOB_GIVE: how long it waits at most (monotonic) */
	size_t idlen;
	char id[]; /* NUL-terminated */
};

/* One session thread and its queues. A client id's jobs all go to one shard (by its hash),
 * in order; a slow owner holds up one shard's CONNECTs, not every one's. */
struct shard {
	struct vs_cluster_sessions *cs;
	int idx;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* the queues: CONNECTs first, they wait */
	pthread_cond_t cond;
	struct job *head, **tail;
	struct job *notes, **notes_tail;
	uint32_t n_jobs, n_notes;
	struct vs_map queued_notes; /* client id -> its JOB_NOTE waiting in notes */
};

enum { SHARDS = 4 };

/*
 * The part of the stream read for rebuilt sessions, kept a while: when a node dies its clients
 * come back together, each to be rebuilt from about the same sequence, and one read of the
 * stream serves them all (reading it once per session made a reconnect storm last minutes).
 * Decoded QoS 1/2 messages in stream order, of sequences lo..hi; at most REPLAY_MAX messages
 * and WINDOW_BYTES of payload; dropped WINDOW_KEEP_MS after its last use.
 */
struct wmsg {
	uint64_t seq;
	struct vs_msg *msg; /* one reference */
	char *topic;	    /* msg's, NUL-terminated (vs_topic_match) */
};

struct window {
	pthread_mutex_t lock; /* held while reading and matching: a second rebuild waits for the
			       * first's read and then uses it */
	uint64_t lo, hi;      /* hi < lo: empty */
	struct wmsg *v;
	uint32_t n, cap;
	size_t bytes;
	int64_t used_ms;
};

struct vs_cluster_sessions {
	struct vs_broker *b;
	char tok[TOKEN_MAX]; /* this node's id as a token */
	kvStore *kv;	     /* set by shard 0 before ready */
	kvStore *nodes;	     /* leases (cluster_js.h), bound with kv, or NULL */
	atomic_bool ready;   /* the buckets are bound: CONNECTs ask */
	natsSubscription *sub;
	atomic_bool stop;
	atomic_uint_fast64_t taken, given, rebuilt; /* for $SYS and /metrics */
	int64_t floor_next_ms;			    /* write_floor (shard 0's thread) */
	uint64_t floor_written;			    /* what it wrote last */
	pthread_mutex_t slow_lock;
	struct vs_map slow; /* node id -> until when (ms, as a pointer) it is not asked again */
	/* Sessions handed over to this node that skip the stream's messages up to cut, until this
	 * node has routed the stream that far itself (vs_cluster_session_skips). */
	struct window window; /* replay() */
	/* Requests for sessions waiting until this node has routed the stream far enough, on a
	 * thread of their own (a session thread may itself wait for the asking node). */
	pthread_t giver;
	bool giver_started;
	pthread_mutex_t give_lock;
	pthread_cond_t give_cond;
	struct job *gives;
	pthread_mutex_t skip_lock;
	struct skip {
		struct vs_session *s; /* one reference */
		uint64_t cut;
		struct vs_map also; /* more stream sequences it has: taken from a copy of it that
				     * was in the trie with it (merge()) */
		uint64_t also_max;
	} * skips;
	uint32_t n_skips, cap_skips;
	struct shard shards[SHARDS];
};

enum { JOBS_MAX = 100000 };

static void add_skip(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t cut);
static void *giver(void *arg);
static void post_give(struct vs_cluster_sessions *cs, const char *client_id, size_t idlen,
		      char kind, natsMsg *req);

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

/* Queues j (CONNECTs ahead of notes). Returns false (j freed) when the queue is full. */
static bool push(struct vs_cluster_sessions *cs, struct job *j)
{
	bool connect = j->kind == JOB_CONNECT;
	struct shard *sh = &cs->shards[vs_hash64(0x53484152u, j->id, j->idlen) % SHARDS];
	pthread_mutex_lock(&sh->lock);
	/* A note reads the session when it runs: one waiting for this client id serves a second
	 * (a client sending SUBSCRIBE after SUBSCRIBE costs one key write per turn of the thread,
	 * not one per packet, each of all its subscriptions). */
	struct job *waiting =
	    j->kind == JOB_NOTE ? vs_map_get(&sh->queued_notes, j->id, j->idlen) : NULL;
	if (waiting) {
		waiting->floor = j->floor; /* the latest: offline (where the stream stood) or not */
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

static struct job *new_job(uint8_t kind, const char *id, size_t idlen)
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
	struct job *j = new_job(JOB_NOTE, client_id, idlen);
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
	if (!cs || !atomic_load(&cs->ready))
		return false; /* no NATS yet: this node decides alone */
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
	if (!push(cs, j))
		return false;
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
		if (n < CHUNK_HEAD || get_be32(d + 1) != got || get_be32(d + 5) == 0 ||
		    (got && get_be32(d + 5) != total) ||
		    (uint64_t)get_be32(d + 5) * (uint64_t)(n - CHUNK_HEAD) > ANSWER_MAX) {
			why = "a malformed answer";
		} else if (d[0] == 'N' && got == 0) {
			total = 0; /* it has none (ended, expired) */
		} else if (d[0] == 'B' && got == 0) {
			why = "it could not let it go (connected there again?)";
		} else if (d[0] != 'S' || len + (size_t)n > ANSWER_MAX) {
			why = "a malformed answer";
		} else {
			total = get_be32(d + 5);
			if (got == 0)
				*routed = (uint64_t)get_be32(d + 9) << 32 | get_be32(d + 13);
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
		*out = vs_bp_session_import(b, j->id, j->idlen, buf, len, &why);
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
	put_be32(req + 2 + melen, (uint32_t)(deadline >> 32));
	put_be32(req + 6 + melen, (uint32_t)deadline);
	put_be32(req + 10 + melen, (uint32_t)(upto >> 32));
	put_be32(req + 14 + melen, (uint32_t)upto);
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

#define WINDOW_BYTES   (64u << 20)
#define WINDOW_KEEP_MS 30000

static void window_clear(struct window *w)
{
	for (uint32_t i = 0; i < w->n; i++) {
		vs_msg_unref(w->v[i].msg);
		free(w->v[i].topic);
	}
	w->n = 0;
	w->bytes = 0;
	w->lo = 1;
	w->hi = 0;
}

/* Appends the stream's messages from sequence from up to last (or until a limit) to w, whose
 * hi is from - 1 (or which is empty: lo becomes from). */
static void window_read(struct vs_broker *b, struct window *w, uint64_t from, uint64_t last,
			int64_t until)
{
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = VS_CJS_STREAM;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = from;
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;
	if (js_SubscribeSync(&sub, vs_cluster_js(b), VS_CJS_SUBJECTS, NULL, &so, &jerr) != NATS_OK)
		return;
	if (!w->n && w->hi < w->lo)
		w->lo = from;
	uint64_t seq = from - 1;
	int64_t left;
	while (seq < last && w->n < REPLAY_MAX && w->bytes < WINDOW_BYTES &&
	       (left = until - vs_now_ms()) > 0 && !atomic_load(&b->stopping)) {
		natsMsg *m = NULL;
		if (natsSubscription_NextMsg(&m, sub, left < WAIT_MS ? left : WAIT_MS) != NATS_OK)
			break;
		jsMsgMetaData *meta = NULL;
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK)
			seq = meta->Sequence.Stream;
		jsMsgMetaData_Destroy(meta);
		struct vs_cluster_frame f;
		const char *why;
		int len = natsMsg_GetDataLength(m);
		struct vs_buf origin = {(const uint8_t *)"", 0};
		struct vs_msg *msg = NULL;
		if (vs_cluster_frame_decode((const uint8_t *)natsMsg_GetData(m),
					    (size_t)(len > 0 ? len : 0), &f, &why) == 0 &&
		    f.publish.qos > 0)
			msg = vs_msg_new(&f.publish.topic, &f.publish, &origin, vs_now_ms());
		natsMsg_Destroy(m);
		w->hi = seq;
		if (!msg)
			continue;
		msg->remote = true;
		msg->sseq = seq; /* held as a live one is (cluster.c), and known to merge() */
		msg->held = &b->stream_held;
		char *topic = strndup((const char *)msg->topic.p, msg->topic.len);
		if (!topic || VS_VEC_GROW(w->v, w->cap, w->n + 1, 256) < 0) {
			free(topic);
			vs_msg_unref(msg);
			w->hi = seq - 1; /* read again next time */
			break;
		}
		w->v[w->n++] = (struct wmsg){seq, msg, topic};
		w->bytes += msg->payload.len + msg->topic.len;
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
}

/*
 * Queues in s the messages of w from sequence floor up to last that its subscriptions match
 * and that it does not hold already (came with it, or live meanwhile), while its queue has room
 * for them (max). Under s's lock throughout, as vs_deliver decides: then s skips what comes
 * live up to the last sequence covered, and only that (a read that stopped short must not make
 * it skip what nobody queued). Returns how many; *covered: the sequence covered up to.
 */
static uint32_t match(struct vs_cluster_sessions *cs, struct window *w, struct vs_session *s,
		      uint64_t floor, uint64_t last, int64_t max, uint64_t *covered)
{
	uint32_t n = 0, i = 0;
	while (i < w->n && w->v[i].seq < floor)
		i++;
	pthread_mutex_lock(&s->lock); /* in the trie: others deliver to it too */
	struct vs_map have;
	memset(&have, 0, sizeof(have));
	for (struct vs_ring *r = &s->inflight; r; r = r == &s->inflight ? &s->queue : NULL)
		for (uint32_t k = 0; k < r->count; k++) {
			const struct vs_qentry *e = vs_ring_at(r, k);
			if (e->msg && e->msg->sseq)
				vs_map_put(&have, &e->msg->sseq, sizeof(e->msg->sseq), (void *)1,
					   NULL); /* no memory: at least once */
		}
	/* Read up to here (w->hi), unless the queue filled first. */
	uint64_t upto = w->hi < last ? w->hi : last;
	for (; i < w->n && w->v[i].seq <= last; i++) {
		if (s->queue.count >= (uint64_t)max) {
			upto = w->v[i].seq - 1;
			break;
		}
		struct vs_msg *msg = w->v[i].msg;
		if (vs_map_get(&have, &w->v[i].seq, sizeof(w->v[i].seq)))
			continue;
		/* One copy per message, at the highest QoS its subscriptions grant, with their
		 * identifiers [MQTT-3.3.4-3..5]; shared subscriptions had theirs in the group. */
		uint32_t ids[16], n_ids = 0;
		int qos = -1;
		for (uint32_t k = 0; k < vs_session_n_subs(s); k++) {
			const struct vs_session_sub *x = &s->subs->v[k];
			if (strncmp(x->filter, "$share/", 7) == 0 ||
			    !vs_topic_match(x->filter, w->v[i].topic))
				continue;
			uint8_t q = x->qos < msg->qos ? x->qos : msg->qos;
			qos = q > qos ? q : qos;
			if (x->sub_id && n_ids < 16)
				ids[n_ids++] = x->sub_id;
		}
		if (qos < 0)
			continue;
		struct vs_qentry e = {
		    .msg = vs_msg_ref(msg), .qos = (uint8_t)qos, .seq = ++s->next_seq};
		if (vs_qentry_set_sub_ids(&e, ids, n_ids) < 0 || vs_ring_push(&s->queue, &e) < 0) {
			vs_qentry_fini(&e);
		} else {
			s->queued_bytes += msg->payload.len;
			n++;
		}
	}
	if (upto >= floor)
		add_skip(cs, s, upto);
	pthread_mutex_unlock(&s->lock);
	vs_map_fini(&have);
	*covered = upto;
	return n;
}

/* Queues in s (not yet anyone's but this thread's) the QoS 1/2 messages of the stream after
 * sequence floor - 1 that its subscriptions match: what reached the dead node for it, or was
 * on its way there, after it went offline. At most max_queued_messages, and for at most
 * REPLAY_MS. With shared, the window serves the sessions that come after it, and a part
 * beyond its limits is read for this session alone; without, all of it is. Returns how many. */
static uint32_t replay(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t floor,
		       bool shared)
{
	struct vs_broker *b = cs->b;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	if (js_GetStreamInfo(&si, vs_cluster_js(b), VS_CJS_STREAM, NULL, &jerr) != NATS_OK)
		return 0;
	uint64_t last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	if (!floor || last < floor || !vs_session_n_subs(s))
		return 0;
	int64_t max = b->conf->max_queued_messages;
	if (max <= 0)
		max = REPLAY_MAX;
	struct window *w = &cs->window;
	uint64_t covered = 0, from = floor;
	uint32_t n = 0;
	int64_t until = vs_now_ms() + REPLAY_MS;
	if (shared) {
		pthread_mutex_lock(&w->lock);
		until = vs_now_ms() + REPLAY_MS; /* from here: not spent waiting for the lock */
		/* Behind what it has (read again from floor), or stale: read anew. */
		if (floor < w->lo || floor > w->hi + 1 || vs_now_ms() - w->used_ms > WINDOW_KEEP_MS)
			window_clear(w);
		if (w->hi < last)
			window_read(b, w, w->hi >= w->lo ? w->hi + 1 : floor, last, until);
		w->used_ms = vs_now_ms();
		n = w->hi >= floor ? match(cs, w, s, floor, last, max, &covered) : 0;
		/* The window may have been read further for another session (its last is
		 * later), or not at all (hi 0 after a failed read): this one takes floor..last. */
		from = w->hi >= floor ? covered + 1 : floor;
		pthread_mutex_unlock(&w->lock);
	}
	struct window alone = {.lo = 1, .hi = 0};
	while (from <= last && s->queue.count < (uint64_t)max && vs_now_ms() < until &&
	       !atomic_load(&b->stopping)) {
		window_read(b, &alone, from, last, until);
		if (alone.hi < from)
			break; /* nothing came */
		n += match(cs, &alone, s, from, last, max, &covered);
		if (covered < alone.hi && covered < last)
			break; /* its queue is full */
		from = covered + 1;
		window_clear(&alone);
	}
	window_clear(&alone);
	free(alone.v);
	return n;
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
	struct vs_session *s =
	    o->v.recs_len ? vs_bp_session_import(b, j->id, j->idlen, o->v.recs, o->v.recs_len, &why)
			  : NULL;
	if (!s) {
		vs_log(b->log, VS_LOG_WARN,
		       "cluster: node %s, which had client %s's session, does not answer (%s in "
		       "bucket %s): it starts anew here",
		       o->owner, j->id, why, VS_SESSIONS_BUCKET);
		return NULL;
	}
	/* Read once the session is in the trie (run()): what comes after, it gets live. */
	*from = o->v.floor ? o->v.floor : node_floor(cs, o->owner);
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
	    vs_bp_session_import(b, j->id, j->idlen, o->v.recs, o->v.recs_len, &why);
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
 * only once it has routed the stream that far (give()); every one stored after reaches the
 * placed copy through the stream; the two copies meet (finish()) by stream sequence.
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

/* JOB_NOTE and JOB_CHECK: the key of a session this node has. */
static void note(struct vs_cluster_sessions *cs, const struct job *j)
{
	struct vs_broker *b = cs->b;
	const char *me = vs_cluster_node(b);
	/* Stopping without NATS: each write would wait out its timeout, and the stop with it
	 * (the keys keep what they said: a rebuild elsewhere reads from an earlier floor). */
	if (atomic_load(&b->stopping) && !vs_cluster_connected(b))
		return;
	struct vs_store_buf recs;
	vs_store_buf_init(&recs);
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, j->id, j->idlen);
	bool ours = false;
	if (s) {
		pthread_mutex_lock(&s->lock);
		/* A check is for sessions restored from the store: one connected here by now is
		 * this node's (its claim closed any other connection). */
		ours = !s->ended && !s->bridge && s->expiry > 0 &&
		       !(j->kind == JOB_CHECK && s->connected) &&
		       vs_bp_session_export(b, s, false, &recs) == 0;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	size_t vlen = 0;
	uint8_t *v = ours ? vs_owner_encode(me, j->floor, recs.data, recs.len, &vlen) : NULL;
	vs_store_buf_fini(&recs);
	if (!v)
		return; /* gone meanwhile (its key then names a node that has none: harmless) */
	natsConnection *nc = vs_cluster_nc(b);
	int64_t maxp = nc ? natsConnection_GetMaxPayload(nc) : 0;
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
		if (!o.owner[0] || strcmp(o.owner, me) == 0)
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
	free(v);
}

/* Moves what src holds for its client (queued, and sent but not acknowledged) to the end of
 * dst's queue, to be sent again: two copies of one session meet (at least once). Not moved:
 * a message from the stream that dst has too (the same stream sequence: both copies took it,
 * see take()), and with upto (dst came from a node that had routed the stream up to there to
 * it, and closed its connection first), one of the stream up to upto, which dst has or its
 * client acknowledged, and a QoS 0 one (at most once: dst may have had it). dst locked; src
 * ended or not yet anyone's. Returns how many moved; *same, how many were not. */
static void add_also(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t sseq,
		     uint64_t taken);

static uint32_t merge(struct vs_session *dst, struct vs_session *src, uint64_t upto, uint32_t *same,
		      struct vs_cluster_sessions *cs)
{
	struct vs_map have; /* the stream sequences dst holds */
	memset(&have, 0, sizeof(have));
	bool indexed = true;
	for (struct vs_ring *r = &dst->inflight; r; r = r == &dst->inflight ? &dst->queue : NULL)
		for (uint32_t i = 0; i < r->count; i++) {
			const struct vs_qentry *e = vs_ring_at(r, i);
			if (e->msg && e->msg->sseq &&
			    vs_map_put(&have, &e->msg->sseq, sizeof(e->msg->sseq), (void *)1,
				       NULL) < 0)
				indexed = false; /* no memory: at least once */
		}
	pthread_mutex_lock(&src->lock);
	uint32_t n = 0;
	*same = 0;
	uint64_t taken = cs ? vs_cjs_taken(vs_cluster_cjs(cs->b->cluster)) : 0;
	for (struct vs_ring *r = &src->inflight; r; r = r == &src->inflight ? &src->queue : NULL) {
		for (uint32_t i = 0; i < r->count; i++) {
			struct vs_qentry e = *vs_ring_at(r, i);
			if (!e.msg || (e.qos == 2 && e.state == VS_Q_WAIT_PUBCOMP)) {
				vs_qentry_fini(&e); /* delivered: only its PUBREL was left */
				continue;
			}
			uint64_t sseq = e.msg->sseq;
			if ((upto && (e.qos == 0 || (sseq && sseq <= upto))) ||
			    (indexed && sseq && vs_map_get(&have, &sseq, sizeof(sseq)))) {
				vs_qentry_fini(&e);
				(*same)++;
				continue;
			}
			size_t bytes = e.msg->payload.len;
			e.state = VS_Q_QUEUED;
			e.packet_id = 0;
			e.dup = false;
			e.seq = ++dst->next_seq;
			if (vs_ring_push(&dst->queue, &e) < 0) {
				vs_qentry_fini(&e);
				continue;
			}
			dst->queued_bytes += bytes;
			n++;
			/* Both were in the trie: a worker that gave it to src may be about to give
			 * it to dst too. */
			if (cs && sseq)
				add_also(cs, dst, sseq, taken);
		}
		free(r->e);
		memset(r, 0, sizeof(*r));
	}
	src->queued_bytes = 0;
	vs_msg_unref(src->will); /* its session goes on in dst */
	src->will = NULL;
	pthread_mutex_unlock(&src->lock);
	vs_map_fini(&have);
	/* What came from src holds the node's stream floor as dst's own entries do. */
	vs_session_hold(dst, dst->conn && dst->expiry > 0);
	return n;
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
		if (busy && !cur->bridge && merge(cur, s, 0, &same, NULL) && cur->connected &&
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

/* s does not take the stream's messages up to cut should they reach this node live from now
 * on (its consumer behind): it has them, or its client acknowledged them on the node it came
 * from (vs_cluster_session_skips). Nothing to do when this node has routed that far already. */
static void add_skip(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t cut)
{
	if (cut <= vs_cjs_taken(vs_cluster_cjs(cs->b->cluster)))
		return;
	pthread_mutex_lock(&cs->skip_lock);
	uint32_t i = 0;
	while (i < cs->n_skips && cs->skips[i].s != s)
		i++;
	if (i < cs->n_skips) {
		if (cut > cs->skips[i].cut)
			cs->skips[i].cut = cut;
	} else if (VS_VEC_GROW(cs->skips, cs->cap_skips, cs->n_skips + 1, 8) == 0) {
		cs->skips[cs->n_skips++] = (struct skip){.s = vs_session_ref(s), .cut = cut};
	}
	if (cut > atomic_load(&cs->b->roam_cut))
		atomic_store(&cs->b->roam_cut, cut);
	pthread_mutex_unlock(&cs->skip_lock);
}

/* s has the stream's message sseq and does not take it again (s locked, or not yet in the
 * trie). taken: vs_cjs_taken() a moment ago. */
static void add_also(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t sseq,
		     uint64_t taken)
{
	if (sseq <= taken)
		return; /* routed here completely: it comes no more */
	pthread_mutex_lock(&cs->skip_lock);
	uint32_t i = 0;
	while (i < cs->n_skips && cs->skips[i].s != s)
		i++;
	if (i == cs->n_skips && VS_VEC_GROW(cs->skips, cs->cap_skips, cs->n_skips + 1, 8) == 0)
		cs->skips[cs->n_skips++] = (struct skip){.s = vs_session_ref(s)};
	if (i < cs->n_skips &&
	    vs_map_put(&cs->skips[i].also, &sseq, sizeof(sseq), (void *)1, NULL) == 0) {
		if (sseq > cs->skips[i].also_max)
			cs->skips[i].also_max = sseq;
		if (sseq > atomic_load(&cs->b->roam_cut))
			atomic_store(&cs->b->roam_cut, sseq);
	}
	pthread_mutex_unlock(&cs->skip_lock);
}

/* Forgets the skips this node has routed past (the giver thread, every 100 ms). */
static void prune_skips(struct vs_cluster_sessions *cs)
{
	pthread_mutex_lock(&cs->skip_lock);
	bool none = cs->n_skips == 0;
	pthread_mutex_unlock(&cs->skip_lock);
	if (none)
		return;
	uint64_t taken = vs_cjs_taken(vs_cluster_cjs(cs->b->cluster)), max = 0;
	pthread_mutex_lock(&cs->skip_lock);
	for (uint32_t i = 0; i < cs->n_skips;) {
		struct skip *k = &cs->skips[i];
		uint64_t top = k->cut > k->also_max ? k->cut : k->also_max;
		if (top <= taken) {
			vs_session_unref(k->s);
			vs_map_fini(&k->also);
			*k = cs->skips[--cs->n_skips];
			continue;
		}
		max = top > max ? top : max;
		i++;
	}
	atomic_store(&cs->b->roam_cut, max);
	pthread_mutex_unlock(&cs->skip_lock);
}

bool vs_cluster_session_skips(struct vs_broker *b, const struct vs_session *s, uint64_t sseq)
{
	struct vs_cluster_sessions *cs = vs_cluster_sessions_of(b);
	if (!cs)
		return false;
	bool skip = false;
	pthread_mutex_lock(&cs->skip_lock); /* a few entries, while a node catches up */
	for (uint32_t i = 0; i < cs->n_skips && !skip; i++)
		skip =
		    cs->skips[i].s == s && (sseq <= cs->skips[i].cut ||
					    (sseq <= cs->skips[i].also_max &&
					     vs_map_get(&cs->skips[i].also, &sseq, sizeof(sseq))));
	pthread_mutex_unlock(&cs->skip_lock);
	return skip;
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
	if (s && cut) {
		add_skip(cs, s, cut);
		/* What it has beyond cut (the old node routes out of order) may reach this node
		 * late too. */
		uint64_t taken = vs_cjs_taken(vs_cluster_cjs(b->cluster));
		for (struct vs_ring *r = &s->inflight; r; r = r == &s->inflight ? &s->queue : NULL)
			for (uint32_t i = 0; i < r->count; i++) {
				const struct vs_qentry *e = vs_ring_at(r, i);
				if (e->msg && e->msg->sseq > cut)
					add_also(cs, s, e->msg->sseq, taken);
			}
	}
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
	uint32_t n = s && from	? replay(cs, s, from, true)
		     : s && cut ? replay(cs, s, cut + 1, false)
				: 0;
	if (s && (from || n))
		vs_log(cs->b->log, VS_LOG_NOTICE,
		       "cluster: client %s's session got %u message(s) from stream %s", j->id, n,
		       VS_CJS_STREAM);
	struct vs_mail m = {.type = VS_MAIL_ROAMED,
			    .session = s ? vs_session_ref(s) : NULL,
			    .other = old,
			    .slot = j->slot,
			    .conn_id = j->conn_id,
			    .reply_slot = queued + n,
			    .reply_conn_id = inflight,
			    .upto = joins ? cut : 0};
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
		struct job *j = new_job(JOB_CHECK, s->client_id, s->id_len);
		if (j)
			push(cs, j);
	}
	pthread_mutex_unlock(&b->reg_lock);
}

/* Waits on c (m held) for at most ms milliseconds. */
static void wait_ms(pthread_cond_t *c, pthread_mutex_t *m, long ms)
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
		wait_ms(&cs->cond, &cs->lock, 200);
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

static void *run(void *arg)
{
	struct shard *sh = arg;
	struct vs_cluster_sessions *cs = sh->cs;
	while (!atomic_load(&cs->stop)) {
		if (sh->idx == 0 && !atomic_load(&cs->ready)) { /* shard 0 binds for all */
			if (bind_bucket(cs) != NATS_OK) {
				kvStore_Destroy(cs->kv);
				cs->kv = NULL;
				nats_Sleep(500);
				continue;
			}
			if (js_KeyValue(&cs->nodes, vs_cluster_js(cs->b), VS_CJS_NODES_BUCKET) !=
			    NATS_OK)
				cs->nodes = NULL; /* every owner taken for alive (alive()) */
			atomic_store(&cs->ready, true);
			check_restored(cs);
		}
		if (sh->idx == 0 && atomic_load(&cs->ready))
			write_floor(cs);
		if (sh->idx == 0 && pthread_mutex_trylock(&cs->window.lock) == 0) {
			if (cs->window.n && vs_now_ms() - cs->window.used_ms > WINDOW_KEEP_MS)
				window_clear(&cs->window); /* the memory goes back */
			pthread_mutex_unlock(&cs->window.lock);
		}
		struct job *j = pop(sh);
		if (!j)
			continue;
		if (j->kind == JOB_CONNECT) {
			/* Stopping: its workers may take no more mail, so nothing is moved. */
			uint64_t from = 0;
			struct vs_session *placed = NULL;
			uint64_t cut = 0;
			struct vs_session *s = atomic_load(&cs->b->stopping)
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

/* ---- The answering side: this node has the session ---------------------------------------- */

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cluster_sessions *cs = arg;
	const uint8_t *d = (const uint8_t *)natsMsg_GetData(nm);
	int len = natsMsg_GetDataLength(nm);
	if (atomic_load(&cs->stop) || len < 2 || (d[0] != 'Q' && d[0] != 'C') ||
	    REQ_HEAD + d[1] > len || !natsMsg_GetReply(nm)) {
		natsMsg_Destroy(nm);
		return;
	}
	size_t idlen = (size_t)len - REQ_HEAD - d[1];
	const uint8_t *at = d + 2 + d[1];
	uint64_t upto = (uint64_t)get_be32(at + 8) << 32 | get_be32(at + 12);
	struct vs_cjs *cjs = vs_cluster_cjs(cs->b->cluster);
	if (d[0] == 'Q' && vs_cjs_ready(cjs) && upto > vs_cjs_taken(cjs)) {
		/* Not on this thread, which routes the stream too (cluster.c: one delivery
		 * thread): the giver waits. */
		struct job *j = new_job(JOB_GIVE, (const char *)d + REQ_HEAD + d[1], idlen);
		if (j) {
			j->req = nm;
			j->floor = upto;
			j->until_ms = vs_now_ms() + GIVE_WAIT_MS;
			pthread_mutex_lock(&cs->give_lock);
			j->next = cs->gives;
			cs->gives = j;
			pthread_cond_signal(&cs->give_cond);
			pthread_mutex_unlock(&cs->give_lock);
			return;
		}
	}
	post_give(cs, (const char *)d + REQ_HEAD + d[1], idlen, d[0] == 'Q' ? 'R' : 'C', nm);
}

/* Hands the request req about client id (idlen bytes) to the worker that has its session. */
static void post_give(struct vs_cluster_sessions *cs, const char *client_id, size_t idlen,
		      char kind, natsMsg *req)
{
	char *id = strndup(client_id, idlen);
	if (!id) {
		natsMsg_Destroy(req);
		return; /* the asking node's wait runs out: the client starts anew there */
	}
	struct vs_mail m = {
	    .type = VS_MAIL_HANDOVER, .reason = (uint8_t)kind, .share = id, .ack = req};
	vs_worker_post_now(&cs->b->workers[worker_of(cs->b, id, strlen(id))], &m);
}

/* The giver: hands each session asked for over once this node has routed the stream up to
 * where the asking node read it (j->floor), or after GIVE_WAIT_MS (then the asking node reads
 * what is missing from the stream, and a QoS 2 message may come twice). */
static void *giver(void *arg)
{
	struct vs_cluster_sessions *cs = arg;
	struct vs_cjs *cjs = vs_cluster_cjs(cs->b->cluster);
	while (!atomic_load(&cs->stop)) {
		prune_skips(cs);
		pthread_mutex_lock(&cs->give_lock);
		if (!cs->gives && !atomic_load(&cs->stop))
			wait_ms(&cs->give_cond, &cs->give_lock,
				100); /* skips pruned every 100 ms */
		struct job *list = cs->gives;
		cs->gives = NULL;
		pthread_mutex_unlock(&cs->give_lock);
		uint64_t taken = vs_cjs_taken(cjs);
		int64_t now = vs_now_ms();
		struct job *wait = NULL;
		for (struct job *j = list, *next; j; j = next) {
			next = j->next;
			if (taken < j->floor && now < j->until_ms && !atomic_load(&cs->stop)) {
				j->next = wait;
				wait = j;
				continue;
			}
			if (taken < j->floor)
				vs_log(
				    cs->b->log, VS_LOG_NOTICE,
				    "cluster: handing client %s's session over before this node "
				    "routed stream %s up to %llu (it is at %llu): the other node "
				    "reads the rest from the stream",
				    j->id, VS_CJS_STREAM, (unsigned long long)j->floor,
				    (unsigned long long)taken);
			if (atomic_load(&cs->stop))
				natsMsg_Destroy(j->req); /* the asking node's wait runs out */
			else
				post_give(cs, j->id, j->idlen, 'R', j->req);
			free(j);
		}
		if (!wait)
			continue;
		pthread_mutex_lock(&cs->give_lock);
		struct job **tail = &wait;
		while (*tail)
			tail = &(*tail)->next;
		*tail = cs->gives;
		cs->gives = wait;
		pthread_mutex_unlock(&cs->give_lock);
		nats_Sleep(GIVE_POLL_MS);
	}
	return NULL;
}

static void post_end(struct vs_broker *b, const char *client_id, size_t idlen, char how)
{
	char *id = strndup(client_id, idlen);
	if (!id)
		return;
	struct vs_mail m = {.type = VS_MAIL_HANDOVER, .reason = (uint8_t)how, .share = id};
	vs_worker_post_now(&b->workers[worker_of(b, id, strlen(id))], &m);
}

void vs_cluster_session_end(struct vs_broker *b, const char *client_id, size_t idlen)
{
	post_end(b, client_id, idlen, 'D');
}

void vs_cluster_session_drop(struct vs_broker *b, const char *client_id, size_t idlen)
{
	post_end(b, client_id, idlen, 'X');
}

static void reply(struct vs_broker *b, natsMsg *req, char kind, uint64_t routed,
		  const uint8_t *data, size_t len)
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
		put_be32(chunk + 9, (uint32_t)(routed >> 32));
		put_be32(chunk + 13, (uint32_t)routed);
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
	bool resume = m->reason == 'R' || m->reason == 'C';
	const char *to = req ? natsMsg_GetData(req) + 2 : "";
	int to_len = req ? (uint8_t)natsMsg_GetData(req)[1] : 0;
	if (req && m->reason == 'C') {
		/* Too late: the asking node went on without it (and a connection here now may
		 * be the client's again). */
		const uint8_t *d = (const uint8_t *)to + to_len;
		if (vs_wall_ms() > (int64_t)((uint64_t)get_be32(d) << 32 | get_be32(d + 4)))
			goto out;
	}

	/* A connection still open here closes first: a take-over, which resumes or not as the
	 * new connection does. On another worker, the mail follows it there. */
	struct vs_worker *ow = NULL;
	uint32_t slot = 0;
	uint64_t conn_id = 0;
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, id, idlen);
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
	if (m->reason == 'C') { /* closed: the session stays here until asked for it */
		reply(b, req, 'K', 0, NULL, 0);
		goto out;
	}

	/* Too late (the asking node no longer waits), or stopping: it stays here. */
	if (req) {
		const uint8_t *d = (const uint8_t *)natsMsg_GetData(req) + 2 + to_len;
		int64_t deadline = (int64_t)((uint64_t)get_be32(d) << 32 | get_be32(d + 4));
		if (vs_wall_ms() > deadline || atomic_load(&b->stopping)) {
			vs_log(
			    b->log, VS_LOG_WARN,
			    "cluster: node %.*s asked for client %s's session too late: it stays "
			    "here",
			    to_len, to, id);
			reply(b, req, 'B', 0, NULL, 0);
			goto out;
		}
	}
	/* Out of the registry, under its lock: from here on it is this mail's. */
	char kind = 'N';
	pthread_mutex_lock(&b->reg_lock);
	s = vs_registry_get(&b->sessions, id, idlen);
	if (s && !s->bridge) {
		pthread_mutex_lock(&s->lock);
		if (s->connected) {
			kind = 'B';
		} else {
			kind = 'S';
			vs_registry_del(&b->sessions, id, idlen);
			vs_broker_sessions_changed(b);
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	if (kind != 'S') {
		if (req)
			reply(b, req, kind, 0, NULL, 0);
		goto out;
	}
	if (!resume) {
		if (m->reason == 'X') { /* its will was the survivors' to publish (cluster_js.h) */
			pthread_mutex_lock(&s->lock);
			vs_msg_unref(s->will);
			s->will = NULL;
			pthread_mutex_unlock(&s->lock);
		} else {
			vs_logc(b->log, VS_LOG_INFO, id,
				"cluster: client %s started clean on another node: its session "
				"here ends",
				id);
		}
		vs_router_end_session(w, s); /* its will goes, as on one node */
		vs_session_unref(s);
		goto out;
	}
	struct vs_store_buf out;
	vs_store_buf_init(&out);
	pthread_mutex_lock(&s->lock);
	/* Every message of the stream up to here that the session wants is in it, or was
	 * delivered and acknowledged (its connection here is closed): the asking node's copy
	 * drops what it took of those (take()). */
	struct vs_cjs *cjs = vs_cluster_cjs(b->cluster);
	uint64_t routed = vs_cjs_ready(cjs) ? vs_cjs_taken(cjs) : ROUTED_UNKNOWN;
	bool expired =
	    s->expiry != UINT32_MAX && w->now_ms - s->offline_since_ms >= (int64_t)s->expiry * 1000;
	int rc = expired ? 0 : vs_bp_session_export(b, s, true, &out);
	if (rc == 0 && !expired)
		let_go(w, s);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		/* Kept here: better than lost. The client starts anew on the other node. */
		vs_log(b->log, VS_LOG_ERR,
		       "cluster: session of client %s cannot be handed over: %s", id,
		       rc == -ENOMEM ? "no memory" : "too large");
		pthread_mutex_lock(&b->reg_lock);
		if (vs_registry_get(&b->sessions, id, idlen) ||
		    vs_registry_add(&b->sessions, s) < 0) {
			pthread_mutex_unlock(&b->reg_lock);
			vs_router_end_session(w, s);
			vs_session_unref(s);
		} else {
			vs_broker_sessions_changed(b);
			pthread_mutex_unlock(&b->reg_lock);
		}
		reply(b, req, 'B', 0, NULL, 0);
		vs_store_buf_fini(&out);
		goto out;
	}
	/* Ends here without a will and without messages (they went with it); its subscriptions
	 * leave the trie, its SESSION_DEL goes into the store. */
	vs_router_end_session(w, s);
	vs_session_unref(s);
	reply(b, req, expired ? 'N' : 'S', routed, out.data, out.len);
	if (!expired && vs_cluster_sessions_of(b))
		atomic_fetch_add(&vs_cluster_sessions_of(b)->given, 1);
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
			n = merge(s, old, upto, &same, vs_cluster_sessions_of(w->b));
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
	window_clear(&cs->window);
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
	if (n <= 0 || natsConnection_Subscribe(&cs->sub, vs_cluster_nc(b), subject, on_request,
					       cs) != NATS_OK) {
		vs_cluster_sessions_free(cs);
		return NULL;
	}
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &cs->shards[i];
		if (pthread_create(&sh->thread, NULL, run, sh) != 0) {
			vs_cluster_sessions_free(cs);
			return NULL;
		}
		sh->started = true;
	}
	if (pthread_create(&cs->giver, NULL, giver, cs) != 0) {
		vs_cluster_sessions_free(cs);
		return NULL;
	}
	cs->giver_started = true;
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

void vs_cluster_sessions_free(struct vs_cluster_sessions *cs)
{
	if (!cs)
		return;
	vs_cluster_sessions_stop(cs);
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &cs->shards[i];
		for (struct job *j = sh->head, *next; j; j = next) {
			next = j->next;
			if (j->req)
				natsMsg_Destroy(j->req); /* the asking node's wait runs out */
			free(j); /* its connection is closed with its worker */
		}
		for (struct job *j = sh->notes, *next; j; j = next) {
			next = j->next;
			free(j);
		}
		vs_map_fini(&sh->queued_notes);
		pthread_cond_destroy(&sh->cond);
		pthread_mutex_destroy(&sh->lock);
	}
	natsSubscription_Destroy(cs->sub);
	kvStore_Destroy(cs->kv);
	kvStore_Destroy(cs->nodes);
	vs_map_fini(&cs->slow);
	pthread_mutex_destroy(&cs->slow_lock);
	for (uint32_t i = 0; i < cs->n_skips; i++) {
		vs_session_unref(cs->skips[i].s);
		vs_map_fini(&cs->skips[i].also);
	}
	free(cs->skips);
	pthread_mutex_destroy(&cs->skip_lock);
	window_clear(&cs->window);
	free(cs->window.v);
	pthread_mutex_destroy(&cs->window.lock);
	for (struct job *j = cs->gives, *next; j; j = next) {
		next = j->next;
		natsMsg_Destroy(j->req);
		free(j);
	}
	pthread_cond_destroy(&cs->give_cond);
	pthread_mutex_destroy(&cs->give_lock);
	free(cs);
}
