/*
 * libviesti's public calls: creating and freeing a client, connecting and disconnecting,
 * publishing and subscribing. Each call validates its arguments first (so a failed call changes
 * nothing and no callback follows), takes the lock, hands the work to the protocol core
 * (src/proto/client.c), and writes what it produced unless an I/O handler is already on the
 * stack (it will write on its way out).
 */
#include "client/client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"

void vs_client_log(struct viesti *v, int level, const char *fmt, ...)
{
	if (!v->cb.on_log || level > v->log_level)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	v->cb.on_log(v, v->ud, level, line);
}

void viesti_options_init(struct viesti_options *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "localhost";
	o->port = 1883;
	o->version = VIESTI_V311;
	o->keepalive = 60;
	o->clean = true;
	o->max_inflight = 20;
	o->reconnect = true;
	o->reconnect_min_ms = 500;
	o->reconnect_max_ms = 30000;
	o->connect_timeout_ms = 10000;
	o->connect_wait_retries = true;
	o->log_level = VIESTI_LOG_INFO;
}

/* Enhanced authentication: MQTT 5.0 only (it rides on 5.0's properties and AUTH packet), with a
 * user name SCRAM can carry and a password; the method's two properties are ours to set. */
static int check_auth(const struct viesti_options *o)
{
	if (!o->auth_method)
		return 0;
	if (!vs_client_auth_known(o->auth_method) || o->version != VIESTI_V5 || !o->username ||
	    !o->password || !vs_client_scram_user_ok(o->username))
		return VIESTI_EINVAL;
	if (viesti_props_has(o->connect_props, VIESTI_PROP_AUTH_METHOD) ||
	    viesti_props_has(o->connect_props, VIESTI_PROP_AUTH_DATA))
		return VIESTI_EINVAL;
	return 0;
}

static int check_options(const struct viesti_options *o)
{
	if (!o->host || (!o->unix_path && (o->port < 1 || o->port > 65535)) || o->keepalive < 0 ||
	    o->keepalive > 65535)
		return VIESTI_EINVAL;
	if (o->proxy_port < 0 || o->proxy_port > 65535 || (o->proxy_host && o->unix_path) ||
	    (o->proxy_password && !o->proxy_username))
		return VIESTI_EINVAL;
	if (o->version != VIESTI_V31 && o->version != VIESTI_V311 && o->version != VIESTI_V5)
		return VIESTI_EINVAL;
	if (o->ws_path && o->ws_path[0] != '/')
		return VIESTI_EINVAL;
	if (o->will_topic) {
		if (o->will_qos < 0 || o->will_qos > 2 ||
		    !vs_topic_name_valid((const uint8_t *)o->will_topic, strlen(o->will_topic)))
			return VIESTI_EINVAL;
		if (o->will_payload_len > 65535 || (o->will_payload_len && !o->will_payload))
			return VIESTI_EINVAL;
	}
	if (o->client_id && strlen(o->client_id) > 65535)
		return VIESTI_EINVAL;
	if (o->reconnect_min_ms < 1 || o->reconnect_max_ms < o->reconnect_min_ms ||
	    o->connect_timeout_ms < 1)
		return VIESTI_EINVAL;
	return check_auth(o);
}

static char *dup_or_null(const char *s, bool *fail)
{
	if (!s)
		return NULL;
	char *c = strdup(s);
	if (!c)
		*fail = true;
	return c;
}

static uint64_t seed(const void *p)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid() << 40;
	s ^= (uint64_t)(uintptr_t)p;
	return s ? s : 0x9e3779b97f4a7c15ull;
}

/* A random client id when none was given: a session can only be resumed under a known id. */
static char *make_client_id(uint64_t r)
{
	char *id = malloc(24);
	if (id)
		snprintf(id, 24, "viesti-%016llx", (unsigned long long)r);
	return id;
}

static int copy_options(struct viesti *v, const struct viesti_options *o)
{
	bool fail = false;
	v->host = dup_or_null(o->host, &fail);
	v->ws_path = dup_or_null(o->ws_path, &fail);
	v->tcp.bind_address = dup_or_null(o->bind_address, &fail);
	v->tcp.unix_path = dup_or_null(o->unix_path, &fail);
	v->tcp.socks_host = dup_or_null(o->proxy_host, &fail);
	v->tcp.socks_port = o->proxy_port;
	v->tcp.socks_user = dup_or_null(o->proxy_username, &fail);
	v->tcp.socks_pass = dup_or_null(o->proxy_password, &fail);
	v->port = o->port;
	v->version = o->version;
	v->client_id = o->client_id ? dup_or_null(o->client_id, &fail) : make_client_id(v->rng);
	fail |= v->client_id == NULL;
	v->username = dup_or_null(o->username, &fail);
	if (o->password) {
		v->password_len = o->password_len ? o->password_len : strlen(o->password);
		v->password = malloc(v->password_len + 1);
		if (v->password)
			memcpy(v->password, o->password, v->password_len);
		fail |= v->password == NULL;
	}
	v->keepalive = o->keepalive;
	v->clean = o->clean;
	v->bridge = o->bridge;
	v->will_topic = dup_or_null(o->will_topic, &fail);
	if (o->will_topic) {
		v->will_payload = malloc(o->will_payload_len + 1);
		if (v->will_payload && o->will_payload_len)
			memcpy(v->will_payload, o->will_payload, o->will_payload_len);
		fail |= v->will_payload == NULL;
		v->will_len = o->will_payload_len;
		v->will_qos = o->will_qos;
		v->will_retain = o->will_retain;
	}
	if (o->version == VIESTI_V5) {
		fail |= vs_cprops_dup(o->connect_props, &v->connect_props) < 0;
		fail |= vs_cprops_dup(o->will_props, &v->will_props) < 0;
	}
	if (o->auth_method && !fail) {
		v->scram = malloc(sizeof(*v->scram));
		if (v->scram)
			vs_client_scram_init(v->scram, v->username, (const uint8_t *)v->password,
					     v->password_len);
		fail |= v->scram == NULL;
	}
	v->reconnect = o->reconnect;
	v->reconnect_min_ms = o->reconnect_min_ms;
	v->reconnect_max_ms = o->reconnect_max_ms;
	v->connect_timeout_ms = o->connect_timeout_ms;
	v->wait_retries = o->connect_wait_retries;
	v->log_level = o->log_level;
	return fail ? -ENOMEM : 0;
}

/* Reads the TLS files once, so that a bad one fails here, with its name in the log. */
static int init_tls(struct viesti *v, const struct viesti_tls *o)
{
	if (!o)
		return 0;
	char err[256];
	int rc = vs_tls_ctx_new(o, &v->tls, err, sizeof(err));
	if (rc < 0)
		vs_client_log(v, VIESTI_LOG_ERR, "TLS: %s", err[0] ? err : viesti_strerror(rc));
	return rc;
}

static void on_wake(struct vs_io *io, uint32_t events)
{
	uint64_t n;
	if (read(io->fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: another reader drained it first */
	}
}

void vs_client_wake(struct viesti *v)
{
	uint64_t one = 1;
	if (v->thread_on && write(v->wake_io.fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the loop is awake anyway */
	}
}

static int init_sync(struct viesti *v)
{
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	int rc = pthread_mutex_init(&v->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc)
		return -rc;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc) {
		pthread_mutex_destroy(&v->lock);
		return -rc;
	}
	return 0;
}

static int init_loop(struct viesti *v)
{
	int rc = vs_loop_init(&v->loop);
	if (rc < 0)
		return rc;
	v->wake_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	v->wake_io.fn = on_wake;
	if (v->wake_io.fd < 0)
		return -errno;
	v->sock_io.fn = vs_client_on_sock;
	v->sock_io.fd = -1;
	return vs_loop_add(&v->loop, &v->wake_io, EPOLLIN);
}

static void free_fields(struct viesti *v)
{
	free(v->host);
	free(v->ws_path);
	free((char *)v->tcp.bind_address);
	free((char *)v->tcp.unix_path);
	free((char *)v->tcp.socks_host);
	free((char *)v->tcp.socks_user);
	free((char *)v->tcp.socks_pass);
	free(v->client_id);
	free(v->username);
	free(v->password);
	free(v->will_topic);
	free(v->will_payload);
	viesti_props_free(v->connect_props);
	viesti_props_free(v->will_props);
	vs_tls_ctx_free(v->tls);
	if (v->scram)
		vs_client_scram_fini(v->scram);
	free(v->scram);
	free(v->topic_buf);
	vs_bytes_fini(&v->in);
}

struct viesti *viesti_new(const struct viesti_options *o, const struct viesti_callbacks *cb,
			  void *ud, int *err)
{
	int rc = check_options(o);
	struct viesti *v = NULL;
	if (rc < 0)
		goto out;
	v = calloc(1, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	v->rng = seed(v);
	v->tr.fd = -1;
	v->wake_io.fd = -1;
	v->loop.epfd = -1;
	v->connack_reason = -1;
	v->disc_reason = -1;
	v->backoff_ms = o->reconnect_min_ms;
	if (cb)
		v->cb = *cb;
	v->ud = ud;
	rc = copy_options(v, o);
	if (rc < 0)
		goto out_free;
	rc = init_tls(v, o->tls);
	if (rc < 0)
		goto out_free;
	rc = init_loop(v);
	if (rc < 0)
		goto out_free;
	rc = init_sync(v);
	if (rc < 0)
		goto out_free;
	vs_cproto_init(&v->cp, o->version, o->max_inflight, &vs_client_events, v);
	if (v->scram)
		vs_cproto_set_auth(&v->cp, &v->scram->auth);
	goto out;
out_free:
	if (v->wake_io.fd >= 0)
		close(v->wake_io.fd);
	vs_loop_fini(&v->loop);
	free_fields(v);
	free(v);
	v = NULL;
out:
	if (err)
		*err = rc;
	return v;
}

void viesti_free(struct viesti *v)
{
	if (!v)
		return;
	if (v->thread_on)
		viesti_loop_stop(v);
	vs_client_close_sock(v);
	vs_cproto_fini(&v->cp);
	close(v->wake_io.fd);
	vs_loop_fini(&v->loop);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free_fields(v);
	free(v);
}

void *viesti_userdata(struct viesti *v)
{
	return v->ud;
}

int viesti_connect(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	int rc = 0;
	if (v->state != VS_ST_IDLE) {
		rc = VIESTI_ESTATE;
		goto out;
	}
	v->user_stop = false;
	v->session_started = false;
	v->backoff_ms = v->reconnect_min_ms;
	v->first_result = VS_PENDING;
	vs_client_start_attempt(v);
	vs_client_wake(v);
out:
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* Whether viesti_connect_wait() may retry: reconnect on, and the option not turned off. */
static bool wait_retries(const struct viesti *v)
{
	return v->reconnect && v->wait_retries;
}

static bool connect_done(struct viesti *v, void *arg)
{
	if (v->state == VS_ST_UP || v->state == VS_ST_IDLE)
		return true;
	if (!wait_retries(v))
		return v->first_result != VS_PENDING;
	/* Retrying: only the broker's answer ends the wait (the timeout aside). */
	return v->attempt_result == VIESTI_EREFUSED || v->attempt_result == VIESTI_EAUTH;
}

/* A failed viesti_connect_wait() leaves nothing running: no attempt, no retry timer. */
static void stop_attempts(struct viesti *v)
{
	if (v->state == VS_ST_UP || v->state == VS_ST_IDLE || v->state == VS_ST_CLOSING)
		return;
	vs_client_close_sock(v);
	vs_cproto_lost(&v->cp);
	v->state = VS_ST_IDLE;
	pthread_cond_broadcast(&v->cond);
}

int viesti_connect_wait(struct viesti *v, int timeout_ms)
{
	pthread_mutex_lock(&v->lock);
	int rc = 0;
	v->attempt_result = VS_PENDING;
	if (v->state == VS_ST_IDLE)
		rc = viesti_connect(v);
	else if (v->state != VS_ST_UP)
		v->first_result = VS_PENDING;
	if (rc == 0)
		rc = vs_client_wait(v, connect_done, NULL, timeout_ms);
	if (v->state != VS_ST_UP && rc != VIESTI_ESTATE) {
		int last = wait_retries(v) ? v->attempt_result : v->first_result;
		if (rc == 0 || (rc == -ETIMEDOUT && last != VS_PENDING))
			rc = last == VS_PENDING ? v->last_err : last;
		stop_attempts(v);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int viesti_connack_reason(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	int r = v->connack_reason;
	pthread_mutex_unlock(&v->lock);
	return r;
}

bool viesti_is_connected(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	bool up = v->state == VS_ST_UP;
	pthread_mutex_unlock(&v->lock);
	return up;
}

int viesti_disconnect(struct viesti *v, int reason, const struct viesti_props *props)
{
	pthread_mutex_lock(&v->lock);
	int rc = 0;
	v->user_stop = true;
	switch (v->state) {
	case VS_ST_UP: {
		struct vs_disconnect d = {.reason = (uint8_t)reason};
		if (props && v->version == VS_V5)
			d.props = props->p;
		rc = vs_cproto_disconnect(&v->cp, &d, vs_now_ms());
		v->state = VS_ST_CLOSING;
		v->deadline_ms = vs_now_ms() + v->connect_timeout_ms;
		if (!v->busy)
			vs_client_flush(v);
		break;
	}
	case VS_ST_TCP:
	case VS_ST_MQTT:
	case VS_ST_WAIT:
		vs_client_close_sock(v);
		vs_cproto_lost(&v->cp);
		v->state = VS_ST_IDLE;
		if (v->first_result == VS_PENDING)
			v->first_result = -ECANCELED;
		break;
	default:
		rc = VIESTI_ESTATE;
	}
	pthread_cond_broadcast(&v->cond);
	vs_client_wake(v);
	pthread_mutex_unlock(&v->lock);
	return rc < 0 && rc != VIESTI_ESTATE ? VIESTI_EINVAL : rc;
}

/* ---- messages ------------------------------------------------------------------------------ */

static void set_props(struct viesti *v, struct vs_props *out, const struct viesti_props *in)
{
	memset(out, 0, sizeof(*out));
	if (in && v->version == VS_V5)
		*out = in->p;
}

static int after_queue(struct viesti *v, int rc)
{
	if (rc >= 0 && !v->busy)
		vs_client_flush(v);
	if (rc == VS_EPROTO)
		rc = VIESTI_EINVAL;
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int viesti_publish(struct viesti *v, const char *topic, const void *payload, size_t len, int qos,
		   bool retain, const struct viesti_props *props)
{
	if (!topic || qos < 0 || qos > 2 || (len && !payload))
		return VIESTI_EINVAL;
	size_t tlen = strlen(topic);
	if (!vs_topic_name_valid((const uint8_t *)topic, tlen))
		return VIESTI_EINVAL;
	if (len > VS_MAX_REMAINING)
		return VIESTI_ETOOBIG;
	struct vs_publish p = {
	    .qos = (uint8_t)qos,
	    .retain = retain,
	    .topic = {(const uint8_t *)topic, tlen},
	    .payload = {payload, len},
	};
	pthread_mutex_lock(&v->lock);
	set_props(v, &p.props, props);
	int rc = vs_cproto_publish(&v->cp, &p, vs_now_ms());
	return after_queue(v, rc);
}

static bool publish_done(struct viesti *v, void *arg)
{
	int mid = *(int *)arg;
	if (mid == 0)
		return vs_bytes_avail(&v->cp.out) == 0 || v->state != VS_ST_UP;
	return !vs_cproto_has(&v->cp, (uint16_t)mid) || v->state == VS_ST_IDLE;
}

int viesti_publish_wait(struct viesti *v, const char *topic, const void *payload, size_t len,
			int qos, bool retain, const struct viesti_props *props, int timeout_ms)
{
	pthread_mutex_lock(&v->lock);
	int mid = viesti_publish(v, topic, payload, len, qos, retain, props);
	int rc = mid;
	if (mid >= 0)
		rc = vs_client_wait(v, publish_done, &mid, timeout_ms);
	if (rc == 0 && mid == 0 && vs_bytes_avail(&v->cp.out) > 0)
		rc = v->last_err ? v->last_err : -ENOTCONN;
	if (rc == 0 && mid > 0) {
		if (vs_cproto_has(&v->cp, (uint16_t)mid)) {
			rc = v->last_err ? v->last_err : -ENOTCONN;
		} else {
			int reason = vs_client_done_reason(v, (uint16_t)mid);
			rc = reason >= 0x80 ? VIESTI_EREJECTED : reason;
		}
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int viesti_subscribe_many(struct viesti *v, const char *const *filters, const int *options,
			  size_t n, const struct viesti_props *props)
{
	if (n == 0 || n > 65535 || !filters || !options)
		return VIESTI_EINVAL;
	struct vs_sub_entry *e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t len = filters[i] ? strlen(filters[i]) : 0;
		int o = options[i];
		if (!len || !vs_topic_filter_valid((const uint8_t *)filters[i], len) ||
		    (o & 3) > 2 || (o >> 4) > 2 || o < 0) {
			free(e);
			return VIESTI_EINVAL;
		}
		e[i].filter.p = (const uint8_t *)filters[i];
		e[i].filter.len = len;
		e[i].qos = (uint8_t)(o & 3);
		e[i].no_local = o & VIESTI_SUB_NO_LOCAL;
		e[i].retain_as_published = o & VIESTI_SUB_RETAIN_AS_PUBLISHED;
		e[i].retain_handling = (uint8_t)(o >> 4);
	}
	struct vs_subscribe s = {.count = (uint32_t)n, .entries = e};
	pthread_mutex_lock(&v->lock);
	set_props(v, &s.props, props);
	int rc = vs_cproto_subscribe(&v->cp, &s, vs_now_ms());
	free(e);
	return after_queue(v, rc);
}

int viesti_subscribe(struct viesti *v, const char *filter, int options,
		     const struct viesti_props *props)
{
	return viesti_subscribe_many(v, &filter, &options, 1, props);
}

static bool ack_done(struct viesti *v, void *arg)
{
	return !vs_cproto_has(&v->cp, (uint16_t) * (int *)arg) || v->state == VS_ST_IDLE;
}

int viesti_subscribe_wait(struct viesti *v, const char *filter, int options,
			  const struct viesti_props *props, int timeout_ms)
{
	pthread_mutex_lock(&v->lock);
	int mid = viesti_subscribe(v, filter, options, props);
	int rc = mid;
	if (mid > 0)
		rc = vs_client_wait(v, ack_done, &mid, timeout_ms);
	if (rc == 0) {
		if (vs_cproto_has(&v->cp, (uint16_t)mid))
			rc = v->last_err ? v->last_err : -ENOTCONN;
		else
			rc = vs_client_done_reason(v, (uint16_t)mid);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int viesti_unsubscribe_many(struct viesti *v, const char *const *filters, size_t n,
			    const struct viesti_props *props)
{
	if (n == 0 || n > 65535 || !filters)
		return VIESTI_EINVAL;
	struct vs_buf *f = calloc(n, sizeof(*f));
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t len = filters[i] ? strlen(filters[i]) : 0;
		if (!len || !vs_topic_filter_valid((const uint8_t *)filters[i], len)) {
			free(f);
			return VIESTI_EINVAL;
		}
		f[i].p = (const uint8_t *)filters[i];
		f[i].len = len;
	}
	struct vs_unsubscribe u = {.count = (uint32_t)n, .filters = f};
	pthread_mutex_lock(&v->lock);
	set_props(v, &u.props, props);
	int rc = vs_cproto_unsubscribe(&v->cp, &u, vs_now_ms());
	free(f);
	return after_queue(v, rc);
}

int viesti_unsubscribe(struct viesti *v, const char *filter, const struct viesti_props *props)
{
	return viesti_unsubscribe_many(v, &filter, 1, props);
}

size_t viesti_pending(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	size_t n = vs_cproto_pending(&v->cp);
	pthread_mutex_unlock(&v->lock);
	return n;
}

const char *viesti_strerror(int err)
{
	switch (err) {
	case VIESTI_EINVAL:
		return "Invalid argument";
	case VIESTI_ECLOSED:
		return "Connection closed by broker";
	case VIESTI_EREFUSED:
		return "Connection refused by broker";
	case VIESTI_EREJECTED:
		return "Rejected by broker";
	case VIESTI_ESTATE:
		return "Not valid in this state";
	case VIESTI_ETLS:
		return "TLS error";
	case VIESTI_EAUTH:
		return "The broker failed authentication";
	case VIESTI_ELOOKUP:
		return "Lookup error";
	case VIESTI_EPROXY:
		return "Proxy error";
	case VIESTI_EPROXY_TARGET:
		return "The proxy could not reach the broker";
	default:
		return vs_strerror(err);
	}
}

const char *viesti_reason_string(int reason)
{
	return vs_reason_str(reason);
}
