/*
 * Allocation fault injection (see fault.h): the __wrap_ functions that -Wl,--wrap= links in
 * place of malloc, calloc, realloc, strdup and strndup for the *_faults test executables.
 *
 * The counter and the failure point are process-wide because malloc has no context to carry
 * them; they live here, in test code only. Atomics keep a stray allocation on another thread
 * (a store's interval-sync thread) from being a data race, though scenarios run on one thread.
 */
#include "fault.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static atomic_bool counting;
static atomic_ulong seen;    /* allocations since fault_begin() */
static atomic_ulong fail_at; /* 0: none; FAULT_FAIL_ALL: all; else the one to fail */
static atomic_bool fired;

/* Counts one allocation; true if it is to fail. */
static bool fail_this(void)
{
	if (!atomic_load(&counting))
		return false;
	unsigned long k = atomic_fetch_add(&seen, 1) + 1, f = atomic_load(&fail_at);
	if (f != FAULT_FAIL_ALL && f != k)
		return false;
	atomic_store(&fired, true);
	return true;
}

void *__wrap_malloc(size_t n)
{
	return fail_this() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_this() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_this() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fail_this() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fail_this() ? NULL : __real_strndup(s, n);
}

void fault_begin(unsigned long k)
{
	atomic_store(&seen, 0);
	atomic_store(&fail_at, k);
	atomic_store(&fired, false);
	atomic_store(&counting, true);
}

unsigned long fault_end(void)
{
	atomic_store(&counting, false);
	return atomic_load(&seen);
}

bool fault_fired(void)
{
	return atomic_load(&fired);
}

unsigned long fault_each(const char *name, fault_scenario fn, void *ctx)
{
	fn(ctx, 0);
	assert_false(fault_fired());
	unsigned long n = atomic_load(&seen);
	for (unsigned long k = 1; k <= n; k++) {
		fn(ctx, k);
		if (!fault_fired())
			fail_msg("%s: allocation %lu of %lu was never made", name, k, n);
	}
	fprintf(stderr, "%s: %lu allocations, each failed in a run of its own\n", name, n);
	return n;
}
