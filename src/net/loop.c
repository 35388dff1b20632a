#include "net/loop.h"

#include <errno.h>
#include <unistd.h>

#include "base/clock.h"

int vs_loop_init(struct vs_loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void vs_loop_fini(struct vs_loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int vs_loop_add(struct vs_loop *l, struct vs_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

int vs_loop_mod(struct vs_loop *l, struct vs_io *io, uint32_t events)
{
	if (io->events == events)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = io};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

int vs_loop_del(struct vs_loop *l, struct vs_io *io)
{
	if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
		return -errno;
	io->events = 0;
	return 0;
}

int vs_loop_move(struct vs_io *io, int from, int to)
{
	if (!io->events)
		return 0; /* not in a set */
	/* Into the new set first: on failure the descriptor is still where it was. Nobody waits
	 * on either set meanwhile (see broker/threads.c), so an event reported twice is not seen
	 * twice. */
	struct epoll_event ev = {.events = io->events, .data.ptr = io};
	if (epoll_ctl(to, EPOLL_CTL_ADD, io->fd, &ev) < 0)
		return -errno;
	epoll_ctl(from, EPOLL_CTL_DEL, io->fd, NULL);
	return 0;
}

int vs_loop_wait(struct vs_loop *l, struct epoll_event *evs, int max, int timeout_ms)
{
	int64_t t0 = timeout_ms ? vs_now_ns() : 0;
	int n = epoll_wait(l->epfd, evs, max, timeout_ms);
	if (timeout_ms)
		l->waited_ns += vs_now_ns() - t0;
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n;
}

void vs_loop_dispatch(const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		struct vs_io *io = evs[i].data.ptr;
		io->fn(io, evs[i].events);
	}
}

int vs_loop_run_once(struct vs_loop *l, int timeout_ms)
{
	struct epoll_event evs[VS_LOOP_BATCH];
	int n = vs_loop_wait(l, evs, VS_LOOP_BATCH, timeout_ms);
	if (n > 0)
		vs_loop_dispatch(evs, n);
	return n;
}
