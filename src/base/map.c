#include "base/map.h"

#include "base/hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t find(const struct vs_map *m, uint64_t h, const void *key, size_t klen)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct vs_map_slot *s = &m->slots[i];
		if (s->hash == 0)
			return i;
		if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
			return i;
	}
}

void *vs_map_get(const struct vs_map *m, const void *key, size_t klen)
{
	if (m->count == 0)
		return NULL;
	size_t i = find(m, vs_hash64(m->seed, key, klen), key, klen);
	return m->slots[i].hash ? m->slots[i].val : NULL;
}

static int grow(struct vs_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	struct vs_map_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	if (!m->seed)
		m->seed = vs_hash_seed(); /* first use (a test may have set one) */
	struct vs_map old = *m;
	m->slots = slots;
	m->cap = cap;
	for (size_t i = 0; i < old.cap; i++) {
		if (old.slots[i].hash == 0)
			continue;
		size_t j = find(m, old.slots[i].hash, old.slots[i].key, old.slots[i].klen);
		m->slots[j] = old.slots[i];
	}
	free(old.slots);
	return 0;
}

int vs_map_put(struct vs_map *m, const void *key, size_t klen, void *val, void **old)
{
	if ((m->count + 1) * 4 > m->cap * 3) {
		int rc = grow(m);
		if (rc < 0)
			return rc;
	}
	uint64_t h = vs_hash64(m->seed, key, klen);
	size_t i = find(m, h, key, klen);
	struct vs_map_slot *s = &m->slots[i];
	if (s->hash) {
		if (old)
			*old = s->val;
		s->val = val;
		return 0;
	}
	char *k = malloc(klen + 1);
	if (!k)
		return -ENOMEM;
	memcpy(k, key, klen);
	k[klen] = '\0';
	s->hash = h;
	s->key = k;
	s->klen = klen;
	s->val = val;
	m->count++;
	if (old)
		*old = NULL;
	return 0;
}

void *vs_map_del(struct vs_map *m, const void *key, size_t klen)
{
	if (m->count == 0)
		return NULL;
	size_t mask = m->cap - 1;
	size_t i = find(m, vs_hash64(m->seed, key, klen), key, klen);
	if (m->slots[i].hash == 0)
		return NULL;
	void *val = m->slots[i].val;
	free(m->slots[i].key);
	m->slots[i].hash = 0;
	m->count--;
	/* Backward-shift: move later entries of the probe run into the hole. */
	for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].hash = 0;
			i = j;
		}
	}
	return val;
}

int vs_map_next(const struct vs_map *m, size_t *i, const char **key, size_t *klen, void **val)
{
	for (; *i < m->cap; (*i)++) {
		const struct vs_map_slot *s = &m->slots[*i];
		if (s->hash) {
			*key = s->key;
			*klen = s->klen;
			*val = s->val;
			(*i)++;
			return 1;
		}
	}
	return 0;
}

void vs_map_fini_with(struct vs_map *m, void (*free_val)(void *val))
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].hash)
			free_val(m->slots[i].val);
	vs_map_fini(m);
}

void vs_map_fini(struct vs_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].hash)
			free(m->slots[i].key);
	free(m->slots);
	m->slots = NULL;
	m->cap = m->count = 0;
}
