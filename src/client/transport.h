/*
 * How the client reaches a broker: a small vtable, in the style of Redis's connection types, so
 * each transport (plain TCP in tcp.c, TLS in tls.c; WebSocket later) is a whole file behind the
 * same five functions. A transport owns one non-blocking descriptor at a time (`fd`, -1 when
 * closed); the client polls it and calls back in. Every function returns -errno (or VS_E*,
 * VIESTI_ETLS) on failure; read/write return -EAGAIN when they would block.
 *
 * Connecting may take several round trips (TCP, then a TLS handshake): until finish() returns
 * 0, the client waits for the event finish() asked for in `wait` and calls finish() again.
 */
#ifndef VS_CLIENT_TRANSPORT_H
#define VS_CLIENT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vs_transport;

struct vs_transport_ops {
	const char *name;
	/* Starts a non-blocking connect to host:port; sets t->fd. Returns 0 or -errno (-ENOENT
	 * for an unknown host). */
	int (*open)(struct vs_transport *t, const char *host, int port);
	/* Called when fd is ready as `wait` asked (writable after open) during connect:
	 * 0 connected, -EAGAIN in progress with `wait` set to the event to wait for next (t->fd
	 * may have changed when the next address is tried), or -errno / VIESTI_ETLS. */
	int (*finish)(struct vs_transport *t);
	/* > 0 bytes, 0 at end of stream, -EAGAIN, or -errno. len must be at least
	 * VS_TRANSPORT_MIN_READ: a transport that decrypts records then never holds back bytes
	 * that the descriptor will not signal again. */
	ssize_t (*read)(struct vs_transport *t, void *buf, size_t len);
	ssize_t (*write)(struct vs_transport *t, const void *buf, size_t len);
	/* Closes fd (idempotent) and frees per-connection state. */
	void (*close)(struct vs_transport *t);
};

struct vs_transport {
	const struct vs_transport_ops *ops;
	int fd;
	uint32_t wait;    /* while connecting: EPOLLOUT or EPOLLIN, what finish() waits for */
	const void *conf; /* set by the user before open: the transport's settings (tls: the
			   * struct vs_tls_ctx), or NULL */
	void *state;      /* the transport's own per-connection state */
	char err[160];    /* why the last call failed, beyond its error code ("" if no more to
			   * say); cleared by open */
};

/* The smallest buffer read() takes: one whole TLS record of plaintext. */
#define VS_TRANSPORT_MIN_READ 16384

/* Plain TCP (IPv4 and IPv6, every resolved address in turn, TCP_NODELAY). */
extern const struct vs_transport_ops vs_transport_tcp;
/* TLS over the TCP transport; conf is a struct vs_tls_ctx (client/tls.h). */
extern const struct vs_transport_ops vs_transport_tls;

#endif
