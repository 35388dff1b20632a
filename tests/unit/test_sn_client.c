/*
 * The MQTT-SN client transport (sn/sn.h), what the sensor sends: PUBLISH, REGISTER,
 * SUBSCRIBE, PINGREQ, DISCONNECT, through the rig of sn_rig.h.
 */
#include "sn_rig.h"

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

int main(void)
{
#define RIG(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)
	const struct CMUnitTest tests[] = {
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
	};
#undef RIG
	return cmocka_run_group_tests_name("sn from client", tests, NULL, NULL);
}
