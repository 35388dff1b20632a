/* Retained-message keys and shared-group queue names (see kvkey.h). */
#include "cluster/kvkey.h"

#include <stdbool.h>
#include <string.h>

#include "base/error.h"

static const char hex[] = "0123456789ABCDEF";

static bool plain(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* FNV-1a, 64 bits, from seed. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

static void put_hex64(char *out, uint64_t v)
{
	for (int i = 0; i < 16; i++)
		out[i] = hex[(v >> (60 - 4 * i)) & 15];
}

/* Writes the escaped key into out; returns its length, or -1 past VS_KVKEY_MAX. */
static ssize_t escape(const uint8_t *t, size_t len, char *out)
{
	size_t o = 0;
	bool level_empty = true;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || t[i] == '/') {
			if (level_empty) {
				if (o + 1 > VS_KVKEY_MAX)
					return -1;
				out[o++] = '=';
			}
			if (i == len)
				break;
			if (o + 1 > VS_KVKEY_MAX)
				return -1;
			out[o++] = '.';
			level_empty = true;
			continue;
		}
		level_empty = false;
		if (plain(t[i])) {
			if (o + 1 > VS_KVKEY_MAX)
				return -1;
			out[o++] = (char)t[i];
		} else {
			if (o + 3 > VS_KVKEY_MAX)
				return -1;
			out[o++] = '=';
			out[o++] = hex[t[i] >> 4];
			out[o++] = hex[t[i] & 15];
		}
	}
	return (ssize_t)o;
}

ssize_t vs_kvkey_encode(const uint8_t *topic, size_t len, char *out, size_t cap)
{
	if (cap < VS_KVKEY_MAX + 1)
		return VS_ETOOBIG;
	ssize_t n = escape(topic, len, out);
	if (n < 0) {
		out[0] = '=';
		out[1] = 'H';
		put_hex64(out + 2, fnv(0xcbf29ce484222325ull, topic, len));
		put_hex64(out + 18, fnv(0x84222325cbf29ce4ull, topic, len));
		n = VS_KVKEY_HASHED;
	}
	out[n] = '\0';
	return n;
}

ssize_t vs_kvkey_decode(const char *key, size_t len, uint8_t *out, size_t cap)
{
	size_t o = 0;
	bool level_start = true;
	if (len > VS_KVKEY_MAX)
		return VS_EPROTO; /* such a topic is written hashed */
	for (size_t i = 0; i < len;) {
		char c = key[i];
		uint8_t b;
		if (c == '.') {
			if (level_start)
				return VS_EPROTO; /* an empty level is written "=" */
			b = '/';
			i++;
			level_start = true;
		} else if (c == '=') {
			if (i + 1 == len || key[i + 1] == '.') {
				if (!level_start)
					return VS_EPROTO; /* "a=" */
				i++;			  /* an empty level: nothing to write */
				level_start = false;
				continue;
			}
			if (i + 2 >= len)
				return VS_EPROTO;
			int h = unhex(key[i + 1]), l = unhex(key[i + 2]);
			if (h < 0 || l < 0)
				return VS_EPROTO;
			b = (uint8_t)(h << 4 | l);
			/* Only what the encoder escapes: "=6E" for 'n' would be a second key for
			 * one topic, and the bucket would hold two values for it. */
			if (plain(b) || b == '/')
				return VS_EPROTO;
			i += 3;
			level_start = false;
		} else if (plain((uint8_t)c)) {
			b = (uint8_t)c;
			i++;
			level_start = false;
		} else {
			return VS_EPROTO;
		}
		if (o + 1 > cap)
			return VS_ETOOBIG;
		out[o++] = b;
	}
	if (len == 0 || level_start)
		return VS_EPROTO; /* empty, or ends with '.' */
	return (ssize_t)o;
}

void vs_share_queue(const char *group, size_t glen, const char *filter, size_t flen, char *out)
{
	uint64_t h = fnv(0xcbf29ce484222325ull, group, glen);
	h = fnv(h, "\0", 1);
	h = fnv(h, filter, flen);
	memcpy(out, "vsq", 3);
	put_hex64(out + 3, h);
	out[19] = '\0';
}
