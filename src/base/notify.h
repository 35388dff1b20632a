/*
 * systemd's readiness protocol (sd_notify(3)), written here rather than linking libsystemd for
 * one datagram: "KEY=VALUE\n" lines sent to the AF_UNIX datagram socket named by $NOTIFY_SOCKET
 * (a path, or an abstract socket when it starts with '@'). Debian's mosquitto.service is
 * Type=notify: a broker that never says READY=1 is killed when the start times out.
 *
 * Without $NOTIFY_SOCKET every call is a no-op, as sd_notify's.
 */
#ifndef VS_BASE_NOTIFY_H
#define VS_BASE_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct vs_notify {
	int fd;			 /* datagram socket, -1 = no $NOTIFY_SOCKET (nothing to send) */
	struct sockaddr_un addr; /* $NOTIFY_SOCKET ('@' replaced by a NUL: abstract) */
	socklen_t addr_len;
	uint64_t watchdog_usec; /* $WATCHDOG_USEC when it is for this process, else 0 */
};

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. Returns 0, or -errno (n is then
 * inactive: every send is a no-op). */
int vs_notify_init(struct vs_notify *n);
void vs_notify_fini(struct vs_notify *n);
/* Sends msg ("READY=1", "STATUS=...\nREADY=1", ...). Returns 0 (also when inactive) or
 * -errno. */
int vs_notify_send(const struct vs_notify *n, const char *msg);
/* RELOADING=1 with MONOTONIC_USEC=<CLOCK_MONOTONIC now>, as systemd 253+ expects of
 * Type=notify-reload services (older ones ignore the extra line). */
int vs_notify_reloading(const struct vs_notify *n);

#endif
