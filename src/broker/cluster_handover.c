/* The owner's side of a hand-over: requests on vs.h.NODE, the giver thread, and the worker's
 * part (cluster_session_int.h). */
#include "broker/cluster_session_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/cluster_nats.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "persist/store.h"
#include "session/registry.h"
#include "session/session.h"

/* ---- The answering side: this node has the session ---------------------------------------- */

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
	vs_worker_post_now(&cs->b->workers[vs_cs_worker_of(cs->b, id, strlen(id))], &m);
}

void vs_cs_on_request(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
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
	uint64_t upto = (uint64_t)vs_cs_get_be32(at + 8) << 32 | vs_cs_get_be32(at + 12);
	struct vs_cjs *cjs = vs_cluster_cjs(cs->b->cluster);
	if (d[0] == 'Q' && vs_cjs_ready(cjs) && upto > vs_cjs_taken(cjs)) {
		/* Not on this thread, which routes the stream too (cluster.c: one delivery
		 * thread): the giver waits. */
		struct job *j = vs_cs_new_job(JOB_GIVE, (const char *)d + REQ_HEAD + d[1], idlen);
		if (j) {
			j->req = nm;
			j->floor = upto;
			j->until_ms = vs_now_ms() + GIVE_WAIT_MS;
			pthread_mutex_lock(&cs->give_lock);
			bool stopped = atomic_load(&cs->stop); /* the list is freed at the stop */
			if (!stopped) {
				j->next = cs->gives;
				cs->gives = j;
				pthread_cond_signal(&cs->give_cond);
			}
			pthread_mutex_unlock(&cs->give_lock);
			if (stopped) {
				natsMsg_Destroy(nm);
				free(j);
			}
			return;
		}
	}
	post_give(cs, (const char *)d + REQ_HEAD + d[1], idlen, d[0] == 'Q' ? 'R' : 'C', nm);
}

/* The giver: hands each session asked for over once this node has routed the stream up to
 * where the asking node read it (j->floor), or after GIVE_WAIT_MS (then the asking node reads
 * what is missing from the stream, and a QoS 2 message may come twice). */
void *vs_cs_giver(void *arg)
{
	struct vs_cluster_sessions *cs = arg;
	struct vs_cjs *cjs = vs_cluster_cjs(cs->b->cluster);
	while (!atomic_load(&cs->stop)) {
		vs_cs_prune_skips(cs);
		pthread_mutex_lock(&cs->give_lock);
		if (!cs->gives && !atomic_load(&cs->stop))
			vs_cs_wait_ms(&cs->give_cond, &cs->give_lock,
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
	vs_worker_post_now(&b->workers[vs_cs_worker_of(b, id, strlen(id))], &m);
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
		vs_cs_put_be32(chunk + 1, i);
		vs_cs_put_be32(chunk + 5, total);
		vs_cs_put_be32(chunk + 9, (uint32_t)(routed >> 32));
		vs_cs_put_be32(chunk + 13, (uint32_t)routed);
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
		if (vs_wall_ms() >
		    (int64_t)((uint64_t)vs_cs_get_be32(d) << 32 | vs_cs_get_be32(d + 4)))
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
		int64_t deadline =
		    (int64_t)((uint64_t)vs_cs_get_be32(d) << 32 | vs_cs_get_be32(d + 4));
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
