/*
 * Unit tests for libviesti's MQTT-SN client (src/client/sn.c) against a fake gateway: a UDP
 * socket on the loopback, driven by a script on its own thread, while the test's thread makes
 * the client's blocking calls. The script expects datagrams one by one and answers them by
 * hand, so every test reads as the dialogue of MQTT-SN 1.2 it checks. A script cannot use
 * cmocka's asserts (they jump out of the main thread's stack): it records its first failure,
 * which gw_join() asserts is empty.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "codec/sn.h"
#include "viesti.h"

/* ---- The fake gateway ------------------------------------------------------------------- */

struct gw {
	int fd;
	int port;
	int family;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	pthread_t thread;
	void (*script)(struct gw *g);
	char err[512]; /* the script's first failure, "" while all is well */
	uint8_t buf[65536];
	int64_t last_ms; /* when the last datagram arrived */
};

static void gw_fail(struct gw *g, const char *fmt, ...)
{
	if (g->err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->err, sizeof(g->err), fmt, ap);
	va_end(ap);
}

/* In a script: records the failure and ends the script. */
#define CHECK(g, cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			gw_fail((g), "%s:%d: %s", __FILE__, __LINE__, #cond);                      \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Receives the next datagram (up to timeout_ms) and decodes it into *p (views into g->buf).
 * Returns its type, 0 on timeout, -1 when malformed. */
static int gw_recv(struct gw *g, struct vs_sn_packet *p, int timeout_ms)
{
	struct pollfd pfd = {.fd = g->fd, .events = POLLIN};
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	g->peer_len = sizeof(g->peer);
	ssize_t n =
	    recvfrom(g->fd, g->buf, sizeof(g->buf), 0, (struct sockaddr *)&g->peer, &g->peer_len);
	if (n < 0)
		return 0;
	g->last_ms = vs_now_ms();
	const char *why = "";
	if (vs_sn_decode(g->buf, (size_t)n, p, &why) < 0) {
		gw_fail(g, "malformed datagram from the client: %s", why);
		return -1;
	}
	return p->type;
}

/* Expects a datagram of `type` within 5 s. */
static bool gw_expect(struct gw *g, int type, struct vs_sn_packet *p)
{
	int got = gw_recv(g, p, 5000);
	if (got != type) {
		gw_fail(g, "expected %s, got %s", vs_sn_type_name(type),
			got > 0 ? vs_sn_type_name(got) : "nothing");
		return false;
	}
	return true;
}

/* Expects silence for ms. */
static bool gw_quiet(struct gw *g, int ms)
{
	struct vs_sn_packet p;
	int got = gw_recv(g, &p, ms);
	if (got != 0) {
		gw_fail(g, "expected nothing, got %s", vs_sn_type_name(got));
		return false;
	}
	return true;
}

static void gw_send(struct gw *g, const struct vs_sn_packet *p)
{
	uint8_t out[1024];
	ssize_t n = vs_sn_encode(p, out, sizeof(out));
	if (n < 0) {
		gw_fail(g, "cannot encode %s", vs_sn_type_name(p->type));
		return;
	}
	sendto(g->fd, out, (size_t)n, 0, (struct sockaddr *)&g->peer, g->peer_len);
}

static void gw_ack(struct gw *g, uint8_t type, uint16_t topic_id, uint16_t msg_id, uint8_t rc)
{
	struct vs_sn_packet p = {.type = type, .topic_id = topic_id, .msg_id = msg_id, .rc = rc};
	gw_send(g, &p);
}

static void gw_publish(struct gw *g, uint8_t flags, uint16_t topic_id, uint16_t msg_id,
		       const char *payload)
{
	struct vs_sn_packet p = {
	    .type = VS_SN_PUBLISH, .flags = flags, .topic_id = topic_id, .msg_id = msg_id};
	p.data = (struct vs_buf){(const uint8_t *)payload, strlen(payload)};
	gw_send(g, &p);
}

static bool data_is(const struct vs_sn_packet *p, const char *s)
{
	return p->data.len == strlen(s) && memcmp(p->data.p, s, p->data.len) == 0;
}

/* CONNECT -> CONNACK accepted. */
static bool gw_accept(struct gw *g)
{
	struct vs_sn_packet p;
	if (!gw_expect(g, VS_SN_CONNECT, &p))
		return false;
	gw_ack(g, VS_SN_CONNACK, 0, 0, VS_SN_RC_ACCEPTED);
	return true;
}

static void *gw_main(void *arg)
{
	struct gw *g = arg;
	g->script(g);
	return NULL;
}

/* Opens the gateway's socket on the loopback (family AF_INET or AF_INET6) and starts the
 * script. Returns false when the family is not available. */
static bool gw_start_family(struct gw *g, int family, void (*script)(struct gw *g))
{
	memset(g, 0, sizeof(*g));
	g->script = script;
	g->family = family;
	g->fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (g->fd < 0)
		return false;
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	}
	if (bind(g->fd, (struct sockaddr *)&ss, len) < 0) {
		close(g->fd);
		return false;
	}
	getsockname(g->fd, (struct sockaddr *)&ss, &len);
	g->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					   : ((struct sockaddr_in *)&ss)->sin_port);
	assert_int_equal(pthread_create(&g->thread, NULL, gw_main, g), 0);
	return true;
}

static void gw_start(struct gw *g, void (*script)(struct gw *g))
{
	assert_true(gw_start_family(g, AF_INET, script));
}

static void gw_join(struct gw *g)
{
	pthread_join(g->thread, NULL);
	close(g->fd);
	assert_string_equal(g->err, "");
}

/* ---- The client ------------------------------------------------------------------------- */

static void opts_for(struct viesti_sn_options *o, const struct gw *g)
{
	viesti_sn_options_init(o);
	o->host = g->family == AF_INET6 ? "::1" : "127.0.0.1";
	o->port = g->port;
	o->client_id = "cid";
	o->keepalive = 0;
	o->retry_ms = 300;
	o->retry_count = 3;
}

static struct viesti_sn *client_for(const struct gw *g)
{
	struct viesti_sn_options o;
	opts_for(&o, g);
	int err;
	struct viesti_sn *c = viesti_sn_new(&o, &err);
	assert_non_null(c);
	assert_int_equal(err, 0);
	return c;
}

/* ---- Connecting ------------------------------------------------------------------------- */

static void script_will(struct gw *g)
{
	struct vs_sn_packet p;
	/* [6.3] CONNECT with the Will flag, then WILLTOPICREQ / WILLTOPIC / WILLMSGREQ /
	 * WILLMSG / CONNACK. */
	CHECK(g, gw_expect(g, VS_SN_CONNECT, &p));
	CHECK(g, p.flags == (VS_SN_WILL | VS_SN_CLEAN) && p.protocol == 1 && p.duration == 30);
	CHECK(g, data_is(&p, "cid"));
	struct vs_sn_packet q = {.type = VS_SN_WILLTOPICREQ};
	gw_send(g, &q);
	CHECK(g, gw_expect(g, VS_SN_WILLTOPIC, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(1) | VS_SN_RETAIN) && data_is(&p, "w/t"));
	/* The WILLMSGREQ is "lost": the client starts over with CONNECT after Tretry. */
	int64_t t0 = vs_now_ms();
	CHECK(g, gw_expect(g, VS_SN_CONNECT, &p));
	CHECK(g, vs_now_ms() - t0 >= 250);
	gw_send(g, &q);
	CHECK(g, gw_expect(g, VS_SN_WILLTOPIC, &p));
	q.type = VS_SN_WILLMSGREQ;
	gw_send(g, &q);
	CHECK(g, gw_expect(g, VS_SN_WILLMSG, &p));
	CHECK(g, data_is(&p, "bye"));
	gw_ack(g, VS_SN_CONNACK, 0, 0, VS_SN_RC_ACCEPTED);
	/* Connecting again: refused this time. */
	CHECK(g, gw_expect(g, VS_SN_CONNECT, &p));
	q.type = VS_SN_WILLTOPICREQ;
	gw_send(g, &q);
	CHECK(g, gw_expect(g, VS_SN_WILLTOPIC, &p));
	q.type = VS_SN_WILLMSGREQ;
	gw_send(g, &q);
	CHECK(g, gw_expect(g, VS_SN_WILLMSG, &p));
	gw_ack(g, VS_SN_CONNACK, 0, 0, VS_SN_RC_CONGESTION);
}

static void test_connect_will_dialogue(void **state)
{
	struct gw g;
	gw_start(&g, script_will);
	struct viesti_sn_options o;
	opts_for(&o, &g);
	o.keepalive = 30;
	o.will_topic = "w/t";
	o.will_payload = "bye";
	o.will_payload_len = 3;
	o.will_qos = 1;
	o.will_retain = true;
	struct viesti_sn *c = viesti_sn_new(&o, NULL);
	assert_non_null(c);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_DISCONNECTED);
	assert_int_equal(viesti_sn_connect(c, 5000), VIESTI_SN_ACCEPTED);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_ACTIVE);
	assert_int_equal(viesti_sn_connect(c, 5000), VIESTI_SN_CONGESTION);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_DISCONNECTED);
	gw_join(&g);
	viesti_sn_free(c);
}

static void test_connect_refused_port(void **state)
{
	/* Nobody listens: the loopback answers with ICMP port unreachable. */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	struct viesti_sn_options o;
	viesti_sn_options_init(&o);
	o.host = "127.0.0.1";
	o.port = ntohs(a.sin_port);
	o.retry_ms = 200;
	o.retry_count = 1;
	struct viesti_sn *c = viesti_sn_new(&o, NULL);
	assert_non_null(c);
	assert_int_equal(strncmp(viesti_sn_client_id(c), "viesti-sn-", 10), 0);
	assert_true(strlen(viesti_sn_client_id(c)) <= 23);
	int rc = viesti_sn_connect(c, 3000);
	/* -ETIMEDOUT where the network stack drops the ICMP error */
	assert_true(rc == -ECONNREFUSED || rc == -ETIMEDOUT);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_DISCONNECTED);
	viesti_sn_free(c);
}

static void test_options(void **state)
{
	struct viesti_sn_options o;
	viesti_sn_options_init(&o);
	assert_int_equal(o.port, 1884);
	assert_int_equal(o.retry_ms, 10000);
	assert_int_equal(o.retry_count, 5);
	assert_int_equal(o.keepalive, 60);
	assert_true(o.clean);
	int err = 0;
	o.host = "127.0.0.1";
	o.will_topic = "a/#";
	assert_null(viesti_sn_new(&o, &err));
	assert_int_equal(err, VIESTI_EINVAL);
	o.will_topic = NULL;
	o.client_id = "";
	assert_null(viesti_sn_new(&o, &err));
	assert_int_equal(err, VIESTI_EINVAL);
	o.client_id = "x";
	o.port = 0;
	assert_null(viesti_sn_new(&o, &err));
	o.port = 1884;
	struct viesti_sn *c = viesti_sn_new(&o, &err);
	assert_non_null(c);
	/* Not connected: what needs a connection says so; bad arguments are refused first. */
	assert_int_equal(viesti_sn_publish(c, "a/b", "x", 1, 1, false, 100), VIESTI_ESTATE);
	assert_int_equal(viesti_sn_publish(c, "a/+", "x", 1, 0, false, 100), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_publish(c, "a/b", "x", 1, 3, false, 100), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_publish(c, "a/b", "x", 1, -1, false, 100), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_subscribe(c, "a/#/b", 0, NULL, 100), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_subscribe(c, "a/#", 0, NULL, 100), VIESTI_ESTATE);
	assert_int_equal(viesti_sn_subscribe_id(c, VIESTI_SN_TOPIC_NORMAL, 1, 0, NULL, 100),
			 VIESTI_EINVAL);
	assert_int_equal(viesti_sn_ping(c, 100), VIESTI_ESTATE);
	assert_int_equal(viesti_sn_wake(c, 100), VIESTI_ESTATE);
	assert_int_equal(viesti_sn_disconnect(c, 100), VIESTI_ESTATE);
	assert_int_equal(viesti_sn_sleep(c, 0, 100), VIESTI_EINVAL);
	struct viesti_sn_message m;
	assert_int_equal(viesti_sn_receive(c, &m, 0), VIESTI_ESTATE);
	/* The predefined table: ids 1..65534, names without wildcards, each once. */
	assert_int_equal(viesti_sn_predefine(c, 1, "p/one"), 0);
	assert_int_equal(viesti_sn_predefine(c, 1, "p/two"), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_predefine(c, 2, "p/one"), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_predefine(c, 0, "p/zero"), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_predefine(c, 0xFFFF, "p/max"), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_predefine(c, 3, "p/+"), VIESTI_EINVAL);
	viesti_sn_free(c);
}

/* ---- Publishing ------------------------------------------------------------------------- */

static void script_register_publish(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	/* [6.5] A new name is REGISTERed first. */
	CHECK(g, gw_expect(g, VS_SN_REGISTER, &p));
	CHECK(g, p.topic_id == 0 && data_is(&p, "sensors/t") && p.msg_id != 0);
	gw_ack(g, VS_SN_REGACK, 7, p.msg_id, VS_SN_RC_ACCEPTED);
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(1) | VS_SN_TID_NORMAL) && p.topic_id == 7);
	CHECK(g, data_is(&p, "21.5") && p.msg_id != 0);
	uint16_t mid = p.msg_id;
	/* [6.13] No PUBACK: the same message again after Tretry, with DUP. */
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.flags == (VS_SN_DUP | vs_sn_qos_flags(1)) && p.msg_id == mid && p.topic_id == 7);
	CHECK(g, data_is(&p, "21.5"));
	gw_ack(g, VS_SN_PUBACK, 7, mid, VS_SN_RC_ACCEPTED);
	/* The id is reused: no second REGISTER. This PUBACK refuses it. */
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.topic_id == 7 && !(p.flags & VS_SN_DUP) && p.msg_id != mid);
	gw_ack(g, VS_SN_PUBACK, 7, p.msg_id, VS_SN_RC_INVALID_TOPIC);
	/* Forgotten after "invalid topic id": registered again. */
	CHECK(g, gw_expect(g, VS_SN_REGISTER, &p));
	CHECK(g, data_is(&p, "sensors/t"));
	gw_ack(g, VS_SN_REGACK, 8, p.msg_id, VS_SN_RC_ACCEPTED);
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.topic_id == 8 && vs_sn_qos(p.flags) == 0 && p.msg_id == 0);
	/* A REGISTER refused: the publish returns the REGACK's code. */
	CHECK(g, gw_expect(g, VS_SN_REGISTER, &p));
	CHECK(g, data_is(&p, "other/topic"));
	gw_ack(g, VS_SN_REGACK, 0, p.msg_id, VS_SN_RC_CONGESTION);
	CHECK(g, gw_quiet(g, 100));
}

static void test_register_publish_qos1_retransmits_with_dup(void **state)
{
	struct gw g;
	gw_start(&g, script_register_publish);
	struct viesti_sn *c = client_for(&g);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	int64_t t0 = vs_now_ms();
	assert_int_equal(viesti_sn_publish(c, "sensors/t", "21.5", 4, 1, false, 5000), 0);
	assert_true(vs_now_ms() - t0 >= 250); /* one retransmission */
	uint16_t id = 0;
	assert_int_equal(viesti_sn_register(c, "sensors/t", &id, 1000), 0);
	assert_int_equal(id, 7); /* known: no round trip */
	assert_int_equal(viesti_sn_publish(c, "sensors/t", "22", 2, 1, false, 5000),
			 VIESTI_SN_INVALID_TOPIC);
	assert_int_equal(viesti_sn_publish(c, "sensors/t", "23", 2, 0, false, 5000), 0);
	assert_int_equal(viesti_sn_publish(c, "other/topic", "x", 1, 1, false, 5000),
			 VIESTI_SN_CONGESTION);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_qos2(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	/* [6.7] QoS 2 to a short name: PUBLISH, PUBREC, PUBREL (sent again when the PUBCOMP
	 * does not come), PUBCOMP. */
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(2) | VS_SN_RETAIN | VS_SN_TID_SHORT));
	CHECK(g, p.topic_id == VIESTI_SN_SHORT('a', 'b') && data_is(&p, "two"));
	uint16_t mid = p.msg_id;
	gw_ack(g, VS_SN_PUBREC, 0, mid, 0);
	CHECK(g, gw_expect(g, VS_SN_PUBREL, &p));
	CHECK(g, p.msg_id == mid);
	CHECK(g, gw_expect(g, VS_SN_PUBREL, &p));
	CHECK(g, p.msg_id == mid);
	gw_ack(g, VS_SN_PUBREC, 0, mid, 0); /* a late duplicate PUBREC: PUBREL again */
	CHECK(g, gw_expect(g, VS_SN_PUBREL, &p));
	gw_ack(g, VS_SN_PUBCOMP, 0, mid, 0);
	/* A predefined name goes as its id, QoS 0 without a message id. */
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(0) | VS_SN_TID_PREDEFINED) && p.topic_id == 5);
	CHECK(g, p.msg_id == 0 && data_is(&p, "pre"));
	/* A QoS 2 PUBLISH refused with a PUBACK. */
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	gw_ack(g, VS_SN_PUBACK, p.topic_id, p.msg_id, VS_SN_RC_NOT_SUPPORTED);
	CHECK(g, gw_quiet(g, 100));
}

static void test_publish_qos2_short_and_predefined(void **state)
{
	struct gw g;
	gw_start(&g, script_qos2);
	struct viesti_sn *c = client_for(&g);
	assert_int_equal(viesti_sn_predefine(c, 5, "pre/topic"), 0);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	assert_int_equal(viesti_sn_publish(c, "ab", "two", 3, 2, true, 5000), 0);
	assert_int_equal(viesti_sn_publish(c, "pre/topic", "pre", 3, 0, false, 5000), 0);
	assert_int_equal(viesti_sn_publish(c, "pre/topic", "no", 2, 2, false, 5000),
			 VIESTI_SN_NOT_SUPPORTED);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_qos_minus1(struct gw *g)
{
	struct vs_sn_packet p;
	/* [6.8] No CONNECT: the PUBLISH straight away, QoS bits 0b11. */
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(-1) | VS_SN_TID_SHORT) && p.msg_id == 0);
	CHECK(g, p.topic_id == VIESTI_SN_SHORT('x', 'y') && data_is(&p, "m1"));
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(-1) | VS_SN_RETAIN | VS_SN_TID_PREDEFINED));
	CHECK(g, p.topic_id == 3 && data_is(&p, "m2"));
	CHECK(g, gw_quiet(g, 200));
}

static void test_publish_qos_minus1_without_connecting(void **state)
{
	struct gw g;
	gw_start(&g, script_qos_minus1);
	struct viesti_sn *c = client_for(&g);
	assert_int_equal(viesti_sn_predefine(c, 3, "p/three"), 0);
	assert_int_equal(viesti_sn_publish(c, "xy", "m1", 2, -1, false, 1000), 0);
	assert_int_equal(viesti_sn_publish(c, "p/three", "m2", 2, -1, true, 1000), 0);
	/* A name that would need REGISTER cannot go at QoS -1. */
	assert_int_equal(viesti_sn_publish(c, "a/b/c", "m3", 2, -1, false, 1000), VIESTI_EINVAL);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_DISCONNECTED);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_lost(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	/* Nothing is acknowledged: the first send and retry_count (2) more, then silence. */
	for (int i = 0; i < 3; i++) {
		CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
		CHECK(g, !!(p.flags & VS_SN_DUP) == (i > 0));
	}
	CHECK(g, gw_quiet(g, 600));
}

static void test_retries_used_up_lose_the_gateway(void **state)
{
	struct gw g;
	gw_start(&g, script_lost);
	struct viesti_sn_options o;
	opts_for(&o, &g);
	o.retry_ms = 150;
	o.retry_count = 2;
	struct viesti_sn *c = viesti_sn_new(&o, NULL);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	assert_int_equal(viesti_sn_publish(c, "ab", "x", 1, 1, false, -1), -ETIMEDOUT);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_DISCONNECTED);
	assert_int_equal(viesti_sn_publish(c, "ab", "x", 1, 1, false, -1), VIESTI_ESTATE);
	gw_join(&g);
	viesti_sn_free(c);
}

/* ---- Subscribing and receiving ---------------------------------------------------------- */

static void script_subscribe(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	/* [6.9] By name, with wildcards: id 0 in the SUBACK. */
	CHECK(g, gw_expect(g, VS_SN_SUBSCRIBE, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(1) | VS_SN_TID_NORMAL) && data_is(&p, "a/#"));
	struct vs_sn_packet a = {
	    .type = VS_SN_SUBACK, .flags = vs_sn_qos_flags(1), .msg_id = p.msg_id};
	gw_send(g, &a);
	/* By a name without wildcards: its id comes in the SUBACK, and messages use it
	 * without a REGISTER. */
	CHECK(g, gw_expect(g, VS_SN_SUBSCRIBE, &p));
	CHECK(g, data_is(&p, "exact/name"));
	a.msg_id = p.msg_id;
	a.topic_id = 40;
	a.flags = vs_sn_qos_flags(0);
	gw_send(g, &a);
	/* By predefined id, by short name. */
	CHECK(g, gw_expect(g, VS_SN_SUBSCRIBE, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(2) | VS_SN_TID_PREDEFINED) && p.topic_id == 5);
	a = (struct vs_sn_packet){
	    .type = VS_SN_SUBACK, .flags = vs_sn_qos_flags(2), .topic_id = 5, .msg_id = p.msg_id};
	gw_send(g, &a);
	CHECK(g, gw_expect(g, VS_SN_SUBSCRIBE, &p));
	CHECK(g, p.flags == (vs_sn_qos_flags(0) | VS_SN_TID_SHORT));
	CHECK(g, p.topic_id == VIESTI_SN_SHORT('s', 'h'));
	a = (struct vs_sn_packet){
	    .type = VS_SN_SUBACK, .msg_id = p.msg_id, .rc = VS_SN_RC_INVALID_TOPIC};
	gw_send(g, &a);
	/* [6.10] The gateway REGISTERs a topic of the wildcard subscription, then publishes. */
	struct vs_sn_packet r = {.type = VS_SN_REGISTER, .topic_id = 9, .msg_id = 1};
	r.data = (struct vs_buf){(const uint8_t *)"a/b", 3};
	gw_send(g, &r);
	CHECK(g, gw_expect(g, VS_SN_REGACK, &p));
	CHECK(g, p.topic_id == 9 && p.msg_id == 1 && p.rc == VS_SN_RC_ACCEPTED);
	gw_publish(g, vs_sn_qos_flags(1) | VS_SN_RETAIN, 9, 2, "x");
	CHECK(g, gw_expect(g, VS_SN_PUBACK, &p));
	CHECK(g, p.topic_id == 9 && p.msg_id == 2 && p.rc == VS_SN_RC_ACCEPTED);
	/* An id the client never learnt: refused, not delivered. */
	gw_publish(g, vs_sn_qos_flags(1), 77, 3, "lost");
	CHECK(g, gw_expect(g, VS_SN_PUBACK, &p));
	CHECK(g, p.topic_id == 77 && p.msg_id == 3 && p.rc == VS_SN_RC_INVALID_TOPIC);
	gw_publish(g, vs_sn_qos_flags(0), 40, 0, "exact");
	gw_publish(g, vs_sn_qos_flags(0) | VS_SN_TID_PREDEFINED, 5, 0, "pre");
	/* UNSUBSCRIBE by name and by id. */
	CHECK(g, gw_expect(g, VS_SN_UNSUBSCRIBE, &p));
	CHECK(g, (p.flags & VS_SN_TID_MASK) == VS_SN_TID_NORMAL && data_is(&p, "a/#"));
	gw_ack(g, VS_SN_UNSUBACK, 0, p.msg_id, 0);
	CHECK(g, gw_expect(g, VS_SN_UNSUBSCRIBE, &p));
	CHECK(g, (p.flags & VS_SN_TID_MASK) == VS_SN_TID_PREDEFINED && p.topic_id == 5);
	gw_ack(g, VS_SN_UNSUBACK, 0, p.msg_id, 0);
}

static void test_subscribe_and_receive_with_register(void **state)
{
	struct gw g;
	gw_start(&g, script_subscribe);
	struct viesti_sn *c = client_for(&g);
	assert_int_equal(viesti_sn_predefine(c, 5, "pre/five"), 0);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	struct viesti_sn_granted gr = {-1, 1};
	assert_int_equal(viesti_sn_subscribe(c, "a/#", 1, &gr, 5000), 0);
	assert_int_equal(gr.qos, 1);
	assert_int_equal(gr.topic_id, 0);
	assert_int_equal(viesti_sn_subscribe(c, "exact/name", 0, &gr, 5000), 0);
	assert_int_equal(gr.topic_id, 40);
	assert_int_equal(viesti_sn_subscribe_id(c, VIESTI_SN_TOPIC_PREDEFINED, 5, 2, &gr, 5000), 0);
	assert_int_equal(gr.qos, 2);
	assert_int_equal(viesti_sn_subscribe_id(c, VIESTI_SN_TOPIC_SHORT, VIESTI_SN_SHORT('s', 'h'),
						0, NULL, 5000),
			 VIESTI_SN_INVALID_TOPIC);
	struct viesti_sn_message m;
	assert_int_equal(viesti_sn_receive(c, &m, 5000), 0);
	assert_string_equal(m.topic, "a/b");
	assert_int_equal(m.topic_len, 3);
	assert_int_equal(m.topic_type, VIESTI_SN_TOPIC_NORMAL);
	assert_int_equal(m.topic_id, 9);
	assert_int_equal(m.qos, 1);
	assert_true(m.retain);
	assert_int_equal(m.msg_id, 2);
	assert_int_equal(m.payload_len, 1);
	assert_memory_equal(m.payload, "x", 1);
	assert_int_equal(viesti_sn_receive(c, &m, 5000), 0);
	assert_string_equal(m.topic, "exact/name");
	assert_int_equal(viesti_sn_receive(c, &m, 5000), 0);
	assert_string_equal(m.topic, "pre/five");
	assert_int_equal(m.topic_type, VIESTI_SN_TOPIC_PREDEFINED);
	assert_int_equal(viesti_sn_unsubscribe(c, "a/#", 5000), 0);
	assert_int_equal(viesti_sn_unsubscribe_id(c, VIESTI_SN_TOPIC_PREDEFINED, 5, 5000), 0);
	assert_int_equal(viesti_sn_receive(c, &m, 1000), -ETIMEDOUT);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_qos2_duplicate(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	uint8_t q2 = vs_sn_qos_flags(2) | VS_SN_TID_SHORT;
	uint16_t zz = VIESTI_SN_SHORT('z', 'z');
	gw_publish(g, q2, zz, 5, "once");
	CHECK(g, gw_expect(g, VS_SN_PUBREC, &p));
	CHECK(g, p.msg_id == 5);
	/* The PUBREC "was lost": the gateway sends the PUBLISH again, with DUP. */
	gw_publish(g, q2 | VS_SN_DUP, zz, 5, "once");
	CHECK(g, gw_expect(g, VS_SN_PUBREC, &p));
	CHECK(g, p.msg_id == 5);
	struct vs_sn_packet rel = {.type = VS_SN_PUBREL, .msg_id = 5};
	gw_send(g, &rel);
	CHECK(g, gw_expect(g, VS_SN_PUBCOMP, &p));
	CHECK(g, p.msg_id == 5);
	gw_send(g, &rel); /* a repeated PUBREL: PUBCOMP again */
	CHECK(g, gw_expect(g, VS_SN_PUBCOMP, &p));
	gw_publish(g, vs_sn_qos_flags(0) | VS_SN_TID_SHORT, zz, 0, "end");
	/* Released: the same message id is a new message now. */
	gw_publish(g, q2, zz, 5, "again");
	CHECK(g, gw_expect(g, VS_SN_PUBREC, &p));
	gw_send(g, &rel);
	CHECK(g, gw_expect(g, VS_SN_PUBCOMP, &p));
}

static void test_qos2_received_once(void **state)
{
	struct gw g;
	gw_start(&g, script_qos2_duplicate);
	struct viesti_sn *c = client_for(&g);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	struct viesti_sn_message m;
	const char *want[] = {"once", "end", "again"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(viesti_sn_receive(c, &m, 5000), 0);
		assert_string_equal(m.topic, "zz");
		assert_int_equal(m.topic_type, VIESTI_SN_TOPIC_SHORT);
		assert_int_equal(m.payload_len, strlen(want[i]));
		assert_memory_equal(m.payload, want[i], m.payload_len);
		assert_false(m.dup);
	}
	/* Served meanwhile: the gateway's last PUBREL gets its PUBCOMP, and no fourth message
	 * comes (the client only acts inside its calls). */
	assert_int_equal(viesti_sn_receive(c, &m, 1000), -ETIMEDOUT);
	gw_join(&g);
	viesti_sn_free(c);
}

/* ---- Keep-alive, sleeping, disconnecting, wills ---------------------------------------- */

static void script_keepalive(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_expect(g, VS_SN_CONNECT, &p));
	CHECK(g, p.duration == 1);
	int64_t t0 = vs_now_ms();
	gw_ack(g, VS_SN_CONNACK, 0, 0, 0);
	/* [6.15] Idle for the keep-alive: PINGREQ, without a client id. */
	CHECK(g, gw_expect(g, VS_SN_PINGREQ, &p));
	CHECK(g, p.data.len == 0 && vs_now_ms() - t0 >= 900);
	struct vs_sn_packet r = {.type = VS_SN_PINGRESP};
	gw_send(g, &r);
	/* viesti_sn_ping(). */
	CHECK(g, gw_expect(g, VS_SN_PINGREQ, &p));
	gw_send(g, &r);
	/* The gateway drops the client: DISCONNECT out of the blue. */
	r.type = VS_SN_DISCONNECT;
	gw_send(g, &r);
}

static void test_keepalive_ping_and_gateway_disconnect(void **state)
{
	struct gw g;
	gw_start(&g, script_keepalive);
	struct viesti_sn_options o;
	opts_for(&o, &g);
	o.keepalive = 1;
	o.retry_ms = 2000;
	struct viesti_sn *c = viesti_sn_new(&o, NULL);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	struct viesti_sn_message m;
	assert_int_equal(viesti_sn_receive(c, &m, 1500), -ETIMEDOUT);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_ACTIVE);
	assert_int_equal(viesti_sn_ping(c, 5000), 0);
	assert_int_equal(viesti_sn_receive(c, &m, 5000), VIESTI_ECLOSED);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_DISCONNECTED);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_sleep(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	/* [6.14] DISCONNECT with a duration, answered with DISCONNECT. */
	CHECK(g, gw_expect(g, VS_SN_DISCONNECT, &p));
	CHECK(g, p.has_duration && p.duration == 60);
	struct vs_sn_packet d = {.type = VS_SN_DISCONNECT};
	gw_send(g, &d);
	/* The wake-up: PINGREQ with the client id; what was kept; PINGRESP. */
	CHECK(g, gw_expect(g, VS_SN_PINGREQ, &p));
	CHECK(g, data_is(&p, "cid"));
	struct vs_sn_packet r = {.type = VS_SN_REGISTER, .topic_id = 3, .msg_id = 1};
	r.data = (struct vs_buf){(const uint8_t *)"k/t", 3};
	gw_send(g, &r);
	CHECK(g, gw_expect(g, VS_SN_REGACK, &p));
	gw_publish(g, vs_sn_qos_flags(1), 3, 7, "kept");
	CHECK(g, gw_expect(g, VS_SN_PUBACK, &p));
	CHECK(g, p.msg_id == 7);
	gw_publish(g, vs_sn_qos_flags(0), 3, 0, "kept0");
	struct vs_sn_packet pr = {.type = VS_SN_PINGRESP};
	gw_send(g, &pr);
	/* A wake-up with nothing kept. */
	CHECK(g, gw_expect(g, VS_SN_PINGREQ, &p));
	gw_send(g, &pr);
	/* Back to active: CONNECT without CleanSession; the REGISTERed id stays. */
	CHECK(g, gw_expect(g, VS_SN_CONNECT, &p));
	CHECK(g, p.flags == 0);
	gw_ack(g, VS_SN_CONNACK, 0, 0, 0);
	gw_publish(g, vs_sn_qos_flags(0), 3, 0, "active");
	/* DISCONNECT, answered. */
	CHECK(g, gw_expect(g, VS_SN_DISCONNECT, &p));
	CHECK(g, !p.has_duration);
	gw_send(g, &d);
}

static void test_sleep_and_wake(void **state)
{
	struct gw g;
	gw_start(&g, script_sleep);
	struct viesti_sn_options o;
	opts_for(&o, &g);
	o.clean = false;
	struct viesti_sn *c = viesti_sn_new(&o, NULL);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	assert_int_equal(viesti_sn_sleep(c, 60, 5000), 0);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_ASLEEP);
	assert_int_equal(viesti_sn_wake(c, 5000), 2);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_ASLEEP);
	assert_int_equal(viesti_sn_queued(c), 2);
	struct viesti_sn_message m;
	assert_int_equal(viesti_sn_receive(c, &m, 0), 0);
	assert_string_equal(m.topic, "k/t");
	assert_int_equal(m.qos, 1);
	assert_memory_equal(m.payload, "kept", 4);
	assert_int_equal(viesti_sn_receive(c, &m, 0), 0);
	assert_memory_equal(m.payload, "kept0", 5);
	assert_int_equal(viesti_sn_wake(c, 5000), 0);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_ACTIVE);
	assert_int_equal(viesti_sn_receive(c, &m, 5000), 0);
	assert_string_equal(m.topic, "k/t");
	assert_memory_equal(m.payload, "active", 6);
	assert_int_equal(viesti_sn_disconnect(c, 5000), 0);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_DISCONNECTED);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_wake_queue_full(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	CHECK(g, gw_expect(g, VS_SN_DISCONNECT, &p));
	struct vs_sn_packet d = {.type = VS_SN_DISCONNECT};
	gw_send(g, &d);
	CHECK(g, gw_expect(g, VS_SN_PINGREQ, &p));
	uint8_t q1 = vs_sn_qos_flags(1) | VS_SN_TID_SHORT;
	gw_publish(g, q1, VIESTI_SN_SHORT('q', 'q'), 1, "m1");
	CHECK(g, gw_expect(g, VS_SN_PUBACK, &p));
	gw_publish(g, q1, VIESTI_SN_SHORT('q', 'q'), 2, "m2");
	/* The client's queue (1) is full: m2 is not acknowledged. The next PINGREQ asks for
	 * it again. */
	CHECK(g, gw_expect(g, VS_SN_PINGREQ, &p));
	gw_publish(g, q1 | VS_SN_DUP, VIESTI_SN_SHORT('q', 'q'), 2, "m2");
	CHECK(g, gw_expect(g, VS_SN_PUBACK, &p));
	CHECK(g, p.msg_id == 2);
	struct vs_sn_packet pr = {.type = VS_SN_PINGRESP};
	gw_send(g, &pr);
}

static void test_wake_with_a_full_queue(void **state)
{
	struct gw g;
	gw_start(&g, script_wake_queue_full);
	struct viesti_sn_options o;
	opts_for(&o, &g);
	o.max_queued = 1;
	struct viesti_sn *c = viesti_sn_new(&o, NULL);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	assert_int_equal(viesti_sn_sleep(c, 10, 5000), 0);
	assert_int_equal(viesti_sn_wake(c, 5000), -ENOBUFS);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_AWAKE);
	struct viesti_sn_message m;
	assert_int_equal(viesti_sn_receive(c, &m, 0), 0);
	assert_memory_equal(m.payload, "m1", 2);
	assert_int_equal(viesti_sn_wake(c, 5000), 1);
	assert_int_equal(viesti_sn_receive(c, &m, 0), 0);
	assert_memory_equal(m.payload, "m2", 2);
	assert_int_equal(viesti_sn_state(c), VIESTI_SN_ASLEEP);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_will_update(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	/* [6.4] WILLTOPICUPD / WILLMSGUPD, each answered with its RESP. */
	CHECK(g, gw_expect(g, VS_SN_WILLTOPICUPD, &p));
	CHECK(g, !p.empty_will && p.flags == (vs_sn_qos_flags(2) | VS_SN_RETAIN));
	CHECK(g, data_is(&p, "new/will"));
	struct vs_sn_packet r = {.type = VS_SN_WILLTOPICRESP};
	gw_send(g, &r);
	CHECK(g, gw_expect(g, VS_SN_WILLMSGUPD, &p));
	CHECK(g, data_is(&p, "gone"));
	r = (struct vs_sn_packet){.type = VS_SN_WILLMSGRESP, .rc = VS_SN_RC_NOT_SUPPORTED};
	gw_send(g, &r);
	CHECK(g, gw_expect(g, VS_SN_WILLTOPICUPD, &p));
	CHECK(g, p.empty_will);
	r = (struct vs_sn_packet){.type = VS_SN_WILLTOPICRESP};
	gw_send(g, &r);
}

static void test_will_updates(void **state)
{
	struct gw g;
	gw_start(&g, script_will_update);
	struct viesti_sn *c = client_for(&g);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	assert_int_equal(viesti_sn_will_topic_update(c, "new/will", 2, true, 5000), 0);
	assert_int_equal(viesti_sn_will_msg_update(c, "gone", 4, 5000), VIESTI_SN_NOT_SUPPORTED);
	assert_int_equal(viesti_sn_will_topic_update(c, NULL, 0, false, 5000), 0);
	assert_int_equal(viesti_sn_will_topic_update(c, "bad/#", 0, false, 5000), VIESTI_EINVAL);
	gw_join(&g);
	viesti_sn_free(c);
}

static void script_ipv6(struct gw *g)
{
	struct vs_sn_packet p;
	CHECK(g, gw_accept(g));
	CHECK(g, gw_expect(g, VS_SN_PUBLISH, &p));
	gw_ack(g, VS_SN_PUBACK, p.topic_id, p.msg_id, 0);
}

static void test_ipv6(void **state)
{
	struct gw g;
	if (!gw_start_family(&g, AF_INET6, script_ipv6))
		skip();
	struct viesti_sn *c = client_for(&g);
	assert_int_equal(viesti_sn_connect(c, 5000), 0);
	assert_int_equal(viesti_sn_publish(c, "v6", "x", 1, 1, false, 5000), 0);
	gw_join(&g);
	viesti_sn_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_connect_will_dialogue),
	    cmocka_unit_test(test_connect_refused_port),
	    cmocka_unit_test(test_register_publish_qos1_retransmits_with_dup),
	    cmocka_unit_test(test_publish_qos2_short_and_predefined),
	    cmocka_unit_test(test_publish_qos_minus1_without_connecting),
	    cmocka_unit_test(test_retries_used_up_lose_the_gateway),
	    cmocka_unit_test(test_subscribe_and_receive_with_register),
	    cmocka_unit_test(test_qos2_received_once),
	    cmocka_unit_test(test_keepalive_ping_and_gateway_disconnect),
	    cmocka_unit_test(test_sleep_and_wake),
	    cmocka_unit_test(test_wake_with_a_full_queue),
	    cmocka_unit_test(test_will_updates),
	    cmocka_unit_test(test_ipv6),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
