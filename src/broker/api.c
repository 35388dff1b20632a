/*
 * The JSON API: see api.h, and docs/http-api.md for each endpoint. Lists are sorted (clients by
 * id, retained messages by topic) and paginated by cursor: a page ends with "next_cursor", the
 * last key it holds, which the next request passes as ?cursor= to get the keys after it. A
 * cursor stays valid whatever is added or removed meanwhile.
 *
 * A list copies references (sessions, messages) under the lock of the registry or the store,
 * releases it, then sorts and reads each item under its own lock; a PUBLISH waits on none of
 * these locks for longer than a copy.
 */
#include "broker/api.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base64.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/json.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "codec/reason.h"
#include "net/http.h"
#include "session/session.h"
#include "topic/retain.h"
#include "topic/tree.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX     1000
/* Tokens of a POST body: a publish with its properties and a few user properties. */
#define MAX_TOKENS 256
/* Longest client id, cursor, prefix or filter taken from a query string. */
#define PARAM_MAX 1024

/* One request being answered. */
struct api {
	struct vs_worker *w;
	const struct vs_http_call *call;
	struct vs_http_reply *reply;
	struct vs_json j; /* into reply->body */
};

/* ---- replies ----------------------------------------------------------------------------- */

static int done(struct api *a, int status)
{
	a->reply->status = status;
	a->reply->content_type = "application/json";
	if (!a->j.err && vs_bytes_append(&a->reply->body, "\n", 1) < 0)
		return -ENOMEM;
	return a->j.err == -ENOMEM ? -ENOMEM : 0;
}

/* Replaces whatever was written with {"error": {"code": code, "message": ...}}. */
static int fail(struct api *a, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct api *a, int status, const char *code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vs_bytes_fini(&a->reply->body);
	memset(&a->reply->body, 0, sizeof(a->reply->body));
	vs_json_init(&a->j, &a->reply->body);
	vs_json_obj(&a->j, NULL);
	vs_json_obj(&a->j, "error");
	vs_json_cstr(&a->j, "code", code);
	vs_json_cstr(&a->j, "message", msg);
	vs_json_obj_end(&a->j);
	vs_json_obj_end(&a->j);
	return done(a, status);
}

/* A query parameter into out: 1 found, 0 absent, or an answered error (< 0 means -ENOMEM). */
static int param(struct api *a, const char *name, char *out, size_t cap, int *err)
{
	ssize_t n = vs_http_query(a->call->query, name, out, cap);
	if (n == -ENOENT) {
		out[0] = '\0';
		return 0;
	}
	if (n < 0) {
		*err = fail(a, 400, "bad_parameter",
			    "query parameter '%s' is malformed or too long", name);
		return -1;
	}
	return 1;
}

/* ?limit= (1..LIMIT_MAX, default LIMIT_DEFAULT), or an answered error (-1). */
static int limit_param(struct api *a, size_t *limit, int *err)
{
	char v[16];
	*limit = LIMIT_DEFAULT;
	int rc = param(a, "limit", v, sizeof(v), err);
	if (rc <= 0)
		return rc;
	char *end;
	long n = strtol(v, &end, 10);
	if (!v[0] || *end || n < 1 || n > LIMIT_MAX) {
		*err =
		    fail(a, 400, "bad_parameter", "limit must be a number from 1 to %d", LIMIT_MAX);
		return -1;
	}
	*limit = (size_t)n;
	return 1;
}

/* ---- clients ----------------------------------------------------------------------------- */

/* What a client list shows of one session, copied under its lock. */
struct client_info {
	bool connected;
	uint8_t version;
	uint16_t keepalive;
	uint32_t inflight, queued, n_subs, expiry, dropped;
	uint64_t queued_bytes, bytes_in, bytes_out;
	int64_t since; /* connected: since the CONNACK; else offline since */
	char *username;
	char addr[48];
	char listener[112];
};

static void read_client(struct vs_session *s, struct client_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	pthread_mutex_lock(&s->lock);
	const struct vs_conn *c = s->connected ? s->conn : NULL;
	ci->connected = c != NULL;
	ci->version = s->version;
	ci->inflight = s->inflight.count;
	ci->queued = s->queue.count;
	ci->queued_bytes = s->queued_bytes;
	ci->n_subs = vs_session_n_subs(s);
	ci->expiry = s->expiry;
	ci->dropped = s->dropped;
	ci->username = s->username ? strdup(s->username) : NULL;
	ci->since = s->offline_since_wall;
	if (c) {
		/* The fields conn.h lets another thread read under this lock. */
		ci->keepalive = c->keepalive;
		ci->since = c->connected_wall;
		ci->bytes_in = atomic_load_explicit(&c->bytes_in, memory_order_relaxed);
		ci->bytes_out = atomic_load_explicit(&c->bytes_out, memory_order_relaxed);
		snprintf(ci->addr, sizeof(ci->addr), "%s", c->addr);
		snprintf(ci->listener, sizeof(ci->listener), "%s", c->listener->name);
	}
	pthread_mutex_unlock(&s->lock);
}

static const char *version_name(uint8_t v)
{
	return v == VS_V5 ? "5.0" : v == VS_V311 ? "3.1.1" : v == VS_V31 ? "3.1" : NULL;
}

static void write_client(struct vs_json *j, struct vs_session *s)
{
	struct client_info ci;
	read_client(s, &ci);
	vs_json_obj(j, NULL);
	vs_json_str(j, "id", s->client_id, s->id_len);
	vs_json_cstr(j, "username", ci.username);
	vs_json_bool(j, "connected", ci.connected);
	vs_json_cstr(j, "protocol", version_name(ci.version));
	vs_json_u64(j, "protocol_version", ci.version);
	if (ci.connected) {
		vs_json_cstr(j, "address", ci.addr);
		vs_json_cstr(j, "listener", ci.listener);
		vs_json_i64(j, "connected_since", ci.since);
		vs_json_u64(j, "keep_alive", ci.keepalive);
		vs_json_u64(j, "bytes_in", ci.bytes_in);
		vs_json_u64(j, "bytes_out", ci.bytes_out);
	} else {
		vs_json_i64(j, "offline_since", ci.since);
	}
	vs_json_u64(j, "inflight", ci.inflight);
	vs_json_u64(j, "queued", ci.queued);
	vs_json_u64(j, "queued_bytes", ci.queued_bytes);
	vs_json_u64(j, "dropped", ci.dropped);
	vs_json_u64(j, "subscriptions", ci.n_subs);
	if (ci.expiry == UINT32_MAX)
		vs_json_null(j, "session_expiry_interval"); /* never */
	else
		vs_json_u64(j, "session_expiry_interval", ci.expiry);
	vs_json_obj_end(j);
	free(ci.username);
}

static int cmp_session(const void *x, const void *y)
{
	const struct vs_session *a = *(struct vs_session *const *)x;
	const struct vs_session *b = *(struct vs_session *const *)y;
	return strcmp(a->client_id, b->client_id);
}

/* Sift the last of v[0..n) up a max-heap ordered by client id. */
static void heap_up(struct vs_session **v, size_t n)
{
	for (size_t c = n - 1; c > 0;) {
		size_t p = (c - 1) / 2;
		if (strcmp(v[p]->client_id, v[c]->client_id) >= 0)
			break;
		struct vs_session *t = v[p];
		v[p] = v[c];
		v[c] = t;
		c = p;
	}
}

/* Sift v[0] down the max-heap v[0..n). */
static void heap_down(struct vs_session **v, size_t n)
{
	for (size_t p = 0;;) {
		size_t c = 2 * p + 1;
		if (c >= n)
			break;
		if (c + 1 < n && strcmp(v[c + 1]->client_id, v[c]->client_id) > 0)
			c++;
		if (strcmp(v[p]->client_id, v[c]->client_id) >= 0)
			break;
		struct vs_session *t = v[p];
		v[p] = v[c];
		v[c] = t;
		p = c;
	}
}

/*
 * The first `want` sessions, in client id order, whose id starts with prefix and sorts after
 * cursor ("" = from the start); connected ones only unless all. Each comes with a reference;
 * *n gets how many (at most want). NULL on no memory. The walk under the registry lock keeps
 * only a heap of `want` pointers, so a page costs the other threads' CONNECTs one pass over
 * the registry, with no allocation or reference per session.
 */
static struct vs_session **collect_sessions(struct vs_broker *b, const char *prefix,
					    const char *cursor, bool all, size_t want, size_t *n)
{
	size_t plen = strlen(prefix), k = 0;
	struct vs_session **v = malloc(want * sizeof(*v));
	if (!v)
		return NULL;
	pthread_mutex_lock(&b->reg_lock);
	size_t it = 0;
	struct vs_session *s;
	while (vs_registry_next(&b->sessions, &it, &s)) {
		/* connected is read without the lock, as $share does: a client list is a glimpse */
		if (strncmp(s->client_id, prefix, plen) != 0 || strcmp(s->client_id, cursor) <= 0 ||
		    (!all && !__atomic_load_n(&s->connected, __ATOMIC_RELAXED)))
			continue;
		if (k < want) {
			v[k++] = s;
			heap_up(v, k);
		} else if (strcmp(s->client_id, v[0]->client_id) < 0) {
			v[0] = s;
			heap_down(v, k);
		}
	}
	for (size_t i = 0; i < k; i++)
		vs_session_ref(v[i]);
	pthread_mutex_unlock(&b->reg_lock);
	*n = k;
	return v;
}

/* GET /api/v1/clients?limit=&cursor=&prefix=&state=connected|all */
static int list_clients(struct api *a)
{
	char prefix[PARAM_MAX], cursor[PARAM_MAX], state[16];
	size_t limit, n = 0;
	int err = 0;
	if (param(a, "prefix", prefix, sizeof(prefix), &err) < 0 ||
	    param(a, "cursor", cursor, sizeof(cursor), &err) < 0 ||
	    param(a, "state", state, sizeof(state), &err) < 0 || limit_param(a, &limit, &err) < 0)
		return err;
	if (state[0] && strcmp(state, "connected") != 0 && strcmp(state, "all") != 0)
		return fail(a, 400, "bad_parameter", "state must be 'connected' or 'all'");
	/* One more than the page: whether there is a next page. */
	struct vs_session **v =
	    collect_sessions(a->w->b, prefix, cursor, strcmp(state, "all") == 0, limit + 1, &n);
	if (!v)
		return -ENOMEM;
	qsort(v, n, sizeof(*v), cmp_session);
	size_t shown = n < limit ? n : limit;
	vs_json_obj(&a->j, NULL);
	vs_json_arr(&a->j, "clients");
	for (size_t i = 0; i < shown; i++)
		write_client(&a->j, v[i]);
	vs_json_arr_end(&a->j);
	vs_json_u64(&a->j, "count", shown);
	if (n > shown)
		vs_json_cstr(&a->j, "next_cursor", v[shown - 1]->client_id);
	else
		vs_json_null(&a->j, "next_cursor");
	vs_json_obj_end(&a->j);
	for (size_t i = 0; i < n; i++)
		vs_session_unref(v[i]);
	free(v);
	return done(a, 200);
}

/* The session of client id, with a reference, or NULL. */
static struct vs_session *find_session(struct vs_broker *b, const char *id)
{
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, id, strlen(id));
	if (s)
		vs_session_ref(s);
	pthread_mutex_unlock(&b->reg_lock);
	return s;
}

static int unknown_client(struct api *a, const char *id)
{
	return fail(a, 404, "unknown_client", "no client or session with id '%.200s'", id);
}

/* GET /api/v1/clients/ID */
static int get_client(struct api *a, const char *id)
{
	struct vs_session *s = find_session(a->w->b, id);
	if (!s)
		return unknown_client(a, id);
	write_client(&a->j, s);
	vs_session_unref(s);
	return done(a, 200);
}

/* GET /api/v1/clients/ID/subscriptions */
static int client_subs(struct api *a, const char *id)
{
	struct vs_session *s = find_session(a->w->b, id);
	if (!s)
		return unknown_client(a, id);
	vs_json_obj(&a->j, NULL);
	vs_json_str(&a->j, "id", s->client_id, s->id_len);
	vs_json_arr(&a->j, "subscriptions");
	/* Written under the session's lock: filters are copied once, into the answer. */
	pthread_mutex_lock(&s->lock);
	uint32_t n = vs_session_n_subs(s);
	for (uint32_t i = 0; i < n; i++) {
		const struct vs_session_sub *sub = &s->subs->v[i];
		vs_json_obj(&a->j, NULL);
		vs_json_str(&a->j, "filter", sub->filter, sub->len);
		vs_json_u64(&a->j, "qos", sub->qos);
		/* The 5.0 Subscription Options byte [MQTT-3.8.3.1]. */
		vs_json_bool(&a->j, "no_local", sub->options & 0x04);
		vs_json_bool(&a->j, "retain_as_published", sub->options & 0x08);
		vs_json_u64(&a->j, "retain_handling", (sub->options >> 4) & 3);
		if (sub->sub_id)
			vs_json_u64(&a->j, "subscription_identifier", sub->sub_id);
		vs_json_obj_end(&a->j);
	}
	pthread_mutex_unlock(&s->lock);
	vs_json_arr_end(&a->j);
	vs_json_u64(&a->j, "count", n);
	vs_json_obj_end(&a->j);
	vs_session_unref(s);
	return done(a, 200);
}

/* POST /api/v1/clients/ID/disconnect[?session=end] */
static int disconnect(struct api *a, const char *id)
{
	char sess[16];
	int err = 0;
	if (param(a, "session", sess, sizeof(sess), &err) < 0)
		return err;
	if (sess[0] && strcmp(sess, "end") != 0 && strcmp(sess, "keep") != 0)
		return fail(a, 400, "bad_parameter", "session must be 'end' or 'keep'");
	bool end = strcmp(sess, "end") == 0;
	struct vs_session *s = find_session(a->w->b, id);
	if (!s)
		return unknown_client(a, id);
	struct vs_mail m = {
	    .type = VS_MAIL_ADMIN_KICK, .reason = VS_RC_ADMIN_ACTION, .end_session = end};
	int owner = -1;
	pthread_mutex_lock(&s->lock);
	if (s->connected && s->owner) {
		owner = ((struct vs_worker *)s->owner)->idx;
		m.slot = s->conn_slot;
		m.conn_id = s->conn_id;
	}
	pthread_mutex_unlock(&s->lock);
	if (owner >= 0 && vs_worker_post(a->w, owner, &m) < 0) {
		vs_session_unref(s);
		return -ENOMEM;
	}
	if (owner < 0 && end)
		vs_router_end_session(a->w, s); /* an offline session */
	vs_session_unref(s);
	if (owner < 0 && !end)
		return fail(a, 409, "not_connected",
			    "client '%.200s' is not connected (its session stays: "
			    "?session=end ends it)",
			    id);
	vs_log(a->w->b->log, VS_LOG_NOTICE, "HTTP API%s%s: disconnect client %s%s",
	       a->call->user ? " by " : "", a->call->user ? a->call->user : "", id,
	       end ? ", ending its session" : "");
	vs_json_obj(&a->j, NULL);
	vs_json_cstr(&a->j, "id", id);
	vs_json_bool(&a->j, "disconnected", owner >= 0);
	vs_json_bool(&a->j, "session_ended", end);
	vs_json_obj_end(&a->j);
	return done(a, owner >= 0 ? 202 : 200);
}

/* ---- retained messages ------------------------------------------------------------------- */

struct msg_vec {
	struct vs_msg **v;
	size_t n, cap;
	const char *after; /* only topics after this one (a cursor), or "" */
	int64_t now_ms;
	bool nomem;
};

static int cmp_topic(const struct vs_buf *a, const struct vs_buf *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->p, b->p, n);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int cmp_msg(const void *x, const void *y)
{
	return cmp_topic(&(*(struct vs_msg *const *)x)->topic,
			 &(*(struct vs_msg *const *)y)->topic);
}

/* vs_retain_match's callback, under the store's read lock: a reference to each message. */
static void collect_msg(void *ctx, void *msg)
{
	struct msg_vec *mv = ctx;
	struct vs_msg *m = msg;
	struct vs_buf after = {(const uint8_t *)mv->after, strlen(mv->after)};
	uint32_t left;
	if ((after.len && cmp_topic(&m->topic, &after) <= 0) ||
	    vs_msg_expired(m, mv->now_ms, &left))
		return;
	if (mv->n == mv->cap) {
		size_t cap = mv->cap ? mv->cap * 2 : 64;
		struct vs_msg **v = realloc(mv->v, cap * sizeof(*v));
		if (!v) {
			mv->nomem = true;
			return;
		}
		mv->v = v;
		mv->cap = cap;
	}
	mv->v[mv->n++] = vs_msg_ref(m);
}

static void msg_vec_fini(struct msg_vec *mv)
{
	for (size_t i = 0; i < mv->n; i++)
		vs_msg_unref(mv->v[i]);
	free(mv->v);
}

/* ?filter= (required), a valid topic filter and not a $share one: 1, or an answered error. */
static int filter_param(struct api *a, char *filter, size_t cap, int *err)
{
	int rc = param(a, "filter", filter, cap, err);
	if (rc < 0)
		return -1;
	if (rc == 0 || !vs_topic_filter_valid((const uint8_t *)filter, strlen(filter)) ||
	    strncmp(filter, "$share/", 7) == 0) {
		*err =
		    fail(a, 400, "bad_parameter",
			 "filter must be a topic filter (such as 'sensors/#'), not a $share one");
		return -1;
	}
	return 1;
}

/* A binary value as UTF-8 text or base64 (base64 forced, or when it is not UTF-8). */
static int write_bytes(struct vs_json *j, const char *key, const char *enc_key,
		       const struct vs_buf *v, bool base64)
{
	if (!base64 && vs_utf8_valid(v->p, v->len)) {
		vs_json_str(j, key, (const char *)v->p, v->len);
		vs_json_cstr(j, enc_key, "utf8");
		return 0;
	}
	char *b = malloc(vs_b64_len(v->len, VS_B64_PAD) + 1);
	if (!b)
		return -ENOMEM;
	size_t n = vs_b64_encode(v->p, v->len, b, VS_B64_PAD);
	vs_json_str(j, key, b, n);
	vs_json_cstr(j, enc_key, "base64");
	free(b);
	return 0;
}

static int write_retained(struct api *a, struct vs_msg *m, bool base64)
{
	struct vs_json *j = &a->j;
	vs_json_obj(j, NULL);
	vs_json_str(j, "topic", (const char *)m->topic.p, m->topic.len);
	if (write_bytes(j, "payload", "encoding", &m->payload, base64) < 0)
		return -ENOMEM;
	vs_json_u64(j, "size", m->payload.len);
	vs_json_u64(j, "qos", m->qos);
	vs_json_obj(j, "properties");
	if (m->has_payload_format)
		vs_json_u64(j, "payload_format_indicator", m->payload_format);
	uint32_t left;
	if (m->has_expiry && !vs_msg_expired(m, a->w->now_ms, &left))
		vs_json_u64(j, "message_expiry_interval", left);
	if (m->content_type.p)
		vs_json_str(j, "content_type", (const char *)m->content_type.p,
			    m->content_type.len);
	if (m->response_topic.len)
		vs_json_str(j, "response_topic", (const char *)m->response_topic.p,
			    m->response_topic.len);
	if (m->correlation_data.p && write_bytes(j, "correlation_data", "correlation_data_encoding",
						 &m->correlation_data, base64) < 0)
		return -ENOMEM;
	vs_json_obj_end(j);
	vs_json_obj_end(j);
	return 0;
}

/* GET /api/v1/retained?filter=&limit=&cursor=&encoding=auto|base64 */
static int list_retained(struct api *a)
{
	char filter[PARAM_MAX], cursor[PARAM_MAX], enc[16];
	size_t limit;
	int err = 0;
	if (filter_param(a, filter, sizeof(filter), &err) < 0 ||
	    param(a, "cursor", cursor, sizeof(cursor), &err) < 0 ||
	    param(a, "encoding", enc, sizeof(enc), &err) < 0 || limit_param(a, &limit, &err) < 0)
		return err;
	if (enc[0] && strcmp(enc, "auto") != 0 && strcmp(enc, "base64") != 0)
		return fail(a, 400, "bad_parameter", "encoding must be 'auto' or 'base64'");
	struct msg_vec mv = {.after = cursor, .now_ms = a->w->now_ms};
	vs_retain_match(a->w->b->retain, filter, strlen(filter), collect_msg, &mv);
	if (mv.nomem) {
		msg_vec_fini(&mv);
		return -ENOMEM;
	}
	if (mv.n > 1)
		qsort(mv.v, mv.n, sizeof(*mv.v), cmp_msg);
	size_t shown = mv.n < limit ? mv.n : limit;
	int rc = 0;
	vs_json_obj(&a->j, NULL);
	vs_json_arr(&a->j, "retained");
	for (size_t i = 0; i < shown && rc == 0; i++)
		rc = write_retained(a, mv.v[i], strcmp(enc, "base64") == 0);
	vs_json_arr_end(&a->j);
	vs_json_u64(&a->j, "count", shown);
	if (mv.n > shown)
		vs_json_str(&a->j, "next_cursor", (const char *)mv.v[shown - 1]->topic.p,
			    mv.v[shown - 1]->topic.len);
	else
		vs_json_null(&a->j, "next_cursor");
	vs_json_obj_end(&a->j);
	msg_vec_fini(&mv);
	return rc < 0 ? rc : done(a, 200);
}

/* DELETE /api/v1/retained?filter= : every retained message the filter matches. */
static int delete_retained(struct api *a)
{
	char filter[PARAM_MAX];
	int err = 0;
	if (filter_param(a, filter, sizeof(filter), &err) < 0)
		return err;
	struct msg_vec mv = {.after = "", .now_ms = a->w->now_ms};
	struct vs_retain *r = a->w->b->retain;
	vs_retain_match(r, filter, strlen(filter), collect_msg, &mv);
	if (mv.nomem) {
		msg_vec_fini(&mv);
		return -ENOMEM;
	}
	/* Removed one by one, as an empty retained PUBLISH would [MQTT-3.3.1-6], and recorded
	 * for persistence; a message retained on one of these topics meanwhile goes too. */
	for (size_t i = 0; i < mv.n; i++) {
		uint64_t version = 0;
		struct vs_msg *m = mv.v[i];
		vs_retain_put(r, (const char *)m->topic.p, m->topic.len, NULL, &version);
		vs_bp_retain(a->w, m, false, version);
	}
	vs_log(a->w->b->log, VS_LOG_NOTICE, "HTTP API%s%s: deleted %zu retained message(s) of %s",
	       a->call->user ? " by " : "", a->call->user ? a->call->user : "", mv.n, filter);
	vs_json_obj(&a->j, NULL);
	vs_json_cstr(&a->j, "filter", filter);
	vs_json_u64(&a->j, "deleted", mv.n);
	vs_json_obj_end(&a->j);
	msg_vec_fini(&mv);
	return done(a, 200);
}

/* ---- publish ----------------------------------------------------------------------------- */

/* A parsed POST body and what was decoded from it (freed by body_fini). */
struct body {
	const char *buf;
	struct vs_json_tok *t;
	int n;
	char *strs[8]; /* unescaped strings */
	int n_strs;
};

static void body_fini(struct body *b)
{
	for (int i = 0; i < b->n_strs; i++)
		free(b->strs[i]);
	free(b->t);
}

/* The string member key of object obj, unescaped: 1 (in *out, *len), 0 absent, -1 not a
 * string, -ENOMEM. */
static int body_str(struct body *b, int obj, const char *key, char **out, size_t *len)
{
	int i = vs_json_get(b->buf, b->t, obj, key);
	if (i < 0)
		return 0;
	if (b->t[i].type != VS_JSON_STRING)
		return -1;
	if (b->n_strs == (int)(sizeof(b->strs) / sizeof(b->strs[0])))
		return -ENOMEM;
	size_t cap = b->t[i].end - b->t[i].start + 1;
	char *s = malloc(cap);
	if (!s)
		return -ENOMEM;
	b->strs[b->n_strs++] = s;
	ssize_t n = vs_json_unescape(b->buf, &b->t[i], s, cap);
	if (n < 0)
		return -1;
	*out = s;
	*len = (size_t)n;
	return 1;
}

/* What a POST /api/v1/publish asks for. */
struct pub_req {
	char *topic, *payload;
	size_t topic_len, payload_len;
	uint64_t qos;
	bool retain;
	struct vs_props props;
	uint8_t *users; /* user properties, encoded (0x26 entries) */
};

/* Decodes base64 in place when enc is "base64". Returns 0, or -1 when it is not base64. */
static int decode_b64(char *s, size_t *len)
{
	ssize_t n = vs_b64_decode(s, *len, (uint8_t *)s, *len + 1, VS_B64_PAD);
	if (n < 0)
		return -1;
	*len = (size_t)n;
	return 0;
}

/* user_properties: [["key", "value"], ...]. Returns 0, or a message for a 400 in *why. */
static int user_props(struct body *b, int props, struct pub_req *p, const char **why)
{
	int arr = vs_json_get(b->buf, b->t, props, "user_properties");
	if (arr < 0)
		return 0;
	*why = "user_properties must be an array of [\"name\", \"value\"] pairs";
	if (b->t[arr].type != VS_JSON_ARRAY)
		return -1;
	size_t cap = (size_t)(b->t[arr].end - b->t[arr].start) + 5 * b->t[arr].size;
	p->users = malloc(cap ? cap : 1);
	if (!p->users)
		return -ENOMEM;
	size_t len = 0;
	uint32_t i = (uint32_t)arr + 1;
	for (uint32_t k = 0; k < b->t[arr].size; k++, i = b->t[i].next) {
		const struct vs_json_tok *pair = &b->t[i];
		if (pair->type != VS_JSON_ARRAY || pair->size != 2 ||
		    b->t[i + 1].type != VS_JSON_STRING || b->t[i + 2].type != VS_JSON_STRING)
			return -1;
		p->users[len++] = VS_PROP_USER;
		for (int s = 1; s <= 2; s++) {
			ssize_t n = vs_json_unescape(b->buf, &b->t[i + s],
						     (char *)p->users + len + 2, cap - len - 2);
			if (n < 0 || n > 65535 || !vs_utf8_valid(p->users + len + 2, (size_t)n))
				return -1;
			p->users[len] = (uint8_t)(n >> 8);
			p->users[len + 1] = (uint8_t)n;
			len += 2 + (size_t)n;
		}
	}
	p->props.user_raw.p = p->users;
	p->props.user_raw.len = len;
	p->props.n_user = b->t[arr].size;
	return 0;
}

/* The properties object. Returns 0, -1 with *why, or -ENOMEM. */
static int pub_props(struct body *b, struct pub_req *p, const char **why)
{
	int o = vs_json_get(b->buf, b->t, 0, "properties");
	if (o < 0)
		return 0;
	*why = "properties must be an object";
	if (b->t[o].type != VS_JSON_OBJECT)
		return -1;
	struct vs_props *pr = &p->props;
	char *s;
	size_t len;
	int rc, i;
	uint64_t v;
	*why = "content_type must be a string";
	if ((rc = body_str(b, o, "content_type", &s, &len)) < 0)
		return rc;
	if (rc > 0) {
		pr->present |= 1ull << VS_PROP_CONTENT_TYPE;
		pr->content_type = (struct vs_buf){(const uint8_t *)s, len};
	}
	*why = "response_topic must be a topic name";
	if ((rc = body_str(b, o, "response_topic", &s, &len)) < 0)
		return rc;
	if (rc > 0 && !vs_topic_name_valid((const uint8_t *)s, len))
		return -1;
	if (rc > 0) {
		pr->present |= 1ull << VS_PROP_RESPONSE_TOPIC;
		pr->response_topic = (struct vs_buf){(const uint8_t *)s, len};
	}
	*why = "correlation_data must be a string";
	if ((rc = body_str(b, o, "correlation_data", &s, &len)) < 0)
		return rc;
	if (rc > 0) {
		pr->present |= 1ull << VS_PROP_CORRELATION_DATA;
		pr->correlation_data = (struct vs_buf){(const uint8_t *)s, len};
	}
	*why = "message_expiry_interval must be a whole number of seconds (up to 4294967295)";
	if ((i = vs_json_get(b->buf, b->t, o, "message_expiry_interval")) >= 0) {
		if (vs_json_uint(b->buf, &b->t[i], UINT32_MAX, &v) < 0)
			return -1;
		pr->present |= 1ull << VS_PROP_MESSAGE_EXPIRY;
		pr->message_expiry = (uint32_t)v;
	}
	*why = "payload_format_indicator must be 0 or 1";
	if ((i = vs_json_get(b->buf, b->t, o, "payload_format_indicator")) >= 0) {
		if (vs_json_uint(b->buf, &b->t[i], 1, &v) < 0)
			return -1;
		pr->present |= 1ull << VS_PROP_PAYLOAD_FORMAT;
		pr->payload_format = (uint8_t)v;
	}
	return user_props(b, o, p, why);
}

/* The body of a publish into p. Returns 0, -1 with *why (a 400), or -ENOMEM. */
static int pub_parse(struct body *b, struct pub_req *p, const char **why)
{
	char *enc = NULL;
	size_t enc_len = 0;
	int rc, i;
	*why = "the body must be a JSON object";
	if (b->t[0].type != VS_JSON_OBJECT)
		return -1;
	*why = "topic must be a topic name without wildcards, not under $SYS";
	if ((rc = body_str(b, 0, "topic", &p->topic, &p->topic_len)) <= 0)
		return rc == 0 ? -1 : rc;
	if (!vs_topic_name_valid((const uint8_t *)p->topic, p->topic_len) ||
	    strncmp(p->topic, "$SYS", 4) == 0)
		return -1;
	*why = "payload must be a string";
	if ((rc = body_str(b, 0, "payload", &p->payload, &p->payload_len)) < 0)
		return rc;
	*why = "payload_encoding must be 'utf8' or 'base64'";
	if ((rc = body_str(b, 0, "payload_encoding", &enc, &enc_len)) < 0)
		return rc;
	if (rc > 0 && strcmp(enc, "utf8") != 0 && strcmp(enc, "base64") != 0)
		return -1;
	*why = "payload is not valid base64";
	if (rc > 0 && p->payload && strcmp(enc, "base64") == 0 &&
	    decode_b64(p->payload, &p->payload_len) < 0)
		return -1;
	*why = "qos must be 0, 1 or 2";
	if ((i = vs_json_get(b->buf, b->t, 0, "qos")) >= 0 &&
	    vs_json_uint(b->buf, &b->t[i], 2, &p->qos) < 0)
		return -1;
	*why = "retain must be true or false";
	if ((i = vs_json_get(b->buf, b->t, 0, "retain")) >= 0) {
		if (b->t[i].type != VS_JSON_TRUE && b->t[i].type != VS_JSON_FALSE)
			return -1;
		p->retain = b->t[i].type == VS_JSON_TRUE;
	}
	return pub_props(b, p, why);
}

/* Parses the request's body as JSON into b. Returns 0, or an answered error (< 0: -ENOMEM). */
static int parse_body(struct api *a, struct body *b, int *err)
{
	memset(b, 0, sizeof(*b));
	b->buf = (const char *)a->call->body;
	b->t = malloc(MAX_TOKENS * sizeof(*b->t));
	if (!b->t) {
		*err = -ENOMEM;
		return -1;
	}
	b->n = vs_json_parse(b->buf ? b->buf : "", a->call->body_len, b->t, MAX_TOKENS);
	if (b->n == VS_ETOOBIG) {
		*err = fail(a, 413, "too_complex", "the JSON body has more than %d values",
			    MAX_TOKENS);
		return -1;
	}
	if (b->n < 0) {
		*err = fail(a, 400, "malformed_json", "the body is not valid JSON");
		return -1;
	}
	return 0;
}

/* POST /api/v1/publish */
static int publish(struct api *a)
{
	struct body b;
	int err = 0;
	if (parse_body(a, &b, &err) < 0) {
		body_fini(&b);
		return err;
	}
	struct pub_req p = {0};
	const char *why = "";
	int rc = pub_parse(&b, &p, &why);
	if (rc == -1) {
		rc = fail(a, 400, "bad_request", "%s", why);
		goto out;
	}
	if (rc < 0)
		goto out;
	struct vs_buf origin = {(const uint8_t *)"", 0};
	struct vs_msg *m = vs_msg_make(p.topic, p.topic_len, p.payload, p.payload_len,
				       (uint8_t)p.qos, p.retain, &p.props, &origin, a->w->now_ms);
	if (!m) {
		rc = -ENOMEM;
		goto out;
	}
	int delivered = vs_route(a->w, m, NULL);
	vs_msg_unref(m);
	vs_log(a->w->b->log, VS_LOG_INFO,
	       "HTTP API%s%s: published to %.*s (QoS %u%s), %d delivery(ies)",
	       a->call->user ? " by " : "", a->call->user ? a->call->user : "", (int)p.topic_len,
	       p.topic, (unsigned)p.qos, p.retain ? ", retained" : "", delivered);
	vs_json_obj(&a->j, NULL);
	vs_json_str(&a->j, "topic", p.topic, p.topic_len);
	vs_json_i64(&a->j, "delivered", delivered > 0 ? delivered : 0);
	vs_json_obj_end(&a->j);
	rc = done(a, 200);
out:
	free(p.users);
	body_fini(&b);
	return rc;
}

/* ---- stats and reload -------------------------------------------------------------------- */

static const char *protocol_name(int p)
{
	switch (p) {
	case VS_LPROTO_WEBSOCKETS:
		return "websockets";
	case VS_LPROTO_MQTTSN:
		return "mqttsn";
	case VS_LPROTO_HTTP:
		return "http";
	default:
		return "mqtt";
	}
}

static void write_listeners(struct vs_json *j, struct vs_broker *b)
{
	vs_json_arr(j, "listeners");
	for (size_t i = 0; i < b->n_listeners; i++) {
		const struct vs_listener *l = &b->listeners[i];
		vs_json_obj(j, NULL);
		vs_json_cstr(j, "name", l->name);
		vs_json_cstr(j, "protocol", protocol_name(l->conf->protocol));
		vs_json_i64(j, "port", l->conf->port);
		vs_json_bool(j, "tls", l->tls);
		if (l->ws)
			vs_json_cstr(j, "websocket_path", l->ws_conf.path);
		vs_json_i64(j, "connections",
			    atomic_load_explicit(&l->connections, memory_order_relaxed));
		vs_json_u64(j, "connections_total",
			    atomic_load_explicit(&l->accepted, memory_order_relaxed));
		vs_json_obj_end(j);
	}
	vs_json_arr_end(j);
}

static uint64_t resident_bytes(struct vs_broker *b)
{
	char buf[128];
	unsigned long long size, resident;
	ssize_t n = b->statm_fd >= 0 ? pread(b->statm_fd, buf, sizeof(buf) - 1, 0) : -1;
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* GET /api/v1/stats */
static int stats(struct api *a)
{
	struct vs_broker *b = a->w->b;
	struct vs_json *j = &a->j;
	struct vs_stats st;
	vs_broker_stats(b, &st);
	int64_t queued = b->restored_queued + (int64_t)st.queued;
	int64_t inflight = b->restored_inflight + (int64_t)st.inflight;
	vs_json_obj(j, NULL);
	vs_json_cstr(j, "version", VS_VERSION);
	vs_json_i64(j, "time", vs_wall_s());
	vs_json_i64(j, "start_time", b->start_wall);
	vs_json_i64(j, "uptime_seconds", (a->w->now_ms - b->start_ms) / 1000);
	vs_json_i64(j, "clients_connected",
		    atomic_load_explicit(&b->clients_connected, memory_order_relaxed));
	vs_json_u64(j, "sessions", atomic_load_explicit(&b->n_sessions, memory_order_relaxed));
	vs_json_u64(j, "subscriptions", vs_tree_count(b->tree));
	vs_json_u64(j, "retained_messages", vs_retain_count(b->retain));
	vs_json_i64(j, "queued_messages", queued > 0 ? queued : 0);
	vs_json_i64(j, "inflight_messages", inflight > 0 ? inflight : 0);
	vs_json_obj(j, "messages");
	vs_json_u64(j, "received", st.pub_received);
	vs_json_u64(j, "sent", st.pub_sent);
	vs_json_u64(j, "dropped", st.pub_dropped);
	vs_json_obj_end(j);
	vs_json_obj(j, "bytes");
	vs_json_u64(j, "received", st.bytes_received);
	vs_json_u64(j, "sent", st.bytes_sent);
	vs_json_obj_end(j);
	vs_json_obj(j, "rates"); /* per second, over the last second */
	static const char *names[] = {"messages_received", "messages_sent", "bytes_received",
				      "bytes_sent"};
	for (int i = 0; i < 4; i++)
		vs_json_u64(j, names[i], atomic_load_explicit(&b->rate[i], memory_order_relaxed));
	vs_json_obj_end(j);
	vs_json_u64(j, "auth_failures", st.auth_failures);
	vs_json_u64(j, "memory_resident_bytes", resident_bytes(b));
	vs_json_arr(j, "threads");
	for (int i = 0; i < b->n_workers; i++) {
		vs_json_obj(j, NULL);
		vs_json_i64(j, "thread", i);
		vs_json_double(j, "load",
			       atomic_load_explicit(&b->workers[i].th.load, memory_order_relaxed) /
				   1000.0);
		vs_json_obj_end(j);
	}
	vs_json_arr_end(j);
	write_listeners(j, b);
	vs_json_obj_end(j);
	return done(a, 200);
}

/* POST /api/v1/reload: as SIGHUP, which the main thread takes (cmd/broker.c). */
static int reload(struct api *a)
{
	vs_log(a->w->b->log, VS_LOG_NOTICE, "HTTP API%s%s: reload asked",
	       a->call->user ? " by " : "", a->call->user ? a->call->user : "");
	if (kill(getpid(), SIGHUP) < 0)
		return fail(a, 500, "internal_error", "could not signal the broker");
	vs_json_obj(&a->j, NULL);
	vs_json_bool(&a->j, "reload", true);
	vs_json_obj_end(&a->j);
	return done(a, 202);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

enum ep {
	EP_NONE,
	EP_CLIENTS,
	EP_CLIENT,
	EP_SUBS,
	EP_KICK,
	EP_RETAINED,
	EP_PUBLISH,
	EP_STATS,
	EP_RELOAD
};

/* The endpoint of path (after /api/v1), with a client id into id. */
static enum ep endpoint(const char *path, char *id, size_t cap)
{
	static const struct {
		const char *path;
		enum ep ep;
	} fixed[] = {{"/clients", EP_CLIENTS},
		     {"/retained", EP_RETAINED},
		     {"/publish", EP_PUBLISH},
		     {"/stats", EP_STATS},
		     {"/reload", EP_RELOAD}};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(path, fixed[i].path) == 0)
			return fixed[i].ep;
	if (strncmp(path, "/clients/", 9) != 0 || !path[9])
		return EP_NONE;
	const char *rest = path + 9;
	size_t n = strlen(rest);
	enum ep ep = EP_CLIENT;
	static const char subs[] = "/subscriptions", kick[] = "/disconnect";
	if (n > sizeof(subs) - 1 && strcmp(rest + n - (sizeof(subs) - 1), subs) == 0)
		n -= sizeof(subs) - 1, ep = EP_SUBS;
	else if (n > sizeof(kick) - 1 && strcmp(rest + n - (sizeof(kick) - 1), kick) == 0)
		n -= sizeof(kick) - 1, ep = EP_KICK;
	if (n >= cap)
		return EP_NONE;
	memcpy(id, rest, n);
	id[n] = '\0';
	return ep;
}

/* The methods each endpoint takes. */
static const char *allowed(enum ep ep)
{
	switch (ep) {
	case EP_CLIENTS:
	case EP_CLIENT:
	case EP_SUBS:
	case EP_STATS:
		return "GET, HEAD";
	case EP_RETAINED:
		return "GET, HEAD, DELETE";
	default:
		return "POST";
	}
}

static int run(struct api *a, enum ep ep, const char *id)
{
	bool get = strcmp(a->call->method, "GET") == 0;
	bool post = strcmp(a->call->method, "POST") == 0;
	bool del = strcmp(a->call->method, "DELETE") == 0;
	switch (ep) {
	case EP_CLIENTS:
		return get ? list_clients(a) : 1;
	case EP_CLIENT:
		return get ? get_client(a, id) : 1;
	case EP_SUBS:
		return get ? client_subs(a, id) : 1;
	case EP_KICK:
		return post ? disconnect(a, id) : 1;
	case EP_RETAINED:
		return get ? list_retained(a) : del ? delete_retained(a) : 1;
	case EP_PUBLISH:
		return post ? publish(a) : 1;
	case EP_STATS:
		return get ? stats(a) : 1;
	case EP_RELOAD:
		return post ? reload(a) : 1;
	default:
		return 1;
	}
}

int vs_api_handle(struct vs_worker *w, const struct vs_http_call *call, struct vs_http_reply *reply)
{
	struct api a = {.w = w, .call = call, .reply = reply};
	vs_json_init(&a.j, &reply->body);
	char id[PARAM_MAX];
	enum ep ep = strncmp(call->path, "/api/v1", 7) == 0
			 ? endpoint(call->path + 7, id, sizeof(id))
			 : EP_NONE;
	if (ep == EP_NONE)
		return fail(&a, 404, "not_found", "no API endpoint %.200s", call->path);
	int rc = run(&a, ep, id);
	if (rc <= 0)
		return rc;
	reply->allow = allowed(ep);
	return fail(&a, 405, "method_not_allowed", "%s %.200s: this endpoint takes %s",
		    call->method, call->path, allowed(ep));
}
