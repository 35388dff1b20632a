/* Client-id claims between cluster nodes (src/cluster/claim.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/claim.h"

static void round_trip(void **state)
{
	(void)state;
	char buf[256];
	/* A client id may hold any bytes, newlines and NULs included: it is the rest. */
	const char id[] = "dev\n1\0x";
	int n =
	    vs_claim_encode(buf, sizeof(buf), "node-a", true, 1765000000123, id, sizeof(id) - 1);
	assert_true(n > 0);
	struct vs_claim c;
	assert_int_equal(vs_claim_decode(buf, (size_t)n, &c), 0);
	assert_int_equal(c.node_len, 6);
	assert_memory_equal(c.node, "node-a", 6);
	assert_true(c.clean);
	assert_int_equal(c.wall_ms, 1765000000123);
	assert_int_equal(c.id_len, sizeof(id) - 1);
	assert_memory_equal(c.client_id, id, sizeof(id) - 1);

	n = vs_claim_encode(buf, sizeof(buf), "b", false, 0, "", 0);
	assert_int_equal(vs_claim_decode(buf, (size_t)n, &c), 0);
	assert_false(c.clean);
	assert_int_equal(c.id_len, 0);
	/* too small a buffer */
	assert_int_equal(vs_claim_encode(buf, 8, "node-a", true, 1, "id", 2), -1);
}

static void malformed(void **state)
{
	(void)state;
	struct vs_claim c;
	static const char *bad[] = {
	    "",				     /* nothing */
	    "n",			     /* no line */
	    "\n1\n5\nid",		     /* empty node */
	    "n\n2\n5\nid",		     /* clean not 0/1 */
	    "n\n11\n5\nid",		     /* clean too long */
	    "n\n1\n\nid",		     /* empty time */
	    "n\n1\n5x\nid",		     /* not a number */
	    "n\n1\n-5\nid",		     /* negative */
	    "n\n1\n1234567890123456789\nid", /* too long for int64 */
	    "n\n1\n5",			     /* no id line end */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vs_claim_decode(bad[i], strlen(bad[i]), &c), -1);
}

static void later_wins_then_greater_node(void **state)
{
	(void)state;
	assert_true(vs_claim_wins(1001, "a", 1, 1000, "b"));
	assert_false(vs_claim_wins(999, "z", 1, 1000, "b"));
	/* The same millisecond: both sides agree that the greater id keeps its connection. */
	assert_true(vs_claim_wins(1000, "nb", 2, 1000, "na"));
	assert_false(vs_claim_wins(1000, "na", 2, 1000, "nb"));
	assert_true(vs_claim_wins(1000, "na2", 3, 1000, "na"));
	assert_false(vs_claim_wins(1000, "na", 2, 1000, "na2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(malformed),
	    cmocka_unit_test(later_wins_then_greater_node),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
