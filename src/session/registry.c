#include "session/registry.h"

#include "base/hash.h"
#include "session/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t hash_of(const struct vs_registry *r, const struct vs_session *s)
{
	return vs_hash64(r->seed, s->client_id, s->id_len);
}

/* The slot holding id, or the empty slot where it would go. */
static size_t find(const struct vs_registry *r, uint64_t h, const char *id, size_t len)
{
	size_t mask = r->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct vs_session *s = r->slots[i];
		if (!s || (s->id_len == len && memcmp(s->client_id, id, len) == 0))
			return i;
	}
}

struct vs_session *vs_registry_get(const struct vs_registry *r, const char *id, size_t len)
{
	if (r->count == 0)
		return NULL;
	return r->slots[find(r, vs_hash64(r->seed, id, len), id, len)];
}

static int grow(struct vs_registry *r)
{
	size_t cap = r->cap ? r->cap * 2 : 16;
	struct vs_session **slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	if (!r->seed)
		r->seed = vs_hash_seed();
	struct vs_registry old = *r;
	r->slots = slots;
	r->cap = cap;
	for (size_t i = 0; i < old.cap; i++) {
		struct vs_session *s = old.slots[i];
		if (s)
			r->slots[find(r, hash_of(r, s), s->client_id, s->id_len)] = s;
	}
	free(old.slots);
	return 0;
}

int vs_registry_add(struct vs_registry *r, struct vs_session *s)
{
	if ((r->count + 1) * 4 > r->cap * 3) {
		int rc = grow(r);
		if (rc < 0)
			return rc;
	}
	size_t i = find(r, hash_of(r, s), s->client_id, s->id_len);
	r->slots[i] = s; /* an empty slot: the id is not there (the caller looked) */
	r->count++;
	return 0;
}

struct vs_session *vs_registry_del(struct vs_registry *r, const char *id, size_t len)
{
	if (r->count == 0)
		return NULL;
	size_t mask = r->cap - 1;
	size_t i = find(r, vs_hash64(r->seed, id, len), id, len);
	struct vs_session *s = r->slots[i];
	if (!s)
		return NULL;
	r->slots[i] = NULL;
	r->count--;
	/* Backward shift: move later entries of the probe run into the hole. */
	for (size_t j = (i + 1) & mask; r->slots[j]; j = (j + 1) & mask) {
		size_t home = hash_of(r, r->slots[j]) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			r->slots[i] = r->slots[j];
			r->slots[j] = NULL;
			i = j;
		}
	}
	return s;
}

bool vs_registry_next(const struct vs_registry *r, size_t *i, struct vs_session **s)
{
	for (; *i < r->cap; (*i)++) {
		if (r->slots[*i]) {
			*s = r->slots[(*i)++];
			return true;
		}
	}
	return false;
}

void vs_registry_fini(struct vs_registry *r)
{
	free(r->slots);
	*r = (struct vs_registry){0};
}
