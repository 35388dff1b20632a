/*
 * MQTT-SN load: N publisher/subscriber pairs of MQTT-SN clients over UDP, one topic each
 * (PREFIX/<i>, a NORMAL topic id REGISTERed by the publisher), through a broker's mqttsn
 * listener. The same shape as `viesti bench pairs`, for comparing MQTT-SN with MQTT over TCP.
 *
 *   bench_sn_load -p PORT [-n PAIRS] [-q 0|1] [-d SECONDS] [-s BYTES] [-w WINDOW]
 *
 * Each publisher keeps at most WINDOW messages that its subscriber has not received yet (QoS 1:
 * and at most one awaiting its PUBACK, as MQTT-SN has it), so the figure is what the gateway
 * sustains, not how fast a UDP socket can drop. The payload carries the send time; latency is
 * measured at the subscriber. Prints messages/s, p50 and p99 latency, and lost messages.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "codec/sn.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct pair {
	int pub, sub; /* connected UDP sockets */
	uint16_t tid; /* the publisher's topic id */
	uint16_t next_id;
	uint64_t sent, got; /* messages */
	bool waiting_ack;   /* QoS 1: a PUBLISH awaits its PUBACK */
	int64_t ack_sent_ns;
};

static int qos = 0, window = 8, size = 64;
static int64_t *lat;
static size_t n_lat, cap_lat;

static int udp_to(int port)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int buf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("udp");
		exit(1);
	}
	return fd;
}

static void send_pkt(int fd, const struct vs_sn_packet *p)
{
	uint8_t buf[VS_SN_MAX_MESSAGE];
	ssize_t n = vs_sn_encode(p, buf, sizeof(buf));
	if (n > 0)
		(void)send(fd, buf, (size_t)n, 0);
}

/* Waits up to 3 s for a message of type on fd (answering REGISTER on the way). */
static int wait_for(int fd, int type, struct vs_sn_packet *out, uint8_t *buf)
{
	int64_t end = now_ns() + 3000000000LL;
	while (now_ns() < end) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, buf, VS_SN_MAX_MESSAGE, 0);
		if (n <= 0 || vs_sn_decode(buf, (size_t)n, out, NULL) < 0)
			continue;
		if (out->type == type)
			return 0;
	}
	return -1;
}

static void on_sub(struct pair *p, const struct vs_sn_packet *m)
{
	if (m->type == VS_SN_REGISTER) {
		struct vs_sn_packet a = {
		    .type = VS_SN_REGACK, .topic_id = m->topic_id, .msg_id = m->msg_id};
		send_pkt(p->sub, &a);
		return;
	}
	if (m->type != VS_SN_PUBLISH)
		return;
	if (vs_sn_qos(m->flags) == 1) {
		struct vs_sn_packet a = {
		    .type = VS_SN_PUBACK, .topic_id = m->topic_id, .msg_id = m->msg_id};
		send_pkt(p->sub, &a);
	}
	if (m->flags & VS_SN_DUP)
		return;
	p->got++;
	int64_t t;
	if (m->data.len >= sizeof(t)) {
		memcpy(&t, m->data.p, sizeof(t));
		if (n_lat == cap_lat) {
			cap_lat = cap_lat ? cap_lat * 2 : 1 << 16;
			lat = realloc(lat, cap_lat * sizeof(*lat));
		}
		lat[n_lat++] = now_ns() - t;
	}
}

static void publish(struct pair *p)
{
	uint8_t payload[65536];
	memset(payload, 'x', (size_t)size);
	int64_t t = now_ns();
	memcpy(payload, &t, sizeof(t));
	struct vs_sn_packet m = {.type = VS_SN_PUBLISH,
				 .topic_id = p->tid,
				 .flags = vs_sn_qos_flags(qos),
				 .data = {payload, (size_t)size}};
	if (qos > 0) {
		p->next_id = p->next_id == 0xFFFF ? 1 : p->next_id + 1;
		m.msg_id = p->next_id;
		p->waiting_ack = true;
		p->ack_sent_ns = t;
	}
	send_pkt(p->pub, &m);
	p->sent++;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int port = 0, n = 10, dur = 5;
	int opt;
	while ((opt = getopt(argc, argv, "p:n:q:d:s:w:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 'q':
			qos = atoi(optarg);
			break;
		case 'd':
			dur = atoi(optarg);
			break;
		case 's':
			size = atoi(optarg);
			break;
		case 'w':
			window = atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s -p PORT [-n PAIRS] [-q 0|1] [-d SEC] [-s BYTES] "
				"[-w WINDOW]\n",
				argv[0]);
			return 2;
		}
	}
	if (!port || n < 1 || size < 8 || size > 60000 || qos < 0 || qos > 1) {
		fprintf(stderr, "need -p PORT; -q 0 or 1; -s 8..60000\n");
		return 2;
	}
	struct pair *pairs = calloc((size_t)n, sizeof(*pairs));
	static uint8_t buf[VS_SN_MAX_MESSAGE];
	int ep = epoll_create1(0);
	for (int i = 0; i < n; i++) {
		struct pair *p = &pairs[i];
		p->pub = udp_to(port);
		p->sub = udp_to(port);
		char id[32], topic[32];
		struct vs_sn_packet r;
		for (int k = 0; k < 2; k++) {
			int fd = k ? p->sub : p->pub;
			snprintf(id, sizeof(id), "snb-%c-%d-%d", k ? 's' : 'p', i, (int)getpid());
			struct vs_sn_packet c = {.type = VS_SN_CONNECT,
						 .flags = VS_SN_CLEAN,
						 .protocol = 1,
						 .duration = 60,
						 .data = {(const uint8_t *)id, strlen(id)}};
			send_pkt(fd, &c);
			if (wait_for(fd, VS_SN_CONNACK, &r, buf) < 0 || r.rc) {
				fprintf(stderr, "client %s: no CONNACK\n", id);
				return 1;
			}
		}
		snprintf(topic, sizeof(topic), "snbench/%d", i);
		struct vs_sn_packet s = {.type = VS_SN_SUBSCRIBE,
					 .flags = vs_sn_qos_flags(qos),
					 .msg_id = 1,
					 .data = {(const uint8_t *)topic, strlen(topic)}};
		send_pkt(p->sub, &s);
		if (wait_for(p->sub, VS_SN_SUBACK, &r, buf) < 0) {
			fprintf(stderr, "no SUBACK\n");
			return 1;
		}
		struct vs_sn_packet g = {.type = VS_SN_REGISTER,
					 .msg_id = 1,
					 .data = {(const uint8_t *)topic, strlen(topic)}};
		send_pkt(p->pub, &g);
		if (wait_for(p->pub, VS_SN_REGACK, &r, buf) < 0 || r.rc) {
			fprintf(stderr, "no REGACK\n");
			return 1;
		}
		p->tid = r.topic_id;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i * 2};
		epoll_ctl(ep, EPOLL_CTL_ADD, p->pub, &ev);
		ev.data.u64 = (uint64_t)i * 2 + 1;
		epoll_ctl(ep, EPOLL_CTL_ADD, p->sub, &ev);
	}
	int64_t start = now_ns(), end = start + (int64_t)dur * 1000000000LL;
	uint64_t lost_acks = 0;
	while (now_ns() < end) {
		for (int i = 0; i < n; i++) {
			struct pair *p = &pairs[i];
			if (qos > 0 && p->waiting_ack && now_ns() - p->ack_sent_ns > 500000000LL) {
				p->waiting_ack = false; /* lost: go on (counted) */
				lost_acks++;
			}
			while (p->sent - p->got < (uint64_t)window && !(qos > 0 && p->waiting_ack))
				publish(p);
		}
		struct epoll_event evs[256];
		int k = epoll_wait(ep, evs, 256, 10);
		for (int e = 0; e < k; e++) {
			struct pair *p = &pairs[evs[e].data.u64 / 2];
			bool sub = evs[e].data.u64 & 1;
			for (int r = 0; r < 64; r++) {
				ssize_t len = recv(sub ? p->sub : p->pub, buf, sizeof(buf), 0);
				struct vs_sn_packet m;
				if (len <= 0)
					break;
				if (vs_sn_decode(buf, (size_t)len, &m, NULL) < 0)
					continue;
				if (sub)
					on_sub(p, &m);
				else if (m.type == VS_SN_PUBACK && m.msg_id == p->next_id)
					p->waiting_ack = false;
			}
		}
		/* A publisher whose window stays full (a lost QoS 0 message) starts over. */
		for (int i = 0; i < n; i++) {
			struct pair *p = &pairs[i];
			if (p->sent - p->got >= (uint64_t)window && qos == 0 && n_lat &&
			    now_ns() - start > 0) {
				static int64_t stuck_since[65536];
				int64_t t = now_ns();
				if (!stuck_since[i % 65536])
					stuck_since[i % 65536] = t;
				else if (t - stuck_since[i % 65536] > 200000000LL) {
					p->got = p->sent; /* forget what was lost */
					stuck_since[i % 65536] = 0;
				}
			}
		}
	}
	double secs = (double)(now_ns() - start) / 1e9;
	uint64_t sent = 0;
	for (int i = 0; i < n; i++)
		sent += pairs[i].sent;
	qsort(lat, n_lat, sizeof(*lat), cmp);
	double p50 = n_lat ? (double)lat[n_lat / 2] / 1e6 : 0;
	double p99 = n_lat ? (double)lat[n_lat * 99 / 100] / 1e6 : 0;
	printf("pairs %d qos %d size %d window %d: sent %llu received %zu in %.1f s: "
	       "%.0f msg/s received, p50 %.3f ms, p99 %.3f ms, lost acks %llu\n",
	       n, qos, size, window, (unsigned long long)sent, n_lat, secs, (double)n_lat / secs,
	       p50, p99, (unsigned long long)lost_acks);
	return 0;
}
