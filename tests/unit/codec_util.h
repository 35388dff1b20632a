/*
 * Shared helpers for the codec unit tests (test_codec*.c): decoding through guard pages,
 * checking every truncation, and the encode -> decode -> re-encode -> decode round trip.
 * Must be included after <cmocka.h> and its prerequisites.
 */
#ifndef VS_TESTS_CODEC_UTIL_H
#define VS_TESTS_CODEC_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "codec/codec.h"
#include "guard.h"
#include "../fuzz/codec_cmp.h"

/* One decode whose input lives before a guard page until dec_done(). */
struct dec {
	uint8_t *mem;
	size_t len;
	ssize_t n;
	enum vs_reason why;
	struct vs_packet pkt;
};

static inline void dec_run(struct dec *d, const uint8_t *b, size_t len, int version, uint32_t max)
{
	struct vs_decode_opts o = {.version = (uint8_t)version, .max_packet_size = max};

	d->mem = guard_copy(b, len);
	d->len = len;
	d->why = VS_RC_SUCCESS;
	d->n = vs_codec_decode(d->mem, len, &o, &d->pkt, &d->why);
}

static inline void dec_done(struct dec *d)
{
	guard_free(d->mem, d->len);
	d->mem = NULL;
}

/* Every proper prefix of a whole packet decodes to 0 ("need more"), through the guard page. */
static inline void check_prefixes(const uint8_t *b, size_t len, int version)
{
	struct dec d;
	size_t i;

	for (i = 0; i < len; i++) {
		dec_run(&d, b, i, version, 0);
		if (d.n != 0)
			fail_msg("prefix %zu of %zu: got %zd why 0x%02x", i, len, d.n, d.why);
		dec_done(&d);
	}
}

/* The whole packet fails with reason `why`. */
static inline void expect_fail(const uint8_t *b, size_t len, int version, enum vs_reason why)
{
	struct dec d;

	dec_run(&d, b, len, version, 0);
	if (d.n != VS_EPROTO || d.why != why)
		fail_msg("expected failure 0x%02x, got n=%zd why=0x%02x", why, d.n, d.why);
	dec_done(&d);
}

#define EXPECT_FAIL(version, why, ...)                                                             \
	do {                                                                                       \
		const uint8_t b_[] = {__VA_ARGS__};                                                \
		expect_fail(b_, sizeof(b_), version, why);                                         \
	} while (0)

/* The whole packet decodes and is consumed exactly; the packet is left in d (dec_done it). */
static inline void expect_ok(struct dec *d, const uint8_t *b, size_t len, int version)
{
	dec_run(d, b, len, version, 0);
	if (d->n != (ssize_t)len)
		fail_msg("expected %zu bytes consumed, got n=%zd why=0x%02x", len, d->n, d->why);
}

#define EXPECT_OK(d, version, ...)                                                                 \
	do {                                                                                       \
		const uint8_t b_[] = {__VA_ARGS__};                                                \
		expect_ok(d, b_, sizeof(b_), version);                                             \
	} while (0)

/*
 * Round trip: encodes p, checks vs_codec_size() matches, decodes (every prefix needs more; a
 * max_packet_size one short fails with 0x95 from the fixed header alone), re-encodes the
 * decoded packet and checks the bytes are identical and decode to an equal packet.
 * The first decode is left in d for field checks; call dec_done(d) after.
 */
static inline void roundtrip(const struct vs_packet *p, int version, struct dec *d)
{
	ssize_t sz = vs_codec_size(p, version), n, n2;
	uint8_t *buf, *buf2;
	struct vs_props *pp, *wp;
	struct codec_prep s1 = {0}, s2 = {0};
	struct vs_packet copy;
	struct dec d2, dmax;

	assert_true(sz > 0);
	buf = malloc((size_t)sz);
	assert_non_null(buf);
	assert_int_equal(vs_codec_encode(p, version, buf, (size_t)sz - 1), VS_ETOOBIG);
	n = vs_codec_encode(p, version, buf, (size_t)sz);
	assert_int_equal(n, sz);
	check_prefixes(buf, (size_t)n, version);
	if (n > 2) {
		dec_run(&dmax, buf, (size_t)n, version, (uint32_t)n - 1);
		assert_int_equal(dmax.n, VS_EPROTO);
		assert_int_equal(dmax.why, VS_RC_PACKET_TOO_LARGE);
		dec_done(&dmax);
	}
	dec_run(d, buf, (size_t)n, p->type == VS_CONNECT ? 0 : version, (uint32_t)n);
	if (d->n != n)
		fail_msg("decode of encoded packet: n=%zd why=0x%02x", d->n, d->why);
	assert_int_equal(d->pkt.type, p->type);

	copy = d->pkt;
	pp = codec_packet_props(&copy, &wp);
	if (pp)
		codec_prep_props(pp, &s1);
	if (wp)
		codec_prep_props(wp, &s2);
	buf2 = malloc((size_t)sz);
	assert_non_null(buf2);
	n2 = vs_codec_encode(&copy, version, buf2, (size_t)sz);
	assert_int_equal(n2, n);
	assert_memory_equal(buf, buf2, (size_t)n); /* re-encoding a decoded packet is exact */
	free(buf);
	dec_run(&d2, buf2, (size_t)n2, p->type == VS_CONNECT ? 0 : version, 0);
	assert_int_equal(d2.n, n2);
	assert_true(codec_packet_eq(&d->pkt, &d2.pkt, version));
	dec_done(&d2);
	free(buf2);
	if (pp)
		codec_prep_free(&s1);
	if (wp)
		codec_prep_free(&s2);
}

#define BUF(s) ((struct vs_buf){(const uint8_t *)(s), sizeof(s) - 1})

static inline void assert_buf(struct vs_buf b, const char *s)
{
	size_t n = strlen(s);
	if (b.len != n || memcmp(b.p, s, n) != 0)
		fail_msg("buf '%.*s' != '%s'", (int)b.len, (const char *)b.p, s);
}

#endif
