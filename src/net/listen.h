/* TCP listening sockets. */
#ifndef VS_NET_LISTEN_H
#define VS_NET_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/*
 * Opens non-blocking listening sockets for host:port ("host" NULL or "" = all addresses;
 * domain AF_UNSPEC = both IPv4 and IPv6). With reuseport, SO_REUSEPORT is set so that each
 * worker can open its own socket on the same address and the kernel spreads connections.
 * Writes up to max descriptors into fds; returns how many were opened (>= 1) or -errno, with a
 * description of the failure in err.
 */
int vs_listen_tcp(const char *host, int port, int domain, bool reuseport, int *fds, int max,
		  char *err, size_t errlen);

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
