/*
 * Unit tests of replay at start-up (src/broker/restore.c): a store is written record by record
 * through the store's own API, as a snapshot and the log after it, and a broker is made from it
 * (vs_broker_init, no worker started). What each test asserts is what a client would be sent
 * after a restart: the entries of a persistent session's queue.
 *
 * The case behind them: records about one delivery are written by two threads, its QUEUE
 * record by the publisher's after the session lock and its DEQUEUE by the subscriber's. When
 * the QUEUE record is late, it can land after a snapshot that no longer holds the delivery,
 * while the DEQUEUE went with the old log; or after the SESSION record of a new session for
 * the same client id. The floor in SESSION records (vs_rec_session.floor) keeps such a record
 * from bringing the delivery back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "broker/broker.h"
#include "conf/conf.h"
#include "persist/store.h"
#include "session/session.h"

#define S(lit) ((struct vs_rec_str){(const uint8_t *)(lit), sizeof(lit) - 1})

struct rig {
	char dir[64];	     /* persistence_location */
	char store[128];     /* the store inside it */
	struct vs_rec v[32]; /* records of the next batch */
	size_t n;
};

static int setup(void **state)
{
	static struct rig r;
	memset(&r, 0, sizeof(r));
	strcpy(r.dir, "/tmp/vs-restore-XXXXXX");
	assert_non_null(mkdtemp(r.dir));
	snprintf(r.store, sizeof(r.store), "%s/mosquitto.db.d", r.dir);
	*state = &r;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct vs_rec *add(struct rig *r, enum vs_rec_type type)
{
	assert_true(r->n < sizeof(r->v) / sizeof(r->v[0]));
	struct vs_rec *x = &r->v[r->n++];
	memset(x, 0, sizeof(*x));
	x->type = type;
	return x;
}

static void session(struct rig *r, const char *id, bool has_floor, uint32_t floor)
{
	struct vs_rec *x = add(r, VS_REC_SESSION);
	x->u.session.client_id = (struct vs_rec_str){(const uint8_t *)id, strlen(id)};
	x->u.session.expiry_interval = 0xFFFFFFFF;
	x->u.session.protocol_version = 4;
	x->u.session.offline_since_wall = 1700000000;
	x->u.session.has_floor = has_floor;
	x->u.session.floor = floor;
}

static void msg(struct rig *r, uint64_t id, const char *payload)
{
	struct vs_rec_msg *m = &add(r, VS_REC_MSG)->u.msg;
	m->msg_id = id;
	m->topic = S("t");
	m->payload = (struct vs_rec_str){(const uint8_t *)payload, strlen(payload)};
	m->qos = 1;
	m->origin_client_id = S("pub");
}

static void queue(struct rig *r, const char *id, uint64_t msg_id, uint32_t seq)
{
	struct vs_rec_queue *q = &add(r, VS_REC_QUEUE)->u.queue;
	q->client_id = (struct vs_rec_str){(const uint8_t *)id, strlen(id)};
	q->msg_id = msg_id;
	q->qos = 1;
	q->state = VS_QSTATE_QUEUED;
	q->seq = seq;
}

static void session_del(struct rig *r, const char *id)
{
	add(r, VS_REC_SESSION_DEL)->u.client_id =
	    (struct vs_rec_str){(const uint8_t *)id, strlen(id)};
}

static int no_record(void *ctx, const struct vs_rec *rec)
{
	(void)ctx;
	(void)rec;
	return 0;
}

/* Writes a store: the records added so far as a snapshot (when snap_n > 0, the first snap_n of
 * them), the rest as one commit to the log after it. */
static void write_store(struct rig *r, size_t snap_n)
{
	char err[256];
	struct vs_store *st;
	assert_int_equal(vs_store_open(r->store, VS_FSYNC_NEVER, 0, NULL, &st, err, sizeof(err)),
			 0);
	assert_true(vs_store_replay(st, no_record, NULL, NULL) >= 0);
	struct vs_store_buf buf;
	vs_store_buf_init(&buf);
	if (snap_n) {
		struct vs_store_snap *snap;
		assert_int_equal(vs_store_snapshot_begin(st, &snap), 0);
		for (size_t i = 0; i < snap_n; i++)
			assert_int_equal(vs_store_append(&buf, &r->v[i]), 0);
		assert_int_equal(vs_store_snapshot_write(snap, &buf), 0);
		assert_int_equal(vs_store_snapshot_end(snap, true), 0);
		vs_store_buf_fini(&buf);
		vs_store_buf_init(&buf);
	}
	for (size_t i = snap_n; i < r->n; i++)
		assert_int_equal(vs_store_append(&buf, &r->v[i]), 0);
	assert_int_equal(vs_store_commit(st, &buf), 0);
	vs_store_buf_fini(&buf);
	vs_store_close(st);
	r->n = 0;
}

/* Starts a broker on the store (no worker), writes into out the payloads of client id's
 * queue in order (comma-separated), stops it (which writes a snapshot of what it rebuilt). */
static void replayed(struct rig *r, const char *id, char *out, size_t outlen)
{
	struct vs_config c;
	vs_config_init(&c);
	char text[256], err[256];
	snprintf(text, sizeof(text),
		 "listener 0 127.0.0.1\npersistence true\npersistence_location %s/\n"
		 "log_dest none\n",
		 r->dir);
	assert_int_equal(vs_config_parse_string(&c, text, "test", err, sizeof(err)), 0);
	assert_int_equal(vs_config_finish(&c, 0), 0);
	static struct vs_broker b;
	int rc = vs_broker_init(&b, &c, &c.log, err, sizeof(err));
	if (rc < 0)
		fail_msg("vs_broker_init: %s", err);
	out[0] = '\0';
	struct vs_session *s = vs_registry_get(&b.sessions, id, strlen(id));
	assert_non_null(s);
	size_t at = 0;
	for (uint32_t i = 0; i < s->queue.count; i++) {
		const struct vs_qentry *e = vs_ring_at(&s->queue, i);
		at += (size_t)snprintf(out + at, outlen - at, "%s%.*s", i ? "," : "",
				       (int)e->msg->payload.len, (const char *)e->msg->payload.p);
		assert_true(at < outlen);
	}
	assert_int_equal(s->inflight.count, 0);
	vs_broker_fini(&b);
	vs_config_fini(&c);
}

/* A delivery that ended before the snapshot, whose QUEUE record came after it: gone. The
 * entries the snapshot held and those numbered above its floor stay, in their order. */
static void test_late_queue_after_snapshot_stays_ended(void **state)
{
	struct rig *r = *state;
	char got[256];
	/* The snapshot: session x with deliveries 1..5 numbered, 2 and 4 still queued. */
	session(r, "x", false, 0);
	msg(r, 2, "two");
	queue(r, "x", 2, 2);
	msg(r, 4, "four");
	queue(r, "x", 4, 4);
	session(r, "x", true, 6);
	/* The log after it: delivery 3's QUEUE, late (its DEQUEUE was in the old log), a state
	 * change of delivery 2, and delivery 6, new. */
	msg(r, 3, "three");
	queue(r, "x", 3, 3);
	queue(r, "x", 2, 2);
	msg(r, 6, "six");
	queue(r, "x", 6, 6);
	write_store(r, 6);
	replayed(r, "x", got, sizeof(got));
	assert_string_equal(got, "two,four,six");
	/* The snapshot that broker wrote at its stop has floors of its own. */
	msg(r, 5, "five");
	queue(r, "x", 5, 5);
	write_store(r, 0);
	replayed(r, "x", got, sizeof(got));
	assert_string_equal(got, "two,four,six");
}

/* A client id that started a new session over an old one: the old session's QUEUE record,
 * late from another thread, is not the new session's. */
static void test_late_queue_of_a_replaced_session_is_not_the_new_ones(void **state)
{
	struct rig *r = *state;
	char got[256];
	session(r, "y", true, 1);
	msg(r, 1, "old-1");
	queue(r, "y", 1, 1);
	session_del(r, "y");
	session(r, "y", true, 3); /* numbers go on from the old session's 2 */
	msg(r, 2, "old-2");
	queue(r, "y", 2, 2); /* late: the old session's */
	msg(r, 3, "new-3");
	queue(r, "y", 3, 3);
	write_store(r, 0);
	replayed(r, "y", got, sizeof(got));
	assert_string_equal(got, "new-3");
}

/* Delivery numbers wrap: a floor just past the wrap still tells before from after. */
static void test_floor_across_the_wrap(void **state)
{
	struct rig *r = *state;
	char got[256];
	session(r, "z", false, 0);
	msg(r, 1, "a");
	queue(r, "z", 1, 0xfffffffeu);
	session(r, "z", true, 1); /* next_seq was 0 (wrapped): 0xffffffff and 0 are over */
	msg(r, 2, "b");
	queue(r, "z", 2, 0xffffffffu); /* late: over */
	msg(r, 3, "c");
	queue(r, "z", 3, 1); /* after the wrap: new */
	write_store(r, 4);
	replayed(r, "z", got, sizeof(got));
	assert_string_equal(got, "a,c");
}

/* A floor lower than the one replay has is older (a session's records committed after a
 * snapshot had begun): it does not lower the floor. */
static void test_an_older_floor_does_not_lower_it(void **state)
{
	struct rig *r = *state;
	char got[256];
	session(r, "v", false, 0);
	msg(r, 5, "five");
	queue(r, "v", 5, 5);
	session(r, "v", true, 6);
	session(r, "v", true, 3); /* late, from before the snapshot */
	msg(r, 4, "four");
	queue(r, "v", 4, 4); /* late, and over by the snapshot's floor */
	msg(r, 6, "six");
	queue(r, "v", 6, 6);
	write_store(r, 4);
	replayed(r, "v", got, sizeof(got));
	assert_string_equal(got, "five,six");
}

/* Stores from before floors (no SESSION record has one) replay as they did. */
static void test_no_floor_keeps_every_queued_entry(void **state)
{
	struct rig *r = *state;
	char got[256];
	session(r, "w", false, 0);
	msg(r, 1, "p");
	queue(r, "w", 1, 0);
	msg(r, 2, "q");
	queue(r, "w", 2, 0);
	write_store(r, 0);
	replayed(r, "w", got, sizeof(got));
	assert_string_equal(got, "p,q");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_late_queue_after_snapshot_stays_ended, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_late_queue_of_a_replaced_session_is_not_the_new_ones, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_floor_across_the_wrap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_an_older_floor_does_not_lower_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_floor_keeps_every_queued_entry, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
