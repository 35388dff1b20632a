/*
 * UTF-8 validation as MQTT requires it [MQTT-1.5.4].
 *
 * A string is rejected for: bytes that are not well-formed UTF-8 (RFC 3629), overlong forms
 * (e.g. C0 80 for U+0000) [MQTT-1.5.4-1], UTF-16 surrogates U+D800..U+DFFF encoded as UTF-8
 * (ED A0..BF ..) [MQTT-1.5.4-1], code points above U+10FFFF, and U+0000 [MQTT-1.5.4-2].
 * Control characters and non-characters are only "SHOULD NOT" in the spec and are accepted.
 *
 * This runs on every topic of every PUBLISH, so ASCII - nearly all topics - takes a fast path
 * of eight bytes per step: a word passes when no byte has its top bit set and no byte is zero.
 */
#include "codec/codec.h"

#include <string.h>

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* True when the eight bytes at s are all in 0x01..0x7F. */
static inline bool word_ascii_nonzero(const uint8_t *s)
{
	uint64_t w;

	memcpy(&w, s, 8);
	/* (w - ONES) & ~w & HIGHS is non-zero iff some byte of w is zero. */
	return !((w | ((w - ONES) & ~w)) & HIGHS);
}

/* Validates one multi-byte sequence starting at s[0] >= 0x80; returns its length or 0. */
static size_t multibyte(const uint8_t *s, size_t left)
{
	uint8_t c = s[0];

	if (c >= 0xC2 && c <= 0xDF) {
		if (left < 2 || (s[1] & 0xC0) != 0x80)
			return 0;
		return 2;
	}
	if (c >= 0xE0 && c <= 0xEF) {
		if (left < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && s[1] < 0xA0) /* overlong */
			return 0;
		if (c == 0xED && s[1] >= 0xA0) /* surrogate */
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (left < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && s[1] < 0x90) /* overlong */
			return 0;
		if (c == 0xF4 && s[1] >= 0x90) /* above U+10FFFF */
			return 0;
		return 4;
	}
	/* 0x80..0xC1 (continuation or overlong lead) and 0xF5..0xFF */
	return 0;
}

bool vs_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (len - i >= 8 && word_ascii_nonzero(s + i)) {
			i += 8;
			continue;
		}
		if (s[i] < 0x80) {
			if (s[i] == 0) /* [MQTT-1.5.4-2] */
				return false;
			i++;
			continue;
		}
		size_t n = multibyte(s + i, len - i);
		if (!n)
			return false;
		i += n;
	}
	return true;
}
