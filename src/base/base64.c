/*
 * Strict base64 (see base64.h). Written here rather than through OpenSSL's EVP_DecodeBlock,
 * which accepts surrounding whitespace and non-zero trailing bits and reports the length
 * rounded up to a multiple of three.
 */
#include "base/base64.h"

#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t vs_b64_len(size_t n, enum vs_b64_pad pad)
{
	if (pad == VS_B64_PAD)
		return VS_B64_LEN(n);
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t vs_b64_encode(const uint8_t *in, size_t n, char *out, enum vs_b64_pad pad)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		if (i + 1 < n || pad == VS_B64_PAD)
			out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
		if (i + 2 < n || pad == VS_B64_PAD)
			out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int value(char c)
{
	const char *p = c ? strchr(alphabet, c) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

/* The number of characters of s[0..len) that carry data, or -1 if the padding is wrong. */
static ssize_t data_chars(const char *s, size_t len, enum vs_b64_pad pad)
{
	if (pad == VS_B64_NOPAD)
		return len % 4 == 1 ? -1 : (ssize_t)len;
	if (len % 4)
		return -1;
	size_t n = len;
	while (n > 0 && len - n < 2 && s[n - 1] == '=')
		n--;
	return (ssize_t)n;
}

ssize_t vs_b64_decode(const char *s, size_t len, uint8_t *out, size_t cap, enum vs_b64_pad pad)
{
	ssize_t chars = data_chars(s, len, pad);
	if (chars < 0 || chars % 4 == 1)
		return -1;
	size_t n = (size_t)chars, want = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (want > cap)
		return -1;
	uint32_t acc = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int d = value(s[i]);
		if (d < 0)
			return -1;
		acc = acc << 6 | (uint32_t)d;
		if (i % 4 == 3) {
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	/* A partial group: 2 characters hold 1 byte (4 spare bits), 3 hold 2 (2 spare bits), and
	 * the canonical form has those bits zero. */
	if (n % 4 == 2) {
		if (acc & 0xF)
			return -1;
		out[o++] = (uint8_t)(acc >> 4);
	} else if (n % 4 == 3) {
		if (acc & 0x3)
			return -1;
		out[o++] = (uint8_t)(acc >> 10);
		out[o++] = (uint8_t)(acc >> 2);
	}
	return (ssize_t)o;
}
