/*
 * A shard's listening sockets (worker.h): accepting connections (and shedding them when out of
 * descriptors), pausing and resuming a listener, opening this shard's sockets of a listener at
 * start-up or when a reload adds one, closing them when a reload removes it or the broker
 * stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "broker/conn.h"
#include "broker/gateway.h"
#include "broker/http.h"
#include "broker/worker.h"
#include "net/listen.h"

/*
 * Out of descriptors (EMFILE, ENFILE) or kernel memory, accept(2) fails and the connection stays
 * in the backlog; the listener, level-triggered, is ready again at once, and a loop that only
 * logged the error spun at full speed (1.8 million log lines in 8 s). Instead:
 * - the worker's spare descriptor is given up for a moment to accept the pending connection and
 *   close it at once, so its client learns, and the backlog drains;
 * - without a spare (another thread took the descriptor), the listener is not watched for
 *   PAUSE_MS;
 * - refusals are logged at most once per LOG_EVERY_MS, with their count.
 */
enum { ACCEPT_PAUSE_MS = 100, ACCEPT_LOG_EVERY_MS = 10000 };

/* A unix socket is one for all workers: one of them is woken per connection (EPOLLEXCLUSIVE);
 * a TCP listener is this worker's own socket (SO_REUSEPORT). */
static uint32_t listen_events(const struct vs_listener *l)
{
	return l->unix_fd >= 0 ? EPOLLIN | EPOLLEXCLUSIVE : EPOLLIN;
}

static void log_refused(struct vs_worker *w, struct vs_listen_io *li, const char *why)
{
	li->refused++;
	if (w->now_ms < li->next_log_ms)
		return;
	vs_log(w->b->log, VS_LOG_WARN, "listener %s: %llu connection(s) refused: %s",
	       li->listener->name, (unsigned long long)li->refused, why);
	li->refused = 0;
	li->next_log_ms = w->now_ms + ACCEPT_LOG_EVERY_MS;
}

/* Accepts and closes one pending connection with the spare descriptor. Returns whether one was
 * taken off the backlog (the caller may try the next). */
static bool shed_one(struct vs_worker *w, struct vs_listen_io *li, int err)
{
	if (w->spare_fd < 0)
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->spare_fd < 0 || (err != EMFILE && err != ENFILE))
		return false;
	close(w->spare_fd);
	int fd = accept4(li->io.fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd >= 0;
}

static void pause_listener(struct vs_worker *w, struct vs_listen_io *li)
{
	if (vs_loop_del(&w->loop, &li->io) < 0)
		return;
	li->paused_until_ms = w->now_ms + ACCEPT_PAUSE_MS;
	if (!w->listen_resume_ms || li->paused_until_ms < w->listen_resume_ms)
		w->listen_resume_ms = li->paused_until_ms;
}

/* Watches paused listeners again once their pause is over. */
void vs_worker_resume_listeners(struct vs_worker *w)
{
	if (!w->listen_resume_ms || w->now_ms < w->listen_resume_ms)
		return;
	w->listen_resume_ms = 0;
	for (int i = 0; i < w->n_listens; i++) {
		struct vs_listen_io *li = &w->listens[i];
		if (!li->paused_until_ms)
			continue;
		if (li->paused_until_ms <= w->now_ms &&
		    vs_loop_add(&w->loop, &li->io, listen_events(li->listener)) == 0)
			li->paused_until_ms = 0;
		else if (!w->listen_resume_ms || li->paused_until_ms < w->listen_resume_ms)
			w->listen_resume_ms = li->paused_until_ms > w->now_ms
						  ? li->paused_until_ms
						  : w->now_ms + ACCEPT_PAUSE_MS;
	}
}

/* A unix socket's client has no address: it is named by its process (SO_PEERCRED). */
static void unix_peer(int fd, char *out, size_t outlen)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
		snprintf(out, outlen, "unix:pid=%ld,uid=%ld", (long)cr.pid, (long)cr.uid);
	else
		snprintf(out, outlen, "unix");
}

static void on_accept(struct vs_io *io, uint32_t events)
{
	struct vs_listen_io *li = (struct vs_listen_io *)io;
	struct vs_worker *w = li->w;
	if (io->fd < 0)
		return; /* closed earlier in this turn: its listener was removed */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			if (err == EAGAIN || err == EINTR || err == ECONNABORTED)
				return;
			log_refused(w, li, strerror(err));
			if (shed_one(w, li, err))
				continue;
			pause_listener(w, li);
			return;
		}
		char addr[56];
		if (ss.ss_family == AF_UNIX)
			unix_peer(fd, addr, sizeof(addr));
		else
			vs_addr_str((struct sockaddr *)&ss, addr, sizeof(addr));
		int mc = vs_listener_sec(li->listener)->conf->max_connections;
		int gmc = w->b->conf->global_max_connections;
		bool full = mc >= 0 && atomic_load(&li->listener->connections) >= mc;
		if (full || (gmc >= 0 && atomic_load(&w->b->connections) >= gmc)) {
			char why[128];
			snprintf(why, sizeof(why), "%s (%d) reached, last from %s",
				 full ? "max_connections" : "global_max_connections",
				 full ? mc : gmc, addr);
			log_refused(w, li, why);
			close(fd);
			continue;
		}
		if (ss.ss_family != AF_UNIX && w->b->conf->set_tcp_nodelay) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		vs_conn_accept(w, li->listener, fd, addr);
	}
}

/* A stop first closes this shard's listening sockets, so that nobody connects to a broker
 * that is going away (an MQTT-SN listener's UDP socket stays: its clients' DISCONNECT goes
 * out through it). */
void vs_worker_stop_accepting(struct vs_worker *w)
{
	for (int i = 0; i < w->n_listens; i++) {
		struct vs_listen_io *li = &w->listens[i];
		if (li->io.fd < 0 || li->sn)
			continue;
		if (li->io.events)
			vs_loop_del(&w->loop, &li->io);
		close(li->io.fd);
		li->io.fd = -1;
	}
}

/* This worker's sockets for listener l: its own SO_REUSEPORT TCP sockets (the kernel spreads
 * connections), or a duplicate of the unix socket (epoll keys on the descriptor, so each worker
 * needs its own, and thread consolidation can move them into one set). Returns the count. */
static int listen_fds(struct vs_listener *l, int *fds, char *err, size_t errlen)
{
	if (l->unix_fd < 0)
		return vs_listen_tcp(l->conf->bind_address, l->conf->bind_interface, l->conf->port,
				     l->conf->socket_domain,
				     VS_LISTEN_REUSEPORT | (l->sn ? VS_LISTEN_UDP : 0), fds, 4, err,
				     errlen);
	fds[0] = fcntl(l->unix_fd, F_DUPFD_CLOEXEC, 0);
	if (fds[0] < 0) {
		snprintf(err, errlen, "%s: %s", l->name, strerror(errno));
		return -errno;
	}
	return 1;
}

/* Opens this shard's sockets of l and watches them. Returns 0 or an error (err says which). */
int vs_worker_open_listener(struct vs_worker *w, struct vs_listener *l, char *err, size_t errlen)
{
	int fds[4];
	int n = listen_fds(l, fds, err, errlen);
	if (n < 0)
		return n;
	for (int k = 0; k < n; k++) {
		if ((size_t)w->n_listens >= w->b->cap_listeners * 4) {
			for (; k < n; k++)
				close(fds[k]);
			snprintf(err, errlen, "%s: too many listening sockets", l->name);
			return -EMFILE;
		}
		struct vs_listen_io *li = &w->listens[w->n_listens++];
		li->io.fd = fds[k];
		li->io.fn = on_accept;
		li->listener = l;
		li->w = w;
		if (l->sn && vs_gateway_socket_open(li) < 0)
			return -ENOMEM;
		int rc = vs_loop_add(&w->loop, &li->io, listen_events(l));
		if (rc < 0) {
			snprintf(err, errlen, "%s: epoll: %s", l->name, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* VS_MAIL_LISTEN: a reload added l. A failure is logged (the reload checked the port could be
 * bound; another program may have taken it since). */
void vs_worker_add_listener(struct vs_worker *w, struct vs_listener *l)
{
	char err[256] = "";
	int rc = vs_worker_open_listener(w, l, err, sizeof(err));
	if (rc < 0)
		vs_log(w->b->log, VS_LOG_ERR, "reload: thread %d cannot listen on %s: %s", w->idx,
		       l->name, err[0] ? err : strerror(-rc));
	atomic_fetch_sub(&l->listen_pending, 1);
}

/* VS_MAIL_UNLISTEN: a reload removed l. This shard's sockets of l close (a listen_io keeps its
 * place, with fd -1), then its clients of l are disconnected. */
void vs_worker_remove_listener(struct vs_worker *w, struct vs_listener *l)
{
	for (int i = 0; i < w->n_listens; i++) {
		struct vs_listen_io *li = &w->listens[i];
		if (li->listener != l || li->io.fd < 0)
			continue;
		if (li->io.events)
			vs_loop_del(&w->loop, &li->io);
		close(li->io.fd);
		li->io.fd = -1;
		li->paused_until_ms = 0;
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < w->n_slots; i++) {
		struct vs_conn *c = w->conns[i];
		if (c && c->listener == l && c->state != VS_CONN_CLOSING) {
			vs_conn_close(c, VS_RC_ADMIN_ACTION,
				      "its listener was removed by a reload");
			n++;
		}
	}
	if (n)
		vs_log(w->b->log, VS_LOG_NOTICE,
		       "reload: %u client(s) of listener %s disconnected on thread %d", n, l->name,
		       w->idx);
	atomic_fetch_sub(&l->unlisten_pending, 1);
}
