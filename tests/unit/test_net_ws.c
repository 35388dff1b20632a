/*
 * Unit tests of the WebSocket framing (net/ws.h, RFC 6455): the accept key, frame headers, the
 * masking function, and the in-place decoder.
 *
 * The decoder is driven as the transport drives it (ws_read): each read puts the header the
 * decoder kept (vs_ws_carry) in front of the new bytes, and the buffer is unframed in place.
 * Here every such buffer is a guard-page copy (guard.h), so a read past its end faults. Valid
 * streams are decoded whole, then cut at every byte boundary, then fed a byte at a time and in
 * chunks of 2..16 bytes: the payload and the decoder's final state must not depend on where the
 * reads ended. Every error is checked the same ways, with the close code it must send.
 *
 * Last, the server transport's file serving over a socketpair, for its redirects to directories.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "guard.h"
#include "net/transport.h"
#include "net/ws.h"

/* The masking key of RFC 6455 5.7's examples. */
static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};

#define FIN 0x80

/* ---------------------------------------------------------------- building frames by hand */

/* A byte stream of frames, built without vs_ws_header (which has tests of its own). */
struct stream {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct stream *s, const void *p, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->b = realloc(s->b, s->cap);
		assert_non_null(s->b);
	}
	if (n)
		memcpy(s->b + s->len, p, n);
	s->len += n;
}

static void put_byte(struct stream *s, uint8_t v)
{
	put(s, &v, 1);
}

/* Appends a frame: b0 (FIN, RSV and opcode), the shortest length, the key and the masked
 * payload when masked. */
static void add(struct stream *s, uint8_t b0, bool masked, const void *payload, size_t n)
{
	uint8_t m = masked ? 0x80 : 0;
	put_byte(s, b0);
	if (n < 126) {
		put_byte(s, (uint8_t)(m | n));
	} else if (n <= 0xffff) {
		put_byte(s, m | 126);
		put_byte(s, (uint8_t)(n >> 8));
		put_byte(s, (uint8_t)n);
	} else {
		put_byte(s, m | 127);
		for (int i = 7; i >= 0; i--)
			put_byte(s, (uint8_t)((uint64_t)n >> (8 * i)));
	}
	if (masked)
		put(s, key, 4);
	const uint8_t *p = payload;
	for (size_t i = 0; i < n; i++)
		put_byte(s, masked ? p[i] ^ key[i % 4] : p[i]);
}

/* A Close frame's body: code (0: none) and reason. */
static void add_close(struct stream *s, bool masked, unsigned code, const char *reason,
		      size_t reason_len)
{
	uint8_t body[125] = {0};
	size_t n = 0;
	if (code) {
		body[0] = (uint8_t)(code >> 8);
		body[1] = (uint8_t)code;
		n = 2;
	}
	memcpy(body + n, reason, reason_len);
	add(s, FIN | VS_WS_CLOSE, masked, body, n + reason_len);
}

/* ---------------------------------------------------------------- feeding the decoder */

/* What a run of reads gave. */
struct run {
	ssize_t rc;   /* the last call's result: VS_EPROTO ends a run */
	uint8_t *out; /* the payload bytes returned, in order */
	size_t out_len;
	size_t calls;
};

static void run_init(struct run *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->out = malloc(cap ? cap : 1);
	assert_non_null(r->out);
}

static void run_fini(struct run *r)
{
	free(r->out);
}

/* One read, as ws_read does it: the kept header, then s[0..n), unframed in a guard-page copy.
 * Returns what vs_ws_unframe returned. */
static ssize_t read_once(struct vs_ws_dec *d, const uint8_t *s, size_t n, struct run *r)
{
	uint8_t *tmp = malloc(VS_WS_MAX_HEADER + n);
	assert_non_null(tmp);
	size_t have = vs_ws_carry(d, tmp);
	assert_true(have < VS_WS_MAX_HEADER);
	if (n)
		memcpy(tmp + have, s, n);
	size_t len = have + n;
	uint8_t *g = guard_copy(tmp, len);
	ssize_t rc = vs_ws_unframe(d, g, len);
	assert_true(rc <= (ssize_t)len);
	if (rc > 0) {
		memcpy(r->out + r->out_len, g, (size_t)rc);
		r->out_len += (size_t)rc;
	}
	guard_free(g, len);
	free(tmp);
	assert_true(d->hdr_len < VS_WS_MAX_HEADER);
	assert_true(d->ctl_len <= 125);
	r->calls++;
	r->rc = rc;
	return rc;
}

/* Feeds s[0..len) in reads that end at the increasing positions cuts[0..n) and at len; stops at
 * the first error. */
static void feed_cuts(struct vs_ws_dec *d, const uint8_t *s, size_t len, const size_t *cuts,
		      size_t n, struct run *r)
{
	size_t at = 0;
	for (size_t i = 0; i <= n; i++) {
		size_t end = i < n ? cuts[i] : len;
		if (read_once(d, s + at, end - at, r) < 0)
			return;
		at = end;
	}
}

/* Feeds s[0..len) in reads of `chunk` bytes (the last one shorter). */
static void feed_chunks(struct vs_ws_dec *d, const uint8_t *s, size_t len, size_t chunk,
			struct run *r)
{
	size_t at = 0;
	do {
		size_t n = len - at < chunk ? len - at : chunk;
		if (read_once(d, s + at, n, r) < 0)
			return;
		at += n;
	} while (at < len);
}

static void assert_same_state(const struct vs_ws_dec *a, const struct vs_ws_dec *b)
{
	assert_int_equal(a->server, b->server);
	assert_int_equal(a->in_message, b->in_message);
	assert_int_equal(a->in_frame, b->in_frame);
	assert_int_equal(a->hdr_len, b->hdr_len);
	assert_memory_equal(a->hdr, b->hdr, a->hdr_len);
	if (a->in_frame) {
		assert_int_equal(a->opcode, b->opcode);
		assert_int_equal(a->fin, b->fin);
		assert_memory_equal(a->mask, b->mask, 4);
		assert_int_equal(a->mask_off, b->mask_off);
		assert_int_equal(a->left, b->left);
		assert_int_equal(a->ctl_len, b->ctl_len);
		assert_memory_equal(a->ctl, b->ctl, a->ctl_len);
	}
	assert_int_equal(a->pong_due, b->pong_due);
	assert_int_equal(a->ping_len, b->ping_len);
	assert_memory_equal(a->ping, b->ping, a->ping_len);
	assert_int_equal(a->closed, b->closed);
	assert_int_equal(a->close_code, b->close_code);
	assert_int_equal(a->fail_code, b->fail_code);
}

/* Decodes a valid stream whole, cut once at every byte boundary, a byte at a time and in
 * chunks of 2..16 bytes: each time the payload is want[0..want_len) and the final state that of
 * the whole decode, which is returned in *end. */
static void check_stream(bool server, const uint8_t *s, size_t len, const void *want,
			 size_t want_len, struct vs_ws_dec *end)
{
	struct run r;
	vs_ws_dec_init(end, server);
	run_init(&r, len);
	read_once(end, s, len, &r);
	assert_true(r.rc >= 0);
	assert_int_equal(r.out_len, want_len);
	assert_memory_equal(r.out, want, want_len);
	run_fini(&r);

	for (size_t k = 0; k <= len; k++) {
		struct vs_ws_dec d;
		vs_ws_dec_init(&d, server);
		run_init(&r, len);
		feed_cuts(&d, s, len, &k, 1, &r);
		if (r.rc < 0 || r.out_len != want_len || memcmp(r.out, want, want_len) != 0)
			fail_msg("cut at %zu of %zu: rc %zd, %zu payload bytes", k, len, r.rc,
				 r.out_len);
		assert_same_state(&d, end);
		run_fini(&r);
	}
	for (size_t chunk = 1; chunk <= 16; chunk++) {
		struct vs_ws_dec d;
		vs_ws_dec_init(&d, server);
		run_init(&r, len);
		feed_chunks(&d, s, len, chunk, &r);
		if (r.rc < 0 || r.out_len != want_len || memcmp(r.out, want, want_len) != 0)
			fail_msg("chunks of %zu: rc %zd, %zu payload bytes", chunk, r.rc,
				 r.out_len);
		assert_same_state(&d, end);
		run_fini(&r);
	}
}

/* An invalid stream fails with fail_code (and says why) however it is cut: once at every byte
 * boundary, and a byte at a time. */
static void check_error(const char *why, bool server, const uint8_t *s, size_t len, uint16_t code)
{
	for (size_t k = 0; k <= len; k++) {
		struct vs_ws_dec d;
		struct run r;
		vs_ws_dec_init(&d, server);
		run_init(&r, len);
		if (k == len)
			feed_chunks(&d, s, len, 1, &r);
		else
			feed_cuts(&d, s, len, &k, 1, &r);
		if (r.rc != VS_EPROTO || d.fail_code != code || !d.fail_why || !*d.fail_why)
			fail_msg("%s (cut at %zu): rc %zd, close code %u, want %u", why, k, r.rc,
				 d.fail_code, code);
		run_fini(&r);
	}
}

/* ---------------------------------------------------------------- accept key */

static void accept_key_rfc_example(void **state)
{
	/* RFC 6455 1.3 and 4.2.2. */
	static const char k[] = "dGhlIHNhbXBsZSBub25jZQ==";
	char out[29];
	memset(out, 'Z', sizeof(out));
	assert_int_equal(vs_ws_accept_key(k, sizeof(k) - 1, out), 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void accept_key_others(void **state)
{
	char out[29];
	/* The key is taken as bytes, not NUL-terminated: only len of them count. */
	static const char k[] = "x3JJHMbDL1EzLkh9GBhXDw==trailing";
	assert_int_equal(vs_ws_accept_key(k, 24, out), 0);
	assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	assert_int_equal(vs_ws_accept_key("", 0, out), 0);
	assert_string_equal(out, "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=");
}

/* ---------------------------------------------------------------- headers */

static void header_lengths(void **state)
{
	static const struct {
		uint64_t len;
		size_t n;
		uint8_t b[10];
	} cases[] = {
	    {0, 2, {0x82, 0x00}},
	    {1, 2, {0x82, 0x01}},
	    {125, 2, {0x82, 0x7d}},
	    {126, 4, {0x82, 0x7e, 0x00, 0x7e}},
	    {256, 4, {0x82, 0x7e, 0x01, 0x00}},
	    {65535, 4, {0x82, 0x7e, 0xff, 0xff}},
	    {65536, 10, {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}},
	    {0x0123456789abcdefull,
	     10,
	     {0x82, 0x7f, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[VS_WS_MAX_HEADER + 1];
		memset(out, 0xee, sizeof(out));
		size_t n = vs_ws_header(out, VS_WS_BINARY, true, cases[i].len, NULL);
		assert_int_equal(n, cases[i].n);
		assert_memory_equal(out, cases[i].b, n);
		assert_int_equal(out[n], 0xee); /* nothing written past the header */

		/* Masked: the mask bit, and the key after the length. */
		memset(out, 0xee, sizeof(out));
		n = vs_ws_header(out, VS_WS_BINARY, true, cases[i].len, key);
		assert_int_equal(n, cases[i].n + 4);
		assert_int_equal(out[0], cases[i].b[0]);
		assert_int_equal(out[1], cases[i].b[1] | 0x80);
		assert_memory_equal(out + 2, cases[i].b + 2, cases[i].n - 2);
		assert_memory_equal(out + cases[i].n, key, 4);
		assert_int_equal(out[n], 0xee);
	}
}

static void header_opcode_and_fin(void **state)
{
	uint8_t out[VS_WS_MAX_HEADER];
	vs_ws_header(out, VS_WS_BINARY, false, 3, NULL);
	assert_int_equal(out[0], 0x02);
	vs_ws_header(out, VS_WS_CONT, false, 3, NULL);
	assert_int_equal(out[0], 0x00);
	vs_ws_header(out, VS_WS_CONT, true, 3, NULL);
	assert_int_equal(out[0], 0x80);
	vs_ws_header(out, VS_WS_PING, true, 0, key);
	assert_int_equal(out[0], 0x89);
	assert_int_equal(out[1], 0x80);
	vs_ws_header(out, VS_WS_PONG, true, 125, NULL);
	assert_int_equal(out[0], 0x8a);
	assert_int_equal(out[1], 125);
	vs_ws_header(out, VS_WS_CLOSE, true, 2, NULL);
	assert_int_equal(out[0], 0x88);
}

static void header_decodes(void **state)
{
	/* What vs_ws_header writes, the decoder reads back: each length form, both directions. */
	static const uint64_t lens[] = {0, 125, 126, 65535, 65536, (1ull << 63) - 1};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (int server = 0; server <= 1; server++) {
			uint8_t h[VS_WS_MAX_HEADER];
			size_t n =
			    vs_ws_header(h, VS_WS_BINARY, true, lens[i], server ? key : NULL);
			struct vs_ws_dec d;
			vs_ws_dec_init(&d, server);
			assert_int_equal(vs_ws_unframe(&d, h, n), 0);
			assert_int_equal(d.hdr_len, 0);
			assert_int_equal(d.in_frame, lens[i] != 0);
			assert_int_equal(d.left, lens[i]);
			assert_memory_equal(d.mask, server ? key : (const uint8_t[4]){0}, 4);
			/* One byte short: kept for the next read. */
			vs_ws_dec_init(&d, server);
			assert_int_equal(vs_ws_unframe(&d, h, n - 1), 0);
			assert_int_equal(d.hdr_len, n - 1);
			assert_false(d.in_frame);
		}
	}
}

/* ---------------------------------------------------------------- masking */

static void mask_reference(uint8_t *dst, const uint8_t *src, size_t n, unsigned off)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] ^ key[(off + i) % 4];
}

static void mask_in_place_and_below(void **state)
{
	/* For every key offset, every length up to 40 (the 8-byte steps and the tail), and dst at
	 * src (in place) or 1..9 bytes below it (as the decoder moves payloads to the front). */
	uint8_t orig[64], buf[64], want[64], ref[64];
	for (size_t i = 0; i < sizeof(orig); i++)
		orig[i] = (uint8_t)(i * 37 + 11);
	for (unsigned off = 0; off < 4; off++) {
		for (size_t n = 0; n <= 40; n++) {
			for (size_t below = 0; below <= 9; below++) {
				size_t src = 12, dst = src - below;
				memcpy(buf, orig, sizeof(buf));
				memcpy(want, orig, sizeof(want));
				mask_reference(ref, orig + src, n, off);
				memcpy(want + dst, ref, n);
				vs_ws_mask(buf + dst, buf + src, n, key, off);
				if (memcmp(buf, want, sizeof(buf)) != 0)
					fail_msg("off %u, n %zu, dst %zu below src", off, n, below);
			}
			/* Separate buffers. */
			uint8_t out[64];
			memset(out, 0, sizeof(out));
			vs_ws_mask(out, orig, n, key, off);
			mask_reference(ref, orig, n, off);
			assert_memory_equal(out, ref, n);
			assert_int_equal(out[n], 0);
		}
	}
}

static void mask_offset_continues(void **state)
{
	/* Masking in two pieces with the offset carried is masking in one. */
	uint8_t src[40], one[40], two[40];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(200 - i);
	vs_ws_mask(one, src, sizeof(src), key, 1);
	for (size_t k = 0; k <= sizeof(src); k++) {
		vs_ws_mask(two, src, k, key, 1);
		vs_ws_mask(two + k, src + k, sizeof(src) - k, key, (unsigned)(1 + k) & 3);
		assert_memory_equal(one, two, sizeof(src));
	}
}

/* ---------------------------------------------------------------- decoding: data */

static void unframe_masked_from_client(void **state)
{
	/* RFC 6455 5.7's masked "Hello", as a binary frame. */
	static const uint8_t f[] = {0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d,
				    0x7f, 0x9f, 0x4d, 0x51, 0x58};
	struct vs_ws_dec end;
	check_stream(true, f, sizeof(f), "Hello", 5, &end);
	assert_false(end.in_frame);
	assert_false(end.in_message);
	assert_false(end.closed);
	assert_int_equal(end.fail_code, 0);
}

static void unframe_unmasked_from_server(void **state)
{
	static const uint8_t f[] = {0x82, 0x05, 'H', 'e', 'l', 'l', 'o'};
	struct vs_ws_dec end;
	check_stream(false, f, sizeof(f), "Hello", 5, &end);
	assert_false(end.in_frame);
}

static void unframe_empty_frames(void **state)
{
	struct stream s = {0};
	add(&s, FIN | VS_WS_BINARY, true, NULL, 0);
	add(&s, FIN | VS_WS_BINARY, true, "x", 1);
	add(&s, FIN | VS_WS_BINARY, true, NULL, 0);
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, "x", 1, &end);
	assert_false(end.in_frame);
	free(s.b);
}

static void unframe_length_forms(void **state)
{
	/* 125 (7-bit), 126 and 256 (RFC 6455 5.7's 16-bit example), 65535, and 65536 (its 64-bit
	 * example), each masked from a client and unmasked from a server. */
	static const size_t lens[] = {125, 126, 256, 65535, 65536};
	uint8_t *p = malloc(65536);
	assert_non_null(p);
	for (size_t i = 0; i < 65536; i++)
		p[i] = (uint8_t)(i ^ (i >> 8));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (int server = 0; server <= 1; server++) {
			struct stream s = {0};
			add(&s, FIN | VS_WS_BINARY, server, p, lens[i]);
			struct vs_ws_dec d;
			struct run r;
			vs_ws_dec_init(&d, server);
			run_init(&r, s.len);
			read_once(&d, s.b, s.len, &r);
			assert_int_equal(r.rc, lens[i]);
			assert_memory_equal(r.out, p, lens[i]);
			assert_false(d.in_frame);
			run_fini(&r);
			/* Cut inside the header and the first bytes of the payload: every header
			 * length is carried, every mask offset continued. */
			for (size_t k = 0; k < 20; k++) {
				vs_ws_dec_init(&d, server);
				run_init(&r, s.len);
				size_t cuts[] = {k, k + 3};
				feed_cuts(&d, s.b, s.len, cuts, 2, &r);
				assert_int_equal(r.out_len, lens[i]);
				assert_memory_equal(r.out, p, lens[i]);
				run_fini(&r);
			}
			free(s.b);
		}
	}
	free(p);
}

static void unframe_many_frames(void **state)
{
	struct stream s = {0};
	add(&s, FIN | VS_WS_BINARY, true, "ab", 2);
	add(&s, FIN | VS_WS_BINARY, true, "cde", 3);
	add(&s, FIN | VS_WS_BINARY, true, "", 0);
	add(&s, FIN | VS_WS_PONG, true, "ignored", 7);
	add(&s, FIN | VS_WS_BINARY, true, "fghij", 5);
	uint8_t big[300];
	memset(big, 'z', sizeof(big));
	add(&s, FIN | VS_WS_BINARY, true, big, sizeof(big));
	add(&s, FIN | VS_WS_BINARY, true, "!", 1);
	char want[11 + 300];
	memcpy(want, "abcdefghij", 10);
	memset(want + 10, 'z', 300);
	want[310] = '!';
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, want, sizeof(want), &end);
	assert_false(end.pong_due); /* a Pong asks for nothing */
	assert_false(end.closed);
	free(s.b);
}

static void unframe_ends_inside_header(void **state)
{
	/* A stream that stops inside a header keeps it, as much as arrived. */
	struct stream s = {0};
	add(&s, FIN | VS_WS_BINARY, true, "abc", 3);
	put_byte(&s, FIN | VS_WS_BINARY);
	put_byte(&s, 0x80 | 126);
	put_byte(&s, 0x01);
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, "abc", 3, &end);
	assert_int_equal(end.hdr_len, 3);
	assert_false(end.in_frame);
	free(s.b);
}

static void unframe_fragmented(void **state)
{
	/* RFC 6455 5.4: BINARY fin=0, CONT fin=0, CONT fin=1. */
	struct stream s = {0};
	add(&s, VS_WS_BINARY, true, "ab", 2);
	add(&s, VS_WS_CONT, true, "cd", 2);
	add(&s, VS_WS_CONT, true, "", 0);
	add(&s, FIN | VS_WS_CONT, true, "ef", 2);
	add(&s, FIN | VS_WS_BINARY, true, "g", 1); /* then a new message */
	add(&s, VS_WS_BINARY, true, "h", 1);	   /* and one left open */
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, "abcdefgh", 8, &end);
	assert_true(end.in_message);

	struct vs_ws_dec d;
	struct run r;
	vs_ws_dec_init(&d, true);
	run_init(&r, s.len);
	size_t first = 2 + 4 + 2; /* the first frame */
	read_once(&d, s.b, first, &r);
	assert_true(d.in_message);
	read_once(&d, s.b + first, s.len - first, &r);
	assert_true(d.in_message);
	run_fini(&r);
	free(s.b);
}

static void unframe_control_inside_fragmented(void **state)
{
	/* RFC 6455 5.4: control frames may come between the fragments of a message. */
	struct stream s = {0};
	add(&s, VS_WS_BINARY, false, "ab", 2);
	add(&s, FIN | VS_WS_PING, false, "p1", 2);
	add(&s, VS_WS_CONT, false, "cd", 2);
	add(&s, FIN | VS_WS_PONG, false, "q", 1);
	add(&s, FIN | VS_WS_PING, false, "p2", 2);
	add(&s, FIN | VS_WS_CONT, false, "ef", 2);
	struct vs_ws_dec end;
	check_stream(false, s.b, s.len, "abcdef", 6, &end);
	assert_false(end.in_message);
	assert_true(end.pong_due);
	assert_int_equal(end.ping_len, 2);
	assert_memory_equal(end.ping, "p2", 2); /* the last Ping is the one answered */
	free(s.b);
}

/* ---------------------------------------------------------------- decoding: control frames */

static void unframe_ping(void **state)
{
	uint8_t p[125];
	for (size_t i = 0; i < sizeof(p); i++)
		p[i] = (uint8_t)(i + 1);
	struct stream s = {0};
	add(&s, FIN | VS_WS_BINARY, true, "a", 1);
	add(&s, FIN | VS_WS_PING, true, p, sizeof(p)); /* the longest, masked */
	add(&s, FIN | VS_WS_BINARY, true, "b", 1);
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, "ab", 2, &end);
	assert_true(end.pong_due);
	assert_int_equal(end.ping_len, sizeof(p));
	assert_memory_equal(end.ping, p, sizeof(p)); /* unmasked */
	free(s.b);

	/* An empty Ping asks for an empty Pong. */
	s = (struct stream){0};
	add(&s, FIN | VS_WS_PING, false, NULL, 0);
	check_stream(false, s.b, s.len, "", 0, &end);
	assert_true(end.pong_due);
	assert_int_equal(end.ping_len, 0);
	free(s.b);
}

static void unframe_ping_after_caller_cleared(void **state)
{
	/* The caller clears pong_due once answered; the next Ping sets it again. */
	struct stream s = {0};
	add(&s, FIN | VS_WS_PING, true, "1", 1);
	size_t first = s.len;
	add(&s, FIN | VS_WS_PING, true, "22", 2);
	struct vs_ws_dec d;
	struct run r;
	vs_ws_dec_init(&d, true);
	run_init(&r, s.len);
	assert_int_equal(read_once(&d, s.b, first, &r), 0);
	assert_true(d.pong_due);
	assert_int_equal(d.ping_len, 1);
	d.pong_due = false;
	assert_int_equal(read_once(&d, s.b + first, s.len - first, &r), 0);
	assert_true(d.pong_due);
	assert_int_equal(d.ping_len, 2);
	assert_memory_equal(d.ping, "22", 2);
	run_fini(&r);
	free(s.b);
}

static void unframe_close_with_reason(void **state)
{
	struct stream s = {0};
	add(&s, FIN | VS_WS_BINARY, true, "data", 4);
	add_close(&s, true, 1001, "going \xc3\xa4way", 11);
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, "data", 4, &end);
	assert_true(end.closed);
	assert_int_equal(end.close_code, 1001);
	assert_int_equal(end.fail_code, 0);
	free(s.b);
}

static void unframe_close_without_code(void **state)
{
	struct stream s = {0};
	add_close(&s, false, 0, "", 0);
	struct vs_ws_dec end;
	check_stream(false, s.b, s.len, "", 0, &end);
	assert_true(end.closed);
	assert_int_equal(end.close_code, 0);
	free(s.b);
}

static void unframe_close_valid_codes(void **state)
{
	/* RFC 6455 7.4.1 and the IANA registry: 1000-1003, 1007-1014; 3000-4999 for libraries
	 * and applications. */
	static const unsigned codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
					 1010, 1011, 1012, 1013, 1014, 3000, 4999};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct stream s = {0};
		add_close(&s, true, codes[i], "", 0);
		struct vs_ws_dec end;
		check_stream(true, s.b, s.len, "", 0, &end);
		assert_true(end.closed);
		assert_int_equal(end.close_code, codes[i]);
		free(s.b);
	}
}

static void unframe_close_reason_with_nul(void **state)
{
	/* U+0000 is valid UTF-8 (RFC 3629), so a valid close reason, though MQTT's strings may
	 * not hold it. */
	struct stream s = {0};
	add_close(&s, true, 1000, "a\0b", 3);
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, "", 0, &end);
	assert_true(end.closed);
	assert_int_equal(end.close_code, 1000);
	free(s.b);
}

static void unframe_nothing_after_close(void **state)
{
	/* Bytes after a Close are not looked at, even ones that would be an error; the payload
	 * before it in the same read is returned; later reads give nothing. */
	struct stream s = {0};
	add(&s, FIN | VS_WS_BINARY, true, "xy", 2);
	add_close(&s, true, 1000, "", 0);
	size_t at_close = s.len;
	put(&s, "\xf1\xff garbage", 10);
	struct vs_ws_dec end;
	check_stream(true, s.b, s.len, "xy", 2, &end);
	assert_true(end.closed);

	struct run r;
	run_init(&r, s.len);
	assert_int_equal(read_once(&end, s.b + at_close, s.len - at_close, &r), 0);
	assert_int_equal(read_once(&end, s.b, s.len, &r), 0);
	run_fini(&r);
	free(s.b);
}

/* ---------------------------------------------------------------- decoding: errors */

struct bad_frame {
	const char *why;
	bool server;
	uint8_t b[16];
	size_t len;
	uint16_t code;
};

#define PE VS_WS_PROTOCOL_ERROR
#define MK 0x80, 1, 2, 3, 4 /* the mask bit of a 0-length masked frame, and a key */

static const struct bad_frame bad_frames[] = {
    /* RFC 6455 5.2: no extension is agreed, so every RSV bit is an error. */
    {"RSV1", true, {0xc2, MK}, 6, PE},
    {"RSV2", true, {0xa2, MK}, 6, PE},
    {"RSV3", true, {0x92, MK}, 6, PE},
    {"RSV bits on a control frame", false, {0xf9, 0x00}, 2, PE},
    /* Reserved opcodes. */
    {"opcode 3", true, {0x83, MK}, 6, PE},
    {"opcode 7", true, {0x87, MK}, 6, PE},
    {"opcode 0xB", true, {0x8b, MK}, 6, PE},
    {"opcode 0xF", false, {0x8f, 0x00}, 2, PE},
    /* [MQTT-6.0.0-1] MQTT is sent in binary frames: a text frame is unsupported data. */
    {"text frame", true, {0x81, MK}, 6, VS_WS_UNSUPPORTED_DATA},
    {"text frame, not final", false, {0x01, 0x01, 'a'}, 3, VS_WS_UNSUPPORTED_DATA},
    /* RFC 6455 5.4: fragments. */
    {"CONT without a message", true, {0x80, MK}, 6, PE},
    {"CONT not final, without a message", false, {0x00, 0x00}, 2, PE},
    {"CONT after a message ended", false, {0x82, 0x01, 'a', 0x80, 0x01, 'b'}, 6, PE},
    {"BINARY inside a fragmented message", false, {0x02, 0x01, 'a', 0x82, 0x01, 'b'}, 6, PE},
    /* RFC 6455 5.5: control frames are not fragmented and carry at most 125 bytes. */
    {"fragmented Ping", true, {0x09, MK}, 6, PE},
    {"fragmented Close", false, {0x08, 0x00}, 2, PE},
    {"fragmented Pong", false, {0x0a, 0x00}, 2, PE},
    {"Ping of 126 bytes", false, {0x89, 0x7e, 0x00, 0x7e}, 4, PE},
    {"Ping with a 64-bit length", false, {0x89, 0x7f, 0, 0, 0, 0, 0, 0, 0, 1}, 10, PE},
    {"Close of 126 bytes", true, {0x88, 0xfe, 0x00, 0x7e, 1, 2, 3, 4}, 8, PE},
    /* RFC 6455 5.1 and 5.3: a client masks, a server does not. */
    {"unmasked frame from a client", true, {0x82, 0x01, 'a'}, 3, PE},
    {"unmasked Ping from a client", true, {0x89, 0x00}, 2, PE},
    {"masked frame from a server", false, {0x82, MK}, 6, PE},
    /* RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length". */
    {"16-bit length of 0", false, {0x82, 0x7e, 0x00, 0x00}, 4, PE},
    {"16-bit length of 125", true, {0x82, 0xfe, 0x00, 0x7d, 1, 2, 3, 4}, 8, PE},
    {"64-bit length of 0", false, {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0}, 10, PE},
    {"64-bit length of 125", false, {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x7d}, 10, PE},
    {"64-bit length of 65535",
     true,
     {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4},
     14,
     PE},
    /* "the most significant bit MUST be 0". */
    {"64-bit length with its top bit", false, {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, PE},
    {"64-bit length of all ones",
     true,
     {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4},
     14,
     PE},
    /* RFC 6455 5.5.1: a Close body is empty or starts with a 2-byte code. */
    {"Close with a 1-byte body", false, {0x88, 0x01, 0x03}, 3, PE},
    {"Close with a masked 1-byte body", true, {0x88, 0x81, 1, 2, 3, 4, 0x03 ^ 1}, 7, PE},
    /* RFC 6455 8.1: a reason that is not UTF-8 fails the connection with 1007. */
    {"Close reason 0xFF", false, {0x88, 0x03, 0x03, 0xe8, 0xff}, 5, VS_WS_INVALID_DATA},
    {"Close reason overlong", false, {0x88, 0x04, 0x03, 0xe8, 0xc0, 0x80}, 6, VS_WS_INVALID_DATA},
    {"Close reason surrogate",
     false,
     {0x88, 0x05, 0x03, 0xe8, 0xed, 0xa0, 0x80},
     7,
     VS_WS_INVALID_DATA},
    {"Close reason cut mid-character",
     false,
     {0x88, 0x04, 0x03, 0xe8, 0xe2, 0x82},
     6,
     VS_WS_INVALID_DATA},
    {"Close reason above U+10FFFF",
     false,
     {0x88, 0x06, 0x03, 0xe8, 0xf4, 0x90, 0x80, 0x80},
     8,
     VS_WS_INVALID_DATA},
    {"Close reason lone continuation",
     false,
     {0x88, 0x03, 0x03, 0xe8, 0x80},
     5,
     VS_WS_INVALID_DATA},
};

static void unframe_errors(void **state)
{
	for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); i++) {
		const struct bad_frame *c = &bad_frames[i];
		check_error(c->why, c->server, c->b, c->len, c->code);
	}
}

static void unframe_error_after_data(void **state)
{
	/* An error in a later frame fails the read even with payload before it; the error is
	 * found however the stream is cut. */
	struct stream s = {0};
	add(&s, FIN | VS_WS_BINARY, true, "good", 4);
	add(&s, FIN | VS_WS_PING, true, "p", 1);
	add(&s, FIN | 0x40 | VS_WS_BINARY, true, "bad", 3);
	check_error("RSV1 after data", true, s.b, s.len, PE);
	free(s.b);
}

static void unframe_error_found_early(void **state)
{
	/* An error visible in the first two bytes is reported before the rest of the header. */
	static const uint8_t f[] = {0xc2, 0x80};
	struct vs_ws_dec d;
	vs_ws_dec_init(&d, true);
	uint8_t *g = guard_copy(f, sizeof(f));
	assert_int_equal(vs_ws_unframe(&d, g, sizeof(f)), VS_EPROTO);
	assert_int_equal(d.fail_code, PE);
	guard_free(g, sizeof(f));
}

static void unframe_close_invalid_codes(void **state)
{
	/* RFC 6455 7.4.1-7.4.2: 0-999 are unused, 1004 reserved, 1005 and 1006 never sent, 1015
	 * only for TLS failures, 1016-2999 for the protocol's future use, 5000 and above
	 * undefined. */
	static const unsigned codes[] = {0,    1,    999,  1004, 1005, 1006, 1015,
					 1016, 1100, 2000, 2999, 5000, 65535};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct stream s = {0};
		uint8_t body[2] = {(uint8_t)(codes[i] >> 8), (uint8_t)codes[i]};
		add(&s, FIN | VS_WS_CLOSE, true, body, 2);
		char why[40];
		snprintf(why, sizeof(why), "close code %u", codes[i]);
		check_error(why, true, s.b, s.len, PE);
		free(s.b);
	}
}

/* ---------------------------------------------------------------- the server transport */

/* A server transport serving dir, over one end of a socketpair; the client's end in *peer. */
static void serve(struct vs_transport *t, const struct vs_ws_server_conf *conf, int *peer)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	struct vs_transport inner;
	vs_transport_accept_tcp(&inner, sv[0]);
	assert_int_equal(vs_transport_ws_accept(t, &inner, conf), 0);
	*peer = sv[1];
}

/* Sends a request from the peer, runs the server until it waits for the next one, and returns
 * what it answered (NUL-terminated). */
static size_t exchange(struct vs_transport *t, int peer, const char *req, char *out, size_t cap)
{
	assert_int_equal(write(peer, req, strlen(req)), strlen(req));
	assert_int_equal(t->ops->finish(t), -EAGAIN);
	ssize_t n = read(peer, out, cap - 1);
	assert_true(n > 0);
	out[n] = '\0';
	return (size_t)n;
}

static void assert_has(const char *resp, const char *want)
{
	if (!strstr(resp, want))
		fail_msg("no '%s' in:\n%s", want, resp);
}

static void serve_directory_redirects(void **state)
{
	char tmpl[] = "/tmp/vs_ws_test_XXXXXX", dir[PATH_MAX], p[PATH_MAX + 2048];
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, dir));
	/* A directory whose name holds what percent-encoding stood for ("a?b%"), and one nested
	 * deep enough that its Location does not fit in the response's first 1024 bytes. */
	snprintf(p, sizeof(p), "%s/a?b%%", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	char seg[241];
	memset(seg, 'd', 240);
	seg[240] = '\0';
	char deep[1000] = "";
	for (int i = 0; i < 4; i++) {
		strcat(deep, "/");
		strcat(deep, seg);
		snprintf(p, sizeof(p), "%s%s", dir, deep);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	snprintf(p, sizeof(p), "%s/index.html", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("hi", f);
	fclose(f);

	struct vs_ws_server_conf conf = {.http_dir = dir, .headers_max = 4096};
	struct vs_transport t;
	int peer;
	char resp[4096], req[2048];
	serve(&t, &conf, &peer);

	exchange(&t, peer, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", resp, sizeof(resp));
	assert_has(resp, "HTTP/1.1 200 OK\r\n");
	assert_has(resp, "Content-Type: text/html; charset=utf-8\r\n");
	assert_has(resp, "Content-Length: 2\r\n");
	assert_has(resp, "\r\n\r\nhi");

	/* The Location is the target's path as sent, not the decoded one ("/a?b%/" would name
	 * "/a" with a query), and without the query. */
	exchange(&t, peer, "GET /a%3Fb%25?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", resp, sizeof(resp));
	assert_has(resp, "HTTP/1.1 301 Moved Permanently\r\n");
	assert_has(resp, "\r\nLocation: /a%3Fb%25/\r\n");

	/* A long Location is whole, and so is the head after it. */
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", deep);
	size_t n = exchange(&t, peer, req, resp, sizeof(resp));
	char want[1100];
	snprintf(want, sizeof(want), "\r\nLocation: %s/\r\n", deep);
	assert_has(resp, want);
	assert_true(n > 4 && memcmp(resp + n - 4, "\r\n\r\n", 4) == 0);
	assert_has(resp, "Content-Length: 0\r\n");

	t.ops->close(&t);
	close(peer);
	snprintf(p, sizeof(p), "%s/index.html", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/a?b%%", dir);
	rmdir(p);
	for (int i = 4; i > 0; i--) {
		snprintf(p, sizeof(p), "%s%.*s", dir, (int)(i * 241), deep);
		rmdir(p);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(accept_key_rfc_example),
	    cmocka_unit_test(accept_key_others),
	    cmocka_unit_test(header_lengths),
	    cmocka_unit_test(header_opcode_and_fin),
	    cmocka_unit_test(header_decodes),
	    cmocka_unit_test(mask_in_place_and_below),
	    cmocka_unit_test(mask_offset_continues),
	    cmocka_unit_test(unframe_masked_from_client),
	    cmocka_unit_test(unframe_unmasked_from_server),
	    cmocka_unit_test(unframe_empty_frames),
	    cmocka_unit_test(unframe_length_forms),
	    cmocka_unit_test(unframe_many_frames),
	    cmocka_unit_test(unframe_ends_inside_header),
	    cmocka_unit_test(unframe_fragmented),
	    cmocka_unit_test(unframe_control_inside_fragmented),
	    cmocka_unit_test(unframe_ping),
	    cmocka_unit_test(unframe_ping_after_caller_cleared),
	    cmocka_unit_test(unframe_close_with_reason),
	    cmocka_unit_test(unframe_close_without_code),
	    cmocka_unit_test(unframe_close_valid_codes),
	    cmocka_unit_test(unframe_close_reason_with_nul),
	    cmocka_unit_test(unframe_nothing_after_close),
	    cmocka_unit_test(unframe_errors),
	    cmocka_unit_test(unframe_error_after_data),
	    cmocka_unit_test(unframe_error_found_early),
	    cmocka_unit_test(unframe_close_invalid_codes),
	    cmocka_unit_test(serve_directory_redirects),
	};
	return cmocka_run_group_tests_name("net_ws", tests, NULL, NULL);
}
