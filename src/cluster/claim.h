/*
 * A client-id claim as one node sends it to the others (broker/cluster_claim.h says why):
 * "NODE\nCLEAN\nWALL_MS\nCLIENT_ID", the id being the rest of the message (any bytes).
 */
#ifndef VS_CLUSTER_CLAIM_H
#define VS_CLUSTER_CLAIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_claim {
	const char *node;
	size_t node_len;
	bool clean;
	int64_t wall_ms;
	const char *client_id;
	size_t id_len;
};

/* Returns the bytes written (at most cap), or -1 when the claim does not fit. */
int vs_claim_encode(char *out, size_t cap, const char *node, bool clean, int64_t wall_ms,
		    const char *client_id, size_t id_len);
/* Parses a claim (pointers into buf). Returns 0, or -1 when it is malformed. */
int vs_claim_decode(const char *buf, size_t len, struct vs_claim *c);
/* Whether a claim made at (wall_ms, node) beats a connection made here at (here_ms, here): the
 * later wins, and at the same millisecond the greater node id. */
bool vs_claim_wins(int64_t wall_ms, const char *node, size_t node_len, int64_t here_ms,
		   const char *here);

#endif
