/*
 * Shared by the unit tests of the MQTT-SN gateway's per-client half (sn/sn.h, test_sn_*.c):
 * the includes, small assertions, and the client rig. The rig is two UDP sockets on 127.0.0.1,
 * one the gateway's (peer.fd), one the sensor's (peer.addr). A test feeds MQTT-SN messages with
 * vs_sn_input() (each encoded and decoded again, as the gateway would see it), plays the broker
 * with the transport's read() (MQTT 5.0 bytes, decoded) and write() (whole MQTT packets), and
 * reads what the sensor receives from its socket. So each test checks the three outputs: the
 * MQTT packets, the datagrams, and the VS_SN_EV_* events. Included once per test executable.
 */
#ifndef VS_TESTS_SN_RIG_H
#define VS_TESTS_SN_RIG_H

#include "sn_util.h"

/* ---- The client rig ---------------------------------------------------------------------- */

enum { RETRY_MS = 1000, RETRY_COUNT = 2 };

struct rig {
	int gw;	    /* the listener's socket: peer.fd */
	int sensor; /* the client's socket: peer.addr */
	struct vs_sn_topics topics;
	struct vs_sn_conf conf;
	struct vs_sn_table table;
	struct vs_sn_peer peer;
	struct vs_transport t;
	int owner; /* &owner is what the table holds */
	/* MQTT bytes read from the transport; views of decoded packets point here */
	uint8_t mqtt[1 << 18];
	size_t mlen, moff;
	/* the last datagram the sensor received */
	uint8_t dgram[VS_SN_MAX_MESSAGE + 1];
};

static inline int udp_socket(struct sockaddr_in *a)
{
	socklen_t al = sizeof(*a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof(*a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)a, &al), 0);
	return fd;
}

static inline void rig_peer(struct rig *r, struct vs_sn_peer *p)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	memset(p, 0, sizeof(*p));
	p->fd = r->gw;
	assert_int_equal(getsockname(r->sensor, (struct sockaddr *)&a, &al), 0);
	memcpy(&p->addr, &a, sizeof(a));
	p->addr_len = sizeof(a);
}

static inline int rig_setup(void **state)
{
	static const char predefined[] = "1 pre/defined\n2 other/topic\n";
	struct rig *r = calloc(1, sizeof(*r));
	struct sockaddr_in a;
	char err[64];

	assert_non_null(r);
	r->gw = udp_socket(&a);
	r->sensor = udp_socket(&a);
	assert_int_equal(
	    vs_sn_topics_parse(&r->topics, predefined, strlen(predefined), err, sizeof(err)), 0);
	r->conf = (struct vs_sn_conf){
	    .predefined = &r->topics, .retry_ms = RETRY_MS, .retry_count = RETRY_COUNT, .gw_id = 7};
	rig_peer(r, &r->peer);
	assert_int_equal(vs_sn_client_open(&r->t, &r->conf, &r->table, &r->peer, &r->owner), 0);
	assert_int_equal(r->t.fd, -1);
	assert_string_equal(r->t.ops->name, "mqttsn");
	*state = r;
	return 0;
}

static inline int rig_teardown(void **state)
{
	struct rig *r = *state;
	if (r->t.ops)
		r->t.ops->close(&r->t);
	/* closing the transport took it out of the table */
	assert_int_equal(r->table.clients.count, 0);
	vs_map_fini(&r->table.clients);
	vs_sn_topics_fini(&r->topics);
	close(r->gw);
	close(r->sensor);
	free(r);
	return 0;
}

/* Encodes p as the client would send it, decodes it as the gateway would, and hands it to the
 * transport at now_ms. */
static inline int in_at(struct rig *r, struct vs_sn_packet p, int64_t now_ms)
{
	uint8_t buf[VS_SN_MAX_MESSAGE];
	struct vs_sn_packet q;
	const char *why = "";
	if (p.type == VS_SN_CONNECT)
		p.protocol = 0x01;
	ssize_t n = vs_sn_encode(&p, buf, sizeof(buf));
	assert_true(n > 0);
	if (vs_sn_decode(buf, (size_t)n, &q, &why) != 0)
		fail_msg("test bug: %s does not decode: %s", vs_sn_type_name(p.type), why);
	return vs_sn_input(&r->t, &q, now_ms);
}

#define IN(r, ...)	 in_at(r, (struct vs_sn_packet){__VA_ARGS__}, vs_now_ms())
#define IN_AT(r, t, ...) in_at(r, (struct vs_sn_packet){__VA_ARGS__}, t)

/* The next datagram the sensor receives, of type `type` (views valid until the next one). */
static inline struct vs_sn_packet sn_recv(struct rig *r, uint8_t type)
{
	struct pollfd pf = {.fd = r->sensor, .events = POLLIN};
	struct vs_sn_packet p;
	const char *why = "";
	if (poll(&pf, 1, 1000) != 1)
		fail_msg("the sensor received nothing, expected %s", vs_sn_type_name(type));
	ssize_t n = recv(r->sensor, r->dgram, sizeof(r->dgram), MSG_DONTWAIT);
	assert_true(n > 0);
	if (vs_sn_decode(r->dgram, (size_t)n, &p, &why) != 0)
		fail_msg("the sensor received a malformed datagram: %s", why);
	if (p.type != type)
		fail_msg("the sensor received %s, expected %s", vs_sn_type_name(p.type),
			 vs_sn_type_name(type));
	return p;
}

/* The sensor receives nothing more (for now). */
static inline void sn_none(struct rig *r)
{
	struct pollfd pf = {.fd = r->sensor, .events = POLLIN};
	if (poll(&pf, 1, 20) != 0) {
		ssize_t n = recv(r->sensor, r->dgram, sizeof(r->dgram), MSG_DONTWAIT);
		fail_msg("the sensor received %zd bytes (%s), expected nothing", n,
			 n > 1 ? vs_sn_type_name(r->dgram[r->dgram[0] == 1 ? 3 : 1]) : "?");
	}
}

/* The next MQTT packet the broker reads from the transport, of type `type`. */
static inline struct vs_packet mqtt_next(struct rig *r, uint8_t type)
{
	struct vs_decode_opts o = {.version = VS_V5};
	struct vs_packet m;
	enum vs_reason why = VS_RC_SUCCESS;
	if (r->moff == r->mlen)
		r->moff = r->mlen = 0;
	for (;;) {
		ssize_t n = vs_codec_decode(r->mqtt + r->moff, r->mlen - r->moff, &o, &m, &why);
		if (n < 0)
			fail_msg("the transport gave a malformed MQTT packet (reason 0x%02x)", why);
		if (n > 0) {
			r->moff += (size_t)n;
			break;
		}
		assert_true(sizeof(r->mqtt) - r->mlen >= VS_TRANSPORT_MIN_READ);
		n = r->t.ops->read(&r->t, r->mqtt + r->mlen, sizeof(r->mqtt) - r->mlen);
		if (n == -EAGAIN)
			fail_msg("no MQTT packet to read, expected type %d", type);
		assert_true(n > 0);
		r->mlen += (size_t)n;
	}
	if (m.type != type)
		fail_msg("MQTT packet of type %d, expected %d", m.type, type);
	return m;
}

/* The broker has nothing to read. */
static inline void mqtt_none(struct rig *r)
{
	uint8_t b[VS_TRANSPORT_MIN_READ];
	assert_int_equal(r->moff, r->mlen);
	ssize_t n = r->t.ops->read(&r->t, b, sizeof(b));
	if (n != -EAGAIN)
		fail_msg("%zd MQTT bytes to read (type %d), expected none", n,
			 n > 0 ? b[0] >> 4 : 0);
}

/* The broker writes p; returns what write() returned. */
static inline ssize_t bwrite(struct rig *r, const struct vs_packet *p)
{
	uint8_t buf[70000];
	ssize_t n = vs_codec_encode(p, VS_V5, buf, sizeof(buf));
	assert_true(n > 0);
	return r->t.ops->write(&r->t, buf, (size_t)n);
}

static inline void broker(struct rig *r, struct vs_packet p)
{
	uint8_t buf[70000];
	ssize_t n = vs_codec_encode(&p, VS_V5, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(r->t.ops->write(&r->t, buf, (size_t)n), n);
}

static inline struct vs_packet pub(const char *topic, uint8_t qos, uint16_t id, const char *payload)
{
	struct vs_packet m = {.type = VS_PUBLISH};
	m.publish.topic = (struct vs_buf){(const uint8_t *)topic, strlen(topic)};
	m.publish.qos = qos;
	m.publish.packet_id = qos ? id : 0;
	m.publish.payload = (struct vs_buf){(const uint8_t *)payload, strlen(payload)};
	return m;
}

static inline struct vs_packet ack(uint8_t type, uint16_t id, uint8_t reason)
{
	struct vs_packet m = {.type = type};
	m.ack.packet_id = id;
	m.ack.reason = reason;
	return m;
}

static inline struct vs_packet connack(uint8_t reason)
{
	struct vs_packet m = {.type = VS_CONNACK};
	m.connack.reason = reason;
	return m;
}

static inline struct vs_packet suback(uint8_t type, uint16_t id, const uint8_t *code)
{
	struct vs_packet m = {.type = type};
	m.suback.packet_id = id;
	m.suback.count = 1;
	m.suback.codes = code;
	return m;
}

/* CONNECT (no will), the MQTT CONNECT, the broker's CONNACK, the client's CONNACK. */
static inline void connect_as(struct rig *r, const char *id, uint8_t flags, uint16_t keepalive)
{
	struct vs_sn_packet c = {.type = VS_SN_CONNECT,
				 .flags = flags,
				 .duration = keepalive,
				 .data = {(const uint8_t *)id, strlen(id)}};
	assert_int_equal(in_at(r, c, vs_now_ms()), VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_CONNECT);
	assert_buf(m.connect.client_id, id);
	mqtt_none(r);
	sn_none(r);
	broker(r, connack(VS_RC_SUCCESS));
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_ACCEPTED);
	assert_string_equal(vs_sn_client_id(&r->t), id);
}

static inline void connect_clean(struct rig *r)
{
	connect_as(r, "sensor", VS_SN_CLEAN, 60);
}

/* The topic id the gateway REGISTERs for name: returns it, after the REGACK. */
static inline uint16_t expect_register(struct rig *r, const char *name)
{
	struct vs_sn_packet g = sn_recv(r, VS_SN_REGISTER);
	assert_buf(g.data, name);
	assert_true(g.topic_id >= 1 && g.topic_id <= 65534);
	assert_true(g.msg_id != 0);
	sn_none(r); /* the PUBLISH waits for the REGACK */
	uint16_t id = g.topic_id;
	assert_int_equal(IN(r, .type = VS_SN_REGACK, .topic_id = id, .msg_id = g.msg_id), 0);
	return id;
}

#endif
