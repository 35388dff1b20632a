/*
 * A hash map from byte-string keys to pointers: open addressing with linear probing and
 * backward-shift deletion (no tombstones). Keys are copied into the map. Not thread-safe: the
 * owner locks. Used for the session registry (client id -> session), whose keys clients
 * choose: each map hashes with its own random seed (base/hash.h), drawn when it first grows.
 * A zeroed struct is an empty map.
 */
#ifndef VS_BASE_MAP_H
#define VS_BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct vs_map_slot {
	uint64_t hash; /* 0 = empty */
	char *key;
	size_t klen;
	void *val;
};

struct vs_map {
	struct vs_map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t count;
	uint64_t seed;
};

/* Returns the value for key, or NULL. */
void *vs_map_get(const struct vs_map *m, const void *key, size_t klen);
/* Inserts or replaces. Returns 0, or -ENOMEM. *old (if non-NULL) gets the replaced value. */
int vs_map_put(struct vs_map *m, const void *key, size_t klen, void *val, void **old);
/* Removes key; returns its value or NULL. */
void *vs_map_del(struct vs_map *m, const void *key, size_t klen);
/* Iteration: start with *i = 0; returns 1 and fills key/val while entries remain. The map must
 * not change during iteration (except vs_map_del of the entry just returned is NOT allowed). */
int vs_map_next(const struct vs_map *m, size_t *i, const char **key, size_t *klen, void **val);
void vs_map_fini(struct vs_map *m);
/* vs_map_fini, after free_val(value) for each entry: for maps that own their values. */
void vs_map_fini_with(struct vs_map *m, void (*free_val)(void *val));

#endif
