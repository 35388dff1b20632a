/*
 * Names a cluster keeps in NATS for a topic or a shared group, without any I/O (docs/cluster.md).
 *
 * Retained-message keys. A JetStream key-value key allows only [-/_=.A-Za-z0-9], may not start
 * or end with '.', and keys starting with "_kv" are reserved. A topic becomes a key level by
 * level, levels joined by '.': bytes other than [A-Za-z0-9-] become "=XX" (upper-case hex; so
 * '_', '.', '/', '=' and every non-ASCII byte are escaped), and an empty level is "=" alone.
 * "=" is always followed by two hex digits, or by '.' or the end, so a key decodes back to its
 * topic. A key longer than VS_KVKEY_MAX (a long topic) is replaced by "=H" and 32 hex digits of
 * a 128-bit hash of the topic: that key does not decode, and the value carries the topic anyway.
 *
 * Shared groups. Members of $share/GROUP/FILTER on every node form one NATS queue group; its
 * name is "vsq" and 16 hex digits of a hash of GROUP and FILTER, so that distinct shared
 * subscriptions never share a group even where their subjects overlap.
 */
#ifndef VS_CLUSTER_KVKEY_H
#define VS_CLUSTER_KVKEY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VS_KVKEY_MAX	1024 /* longest key written as such (NATS subjects stay short) */
#define VS_KVKEY_HASHED 34   /* "=H" + 32 hex digits */
#define VS_SHARE_QUEUE	20   /* "vsq" + 16 hex digits + NUL */

/* The key of topic, NUL-terminated in out (cap >= VS_KVKEY_MAX + 1). Returns its length, or
 * VS_ETOOBIG when cap is smaller than that. */
ssize_t vs_kvkey_encode(const uint8_t *topic, size_t len, char *out, size_t cap);

/* The topic of key (not NUL-terminated). Returns its length, VS_ETOOBIG if it does not fit in
 * cap, or VS_EPROTO when key is not one vs_kvkey_encode() writes (a hashed key included). */
ssize_t vs_kvkey_decode(const char *key, size_t len, uint8_t *out, size_t cap);

/* The queue group name of $share/group/filter, NUL-terminated in out[VS_SHARE_QUEUE]. */
void vs_share_queue(const char *group, size_t glen, const char *filter, size_t flen, char *out);

#endif
