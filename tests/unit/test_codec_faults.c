/*
 * Allocation fault injection for src/codec (see fault.h): decoding and encoding of every MQTT
 * packet type, with every property valid for it, at every protocol level, and of every MQTT-SN
 * message type.
 *
 * The codec's contract is that it never allocates (codec.h: views into the caller's buffer,
 * encoding into caller memory). So the fault loop has nothing to fail: the counting run must
 * see 0 allocations, and a second run with every allocation failing must give exactly the same
 * bytes and the same decoded packets. If the codec ever starts allocating, this test says where
 * the contract broke rather than letting the broker's hot path pick up a malloc unnoticed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "codec/codec.h"
#include "codec/sn.h"
#include "fault.h"

#define B(s) ((struct vs_buf){(const uint8_t *)(s), sizeof(s) - 1})

static const struct vs_user_prop users[] = {
    {B("k1"), B("v1")},
    {B("k1"), B("a second value under the same key")},
};
static const uint32_t sub_ids[] = {7, 268435455};
static const struct vs_sub_entry entries[] = {
    {B("a/+/c"), 1, true, false, 0},
    {B("$share/g/x/#"), 2, false, true, 2},
    {B("#"), 0, false, false, 1},
};
static const struct vs_buf filters[] = {B("a/+/c"), B("$share/g/x/#"), B("#")};
static const uint8_t suback_codes[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t unsuback_codes[] = {0x00, 0x11, 0x80};

/* Sets every property valid for type (or VS_WILL_PROPS) to an in-range value. */
static void all_props(struct vs_props *p, int type)
{
	memset(p, 0, sizeof(*p));
	for (int id = 1; id < 64; id++)
		if (vs_prop_valid(id, type) && id != VS_PROP_USER)
			p->present |= 1ull << id;
	p->payload_format = 1;
	p->request_problem_info = 1;
	p->request_response_info = 1;
	p->max_qos = 1;
	p->retain_available = 1;
	p->wildcard_sub_available = 1;
	p->sub_id_available = 1;
	p->shared_sub_available = 1;
	p->server_keepalive = 30;
	p->receive_max = 20;
	p->topic_alias_max = 10;
	p->topic_alias = 3;
	p->message_expiry = 3600;
	p->session_expiry = 60;
	p->will_delay = 5;
	p->max_packet_size = 1 << 20;
	p->sub_id = 7;
	p->content_type = B("text/plain");
	p->response_topic = B("reply/to/me");
	p->correlation_data = B("\x01\x02\x03");
	p->assigned_client_id = B("assigned-1");
	p->auth_method = B("SCRAM-SHA-256");
	p->auth_data = B("\x00\xff");
	p->response_info = B("resp/info");
	p->server_reference = B("other.example:1883");
	p->reason_string = B("because");
	p->users = users;
	p->n_user = 2;
	if (type == VS_PUBLISH) { /* several identifiers: only a server's PUBLISH has them */
		p->sub_ids = sub_ids;
		p->n_sub_ids = 2;
	}
}

#define MAX_PACKETS 64

struct sample {
	struct vs_packet p;
	int version;
};

/* Every packet type, with all its properties at 5.0, and at 3.1.1 and 3.1. */
static size_t samples(struct sample *v)
{
	size_t n = 0;
	static const int versions[] = {VS_V5, VS_V311, VS_V31};

	for (size_t i = 0; i < 3; i++) {
		int ver = versions[i];
		struct vs_packet *p;
		for (int t = VS_CONNECT; t <= VS_AUTH; t++) {
			if (t == VS_AUTH && ver != VS_V5)
				continue;
			int qos_forms = t == VS_PUBLISH ? 3 : 1;
			for (int q = 0; q < qos_forms; q++) {
				v[n].version = ver;
				p = &v[n++].p;
				memset(p, 0, sizeof(*p));
				p->type = (uint8_t)t;
				switch (t) {
				case VS_CONNECT:
					p->connect =
					    (struct vs_connect){.version = (uint8_t)ver,
								.clean = true,
								.keepalive = 60,
								.client_id = B("client-1"),
								.will = true,
								.will_qos = 1,
								.will_retain = true,
								.will_topic = B("will/topic"),
								.will_payload = B("gone"),
								.has_username = true,
								.has_password = true,
								.username = B("alice"),
								.password = B("secret")};
					all_props(&p->connect.props, VS_CONNECT);
					all_props(&p->connect.will_props, VS_WILL_PROPS);
					break;
				case VS_CONNACK:
					p->connack.session_present = true;
					all_props(&p->connack.props, VS_CONNACK);
					break;
				case VS_PUBLISH:
					p->publish.qos = (uint8_t)q;
					p->publish.retain = true;
					p->publish.dup = q > 0;
					p->publish.topic = B("home/kitchen/temperature");
					p->publish.packet_id = q ? 4242 : 0;
					p->publish.payload = B("21.5");
					all_props(&p->publish.props, VS_PUBLISH);
					break;
				case VS_PUBACK:
				case VS_PUBREC:
				case VS_PUBREL:
				case VS_PUBCOMP:
					p->ack.packet_id = 17;
					p->ack.reason =
					    t == VS_PUBREL || t == VS_PUBCOMP ? 0x92 : 0x10;
					all_props(&p->ack.props, t);
					break;
				case VS_SUBSCRIBE:
					p->subscribe.packet_id = 18;
					p->subscribe.count = 3;
					p->subscribe.entries = entries;
					all_props(&p->subscribe.props, t);
					break;
				case VS_UNSUBSCRIBE:
					p->unsubscribe.packet_id = 19;
					p->unsubscribe.count = 3;
					p->unsubscribe.filters = filters;
					all_props(&p->unsubscribe.props, t);
					break;
				case VS_SUBACK:
					p->suback.packet_id = 18;
					p->suback.count = 4;
					p->suback.codes = suback_codes;
					all_props(&p->suback.props, t);
					break;
				case VS_UNSUBACK:
					p->suback.packet_id = 19;
					p->suback.count = ver == VS_V5 ? 3 : 0;
					p->suback.codes = unsuback_codes;
					all_props(&p->suback.props, t);
					break;
				case VS_DISCONNECT:
				case VS_AUTH:
					p->disconnect.reason = t == VS_AUTH ? 0x18 : 0x04;
					all_props(&p->disconnect.props, t);
					break;
				}
			}
		}
	}
	assert_true(n <= MAX_PACKETS);
	return n;
}

/* What one encode + decode produced, to compare the run with failing allocations against. */
struct outcome {
	ssize_t size, written, consumed;
	enum vs_reason why;
	struct vs_packet dec;
	uint8_t wire[1024];
	/* walked from the decoded packet */
	uint32_t n_entries, n_users, n_ids, entry_bits, id_sum;
	size_t users_len;
	uint8_t users_raw[256];
};

/* Encodes, decodes and walks every list of the decoded packet. */
static void encode_decode(const struct sample *s, struct outcome *o)
{
	const struct vs_packet *p = &s->p;
	struct vs_decode_opts opts = {.version = p->type == VS_CONNECT ? 0 : (uint8_t)s->version};
	const struct vs_props *pp = NULL;
	struct vs_sub_entry e;
	struct vs_user_prop up;
	struct vs_buf f;
	uint32_t id;
	size_t pos;

	memset(o, 0, sizeof(*o));
	o->size = vs_codec_size(p, s->version);
	if (o->size <= 0 || (size_t)o->size > sizeof(o->wire))
		return;
	o->written = vs_codec_encode(p, s->version, o->wire, sizeof(o->wire));
	if (o->written <= 0)
		return;
	o->consumed = vs_codec_decode(o->wire, (size_t)o->written, &opts, &o->dec, &o->why);
	if (o->consumed <= 0)
		return;
	switch (o->dec.type) {
	case VS_SUBSCRIBE:
		for (pos = 0; vs_subscribe_next(&o->dec.subscribe, s->version, &pos, &e);)
			o->entry_bits = o->entry_bits * 3 + e.qos + e.no_local + e.retain_handling,
			o->n_entries++;
		pp = &o->dec.subscribe.props;
		break;
	case VS_UNSUBSCRIBE:
		for (pos = 0; vs_unsubscribe_next(&o->dec.unsubscribe, &pos, &f);)
			o->n_entries++;
		pp = &o->dec.unsubscribe.props;
		break;
	case VS_PUBLISH:
		pp = &o->dec.publish.props;
		break;
	case VS_CONNECT:
		pp = &o->dec.connect.props;
		break;
	}
	if (!pp)
		return;
	for (pos = 0; vs_props_next_user(pp, &pos, &up);)
		o->n_users++;
	for (pos = 0; vs_props_next_sub_id(pp, &pos, &id);)
		o->id_sum += id, o->n_ids++;
	o->users_len = vs_props_copy_users(pp, o->users_raw, sizeof(o->users_raw));
}

static void check_outcome(const struct sample *s, const struct outcome *o)
{
	if (o->size <= 0 || o->written != o->size || o->consumed != o->written)
		fail_msg("type %d version %d: size %zd written %zd consumed %zd why 0x%02x",
			 s->p.type, s->version, o->size, o->written, o->consumed, o->why);
	assert_int_equal(o->dec.type, s->p.type);
	if (s->p.type == VS_SUBSCRIBE || s->p.type == VS_UNSUBSCRIBE)
		assert_int_equal(o->n_entries, 3);
	if (s->version == VS_V5 &&
	    (s->p.type == VS_PUBLISH || s->p.type == VS_CONNECT || s->p.type == VS_SUBSCRIBE))
		assert_int_equal(o->n_users, 2);
	if (s->version == VS_V5 && s->p.type == VS_PUBLISH)
		assert_int_equal(o->id_sum, 7 + 268435455);
}

struct codec_ctx {
	struct sample v[MAX_PACKETS];
	size_t n;
	struct outcome good[MAX_PACKETS], got;
};

static void codec_scenario(void *arg, unsigned long fail_at)
{
	struct codec_ctx *c = arg;

	for (size_t i = 0; i < c->n; i++) {
		fault_begin(fail_at);
		encode_decode(&c->v[i], &c->got);
		unsigned long seen = fault_end();
		if (seen)
			fail_msg("type %d version %d: the codec allocated %lu times",
				 c->v[i].p.type, c->v[i].version, seen);
		check_outcome(&c->v[i], &c->got);
		if (fail_at == 0)
			c->good[i] = c->got;
		else if (memcmp(&c->good[i], &c->got, sizeof(c->got)) != 0)
			fail_msg("type %d version %d: a different outcome with allocations failing",
				 c->v[i].p.type, c->v[i].version);
	}
}

static void mqtt_codec_never_allocates_for_any_packet_type(void **state)
{
	struct codec_ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->n = samples(c->v);
	assert_int_equal(c->n, 17 + 16 + 16); /* 15 types, 2 more PUBLISH QoS; AUTH only in 5.0 */
	assert_int_equal(fault_each("mqtt codec", codec_scenario, c), 0);
	codec_scenario(c, FAULT_FAIL_ALL); /* same bytes, same packets with malloc gone */
	free(c);
}

/* ---- MQTT-SN ---- */

static size_t sn_samples(struct vs_sn_packet *v)
{
	static const uint8_t types[] = {
	    VS_SN_ADVERTISE,	 VS_SN_SEARCHGW,     VS_SN_GWINFO,	VS_SN_CONNECT,
	    VS_SN_CONNACK,	 VS_SN_WILLTOPICREQ, VS_SN_WILLTOPIC,	VS_SN_WILLMSGREQ,
	    VS_SN_WILLMSG,	 VS_SN_REGISTER,     VS_SN_REGACK,	VS_SN_PUBLISH,
	    VS_SN_PUBACK,	 VS_SN_PUBCOMP,	     VS_SN_PUBREC,	VS_SN_PUBREL,
	    VS_SN_SUBSCRIBE,	 VS_SN_SUBACK,	     VS_SN_UNSUBSCRIBE, VS_SN_UNSUBACK,
	    VS_SN_PINGREQ,	 VS_SN_PINGRESP,     VS_SN_DISCONNECT,	VS_SN_WILLTOPICUPD,
	    VS_SN_WILLTOPICRESP, VS_SN_WILLMSGUPD,   VS_SN_WILLMSGRESP,
	};
	size_t n = sizeof(types);

	for (size_t i = 0; i < n; i++) {
		struct vs_sn_packet *p = &v[i];
		memset(p, 0, sizeof(*p));
		p->type = types[i];
		p->gw_id = 1;
		p->radius = 1;
		p->protocol = 1;
		p->duration = 30;
		p->topic_id = 5;
		p->msg_id = 9;
		switch (p->type) {
		case VS_SN_CONNECT:
			p->flags = VS_SN_CLEAN | VS_SN_WILL;
			p->data = B("sensor-1");
			break;
		case VS_SN_WILLTOPIC:
		case VS_SN_WILLTOPICUPD:
			p->flags = vs_sn_qos_flags(1) | VS_SN_RETAIN;
			p->data = B("will/t");
			break;
		case VS_SN_WILLMSG:
		case VS_SN_WILLMSGUPD:
			p->data = B("bye");
			break;
		case VS_SN_REGISTER:
			p->data = B("home/t");
			break;
		case VS_SN_PUBLISH:
			p->flags = vs_sn_qos_flags(1);
			p->data = B("19.0");
			break;
		case VS_SN_SUBSCRIBE:
		case VS_SN_UNSUBSCRIBE:
			p->flags = vs_sn_qos_flags(1) | VS_SN_TID_NORMAL;
			p->data = B("home/+/t");
			break;
		case VS_SN_SUBACK:
			p->flags = vs_sn_qos_flags(1);
			break;
		case VS_SN_DISCONNECT:
			p->has_duration = true;
			break;
		case VS_SN_GWINFO:
			p->data = B("\x0a\x00\x00\x01");
			break;
		}
	}
	return n;
}

struct sn_ctx {
	struct vs_sn_packet v[32];
	size_t n;
	struct sn_out {
		ssize_t size, written;
		int rc;
		struct vs_sn_packet dec;
		uint8_t wire[128];
	} good[32], got;
};

static void sn_scenario(void *arg, unsigned long fail_at)
{
	struct sn_ctx *c = arg;

	for (size_t i = 0; i < c->n; i++) {
		struct sn_out *o = &c->got;
		const char *why = NULL;

		memset(o, 0, sizeof(*o));
		fault_begin(fail_at);
		o->size = vs_sn_size(&c->v[i]);
		o->written = vs_sn_encode(&c->v[i], o->wire, sizeof(o->wire));
		if (o->written > 0)
			o->rc = vs_sn_decode(o->wire, (size_t)o->written, &o->dec, &why);
		unsigned long seen = fault_end();
		if (seen)
			fail_msg("MQTT-SN %s: the codec allocated %lu times",
				 vs_sn_type_name(c->v[i].type), seen);
		if (o->size <= 0 || o->written != o->size || o->rc != 0)
			fail_msg("MQTT-SN %s: size %zd written %zd decode %d (%s)",
				 vs_sn_type_name(c->v[i].type), o->size, o->written, o->rc,
				 why ? why : "");
		assert_int_equal(o->dec.type, c->v[i].type);
		if (fail_at == 0)
			c->good[i] = *o;
		else if (memcmp(&c->good[i], o, sizeof(*o)) != 0)
			fail_msg("MQTT-SN %s: a different outcome with allocations failing",
				 vs_sn_type_name(c->v[i].type));
	}
}

static void sn_codec_never_allocates_for_any_message_type(void **state)
{
	struct sn_ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->n = sn_samples(c->v);
	assert_int_equal(fault_each("mqtt-sn codec", sn_scenario, c), 0);
	sn_scenario(c, FAULT_FAIL_ALL);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mqtt_codec_never_allocates_for_any_packet_type),
	    cmocka_unit_test(sn_codec_never_allocates_for_any_message_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
