/*
 * Allocation fault injection for the unit tests, in the manner of SQLite's malloc tests: run a
 * scenario once counting its allocations (N), then N more times with allocation k failing once
 * (k = 1..N). Each run must end in an error return, never a crash, a leak (LSan) or a use after
 * free (ASan), and leave the state whole enough to be used and freed; the run without a failure
 * must give the right answer.
 *
 * The hook is test-only: the *_faults test executables are linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup (see
 * CMakeLists.txt), which sends every call to those functions from the objects linked into the
 * executable (the test file and the vs_* libraries, not libc or cmocka) to the __wrap_
 * functions in fault.c. They count, fail the chosen one, and otherwise call the real function,
 * which ASan still intercepts. Production code is untouched.
 *
 * Only allocations between fault_begin() and fault_end() count, so set-up and checks may
 * allocate freely. Not thread-aware: a scenario runs on one thread.
 */
#ifndef VS_TESTS_FAULT_H
#define VS_TESTS_FAULT_H

#include <stdbool.h>

/* Starts counting. fail_at 0: fail nothing; k > 0: the k-th allocation from now returns NULL
 * (once). FAULT_FAIL_ALL: every allocation fails. */
#define FAULT_FAIL_ALL (~0ul)
void fault_begin(unsigned long fail_at);

/* Stops counting; returns the allocations seen since fault_begin() (the failed one included). */
unsigned long fault_end(void);

/* Whether an allocation has failed since fault_begin(). */
bool fault_fired(void);

/*
 * A scenario: sets itself up, calls fault_begin(fail_at) right before the code under test and
 * fault_end() right after, checks the outcome (success when !fault_fired(), an error and a
 * consistent state otherwise), and frees everything.
 */
typedef void (*fault_scenario)(void *ctx, unsigned long fail_at);

/*
 * Runs fn once with no failure to count its allocations (N), then once for each k = 1..N with
 * allocation k failing, and checks that each of those runs saw its failure (the allocation
 * sequence is deterministic). Returns N. Prints "name: N allocations" to stderr.
 */
unsigned long fault_each(const char *name, fault_scenario fn, void *ctx);

#endif
