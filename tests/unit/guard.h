/*
 * Guard pages for parser tests, in the manner of picohttpparser's tests: the input is copied
 * so that its last byte sits right before a PROT_NONE page, and any read past the end faults
 * at once instead of silently reading neighbouring heap memory.
 */
#ifndef VS_TESTS_GUARD_H
#define VS_TESTS_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* Returns a copy of data[0..len) ending right before an inaccessible page (len may be 0).
 * Aborts if the mapping fails. Release with guard_free(p, len). */
uint8_t *guard_copy(const void *data, size_t len);

/* Unmaps a buffer from guard_copy(); p and len as given to / returned by it. */
void guard_free(uint8_t *p, size_t len);

#endif
