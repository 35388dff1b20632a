/*
 * HTTP/1.1 connections: see http.h. A request goes through these steps, each of which may answer
 * it instead of passing it on:
 *   frame    the head parsed (net/http.c), the body's length known and within bounds, the whole
 *            request arrived;
 *   access   anonymous listener, or Basic credentials that an authentication thread accepted
 *            (the connection waits parked meanwhile) for a user in http_admin;
 *   route    the handler of http_api.c for its method and path, whose reply is queued.
 * The request stays unconsumed at the head of the input while its password check runs; the
 * answer re-runs the steps on it with the check's result in hand.
 */
#include "broker/http.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/json.h"
#include "broker/authq.h"
#include "broker/conn.h"
#include "broker/http_api.h"
#include "broker/worker.h"
#include "net/http.h"

/* Reading stops while this much output waits for the client (pipelined requests). */
#define OUT_MAX (1024 * 1024)
/* Longest decoded Basic credentials. */
#define CRED_MAX 1024

struct vs_http_conn {
	struct vs_auth_job *job; /* the password check waited for, or NULL */
	signed char answer;	 /* its result for the request at the head: -1 none, 0, 1 */
	bool closing;		 /* an answer that ends the connection is queued */
	bool blocked;		 /* parked until the output drains (OUT_MAX) */
	bool api;		 /* the request at the head is for /api/: errors in JSON */
	size_t need;		 /* length of the request at the head (head + body), 0 unknown */
	char *cred;		 /* the Authorization value last accepted (kept so that a
				  * keep-alive client is not hashed again on every request) */
	size_t cred_len;
	uint64_t cred_serial; /* the listener's settings it was accepted under (their serial) */
	bool head_checked;    /* the request at the head passed its access check before its body
			       * arrived */
	char why[96];	      /* why the connection ends after its answer */
};

int vs_http_conn_start(struct vs_conn *c)
{
	c->http = calloc(1, sizeof(*c->http));
	if (!c->http)
		return -ENOMEM;
	c->http->answer = -1;
	return 0;
}

static void forget_cred(struct vs_http_conn *h)
{
	if (h->cred) {
		OPENSSL_cleanse(h->cred, h->cred_len);
		free(h->cred);
	}
	h->cred = NULL;
	h->cred_len = 0;
}

void vs_http_conn_free(struct vs_conn *c)
{
	struct vs_http_conn *h = c->http;
	if (!h)
		return;
	if (h->job)
		vs_auth_job_cancel(h->job);
	forget_cred(h);
	free(h);
	c->http = NULL;
}

/* ---- answers ------------------------------------------------------------------------------ */

static void appendf(struct vs_bytes *out, int *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void appendf(struct vs_bytes *out, int *err, const char *fmt, ...)
{
	char buf[2048]; /* an answer's head: the dashboard's carries a CSP of ~250 bytes */
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		*err = VS_ETOOBIG;
	else if (!*err && vs_bytes_append(out, buf, (size_t)n) < 0)
		*err = -ENOMEM;
}

/* What an answer is: its status, headers beyond the usual, body, and whether it ends the
 * connection (and why, for the log). */
struct answer {
	int status;
	const char *type;
	const void *body;
	size_t len;
	const char *extra; /* header lines, each ending in CRLF, or NULL */
	bool head_only;	   /* a HEAD: Content-Length without the body */
	const char *cache; /* Cache-Control, NULL: no-store */
	const char *etag;  /* ETag, or NULL */
	bool close;
	const char *why; /* with close */
};

/* Queues the answer in c's output. Returns 0, or -1 when c was closed (no memory). */
static int send_answer(struct vs_conn *c, const struct answer *a)
{
	struct vs_http_conn *h = c->http;
	int err = 0;
	size_t mark = c->out.len;
	appendf(&c->out, &err,
		"HTTP/1.1 %d %s\r\nServer: viesti\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		"Cache-Control: %s\r\n%s%s%sX-Content-Type-Options: nosniff\r\n%sConnection: %s\r\n"
		"\r\n",
		a->status, vs_http_reason(a->status), a->type, a->len,
		a->cache ? a->cache : "no-store", a->etag ? "ETag: " : "", a->etag ? a->etag : "",
		a->etag ? "\r\n" : "", a->extra ? a->extra : "", a->close ? "close" : "keep-alive");
	if (!err && !a->head_only && a->len && vs_bytes_append(&c->out, a->body, a->len) < 0)
		err = -ENOMEM;
	if (err) {
		c->out.len = mark;
		vs_conn_close(c, -1, "HTTP: out of memory");
		return -1;
	}
	vs_worker_want_flush(c->w, c);
	if (a->close) {
		h->closing = true;
		snprintf(h->why, sizeof(h->why), "HTTP %d: %s", a->status,
			 a->why ? a->why : "done");
		vs_conn_park(c); /* nothing more is read */
	}
	return 0;
}

/* The code of an API error answer for an HTTP status. */
static const char *error_code(int status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 401:
		return "unauthorized";
	case 403:
		return "forbidden";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 411:
		return "length_required";
	case 413:
		return "payload_too_large";
	case 414:
		return "uri_too_long";
	case 431:
		return "headers_too_large";
	case 501:
		return "not_implemented";
	case 503:
		return "unavailable";
	default:
		return "internal_error";
	}
}

/* An error answer with a one-line text body, or for /api/ a JSON one (api.h). */
static int answer_error(struct vs_conn *c, int status, const char *extra, bool close,
			const char *why, bool head_only)
{
	char body[320];
	int n;
	if (c->http->api) {
		struct vs_bytes jb = {0};
		struct vs_json j;
		vs_json_init(&j, &jb);
		vs_json_obj(&j, NULL);
		vs_json_obj(&j, "error");
		vs_json_cstr(&j, "code", error_code(status));
		vs_json_cstr(&j, "message", why);
		vs_json_obj_end(&j);
		vs_json_obj_end(&j);
		n = !j.err && vs_bytes_avail(&jb) < sizeof(body)
			? snprintf(body, sizeof(body), "%.*s\n", (int)vs_bytes_avail(&jb),
				   (const char *)vs_bytes_head(&jb))
			: snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\"}}\n",
				   error_code(status));
		vs_bytes_fini(&jb);
	} else {
		n = snprintf(body, sizeof(body), "%d %s: %s\n", status, vs_http_reason(status),
			     why);
	}
	struct answer a = {.status = status,
			   .type = c->http->api ? "application/json" : "text/plain; charset=utf-8",
			   .body = body,
			   .len = n > 0 ? (size_t)n : 0,
			   .extra = extra,
			   .head_only = head_only,
			   .close = close,
			   .why = why};
	vs_log(c->w->b->log, VS_LOG_DEBUG, "HTTP %s: %d (%s)", c->addr, status, why);
	return send_answer(c, &a);
}

/* An error after which the input cannot be trusted: answered, then the connection ends. */
static int refuse(struct vs_conn *c, int status, const char *why)
{
	return answer_error(c, status, NULL, true, why, false) < 0 ? -1 : 1;
}

/* ---- access ------------------------------------------------------------------------------ */

enum access { LET_IN, ANSWERED, WAITING };

static bool is_admin(const struct vs_config *conf, const char *user)
{
	for (size_t i = 0; i < conf->http_admins.n; i++)
		if (strcmp(conf->http_admins.v[i], user) == 0)
			return true;
	return false;
}

static enum access unauthorized(struct vs_conn *c, const char *why, bool failure, bool head_only,
				bool keep)
{
	if (failure)
		vs_stat_add(&c->w->stats.auth_failures, 1);
	if (failure)
		vs_log(c->w->b->log, VS_LOG_NOTICE, "HTTP %s: refused: %s", c->addr, why);
	/* After a failed check the connection ends, as an MQTT one does: no pipelined guessing,
	 * each guess costs a new connection. */
	answer_error(c, 401, "WWW-Authenticate: Basic realm=\"viesti\"\r\n", failure || !keep, why,
		     head_only);
	return ANSWERED;
}

/* Keeps the credentials a check accepted, for the next request of this connection. */
static void keep_cred(struct vs_http_conn *h, const struct vs_http_header *a, uint64_t serial)
{
	forget_cred(h);
	h->cred = malloc(a->value_len ? a->value_len : 1);
	if (!h->cred)
		return; /* checked again next time */
	memcpy(h->cred, a->value, a->value_len);
	h->cred_len = a->value_len;
	h->cred_serial = serial;
}

/*
 * Whether the request may go on; *user is who it is (NULL on an anonymous listener), in cred.
 * A check's answer for this request (h->answer) is used once; credentials this connection
 * passed before under the same settings are not checked again.
 */
static enum access check_access(struct vs_conn *c, const struct vs_http_request *req, char *cred,
				const char **user, bool head_only, bool keep)
{
	struct vs_http_conn *h = c->http;
	const struct vs_listener_sec *sec = vs_listener_sec(c->listener);
	signed char answer = h->answer;
	h->answer = -1;
	*user = NULL;
	if (sec->allow_anonymous)
		return LET_IN;
	const struct vs_http_header *a = vs_http_header_get(req, "Authorization");
	if (!a)
		return unauthorized(c, "credentials required", false, head_only, keep);
	struct vs_http_basic b;
	if (vs_http_basic(a->value, a->value_len, cred, CRED_MAX, &b) < 0)
		return unauthorized(c, "malformed Basic credentials", true, head_only, keep);
	bool known = h->cred && h->cred_serial == sec->serial && h->cred_len == a->value_len &&
		     memcmp(h->cred, a->value, a->value_len) == 0;
	if (!known && answer < 0) {
		if (!sec->passwd)
			return unauthorized(c, "no password file on this listener", true, head_only,
					    keep);
		h->job = vs_authq_submit(c->w->b, c->w->idx, c->slot, c->id, c->listener, b.user,
					 b.pw, b.pw_len);
		if (!h->job) {
			answer_error(c, 503, NULL, true, "no memory for the password check",
				     head_only);
			return ANSWERED;
		}
		vs_conn_park(c);
		return WAITING;
	}
	if (!known && answer == 0) {
		char why[96];
		snprintf(why, sizeof(why), "bad user or password (user '%.40s')", b.user);
		return unauthorized(c, why, true, head_only, keep);
	}
	if (!known)
		keep_cred(h, a, sec->serial);
	if (!is_admin(c->w->b->conf, b.user)) {
		char why[96];
		snprintf(why, sizeof(why), "user '%.40s' is not an http_admin", b.user);
		answer_error(c, 403, NULL, !keep, why, head_only);
		return ANSWERED;
	}
	*user = b.user;
	return LET_IN;
}

/* ---- routing ----------------------------------------------------------------------------- */

/* Runs the handler of the request's route and queues its reply. */
static void route(struct vs_conn *c, const struct vs_http_request *req, const char *path,
		  const char *user, const uint8_t *body, size_t blen, bool keep)
{
	char method[16], allow[64], query[1024];
	bool head_only = vs_http_method_is(req, "HEAD");
	if (req->method_len >= sizeof(method)) {
		answer_error(c, 501, NULL, !keep, "unknown method", false);
		return;
	}
	memcpy(method, req->method, req->method_len);
	method[req->method_len] = '\0';
	const char *q = memchr(req->target, '?', req->target_len);
	size_t ql = q ? req->target_len - (size_t)(q + 1 - req->target) : 0;
	if (ql >= sizeof(query)) {
		answer_error(c, 414, NULL, !keep, "query longer than 1023 bytes", head_only);
		return;
	}
	snprintf(query, sizeof(query), "%.*s", (int)ql, q ? q + 1 : "");
	int status = 404;
	vs_http_handler fn = vs_http_api_route(method, path, &status, allow, sizeof(allow));
	if (!fn) {
		char extra[96];
		snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
		answer_error(c, status, status == 405 ? extra : NULL, !keep,
			     status == 405 ? "method not allowed here" : "no such resource",
			     head_only);
		return;
	}
	char inm[128] = "";
	const struct vs_http_header *etag = vs_http_header_get(req, "If-None-Match");
	if (etag)
		snprintf(inm, sizeof(inm), "%.*s", (int)etag->value_len, etag->value);
	struct vs_http_call call = {.method = head_only ? "GET" : method,
				    .path = path,
				    .query = query,
				    .body = blen ? body : NULL,
				    .body_len = blen,
				    .user = user,
				    .if_none_match = etag ? inm : NULL};
	struct vs_http_reply reply = {.status = 200, .content_type = "text/plain; charset=utf-8"};
	if (fn(c->w, &call, &reply) < 0) {
		vs_bytes_fini(&reply.body);
		answer_error(c, 500, NULL, !keep, "the handler failed (out of memory)", head_only);
		return;
	}
	char extra[1024];
	snprintf(extra, sizeof(extra), "%s%s%s%s", reply.allow ? "Allow: " : "",
		 reply.allow ? reply.allow : "", reply.allow ? "\r\n" : "",
		 reply.headers ? reply.headers : "");
	struct answer a = {.status = reply.status,
			   .type = reply.content_type,
			   .body = vs_bytes_head(&reply.body),
			   .len = vs_bytes_avail(&reply.body),
			   .extra = extra,
			   .cache = reply.cache,
			   .etag = reply.etag,
			   .head_only = head_only || reply.status == 304,
			   .close = !keep,
			   .why = "Connection: close"};
	vs_log(c->w->b->log, VS_LOG_DEBUG, "HTTP %s: %s %s%s%s: %d", c->addr, method, path,
	       user ? " by " : "", user ? user : "", reply.status);
	send_answer(c, &a);
	vs_bytes_fini(&reply.body);
}

/* ---- framing ----------------------------------------------------------------------------- */

static bool keeps_alive(const struct vs_http_request *req)
{
	const struct vs_http_header *conn = vs_http_header_get(req, "Connection");
	if (req->minor == 0)
		return vs_http_has_token(conn, "keep-alive");
	return !vs_http_has_token(conn, "close");
}

/* The request at the head of buf[0..avail), whose head is hl bytes and body blen: its access,
 * then its route. Returns 1 answered (consume it), 0 waiting for its password check. */
static int handle(struct vs_conn *c, const struct vs_http_request *req, const uint8_t *buf,
		  size_t hl, size_t blen)
{
	bool keep = keeps_alive(req);
	bool head_only = vs_http_method_is(req, "HEAD");
	char path[1024];
	ssize_t pl = vs_http_path(req->target, req->target_len, path, sizeof(path));
	char *cred = malloc(CRED_MAX);
	if (!cred) {
		answer_error(c, 503, NULL, true, "out of memory", head_only);
		return 1;
	}
	const char *user = NULL;
	enum access acc = check_access(c, req, cred, &user, head_only, keep);
	if (acc == LET_IN && pl == VS_ETOOBIG)
		answer_error(c, 414, NULL, !keep, "request target too long", head_only);
	else if (acc == LET_IN && pl < 0)
		answer_error(c, 400, NULL, !keep, "bad request target", head_only);
	else if (acc == LET_IN)
		route(c, req, path, user, buf + hl, blen, keep);
	OPENSSL_cleanse(cred, CRED_MAX);
	free(cred);
	return acc == WAITING ? 0 : 1;
}

/* The access check of a request whose body has not all arrived. Returns 1 when it may go on
 * (h->head_checked), 0 when it waits for its password check, -1 when it was refused (and the
 * connection ends: its body is not read). */
static int check_head(struct vs_conn *c, const struct vs_http_request *req)
{
	char *cred = malloc(CRED_MAX);
	if (!cred) {
		answer_error(c, 503, NULL, true, "out of memory", false);
		return -1;
	}
	const char *user;
	enum access acc = check_access(c, req, cred, &user, vs_http_method_is(req, "HEAD"), false);
	OPENSSL_cleanse(cred, CRED_MAX);
	free(cred);
	if (acc == WAITING)
		return 0;
	if (acc == ANSWERED)
		return -1;
	c->http->head_checked = true;
	return 1;
}

/* Frames the request at the head of src and handles it once whole. Returns > 0 when it was
 * answered (and consumed), 0 when more is needed or it waits, -1 when c was closed. */
static int one_request(struct vs_conn *c, struct vs_bytes *src)
{
	struct vs_http_conn *h = c->http;
	const struct vs_config *conf = c->w->b->conf;
	const uint8_t *buf = vs_bytes_head(src);
	size_t avail = vs_bytes_avail(src);
	struct vs_http_request req;
	ssize_t hl = vs_http_parse_request((const char *)buf, avail, &req);
	h->api = hl > 0 && req.target_len >= 5 && memcmp(req.target, "/api/", 5) == 0;
	if (hl == 0 && avail <= (size_t)conf->http_headers_size)
		return 0;
	if (hl == 0 || hl == VS_ETOOBIG || hl > conf->http_headers_size)
		return refuse(c, 431, "request head larger than http_headers_size");
	if (hl < 0)
		return refuse(c, 400, "malformed request head");
	enum vs_http_body kind;
	uint64_t blen;
	if (vs_http_body(&req, &kind, &blen) < 0)
		return refuse(c, 400, "bad Content-Length or Transfer-Encoding");
	if (kind == VS_HTTP_BODY_CHUNKED)
		return refuse(c, 411, "chunked request bodies are not taken: send Content-Length");
	if (kind == VS_HTTP_BODY_CODING)
		return refuse(c, 501, "unknown transfer coding");
	if (blen > (uint64_t)conf->http_body_size)
		return refuse(c, 413, "request body larger than http_body_size");
	if (req.minor >= 1 && !vs_http_header_get(&req, "Host"))
		return refuse(c, 400, "no Host header (HTTP/1.1)");
	h->need = (size_t)hl + (size_t)blen;
	if (avail < h->need && !h->head_checked) {
		/* Credentials are checked on the head, before a body is waited for: a client
		 * without them cannot make the broker hold its body. */
		int rc = check_head(c, &req);
		if (rc <= 0)
			return rc;
	}
	if (avail < h->need)
		return 0;
	if (handle(c, &req, buf, (size_t)hl, (size_t)blen) == 0)
		return 0;
	if (c->state == VS_CONN_CLOSING)
		return -1;
	vs_bytes_consume(src, h->need);
	h->need = 0;
	h->head_checked = false;
	c->last_rx_ms = c->w->now_ms;
	return 1;
}

int vs_http_input(struct vs_conn *c, struct vs_bytes *src)
{
	struct vs_http_conn *h = c->http;
	while (vs_bytes_avail(src) && !h->closing && !c->parked) {
		if (vs_bytes_avail(&c->out) >= OUT_MAX) {
			/* A client that pipelines requests and does not read the answers. */
			h->blocked = true;
			vs_conn_park(c);
			return 0;
		}
		int rc = one_request(c, src);
		if (rc <= 0)
			return rc;
	}
	return c->state == VS_CONN_CLOSING ? -1 : 0;
}

size_t vs_http_missing(const struct vs_conn *c)
{
	size_t have = vs_bytes_avail(&c->in);
	return c->http->need > have ? c->http->need - have : 0;
}

void vs_http_authenticated(struct vs_conn *c, bool ok)
{
	struct vs_http_conn *h = c->http;
	if (!h->job)
		return;
	vs_auth_job_cancel(h->job); /* done: drops our reference */
	h->job = NULL;
	h->answer = ok;
	vs_conn_unpark(c); /* the request at the head again, with the answer */
}

void vs_http_flushed(struct vs_conn *c)
{
	struct vs_http_conn *h = c->http;
	if (c->state == VS_CONN_CLOSING)
		return;
	c->last_rx_ms = c->w->now_ms; /* a slow reader of a long answer is not idle */
	if (h->closing) {
		vs_conn_close(c, -1, h->why);
	} else if (h->blocked) {
		h->blocked = false;
		vs_conn_unpark(c);
	}
}

bool vs_http_lingers(const struct vs_conn *c)
{
	return c->http && c->http->closing;
}

int vs_http_sweep(struct vs_conn *c)
{
	int t = c->w->b->conf->http_timeout;
	if (c->http->job || c->w->now_ms - c->last_rx_ms <= (int64_t)t * 1000)
		return 0;
	char why[64];
	snprintf(why, sizeof(why), "HTTP: idle for %d s (http_timeout)", t);
	vs_conn_close(c, -1, why);
	return -1;
}
