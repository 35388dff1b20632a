/*
 * Names Viesti nodes give each other in JetStream (docs/cluster.md), without any I/O: key-value
 * keys and consumer names built from node ids and client ids, which may hold any byte.
 *
 * A token keeps [A-Za-z0-9_-] and writes every other byte as "=XX" (hex, upper case), so it is
 * a valid NATS KV key part and consumer name (no '.', '*', '>', spaces or '/'), and distinct
 * inputs give distinct tokens ('=' itself is escaped). An empty input is "=".
 *
 * A will key is "<node token>.<client token>": the first dot splits it, since tokens have none.
 */
#ifndef VS_CLUSTER_KEYS_H
#define VS_CLUSTER_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes the token of s (NUL-terminated) into out. Returns its length, or VS_ETOOBIG. */
ssize_t vs_cluster_token(const uint8_t *s, size_t len, char *out, size_t cap);

/* Writes the will key of client id cid on node into out. Returns its length, or VS_ETOOBIG. */
ssize_t vs_cluster_will_key(const char *node, const uint8_t *cid, size_t len, char *out,
			    size_t cap);

/* The length of the node token that starts will key key, or -1 when key is not a will key. */
ssize_t vs_cluster_will_key_node(const char *key);

#endif
