/*
 * A set of subscriptions keyed by owner: the ordinary subscribers of one filter, or the members
 * of one shared group. Internal to src/topic/.
 *
 * The subscriptions sit in one dense array, so a match hands them to the callback without
 * copying (a group's members[0..n) are exactly this array). Most filters have a handful of
 * subscribers and are searched by a linear scan; once a set passes SUBSET_SCAN entries it grows
 * an owner index (open addressing of array positions), so that 100k clients subscribing to one
 * filter cost O(1) each instead of O(n). Removal moves the last entry into the hole: order is
 * not kept, which no caller relies on.
 *
 * Not thread-safe: the tree's lock covers it.
 */
#ifndef VS_TOPIC_SUBSET_H
#define VS_TOPIC_SUBSET_H

#include <stdint.h>

#include "topic/tree.h"

#define VS_SUBSET_SCAN 8

struct vs_subset {
	struct vs_sub *v; /* v[0..n), dense */
	uint32_t n;
	uint32_t cap;
	uint32_t *idx;	  /* owner index: position + 1, 0 = empty; NULL while n <= VS_SUBSET_SCAN */
	uint32_t idx_cap; /* 0 or a power of two, kept >= 2 * n */
};

/* Position of owner's subscription, or -1. */
int64_t vs_subset_find(const struct vs_subset *s, const void *owner);
/* Adds sub, or replaces the options of sub->owner's entry. Returns 1 if added, 0 if replaced,
 * or -ENOMEM (s unchanged). */
int vs_subset_put(struct vs_subset *s, const struct vs_sub *sub);
/* Removes owner's entry. Returns 1 if there was one, else 0. Frees everything when s empties. */
int vs_subset_del(struct vs_subset *s, const void *owner);
void vs_subset_fini(struct vs_subset *s);

#endif
