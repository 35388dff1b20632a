/*
 * The MQTT-SN predefined-topics parser (sn/sn.h): good files (comments, blank lines, CRLF,
 * blanks around and inside topics), every refusal with its "line N: ..." message, files by name.
 */
#include "sn_util.h"

/* ---- Predefined topics ------------------------------------------------------------------- */

static int parse(struct vs_sn_topics *t, const char *text, char *err, size_t errlen)
{
	return vs_sn_topics_parse(t, text, strlen(text), err, errlen);
}

static void expect_topic(const struct vs_sn_topics *t, uint16_t id, const char *name)
{
	const char *got = vs_sn_topics_name(t, id);
	if (!got || strcmp(got, name) != 0)
		fail_msg("id %u: '%s', expected '%s'", id, got ? got : "(none)", name);
	assert_int_equal(vs_sn_topics_id(t, (const uint8_t *)name, strlen(name)), id);
}

static void topics_good_file(void **state)
{
	static const char text[] = "# predefined topics\n"
				   "\n"
				   "1 sensors/temperature\n"
				   "   # an indented comment\n"
				   "2\tsensors/humidity   \r\n"
				   "  \t \r\n"
				   "  300   living room/lamp one \t\n"
				   "65534 last\r\n"
				   "00007 leading/zeros\n"
				   "8 $SYS/x\n"
				   "9 \xc3\xa9t\xc3\xa9\n"
				   "10 no/newline/at/end";
	struct vs_sn_topics t;
	char err[128] = "";

	assert_int_equal(parse(&t, text, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(t.count, 8);
	expect_topic(&t, 1, "sensors/temperature");
	expect_topic(&t, 2, "sensors/humidity");
	expect_topic(&t, 300, "living room/lamp one");
	expect_topic(&t, 65534, "last");
	expect_topic(&t, 7, "leading/zeros");
	expect_topic(&t, 8, "$SYS/x");
	expect_topic(&t, 9, "\xc3\xa9t\xc3\xa9");
	expect_topic(&t, 10, "no/newline/at/end");
	/* unknown both ways; the trimmed blanks are not part of the topic */
	assert_null(vs_sn_topics_name(&t, 3));
	assert_null(vs_sn_topics_name(&t, 0));
	assert_null(vs_sn_topics_name(&t, 65535));
	assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"last ", 5), 0);
	assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"sensors", 7), 0);
	assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"living room/lamp one \t", 22), 0);
	vs_sn_topics_fini(&t);
	assert_int_equal(t.count, 0);
	vs_sn_topics_fini(&t); /* twice is harmless */
}

static void topics_empty_files(void **state)
{
	static const char *texts[] = {"", "\n", "\r\n\r\n", "# only\n#comments", "   \t"};
	for (size_t i = 0; i < N(texts); i++) {
		struct vs_sn_topics t;
		char err[64] = "";
		assert_int_equal(parse(&t, texts[i], err, sizeof(err)), 0);
		assert_int_equal(t.count, 0);
		assert_null(vs_sn_topics_name(&t, 1));
		assert_int_equal(vs_sn_topics_id(&t, (const uint8_t *)"a", 1), 0);
		vs_sn_topics_fini(&t);
	}
	/* no table at all (a listener without mqttsn_predefined_topics) */
	assert_null(vs_sn_topics_name(NULL, 1));
	assert_int_equal(vs_sn_topics_id(NULL, (const uint8_t *)"a", 1), 0);
}

static void topics_errors_name_their_line(void **state)
{
#define EXPECTED "expected \"ID TOPIC\" (a topic id, a space, a topic)"
#define RANGE	 "topic id must be 1..65534"
#define INVALID	 "not a valid topic name (no wildcards, UTF-8)"
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *err;
	} cases[] = {
	    {"0 zero", 0, "line 1: " RANGE},
	    {"1 a\n65535 reserved", 0, "line 2: " RANGE},
	    {"99999 big", 0, "line 1: " RANGE},
	    {"1000000 bigger", 0, "line 1: " RANGE},
	    {"184467440737095516160 huge", 0, "line 1: " RANGE},
	    {"abc topic", 0, "line 1: " EXPECTED},
	    {"# c\n\n-1 minus", 0, "line 3: " EXPECTED},
	    {"12x topic", 0, "line 1: " EXPECTED},
	    {"0x10 hex", 0, "line 1: " EXPECTED},
	    {"1 a\n5", 0, "line 2: " EXPECTED},
	    {"5   \r\n", 0, "line 1: " EXPECTED},
	    {"\n\n\n5\t", 0, "line 4: " EXPECTED},
	    {"topic", 0, "line 1: " EXPECTED},
	    {"3 a/+/b", 0, "line 1: " INVALID},
	    {"4 a/#", 0, "line 1: " INVALID},
	    {"4 #", 0, "line 1: " INVALID},
	    {"4 bad\xffutf8", 0, "line 1: " INVALID},
	    {"1 a\r\n2 b\r\n1 c\r\n", 0, "line 3: topic id defined twice"},
	    {"1 a\n2 b\n# x\n3 a\n", 0, "line 4: topic defined twice"},
	    {"1 a\n2 b\0c\n", 9, "line 2: NUL byte"},
	    {"\0", 1, "line 1: NUL byte"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct vs_sn_topics t;
		char err[128] = "";
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		int rc = vs_sn_topics_parse(&t, cases[i].text, len, err, sizeof(err));
		if (rc != VS_ECONF || strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: rc %d '%s', expected '%s'", i, rc, err, cases[i].err);
		/* on failure t holds nothing */
		assert_int_equal(t.count, 0);
		assert_null(t.by_id.slots);
		assert_null(t.by_name.slots);
		vs_sn_topics_fini(&t);
	}
	/* a short error buffer is cut, not overrun */
	struct vs_sn_topics t;
	char small[8];
	assert_int_equal(parse(&t, "0 x", small, sizeof(small)), VS_ECONF);
	assert_string_equal(small, "line 1:");
#undef EXPECTED
#undef RANGE
#undef INVALID
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void topics_load_files(void **state)
{
	char path[] = "/tmp/vs_test_sn_XXXXXX";
	int fd = mkstemp(path);
	struct vs_sn_topics t;
	char err[256], want[256];

	assert_true(fd >= 0);
	close(fd);
	write_file(path, "# gateway topics\r\n1 a/b\r\n2 c d\r\n");
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), 0);
	assert_int_equal(t.count, 2);
	expect_topic(&t, 1, "a/b");
	expect_topic(&t, 2, "c d");
	vs_sn_topics_fini(&t);

	/* "line N: what" becomes "FILE:N: what" */
	write_file(path, "1 a\n\n3 x/+\n");
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), VS_ECONF);
	snprintf(want, sizeof(want), "%s:3: not a valid topic name (no wildcards, UTF-8)", path);
	assert_string_equal(err, want);
	assert_int_equal(t.count, 0);

	write_file(path, "");
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), 0);
	assert_int_equal(t.count, 0);
	vs_sn_topics_fini(&t);

	/* a file larger than the first read buffer (4 KiB) */
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	for (int i = 1; i <= 2000; i++)
		fprintf(f, "%d topic/number/%d\n", i, i);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), 0);
	assert_int_equal(t.count, 2000);
	expect_topic(&t, 1, "topic/number/1");
	expect_topic(&t, 1999, "topic/number/1999");
	vs_sn_topics_fini(&t);

	unlink(path);
	assert_int_equal(vs_sn_topics_load(&t, path, err, sizeof(err)), VS_ECONF);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_string_equal(err, want);
	assert_int_equal(t.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(topics_good_file),
	    cmocka_unit_test(topics_empty_files),
	    cmocka_unit_test(topics_errors_name_their_line),
	    cmocka_unit_test(topics_load_files),
	};
	return cmocka_run_group_tests_name("sn topics", tests, NULL, NULL);
}
