/*
 * The retained-message store: at most one message per topic name, found by topic filter.
 *
 * Stored messages are opaque pointers with a reference count the caller manages through the
 * ref/unref functions given to vs_retain_new(). A trie by topic level, like the subscription
 * tree, so a filter with wildcards visits only the branches it can match.
 *
 * Concurrency: a read-write lock; vs_retain_match() holds the read lock while calling fn, and fn
 * must take its own reference (ref) for any message it keeps beyond the call.
 * [MQTT-4.7.2-1] Filters starting with '+' or '#' do not match topics starting with '$'.
 */
#ifndef VS_TOPIC_RETAIN_H
#define VS_TOPIC_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct vs_retain;

struct vs_retain *vs_retain_new(void (*ref)(void *msg), void (*unref)(void *msg));
/* Unrefs every stored message and frees the store. */
void vs_retain_free(struct vs_retain *r);

/*
 * Stores msg as the retained message of topic, replacing (and unref-ing) any previous one; the
 * store takes a reference of its own (ref). msg NULL removes the topic's retained message
 * [MQTT-3.3.1-6]. Returns 0 or -ENOMEM.
 */
int vs_retain_set(struct vs_retain *r, const char *topic, size_t len, void *msg);

/*
 * vs_retain_set() that also returns, in *version, the store's change counter after this change.
 * Changes are numbered under the store's write lock, so versions order changes exactly as the
 * store applied them, whichever thread made them (persistence keeps the highest at replay).
 */
int vs_retain_put(struct vs_retain *r, const char *topic, size_t len, void *msg, uint64_t *version);
/* The current change counter (a snapshot records it with each message it writes). */
uint64_t vs_retain_version(struct vs_retain *r);
/* Raises the counter to at least v (after a restart, above every replayed version). */
void vs_retain_version_floor(struct vs_retain *r, uint64_t v);

/* Calls fn(ctx, msg) for each retained message whose topic matches filter (not a $share
 * filter: the caller strips the share prefix). Returns the number of calls. Visits only the
 * branches the filter can match; allocates nothing. */
size_t vs_retain_match(struct vs_retain *r, const char *filter, size_t len,
		       void (*fn)(void *ctx, void *msg), void *ctx);

/* Calls fn for every stored message (for persistence snapshots), under the read lock: fn must
 * not call into the store. topic[0..len) is also NUL-terminated, valid only during the call. */
size_t vs_retain_foreach(struct vs_retain *r,
			 void (*fn)(void *ctx, const char *topic, size_t len, void *msg),
			 void *ctx);

size_t vs_retain_count(struct vs_retain *r);

/* Makes the store add up size(msg) of what it holds (set before the first message is stored),
 * read by vs_retain_bytes(): the broker's $SYS/broker/store/messages/bytes. */
void vs_retain_set_size_fn(struct vs_retain *r, size_t (*size)(const void *msg));
size_t vs_retain_bytes(struct vs_retain *r);

#endif
