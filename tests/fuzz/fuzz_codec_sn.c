/*
 * libFuzzer target: the MQTT-SN 1.2 codec (codec/sn.h). The input is one datagram.
 *
 * Decoded (vs_sn_decode) it must be refused with a reason, or, when accepted, hold for it:
 * - its views lie inside the datagram, and the fields keep the codec's promises (a known type,
 *   no reserved topic-id type or QoS -1 where the type uses them, CONNECT's protocol 0x01, a
 * non-empty REGISTER name, a will either empty or flags and a topic);
 * - the datagram cut by one byte, or with one byte more, is refused (one datagram, one message);
 * - it re-encodes (vs_sn_size() == bytes written; a byte less of room is VS_ETOOBIG) to the
 *   same bytes, or to the one-byte length form when the input used the three-byte form for a
 *   short message, and the re-encoding decodes to equal fields.
 * Unwrapped (vs_sn_unwrap), when it is an encapsulation: the header it splits off is the one
 * vs_sn_wrap_header() writes for the same ctrl and node id, and the inner message goes through
 * the checks above. Seeds in tests/fuzz/corpus/codec_sn/, dictionary in dict/codec_sn.dict.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "codec/sn.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const struct vs_sn_packet *a, const struct vs_sn_packet *b)
{
	return a->type == b->type && a->flags == b->flags && a->rc == b->rc &&
	       a->gw_id == b->gw_id && a->radius == b->radius && a->protocol == b->protocol &&
	       a->has_duration == b->has_duration && a->empty_will == b->empty_will &&
	       a->duration == b->duration && a->topic_id == b->topic_id && a->msg_id == b->msg_id &&
	       a->data.len == b->data.len &&
	       (!a->data.len || memcmp(a->data.p, b->data.p, a->data.len) == 0);
}

/* Bytes after the type, from the spec's message formats (section 5.4), written out here
 * independently of sn.c's table: fixed-size types have min == max; -1 is "no limit". */
static const struct {
	int min, max;
} body_size[256] = {
    [VS_SN_ADVERTISE] = {3, 3},	    [VS_SN_SEARCHGW] = {1, 1},	  [VS_SN_GWINFO] = {1, -1},
    [VS_SN_CONNECT] = {4, -1},	    [VS_SN_CONNACK] = {1, 1},	  [VS_SN_WILLTOPICREQ] = {0, 0},
    [VS_SN_WILLTOPIC] = {0, -1},    [VS_SN_WILLMSGREQ] = {0, 0},  [VS_SN_WILLMSG] = {0, -1},
    [VS_SN_REGISTER] = {5, -1},	    [VS_SN_REGACK] = {5, 5},	  [VS_SN_PUBLISH] = {5, -1},
    [VS_SN_PUBACK] = {5, 5},	    [VS_SN_PUBCOMP] = {2, 2},	  [VS_SN_PUBREC] = {2, 2},
    [VS_SN_PUBREL] = {2, 2},	    [VS_SN_SUBSCRIBE] = {4, -1},  [VS_SN_SUBACK] = {6, 6},
    [VS_SN_UNSUBSCRIBE] = {4, -1},  [VS_SN_UNSUBACK] = {2, 2},	  [VS_SN_PINGREQ] = {0, -1},
    [VS_SN_PINGRESP] = {0, 0},	    [VS_SN_DISCONNECT] = {0, 2},  [VS_SN_WILLTOPICUPD] = {0, -1},
    [VS_SN_WILLTOPICRESP] = {1, 1}, [VS_SN_WILLMSGUPD] = {0, -1}, [VS_SN_WILLMSGRESP] = {1, 1},
};

/* The promises of sn.h about an accepted message. */
static void check_fields(const struct vs_sn_packet *p, const uint8_t *buf, size_t len)
{
	int t = p->type;
	/* the header read here, not by the codec: the length field is the datagram's length */
	size_t hl = buf[0] == 0x01 ? 3 : 1;
	size_t total = hl == 3 ? (size_t)buf[1] << 8 | buf[2] : buf[0];
	size_t body;

	CHECK(total == len && len >= hl + 1 && buf[hl] == t);
	body = len - hl - 1;
	CHECK(strcmp(vs_sn_type_name(t), "?") != 0 && t != VS_SN_ENCAPSULATED);
	CHECK(body >= (size_t)body_size[t].min);
	CHECK(body_size[t].max < 0 || body <= (size_t)body_size[t].max);
	if (t == VS_SN_DISCONNECT)
		CHECK(p->has_duration == (body == 2));
	if (p->data.len)
		CHECK(p->data.p > buf && p->data.p + p->data.len == buf + len);
	if (t == VS_SN_CONNECT)
		CHECK(p->protocol == 0x01);
	if (t == VS_SN_REGISTER)
		CHECK(p->data.len > 0);
	/* QoS -1 and topic-id type 0b11 only where the type does not use those bits. */
	if (t == VS_SN_SUBSCRIBE || t == VS_SN_SUBACK || t == VS_SN_WILLTOPIC ||
	    t == VS_SN_WILLTOPICUPD)
		CHECK(vs_sn_qos(p->flags) >= 0);
	if (t == VS_SN_PUBLISH || t == VS_SN_SUBSCRIBE || t == VS_SN_UNSUBSCRIBE)
		CHECK((p->flags & VS_SN_TID_MASK) != 3);
	if (p->empty_will)
		CHECK((t == VS_SN_WILLTOPIC || t == VS_SN_WILLTOPICUPD) && !p->flags &&
		      !p->data.len);
	else if (t == VS_SN_WILLTOPIC || t == VS_SN_WILLTOPICUPD)
		CHECK(p->data.len > 0);
	if (t == VS_SN_SUBSCRIBE || t == VS_SN_UNSUBSCRIBE)
		CHECK((p->flags & VS_SN_TID_MASK) == VS_SN_TID_NORMAL ? p->data.len > 0
								      : !p->data.len && body == 5);
	if (p->has_duration)
		CHECK(t == VS_SN_DISCONNECT);
}

/* One datagram through vs_sn_decode() and, when accepted, the round trip. */
static void check_message(const uint8_t *buf, size_t len)
{
	struct vs_sn_packet p, q;
	const char *why = NULL;
	ssize_t sz, w;
	uint8_t *out, *longer;
	int rc;

	rc = vs_sn_decode(buf, len, &p, &why);
	CHECK(vs_sn_decode(buf, len, &q, NULL) == rc);
	if (rc != 0) {
		CHECK(rc == VS_EPROTO && why != NULL);
		return;
	}
	check_fields(&p, buf, len);
	CHECK(vs_sn_decode(buf, len - 1, &q, NULL) == VS_EPROTO);
	CHECK(vs_sn_decode(buf, len / 2, &q, NULL) == VS_EPROTO);

	sz = vs_sn_size(&p);
	/* the same size, or 2 bytes less when a short message came in the three-byte form */
	CHECK(sz == (ssize_t)len || (buf[0] == 0x01 && sz + 2 == (ssize_t)len && sz <= 255));
	out = malloc((size_t)sz); /* exactly: ASan sees a write past it */
	CHECK(out);
	CHECK(vs_sn_encode(&p, out, (size_t)sz - 1) == VS_ETOOBIG);
	w = vs_sn_encode(&p, out, (size_t)sz);
	CHECK(w == sz);
	if (sz == (ssize_t)len)
		CHECK(memcmp(out, buf, len) == 0);
	else
		CHECK(out[0] == sz && memcmp(out + 1, buf + 3, (size_t)sz - 1) == 0);
	CHECK(vs_sn_decode(out, (size_t)w, &q, NULL) == 0);
	CHECK(same(&p, &q));
	/* one byte more than the length field says is refused */
	longer = malloc((size_t)w + 1);
	CHECK(longer);
	memcpy(longer, out, (size_t)w);
	longer[w] = 0;
	CHECK(vs_sn_decode(longer, (size_t)w + 1, &q, NULL) == VS_EPROTO);
	free(longer);
	free(out);
}

static void check_encapsulated(const uint8_t *buf, size_t len)
{
	struct vs_sn_encap e;
	uint8_t hdr[255];
	ssize_t h;

	if (vs_sn_unwrap(buf, len, &e) != 0)
		return;
	CHECK(len >= 4 && buf[1] == VS_SN_ENCAPSULATED && e.ctrl == buf[2]);
	CHECK(e.node.p == buf + 3 && e.node.len + 3 == buf[0]);
	CHECK(e.inner.p == buf + buf[0] && e.inner.len == len - buf[0] && e.inner.len > 0);
	h = vs_sn_wrap_header(e.ctrl, &e.node, hdr, sizeof(hdr));
	CHECK(h == buf[0] && memcmp(hdr, buf, (size_t)h) == 0);
	CHECK(vs_sn_wrap_header(e.ctrl, &e.node, hdr, (size_t)h - 1) == VS_ETOOBIG);
	check_message(e.inner.p, e.inner.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_message(data, size);
	check_encapsulated(data, size);
	return 0;
}
