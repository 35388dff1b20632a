/*
 * Owner-keyed subscription sets: see subset.h. The owner index is linear probing with
 * backward-shift deletion, like level.c, over positions in the dense array.
 */
#include "base/vec.h"
#include "topic/subset.h"

#include <errno.h>
#include <stdlib.h>

static uint32_t owner_hash(const void *owner)
{
	uint64_t h = (uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 32);
}

/* The index slot holding owner, or the empty slot where it would go. */
static uint32_t idx_slot(const struct vs_subset *s, const void *owner)
{
	uint32_t mask = s->idx_cap - 1, i = owner_hash(owner) & mask;

	while (s->idx[i] && s->v[s->idx[i] - 1].owner != owner)
		i = (i + 1) & mask;
	return i;
}

int64_t vs_subset_find(const struct vs_subset *s, const void *owner)
{
	uint32_t i;

	if (s->idx) {
		i = idx_slot(s, owner);
		return s->idx[i] ? (int64_t)s->idx[i] - 1 : -1;
	}
	for (i = 0; i < s->n; i++) {
		if (s->v[i].owner == owner)
			return i;
	}
	return -1;
}

/* (Re)builds the owner index with cap slots over v[0..n). Returns 0 or -ENOMEM. */
static int reindex(struct vs_subset *s, uint32_t cap)
{
	uint32_t *idx = calloc(cap, sizeof(*idx));
	uint32_t k;

	if (!idx)
		return -ENOMEM;
	free(s->idx);
	s->idx = idx;
	s->idx_cap = cap;
	for (k = 0; k < s->n; k++)
		s->idx[idx_slot(s, s->v[k].owner)] = k + 1;
	return 0;
}

/* Makes room for one more entry in v and, past VS_SUBSET_SCAN, in the index. */
static int reserve(struct vs_subset *s)
{
	if (VS_VEC_GROW(s->v, s->cap, s->n + 1, 2) < 0)
		return -ENOMEM;
	if (s->n + 1 > VS_SUBSET_SCAN && (s->n + 1) * 2 > s->idx_cap)
		return reindex(s, s->idx_cap ? s->idx_cap * 2 : 4 * VS_SUBSET_SCAN);
	return 0;
}

int vs_subset_put(struct vs_subset *s, const struct vs_sub *sub)
{
	int64_t pos = vs_subset_find(s, sub->owner);
	int rc;

	if (pos >= 0) {
		s->v[pos] = *sub; /* [MQTT-3.8.4-3] the new subscription replaces the old one */
		return 0;
	}
	rc = reserve(s);
	if (rc < 0)
		return rc;
	s->v[s->n] = *sub;
	if (s->idx)
		s->idx[idx_slot(s, sub->owner)] = s->n + 1;
	s->n++;
	return 1;
}

/* Empties index slot i, shifting back the entries after it that probed past it. */
static void idx_erase(struct vs_subset *s, uint32_t i)
{
	uint32_t mask = s->idx_cap - 1, j = i, h;

	s->idx[i] = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (!s->idx[j])
			return;
		h = owner_hash(s->v[s->idx[j] - 1].owner) & mask;
		if (i <= j ? (h > i && h <= j) : (h > i || h <= j))
			continue;
		s->idx[i] = s->idx[j];
		s->idx[j] = 0;
		i = j;
	}
}

/* Gives memory back after churn; a shrink that cannot allocate is skipped. */
static void shrink(struct vs_subset *s)
{
	if (s->cap > 8 && s->n * 4 < s->cap) {
		struct vs_sub *v = realloc(s->v, s->cap / 2 * sizeof(*v));
		if (v) {
			s->v = v;
			s->cap /= 2;
		}
	}
	if (s->idx && s->idx_cap > 4 * VS_SUBSET_SCAN && s->n * 8 < s->idx_cap)
		(void)reindex(s, s->idx_cap / 2);
}

int vs_subset_del(struct vs_subset *s, const void *owner)
{
	int64_t pos = vs_subset_find(s, owner);
	uint32_t last;

	if (pos < 0)
		return 0;
	last = s->n - 1;
	if (s->idx) {
		idx_erase(s, idx_slot(s, owner));
		if ((uint32_t)pos != last)
			s->idx[idx_slot(s, s->v[last].owner)] = (uint32_t)pos + 1;
	}
	s->v[pos] = s->v[last];
	s->n--;
	if (!s->n)
		vs_subset_fini(s);
	else
		shrink(s);
	return 1;
}

void vs_subset_fini(struct vs_subset *s)
{
	free(s->v);
	free(s->idx);
	*s = (struct vs_subset){0};
}
