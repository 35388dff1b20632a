/*
 * Unit tests for src/auth password files: hashes written by Mosquitto 2.0.11's mosquitto_passwd
 * on the development machine (checked in below) must verify; re-hashing with their salt must
 * give the same text byte for byte; every malformed line fails with its FILE:LINE; inputs sit
 * before a guard page so any over-read faults. Test names read as a checklist.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/passwd.h"
#include "base/error.h"
#include "guard.h"

/* mosquitto_passwd 2.0.11 output (Debian 12): user, password, line. */
static const struct {
	const char *user, *password, *line;
} mosq[] = {
    {"alice", "secret",
     "alice:$7$101$oEch4EwHxjnoOh85$TafqcAbwoxNkQXrclX7x5cRieXvVRmsBWNbCAaVHE+W2f6K6SfOFVZ8X"
     "6tmT35JVXj8wsbdgGh4UpvOPcI7p7Q=="},
    {"bob", "p@ss:word",
     "bob:$7$101$SXKOTeFHolHvChWC$ae95rPeyfJFQSCic6CCRnRPLvROO4zIzVlbYajd7NdlW4GWxhAa52uG3x"
     "BBg9fQda57qW2xXsO3GwilTDsFdiQ=="},
    {"carol", "hunter2", /* -H sha512 */
     "carol:$6$C2SQHm941rtONnY+$B0ong68RHHVcfcIUykKfPhoKI4vSrwpqg9FpLXy1HnbdeE0IL/7D/z3s+3bP"
     "XXLdkkZy/gpkUXWGWFemXiuq/g=="},
    {"dave", "x", /* -I 1000 */
     "dave:$7$1000$GZEYoDc5W+1ouyjR$PNa8Pp+AhCd3jVAcDoK6zW952KyPoIeZCKA93KghXLnQ4aBMccnR51pLU"
     "hNxPcsbEmSIfNDLXbZ2kQ1J50VOHg=="},
    {"u", "p", /* -I 5 -H sha512: the iteration count is ignored for $6$ */
     "u:$6$VIEUVDnQPuHcVJjm$HbjjXV5bKHoCLwccuYExZcQOpzbFVeqIY2ppqJ/t2Hr4ijaKQ50jIjr9d8zOWP9F"
     "tmW0Fc4Zv82Czg8BFKu8yA=="},
    {"u", "p", /* -I 2 */
     "u:$7$2$kNdsmZqq5MMcJ9Ii$JDyjt2zWpqEJEI0USPCTBANu7XBADBJi6oGN+mKX3NAMqDIpvSrVFurPVExIht2"
     "XlIDHPEd2ylb/aqUg3X5RLw=="},
};

static char err[512];

/* Parses text from guarded memory. */
static struct vs_passwd *parse(const char *text)
{
	size_t n = strlen(text);
	uint8_t *g = guard_copy(text, n);
	err[0] = '\0';
	struct vs_passwd *pf = vs_passwd_parse((const char *)g, n, "t.pw", err, sizeof(err));
	guard_free(g, n);
	return pf;
}

static int check(const struct vs_passwd *pf, const char *user, const char *pw)
{
	return vs_passwd_check(pf, user, (const uint8_t *)pw, strlen(pw));
}

static void mosquitto_hashes_verify(void **state)
{
	for (size_t i = 0; i < sizeof(mosq) / sizeof(mosq[0]); i++) {
		struct vs_passwd *pf = parse(mosq[i].line);
		assert_non_null(pf);
		assert_int_equal(vs_passwd_count(pf), 1);
		assert_int_equal(check(pf, mosq[i].user, mosq[i].password), 1);
		assert_int_equal(check(pf, mosq[i].user, "wrong"), 0);
		assert_int_equal(check(pf, mosq[i].user, ""), 0);
		assert_int_equal(vs_passwd_check(pf, mosq[i].user, NULL, 0), 0);
		assert_int_equal(check(pf, "nobody", mosq[i].password), 0);
		vs_passwd_free(pf);
	}
}

static void rehash_with_mosquittos_salt_gives_the_same_line(void **state)
{
	for (size_t i = 0; i < sizeof(mosq) / sizeof(mosq[0]); i++) {
		const char *hash = strchr(mosq[i].line, ':') + 1;
		struct vs_passwd_hash h, again;
		char text[VS_PASSWD_HASH_STRMAX];
		assert_int_equal(vs_passwd_hash_parse(&h, hash, strlen(hash), NULL), 0);
		assert_int_equal(vs_passwd_hash_make(&again, h.type, h.iterations, h.salt,
						     (const uint8_t *)mosq[i].password,
						     strlen(mosq[i].password)),
				 0);
		assert_memory_equal(again.hash, h.hash, VS_PASSWD_HASH_LEN);
		assert_int_equal(vs_passwd_hash_format(&again, text, sizeof(text)), strlen(hash));
		assert_string_equal(text, hash);
	}
}

static void default_hash_is_pbkdf2_101_with_12_byte_salt(void **state)
{
	struct vs_passwd_hash h1, h2;
	char t1[VS_PASSWD_HASH_STRMAX], t2[VS_PASSWD_HASH_STRMAX];
	assert_int_equal(vs_passwd_hash_make(&h1, VS_PASSWD_PBKDF2, VS_PASSWD_ITERATIONS, NULL,
					     (const uint8_t *)"pw", 2),
			 0);
	assert_int_equal(vs_passwd_hash_make(&h2, VS_PASSWD_PBKDF2, VS_PASSWD_ITERATIONS, NULL,
					     (const uint8_t *)"pw", 2),
			 0);
	int n = vs_passwd_hash_format(&h1, t1, sizeof(t1));
	assert_int_equal(n, 3 + 3 + 1 + 16 + 1 + 88);
	assert_memory_equal(t1, "$7$101$", 7);
	assert_int_equal(t1[7 + 16], '$');
	vs_passwd_hash_format(&h2, t2, sizeof(t2));
	assert_string_not_equal(t1, t2); /* fresh random salt each time */
	assert_int_equal(vs_passwd_hash_verify(&h1, (const uint8_t *)"pw", 2), 1);
	assert_int_equal(vs_passwd_hash_verify(&h1, (const uint8_t *)"pW", 2), 0);
}

static void sha512_format_has_no_iterations(void **state)
{
	struct vs_passwd_hash h;
	char t[VS_PASSWD_HASH_STRMAX];
	assert_int_equal(
	    vs_passwd_hash_make(&h, VS_PASSWD_SHA512, 999, NULL, (const uint8_t *)"a", 1), 0);
	assert_int_equal(vs_passwd_hash_format(&h, t, sizeof(t)), 3 + 16 + 1 + 88);
	assert_memory_equal(t, "$6$", 3);
	assert_int_equal(h.iterations, 0);
}

static void format_reports_a_short_buffer(void **state)
{
	struct vs_passwd_hash h;
	char t[50];
	vs_passwd_hash_make(&h, VS_PASSWD_PBKDF2, 1, NULL, (const uint8_t *)"a", 1);
	assert_int_equal(vs_passwd_hash_format(&h, t, sizeof(t)), VS_ETOOBIG);
}

static void make_rejects_bad_parameters(void **state)
{
	struct vs_passwd_hash h;
	assert_int_equal(vs_passwd_hash_make(&h, VS_PASSWD_PBKDF2, 0, NULL, NULL, 0), VS_ECONF);
	assert_int_equal(vs_passwd_hash_make(&h, 5, 101, NULL, NULL, 0), VS_ECONF);
	/* an empty password is allowed (mosquitto_passwd -b writes one) */
	assert_int_equal(vs_passwd_hash_make(&h, VS_PASSWD_PBKDF2, 1, NULL, NULL, 0), 0);
	assert_int_equal(vs_passwd_hash_verify(&h, (const uint8_t *)"", 0), 1);
}

static void binary_password_with_nul_bytes(void **state)
{
	static const uint8_t pw[] = {'a', 0, 'b', 0xff};
	struct vs_passwd_hash h;
	assert_int_equal(vs_passwd_hash_make(&h, VS_PASSWD_PBKDF2, 3, NULL, pw, sizeof(pw)), 0);
	assert_int_equal(vs_passwd_hash_verify(&h, pw, sizeof(pw)), 1);
	assert_int_equal(vs_passwd_hash_verify(&h, pw, 1), 0); /* no truncation at the NUL */
}

static void file_with_comments_blanks_crlf_and_spaces(void **state)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "# users\n"
		 "\n"
		 "   \t\n"
		 "  # indented comment\n"
		 "%s\r\n"
		 "  %s  \n"
		 "%s", /* last line without newline */
		 mosq[0].line, mosq[1].line, mosq[2].line);
	struct vs_passwd *pf = parse(text);
	if (!pf)
		print_error("%s\n", err);
	assert_non_null(pf);
	assert_int_equal(vs_passwd_count(pf), 3);
	assert_int_equal(check(pf, "alice", "secret"), 1);
	assert_int_equal(check(pf, "bob", "p@ss:word"), 1);
	assert_int_equal(check(pf, "carol", "hunter2"), 1);
	assert_int_equal(check(pf, "carol", "secret"), 0);
	assert_int_equal(check(pf, "Alice", "secret"), 0); /* usernames are case-sensitive */
	vs_passwd_free(pf);
}

static void empty_file_has_no_users(void **state)
{
	struct vs_passwd *pf = parse("");
	assert_non_null(pf);
	assert_int_equal(vs_passwd_count(pf), 0);
	assert_int_equal(check(pf, "alice", "secret"), 0);
	vs_passwd_free(pf);
	assert_int_equal(vs_passwd_check(NULL, "a", (const uint8_t *)"b", 1), 0);
}

#define H7                                                                                         \
	"$7$101$oEch4EwHxjnoOh85$TafqcAbwoxNkQXrclX7x5cRieXvVRmsBWNbCAaVHE+"                       \
	"W2f6K6SfOFVZ8X6tmT35JVXj8wsbdgGh4UpvOPcI7p7Q=="
#define SALT "oEch4EwHxjnoOh85"
#define HASH                                                                                       \
	"TafqcAbwoxNkQXrclX7x5cRieXvVRmsBWNbCAaVHE+W2f6K6SfOFVZ8X6tmT35JVXj8wsbdgGh4UpvOPcI7p7Q=="

static void malformed_lines_fail_with_file_and_line(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"# ok\nnocolon\n", "t.pw:2: expected user:hash, found no ':'"},
	    {":" H7 "\n", "t.pw:1: empty username"},
	    {"  \t:" H7 "\n", "t.pw:1: empty username"},
	    {"a:\n", "t.pw:1: no password hash for user 'a'"},
	    {"a:   \n", "t.pw:1: no password hash for user 'a'"},
	    {"a:plaintext\n", "t.pw:1: user 'a': password is not a $6$ or $7$ hash (plain-text "
			      "passwords need `viesti passwd -U`)"},
	    {"a:$5$x$y\n", "t.pw:1: user 'a': unknown hash type (only $6$ and $7$ are supported)"},
	    {"a:$7$\n", "t.pw:1: user 'a': truncated hash: expected $7$ITERATIONS$SALT$HASH"},
	    {"a:$7$0$" SALT "$" HASH "\n",
	     "t.pw:1: user 'a': bad iteration count (an integer from 1 to 2147483647)"},
	    {"a:$7$-1$" SALT "$" HASH "\n",
	     "t.pw:1: user 'a': bad iteration count (an integer from 1 to 2147483647)"},
	    {"a:$7$2147483648$" SALT "$" HASH "\n",
	     "t.pw:1: user 'a': bad iteration count (an integer from 1 to 2147483647)"},
	    {"a:$7$$" SALT "$" HASH "\n",
	     "t.pw:1: user 'a': bad iteration count (an integer from 1 to 2147483647)"},
	    {"a:$7$101$" SALT "\n", "t.pw:1: user 'a': truncated hash: no '$' after the salt"},
	    {"a:$7$101$" SALT "A$" HASH "\n",
	     "t.pw:1: user 'a': bad salt: expected 12 bytes in base64 (16 characters)"},
	    {"a:$7$101$oEch4EwHxjnoOh8$" HASH "\n",
	     "t.pw:1: user 'a': bad salt: expected 12 bytes in base64 (16 characters)"},
	    {"a:$7$101$oEch4EwHxjnoOh8*$" HASH "\n",
	     "t.pw:1: user 'a': bad salt: expected 12 bytes in base64 (16 characters)"},
	    {"a:$7$101$" SALT "$" HASH "$x\n", "t.pw:1: user 'a': too many '$' fields in hash"},
	    {"a:$7$101$" SALT "$" HASH "A\n",
	     "t.pw:1: user 'a': bad hash: expected 64 bytes in base64 (88 characters)"},
	    {"a:$7$101$" SALT "$TafqcAbw\n",
	     "t.pw:1: user 'a': bad hash: expected 64 bytes in base64 (88 characters)"},
	    /* non-canonical padding: the hidden bits of the last character must be zero */
	    {"a:$7$101$" SALT "$TafqcAbwoxNkQXrclX7x5cRieXvVRmsBWNbCAaVHE+W2f6K6SfOFVZ8X6tmT35JVXj8"
	     "wsbdgGh4UpvOPcI7p7R==\n",
	     "t.pw:1: user 'a': bad hash: expected 64 bytes in base64 (88 characters)"},
	    {"a:$7$101$" SALT "$TafqcAbwoxNkQXrclX7x5cRieXvVRmsBWNbCAaVHE+W2f6K6SfOFVZ8X6tmT35JVXj8"
	     "wsbdgGh4UpvOPcI7p7Q=A\n",
	     "t.pw:1: user 'a': bad hash: expected 64 bytes in base64 (88 characters)"},
	    {"a:$7$101$" SALT "$" HASH ":extra\n",
	     "t.pw:1: user 'a': bad hash: expected 64 bytes in base64 (88 characters)"},
	    {"a:$6$" SALT "\n", "t.pw:1: user 'a': truncated hash: no '$' after the salt"},
	    {"x\n\n\na:" H7 "\na:" H7 "\n", "t.pw:1: expected user:hash, found no ':'"},
	    {"a:" H7 "\nb:" H7 "\na:" H7 "\n", "t.pw:3: user 'a' appears twice"},
	    {"a:" H7 "\nb:$7\0$\n", "t.pw:2: NUL byte in line"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* the NUL case is not a C string: give its real length */
		size_t n = strlen(cases[i].text);
		if (strstr(cases[i].want, "NUL"))
			n += 3;
		uint8_t *g = guard_copy(cases[i].text, n);
		err[0] = '\0';
		struct vs_passwd *pf =
		    vs_passwd_parse((const char *)g, n, "t.pw", err, sizeof(err));
		guard_free(g, n);
		if (pf || strcmp(err, cases[i].want))
			print_error("case %zu:\nwant: %s\ngot:  %s\n", i, cases[i].want, err);
		assert_null(pf);
		assert_string_equal(err, cases[i].want);
	}
}

static void long_username_is_refused(void **state)
{
	size_t n = VS_PASSWD_USER_MAX + 1;
	char *text = malloc(n + sizeof(H7) + 2);
	memset(text, 'u', n);
	sprintf(text + n, ":%s", H7);
	assert_null(parse(text));
	assert_string_equal(err, "t.pw:1: username longer than 65535 bytes");
	free(text);
}

static void load_reads_a_file_and_names_it_in_errors(void **state)
{
	char path[] = "/tmp/vs_test_auth_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "%s\n%s\n", mosq[0].line, mosq[3].line);
	fclose(f);
	struct vs_passwd *pf = vs_passwd_load(path, err, sizeof(err));
	assert_non_null(pf);
	assert_int_equal(check(pf, "dave", "x"), 1);
	vs_passwd_free(pf);

	f = fopen(path, "a");
	fprintf(f, "oops\n");
	fclose(f);
	assert_null(vs_passwd_load(path, err, sizeof(err)));
	char want[600];
	snprintf(want, sizeof(want), "%s:3: expected user:hash, found no ':'", path);
	assert_string_equal(err, want);
	unlink(path);

	assert_null(vs_passwd_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
	assert_null(vs_passwd_load(path, NULL, 0)); /* err is optional */
}

/* A file written right now by the installed mosquitto_passwd (skipped without it). */
static void live_mosquitto_passwd_file_verifies(void **state)
{
	if (access("/usr/bin/mosquitto_passwd", X_OK) != 0) {
		skip();
		return;
	}
	char dir[] = "/tmp/vs_test_auth_dXXXXXX";
	assert_non_null(mkdtemp(dir));
	char cmd[1200], path[300];
	snprintf(path, sizeof(path), "%s/pw", dir);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/mosquitto_passwd -c -b %s zed 'sp ace$7' && "
		 "/usr/bin/mosquitto_passwd -H sha512 -b %s yan 'y' && "
		 "/usr/bin/mosquitto_passwd -I 7 -b %s xi ''",
		 path, path, path);
	assert_int_equal(system(cmd), 0);
	struct vs_passwd *pf = vs_passwd_load(path, err, sizeof(err));
	if (!pf)
		print_error("%s\n", err);
	assert_non_null(pf);
	assert_int_equal(vs_passwd_count(pf), 3);
	assert_int_equal(check(pf, "zed", "sp ace$7"), 1);
	assert_int_equal(check(pf, "zed", "sp ace"), 0);
	assert_int_equal(check(pf, "yan", "y"), 1);
	assert_int_equal(check(pf, "xi", ""), 1);
	assert_int_equal(check(pf, "xi", " "), 0);
	vs_passwd_free(pf);
	unlink(path);
	rmdir(dir);
}

static void usernames_that_fit_in_a_file(void **state)
{
	assert_true(vs_passwd_user_valid("alice"));
	assert_true(vs_passwd_user_valid("with space"));
	assert_true(vs_passwd_user_valid("ünï"));
	assert_false(vs_passwd_user_valid(""));
	assert_false(vs_passwd_user_valid("a:b"));
	assert_false(vs_passwd_user_valid("a\nb"));
	assert_false(vs_passwd_user_valid("a\r"));
	assert_false(vs_passwd_user_valid("#x"));
	assert_false(vs_passwd_user_valid(" x"));
	assert_false(vs_passwd_user_valid("x\t"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mosquitto_hashes_verify),
	    cmocka_unit_test(rehash_with_mosquittos_salt_gives_the_same_line),
	    cmocka_unit_test(default_hash_is_pbkdf2_101_with_12_byte_salt),
	    cmocka_unit_test(sha512_format_has_no_iterations),
	    cmocka_unit_test(format_reports_a_short_buffer),
	    cmocka_unit_test(make_rejects_bad_parameters),
	    cmocka_unit_test(binary_password_with_nul_bytes),
	    cmocka_unit_test(file_with_comments_blanks_crlf_and_spaces),
	    cmocka_unit_test(empty_file_has_no_users),
	    cmocka_unit_test(malformed_lines_fail_with_file_and_line),
	    cmocka_unit_test(long_username_is_refused),
	    cmocka_unit_test(load_reads_a_file_and_names_it_in_errors),
	    cmocka_unit_test(live_mosquitto_passwd_file_verifies),
	    cmocka_unit_test(usernames_that_fit_in_a_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
