/*
 * Unit tests for src/auth ACL files: the topic matcher, filter validation, every parse error with
 * its FILE:LINE, Mosquitto's parsing quirks, and the decision order as a table (anonymous rules,
 * user sections, patterns with %c/%u, deny first, the '$' rule, dangerous ids). Inputs sit right
 * before a guard page. Test names read as a checklist.
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

#include "auth/acl.h"
#include "base/error.h"
#include "guard.h"

#define R VS_ACL_READ
#define W VS_ACL_WRITE
#define S VS_ACL_SUBSCRIBE

static char err[512];

static struct vs_acl *parse_n(const char *text, size_t n)
{
	uint8_t *g = guard_copy(text, n);
	err[0] = '\0';
	struct vs_acl *acl = vs_acl_parse((const char *)g, n, "t.acl", err, sizeof(err));
	guard_free(g, n);
	return acl;
}

static struct vs_acl *parse(const char *text)
{
	return parse_n(text, strlen(text));
}

static int match(const char *f, const char *t)
{
	size_t fn = strlen(f), tn = strlen(t);
	uint8_t *gf = guard_copy(f, fn), *gt = guard_copy(t, tn);
	int r = vs_acl_match((const char *)gf, fn, (const char *)gt, tn);
	guard_free(gf, fn);
	guard_free(gt, tn);
	return r;
}

static void matcher_follows_mqtt_wildcards(void **state)
{
	static const struct {
		const char *filter, *topic;
		int want;
	} cases[] = {
	    {"a/b", "a/b", 1},
	    {"a/b", "a/c", 0},
	    {"a/b", "a/b/", 0},
	    {"a/b/", "a/b", 0},
	    {"a/b", "a", 0},
	    {"/", "/", 1},
	    {"a/+", "a/b", 1},
	    {"a/+", "a/", 1},
	    {"a/+", "a/b/c", 0},
	    {"a/+", "a", 0},
	    {"+", "/x", 0},
	    {"+/+", "/x", 1},
	    {"+/#", "a", 1},
	    {"a/+/#", "a/b", 1},
	    {"a/#", "a", 1},
	    {"a/#", "a/", 1},
	    {"a/#", "a/b/c", 1},
	    {"a/#", "ab", 0},
	    {"sport/tennis/#", "sport/tennis", 1},
	    {"#", "a", 1},
	    {"#", "/a", 1},
	    {"+", "", 0},
	    {"#", "", 0},
	    /* [MQTT-4.7.2-1] and Mosquitto: '$' topics need a '$' filter */
	    {"#", "$SYS/x", 0},
	    {"+/x", "$SYS/x", 0},
	    {"$SYS/#", "$SYS/x", 1},
	    {"$SYS/#", "$SYS", 1},
	    {"$SYS/+", "$SYS/a", 1},
	    {"$SYS/x", "$SYS/x", 1},
	    {"$SYS/x", "SYS/x", 0},
	    {"%c/x", "%c/x", 1}, /* no substitution outside patterns */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = match(cases[i].filter, cases[i].topic);
		if (got != cases[i].want)
			print_error("filter '%s' topic '%s': want %d got %d\n", cases[i].filter,
				    cases[i].topic, cases[i].want, got);
		assert_int_equal(got, cases[i].want);
	}
}

static void filter_validation(void **state)
{
	static const char *good[] = {"#",   "+",    "a/+/b", "+/+",   "/",
				     "a/#", "%c/#", "a b/c", "$SYS/#"};
	static const char *bad[] = {"", "a#", "a/#/b", "a+", "+a", "a/b+", "##", "#/", "++"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(vs_acl_filter_valid(good[i], strlen(good[i])), 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vs_acl_filter_valid(bad[i], strlen(bad[i])), 0);
	assert_int_equal(vs_acl_filter_valid("a\0b", 3), 0);
}

static void malformed_lines_fail_with_file_and_line(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"topic\n", "t.acl:1: 'topic' needs a topic"},
	    {"# c\npattern   \n", "t.acl:2: 'pattern' needs a topic"},
	    {"topic reed a/b\n", "t.acl:1: unknown access 'reed' (read, write, readwrite or deny)"},
	    {"topic READ a/b\n", "t.acl:1: unknown access 'READ' (read, write, readwrite or deny)"},
	    {"topic my topic\n", "t.acl:1: unknown access 'my' (read, write, readwrite or deny)"},
	    {"topic read a/#/b\n", "t.acl:1: invalid topic filter 'a/#/b'"},
	    {"\n\n  topic read a+\n", "t.acl:3: invalid topic filter 'a+'"},
	    {"pattern write %c#\n", "t.acl:1: invalid topic filter '%c#'"},
	    {"topic a/b\nuser\n", "t.acl:2: 'user' needs a name"},
	    {"user   \t\n", "t.acl:1: 'user' needs a name"},
	    {"users bob\n", "t.acl:1: unknown keyword 'users' (expected topic, pattern or user)"},
	    {"Topic a\n", "t.acl:1: unknown keyword 'Topic' (expected topic, pattern or user)"},
	    {"topic a\r\nfoo\r\n",
	     "t.acl:2: unknown keyword 'foo' (expected topic, pattern or user)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_acl *acl = parse(cases[i].text);
		if (acl || strcmp(err, cases[i].want))
			print_error("case %zu:\nwant: %s\ngot:  %s\n", i, cases[i].want, err);
		assert_null(acl);
		assert_string_equal(err, cases[i].want);
	}
	assert_null(parse_n("topic a\nuser b\0c\n", 16));
	assert_string_equal(err, "t.acl:2: NUL byte in line");
}

static void mosquitto_parsing_quirks(void **state)
{
	/* `topic read` alone: the topic is "read", readwrite (Mosquitto does the same) */
	struct vs_acl *acl = parse("topic read\n");
	assert_non_null(acl);
	assert_int_equal(vs_acl_check(acl, "c", NULL, "read", 4, W), 1);
	vs_acl_free(acl);

	/* a topic with spaces after an access word; blanks around it trimmed; tabs separate */
	acl = parse("topic read   my topic  \n\ttopic\twrite\tx/y\r\n# comment\n  # comment\n\n");
	assert_non_null(acl);
	assert_int_equal(vs_acl_count(acl), 2);
	assert_int_equal(vs_acl_check(acl, "c", NULL, "my topic", 8, R), 1);
	assert_int_equal(vs_acl_check(acl, "c", NULL, "my topic", 8, W), 0);
	assert_int_equal(vs_acl_check(acl, "c", NULL, "x/y", 3, W), 1);
	vs_acl_free(acl);

	/* a username is the rest of the line */
	acl = parse("user  alice smith \ntopic a");
	assert_non_null(acl);
	assert_int_equal(vs_acl_check(acl, "c", "alice smith", "a", 1, R), 1);
	assert_int_equal(vs_acl_check(acl, "c", "alice", "a", 1, R), 0);
	vs_acl_free(acl);
}

static const char table_acl[] =
    "# anonymous clients\n"
    "topic read public/#\n"
    "topic deny public/secret\n"
    "topic write anon/in\n"
    "\n"
    "user alice\n"
    "topic readwrite alice/#\n"
    "topic deny alice/private/#\n"
    "topic read $SYS/#\n"
    "topic read shared/+/status\n"
    "pattern readwrite both/%u/%c\n" /* patterns apply to all, wherever they are */
    "\n"
    "user bob\n"
    "topic #\n"
    "\n"
    "user alice\n" /* a second section for the same user appends */
    "topic write extra/alice\n"
    "\n"
    "pattern read devices/%c/#\n"
    "pattern write users/%u/out\n"
    "pattern deny devices/%c/locked\n";

static void decisions_follow_mosquitto(void **state)
{
	static const struct {
		const char *cid, *user, *topic;
		int access, want;
	} rows[] = {
	    /* anonymous: their own rules, then patterns */
	    {"c1", NULL, "public/x", R, 1},
	    {"c1", NULL, "public", R, 1},
	    {"c1", NULL, "public/secret", R, 0}, /* deny first */
	    {"c1", NULL, "public/x", W, 0},	 /* read-only */
	    {"c1", NULL, "anon/in", W, 1},
	    {"c1", NULL, "anon/in", R, 0},
	    {"c1", NULL, "devices/c1/temp", R, 1},
	    {"c1", NULL, "devices/c1", R, 1},
	    {"c1", NULL, "devices/c2/temp", R, 0},
	    {"c1", NULL, "devices/c1/temp", W, 0},
	    {"c1", NULL, "devices/c1/locked", R, 0}, /* pattern deny before pattern grant */
	    {"c1", NULL, "users/c1/out", W, 0},	     /* %u never applies to anonymous */
	    {"c1", NULL, "both//c1", W, 0},
	    {"c1", NULL, "$SYS/broker/uptime", R, 0},
	    /* alice: her sections only, not the anonymous rules */
	    {"c1", "alice", "alice/x", R, 1},
	    {"c1", "alice", "alice/x", W, 1},
	    {"c1", "alice", "alice", W, 1},
	    {"c1", "alice", "alice/private/x", R, 0},
	    {"c1", "alice", "alice/private", R, 0},
	    {"c1", "alice", "extra/alice", W, 1},
	    {"c1", "alice", "extra/alice", R, 0},
	    {"c1", "alice", "$SYS/broker/uptime", R, 1},
	    {"c1", "alice", "$SYS/broker/uptime", W, 0},
	    {"c1", "alice", "public/x", R, 0},
	    {"c1", "alice", "shared/a/status", R, 1},
	    {"c1", "alice", "shared/a/b/status", R, 0},
	    {"c1", "alice", "users/alice/out", W, 1},
	    {"c1", "alice", "users/bob/out", W, 0},
	    {"c1", "alice", "devices/c1/x", R, 1},
	    {"c1", "alice", "both/alice/c1", R, 1},
	    {"c1", "alice", "both/alice/c2", R, 0},
	    {"c1", "ALICE", "alice/x", R, 0}, /* usernames are case-sensitive */
	    /* bob: '#' is everything but '$' topics; his own grant is decided before the
	     * pattern deny (Mosquitto's order) */
	    {"c1", "bob", "anything/at/all", R, 1},
	    {"c1", "bob", "a", W, 1},
	    {"c1", "bob", "$SYS/x", R, 0},
	    {"c1", "bob", "devices/c1/locked", R, 1},
	    /* a username without a section: patterns only */
	    {"k", "carl", "devices/k/a", R, 1},
	    {"k", "carl", "public/x", R, 0},
	    {"k", "carl", "users/carl/out", W, 1},
	    {"k", "carl", "devices/k/locked", R, 0},
	    /* ids that would widen a pattern get no pattern at all */
	    {"a+b", NULL, "devices/a+b/x", R, 0},
	    {"a#", NULL, "devices/a#", R, 0},
	    {"a+b", NULL, "public/x", R, 1}, /* their own rules still apply */
	    {"c", "x#", "users/x#/out", W, 0},
	    {"c", "x+", "devices/c/x", R, 0},
	    {"+", NULL, "devices/zz/x", R, 0}, /* "devices/+/#" would match everyone's */
	    {"c", "+", "users/zz/out", W, 0},
	    /* '/' in a client id spans levels, as in Mosquitto */
	    {"a/b", NULL, "devices/a/b/x", R, 1},
	    /* no client id: no patterns */
	    {NULL, NULL, "devices//x", R, 0},
	    {NULL, NULL, "public/x", R, 1},
	    /* an empty client id substitutes as empty */
	    {"", NULL, "devices//x", R, 1},
	    /* Mosquitto 2.0's acl_file does not restrict SUBSCRIBE */
	    {"c1", NULL, "nothing/#", S, 1},
	    {"c1", "alice", "alice/private/#", S, 1},
	    /* empty topic */
	    {"c1", "bob", "", R, 0},
	};
	struct vs_acl *acl = parse(table_acl);
	if (!acl)
		print_error("%s\n", err);
	assert_non_null(acl);
	assert_int_equal(vs_acl_count(acl), 13);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t n = strlen(rows[i].topic);
		uint8_t *g = guard_copy(rows[i].topic, n);
		int got = vs_acl_check(acl, rows[i].cid, rows[i].user, (const char *)g, n,
				       rows[i].access);
		guard_free(g, n);
		if (got != rows[i].want)
			print_error(
			    "row %zu: cid %s user %s topic '%s' access %d: want %d got %d\n", i,
			    rows[i].cid ? rows[i].cid : "(null)",
			    rows[i].user ? rows[i].user : "(null)", rows[i].topic, rows[i].access,
			    rows[i].want, got);
		assert_int_equal(got, rows[i].want);
	}
	vs_acl_free(acl);
}

static void empty_acl_denies_everything_but_subscribe(void **state)
{
	struct vs_acl *acl = parse("# nothing\n\n");
	assert_non_null(acl);
	assert_int_equal(vs_acl_count(acl), 0);
	assert_int_equal(vs_acl_check(acl, "c", NULL, "a", 1, R), 0);
	assert_int_equal(vs_acl_check(acl, "c", "u", "a", 1, W), 0);
	assert_int_equal(vs_acl_check(acl, "c", "u", "a", 1, S), 1);
	vs_acl_free(acl);
	vs_acl_free(NULL);
}

static void later_deny_still_wins_in_a_list(void **state)
{
	struct vs_acl *acl = parse("user u\ntopic a/#\ntopic read b\ntopic deny a/x\n"
				   "pattern a/%c\npattern deny a/%c\n");
	assert_non_null(acl);
	assert_int_equal(vs_acl_check(acl, "c", "u", "a/x", 3, R), 0);
	assert_int_equal(vs_acl_check(acl, "c", "u", "a/y", 3, R), 1);
	assert_int_equal(vs_acl_check(acl, "c", "v", "a/c", 3, R), 0);
	vs_acl_free(acl);
}

static void substitution_edge_cases(void **state)
{
	/* %c anywhere in a level (Mosquitto substitutes it there too), %% and %x stay literal */
	struct vs_acl *acl =
	    parse("pattern read pre%c/x\npattern read %%c/y\npattern read %x/%c\n");
	assert_non_null(acl);
	assert_int_equal(vs_acl_check(acl, "id", NULL, "preid/x", 7, R), 1);
	assert_int_equal(vs_acl_check(acl, "id", NULL, "%id/y", 5, R), 1);
	assert_int_equal(vs_acl_check(acl, "id", NULL, "%x/id", 5, R), 1);
	assert_int_equal(vs_acl_check(acl, "id", NULL, "pre%c/x", 7, R), 0);
	vs_acl_free(acl);

	/* a '$' client id makes a '$' filter: still matched only against '$' topics */
	acl = parse("pattern read %c/#\n");
	assert_int_equal(vs_acl_check(acl, "$x", NULL, "$x/a", 4, R), 1);
	assert_int_equal(vs_acl_check(acl, "x", NULL, "$x/a", 4, R), 0);
	vs_acl_free(acl);
}

static void load_reads_a_file_and_names_it_in_errors(void **state)
{
	char path[] = "/tmp/vs_test_acl_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs(table_acl, f);
	fclose(f);
	struct vs_acl *acl = vs_acl_load(path, err, sizeof(err));
	assert_non_null(acl);
	assert_int_equal(vs_acl_check(acl, "c1", "alice", "alice/x", 7, W), 1);
	vs_acl_free(acl);

	f = fopen(path, "a");
	fputs("topic read a/#/b\n", f);
	fclose(f);
	assert_null(vs_acl_load(path, err, sizeof(err)));
	char want[600];
	snprintf(want, sizeof(want), "%s:22: invalid topic filter 'a/#/b'", path);
	assert_string_equal(err, want);
	unlink(path);
	assert_null(vs_acl_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(matcher_follows_mqtt_wildcards),
	    cmocka_unit_test(filter_validation),
	    cmocka_unit_test(malformed_lines_fail_with_file_and_line),
	    cmocka_unit_test(mosquitto_parsing_quirks),
	    cmocka_unit_test(decisions_follow_mosquitto),
	    cmocka_unit_test(empty_acl_denies_everything_but_subscribe),
	    cmocka_unit_test(later_deny_still_wins_in_a_list),
	    cmocka_unit_test(substitution_edge_cases),
	    cmocka_unit_test(load_reads_a_file_and_names_it_in_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
