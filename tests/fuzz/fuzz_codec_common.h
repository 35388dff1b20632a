/*
 * The body shared by the fuzz_codec_* targets: decode the input with a fixed protocol version,
 * and when it decodes, check the invariants that must hold for every accepted packet:
 * - every prefix of it asks for more (0), never fails or succeeds;
 * - it re-encodes (vs_codec_size() == bytes written) and the re-encoding decodes to an equal
 *   packet of exactly that length;
 * - every iterator walks to the end with exactly `count` entries.
 * Each target defines FUZZ_VERSION (0 = before CONNECT) and includes this file.
 */
#ifndef VS_FUZZ_CODEC_COMMON_H
#define VS_FUZZ_CODEC_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "codec_cmp.h"

#include "fuzz_check.h"

static void walk_props(const struct vs_props *p)
{
	struct vs_user_prop up;
	uint32_t id, n = 0;
	size_t pos = 0;

	while (vs_props_next_user(p, &pos, &up))
		n++;
	CHECK(n == p->n_user);
	n = 0;
	pos = 0;
	while (vs_props_next_sub_id(p, &pos, &id)) {
		CHECK(id >= 1 && id <= VS_MAX_SUB_ID);
		CHECK(n > 0 || id == p->sub_id);
		n++;
	}
	CHECK(n == p->n_sub_ids);
	CHECK(vs_props_copy_users(p, NULL, 0) <= p->raw.len);
}

static void walk(struct vs_packet *pkt, int version)
{
	struct vs_props *pp, *wp;
	struct vs_sub_entry e;
	struct vs_buf f;
	size_t pos = 0;
	uint32_t n = 0;

	pp = codec_packet_props(pkt, &wp);
	if (pp)
		walk_props(pp);
	if (wp)
		walk_props(wp);
	if (pkt->type == VS_SUBSCRIBE) {
		while (vs_subscribe_next(&pkt->subscribe, version, &pos, &e)) {
			CHECK(e.qos <= 2 && e.retain_handling <= 2);
			CHECK(vs_topic_filter_valid(e.filter.p, e.filter.len));
			n++;
		}
		CHECK(n == pkt->subscribe.count && n > 0);
	} else if (pkt->type == VS_UNSUBSCRIBE) {
		while (vs_unsubscribe_next(&pkt->unsubscribe, &pos, &f)) {
			CHECK(vs_topic_filter_valid(f.p, f.len));
			n++;
		}
		CHECK(n == pkt->unsubscribe.count && n > 0);
	} else if (pkt->type == VS_PUBLISH && pkt->publish.topic.len) {
		CHECK(vs_topic_name_valid(pkt->publish.topic.p, pkt->publish.topic.len));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vs_decode_opts o = {.version = FUZZ_VERSION, .max_packet_size = 0};
	struct vs_packet pkt, copy, pkt2;
	struct codec_prep s1 = {0}, s2 = {0};
	struct vs_props *pp, *wp;
	enum vs_reason why = 0;
	ssize_t n, n2, sz, w;
	uint8_t *buf;
	int version;

	n = vs_codec_decode(data, size, &o, &pkt, &why);
	if (n <= 0)
		return 0;
	CHECK((size_t)n <= size);
	CHECK(vs_codec_decode(data, (size_t)n - 1, &o, &pkt2, &why) == 0);
	CHECK(vs_codec_decode(data, (size_t)n / 2, &o, &pkt2, &why) == 0);
	version = pkt.type == VS_CONNECT ? pkt.connect.version : FUZZ_VERSION;
	walk(&pkt, version);

	copy = pkt;
	pp = codec_packet_props(&copy, &wp);
	if (pp)
		codec_prep_props(pp, &s1);
	if (wp)
		codec_prep_props(wp, &s2);
	sz = vs_codec_size(&copy, version);
	CHECK(sz > 0);
	buf = malloc((size_t)sz);
	CHECK(buf);
	w = vs_codec_encode(&copy, version, buf, (size_t)sz);
	CHECK(w == sz);
	n2 = vs_codec_decode(buf, (size_t)w, &o, &pkt2, &why);
	if (n2 != w) {
		fprintf(stderr, "re-decode: n2=%zd w=%zd why=0x%02x\n", n2, w, why);
		abort();
	}
	CHECK(codec_packet_eq(&pkt, &pkt2, version));
	free(buf);
	if (pp)
		codec_prep_free(&s1);
	if (wp)
		codec_prep_free(&s2);
	return 0;
}

#endif
