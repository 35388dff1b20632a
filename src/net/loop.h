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
	uint32_t events; /* EPOLLIN / EPOLLOUT / EPOLLET currently registered */
	vs_io_fn fn;
};

struct vs_loop {
	int epfd;
	int64_t waited_ns; /* time spent blocked in vs_loop_run_once (a load measure) */
};

/* Returns 0 or -errno. */
int vs_loop_init(struct vs_loop *l);
void vs_loop_fini(struct vs_loop *l);
/* Registers io->fd for events (EPOLLIN, EPOLLOUT, optionally EPOLLET). */
int vs_loop_add(struct vs_loop *l, struct vs_io *io, uint32_t events);
/* Changes the registered events; a no-op when unchanged. */
int vs_loop_mod(struct vs_loop *l, struct vs_io *io, uint32_t events);
int vs_loop_del(struct vs_loop *l, struct vs_io *io);
/* Waits up to timeout_ms (-1 forever) and dispatches ready descriptors. Returns the number
 * dispatched, or -errno (EINTR is reported as 0). */
int vs_loop_run_once(struct vs_loop *l, int timeout_ms);

#endif
