/*
 * Unit tests for the client protocol core (src/proto/client.c) and the properties API
 * (src/client/props.c): no sockets, no threads. Each test plays the broker by feeding encoded
 * packets to vs_cproto_input() and decoding what the core put in `out`.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "client/props.h"
#include "codec/codec.h"
#include "proto/client.h"

struct rec {
	int connacks;
	int messages;
	char last_payload[64];
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
	vs_props_view(&view, &d.publish.props);
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
	struct viesti_props *copy;
	assert_int_equal(vs_props_dup(&view, &copy), 0);
	assert_true(viesti_props_has(copy, VIESTI_PROP_USER));
	assert_int_equal(viesti_props_get_int(copy, VIESTI_PROP_MESSAGE_EXPIRY, &v), 0);
	viesti_props_free(copy);
	viesti_props_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qos1_publish_acked_once),
		cmocka_unit_test(test_qos2_flow),
		cmocka_unit_test(test_resend_after_reconnect),
		cmocka_unit_test(test_inflight_window),
		cmocka_unit_test(test_receive_maximum),
		cmocka_unit_test(test_incoming_qos2_once),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_connack_refused_and_protocol_errors),
		cmocka_unit_test(test_props_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
