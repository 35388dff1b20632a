/*
 * Unit tests of the counted min-set (base/minset.h): the smallest value survives deletes of
 * others in any order, a value added twice needs two deletes, an empty set says UINT64_MAX,
 * and a random run agrees with a plain sorted model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/minset.h"

static void empty_says_max(void **state)
{
	(void)state;
	struct vs_minset s;
	vs_minset_init(&s);
	assert_true(vs_minset_min(&s) == UINT64_MAX);
	assert_int_equal(vs_minset_count(&s), 0);
	vs_minset_fini(&s);
}

static void deletes_in_any_order(void **state)
{
	(void)state;
	struct vs_minset s;
	vs_minset_init(&s);
	for (uint64_t v = 10; v <= 14; v++)
		assert_int_equal(vs_minset_add(&s, v), 0);
	vs_minset_del(&s, 12); /* not the smallest: kept aside */
	assert_true(vs_minset_min(&s) == 10);
	vs_minset_del(&s, 10);
	assert_true(vs_minset_min(&s) == 11);
	vs_minset_del(&s, 11);
	assert_true(vs_minset_min(&s) == 13); /* 12 went earlier */
	assert_int_equal(vs_minset_count(&s), 2);
	vs_minset_del(&s, 14);
	vs_minset_del(&s, 13);
	assert_true(vs_minset_min(&s) == UINT64_MAX);
	vs_minset_fini(&s);
}

static void a_value_added_twice_needs_two_deletes(void **state)
{
	(void)state;
	struct vs_minset s;
	vs_minset_init(&s);
	vs_minset_add(&s, 7);
	vs_minset_add(&s, 9);
	vs_minset_add(&s, 7);
	vs_minset_del(&s, 7);
	assert_true(vs_minset_min(&s) == 7);
	vs_minset_del(&s, 7);
	assert_true(vs_minset_min(&s) == 9);
	vs_minset_fini(&s);
}

/* One old value pins the smallest while many others come and go: the deleted ones do not pile
 * up (compaction), and the set stays right. */
static void a_pinned_smallest_does_not_pile_up(void **state)
{
	(void)state;
	struct vs_minset s;
	vs_minset_init(&s);
	vs_minset_add(&s, 1);
	for (uint64_t v = 2; v < 200000; v++) {
		vs_minset_add(&s, v);
		if (v > 10)
			vs_minset_del(&s, v - 8);
	}
	assert_true(vs_minset_min(&s) == 1);
	assert_int_equal(vs_minset_count(&s), 2 + 8); /* 1, 2 and the last 8 */
	assert_true(s.n_in < 4096 && s.n_out < 4096);
	vs_minset_del(&s, 1);
	assert_true(vs_minset_min(&s) == 2);
	vs_minset_fini(&s);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void agrees_with_a_sorted_model(void **state)
{
	(void)state;
	struct vs_minset s;
	vs_minset_init(&s);
	enum { N = 4000 };
	uint64_t *model = malloc(N * sizeof(*model));
	size_t n = 0;
	srand(42);
	for (int step = 0; step < 20000; step++) {
		if (n < N && (n == 0 || rand() % 3)) {
			uint64_t v = (uint64_t)(rand() % 500);
			model[n++] = v;
			assert_int_equal(vs_minset_add(&s, v), 0);
		} else {
			size_t i = (size_t)rand() % n;
			vs_minset_del(&s, model[i]);
			model[i] = model[--n];
		}
		uint64_t want = UINT64_MAX;
		if (n) {
			qsort(model, n, sizeof(*model), cmp_u64);
			want = model[0];
		}
		assert_true(vs_minset_min(&s) == want);
		assert_int_equal(vs_minset_count(&s), n);
	}
	free(model);
	vs_minset_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(empty_says_max),
	    cmocka_unit_test(deletes_in_any_order),
	    cmocka_unit_test(a_value_added_twice_needs_two_deletes),
	    cmocka_unit_test(agrees_with_a_sorted_model),
	    cmocka_unit_test(a_pinned_smallest_does_not_pile_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
