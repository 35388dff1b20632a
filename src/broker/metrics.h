/*
 * GET /metrics: the broker's counters in the Prometheus text format (base/prom.h).
 *
 * A scrape reads what the broker keeps anyway, each value with a relaxed atomic load: the
 * workers' own counters (summed, as $SYS sums them), the broker's gauges (clients, sessions,
 * subscriptions, retained messages, queued and inflight messages, each kept as an atomic where
 * it changes), the listeners' connection counts, the persistence commit histogram and the
 * threads' load. It takes no lock; the process metrics cost a few system calls (pread of
 * /proc/self/statm, clock_gettime, getrlimit, and reading /proc/self/fd).
 */
#ifndef VS_BROKER_METRICS_H
#define VS_BROKER_METRICS_H

#include "base/bytes.h"

struct vs_broker;

/* Appends every metric of b to out. Returns 0 or -ENOMEM (out may hold part of them). */
int vs_metrics_write(struct vs_broker *b, struct vs_bytes *out);

#endif
