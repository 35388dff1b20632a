/* Listening sockets: TCP and unix streams, and the UDP sockets of MQTT-SN. */
#ifndef VS_NET_LISTEN_H
#define VS_NET_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum {
	/* SO_REUSEPORT: each worker opens its own socket on the same address and the kernel
	 * spreads connections among them. */
	VS_LISTEN_REUSEPORT = 1,
	/* Bind only, never listen(): a probe that the port is free. A listening probe would
	 * accept connections into its backlog and reset them when it is closed. */
	VS_LISTEN_BIND_ONLY = 2,
	/* A datagram (UDP) socket: bound, never listen()ed. */
	VS_LISTEN_UDP = 4,
};

/*
 * Opens non-blocking listening sockets for host:port ("host" NULL or "" = all addresses;
 * domain AF_UNSPEC = both IPv4 and IPv6), bound to network interface ifname (SO_BINDTODEVICE;
 * NULL = any), with flags from the enum above (0 for a plain listener). Writes up to max
 * descriptors into fds; returns how many were opened (>= 1) or -errno, with a description of the
 * failure in err.
 */
int vs_listen_tcp(const char *host, const char *ifname, int port, int domain, unsigned flags,
		  int *fds, int max, char *err, size_t errlen);

/*
 * Opens a non-blocking listening unix stream socket at path, as Mosquitto does: a socket file
 * left behind by an earlier run is replaced (anything else at the path is an error, never
 * removed), and the socket is created with permissions rwxrwx--- (the owner's group may
 * connect). Returns the descriptor or -errno, with a description in err.
 */
int vs_listen_unix(const char *path, char *err, size_t errlen);

/* Formats a peer address as "1.2.3.4:5678" or "[::1]:5678". */
void vs_addr_str(const struct sockaddr *sa, char *out, size_t outlen);

#endif
