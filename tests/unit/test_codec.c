/*
 * Codec round trips: every packet type in MQTT 3.1, 3.1.1 and 5.0, and every 5.0 property,
 * encoded, decoded through a guard page (every truncation must ask for more, a size limit one
 * byte short must fail from the fixed header), re-encoded byte for byte, and compared field by
 * field with what went in. Malformed input is in test_codec_malformed.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec_util.h"

static const int versions[] = {VS_V31, VS_V311, VS_V5};
#define FOR_EACH_VERSION(v) for (size_t vi_ = 0; vi_ < 3 && ((v) = versions[vi_], 1); vi_++)

static const struct vs_user_prop users2[] = {
    {BUF("k1"), BUF("v1")},
    {BUF("k1"), BUF("dup key, second value: order and repeats are kept")},
};

static void check_users(const struct vs_props *p)
{
	struct vs_user_prop up;
	size_t pos = 0;

	assert_int_equal(p->n_user, 2);
	assert_int_equal(vs_props_next_user(p, &pos, &up), 1);
	assert_buf(up.key, "k1");
	assert_buf(up.val, "v1");
	assert_int_equal(vs_props_next_user(p, &pos, &up), 1);
	assert_buf(up.val, "dup key, second value: order and repeats are kept");
	assert_int_equal(vs_props_next_user(p, &pos, &up), 0);
}

static void test_connect_minimal(void **state)
{
	struct vs_packet p = {.type = VS_CONNECT};
	struct dec d;
	int v;

	FOR_EACH_VERSION(v)
	{
		p.connect.version = (uint8_t)v;
		p.connect.clean = true;
		p.connect.keepalive = 60;
		p.connect.client_id = BUF("client-1");
		roundtrip(&p, v, &d);
		assert_int_equal(d.pkt.connect.version, v);
		assert_true(d.pkt.connect.clean);
		assert_int_equal(d.pkt.connect.keepalive, 60);
		assert_buf(d.pkt.connect.client_id, "client-1");
		assert_false(d.pkt.connect.will);
		assert_false(d.pkt.connect.has_username);
		dec_done(&d);
	}
}

/* try_private: Mosquitto's bridges send the 3.x protocol level with its top bit set (0x83,
 * 0x84); decoded as the level plus a bridge flag. 5.0 bridges use No Local instead. */
static void test_connect_bridge_level(void **state)
{
	struct vs_packet p = {.type = VS_CONNECT};
	struct dec d;
	int v;

	FOR_EACH_VERSION(v)
	{
		p.connect.version = (uint8_t)v;
		p.connect.bridge = true;
		p.connect.client_id = BUF("bridge-1");
		uint8_t buf[64];
		ssize_t n = vs_codec_encode(&p, v, buf, sizeof(buf));
		assert_true(n > 9);
		/* fixed header (2), name length (2), name (6 or 4), then the level */
		uint8_t level = buf[v == VS_V31 ? 10 : 8];
		assert_int_equal(level, v == VS_V5 ? v : (0x80 | v));
		roundtrip(&p, v, &d);
		assert_int_equal(d.pkt.connect.version, v);
		assert_int_equal(d.pkt.connect.bridge, v != VS_V5);
		dec_done(&d);
	}
}

static void test_connect_empty_client_id(void **state)
{
	struct vs_packet p = {.type = VS_CONNECT};
	struct dec d;

	/* [MQTT-3.1.3-6] a zero-byte ClientId is well-formed; accepting it is server policy. */
	p.connect.version = VS_V311;
	p.connect.clean = true;
	roundtrip(&p, VS_V311, &d);
	assert_int_equal(d.pkt.connect.client_id.len, 0);
	dec_done(&d);
}

static void test_connect_full(void **state)
{
	struct vs_packet p = {.type = VS_CONNECT};
	struct vs_connect *c = &p.connect;
	struct dec d;
	int v;

	FOR_EACH_VERSION(v)
	{
		memset(&p, 0, sizeof(p));
		p.type = VS_CONNECT;
		c->version = (uint8_t)v;
		c->keepalive = 65535;
		c->client_id = BUF("id");
		c->will = true;
		c->will_qos = 2;
		c->will_retain = true;
		c->will_topic = BUF("will/t\xc3\xa9");
		c->will_payload = (struct vs_buf){(const uint8_t *)"\0\1\2", 3};
		c->has_username = true;
		c->username = BUF("user");
		c->has_password = true;
		c->password = (struct vs_buf){(const uint8_t *)"p\0w", 3};
		if (v == VS_V5) {
			struct vs_props *pp = &c->props, *w = &c->will_props;
			pp->present = 1ull << VS_PROP_SESSION_EXPIRY | 1ull << VS_PROP_RECEIVE_MAX |
				      1ull << VS_PROP_MAX_PACKET_SIZE |
				      1ull << VS_PROP_TOPIC_ALIAS_MAX |
				      1ull << VS_PROP_REQUEST_RESPONSE_INFO |
				      1ull << VS_PROP_REQUEST_PROBLEM_INFO |
				      1ull << VS_PROP_AUTH_METHOD | 1ull << VS_PROP_AUTH_DATA;
			pp->session_expiry = 0xffffffff;
			pp->receive_max = 10;
			pp->max_packet_size = 1 << 20;
			pp->topic_alias_max = 5;
			pp->request_response_info = 1;
			pp->request_problem_info = 0;
			pp->auth_method = BUF("SCRAM-SHA-1");
			pp->auth_data = BUF("\x01\x02");
			pp->users = users2;
			pp->n_user = 2;
			w->present = 1ull << VS_PROP_WILL_DELAY | 1ull << VS_PROP_PAYLOAD_FORMAT |
				     1ull << VS_PROP_MESSAGE_EXPIRY | 1ull << VS_PROP_CONTENT_TYPE |
				     1ull << VS_PROP_RESPONSE_TOPIC |
				     1ull << VS_PROP_CORRELATION_DATA;
			w->will_delay = 30;
			w->payload_format = 1;
			w->message_expiry = 3600;
			w->content_type = BUF("text/plain");
			w->response_topic = BUF("reply/here");
			w->correlation_data = BUF("corr");
			w->users = users2;
			w->n_user = 2;
		}
		roundtrip(&p, v, &d);
		const struct vs_connect *o = &d.pkt.connect;
		assert_true(o->will);
		assert_int_equal(o->will_qos, 2);
		assert_true(o->will_retain);
		assert_buf(o->will_topic, "will/t\xc3\xa9");
		assert_int_equal(o->will_payload.len, 3);
		assert_true(o->has_username && o->has_password);
		assert_buf(o->username, "user");
		assert_memory_equal(o->password.p, "p\0w", 3);
		if (v == VS_V5) {
			assert_int_equal(o->props.session_expiry, 0xffffffff);
			assert_int_equal(o->props.receive_max, 10);
			assert_int_equal(o->props.max_packet_size, 1 << 20);
			assert_int_equal(o->props.topic_alias_max, 5);
			assert_int_equal(o->props.request_response_info, 1);
			assert_true(o->props.present & 1ull << VS_PROP_REQUEST_PROBLEM_INFO);
			assert_int_equal(o->props.request_problem_info, 0);
			assert_buf(o->props.auth_method, "SCRAM-SHA-1");
			assert_buf(o->props.auth_data, "\x01\x02");
			check_users(&o->props);
			assert_int_equal(o->will_props.will_delay, 30);
			assert_int_equal(o->will_props.payload_format, 1);
			assert_int_equal(o->will_props.message_expiry, 3600);
			assert_buf(o->will_props.content_type, "text/plain");
			assert_buf(o->will_props.response_topic, "reply/here");
			assert_buf(o->will_props.correlation_data, "corr");
			check_users(&o->will_props);
		} else {
			assert_int_equal(o->props.present, 0);
		}
		dec_done(&d);
	}
}

static void test_connect_v5_password_without_username(void **state)
{
	struct vs_packet p = {.type = VS_CONNECT};
	struct dec d;

	/* 5.0 allows a password without a user name (3.1.2.9); 3.1.1 does not [MQTT-3.1.2-22]. */
	p.connect.version = VS_V5;
	p.connect.has_password = true;
	p.connect.password = BUF("secret");
	roundtrip(&p, VS_V5, &d);
	assert_true(d.pkt.connect.has_password);
	assert_false(d.pkt.connect.has_username);
	dec_done(&d);
}

static void test_connack(void **state)
{
	struct vs_packet p = {.type = VS_CONNACK};
	struct dec d;
	int v;

	FOR_EACH_VERSION(v)
	{
		memset(&p, 0, sizeof(p));
		p.type = VS_CONNACK;
		p.connack.session_present = v != VS_V31;
		roundtrip(&p, v, &d);
		assert_int_equal(d.pkt.connack.session_present, v != VS_V31);
		assert_int_equal(d.pkt.connack.reason, 0);
		dec_done(&d);
		p.connack.session_present = false;
		p.connack.reason = v == VS_V5 ? VS_RC_NOT_AUTHORIZED : VS_CONNACK3_NOT_AUTHORIZED;
		roundtrip(&p, v, &d);
		assert_int_equal(d.pkt.connack.reason, p.connack.reason);
		dec_done(&d);
	}
}

static void test_connack_v5_all_props(void **state)
{
	struct vs_packet p = {.type = VS_CONNACK};
	struct vs_props *pp = &p.connack.props;
	struct dec d;

	pp->present = 1ull << VS_PROP_SESSION_EXPIRY | 1ull << VS_PROP_ASSIGNED_CLIENT_ID |
		      1ull << VS_PROP_SERVER_KEEPALIVE | 1ull << VS_PROP_AUTH_METHOD |
		      1ull << VS_PROP_AUTH_DATA | 1ull << VS_PROP_RESPONSE_INFO |
		      1ull << VS_PROP_SERVER_REFERENCE | 1ull << VS_PROP_REASON_STRING |
		      1ull << VS_PROP_RECEIVE_MAX | 1ull << VS_PROP_TOPIC_ALIAS_MAX |
		      1ull << VS_PROP_MAX_QOS | 1ull << VS_PROP_RETAIN_AVAILABLE |
		      1ull << VS_PROP_MAX_PACKET_SIZE | 1ull << VS_PROP_WILDCARD_SUB_AVAILABLE |
		      1ull << VS_PROP_SUB_ID_AVAILABLE | 1ull << VS_PROP_SHARED_SUB_AVAILABLE;
	pp->session_expiry = 120;
	pp->assigned_client_id = BUF("auto-123");
	pp->server_keepalive = 30;
	pp->auth_method = BUF("m");
	pp->auth_data = BUF("d");
	pp->response_info = BUF("resp/");
	pp->server_reference = BUF("other:1883");
	pp->reason_string = BUF("ok");
	pp->receive_max = 65535;
	pp->topic_alias_max = 10;
	pp->max_qos = 1;
	pp->retain_available = 0;
	pp->max_packet_size = 268435460;
	pp->wildcard_sub_available = 1;
	pp->sub_id_available = 0;
	pp->shared_sub_available = 1;
	pp->users = users2;
	pp->n_user = 2;
	roundtrip(&p, VS_V5, &d);
	const struct vs_props *o = &d.pkt.connack.props;
	assert_int_equal(o->present, pp->present | 1ull << VS_PROP_USER);
	assert_int_equal(o->session_expiry, 120);
	assert_buf(o->assigned_client_id, "auto-123");
	assert_int_equal(o->server_keepalive, 30);
	assert_buf(o->response_info, "resp/");
	assert_buf(o->server_reference, "other:1883");
	assert_buf(o->reason_string, "ok");
	assert_int_equal(o->receive_max, 65535);
	assert_int_equal(o->topic_alias_max, 10);
	assert_int_equal(o->max_qos, 1);
	assert_int_equal(o->retain_available, 0);
	assert_int_equal(o->max_packet_size, 268435460);
	assert_int_equal(o->wildcard_sub_available, 1);
	assert_int_equal(o->sub_id_available, 0);
	assert_int_equal(o->shared_sub_available, 1);
	check_users(o);
	dec_done(&d);
}

static void test_connack_v5_without_props(void **state)
{
	struct dec d;

	/* Some servers omit the (empty) property length; accepted. */
	EXPECT_OK(&d, VS_V5, 0x20, 0x02, 0x01, 0x00);
	assert_true(d.pkt.connack.session_present);
	dec_done(&d);
}

static void test_publish_qos(void **state)
{
	static const uint8_t payload[1000] = {1, 2, 3};
	struct vs_packet p = {.type = VS_PUBLISH};
	struct dec d;
	int v, q;

	FOR_EACH_VERSION(v)
	{
		for (q = 0; q <= 2; q++) {
			memset(&p, 0, sizeof(p));
			p.type = VS_PUBLISH;
			p.publish.qos = (uint8_t)q;
			p.publish.dup = q > 0;
			p.publish.retain = q == 1;
			p.publish.packet_id = q ? (uint16_t)(1000 + q) : 0;
			p.publish.topic = BUF("sensors/room 1/temp");
			p.publish.payload = (struct vs_buf){payload, q == 2 ? 0 : sizeof(payload)};
			roundtrip(&p, v, &d);
			const struct vs_publish *o = &d.pkt.publish;
			assert_int_equal(o->qos, q);
			assert_int_equal(o->dup, q > 0);
			assert_int_equal(o->retain, q == 1);
			assert_int_equal(o->packet_id, p.publish.packet_id);
			assert_buf(o->topic, "sensors/room 1/temp");
			assert_int_equal(o->payload.len, p.publish.payload.len);
			assert_int_equal(d.pkt.flags, (q ? 8 : 0) | q << 1 | (q == 1));
			dec_done(&d);
		}
	}
}

static void test_publish_v5_all_props(void **state)
{
	static const uint32_t ids[] = {1, 127, 128, 16383, 16384, VS_MAX_SUB_ID};
	struct vs_packet p = {.type = VS_PUBLISH};
	struct vs_props *pp = &p.publish.props;
	uint32_t id;
	size_t pos = 0, i;
	struct dec d;

	p.publish.qos = 1;
	p.publish.packet_id = 7;
	p.publish.topic = BUF("");
	p.publish.payload = BUF("{\"t\":21}");
	pp->present = 1ull << VS_PROP_PAYLOAD_FORMAT | 1ull << VS_PROP_MESSAGE_EXPIRY |
		      1ull << VS_PROP_CONTENT_TYPE | 1ull << VS_PROP_RESPONSE_TOPIC |
		      1ull << VS_PROP_CORRELATION_DATA | 1ull << VS_PROP_TOPIC_ALIAS;
	pp->payload_format = 1;
	pp->message_expiry = 10;
	pp->content_type = BUF("application/json");
	pp->response_topic = BUF("r/1");
	pp->correlation_data = BUF("\x00\xff");
	pp->topic_alias = 3;
	pp->sub_ids = ids;
	pp->n_sub_ids = 6;
	pp->users = users2;
	pp->n_user = 2;
	roundtrip(&p, VS_V5, &d);
	const struct vs_props *o = &d.pkt.publish.props;
	assert_int_equal(d.pkt.publish.topic.len, 0);
	assert_int_equal(o->payload_format, 1);
	assert_int_equal(o->message_expiry, 10);
	assert_buf(o->content_type, "application/json");
	assert_buf(o->response_topic, "r/1");
	assert_int_equal(o->correlation_data.len, 2);
	assert_int_equal(o->topic_alias, 3);
	assert_int_equal(o->n_sub_ids, 6);
	assert_int_equal(o->sub_id, 1);
	for (i = 0; i < 6; i++) {
		assert_int_equal(vs_props_next_sub_id(o, &pos, &id), 1);
		assert_int_equal(id, ids[i]);
	}
	assert_int_equal(vs_props_next_sub_id(o, &pos, &id), 0);
	check_users(o);
	dec_done(&d);
}

static void test_publish_v5_single_sub_id(void **state)
{
	struct vs_packet p = {.type = VS_PUBLISH};
	struct dec d;

	p.publish.topic = BUF("a");
	p.publish.props.present = 1ull << VS_PROP_SUB_ID;
	p.publish.props.sub_id = 300;
	roundtrip(&p, VS_V5, &d);
	assert_int_equal(d.pkt.publish.props.sub_id, 300);
	assert_int_equal(d.pkt.publish.props.n_sub_ids, 1);
	dec_done(&d);
}

static void test_publish_large_remaining_length(void **state)
{
	struct vs_packet p = {.type = VS_PUBLISH};
	size_t n = 2100000; /* a 4-byte remaining length */
	uint8_t *payload = calloc(1, n);
	struct dec d;

	p.publish.topic = BUF("big");
	p.publish.payload = (struct vs_buf){payload, n};
	assert_int_equal(vs_codec_size(&p, VS_V311), 1 + 4 + 5 + n);
	uint8_t *buf = malloc(n + 10);
	ssize_t w = vs_codec_encode(&p, VS_V311, buf, n + 10);
	assert_int_equal(w, 1 + 4 + 5 + n);
	dec_run(&d, buf, (size_t)w, VS_V311, 0);
	assert_int_equal(d.n, w);
	assert_int_equal(d.pkt.publish.payload.len, n);
	dec_done(&d);
	free(buf);
	free(payload);
}

static void test_acks(void **state)
{
	static const uint8_t types[] = {VS_PUBACK, VS_PUBREC, VS_PUBREL, VS_PUBCOMP};
	struct vs_packet p;
	struct dec d;
	size_t t;
	int v;

	FOR_EACH_VERSION(v)
	{
		for (t = 0; t < 4; t++) {
			memset(&p, 0, sizeof(p));
			p.type = types[t];
			p.ack.packet_id = 65535;
			roundtrip(&p, v, &d);
			assert_int_equal(d.pkt.ack.packet_id, 65535);
			assert_int_equal(d.pkt.ack.reason, 0);
			assert_int_equal(d.pkt.flags, types[t] == VS_PUBREL ? 2 : 0);
			dec_done(&d);
			if (v != VS_V5)
				continue;
			/* reason code alone, then reason code + properties */
			p.ack.reason = types[t] >= VS_PUBREL ? VS_RC_PACKET_ID_NOT_FOUND
							     : VS_RC_NO_MATCHING_SUBSCRIBERS;
			roundtrip(&p, v, &d);
			assert_int_equal(d.pkt.ack.reason, p.ack.reason);
			dec_done(&d);
			p.ack.props.present = 1ull << VS_PROP_REASON_STRING;
			p.ack.props.reason_string = BUF("why not");
			p.ack.props.users = users2;
			p.ack.props.n_user = 2;
			roundtrip(&p, v, &d);
			assert_buf(d.pkt.ack.props.reason_string, "why not");
			check_users(&d.pkt.ack.props);
			dec_done(&d);
		}
	}
}

static void test_ack_v5_short_forms(void **state)
{
	struct dec d;

	/* 3.4.2.1: no reason code means 0x00; a reason code without properties is allowed. */
	EXPECT_OK(&d, VS_V5, 0x40, 0x02, 0x00, 0x05);
	assert_int_equal(d.pkt.ack.reason, 0);
	dec_done(&d);
	EXPECT_OK(&d, VS_V5, 0x40, 0x03, 0x00, 0x05, 0x10);
	assert_int_equal(d.pkt.ack.reason, 0x10);
	dec_done(&d);
	EXPECT_OK(&d, VS_V5, 0x40, 0x04, 0x00, 0x05, 0x00, 0x00);
	assert_int_equal(d.pkt.ack.props.present, 0);
	dec_done(&d);
}

static const struct vs_sub_entry entries3[] = {
    {BUF("a/+/c"), 0, false, false, 0},
    {BUF("sport/#"), 1, true, true, 2},
    {BUF("$share/g1/x/y"), 2, false, true, 1},
};

static void test_subscribe(void **state)
{
	struct vs_packet p;
	struct vs_sub_entry e;
	struct dec d;
	size_t pos, i;
	int v;

	FOR_EACH_VERSION(v)
	{
		memset(&p, 0, sizeof(p));
		p.type = VS_SUBSCRIBE;
		p.subscribe.packet_id = 42;
		p.subscribe.count = 3;
		p.subscribe.entries = entries3;
		if (v == VS_V5) {
			p.subscribe.props.present = 1ull << VS_PROP_SUB_ID;
			p.subscribe.props.sub_id = 77;
			p.subscribe.props.users = users2;
			p.subscribe.props.n_user = 2;
		}
		roundtrip(&p, v, &d);
		const struct vs_subscribe *o = &d.pkt.subscribe;
		assert_int_equal(d.pkt.flags, 2);
		assert_int_equal(o->packet_id, 42);
		assert_int_equal(o->count, 3);
		pos = 0;
		for (i = 0; i < 3; i++) {
			assert_int_equal(vs_subscribe_next(o, v, &pos, &e), 1);
			assert_true(codec_buf_eq(e.filter, entries3[i].filter));
			assert_int_equal(e.qos, entries3[i].qos);
			assert_int_equal(e.no_local, v == VS_V5 && entries3[i].no_local);
			assert_int_equal(e.retain_as_published,
					 v == VS_V5 && entries3[i].retain_as_published);
			assert_int_equal(e.retain_handling,
					 v == VS_V5 ? entries3[i].retain_handling : 0);
		}
		assert_int_equal(vs_subscribe_next(o, v, &pos, &e), 0);
		if (v == VS_V5) {
			assert_int_equal(o->props.sub_id, 77);
			check_users(&o->props);
		}
		dec_done(&d);
	}
}

static void test_unsubscribe(void **state)
{
	static const struct vs_buf filters[] = {BUF("a/b"), BUF("#"), BUF("+/+")};
	struct vs_packet p;
	struct vs_buf f;
	struct dec d;
	size_t pos, i;
	int v;

	FOR_EACH_VERSION(v)
	{
		memset(&p, 0, sizeof(p));
		p.type = VS_UNSUBSCRIBE;
		p.unsubscribe.packet_id = 9;
		p.unsubscribe.count = 3;
		p.unsubscribe.filters = filters;
		if (v == VS_V5) {
			p.unsubscribe.props.users = users2;
			p.unsubscribe.props.n_user = 2;
		}
		roundtrip(&p, v, &d);
		assert_int_equal(d.pkt.flags, 2);
		assert_int_equal(d.pkt.unsubscribe.count, 3);
		pos = 0;
		for (i = 0; i < 3; i++) {
			assert_int_equal(vs_unsubscribe_next(&d.pkt.unsubscribe, &pos, &f), 1);
			assert_true(codec_buf_eq(f, filters[i]));
		}
		assert_int_equal(vs_unsubscribe_next(&d.pkt.unsubscribe, &pos, &f), 0);
		dec_done(&d);
	}
}

static void test_suback_unsuback(void **state)
{
	static const uint8_t codes3[] = {0, 1, 2, 0x80};
	static const uint8_t codes5[] = {0, 2, 0x80, 0x87, 0x8F, 0xA2};
	static const uint8_t ucodes5[] = {0x00, 0x11, 0x8F};
	struct vs_packet p;
	struct dec d;
	int v;

	FOR_EACH_VERSION(v)
	{
		memset(&p, 0, sizeof(p));
		p.type = VS_SUBACK;
		p.suback.packet_id = 5;
		p.suback.codes = v == VS_V5 ? codes5 : codes3;
		p.suback.count = v == VS_V5 ? 6 : 4;
		if (v == VS_V5) {
			p.suback.props.present = 1ull << VS_PROP_REASON_STRING;
			p.suback.props.reason_string = BUF("partial");
		}
		roundtrip(&p, v, &d);
		assert_int_equal(d.pkt.suback.count, p.suback.count);
		assert_memory_equal(d.pkt.suback.codes, p.suback.codes, p.suback.count);
		dec_done(&d);

		memset(&p, 0, sizeof(p));
		p.type = VS_UNSUBACK;
		p.suback.packet_id = 6;
		p.suback.codes = ucodes5;
		p.suback.count = v == VS_V5 ? 3 : 0;
		roundtrip(&p, v, &d);
		assert_int_equal(d.pkt.suback.packet_id, 6);
		/* 3.1.1 UNSUBACK has no payload: remaining length 2. */
		assert_int_equal(d.n, v == VS_V5 ? 2 + 2 + 1 + 3 : 4);
		assert_int_equal(d.pkt.suback.count, p.suback.count);
		dec_done(&d);
	}
}

static void test_ping_disconnect_auth(void **state)
{
	struct vs_packet p;
	struct dec d;
	int v;

	FOR_EACH_VERSION(v)
	{
		memset(&p, 0, sizeof(p));
		p.type = VS_PINGREQ;
		roundtrip(&p, v, &d);
		assert_int_equal(d.n, 2);
		dec_done(&d);
		p.type = VS_PINGRESP;
		roundtrip(&p, v, &d);
		dec_done(&d);
		p.type = VS_DISCONNECT;
		roundtrip(&p, v, &d);
		assert_int_equal(d.n, 2);
		assert_int_equal(d.pkt.disconnect.reason, 0);
		dec_done(&d);
	}
	memset(&p, 0, sizeof(p));
	p.type = VS_DISCONNECT;
	p.disconnect.reason = VS_RC_DISCONNECT_WITH_WILL;
	roundtrip(&p, VS_V5, &d);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.pkt.disconnect.reason, 4);
	dec_done(&d);
	p.disconnect.reason = VS_RC_SERVER_MOVED;
	p.disconnect.props.present = 1ull << VS_PROP_SESSION_EXPIRY |
				     1ull << VS_PROP_SERVER_REFERENCE |
				     1ull << VS_PROP_REASON_STRING;
	p.disconnect.props.session_expiry = 0;
	p.disconnect.props.server_reference = BUF("b:1883");
	p.disconnect.props.reason_string = BUF("moved");
	roundtrip(&p, VS_V5, &d);
	assert_buf(d.pkt.disconnect.props.server_reference, "b:1883");
	dec_done(&d);

	memset(&p, 0, sizeof(p));
	p.type = VS_AUTH;
	roundtrip(&p, VS_V5, &d);
	assert_int_equal(d.n, 2);
	dec_done(&d);
	p.disconnect.reason = VS_RC_CONTINUE_AUTH;
	p.disconnect.props.present =
	    1ull << VS_PROP_AUTH_METHOD | 1ull << VS_PROP_AUTH_DATA | 1ull << VS_PROP_REASON_STRING;
	p.disconnect.props.auth_method = BUF("SCRAM");
	p.disconnect.props.auth_data = BUF("nonce");
	p.disconnect.props.reason_string = BUF("step 2");
	roundtrip(&p, VS_V5, &d);
	assert_int_equal(d.pkt.disconnect.reason, 0x18);
	assert_buf(d.pkt.disconnect.props.auth_data, "nonce");
	dec_done(&d);
	/* AUTH does not exist before 5.0. */
	assert_int_equal(vs_codec_size(&p, VS_V311), VS_EPROTO);
}

static void test_forward_user_raw(void **state)
{
	struct vs_packet p = {.type = VS_PUBLISH}, q;
	uint8_t raw[256], out[512];
	struct dec d, d2;
	size_t n;

	p.publish.topic = BUF("t");
	p.publish.props.users = users2;
	p.publish.props.n_user = 2;
	p.publish.props.present = 1ull << VS_PROP_CONTENT_TYPE;
	p.publish.props.content_type = BUF("x");
	roundtrip(&p, VS_V5, &d);
	/* Forward the decoded user properties verbatim into a new packet. */
	n = vs_props_copy_users(&d.pkt.publish.props, NULL, 0);
	assert_true(n > 0 && n <= sizeof(raw));
	assert_int_equal(vs_props_copy_users(&d.pkt.publish.props, raw, sizeof(raw)), n);
	memset(&q, 0, sizeof(q));
	q.type = VS_PUBLISH;
	q.publish.topic = BUF("u");
	q.publish.props.user_raw = (struct vs_buf){raw, n};
	ssize_t w = vs_codec_encode(&q, VS_V5, out, sizeof(out));
	assert_true(w > 0);
	dec_run(&d2, out, (size_t)w, VS_V5, 0);
	assert_int_equal(d2.n, w);
	check_users(&d2.pkt.publish.props);
	assert_int_equal(d2.pkt.publish.props.present, 1ull << VS_PROP_USER);
	dec_done(&d2);
	dec_done(&d);
}

static void test_encode_rejects(void **state)
{
	struct vs_packet p = {.type = VS_PUBLISH};
	uint8_t out[64];
	static uint8_t big[70000];

	p.publish.topic = BUF("t");
	p.publish.qos = 3;
	assert_int_equal(vs_codec_size(&p, VS_V311), VS_EPROTO);
	p.publish.qos = 0;
	p.publish.topic = (struct vs_buf){big, sizeof(big)}; /* string over 65,535 bytes */
	assert_int_equal(vs_codec_size(&p, VS_V311), VS_EPROTO);
	p.publish.topic = BUF("t");
	/* a property not valid for the packet type */
	p.publish.props.present = 1ull << VS_PROP_RECEIVE_MAX;
	assert_int_equal(vs_codec_size(&p, VS_V5), VS_EPROTO);
	/* ignored before 5.0 */
	assert_int_equal(vs_codec_size(&p, VS_V311), 5);
	assert_int_equal(vs_codec_encode(&p, VS_V311, out, 4), VS_ETOOBIG);
	assert_int_equal(vs_codec_size(&p, 6), VS_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connect_minimal),
	    cmocka_unit_test(test_connect_bridge_level),
	    cmocka_unit_test(test_connect_empty_client_id),
	    cmocka_unit_test(test_connect_full),
	    cmocka_unit_test(test_connect_v5_password_without_username),
	    cmocka_unit_test(test_connack),
	    cmocka_unit_test(test_connack_v5_all_props),
	    cmocka_unit_test(test_connack_v5_without_props),
	    cmocka_unit_test(test_publish_qos),
	    cmocka_unit_test(test_publish_v5_all_props),
	    cmocka_unit_test(test_publish_v5_single_sub_id),
	    cmocka_unit_test(test_publish_large_remaining_length),
	    cmocka_unit_test(test_acks),
	    cmocka_unit_test(test_ack_v5_short_forms),
	    cmocka_unit_test(test_subscribe),
	    cmocka_unit_test(test_unsubscribe),
	    cmocka_unit_test(test_suback_unsuback),
	    cmocka_unit_test(test_ping_disconnect_auth),
	    cmocka_unit_test(test_forward_user_raw),
	    cmocka_unit_test(test_encode_rejects),
	};
	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
