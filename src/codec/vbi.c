/*
 * Variable byte integers [MQTT-1.5.5] and the fixed header.
 *
 * A variable byte integer carries 7 bits per byte, least significant group first, with the top
 * bit saying "more follows"; at most four bytes, so at most 268,435,455 [MQTT-1.5.5-1]. The
 * fixed header is one byte of type and flags followed by the remaining length in this form.
 *
 * Encoders here always use the shortest form. Decoders accept non-minimal forms (0x80 0x00 for
 * zero): the spec asks senders for the minimum number of bytes but names no receiver check, and
 * every broker we know accepts them.
 */
#include "codec/codec.h"

#include "base/error.h"

int vs_vbi_size(uint32_t v)
{
	if (v < 128u)
		return 1;
	if (v < 16384u)
		return 2;
	if (v < 2097152u)
		return 3;
	return 4;
}

int vs_vbi_encode(uint32_t v, uint8_t *out)
{
	int n = 0;

	if (v > VS_MAX_REMAINING)
		return VS_EPROTO;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		if (v)
			b |= 0x80;
		out[n++] = b;
	} while (v);
	return n;
}

int vs_vbi_decode(const uint8_t *buf, size_t len, uint32_t *v)
{
	uint32_t val = 0;
	size_t i;

	for (i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		val |= (uint32_t)(buf[i] & 0x7f) << (7 * i);
		if (!(buf[i] & 0x80)) {
			*v = val;
			return (int)i + 1;
		}
	}
	/* [MQTT-1.5.5-1] a fifth byte is never valid. */
	return VS_EPROTO;
}

int vs_codec_frame(const uint8_t *buf, size_t len, uint32_t *remaining, enum vs_reason *why)
{
	int n;

	if (len < 2)
		return 0;
	/* Fast path: remaining length < 128, the common case for acks and small publishes. */
	if (!(buf[1] & 0x80)) {
		*remaining = buf[1];
		return 2;
	}
	n = vs_vbi_decode(buf + 1, len - 1, remaining);
	if (n < 0) {
		*why = VS_RC_MALFORMED;
		return VS_EPROTO;
	}
	return n ? n + 1 : 0;
}
