/*
 * One client connection: its socket, buffers, protocol state and the session it is attached to.
 * Owned by exactly one worker, which alone reads, writes and frees it (STYLE: one owner frees
 * everything a connection allocated).
 *
 * Packet handlers live one file per packet family (connect.c, publish.c, subscribe.c) and are
 * dispatched by a flat switch in conn.c.
 */
#ifndef VS_BROKER_CONN_H
#define VS_BROKER_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "base/map.h"
#include "codec/codec.h"
#include "net/loop.h"
#include "net/transport.h"
#include "proto/server.h"

struct vs_worker;
struct vs_session;
struct vs_msg;
struct vs_listener;

/* Where a CONNECT waits between its steps (connect.c). */
enum vs_connect_step {
	VS_CS_NONE,	/* not waiting */
	VS_CS_AUTH,	/* for an authentication thread's password check (parked) */
	VS_CS_SCRAM,	/* for the client's AUTH with its SCRAM proof */
	VS_CS_TAKEOVER, /* for another worker to close the session's old connection (parked) */
	VS_CS_ROAM,	/* for the cluster: the session's owner, or the session from another node
			 * (parked, cluster_session.h) */
	VS_CS_BARRIER,	/* for the other nodes to know the subjects of the session that came
			 * (parked, cluster_interest.h: the barrier) */
};

struct vs_scram_server;
struct vs_auth_job;
struct vs_http_conn;

/* What a connection keeps of its CONNECT until the CONNACK (connect.c). */
struct vs_connecting {
	uint8_t step;		 /* enum vs_connect_step */
	bool clean;		 /* Clean Session / Clean Start asked for */
	uint16_t keepalive;	 /* the keep-alive asked for */
	bool asked;		 /* the cluster was asked for the session (cluster_session.h) */
	struct vs_auth_job *job; /* the password check waited for, or NULL */
	struct vs_scram_server *scram; /* SCRAM-SHA-256 exchange, or NULL */
	uint8_t final_len;
	uint8_t final[64]; /* server-final-message, for the CONNACK */
};

enum vs_conn_state {
	VS_CONN_NEW,	 /* waiting for CONNECT */
	VS_CONN_ACTIVE,	 /* CONNACK sent */
	VS_CONN_CLOSING, /* being torn down */
};

struct vs_conn {
	/* Laid out without holes, cold 5.0 state out of line: an idle connection is this struct
	 * and its session. */
	struct vs_io io;
	struct vs_transport tp; /* plain, TLS, ...: every byte goes through it (tp.fd == io.fd) */
	struct vs_worker *w;
	struct vs_listener *listener;
	uint64_t id;		    /* unique per worker */
	struct vs_session *session; /* one reference, NULL before CONNECT */
	struct vs_msg *will;	    /* will message, or NULL */
	char *client_id;	    /* NULL before CONNECT; after it, owned, or the attached
				     * session's (borrowed while attached) */
	char *username;
	struct vs_alias_in in_alias; /* 5.0: the topic of each incoming alias (proto/server.h) */
	struct vs_map *out_alias;    /* 5.0 topic -> alias (as uintptr_t), allocated on first use */
	struct vs_connecting *connecting; /* from CONNECT to CONNACK, else NULL */
	struct vs_http_conn *http; /* a connection of an http listener: its HTTP state (http.h),
				    * else NULL */
	struct vs_hold *hold;	   /* output waiting for the store's sync, or NULL (see below) */
	int64_t last_rx_ms;	   /* last whole packet; the accept time before CONNECT */
	int64_t throttle_until_ms;
	int64_t blocked_since_ms; /* output waits for the socket since then; 0 = it flows */
	/* Read by other threads (the HTTP API's client list, api.c) under the attached session's
	 * lock, while the session's conn is this connection: connected_wall, and with these two
	 * counters (written only by the owner, relaxed) addr, keepalive, listener, username and
	 * version, which do not change while the session is attached. */
	int64_t connected_wall;		/* wall-clock seconds of the CONNACK (attach) */
	atomic_uint_fast64_t bytes_in;	/* bytes read on this connection */
	atomic_uint_fast64_t bytes_out; /* bytes written */
	struct vs_bytes in;
	struct vs_bytes out;
	uint32_t slot;
	uint32_t connecting_bytes;  /* c->in's size as counted in b->connecting_bytes (only
				     * before CONNECT is handled) */
	uint32_t client_max_packet; /* 0 = none */
	uint32_t in_qos2;	    /* incoming QoS 2 awaiting PUBREL (for Receive Maximum) */
	uint32_t will_delay;
	uint32_t session_expiry;     /* 5.0 Session Expiry Interval / 3.x derived */
	uint32_t session_gen;	     /* the session's conn_gen when attached */
	uint16_t throttle_ms;	     /* current back-off */
	uint16_t keepalive;	     /* effective, seconds */
	uint16_t client_receive_max; /* 5.0: the client's Receive Maximum */
	uint16_t client_alias_max;   /* 5.0: outgoing aliases we may use */
	uint16_t out_alias_next;
	uint16_t log_window;  /* vs_conn_log_ok: the current 10 s window (its number, wrapping) */
	uint16_t log_dropped; /* lines left out in it (saturating) */
	uint8_t log_used;     /* lines written in it */
	uint8_t state;
	uint8_t version;      /* 0 until CONNECT */
	uint8_t addr_room;    /* bytes allocated for addr (its NUL included) */
	bool durable_pending; /* output holds an acknowledgement not yet committed to the store */
	bool parked;	      /* not read: its CONNECT waits (vs_connecting.step) */
	bool throttled;	      /* not read until throttle_until_ms: a subscriber queue is full */
	bool want_drain;      /* output went over the high-water mark: drain when it empties */
	bool in_flush;	      /* in the worker's flush list */
	bool in_reread;	      /* in the worker's reread list */
	bool needs_sync;      /* this turn's output says something stored: with fsync batch, it
			       * waits for the sync (worker.c, held output) */
	uint8_t pre_slot;     /* read already (vs_conn_prefetch): its slot + 1, or 0 */
	/* Bits set at CONNECT or at the end, not per message. */
	bool graceful : 1;	       /* a DISCONNECT (without will) was received */
	bool request_problem_info : 1; /* 5.0, default 1 */
	bool will_recorded : 1;	       /* the store holds this connection's will (see connect.c) */
	bool will_in_cluster : 1;      /* vs_wills in JetStream holds it (cluster_js.h) */
	bool release_out : 1;	       /* free the output buffer once written (only a CONNACK) */
	bool id_assigned : 1;	       /* the broker chose its client id [MQTT-3.1.3-6] */
	bool tls_user : 1;	       /* the username comes from the TLS handshake */
	bool preauth : 1;	       /* admitted by its listener without credentials (an MQTT-SN
					* source in mqttsn_allowed_sources) */
	bool superseded : 1;	       /* closed by a take-over that resumes its session: no will */
	bool acks_held : 1;	       /* a SUBACK waits for the cluster (w->held): the next
					* SUBACK or UNSUBACK waits behind it */
	bool bridge : 1;	       /* a 3.x bridge (protocol level | 0x80, try_private): its
					* subscriptions are No Local, as Mosquitto treats bridges */
	uint16_t connected_msec;       /* and milliseconds (read as connected_wall is) */
	/* "[IPv6]:port", or a unix socket's peer: allocated with the connection, as long as the
	 * address (up to VS_CONN_ADDR_MAX with its NUL), or VS_CONN_ADDR_MAX on a websockets
	 * listener, where X-Forwarded-For may replace it. inet_ntop writes at most 39 characters
	 * for an IPv6 address, so VS_CONN_ADDR_MAX holds any address vs_addr_str formats. */
	char addr[];
};

#define VS_CONN_ADDR_MAX 48

/*
 * Whether a log line that the client can cause with every packet it sends (an ACL denial, a
 * PUBLISH dropped for its size...) may be written now. Such lines are rationed per
 * connection, VS_CONN_LOG_BURST per 10 s, so a hostile client can neither fill the disk nor
 * drown everyone else's lines; what was left out is counted in one line when the next window
 * opens or the connection closes.
 */
#define VS_CONN_LOG_BURST 10
bool vs_conn_log_ok(struct vs_conn *c);

/* Accepts a new socket on worker w: a plain stream, or a TLS session from the listener's
 * context, whose handshake then runs in the loop before anything is read (and counts against
 * the CONNECT deadline). Returns 0 or -errno (the fd is closed on failure). */
int vs_conn_accept(struct vs_worker *w, struct vs_listener *l, int fd, const char *addr);

/*
 * A connection without a descriptor of its own (an MQTT-SN client of a datagram socket): open
 * makes c->tp (with c as its owner); its owner feeds it and calls vs_conn_readable() when it
 * has input, and flushes it when it has room (no epoll events). Returns the connection, or
 * NULL (open's failure or no memory).
 */
struct vs_conn *vs_conn_virtual(struct vs_worker *w, struct vs_listener *l, const char *addr,
				int (*open)(struct vs_transport *tp, struct vs_conn *c, void *arg),
				void *arg);

/*
 * What a packet handler did, the one contract between the handlers and process_input (conn.c):
 * the connection goes on with its next packet, or it was closed (vs_conn_close) and nothing more
 * of its input is read. A packet is consumed before its handler runs, whatever it returns, so no
 * packet is ever handled twice.
 */
enum vs_handled {
	VS_GO_ON = 0,
	VS_CLOSED = -1,
};

/*
 * Encodes p (for the connection's protocol version) at the end of the output buffer and
 * schedules a flush. Returns 0 or a negative error: VS_ETOOBIG when p is larger than the
 * client's Maximum Packet Size [MQTT-3.1.2-24], -ENOMEM. The caller decides what a failure
 * means; a handler's reply goes through vs_conn_reply instead.
 */
int vs_conn_send(struct vs_conn *c, const struct vs_packet *p);
/* Sends a bare acknowledgement (PUBACK..PUBCOMP). */
int vs_conn_send_ack(struct vs_conn *c, int type, uint16_t id, uint8_t reason);

/*
 * Sends a reply the client waits for (an acknowledgement, SUBACK, UNSUBACK, PINGRESP): when it
 * cannot be sent, the connection is closed with a log line that says why, since the client would
 * otherwise wait for ever or send the packet again. Returns VS_GO_ON or VS_CLOSED.
 */
enum vs_handled vs_conn_reply(struct vs_conn *c, const struct vs_packet *p);
enum vs_handled vs_conn_reply_ack(struct vs_conn *c, int type, uint16_t id, uint8_t reason);

/*
 * Closes the connection: for 5.0, with reason >= 0x80 (or 0x8E/0x8B) a DISCONNECT is sent first;
 * the will is published unless the client disconnected gracefully; the session is detached (and
 * ended when it does not outlive the connection). `why` is logged. Frees c.
 */
void vs_conn_close(struct vs_conn *c, int reason, const char *why);

/* Reads once (unless parked or throttled) and handles what arrived. */
void vs_conn_readable(struct vs_conn *c);
/* Reads and handles everything the socket holds now (used before closing a connection that is
 * being taken over, so a DISCONNECT it already sent is honoured). Returns 0, or -1 if c was
 * closed and freed. */
int vs_conn_pump(struct vs_conn *c);
/* Stops reading c while its CONNECT waits. */
void vs_conn_park(struct vs_conn *c);
/* Reads on after the wait: what arrived behind the CONNECT (c->in), then the socket. */
void vs_conn_unpark(struct vs_conn *c);

/* Sets the epoll interest from the connection's state (parked, throttled, output pending). */
void vs_conn_update_events(struct vs_conn *c);
/* Stops reading c until until_ms, or until the queue `key` (a session, or VS_QUEUES for several)
 * drains (backpressure from full subscriber queues, vs_worker_resume_publishers). Returns
 * whether it paused c (false: it already was, or no memory). */
bool vs_conn_throttle(struct vs_conn *c, int64_t until_ms, const void *key);

/* Closes the sockets of closed connections whose lingering is over (all of them: at the
 * worker's end) and frees their records (the sweep calls it; see conn.c). */
void vs_conn_linger_sweep(struct vs_worker *w, bool all);

/* Logs how many connections closed before CONNECT without a line of their own, when due (the
 * sweep calls it; see conn.c). */
void vs_conn_log_summary(struct vs_worker *w);

/* From the sweep: marks the session of a client that takes no output as stalled, and closes
 * the connection past max_unsent_bytes (see conn.c). */
void vs_conn_check_stall(struct vs_conn *c);

/* Writes pending output with one write(2); registers EPOLLOUT when the socket is full. Only
 * what no hold keeps back is written. */
void vs_conn_flush(struct vs_conn *c);

/* vs_conn_flush in parts, for a caller that makes the write itself (many connections' writes
 * in one system call, worker.c): begin says whether c has output to handle now, and how many
 * bytes from vs_bytes_head(&c->out) may be written (0: all of it is held); written takes what
 * the write took off the buffer, and touches nothing but c; end does the rest (a failed
 * write's close, waiting for room, what an empty buffer sets off), given the write's result
 * as the transport's write gives it (0 when nothing was written). */
bool vs_conn_flush_begin(struct vs_conn *c, size_t *ready);
void vs_conn_flush_written(struct vs_conn *c, ssize_t n);
void vs_conn_flush_end(struct vs_conn *c, ssize_t n, size_t ready);

/* Around the handling of a wait's events by thread h (worker.c): prefetch reads the readable
 * connections among evs in one system call, when it can and there are several (false: it did
 * nothing); their handlers then take what was read. prefetch_end, after the events, handles
 * what a handler did not take. See conn.c. */
bool vs_conn_prefetch(struct vs_worker *h, const struct epoll_event *evs, int n);
void vs_conn_prefetch_end(struct vs_worker *h);

/*
 * Held output (persistence_fsync batch, worker.c). What a connection got during a loop turn,
 * when it says something stored (needs_sync), waits until the store has synced the write it
 * depends on; what it gets later stays behind it (the order of the bytes on a connection never
 * changes). The unsent output is, from its head: `ok` bytes that may go, `a` bytes waiting for
 * write seq_a, `b` bytes waiting for seq_b (which the turns that follow extend), then bytes of
 * turns that wrote nothing, which go once the holds before them are gone. Two holds, not one: a
 * connection that gets output every turn would otherwise wait for ever behind a hold that every
 * turn pushes on. Counts are relative to the head of c->out, so compaction and consumption leave
 * them right (only a write, which consumes at most `ok`, moves them).
 */
struct vs_hold {
	size_t seen;	       /* unsent bytes after the last flush: not from this turn */
	size_t ok, a, b;       /* while seq_a != 0 */
	uint64_t seq_a, seq_b; /* 0: no hold */
	bool listed;	       /* in the worker's held list */
};

/* Holds c's output of this turn until write seq is synced. Returns 1 when c now holds output
 * (list it), 0 when it had nothing new, -ENOMEM. */
int vs_conn_hold(struct vs_conn *c, uint64_t seq);
/* The holds of c whose writes are synced end (see vs_store_durable). Returns 1 when some did
 * (flush c), 0, or -1 when one waits for a write whose sync failed: its output must not go. */
int vs_conn_release(struct vs_conn *c, uint64_t synced, uint64_t failed);

/* Packet handlers (connect.c, publish.c, subscribe.c): see enum vs_handled. */
enum vs_handled vs_on_connect(struct vs_conn *c, const struct vs_connect *p);
enum vs_handled vs_on_publish(struct vs_conn *c, const struct vs_publish *p);
enum vs_handled vs_on_ack(struct vs_conn *c, int type, const struct vs_ack *a);
enum vs_handled vs_on_subscribe(struct vs_conn *c, const struct vs_subscribe *p);
enum vs_handled vs_on_unsubscribe(struct vs_conn *c, const struct vs_unsubscribe *p);
/* Sends the replies held for the cluster's barrier whose ticket is confirmed (VS_MAIL_HELD),
 * and goes on with the CONNECTs held for it. */
void vs_release_held(struct vs_worker *w);
/* Holds the CONNECT of c (parked, VS_CS_BARRIER) until ticket is confirmed, then calls
 * vs_cluster_session_resume(c). Returns false (nothing held) when ticket is 0 or confirmed
 * already, or without memory: the caller goes on at once. */
bool vs_hold_connect(struct vs_conn *c, uint64_t ticket);
enum vs_handled vs_on_disconnect(struct vs_conn *c, const struct vs_disconnect *p);
enum vs_handled vs_on_auth(struct vs_conn *c, const struct vs_disconnect *p);

/* The waits of a CONNECT end (connect.c): an authentication thread's answer; the take-over's
 * old connection is gone. Both may close c. */
void vs_connect_authenticated(struct vs_conn *c, bool ok);
enum vs_handled vs_connect_resume(struct vs_conn *c);
/* Replaces the will of an active connection (MQTT-SN WILLTOPICUPD / WILLMSGUPD), after the
 * checks a CONNECT's will gets; takes will's reference (NULL: no will). Returns a 5.0 reason
 * code, with *why on refusal (the old will stays). */
int vs_connect_update_will(struct vs_conn *c, struct vs_msg *will, const char **why);
/* Frees what c kept of its CONNECT (cancels a password check it waits for). */
void vs_connecting_free(struct vs_conn *c);

#endif
