/* Other nodes' subjects, for QoS 1/2 through JetStream only when wanted (cluster_interest.h). */
#include "broker/cluster_interest.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/map.h"
#include "base/vec.h"
#include "broker/broker.h"
#include "broker/cluster_nats.h"
#include "broker/worker.h"
#include "cluster/cluster.h"
#include "cluster/keys.h"

#define TOKEN_MAX (3 * VS_CLUSTER_NODE_MAX + 1)
/* The barrier's request: "REVISION NUMBER NODE"; its answers: "NUMBER NODE". */
#define BARRIER_SUBJECT "vs.ib"

/* A write to the bucket, made on the writer thread in the order asked. */
struct op {
	struct op *next;
	char *subject;
	char *tag;	  /* a shared group's queue, or NULL */
	uint64_t no;	  /* its place in the order (ci->issued when it was queued) */
	int64_t due_ms;	  /* a delete: queued then (ci->later) */
	struct op *lnext; /* the next delete waiting (ci->later_head) */
	bool cancelled;	  /* a waiting delete made void (a subscription came back) */
	bool add;
};

/* Another node's barrier request that waits for this node's watch to reach its revision. */
struct pending {
	char *reply;
	uint64_t rev;
	uint64_t no;
	int64_t since_ms; /* the asker gave up after BARRIER_MS: dropped after PENDING_MS */
};

struct vs_cluster_interest {
	struct vs_broker *b;
	char tok[TOKEN_MAX]; /* this node's id, escaped: its keys start with it and a '.' */
	size_t tok_len;
	pthread_t writer, watcher;
	bool writer_started, watcher_started;
	atomic_bool stop;

	pthread_mutex_t lock; /* the queue and the waiting workers */
	pthread_cond_t cond;
	struct op *head, **tail;
	uint32_t n_ops;
	atomic_uint_fast64_t issued;	/* changes queued so far (written under lock) */
	atomic_uint_fast64_t confirmed; /* of those, the ones the other nodes know (or given up) */
	uint64_t *wait;			/* per worker: the ticket it waits for, 0: none */
	struct vs_map later;		/* key -> a delete waiting LINGER_MS (struct op *) */
	struct op *later_head, **later_tail; /* those deletes (and void ones) by due time */

	kvWatcher *dead_w; /* the watcher's, left for vs_cluster_interest_close */
	kvStore *dead_kv;

	/* Writer thread only. */
	kvStore *kv;
	jsCtx *js;		  /* its own, for pipelined writes (write_pipelined) */
	atomic_bool pub_failed;	  /* an asynchronous write of the current batch failed */
	int64_t failing_since_ms; /* the first change has failed since then; 0: it has not */
	int64_t warned_ms;
	char inbox[64];
	uint64_t barrier_no;

	/* Answers to this node's barrier (the NATS callback fills them in, the writer waits). */
	natsSubscription *inbox_sub;
	pthread_mutex_t ans_lock;
	pthread_cond_t ans_cond;
	uint64_t ans_no;       /* the barrier waited for, 0: none */
	const char **ans_peer; /* the nodes it waits for */
	bool *ans_got;
	size_t ans_n, ans_left;

	/* Answering other nodes' barriers: the watch thread and the NATS callback. */
	natsSubscription *barrier_sub;
	pthread_mutex_t bar_lock;
	struct pending *pend;
	uint32_t n_pend, cap_pend;
	atomic_uint_fast64_t applied; /* the bucket's revision the watch has applied */

	pthread_rwlock_t rw; /* what follows */
	struct vs_map keys;  /* other nodes' key -> their subject (char *) */
	struct vs_map
	    subjects;	    /* distinct subjects of other nodes -> how many keys (as a pointer) */
	struct vs_map wild; /* those of them with a wildcard ('*' or '>' tokens), the same */
	bool known;	    /* the bucket was read once */
};

enum {
	OPS_MAX = 100000,
	PENDING_MAX = 10000,
	PENDING_MS = 5000,
	RETRY_MS = 500,
	WARN_EVERY_MS = 10000,
	/* How long a barrier waits for the other nodes' answers, and how long a change that
	 * cannot be written holds the SUBACKs behind it (docs/cluster.md: "Which messages"). */
	BARRIER_MS = 1000,
	GIVE_UP_MS = 2000,
	/* Nodes heard from within this are waited for (a heartbeat every 2 s). */
	PEER_FRESH_MS = 5000,
	/* A subject this node no longer has stays in the bucket this long: a session handed over
	 * to another node keeps its messages going through JetStream (which every node reads)
	 * until the new node's subjects are known; a subscription that comes back meanwhile
	 * costs no write at all. */
	LINGER_MS = 3000,
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

static void free_op(struct op *o)
{
	if (o) {
		free(o->subject);
		free(o->tag);
		free(o);
	}
}

uint64_t vs_cluster_interest_note(struct vs_cluster_interest *ci, const char *subject,
				  const char *tag, bool add)
{
	/* A stopping broker takes its subscriptions down: its persistent sessions still want
	 * their messages when it is back, so the bucket keeps them. */
	if (!ci || atomic_load_explicit(&ci->b->stopping, memory_order_relaxed))
		return 0;
	struct op *o = calloc(1, sizeof(*o));
	if (!o || !(o->subject = strdup(subject)) || (tag && !(o->tag = strdup(tag)))) {
		if (o)
			free(o->subject);
		free(o);
		return 0; /* not noted: the other nodes keep sending it through JetStream, or not */
	}
	o->add = add;
	char key[TOKEN_MAX + 24];
	key_of(ci, subject, tag, key, sizeof(key));
	uint64_t ticket = 0;
	pthread_mutex_lock(&ci->lock);
	/* A delete waiting for this key: an add cancels it (the key was never deleted: what was
	 * queued before is all it waits for), another delete replaces it. Cancelled deletes stay
	 * in the time-ordered list until they come up (queue_due). */
	struct op *gone = vs_map_del(&ci->later, key, strlen(key));
	if (gone)
		gone->cancelled = true;
	if (add && gone) {
		ticket = atomic_load(&ci->issued);
		pthread_mutex_unlock(&ci->lock);
		free_op(o);
		return ticket;
	}
	if (!add) {
		o->due_ms = vs_now_ms() + LINGER_MS;
		if (vs_map_put(&ci->later, key, strlen(key), o, NULL) == 0) {
			*ci->later_tail = o;
			ci->later_tail = &o->lnext;
			o = NULL;
		}
	}
	if (o && ci->n_ops < OPS_MAX) {
		o->no = atomic_load(&ci->issued) + 1;
		atomic_store(&ci->issued, o->no);
		ticket = add ? o->no : 0;
		*ci->tail = o;
		ci->tail = &o->next;
		ci->n_ops++;
		pthread_cond_signal(&ci->cond);
		o = NULL;
	}
	pthread_mutex_unlock(&ci->lock);
	free_op(o);
	return ticket;
}

/* Queues the deletes whose LINGER_MS is over, in the order they were asked (writer thread). */
static void queue_due(struct vs_cluster_interest *ci)
{
	int64_t now = vs_now_ms();
	pthread_mutex_lock(&ci->lock);
	struct op *o;
	while ((o = ci->later_head) && (o->cancelled || o->due_ms <= now)) {
		if (!(ci->later_head = o->lnext))
			ci->later_tail = &ci->later_head;
		o->lnext = NULL;
		if (o->cancelled) {
			free_op(o);
			continue;
		}
		char key[TOKEN_MAX + 24];
		key_of(ci, o->subject, o->tag, key, sizeof(key));
		vs_map_del(&ci->later, key, strlen(key));
		o->no = atomic_load(&ci->issued) + 1;
		atomic_store(&ci->issued, o->no);
		*ci->tail = o;
		ci->tail = &o->next;
		ci->n_ops++;
	}
	pthread_mutex_unlock(&ci->lock);
}

uint64_t vs_cluster_interest_ticket(struct vs_cluster_interest *ci)
{
	if (!ci)
		return 0;
	uint64_t t = atomic_load(&ci->issued);
	return t > atomic_load(&ci->confirmed) ? t : 0;
}

bool vs_cluster_interest_confirmed(struct vs_cluster_interest *ci, uint64_t ticket)
{
	return !ci || atomic_load(&ci->confirmed) >= ticket;
}

bool vs_cluster_interest_await(struct vs_cluster_interest *ci, int worker, uint64_t ticket)
{
	pthread_mutex_lock(&ci->lock);
	uint64_t confirmed = atomic_load(&ci->confirmed);
	bool waits = confirmed < ticket;
	/* The lowest: the worker asks again for the rest. One confirmed already is stale (its
	 * mail may have gone to a worker that found nothing left): replaced. */
	uint64_t *w = &ci->wait[worker];
	if (waits && (!*w || *w > ticket || *w <= confirmed))
		*w = ticket;
	pthread_mutex_unlock(&ci->lock);
	return waits;
}

/* Everything up to change no is known to the other nodes (or given up on): the workers whose
 * replies wait for it are told (VS_MAIL_HELD). */
static void confirm(struct vs_cluster_interest *ci, uint64_t no)
{
	if (no <= atomic_load(&ci->confirmed))
		return;
	atomic_store(&ci->confirmed, no);
	struct vs_broker *b = ci->b;
	for (int i = 0; i < b->n_workers; i++) {
		pthread_mutex_lock(&ci->lock);
		bool due = ci->wait[i] && ci->wait[i] <= no;
		if (due)
			ci->wait[i] = 0;
		pthread_mutex_unlock(&ci->lock);
		if (due) {
			struct vs_mail m = {.type = VS_MAIL_HELD};
			vs_worker_post_now(&b->workers[i], &m);
		}
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
		/* A subject without wildcards is looked up; only those with one are matched one by
		 * one (devices that subscribe to their own topic cost a hash lookup, not a scan).
		 */
		want = vs_map_get(&ci->subjects, subject, strlen(subject) + 1) != NULL;
		size_t it = 0, klen;
		const char *key;
		void *val;
		while (!want && vs_map_next(&ci->wild, &it, &key, &klen, &val))
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
static void count_in(struct vs_map *m, const char *subject, size_t len, int delta)
{
	intptr_t n = (intptr_t)vs_map_get(m, subject, len) + delta;
	if (n > 0)
		vs_map_put(m, subject, len, (void *)n, NULL);
	else
		vs_map_del(m, subject, len);
}

/* Whether a token of subject is a wildcard ("*" or ">"). */
static bool wildcard(const char *subject)
{
	for (const char *t = subject; *t; t = strchr(t, '.') ? strchr(t, '.') + 1 : "")
		if ((t[0] == '*' || t[0] == '>') && (t[1] == '.' || t[1] == '\0'))
			return true;
	return false;
}

static void subject_count(struct vs_cluster_interest *ci, const char *subject, int delta)
{
	size_t len = strlen(subject) + 1;
	count_in(&ci->subjects, subject, len, delta);
	if (wildcard(subject))
		count_in(&ci->wild, subject, len, delta);
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

static natsStatus bind_bucket(struct vs_cluster_interest *ci, kvStore **kv)
{
	return vs_cluster_bucket(ci->b, kv, VS_INTEREST_BUCKET,
				 "Viesti: the subjects each node subscribes to (docs/cluster.md)",
				 0);
}

/* ---- the barrier: a SUBACK waits until every other node knows the subscription's subject ---- */

static void answer(struct vs_cluster_interest *ci, const char *reply, uint64_t no)
{
	char a[VS_CLUSTER_NODE_MAX + 32];
	int n = snprintf(a, sizeof(a), "%llu %s", (unsigned long long)no, vs_cluster_node(ci->b));
	natsConnection_Publish(vs_cluster_nc(ci->b), reply, a, n);
}

/* Answers the requests the watch has now caught up with (all of them once the bucket was read:
 * until then every QoS 1/2 message is taken as wanted). Called after applied or known moved. */
static void answer_due(struct vs_cluster_interest *ci, bool all)
{
	uint64_t applied = atomic_load(&ci->applied);
	int64_t now = vs_now_ms();
	pthread_mutex_lock(&ci->bar_lock);
	uint32_t k = 0;
	for (uint32_t i = 0; i < ci->n_pend; i++) {
		struct pending *p = &ci->pend[i];
		if (all || p->rev <= applied) {
			answer(ci, p->reply, p->no);
			free(p->reply);
		} else if (now - p->since_ms >= PENDING_MS) {
			free(p->reply); /* its asker stopped waiting long ago */
		} else {
			ci->pend[k++] = *p;
		}
	}
	ci->n_pend = k;
	pthread_mutex_unlock(&ci->bar_lock);
}

/* Another node's barrier (NATS's thread): answered once this node's watch has applied its
 * revision, so that what this node routes after the answer sees the subject. */
static void on_barrier(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cluster_interest *ci = arg;
	const char *reply = natsMsg_GetReply(nm);
	char d[VS_CLUSTER_NODE_MAX + 64];
	int len = natsMsg_GetDataLength(nm);
	unsigned long long rev, no;
	int off = 0;
	if (!reply || len <= 0 || len >= (int)sizeof(d)) {
		natsMsg_Destroy(nm);
		return;
	}
	memcpy(d, natsMsg_GetData(nm), (size_t)len);
	d[len] = '\0';
	if (sscanf(d, "%llu %llu %n", &rev, &no, &off) != 2 || off <= 0 ||
	    strcmp(d + off, vs_cluster_node(ci->b)) == 0) {
		natsMsg_Destroy(nm); /* malformed, or this node's own */
		return;
	}
	pthread_rwlock_rdlock(&ci->rw);
	bool known = ci->known;
	pthread_rwlock_unlock(&ci->rw);
	/* applied is stored before answer_due takes bar_lock: read under it, it is current or
	 * answer_due runs after this request is in the list. */
	pthread_mutex_lock(&ci->bar_lock);
	bool now = !known || atomic_load(&ci->applied) >= rev;
	char *copy = NULL;
	/* Without room the request is not answered (saying the watch has the revision when it
	 * has not would break the barrier): the asker gives up on this node after BARRIER_MS. */
	if (!now && ci->n_pend < PENDING_MAX && (copy = strdup(reply)) &&
	    VS_VEC_GROW(ci->pend, ci->cap_pend, ci->n_pend + 1, 16) == 0) {
		ci->pend[ci->n_pend++] =
		    (struct pending){.reply = copy, .rev = rev, .no = no, .since_ms = vs_now_ms()};
		copy = NULL;
	}
	pthread_mutex_unlock(&ci->bar_lock);
	free(copy);
	if (now)
		answer(ci, reply, no);
	natsMsg_Destroy(nm);
}

/* ms from now on CLOCK_REALTIME, for pthread_cond_timedwait. */
static struct timespec deadline(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	ts.tv_sec += (time_t)(ms / 1000) + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	return ts;
}

/* An answer to this node's barrier (NATS's thread): "NUMBER NODE". */
static void on_answer(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cluster_interest *ci = arg;
	char d[VS_CLUSTER_NODE_MAX + 32];
	int len = natsMsg_GetDataLength(nm);
	unsigned long long no;
	int off = 0;
	if (len > 0 && len < (int)sizeof(d)) {
		memcpy(d, natsMsg_GetData(nm), (size_t)len);
		d[len] = '\0';
		if (sscanf(d, "%llu %n", &no, &off) == 1 && off > 0) {
			pthread_mutex_lock(&ci->ans_lock);
			for (size_t i = 0; no == ci->ans_no && i < ci->ans_n; i++)
				if (!ci->ans_got[i] && strcmp(ci->ans_peer[i], d + off) == 0) {
					ci->ans_got[i] = true;
					if (--ci->ans_left == 0)
						pthread_cond_signal(&ci->ans_cond);
				}
			pthread_mutex_unlock(&ci->ans_lock);
		}
	}
	natsMsg_Destroy(nm);
}

/* Asks every other node heard from lately to answer once its watch has applied revision rev,
 * and waits for their answers (BARRIER_MS at most). Writer thread. */
static void barrier(struct vs_cluster_interest *ci, uint64_t rev)
{
	char *names = NULL;
	size_t n = vs_cluster_peers(ci->b, PEER_FRESH_MS, &names);
	if (n == 0)
		return;
	bool *got = calloc(n, sizeof(*got));
	const char **peer = calloc(n, sizeof(*peer));
	if (!got || !peer) {
		free(got);
		free(peer);
		free(names);
		return;
	}
	for (size_t i = 0, off = 0; i < n; i++) {
		peer[i] = names + off;
		off += strlen(peer[i]) + 1;
	}
	uint64_t no = ++ci->barrier_no;
	pthread_mutex_lock(&ci->ans_lock);
	ci->ans_no = no;
	ci->ans_peer = peer;
	ci->ans_got = got;
	ci->ans_n = ci->ans_left = n;
	pthread_mutex_unlock(&ci->ans_lock);
	char req[VS_CLUSTER_NODE_MAX + 64];
	int len = snprintf(req, sizeof(req), "%llu %llu %s", (unsigned long long)rev,
			   (unsigned long long)no, vs_cluster_node(ci->b));
	natsStatus s = natsConnection_PublishRequest(vs_cluster_nc(ci->b), BARRIER_SUBJECT,
						     ci->inbox, req, len);
	struct timespec ts = deadline(BARRIER_MS);
	pthread_mutex_lock(&ci->ans_lock);
	while (s == NATS_OK && ci->ans_left > 0 && !atomic_load(&ci->stop) &&
	       pthread_cond_timedwait(&ci->ans_cond, &ci->ans_lock, &ts) == 0)
		;
	size_t left = ci->ans_left;
	ci->ans_no = 0;
	ci->ans_n = ci->ans_left = 0;
	ci->ans_peer = NULL;
	ci->ans_got = NULL;
	pthread_mutex_unlock(&ci->ans_lock);
	int64_t now = vs_now_ms();
	if (left > 0 && now - ci->warned_ms >= WARN_EVERY_MS) {
		size_t i = 0;
		while (got[i])
			i++;
		ci->warned_ms = now;
		vs_log(ci->b->log, VS_LOG_WARN,
		       "cluster: %zu node(s) (%s%s) did not say within %d ms that they know this "
		       "node's new subscriptions: their QoS 1/2 messages for them may travel at "
		       "most once until they do",
		       left, peer[i], left > 1 ? ", ..." : "", BARRIER_MS);
	}
	free(got);
	free(peer);
	free(names);
}

/* ---- the writer ---- */

/* The first waiting change, left in the queue (only the writer takes changes out); NULL after
 * waiting up to ms for one. */
static struct op *first_op(struct vs_cluster_interest *ci, int64_t ms)
{
	pthread_mutex_lock(&ci->lock);
	if (!ci->head && ms > 0 && !atomic_load(&ci->stop)) {
		struct timespec ts = deadline(ms);
		pthread_cond_timedwait(&ci->cond, &ci->lock, &ts);
	}
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

/* Writes one change. A failure for a moment (vs_cluster_transient) returns false: the change
 * stays first and is tried again RETRY_MS later, the others behind it (a subject missing from
 * the bucket would make the other nodes send this node's QoS 1/2 messages on core NATS, at most
 * once). Writes fail for a moment when JetStream has no leader for the bucket yet (just made on
 * a cluster of NATS servers: "no responders") or while NATS reconnects. *rev: the revision of an
 * added subject. */
static bool write_op(struct vs_cluster_interest *ci, const struct op *o, uint64_t *rev)
{
	char key[TOKEN_MAX + 24];
	key_of(ci, o->subject, o->tag, key, sizeof(key));
	uint64_t r = 0;
	natsStatus s =
	    o->add ? kvStore_PutString(&r, ci->kv, key, o->subject) : kvStore_Delete(ci->kv, key);
	bool again = s != NATS_OK && vs_cluster_transient(s);
	int64_t now = vs_now_ms();
	if (s != NATS_OK && (!again || now - ci->warned_ms >= WARN_EVERY_MS)) {
		ci->warned_ms = now;
		vs_log(ci->b->log, VS_LOG_WARN, "cluster: %s subject %s in bucket %s: %s%s",
		       o->add ? "storing" : "deleting", o->subject, VS_INTEREST_BUCKET,
		       natsStatus_GetText(s), again ? " (trying again)" : "");
	}
	if (s == NATS_OK && o->add)
		*rev = r;
	return !again;
}

/*
 * Writes the changes in order; once the queue is empty (or every 256 changes), asks the other
 * nodes to confirm that their watches have the last subject added (barrier), then releases the
 * replies that waited for those changes. A change that keeps failing for GIVE_UP_MS releases
 * them anyway (they would otherwise wait for NATS for ever), and is still tried.
 */
/* A change cannot be written (or the bucket bound) for now: after GIVE_UP_MS of that, or at
 * once without a connection to NATS, the replies waiting behind it go out. */
static void held_up(struct vs_cluster_interest *ci)
{
	int64_t now = vs_now_ms();
	if (atomic_load(&ci->issued) <= atomic_load(&ci->confirmed))
		ci->failing_since_ms = 0;
	else if (!vs_cluster_connected(ci->b))
		confirm(ci, atomic_load(&ci->issued));
	else if (!ci->failing_since_ms)
		ci->failing_since_ms = now;
	else if (now - ci->failing_since_ms >= GIVE_UP_MS)
		confirm(ci, atomic_load(&ci->issued));
}

enum { BATCH = 256 };

/* The first changes waiting, up to BATCH of them (the list is read under its lock: another
 * thread may be appending). */
static size_t peek_ops(struct vs_cluster_interest *ci, struct op **out)
{
	size_t n = 0;
	pthread_mutex_lock(&ci->lock);
	for (struct op *o = ci->head; o && n < BATCH; o = o->next)
		out[n++] = o;
	pthread_mutex_unlock(&ci->lock);
	return n;
}

/* A change as the message the key-value API would publish for it. */
static natsMsg *op_msg(struct vs_cluster_interest *ci, const struct op *o)
{
	char key[TOKEN_MAX + 24];
	key_of(ci, o->subject, o->tag, key, sizeof(key));
	return vs_cluster_kv_msg(VS_INTEREST_BUCKET, key, o->add ? o->subject : NULL);
}

static void on_pub_failed(jsCtx *js, jsPubAckErr *pae, void *arg)
{
	(void)js;
	(void)pae;
	atomic_store(&((struct vs_cluster_interest *)arg)->pub_failed, true);
}

/*
 * Writes ops[0..n) pipelined: all but the last without waiting, the last waiting for its
 * acknowledgement, whose stream sequence is the bucket's revision after every one before it
 * (*rev, when one of them adds), then waits for the others'. A reconnect storm of devices, each
 * subscribing to its own topic, writes thousands of subjects a second this way, where one at a
 * time is a round trip each. false when one was not taken: the batch is written again one at
 * a time (a put or a delete written twice is the same).
 */
static bool write_pipelined(struct vs_cluster_interest *ci, struct op **ops, size_t n,
			    uint64_t *rev)
{
	atomic_store(&ci->pub_failed, false);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 2000;
	bool add = false;
	for (size_t i = 0; i + 1 < n; i++) {
		natsMsg *m = op_msg(ci, ops[i]);
		add |= ops[i]->add;
		if (!m || js_PublishMsgAsync(ci->js, &m, &po) != NATS_OK) {
			natsMsg_Destroy(m);
			atomic_store(&ci->pub_failed, true);
			break;
		}
	}
	natsMsg *last = atomic_load(&ci->pub_failed) ? NULL : op_msg(ci, ops[n - 1]);
	jsPubAck *pa = NULL;
	bool ok = last && js_PublishMsg(&pa, ci->js, last, &po, NULL) == NATS_OK;
	add |= ops[n - 1]->add;
	if (ok && add)
		*rev = pa->Sequence;
	jsPubAck_Destroy(pa);
	natsMsg_Destroy(last);
	ok &= js_PublishAsyncComplete(ci->js, &po) == NATS_OK;
	return ok && !atomic_load(&ci->pub_failed);
}

static void drop_ops(struct vs_cluster_interest *ci, size_t n)
{
	while (n--)
		drop_first_op(ci);
}

static void *writer_main(void *arg)
{
	struct vs_cluster_interest *ci = arg;
	uint64_t rev = 0, done = 0;
	unsigned batch = 0;
	struct op *ops[BATCH];
	while (!atomic_load(&ci->stop)) {
		if (!vs_cluster_connected(ci->b)) { /* nothing can be written: what waits goes */
			held_up(ci);
			nats_Sleep(100);
			continue;
		}
		if (!ci->kv && bind_bucket(ci, &ci->kv) != NATS_OK) {
			ci->kv = NULL;
			held_up(ci);
			nats_Sleep(RETRY_MS);
			continue;
		}
		queue_due(ci);
		size_t n = batch || !ci->js || !first_op(ci, 200) ? 0 : peek_ops(ci, ops);
		if (n > 1 && write_pipelined(ci, ops, n, &rev)) {
			done = ops[n - 1]->no;
			drop_ops(ci, n);
			ci->failing_since_ms = 0;
			batch = BATCH; /* the barrier next, then the next batch */
		}
		struct op *o = batch < BATCH ? first_op(ci, batch ? 0 : 200) : NULL;
		if (o && !write_op(ci, o, &rev)) {
			held_up(ci);
			nats_Sleep(RETRY_MS);
			continue;
		}
		if (o) {
			done = o->no;
			drop_first_op(ci);
			ci->failing_since_ms = 0;
			if (++batch < BATCH)
				continue;
		}
		if (rev)
			barrier(ci, rev);
		if (done)
			confirm(ci, done);
		rev = done = 0;
		batch = 0;
	}
	return NULL;
}

/* ---- the watcher ---- */

static void *watcher_main(void *arg)
{
	struct vs_cluster_interest *ci = arg;
	kvStore *kv = NULL;
	kvWatcher *w = NULL;
	while (!atomic_load(&ci->stop)) {
		/* Without NATS a request only waits out its timeout (and a stop behind it). */
		if ((!kv || !w) && !vs_cluster_connected(ci->b)) {
			nats_Sleep(100);
			continue;
		}
		if (!kv && bind_bucket(ci, &kv) != NATS_OK) {
			kv = NULL;
			nats_Sleep(500);
			continue;
		}
		if (!w && kvStore_WatchAll(&w, kv, NULL) != NATS_OK) {
			w = NULL;
			nats_Sleep(500);
			continue;
		}
		kvEntry *e = NULL;
		natsStatus s = kvWatcher_Next(&e, w, 100);
		if (s == NATS_TIMEOUT) {
			answer_due(ci, false); /* drops requests waited for too long */
			continue;
		}
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
			answer_due(ci, false);
			continue;
		}
		apply(ci, e);
		uint64_t r = kvEntry_Revision(e);
		if (r > atomic_load(&ci->applied))
			atomic_store(&ci->applied, r);
		kvEntry_Destroy(e);
		answer_due(ci, false);
	}
	/* Without NATS, stopping the watcher asks the server to delete its consumer, and waits
	 * out the timeout: left for vs_cluster_interest_close, once the connection is closed. */
	if (w && vs_cluster_connected(ci->b)) {
		kvWatcher_Stop(w);
		kvWatcher_Destroy(w);
		w = NULL;
	}
	if (!w)
		kvStore_Destroy(kv);
	ci->dead_w = w;
	ci->dead_kv = w ? kv : NULL;
	return NULL;
}

struct vs_cluster_interest *vs_cluster_interest_start(struct vs_broker *b)
{
	struct vs_cluster_interest *ci = calloc(1, sizeof(*ci));
	if (!ci)
		return NULL;
	ci->b = b;
	ci->tail = &ci->head;
	ci->later_tail = &ci->later_head;
	pthread_mutex_init(&ci->lock, NULL);
	pthread_mutex_init(&ci->bar_lock, NULL);
	pthread_mutex_init(&ci->ans_lock, NULL);
	pthread_cond_init(&ci->ans_cond, NULL);
	pthread_cond_init(&ci->cond, NULL);
	pthread_rwlock_init(&ci->rw, NULL);
	const char *node = vs_cluster_node(b);
	ssize_t n = vs_cluster_token((const uint8_t *)node, strlen(node), ci->tok, sizeof(ci->tok));
	ci->tok_len = n > 0 ? (size_t)n : 0;
	natsConnection *nc = vs_cluster_nc(b);
	natsInbox *inbox = NULL;
	bool ok =
	    n > 0 && (ci->wait = calloc((size_t)b->n_workers, sizeof(*ci->wait))) &&
	    natsInbox_Create(&inbox) == NATS_OK &&
	    snprintf(ci->inbox, sizeof(ci->inbox), "%s", inbox) < (int)sizeof(ci->inbox) &&
	    natsConnection_Subscribe(&ci->inbox_sub, nc, ci->inbox, on_answer, ci) == NATS_OK &&
	    natsConnection_Subscribe(&ci->barrier_sub, nc, BARRIER_SUBJECT, on_barrier, ci) ==
		NATS_OK;
	natsInbox_Destroy(inbox);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 2000;
	jo.PublishAsync.ErrHandler = on_pub_failed;
	jo.PublishAsync.ErrHandlerClosure = ci;
	jo.PublishAsync.MaxPending = BATCH;
	ok = ok && natsConnection_JetStream(&ci->js, nc, &jo) == NATS_OK;
	if (ok && pthread_create(&ci->watcher, NULL, watcher_main, ci) == 0)
		ci->watcher_started = true;
	if (ok && ci->watcher_started && pthread_create(&ci->writer, NULL, writer_main, ci) == 0)
		ci->writer_started = true;
	if (!ci->writer_started) {
		vs_cluster_interest_free(ci);
		return NULL;
	}
	return ci;
}

void vs_cluster_interest_stopping(struct vs_cluster_interest *ci)
{
	if (!ci)
		return;
	atomic_store(&ci->stop, true);
	pthread_mutex_lock(&ci->lock);
	pthread_cond_signal(&ci->cond);
	pthread_mutex_unlock(&ci->lock);
	pthread_mutex_lock(&ci->ans_lock);
	pthread_cond_signal(&ci->ans_cond);
	pthread_mutex_unlock(&ci->ans_lock);
}

void vs_cluster_interest_stop(struct vs_cluster_interest *ci)
{
	if (!ci)
		return;
	vs_cluster_interest_stopping(ci);
	if (ci->writer_started)
		pthread_join(ci->writer, NULL);
	if (ci->watcher_started)
		pthread_join(ci->watcher, NULL);
	ci->writer_started = ci->watcher_started = false;
	/* Nothing confirms any more: replies still held go out (the broker is stopping). */
	confirm(ci, atomic_load(&ci->issued));
}

void vs_cluster_interest_close(struct vs_cluster_interest *ci)
{
	if (!ci)
		return;
	natsSubscription_Destroy(ci->barrier_sub);
	natsSubscription_Destroy(ci->inbox_sub);
	kvWatcher_Destroy(ci->dead_w);
	kvStore_Destroy(ci->dead_kv);
	kvStore_Destroy(ci->kv);
	jsCtx_Destroy(ci->js);
	ci->barrier_sub = ci->inbox_sub = NULL;
	ci->dead_w = NULL;
	ci->dead_kv = ci->kv = NULL;
	ci->js = NULL;
}

void vs_cluster_interest_free(struct vs_cluster_interest *ci)
{
	if (!ci)
		return;
	vs_cluster_interest_stop(ci);
	vs_cluster_interest_close(ci);
	for (struct op *o = ci->head, *next; o; o = next) {
		next = o->next;
		free(o->subject);
		free(o->tag);
		free(o);
	}
	for (struct op *o = ci->later_head, *next; o; o = next) {
		next = o->lnext;
		free_op(o);
	}
	vs_map_fini(&ci->later);
	for (uint32_t i = 0; i < ci->n_pend; i++)
		free(ci->pend[i].reply);
	free(ci->pend);
	free(ci->wait);
	vs_map_fini_with(&ci->keys, free);
	vs_map_fini(&ci->subjects);
	vs_map_fini(&ci->wild);
	pthread_rwlock_destroy(&ci->rw);
	pthread_cond_destroy(&ci->cond);
	pthread_mutex_destroy(&ci->bar_lock);
	pthread_mutex_destroy(&ci->ans_lock);
	pthread_cond_destroy(&ci->ans_cond);
	pthread_mutex_destroy(&ci->lock);
	free(ci);
}
