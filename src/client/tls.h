/*
 * Client-side TLS with OpenSSL 3, in two halves.
 *
 * A context (struct vs_tls_ctx) is built once from the public struct viesti_tls: trust store,
 * client certificate, minimum version, ALPN, PSK. The files are read there, so a bad file fails
 * before any connection is tried. A context is read-only afterwards: threads may start sessions
 * from one context at once.
 *
 * A session (SSL *) wraps one connected, non-blocking socket and is stepped by its owner's event
 * loop: the handshake returns -EAGAIN with the event to wait for; reads and writes return -EAGAIN
 * when they would block. The session never closes the socket. Writes go out with MSG_NOSIGNAL, so
 * a broker that went away is an -EPIPE, never a SIGPIPE in the application.
 *
 * Users: the TLS transport of libviesti (tls.c) and viesti bench, which drives its sockets by
 * hand. Every failure comes with a sentence in `err` ("certificate verify failed: hostname
 * mismatch") besides its code: VIESTI_ETLS for what OpenSSL refused, -errno for the system.
 */
#ifndef VS_CLIENT_TLS_H
#define VS_CLIENT_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "viesti.h"

/* Built by vs_tls_ctx_new() (tls_ctx.c); sessions (tls.c) read it. */
struct vs_tls_ctx {
	SSL_CTX *ssl;
	BIO_METHOD *bio; /* a socket BIO whose writes are send(MSG_NOSIGNAL) */
	bool check_host; /* false when insecure */
	uint8_t psk[PSK_MAX_PSK_LEN];
	size_t psk_len; /* 0: no PSK */
	char *psk_identity;
};

/* The smallest buffer vs_tls_read() takes: one whole record of plaintext. */
#define VS_TLS_RECORD 16384

/* Checks o without touching any file. Returns 0, or VIESTI_EINVAL with err saying why. */
int vs_tls_check(const struct viesti_tls *o, char *err, size_t errlen);
/* Builds a context from o (checked first). Returns 0 with *out set (free it with
 * vs_tls_ctx_free), or VIESTI_EINVAL, -errno (a file that cannot be read), -ENOMEM or
 * VIESTI_ETLS (OpenSSL refused a file or setting), with err filled. */
int vs_tls_ctx_new(const struct viesti_tls *o, struct vs_tls_ctx **out, char *err, size_t errlen);
void vs_tls_ctx_free(struct vs_tls_ctx *c);

/* Starts a session on the connected socket fd for `host`: sent as SNI unless it is an IP
 * address, and checked against the certificate's names (or IP addresses) unless the context is
 * insecure. Returns 0 with *out set, or -ENOMEM / VIESTI_ETLS with err filled. */
int vs_tls_session_new(const struct vs_tls_ctx *c, int fd, const char *host, SSL **out, char *err,
		       size_t errlen);
/* Advances the handshake. Returns 0 when done; -EAGAIN with *wait set to EPOLLIN or EPOLLOUT,
 * the event to call again on; or VIESTI_ETLS / -errno / VIESTI_ECLOSED with err filled. */
int vs_tls_handshake(SSL *s, uint32_t *wait, char *err, size_t errlen);
/* Reads whole records into buf (len >= VS_TLS_RECORD, so that no plaintext is left inside
 * OpenSSL once the socket has nothing more to signal). Returns > 0 bytes, 0 at the end of the
 * stream, -EAGAIN, or an error as for the handshake. */
ssize_t vs_tls_read(SSL *s, void *buf, size_t len, char *err, size_t errlen);
/* Writes at least one record of buf. Returns > 0 bytes taken, -EAGAIN (call again with the same
 * bytes first in buf: they may be half sent), or an error as for the handshake. */
ssize_t vs_tls_write(SSL *s, const void *buf, size_t len, char *err, size_t errlen);
/* Sends close_notify if the session is sound (once, never waiting), and frees it. NULL is a
 * no-op. The socket stays open. */
void vs_tls_session_free(SSL *s);

/* Decodes a PSK given in hex (no 0x; an odd count of digits reads as if it began with '0', as
 * Mosquitto reads it). Returns the number of bytes, or VIESTI_EINVAL for an empty string, a
 * character that is not a hex digit, or more than cap bytes. */
int vs_tls_hex_decode(const char *hex, uint8_t *out, size_t cap);

#endif
