/* Leases and the wills of dead nodes (cluster_js_int.h): the JetStream thread's, but
 * vs_cjs_will. */
#include "broker/cluster_js.h"

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
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_js_int.h"
#include "broker/cluster_nats.h"
#include "broker/cluster_retain.h"
#include "broker/worker.h"
#include "cluster/keys.h"
#include "session/msg.h"

/* ---- leases and wills ---- */

natsStatus vs_cjs_renew_lease(struct vs_cjs *j)
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
void vs_cjs_keep_lease(struct vs_cjs *j)
{
	int64_t now = vs_now_ms();
	if (now < j->next_lease)
		return;
	natsStatus s = vs_cjs_renew_lease(j);
	if (s != NATS_OK)
		vs_cjs_warn(j, "renewing this node's lease", s);
	j->next_lease = now + j->lease_ms / 3;
	/* What JetStream says this node acknowledged: lost and given-back sequences at or below
	 * it are not waited for any more (vs_cjs_floor). */
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	if (js_GetConsumerInfo(&ci, j->js, STREAM, j->consumer, NULL, &jerr) == NATS_OK)
		atomic_store(&j->ack_floor, ci->AckFloor.Stream);
	jsConsumerInfo_Destroy(ci);
}

/* Deletes the will at key if its revision is still rev: a will written meanwhile (its client
 * connected again to its node, restarted) stays. */
static void delete_will(struct vs_cjs *j, const char *key, uint64_t rev)
{
	natsMsg *m = vs_cluster_kv_msg(WILLS_BUCKET, key, NULL);
	if (!m)
		return;
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.ExpectLastSubjectSeq = rev;
	jsErrCode jerr = 0;
	natsStatus s = js_PublishMsg(NULL, j->js, m, &po, &jerr);
	natsMsg_Destroy(m);
	if (s != NATS_OK && jerr != JSStreamWrongLastSequenceErr)
		vs_cjs_warn(j, "deleting a published will", s);
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
	natsStatus s = vs_cjs_publish_frame(j, subject, buf, (size_t)h, (size_t)h + body, id);
	struct vs_cluster_frame mine;
	if (s == NATS_OK && vs_cluster_frame_decode(buf, (size_t)h + body, &mine, &why) == 0 &&
	    vs_cluster_deliver(j->cl, &mine, NULL, 0, false, false) == 0) {
		if (mine.publish.retain)
			vs_cluster_retain_on_behalf(j->b, &mine);
		vs_log(j->b->log, VS_LOG_NOTICE, "cluster: published will %s of a dead node", key);
		delete_will(j, key, rev);
	} else if (s != NATS_OK) {
		vs_cjs_warn(j, "publishing a will of a dead node", s);
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
		vs_cjs_keep_lease(j);
		if (!more)
			break;
	}
	kvWatcher_Destroy(w);
	if (s != NATS_OK && s != NATS_NOT_FOUND) {
		vs_cjs_warn(j, what, s);
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
void vs_cjs_reap(struct vs_cjs *j, bool self)
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
		vs_cjs_keep_lease(j);
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
void vs_cjs_run_ops(struct vs_cjs *j, int64_t until)
{
	struct op *o;
	while (vs_now_ms() < until && vs_now_ms() >= j->retry_ms && (o = first_op(j))) {
		uint64_t rev;
		natsStatus s = o->val ? kvStore_Put(&rev, j->wills, o->key, o->val, (int)o->len)
				      : kvStore_Delete(j->wills, o->key);
		vs_cjs_keep_lease(j);
		if (s != NATS_OK && vs_cluster_transient(s)) {
			vs_cjs_warn(j,
				    o->val ? "storing a will (trying again)"
					   : "deleting a will (trying again)",
				    s);
			j->retry_ms = vs_now_ms() + RETRY_MS;
			return;
		}
		if (s != NATS_OK)
			vs_cjs_warn(j, o->val ? "storing a will" : "deleting a will", s);
		drop_first_op(j);
	}
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
