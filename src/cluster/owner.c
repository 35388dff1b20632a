/* The owner of a client id's session in vs_sessions (see owner.h). */
#include "cluster/owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "cluster/cluster.h"
#include "cluster/keys.h"

void vs_owner_key(const uint8_t *id, size_t len, char *out)
{
	if (len <= VS_OWNER_TOKEN_MAX && vs_cluster_token(id, len, out, VS_OWNER_KEY_MAX) > 0)
		return;
	snprintf(out, VS_OWNER_KEY_MAX, "=h%016llx%016llx",
		 (unsigned long long)vs_hash64(0x56534553534e31ull, id, len),
		 (unsigned long long)vs_hash64(0x56534553534e32ull, id, len));
}

uint8_t *vs_owner_encode(const char *node, uint64_t floor, const uint8_t *recs, size_t len,
			 size_t *out_len)
{
	char num[24] = "";
	if (floor)
		snprintf(num, sizeof(num), "%llu", (unsigned long long)(floor - 1));
	size_t nlen = strlen(node), flen = strlen(num);
	uint8_t *v = malloc(nlen + flen + 2 + len + 1);
	if (!v)
		return NULL;
	memcpy(v, node, nlen);
	v[nlen] = 0;
	memcpy(v + nlen + 1, num, flen);
	v[nlen + 1 + flen] = 0;
	if (len)
		memcpy(v + nlen + flen + 2, recs, len);
	*out_len = nlen + flen + 2 + len;
	return v;
}

int vs_owner_decode(const uint8_t *v, size_t len, struct vs_owner *o)
{
	memset(o, 0, sizeof(*o));
	const uint8_t *end = v + len, *nul = len ? memchr(v, 0, len) : NULL;
	o->node = (const char *)v;
	o->node_len = (size_t)((nul ? nul : end) - v);
	if (o->node_len == 0 || o->node_len > VS_CLUSTER_NODE_MAX)
		return -1;
	if (!nul)
		return 0;
	const uint8_t *f = nul + 1, *nul2 = memchr(f, 0, (size_t)(end - f));
	if (!nul2)
		return -1;
	uint64_t x = 0;
	for (const uint8_t *p = f; p < nul2; p++) {
		if (*p < '0' || *p > '9' || x > (UINT64_MAX - 1 - (uint64_t)(*p - '0')) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	o->floor = nul2 > f ? x + 1 : 0;
	o->recs = nul2 + 1;
	o->recs_len = (size_t)(end - o->recs);
	return 0;
}
