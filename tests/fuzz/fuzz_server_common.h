/*
 * The set-up shared by the fuzz_server_* targets: a real broker with one worker, driven by hand
 * (vs_worker_poll) instead of by its thread, with one listener it never accepts on (a unix
 * socket, or a loopback port for TLS, which unix sockets do not carry): connections are
 * socketpairs handed to vs_conn_accept, so no network is involved and every input starts from
 * the same state. Each target includes this file.
 */
#ifndef VS_FUZZ_SERVER_COMMON_H
#define VS_FUZZ_SERVER_COMMON_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "conf/conf.h"

struct fuzz_server {
	struct vs_config conf;
	struct vs_broker b;
	struct vs_worker *w;
};

/* Starts the broker with the common directives and `extra` (more config lines, may be ""),
 * listening on a unix socket when port is 0, else on 127.0.0.1:port. */
static void fuzz_server_start(struct fuzz_server *fs, int port, const char *extra)
{
	char conf_text[2048], listener[96], err[256];
	/* As the broker's main does: a closed peer is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (port)
		snprintf(listener, sizeof(listener), "listener %d 127.0.0.1", port);
	else
		snprintf(listener, sizeof(listener), "listener 0 /tmp/vs-fuzz-server-%d.sock",
			 (int)getpid());
	snprintf(conf_text, sizeof(conf_text),
		 "%s\n%s\nallow_anonymous true\nthreads 1\nconsolidate_threads false\n"
		 "sys_interval 0\nlog_dest %s\nmax_inflight_messages 5\nmax_queued_messages 20\n",
		 listener, extra, getenv("VS_FUZZ_VERBOSE") ? "stderr\nlog_type all" : "none");
	vs_config_init(&fs->conf);
	if (vs_config_parse_string(&fs->conf, conf_text, "fuzz.conf", err, sizeof(err)) < 0 ||
	    vs_broker_init(&fs->b, &fs->conf, &fs->conf.log, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz set-up: %s\n", err); /* the set-up, not the input */
		abort();
	}
	fs->w = &fs->b.workers[0];
}

/* A new connection to the broker; returns the client's end (non-blocking). */
static int fuzz_server_connect(struct fuzz_server *fs)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	vs_conn_accept(fs->w, &fs->b.listeners[0], sv[0], "fuzz");
	return sv[1];
}

/* Closes every connection, takes the last turn and frees the broker: what leaks now is a leak. */
static void fuzz_server_stop(struct fuzz_server *fs)
{
	vs_worker_poll(fs->w);
	vs_worker_shutdown(fs->w);
	vs_broker_fini(&fs->b);
	vs_config_fini(&fs->conf);
}

/* A CONNECT for `id` (3.1.1 when version is 4, 5.0 when 5; clean, keep-alive 60). */
static size_t fuzz_connect_packet(uint8_t *out, int version, const char *id)
{
	size_t idlen = strlen(id), n = 0;
	uint8_t body[64];
	body[n++] = 0, body[n++] = 4, memcpy(body + n, "MQTT", 4), n += 4;
	body[n++] = (uint8_t)version, body[n++] = 0x02, body[n++] = 0, body[n++] = 60;
	if (version == 5)
		body[n++] = 0; /* no properties */
	body[n++] = 0, body[n++] = (uint8_t)idlen, memcpy(body + n, id, idlen), n += idlen;
	out[0] = 0x10, out[1] = (uint8_t)n;
	memcpy(out + 2, body, n);
	return n + 2;
}

#endif
