/*
 * Fuzz target for the Mosquitto database reader (src/persist/mosqdb.c, mosqimport.c): arbitrary
 * bytes through the chunk walk, the property walk and the whole import, as the broker runs it
 * on a mosquitto.db at first start. Every emitted view is read in full, so a view past the
 * input faults under ASan. Must not crash, leak, or over-read. Seeds: real files written by
 * mosquitto 2.0.11 (tests/unit/data/mosqdb/make_files.py).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "persist/mosqdb.h"
#include "persist/store.h"

static uint32_t touch(const uint8_t *p, size_t len)
{
	uint32_t h = 0;
	for (size_t i = 0; i < len; i++)
		h = h * 31 + p[i];
	return h;
}

#define T(s) touch((s).p, (s).len)

static int visit_chunk(void *ctx, const struct vs_mosqdb_rec *r)
{
	uint32_t *h = ctx;
	struct vs_mosqdb_prop p;
	size_t pos = 0;
	switch (r->type) {
	case VS_MOSQDB_MSG_STORE:
		*h += T(r->u.msg.topic) + T(r->u.msg.payload) + T(r->u.msg.source_id) +
		      T(r->u.msg.source_username);
		while (vs_mosqdb_prop_next(r->u.msg.props, &pos, &p) > 0)
			*h += T(p.raw) + T(p.str) + T(p.value) + p.num;
		break;
	case VS_MOSQDB_CLIENT_MSG:
		*h += T(r->u.cmsg.client_id);
		while (vs_mosqdb_prop_next(r->u.cmsg.props, &pos, &p) > 0)
			*h += T(p.raw);
		break;
	case VS_MOSQDB_CLIENT:
		*h += T(r->u.client.client_id) + T(r->u.client.username);
		break;
	case VS_MOSQDB_SUB:
		*h += T(r->u.sub.client_id) + T(r->u.sub.topic);
		break;
	default:
		break;
	}
	return 0;
}

static int visit_rec(void *ctx, const struct vs_rec *r)
{
	uint32_t *h = ctx;
	switch (r->type) {
	case VS_REC_SESSION:
		*h += T(r->u.session.client_id);
		break;
	case VS_REC_SUB:
		*h += T(r->u.sub.client_id) + T(r->u.sub.filter);
		break;
	case VS_REC_MSG:
		*h += T(r->u.msg.topic) + T(r->u.msg.payload) + T(r->u.msg.content_type) +
		      T(r->u.msg.response_topic) + T(r->u.msg.correlation_data) +
		      T(r->u.msg.user_props_raw) + T(r->u.msg.origin_client_id);
		break;
	case VS_REC_RETAIN:
		*h += T(r->u.retain.topic);
		break;
	case VS_REC_QUEUE:
		*h += T(r->u.queue.client_id);
		for (size_t i = 0; i < r->u.queue.n_sub_ids; i++)
			*h += r->u.queue.sub_ids[i];
		break;
	default:
		abort(); /* the importer emits nothing else */
	}
	/* What the importer emits must be encodable by the store it feeds. */
	if (vs_rec_encoded_size(r) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	uint32_t h = 0;
	struct vs_mosqdb_info info;
	int rc = vs_mosqdb_parse(buf, size, visit_chunk, &h, &info);
	if (rc >= 0 && info.valid_end > size)
		abort();
	struct vs_mosqdb_import_info ii;
	vs_mosqdb_import(buf, size, 1000, 1796520000, visit_rec, &h, &ii);
	struct vs_mosqdb_str all = {buf, size};
	struct vs_mosqdb_prop p;
	size_t pos = 0;
	while (vs_mosqdb_prop_next(all, &pos, &p) > 0)
		h += T(p.raw);
	free(buf);
	return (int)(h & 0);
}
