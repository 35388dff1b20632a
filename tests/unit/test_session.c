/*
 * Unit tests of the session layer: messages (msg.h) and sessions (session.h).
 *
 * The message encoder is checked against the codec itself: whatever vs_msg_encode() writes, from
 * its cached form with the packet id and flags patched in or from a fresh per-subscriber
 * encoding, must be byte for byte what vs_codec_encode() writes for the same PUBLISH built by
 * hand, and must decode to the expected fields. Messages are created from decoded packets whose
 * input sits before a guard page that is unmapped right after, so a message that kept a view
 * into its input instead of copying would fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "codec_util.h"
#include "session/msg.h"
#include "session/registry.h"
#include "session/session.h"

static const struct vs_user_prop users2[] = {
    {BUF("k1"), BUF("v1")},
    {BUF("k1"), BUF("second value, same key: order and repeats are kept")},
};

static const struct vs_buf origin = {(const uint8_t *)"publisher-1", 11};

/* ---------------------------------------------------------------- helpers */

/* The forwardable 5.0 properties the test messages carry (users as a pair list). */
static void fwd_props(struct vs_props *pp, bool with_expiry, uint32_t expiry)
{
	memset(pp, 0, sizeof(*pp));
	pp->present = 1ull << VS_PROP_PAYLOAD_FORMAT | 1ull << VS_PROP_CONTENT_TYPE |
		      1ull << VS_PROP_RESPONSE_TOPIC | 1ull << VS_PROP_CORRELATION_DATA;
	pp->payload_format = 1;
	pp->content_type = BUF("application/json");
	pp->response_topic = BUF("reply/here");
	pp->correlation_data = (struct vs_buf){(const uint8_t *)"\x00\x01\xff", 3};
	pp->users = users2;
	pp->n_user = 2;
	if (with_expiry) {
		pp->present |= 1ull << VS_PROP_MESSAGE_EXPIRY;
		pp->message_expiry = expiry;
	}
}

/*
 * Encodes a 5.0 PUBLISH (with the forwardable properties, plus a topic alias and subscription
 * identifier that a message must not keep), decodes it from a guard page, makes a message of it
 * and unmaps the input.
 */
static struct vs_msg *msg_from_wire(const char *topic, const void *payload, size_t plen,
				    uint8_t qos, bool retain, bool with_expiry, uint32_t expiry,
				    int64_t now_ms)
{
	struct vs_packet p = {.type = VS_PUBLISH};
	static const uint32_t ids[] = {9};
	struct dec d;

	p.publish.qos = qos;
	p.publish.retain = retain;
	p.publish.packet_id = qos ? 77 : 0;
	p.publish.topic = (struct vs_buf){(const uint8_t *)topic, strlen(topic)};
	p.publish.payload = (struct vs_buf){payload, plen};
	fwd_props(&p.publish.props, with_expiry, expiry);
	p.publish.props.present |= 1ull << VS_PROP_TOPIC_ALIAS;
	p.publish.props.topic_alias = 5;
	p.publish.props.sub_ids = ids;
	p.publish.props.n_sub_ids = 1;
	ssize_t n = vs_codec_size(&p, VS_V5);
	assert_true(n > 0);
	uint8_t *buf = malloc((size_t)n);
	assert_int_equal(vs_codec_encode(&p, VS_V5, buf, (size_t)n), n);
	dec_run(&d, buf, (size_t)n, VS_V5, 0);
	assert_int_equal(d.n, n);
	free(buf);
	struct vs_msg *m = vs_msg_new(&d.pkt.publish.topic, &d.pkt.publish, &origin, now_ms);
	assert_non_null(m);
	dec_done(&d); /* the input is gone: m must hold copies */
	return m;
}

/* What a subscriber with delivery dl must receive for message m, encoded by the codec. */
static ssize_t reference_encode(const struct vs_msg *m, const struct vs_delivery *dl, bool props,
				bool with_expiry, uint32_t remaining, uint8_t *out, size_t cap)
{
	struct vs_packet p = {.type = VS_PUBLISH};

	p.publish.qos = dl->qos;
	p.publish.dup = dl->dup;
	p.publish.retain = dl->retain;
	p.publish.packet_id = dl->qos ? dl->packet_id : 0;
	p.publish.topic = m->topic;
	if (dl->alias_only)
		p.publish.topic.len = 0;
	p.publish.payload = m->payload;
	if (props)
		fwd_props(&p.publish.props, with_expiry, remaining);
	if (dl->topic_alias) {
		p.publish.props.present |= 1ull << VS_PROP_TOPIC_ALIAS;
		p.publish.props.topic_alias = dl->topic_alias;
	}
	if (dl->n_sub_ids) {
		p.publish.props.sub_ids = dl->sub_ids;
		p.publish.props.n_sub_ids = dl->n_sub_ids;
	}
	return vs_codec_encode(&p, dl->version, out, cap);
}

/* Encodes m for dl, compares with the reference bytes, decodes and checks the header fields. */
static void check_delivery(struct vs_msg *m, const struct vs_delivery *dl, int64_t now_ms,
			   bool props, bool with_expiry, uint32_t remaining)
{
	static uint8_t got[300000], want[300000];
	struct dec d;

	ssize_t sz = vs_msg_encoded_size(m, dl, now_ms);
	ssize_t n = vs_msg_encode(m, dl, now_ms, got, sizeof(got));
	ssize_t w = reference_encode(m, dl, props, with_expiry, remaining, want, sizeof(want));
	assert_true(w > 0);
	assert_int_equal(sz, w);
	assert_int_equal(n, w);
	assert_memory_equal(got, want, (size_t)w);
	/* one byte short of room is refused */
	assert_int_equal(vs_msg_encode(m, dl, now_ms, got, (size_t)w - 1), VS_ETOOBIG);

	dec_run(&d, got, (size_t)n, dl->version, 0);
	assert_int_equal(d.n, n);
	const struct vs_publish *p = &d.pkt.publish;
	assert_int_equal(d.pkt.type, VS_PUBLISH);
	assert_int_equal(p->qos, dl->qos);
	assert_int_equal(p->dup, dl->dup);
	assert_int_equal(p->retain, dl->retain);
	if (dl->qos)
		assert_int_equal(p->packet_id, dl->packet_id);
	if (dl->alias_only)
		assert_int_equal(p->topic.len, 0);
	else
		assert_true(codec_buf_eq(p->topic, m->topic));
	assert_true(codec_buf_eq(p->payload, m->payload));
	if (dl->version == VS_V5 && props) {
		const struct vs_props *pp = &p->props;
		assert_int_equal(pp->payload_format, 1);
		assert_true(codec_buf_eq(pp->content_type, BUF("application/json")));
		assert_true(codec_buf_eq(pp->response_topic, BUF("reply/here")));
		assert_int_equal(pp->correlation_data.len, 3);
		assert_int_equal(pp->n_user, 2);
		struct vs_user_prop up;
		size_t pos = 0;
		assert_int_equal(vs_props_next_user(pp, &pos, &up), 1);
		assert_true(codec_buf_eq(up.val, users2[0].val));
		assert_int_equal(vs_props_next_user(pp, &pos, &up), 1);
		assert_true(codec_buf_eq(up.val, users2[1].val));
		assert_int_equal(!!(pp->present & (1ull << VS_PROP_MESSAGE_EXPIRY)), with_expiry);
		if (with_expiry)
			assert_int_equal(pp->message_expiry, remaining);
		assert_int_equal(!!(pp->present & (1ull << VS_PROP_TOPIC_ALIAS)),
				 dl->topic_alias != 0);
		if (dl->topic_alias)
			assert_int_equal(pp->topic_alias, dl->topic_alias);
		assert_int_equal(pp->n_sub_ids, dl->n_sub_ids);
		pos = 0;
		for (uint32_t i = 0; i < dl->n_sub_ids; i++) {
			uint32_t id;
			assert_int_equal(vs_props_next_sub_id(pp, &pos, &id), 1);
			assert_int_equal(id, dl->sub_ids[i]);
		}
	} else if (dl->version != VS_V5) {
		assert_int_equal(p->props.present, 0);
	}
	dec_done(&d);
}

/* ---------------------------------------------------------------- msg */

static void test_msg_make_plain(void **state)
{
	char topic[] = "a/b", payload[] = "data";
	struct vs_msg *m = vs_msg_make(topic, 3, payload, 4, 1, true, NULL, &origin, 1234);

	assert_non_null(m);
	/* the inputs are copied */
	memset(topic, 'x', 3);
	memset(payload, 'y', 4);
	assert_true(codec_buf_eq(m->topic, BUF("a/b")));
	assert_true(codec_buf_eq(m->payload, BUF("data")));
	assert_true(codec_buf_eq(m->origin, origin));
	assert_ptr_not_equal(m->origin.p, origin.p);
	assert_int_equal(m->qos, 1);
	assert_true(m->retain);
	assert_int_equal(m->created_ms, 1234);
	assert_int_equal(atomic_load(&m->refs), 1);
	assert_false(m->has_expiry);
	assert_false(m->has_payload_format);
	assert_null(m->content_type.p);
	assert_null(m->response_topic.p);
	assert_null(m->correlation_data.p);
	assert_int_equal(m->user_raw.len, 0);
	for (int i = 0; i < 4; i++)
		assert_null(atomic_load(&m->enc[i]));
	struct vs_props pp;
	vs_msg_props(m, &pp);
	assert_int_equal(pp.present, 0);
	assert_int_equal(pp.n_user, 0);
	vs_msg_unref(m);

	/* empty payload, no origin ($SYS, wills of anonymous clients) */
	m = vs_msg_make("$SYS/x", 6, NULL, 0, 0, false, NULL, NULL, 0);
	assert_non_null(m);
	assert_int_equal(m->payload.len, 0);
	assert_int_equal(m->origin.len, 0);
	assert_null(m->origin.p);
	vs_msg_unref(m);
	vs_msg_unref(NULL); /* harmless */
}

static void test_msg_new_copies_props(void **state)
{
	static const char payload[] = "{\"t\":21}";
	struct vs_msg *m = msg_from_wire("sensors/1/temp", payload, 8, 2, true, true, 60, 5000);
	struct vs_props pp;

	assert_true(codec_buf_eq(m->topic, BUF("sensors/1/temp")));
	assert_true(codec_buf_eq(m->payload, BUF("{\"t\":21}")));
	assert_int_equal(m->qos, 2);
	assert_true(m->retain);
	assert_true(m->has_expiry);
	assert_int_equal(m->expiry_interval, 60);
	assert_int_equal(m->created_ms, 5000);
	assert_true(codec_buf_eq(m->origin, origin));
	vs_msg_props(m, &pp);
	/* forwardable properties round-trip; topic alias and subscription id are not kept, and
	 * the expiry is the delivery's business (it is decremented) */
	assert_int_equal(pp.present, 1ull << VS_PROP_PAYLOAD_FORMAT | 1ull << VS_PROP_CONTENT_TYPE |
					 1ull << VS_PROP_RESPONSE_TOPIC |
					 1ull << VS_PROP_CORRELATION_DATA);
	assert_int_equal(pp.payload_format, 1);
	assert_true(codec_buf_eq(pp.content_type, BUF("application/json")));
	assert_true(codec_buf_eq(pp.response_topic, BUF("reply/here")));
	assert_true(
	    codec_buf_eq(pp.correlation_data, (struct vs_buf){(const uint8_t *)"\0\1\xff", 3}));
	assert_int_equal(pp.n_user, 2);
	assert_null(pp.users);
	assert_int_equal(pp.n_sub_ids, 0);
	/* the user properties are the encoded entries, in order: re-encode them and walk */
	struct vs_packet q = {.type = VS_PUBLISH};
	uint8_t out[512];
	struct dec d;
	q.publish.topic = BUF("t");
	q.publish.props = pp;
	ssize_t n = vs_codec_encode(&q, VS_V5, out, sizeof(out));
	assert_true(n > 0);
	dec_run(&d, out, (size_t)n, VS_V5, 0);
	assert_int_equal(d.n, n);
	struct vs_user_prop up;
	size_t pos = 0;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(vs_props_next_user(&d.pkt.publish.props, &pos, &up), 1);
		assert_true(codec_buf_eq(up.key, users2[i].key));
		assert_true(codec_buf_eq(up.val, users2[i].val));
	}
	assert_int_equal(vs_props_next_user(&d.pkt.publish.props, &pos, &up), 0);
	dec_done(&d);
	vs_msg_unref(m);
}

static void test_msg_empty_string_props(void **state)
{
	/* Content Type and Correlation Data present but empty stay present. */
	struct vs_packet p = {.type = VS_PUBLISH};
	uint8_t buf[128];
	struct dec d;
	struct vs_props pp;

	p.publish.topic = BUF("t");
	p.publish.props.present = 1ull << VS_PROP_CONTENT_TYPE | 1ull << VS_PROP_CORRELATION_DATA;
	p.publish.props.content_type = BUF("");
	p.publish.props.correlation_data = BUF("");
	ssize_t n = vs_codec_encode(&p, VS_V5, buf, sizeof(buf));
	assert_true(n > 0);
	dec_run(&d, buf, (size_t)n, VS_V5, 0);
	assert_int_equal(d.n, n);
	struct vs_msg *m = vs_msg_new(&d.pkt.publish.topic, &d.pkt.publish, NULL, 0);
	dec_done(&d);
	assert_non_null(m);
	vs_msg_props(m, &pp);
	assert_int_equal(pp.present,
			 1ull << VS_PROP_CONTENT_TYPE | 1ull << VS_PROP_CORRELATION_DATA);
	assert_int_equal(pp.content_type.len, 0);
	assert_int_equal(pp.correlation_data.len, 0);
	vs_msg_unref(m);
}

static void test_msg_refcount(void **state)
{
	struct vs_msg *m = vs_msg_make("t", 1, "p", 1, 0, false, NULL, NULL, 0);
	struct vs_delivery dl = {.version = VS_V311, .qos = 1, .packet_id = 3};
	uint8_t out[64];

	assert_ptr_equal(vs_msg_ref(m), m);
	vs_msg_ref(m);
	assert_int_equal(atomic_load(&m->refs), 3);
	/* fill a cache slot: freed with the message (ASan leak check) */
	assert_true(vs_msg_encode(m, &dl, 0, out, sizeof(out)) > 0);
	vs_msg_unref(m);
	vs_msg_unref(m);
	assert_int_equal(atomic_load(&m->refs), 1);
	vs_msg_unref(m);
}

static void test_msg_expiry(void **state)
{
	struct vs_props pp = {0};
	uint32_t left = 99;

	struct vs_msg *m = vs_msg_make("t", 1, NULL, 0, 0, false, NULL, NULL, 1000);
	assert_false(vs_msg_expired(m, 1000000000, &left));
	assert_int_equal(left, 0); /* no expiry: remaining is 0 (not forwarded) */
	assert_false(vs_msg_expired(m, 0, NULL));
	vs_msg_unref(m);

	pp.present = 1ull << VS_PROP_MESSAGE_EXPIRY;
	pp.message_expiry = 10;
	m = vs_msg_make("t", 1, NULL, 0, 0, false, &pp, NULL, 1000);
	assert_true(m->has_expiry);
	assert_false(vs_msg_expired(m, 1000, &left));
	assert_int_equal(left, 10);
	assert_false(vs_msg_expired(m, 1999, &left));
	assert_int_equal(left, 10); /* whole seconds waited are subtracted */
	assert_false(vs_msg_expired(m, 2000, &left));
	assert_int_equal(left, 9);
	assert_false(vs_msg_expired(m, 10999, &left));
	assert_int_equal(left, 1); /* never forwarded as 0 while alive */
	assert_true(vs_msg_expired(m, 11000, &left));
	assert_true(vs_msg_expired(m, 1000000, NULL));
	vs_msg_unref(m);

	/* an interval of 0 is expired at once */
	pp.message_expiry = 0;
	m = vs_msg_make("t", 1, NULL, 0, 0, false, &pp, NULL, 1000);
	assert_true(vs_msg_expired(m, 1000, &left));
	vs_msg_unref(m);

	/* the largest interval does not overflow */
	pp.message_expiry = UINT32_MAX;
	m = vs_msg_make("t", 1, NULL, 0, 0, false, &pp, NULL, 0);
	assert_false(vs_msg_expired(m, 5000, &left));
	assert_int_equal(left, UINT32_MAX - 5);
	vs_msg_unref(m);
}

static void test_msg_encode_cached(void **state)
{
	/* Every combination of version, QoS, DUP, RETAIN and packet id, in an order that makes
	 * the first fill of each cache slot use different flags than later patched copies. */
	static const uint16_t ids[] = {1, 2, 255, 256, 0x1234, 65535};
	static const uint8_t versions[] = {VS_V311, VS_V31, VS_V5};
	struct vs_msg *m = msg_from_wire("a/b/c", "payload bytes", 13, 2, false, false, 0, 0);

	for (int rep = 0; rep < 2; rep++) {
		for (size_t vi = 0; vi < 3; vi++) {
			for (int qos = 2; qos >= 0; qos--) {
				for (int flags = 3; flags >= 0; flags--) {
					for (size_t k = 0; k < 6; k++) {
						struct vs_delivery dl = {
						    .version = versions[vi],
						    .qos = (uint8_t)qos,
						    .dup = qos && (flags & 1),
						    .retain = (flags & 2) != 0,
						    .packet_id = ids[(k + (size_t)flags) % 6],
						};
						check_delivery(m, &dl, 0, true, false, 0);
						if (qos == 0)
							break;
					}
				}
			}
		}
	}
	/* 5.0 forms are cached (QoS 0 and QoS > 0); 3.x is encoded straight from the message,
	 * which costs less than a cached copy */
	for (int i = 0; i < 4; i++) {
		if (i < 2)
			assert_null(atomic_load(&m->enc[i]));
		else
			assert_non_null(atomic_load(&m->enc[i]));
	}
	vs_msg_unref(m);
}

static void test_msg_encode_large_payload(void **state)
{
	/* A remaining length of 3 and 4 bytes: the packet id offset must follow it. */
	static const size_t sizes[] = {127, 128, 16383, 16384, 200000};
	uint8_t *big = malloc(200000);

	for (size_t i = 0; i < 200000; i++)
		big[i] = (uint8_t)(i * 7);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct vs_msg *m = msg_from_wire("big", big, sizes[s], 1, false, false, 0, 0);
		for (int v = VS_V311; v <= VS_V5; v++) {
			struct vs_delivery dl = {.version = (uint8_t)v, .qos = 1, .packet_id = 1};
			check_delivery(m, &dl, 0, true, false, 0);
			dl.packet_id = 0xbeef;
			dl.qos = 2;
			dl.dup = true;
			check_delivery(m, &dl, 0, true, false, 0);
		}
		vs_msg_unref(m);
	}
	free(big);
}

static void test_msg_encode_expiry(void **state)
{
	/* 5.0 forwards the remaining interval [MQTT-3.3.2-6]: never cached; 3.1.1 has no
	 * properties, so it is. */
	struct vs_msg *m = msg_from_wire("t/x", "p", 1, 1, true, true, 60, 10000);
	struct vs_delivery dl = {.version = VS_V5, .qos = 1, .packet_id = 9};

	check_delivery(m, &dl, 10000, true, true, 60);
	check_delivery(m, &dl, 15500, true, true, 55);
	dl.qos = 0;
	check_delivery(m, &dl, 69999, true, true, 1);
	assert_null(atomic_load(&m->enc[2]));
	assert_null(atomic_load(&m->enc[3]));
	dl.version = VS_V311;
	dl.qos = 1;
	check_delivery(m, &dl, 20000, false, false, 0);
	assert_null(atomic_load(&m->enc[1])); /* 3.x is never cached */
	vs_msg_unref(m);
}

static void test_msg_encode_per_subscriber(void **state)
{
	/* Subscription identifiers and topic aliases are per subscriber: encoded fresh, never
	 * cached, and never leaking into the cached form used by the next subscriber. */
	static const uint32_t one[] = {42};
	static const uint32_t many[] = {1, 127, 128, 16384, VS_MAX_SUB_ID};
	struct vs_msg *m = msg_from_wire("home/kitchen/light", "on", 2, 1, false, false, 0, 0);
	struct vs_delivery dl = {.version = VS_V5, .qos = 1, .packet_id = 100};

	dl.n_sub_ids = 1;
	dl.sub_ids = one;
	check_delivery(m, &dl, 0, true, false, 0);
	dl.n_sub_ids = 5;
	dl.sub_ids = many;
	check_delivery(m, &dl, 0, true, false, 0);
	assert_null(atomic_load(&m->enc[3]));
	/* alias set, full topic (first use of the alias) */
	dl.n_sub_ids = 0;
	dl.sub_ids = NULL;
	dl.topic_alias = 7;
	check_delivery(m, &dl, 0, true, false, 0);
	/* alias only: empty topic */
	dl.alias_only = true;
	dl.qos = 2;
	dl.dup = true;
	check_delivery(m, &dl, 0, true, false, 0);
	/* both, QoS 0 */
	dl.qos = 0;
	dl.dup = false;
	dl.n_sub_ids = 1;
	dl.sub_ids = one;
	check_delivery(m, &dl, 0, true, false, 0);
	assert_null(atomic_load(&m->enc[2]));
	assert_null(atomic_load(&m->enc[3]));
	/* a plain subscriber afterwards gets the plain form, now cached */
	struct vs_delivery plain = {.version = VS_V5, .qos = 1, .packet_id = 101};
	check_delivery(m, &plain, 0, true, false, 0);
	assert_non_null(atomic_load(&m->enc[3]));
	/* and the per-subscriber path still works with the cache filled */
	check_delivery(m, &dl, 0, true, false, 0);
	vs_msg_unref(m);
}

#define FILL_ROUNDS 300

struct fill_arg {
	pthread_barrier_t *bar;
	struct vs_msg **msgs;
	uint8_t version;
	uint16_t packet_id;
	uint8_t (*out)[256];
	ssize_t *len;
};

static void *fill_thread(void *p)
{
	struct fill_arg *a = p;

	for (int r = 0; r < FILL_ROUNDS; r++) {
		struct vs_delivery dl = {
		    .version = a->version, .qos = 1, .packet_id = (uint16_t)(a->packet_id + r)};
		pthread_barrier_wait(a->bar);
		a->len[r] = vs_msg_encode(a->msgs[r], &dl, 0, a->out[r], sizeof(a->out[r]));
	}
	return NULL;
}

static void test_msg_concurrent_fill(void **state)
{
	/* Two workers encode the same fresh message at the same moment: both get correct bytes,
	 * one form wins the slot, the loser's copy is freed (ASan leak check). */
	static struct vs_msg *msgs[FILL_ROUNDS];
	static uint8_t out[2][FILL_ROUNDS][256];
	static ssize_t len[2][FILL_ROUNDS];
	pthread_barrier_t bar;
	pthread_t th[2];
	struct fill_arg args[2];

	for (int v = 0; v < 2; v++) {
		uint8_t version = v ? VS_V5 : VS_V311;
		for (int r = 0; r < FILL_ROUNDS; r++)
			msgs[r] = msg_from_wire("race/topic", "xyz", 3, 1, false, false, 0, 0);
		pthread_barrier_init(&bar, NULL, 2);
		for (int t = 0; t < 2; t++) {
			args[t] = (struct fill_arg){
			    &bar, msgs, version, (uint16_t)(1000 * (t + 1)), out[t], len[t]};
			assert_int_equal(pthread_create(&th[t], NULL, fill_thread, &args[t]), 0);
		}
		for (int t = 0; t < 2; t++)
			pthread_join(th[t], NULL);
		pthread_barrier_destroy(&bar);
		for (int r = 0; r < FILL_ROUNDS; r++) {
			for (int t = 0; t < 2; t++) {
				struct vs_delivery dl = {.version = version,
							 .qos = 1,
							 .packet_id =
							     (uint16_t)(1000 * (t + 1) + r)};
				uint8_t want[256];
				ssize_t w = reference_encode(msgs[r], &dl, true, false, 0, want,
							     sizeof(want));
				assert_int_equal(len[t][r], w);
				assert_memory_equal(out[t][r], want, (size_t)w);
			}
			vs_msg_unref(msgs[r]);
		}
	}
}

/* Messages go back to the thread that made them to be freed (msg.h, homes). */
struct home_arg {
	struct vs_msg **msgs;
	int n;
};

static void *let_go_thread(void *p)
{
	struct home_arg *a = p;
	for (int i = 0; i < a->n; i++)
		vs_msg_unref(a->msgs[i]);
	return NULL;
}

static void let_go_elsewhere(struct vs_msg **msgs, int n)
{
	pthread_t th;
	struct home_arg a = {msgs, n};
	assert_int_equal(pthread_create(&th, NULL, let_go_thread, &a), 0);
	pthread_join(th, NULL);
}

static void test_msg_home(void **state)
{
	struct vs_msg *msgs[3];

	/* Without a home, a message is freed where its last reference goes. */
	msgs[0] = vs_msg_make("t", 1, "p", 1, 1, false, NULL, NULL, 0);
	assert_int_equal(msgs[0]->home, 0);
	let_go_elsewhere(msgs, 1);
	assert_int_equal(vs_msg_home_collect(), 0);

	vs_msg_home_enter();
	for (int i = 0; i < 3; i++)
		msgs[i] = vs_msg_make("t", 1, "p", 1, 1, false, NULL, NULL, 0);
	assert_int_not_equal(msgs[0]->home, 0);
	vs_msg_unref(msgs[2]); /* let go of at home: freed at once */
	assert_int_equal(vs_msg_home_collect(), 0);
	let_go_elsewhere(msgs, 2); /* elsewhere: they come back, and are freed here */
	assert_int_equal(vs_msg_home_collect(), 2);
	assert_int_equal(vs_msg_home_collect(), 0);

	/* A home its thread left is not collected: a message of it is freed where it is let go
	 * of (ASan: neither leaked nor freed twice). */
	msgs[0] = vs_msg_make("t", 1, "p", 1, 1, false, NULL, NULL, 0);
	vs_msg_home_leave();
	let_go_elsewhere(msgs, 1);
	vs_msg_homes_fini();
	vs_msg_home_enter();
	assert_int_equal(vs_msg_home_collect(), 0);
	vs_msg_home_leave();
}

/* ---------------------------------------------------------------- session */

static void test_session_new(void **state)
{
	struct vs_session *s = vs_session_new("client\0id", 9);

	assert_non_null(s);
	assert_int_equal(s->id_len, 9);
	assert_memory_equal(s->client_id, "client\0id", 9);
	assert_int_equal(s->client_id[9], '\0');
	assert_int_equal(atomic_load(&s->refs), 1);
	assert_int_equal(s->next_id, 1);
	assert_int_equal(s->queue.count, 0);
	assert_int_equal(s->inflight.count, 0);
	assert_int_equal(vs_session_n_subs(s), 0);
	assert_null(s->subs);
	assert_int_equal(s->n_in_qos2, 0);
	assert_null(s->will);
	/* the lock is usable */
	assert_int_equal(pthread_mutex_lock(&s->lock), 0);
	assert_int_equal(pthread_mutex_unlock(&s->lock), 0);
	vs_session_unref(s);

	s = vs_session_new("", 0); /* empty client id (5.0 assigned later, or 3.1.1 clean) */
	assert_non_null(s);
	assert_string_equal(s->client_id, "");
	vs_session_unref(s);
	vs_session_unref(NULL);
}

static struct vs_qentry entry(uint16_t id)
{
	return (struct vs_qentry){.packet_id = id, .qos = 1};
}

static void check_ring(struct vs_ring *r, const uint16_t *ids, uint32_t n)
{
	assert_int_equal(r->count, n);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(vs_ring_at(r, i)->packet_id, ids[i]);
}

static void test_ring_push_pop(void **state)
{
	struct vs_ring r = {0};
	struct vs_qentry e = entry(0), out;

	for (uint16_t i = 1; i <= 8; i++) {
		e.packet_id = i;
		assert_int_equal(vs_ring_push(&r, &e), 0);
	}
	assert_int_equal(r.cap, 8);
	for (uint16_t i = 1; i <= 5; i++) {
		vs_ring_pop(&r, &out);
		assert_int_equal(out.packet_id, i);
	}
	assert_int_equal(r.head, 5);
	/* wrap around: 6,7,8 at the end, 9..13 at the start */
	for (uint16_t i = 9; i <= 13; i++) {
		e.packet_id = i;
		assert_int_equal(vs_ring_push(&r, &e), 0);
	}
	assert_int_equal(r.cap, 8);
	const uint16_t w[] = {6, 7, 8, 9, 10, 11, 12, 13};
	check_ring(&r, w, 8);
	/* grow while wrapped: order kept */
	for (uint16_t i = 14; i <= 20; i++) {
		e.packet_id = i;
		assert_int_equal(vs_ring_push(&r, &e), 0);
	}
	assert_int_equal(r.cap, 16);
	for (uint16_t i = 6; i <= 20; i++) {
		vs_ring_pop(&r, &out);
		assert_int_equal(out.packet_id, i);
	}
	assert_int_equal(r.count, 0);
	assert_int_equal(r.head, 0); /* reset when empty */
	/* large growth */
	for (uint32_t i = 0; i < 5000; i++) {
		e.packet_id = (uint16_t)i;
		assert_int_equal(vs_ring_push(&r, &e), 0);
		if (i % 3 == 0) {
			vs_ring_pop(&r, &out);
		}
	}
	uint16_t expect = 0;
	while (r.count) {
		/* pops happened after pushes 0,3,6,...: the first 1667 pushed are gone */
		vs_ring_pop(&r, &out);
		assert_int_equal(out.packet_id, (uint16_t)(1667 + expect));
		expect++;
	}
	assert_int_equal(expect, 5000 - 1667);
	vs_ring_clear(&r);
	free(r.e);
}

static void test_ring_remove(void **state)
{
	struct vs_ring r = {0};
	struct vs_qentry e = entry(0), out;

	/* make a wrapped ring 5..12 in a cap-8 ring with head at 4 */
	for (uint16_t i = 1; i <= 8; i++) {
		e.packet_id = i;
		vs_ring_push(&r, &e);
	}
	for (int i = 0; i < 4; i++)
		vs_ring_pop(&r, &out);
	for (uint16_t i = 9; i <= 12; i++) {
		e.packet_id = i;
		vs_ring_push(&r, &e);
	}
	assert_int_equal(r.cap, 8);
	assert_int_equal(r.head, 4);
	vs_ring_remove(&r, 0); /* front */
	const uint16_t a[] = {6, 7, 8, 9, 10, 11, 12};
	check_ring(&r, a, 7);
	vs_ring_remove(&r, 2); /* middle, before the wrap point */
	const uint16_t b[] = {6, 7, 9, 10, 11, 12};
	check_ring(&r, b, 6);
	vs_ring_remove(&r, 1); /* shifts across the wrap */
	const uint16_t c[] = {6, 9, 10, 11, 12};
	check_ring(&r, c, 5);
	vs_ring_remove(&r, 4); /* last */
	const uint16_t d[] = {6, 9, 10, 11};
	check_ring(&r, d, 4);
	/* still a working queue */
	e.packet_id = 99;
	vs_ring_push(&r, &e);
	const uint16_t f[] = {6, 9, 10, 11, 99};
	check_ring(&r, f, 5);
	while (r.count)
		vs_ring_remove(&r, r.count - 1);
	vs_ring_clear(&r);
	free(r.e);
}

static void test_ring_clear_unrefs(void **state)
{
	struct vs_ring r = {0};
	struct vs_msg *m = vs_msg_make("t", 1, "p", 1, 1, false, NULL, NULL, 0);
	static const uint32_t ids[] = {3, 4, 5};

	for (int i = 0; i < 20; i++) {
		struct vs_qentry e = entry((uint16_t)i);
		e.msg = vs_msg_ref(m);
		assert_int_equal(vs_qentry_set_sub_ids(&e, ids, (uint32_t)(i % 4)), 0);
		assert_int_equal(vs_ring_push(&r, &e), 0);
	}
	assert_int_equal(atomic_load(&m->refs), 21);
	vs_ring_clear(&r);
	assert_int_equal(r.count, 0);
	assert_int_equal(atomic_load(&m->refs), 1);
	free(r.e);
	vs_msg_unref(m);
}

static void test_qentry_sub_ids(void **state)
{
	static const uint32_t ids[] = {7, 8, 9};
	struct vs_qentry e = {0};

	assert_int_equal(vs_qentry_set_sub_ids(&e, ids, 0), 0);
	assert_int_equal(e.n_sub_ids, 0);
	assert_int_equal(vs_qentry_set_sub_ids(&e, ids, 1), 0);
	assert_int_equal(e.n_sub_ids, 1);
	assert_int_equal(vs_qentry_sub_ids(&e)[0], 7);
	assert_ptr_equal(vs_qentry_sub_ids(&e), &e.sub_id); /* no allocation for one */
	vs_qentry_fini(&e);

	uint32_t src[3] = {7, 8, 9};
	assert_int_equal(vs_qentry_set_sub_ids(&e, src, 3), 0);
	src[0] = 0; /* copied */
	assert_int_equal(e.n_sub_ids, 3);
	assert_memory_equal(vs_qentry_sub_ids(&e), ids, sizeof(ids));
	vs_qentry_fini(&e);
	assert_int_equal(e.n_sub_ids, 0);
	assert_null(e.msg);
	vs_qentry_fini(&e); /* twice is harmless */
}

static void test_session_find_inflight(void **state)
{
	struct vs_session *s = vs_session_new("c", 1);
	struct vs_qentry e = entry(0);

	assert_int_equal(vs_session_find_inflight(s, 1), -1);
	for (uint16_t id = 10; id < 20; id++) {
		e.packet_id = id;
		vs_ring_push(&s->inflight, &e);
	}
	assert_int_equal(vs_session_find_inflight(s, 10), 0);
	assert_int_equal(vs_session_find_inflight(s, 15), 5);
	assert_int_equal(vs_session_find_inflight(s, 19), 9);
	assert_int_equal(vs_session_find_inflight(s, 20), -1);
	vs_ring_remove(&s->inflight, 5);
	assert_int_equal(vs_session_find_inflight(s, 15), -1);
	assert_int_equal(vs_session_find_inflight(s, 16), 5);
	vs_session_unref(s);
}

static void test_session_next_id(void **state)
{
	struct vs_session *s = vs_session_new("c", 1);
	struct vs_qentry e = entry(0);

	assert_int_equal(vs_session_next_id(s), 1);
	assert_int_equal(vs_session_next_id(s), 2);
	/* ids in the inflight window are skipped [MQTT-2.2.1-3] */
	for (uint16_t id = 3; id <= 5; id++) {
		e.packet_id = id;
		vs_ring_push(&s->inflight, &e);
	}
	assert_int_equal(vs_session_next_id(s), 6);
	/* wrap past 65535 without ever giving 0 */
	s->next_id = 65534;
	assert_int_equal(vs_session_next_id(s), 65534);
	assert_int_equal(vs_session_next_id(s), 65535);
	assert_int_equal(vs_session_next_id(s), 1);
	assert_int_equal(vs_session_next_id(s), 2);
	assert_int_equal(vs_session_next_id(s), 6); /* 3..5 still inflight */
	/* inflight ids at the wrap: 65535 and 1 taken */
	e.packet_id = 65535;
	vs_ring_push(&s->inflight, &e);
	e.packet_id = 1;
	vs_ring_push(&s->inflight, &e);
	s->next_id = 65535;
	assert_int_equal(vs_session_next_id(s), 2);
	/* a next_id of 0 (e.g. restored state) never yields 0 */
	s->next_id = 0;
	assert_int_equal(vs_session_next_id(s), 2);
	vs_ring_clear(&s->inflight);

	/* a full window of 65,535 ids: none left */
	for (uint32_t id = 1; id <= 65535; id++) {
		e.packet_id = (uint16_t)id;
		assert_int_equal(vs_ring_push(&s->inflight, &e), 0);
	}
	assert_int_equal(vs_session_next_id(s), 0);
	/* one freed: it is found (starting next to it keeps the scan short under ASan) */
	int i = vs_session_find_inflight(s, 4242);
	assert_int_equal(i, 4241);
	vs_ring_remove(&s->inflight, (uint32_t)i);
	s->next_id = 4240;
	assert_int_equal(vs_session_next_id(s), 4242);
	vs_session_unref(s);
}

/* A large window: ids come from the run counted in one pass, never one in flight, across
 * wraps, with acknowledgements out of order. */
static void test_session_next_id_large_window(void **state)
{
	struct vs_session *s = vs_session_new("c", 1);
	uint32_t rng = 12345;
	uint64_t handed = 0;
	for (int round = 0; round < 300000; round++) {
		rng = rng * 1103515245u + 12345u;
		bool ack =
		    s->inflight.count > 2000 || (s->inflight.count > 20 && (rng >> 16) % 3 == 0);
		if (ack) {
			/* mostly the oldest, sometimes one further in (QoS 2, out of order) */
			uint32_t i = (rng >> 8) % 7 == 0 ? (rng >> 4) % s->inflight.count : 0;
			vs_ring_remove(&s->inflight, i);
			continue;
		}
		uint16_t id = vs_session_next_id(s);
		assert_int_not_equal(id, 0);
		assert_int_equal(vs_session_find_inflight(s, id), -1); /* [MQTT-2.2.1-3] */
		struct vs_qentry e = entry(id);
		assert_int_equal(vs_ring_push(&s->inflight, &e), 0);
		handed++;
	}
	assert_true(handed > 65536 * 2); /* wrapped at least twice */
	vs_session_unref(s);
}

static void test_session_in_qos2(void **state)
{
	struct vs_session *s = vs_session_new("c", 1);

	assert_false(vs_session_in_qos2_has(s, 1));
	assert_false(vs_session_in_qos2_del(s, 1));
	assert_int_equal(vs_session_in_qos2_add(s, 1), 1);
	assert_int_equal(vs_session_in_qos2_add(s, 1), 0); /* duplicate PUBLISH: already there */
	assert_true(vs_session_in_qos2_has(s, 1));
	assert_int_equal(s->n_in_qos2, 1);
	/* grow past the first capacity */
	for (uint32_t id = 2; id <= 100; id++)
		assert_int_equal(vs_session_in_qos2_add(s, (uint16_t)(id * 601)), 1);
	assert_int_equal(s->n_in_qos2, 100);
	for (uint32_t id = 2; id <= 100; id++)
		assert_true(vs_session_in_qos2_has(s, (uint16_t)(id * 601)));
	/* delete in a scrambled order; the others stay */
	for (uint32_t k = 0; k < 99; k++) {
		uint16_t id = (uint16_t)((2 + (k * 37) % 99) * 601);
		assert_true(vs_session_in_qos2_del(s, id));
		assert_false(vs_session_in_qos2_has(s, id));
		assert_false(vs_session_in_qos2_del(s, id));
	}
	assert_int_equal(s->n_in_qos2, 1);
	assert_true(vs_session_in_qos2_has(s, 1));
	assert_int_equal(vs_session_in_qos2_add(s, 65535), 1);
	/* freed by unref with entries present */
	vs_session_unref(s);
}

/* Past VS_INQOS2_SCAN ids the set is a bitmap: a client holding every one of the 65,535 ids
 * open costs O(1) per packet (a 3.x client is not bounded by Receive Maximum), and the set goes
 * back to an array when it empties. */
static void test_session_in_qos2_bitmap(void **state)
{
	struct vs_session *s = vs_session_new("c", 1);
	for (uint32_t id = 1; id <= 65535; id++)
		assert_int_equal(vs_session_in_qos2_add(s, (uint16_t)id), 1);
	assert_int_equal(s->cap_in_qos2, VS_INQOS2_BITMAP);
	assert_int_equal(s->n_in_qos2, 65535);
	assert_false(vs_session_in_qos2_has(s, 0));
	assert_int_equal(vs_session_in_qos2_add(s, 4242), 0);
	uint32_t pos = 0, seen = 0;
	uint16_t id, last = 0;
	while (vs_session_in_qos2_next(s, &pos, &id)) {
		assert_true(id > last);
		last = id;
		seen++;
	}
	assert_int_equal(seen, 65535);
	for (uint32_t i = 1; i <= 65535; i++)
		assert_true(vs_session_in_qos2_del(s, (uint16_t)i));
	assert_int_equal(s->n_in_qos2, 0);
	assert_null(s->in_qos2);
	assert_int_equal(vs_session_in_qos2_add(s, 7), 1);
	assert_int_equal(s->cap_in_qos2, 8);
	vs_session_unref(s);
}

static void test_session_subs(void **state)
{
	struct vs_session *s = vs_session_new("c", 1);

	assert_int_equal(vs_session_sub_del(s, "a", 1), 0);
	assert_int_equal(vs_session_sub_add(s, "a/b", 3, 1, 0x01, 0), 1);
	assert_int_equal(vs_session_sub_add(s, "a", 1, 0, 0, 0), 1);
	assert_int_equal(vs_session_sub_add(s, "a/b/c", 5, 2, 0, 0), 1); /* prefix is distinct */
	assert_int_equal(vs_session_n_subs(s), 3);
	/* same filter again: replaced in place */
	assert_int_equal(vs_session_sub_add(s, "a/b", 3, 2, 0x2c, 77), 0);
	assert_int_equal(vs_session_n_subs(s), 3);
	assert_string_equal(s->subs->v[0].filter, "a/b");
	assert_int_equal(s->subs->v[0].len, 3);
	assert_int_equal(s->subs->v[0].qos, 2);
	assert_int_equal(s->subs->v[0].options, 0x2c);
	assert_int_equal(s->subs->v[0].sub_id, 77);
	/* the filter is copied and NUL-terminated; len decides, not the terminator */
	char f[] = "x/#-trailing";
	assert_int_equal(vs_session_sub_add(s, f, 3, 0, 0, 0), 1);
	memset(f, 'z', sizeof(f) - 1);
	assert_string_equal(s->subs->v[3].filter, "x/#");
	assert_int_equal(vs_session_sub_del(s, "x/#", 3), 1);
	assert_int_equal(vs_session_sub_del(s, "x/#", 3), 0);
	assert_int_equal(vs_session_sub_del(s, "a/b/", 4), 0);
	/* many: grows; delete every other; the rest still found (replace returns 0) */
	char buf[32];
	for (int i = 0; i < 200; i++) {
		int n = snprintf(buf, sizeof(buf), "dev/%d/+", i);
		assert_int_equal(vs_session_sub_add(s, buf, (size_t)n, 1, 0, (uint32_t)i), 1);
	}
	assert_int_equal(vs_session_n_subs(s), 203);
	for (int i = 0; i < 200; i += 2) {
		int n = snprintf(buf, sizeof(buf), "dev/%d/+", i);
		assert_int_equal(vs_session_sub_del(s, buf, (size_t)n), 1);
	}
	assert_int_equal(vs_session_n_subs(s), 103);
	for (int i = 0; i < 200; i++) {
		int n = snprintf(buf, sizeof(buf), "dev/%d/+", i);
		assert_int_equal(vs_session_sub_add(s, buf, (size_t)n, 0, 0, 0), i % 2 ? 0 : 1);
	}
	assert_int_equal(vs_session_n_subs(s), 203);
	for (uint32_t i = 0; i < vs_session_n_subs(s); i++)
		assert_int_equal(strlen(s->subs->v[i].filter), s->subs->v[i].len);
	vs_session_unref(s); /* frees every filter (ASan leak check) */
}

/* The filter index: every filter of a session with many is found, after deletions in any
 * position (the last entry moves into the hole, probe runs shift back), and memory follows
 * the filters left: the index goes below VS_SESSION_SUBS_SCAN, the list with the last one. */
static void test_session_subs_index(void **state)
{
	struct vs_session *s = vs_session_new("c", 1);
	enum { N = 20000 };
	char buf[32];
	for (int i = 0; i < N; i++) {
		int n = snprintf(buf, sizeof(buf), "t/%d", i);
		assert_int_equal(vs_session_sub_add(s, buf, (size_t)n, 1, 0, (uint32_t)i), 1);
	}
	assert_non_null(s->subs->idx);
	assert_true(s->subs->idx_cap >= 2 * N);
	for (int i = 0; i < N; i += 3) {
		int n = snprintf(buf, sizeof(buf), "t/%d", i);
		assert_int_equal(vs_session_sub_del(s, buf, (size_t)n), 1);
	}
	for (int i = 0; i < N; i++) {
		int n = snprintf(buf, sizeof(buf), "t/%d", i);
		/* each one left is found and removed; the removed ones are not found */
		assert_int_equal(vs_session_sub_del(s, buf, (size_t)n), i % 3 ? 1 : 0);
		if (vs_session_n_subs(s) > VS_SESSION_SUBS_SCAN)
			assert_true(s->subs->idx_cap <= 32 ||
				    vs_session_n_subs(s) * 8 >= s->subs->idx_cap);
		if (s->subs && vs_session_n_subs(s) <= VS_SESSION_SUBS_SCAN)
			assert_null(s->subs->idx);
	}
	assert_int_equal(vs_session_n_subs(s), 0);
	assert_null(s->subs);
	vs_session_unref(s);
}

static void test_session_refcount_frees_all(void **state)
{
	struct vs_session *s = vs_session_new("client-1", 8);
	struct vs_msg *m = vs_msg_make("t", 1, "p", 1, 2, false, NULL, &origin, 0);
	static const uint32_t ids[] = {1, 2};

	assert_ptr_equal(vs_session_ref(s), s);
	assert_int_equal(atomic_load(&s->refs), 2);
	for (int i = 0; i < 10; i++) {
		struct vs_qentry e = entry((uint16_t)(i + 1));
		e.msg = vs_msg_ref(m);
		assert_int_equal(vs_qentry_set_sub_ids(&e, ids, (uint32_t)(i % 3)), 0);
		assert_int_equal(vs_ring_push(i % 2 ? &s->queue : &s->inflight, &e), 0);
	}
	vs_session_in_qos2_add(s, 5);
	vs_session_sub_add(s, "t", 1, 2, 0, 0);
	s->will = vs_msg_ref(m);
	assert_int_equal(atomic_load(&m->refs), 12);
	vs_session_unref(s); /* not the last reference: nothing freed */
	assert_int_equal(atomic_load(&m->refs), 12);
	assert_int_equal(s->queue.count, 5);
	vs_session_unref(s);
	assert_int_equal(atomic_load(&m->refs), 1);
	vs_msg_unref(m);
}

/* The registry against a plain array: adds, finds, deletes (every deletion shifts its probe
 * run back), iterates, through growth; an empty id and ids that differ only after a NUL. */
static void test_registry(void **state)
{
	enum { N = 3000 };
	struct vs_registry r = {0};
	struct vs_session *v[N + 2];
	char id[32];

	assert_null(vs_registry_get(&r, "x", 1));
	assert_null(vs_registry_del(&r, "x", 1));
	for (int i = 0; i < N; i++) {
		int n = snprintf(id, sizeof(id), "client-%d", i);
		v[i] = vs_session_new(id, (size_t)n);
		assert_non_null(v[i]);
		assert_null(vs_registry_get(&r, id, (size_t)n));
		assert_int_equal(vs_registry_add(&r, v[i]), 0);
	}
	v[N] = vs_session_new("", 0);
	v[N + 1] = vs_session_new("a\0b", 3);
	assert_int_equal(vs_registry_add(&r, v[N]), 0);
	assert_int_equal(vs_registry_add(&r, v[N + 1]), 0);
	assert_int_equal(r.count, N + 2);
	assert_true(r.count * 4 <= r.cap * 3);
	assert_ptr_equal(vs_registry_get(&r, "", 0), v[N]);
	assert_ptr_equal(vs_registry_get(&r, "a\0b", 3), v[N + 1]);
	assert_null(vs_registry_get(&r, "a\0c", 3));
	assert_null(vs_registry_get(&r, "a", 1));

	for (int i = 0; i < N; i += 2) {
		int n = snprintf(id, sizeof(id), "client-%d", i);
		assert_ptr_equal(vs_registry_del(&r, id, (size_t)n), v[i]);
		assert_null(vs_registry_del(&r, id, (size_t)n));
		vs_session_unref(v[i]);
		v[i] = NULL;
	}
	assert_int_equal(r.count, N / 2 + 2);
	for (int i = 0; i < N; i++) {
		int n = snprintf(id, sizeof(id), "client-%d", i);
		assert_ptr_equal(vs_registry_get(&r, id, (size_t)n), v[i]);
	}
	size_t it = 0, seen = 0;
	struct vs_session *s;
	while (vs_registry_next(&r, &it, &s)) {
		assert_ptr_equal(vs_registry_get(&r, s->client_id, s->id_len), s);
		seen++;
	}
	assert_int_equal(seen, r.count);
	it = 0;
	while (vs_registry_next(&r, &it, &s))
		vs_session_unref(s);
	vs_registry_fini(&r);
	assert_null(r.slots);
	assert_int_equal(r.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_msg_make_plain),
	    cmocka_unit_test(test_msg_new_copies_props),
	    cmocka_unit_test(test_msg_empty_string_props),
	    cmocka_unit_test(test_msg_refcount),
	    cmocka_unit_test(test_msg_expiry),
	    cmocka_unit_test(test_msg_encode_cached),
	    cmocka_unit_test(test_msg_encode_large_payload),
	    cmocka_unit_test(test_msg_encode_expiry),
	    cmocka_unit_test(test_msg_encode_per_subscriber),
	    cmocka_unit_test(test_msg_concurrent_fill),
	    cmocka_unit_test(test_msg_home),
	    cmocka_unit_test(test_session_new),
	    cmocka_unit_test(test_ring_push_pop),
	    cmocka_unit_test(test_ring_remove),
	    cmocka_unit_test(test_ring_clear_unrefs),
	    cmocka_unit_test(test_qentry_sub_ids),
	    cmocka_unit_test(test_session_find_inflight),
	    cmocka_unit_test(test_session_next_id),
	    cmocka_unit_test(test_session_next_id_large_window),
	    cmocka_unit_test(test_session_in_qos2),
	    cmocka_unit_test(test_session_in_qos2_bitmap),
	    cmocka_unit_test(test_session_subs),
	    cmocka_unit_test(test_session_subs_index),
	    cmocka_unit_test(test_session_refcount_frees_all),
	    cmocka_unit_test(test_registry),
	};
	return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
