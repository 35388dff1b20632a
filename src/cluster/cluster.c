/* Subjects and frames of the cluster (see cluster.h). */
#include "cluster/cluster.h"

#include <string.h>

#include "base/error.h"

static const char hex[] = "0123456789ABCDEF";

static bool plain(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Appends s to out at *o; false when it does not fit (with the NUL). */
static bool put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	if (*o + n + 1 > cap)
		return false;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return true;
}

/* Appends one escaped level. */
static bool put_level(char *out, size_t cap, size_t *o, const uint8_t *l, size_t n)
{
	if (n == 0)
		return put(out, cap, o, "%", 1);
	for (size_t i = 0; i < n; i++) {
		char e[3] = {'%', hex[l[i] >> 4], hex[l[i] & 15]};
		if (!(plain(l[i]) ? put(out, cap, o, (const char *)&l[i], 1)
				  : put(out, cap, o, e, 3)))
			return false;
	}
	return true;
}

/* Walks the levels of s: calls each with the level; a wildcard level is passed as is. */
static ssize_t map_levels(const uint8_t *s, size_t len, char *out, size_t cap, bool filter,
			  size_t *parent_end)
{
	size_t o = 0;
	if (!put(out, cap, &o, VS_CLUSTER_PREFIX, sizeof(VS_CLUSTER_PREFIX) - 1))
		return VS_ETOOBIG;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/')
			continue;
		const uint8_t *l = s + start;
		size_t n = i - start;
		if (parent_end)
			*parent_end = o;
		if (!put(out, cap, &o, ".", 1))
			return VS_ETOOBIG;
		bool ok;
		if (filter && n == 1 && l[0] == '+')
			ok = put(out, cap, &o, "*", 1);
		else if (filter && n == 1 && l[0] == '#')
			ok = put(out, cap, &o, ">", 1);
		else
			ok = put_level(out, cap, &o, l, n);
		if (!ok)
			return VS_ETOOBIG;
		start = i + 1;
	}
	return (ssize_t)o;
}

ssize_t vs_cluster_topic_subject(const uint8_t *topic, size_t len, char *out, size_t cap)
{
	return map_levels(topic, len, out, cap, false, NULL);
}

int vs_cluster_filter_subjects(const uint8_t *filter, size_t len, char *a, char *b, size_t cap)
{
	size_t parent = 0;
	ssize_t n = map_levels(filter, len, a, cap, true, &parent);
	if (n < 0)
		return (int)n;
	/* "x/#" matches "x" too [MQTT-4.7.1-2]; a lone "#" is already everything. */
	if (len >= 2 && filter[len - 1] == '#' && filter[len - 2] == '/') {
		memcpy(b, a, parent);
		b[parent] = '\0';
		return 2;
	}
	return 1;
}

ssize_t vs_cluster_frame_head(const char *node, uint64_t seq, uint8_t *out, size_t cap)
{
	size_t n = strlen(node);
	if (n > VS_CLUSTER_NODE_MAX || cap < 2 + n + 8)
		return VS_ETOOBIG;
	out[0] = VS_CLUSTER_FRAME_VERSION;
	out[1] = (uint8_t)n;
	memcpy(out + 2, node, n);
	for (int i = 0; i < 8; i++)
		out[2 + n + i] = (uint8_t)(seq >> (56 - 8 * i));
	return (ssize_t)(2 + n + 8);
}

int vs_cluster_frame_decode(const uint8_t *buf, size_t len, struct vs_cluster_frame *f,
			    const char **why)
{
	*why = "";
	if (len < 2 || (buf[0] & ~VS_CLUSTER_FRAME_LOOP) != VS_CLUSTER_FRAME_VERSION) {
		*why = "not a version 1 frame";
		return VS_EPROTO;
	}
	size_t n = buf[1];
	if (n == 0 || len < 2 + n + 8) {
		*why = "truncated frame head";
		return VS_EPROTO;
	}
	f->node = (struct vs_buf){buf + 2, n};
	f->loop = buf[0] & VS_CLUSTER_FRAME_LOOP;
	f->seq = 0;
	for (int i = 0; i < 8; i++)
		f->seq = f->seq << 8 | buf[2 + n + i];
	const uint8_t *p = buf + 2 + n + 8;
	size_t left = len - 2 - n - 8;
	struct vs_decode_opts opts = {.version = VS_V5};
	struct vs_packet pk;
	enum vs_reason rc;
	ssize_t used = vs_codec_decode(p, left, &opts, &pk, &rc);
	if (used <= 0 || (size_t)used != left || pk.type != VS_PUBLISH) {
		*why = "not one whole MQTT 5.0 PUBLISH";
		return VS_EPROTO;
	}
	/* A frame stands alone: the receiving node has no alias table of the sender's, so it must
	 * carry the whole topic and no Topic Alias (3.3.2.3.4 aliases are per connection). */
	if (pk.publish.topic.len == 0) {
		*why = "empty topic";
		return VS_EPROTO;
	}
	if (pk.publish.props.present & (1ull << VS_PROP_TOPIC_ALIAS)) {
		*why = "a Topic Alias";
		return VS_EPROTO;
	}
	f->publish = pk.publish;
	return 0;
}

bool vs_cluster_subject_match(const char *pattern, const char *subject)
{
	const char *p = pattern, *s = subject;
	for (;;) {
		const char *pe = strchr(p, '.'), *se = strchr(s, '.');
		size_t pl = pe ? (size_t)(pe - p) : strlen(p);
		size_t sl = se ? (size_t)(se - s) : strlen(s);
		if (pl == 1 && p[0] == '>')
			return true; /* the rest: one token or more, and s has one here */
		if (!(pl == 1 && p[0] == '*') && (pl != sl || memcmp(p, s, pl) != 0))
			return false;
		if (!pe || !se)
			return !pe && !se;
		p = pe + 1;
		s = se + 1;
	}
}
