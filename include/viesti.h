/*
 * libviesti: an MQTT 3.1, 3.1.1 and 5.0 client library.
 *
 * One `struct viesti` is one client: one connection to one broker at a time, plus the session
 * state that outlives a connection (outgoing QoS 1/2 messages not yet acknowledged, incoming
 * QoS 2 packet ids not yet released). The session is kept in memory: when the connection drops,
 * the library reconnects with exponential backoff and jitter, asks the broker to resume the
 * session, and resends every unacknowledged PUBLISH (with DUP set) and PUBREL in their original
 * order [MQTT-4.4.0-1]. Messages published while disconnected (QoS 1 and 2) are queued and sent
 * after the next CONNACK.
 *
 * Two ways to drive the client:
 *   - its own thread: viesti_loop_start() / viesti_loop_stop();
 *   - the caller's event loop: wait until viesti_fd() is readable (it is an epoll descriptor,
 *     stable across reconnects; poll/epoll/select it for reading) or viesti_next_timeout_ms()
 *     has passed, then call viesti_process(). Or simply call viesti_loop(v, timeout) in a loop.
 * The blocking conveniences (viesti_connect_wait, viesti_publish_wait, viesti_subscribe_wait)
 * work in both modes: with the loop thread running they wait for it; without, they drive the
 * client themselves until done.
 *
 * Threads: every function may be called from any thread, including from inside a callback,
 * except: viesti_free() (not concurrently with anything else on the client, and never from a
 * callback), viesti_loop_stop() and the _wait functions (never from a callback), and
 * viesti_loop()/viesti_process() (never while the loop thread runs, never from a callback).
 * Callbacks run on the thread that drives the client, one at a time, with the client's
 * (recursive) lock held: keep them short.
 *
 * Ownership: the library copies every string, payload and property list it is given before the
 * call returns; the caller keeps ownership of its arguments. Pointers handed to callbacks (a
 * message, properties) are valid only until the callback returns.
 *
 * Errors: functions return >= 0 on success and a negative error on failure: -errno for system
 * errors (-ENOMEM, -ECONNREFUSED, -ETIMEDOUT, -ENOTCONN, ...) and VIESTI_E* below for the
 * library's own. viesti_strerror() names either. If a call failed, its callback is never called.
 *
 * Enhanced authentication (MQTT 5.0 only): with viesti_options.auth_method "SCRAM-SHA-256", the
 * CONNECT carries neither User Name nor Password but Authentication Method "SCRAM-SHA-256" and
 * the client-first-message (the user name, a random nonce); the broker's AUTH 0x18 (salt,
 * iteration count) is answered with an AUTH 0x18 holding the proof, computed from the password,
 * which never leaves the process; the CONNACK 0x00 must carry the broker's ServerSignature,
 * which is checked before anything else is sent: a wrong or missing one ends the attempt with
 * VIESTI_EAUTH (on_connect is not called), since a broker that cannot prove it knows the
 * credentials is not the one we meant. A broker that refuses answers CONNACK 0x87 Not
 * authorized, 0x86 or 0x8C Bad authentication method: VIESTI_EREFUSED, as any refusal. The
 * exchange runs again on every reconnect. User names and passwords are used as UTF-8 bytes,
 * without SASLprep (RFC 4013) normalisation; iteration counts below 4096 are refused (RFC 7677).
 * Re-authentication (AUTH 0x19) is not offered.
 *
 * MQTT-SN 1.2: the viesti_sn_* calls at the end of this header are a separate, smaller client
 * (`struct viesti_sn`) for sensors and scripts: one UDP socket, blocking calls with timeouts, no
 * thread and no lock. See "MQTT-SN" below.
 */
#ifndef VIESTI_H
#define VIESTI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The public functions: libviesti is built with -fvisibility=hidden (and an export list) so that
 * these, and nothing of its insides, are what the shared library exports. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define VIESTI_API __attribute__((visibility("default")))
#else
#define VIESTI_API
#endif

#define VIESTI_VERSION_STRING "0.1.0"

/* Library errors (system errors are -errno). The numbers match the internal vocabulary. */
enum {
	VIESTI_OK = 0,
	VIESTI_EPROTO = -1001,	  /* the broker sent something malformed or out of protocol */
	VIESTI_ETOOBIG = -1002,	  /* larger than the protocol or the broker allows */
	VIESTI_EINVAL = -1003,	  /* bad argument: topic, QoS, property not valid here, ... */
	VIESTI_ECLOSED = -1004,	  /* the broker closed the connection (or sent DISCONNECT) */
	VIESTI_ESTATE = -1005,	  /* not valid now (e.g. a *_wait call from a callback) */
	VIESTI_EAUTH = -1006,	  /* enhanced authentication: the broker accepted the CONNECT but
				   * did not prove that it knows the credentials (SCRAM: a wrong or
				   * missing ServerSignature), so the client refused the connection */
	VIESTI_EREFUSED = -1100,  /* the broker refused CONNECT; the reason is in on_connect */
	VIESTI_EREJECTED = -1101, /* a negative acknowledgement (reason code >= 0x80) */
	VIESTI_ETLS = -1102,	  /* TLS: handshake or verification failed, or the certificate,
				   * key or CA files are unusable; on_log has the reason */
	VIESTI_ELOOKUP = -1103,	  /* a host name (the broker's, bind_address) did not resolve */
	VIESTI_EPROXY = -1104,	  /* the SOCKS5 proxy refused (authentication, the CONNECT) or
				   * answered outside the protocol */
	VIESTI_EPROXY_TARGET = -1105, /* the SOCKS5 proxy could not reach the broker (network or
				       * host unreachable, connection refused) */
};

/* Protocol versions (the CONNECT protocol level). */
enum viesti_version {
	VIESTI_V31 = 3,
	VIESTI_V311 = 4,
	VIESTI_V5 = 5,
};

/* Subscription options for viesti_subscribe(): the QoS (0..2) or'ed with these (5.0 only). */
enum {
	VIESTI_SUB_NO_LOCAL = 1 << 2,
	VIESTI_SUB_RETAIN_AS_PUBLISHED = 1 << 3,
	VIESTI_SUB_RETAIN_SEND_NEW = 1 << 4, /* retain handling 1: only for new subscriptions */
	VIESTI_SUB_RETAIN_NEVER = 2 << 4,    /* retain handling 2: never send retained */
};

/* Log levels for on_log. */
enum viesti_log_level {
	VIESTI_LOG_ERR = 1,
	VIESTI_LOG_WARN = 2,
	VIESTI_LOG_INFO = 3,
	VIESTI_LOG_DEBUG = 4,
};

/* MQTT 5.0 property identifiers (section 2.2.2.2) usable with the properties API. */
enum viesti_prop {
	VIESTI_PROP_PAYLOAD_FORMAT = 0x01,   /* byte: 0 bytes, 1 UTF-8 */
	VIESTI_PROP_MESSAGE_EXPIRY = 0x02,   /* four-byte integer, seconds */
	VIESTI_PROP_CONTENT_TYPE = 0x03,     /* string */
	VIESTI_PROP_RESPONSE_TOPIC = 0x08,   /* string */
	VIESTI_PROP_CORRELATION_DATA = 0x09, /* binary */
	VIESTI_PROP_SUBSCRIPTION_ID = 0x0B,  /* variable byte integer (SUBSCRIBE; received) */
	VIESTI_PROP_SESSION_EXPIRY = 0x11,   /* four-byte integer (CONNECT, CONNACK, DISCONNECT) */
	VIESTI_PROP_ASSIGNED_CLIENT_ID = 0x12, /* string (CONNACK) */
	VIESTI_PROP_SERVER_KEEPALIVE = 0x13,   /* two-byte integer (CONNACK) */
	VIESTI_PROP_AUTH_METHOD = 0x15,
	VIESTI_PROP_AUTH_DATA = 0x16,
	VIESTI_PROP_REQUEST_PROBLEM_INFO = 0x17,
	VIESTI_PROP_WILL_DELAY = 0x18, /* four-byte integer (will properties) */
	VIESTI_PROP_REQUEST_RESPONSE_INFO = 0x19,
	VIESTI_PROP_RESPONSE_INFO = 0x1A,
	VIESTI_PROP_SERVER_REFERENCE = 0x1C,
	VIESTI_PROP_REASON_STRING = 0x1F,
	VIESTI_PROP_RECEIVE_MAX = 0x21,
	VIESTI_PROP_TOPIC_ALIAS_MAX = 0x22,
	VIESTI_PROP_TOPIC_ALIAS = 0x23,
	VIESTI_PROP_MAX_QOS = 0x24,
	VIESTI_PROP_RETAIN_AVAILABLE = 0x25,
	VIESTI_PROP_USER = 0x26, /* string pair, repeatable */
	VIESTI_PROP_MAX_PACKET_SIZE = 0x27,
	VIESTI_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	VIESTI_PROP_SUB_ID_AVAILABLE = 0x29,
	VIESTI_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

struct viesti;	     /* one client; opaque */
struct viesti_props; /* a list of MQTT 5.0 properties; opaque */

/* ---- Properties ---------------------------------------------------------------------------- */

/* A list the caller builds, passes to calls (which copy it), and frees. NULL on ENOMEM. */
VIESTI_API struct viesti_props *viesti_props_new(void);
VIESTI_API void viesti_props_free(struct viesti_props *props);
/* Sets an integer property (byte, two-byte, four-byte or variable byte integer by id).
 * Returns 0, or VIESTI_EINVAL for an id that is not an integer property or a value out of its
 * range. Setting a property twice replaces it. */
VIESTI_API int viesti_props_set_int(struct viesti_props *props, int id, uint32_t value);
/* Sets a UTF-8 string property (content type, response topic, ...). Returns 0, VIESTI_EINVAL
 * or -ENOMEM. */
VIESTI_API int viesti_props_set_string(struct viesti_props *props, int id, const char *value);
/* Sets a binary property (correlation data, authentication data). */
VIESTI_API int viesti_props_set_binary(struct viesti_props *props, int id, const void *data,
				       size_t len);
/* Appends a user property; keys may repeat and order is kept. */
VIESTI_API int viesti_props_add_user(struct viesti_props *props, const char *key,
				     const char *value);

/* Readers, for lists built above and for those handed to callbacks. */
VIESTI_API bool viesti_props_has(const struct viesti_props *props, int id);
/* Returns 0 and sets *value, or -ENOENT. */
VIESTI_API int viesti_props_get_int(const struct viesti_props *props, int id, uint32_t *value);
/* Returns 0 and points *data and *len at a string or binary value (NOT NUL-terminated), or -ENOENT.
 */
VIESTI_API int viesti_props_get_binary(const struct viesti_props *props, int id, const void **data,
				       size_t *len);
/* A string property (content type, response topic, reason string, assigned client identifier,
 * ...) as a C string: copies it into buf (cap bytes) with a terminating NUL. Returns its length,
 * -ENOENT when absent, or VIESTI_ETOOBIG when it needs more than cap bytes (buf is then left
 * empty). For a binary property (correlation data) the bytes are copied the same way; a value
 * holding a NUL reads short as a C string: use viesti_props_get_binary() for those. */
VIESTI_API int viesti_props_get_string(const struct viesti_props *props, int id, char *buf,
				       size_t cap);
/* The value of the first user property named key, as viesti_props_get_string() copies one:
 * its length, -ENOENT, or VIESTI_ETOOBIG. */
VIESTI_API int viesti_props_get_user(const struct viesti_props *props, const char *key, char *buf,
				     size_t cap);
/* Iterates user properties in order: start with *pos = 0; returns 1 while there is one. The
 * keys and values are NOT NUL-terminated: see viesti_props_get_user(). */
VIESTI_API int viesti_props_next_user(const struct viesti_props *props, size_t *pos,
				      const char **key, size_t *key_len, const char **value,
				      size_t *value_len);
/* Iterates the properties present in order (the packet's order for received lists; a
 * repeated property appears once per occurrence): start with *pos = 0; returns 1 and sets *id
 * while there is one. */
VIESTI_API int viesti_props_next(const struct viesti_props *props, size_t *pos, int *id);
/* Iterates subscription identifiers of a received message. */
VIESTI_API int viesti_props_next_sub_id(const struct viesti_props *props, size_t *pos,
					uint32_t *id);

/* ---- Creating a client ------------------------------------------------------------------ */

struct viesti_message {
	const char *topic; /* NUL-terminated */
	size_t topic_len;
	const void *payload;
	size_t payload_len;
	int qos;
	bool retain;
	bool dup;
	int mid;			  /* the packet id (0 for QoS 0) */
	const struct viesti_props *props; /* never NULL; empty for 3.x */
};

/*
 * Callbacks. Any may be NULL. `ud` is the user data given to viesti_new().
 * on_connect: a CONNACK arrived; called for every CONNACK, refusals included (as libmosquitto's
 *   on_connect). reason 0 is success; otherwise the broker refused (5.0 reason code >= 0x80, or
 *   the 3.x return code 1-5) and the connection ends: viesti_connect_wait() returns
 *   VIESTI_EREFUSED with nothing retried after it; after viesti_connect() or a lost connection,
 *   reconnect (when on) tries again after its delay. Not called when no CONNACK came (network,
 *   TLS, VIESTI_EAUTH).
 * on_disconnect: a connection that had been accepted ended. err is 0 after viesti_disconnect(),
 *   else a negative error (VIESTI_ECLOSED, -ECONNRESET, -ETIMEDOUT for a dead broker, ...);
 *   reason is the 5.0 DISCONNECT reason code the broker sent, or -1.
 * on_publish: an outgoing QoS 1/2 message is done: PUBACK, or PUBCOMP, or a PUBREC with an error
 *   reason (>= 0x80, 5.0). Called exactly once per mid returned by viesti_publish().
 * on_subscribe/on_unsubscribe: the SUBACK/UNSUBACK for mid with one reason code per filter
 *   (granted QoS 0..2, or >= 0x80). 3.1.1 UNSUBACK carries none: count is 0.
 * on_log: a human-readable line; debug lines include every packet sent and received.
 */
struct viesti_callbacks {
	void (*on_connect)(struct viesti *v, void *ud, int reason, bool session_present,
			   const struct viesti_props *props);
	void (*on_disconnect)(struct viesti *v, void *ud, int err, int reason,
			      const struct viesti_props *props);
	void (*on_message)(struct viesti *v, void *ud, const struct viesti_message *msg);
	void (*on_publish)(struct viesti *v, void *ud, int mid, int reason,
			   const struct viesti_props *props);
	void (*on_subscribe)(struct viesti *v, void *ud, int mid, int count, const uint8_t *codes,
			     const struct viesti_props *props);
	void (*on_unsubscribe)(struct viesti *v, void *ud, int mid, int count, const uint8_t *codes,
			       const struct viesti_props *props);
	void (*on_log)(struct viesti *v, void *ud, int level, const char *line);
};

/*
 * TLS settings, pointed to by viesti_options.tls (NULL: plain TCP). Zero the struct, then set
 * what you need: all zero means TLS with the server verified against the system's trust store.
 * viesti_new() reads the files and copies the strings; later changes to either are not seen.
 * Names and meanings follow mosquitto_pub's --cafile, --capath, ... flags.
 */
struct viesti_tls {
	const char *cafile;	 /* PEM file of trusted CA certificates */
	const char *capath;	 /* directory of trusted CA certificates (hashed names, c_rehash) */
	bool os_certs;		 /* also trust the system store; implied when no cafile, capath or
				  * psk is given */
	const char *certfile;	 /* client certificate chain (PEM) for mutual TLS; needs keyfile */
	const char *keyfile;	 /* its private key (PEM, not encrypted) */
	bool insecure;		 /* skip the host-name check only: the chain is still verified */
	const char *tls_version; /* minimum version: "tlsv1.2" (NULL) or "tlsv1.3" */
	const char *alpn;	 /* NULL, or one protocol offered in ALPN (1..255 bytes), "mqtt" */
	const char *psk;	 /* pre-shared key in hex (no 0x): TLS-PSK instead of the server's
				  * certificate; excludes cafile, capath, certfile */
	const char *psk_identity; /* the identity sent with psk; required with it */
};

/*
 * Connection options. Fill with viesti_options_init() (the defaults are noted), then change
 * fields. Strings are copied by viesti_new().
 */
struct viesti_options {
	const char *host;	 /* "localhost" */
	int port;		 /* 1883 */
	int version;		 /* VIESTI_V311 */
	const char *client_id;	 /* NULL: empty for 3.1.1/5.0 (broker assigns), generated for 3.1 */
	const char *username;	 /* NULL: none */
	const char *password;	 /* NULL: none */
	size_t password_len;	 /* 0: strlen(password) */
	const char *auth_method; /* NULL: none (username and password go in the CONNECT). Or
				  * "SCRAM-SHA-256": MQTT 5.0 enhanced authentication (section
				  * 4.12, RFC 5802, RFC 7677) with username and password, both
				  * required; see "Enhanced authentication" below. */
	int keepalive;		 /* 60 seconds; 0 disables */
	bool clean;		 /* true: Clean Session / Clean Start on the first connect */
	const struct viesti_props *connect_props; /* 5.0 CONNECT properties (session expiry, ...) */

	const char *will_topic; /* NULL: no will */
	const void *will_payload;
	size_t will_payload_len;
	int will_qos;
	bool will_retain;
	const struct viesti_props *will_props; /* 5.0 will properties */

	int max_inflight;	   /* 20: outgoing QoS 1/2 messages awaiting ack (also capped by the
				    * broker's Receive Maximum); later ones wait in order */
	bool reconnect;		   /* true: reconnect automatically after a connection is lost */
	int reconnect_min_ms;	   /* 500: first delay; doubles per failed attempt */
	int reconnect_max_ms;	   /* 30000: delay cap; each delay is jittered to [d/2, d] */
	int connect_timeout_ms;	   /* 10000: TCP connect, TLS handshake and CONNACK must complete
				    * within this */
	bool connect_wait_retries; /* true: with reconnect on, viesti_connect_wait() retries a
				    * failed attempt per the reconnect settings until connected,
				    * refused or timed out. false: it reports the first attempt */
	int log_level;		   /* VIESTI_LOG_INFO: on_log gets lines at or below this level */
	const struct viesti_tls *tls; /* NULL: plain TCP; else TLS as set there (default port
				       * for MQTT over TLS: 8883, set it in `port`) */
	const char *ws_path;	  /* NULL: MQTT straight over TCP (or TLS). Else MQTT over WebSocket
				   * (RFC 6455; over TLS when tls is set: wss), upgrading at this
				   * request path, such as "/mqtt" */
	const char *bind_address; /* NULL: any. Else the local host name or address the socket
				   * is bound to before connecting (mosquitto_pub -A) */
	const char *unix_path;	  /* NULL: TCP to host:port. Else this unix domain socket (port
				   * is then not used) */
	const char *proxy_host;	  /* NULL: connect directly. Else a SOCKS5 proxy (RFC 1928) that
				   * resolves host and connects to host:port for us ("socks5h") */
	int proxy_port;		  /* 0: 1080 */
	const char *proxy_username; /* NULL: no authentication. Else RFC 1929 username/password */
	const char *proxy_password;
	bool bridge; /* false. true: announce a bridge as Mosquitto's try_private does, with the
		      * top bit of the 3.1/3.1.1 protocol level set (Mosquitto and Viesti then
		      * never send this client its own messages back); ignored for 5.0, where
		      * bridges use No Local subscriptions instead */
};

VIESTI_API void viesti_options_init(struct viesti_options *o);

/* Creates a client (not yet connected). Returns NULL on bad options or ENOMEM; *err (if not
 * NULL) says which: VIESTI_EINVAL (also: auth_method unknown, or set without MQTT 5, a username
 * or a password, or with its own properties in connect_props), -ENOMEM, or for TLS files that
 * cannot be used -errno
 * (-ENOENT, -EACCES) or VIESTI_ETLS, with the reason logged to on_log first. cb may be NULL. */
VIESTI_API struct viesti *viesti_new(const struct viesti_options *o,
				     const struct viesti_callbacks *cb, void *ud, int *err);
/* Stops the loop thread if running, closes the connection without DISCONNECT (a will is sent),
 * drops the session and frees everything. */
VIESTI_API void viesti_free(struct viesti *v);
VIESTI_API void *viesti_userdata(struct viesti *v);

/* ---- Connecting ------------------------------------------------------------------------------ */

/* Starts connecting (non-blocking). Completion is reported by on_connect (or by a failed
 * attempt, logged, followed by a retry when reconnect is on). Returns 0, or VIESTI_ESTATE when
 * already connecting/connected. */
VIESTI_API int viesti_connect(struct viesti *v);
/*
 * Connects and waits up to timeout_ms (-1 forever) for the CONNACK. Returns 0 when accepted;
 * VIESTI_EREFUSED (reason via viesti_connack_reason(); on_connect was called with it, as for
 * every CONNACK); VIESTI_EAUTH (the broker failed enhanced authentication, see above); or the
 * failed attempt's error: -errno (-ECONNREFUSED, -EHOSTUNREACH, -ENOENT for a missing
 * unix_path), VIESTI_ELOOKUP for an unknown host, VIESTI_EPROXY (the SOCKS5 proxy said no),
 * VIESTI_EPROXY_TARGET (it could not reach the broker), VIESTI_ETLS (the reason, such as
 * "certificate verify failed: unable to get local issuer certificate", is logged to on_log at
 * VIESTI_LOG_ERR), or -ETIMEDOUT.
 * With reconnect and connect_wait_retries on (the defaults), a failed attempt is retried after
 * the reconnect delays (reconnect_min_ms, doubling up to reconnect_max_ms) until one is
 * accepted, the broker refuses (a refusal or VIESTI_EAUTH is an answer: it ends the wait at
 * once), or timeout_ms passes: then the last attempt's error is returned (-ETIMEDOUT if none
 * ended). Otherwise the first attempt's result is returned. Either way, when it returns an
 * error nothing goes on in the background: the client is idle until the next viesti_connect()
 * or viesti_connect_wait(). (viesti_connect(), which does not wait, keeps retrying with
 * reconnect on.)
 */
VIESTI_API int viesti_connect_wait(struct viesti *v, int timeout_ms);
/* The reason code of the last CONNACK, or -1 if none arrived yet. */
VIESTI_API int viesti_connack_reason(struct viesti *v);
/* Sends DISCONNECT (5.0 reason `reason`, usually 0; 0x04 to send the will) after everything
 * already queued to the socket, then closes. No reconnect follows. Returns 0 or VIESTI_ESTATE. */
VIESTI_API int viesti_disconnect(struct viesti *v, int reason, const struct viesti_props *props);
VIESTI_API bool viesti_is_connected(struct viesti *v);

/* ---- Messages -------------------------------------------------------------------------------- */

/*
 * Publishes. Returns the message id (> 0) for QoS 1/2, which on_publish reports when done; 0 for
 * QoS 0 (sent now, never reported); or an error: VIESTI_EINVAL (bad topic, QoS, property),
 * -ENOTCONN (QoS 0 while not connected: it is dropped), -EAGAIN (65,535 messages unacked).
 * QoS 1/2 messages are accepted while disconnected and sent after reconnecting.
 */
VIESTI_API int viesti_publish(struct viesti *v, const char *topic, const void *payload, size_t len,
			      int qos, bool retain, const struct viesti_props *props);
/* Publishes and waits for completion: QoS 0 until written to the socket, QoS 1 PUBACK, QoS 2
 * PUBCOMP. Returns the reason code (0, or 0x10 No matching subscribers in 5.0) or an error
 * (VIESTI_EREJECTED for a reason >= 0x80, -ETIMEDOUT: the message stays queued). */
VIESTI_API int viesti_publish_wait(struct viesti *v, const char *topic, const void *payload,
				   size_t len, int qos, bool retain,
				   const struct viesti_props *props, int timeout_ms);

/* Subscribes to n filters, each with options[i] = QoS | VIESTI_SUB_*. Returns the mid for
 * on_subscribe, or an error. Sent now if connected, else after the next CONNACK. */
VIESTI_API int viesti_subscribe_many(struct viesti *v, const char *const *filters,
				     const int *options, size_t n,
				     const struct viesti_props *props);
VIESTI_API int viesti_subscribe(struct viesti *v, const char *filter, int options,
				const struct viesti_props *props);
/* Subscribes and waits for the SUBACK. Returns the first reason code (granted QoS, or >= 0x80
 * for a refusal) or an error. */
VIESTI_API int viesti_subscribe_wait(struct viesti *v, const char *filter, int options,
				     const struct viesti_props *props, int timeout_ms);
VIESTI_API int viesti_unsubscribe_many(struct viesti *v, const char *const *filters, size_t n,
				       const struct viesti_props *props);
VIESTI_API int viesti_unsubscribe(struct viesti *v, const char *filter,
				  const struct viesti_props *props);

/* Outgoing QoS 1/2 messages not yet completed (queued or in flight). */
VIESTI_API size_t viesti_pending(struct viesti *v);

/* ---- Driving the client ------------------------------------------------------------------- */

/* Starts/stops a thread that drives the client. start returns 0 or VIESTI_ESTATE/-errno. */
VIESTI_API int viesti_loop_start(struct viesti *v);
VIESTI_API int viesti_loop_stop(struct viesti *v);

/* For the caller's event loop: an fd to watch for readability (stable for the client's life). */
VIESTI_API int viesti_fd(struct viesti *v);
/* Whether output is waiting for the socket (informational: viesti_fd() already covers it). */
VIESTI_API bool viesti_want_write(struct viesti *v);
/* Milliseconds until viesti_process() must be called even without events (-1: no timer). */
VIESTI_API int viesti_next_timeout_ms(struct viesti *v);
/* Does the work that is due: reads, writes, timers (keep-alive, reconnect). `events` is what the
 * caller's poll reported for viesti_fd() (informational; 0 is fine). Returns 0 or an error. */
VIESTI_API int viesti_process(struct viesti *v, int events);
/* Waits up to timeout_ms (-1: until the next timer) for activity, then processes it. */
VIESTI_API int viesti_loop(struct viesti *v, int timeout_ms);

/* ---- Misc ------------------------------------------------------------------------------------ */

VIESTI_API const char *viesti_strerror(int err);
/* The name of an MQTT reason code ("Not authorized"). */
VIESTI_API const char *viesti_reason_string(int reason);

/* ---- MQTT-SN 1.2 ------------------------------------------------------------------------------
 *
 * A client of an MQTT-SN gateway (Viesti's `protocol mqttsn` listener, or any MQTT-SN 1.2
 * gateway) over UDP, IPv4 or IPv6. One `struct viesti_sn` is one client: one socket, the topic
 * ids it knows, the messages it received and has not yet handed out. It is driven only by its
 * calls, which block up to their timeout_ms (-1: no limit but the retries, see below; 0: do
 * what can be done without waiting). There is no thread and no lock: use a client from one
 * thread at a time, and no callback runs but on_log, from inside the calls.
 *
 * One request at a time (MQTT-SN 1.2 section 6.13): each call sends its message and waits for
 * the answer, sending it again every retry_ms (a PUBLISH with DUP set), at most retry_count
 * more times. When those are used up the gateway counts as lost: the call returns -ETIMEDOUT
 * and the client is disconnected (viesti_sn_state() says VIESTI_SN_DISCONNECTED). When the
 * call's own timeout_ms passes first, it returns -ETIMEDOUT too, but the client stays as it
 * was and the answer, should it come later, is ignored. While a call waits, the client also
 * answers what the gateway sends on its own: REGISTER (REGACK, and the topic id is remembered),
 * PUBLISH (PUBACK, PUBREC, then PUBCOMP for the PUBREL; a QoS 2 message sent again with the
 * same message id is delivered once), PINGREQ; and it sends PINGREQ when it sent nothing for
 * `keepalive` seconds. So a connected client that is not asleep must call into the library
 * (viesti_sn_receive(), or viesti_sn_process() from a poll loop) at least that often.
 *
 * Results: calls that the gateway answers with a ReturnCode (CONNACK, REGACK, PUBACK, SUBACK,
 * WILLTOPICRESP, WILLMSGRESP) return it: VIESTI_SN_ACCEPTED (0), or the rejection
 * (VIESTI_SN_CONGESTION, VIESTI_SN_INVALID_TOPIC, VIESTI_SN_NOT_SUPPORTED), >= 0 all. Errors
 * are negative, as everywhere in this header: VIESTI_EINVAL (a bad argument), VIESTI_ESTATE
 * (not connected, or asleep), -ETIMEDOUT, -ECONNREFUSED (nobody listens on the gateway's
 * port), VIESTI_ECLOSED (the gateway sent DISCONNECT: it no longer knows this client),
 * VIESTI_EPROTO, -ENOMEM, -ENOENT (a host name that does not resolve).
 *
 * Topic ids. PUBLISH carries a two-byte topic id, of one of three kinds, which
 * viesti_sn_publish() chooses from the topic name: a name in the client's predefined table
 * (viesti_sn_predefine(), the same table as the gateway's mqttsn_predefined_topics) goes as
 * its predefined id; a two-character name as a short topic name; any other name is REGISTERed
 * the first time and its id reused after that (a new CONNECT forgets those ids: the gateway
 * gives new ones). A PUBACK "rejected: invalid topic id" makes the client forget the id too,
 * so the next publish registers the name again.
 *
 * Sleeping (section 6.14): viesti_sn_sleep() tells the gateway to keep messages for the
 * client; viesti_sn_wake() collects them; viesti_sn_connect() makes a sleeping client active
 * again. Messages received are kept in the client, in order, for viesti_sn_receive(), at most
 * max_queued of them; when the queue is full, a QoS 1 or 2 message is not acknowledged (the
 * gateway sends it again) and a QoS 0 message is dropped.
 */

struct viesti_sn; /* one MQTT-SN client; opaque */

/* ReturnCode (section 5.3.10). */
enum {
	VIESTI_SN_ACCEPTED = 0,
	VIESTI_SN_CONGESTION = 1,    /* rejected: congestion (try again later) */
	VIESTI_SN_INVALID_TOPIC = 2, /* rejected: invalid topic id */
	VIESTI_SN_NOT_SUPPORTED = 3, /* rejected: not supported (also: not allowed) */
};

/* TopicIdType (section 5.3.4). */
enum {
	VIESTI_SN_TOPIC_NORMAL = 0,	/* a registered id; in (UN)SUBSCRIBE: a topic name */
	VIESTI_SN_TOPIC_PREDEFINED = 1, /* an id both sides know beforehand */
	VIESTI_SN_TOPIC_SHORT = 2,	/* two characters, in the id field */
};

/* The topic id of a short topic name "ab": VIESTI_SN_SHORT('a', 'b'). */
#define VIESTI_SN_SHORT(a, b) ((uint16_t)((uint16_t)(uint8_t)(a) << 8 | (uint8_t)(b)))

/* What viesti_sn_state() returns. */
enum viesti_sn_state {
	VIESTI_SN_DISCONNECTED = 0, /* before connecting, after a disconnect or a lost gateway */
	VIESTI_SN_ACTIVE = 1,	    /* connected */
	VIESTI_SN_ASLEEP = 2, /* sleeping (viesti_sn_sleep), also after a wake-up's PINGRESP */
	VIESTI_SN_AWAKE = 3,  /* woken (PINGREQ sent), taking what was kept, no PINGRESP yet */
};

/*
 * Options: fill with viesti_sn_options_init() (defaults noted), then change fields. Strings
 * and the will are copied by viesti_sn_new().
 */
struct viesti_sn_options {
	const char *host;	/* "localhost": a name (getaddrinfo, IPv4 and IPv6) or an address */
	int port;		/* 1884 */
	const char *client_id;	/* NULL: "viesti-sn-" and 12 random hex digits. MQTT-SN 1.2 says
				 * 1..23 characters; up to 1024 bytes are sent */
	int keepalive;		/* 60 seconds (CONNECT's Duration); 0: no keep-alive */
	bool clean;		/* true: CleanSession (subscriptions and will start afresh) */
	const char *will_topic; /* NULL: no will. Else CONNECT carries the Will flag and the
				 * gateway's WILLTOPICREQ and WILLMSGREQ are answered with these */
	const void *will_payload;
	size_t will_payload_len;
	int will_qos; /* 0..2 */
	bool will_retain;
	int retry_ms;	   /* 10000: Tretry, the wait for an answer before sending again */
	int retry_count;   /* 5: Nretry, sends after the first before the gateway is lost */
	size_t max_queued; /* 1000: received messages kept for viesti_sn_receive() */
	int log_level;	   /* VIESTI_LOG_INFO: on_log gets lines at or below this level;
			    * VIESTI_LOG_DEBUG lines name every message sent and received */
	void (*on_log)(struct viesti_sn *c, void *ud, int level, const char *line);
	void *ud; /* for on_log */
};

VIESTI_API void viesti_sn_options_init(struct viesti_sn_options *o);

/* Creates a client and resolves the host (this may block on DNS). Sends nothing. Returns NULL
 * with *err (if not NULL) set: VIESTI_EINVAL (bad options), -ENOENT (the name does not
 * resolve), -ENOMEM. */
VIESTI_API struct viesti_sn *viesti_sn_new(const struct viesti_sn_options *o, int *err);
/* Closes the socket and frees everything, sending nothing (use viesti_sn_disconnect() first
 * for a clean end: without it, the gateway publishes the will once the keep-alive runs out). */
VIESTI_API void viesti_sn_free(struct viesti_sn *c);

/* Adds id -> topic to the client's predefined topic ids (id 1..65534, topic a topic name
 * without wildcards). Returns 0, VIESTI_EINVAL (a bad id or name, or either already in the
 * table) or -ENOMEM. The gateway must have the same table. */
VIESTI_API int viesti_sn_predefine(struct viesti_sn *c, uint16_t id, const char *topic);

/* Connects: CONNECT, the will dialogue when there is a will, CONNACK. Also from any state:
 * a sleeping client becomes active again (with clean false and no will, the gateway keeps
 * its session as it is), a connected one starts over. Returns the CONNACK's ReturnCode (0:
 * connected) or an error. With several addresses for the host, a refused one (-ECONNREFUSED)
 * is left for the next, and each retry goes to the next. */
VIESTI_API int viesti_sn_connect(struct viesti_sn *c, int timeout_ms);
/* DISCONNECT, and waits for the gateway's DISCONNECT. Returns 0, or -ETIMEDOUT (no answer);
 * the client is disconnected either way, and a will is not published. */
VIESTI_API int viesti_sn_disconnect(struct viesti_sn *c, int timeout_ms);
VIESTI_API enum viesti_sn_state viesti_sn_state(const struct viesti_sn *c);
/* The client id in use (the generated one when none was given). */
VIESTI_API const char *viesti_sn_client_id(const struct viesti_sn *c);

/* REGISTERs a topic name (no wildcards) and sets *topic_id (may be NULL) to the id the
 * gateway gave. A name already registered on this connection returns its id at once. Returns
 * the REGACK's ReturnCode or an error. */
VIESTI_API int viesti_sn_register(struct viesti_sn *c, const char *topic, uint16_t *topic_id,
				  int timeout_ms);

/*
 * Publishes payload on topic (a name without wildcards), choosing the kind of topic id as
 * described above. QoS 0: returns 0 once sent (after the REGISTER a new name needs).
 * QoS 1: waits for the PUBACK; QoS 2: for the PUBREC, then sends PUBREL and waits for the
 * PUBCOMP. Returns the ReturnCode (of the PUBACK, or of the REGACK when the gateway refused the
 * name) or an error.
 * QoS -1 (section 6.8) needs no connection and gets no answer: only to a predefined topic or
 * a short name (else VIESTI_EINVAL); sent once; returns 0. Over several addresses for the
 * host, it goes to the first that does not at once refuse the datagram.
 */
VIESTI_API int viesti_sn_publish(struct viesti_sn *c, const char *topic, const void *payload,
				 size_t len, int qos, bool retain, int timeout_ms);

/* What a SUBACK said: the granted QoS, and a topic id (for a name without wildcards the
 * gateway gives an id of kind VIESTI_SN_TOPIC_NORMAL, or the predefined id; 0 for filters with
 * wildcards, whose topics the gateway REGISTERs before sending on them). */
struct viesti_sn_granted {
	int qos;
	uint16_t topic_id;
};

/* Subscribes to a topic filter by name (wildcards allowed), with QoS 0..2. Returns the
 * SUBACK's ReturnCode or an error; granted (may be NULL) is filled when it is 0. */
VIESTI_API int viesti_sn_subscribe(struct viesti_sn *c, const char *filter, int qos,
				   struct viesti_sn_granted *granted, int timeout_ms);
/* Subscribes by topic id: type VIESTI_SN_TOPIC_PREDEFINED with a predefined id, or
 * VIESTI_SN_TOPIC_SHORT with VIESTI_SN_SHORT(a, b). */
VIESTI_API int viesti_sn_subscribe_id(struct viesti_sn *c, int type, uint16_t topic_id, int qos,
				      struct viesti_sn_granted *granted, int timeout_ms);
/* UNSUBSCRIBE by name or by id, waiting for the UNSUBACK (which has no ReturnCode): 0 or an
 * error. */
VIESTI_API int viesti_sn_unsubscribe(struct viesti_sn *c, const char *filter, int timeout_ms);
VIESTI_API int viesti_sn_unsubscribe_id(struct viesti_sn *c, int type, uint16_t topic_id,
					int timeout_ms);

/* A received message. Its pointers are valid until the next call on the client. */
struct viesti_sn_message {
	const char *topic; /* NUL-terminated */
	size_t topic_len;
	int topic_type; /* VIESTI_SN_TOPIC_*: how the gateway named it */
	uint16_t topic_id;
	const void *payload;
	size_t payload_len;
	int qos; /* 0..2 */
	bool retain;
	bool dup;
	uint16_t msg_id; /* 0 for QoS 0 */
};

/*
 * Takes the oldest message received, waiting up to timeout_ms for one while serving the
 * client (acknowledgements, retransmissions, keep-alive). Returns 0 with *msg filled, or
 * -ETIMEDOUT when none came, or an error (VIESTI_ECLOSED: the gateway disconnected the client;
 * messages received before stay to be taken). A message on a topic id the client cannot name
 * (a predefined id not in its table, a normal id never registered) is refused with PUBACK
 * "rejected: invalid topic id" and is not delivered.
 */
VIESTI_API int viesti_sn_receive(struct viesti_sn *c, struct viesti_sn_message *msg,
				 int timeout_ms);
/* Received messages waiting to be taken. */
VIESTI_API size_t viesti_sn_queued(const struct viesti_sn *c);

/* PINGREQ, and waits for the PINGRESP. Returns 0 or an error. */
VIESTI_API int viesti_sn_ping(struct viesti_sn *c, int timeout_ms);

/* Goes to sleep for duration_s seconds (1..65535): DISCONNECT with that duration, then waits
 * for the gateway's DISCONNECT. Returns 0 (the client is VIESTI_SN_ASLEEP) or an error. The
 * gateway keeps messages for the client until it wakes, and counts it as lost (publishing the
 * will) if it neither wakes nor connects within about 1.5 times the duration. */
VIESTI_API int viesti_sn_sleep(struct viesti_sn *c, unsigned duration_s, int timeout_ms);
/*
 * Wakes a sleeping client to take what was kept for it: PINGREQ with the client id. The
 * gateway then sends the kept messages, which are acknowledged and queued for
 * viesti_sn_receive(), and a PINGRESP after the last one, after which the client is asleep
 * again. Returns once the PINGRESP came: the number of messages that arrived (>= 0, all in the
 * queue). Or -ENOBUFS when the queue filled up first (take messages with viesti_sn_receive(),
 * then call viesti_sn_wake() again to continue), -ETIMEDOUT, or an error.
 */
VIESTI_API int viesti_sn_wake(struct viesti_sn *c, int timeout_ms);

/* Changes the will while connected: WILLTOPICUPD with a new topic, QoS and retain flag (the
 * will message stays), or with topic NULL, which removes the will. Returns the WILLTOPICRESP's
 * ReturnCode or an error. */
VIESTI_API int viesti_sn_will_topic_update(struct viesti_sn *c, const char *topic, int qos,
					   bool retain, int timeout_ms);
/* WILLMSGUPD: a new will message (the topic stays). Returns the WILLMSGRESP's ReturnCode. */
VIESTI_API int viesti_sn_will_msg_update(struct viesti_sn *c, const void *payload, size_t len,
					 int timeout_ms);

/* For a poll loop: the socket to watch for reading (-1 before the first message is sent), the
 * milliseconds until viesti_sn_process() is due anyway (-1: nothing is), and the processing:
 * reads what arrived (answering it, queueing messages), retransmits, sends the keep-alive
 * PINGREQ; never waits. Returns 0 or an error (VIESTI_ECLOSED, -ETIMEDOUT: the gateway is
 * lost). */
VIESTI_API int viesti_sn_fd(const struct viesti_sn *c);
VIESTI_API int viesti_sn_next_timeout_ms(const struct viesti_sn *c);
VIESTI_API int viesti_sn_process(struct viesti_sn *c);

#ifdef __cplusplus
}
#endif

#endif
