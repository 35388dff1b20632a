/*
 * Unit tests of the server side of the protocol rules (proto/server.h): CONNECT checks,
 * keep-alive and session expiry, PUBLISH checks, incoming topic aliases, the outgoing QoS 1/2
 * acknowledgement state machine, PUBCOMP and PUBACK reason codes, SUBSCRIBE options. Each test
 * names the conformance statements it holds the code to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "codec/reason.h"
#include "proto/server.h"
#include "session/session.h"

#define BUFS(s) ((struct vs_buf){(const uint8_t *)(s), sizeof(s) - 1})

static struct vs_connect connect_of(uint8_t version, const char *id, bool clean)
{
	struct vs_connect p;
	memset(&p, 0, sizeof(p));
	p.version = version;
	p.client_id.p = (const uint8_t *)id;
	p.client_id.len = strlen(id);
	p.clean = clean;
	return p;
}

/* ---- CONNECT ---------------------------------------------------------------------------- */

/* [MQTT-3.1.3-7], [MQTT-3.1.3-8]: an empty id needs a clean session in 3.1.1, and the server
 * may refuse it; MQTT 3.1 has no empty ids and at most 23 bytes. */
static void test_client_id(void **state)
{
	(void)state;
	uint8_t rc3 = 0;
	const char *why = NULL;
	struct vs_connect p = connect_of(VS_V311, "", false);
	assert_int_equal(vs_sproto_check_client_id(&p, true, &rc3, &why), VS_RC_CLIENT_ID_INVALID);
	assert_int_equal(rc3, VS_CONNACK3_ID_REJECTED);
	assert_non_null(strstr(why, "clean session"));
	p = connect_of(VS_V311, "", true);
	assert_int_equal(vs_sproto_check_client_id(&p, true, &rc3, &why), VS_RC_SUCCESS);
	assert_int_equal(vs_sproto_check_client_id(&p, false, &rc3, &why), VS_RC_CLIENT_ID_INVALID);
	p = connect_of(VS_V5, "", false); /* 5.0: Clean Start 0 with an empty id is allowed */
	assert_int_equal(vs_sproto_check_client_id(&p, true, &rc3, &why), VS_RC_SUCCESS);
	p = connect_of(VS_V31, "", true);
	assert_int_equal(vs_sproto_check_client_id(&p, true, &rc3, &why), VS_RC_CLIENT_ID_INVALID);
	p = connect_of(VS_V31, "abcdefghijklmnopqrstuvw", true); /* 23 bytes */
	assert_int_equal(vs_sproto_check_client_id(&p, true, &rc3, &why), VS_RC_SUCCESS);
	p = connect_of(VS_V31, "abcdefghijklmnopqrstuvwx", true);
	assert_int_equal(vs_sproto_check_client_id(&p, true, &rc3, &why), VS_RC_CLIENT_ID_INVALID);
	p = connect_of(VS_V311, "abcdefghijklmnopqrstuvwxyz0123456789",
		       true); /* 3.1.1: longer ok */
	assert_int_equal(vs_sproto_check_client_id(&p, true, &rc3, &why), VS_RC_SUCCESS);
}

/* [MQTT-3.2.2-21]: 5.0 is told the server's keep-alive; 3.x above the limit is refused. */
static void test_keepalive(void **state)
{
	(void)state;
	assert_int_equal(vs_sproto_keepalive(VS_V311, 0, 65535), 0);
	assert_int_equal(vs_sproto_keepalive(VS_V5, 600, 65535), 600);
	assert_int_equal(vs_sproto_keepalive(VS_V311, 60, 60), 60);
	assert_int_equal(vs_sproto_keepalive(VS_V311, 61, 60), -1);
	assert_int_equal(vs_sproto_keepalive(VS_V311, 0, 60), -1); /* "never" is above any limit */
	assert_int_equal(vs_sproto_keepalive(VS_V5, 61, 60), 60);
	assert_int_equal(vs_sproto_keepalive(VS_V5, 0, 60), 60);
	assert_int_equal(vs_sproto_keepalive(VS_V5, 30, 60), 30);
}

/* [MQTT-3.1.2-11]: 5.0 without Session Expiry Interval ends the session with the connection;
 * 3.x: clean session 0 keeps it persistent_client_expiration seconds (negative: for ever). */
static void test_session_expiry(void **state)
{
	(void)state;
	struct vs_connect p = connect_of(VS_V5, "c", false);
	assert_int_equal(vs_sproto_session_expiry(&p, -1), 0);
	p.props.present = 1ull << VS_PROP_SESSION_EXPIRY;
	p.props.session_expiry = 120;
	assert_int_equal(vs_sproto_session_expiry(&p, -1), 120);
	p = connect_of(VS_V311, "c", true);
	assert_int_equal(vs_sproto_session_expiry(&p, -1), 0);
	p = connect_of(VS_V311, "c", false);
	assert_int_equal(vs_sproto_session_expiry(&p, -1), UINT32_MAX);
	assert_int_equal(vs_sproto_session_expiry(&p, 3600), 3600);
	assert_int_equal(vs_sproto_session_expiry(&p, (int64_t)1 << 40), UINT32_MAX);
}

/* ---- PUBLISH ---------------------------------------------------------------------------- */

static struct vs_publish pub_of(uint8_t qos, bool retain)
{
	struct vs_publish p;
	memset(&p, 0, sizeof(p));
	p.topic = BUFS("a/b");
	p.qos = qos;
	p.retain = retain;
	p.packet_id = qos ? 7 : 0;
	return p;
}

static void test_check_publish(void **state)
{
	(void)state;
	const char *why = NULL;
	struct vs_sproto_pub st = {
	    .version = VS_V5, .max_qos = 1, .retain_available = false, .receive_max = 2};
	struct vs_publish p = pub_of(1, false);
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), 0);
	/* [MQTT-3.2.2-11] a QoS above the server's maximum */
	p = pub_of(2, false);
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), VS_RC_QOS_NOT_SUPPORTED);
	/* [MQTT-3.3.1-12] retain when the server has no retain */
	p = pub_of(0, true);
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), VS_RC_RETAIN_NOT_SUPPORTED);
	/* [MQTT-3.3.4-6] a Subscription Identifier from a client */
	p = pub_of(0, false);
	p.props.present = 1ull << VS_PROP_SUB_ID;
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), VS_RC_PROTOCOL_ERROR);
	assert_non_null(strstr(why, "Subscription Identifier"));
	/* [MQTT-3.3.4-9] one QoS 2 message more than Receive Maximum; a resend of one in flight
	 * is no more */
	st.max_qos = 2;
	st.in_qos2 = 2;
	p = pub_of(2, false);
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), VS_RC_RECEIVE_MAX_EXCEEDED);
	st.id_in_qos2 = true;
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), 0);
	st.id_in_qos2 = false;
	st.in_qos2 = 1;
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), 0);
	/* 3.1.1 has no Receive Maximum */
	st.version = VS_V311;
	st.in_qos2 = 100;
	assert_int_equal(vs_sproto_check_publish(&st, &p, &why), 0);
}

/* [MQTT-3.3.2-8..12]: topic aliases. */
static void test_topic_alias(void **state)
{
	(void)state;
	struct vs_alias_in a;
	assert_int_equal(vs_alias_in_init(&a, 2), 0);
	struct vs_buf t;
	struct vs_publish p = pub_of(0, false);
	/* no alias: the topic as sent; no topic and no alias is a protocol error [MQTT-3.3.2-8] */
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), 0);
	assert_int_equal(t.len, 3);
	p.topic.len = 0;
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), VS_RC_PROTOCOL_ERROR);
	/* alias 0 or above the maximum [MQTT-3.3.2-9], [MQTT-3.3.2-10] */
	p.props.present = 1ull << VS_PROP_TOPIC_ALIAS;
	p.props.topic_alias = 0;
	p.topic = BUFS("x");
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), VS_RC_TOPIC_ALIAS_INVALID);
	p.props.topic_alias = 3;
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), VS_RC_TOPIC_ALIAS_INVALID);
	/* an alias used before it was set */
	p.props.topic_alias = 2;
	p.topic.len = 0;
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), VS_RC_PROTOCOL_ERROR);
	/* set, then used; set again replaces it [MQTT-3.3.2-12] */
	p.topic = BUFS("first/topic");
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), 0);
	p.topic.len = 0;
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), 0);
	assert_memory_equal(t.p, "first/topic", t.len);
	assert_int_equal(t.len, 11);
	p.topic = BUFS("second");
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), 0);
	p.topic.len = 0;
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), 0);
	assert_int_equal(t.len, 6);
	assert_memory_equal(t.p, "second", 6);
	vs_alias_in_fini(&a);
	/* a server without aliases: every alias is invalid */
	assert_int_equal(vs_alias_in_init(&a, 0), 0);
	p.props.topic_alias = 1;
	p.topic = BUFS("x");
	assert_int_equal(vs_alias_in_resolve(&a, &p, &t), VS_RC_TOPIC_ALIAS_INVALID);
	vs_alias_in_fini(&a);
}

/* ---- Acknowledgements ------------------------------------------------------------------- */

/* 4.3.2: QoS 1 ends on PUBACK [MQTT-4.3.2-4]; nothing else moves it. */
static void test_outgoing_qos1(void **state)
{
	(void)state;
	uint8_t s = VS_Q_WAIT_PUBACK;
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBREC, 0), VS_ACK_IGNORE);
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBCOMP, 0), VS_ACK_IGNORE);
	assert_int_equal(s, VS_Q_WAIT_PUBACK);
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBACK, 0x10), VS_ACK_DONE);
}

/* 4.3.3: QoS 2 PUBREC -> PUBREL [MQTT-4.3.3-4], PUBCOMP ends it [MQTT-4.3.3-5]; a PUBREC with
 * an error ends the flow; a PUBREC again sends PUBREL again. */
static void test_outgoing_qos2(void **state)
{
	(void)state;
	uint8_t s = VS_Q_WAIT_PUBREC;
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBACK, 0), VS_ACK_IGNORE);
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBCOMP, 0), VS_ACK_IGNORE);
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBREC, 0), VS_ACK_RELEASE);
	assert_int_equal(s, VS_Q_WAIT_PUBCOMP);
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBREC, 0), VS_ACK_RELEASE);
	assert_int_equal(s, VS_Q_WAIT_PUBCOMP);
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBACK, 0), VS_ACK_IGNORE);
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBCOMP, 0), VS_ACK_DONE);
	s = VS_Q_WAIT_PUBREC;
	assert_int_equal(vs_sproto_outgoing_ack(&s, VS_PUBREC, VS_RC_NOT_AUTHORIZED), VS_ACK_DONE);
	assert_int_equal(s, VS_Q_WAIT_PUBREC);
}

/* [MQTT-4.3.3-11]: PUBCOMP answers every PUBREL; 5.0 says 0x92 for an unknown id. PUBACK and
 * PUBREC carry the broker's decision only in 5.0. */
static void test_ack_reasons(void **state)
{
	(void)state;
	assert_int_equal(vs_sproto_pubcomp_reason(VS_V5, true), 0);
	assert_int_equal(vs_sproto_pubcomp_reason(VS_V5, false), VS_RC_PACKET_ID_NOT_FOUND);
	assert_int_equal(vs_sproto_pubcomp_reason(VS_V311, false), 0);
	assert_int_equal(vs_sproto_ack_reason(VS_V5, VS_RC_NOT_AUTHORIZED), VS_RC_NOT_AUTHORIZED);
	assert_int_equal(vs_sproto_ack_reason(VS_V5, VS_RC_NO_MATCHING_SUBSCRIBERS),
			 VS_RC_NO_MATCHING_SUBSCRIBERS);
	assert_int_equal(vs_sproto_ack_reason(VS_V311, VS_RC_NOT_AUTHORIZED), 0);
}

/* ---- SUBSCRIBE -------------------------------------------------------------------------- */

static void test_check_sub(void **state)
{
	(void)state;
	uint8_t g = 0xAA;
	struct vs_sub_entry e;
	memset(&e, 0, sizeof(e));
	e.filter = BUFS("a/+/c");
	e.qos = 2;
	assert_int_equal(vs_sproto_check_sub(VS_V5, &e, 2, 0, &g), VS_SUB_OK);
	assert_int_equal(g, 2);
	assert_int_equal(vs_sproto_check_sub(VS_V5, &e, 1, 0, &g), VS_SUB_OK); /* granted lower */
	assert_int_equal(g, 1);
	/* deeper than max_topic_levels: 5.0 0x8F, 3.1.1 0x80 [MQTT-3.9.3-2] */
	assert_int_equal(vs_sproto_check_sub(VS_V5, &e, 2, 2, &g), VS_SUB_REFUSED);
	assert_int_equal(g, VS_RC_TOPIC_FILTER_INVALID);
	assert_int_equal(vs_sproto_check_sub(VS_V311, &e, 2, 2, &g), VS_SUB_REFUSED);
	assert_int_equal(g, VS_RC_UNSPECIFIED);
	assert_int_equal(vs_sproto_check_sub(VS_V311, &e, 2, 3, &g), VS_SUB_OK);
	/* [MQTT-3.8.3-4] No Local on a shared subscription; the share name is not a level */
	e.filter = BUFS("$share/g/a/+/c");
	assert_true(vs_sproto_is_shared(&e.filter));
	assert_int_equal(vs_sproto_check_sub(VS_V5, &e, 2, 3, &g), VS_SUB_OK);
	e.no_local = true;
	assert_int_equal(vs_sproto_check_sub(VS_V5, &e, 2, 0, &g), VS_SUB_PROTOCOL);
	e.filter = BUFS("$share/");
	assert_false(vs_sproto_is_shared(&e.filter));
	e.filter = BUFS("share/g/x");
	assert_false(vs_sproto_is_shared(&e.filter));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_id),	   cmocka_unit_test(test_keepalive),
	    cmocka_unit_test(test_session_expiry), cmocka_unit_test(test_check_publish),
	    cmocka_unit_test(test_topic_alias),	   cmocka_unit_test(test_outgoing_qos1),
	    cmocka_unit_test(test_outgoing_qos2),  cmocka_unit_test(test_ack_reasons),
	    cmocka_unit_test(test_check_sub),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
