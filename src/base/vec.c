/*
 * Growable arrays: see vec.h.
 */
#include "base/vec.h"

#include <errno.h>
#include <stdlib.h>

int vs_vec_grow(void **v, size_t *cap, size_t size, size_t need, size_t first)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : (first ? first : 1);
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	if (size && n > SIZE_MAX / size)
		return -ENOMEM;
	void *p = realloc(*v, n * size);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

int vs_vec_grow32(void **v, uint32_t *cap, size_t size, size_t need, size_t first)
{
	size_t c = *cap;
	if (need > UINT32_MAX)
		return -ENOMEM;
	int rc = vs_vec_grow(v, &c, size, need, first);
	if (rc == 0) {
		if (c > UINT32_MAX)
			c = UINT32_MAX; /* need fits: the capacity is still enough */
		*cap = (uint32_t)c;
	}
	return rc;
}

int vs_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}
