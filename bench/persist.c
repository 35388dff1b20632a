/*
 * Benchmark of the persistence store: the cost of encoding a record into a per-thread buffer,
 * the bytes a queued message costs on disk, commit throughput under each fsync policy with 1
 * and 4 writer threads (group commit), and replay speed. The store directory is a fresh
 * directory under $TMPDIR (default /tmp): the fsync figures are those of that file system.
 * Usage: bench_persist [records, default 2000000]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "persist/store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct vs_rec_str S(const char *s) {
	struct vs_rec_str v = {(const uint8_t *)s, strlen(s)};
	return v;
}

static const uint32_t sub_ids[1] = {42};

/* A QUEUE record as the broker writes one per subscriber per QoS>0 message. */
static struct vs_rec queue_rec(uint64_t id)
{
	struct vs_rec r = {.type = VS_REC_QUEUE};
	r.u.queue.client_id = S("sensor-gateway-00042"); /* 20 bytes, a typical client id */
	r.u.queue.msg_id = id;
	r.u.queue.qos = 1;
	r.u.queue.state = VS_QSTATE_WAIT_PUBACK;
	r.u.queue.packet_id = (uint16_t)id;
	r.u.queue.sub_ids = sub_ids;
	r.u.queue.n_sub_ids = 1;
	return r;
}

static void bench_append(long n)
{
	struct vs_store_buf b = {0};
	struct vs_rec r = queue_rec(1);
	/* grow once, as a worker's buffer would be after its first turns */
	for (int i = 0; i < 1024; i++)
		vs_store_append(&b, &r);
	double best = 1e9;
	for (int run = 0; run < 5; run++) {
		double t0 = now_s();
		for (long i = 0; i < n; i++) {
			if (b.len > b.cap - 128) {
				b.len = 0;
				b.nrec = 0;
			}
			r.u.queue.msg_id = (uint64_t)i;
			vs_store_append(&b, &r);
		}
		double t = now_s() - t0;
		best = t < best ? t : best;
	}
	printf("append QUEUE record        %8.1f ns/record  %6.1f M records/s (buffer %zu KiB)\n",
	       best / (double)n * 1e9, (double)n / best / 1e6, b.cap / 1024);
	vs_store_buf_fini(&b);
}

static void sizes(void)
{
	struct vs_rec q = queue_rec(1), d = {.type = VS_REC_DEQUEUE}, m = {.type = VS_REC_MSG};
	d.u.dequeue.client_id = q.u.queue.client_id;
	static uint8_t payload[100];
	m.u.msg.topic = S("plant/7/line/3/temperature");
	m.u.msg.payload.p = payload;
	m.u.msg.payload.len = sizeof(payload);
	m.u.msg.origin_client_id = S("sensor-gateway-00001");
	long qs = vs_rec_encoded_size(&q), ds = vs_rec_encoded_size(&d);
	long ms = vs_rec_encoded_size(&m);
	printf("bytes: QUEUE %ld, DEQUEUE %ld, QUEUE+PUBACK-state+DEQUEUE %ld per delivery; "
	       "MSG with 100 B payload %ld (%ld overhead)\n",
	       qs, ds, 2 * qs + ds, ms, ms - 100);
}

struct writer {
	struct vs_store *s;
	long n;
	int batch;
};

static void *writer_main(void *p)
{
	struct writer *w = p;
	struct vs_store_buf b = {0};
	for (long i = 0; i < w->n; i++) {
		struct vs_rec r = queue_rec((uint64_t)i);
		vs_store_append(&b, &r);
		if ((i + 1) % w->batch == 0 && vs_store_commit(w->s, &b) != 0)
			abort();
	}
	vs_store_commit(w->s, &b);
	vs_store_buf_fini(&b);
	return NULL;
}

static int nop(void *ctx, const struct vs_rec *r)
{
	(*(long *)ctx)++;
	return 0;
}

static void bench_commit(const char *tmp, enum vs_fsync_policy pol, const char *pname, int threads,
			 long n, int batch)
{
	char dir[256], cmd[300], err[256];
	struct vs_store *s;
	snprintf(dir, sizeof(dir), "%s/bench-persist-%d", tmp, (int)getpid());
	if (vs_store_open(dir, pol, 100, NULL, &s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	long dummy = 0;
	vs_store_replay(s, nop, &dummy, NULL);
	pthread_t th[8];
	struct writer w = {s, n / threads, batch};
	double t0 = now_s();
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, writer_main, &w);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double t = now_s() - t0;
	struct vs_store_stats st;
	vs_store_get_stats(s, &st);
	vs_store_close(s);
	printf("commit %-8s %d thr batch %3d: %9.0f records/s %8.0f commits/s %6llu fdatasyncs "
	       "(%.2f commits/sync) %6.1f MB/s\n",
	       pname, threads, batch, (double)st.records / t, (double)st.commits / t,
	       (unsigned long long)st.fsyncs,
	       st.fsyncs ? (double)st.commits / (double)st.fsyncs : 0.0,
	       (double)st.bytes / t / 1e6);
	if (pol == VS_FSYNC_NEVER && threads == 1) {
		long got = 0;
		vs_store_open(dir, pol, 0, NULL, &s, err, sizeof(err));
		t0 = now_s();
		vs_store_replay(s, nop, &got, NULL);
		t = now_s() - t0;
		vs_store_close(s);
		printf("replay                     %9.0f records/s (%ld records)\n",
		       (double)got / t, got);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000000;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	bench_append(n);
	sizes();
	bench_commit(tmp, VS_FSYNC_NEVER, "never", 1, n, 64);
	bench_commit(tmp, VS_FSYNC_NEVER, "never", 4, n, 64);
	bench_commit(tmp, VS_FSYNC_INTERVAL, "interval", 4, n, 64);
	bench_commit(tmp, VS_FSYNC_BATCH, "batch", 1, n / 200, 16);
	bench_commit(tmp, VS_FSYNC_BATCH, "batch", 4, n / 200, 16);
	return 0;
}
