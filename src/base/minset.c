/* A counted min-set of 64-bit numbers (minset.h). */
#include "base/minset.h"

#include <errno.h>
#include <stdlib.h>

#include "base/vec.h"

static void sift_up(uint64_t *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h[p] <= h[i])
			break;
		uint64_t t = h[p];
		h[p] = h[i];
		h[i] = t;
		i = p;
	}
}

static void sift_down(uint64_t *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && h[l] < h[m])
			m = l;
		if (r < n && h[r] < h[m])
			m = r;
		if (m == i)
			return;
		uint64_t t = h[m];
		h[m] = h[i];
		h[i] = t;
		i = m;
	}
}

static int push(uint64_t **h, size_t *n, size_t *cap, uint64_t v)
{
	if (VS_VEC_GROW(*h, *cap, *n + 1, 64) < 0)
		return -ENOMEM;
	(*h)[*n] = v;
	sift_up(*h, (*n)++);
	return 0;
}

static void pop(uint64_t *h, size_t *n)
{
	h[0] = h[--*n];
	sift_down(h, *n, 0);
}

void vs_minset_init(struct vs_minset *s)
{
	*s = (struct vs_minset){0};
	pthread_mutex_init(&s->lock, NULL);
}

void vs_minset_fini(struct vs_minset *s)
{
	free(s->in);
	free(s->out);
	pthread_mutex_destroy(&s->lock);
	s->in = s->out = NULL;
	s->n_in = s->n_out = s->cap_in = s->cap_out = 0;
}

int vs_minset_add(struct vs_minset *s, uint64_t v)
{
	pthread_mutex_lock(&s->lock);
	int rc = push(&s->in, &s->n_in, &s->cap_in, v);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Takes the deleted values out of the added ones for good: while an old value stays (the
 * smallest is pinned), deletes would otherwise pile up in `out` and their values in `in`. A
 * sorted array is a heap. O(n log n), once per n / 2 deletes. */
static void compact(struct vs_minset *s)
{
	qsort(s->in, s->n_in, sizeof(*s->in), vs_cmp_u64);
	qsort(s->out, s->n_out, sizeof(*s->out), vs_cmp_u64);
	size_t k = 0, j = 0;
	for (size_t i = 0; i < s->n_in; i++) {
		while (j < s->n_out && s->out[j] < s->in[i])
			j++; /* deleted but never added: cannot happen; dropped */
		if (j < s->n_out && s->out[j] == s->in[i])
			j++;
		else
			s->in[k++] = s->in[i];
	}
	s->n_in = k;
	s->n_out = 0;
}

void vs_minset_del(struct vs_minset *s, uint64_t v)
{
	pthread_mutex_lock(&s->lock);
	if (s->n_in && s->in[0] == v && (s->n_out == 0 || s->out[0] != v))
		pop(s->in, &s->n_in); /* the usual case: the oldest goes first */
	else if (push(&s->out, &s->n_out, &s->cap_out, v) == 0 && s->n_out >= 1024 &&
		 2 * s->n_out >= s->n_in)
		compact(s);
	pthread_mutex_unlock(&s->lock);
}

uint64_t vs_minset_min(struct vs_minset *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->n_in && s->n_out && s->in[0] == s->out[0]) {
		pop(s->in, &s->n_in);
		pop(s->out, &s->n_out);
	}
	uint64_t m = s->n_in ? s->in[0] : UINT64_MAX;
	pthread_mutex_unlock(&s->lock);
	return m;
}

size_t vs_minset_count(struct vs_minset *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->n_in - s->n_out;
	pthread_mutex_unlock(&s->lock);
	return n;
}
