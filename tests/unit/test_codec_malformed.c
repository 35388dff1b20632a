/*
 * Codec rejections: every malformed or protocol-violating single packet the specs name, each
 * test naming its conformance statement, decoded through a guard page, checking the reason
 * code the decoder reports (see the table at the top of src/codec/decode.c):
 *   0x81 Malformed Packet, 0x82 Protocol Error, 0x84 Unsupported Protocol Version,
 *   0x8F Topic Filter invalid, 0x90 Topic Name invalid, 0x94 Topic Alias invalid,
 *   0x95 Packet too large.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec_util.h"

#define V31 VS_V31
#define V4  VS_V311
#define V5  VS_V5
#define MAL VS_RC_MALFORMED
#define PE  VS_RC_PROTOCOL_ERROR

/* Builds fixed header + body into out; returns the length. */
static size_t frame(uint8_t *out, uint8_t b0, const uint8_t *body, size_t n)
{
	size_t h = 1;

	out[0] = b0;
	h += (size_t)vs_vbi_encode((uint32_t)n, out + 1);
	memcpy(out + h, body, n);
	return h + n;
}

/* A 5.0 packet of type b0 with `pre` bytes before the property block and `post` after it. */
static void expect_props(uint8_t b0, const uint8_t *pre, size_t npre, const uint8_t *props,
			 size_t nprops, const uint8_t *post, size_t npost, enum vs_reason why)
{
	uint8_t body[512], pkt[520];
	size_t n = 0;

	memcpy(body, pre, npre);
	n = npre;
	n += (size_t)vs_vbi_encode((uint32_t)nprops, body + n);
	memcpy(body + n, props, nprops);
	n += nprops;
	if (npost)
		memcpy(body + n, post, npost);
	n += npost;
	size_t len = frame(pkt, b0, body, n);
	if (why == VS_RC_SUCCESS) {
		struct dec d;
		expect_ok(&d, pkt, len, V5);
		dec_done(&d);
	} else {
		expect_fail(pkt, len, V5, why);
	}
}

static const uint8_t pub_pre[] = {0x00, 0x01, 'a'};

/* PUBLISH QoS 0 topic "a" with the given property bytes. */
#define PUB_PROPS(why, ...)                                                                        \
	do {                                                                                       \
		const uint8_t p_[] = {__VA_ARGS__};                                                \
		expect_props(0x30, pub_pre, 3, p_, sizeof(p_), NULL, 0, why);                      \
	} while (0)

static const uint8_t connect5_pre[] = {0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60};
static const uint8_t connect5_post[] = {0, 1, 'c'};

#define CONNECT_PROPS(why, ...)                                                                    \
	do {                                                                                       \
		const uint8_t p_[] = {__VA_ARGS__};                                                \
		expect_props(0x10, connect5_pre, sizeof(connect5_pre), p_, sizeof(p_),             \
			     connect5_post, 3, why);                                               \
	} while (0)

static const uint8_t connack5_pre[] = {0x00, 0x00};
#define CONNACK_PROPS(why, ...)                                                                    \
	do {                                                                                       \
		const uint8_t p_[] = {__VA_ARGS__};                                                \
		expect_props(0x20, connack5_pre, 2, p_, sizeof(p_), NULL, 0, why);                 \
	} while (0)

/* [MQTT-2.1.3-1] reserved fixed-header flags must be as the table says. */
static void test_mqtt_2_1_3_1_bad_fixed_header_flags(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x41, 0x02, 0x00, 0x01);	      /* PUBACK flags 1 */
	EXPECT_FAIL(V4, MAL, 0x60, 0x02, 0x00, 0x01);	      /* PUBREL flags 0 */
	EXPECT_FAIL(V4, MAL, 0x80, 0x06, 0, 1, 0, 1, 'a', 0); /* SUBSCRIBE flags 0 */
	EXPECT_FAIL(V4, MAL, 0xA3, 0x05, 0, 1, 0, 1, 'a');    /* UNSUBSCRIBE flags 3 */
	EXPECT_FAIL(V4, MAL, 0xC1, 0x00);		      /* PINGREQ */
	EXPECT_FAIL(V5, MAL, 0xE8, 0x00);		      /* DISCONNECT */
	EXPECT_FAIL(0, MAL, 0x12, 0x00);		      /* CONNECT */
	/* Fails from the first byte alone: no waiting for the rest. */
	EXPECT_FAIL(V4, MAL, 0x41);
}

static void test_reserved_packet_types(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x00, 0x00); /* type 0 is reserved */
	EXPECT_FAIL(V4, MAL, 0xF0, 0x00); /* AUTH does not exist before 5.0 */
	EXPECT_FAIL(V31, MAL, 0xF0, 0x00);
}

/* MQTT 3.1 predates strict flags: SUBSCRIBE/PUBREL with DUP set (a retransmission) is fine. */
static void test_v31_lenient_flags(void **state)
{
	struct dec d;

	EXPECT_OK(&d, V31, 0x8A, 0x06, 0, 1, 0, 1, 'a', 0);
	dec_done(&d);
	EXPECT_FAIL(V4, MAL, 0x8A, 0x06, 0, 1, 0, 1, 'a', 0);
	EXPECT_FAIL(V31, MAL, 0x80, 0x06, 0, 1, 0, 1, 'a', 0);
}

/* [MQTT-3.3.1-4] QoS 3 in PUBLISH: malformed, from the first byte. */
static void test_mqtt_3_3_1_4_publish_qos3(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x36, 0x03, 0x00, 0x01, 'a');
	EXPECT_FAIL(V5, MAL, 0x36);
}

/* [MQTT-3.3.1-2] DUP must be 0 for QoS 0. */
static void test_mqtt_3_3_1_2_dup_with_qos0(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x38, 0x03, 0x00, 0x01, 'a');
}

/* [MQTT-3.1.0-1] before CONNECT (opts->version 0) nothing else is accepted. */
static void test_mqtt_3_1_0_1_connect_first(void **state)
{
	EXPECT_FAIL(0, PE, 0x30, 0x03, 0x00, 0x01, 'a');
	EXPECT_FAIL(0, PE, 0xC0, 0x00);
	EXPECT_FAIL(0, PE, 0xF0, 0x00);
}

#define C4(flags, ...) 0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 4, flags, 0, 60, __VA_ARGS__

static void fix_len(uint8_t *b, size_t n)
{
	b[1] = (uint8_t)(n - 2); /* bodies here are < 128 bytes */
}

#define EXPECT_CONNECT(why, ...)                                                                   \
	do {                                                                                       \
		uint8_t b_[] = {__VA_ARGS__};                                                      \
		fix_len(b_, sizeof(b_));                                                           \
		expect_fail(b_, sizeof(b_), 0, why);                                               \
	} while (0)

static void test_mqtt_3_1_2_3_connect_reserved_flag(void **state)
{
	EXPECT_CONNECT(MAL, C4(0x01, 0, 1, 'c'));
	EXPECT_CONNECT(MAL, C4(0x03, 0, 1, 'c'));
}

static void test_mqtt_3_1_2_11_will_qos_without_will(void **state)
{
	EXPECT_CONNECT(MAL, C4(0x08, 0, 1, 'c')); /* Will QoS 1, Will Flag 0 */
	EXPECT_CONNECT(MAL, C4(0x10, 0, 1, 'c')); /* Will QoS 2, Will Flag 0 */
}

static void test_mqtt_3_1_2_13_will_retain_without_will(void **state)
{
	EXPECT_CONNECT(MAL, C4(0x20, 0, 1, 'c'));
}

static void test_mqtt_3_1_2_12_will_qos3(void **state)
{
	EXPECT_CONNECT(MAL, C4(0x1C, 0, 1, 'c', 0, 1, 't', 0, 0));
}

static void test_mqtt_3_1_2_22_password_without_username(void **state)
{
	EXPECT_CONNECT(MAL, C4(0x40, 0, 1, 'c', 0, 1, 'p'));
	uint8_t b31[] = {0x10, 0,    0, 6,  'M', 'Q', 'I', 's', 'd', 'p',
			 3,    0x40, 0, 60, 0,	 1,   'c', 0,	1,   'p'};
	fix_len(b31, sizeof(b31));
	expect_fail(b31, sizeof(b31), 0, MAL);
}

/* [MQTT-3.1.2-1], [MQTT-3.1.2-2] unknown protocol name or level: 0x84, version reported. */
static void test_mqtt_3_1_2_2_unsupported_version(void **state)
{
	uint8_t lvl6[] = {0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 1, 'c'};
	uint8_t badname[] = {0x10, 0, 0, 4, 'H', 'T', 'T', 'P', 4, 0x02, 0, 60, 0, 1, 'c'};
	uint8_t mix[] = {0x10, 0, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 60, 0, 1, 'c'};
	struct dec d;

	fix_len(lvl6, sizeof(lvl6));
	dec_run(&d, lvl6, sizeof(lvl6), 0, 0);
	assert_int_equal(d.n, VS_EPROTO);
	assert_int_equal(d.why, VS_RC_UNSUPPORTED_VERSION);
	assert_int_equal(d.pkt.type, VS_CONNECT);
	assert_int_equal(d.pkt.connect.version, 6);
	dec_done(&d);
	fix_len(badname, sizeof(badname));
	expect_fail(badname, sizeof(badname), 0, VS_RC_UNSUPPORTED_VERSION);
	fix_len(mix, sizeof(mix));
	expect_fail(mix, sizeof(mix), 0, VS_RC_UNSUPPORTED_VERSION);
}

static void test_connect_trailing_and_truncated(void **state)
{
	EXPECT_CONNECT(MAL, C4(0x02, 0, 1, 'c', 0xff)); /* a byte after the payload */
	EXPECT_CONNECT(MAL, C4(0x02, 0, 5, 'c'));	/* client id longer than the packet */
	EXPECT_CONNECT(MAL, C4(0x82, 0, 1, 'c'));	/* username flag, no username */
	EXPECT_CONNECT(VS_RC_TOPIC_NAME_INVALID, C4(0x06, 0, 1, 'c', 0, 1, '#', 0, 0));
}

/* [MQTT-1.5.4-2] U+0000, [MQTT-1.5.4-1] surrogates and overlong forms, in a PUBLISH topic. */
static void test_mqtt_1_5_4_utf8(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x30, 0x04, 0x00, 0x02, 'a', 0x00);	      /* U+0000 */
	EXPECT_FAIL(V4, MAL, 0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80);	      /* U+D800 */
	EXPECT_FAIL(V4, MAL, 0x30, 0x05, 0x00, 0x03, 0xED, 0xBF, 0xBF);	      /* U+DFFF */
	EXPECT_FAIL(V4, MAL, 0x30, 0x04, 0x00, 0x02, 0xC0, 0x80);	      /* overlong NUL */
	EXPECT_FAIL(V4, MAL, 0x30, 0x04, 0x00, 0x02, 0xC1, 0xBF);	      /* overlong */
	EXPECT_FAIL(V4, MAL, 0x30, 0x05, 0x00, 0x03, 0xE0, 0x80, 0x80);	      /* overlong 3 */
	EXPECT_FAIL(V4, MAL, 0x30, 0x06, 0x00, 0x04, 0xF0, 0x80, 0x80, 0x80); /* overlong 4 */
	EXPECT_FAIL(V4, MAL, 0x30, 0x06, 0x00, 0x04, 0xF4, 0x90, 0x80, 0x80); /* > U+10FFFF */
	EXPECT_FAIL(V4, MAL, 0x30, 0x03, 0x00, 0x01, 0xF5);		      /* never valid */
	EXPECT_FAIL(V4, MAL, 0x30, 0x03, 0x00, 0x01, 0x80);	  /* lone continuation */
	EXPECT_FAIL(V4, MAL, 0x30, 0x04, 0x00, 0x02, 0xE2, 0x82); /* truncated */
	EXPECT_FAIL(V4, MAL, 0x30, 0x04, 0x00, 0x02, 0xC3, 'a');  /* bad continuation */
	/* a NUL inside the 8-byte ASCII fast path */
	EXPECT_FAIL(V4, MAL, 0x30, 0x0c, 0x00, 0x0a, 'a', 'b', 'c', 'd', 'e', 0, 'g', 'h', 'i',
		    'j');
	/* client id, username, will topic are checked too */
	EXPECT_CONNECT(MAL, C4(0x02, 0, 2, 0xC0, 0x80));
	EXPECT_CONNECT(MAL, C4(0x82, 0, 1, 'c', 0, 1, 0x00));
}

/* [MQTT-1.5.5-1] a variable byte integer is at most four bytes. */
static void test_mqtt_1_5_5_1_vbi_too_long(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x30, 0xff, 0xff, 0xff, 0xff, 0x01);
	EXPECT_FAIL(V4, MAL, 0x30, 0x80, 0x80, 0x80, 0x80);
	/* as a Subscription Identifier */
	PUB_PROPS(MAL, 0x0B, 0xff, 0xff, 0xff, 0xff, 0x01);
	/* as a property length */
	EXPECT_FAIL(V5, MAL, 0x30, 0x08, 0x00, 0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0x01);
}

static void test_remaining_length_mismatch(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x40, 0x03, 0x00, 0x01, 0x00);	 /* 3.1.1 PUBACK is 2 bytes */
	EXPECT_FAIL(V4, MAL, 0x40, 0x01, 0x00);			 /* too short */
	EXPECT_FAIL(V4, MAL, 0xC0, 0x01, 0x00);			 /* PINGREQ has no body */
	EXPECT_FAIL(V4, MAL, 0xE0, 0x01, 0x00);			 /* 3.1.1 DISCONNECT */
	EXPECT_FAIL(V4, MAL, 0x30, 0x03, 0x00, 0x05, 'a');	 /* topic past the end */
	EXPECT_FAIL(V4, MAL, 0x32, 0x04, 0x00, 0x01, 'a', 0x01); /* half a packet id */
	EXPECT_FAIL(V4, MAL, 0xB0, 0x03, 0x00, 0x01, 0x00);	 /* 3.1.1 UNSUBACK: no payload */
	EXPECT_FAIL(V4, MAL, 0x20, 0x03, 0x00, 0x00, 0x00);	 /* CONNACK is 2 bytes */
}

/* Property duplicated: Protocol Error (each property's section: "more than once"). */
static void test_duplicate_property_protocol_error(void **state)
{
	PUB_PROPS(PE, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2);
	PUB_PROPS(PE, 0x01, 0, 0x01, 1);
	CONNECT_PROPS(PE, 0x21, 0, 5, 0x21, 0, 5);
	CONNACK_PROPS(PE, 0x1F, 0, 1, 'x', 0x1F, 0, 1, 'y');
	/* repeatable: User Property anywhere, Subscription Identifier in PUBLISH */
	PUB_PROPS(VS_RC_SUCCESS, 0x26, 0, 1, 'k', 0, 0, 0x26, 0, 1, 'k', 0, 0);
	PUB_PROPS(VS_RC_SUCCESS, 0x0B, 1, 0x0B, 2);
	/* but not a Subscription Identifier twice in SUBSCRIBE (3.8.2.1.2) */
	static const uint8_t pid[] = {0, 1}, filt[] = {0, 1, 'a', 0};
	static const uint8_t twice[] = {0x0B, 1, 0x0B, 2};
	expect_props(0x82, pid, 2, twice, 4, filt, 4, PE);
}

/* Section 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet. */
static void test_property_invalid_for_packet(void **state)
{
	PUB_PROPS(MAL, 0x21, 0, 5);	  /* Receive Maximum in PUBLISH */
	PUB_PROPS(MAL, 0x18, 0, 0, 0, 5); /* Will Delay outside the will */
	CONNECT_PROPS(MAL, 0x24, 1);	  /* Maximum QoS is CONNACK-only */
	CONNECT_PROPS(MAL, 0x23, 0, 1);	  /* Topic Alias in CONNECT */
	CONNACK_PROPS(MAL, 0x17, 1);	  /* Request Problem Information in CONNACK */
	PUB_PROPS(MAL, 0x00, 0);	  /* identifier 0 does not exist */
	PUB_PROPS(MAL, 0x7F, 0);	  /* nor 0x7F */
	PUB_PROPS(MAL, 0x81, 0x01, 0);	  /* a two-byte identifier */
	static const uint8_t pid[] = {0, 1}, filt[] = {0, 1, 'a', 0};
	static const uint8_t ct[] = {0x03, 0, 1, 'x'};
	expect_props(0x82, pid, 2, ct, 4, filt, 4, MAL); /* Content Type in SUBSCRIBE */
}

static void test_property_values_out_of_range(void **state)
{
	CONNECT_PROPS(PE, 0x21, 0, 0);		  /* 3.1.2.11.3 Receive Maximum 0 */
	CONNECT_PROPS(PE, 0x27, 0, 0, 0, 0);	  /* 3.1.2.11.4 Maximum Packet Size 0 */
	CONNECT_PROPS(PE, 0x17, 2);		  /* 3.1.2.11.7 Request Problem Information 2 */
	CONNECT_PROPS(PE, 0x19, 2);		  /* 3.1.2.11.6 Request Response Information 2 */
	CONNECT_PROPS(PE, 0x16, 0, 1, 'd');	  /* 3.1.2.11.10 Auth Data without Method */
	CONNACK_PROPS(PE, 0x24, 2);		  /* 3.2.2.3.4 Maximum QoS 2 */
	CONNACK_PROPS(PE, 0x25, 2);		  /* 3.2.2.3.5 Retain Available 2 */
	CONNACK_PROPS(PE, 0x21, 0, 0);		  /* 3.2.2.3.3 Receive Maximum 0 */
	CONNACK_PROPS(PE, 0x27, 0, 0, 0, 0);	  /* 3.2.2.3.6 Maximum Packet Size 0 */
	CONNACK_PROPS(PE, 0x28, 3);		  /* 3.2.2.3.11 */
	PUB_PROPS(PE, 0x01, 2);			  /* 3.3.2.3.2 Payload Format Indicator 2 */
	PUB_PROPS(PE, 0x0B, 0);			  /* 3.3.2.3.8 Subscription Identifier 0 */
	PUB_PROPS(PE, 0x08, 0, 3, 'a', '/', '#'); /* [MQTT-3.3.2-14] Response Topic wildcard */
	PUB_PROPS(VS_RC_TOPIC_ALIAS_INVALID, 0x23, 0, 0); /* [MQTT-3.3.2-8] Topic Alias 0 */
}

static void test_property_malformed_values(void **state)
{
	PUB_PROPS(MAL, 0x02, 0, 0);		/* a four-byte integer cut short */
	PUB_PROPS(MAL, 0x03, 0, 5, 'a');	/* string past the block */
	PUB_PROPS(MAL, 0x03, 0, 2, 0xC0, 0x80); /* string not UTF-8 */
	PUB_PROPS(MAL, 0x26, 0, 1, 'k');	/* user property without a value */
	/* property length longer than the packet */
	EXPECT_FAIL(V5, MAL, 0x30, 0x04, 0x00, 0x01, 'a', 0x09);
}

static void test_mqtt_3_3_2_2_publish_topic_wildcards(void **state)
{
	EXPECT_FAIL(V4, VS_RC_TOPIC_NAME_INVALID, 0x30, 0x05, 0x00, 0x03, 'a', '/', '+');
	EXPECT_FAIL(V4, VS_RC_TOPIC_NAME_INVALID, 0x30, 0x03, 0x00, 0x01, '#');
	EXPECT_FAIL(V5, VS_RC_TOPIC_NAME_INVALID, 0x30, 0x06, 0x00, 0x03, 's', '/', '#', 0x00);
}

static void test_publish_empty_topic(void **state)
{
	/* [MQTT-4.7.3-1] before 5.0; in 5.0 allowed only with a Topic Alias (3.3.2.1). */
	EXPECT_FAIL(V4, VS_RC_TOPIC_NAME_INVALID, 0x30, 0x02, 0x00, 0x00);
	EXPECT_FAIL(V5, PE, 0x30, 0x03, 0x00, 0x00, 0x00);
	struct dec d;
	EXPECT_OK(&d, V5, 0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01);
	assert_int_equal(d.pkt.publish.props.topic_alias, 1);
	dec_done(&d);
}

/* [MQTT-2.2.1-3] a packet identifier is non-zero. */
static void test_mqtt_2_2_1_3_packet_id_zero(void **state)
{
	EXPECT_FAIL(V4, PE, 0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00); /* PUBLISH QoS 1 */
	EXPECT_FAIL(V5, PE, 0x34, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 0x00);
	EXPECT_FAIL(V4, PE, 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00); /* SUBSCRIBE */
	EXPECT_FAIL(V4, PE, 0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 'a');	    /* UNSUBSCRIBE */
	EXPECT_FAIL(V4, PE, 0x40, 0x02, 0x00, 0x00);			    /* PUBACK */
	EXPECT_FAIL(V4, PE, 0x90, 0x03, 0x00, 0x00, 0x00);		    /* SUBACK */
}

static void test_mqtt_3_8_3_3_subscribe_without_filters(void **state)
{
	EXPECT_FAIL(V4, PE, 0x82, 0x02, 0x00, 0x01);
	EXPECT_FAIL(V5, PE, 0x82, 0x03, 0x00, 0x01, 0x00);
	EXPECT_FAIL(V31, PE, 0x82, 0x02, 0x00, 0x01);
}

static void test_mqtt_3_10_3_2_unsubscribe_without_filters(void **state)
{
	EXPECT_FAIL(V4, PE, 0xA2, 0x02, 0x00, 0x01);
	EXPECT_FAIL(V5, PE, 0xA2, 0x03, 0x00, 0x01, 0x00);
}

/* 3.1.1 [MQTT-3-8.3-4], 5.0 [MQTT-3.8.3-5]: reserved subscription option bits. */
static void test_mqtt_3_8_3_5_reserved_subscription_options(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04);
	EXPECT_FAIL(V4, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03); /* QoS 3 */
	EXPECT_FAIL(V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40);
	EXPECT_FAIL(V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x80);
}

static void test_subscription_option_values(void **state)
{
	/* 3.8.3.1: QoS 3 and Retain Handling 3 are Protocol Errors in 5.0 */
	EXPECT_FAIL(V5, PE, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03);
	EXPECT_FAIL(V5, PE, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30);
	/* [MQTT-3.8.3-4] No Local on a shared subscription */
	EXPECT_FAIL(V5, PE, 0x82, 0x11, 0x00, 0x01, 0x00, 0x00, 0x0b, '$', 's', 'h', 'a', 'r', 'e',
		    '/', 'g', '/', 'a', '/', 0x04);
	/* options byte missing */
	EXPECT_FAIL(V4, MAL, 0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a');
}

static void test_topic_filter_invalid(void **state)
{
	/* [MQTT-4.7.1-2] '#' last; [MQTT-4.7.1-3] '+' alone; [MQTT-4.8.2-1] share group */
	EXPECT_FAIL(V4, VS_RC_TOPIC_FILTER_INVALID, 0x82, 0x0a, 0, 1, 0, 5, 'a', '/', '#', '/', 'b',
		    0);
	EXPECT_FAIL(V4, VS_RC_TOPIC_FILTER_INVALID, 0x82, 0x07, 0, 1, 0, 2, 'a', '+', 0);
	EXPECT_FAIL(V4, VS_RC_TOPIC_FILTER_INVALID, 0x82, 0x05, 0, 1, 0, 0, 0);
	EXPECT_FAIL(V4, VS_RC_TOPIC_FILTER_INVALID, 0xA2, 0x06, 0, 1, 0, 2, '#', '#');
	EXPECT_FAIL(V5, VS_RC_TOPIC_FILTER_INVALID, 0x82, 0x0f, 0, 1, 0, 0, 0x09, '$', 's', 'h',
		    'a', 'r', 'e', '/', 'g', '/', 0);
}

/* Fixed-header size check before the body has arrived: 0x95 from two bytes of input. */
static void test_packet_too_large_from_fixed_header(void **state)
{
	static const uint8_t hdr[] = {0x30, 0xE4, 0x00}; /* remaining length 100 */
	struct dec d;

	dec_run(&d, hdr, 1, V4, 50);
	assert_int_equal(d.n, 0);
	dec_done(&d);
	dec_run(&d, hdr, 2, V4, 50); /* continuation bit set: header not complete */
	assert_int_equal(d.n, 0);
	dec_done(&d);
	dec_run(&d, hdr, 3, V4, 50);
	assert_int_equal(d.n, VS_EPROTO);
	assert_int_equal(d.why, VS_RC_PACKET_TOO_LARGE);
	dec_done(&d);
	/* exactly at the limit: fine (need more) */
	dec_run(&d, hdr, 3, V4, 103);
	assert_int_equal(d.n, 0);
	dec_done(&d);
	EXPECT_FAIL(V4, MAL, 0x30, 0xff, 0xff, 0xff, 0xff);
}

static void test_connack_invalid(void **state)
{
	EXPECT_FAIL(V4, MAL, 0x20, 0x02, 0x02, 0x00);	   /* [MQTT-3.2.2-1] reserved flag bits */
	EXPECT_FAIL(V4, MAL, 0x20, 0x02, 0x00, 0x06);	   /* 3.1.1 return code 6 */
	EXPECT_FAIL(V4, PE, 0x20, 0x02, 0x01, 0x05);	   /* [MQTT-3.2.2-4] session + refusal */
	EXPECT_FAIL(V5, PE, 0x20, 0x03, 0x00, 0x04, 0x00); /* 0x04 is not a CONNACK code */
	EXPECT_FAIL(V5, PE, 0x20, 0x03, 0x01, 0x80, 0x00); /* [MQTT-3.2.2-6] */
	struct dec d;
	EXPECT_OK(&d, V31, 0x20, 0x02, 0x55, 0x00); /* 3.1: first byte unused */
	dec_done(&d);
}

static void test_reason_code_not_valid_for_packet(void **state)
{
	EXPECT_FAIL(V5, PE, 0x40, 0x03, 0x00, 0x01, 0x92); /* PUBACK: 0x92 is PUBREL/PUBCOMP's */
	EXPECT_FAIL(V5, PE, 0x62, 0x03, 0x00, 0x01, 0x10); /* PUBREL 0x10 */
	EXPECT_FAIL(V5, PE, 0xE0, 0x01, 0x01);		   /* DISCONNECT 0x01 */
	EXPECT_FAIL(V5, PE, 0xF0, 0x01, 0x80);		   /* AUTH 0x80 */
	EXPECT_FAIL(V5, PE, 0x90, 0x04, 0x00, 0x01, 0x00, 0x11); /* SUBACK 0x11 */
	EXPECT_FAIL(V5, PE, 0xB0, 0x04, 0x00, 0x01, 0x00, 0x01); /* UNSUBACK 0x01 */
	EXPECT_FAIL(V4, PE, 0x90, 0x03, 0x00, 0x01, 0x03);	 /* 3.1.1 SUBACK code 3 */
	EXPECT_FAIL(V4, PE, 0x90, 0x02, 0x00, 0x01);		 /* SUBACK without codes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mqtt_2_1_3_1_bad_fixed_header_flags),
	    cmocka_unit_test(test_reserved_packet_types),
	    cmocka_unit_test(test_v31_lenient_flags),
	    cmocka_unit_test(test_mqtt_3_3_1_4_publish_qos3),
	    cmocka_unit_test(test_mqtt_3_3_1_2_dup_with_qos0),
	    cmocka_unit_test(test_mqtt_3_1_0_1_connect_first),
	    cmocka_unit_test(test_mqtt_3_1_2_3_connect_reserved_flag),
	    cmocka_unit_test(test_mqtt_3_1_2_11_will_qos_without_will),
	    cmocka_unit_test(test_mqtt_3_1_2_13_will_retain_without_will),
	    cmocka_unit_test(test_mqtt_3_1_2_12_will_qos3),
	    cmocka_unit_test(test_mqtt_3_1_2_22_password_without_username),
	    cmocka_unit_test(test_mqtt_3_1_2_2_unsupported_version),
	    cmocka_unit_test(test_connect_trailing_and_truncated),
	    cmocka_unit_test(test_mqtt_1_5_4_utf8),
	    cmocka_unit_test(test_mqtt_1_5_5_1_vbi_too_long),
	    cmocka_unit_test(test_remaining_length_mismatch),
	    cmocka_unit_test(test_duplicate_property_protocol_error),
	    cmocka_unit_test(test_property_invalid_for_packet),
	    cmocka_unit_test(test_property_values_out_of_range),
	    cmocka_unit_test(test_property_malformed_values),
	    cmocka_unit_test(test_mqtt_3_3_2_2_publish_topic_wildcards),
	    cmocka_unit_test(test_publish_empty_topic),
	    cmocka_unit_test(test_mqtt_2_2_1_3_packet_id_zero),
	    cmocka_unit_test(test_mqtt_3_8_3_3_subscribe_without_filters),
	    cmocka_unit_test(test_mqtt_3_10_3_2_unsubscribe_without_filters),
	    cmocka_unit_test(test_mqtt_3_8_3_5_reserved_subscription_options),
	    cmocka_unit_test(test_subscription_option_values),
	    cmocka_unit_test(test_topic_filter_invalid),
	    cmocka_unit_test(test_packet_too_large_from_fixed_header),
	    cmocka_unit_test(test_connack_invalid),
	    cmocka_unit_test(test_reason_code_not_valid_for_packet),
	};
	return cmocka_run_group_tests_name("codec_malformed", tests, NULL, NULL);
}
