/*
 * libFuzzer target: the MQTT-SN predefined-topics parser (vs_sn_topics_parse, sn/sn.h). The
 * input is a whole file's text.
 *
 * Any byte string must parse, or fail with VS_ECONF and a "line N: what" message whose N is a
 * line of the input, leaving nothing to free. A parsed table must keep its promises: `count`
 * entries both ways; every id is 1..65534 and its topic a valid topic name (no wildcards,
 * UTF-8, no NUL, no surrounding blanks) that maps back to the id; every topic's id maps back
 * to it. Parsing is deterministic: twice gives the same answer. Seeds in
 * tests/fuzz/corpus/sn_topics/, dictionary in dict/sn_topics.dict.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "sn/sn.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* The error names a line the input has: "line N: " with 1 <= N <= lines. */
static void check_error(const char *err, const uint8_t *data, size_t size)
{
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	CHECK(strncmp(err, "line ", 5) == 0);
	char *end;
	unsigned long n = strtoul(err + 5, &end, 10);
	CHECK(end != err + 5 && n >= 1 && n <= lines);
	CHECK(strncmp(end, ": ", 2) == 0 && end[2] != '\0');
}

static void check_table(const struct vs_sn_topics *t)
{
	size_t i = 0, n = 0, klen;
	const char *key;
	void *val;

	CHECK(t->by_id.count == t->count && t->by_name.count == t->count);
	while (vs_map_next(&t->by_id, &i, &key, &klen, &val)) {
		CHECK(klen == 2);
		uint16_t id = (uint16_t)((uint8_t)key[0] << 8 | (uint8_t)key[1]);
		const char *name = val;
		size_t len = strlen(name);
		CHECK(id >= 1 && id <= 65534);
		CHECK(len > 0 && !blank(name[0]) && !blank(name[len - 1]));
		CHECK(vs_topic_name_valid((const uint8_t *)name, len));
		CHECK(vs_sn_topics_name(t, id) == name);
		CHECK(vs_sn_topics_id(t, (const uint8_t *)name, len) == id);
		n++;
	}
	CHECK(n == t->count);
	i = n = 0;
	while (vs_map_next(&t->by_name, &i, &key, &klen, &val)) {
		uint16_t id = (uint16_t)(uintptr_t)val;
		const char *name = vs_sn_topics_name(t, id);
		CHECK(name && strlen(name) == klen && memcmp(name, key, klen) == 0);
		n++;
	}
	CHECK(n == t->count);
	/* the reserved ids are never defined */
	CHECK(vs_sn_topics_name(t, 0) == NULL && vs_sn_topics_name(t, 65535) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vs_sn_topics t, u;
	char err[256] = "", err2[256] = "";

	int rc = vs_sn_topics_parse(&t, (const char *)data, size, err, sizeof(err));
	int rc2 = vs_sn_topics_parse(&u, (const char *)data, size, err2, sizeof(err2));
	CHECK(rc == rc2);
	if (rc != 0) {
		CHECK(rc == VS_ECONF);
		check_error(err, data, size);
		CHECK(strcmp(err, err2) == 0);
		/* on failure the table holds nothing */
		CHECK(t.count == 0 && t.by_id.slots == NULL && t.by_name.slots == NULL);
		vs_sn_topics_fini(&t);
		return 0;
	}
	check_table(&t);
	CHECK(u.count == t.count);
	vs_sn_topics_fini(&t);
	vs_sn_topics_fini(&u);
	return 0;
}
