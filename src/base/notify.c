/*
 * sd_notify(3) in a few lines (see notify.h): one datagram per message, sent without blocking;
 * a manager that is gone or busy costs the broker nothing but the lost message.
 */
#include "base/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t parse_u64(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = s && *s ? strtoull(s, &end, 10) : 0;
	return s && *s && !errno && !*end ? (uint64_t)v : 0;
}

int vs_notify_init(struct vs_notify *n)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	const char *wpid = getenv("WATCHDOG_PID");
	if (!wpid || parse_u64(wpid) == (uint64_t)getpid())
		n->watchdog_usec = parse_u64(getenv("WATCHDOG_USEC"));
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(n->addr.sun_path))
		return -EINVAL;
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@')
		n->addr.sun_path[0] = '\0'; /* abstract namespace: the length says where it ends */
	n->addr_len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	return n->fd < 0 ? -errno : 0;
}

void vs_notify_fini(struct vs_notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

int vs_notify_send(const struct vs_notify *n, const char *msg)
{
	if (n->fd < 0)
		return 0;
	ssize_t w = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
			   n->addr_len);
	return w < 0 ? -errno : 0;
}

int vs_notify_reloading(const struct vs_notify *n)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[64];
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
		     (unsigned long long)ts.tv_nsec / 1000);
	return vs_notify_send(n, msg);
}
