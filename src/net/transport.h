/*
 * How bytes reach the other end of a connection: a small vtable, in the style of Redis's
 * connection types, so that each transport (plain TCP and unix sockets in tcp.c, TLS in tls.c;
 * WebSocket and MQTT-SN virtual connections next) is a whole file behind the same few functions,
 * and the protocol code above (the broker's connections, libviesti) never knows which it talks.
 *
 * A transport owns one non-blocking descriptor at a time (`fd`, -1 when closed); its owner's
 * event loop polls the descriptor and calls in. Every function returns -errno (or VS_E*, such as
 * VS_ETLS) on failure; read and write return -EAGAIN when they would block.
 *
 * Both ends use it. A client opens (open() starts a connect, finish() completes it, then any
 * handshake); a server adopts an accepted descriptor (vs_transport_accept_tcp(),
 * vs_transport_tls_accept()) and calls finish() while `wait` is set. While `wait` is non-zero the
 * connection is not ready: its owner waits for that event (EPOLLIN or EPOLLOUT) and calls
 * finish() again; finish() returns 0 once data may flow (wait is then 0).
 */
#ifndef VS_NET_TRANSPORT_H
#define VS_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vs_transport;

struct vs_transport_ops {
	const char *name;
	/* Client: starts a non-blocking connect to host:port with the transport's settings conf
	 * (TLS: a struct vs_tls_ctx; TCP: NULL); sets t->fd. Returns 0 or -errno (-ENOENT for an
	 * unknown host). */
	int (*open)(struct vs_transport *t, const void *conf, const char *host, int port);
	/* Called while t->wait is set, when fd is ready as it asks: 0 ready (wait is 0), -EAGAIN
	 * in progress with `wait` set to the event to wait for next (a client's t->fd may have
	 * changed when the next address is tried), or -errno / VS_ETLS / VS_ECLOSED. NULL for a
	 * transport that is ready at once. */
	int (*finish)(struct vs_transport *t);
	/* > 0 bytes, 0 at end of stream, -EAGAIN, or -errno. len must be at least
	 * VS_TRANSPORT_MIN_READ: a transport that decrypts records then holds no data back that
	 * the descriptor will not signal again. */
	ssize_t (*read)(struct vs_transport *t, void *buf, size_t len);
	/* > 0 bytes taken, -EAGAIN (offer the same bytes first next time), or -errno. */
	ssize_t (*write)(struct vs_transport *t, const void *buf, size_t len);
	/* Closes fd (idempotent) and frees per-connection state. */
	void (*close)(struct vs_transport *t);
	/* Why the last call failed, beyond its error code, or NULL. May be NULL. */
	const char *(*why)(const struct vs_transport *t);
	/* Whether the last read may have stopped before the descriptor was empty, though it did
	 * not fill buf (a TLS read stops a record short): an edge-triggered owner reads again.
	 * NULL: only a read that fills buf may have. */
	bool (*more)(const struct vs_transport *t);
	/* Gives back memory an idle connection does not need now (TLS buffers); it is taken
	 * again when needed. May be NULL. */
	void (*shrink)(struct vs_transport *t);
};

/* How a client's stream socket is made; every field is optional (NULL: the default). A
 * transport that wraps another (TLS, WebSocket) hands it on to the one underneath. */
struct vs_tcp_conf {
	const char *bind_address; /* bind() to this local host or address before connecting */
	const char *unix_path;	  /* connect to this unix socket instead of host:port */
	const char *socks_host;	  /* a SOCKS5 proxy that connects to host:port (by name) */
	int socks_port;		  /* its port, default 1080 */
	const char *socks_user;	  /* RFC 1929 username/password, or NULL for no authentication */
	const char *socks_pass;
};

struct vs_transport {
	const struct vs_transport_ops *ops;
	const struct vs_tcp_conf *tcp; /* client: set before open(), or NULL */
	void *state; /* the transport's own per-connection state (NULL for a server's TCP) */
	int fd;
	uint32_t wait; /* while not ready: EPOLLIN or EPOLLOUT, what finish() waits for; else 0 */
};

/* The smallest buffer read() takes: one whole TLS record of plaintext. */
#define VS_TRANSPORT_MIN_READ 16384

/* Plain stream sockets: TCP (IPv4 and IPv6, every resolved address in turn, TCP_NODELAY), a
 * unix socket or TCP through a SOCKS5 proxy as t->tcp says, when opened; or any accepted
 * stream socket (TCP, unix). An unknown host is VS_ELOOKUP; a proxy's refusal VS_EPROXY. */
extern const struct vs_transport_ops vs_transport_tcp;

/* A server's transport for an accepted stream socket (TCP or unix): ready at once. */
void vs_transport_accept_tcp(struct vs_transport *t, int fd);

/* Whether an edge-triggered owner must read again after a read of n bytes into room bytes. */
static inline bool vs_transport_read_more(const struct vs_transport *t, size_t n, size_t room)
{
	return n == room || (t->ops->more && t->ops->more(t));
}

static inline void vs_transport_shrink(struct vs_transport *t)
{
	if (t->ops->shrink)
		t->ops->shrink(t);
}

/* The reason text of the last failure ("" when the transport has none to give). */
static inline const char *vs_transport_why(const struct vs_transport *t)
{
	const char *w = t->ops && t->ops->why ? t->ops->why(t) : NULL;
	return w ? w : "";
}

#endif
