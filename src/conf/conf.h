/*
 * Configuration: a mosquitto.conf-compatible file read into a struct vs_config.
 *
 * The reader is table-driven (as nginx's): each directive is a row {name, setter, offsetof(field),
 * scope, flags}, so adding a directive is one line and no function grows a chain of strcmp. A
 * Mosquitto user's file works unchanged; a Mosquitto directive we do not implement yet fails with
 * "FILE:LINE: 'connection' is not supported yet" instead of being silently ignored, and anything
 * else unknown fails naming the directive. docs/configuration.md lists every directive.
 *
 * Ownership: vs_config_init() fills defaults; every string in the struct is heap-allocated and
 * owned by it; vs_config_fini() frees everything, whatever state a failed parse left behind.
 * Nothing here keeps global state: parsing two configurations at once on two threads is fine.
 *
 * Listener scoping follows Mosquitto: `listener PORT [ADDRESS]` starts a new listener and the
 * per-listener directives after it apply to it. Per-listener directives before any `listener`,
 * and `port` / `bind_address` anywhere, configure the "default listener": it exists only when
 * one of those was given, and it is then always listeners[0] (has_default_listener is true).
 * With no listener at all (n_listeners == 0) the broker chooses, as Mosquitto 2.0 does (port 1883
 * on the loopback interface only).
 */
#ifndef VS_CONF_CONF_H
#define VS_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/log.h"

enum vs_listener_protocol {
	VS_LPROTO_MQTT = 0,
	VS_LPROTO_WEBSOCKETS = 1,
	VS_LPROTO_MQTTSN = 2, /* MQTT-SN 1.2 over UDP (Viesti) */
	VS_LPROTO_HTTP = 3,   /* HTTP/1.1: /metrics, later the API and dashboard (Viesti) */
};

enum vs_conf_fsync {
	VS_CONF_FSYNC_NEVER = 0,    /* write(2) before acking: survives kill -9, not power loss */
	VS_CONF_FSYNC_BATCH = 1,    /* fsync before acking, group-committed per loop turn */
	VS_CONF_FSYNC_INTERVAL = 2, /* fsync every persistence_fsync_interval_ms */
};

enum vs_conf_log_format {
	VS_CONF_LOG_VIESTI = 0,	   /* "2024-01-02T03:04:05.678Z info: message" */
	VS_CONF_LOG_MOSQUITTO = 1, /* "1700000000: message", and Mosquitto's wording for
				    * connections and the debug packet trace */
	VS_CONF_LOG_JSON = 2,	   /* one JSON object per line (log shippers) */
};

/* A directive that may be repeated: each line adds one value. */
struct vs_strlist {
	char **v;
	size_t n;
};

struct vs_listener_conf {
	char *bind_address;   /* host name or address; NULL = all interfaces. With port 0, the path
				 of a unix socket (socket_domain is then AF_UNIX), as Mosquitto 2.0 */
	char *bind_interface; /* SO_BINDTODEVICE name, NULL = none */
	int port;	      /* 1..65535, or 0 for a unix socket */
	int socket_domain;    /* AF_UNSPEC (both), AF_INET, AF_INET6 or AF_UNIX */
	enum vs_listener_protocol protocol;
	int max_connections; /* -1 = unlimited */
	char *mount_point;   /* topic prefix for clients of this listener, NULL = none */
	int max_qos;	     /* 0..2, default 2 */
	int max_topic_alias; /* 0..65535, default 10 */
	bool use_username_as_clientid;

	/* Security, used only when vs_config.per_listener_settings is true (otherwise the globals
	 * in struct vs_config apply and these stay unset). */
	int allow_anonymous;		/* -1 unset (broker decides), 0, 1 */
	int allow_zero_length_clientid; /* -1 unset (use the global), 0, 1 */
	char *auto_id_prefix;		/* NULL = use the global */
	char *password_file;
	char *acl_file;

	/* TLS: enabled when certfile is set (validate checks keyfile goes with it), or psk_hint
	 * (a TLS-PSK listener, with or without a certificate). */
	char *cafile;
	char *capath;
	char *certfile;
	char *keyfile;
	char *ciphers;	     /* TLS <= 1.2 cipher list, OpenSSL syntax */
	char *ciphers_tls13; /* TLS 1.3 cipher suites (ciphers_tls1.3) */
	char *dhparamfile;
	char *tls_version; /* "tlsv1.1", "tlsv1.2" or "tlsv1.3": the minimum; NULL = library's */
	char *crlfile;	   /* certificate revocation list (PEM), checked for client certs */
	char *psk_hint;	   /* TLS-PSK: the hint sent to clients; turns PSK on */
	char *psk_file;	   /* security: used only with per_listener_settings (else global) */
	char *tls_engine;  /* OpenSSL engine for the private key (tls_keyform engine) */
	char *tls_engine_kpass_sha1; /* SHA-1 (hex) of the engine key's passphrase */
	bool tls_keyform_engine;     /* tls_keyform engine: keyfile names a key in tls_engine */
	bool require_certificate;
	bool use_identity_as_username;
	bool use_subject_as_username;

	/* WebSocket (protocol websockets). */
	char *http_dir;	       /* serve static files from here, NULL = none */
	char *websockets_path; /* the one request path for upgrades, NULL = any (Viesti) */
	struct vs_strlist websockets_origins; /* allowed Origin values, none = any (Viesti) */
	struct vs_strlist websockets_trusted_proxies; /* peers whose X-Forwarded-For is believed */

	/* MQTT-SN gateway (protocol mqttsn; Viesti). */
	int mqttsn_gateway_id;		/* GwId of ADVERTISE and GWINFO, 0..255, default 1 */
	int mqttsn_advertise_interval;	/* seconds between ADVERTISE broadcasts, 0 = none */
	char *mqttsn_predefined_topics; /* file of "ID TOPIC" lines, NULL = none */
	struct vs_strlist mqttsn_allowed_sources; /* CIDR blocks admitted without credentials */
	int mqttsn_retry_ms;			  /* Tretry, default 10 s */
	int mqttsn_retry_count;			  /* Nretry, default 5 */
};

/* A bridge's `topic` line (Mosquitto's mosquitto.conf(5)): the local topic is local_prefix +
 * pattern, the remote one remote_prefix + pattern. */
enum vs_bridge_dir {
	VS_BRIDGE_OUT = 1,  /* subscribe locally, publish remotely */
	VS_BRIDGE_IN = 2,   /* subscribe remotely, publish locally */
	VS_BRIDGE_BOTH = 3, /* OUT | IN */
};

struct vs_bridge_topic {
	char *pattern;	    /* a filter; "" when the prefixes give the whole topic */
	char *local_prefix; /* "" = none */
	char *remote_prefix;
	int dir; /* enum vs_bridge_dir, default out */
	int qos; /* 0..2, default 0 */
};

enum vs_bridge_start {
	VS_BRIDGE_AUTOMATIC = 0, /* connect at start-up, reconnect after restart_timeout */
	VS_BRIDGE_LAZY = 1,	 /* connect when `threshold` messages wait; idle_timeout closes */
	VS_BRIDGE_ONCE = 2,	 /* connect at start-up, never again once it drops */
};

/* One `connection NAME` section: the directives after it, up to the next `connection`. */
struct vs_bridge_conf {
	char *name;
	struct vs_strlist addresses; /* "HOST[:PORT]" (or "[V6]:PORT"), in order */
	bool round_robin;	     /* default false: always try addresses[0] first again */
	struct vs_bridge_topic *topics;
	size_t n_topics;
	int protocol_version;	/* 3, 4 (default, mqttv311) or 5 */
	bool cleansession;	/* default false */
	int local_cleansession; /* -1 = as cleansession */
	char *remote_clientid;	/* NULL = "HOSTNAME.NAME" */
	char *local_clientid;	/* NULL = "local." + remote client id */
	char *remote_username, *remote_password;
	char *local_username, *local_password;
	bool try_private;	       /* default true */
	bool notifications;	       /* default true */
	bool notifications_local_only; /* default false */
	char *notification_topic;      /* NULL = $SYS/broker/connection/REMOTE_CLIENTID/state */
	int keepalive_interval;	       /* seconds, default 60 */
	int restart_timeout;	       /* seconds: constant, or the backoff's base */
	int restart_timeout_cap;       /* 0 = constant; else backoff up to this (default 5/30) */
	int start_type;		       /* enum vs_bridge_start */
	int idle_timeout;	       /* seconds, default 60 (lazy) */
	int threshold;		       /* messages, default 10 (lazy) */
	uint32_t max_packet_size;      /* bridge_max_packet_size, 0 = none */
	bool outgoing_retain;	       /* default true */
	bool attempt_unsubscribe;      /* default true */
	/* TLS: on when cafile, capath or psk is set (as Mosquitto). */
	char *cafile, *capath, *certfile, *keyfile;
	bool insecure;
	bool require_ocsp;
	char *tls_version; /* "tlsv1.2" or "tlsv1.3", NULL = library's */
	char *alpn;
	char *identity, *psk; /* TLS-PSK */
};

struct vs_config {
	struct vs_listener_conf *listeners; /* owned array */
	size_t n_listeners;
	bool has_default_listener; /* listeners[0] comes from port/bind_address/early directives */
	bool builtin_listener;	   /* no listener was configured: vs_config_finish() made one on
				    * localhost, where anonymous clients are allowed (Mosquitto 2.0) */

	int threads;		  /* worker threads; 0 = one per core (Viesti extension) */
	int auth_threads;	  /* password-checking threads, default 1 (Viesti extension) */
	bool consolidate_threads; /* default true: one thread runs every shard at low load */
	bool io_uring; /* default true: a turn's reads, and its sends, each in one io_uring_enter
			* (iobatch.h) */

	/* Security (global, or defaults when per_listener_settings is true). */
	int allow_anonymous; /* -1 = unset: the broker decides (Mosquitto 2.0: false) */
	bool per_listener_settings;
	char *password_file;
	char *acl_file;
	char *psk_file;
	bool allow_zero_length_clientid; /* default true */
	char *auto_id_prefix;		 /* default "auto-" */
	char *clientid_prefixes; /* only client ids with this prefix may connect; NULL = all */
	struct vs_strlist http_admins; /* users of the password file let into 'protocol http'
					* listeners that do not allow anonymous access (Viesti) */

	/* Limits. */
	int max_keepalive;	     /* seconds, 0..65535, default 65535 */
	int websockets_headers_size; /* longest HTTP request head on WebSocket listeners, bytes
				      * (default 4096) */
	int websockets_log_level;    /* libwebsockets' log level: read, and reported unused */
	int http_timeout;	     /* seconds an HTTP connection may idle between requests
				      * (default 30, Viesti) */
	int http_headers_size;	     /* longest HTTP request head (default 8192, Viesti) */
	int http_body_size;	     /* longest HTTP request body (default 65536, Viesti) */
	int connect_timeout;	     /* seconds from accept to CONNECT (TLS handshake included),
				      * default 10 */
	uint32_t max_packet_size;    /* default 16 MiB; 0 = no limit (else >= 20) */
	uint32_t max_connect_packet_size; /* CONNECT before authentication, default 256 KiB */
	uint64_t max_connecting_bytes;	  /* all connections before CONNECT together, default
					   * 64 MiB; 0 = no limit */
	int max_topic_levels;	     /* levels of a topic name or filter, default 200; 0 = none */
	int max_retained_feed;	     /* retained messages waiting per session after SUBSCRIBE,
				      * default 1,000,000; 0 = no limit */
	uint32_t message_size_limit; /* payload bytes, 0 = no limit */
	int max_inflight_messages;   /* default 20; 0 = unlimited */
	uint64_t max_inflight_bytes; /* 0 = unlimited */
	int max_queued_messages;     /* default 1000; 0 = unlimited */
	uint64_t max_queued_bytes;   /* 0 = unlimited */
	uint64_t memory_limit;	     /* bytes of resident memory, 0 = unlimited */
	int global_max_connections;  /* all listeners together, -1 = unlimited (Mosquitto 2.1) */
	uint64_t max_unsent_bytes;   /* per connected client: its output buffer and queued
				      * payloads; past it the client is disconnected. Default
				      * 64 MiB, 0 = unlimited */
	bool queue_qos0_messages;    /* default false */
	bool retain_available;	     /* default true */
	bool upgrade_outgoing_qos;   /* default false */
	bool check_retain_source;    /* default true */
	bool set_tcp_nodelay;	     /* default true (Mosquitto: false) */
	int max_qos;		     /* default given to each listener (2) */
	int max_topic_alias;	     /* default given to each listener (10) */

	/* Sessions. */
	int64_t persistent_client_expiration; /* seconds; -1 = never (default) */

	/* $SYS. */
	int sys_interval; /* seconds, default 10, 0 = off */

	/* Cluster over NATS (docs/cluster.md): all NULL = a single node. */
	char *cluster_url;	   /* "nats://h:p[,nats://...]" */
	char *cluster_node_id;	   /* default: the host name */
	char *cluster_credentials; /* a NATS .creds file */
	char *cluster_username, *cluster_password;
	char *cluster_cafile, *cluster_certfile, *cluster_keyfile;
	int cluster_stream_max_age; /* seconds a QoS 1/2 message stays in JetStream, default 3600 */
	int cluster_replicas;	    /* JetStream replicas of the stream and buckets, default 1 */
	int cluster_lease_ms;	    /* a node is dead this long after its last lease renewal */
	int cluster_ack_wait;	    /* seconds before JetStream sends a message a node took and
				     * did not acknowledge again, default 30 */
	bool cluster_durable_all;   /* every QoS 1/2 message through JetStream, wanted elsewhere
				     * or not (docs/cluster.md) */
	bool cluster_durable_sessions; /* QoS 1/2 for this node's persistent sessions through
					* JetStream, default true (docs/cluster.md) */

	/* Process. */
	char *pid_file; /* NULL = none */
	char *user;	/* user to switch to when started as root; NULL = do not switch */

	/* Logging: log.types/dests/file_path come from log_type/log_dest. */
	struct vs_log log;
	bool connection_messages;   /* default true */
	bool log_timestamp;	    /* default true (also copied to log.timestamps) */
	char *log_timestamp_format; /* strftime(3) format, NULL = ISO-8601 */
	int log_facility;	    /* syslog local0..local7 as 0..7; -1 = daemon (default) */
	int log_format;		    /* -1 unset (the command decides), or an enum
				     * vs_conf_log_format */

	/* Persistence. */
	bool persistence;		      /* default false */
	char *persistence_location;	      /* directory, NULL = current directory */
	char *persistence_file;		      /* default "mosquitto.db" */
	enum vs_conf_fsync persistence_fsync; /* default never */
	int persistence_fsync_interval_ms;    /* for VS_CONF_FSYNC_INTERVAL, default 1000 */
	int autosave_interval;	  /* seconds (or changes with autosave_on_changes), default 1800 */
	bool autosave_on_changes; /* default false */

	/* Bridges: one per `connection` section (docs/bridges.md). */
	struct vs_bridge_conf *bridges; /* owned array */
	size_t n_bridges;
};

/* Fills defaults. Never fails. */
void vs_config_init(struct vs_config *c);
/* Frees everything c owns (including log.file_path and log.fd) and zeroes it: calling it again
 * is harmless; call vs_config_init() to use c again. */
void vs_config_fini(struct vs_config *c);

/* Default values for a new listener (port 1883, everything else unset). Owns nothing yet. */
void vs_listener_conf_init(struct vs_listener_conf *l, const struct vs_config *c);
void vs_listener_conf_fini(struct vs_listener_conf *l);

/* A bridge with Mosquitto's defaults, named name (copied). Returns 0 or -ENOMEM. */
int vs_bridge_conf_init(struct vs_bridge_conf *b, const char *name);
void vs_bridge_conf_fini(struct vs_bridge_conf *b);
/*
 * Parses the words of a `topic` line (modified in place): PATTERN [in|out|both [QOS
 * [LOCAL-PREFIX REMOTE-PREFIX]]], with "" for an empty pattern or prefix, as Mosquitto. Checks
 * that the pattern is a valid filter, that the prefixes hold no wildcards and that "" comes
 * with prefixes. Returns 0 (t filled, owning its strings) or VS_ECONF with the reason in why.
 */
int vs_bridge_topic_parse(char *words, struct vs_bridge_topic *t, char *why, size_t whylen);
void vs_bridge_topic_fini(struct vs_bridge_topic *t);
/* The topic on the other side of t for topic, which matched t's filter on this side (out:
 * local -> remote): its prefix replaced by the other side's (Mosquitto's mapping; an empty
 * pattern maps to the other prefix). Returns a new string (caller frees), or NULL when topic
 * lacks the prefix or memory ran out. */
char *vs_bridge_topic_map(const struct vs_bridge_topic *t, const char *topic, bool out);

/* Appends a copy of s. Returns 0 or -ENOMEM. */
int vs_strlist_add(struct vs_strlist *l, const char *s);
void vs_strlist_fini(struct vs_strlist *l);

/*
 * Reads the file at path into c (which must have been vs_config_init()ed; directives add to or
 * override what is there). Returns 0, VS_ECONF with "FILE:LINE: what was wrong, expected what"
 * in err (always NUL-terminated, truncated to errlen), or -errno/VS_ECONF when the file cannot be
 * read. On error c holds whatever was read so far: vs_config_fini() it.
 */
int vs_config_load(struct vs_config *c, const char *path, char *err, size_t errlen);
/* Receives one error message ("FILE:LINE: what was wrong, expected what"). */
typedef void (*vs_conf_report_fn)(void *ud, const char *msg);
/*
 * As vs_config_load(), for --test-config: goes on after a bad line, passing each error to report,
 * and returns how many there were (>= 0), or -errno when path cannot be read (also reported).
 */
int vs_config_load_all(struct vs_config *c, const char *path, vs_conf_report_fn report, void *ud);
/* As vs_config_load() on the NUL-terminated text; name is used as FILE in error messages. */
int vs_config_parse_string(struct vs_config *c, const char *text, const char *name, char *err,
			   size_t errlen);
/*
 * After loading, before validating: applies the command line's -p PORT (0: none) to the first
 * listener, and without any listener adds the built-in one (localhost, port 1883 or PORT), as
 * Mosquitto 2.0 does. Returns 0 or -ENOMEM.
 */
int vs_config_finish(struct vs_config *c, int port);

/* For the reader's own files (parse.c, bridge.c): cuts the next word (blank-separated) off *s
 * and returns it, NUL-terminated in place; NULL when none is left. */
char *vs_conf_next_word(char **s);

/* Cross-field checks after loading (TLS files in pairs, duplicate listeners, ...). Returns 0 or
 * VS_ECONF with a message naming the listener ("listener 8883: ..."). */
int vs_config_validate(struct vs_config *c, char *err, size_t errlen);
/* As vs_config_validate(), but reports the first problem of every listener and every global
 * problem, each to report. Returns how many there were. */
int vs_config_validate_all(struct vs_config *c, vs_conf_report_fn report, void *ud);

#endif
