/*
 * The client side of SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), as
 * libmosquitto's "socks5h" proxies: the proxy resolves the broker's host name. Sans-I/O: the
 * encoders write into caller memory, the parsers read the proxy's replies from a buffer and
 * say consumed / need more / refused. tcp.c drives the exchange on a connecting socket.
 *
 * The exchange: greeting -> method reply [-> auth request -> auth reply] -> CONNECT -> reply.
 */
#ifndef VS_NET_SOCKS5_H
#define VS_NET_SOCKS5_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The longest message a client sends: an auth request with 255-byte user and password. */
#define VS_SOCKS5_MAX_REQ 515

/* The greeting: offers "no authentication", and "username/password" when with_auth. Returns
 * its length (3 or 4); buf needs 4 bytes. */
size_t vs_socks5_greeting(uint8_t *buf, int with_auth);

/* The username/password request (RFC 1929). Returns its length, or VS_ETOOBIG when a part is
 * empty or longer than 255 bytes; buf needs VS_SOCKS5_MAX_REQ bytes. */
ssize_t vs_socks5_auth(uint8_t *buf, const char *user, const char *pass);

/* CONNECT to host:port by name (address type 3). Returns its length, or VS_ETOOBIG for an
 * empty host or one longer than 255 bytes; buf needs 262 bytes. */
ssize_t vs_socks5_connect(uint8_t *buf, const char *host, int port);

/*
 * The parsers take what has arrived so far. Each returns the reply's length (> 0) when whole
 * and successful, 0 when more bytes are needed, or VS_EPROTO (not SOCKS5, or malformed) /
 * -ECONNREFUSED (the proxy said no: no acceptable method, failed authentication, or a CONNECT
 * reply code other than success, *code set to it when code is not NULL).
 */
/* The method reply; *method is 0 (none) or 2 (username/password), offered in the greeting. */
ssize_t vs_socks5_parse_method(const uint8_t *buf, size_t len, int with_auth, int *method);
ssize_t vs_socks5_parse_auth(const uint8_t *buf, size_t len);
ssize_t vs_socks5_parse_connect(const uint8_t *buf, size_t len, int *code);

#endif
