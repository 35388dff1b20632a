/*
 * Fuzzes the WebSocket decoder (net/ws.h), fed as the transport feeds it (ws.c's ws_read): each
 * read puts the header the decoder kept (vs_ws_carry) in front of the next bytes, in a buffer
 * of exactly that size (so ASan sees any read past it), and unframes it in place.
 *
 * The first input byte is the set-up: bit 0 server (frames must be masked) or client; bit 1
 * chooses what the rest is; bits 2-7 choose how the stream is cut into reads (whole, a byte at
 * a time, or sizes from a generator seeded with them).
 *
 * Raw (bit 1 clear): the rest is the byte stream. Each read returns at most the bytes it was
 * given, payload bytes in all never outnumber the bytes fed, the kept header is shorter than
 * the longest header, a control payload is at most 125 bytes, an error says why with a close
 * code the decoder may send, and a read after a Close gives nothing. The stream is decoded
 * again in one read: both must agree (error and close code, or payload and final state), as
 * the cut points must not matter.
 *
 * Built (bit 1 set): the rest is a script of frames, built with vs_ws_header and vs_ws_mask
 * from payloads the input chooses (fragmented messages, Pings and Pongs between fragments, a
 * frame with a 64-bit length, a final Close), and the decoder must give back exactly the data
 * payloads, the last Ping and the Close code, never an error.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "net/ws.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- cutting a stream into reads ---------------------------------------------------------- */

struct cutter {
	unsigned pattern; /* 0 whole, 1 a byte at a time, else generated sizes */
	uint32_t rng;
	size_t min; /* long streams are not read a byte at a time: runs stay fast */
};

static void cutter_init(struct cutter *c, unsigned pattern, size_t len)
{
	c->pattern = pattern;
	c->rng = 0x9e3779b9u ^ (pattern * 0x85ebca6bu);
	c->min = len / 1024 + 1;
}

static size_t next_read(struct cutter *c, size_t left)
{
	static const size_t limits[] = {2, 3, 5, 8, 15, 40, 300, 5000};
	size_t n;
	if (c->pattern == 0)
		n = left;
	else if (c->pattern == 1)
		n = 1;
	else {
		c->rng ^= c->rng << 13;
		c->rng ^= c->rng >> 17;
		c->rng ^= c->rng << 5;
		n = 1 + c->rng % limits[c->pattern % 8];
	}
	if (n < c->min)
		n = c->min;
	return n < left ? n : left;
}

/* ---- the decoder driven as ws_read drives it ---------------------------------------------- */

struct run {
	struct vs_ws_dec d;
	ssize_t rc;   /* VS_EPROTO once failed */
	uint8_t *out; /* payload bytes returned, in order */
	size_t out_len;
	size_t fed;   /* stream bytes fed (the carried header not counted twice) */
	uint8_t *buf; /* where reads are unframed: the stream and a kept header fit */
	size_t buf_cap;
};

/* One read: the kept header and s[0..n), placed at the very end of r->buf so that a byte read
 * past them is outside the heap block. */
static ssize_t read_once(struct run *r, const uint8_t *s, size_t n)
{
	uint8_t hdr[VS_WS_MAX_HEADER];
	size_t have = vs_ws_carry(&r->d, hdr);
	CHECK(have < VS_WS_MAX_HEADER);
	size_t len = have + n;
	CHECK(len <= r->buf_cap);
	uint8_t *buf = r->buf + r->buf_cap - len;
	memcpy(buf, hdr, have);
	if (n)
		memcpy(buf + have, s, n);
	bool was_closed = r->d.closed;
	ssize_t p = vs_ws_unframe(&r->d, buf, len);
	r->fed += n;
	CHECK(p == VS_EPROTO || (p >= 0 && (size_t)p <= len));
	if (p > 0) {
		memcpy(r->out + r->out_len, buf, (size_t)p);
		r->out_len += (size_t)p;
	}
	CHECK(r->out_len <= r->fed);
	CHECK(r->d.hdr_len < VS_WS_MAX_HEADER);
	CHECK(r->d.ctl_len <= 125 && r->d.ping_len <= 125);
	CHECK(!r->d.in_frame || r->d.left > 0);
	CHECK(!was_closed || p == 0); /* nothing after a Close */
	if (p < 0) {
		CHECK(r->d.fail_why && *r->d.fail_why);
		CHECK(r->d.fail_code == VS_WS_PROTOCOL_ERROR ||
		      r->d.fail_code == VS_WS_UNSUPPORTED_DATA ||
		      r->d.fail_code == VS_WS_INVALID_DATA);
	} else {
		CHECK(r->d.fail_code == 0);
	}
	r->rc = p;
	return p;
}

/* Feeds s[0..len) in reads cut by c; stops at an error, and after a Close reads once more. */
static void feed(struct run *r, bool server, const uint8_t *s, size_t len, struct cutter *c)
{
	memset(r, 0, sizeof(*r));
	vs_ws_dec_init(&r->d, server);
	r->out = malloc(len ? len : 1);
	r->buf_cap = len + VS_WS_MAX_HEADER;
	r->buf = malloc(r->buf_cap);
	CHECK(r->out && r->buf);
	size_t at = 0;
	do {
		size_t n = next_read(c, len - at);
		if (read_once(r, s + at, n) < 0)
			break;
		at += n;
		if (r->d.closed) {
			read_once(r, s + at, len - at);
			break;
		}
	} while (at < len);
	free(r->buf);
	r->buf = NULL;
}

/* Two runs over the same stream end alike. */
static void check_same(const struct run *a, const struct run *b)
{
	CHECK((a->rc < 0) == (b->rc < 0));
	CHECK(a->d.fail_code == b->d.fail_code && a->d.fail_why == b->d.fail_why);
	if (a->rc < 0)
		return;
	CHECK(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0);
	const struct vs_ws_dec *x = &a->d, *y = &b->d;
	CHECK(x->in_message == y->in_message && x->in_frame == y->in_frame);
	CHECK(x->hdr_len == y->hdr_len && memcmp(x->hdr, y->hdr, x->hdr_len) == 0);
	if (x->in_frame) {
		CHECK(x->opcode == y->opcode && x->fin == y->fin && x->left == y->left);
		CHECK(memcmp(x->mask, y->mask, 4) == 0 && x->mask_off == y->mask_off);
		CHECK(x->ctl_len == y->ctl_len && memcmp(x->ctl, y->ctl, x->ctl_len) == 0);
	}
	CHECK(x->pong_due == y->pong_due && x->ping_len == y->ping_len &&
	      memcmp(x->ping, y->ping, x->ping_len) == 0);
	CHECK(x->closed == y->closed && x->close_code == y->close_code);
}

static void fuzz_raw(bool server, unsigned pattern, const uint8_t *s, size_t len)
{
	struct run whole, cut;
	struct cutter c1, c2;
	cutter_init(&c1, 0, len);
	cutter_init(&c2, pattern, len);
	feed(&whole, server, s, len, &c1);
	feed(&cut, server, s, len, &c2);
	check_same(&whole, &cut);
	free(whole.out);
	free(cut.out);
}

/* ---- frames built from a script ----------------------------------------------------------- */

struct builder {
	bool server;
	uint8_t *b;
	size_t len, cap;
	uint8_t *want; /* the data payloads, in order */
	size_t want_len, want_cap;
	uint32_t rng; /* masking keys, and filler for payloads longer than the input */
	bool open;    /* a fragmented message is open */
	bool pinged;
	uint8_t ping[125];
	size_t ping_len;
	unsigned close_code; /* 0: no Close sent (1 means one with no code) */
	bool big_done;
	uint8_t *scratch; /* a payload being built (up to 65536 + 255 bytes) */
	size_t scratch_cap;
};

static void grow(uint8_t **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t c = need + need / 2 + 64;
	uint8_t *q = realloc(*p, c);
	CHECK(q);
	*p = q;
	*cap = c;
}

static uint32_t next_rand(struct builder *b)
{
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 17;
	b->rng ^= b->rng << 5;
	return b->rng;
}

/* Appends one frame, masked in place when it goes to a server (as a client sends it). */
static void put_frame(struct builder *b, enum vs_ws_opcode op, bool fin, const uint8_t *p, size_t n)
{
	uint8_t key[4];
	uint32_t r = next_rand(b);
	memcpy(key, &r, 4);
	grow(&b->b, &b->cap, b->len + VS_WS_MAX_HEADER + n);
	size_t h = vs_ws_header(b->b + b->len, op, fin, n, b->server ? key : NULL);
	CHECK(h >= 2 && h <= VS_WS_MAX_HEADER);
	CHECK(h == 2 + (n < 126 ? 0 : n <= 0xffff ? 2 : 8) + (b->server ? 4 : 0));
	uint8_t *dst = b->b + b->len + h;
	if (n)
		memcpy(dst, p, n);
	if (b->server) {
		/* Mask in place at a key offset the script chose, then finish from there: the
		 * same as masking from offset 0, and the same as masking byte by byte. */
		size_t k = n ? r % (n + 1) : 0;
		vs_ws_mask(dst, dst, k, key, 0);
		vs_ws_mask(dst + k, dst + k, n - k, key, (unsigned)k & 3);
		for (size_t i = 0; i < n && i < 64; i++)
			CHECK(dst[i] == (p[i] ^ key[i & 3]));
	}
	b->len += h + n;
}

static void want_data(struct builder *b, const uint8_t *p, size_t n)
{
	grow(&b->want, &b->want_cap, b->want_len + n);
	if (n)
		memcpy(b->want + b->want_len, p, n);
	b->want_len += n;
}

/* Reads the next byte of the script; 0 once it is spent. */
static uint8_t take(const uint8_t **s, const uint8_t *end)
{
	return *s < end ? *(*s)++ : 0;
}

/* Takes n payload bytes from the script into b->scratch after `at` bytes already there, filling
 * with generated bytes when the script runs out. Returns b->scratch. */
static uint8_t *take_payload(struct builder *b, const uint8_t **s, const uint8_t *end, size_t at,
			     size_t n)
{
	grow(&b->scratch, &b->scratch_cap, at + n + 1);
	uint8_t *p = b->scratch + at;
	size_t k = (size_t)(end - *s) < n ? (size_t)(end - *s) : n;
	if (k)
		memcpy(p, *s, k);
	*s += k;
	for (size_t i = k; i < n; i++)
		p[i] = (uint8_t)next_rand(b);
	return b->scratch;
}

static const unsigned close_codes[] = {1000, 1001, 1002, 1003, 1007, 1008,
				       1009, 1010, 1011, 1014, 3000, 4999};

/*
 * The script: an op byte c, then its operands.
 *   c & 7 = 0..3  a data frame: BINARY or CONT (as a message is open or not), FIN when c & 8;
 *                 length: the next byte; with c & 0x10 the next two (16-bit); with c & 0x20
 *                 (once) 65536 + the next byte (64-bit). Payload from the script.
 *   4             a Ping, 5 a Pong: length the next byte % 126, payload from the script.
 *   6             a Close: code from a table (c >> 4), reason the next byte % 40 printable
 *                 bytes; with c & 8 the Close has no body. The script ends there.
 *   7             an empty data frame.
 */
static void build(struct builder *b, const uint8_t *s, const uint8_t *end)
{
	while (s < end) {
		uint8_t c = take(&s, end), *p;
		size_t n;
		switch (c & 7) {
		case 4:
		case 5:
			n = take(&s, end) % 126u;
			p = take_payload(b, &s, end, 0, n);
			put_frame(b, (c & 7) == 4 ? VS_WS_PING : VS_WS_PONG, true, p, n);
			if ((c & 7) == 4) {
				b->pinged = true;
				memcpy(b->ping, p, n);
				b->ping_len = n;
			}
			break;
		case 6:
			if (c & 8) {
				put_frame(b, VS_WS_CLOSE, true, NULL, 0);
				b->close_code = 1;
				return;
			}
			b->close_code =
			    close_codes[(c >> 4) % (sizeof(close_codes) / sizeof(unsigned))];
			n = take(&s, end) % 40u;
			p = take_payload(b, &s, end, 2, n);
			p[0] = (uint8_t)(b->close_code >> 8);
			p[1] = (uint8_t)b->close_code;
			for (size_t i = 0; i < n; i++)
				p[2 + i] = (uint8_t)(0x20 + p[2 + i] % 0x5f);
			put_frame(b, VS_WS_CLOSE, true, p, n + 2);
			return;
		default:
			if ((c & 7) == 7)
				n = 0;
			else if ((c & 0x20) && !b->big_done) {
				n = 65536 + take(&s, end);
				b->big_done = true;
			} else if (c & 0x10) {
				n = (size_t)take(&s, end) << 8;
				n |= take(&s, end);
			} else {
				n = take(&s, end);
			}
			p = take_payload(b, &s, end, 0, n);
			bool fin = c & 8;
			put_frame(b, b->open ? VS_WS_CONT : VS_WS_BINARY, fin, p, n);
			want_data(b, p, n);
			b->open = !fin;
			break;
		}
	}
}

static void fuzz_built(bool server, unsigned pattern, const uint8_t *s, size_t len)
{
	struct builder b;
	memset(&b, 0, sizeof(b));
	b.server = server;
	b.rng = 0x2545f491u ^ (uint32_t)len;
	grow(&b.b, &b.cap, 1); /* empty ones are still somewhere (for memcmp) */
	grow(&b.want, &b.want_cap, 1);
	build(&b, s, s + len);
	free(b.scratch);

	struct run r;
	struct cutter c;
	cutter_init(&c, pattern, b.len);
	feed(&r, server, b.b, b.len, &c);
	CHECK(r.rc >= 0);
	CHECK(r.out_len == b.want_len && memcmp(r.out, b.want, b.want_len) == 0);
	CHECK(r.d.in_message == b.open);
	CHECK(!r.d.in_frame && r.d.hdr_len == 0);
	CHECK(r.d.pong_due == b.pinged && r.d.ping_len == b.ping_len &&
	      memcmp(r.d.ping, b.ping, b.ping_len) == 0);
	CHECK(r.d.closed == (b.close_code != 0));
	CHECK(r.d.close_code == (b.close_code == 1 ? 0 : b.close_code));
	free(r.out);
	free(b.b);
	free(b.want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool server = data[0] & 1;
	unsigned pattern = data[0] >> 2;
	if (data[0] & 2)
		fuzz_built(server, pattern, data + 1, size - 1);
	else
		fuzz_raw(server, pattern, data + 1, size - 1);
	return 0;
}
