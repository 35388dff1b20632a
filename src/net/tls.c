/*
 * TLS sessions, and the TLS transport built from them (see tls.h).
 *
 * A session is OpenSSL's SSL over our socket BIO (tls_ctx.c), stepped without blocking: every
 * call clears the thread's error queue first (SSL_get_error() reads it) and maps the outcome to
 * the transport vocabulary: -EAGAIN (with the event to wait for while handshaking), 0 for an
 * orderly end, -errno from the system, VS_ETLS with a sentence for what TLS refused. After a
 * fatal error a session is marked shut down, so that freeing it sends no close_notify
 * (OpenSSL forbids SSL_shutdown() then).
 *
 * A client's transport wraps the TCP transport: open() resolves and connects through it;
 * finish() completes the TCP connect (trying further addresses as TCP does), then drives the
 * handshake, asking the client for EPOLLIN or EPOLLOUT as OpenSSL wants. The client's connect
 * deadline (connect_timeout_ms) runs across both, so a server that never answers the handshake
 * is a -ETIMEDOUT like one that never accepts. A server's transport starts from an accepted
 * socket and drives the server side of the handshake the same way; the broker's CONNECT
 * deadline runs across it.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "base/error.h"

/* ---- helpers for context builders ------------------------------------------------------- */

int vs_tls_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	const char *why = ERR_reason_error_string(ERR_peek_error());
	if (why && n >= 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, ": %s", why);
	ERR_clear_error();
	return VS_ETLS;
}

int vs_tls_access(const char *path, int mode, const char *what, char *err, size_t errlen)
{
	if (access(path, mode) == 0)
		return 0;
	int rc = -errno;
	snprintf(err, errlen, "cannot read %s '%s': %s", what, path, strerror(errno));
	return rc;
}

static int bio_send(BIO *b, const char *buf, int len)
{
	int fd = (int)BIO_get_fd(b, NULL);
	BIO_clear_retry_flags(b);
	ssize_t n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)n;
}

BIO_METHOD *vs_tls_bio_method_new(void)
{
	const BIO_METHOD *sock = BIO_s_socket();
	BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOCKET, "viesti socket");
	if (!m)
		return NULL;
	if (!BIO_meth_set_write(m, bio_send) || !BIO_meth_set_read(m, BIO_meth_get_read(sock)) ||
	    !BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) ||
	    !BIO_meth_set_create(m, BIO_meth_get_create(sock)) ||
	    !BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock))) {
		BIO_meth_free(m);
		return NULL;
	}
	return m;
}

/* ---- sessions ----------------------------------------------------------------------------- */

/* Before each SSL call: SSL_get_error() reads the error queue, and errno for SYSCALL. */
static void clear_errors(void)
{
	ERR_clear_error();
	errno = 0;
}

/* Maps a failed SSL call to the vocabulary above. *wait is set for -EAGAIN when not NULL. */
static int session_error(SSL *s, int ret, uint32_t *wait, char *err, size_t errlen)
{
	int sys = errno;
	int e = SSL_get_error(s, ret);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		if (wait)
			*wait = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		return -EAGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	int rc = VS_ETLS;
	unsigned long code = ERR_peek_error();
	if (e == SSL_ERROR_SSL && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		long v = SSL_get_verify_result(s);
		snprintf(err, errlen, "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
	} else if (e == SSL_ERROR_SSL && ERR_reason_error_string(code)) {
		snprintf(err, errlen, "%s", ERR_reason_error_string(code));
	} else if (e == SSL_ERROR_SYSCALL && sys) {
		snprintf(err, errlen, "%s", strerror(sys));
		rc = -sys;
	} else {
		snprintf(err, errlen, "connection closed by the peer");
		rc = VS_ECLOSED;
	}
	ERR_clear_error();
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	return rc;
}

static bool is_ip(const char *host)
{
	unsigned char a[16];
	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* SNI for names only (RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted"); the
 * certificate is checked for the name, or for the address in its IP SANs. */
static int set_peer(SSL *s, const char *host, bool check)
{
	bool ip = is_ip(host);
	if (!ip && !SSL_set_tlsext_host_name(s, host))
		return -1;
	if (!check)
		return 0;
	if (ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host) == 1 ? 0 : -1;
	SSL_set_hostflags(s, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(s, host) == 1 ? 0 : -1;
}

int vs_tls_session_new(const struct vs_tls_ctx *c, int fd, const char *host, SSL **out, char *err,
		       size_t errlen)
{
	ERR_clear_error();
	SSL *s = SSL_new(c->ssl);
	BIO *b = s ? BIO_new(c->bio) : NULL;
	if (!b) {
		SSL_free(s);
		snprintf(err, errlen, "cannot create a TLS session");
		ERR_clear_error();
		return -ENOMEM;
	}
	BIO_set_fd(b, fd, BIO_NOCLOSE);
	SSL_set_bio(s, b, b);
	if (set_peer(s, host, c->check_host) < 0) {
		snprintf(err, errlen, "cannot set the peer name '%s'", host);
		ERR_clear_error();
		SSL_free(s);
		return VS_ETLS;
	}
	SSL_set_connect_state(s);
	*out = s;
	return 0;
}

int vs_tls_session_accept(SSL_CTX *ctx, int fd, SSL **out)
{
	ERR_clear_error();
	SSL *s = SSL_new(ctx);
	if (!s || !SSL_set_fd(s, fd)) {
		SSL_free(s);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(s);
	*out = s;
	return 0;
}

int vs_tls_handshake(SSL *s, uint32_t *wait, char *err, size_t errlen)
{
	clear_errors();
	int ret = SSL_do_handshake(s);
	if (ret == 1)
		return 0;
	int rc = session_error(s, ret, wait, err, errlen);
	if (rc == 0) {
		snprintf(err, errlen, "connection closed during the TLS handshake");
		rc = VS_ECLOSED;
	}
	return rc;
}

ssize_t vs_tls_read(SSL *s, void *buf, size_t len, char *err, size_t errlen)
{
	size_t got = 0;
	do {
		size_t n;
		clear_errors();
		int ret = SSL_read_ex(s, (char *)buf + got, len - got, &n);
		if (ret == 1) {
			got += n;
			continue;
		}
		if (got > 0)
			return (ssize_t)got; /* the end or an error shows again on the next call */
		return session_error(s, ret, NULL, err, errlen);
	} while (len - got >= VS_TLS_RECORD);
	return (ssize_t)got;
}

ssize_t vs_tls_write(SSL *s, const void *buf, size_t len, char *err, size_t errlen)
{
	/* With partial writes on, SSL_write_ex() returns after each record: go on until the
	 * socket is full, as write(2) would (an edge-triggered owner waits for EPOLLOUT only
	 * when the socket said so). */
	size_t done = 0;
	while (done < len) {
		size_t n;
		clear_errors();
		int ret = SSL_write_ex(s, (const char *)buf + done, len - done, &n);
		if (ret == 1) {
			done += n;
			continue;
		}
		if (done > 0)
			return (ssize_t)done; /* -EAGAIN or the error shows on the next call */
		int rc = session_error(s, ret, NULL, err, errlen);
		return rc == 0 ? VS_ECLOSED : rc;
	}
	return (ssize_t)done;
}

void vs_tls_session_free(SSL *s)
{
	if (!s)
		return;
	if (SSL_is_init_finished(s) && !(SSL_get_shutdown(s) & SSL_SENT_SHUTDOWN)) {
		ERR_clear_error();
		SSL_shutdown(s);
	}
	ERR_clear_error();
	SSL_free(s);
}

/* ---- the transport ----------------------------------------------------------------------- */

struct tls_state {
	struct vs_transport tcp; /* client: the connection underneath (resolution, addresses) */
	const struct vs_tls_ctx *ctx; /* client: the context */
	SSL *ssl;		      /* client: NULL until TCP is connected */
	char *host;		      /* client: for SNI and the certificate check */
	bool server; /* accepted: the first byte is looked at before the handshake */
	bool looked;
	bool more;     /* the last read stopped for room, not at -EAGAIN */
	char err[160]; /* why the last call failed */
};

/*
 * A server's first look at what the client sent: a TLS record starts with 0x16 (handshake).
 * Anything else gets a plain reason instead of OpenSSL's "wrong version number": most often a
 * client that speaks plain MQTT to the TLS port (0x10, a CONNECT) or HTTP. Returns 0 to go on
 * with the handshake, -EAGAIN when nothing has arrived yet, or VS_ETLS / -errno / VS_ECLOSED.
 */
static int first_look(struct vs_transport *t, struct tls_state *st)
{
	uint8_t b;
	ssize_t n = recv(t->fd, &b, 1, MSG_PEEK);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0) {
		snprintf(st->err, sizeof(st->err), "TLS handshake failed: closed by the client");
		return VS_ECLOSED;
	}
	st->looked = true;
	if (b == 0x16)
		return 0;
	snprintf(st->err, sizeof(st->err), "TLS handshake failed: %s",
		 b == 0x10 ? "plain MQTT (a CONNECT) sent to a TLS listener"
		 : b == 'G' || b == 'P' || b == 'H' ? "plain HTTP sent to a TLS listener"
						    : "not a TLS ClientHello");
	return VS_ETLS;
}

static int tls_open(struct vs_transport *t, const void *conf, const char *host, int port)
{
	struct tls_state *st = calloc(1, sizeof(*st));
	t->fd = -1;
	t->wait = EPOLLOUT;
	if (!st)
		return -ENOMEM;
	t->state = st;
	st->ctx = conf;
	st->tcp.fd = -1;
	st->tcp.tcp = t->tcp;
	st->host = strdup(host);
	if (!st->host)
		return -ENOMEM;
	int rc = vs_transport_tcp.open(&st->tcp, NULL, host, port);
	t->fd = st->tcp.fd;
	return rc;
}

int vs_transport_tls_accept(struct vs_transport *t, int fd, SSL_CTX *ctx)
{
	struct tls_state *st = calloc(1, sizeof(*st));
	if (!st || vs_tls_session_accept(ctx, fd, &st->ssl) < 0) {
		free(st);
		return -ENOMEM;
	}
	st->tcp.fd = -1;
	st->server = true;
	t->ops = &vs_transport_tls;
	t->state = st;
	t->fd = fd;
	t->wait = EPOLLIN; /* the ClientHello */
	return 0;
}

SSL *vs_transport_tls_session(const struct vs_transport *t)
{
	return t->ops == &vs_transport_tls && t->state ? ((struct tls_state *)t->state)->ssl : NULL;
}

static int tls_finish(struct vs_transport *t)
{
	struct tls_state *st = t->state;
	int rc;
	if (st->server && !st->looked && (rc = first_look(t, st)) < 0)
		return rc;
	if (!st->ssl) {
		rc = vs_transport_tcp.finish(&st->tcp);
		t->fd = st->tcp.fd;
		/* A SOCKS5 exchange underneath waits for the proxy's replies. */
		t->wait = rc == -EAGAIN && st->tcp.wait ? st->tcp.wait : EPOLLOUT;
		if (rc < 0)
			return rc;
		rc = vs_tls_session_new(st->ctx, t->fd, st->host, &st->ssl, st->err,
					sizeof(st->err));
		if (rc < 0)
			return rc;
	}
	char why[sizeof(st->err) - 32];
	rc = vs_tls_handshake(st->ssl, &t->wait, why, sizeof(why));
	if (rc == 0)
		t->wait = 0;
	else if (rc != -EAGAIN)
		snprintf(st->err, sizeof(st->err), "TLS handshake failed: %s", why);
	return rc;
}

/* Keeps the reason of a failed read or write for the owner's log line; returns n. */
static ssize_t noted(struct tls_state *st, ssize_t n, const char *why)
{
	if (n < 0 && n != -EAGAIN)
		snprintf(st->err, sizeof(st->err), "TLS: %s", why);
	return n;
}

static ssize_t tls_read(struct vs_transport *t, void *buf, size_t len)
{
	struct tls_state *st = t->state;
	char why[sizeof(st->err) - 8];
	ssize_t n = noted(st, vs_tls_read(st->ssl, buf, len, why, sizeof(why)), why);
	/* Stopped for room rather than at -EAGAIN: more records may wait in the socket. */
	st->more = n > 0 && len - (size_t)n < VS_TLS_RECORD;
	return n;
}

static bool tls_more(const struct vs_transport *t)
{
	const struct tls_state *st = t->state;
	return st->more || SSL_has_pending(st->ssl);
}

static ssize_t tls_write(struct vs_transport *t, const void *buf, size_t len)
{
	struct tls_state *st = t->state;
	char why[sizeof(st->err) - 8];
	return noted(st, vs_tls_write(st->ssl, buf, len, why, sizeof(why)), why);
}

static void tls_close(struct vs_transport *t)
{
	struct tls_state *st = t->state;
	int tcp_fd = -1; /* a client's socket, closed with the TCP transport under it */
	if (st) {
		tcp_fd = st->tcp.fd;
		vs_tls_session_free(st->ssl);
		vs_transport_tcp.close(&st->tcp);
		free(st->host);
		free(st);
	}
	if (t->fd >= 0 && t->fd != tcp_fd)
		close(t->fd); /* a server's accepted socket */
	t->state = NULL;
	t->fd = -1;
}

static void tls_shrink(struct vs_transport *t)
{
	struct tls_state *st = t->state;
	if (st->ssl && !t->wait)
		SSL_free_buffers(st->ssl); /* refused (harmlessly) while data is buffered */
}

static const char *tls_why(const struct vs_transport *t)
{
	const struct tls_state *st = t->state;
	return st && st->err[0] ? st->err : NULL;
}

const struct vs_transport_ops vs_transport_tls = {
    .name = "tls",
    .open = tls_open,
    .finish = tls_finish,
    .read = tls_read,
    .write = tls_write,
    .close = tls_close,
    .why = tls_why,
    .more = tls_more,
    .shrink = tls_shrink,
};
