/*
 * Lost deliveries of a JetStream consumer (cluster/gaps.h): first deliveries in stream order
 * note nothing, but all before the first count as lost (an earlier life's); a skip notes the
 * skipped sequences, each taken out once when it comes again (from either end of its range or from
 * the middle); copies of what did arrive are not lost ones; the oldest ranges go when there are too
 * many.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/gaps.h"

static void in_order_nothing_is_lost(void **state)
{
	struct vs_cluster_gaps g = {0};
	for (uint64_t s = 7; s < 100; s++)
		assert_int_equal(vs_cluster_gaps_first(&g, s), 0);
	for (uint64_t s = 7; s < 101; s++)
		assert_false(vs_cluster_gaps_take(&g, s));
	/* Before the first: delivered to an earlier life, maybe; each taken once. */
	for (uint64_t s = 6; s >= 1; s--) {
		assert_true(vs_cluster_gaps_take(&g, s));
		assert_false(vs_cluster_gaps_take(&g, s));
	}
	assert_int_equal(g.n, 0);
	/* Starting at 1, nothing is before. */
	struct vs_cluster_gaps h = {0};
	assert_int_equal(vs_cluster_gaps_first(&h, 1), 0);
	assert_int_equal(h.n, 0);
	vs_cluster_gaps_fini(&g);
	vs_cluster_gaps_fini(&h);
}

static void a_skip_notes_what_was_skipped(void **state)
{
	struct vs_cluster_gaps g = {0};
	vs_cluster_gaps_first(&g, 1);
	vs_cluster_gaps_first(&g, 2);
	assert_int_equal(vs_cluster_gaps_first(&g, 5), 2);
	assert_false(vs_cluster_gaps_take(&g, 2)); /* it arrived: a copy */
	assert_false(vs_cluster_gaps_take(&g, 5));
	assert_true(vs_cluster_gaps_take(&g, 3));
	assert_false(vs_cluster_gaps_take(&g, 3)); /* once */
	assert_true(vs_cluster_gaps_take(&g, 4));
	assert_int_equal(g.n, 0);
	/* Out of order (a first delivery behind the latest) teaches nothing. */
	assert_int_equal(vs_cluster_gaps_first(&g, 4), 0);
	assert_int_equal(vs_cluster_gaps_first(&g, 6), 0);
	vs_cluster_gaps_fini(&g);
}

static void taken_from_the_middle_and_the_ends(void **state)
{
	struct vs_cluster_gaps g = {0};
	vs_cluster_gaps_first(&g, 1);
	assert_int_equal(vs_cluster_gaps_first(&g, 10), 8); /* 2..9 */
	vs_cluster_gaps_first(&g, 11);
	assert_int_equal(vs_cluster_gaps_first(&g, 20), 8); /* 12..19 */
	assert_true(vs_cluster_gaps_take(&g, 5));	    /* 2..4, 6..9 */
	assert_int_equal(g.n, 3);
	assert_true(vs_cluster_gaps_take(&g, 9));
	assert_true(vs_cluster_gaps_take(&g, 2));
	assert_false(vs_cluster_gaps_take(&g, 10));
	assert_false(vs_cluster_gaps_take(&g, 11));
	uint64_t left[] = {3, 4, 6, 7, 8, 12, 13, 14, 15, 16, 17, 18, 19};
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
		assert_true(vs_cluster_gaps_take(&g, left[i]));
	assert_int_equal(g.n, 0);
	for (uint64_t s = 1; s <= 20; s++)
		assert_false(vs_cluster_gaps_take(&g, s));
	vs_cluster_gaps_fini(&g);
}

static void the_oldest_ranges_go_first(void **state)
{
	struct vs_cluster_gaps g = {0};
	uint64_t s = 1;
	vs_cluster_gaps_first(&g, s);
	for (int i = 0; i < VS_CLUSTER_GAPS_MAX + 10; i++) {
		s += 2; /* skips one each time */
		assert_int_equal(vs_cluster_gaps_first(&g, s), 1);
	}
	assert_int_equal(g.n, VS_CLUSTER_GAPS_MAX);
	for (int i = 0; i < 10; i++)
		assert_false(vs_cluster_gaps_take(&g, 2 + 2 * (uint64_t)i)); /* forgotten */
	assert_true(vs_cluster_gaps_take(&g, 2 + 2 * 10));
	assert_true(vs_cluster_gaps_take(&g, s - 1));
	/* A split at the limit keeps the limit too. */
	struct vs_cluster_gaps h = {0};
	vs_cluster_gaps_first(&h, 1);
	vs_cluster_gaps_first(&h, 100); /* 2..99 */
	uint64_t t = 100;
	for (int i = 1; i < VS_CLUSTER_GAPS_MAX; i++) {
		t += 2;
		vs_cluster_gaps_first(&h, t);
	}
	assert_int_equal(h.n, VS_CLUSTER_GAPS_MAX);
	assert_true(vs_cluster_gaps_take(&h, 50));
	assert_int_equal(h.n, VS_CLUSTER_GAPS_MAX);
	assert_false(vs_cluster_gaps_take(&h, 10)); /* 2..49 was the oldest */
	assert_true(vs_cluster_gaps_take(&h, 60));
	vs_cluster_gaps_fini(&g);
	vs_cluster_gaps_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(in_order_nothing_is_lost),
	    cmocka_unit_test(a_skip_notes_what_was_skipped),
	    cmocka_unit_test(taken_from_the_middle_and_the_ends),
	    cmocka_unit_test(the_oldest_ranges_go_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
