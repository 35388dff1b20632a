/*
 * Allocation fault injection for src/session (see fault.h). Each scenario runs a script of
 * session operations the way the broker uses them, stopping at the first error as a caller
 * would; with allocation k failing, the operation that made it must return an error (or absorb
 * the failure and still give the full result), and what the session holds must match a model
 * of the steps that succeeded, still work (a later add, find and delete), and free cleanly.
 *
 * Scenarios: messages and their cached encodings; queue and inflight rings with subscription
 * identifiers, through growth, with the QoS 1 and QoS 2 exchanges; subscriptions added past
 * the indexed size, replaced and removed down through every shrink; incoming QoS 2 ids past
 * the switch to a bitmap and back; the retained-message feed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "fault.h"
#include "session/msg.h"
#include "session/session.h"

#define B(s) ((struct vs_buf){(const uint8_t *)(s), sizeof(s) - 1})

static const struct vs_user_prop users[] = {{B("k"), B("v")}, {B("k"), B("w")}};
static const struct vs_buf origin = B("publisher");

static struct vs_msg *make_msg(int i, uint8_t qos)
{
	struct vs_props pp = {0};
	char topic[32];

	pp.present = 1ull << VS_PROP_CONTENT_TYPE | 1ull << VS_PROP_CORRELATION_DATA;
	pp.content_type = B("text/plain");
	pp.correlation_data = B("\x01\x02");
	pp.users = users;
	pp.n_user = 2;
	snprintf(topic, sizeof(topic), "t/%d", i);
	return vs_msg_make(topic, strlen(topic), "payload", 7, qos, false, &pp, &origin, 0);
}

/* ---- messages and their encodings ---- */

/* The bytes of a fresh copy of message 1 for d, encoded with no fault injection. */
static ssize_t reference_encoding(const struct vs_delivery *d, uint8_t *out, size_t cap)
{
	struct vs_msg *fresh = make_msg(1, 2);
	assert_non_null(fresh);
	ssize_t n = vs_msg_encode(fresh, d, 0, out, cap);
	vs_msg_unref(fresh);
	return n;
}

static void msg_scenario(void *ctx, unsigned long fail_at)
{
	static const uint32_t ids[] = {4, 5};
	struct vs_delivery d[] = {
	    {.version = VS_V5, .qos = 1, .packet_id = 10}, /* cached form */
	    {.version = VS_V5, .qos = 0},		   /* the other cached form */
	    {.version = VS_V5, .qos = 2, .packet_id = 11, .n_sub_ids = 2, .sub_ids = ids},
	    {.version = VS_V311, .qos = 1, .packet_id = 12},
	};
	uint8_t got[4][256], want[256];
	ssize_t n[4] = {0};
	size_t i, done = 0;

	fault_begin(fail_at);
	struct vs_msg *m = make_msg(1, 2);
	for (i = 0; m && i < 4; i++, done++) {
		n[i] = vs_msg_encoded_size(m, &d[i], 0);
		if (n[i] < 0)
			break;
		assert_true((size_t)n[i] <= sizeof(got[i]));
		n[i] = vs_msg_encode(m, &d[i], 0, got[i], sizeof(got[i]));
		if (n[i] < 0)
			break;
	}
	fault_end();
	if (!m) {
		assert_true(fault_fired());
		return;
	}
	/* The encoded forms are a cache: a failed allocation must not fail an encode. */
	assert_int_equal(done, 4);
	for (i = 0; i < 4; i++) {
		ssize_t k = reference_encoding(&d[i], want, sizeof(want));
		assert_true(k > 0);
		assert_int_equal(k, n[i]);
		assert_memory_equal(want, got[i], (size_t)k);
	}
	vs_msg_unref(m);
}

static void messages_and_encodings_survive_each_failed_allocation(void **state)
{
	fault_each("message + encodings", msg_scenario, NULL);
}

/* ---- queue and inflight ---- */

#define QN 40 /* past ring growth 8 -> 16 -> 32 -> 64 */

/* Checks a ring against the model: count entries, messages t/<first>.., sub ids as set. */
static void check_ring(struct vs_ring *r, uint32_t count, int first)
{
	assert_int_equal(r->count, count);
	for (uint32_t i = 0; i < count; i++) {
		struct vs_qentry *e = vs_ring_at(r, i);
		char topic[32];
		int j = first + (int)i;
		snprintf(topic, sizeof(topic), "t/%d", j);
		assert_non_null(e->msg);
		assert_int_equal(e->msg->topic.len, strlen(topic));
		assert_memory_equal(e->msg->topic.p, topic, strlen(topic));
		assert_int_equal(e->n_sub_ids, j % 3);
		for (uint32_t k = 0; k < e->n_sub_ids; k++)
			assert_int_equal(vs_qentry_sub_ids(e)[k], 100 + k);
	}
}

/* Queues message i as the broker does; returns 0 or -ENOMEM (nothing queued, nothing held). */
static int enqueue(struct vs_session *s, int i)
{
	static const uint32_t ids[] = {100, 101};
	struct vs_qentry e = {.qos = (uint8_t)(1 + i % 2)};
	int rc;

	e.msg = make_msg(i, e.qos);
	if (!e.msg)
		return -ENOMEM;
	rc = vs_qentry_set_sub_ids(&e, ids, (uint32_t)(i % 3));
	if (rc == 0)
		rc = vs_ring_push(&s->queue, &e);
	if (rc)
		vs_qentry_fini(&e);
	return rc;
}

/* Moves the oldest queued entry into the inflight window: pushed there first, popped from the
 * queue only once that worked, so a failure loses nothing. */
static int send_one(struct vs_session *s)
{
	struct vs_qentry e = *vs_ring_at(&s->queue, 0), dropped;

	e.packet_id = vs_session_next_id(s);
	e.state = e.qos == 1 ? VS_Q_WAIT_PUBACK : VS_Q_WAIT_PUBREC;
	if (vs_ring_push(&s->inflight, &e) < 0)
		return -ENOMEM;
	vs_ring_pop(&s->queue, &dropped); /* its references moved to the inflight copy */
	return 0;
}

struct queue_model {
	int queued, sent;
};

/* Queues QN messages, sends 20, completes the first 10 exchanges (PUBACK; PUBREC then
 * PUBCOMP). Returns 0 or the first error. */
static int queue_script(struct vs_session *s, struct queue_model *m)
{
	int rc;

	for (; m->queued < QN; m->queued++)
		if ((rc = enqueue(s, m->queued)) < 0)
			return rc;
	for (; m->sent < 20; m->sent++)
		if ((rc = send_one(s)) < 0)
			return rc;
	for (int i = 0; i < 10; i++) {
		struct vs_qentry *e = vs_ring_at(&s->inflight, 0), done;
		int at = vs_session_find_inflight(s, e->packet_id);
		assert_int_equal(at, 0);
		if (e->state == VS_Q_WAIT_PUBREC) { /* PUBREC in, PUBREL out */
			e->state = VS_Q_WAIT_PUBCOMP;
			assert_int_equal(vs_session_find_inflight(s, e->packet_id), 0);
		}
		vs_ring_pop(&s->inflight, &done); /* PUBACK or PUBCOMP */
		vs_qentry_fini(&done);
	}
	return 0;
}

static void queue_scenario(void *ctx, unsigned long fail_at)
{
	struct queue_model m = {0};

	fault_begin(fail_at);
	struct vs_session *s = vs_session_new("client", 6);
	int rc = s ? queue_script(s, &m) : -ENOMEM;
	fault_end();
	assert_int_equal(rc < 0, fault_fired());
	if (!s)
		return;
	if (rc == 0) {
		check_ring(&s->queue, QN - 20, 20);
		check_ring(&s->inflight, 10, 10);
	} else {
		check_ring(&s->queue, (uint32_t)(m.queued - m.sent), m.sent);
		check_ring(&s->inflight, (uint32_t)m.sent, 0);
	}
	/* Still usable: one more message goes through queue and window. */
	assert_int_equal(enqueue(s, 1000 * 3), 0);
	assert_int_equal(send_one(s), 0);
	vs_session_unref(s);
}

static void queue_and_inflight_survive_each_failed_allocation(void **state)
{
	fault_each("queue + inflight", queue_scenario, NULL);
}

/* ---- subscriptions ---- */

#define SN 40 /* past VS_SESSION_SUBS_SCAN: the index is built, grown, shrunk and dropped */

static void filter_of(int i, char *f, size_t n)
{
	snprintf(f, n, "sensors/%d/+/#", i);
}

struct subs_model {
	bool in[SN];
	int step;
};

/* Adds SN filters, replaces 5, removes 36 (through every shrink), adds 3 back. */
static int subs_script(struct vs_session *s, struct subs_model *m)
{
	char f[64];
	int rc;

	for (; m->step < SN; m->step++) {
		filter_of(m->step, f, sizeof(f));
		if ((rc = vs_session_sub_add(s, f, strlen(f), 1, 0, (uint32_t)m->step)) < 0)
			return rc;
		assert_int_equal(rc, 1);
		m->in[m->step] = true;
	}
	for (int i = 0; i < 5; i++) {
		filter_of(i, f, sizeof(f));
		assert_int_equal(vs_session_sub_add(s, f, strlen(f), 2, 4, 99), 0);
	}
	for (int i = 0; i < SN - 4; i++) {
		filter_of(i, f, sizeof(f));
		assert_int_equal(vs_session_sub_del(s, f, strlen(f)), 1);
		m->in[i] = false;
	}
	for (int i = 0; i < 3; i++) {
		filter_of(i, f, sizeof(f));
		if ((rc = vs_session_sub_add(s, f, strlen(f), 0, 0, 0)) < 0)
			return rc;
		m->in[i] = true;
	}
	return 0;
}

/* The list holds exactly the model's filters, each findable (a re-add replaces) and removable. */
static void check_subs(struct vs_session *s, const struct subs_model *m)
{
	char f[64];
	uint32_t n = 0;

	for (int i = 0; i < SN; i++)
		n += m->in[i];
	assert_int_equal(vs_session_n_subs(s), n);
	if (n == 0)
		assert_null(s->subs);
	for (int i = 0; i < SN; i++) {
		filter_of(i, f, sizeof(f));
		if (m->in[i]) {
			assert_int_equal(vs_session_sub_add(s, f, strlen(f), 1, 0, 0), 0);
			continue;
		}
		assert_int_equal(vs_session_sub_del(s, f, strlen(f)), 0);
	}
	for (int i = 0; i < SN; i++) {
		filter_of(i, f, sizeof(f));
		if (m->in[i])
			assert_int_equal(vs_session_sub_del(s, f, strlen(f)), 1);
	}
	assert_int_equal(vs_session_n_subs(s), 0);
	assert_null(s->subs);
}

static void subs_scenario(void *ctx, unsigned long fail_at)
{
	struct subs_model m = {0};
	struct vs_session *s = vs_session_new("client", 6);

	assert_non_null(s);
	fault_begin(fail_at);
	int rc = subs_script(s, &m);
	fault_end();
	if (rc < 0)
		assert_true(fault_fired());
	check_subs(s, &m);
	vs_session_unref(s);
}

static void subscriptions_survive_each_failed_allocation(void **state)
{
	fault_each("subscriptions add/remove", subs_scenario, NULL);
}

/* ---- incoming QoS 2 ids ---- */

#define IN_N 40 /* past VS_INQOS2_SCAN: array, then bitmap, then back to the array */

static int inqos2_script(struct vs_session *s, bool *in, int *step)
{
	int rc;

	for (; *step < IN_N; (*step)++) {
		uint16_t id = (uint16_t)(1000 + *step * 7);
		if ((rc = vs_session_in_qos2_add(s, id)) < 0)
			return rc;
		assert_int_equal(rc, 1);
		assert_int_equal(vs_session_in_qos2_add(s, id), 0); /* a repeated PUBLISH */
		in[*step] = true;
	}
	for (int i = 0; i < IN_N; i++) { /* PUBREL for all: the bitmap goes */
		assert_true(vs_session_in_qos2_del(s, (uint16_t)(1000 + i * 7)));
		in[i] = false;
	}
	for (int i = 0; i < 3; i++) {
		if ((rc = vs_session_in_qos2_add(s, (uint16_t)(1000 + i * 7))) < 0)
			return rc;
		in[i] = true;
	}
	return 0;
}

static void inqos2_scenario(void *ctx, unsigned long fail_at)
{
	bool in[IN_N] = {0};
	int step = 0;
	struct vs_session *s = vs_session_new("client", 6);
	uint32_t pos = 0, n = 0;
	uint16_t id;

	assert_non_null(s);
	fault_begin(fail_at);
	int rc = inqos2_script(s, in, &step);
	fault_end();
	if (rc < 0)
		assert_true(fault_fired());
	for (int i = 0; i < IN_N; i++) {
		assert_int_equal(vs_session_in_qos2_has(s, (uint16_t)(1000 + i * 7)), in[i]);
		n += in[i];
	}
	assert_int_equal(s->n_in_qos2, n);
	while (vs_session_in_qos2_next(s, &pos, &id)) {
		assert_true(id >= 1000 && (id - 1000) % 7 == 0 && in[(id - 1000) / 7]);
		n--;
	}
	assert_int_equal(n, 0);
	assert_int_equal(vs_session_in_qos2_add(s, 7), 1); /* still usable */
	vs_session_unref(s);
}

static void incoming_qos2_ids_survive_each_failed_allocation(void **state)
{
	fault_each("incoming QoS 2 ids", inqos2_scenario, NULL);
}

/* ---- the retained-message feed ---- */

#define FN 70 /* past the feed's first 64 entries */

static void feed_scenario(void *ctx, unsigned long fail_at)
{
	struct vs_session *s = vs_session_new("client", 6);
	struct vs_feed_entry e;
	int pushed = 0, rc = 0;

	assert_non_null(s);
	fault_begin(fail_at);
	for (; pushed < FN; pushed++) {
		struct vs_msg *m = make_msg(pushed, 1);
		if (!m) {
			rc = -ENOMEM;
			break;
		}
		if ((rc = vs_feed_push(s, m, 1, (uint32_t)pushed)) < 0)
			break; /* it dropped m's reference */
	}
	fault_end();
	assert_int_equal(rc < 0, fault_fired());
	assert_int_equal(vs_feed_len(s), pushed);
	for (int i = 0; i < pushed / 2; i++) {
		vs_feed_pop(s, &e);
		assert_int_equal(e.sub_id, i);
		vs_msg_unref(e.msg);
	}
	vs_session_unref(s); /* frees the rest */
}

static void feed_survives_each_failed_allocation(void **state)
{
	fault_each("retained feed", feed_scenario, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(messages_and_encodings_survive_each_failed_allocation),
	    cmocka_unit_test(queue_and_inflight_survive_each_failed_allocation),
	    cmocka_unit_test(subscriptions_survive_each_failed_allocation),
	    cmocka_unit_test(incoming_qos2_ids_survive_each_failed_allocation),
	    cmocka_unit_test(feed_survives_each_failed_allocation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
