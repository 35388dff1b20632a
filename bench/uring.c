/*
 * io_uring against epoll for the broker's loop turn (issue 15), on loopback TCP.
 *
 * K client sockets (default 50), each with its server-side peer, and one subscriber pair. Each
 * round, the driver writes one MQTT-sized message (default 80 bytes) on each of B client sockets
 * (round-robin over the K), then the server runs one loop turn, then the driver drains the
 * acknowledgements and the subscriber's copy without blocking. Everything runs in one thread,
 * so that the turn always finds exactly B ready sockets (loopback delivers into the peer's
 * receive queue within the sender's send()) and no wake-up or scheduling is measured: the
 * figures compare the work of a turn, not the machine's load. A turn, in each mode:
 *
 *   epoll   epoll_wait (edge-triggered, timeout 0), one recv per ready socket, then at the end of
 *           the turn one send of a 4-byte acknowledgement per socket and one send of the B
 *           messages to the subscriber: the broker's design today (own_turn/end_turn).
 *   uring   one io_uring_enter per turn that submits the previous turn's sends and waits for
 *           the receives: multishot recv on every socket from a provided buffer ring, sends with
 *           MSG_DONTWAIT and IOSQE_CQE_SKIP_SUCCESS (only failures complete), ring set up with
 *           SINGLE_ISSUER | DEFER_TASKRUN so that the receive work runs inside that enter.
 *   usend   epoll_wait and recv as in epoll; the sends of the turn batched into one
 *           io_uring_submit (one io_uring_enter, no wait).
 *
 * Figures per message: "turn" is the wall time inside the turn (CLOCK_MONOTONIC, vDSO, on an
 * otherwise busy thread: its CPU time); "cpu" is the thread's whole CPU time (driver included,
 * the same in every mode, and any kernel work the mode shifts into the driver's system calls);
 * system calls of the turn are counted here (check against `perf stat -e raw_syscalls:sys_enter`
 * with -v, which also prints the driver's). Medians of R runs.
 *
 * Usage: bench_uring [-d seconds per run, default 2] [-r runs, default 3] [-k sockets, 50]
 *                    [-l message bytes, 80] [-n messages per driver write, 1]
 *                    [-m epoll|uring|usend] [-b batch] [-v]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXK	 256
#define NBUF	 1024 /* provided receive buffers (a power of two) */
#define BUFSZ	 2048 /* bytes each */
#define SEND_TAG (1ULL << 32)

enum mode { M_EPOLL, M_URING, M_USEND, M_COUNT };
static const char *const mode_name[M_COUNT] = {"epoll", "uring", "usend"};

struct conn {
	int fd;		     /* server side */
	int cli;	     /* client side (the driver's) */
	uint8_t out[4 * 64]; /* acknowledgements: up to 64 per turn */
	size_t outlen;
	bool dirty;
};

struct bench {
	enum mode mode;
	int k, b, msglen, per_write; /* per_write: messages in one driver send() */
	struct conn c[MAXK];
	int sub_fd, sub_cli; /* subscriber: server side, client side */
	uint8_t *subout;
	size_t suboutlen, subcap;
	struct conn *dirty[MAXK];
	int ndirty;
	int ep;
	struct io_uring ring;
	bool ring_up;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	uint64_t turn_calls, driver_calls, msgs, turns, ready, errors;
	double turn_ns;
};

struct result {
	double msg_s, turn_ns, cpu_ns, sys_ns, calls, ready;
};

static double mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double sys_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_stime.tv_sec * 1e9 + (double)ru.ru_stime.tv_usec * 1e3;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_uring: %s: %s\n", what, strerror(err));
	exit(1);
}

static void tcp_pair(int lfd, const struct sockaddr_in *sa, int *srv, int *cli)
{
	int one = 1;
	*cli = socket(AF_INET, SOCK_STREAM, 0);
	if (*cli < 0 || connect(*cli, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		die("connect", errno);
	*srv = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	if (*srv < 0)
		die("accept", errno);
	setsockopt(*cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void add_sub(struct bench *bn, const uint8_t *p, size_t n)
{
	if (bn->suboutlen + n > bn->subcap) {
		bn->subcap = (bn->suboutlen + n) * 2;
		bn->subout = realloc(bn->subout, bn->subcap);
		if (!bn->subout)
			die("realloc", ENOMEM);
	}
	memcpy(bn->subout + bn->suboutlen, p, n);
	bn->suboutlen += n;
}

/* What the broker does with input: one acknowledgement per message on its connection, the
 * message itself to the subscriber. */
static void handle(struct bench *bn, struct conn *c, const uint8_t *p, size_t n)
{
	static const uint8_t puback[4] = {0x40, 0x02, 0x00, 0x01};
	size_t m = n / (size_t)bn->msglen;
	for (size_t i = 0; i < m && c->outlen + 4 <= sizeof(c->out); i++) {
		memcpy(c->out + c->outlen, puback, 4);
		c->outlen += 4;
	}
	if (!c->dirty) {
		c->dirty = true;
		bn->dirty[bn->ndirty++] = c;
	}
	add_sub(bn, p, n);
	bn->msgs += m;
}

static void flush_plain(struct bench *bn)
{
	for (int i = 0; i < bn->ndirty; i++) {
		struct conn *c = bn->dirty[i];
		ssize_t r = send(c->fd, c->out, c->outlen, MSG_DONTWAIT);
		bn->turn_calls++;
		if (r != (ssize_t)c->outlen)
			bn->errors++;
		c->outlen = 0;
		c->dirty = false;
	}
	bn->ndirty = 0;
	if (bn->suboutlen) {
		ssize_t r = send(bn->sub_fd, bn->subout, bn->suboutlen, MSG_DONTWAIT);
		bn->turn_calls++;
		if (r != (ssize_t)bn->suboutlen)
			bn->errors++;
		bn->suboutlen = 0;
	}
}

/* Queues the sends of the turn as SQEs; only failures complete (IOSQE_CQE_SKIP_SUCCESS). */
static void queue_sends(struct bench *bn)
{
	for (int i = 0; i < bn->ndirty; i++) {
		struct conn *c = bn->dirty[i];
		struct io_uring_sqe *sqe = io_uring_get_sqe(&bn->ring);
		if (!sqe)
			die("sq full", ENOSPC);
		io_uring_prep_send(sqe, c->fd, c->out, c->outlen, MSG_DONTWAIT);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, SEND_TAG | (uint64_t)(c - bn->c));
	}
	if (bn->suboutlen) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&bn->ring);
		if (!sqe)
			die("sq full", ENOSPC);
		io_uring_prep_send(sqe, bn->sub_fd, bn->subout, bn->suboutlen, MSG_DONTWAIT);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, SEND_TAG | MAXK);
	}
}

/* After the enter that carried them, the send buffers are free again (MSG_DONTWAIT sends run
 * inline: done or failed, never parked). */
static void sends_done(struct bench *bn)
{
	for (int i = 0; i < bn->ndirty; i++) {
		bn->dirty[i]->outlen = 0;
		bn->dirty[i]->dirty = false;
	}
	bn->ndirty = 0;
	bn->suboutlen = 0;
}

static void arm_recv(struct bench *bn, int i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&bn->ring);
	if (!sqe)
		die("sq full", ENOSPC);
	io_uring_prep_recv_multishot(sqe, bn->c[i].fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, (uint64_t)i);
}

static void turn_epoll_recv(struct bench *bn)
{
	struct epoll_event ev[MAXK];
	uint8_t buf[4096];
	int n = epoll_wait(bn->ep, ev, MAXK, 0);
	bn->turn_calls++;
	for (int i = 0; i < n; i++) {
		struct conn *c = ev[i].data.ptr;
		ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
		bn->turn_calls++;
		if (r > 0)
			handle(bn, c, buf, (size_t)r);
		else
			bn->errors++;
	}
	bn->ready += n > 0 ? (uint64_t)n : 0;
}

static void turn_uring(struct bench *bn)
{
	int r = io_uring_submit_and_wait(&bn->ring, 1);
	bn->turn_calls++;
	if (r < 0)
		die("io_uring_submit_and_wait", -r);
	sends_done(bn);
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0, bufs = 0;
	int rearm[MAXK], nrearm = 0;
	io_uring_for_each_cqe(&bn->ring, head, cqe)
	{
		seen++;
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		if (ud & SEND_TAG) {
			bn->errors++; /* a send failed or was short */
			continue;
		}
		if (!(cqe->flags & IORING_CQE_F_MORE))
			rearm[nrearm++] = (int)ud;
		if (cqe->res <= 0) {
			if (cqe->res != -ENOBUFS)
				bn->errors++;
			continue;
		}
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		handle(bn, &bn->c[ud], bn->bufs + (size_t)bid * BUFSZ, (size_t)cqe->res);
		bn->ready++;
		io_uring_buf_ring_add(bn->br, bn->bufs + (size_t)bid * BUFSZ, BUFSZ,
				      (unsigned short)bid, io_uring_buf_ring_mask(NBUF),
				      (int)bufs++);
	}
	io_uring_buf_ring_advance(bn->br, (int)bufs);
	io_uring_cq_advance(&bn->ring, seen);
	for (int i = 0; i < nrearm; i++)
		arm_recv(bn, rearm[i]);
	queue_sends(bn); /* submitted by the next turn's enter */
}

static void turn_usend(struct bench *bn)
{
	turn_epoll_recv(bn);
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&bn->ring, head, cqe)
	{
		seen++;
		bn->errors++; /* only failed sends complete */
	}
	io_uring_cq_advance(&bn->ring, seen);
	queue_sends(bn);
	int r = io_uring_submit(&bn->ring);
	bn->turn_calls++;
	if (r < 0)
		die("io_uring_submit", -r);
	sends_done(bn);
}

static void setup(struct bench *bn)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 512) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		die("listen", errno);
	for (int i = 0; i < bn->k; i++)
		tcp_pair(lfd, &sa, &bn->c[i].fd, &bn->c[i].cli);
	tcp_pair(lfd, &sa, &bn->sub_fd, &bn->sub_cli);
	close(lfd);

	bn->ep = -1;
	if (bn->mode != M_URING) {
		bn->ep = epoll_create1(0);
		for (int i = 0; i < bn->k; i++) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
						 .data.ptr = &bn->c[i]};
			if (epoll_ctl(bn->ep, EPOLL_CTL_ADD, bn->c[i].fd, &ev) < 0)
				die("epoll_ctl", errno);
		}
	}
	if (bn->mode == M_EPOLL)
		return;
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER};
	if (bn->mode == M_URING)
		p.flags |= IORING_SETUP_DEFER_TASKRUN;
	int r = io_uring_queue_init_params(512, &bn->ring, &p);
	if (r < 0)
		die("io_uring_queue_init", -r);
	bn->ring_up = true;
	if (bn->mode != M_URING)
		return;
	bn->br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bn->bufs = malloc((size_t)NBUF * BUFSZ);
	if (bn->br == MAP_FAILED || !bn->bufs)
		die("buffers", ENOMEM);
	struct io_uring_buf_reg reg = {
	    .ring_addr = (uint64_t)(uintptr_t)bn->br, .ring_entries = NBUF, .bgid = 0};
	r = io_uring_register_buf_ring(&bn->ring, &reg, 0);
	if (r < 0)
		die("io_uring_register_buf_ring", -r);
	io_uring_buf_ring_init(bn->br);
	for (int i = 0; i < NBUF; i++)
		io_uring_buf_ring_add(bn->br, bn->bufs + (size_t)i * BUFSZ, BUFSZ,
				      (unsigned short)i, io_uring_buf_ring_mask(NBUF), i);
	io_uring_buf_ring_advance(bn->br, NBUF);
	for (int i = 0; i < bn->k; i++)
		arm_recv(bn, i);
	r = io_uring_submit(&bn->ring);
	if (r < 0)
		die("io_uring_submit", -r);
}

static void teardown(struct bench *bn)
{
	if (bn->ring_up)
		io_uring_queue_exit(&bn->ring);
	if (bn->br)
		munmap(bn->br, NBUF * sizeof(struct io_uring_buf));
	free(bn->bufs);
	free(bn->subout);
	if (bn->ep >= 0)
		close(bn->ep);
	for (int i = 0; i < bn->k; i++) {
		close(bn->c[i].fd);
		close(bn->c[i].cli);
	}
	close(bn->sub_fd);
	close(bn->sub_cli);
}

/* One round: B messages in, one turn, drain what came back. */
static void round_once(struct bench *bn, int *rr, const uint8_t *msg)
{
	uint8_t sink[65536];
	int first = *rr;
	for (int i = 0; i < bn->b; i++) {
		struct conn *c = &bn->c[(first + i) % bn->k];
		ssize_t len = (ssize_t)bn->msglen * bn->per_write;
		if (send(c->cli, msg, (size_t)len, 0) != len)
			die("driver send", errno);
		bn->driver_calls++;
	}
	*rr = (first + bn->b) % bn->k;
	double t0 = mono_ns();
	if (bn->mode == M_EPOLL) {
		turn_epoll_recv(bn);
		flush_plain(bn);
	} else if (bn->mode == M_URING) {
		turn_uring(bn);
	} else {
		turn_usend(bn);
	}
	bn->turn_ns += mono_ns() - t0;
	bn->turns++;
	/* Acknowledgements: the uring mode sends a turn's output at the next turn's enter, so in
	 * every mode the driver reads the sockets it wrote to in the round before this one (the
	 * same number of system calls in every mode). */
	for (int i = 0; i < bn->b; i++) {
		struct conn *c = &bn->c[(first - bn->b + i + 2 * bn->k) % bn->k];
		(void)!recv(c->cli, sink, sizeof(sink), MSG_DONTWAIT);
		bn->driver_calls++;
	}
	while (recv(bn->sub_cli, sink, sizeof(sink), MSG_DONTWAIT) == (ssize_t)sizeof(sink))
		bn->driver_calls++;
	bn->driver_calls++;
}

static struct result run(enum mode mode, int k, int b, int msglen, int per_write, double secs,
			 bool verbose)
{
	static struct bench bn;
	memset(&bn, 0, sizeof(bn));
	bn.mode = mode;
	bn.k = k;
	bn.b = b;
	bn.msglen = msglen;
	bn.per_write = per_write;
	setup(&bn);
	uint8_t msg[256 * 64];
	memset(msg, 'x', sizeof(msg));
	msg[0] = 0x32; /* a QoS 1 PUBLISH header, for looks */
	int rr = 0;
	for (int i = 0; i < 2000; i++) /* warm-up */
		round_once(&bn, &rr, msg);
	bn.turn_calls = bn.driver_calls = bn.msgs = bn.turns = bn.ready = bn.errors = 0;
	bn.turn_ns = 0;
	double w0 = mono_ns(), c0 = cpu_ns(), s0 = sys_ns();
	double end = w0 + secs * 1e9;
	for (uint64_t n = 0;; n++) {
		round_once(&bn, &rr, msg);
		if ((n & 255) == 0 && mono_ns() >= end)
			break;
	}
	double wall = mono_ns() - w0, cpu = cpu_ns() - c0, sys = sys_ns() - s0;
	if (bn.errors)
		fprintf(stderr, "bench_uring: %s b=%d: %llu failed or short operations\n",
			mode_name[mode], b, (unsigned long long)bn.errors);
	if (verbose)
		fprintf(stderr,
			"%s b=%d: %llu msgs, %llu turns, turn calls %llu, driver calls %llu, "
			"cpu %.3f s (sys %.3f s), wall %.3f s\n",
			mode_name[mode], b, (unsigned long long)bn.msgs,
			(unsigned long long)bn.turns, (unsigned long long)bn.turn_calls,
			(unsigned long long)bn.driver_calls, cpu / 1e9, sys / 1e9, wall / 1e9);
	double m = bn.msgs ? (double)bn.msgs : 1;
	struct result res = {.msg_s = m / (wall / 1e9),
			     .turn_ns = bn.turn_ns / m,
			     .cpu_ns = cpu / m,
			     .sys_ns = sys / m,
			     .calls = (double)bn.turn_calls / m,
			     .ready = (double)bn.ready / (double)(bn.turns ? bn.turns : 1)};
	teardown(&bn);
	return res;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	double secs = 2;
	int reps = 3, k = 50, msglen = 80, per_write = 1, only_b = 0, opt;
	int only_mode = -1;
	bool verbose = false;
	while ((opt = getopt(argc, argv, "d:r:k:l:n:m:b:v")) != -1) {
		switch (opt) {
		case 'd':
			secs = atof(optarg);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'k':
			k = atoi(optarg);
			break;
		case 'l':
			msglen = atoi(optarg);
			break;
		case 'n':
			per_write = atoi(optarg);
			break;
		case 'b':
			only_b = atoi(optarg);
			break;
		case 'v':
			verbose = true;
			break;
		case 'm':
			for (int m = 0; m < M_COUNT; m++)
				if (!strcmp(optarg, mode_name[m]))
					only_mode = m;
			if (only_mode < 0) {
				fprintf(stderr, "bench_uring: unknown mode %s\n", optarg);
				return 2;
			}
			break;
		default:
			fprintf(stderr,
				"usage: bench_uring [-d secs] [-r runs] [-k sockets] [-l bytes] "
				"[-n per write] [-m epoll|uring|usend] [-b batch] [-v]\n");
			return 2;
		}
	}
	if (k < 1 || k > MAXK || msglen < 16 || msglen > 256 || per_write < 1 || per_write > 64 ||
	    reps < 1 || reps > 99) {
		fprintf(stderr, "bench_uring: -k 1..%d, -l 16..256, -n 1..64, -r 1..99\n", MAXK);
		return 2;
	}
	int batches[] = {1, 4, 16, 50};
	int nb = 4;
	if (only_b > 0) {
		batches[0] = only_b < k ? only_b : k;
		nb = 1;
	}
	printf("%d sockets, %d-byte messages, %d per write, %d run(s) of %.1f s, medians; per "
	       "message:\n",
	       k, msglen, per_write, reps, secs);
	printf(
	    "| batch | mode | ready/turn | turn ns/msg | turn syscalls/msg | thread CPU ns/msg | "
	    "of which sys | msg/s |\n|---|---|---|---|---|---|---|---|\n");
	for (int bi = 0; bi < nb; bi++) {
		for (int m = 0; m < M_COUNT; m++) {
			if (only_mode >= 0 && m != only_mode)
				continue;
			double v[6][99];
			for (int r = 0; r < reps; r++) {
				struct result x =
				    run((enum mode)m, k, batches[bi] < k ? batches[bi] : k, msglen,
					per_write, secs, verbose);
				v[0][r] = x.ready;
				v[1][r] = x.turn_ns;
				v[2][r] = x.calls;
				v[3][r] = x.cpu_ns;
				v[4][r] = x.sys_ns;
				v[5][r] = x.msg_s;
			}
			printf("| %d | %s | %.1f | %.0f | %.3f | %.0f | %.0f | %.0f |\n",
			       batches[bi], mode_name[m], median(v[0], reps), median(v[1], reps),
			       median(v[2], reps), median(v[3], reps), median(v[4], reps),
			       median(v[5], reps));
			fflush(stdout);
		}
	}
	return 0;
}
