/*
 * Fuzzes the client-id claim decoder (cluster/claim.h): what another node, or anything that can
 * publish on subject vs.c, sends. Any bytes must decode or be refused, never crash or read out
 * of bounds; a decoded claim's views lie inside the input and encode back to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/claim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct vs_claim c;
	if (vs_claim_decode(in, size, &c) < 0)
		return 0;
	if (c.node < in || c.node + c.node_len > in + size || c.node_len == 0 || c.client_id < in ||
	    c.client_id + c.id_len > in + size || c.wall_ms < 0)
		abort();
	if (memchr(c.node, '\n', c.node_len) || memchr(c.node, '\0', c.node_len))
		return 0; /* a node id with these is not one a node sends; no round trip */
	char node[300], out[size + 64];
	if (c.node_len >= sizeof(node))
		return 0;
	memcpy(node, c.node, c.node_len);
	node[c.node_len] = '\0';
	int n = vs_claim_encode(out, sizeof(out), node, c.clean, c.wall_ms, c.client_id, c.id_len);
	/* Leading zeros in the time are accepted and not written back: compare by decoding. */
	struct vs_claim d;
	if (n < 0 || vs_claim_decode(out, (size_t)n, &d) < 0 || d.wall_ms != c.wall_ms ||
	    d.clean != c.clean || d.id_len != c.id_len ||
	    memcmp(d.client_id, c.client_id, c.id_len) != 0)
		abort();
	return 0;
}
