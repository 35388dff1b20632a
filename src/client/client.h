/*
 * The inside of struct viesti, shared by the files of src/client: client.c (creation, options,
 * the public calls), conn.c (one connection's life: connect, read, write, lose, reconnect,
 * timers) and drive.c (the loop thread, the caller-driven loop, blocking waits).
 *
 * Locking: `lock` is recursive and guards every field. Public calls take it; the descriptor
 * callbacks (on readiness) take it; callbacks to the user run with it held, so the user may call
 * back into the API. `busy` counts nested I/O handling on the stack: API calls made from inside
 * a callback only queue output and leave the writing to the handler that is running.
 */
#ifndef VS_CLIENT_CLIENT_H
#define VS_CLIENT_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "client/auth.h"
#include "client/props.h"
#include "client/tls.h"
#include "net/transport.h"
#include "net/ws.h"
#include "net/loop.h"
#include "proto/client.h"
#include "viesti.h"

enum vs_client_state {
	VS_ST_IDLE,    /* no connection and none coming (before connect, after disconnect) */
	VS_ST_TCP,     /* transport connecting */
	VS_ST_MQTT,    /* CONNECT sent, awaiting CONNACK */
	VS_ST_UP,      /* accepted */
	VS_ST_CLOSING, /* DISCONNECT queued, flushing, then close */
	VS_ST_WAIT,    /* waiting to reconnect */
};

#define VS_PENDING   1 /* first_result not yet known */
#define VS_DONE_RING 64

struct viesti {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* broadcast on every state change a waiter may care about */
	struct viesti_callbacks cb;
	void *ud;

	/* options, owned copies */
	char *host;
	int port;
	int version;
	char *client_id;
	char *username;
	char *password;
	size_t password_len;
	int keepalive;
	bool clean;
	bool bridge; /* try_private: 3.x protocol level | 0x80 */
	struct viesti_props *connect_props;
	char *will_topic;
	uint8_t *will_payload;
	size_t will_len;
	int will_qos;
	bool will_retain;
	struct viesti_props *will_props;
	bool reconnect;
	int reconnect_min_ms;
	int reconnect_max_ms;
	int connect_timeout_ms;
	int log_level;
	struct vs_tls_ctx *tls;	       /* NULL: plain TCP */
	char *ws_path;		       /* NULL: no WebSocket */
	struct vs_ws_client_conf ws;   /* ws_path's settings for the WebSocket transport */
	struct vs_tcp_conf tcp;	       /* bind address, unix socket, SOCKS5 proxy (owned copies) */
	struct vs_client_scram *scram; /* enhanced authentication (auth_method), or NULL */

	struct vs_cproto cp; /* the protocol state machine and the session */
	struct vs_transport tr;
	struct vs_loop loop;  /* its epfd is viesti_fd() */
	struct vs_io sock_io; /* tr.fd while registered (sock_on) */
	struct vs_io wake_io; /* an eventfd to wake the loop thread */
	bool sock_on;
	int state;	      /* enum vs_client_state */
	int64_t deadline_ms;  /* TCP/MQTT/CLOSING: give up at; WAIT: retry at */
	int backoff_ms;	      /* the next reconnect delay before jitter */
	bool user_stop;	      /* viesti_disconnect() was called: no reconnect */
	bool session_started; /* a CONNACK was accepted since viesti_connect() */
	int first_result;     /* outcome of the attempt connect_wait waits for, or VS_PENDING */
	int attempt_result;   /* outcome of the latest attempt, or VS_PENDING */
	bool wait_retries;    /* options.connect_wait_retries */
	int last_err;	      /* why the last connection ended or attempt failed */
	int connack_reason;   /* of the last CONNACK, or -1 */
	int disc_reason;      /* of a DISCONNECT from the broker, or -1 */
	bool disc_cb_pending; /* on_disconnect(0) owed after a user disconnect */
	int busy;	      /* I/O handlers on the stack */
	struct vs_bytes in;   /* bytes read, not yet a whole packet */
	char *topic_buf;      /* NUL-terminated copy of a received topic */
	size_t topic_cap;
	struct {
		uint16_t id;
		int16_t reason;
	} done[VS_DONE_RING]; /* recent completions, for *_wait */
	unsigned done_n;
	pthread_t thread;
	bool thread_on;
	bool thread_stop;
	uint64_t rng;
	unsigned trace_qos0_mid; /* QoS 0 PUBLISHes sent, for the debug lines (see conn.c) */
};

void vs_client_log(struct viesti *v, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* conn.c */
extern const struct vs_cproto_events vs_client_events;
void vs_client_start_attempt(struct viesti *v);
void vs_client_flush(struct viesti *v);
void vs_client_close_sock(struct viesti *v);
void vs_client_run_timers(struct viesti *v);
int vs_client_next_timeout(struct viesti *v);
void vs_client_on_sock(struct vs_io *io, uint32_t events);
void vs_client_record_done(struct viesti *v, uint16_t id, int reason);
int vs_client_done_reason(struct viesti *v, uint16_t id);

/* drive.c: waits (with the lock held) until pred(v, arg) or timeout_ms; 0 or -ETIMEDOUT /
 * VIESTI_ESTATE. */
int vs_client_wait(struct viesti *v, bool (*pred)(struct viesti *v, void *arg), void *arg,
		   int timeout_ms);
void vs_client_wake(struct viesti *v);

#endif
