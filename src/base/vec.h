/*
 * Growable arrays: one rule for every array that grows by doubling. An array is a pointer and a
 * capacity kept by its owner (the count too); vs_vec_grow makes room, and nothing else about
 * the array changes. The capacity may be a uint32_t (most of the broker's arrays, kept small in
 * hot structures) or a size_t: VS_VEC_GROW picks the function.
 *
 *	if (VS_VEC_GROW(w->matches, w->cap_matches, w->n_matches + 1, 64) < 0)
 *		return -ENOMEM;
 *	w->matches[w->n_matches++] = *m;
 */
#ifndef VS_BASE_VEC_H
#define VS_BASE_VEC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Makes room for at least `need` elements of `size` bytes in *v, whose capacity is *cap: when
 * it is short, the capacity doubles (from `first`) until it is enough. Returns 0, or -ENOMEM
 * with *v and *cap unchanged (an overflow counts as no memory).
 */
int vs_vec_grow(void **v, size_t *cap, size_t size, size_t need, size_t first);
int vs_vec_grow32(void **v, uint32_t *cap, size_t size, size_t need, size_t first);

/* qsort/bsearch comparator of uint64_t values, ascending. */
int vs_cmp_u64(const void *a, const void *b);

#define VS_VEC_GROW(v, cap, need, first)                                                           \
	_Generic(&(cap), uint32_t *                                                                \
		 : vs_vec_grow32, size_t *                                                         \
		 : vs_vec_grow)((void **)&(v), &(cap), sizeof(*(v)), (need), (first))

#endif
