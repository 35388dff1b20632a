/*
 * Grace periods (see grace.h). The retire list and the reader list are the writer's, under a
 * mutex that readers never take on their fast path (only to register).
 *
 * Why retiring bumps the epoch: an object retired at epoch E may be held by a reader whose
 * `seen` is below E (it read the pointer before the swap). Once every online reader's `seen` is
 * at least E, each has passed a quiescent state after the swap, and holds no pointer to the
 * old object. Offline readers hold none by promise. The fence in reclaim pairs with the one in
 * vs_grace_online(): a reader coming online either has its `seen` seen here (and is waited
 * for), or sees the new pointer.
 */
#include "base/vec.h"
#include "broker/grace.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

void vs_grace_init(struct vs_grace *g)
{
	atomic_init(&g->epoch, 1);
	pthread_mutex_init(&g->lock, NULL);
	g->readers = NULL;
	g->n_readers = g->cap_readers = 0;
	g->items = NULL;
	g->n_items = g->cap_items = 0;
}

void vs_grace_fini(struct vs_grace *g)
{
	for (size_t i = 0; i < g->n_items; i++)
		g->items[i].free(g->items[i].p);
	free(g->items);
	free(g->readers);
	pthread_mutex_destroy(&g->lock);
}

int vs_grace_register(struct vs_grace *g, struct vs_grace_reader *r)
{
	atomic_init(&r->seen, UINT64_MAX);
	pthread_mutex_lock(&g->lock);
	if (VS_VEC_GROW(g->readers, g->cap_readers, g->n_readers + 1, 8) < 0) {
		pthread_mutex_unlock(&g->lock);
		return -ENOMEM;
	}
	g->readers[g->n_readers++] = r;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

void vs_grace_unregister(struct vs_grace *g, struct vs_grace_reader *r)
{
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n_readers; i++) {
		if (g->readers[i] == r) {
			g->readers[i] = g->readers[--g->n_readers];
			break;
		}
	}
	pthread_mutex_unlock(&g->lock);
}

/* The lowest epoch an online reader has seen (UINT64_MAX when all are offline). Caller holds
 * g->lock. */
static uint64_t oldest_seen(struct vs_grace *g)
{
	atomic_thread_fence(memory_order_seq_cst);
	uint64_t min = UINT64_MAX;
	for (size_t i = 0; i < g->n_readers; i++) {
		uint64_t s = atomic_load_explicit(&g->readers[i]->seen, memory_order_acquire);
		if (s < min)
			min = s;
	}
	return min;
}

size_t vs_grace_reclaim(struct vs_grace *g)
{
	pthread_mutex_lock(&g->lock);
	uint64_t min = oldest_seen(g);
	size_t k = 0;
	for (size_t i = 0; i < g->n_items; i++) {
		struct vs_grace_item *it = &g->items[i];
		if (it->epoch <= min)
			it->free(it->p);
		else
			g->items[k++] = *it;
	}
	g->n_items = k;
	pthread_mutex_unlock(&g->lock);
	return k;
}

void vs_grace_wait(struct vs_grace *g)
{
	while (vs_grace_reclaim(g)) {
		struct timespec ts = {.tv_nsec = 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int vs_grace_retire(struct vs_grace *g, void *p, void (*free_fn)(void *p))
{
	uint64_t epoch = atomic_fetch_add(&g->epoch, 1) + 1;
	pthread_mutex_lock(&g->lock);
	if (VS_VEC_GROW(g->items, g->cap_items, g->n_items + 1, 8) < 0) {
		/* No room to defer: wait for the readers here instead. */
		while (oldest_seen(g) < epoch) {
			pthread_mutex_unlock(&g->lock);
			struct timespec ts = {.tv_nsec = 2 * 1000 * 1000};
			nanosleep(&ts, NULL);
			pthread_mutex_lock(&g->lock);
		}
		pthread_mutex_unlock(&g->lock);
		free_fn(p);
		return -ENOMEM;
	}
	g->items[g->n_items++] = (struct vs_grace_item){.epoch = epoch, .p = p, .free = free_fn};
	pthread_mutex_unlock(&g->lock);
	return 0;
}
