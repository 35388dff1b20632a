/*
 * Statistics for `viesti bench`: a latency histogram and per-publisher stream trackers.
 *
 * The histogram is log-linear in the style of HdrHistogram: values below 2^VS_HIST_SUB are
 * counted exactly, and above that every power-of-two range is split into 2^(VS_HIST_SUB-1)
 * equal buckets, so any recorded value is known to within 1/2^(VS_HIST_SUB-1) (0.8% with
 * VS_HIST_SUB 8) of itself. The table covers 0..2^63 ns in a fixed 61 KB: nothing allocates
 * while recording, and two histograms merge by adding counters.
 *
 * A stream is what one receiver sees of one publisher: sequence numbers 0, 1, 2, ... A tracker
 * remembers which of the last VS_STREAM_WINDOW sequence numbers arrived, in a ring of bits, so
 * it counts duplicates and unique messages exactly even when messages arrive out of order by
 * up to that many positions (MQTT keeps one publisher's messages on one topic in order, so in
 * practice they never are). A sequence number older than the window counts as a duplicate.
 * Loss is then `expected - unique` when the sender's count is known, or the gaps between the
 * lowest and highest number seen when it is not.
 *
 * Neither structure locks: each is owned by one thread, except the trackers of a shared
 * subscription group, which the caller guards (see bench_run.c).
 */
#ifndef VS_CMD_BENCH_STATS_H
#define VS_CMD_BENCH_STATS_H

#include <stdbool.h>
#include <stdint.h>

#define VS_HIST_SUB	8
#define VS_HIST_HALF	(1u << (VS_HIST_SUB - 1))
#define VS_HIST_BUCKETS ((64 - VS_HIST_SUB + 2) * VS_HIST_HALF)

struct vs_hist {
	uint64_t count;
	uint64_t min; /* exact */
	uint64_t max; /* exact */
	double sum;   /* for the mean */
	uint64_t counts[VS_HIST_BUCKETS];
};

void vs_hist_init(struct vs_hist *h);
void vs_hist_record(struct vs_hist *h, uint64_t v);
/* Adds src's counts into dst. */
void vs_hist_merge(struct vs_hist *dst, const struct vs_hist *src);
/* The value at quantile q (0..1): the highest value equivalent to the bucket holding the
 * ceil(q * count)-th smallest recording, clamped to max. 0 when empty. */
uint64_t vs_hist_quantile(const struct vs_hist *h, double q);

#define VS_STREAM_WINDOW 4096

struct vs_stream {
	uint64_t base;	 /* every sequence number below base is out of the window */
	uint64_t unique; /* distinct sequence numbers seen */
	uint64_t dups;	 /* repeats (and stragglers older than the window) */
	uint64_t lo, hi; /* lowest and highest sequence number seen (valid when unique > 0) */
	uint64_t
	    bits[VS_STREAM_WINDOW / 64]; /* bit (seq % WINDOW) for seq in [base, base+WINDOW) */
};

void vs_stream_init(struct vs_stream *s);
/* Records one arrival. Returns true if seq is new, false for a duplicate. */
bool vs_stream_see(struct vs_stream *s, uint64_t seq);
/* Missing sequence numbers between the lowest and highest seen. */
uint64_t vs_stream_gaps(const struct vs_stream *s);

#endif
