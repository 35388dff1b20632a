/*
 * Unit tests of the batch of sends and receives (src/broker/iobatch.h) on unix socket pairs:
 * each result is what send(2) or recv(2) would have said (bytes, 0 at the end of the stream,
 * -EAGAIN for a full or empty socket, -EPIPE for a gone peer, -EBADF), the bytes arrive in
 * order, a failed operation does not stop the others, a dropped batch does nothing, and the
 * batch holds what its capacity says. Skipped where io_uring is
 * unavailable (a seccomp profile, kernel.io_uring_disabled): the broker then sends one by one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/iobatch.h"

enum { PAIRS = 4 };

struct rig {
	struct vs_iobatch b;
	int fd[PAIRS][2]; /* [i][0] is written by the batch, [i][1] read by the test */
};

static int setup(void **state)
{
	static struct rig r;
	int rc = vs_iobatch_open(&r.b, 8);
	if (rc < 0) {
		print_message("io_uring unavailable here (%s): skipped\n", strerror(-rc));
		*state = NULL;
		return 0;
	}
	for (int i = 0; i < PAIRS; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, r.fd[i]), 0);
		fcntl(r.fd[i][0], F_SETFL, O_NONBLOCK);
		fcntl(r.fd[i][1], F_SETFL, O_NONBLOCK);
	}
	*state = &r;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;
	if (!r)
		return 0;
	vs_iobatch_close(&r->b);
	assert_null(r->b.ring);
	for (int i = 0; i < PAIRS; i++)
		for (int j = 0; j < 2; j++)
			if (r->fd[i][j] >= 0)
				close(r->fd[i][j]);
	return 0;
}

#define RIG()                                                                                      \
	struct rig *r = *state;                                                                    \
	if (!r)                                                                                    \
		skip();

static void expect_bytes(int fd, const char *want)
{
	char got[256];
	ssize_t n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(got, want, strlen(want));
}

static void test_sends_in_order(void **state)
{
	RIG();
	const char *msg[PAIRS] = {"one", "two two", "three", "four four four"};
	for (int i = 0; i < PAIRS; i++)
		assert_true(vs_iobatch_send(&r->b, r->fd[i][0], msg[i], strlen(msg[i])));
	/* The same socket twice in one batch: the bytes follow in the order queued. */
	assert_true(vs_iobatch_send(&r->b, r->fd[0][0], "+more", 5));
	assert_int_equal(vs_iobatch_run(&r->b), PAIRS + 1);
	for (int i = 0; i < PAIRS; i++)
		assert_int_equal(r->b.res[i], (ssize_t)strlen(msg[i]));
	assert_int_equal(r->b.res[PAIRS], 5);
	expect_bytes(r->fd[0][1], "one+more");
	for (int i = 1; i < PAIRS; i++)
		expect_bytes(r->fd[i][1], msg[i]);
	assert_int_equal(r->b.n, 0);
	assert_non_null(r->b.ring);
	/* Runs again, as every loop turn does. */
	assert_true(vs_iobatch_send(&r->b, r->fd[1][0], "again", 5));
	assert_true(vs_iobatch_send(&r->b, r->fd[2][0], "and again", 9));
	assert_int_equal(vs_iobatch_run(&r->b), 2);
	expect_bytes(r->fd[1][1], "again");
	expect_bytes(r->fd[2][1], "and again");
}

/* A full socket is -EAGAIN, not a wait (the loop would stall); a partial take is its count. */
static void test_full_socket(void **state)
{
	RIG();
	int sz = 4096;
	setsockopt(r->fd[0][0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	static char big[1 << 16];
	memset(big, 'x', sizeof(big));
	size_t sent = 0;
	for (;;) {
		ssize_t n = send(r->fd[0][0], big, sizeof(big), MSG_DONTWAIT);
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			break;
		}
		sent += (size_t)n;
	}
	assert_true(vs_iobatch_send(&r->b, r->fd[0][0], big, sizeof(big)));
	assert_true(vs_iobatch_send(&r->b, r->fd[1][0], "ok", 2));
	assert_int_equal(vs_iobatch_run(&r->b), 2);
	assert_int_equal(r->b.res[0], -EAGAIN);
	assert_int_equal(r->b.res[1], 2);
	expect_bytes(r->fd[1][1], "ok");
	/* Room for a part: the reader takes a little, the next send takes at most that much more
	 * than nothing, and says how much. */
	char sink[2048];
	assert_true(recv(r->fd[0][1], sink, sizeof(sink), 0) > 0);
	assert_true(vs_iobatch_send(&r->b, r->fd[0][0], big, sizeof(big)));
	assert_true(vs_iobatch_send(&r->b, r->fd[1][0], "ok", 2));
	vs_iobatch_run(&r->b);
	assert_true(r->b.res[0] == -EAGAIN ||
		    (r->b.res[0] > 0 && r->b.res[0] < (ssize_t)sizeof(big)));
	assert_int_equal(r->b.res[1], 2);
	(void)sent;
}

/* One send that fails leaves the others alone, and the batch stays usable. */
static void test_errors_are_per_send(void **state)
{
	RIG();
	close(r->fd[2][1]);
	r->fd[2][1] = -1;
	assert_true(vs_iobatch_send(&r->b, r->fd[1][0], "a", 1));
	assert_true(vs_iobatch_send(&r->b, r->fd[2][0], "to nobody", 9));
	assert_true(vs_iobatch_send(&r->b, 1000000, "bad fd", 6));
	assert_true(vs_iobatch_send(&r->b, r->fd[3][0], "b", 1));
	assert_int_equal(vs_iobatch_run(&r->b), 4);
	assert_int_equal(r->b.res[0], 1);
	assert_int_equal(r->b.res[1], -EPIPE); /* MSG_NOSIGNAL: no SIGPIPE either */
	assert_int_equal(r->b.res[2], -EBADF);
	assert_int_equal(r->b.res[3], 1);
	expect_bytes(r->fd[1][1], "a");
	expect_bytes(r->fd[3][1], "b");
	assert_non_null(r->b.ring);
}

/* Dropped before it runs (the worker's lone send): nothing goes, and the next batch is clean. */
static void test_dropped_batch_sends_nothing(void **state)
{
	RIG();
	assert_true(vs_iobatch_send(&r->b, r->fd[0][0], "never", 5));
	r->b.n = 0;
	assert_true(vs_iobatch_send(&r->b, r->fd[1][0], "x", 1));
	assert_true(vs_iobatch_send(&r->b, r->fd[2][0], "y", 1));
	assert_int_equal(vs_iobatch_run(&r->b), 2);
	char c;
	assert_int_equal(recv(r->fd[0][1], &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	expect_bytes(r->fd[1][1], "x");
	expect_bytes(r->fd[2][1], "y");
	assert_int_equal(vs_iobatch_run(&r->b), 0);
}

static void test_capacity(void **state)
{
	RIG();
	for (unsigned i = 0; i < r->b.cap; i++)
		assert_true(vs_iobatch_send(&r->b, r->fd[i % PAIRS][0], "z", 1));
	assert_false(vs_iobatch_send(&r->b, r->fd[0][0], "z", 1));
	assert_int_equal(vs_iobatch_run(&r->b), r->b.cap);
	for (unsigned i = 0; i < r->b.cap; i++)
		assert_int_equal(r->b.res[i], 1);
	char got[64];
	size_t total = 0;
	for (int i = 0; i < PAIRS; i++) {
		ssize_t n = recv(r->fd[i][1], got, sizeof(got), MSG_DONTWAIT);
		assert_true(n > 0);
		total += (size_t)n;
	}
	assert_int_equal(total, r->b.cap);
}

/* Receives: what each socket holds, at most len; 0 at the end of the stream; -EAGAIN when
 * empty; sends and receives in one batch, in the order queued. */
static void test_receives(void **state)
{
	RIG();
	assert_int_equal(send(r->fd[0][1], "hello", 5, 0), 5);
	assert_int_equal(send(r->fd[1][1], "0123456789", 10, 0), 10);
	shutdown(r->fd[3][1], SHUT_WR);
	char b0[16], b1[4], b2[16], b3[16];
	assert_true(vs_iobatch_recv(&r->b, r->fd[0][0], b0, sizeof(b0)));
	assert_true(vs_iobatch_recv(&r->b, r->fd[1][0], b1, sizeof(b1)));
	assert_true(vs_iobatch_recv(&r->b, r->fd[2][0], b2, sizeof(b2)));
	assert_true(vs_iobatch_recv(&r->b, r->fd[3][0], b3, sizeof(b3)));
	/* A send queued after a receive on its peer's socket goes after it. */
	assert_true(vs_iobatch_send(&r->b, r->fd[2][1], "late", 4));
	assert_int_equal(vs_iobatch_run(&r->b), 5);
	assert_int_equal(r->b.res[0], 5);
	assert_memory_equal(b0, "hello", 5);
	assert_int_equal(r->b.res[1], 4); /* a full buffer: the caller reads again */
	assert_memory_equal(b1, "0123", 4);
	assert_int_equal(r->b.res[2], -EAGAIN);
	assert_int_equal(r->b.res[3], 0);
	assert_int_equal(r->b.res[4], 4);
	/* The rest is still there, for the next batch. */
	assert_true(vs_iobatch_recv(&r->b, r->fd[1][0], b2, sizeof(b2)));
	assert_true(vs_iobatch_recv(&r->b, r->fd[2][0], b3, sizeof(b3)));
	assert_int_equal(vs_iobatch_run(&r->b), 2);
	assert_int_equal(r->b.res[0], 6);
	assert_memory_equal(b2, "456789", 6);
	assert_int_equal(r->b.res[1], 4);
	assert_memory_equal(b3, "late", 4);
}

static void test_closed_batch_takes_nothing(void **state)
{
	(void)state;
	struct vs_iobatch b = {0};
	assert_false(vs_iobatch_send(&b, 0, "x", 1));
	char c;
	assert_false(vs_iobatch_recv(&b, 0, &c, 1));
	assert_int_equal(vs_iobatch_run(&b), 0);
	vs_iobatch_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sends_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors_are_per_send, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dropped_batch_sends_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_receives, setup, teardown),
	    cmocka_unit_test(test_closed_batch_takes_nothing),
	};
	return cmocka_run_group_tests_name("broker_iobatch", tests, NULL, NULL);
}
