/*
 * A counted set of 64-bit numbers that says its smallest, for the cluster's stream floor
 * (cluster_js.h): the stream sequences of messages some session still holds. Any thread: one
 * mutex inside. Two binary heaps, what was added and what was deleted: the smallest added value
 * not deleted is found by popping both while their tops are equal, so adding and deleting cost
 * O(log n) and a value may be added several times (each add wants its own delete).
 */
#ifndef VS_BASE_MINSET_H
#define VS_BASE_MINSET_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct vs_minset {
	pthread_mutex_t lock;
	uint64_t *in, *out; /* heaps: added, deleted */
	size_t n_in, cap_in, n_out, cap_out;
};

void vs_minset_init(struct vs_minset *s);
void vs_minset_fini(struct vs_minset *s);
/* Adds v once more. Returns 0, or -ENOMEM (nothing added). */
int vs_minset_add(struct vs_minset *s, uint64_t v);
/* Deletes one of the v added. Without memory for it, v stays: the smallest may then be lower
 * than it should, never higher. */
void vs_minset_del(struct vs_minset *s, uint64_t v);
/* The smallest value added and not deleted, or UINT64_MAX when there is none. */
uint64_t vs_minset_min(struct vs_minset *s);
/* How many values are in the set (adds minus deletes). */
size_t vs_minset_count(struct vs_minset *s);

#endif
