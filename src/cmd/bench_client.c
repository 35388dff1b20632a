/*
 * `viesti bench`: one client's connection. Connecting (TCP, then TLS and the WebSocket upgrade
 * when asked), the MQTT CONNECT, reading and writing through whichever transport it has, and
 * closing and failing. What goes over it is in bench_traffic.c; the design is described at the
 * top of bench_run.c.
 */
#include "cmd/bench_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "net/ws.h"

/* ---- closing and failing ---- */

void vs_bench_close(struct client *c)
{
	if (c->io.fd < 0)
		return;
	vs_loop_del(&c->w->loop, &c->io);
	if (c->ws) {
		c->ws->ops->close(c->ws); /* the socket and the session stay ours */
		free(c->ws);
		c->ws = NULL;
	}
	vs_tls_session_free(c->ssl);
	c->ssl = NULL;
	close(c->io.fd);
	c->io.fd = -1;
	c->state = C_CLOSED;
	vs_bytes_fini(&c->in);
	vs_bytes_fini(&c->out);
	bump(&c->w->open, (uint64_t)-1);
}

void vs_bench_handshake_done(struct client *c, bool ok)
{
	struct worker *w = c->w;
	w->handshaking--;
	bump(ok ? &w->ready : &w->failed, 1);
	int k = c->role == R_SUB ? 0 : 1;
	atomic_store_explicit(&w->last_done[k], vs_now_ns(), memory_order_relaxed);
}

void vs_bench_fail(struct client *c, const char *what, int err)
{
	struct worker *w = c->w;
	if (c->state == C_CLOSED)
		return;
	if (c->state == C_BYE) {
		/* After our DISCONNECT the broker closes at once, possibly while our last acks
		 * are on their way: a write or read error now is the end we asked for. */
		vs_bench_close(c);
		return;
	}
	if (!w->err[0])
		snprintf(w->err, sizeof(w->err), "%s %u: %s%s%s",
			 c->role == R_PUB   ? "publisher"
			 : c->role == R_SUB ? "subscriber"
					    : "client",
			 c->idx, what, err ? ": " : "", err ? vs_strerror(err) : "");
	w->errors++;
	if (c->state == C_TCP || c->state == C_TLS || c->state == C_WS || c->state == C_CONNACK ||
	    c->state == C_SUBACK)
		vs_bench_handshake_done(c, false);
	vs_bench_close(c);
}

/* ---- output ---- */

static bool qos0_full_speed(const struct client *c)
{
	const struct vs_bench_conf *cf = c->w->b->c;
	return c->role == R_PUB && cf->qos == 0 && cf->rate <= 0;
}

/* A failed TLS call: its reason when TLS said one, else the system error. */
static void fail_io(struct client *c, const char *what, ssize_t err, const char *why)
{
	char s[200];
	if (err != VIESTI_ETLS) {
		vs_bench_fail(c, what, (int)err);
		return;
	}
	snprintf(s, sizeof(s), "%s: %s", what, why);
	vs_bench_fail(c, s, 0);
}

/* One write of the head of the output: bytes taken, -EAGAIN, or an error (-errno, or
 * VIESTI_ETLS with why filled). */
static ssize_t write_out(struct client *c, char *why, size_t whylen)
{
	if (c->ws) {
		ssize_t n =
		    c->ws->ops->write(c->ws, vs_bytes_head(&c->out), vs_bytes_avail(&c->out));
		if (n < 0)
			snprintf(why, whylen, "%s", vs_transport_why(c->ws));
		return n;
	}
	if (c->ssl)
		return vs_tls_write(c->ssl, vs_bytes_head(&c->out), vs_bytes_avail(&c->out), why,
				    whylen);
	ssize_t n = send(c->io.fd, vs_bytes_head(&c->out), vs_bytes_avail(&c->out),
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n;
}

/* Writes what it can; keeps EPOLLOUT registered while output is pending (or while a QoS 0
 * full-speed publisher may write more). Returns 0, or -1 if the client failed. */
int vs_bench_flush(struct client *c)
{
	while (vs_bytes_avail(&c->out) > 0) {
		char why[160];
		ssize_t n = write_out(c, why, sizeof(why));
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			fail_io(c, "write", n, why);
			return -1;
		}
		vs_bytes_consume(&c->out, (size_t)n);
	}
	uint32_t ev = EPOLLIN;
	if (vs_bytes_avail(&c->out) > 0 ||
	    (qos0_full_speed(c) && !c->blocked && c->w->phase == P_RUN && c->state == C_READY))
		ev |= EPOLLOUT;
	if (vs_loop_mod(&c->w->loop, &c->io, ev) < 0) {
		vs_bench_fail(c, "epoll", -errno);
		return -1;
	}
	return 0;
}

/* Encodes p onto the client's output. */
int vs_bench_queue(struct client *c, const struct vs_packet *p)
{
	int version = c->w->b->c->version;
	ssize_t n = vs_codec_size(p, version);
	if (n < 0)
		return (int)n;
	int rc = vs_bytes_reserve(&c->out, (size_t)n);
	if (rc < 0)
		return rc;
	n = vs_codec_encode(p, version, c->out.data + c->out.len, c->out.cap - c->out.len);
	if (n < 0)
		return (int)n;
	c->out.len += (size_t)n;
	return 0;
}

int vs_bench_queue_ack(struct client *c, int type, uint16_t id)
{
	struct vs_packet p = {.type = (uint8_t)type};
	p.ack.packet_id = id;
	return vs_bench_queue(c, &p);
}

/* One read of up to READ_CHUNK bytes (whole TLS records): bytes, 0 at the end of the stream,
 * -EAGAIN, or an error (-errno, or VIESTI_ETLS with why filled). */
static ssize_t read_in(struct client *c, uint8_t *dst, char *why, size_t whylen)
{
	if (c->ws) {
		ssize_t n = c->ws->ops->read(c->ws, dst, READ_CHUNK);
		if (n < 0)
			snprintf(why, whylen, "%s", vs_transport_why(c->ws));
		return n;
	}
	if (c->ssl)
		return vs_tls_read(c->ssl, dst, READ_CHUNK, why, whylen);
	ssize_t n = recv(c->io.fd, dst, READ_CHUNK, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
	return n;
}

/* One read per wake-up. A client with no partial packet reads into the worker's buffer, so ten
 * thousand idle connections hold no input memory. Returns 0, or -1 if the client is closed. */
static int read_input(struct client *c)
{
	struct worker *w = c->w;
	bool direct = vs_bytes_avail(&c->in) == 0;
	uint8_t *dst = w->rbuf;
	if (!direct) {
		if (vs_bytes_reserve(&c->in, READ_CHUNK) < 0) {
			vs_bench_fail(c, "out of memory", -ENOMEM);
			return -1;
		}
		dst = c->in.data + c->in.len;
	}
	char why[160];
	ssize_t n = read_in(c, dst, why, sizeof(why));
	if (n == -EAGAIN)
		return 0;
	if (n < 0) {
		if (c->state == C_BYE) {
			vs_bench_close(c);
			return -1;
		}
		fail_io(c, "read", n, why);
		return -1;
	}
	if (n == 0) {
		if (c->state == C_BYE)
			vs_bench_close(c); /* the broker closed after our DISCONNECT: a clean end */
		else
			vs_bench_fail(c, "closed by the broker", 0);
		return -1;
	}
	int64_t now = vs_now_ns();
	if (direct) {
		ssize_t k = vs_bench_parse(c, dst, (size_t)n, now);
		if (k < 0)
			return -1;
		if (k < n && vs_bytes_append(&c->in, dst + k, (size_t)(n - k)) < 0) {
			vs_bench_fail(c, "out of memory", -ENOMEM);
			return -1;
		}
	} else {
		c->in.len += (size_t)n;
		ssize_t k = vs_bench_parse(c, vs_bytes_head(&c->in), vs_bytes_avail(&c->in), now);
		if (k < 0)
			return -1;
		vs_bytes_consume(&c->in, (size_t)k);
		vs_bytes_shrink(&c->in, 0);
	}
	if (c->role == R_PUB && w->b->c->qos > 0)
		vs_bench_pump(c, now); /* acks opened the window */
	return 0;
}

/* ---- connecting ---- */

static int send_connect(struct client *c)
{
	struct bench *b = c->w->b;
	char id[40];
	snprintf(id, sizeof(id), "vb%08x-%c%u", b->runid,
		 c->role == R_PUB   ? 'p'
		 : c->role == R_SUB ? 's'
				    : 'c',
		 c->idx);
	struct vs_packet p = {.type = VS_CONNECT};
	p.connect.version = (uint8_t)b->c->version;
	p.connect.clean = !b->c->persistent;
	if (b->c->persistent && b->c->version == VS_V5) {
		p.connect.props.present |= 1ull << VS_PROP_SESSION_EXPIRY;
		p.connect.props.session_expiry = 3600;
	}
	p.connect.keepalive = b->keepalive;
	p.connect.client_id = (struct vs_buf){(const uint8_t *)id, strlen(id)};
	c->state = C_CONNACK;
	return vs_bench_queue(c, &p);
}

static void on_io(struct vs_io *io, uint32_t events);

void vs_bench_connect(struct client *c)
{
	struct worker *w = c->w;
	const struct vs_bench_conf *cf = w->b->c;
	int k = c->role == R_SUB ? 0 : 1;
	if (!atomic_load_explicit(&w->first_start[k], memory_order_relaxed))
		atomic_store_explicit(&w->first_start[k], vs_now_ns(), memory_order_relaxed);
	w->handshaking++;
	c->state = C_TCP;
	int fd = socket(cf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		vs_bench_fail(c, "socket", -errno);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->io.fd = fd;
	c->io.fn = on_io;
	bump(&w->open, 1);
	if (vs_loop_add(&w->loop, &c->io, EPOLLOUT) < 0) {
		vs_bench_fail(c, "epoll", -errno);
		return;
	}
	bool other = c->role == R_SUB && cf->sub_addrlen;
	const struct sockaddr_storage *to = other ? &cf->sub_addr : &cf->addr;
	if (connect(fd, (const struct sockaddr *)to, other ? cf->sub_addrlen : cf->addrlen) < 0 &&
	    errno != EINPROGRESS)
		vs_bench_fail(c, "connect", -errno);
}

static void mqtt_connect(struct client *c)
{
	int rc = send_connect(c);
	if (rc < 0) {
		vs_bench_fail(c, "encode CONNECT", rc);
		return;
	}
	vs_bench_flush(c);
}

/* ---- --ws-path: MQTT over WebSocket ---- */

/* The WebSocket transport runs over a borrowed transport: the client's own socket, or its TLS
 * session, which the client keeps, resumes and closes itself. */
static ssize_t borrowed_read(struct vs_transport *t, void *buf, size_t len)
{
	struct client *c = t->state;
	if (c->ssl) {
		char why[160];
		return vs_tls_read(c->ssl, buf, len, why, sizeof(why));
	}
	ssize_t n = recv(c->io.fd, buf, len, MSG_DONTWAIT);
	return n < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : n;
}

static ssize_t borrowed_write(struct vs_transport *t, const void *buf, size_t len)
{
	struct client *c = t->state;
	if (c->ssl) {
		char why[160];
		return vs_tls_write(c->ssl, buf, len, why, sizeof(why));
	}
	ssize_t n = send(c->io.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : n;
}

static bool borrowed_more(const struct vs_transport *t)
{
	const struct client *c = t->state;
	return c->ssl && SSL_has_pending(c->ssl);
}

static void borrowed_close(struct vs_transport *t)
{
	t->fd = -1;
}

static const struct vs_transport_ops borrowed = {
    .name = "bench",
    .read = borrowed_read,
    .write = borrowed_write,
    .close = borrowed_close,
    .more = borrowed_more,
};

/* Steps the upgrade; waits for the event it asks for, then sends CONNECT. */
static void ws_step(struct client *c)
{
	int rc = c->ws->ops->finish(c->ws);
	if (rc == 0)
		mqtt_connect(c);
	else if (rc != -EAGAIN)
		fail_io(c, "WebSocket upgrade", VIESTI_ETLS, vs_transport_why(c->ws));
	else if (vs_loop_mod(&c->w->loop, &c->io, c->ws->wait) < 0)
		vs_bench_fail(c, "epoll", -errno);
}

static void ws_start(struct client *c)
{
	const struct vs_bench_conf *cf = c->w->b->c;
	struct vs_transport inner = {.ops = &borrowed, .state = c, .fd = c->io.fd};
	int port = ntohs(cf->addr.ss_family == AF_INET6
			     ? ((const struct sockaddr_in6 *)&cf->addr)->sin6_port
			     : ((const struct sockaddr_in *)&cf->addr)->sin_port);
	c->ws = calloc(1, sizeof(*c->ws));
	if (!c->ws || vs_transport_ws_client(c->ws, &inner, cf->host ? cf->host : "localhost", port,
					     cf->ws_path, NULL) < 0) {
		free(c->ws);
		c->ws = NULL;
		vs_bench_fail(c, "out of memory", -ENOMEM);
		return;
	}
	c->state = C_WS;
	ws_step(c);
}

/* After TCP (and TLS): the upgrade, or straight to CONNECT. */
static void transport_ready(struct client *c)
{
	if (c->w->b->c->ws_path)
		ws_start(c);
	else
		mqtt_connect(c);
}

/* Steps the TLS handshake; waits for the event OpenSSL asks for, then sends CONNECT. */
static void tls_step(struct client *c)
{
	uint32_t wait = EPOLLIN;
	char why[160];
	int rc = vs_tls_handshake(c->ssl, &wait, why, sizeof(why));
	if (rc == 0) {
		transport_ready(c);
	} else if (rc != -EAGAIN) {
		fail_io(c, "TLS handshake", rc, why);
	} else if (vs_loop_mod(&c->w->loop, &c->io, wait) < 0) {
		vs_bench_fail(c, "epoll", -errno);
	}
}

static void tcp_connected(struct client *c)
{
	const struct vs_bench_conf *cf = c->w->b->c;
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		vs_bench_fail(c, "connect", -err);
		return;
	}
	if (!cf->tls) {
		transport_ready(c);
		return;
	}
	char why[160];
	int rc = vs_tls_session_new(cf->tls, c->io.fd, cf->host, &c->ssl, why, sizeof(why));
	if (rc < 0) {
		fail_io(c, "TLS", rc, why);
		return;
	}
	if (c->w->resume)
		SSL_set_session(c->ssl, c->w->resume);
	c->state = C_TLS;
	tls_step(c);
}

static void on_io(struct vs_io *io, uint32_t events)
{
	struct client *c = (struct client *)((char *)io - offsetof(struct client, io));
	if (c->state == C_TCP) {
		tcp_connected(c);
		return;
	}
	if (c->state == C_TLS) {
		tls_step(c);
		return;
	}
	if (c->state == C_WS) {
		ws_step(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && read_input(c) < 0)
		return;
	if ((events & EPOLLOUT) && qos0_full_speed(c) && vs_bytes_avail(&c->out) == 0)
		vs_bench_pump(c, vs_now_ns());
	vs_bench_flush(c);
}
