/*
 * Unit tests of the net layer: the epoll loop (loop.h) driven by eventfds and pipes, TCP
 * listeners (listen.h) on loopback with an ephemeral port that a client then connects to through
 * the loop, and peer address formatting. IPv6 cases are skipped when the host has no ::1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "net/listen.h"
#include "net/loop.h"

/* An owner with an embedded vs_io, as connections embed theirs. */
struct counter {
	int before; /* guards that the callback gets the embedded io, not a copy */
	struct vs_io io;
	int calls;
	uint32_t last;
};

static void on_event(struct vs_io *io, uint32_t events)
{
	struct counter *c = (struct counter *)((char *)io - offsetof(struct counter, io));
	assert_int_equal(c->before, 0x5a5a);
	c->calls++;
	c->last = events;
}

static void counter_init(struct counter *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->before = 0x5a5a;
	c->io.fd = fd;
	c->io.fn = on_event;
}

static void efd_signal(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void efd_drain(int fd)
{
	uint64_t v;
	assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
}

/* ---------------------------------------------------------------- loop */

static void test_loop_init_fini(void **state)
{
	struct vs_loop l;

	assert_int_equal(vs_loop_init(&l), 0);
	assert_true(l.epfd >= 0);
	assert_true(fcntl(l.epfd, F_GETFD) & FD_CLOEXEC);
	/* nothing registered: a zero timeout returns at once with nothing dispatched */
	assert_int_equal(vs_loop_run_once(&l, 0), 0);
	vs_loop_fini(&l);
	assert_int_equal(l.epfd, -1);
	vs_loop_fini(&l); /* twice is harmless */
}

static void test_loop_add_dispatch(void **state)
{
	struct vs_loop l;
	struct counter c;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(vs_loop_init(&l), 0);
	counter_init(&c, fd);
	assert_int_equal(vs_loop_add(&l, &c.io, EPOLLIN), 0);
	assert_int_equal(c.io.events, EPOLLIN);
	assert_int_equal(vs_loop_run_once(&l, 0), 0);
	assert_int_equal(c.calls, 0);
	efd_signal(fd);
	assert_int_equal(vs_loop_run_once(&l, 1000), 1);
	assert_int_equal(c.calls, 1);
	assert_true(c.last & EPOLLIN);
	/* level-triggered: still readable, so dispatched again until drained */
	assert_int_equal(vs_loop_run_once(&l, 0), 1);
	assert_int_equal(c.calls, 2);
	efd_drain(fd);
	assert_int_equal(vs_loop_run_once(&l, 0), 0);
	assert_int_equal(c.calls, 2);
	/* adding the same descriptor twice fails and leaves the registration alone */
	assert_int_equal(vs_loop_add(&l, &c.io, EPOLLIN | EPOLLOUT), -EEXIST);
	assert_int_equal(c.io.events, EPOLLIN);
	vs_loop_fini(&l);
	close(fd);
}

static void test_loop_add_errors(void **state)
{
	struct vs_loop l;
	struct counter c;
	int fds[2];

	assert_int_equal(vs_loop_init(&l), 0);
	counter_init(&c, -1);
	assert_int_equal(vs_loop_add(&l, &c.io, EPOLLIN), -EBADF);
	assert_int_equal(c.io.events, 0);
	/* regular files cannot be polled */
	char path[] = "/tmp/vs_test_net_XXXXXX";
	int f = mkstemp(path);
	assert_true(f >= 0);
	unlink(path);
	c.io.fd = f;
	assert_int_equal(vs_loop_add(&l, &c.io, EPOLLIN), -EPERM);
	close(f);
	/* del / mod of something never added */
	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	c.io.fd = fds[0];
	assert_int_equal(vs_loop_del(&l, &c.io), -ENOENT);
	assert_int_equal(vs_loop_mod(&l, &c.io, EPOLLIN), -ENOENT);
	vs_loop_fini(&l);
	close(fds[0]);
	close(fds[1]);
}

static void test_loop_mod_del(void **state)
{
	struct vs_loop l;
	struct counter rd, wr;
	int fds[2];

	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(vs_loop_init(&l), 0);
	counter_init(&rd, fds[0]);
	counter_init(&wr, fds[1]);
	assert_int_equal(vs_loop_add(&l, &rd.io, EPOLLIN), 0);
	/* registered with no events: never dispatched (a connection with nothing to write) */
	assert_int_equal(vs_loop_add(&l, &wr.io, 0), 0);
	assert_int_equal(vs_loop_run_once(&l, 0), 0);
	/* ask for writability: the empty pipe is writable at once */
	assert_int_equal(vs_loop_mod(&l, &wr.io, EPOLLOUT), 0);
	assert_int_equal(wr.io.events, EPOLLOUT);
	assert_int_equal(vs_loop_run_once(&l, 0), 1);
	assert_int_equal(wr.calls, 1);
	assert_true(wr.last & EPOLLOUT);
	/* write: both ends are ready */
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(vs_loop_run_once(&l, 0), 2);
	assert_int_equal(rd.calls, 1);
	assert_int_equal(wr.calls, 2);
	/* an unchanged mod is a no-op (no syscall: it succeeds even on a closed epoll fd) */
	int ep = l.epfd;
	l.epfd = -1;
	assert_int_equal(vs_loop_mod(&l, &wr.io, EPOLLOUT), 0);
	l.epfd = ep;
	/* stop writing */
	assert_int_equal(vs_loop_mod(&l, &wr.io, 0), 0);
	assert_int_equal(wr.io.events, 0);
	assert_int_equal(vs_loop_run_once(&l, 0), 1);
	assert_int_equal(wr.calls, 2);
	assert_int_equal(rd.calls, 2);
	/* del: the readable pipe is no longer dispatched */
	assert_int_equal(vs_loop_del(&l, &rd.io), 0);
	assert_int_equal(rd.io.events, 0);
	assert_int_equal(vs_loop_run_once(&l, 0), 0);
	assert_int_equal(rd.calls, 2);
	assert_int_equal(vs_loop_del(&l, &rd.io), -ENOENT);
	/* and can be added back */
	assert_int_equal(vs_loop_add(&l, &rd.io, EPOLLIN), 0);
	assert_int_equal(vs_loop_run_once(&l, 0), 1);
	assert_int_equal(rd.calls, 3);
	/* the peer closing is reported (EPOLLHUP comes without being asked for) */
	close(fds[1]);
	char b[4];
	assert_int_equal(read(fds[0], b, sizeof(b)), 1);
	assert_int_equal(vs_loop_run_once(&l, 0), 1);
	assert_true(rd.last & EPOLLHUP);
	vs_loop_fini(&l);
	close(fds[0]);
}

#define MANY 300

static void test_loop_many_ready(void **state)
{
	/* More ready descriptors than one wait returns (256): the rest come in the next. */
	static struct counter c[MANY];
	struct vs_loop l;

	assert_int_equal(vs_loop_init(&l), 0);
	for (int i = 0; i < MANY; i++) {
		int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC); /* readable from the start */
		assert_true(fd >= 0);
		counter_init(&c[i], fd);
		assert_int_equal(vs_loop_add(&l, &c[i].io, EPOLLIN), 0);
	}
	assert_int_equal(vs_loop_run_once(&l, 0), 256);
	assert_int_equal(vs_loop_run_once(&l, 0), 256);
	for (int i = 0; i < MANY; i++) {
		assert_true(c[i].calls >= 1);
		efd_drain(c[i].io.fd);
	}
	assert_int_equal(vs_loop_run_once(&l, 0), 0);
	for (int i = 0; i < MANY; i++)
		close(c[i].io.fd);
	vs_loop_fini(&l);
}

static void test_loop_timeout(void **state)
{
	struct vs_loop l;
	struct counter c;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	assert_int_equal(vs_loop_init(&l), 0);
	counter_init(&c, fd);
	assert_int_equal(vs_loop_add(&l, &c.io, EPOLLIN), 0);
	int64_t t0 = vs_now_ms();
	assert_int_equal(vs_loop_run_once(&l, 60), 0);
	int64_t dt = vs_now_ms() - t0;
	assert_true(dt >= 55 && dt < 2000);
	assert_int_equal(c.calls, 0);
	vs_loop_fini(&l);
	close(fd);
}

struct waker {
	int fd;
	pthread_t target;
	int signal_it;
};

static void *wake_later(void *p)
{
	struct waker *w = p;
	struct timespec ts = {0, 50 * 1000000};

	nanosleep(&ts, NULL);
	if (w->signal_it)
		pthread_kill(w->target, SIGUSR1);
	else
		efd_signal(w->fd);
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void test_loop_wakeup_and_eintr(void **state)
{
	struct vs_loop l;
	struct counter c;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_t th;
	struct waker w = {fd, pthread_self(), 0};

	assert_int_equal(vs_loop_init(&l), 0);
	counter_init(&c, fd);
	assert_int_equal(vs_loop_add(&l, &c.io, EPOLLIN), 0);
	/* another thread makes the descriptor ready: the blocked wait returns and dispatches it */
	assert_int_equal(pthread_create(&th, NULL, wake_later, &w), 0);
	assert_int_equal(vs_loop_run_once(&l, -1), 1);
	assert_int_equal(c.calls, 1);
	pthread_join(th, NULL);
	efd_drain(fd);

	/* a signal interrupting the wait is reported as 0 dispatched, not as an error */
	struct sigaction sa = {.sa_handler = on_usr1}, old;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	w.signal_it = 1;
	assert_int_equal(pthread_create(&th, NULL, wake_later, &w), 0);
	int64_t t0 = vs_now_ms();
	assert_int_equal(vs_loop_run_once(&l, 5000), 0);
	assert_true(vs_now_ms() - t0 < 4000);
	pthread_join(th, NULL);
	sigaction(SIGUSR1, &old, NULL);
	assert_int_equal(c.calls, 1);
	vs_loop_fini(&l);
	close(fd);
}

/* ---------------------------------------------------------------- listen */

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Connects a blocking client to addr:port, accepts it through the loop, and checks that both
 * ends agree on the client's address as vs_addr_str formats it. */
static void connect_and_accept(int lfd, int family, const char *ip, int port, const char *prefix)
{
	struct vs_loop l;
	struct counter c;
	struct sockaddr_storage ss = {0};
	socklen_t sl;

	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
		sl = sizeof(*a);
	}
	assert_int_equal(vs_loop_init(&l), 0);
	counter_init(&c, lfd);
	assert_int_equal(vs_loop_add(&l, &c.io, EPOLLIN), 0);
	/* no pending connection: accept would block (the listener is non-blocking) */
	assert_int_equal(accept4(lfd, NULL, NULL, SOCK_CLOEXEC), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	assert_int_equal(vs_loop_run_once(&l, 0), 0);

	int cfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cfd >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(vs_loop_run_once(&l, 2000), 1);
	assert_int_equal(c.calls, 1);
	assert_true(c.last & EPOLLIN);

	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	int afd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(afd >= 0);
	char got[64], want[64];
	vs_addr_str((struct sockaddr *)&peer, got, sizeof(got));
	snprintf(want, sizeof(want), "%s%d", prefix, local_port(cfd));
	assert_string_equal(got, want);
	/* data flows */
	assert_int_equal(write(cfd, "ping", 4), 4);
	char b[8];
	struct timespec ts = {0, 1000000};
	ssize_t n;
	for (int i = 0; (n = read(afd, b, sizeof(b))) < 0 && i < 2000; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(n, 4);
	assert_memory_equal(b, "ping", 4);
	close(afd);
	close(cfd);
	vs_loop_fini(&l);
}

static void test_listen_ipv4(void **state)
{
	int fds[4];
	char err[256] = "";

	int n = vs_listen_tcp("127.0.0.1", NULL, 0, AF_INET, false, fds, 4, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_string_equal(err, ""); /* untouched on success */
	int fl = fcntl(fds[0], F_GETFL);
	assert_true(fl & O_NONBLOCK);
	assert_true(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	int port = local_port(fds[0]);
	assert_true(port > 0);
	connect_and_accept(fds[0], AF_INET, "127.0.0.1", port, "127.0.0.1:");

	/* the same port again without SO_REUSEPORT: in use */
	int fds2[1];
	n = vs_listen_tcp("127.0.0.1", NULL, port, AF_INET, false, fds2, 1, err, sizeof(err));
	assert_int_equal(n, -EADDRINUSE);
	char want[64];
	snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: ", port);
	assert_memory_equal(err, want, strlen(want));
	close(fds[0]);
}

/* The start-up probe binds without listening: it finds a taken port, and a client that
 * connects while it is open is refused rather than queued (and reset when it closes). */
static void test_listen_bind_only_probe(void **state)
{
	int a[1], p[1];
	char err[256];

	assert_int_equal(vs_listen_tcp("127.0.0.1", NULL, 0, AF_INET, VS_LISTEN_REUSEPORT, a, 1,
				       err, sizeof(err)),
			 1);
	int port = local_port(a[0]);
	assert_true(vs_listen_tcp("127.0.0.1", NULL, port, AF_INET, VS_LISTEN_BIND_ONLY, p, 1, err,
				  sizeof(err)) < 0);
	close(a[0]);

	assert_int_equal(vs_listen_tcp("127.0.0.1", NULL, 0, AF_INET, VS_LISTEN_BIND_ONLY, p, 1,
				       err, sizeof(err)),
			 1);
	port = local_port(p[0]);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	close(c);
	close(p[0]);
}

static void test_listen_reuseport(void **state)
{
	int a[1], b[1];
	char err[256];

	assert_int_equal(vs_listen_tcp("127.0.0.1", NULL, 0, AF_INET, VS_LISTEN_REUSEPORT, a, 1,
				       err, sizeof(err)),
			 1);
	int port = local_port(a[0]);
	/* a second worker's socket on the same address */
	assert_int_equal(vs_listen_tcp("127.0.0.1", NULL, port, AF_INET, VS_LISTEN_REUSEPORT, b, 1,
				       err, sizeof(err)),
			 1);
	assert_int_equal(local_port(b[0]), port);
	int one = 0;
	socklen_t ol = sizeof(one);
	assert_int_equal(getsockopt(b[0], SOL_SOCKET, SO_REUSEPORT, &one, &ol), 0);
	assert_int_equal(one, 1);
	close(a[0]);
	close(b[0]);
}

static void test_listen_ipv6(void **state)
{
	int fds[2];
	char err[256];

	int n = vs_listen_tcp("::1", NULL, 0, AF_INET6, false, fds, 2, err, sizeof(err));
	if (n < 0) {
		print_message("no IPv6 loopback (%s): skipped\n", err);
		skip();
	}
	assert_int_equal(n, 1);
	/* IPv6 sockets are v6-only, so an IPv4 socket can share the port */
	int v6only = 0;
	socklen_t ol = sizeof(v6only);
	assert_int_equal(getsockopt(fds[0], IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol), 0);
	assert_int_equal(v6only, 1);
	connect_and_accept(fds[0], AF_INET6, "::1", local_port(fds[0]), "[::1]:");
	close(fds[0]);
}

static void test_listen_any(void **state)
{
	/* All addresses, both families: one or two sockets; max bounds what is returned. */
	int fds[4];
	char err[256];

	int n = vs_listen_tcp(NULL, NULL, 0, AF_UNSPEC, false, fds, 4, err, sizeof(err));
	assert_true(n >= 1 && n <= 2);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	n = vs_listen_tcp("", NULL, 0, AF_UNSPEC, false, fds, 1, err, sizeof(err));
	assert_int_equal(n, 1);
	int port = local_port(fds[0]);
	connect_and_accept(fds[0], AF_INET, "127.0.0.1", port, "127.0.0.1:");
	close(fds[0]);
	n = vs_listen_tcp(NULL, NULL, 0, AF_INET, false, fds, 4, err, sizeof(err));
	assert_int_equal(n, 1);
	close(fds[0]);
}

static void test_listen_errors(void **state)
{
	int fds[2] = {-1, -1};
	char err[256];

	/* an address that does not parse for the family */
	int n = vs_listen_tcp("::1", NULL, 0, AF_INET, false, fds, 2, err, sizeof(err));
	assert_int_equal(n, -EINVAL);
	assert_memory_equal(err, "cannot resolve '::1': ", 22);
	/* an address this host does not have */
	n = vs_listen_tcp("192.0.2.1", NULL, 0, AF_INET, false, fds, 2, err, sizeof(err));
	assert_int_equal(n, -EADDRNOTAVAIL);
	assert_memory_equal(err, "cannot listen on 192.0.2.1:0: ", 30);
	/* ports outside 0..65535 are refused, not wrapped */
	n = vs_listen_tcp("127.0.0.1", NULL, 70000, AF_INET, false, fds, 2, err, sizeof(err));
	assert_int_equal(n, -EINVAL);
	assert_non_null(strstr(err, "70000"));
	n = vs_listen_tcp("127.0.0.1", NULL, -1, AF_INET, false, fds, 2, err, sizeof(err));
	assert_int_equal(n, -EINVAL);
	/* a tiny error buffer is still NUL-terminated */
	char small[8];
	n = vs_listen_tcp("192.0.2.1", NULL, 0, AF_INET, false, fds, 2, small, sizeof(small));
	assert_int_equal(n, -EADDRNOTAVAIL);
	assert_string_equal(small, "cannot ");
	assert_int_equal(fds[0], -1); /* nothing written on failure */
}

static void test_listen_interface(void **state)
{
	int fds[2] = {-1, -1};
	char err[256];

	/* SO_BINDTODEVICE needs CAP_NET_RAW on kernels before 5.7: skip without it. */
	int n = vs_listen_tcp("127.0.0.1", "lo", 0, AF_INET, false, fds, 2, err, sizeof(err));
	if (n == -EPERM) {
		print_message("SO_BINDTODEVICE not permitted (%s): skipped\n", err);
		skip();
	}
	assert_int_equal(n, 1);
	connect_and_accept(fds[0], AF_INET, "127.0.0.1", local_port(fds[0]), "127.0.0.1:");
	close(fds[0]);
	/* an interface that does not exist: the error names it */
	fds[0] = -1;
	n = vs_listen_tcp("127.0.0.1", "nosuchif9", 0, AF_INET, false, fds, 2, err, sizeof(err));
	assert_int_equal(n, -ENODEV);
	assert_non_null(strstr(err, "bind_interface 'nosuchif9'"));
	assert_int_equal(fds[0], -1);
}

/* ---------------------------------------------------------------- vs_addr_str */

static void addr4(struct sockaddr_in *a, const char *ip, int port)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
}

static void addr6(struct sockaddr_in6 *a, const char *ip, int port)
{
	memset(a, 0, sizeof(*a));
	a->sin6_family = AF_INET6;
	a->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
}

static void test_addr_str(void **state)
{
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	char out[64];

	addr4(&a4, "1.2.3.4", 5678);
	vs_addr_str((struct sockaddr *)&a4, out, sizeof(out));
	assert_string_equal(out, "1.2.3.4:5678");
	addr4(&a4, "0.0.0.0", 0);
	vs_addr_str((struct sockaddr *)&a4, out, sizeof(out));
	assert_string_equal(out, "0.0.0.0:0");
	addr4(&a4, "255.255.255.255", 65535);
	vs_addr_str((struct sockaddr *)&a4, out, sizeof(out));
	assert_string_equal(out, "255.255.255.255:65535");

	addr6(&a6, "::1", 5678);
	vs_addr_str((struct sockaddr *)&a6, out, sizeof(out));
	assert_string_equal(out, "[::1]:5678");
	addr6(&a6, "2001:db8::42", 1883);
	vs_addr_str((struct sockaddr *)&a6, out, sizeof(out));
	assert_string_equal(out, "[2001:db8::42]:1883");
	addr6(&a6, "::ffff:10.0.0.1", 80);
	vs_addr_str((struct sockaddr *)&a6, out, sizeof(out));
	assert_string_equal(out, "[::ffff:10.0.0.1]:80");
	/* the longest form fits a 64-byte buffer */
	addr6(&a6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	vs_addr_str((struct sockaddr *)&a6, out, sizeof(out));
	assert_string_equal(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

	vs_addr_str((struct sockaddr *)&un, out, sizeof(out));
	assert_string_equal(out, "unix");

	/* truncated to the buffer, always terminated */
	char small[6];
	addr4(&a4, "10.20.30.40", 1883);
	vs_addr_str((struct sockaddr *)&a4, small, sizeof(small));
	assert_string_equal(small, "10.20");
	addr6(&a6, "2001:db8::1", 1883);
	vs_addr_str((struct sockaddr *)&a6, small, sizeof(small));
	assert_string_equal(small, "[2001");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_loop_init_fini),
	    cmocka_unit_test(test_loop_add_dispatch),
	    cmocka_unit_test(test_loop_add_errors),
	    cmocka_unit_test(test_loop_mod_del),
	    cmocka_unit_test(test_loop_many_ready),
	    cmocka_unit_test(test_loop_timeout),
	    cmocka_unit_test(test_loop_wakeup_and_eintr),
	    cmocka_unit_test(test_listen_ipv4),
	    cmocka_unit_test(test_listen_reuseport),
	    cmocka_unit_test(test_listen_bind_only_probe),
	    cmocka_unit_test(test_listen_ipv6),
	    cmocka_unit_test(test_listen_any),
	    cmocka_unit_test(test_listen_errors),
	    cmocka_unit_test(test_listen_interface),
	    cmocka_unit_test(test_addr_str),
	};
	return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
