/*
 * Unit tests for src/persist: the record codec, commit + replay, damage at every byte of a torn
 * tail, corruption in the middle of a file, compaction under concurrent writers, a full disk,
 * and the directory lock. Test names read as a checklist.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include "base/error.h"
#include "guard.h"
#include "persist/crc32c.h"
#include "persist/format.h"
#include "persist/store.h"

/* ---- helpers ---- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmp_dir(void)
{
	char *d = strdup("/tmp/vs-persist-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static struct vs_rec_str S(const char *s) {
	struct vs_rec_str v = {(const uint8_t *)s, strlen(s)};
	return v;
}

static struct vs_rec
session_rec(const char *cid, uint32_t expiry)
{
	struct vs_rec r = {.type = VS_REC_SESSION};
	r.u.session.client_id = S(cid);
	r.u.session.expiry_interval = expiry;
	r.u.session.protocol_version = 5;
	r.u.session.offline_since_wall = 1700000000;
	r.u.session.flags = 3;
	return r;
}

/* Replay collector: client ids of SESSION records, in order, and counts per type. */
struct got {
	char **ids;
	size_t n, cap;
	uint64_t per_type[VS_REC_TYPE_MAX + 1];
};

static int collect(void *ctx, const struct vs_rec *r)
{
	struct got *g = ctx;
	g->per_type[r->type]++;
	if (r->type != VS_REC_SESSION && r->type != VS_REC_SESSION_DEL)
		return 0;
	const struct vs_rec_str *id =
	    r->type == VS_REC_SESSION ? &r->u.session.client_id : &r->u.client_id;
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->ids = realloc(g->ids, g->cap * sizeof(*g->ids));
	}
	char *s = malloc(id->len + 2);
	s[0] = r->type == VS_REC_SESSION ? '+' : '-';
	memcpy(s + 1, id->p, id->len);
	s[id->len + 1] = 0;
	g->ids[g->n++] = s;
	return 0;
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->ids[i]);
	free(g->ids);
	memset(g, 0, sizeof(*g));
}

static struct vs_store *open_store(const char *dir, enum vs_fsync_policy p)
{
	struct vs_store *s = NULL;
	char err[256];
	int rc = vs_store_open(dir, p, 10, NULL, &s, err, sizeof(err));
	if (rc)
		print_error("open: %s\n", err);
	assert_int_equal(rc, 0);
	return s;
}

/* Opens, replays into g (may be NULL), returns the open store. */
static struct vs_store *reopen(const char *dir, struct got *g, struct vs_store_replay_info *info)
{
	struct vs_store *s = open_store(dir, VS_FSYNC_NEVER);
	struct got local = {0};
	long n = vs_store_replay(s, collect, g ? g : &local, info);
	assert_true(n >= 0);
	got_free(&local);
	return s;
}

static void write_sessions(struct vs_store *s, const char *prefix, int from, int to)
{
	struct vs_store_buf b = {0};
	char id[64];
	for (int i = from; i < to; i++) {
		snprintf(id, sizeof(id), "%s%d", prefix, i);
		struct vs_rec r = session_rec(id, (uint32_t)i);
		assert_int_equal(vs_store_append(&b, &r), 0);
		assert_int_equal(vs_store_commit(s, &b), 0);
	}
	vs_store_buf_fini(&b);
}

static int count_files(const char *dir, const char *needle)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "ls %s | grep -c -- '%s'", dir, needle);
	FILE *p = popen(cmd, "r");
	int n = 0;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

static char *path_of(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

static off_t file_size(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return st.st_size;
}

/* ---- codec ---- */

static void crc32c_known_answer(void **state)
{
	assert_int_equal(vs_crc32c(0, "123456789", 9), 0xe3069283);
	/* split updates equal one pass, including lengths not a multiple of 8 */
	uint8_t b[301];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 7);
	uint32_t one = vs_crc32c(0, b, sizeof(b));
	assert_int_equal(vs_crc32c(vs_crc32c(0, b, 13), b + 13, sizeof(b) - 13), one);
}

/* CRC32C one bit at a time, straight from the polynomial. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t c = ~crc;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return ~c;
}

static void crc32c_every_tail(void **state)
{
	/* Every length to 64 at every alignment to 8: the 8-byte steps and each 4-, 2- and
	 * 1-byte tail step (a record header is 6 bytes) against the plain definition. */
	uint8_t b[80];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 37 + 11);
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n <= 64; n++)
			assert_int_equal(vs_crc32c(0x1234, b + off, n),
					 crc_bitwise(0x1234, b + off, n));
}

static void all_records(struct vs_rec *v, uint32_t *ids)
{
	memset(v, 0, sizeof(*v) * 12);
	v[0] = session_rec("client-1", 3600);
	v[0].u.session.has_floor = true; /* appended field (a delivery floor) */
	v[0].u.session.floor = 0xfffffff0u;
	v[1].type = VS_REC_SESSION_DEL;
	v[1].u.client_id = S("client-2");
	v[2].type = VS_REC_SUB;
	v[2].u.sub = (struct vs_rec_sub){S("c"), S("$share/g/a/+/b"), 2, 0x2c, 268435455};
	v[3].type = VS_REC_UNSUB;
	v[3].u.sub.client_id = S("c");
	v[3].u.sub.filter = S("a/#");
	v[4].type = VS_REC_MSG;
	struct vs_rec_msg *m = &v[4].u.msg;
	m->msg_id = 0x1122334455667788ull;
	m->topic = S("sensors/1/temp");
	m->payload = S("21.5");
	m->qos = 1;
	m->retain = true;
	m->created_wall = -5;
	m->has_expiry = true;
	m->expiry_interval = 60;
	m->has_payload_format = true;
	m->payload_format = 1;
	m->content_type = S("text/plain");
	m->response_topic = S("");    /* present but empty */
	m->correlation_data.p = NULL; /* absent */
	m->user_props_raw = S("\x26\x00\x01k\x00\x01v");
	m->origin_client_id = S("pub");
	m->sseq = 0x0102030405060708ull; /* appended field (a cluster's stream sequence) */
	v[5].type = VS_REC_RETAIN;
	v[5].u.retain = (struct vs_rec_retain){S("sensors/1/temp"), 42, 9};
	v[6].type = VS_REC_RETAIN_DEL;
	v[6].u.retain.topic = S("x");
	v[7].type = VS_REC_QUEUE;
	ids[0] = 1;
	ids[1] = 268435455;
	ids[2] = 77;
	v[7].u.queue = (struct vs_rec_queue){S("sub-1"), 42,   2,   true, VS_QSTATE_WAIT_PUBCOMP,
					     65535,	 true, ids, 3,	  5};
	v[8].type = VS_REC_DEQUEUE;
	v[8].u.dequeue = (struct vs_rec_dequeue){S("sub-1"), 42, 5};
	v[9].type = VS_REC_INQOS2;
	v[9].u.inqos2 = (struct vs_rec_inqos2){S("c"), 7, true};
	v[10].type = VS_REC_WILL;
	v[10].u.will = (struct vs_rec_will){S("c"), 9, 1700000123};
	v[11].type = VS_REC_WILL_DEL;
	v[11].u.client_id = S("c");
}

static void str_eq(struct vs_rec_str a, struct vs_rec_str b)
{
	assert_int_equal(a.p == NULL, b.p == NULL);
	assert_int_equal(a.len, b.len);
	if (a.len)
		assert_memory_equal(a.p, b.p, a.len);
}

static void rec_eq(const struct vs_rec *a, const struct vs_rec *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(b->version, VS_REC_VERSION);
	switch (a->type) {
	case VS_REC_SESSION:
		str_eq(a->u.session.client_id, b->u.session.client_id);
		assert_int_equal(a->u.session.expiry_interval, b->u.session.expiry_interval);
		assert_int_equal(a->u.session.protocol_version, b->u.session.protocol_version);
		assert_int_equal(a->u.session.offline_since_wall, b->u.session.offline_since_wall);
		assert_int_equal(a->u.session.flags, b->u.session.flags);
		assert_int_equal(a->u.session.has_floor, b->u.session.has_floor);
		assert_int_equal(a->u.session.floor, b->u.session.floor);
		break;
	case VS_REC_SESSION_DEL:
	case VS_REC_WILL_DEL:
		str_eq(a->u.client_id, b->u.client_id);
		break;
	case VS_REC_SUB:
		assert_int_equal(a->u.sub.qos, b->u.sub.qos);
		assert_int_equal(a->u.sub.options, b->u.sub.options);
		assert_int_equal(a->u.sub.sub_id, b->u.sub.sub_id);
		/* fall through */
	case VS_REC_UNSUB:
		str_eq(a->u.sub.client_id, b->u.sub.client_id);
		str_eq(a->u.sub.filter, b->u.sub.filter);
		break;
	case VS_REC_MSG: {
		const struct vs_rec_msg *x = &a->u.msg, *y = &b->u.msg;
		assert_int_equal(x->msg_id, y->msg_id);
		str_eq(x->topic, y->topic);
		str_eq(x->payload, y->payload);
		assert_int_equal(x->qos, y->qos);
		assert_int_equal(x->retain, y->retain);
		assert_int_equal(x->created_wall, y->created_wall);
		assert_int_equal(x->has_expiry, y->has_expiry);
		assert_int_equal(x->expiry_interval, y->expiry_interval);
		assert_int_equal(x->has_payload_format, y->has_payload_format);
		assert_int_equal(x->payload_format, y->payload_format);
		str_eq(x->content_type, y->content_type);
		str_eq(x->response_topic, y->response_topic);
		str_eq(x->correlation_data, y->correlation_data);
		str_eq(x->user_props_raw, y->user_props_raw);
		str_eq(x->origin_client_id, y->origin_client_id);
		assert_int_equal(x->sseq, y->sseq);
		break;
	}
	case VS_REC_RETAIN:
		assert_int_equal(a->u.retain.msg_id, b->u.retain.msg_id);
		assert_int_equal(a->u.retain.version, b->u.retain.version);
		/* fall through */
	case VS_REC_RETAIN_DEL:
		str_eq(a->u.retain.topic, b->u.retain.topic);
		break;
	case VS_REC_QUEUE: {
		const struct vs_rec_queue *x = &a->u.queue, *y = &b->u.queue;
		str_eq(x->client_id, y->client_id);
		assert_int_equal(x->msg_id, y->msg_id);
		assert_int_equal(x->qos, y->qos);
		assert_int_equal(x->retain, y->retain);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->packet_id, y->packet_id);
		assert_int_equal(x->dup, y->dup);
		assert_int_equal(x->n_sub_ids, y->n_sub_ids);
		assert_memory_equal(x->sub_ids, y->sub_ids, x->n_sub_ids * 4);
		break;
	}
	case VS_REC_DEQUEUE:
		str_eq(a->u.dequeue.client_id, b->u.dequeue.client_id);
		assert_int_equal(a->u.dequeue.msg_id, b->u.dequeue.msg_id);
		assert_int_equal(a->u.dequeue.seq, b->u.dequeue.seq);
		break;
	case VS_REC_INQOS2:
		str_eq(a->u.inqos2.client_id, b->u.inqos2.client_id);
		assert_int_equal(a->u.inqos2.packet_id, b->u.inqos2.packet_id);
		assert_int_equal(a->u.inqos2.add, b->u.inqos2.add);
		break;
	case VS_REC_WILL:
		str_eq(a->u.will.client_id, b->u.will.client_id);
		assert_int_equal(a->u.will.msg_id, b->u.will.msg_id);
		assert_int_equal(a->u.will.publish_at_wall, b->u.will.publish_at_wall);
		break;
	default:
		fail();
	}
}

static void every_record_type_round_trips(void **state)
{
	struct vs_rec v[12];
	uint32_t ids[3];
	struct vs_store_buf b = {0};
	all_records(v, ids);
	for (int i = 0; i < 12; i++) {
		size_t before = b.len;
		assert_int_equal(vs_store_append(&b, &v[i]), 0);
		assert_int_equal(b.len - before, (size_t)vs_rec_encoded_size(&v[i]));
	}
	assert_int_equal(b.nrec, 12);
	/* decode from a guard-page copy: any over-read faults */
	uint8_t *g = guard_copy(b.data, b.len);
	uint32_t *scratch = NULL;
	size_t cap = 0, off = 0;
	for (int i = 0; i < 12; i++) {
		struct vs_rec r;
		long n = vs_rec_decode(g + off, b.len - off, &r, &scratch, &cap);
		assert_true(n > 0);
		assert_true(vs_rec_known(&r));
		rec_eq(&v[i], &r);
		off += (size_t)n;
	}
	assert_int_equal(off, b.len);
	free(scratch);
	guard_free(g, b.len);
	vs_store_buf_fini(&b);
}

static void append_at_every_room_left(void **state)
{
	/* A record is written in one pass when the buffer has room and again after it grew when
	 * it did not (fields past the room are only counted): whatever room is left, from none
	 * to more than the record, the bytes are those of an append into an empty buffer. */
	struct vs_rec v[12];
	uint32_t ids[3];
	all_records(v, ids);
	for (int i = 0; i < 12; i++) {
		struct vs_store_buf want = {0};
		assert_int_equal(vs_store_append(&want, &v[i]), 0);
		for (size_t room = 0; room <= want.len + 2; room++) {
			struct vs_store_buf b = {0};
			b.cap = 4096;
			b.data = malloc(b.cap);
			memset(b.data, 0xa5, b.cap);
			b.len = b.cap - room;
			assert_int_equal(vs_store_append(&b, &v[i]), 0);
			assert_int_equal(b.len - (4096 - room), want.len);
			assert_memory_equal(b.data + 4096 - room, want.data, want.len);
			assert_int_equal(b.nrec, 1);
			vs_store_buf_fini(&b);
		}
		vs_store_buf_fini(&want);
	}
}

static void every_prefix_of_a_record_needs_more(void **state)
{
	struct vs_rec v[12];
	uint32_t ids[3];
	all_records(v, ids);
	for (int i = 0; i < 12; i++) {
		struct vs_store_buf b = {0};
		assert_int_equal(vs_store_append(&b, &v[i]), 0);
		for (size_t k = 0; k < b.len; k++) {
			uint8_t *g = guard_copy(b.data, k);
			struct vs_rec r;
			uint32_t *scratch = NULL;
			size_t cap = 0;
			assert_int_equal(vs_rec_decode(g, k, &r, &scratch, &cap), 0);
			guard_free(g, k);
		}
		vs_store_buf_fini(&b);
	}
}

static void every_flipped_bit_is_detected(void **state)
{
	struct vs_rec v[12];
	uint32_t ids[3];
	all_records(v, ids);
	struct vs_store_buf b = {0};
	assert_int_equal(vs_store_append(&b, &v[4]), 0);
	for (size_t i = 0; i < b.len * 8; i++) {
		b.data[i / 8] ^= (uint8_t)(1u << (i % 8));
		struct vs_rec r;
		uint32_t *scratch = NULL;
		size_t cap = 0;
		long n = vs_rec_decode(b.data, b.len, &r, &scratch, &cap);
		/* a flipped length bit may also just make the record look longer than the buffer */
		assert_true(n == VS_EPROTO || n == 0);
		free(scratch);
		b.data[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	vs_store_buf_fini(&b);
}

static void oversized_fields_and_unknown_types_are_refused(void **state)
{
	struct vs_store_buf b = {0};
	static uint8_t big[70000];
	struct vs_rec r = session_rec("x", 0);
	r.u.session.client_id.p = big;
	r.u.session.client_id.len = 65536;
	assert_int_equal(vs_store_append(&b, &r), VS_ETOOBIG);
	r.type = 99;
	assert_int_equal(vs_store_append(&b, &r), VS_EPROTO);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.nrec, 0);
	vs_store_buf_fini(&b);
}

static void newer_record_version_is_skipped_and_reported(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	struct vs_store_buf b = {0};
	struct vs_rec r = session_rec("old", 1);
	assert_int_equal(vs_store_append(&b, &r), 0);
	r = session_rec("new", 2);
	assert_int_equal(vs_store_append(&b, &r), 0);
	/* patch the second record to version 2 with a valid CRC, as a newer writer would */
	size_t off = b.len - (size_t)vs_rec_encoded_size(&r);
	uint8_t *h = b.data + off;
	h[5] = 2;
	uint32_t crc = vs_crc32c(vs_crc32c(0, h, 6), h + VS_REC_HDR_SIZE, b.len - off - 10);
	memcpy(h + 6, &crc, 4); /* little-endian host */
	r = session_rec("after", 3);
	assert_int_equal(vs_store_append(&b, &r), 0);
	assert_int_equal(vs_store_commit(s, &b), 0);
	vs_store_close(s);

	struct got g = {0};
	struct vs_store_replay_info info;
	s = reopen(dir, &g, &info);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.ids[0], "+old");
	assert_string_equal(g.ids[1], "+after");
	assert_int_equal(info.unknown, 1);
	vs_store_close(s);
	got_free(&g);
	vs_store_buf_fini(&b);
	rm_rf(dir);
	free(dir);
}

/* ---- store ---- */

static void commit_then_replay_returns_every_record_in_order(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	struct vs_rec v[12];
	uint32_t ids[3];
	all_records(v, ids);
	struct vs_store_buf b;
	vs_store_buf_init(&b);
	for (int i = 0; i < 12; i++)
		assert_int_equal(vs_store_append(&b, &v[i]), 0);
	assert_int_equal(vs_store_commit(s, &b), 0);
	assert_int_equal(b.len, 0);
	assert_true(vs_store_healthy(s));
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	assert_int_equal(st.records, 12);
	assert_int_equal(st.commits, 1);
	vs_store_close(s);

	struct got g = {0};
	struct vs_store_replay_info info;
	s = reopen(dir, &g, &info);
	assert_int_equal(info.records, 12);
	for (int t = 1; t <= VS_REC_TYPE_MAX; t++)
		assert_int_equal(g.per_type[t], 1);
	assert_int_equal(info.truncated_tails + info.corrupt_files, 0);
	vs_store_close(s);
	got_free(&g);
	vs_store_buf_fini(&b);
	rm_rf(dir);
	free(dir);
}

static void replay_twice_or_commit_before_replay_is_refused(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = open_store(dir, VS_FSYNC_BATCH);
	struct vs_store_buf b = {0};
	struct vs_rec r = session_rec("a", 1);
	assert_int_equal(vs_store_append(&b, &r), 0);
	assert_int_equal(vs_store_commit(s, &b), VS_ESTATE);
	assert_int_equal(b.nrec, 1); /* kept */
	assert_int_equal(vs_store_replay(s, collect, &(struct got){0}, NULL), 0);
	assert_int_equal(vs_store_replay(s, collect, &(struct got){0}, NULL), VS_ESTATE);
	assert_int_equal(vs_store_commit(s, &b), 0);
	vs_store_close(s);
	vs_store_buf_fini(&b);
	rm_rf(dir);
	free(dir);
}

static void second_open_of_a_locked_store_fails_with_a_clear_message(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = open_store(dir, VS_FSYNC_NEVER), *s2 = NULL;
	char err[512];
	int rc = vs_store_open(dir, VS_FSYNC_NEVER, 0, NULL, &s2, err, sizeof(err));
	assert_int_equal(rc, -EWOULDBLOCK);
	assert_null(s2);
	assert_non_null(strstr(err, "in use by another process"));
	assert_non_null(strstr(err, dir));
	vs_store_close(s);
	/* released on close */
	assert_int_equal(vs_store_open(dir, VS_FSYNC_NEVER, 0, NULL, &s2, err, sizeof(err)), 0);
	vs_store_close(s2);
	rm_rf(dir);
	free(dir);
}

struct mt_arg {
	struct vs_store *s;
	int id, n, batch;
};

static void *mt_writer(void *p)
{
	struct mt_arg *a = p;
	struct vs_store_buf b = {0};
	char cid[32];
	for (int i = 0; i < a->n; i++) {
		snprintf(cid, sizeof(cid), "t%d-%d", a->id, i);
		struct vs_rec r = session_rec(cid, (uint32_t)i);
		if (vs_store_append(&b, &r) != 0)
			abort();
		if ((i + 1) % a->batch == 0 && vs_store_commit(a->s, &b) != 0)
			abort();
	}
	if (vs_store_commit(a->s, &b) != 0)
		abort();
	vs_store_buf_fini(&b);
	return NULL;
}

/* Each thread's records must all be there, in that thread's order. */
static void check_threads(struct got *g, int threads, int n)
{
	int *next = calloc((size_t)threads, sizeof(int));
	assert_int_equal(g->n, (size_t)(threads * n));
	for (size_t i = 0; i < g->n; i++) {
		int t, k;
		assert_int_equal(sscanf(g->ids[i], "+t%d-%d", &t, &k), 2);
		assert_int_equal(k, next[t]);
		next[t]++;
	}
	free(next);
}

static void concurrent_writers_with_batch_fsync_all_replay(void **state)
{
	enum { T = 4, N = 2000 };
	char *dir = tmp_dir();
	struct vs_store *s = open_store(dir, VS_FSYNC_BATCH);
	assert_int_equal(vs_store_replay(s, collect, &(struct got){0}, NULL), 0);
	pthread_t th[T];
	struct mt_arg a[T];
	for (int i = 0; i < T; i++) {
		a[i] = (struct mt_arg){s, i, N, 10};
		pthread_create(&th[i], NULL, mt_writer, &a[i]);
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	assert_int_equal(st.records, T * N);
	/* group commit: some commits shared an fdatasync */
	print_message("    %llu commits, %llu fdatasyncs\n", (unsigned long long)st.commits,
		      (unsigned long long)st.fsyncs);
	assert_true(st.fsyncs <= st.commits);
	vs_store_close(s);
	struct got g = {0};
	s = reopen(dir, &g, NULL);
	check_threads(&g, T, N);
	vs_store_close(s);
	got_free(&g);
	rm_rf(dir);
	free(dir);
}

static void interval_policy_syncs_in_the_background(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = open_store(dir, VS_FSYNC_INTERVAL);
	assert_int_equal(vs_store_replay(s, collect, &(struct got){0}, NULL), 0);
	write_sessions(s, "i", 0, 50);
	usleep(60 * 1000);
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	assert_true(st.fsyncs >= 1);
	vs_store_close(s);
	struct got g = {0};
	s = reopen(dir, &g, NULL);
	assert_int_equal(g.n, 50);
	vs_store_close(s);
	got_free(&g);
	rm_rf(dir);
	free(dir);
}

static void torn_tail_at_every_byte_of_the_last_record_keeps_all_before(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	write_sessions(s, "c", 0, 5);
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	vs_store_close(s);
	char *log = path_of(dir, "log-00000001.vlog");
	off_t full = file_size(log);
	struct vs_rec last = session_rec("c4", 4);
	off_t start = full - vs_rec_encoded_size(&last);
	uint8_t *orig = malloc((size_t)full);
	int fd = open(log, O_RDONLY);
	assert_int_equal(read(fd, orig, (size_t)full), full);
	close(fd);

	for (off_t cut = start; cut < full; cut++) {
		/* restore the original file cut at this offset, nothing else in the dir */
		rm_rf(dir);
		mkdir(dir, 0700);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_int_equal(write(fd, orig, (size_t)cut), cut);
		close(fd);
		struct got g = {0};
		struct vs_store_replay_info info;
		s = reopen(dir, &g, &info);
		assert_int_equal(g.n, 4);
		assert_string_equal(g.ids[3], "+c3");
		assert_int_equal(info.truncated_tails, cut > start ? 1 : 0);
		assert_int_equal(info.corrupt_files, 0);
		assert_int_equal(file_size(log), start); /* cut back to the last whole record */
		vs_store_close(s);
		got_free(&g);
	}
	/* zeros after the last record (file size extended, data never landed) are a torn tail */
	rm_rf(dir);
	mkdir(dir, 0700);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, orig, (size_t)start), start);
	static const uint8_t zeros[4096];
	assert_int_equal(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
	close(fd);
	struct got g = {0};
	struct vs_store_replay_info info;
	s = reopen(dir, &g, &info);
	assert_int_equal(g.n, 4);
	assert_int_equal(info.truncated_tails, 1);
	assert_int_equal(info.lost_bytes, 4096);
	vs_store_close(s);
	got_free(&g);
	free(orig);
	free(log);
	rm_rf(dir);
	free(dir);
}

static void flipped_byte_mid_file_sets_it_aside_and_keeps_the_rest(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	write_sessions(s, "a", 0, 10); /* log 1 */
	vs_store_close(s);
	s = reopen(dir, NULL, NULL);
	write_sessions(s, "b", 0, 10); /* log 2 */
	vs_store_close(s);

	/* flip a byte inside record a5 of log 1 */
	char *log1 = path_of(dir, "log-00000001.vlog");
	struct vs_rec r = session_rec("a0", 0);
	long rl = vs_rec_encoded_size(&r);
	off_t at = VS_FILE_HDR_SIZE + 5 * rl + 12;
	int fd = open(log1, O_RDWR);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);

	struct got g = {0};
	struct vs_store_replay_info info;
	s = reopen(dir, &g, &info);
	assert_int_equal(info.corrupt_files, 1);
	assert_int_equal(info.lost_records, 4); /* a6..a9 still looked valid */
	assert_int_equal(g.n, 15);		/* a0..a4, then all of log 2 */
	assert_string_equal(g.ids[4], "+a4");
	assert_string_equal(g.ids[5], "+b0");
	assert_string_equal(g.ids[14], "+b9");
	assert_int_equal(count_files(dir, "log-00000001.vlog.corrupt-"), 1);
	vs_store_close(s);
	got_free(&g);

	/* the next start is clean and sees the same */
	s = reopen(dir, &g, &info);
	assert_int_equal(info.corrupt_files + info.truncated_tails, 0);
	assert_int_equal(g.n, 15);
	vs_store_close(s);
	got_free(&g);
	free(log1);
	rm_rf(dir);
	free(dir);
}

static void damaged_header_sets_the_file_aside(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	write_sessions(s, "a", 0, 3);
	vs_store_close(s);
	s = reopen(dir, NULL, NULL);
	write_sessions(s, "b", 0, 3);
	vs_store_close(s);
	char *log1 = path_of(dir, "log-00000001.vlog");
	int fd = open(log1, O_RDWR);
	assert_int_equal(pwrite(fd, "X", 1, 0), 1);
	close(fd);
	struct got g = {0};
	struct vs_store_replay_info info;
	s = reopen(dir, &g, &info);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.ids[0], "+b0");
	assert_int_equal(info.corrupt_files, 1);
	assert_int_equal(access(log1, F_OK), -1);
	vs_store_close(s);
	got_free(&g);
	free(log1);
	rm_rf(dir);
	free(dir);
}

/* A snapshot writer over a shared state: the state is a set of client ids guarded by mu. */
struct compact {
	struct vs_store *s;
	pthread_mutex_t mu;
	char live[4000]; /* live[i]: session i exists */
	int n;
	atomic_int done; /* the writer finished */
};

static void *compact_writer(void *p)
{
	struct compact *c = p;
	struct vs_store_buf b = {0};
	char cid[32];
	for (int i = 0; i < c->n; i++) {
		/* create i, delete i/2 when i is even: a mix of idempotent sets and deletes */
		int del = (i % 2 == 0) ? i / 2 : -1;
		pthread_mutex_lock(&c->mu);
		c->live[i] = 1;
		if (del >= 0)
			c->live[del] = 0;
		pthread_mutex_unlock(&c->mu);
		snprintf(cid, sizeof(cid), "s%d", i);
		struct vs_rec r = session_rec(cid, 0);
		if (vs_store_append(&b, &r))
			abort();
		if (del >= 0) {
			snprintf(cid, sizeof(cid), "s%d", del);
			r.type = VS_REC_SESSION_DEL;
			r.u.client_id = S(cid);
			if (vs_store_append(&b, &r))
				abort();
		}
		if (vs_store_commit(c->s, &b))
			abort();
		if (i % 10 == 0)
			usleep(100); /* let snapshots interleave with the writes */
	}
	vs_store_buf_fini(&b);
	atomic_store(&c->done, 1);
	return NULL;
}

static void snapshot(struct compact *c)
{
	struct vs_store_snap *sn;
	struct vs_store_buf b = {0};
	char cid[32];
	assert_int_equal(vs_store_snapshot_begin(c->s, &sn), 0);
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->n; i++) {
		if (!c->live[i])
			continue;
		snprintf(cid, sizeof(cid), "s%d", i);
		struct vs_rec r = session_rec(cid, 0);
		assert_int_equal(vs_store_append(&b, &r), 0);
	}
	pthread_mutex_unlock(&c->mu);
	assert_int_equal(vs_store_snapshot_write(sn, &b), 0);
	assert_int_equal(vs_store_snapshot_end(sn, true), 0);
	vs_store_buf_fini(&b);
}

static void compaction_while_appending_replays_to_the_same_state(void **state)
{
	char *dir = tmp_dir();
	struct compact c = {.n = 4000};
	pthread_mutex_init(&c.mu, NULL);
	c.s = open_store(dir, VS_FSYNC_NEVER);
	assert_int_equal(vs_store_replay(c.s, collect, &(struct got){0}, NULL), 0);
	pthread_t th;
	pthread_create(&th, NULL, compact_writer, &c);
	int snaps = 0;
	while (!atomic_load(&c.done)) {
		snapshot(&c);
		snaps++;
	}
	pthread_join(th, NULL);
	snapshot(&c); /* one more with nothing running */
	vs_store_close(c.s);
	/* old snapshots and segments were removed: one snapshot, its segment */
	assert_int_equal(count_files(dir, "^snap-.*vdb$"), 1);
	assert_int_equal(count_files(dir, "^log-"), 1);

	struct got g = {0};
	struct vs_store_replay_info info;
	struct vs_store *s = reopen(dir, &g, &info);
	assert_true(info.snapshot_epoch > 1);
	/* rebuild from the replay: + sets, - clears */
	char *live = calloc(4000, 1);
	for (size_t i = 0; i < g.n; i++)
		live[atoi(g.ids[i] + 2)] = g.ids[i][0] == '+';
	assert_memory_equal(live, c.live, 4000);
	print_message("    %d snapshots while writing\n", snaps);
	free(live);
	got_free(&g);
	vs_store_close(s);

	/* a crash mid-snapshot leaves a .tmp: ignored, then removed */
	char *tmp = path_of(dir, "snap-00000999.tmp");
	int fd = open(tmp, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "junk", 4), 4);
	close(fd);
	s = reopen(dir, &g, &info);
	assert_int_equal(access(tmp, F_OK), -1);
	vs_store_close(s);
	got_free(&g);
	free(tmp);
	pthread_mutex_destroy(&c.mu);
	rm_rf(dir);
	free(dir);
}

static void snapshot_replaces_old_logs_and_an_unsealed_one_is_repaired(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	write_sessions(s, "a", 0, 3);
	struct vs_store_snap *sn;
	assert_int_equal(vs_store_snapshot_begin(s, &sn), 0);
	struct vs_store_buf b = {0};
	struct vs_rec r = session_rec("snapped", 0);
	assert_int_equal(vs_store_append(&b, &r), 0);
	assert_int_equal(vs_store_snapshot_write(sn, &b), 0);
	assert_int_equal(vs_store_snapshot_end(sn, true), 0);
	write_sessions(s, "b", 0, 2);
	vs_store_close(s);

	struct got g = {0};
	s = reopen(dir, &g, NULL);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.ids[0], "+snapped");
	vs_store_close(s);
	got_free(&g);

	/* a snapshot that lost its end record is repaired and sealed, with a warning */
	char *snap = path_of(dir, "snap-00000002.vdb");
	off_t sz = file_size(snap);
	assert_int_equal(truncate(snap, sz - 3), 0);
	struct vs_store_replay_info info;
	s = reopen(dir, &g, &info);
	assert_int_equal(info.corrupt_files, 1);
	assert_int_equal(g.n, 3);
	vs_store_close(s);
	got_free(&g);
	s = reopen(dir, &g, &info);
	assert_int_equal(info.corrupt_files, 0);
	assert_int_equal(g.n, 3);
	vs_store_close(s);
	got_free(&g);
	vs_store_buf_fini(&b);
	free(snap);
	rm_rf(dir);
	free(dir);
}

/* Commits sessions "f<i>" one per commit until a commit fails. Returns how many succeeded. */
static int fill_until_error(struct vs_store *s, struct vs_store_buf *b, int *err)
{
	static uint8_t pad[700];
	char cid[32];
	int i;
	for (i = 0;; i++) {
		snprintf(cid, sizeof(cid), "f%d", i);
		struct vs_rec r = session_rec(cid, 0);
		assert_int_equal(vs_store_append(b, &r), 0);
		struct vs_rec m = {.type = VS_REC_MSG};
		m.u.msg.msg_id = (uint64_t)i;
		m.u.msg.payload.p = pad;
		m.u.msg.payload.len = sizeof(pad);
		assert_int_equal(vs_store_append(b, &m), 0);
		*err = vs_store_commit(s, b);
		if (*err)
			return i;
	}
}

static void full_disk_loses_nothing_that_commit_reported_written(void **state)
{
	char *dir = tmp_dir();
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") != 0) {
		print_message("    tmpfs mount not permitted (%s): skipped\n", strerror(errno));
		rmdir(dir);
		free(dir);
		skip();
	}
	struct vs_store *s = reopen(dir, NULL, NULL);
	struct vs_store_buf b = {0};
	int err;
	int ok = fill_until_error(s, &b, &err);
	assert_int_equal(err, -ENOSPC);
	assert_false(vs_store_healthy(s));
	assert_true(ok > 10);
	assert_int_equal(b.nrec, 2); /* kept for the retry */
	/* the segment holds only whole records: its size is what the commits reported */
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	char *log = path_of(dir, "log-00000001.vlog");
	assert_int_equal(file_size(log), (off_t)st.segment_bytes);
	/* retrying while still full fails the same way and keeps the records */
	assert_int_equal(vs_store_commit(s, &b), -ENOSPC);
	assert_int_equal(b.nrec, 2);
	/* space returns */
	assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=1m"), 0);
	assert_int_equal(vs_store_commit(s, &b), 0);
	assert_true(vs_store_healthy(s));
	vs_store_close(s);
	struct got g = {0};
	struct vs_store_replay_info info;
	s = reopen(dir, &g, &info);
	assert_int_equal(g.n, ok + 1); /* every committed record, and the retried one */
	assert_int_equal(g.per_type[VS_REC_MSG], ok + 1);
	assert_int_equal(info.truncated_tails + info.corrupt_files, 0);
	for (int i = 0; i <= ok; i++) {
		char want[32];
		snprintf(want, sizeof(want), "+f%d", i);
		assert_string_equal(g.ids[i], want);
	}
	vs_store_close(s);
	got_free(&g);
	vs_store_buf_fini(&b);
	free(log);
	umount(dir);
	rmdir(dir);
	free(dir);
}

static void file_size_limit_error_is_reported_and_retried(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 20000;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	struct vs_store_buf b = {0};
	int err;
	int ok = fill_until_error(s, &b, &err);
	assert_int_equal(err, -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(vs_store_commit(s, &b), 0);
	vs_store_close(s);
	struct got g = {0};
	s = reopen(dir, &g, NULL);
	assert_int_equal(g.n, ok + 1);
	vs_store_close(s);
	got_free(&g);
	vs_store_buf_fini(&b);
	rm_rf(dir);
	free(dir);
}

static void check_reports_state_and_damage(void **state)
{
	char *dir = tmp_dir();
	struct vs_store *s = reopen(dir, NULL, NULL);
	struct vs_rec v[12];
	uint32_t ids[3];
	all_records(v, ids);
	struct vs_store_buf b = {0};
	for (int i = 0; i < 12; i++)
		assert_int_equal(vs_store_append(&b, &v[i]), 0);
	struct vs_rec q = v[7];
	q.u.queue.msg_id = 0x1122334455667788ull;
	assert_int_equal(vs_store_append(&b, &q), 0);
	assert_int_equal(vs_store_commit(s, &b), 0);
	vs_store_close(s);

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_int_equal(vs_store_check(dir, out), 0);
	fclose(out);
	assert_non_null(strstr(text, "sessions           1"));
	assert_non_null(strstr(text, "queued messages    1 (4 payload bytes)"));
	assert_non_null(strstr(text, "retained topics    1"));
	assert_non_null(strstr(text, "store is clean"));
	free(text);

	/* a torn tail is reported, and the store is not changed by the check */
	char *log = path_of(dir, "log-00000001.vlog");
	off_t sz = file_size(log);
	assert_int_equal(truncate(log, sz - 1), 0);
	out = open_memstream(&text, &len);
	assert_int_equal(vs_store_check(dir, out), 1);
	fclose(out);
	assert_non_null(strstr(text, "torn tail"));
	assert_int_equal(file_size(log), sz - 1);
	free(text);
	free(log);
	vs_store_buf_fini(&b);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(crc32c_known_answer),
	    cmocka_unit_test(crc32c_every_tail),
	    cmocka_unit_test(append_at_every_room_left),
	    cmocka_unit_test(every_record_type_round_trips),
	    cmocka_unit_test(every_prefix_of_a_record_needs_more),
	    cmocka_unit_test(every_flipped_bit_is_detected),
	    cmocka_unit_test(oversized_fields_and_unknown_types_are_refused),
	    cmocka_unit_test(newer_record_version_is_skipped_and_reported),
	    cmocka_unit_test(commit_then_replay_returns_every_record_in_order),
	    cmocka_unit_test(replay_twice_or_commit_before_replay_is_refused),
	    cmocka_unit_test(second_open_of_a_locked_store_fails_with_a_clear_message),
	    cmocka_unit_test(concurrent_writers_with_batch_fsync_all_replay),
	    cmocka_unit_test(interval_policy_syncs_in_the_background),
	    cmocka_unit_test(torn_tail_at_every_byte_of_the_last_record_keeps_all_before),
	    cmocka_unit_test(flipped_byte_mid_file_sets_it_aside_and_keeps_the_rest),
	    cmocka_unit_test(damaged_header_sets_the_file_aside),
	    cmocka_unit_test(compaction_while_appending_replays_to_the_same_state),
	    cmocka_unit_test(snapshot_replaces_old_logs_and_an_unsealed_one_is_repaired),
	    cmocka_unit_test(full_disk_loses_nothing_that_commit_reported_written),
	    cmocka_unit_test(file_size_limit_error_is_reported_and_retried),
	    cmocka_unit_test(check_reports_state_and_damage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
