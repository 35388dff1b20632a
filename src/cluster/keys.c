/* JetStream names of the cluster (see keys.h). */
#include "cluster/keys.h"

#include <string.h>

#include "base/error.h"

static const char hex[] = "0123456789ABCDEF";

static int plain(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

ssize_t vs_cluster_token(const uint8_t *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	if (len == 0) {
		if (cap < 2)
			return VS_ETOOBIG;
		out[0] = '=';
		out[1] = '\0';
		return 1;
	}
	for (size_t i = 0; i < len; i++) {
		size_t n = plain(s[i]) ? 1 : 3;
		if (o + n + 1 > cap)
			return VS_ETOOBIG;
		if (n == 1) {
			out[o++] = (char)s[i];
		} else {
			out[o++] = '=';
			out[o++] = hex[s[i] >> 4];
			out[o++] = hex[s[i] & 15];
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

ssize_t vs_cluster_will_key(const char *node, const uint8_t *cid, size_t len, char *out, size_t cap)
{
	ssize_t n = vs_cluster_token((const uint8_t *)node, strlen(node), out, cap);
	if (n < 0 || (size_t)n + 2 > cap)
		return VS_ETOOBIG;
	out[n] = '.';
	ssize_t m = vs_cluster_token(cid, len, out + n + 1, cap - (size_t)n - 1);
	return m < 0 ? m : n + 1 + m;
}

ssize_t vs_cluster_will_key_node(const char *key)
{
	const char *dot = strchr(key, '.');
	if (!dot || dot == key || !dot[1] || strchr(dot + 1, '.'))
		return -1;
	return dot - key;
}
