/*
 * The children table of a topic-trie level: see level.h for the design.
 *
 * Load factor is kept at or below 3/4 (linear probing stays short at that load for a hash that
 * mixes well); the table doubles past it and halves below 1/8, so it never oscillates.
 */
#include "topic/level.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"

#define INLINE_CAP 2u /* the size of struct vs_level's small[] */

uint64_t vs_level_seed(void)
{
	return vs_hash_seed();
}

uint32_t vs_level_hash(uint64_t seed, const char *s, size_t len)
{
	return (uint32_t)vs_hash64(seed, s, len);
}

struct vs_level *vs_level_find(const struct vs_level *p, const char *s, size_t len, uint32_t hash)
{
	uint32_t mask, i, k;
	struct vs_level *c;

	if (!p->n)
		return NULL;
	mask = p->cap - 1;
	/* At most cap probes: the inline table may be full, with no empty slot to stop at. */
	for (i = hash & mask, k = 0; k < p->cap; i = (i + 1) & mask, k++) {
		c = p->slot[i].child;
		if (!c)
			return NULL;
		if (p->slot[i].hash == hash && c->len == len && memcmp(c->name, s, len) == 0)
			return c;
	}
	return NULL;
}

static void place(struct vs_level_slot *slot, uint32_t cap, struct vs_level *c)
{
	uint32_t mask = cap - 1, i = c->hash & mask;

	while (slot[i].child)
		i = (i + 1) & mask;
	slot[i].child = c;
	slot[i].hash = c->hash;
}

/* Rebuilds p's table with cap slots (cap > INLINE_CAP, cap >= p->n * 4 / 3). Returns 0 or
 * -ENOMEM. */
static int resize(struct vs_level *p, uint32_t cap)
{
	struct vs_level_slot *slot = calloc(cap, sizeof(*slot));
	uint32_t i;

	if (!slot)
		return -ENOMEM;
	for (i = 0; i < p->cap; i++) {
		if (p->slot[i].child)
			place(slot, cap, p->slot[i].child);
	}
	if (p->slot != p->small)
		free(p->slot);
	p->slot = slot;
	p->cap = cap;
	return 0;
}

/* Room for one more child: the inline table first, then a heap table kept <= 3/4 full. */
static int reserve(struct vs_level *p)
{
	if (!p->cap) {
		memset(p->small, 0, sizeof(p->small));
		p->slot = p->small;
		p->cap = INLINE_CAP;
	}
	if (p->slot == p->small ? p->n < INLINE_CAP : (p->n + 1) * 4 <= p->cap * 3)
		return 0;
	return resize(p, p->cap * 2 > 4 ? p->cap * 2 : 4);
}

int vs_level_attach(struct vs_level *p, struct vs_level *c)
{
	int rc = reserve(p);

	if (rc < 0)
		return rc;
	place(p->slot, p->cap, c);
	p->n++;
	c->parent = p;
	return 0;
}

uint32_t vs_level_slot_of(const struct vs_level *p, const struct vs_level *c)
{
	uint32_t mask = p->cap - 1, i = c->hash & mask;

	while (p->slot[i].child != c)
		i = (i + 1) & mask;
	return i;
}

/* Whether home position h lies cyclically in (i, j]: then the entry at j may not move to i. */
static int between(uint32_t h, uint32_t i, uint32_t j)
{
	return i <= j ? (h > i && h <= j) : (h > i || h <= j);
}

void vs_level_detach(struct vs_level *p, struct vs_level *c)
{
	uint32_t mask = p->cap - 1, i = vs_level_slot_of(p, c), j = i;

	p->slot[i].child = NULL;
	for (;;) {
		j = (j + 1) & mask;
		if (!p->slot[j].child)
			break;
		if (between(p->slot[j].hash & mask, i, j))
			continue;
		p->slot[i] = p->slot[j];
		p->slot[j].child = NULL;
		i = j;
	}
	p->n--;
	c->parent = NULL;
	if (!p->n) {
		vs_level_fini(p);
	} else if (p->cap > 4 && p->n * 8 < p->cap) {
		(void)resize(p, p->cap / 2);
	}
}

struct vs_level *vs_level_next(const struct vs_level *p, uint32_t *i)
{
	for (; *i < p->cap; (*i)++) {
		if (p->slot[*i].child)
			return p->slot[*i].child;
	}
	return NULL;
}

void vs_level_fini(struct vs_level *l)
{
	if (l->slot != l->small)
		free(l->slot);
	l->slot = NULL;
	l->cap = 0;
	l->n = 0;
}
