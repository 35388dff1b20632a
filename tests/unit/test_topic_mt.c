/*
 * Concurrency tests of the topic layer: two threads match while a third subscribes and
 * unsubscribes (or sets and clears retained messages). Run under ASan, they catch a walk that
 * reads a node a writer has freed; the checks catch a match that misses a subscription that
 * was there all along.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "topic/retain.h"
#include "topic/tree.h"

#define ROUNDS 200000

struct shared {
	struct vs_tree *tree;
	struct vs_retain *store;
	atomic_bool stop;
	atomic_size_t matches;
	atomic_size_t misses; /* a stable subscription that a match did not report, or an
			       * error in the writer (cmocka asserts only on the main thread) */
	int stable;	      /* owner of the subscriptions that never change */
};

struct found {
	const void *stable;
	size_t stable_calls;
	size_t picks;
};

static void on_match(void *ctx, const struct vs_sub *members, size_t n, atomic_uint *cursor)
{
	struct found *f = ctx;
	size_t i = cursor ? atomic_fetch_add(cursor, 1) % n : 0;

	if (members[i].owner == f->stable)
		f->stable_calls++;
	f->picks++;
}

static void *matcher(void *arg)
{
	struct shared *s = arg;
	static const char *topics[] = {"a/b/c", "a/x/c", "$SYS/load", "a/b/c/d/e", "q/0/z"};
	size_t k = 0;

	while (!atomic_load(&s->stop)) {
		const char *t = topics[k++ % 5];
		struct found f = {.stable = &s->stable};
		vs_tree_match(s->tree, t, strlen(t), on_match, &f);
		/* "a/#" and "#" are always there for a/...; "$SYS/#" for $SYS */
		if (t[0] == 'a' && f.stable_calls < 2)
			atomic_fetch_add(&s->misses, 1);
		if (t[0] == '$' && f.stable_calls != 1)
			atomic_fetch_add(&s->misses, 1);
		atomic_fetch_add(&s->matches, 1);
	}
	return NULL;
}

static void *churner(void *arg)
{
	struct shared *s = arg;
	char f[64];
	int owners[8];
	struct vs_sub sub = {0};

	for (int r = 0; r < ROUNDS; r++) {
		int i = r % 97;
		sub.owner = &owners[r % 8];
		snprintf(f, sizeof(f), i % 3 ? "a/+/c/%d" : "$share/g%d/a/+/c", i);
		if (vs_tree_add(s->tree, f, strlen(f), &sub) < 0)
			atomic_fetch_add(&s->misses, 1);
		snprintf(f, sizeof(f), "q/%d/+", i);
		if (vs_tree_add(s->tree, f, strlen(f), &sub) < 0)
			atomic_fetch_add(&s->misses, 1);
		if (r % 3 == 0) {
			int j = (r / 3) % 97;
			snprintf(f, sizeof(f), j % 3 ? "a/+/c/%d" : "$share/g%d/a/+/c", j);
			vs_tree_remove(s->tree, f, strlen(f), &owners[(r / 3) % 8]);
		}
		snprintf(f, sizeof(f), "q/%d/+", (r + 50) % 97);
		vs_tree_remove(s->tree, f, strlen(f), &owners[(r + 50) % 8]);
	}
	atomic_store(&s->stop, true);
	return NULL;
}

static void tree_concurrent(void **state)
{
	struct shared s = {.tree = vs_tree_new()};
	struct vs_sub stable = {.owner = &s.stable};
	pthread_t m1, m2, w;

	assert_int_equal(vs_tree_add(s.tree, "a/#", 3, &stable), 1);
	assert_int_equal(vs_tree_add(s.tree, "#", 1, &stable), 1);
	assert_int_equal(vs_tree_add(s.tree, "$SYS/#", 6, &stable), 1);
	assert_int_equal(pthread_create(&m1, NULL, matcher, &s), 0);
	assert_int_equal(pthread_create(&m2, NULL, matcher, &s), 0);
	assert_int_equal(pthread_create(&w, NULL, churner, &s), 0);
	pthread_join(w, NULL);
	pthread_join(m1, NULL);
	pthread_join(m2, NULL);
	assert_int_equal(atomic_load(&s.misses), 0);
	assert_true(atomic_load(&s.matches) > 0);
	vs_tree_free(s.tree);
}

static void noop_ref(void *m)
{
}

struct rfound {
	size_t n;
	size_t stable;
	const void *stable_msg;
};

static void on_retained(void *ctx, void *msg)
{
	struct rfound *f = ctx;

	f->n++;
	if (msg == f->stable_msg)
		f->stable++;
}

static void on_snapshot(void *ctx, const char *topic, size_t len, void *msg)
{
	on_retained(ctx, msg);
}

static void *rmatcher(void *arg)
{
	struct shared *s = arg;
	static const char *filters[] = {"#", "r/+/v", "r/#", "+/stable", "$SYS/#"};
	size_t k = 0;

	while (!atomic_load(&s->stop)) {
		const char *f = filters[k++ % 5];
		struct rfound got = {.stable_msg = &s->stable};
		vs_retain_match(s->store, f, strlen(f), on_retained, &got);
		if ((f[0] == '#' || f[0] == '+') && got.stable != 1)
			atomic_fetch_add(&s->misses, 1);
		atomic_fetch_add(&s->matches, 1);
	}
	return NULL;
}

static void *rchurner(void *arg)
{
	struct shared *s = arg;
	char t[64];
	int msgs[4];

	for (int r = 0; r < ROUNDS; r++) {
		snprintf(t, sizeof(t), "r/%d/v", r % 211);
		if (vs_retain_set(s->store, t, strlen(t), &msgs[r % 4]) != 0)
			atomic_fetch_add(&s->misses, 1);
		snprintf(t, sizeof(t), "r/%d/v", (r + 100) % 211);
		vs_retain_set(s->store, t, strlen(t), NULL);
		/* a snapshot while the matchers run: the stable message is always in it */
		if (r % 64 == 0) {
			struct rfound got = {.stable_msg = &s->stable};
			vs_retain_foreach(s->store, on_snapshot, &got);
			if (got.stable != 1 || got.n != vs_retain_count(s->store))
				atomic_fetch_add(&s->misses, 1);
		}
	}
	atomic_store(&s->stop, true);
	return NULL;
}

static void retain_concurrent(void **state)
{
	struct shared s = {.store = vs_retain_new(noop_ref, noop_ref)};
	pthread_t m1, m2, w;

	assert_int_equal(vs_retain_set(s.store, "x/stable", 8, &s.stable), 0);
	assert_int_equal(vs_retain_set(s.store, "$SYS/hidden", 11, &s.matches), 0);
	assert_int_equal(pthread_create(&m1, NULL, rmatcher, &s), 0);
	assert_int_equal(pthread_create(&m2, NULL, rmatcher, &s), 0);
	assert_int_equal(pthread_create(&w, NULL, rchurner, &s), 0);
	pthread_join(w, NULL);
	pthread_join(m1, NULL);
	pthread_join(m2, NULL);
	assert_int_equal(atomic_load(&s.misses), 0);
	assert_true(atomic_load(&s.matches) > 0);
	vs_retain_free(s.store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tree_concurrent),
	    cmocka_unit_test(retain_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
