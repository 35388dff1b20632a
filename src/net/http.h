/*
 * HTTP/1.1 request heads (RFC 9112), as a WebSocket listener reads its upgrade requests and
 * the static files it serves (ws.c), and as the HTTP listener will. A parser in picohttpparser's
 * shape: no allocation, no I/O; the request's parts are views into the caller's buffer, which
 * must outlive them; three outcomes: a whole head of N bytes, need more, malformed.
 *
 * Strict where leniency has been an attack (request smuggling): no whitespace before a colon,
 * no obsolete line folding, no control characters in values, one request line of three parts.
 * Tolerant where RFC 9112 allows it: a bare LF ends a line as CRLF does.
 */
#ifndef VS_NET_HTTP_H
#define VS_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VS_HTTP_MAX_HEADERS 64

struct vs_http_header {
	const char *name; /* as sent (compare without case) */
	size_t name_len;
	const char *value; /* without leading and trailing whitespace */
	size_t value_len;
};

struct vs_http_request {
	const char *method; /* "GET" */
	size_t method_len;
	const char *target; /* "/mqtt?x=1": the request target as sent */
	size_t target_len;
	int minor; /* HTTP/1.<minor> */
	size_t n_headers;
	struct vs_http_header headers[VS_HTTP_MAX_HEADERS];
};

struct vs_http_response {
	int minor;  /* HTTP/1.<minor> */
	int status; /* 101 */
	size_t n_headers;
	struct vs_http_header headers[VS_HTTP_MAX_HEADERS];
};

/* Parses the request head at buf[0..len) (request line, headers, empty line). Returns the head's
 * length (> 0) with *req filled, 0 when the empty line has not arrived yet, VS_EPROTO when the
 * head is malformed, or VS_ETOOBIG when it has more than VS_HTTP_MAX_HEADERS headers. */
ssize_t vs_http_parse_request(const char *buf, size_t len, struct vs_http_request *req);

/* The same for a response head ("HTTP/1.1 101 Switching Protocols" and headers), as a
 * WebSocket client reads the answer to its upgrade. */
ssize_t vs_http_parse_response(const char *buf, size_t len, struct vs_http_response *resp);

/* The first of n headers named name (any case), or NULL. */
const struct vs_http_header *vs_http_find(const struct vs_http_header *headers, size_t n,
					  const char *name);

static inline const struct vs_http_header *vs_http_header_get(const struct vs_http_request *req,
							      const char *name)
{
	return vs_http_find(req->headers, req->n_headers, name);
}

/* Whether a header's comma-separated value lists token (any case): "Connection: keep-alive,
 * Upgrade" has "upgrade". A NULL header has none. */
bool vs_http_has_token(const struct vs_http_header *h, const char *token);

/* Whether the method is m (methods are case-sensitive). */
bool vs_http_method_is(const struct vs_http_request *req, const char *m);

/* The path of a request target, percent-decoded into out (cap bytes, NUL-terminated), without
 * the query. Returns its length, or VS_EPROTO when it is not an origin-form path ("/..."), holds
 * a bad %-escape, a NUL, a backslash, or a "." or ".." segment (a path that could leave the
 * directory it names a file in), or VS_ETOOBIG when it does not fit. */
ssize_t vs_http_path(const char *target, size_t len, char *out, size_t cap);

/* The value of parameter name in a query string (after the '?': "a=1&b=x%2Fy"), the first of
 * that name, percent-decoded ('+' is a space) into out (cap bytes, NUL-terminated; a parameter
 * without '=' has the value ""). Returns its length, -ENOENT when there is no such parameter,
 * VS_EPROTO for a bad %-escape or a NUL, VS_ETOOBIG when it does not fit. */
ssize_t vs_http_query(const char *query, const char *name, char *out, size_t cap);

/* How a request's body is framed (RFC 9112 6.3). */
enum vs_http_body {
	VS_HTTP_BODY_LENGTH,  /* Content-Length bytes (0 without the header) */
	VS_HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked, without Content-Length */
	VS_HTTP_BODY_CODING,  /* another transfer coding */
};

/* The framing of req's body into *kind, and for VS_HTTP_BODY_LENGTH its length into *len.
 * Returns 0, or VS_EPROTO when the framing cannot be trusted: a Content-Length that is not
 * digits (a list included, "5, 5"), headers that disagree, a length above 2^53, or both
 * Content-Length and Transfer-Encoding (a request smuggling vector, RFC 9112 6.1). */
int vs_http_body(const struct vs_http_request *req, enum vs_http_body *kind, uint64_t *len);

/* Credentials of an "Authorization: Basic" header value (RFC 7617): views into the caller's
 * buffer that vs_http_basic() decoded them into. */
struct vs_http_basic {
	const char *user; /* NUL-terminated, without ':' or control characters */
	size_t user_len;
	const uint8_t *pw; /* any bytes but NUL */
	size_t pw_len;
};

/* Decodes value[0..len) ("Basic dXNlcjpwdw==", the scheme in any case) into buf (cap bytes)
 * and points *out into it. Returns 0, or VS_EPROTO when the scheme is not Basic, the base64 is
 * not canonical, the decoded text has no ':', an empty user, or a control character in the
 * user (a NUL anywhere), or VS_ETOOBIG when it does not fit in cap - 1 bytes. */
int vs_http_basic(const char *value, size_t len, char *buf, size_t cap, struct vs_http_basic *out);

/* The Content-Type for a file name by its extension ("text/html; charset=utf-8", ...);
 * "application/octet-stream" when unknown. */
const char *vs_http_content_type(const char *name);

/* The reason phrase of a status code this code sends ("Not Found"), or "Error". */
const char *vs_http_reason(int status);

#endif
