/*
 * MQTT over WebSocket (RFC 6455; MQTT 5.0 section 6 and 3.1.1 section 6): the framing, and a
 * transport (transport.h) that carries the MQTT byte stream in binary frames over another
 * transport (plain TCP for ws://, TLS for wss://), for both ends.
 *
 * The framing is a pair of pure functions, as the codec's: the decoder unframes what arrived in
 * place, in the caller's buffer, and keeps between calls only what a frame split across reads
 * needs (a partial header, the position in a payload and its mask, a control frame being
 * collected). Payloads are never buffered whole: a frame of any size costs no memory, so the
 * only size limit that matters is MQTT's own (max_packet_size); control frames are at most 125
 * bytes (RFC 6455 5.5) and are collected in the decoder.
 *
 * The server transport answers the HTTP upgrade itself, and on a listener with http_dir serves
 * static files (GET and HEAD, keep-alive) to clients that do not upgrade, so that a web page and
 * the MQTT it speaks come from one port. Everything before the upgrade happens in finish(), while
 * the connection is not yet ready for MQTT: the broker's connect timeout bounds it.
 */
#ifndef VS_NET_WS_H
#define VS_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/transport.h"

enum vs_ws_opcode {
	VS_WS_CONT = 0x0,
	VS_WS_TEXT = 0x1,
	VS_WS_BINARY = 0x2,
	VS_WS_CLOSE = 0x8,
	VS_WS_PING = 0x9,
	VS_WS_PONG = 0xa,
};

/* Close status codes (RFC 6455 7.4.1) that this code sends. */
enum {
	VS_WS_NORMAL = 1000,
	VS_WS_GOING_AWAY = 1001,
	VS_WS_PROTOCOL_ERROR = 1002,
	VS_WS_UNSUPPORTED_DATA = 1003,
	VS_WS_INVALID_DATA = 1007,
	VS_WS_TOO_BIG = 1009,
};

/* The longest frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define VS_WS_MAX_HEADER 14

struct vs_ws_dec {
	bool server;	 /* frames must be masked (from a client) / must not be */
	bool in_message; /* a fragmented data message is open: CONT frames continue it */
	bool in_frame;	 /* a header was read: `left` payload bytes follow */
	uint8_t hdr_len; /* bytes of an incomplete header kept in hdr */
	uint8_t hdr[VS_WS_MAX_HEADER];
	uint8_t opcode; /* of the frame being read */
	bool fin;
	uint8_t mask[4];  /* its masking key (all zero when unmasked) */
	uint8_t mask_off; /* position in the key of the payload's next byte (0..3) */
	uint64_t left;	  /* payload bytes of the frame still to come */
	uint8_t ctl_len;  /* control frame payload collected so far */
	uint8_t ctl[125];
	/* What control frames asked for (the caller acts, then clears): */
	bool pong_due; /* a Ping arrived: answer with a Pong carrying ping[0..ping_len) */
	uint8_t ping_len;
	uint8_t ping[125];
	bool closed; /* a Close arrived: close_code (0: none given) */
	uint16_t close_code;
	/* After an error: the close code to send and why. */
	uint16_t fail_code;
	const char *fail_why;
};

/* server: frames come from a client and must be masked. */
void vs_ws_dec_init(struct vs_ws_dec *d, bool server);

/*
 * Unframes buf[0..len) in place: the payload bytes of data frames (binary, and continuations)
 * are unmasked and moved to the front of buf; control frames are acted on in d (pong_due,
 * closed). A header split at the end of buf is kept in d: the caller puts d->hdr[0..hdr_len) in
 * front of the next bytes it reads (vs_ws_carry) and passes both. Nothing after a Close frame is
 * looked at. Returns the number of payload bytes now at the front of buf (0 is possible), or
 * VS_EPROTO with d->fail_code and d->fail_why set.
 */
ssize_t vs_ws_unframe(struct vs_ws_dec *d, uint8_t *buf, size_t len);

/* Moves the kept partial header to the front of buf (at least VS_WS_MAX_HEADER bytes); returns
 * its length, after which the caller appends what it reads. */
size_t vs_ws_carry(struct vs_ws_dec *d, uint8_t *buf);

/* Writes a frame header into out (VS_WS_MAX_HEADER bytes) for a payload of len bytes, masked
 * with mask when it is not NULL. Returns the header's length. */
size_t vs_ws_header(uint8_t *out, enum vs_ws_opcode op, bool fin, uint64_t len,
		    const uint8_t *mask);

/* dst[i] = src[i] ^ mask[(off + i) % 4] for n bytes; dst may be src, or below it (in place). */
void vs_ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4], unsigned off);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455's GUID)), 28
 * characters and a NUL in out. Returns 0, or -ENOMEM when OpenSSL fails. */
int vs_ws_accept_key(const char *key, size_t len, char out[29]);

/* ---- the transport ------------------------------------------------------------------------ */

/* A listener's WebSocket settings; they must outlive the connections that use them. */
struct vs_ws_server_conf {
	const char *path;	    /* the one request path accepted for upgrades; NULL: any */
	const char *const *origins; /* allowed Origin values (n_origins); none: any Origin */
	size_t n_origins;
	const char *http_dir;	    /* serve files from this directory (its real path); or NULL */
	const char *const *proxies; /* peer addresses ("127.0.0.1", "::1") whose X-Forwarded-For
				     * names the client (n_proxies) */
	size_t n_proxies;
	size_t headers_max; /* the longest request head taken */
};

/* A client's settings: the transport under the WebSocket (tcp or tls, with its conf) and the
 * request path ("/mqtt"). */
struct vs_ws_client_conf {
	const struct vs_transport_ops *inner;
	const void *inner_conf;
	const char *path;
	const char *subprotocol; /* "mqtt" (NULL), or "mqttv3.1" for MQTT 3.1 */
};

/* Client: open() is given a struct vs_ws_client_conf; finish() completes the inner transport,
 * then the upgrade. */
extern const struct vs_transport_ops vs_transport_ws;

/* Client over a transport already open (or opening): t takes over inner, and finish() completes
 * it, then the upgrade to host:port at path. Returns 0, or -ENOMEM with inner untouched. */
int vs_transport_ws_client(struct vs_transport *t, struct vs_transport *inner, const char *host,
			   int port, const char *path, const char *subprotocol);

/* Server: t takes over inner (an accepted transport, TLS possibly still in its handshake) and
 * answers the upgrade in finish(). conf is borrowed. Returns 0, or -ENOMEM with inner untouched
 * (the caller closes it). */
int vs_transport_ws_accept(struct vs_transport *t, struct vs_transport *inner,
			   const struct vs_ws_server_conf *conf);

/* Once a server's upgrade is done: the client's address from X-Forwarded-For when the peer is a
 * listed proxy, else NULL. */
const char *vs_transport_ws_forwarded(const struct vs_transport *t);

/* The transport under a WebSocket (to reach a TLS session), or t itself for any other. */
const struct vs_transport *vs_transport_ws_inner(const struct vs_transport *t);

#endif
