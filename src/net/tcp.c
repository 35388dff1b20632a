/*
 * The plain stream transport. A client opens TCP: resolution is getaddrinfo(3) (blocking: a host
 * name in /etc/hosts or a literal address costs nothing; a DNS lookup blocks the calling thread),
 * and each resolved address is tried in order until one connects. t->tcp may ask for a local
 * address to bind first (mosquitto_pub -A), a unix socket instead (--unix), or a SOCKS5 proxy
 * (--proxy socks5h://): then the proxy's addresses are tried, and once one connects, finish()
 * runs the SOCKS5 exchange (socks5.h), asking the proxy for host:port by name.
 * A server adopts any accepted stream socket (TCP or unix) as it is: no state, ready at once,
 * one system call per read and per write, as before there was a transport layer.
 */
#include "net/transport.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/error.h"
#include "net/socks5.h"

/* Where a client's socket stands in the proxy exchange (S_NONE without a proxy). */
enum socks_step { S_NONE, S_CONNECTING, S_METHOD, S_AUTH, S_REPLY };

struct tcp_state {
	struct addrinfo *res;  /* the whole list, freed at close */
	struct addrinfo *cur;  /* the address being tried */
	struct addrinfo *bind; /* t->tcp->bind_address resolved, or NULL */
	const struct vs_tcp_conf *conf;
	enum socks_step step;
	char *target; /* with a proxy: the host the proxy connects to */
	int target_port;
	uint8_t in[262]; /* the proxy's reply so far (the longest is 4 + 256 + 2 bytes) */
	size_t in_len;
};

static void close_fd(struct vs_transport *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* Binds fd to the first bind address of the family being tried: -EADDRNOTAVAIL when there is
 * none of that family. */
static int bind_local(int fd, const struct tcp_state *st, int family)
{
	for (struct addrinfo *b = st->bind; b; b = b->ai_next)
		if (b->ai_family == family)
			return bind(fd, b->ai_addr, b->ai_addrlen) == 0 ? 0 : -errno;
	return -EADDRNOTAVAIL;
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
		/* Nagle's algorithm is always off: mosquitto_pub's --nodelay is the default. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (st->bind && (err = bind_local(fd, st, ai->ai_family)) < 0) {
			close(fd);
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			t->fd = fd;
			return 0;
		}
		err = -errno;
		close(fd);
	}
	return err;
}

static int open_unix(struct vs_transport *t, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A unix connect does not go in progress; EAGAIN is a full backlog. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int err = errno == EAGAIN ? -ECONNREFUSED : -errno;
		close(fd);
		return err;
	}
	t->fd = fd;
	return 0;
}

static int resolve(const char *host, int port, int flags, struct addrinfo **res)
{
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = flags};
	int rc = getaddrinfo(host, port >= 0 ? ps : NULL, &hints, res);
	if (rc == 0)
		return 0;
	*res = NULL;
	return rc == EAI_SYSTEM ? -errno : rc == EAI_MEMORY ? -ENOMEM : VS_ELOOKUP;
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
	const struct vs_tcp_conf *c = st->conf = t->tcp;
	if (c && c->unix_path)
		return open_unix(t, c->unix_path);
	if (c && c->bind_address) {
		int rc = resolve(c->bind_address, -1, AI_PASSIVE, &st->bind);
		if (rc < 0)
			return rc;
	}
	if (c && c->socks_host) {
		st->target = strdup(host);
		if (!st->target)
			return -ENOMEM;
		st->target_port = port;
		st->step = S_CONNECTING;
		host = c->socks_host;
		port = c->socks_port ? c->socks_port : 1080;
	}
	int rc = resolve(host, port, 0, &st->res);
	if (rc < 0)
		return rc;
	st->cur = st->res;
	return try_from(t, st);
}

/* Sends one whole SOCKS5 request: a fresh socket's buffer takes it in one call. */
static int send_all(struct vs_transport *t, const uint8_t *buf, size_t len)
{
	ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int send_connect(struct vs_transport *t, struct tcp_state *st)
{
	uint8_t req[VS_SOCKS5_MAX_REQ];
	ssize_t n = vs_socks5_connect(req, st->target, st->target_port);
	if (n < 0)
		return VS_EPROXY;
	st->step = S_REPLY;
	return send_all(t, req, (size_t)n);
}

/* One step of the proxy exchange, after bytes arrived: -EAGAIN for more, 0 when done. */
static int socks_step(struct vs_transport *t, struct tcp_state *st)
{
	ssize_t n = recv(t->fd, st->in + st->in_len, sizeof(st->in) - st->in_len, 0);
	if (n == 0)
		return VS_EPROXY;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	st->in_len += (size_t)n;
	bool auth = st->conf->socks_user != NULL;
	int method = 0, code = 0;
	ssize_t used = st->step == S_METHOD
			   ? vs_socks5_parse_method(st->in, st->in_len, auth, &method)
		       : st->step == S_AUTH ? vs_socks5_parse_auth(st->in, st->in_len)
					    : vs_socks5_parse_connect(st->in, st->in_len, &code);
	if (used == 0)
		return -EAGAIN;
	/* RFC 1928 6: 3 network unreachable, 4 host unreachable, 5 connection refused. */
	if (used == -ECONNREFUSED && st->step == S_REPLY && code >= 3 && code <= 5)
		return VS_EPROXY_TARGET;
	if (used < 0)
		return VS_EPROXY;
	enum socks_step was = st->step;
	st->in_len = 0; /* each reply answers a request: nothing follows it before the next */
	if (was == S_REPLY)
		return 0;
	int rc;
	if (was == S_METHOD && method == 2) {
		uint8_t req[VS_SOCKS5_MAX_REQ];
		ssize_t len = vs_socks5_auth(req, st->conf->socks_user,
					     st->conf->socks_pass ? st->conf->socks_pass : "");
		if (len < 0)
			return VS_EPROXY;
		st->step = S_AUTH;
		rc = send_all(t, req, (size_t)len);
	} else {
		rc = send_connect(t, st);
	}
	return rc < 0 ? rc : -EAGAIN;
}

/* The socket connected to the proxy: greet it. */
static int socks_start(struct vs_transport *t, struct tcp_state *st)
{
	uint8_t g[4];
	size_t n = vs_socks5_greeting(g, st->conf->socks_user != NULL);
	st->step = S_METHOD;
	t->wait = EPOLLIN;
	int rc = send_all(t, g, n);
	return rc < 0 ? rc : -EAGAIN;
}

static int tcp_finish(struct vs_transport *t)
{
	struct tcp_state *st = t->state;
	if (st && st->step >= S_METHOD) {
		int rc = socks_step(t, st);
		if (rc == 0)
			t->wait = 0;
		return rc;
	}
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0) {
		if (st && st->step == S_CONNECTING)
			return socks_start(t, st);
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
		if (st->bind)
			freeaddrinfo(st->bind);
		free(st->target);
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
