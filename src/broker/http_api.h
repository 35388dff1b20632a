/*
 * What the HTTP listener serves (protocol http): a table of routes, each a method, a path (exact,
 * or a prefix ending in '/') and a handler. http.c does the HTTP (framing, keep-alive, access)
 * and calls vs_http_api_route() for each request it lets in; the handlers here know nothing of
 * connections or sockets: they read the broker and fill a response. GET /metrics is the first;
 * the JSON API (/api/v1/...) and the dashboard (/) are rows to add.
 *
 * A handler runs on the worker that owns the connection, within its loop turn: it must not block
 * and must take no lock a PUBLISH waits on (read counters and atomics, as sys.c does).
 */
#ifndef VS_BROKER_HTTP_API_H
#define VS_BROKER_HTTP_API_H

#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"

struct vs_worker;

/* A request as a handler sees it: views valid during the call. */
struct vs_http_call {
	const char *method;  /* "GET" (a HEAD is routed as its GET; the body is dropped) */
	const char *path;    /* percent-decoded, without the query */
	const char *query;   /* as sent, without '?'; "" when none */
	const uint8_t *body; /* Content-Length bytes (a POST's), or NULL */
	size_t body_len;
	const char *user;	   /* who authenticated (Basic), or NULL on an anonymous listener */
	const char *if_none_match; /* the If-None-Match header (NUL-terminated), or NULL */
};

/* What a handler answers: status 200 unless it sets another; body appended to `body`. */
struct vs_http_reply {
	int status;
	const char *content_type; /* a constant string */
	struct vs_bytes body;	  /* owned by the caller (http.c) */
	const char *allow;	  /* a 405's Allow header value (a constant string), or NULL */
	const char *cache;	  /* Cache-Control value (a constant string); NULL: no-store */
	const char *etag;	  /* an ETag header value (a constant string), or NULL */
	const char *headers;	  /* more header lines, each ending in CRLF (a constant
				   * string), or NULL */
};

/* Fills reply for call; returns 0, or -ENOMEM (answered 500). */
typedef int (*vs_http_handler)(struct vs_worker *w, const struct vs_http_call *call,
			       struct vs_http_reply *reply);

struct vs_http_route {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* "/metrics" exactly, or "/api/v1/" and everything below it ("/"
			     * itself is exact) */
	vs_http_handler fn;
};

/*
 * The handler for method and path: a route whose path is path (or, for a route path ending in
 * '/', a prefix of it) and whose method is method (a HEAD takes a GET route). NULL when there is
 * none: *status is then 404 (no route has the path) or 405, with the methods that path takes in
 * allow ("GET, HEAD", NUL-terminated, at most cap bytes).
 */
vs_http_handler vs_http_api_route(const char *method, const char *path, int *status, char *allow,
				  size_t cap);

#endif
