/*
 * The deliveries of a JetStream push consumer that never arrived (broker/cluster_floor.c). The
 * consumer of a node takes the whole stream, so its first deliveries (delivered count 1) come in
 * stream order, one stream sequence after the other. When a first delivery skips sequences,
 * those messages were sent and lost on the way: the NATS server the node was connected to died,
 * or the library dropped them for a slow consumer. JetStream sends them again after the ack
 * wait, behind newer ones; these notes let the node tell them from copies of messages it routed
 * already (sent again because an acknowledgement was lost), which it drops.
 *
 * Everything before the first delivery noted counts as lost too: what JetStream delivered to an
 * earlier life of the node, which died before acknowledging it, comes again after the ack wait,
 * behind newer messages, and was not routed in this life.
 *
 * At most VS_CLUSTER_GAPS_MAX ranges are kept (a gap that is never filled: messages that aged
 * out of the stream before their delivery); the oldest go first.
 */
#ifndef VS_CLUSTER_GAPS_H
#define VS_CLUSTER_GAPS_H

#include <stdbool.h>
#include <stdint.h>

#define VS_CLUSTER_GAPS_MAX 1024

struct vs_cluster_gap {
	uint64_t lo, hi; /* stream sequences lo..hi, both included */
};

struct vs_cluster_gaps {
	uint64_t last;		    /* stream sequence of the latest first delivery; 0: none yet */
	struct vs_cluster_gap *gap; /* in increasing order, not touching */
	uint32_t n, cap;
};

/* Notes the first delivery of stream sequence seq. Returns how many sequences it skipped (noted
 * as lost), 0 normally; the first one noted returns 0 and notes 1..seq-1 (see above). */
uint64_t vs_cluster_gaps_first(struct vs_cluster_gaps *g, uint64_t seq);

/* Whether seq is one of the lost ones; if so it is taken out (it has arrived now). */
bool vs_cluster_gaps_take(struct vs_cluster_gaps *g, uint64_t seq);

void vs_cluster_gaps_fini(struct vs_cluster_gaps *g);

#endif
