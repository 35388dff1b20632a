/*
 * The MQTT-SN client transport (sn/sn.h), what the broker sends: topic ids, one message in
 * flight, retransmission; sleeping clients; the queue's limit. Through the rig of sn_rig.h.
 */
#include "sn_rig.h"

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
	return cmocka_run_group_tests_name("sn from broker", tests, NULL, NULL);
}
