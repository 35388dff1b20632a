/*
 * Predefined topic ids (mqttsn_predefined_topics): see sn.h. Read once at start-up (and on
 * reload into a new table); read-only afterwards, so every worker reads it without a lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "sn/sn.h"

static int bad(char *err, size_t errlen, int line, const char *what)
{
	snprintf(err, errlen, "line %d: %s", line, what);
	return VS_ECONF;
}

static int add(struct vs_sn_topics *t, unsigned id, const char *name, size_t len, int line,
	       char *err, size_t errlen)
{
	uint8_t key[2] = {(uint8_t)(id >> 8), (uint8_t)id};
	if (vs_map_get(&t->by_id, key, 2))
		return bad(err, errlen, line, "topic id defined twice");
	if (vs_map_get(&t->by_name, name, len))
		return bad(err, errlen, line, "topic defined twice");
	char *copy = malloc(len + 1);
	if (!copy)
		return bad(err, errlen, line, "out of memory");
	memcpy(copy, name, len);
	copy[len] = '\0';
	if (vs_map_put(&t->by_id, key, 2, copy, NULL) < 0) {
		free(copy);
		return bad(err, errlen, line, "out of memory");
	}
	if (vs_map_put(&t->by_name, name, len, (void *)(uintptr_t)id, NULL) < 0)
		return bad(err, errlen, line,
			   "out of memory"); /* copy is in by_id: freed by fini */
	t->count++;
	return 0;
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* One line, without its newline. */
static int parse_line(struct vs_sn_topics *t, const char *s, size_t n, int line, char *err,
		      size_t errlen)
{
	while (n && blank(*s))
		s++, n--;
	while (n && blank(s[n - 1]))
		n--;
	if (!n || *s == '#')
		return 0;
	if (memchr(s, '\0', n))
		return bad(err, errlen, line, "NUL byte");
	unsigned long id = 0;
	size_t i = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9') {
		if (id <= 65535) /* past it the value no longer matters: out of range */
			id = id * 10 + (unsigned long)(s[i] - '0');
		i++;
	}
	if (i == 0 || i == n || !blank(s[i]))
		return bad(err, errlen, line,
			   "expected \"ID TOPIC\" (a topic id, a space, a topic)");
	/* 0x0000 and 0xFFFF are reserved (MQTT-SN 1.2 section 5.3.11). */
	if (id < 1 || id > 65534)
		return bad(err, errlen, line, "topic id must be 1..65534");
	while (i < n && blank(s[i]))
		i++;
	const uint8_t *name = (const uint8_t *)s + i;
	size_t len = n - i;
	if (!vs_topic_name_valid(name, len))
		return bad(err, errlen, line, "not a valid topic name (no wildcards, UTF-8)");
	return add(t, (unsigned)id, (const char *)name, len, line, err, errlen);
}

int vs_sn_topics_parse(struct vs_sn_topics *t, const char *text, size_t len, char *err,
		       size_t errlen)
{
	memset(t, 0, sizeof(*t));
	int line = 1;
	size_t at = 0;
	while (at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
		int rc = parse_line(t, text + at, n, line, err, errlen);
		if (rc < 0) {
			vs_sn_topics_fini(t);
			return rc;
		}
		at += n + 1;
		line++;
	}
	return 0;
}

int vs_sn_topics_load(struct vs_sn_topics *t, const char *path, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return VS_ECONF;
	}
	char *text = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			char *n = cap > (64u << 20) ? NULL : realloc(text, cap);
			if (!n) {
				free(text);
				fclose(f);
				snprintf(err, errlen, "%s: too large or out of memory", path);
				return VS_ECONF;
			}
			text = n;
		}
		size_t r = fread(text + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	bool failed = ferror(f);
	fclose(f);
	if (failed) {
		free(text);
		snprintf(err, errlen, "%s: read error", path);
		return VS_ECONF;
	}
	char why[160];
	int rc = vs_sn_topics_parse(t, text, len, why, sizeof(why));
	free(text);
	if (rc < 0) {
		/* "line N: ..." becomes "FILE:N: ..." */
		const char *rest = strncmp(why, "line ", 5) == 0 ? why + 5 : why;
		snprintf(err, errlen, "%s:%s", path, rest);
	}
	return rc;
}

void vs_sn_topics_fini(struct vs_sn_topics *t)
{
	size_t i = 0;
	const char *k;
	size_t kl;
	void *v;
	while (vs_map_next(&t->by_id, &i, &k, &kl, &v))
		free(v);
	vs_map_fini(&t->by_id);
	vs_map_fini(&t->by_name);
	memset(t, 0, sizeof(*t));
}

const char *vs_sn_topics_name(const struct vs_sn_topics *t, uint16_t id)
{
	uint8_t key[2] = {(uint8_t)(id >> 8), (uint8_t)id};
	return t ? vs_map_get(&t->by_id, key, 2) : NULL;
}

uint16_t vs_sn_topics_id(const struct vs_sn_topics *t, const uint8_t *name, size_t len)
{
	return t ? (uint16_t)(uintptr_t)vs_map_get(&t->by_name, name, len) : 0;
}
