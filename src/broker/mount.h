/*
 * mount_point (Mosquitto): a listener's clients live under a topic prefix. Their topics and
 * filters get the prefix on the way in (PUBLISH, will, SUBSCRIBE, UNSUBSCRIBE) and lose it on
 * the way out, so they see only the tree below it. A shared subscription `$share/G/FILTER`
 * gets the prefix on FILTER. The prefix is joined as written, with no '/' added (Mosquitto's
 * `mount_point tenant1/` and `a/b` make `tenant1/a/b`). ACLs are matched against the client's
 * own view of a topic, without the prefix.
 */
#ifndef VS_BROKER_MOUNT_H
#define VS_BROKER_MOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "codec/codec.h"

struct vs_listener;

/* A topic or filter with the prefix added: buf views stack, heap or the original. */
struct vs_mounted {
	struct vs_buf buf;
	char *heap;
	char stack[256];
};

/* The listener's mount point, or NULL (also for a NULL listener). */
const char *vs_mount_point(const struct vs_listener *l);

/* Fills m with t under l's mount point (t itself when l has none); a filter `$share/G/F`
 * becomes `$share/G/<prefix>F`. Returns 0 or -ENOMEM. Call vs_mounted_fini() either way. */
int vs_mount(const struct vs_listener *l, const struct vs_buf *t, bool filter,
	     struct vs_mounted *m);
void vs_mounted_fini(struct vs_mounted *m);

/* How many bytes of topic to cut for a client of l to see it: 0 without a mount point, the
 * prefix's length when topic is below it, or -1 when it is outside (never sent to that client). */
long vs_mount_strip(const struct vs_listener *l, const uint8_t *topic, size_t len);

#endif
