/* CHECK(): an invariant of a fuzz target. When it fails, the target aborts with the file, line
 * and condition, and libFuzzer keeps the input that broke it. */
#ifndef VS_FUZZ_CHECK_H
#define VS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
