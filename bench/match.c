/*
 * Micro-benchmark of the topic layer: nanoseconds per vs_tree_match() on a tree of 100k
 * subscriptions (exact, '+', '#' and $share filters mixed), single-threaded and with two threads
 * matching at once (the read lock is shared, so this shows what the lock's cache line costs),
 * and nanoseconds per vs_retain_match() on a store of 100k retained topics, exact and wildcard.
 *
 * Usage: bench_match [subscriptions] [matches]     (defaults 100000 and 2000000)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "topic/retain.h"
#include "topic/tree.h"

#define NTOPICS 4096

struct bench {
	struct vs_tree *tree;
	char topics[NTOPICS][48];
	size_t lens[NTOPICS];
	size_t matches;
	size_t calls;
};

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void on_match(void *ctx, const struct vs_sub *members, size_t n, atomic_uint *cursor)
{
	size_t *picked = ctx;

	if (cursor)
		(void)atomic_fetch_add_explicit(cursor, 1, memory_order_relaxed);
	(*picked)++;
}

/* Subscriptions over site/{0..999}/dev/{0..99}/temp: 70% exact, 15% '+', 10% '#', 5% $share. */
static void build_tree(struct bench *b, size_t nsubs)
{
	static char owners[64];
	struct vs_sub sub = {0};
	char f[96];
	uint64_t s = 42;

	for (size_t i = 0; i < nsubs; i++) {
		unsigned site = (unsigned)(i % 1000), dev = (unsigned)(i / 1000 % 100);
		unsigned kind = (unsigned)(rng(&s) % 100);

		if (kind < 70)
			snprintf(f, sizeof(f), "site/%u/dev/%u/temp", site, dev);
		else if (kind < 80)
			snprintf(f, sizeof(f), "site/%u/+/%u/temp", site, dev);
		else if (kind < 85)
			snprintf(f, sizeof(f), "site/+/dev/%u/+", dev);
		else if (kind < 95)
			snprintf(f, sizeof(f), "site/%u/dev/%u/#", site, dev);
		else
			snprintf(f, sizeof(f), "$share/g%u/site/%u/dev/+/temp", dev % 7, site);
		sub.owner = &owners[i / 1000 % 64 + (kind & 1)];
		sub.sub_id = (uint32_t)i;
		if (vs_tree_add(b->tree, f, strlen(f), &sub) < 0) {
			fprintf(stderr, "out of memory\n");
			exit(1);
		}
	}
	for (size_t i = 0; i < NTOPICS; i++) {
		snprintf(b->topics[i], sizeof(b->topics[i]), "site/%u/dev/%u/temp",
			 (unsigned)(rng(&s) % 1100), (unsigned)(rng(&s) % 110));
		b->lens[i] = strlen(b->topics[i]);
	}
}

static void *run_matches(void *arg)
{
	struct bench *b = arg;
	size_t calls = 0;

	for (size_t i = 0; i < b->matches; i++) {
		size_t k = i & (NTOPICS - 1);
		vs_tree_match(b->tree, b->topics[k], b->lens[k], on_match, &calls);
	}
	b->calls = calls;
	return NULL;
}

static void bench_tree(size_t nsubs, size_t nmatch)
{
	static struct bench b[2];
	pthread_t th[2];
	int64_t t0, t1;

	b[0].tree = vs_tree_new();
	t0 = vs_now_ns();
	build_tree(&b[0], nsubs);
	t1 = vs_now_ns();
	printf("tree: %zu subscriptions (%zu nodes), add %.0f ns each\n", vs_tree_count(b[0].tree),
	       vs_tree_nodes(b[0].tree), (double)(t1 - t0) / (double)nsubs);

	b[0].matches = nmatch;
	t0 = vs_now_ns();
	run_matches(&b[0]);
	t1 = vs_now_ns();
	printf("tree: match %.0f ns (1 thread, %.2f callbacks per match)\n",
	       (double)(t1 - t0) / (double)nmatch, (double)b[0].calls / (double)nmatch);

	memcpy(&b[1], &b[0], sizeof(b[0]));
	t0 = vs_now_ns();
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, run_matches, &b[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	t1 = vs_now_ns();
	printf("tree: match %.0f ns per match per thread (2 threads at once)\n",
	       (double)(t1 - t0) / (double)nmatch);
	vs_tree_free(b[0].tree);
}

static void ref(void *m)
{
}

static void count(void *ctx, void *msg)
{
	(*(size_t *)ctx)++;
}

enum filter_kind { EXACT, PLUS_DEV, PLUS_SITE };

static double time_retain(struct vs_retain *r, enum filter_kind kind, size_t n, size_t *found)
{
	char f[64];
	uint64_t s = 7;
	int64_t t0 = vs_now_ns();

	*found = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned site = (unsigned)(rng(&s) % 1000), dev = (unsigned)(rng(&s) % 100);
		if (kind == EXACT)
			snprintf(f, sizeof(f), "site/%u/dev/%u/temp", site, dev);
		else if (kind == PLUS_DEV)
			snprintf(f, sizeof(f), "site/%u/dev/+/temp", site);
		else
			snprintf(f, sizeof(f), "site/+/dev/%u/temp", dev);
		vs_retain_match(r, f, strlen(f), count, found);
	}
	return (double)(vs_now_ns() - t0) / (double)n;
}

static void bench_retain(size_t ntopics, size_t nmatch)
{
	struct vs_retain *r = vs_retain_new(ref, ref);
	static char msg;
	char t[64];
	size_t found;
	double ns;
	int64_t t0 = vs_now_ns();

	for (size_t i = 0; i < ntopics; i++) {
		snprintf(t, sizeof(t), "site/%u/dev/%u/temp", (unsigned)(i % 1000),
			 (unsigned)(i / 1000 % 100));
		vs_retain_set(r, t, strlen(t), &msg);
	}
	printf("retain: %zu topics, set %.0f ns each\n", vs_retain_count(r),
	       (double)(vs_now_ns() - t0) / (double)ntopics);
	/* snprintf of the filter is included; it is ~50 ns */
	ns = time_retain(r, EXACT, nmatch, &found);
	printf("retain: exact filter %.0f ns per lookup (%.2f messages each)\n", ns,
	       (double)found / (double)nmatch);
	ns = time_retain(r, PLUS_DEV, nmatch / 10, &found);
	printf("retain: site/N/dev/+/temp %.0f ns per lookup (%.1f messages each, %.1f ns each)\n",
	       ns, (double)found / (double)(nmatch / 10), ns / ((double)found / (nmatch / 10)));
	ns = time_retain(r, PLUS_SITE, nmatch / 100, &found);
	printf("retain: site/+/dev/N/temp %.0f ns per lookup (%.1f messages each, %.1f ns each)\n",
	       ns, (double)found / (double)(nmatch / 100), ns / ((double)found / (nmatch / 100)));
	vs_retain_free(r);
}

int main(int argc, char **argv)
{
	size_t nsubs = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	size_t nmatch = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000000;

	bench_tree(nsubs, nmatch);
	bench_retain(nsubs, nmatch);
	return 0;
}
