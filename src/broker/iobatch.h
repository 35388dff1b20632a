/*
 * Many sends and receives in one system call. A worker's loop turn reads each connection that
 * epoll says is readable, then writes to every connection that has output, one recv(2) or
 * send(2) each. Where a system call costs 1-2 µs (a virtual machine with the usual
 * mitigations: bench/README.md, "Sends and receives in one system call"), one io_uring_enter
 * for all of a turn's receives, and one for all of its sends, cost less.
 *
 * Each operation is non-blocking (MSG_DONTWAIT): io_uring issues it inline, during the submit,
 * and its result is exactly what recv(2) or send(2) would have returned (bytes, 0 at the end of
 * the stream, -EAGAIN, -EPIPE...), so the caller handles it as it handles theirs. Nothing is
 * left in flight once vs_iobatch_run returns: the buffers may change at once.
 *
 * io_uring may be missing or refused (an old kernel, kernel.io_uring_disabled, a container's
 * seccomp profile): vs_iobatch_open then fails and the caller makes its calls one by one.
 */
#ifndef VS_BROKER_IOBATCH_H
#define VS_BROKER_IOBATCH_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct io_uring;

struct vs_iobatch_item {
	int fd;
	bool recv;
	void *buf;
	size_t len;
};

struct vs_iobatch {
	struct io_uring *ring;	   /* NULL: closed */
	unsigned cap;		   /* operations one batch holds */
	unsigned n;		   /* queued (set it to 0 to drop them: nothing runs before run) */
	struct vs_iobatch_item *q; /* cap operations */
	ssize_t *res;		   /* cap results, in the order queued */
};

/* Sets up a batch of up to cap operations. 0, or -errno (-ENOSYS, -EPERM: no io_uring here). */
int vs_iobatch_open(struct vs_iobatch *b, unsigned cap);
void vs_iobatch_close(struct vs_iobatch *b);

/* Queues a send of len (> 0) bytes at buf on fd, or a receive of up to len bytes into buf;
 * false when the batch is full (run it first) or closed. The buffer must stay where it is
 * until vs_iobatch_run returns. */
bool vs_iobatch_send(struct vs_iobatch *b, int fd, const void *buf, size_t len);
bool vs_iobatch_recv(struct vs_iobatch *b, int fd, void *buf, size_t len);

/* Makes what was queued, in one system call, in the order queued. Then b->res[i] is the result
 * of the i-th, as send(2) or recv(2) gives it (bytes or -errno), or VS_IOBATCH_UNDONE for one
 * the kernel did not take (io_uring itself failed: the caller makes that call itself). After
 * such a failure the batch is closed for good (b->ring is NULL). Returns the number queued;
 * the batch is empty afterwards. */
#define VS_IOBATCH_UNDONE (-ECANCELED)
unsigned vs_iobatch_run(struct vs_iobatch *b);

#endif
