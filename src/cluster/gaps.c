/* Deliveries of a JetStream consumer that never arrived (see gaps.h). */
#include "cluster/gaps.h"

#include <stdlib.h>
#include <string.h>

#include "base/vec.h"

static void drop_first(struct vs_cluster_gaps *g)
{
	memmove(g->gap, g->gap + 1, (g->n - 1) * sizeof(*g->gap));
	g->n--;
}

uint64_t vs_cluster_gaps_first(struct vs_cluster_gaps *g, uint64_t seq)
{
	if (seq <= g->last)
		return 0; /* not in stream order: nothing to learn from it */
	uint64_t prev = g->last;
	g->last = seq;
	if (seq == prev + 1)
		return 0;
	if (g->n == VS_CLUSTER_GAPS_MAX)
		drop_first(g);
	/* Without memory, the gap goes unnoted: those messages may then be taken for copies. */
	if (VS_VEC_GROW(g->gap, g->cap, g->n + 1, 8) == 0)
		g->gap[g->n++] = (struct vs_cluster_gap){prev + 1, seq - 1};
	return prev ? seq - prev - 1 : 0;
}

bool vs_cluster_gaps_take(struct vs_cluster_gaps *g, uint64_t seq)
{
	uint32_t i = 0;
	while (i < g->n && g->gap[i].hi < seq)
		i++;
	if (i == g->n || g->gap[i].lo > seq)
		return false;
	struct vs_cluster_gap *r = &g->gap[i];
	if (r->lo == r->hi) {
		memmove(r, r + 1, (g->n - i - 1) * sizeof(*r));
		g->n--;
	} else if (seq == r->lo) {
		r->lo++;
	} else if (seq == r->hi) {
		r->hi--;
	} else {
		/* Split in two; without room for the second half, the older half is forgotten. */
		uint64_t hi = r->hi;
		if (VS_VEC_GROW(g->gap, g->cap, g->n + 1, 8) < 0) {
			r->lo = seq + 1;
			return true;
		}
		r = &g->gap[i];
		memmove(r + 1, r, (g->n - i) * sizeof(*r));
		g->n++;
		r[0].hi = seq - 1;
		r[1] = (struct vs_cluster_gap){seq + 1, hi};
		if (g->n > VS_CLUSTER_GAPS_MAX)
			drop_first(g);
	}
	return true;
}

void vs_cluster_gaps_fini(struct vs_cluster_gaps *g)
{
	free(g->gap);
	memset(g, 0, sizeof(*g));
}
