/*
 * The broker's lifetime: resolving listeners and security defaults from the configuration,
 * creating the shared trie and retained store, starting and stopping the workers.
 */
#include "broker/broker.h"

#include "broker/bridge.h"
#include "broker/cluster.h"
#include "broker/gateway.h"

#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "base/clock.h"
#include "base/error.h"
#include "broker/authq.h"
#include "broker/persist.h"
#include "broker/sys.h"
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

static size_t msg_size(const void *m)
{
	return ((const struct vs_msg *)m)->payload.len;
}

/* The stable part of a listener: what a reload cannot change. */
static void init_listener(struct vs_listener *l, const struct vs_listener_conf *lc)
{
	l->conf = lc;
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

/* A WebSocket listener's settings, from the start-up configuration (which lives as long as the
 * broker: a reload does not change listeners). http_dir must be a directory; its real path is
 * what served files are checked against. */
static int make_ws(const struct vs_config *c, struct vs_listener *l, char *err, size_t errlen)
{
	const struct vs_listener_conf *lc = l->conf;
	struct vs_ws_server_conf *w = &l->ws_conf;
	l->ws = true;
	w->path = lc->websockets_path;
	w->origins = (const char *const *)lc->websockets_origins.v;
	w->n_origins = lc->websockets_origins.n;
	w->proxies = (const char *const *)lc->websockets_trusted_proxies.v;
	w->n_proxies = lc->websockets_trusted_proxies.n;
	w->headers_max = c->websockets_headers_size > 0 ? (size_t)c->websockets_headers_size : 4096;
	if (!lc->http_dir)
		return 0;
	struct stat sb;
	char *real = realpath(lc->http_dir, NULL);
	if (!real || stat(real, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "listener %s: http_dir '%s': %s", l->name, lc->http_dir,
			 real ? "not a directory" : strerror(errno));
		free(real);
		return VS_ECONF;
	}
	w->http_dir = real;
	return 0;
}

static bool tls_listener(const struct vs_listener_conf *lc)
{
	return lc->certfile || lc->psk_hint;
}

/* A TLS listener's context from configuration c (see broker/tls.c), or NULL for plain. */
static int make_tls(const struct vs_config *c, const struct vs_listener_conf *lc, SSL_CTX **out,
		    char *err, size_t errlen)
{
	*out = NULL;
	if (!tls_listener(lc))
		return 0;
	const char *psk_file = c->per_listener_settings ? lc->psk_file : c->psk_file;
	return vs_tls_server_ctx(lc, psk_file, out, err, errlen);
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

static void gen_free(void *p)
{
	struct vs_gen *g = p;
	if (!g)
		return;
	for (size_t i = 0; g->l_passwd && i < g->n; i++)
		vs_passwd_free(g->l_passwd[i]);
	for (size_t i = 0; g->l_acl && i < g->n; i++)
		vs_acl_free(g->l_acl[i]);
	free(g->l_passwd);
	free(g->l_acl);
	vs_passwd_free(g->passwd);
	vs_acl_free(g->acl);
	free(g->secs);
	if (g->owns_conf && g->conf) {
		vs_config_fini(g->conf);
		free(g->conf);
	}
	free(g);
}

/* Mosquitto 2.0's rule: anonymous access is allowed only when set, or on the built-in listener
 * (no listener configured at all). */
static void resolve_sec(struct vs_gen *g, size_t i)
{
	const struct vs_config *c = g->conf;
	const struct vs_listener_conf *lc = &c->listeners[i];
	struct vs_listener_sec *sec = &g->secs[i];
	sec->conf = lc;
	int anon = c->per_listener_settings ? lc->allow_anonymous : c->allow_anonymous;
	sec->allow_anonymous = anon < 0 ? c->builtin_listener : anon == 1;
	int zl = c->per_listener_settings ? lc->allow_zero_length_clientid : -1;
	sec->allow_zero_length_clientid = zl < 0 ? c->allow_zero_length_clientid : zl == 1;
	sec->auto_id_prefix =
	    c->per_listener_settings && lc->auto_id_prefix ? lc->auto_id_prefix : c->auto_id_prefix;
	sec->passwd = c->per_listener_settings ? g->l_passwd[i] : g->passwd;
	sec->acl = c->per_listener_settings ? g->l_acl[i] : g->acl;
}

/* Builds a generation from c: every password and ACL file read, each listener resolved.
 * Returns 0 with *out, or an error with "FILE:LINE: why" in err (nothing is kept). */
static int gen_build(struct vs_config *c, bool owns_conf, struct vs_gen **out, char *err,
		     size_t errlen)
{
	struct vs_gen *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->conf = c;
	g->n = c->n_listeners;
	g->secs = calloc(g->n, sizeof(*g->secs));
	g->l_passwd = calloc(g->n, sizeof(*g->l_passwd));
	g->l_acl = calloc(g->n, sizeof(*g->l_acl));
	int rc = g->secs && g->l_passwd && g->l_acl ? 0 : -ENOMEM;
	if (rc == 0 && !c->per_listener_settings)
		rc = load_auth(c->password_file, c->acl_file, &g->passwd, &g->acl, err, errlen);
	for (size_t i = 0; rc == 0 && c->per_listener_settings && i < g->n; i++)
		rc = load_auth(c->listeners[i].password_file, c->listeners[i].acl_file,
			       &g->l_passwd[i], &g->l_acl[i], err, errlen);
	if (rc < 0) {
		gen_free(g); /* does not free c: owns_conf is still false */
		return rc;
	}
	static atomic_uint_fast64_t serials;
	uint64_t serial = atomic_fetch_add(&serials, 1) + 1;
	for (size_t i = 0; i < g->n; i++) {
		resolve_sec(g, i);
		g->secs[i].serial = serial;
	}
	g->owns_conf = owns_conf;
	*out = g;
	return 0;
}

/*
 * Workers listen with SO_REUSEPORT, which would also let a second broker (or anything else
 * with the option) share the port silently. A first bind without it fails when the port is
 * already taken, as a plain server's would. The probe binds without listening: a listening
 * probe could take a client's connection in the moment before it is closed, and reset it.
 */
static int probe_port(const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	if (lc->socket_domain == AF_UNIX)
		return 0; /* one socket for all workers: opened once, in open_unix() */
	int fds[4];
	unsigned udp = lc->protocol == VS_LPROTO_MQTTSN ? VS_LISTEN_UDP : 0;
	int n = vs_listen_tcp(lc->bind_address, lc->bind_interface, lc->port, lc->socket_domain,
			      VS_LISTEN_BIND_ONLY | udp, fds, 4, err, errlen);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return n < 0 ? n : 0;
}

static int make_listeners(struct vs_broker *b, char *err, size_t errlen)
{
	struct vs_config *c = b->conf;
	if (vs_config_finish(c, 0) < 0)
		return -ENOMEM;
	b->cap_listeners = c->n_listeners + VS_RELOAD_LISTENERS_MAX;
	b->listeners = calloc(b->cap_listeners, sizeof(*b->listeners));
	if (!b->listeners)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_listeners; i++) {
		struct vs_listener *l = &b->listeners[i];
		const struct vs_listener_conf *lc = &c->listeners[i];
		init_listener(l, lc);
		b->n_listeners = i + 1; /* vs_broker_fini undoes only those made, when one fails */
		int rc = probe_port(lc, err, errlen);
		if (rc == 0 && lc->socket_domain == AF_UNIX) {
			rc = l->unix_fd = vs_listen_unix(lc->bind_address, err, errlen);
			if (rc > 0)
				rc = 0;
		}
		if (rc == 0)
			rc = make_tls(c, lc, &l->tls_ctx, err, errlen);
		if (rc == 0 && lc->protocol == VS_LPROTO_WEBSOCKETS)
			rc = make_ws(c, l, err, errlen);
		if (rc == 0 && lc->protocol == VS_LPROTO_MQTTSN)
			rc = vs_gateway_listener_init(l, err, errlen);
		if (rc < 0)
			return rc;
		l->tls = l->tls_ctx != NULL;
	}
	int rc = gen_build(c, false, &b->gen, err, errlen);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < b->n_listeners; i++)
		b->listeners[i].sec = &b->gen->secs[i];
	for (size_t i = 0; i < b->n_listeners; i++)
		b->listeners[i].http = c->listeners[i].protocol == VS_LPROTO_HTTP;
	return 0;
}

/* A removed listener's clients still read its sec in generation g: g is kept until they are
 * gone (vs_broker_reclaim). */
struct vs_pinned {
	struct vs_gen *gen;
	size_t *slots;
	size_t n;
};

/* Frees what a listener slot holds (its clients are gone) and zeroes it. */
static void listener_fini(struct vs_listener *l)
{
	SSL_CTX_free(l->tls_ctx);
	free((char *)l->ws_conf.http_dir);
	vs_gateway_listener_fini(l);
	pthread_mutex_destroy(&l->tls_lock);
	if (l->unix_fd >= 0) {
		close(l->unix_fd);
		unlink(l->conf->bind_address); /* the socket file this broker made */
	}
	memset(l, 0, sizeof(*l));
}

/* "listening on 127.0.0.1:1883 (TLS) (anonymous clients allowed)" */
static void announce(struct vs_broker *b, const struct vs_listener *l, const char *what)
{
	vs_log(b->log, VS_LOG_NOTICE, "%s %s%s%s", what, l->name,
	       l->ws	 ? (l->tls ? " (WebSocket over TLS)" : " (WebSocket)")
	       : l->sn	 ? " (MQTT-SN, UDP)"
	       : l->http ? (l->tls ? " (HTTPS)" : " (HTTP)")
	       : l->tls	 ? " (TLS)"
			 : "",
	       vs_listener_sec(l)->allow_anonymous ? " (anonymous clients allowed)" : "");
}

/* Posts mail `type` about listener slot to every worker (main thread). */
static void post_all(struct vs_broker *b, uint8_t type, size_t slot)
{
	struct vs_mail m = {.type = type, .slot = (uint32_t)slot};
	for (int i = 0; i < b->n_workers; i++)
		vs_worker_post_now(&b->workers[i], &m);
}

/*
 * The listeners below n not in kept are removed: every worker closes its sockets and clients
 * (VS_MAIL_UNLISTEN). Their clients may read their sec in generation old until they are gone,
 * so old is pinned (vs_broker_reclaim retires it then), in the slot the caller made room for in
 * b->pinned; slots (room for n) becomes the pin's. Returns whether old was pinned (if not, the
 * caller still owns slots).
 */
static bool remove_listeners(struct vs_broker *b, struct vs_gen *old, const bool *kept, size_t n,
			     size_t *slots)
{
	struct vs_pinned p = {.gen = old, .slots = slots};
	for (size_t i = 0; i < n; i++)
		if (!kept[i] && !atomic_load(&b->listeners[i].removed))
			p.slots[p.n++] = i;
	if (!p.n)
		return false;
	for (size_t k = 0; k < p.n; k++) {
		struct vs_listener *l = &b->listeners[p.slots[k]];
		atomic_store(&l->unlisten_pending, b->n_workers);
		atomic_store(&l->removed, true);
		vs_log(b->log, VS_LOG_NOTICE,
		       "reload: listener %s removed: it accepts no more connections, and its "
		       "clients are disconnected",
		       l->name);
		post_all(b, VS_MAIL_UNLISTEN, p.slots[k]);
	}
	b->pinned[b->n_pinned++] = p;
	return true;
}

int vs_broker_init(struct vs_broker *b, struct vs_config *conf, struct vs_log *log, char *err,
		   size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->conf = conf;
	b->log = log;
	vs_sys_log_init(b);
	vs_grace_init(&b->grace);
	b->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&b->reg_lock, NULL);
	vs_minset_init(&b->stream_held);
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
	vs_retain_set_size_fn(b->retain, msg_size);
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
	rc = vs_bridges_init(b, err, errlen);
	if (rc < 0)
		return rc;
	if (vs_cluster_start(b, err, errlen) < 0)
		return -EINVAL;
	if (conf->websockets_log_level)
		vs_log(log, VS_LOG_NOTICE,
		       "websockets_log_level %d has no effect: it sets "
		       "libwebsockets' logging, and Viesti's own WebSocket code logs through "
		       "log_type like the rest",
		       conf->websockets_log_level);
	if (conf->autosave_interval != 1800 || conf->autosave_on_changes)
		vs_log(log, VS_LOG_NOTICE,
		       "autosave_interval %d%s has no effect: every change is "
		       "written to the persistence log as it happens",
		       conf->autosave_interval,
		       conf->autosave_on_changes ? " with autosave_on_changes" : "");
	for (size_t i = 0; i < b->n_listeners; i++) {
		/* Joined as written (as Mosquitto does): "t1" would also reach "t10/..." */
		const char *mp = b->listeners[i].conf->mount_point;
		if (mp && mp[0] && mp[strlen(mp) - 1] != '/')
			vs_log(log, VS_LOG_WARN,
			       "listener %s: mount_point '%s' does not end with '/': its clients "
			       "also reach topics of any mount point that starts with it "
			       "('%s0/...'); write '%s/' to keep them apart",
			       b->listeners[i].name, mp, mp, mp);
	}
	for (size_t i = 0; i < b->n_listeners; i++)
		announce(b, &b->listeners[i], "listening on");
	return 0;
}

int vs_broker_start(struct vs_broker *b)
{
	int threads = b->conf->auth_threads > 0 ? b->conf->auth_threads : 1;
	vs_bp_start(b, vs_worker_synced);
	int arc = vs_authq_start(b, threads);
	if (arc < 0)
		return arc;
	for (int i = 0; i < b->n_workers; i++) {
		int rc =
		    pthread_create(&b->workers[i].th.thread, NULL, vs_worker_main, &b->workers[i]);
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
	vs_authq_stop(b);
	for (int i = 0; i < b->n_workers; i++)
		if (b->workers[i].th.thread)
			pthread_join(b->workers[i].th.thread, NULL);
	vs_bridges_fini(b);
	/* After the workers (their last sessions leave NATS subjects), before their mailboxes go
	 * (what other nodes sent meanwhile is freed with them; JetStream's natsMsgs by
	 * vs_cluster_stop, before the library closes). */
	vs_cluster_stop(b);
	vs_bp_close(b);
	vs_sys_log_fini(b);
	for (int i = 0; i < b->n_workers; i++)
		if (b->workers[i].b)
			vs_worker_fini(&b->workers[i]);
	free(b->workers);
	size_t it = 0;
	struct vs_session *s;
	while (vs_registry_next(&b->sessions, &it, &s))
		vs_session_unref(s);
	vs_registry_fini(&b->sessions);
	vs_map_fini_with(&b->sys_values, free);
	if (b->tree)
		vs_tree_free(b->tree);
	if (b->retain)
		vs_retain_free(b->retain);
	vs_grace_fini(&b->grace); /* every worker has stopped: whatever reloads retired goes */
	if (b->statm_fd >= 0)
		close(b->statm_fd);
	gen_free(b->gen);
	for (size_t i = 0; i < b->n_pinned; i++) {
		gen_free(b->pinned[i].gen);
		free(b->pinned[i].slots);
	}
	free(b->pinned);
	for (size_t i = 0; i < b->n_listeners; i++)
		listener_fini(&b->listeners[i]);
	free(b->listeners);
	for (size_t i = 0; i < b->n_kept; i++) {
		vs_config_fini(b->kept_confs[i]);
		free(b->kept_confs[i]);
	}
	free(b->kept_confs);
	vs_minset_fini(&b->stream_held); /* every message is gone */
	vs_msg_homes_fini();		 /* those let go of after their thread left */
	pthread_mutex_destroy(&b->reg_lock);
	pthread_mutex_destroy(&b->park_lock);
	pthread_cond_destroy(&b->park_cond);
}

/* ---- reload (SIGHUP) ---------------------------------------------------------------------- */

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/*
 * Which running listener each listener of the new file is: map[j] is the slot of nc's listener
 * j, or -1 for a new one (same port, address and address family: the socket it binds). A kept
 * listener may not change its protocol or turn TLS on or off, and MQTT-SN listeners may be
 * neither added nor removed (their gateways' state lives with their sockets): a restart can.
 */
static int match_listeners(struct vs_broker *b, const struct vs_config *nc, long *map,
			   size_t *n_new, char *err, size_t errlen)
{
	size_t n = b->n_listeners;
	bool *kept = calloc(n ? n : 1, sizeof(*kept));
	if (!kept)
		return -ENOMEM;
	*n_new = 0;
	int rc = 0;
	for (size_t j = 0; j < nc->n_listeners && rc == 0; j++) {
		const struct vs_listener_conf *lc = &nc->listeners[j];
		map[j] = -1;
		for (size_t i = 0; i < n && map[j] < 0; i++) {
			const struct vs_listener_conf *a = b->listeners[i].conf;
			if (!atomic_load(&b->listeners[i].removed) && !kept[i] &&
			    a->port == lc->port && same_str(a->bind_address, lc->bind_address) &&
			    a->socket_domain == lc->socket_domain)
				map[j] = (long)i;
		}
		if (map[j] >= 0) {
			const struct vs_listener_conf *a = b->listeners[map[j]].conf;
			kept[map[j]] = true;
			if (a->protocol != lc->protocol || tls_listener(a) != tls_listener(lc)) {
				snprintf(
				    err, errlen,
				    "listener %s: its protocol or TLS differs from the running "
				    "one, expected a restart (or remove it in one reload and add "
				    "it in the next)",
				    b->listeners[map[j]].name);
				rc = VS_ECONF;
			}
		} else if (lc->protocol == VS_LPROTO_MQTTSN) {
			snprintf(err, errlen,
				 "listener %d: an MQTT-SN listener cannot be added by a reload, "
				 "expected a restart",
				 lc->port);
			rc = VS_ECONF;
		} else {
			(*n_new)++;
		}
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!kept[i] && !atomic_load(&b->listeners[i].removed) && b->listeners[i].sn) {
			snprintf(err, errlen,
				 "listener %s: an MQTT-SN listener cannot be removed by a reload, "
				 "expected a restart",
				 b->listeners[i].name);
			rc = VS_ECONF;
		}
	}
	if (rc == 0 && n + *n_new > b->cap_listeners) {
		snprintf(err, errlen,
			 "%zu new listener(s): reloads may add %d listeners over the broker's "
			 "life, expected a restart",
			 *n_new, VS_RELOAD_LISTENERS_MAX);
		rc = VS_ECONF;
	}
	free(kept);
	return rc;
}

static void keep_str(struct vs_broker *b, char **field, const char *old, const char *name)
{
	if (same_str(*field, old))
		return;
	vs_log(b->log, VS_LOG_WARN,
	       "reload: '%s' cannot change while the broker runs; it stays "
	       "'%s' until a restart",
	       name, old ? old : "(unset)");
	free(*field);
	*field = old ? strdup(old) : NULL;
}

#define KEEP(b, nc, f)                                                                             \
	do {                                                                                       \
		if ((nc)->f != (b)->conf->f) {                                                     \
			vs_log((b)->log, VS_LOG_WARN,                                              \
			       "reload: '%s' cannot change while the "                             \
			       "broker runs; it keeps its start-up value until a restart",         \
			       #f);                                                                \
			(nc)->f = (b)->conf->f;                                                    \
		}                                                                                  \
	} while (0)

/* What the running broker cannot take from the new file keeps its value, with a warning. */
static void keep_fixed(struct vs_broker *b, struct vs_config *nc, const long *map)
{
	const struct vs_config *oc = b->conf;
	KEEP(b, nc, threads);
	KEEP(b, nc, auth_threads);
	KEEP(b, nc, consolidate_threads);
	KEEP(b, nc, io_uring);
	KEEP(b, nc, persistence);
	KEEP(b, nc, persistence_fsync);
	KEEP(b, nc, persistence_fsync_interval_ms);
	keep_str(b, &nc->persistence_location, oc->persistence_location, "persistence_location");
	keep_str(b, &nc->persistence_file, oc->persistence_file, "persistence_file");
	keep_str(b, &nc->pid_file, oc->pid_file, "pid_file");
	keep_str(b, &nc->user, oc->user, "user");
	keep_str(b, &nc->log_timestamp_format, oc->log_timestamp_format, "log_timestamp_format");
	KEEP(b, nc, log_facility);
	KEEP(b, nc, log_format);
	/* The JetStream consumer takes it when it is set up (a reconnect would take a new one). */
	KEEP(b, nc, cluster_ack_wait);
	/* Bridges run with their start-up sections (bridge.c keeps pointers into them). */
	bool same = nc->n_bridges == oc->n_bridges;
	for (size_t i = 0; same && i < nc->n_bridges; i++)
		same = strcmp(nc->bridges[i].name, oc->bridges[i].name) == 0;
	if (!same || nc->n_bridges)
		vs_log(b->log, same ? VS_LOG_INFO : VS_LOG_WARN,
		       "reload: bridges (connection sections) cannot change while the broker runs; "
		       "the %zu bridge(s) of the start-up configuration keep running as they are",
		       oc->n_bridges);
	/* A kept listener reads these two from the configuration it was opened with. */
	for (size_t j = 0; j < nc->n_listeners; j++) {
		if (map[j] < 0)
			continue;
		const struct vs_listener_conf *a = b->listeners[map[j]].conf;
		keep_str(b, &nc->listeners[j].mount_point, a->mount_point, "mount_point");
		keep_str(b, &nc->listeners[j].bind_interface, a->bind_interface, "bind_interface");
	}
}

/* Reads the configuration file again, as at start-up. */
static struct vs_config *read_conf(struct vs_broker *b, char *err, size_t errlen)
{
	struct vs_config *nc = malloc(sizeof(*nc));
	if (!nc)
		return NULL;
	vs_config_init(nc);
	int rc = b->conf_path ? vs_config_load(nc, b->conf_path, err, errlen) : 0;
	if (rc == 0 && vs_config_finish(nc, b->conf_port) < 0)
		rc = -ENOMEM;
	if (rc == 0)
		rc = vs_config_validate(nc, err, errlen);
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		vs_config_fini(nc);
		free(nc);
		return NULL;
	}
	return nc;
}

/* The TLS contexts of the new configuration, one per listener of nc (NULL for plain ones). */
static int make_all_tls(const struct vs_config *nc, SSL_CTX **ctx, char *err, size_t errlen)
{
	for (size_t i = 0; i < nc->n_listeners; i++) {
		int rc = make_tls(nc, &nc->listeners[i], &ctx[i], err, errlen);
		if (rc < 0) {
			for (size_t k = 0; k < i; k++)
				SSL_CTX_free(ctx[k]);
			return rc;
		}
	}
	return 0;
}

/* Every session checks what waits for it against the new ACLs before sending it. */
static void mark_sessions(struct vs_broker *b)
{
	size_t it = 0;
	struct vs_session *s;
	pthread_mutex_lock(&b->reg_lock);
	while (vs_registry_next(&b->sessions, &it, &s)) {
		pthread_mutex_lock(&s->lock);
		s->acl_stale = true;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
}

/*
 * The new listeners of nc take the slots from b->n_listeners on, not yet visible to workers:
 * each is checked as at start-up (its port can be bound, its unix socket made, its http_dir
 * read) and map[j] becomes its slot. On failure those made so far are undone and err says why.
 */
static int open_new(struct vs_broker *b, const struct vs_config *nc, long *map, char *err,
		    size_t errlen)
{
	size_t next = b->n_listeners;
	int rc = 0;
	for (size_t j = 0; j < nc->n_listeners && rc == 0; j++) {
		if (map[j] >= 0)
			continue;
		struct vs_listener *l = &b->listeners[next];
		const struct vs_listener_conf *lc = &nc->listeners[j];
		init_listener(l, lc);
		map[j] = (long)next++;
		rc = probe_port(lc, err, errlen);
		if (rc == 0 && lc->socket_domain == AF_UNIX) {
			rc = l->unix_fd = vs_listen_unix(lc->bind_address, err, errlen);
			rc = rc > 0 ? 0 : rc;
		}
		if (rc == 0 && lc->protocol == VS_LPROTO_WEBSOCKETS)
			rc = make_ws(nc, l, err, errlen);
		l->http = lc->protocol == VS_LPROTO_HTTP;
	}
	if (rc < 0)
		for (size_t i = b->n_listeners; i < next; i++)
			listener_fini(&b->listeners[i]);
	return rc;
}

/* Room for what swap_in() may need, made before anything changes (a reload is all or nothing):
 * which running listeners the new file keeps, and a pin of the old generation. */
struct swap_room {
	bool *kept;    /* per running listener */
	size_t *slots; /* per running listener */
};

static int make_room(struct vs_broker *b, const struct vs_config *nc, const long *map,
		     struct swap_room *r)
{
	size_t n = b->n_listeners ? b->n_listeners : 1;
	r->kept = calloc(n, sizeof(*r->kept));
	r->slots = calloc(n, sizeof(*r->slots));
	struct vs_pinned *pv = realloc(b->pinned, (b->n_pinned + 1) * sizeof(*pv));
	if (pv)
		b->pinned = pv;
	if (!r->kept || !r->slots || !pv)
		return -ENOMEM;
	for (size_t j = 0; j < nc->n_listeners; j++)
		if (map[j] >= 0)
			r->kept[map[j]] = true;
	return 0;
}

/*
 * Makes generation g, the TLS contexts (one per listener of g, taken) and the listener changes
 * current: kept listeners take their new sec and TLS context, new ones (map[j] past the running
 * ones) become visible and every worker opens its sockets, removed ones are closed by every
 * worker. The old generation goes when no worker holds it, or once the removed listeners'
 * clients are gone.
 */
static void swap_in(struct vs_broker *b, struct vs_gen *g, SSL_CTX **ctx, const long *map,
		    struct swap_room *room)
{
	size_t first_new = b->n_listeners, end = first_new;
	for (size_t j = 0; j < g->n; j++) {
		struct vs_listener *l = &b->listeners[map[j]];
		if ((size_t)map[j] < first_new) {
			__atomic_store_n(&l->sec, &g->secs[j], __ATOMIC_SEQ_CST);
			if (!l->tls) {
				SSL_CTX_free(
				    ctx[j]); /* NULL: TLS cannot be turned on by a reload */
				continue;
			}
			pthread_mutex_lock(&l->tls_lock);
			SSL_CTX *old = l->tls_ctx;
			l->tls_ctx = ctx[j];
			pthread_mutex_unlock(&l->tls_lock);
			SSL_CTX_free(old); /* sessions started from it keep it until they end */
			continue;
		}
		l->sec = &g->secs[j];
		l->tls_ctx = ctx[j];
		l->tls = ctx[j] != NULL;
		if ((size_t)map[j] + 1 > end)
			end = (size_t)map[j] + 1;
	}
	int mi = g->conf->max_inflight_messages;
	b->receive_max = mi <= 0 || mi > 65535 ? 65535 : (uint16_t)mi;
	b->out_window = mi <= 0 || mi > 65535 ? 0 : (uint16_t)mi;
	__atomic_store_n(&b->conf, g->conf, __ATOMIC_SEQ_CST);
	__atomic_store_n(&b->n_listeners, end, __ATOMIC_RELEASE);
	struct vs_gen *old = b->gen;
	b->gen = g;
	for (size_t i = first_new; i < end; i++)
		announce(b, &b->listeners[i], "reload: listening on");
	for (size_t i = first_new; i < end; i++) {
		atomic_store(&b->listeners[i].listen_pending, b->n_workers);
		post_all(b, VS_MAIL_LISTEN, i);
	}
	if (remove_listeners(b, old, room->kept, first_new, room->slots))
		room->slots = NULL; /* the pin's now */
	else
		vs_grace_retire(&b->grace, old, gen_free);
}

/* Waits (up to 2 s) until every worker has opened the sockets of the listeners a reload added
 * and closed those of the ones it removed, so that "reload done" means it. */
static void wait_listeners(struct vs_broker *b)
{
	int64_t until = vs_now_ms() + 2000;
	for (size_t i = 0; i < b->n_listeners && vs_now_ms() < until;) {
		struct vs_listener *l = &b->listeners[i];
		bool busy = atomic_load(&l->listen_pending) > 0 ||
			    (atomic_load(&l->removed) && atomic_load(&l->unlisten_pending) > 0);
		if (busy)
			usleep(1000);
		else
			i++;
	}
}

int vs_broker_reload(struct vs_broker *b, char *err, size_t errlen)
{
	struct vs_config *nc = read_conf(b, err, errlen);
	if (!nc)
		return VS_ECONF;
	long *map = calloc(nc->n_listeners ? nc->n_listeners : 1, sizeof(*map));
	SSL_CTX **ctx = calloc(nc->n_listeners ? nc->n_listeners : 1, sizeof(*ctx));
	struct vs_config **kept = realloc(b->kept_confs, (b->n_kept + 1) * sizeof(*kept));
	if (kept)
		b->kept_confs = kept;
	struct swap_room room = {0};
	size_t n_new = 0;
	int rc = map && ctx && kept ? match_listeners(b, nc, map, &n_new, err, errlen) : -ENOMEM;
	if (rc == 0)
		rc = make_room(b, nc, map, &room);
	if (rc == 0) {
		keep_fixed(b, nc, map);
		if (b->conf_verbose)
			nc->log.types = VS_LOG_ALL;
		rc = make_all_tls(nc, ctx, err, errlen);
	}
	bool tls_made = rc == 0;
	if (rc == 0)
		rc = open_new(b, nc, map, err, errlen);
	struct vs_gen *g = NULL;
	if (rc == 0) {
		rc = gen_build(nc, true, &g, err, errlen);
		if (rc < 0)
			for (size_t i = b->n_listeners; i < b->n_listeners + n_new; i++)
				listener_fini(&b->listeners[i]);
	}
	if (rc == 0) {
		if (n_new) {
			g->owns_conf =
			    false; /* new listeners point into nc: it lives as long as b */
			b->kept_confs[b->n_kept++] = nc;
		}
		if (vs_log_apply(b->log, &nc->log) < 0)
			vs_log(b->log, VS_LOG_WARN, "reload: cannot open log file %s: %s",
			       nc->log.file_path, strerror(errno));
		swap_in(b, g, ctx, map, &room);
		mark_sessions(b);
		wait_listeners(b);
	} else {
		for (size_t i = 0; tls_made && i < nc->n_listeners; i++)
			SSL_CTX_free(ctx[i]);
		vs_config_fini(nc);
		free(nc);
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
	}
	free(room.kept);
	free(room.slots);
	free(ctx);
	free(map);
	return rc;
}

/* A pinned generation goes once every worker closed the removed listeners' sockets and their
 * clients are gone: their sec then points to closed_sec, which needs nothing of it. */
static bool unpin(struct vs_broker *b, struct vs_pinned *p)
{
	for (size_t k = 0; k < p->n; k++) {
		struct vs_listener *l = &b->listeners[p->slots[k]];
		if (atomic_load(&l->unlisten_pending) > 0 || atomic_load(&l->connections) > 0)
			return false;
	}
	for (size_t k = 0; k < p->n; k++) {
		struct vs_listener *l = &b->listeners[p->slots[k]];
		l->closed_sec = (struct vs_listener_sec){.conf = l->conf};
		__atomic_store_n(&l->sec, &l->closed_sec, __ATOMIC_SEQ_CST);
		if (l->unix_fd >= 0) {
			close(l->unix_fd);
			l->unix_fd = -1;
			unlink(l->conf->bind_address);
		}
		vs_log(b->log, VS_LOG_INFO, "reload: listener %s closed, its clients are gone",
		       l->name);
	}
	vs_grace_retire(&b->grace, p->gen, gen_free);
	free(p->slots);
	return true;
}

void vs_broker_reclaim(struct vs_broker *b)
{
	size_t k = 0;
	for (size_t i = 0; i < b->n_pinned; i++)
		if (!unpin(b, &b->pinned[i]))
			b->pinned[k++] = b->pinned[i];
	b->n_pinned = k;
	vs_grace_reclaim(&b->grace);
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
		SUM(pub_bytes_received);
		SUM(pub_bytes_sent);
		SUM(bytes_received);
		SUM(bytes_sent);
		SUM(connects);
		SUM(sn_malformed);
		SUM(sn_refused);
		SUM(auth_failures);
		SUM(pub_slowed);
		SUM(pub_resumed_drain);
		SUM(pub_resumed_timer);
		SUM(writes_batched);
		SUM(write_batches);
		SUM(reads_batched);
		SUM(read_batches);
		SUM(queued);
		SUM(inflight);
#undef SUM
	}
}
