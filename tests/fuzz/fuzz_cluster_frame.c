/*
 * Fuzzes the cluster frame decoder (cluster/cluster.h): what another node (or anything that can
 * publish on the NATS subjects) sends. Any bytes must decode or be refused with a reason,
 * never crash or read out of bounds; a decoded frame's views lie inside the input, and it has a
 * topic and no Topic Alias.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cluster/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const uint8_t *data, size_t size, struct vs_buf b)
{
	return b.len == 0 || (b.p >= data && b.p + b.len <= data + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vs_cluster_frame f;
	const char *why;
	if (vs_cluster_frame_decode(data, size, &f, &why) < 0) {
		if (!why || !why[0])
			abort(); /* every refusal says why */
		return 0;
	}
	if (!inside(data, size, f.node) || !inside(data, size, f.publish.topic) ||
	    !inside(data, size, f.publish.payload) || f.node.len == 0)
		abort();
	if (f.publish.topic.len == 0 || (f.publish.props.present & (1ull << VS_PROP_TOPIC_ALIAS)))
		abort();
	return 0;
}
