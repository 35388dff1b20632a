/*
 * Fuzzes the JSON reader and writer (base/json.h), which read and write the HTTP API's bodies.
 * Whatever the bytes:
 * - vs_json_parse gives a token count within the array, VS_EPROTO or VS_ETOOBIG, and reads
 *   nothing past the input (libFuzzer's copy ends where its heap block does);
 * - for a parse: every token lies inside the input, children lie inside their parent, `next`
 *   skips exactly a token's subtree, a container's size counts its children, and a smaller token
 *   array only turns the result into VS_ETOOBIG;
 * - every string token unescapes (room given) to valid UTF-8 no longer than its escaped form,
 *   and vs_json_get finds the first member of each key of each object;
 * - the writer turns the unescaped string, and the raw input as a string, into JSON that the
 *   reader parses back to the same bytes (the raw input's invalid UTF-8 as U+FFFD).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/json.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 512

/* UTF-8 validity written plainly (RFC 3629): decode, then refuse overlongs, surrogates and code
 * points past U+10FFFF. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k = c < 0x80	    ? 1
			   : (c >> 5) == 6  ? 2
			   : (c >> 4) == 14 ? 3
			   : (c >> 3) == 30 ? 4
					    : 0;
		if (k == 0 || i + k > n)
			return false;
		uint32_t cp = k == 1 ? c : c & (0x7F >> k);
		for (size_t m = 1; m < k; m++) {
			if ((s[i + m] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + m] & 0x3F);
		}
		static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k;
	}
	return true;
}

/* Writes s[0..n) as a JSON string, parses it back and unescapes it into *out (malloc'd). */
static ssize_t round_trip(const char *s, size_t n, char **out)
{
	struct vs_bytes b = {0};
	struct vs_json j;
	vs_json_init(&j, &b);
	vs_json_str(&j, NULL, s, n);
	CHECK(j.err == 0);
	struct vs_json_tok t[1];
	CHECK(vs_json_parse((const char *)vs_bytes_head(&b), vs_bytes_avail(&b), t, 1) == 1);
	CHECK(t[0].type == VS_JSON_STRING);
	size_t cap = vs_bytes_avail(&b) + 1;
	*out = malloc(cap);
	CHECK(*out);
	ssize_t r = vs_json_unescape((const char *)vs_bytes_head(&b), &t[0], *out, cap);
	CHECK(r >= 0);
	vs_bytes_fini(&b);
	return r;
}

static void check_tokens(const char *buf, size_t size, const struct vs_json_tok *t, int n)
{
	for (int i = 0; i < n; i++) {
		CHECK(t[i].start <= t[i].end && t[i].end <= size);
		CHECK(t[i].next > (uint32_t)i && t[i].next <= (uint32_t)n);
		CHECK(t[i].type <= VS_JSON_OBJECT);
		uint32_t kids = 0;
		for (uint32_t k = (uint32_t)i + 1; k < t[i].next; k = t[k].next) {
			CHECK(t[k].start >= t[i].start && t[k].end <= t[i].end);
			CHECK(t[k].next <= t[i].next);
			kids++;
		}
		if (t[i].type == VS_JSON_OBJECT)
			CHECK(kids == 2 * t[i].size);
		else if (t[i].type == VS_JSON_ARRAY)
			CHECK(kids == t[i].size);
		else
			CHECK(kids == 0 && t[i].next == (uint32_t)i + 1);
		if (t[i].type == VS_JSON_STRING) {
			size_t cap = t[i].end - t[i].start + 1;
			char *u = malloc(cap);
			CHECK(u);
			ssize_t r = vs_json_unescape(buf, &t[i], u, cap);
			CHECK(r >= 0 && (size_t)r < cap);
			CHECK(utf8_ok((const uint8_t *)u, (size_t)r));
			char *back = NULL;
			ssize_t rb = round_trip(u, (size_t)r, &back);
			CHECK(rb == r && memcmp(back, u, (size_t)r) == 0);
			free(back);
			if (r < 120 && !memchr(u, '\0', (size_t)r)) {
				/* the first member with this key, in each object holding it */
				for (int o = 0; o < n; o++) {
					int v = vs_json_get(buf, t, o, u);
					if (t[o].type != VS_JSON_OBJECT)
						CHECK(v == -1);
					else if (v >= 0)
						CHECK(v > o && (uint32_t)v < t[o].next &&
						      t[v - 1].type == VS_JSON_STRING);
				}
			}
			free(u);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct vs_json_tok *t = malloc(CAP * sizeof(*t));
	CHECK(t);
	int n = vs_json_parse(buf, size, t, CAP);
	CHECK(n == VS_EPROTO || n == VS_ETOOBIG || (n > 0 && n <= CAP));
	if (n > 0) {
		check_tokens(buf, size, t, n);
		/* fewer tokens: the same, or too big */
		int m = vs_json_parse(buf, size, t, (size_t)n - 1);
		CHECK(m == VS_ETOOBIG);
		CHECK(vs_json_parse(buf, size, t, (size_t)n) == n);
	}
	/* The raw bytes as a string: written, read back, equal where they were valid UTF-8. */
	char *back = NULL;
	ssize_t r = round_trip(buf, size, &back);
	CHECK(r >= (ssize_t)0);
	if (utf8_ok(data, size))
		CHECK((size_t)r == size && memcmp(back, buf, size) == 0);
	free(back);
	free(t);
	return 0;
}
