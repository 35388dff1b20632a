/* How far this node has taken the stream: what its workers hold, what was given back or lost
 * on the way (cluster_js.h vs_cjs_floor, cluster_js_int.h). */
#include "broker/cluster_js.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/map.h"
#include "base/vec.h"
#include "broker/broker.h"
#include "broker/cluster_js_int.h"
#include "broker/worker.h"

/* What is still to come again holds the floor back (vs_cjs_floor); below the consumer's
 * starting point everything was acknowledged in an earlier life. Called once the message that
 * came is tracked (delivery thread). */
void vs_cjs_update_gap_low(struct vs_cjs *j)
{
	uint64_t low = 0;
	for (uint32_t i = 0; i < j->lost.n && !low; i++)
		if (j->lost.gap[i].hi > j->start_floor)
			low = j->lost.gap[i].lo > j->start_floor ? j->lost.gap[i].lo
								 : j->start_floor + 1;
	atomic_store(&j->gap_low, low);
}

/*
 * Whether nm comes again after its first delivery was lost (cluster/gaps.h): while this node's
 * connection moves to another NATS server, what the dead one was sending it is gone, and comes
 * again one ack wait later, behind messages routed since (delivery thread).
 */
bool vs_cjs_was_lost(struct vs_cjs *j, natsMsg *nm, uint64_t *seq, bool *again)
{
	jsMsgMetaData *meta = NULL;
	*seq = 0;
	*again = false;
	if (natsMsg_GetMetaData(&meta, nm) != NATS_OK)
		return false;
	*seq = meta->Sequence.Stream;
	*again = meta->NumDelivered > 1;
	bool lost = false;
	if (meta->NumDelivered <= 1) {
		uint64_t n = vs_cluster_gaps_first(&j->lost, meta->Sequence.Stream);
		if (n)
			vs_log(j->b->log, VS_LOG_NOTICE,
			       "cluster: %llu messages of the stream were lost on the way here: "
			       "they come again in %d s",
			       (unsigned long long)n, j->b->conf->cluster_ack_wait);
	} else {
		lost = vs_cluster_gaps_take(&j->lost, meta->Sequence.Stream);
	}
	jsMsgMetaData_Destroy(meta);
	return lost;
}

void vs_cjs_note_received(struct vs_cjs *j, uint64_t seq)
{
	uint_fast64_t max = atomic_load_explicit(&j->recv_max, memory_order_relaxed);
	while (seq > max && !atomic_compare_exchange_weak(&j->recv_max, &max, seq))
		;
}

void vs_cjs_give_back(struct vs_cjs *j, uint64_t seq)
{
	if (!seq)
		return; /* a shared group's copy, or unknown: nothing this node waits for */
	pthread_mutex_lock(&j->nlock);
	if (VS_VEC_GROW(j->naked, j->cap_naked, j->n_naked + 1, 16) < 0)
		atomic_store(&j->untracked, true);
	else
		j->naked[j->n_naked++] = seq;
	pthread_mutex_unlock(&j->nlock);
}

/* seq came again after it was given back. */
void vs_cjs_came_back(struct vs_cjs *j, uint64_t seq)
{
	pthread_mutex_lock(&j->nlock);
	for (uint32_t i = 0; i < j->n_naked; i++)
		if (j->naked[i] == seq) {
			j->naked[i] = j->naked[--j->n_naked];
			break;
		}
	pthread_mutex_unlock(&j->nlock);
}

void vs_cjs_track(struct vs_cjs *j, int worker, void *ack, uint64_t seq)
{
	(void)ack;
	if (!j || !j->w || worker < 0 || worker >= j->n_w)
		return;
	struct wjs *p = &j->w[worker];
	pthread_mutex_lock(&p->tlock);
	if (p->tq_n == p->tq_cap) {
		uint32_t cap = p->tq_cap ? p->tq_cap * 2 : 256;
		uint64_t *q = malloc(cap * sizeof(*q));
		if (!q) {
			atomic_store(&j->untracked, true);
			pthread_mutex_unlock(&p->tlock);
			return;
		}
		for (uint32_t i = 0; i < p->tq_n; i++)
			q[i] = p->tq[(p->tq_head + i) % p->tq_cap];
		free(p->tq);
		p->tq = q;
		p->tq_head = 0;
		p->tq_cap = cap;
	}
	p->tq[(p->tq_head + p->tq_n++) % p->tq_cap] = seq;
	pthread_mutex_unlock(&p->tlock);
	if (seq)
		vs_cjs_came_back(j, seq);
}

/* The first n of worker p's messages were acknowledged, or (back) given back. */
void vs_cjs_settle(struct vs_cjs *j, struct wjs *p, uint32_t n, bool back)
{
	pthread_mutex_lock(&p->tlock);
	for (uint32_t i = 0; i < n && p->tq_n; i++) {
		uint64_t seq = p->tq[p->tq_head];
		p->tq_head = (p->tq_head + 1) % p->tq_cap;
		p->tq_n--;
		if (back)
			vs_cjs_give_back(j, seq);
	}
	pthread_mutex_unlock(&p->tlock);
}

/* Worker p's message at position at (after the at routed before it) was dropped unacknowledged:
 * JetStream sends it again after the ack wait. */
void vs_cjs_settle_at(struct vs_cjs *j, struct wjs *p, uint32_t at)
{
	pthread_mutex_lock(&p->tlock);
	if (at < p->tq_n) {
		uint64_t seq = p->tq[(p->tq_head + at) % p->tq_cap];
		for (uint32_t i = at; i + 1 < p->tq_n; i++)
			p->tq[(p->tq_head + i) % p->tq_cap] =
			    p->tq[(p->tq_head + i + 1) % p->tq_cap];
		p->tq_n--;
		vs_cjs_give_back(j, seq);
	}
	pthread_mutex_unlock(&p->tlock);
}

/* Below the lowest stream sequence this node has not finished taking (and, with held, that a
 * session of it still holds). */
static uint64_t floor_of(struct vs_cjs *j, bool with_held)
{
	if (!j)
		return 0;
	if (atomic_load(&j->untracked))
		return j->start_floor;
	/* Read first: a message tracked after the scans below raises it, never lowers it. */
	uint64_t max = atomic_load(&j->recv_max), acked = atomic_load(&j->ack_floor);
	uint64_t low = UINT64_MAX;
	for (int k = 0; k < j->n_w; k++) {
		struct wjs *p = &j->w[k];
		pthread_mutex_lock(&p->tlock);
		for (uint32_t i = 0; i < p->tq_n; i++) {
			uint64_t seq = p->tq[(p->tq_head + i) % p->tq_cap];
			if (seq && seq < low)
				low = seq;
		}
		pthread_mutex_unlock(&p->tlock);
	}
	pthread_mutex_lock(&j->nlock);
	for (uint32_t i = 0; i < j->n_naked; i++)
		if (j->naked[i] > acked && j->naked[i] < low)
			low = j->naked[i];
	pthread_mutex_unlock(&j->nlock);
	uint64_t gap = atomic_load(&j->gap_low);
	if (gap) /* below what JetStream says was acknowledged, a gap is stale: that bounds it */
		gap = gap > acked ? gap : acked + 1;
	if (gap && gap < low)
		low = gap;
	/* Taken, acknowledged to JetStream, and still held by a session (queued, in its window):
	 * should this node die, another rebuilding the session must read it again. */
	uint64_t held = with_held ? vs_minset_min(&j->b->stream_held) : UINT64_MAX;
	if (held < low)
		low = held;
	return low == UINT64_MAX ? max : low - 1 < max ? low - 1 : max;
}

uint64_t vs_cjs_floor(struct vs_cjs *j)
{
	return floor_of(j, true);
}

uint64_t vs_cjs_taken(struct vs_cjs *j)
{
	return floor_of(j, false);
}

bool vs_cjs_own_back(struct vs_cjs *j, uint64_t stamp, uint64_t *sseq)
{
	if (!j || atomic_load(&j->own_stamp) < stamp)
		return false;
	*sseq = atomic_load(&j->own_sseq); /* written first: at or after stamp's */
	return true;
}
