#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* SO_BINDTODEVICE (Linux): the socket takes only what arrives on that interface. */
static int bind_device(int fd, const char *ifname, char *err, size_t errlen)
{
	if (!ifname)
		return 0;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) == 0)
		return 0;
	int e = errno;
	snprintf(err, errlen, "bind_interface '%s': %s", ifname, strerror(e));
	return -e;
}

static int open_one(const struct addrinfo *ai, const char *ifname, unsigned flags, char *err,
		    size_t errlen)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (flags & VS_LISTEN_REUSEPORT)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	int rc = bind_device(fd, ifname, err, errlen);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    (!(flags & (VS_LISTEN_BIND_ONLY | VS_LISTEN_UDP)) && listen(fd, 4096) < 0)) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int vs_listen_tcp(const char *host, const char *ifname, int port, int domain, unsigned flags,
		  int *fds, int max, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = domain,
				 .ai_socktype = flags & VS_LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res;
	char portstr[16];
	/* getaddrinfo() would take 70000 and bind port 4464: refuse what is not a port. */
	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "port %d is not in 0..65535", port);
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	int gai = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host ? host : "*",
			 gai_strerror(gai));
		return -EINVAL;
	}
	int n = 0, last = 0;
	char dev_err[128] = "";
	for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
		int fd = open_one(ai, ifname, flags, dev_err, sizeof(dev_err));
		if (fd < 0) {
			last = fd;
			/* An address family the host lacks (no IPv6) is not fatal when another
			 * works. */
			continue;
		}
		fds[n++] = fd;
	}
	freeaddrinfo(res);
	if (n == 0 && dev_err[0]) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host && *host ? host : "*",
			 port, dev_err);
		return last;
	}
	if (n == 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host && *host ? host : "*",
			 port, strerror(-last));
		return last ? last : -EADDRNOTAVAIL;
	}
	return n;
}

int vs_listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "unix socket path '%s' is longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "'%s' exists and is not a socket", path);
			return -EEXIST;
		}
		unlink(path); /* left by an earlier run */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "unix socket: %s", strerror(e));
		return -e;
	}
	mode_t old = umask(0007);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen on unix socket '%s': %s", path, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

void vs_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		snprintf(out, outlen, "unix");
	}
}
