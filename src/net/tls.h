/*
 * TLS sessions with OpenSSL 3, for both ends of a connection: libviesti and the tools connect
 * (client), the broker's listeners accept (server). What a context holds (trust store,
 * certificates, versions, PSK) is decided by its builder: src/client/tls_ctx.c from the public
 * struct viesti_tls, src/broker/tls.c from a listener's configuration. This file has what both
 * share: sessions, the TLS transport, and small helpers for builders.
 *
 * A session (SSL *) wraps one connected, non-blocking socket and is stepped by its owner's event
 * loop: the handshake returns -EAGAIN with the event to wait for; reads and writes return -EAGAIN
 * when they would block. The session never closes the socket. Every failure comes with a
 * sentence in `err` ("certificate verify failed: hostname mismatch") besides its code: VS_ETLS
 * for what OpenSSL refused, VS_ECLOSED for a peer gone mid-handshake, -errno for the system.
 * Contexts are read-only once built: threads may start sessions from one context at once.
 */
#ifndef VS_NET_TLS_H
#define VS_NET_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/transport.h"

/* A client context, as the client transport needs it (built by src/client/tls_ctx.c). */
struct vs_tls_ctx {
	SSL_CTX *ssl;
	BIO_METHOD *bio; /* a socket BIO whose writes are send(MSG_NOSIGNAL) */
	bool check_host; /* false when insecure */
	uint8_t psk[PSK_MAX_PSK_LEN];
	size_t psk_len; /* 0: no PSK */
	char *psk_identity;
};

/* The smallest buffer vs_tls_read() fills whole records into: one record of plaintext. */
#define VS_TLS_RECORD 16384

/* ---- helpers for context builders ------------------------------------------------------- */

/* Formats fmt, then ": " and the first error on OpenSSL's queue (which is emptied), into err.
 * Returns VS_ETLS. */
int vs_tls_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Returns 0 if path is accessible with mode, else -errno with "cannot read WHAT 'PATH': why". */
int vs_tls_access(const char *path, int mode, const char *what, char *err, size_t errlen);
/* A socket BIO whose writes are send(MSG_NOSIGNAL): a peer gone away is -EPIPE, never a
 * SIGPIPE in a program that did not ignore it. NULL on failure; free with BIO_meth_free. */
BIO_METHOD *vs_tls_bio_method_new(void);

/* ---- sessions ----------------------------------------------------------------------------- */

/* Starts a client session on the connected socket fd for `host`: sent as SNI unless it is an IP
 * address, and checked against the certificate's names (or IP addresses) unless the context is
 * insecure. Returns 0 with *out set, or -ENOMEM / VS_ETLS with err filled. */
int vs_tls_session_new(const struct vs_tls_ctx *c, int fd, const char *host, SSL **out, char *err,
		       size_t errlen);
/* Starts a server session on the accepted socket fd. Returns 0 with *out set, or -ENOMEM. */
int vs_tls_session_accept(SSL_CTX *ctx, int fd, SSL **out);
/* Advances the handshake. Returns 0 when done; -EAGAIN with *wait set to EPOLLIN or EPOLLOUT,
 * the event to call again on; or VS_ETLS / -errno / VS_ECLOSED with err filled. */
int vs_tls_handshake(SSL *s, uint32_t *wait, char *err, size_t errlen);
/* Reads whole records into buf while at least VS_TLS_RECORD bytes are left (so that, given
 * len >= VS_TLS_RECORD, no plaintext stays inside OpenSSL that the socket will not signal
 * again; a shorter len reads once and may leave some). More records may still wait in the
 * socket when it returns for lack of room. Returns > 0 bytes, 0 at the end of the stream,
 * -EAGAIN, or an error as for the handshake. */
ssize_t vs_tls_read(SSL *s, void *buf, size_t len, char *err, size_t errlen);
/* Writes buf until it is all taken or the socket is full. Returns > 0 bytes taken, -EAGAIN
 * (nothing taken: call again with the same bytes first in buf, they may be half sent), or an
 * error as for the handshake. */
ssize_t vs_tls_write(SSL *s, const void *buf, size_t len, char *err, size_t errlen);
/* Sends close_notify if the session is sound (once, never waiting), and frees it. NULL is a
 * no-op. The socket stays open. */
void vs_tls_session_free(SSL *s);

/* ---- the TLS transport (transport.h) ------------------------------------------------------ */

/* Client: open() connects through the TCP transport, finish() completes TCP then the handshake;
 * conf is a struct vs_tls_ctx. */
extern const struct vs_transport_ops vs_transport_tls;
/* Server: t takes the accepted socket fd and a session from ctx; finish() runs the handshake
 * (t->wait is set until it is done). Returns 0 or -ENOMEM (fd is not closed then). */
int vs_transport_tls_accept(struct vs_transport *t, int fd, SSL_CTX *ctx);
/* The session of a TLS transport (for the peer's certificate, the negotiated version), or NULL
 * for another transport. */
SSL *vs_transport_tls_session(const struct vs_transport *t);

#endif
