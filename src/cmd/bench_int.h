/*
 * What the files of `viesti bench`'s engine share (bench_run.c, bench_client.c,
 * bench_traffic.c): the client, worker and run structures, and the functions one file calls in
 * another. The design is described at the top of bench_run.c.
 */
#ifndef VS_CMD_BENCH_INT_H
#define VS_CMD_BENCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "cmd/bench_run.h"
#include "codec/codec.h"
#include "net/loop.h"

struct vs_transport;

enum phase { P_SUBS, P_PUBS, P_RUN, P_STOP, P_BYE, P_EXIT };
enum role { R_PUB, R_SUB, R_IDLE };
enum cstate { C_NEW, C_TCP, C_TLS, C_WS, C_CONNACK, C_SUBACK, C_READY, C_BYE, C_CLOSED };

#define READ_CHUNK   (64 * 1024)
#define MAX_PUB_ID   (1u << 20) /* trackers are not made for ids above this (foreign payloads) */
#define BYE_WAIT_NS  2000000000ll
#define QOS0_IDLE_NS 250000000ll

/* The trackers of one subscriber, indexed by publisher id - lo. */
struct streams {
	uint32_t lo, n;
	struct vs_stream **v;
};

struct worker;

struct client {
	struct vs_io io; /* io.fd is -1 when closed */
	struct worker *w;
	uint8_t role;  /* enum role */
	uint8_t state; /* enum cstate */
	bool blocked;  /* QoS 0 full speed: output over the bound, retried at the next tick */
	uint32_t idx;  /* publisher id, or subscriber / idle index */
	SSL *ssl;      /* TLS: the session on io.fd; NULL for plain TCP */
	struct vs_transport *ws; /* --ws-path: the WebSocket over the socket (or ssl); else NULL */
	struct vs_bytes in, out;
	/* Publisher. */
	uint8_t *tmpl; /* the encoded PUBLISH */
	uint32_t tmpl_len;
	uint32_t pid_off; /* offset of the packet identifier in tmpl (QoS > 0) */
	uint32_t pay_off; /* offset of the payload in tmpl */
	double offset;	  /* rate mode: this publisher's phase within one period, [0, 1) */
	uint64_t seq;	  /* messages sent (next sequence number) */
	uint32_t window;  /* outstanding messages allowed (--window, or the broker's maximum) */
	uint32_t inflight;
	uint32_t cursor; /* where to look for a free packet identifier */
	uint8_t *slots;	 /* per packet id - 1: 0 free, 1 awaiting PUBACK/PUBREC, 2 PUBCOMP */
	/* End-to-end window (QoS > 0 with subscribers here): deliveries of this publisher's
	 * messages to our subscribers, counted by whichever worker receives them. */
	_Atomic uint64_t delivered;
	uint64_t written_off; /* deliveries given up on after a stall (the broker dropped them) */
	uint64_t stall_mark;  /* delivered + written_off when the current stall began */
	int64_t stall_since;  /* 0 when not stalled */
	/* Subscriber. */
	char *filter;
	struct streams st;
};

struct bench;

struct worker {
	struct bench *b;
	pthread_t tid;
	struct vs_loop loop;
	int phase;		  /* the last phase this worker acted on */
	struct client **lists[2]; /* what to connect in P_SUBS and in P_PUBS */
	uint32_t nlist[2];
	uint32_t next;	      /* next client of the current list to connect */
	uint32_t handshaking; /* connecting, awaiting CONNACK or SUBACK */
	uint32_t burst;
	struct client **pubs;
	uint32_t npubs;
	int64_t last_tick;
	uint8_t *rbuf; /* READ_CHUNK bytes: reads of clients with no partial packet pending */
	char err[160]; /* the first error, for the report */
	/* Written by this worker only; read by the main thread while it runs. */
	_Atomic uint64_t sent, m_sent, received, m_received, unique, ready, failed, open;
	_Atomic int64_t first_start[2]; /* the first connect() of each connect phase (0: none) */
	_Atomic int64_t last_done[2];	/* when the last handshake of each connect phase finished */
	/* Read by the main thread after joining. */
	uint64_t acked, dups, rejected, foreign, errors, tls_resumed;
	SSL_SESSION *resume; /* --tls-resume: the session later connections resume */
	struct vs_hist lat;
	struct vs_hist *by_pub; /* --by-publisher: lat by publisher id (pubs of them) */
};

struct bench {
	const struct vs_bench_conf *c;
	_Atomic int phase;
	_Atomic uint32_t stopped;	  /* workers that saw P_STOP */
	int64_t t_run, t_measure, t_stop; /* set before P_RUN is published */
	uint32_t runid;
	uint16_t keepalive;
	bool e2e;	 /* QoS > 0 publishers also wait for their messages to reach subscribers */
	uint32_t factor; /* deliveries per message (subscribers of one topic) */
	struct worker *w;
	struct client *cl;
	uint32_t ncl;
	struct vs_stream *shared; /* per publisher, for VS_BENCH_SHARED */
	pthread_mutex_t shared_mu;
};

static inline void bump(_Atomic uint64_t *a, uint64_t n)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t rd(_Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* bench_client.c: a client's connection. */

/* Starts connecting c (a socket, a non-blocking connect, the loop's interest). */
void vs_bench_connect(struct client *c);
/* Closes c's socket and frees its connection state; counts it out of `open`. */
void vs_bench_close(struct client *c);
/* A handshake (CONNACK, SUBACK) of c's connect phase finished, ok or not. */
void vs_bench_handshake_done(struct client *c, bool ok);
/* c failed: counts it, keeps the first error for the report, closes it. */
void vs_bench_fail(struct client *c, const char *what, int err);
/* Writes what c's output holds. Returns 0, or -1 if c failed (it is closed). */
int vs_bench_flush(struct client *c);
/* Encodes p into c's output. Returns 0 or a negative error. */
int vs_bench_queue(struct client *c, const struct vs_packet *p);
/* Encodes an acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP) into c's output. */
int vs_bench_queue_ack(struct client *c, int type, uint16_t id);

/* bench_traffic.c: what clients send and receive. */

/* Sends what publisher c may send now: what the windows allow, or what the rate says is due. */
void vs_bench_pump(struct client *c, int64_t now);
/* Decodes and handles the whole packets in buf. Returns the bytes consumed, or -1 if the client
 * failed (it is closed). */
ssize_t vs_bench_parse(struct client *c, const uint8_t *buf, size_t len, int64_t now);

#endif
