/*
 * DTLS (OpenSSL 3) for one peer of a datagram socket that many peers share: the server side of
 * an MQTT-SN listener with a certificate or a PSK.
 *
 * OpenSSL's datagram BIO reads the socket itself, which would take other peers' datagrams. So
 * each peer's session has a small BIO of its own: its owner hands it the peer's datagrams one
 * at a time (vs_dtls_input), and whatever OpenSSL writes (each record or flight fragment, cut
 * to the MTU by OpenSSL) goes out as one sendto(2) to the peer. The handshake uses a cookie
 * exchange (HelloVerifyRequest), so a spoofed source gets one small datagram back, never the
 * certificate flight; the cookie is an HMAC of the peer's address with a key drawn at start-up.
 *
 * Handshake flights lost on the way are sent again from vs_dtls_tick(), which the owner calls
 * every 100 ms or so.
 */
#ifndef VS_NET_DTLS_H
#define VS_NET_DTLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct vs_dtls;

/* Prepares ctx (a DTLS_server_method() context) for vs_dtls sessions: cookie exchange, no MTU
 * queries. Returns 0 or VS_ETLS. */
int vs_dtls_server_ctx_setup(SSL_CTX *ctx);

/* A server session for the peer at addr on the datagram socket fd (not owned). NULL when out of
 * memory. */
struct vs_dtls *vs_dtls_accept(SSL_CTX *ctx, int fd, const struct sockaddr *addr,
			       socklen_t addr_len);

/*
 * Handles one datagram from the peer. Each whole application message it carried is passed to
 * on_msg (several may come in one datagram). Returns 0, or VS_ETLS / VS_ECLOSED (the peer sent
 * close_notify or an alert) with vs_dtls_why() saying what.
 */
int vs_dtls_input(struct vs_dtls *d, const uint8_t *dgram, size_t len,
		  void (*on_msg)(void *arg, const uint8_t *msg, size_t len), void *arg);
/* Sends msg as one record. Returns 0 or an error (VS_ETLS, or -EAGAIN before the handshake
 * is done). */
int vs_dtls_send(struct vs_dtls *d, const uint8_t *msg, size_t len);
/* Whether the handshake is done. */
bool vs_dtls_ready(const struct vs_dtls *d);
/* Retransmits a handshake flight when its timer ran out. Returns 0, or VS_ETLS when the
 * handshake gave up. */
int vs_dtls_tick(struct vs_dtls *d);
/* The session (for the peer's certificate or PSK identity). */
SSL *vs_dtls_ssl(const struct vs_dtls *d);
/* Why the last call failed. */
const char *vs_dtls_why(const struct vs_dtls *d);
/* Sends close_notify when the session is sound, and frees it. NULL is a no-op. */
void vs_dtls_free(struct vs_dtls *d);

#endif
