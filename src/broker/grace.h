/*
 * Grace periods: replacing what every worker reads, without locks on the read side.
 *
 * A reload (SIGHUP) builds new versions of shared read-only objects (the configuration, a
 * listener's password file and ACL) while workers go on using the old ones, swaps a pointer,
 * and frees the old version only once no thread can still hold it. This is quiescent-state-
 * based reclamation (QSBR, as in the Linux kernel's RCU and liburcu's QSBR flavour), sized for
 * Viesti: a handful of reader threads, a writer that reloads a few times a day.
 *
 * Readers are threads that dereference the shared pointers: the worker threads, the snapshot
 * thread, the authentication threads. Each has a struct vs_grace_reader and promises:
 *   - vs_grace_quiescent() between units of work (a worker's loop turn): it holds no pointer
 *     read before that call;
 *   - vs_grace_offline() before it blocks (epoll_wait, a condition variable) and
 *     vs_grace_online() before it reads shared pointers again.
 * The writer (the main thread) swaps a pointer with a sequentially consistent store, hands the
 * old object to vs_grace_retire(), and calls vs_grace_reclaim() now and then, which frees every
 * retired object that all online readers have passed a quiescent state since.
 *
 * Cost to a reader: one relaxed load and one store per loop turn, on a cache line of its own.
 */
#ifndef VS_BROKER_GRACE_H
#define VS_BROKER_GRACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct vs_grace_reader {
	atomic_uint_fast64_t seen; /* the epoch at its last quiescent state; UINT64_MAX while
				    * offline */
	char pad[56];		   /* a cache line each: readers write theirs every loop turn
				    * (padding, not _Alignas: readers live in malloc'd memory) */
};

struct vs_grace_item {
	uint64_t epoch;
	void *p;
	void (*free)(void *p);
};

struct vs_grace {
	atomic_uint_fast64_t epoch;
	pthread_mutex_t lock; /* readers register, the writer retires and reclaims */
	struct vs_grace_reader **readers;
	size_t n_readers, cap_readers;
	struct vs_grace_item *items; /* retired, not yet freed */
	size_t n_items, cap_items;
};

void vs_grace_init(struct vs_grace *g);
/* Frees whatever is still retired (no reader may be running). */
void vs_grace_fini(struct vs_grace *g);

/* Registers r (offline until vs_grace_online); unregister before freeing r. Returns 0 or
 * -ENOMEM. */
int vs_grace_register(struct vs_grace *g, struct vs_grace_reader *r);
void vs_grace_unregister(struct vs_grace *g, struct vs_grace_reader *r);

static inline void vs_grace_quiescent(struct vs_grace *g, struct vs_grace_reader *r)
{
	atomic_store_explicit(&r->seen, atomic_load_explicit(&g->epoch, memory_order_relaxed),
			      memory_order_release);
}

static inline void vs_grace_offline(struct vs_grace_reader *r)
{
	atomic_store_explicit(&r->seen, UINT64_MAX, memory_order_release);
}

/* Back online: the store is ordered before any later load of a shared pointer. */
static inline void vs_grace_online(struct vs_grace *g, struct vs_grace_reader *r)
{
	atomic_store_explicit(&r->seen, atomic_load_explicit(&g->epoch, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

/* Writer: p (already unreachable through the shared pointers) is freed with free_fn once every
 * reader has been quiescent or offline since now. Returns 0, or -ENOMEM (p was then freed
 * after waiting for the readers: vs_grace_wait). */
int vs_grace_retire(struct vs_grace *g, void *p, void (*free_fn)(void *p));
/* Writer: frees what may be freed now; returns how many are still waiting. */
size_t vs_grace_reclaim(struct vs_grace *g);
/* Writer: waits (polling, a few ms at a time) until everything retired can be freed, and
 * frees it. For shutdown and for the rare allocation failure. */
void vs_grace_wait(struct vs_grace *g);

#endif
