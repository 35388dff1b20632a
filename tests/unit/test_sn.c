/*
 * The MQTT-SN gateway's per-client half (sn/sn.h), driven sans-I/O.
 *
 * The predefined-topics parser: good files (comments, blank lines, CRLF, blanks around and
 * inside topics), every refusal with its "line N: ..." message, files by name.
 *
 * The client transport: a rig of two UDP sockets on 127.0.0.1, one the gateway's (peer.fd),
 * one the sensor's (peer.addr). A test feeds MQTT-SN messages with vs_sn_input() (each encoded
 * and decoded again, as the gateway would see it), plays the broker with the transport's read()
 * (MQTT 5.0 bytes, decoded) and write() (whole MQTT packets), and reads what the sensor
 * receives from its socket. So each test checks the three outputs: the MQTT packets, the
 * datagrams, and the VS_SN_EV_* events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "codec/codec.h"
#include "codec/sn.h"
#include "sn/sn.h"

#define N(a)   (sizeof(a) / sizeof((a)[0]))
#define BUF(s) ((struct vs_buf){(const uint8_t *)(s), sizeof(s) - 1})

static void assert_buf(struct vs_buf b, const char *s)
{
	size_t n = strlen(s);
	if (b.len != n || (n && memcmp(b.p, s, n) != 0))
		fail_msg("'%.*s' != '%s'", (int)b.len, (const char *)b.p, s);
}

/* ---- Predefined topics ------------------------------------------------------------------- */

static int parse(struct vs_sn_topics *t, const char *text, char *err, size_t errlen)
{
	return vs_sn_topics_parse(t, text, strlen(text), err, errlen);
}

static void expect_topic(const struct vs_sn_topics *t, uint16_t id, const char *name)
{
	const char *got = vs_sn_topics_name(t, id);
	if (!got || strcmp(got, name) != 0)
		fail_msg("id %u: '%s', expected '%s'", id, got ? got : "(none)", name);
	assert_int_equal(vs_sn_topics_id(t, (const uint8_t *)name, strlen(name)), id);
}

static void topics_good_file(void **state)
{
	static const char text[] = "# predefined topics\n"
				   "\n"
				   "1 sensors/temperature\n"
				   "   # an indented comment\n"
				   "2\tsensors/humidity   \r\n"
				   "  \t \r\n"
				   "  300   living room/lamp one \t\n"
				   "65534 last\r\n"
				   "00007 leading/zeros\n"
				   "8 $SYS/x\n"
				   "9 \xc3\xa9t\xc3\xa9\n"
				   "10 no/newline/at/end";
	struct vs_sn_topics t;
	char err[128] = "";

	assert_int_equal(parse(&t, text, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(t.count, 8);
	expect_topic(&t, 1, "sensors/temperature");
	expect_topic(&t, 2, "sensors/humidity");
	expect_topic(&t, 300, "living room/lamp one");
	expect_topic(&t, 65534, "last");
	expect_topic(&t, 7, "leading/zeros");
	expect_topic(&t, 8, "$SYS/x");
	expect_topic(&t, 9, "\xc3\xa9t\xc3\xa9");
	expect_topic(&t, 10, "no/newline/at/end");
	/* unknown both ways; the trimmed blanks are not part of the topic */
	assert_null(vs_sn_topics_name(&t, 3));
	assert_null(vs_sn_topics_name(&t, 0));
	assert_null(vs_sn_topics_name(&t, 65535));
	assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"last ", 5), 0);
	assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"sensors", 7), 0);
	assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"living room/lamp one \t", 22), 0);
	vs_sn_topics_fini(&t);
	assert_int_equal(t.count, 0);
	vs_sn_topics_fini(&t); /* twice is harmless */
}

static void topics_empty_files(void **state)
{
	static const char *texts[] = {"", "\n", "\r\n\r\n", "# only\n#comments", "   \t"};
	for (size_t i = 0; i < N(texts); i++) {
		struct vs_sn_topics t;
		char err[64] = "";
		assert_int_equal(parse(&t, texts[i], err, sizeof(err)), 0);
		assert_int_equal(t.count, 0);
		assert_null(vs_sn_topics_name(&t, 1));
		assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"a", 1), 0);
		vs_sn_topics_fini(&t);
	}
	/* no table at all (a listener without mqttsn_predefined_topics) */
	assert_null(vs_sn_topics_name(NULL, 1));
	assert_int_equal(vs_sn_topics_id(NULL, (const uint8_t *)"a", 1), 0);
}

static void topics_errors_name_their_line(void **state)
{
#define EXPECTED "expected \"ID TOPIC\" (a topic id, a space, a topic)"
#define RANGE	 "topic id must be 1..65534"
#define INVALID	 "not a valid topic name (no wildcards, UTF-8)"
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *err;
	} cases[] = {
	    {"0 zero", 0, "line 1: " RANGE},
	    {"1 a\n65535 reserved", 0, "line 2: " RANGE},
	    {"99999 big", 0, "line 1: " RANGE},
	    {"1000000 bigger", 0, "line 1: " RANGE},
	    {"184467440737095516160 huge", 0, "line 1: " RANGE},
	    {"abc topic", 0, "line 1: " EXPECTED},
	    {"# c\n\n-1 minus", 0, "line 3: " EXPECTED},
	    {"12x topic", 0, "line 1: " EXPECTED},
	    {"0x10 hex", 0, "line 1: " EXPECTED},
	    {"1 a\n5", 0, "line 2: " EXPECTED},
	    {"5   \r\n", 0, "line 1: " EXPECTED},
	    {"\n\n\n5\t", 0, "line 4: " EXPECTED},
	    {"topic", 0, "line 1: " EXPECTED},
	    {"3 a/+/b", 0, "line 1: " INVALID},
	    {"4 a/#", 0, "line 1: " INVALID},
	    {"4 #", 0, "line 1: " INVALID},
	    {"4 bad\xffutf8", 0, "line 1: " INVALID},
	    {"1 a\r\n2 b\r\n1 c\r\n", 0, "line 3: topic id defined twice"},
	    {"1 a\n2 b\n# x\n3 a\n", 0, "line 4: topic defined twice"},
	    {"1 a\n2 b\0c\n", 9, "line 2: NUL byte"},
	    {"\0", 1, "line 1: NUL byte"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct vs_sn_topics t;
		char err[128] = "";
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		int rc = vs_sn_topics_parse(&t, cases[i].text, len, err, sizeof(err));
		if (rc != VS_ECONF || strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: rc %d '%s', expected '%s'", i, rc, err, cases[i].err);
		/* on failure t holds nothing */
		assert_int_equal(t.count, 0);
		assert_null(t.by_id.slots);
		assert_null(t.by_name.slots);
		vs_sn_topics_fini(&t);
	}
	/* a short error buffer is cut, not overrun */
	struct vs_sn_topics t;
	char small[8];
	assert_int_equal(parse(&t, "0 x", small, sizeof(small)), VS_ECONF);
	assert_string_equal(small, "line 1:");
#undef EXPECTED
#undef RANGE
#undef INVALID
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void topics_load_files(void **state)
{
	char path[] = "/tmp/vs_test_sn_XXXXXX";
	int fd = mkstemp(path);
	struct vs_sn_topics t;
	char err[256], want[256];

	assert_true(fd >= 0);
	close(fd);
	write_file(path, "# gateway topics\r\n1 a/b\r\n2 c d\r\n");
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), 0);
	assert_int_equal(t.count, 2);
	expect_topic(&t, 1, "a/b");
	expect_topic(&t, 2, "c d");
	vs_sn_topics_fini(&t);

	/* "line N: what" becomes "FILE:N: what" */
	write_file(path, "1 a\n\n3 x/+\n");
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), VS_ECONF);
	snprintf(want, sizeof(want), "%s:3: not a valid topic name (no wildcards, UTF-8)", path);
	assert_string_equal(err, want);
	assert_int_equal(t.count, 0);

	write_file(path, "");
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), 0);
	assert_int_equal(t.count, 0);
	vs_sn_topics_fini(&t);

	/* a file larger than the first read buffer (4 KiB) */
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	for (int i = 1; i <= 2000; i++)
		fprintf(f, "%d topic/number/%d\n", i, i);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), 0);
	assert_int_equal(t.count, 2000);
	expect_topic(&t, 1, "topic/number/1");
	expect_topic(&t, 1999, "topic/number/1999");
	vs_sn_topics_fini(&t);

	unlink(path);
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), VS_ECONF);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
	assert_int_equal(t.count, 0);
}

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

static int udp_socket(struct sockaddr_in *a)
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

static void rig_peer(struct rig *r, struct vs_sn_peer *p)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	memset(p, 0, sizeof(*p));
	p->fd = r->gw;
	assert_int_equal(getsockname(r->sensor, (struct sockaddr *)&a, &al), 0);
	memcpy(&p->addr, &a, sizeof(a));
	p->addr_len = sizeof(a);
}

static int rig_setup(void **state)
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

static int rig_teardown(void **state)
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
static int in_at(struct rig *r, struct vs_sn_packet p, int64_t now_ms)
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
static struct vs_sn_packet sn_recv(struct rig *r, uint8_t type)
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
static void sn_none(struct rig *r)
{
	struct pollfd pf = {.fd = r->sensor, .events = POLLIN};
	if (poll(&pf, 1, 20) != 0) {
		ssize_t n = recv(r->sensor, r->dgram, sizeof(r->dgram), MSG_DONTWAIT);
		fail_msg("the sensor received %zd bytes (%s), expected nothing", n,
			 n > 1 ? vs_sn_type_name(r->dgram[r->dgram[0] == 1 ? 3 : 1]) : "?");
	}
}

/* The next MQTT packet the broker reads from the transport, of type `type`. */
static struct vs_packet mqtt_next(struct rig *r, uint8_t type)
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
static void mqtt_none(struct rig *r)
{
	uint8_t b[VS_TRANSPORT_MIN_READ];
	assert_int_equal(r->moff, r->mlen);
	ssize_t n = r->t.ops->read(&r->t, b, sizeof(b));
	if (n != -EAGAIN)
		fail_msg("%zd MQTT bytes to read (type %d), expected none", n,
			 n > 0 ? b[0] >> 4 : 0);
}

/* The broker writes p; returns what write() returned. */
static ssize_t bwrite(struct rig *r, const struct vs_packet *p)
{
	uint8_t buf[70000];
	ssize_t n = vs_codec_encode(p, VS_V5, buf, sizeof(buf));
	assert_true(n > 0);
	return r->t.ops->write(&r->t, buf, (size_t)n);
}

static void broker(struct rig *r, struct vs_packet p)
{
	uint8_t buf[70000];
	ssize_t n = vs_codec_encode(&p, VS_V5, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(r->t.ops->write(&r->t, buf, (size_t)n), n);
}

static struct vs_packet pub(const char *topic, uint8_t qos, uint16_t id, const char *payload)
{
	struct vs_packet m = {.type = VS_PUBLISH};
	m.publish.topic = (struct vs_buf){(const uint8_t *)topic, strlen(topic)};
	m.publish.qos = qos;
	m.publish.packet_id = qos ? id : 0;
	m.publish.payload = (struct vs_buf){(const uint8_t *)payload, strlen(payload)};
	return m;
}

static struct vs_packet ack(uint8_t type, uint16_t id, uint8_t reason)
{
	struct vs_packet m = {.type = type};
	m.ack.packet_id = id;
	m.ack.reason = reason;
	return m;
}

static struct vs_packet connack(uint8_t reason)
{
	struct vs_packet m = {.type = VS_CONNACK};
	m.connack.reason = reason;
	return m;
}

static struct vs_packet suback(uint8_t type, uint16_t id, const uint8_t *code)
{
	struct vs_packet m = {.type = type};
	m.suback.packet_id = id;
	m.suback.count = 1;
	m.suback.codes = code;
	return m;
}

/* CONNECT (no will), the MQTT CONNECT, the broker's CONNACK, the client's CONNACK. */
static void connect_as(struct rig *r, const char *id, uint8_t flags, uint16_t keepalive)
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

static void connect_clean(struct rig *r)
{
	connect_as(r, "sensor", VS_SN_CLEAN, 60);
}

/* The topic id the gateway REGISTERs for name: returns it, after the REGACK. */
static uint16_t expect_register(struct rig *r, const char *name)
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

/* ---- The table --------------------------------------------------------------------------- */

static void client_open_registers_and_close_removes(void **state)
{
	struct rig *r = *state;
	uint8_t key[VS_SN_KEY_MAX];
	size_t kl = vs_sn_key(&r->peer, key);

	assert_int_equal(kl, 1 + 2 + 4 + 1);
	assert_int_equal(r->table.clients.count, 1);
	assert_ptr_equal(vs_map_get(&r->table.clients, key, kl), &r->owner);
	assert_string_equal(vs_transport_why(&r->t), "");
	assert_false(vs_sn_sleeping(&r->t));
	assert_true(vs_sn_idle(&r->t));
	assert_null(vs_sn_dtls(&r->t));
	assert_string_equal(vs_sn_client_id(&r->t), "");

	/* a node behind a forwarder is another key */
	struct vs_sn_peer fwd = r->peer;
	fwd.node_len = 3;
	memcpy(fwd.node, "\x01\x02\x03", 3);
	uint8_t key2[VS_SN_KEY_MAX];
	size_t kl2 = vs_sn_key(&fwd, key2);
	assert_int_equal(kl2, kl + 3);
	assert_true(memcmp(key, key2, kl - 1) == 0 && key2[kl - 1] == 3);

	r->t.ops->close(&r->t);
	assert_int_equal(r->table.clients.count, 0);
	assert_null(r->t.state);
	assert_int_equal(r->t.fd, -1);
	r->t.ops->close(&r->t); /* idempotent */
}

static void client_close_keeps_a_successor_in_the_table(void **state)
{
	struct rig *r = *state;
	struct vs_transport t2;
	int owner2;
	uint8_t key[VS_SN_KEY_MAX];
	size_t kl = vs_sn_key(&r->peer, key);

	/* a new connection for the same address replaces the old one in the table ... */
	assert_int_equal(vs_sn_client_open(&t2, &r->conf, &r->table, &r->peer, &owner2), 0);
	assert_int_equal(r->table.clients.count, 1);
	assert_ptr_equal(vs_map_get(&r->table.clients, key, kl), &owner2);
	/* ... and closing the old one leaves the new one there */
	r->t.ops->close(&r->t);
	assert_ptr_equal(vs_map_get(&r->table.clients, key, kl), &owner2);
	t2.ops->close(&t2);
	assert_int_equal(r->table.clients.count, 0);
}

/* ---- CONNECT ----------------------------------------------------------------------------- */

static void connect_clean_session(void **state)
{
	struct rig *r = *state;
	struct vs_sn_packet c = {
	    .type = VS_SN_CONNECT, .flags = VS_SN_CLEAN, .duration = 30, .data = BUF("sensor-1")};

	assert_int_equal(in_at(r, c, vs_now_ms()), VS_SN_EV_READ);
	sn_none(r); /* the CONNACK is the broker's to give */
	struct vs_packet m = mqtt_next(r, VS_CONNECT);
	struct vs_connect *k = &m.connect;
	assert_int_equal(k->version, VS_V5);
	assert_true(k->clean);
	assert_int_equal(k->keepalive, 30);
	assert_buf(k->client_id, "sensor-1");
	assert_false(k->will);
	assert_false(k->has_username);
	assert_false(k->has_password);
	assert_true(k->props.present & 1ull << VS_PROP_SESSION_EXPIRY);
	assert_int_equal(k->props.session_expiry, 0);
	assert_true(k->props.present & 1ull << VS_PROP_RECEIVE_MAX);
	assert_int_equal(k->props.receive_max, 1);
	assert_true(k->props.present & 1ull << VS_PROP_MAX_PACKET_SIZE);
	assert_int_equal(k->props.max_packet_size, VS_SN_MQTT_MAX_PACKET);
	assert_false(k->props.present & 1ull << VS_PROP_TOPIC_ALIAS_MAX);
	mqtt_none(r);
	assert_int_equal(vs_sn_keepalive(&r->t), 30);
	assert_string_equal(vs_sn_client_id(&r->t), "sensor-1");

	/* CONNECT again while the broker decides: its answer is coming */
	assert_int_equal(in_at(r, c, vs_now_ms()), 0);
	mqtt_none(r);
	broker(r, connack(VS_RC_SUCCESS));
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_ACCEPTED);
	sn_none(r);
	/* a CONNECT from the connected client starts a new connection */
	assert_int_equal(in_at(r, c, vs_now_ms()), VS_SN_EV_RESTART);
}

static void connect_persistent_session(void **state)
{
	struct rig *r = *state;

	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .duration = 0, .data = BUF("keeper")),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_CONNECT);
	assert_false(m.connect.clean);
	assert_int_equal(m.connect.keepalive, 0);
	assert_int_equal(m.connect.props.session_expiry, 0xFFFFFFFFu);
	assert_int_equal(m.connect.props.receive_max, 1);
}

static void connect_will_dialogue(void **state)
{
	struct rig *r = *state;

	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .flags = VS_SN_WILL | VS_SN_CLEAN,
			    .duration = 10, .data = BUF("willing")),
			 0);
	sn_recv(r, VS_SN_WILLTOPICREQ);
	mqtt_none(r);
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPIC, .flags = vs_sn_qos_flags(1) | VS_SN_RETAIN,
			    .data = BUF("will/t")),
			 0);
	sn_recv(r, VS_SN_WILLMSGREQ);
	mqtt_none(r);
	/* WILLTOPIC repeated (our WILLMSGREQ was lost): WILLMSGREQ again, the will unchanged */
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPIC, .flags = 0, .data = BUF("will/t")), 0);
	sn_recv(r, VS_SN_WILLMSGREQ);
	assert_int_equal(IN(r, .type = VS_SN_WILLMSG, .data = BUF("gone")), VS_SN_EV_READ);
	sn_none(r);
	struct vs_packet m = mqtt_next(r, VS_CONNECT);
	assert_true(m.connect.clean);
	assert_int_equal(m.connect.keepalive, 10);
	assert_buf(m.connect.client_id, "willing");
	assert_true(m.connect.will);
	assert_int_equal(m.connect.will_qos, 1);
	assert_true(m.connect.will_retain);
	assert_buf(m.connect.will_topic, "will/t");
	assert_buf(m.connect.will_payload, "gone");
	mqtt_none(r);
	/* WILLMSG repeated while the broker decides */
	assert_int_equal(IN(r, .type = VS_SN_WILLMSG, .data = BUF("gone")), 0);
	mqtt_none(r);
	broker(r, connack(VS_RC_SUCCESS));
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_ACCEPTED);
	/* WILLMSG repeated after the CONNACK was lost: the CONNACK again, nothing for the
	 * broker; a late WILLTOPIC: nothing */
	assert_int_equal(IN(r, .type = VS_SN_WILLMSG, .data = BUF("gone")), 0);
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_ACCEPTED);
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPIC, .flags = 0, .data = BUF("w")), 0);
	mqtt_none(r);
	sn_none(r);
}

static void connect_will_empty_topic_means_no_will(void **state)
{
	struct rig *r = *state;

	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .flags = VS_SN_WILL, .data = BUF("c")), 0);
	sn_recv(r, VS_SN_WILLTOPICREQ);
	/* CONNECT repeated: WILLTOPICREQ again */
	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .flags = VS_SN_WILL, .data = BUF("c")), 0);
	sn_recv(r, VS_SN_WILLTOPICREQ);
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPIC, .empty_will = true), VS_SN_EV_READ);
	sn_none(r);
	struct vs_packet m = mqtt_next(r, VS_CONNECT);
	assert_false(m.connect.will);
}

static void connect_will_bad_topic_or_order_closes(void **state)
{
	struct rig *r = *state;

	assert_int_equal(IN(r, .type = VS_SN_WILLMSG, .data = BUF("x")), VS_SN_EV_CLOSE);
	assert_string_equal(vs_transport_why(&r->t), "WILLMSG not asked for");
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPIC, .data = BUF("x")), VS_SN_EV_CLOSE);
	assert_string_equal(vs_transport_why(&r->t), "WILLTOPIC not asked for");
	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .flags = VS_SN_WILL, .data = BUF("c")), 0);
	sn_recv(r, VS_SN_WILLTOPICREQ);
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPIC, .data = BUF("a/#")), VS_SN_EV_CLOSE);
	assert_string_equal(vs_transport_why(&r->t), "WILLTOPIC: not a valid topic name");
	mqtt_none(r);
}

static void connect_refusals(void **state)
{
	struct rig *r = *state;

	/* no client id */
	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .flags = VS_SN_CLEAN), VS_SN_EV_CLOSE);
	assert_string_equal(vs_transport_why(&r->t),
			    "CONNECT without a client id, or one over 1024 bytes");
	mqtt_none(r);
	/* anything before CONNECT */
	assert_int_equal(IN(r, .type = VS_SN_PINGREQ), VS_SN_EV_CLOSE);
	assert_string_equal(vs_transport_why(&r->t), "no CONNECT");
	/* the broker's refusals as MQTT-SN return codes */
	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .data = BUF("c")), VS_SN_EV_READ);
	mqtt_next(r, VS_CONNECT);
	broker(r, connack(VS_RC_SERVER_BUSY));
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_CONGESTION);
	broker(r, connack(VS_RC_NOT_AUTHORIZED));
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_NOT_SUPPORTED);
	broker(r, connack(VS_RC_QUOTA_EXCEEDED));
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_CONGESTION);
	/* still connecting: nothing goes out to a refused client */
	broker(r, pub("ab", 0, 0, "x"));
	sn_none(r);
}

static void connect_bad_client_id_length(void **state)
{
	struct rig *r = *state;
	char id[1026];

	memset(id, 'i', sizeof(id));
	struct vs_sn_packet c = {.type = VS_SN_CONNECT, .data = {(const uint8_t *)id, 1025}};
	assert_int_equal(in_at(r, c, vs_now_ms()), VS_SN_EV_CLOSE);
	c.data.len = 1024;
	assert_int_equal(in_at(r, c, vs_now_ms()), VS_SN_EV_READ);
	assert_int_equal(mqtt_next(r, VS_CONNECT).connect.client_id.len, 1024);
}

/* ---- From the client: PUBLISH, REGISTER, SUBSCRIBE, PINGREQ, DISCONNECT ----------------- */

static void publish_predefined_qos1(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_PUBLISH,
			    .flags = vs_sn_qos_flags(1) | VS_SN_RETAIN | VS_SN_TID_PREDEFINED,
			    .topic_id = 1, .msg_id = 7, .data = BUF("21.5")),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_PUBLISH);
	assert_buf(m.publish.topic, "pre/defined");
	assert_int_equal(m.publish.qos, 1);
	assert_true(m.publish.retain);
	assert_false(m.publish.dup);
	assert_int_equal(m.publish.packet_id, 7);
	assert_buf(m.publish.payload, "21.5");
	assert_int_equal(m.publish.props.present, 0);
	sn_none(r);
	broker(r, ack(VS_PUBACK, 7, VS_RC_SUCCESS));
	struct vs_sn_packet a = sn_recv(r, VS_SN_PUBACK);
	assert_int_equal(a.topic_id, 1);
	assert_int_equal(a.msg_id, 7);
	assert_int_equal(a.rc, VS_SN_RC_ACCEPTED);
	/* a refusal: its code */
	assert_int_equal(IN(r, .type = VS_SN_PUBLISH,
			    .flags = vs_sn_qos_flags(1) | VS_SN_DUP | VS_SN_TID_PREDEFINED,
			    .topic_id = 2, .msg_id = 8, .data = BUF("x")),
			 VS_SN_EV_READ);
	m = mqtt_next(r, VS_PUBLISH);
	assert_buf(m.publish.topic, "other/topic");
	assert_true(m.publish.dup);
	broker(r, ack(VS_PUBACK, 8, VS_RC_NOT_AUTHORIZED));
	a = sn_recv(r, VS_SN_PUBACK);
	assert_int_equal(a.topic_id, 2);
	assert_int_equal(a.rc, VS_SN_RC_NOT_SUPPORTED);
	assert_int_equal(IN(r, .type = VS_SN_PUBLISH,
			    .flags = vs_sn_qos_flags(1) | VS_SN_TID_PREDEFINED, .topic_id = 2,
			    .msg_id = 9, .data = BUF("x")),
			 VS_SN_EV_READ);
	mqtt_next(r, VS_PUBLISH);
	broker(r, ack(VS_PUBACK, 9, VS_RC_QUOTA_EXCEEDED));
	assert_int_equal(sn_recv(r, VS_SN_PUBACK).rc, VS_SN_RC_CONGESTION);
}

static void publish_short_name_qos0(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_PUBLISH,
			    .flags = vs_sn_qos_flags(0) | VS_SN_DUP | VS_SN_TID_SHORT,
			    .topic_id = 'a' << 8 | 'b', .data = BUF("")),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_PUBLISH);
	assert_buf(m.publish.topic, "ab");
	assert_int_equal(m.publish.qos, 0);
	assert_false(m.publish.dup); /* DUP means nothing at QoS 0 */
	assert_false(m.publish.retain);
	assert_int_equal(m.publish.payload.len, 0);
	sn_none(r);
}

static void publish_registered_qos2(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_REGISTER, .msg_id = 3, .data = BUF("reg/topic")), 0);
	struct vs_sn_packet a = sn_recv(r, VS_SN_REGACK);
	uint16_t id = a.topic_id;
	assert_int_equal(a.msg_id, 3);
	assert_int_equal(a.rc, VS_SN_RC_ACCEPTED);
	assert_true(id >= 1 && id <= 65534);
	mqtt_none(r);
	/* the same name again: the same id */
	assert_int_equal(IN(r, .type = VS_SN_REGISTER, .msg_id = 4, .data = BUF("reg/topic")), 0);
	assert_int_equal(sn_recv(r, VS_SN_REGACK).topic_id, id);
	/* another name: another id */
	assert_int_equal(IN(r, .type = VS_SN_REGISTER, .msg_id = 5, .data = BUF("reg/other")), 0);
	assert_int_not_equal(sn_recv(r, VS_SN_REGACK).topic_id, id);
	/* a wildcard cannot be registered */
	assert_int_equal(IN(r, .type = VS_SN_REGISTER, .msg_id = 6, .data = BUF("reg/+")), 0);
	a = sn_recv(r, VS_SN_REGACK);
	assert_int_equal(a.rc, VS_SN_RC_NOT_SUPPORTED);
	assert_int_equal(a.topic_id, 0);

	assert_int_equal(IN(r, .type = VS_SN_PUBLISH, .flags = vs_sn_qos_flags(2), .topic_id = id,
			    .msg_id = 11, .data = BUF("two")),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_PUBLISH);
	assert_buf(m.publish.topic, "reg/topic");
	assert_int_equal(m.publish.qos, 2);
	assert_int_equal(m.publish.packet_id, 11);
	broker(r, ack(VS_PUBREC, 11, VS_RC_SUCCESS));
	assert_int_equal(sn_recv(r, VS_SN_PUBREC).msg_id, 11);
	assert_int_equal(IN(r, .type = VS_SN_PUBREL, .msg_id = 11), VS_SN_EV_READ);
	m = mqtt_next(r, VS_PUBREL);
	assert_int_equal(m.ack.packet_id, 11);
	broker(r, ack(VS_PUBCOMP, 11, VS_RC_SUCCESS));
	assert_int_equal(sn_recv(r, VS_SN_PUBCOMP).msg_id, 11);
	sn_none(r);
	mqtt_none(r);

	/* a refused QoS 2 ends at PUBREC in 5.0: MQTT-SN says so with a PUBACK */
	assert_int_equal(IN(r, .type = VS_SN_PUBLISH, .flags = vs_sn_qos_flags(2), .topic_id = id,
			    .msg_id = 12, .data = BUF("no")),
			 VS_SN_EV_READ);
	mqtt_next(r, VS_PUBLISH);
	broker(r, ack(VS_PUBREC, 12, VS_RC_TOPIC_NAME_INVALID));
	a = sn_recv(r, VS_SN_PUBACK);
	assert_int_equal(a.msg_id, 12);
	assert_int_equal(a.topic_id, id);
	assert_int_equal(a.rc, VS_SN_RC_INVALID_TOPIC);
}

static void publish_unknown_topic_id_gets_puback_invalid_topic(void **state)
{
	struct rig *r = *state;
	static const struct {
		uint8_t flags;
		uint16_t topic, msg;
	} cases[] = {
	    {0x20 | VS_SN_TID_NORMAL, 77, 1},	  {0x00 | VS_SN_TID_NORMAL, 78, 0},
	    {0x40 | VS_SN_TID_PREDEFINED, 99, 2}, {0x00 | VS_SN_TID_PREDEFINED, 3, 0},
	    {0x20 | VS_SN_TID_NORMAL, 0, 3},
	};
	connect_clean(r);

	for (size_t i = 0; i < N(cases); i++) {
		assert_int_equal(IN(r, .type = VS_SN_PUBLISH, .flags = cases[i].flags,
				    .topic_id = cases[i].topic, .msg_id = cases[i].msg,
				    .data = BUF("x")),
				 0);
		struct vs_sn_packet a = sn_recv(r, VS_SN_PUBACK);
		assert_int_equal(a.rc, VS_SN_RC_INVALID_TOPIC);
		assert_int_equal(a.topic_id, cases[i].topic);
		assert_int_equal(a.msg_id, cases[i].msg);
		mqtt_none(r);
	}
	/* QoS 1 with message id 0: not supported */
	assert_int_equal(IN(r, .type = VS_SN_PUBLISH, .flags = 0x20 | VS_SN_TID_PREDEFINED,
			    .topic_id = 1, .msg_id = 0, .data = BUF("x")),
			 0);
	assert_int_equal(sn_recv(r, VS_SN_PUBACK).rc, VS_SN_RC_NOT_SUPPORTED);
	mqtt_none(r);
}

static void subscribe_by_name_id_and_refusals(void **state)
{
	struct rig *r = *state;
	struct vs_sub_entry e;
	size_t pos = 0;
	uint8_t code;
	connect_clean(r);

	/* a filter with wildcards: topic id 0 in the SUBACK */
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .flags = vs_sn_qos_flags(1), .msg_id = 5,
			    .data = BUF("a/+/c")),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_SUBSCRIBE);
	assert_int_equal(m.subscribe.packet_id, 5);
	assert_int_equal(m.subscribe.count, 1);
	assert_int_equal(vs_subscribe_next(&m.subscribe, VS_V5, &pos, &e), 1);
	assert_buf(e.filter, "a/+/c");
	assert_int_equal(e.qos, 1);
	sn_none(r);
	code = 1;
	broker(r, suback(VS_SUBACK, 5, &code));
	struct vs_sn_packet a = sn_recv(r, VS_SN_SUBACK);
	assert_int_equal(a.msg_id, 5);
	assert_int_equal(a.rc, VS_SN_RC_ACCEPTED);
	assert_int_equal(vs_sn_qos(a.flags), 1);
	assert_int_equal(a.topic_id, 0);

	/* a name: its topic id comes in the SUBACK, and a PUBLISH on it needs no REGISTER */
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .flags = vs_sn_qos_flags(2), .msg_id = 6,
			    .data = BUF("plain/topic")),
			 VS_SN_EV_READ);
	m = mqtt_next(r, VS_SUBSCRIBE);
	pos = 0;
	assert_int_equal(vs_subscribe_next(&m.subscribe, VS_V5, &pos, &e), 1);
	assert_buf(e.filter, "plain/topic");
	assert_int_equal(e.qos, 2);
	code = 2;
	broker(r, suback(VS_SUBACK, 6, &code));
	a = sn_recv(r, VS_SN_SUBACK);
	assert_int_equal(vs_sn_qos(a.flags), 2);
	uint16_t id = a.topic_id;
	assert_true(id >= 1 && id <= 65534);
	broker(r, pub("plain/topic", 0, 0, "hello"));
	struct vs_sn_packet p = sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(p.flags & VS_SN_TID_MASK, VS_SN_TID_NORMAL);
	assert_int_equal(p.topic_id, id);
	assert_buf(p.data, "hello");
	/* and a PUBLISH from the client may use it */
	assert_int_equal(IN(r, .type = VS_SN_PUBLISH, .topic_id = id, .data = BUF("x")),
			 VS_SN_EV_READ);
	assert_buf(mqtt_next(r, VS_PUBLISH).publish.topic, "plain/topic");

	/* a predefined id: that id in the SUBACK */
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .flags = VS_SN_TID_PREDEFINED, .msg_id = 7,
			    .topic_id = 2),
			 VS_SN_EV_READ);
	m = mqtt_next(r, VS_SUBSCRIBE);
	pos = 0;
	assert_int_equal(vs_subscribe_next(&m.subscribe, VS_V5, &pos, &e), 1);
	assert_buf(e.filter, "other/topic");
	code = 0;
	broker(r, suback(VS_SUBACK, 7, &code));
	a = sn_recv(r, VS_SN_SUBACK);
	assert_int_equal(a.topic_id, 2);
	assert_int_equal(a.rc, VS_SN_RC_ACCEPTED);

	/* a short name */
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .flags = VS_SN_TID_SHORT, .msg_id = 8,
			    .topic_id = 'x' << 8 | 'y'),
			 VS_SN_EV_READ);
	m = mqtt_next(r, VS_SUBSCRIBE);
	pos = 0;
	assert_int_equal(vs_subscribe_next(&m.subscribe, VS_V5, &pos, &e), 1);
	assert_buf(e.filter, "xy");

	/* the broker's refusals */
	code = VS_RC_NOT_AUTHORIZED;
	broker(r, suback(VS_SUBACK, 8, &code));
	a = sn_recv(r, VS_SN_SUBACK);
	assert_int_equal(a.rc, VS_SN_RC_NOT_SUPPORTED);
	assert_int_equal(a.msg_id, 8);
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .msg_id = 9, .data = BUF("q/#")),
			 VS_SN_EV_READ);
	mqtt_next(r, VS_SUBSCRIBE);
	code = VS_RC_QUOTA_EXCEEDED;
	broker(r, suback(VS_SUBACK, 9, &code));
	assert_int_equal(sn_recv(r, VS_SN_SUBACK).rc, VS_SN_RC_CONGESTION);
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .msg_id = 10, .data = BUF("$share/g/t")),
			 VS_SN_EV_READ);
	mqtt_next(r, VS_SUBSCRIBE);
	code = VS_RC_TOPIC_FILTER_INVALID;
	broker(r, suback(VS_SUBACK, 10, &code));
	assert_int_equal(sn_recv(r, VS_SN_SUBACK).rc, VS_SN_RC_INVALID_TOPIC);

	/* the gateway's own refusals: no MQTT at all */
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .msg_id = 11, .data = BUF("a/#/b")), 0);
	a = sn_recv(r, VS_SN_SUBACK);
	assert_int_equal(a.rc, VS_SN_RC_INVALID_TOPIC);
	assert_int_equal(a.msg_id, 11);
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .flags = VS_SN_TID_PREDEFINED, .msg_id = 12,
			    .topic_id = 42),
			 0);
	assert_int_equal(sn_recv(r, VS_SN_SUBACK).rc, VS_SN_RC_INVALID_TOPIC);
	mqtt_none(r);
	/* message id 0 */
	assert_int_equal(IN(r, .type = VS_SN_SUBSCRIBE, .msg_id = 0, .data = BUF("a")),
			 VS_SN_EV_CLOSE);
	mqtt_none(r);
}

static void unsubscribe(void **state)
{
	struct rig *r = *state;
	uint8_t code = 0;
	struct vs_buf f;
	size_t pos = 0;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_UNSUBSCRIBE, .msg_id = 20, .data = BUF("a/+")),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_UNSUBSCRIBE);
	assert_int_equal(m.unsubscribe.packet_id, 20);
	assert_int_equal(vs_unsubscribe_next(&m.unsubscribe, &pos, &f), 1);
	assert_buf(f, "a/+");
	sn_none(r);
	broker(r, suback(VS_UNSUBACK, 20, &code));
	assert_int_equal(sn_recv(r, VS_SN_UNSUBACK).msg_id, 20);
	/* by predefined id */
	assert_int_equal(IN(r, .type = VS_SN_UNSUBSCRIBE, .flags = VS_SN_TID_PREDEFINED,
			    .msg_id = 21, .topic_id = 1),
			 VS_SN_EV_READ);
	m = mqtt_next(r, VS_UNSUBSCRIBE);
	pos = 0;
	assert_int_equal(vs_unsubscribe_next(&m.unsubscribe, &pos, &f), 1);
	assert_buf(f, "pre/defined");
	/* an invalid filter is answered at once */
	assert_int_equal(IN(r, .type = VS_SN_UNSUBSCRIBE, .msg_id = 22, .data = BUF("#/a")), 0);
	assert_int_equal(sn_recv(r, VS_SN_UNSUBACK).msg_id, 22);
	mqtt_none(r);
}

static void pingreq_goes_to_the_broker(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_PINGREQ), VS_SN_EV_READ);
	mqtt_next(r, VS_PINGREQ);
	sn_none(r);
	broker(r, (struct vs_packet){.type = VS_PINGRESP});
	sn_recv(r, VS_SN_PINGRESP);
	/* an active client's PINGREQ with its client id is an ordinary one */
	assert_int_equal(IN(r, .type = VS_SN_PINGREQ, .data = BUF("sensor")), VS_SN_EV_READ);
	mqtt_next(r, VS_PINGREQ);
	/* the client's PINGRESP (to nothing) is ignored */
	assert_int_equal(IN(r, .type = VS_SN_PINGRESP), 0);
	mqtt_none(r);
}

static void disconnect_from_the_client(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_DISCONNECT), VS_SN_EV_READ);
	sn_recv(r, VS_SN_DISCONNECT);
	struct vs_packet m = mqtt_next(r, VS_DISCONNECT);
	assert_int_equal(m.disconnect.reason, 0);
	/* gone: nothing more goes either way, but a CONNECT starts over */
	assert_int_equal(IN(r, .type = VS_SN_PUBLISH, .flags = VS_SN_TID_SHORT, .topic_id = 0x6162,
			    .data = BUF("x")),
			 0);
	mqtt_none(r);
	broker(r, pub("ab", 1, 1, "late"));
	broker(r, (struct vs_packet){.type = VS_DISCONNECT});
	sn_none(r);
	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .data = BUF("sensor")), VS_SN_EV_RESTART);
}

static void disconnect_from_the_broker(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	broker(r, (struct vs_packet){.type = VS_DISCONNECT});
	sn_recv(r, VS_SN_DISCONNECT);
	broker(r, (struct vs_packet){.type = VS_DISCONNECT});
	sn_none(r);
}

static void unexpected_messages_close(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_SUBACK, .msg_id = 1), VS_SN_EV_CLOSE);
	assert_string_equal(vs_transport_why(&r->t), "SUBACK not expected from a client");
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPICREQ), VS_SN_EV_CLOSE);
	assert_string_equal(vs_transport_why(&r->t), "WILLTOPICREQ not expected from a client");
	/* acknowledgements of nothing are stale, not errors */
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .msg_id = 1, .topic_id = 1), 0);
	assert_int_equal(IN(r, .type = VS_SN_REGACK, .msg_id = 1, .topic_id = 1), 0);
	assert_int_equal(IN(r, .type = VS_SN_PUBCOMP, .msg_id = 1), 0);
	mqtt_none(r);
	/* except a PUBREC, repeated after our PUBREL was lost: the broker answers it again */
	assert_int_equal(IN(r, .type = VS_SN_PUBREC, .msg_id = 4), VS_SN_EV_READ);
	assert_int_equal(mqtt_next(r, VS_PUBREC).ack.packet_id, 4);
}

static void will_updates(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_WILLTOPICUPD,
			    .flags = vs_sn_qos_flags(2) | VS_SN_RETAIN, .data = BUF("new/will")),
			 VS_SN_EV_WILL);
	const struct vs_sn_will *u = vs_sn_will(&r->t);
	assert_true(u->topic_update);
	assert_false(u->remove);
	assert_int_equal(u->qos, 2);
	assert_true(u->retain);
	assert_buf(u->topic, "new/will");
	sn_none(r);
	mqtt_none(r);
	vs_sn_will_done(&r->t, VS_SN_RC_ACCEPTED);
	assert_int_equal(sn_recv(r, VS_SN_WILLTOPICRESP).rc, VS_SN_RC_ACCEPTED);

	assert_int_equal(IN(r, .type = VS_SN_WILLMSGUPD, .data = BUF("new message")),
			 VS_SN_EV_WILL);
	u = vs_sn_will(&r->t);
	assert_false(u->topic_update);
	assert_buf(u->payload, "new message");
	vs_sn_will_done(&r->t, VS_SN_RC_NOT_SUPPORTED);
	assert_int_equal(sn_recv(r, VS_SN_WILLMSGRESP).rc, VS_SN_RC_NOT_SUPPORTED);

	assert_int_equal(IN(r, .type = VS_SN_WILLTOPICUPD, .empty_will = true), VS_SN_EV_WILL);
	u = vs_sn_will(&r->t);
	assert_true(u->topic_update);
	assert_true(u->remove);
	vs_sn_will_done(&r->t, VS_SN_RC_ACCEPTED);
	sn_recv(r, VS_SN_WILLTOPICRESP);

	/* a wildcard will topic is refused by the gateway */
	assert_int_equal(IN(r, .type = VS_SN_WILLTOPICUPD, .data = BUF("w/+")), 0);
	assert_int_equal(sn_recv(r, VS_SN_WILLTOPICRESP).rc, VS_SN_RC_NOT_SUPPORTED);
	mqtt_none(r);
}

/* ---- From the broker: topic ids, one message in flight, retransmission ------------------- */

static void broker_publish_registers_a_new_topic_first(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	broker(r, pub("new/topic", 1, 10, "first"));
	assert_false(vs_sn_idle(&r->t));
	uint16_t id = expect_register(r, "new/topic");
	struct vs_sn_packet p = sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(p.flags & VS_SN_TID_MASK, VS_SN_TID_NORMAL);
	assert_int_equal(vs_sn_qos(p.flags), 1);
	assert_false(p.flags & VS_SN_DUP);
	assert_int_equal(p.topic_id, id);
	assert_int_equal(p.msg_id, 10);
	assert_buf(p.data, "first");
	sn_none(r);
	mqtt_none(r);
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = id, .msg_id = 10), VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_PUBACK);
	assert_int_equal(m.ack.packet_id, 10);
	assert_int_equal(m.ack.reason, 0);
	assert_true(vs_sn_idle(&r->t));

	/* the same topic again: no REGISTER */
	broker(r, pub("new/topic", 0, 0, "second"));
	p = sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(p.topic_id, id);
	assert_int_equal(vs_sn_qos(p.flags), 0);
	assert_buf(p.data, "second");
	assert_true(vs_sn_idle(&r->t));

	/* predefined and short topics need none either */
	struct vs_packet q = pub("pre/defined", 2, 11, "pre");
	q.publish.retain = true;
	broker(r, q);
	p = sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(p.flags & VS_SN_TID_MASK, VS_SN_TID_PREDEFINED);
	assert_int_equal(p.topic_id, 1);
	assert_int_equal(vs_sn_qos(p.flags), 2);
	assert_true(p.flags & VS_SN_RETAIN);
	assert_int_equal(p.msg_id, 11);
	/* QoS 2: PUBREC, the broker's PUBREL (queued, acknowledged by PUBCOMP) */
	assert_int_equal(IN(r, .type = VS_SN_PUBREC, .msg_id = 11), VS_SN_EV_READ);
	assert_int_equal(mqtt_next(r, VS_PUBREC).ack.packet_id, 11);
	broker(r, ack(VS_PUBREL, 11, 0));
	assert_int_equal(sn_recv(r, VS_SN_PUBREL).msg_id, 11);
	assert_int_equal(IN(r, .type = VS_SN_PUBCOMP, .msg_id = 11), VS_SN_EV_READ);
	assert_int_equal(mqtt_next(r, VS_PUBCOMP).ack.packet_id, 11);

	broker(r, pub("xy", 0, 0, "short"));
	p = sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(p.flags & VS_SN_TID_MASK, VS_SN_TID_SHORT);
	assert_int_equal(p.topic_id, 'x' << 8 | 'y');
	sn_none(r);
	assert_true(vs_sn_idle(&r->t));
}

static void one_message_in_flight(void **state)
{
	struct rig *r = *state;
	uint8_t buf[256];
	size_t len = 0;
	connect_clean(r);

	/* three packets in one write: QoS 1, QoS 0, QoS 1 */
	struct vs_packet ps[3] = {pub("ab", 1, 1, "one"), pub("ab", 0, 0, "two"),
				  pub("ab", 1, 3, "three")};
	for (int i = 0; i < 3; i++) {
		ssize_t n = vs_codec_encode(&ps[i], VS_V5, buf + len, sizeof(buf) - len);
		assert_true(n > 0);
		len += (size_t)n;
	}
	assert_int_equal(r->t.ops->write(&r->t, buf, len), len);
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "one");
	sn_none(r);
	/* a wrong acknowledgement changes nothing */
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 3), 0);
	assert_int_equal(IN(r, .type = VS_SN_PUBCOMP, .msg_id = 1), 0);
	sn_none(r);
	mqtt_none(r);
	/* the right one: the QoS 0 goes, and the QoS 1 behind it */
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 1),
			 VS_SN_EV_READ);
	assert_int_equal(mqtt_next(r, VS_PUBACK).ack.packet_id, 1);
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "two");
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "three");
	sn_none(r);
	assert_false(vs_sn_idle(&r->t));
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 3),
			 VS_SN_EV_READ);
	assert_int_equal(mqtt_next(r, VS_PUBACK).ack.packet_id, 3);
	assert_true(vs_sn_idle(&r->t));
}

static void retransmission_with_dup_then_lost(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	broker(r, pub("ab", 1, 5, "again"));
	int64_t t0 = vs_now_ms();
	struct vs_sn_packet p = sn_recv(r, VS_SN_PUBLISH);
	assert_false(p.flags & VS_SN_DUP);
	assert_int_equal(vs_sn_tick(&r->t, t0 + 10), 0);
	sn_none(r);
	/* Tretry later: sent again, with DUP (section 6.13) */
	assert_int_equal(vs_sn_tick(&r->t, t0 + RETRY_MS), 0);
	p = sn_recv(r, VS_SN_PUBLISH);
	assert_true(p.flags & VS_SN_DUP);
	assert_int_equal(p.msg_id, 5);
	assert_buf(p.data, "again");
	assert_int_equal(vs_sn_tick(&r->t, t0 + RETRY_MS + RETRY_MS / 2), 0);
	sn_none(r);
	assert_int_equal(vs_sn_tick(&r->t, t0 + 2 * RETRY_MS), 0);
	assert_true(sn_recv(r, VS_SN_PUBLISH).flags & VS_SN_DUP);
	/* Nretry (2) sends after the first: then the client is lost */
	assert_int_equal(vs_sn_tick(&r->t, t0 + 3 * RETRY_MS), VS_SN_EV_CLOSE);
	sn_none(r);
	assert_string_equal(vs_transport_why(&r->t),
			    "lost: PUBLISH not acknowledged after 3 tries");
	mqtt_none(r);
}

static void retransmission_of_register_has_no_dup(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	broker(r, pub("long/topic", 0, 0, "x"));
	int64_t t0 = vs_now_ms();
	struct vs_sn_packet g = sn_recv(r, VS_SN_REGISTER);
	uint8_t first[64];
	memcpy(first, r->dgram, r->dgram[0]);
	assert_int_equal(vs_sn_tick(&r->t, t0 + RETRY_MS), 0);
	sn_recv(r, VS_SN_REGISTER);
	assert_memory_equal(r->dgram, first, first[0]); /* the same bytes */
	/* acknowledged late: what follows goes at once, and nothing is sent again */
	assert_int_equal(IN_AT(r, t0 + RETRY_MS + 1, .type = VS_SN_REGACK, .topic_id = g.topic_id,
			       .msg_id = g.msg_id),
			 0);
	assert_int_equal(sn_recv(r, VS_SN_PUBLISH).topic_id, g.topic_id);
	assert_int_equal(vs_sn_tick(&r->t, t0 + 10 * RETRY_MS), 0);
	sn_none(r);
	assert_true(vs_sn_idle(&r->t));
}

static void client_refuses_register_or_topic(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	/* REGACK refused: the PUBLISH behind it is dropped, the broker told it failed */
	broker(r, pub("refused/topic", 1, 30, "x"));
	struct vs_sn_packet g = sn_recv(r, VS_SN_REGISTER);
	assert_int_equal(IN(r, .type = VS_SN_REGACK, .topic_id = g.topic_id, .msg_id = g.msg_id,
			    .rc = VS_SN_RC_NOT_SUPPORTED),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_PUBACK);
	assert_int_equal(m.ack.packet_id, 30);
	assert_true(m.ack.reason >= 0x80);
	sn_none(r);
	assert_true(vs_sn_idle(&r->t));
	/* ... and the topic is REGISTERed again next time */
	broker(r, pub("refused/topic", 1, 31, "y"));
	g = sn_recv(r, VS_SN_REGISTER);
	assert_buf(g.data, "refused/topic");
	assert_int_equal(IN(r, .type = VS_SN_REGACK, .topic_id = g.topic_id, .msg_id = g.msg_id),
			 0);
	struct vs_sn_packet p = sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(p.topic_id, g.topic_id);
	/* PUBACK "invalid topic id" from the client (it lost its registrations): the broker's
	 * PUBLISH failed, and the topic is REGISTERed again next time */
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = p.topic_id, .msg_id = 31,
			    .rc = VS_SN_RC_INVALID_TOPIC),
			 VS_SN_EV_READ);
	m = mqtt_next(r, VS_PUBACK);
	assert_int_equal(m.ack.packet_id, 31);
	assert_true(m.ack.reason >= 0x80);
	sn_none(r);
	assert_true(vs_sn_idle(&r->t));
	broker(r, pub("refused/topic", 0, 0, "again"));
	g = sn_recv(r, VS_SN_REGISTER);
	assert_buf(g.data, "refused/topic");
}

static void client_refuses_qos2_publish_with_puback(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	/* Section 5.4.13: a PUBACK with a return code also answers a QoS 2 PUBLISH it refuses
	 * (6.7: "invalid topic id"). The flow ends there, for the broker too (5.0: PUBREC with a
	 * reason >= 0x80), and nothing is sent again. */
	broker(r, pub("q2/topic", 2, 50, "x"));
	uint16_t id = expect_register(r, "q2/topic");
	struct vs_sn_packet p = sn_recv(r, VS_SN_PUBLISH);
	int64_t t0 = vs_now_ms();
	assert_int_equal(IN_AT(r, t0, .type = VS_SN_PUBACK, .topic_id = id, .msg_id = 50,
			       .rc = VS_SN_RC_INVALID_TOPIC),
			 VS_SN_EV_READ);
	struct vs_packet m = mqtt_next(r, VS_PUBREC);
	assert_int_equal(m.ack.packet_id, 50);
	assert_true(m.ack.reason >= 0x80);
	assert_true(vs_sn_idle(&r->t));
	assert_int_equal(vs_sn_tick(&r->t, t0 + 10 * RETRY_MS), 0);
	sn_none(r);
	/* registered again next time */
	broker(r, pub("q2/topic", 2, 51, "y"));
	id = expect_register(r, "q2/topic");
	p = sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(p.topic_id, id);
	/* congestion on a short topic */
	assert_int_equal(IN(r, .type = VS_SN_PUBREC, .msg_id = 51), VS_SN_EV_READ);
	mqtt_next(r, VS_PUBREC);
	broker(r, ack(VS_PUBREL, 51, 0));
	sn_recv(r, VS_SN_PUBREL);
	assert_int_equal(IN(r, .type = VS_SN_PUBCOMP, .msg_id = 51), VS_SN_EV_READ);
	mqtt_next(r, VS_PUBCOMP);
	broker(r, pub("ab", 2, 52, "z"));
	sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 52,
			    .rc = VS_SN_RC_CONGESTION),
			 VS_SN_EV_READ);
	m = mqtt_next(r, VS_PUBREC);
	assert_int_equal(m.ack.packet_id, 52);
	assert_true(m.ack.reason >= 0x80);
	assert_true(vs_sn_idle(&r->t));
	/* an accepting PUBACK is no answer to a QoS 2 PUBLISH: it stays in flight */
	broker(r, pub("ab", 2, 53, "w"));
	sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 53), 0);
	mqtt_none(r);
	assert_false(vs_sn_idle(&r->t));
}

/* ---- Sleep ------------------------------------------------------------------------------- */

static void sleep_keeps_messages_until_woken(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_DISCONNECT, .has_duration = true, .duration = 90),
			 VS_SN_EV_SLEEP);
	sn_recv(r, VS_SN_DISCONNECT);
	mqtt_none(r); /* the session goes on */
	assert_int_equal(vs_sn_sleep_s(&r->t), 90);
	assert_true(vs_sn_sleeping(&r->t));
	assert_false(vs_sn_awake(&r->t));

	/* kept, not sent, not retransmitted */
	broker(r, pub("ab", 1, 1, "kept-1"));
	broker(r, pub("ab", 0, 0, "kept-2"));
	sn_none(r);
	assert_false(vs_sn_idle(&r->t));
	assert_int_equal(vs_sn_tick(&r->t, vs_now_ms() + 100 * RETRY_MS), 0);
	sn_none(r);
	assert_false(vs_sn_settle(&r->t, false)); /* not awake */

	/* a PINGREQ with another client id is not this client's */
	assert_int_equal(IN(r, .type = VS_SN_PINGREQ, .data = BUF("other")), 0);
	sn_none(r);
	mqtt_none(r);
	/* its own wakes it: what was kept goes, one in flight */
	assert_int_equal(IN(r, .type = VS_SN_PINGREQ, .data = BUF("sensor")),
			 VS_SN_EV_WAKE | VS_SN_EV_ROOM);
	assert_true(vs_sn_awake(&r->t));
	assert_true(vs_sn_sleeping(&r->t));
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "kept-1");
	sn_none(r);
	mqtt_none(r);				  /* no PINGREQ for the broker */
	assert_false(vs_sn_settle(&r->t, false)); /* the queue is not empty */
	sn_none(r);
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 1),
			 VS_SN_EV_READ | VS_SN_EV_ROOM);
	mqtt_next(r, VS_PUBACK);
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "kept-2");
	assert_true(vs_sn_idle(&r->t));
	/* the broker has more: no PINGRESP yet */
	assert_false(vs_sn_settle(&r->t, true));
	sn_none(r);
	/* nothing more: PINGRESP, and asleep again */
	assert_true(vs_sn_settle(&r->t, false));
	sn_recv(r, VS_SN_PINGRESP);
	assert_false(vs_sn_awake(&r->t));
	assert_true(vs_sn_sleeping(&r->t));
	broker(r, pub("ab", 0, 0, "kept-3"));
	sn_none(r);

	/* a PINGREQ without a client id wakes it too */
	assert_int_equal(IN(r, .type = VS_SN_PINGREQ), VS_SN_EV_WAKE | VS_SN_EV_ROOM);
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "kept-3");
	assert_true(vs_sn_settle(&r->t, false));
	sn_recv(r, VS_SN_PINGRESP);
	mqtt_none(r);
}

static void sleep_then_connect_makes_it_active(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	assert_int_equal(IN(r, .type = VS_SN_DISCONNECT, .has_duration = true, .duration = 30),
			 VS_SN_EV_SLEEP);
	sn_recv(r, VS_SN_DISCONNECT);
	broker(r, pub("ab", 1, 1, "kept"));
	sn_none(r);
	/* Section 6.14: a CONNECT (no clean session, no will) ends the sleep; the session goes
	 * on, and what was kept goes to the client at once. */
	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .duration = 45, .data = BUF("sensor")),
			 VS_SN_EV_ACTIVE | VS_SN_EV_ROOM);
	assert_int_equal(sn_recv(r, VS_SN_CONNACK).rc, VS_SN_RC_ACCEPTED);
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "kept");
	mqtt_none(r);
	assert_int_equal(vs_sn_keepalive(&r->t), 45);
	assert_false(vs_sn_sleeping(&r->t));
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 1),
			 VS_SN_EV_READ);
	mqtt_next(r, VS_PUBACK);
	/* asleep again, then a CONNECT with clean session: a new connection */
	assert_int_equal(IN(r, .type = VS_SN_DISCONNECT, .has_duration = true, .duration = 30),
			 VS_SN_EV_SLEEP);
	sn_recv(r, VS_SN_DISCONNECT);
	assert_int_equal(IN(r, .type = VS_SN_CONNECT, .flags = VS_SN_CLEAN, .data = BUF("sensor")),
			 VS_SN_EV_RESTART);
	/* a DISCONNECT without duration while asleep ends it */
	assert_int_equal(IN(r, .type = VS_SN_DISCONNECT), VS_SN_EV_READ);
	sn_recv(r, VS_SN_DISCONNECT);
	mqtt_next(r, VS_DISCONNECT);
}

static void sleep_with_a_message_in_flight(void **state)
{
	struct rig *r = *state;
	connect_clean(r);

	broker(r, pub("ab", 1, 9, "in flight"));
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "in flight");
	assert_int_equal(IN(r, .type = VS_SN_DISCONNECT, .has_duration = true, .duration = 30),
			 VS_SN_EV_SLEEP);
	sn_recv(r, VS_SN_DISCONNECT);
	assert_int_equal(vs_sn_tick(&r->t, vs_now_ms() + 10 * RETRY_MS), 0);
	sn_none(r);
	/* woken: sent again at once */
	assert_int_equal(IN(r, .type = VS_SN_PINGREQ, .data = BUF("sensor")),
			 VS_SN_EV_WAKE | VS_SN_EV_ROOM);
	assert_buf(sn_recv(r, VS_SN_PUBLISH).data, "in flight");
	assert_false(vs_sn_settle(&r->t, false));
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 9),
			 VS_SN_EV_READ | VS_SN_EV_ROOM);
	assert_true(vs_sn_settle(&r->t, false));
	sn_recv(r, VS_SN_PINGRESP);
}

/* ---- The queue's limit ------------------------------------------------------------------- */

static void queue_limit_blocks_write_until_an_ack(void **state)
{
	struct rig *r = *state;
	enum { QUEUE_MAX = 64 };
	connect_clean(r);

	for (int i = 1; i <= QUEUE_MAX - 1; i++)
		broker(r, pub("ab", 1, (uint16_t)i, "q"));
	assert_int_equal(sn_recv(r, VS_SN_PUBLISH).msg_id, 1);
	sn_none(r);
	/* two packets in one write, room for one: the first is taken */
	uint8_t buf[64];
	struct vs_packet a = pub("ab", 1, 64, "q"), b = pub("ab", 1, 65, "q");
	ssize_t na = vs_codec_encode(&a, VS_V5, buf, sizeof(buf));
	ssize_t nb = vs_codec_encode(&b, VS_V5, buf + na, sizeof(buf) - (size_t)na);
	assert_int_equal(r->t.ops->write(&r->t, buf, (size_t)(na + nb)), na);
	/* full: nothing is taken, not even an answer that needs no queue */
	assert_int_equal(r->t.ops->write(&r->t, buf + na, (size_t)nb), -EAGAIN);
	struct vs_packet pr = {.type = VS_PINGRESP};
	assert_int_equal(bwrite(r, &pr), -EAGAIN);
	sn_none(r);
	/* an ack makes room, and says so */
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 1),
			 VS_SN_EV_READ | VS_SN_EV_ROOM);
	mqtt_next(r, VS_PUBACK);
	assert_int_equal(sn_recv(r, VS_SN_PUBLISH).msg_id, 2);
	assert_int_equal(r->t.ops->write(&r->t, buf + na, (size_t)nb), nb);
	assert_int_equal(bwrite(r, &pr), -EAGAIN);
	/* ROOM once per block */
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 2),
			 VS_SN_EV_READ | VS_SN_EV_ROOM);
	mqtt_next(r, VS_PUBACK);
	sn_recv(r, VS_SN_PUBLISH);
	assert_int_equal(IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = 3),
			 VS_SN_EV_READ);
	mqtt_next(r, VS_PUBACK);
	sn_recv(r, VS_SN_PUBLISH);
	/* the rest, in order */
	for (int i = 4; i <= QUEUE_MAX + 1; i++) {
		assert_int_equal(
		    IN(r, .type = VS_SN_PUBACK, .topic_id = 0x6162, .msg_id = (uint16_t)i),
		    VS_SN_EV_READ);
		assert_int_equal(mqtt_next(r, VS_PUBACK).ack.packet_id, i);
		if (i < QUEUE_MAX + 1)
			assert_int_equal(sn_recv(r, VS_SN_PUBLISH).msg_id, i + 1);
	}
	sn_none(r);
	assert_true(vs_sn_idle(&r->t));
	assert_int_equal(bwrite(r, &pr), 2);
	sn_recv(r, VS_SN_PINGRESP);
}

static void broker_garbage_is_an_error(void **state)
{
	struct rig *r = *state;
	static const uint8_t bad[] = {0x30, 0x02, 0x00, 0x05}; /* topic longer than the packet */
	connect_clean(r);

	assert_int_equal(r->t.ops->write(&r->t, bad, sizeof(bad)), -EPROTO);
	assert_string_equal(vs_transport_why(&r->t),
			    "MQTT-SN gateway: unreadable packet from the broker");
}

static void undeliverable_publish_is_acknowledged_to_the_broker(void **state)
{
	struct rig *r = *state;
	static char big[65600];
	connect_clean(r);

	/* larger than a datagram */
	memset(big, 'p', sizeof(big) - 1);
	struct vs_packet m = pub("ab", 1, 40, big);
	assert_true(vs_codec_size(&m, VS_V5) > 65507);
	broker(r, m);
	sn_none(r);
	m = mqtt_next(r, VS_PUBACK);
	assert_int_equal(m.ack.packet_id, 40);
	assert_true(m.ack.reason >= 0x80);
	m = pub("ab", 2, 41, big);
	broker(r, m);
	m = mqtt_next(r, VS_PUBREC);
	assert_int_equal(m.ack.packet_id, 41);
	assert_true(m.ack.reason >= 0x80);
	broker(r, pub("ab", 0, 0, big));
	mqtt_none(r);
	sn_none(r);
	assert_true(vs_sn_idle(&r->t));
}

int main(void)
{
#define RIG(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(topics_good_file),
	    cmocka_unit_test(topics_empty_files),
	    cmocka_unit_test(topics_errors_name_their_line),
	    cmocka_unit_test(topics_load_files),
	    RIG(client_open_registers_and_close_removes),
	    RIG(client_close_keeps_a_successor_in_the_table),
	    RIG(connect_clean_session),
	    RIG(connect_persistent_session),
	    RIG(connect_will_dialogue),
	    RIG(connect_will_empty_topic_means_no_will),
	    RIG(connect_will_bad_topic_or_order_closes),
	    RIG(connect_refusals),
	    RIG(connect_bad_client_id_length),
	    RIG(publish_predefined_qos1),
	    RIG(publish_short_name_qos0),
	    RIG(publish_registered_qos2),
	    RIG(publish_unknown_topic_id_gets_puback_invalid_topic),
	    RIG(subscribe_by_name_id_and_refusals),
	    RIG(unsubscribe),
	    RIG(pingreq_goes_to_the_broker),
	    RIG(disconnect_from_the_client),
	    RIG(disconnect_from_the_broker),
	    RIG(unexpected_messages_close),
	    RIG(will_updates),
	    RIG(broker_publish_registers_a_new_topic_first),
	    RIG(one_message_in_flight),
	    RIG(retransmission_with_dup_then_lost),
	    RIG(retransmission_of_register_has_no_dup),
	    RIG(client_refuses_register_or_topic),
	    RIG(client_refuses_qos2_publish_with_puback),
	    RIG(sleep_keeps_messages_until_woken),
	    RIG(sleep_then_connect_makes_it_active),
	    RIG(sleep_with_a_message_in_flight),
	    RIG(queue_limit_blocks_write_until_an_ack),
	    RIG(broker_garbage_is_an_error),
	    RIG(undeliverable_publish_is_acknowledged_to_the_broker),
	};
#undef RIG
	return cmocka_run_group_tests_name("sn", tests, NULL, NULL);
}
