/*
 * Guard-page copies for unit tests (see guard.h). Each copy gets its own mapping: the data pages
 * rounded up to whole pages, plus one page made PROT_NONE; the copy is placed at the end of the
 * data pages. Compiles standalone: every unit test executable links it.
 */
#include "guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	return ps > 0 ? (size_t)ps : 4096;
}

static size_t data_pages_len(size_t len)
{
	size_t ps = page_size();
	size_t n = (len + ps - 1) / ps * ps;
	return n ? n : ps;
}

uint8_t *guard_copy(const void *data, size_t len)
{
	size_t dl = data_pages_len(len), ps = page_size();
	uint8_t *base =
	    mmap(NULL, dl + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (base == MAP_FAILED || mprotect(base + dl, ps, PROT_NONE) != 0) {
		perror("guard_copy");
		abort();
	}
	uint8_t *p = base + dl - len;
	if (len)
		memcpy(p, data, len);
	return p;
}

void guard_free(uint8_t *p, size_t len)
{
	size_t dl = data_pages_len(len);
	uint8_t *base = p + len - dl;

	munmap(base, dl + page_size());
}
