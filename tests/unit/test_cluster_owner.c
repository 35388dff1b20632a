/* The owner of a client id's session in the bucket vs_sessions (src/cluster/owner.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/owner.h"

static void round_trip(void **state)
{
	(void)state;
	const uint8_t recs[] = {1, 0, 2, 0, 3}; /* any bytes, NULs included */
	size_t n;
	uint8_t *v = vs_owner_encode("node-a", 12345 + 1, recs, sizeof(recs), &n);
	assert_non_null(v);
	struct vs_owner o;
	assert_int_equal(vs_owner_decode(v, n, &o), 0);
	assert_int_equal(o.node_len, 6);
	assert_memory_equal(o.node, "node-a", 6);
	assert_int_equal(o.floor, 12345 + 1);
	assert_int_equal(o.recs_len, sizeof(recs));
	assert_memory_equal(o.recs, recs, sizeof(recs));
	free(v);

	/* Connected: no floor; a floor of 0 is one (the stream's start), not none. */
	v = vs_owner_encode("b", 0, NULL, 0, &n);
	assert_int_equal(vs_owner_decode(v, n, &o), 0);
	assert_int_equal(o.floor, 0);
	assert_int_equal(o.recs_len, 0);
	free(v);
	v = vs_owner_encode("b", 1, NULL, 0, &n);
	assert_int_equal(vs_owner_decode(v, n, &o), 0);
	assert_int_equal(o.floor, 1);
	free(v);

	/* A node id alone (no NUL) is a value too. */
	assert_int_equal(vs_owner_decode((const uint8_t *)"n1", 2, &o), 0);
	assert_int_equal(o.node_len, 2);
	assert_int_equal(o.floor, 0);
	assert_null(o.recs);
}

static void malformed(void **state)
{
	(void)state;
	struct vs_owner o;
	assert_int_equal(vs_owner_decode((const uint8_t *)"", 0, &o), -1); /* no node */
	assert_int_equal(vs_owner_decode((const uint8_t *)"\0"
							  "5\0",
					 3, &o),
			 -1); /* empty node */
	assert_int_equal(vs_owner_decode((const uint8_t *)"a\0"
							  "5",
					 3, &o),
			 -1); /* no 2nd NUL */
	assert_int_equal(vs_owner_decode((const uint8_t *)"a\0"
							  "5x\0",
					 5, &o),
			 -1); /* not decimal */
	assert_int_equal(vs_owner_decode((const uint8_t *)"a\0-1\0", 5, &o), -1);
	/* 2^64 - 2 is the largest floor (it is stored + 1); 2^64 - 1 and more are refused. */
	const char max[] = "a\0"
			   "18446744073709551614";
	assert_int_equal(vs_owner_decode((const uint8_t *)max, sizeof(max), &o), 0);
	assert_true(o.floor == UINT64_MAX);
	const char over[] = "a\0"
			    "18446744073709551615";
	assert_int_equal(vs_owner_decode((const uint8_t *)over, sizeof(over), &o), -1);
	const char way_over[] = "a\0"
				"99999999999999999999999";
	assert_int_equal(vs_owner_decode((const uint8_t *)way_over, sizeof(way_over), &o), -1);
	char longnode[300];
	memset(longnode, 'n', sizeof(longnode));
	assert_int_equal(vs_owner_decode((const uint8_t *)longnode, 256, &o), -1);
	assert_int_equal(vs_owner_decode((const uint8_t *)longnode, 255, &o), 0);
}

static void keys(void **state)
{
	(void)state;
	char k[VS_OWNER_KEY_MAX], k2[VS_OWNER_KEY_MAX];
	vs_owner_key((const uint8_t *)"dev-1_A", 7, k);
	assert_string_equal(k, "dev-1_A"); /* a token as it is */
	vs_owner_key((const uint8_t *)"a.b c", 5, k);
	assert_string_equal(k, "a=2Eb=20c");
	/* Long ids, or ids whose token would be too long, are hashed: distinct and stable. */
	char id[70000];
	memset(id, 'x', sizeof(id));
	vs_owner_key((const uint8_t *)id, sizeof(id), k);
	assert_int_equal(strncmp(k, "=h", 2), 0);
	assert_int_equal(strlen(k), 34);
	vs_owner_key((const uint8_t *)id, sizeof(id), k2);
	assert_string_equal(k, k2);
	id[5] = 'y';
	vs_owner_key((const uint8_t *)id, sizeof(id), k2);
	assert_string_not_equal(k, k2);
	memset(id, '.', 100); /* 100 bytes, 300 as a token */
	vs_owner_key((const uint8_t *)id, 100, k);
	assert_int_equal(strncmp(k, "=h", 2), 0);
	vs_owner_key((const uint8_t *)id, 66, k); /* 198 as a token */
	assert_int_equal(strncmp(k, "=2E", 3), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(malformed),
	    cmocka_unit_test(keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
