/*
 * Fuzzes the SOCKS5 reply parsers (net/socks5.h) with what a proxy might answer. The first byte
 * chooses the parser (method reply without or with username/password offered, auth reply,
 * CONNECT reply); the rest is the reply. Whatever the bytes:
 * - a result is a length within the input, 0 (need more), VS_EPROTO or -ECONNREFUSED;
 * - a whole reply's length does not depend on bytes after it; every shorter prefix of a whole
 *   reply needs more, and one of a failing input needs more or fails the same way;
 * - a method reply gives a method offered (0, or 2 only when offered); a CONNECT refusal gives
 *   its reply code (1..255).
 * The CONNECT encoder: the request for the input as a host name (up to 255 bytes) holds it, and
 * has the shape of a reply (a name address) that the reply parser measures as a whole.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "net/socks5.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssize_t parse(int which, const uint8_t *b, size_t len, int *out)
{
	*out = -1;
	switch (which) {
	case 0:
	case 1:
		return vs_socks5_parse_method(b, len, which, out);
	case 2:
		return vs_socks5_parse_auth(b, len);
	default:
		return vs_socks5_parse_connect(b, len, out);
	}
}

static void check_connect_encoder(const uint8_t *data, size_t size)
{
	char host[256];
	size_t n = size < 255 ? size : 255;
	memcpy(host, data, n);
	host[n] = 0;
	uint8_t req[VS_SOCKS5_MAX_REQ];
	ssize_t len = vs_socks5_connect(req, host, 1883);
	size_t hl = strlen(host);
	if (hl == 0) {
		CHECK(len == VS_ETOOBIG);
		return;
	}
	CHECK(len == (ssize_t)(7 + hl));
	CHECK(req[0] == 5 && req[1] == 1 && req[3] == 3 && req[4] == hl);
	CHECK(!memcmp(req + 5, host, hl) && req[5 + hl] == 1883 >> 8 &&
	      req[6 + hl] == (1883 & 255));
	/* The request has the reply's shape: the reply parser measures it as a whole. */
	req[1] = 0;
	CHECK(vs_socks5_parse_connect(req, (size_t)len, NULL) == len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int which = data[0] & 3;
	const uint8_t *b = data + 1;
	size_t len = size - 1;
	int out;
	ssize_t rc = parse(which, b, len, &out);
	CHECK(rc == 0 || rc == VS_EPROTO || rc == -ECONNREFUSED || (rc > 0 && (size_t)rc <= len));
	if (rc > 0 && which <= 1)
		CHECK(out == 0 || (which == 1 && out == 2));
	if (rc == -ECONNREFUSED && which == 3)
		CHECK(out >= 1 && out <= 255);
	if (rc > 0) {
		/* The same reply with other bytes after it, or none: the same length. */
		uint8_t *copy = malloc((size_t)rc + 1);
		CHECK(copy != NULL);
		memcpy(copy, b, (size_t)rc);
		copy[rc] = (uint8_t)~b[rc < (ssize_t)len ? rc : 0];
		int o2;
		CHECK(parse(which, copy, (size_t)rc, &o2) == rc && o2 == out);
		CHECK(parse(which, copy, (size_t)rc + 1, &o2) == rc);
		free(copy);
	}
	/* Every prefix: needs more, or fails as the whole does (an early failure is final). */
	size_t end = rc > 0 ? (size_t)rc : len;
	for (size_t k = 0; k < end; k++) {
		uint8_t *pre = malloc(k ? k : 1); /* its own block: reading past k is caught */
		CHECK(pre != NULL);
		memcpy(pre, b, k);
		int o2;
		ssize_t r2 = parse(which, pre, k, &o2);
		free(pre);
		CHECK(r2 == 0 || (rc < 0 && r2 == rc));
	}
	check_connect_encoder(b, len);
	return 0;
}
