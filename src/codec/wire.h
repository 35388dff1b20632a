/*
 * Internal to src/codec/: the byte-level reader and writer shared by decode.c, props.c and
 * encode.c. Nothing outside the codec includes this file.
 *
 * The reader is a pair of pointers (cur, end) into one packet whose whole body is in memory
 * (vs_codec_decode() only parses after the fixed header said how long the packet is and the
 * bytes have arrived). Every read checks the bytes it needs against `end` first, so a lying
 * length field can never make the parser step outside the packet. Readers return a reason code:
 * VS_RC_SUCCESS (0) or the code the decode must fail with.
 *
 * The writer has no checks: the encoder has computed the exact size before it writes.
 */
#ifndef VS_CODEC_WIRE_H
#define VS_CODEC_WIRE_H

#include <stdint.h>
#include <string.h>

#include "codec/codec.h"

struct rd {
	const uint8_t *cur;
	const uint8_t *end;
};

static inline size_t rd_left(const struct rd *r)
{
	return (size_t)(r->end - r->cur);
}

static inline enum vs_reason rd_u8(struct rd *r, uint8_t *v)
{
	if (r->cur >= r->end)
		return VS_RC_MALFORMED;
	*v = *r->cur++;
	return VS_RC_SUCCESS;
}

static inline enum vs_reason rd_u16(struct rd *r, uint16_t *v)
{
	if (rd_left(r) < 2)
		return VS_RC_MALFORMED;
	*v = (uint16_t)(r->cur[0] << 8 | r->cur[1]);
	r->cur += 2;
	return VS_RC_SUCCESS;
}

static inline enum vs_reason rd_u32(struct rd *r, uint32_t *v)
{
	if (rd_left(r) < 4)
		return VS_RC_MALFORMED;
	*v = (uint32_t)r->cur[0] << 24 | (uint32_t)r->cur[1] << 16 | (uint32_t)r->cur[2] << 8 |
	     r->cur[3];
	r->cur += 4;
	return VS_RC_SUCCESS;
}

/* A variable byte integer inside a packet: running out of bytes is malformed, not "need more". */
static inline enum vs_reason rd_vbi(struct rd *r, uint32_t *v)
{
	int n = vs_vbi_decode(r->cur, rd_left(r), v);
	if (n <= 0)
		return VS_RC_MALFORMED;
	r->cur += n;
	return VS_RC_SUCCESS;
}

/* Binary Data: a two-byte length and that many bytes [MQTT-1.5.6]. */
static inline enum vs_reason rd_bin(struct rd *r, struct vs_buf *b)
{
	uint16_t n;
	if (rd_u16(r, &n) != VS_RC_SUCCESS || rd_left(r) < n)
		return VS_RC_MALFORMED;
	b->p = r->cur;
	b->len = n;
	r->cur += n;
	return VS_RC_SUCCESS;
}

/* UTF-8 Encoded String: as binary, and well-formed [MQTT-1.5.4-1], [MQTT-1.5.4-2]. */
static inline enum vs_reason rd_str(struct rd *r, struct vs_buf *b)
{
	if (rd_bin(r, b) != VS_RC_SUCCESS || !vs_utf8_valid(b->p, b->len))
		return VS_RC_MALFORMED;
	return VS_RC_SUCCESS;
}

static inline uint8_t *wr_u16(uint8_t *o, uint16_t v)
{
	o[0] = (uint8_t)(v >> 8);
	o[1] = (uint8_t)v;
	return o + 2;
}

static inline uint8_t *wr_u32(uint8_t *o, uint32_t v)
{
	o[0] = (uint8_t)(v >> 24);
	o[1] = (uint8_t)(v >> 16);
	o[2] = (uint8_t)(v >> 8);
	o[3] = (uint8_t)v;
	return o + 4;
}

static inline uint8_t *wr_bytes(uint8_t *o, const void *p, size_t n)
{
	if (n)
		memcpy(o, p, n);
	return o + n;
}

/* A length-prefixed string or binary field (the size was checked by the sizing pass). */
static inline uint8_t *wr_bin(uint8_t *o, struct vs_buf b)
{
	return wr_bytes(wr_u16(o, (uint16_t)b.len), b.p, b.len);
}

static inline uint8_t *wr_vbi(uint8_t *o, uint32_t v)
{
	return o + vs_vbi_encode(v, o);
}

/* Topic syntax alone, for strings already known to be valid UTF-8 (see topic.c). */
bool vs_topic_name_syntax(const uint8_t *s, size_t len);
bool vs_topic_filter_syntax(const uint8_t *s, size_t len);

/*
 * Properties (props.c). vs_props_decode() reads a property length and the block after it for
 * packet type `type` (or VS_WILL_PROPS), fills *p and returns VS_RC_SUCCESS or the reason code.
 * vs_props_size() returns the size of the encoded block, property length included, or -1 if p
 * cannot be encoded for `type`. vs_props_write() writes what vs_props_size() measured.
 */
enum vs_reason vs_props_decode(struct rd *r, int type, struct vs_props *p);
void vs_props_clear(struct vs_props *p);
ssize_t vs_props_size(const struct vs_props *p, int type, size_t *inner);
uint8_t *vs_props_write(uint8_t *o, const struct vs_props *p, size_t inner);

#endif
