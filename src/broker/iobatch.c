/* Many sends and receives in one system call: see iobatch.h. */
#include "broker/iobatch.h"

#include <liburing.h>
#include <stdlib.h>
#include <sys/socket.h>

int vs_iobatch_open(struct vs_iobatch *b, unsigned cap)
{
	*b = (struct vs_iobatch){0};
	b->ring = calloc(1, sizeof(*b->ring));
	b->res = calloc(cap, sizeof(*b->res));
	b->q = calloc(cap, sizeof(*b->q));
	if (!b->ring || !b->res || !b->q) {
		vs_iobatch_close(b);
		return -ENOMEM;
	}
	/* SUBMIT_ALL (Linux 5.18): a send that fails early still lets the others go. */
	int rc = io_uring_queue_init(cap, b->ring, IORING_SETUP_SUBMIT_ALL);
	if (rc == -EINVAL)
		rc = io_uring_queue_init(cap, b->ring, 0);
	if (rc < 0) {
		free(b->ring);
		b->ring = NULL;
		vs_iobatch_close(b);
		return rc;
	}
	b->cap = cap;
	return 0;
}

void vs_iobatch_close(struct vs_iobatch *b)
{
	if (b->ring) {
		io_uring_queue_exit(b->ring);
		free(b->ring);
	}
	free(b->res);
	free(b->q);
	*b = (struct vs_iobatch){0};
}

static bool add(struct vs_iobatch *b, int fd, bool recv, void *buf, size_t len)
{
	if (!b->ring || b->n == b->cap)
		return false;
	b->q[b->n++] = (struct vs_iobatch_item){.fd = fd, .recv = recv, .buf = buf, .len = len};
	return true;
}

bool vs_iobatch_send(struct vs_iobatch *b, int fd, const void *buf, size_t len)
{
	return add(b, fd, false, (void *)buf, len);
}

bool vs_iobatch_recv(struct vs_iobatch *b, int fd, void *buf, size_t len)
{
	return add(b, fd, true, buf, len);
}

/* Takes the completions that are there, of the first n sends; returns how many. */
static unsigned reap(struct vs_iobatch *b, unsigned n)
{
	struct io_uring_cqe *cqe;
	unsigned head, got = 0;
	io_uring_for_each_cqe(b->ring, head, cqe)
	{
		uint64_t i = io_uring_cqe_get_data64(cqe);
		if (i < n)
			b->res[i] = cqe->res;
		got++;
	}
	io_uring_cq_advance(b->ring, got);
	return got;
}

unsigned vs_iobatch_run(struct vs_iobatch *b)
{
	unsigned n = b->n;
	b->n = 0;
	if (!n)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		/* The ring has cap entries and is empty between runs: there is one for each. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(b->ring);
		const struct vs_iobatch_item *it = &b->q[i];
		if (it->recv)
			io_uring_prep_recv(sqe, it->fd, it->buf, it->len, MSG_DONTWAIT);
		else
			io_uring_prep_send(sqe, it->fd, it->buf, it->len,
					   MSG_NOSIGNAL | MSG_DONTWAIT);
		io_uring_sqe_set_data64(sqe, i);
		b->res[i] = VS_IOBATCH_UNDONE;
	}
	int rc;
	do
		rc = io_uring_submit(b->ring);
	while (rc == -EINTR);
	/* The kernel takes the entries in order; each completes inline (MSG_DONTWAIT: a full or
	 * empty socket is -EAGAIN, never a wait for it), so its completion is there when the
	 * submit returns. The wait below is for one the kernel handed to a worker of its own
	 * instead: still non-blocking, so it is short; and it has no timeout, because giving up
	 * would leave the kernel pointing into buffers the caller is about to change. */
	unsigned taken = rc > 0 ? (unsigned)rc : 0, done = reap(b, n);
	while (done < taken) {
		struct io_uring_cqe *cqe;
		int w = io_uring_wait_cqe(b->ring, &cqe);
		if (w < 0 && w != -EINTR)
			break;
		done += reap(b, n);
	}
	if (taken == n && done == taken)
		return n;
	/* io_uring failed. An operation taken whose result never came may have moved bytes: its
	 * connection must end (-EIO) rather than send them again, or lose what was read. Those
	 * not taken are still queued in the ring and go with it; the caller makes them itself. */
	for (unsigned i = 0; i < taken; i++)
		if (b->res[i] == VS_IOBATCH_UNDONE)
			b->res[i] = -EIO;
	io_uring_queue_exit(b->ring);
	free(b->ring);
	b->ring = NULL;
	return n;
}
