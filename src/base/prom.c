/*
 * The Prometheus text format: see prom.h.
 */
#include "base/prom.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void put(struct vs_prom *p, const char *s, size_t n)
{
	if (!p->err && vs_bytes_append(p->out, s, n) < 0)
		p->err = -ENOMEM;
}

static void putf(struct vs_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct vs_prom *p, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		p->err =
		    p->err ? p->err : -ENOMEM; /* only numbers go through here: cannot happen */
		return;
	}
	put(p, buf, (size_t)n);
}

/* s with the characters the format escapes (in a label value: also '"') escaped. */
static void put_escaped(struct vs_prom *p, const char *s, int quote)
{
	for (const char *run = s;; s++) {
		const char *esc = *s == '\\'	       ? "\\\\"
				  : *s == '\n'	       ? "\\n"
				  : *s == '"' && quote ? "\\\""
						       : NULL;
		if (!esc && *s)
			continue;
		put(p, run, (size_t)(s - run));
		if (!*s)
			return;
		put(p, esc, strlen(esc));
		run = s + 1;
	}
}

void vs_prom_family(struct vs_prom *p, const char *name, const char *type, const char *help)
{
	put(p, "# HELP ", 7);
	put(p, name, strlen(name));
	put(p, " ", 1);
	put_escaped(p, help, 0);
	put(p, "\n# TYPE ", 8);
	put(p, name, strlen(name));
	put(p, " ", 1);
	put(p, type, strlen(type));
	put(p, "\n", 1);
}

static void put_name(struct vs_prom *p, const char *name, const char *label, const char *value)
{
	put(p, name, strlen(name));
	if (label) {
		put(p, "{", 1);
		put(p, label, strlen(label));
		put(p, "=\"", 2);
		put_escaped(p, value, 1);
		put(p, "\"}", 2);
	}
	put(p, " ", 1);
}

void vs_prom_u64(struct vs_prom *p, const char *name, const char *label, const char *value,
		 uint64_t v)
{
	put_name(p, name, label, value);
	putf(p, "%llu\n", (unsigned long long)v);
}

void vs_prom_double(struct vs_prom *p, const char *name, const char *label, const char *value,
		    double v)
{
	put_name(p, name, label, value);
	/* %.17g round-trips; NaN and infinities are spelled as the format spells them. */
	if (v != v)
		put(p, "NaN\n", 4);
	else if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308)
		putf(p, "%sInf\n", v > 0 ? "+" : "-");
	else
		putf(p, "%.17g\n", v);
}

void vs_prom_hist_init(struct vs_prom_hist *h, const uint64_t *bounds, size_t n)
{
	h->bounds = bounds;
	h->n = n < VS_PROM_MAX_BUCKETS ? n : VS_PROM_MAX_BUCKETS;
	for (size_t i = 0; i <= VS_PROM_MAX_BUCKETS; i++)
		atomic_init(&h->counts[i], 0);
	atomic_init(&h->sum, 0);
}

void vs_prom_hist_observe(struct vs_prom_hist *h, uint64_t v)
{
	size_t i = 0;
	while (i < h->n && v > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void vs_prom_hist_write(struct vs_prom *p, const struct vs_prom_hist *h, const char *name,
			const char *help, double scale)
{
	char bucket[96], le[32];
	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	vs_prom_family(p, name, "histogram", help);
	uint64_t total = 0;
	for (size_t i = 0; i <= h->n; i++) {
		total += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		if (i < h->n)
			snprintf(le, sizeof(le), "%.9g", (double)h->bounds[i] * scale);
		else
			snprintf(le, sizeof(le), "+Inf");
		vs_prom_u64(p, bucket, "le", le, total);
	}
	char sum[96], count[96];
	snprintf(sum, sizeof(sum), "%s_sum", name);
	snprintf(count, sizeof(count), "%s_count", name);
	vs_prom_double(p, sum, NULL, NULL,
		       (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * scale);
	vs_prom_u64(p, count, NULL, NULL, total);
}
