/*
 * Unit tests for the client protocol core (src/proto/client.c), its SCRAM-SHA-256 enhanced
 * authentication (src/client/auth.c) and the properties API (src/client/props.c): no sockets,
 * no threads. Each test plays the broker by feeding encoded packets to vs_cproto_input() and
 * decoding what the core put in `out`; for SCRAM the broker's messages come from the server
 * role of src/auth/scram.c, with RFC 7677's nonces, or are scripted by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/scram.h"
#include "base/base64.h"
#include "base/error.h"
#include "client/auth.h"
#include "client/props.h"
#include "codec/codec.h"
#include "proto/client.h"

struct rec {
	int connacks;
	int messages;
	char last_payload[64];
	char last_topic[64];
	int published[16];
	int published_reason[16];
	int n_published;
	int subacks;
	int disconnects;
};

static void ev_connack(void *ctx, const struct vs_connack *ca)
{
	((struct rec *)ctx)->connacks++;
}
static void ev_message(void *ctx, const struct vs_publish *p)
{
	struct rec *r = ctx;
	r->messages++;
	snprintf(r->last_payload, sizeof(r->last_payload), "%.*s", (int)p->payload.len,
		 (const char *)p->payload.p);
	snprintf(r->last_topic, sizeof(r->last_topic), "%.*s", (int)p->topic.len,
		 (const char *)p->topic.p);
}
static void ev_published(void *ctx, uint16_t id, int reason, const struct vs_props *props)
{
	struct rec *r = ctx;
	r->published_reason[r->n_published] = reason;
	r->published[r->n_published++] = id;
}
static void ev_suback(void *ctx, uint16_t id, const struct vs_suback *sa)
{
	((struct rec *)ctx)->subacks++;
}
static void ev_disconnect(void *ctx, const struct vs_disconnect *d)
{
	((struct rec *)ctx)->disconnects++;
}

static const struct vs_cproto_events events = {
    .connack = ev_connack,
    .message = ev_message,
    .published = ev_published,
    .suback = ev_suback,
    .unsuback = ev_suback,
    .disconnect = ev_disconnect,
};

/* Decodes the next packet the core wrote; returns its type, 0 if none. */
static int next_out(struct vs_cproto *cp, int version, struct vs_packet *p)
{
	if (vs_bytes_avail(&cp->out) == 0)
		return 0;
	struct vs_decode_opts o = {.version = (uint8_t)version};
	enum vs_reason why;
	ssize_t n;
	if (vs_bytes_head(&cp->out)[0] >> 4 == VS_CONNECT)
		o.version = 0;
	/* decode as the server would see it */
	n = vs_codec_decode(vs_bytes_head(&cp->out), vs_bytes_avail(&cp->out), &o, p, &why);
	assert_true(n > 0);
	vs_bytes_consume(&cp->out, (size_t)n);
	return p->type;
}

static void feed(struct vs_cproto *cp, int version, const struct vs_packet *p, int expect)
{
	uint8_t buf[512];
	ssize_t n = vs_codec_encode(p, version, buf, sizeof(buf));
	assert_true(n > 0);
	enum vs_reason why;
	ssize_t rc = vs_cproto_input(cp, buf, (size_t)n, 1000, &why);
	assert_int_equal(rc, expect < 0 ? expect : n);
}

static void connect_ok(struct vs_cproto *cp, int version, bool session_present)
{
	struct vs_connect c = {.version = (uint8_t)version, .clean = true, .keepalive = 10};
	c.client_id.p = (const uint8_t *)"t";
	c.client_id.len = 1;
	assert_int_equal(vs_cproto_start(cp, &c, 0), 0);
	struct vs_packet p;
	assert_int_equal(next_out(cp, version, &p), VS_CONNECT);
	struct vs_packet ca = {.type = VS_CONNACK};
	ca.connack.session_present = session_present;
	feed(cp, version, &ca, 0);
	assert_int_equal(cp->state, VS_CS_CONNECTED);
}

static int publish(struct vs_cproto *cp, int qos, const char *payload)
{
	struct vs_publish p = {.qos = (uint8_t)qos};
	p.topic.p = (const uint8_t *)"a/b";
	p.topic.len = 3;
	p.payload.p = (const uint8_t *)payload;
	p.payload.len = strlen(payload);
	return vs_cproto_publish(cp, &p, 0);
}

static void ack(struct vs_cproto *cp, int type, uint16_t id)
{
	struct vs_packet a = {.type = (uint8_t)type};
	a.ack.packet_id = id;
	feed(cp, VS_V311, &a, 0);
}

/* A 5.0 connection whose CONNACK allows `alias_max` topic aliases (0: no property). */
static void connect_v5_aliases(struct vs_cproto *cp, int alias_max, bool session_present)
{
	struct vs_connect c = {.version = VS_V5, .clean = !session_present, .keepalive = 10};
	c.client_id.p = (const uint8_t *)"t";
	c.client_id.len = 1;
	assert_int_equal(vs_cproto_start(cp, &c, 0), 0);
	struct vs_packet p;
	assert_int_equal(next_out(cp, VS_V5, &p), VS_CONNECT);
	struct vs_packet ca = {.type = VS_CONNACK};
	ca.connack.session_present = session_present;
	if (alias_max) {
		ca.connack.props.present = 1ull << VS_PROP_TOPIC_ALIAS_MAX;
		ca.connack.props.topic_alias_max = (uint16_t)alias_max;
	}
	feed(cp, VS_V5, &ca, 0);
	assert_int_equal(cp->state, VS_CS_CONNECTED);
}

static int publish_to(struct vs_cproto *cp, const char *topic, int qos, int own_alias)
{
	struct vs_publish p = {.qos = (uint8_t)qos};
	p.topic.p = (const uint8_t *)topic;
	p.topic.len = strlen(topic);
	p.payload.p = (const uint8_t *)"pay";
	p.payload.len = 3;
	/* a property that must survive the alias being added to the encoded bytes */
	p.props.present = 1ull << VS_PROP_CORRELATION_DATA;
	p.props.correlation_data.p = (const uint8_t *)"corr";
	p.props.correlation_data.len = 4;
	if (own_alias) {
		p.props.present |= 1ull << VS_PROP_TOPIC_ALIAS;
		p.props.topic_alias = (uint16_t)own_alias;
	}
	return vs_cproto_publish(cp, &p, 0);
}

/* The next PUBLISH out: its topic as sent, its Topic Alias (0: none), its payload and
 * correlation data intact. */
static void expect_publish(struct vs_cproto *cp, const char *topic, int alias, bool dup)
{
	struct vs_packet p;
	assert_int_equal(next_out(cp, VS_V5, &p), VS_PUBLISH);
	assert_int_equal(p.publish.topic.len, strlen(topic));
	assert_memory_equal(p.publish.topic.p, topic, strlen(topic));
	bool has = p.publish.props.present & (1ull << VS_PROP_TOPIC_ALIAS);
	assert_int_equal(has ? p.publish.props.topic_alias : 0, alias);
	assert_int_equal(p.publish.dup, dup);
	assert_int_equal(p.publish.payload.len, 3);
	assert_memory_equal(p.publish.payload.p, "pay", 3);
	assert_true(p.publish.props.present & (1ull << VS_PROP_CORRELATION_DATA));
	assert_memory_equal(p.publish.props.correlation_data.p, "corr", 4);
}

/* Outgoing topic aliases, up to the broker's Topic Alias Maximum [MQTT-3.3.2-9]: the first
 * PUBLISH on a topic sets the mapping (topic and alias), later ones send the alias alone
 * [MQTT-3.3.2-12]; topics beyond the maximum go in full; an alias the user set is left alone
 * and ends automatic ones on that connection (the user's mapping could clash with ours);
 * a new connection starts without mappings [MQTT-3.3.2-7], and a message resent there names
 * its topic again. */
static void test_outgoing_topic_aliases(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V5, 20, &events, &r);
	connect_v5_aliases(&cp, 2, false);
	assert_int_equal(publish_to(&cp, "a/b", 0, 0), 0);
	expect_publish(&cp, "a/b", 1, false);
	assert_int_equal(publish_to(&cp, "a/b", 0, 0), 0);
	expect_publish(&cp, "", 1, false);
	int m1 = publish_to(&cp, "c", 1, 0);
	expect_publish(&cp, "c", 2, false);
	int m2 = publish_to(&cp, "c", 1, 0);
	expect_publish(&cp, "", 2, false);
	assert_true(m1 > 0 && m2 > 0);
	publish_to(&cp, "d", 1, 0); /* no alias left */
	expect_publish(&cp, "d", 0, false);
	publish_to(&cp, "e", 0,
		   2); /* the user's own alias remaps 2: ours stop on this connection */
	expect_publish(&cp, "e", 2, false);
	publish_to(&cp, "a/b", 0, 0);
	expect_publish(&cp, "a/b", 0, false);
	struct vs_packet p;
	assert_int_equal(next_out(&cp, VS_V5, &p), 0);

	/* Reconnect: the unacknowledged messages go again, with DUP, naming their topics. */
	vs_cproto_lost(&cp);
	connect_v5_aliases(&cp, 1, true);
	expect_publish(&cp, "c", 1, true);
	expect_publish(&cp, "", 1, true);
	expect_publish(&cp, "d", 0, true);
	assert_int_equal(next_out(&cp, VS_V5, &p), 0);

	/* A broker without the property: no aliases. */
	vs_cproto_lost(&cp);
	connect_v5_aliases(&cp, 0, true);
	expect_publish(&cp, "c", 0, true);
	expect_publish(&cp, "c", 0, true);
	expect_publish(&cp, "d", 0, true);
	vs_cproto_fini(&cp);
}

/* A PUBLISH from the broker with topic (may be "") and Topic Alias (0: none). */
static void feed_aliased(struct vs_cproto *cp, const char *topic, int alias, int expect)
{
	struct vs_packet p = {.type = VS_PUBLISH};
	p.publish.topic.p = (const uint8_t *)topic;
	p.publish.topic.len = strlen(topic);
	p.publish.payload.p = (const uint8_t *)"x";
	p.publish.payload.len = 1;
	if (alias) {
		p.publish.props.present = 1ull << VS_PROP_TOPIC_ALIAS;
		p.publish.props.topic_alias = (uint16_t)alias;
	}
	feed(cp, VS_V5, &p, expect);
}

/* Incoming topic aliases only as the CONNECT's Topic Alias Maximum allows [MQTT-3.1.2-26]:
 * a topic with an alias sets it, an empty topic uses it [MQTT-3.3.2-12]; an alias above the
 * maximum, or any alias when none was announced, is a protocol error [MQTT-3.3.2-9]. */
static void test_incoming_topic_aliases(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V5, 20, &events, &r);
	struct vs_connect c = {.version = VS_V5, .clean = true, .keepalive = 10};
	c.client_id.p = (const uint8_t *)"t";
	c.client_id.len = 1;
	c.props.present = 1ull << VS_PROP_TOPIC_ALIAS_MAX;
	c.props.topic_alias_max = 2;
	assert_int_equal(vs_cproto_start(&cp, &c, 0), 0);
	struct vs_packet p;
	assert_int_equal(next_out(&cp, VS_V5, &p), VS_CONNECT);
	assert_int_equal(p.connect.props.topic_alias_max, 2);
	struct vs_packet ca = {.type = VS_CONNACK};
	feed(&cp, VS_V5, &ca, 0);
	feed_aliased(&cp, "x/y", 1, 0);
	assert_string_equal(r.last_topic, "x/y");
	feed_aliased(&cp, "", 1, 0);
	assert_string_equal(r.last_topic, "x/y");
	assert_int_equal(r.messages, 2);
	feed_aliased(&cp, "", 2, VS_EPROTO); /* never set */
	vs_cproto_lost(&cp);

	connect_v5_aliases(&cp, 0, false); /* this CONNECT announces none */
	feed_aliased(&cp, "", 1, VS_EPROTO);
	vs_cproto_lost(&cp);
	connect_v5_aliases(&cp, 0, false);
	feed_aliased(&cp, "a", 1, VS_EPROTO);
	vs_cproto_fini(&cp);
}

static void test_qos1_publish_acked_once(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V311, 20, &events, &r);
	connect_ok(&cp, VS_V311, false);
	int mid = publish(&cp, 1, "x");
	assert_true(mid > 0);
	struct vs_packet p;
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBLISH);
	assert_int_equal(p.publish.packet_id, mid);
	assert_false(p.publish.dup);
	ack(&cp, VS_PUBACK, (uint16_t)mid);
	ack(&cp, VS_PUBACK, (uint16_t)mid); /* a stale duplicate ack is ignored */
	assert_int_equal(r.n_published, 1);
	assert_int_equal(r.published[0], mid);
	assert_int_equal(vs_cproto_pending(&cp), 0);
	vs_cproto_fini(&cp);
}

static void test_qos2_flow(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V311, 20, &events, &r);
	connect_ok(&cp, VS_V311, false);
	int mid = publish(&cp, 2, "x");
	struct vs_packet p;
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBLISH);
	ack(&cp, VS_PUBREC, (uint16_t)mid);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBREL);
	assert_int_equal(p.ack.packet_id, mid);
	assert_int_equal(r.n_published, 0);
	ack(&cp, VS_PUBCOMP, (uint16_t)mid);
	assert_int_equal(r.n_published, 1);
	vs_cproto_fini(&cp);
}

/* [MQTT-4.4.0-1] after reconnecting, unacknowledged PUBLISH (DUP) and PUBREL are resent in
 * their original order, before anything new. */
static void test_resend_after_reconnect(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V311, 20, &events, &r);
	connect_ok(&cp, VS_V311, true);
	int m1 = publish(&cp, 2, "one");
	int m2 = publish(&cp, 1, "two");
	struct vs_packet p;
	while (next_out(&cp, VS_V311, &p))
		;
	ack(&cp, VS_PUBREC, (uint16_t)m1);
	while (next_out(&cp, VS_V311, &p))
		;
	vs_cproto_lost(&cp);
	int m3 = publish(&cp, 1, "three"); /* queued while offline */
	assert_true(m3 > 0);
	assert_int_equal(vs_bytes_avail(&cp.out), 0);
	assert_int_equal(publish(&cp, 0, "zero"), -ENOTCONN);
	connect_ok(&cp, VS_V311, true);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBREL);
	assert_int_equal(p.ack.packet_id, m1);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBLISH);
	assert_int_equal(p.publish.packet_id, m2);
	assert_true(p.publish.dup);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBLISH);
	assert_int_equal(p.publish.packet_id, m3);
	assert_false(p.publish.dup);
	assert_int_equal(next_out(&cp, VS_V311, &p), 0);
	vs_cproto_fini(&cp);
}

static void test_inflight_window(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V311, 2, &events, &r);
	connect_ok(&cp, VS_V311, false);
	int ids[4];
	for (int i = 0; i < 4; i++)
		ids[i] = publish(&cp, 1, "w");
	struct vs_packet p;
	int sent = 0;
	while (next_out(&cp, VS_V311, &p) == VS_PUBLISH)
		sent++;
	assert_int_equal(sent, 2);
	ack(&cp, VS_PUBACK, (uint16_t)ids[0]);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBLISH);
	assert_int_equal(p.publish.packet_id, ids[2]);
	assert_int_equal(next_out(&cp, VS_V311, &p), 0);
	vs_cproto_fini(&cp);
}

/* 5.0: the broker's Receive Maximum caps the window. */
static void test_receive_maximum(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V5, 20, &events, &r);
	struct vs_connect c = {.version = VS_V5, .clean = true};
	c.client_id.p = (const uint8_t *)"t";
	c.client_id.len = 1;
	vs_cproto_start(&cp, &c, 0);
	struct vs_packet p;
	next_out(&cp, VS_V5, &p);
	struct vs_packet ca = {.type = VS_CONNACK};
	ca.connack.props.present = 1ull << VS_PROP_RECEIVE_MAX;
	ca.connack.props.receive_max = 1;
	feed(&cp, VS_V5, &ca, 0);
	publish(&cp, 1, "a");
	publish(&cp, 1, "b");
	assert_int_equal(next_out(&cp, VS_V5, &p), VS_PUBLISH);
	assert_int_equal(next_out(&cp, VS_V5, &p), 0);
	vs_cproto_fini(&cp);
}

/* Incoming QoS 2: delivered once; a resent PUBLISH is acknowledged, not delivered again. */
static void test_incoming_qos2_once(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V311, 20, &events, &r);
	connect_ok(&cp, VS_V311, false);
	struct vs_packet in = {.type = VS_PUBLISH};
	in.publish.qos = 2;
	in.publish.packet_id = 7;
	in.publish.topic.p = (const uint8_t *)"t";
	in.publish.topic.len = 1;
	in.publish.payload.p = (const uint8_t *)"hello";
	in.publish.payload.len = 5;
	feed(&cp, VS_V311, &in, 0);
	in.publish.dup = true;
	feed(&cp, VS_V311, &in, 0);
	assert_int_equal(r.messages, 1);
	assert_string_equal(r.last_payload, "hello");
	struct vs_packet p;
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBREC);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBREC);
	ack(&cp, VS_PUBREL, 7);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PUBCOMP);
	feed(&cp, VS_V311, &in, 0); /* after release the id is free: a new message */
	assert_int_equal(r.messages, 2);
	vs_cproto_fini(&cp);
}

static void test_keepalive(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V311, 20, &events, &r);
	connect_ok(&cp, VS_V311, false); /* keepalive 10 s, CONNECT sent at t=0 */
	struct vs_packet p;
	assert_int_equal(vs_cproto_deadline(&cp), 10000);
	assert_int_equal(vs_cproto_tick(&cp, 9999), 0);
	assert_int_equal(next_out(&cp, VS_V311, &p), 0);
	assert_int_equal(vs_cproto_tick(&cp, 10000), 0);
	assert_int_equal(next_out(&cp, VS_V311, &p), VS_PINGREQ);
	assert_int_equal(vs_cproto_tick(&cp, 19999), 0);
	assert_int_equal(vs_cproto_tick(&cp, 20000), -ETIMEDOUT);
	vs_cproto_fini(&cp);
}

static void test_connack_refused_and_protocol_errors(void **state)
{
	struct rec r = {0};
	struct vs_cproto cp;
	vs_cproto_init(&cp, VS_V311, 20, &events, &r);
	struct vs_connect c = {.version = VS_V311, .clean = true};
	vs_cproto_start(&cp, &c, 0);
	/* [MQTT-3.2.0-1]: anything but CONNACK first is a protocol error */
	struct vs_packet pr = {.type = VS_PINGRESP};
	feed(&cp, VS_V311, &pr, VS_EPROTO);
	vs_cproto_start(&cp, &c, 0);
	struct vs_packet ca = {.type = VS_CONNACK};
	ca.connack.reason = VS_CONNACK3_NOT_AUTHORIZED;
	feed(&cp, VS_V311, &ca, VS_ECLOSED);
	assert_int_equal(r.connacks, 1);
	assert_int_equal(cp.state, VS_CS_IDLE);
	vs_cproto_fini(&cp);
}

/* ---- SCRAM-SHA-256 (MQTT 5.0 section 4.12) ---- */

#define C_NONCE "rOprNGfwEbeRWgbNEkqO"
#define S_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

/* One SCRAM test: the client core with its method, and the broker's side of the exchange, with
 * RFC 7677's user "user", password "pencil". */
struct scram_case {
	struct rec r;
	struct vs_cproto cp;
	struct vs_client_scram cs;
	struct vs_scram_server s;
	struct vs_scram_cred cred;
	uint8_t msg[VS_SCRAM_MSG_MAX]; /* the broker's last message */
	int len;
	struct vs_packet p; /* the client's last packet */
};

static void broker_init(struct scram_case *t)
{
	static const char salt[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
	vs_scram_server_init(&t->s);
	t->s.test_nonce = S_NONCE;
	memset(&t->cred, 0, sizeof(t->cred));
	t->cred.iterations = 4096;
	t->cred.salt_len = (uint8_t)vs_b64_decode(salt, strlen(salt), t->cred.salt,
						  sizeof(t->cred.salt), VS_B64_PAD);
	assert_int_equal(vs_scram_cred_make(&t->cred, (const uint8_t *)"pencil", 6), 0);
}

static void set_auth(struct vs_props *pr, const char *method, const void *data, size_t len)
{
	if (method) {
		pr->present |= 1ull << VS_PROP_AUTH_METHOD;
		pr->auth_method.p = (const uint8_t *)method;
		pr->auth_method.len = strlen(method);
	}
	if (data) {
		pr->present |= 1ull << VS_PROP_AUTH_DATA;
		pr->auth_data.p = data;
		pr->auth_data.len = len;
	}
}

static bool buf_is(const struct vs_buf *b, const char *s)
{
	return b->len == strlen(s) && memcmp(b->p, s, b->len) == 0;
}

/* Sends the CONNECT (and checks it); the broker reads its client-first-message. */
static void scram_start(struct scram_case *t)
{
	struct vs_connect c = {.version = VS_V5, .clean = true, .keepalive = 10};
	assert_int_equal(vs_cproto_start(&t->cp, &c, 0), 0);
	assert_int_equal(next_out(&t->cp, VS_V5, &t->p), VS_CONNECT);
	assert_false(t->p.connect.has_password);
	assert_true(buf_is(&t->p.connect.props.auth_method, "SCRAM-SHA-256"));
	assert_true(buf_is(&t->p.connect.props.auth_data, "n,,n=user,r=" C_NONCE));
	broker_init(t);
	const struct vs_buf *d = &t->p.connect.props.auth_data;
	assert_int_equal(vs_scram_server_recv_first(&t->s, d->p, d->len, NULL), 0);
	assert_int_equal(next_out(&t->cp, VS_V5, &t->p), 0);
}

/* A v5 core with SCRAM for user/password, connecting; a QoS 1 PUBLISH waits in the session. */
static void scram_connect(struct scram_case *t, const char *password)
{
	memset(t, 0, sizeof(*t));
	vs_cproto_init(&t->cp, VS_V5, 20, &events, &t->r);
	vs_client_scram_init(&t->cs, "user", (const uint8_t *)password, strlen(password));
	t->cs.test_nonce = C_NONCE;
	vs_cproto_set_auth(&t->cp, &t->cs.auth);
	assert_true(publish(&t->cp, 1, "queued") > 0);
	scram_start(t);
}

static void scram_close(struct scram_case *t)
{
	vs_client_scram_fini(&t->cs);
	vs_cproto_fini(&t->cp);
	vs_scram_server_fini(&t->s);
}

/* Feeds the client an AUTH with reason rc, method and data; expects vs_cproto_input's rc. */
static void feed_auth(struct scram_case *t, int rc, const char *method, const void *data,
		      size_t len, int expect)
{
	struct vs_packet a = {.type = VS_AUTH};
	a.disconnect.reason = (uint8_t)rc;
	set_auth(&a.disconnect.props, method, data, len);
	feed(&t->cp, VS_V5, &a, expect);
}

/* The broker's AUTH 0x18 with its server-first-message; t->p is what the core answered. */
static int broker_challenge(struct scram_case *t)
{
	t->len = vs_scram_server_send_first(&t->s, &t->cred, t->msg, sizeof(t->msg));
	assert_true(t->len > 0);
	feed_auth(t, VS_RC_CONTINUE_AUTH, "SCRAM-SHA-256", t->msg, (size_t)t->len, 0);
	return next_out(&t->cp, VS_V5, &t->p);
}

/* The broker checks the client-final-message in t->p; returns what its check said. */
static int broker_verify(struct scram_case *t, const char **why)
{
	const struct vs_buf *d = &t->p.disconnect.props.auth_data;
	t->len = vs_scram_server_recv_final(&t->s, d->p, d->len, t->msg, sizeof(t->msg), why);
	return t->len;
}

/* A CONNACK with reason, method and data; returns what vs_cproto_input() said. */
static int send_connack(struct scram_case *t, int reason, const char *method, const void *data,
			size_t len)
{
	struct vs_packet ca = {.type = VS_CONNACK};
	ca.connack.reason = (uint8_t)reason;
	set_auth(&ca.connack.props, method, data, len);
	uint8_t buf[512];
	ssize_t n = vs_codec_encode(&ca, VS_V5, buf, sizeof(buf));
	assert_true(n > 0);
	enum vs_reason why;
	return (int)vs_cproto_input(&t->cp, buf, (size_t)n, 1000, &why);
}

/* The broker accepts: CONNACK 0x00 with its server-final-message. */
static void broker_accept(struct scram_case *t)
{
	assert_int_equal(broker_verify(t, NULL), 46);
	assert_true(send_connack(t, 0, "SCRAM-SHA-256", t->msg, (size_t)t->len) > 0);
	assert_int_equal(t->cp.state, VS_CS_CONNECTED);
}

static void test_scram_exchange_then_the_session(void **state)
{
	struct scram_case t;
	scram_connect(&t, "pencil");
	/* [MQTT-4.12.0-3] AUTH 0x18, same method, the client-final-message of RFC 7677 */
	assert_int_equal(broker_challenge(&t), VS_AUTH);
	assert_int_equal(t.p.disconnect.reason, VS_RC_CONTINUE_AUTH);
	assert_true(buf_is(&t.p.disconnect.props.auth_method, "SCRAM-SHA-256"));
	assert_true(buf_is(&t.p.disconnect.props.auth_data,
			   "c=biws,r=" C_NONCE S_NONCE
			   ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
	/* [MQTT-3.1.2-30] nothing but AUTH before the CONNACK: the PUBLISH waits */
	struct vs_packet q;
	assert_int_equal(next_out(&t.cp, VS_V5, &q), 0);
	broker_accept(&t);
	assert_int_equal(t.r.connacks, 1);
	assert_int_equal(next_out(&t.cp, VS_V5, &q), VS_PUBLISH);
	scram_close(&t);
}

static void test_scram_wrong_server_signature_is_refused(void **state)
{
	static const struct {
		const char *method, *data;
		int rc;
	} cases[] = {
	    /* one bit off RFC 7677's ServerSignature: mutual authentication failed */
	    {"SCRAM-SHA-256", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G0=", VS_EAUTH},
	    {"SCRAM-SHA-256", "e=invalid-proof", VS_EAUTH},
	    {"SCRAM-SHA-256", NULL, VS_EAUTH}, /* no proof at all */
	    {"SCRAM-SHA-256", "v=junk", VS_EPROTO},
	    {NULL, NULL, VS_EPROTO}, /* [MQTT-4.12.0-5] a successful CONNACK repeats the method */
	    {"SCRAM-SHA-1", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", VS_EPROTO},
	    /* RFC 7677's own signature goes through the same path */
	    {"SCRAM-SHA-256", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_case t;
		struct vs_packet q;
		const char *d = cases[i].data;
		scram_connect(&t, "pencil");
		assert_int_equal(broker_challenge(&t), VS_AUTH);
		int rc = send_connack(&t, 0, cases[i].method, d, d ? strlen(d) : 0);
		if (rc != cases[i].rc && (rc <= 0 || cases[i].rc))
			print_error("case %zu: %d\n", i, rc);
		if (cases[i].rc == 0) {
			assert_true(rc > 0);
			assert_int_equal(t.r.connacks, 1);
			scram_close(&t);
			continue;
		}
		assert_int_equal(rc, cases[i].rc);
		/* not connected, no on_connect, and the session's PUBLISH never left */
		assert_int_equal(t.cp.state, VS_CS_IDLE);
		assert_int_equal(t.r.connacks, 0);
		assert_int_equal(next_out(&t.cp, VS_V5, &q), 0);
		if (rc == VS_EAUTH)
			assert_non_null(t.cs.why); /* the log says why */
		scram_close(&t);
	}
}

static void test_scram_broker_refuses(void **state)
{
	struct scram_case t;
	struct vs_packet q;
	/* [MQTT-4.12.0-4] after the proof: 0x87 Not authorized (a wrong password) */
	scram_connect(&t, "pencil!");
	assert_int_equal(broker_challenge(&t), VS_AUTH);
	const char *why = NULL;
	assert_int_equal(broker_verify(&t, &why), VS_EAUTH);
	assert_string_equal(why, "invalid-proof");
	assert_int_equal(send_connack(&t, VS_RC_NOT_AUTHORIZED, NULL, NULL, 0), VS_ECLOSED);
	assert_int_equal(t.r.connacks, 1);
	assert_int_equal(t.cp.state, VS_CS_IDLE);
	scram_close(&t);
	/* [MQTT-4.12.0-1] at once: 0x8C Bad authentication method */
	scram_connect(&t, "pencil");
	assert_int_equal(send_connack(&t, VS_RC_BAD_AUTH_METHOD, NULL, NULL, 0), VS_ECLOSED);
	assert_int_equal(t.r.connacks, 1);
	assert_int_equal(next_out(&t.cp, VS_V5, &q), 0);
	scram_close(&t);
}

static void test_scram_auth_packets_out_of_protocol(void **state)
{
	struct scram_case t;
	/* [MQTT-4.12.0-5] an AUTH with another method */
	scram_connect(&t, "pencil");
	feed_auth(&t, VS_RC_CONTINUE_AUTH, "SCRAM-SHA-1", "r=x", 3, VS_EPROTO);
	scram_close(&t);
	/* [MQTT-4.12.0-2] the server continues with 0x18, not 0x19 */
	scram_connect(&t, "pencil");
	feed_auth(&t, VS_RC_REAUTHENTICATE, "SCRAM-SHA-256", "r=x", 3, VS_EPROTO);
	scram_close(&t);
	/* a server-first-message that does not start with our nonce */
	scram_connect(&t, "pencil");
	const char *bad = "r=someone-else,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	feed_auth(&t, VS_RC_CONTINUE_AUTH, "SCRAM-SHA-256", bad, strlen(bad), VS_EPROTO);
	assert_non_null(t.cs.why);
	scram_close(&t);
	/* a second challenge after the proof was sent */
	scram_connect(&t, "pencil");
	assert_int_equal(broker_challenge(&t), VS_AUTH);
	feed_auth(&t, VS_RC_CONTINUE_AUTH, "SCRAM-SHA-256", t.msg, (size_t)t.len, VS_EPROTO);
	scram_close(&t);
	/* [MQTT-4.12.0-6] an AUTH when the CONNECT named no method */
	memset(&t, 0, sizeof(t));
	vs_cproto_init(&t.cp, VS_V5, 20, &events, &t.r);
	struct vs_connect c = {.version = VS_V5, .clean = true};
	vs_cproto_start(&t.cp, &c, 0);
	assert_int_equal(next_out(&t.cp, VS_V5, &t.p), VS_CONNECT);
	assert_false(t.p.connect.props.present & (1ull << VS_PROP_AUTH_METHOD));
	feed_auth(&t, VS_RC_CONTINUE_AUTH, "SCRAM-SHA-256", "r=x", 3, VS_EPROTO);
	/* and none after the CONNACK (we never re-authenticate) */
	connect_ok(&t.cp, VS_V5, false);
	feed_auth(&t, VS_RC_CONTINUE_AUTH, "SCRAM-SHA-256", "r=x", 3, VS_EPROTO);
	vs_cproto_fini(&t.cp);
}

static void test_scram_again_on_reconnect(void **state)
{
	struct scram_case t;
	scram_connect(&t, "pencil");
	assert_int_equal(broker_challenge(&t), VS_AUTH);
	vs_cproto_lost(&t.cp);
	/* a new CONNECT starts a new exchange: client-first again, and it goes through */
	scram_start(&t);
	assert_int_equal(broker_challenge(&t), VS_AUTH);
	broker_accept(&t);
	scram_close(&t);
}

static void test_auth_method_options(void **state)
{
	struct viesti_options o;
	int err = 0;
	viesti_options_init(&o);
	o.version = VIESTI_V5;
	o.username = "user";
	o.password = "pencil";
	o.auth_method = "SCRAM-SHA-256";
	struct viesti *v = viesti_new(&o, NULL, NULL, &err);
	assert_non_null(v);
	viesti_free(v);
	static const struct {
		int version;
		const char *user, *password, *method;
	} bad[] = {
	    {VIESTI_V311, "user", "pencil", "SCRAM-SHA-256"}, /* MQTT 5 only */
	    {VIESTI_V5, NULL, "pencil", "SCRAM-SHA-256"},
	    {VIESTI_V5, "user", NULL, "SCRAM-SHA-256"},
	    {VIESTI_V5, "", "pencil", "SCRAM-SHA-256"},
	    {VIESTI_V5, "\xff", "pencil", "SCRAM-SHA-256"},
	    {VIESTI_V5, "user", "pencil", "SCRAM-SHA-1"},
	    {VIESTI_V5, "user", "pencil", "scram-sha-256"}, /* SASL names are upper case */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.version = bad[i].version;
		o.username = bad[i].user;
		o.password = bad[i].password;
		o.auth_method = bad[i].method;
		err = 0;
		assert_null(viesti_new(&o, NULL, NULL, &err));
		assert_int_equal(err, VIESTI_EINVAL);
	}
	/* the method's properties are the library's to set */
	struct viesti_props *p = viesti_props_new();
	viesti_props_set_string(p, VIESTI_PROP_AUTH_METHOD, "SCRAM-SHA-256");
	o.version = VIESTI_V5;
	o.username = "user";
	o.password = "pencil";
	o.auth_method = "SCRAM-SHA-256";
	o.connect_props = p;
	assert_null(viesti_new(&o, NULL, NULL, &err));
	assert_int_equal(err, VIESTI_EINVAL);
	viesti_props_free(p);
	assert_string_equal(viesti_strerror(VIESTI_EAUTH), "The broker failed authentication");
}

static void test_props_api(void **state)
{
	struct viesti_props *p = viesti_props_new();
	assert_int_equal(viesti_props_set_int(p, VIESTI_PROP_MESSAGE_EXPIRY, 60), 0);
	assert_int_equal(viesti_props_set_int(p, VIESTI_PROP_PAYLOAD_FORMAT, 256), VIESTI_EINVAL);
	assert_int_equal(viesti_props_set_int(p, VIESTI_PROP_CONTENT_TYPE, 1), VIESTI_EINVAL);
	assert_int_equal(viesti_props_set_string(p, VIESTI_PROP_CONTENT_TYPE, "text/plain"), 0);
	assert_int_equal(viesti_props_set_binary(p, VIESTI_PROP_CORRELATION_DATA, "\0\1", 2), 0);
	assert_int_equal(viesti_props_add_user(p, "k", "v1"), 0);
	assert_int_equal(viesti_props_add_user(p, "k", "v2"), 0);
	uint32_t v;
	assert_int_equal(viesti_props_get_int(p, VIESTI_PROP_MESSAGE_EXPIRY, &v), 0);
	assert_int_equal(v, 60);
	assert_int_equal(viesti_props_get_int(p, VIESTI_PROP_TOPIC_ALIAS, &v), -ENOENT);

	/* encode in a PUBLISH, decode, and read back through a view */
	struct vs_packet pk = {.type = VS_PUBLISH};
	pk.publish.topic.p = (const uint8_t *)"t";
	pk.publish.topic.len = 1;
	pk.publish.props = p->p;
	uint8_t buf[256];
	ssize_t n = vs_codec_encode(&pk, VS_V5, buf, sizeof(buf));
	assert_true(n > 0);
	struct vs_packet d;
	struct vs_decode_opts o = {.version = VS_V5};
	enum vs_reason why;
	assert_int_equal(vs_codec_decode(buf, (size_t)n, &o, &d, &why), n);
	struct viesti_props view;
	vs_cprops_view(&view, &d.publish.props);
	const void *data;
	size_t len;
	assert_int_equal(viesti_props_get_binary(&view, VIESTI_PROP_CONTENT_TYPE, &data, &len), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(data, "text/plain", 10);
	size_t pos = 0;
	const char *k, *val;
	size_t kl, vl;
	int users = 0;
	while (viesti_props_next_user(&view, &pos, &k, &kl, &val, &vl))
		users++;
	assert_int_equal(users, 2);
	int id, ids = 0;
	pos = 0;
	while (viesti_props_next(&view, &pos, &id))
		ids++;
	assert_int_equal(ids, 5);

	/* Strings and user properties as C strings, from the received list (as in on_message) and
	 * from the built one; a buffer one byte short is refused and left empty. */
	char str[16];
	const struct viesti_props *lists[] = {&view, p};
	for (int l = 0; l < 2; l++) {
		assert_int_equal(
		    viesti_props_get_string(lists[l], VIESTI_PROP_CONTENT_TYPE, str, sizeof(str)),
		    10);
		assert_string_equal(str, "text/plain");
		assert_int_equal(
		    viesti_props_get_string(lists[l], VIESTI_PROP_CONTENT_TYPE, str, 10),
		    VIESTI_ETOOBIG);
		assert_string_equal(str, "");
		assert_int_equal(
		    viesti_props_get_string(lists[l], VIESTI_PROP_RESPONSE_TOPIC, str, sizeof(str)),
		    -ENOENT);
		assert_int_equal(viesti_props_get_user(lists[l], "k", str, sizeof(str)), 2);
		assert_string_equal(str, "v1"); /* the first of that name */
		assert_int_equal(viesti_props_get_user(lists[l], "nope", str, sizeof(str)),
				 -ENOENT);
		assert_int_equal(viesti_props_get_string(lists[l], VIESTI_PROP_CORRELATION_DATA,
							 str, sizeof(str)),
				 2);
		assert_memory_equal(str, "\0\1\0", 3);
	}
	struct viesti_props *copy;
	assert_int_equal(vs_cprops_dup(&view, &copy), 0);
	assert_true(viesti_props_has(copy, VIESTI_PROP_USER));
	assert_int_equal(viesti_props_get_int(copy, VIESTI_PROP_MESSAGE_EXPIRY, &v), 0);
	viesti_props_free(copy);
	viesti_props_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qos1_publish_acked_once),
	    cmocka_unit_test(test_outgoing_topic_aliases),
	    cmocka_unit_test(test_incoming_topic_aliases),
	    cmocka_unit_test(test_qos2_flow),
	    cmocka_unit_test(test_resend_after_reconnect),
	    cmocka_unit_test(test_inflight_window),
	    cmocka_unit_test(test_receive_maximum),
	    cmocka_unit_test(test_incoming_qos2_once),
	    cmocka_unit_test(test_keepalive),
	    cmocka_unit_test(test_connack_refused_and_protocol_errors),
	    cmocka_unit_test(test_scram_exchange_then_the_session),
	    cmocka_unit_test(test_scram_wrong_server_signature_is_refused),
	    cmocka_unit_test(test_scram_broker_refuses),
	    cmocka_unit_test(test_scram_auth_packets_out_of_protocol),
	    cmocka_unit_test(test_scram_again_on_reconnect),
	    cmocka_unit_test(test_auth_method_options),
	    cmocka_unit_test(test_props_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
