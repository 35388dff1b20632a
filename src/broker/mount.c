/*
 * mount_point: see mount.h. Listeners cannot change by a reload, so the prefix is read from the
 * start-up configuration that struct vs_listener keeps.
 */
#include "broker/mount.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

const char *vs_mount_point(const struct vs_listener *l)
{
	return l && l->conf->mount_point && l->conf->mount_point[0] ? l->conf->mount_point : NULL;
}

/* Where the prefix goes: after `$share/GROUP/` in a shared filter, else at the start. */
static size_t insert_at(const struct vs_buf *t, bool filter)
{
	if (!filter || t->len <= 7 || memcmp(t->p, "$share/", 7) != 0)
		return 0;
	const uint8_t *slash = memchr(t->p + 7, '/', t->len - 7);
	return slash ? (size_t)(slash - t->p) + 1 : 0;
}

int vs_mount(const struct vs_listener *l, const struct vs_buf *t, bool filter, struct vs_mounted *m)
{
	m->heap = NULL;
	m->buf = *t;
	const char *mp = vs_mount_point(l);
	if (!mp)
		return 0;
	size_t plen = strlen(mp), at = insert_at(t, filter), len = t->len + plen;
	char *d = m->stack;
	if (len > sizeof(m->stack) && !(d = m->heap = malloc(len)))
		return -ENOMEM;
	memcpy(d, t->p, at);
	memcpy(d + at, mp, plen);
	memcpy(d + at + plen, t->p + at, t->len - at);
	m->buf.p = (const uint8_t *)d;
	m->buf.len = len;
	return 0;
}

void vs_mounted_fini(struct vs_mounted *m)
{
	free(m->heap);
	m->heap = NULL;
}

long vs_mount_strip(const struct vs_listener *l, const uint8_t *topic, size_t len)
{
	const char *mp = vs_mount_point(l);
	if (!mp)
		return 0;
	size_t plen = strlen(mp);
	/* As Mosquitto, the topic must be longer than the prefix: an empty topic is not one. */
	if (len <= plen || memcmp(topic, mp, plen) != 0)
		return -1;
	return (long)plen;
}
