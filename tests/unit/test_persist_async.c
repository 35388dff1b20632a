/*
 * Unit tests for the store's writes that are not waited for (vs_store_write, policy batch): the
 * sync thread syncs them and says so, writes made meanwhile share an fdatasync, and a failed
 * fdatasync marks every write before it as failed until a later write is synced. fdatasync is
 * wrapped (LINKER:--wrap=fdatasync, CMakeLists.txt) so that a test can make it fail or slow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "persist/store.h"

/* ---- fdatasync, wrapped ---- */

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

static atomic_int fail_syncs;	/* fdatasync fails with EIO while set */
static atomic_int slow_sync_ms; /* and takes this long */
static atomic_int syncs;	/* calls */

int __wrap_fdatasync(int fd)
{
	atomic_fetch_add(&syncs, 1);
	int ms = atomic_load(&slow_sync_ms);
	if (ms)
		usleep((useconds_t)ms * 1000);
	if (atomic_load(&fail_syncs)) {
		errno = EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

/* ---- helpers ---- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

static char *tmp_dir(void)
{
	char *d = strdup("/tmp/vs-persist-async-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_dir(char *d)
{
	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static int count(void *ctx, const struct vs_rec *r)
{
	if (r->type == VS_REC_SESSION)
		(*(long *)ctx)++;
	return 0;
}

static atomic_int notified;

static void on_synced(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&notified, 1);
}

static struct vs_store *open_batch(const char *dir)
{
	struct vs_store *s = NULL;
	char err[256];
	assert_int_equal(vs_store_open(dir, VS_FSYNC_BATCH, 0, NULL, &s, err, sizeof(err)), 0);
	vs_store_set_notify(s, on_synced, NULL);
	long n = 0;
	assert_true(vs_store_replay(s, count, &n, NULL) >= 0);
	return s;
}

static void add_session(struct vs_store_buf *b, const char *prefix, int i)
{
	char id[64];
	snprintf(id, sizeof(id), "%s%d", prefix, i);
	struct vs_rec r = {.type = VS_REC_SESSION};
	r.u.session.client_id.p = (const uint8_t *)id;
	r.u.session.client_id.len = strlen(id);
	r.u.session.protocol_version = 4;
	assert_int_equal(vs_store_append(b, &r), 0);
}

/* Waits up to 5 s until write seq is synced (or failed, when want_failed). */
static void wait_for(struct vs_store *s, uint64_t seq, bool want_failed)
{
	for (int i = 0; i < 5000; i++) {
		uint64_t synced, failed;
		vs_store_durable(s, &synced, &failed);
		if (want_failed ? failed >= seq : synced >= seq && failed < seq)
			return;
		usleep(1000);
	}
	fail_msg("write %llu not %s within 5 s", (unsigned long long)seq,
		 want_failed ? "failed" : "synced");
}

static long replayed(const char *dir)
{
	struct vs_store *s = NULL;
	char err[256];
	assert_int_equal(vs_store_open(dir, VS_FSYNC_NEVER, 0, NULL, &s, err, sizeof(err)), 0);
	long n = 0;
	assert_true(vs_store_replay(s, count, &n, NULL) >= 0);
	vs_store_close(s);
	return n;
}

/* ---- tests ---- */

static void write_returns_before_the_sync_and_the_sync_thread_reports_it(void **state)
{
	(void)state;
	char *dir = tmp_dir();
	struct vs_store *s = open_batch(dir);
	struct vs_store_buf b = {0};
	add_session(&b, "a", 0);
	size_t len = b.len;
	atomic_store(&notified, 0);
	atomic_store(&slow_sync_ms, 200);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int64_t seq = vs_store_write(s, &b);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(seq > 0);
	assert_int_equal(b.len, len); /* the caller's to keep until synced */
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms < 150); /* did not wait for the (slow) fdatasync */
	uint64_t synced, failed;
	vs_store_durable(s, &synced, &failed);
	assert_true(synced < (uint64_t)seq);
	wait_for(s, (uint64_t)seq, false);
	atomic_store(&slow_sync_ms, 0);
	assert_true(atomic_load(&notified) >= 1);
	assert_true(vs_store_healthy(s));
	/* An empty buffer writes nothing. */
	struct vs_store_buf empty = {0};
	assert_int_equal(vs_store_write(s, &empty), 0);
	vs_store_close(s);
	vs_store_buf_fini(&b);
	assert_int_equal(replayed(dir), 1);
	rm_dir(dir);
}

struct writer {
	struct vs_store *s;
	int id, n;
	uint64_t last;
};

static void *writer_main(void *p)
{
	struct writer *a = p;
	struct vs_store_buf b = {0};
	char prefix[16];
	snprintf(prefix, sizeof(prefix), "t%d-", a->id);
	for (int i = 0; i < a->n; i++) {
		add_session(&b, prefix, i);
		int64_t seq = vs_store_write(a->s, &b);
		if (seq <= 0 || (uint64_t)seq <= a->last)
			abort();
		a->last = (uint64_t)seq;
		b.len = b.nrec = 0;
	}
	vs_store_buf_fini(&b);
	return NULL;
}

static void writes_made_during_a_sync_share_the_next_one(void **state)
{
	(void)state;
	enum { T = 4, N = 500 };
	char *dir = tmp_dir();
	struct vs_store *s = open_batch(dir);
	atomic_store(&slow_sync_ms, 2);
	pthread_t th[T];
	struct writer a[T];
	for (int i = 0; i < T; i++) {
		a[i] = (struct writer){s, i, N, 0};
		pthread_create(&th[i], NULL, writer_main, &a[i]);
	}
	uint64_t top = 0;
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		top = a[i].last > top ? a[i].last : top;
	}
	wait_for(s, top, false);
	atomic_store(&slow_sync_ms, 0);
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	print_message("    %llu writes, %llu fdatasyncs\n", (unsigned long long)st.commits,
		      (unsigned long long)st.fsyncs);
	assert_int_equal(st.commits, T * N);
	assert_true(st.fsyncs < st.commits / 4);
	vs_store_close(s);
	assert_int_equal(replayed(dir), T * N);
	rm_dir(dir);
}

static void failed_sync_marks_the_writes_before_it_until_a_later_one_is_synced(void **state)
{
	(void)state;
	char *dir = tmp_dir();
	struct vs_store *s = open_batch(dir);
	struct vs_store_buf b = {0};
	add_session(&b, "ok", 0);
	int64_t s1 = vs_store_write(s, &b);
	wait_for(s, (uint64_t)s1, false);
	b.len = b.nrec = 0;

	atomic_store(&fail_syncs, 1);
	atomic_store(&notified, 0);
	add_session(&b, "lost", 0);
	int64_t s2 = vs_store_write(s, &b);
	assert_true(s2 > s1);
	wait_for(s, (uint64_t)s2, true);
	assert_true(atomic_load(&notified) >= 1);
	assert_false(vs_store_healthy(s));
	uint64_t synced, failed;
	vs_store_durable(s, &synced, &failed);
	assert_true(synced >= (uint64_t)s1 && synced < (uint64_t)s2);
	/* Waiting for it says so too. */
	assert_int_equal(vs_store_sync_upto(s, (uint64_t)s2), -EIO);

	/* The caller writes the records again; once that write is synced, all is well. */
	atomic_store(&fail_syncs, 0);
	int64_t s3 = vs_store_write(s, &b);
	assert_true(s3 > s2);
	wait_for(s, (uint64_t)s3, false);
	vs_store_durable(s, &synced, &failed);
	assert_true(failed >= (uint64_t)s2 && failed < (uint64_t)s3);
	for (int i = 0; i < 1000 && !vs_store_healthy(s); i++)
		usleep(1000);
	assert_true(vs_store_healthy(s));
	vs_store_close(s);
	vs_store_buf_fini(&b);
	rm_dir(dir);
}

static void sync_upto_waits_for_a_write_and_commit_still_works(void **state)
{
	(void)state;
	char *dir = tmp_dir();
	struct vs_store *s = open_batch(dir);
	struct vs_store_buf b = {0};
	atomic_store(&slow_sync_ms, 50);
	add_session(&b, "w", 0);
	int64_t seq = vs_store_write(s, &b);
	assert_int_equal(vs_store_sync_upto(s, (uint64_t)seq), 0);
	uint64_t synced, failed;
	vs_store_durable(s, &synced, &failed);
	assert_true(synced >= (uint64_t)seq);
	atomic_store(&slow_sync_ms, 0);
	/* The commit that waits, beside the writes that do not. */
	b.len = b.nrec = 0;
	add_session(&b, "c", 0);
	assert_int_equal(vs_store_commit(s, &b), 0);
	assert_int_equal(b.len, 0);
	vs_store_close(s);
	vs_store_buf_fini(&b);
	assert_int_equal(replayed(dir), 2);
	rm_dir(dir);
}

static off_t log_size(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "stat -c %%s %s/log-*.vlog 2>/dev/null | tail -1", dir);
	FILE *p = popen(cmd, "r");
	long long n = -1;
	if (!p || fscanf(p, "%lld", &n) != 1)
		n = -1;
	if (p)
		pclose(p);
	return (off_t)n;
}

static void batch_writes_over_zeros_written_ahead_and_a_crash_leaves_them_harmless(void **state)
{
	(void)state;
	char *dir = tmp_dir();
	struct vs_store *s = open_batch(dir);
	struct vs_store_buf b = {0};
	for (int i = 0; i < 100; i++)
		add_session(&b, "z", i);
	int64_t seq = vs_store_write(s, &b);
	assert_int_equal(vs_store_sync_upto(s, (uint64_t)seq), 0);
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	off_t size = log_size(dir);
	assert_true(size >= (off_t)(1 << 20)); /* zeros written ahead */
	assert_true((uint64_t)size > st.segment_bytes);
	/* The live store checks clean; a copy taken now (as a crash leaves it) replays every
	 * record, its zeros cut as a torn tail. */
	FILE *devnull = fopen("/dev/null", "w");
	assert_int_equal(vs_store_check(dir, devnull), 0);
	fclose(devnull);
	char *copy = tmp_dir();
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cp %s/log-*.vlog %s/", dir, copy);
	assert_int_equal(system(cmd), 0);
	struct vs_store *c = NULL;
	char err[256];
	assert_int_equal(vs_store_open(copy, VS_FSYNC_NEVER, 0, NULL, &c, err, sizeof(err)), 0);
	long n = 0;
	struct vs_store_replay_info info;
	assert_true(vs_store_replay(c, count, &n, &info) >= 0);
	assert_int_equal(n, 100);
	assert_int_equal(info.truncated_tails, 1);
	vs_store_close(c);
	rm_dir(copy);
	/* Closing cuts the zeros. */
	vs_store_close(s);
	assert_int_equal((uint64_t)log_size(dir), st.segment_bytes);
	vs_store_buf_fini(&b);
	assert_int_equal(replayed(dir), 100);
	rm_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(write_returns_before_the_sync_and_the_sync_thread_reports_it),
	    cmocka_unit_test(writes_made_during_a_sync_share_the_next_one),
	    cmocka_unit_test(failed_sync_marks_the_writes_before_it_until_a_later_one_is_synced),
	    cmocka_unit_test(sync_upto_waits_for_a_write_and_commit_still_works),
	    cmocka_unit_test(
		batch_writes_over_zeros_written_ahead_and_a_crash_leaves_them_harmless),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
