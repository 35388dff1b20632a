/* Latency histogram and stream trackers for `viesti bench`; see bench_stats.h. */
#include "cmd/bench_stats.h"

#include <string.h>

void vs_hist_init(struct vs_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

/* Values below 2^VS_HIST_SUB map to themselves; above, the top VS_HIST_SUB bits select the
 * bucket within the value's power-of-two range, and the shift says which range. */
static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << VS_HIST_SUB))
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - (VS_HIST_SUB - 1);
	return shift * VS_HIST_HALF + (unsigned)(v >> shift);
}

/* The highest value that lands in bucket i. */
static uint64_t bucket_top(unsigned i)
{
	if (i < (1u << VS_HIST_SUB))
		return i;
	unsigned shift = i / VS_HIST_HALF - 1;
	uint64_t m = i - shift * VS_HIST_HALF;
	return ((m + 1) << shift) - 1;
}

void vs_hist_record(struct vs_hist *h, uint64_t v)
{
	h->counts[bucket_of(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void vs_hist_merge(struct vs_hist *dst, const struct vs_hist *src)
{
	for (unsigned i = 0; i < VS_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t vs_hist_quantile(const struct vs_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < VS_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = bucket_top(i);
			if (v > h->max)
				v = h->max;
			return v < h->min ? h->min : v;
		}
	}
	return h->max;
}

void vs_stream_init(struct vs_stream *s)
{
	memset(s, 0, sizeof(*s));
}

static void clear_bit(struct vs_stream *s, uint64_t seq)
{
	unsigned b = (unsigned)(seq % VS_STREAM_WINDOW);
	s->bits[b / 64] &= ~(1ull << (b % 64));
}

/* Moves the window so that seq is its last position, forgetting what falls out. */
static void slide(struct vs_stream *s, uint64_t seq)
{
	uint64_t nbase = seq - VS_STREAM_WINDOW + 1;
	if (nbase - s->base >= VS_STREAM_WINDOW) {
		memset(s->bits, 0, sizeof(s->bits));
	} else {
		for (uint64_t q = s->base; q < nbase; q++)
			clear_bit(s, q);
	}
	s->base = nbase;
}

bool vs_stream_see(struct vs_stream *s, uint64_t seq)
{
	if (seq < s->base) {
		s->dups++;
		return false;
	}
	if (seq >= s->base + VS_STREAM_WINDOW)
		slide(s, seq);
	unsigned b = (unsigned)(seq % VS_STREAM_WINDOW);
	uint64_t bit = 1ull << (b % 64);
	if (s->bits[b / 64] & bit) {
		s->dups++;
		return false;
	}
	s->bits[b / 64] |= bit;
	if (s->unique == 0 || seq < s->lo)
		s->lo = seq;
	if (s->unique == 0 || seq > s->hi)
		s->hi = seq;
	s->unique++;
	return true;
}

uint64_t vs_stream_gaps(const struct vs_stream *s)
{
	if (s->unique == 0)
		return 0;
	uint64_t span = s->hi - s->lo + 1;
	return span > s->unique ? span - s->unique : 0;
}
