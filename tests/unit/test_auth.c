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

#include <argon2.h>

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

/* A fresh hash of `type` with `iterations` (0: the default) and a random salt. */
static int make(struct vs_passwd_hash *h, enum vs_passwd_type type, unsigned iterations,
		const void *pw, size_t pwlen)
{
	int rc = vs_passwd_hash_init(h, type, iterations);
	return rc ? rc : vs_passwd_hash_make(h, true, pw, pwlen);
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
		again = h;
		memset(again.hash, 0, sizeof(again.hash));
		assert_int_equal(vs_passwd_hash_make(&again, false,
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
	assert_int_equal(make(&h1, VS_PASSWD_PBKDF2, 0, "pw", 2), 0);
	assert_int_equal(make(&h2, VS_PASSWD_PBKDF2, 0, "pw", 2), 0);
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
	assert_int_equal(make(&h, VS_PASSWD_SHA512, 999, "a", 1), 0);
	assert_int_equal(vs_passwd_hash_format(&h, t, sizeof(t)), 3 + 16 + 1 + 88);
	assert_memory_equal(t, "$6$", 3);
	assert_int_equal(h.iterations, 0);
}

static void format_reports_a_short_buffer(void **state)
{
	struct vs_passwd_hash h;
	char t[50];
	make(&h, VS_PASSWD_PBKDF2, 1, "a", 1);
	assert_int_equal(vs_passwd_hash_format(&h, t, sizeof(t)), VS_ETOOBIG);
}

static void make_rejects_bad_parameters(void **state)
{
	struct vs_passwd_hash h;
	assert_int_equal(make(&h, VS_PASSWD_SCRAM, 4095, NULL, 0), VS_ECONF);
	assert_int_equal(make(&h, 5, 101, NULL, 0), VS_ECONF);
	assert_int_equal(vs_passwd_hash_init(&h, VS_PASSWD_PBKDF2, 0), 0);
	h.salt_len = 13; /* $7$ salts are 12 or 64 bytes */
	assert_int_equal(vs_passwd_hash_make(&h, true, NULL, 0), VS_ECONF);
	assert_int_equal(vs_passwd_hash_init(&h, VS_PASSWD_ARGON2ID, 0), 0);
	h.memory_kib = 7; /* libargon2's floor is 8 KiB per lane */
	assert_int_equal(vs_passwd_hash_make(&h, true, NULL, 0), VS_ECONF);
	/* an empty password is allowed (mosquitto_passwd -b writes one) */
	assert_int_equal(make(&h, VS_PASSWD_PBKDF2, 1, NULL, 0), 0);
	assert_int_equal(vs_passwd_hash_verify(&h, (const uint8_t *)"", 0), 1);
}

static void binary_password_with_nul_bytes(void **state)
{
	static const uint8_t pw[] = {'a', 0, 'b', 0xff};
	struct vs_passwd_hash h;
	assert_int_equal(make(&h, VS_PASSWD_PBKDF2, 3, pw, sizeof(pw)), 0);
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
	    {"a:plaintext\n",
	     "t.pw:1: user 'a': password is not a $6$, $7$, $argon2id$ or "
	     "$scram-sha-256$ hash (plain-text passwords need `viesti passwd -U`)"},
	    {"a:$5$x$y\n", "t.pw:1: user 'a': unknown hash type (only $6$, $7$, $argon2id$ and "
			   "$scram-sha-256$ are supported)"},
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
	     "t.pw:1: user 'a': bad salt: expected 12 or 64 bytes in base64 (16 or 88 characters)"},
	    {"a:$7$101$oEch4EwHxjnoOh8$" HASH "\n",
	     "t.pw:1: user 'a': bad salt: expected 12 or 64 bytes in base64 (16 or 88 characters)"},
	    {"a:$7$101$oEch4EwHxjnoOh8*$" HASH "\n",
	     "t.pw:1: user 'a': bad salt: expected 12 or 64 bytes in base64 (16 or 88 characters)"},
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

/* Mosquitto 2.1's formats. The argon2id line is what mosquitto_passwd 2.1 writes for the
 * password "correct horse": libargon2's argon2id_hash_encoded() with its parameters (t=1,
 * m=47104, p=1, a 64-byte salt and a 64-byte tag), made with a fixed salt. The $7$ and $6$ lines
 * carry Mosquitto 2.1's 64-byte salt (its default of 210000 iterations is lowered to 1000 to keep
 * the test quick); made with Python's hashlib, password "s3cret". */
#define ARGON2_MOSQ                                                                                \
	"$argon2id$v=19$m=47104,t=1,p=1$AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/"         \
	"wYNFBsiKTA"                                                                               \
	"3PkVMU1phaG92fYSLkpmgp661vA$q2Eyb3YqIhxRF8vbAsy2pnIUEVznQ/"                               \
	"hB9K41G7Ng69TPnA8NqN0XAwNtQmZpFb"                                                         \
	"PogdMUF2fV1KStWOolEHcOhA"
#define ARGON2_SMALL                                                                               \
	"$argon2id$v=19$m=64,t=2,p=2$AwoRGB8mLTQ7QklQV15lbA$XQiUlToVrlm5HLWCSCqUKxJNX7EK5o/"       \
	"ATvGJDvtB9vw"
#define PBKDF2_SALT64                                                                              \
	"$7$1000$BRAbJjE8R1JdaHN+"                                                                 \
	"iZSfqrXAy9bh7PcCDRgjLjlET1plcHuGkZynsr3I097p9P8KFSArNkFMV2JteIOOmaSv"                     \
	"ug==$mwnY/DF0sCquSoDY4rGxTMARnRQQKB4efE9+xfQTD4hECFQSCi+vR9/Fj/"                          \
	"buBqCNtQB+vxhKlmsakEa7adU4Zw=="
#define SHA512_SALT64                                                                              \
	"$6$BRAbJjE8R1JdaHN+"                                                                      \
	"iZSfqrXAy9bh7PcCDRgjLjlET1plcHuGkZynsr3I097p9P8KFSArNkFMV2JteIOOmaSvug==$"                \
	"55bNXM/gdcJ8943odoYMfCRYbNfRPqtwd1QTFnLuAmTHLSyyh5KUSYoLODxZbEGfgPwMjcIONRUKBthFB4XrTQ=="
/* RFC 7677's user: password "pencil", its salt and 4096 iterations; the keys computed with
 * Python's hashlib and hmac from RFC 5802 section 3. */
#define SCRAM_PENCIL                                                                               \
	"$scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                                            \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                                            \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static void mosquitto_2_1_lines_verify_and_format_back(void **state)
{
	static const struct {
		const char *hash, *password;
		enum vs_passwd_type type;
	} lines[] = {
	    {ARGON2_MOSQ, "correct horse", VS_PASSWD_ARGON2ID},
	    {ARGON2_SMALL, "pw", VS_PASSWD_ARGON2ID},
	    {PBKDF2_SALT64, "s3cret", VS_PASSWD_PBKDF2},
	    {SHA512_SALT64, "s3cret", VS_PASSWD_SHA512},
	    {SCRAM_PENCIL, "pencil", VS_PASSWD_SCRAM},
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct vs_passwd_hash h;
		char text[VS_PASSWD_HASH_STRMAX];
		const char *why = NULL;
		size_t n = strlen(lines[i].hash);
		if (vs_passwd_hash_parse(&h, lines[i].hash, n, &why))
			print_error("line %zu: %s\n", i, why);
		assert_int_equal(h.type, lines[i].type);
		const uint8_t *pw = (const uint8_t *)lines[i].password;
		assert_int_equal(vs_passwd_hash_verify(&h, pw, strlen(lines[i].password)), 1);
		assert_int_equal(vs_passwd_hash_verify(&h, pw, strlen(lines[i].password) - 1), 0);
		assert_int_equal(vs_passwd_hash_format(&h, text, sizeof(text)), n);
		assert_string_equal(text, lines[i].hash);
	}
}

static void argon2id_parameters_are_mosquittos(void **state)
{
	struct vs_passwd_hash h;
	char t[VS_PASSWD_HASH_STRMAX];
	assert_int_equal(make(&h, VS_PASSWD_ARGON2ID, 0, "pw", 2), 0);
	int n = vs_passwd_hash_format(&h, t, sizeof(t));
	const char *head = "$argon2id$v=19$m=47104,t=1,p=1$";
	assert_memory_equal(t, head, strlen(head));
	/* 64-byte salt and tag: 86 unpadded characters each */
	assert_int_equal(n, (int)strlen(head) + 86 + 1 + 86);
	/* libargon2 itself, which Mosquitto 2.1 verifies with, accepts what we wrote */
	assert_int_equal(argon2id_verify(t, "pw", 2), ARGON2_OK);
	assert_int_equal(vs_passwd_hash_verify(&h, (const uint8_t *)"pw", 2), 1);
	assert_int_equal(vs_passwd_hash_verify(&h, (const uint8_t *)"pW", 2), 0);
}

static void scram_entry_from_make_matches_rfc_7677_keys(void **state)
{
	struct vs_passwd_hash h, want;
	const char *why = NULL;
	assert_int_equal(vs_passwd_hash_parse(&want, SCRAM_PENCIL, strlen(SCRAM_PENCIL), &why), 0);
	assert_int_equal(vs_passwd_hash_init(&h, VS_PASSWD_SCRAM, 0), 0);
	assert_int_equal(h.iterations, 4096);
	assert_int_equal(h.salt_len, 16);
	h.salt_len = want.salt_len;
	memcpy(h.salt, want.salt, want.salt_len);
	assert_int_equal(vs_passwd_hash_make(&h, false, (const uint8_t *)"pencil", 6), 0);
	assert_memory_equal(h.hash, want.hash, VS_PASSWD_HASH_LEN);
}

static void new_formats_malformed_fail_with_file_and_line(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"a:$argon2i$v=19$m=64,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA$uhui1ULc7nm2F1tZuiH3Bz8wKNnWLIk+"
	     "2J"
	     "Cqdq/EghQ\n",
	     "t.pw:1: user 'a': argon2i and argon2d hashes are not supported (only $argon2id$, as "
	     "Mosquitto 2.1 writes)"},
	    {"a:$argon2d$v=19$m=64,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA$zjsnJPmU4gT0fH3cMuU/"
	     "Nd8ZVVZni5I7nP"
	     "Ifp9pgn5U\n",
	     "t.pw:1: user 'a': argon2i and argon2d hashes are not supported (only $argon2id$, as "
	     "Mosquitto 2.1 writes)"},
	    {"a:$argon2id$m=64,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA$XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': unsupported argon2id version (only v=19, as libargon2 writes)"},
	    {"a:$argon2id$v=16$m=64,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': unsupported argon2id version (only v=19, as libargon2 writes)"},
	    {"a:$argon2id$v=19\n",
	     "t.pw:1: user 'a': truncated hash: expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH"},
	    {"a:$argon2id$v=19$t=1,m=64,p=1$AwoRGB8mLTQ7QklQV15lbA$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': bad argon2id parameters: expected m=MEMORY,t=TIME,p=LANES"},
	    {"a:$argon2id$v=19$m=64,t=1,p=x$AwoRGB8mLTQ7QklQV15lbA$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': bad argon2id parameters: expected m=MEMORY,t=TIME,p=LANES"},
	    {"a:$argon2id$v=19$m=64,t=0,p=1$AwoRGB8mLTQ7QklQV15lbA$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': argon2id time cost out of range (t from 1 to 2147483647)"},
	    {"a:$argon2id$v=19$m=64,t=1,p=0$AwoRGB8mLTQ7QklQV15lbA$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': argon2id lanes out of range (p from 1 to 255)"},
	    {"a:$argon2id$v=19$m=15,t=1,p=2$AwoRGB8mLTQ7QklQV15lbA$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': argon2id memory out of range (m from 8*p to 4194304 KiB)"},
	    {"a:$argon2id$v=19$m=4194305,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7E\n",
	     "t.pw:1: user 'a': argon2id memory out of range (m from 8*p to 4194304 KiB)"},
	    {"a:$argon2id$v=19$m=64,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA==$"
	     "XQiUlToVrlm5HLWCSCqUKxJNX7EK5\n",
	     "t.pw:1: user 'a': bad salt: expected 8 to 64 bytes in unpadded base64"},
	    {"a:$argon2id$v=19$m=64,t=1,p=1$AwoRGB8mLQ$XQiUlToVrlm5HLWCSCqUKxJNX7EK5o\n",
	     "t.pw:1: user 'a': bad salt: expected 8 to 64 bytes in unpadded base64"},
	    {"a:$argon2id$v=19$m=64,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA$XQiUlToVrlm5HLW\n",
	     "t.pw:1: user 'a': bad hash: expected 16 to 64 bytes in unpadded base64"},
	    {"a:$argon2id$v=19$m=64,t=1,p=1$AwoRGB8mLTQ7QklQV15lbA\n",
	     "t.pw:1: user 'a': truncated hash: no '$' after the salt"},
	    {"a:$scram-sha-256$4095:W22ZaJ0SNY7soEsUEjb6gQ==$"
	     "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT"
	     "4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
	     "t.pw:1: user 'a': bad iteration count (an integer from 4096 to 2147483647, RFC "
	     "7677)"},
	    {"a:$scram-sha-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==\n",
	     "t.pw:1: user 'a': bad iteration count (an integer from 4096 to 2147483647, RFC "
	     "7677)"},
	    {"a:$scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=\n",
	     "t.pw:1: user 'a': truncated hash: expected "
	     "$scram-sha-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY"},
	    {"a:$scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=$"
	     "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4"
	     "qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n",
	     "t.pw:1: user 'a': bad salt: expected 1 to 64 bytes in base64"},
	    {"a:$scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	     "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT"
	     "4qY=\n",
	     "t.pw:1: user 'a': bad keys: expected STOREDKEY:SERVERKEY, 32 bytes each in base64 "
	     "(44 "
	     "characters)"},
	    {"a:$scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	     "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT"
	     "4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=$\n",
	     "t.pw:1: user 'a': bad keys: expected STOREDKEY:SERVERKEY, 32 bytes each in base64 "
	     "(44 "
	     "characters)"},
	    {"a:$7$101$" SALT "AAAAAAAA$" HASH "\n",
	     "t.pw:1: user 'a': bad salt: expected 12 or 64 bytes in base64 (16 or 88 characters)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_passwd *pf = parse(cases[i].text);
		if (pf || strcmp(err, cases[i].want))
			print_error("case %zu:\nwant: %s\ngot:  %s\n", i, cases[i].want, err);
		assert_null(pf);
		assert_string_equal(err, cases[i].want);
	}
}

static void file_mixing_every_format(void **state)
{
	struct vs_passwd *pf = parse("old:" SHA512_SALT64 "\n"
				     "mid:" PBKDF2_SALT64 "\n"
				     "new:" ARGON2_SMALL "\n"
				     "user:" SCRAM_PENCIL "\n");
	if (!pf)
		print_error("%s\n", err);
	assert_non_null(pf);
	assert_int_equal(vs_passwd_count(pf), 4);
	assert_int_equal(check(pf, "old", "s3cret"), 1);
	assert_int_equal(check(pf, "mid", "s3cret"), 1);
	assert_int_equal(check(pf, "new", "pw"), 1);
	assert_int_equal(check(pf, "user", "pencil"), 1); /* a plain CONNECT against SCRAM keys */
	assert_int_equal(check(pf, "user", "Pencil"), 0);
	assert_int_equal(check(pf, "nobody", "pencil"), 0);
	assert_int_equal(vs_passwd_check(pf, "user", NULL, 0), 0);
	vs_passwd_free(pf);
	/* unknown users cost an argon2id check when the last entry is one */
	pf = parse("user:" SCRAM_PENCIL "\nnew:" ARGON2_MOSQ "\n");
	assert_non_null(pf);
	assert_int_equal(check(pf, "nobody", "correct horse"), 0);
	assert_int_equal(check(pf, "new", "correct horse"), 1);
	vs_passwd_free(pf);
}

static void scram_lookup_gives_stand_ins_for_unknown_users(void **state)
{
	struct vs_passwd *pf = parse("user:" SCRAM_PENCIL "\nmid:" PBKDF2_SALT64 "\n");
	assert_non_null(pf);
	struct vs_scram_cred c, c2, c3;
	assert_int_equal(vs_passwd_scram_lookup(pf, "user", &c), 1);
	assert_int_equal(c.iterations, 4096);
	assert_int_equal(c.salt_len, 16);
	assert_memory_equal(c.salt,
			    "\x5b\x6d\x99\x68\x9d\x12\x35\x8e\xec\xa0\x4b\x14\x12\x36\xfa\x81", 16);
	assert_int_equal(vs_scram_cred_verify(&c, (const uint8_t *)"pencil", 6), 1);
	/* an unknown user: the same shape, the same answer every time, another user's differs */
	assert_int_equal(vs_passwd_scram_lookup(pf, "nobody", &c), 0);
	assert_int_equal(vs_passwd_scram_lookup(pf, "nobody", &c2), 0);
	assert_int_equal(vs_passwd_scram_lookup(pf, "someone", &c3), 0);
	assert_int_equal(c.iterations, 4096);
	assert_int_equal(c.salt_len, 16);
	assert_memory_equal(&c, &c2, sizeof(c));
	assert_memory_not_equal(c.salt, c3.salt, 16);
	assert_int_equal(vs_scram_cred_verify(&c, (const uint8_t *)"pencil", 6), 0);
	/* a user whose entry is not SCRAM cannot answer SCRAM: a stand-in too */
	assert_int_equal(vs_passwd_scram_lookup(pf, "mid", &c), 0);
	assert_int_equal(c.salt_len, 16);
	vs_passwd_free(pf);
	/* the same text loaded again gives the same stand-ins (a reload, a restart) */
	pf = parse("user:" SCRAM_PENCIL "\nmid:" PBKDF2_SALT64 "\n");
	assert_int_equal(vs_passwd_scram_lookup(pf, "nobody", &c3), 0);
	assert_memory_equal(&c2, &c3, sizeof(c2));
	vs_passwd_free(pf);
	/* without SCRAM entries: 4096 iterations and a 16-byte salt */
	pf = parse("mid:" PBKDF2_SALT64 "\n");
	assert_int_equal(vs_passwd_scram_lookup(pf, "mid", &c), 0);
	assert_int_equal(c.iterations, 4096);
	assert_int_equal(c.salt_len, 16);
	vs_passwd_free(pf);
}

static void hash_like_values_are_not_passwords(void **state)
{
	assert_true(vs_passwd_hash_like("$7$x", 4));
	assert_true(vs_passwd_hash_like("$6$", 3));
	assert_true(vs_passwd_hash_like("$argon2id$junk", 14));
	assert_true(vs_passwd_hash_like("$argon2i$", 9));
	assert_true(vs_passwd_hash_like("$scram-sha-256$", 15));
	assert_false(vs_passwd_hash_like("$5$", 3));
	assert_false(vs_passwd_hash_like("secret", 6));
	assert_false(vs_passwd_hash_like("$7", 2));
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
	    cmocka_unit_test(mosquitto_2_1_lines_verify_and_format_back),
	    cmocka_unit_test(argon2id_parameters_are_mosquittos),
	    cmocka_unit_test(scram_entry_from_make_matches_rfc_7677_keys),
	    cmocka_unit_test(new_formats_malformed_fail_with_file_and_line),
	    cmocka_unit_test(file_mixing_every_format),
	    cmocka_unit_test(scram_lookup_gives_stand_ins_for_unknown_users),
	    cmocka_unit_test(hash_like_values_are_not_passwords),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
