/*
 * Fuzzes the HTTP/1.1 head parser (net/http.h): the input is parsed as a request and as a
 * response. Whatever the bytes, the result is a head length within the input, 0, VS_EPROTO or
 * VS_ETOOBIG, and no byte past the input is read (libFuzzer's copy ends where its heap block
 * does). For a parsed head:
 * - every view is inside the head, the head ends with LF, and the parts hold only what the
 *   grammar allows (token methods and names, values without control characters or edge
 *   whitespace, a target without spaces);
 * - the result does not depend on bytes after the head, and a prefix cut from the input agrees
 *   with it (a shorter head needs more; an error stays an error);
 * - vs_http_find finds every header by its name in any case, the first of that name;
 *   vs_http_has_token agrees with a plain re-implementation for each listed token;
 * - vs_http_path of the target (and of the raw input) is a NUL-terminated origin path without
 *   backslashes, NULs or dot segments, equal to a plain percent-decoding of the target up to
 *   its query, and a smaller output only turns a result into VS_ETOOBIG;
 * - vs_http_body of a parsed request agrees with a plain reading of its Content-Length and
 *   Transfer-Encoding headers;
 * - vs_http_basic of each header's value (and of the raw input) gives views inside its buffer,
 *   a NUL-terminated user without ':' or control characters, a password without NUL, whose
 *   "user:password" encodes back to the value's credentials; a smaller buffer only turns a
 *   result into VS_ETOOBIG.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"
#include "base/error.h"
#include "net/http.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static void check_view(const char *head, size_t len, const char *v, size_t n)
{
	CHECK(v >= head && n <= len && v - head <= (ptrdiff_t)(len - n));
}

/* The same parse of an exact-size copy of buf[0..n). */
static ssize_t parse_copy(const char *buf, size_t n, bool request)
{
	char *c = malloc(n ? n : 1);
	CHECK(c);
	memcpy(c, buf, n);
	struct vs_http_request req;
	struct vs_http_response resp;
	ssize_t r =
	    request ? vs_http_parse_request(c, n, &req) : vs_http_parse_response(c, n, &resp);
	free(c);
	return r;
}

/* A parse of buf[0..size) gave r: any prefix agrees with it. */
static void check_prefix(const char *buf, size_t size, ssize_t r, size_t cut, bool request)
{
	ssize_t rp = parse_copy(buf, cut, request);
	if (r > 0)
		CHECK(rp == ((size_t)r <= cut ? r : 0));
	else if (r == 0)
		CHECK(rp == 0);
	else
		CHECK(rp == 0 || rp == r);
}

/* Whether the comma-separated value lists token, written plainly. */
static bool ref_has_token(const struct vs_http_header *h, const char *token)
{
	size_t tn = strlen(token), i = 0;
	while (i <= h->value_len) {
		size_t e = i;
		while (e < h->value_len && h->value[e] != ',')
			e++;
		size_t s = i, t = e;
		while (s < t && (h->value[s] == ' ' || h->value[s] == '\t'))
			s++;
		while (t > s && (h->value[t - 1] == ' ' || h->value[t - 1] == '\t'))
			t--;
		if (tn && t - s == tn && strncasecmp(h->value + s, token, tn) == 0)
			return true;
		i = e + 1;
	}
	return false;
}

static void check_headers(const char *head, size_t len, const struct vs_http_header *hs, size_t n)
{
	CHECK(n <= VS_HTTP_MAX_HEADERS);
	for (size_t i = 0; i < n; i++) {
		const struct vs_http_header *h = &hs[i];
		check_view(head, len, h->name, h->name_len);
		check_view(head, len, h->value, h->value_len);
		CHECK(h->name_len > 0 && h->value > h->name + h->name_len); /* the colon between */
		for (size_t k = 0; k < h->name_len; k++)
			CHECK(is_tchar((unsigned char)h->name[k]));
		for (size_t k = 0; k < h->value_len; k++) {
			unsigned char ch = (unsigned char)h->value[k];
			CHECK((ch >= ' ' || ch == '\t') && ch != 0x7f);
		}
		if (h->value_len) {
			CHECK(h->value[0] != ' ' && h->value[0] != '\t');
			CHECK(h->value[h->value_len - 1] != ' ' &&
			      h->value[h->value_len - 1] != '\t');
		}
		/* Found by its name, in another case too: the first header of that name. */
		char name[256], token[256];
		if (h->name_len >= sizeof(name))
			continue;
		memcpy(name, h->name, h->name_len);
		name[h->name_len] = '\0';
		const struct vs_http_header *f = vs_http_find(hs, n, name);
		CHECK(f && f <= h && f->name_len == h->name_len &&
		      strncasecmp(f->name, name, h->name_len) == 0);
		for (size_t k = 0; k < h->name_len; k++)
			name[k] ^=
			    (char)((name[k] | 0x20) >= 'a' && (name[k] | 0x20) <= 'z' ? 0x20 : 0);
		CHECK(vs_http_find(hs, n, name) == f);
		/* Tokens: each element of the value, and the name as one. */
		CHECK(vs_http_has_token(h, name) == ref_has_token(h, name));
		size_t s = 0;
		for (int elems = 0; s <= h->value_len && elems < 8; elems++) {
			size_t e = s;
			while (e < h->value_len && h->value[e] != ',')
				e++;
			if (e - s < sizeof(token)) {
				memcpy(token, h->value + s, e - s);
				token[e - s] = '\0';
				if (*token)
					CHECK(vs_http_has_token(h, token) ==
					      ref_has_token(h, token));
				size_t tl = strlen(token);
				while (tl && (token[tl - 1] == ' ' || token[tl - 1] == '\t'))
					token[--tl] = '\0';
				const char *t = token + strspn(token, " \t");
				if (*t)
					CHECK(vs_http_has_token(h, t) && ref_has_token(h, t));
			}
			s = e + 1;
		}
	}
}

/* The target percent-decoded up to its query, written plainly: its length, or -1 for a bad
 * escape. */
static ssize_t ref_decode(const char *t, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len && t[i] != '?' && t[i] != '#'; i++) {
		if (t[i] != '%') {
			out[o++] = t[i];
			continue;
		}
		char hex[3] = {0};
		if (i + 2 >= len)
			return -1;
		memcpy(hex, t + i + 1, 2);
		if (!strchr("0123456789abcdefABCDEF", hex[0]) || !hex[0] ||
		    !strchr("0123456789abcdefABCDEF", hex[1]) || !hex[1])
			return -1;
		out[o++] = (char)strtol(hex, NULL, 16);
		i += 2;
	}
	return (ssize_t)o;
}

static void check_path(const char *target, size_t len)
{
	char out[1024], small[16], ref[4096];
	ssize_t r = vs_http_path(target, len, out, sizeof(out));
	ssize_t rs = vs_http_path(target, len, small, sizeof(small));
	CHECK(r == VS_EPROTO || r == VS_ETOOBIG || (r > 0 && (size_t)r < sizeof(out)));
	if (r >= 0)
		CHECK(rs == (r < (ssize_t)sizeof(small) ? r : VS_ETOOBIG));
	else if (r == VS_ETOOBIG)
		CHECK(rs == VS_ETOOBIG);
	else
		CHECK(rs == VS_EPROTO || rs == VS_ETOOBIG);
	if (rs >= 0)
		CHECK(strcmp(small, out) == 0);
	if (r < 0)
		return;
	CHECK(out[r] == '\0' && strlen(out) == (size_t)r && out[0] == '/');
	CHECK(!strchr(out, '\\'));
	CHECK(!strstr(out, "/./") && !strstr(out, "/../"));
	CHECK(r < 2 || strcmp(out + r - 2, "/.") != 0);
	CHECK(r < 3 || strcmp(out + r - 3, "/..") != 0);
	if (len < sizeof(ref)) {
		ssize_t rr = ref_decode(target, len, ref);
		CHECK(rr == r && memcmp(ref, out, (size_t)r) == 0);
	}
	const char *ct = vs_http_content_type(out);
	CHECK(ct && *ct);
}

/* vs_http_body against a plain reading of the headers. */
static void check_body(const struct vs_http_request *req)
{
	enum vs_http_body kind;
	uint64_t len = 0;
	int rc = vs_http_body(req, &kind, &len);
	CHECK(rc == 0 || rc == VS_EPROTO);
	const struct vs_http_header *cl = vs_http_header_get(req, "Content-Length");
	const struct vs_http_header *te = vs_http_header_get(req, "Transfer-Encoding");
	if (cl && te)
		CHECK(rc == VS_EPROTO);
	if (rc < 0)
		return;
	CHECK(len < (1ull << 53));
	if (!te)
		CHECK(kind == VS_HTTP_BODY_LENGTH);
	else
		CHECK(kind == VS_HTTP_BODY_CHUNKED || kind == VS_HTTP_BODY_CODING);
	if (!cl) {
		CHECK(len == 0);
		return;
	}
	/* Every Content-Length is the digits of len. */
	char want[24];
	int n = snprintf(want, sizeof(want), "%llu", (unsigned long long)len);
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct vs_http_header *h = &req->headers[i];
		if (h->name_len == 14 && strncasecmp(h->name, "Content-Length", 14) == 0) {
			size_t z = 0; /* leading zeros are digits too */
			while (z + 1 < h->value_len && h->value[z] == '0')
				z++;
			CHECK(h->value_len - z == (size_t)n &&
			      memcmp(h->value + z, want, (size_t)n) == 0);
		}
	}
}

/* vs_http_basic of v[0..len) (an exact-size copy). */
static void check_basic(const char *v, size_t len)
{
	char *c = malloc(len ? len : 1), buf[256], small[8];
	CHECK(c);
	memcpy(c, v, len);
	struct vs_http_basic b, bs;
	int rc = vs_http_basic(c, len, buf, sizeof(buf), &b);
	int rs = vs_http_basic(c, len, small, sizeof(small), &bs);
	CHECK(rc == 0 || rc == VS_EPROTO || rc == VS_ETOOBIG);
	if (rc == VS_EPROTO) /* the smaller buffer may be refused first */
		CHECK(rs == VS_EPROTO || rs == VS_ETOOBIG);
	if (rc == 0)
		CHECK(rs == 0 || rs == VS_ETOOBIG);
	if (rc == 0) {
		CHECK(b.user == buf && b.user_len > 0 && strlen(b.user) == b.user_len);
		CHECK(b.pw == (const uint8_t *)buf + b.user_len + 1);
		CHECK(b.pw_len < sizeof(buf) - b.user_len - 1 && b.pw[b.pw_len] == '\0');
		for (size_t k = 0; k < b.user_len; k++)
			CHECK((unsigned char)b.user[k] >= ' ' && b.user[k] != 0x7f &&
			      b.user[k] != ':');
		CHECK(!memchr(b.pw, '\0', b.pw_len));
		/* Encoded back, "user:pw" is the credentials as sent. */
		uint8_t plain[256];
		char enc[VS_B64_LEN(256) + 1];
		memcpy(plain, b.user, b.user_len);
		plain[b.user_len] = ':';
		memcpy(plain + b.user_len + 1, b.pw, b.pw_len);
		size_t el = vs_b64_encode(plain, b.user_len + 1 + b.pw_len, enc, VS_B64_PAD);
		size_t i = 6;
		while (i < len && c[i] == ' ')
			i++;
		CHECK(len - i == el && memcmp(c + i, enc, el) == 0);
		CHECK(strncasecmp(c, "Basic ", 6) == 0);
	}
	free(c);
}

static void check_request(const char *buf, size_t size, ssize_t r,
			  const struct vs_http_request *req)
{
	size_t len = (size_t)r;
	CHECK(buf[len - 1] == '\n');
	check_view(buf, len, req->method, req->method_len);
	check_view(buf, len, req->target, req->target_len);
	CHECK(req->method_len > 0 && req->target_len > 0);
	for (size_t k = 0; k < req->method_len; k++)
		CHECK(is_tchar((unsigned char)req->method[k]));
	for (size_t k = 0; k < req->target_len; k++) {
		unsigned char ch = (unsigned char)req->target[k];
		CHECK(ch > ' ' && ch != 0x7f);
	}
	CHECK(req->minor >= 0 && req->minor <= 9);
	CHECK(vs_http_method_is(req, "GET") ==
	      (req->method_len == 3 && memcmp(req->method, "GET", 3) == 0));
	check_headers(buf, len, req->headers, req->n_headers);
	check_path(req->target, req->target_len);
	check_body(req);
	for (size_t i = 0; i < req->n_headers; i++)
		check_basic(req->headers[i].value, req->headers[i].value_len);
	/* The head alone parses the same. */
	CHECK(size == len || parse_copy(buf, len, true) == r);
}

static void check_response(const char *buf, ssize_t r, const struct vs_http_response *resp)
{
	size_t len = (size_t)r;
	CHECK(buf[len - 1] == '\n');
	CHECK(resp->minor >= 0 && resp->minor <= 9);
	CHECK(resp->status >= 0 && resp->status <= 999);
	check_headers(buf, len, resp->headers, resp->n_headers);
}

/* vs_http_query of the input as a query string, for a name taken from its first bytes: a
 * NUL-terminated value no longer than the query, and a smaller buffer only turns a result into
 * VS_ETOOBIG. */
static void check_query(const char *buf, size_t size)
{
	char *q = malloc(size + 1), name[4] = "";
	CHECK(q);
	memcpy(q, buf, size);
	q[size] = '\0';
	for (size_t i = 0; i < 3 && i < size && buf[i] != '=' && buf[i] != '&' && buf[i]; i++)
		name[i] = buf[i], name[i + 1] = '\0';
	char out[256];
	ssize_t r = vs_http_query(q, name, out, sizeof(out));
	CHECK(r == -ENOENT || r == VS_EPROTO || r == VS_ETOOBIG || (r >= 0 && (size_t)r < 256));
	if (r >= 0) {
		CHECK(out[r] == '\0' && (size_t)r <= size);
		char small[8];
		ssize_t s = vs_http_query(q, name, small, sizeof(small));
		CHECK(s == (r < 8 ? r : VS_ETOOBIG));
	}
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct vs_http_request req;
	ssize_t r = vs_http_parse_request(buf, size, &req);
	CHECK(r == VS_EPROTO || r == VS_ETOOBIG || (r >= 0 && (size_t)r <= size));
	if (r > 0)
		check_request(buf, size, r, &req);
	/* A cut chosen by the input's last byte. */
	size_t cut = size ? size * data[size - 1] / 256 : 0;
	check_prefix(buf, size, r, cut, true);
	if (r > 0)
		check_prefix(buf, size, r, (size_t)r - 1, true);

	struct vs_http_response resp;
	r = vs_http_parse_response(buf, size, &resp);
	CHECK(r == VS_EPROTO || r == VS_ETOOBIG || (r >= 0 && (size_t)r <= size));
	if (r > 0)
		check_response(buf, r, &resp);
	check_prefix(buf, size, r, cut, false);

	/* The path of arbitrary bytes: NULs, spaces, anything; and credentials. */
	check_path(buf, size);
	check_basic(buf, size);
	check_query(buf, size);
	return 0;
}
