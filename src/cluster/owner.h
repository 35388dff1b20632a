/*
 * Who has a client id's session, as the key-value bucket vs_sessions says (broker/
 * cluster_session.h), without any I/O.
 *
 * Key: the client id as a token (cluster/keys.h) when that is at most VS_OWNER_TOKEN_MAX bytes,
 * else "=h" and 32 hex digits of two hashes of it ("=h" never starts a token: its escapes are
 * '=' and two upper-case hex digits).
 *
 * Value: the owning node's id, NUL, the stream floor (decimal; empty while the session is
 * connected), NUL, then store records (persist/store.h): the session's SESSION and SUB records,
 * the floor then the stream sequence the owner had taken everything up to when the session went
 * offline; or (offline) its whole state as a hand-over carries it, the floor then the sequence
 * up to which the owner had routed the stream to it. A value without any NUL is a node id
 * alone.
 */
#ifndef VS_CLUSTER_OWNER_H
#define VS_CLUSTER_OWNER_H

#include <stddef.h>
#include <stdint.h>

#define VS_OWNER_TOKEN_MAX 200
#define VS_OWNER_KEY_MAX   (VS_OWNER_TOKEN_MAX + 1)

struct vs_owner {
	const char *node; /* not NUL-terminated */
	size_t node_len;
	uint64_t floor; /* the floor + 1; 0: none */
	const uint8_t *recs;
	size_t recs_len;
};

/* Writes the key of client id id[0..len) into out[VS_OWNER_KEY_MAX]. */
void vs_owner_key(const uint8_t *id, size_t len, char *out);

/* Returns a malloc'd value (its length in *out_len) naming node, with floor (+ 1; 0: none) and
 * the records recs[0..len), or NULL (no memory). */
uint8_t *vs_owner_encode(const char *node, uint64_t floor, const uint8_t *recs, size_t len,
			 size_t *out_len);

/* Parses a value (views into v). Returns 0, or -1 when it is not one: an empty or over-long
 * (255 bytes) node id, a floor that is not a decimal number below 2^64 - 1. */
int vs_owner_decode(const uint8_t *v, size_t len, struct vs_owner *o);

#endif
