/*
 * A thin per-thread epoll loop, in the spirit of Redis's ae: one loop per worker thread, file
 * descriptors registered with a struct vs_io embedded in their owner, and a callback per wake-up.
 * Timers are the owner's business: vs_loop_run_once() takes the timeout to wait.
 */
#ifndef VS_NET_LOOP_H
#define VS_NET_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct vs_io;
typedef void (*vs_io_fn)(struct vs_io *io, uint32_t events);

/* Embedded in whatever owns the descriptor; the loop never frees it. */
struct vs_io {
	int fd;
	uint32_t events; /* EPOLLIN / EPOLLOUT / EPOLLET currently registered; 0: in no set */
	vs_io_fn fn;
};

struct vs_loop {
	int epfd;
	int64_t waited_ns; /* time spent blocked in vs_loop_run_once (a load measure) */
};

/* Returns 0 or -errno. */
int vs_loop_init(struct vs_loop *l);
void vs_loop_fini(struct vs_loop *l);
/* Registers io->fd for events (EPOLLIN, EPOLLOUT, optionally EPOLLET; never 0, which marks an
 * io in no set: an io with no interest for now keeps EPOLLET). */
int vs_loop_add(struct vs_loop *l, struct vs_io *io, uint32_t events);
/* Changes the registered events (never to 0); a no-op when unchanged. */
int vs_loop_mod(struct vs_loop *l, struct vs_io *io, uint32_t events);
int vs_loop_del(struct vs_loop *l, struct vs_io *io);
/* Events taken from the kernel per wait. */
#define VS_LOOP_BATCH 256

/* Waits up to timeout_ms (-1 forever) and dispatches ready descriptors. Returns the number
 * dispatched, or -errno (EINTR is reported as 0). */
int vs_loop_run_once(struct vs_loop *l, int timeout_ms);
/* The two halves of vs_loop_run_once(), for a caller with work between them. */
int vs_loop_wait(struct vs_loop *l, struct epoll_event *evs, int max, int timeout_ms);
void vs_loop_dispatch(const struct epoll_event *evs, int n);
/* Moves io (if registered, i.e. io->events != 0) from epoll set `from` to `to`, keeping its
 * events; on failure (-errno) it stays in `from`. Nobody may wait on either set meanwhile. */
int vs_loop_move(struct vs_io *io, int from, int to);

#endif
