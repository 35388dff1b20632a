/*
 * The cluster's subjects and frames (cluster/cluster.h): topics and filters as NATS subjects,
 * with every byte that NATS gives a meaning (".", " ", "*", ">") and empty levels surviving;
 * "x/#" also taking "x" [MQTT-4.7.1-2]; frames that round-trip, and every malformed one refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/error.h"
#include "cluster/cluster.h"
#include "guard.h"

static void topic_is(const char *topic, const char *want)
{
	char out[256];
	ssize_t n =
	    vs_cluster_topic_subject((const uint8_t *)topic, strlen(topic), out, sizeof(out));
	if (n != (ssize_t)strlen(want) || strcmp(out, want) != 0)
		fail_msg("'%s': got '%s', want '%s'", topic, n >= 0 ? out : "(error)", want);
}

static void topics_become_subjects(void **state)
{
	topic_is("a/b/c", "vs.m.a.b.c");
	topic_is("home/living-room/temp_1", "vs.m.home.living-room.temp_1");
	topic_is("a.b", "vs.m.a%2Eb"); /* a dot is not a level */
	topic_is("with space/x", "vs.m.with%20space.x");
	topic_is("*/>", "vs.m.%2A.%3E"); /* not wildcards in NATS either */
	topic_is("/", "vs.m.%.%");	 /* two empty levels */
	topic_is("a//b/", "vs.m.a.%.b.%");
	topic_is("100%", "vs.m.100%25"); /* '%' itself is escaped */
	topic_is("$SYS/x", "vs.m.%24SYS.x");
	topic_is("\xc3\xa4", "vs.m.%C3%A4"); /* UTF-8, byte by byte */
	/* Distinct topics, distinct subjects. */
	char a[64], b[64];
	vs_cluster_topic_subject((const uint8_t *)"a%2E", 4, a, sizeof(a));
	vs_cluster_topic_subject((const uint8_t *)"a.", 2, b, sizeof(b));
	assert_string_not_equal(a, b);
}

static void filter_is(const char *filter, int n, const char *want_a, const char *want_b)
{
	char a[256], b[256];
	int got =
	    vs_cluster_filter_subjects((const uint8_t *)filter, strlen(filter), a, b, sizeof(a));
	assert_int_equal(got, n);
	assert_string_equal(a, want_a);
	if (n == 2)
		assert_string_equal(b, want_b);
}

static void filters_become_subjects(void **state)
{
	filter_is("a/b", 1, "vs.m.a.b", NULL);
	filter_is("a/+/c", 1, "vs.m.a.*.c", NULL);
	filter_is("+", 1, "vs.m.*", NULL);
	filter_is("#", 1, "vs.m.>", NULL);
	filter_is("a/#", 2, "vs.m.a.>", "vs.m.a");
	filter_is("+/#", 2, "vs.m.*.>", "vs.m.*");
	filter_is("a b/+/#", 2, "vs.m.a%20b.*.>", "vs.m.a%20b.*");
	filter_is("a//#", 2, "vs.m.a.%.>", "vs.m.a.%");
	/* '+' and '#' inside a level are not wildcards [MQTT-4.7.1-2/3] (the filter would be
	 * refused before it gets here; the mapping is still literal). */
	filter_is("a+", 1, "vs.m.a%2B", NULL);
}

static void too_long_is_refused(void **state)
{
	char big[300];
	memset(big, 'x', sizeof(big));
	char out[128], b[128];
	assert_int_equal(vs_cluster_topic_subject((const uint8_t *)big, sizeof(big), out, 128),
			 VS_ETOOBIG);
	assert_int_equal(vs_cluster_filter_subjects((const uint8_t *)big, sizeof(big), out, b, 128),
			 VS_ETOOBIG);
	/* Exactly at the edge: "vs.m." + 122 bytes + NUL = 128. */
	assert_int_equal(vs_cluster_topic_subject((const uint8_t *)big, 122, out, 128), 127);
	assert_int_equal(vs_cluster_topic_subject((const uint8_t *)big, 123, out, 128), VS_ETOOBIG);
}

/* A frame: head + a PUBLISH of topic encoded by the codec, with a Topic Alias unless 0. */
static size_t make_frame_of(uint8_t *buf, size_t cap, const char *node, uint64_t seq, int qos,
			    const char *topic, uint16_t alias)
{
	ssize_t h = vs_cluster_frame_head(node, seq, buf, cap);
	assert_true(h > 0);
	struct vs_packet p = {.type = VS_PUBLISH};
	p.publish.qos = (uint8_t)qos;
	p.publish.retain = true;
	p.publish.packet_id = qos ? 1 : 0;
	p.publish.topic = (struct vs_buf){(const uint8_t *)topic, strlen(topic)};
	p.publish.payload = (struct vs_buf){(const uint8_t *)"hello", 5};
	if (alias) {
		p.publish.props.present |= 1ull << VS_PROP_TOPIC_ALIAS;
		p.publish.props.topic_alias = alias;
	}
	ssize_t n = vs_codec_encode(&p, VS_V5, buf + h, cap - (size_t)h);
	assert_true(n > 0);
	return (size_t)(h + n);
}

static size_t make_frame(uint8_t *buf, size_t cap, const char *node, uint64_t seq, int qos)
{
	return make_frame_of(buf, cap, node, seq, qos, "t/x", 0);
}

static void frames_round_trip(void **state)
{
	uint8_t buf[512];
	size_t len = make_frame(buf, sizeof(buf), "node-a", 0x0102030405060708ull, 1);
	uint8_t *g = guard_copy(buf, len);
	struct vs_cluster_frame f;
	const char *why;
	assert_int_equal(vs_cluster_frame_decode(g, len, &f, &why), 0);
	assert_int_equal(f.node.len, 6);
	assert_memory_equal(f.node.p, "node-a", 6);
	assert_true(f.seq == 0x0102030405060708ull);
	assert_int_equal(f.publish.qos, 1);
	assert_true(f.publish.retain);
	assert_int_equal(f.publish.topic.len, 3);
	assert_memory_equal(f.publish.payload.p, "hello", 5);
	assert_false(f.loop);
	guard_free(g, len);
	/* The loop flag rides in the version byte; another version is still refused. */
	buf[0] |= VS_CLUSTER_FRAME_LOOP;
	assert_int_equal(vs_cluster_frame_decode(buf, len, &f, &why), 0);
	assert_true(f.loop);
	assert_true(f.seq == 0x0102030405060708ull);
	buf[0] = VS_CLUSTER_FRAME_LOOP | 2;
	assert_int_equal(vs_cluster_frame_decode(buf, len, &f, &why), VS_EPROTO);
}

static void bad_frames_are_refused(void **state)
{
	uint8_t buf[512];
	size_t len = make_frame(buf, sizeof(buf), "n", 7, 0);
	struct vs_cluster_frame f;
	const char *why;
	/* Every truncation, from a guard page: never a read past the end. */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *g = guard_copy(buf, cut);
		assert_int_equal(vs_cluster_frame_decode(g, cut, &f, &why), VS_EPROTO);
		assert_true(why[0] != '\0');
		guard_free(g, cut);
	}
	uint8_t bad[512];
	memcpy(bad, buf, len);
	bad[0] = 2; /* another version */
	assert_int_equal(vs_cluster_frame_decode(bad, len, &f, &why), VS_EPROTO);
	memcpy(bad, buf, len);
	bad[1] = 0; /* no node id */
	assert_int_equal(vs_cluster_frame_decode(bad, len, &f, &why), VS_EPROTO);
	/* Trailing bytes after the PUBLISH. */
	memcpy(bad, buf, len);
	bad[len] = 0;
	assert_int_equal(vs_cluster_frame_decode(bad, len + 1, &f, &why), VS_EPROTO);
	/* Not a PUBLISH: a PINGREQ after the head. */
	memcpy(bad, buf, 2 + 1 + 8);
	bad[11] = 0xC0;
	bad[12] = 0;
	assert_int_equal(vs_cluster_frame_decode(bad, 13, &f, &why), VS_EPROTO);
	/* A node id longer than the limit cannot be written. */
	char node[300];
	memset(node, 'n', sizeof(node) - 1);
	node[sizeof(node) - 1] = '\0';
	assert_int_equal(vs_cluster_frame_head(node, 1, bad, sizeof(bad)), VS_ETOOBIG);
}

/* A frame from another node must name its topic in full: with an empty topic there is nothing
 * to route (and 5.0 would need an alias for it, 3.3.2.1). */
static void empty_topic_is_refused(void **state)
{
	uint8_t buf[512];
	struct vs_cluster_frame f;
	const char *why;
	/* Empty, with an alias: a valid PUBLISH from a client, not a valid frame. */
	size_t len = make_frame_of(buf, sizeof(buf), "n", 1, 1, "", 3);
	uint8_t *g = guard_copy(buf, len);
	assert_int_equal(vs_cluster_frame_decode(g, len, &f, &why), VS_EPROTO);
	assert_true(why[0] != '\0');
	guard_free(g, len);
	/* Empty, without an alias. */
	len = make_frame_of(buf, sizeof(buf), "n", 2, 0, "", 0);
	g = guard_copy(buf, len);
	assert_int_equal(vs_cluster_frame_decode(g, len, &f, &why), VS_EPROTO);
	guard_free(g, len);
}

/* A Topic Alias lives in one connection's alias table (3.3.2.3.4); no other node has the
 * sender's, so a frame carrying one is refused even with its full topic. */
static void topic_alias_is_refused(void **state)
{
	uint8_t buf[512];
	struct vs_cluster_frame f;
	const char *why;
	size_t len = make_frame_of(buf, sizeof(buf), "n", 1, 0, "t/x", 1);
	uint8_t *g = guard_copy(buf, len);
	assert_int_equal(vs_cluster_frame_decode(g, len, &f, &why), VS_EPROTO);
	assert_string_equal(why, "a Topic Alias");
	guard_free(g, len);
	/* The same frame without the alias is fine. */
	len = make_frame_of(buf, sizeof(buf), "n", 1, 0, "t/x", 0);
	assert_int_equal(vs_cluster_frame_decode(buf, len, &f, &why), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(topics_become_subjects), cmocka_unit_test(filters_become_subjects),
	    cmocka_unit_test(too_long_is_refused),    cmocka_unit_test(frames_round_trip),
	    cmocka_unit_test(bad_frames_are_refused), cmocka_unit_test(empty_topic_is_refused),
	    cmocka_unit_test(topic_alias_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
