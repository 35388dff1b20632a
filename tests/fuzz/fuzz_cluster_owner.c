/*
 * Fuzzes the decoder of a client id's value in the bucket vs_sessions (cluster/owner.h): what
 * any node, or anything that can write to that bucket, stored there. Any bytes must decode or be
 * refused, never crash or read out of bounds; a decoded value's views lie inside the input and
 * encode back to a value that decodes the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/owner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vs_owner o;
	if (vs_owner_decode(data, size, &o) < 0)
		return 0;
	const uint8_t *node = (const uint8_t *)o.node;
	if (node < data || node + o.node_len > data + size || o.node_len == 0 ||
	    (o.recs && (o.recs < data || o.recs + o.recs_len > data + size)))
		abort();
	char name[300];
	memcpy(name, o.node, o.node_len);
	name[o.node_len] = 0;
	if (strlen(name) != o.node_len)
		abort(); /* a node id ends at the first NUL */
	size_t n;
	uint8_t *v = vs_owner_encode(name, o.floor, o.recs, o.recs_len, &n);
	struct vs_owner d;
	if (!v || vs_owner_decode(v, n, &d) < 0 || d.node_len != o.node_len || d.floor != o.floor ||
	    d.recs_len != o.recs_len || (o.recs_len && memcmp(d.recs, o.recs, o.recs_len) != 0))
		abort();
	free(v);
	char key[VS_OWNER_KEY_MAX];
	vs_owner_key(data, size, key);
	if (strlen(key) == 0 || strlen(key) >= VS_OWNER_KEY_MAX)
		abort();
	return 0;
}
