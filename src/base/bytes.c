#include "base/bytes.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int vs_bytes_reserve(struct vs_bytes *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	size_t unread = b->len - b->off;
	if (b->off > 0 && b->cap - unread >= extra && b->off >= unread) {
		/* Compact instead of growing: cheap when little is unread. */
		memmove(b->data, b->data + b->off, unread);
		b->off = 0;
		b->len = unread;
		return 0;
	}
	/* A size whose sum or doubling would wrap is refused, not looped on or under-allocated. */
	if (extra > SIZE_MAX - unread)
		return -ENOMEM;
	size_t need = unread + extra;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *d = malloc(cap);
	if (!d)
		return -ENOMEM;
	if (unread)
		memcpy(d, b->data + b->off, unread);
	free(b->data);
	b->data = d;
	b->cap = cap;
	b->off = 0;
	b->len = unread;
	return 0;
}

int vs_bytes_append(struct vs_bytes *b, const void *p, size_t n)
{
	if (n == 0)
		return 0; /* data may still be NULL: memcpy must not see it */
	int rc = vs_bytes_reserve(b, n);
	if (rc < 0)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void vs_bytes_consume(struct vs_bytes *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void vs_bytes_shrink(struct vs_bytes *b, size_t keep)
{
	if (b->cap > keep && b->off == b->len) {
		free(b->data);
		b->data = NULL;
		b->cap = b->len = b->off = 0;
	}
}

void vs_bytes_fini(struct vs_bytes *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->len = b->off = 0;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int vs_hex_decode(const char *hex, uint8_t *out, size_t cap)
{
	size_t len = strlen(hex);
	size_t n = (len + 1) / 2;
	if (len == 0 || n > cap)
		return VS_ECONF;
	/* With an odd count, the first byte takes one digit: "abc" is 0a bc. */
	size_t i = 0, k = 0;
	if (len % 2) {
		int lo = hex_digit(hex[i++]);
		if (lo < 0)
			return VS_ECONF;
		out[k++] = (uint8_t)lo;
	}
	for (; i < len; i += 2) {
		int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
		if (hi < 0 || lo < 0)
			return VS_ECONF;
		out[k++] = (uint8_t)(hi << 4 | lo);
	}
	return (int)n;
}
