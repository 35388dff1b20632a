/*
 * Unit tests of the HTTP/1.1 head parser (net/http.h): requests and responses, the tolerant
 * cases RFC 9112 allows (bare LF, leading empty lines), every malformed case it refuses (each a
 * request smuggling vector or a broken line), the header limit, and the helpers the WebSocket
 * upgrade and the file server use: tokens, the request path (the one thing that must never leave
 * http_dir) and content types.
 *
 * Every input is parsed from a guard-page copy (guard.h): the last byte sits right before a
 * PROT_NONE page, so a read past the end faults. Each valid head is also parsed at every shorter
 * length, which must be "need more" (0) and must not read past that length either.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "guard.h"
#include "net/http.h"

/* A string literal and its length (which may count NUL bytes inside it). */
#define S(x) x, sizeof(x) - 1

/* A head parsed from a guard-page copy; the views point into g until done(). */
struct parsed {
	uint8_t *g;
	size_t len;
	ssize_t rc;
	struct vs_http_request req;
	struct vs_http_response resp;
};

static void parse_req(struct parsed *p, const char *s, size_t len)
{
	p->len = len;
	p->g = guard_copy(s, len);
	p->rc = vs_http_parse_request((const char *)p->g, len, &p->req);
}

static void parse_resp(struct parsed *p, const char *s, size_t len)
{
	p->len = len;
	p->g = guard_copy(s, len);
	p->rc = vs_http_parse_response((const char *)p->g, len, &p->resp);
}

static void done(struct parsed *p)
{
	guard_free(p->g, p->len);
}

/* A view is inside the parsed buffer, within the head that was returned. */
static void assert_view(const struct parsed *p, const char *v, size_t n)
{
	const char *b = (const char *)p->g;
	assert_true(v >= b && v + n <= b + p->rc);
}

static void assert_str(const char *v, size_t n, const char *want)
{
	if (n != strlen(want) || memcmp(v, want, n) != 0)
		fail_msg("got '%.*s', want '%s'", (int)n, v, want);
}

static void assert_header(const struct parsed *p, const struct vs_http_header *hs, size_t i,
			  const char *name, const char *value)
{
	assert_str(hs[i].name, hs[i].name_len, name);
	assert_str(hs[i].value, hs[i].value_len, value);
	assert_view(p, hs[i].name, hs[i].name_len);
	assert_view(p, hs[i].value, hs[i].value_len);
}

/* Every proper prefix of a complete head is "need more". */
static void assert_prefixes_incomplete(const char *s, size_t len, bool request)
{
	for (size_t n = 0; n < len; n++) {
		struct parsed p;
		if (request)
			parse_req(&p, s, n);
		else
			parse_resp(&p, s, n);
		if (p.rc != 0)
			fail_msg("prefix of %zu bytes of '%.*s': %zd", n, (int)len, s, p.rc);
		done(&p);
	}
}

/* ---------------------------------------------------------------- requests: valid */

static void request_upgrade_crlf(void **state)
{
	static const char head[] = "GET /mqtt HTTP/1.1\r\n"
				   "Host: example.com\r\n"
				   "Upgrade: websocket\r\n"
				   "Connection: Upgrade\r\n"
				   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				   "Sec-WebSocket-Version: 13\r\n"
				   "\r\n";
	struct parsed p;
	parse_req(&p, S(head));
	assert_int_equal(p.rc, sizeof(head) - 1);
	assert_str(p.req.method, p.req.method_len, "GET");
	assert_view(&p, p.req.method, p.req.method_len);
	assert_str(p.req.target, p.req.target_len, "/mqtt");
	assert_view(&p, p.req.target, p.req.target_len);
	assert_int_equal(p.req.minor, 1);
	assert_int_equal(p.req.n_headers, 5);
	assert_header(&p, p.req.headers, 0, "Host", "example.com");
	assert_header(&p, p.req.headers, 1, "Upgrade", "websocket");
	assert_header(&p, p.req.headers, 2, "Connection", "Upgrade");
	assert_header(&p, p.req.headers, 3, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
	assert_header(&p, p.req.headers, 4, "Sec-WebSocket-Version", "13");
	done(&p);
	assert_prefixes_incomplete(S(head), true);
}

static void request_bare_lf(void **state)
{
	/* RFC 9112 2.2: a recipient may take a bare LF as the end of a line. */
	static const char head[] = "GET /a HTTP/1.1\nHost: h\nX: y\n\n";
	struct parsed p;
	parse_req(&p, S(head));
	assert_int_equal(p.rc, sizeof(head) - 1);
	assert_int_equal(p.req.n_headers, 2);
	assert_header(&p, p.req.headers, 0, "Host", "h");
	assert_header(&p, p.req.headers, 1, "X", "y");
	done(&p);
	assert_prefixes_incomplete(S(head), true);
}

static void request_mixed_line_ends(void **state)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\n";
	struct parsed p;
	parse_req(&p, S(head));
	assert_int_equal(p.rc, sizeof(head) - 1);
	assert_int_equal(p.req.n_headers, 2);
	assert_header(&p, p.req.headers, 1, "X", "y");
	done(&p);
	assert_prefixes_incomplete(S(head), true);
}

static void request_leading_empty_lines(void **state)
{
	/* RFC 9112 2.2: at least one empty line before the request line is ignored. */
	static const char head[] = "\r\n\n\r\nGET / HTTP/1.0\r\n\r\n";
	struct parsed p;
	parse_req(&p, S(head));
	assert_int_equal(p.rc, sizeof(head) - 1);
	assert_str(p.req.target, p.req.target_len, "/");
	assert_int_equal(p.req.minor, 0);
	assert_int_equal(p.req.n_headers, 0);
	done(&p);
	assert_prefixes_incomplete(S(head), true);
}

static void request_no_headers(void **state)
{
	struct parsed p;
	parse_req(&p, S("GET / HTTP/1.1\r\n\r\n"));
	assert_int_equal(p.rc, 18);
	assert_int_equal(p.req.n_headers, 0);
	done(&p);
}

static void request_returns_head_only(void **state)
{
	/* What follows the empty line (the first WebSocket frame, a pipelined request) is not the
	 * head's. */
	static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n\x82\x80\x01\x02\x03\x04GET";
	struct parsed p;
	parse_req(&p, S(in));
	assert_int_equal(p.rc, 27);
	assert_int_equal(p.req.n_headers, 1);
	done(&p);
}

static void request_value_whitespace(void **state)
{
	static const char head[] = "GET / HTTP/1.1\r\n"
				   "A:  x y \t\r\n"
				   "B:\r\n"
				   "C: \t \r\n"
				   "D:\tz\r\n"
				   "E:v\r\n"
				   "\r\n";
	struct parsed p;
	parse_req(&p, S(head));
	assert_int_equal(p.rc, sizeof(head) - 1);
	assert_int_equal(p.req.n_headers, 5);
	assert_header(&p, p.req.headers, 0, "A", "x y"); /* inner whitespace kept */
	assert_int_equal(p.req.headers[1].value_len, 0);
	assert_int_equal(p.req.headers[2].value_len, 0);
	assert_header(&p, p.req.headers, 3, "D", "z");
	assert_header(&p, p.req.headers, 4, "E", "v");
	done(&p);
}

static void request_obs_text_and_tchars(void **state)
{
	/* Bytes 0x80-0xFF are obs-text in values and may appear in a target; every tchar may
	 * appear in a method and a name. */
	static const char head[] = "M-._~!#$%&'*+^`|9 /\xc3\xa4?q=\xff HTTP/1.1\r\n"
				   "X-!#$%&'*+-.^_`|~09az: caf\xc3\xa9 \x80\xff\r\n"
				   "\r\n";
	struct parsed p;
	parse_req(&p, S(head));
	assert_int_equal(p.rc, sizeof(head) - 1);
	assert_str(p.req.method, p.req.method_len, "M-._~!#$%&'*+^`|9");
	assert_str(p.req.target, p.req.target_len, "/\xc3\xa4?q=\xff");
	assert_header(&p, p.req.headers, 0, "X-!#$%&'*+-.^_`|~09az", "caf\xc3\xa9 \x80\xff");
	done(&p);
}

static void request_any_minor_version(void **state)
{
	struct parsed p;
	parse_req(&p, S("GET / HTTP/1.9\r\n\r\n"));
	assert_int_equal(p.rc, 18);
	assert_int_equal(p.req.minor, 9);
	done(&p);
}

static void request_incomplete(void **state)
{
	static const char *const cases[] = {
	    "",
	    "\r",
	    "\r\n",
	    "\n\n",
	    "G",
	    "GET / HTTP/1.1",
	    "GET / HTTP/1.1\r",
	    "GET / HTTP/1.1\r\n",
	    "GET / HTTP/1.1\r\nHost: h\r\n",
	    "GET / HTTP/1.1\r\nHost: h\r\n\r",
	    "GET / HTTP/1.1\nHost: h\n",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct parsed p;
		parse_req(&p, cases[i], strlen(cases[i]));
		if (p.rc != 0)
			fail_msg("'%s': %zd, want 0", cases[i], p.rc);
		done(&p);
	}
}

/* ---------------------------------------------------------------- requests: malformed */

struct bad_case {
	const char *why;
	const char *s;
	size_t len;
	ssize_t rc;
};

static void run_bad(const struct bad_case *cases, size_t n, bool request)
{
	for (size_t i = 0; i < n; i++) {
		struct parsed p;
		if (request)
			parse_req(&p, cases[i].s, cases[i].len);
		else
			parse_resp(&p, cases[i].s, cases[i].len);
		if (p.rc != cases[i].rc)
			fail_msg("%s: %zd, want %zd", cases[i].why, p.rc, cases[i].rc);
		done(&p);
	}
}

#define BAD(why, s) why, S(s), VS_EPROTO

static const struct bad_case bad_headers[] = {
    /* RFC 9112 5.1: no whitespace between a field name and the colon. */
    {BAD("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n")},
    {BAD("tab before colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n")},
    /* RFC 9112 5.2: obsolete line folding. */
    {BAD("obs-fold with a space", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n")},
    {BAD("obs-fold with a tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n")},
    {BAD("whitespace before the first header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n")},
    /* RFC 9112 2.2: a bare CR is not a line end. */
    {BAD("bare CR in a value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n")},
    {BAD("bare CR ending a value", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n")},
    {BAD("bare CR in a name", "GET / HTTP/1.1\r\nX\r: a\r\n\r\n")},
    {BAD("bare CR in the request line", "GET /\r HTTP/1.1\r\n\r\n")},
    {BAD("bare CR at the end of the request line", "GET / HTTP/1.1\r\r\n\r\n")},
    {BAD("bare CR as the empty line", "GET / HTTP/1.1\r\n\r\r\n")},
    {BAD("bare CR before the request line", "\rGET / HTTP/1.1\r\n\r\n")},
    {BAD("CR CR LF before the request line", "\r\r\nGET / HTTP/1.1\r\n\r\n")},
    /* RFC 9110 5.5: no control characters in values (HTAB is whitespace). */
    {BAD("NUL in a value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n")},
    {BAD("SOH in a value", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n")},
    {BAD("ESC in a value", "GET / HTTP/1.1\r\nX: \x1b[0m\r\n\r\n")},
    {BAD("DEL in a value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n")},
    {BAD("control character as the whole value", "GET / HTTP/1.1\r\nX: \x0b\r\n\r\n")},
    /* Field names are tokens, and a line without a colon is no field. */
    {BAD("empty name", "GET / HTTP/1.1\r\n: v\r\n\r\n")},
    {BAD("no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n")},
    {BAD("space in a name", "GET / HTTP/1.1\r\nX Y: v\r\n\r\n")},
    {BAD("parenthesis in a name", "GET / HTTP/1.1\r\nX(y): v\r\n\r\n")},
    {BAD("NUL in a name", "GET / HTTP/1.1\r\nX\0: v\r\n\r\n")},
    {BAD("8-bit byte in a name", "GET / HTTP/1.1\r\nX\xe4: v\r\n\r\n")},
};

static const struct bad_case bad_request_lines[] = {
    {BAD("empty method", " / HTTP/1.1\r\n\r\n")},
    {BAD("no target", "GET HTTP/1.1\r\n\r\n")},
    {BAD("one part", "GET\r\n\r\n")},
    {BAD("two parts", "GET /\r\n\r\n")},
    {BAD("four parts", "GET / HTTP/1.1 x\r\n\r\n")},
    {BAD("two spaces after the method", "GET  / HTTP/1.1\r\n\r\n")},
    {BAD("two spaces after the target", "GET /  HTTP/1.1\r\n\r\n")},
    {BAD("trailing space", "GET / HTTP/1.1 \r\n\r\n")},
    {BAD("tab as separator", "GET\t/ HTTP/1.1\r\n\r\n")},
    {BAD("control character in the method", "G\x01T / HTTP/1.1\r\n\r\n")},
    {BAD("non-token method", "GE(T / HTTP/1.1\r\n\r\n")},
    {BAD("control character in the target", "GET /a\x01 HTTP/1.1\r\n\r\n")},
    {BAD("DEL in the target", "GET /a\x7f HTTP/1.1\r\n\r\n")},
    {BAD("NUL in the target", "GET /\0 HTTP/1.1\r\n\r\n")},
    {BAD("lower-case version", "GET / http/1.1\r\n\r\n")},
    {BAD("HTTP/2.0", "GET / HTTP/2.0\r\n\r\n")},
    {BAD("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n")},
    {BAD("HTTP/1. without a minor", "GET / HTTP/1.\r\n\r\n")},
    {BAD("HTTP/1.x", "GET / HTTP/1.x\r\n\r\n")},
    {BAD("two-digit minor", "GET / HTTP/1.10\r\n\r\n")},
    {BAD("HTTP/1 without a dot", "GET / HTTP/1\r\n\r\n")},
    {BAD("HTTP/1.1 with a trailing byte", "GET / HTTP/1.1x\r\n\r\n")},
    {BAD("a status line as a request", "HTTP/1.1 200 OK\r\n\r\n")},
    {BAD("HTTP/0.9 simple request", "GET /\r\n")},
};

static void request_malformed_headers(void **state)
{
	run_bad(bad_headers, sizeof(bad_headers) / sizeof(bad_headers[0]), true);
}

static void request_malformed_request_line(void **state)
{
	run_bad(bad_request_lines, sizeof(bad_request_lines) / sizeof(bad_request_lines[0]), true);
}

static void request_malformed_before_head_ends(void **state)
{
	/* A broken line is refused as soon as it is whole: the parser need not wait for more. */
	static const struct bad_case cases[] = {
	    {BAD("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n")},
	    {BAD("bad request line", "GET / HTTP/2.0\r\n")},
	    {BAD("control character", "GET / HTTP/1.1\r\nX: \x01\n")},
	};
	run_bad(cases, sizeof(cases) / sizeof(cases[0]), true);
}

/* A request with n headers "H<i>: v". */
static size_t many_headers(char *out, size_t cap, int n)
{
	size_t o = (size_t)snprintf(out, cap, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, cap - o, "H%d: v\r\n", i);
	o += (size_t)snprintf(out + o, cap - o, "\r\n");
	return o;
}

static void request_header_limit(void **state)
{
	char buf[2048];
	struct parsed p;
	size_t n = many_headers(buf, sizeof(buf), VS_HTTP_MAX_HEADERS);
	parse_req(&p, buf, n);
	assert_int_equal(p.rc, n);
	assert_int_equal(p.req.n_headers, VS_HTTP_MAX_HEADERS);
	assert_header(&p, p.req.headers, VS_HTTP_MAX_HEADERS - 1, "H63", "v");
	done(&p);

	n = many_headers(buf, sizeof(buf), VS_HTTP_MAX_HEADERS + 1);
	parse_req(&p, buf, n);
	assert_int_equal(p.rc, VS_ETOOBIG);
	done(&p);
}

/* ---------------------------------------------------------------- responses */

static void response_switching_protocols(void **state)
{
	static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
				   "Upgrade: websocket\r\n"
				   "Connection: Upgrade\r\n"
				   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
				   "Sec-WebSocket-Protocol: mqtt\r\n"
				   "\r\n";
	struct parsed p;
	parse_resp(&p, S(head));
	assert_int_equal(p.rc, sizeof(head) - 1);
	assert_int_equal(p.resp.minor, 1);
	assert_int_equal(p.resp.status, 101);
	assert_int_equal(p.resp.n_headers, 4);
	assert_header(&p, p.resp.headers, 2, "Sec-WebSocket-Accept",
		      "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_header(&p, p.resp.headers, 3, "Sec-WebSocket-Protocol", "mqtt");
	const struct vs_http_header *h =
	    vs_http_find(p.resp.headers, p.resp.n_headers, "sec-websocket-accept");
	assert_ptr_equal(h, &p.resp.headers[2]);
	done(&p);
	assert_prefixes_incomplete(S(head), false);
}

static void response_forms(void **state)
{
	static const struct {
		const char *s;
		int minor, status;
	} cases[] = {
	    {"HTTP/1.1 101\r\n\r\n", 1, 101},		   /* no reason phrase */
	    {"HTTP/1.1 101 \r\n\r\n", 1, 101},		   /* an empty one */
	    {"HTTP/1.0 404 Not Found\n\n", 0, 404},	   /* bare LF */
	    {"\r\nHTTP/1.1 200 OK\r\n\r\n", 1, 200},	   /* leading empty line */
	    {"HTTP/1.1 599 Odd  reason \r\n\r\n", 1, 599}, /* any reason text */
	    {"HTTP/1.1 000 x\r\n\r\n", 1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct parsed p;
		parse_resp(&p, cases[i].s, strlen(cases[i].s));
		if (p.rc != (ssize_t)strlen(cases[i].s))
			fail_msg("'%s': %zd", cases[i].s, p.rc);
		assert_int_equal(p.resp.minor, cases[i].minor);
		assert_int_equal(p.resp.status, cases[i].status);
		done(&p);
	}
}

static void response_malformed(void **state)
{
	static const struct bad_case cases[] = {
	    {BAD("letter in the status", "HTTP/1.1 1O1 x\r\n\r\n")},
	    {BAD("two-digit status", "HTTP/1.1 10 x\r\n\r\n")},
	    {BAD("four-digit status", "HTTP/1.1 1011 x\r\n\r\n")},
	    {BAD("two-digit status at the end", "HTTP/1.1 10\r\n\r\n")},
	    {BAD("HTTP/2", "HTTP/2 101 x\r\n\r\n")},
	    {BAD("HTTP/2.0", "HTTP/2.0 101 x\r\n\r\n")},
	    {BAD("two spaces", "HTTP/1.1  101 x\r\n\r\n")},
	    {BAD("lower case", "http/1.1 101 x\r\n\r\n")},
	    {BAD("a request line as a response", "GET / HTTP/1.1\r\n\r\n")},
	    {BAD("space before colon", "HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n")},
	    {BAD("obs-fold", "HTTP/1.1 101 x\r\nA: b\r\n c\r\n\r\n")},
	    {BAD("bare CR", "HTTP/1.1 101 x\ry\r\n\r\n")},
	    {BAD("control character", "HTTP/1.1 101 x\r\nA: \x02\r\n\r\n")},
	};
	run_bad(cases, sizeof(cases) / sizeof(cases[0]), false);
}

static void response_header_limit(void **state)
{
	char buf[2048];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 101 x\r\n");
	for (int i = 0; i <= VS_HTTP_MAX_HEADERS; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "H%d: v\r\n", i);
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\r\n");
	struct parsed p;
	parse_resp(&p, buf, o);
	assert_int_equal(p.rc, VS_ETOOBIG);
	done(&p);
}

/* ---------------------------------------------------------------- headers and tokens */

static struct vs_http_header hdr(const char *name, const char *value)
{
	struct vs_http_header h = {name, strlen(name), value, strlen(value)};
	return h;
}

static void find_header(void **state)
{
	struct vs_http_header hs[] = {hdr("Host", "a"), hdr("X-Y", "1"), hdr("host", "b"),
				      hdr("Hostname", "c")};
	assert_ptr_equal(vs_http_find(hs, 4, "Host"), &hs[0]); /* the first of duplicates */
	assert_ptr_equal(vs_http_find(hs, 4, "HOST"), &hs[0]); /* any case */
	assert_ptr_equal(vs_http_find(hs, 4, "x-y"), &hs[1]);
	assert_ptr_equal(vs_http_find(hs, 4, "hostname"), &hs[3]);
	assert_null(vs_http_find(hs, 4, "Hos"));       /* a prefix is not the name */
	assert_null(vs_http_find(hs, 4, "Hostnames")); /* nor a longer one */
	assert_null(vs_http_find(hs, 4, ""));
	assert_null(vs_http_find(hs, 0, "Host"));
}

static void has_token(void **state)
{
	static const struct {
		const char *value, *token;
		bool has;
	} cases[] = {
	    {"Upgrade", "upgrade", true},
	    {"keep-alive, Upgrade", "upgrade", true},
	    {"Upgrade, keep-alive", "upgrade", true},
	    {"keep-alive,Upgrade", "upgrade", true},
	    {" , ,\tUPGRADE\t , ", "upgrade", true},
	    {"a,,b", "b", true},
	    {"upgrade2", "upgrade", false},
	    {"xupgrade", "upgrade", false},
	    {"upg", "upgrade", false},
	    {"up grade", "upgrade", false},
	    {"up grade", "up", false},
	    {"upgrade;q=1", "upgrade", false},
	    {"", "upgrade", false},
	    {",,,", "upgrade", false},
	    {"websocket", "websocket", true},
	    {"mqttv3.1, mqtt", "mqtt", true},
	    {"mqttv3.1", "mqtt", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_http_header h = hdr("X", cases[i].value);
		if (vs_http_has_token(&h, cases[i].token) != cases[i].has)
			fail_msg("'%s' has '%s': want %d", cases[i].value, cases[i].token,
				 cases[i].has);
	}
	assert_false(vs_http_has_token(NULL, "upgrade")); /* an absent header has none */
}

static void token_on_guard_page(void **state)
{
	/* The value ends right at a guard page: no byte past it is looked at. */
	static const char v[] = "a, Upgrade";
	uint8_t *g = guard_copy(v, sizeof(v) - 1);
	struct vs_http_header h = {"C", 1, (const char *)g, sizeof(v) - 1};
	assert_true(vs_http_has_token(&h, "upgrade"));
	assert_false(vs_http_has_token(&h, "upgrad"));
	h.value_len = 0;
	assert_false(vs_http_has_token(&h, "a"));
	guard_free(g, sizeof(v) - 1);
}

static void method_is(void **state)
{
	struct parsed p;
	parse_req(&p, S("GET / HTTP/1.1\r\n\r\n"));
	assert_true(vs_http_method_is(&p.req, "GET"));
	assert_false(vs_http_method_is(&p.req, "get")); /* methods are case-sensitive */
	assert_false(vs_http_method_is(&p.req, "GE"));
	assert_false(vs_http_method_is(&p.req, "GETS"));
	done(&p);
}

/* ---------------------------------------------------------------- request paths */

/* vs_http_path on a guard-page copy of target. */
static ssize_t path(const char *target, size_t len, char *out, size_t cap)
{
	uint8_t *g = guard_copy(target, len);
	ssize_t rc = vs_http_path((const char *)g, len, out, cap);
	guard_free(g, len);
	return rc;
}

static void path_decoded(void **state)
{
	static const struct {
		const char *target, *path;
	} cases[] = {
	    {"/", "/"},
	    {"/mqtt", "/mqtt"},
	    {"/mqtt?x=1", "/mqtt"}, /* the query is dropped */
	    {"/a?", "/a"},
	    {"/a?x=/../../etc", "/a"}, /* whatever it holds */
	    {"/a#frag", "/a"},
	    {"/a%20b", "/a b"}, /* percent-decoding */
	    {"/%41%62%7e", "/Ab~"},
	    {"/%2f", "//"}, /* either case of hex digits */
	    {"/%2F", "//"},
	    {"/a%3Fb", "/a?b"}, /* an encoded ? is part of the path */
	    {"/%c3%a4", "/\xc3\xa4"},
	    {"//a//", "//a//"},
	    {"/.hidden", "/.hidden"}, /* dots that are not whole segments */
	    {"/.well-known/x", "/.well-known/x"},
	    {"/a.", "/a."},
	    {"/..a", "/..a"},
	    {"/a..", "/a.."},
	    {"/a/.../b", "/a/.../b"},
	    {"/%2e%2e%2e", "/..."},
	    {"/index.html", "/index.html"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		memset(out, 'Z', sizeof(out));
		ssize_t rc = path(cases[i].target, strlen(cases[i].target), out, sizeof(out));
		if (rc != (ssize_t)strlen(cases[i].path) || strcmp(out, cases[i].path) != 0)
			fail_msg("'%s': %zd '%s', want '%s'", cases[i].target, rc,
				 rc >= 0 ? out : "", cases[i].path);
	}
}

static void path_refused(void **state)
{
	static const struct bad_case cases[] = {
	    {BAD("empty", "")},
	    {BAD("no leading slash", "mqtt")},
	    {BAD("asterisk-form", "*")},
	    {BAD("absolute-form", "http://h/a")},
	    {BAD("authority-form", "h:80")},
	    {BAD("query only", "?a")},
	    {BAD("encoded leading slash", "%2fa")},
	    /* Dot segments, which could name a file outside http_dir. */
	    {BAD("..", "/..")},
	    {BAD("../", "/../etc/passwd")},
	    {BAD("a/..", "/a/..")},
	    {BAD("a/../b", "/a/../b")},
	    {BAD("%2e%2e", "/%2e%2e/etc/passwd")},
	    {BAD("%2E%2E", "/%2E%2E")},
	    {BAD(".%2e", "/.%2e/x")},
	    {BAD("%2e.", "/a/%2e./x")},
	    {BAD("..%2f", "/..%2fetc")},
	    {BAD("%2f..", "/a%2f..")},
	    {BAD(".", "/.")},
	    {BAD("./", "/./a")},
	    {BAD("a/./b", "/a/./b")},
	    {BAD("%2e", "/%2e")},
	    /* Control characters, which would reach log lines. */
	    {BAD("%0a", "/a%0aforged line")},
	    {BAD("%0d", "/a%0d")},
	    {BAD("%1b", "/%1b[2J")},
	    {BAD("%7f", "/a%7f")},
	    {BAD("raw tab", "/a\tb")},
	    {BAD(".. before the query", "/..?x")},
	    /* NULs, backslashes and bad escapes. */
	    {BAD("raw NUL", "/a\0b")},
	    {BAD("%00", "/a%00b")},
	    {BAD("backslash", "/a\\b")},
	    {BAD("%5c", "/a%5cb")},
	    {BAD("%5C..", "/%5C..%5Cx")},
	    {BAD("% at the end", "/a%")},
	    {BAD("% and one digit", "/a%4")},
	    {BAD("% cut by the query", "/a%4?x")},
	    {BAD("% and a non-hex digit", "/a%g1")},
	    {BAD("% and a non-hex second digit", "/a%1g")},
	    {BAD("% and a sign", "/a%+1")},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		ssize_t rc = path(cases[i].s, cases[i].len, out, sizeof(out));
		if (rc != VS_EPROTO)
			fail_msg("%s: %zd, want VS_EPROTO", cases[i].why, rc);
	}
}

static void path_too_long(void **state)
{
	char out[8];
	/* cap counts the NUL: "/abcdef" (7) fits in 8, "/abcdefg" does not. */
	assert_int_equal(path(S("/abcdef"), out, 8), 7);
	assert_string_equal(out, "/abcdef");
	assert_int_equal(path(S("/abcdefg"), out, 8), VS_ETOOBIG);
	/* The decoded length counts, not the target's. */
	assert_int_equal(path(S("/%41%42%43%44%45%46"), out, 8), 7);
	assert_string_equal(out, "/ABCDEF");
	assert_int_equal(path(S("/abcdef?long-query-ignored"), out, 8), 7);
	assert_int_equal(path(S("/"), out, 2), 1);
	assert_int_equal(path(S("/"), out, 1), VS_ETOOBIG);
	assert_int_equal(path(S("/"), out, 0), VS_ETOOBIG);
	char big[1100];
	memset(big, 'a', sizeof(big));
	big[0] = '/';
	char out2[1024];
	assert_int_equal(path(big, sizeof(big), out2, sizeof(out2)), VS_ETOOBIG);
	assert_int_equal(path(big, sizeof(out2) - 1, out2, sizeof(out2)), sizeof(out2) - 1);
}

/* ---------------------------------------------------------------- content types */

static void content_types(void **state)
{
	static const struct {
		const char *name, *type;
	} cases[] = {
	    {"/index.html", "text/html; charset=utf-8"},
	    {"/a/b.HTM", "text/html; charset=utf-8"}, /* any case */
	    {"app.js", "text/javascript; charset=utf-8"},
	    {"m.mjs", "text/javascript; charset=utf-8"},
	    {"s.css", "text/css; charset=utf-8"},
	    {"d.json", "application/json"},
	    {"x.svg", "image/svg+xml"},
	    {"x.png", "image/png"},
	    {"x.jpeg", "image/jpeg"},
	    {"x.wasm", "application/wasm"},
	    {"f.woff2", "font/woff2"},
	    {"f.woff", "font/woff"},
	    {"/x.tar.gz", "application/octet-stream"}, /* the last extension counts */
	    {"/noext", "application/octet-stream"},
	    {"/dir.html/file", "application/octet-stream"}, /* a dot in a directory is none */
	    {"/file.", "application/octet-stream"},
	    {"/x.htmlx", "application/octet-stream"},
	    {"", "application/octet-stream"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(vs_http_content_type(cases[i].name), cases[i].type);
}

/* ---------------------------------------------------------------- request bodies */

/* The framing of the body of the request head s. */
static int body_of(const char *s, enum vs_http_body *kind, uint64_t *len)
{
	struct parsed p;
	parse_req(&p, s, strlen(s));
	assert_true(p.rc > 0);
	int rc = vs_http_body(&p.req, kind, len);
	done(&p);
	return rc;
}

static void body_framing(void **state)
{
	enum vs_http_body k;
	uint64_t n = 99;
	assert_int_equal(body_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &k, &n), 0);
	assert_int_equal(k, VS_HTTP_BODY_LENGTH);
	assert_int_equal(n, 0);
	assert_int_equal(body_of("POST / HTTP/1.1\r\ncontent-length: 42\r\n\r\n", &k, &n), 0);
	assert_int_equal(k, VS_HTTP_BODY_LENGTH);
	assert_int_equal(n, 42);
	/* The same length twice is one length. */
	assert_int_equal(
	    body_of("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", &k, &n),
	    0);
	assert_int_equal(n, 7);
	assert_int_equal(
	    body_of("POST / HTTP/1.1\r\nContent-Length: 9007199254740991\r\n\r\n", &k, &n), 0);
	assert_int_equal(body_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &k, &n),
			 0);
	assert_int_equal(k, VS_HTTP_BODY_CHUNKED);
	assert_int_equal(
	    body_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", &k, &n), 0);
	assert_int_equal(k, VS_HTTP_BODY_CHUNKED);
	assert_int_equal(
	    body_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", &k, &n), 0);
	assert_int_equal(k, VS_HTTP_BODY_CODING);
}

static void body_framing_refused(void **state)
{
	static const char *const bad[] = {
	    "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 9007199254740992\r\n\r\n",     /* 2^53 */
	    "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", /* overflows u64 */
	    "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum vs_http_body k;
		uint64_t n;
		if (body_of(bad[i], &k, &n) != VS_EPROTO)
			fail_msg("accepted: %s", bad[i]);
	}
}

/* ---------------------------------------------------------------- Basic credentials */

static int basic_of(const char *v, char *buf, size_t cap, struct vs_http_basic *out)
{
	size_t len = strlen(v);
	uint8_t *g = guard_copy(v, len);
	int rc = vs_http_basic((const char *)g, len, buf, cap, out);
	guard_free(g, len);
	return rc;
}

static void basic_decoded(void **state)
{
	char buf[64];
	struct vs_http_basic b;
	/* RFC 7617 section 2's example. */
	assert_int_equal(basic_of("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", buf, sizeof(buf), &b), 0);
	assert_string_equal(b.user, "Aladdin");
	assert_int_equal(b.user_len, 7);
	assert_int_equal(b.pw_len, 11);
	assert_memory_equal(b.pw, "open sesame", 11);
	/* Scheme in any case, several spaces; a password with colons; an empty password. */
	assert_int_equal(basic_of("bAsIc   dTpwdzp3Og==", buf, sizeof(buf), &b), 0); /* u:pw:w: */
	assert_string_equal(b.user, "u");
	assert_int_equal(b.pw_len, 5);
	assert_memory_equal(b.pw, "pw:w:", 5);
	assert_int_equal(basic_of("Basic dTo=", buf, sizeof(buf), &b), 0); /* "u:" */
	assert_int_equal(b.pw_len, 0);
	/* Exactly fits: 3 bytes decoded need 4 of buffer (the NUL). */
	assert_int_equal(basic_of("Basic dTp4", buf, 4, &b), 0); /* "u:x" */
	assert_int_equal(basic_of("Basic dTp4", buf, 3, &b), VS_ETOOBIG);
}

static void basic_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "Basic",
	    "Basic ",
	    "Bearer dTpw",
	    "Basicx dTpw",
	    "Basic dTpw=", /* not canonical */
	    "Basic dT pw",
	    "Basic dXNlcg==", /* "user": no colon */
	    "Basic OnB3",     /* ":pw": no user */
	    "Basic dQB4OnB3", /* "u\0x:pw" */
	    "Basic dQF4OnB3", /* "u\1x:pw": a control character in the user */
	    "Basic dTpwAA==", /* "u:p\0": a NUL in the password */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[64];
		struct vs_http_basic b;
		if (basic_of(bad[i], buf, sizeof(buf), &b) != VS_EPROTO)
			fail_msg("accepted: '%s'", bad[i]);
	}
}

static void reasons(void **state)
{
	assert_string_equal(vs_http_reason(101), "Switching Protocols");
	assert_string_equal(vs_http_reason(301), "Moved Permanently"); /* a directory's redirect */
	assert_string_equal(vs_http_reason(404), "Not Found");
	assert_string_equal(vs_http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(vs_http_reason(401), "Unauthorized");
	assert_string_equal(vs_http_reason(411), "Length Required");
	assert_string_equal(vs_http_reason(413), "Content Too Large");
	assert_string_equal(vs_http_reason(501), "Not Implemented");
	assert_string_equal(vs_http_reason(299), "Error");
}

/* vs_http_query: the first parameter of a name, percent-decoded with '+' as a space; a name
 * without '=' has ""; an absent one is -ENOENT; bad escapes, NULs and no room are errors. */
static void query_parameters(void **state)
{
	char out[16];
	const char *q = "prefix=a%2Fb+c&limit=5&flag&limit=9&empty=&pre=x";
	assert_int_equal(vs_http_query(q, "prefix", out, sizeof(out)), 5);
	assert_string_equal(out, "a/b c");
	assert_int_equal(vs_http_query(q, "limit", out, sizeof(out)), 1);
	assert_string_equal(out, "5");
	assert_int_equal(vs_http_query(q, "flag", out, sizeof(out)), 0);
	assert_int_equal(vs_http_query(q, "empty", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(vs_http_query(q, "pre", out, sizeof(out)), 1); /* not a prefix match */
	assert_int_equal(vs_http_query(q, "cursor", out, sizeof(out)), -ENOENT);
	assert_int_equal(vs_http_query("", "a", out, sizeof(out)), -ENOENT);
	assert_int_equal(vs_http_query("a=%zz", "a", out, sizeof(out)), VS_EPROTO);
	assert_int_equal(vs_http_query("a=%2", "a", out, sizeof(out)), VS_EPROTO);
	assert_int_equal(vs_http_query("a=%00", "a", out, sizeof(out)), VS_EPROTO);
	assert_int_equal(vs_http_query("a=0123456789abcdef", "a", out, sizeof(out)), VS_ETOOBIG);
	assert_int_equal(vs_http_query("a=%23", "a", out, 2), 1);
	assert_string_equal(out, "#");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(request_upgrade_crlf),
	    cmocka_unit_test(request_bare_lf),
	    cmocka_unit_test(request_mixed_line_ends),
	    cmocka_unit_test(request_leading_empty_lines),
	    cmocka_unit_test(request_no_headers),
	    cmocka_unit_test(request_returns_head_only),
	    cmocka_unit_test(request_value_whitespace),
	    cmocka_unit_test(request_obs_text_and_tchars),
	    cmocka_unit_test(request_any_minor_version),
	    cmocka_unit_test(request_incomplete),
	    cmocka_unit_test(request_malformed_headers),
	    cmocka_unit_test(request_malformed_request_line),
	    cmocka_unit_test(request_malformed_before_head_ends),
	    cmocka_unit_test(request_header_limit),
	    cmocka_unit_test(response_switching_protocols),
	    cmocka_unit_test(response_forms),
	    cmocka_unit_test(response_malformed),
	    cmocka_unit_test(response_header_limit),
	    cmocka_unit_test(find_header),
	    cmocka_unit_test(has_token),
	    cmocka_unit_test(token_on_guard_page),
	    cmocka_unit_test(method_is),
	    cmocka_unit_test(path_decoded),
	    cmocka_unit_test(path_refused),
	    cmocka_unit_test(path_too_long),
	    cmocka_unit_test(content_types),
	    cmocka_unit_test(body_framing),
	    cmocka_unit_test(body_framing_refused),
	    cmocka_unit_test(basic_decoded),
	    cmocka_unit_test(basic_refused),
	    cmocka_unit_test(reasons),
	    cmocka_unit_test(query_parameters),
	};
	return cmocka_run_group_tests_name("net_http", tests, NULL, NULL);
}
