/*
 * Unit tests for src/conf: defaults, every directive family, listener scoping, include_dir, and
 * every error message form with its FILE:LINE. Test names read as a checklist.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "conf/conf.h"

static char err[512];

/* Parses text into a fresh config; returns the parse result (the config stays for inspection). */
static int parse(struct vs_config *c, const char *text)
{
	vs_config_init(c);
	return vs_config_parse_string(c, text, "test.conf", err, sizeof(err));
}

/* Asserts that text fails to parse with exactly the message want. */
static void expect_error(const char *text, const char *want)
{
	struct vs_config c;
	int rc = parse(&c, text);
	if (rc != VS_ECONF || strcmp(err, want) != 0)
		print_error("text:\n%s\nwant: %s\ngot (%d): %s\n", text, want, rc, err);
	assert_int_equal(rc, VS_ECONF);
	assert_string_equal(err, want);
	vs_config_fini(&c);
}

static void expect_ok(struct vs_config *c, const char *text)
{
	int rc = parse(c, text);
	if (rc != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(rc, 0);
}

static void defaults_are_mosquittos(void **state)
{
	struct vs_config c;
	expect_ok(&c, "");
	assert_int_equal(c.n_listeners, 0);
	assert_false(c.has_default_listener);
	assert_int_equal(c.threads, 0);
	assert_true(c.consolidate_threads);
	assert_true(c.io_uring);
	assert_int_equal(c.allow_anonymous, -1);
	assert_false(c.per_listener_settings);
	assert_null(c.password_file);
	assert_null(c.acl_file);
	assert_true(c.allow_zero_length_clientid);
	assert_string_equal(c.auto_id_prefix, "auto-");
	assert_int_equal(c.max_keepalive, 65535);
	/* Viesti's hardening limits (docs/security.md), where Mosquitto has none. */
	assert_int_equal(c.max_packet_size, 16 << 20);
	assert_int_equal(c.max_connect_packet_size, 256 << 10);
	assert_int_equal(c.max_connecting_bytes, 64 << 20);
	assert_int_equal(c.max_topic_levels, 200);
	assert_int_equal(c.max_retained_feed, 1000000);
	assert_int_equal(c.message_size_limit, 0);
	/* Chosen for speed, unlike Mosquitto's 20 (docs/migration.md). */
	assert_int_equal(c.max_inflight_messages, 1000);
	assert_int_equal(c.max_inflight_bytes, 0);
	assert_int_equal(c.max_queued_messages, 1000);
	assert_int_equal(c.max_queued_bytes, 0);
	assert_false(c.queue_qos0_messages);
	assert_true(c.retain_available);
	assert_true(c.check_retain_source);
	assert_false(c.upgrade_outgoing_qos);
	assert_int_equal(c.persistent_client_expiration, -1);
	assert_int_equal(c.sys_interval, 10);
	assert_int_equal(c.max_topic_alias, 10);
	assert_int_equal(c.max_qos, 2);
	assert_null(c.pid_file);
	assert_null(c.user);
	assert_true(c.connection_messages);
	assert_true(c.log_timestamp);
	assert_null(c.log_timestamp_format);
	assert_int_equal(c.log.types, VS_LOG_ERR | VS_LOG_WARN | VS_LOG_NOTICE | VS_LOG_INFO);
	assert_int_equal(c.log.dests, VS_LOGD_STDERR);
	assert_null(c.log.file_path);
	assert_false(c.persistence);
	assert_null(c.persistence_location);
	assert_string_equal(c.persistence_file, "mosquitto.db");
	assert_int_equal(c.persistence_fsync, VS_CONF_FSYNC_NEVER);
	assert_int_equal(c.autosave_interval, 1800);
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	vs_config_fini(&c);
}

static void comments_blank_lines_whitespace_and_crlf(void **state)
{
	struct vs_config c;
	expect_ok(&c, "# a comment\n"
		      "\n"
		      "   \t\n"
		      "   # indented comment\n"
		      "  sys_interval   30  \r\n"
		      "\tmax_keepalive\t60\n"
		      "persistence true"); /* no final newline */
	assert_int_equal(c.sys_interval, 30);
	assert_int_equal(c.max_keepalive, 60);
	assert_true(c.persistence);
	vs_config_fini(&c);
}

static void general_directives(void **state)
{
	struct vs_config c;
	expect_ok(&c, "threads 4\n"
		      "consolidate_threads false\n"
		      "io_uring false\n"
		      "allow_anonymous false\n"
		      "password_file /etc/mosquitto/passwd\n"
		      "acl_file /etc/mosquitto/acl\n"
		      "allow_zero_length_clientid false\n"
		      "auto_id_prefix gen-\n"
		      "clientid_prefixes secure-\n"
		      "max_keepalive 120\n"
		      "max_packet_size 1048576\n"
		      "max_connect_packet_size 4096\n"
		      "max_connecting_bytes 0\n"
		      "max_topic_levels 16\n"
		      "max_retained_feed 0\n"
		      "message_size_limit 268435455\n"
		      "max_inflight_messages 0\n"
		      "max_inflight_bytes 18446744073\n"
		      "max_queued_messages 5000\n"
		      "max_queued_bytes 1000000\n"
		      "memory_limit 0\n"
		      "queue_qos0_messages true\n"
		      "retain_available false\n"
		      "upgrade_outgoing_qos true\n"
		      "check_retain_source false\n"
		      "set_tcp_nodelay true\n"
		      "sys_interval 0\n"
		      "pid_file /run/mosquitto.pid\n"
		      "user nobody\n"
		      "allow_duplicate_messages true\n");
	assert_int_equal(c.threads, 4);
	assert_false(c.consolidate_threads);
	assert_false(c.io_uring);
	assert_int_equal(c.allow_anonymous, 0);
	assert_string_equal(c.password_file, "/etc/mosquitto/passwd");
	assert_string_equal(c.acl_file, "/etc/mosquitto/acl");
	assert_false(c.allow_zero_length_clientid);
	assert_string_equal(c.auto_id_prefix, "gen-");
	assert_string_equal(c.clientid_prefixes, "secure-");
	assert_int_equal(c.max_keepalive, 120);
	assert_int_equal(c.max_packet_size, 1048576);
	assert_int_equal(c.max_connect_packet_size, 4096);
	assert_int_equal(c.max_connecting_bytes, 0);
	assert_int_equal(c.max_topic_levels, 16);
	assert_int_equal(c.max_retained_feed, 0);
	assert_int_equal(c.message_size_limit, 268435455);
	assert_int_equal(c.max_inflight_messages, 0);
	assert_true(c.max_inflight_bytes == 18446744073ULL);
	assert_int_equal(c.max_queued_messages, 5000);
	assert_int_equal(c.max_queued_bytes, 1000000);
	assert_true(c.queue_qos0_messages);
	assert_false(c.retain_available);
	assert_true(c.upgrade_outgoing_qos);
	assert_false(c.check_retain_source);
	assert_true(c.set_tcp_nodelay);
	assert_int_equal(c.sys_interval, 0);
	assert_string_equal(c.pid_file, "/run/mosquitto.pid");
	assert_string_equal(c.user, "nobody");
	assert_int_equal(c.n_listeners, 0); /* no listener directive: no listener */
	vs_config_fini(&c);
}

static void string_values_take_the_rest_of_the_line(void **state)
{
	struct vs_config c;
	expect_ok(&c, "password_file /srv/my files/passwd  \n"
		      "persistence_location /var/lib/my broker/\n"
		      "log_timestamp_format %Y-%m-%dT%H:%M:%S\n");
	assert_string_equal(c.password_file, "/srv/my files/passwd");
	assert_string_equal(c.persistence_location, "/var/lib/my broker/");
	assert_string_equal(c.log_timestamp_format, "%Y-%m-%dT%H:%M:%S");
	vs_config_fini(&c);
}

/* Mosquitto's rule: after a directive's words, the rest of the line is ignored, so "# ..." there
 * is a comment; a value that is the rest of the line keeps its '#'. */
static void trailing_comments_where_mosquitto_ignores_them(void **state)
{
	struct vs_config c;
	expect_ok(&c, "max_queued_messages 5000   # per client\n"
		      "persistence true # keep it\n"
		      "log_dest stderr\t# and\n"
		      "log_type debug #all of it\n"
		      "persistent_client_expiration 14d # two weeks\n"
		      "password_file /etc/a # b\n"
		      "mount_point t/#\n"
		      "listener 1884 # public\n"
		      "protocol websockets # browsers\n"
		      "listener 1885 127.0.0.1 # local\n"
		      "max_connections 10 ## ten\n"
		      "log_dest file /var/log/x # y\n");
	assert_int_equal(c.max_queued_messages, 5000);
	assert_true(c.persistence);
	assert_int_equal(c.persistent_client_expiration, 14 * 86400);
	assert_true(c.log.types & VS_LOG_DEBUG);
	assert_string_equal(c.password_file, "/etc/a # b");
	assert_string_equal(c.log.file_path, "/var/log/x # y");
	assert_int_equal(c.n_listeners, 3);
	assert_string_equal(c.listeners[0].mount_point, "t/#");
	assert_int_equal(c.listeners[1].port, 1884);
	assert_null(c.listeners[1].bind_address);
	assert_int_equal(c.listeners[1].protocol, VS_LPROTO_WEBSOCKETS);
	assert_string_equal(c.listeners[2].bind_address, "127.0.0.1");
	assert_int_equal(c.listeners[2].max_connections, 10);
	vs_config_fini(&c);
	/* A '#' that is the value, or glued to it, is no comment. */
	expect_error("port #\n", "test.conf:1: bad value '#' for 'port', expected an integer from "
				 "1 to 65535");
	expect_error("port 1883#x\n", "test.conf:1: bad value '1883#x' for 'port', expected an "
				      "integer from 1 to 65535");
	/* Mosquitto reads these three to the end of the line: the '#' is in the value there. */
	expect_error("listener 8883\ntls_version tlsv1.2 # x\n",
		     "test.conf:2: unexpected '#' after the value of 'tls_version', expected end "
		     "of line");
	expect_error("bind_address 127.0.0.1 # x\n", "test.conf:1: unexpected '#' after the value "
						     "of 'bind_address', expected end of line");
}

static void log_format_directive(void **state)
{
	struct vs_config c;
	vs_config_init(&c);
	assert_int_equal(c.log_format, -1); /* unset: the command decides (docs/migration.md) */
	vs_config_fini(&c);
	expect_ok(&c, "log_format mosquitto # as before\n");
	assert_int_equal(c.log_format, VS_CONF_LOG_MOSQUITTO);
	vs_config_fini(&c);
	expect_ok(&c, "log_format mosquitto\nlog_format viesti\n");
	assert_int_equal(c.log_format, VS_CONF_LOG_VIESTI);
	vs_config_fini(&c);
	expect_ok(&c, "log_format json\n");
	assert_int_equal(c.log_format, VS_CONF_LOG_JSON);
	vs_config_fini(&c);
	expect_error("log_format xml\n", "test.conf:1: bad value 'xml' for 'log_format', expected "
					 "viesti, mosquitto or json");
}

static void later_value_overrides_earlier(void **state)
{
	struct vs_config c;
	expect_ok(&c, "password_file /a\npassword_file /b\nsys_interval 5\nsys_interval 6\n");
	assert_string_equal(c.password_file, "/b");
	assert_int_equal(c.sys_interval, 6);
	vs_config_fini(&c);
}

static void persistent_client_expiration_units(void **state)
{
	static const struct {
		const char *text;
		int64_t seconds;
	} cases[] = {
	    {"persistent_client_expiration 1h", 3600},
	    {"persistent_client_expiration 2d", 2 * 86400},
	    {"persistent_client_expiration 1w", 7 * 86400},
	    {"persistent_client_expiration 3m", 3 * 30 * 86400},
	    {"persistent_client_expiration 1y", 365 * 86400},
	    {"persistent_client_expiration 14d", 14 * 86400},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_config c;
		expect_ok(&c, cases[i].text);
		assert_int_equal(c.persistent_client_expiration, cases[i].seconds);
		vs_config_fini(&c);
	}
	const char *want = "test.conf:1: bad value '%s' for 'persistent_client_expiration', "
			   "expected a positive number followed by h, d, w, m or y (hours, days, "
			   "weeks, months, years), like 14d";
	const char *bad[] = {"3600", "d", "0d", "-1d", "1.5d", "1x", "99999999999999999999y"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[128], msg[512];
		snprintf(text, sizeof(text), "persistent_client_expiration %s", bad[i]);
		snprintf(msg, sizeof(msg), want, bad[i]);
		expect_error(text, msg);
	}
}

static void logging_directives_accumulate(void **state)
{
	struct vs_config c;
	expect_ok(&c, "log_dest stdout\n"
		      "log_dest syslog\n"
		      "log_dest file /var/log/mosquitto/my log.txt\n"
		      "log_type error\n"
		      "log_type subscribe\n"
		      "log_timestamp false\n"
		      "log_facility 5\n"
		      "connection_messages false\n");
	assert_int_equal(c.log.dests, VS_LOGD_STDOUT | VS_LOGD_SYSLOG | VS_LOGD_FILE);
	assert_string_equal(c.log.file_path, "/var/log/mosquitto/my log.txt");
	assert_int_equal(c.log.types, VS_LOG_ERR | VS_LOG_SUBSCRIBE);
	assert_false(c.log_timestamp);
	assert_false(c.log.timestamps);
	assert_int_equal(c.log_facility, 5);
	assert_false(c.connection_messages);
	vs_config_fini(&c);

	expect_ok(&c, "log_type all\nlog_dest none\n");
	assert_int_equal(c.log.types, VS_LOG_ALL);
	assert_int_equal(c.log.dests, 0);
	vs_config_fini(&c);

	expect_ok(&c, "log_type debug\nlog_type none\n");
	assert_int_equal(c.log.types, 0);
	vs_config_fini(&c);

	expect_error("log_dest file /a\nlog_dest file /b\n",
		     "test.conf:2: second 'log_dest file', expected one log file");
	expect_error(
	    "log_dest file\n",
	    "test.conf:1: missing path for 'log_dest file', expected 'log_dest file PATH'");
	expect_ok(&c, "log_dest topic\nlog_dest stdout\n");
	assert_int_equal(c.log.dests, VS_LOGD_TOPIC | VS_LOGD_STDOUT);
	vs_config_fini(&c);
	expect_error("log_dest dlt\n", "test.conf:1: 'log_dest dlt' is not supported yet");
	expect_error("log_dest console\n",
		     "test.conf:1: bad value 'console' for 'log_dest', "
		     "expected stderr, stdout, syslog, topic, file PATH or none");
	expect_error("log_type verbose\n",
		     "test.conf:1: bad value 'verbose' for 'log_type', expected error, warning, "
		     "notice, information, debug, subscribe, unsubscribe, websockets, none or all");
	expect_error("log_facility 8\n", "test.conf:1: bad value '8' for 'log_facility', "
					 "expected an integer from 0 to 7");
}

static void persistence_directives(void **state)
{
	struct vs_config c;
	expect_ok(&c, "persistence true\n"
		      "persistence_location /var/lib/mosquitto/\n"
		      "persistence_file broker.db\n"
		      "autosave_interval 60\n"
		      "autosave_on_changes true\n"
		      "persistence_fsync interval 250\n");
	assert_true(c.persistence);
	assert_string_equal(c.persistence_location, "/var/lib/mosquitto/");
	assert_string_equal(c.persistence_file, "broker.db");
	assert_int_equal(c.autosave_interval, 60);
	assert_true(c.autosave_on_changes);
	assert_int_equal(c.persistence_fsync, VS_CONF_FSYNC_INTERVAL);
	assert_int_equal(c.persistence_fsync_interval_ms, 250);
	vs_config_fini(&c);

	expect_ok(&c, "persistence_fsync batch\n");
	assert_int_equal(c.persistence_fsync, VS_CONF_FSYNC_BATCH);
	vs_config_fini(&c);
	expect_ok(&c, "persistence_fsync batch\npersistence_fsync never\n");
	assert_int_equal(c.persistence_fsync, VS_CONF_FSYNC_NEVER);
	vs_config_fini(&c);

	expect_error("persistence_fsync sometimes\n",
		     "test.conf:1: bad value 'sometimes' for 'persistence_fsync', expected never, "
		     "batch or interval MS");
	expect_error("persistence_fsync interval\n",
		     "test.conf:1: missing value for 'persistence_fsync', expected an integer "
		     "from 1 to 3600000");
	expect_error("persistence_fsync interval 0\n",
		     "test.conf:1: bad value '0' for 'persistence_fsync', expected an integer from "
		     "1 to 3600000");
}

static void cluster_jetstream_directives(void **state)
{
	(void)state;
	struct vs_config c;
	expect_ok(&c, "cluster_url nats://127.0.0.1:4222\n");
	assert_int_equal(c.cluster_stream_max_age, 3600); /* docs/cluster.md */
	assert_int_equal(c.cluster_replicas, 1);
	assert_int_equal(c.cluster_lease_ms, 10000);
	assert_int_equal(c.cluster_ack_wait, 30);
	assert_false(c.cluster_durable_all);
	assert_true(c.cluster_durable_sessions);
	vs_config_fini(&c);
	expect_ok(&c, "cluster_stream_max_age 86400\ncluster_replicas 3\ncluster_lease 2.5\n"
		      "cluster_durable_all true\ncluster_durable_sessions false\n"
		      "cluster_ack_wait 5\n");
	assert_int_equal(c.cluster_ack_wait, 5);
	assert_true(c.cluster_durable_all);
	assert_false(c.cluster_durable_sessions);
	assert_int_equal(c.cluster_stream_max_age, 86400);
	assert_int_equal(c.cluster_replicas, 3);
	assert_int_equal(c.cluster_lease_ms, 2500);
	vs_config_fini(&c);
	expect_error("cluster_replicas 6\n", "test.conf:1: bad value '6' for 'cluster_replicas', "
					     "expected an integer from 1 to 5");
	expect_error("cluster_stream_max_age 0\n",
		     "test.conf:1: bad value '0' for 'cluster_stream_max_age', expected an integer "
		     "from 1 to 31536000");
	expect_error("cluster_ack_wait 0\n", "test.conf:1: bad value '0' for 'cluster_ack_wait', "
					     "expected an integer from 1 to 3600");
}

static void port_configures_the_default_listener(void **state)
{
	struct vs_config c;
	expect_ok(&c, "port 1884\nbind_address 127.0.0.1\nmax_connections 10\n");
	assert_int_equal(c.n_listeners, 1);
	assert_true(c.has_default_listener);
	assert_int_equal(c.listeners[0].port, 1884);
	assert_string_equal(c.listeners[0].bind_address, "127.0.0.1");
	assert_int_equal(c.listeners[0].max_connections, 10);
	assert_int_equal(c.listeners[0].socket_domain, AF_UNSPEC);
	assert_int_equal(c.listeners[0].protocol, VS_LPROTO_MQTT);
	vs_config_fini(&c);

	/* A per-listener directive alone creates the default listener on 1883. */
	expect_ok(&c, "max_connections 5\n");
	assert_int_equal(c.n_listeners, 1);
	assert_int_equal(c.listeners[0].port, 1883);
	assert_int_equal(c.listeners[0].max_connections, 5);
	vs_config_fini(&c);
}

static void per_listener_directives_follow_the_last_listener(void **state)
{
	struct vs_config c;
	expect_ok(&c, "listener 1883\n"
		      "max_connections 100\n"
		      "listener 8883 0.0.0.0\n"
		      "certfile /c.pem\n"
		      "keyfile /k.pem\n"
		      "cafile /ca.pem\n"
		      "require_certificate true\n"
		      "use_identity_as_username true\n"
		      "tls_version tlsv1.2\n"
		      "ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n"
		      "crlfile /crl.pem\n"
		      "psk_hint hint one\n"
		      "tls_keyform engine\n"
		      "tls_engine pkcs11\n"
		      "tls_engine_kpass_sha1 00ff\n"
		      "psk_file /etc/psk\n"
		      "max_qos 1\n"
		      "max_topic_alias 0\n"
		      "mount_point tls/\n"
		      "listener 9001\n"
		      "protocol websockets\n"
		      "http_dir /var/www\n"
		      "websockets_path /mqtt\n"
		      "websockets_origin https://a.example\n"
		      "websockets_origin https://b.example\n"
		      "websockets_trusted_proxy 10.0.0.1\n"
		      "websockets_headers_size 8192\n"
		      "socket_domain ipv6\n"
		      "bind_interface eth0\n"
		      "use_username_as_clientid true\n"
		      "sys_interval 20\n"); /* global, even after a listener */
	assert_int_equal(c.n_listeners, 3);
	assert_false(c.has_default_listener);
	struct vs_listener_conf *a = &c.listeners[0], *b = &c.listeners[1], *w = &c.listeners[2];
	assert_string_equal(w->http_dir, "/var/www");
	assert_string_equal(w->websockets_path, "/mqtt");
	assert_int_equal(w->websockets_origins.n, 2);
	assert_string_equal(w->websockets_origins.v[1], "https://b.example");
	assert_int_equal(w->websockets_trusted_proxies.n, 1);
	assert_string_equal(w->websockets_trusted_proxies.v[0], "10.0.0.1");
	assert_int_equal(c.websockets_headers_size, 8192);
	assert_null(a->http_dir);
	assert_int_equal(a->port, 1883);
	assert_null(a->bind_address);
	assert_int_equal(a->max_connections, 100);
	assert_null(a->certfile);
	assert_int_equal(a->max_qos, 2);
	assert_int_equal(b->port, 8883);
	assert_string_equal(b->bind_address, "0.0.0.0");
	assert_int_equal(b->max_connections, -1);
	assert_string_equal(b->certfile, "/c.pem");
	assert_string_equal(b->keyfile, "/k.pem");
	assert_string_equal(b->cafile, "/ca.pem");
	assert_true(b->require_certificate);
	assert_true(b->use_identity_as_username);
	assert_string_equal(b->tls_version, "tlsv1.2");
	assert_string_equal(b->ciphers_tls13, "TLS_AES_128_GCM_SHA256");
	assert_string_equal(b->crlfile, "/crl.pem");
	assert_string_equal(b->psk_hint, "hint one");
	assert_true(b->tls_keyform_engine);
	assert_string_equal(b->tls_engine, "pkcs11");
	assert_string_equal(b->tls_engine_kpass_sha1, "00ff");
	assert_string_equal(c.psk_file, "/etc/psk"); /* a security directive: global */
	assert_null(b->psk_file);
	assert_int_equal(b->max_qos, 1);
	assert_int_equal(b->max_topic_alias, 0);
	assert_string_equal(b->mount_point, "tls/");
	assert_int_equal(w->port, 9001);
	assert_int_equal(w->protocol, VS_LPROTO_WEBSOCKETS);
	assert_int_equal(w->socket_domain, AF_INET6);
	assert_string_equal(w->bind_interface, "eth0");
	assert_true(w->use_username_as_clientid);
	assert_int_equal(c.sys_interval, 20);
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	vs_config_fini(&c);
}

static void http_listener_and_admins(void **state)
{
	struct vs_config c;
	assert_int_equal(parse(&c, ""), 0);
	assert_int_equal(c.http_timeout, 30);
	assert_int_equal(c.http_headers_size, 8192);
	assert_int_equal(c.http_body_size, 65536);
	vs_config_fini(&c);
	assert_int_equal(parse(&c, "http_admin alice\n"
				   "listener 9100 127.0.0.1\n"
				   "protocol http\n"
				   "http_admin bob\n" /* global, wherever it is */
				   "http_timeout 5\n"
				   "http_headers_size 4096\n"
				   "http_body_size 0\n"),
			 0);
	assert_int_equal(c.n_listeners, 1);
	assert_int_equal(c.listeners[0].protocol, VS_LPROTO_HTTP);
	assert_int_equal(c.http_admins.n, 2);
	assert_string_equal(c.http_admins.v[0], "alice");
	assert_string_equal(c.http_admins.v[1], "bob");
	assert_int_equal(c.http_timeout, 5);
	assert_int_equal(c.http_headers_size, 4096);
	assert_int_equal(c.http_body_size, 0);
	vs_config_fini(&c);
}

static void port_after_listeners_inserts_default_listener_first(void **state)
{
	struct vs_config c;
	expect_ok(&c, "listener 8883\n"
		      "port 1884\n"
		      "max_connections 7\n"); /* still applies to listener 8883 */
	assert_int_equal(c.n_listeners, 2);
	assert_true(c.has_default_listener);
	assert_int_equal(c.listeners[0].port, 1884);
	assert_int_equal(c.listeners[0].max_connections, -1);
	assert_int_equal(c.listeners[1].port, 8883);
	assert_int_equal(c.listeners[1].max_connections, 7);
	vs_config_fini(&c);
}

static void unix_socket_listener(void **state)
{
	struct vs_config c;
	expect_ok(&c, "listener 0 /run/viesti.sock\n");
	assert_int_equal(c.listeners[0].port, 0);
	assert_int_equal(c.listeners[0].socket_domain, AF_UNIX);
	assert_string_equal(c.listeners[0].bind_address, "/run/viesti.sock");
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	vs_config_fini(&c);
	expect_error("listener 0\n", "test.conf:1: 'listener 0' without a socket path, expected "
				     "'listener 0 PATH' or a port from 1 to 65535");
}

static void security_is_global_without_per_listener_settings(void **state)
{
	struct vs_config c;
	expect_ok(&c, "listener 1883\n"
		      "allow_anonymous true\n"
		      "password_file /p\n");
	assert_int_equal(c.allow_anonymous, 1);
	assert_string_equal(c.password_file, "/p");
	assert_int_equal(c.listeners[0].allow_anonymous, -1);
	assert_null(c.listeners[0].password_file);
	vs_config_fini(&c);
}

static void security_is_per_listener_with_per_listener_settings(void **state)
{
	struct vs_config c;
	expect_ok(&c, "per_listener_settings true\n"
		      "listener 1883 127.0.0.1\n"
		      "allow_anonymous true\n"
		      "listener 8883\n"
		      "allow_anonymous false\n"
		      "password_file /p\n"
		      "acl_file /acl\n"
		      "allow_zero_length_clientid false\n"
		      "auto_id_prefix l2-\n");
	assert_true(c.per_listener_settings);
	assert_int_equal(c.allow_anonymous, -1);
	assert_null(c.password_file);
	assert_true(c.allow_zero_length_clientid);
	assert_string_equal(c.auto_id_prefix, "auto-");
	assert_int_equal(c.listeners[0].allow_anonymous, 1);
	assert_null(c.listeners[0].password_file);
	assert_int_equal(c.listeners[0].allow_zero_length_clientid, -1);
	assert_int_equal(c.listeners[1].allow_anonymous, 0);
	assert_string_equal(c.listeners[1].password_file, "/p");
	assert_string_equal(c.listeners[1].acl_file, "/acl");
	assert_int_equal(c.listeners[1].allow_zero_length_clientid, 0);
	assert_string_equal(c.listeners[1].auto_id_prefix, "l2-");
	vs_config_fini(&c);

	/* Before any listener, per-listener security goes to the default listener. */
	expect_ok(&c, "per_listener_settings true\nallow_anonymous true\n");
	assert_int_equal(c.n_listeners, 1);
	assert_int_equal(c.listeners[0].allow_anonymous, 1);
	assert_int_equal(c.allow_anonymous, -1);
	vs_config_fini(&c);

	expect_error("password_file /p\nper_listener_settings true\n",
		     "test.conf:2: 'per_listener_settings' after a listener or security "
		     "directive, expected it before them");
	expect_error("listener 1883\nper_listener_settings true\n",
		     "test.conf:2: 'per_listener_settings' after a listener or security "
		     "directive, expected it before them");
}

static void error_unknown_directive(void **state)
{
	expect_error("sys_interval 10\n\nfrobnicate 1\n",
		     "test.conf:3: unknown directive 'frobnicate', expected a mosquitto.conf "
		     "directive (see docs/configuration.md)");
	/* Names are case-sensitive, as in Mosquitto. */
	expect_error("Port 1883\n", "test.conf:1: unknown directive 'Port', expected a "
				    "mosquitto.conf directive (see docs/configuration.md)");
}

static void error_not_supported_yet(void **state)
{
	expect_error("connection b\nbridge_bind_address 10.0.0.1\n",
		     "test.conf:2: 'bridge_bind_address' is not supported yet");
	expect_error("auth_plugin /x.so\n", "test.conf:1: 'auth_plugin' is not supported yet");
	expect_error("plugin /usr/lib/dynamic-security.so\n",
		     "test.conf:1: 'plugin' is not supported yet");
	expect_error("plugin_opt_config_file /x.json\n",
		     "test.conf:1: 'plugin_opt_config_file' is not supported yet");
	expect_error("auth_opt_backends mysql\n",
		     "test.conf:1: 'auth_opt_backends' is not supported yet");
	expect_error(
	    "listener 8080\nprotocol websockets\nwebsockets_trusted_proxy proxy.local\n",
	    "test.conf:3: bad value 'proxy.local' for 'websockets_trusted_proxy', expected "
	    "an IPv4 or IPv6 address");
	expect_error("allow_duplicate_messages false\n",
		     "test.conf:1: 'allow_duplicate_messages false' is not supported yet");
	expect_error("retry_interval 20\n", "test.conf:1: 'retry_interval' was removed in "
					    "Mosquitto 2.0 and has no effect, expected the line "
					    "deleted");
}

static void error_bad_bool(void **state)
{
	expect_error("persistence yes\n", "test.conf:1: bad value 'yes' for 'persistence', "
					  "expected true or false");
	expect_error("\n\nallow_anonymous TRUE\n", "test.conf:3: bad value 'TRUE' for "
						   "'allow_anonymous', expected true or false");
	expect_error(
	    "listener 1\nrequire_certificate 1\n",
	    "test.conf:2: bad value '1' for 'require_certificate', expected true or false");
}

static void error_bad_number(void **state)
{
	expect_error("sys_interval ten\n", "test.conf:1: bad value 'ten' for 'sys_interval', "
					   "expected an integer from 0 to 65535");
	expect_error("sys_interval 10s\n", "test.conf:1: bad value '10s' for 'sys_interval', "
					   "expected an integer from 0 to 65535");
	expect_error("sys_interval -1\n", "test.conf:1: bad value '-1' for 'sys_interval', "
					  "expected an integer from 0 to 65535");
	expect_error(
	    "port 70000\n",
	    "test.conf:1: bad value '70000' for 'port', expected an integer from 1 to 65535");
	expect_error("port 0\n",
		     "test.conf:1: bad value '0' for 'port', expected an integer from 1 to 65535");
	expect_error("listener 65536\n", "test.conf:1: bad value '65536' for 'listener', "
					 "expected an integer from 0 to 65535");
	expect_error("max_queued_messages 99999999999999999999999\n",
		     "test.conf:1: bad value '99999999999999999999999' for 'max_queued_messages', "
		     "expected an integer from 0 to 2147483647");
	expect_error(
	    "max_queued_bytes 9223372036854775808\n",
	    "test.conf:1: bad value '9223372036854775808' for 'max_queued_bytes', expected "
	    "an integer from 0 to 9223372036854775807");
	expect_error("max_connections -2\n", "test.conf:1: bad value '-2' for 'max_connections', "
					     "expected an integer from -1 to 2147483647");
	expect_error("max_qos 3\n",
		     "test.conf:1: bad value '3' for 'max_qos', expected an integer from 0 to 2");
	expect_error("max_packet_size 19\n", "test.conf:1: bad value '19' for 'max_packet_size', "
					     "expected 0 (no limit) or at least 20");
	expect_error("message_size_limit 268435456\n",
		     "test.conf:1: bad value '268435456' for 'message_size_limit', expected an "
		     "integer from 0 to 268435455");
	expect_error("sys_interval -\n", "test.conf:1: bad value '-' for 'sys_interval', "
					 "expected an integer from 0 to 65535");
	expect_error("sys_interval 0x10\n", "test.conf:1: bad value '0x10' for 'sys_interval', "
					    "expected an integer from 0 to 65535");
}

static void error_missing_argument(void **state)
{
	expect_error("port\n", "test.conf:1: missing value for 'port', expected an integer from 1 "
			       "to 65535");
	expect_error("persistence\n",
		     "test.conf:1: missing value for 'persistence', expected true or false");
	expect_error("password_file   \n",
		     "test.conf:1: missing value for 'password_file', expected a value");
	expect_error("listener\n", "test.conf:1: missing value for 'listener', expected a port "
				   "from 0 to 65535 and an optional address");
	expect_error(
	    "protocol\n",
	    "test.conf:1: missing value for 'protocol', expected mqtt, websockets, mqttsn or "
	    "http");
	expect_error("include_dir\n",
		     "test.conf:1: missing value for 'include_dir', expected a directory");
}

static void error_extra_argument(void **state)
{
	expect_error("persistence true false\n", "test.conf:1: unexpected 'false' after the value "
						 "of 'persistence', expected end of line");
	expect_error("port 1883 default # x\n", "test.conf:1: unexpected 'default' after the "
						"value of 'port', expected end of line");
	expect_error("listener 1883 0.0.0.0 extra\n", "test.conf:1: unexpected 'extra' after the "
						      "value of 'listener', expected end of line");
	expect_error("log_dest stderr stdout\n", "test.conf:1: unexpected 'stdout' after the value "
						 "of 'log_dest', expected end of line");
	expect_error("protocol mqtt websockets\n", "test.conf:1: unexpected 'websockets' after "
						   "the value of 'protocol', expected end of line");
}

static void error_bad_choice(void **state)
{
	expect_error("listener 1\nprotocol https\n",
		     "test.conf:2: bad value 'https' for "
		     "'protocol', expected mqtt, websockets, mqttsn or http");
	expect_error("socket_domain ipx\n", "test.conf:1: bad value 'ipx' for 'socket_domain', "
					    "expected ipv4 or ipv6");
	expect_error("tls_version sslv3\n", "test.conf:1: bad value 'sslv3' for 'tls_version', "
					    "expected tlsv1.1, tlsv1.2 or tlsv1.3");
}

static void error_messages_are_truncated_safely(void **state)
{
	struct vs_config c;
	char small[16];
	vs_config_init(&c);
	int rc = vs_config_parse_string(&c, "nonsense 1\n", "a-very-long-file-name.conf", small,
					sizeof(small));
	assert_int_equal(rc, VS_ECONF);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	vs_config_fini(&c);
	vs_config_init(&c);
	assert_int_equal(vs_config_parse_string(&c, "nonsense 1\n", NULL, NULL, 0), VS_ECONF);
	vs_config_fini(&c);
}

static void validate_cross_field_checks(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
	    {"listener 8883\ncertfile /c\n",
	     "listener 8883: 'certfile' is set without 'keyfile', expected both or neither"},
	    {"listener 8883\nkeyfile /k\n",
	     "listener 8883: 'keyfile' is set without 'certfile', expected both or neither"},
	    {"listener 8883 ::1\ncafile /ca\n",
	     "listener 8883 ::1: 'cafile' needs TLS, expected 'certfile' and 'keyfile' (or "
	     "'psk_hint') too"},
	    {"listener 8883\npsk_hint h\n",
	     "listener 8883: 'psk_hint' without a 'psk_file', expected both"},
	    {"listener 8883\ncertfile /c\nkeyfile /k\ntls_keyform engine\n",
	     "listener 8883: 'tls_keyform engine' without 'tls_engine', expected the engine's "
	     "name"},
	    {"listener 8883\ncertfile /c\nkeyfile /k\ncrlfile /crl\n",
	     "listener 8883: 'crlfile' without a CA, expected 'cafile' or 'capath'"},
	    {"listener 8883\ncertfile /c\nkeyfile /k\nuse_identity_as_username true\n"
	     "use_subject_as_username true\n",
	     "listener 8883: both 'use_identity_as_username' and 'use_subject_as_username', "
	     "expected one"},
	    {"listener 0 /s\npsk_hint h\n",
	     "listener 0 /s: TLS on a unix socket, expected a TCP port"},
	    {"listener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true\n",
	     "listener 8883: 'require_certificate true' needs a CA, expected 'cafile' or "
	     "'capath'"},
	    {"listener 1883\nlistener 1883\n",
	     "listener 1883: defined twice, expected each port and address once"},
	    {"port 1883\nlistener 1883\n",
	     "listener 1883: defined twice, expected each port and address once"},
	    {"listener 0 /s\nprotocol websockets\n",
	     "listener 0 /s: websockets on a unix socket, expected a TCP port"},
	    {"listener 8080\nhttp_dir /var/www\n",
	     "listener 8080: 'http_dir' on a listener without 'protocol websockets'"},
	    {"listener 8080\nwebsockets_origin https://a.example\n",
	     "listener 8080: 'websockets_origin' on a listener without 'protocol websockets'"},
	    {"listener 8080\nprotocol websockets\nwebsockets_path mqtt\n",
	     "listener 8080: websockets_path 'mqtt', expected a path starting with '/'"},
	    {"persistence_file /var/db\n",
	     "persistence_file '/var/db' contains '/', expected a file name (set the directory "
	     "with persistence_location)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_config c;
		expect_ok(&c, cases[i].text);
		int rc = vs_config_validate(&c, err, sizeof(err));
		if (rc != VS_ECONF || strcmp(err, cases[i].want) != 0)
			print_error("case %zu: got %s\n", i, err);
		assert_int_equal(rc, VS_ECONF);
		assert_string_equal(err, cases[i].want);
		vs_config_fini(&c);
	}
	struct vs_config c;
	expect_ok(&c, "listener 1883 127.0.0.1\nlistener 1883 ::1\nlistener 8883\ncertfile /c\n"
		      "keyfile /k\ncapath /etc/ssl/certs\nrequire_certificate true\n");
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	vs_config_fini(&c);
}

/* ---- files and include_dir ---- */

static char tmpdir[64];

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vs-test-conf-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int remove_tmpdir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void load_reads_a_file(void **state)
{
	write_file(tmpdir, "main.conf", "listener 1883\nallow_anonymous true\n");
	char path[256];
	snprintf(path, sizeof(path), "%s/main.conf", tmpdir);
	struct vs_config c;
	vs_config_init(&c);
	assert_int_equal(vs_config_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.n_listeners, 1);
	assert_int_equal(c.allow_anonymous, 1);
	vs_config_fini(&c);

	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	vs_config_init(&c);
	assert_int_equal(vs_config_load(&c, path, err, sizeof(err)), -ENOENT);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s: cannot read: No such file or directory, expected a readable file", path);
	assert_string_equal(err, want);
	vs_config_fini(&c);
}

static void include_dir_reads_conf_files_in_sorted_order(void **state)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/conf.d", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(dir, "b.conf", "listener 2002\nsys_interval 2\n");
	write_file(dir, "a.conf", "listener 2001\nsys_interval 1\n");
	write_file(dir, "10-c.conf", "listener 2000\n");
	write_file(dir, "ignored.txt", "nonsense\n");
	write_file(dir, "a.conf.bak", "nonsense\n");
	char text[256];
	snprintf(text, sizeof(text), "listener 1883\ninclude_dir %s\nmax_connections 9\n", dir);
	struct vs_config c;
	expect_ok(&c, text);
	assert_int_equal(c.n_listeners, 4);
	assert_int_equal(c.listeners[0].port, 1883);
	assert_int_equal(c.listeners[1].port, 2000);
	assert_int_equal(c.listeners[2].port, 2001);
	assert_int_equal(c.listeners[3].port, 2002);
	assert_int_equal(c.sys_interval, 2);		     /* b.conf read last */
	assert_int_equal(c.listeners[3].max_connections, 9); /* the current listener carries over */
	vs_config_fini(&c);
}

static void include_dir_errors_name_the_included_file(void **state)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/bad.d", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(dir, "a.conf", "# fine\nsys_interval 1\n");
	write_file(dir, "b.conf", "\n\npersistence maybe\n");
	char text[256], want[512];
	snprintf(text, sizeof(text), "sys_interval 5\ninclude_dir %s\n", dir);
	snprintf(want, sizeof(want),
		 "%s/b.conf:3: bad value 'maybe' for 'persistence', expected true or false", dir);
	expect_error(text, want);

	/* After an included file, line numbers continue in the main file. */
	write_file(dir, "b.conf", "persistence true\n");
	snprintf(text, sizeof(text), "include_dir %s\n\nbogus\n", dir);
	expect_error(text, "test.conf:3: unknown directive 'bogus', expected a mosquitto.conf "
			   "directive (see docs/configuration.md)");

	/* include_dir is only honoured in the main file. */
	char nested[128];
	snprintf(nested, sizeof(nested), "%s/nested.d", tmpdir);
	assert_int_equal(mkdir(nested, 0700), 0);
	write_file(dir, "b.conf", "");
	snprintf(text, sizeof(text), "include_dir %s\n", nested);
	write_file(dir, "c.conf", text);
	snprintf(text, sizeof(text), "include_dir %s\n", dir);
	snprintf(want, sizeof(want),
		 "%s/c.conf:1: 'include_dir' in an included file, expected it in the main "
		 "configuration file only",
		 dir);
	expect_error(text, want);

	snprintf(text, sizeof(text), "\ninclude_dir %s/none\n", tmpdir);
	snprintf(want, sizeof(want),
		 "test.conf:2: cannot open include_dir '%s/none': No such file or directory, "
		 "expected a readable directory",
		 tmpdir);
	expect_error(text, want);
}

static void include_dir_from_a_loaded_file(void **state)
{
	char dir[128], path[256], text[256];
	snprintf(dir, sizeof(dir), "%s/load.d", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(dir, "x.conf", "listener 1883\nmax_qos 5\n");
	snprintf(text, sizeof(text), "per_listener_settings false\ninclude_dir %s\n", dir);
	write_file(tmpdir, "top.conf", text);
	snprintf(path, sizeof(path), "%s/top.conf", tmpdir);
	struct vs_config c;
	vs_config_init(&c);
	assert_int_equal(vs_config_load(&c, path, err, sizeof(err)), VS_ECONF);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s/x.conf:2: bad value '5' for 'max_qos', expected an integer from 0 to 2", dir);
	assert_string_equal(err, want);
	vs_config_fini(&c);
}

static void real_world_mosquitto_config(void **state)
{
	/* Shaped like the Debian package's mosquitto.conf plus a typical conf.d/ drop-in. */
	static const char text[] =
	    "# Place your local configuration in /etc/mosquitto/conf.d/\n"
	    "#\n"
	    "# A full description of the configuration file is at\n"
	    "# /usr/share/doc/mosquitto/examples/mosquitto.conf.example\n"
	    "\n"
	    "pid_file /run/mosquitto/mosquitto.pid\n"
	    "\n"
	    "persistence true\n"
	    "persistence_location /var/lib/mosquitto/\n"
	    "\n"
	    "log_dest file /var/log/mosquitto/mosquitto.log\n"
	    "log_dest stdout\n"
	    "log_type error\n"
	    "log_type warning\n"
	    "log_type notice\n"
	    "log_type information\n"
	    "log_timestamp true\n"
	    "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
	    "\n"
	    "per_listener_settings false\n"
	    "allow_anonymous false\n"
	    "password_file /etc/mosquitto/passwd\n"
	    "acl_file /etc/mosquitto/acl\n"
	    "\n"
	    "# =================================================================\n"
	    "# Listeners\n"
	    "# =================================================================\n"
	    "listener 1883 localhost\n"
	    "\n"
	    "listener 8883\n"
	    "protocol mqtt\n"
	    "cafile /etc/mosquitto/ca_certificates/ca.crt\n"
	    "certfile /etc/mosquitto/certs/server.crt\n"
	    "keyfile /etc/mosquitto/certs/server.key\n"
	    "tls_version tlsv1.2\n"
	    "require_certificate false\n"
	    "\n"
	    "listener 9001\n"
	    "protocol websockets\n"
	    "\n"
	    "max_queued_messages 10000\n"
	    "max_inflight_messages 40\n"
	    "persistent_client_expiration 7d\n"
	    "autosave_interval 300\n"
	    "max_keepalive 300\n"
	    "sys_interval 15\n"
	    "connection_messages true\n";
	struct vs_config c;
	expect_ok(&c, text);
	assert_int_equal(vs_config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.pid_file, "/run/mosquitto/mosquitto.pid");
	assert_true(c.persistence);
	assert_int_equal(c.log.dests, VS_LOGD_FILE | VS_LOGD_STDOUT);
	assert_string_equal(c.log.file_path, "/var/log/mosquitto/mosquitto.log");
	assert_int_equal(c.log.types, VS_LOG_ERR | VS_LOG_WARN | VS_LOG_NOTICE | VS_LOG_INFO);
	assert_int_equal(c.allow_anonymous, 0);
	assert_string_equal(c.password_file, "/etc/mosquitto/passwd");
	assert_int_equal(c.n_listeners, 3);
	assert_string_equal(c.listeners[0].bind_address, "localhost");
	assert_string_equal(c.listeners[1].certfile, "/etc/mosquitto/certs/server.crt");
	assert_int_equal(c.listeners[2].protocol, VS_LPROTO_WEBSOCKETS);
	assert_int_equal(c.max_queued_messages, 10000);
	assert_int_equal(c.max_inflight_messages, 40);
	assert_int_equal(c.persistent_client_expiration, 7 * 86400);
	assert_int_equal(c.sys_interval, 15);
	vs_config_fini(&c);
}

static void fini_frees_everything_and_is_idempotent(void **state)
{
	struct vs_config c;
	expect_ok(&c, "listener 1\npassword_file /p\nlog_dest file /l\n");
	vs_config_fini(&c);
	assert_int_equal(c.n_listeners, 0);
	assert_null(c.listeners);
	assert_null(c.auto_id_prefix);
	assert_int_equal(c.log.fd, -1);
	vs_config_fini(&c); /* harmless; ASan reports any leak or double free */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_are_mosquittos),
	    cmocka_unit_test(comments_blank_lines_whitespace_and_crlf),
	    cmocka_unit_test(general_directives),
	    cmocka_unit_test(string_values_take_the_rest_of_the_line),
	    cmocka_unit_test(later_value_overrides_earlier),
	    cmocka_unit_test(persistent_client_expiration_units),
	    cmocka_unit_test(logging_directives_accumulate),
	    cmocka_unit_test(persistence_directives),
	    cmocka_unit_test(cluster_jetstream_directives),
	    cmocka_unit_test(port_configures_the_default_listener),
	    cmocka_unit_test(per_listener_directives_follow_the_last_listener),
	    cmocka_unit_test(http_listener_and_admins),
	    cmocka_unit_test(port_after_listeners_inserts_default_listener_first),
	    cmocka_unit_test(unix_socket_listener),
	    cmocka_unit_test(security_is_global_without_per_listener_settings),
	    cmocka_unit_test(security_is_per_listener_with_per_listener_settings),
	    cmocka_unit_test(error_unknown_directive),
	    cmocka_unit_test(error_not_supported_yet),
	    cmocka_unit_test(error_bad_bool),
	    cmocka_unit_test(error_bad_number),
	    cmocka_unit_test(error_missing_argument),
	    cmocka_unit_test(error_extra_argument),
	    cmocka_unit_test(trailing_comments_where_mosquitto_ignores_them),
	    cmocka_unit_test(log_format_directive),
	    cmocka_unit_test(error_bad_choice),
	    cmocka_unit_test(error_messages_are_truncated_safely),
	    cmocka_unit_test(validate_cross_field_checks),
	    cmocka_unit_test(load_reads_a_file),
	    cmocka_unit_test(include_dir_reads_conf_files_in_sorted_order),
	    cmocka_unit_test(include_dir_errors_name_the_included_file),
	    cmocka_unit_test(include_dir_from_a_loaded_file),
	    cmocka_unit_test(real_world_mosquitto_config),
	    cmocka_unit_test(fini_frees_everything_and_is_idempotent),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
