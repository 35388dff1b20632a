/*
 * The Prometheus text exposition format, version 0.0.4: what GET /metrics answers
 * (src/broker/metrics.c). ARCHITECTURE.md: "Debian has no C client, and the format is a few
 * lines", so here are those lines: a writer that appends families and samples to a byte
 * buffer, and a histogram whose observations are lock-free.
 *
 * The writer keeps the first error (out of memory) and ignores what follows, so a caller writes
 * everything and looks once at the end. Label values are escaped as the format asks (\\, \",
 * \n); metric and label names are the caller's constants and are not checked.
 */
#ifndef VS_BASE_PROM_H
#define VS_BASE_PROM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"

/* The Content-Type of the format. */
#define VS_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct vs_prom {
	struct vs_bytes *out; /* appended to; the caller's */
	int err;	      /* 0, or the first error (-ENOMEM) */
};

/* "# HELP name help" and "# TYPE name type" (type: "counter", "gauge", "histogram"). help may
 * hold any text: a backslash and a line feed are escaped. */
void vs_prom_family(struct vs_prom *p, const char *name, const char *type, const char *help);

/* One sample "name{label="value"} v": label NULL for none. */
void vs_prom_u64(struct vs_prom *p, const char *name, const char *label, const char *value,
		 uint64_t v);
void vs_prom_double(struct vs_prom *p, const char *name, const char *label, const char *value,
		    double v);

/* Histogram buckets at most. */
#define VS_PROM_MAX_BUCKETS 16

/*
 * A histogram of integer observations (nanoseconds, bytes) in buckets with fixed upper bounds.
 * Observing is two relaxed atomic additions, from any thread; a reader sums the buckets, so
 * _count always equals the +Inf bucket (the sum may run one observation ahead or behind).
 */
struct vs_prom_hist {
	const uint64_t *bounds; /* ascending upper bounds (inclusive), n of them */
	size_t n;		/* at most VS_PROM_MAX_BUCKETS */
	atomic_uint_fast64_t counts[VS_PROM_MAX_BUCKETS + 1]; /* per bucket, the last is +Inf */
	atomic_uint_fast64_t sum;
};

/* Starts h empty over bounds[0..n) (borrowed; n is clamped to VS_PROM_MAX_BUCKETS). */
void vs_prom_hist_init(struct vs_prom_hist *h, const uint64_t *bounds, size_t n);
void vs_prom_hist_observe(struct vs_prom_hist *h, uint64_t v);
/* The family name_bucket{le=...}, name_sum, name_count, with bounds and sum multiplied by
 * scale (1e-9: nanoseconds as seconds). Writes the # HELP and # TYPE lines too. */
void vs_prom_hist_write(struct vs_prom *p, const struct vs_prom_hist *h, const char *name,
			const char *help, double scale);

#endif
