/*
 * Unit tests for src/persist/mosqdb.c and mosqimport.c: reading Mosquitto 2.0's mosquitto.db.
 * The samples in tests/unit/data/mosqdb/ were written by Debian's mosquitto 2.0.11
 * (make_files.py there says what each holds). Every input sits right before a guard page, so an
 * over-read faults. Test names read as a checklist.
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
#include "guard.h"
#include "persist/mosqdb.h"

/* The samples' wall clock: a time after they were written and before any of their expiries. */
#define NOW_WALL 1796520000LL

/* ---- helpers ---- */

struct file {
	uint8_t *p; /* guard_copy */
	size_t len;
};

static struct file load(const char *name)
{
	char path[4096];
	const char *here = __FILE__;
	const char *slash = strrchr(here, '/');
	int dirlen = slash ? (int)(slash - here) : 1;
	snprintf(path, sizeof(path), "%.*s/data/mosqdb/%s", dirlen, slash ? here : ".", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	static uint8_t tmp[1 << 16];
	size_t n = fread(tmp, 1, sizeof(tmp), f);
	fclose(f);
	struct file r = {guard_copy(tmp, n), n};
	return r;
}

static void unload(struct file *f)
{
	guard_free(f->p, f->len);
}

/* What an import emitted, copied out of the callback's views. */
struct got_rec {
	uint8_t type;
	char id[64];   /* client id or topic */
	char data[64]; /* filter, payload, or content type */
	uint8_t users[64];
	size_t users_len;
	uint64_t msg_id;
	uint8_t qos, state, options, version;
	bool retain, has_expiry;
	uint16_t packet_id;
	uint32_t num; /* expiry interval (session, message), sub id, or first subscription id */
	uint32_t n_sub_ids;
	int64_t since;
};

struct got {
	struct got_rec r[64];
	size_t n;
};

static void cp(char *out, struct vs_rec_str s)
{
	size_t n = s.len < 63 ? s.len : 63;
	if (n)
		memcpy(out, s.p, n);
	out[n] = 0;
}

static int collect(void *ctx, const struct vs_rec *rec)
{
	struct got *g = ctx;
	if (g->n == 64)
		return 0;
	struct got_rec *o = &g->r[g->n++];
	memset(o, 0, sizeof(*o));
	o->type = rec->type;
	switch (rec->type) {
	case VS_REC_SESSION:
		cp(o->id, rec->u.session.client_id);
		o->num = rec->u.session.expiry_interval;
		o->version = rec->u.session.protocol_version;
		o->since = rec->u.session.offline_since_wall;
		break;
	case VS_REC_SUB:
		cp(o->id, rec->u.sub.client_id);
		cp(o->data, rec->u.sub.filter);
		o->qos = rec->u.sub.qos;
		o->options = rec->u.sub.options;
		o->num = rec->u.sub.sub_id;
		break;
	case VS_REC_MSG:
		cp(o->id, rec->u.msg.topic);
		cp(o->data, rec->u.msg.payload);
		o->msg_id = rec->u.msg.msg_id;
		o->qos = rec->u.msg.qos;
		o->retain = rec->u.msg.retain;
		o->has_expiry = rec->u.msg.has_expiry;
		o->num = rec->u.msg.expiry_interval;
		o->users_len =
		    rec->u.msg.user_props_raw.len < 64 ? rec->u.msg.user_props_raw.len : 64;
		if (o->users_len)
			memcpy(o->users, rec->u.msg.user_props_raw.p, o->users_len);
		if (rec->u.msg.content_type.p)
			cp(o->data, rec->u.msg.content_type);
		break;
	case VS_REC_RETAIN:
		cp(o->id, rec->u.retain.topic);
		o->msg_id = rec->u.retain.msg_id;
		break;
	case VS_REC_QUEUE:
		cp(o->id, rec->u.queue.client_id);
		o->msg_id = rec->u.queue.msg_id;
		o->qos = rec->u.queue.qos;
		o->state = rec->u.queue.state;
		o->retain = rec->u.queue.retain;
		o->packet_id = rec->u.queue.packet_id;
		o->n_sub_ids = (uint32_t)rec->u.queue.n_sub_ids;
		o->num = rec->u.queue.n_sub_ids ? rec->u.queue.sub_ids[0] : 0;
		break;
	default:
		fail_msg("unexpected record type %u", rec->type);
	}
	return 0;
}

/* The n-th emitted record of type t for id (NULL: any), or NULL. */
static const struct got_rec *find(const struct got *g, uint8_t t, const char *id, size_t nth)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->r[i].type == t && (!id || strcmp(g->r[i].id, id) == 0) && nth-- == 0)
			return &g->r[i];
	return NULL;
}

/* The MSG record with this id, or NULL. */
static const struct got_rec *msg_of(const struct got *g, uint64_t id)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->r[i].type == VS_REC_MSG && g->r[i].msg_id == id)
			return &g->r[i];
	return NULL;
}

static int count_chunk(void *ctx, const struct vs_mosqdb_rec *r)
{
	unsigned *per = ctx;
	per[r->type < 8 ? r->type : 0]++;
	return 0;
}

/* ---- parsing real files ---- */

static void parse_small_db_finds_every_chunk(void **state)
{
	struct file f = load("small.db");
	unsigned per[8] = {0};
	struct vs_mosqdb_info info;
	assert_int_equal(vs_mosqdb_parse(f.p, f.len, count_chunk, per, &info), 0);
	assert_int_equal(info.version, 6);
	assert_false(info.damaged);
	assert_int_equal(info.valid_end, f.len);
	assert_int_equal(per[VS_MOSQDB_CFG], 1);
	assert_int_equal(per[VS_MOSQDB_MSG_STORE], 5);
	assert_int_equal(per[VS_MOSQDB_CLIENT], 1);
	assert_int_equal(per[VS_MOSQDB_CLIENT_MSG], 4);
	assert_int_equal(per[VS_MOSQDB_SUB], 2);
	assert_int_equal(per[VS_MOSQDB_RETAIN], 2);
	unload(&f);
}

static void parse_empty_db_holds_only_the_configuration(void **state)
{
	struct file f = load("empty.db");
	unsigned per[8] = {0};
	struct vs_mosqdb_info info;
	assert_int_equal(vs_mosqdb_parse(f.p, f.len, count_chunk, per, &info), 0);
	assert_int_equal(per[VS_MOSQDB_CFG], 1);
	assert_int_equal(info.chunks, 1);
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	assert_int_equal(vs_mosqdb_import(f.p, f.len, 0, NOW_WALL, collect, &g, &ii), 0);
	assert_int_equal(g.n, 0);
	unload(&f);
}

/* ---- importing real files ---- */

static void import_small_db_v311_session_retained_and_queue(void **state)
{
	struct file f = load("small.db");
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	assert_int_equal(vs_mosqdb_import(f.p, f.len, 0, NOW_WALL, collect, &g, &ii), 0);
	assert_int_equal(ii.sessions, 1);
	assert_int_equal(ii.subs, 2);
	assert_int_equal(ii.retained, 2);
	assert_int_equal(ii.queued, 3);
	assert_int_equal(ii.inflight, 1);
	assert_int_equal(ii.orphans + ii.bad + ii.expired_msgs + ii.expired_sessions, 0);

	const struct got_rec *s = find(&g, VS_REC_SESSION, "subA", 0);
	assert_non_null(s);
	assert_int_equal(s->num, UINT32_MAX); /* MQTT 3.1.1, clean session false */
	assert_int_equal(s->version, 4);
	assert_int_equal(s->since, NOW_WALL);
	/* SESSION comes before the records that need it. */
	assert_true(s < find(&g, VS_REC_QUEUE, "subA", 0));
	assert_true(s < find(&g, VS_REC_SUB, "subA", 0));

	const struct got_rec *sub = find(&g, VS_REC_SUB, "subA", 0);
	const struct got_rec *sub2 = find(&g, VS_REC_SUB, "subA", 1);
	assert_non_null(sub2);
	assert_true(strcmp(sub->data, "home/#") == 0 || strcmp(sub2->data, "home/#") == 0);
	assert_int_equal(sub->qos, 1);

	/* The retained message sent at subscribe time, never acknowledged: in flight. */
	const struct got_rec *q = find(&g, VS_REC_QUEUE, "subA", 0);
	assert_int_equal(q->state, VS_QSTATE_WAIT_PUBACK);
	assert_int_equal(q->packet_id, 1);
	assert_true(q->retain);
	assert_string_equal(msg_of(&g, q->msg_id)->data, "21.5");
	/* Then the three queued while away, in order, without packet ids. */
	for (int i = 1; i <= 3; i++) {
		q = find(&g, VS_REC_QUEUE, "subA", (size_t)i);
		assert_non_null(q);
		assert_int_equal(q->state, VS_QSTATE_QUEUED);
		assert_int_equal(q->packet_id, 0);
		assert_int_equal(q->qos, 1);
		const struct got_rec *m = msg_of(&g, q->msg_id);
		assert_non_null(m);
		assert_true(m < q); /* MSG before the first record naming it */
		assert_string_equal(m->id, "alerts");
		char want[16];
		snprintf(want, sizeof(want), "alert %d", i);
		assert_string_equal(m->data, want);
	}
	const struct got_rec *r = find(&g, VS_REC_RETAIN, "home/hum", 0);
	assert_non_null(r);
	assert_string_equal(msg_of(&g, r->msg_id)->data, "40");
	assert_true(msg_of(&g, r->msg_id)->retain);
	assert_non_null(find(&g, VS_REC_RETAIN, "home/temp", 0));
	unload(&f);
}

static void import_v5_db_keeps_properties_options_and_ids(void **state)
{
	struct file f = load("v5.db");
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	assert_int_equal(vs_mosqdb_import(f.p, f.len, 0, NOW_WALL, collect, &g, &ii), 0);
	assert_int_equal(ii.sessions, 2);
	assert_int_equal(ii.retained, 2);
	assert_int_equal(ii.props_dropped, 0);

	const struct got_rec *s = find(&g, VS_REC_SESSION, "subV5", 0);
	assert_non_null(s);
	assert_int_equal(s->num, 7200);
	assert_int_equal(s->version, 5);
	assert_true(s->since > 0 && s->since <= NOW_WALL);

	const struct got_rec *sub = find(&g, VS_REC_SUB, "subV5", 0);
	assert_string_equal(sub->data, "v5/q/#");
	assert_int_equal(sub->qos, 2);
	assert_int_equal(sub->options, 0x0c); /* no-local, retain as published */
	assert_int_equal(sub->num, 7);

	/* Retained with content type, a user property and message expiry. */
	const struct got_rec *r = find(&g, VS_REC_RETAIN, "v5/ret", 0);
	const struct got_rec *m = msg_of(&g, r->msg_id);
	assert_string_equal(m->data, "text/plain");
	static const uint8_t color[] = "\x26\x00\x05"
				       "color"
				       "\x00\x04"
				       "blue";
	assert_int_equal(m->users_len, sizeof(color) - 1);
	assert_memory_equal(m->users, color, sizeof(color) - 1);
	assert_true(m->has_expiry);
	assert_true(m->num > 80000 && m->num <= 86400);

	/* subV5: the retained QoS 2 message in flight awaiting PUBREC, then two queued, each with
	 * the subscription identifier. */
	const struct got_rec *q = find(&g, VS_REC_QUEUE, "subV5", 0);
	assert_int_equal(q->state, VS_QSTATE_WAIT_PUBREC);
	assert_int_equal(q->qos, 2);
	assert_int_equal(q->packet_id, 1);
	assert_int_equal(q->n_sub_ids, 1);
	assert_int_equal(q->num, 7);
	q = find(&g, VS_REC_QUEUE, "subV5", 1);
	assert_int_equal(q->state, VS_QSTATE_QUEUED);
	assert_int_equal(q->qos, 2);
	m = msg_of(&g, q->msg_id);
	static const uint8_t ab[] = "\x26\x00\x01"
				    "a"
				    "\x00\x01"
				    "1"
				    "\x26\x00\x01"
				    "b"
				    "\x00\x01"
				    "2";
	assert_int_equal(m->users_len, sizeof(ab) - 1);
	assert_memory_equal(m->users, ab, sizeof(ab) - 1);
	q = find(&g, VS_REC_QUEUE, "subV5", 2);
	assert_int_equal(q->qos, 1);
	assert_true(msg_of(&g, q->msg_id)->has_expiry);
	assert_null(find(&g, VS_REC_QUEUE, "subV5", 3)); /* the QoS 0 message was not kept */
	assert_non_null(find(&g, VS_REC_QUEUE, "sub311", 2));
	unload(&f);
}

static void import_adds_id_base_to_message_ids(void **state)
{
	struct file f = load("small.db");
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	assert_int_equal(vs_mosqdb_import(f.p, f.len, 1000000, NOW_WALL, collect, &g, &ii), 0);
	for (size_t i = 0; i < g.n; i++)
		if (g.r[i].type == VS_REC_MSG || g.r[i].type == VS_REC_QUEUE ||
		    g.r[i].type == VS_REC_RETAIN)
			assert_true(g.r[i].msg_id > 1000000);
	unload(&f);
}

/* Store ids near 2^64 in the file (every message, queue and retained entry naming them):
 * imported ids are dense after id_base, so our next ids cannot wrap onto them. */
static void import_renumbers_huge_store_ids(void **state)
{
	struct file f = load("small.db");
	uint8_t *p = malloc(f.len);
	memcpy(p, f.p, f.len);
	size_t at = 23;
	int changed = 0;
	while (at + 8 <= f.len) {
		size_t clen = (size_t)p[at + 4] << 24 | (size_t)p[at + 5] << 16 |
			      (size_t)p[at + 6] << 8 | p[at + 7];
		uint8_t t = p[at + 3];
		if (t == VS_MOSQDB_MSG_STORE || t == VS_MOSQDB_CLIENT_MSG ||
		    t == VS_MOSQDB_RETAIN) {
			memset(p + at + 8 + 1, 0xff, 7); /* little-endian: all but the low byte */
			changed++;
		}
		at += 8 + clen;
	}
	assert_true(changed >= 3);
	uint8_t *in = guard_copy(p, f.len);
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	assert_int_equal(vs_mosqdb_import(in, f.len, 1000000, NOW_WALL, collect, &g, &ii), 0);
	assert_true(ii.retained + ii.queued + ii.inflight > 0);
	size_t msgs = 0;
	for (size_t i = 0; i < g.n; i++)
		msgs += g.r[i].type == VS_REC_MSG;
	for (size_t i = 0; i < g.n; i++)
		if (g.r[i].type == VS_REC_MSG || g.r[i].type == VS_REC_QUEUE ||
		    g.r[i].type == VS_REC_RETAIN) {
			assert_true(g.r[i].msg_id > 1000000);
			assert_true(g.r[i].msg_id <= 1000000 + msgs);
		}
	guard_free(in, f.len);
	free(p);
	unload(&f);
}

static void import_leaves_out_expired_sessions_and_messages(void **state)
{
	struct file f = load("v5.db");
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	/* Two days later: subV5 (7200 s) and both expiring messages are gone; sub311 (3.1.1, never
	 * expires) stays with what did not expire. */
	assert_int_equal(vs_mosqdb_import(f.p, f.len, 0, NOW_WALL + 2 * 86400, collect, &g, &ii),
			 0);
	assert_null(find(&g, VS_REC_SESSION, "subV5", 0));
	assert_null(find(&g, VS_REC_QUEUE, "subV5", 0));
	assert_null(find(&g, VS_REC_SUB, "subV5", 0));
	assert_int_equal(ii.expired_sessions, 1);
	assert_int_equal(ii.expired_msgs, 2);
	assert_null(find(&g, VS_REC_RETAIN, "v5/ret", 0));
	assert_non_null(find(&g, VS_REC_RETAIN, "v5/q/r2", 0));
	assert_non_null(find(&g, VS_REC_SESSION, "sub311", 0));
	assert_int_equal(ii.queued + ii.inflight, 2);
	char sum[512];
	vs_mosqdb_import_summary(&ii, sum, sizeof(sum));
	assert_non_null(strstr(sum, "1 expired sessions, 2 expired messages"));
	unload(&f);
}

/* ---- damage ---- */

/* Every prefix of a real file: never an over-read (guard page), valid chunks before the cut are
 * imported, and the cut is reported unless it falls on a chunk boundary. */
static void truncate_at_every_byte(const char *name)
{
	struct file f = load(name);
	struct got full = {0};
	struct vs_mosqdb_import_info fi;
	assert_int_equal(vs_mosqdb_import(f.p, f.len, 0, NOW_WALL, collect, &full, &fi), 0);
	for (size_t len = 0; len < f.len; len++) {
		uint8_t *p = guard_copy(f.p, len);
		struct got g = {0};
		struct vs_mosqdb_import_info ii;
		int rc = vs_mosqdb_import(p, len, 0, NOW_WALL, collect, &g, &ii);
		if (len < 23) {
			assert_int_equal(rc, VS_EPROTO);
		} else {
			assert_int_equal(rc, 0);
			assert_true(ii.parse.valid_end <= len);
			assert_int_equal(ii.parse.damaged, ii.parse.valid_end != len);
			if (ii.parse.damaged)
				assert_true(ii.parse.why[0] != 0);
			assert_true(g.n <= full.n);
			assert_true(ii.sessions <= fi.sessions && ii.queued <= fi.queued &&
				    ii.retained <= fi.retained);
		}
		guard_free(p, len);
	}
	unload(&f);
}

static void truncated_small_db_imports_the_valid_prefix(void **state)
{
	truncate_at_every_byte("small.db");
}

static void truncated_v5_db_imports_the_valid_prefix(void **state)
{
	truncate_at_every_byte("v5.db");
}

/* Every byte of a real file xor'ed with each of a few patterns: no crash, no over-read, and any
 * emitted record is well formed (collect() fails on unexpected types). */
static void corrupt_every_byte_never_crashes(void **state)
{
	static const char *names[] = {"small.db", "v5.db"};
	static const uint8_t pats[] = {0x01, 0x80, 0xff, 0x7f};
	for (size_t k = 0; k < 2; k++) {
		struct file f = load(names[k]);
		uint8_t *p = malloc(f.len);
		for (size_t i = 0; i < f.len; i++)
			for (size_t j = 0; j < sizeof(pats); j++) {
				memcpy(p, f.p, f.len);
				p[i] ^= pats[j];
				uint8_t *g_in = guard_copy(p, f.len);
				struct got g = {0};
				struct vs_mosqdb_import_info ii;
				int rc =
				    vs_mosqdb_import(g_in, f.len, 0, NOW_WALL, collect, &g, &ii);
				assert_true(rc == 0 || rc == VS_EPROTO);
				guard_free(g_in, f.len);
			}
		free(p);
		unload(&f);
	}
}

static void huge_chunk_length_stops_there_and_keeps_what_came_before(void **state)
{
	struct file f = load("small.db");
	/* Find the first client chunk and claim it runs for 4 GiB. */
	size_t at = 23;
	while (at + 8 <= f.len && f.p[at + 3] != VS_MOSQDB_CLIENT)
		at += 8 + ((size_t)f.p[at + 4] << 24 | (size_t)f.p[at + 5] << 16 |
			   (size_t)f.p[at + 6] << 8 | f.p[at + 7]);
	assert_true(at + 8 <= f.len);
	uint8_t *p = malloc(f.len);
	memcpy(p, f.p, f.len);
	memset(p + at + 4, 0xff, 4);
	uint8_t *in = guard_copy(p, f.len);
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	assert_int_equal(vs_mosqdb_import(in, f.len, 0, NOW_WALL, collect, &g, &ii), 0);
	assert_true(ii.parse.damaged);
	assert_int_equal(ii.parse.valid_end, at);
	assert_non_null(strstr(ii.parse.why, "client chunk"));
	assert_int_equal(ii.sessions, 0); /* the session was in the lost part */
	assert_int_equal(g.n, 0);	  /* messages are written only when something needs them */
	guard_free(in, f.len);
	free(p);
	unload(&f);
}

static void a_message_whose_lengths_overrun_its_chunk_is_damage(void **state)
{
	struct file f = load("small.db");
	uint8_t *p = malloc(f.len);
	memcpy(p, f.p, f.len);
	/* First chunk after the configuration is a message store: raise its topic length. */
	size_t msg = 23 + 8 + 16;
	assert_int_equal(p[msg + 3], VS_MOSQDB_MSG_STORE);
	p[msg + 8 + 26] = 0xff;
	uint8_t *in = guard_copy(p, f.len);
	struct vs_mosqdb_info info;
	unsigned per[8] = {0};
	assert_int_equal(vs_mosqdb_parse(in, f.len, count_chunk, per, &info), 1);
	assert_int_equal(info.valid_end, msg);
	assert_non_null(strstr(info.why, "message chunk"));
	assert_int_equal(per[VS_MOSQDB_CFG], 1);
	assert_int_equal(info.chunks, 1);
	guard_free(in, f.len);
	free(p);
	unload(&f);
}

static void not_a_mosquitto_db_or_old_version_is_refused_with_a_reason(void **state)
{
	struct vs_mosqdb_import_info ii;
	struct got g = {0};
	static const uint8_t junk[] = "VSDB not mosquitto at all, nope";
	assert_int_equal(vs_mosqdb_import(junk, sizeof(junk), 0, NOW_WALL, collect, &g, &ii),
			 VS_EPROTO);
	assert_non_null(strstr(ii.parse.why, "not a Mosquitto database"));

	struct file f = load("empty.db");
	uint8_t *p = malloc(f.len);
	memcpy(p, f.p, f.len);
	p[22] = 4; /* Mosquitto 1.5's format */
	assert_int_equal(vs_mosqdb_import(p, f.len, 0, NOW_WALL, collect, &g, &ii), VS_EPROTO);
	assert_non_null(strstr(ii.parse.why, "version 4"));
	p[22] = 5; /* Mosquitto 1.6's: read */
	assert_int_equal(vs_mosqdb_import(p, f.len, 0, NOW_WALL, collect, &g, &ii), 0);
	assert_int_equal(ii.parse.version, 5);
	free(p);
	unload(&f);
	assert_int_equal(vs_mosqdb_import(NULL, 0, 0, NOW_WALL, collect, &g, &ii), VS_EPROTO);
}

static void incoming_qos2_and_unknown_states_are_counted_not_imported(void **state)
{
	struct file f = load("small.db");
	uint8_t *p = malloc(f.len);
	memcpy(p, f.p, f.len);
	/* Walk to the client-message chunks; make the first incoming (direction 0) and the second
	 * carry state 0 (invalid). */
	size_t at = 23;
	int seen = 0;
	while (at + 8 <= f.len) {
		size_t clen = (size_t)p[at + 4] << 24 | (size_t)p[at + 5] << 16 |
			      (size_t)p[at + 6] << 8 | p[at + 7];
		if (p[at + 3] == VS_MOSQDB_CLIENT_MSG) {
			if (seen == 0)
				p[at + 8 + 15] = 0;
			else if (seen == 1)
				p[at + 8 + 13] = 0;
			seen++;
		}
		at += 8 + clen;
	}
	uint8_t *in = guard_copy(p, f.len);
	struct got g = {0};
	struct vs_mosqdb_import_info ii;
	assert_int_equal(vs_mosqdb_import(in, f.len, 0, NOW_WALL, collect, &g, &ii), 0);
	assert_int_equal(ii.incoming_qos2, 1);
	assert_int_equal(ii.bad, 1);
	assert_int_equal(ii.queued + ii.inflight, 2);
	guard_free(in, f.len);
	free(p);
	unload(&f);
}

/* ---- properties ---- */

static void prop_next_walks_a_block_and_rejects_overruns(void **state)
{
	static const uint8_t ok[] = {0x01, 0x01, 0x02, 0x00, 0x00, 0x0e, 0x10, 0x0b,
				     0x80, 0x01, 0x26, 0x00, 0x01, 'k',	 0x00, 0x00};
	struct vs_mosqdb_str b = {ok, sizeof(ok)};
	size_t pos = 0;
	struct vs_mosqdb_prop p;
	assert_int_equal(vs_mosqdb_prop_next(b, &pos, &p), 1);
	assert_int_equal(p.id, 0x01);
	assert_int_equal(p.num, 1);
	assert_int_equal(vs_mosqdb_prop_next(b, &pos, &p), 1);
	assert_int_equal(p.num, 3600);
	assert_int_equal(vs_mosqdb_prop_next(b, &pos, &p), 1);
	assert_int_equal(p.num, 128);
	assert_int_equal(vs_mosqdb_prop_next(b, &pos, &p), 1);
	assert_int_equal(p.str.len, 1);
	assert_int_equal(p.value.len, 0);
	assert_int_equal(p.raw.len, 6);
	assert_int_equal(vs_mosqdb_prop_next(b, &pos, &p), 0);

	for (size_t len = 1; len < sizeof(ok); len++) {
		uint8_t *in = guard_copy(ok, len);
		struct vs_mosqdb_str t = {in, len};
		int rc;
		pos = 0;
		while ((rc = vs_mosqdb_prop_next(t, &pos, &p)) > 0)
			;
		/* Cuts inside a property are malformed; cuts between properties end the block. */
		bool boundary = len == 2 || len == 7 || len == 10;
		assert_int_equal(rc, boundary ? 0 : VS_EPROTO);
		guard_free(in, len);
	}
	static const uint8_t unknown[] = {0x7f, 0x00};
	struct vs_mosqdb_str u = {unknown, sizeof(unknown)};
	pos = 0;
	assert_int_equal(vs_mosqdb_prop_next(u, &pos, &p), VS_EPROTO);
	static const uint8_t long_vbi[] = {0x0b, 0x80, 0x80, 0x80, 0x80, 0x01};
	struct vs_mosqdb_str v = {long_vbi, sizeof(long_vbi)};
	pos = 0;
	assert_int_equal(vs_mosqdb_prop_next(v, &pos, &p), VS_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_small_db_finds_every_chunk),
	    cmocka_unit_test(parse_empty_db_holds_only_the_configuration),
	    cmocka_unit_test(import_small_db_v311_session_retained_and_queue),
	    cmocka_unit_test(import_v5_db_keeps_properties_options_and_ids),
	    cmocka_unit_test(import_adds_id_base_to_message_ids),
	    cmocka_unit_test(import_renumbers_huge_store_ids),
	    cmocka_unit_test(import_leaves_out_expired_sessions_and_messages),
	    cmocka_unit_test(truncated_small_db_imports_the_valid_prefix),
	    cmocka_unit_test(truncated_v5_db_imports_the_valid_prefix),
	    cmocka_unit_test(corrupt_every_byte_never_crashes),
	    cmocka_unit_test(huge_chunk_length_stops_there_and_keeps_what_came_before),
	    cmocka_unit_test(a_message_whose_lengths_overrun_its_chunk_is_damage),
	    cmocka_unit_test(not_a_mosquitto_db_or_old_version_is_refused_with_a_reason),
	    cmocka_unit_test(incoming_qos2_and_unknown_states_are_counted_not_imported),
	    cmocka_unit_test(prop_next_walks_a_block_and_rejects_overruns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
