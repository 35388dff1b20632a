/*
 * Codec building blocks on their own: variable byte integers [MQTT-1.5.5], UTF-8 validation
 * [MQTT-1.5.4], topic name and filter syntax [MQTT-4.7], the property/packet table
 * [MQTT-2.2.2-2], reason code names and the 5.0 -> 3.1.1 CONNACK mapping, and the fixed header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec_util.h"

static void test_vbi(void **state)
{
	static const uint32_t vals[] = {0,     127,	128,	 16383,
					16384, 2097151, 2097152, VS_MAX_REMAINING};
	static const int sizes[] = {1, 1, 2, 2, 3, 3, 4, 4};
	uint8_t b[4];
	uint32_t v;
	size_t i;
	int k, n;

	for (i = 0; i < 8; i++) {
		n = vs_vbi_encode(vals[i], b);
		assert_int_equal(n, sizes[i]);
		assert_int_equal(vs_vbi_size(vals[i]), sizes[i]);
		for (k = 0; k < n; k++) {
			uint8_t *g = guard_copy(b, (size_t)k);
			assert_int_equal(vs_vbi_decode(g, (size_t)k, &v), 0);
			guard_free(g, (size_t)k);
		}
		uint8_t *g = guard_copy(b, (size_t)n);
		assert_int_equal(vs_vbi_decode(g, (size_t)n, &v), n);
		assert_int_equal(v, vals[i]);
		guard_free(g, (size_t)n);
	}
	assert_int_equal(vs_vbi_encode(VS_MAX_REMAINING + 1, b), VS_EPROTO);
}

static void test_utf8_valid(void **state)
{
	static const char *good[] = {"",
				     "a",
				     "hello/world/0123456789abcdef",
				     "\xc2\x80",
				     "\xdf\xbf",
				     "\xe0\xa0\x80",
				     "\xef\xbf\xbf",
				     "\xed\x9f\xbf",
				     "\xee\x80\x80",
				     "\xf0\x90\x80\x80",
				     "\xf4\x8f\xbf\xbf",
				     "abcdefgh\xc3\xa9ijklmnop",
				     "\x01\x7f"};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t n = strlen(good[i]);
		uint8_t *g = guard_copy(good[i], n);
		if (!vs_utf8_valid(g, n))
			fail_msg("valid string %zu rejected", i);
		guard_free(g, n);
	}
}

static void test_topic_validation(void **state)
{
	static const char *names_ok[] = {"a", "/", "a/b", "$SYS/x", " ", "a//b", "\xc3\xa9"};
	static const char *names_bad[] = {"", "a/+", "#", "a/#/b", "+"};
	static const char *filters_ok[] = {"#",		 "+",	       "a/+/b",	 "a/#",
					   "+/+",	 "/+",	       "a//#",	 "$share/g/a/#",
					   "$share/g/#", "$share/g//", "sport/+"};
	static const char *filters_bad[] = {
	    "",		"a#",	     "a/#/b",	  "a+",		"+a",	       "a/b+",	"##",
	    "$share/g", "$share/g/", "$share//a", "$share/+/a", "$share/g#/a", "a/\xff"};
	size_t i;

	for (i = 0; i < sizeof(names_ok) / sizeof(*names_ok); i++)
		assert_true(vs_topic_name_valid((const uint8_t *)names_ok[i], strlen(names_ok[i])));
	for (i = 0; i < sizeof(names_bad) / sizeof(*names_bad); i++)
		assert_false(
		    vs_topic_name_valid((const uint8_t *)names_bad[i], strlen(names_bad[i])));
	for (i = 0; i < sizeof(filters_ok) / sizeof(*filters_ok); i++)
		if (!vs_topic_filter_valid((const uint8_t *)filters_ok[i], strlen(filters_ok[i])))
			fail_msg("filter '%s' rejected", filters_ok[i]);
	for (i = 0; i < sizeof(filters_bad) / sizeof(*filters_bad); i++)
		if (vs_topic_filter_valid((const uint8_t *)filters_bad[i], strlen(filters_bad[i])))
			fail_msg("filter '%s' accepted", filters_bad[i]);
}

static bool deep(const char *s, int max)
{
	return vs_topic_too_deep((const uint8_t *)s, strlen(s), max);
}

/* Levels are counted exactly: n slashes make n + 1 levels, empty ones included; a shared
 * subscription's levels are its filter's; 0 means no limit. */
static void test_topic_too_deep(void **state)
{
	assert_false(deep("a/b/c", 3));
	assert_true(deep("a/b/c/d", 3));
	assert_false(deep("///", 4));
	assert_true(deep("////", 4));
	assert_true(deep("/", 1));
	assert_false(deep("a", 1));
	assert_false(deep("$share/g/a/b/c", 3));
	assert_true(deep("$share/g/a/b/c/d", 3));
	assert_false(deep("a/b/c/d/e/f/g", 0));
	/* 32768 levels against the default of 200, and exactly 200 */
	size_t len = 2 * 32768 - 1;
	uint8_t *t = malloc(len);
	for (size_t i = 0; i < len; i++)
		t[i] = i & 1 ? '/' : 'x';
	assert_true(vs_topic_too_deep(t, len, 200));
	assert_false(vs_topic_too_deep(t, 2 * 200 - 1, 200));
	assert_true(vs_topic_too_deep(t, 2 * 201 - 1, 200));
	free(t);
}

static void test_prop_valid_table(void **state)
{
	assert_true(vs_prop_valid(VS_PROP_USER, VS_AUTH));
	assert_true(vs_prop_valid(VS_PROP_WILL_DELAY, VS_WILL_PROPS));
	assert_false(vs_prop_valid(VS_PROP_WILL_DELAY, VS_CONNECT));
	assert_false(vs_prop_valid(VS_PROP_MAX_QOS, VS_CONNECT)); /* CONNACK only */
	assert_true(vs_prop_valid(VS_PROP_SUB_ID, VS_SUBSCRIBE));
	assert_false(vs_prop_valid(VS_PROP_USER, VS_PINGREQ));
	assert_false(vs_prop_valid(0x00, VS_PUBLISH));
	assert_false(vs_prop_valid(64, VS_PUBLISH));
}

static void test_reason_strings(void **state)
{
	assert_string_equal(vs_reason_str(0x81), "Malformed Packet");
	assert_string_equal(vs_reason_str(0x82), "Protocol Error");
	assert_string_equal(vs_reason_str(0xA2), "Wildcard Subscriptions not supported");
	assert_string_equal(vs_reason_str(0x03), "Unknown");
	assert_int_equal(vs_reason_to_connack3(0x00), 0);
	assert_int_equal(vs_reason_to_connack3(0x84), 1);
	assert_int_equal(vs_reason_to_connack3(0x85), 2);
	assert_int_equal(vs_reason_to_connack3(0x88), 3);
	assert_int_equal(vs_reason_to_connack3(0x86), 4);
	assert_int_equal(vs_reason_to_connack3(0x87), 5);
	assert_int_equal(vs_reason_to_connack3(0x8A), 5);
	assert_true(vs_reason_valid(0x92, VS_PUBREL));
	assert_false(vs_reason_valid(0x92, VS_PUBACK));
	assert_false(vs_reason_valid(0x04, VS_CONNACK));
}

static void test_frame(void **state)
{
	static const uint8_t five[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};
	enum vs_reason why = 0;
	uint32_t rem = 0;

	assert_int_equal(vs_codec_frame(five, 1, &rem, &why), 0);
	assert_int_equal(vs_codec_frame(five, 4, &rem, &why), 0);
	/* [MQTT-1.5.5-1] at most four bytes: a fourth byte with the continuation bit fails at
	 * once, without waiting for a fifth. */
	assert_int_equal(vs_codec_frame(five, 5, &rem, &why), VS_EPROTO);
	assert_int_equal(why, VS_RC_MALFORMED);
	static const uint8_t ok[] = {0x30, 0xff, 0xff, 0xff, 0x7f};
	assert_int_equal(vs_codec_frame(ok, 5, &rem, &why), 5);
	assert_int_equal(rem, VS_MAX_REMAINING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vbi),
	    cmocka_unit_test(test_utf8_valid),
	    cmocka_unit_test(test_topic_validation),
	    cmocka_unit_test(test_topic_too_deep),
	    cmocka_unit_test(test_prop_valid_table),
	    cmocka_unit_test(test_reason_strings),
	    cmocka_unit_test(test_frame),
	};
	return cmocka_run_group_tests_name("codec_valid", tests, NULL, NULL);
}
