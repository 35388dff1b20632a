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
#include <sys/random.h>
#include <time.h>

#define MIN_CAP 4u

uint64_t vs_level_seed(void)
{
	uint64_t seed = 0;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* No entropy yet (early boot): a weaker seed still beats a fixed one. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&seed;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h;
}

/* Eight bytes per step, a multiply-xorshift mix: level names are short, and this is a few
 * cycles per level where byte-at-a-time FNV costs one multiply per byte. */
uint32_t vs_level_hash(uint64_t seed, const char *s, size_t len)
{
	uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ull);
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, s, 8);
		h = mix(h ^ w);
		s += 8;
		len -= 8;
	}
	w = 0;
	if (len)
		memcpy(&w, s, len);
	return (uint32_t)mix(h ^ w);
}

struct vs_level *vs_level_find(const struct vs_level *p, const char *s, size_t len, uint32_t hash)
{
	uint32_t mask, i;
	struct vs_level *c;

	if (!p->n)
		return NULL;
	mask = p->cap - 1;
	for (i = hash & mask; (c = p->slot[i]) != NULL; i = (i + 1) & mask) {
		if (c->hash == hash && c->len == len && memcmp(c->name, s, len) == 0)
			return c;
	}
	return NULL;
}

static void place(struct vs_level **slot, uint32_t cap, struct vs_level *c)
{
	uint32_t mask = cap - 1, i = c->hash & mask;

	while (slot[i])
		i = (i + 1) & mask;
	slot[i] = c;
}

/* Rebuilds p's table with cap slots (cap >= p->n * 4 / 3). Returns 0 or -ENOMEM. */
static int resize(struct vs_level *p, uint32_t cap)
{
	struct vs_level **slot = calloc(cap, sizeof(*slot));
	uint32_t i;

	if (!slot)
		return -ENOMEM;
	for (i = 0; i < p->cap; i++) {
		if (p->slot[i])
			place(slot, cap, p->slot[i]);
	}
	free(p->slot);
	p->slot = slot;
	p->cap = cap;
	return 0;
}

int vs_level_attach(struct vs_level *p, struct vs_level *c)
{
	if ((p->n + 1) * 4 > p->cap * 3) {
		int rc = resize(p, p->cap ? p->cap * 2 : MIN_CAP);
		if (rc < 0)
			return rc;
	}
	place(p->slot, p->cap, c);
	p->n++;
	c->parent = p;
	return 0;
}

uint32_t vs_level_slot_of(const struct vs_level *p, const struct vs_level *c)
{
	uint32_t mask = p->cap - 1, i = c->hash & mask;

	while (p->slot[i] != c)
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

	p->slot[i] = NULL;
	for (;;) {
		j = (j + 1) & mask;
		if (!p->slot[j])
			break;
		if (between(p->slot[j]->hash & mask, i, j))
			continue;
		p->slot[i] = p->slot[j];
		p->slot[j] = NULL;
		i = j;
	}
	p->n--;
	c->parent = NULL;
	if (!p->n) {
		vs_level_fini(p);
	} else if (p->cap > MIN_CAP && p->n * 8 < p->cap) {
		(void)resize(p, p->cap / 2);
	}
}

struct vs_level *vs_level_next(const struct vs_level *p, uint32_t *i)
{
	for (; *i < p->cap; (*i)++) {
		if (p->slot[*i])
			return p->slot[*i];
	}
	return NULL;
}

void vs_level_fini(struct vs_level *l)
{
	free(l->slot);
	l->slot = NULL;
	l->cap = 0;
	l->n = 0;
}
