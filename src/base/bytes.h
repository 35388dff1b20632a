/*
 * A growable byte buffer with a read offset: connections read into it and consume from the
 * front; output is appended at the back and written from the front. Compaction moves unread
 * bytes to the start only when the buffer must grow, so a steady stream costs no memmove.
 */
#ifndef VS_BASE_BYTES_H
#define VS_BASE_BYTES_H

#include <stddef.h>
#include <stdint.h>

struct vs_bytes {
	uint8_t *data;
	size_t off; /* first unread byte */
	size_t len; /* end of valid bytes (data[off..len) are unread) */
	size_t cap;
};

static inline size_t vs_bytes_avail(const struct vs_bytes *b)
{
	return b->len - b->off;
}

static inline uint8_t *vs_bytes_head(const struct vs_bytes *b)
{
	return b->data + b->off;
}

/* Ensures room for `extra` more bytes at the tail. Returns 0 or -ENOMEM. */
int vs_bytes_reserve(struct vs_bytes *b, size_t extra);
/* Appends n bytes. Returns 0 or -ENOMEM. */
int vs_bytes_append(struct vs_bytes *b, const void *p, size_t n);
/* Drops n bytes from the front; resets to empty when everything was consumed. */
void vs_bytes_consume(struct vs_bytes *b, size_t n);
/* Frees the storage when it grew beyond `keep` bytes and holds nothing unread. */
void vs_bytes_shrink(struct vs_bytes *b, size_t keep);
void vs_bytes_fini(struct vs_bytes *b);

/* Decodes hex digits (no 0x; an odd count reads as if it began with '0', as Mosquitto reads a
 * PSK). Returns the number of bytes, or VS_ECONF for an empty string, a character that is not
 * a hex digit, or more than cap bytes. */
int vs_hex_decode(const char *hex, uint8_t *out, size_t cap);

#endif
