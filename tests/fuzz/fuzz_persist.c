/*
 * Fuzz target for the persistence reader: arbitrary bytes as a log segment and as a snapshot,
 * through the same scan recovery uses (header check, record walk, CRC, body decode, damage
 * classification and resynchronisation). Every decoded view is read in full so an
 * out-of-bounds view faults under ASan. Must not crash, leak, or over-read.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "persist/format.h"
#include "persist/store.h"

static uint32_t touch(struct vs_rec_str s)
{
	uint32_t h = 0;
	for (size_t i = 0; i < s.len; i++)
		h = h * 31 + s.p[i];
	return h;
}

static int visit(void *ctx, const struct vs_rec *r)
{
	uint32_t *h = ctx;
	switch (r->type) {
	case VS_REC_SESSION:
		*h += touch(r->u.session.client_id);
		break;
	case VS_REC_SESSION_DEL:
	case VS_REC_WILL_DEL:
		*h += touch(r->u.client_id);
		break;
	case VS_REC_SUB:
	case VS_REC_UNSUB:
		*h += touch(r->u.sub.client_id) + touch(r->u.sub.filter);
		break;
	case VS_REC_MSG:
		*h += touch(r->u.msg.topic) + touch(r->u.msg.payload) +
		      touch(r->u.msg.content_type) + touch(r->u.msg.response_topic) +
		      touch(r->u.msg.correlation_data) + touch(r->u.msg.user_props_raw) +
		      touch(r->u.msg.origin_client_id);
		break;
	case VS_REC_RETAIN:
	case VS_REC_RETAIN_DEL:
		*h += touch(r->u.retain.topic);
		break;
	case VS_REC_QUEUE:
		*h += touch(r->u.queue.client_id);
		for (size_t i = 0; i < r->u.queue.n_sub_ids; i++)
			*h += r->u.queue.sub_ids[i];
		break;
	case VS_REC_DEQUEUE:
		*h += touch(r->u.dequeue.client_id);
		break;
	case VS_REC_INQOS2:
		*h += touch(r->u.inqos2.client_id);
		break;
	case VS_REC_WILL:
		*h += touch(r->u.will.client_id);
		break;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size heap copy, so reading one byte past the end is caught */
	uint8_t *buf = malloc(size ? size : 1);
	uint32_t h = 0;
	struct vs_scan sc;

	memcpy(buf, data, size);
	vs_scan_file(buf, size, VS_FILE_KIND_LOG, visit, &h, &sc);
	if (sc.valid_end > size)
		abort();
	vs_scan_file(buf, size, VS_FILE_KIND_SNAP, visit, &h, &sc);
	if (sc.valid_end > size)
		abort();
	/* the input as bare records, without a file header */
	uint32_t *scratch = NULL;
	size_t cap = 0, off = 0;
	struct vs_rec r;
	long n;
	while (off < size && (n = vs_rec_decode(buf + off, size - off, &r, &scratch, &cap)) > 0) {
		if (vs_rec_known(&r))
			visit(&h, &r);
		off += (size_t)n;
	}
	free(scratch);
	free(buf);
	return h == 0x12345678 ? 0 : 0;
}
