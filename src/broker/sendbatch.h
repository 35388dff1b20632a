/*
 * Many sends in one system call. At the end of a loop turn a worker writes to every connection
 * that has output, one send(2) each. Where a system call costs 1-2 µs (a virtual machine with
 * the usual mitigations: bench/README.md, "Sends in one system call"), one io_uring_enter for
 * all of them costs less than a send each.
 *
 * Each send is non-blocking (MSG_DONTWAIT): io_uring issues it inline, during the submit, and
 * its result is exactly what send(2) would have returned (bytes taken, -EAGAIN, -EPIPE...), so
 * the caller handles it as it handles a send's. Nothing is left in flight once vs_sendbatch_run
 * returns: the buffers may change at once.
 *
 * io_uring may be missing or refused (an old kernel, kernel.io_uring_disabled, a container's
 * seccomp profile): vs_sendbatch_open then fails and the caller sends one by one.
 */
#ifndef VS_BROKER_SENDBATCH_H
#define VS_BROKER_SENDBATCH_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct io_uring;

struct vs_sendbatch_item {
	int fd;
	const void *buf;
	size_t len;
};

struct vs_sendbatch {
	struct io_uring *ring; /* NULL: closed */
	unsigned cap;	       /* sends one batch holds */
	unsigned n;	       /* queued (set it to 0 to drop them: nothing is sent before run) */
	struct vs_sendbatch_item *q; /* cap sends */
	ssize_t *res;		     /* cap results, in the order queued */
};

/* Sets up a batch of up to cap sends. 0, or -errno (-ENOSYS, -EPERM: no io_uring here). */
int vs_sendbatch_open(struct vs_sendbatch *b, unsigned cap);
void vs_sendbatch_close(struct vs_sendbatch *b);

/* Queues a send of len (> 0) bytes at buf on fd; false when the batch is full (run it). The
 * bytes must stay where they are until vs_sendbatch_run returns. */
bool vs_sendbatch_add(struct vs_sendbatch *b, int fd, const void *buf, size_t len);

/* Sends what was queued, in one system call. Then b->res[i] is the result of the i-th send,
 * as send(2) gives it (bytes taken or -errno), or VS_SENDBATCH_UNSENT for a send the kernel
 * did not take (io_uring itself failed: the caller sends those bytes itself). After such a
 * failure the batch is closed for good (b->ring is NULL). Returns the number of sends; the
 * batch is empty afterwards. */
#define VS_SENDBATCH_UNSENT (-ECANCELED)
unsigned vs_sendbatch_run(struct vs_sendbatch *b);

#endif
