/*
 * The plain stream transport. A client opens TCP: resolution is getaddrinfo(3) (blocking: a host
 * name in /etc/hosts or a literal address costs nothing; a DNS lookup blocks the calling thread),
 * and each resolved address is tried in order until one connects. A server adopts any accepted
 * stream socket (TCP or unix) as it is: no state, ready at once, one system call per read and
 * per write, as before there was a transport layer.
 */
#include "net/transport.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct tcp_state {
	struct addrinfo *res; /* the whole list, freed at close */
	struct addrinfo *cur; /* the address being tried */
};

static void close_fd(struct vs_transport *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* Tries addresses from st->cur on; returns 0 with t->fd connecting/connected, or -errno. */
static int try_from(struct vs_transport *t, struct tcp_state *st)
{
	int err = -ECONNREFUSED;
	for (; st->cur; st->cur = st->cur->ai_next) {
		struct addrinfo *ai = st->cur;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			t->fd = fd;
			return 0;
		}
		err = -errno;
		close(fd);
	}
	return err;
}

static int tcp_open(struct vs_transport *t, const void *conf, const char *host, int port)
{
	(void)conf;
	struct tcp_state *st = calloc(1, sizeof(*st));
	t->fd = -1;
	t->wait = EPOLLOUT;
	if (!st)
		return -ENOMEM;
	t->state = st;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	int rc = getaddrinfo(host, ps, &hints, &st->res);
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -ENOENT;
	st->cur = st->res;
	return try_from(t, st);
}

static int tcp_finish(struct vs_transport *t)
{
	struct tcp_state *st = t->state;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		t->wait = 0;
		return 0;
	}
	close_fd(t);
	if (!st || !st->cur || !st->cur->ai_next)
		return -err;
	st->cur = st->cur->ai_next;
	int rc = try_from(t, st);
	return rc < 0 ? rc : -EAGAIN;
}

static ssize_t tcp_read(struct vs_transport *t, void *buf, size_t len)
{
	ssize_t n = recv(t->fd, buf, len, 0);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

static ssize_t tcp_write(struct vs_transport *t, const void *buf, size_t len)
{
	ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

static void tcp_close(struct vs_transport *t)
{
	struct tcp_state *st = t->state;
	close_fd(t);
	if (st) {
		if (st->res)
			freeaddrinfo(st->res);
		free(st);
	}
	t->state = NULL;
}

void vs_transport_accept_tcp(struct vs_transport *t, int fd)
{
	t->ops = &vs_transport_tcp;
	t->state = NULL;
	t->fd = fd;
	t->wait = 0;
}

const struct vs_transport_ops vs_transport_tcp = {
    .name = "tcp",
    .open = tcp_open,
    .finish = tcp_finish,
    .read = tcp_read,
    .write = tcp_write,
    .close = tcp_close,
};
