/*
 * How the client reaches a broker: a small vtable, in the style of Redis's connection types, so
 * TLS and WebSocket can be added later as whole files behind the same five functions. A transport
 * owns one non-blocking descriptor at a time (`fd`, -1 when closed); the client polls it and
 * calls back in. Every function returns -errno (or VS_E*) on failure; read/write return -EAGAIN
 * when they would block.
 */
#ifndef VS_CLIENT_TRANSPORT_H
#define VS_CLIENT_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

struct vs_transport;

struct vs_transport_ops {
	const char *name;
	/* Starts a non-blocking connect to host:port; sets t->fd. Returns 0 or -errno (-ENOENT
	 * for an unknown host). */
	int (*open)(struct vs_transport *t, const char *host, int port);
	/* Called when fd is writable during connect: 0 connected, -EAGAIN in progress (t->fd may
	 * have changed when the next address is tried), or -errno. */
	int (*finish)(struct vs_transport *t);
	/* > 0 bytes, 0 at end of stream, -EAGAIN, or -errno. */
	ssize_t (*read)(struct vs_transport *t, void *buf, size_t len);
	ssize_t (*write)(struct vs_transport *t, const void *buf, size_t len);
	/* Closes fd (idempotent) and frees per-connection state. */
	void (*close)(struct vs_transport *t);
};

struct vs_transport {
	const struct vs_transport_ops *ops;
	int fd;
	void *state; /* the transport's own per-connection state */
};

/* Plain TCP (IPv4 and IPv6, every resolved address in turn, TCP_NODELAY). */
extern const struct vs_transport_ops vs_transport_tcp;

#endif
