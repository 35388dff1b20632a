/*
 * Unit tests of the psk_file reader (auth/psk.h): the format Mosquitto reads, the stricter
 * errors with FILE:LINE, and lookups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/psk.h"

static char err[256];

static struct vs_psk *parse(const char *text)
{
	return vs_psk_parse(text, strlen(text), "psk.txt", err, sizeof(err));
}

static void reads_mosquittos_format(void **state)
{
	struct vs_psk *t = parse("# keys\n\nsensor-1:00a1b2c3\r\n  sensor-2 : abc \nx:0\n");
	assert_non_null(t);
	assert_int_equal(vs_psk_count(t), 3);
	uint8_t k[VS_PSK_KEY_MAX];
	assert_int_equal(vs_psk_find(t, "sensor-1", k, sizeof(k)), 4);
	assert_memory_equal(k, "\x00\xa1\xb2\xc3", 4);
	assert_int_equal(vs_psk_find(t, "sensor-2", k, sizeof(k)), 2); /* odd: 0a bc */
	assert_memory_equal(k, "\x0a\xbc", 2);
	assert_int_equal(vs_psk_find(t, "x", k, sizeof(k)), 1);
	assert_int_equal(vs_psk_find(t, "sensor-3", k, sizeof(k)), 0);
	assert_int_equal(vs_psk_find(t, "sensor-1", k, 3), 0); /* does not fit */
	vs_psk_free(t);
}

static void expect_error(const char *text, const char *want)
{
	assert_null(parse(text));
	if (strcmp(err, want) != 0)
		print_error("want: %s\ngot:  %s\n", want, err);
	assert_string_equal(err, want);
}

static void errors_name_the_line(void **state)
{
	expect_error("a:01\nnocolon\n", "psk.txt:2: expected identity:key, found no ':'");
	expect_error(":01\n", "psk.txt:1: empty identity");
	expect_error("a:01\na:02\n", "psk.txt:2: identity 'a' appears twice");
	expect_error("a:0g\n", "psk.txt:1: identity 'a': the key is not hex digits");
	expect_error("a:\n", "psk.txt:1: identity 'a': expected a key of 1 to 256 bytes in hex "
			     "digits");
	char longid[200];
	memset(longid, 'i', 128);
	strcpy(longid + 128, ":00\n");
	expect_error(longid, "psk.txt:1: identity longer than 127 bytes");
	char longkey[600] = "a:";
	memset(longkey + 2, 'f', 514);
	strcpy(longkey + 516, "\n");
	expect_error(longkey, "psk.txt:1: identity 'a': expected a key of 1 to 256 bytes in hex "
			      "digits");
	static const char nul[] = "a:00\n\0b:01\n";
	assert_null(vs_psk_parse(nul, sizeof(nul) - 1, "psk.txt", err, sizeof(err)));
	assert_string_equal(err, "psk.txt:2: NUL byte in line");
}

static void load_names_the_file(void **state)
{
	assert_null(vs_psk_load("/nonexistent/psk", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/psk: No such file or directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(reads_mosquittos_format),
	    cmocka_unit_test(errors_name_the_line),
	    cmocka_unit_test(load_names_the_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
