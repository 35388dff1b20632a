/*
 * Unit tests of the Prometheus text writer (base/prom.h): families and samples as the format
 * 0.0.4 spells them, label values escaped, numbers that round-trip, NaN and infinities, the
 * histogram's cumulative buckets with _sum and _count, and observations from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "base/prom.h"

/* What was written, NUL-terminated. */
static const char *text(struct vs_bytes *b)
{
	vs_bytes_append(b, "", 1);
	b->len--;
	return (const char *)vs_bytes_head(b);
}

static void family_and_samples(void **state)
{
	struct vs_bytes b = {0};
	struct vs_prom p = {.out = &b};
	vs_prom_family(&p, "viesti_x_total", "counter", "Things counted.");
	vs_prom_u64(&p, "viesti_x_total", NULL, NULL, 18446744073709551615ull);
	vs_prom_u64(&p, "viesti_x_total", "listener", "127.0.0.1:1883", 0);
	vs_prom_double(&p, "viesti_y", "thread", "0", 0.25);
	assert_int_equal(p.err, 0);
	assert_string_equal(text(&b), "# HELP viesti_x_total Things counted.\n"
				      "# TYPE viesti_x_total counter\n"
				      "viesti_x_total 18446744073709551615\n"
				      "viesti_x_total{listener=\"127.0.0.1:1883\"} 0\n"
				      "viesti_y{thread=\"0\"} 0.25\n");
	vs_bytes_fini(&b);
}

static void escaping(void **state)
{
	struct vs_bytes b = {0};
	struct vs_prom p = {.out = &b};
	vs_prom_family(&p, "m", "gauge", "a \\ back\nslash \"quoted\"");
	vs_prom_u64(&p, "m", "l", "x\"y\\z\nw", 1);
	vs_prom_u64(&p, "m", "l", "", 2);
	/* In HELP, only backslash and line feed are escaped; in a label value also the quote. */
	assert_string_equal(text(&b), "# HELP m a \\\\ back\\nslash \"quoted\"\n"
				      "# TYPE m gauge\n"
				      "m{l=\"x\\\"y\\\\z\\nw\"} 1\n"
				      "m{l=\"\"} 2\n");
	vs_bytes_fini(&b);
}

static void doubles(void **state)
{
	struct vs_bytes b = {0};
	struct vs_prom p = {.out = &b};
	vs_prom_double(&p, "a", NULL, NULL, 0.1);
	vs_prom_double(&p, "b", NULL, NULL, 1e300 * 1e300);
	vs_prom_double(&p, "c", NULL, NULL, -1e300 * 1e300);
	vs_prom_double(&p, "d", NULL, NULL, 0.0 / 0.0);
	vs_prom_double(&p, "e", NULL, NULL, 1700000000.0);
	vs_prom_double(&p, "f", NULL, NULL, -2);
	assert_string_equal(text(&b), "a 0.10000000000000001\nb +Inf\nc -Inf\nd NaN\n"
				      "e 1700000000\nf -2\n");
	vs_bytes_fini(&b);
}

static const uint64_t bounds[] = {1000, 10000, 100000};

static void histogram(void **state)
{
	struct vs_prom_hist h;
	vs_prom_hist_init(&h, bounds, 3);
	vs_prom_hist_observe(&h, 0);
	vs_prom_hist_observe(&h, 1000); /* on a bound: in it (le is inclusive) */
	vs_prom_hist_observe(&h, 1001);
	vs_prom_hist_observe(&h, 5000000); /* above all: +Inf only */
	struct vs_bytes b = {0};
	struct vs_prom p = {.out = &b};
	vs_prom_hist_write(&p, &h, "t_seconds", "Time.", 1e-6);
	assert_int_equal(p.err, 0);
	assert_string_equal(text(&b), "# HELP t_seconds Time.\n"
				      "# TYPE t_seconds histogram\n"
				      "t_seconds_bucket{le=\"0.001\"} 2\n"
				      "t_seconds_bucket{le=\"0.01\"} 3\n"
				      "t_seconds_bucket{le=\"0.1\"} 3\n"
				      "t_seconds_bucket{le=\"+Inf\"} 4\n"
				      "t_seconds_sum 5.0020009999999999\n"
				      "t_seconds_count 4\n");
	vs_bytes_fini(&b);
}

static void histogram_empty_and_clamped(void **state)
{
	static uint64_t many[VS_PROM_MAX_BUCKETS + 4];
	for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
		many[i] = i + 1;
	struct vs_prom_hist h;
	vs_prom_hist_init(&h, many, sizeof(many) / sizeof(many[0]));
	assert_int_equal(h.n, VS_PROM_MAX_BUCKETS);
	vs_prom_hist_observe(&h, 1000); /* past every bound kept */
	struct vs_bytes b = {0};
	struct vs_prom p = {.out = &b};
	vs_prom_hist_write(&p, &h, "h", "H.", 1);
	assert_non_null(strstr(text(&b), "h_bucket{le=\"16\"} 0\nh_bucket{le=\"+Inf\"} 1\n"));
	vs_bytes_fini(&b);
}

static void *observer(void *arg)
{
	for (int i = 0; i < 100000; i++)
		vs_prom_hist_observe(arg, (uint64_t)(i % 3) * 5000);
	return NULL;
}

static void histogram_threads(void **state)
{
	struct vs_prom_hist h;
	vs_prom_hist_init(&h, bounds, 3);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, observer, &h);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	uint64_t total = 0;
	for (size_t i = 0; i <= h.n; i++)
		total += h.counts[i];
	assert_int_equal(total, 400000);
	assert_int_equal(h.counts[0], 4 * 33334); /* the zeros */
	assert_int_equal(h.sum, 4ull * (33333 * 5000 + 33333 * 10000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(family_and_samples),
	    cmocka_unit_test(escaping),
	    cmocka_unit_test(doubles),
	    cmocka_unit_test(histogram),
	    cmocka_unit_test(histogram_empty_and_clamped),
	    cmocka_unit_test(histogram_threads),
	};
	return cmocka_run_group_tests_name("base_prom", tests, NULL, NULL);
}
