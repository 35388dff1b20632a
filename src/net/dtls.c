/*
 * DTLS for one peer of a shared datagram socket: see dtls.h.
 */
#include "net/dtls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* The link MTU OpenSSL cuts records and handshake fragments to (a safe size for IPv4 and IPv6
 * paths with tunnels on the way). */
enum { LINK_MTU = 1400 };

struct vs_dtls {
	SSL *ssl;
	int fd;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool ready;
	const uint8_t *in; /* the datagram being handed to OpenSSL, NULL once read */
	size_t in_len;
	char why[160];
};

/* ---- the BIO: reads the datagram it is given, writes with sendto ------------------------ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static uint8_t cookie_key[32];

static int bio_write(BIO *b, const char *buf, int len)
{
	struct vs_dtls *d = BIO_get_data(b);
	/* A full socket buffer loses the datagram, as the network may: DTLS sends it again. */
	(void)sendto(d->fd, buf, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)&d->addr,
		     d->addr_len);
	return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct vs_dtls *d = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (!d->in) {
		BIO_set_retry_read(b);
		return -1;
	}
	size_t n = d->in_len < (size_t)len ? d->in_len : (size_t)len;
	memcpy(buf, d->in, n);
	d->in = NULL; /* a datagram is read whole, once */
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	(void)ptr;
	struct vs_dtls *d = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return d && d->in ? (long)d->in_len : 0;
	case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
		return d && d->addr.ss_family == AF_INET6 ? 48 : 28; /* IP and UDP headers */
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void make_method(void)
{
	BIO_METHOD *m =
	    BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "viesti dtls peer");
	if (!m)
		return;
	BIO_meth_set_write(m, bio_write);
	BIO_meth_set_read(m, bio_read);
	BIO_meth_set_ctrl(m, bio_ctrl);
	BIO_meth_set_create(m, bio_create);
	if (RAND_bytes(cookie_key, sizeof(cookie_key)) != 1) {
		BIO_meth_free(m);
		return;
	}
	bio_method = m;
}

/* ---- cookies ----------------------------------------------------------------------------- */

static int cookie_of(SSL *ssl, unsigned char *out, unsigned int *len)
{
	struct vs_dtls *d = BIO_get_data(SSL_get_rbio(ssl));
	if (!d)
		return 0;
	return HMAC(EVP_sha256(), cookie_key, sizeof(cookie_key), (const uint8_t *)&d->addr,
		    d->addr_len, out, len) != NULL;
}

static int cookie_generate(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
	return cookie_of(ssl, cookie, len);
}

static int cookie_verify(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
	unsigned char want[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	return cookie_of(ssl, want, &n) && n == len && CRYPTO_memcmp(want, cookie, n) == 0;
}

int vs_dtls_server_ctx_setup(SSL_CTX *ctx)
{
	pthread_once(&bio_once, make_method);
	if (!bio_method)
		return VS_ETLS;
	SSL_CTX_set_options(ctx, SSL_OP_COOKIE_EXCHANGE | SSL_OP_NO_QUERY_MTU);
	SSL_CTX_set_cookie_generate_cb(ctx, cookie_generate);
	SSL_CTX_set_cookie_verify_cb(ctx, cookie_verify);
	return 0;
}

/* ---- sessions ---------------------------------------------------------------------------- */

struct vs_dtls *vs_dtls_accept(SSL_CTX *ctx, int fd, const struct sockaddr *addr,
			       socklen_t addr_len)
{
	pthread_once(&bio_once, make_method);
	if (!bio_method || addr_len > sizeof(struct sockaddr_storage))
		return NULL;
	struct vs_dtls *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->fd = fd;
	memcpy(&d->addr, addr, addr_len);
	d->addr_len = addr_len;
	d->ssl = SSL_new(ctx);
	BIO *b = BIO_new(bio_method);
	if (!d->ssl || !b) {
		BIO_free(b);
		SSL_free(d->ssl);
		free(d);
		return NULL;
	}
	BIO_set_data(b, d);
	SSL_set_bio(d->ssl, b, b);
	DTLS_set_link_mtu(d->ssl, LINK_MTU);
	SSL_set_accept_state(d->ssl);
	return d;
}

/* Records OpenSSL's reason for a failure of call's result rc. */
static int failed(struct vs_dtls *d, int rc, const char *what)
{
	int e = SSL_get_error(d->ssl, rc);
	if (e == SSL_ERROR_ZERO_RETURN) {
		snprintf(d->why, sizeof(d->why), "DTLS: closed by peer");
		return VS_ECLOSED;
	}
	unsigned long code = ERR_get_error();
	char buf[128] = "";
	if (code)
		ERR_error_string_n(code, buf, sizeof(buf));
	ERR_clear_error();
	const char *reason = code ? ERR_reason_error_string(code) : NULL;
	snprintf(d->why, sizeof(d->why), "DTLS %s: %s", what,
		 reason ? reason
		 : code ? buf
			: "failed");
	return VS_ETLS;
}

int vs_dtls_input(struct vs_dtls *d, const uint8_t *dgram, size_t len,
		  void (*on_msg)(void *arg, const uint8_t *msg, size_t len), void *arg)
{
	d->in = dgram;
	d->in_len = len;
	if (!d->ready) {
		ERR_clear_error();
		int rc = SSL_do_handshake(d->ssl);
		if (rc != 1) {
			int e = SSL_get_error(d->ssl, rc);
			d->in = NULL;
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			return failed(d, rc, "handshake");
		}
		d->ready = true;
	}
	static __thread uint8_t buf[65536];
	for (;;) {
		ERR_clear_error();
		int n = SSL_read(d->ssl, buf, sizeof(buf));
		if (n > 0) {
			on_msg(arg, buf, (size_t)n);
			continue;
		}
		int e = SSL_get_error(d->ssl, n);
		d->in = NULL;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		return failed(d, n, "read");
	}
}

int vs_dtls_send(struct vs_dtls *d, const uint8_t *msg, size_t len)
{
	if (!d->ready)
		return -EAGAIN;
	ERR_clear_error();
	int rc = SSL_write(d->ssl, msg, (int)len);
	return rc > 0 ? 0 : failed(d, rc, "write");
}

bool vs_dtls_ready(const struct vs_dtls *d)
{
	return d->ready;
}

int vs_dtls_tick(struct vs_dtls *d)
{
	if (d->ready)
		return 0;
	ERR_clear_error();
	return DTLSv1_handle_timeout(d->ssl) < 0 ? failed(d, -1, "handshake timeout") : 0;
}

SSL *vs_dtls_ssl(const struct vs_dtls *d)
{
	return d->ssl;
}

const char *vs_dtls_why(const struct vs_dtls *d)
{
	return d->why;
}

void vs_dtls_free(struct vs_dtls *d)
{
	if (!d)
		return;
	if (d->ready && !(SSL_get_shutdown(d->ssl) & SSL_SENT_SHUTDOWN)) {
		ERR_clear_error();
		SSL_shutdown(d->ssl);
	}
	ERR_clear_error();
	SSL_free(d->ssl);
	free(d);
}
