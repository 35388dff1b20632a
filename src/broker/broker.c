/*
 * The broker's lifetime: resolving listeners and security defaults from the configuration,
 * creating the shared trie and retained store, starting and stopping the workers.
 */
#include "broker/broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "base/clock.h"
#include "base/error.h"
#include "broker/persist.h"
#include "broker/tls.h"
#include "broker/worker.h"
#include "net/listen.h"
#include "session/msg.h"
#include "session/session.h"
#include "topic/retain.h"
#include "topic/tree.h"

static void msg_ref(void *m)
{
	vs_msg_ref(m);
}

static void msg_unref(void *m)
{
	vs_msg_unref(m);
}

/* Mosquitto 2.0's rule: anonymous access is allowed only when set, or when no listener was
 * configured at all (the built-in localhost-only default). */
static void resolve_listener(struct vs_broker *b, struct vs_listener *l,
			     const struct vs_listener_conf *lc, bool builtin)
{
	const struct vs_config *c = b->conf;
	l->conf = lc;
	int anon = c->per_listener_settings ? lc->allow_anonymous : c->allow_anonymous;
	l->allow_anonymous = anon < 0 ? builtin : anon == 1;
	int zl = c->per_listener_settings ? lc->allow_zero_length_clientid : -1;
	l->allow_zero_length_clientid = zl < 0 ? c->allow_zero_length_clientid : zl == 1;
	l->auto_id_prefix = c->per_listener_settings && lc->auto_id_prefix ? lc->auto_id_prefix
									   : c->auto_id_prefix;
	const char *host = lc->bind_address ? lc->bind_address : "*";
	if (lc->socket_domain == AF_UNIX)
		snprintf(l->name, sizeof(l->name), "unix:%s", host);
	else if (strchr(host, ':'))
		snprintf(l->name, sizeof(l->name), "[%s]:%d", host, lc->port);
	else
		snprintf(l->name, sizeof(l->name), "%s:%d", host, lc->port);
	atomic_init(&l->connections, 0);
	l->unix_fd = -1;
	pthread_mutex_init(&l->tls_lock, NULL);
}

/* A TLS listener's context (see broker/tls.c). */
static int make_tls(struct vs_broker *b, struct vs_listener *l, char *err, size_t errlen)
{
	const struct vs_listener_conf *lc = l->conf;
	if (!lc->certfile && !lc->psk_hint)
		return 0;
	const char *psk_file = b->conf->per_listener_settings ? lc->psk_file : b->conf->psk_file;
	int rc = vs_tls_server_ctx(lc, psk_file, &l->tls_ctx, err, errlen);
	l->tls = rc == 0;
	return rc;
}

SSL_CTX *vs_listener_tls_get(struct vs_listener *l)
{
	if (!l->tls)
		return NULL;
	pthread_mutex_lock(&l->tls_lock);
	SSL_CTX *ctx = l->tls_ctx;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&l->tls_lock);
	return ctx;
}

/* Loads a password file and an ACL file (either may be NULL). */
static int load_auth(const char *pwfile, const char *aclfile, struct vs_passwd **pw,
		     struct vs_acl **acl, char *err, size_t errlen)
{
	if (pwfile && !(*pw = vs_passwd_load(pwfile, err, errlen)))
		return VS_ECONF;
	if (aclfile && !(*acl = vs_acl_load(aclfile, err, errlen)))
		return VS_ECONF;
	return 0;
}

static int make_auth(struct vs_broker *b, char *err, size_t errlen)
{
	const struct vs_config *c = b->conf;
	if (!c->per_listener_settings) {
		int rc = load_auth(c->password_file, c->acl_file, &b->passwd, &b->acl, err, errlen);
		for (size_t i = 0; i < b->n_listeners; i++) {
			b->listeners[i].passwd = b->passwd;
			b->listeners[i].acl = b->acl;
		}
		return rc;
	}
	for (size_t i = 0; i < b->n_listeners; i++) {
		struct vs_listener *l = &b->listeners[i];
		l->owns_auth = true;
		int rc = load_auth(l->conf->password_file, l->conf->acl_file, &l->passwd, &l->acl,
				   err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Workers listen with SO_REUSEPORT, which would also let a second broker (or anything else
 * with the option) share the port silently. A first bind without it fails when the port is
 * already taken, as a plain server's would.
 */
static int probe_port(const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	if (lc->socket_domain == AF_UNIX)
		return 0; /* one socket for all workers: opened once, in open_unix() */
	int fds[4];
	int n = vs_listen_tcp(lc->bind_address, lc->port, lc->socket_domain, false, fds, 4, err,
			      errlen);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return n < 0 ? n : 0;
}

static int make_listeners(struct vs_broker *b, char *err, size_t errlen)
{
	struct vs_config *c = b->conf;
	bool builtin = c->n_listeners == 0;
	if (builtin) {
		/* No listener configured: localhost:1883 only, anonymous allowed (Mosquitto 2.0). */
		c->listeners = calloc(1, sizeof(*c->listeners));
		if (!c->listeners)
			return -ENOMEM;
		vs_listener_conf_init(&c->listeners[0], c);
		c->listeners[0].bind_address = strdup("localhost");
		c->n_listeners = 1;
	}
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct vs_listener_conf *lc = &c->listeners[i];
		if (lc->protocol != VS_LPROTO_MQTT) {
			snprintf(err, errlen, "listener %d: websockets listeners are not supported yet",
				 lc->port);
			return VS_ECONF;
		}
	}
	b->listeners = calloc(c->n_listeners, sizeof(*b->listeners));
	if (!b->listeners)
		return -ENOMEM;
	b->n_listeners = c->n_listeners;
	for (size_t i = 0; i < c->n_listeners; i++) {
		struct vs_listener *l = &b->listeners[i];
		resolve_listener(b, l, &c->listeners[i], builtin);
		int rc = probe_port(&c->listeners[i], err, errlen);
		if (rc == 0 && c->listeners[i].socket_domain == AF_UNIX) {
			rc = l->unix_fd = vs_listen_unix(c->listeners[i].bind_address, err, errlen);
			if (rc > 0)
				rc = 0;
		}
		if (rc == 0)
			rc = make_tls(b, l, err, errlen);
		if (rc < 0)
			return rc;
	}
	return make_auth(b, err, errlen);
}

int vs_broker_init(struct vs_broker *b, struct vs_config *conf, struct vs_log *log, char *err,
		   size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->conf = conf;
	b->log = log;
	pthread_mutex_init(&b->reg_lock, NULL);
	pthread_mutex_init(&b->park_lock, NULL);
	pthread_cond_init(&b->park_cond, NULL);
	b->start_wall = vs_wall_s();
	b->start_ms = vs_now_ms();
	int mi = conf->max_inflight_messages;
	b->receive_max = mi <= 0 || mi > 65535 ? 65535 : (uint16_t)mi;
	b->out_window = mi <= 0 || mi > 65535 ? 0 : (uint16_t)mi;
	b->tree = vs_tree_new();
	b->retain = vs_retain_new(msg_ref, msg_unref);
	if (!b->tree || !b->retain)
		return -ENOMEM;
	int rc = make_listeners(b, err, errlen);
	if (rc < 0)
		return rc;
	rc = vs_bp_open(b, err, errlen);
	if (rc < 0)
		return rc;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	b->n_workers = conf->threads > 0 ? conf->threads : cores > 0 ? (int)cores : 1;
	b->workers = calloc((size_t)b->n_workers, sizeof(*b->workers));
	if (!b->workers)
		return -ENOMEM;
	for (int i = 0; i < b->n_workers; i++) {
		rc = vs_worker_init(&b->workers[i], b, i, err, errlen);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < b->n_listeners; i++)
		vs_log(log, VS_LOG_NOTICE, "listening on %s%s%s", b->listeners[i].name,
		       b->listeners[i].tls ? " (TLS)" : "",
		       b->listeners[i].allow_anonymous ? " (anonymous clients allowed)" : "");
	return 0;
}

int vs_broker_start(struct vs_broker *b)
{
	for (int i = 0; i < b->n_workers; i++) {
		int rc = pthread_create(&b->workers[i].thread, NULL, vs_worker_main, &b->workers[i]);
		if (rc != 0)
			return -rc;
	}
	vs_log(b->log, VS_LOG_NOTICE, "viesti %s running with %d worker thread(s)", VS_VERSION,
	       b->n_workers);
	return 0;
}

void vs_broker_stop(struct vs_broker *b)
{
	atomic_store(&b->stopping, true);
	struct vs_mail m = {.type = VS_MAIL_WAKE};
	for (int i = 0; i < b->n_workers; i++)
		vs_worker_post_now(&b->workers[i], &m);
}

void vs_broker_fini(struct vs_broker *b)
{
	for (int i = 0; i < b->n_workers; i++)
		if (b->workers[i].thread)
			pthread_join(b->workers[i].thread, NULL);
	vs_bp_close(b);
	for (int i = 0; i < b->n_workers; i++)
		if (b->workers[i].b)
			vs_worker_fini(&b->workers[i]);
	free(b->workers);
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&b->sessions, &it, &key, &klen, &val))
		vs_session_unref(val);
	vs_map_fini(&b->sessions);
	if (b->tree)
		vs_tree_free(b->tree);
	if (b->retain)
		vs_retain_free(b->retain);
	for (size_t i = 0; i < b->n_listeners; i++) {
		struct vs_listener *l = &b->listeners[i];
		if (l->owns_auth) {
			vs_passwd_free(l->passwd);
			vs_acl_free(l->acl);
		}
		SSL_CTX_free(l->tls_ctx);
		pthread_mutex_destroy(&l->tls_lock);
		if (l->unix_fd >= 0) {
			close(l->unix_fd);
			unlink(l->conf->bind_address); /* the socket file this broker made */
		}
	}
	vs_passwd_free(b->passwd);
	vs_acl_free(b->acl);
	free(b->listeners);
	pthread_mutex_destroy(&b->reg_lock);
	pthread_mutex_destroy(&b->park_lock);
	pthread_cond_destroy(&b->park_cond);
}

void vs_broker_stats(struct vs_broker *b, struct vs_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < b->n_workers; i++) {
		struct vs_stats *s = &b->workers[i].stats;
#define SUM(f) out->f += atomic_load_explicit(&s->f, memory_order_relaxed)
		SUM(msgs_received);
		SUM(msgs_sent);
		SUM(pub_received);
		SUM(pub_sent);
		SUM(pub_dropped);
		SUM(bytes_received);
		SUM(bytes_sent);
		SUM(connects);
#undef SUM
	}
}
