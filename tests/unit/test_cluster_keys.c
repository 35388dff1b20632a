/*
 * JetStream names of the cluster (cluster/keys.h): tokens keep [A-Za-z0-9_-] and escape every
 * other byte, '=' included, so distinct ids give distinct keys and consumer names; a will key
 * splits back into its node at the one dot; too long is refused, never cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/error.h"
#include "cluster/keys.h"

static void token_is(const char *in, size_t len, const char *want)
{
	char out[128];
	ssize_t n = vs_cluster_token((const uint8_t *)in, len, out, sizeof(out));
	if (n != (ssize_t)strlen(want) || strcmp(out, want) != 0)
		fail_msg("'%.*s': got '%s', want '%s'", (int)len, in, n >= 0 ? out : "(error)",
			 want);
}

static void tokens_escape_what_nats_reserves(void **state)
{
	(void)state;
	token_is("node-1_A", 8, "node-1_A");
	token_is("a.b", 3, "a=2Eb");
	token_is("a b*>/", 6, "a=20b=2A=3E=2F");
	token_is("x=41", 4, "x=3D41"); /* '=' escaped: not the same as "xA" */
	token_is("xA", 2, "xA");
	token_is("", 0, "=");
	token_is("\xc3\xa4\x00", 3, "=C3=A4=00");
}

static void too_long_is_refused(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(vs_cluster_token((const uint8_t *)"abcdefgh", 8, out, sizeof(out)),
			 VS_ETOOBIG);
	assert_int_equal(vs_cluster_token((const uint8_t *)"abcde.", 6, out, sizeof(out)),
			 VS_ETOOBIG); /* 5 + 3 escaped + NUL > 8 */
	assert_int_equal(vs_cluster_token((const uint8_t *)"abcd.", 5, out, sizeof(out)), 7);
	assert_int_equal(vs_cluster_token((const uint8_t *)"abcdefg", 7, out, sizeof(out)), 7);
	assert_int_equal(vs_cluster_token((const uint8_t *)"", 0, out, 1), VS_ETOOBIG);
	assert_int_equal(vs_cluster_will_key("node", (const uint8_t *)"c", 1, out, 6), VS_ETOOBIG);
	assert_int_equal(vs_cluster_will_key("node", (const uint8_t *)"c", 1, out, 7), 6);
}

static void will_keys_split_at_their_node(void **state)
{
	(void)state;
	char key[128];
	ssize_t n = vs_cluster_will_key("n.1", (const uint8_t *)"dev/7", 5, key, sizeof(key));
	assert_int_equal(n, (ssize_t)strlen("n=2E1.dev=2F7"));
	assert_string_equal(key, "n=2E1.dev=2F7");
	assert_int_equal(vs_cluster_will_key_node(key), 5);
	n = vs_cluster_will_key("n", (const uint8_t *)"", 0, key, sizeof(key));
	assert_string_equal(key, "n.="); /* an empty client id still makes a key */
	assert_int_equal(vs_cluster_will_key_node(key), 1);
	/* Not will keys: no dot, an empty side, two dots. */
	assert_int_equal(vs_cluster_will_key_node("reap"), -1);
	assert_int_equal(vs_cluster_will_key_node(".x"), -1);
	assert_int_equal(vs_cluster_will_key_node("x."), -1);
	assert_int_equal(vs_cluster_will_key_node("reap.a.b"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tokens_escape_what_nats_reserves),
	    cmocka_unit_test(too_long_is_refused),
	    cmocka_unit_test(will_keys_split_at_their_node),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
