/*
 * TLS sessions, and the TLS transport of libviesti built from them.
 *
 * A session is OpenSSL's SSL over our socket BIO (tls_ctx.c), stepped without blocking: every
 * call clears the thread's error queue first (SSL_get_error() reads it) and maps the outcome to
 * the transport vocabulary: -EAGAIN (with the event to wait for while handshaking), 0 for an
 * orderly end, -errno from the system, VIESTI_ETLS with a sentence for what TLS refused. After a
 * fatal error a session is marked shut down, so that freeing it sends no close_notify
 * (OpenSSL forbids SSL_shutdown() then).
 *
 * The transport wraps the TCP transport: open() resolves and connects through it; finish()
 * completes the TCP connect (trying further addresses as TCP does), then drives the handshake,
 * asking the client for EPOLLIN or EPOLLOUT as OpenSSL wants. The client's connect deadline
 * (connect_timeout_ms) runs across both, so a server that never answers the handshake is a
 * -ETIMEDOUT like one that never accepts.
 */
#include "client/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "client/transport.h"

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
	int rc = VIESTI_ETLS;
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
		rc = VIESTI_ECLOSED;
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
		return VIESTI_ETLS;
	}
	SSL_set_connect_state(s);
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
		rc = VIESTI_ECLOSED;
	}
	return rc;
}

ssize_t vs_tls_read(SSL *s, void *buf, size_t len, char *err, size_t errlen)
{
	size_t got = 0;
	while (len - got >= VS_TLS_RECORD) {
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
	}
	return (ssize_t)got;
}

ssize_t vs_tls_write(SSL *s, const void *buf, size_t len, char *err, size_t errlen)
{
	size_t n;
	clear_errors();
	int ret = SSL_write_ex(s, buf, len, &n);
	if (ret == 1)
		return (ssize_t)n;
	int rc = session_error(s, ret, NULL, err, errlen);
	return rc == 0 ? VIESTI_ECLOSED : rc;
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

_Static_assert(VS_TRANSPORT_MIN_READ >= VS_TLS_RECORD, "reads must take whole records");

struct tls_state {
	struct vs_transport tcp; /* the connection underneath: resolution, addresses, connect */
	SSL *ssl;		 /* NULL until TCP is connected */
	char *host;		 /* for SNI and the certificate check */
};

static int tls_open(struct vs_transport *t, const char *host, int port)
{
	struct tls_state *st = calloc(1, sizeof(*st));
	t->fd = -1;
	t->err[0] = 0;
	t->wait = EPOLLOUT;
	if (!st)
		return -ENOMEM;
	t->state = st;
	st->tcp.fd = -1;
	st->host = strdup(host);
	if (!st->host)
		return -ENOMEM;
	int rc = vs_transport_tcp.open(&st->tcp, host, port);
	t->fd = st->tcp.fd;
	return rc;
}

static int tls_finish(struct vs_transport *t)
{
	struct tls_state *st = t->state;
	int rc;
	if (!st->ssl) {
		rc = vs_transport_tcp.finish(&st->tcp);
		t->fd = st->tcp.fd;
		t->wait = EPOLLOUT;
		if (rc < 0)
			return rc;
		rc = vs_tls_session_new(t->conf, t->fd, st->host, &st->ssl, t->err, sizeof(t->err));
		if (rc < 0)
			return rc;
	}
	char why[sizeof(t->err) - 32];
	rc = vs_tls_handshake(st->ssl, &t->wait, why, sizeof(why));
	if (rc < 0 && rc != -EAGAIN)
		snprintf(t->err, sizeof(t->err), "TLS handshake failed: %s", why);
	return rc;
}

/* Keeps the reason of a failed read or write for the client's log line; returns n. */
static ssize_t noted(struct vs_transport *t, ssize_t n, const char *why)
{
	if (n < 0 && n != -EAGAIN)
		snprintf(t->err, sizeof(t->err), "TLS: %s", why);
	return n;
}

static ssize_t tls_read(struct vs_transport *t, void *buf, size_t len)
{
	struct tls_state *st = t->state;
	char why[sizeof(t->err) - 8];
	return noted(t, vs_tls_read(st->ssl, buf, len, why, sizeof(why)), why);
}

static ssize_t tls_write(struct vs_transport *t, const void *buf, size_t len)
{
	struct tls_state *st = t->state;
	char why[sizeof(t->err) - 8];
	return noted(t, vs_tls_write(st->ssl, buf, len, why, sizeof(why)), why);
}

static void tls_close(struct vs_transport *t)
{
	struct tls_state *st = t->state;
	if (st) {
		vs_tls_session_free(st->ssl);
		vs_transport_tcp.close(&st->tcp);
		free(st->host);
		free(st);
	}
	t->state = NULL;
	t->fd = -1;
}

const struct vs_transport_ops vs_transport_tls = {
	.name = "tls",
	.open = tls_open,
	.finish = tls_finish,
	.read = tls_read,
	.write = tls_write,
	.close = tls_close,
};
