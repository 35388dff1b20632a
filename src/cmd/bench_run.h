/*
 * The engine of `viesti bench`: connections driven by hand with the codec over non-blocking
 * sockets, in one or more epoll threads. bench.c parses arguments into a struct vs_bench_conf,
 * calls vs_bench_run(), and prints the struct vs_bench_result it fills.
 */
#ifndef VS_CMD_BENCH_RUN_H
#define VS_CMD_BENCH_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "client/tls.h"
#include "cmd/bench_stats.h"

enum vs_bench_scenario {
	VS_BENCH_CONN,	 /* n idle connections */
	VS_BENCH_PUB,	 /* publishers only, to PREFIX/<i> */
	VS_BENCH_SUB,	 /* subscribers only, to PREFIX/# (publishers elsewhere) */
	VS_BENCH_PAIRS,	 /* n publisher/subscriber pairs, PREFIX/<i> each */
	VS_BENCH_FANIN,	 /* P publishers to PREFIX/<i>, 1 subscriber on PREFIX/+ */
	VS_BENCH_FANOUT, /* 1 publisher to PREFIX/0, n subscribers on it */
	VS_BENCH_SHARED, /* P publishers to PREFIX/<i>, n subscribers on $share/bench/PREFIX/+ */
};

struct vs_bench_conf {
	enum vs_bench_scenario scenario;
	struct sockaddr_storage addr; /* the broker */
	socklen_t addrlen;
	struct sockaddr_storage sub_addr; /* subscribers' broker (another node), if sub_addrlen */
	socklen_t sub_addrlen;
	int version;	    /* enum vs_version: 4 (3.1.1) or 5 */
	int qos;	    /* 0..2, for publishing and subscribing */
	uint32_t payload;   /* bytes, >= 16 */
	uint32_t pubs;	    /* publishers */
	uint32_t subs;	    /* subscribers (or idle connections for conn) */
	double rate;	    /* messages/s per publisher; 0 = as fast as possible */
	uint32_t window;    /* outstanding QoS > 0 messages per publisher */
	uint32_t out_bound; /* QoS 0 at full speed: stop writing above this many queued bytes */
	double duration;    /* seconds of measurement */
	double warmup;	    /* seconds before measurement starts */
	double drain;	    /* seconds subscribers wait for in-flight messages at the end */
	uint32_t threads;   /* epoll threads */
	uint32_t burst;	    /* connection handshakes in progress at once, in all */
	const char *prefix; /* topic prefix */
	bool persistent;    /* clean session off (3.1.1) / session expiry 3600 s (5.0) */
	bool progress;	    /* print a progress line each second (stderr) */
	const struct vs_tls_ctx *tls; /* NULL: plain TCP; else every connection is TLS */
	bool tls_resume;     /* TLS: resume the session of the first connection in every later one
			      * (each generator thread keeps one) */
	const char *host;    /* the broker's name, for SNI and the certificate check (TLS), and
			      * the WebSocket upgrade's Host */
	const char *ws_path; /* NULL: MQTT over TCP (or TLS); else over WebSocket, upgrading at
			      * this path */
	bool by_publisher;   /* also a latency histogram per publisher (result.by_pub) */
};

struct vs_bench_result {
	/* Connecting: every client, from the first connect() to the last CONNACK (and SUBACK). */
	uint64_t connected;
	uint64_t connect_failed;
	double connect_s;
	/* Whole run, warm-up and drain included. */
	uint64_t sent;
	uint64_t acked;	   /* QoS > 0: PUBACK / PUBCOMP received */
	uint64_t received; /* every PUBLISH delivered to a subscriber, duplicates included */
	uint64_t unique;   /* distinct (publisher, sequence) per receiving stream */
	uint64_t expected; /* what the subscribers should have received; 0 when unknown */
	uint64_t lost;
	uint64_t dups;
	uint64_t errors;      /* connections that failed or were closed by the broker */
	uint64_t tls_resumed; /* TLS handshakes that resumed a session (--tls-resume) */
	uint64_t rejected;    /* QoS > 0 acks with a failure reason code (5.0) */
	uint64_t foreign;     /* PUBLISHes without a bench payload (ignored) */
	/* Measurement window only: by send time for sent, by receive time for received. */
	uint64_t m_sent;
	uint64_t m_received;
	double m_seconds;
	struct vs_hist lat;	/* ns, messages sent during the measurement window */
	struct vs_hist *by_pub; /* conf.by_publisher: lat split by publisher, pubs of them
				 * (allocated; free with vs_bench_result_fini) */
	double elapsed_s;
	double drain_s;
	double cpu_user_s, cpu_sys_s; /* the generator's own (getrusage) */
};

/* Runs the scenario. Returns 0 (the result is filled) or a negative error with a message in
 * err. res must be zero-initialized by the caller. */
/* Frees what a result holds (by_pub). */
void vs_bench_result_fini(struct vs_bench_result *res);

int vs_bench_run(const struct vs_bench_conf *c, struct vs_bench_result *res, char *err,
		 size_t errlen);

#endif
