/*
 * The MQTT-SN 1.2 codec (codec/sn.h): every message type against bytes written out by hand from
 * the spec (section 5.4), both length forms, every malformed datagram the decoder refuses with
 * the reason it gives, the QoS helpers, and the forwarder encapsulation (section 5.5). Every
 * input is decoded from just before a guard page, so a read past the datagram faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "codec/sn.h"
#include "guard.h"

#define N(a)   (sizeof(a) / sizeof((a)[0]))
#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* ---- helpers ------------------------------------------------------------------------------ */

/* One decode whose input sits right before a guard page until sdec_done(). */
struct sdec {
	uint8_t *mem;
	size_t len;
	int rc;
	const char *why;
	struct vs_sn_packet p;
};

static void sdec_run(struct sdec *d, const uint8_t *b, size_t len)
{
	d->mem = guard_copy(b, len);
	d->len = len;
	d->why = NULL;
	d->rc = vs_sn_decode(d->mem, len, &d->p, &d->why);
}

static void sdec_done(struct sdec *d)
{
	guard_free(d->mem, d->len);
	d->mem = NULL;
}

/* The datagram b[0..len) is refused, for the reason `why`. */
static void expect_bad(const uint8_t *b, size_t len, const char *why)
{
	struct sdec d;

	sdec_run(&d, b, len);
	if (d.rc != VS_EPROTO)
		fail_msg("%zu-byte datagram (type 0x%02x) accepted, expected '%s'", len,
			 len > 1 ? b[1] : 0, why);
	if (!d.why || strcmp(d.why, why) != 0)
		fail_msg("%zu-byte datagram (type 0x%02x): refused for '%s', expected '%s'", len,
			 len > 1 ? b[1] : 0, d.why ? d.why : "(null)", why);
	/* why may be NULL */
	assert_int_equal(vs_sn_decode(d.mem, len, &d.p, NULL), VS_EPROTO);
	sdec_done(&d);
}

static void expect_pkt_eq(const struct vs_sn_packet *a, const struct vs_sn_packet *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->rc, b->rc);
	assert_int_equal(a->gw_id, b->gw_id);
	assert_int_equal(a->radius, b->radius);
	assert_int_equal(a->protocol, b->protocol);
	assert_int_equal(a->has_duration, b->has_duration);
	assert_int_equal(a->empty_will, b->empty_will);
	assert_int_equal(a->duration, b->duration);
	assert_int_equal(a->topic_id, b->topic_id);
	assert_int_equal(a->msg_id, b->msg_id);
	assert_int_equal(a->data.len, b->data.len);
	if (a->data.len)
		assert_memory_equal(a->data.p, b->data.p, a->data.len);
}

/* A zeroed buffer of len bytes ending right before a guard page: writing past it faults. */
static uint8_t *guard_zero(size_t len)
{
	uint8_t *z = calloc(1, len + 1), *g;

	assert_non_null(z);
	g = guard_copy(z, len);
	free(z);
	return g;
}

/* ---- every message type ------------------------------------------------------------------- */

/* What follows the fixed part of a type, for the generic truncation / extension checks. */
enum tail {
	T_NONE,	 /* nothing may follow: one more byte is refused */
	T_ANY,	 /* a variable part of any length (may be empty) */
	T_OTHER, /* a variable part with its own rules (checked in its own test) */
};

struct row {
	const char *what;
	size_t fixed; /* bytes between the type and the variable part */
	enum tail tail;
	const uint8_t *wire; /* the spec's encoding, written out by hand */
	size_t wire_len;
	struct vs_sn_packet p; /* the fields */
};

/* The wire bytes of a row. */
#define W(...)                                                                                     \
	.wire = (const uint8_t[]){__VA_ARGS__}, .wire_len = sizeof((const uint8_t[]){__VA_ARGS__})

static const struct row rows[] = {
    {"ADVERTISE",
     3,
     T_NONE,
     W(0x05, 0x00, 0x05, 0x03, 0x84),
     {.type = VS_SN_ADVERTISE, .gw_id = 5, .duration = 900}},
    {"SEARCHGW", 1, T_NONE, W(0x03, 0x01, 0x02), {.type = VS_SN_SEARCHGW, .radius = 2}},
    {"GWINFO from the gateway", 1, T_ANY, W(0x03, 0x02, 0x07), {.type = VS_SN_GWINFO, .gw_id = 7}},
    {"GWINFO from a client, with an address",
     1,
     T_ANY,
     W(0x07, 0x02, 0x07, 10, 0, 0, 1),
     {.type = VS_SN_GWINFO, .gw_id = 7, .data = {(const uint8_t[]){10, 0, 0, 1}, 4}}},
    {"CONNECT",
     4,
     T_ANY,
     W(0x09, 0x04, 0x0C, 0x01, 0x00, 0x3C, 's', 'n', '1'),
     {.type = VS_SN_CONNECT,
      .flags = VS_SN_WILL | VS_SN_CLEAN,
      .protocol = 1,
      .duration = 60,
      .data = {(const uint8_t *)"sn1", 3}}},
    {"CONNACK",
     1,
     T_NONE,
     W(0x03, 0x05, 0x03),
     {.type = VS_SN_CONNACK, .rc = VS_SN_RC_NOT_SUPPORTED}},
    {"WILLTOPICREQ", 0, T_NONE, W(0x02, 0x06), {.type = VS_SN_WILLTOPICREQ}},
    {"WILLTOPIC",
     0,
     T_OTHER,
     W(0x06, 0x07, 0x30, 'w', '/', 't'),
     {.type = VS_SN_WILLTOPIC, .flags = 0x20 | VS_SN_RETAIN, .data = {(const uint8_t *)"w/t", 3}}},
    {"WILLTOPIC empty (delete the will)",
     0,
     T_OTHER,
     W(0x02, 0x07),
     {.type = VS_SN_WILLTOPIC, .empty_will = true}},
    {"WILLMSGREQ", 0, T_NONE, W(0x02, 0x08), {.type = VS_SN_WILLMSGREQ}},
    {"WILLMSG",
     0,
     T_ANY,
     W(0x05, 0x09, 'b', 'y', 'e'),
     {.type = VS_SN_WILLMSG, .data = {(const uint8_t *)"bye", 3}}},
    {"WILLMSG empty", 0, T_ANY, W(0x02, 0x09), {.type = VS_SN_WILLMSG}},
    {"REGISTER",
     4,
     T_OTHER,
     W(0x09, 0x0A, 0x00, 0x00, 0x12, 0x34, 'a', '/', 'b'),
     {.type = VS_SN_REGISTER, .msg_id = 0x1234, .data = {(const uint8_t *)"a/b", 3}}},
    {"REGACK",
     5,
     T_NONE,
     W(0x07, 0x0B, 0x00, 0x01, 0x12, 0x34, 0x00),
     {.type = VS_SN_REGACK, .topic_id = 1, .msg_id = 0x1234}},
    {"PUBLISH QoS 1",
     5,
     T_ANY,
     W(0x09, 0x0C, 0x20, 0xAB, 0xCD, 0x00, 0x02, 'h', 'i'),
     {.type = VS_SN_PUBLISH,
      .flags = 0x20,
      .topic_id = 0xABCD,
      .msg_id = 2,
      .data = {(const uint8_t *)"hi", 2}}},
    {"PUBLISH QoS -1, short topic, empty payload",
     5,
     T_ANY,
     W(0x07, 0x0C, 0x62, 'a', 'b', 0x00, 0x00),
     {.type = VS_SN_PUBLISH, .flags = 0x60 | VS_SN_TID_SHORT, .topic_id = 0x6162}},
    {"PUBLISH QoS 2 dup retain predefined",
     5,
     T_ANY,
     W(0x08, 0x0C, 0xD1, 0x00, 0x05, 0xFF, 0xFE, 'x'),
     {.type = VS_SN_PUBLISH,
      .flags = VS_SN_DUP | 0x40 | VS_SN_RETAIN | VS_SN_TID_PREDEFINED,
      .topic_id = 5,
      .msg_id = 0xFFFE,
      .data = {(const uint8_t *)"x", 1}}},
    {"PUBACK",
     5,
     T_NONE,
     W(0x07, 0x0D, 0x00, 0x01, 0x00, 0x02, 0x02),
     {.type = VS_SN_PUBACK, .topic_id = 1, .msg_id = 2, .rc = VS_SN_RC_INVALID_TOPIC}},
    {"PUBCOMP", 2, T_NONE, W(0x04, 0x0E, 0x00, 0x07), {.type = VS_SN_PUBCOMP, .msg_id = 7}},
    {"PUBREC", 2, T_NONE, W(0x04, 0x0F, 0x01, 0x00), {.type = VS_SN_PUBREC, .msg_id = 256}},
    {"PUBREL", 2, T_NONE, W(0x04, 0x10, 0x80, 0x01), {.type = VS_SN_PUBREL, .msg_id = 0x8001}},
    {"SUBSCRIBE by name",
     3,
     T_OTHER,
     W(0x08, 0x12, 0x40, 0x00, 0x03, 's', '/', '#'),
     {.type = VS_SN_SUBSCRIBE, .flags = 0x40, .msg_id = 3, .data = {(const uint8_t *)"s/#", 3}}},
    {"SUBSCRIBE predefined",
     3,
     T_OTHER,
     W(0x07, 0x12, 0xA1, 0x00, 0x04, 0x00, 0x05),
     {.type = VS_SN_SUBSCRIBE,
      .flags = VS_SN_DUP | 0x20 | VS_SN_TID_PREDEFINED,
      .msg_id = 4,
      .topic_id = 5}},
    {"SUBSCRIBE short name",
     3,
     T_OTHER,
     W(0x07, 0x12, 0x02, 0x00, 0x04, 'a', 'b'),
     {.type = VS_SN_SUBSCRIBE, .flags = VS_SN_TID_SHORT, .msg_id = 4, .topic_id = 0x6162}},
    {"SUBACK",
     6,
     T_NONE,
     W(0x08, 0x13, 0x20, 0x00, 0x09, 0x00, 0x03, 0x00),
     {.type = VS_SN_SUBACK, .flags = 0x20, .topic_id = 9, .msg_id = 3}},
    {"UNSUBSCRIBE by name",
     3,
     T_OTHER,
     W(0x08, 0x14, 0x00, 0x00, 0x05, 's', '/', '#'),
     {.type = VS_SN_UNSUBSCRIBE, .msg_id = 5, .data = {(const uint8_t *)"s/#", 3}}},
    {"UNSUBSCRIBE predefined",
     3,
     T_OTHER,
     W(0x07, 0x14, 0x01, 0x00, 0x05, 0x00, 0x07),
     {.type = VS_SN_UNSUBSCRIBE, .flags = VS_SN_TID_PREDEFINED, .msg_id = 5, .topic_id = 7}},
    {"UNSUBACK", 2, T_NONE, W(0x04, 0x15, 0x00, 0x05), {.type = VS_SN_UNSUBACK, .msg_id = 5}},
    {"PINGREQ", 0, T_ANY, W(0x02, 0x16), {.type = VS_SN_PINGREQ}},
    {"PINGREQ with a client id (sleeping client awake)",
     0,
     T_ANY,
     W(0x05, 0x16, 's', 'n', '1'),
     {.type = VS_SN_PINGREQ, .data = {(const uint8_t *)"sn1", 3}}},
    {"PINGRESP", 0, T_NONE, W(0x02, 0x17), {.type = VS_SN_PINGRESP}},
    {"DISCONNECT", 0, T_OTHER, W(0x02, 0x18), {.type = VS_SN_DISCONNECT}},
    {"DISCONNECT with a sleep duration",
     0,
     T_OTHER,
     W(0x04, 0x18, 0x01, 0x2C),
     {.type = VS_SN_DISCONNECT, .has_duration = true, .duration = 300}},
    {"WILLTOPICUPD",
     0,
     T_OTHER,
     W(0x04, 0x1A, 0x10, 'w'),
     {.type = VS_SN_WILLTOPICUPD, .flags = VS_SN_RETAIN, .data = {(const uint8_t *)"w", 1}}},
    {"WILLTOPICUPD empty",
     0,
     T_OTHER,
     W(0x02, 0x1A),
     {.type = VS_SN_WILLTOPICUPD, .empty_will = true}},
    {"WILLTOPICRESP", 1, T_NONE, W(0x03, 0x1B, 0x00), {.type = VS_SN_WILLTOPICRESP}},
    {"WILLMSGUPD",
     0,
     T_ANY,
     W(0x03, 0x1C, 'x'),
     {.type = VS_SN_WILLMSGUPD, .data = {(const uint8_t *)"x", 1}}},
    {"WILLMSGRESP",
     1,
     T_NONE,
     W(0x03, 0x1D, 0x01),
     {.type = VS_SN_WILLMSGRESP, .rc = VS_SN_RC_CONGESTION}},
};

/* Encoding the fields gives the spec's bytes; decoding those bytes gives the fields; encoding
 * the decoded packet gives the same bytes again. */
static void test_round_trip_every_type(void **state)
{
	bool seen[256] = {false};
	uint8_t out[64];
	struct sdec d;
	size_t i;

	for (i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		seen[r->p.type] = true;
		assert_int_equal(r->wire[0], r->wire_len);
		if (vs_sn_size(&r->p) != (ssize_t)r->wire_len)
			fail_msg("%s: size %zd", r->what, vs_sn_size(&r->p));
		memset(out, 0xAA, sizeof(out));
		assert_int_equal(vs_sn_encode(&r->p, out, sizeof(out)), r->wire_len);
		if (memcmp(out, r->wire, r->wire_len) != 0)
			fail_msg("%s: encoded differently", r->what);
		assert_int_equal(out[r->wire_len], 0xAA);

		sdec_run(&d, r->wire, r->wire_len);
		if (d.rc != 0)
			fail_msg("%s refused: %s", r->what, d.why);
		expect_pkt_eq(&d.p, &r->p);
		if (d.p.data.len) /* a view into the datagram, not a copy */
			assert_ptr_equal(d.p.data.p, d.mem + r->wire_len - d.p.data.len);
		memset(out, 0, sizeof(out));
		assert_int_equal(vs_sn_encode(&d.p, out, sizeof(out)), r->wire_len);
		assert_memory_equal(out, r->wire, r->wire_len);
		sdec_done(&d);
	}
	/* every type of the spec is in the table */
	static const uint8_t types[] = {0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
					0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x12, 0x13,
					0x14, 0x15, 0x16, 0x17, 0x18, 0x1A, 0x1B, 0x1C, 0x1D};
	for (i = 0; i < N(types); i++)
		if (!seen[types[i]])
			fail_msg("type 0x%02x has no row", types[i]);
}

/* A datagram shorter or longer than its length field says is refused, whatever the type. */
static void test_length_mismatch(void **state)
{
	uint8_t b[80];
	size_t i, k;

	for (i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		for (k = 2; k < r->wire_len; k++)
			expect_bad(r->wire, k, "length beyond the datagram");
		memcpy(b, r->wire, r->wire_len);
		b[r->wire_len] = 0x00;
		expect_bad(b, r->wire_len + 1, "bytes after the message");
		b[r->wire_len + 1] = 0x00;
		expect_bad(b, r->wire_len + 2, "bytes after the message");
	}
	/* the same in the three-byte form */
	expect_bad(B(0x01, 0x00, 0x07, 0x0E, 0x00, 0x07), "length beyond the datagram");
	expect_bad(B(0x01, 0x00, 0x05, 0x0E, 0x00, 0x07), "bytes after the message");
	expect_bad(B(0x01, 0x01, 0x06, 0x0E, 0x00, 0x07), "length beyond the datagram");
}

static void test_header_malformed(void **state)
{
	struct sdec d;

	/* nothing, and a lone length byte */
	sdec_run(&d, NULL, 0);
	assert_int_equal(d.rc, VS_EPROTO);
	assert_string_equal(d.why, "shorter than a header");
	sdec_done(&d);
	expect_bad(B(0x02), "shorter than a header");
	expect_bad(B(0x01), "shorter than a header");
	/* a length below 2 cannot hold the type: 0x00 (0x01 is the three-byte form) */
	expect_bad(B(0x00, 0x16), "length below 2");
	expect_bad(B(0x00, 0x0E, 0x00, 0x07), "length below 2");
	/* the three-byte form cut short: 0x01 then fewer than two length bytes and a type */
	expect_bad(B(0x01, 0x16), "three-byte length cut short");
	expect_bad(B(0x01, 0x00, 0x04), "three-byte length cut short");
	/* the three-byte form's length must cover its own header and the type */
	expect_bad(B(0x01, 0x00, 0x00, 0x16), "length below 4");
	expect_bad(B(0x01, 0x00, 0x03, 0x16), "length below 4");
	expect_bad(B(0x01, 0x00, 0x01, 0x16, 0x00), "length below 4");
}

static void test_unknown_types(void **state)
{
	/* reserved in section 5.2.2, and ENCAPSULATED, which only vs_sn_unwrap() takes */
	static const uint8_t bad[] = {0x03, 0x11, 0x19, 0x1E, 0x1F, 0x80, 0xFD, 0xFE, 0xFF};
	uint8_t b[4];
	size_t i;

	for (i = 0; i < N(bad); i++) {
		b[0] = 2;
		b[1] = bad[i];
		expect_bad(b, 2, "unknown message type");
		b[0] = 4;
		b[2] = b[3] = 0;
		expect_bad(b, 4, "unknown message type");
	}
	expect_bad(B(0x01, 0x00, 0x04, 0x03), "unknown message type");
}

/* Every type's fixed fields, cut short with the length field saying so. */
static void test_fixed_fields_cut_short(void **state)
{
	uint8_t b[80];
	size_t i, k;
	int checked = 0;

	for (i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		for (k = 0; k < r->fixed; k++) {
			memcpy(b, r->wire, 2 + k);
			b[0] = (uint8_t)(2 + k);
			expect_bad(b, 2 + k, "shorter than its fixed fields");
			checked++;
		}
	}
	assert_true(checked > 40);
	/* and in the three-byte form */
	expect_bad(B(0x01, 0x00, 0x05, 0x0E, 0x00), "shorter than its fixed fields");
	expect_bad(B(0x01, 0x00, 0x08, 0x0C, 0x20, 0x00, 0x01, 0x00),
		   "shorter than its fixed fields");
}

/* A byte after a fixed-size type's fields is refused; a variable part may be any length. */
static void test_trailing_bytes(void **state)
{
	uint8_t b[80];
	struct sdec d;
	size_t i;
	int none = 0;

	for (i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		if (r->tail == T_OTHER)
			continue;
		memcpy(b, r->wire, r->wire_len);
		b[r->wire_len] = 'z';
		b[0] = (uint8_t)(r->wire_len + 1);
		if (r->tail == T_NONE) {
			expect_bad(b, r->wire_len + 1, "longer than its type");
			none++;
			continue;
		}
		sdec_run(&d, b, r->wire_len + 1);
		assert_int_equal(d.rc, 0);
		assert_int_equal(d.p.data.len, r->p.data.len + 1);
		assert_int_equal(d.p.data.p[d.p.data.len - 1], 'z');
		sdec_done(&d);
	}
	assert_int_equal(none, 15);
}

/* One-byte form up to 255; 0x01 LL LL from 256 on, with the total counting all three bytes. */
static void test_length_forms(void **state)
{
	static const size_t payloads[] = {248, 249, 250, 252, 253, 300, 65526};
	static const size_t totals[] = {255, 258, 259, 261, 262, 309, 65535};
	struct vs_sn_packet p = {.type = VS_SN_PUBLISH, .flags = 0x20, .topic_id = 1, .msg_id = 9};
	uint8_t *pay = malloc(65536), *out;
	struct sdec d;
	size_t i;

	assert_non_null(pay);
	for (i = 0; i < 65536; i++)
		pay[i] = (uint8_t)(i * 7);
	for (i = 0; i < N(payloads); i++) {
		size_t t = totals[i], hl = t <= 255 ? 1 : 3;
		p.data = (struct vs_buf){pay, payloads[i]};
		assert_int_equal(vs_sn_size(&p), t);
		out = guard_zero(t); /* writing one byte more faults */
		assert_int_equal(vs_sn_encode(&p, out, t), t);
		if (hl == 1) {
			assert_int_equal(out[0], t);
		} else {
			assert_int_equal(out[0], 0x01);
			assert_int_equal(out[1], t >> 8);
			assert_int_equal(out[2], t & 0xFF);
		}
		assert_int_equal(out[hl], VS_SN_PUBLISH);
		assert_int_equal(out[hl + 1], 0x20);
		assert_memory_equal(out + hl + 6, pay, payloads[i]);
		sdec_run(&d, out, t);
		assert_int_equal(d.rc, 0);
		expect_pkt_eq(&d.p, &p);
		sdec_done(&d);
		guard_free(out, t);
	}

	/* The example of the brief: 300 bytes of payload, 309 in all = 0x0135. */
	static const uint8_t head[] = {0x01, 0x01, 0x35, 0x0C, 0x20, 0x00, 0x01, 0x00, 0x09};
	uint8_t buf[309];
	p.data = (struct vs_buf){pay, 300};
	assert_int_equal(vs_sn_encode(&p, buf, sizeof(buf)), 309);
	assert_memory_equal(buf, head, sizeof(head));

	/* The three-byte form for a short message is accepted (some clients always send it), and
	 * re-encodes in the one-byte form. */
	sdec_run(&d, B(0x01, 0x00, 0x06, 0x0E, 0x00, 0x07));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.type, VS_SN_PUBCOMP);
	assert_int_equal(d.p.msg_id, 7);
	assert_int_equal(vs_sn_encode(&d.p, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, ((const uint8_t[]){0x04, 0x0E, 0x00, 0x07}), 4);
	sdec_done(&d);
	sdec_run(&d, B(0x01, 0x00, 0x04, 0x16));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.type, VS_SN_PINGREQ);
	assert_int_equal(d.p.data.len, 0);
	sdec_done(&d);

	/* Past 65535 there is no length form. */
	p.data = (struct vs_buf){pay, 65527};
	assert_int_equal(vs_sn_size(&p), VS_ETOOBIG);
	out = malloc(70000);
	assert_int_equal(vs_sn_encode(&p, out, 70000), VS_ETOOBIG);
	p.type = VS_SN_WILLMSG;
	p.data = (struct vs_buf){pay, 65532};
	assert_int_equal(vs_sn_size(&p), VS_ETOOBIG);
	p.data.len = 65531;
	assert_int_equal(vs_sn_size(&p), 65535);

	/* A datagram longer than 65535 cannot be one message. */
	memset(out, 0, 70000);
	out[0] = 0x01;
	out[1] = out[2] = 0xFF;
	out[3] = VS_SN_WILLMSG;
	expect_bad(out, 65536, "bytes after the message");
	expect_bad(out, 70000, "bytes after the message");
	sdec_run(&d, out, 65535);
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.data.len, 65531);
	sdec_done(&d);
	free(out);
	free(pay);
}

static void test_flags_malformed(void **state)
{
	/* [5.3.4] TopicIdType 0b11 is reserved where a type uses TopicIdType */
	expect_bad(B(0x07, 0x0C, 0x03, 0x00, 0x01, 0x00, 0x00), "reserved topic id type");
	expect_bad(B(0x07, 0x0C, 0x23, 0x00, 0x01, 0x00, 0x01), "reserved topic id type");
	expect_bad(B(0x07, 0x12, 0x03, 0x00, 0x01, 0x00, 0x05), "reserved topic id type");
	expect_bad(B(0x07, 0x14, 0x03, 0x00, 0x01, 0x00, 0x05), "reserved topic id type");

	/* [5.3.4] QoS -1 only in PUBLISH, where a type uses QoS */
	expect_bad(B(0x06, 0x12, 0x60, 0x00, 0x01, 'a'), "QoS -1 outside PUBLISH");
	expect_bad(B(0x07, 0x12, 0x61, 0x00, 0x01, 0x00, 0x05), "QoS -1 outside PUBLISH");
	expect_bad(B(0x08, 0x13, 0x60, 0x00, 0x01, 0x00, 0x01, 0x00), "QoS -1 outside PUBLISH");
	expect_bad(B(0x04, 0x07, 0x60, 'w'), "QoS -1 outside PUBLISH");
	expect_bad(B(0x04, 0x1A, 0x70, 'w'), "QoS -1 outside PUBLISH");

	/* bits a type does not use ("not used" in 5.3.4) are ignored: CONNECT's QoS and topic id
	 * type, UNSUBSCRIBE's QoS, SUBACK's and the will flags' topic id type */
	const struct {
		const uint8_t *b;
		size_t n;
	} unused[] = {
	    {B(0x07, 0x04, 0x07, 0x01, 0x00, 0x3C, 'c')},
	    {B(0x07, 0x04, 0x64, 0x01, 0x00, 0x3C, 'c')},
	    {B(0x06, 0x14, 0x60, 0x00, 0x01, 'a')},
	    {B(0x08, 0x13, 0x03, 0x00, 0x01, 0x00, 0x01, 0x00)},
	    {B(0x04, 0x07, 0x23, 'w')},
	    {B(0x04, 0x1A, 0x03, 'w')},
	};
	for (size_t i = 0; i < sizeof(unused) / sizeof(unused[0]); i++) {
		struct sdec u;
		sdec_run(&u, unused[i].b, unused[i].n);
		assert_int_equal(u.rc, 0);
		sdec_done(&u);
	}

	/* the same datagrams with QoS 2 / a normal type are fine */
	struct sdec d;
	sdec_run(&d, B(0x06, 0x12, 0x40, 0x00, 0x01, 'a'));
	assert_int_equal(d.rc, 0);
	assert_int_equal(vs_sn_qos(d.p.flags), 2);
	sdec_done(&d);
	sdec_run(&d, B(0x04, 0x07, 0x50, 'w'));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.flags, 0x50);
	assert_false(d.p.empty_will);
	sdec_done(&d);
}

static void test_connect_protocol(void **state)
{
	expect_bad(B(0x07, 0x04, 0x04, 0x00, 0x00, 0x3C, 'c'), "unknown protocol id");
	expect_bad(B(0x07, 0x04, 0x04, 0x02, 0x00, 0x3C, 'c'), "unknown protocol id");
	expect_bad(B(0x06, 0x04, 0x04, 0xFF, 0x00, 0x3C), "unknown protocol id");

	/* an empty client id is the gateway's to refuse, not the codec's */
	struct sdec d;
	sdec_run(&d, B(0x06, 0x04, 0x04, 0x01, 0x00, 0x00));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.protocol, 1);
	assert_int_equal(d.p.flags, VS_SN_CLEAN);
	assert_int_equal(d.p.data.len, 0);
	sdec_done(&d);
}

static void test_topic_parts_malformed(void **state)
{
	/* REGISTER needs a topic name */
	expect_bad(B(0x06, 0x0A, 0x00, 0x00, 0x00, 0x01), "empty topic name");
	/* SUBSCRIBE / UNSUBSCRIBE by name need one */
	expect_bad(B(0x05, 0x12, 0x00, 0x00, 0x01), "empty topic name");
	expect_bad(B(0x05, 0x14, 0x20, 0x00, 0x01), "empty topic name");
	/* by predefined id or short name: exactly two bytes */
	static const uint8_t types[] = {VS_SN_SUBSCRIBE, VS_SN_UNSUBSCRIBE};
	static const uint8_t tids[] = {VS_SN_TID_PREDEFINED, VS_SN_TID_SHORT};
	uint8_t b[16];
	size_t i, j, k;
	for (i = 0; i < N(types); i++) {
		for (j = 0; j < N(tids); j++) {
			for (k = 0; k <= 5; k++) {
				if (k == 2)
					continue;
				b[0] = (uint8_t)(5 + k);
				b[1] = types[i];
				b[2] = tids[j];
				b[3] = 0x00;
				b[4] = 0x01;
				memset(b + 5, 'a', k);
				expect_bad(b, 5 + k, "topic id is not two bytes");
			}
		}
	}
	/* a short name with a '/' or '#' in it is still two bytes of id to the codec */
	struct sdec d;
	sdec_run(&d, B(0x07, 0x12, 0x22, 0x00, 0x01, '#', '/'));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.topic_id, ('#' << 8) | '/');
	assert_int_equal(d.p.data.len, 0);
	sdec_done(&d);
	/* a name of one byte is fine */
	sdec_run(&d, B(0x06, 0x14, 0x00, 0x00, 0x01, '#'));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.data.len, 1);
	assert_int_equal(d.p.data.p[0], '#');
	sdec_done(&d);
	sdec_run(&d, B(0x07, 0x0A, 0x00, 0x00, 0x00, 0x01, 'a'));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.p.data.len, 1);
	sdec_done(&d);
}

static void test_disconnect_duration(void **state)
{
	expect_bad(B(0x03, 0x18, 0x00), "DISCONNECT duration is not two bytes");
	expect_bad(B(0x05, 0x18, 0x00, 0x01, 0x02), "DISCONNECT duration is not two bytes");
	expect_bad(B(0x06, 0x18, 0x00, 0x01, 0x02, 0x03), "DISCONNECT duration is not two bytes");

	struct sdec d;
	sdec_run(&d, B(0x02, 0x18));
	assert_int_equal(d.rc, 0);
	assert_false(d.p.has_duration);
	assert_int_equal(d.p.duration, 0);
	sdec_done(&d);
	/* a duration of 0 is still a duration (the client says it sleeps for 0 s) */
	sdec_run(&d, B(0x04, 0x18, 0x00, 0x00));
	assert_int_equal(d.rc, 0);
	assert_true(d.p.has_duration);
	assert_int_equal(d.p.duration, 0);
	sdec_done(&d);
	sdec_run(&d, B(0x04, 0x18, 0xFF, 0xFF));
	assert_int_equal(d.rc, 0);
	assert_true(d.p.has_duration);
	assert_int_equal(d.p.duration, 0xFFFF);
	sdec_done(&d);

	/* has_duration, not a non-zero duration, decides the encoding */
	struct vs_sn_packet p = {.type = VS_SN_DISCONNECT, .has_duration = true};
	uint8_t out[8];
	assert_int_equal(vs_sn_encode(&p, out, sizeof(out)), 4);
	assert_memory_equal(out, ((const uint8_t[]){0x04, 0x18, 0x00, 0x00}), 4);
	p.has_duration = false;
	p.duration = 77;
	assert_int_equal(vs_sn_encode(&p, out, sizeof(out)), 2);
	assert_memory_equal(out, ((const uint8_t[]){0x02, 0x18}), 2);
}

static void test_will_topic(void **state)
{
	/* flags with no topic is neither a will nor a deletion */
	expect_bad(B(0x03, 0x07, 0x20), "will flags without a topic");
	expect_bad(B(0x03, 0x07, 0x00), "will flags without a topic");
	expect_bad(B(0x03, 0x1A, 0x10), "will flags without a topic");

	/* the empty forms: no flags, no topic, empty_will set */
	static const uint8_t types[] = {VS_SN_WILLTOPIC, VS_SN_WILLTOPICUPD};
	struct sdec d;
	uint8_t b[2];
	size_t i;
	for (i = 0; i < N(types); i++) {
		b[0] = 2;
		b[1] = types[i];
		sdec_run(&d, b, 2);
		assert_int_equal(d.rc, 0);
		assert_true(d.p.empty_will);
		assert_int_equal(d.p.flags, 0);
		assert_int_equal(d.p.data.len, 0);
		sdec_done(&d);
	}
	/* a will with flags 0 (QoS 0, no retain) is not empty */
	sdec_run(&d, B(0x04, 0x07, 0x00, 't'));
	assert_int_equal(d.rc, 0);
	assert_false(d.p.empty_will);
	assert_int_equal(d.p.data.len, 1);
	assert_int_equal(d.p.data.p[0], 't');
	sdec_done(&d);
}

static void test_qos_helpers(void **state)
{
	static const int qos[] = {-1, 0, 1, 2};
	static const uint8_t bits[] = {0x60, 0x00, 0x20, 0x40};
	size_t i;

	for (i = 0; i < N(qos); i++) {
		assert_int_equal(vs_sn_qos_flags(qos[i]), bits[i]);
		assert_int_equal(vs_sn_qos(bits[i]), qos[i]);
		/* the other flags do not change the QoS */
		assert_int_equal(vs_sn_qos(bits[i] | (uint8_t)~VS_SN_QOS_MASK), qos[i]);
		assert_int_equal(vs_sn_qos_flags(qos[i]) & ~VS_SN_QOS_MASK, 0);
	}
	assert_int_equal(vs_sn_qos(0xFF), -1);
	assert_int_equal(vs_sn_qos(0x9F), 0);
}

static void test_encode_too_small(void **state)
{
	size_t i, cap;

	for (i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		for (cap = 0; cap < r->wire_len; cap++) {
			/* a buffer of exactly cap bytes before a guard page, which must stay as it
			 * is */
			uint8_t *poison = malloc(cap + 1);
			memset(poison, 0xA5, cap + 1);
			uint8_t *out = guard_copy(poison, cap);
			assert_int_equal(vs_sn_encode(&r->p, out, cap), VS_ETOOBIG);
			assert_memory_equal(out, poison, cap);
			guard_free(out, cap);
			free(poison);
		}
		uint8_t *out = guard_zero(r->wire_len);
		assert_int_equal(vs_sn_encode(&r->p, out, r->wire_len), r->wire_len);
		guard_free(out, r->wire_len);
	}
	/* a type the codec does not know has no size */
	struct vs_sn_packet p = {.type = 0x03};
	uint8_t out[8];
	assert_true(vs_sn_size(&p) < 0);
	assert_true(vs_sn_encode(&p, out, sizeof(out)) < 0);
	p.type = VS_SN_ENCAPSULATED;
	assert_true(vs_sn_size(&p) < 0);
}

static void test_type_names(void **state)
{
	static const struct {
		int type;
		const char *name;
	} names[] = {
	    {0x00, "ADVERTISE"},
	    {0x01, "SEARCHGW"},
	    {0x02, "GWINFO"},
	    {0x04, "CONNECT"},
	    {0x05, "CONNACK"},
	    {0x06, "WILLTOPICREQ"},
	    {0x07, "WILLTOPIC"},
	    {0x08, "WILLMSGREQ"},
	    {0x09, "WILLMSG"},
	    {0x0A, "REGISTER"},
	    {0x0B, "REGACK"},
	    {0x0C, "PUBLISH"},
	    {0x0D, "PUBACK"},
	    {0x0E, "PUBCOMP"},
	    {0x0F, "PUBREC"},
	    {0x10, "PUBREL"},
	    {0x12, "SUBSCRIBE"},
	    {0x13, "SUBACK"},
	    {0x14, "UNSUBSCRIBE"},
	    {0x15, "UNSUBACK"},
	    {0x16, "PINGREQ"},
	    {0x17, "PINGRESP"},
	    {0x18, "DISCONNECT"},
	    {0x1A, "WILLTOPICUPD"},
	    {0x1B, "WILLTOPICRESP"},
	    {0x1C, "WILLMSGUPD"},
	    {0x1D, "WILLMSGRESP"},
	    {0xFE, "ENCAPSULATED"},
	    {0x03, "?"},
	    {0x11, "?"},
	    {0x19, "?"},
	    {0x1E, "?"},
	    {0xFD, "?"},
	    {0xFF, "?"},
	    {-1, "?"},
	    {256, "?"},
	    {0x1FE, "?"},
	    {-2, "?"},
	};
	size_t i;

	for (i = 0; i < N(names); i++) {
		const char *got = vs_sn_type_name(names[i].type);
		assert_non_null(got);
		if (strcmp(got, names[i].name) != 0)
			fail_msg("type %d: '%s', expected '%s'", names[i].type, got, names[i].name);
	}
}

/* ---- the forwarder encapsulation (section 5.5) -------------------------------------------- */

static void test_unwrap(void **state)
{
	static const uint8_t dg[] = {0x05, 0xFE, 0x01, 0xAA, 0xBB, 0x04, 0x0E, 0x00, 0x07};
	struct vs_sn_encap e;
	struct sdec d;
	uint8_t *g;

	g = guard_copy(dg, sizeof(dg));
	assert_int_equal(vs_sn_unwrap(g, sizeof(dg), &e), 0);
	assert_int_equal(e.ctrl, 0x01);
	assert_ptr_equal(e.node.p, g + 3);
	assert_int_equal(e.node.len, 2);
	assert_ptr_equal(e.inner.p, g + 5);
	assert_int_equal(e.inner.len, 4);
	assert_int_equal(vs_sn_decode(e.inner.p, e.inner.len, &d.p, NULL), 0);
	assert_int_equal(d.p.type, VS_SN_PUBCOMP);
	assert_int_equal(d.p.msg_id, 7);
	guard_free(g, sizeof(dg));

	/* an empty Wireless Node Id */
	static const uint8_t empty[] = {0x03, 0xFE, 0x02, 0x02, 0x17};
	g = guard_copy(empty, sizeof(empty));
	assert_int_equal(vs_sn_unwrap(g, sizeof(empty), &e), 0);
	assert_int_equal(e.ctrl, 0x02);
	assert_int_equal(e.node.len, 0);
	assert_int_equal(e.inner.len, 2);
	assert_ptr_equal(e.inner.p, g + 3);
	guard_free(g, sizeof(empty));

	/* The inner message is not checked here: that is vs_sn_decode()'s job. */
	static const uint8_t junk[] = {0x04, 0xFE, 0x00, 0x11, 0x09};
	g = guard_copy(junk, sizeof(junk));
	assert_int_equal(vs_sn_unwrap(g, sizeof(junk), &e), 0);
	assert_int_equal(e.inner.len, 1);
	sdec_run(&d, e.inner.p, e.inner.len);
	assert_int_equal(d.rc, VS_EPROTO);
	sdec_done(&d);
	guard_free(g, sizeof(junk));
}

static void expect_unwrap_bad(const uint8_t *b, size_t len)
{
	struct vs_sn_encap e;
	uint8_t *g = guard_copy(b, len);

	if (vs_sn_unwrap(g, len, &e) != VS_EPROTO)
		fail_msg("%zu-byte encapsulation accepted", len);
	guard_free(g, len);
}

static void test_unwrap_malformed(void **state)
{
	expect_unwrap_bad(NULL, 0);
	expect_unwrap_bad(B(0x03));
	expect_unwrap_bad(B(0x03, 0xFE));
	/* a header and no message after it */
	expect_unwrap_bad(B(0x03, 0xFE, 0x00));
	expect_unwrap_bad(B(0x05, 0xFE, 0x00, 0xAA, 0xBB));
	/* a header longer than the datagram */
	expect_unwrap_bad(B(0x06, 0xFE, 0x00, 0xAA, 0xBB));
	expect_unwrap_bad(B(0xFF, 0xFE, 0x00, 0x02, 0x17));
	/* a length that does not cover Length, type and Ctrl */
	expect_unwrap_bad(B(0x00, 0xFE, 0x00, 0x02, 0x17));
	expect_unwrap_bad(B(0x01, 0xFE, 0x00, 0x02, 0x17));
	expect_unwrap_bad(B(0x02, 0xFE, 0x00, 0x02, 0x17));
	/* not an encapsulation at all: a plain message */
	expect_unwrap_bad(B(0x04, 0x0E, 0x00, 0x07));
	expect_unwrap_bad(B(0x03, 0xFD, 0x00, 0x02, 0x17));
	expect_unwrap_bad(B(0x01, 0x00, 0x07, 0xFE, 0x00, 0x02, 0x17));
}

static void test_wrap_header(void **state)
{
	uint8_t node[253], out[300];
	struct vs_sn_encap e;
	struct vs_buf nb;
	size_t i;

	for (i = 0; i < sizeof(node); i++)
		node[i] = (uint8_t)(i + 1);
	nb = (struct vs_buf){(const uint8_t[]){0xAA, 0xBB}, 2};
	assert_int_equal(vs_sn_wrap_header(0x01, &nb, out, sizeof(out)), 5);
	assert_memory_equal(out, ((const uint8_t[]){0x05, 0xFE, 0x01, 0xAA, 0xBB}), 5);
	assert_int_equal(vs_sn_wrap_header(0x01, &nb, out, 5), 5);
	assert_int_equal(vs_sn_wrap_header(0x01, &nb, out, 4), VS_ETOOBIG);
	nb = (struct vs_buf){NULL, 0};
	assert_int_equal(vs_sn_wrap_header(0x03, &nb, out, 3), 3);
	assert_memory_equal(out, ((const uint8_t[]){0x03, 0xFE, 0x03}), 3);
	assert_int_equal(vs_sn_wrap_header(0x03, &nb, out, 2), VS_ETOOBIG);
	/* the header's Length is one byte: at most 252 bytes of node id */
	nb = (struct vs_buf){node, 252};
	assert_int_equal(vs_sn_wrap_header(0, &nb, out, sizeof(out)), 255);
	assert_int_equal(out[0], 255);
	assert_memory_equal(out + 3, node, 252);
	nb.len = 253;
	assert_int_equal(vs_sn_wrap_header(0, &nb, out, sizeof(out)), VS_ETOOBIG);

	/* wrap, encode after it, unwrap, decode: the same node, ctrl and message */
	static const size_t lens[] = {0, 1, 8, 252};
	struct vs_sn_packet p = {.type = VS_SN_REGACK, .topic_id = 3, .msg_id = 4};
	for (i = 0; i < N(lens); i++) {
		nb = (struct vs_buf){node, lens[i]};
		ssize_t h = vs_sn_wrap_header(0x02, &nb, out, sizeof(out));
		assert_int_equal(h, 3 + lens[i]);
		ssize_t m = vs_sn_encode(&p, out + h, sizeof(out) - (size_t)h);
		assert_int_equal(m, 7);
		uint8_t *g = guard_copy(out, (size_t)(h + m));
		assert_int_equal(vs_sn_unwrap(g, (size_t)(h + m), &e), 0);
		assert_int_equal(e.ctrl, 0x02);
		assert_int_equal(e.node.len, lens[i]);
		if (lens[i])
			assert_memory_equal(e.node.p, node, lens[i]);
		assert_int_equal(e.inner.len, 7);
		struct vs_sn_packet q;
		assert_int_equal(vs_sn_decode(e.inner.p, e.inner.len, &q, NULL), 0);
		expect_pkt_eq(&q, &p);
		guard_free(g, (size_t)(h + m));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_every_type),
	    cmocka_unit_test(test_length_mismatch),
	    cmocka_unit_test(test_header_malformed),
	    cmocka_unit_test(test_unknown_types),
	    cmocka_unit_test(test_fixed_fields_cut_short),
	    cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_length_forms),
	    cmocka_unit_test(test_flags_malformed),
	    cmocka_unit_test(test_connect_protocol),
	    cmocka_unit_test(test_topic_parts_malformed),
	    cmocka_unit_test(test_disconnect_duration),
	    cmocka_unit_test(test_will_topic),
	    cmocka_unit_test(test_qos_helpers),
	    cmocka_unit_test(test_encode_too_small),
	    cmocka_unit_test(test_type_names),
	    cmocka_unit_test(test_unwrap),
	    cmocka_unit_test(test_unwrap_malformed),
	    cmocka_unit_test(test_wrap_header),
	};
	return cmocka_run_group_tests_name("codec_sn", tests, NULL, NULL);
}
