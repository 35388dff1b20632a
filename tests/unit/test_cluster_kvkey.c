/*
 * Retained-message keys and shared-group queue names (cluster/kvkey.h): every topic becomes a
 * valid JetStream key ([-/_=.A-Za-z0-9], not starting or ending with '.', never "_kv...") that
 * decodes back to it; distinct topics get distinct keys; long topics get a hashed key; keys
 * that vs_kvkey_encode() never writes are refused by the decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "base/error.h"
#include "cluster/kvkey.h"

static bool valid_key(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || k[0] == '.' || k[n - 1] == '.' || strncmp(k, "_kv", 3) == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("-/_=.", k[i]) &&
		    !((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= '0' && k[i] <= '9')))
			return false;
	return true;
}

static void key_is(const char *topic, const char *want)
{
	char out[VS_KVKEY_MAX + 1];
	ssize_t n = vs_kvkey_encode((const uint8_t *)topic, strlen(topic), out, sizeof(out));
	if (n != (ssize_t)strlen(want) || strcmp(out, want) != 0)
		fail_msg("'%s': got '%s', want '%s'", topic, n >= 0 ? out : "(error)", want);
	assert_true(valid_key(out));
	uint8_t back[VS_KVKEY_MAX];
	ssize_t m = vs_kvkey_decode(out, (size_t)n, back, sizeof(back));
	if (m != (ssize_t)strlen(topic) || memcmp(back, topic, (size_t)m) != 0)
		fail_msg("'%s' does not decode back from '%s'", topic, out);
}

static void topics_become_keys(void **state)
{
	(void)state;
	key_is("a/b/c", "a.b.c");
	key_is("home/living-room/t1", "home.living-room.t1");
	key_is("a.b", "a=2Eb");	    /* a dot is not a level */
	key_is("_kv/x", "=5Fkv.x"); /* never a reserved key */
	key_is("a_b", "a=5Fb");
	key_is("with space/=", "with=20space.=3D");
	key_is("/", "=.="); /* two empty levels */
	key_is("a//b/", "a.=.b.=");
	key_is("$SYS/x", "=24SYS.x");
	key_is("\xc3\xa4", "=C3=A4");
	key_is("+/#", "=2B.=23");
}

static void long_topics_get_hashed_keys(void **state)
{
	(void)state;
	char topic[3000], k1[VS_KVKEY_MAX + 1], k2[VS_KVKEY_MAX + 1];
	memset(topic, 'x', sizeof(topic));
	ssize_t n = vs_kvkey_encode((const uint8_t *)topic, sizeof(topic), k1, sizeof(k1));
	assert_int_equal(n, VS_KVKEY_HASHED);
	assert_true(valid_key(k1));
	assert_memory_equal(k1, "=H", 2);
	topic[1500] = 'y';
	assert_int_equal(vs_kvkey_encode((const uint8_t *)topic, sizeof(topic), k2, sizeof(k2)),
			 VS_KVKEY_HASHED);
	assert_string_not_equal(k1, k2);
	uint8_t back[64];
	assert_int_equal(vs_kvkey_decode(k1, (size_t)n, back, sizeof(back)), VS_EPROTO);
	/* Up to the limit, a key is written as such: 1024 plain bytes. */
	assert_int_equal(vs_kvkey_encode((const uint8_t *)topic, VS_KVKEY_MAX, k1, sizeof(k1)),
			 VS_KVKEY_MAX);
	/* 342 escaped bytes are 1026 key bytes: hashed. */
	memset(topic, '.', 342);
	assert_int_equal(vs_kvkey_encode((const uint8_t *)topic, 342, k1, sizeof(k1)),
			 VS_KVKEY_HASHED);
	/* The caller's buffer must hold the longest key. */
	assert_int_equal(vs_kvkey_encode((const uint8_t *)"a", 1, k1, 10), VS_ETOOBIG);
}

static void bad_keys_are_refused(void **state)
{
	(void)state;
	static const char *bad[] = {"", ".", "a.", ".a", "a..b", "a=", "=4", "=4G", "a b", "a%20",
				    "a=2", "=H0123", "a_b",
				    /* escapes the encoder never writes: a second key for a topic */
				    "=6EA4", "a=2Fb", "=2D"};
	uint8_t out[64];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vs_kvkey_decode(bad[i], strlen(bad[i]), out, sizeof(out)) != VS_EPROTO)
			fail_msg("'%s' decoded", bad[i]);
	assert_int_equal(vs_kvkey_decode("abc", 3, out, 2), VS_ETOOBIG);
}

static void share_queues_differ_by_group_and_filter(void **state)
{
	(void)state;
	char a[VS_SHARE_QUEUE], b[VS_SHARE_QUEUE], c[VS_SHARE_QUEUE], d[VS_SHARE_QUEUE];
	vs_share_queue("g", 1, "a/+", 3, a);
	vs_share_queue("g", 1, "a/#", 3, b);
	vs_share_queue("h", 1, "a/+", 3, c);
	vs_share_queue("g", 1, "a/+", 3, d);
	assert_int_equal(strlen(a), VS_SHARE_QUEUE - 1);
	assert_memory_equal(a, "vsq", 3);
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_equal(a, d);
	/* The group and filter are kept apart: "ga" + "b" is not "g" + "ab". */
	vs_share_queue("ga", 2, "b", 1, b);
	vs_share_queue("g", 1, "ab", 2, c);
	assert_string_not_equal(b, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(topics_become_keys),
	    cmocka_unit_test(long_topics_get_hashed_keys),
	    cmocka_unit_test(bad_keys_are_refused),
	    cmocka_unit_test(share_queues_differ_by_group_and_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
