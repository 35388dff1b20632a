/*
 * Unit tests of the JSON writer and reader (base/json.h): strings escaped (control characters,
 * quotes, invalid UTF-8 replaced), commas and nesting, numbers; the reader's tokens and their
 * subtrees, members found by unescaped key, escapes and surrogate pairs decoded, whole numbers
 * with their bounds, and every malformed text refused (each input placed before a guard page, so
 * any read past its end faults).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/json.h"
#include "guard.h"

static const char *text(struct vs_bytes *b)
{
	vs_bytes_append(b, "", 1);
	b->len--;
	return (const char *)vs_bytes_head(b);
}

static void writes_objects_arrays_and_scalars(void **state)
{
	struct vs_bytes b = {0};
	struct vs_json j;
	vs_json_init(&j, &b);
	vs_json_obj(&j, NULL);
	vs_json_cstr(&j, "s", "a\"b\\c\n\t\x01");
	vs_json_cstr(&j, "n", NULL);
	vs_json_u64(&j, "u", 18446744073709551615ull);
	vs_json_i64(&j, "i", -5);
	vs_json_double(&j, "d", 0.25);
	vs_json_double(&j, "nan", 0.0 / 0.0);
	vs_json_bool(&j, "t", true);
	vs_json_arr(&j, "a");
	vs_json_u64(&j, NULL, 1);
	vs_json_obj(&j, NULL);
	vs_json_obj_end(&j);
	vs_json_arr(&j, NULL);
	vs_json_arr_end(&j);
	vs_json_arr_end(&j);
	vs_json_obj_end(&j);
	assert_int_equal(j.err, 0);
	assert_string_equal(text(&b), "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001\",\"n\":null,"
				      "\"u\":18446744073709551615,\"i\":-5,\"d\":0.25,\"nan\":null,"
				      "\"t\":true,\"a\":[1,{},[]]}");
	vs_bytes_fini(&b);
}

static void invalid_utf8_is_replaced(void **state)
{
	struct vs_bytes b = {0};
	struct vs_json j;
	vs_json_init(&j, &b);
	/* valid 2-, 3- and 4-byte sequences stay; a lone continuation byte, an overlong '/', a
	 * surrogate (ED A0 80) and a truncated sequence become U+FFFD; DEL is escaped */
	static const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|"
				 "\x7f|\xe2\x82";
	vs_json_str(&j, NULL, in, sizeof(in) - 1);
	assert_string_equal(text(&b),
			    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\ufffd|\\ufffd\\ufffd|"
			    "\\ufffd\\ufffd\\ufffd|\\u007f|\\ufffd\\ufffd\"");
	vs_bytes_fini(&b);
}

static void nesting_too_deep_is_an_error(void **state)
{
	struct vs_bytes b = {0};
	struct vs_json j;
	vs_json_init(&j, &b);
	for (int i = 0; i < VS_JSON_MAX_DEPTH + 1; i++)
		vs_json_arr(&j, NULL);
	assert_int_equal(j.err, VS_ETOOBIG);
	vs_bytes_fini(&b);
}

/* Parses s placed before a guard page. */
static int parse(const char *s, struct vs_json_tok *t, size_t cap)
{
	size_t len = strlen(s);
	uint8_t *g = guard_copy(s, len);
	int n = vs_json_parse((const char *)g, len, t, cap);
	guard_free(g, len);
	return n;
}

static void parses_tokens_and_subtrees(void **state)
{
	const char *s = " {\"a\": [1, {\"b\": null}], \"c\\u0041\": \"x\\\"y\", \"d\": true} ";
	struct vs_json_tok t[16];
	int n = vs_json_parse(s, strlen(s), t, 16);
	assert_int_equal(n, 11);
	assert_int_equal(t[0].type, VS_JSON_OBJECT);
	assert_int_equal(t[0].size, 3);
	assert_int_equal(t[0].next, 11);
	assert_int_equal(t[2].type, VS_JSON_ARRAY);
	assert_int_equal(t[2].size, 2);
	assert_int_equal(t[2].next, 7);
	int a = vs_json_get(s, t, 0, "a");
	assert_int_equal(a, 2);
	int c = vs_json_get(s, t, 0, "cA"); /* the key unescaped */
	assert_int_equal(c, 8);
	char out[16];
	assert_int_equal(vs_json_unescape(s, &t[c], out, sizeof(out)), 3);
	assert_string_equal(out, "x\"y");
	assert_int_equal(vs_json_unescape(s, &t[c], out, 3), VS_ETOOBIG);
	assert_int_equal(t[vs_json_get(s, t, 0, "d")].type, VS_JSON_TRUE);
	assert_int_equal(vs_json_get(s, t, 0, "b"), -1); /* not a member of the top object */
	assert_int_equal(vs_json_get(s, t, 4, "b"), 6);
	assert_int_equal(vs_json_get(s, t, 2, "a"), -1); /* not an object */
	assert_int_equal(vs_json_parse(s, strlen(s), t, 10), VS_ETOOBIG);
}

static void decodes_escapes_and_surrogate_pairs(void **state)
{
	const char *s = "\"\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\u0000z\"";
	struct vs_json_tok t[1];
	assert_int_equal(vs_json_parse(s, strlen(s), t, 1), 1);
	char out[32];
	ssize_t n = vs_json_unescape(s, &t[0], out, sizeof(out));
	assert_int_equal(n, 2 + 4 + 6 + 2);
	assert_memory_equal(out, "\xc3\xa9\xf0\x9f\x98\x80/\b\f\n\r\t\0z", (size_t)n);
}

static void whole_numbers_within_bounds(void **state)
{
	struct vs_json_tok t[1];
	uint64_t v;
	assert_int_equal(parse("4294967295", t, 1), 1);
	assert_int_equal(vs_json_uint("4294967295", t, UINT32_MAX, &v), 0);
	assert_int_equal(v, 4294967295u);
	assert_int_equal(vs_json_uint("4294967295", t, UINT32_MAX - 1, &v), VS_EPROTO);
	assert_int_equal(parse("99999999999999999999999", t, 1), 1);
	assert_int_equal(vs_json_uint("99999999999999999999999", t, UINT64_MAX, &v), VS_EPROTO);
	static const char *not_whole[] = {"-1", "1.0", "1e2", "\"1\""};
	for (size_t i = 0; i < sizeof(not_whole) / sizeof(not_whole[0]); i++) {
		assert_int_equal(parse(not_whole[i], t, 1), 1);
		assert_int_equal(vs_json_uint(not_whole[i], t, 100, &v), VS_EPROTO);
	}
}

static void accepts_valid_texts(void **state)
{
	static const char *good[] = {
	    "0",
	    "-0",
	    "-12.5e+3",
	    "1E-2",
	    "\"\"",
	    "[]",
	    "{}",
	    "null",
	    "  true\n",
	    "[[[[]]]]",
	    "{\"a\":{\"b\":{\"c\":[false]}}}",
	    "\"\xf0\x9f\x98\x80\"",
	    "[1,\"2\",{\"3\":4}]",
	};
	struct vs_json_tok t[32];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(parse(good[i], t, 32) > 0);
}

static void refuses_malformed_texts(void **state)
{
	static const char *bad[] = {
	    "",
	    " ",
	    "{",
	    "}",
	    "[",
	    "[1,]",
	    "{\"a\":1,}",
	    "{\"a\"}",
	    "{\"a\" 1}",
	    "{1:2}",
	    "01",
	    "1.",
	    ".5",
	    "-",
	    "1e",
	    "+1",
	    "tru",
	    "nul",
	    "truex",
	    "\"abc",
	    "\"\\x\"",
	    "\"\\u12\"",
	    "\"\\ud800\"",
	    "\"\\udc00\"",
	    "\"\\ud800\\u0041\"",
	    "\"\x01\"",
	    "\"\xff\"",
	    "\"\xc0\xaf\"",
	    "\"\xed\xa0\x80\"",
	    "1 2",
	    "[1]x",
	    "{\"a\":1}}",
	    "'a'",
	    "NaN",
	    "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", /* deeper than VS_JSON_MAX_DEPTH */
	};
	struct vs_json_tok t[64];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = parse(bad[i], t, 64);
		if (n != VS_EPROTO)
			fail_msg("accepted or misjudged: '%s' -> %d", bad[i], n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(writes_objects_arrays_and_scalars),
	    cmocka_unit_test(invalid_utf8_is_replaced),
	    cmocka_unit_test(nesting_too_deep_is_an_error),
	    cmocka_unit_test(parses_tokens_and_subtrees),
	    cmocka_unit_test(decodes_escapes_and_surrogate_pairs),
	    cmocka_unit_test(whole_numbers_within_bounds),
	    cmocka_unit_test(accepts_valid_texts),
	    cmocka_unit_test(refuses_malformed_texts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
