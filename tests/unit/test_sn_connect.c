/*
 * The MQTT-SN client transport (sn/sn.h): the client table, and CONNECT with its will
 * dialogue and sessions, through the rig of sn_rig.h.
 */
#include "sn_rig.h"

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

int main(void)
{
#define RIG(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)
	const struct CMUnitTest tests[] = {
	    RIG(client_open_registers_and_close_removes),
	    RIG(client_close_keeps_a_successor_in_the_table),
	    RIG(connect_clean_session),
	    RIG(connect_persistent_session),
	    RIG(connect_will_dialogue),
	    RIG(connect_will_empty_topic_means_no_will),
	    RIG(connect_will_bad_topic_or_order_closes),
	    RIG(connect_refusals),
	    RIG(connect_bad_client_id_length),
	};
#undef RIG
	return cmocka_run_group_tests_name("sn connect", tests, NULL, NULL);
}
