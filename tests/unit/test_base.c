/*
 * Unit tests of the base layer: the growable byte buffer (bytes.h), the string-keyed hash map
 * (map.h), logging (log.h) and error strings (error.h).
 *
 * The map is checked against a naive reference model under random operations, and with keys
 * chosen (through vs_hash64 and a seed the test sets) to share one home slot at the end of the
 * table, so probe
 * runs wrap around and every backward-shift case of deletion is exercised. Leaks are ASan's job:
 * every test finishes its structures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/error.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/map.h"
#include "base/vec.h"

/* ---------------------------------------------------------------- bytes */

static void test_bytes_empty(void **state)
{
	struct vs_bytes b = {0};

	assert_int_equal(vs_bytes_avail(&b), 0);
	/* reserve(0) on an empty buffer allocates nothing */
	assert_int_equal(vs_bytes_reserve(&b, 0), 0);
	/* appending nothing to an empty buffer is fine */
	assert_int_equal(vs_bytes_append(&b, "", 0), 0);
	assert_int_equal(vs_bytes_avail(&b), 0);
	vs_bytes_consume(&b, 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	vs_bytes_shrink(&b, 0);
	vs_bytes_fini(&b);
	vs_bytes_fini(&b); /* twice is harmless */
	assert_null(b.data);
}

static void test_bytes_append_consume(void **state)
{
	struct vs_bytes b = {0};

	assert_int_equal(vs_bytes_append(&b, "hello", 5), 0);
	assert_int_equal(b.cap, 256); /* first allocation */
	assert_int_equal(vs_bytes_avail(&b), 5);
	assert_memory_equal(vs_bytes_head(&b), "hello", 5);
	assert_int_equal(vs_bytes_append(&b, " world", 6), 0);
	assert_memory_equal(vs_bytes_head(&b), "hello world", 11);
	vs_bytes_consume(&b, 6);
	assert_int_equal(vs_bytes_avail(&b), 5);
	assert_memory_equal(vs_bytes_head(&b), "world", 5);
	/* consuming everything resets the offsets to the start */
	vs_bytes_consume(&b, 5);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 256);
	/* consuming more than available also resets (never underflows) */
	assert_int_equal(vs_bytes_append(&b, "abc", 3), 0);
	vs_bytes_consume(&b, 10);
	assert_int_equal(vs_bytes_avail(&b), 0);
	assert_int_equal(b.off, 0);
	vs_bytes_fini(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void test_bytes_reserve(void **state)
{
	struct vs_bytes b = {0};

	assert_int_equal(vs_bytes_reserve(&b, 1), 0);
	assert_int_equal(b.cap, 256);
	assert_int_equal(vs_bytes_reserve(&b, 256), 0);
	assert_int_equal(b.cap, 256); /* already fits */
	assert_int_equal(vs_bytes_reserve(&b, 257), 0);
	assert_int_equal(b.cap, 512); /* doubles */
	assert_int_equal(vs_bytes_reserve(&b, 3000), 0);
	assert_int_equal(b.cap, 4096); /* doubles until it fits */
	assert_true(b.cap - b.len >= 3000);
	/* the reserved room is writable (ASan checks) */
	memset(b.data + b.len, 0xab, 3000);
	vs_bytes_fini(&b);
}

static void test_bytes_reserve_overflow(void **state)
{
	struct vs_bytes b = {0};

	assert_int_equal(vs_bytes_append(&b, "xyz", 3), 0);
	/* sizes whose doubling or sum would wrap fail cleanly instead of looping or wrapping */
	assert_int_equal(vs_bytes_reserve(&b, SIZE_MAX), -ENOMEM);
	assert_int_equal(vs_bytes_reserve(&b, SIZE_MAX - 2), -ENOMEM);
	assert_int_equal(vs_bytes_reserve(&b, SIZE_MAX / 2 + 2), -ENOMEM);
	assert_int_equal(vs_bytes_append(&b, "q", SIZE_MAX), -ENOMEM);
	/* the buffer is unchanged */
	assert_int_equal(vs_bytes_avail(&b), 3);
	assert_memory_equal(vs_bytes_head(&b), "xyz", 3);
	vs_bytes_fini(&b);
}

static void test_bytes_compaction(void **state)
{
	struct vs_bytes b = {0};
	uint8_t chunk[200];

	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	assert_int_equal(vs_bytes_append(&b, chunk, 200), 0);
	assert_int_equal(b.cap, 256);
	uint8_t *before = b.data;
	vs_bytes_consume(&b, 150); /* 50 unread at offset 150, 56 free at the tail */
	/* 100 more do not fit at the tail but fit after compaction (150 >= 50 unread) */
	assert_int_equal(vs_bytes_append(&b, chunk, 100), 0);
	assert_ptr_equal(b.data, before); /* no reallocation */
	assert_int_equal(b.cap, 256);
	assert_int_equal(b.off, 0);
	assert_int_equal(vs_bytes_avail(&b), 150);
	assert_memory_equal(vs_bytes_head(&b), chunk + 150, 50);
	assert_memory_equal(vs_bytes_head(&b) + 50, chunk, 100);

	/* When more is unread than was consumed, it grows instead, keeping the unread bytes. */
	vs_bytes_consume(&b, 10); /* off 10, 140 unread, 106 free at the tail */
	assert_int_equal(vs_bytes_append(&b, chunk, 120), 0);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.cap, 512);
	assert_int_equal(vs_bytes_avail(&b), 260);
	assert_memory_equal(vs_bytes_head(&b), chunk + 160, 40);
	assert_memory_equal(vs_bytes_head(&b) + 40, chunk, 100);
	assert_memory_equal(vs_bytes_head(&b) + 140, chunk, 120);
	vs_bytes_fini(&b);
}

static void test_bytes_stream(void **state)
{
	/* A long stream through a small buffer: every byte comes out in order. */
	struct vs_bytes b = {0};
	uint32_t wr = 0, rd = 0;
	unsigned seed = 7;

	while (wr < 1000000) {
		uint8_t tmp[300];
		size_t n = (size_t)(rand_r(&seed) % sizeof(tmp)) + 1;
		for (size_t i = 0; i < n; i++)
			tmp[i] = (uint8_t)(wr + i);
		assert_int_equal(vs_bytes_append(&b, tmp, n), 0);
		wr += (uint32_t)n;
		size_t take = (size_t)rand_r(&seed) % (vs_bytes_avail(&b) + 1);
		for (size_t i = 0; i < take; i++)
			if (vs_bytes_head(&b)[i] != (uint8_t)(rd + i))
				fail_msg("byte %u wrong", rd + (unsigned)i);
		vs_bytes_consume(&b, take);
		rd += (uint32_t)take;
	}
	assert_int_equal(vs_bytes_avail(&b), wr - rd);
	assert_true(b.cap <= 4096); /* steady consumption keeps it small */
	vs_bytes_fini(&b);
}

static void test_bytes_large_growth(void **state)
{
	struct vs_bytes b = {0};
	size_t total = 0;
	static uint8_t block[65536];

	for (size_t i = 0; i < sizeof(block); i++)
		block[i] = (uint8_t)(i * 31);
	for (int i = 0; i < 64; i++) { /* 4 MiB */
		assert_int_equal(vs_bytes_append(&b, block, sizeof(block)), 0);
		total += sizeof(block);
	}
	assert_int_equal(vs_bytes_avail(&b), total);
	assert_int_equal(b.cap, 4u << 20);
	for (int i = 0; i < 64; i++)
		assert_memory_equal(vs_bytes_head(&b) + (size_t)i * sizeof(block), block,
				    sizeof(block));
	vs_bytes_fini(&b);
}

static void test_bytes_shrink(void **state)
{
	struct vs_bytes b = {0};

	assert_int_equal(vs_bytes_reserve(&b, 10000), 0);
	assert_int_equal(vs_bytes_append(&b, "x", 1), 0);
	/* holds unread data: kept */
	vs_bytes_shrink(&b, 256);
	assert_non_null(b.data);
	assert_int_equal(vs_bytes_avail(&b), 1);
	vs_bytes_consume(&b, 1);
	/* cap not beyond keep: kept */
	vs_bytes_shrink(&b, b.cap);
	assert_non_null(b.data);
	/* empty and larger than keep: freed */
	vs_bytes_shrink(&b, 256);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.off, 0);
	/* usable again afterwards */
	assert_int_equal(vs_bytes_append(&b, "again", 5), 0);
	assert_memory_equal(vs_bytes_head(&b), "again", 5);
	vs_bytes_fini(&b);
}

/* ---------------------------------------------------------------- map */

static void test_map_empty(void **state)
{
	struct vs_map m = {0};
	size_t i = 0, kl;
	const char *k;
	void *v;

	assert_null(vs_map_get(&m, "a", 1));
	assert_null(vs_map_del(&m, "a", 1));
	assert_int_equal(vs_map_next(&m, &i, &k, &kl, &v), 0);
	vs_map_fini(&m);
	vs_map_fini(&m);
}

/* vs_map_fini_with frees each value once, and leaves an empty map that can be used again. */
static int freed_sum;
static void free_counted(void *val)
{
	freed_sum += *(int *)val;
	free(val);
}

static void test_map_fini_with(void **state)
{
	(void)state;
	struct vs_map m = {0};
	for (int i = 1; i <= 100; i++) {
		int *v = malloc(sizeof(*v));
		assert_non_null(v);
		*v = i;
		char key[8];
		int n = snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(vs_map_put(&m, key, (size_t)n, v, NULL), 0);
	}
	freed_sum = 0;
	vs_map_fini_with(&m, free_counted);
	assert_int_equal(freed_sum, 5050); /* 1 + 2 + ... + 100, each once */
	assert_int_equal(m.count, 0);
	assert_null(vs_map_get(&m, "k1", 2));
	vs_map_fini_with(&m, free_counted); /* an empty map: nothing to free */
	assert_int_equal(freed_sum, 5050);
}

#define TEST_SEED 0x0123456789abcdefull

static void test_map_hash(void **state)
{
	/* never 0 (0 marks an empty slot), deterministic, length-sensitive, seed-dependent */
	assert_int_not_equal(vs_hash64(TEST_SEED, "", 0), 0);
	assert_int_equal(vs_hash64(TEST_SEED, "abc", 3), vs_hash64(TEST_SEED, "abc", 3));
	assert_int_not_equal(vs_hash64(TEST_SEED, "abc", 3), vs_hash64(TEST_SEED, "abd", 3));
	assert_int_not_equal(vs_hash64(TEST_SEED, "a\0", 2), vs_hash64(TEST_SEED, "a", 1));
	assert_int_not_equal(vs_hash64(TEST_SEED, "abc", 3), vs_hash64(TEST_SEED + 1, "abc", 3));
	assert_int_not_equal(vs_hash_seed(), 0);
}

/* Every map draws its own seed: the same keys land in different slots in two maps, so a
 * client cannot precompute client ids that collide in the session registry. */
static void test_map_seeded(void **state)
{
	struct vs_map a = {0}, b = {0};
	int v;
	assert_int_equal(vs_map_put(&a, "x", 1, &v, NULL), 0);
	assert_int_equal(vs_map_put(&b, "x", 1, &v, NULL), 0);
	assert_int_not_equal(a.seed, 0);
	assert_int_not_equal(a.seed, b.seed);
	vs_map_fini(&a);
	vs_map_fini(&b);
}

static void test_map_basic(void **state)
{
	struct vs_map m = {0};
	int a, b, c;
	void *old = &a;

	assert_int_equal(vs_map_put(&m, "alpha", 5, &a, &old), 0);
	assert_null(old);
	assert_int_equal(vs_map_put(&m, "beta", 4, &b, NULL), 0);
	assert_int_equal(m.count, 2);
	assert_ptr_equal(vs_map_get(&m, "alpha", 5), &a);
	assert_ptr_equal(vs_map_get(&m, "beta", 4), &b);
	/* lengths matter, not NUL termination */
	assert_null(vs_map_get(&m, "alph", 4));
	assert_ptr_equal(vs_map_get(&m, "alphabet", 5), &a);
	/* replace returns the old value, count unchanged */
	assert_int_equal(vs_map_put(&m, "alpha", 5, &c, &old), 0);
	assert_ptr_equal(old, &a);
	assert_int_equal(m.count, 2);
	assert_ptr_equal(vs_map_get(&m, "alpha", 5), &c);
	/* NULL values are storable (get cannot tell them from absent, del neither) */
	assert_int_equal(vs_map_put(&m, "nil", 3, NULL, NULL), 0);
	assert_int_equal(m.count, 3);
	/* empty key and keys with NUL bytes */
	assert_int_equal(vs_map_put(&m, "", 0, &a, NULL), 0);
	assert_int_equal(vs_map_put(&m, "x\0y", 3, &b, NULL), 0);
	assert_ptr_equal(vs_map_get(&m, "", 0), &a);
	assert_ptr_equal(vs_map_get(&m, "x\0y", 3), &b);
	assert_null(vs_map_get(&m, "x\0z", 3));
	/* the key is copied (and NUL-terminated for iteration) */
	char key[8] = "temp";
	assert_int_equal(vs_map_put(&m, key, 4, &c, NULL), 0);
	memcpy(key, "XXXX", 4);
	assert_ptr_equal(vs_map_get(&m, "temp", 4), &c);
	assert_null(vs_map_get(&m, "XXXX", 4));
	/* delete */
	assert_ptr_equal(vs_map_del(&m, "beta", 4), &b);
	assert_null(vs_map_del(&m, "beta", 4));
	assert_null(vs_map_get(&m, "beta", 4));
	assert_int_equal(m.count, 5);
	assert_ptr_equal(vs_map_get(&m, "alpha", 5), &c);
	vs_map_fini(&m);
	assert_null(m.slots);
	assert_int_equal(m.count, 0);
}

/* Finds n distinct keys "k<number>" whose home slot in a table of cap slots is `home`. */
static void keys_with_home(char keys[][16], int n, size_t cap, size_t home, int *next)
{
	for (int found = 0; found < n; (*next)++) {
		char k[16];
		int len = snprintf(k, sizeof(k), "k%d", *next);
		if ((vs_hash64(TEST_SEED, k, (size_t)len) & (cap - 1)) == home)
			memcpy(keys[found++], k, (size_t)len + 1);
	}
}

static void check_present(const struct vs_map *m, char keys[][16], const int *vals, int n,
			  const bool *gone)
{
	for (int i = 0; i < n; i++) {
		void *v = vs_map_get(m, keys[i], strlen(keys[i]));
		if (gone && gone[i])
			assert_null(v);
		else
			assert_ptr_equal(v, &vals[i]);
	}
}

/* Deletes keys in `order`, checking after every step that every remaining key is found. */
static void delete_in_order(char keys[][16], const int *vals, int n, const int *order)
{
	struct vs_map m = {.seed = TEST_SEED};
	bool gone[16] = {0};

	for (int i = 0; i < n; i++)
		assert_int_equal(vs_map_put(&m, keys[i], strlen(keys[i]), (void *)&vals[i], NULL),
				 0);
	assert_int_equal(m.cap, 16);
	for (int s = 0; s < n; s++) {
		int k = order[s];
		assert_ptr_equal(vs_map_del(&m, keys[k], strlen(keys[k])), &vals[k]);
		gone[k] = true;
		assert_int_equal(m.count, (size_t)(n - s - 1));
		check_present(&m, keys, vals, n, gone);
	}
	for (size_t i = 0; i < m.cap; i++)
		assert_int_equal(m.slots[i].hash, 0);
	vs_map_fini(&m);
}

static bool next_perm(int *a, int n)
{
	int i = n - 2;
	while (i >= 0 && a[i] >= a[i + 1])
		i--;
	if (i < 0)
		return false;
	int j = n - 1;
	while (a[j] <= a[i])
		j--;
	int t = a[i];
	a[i] = a[j];
	a[j] = t;
	for (int l = i + 1, r = n - 1; l < r; l++, r--) {
		t = a[l];
		a[l] = a[r];
		a[r] = t;
	}
	return true;
}

static void test_map_collisions_every_order(void **state)
{
	/* Six keys all homed at slot 15 of 16 (the run wraps to slots 0..4), plus two homed at
	 * slot 0 and one at slot 2, interleaved into the same run: 9 keys, cap stays 16. Deleting
	 * in all orders of the first 7 (5040) covers holes before, inside and across the wrap. */
	char keys[9][16];
	int vals[9], next = 0;

	keys_with_home(keys, 6, 16, 15, &next);
	next = 0;
	keys_with_home(keys + 6, 2, 16, 0, &next);
	next = 0;
	keys_with_home(keys + 8, 1, 16, 2, &next);
	/* interleave: two at 15, one at 0, the rest */
	char tmp[16];
	memcpy(tmp, keys[2], 16);
	memcpy(keys[2], keys[6], 16);
	memcpy(keys[6], tmp, 16);

	int order[9];
	for (int i = 0; i < 9; i++)
		order[i] = i;
	long perms = 0;
	do {
		/* the last two keep their relative order: 9!/2 would be slow under ASan */
		delete_in_order(keys, vals, 9, order);
		perms++;
	} while (next_perm(order, 7));
	assert_int_equal(perms, 5040);
	/* and a few full reversed / rotated orders of all 9 */
	int rev[9], rot[9];
	for (int i = 0; i < 9; i++) {
		rev[i] = 8 - i;
		rot[i] = (i + 4) % 9;
	}
	delete_in_order(keys, vals, 9, rev);
	delete_in_order(keys, vals, 9, rot);
}

static void test_map_full_wrap_run(void **state)
{
	/* 11 keys (the most a 16-slot table holds) all homed at slot 13: the run fills 13..15 and
	 * wraps to 0..7. Deleting from the front of the run shifts every later entry. */
	char keys[11][16];
	int vals[11], next = 0, order[11];

	keys_with_home(keys, 11, 16, 13, &next);
	for (int i = 0; i < 11; i++)
		order[i] = i;
	delete_in_order(keys, vals, 11, order);
	for (int i = 0; i < 11; i++)
		order[i] = 10 - i;
	delete_in_order(keys, vals, 11, order);
	for (int i = 0; i < 11; i++)
		order[i] = (i * 5) % 11; /* a stride through the run */
	delete_in_order(keys, vals, 11, order);
}

#define NKEYS 3000

static void test_map_many_keys(void **state)
{
	struct vs_map m = {0};
	static int vals[NKEYS];
	static char present[NKEYS];
	char k[32];

	for (int i = 0; i < NKEYS; i++) {
		int len = snprintf(k, sizeof(k), "client-%d", i);
		assert_int_equal(vs_map_put(&m, k, (size_t)len, &vals[i], NULL), 0);
		present[i] = 1;
	}
	assert_int_equal(m.count, NKEYS);
	assert_true(m.count * 4 <= m.cap * 3); /* load factor kept at 3/4 */
	/* iteration visits each entry exactly once */
	static int seen[NKEYS];
	size_t it = 0, kl;
	const char *key;
	void *v;
	int visits = 0;
	while (vs_map_next(&m, &it, &key, &kl, &v)) {
		int idx = (int)((int *)v - vals);
		assert_true(idx >= 0 && idx < NKEYS);
		int len = snprintf(k, sizeof(k), "client-%d", idx);
		assert_int_equal(kl, (size_t)len);
		assert_string_equal(key, k); /* NUL-terminated copy */
		seen[idx]++;
		visits++;
	}
	assert_int_equal(visits, NKEYS);
	for (int i = 0; i < NKEYS; i++)
		assert_int_equal(seen[i], 1);
	/* a random reference-model workout: deletes, re-inserts, replacements */
	unsigned seed = 12345;
	for (int step = 0; step < 30000; step++) {
		int i = rand_r(&seed) % NKEYS;
		int len = snprintf(k, sizeof(k), "client-%d", i);
		int op = rand_r(&seed) % 3;
		if (op == 0) {
			void *got = vs_map_del(&m, k, (size_t)len);
			assert_ptr_equal(got, present[i] ? &vals[i] : NULL);
			present[i] = 0;
		} else if (op == 1) {
			void *old = (void *)1;
			assert_int_equal(vs_map_put(&m, k, (size_t)len, &vals[i], &old), 0);
			assert_ptr_equal(old, present[i] ? &vals[i] : NULL);
			present[i] = 1;
		} else {
			assert_ptr_equal(vs_map_get(&m, k, (size_t)len),
					 present[i] ? &vals[i] : NULL);
		}
	}
	size_t count = 0;
	for (int i = 0; i < NKEYS; i++) {
		int len = snprintf(k, sizeof(k), "client-%d", i);
		assert_ptr_equal(vs_map_get(&m, k, (size_t)len), present[i] ? &vals[i] : NULL);
		count += (size_t)present[i];
	}
	assert_int_equal(m.count, count);
	/* delete everything, in a scrambled order */
	for (int s = 0; s < NKEYS; s++) {
		int i = (int)(((long)s * 1237) % NKEYS);
		int len = snprintf(k, sizeof(k), "client-%d", i);
		assert_ptr_equal(vs_map_del(&m, k, (size_t)len), present[i] ? &vals[i] : NULL);
		present[i] = 0;
	}
	assert_int_equal(m.count, 0);
	it = 0;
	assert_int_equal(vs_map_next(&m, &it, &key, &kl, &v), 0);
	/* reusable after emptying; fini frees the rest with entries present (ASan leak check) */
	for (int i = 0; i < 100; i++) {
		int len = snprintf(k, sizeof(k), "again-%d", i);
		assert_int_equal(vs_map_put(&m, k, (size_t)len, &vals[i], NULL), 0);
	}
	vs_map_fini(&m);
	assert_int_equal(m.cap, 0);
	assert_int_equal(m.count, 0);
}

/* ---------------------------------------------------------------- log */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* A log writing to a fresh temporary file only. */
static void file_log(struct vs_log *log, char *path)
{
	strcpy(path, "/tmp/vs_test_log_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	vs_log_init(log);
	log->dests = VS_LOGD_FILE;
	log->file_path = strdup(path);
	assert_int_equal(vs_log_reopen(log), 0);
	assert_true(log->fd >= 0);
}

static void test_log_defaults(void **state)
{
	struct vs_log log;

	vs_log_init(&log);
	assert_int_equal(log.types, VS_LOG_ERR | VS_LOG_WARN | VS_LOG_NOTICE | VS_LOG_INFO);
	assert_int_equal(log.dests, VS_LOGD_STDERR);
	assert_int_equal(log.fd, -1);
	assert_true(log.timestamps);
	assert_null(log.file_path);
	assert_true(vs_log_enabled(&log, VS_LOG_ERR));
	assert_false(vs_log_enabled(&log, VS_LOG_DEBUG));
	assert_false(vs_log_enabled(NULL, VS_LOG_ERR));
	/* no file path: reopen is a no-op */
	assert_int_equal(vs_log_reopen(&log), 0);
	assert_int_equal(log.fd, -1);
	log.dests = VS_LOGD_NONE;
	assert_false(vs_log_enabled(&log, VS_LOG_ERR));
	vs_log(NULL, VS_LOG_ERR, "nothing %d", 1); /* a NULL log writes nothing */
	vs_log_fini(&log);
	vs_log_fini(&log);
}

static void test_log_reopen_error(void **state)
{
	struct vs_log log;

	vs_log_init(&log);
	log.file_path = strdup("/nonexistent-dir/viesti.log");
	assert_int_equal(vs_log_reopen(&log), -ENOENT);
	assert_int_equal(log.fd, -1);
	vs_log_fini(&log);
}

static void test_log_format(void **state)
{
	struct vs_log log;
	char path[64];
	size_t len;

	file_log(&log, path);
	log.types = VS_LOG_ALL;
	log.timestamps = false;
	vs_log(&log, VS_LOG_ERR, "e %d", 1);
	vs_log(&log, VS_LOG_WARN, "w %s", "x");
	vs_log(&log, VS_LOG_NOTICE, "n");
	vs_log(&log, VS_LOG_INFO, "i");
	vs_log(&log, VS_LOG_DEBUG, "d");
	vs_log(&log, VS_LOG_SUBSCRIBE, "s");
	vs_log(&log, VS_LOG_UNSUBSCRIBE, "u");
	vs_log(&log, VS_LOG_WEBSOCKETS, "ws");
	vs_log(&log, VS_LOG_INFO, "%s", "");
	char *s = read_file(path, &len);
	assert_string_equal(s, "error: e 1\n"
			       "warning: w x\n"
			       "notice: n\n"
			       "info: i\n"
			       "debug: d\n"
			       "subscribe: s\n"
			       "unsubscribe: u\n"
			       "websockets: ws\n"
			       "info: \n");
	free(s);

	/* with timestamps: 2024-01-02T03:04:05.678Z info: hello */
	assert_int_equal(truncate(path, 0), 0);
	log.timestamps = true;
	vs_log(&log, VS_LOG_INFO, "hello %s", "world");
	s = read_file(path, &len);
	assert_int_equal(len, 24 + 1 + strlen("info: hello world\n"));
	int y, mo, d, h, mi, se, ms;
	char z;
	assert_int_equal(
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &se, &ms, &z), 8);
	assert_true(y >= 2020 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 &&
		    se <= 60 && ms < 1000);
	assert_int_equal(z, 'Z');
	assert_int_equal(s[4], '-');
	assert_int_equal(s[10], 'T');
	assert_int_equal(s[19], '.');
	assert_string_equal(s + 24, " info: hello world\n");
	free(s);
	unlink(path);
	vs_log_fini(&log);
	assert_int_equal(log.fd, -1);
	assert_null(log.file_path);
}

/* log_format json: one object per line, the message escaped, bytes that are not UTF-8 as
 * U+FFFD, the client id when the line names one. */
static void test_log_json(void **state)
{
	struct vs_log log;
	char path[64];
	size_t len;

	file_log(&log, path);
	log.types = VS_LOG_ALL;
	log.timestamps = false;
	log.json = true;
	vs_log(&log, VS_LOG_WARN, "a \"q\" \\ b\tc\n%s", "\x01\xc3\xa9\xff\xed\xa0\x80");
	vs_logc(&log, VS_LOG_SUBSCRIBE, "id\"1", "client %s", "x");
	vs_logc(&log, VS_LOG_INFO, NULL, "no id");
	char *s = read_file(path, &len);
	assert_string_equal(s, "{\"level\":\"warning\",\"message\":\"a \\\"q\\\" \\\\ b\\tc\\n"
			       "\\u0001\xc3\xa9\\ufffd\\ufffd\\ufffd\\ufffd\"}\n"
			       "{\"level\":\"subscribe\",\"message\":\"client x\","
			       "\"client_id\":\"id\\\"1\"}\n"
			       "{\"level\":\"info\",\"message\":\"no id\"}\n");
	free(s);
	assert_int_equal(truncate(path, 0), 0);
	log.timestamps = true;
	vs_log(&log, VS_LOG_ERR, "t");
	s = read_file(path, &len);
	assert_int_equal(strncmp(s, "{\"time\":\"", 9), 0);
	assert_int_equal(s[9 + 10], 'T');
	assert_string_equal(s + 9 + 24, "\",\"level\":\"error\",\"message\":\"t\"}\n");
	free(s);
	/* A message longer than the line: cut, still one well-formed object. */
	assert_int_equal(truncate(path, 0), 0);
	char big[3000];
	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	vs_logc(&log, VS_LOG_ERR, "c", "%s", big);
	s = read_file(path, &len);
	assert_string_equal(s + len - 18, "\",\"client_id\":\"c\"}\n" + 1);
	assert_int_equal(strchr(s, '\n'), s + len - 1);
	free(s);
	unlink(path);
	vs_log_fini(&log);
}

struct sink_rec {
	int calls;
	unsigned type;
	char text[64];
};

static void sink(void *ud, unsigned type, const char *text, size_t len)
{
	struct sink_rec *r = ud;
	r->calls++;
	r->type = type;
	snprintf(r->text, sizeof(r->text), "%.*s", (int)len, text);
}

/* log_dest topic: the sink gets Mosquitto's text, never debug lines; types still filter. */
static void test_log_topic_sink(void **state)
{
	struct vs_log log;
	struct sink_rec r = {0};
	vs_log_init(&log);
	log.dests = VS_LOGD_TOPIC;
	log.types = VS_LOG_ALL & ~VS_LOG_INFO;
	log.timestamps = false;
	vs_log(&log, VS_LOG_NOTICE, "dropped: no sink yet");
	log.topic_sink = sink;
	log.topic_ud = &r;
	vs_log(&log, VS_LOG_SUBSCRIBE, "c 1 a/b");
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.type, VS_LOG_SUBSCRIBE);
	assert_string_equal(r.text, "c 1 a/b");
	vs_log(&log, VS_LOG_DEBUG, "Received PUBLISH");
	vs_log(&log, VS_LOG_INFO, "not enabled");
	assert_int_equal(r.calls, 1);
	log.timestamps = true;
	log.json = true; /* the topic keeps Mosquitto's text whatever the format */
	vs_log(&log, VS_LOG_ERR, "bad");
	assert_int_equal(r.calls, 2);
	char *colon = strchr(r.text, ':');
	assert_non_null(colon);
	assert_int_equal(colon - r.text, 10);
	assert_string_equal(colon, ": bad");
	assert_string_equal(vs_log_topic_suffix(VS_LOG_SUBSCRIBE), "M/subscribe");
	assert_string_equal(vs_log_topic_suffix(VS_LOG_UNSUBSCRIBE), "M/unsubscribe");
	assert_string_equal(vs_log_topic_suffix(VS_LOG_WEBSOCKETS), "WS");
	assert_string_equal(vs_log_topic_suffix(VS_LOG_NOTICE), "N");
	vs_log_fini(&log);
}

/* log_format mosquitto: Mosquitto's logging.c, "SECONDS: message" or "<strftime>: message",
 * no type name. */
static void test_log_mosquitto_format(void **state)
{
	struct vs_log log;
	char path[64];
	size_t len;

	file_log(&log, path);
	log.types = VS_LOG_ALL;
	log.mosquitto = true;
	time_t before = time(NULL);
	vs_log(&log, VS_LOG_NOTICE, "Client %s disconnected.", "x");
	time_t after = time(NULL);
	char *s = read_file(path, &len);
	long long t = 0;
	int used = 0;
	assert_int_equal(sscanf(s, "%lld: %n", &t, &used), 1);
	assert_true(t >= before && t <= after);
	assert_string_equal(s + used, "Client x disconnected.\n");
	free(s);

	assert_int_equal(truncate(path, 0), 0);
	log.ts_format = "[%Y]";
	vs_log(&log, VS_LOG_DEBUG, "\tt (QoS 1)");
	s = read_file(path, &len);
	assert_int_equal(s[0], '[');
	assert_string_equal(s + 6, ": \tt (QoS 1)\n");
	free(s);

	assert_int_equal(truncate(path, 0), 0);
	log.timestamps = false;
	vs_log(&log, VS_LOG_ERR, "plain");
	s = read_file(path, &len);
	assert_string_equal(s, "plain\n");
	free(s);
	unlink(path);
	log.ts_format = NULL;
	vs_log_fini(&log);
}

static void test_log_disabled_types(void **state)
{
	struct vs_log log;
	char path[64];
	size_t len;

	file_log(&log, path);
	log.timestamps = false;
	log.types = VS_LOG_ERR | VS_LOG_SUBSCRIBE;
	vs_log(&log, VS_LOG_DEBUG, "no");
	vs_log(&log, VS_LOG_INFO, "no");
	vs_log(&log, VS_LOG_WARN, "no");
	vs_log(&log, VS_LOG_ERR, "yes");
	vs_log(&log, VS_LOG_SUBSCRIBE, "yes");
	log.types = 0;
	vs_log(&log, VS_LOG_ERR, "no");
	log.types = VS_LOG_ALL;
	log.dests = VS_LOGD_NONE;
	vs_log(&log, VS_LOG_ERR, "no");
	/* the file destination without an open file writes nowhere (and does not crash) */
	log.dests = VS_LOGD_FILE;
	int fd = log.fd;
	log.fd = -1;
	vs_log(&log, VS_LOG_ERR, "no");
	log.fd = fd;
	char *s = read_file(path, &len);
	assert_string_equal(s, "error: yes\nsubscribe: yes\n");
	free(s);
	unlink(path);
	vs_log_fini(&log);
}

static void test_log_long_line(void **state)
{
	struct vs_log log;
	char path[64];
	size_t len;
	char *big = malloc(5000);

	memset(big, 'a', 4999);
	big[4999] = '\0';
	file_log(&log, path);
	log.timestamps = true;
	vs_log(&log, VS_LOG_ERR, "%s", big);
	vs_log(&log, VS_LOG_ERR, "after");
	char *s = read_file(path, &len);
	/* the long line is cut to fit the line buffer and still ends in a newline */
	char *nl = strchr(s, '\n');
	assert_non_null(nl);
	assert_int_equal(nl - s + 1, 2047);
	assert_int_equal(nl[-1], 'a');
	assert_string_equal(nl + 1 + 24, " error: after\n");
	free(s);
	free(big);
	unlink(path);
	vs_log_fini(&log);
}

static void test_log_reopen_rotation(void **state)
{
	struct vs_log log;
	char path[64], rotated[80];
	size_t len;

	file_log(&log, path);
	log.timestamps = false;
	vs_log(&log, VS_LOG_INFO, "one");
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	assert_int_equal(rename(path, rotated), 0);
	vs_log(&log, VS_LOG_INFO, "two"); /* still to the old file */
	assert_int_equal(vs_log_reopen(&log), 0);
	vs_log(&log, VS_LOG_INFO, "three");
	char *s = read_file(rotated, &len);
	assert_string_equal(s, "info: one\ninfo: two\n");
	free(s);
	s = read_file(path, &len);
	assert_string_equal(s, "info: three\n");
	free(s);
	unlink(path);
	unlink(rotated);
	vs_log_fini(&log);
}

#define LOG_THREADS 4
#define LOG_LINES   400

struct log_arg {
	const struct vs_log *log;
	int id;
};

static void *log_thread(void *p)
{
	struct log_arg *a = p;
	char body[1500];

	/* Lines of varying, large lengths: each is thread id, line number, then a fill byte
	 * unique to the thread, so a torn line is detectable. */
	for (int i = 0; i < LOG_LINES; i++) {
		size_t n = 200 + (size_t)((i * 97 + a->id * 13) % 1200);
		memset(body, 'A' + a->id, n);
		body[n] = '\0';
		vs_log(a->log, VS_LOG_INFO, "T%d L%d %s", a->id, i, body);
	}
	return NULL;
}

static void test_log_threads(void **state)
{
	struct vs_log log;
	char path[64];
	size_t len;
	pthread_t th[LOG_THREADS];
	struct log_arg args[LOG_THREADS];

	file_log(&log, path);
	log.timestamps = true;
	for (int i = 0; i < LOG_THREADS; i++) {
		args[i] = (struct log_arg){&log, i};
		assert_int_equal(pthread_create(&th[i], NULL, log_thread, &args[i]), 0);
	}
	for (int i = 0; i < LOG_THREADS; i++)
		pthread_join(th[i], NULL);
	char *s = read_file(path, &len);
	int next[LOG_THREADS] = {0}, lines = 0;
	for (char *line = s, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		int id, num, off = 0;
		assert_int_equal(sscanf(line + 24, " info: T%d L%d %n", &id, &num, &off), 2);
		assert_true(id >= 0 && id < LOG_THREADS);
		assert_int_equal(num, next[id]); /* each thread's lines in its order */
		next[id]++;
		size_t n = 200 + (size_t)((num * 97 + id * 13) % 1200);
		const char *body = line + 24 + off;
		assert_int_equal(strlen(body), n);
		for (size_t k = 0; k < n; k++)
			if (body[k] != 'A' + id)
				fail_msg("line %d of thread %d torn at %zu", num, id, k);
		lines++;
	}
	assert_int_equal(lines, LOG_THREADS * LOG_LINES);
	free(s);
	unlink(path);
	vs_log_fini(&log);
}

/* ---------------------------------------------------------------- error */

static void test_error_strings(void **state)
{
	assert_string_equal(vs_strerror(VS_OK), "success");
	assert_string_equal(vs_strerror(VS_EPROTO), "protocol error");
	assert_string_equal(vs_strerror(VS_ETOOBIG), "too large");
	assert_string_equal(vs_strerror(VS_ECONF), "bad configuration");
	assert_string_equal(vs_strerror(VS_ECLOSED), "connection closed");
	assert_string_equal(vs_strerror(VS_ESTATE), "invalid state");
	/* -errno maps to the system's text */
	assert_string_equal(vs_strerror(-ENOMEM), strerror(ENOMEM));
	assert_string_equal(vs_strerror(-EAGAIN), strerror(EAGAIN));
	assert_string_equal(vs_strerror(-ECONNRESET), strerror(ECONNRESET));
	/* own codes never collide with errno values */
	assert_true(VS_EPROTO < -1000 && VS_ESTATE < -1000);
	/* any other value still gives a non-empty string, without undefined behaviour */
	const int odd[] = {1, 42, INT_MAX, -999999, -1006, INT_MIN, INT_MIN + 1};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		const char *s = vs_strerror(odd[i]);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
	}
	assert_string_equal(vs_strerror(1), "unknown");
}

/* ---------------------------------------------------------------- vec */

static void test_vec_grow(void **state)
{
	(void)state;
	uint32_t *v = NULL, cap = 0, n = 0;
	assert_int_equal(VS_VEC_GROW(v, cap, 1, 4), 0); /* from nothing: the first capacity */
	assert_int_equal(cap, 4);
	for (uint32_t i = 0; i < 1000; i++) {
		assert_int_equal(VS_VEC_GROW(v, cap, n + 1, 4), 0);
		v[n++] = i; /* ASan: every write lands inside the array */
	}
	assert_int_equal(cap, 1024); /* doubled: 4, 8, ..., 1024 */
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(v[i], i);
	uint32_t *before = v;
	assert_int_equal(VS_VEC_GROW(v, cap, 10, 4), 0); /* room already: nothing moves */
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 1024);
	/* an impossible size fails and leaves the array as it was */
	assert_int_equal(VS_VEC_GROW(v, cap, (size_t)UINT32_MAX + 1, 4), -ENOMEM);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 1024);
	free(v);
	size_t *w = NULL, wcap = 0;
	assert_int_equal(VS_VEC_GROW(w, wcap, 3, 0), 0); /* size_t capacity; first 0 means 1 */
	assert_int_equal(wcap, 4);
	assert_int_equal(VS_VEC_GROW(w, wcap, SIZE_MAX / 2, 0), -ENOMEM);
	assert_int_equal(wcap, 4);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vec_grow),
	    cmocka_unit_test(test_bytes_empty),
	    cmocka_unit_test(test_bytes_append_consume),
	    cmocka_unit_test(test_bytes_reserve),
	    cmocka_unit_test(test_bytes_reserve_overflow),
	    cmocka_unit_test(test_bytes_compaction),
	    cmocka_unit_test(test_bytes_stream),
	    cmocka_unit_test(test_bytes_large_growth),
	    cmocka_unit_test(test_bytes_shrink),
	    cmocka_unit_test(test_map_empty),
	    cmocka_unit_test(test_map_fini_with),
	    cmocka_unit_test(test_map_hash),
	    cmocka_unit_test(test_map_seeded),
	    cmocka_unit_test(test_map_basic),
	    cmocka_unit_test(test_map_collisions_every_order),
	    cmocka_unit_test(test_map_full_wrap_run),
	    cmocka_unit_test(test_map_many_keys),
	    cmocka_unit_test(test_log_defaults),
	    cmocka_unit_test(test_log_reopen_error),
	    cmocka_unit_test(test_log_format),
	    cmocka_unit_test(test_log_mosquitto_format),
	    cmocka_unit_test(test_log_json),
	    cmocka_unit_test(test_log_topic_sink),
	    cmocka_unit_test(test_log_disabled_types),
	    cmocka_unit_test(test_log_long_line),
	    cmocka_unit_test(test_log_reopen_rotation),
	    cmocka_unit_test(test_log_threads),
	    cmocka_unit_test(test_error_strings),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
