/*
 * Configuration defaults, teardown and cross-field validation (see conf.h). The reader itself,
 * with its directive table, is parse.c.
 *
 * Defaults are Mosquitto 2.0's, so a file that relies on them means the same here. The few
 * exceptions are listed in docs/configuration.md (user: NULL, not "mosquitto").
 */
#include "conf/conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

void vs_listener_conf_init(struct vs_listener_conf *l, const struct vs_config *c)
{
	memset(l, 0, sizeof(*l));
	l->port = 1883;
	l->socket_domain = AF_UNSPEC;
	l->protocol = VS_LPROTO_MQTT;
	l->max_connections = -1;
	l->max_qos = c ? c->max_qos : 2;
	l->max_topic_alias = c ? c->max_topic_alias : 10;
	l->allow_anonymous = -1;
	l->allow_zero_length_clientid = -1;
	l->mqttsn_gateway_id = 1;
	l->mqttsn_retry_ms = 10000;
	l->mqttsn_retry_count = 5;
}

void vs_listener_conf_fini(struct vs_listener_conf *l)
{
	char **strs[] = {&l->bind_address,
			 &l->bind_interface,
			 &l->mount_point,
			 &l->auto_id_prefix,
			 &l->password_file,
			 &l->acl_file,
			 &l->cafile,
			 &l->capath,
			 &l->certfile,
			 &l->keyfile,
			 &l->ciphers,
			 &l->ciphers_tls13,
			 &l->dhparamfile,
			 &l->tls_version,
			 &l->crlfile,
			 &l->psk_hint,
			 &l->psk_file,
			 &l->tls_engine,
			 &l->tls_engine_kpass_sha1,
			 &l->http_dir,
			 &l->websockets_path,
			 &l->mqttsn_predefined_topics};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	vs_strlist_fini(&l->websockets_origins);
	vs_strlist_fini(&l->websockets_trusted_proxies);
	vs_strlist_fini(&l->mqttsn_allowed_sources);
}

int vs_strlist_add(struct vs_strlist *l, const char *s)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->v = v;
	if (!(v[l->n] = strdup(s)))
		return -ENOMEM;
	l->n++;
	return 0;
}

void vs_strlist_fini(struct vs_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void vs_config_init(struct vs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->allow_anonymous = -1;
	c->allow_zero_length_clientid = true;
	c->auto_id_prefix = strdup("auto-");
	c->max_keepalive = 65535;
	c->auth_threads = 1;
	c->connect_timeout = 10;
	c->websockets_headers_size = 4096;
	c->max_inflight_messages = 1000; /* Mosquitto: 20 (docs/migration.md) */
	c->max_queued_messages = 1000;
	/* Limits a hostile client meets before any real one does (docs/security.md). */
	c->max_packet_size = 16u << 20;
	c->max_connect_packet_size = 256u << 10;
	c->max_connecting_bytes = 64u << 20;
	c->max_topic_levels = 200; /* Mosquitto's fixed limit */
	c->max_retained_feed = 1000000;
	c->global_max_connections = -1;
	c->max_unsent_bytes = 64u << 20;
	c->retain_available = true;
	c->check_retain_source = true;
	/* Viesti writes once per connection per loop turn, so Nagle's algorithm would only add
	 * latency: unlike Mosquitto, TCP_NODELAY is on unless the configuration says otherwise. */
	c->set_tcp_nodelay = true;
	c->consolidate_threads = true;
	c->io_uring = true;
	c->max_qos = 2;
	c->max_topic_alias = 10;
	c->persistent_client_expiration = -1;
	c->sys_interval = 10;
	c->cluster_stream_max_age = 3600;
	c->cluster_replicas = 1;
	c->cluster_lease_ms = 10000;
	c->cluster_ack_wait = 30;
	c->cluster_durable_sessions = true;
	c->http_timeout = 30;
	c->http_headers_size = 8192;
	c->http_body_size = 65536;
	vs_log_init(&c->log);
	c->connection_messages = true;
	c->log_timestamp = true;
	c->log_facility = -1;
	c->log_format = -1;
	c->persistence_file = strdup("mosquitto.db");
	c->persistence_fsync = VS_CONF_FSYNC_NEVER;
	c->persistence_fsync_interval_ms = 1000;
	c->autosave_interval = 1800;
}

void vs_config_fini(struct vs_config *c)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		vs_listener_conf_fini(&c->listeners[i]);
	free(c->listeners);
	char *strs[] = {c->password_file,
			c->acl_file,
			c->auto_id_prefix,
			c->psk_file,
			c->clientid_prefixes,
			c->pid_file,
			c->user,
			c->log_timestamp_format,
			c->persistence_location,
			c->persistence_file,
			c->cluster_url,
			c->cluster_node_id,
			c->cluster_credentials,
			c->cluster_username,
			c->cluster_password,
			c->cluster_cafile,
			c->cluster_certfile,
			c->cluster_keyfile};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(strs[i]);
	vs_strlist_fini(&c->http_admins);
	for (size_t i = 0; i < c->n_bridges; i++)
		vs_bridge_conf_fini(&c->bridges[i]);
	free(c->bridges);
	vs_log_fini(&c->log);
	memset(c, 0, sizeof(*c));
	c->log.fd = -1; /* so that a second vs_config_fini() closes nothing */
}

int vs_config_finish(struct vs_config *c, int port)
{
	if (c->n_listeners == 0) {
		c->listeners = calloc(1, sizeof(*c->listeners));
		if (!c->listeners)
			return -ENOMEM;
		vs_listener_conf_init(&c->listeners[0], c);
		/* Without its address the built-in listener would listen on every interface: no
		 * memory here fails the start-up instead. */
		c->listeners[0].bind_address = strdup("localhost");
		if (!c->listeners[0].bind_address) {
			free(c->listeners);
			c->listeners = NULL;
			return -ENOMEM;
		}
		c->n_listeners = 1;
		c->builtin_listener = true;
	}
	if (port)
		c->listeners[0].port = port;
	return 0;
}

static int fail(char *err, size_t errlen, const struct vs_listener_conf *l, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "listener PORT[ ADDRESS]: <message>" into err and returns VS_ECONF. */
static int fail(char *err, size_t errlen, const struct vs_listener_conf *l, const char *fmt, ...)
{
	if (!err || !errlen)
		return VS_ECONF;
	int n = 0;
	if (l)
		n = snprintf(err, errlen, "listener %d%s%s: ", l->port, l->bind_address ? " " : "",
			     l->bind_address ? l->bind_address : "");
	if (n < 0 || (size_t)n >= errlen)
		return VS_ECONF;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return VS_ECONF;
}

static int validate_tls(const struct vs_listener_conf *l, const struct vs_config *c, char *err,
			size_t errlen)
{
	if (!!l->certfile != !!l->keyfile)
		return fail(err, errlen, l, "'%s' is set without '%s', expected both or neither",
			    l->certfile ? "certfile" : "keyfile",
			    l->certfile ? "keyfile" : "certfile");
	const char *psk_file = c->per_listener_settings ? l->psk_file : c->psk_file;
	if (l->psk_hint && !psk_file)
		return fail(err, errlen, l, "'psk_hint' without a 'psk_file', expected both");
	if (!l->certfile && !l->psk_hint) {
		const char *tls_only = l->cafile		     ? "cafile"
				       : l->capath		     ? "capath"
				       : l->require_certificate	     ? "require_certificate"
				       : l->ciphers		     ? "ciphers"
				       : l->ciphers_tls13	     ? "ciphers_tls1.3"
				       : l->dhparamfile		     ? "dhparamfile"
				       : l->tls_version		     ? "tls_version"
				       : l->crlfile		     ? "crlfile"
				       : l->tls_engine		     ? "tls_engine"
				       : l->tls_keyform_engine	     ? "tls_keyform"
				       : l->use_identity_as_username ? "use_identity_as_username"
				       : l->use_subject_as_username  ? "use_subject_as_username"
								     : NULL;
		if (tls_only)
			return fail(err, errlen, l,
				    "'%s' needs TLS, expected 'certfile' and 'keyfile' (or "
				    "'psk_hint') too",
				    tls_only);
		return 0;
	}
	if (l->require_certificate && !l->cafile && !l->capath)
		return fail(err, errlen, l,
			    "'require_certificate true' needs a CA, expected 'cafile' or 'capath'");
	if (l->tls_keyform_engine && !l->tls_engine)
		return fail(err, errlen, l,
			    "'tls_keyform engine' without 'tls_engine', expected the "
			    "engine's name");
	if (l->use_identity_as_username && l->use_subject_as_username)
		return fail(err, errlen, l,
			    "both 'use_identity_as_username' and "
			    "'use_subject_as_username', expected one");
	if (l->crlfile && !l->cafile && !l->capath)
		return fail(err, errlen, l,
			    "'crlfile' without a CA, expected 'cafile' or 'capath'");
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* mount_point is a topic prefix: no wildcards (as Mosquitto); the MQTT-SN gateway's own
 * publish path (QoS -1, predefined topics) does not apply it yet. bind_interface needs an IP
 * socket. */
static int validate_mount(const struct vs_listener_conf *l, char *err, size_t errlen)
{
	if (l->bind_interface && l->socket_domain == AF_UNIX)
		return fail(err, errlen, l,
			    "bind_interface on a unix socket, expected a TCP or UDP "
			    "port");
	if (!l->mount_point)
		return 0;
	if (strpbrk(l->mount_point, "+#"))
		return fail(err, errlen, l,
			    "mount_point '%s' contains a wildcard, expected a topic "
			    "prefix without '+' or '#'",
			    l->mount_point);
	if (l->protocol == VS_LPROTO_MQTTSN)
		return fail(err, errlen, l,
			    "'mount_point' on a 'protocol mqttsn' listener is not "
			    "supported yet");
	return 0;
}

static int validate_listener(const struct vs_config *c, size_t i, char *err, size_t errlen)
{
	const struct vs_listener_conf *l = &c->listeners[i];
	if (l->port == 0 && l->socket_domain != AF_UNIX)
		return fail(err, errlen, l,
			    "port 0 needs a unix socket path, expected "
			    "'listener 0 /path/to/socket'");
	if (l->socket_domain == AF_UNIX && l->protocol == VS_LPROTO_WEBSOCKETS)
		return fail(err, errlen, l, "websockets on a unix socket, expected a TCP port");
	if (l->protocol != VS_LPROTO_WEBSOCKETS &&
	    (l->http_dir || l->websockets_path || l->websockets_origins.n ||
	     l->websockets_trusted_proxies.n))
		return fail(err, errlen, l, "'%s' on a listener without 'protocol websockets'",
			    l->http_dir		      ? "http_dir"
			    : l->websockets_path      ? "websockets_path"
			    : l->websockets_origins.n ? "websockets_origin"
						      : "websockets_trusted_proxy");
	if (l->websockets_path && l->websockets_path[0] != '/')
		return fail(err, errlen, l,
			    "websockets_path '%s', expected a path starting with '/'",
			    l->websockets_path);
	if (l->socket_domain == AF_UNIX && (l->certfile || l->psk_hint))
		return fail(err, errlen, l, "TLS on a unix socket, expected a TCP port");
	if (l->protocol == VS_LPROTO_MQTTSN) {
		if (l->socket_domain == AF_UNIX)
			return fail(err, errlen, l, "mqttsn on a unix socket, expected a UDP port");
	} else if (l->mqttsn_predefined_topics || l->mqttsn_allowed_sources.n ||
		   l->mqttsn_advertise_interval) {
		return fail(err, errlen, l, "'%s' on a listener without 'protocol mqttsn'",
			    l->mqttsn_predefined_topics	  ? "mqttsn_predefined_topics"
			    : l->mqttsn_allowed_sources.n ? "mqttsn_allowed_sources"
							  : "mqttsn_advertise_interval");
	}
	int rc = validate_mount(l, err, errlen);
	if (rc == 0)
		rc = validate_tls(l, c, err, errlen);
	if (rc)
		return rc;
	for (size_t j = 0; j < i; j++) {
		const struct vs_listener_conf *o = &c->listeners[j];
		/* UDP and TCP ports are apart: MQTT-SN may share MQTT's number. */
		if (o->port == l->port && same_str(o->bind_address, l->bind_address) &&
		    (o->protocol == VS_LPROTO_MQTTSN) == (l->protocol == VS_LPROTO_MQTTSN))
			return fail(err, errlen, l,
				    "defined twice, expected each port and address "
				    "once");
	}
	return 0;
}

/* Keeps the first message in err (vs_config_validate's single error). */
/* The first problem of bridge i ("bridge NAME: ..."), or 0. */
static int validate_bridge(const struct vs_config *c, size_t i, char *err, size_t errlen)
{
	const struct vs_bridge_conf *b = &c->bridges[i];
	const char *why = NULL;
	bool ca = b->cafile || b->capath;
	if (b->addresses.n == 0)
		why = "no 'address', expected 'address HOST[:PORT]' in its section";
	else if (!b->certfile != !b->keyfile)
		why = "bridge_certfile and bridge_keyfile go together, expected both or neither";
	else if (b->certfile && !ca)
		why =
		    "bridge_certfile without bridge_cafile or bridge_capath, expected one of them "
		    "(TLS is on only with a CA, as in Mosquitto)";
	else if (!b->psk != !b->identity)
		why = "bridge_psk and bridge_identity go together, expected both or neither";
	else if (b->psk && (ca || b->certfile))
		why = "bridge_psk with bridge_cafile, bridge_capath or bridge_certfile, expected "
		      "either a pre-shared key or certificates";
	else if (b->require_ocsp)
		why = "'bridge_require_ocsp true' is not supported yet";
	for (size_t k = 0; k < i && !why; k++) {
		const struct vs_bridge_conf *o = &c->bridges[k];
		if (b->local_clientid && o->local_clientid &&
		    strcmp(b->local_clientid, o->local_clientid) == 0)
			why = "the same local_clientid as an earlier bridge, expected a unique one";
	}
	if (!why)
		return 0;
	snprintf(err, errlen, "bridge %s: %s", b->name, why);
	return VS_ECONF;
}

struct first_err {
	char *err;
	size_t errlen;
	int n;
};

static void keep_first(void *ud, const char *msg)
{
	struct first_err *f = ud;
	if (f->n++ == 0 && f->err && f->errlen)
		snprintf(f->err, f->errlen, "%s", msg);
}

int vs_config_validate_all(struct vs_config *c, vs_conf_report_fn report, void *ud)
{
	char err[512];
	int n = 0;
	for (size_t i = 0; i < c->n_listeners; i++) {
		if (validate_listener(c, i, err, sizeof(err))) {
			report(ud, err);
			n++;
		}
	}
	for (size_t i = 0; i < c->n_bridges; i++) {
		if (validate_bridge(c, i, err, sizeof(err))) {
			report(ud, err);
			n++;
		}
	}
	if (c->persistence_file && strchr(c->persistence_file, '/')) {
		fail(err, sizeof(err), NULL,
		     "persistence_file '%s' contains '/', expected a file "
		     "name (set the directory with persistence_location)",
		     c->persistence_file);
		report(ud, err);
		n++;
	}
	if ((c->log.dests & VS_LOGD_FILE) && !c->log.file_path) {
		fail(err, sizeof(err), NULL,
		     "log_dest file without a path, expected "
		     "'log_dest file PATH'");
		report(ud, err);
		n++;
	}
	c->log.timestamps = c->log_timestamp;
	return n;
}

int vs_config_validate(struct vs_config *c, char *err, size_t errlen)
{
	struct first_err f = {.err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	return vs_config_validate_all(c, keep_first, &f) ? VS_ECONF : 0;
}
