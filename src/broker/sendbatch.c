/* Many sends in one system call: see sendbatch.h. */
#include "broker/sendbatch.h"

#include <liburing.h>
#include <stdlib.h>
#include <sys/socket.h>

int vs_sendbatch_open(struct vs_sendbatch *b, unsigned cap)
{
	*b = (struct vs_sendbatch){0};
	b->ring = calloc(1, sizeof(*b->ring));
	b->res = calloc(cap, sizeof(*b->res));
	b->q = calloc(cap, sizeof(*b->q));
	if (!b->ring || !b->res || !b->q) {
		vs_sendbatch_close(b);
		return -ENOMEM;
	}
	/* SUBMIT_ALL (Linux 5.18): a send that fails early still lets the others go. */
	int rc = io_uring_queue_init(cap, b->ring, IORING_SETUP_SUBMIT_ALL);
	if (rc == -EINVAL)
		rc = io_uring_queue_init(cap, b->ring, 0);
	if (rc < 0) {
		free(b->ring);
		b->ring = NULL;
		vs_sendbatch_close(b);
		return rc;
	}
	b->cap = cap;
	return 0;
}

void vs_sendbatch_close(struct vs_sendbatch *b)
{
	if (b->ring) {
		io_uring_queue_exit(b->ring);
		free(b->ring);
	}
	free(b->res);
	free(b->q);
	*b = (struct vs_sendbatch){0};
}

bool vs_sendbatch_add(struct vs_sendbatch *b, int fd, const void *buf, size_t len)
{
	if (!b->ring || b->n == b->cap)
		return false;
	b->q[b->n++] = (struct vs_sendbatch_item){.fd = fd, .buf = buf, .len = len};
	return true;
}

/* Takes the completions that are there, of the first n sends; returns how many. */
static unsigned reap(struct vs_sendbatch *b, unsigned n)
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

unsigned vs_sendbatch_run(struct vs_sendbatch *b)
{
	unsigned n = b->n;
	b->n = 0;
	if (!n)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		/* The ring has cap entries and is empty between runs: there is one for each. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(b->ring);
		io_uring_prep_send(sqe, b->q[i].fd, b->q[i].buf, b->q[i].len,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
		io_uring_sqe_set_data64(sqe, i);
		b->res[i] = VS_SENDBATCH_UNSENT;
	}
	int rc;
	do
		rc = io_uring_submit(b->ring);
	while (rc == -EINTR);
	/* The kernel takes the entries in order; each send completes inline (MSG_DONTWAIT: a
	 * full socket is -EAGAIN, never a wait), so its completion is there when the submit
	 * returns. */
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
	/* io_uring failed. A send taken whose result never came may have gone out: its
	 * connection must end (-EIO) rather than send those bytes again. Those not taken are
	 * still queued in the ring and go with it; the caller sends them itself. */
	for (unsigned i = 0; i < taken; i++)
		if (b->res[i] == VS_SENDBATCH_UNSENT)
			b->res[i] = -EIO;
	io_uring_queue_exit(b->ring);
	free(b->ring);
	b->ring = NULL;
	return n;
}
