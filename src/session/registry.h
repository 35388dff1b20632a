/*
 * The session registry: client id -> session, each session keyed by its own client id
 * (immutable, allocated with it), so the table holds nothing but pointers. Open addressing with
 * linear probing and backward-shift deletion; the hash (base/hash.h, a seed of the table's own,
 * drawn when it first grows) is computed again from the session's id when a slot's home is
 * needed, in growth and deletion. An idle connection costs the registry 8 bytes a slot at a
 * load of 3/8 to 3/4 (13 bytes at 10,000 sessions) where a general map with copied keys cost 84.
 * Lookups happen at CONNECT, on take-over and in sweeps, never per message.
 *
 * Not thread-safe: the broker holds reg_lock. A zeroed struct is an empty registry.
 */
#ifndef VS_SESSION_REGISTRY_H
#define VS_SESSION_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_session;

struct vs_registry {
	struct vs_session **slots; /* NULL = empty */
	size_t cap;		   /* power of two, or 0 */
	size_t count;
	uint64_t seed;
};

/* The session with this client id, or NULL. */
struct vs_session *vs_registry_get(const struct vs_registry *r, const char *id, size_t len);
/* Adds s, whose client id must not be in the registry yet (the registry takes no reference of
 * its own: the caller's is the registry's). Returns 0 or -ENOMEM. */
int vs_registry_add(struct vs_registry *r, struct vs_session *s);
/* Removes the session with this client id and returns it (NULL when there is none). */
struct vs_session *vs_registry_del(struct vs_registry *r, const char *id, size_t len);
/* Iteration: start with *i = 0; returns true with *s while sessions remain. The registry must
 * not change meanwhile. */
bool vs_registry_next(const struct vs_registry *r, size_t *i, struct vs_session **s);
/* Frees the table (not the sessions). */
void vs_registry_fini(struct vs_registry *r);

#endif
