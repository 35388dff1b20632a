/*
 * Workers (shards): see worker.h. A loop turn is: wait for events (bounded by the next timer),
 * dispatch them, drain local sessions that received messages, hand outboxes to other workers,
 * flush every connection that has output. This file is what a turn does with a shard: its
 * mailbox, its per-turn lists, held output, the end of the turn and the sweep, start-up and
 * stop. Which thread runs a shard, and when it waits, is threads.c's; its listening sockets
 * are listeners.c's.
 */
#include "base/vec.h"
#include "broker/worker.h"

#include "broker/bridge.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "broker/cluster_js.h"
#include "broker/cluster_session.h"
#include "broker/conn.h"
#include "broker/gateway.h"
#include "broker/http.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/iobatch.h"
#include "broker/sys.h"
#include "net/listen.h"
#include "session/session.h"

static int vec_push(struct vs_mail_vec *v, const struct vs_mail *m)
{
	if (VS_VEC_GROW(v->v, v->cap, v->n + 1, 64) < 0)
		return -ENOMEM;
	v->v[v->n++] = *m;
	return 0;
}

/*
 * The mailbox's eventfd is edge-triggered and never read: every write is a new edge, and the
 * 64-bit counter cannot fill in any real lifetime. A worker is woken only when it sleeps (or is
 * about to): it sets `sleeping` and then looks at its mailbox before a blocking epoll_wait, and a
 * poster pushes and then looks at `sleeping`. The two fences make sure that at least one of them
 * sees the other's write (the pattern of Dekker's algorithm), so no mail waits for a timeout.
 */
static void wake(struct vs_worker *t)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&t->sleeping, memory_order_relaxed))
		return; /* awake: it looks at its mailbox before it next sleeps */
	uint64_t one = 1;
	ssize_t r = write(t->mbox.io.fd, &one, sizeof(one));
	(void)r;
}

int vs_worker_post(struct vs_worker *w, int to, const struct vs_mail *m)
{
	return vec_push(&w->outbox[to], m);
}

void vs_worker_post_now(struct vs_worker *t, const struct vs_mail *m)
{
	pthread_mutex_lock(&t->mbox.lock);
	vec_push(&t->mbox.items, m);
	pthread_mutex_unlock(&t->mbox.lock);
	wake(t);
}

/* Appends c to a per-turn list; false when out of memory. */
static bool conn_list_add(struct vs_conn ***v, uint32_t *n, uint32_t *cap, struct vs_conn *c)
{
	if (VS_VEC_GROW(*v, *cap, *n + 1, 64) < 0)
		return false;
	(*v)[(*n)++] = c;
	return true;
}

void vs_worker_want_flush(struct vs_worker *w, struct vs_conn *c)
{
	/* Out of memory: flushed on the connection's next event. */
	if (!c->in_flush && conn_list_add(&w->flush, &w->n_flush, &w->cap_flush, c))
		c->in_flush = true;
}

void vs_worker_want_reread(struct vs_worker *w, struct vs_conn *c)
{
	/* Out of memory: read again when more input brings the next edge. */
	if (!c->in_reread && conn_list_add(&w->reread, &w->n_reread, &w->cap_reread, c))
		c->in_reread = true;
}

void vs_worker_want_drain(struct vs_worker *w, struct vs_session *s)
{
	if (VS_VEC_GROW(w->dirty, w->cap_dirty, w->n_dirty + 1, 64) < 0)
		return;
	w->dirty[w->n_dirty++] = vs_session_ref(s);
}

void vs_worker_bury(struct vs_worker *w, struct vs_conn *c)
{
	if (VS_VEC_GROW(w->graveyard, w->cap_graveyard, w->n_graveyard + 1, 16) < 0)
		return; /* cannot defer: leak rather than risk a use after free */
	w->graveyard[w->n_graveyard++] = c;
}

struct vs_conn *vs_worker_conn(struct vs_worker *w, uint32_t slot, uint64_t conn_id)
{
	struct vs_conn *c = slot < w->n_slots ? w->conns[slot] : NULL;
	return c && c->id == conn_id ? c : NULL;
}

void vs_worker_takeover(struct vs_worker *w, uint32_t slot, uint64_t conn_id, bool resumes)
{
	struct vs_conn *old = vs_worker_conn(w, slot, conn_id);
	/* Handle what the old connection already sent (a DISCONNECT, say) before it goes. */
	if (old && vs_conn_pump(old) == 0 && vs_worker_conn(w, slot, conn_id) == old) {
		old->superseded = resumes;
		vs_conn_close(old, VS_RC_SESSION_TAKEN_OVER, "session taken over");
	}
}

static int64_t resume_throttled(struct vs_worker *w, const void *key);

static void take_mail(struct vs_worker *w, const struct vs_mail *m)
{
	/* A resume carries nothing stored: what it causes need not wait for the sender's write. */
	if (m->seq > w->mail_seq && m->type != VS_MAIL_RESUME_PUBLISHERS)
		w->mail_seq = m->seq; /* what it causes waits for that write (held output) */
	switch (m->type) {
	case VS_MAIL_DRAIN:
		vs_router_drain_session(w, m->session);
		vs_session_unref(m->session);
		break;
	case VS_MAIL_CLUSTER:
		m->msg->created_ms = w->now_ms;
		int took = 1;
		if (m->share)
			took = vs_route_shared(w, m->msg, m->share);
		else
			vs_route(w, m->msg, NULL);
		vs_msg_unref(m->msg);
		free(m->share);
		/* A group's copy that no member here took (the last one left meanwhile) goes to
		 * another node's; one whose topic is not the group's, to none. */
		if (m->ack && took > 0)
			vs_cjs_routed(w, m->ack);
		else if (m->ack)
			vs_cjs_refuse(w, m->ack, took < 0);
		break;
	case VS_MAIL_KICK:
		vs_worker_takeover(w, m->slot, m->conn_id, false); /* no longer its session's */
		break;
	case VS_MAIL_ROAMED:
		vs_cluster_session_arrived(w, m);
		break;
	case VS_MAIL_HANDOVER:
		vs_cluster_session_handover(w, m);
		break;
	case VS_MAIL_HELD:
		vs_release_held(w);
		break;
	case VS_MAIL_RESUME_PUBLISHERS: /* conn_id: the drained session, as a key */
		if (w->n_throttled)
			resume_throttled(w, (const void *)(uintptr_t)m->conn_id);
		else /* set for a message no client published (a bridge's, a will): none paused */
			atomic_store_explicit(&w->any_paused, false, memory_order_relaxed);
		break;
	case VS_MAIL_TAKEOVER: {
		if (m->end_session) { /* a clean start on another node [MQTT-3.1.2-4] */
			struct vs_conn *c = vs_worker_conn(w, m->slot, m->conn_id);
			if (c)
				c->session_expiry = 0; /* detach_session ends it (conn.c) */
		}
		vs_worker_takeover(w, m->slot, m->conn_id, m->reason == 1);
		if (m->reply_to < 0)
			break; /* a take-over from another node (cluster_claim.c) */
		struct vs_mail r = {
		    .type = VS_MAIL_RESUME, .slot = m->reply_slot, .conn_id = m->reply_conn_id};
		vs_worker_post(w, m->reply_to, &r);
		break;
	}
	case VS_MAIL_RESUME: {
		struct vs_conn *c = vs_worker_conn(w, m->slot, m->conn_id);
		if (c && c->connecting && c->connecting->step == VS_CS_TAKEOVER) {
			c->connecting->step = VS_CS_NONE;
			c->parked = false;
			w->cur = c; /* the CONNACK waits for the session's records (persist.c) */
			enum vs_handled h = vs_connect_resume(c);
			w->cur = NULL;
			if (h == VS_GO_ON && !c->parked)
				vs_conn_unpark(c);
		}
		break;
	}
	case VS_MAIL_PING:
		atomic_store_explicit(&w->pong, m->conn_id, memory_order_release);
		break;
	case VS_MAIL_DUMP:
		vs_broker_dump_shard(w);
		break;
	case VS_MAIL_ADMIN_KICK: {
		struct vs_conn *c = vs_worker_conn(w, m->slot, m->conn_id);
		if (c && c->state != VS_CONN_CLOSING) {
			if (m->end_session)
				c->session_expiry = 0; /* detach_session ends it (conn.c) */
			vs_conn_close(c, m->reason, "disconnected through the HTTP API");
		}
		break;
	}
	case VS_MAIL_LISTEN:
		vs_worker_add_listener(w, &w->b->listeners[m->slot]);
		break;
	case VS_MAIL_UNLISTEN:
		vs_worker_remove_listener(w, &w->b->listeners[m->slot]);
		break;
	case VS_MAIL_AUTH: {
		struct vs_conn *c = vs_worker_conn(w, m->slot, m->conn_id);
		if (c && c->http) {
			vs_http_authenticated(c, m->reason == 1);
		} else if (c) {
			w->cur = c;
			vs_connect_authenticated(c, m->reason == 1);
			w->cur = NULL;
		}
		break;
	}
	default:
		break;
	}
}

static void take_mailbox(struct vs_worker *w)
{
	/* Two vectors trade places, so neither posting nor taking allocates in the steady state. */
	pthread_mutex_lock(&w->mbox.lock);
	struct vs_mail_vec items = w->mbox.items;
	w->mbox.items = w->mail_spare;
	pthread_mutex_unlock(&w->mbox.lock);
	for (uint32_t i = 0; i < items.n; i++)
		take_mail(w, &items.v[i]);
	items.n = 0;
	w->mail_spare = items;
}

static bool mailbox_pending(struct vs_worker *w)
{
	pthread_mutex_lock(&w->mbox.lock);
	bool pending = w->mbox.items.n > 0;
	pthread_mutex_unlock(&w->mbox.lock);
	return pending;
}

static void on_mailbox(struct vs_io *io, uint32_t events)
{
	(void)events;
	take_mailbox((struct vs_worker *)((char *)io - offsetof(struct vs_worker, mbox.io)));
}

/* Reads again the connections whose last read filled the buffer or saw the peer's close
 * (edge-triggered input). */
static void reread(struct vs_worker *w)
{
	uint32_t n = w->n_reread;
	for (uint32_t i = 0; i < n; i++) {
		struct vs_conn *c = w->reread[i];
		if (!c)
			continue; /* closed */
		c->in_reread = false;
		w->reread[i] = NULL;
		vs_conn_readable(c);
	}
	/* Reads above may have queued connections again, after the first n. */
	uint32_t k = 0;
	for (uint32_t i = n; i < w->n_reread; i++)
		if (w->reread[i])
			w->reread[k++] = w->reread[i];
	w->n_reread = k;
}

/* The commit of this turn failed: connections that were about to receive acknowledgements
 * lose that output and are closed, so nothing unstored is acknowledged; their clients resend. */
static void refuse_uncommitted(struct vs_worker *w)
{
	for (uint32_t i = 0; i < w->n_flush; i++) {
		struct vs_conn *c = w->flush[i];
		if (c && c->durable_pending) {
			/* No packet at all: a DISCONNECT could otherwise precede the CONNACK that
			 * was just dropped [MQTT-3.2.0-1]. */
			c->out.off = c->out.len = 0;
			c->durable_pending = false;
			vs_conn_close(c, -1, "persistence unavailable: acknowledgements withdrawn");
		}
	}
}

/*
 * Held output (persistence_fsync batch, b->store_async). A turn that wrote records does not
 * wait for their fdatasync: the store's sync thread makes it, while this thread reads on. The
 * output a connection got this turn waits until this thread's newest write is synced (conn.h
 * vs_hold), or the write of another thread whose mail caused it (vs_mail.seq), when it says
 * something stored (c->needs_sync, conn.c): an acknowledgement or a CONNACK after records were
 * appended for the connection's packet, a PUBREL, a QoS 2 delivery (delivered twice were its
 * message's PUBREC lost with the store). A QoS 1 delivery does not wait: a power loss may
 * deliver it again (its publisher, not acknowledged, sends it again), as QoS 1 allows. Output
 * behind held output waits too, whatever it is. The sync thread wakes a worker whose oldest
 * hold it has synced (vs_worker_synced). A failed sync withdraws the held output as a failed
 * write does (refuse_uncommitted), and the records are written again.
 */
static void hold_min_set(struct vs_worker *w, uint64_t min)
{
	w->hold_min = min;
	atomic_store_explicit(&w->hold_wait, min, memory_order_relaxed);
}

/* Holds the output c got this turn until write seq is synced. */
static void hold_conn(struct vs_worker *w, struct vs_conn *c, uint64_t seq)
{
	int rc = vs_conn_hold(c, seq);
	if (rc > 0 && !c->hold->listed &&
	    VS_VEC_GROW(w->held, w->cap_held, w->n_held + 1, 64) < 0) {
		c->hold->seq_a = c->hold->seq_b = 0;
		rc = -ENOMEM;
	}
	if (rc < 0) {
		/* No memory to hold it: the output waits here instead. */
		if (vs_store_sync_upto(w->b->store, seq) < 0) {
			c->out.off = c->out.len = 0;
			vs_conn_close(c, -1, "persistence unavailable: acknowledgements withdrawn");
		}
		return;
	}
	if (rc == 0 || c->hold->listed)
		return;
	c->hold->listed = true;
	w->held[w->n_held++] = c;
	if (!w->hold_min || c->hold->seq_a < w->hold_min)
		hold_min_set(w, c->hold->seq_a);
}

/* Lets go the output whose writes are synced, and closes the connections whose output waits
 * for a write whose sync failed (their clients send again what was not acknowledged). */
static void release_held(struct vs_worker *w, uint64_t synced, uint64_t failed)
{
	if (w->n_flight)
		vs_bp_settle(w, synced, failed);
	if (!w->n_held || (w->hold_min > synced && w->hold_min > failed))
		return;
	uint64_t min = 0;
	uint32_t k = 0;
	for (uint32_t i = 0; i < w->n_held; i++) {
		struct vs_conn *c = w->held[i];
		w->held[i] = NULL;
		if (!c)
			continue; /* closed */
		int rc = vs_conn_release(c, synced, failed);
		if (rc < 0) {
			c->hold->listed = false;
			c->hold->seq_a = c->hold->seq_b = 0;
			c->out.off = c->out.len = 0;
			c->durable_pending = false;
			vs_conn_close(c, -1, "persistence unavailable: acknowledgements withdrawn");
			continue;
		}
		if (rc > 0)
			vs_worker_want_flush(w, c);
		if (!c->hold->seq_a) {
			c->hold->listed = false;
			continue;
		}
		w->held[k++] = c;
		if (!min || c->hold->seq_a < min)
			min = c->hold->seq_a;
	}
	w->n_held = k;
	hold_min_set(w, min);
}

/* Whether held output of w can go now (or must be withdrawn). */
static bool held_ready(struct vs_worker *w)
{
	if (!w->hold_min)
		return false;
	uint64_t synced, failed;
	vs_store_durable(w->b->store, &synced, &failed);
	return w->hold_min <= synced || w->hold_min <= failed;
}

void vs_worker_synced(void *ctx)
{
	struct vs_broker *b = ctx;
	/* Pairs with before_sleep's fence: a worker about to sleep either sees the new marks or
	 * is seen sleeping (with its hold_wait) here. */
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t synced, failed;
	vs_store_durable(b->store, &synced, &failed);
	for (int i = 0; i < b->n_workers; i++) {
		struct vs_worker *t = &b->workers[i];
		uint64_t min = atomic_load_explicit(&t->hold_wait, memory_order_relaxed);
		if (min && (min <= synced || min <= failed))
			wake(t);
	}
}

void vs_worker_run_batch(struct vs_worker *w)
{
	vs_iobatch_run(&w->sb);
	if (!w->sb.ring)
		vs_log(w->b->log, VS_LOG_WARN,
		       "io_uring failed: one read and one send per connection from now on");
}

/* Operations in one batch at most; more go in the next. */
enum { IOBATCH_CAP = 256 };

/*
 * Writes the output of every connection listed for it. Plain TCP connections' writes go in one
 * system call when there are several (iobatch.h). Two passes: the first makes every write
 * (or queues it in the batch) and keeps its result; the second, once the batch has run, hands
 * each result to its connection. So nothing a result sets off (a close, a will, an HTTP
 * response) can touch a buffer the batch still points to. A connection listed again by the
 * second pass is written in the next round of the loop.
 */
static void flush_all(struct vs_worker *w, uint64_t hold)
{
	struct vs_iobatch *sb = &w->sb;
	for (uint32_t i = 0; i < w->n_flush;) {
		uint32_t start = i, end = w->n_flush, queued = 0;
		if (VS_VEC_GROW(w->flushed, w->cap_flushed, end, 64) < 0)
			sb = NULL; /* out of memory: one write after another, as without a batch */
		for (; i < end; i++) {
			struct vs_conn *c = w->flush[i];
			if (sb)
				w->flushed[i].c = NULL; /* nothing to hand over, unless set below */
			if (!c)
				continue; /* closed during the turn */
			c->in_flush = false;
			if (c->needs_sync) {
				c->needs_sync = false;
				if (hold)
					hold_conn(w, c, hold);
				if (c->state == VS_CONN_CLOSING)
					continue;
			}
			if (!sb) {
				vs_conn_flush(c);
				continue;
			}
			struct vs_flushed *f = &w->flushed[i];
			if (!vs_conn_flush_begin(c, &f->ready))
				continue;
			f->c = c;
			f->n = 0;
			f->batched =
			    f->ready && c->tp.ops == &vs_transport_tcp &&
			    vs_iobatch_send(sb, c->tp.fd, vs_bytes_head(&c->out), f->ready);
			queued += f->batched;
			if (f->ready && !f->batched)
				f->n = c->tp.ops->write(&c->tp, vs_bytes_head(&c->out), f->ready);
		}
		if (!sb)
			continue;
		if (queued == 1)
			sb->n = 0; /* one alone: its own send costs the same */
		else if (queued) {
			vs_worker_run_batch(w);
			vs_stat_add(&w->stats.writes_batched, queued);
			vs_stat_add(&w->stats.write_batches, 1);
		}
		/* What each write took comes off its buffer before anything else runs: a close
		 * set off by another's result then neither sends those bytes again nor keeps
		 * them to linger. */
		for (uint32_t j = start, q = 0; j < end; j++) {
			struct vs_flushed *f = &w->flushed[j];
			struct vs_conn *c = f->c;
			if (!c)
				continue;
			if (f->batched) {
				f->n = queued == 1 ? VS_IOBATCH_UNDONE : sb->res[q++];
				if (f->n == VS_IOBATCH_UNDONE)
					f->n = c->tp.ops->write(&c->tp, vs_bytes_head(&c->out),
								f->ready);
			}
			vs_conn_flush_written(c, f->n);
		}
		for (uint32_t j = start; j < end; j++) {
			struct vs_flushed *f = &w->flushed[j];
			struct vs_conn *c = f->c;
			/* Closed by what an earlier result set off: what it had left went with it.
			 */
			if (c && c->state != VS_CONN_CLOSING)
				vs_conn_flush_end(c, f->n, f->ready);
		}
	}
	w->n_flush = 0;
}

/* End of a loop turn: drain local sessions, post outboxes, flush connections. Draining may
 * produce output; flushing never produces mail. */
static void end_turn(struct vs_worker *w)
{
	for (uint32_t i = 0; i < w->n_dirty; i++) {
		vs_router_drain_session(w, w->dirty[i]);
		vs_session_unref(w->dirty[i]);
	}
	w->n_dirty = 0;
	bool async = w->b->store_async;
	uint64_t seq = 0;
	if (async) {
		int64_t rc = vs_bp_write(w);
		if (rc < 0 || w->commit_failed)
			refuse_uncommitted(w);
		seq = rc > 0 ? (uint64_t)rc : 0;
	} else if (vs_bp_commit(w) < 0 || w->commit_failed) {
		refuse_uncommitted(w);
	}
	w->commit_failed = false;
	for (int t = 0; t < w->b->n_workers; t++) {
		struct vs_mail_vec *ob = &w->outbox[t];
		if (ob->n == 0)
			continue;
		struct vs_worker *tw = &w->b->workers[t];
		for (uint32_t i = 0; seq && i < ob->n; i++)
			ob->v[i].seq = seq;
		pthread_mutex_lock(&tw->mbox.lock);
		bool was_empty = tw->mbox.items.n == 0;
		for (uint32_t i = 0; i < ob->n; i++)
			vec_push(&tw->mbox.items, &ob->v[i]);
		pthread_mutex_unlock(&tw->mbox.lock);
		if (was_empty)
			wake(tw);
		ob->n = 0;
	}
	/* The write the output of this turn that must wait waits for: this thread's newest
	 * (which this turn's records, if any, are in) or that of a mail taken. */
	uint64_t hold = 0;
	if (async) {
		hold = w->n_flight ? w->flight[w->n_flight - 1].seq : 0;
		if (w->mail_seq > hold)
			hold = w->mail_seq;
		w->mail_seq = 0;
		uint64_t synced, failed;
		vs_store_durable(w->b->store, &synced, &failed);
		if (hold <= synced && hold > failed)
			hold = 0; /* already durable */
		if (w->n_held || w->n_flight)
			release_held(w, synced, failed);
	}
	flush_all(w, hold);
	for (uint32_t i = 0; i < w->n_graveyard; i++)
		free(w->graveyard[i]);
	w->n_graveyard = 0;
}

static void sweep(struct vs_worker *w)
{
	int64_t now = w->now_ms;
	/* The buffers of reads made ahead go back once unused for a sweep's interval; the next
	 * wait with several readable connections takes them again. */
	for (uint32_t i = 0; w->pre && !w->pre_used && i < VS_PREFETCH_SLOTS; i++)
		vs_bytes_shrink(&w->pre[i].buf, 0);
	w->pre_used = false;
	for (uint32_t i = 0; i < w->n_slots; i++) {
		struct vs_conn *c = w->conns[i];
		if (!c)
			continue;
		int ct = w->b->conf->connect_timeout;
		/* A CONNECT waiting for a password check or for the cluster (cluster_session.h)
		 * is under the connect timeout too; one waiting for a take-over is not long. */
		bool waits_here =
		    !c->parked || (c->connecting && (c->connecting->step == VS_CS_AUTH ||
						     c->connecting->step == VS_CS_ROAM ||
						     c->connecting->step == VS_CS_BARRIER));
		if (c->http && vs_http_sweep(c) < 0)
			continue;
		if (!c->http && c->state == VS_CONN_NEW && waits_here &&
		    now - c->last_rx_ms > ct * 1000) {
			char why[48];
			snprintf(why, sizeof(why), "no CONNECT within %d s", ct);
			vs_conn_close(c, VS_RC_MAX_CONNECT_TIME, why);
			continue;
		}
		/* Idle connections give their buffers back (a TLS connection's after a second). */
		if (!c->in_flush) {
			vs_bytes_shrink(&c->out, 0);
			vs_bytes_shrink(&c->in, 0);
			if (c->hold && !c->hold->listed && !vs_bytes_avail(&c->out)) {
				free(c->hold);
				c->hold = NULL;
			}
			if (now - c->last_rx_ms > 1000 && !vs_bytes_avail(&c->out))
				vs_transport_shrink(&c->tp);
		}
		/* [MQTT-3.1.2-24] one and a half times the keep alive without a packet. */
		if (c->state == VS_CONN_ACTIVE && c->keepalive &&
		    now - c->last_rx_ms > (int64_t)c->keepalive * 1500) {
			vs_conn_close(c, VS_RC_KEEPALIVE_TIMEOUT, "keep alive timeout");
			continue;
		}
		if (c->listener->sn)
			vs_gateway_sweep(c);
		else if (c->state == VS_CONN_ACTIVE)
			vs_conn_check_stall(c);
	}
	vs_conn_log_summary(w);
	if (w->n_replies)
		vs_release_held(w); /* those held too long (subscribe.c) */
	vs_conn_linger_sweep(w, false);
	vs_gateway_tick(w);
	if (w->idx == 0) {
		vs_bridges_tick(w);
		vs_sys_tick(w);
		vs_gateway_advertise(w);
	}
}

/* Reads throttled connections again: those whose pause is over (key NULL; returns the next
 * such time, or INT64_MAX), or those that wait for the queue `key`, which drained. */
static int64_t resume_throttled(struct vs_worker *w, const void *key)
{
	int64_t next = INT64_MAX;
	uint32_t k = 0;
	for (uint32_t i = 0; i < w->n_throttled; i++) {
		struct vs_conn *c = w->throttled[i].c;
		if (!c)
			continue;
		if (key ? w->throttled[i].key == key : c->throttle_until_ms <= w->now_ms) {
			vs_stat_add(key ? &w->stats.pub_resumed_drain : &w->stats.pub_resumed_timer,
				    1);
			c->throttled = false;
			vs_conn_update_events(c);
			/* Input may wait where no edge will announce it: read ahead by TLS, or
			 * left in the socket by the read that stopped for the throttle. */
			vs_worker_want_reread(w, c);
			continue;
		}
		if (c->throttle_until_ms < next)
			next = c->throttle_until_ms;
		w->throttled[k++] = w->throttled[i];
	}
	w->n_throttled = k;
	atomic_store_explicit(&w->any_paused, k > 0, memory_order_relaxed);
	return next;
}

/*
 * A publisher slowed for a full queue (publish.c) waits until that queue drains back within its
 * limit, or until its pause ends, whichever is first: the pause bounds the wait when the queue is
 * not drained (its subscriber left), or when the publisher fed several full queues at once. The
 * session is only a key here: a session freed meanwhile and another allocated at its address
 * would at worst resume a publisher early, which its next message pauses again.
 */
void vs_worker_resume_publishers(struct vs_worker *w, const struct vs_session *s)
{
	if (w->n_throttled)
		resume_throttled(w, s);
	struct vs_mail m = {.type = VS_MAIL_RESUME_PUBLISHERS, .conn_id = (uintptr_t)s};
	for (int t = 0; t < w->b->n_workers; t++)
		if (t != w->idx &&
		    atomic_load_explicit(&w->b->workers[t].any_paused, memory_order_relaxed))
			vs_worker_post(w, t, &m);
}

/* Milliseconds until w needs a turn even without an event (0: work is left over). */
int vs_worker_timeout(struct vs_worker *w)
{
	int64_t wake = w->next_sweep_ms;
	if (w->listen_resume_ms && w->listen_resume_ms < wake)
		wake = w->listen_resume_ms;
	if (w->n_throttled) {
		int64_t t = resume_throttled(w, NULL);
		wake = t < wake ? t : wake;
	}
	int64_t timeout = wake - w->now_ms;
	if (timeout < 0 || w->n_dirty || w->n_flush || w->n_reread)
		timeout = 0; /* work left by the previous turn (a drained output buffer) */
	return (int)timeout;
}

/* Announces a sleep of w (see wake()) and reports whether its mailbox has mail. */
bool vs_worker_before_sleep(struct vs_worker *w, bool sleeping)
{
	atomic_store_explicit(&w->sleeping, sleeping, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	return mailbox_pending(w) || held_ready(w);
}

/* The part of a turn of shard w after its events: mail, rereads, end of turn, sweep. */
void vs_worker_after_events(struct vs_worker *w, bool mail)
{
	if (mail)
		take_mailbox(w);
	vs_worker_resume_listeners(w);
	reread(w);
	end_turn(w);
	if (w->now_ms >= w->next_sweep_ms) {
		w->next_sweep_ms = w->now_ms + 100;
		sweep(w);
		end_turn(w);
	}
}

/*
 * A stop drains: what other shards handed this one before the stop (messages for its clients,
 * waiting in its mailbox) is written before the connections close. Two rounds around a
 * rendezvous of every thread, so that what another shard's first round passes on is taken by
 * the second; a thread that does not come within a second is not waited for.
 */
static void drain_mailbox(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	take_mailbox(w);
	end_turn(w);
	atomic_fetch_add(&b->drained, 1);
	int64_t until = vs_now_ms() + 1000;
	while (atomic_load(&b->drained) < b->n_workers && vs_now_ms() < until)
		usleep(1000);
	take_mailbox(w);
	end_turn(w);
}

void vs_worker_shutdown(struct vs_worker *w)
{
	vs_worker_stop_accepting(w);
	drain_mailbox(w);
	/* Every connection is closed (5.0: DISCONNECT 0x8B), after what was queued for it. */
	for (uint32_t i = 0; i < w->n_slots; i++)
		if (w->conns[i])
			vs_conn_close(w->conns[i], VS_RC_SERVER_SHUTTING_DOWN,
				      "broker shutting down");
	end_turn(w);
}

void vs_worker_poll(struct vs_worker *w)
{
	bool mail = mailbox_pending(w);
	vs_loop_run_once(&w->loop, 0);
	w->now_ms = vs_now_ms();
	vs_worker_after_events(w, mail);
}

int vs_worker_init(struct vs_worker *w, struct vs_broker *b, int idx, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	/* Everything vs_worker_fini releases is valid from here on, so that it can follow a
	 * failure at any step below (a zeroed descriptor would be fd 0, stdin). */
	w->spare_fd = -1;
	w->loop.epfd = -1;
	w->mbox.io.fd = -1;
	w->th.ctl_io.fd = -1;
	pthread_mutex_init(&w->mbox.lock, NULL);
	if (vs_grace_register(&b->grace, &w->th.gr) < 0) {
		pthread_mutex_destroy(&w->mbox.lock);
		return -ENOMEM;
	}
	w->b = b;
	w->idx = idx;
	w->now_ms = vs_now_ms(); /* deadlines set before the first turn count from now, not 0 */
	int rc = vs_loop_init(&w->loop);
	if (rc < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(-rc));
		return rc;
	}
	w->mbox.io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->mbox.io.fn = on_mailbox;
	if (w->mbox.io.fd < 0 || vs_loop_add(&w->loop, &w->mbox.io, EPOLLIN | EPOLLET) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -errno;
	}
	w->own_epfd = w->loop.epfd;
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	rc = vs_worker_host_init(w, err, errlen);
	if (rc < 0)
		return rc;
	w->outbox = calloc((size_t)b->n_workers, sizeof(*w->outbox));
	if (!w->outbox || vs_bytes_reserve(&w->rbuf, 64 * 1024) < 0)
		return -ENOMEM;
	if (b->conf->io_uring) {
		rc = vs_iobatch_open(&w->sb, IOBATCH_CAP);
		/* Said once, unless a later thread fares worse than thread 0 (a limit reached). */
		if (rc < 0 && (idx == 0 || b->workers[0].sb.ring))
			vs_log(b->log, VS_LOG_NOTICE,
			       "io_uring unavailable (%s) on thread %d: one read and one send per "
			       "connection",
			       strerror(-rc), idx);
		else if (idx == 0)
			vs_log(b->log, VS_LOG_INFO,
			       "io_uring: the reads and the sends of a loop turn go in one system "
			       "call each");
	}
	/* Every worker listens on every listener; the kernel spreads connections (SO_REUSEPORT).
	 * Room for the listeners reloads may add: a listen_io never moves (epoll points to it). */
	w->listens = calloc(b->cap_listeners * 4, sizeof(*w->listens));
	if (!w->listens)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_listeners; i++) {
		rc = vs_worker_open_listener(w, &b->listeners[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void vs_worker_drop_acks(struct vs_worker *w)
{
	pthread_mutex_lock(&w->mbox.lock);
	for (uint32_t i = 0; i < w->mbox.items.n; i++) {
		if (w->mbox.items.v[i].ack)
			vs_cjs_drop(w->mbox.items.v[i].ack);
		w->mbox.items.v[i].ack = NULL;
	}
	pthread_mutex_unlock(&w->mbox.lock);
}

void vs_worker_fini(struct vs_worker *w)
{
	for (int i = 0; i < w->n_listens; i++) {
		if (w->listens[i].io.fd >= 0)
			close(w->listens[i].io.fd);
		vs_gateway_socket_close(&w->listens[i]);
	}
	free(w->listens);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	if (w->mbox.io.fd >= 0)
		close(w->mbox.io.fd);
	if (w->th.ctl_io.fd >= 0)
		close(w->th.ctl_io.fd);
	free(w->th.run);
	for (uint32_t i = 0; i < w->mbox.items.n; i++) {
		if (w->mbox.items.v[i].session)
			vs_session_unref(w->mbox.items.v[i].session);
		if (w->mbox.items.v[i].other)
			vs_session_unref(w->mbox.items.v[i].other);
		if (w->mbox.items.v[i].msg)
			vs_msg_unref(w->mbox.items.v[i].msg);
		free(w->mbox.items.v[i].share);
		if (w->mbox.items.v[i].ack)
			vs_cjs_drop(
			    w->mbox.items.v[i].ack); /* not acked: JetStream sends it again */
	}
	free(w->mbox.items.v);
	free(w->mail_spare.v);
	free(w->cluster_buf);
	pthread_mutex_destroy(&w->mbox.lock);
	if (w->outbox)
		for (int t = 0; t < w->b->n_workers; t++)
			free(w->outbox[t].v);
	free(w->outbox);
	free(w->conns);
	free(w->free_slots);
	free(w->dirty);
	free(w->flush);
	free(w->flushed);
	free(w->matches);
	free(w->sub_ids);
	free(w->graveyard);
	for (uint32_t i = 0; i < w->n_replies; i++) {
		vs_bytes_fini(&w->replies[i].out);
		free(w->replies[i].share);
	}
	free(w->replies);
	vs_conn_linger_sweep(w, true);
	free(w->linger);
	free(w->throttled);
	free(w->reread);
	vs_bytes_fini(&w->rbuf);
	vs_iobatch_close(&w->sb);
	for (uint32_t i = 0; w->pre && i < VS_PREFETCH_SLOTS; i++)
		vs_bytes_fini(&w->pre[i].buf);
	free(w->pre);
	vs_store_buf_fini(&w->pbuf);
	vs_bp_worker_fini(w);
	free(w->held);
	vs_loop_fini(&w->loop);
}
