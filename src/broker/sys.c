/*
 * Housekeeping: see sys.h.
 */
#include "base/vec.h"
#include "broker/sys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>

#include "base/clock.h"
#include "broker/cluster.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "session/session.h"
#include "topic/retain.h"
#include "topic/tree.h"

/* A session whose expiry passed, or whose will is due, collected under reg_lock. */
struct due {
	struct vs_session *s;
	bool expired;
};

static void sweep_sessions(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	int64_t now = w->now_ms;
	struct due *due = NULL;
	size_t n = 0, cap = 0;
	pthread_mutex_lock(&b->reg_lock);
	size_t it = 0;
	struct vs_session *x;
	while (vs_registry_next(&b->sessions, &it, &x)) {
		pthread_mutex_lock(&x->lock);
		bool expired = !x->connected && x->expiry != UINT32_MAX &&
			       now - x->offline_since_ms >= (int64_t)x->expiry * 1000;
		bool will_due = !x->connected && x->will && now >= x->will_at_ms;
		pthread_mutex_unlock(&x->lock);
		if (!expired && !will_due)
			continue;
		if (VS_VEC_GROW(due, cap, n + 1, 16) < 0)
			break;
		due[n++] = (struct due){vs_session_ref(x), expired};
	}
	pthread_mutex_unlock(&b->reg_lock);
	for (size_t i = 0; i < n; i++) {
		struct vs_session *s = due[i].s;
		pthread_mutex_lock(&s->lock);
		struct vs_msg *will = NULL;
		if (!s->connected && s->will && now >= s->will_at_ms) {
			will = s->will;
			s->will = NULL;
			vs_bp_will_del(w, s);
		}
		/* Re-checked under the lock: the client may have come and gone since the scan. */
		bool still_offline = !s->connected && s->expiry != UINT32_MAX &&
				     now - s->offline_since_ms >= (int64_t)s->expiry * 1000;
		pthread_mutex_unlock(&s->lock);
		if (will) {
			vs_publish_will(w, will);
			vs_msg_unref(will);
		}
		if (due[i].expired && still_offline) {
			b->sessions_expired++;
			vs_logc(b->log, VS_LOG_INFO, s->client_id, "session of client %s expired",
				s->client_id);
			vs_router_end_session(w, s);
		}
		vs_session_unref(s);
	}
	free(due);
}

/*
 * One $SYS topic as Mosquitto 2.0 publishes it (its sys_tree.c): retained, QoS 0, with a message
 * expiry interval of 60 s (expiry 0: none, for the static ones), and only when its value changed
 * since it was last published (the first time always).
 */
static void publish(struct vs_worker *w, const char *topic, uint32_t expiry, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void publish(struct vs_worker *w, const char *topic, uint32_t expiry, const char *fmt, ...)
{
	struct vs_broker *b = w->b;
	char val[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(val))
		return;
	size_t tlen = strlen(topic);
	char *last = vs_map_get(&b->sys_values, topic, tlen);
	if (last && strcmp(last, val) == 0)
		return;
	char *copy = strdup(val);
	void *old = NULL;
	if (!copy || vs_map_put(&b->sys_values, topic, tlen, copy, &old) < 0) {
		free(copy);
		return; /* published again next time */
	}
	free(old);
	struct vs_props props = {0};
	if (expiry) {
		props.present = 1ull << VS_PROP_MESSAGE_EXPIRY;
		props.message_expiry = expiry;
	}
	struct vs_msg *m = vs_msg_make(topic, tlen, val, (size_t)n, 0, true, expiry ? &props : NULL,
				       NULL, w->now_ms);
	if (!m)
		return;
	vs_route(w, m, NULL);
	vs_msg_unref(m);
}

static uint64_t resident_bytes(struct vs_broker *b);

#define SYS_EXPIRY 60 /* Mosquitto's, on every $SYS message but the version */

static bool has_mqttsn(const struct vs_broker *b)
{
	for (size_t i = 0, n = vs_broker_listeners(b); i < n; i++)
		if (b->listeners[i].sn)
			return true;
	return false;
}

static uint64_t sockets_accepted(const struct vs_broker *b)
{
	uint64_t sum = 0;
	for (size_t i = 0, n = vs_broker_listeners(b); i < n; i++)
		sum += atomic_load_explicit(&b->listeners[i].accepted, memory_order_relaxed);
	return sum;
}

/* Mosquitto's clients/...: total counts sessions (connected or not), maximum the most
 * connected at once, expired the sessions that expired. */
static void publish_clients(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	int connected = atomic_load(&b->clients_connected);
	size_t total = atomic_load(&b->n_sessions);
	if (total < (size_t)connected)
		total = (size_t)connected;
	size_t disconnected = total - (size_t)connected;
	publish(w, "$SYS/broker/clients/total", SYS_EXPIRY, "%zu", total);
	publish(w, "$SYS/broker/clients/expired", SYS_EXPIRY, "%llu",
		(unsigned long long)b->sessions_expired);
	int max = atomic_load(&b->clients_max);
	if (max > 0) /* as Mosquitto: first published once someone connected */
		publish(w, "$SYS/broker/clients/maximum", SYS_EXPIRY, "%d", max);
	publish(w, "$SYS/broker/clients/inactive", SYS_EXPIRY, "%zu", disconnected);
	publish(w, "$SYS/broker/clients/disconnected", SYS_EXPIRY, "%zu", disconnected);
	publish(w, "$SYS/broker/clients/active", SYS_EXPIRY, "%d", connected);
	publish(w, "$SYS/broker/clients/connected", SYS_EXPIRY, "%d", connected);
}

/*
 * Load averages as Mosquitto computes them: the rate per minute over the time since the last
 * publication, folded into an exponentially-weighted average over 1, 5 and 15 minutes:
 * new = rate + exp(-dt / (60 * minutes)) * (old - rate).
 */
static void publish_load(struct vs_worker *w, const struct vs_stats *st, double dt)
{
	struct vs_broker *b = w->b;
	static const char *names[] = {"1min", "5min", "15min"};
	static const double mins[] = {1, 5, 15};
	const struct {
		const char *topic;
		uint64_t now;
	} series[9] = {
	    {"messages/received", st->msgs_received},
	    {"messages/sent", st->msgs_sent},
	    {"publish/dropped", st->pub_dropped},
	    {"publish/received", st->pub_received},
	    {"publish/sent", st->pub_sent},
	    {"bytes/received", st->bytes_received},
	    {"bytes/sent", st->bytes_sent},
	    {"sockets", sockets_accepted(b)},
	    {"connections", st->connects},
	};
	for (size_t i = 0; i < 9; i++) {
		double rate = dt > 0 ? (double)(series[i].now - b->sys_last[i]) * 60.0 / dt : 0;
		b->sys_last[i] = series[i].now;
		for (int k = 0; k < 3 && dt > 0; k++) {
			double e = __builtin_exp(-dt / (60.0 * mins[k]));
			b->sys_load[i][k] = rate + e * (b->sys_load[i][k] - rate);
		}
		for (int k = 0; k < 3; k++) {
			char topic[96];
			snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", series[i].topic,
				 names[k]);
			publish(w, topic, SYS_EXPIRY, "%.2f", b->sys_load[i][k]);
		}
	}
}

/* Messages held: retained, queued and in flight (a message queued for several clients counts
 * once per client; Mosquitto counts it once). */
static void publish_store(struct vs_worker *w, const struct vs_stats *st)
{
	struct vs_broker *b = w->b;
	int64_t q = (int64_t)st->queued + b->restored_queued;
	int64_t f = (int64_t)st->inflight + b->restored_inflight;
	size_t stored =
	    vs_retain_count(b->retain) + (size_t)(q > 0 ? q : 0) + (size_t)(f > 0 ? f : 0);
	publish(w, "$SYS/broker/messages/stored", SYS_EXPIRY, "%zu", stored);
	publish(w, "$SYS/broker/store/messages/count", SYS_EXPIRY, "%zu", stored);
	publish(w, "$SYS/broker/store/messages/bytes", SYS_EXPIRY, "%zu",
		vs_retain_bytes(b->retain));
	publish(w, "$SYS/broker/subscriptions/count", SYS_EXPIRY, "%zu", vs_tree_count(b->tree));
	publish(w, "$SYS/broker/shared_subscriptions/count", SYS_EXPIRY, "%zu",
		vs_tree_shared_count(b->tree));
	publish(w, "$SYS/broker/retained messages/count", SYS_EXPIRY, "%zu",
		vs_retain_count(b->retain));
	/* heap: what the allocator has handed out and not taken back (Mosquitto counts its own
	 * allocations; this counts everyone's, OpenSSL's too). An allocator that does not say
	 * (a sanitizer's) gives the resident memory instead. */
	struct mallinfo2 mi = mallinfo2();
	size_t heap = mi.uordblks ? mi.uordblks : (size_t)resident_bytes(b); /* sanitizers: 0 */
	if (heap > b->sys_heap_max)
		b->sys_heap_max = heap;
	publish(w, "$SYS/broker/heap/current", SYS_EXPIRY, "%zu", heap);
	publish(w, "$SYS/broker/heap/maximum", SYS_EXPIRY, "%zu", b->sys_heap_max);
}

static void publish_counters(struct vs_worker *w, const struct vs_stats *st)
{
#define U(x) ((unsigned long long)(x))
	publish(w, "$SYS/broker/messages/received", SYS_EXPIRY, "%llu", U(st->msgs_received));
	publish(w, "$SYS/broker/messages/sent", SYS_EXPIRY, "%llu", U(st->msgs_sent));
	publish(w, "$SYS/broker/publish/messages/dropped", SYS_EXPIRY, "%llu", U(st->pub_dropped));
	publish(w, "$SYS/broker/publish/messages/received", SYS_EXPIRY, "%llu",
		U(st->pub_received));
	publish(w, "$SYS/broker/publish/messages/sent", SYS_EXPIRY, "%llu", U(st->pub_sent));
	publish(w, "$SYS/broker/publish/bytes/received", SYS_EXPIRY, "%llu",
		U(st->pub_bytes_received));
	publish(w, "$SYS/broker/publish/bytes/sent", SYS_EXPIRY, "%llu", U(st->pub_bytes_sent));
	publish(w, "$SYS/broker/bytes/received", SYS_EXPIRY, "%llu", U(st->bytes_received));
	publish(w, "$SYS/broker/bytes/sent", SYS_EXPIRY, "%llu", U(st->bytes_sent));
}

/* Viesti's own figures, under $SYS/broker/viesti/ (same rules). */
static void publish_viesti(struct vs_worker *w, const struct vs_stats *st)
{
	struct vs_broker *b = w->b;
	int64_t q = (int64_t)st->queued + b->restored_queued;
	int64_t f = (int64_t)st->inflight + b->restored_inflight;
	publish(w, "$SYS/broker/viesti/threads", SYS_EXPIRY, "%d", b->n_workers);
	publish(w, "$SYS/broker/viesti/sessions", SYS_EXPIRY, "%zu", atomic_load(&b->n_sessions));
	publish(w, "$SYS/broker/viesti/messages/queued", SYS_EXPIRY, "%lld",
		(long long)(q > 0 ? q : 0));
	publish(w, "$SYS/broker/viesti/messages/inflight", SYS_EXPIRY, "%lld",
		(long long)(f > 0 ? f : 0));
	publish(w, "$SYS/broker/viesti/auth/failures", SYS_EXPIRY, "%llu", U(st->auth_failures));
	publish(w, "$SYS/broker/viesti/connections/current", SYS_EXPIRY, "%d",
		atomic_load(&b->connections));
	if (has_mqttsn(b)) {
		publish(w, "$SYS/broker/viesti/mqttsn/malformed", SYS_EXPIRY, "%llu",
			U(st->sn_malformed));
		publish(w, "$SYS/broker/viesti/mqttsn/refused", SYS_EXPIRY, "%llu",
			U(st->sn_refused));
	}
#undef U
}

/* The cluster's figures, under $SYS/broker/cluster/ (docs/cluster.md), when there is one. */
static void publish_cluster(struct vs_worker *w)
{
	struct vs_cluster_stats cs;
	if (!w->b->cluster)
		return;
	vs_cluster_stats(w->b, &cs);
	publish(w, "$SYS/broker/cluster/connected", SYS_EXPIRY, "%d", cs.connected ? 1 : 0);
	publish(w, "$SYS/broker/cluster/nodes", SYS_EXPIRY, "%u", cs.nodes);
	if (cs.rtt_us >= 0)
		publish(w, "$SYS/broker/cluster/rtt", SYS_EXPIRY, "%.3f ms", cs.rtt_us / 1000.0);
	publish(w, "$SYS/broker/cluster/messages/sent", SYS_EXPIRY, "%llu",
		(unsigned long long)cs.sent);
	publish(w, "$SYS/broker/cluster/messages/received", SYS_EXPIRY, "%llu",
		(unsigned long long)cs.received);
	publish(w, "$SYS/broker/cluster/retained/bucket", SYS_EXPIRY, "%d",
		cs.retained_bucket ? 1 : 0);
	publish(w, "$SYS/broker/cluster/retained/applied", SYS_EXPIRY, "%llu",
		(unsigned long long)cs.retained_applied);
	publish(w, "$SYS/broker/cluster/shared_groups", SYS_EXPIRY, "%zu", cs.shared_groups);
	publish(w, "$SYS/broker/cluster/sessions/taken", SYS_EXPIRY, "%llu",
		(unsigned long long)cs.sessions_taken);
	publish(w, "$SYS/broker/cluster/sessions/given", SYS_EXPIRY, "%llu",
		(unsigned long long)cs.sessions_given);
	publish(w, "$SYS/broker/cluster/sessions/rebuilt", SYS_EXPIRY, "%llu",
		(unsigned long long)cs.sessions_rebuilt);
}

static void publish_sys(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	struct vs_stats st;
	vs_broker_stats(b, &st);
	double dt = b->sys_last_ms ? (double)(w->now_ms - b->sys_last_ms) / 1000.0 : 0;
	b->sys_last_ms = w->now_ms;
	/* Static: once, retained, no expiry (Mosquitto's sys_tree__init). */
	publish(w, "$SYS/broker/version", 0, "viesti version %s", VS_VERSION);
	publish(w, "$SYS/broker/uptime", SYS_EXPIRY, "%lld seconds",
		(long long)(vs_wall_s() - b->start_wall));
	publish_clients(w);
	publish_load(w, &st, dt); /* dt 0, the first time: 0.00, counting from now */
	publish_store(w, &st);
	publish_counters(w, &st);
	publish_viesti(w, &st);
	publish_cluster(w);
}

/*
 * memory_limit: the broker's resident memory (what the kernel's OOM killer goes by), read from
 * /proc/self/statm every sweep. Past the limit, new connections and QoS 1/2 publishes are
 * refused (0x97) while everything else goes on; below 90% of it they are taken again. Memory
 * the allocator keeps after free() is given back with malloc_trim() meanwhile, once a second,
 * or the broker could stay "full" of memory it no longer uses.
 */
static uint64_t resident_bytes(struct vs_broker *b)
{
	char buf[128];
	if (b->statm_fd < 0)
		return 0;
	ssize_t n = pread(b->statm_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	unsigned long long size = 0, resident = 0;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void check_memory(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	uint64_t limit = b->conf->memory_limit;
	bool over = atomic_load(&b->over_memory);
	if (!limit) {
		if (over)
			atomic_store(&b->over_memory, false);
		return;
	}
	uint64_t rss = resident_bytes(b);
	if (!over && rss > limit) {
		atomic_store(&b->over_memory, true);
		b->trimmed_ms = w->now_ms;
		vs_log(
		    b->log, VS_LOG_WARN,
		    "memory_limit reached: %llu bytes resident, limit %llu: "
		    "new connections and QoS 1/2 publishes are refused until it falls below %llu",
		    (unsigned long long)rss, (unsigned long long)limit,
		    (unsigned long long)(limit / 10 * 9));
		malloc_trim(0);
	} else if (over && rss < limit / 10 * 9) {
		atomic_store(&b->over_memory, false);
		vs_log(b->log, VS_LOG_NOTICE,
		       "memory back under memory_limit: %llu bytes resident: "
		       "connections and QoS 1/2 publishes are taken again",
		       (unsigned long long)rss);
	} else if (over && w->now_ms - b->trimmed_ms >= 1000) {
		b->trimmed_ms = w->now_ms;
		malloc_trim(0);
	}
}

/* Rates per second for GET /api/v1/stats, from one second to the next. */
static void sample_rates(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	struct vs_stats st;
	vs_broker_stats(b, &st);
	uint64_t now[4] = {st.pub_received, st.pub_sent, st.bytes_received, st.bytes_sent};
	/* The first sample counts from start-up, when the counters were 0. */
	int64_t dt = w->now_ms - (b->rate_last_ms ? b->rate_last_ms : b->start_ms);
	for (int i = 0; i < 4; i++) {
		uint64_t r = dt > 0 && now[i] >= b->rate_last[i]
				 ? (now[i] - b->rate_last[i]) * 1000 / (uint64_t)dt
				 : 0;
		atomic_store_explicit(&b->rate[i], r, memory_order_relaxed);
		b->rate_last[i] = now[i];
	}
	b->rate_last_ms = w->now_ms;
}

/* One queued log line: its type and its text (not NUL-terminated). */
struct vs_logq_line {
	unsigned type;
	size_t len;
	char *text;
};

void vs_sys_log_init(struct vs_broker *b)
{
	pthread_mutex_init(&b->logq_lock, NULL);
	b->log->topic_ud = b;
	__atomic_store_n(&b->log->topic_sink, vs_sys_log_sink, __ATOMIC_RELEASE);
}

void vs_sys_log_sink(void *ud, unsigned type, const char *text, size_t len)
{
	struct vs_broker *b = ud;
	char *copy = malloc(len ? len : 1);
	if (copy)
		memcpy(copy, text, len);
	pthread_mutex_lock(&b->logq_lock);
	if (!copy || b->logq_n >= VS_SYS_LOGQ_MAX ||
	    VS_VEC_GROW(b->logq, b->logq_cap, b->logq_n + 1, 64) < 0) {
		b->logq_dropped++;
		pthread_mutex_unlock(&b->logq_lock);
		free(copy);
		return;
	}
	b->logq[b->logq_n++] = (struct vs_logq_line){type, len, copy};
	pthread_mutex_unlock(&b->logq_lock);
}

void vs_sys_log_fini(struct vs_broker *b)
{
	if (b->log->topic_ud != b)
		return;
	__atomic_store_n(&b->log->topic_sink, NULL, __ATOMIC_RELEASE);
	b->log->topic_ud = NULL;
	for (size_t i = 0; i < b->logq_n; i++)
		free(b->logq[i].text);
	free(b->logq);
	b->logq = NULL;
	b->logq_n = b->logq_cap = 0;
	pthread_mutex_destroy(&b->logq_lock);
}

/* Publishes what the log queued: the lines queued meanwhile (publishing may log) wait for the
 * next sweep. */
static void publish_log(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	pthread_mutex_lock(&b->logq_lock);
	struct vs_logq_line *lines = b->logq;
	size_t n = b->logq_n;
	uint64_t dropped = b->logq_dropped;
	b->logq = NULL;
	b->logq_n = b->logq_cap = 0;
	b->logq_dropped = 0;
	pthread_mutex_unlock(&b->logq_lock);
	struct vs_props props = {0};
	props.present = 1ull << VS_PROP_MESSAGE_EXPIRY;
	props.message_expiry = 20; /* Mosquitto's */
	for (size_t i = 0; i < n; i++) {
		char topic[64];
		snprintf(topic, sizeof(topic), "$SYS/broker/log/%s",
			 vs_log_topic_suffix(lines[i].type));
		struct vs_msg *m = vs_msg_make(topic, strlen(topic), lines[i].text, lines[i].len, 2,
					       false, &props, NULL, w->now_ms);
		if (m) {
			vs_route(w, m, NULL);
			vs_msg_unref(m);
		}
		free(lines[i].text);
	}
	free(lines);
	if (dropped)
		vs_log(b->log, VS_LOG_WARN,
		       "log_dest topic: %llu log line(s) dropped, more than %d waited to be "
		       "published",
		       (unsigned long long)dropped, VS_SYS_LOGQ_MAX);
}

void vs_sys_tick(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	check_memory(w);
	if (b->log->topic_sink)
		publish_log(w);
	if (w->now_ms - b->last_session_sweep_ms >= 1000) {
		b->last_session_sweep_ms = w->now_ms;
		sweep_sessions(w);
		sample_rates(w);
		vs_bp_maybe_compact(b);
	}
	if (b->conf->sys_interval > 0 && w->now_ms >= w->next_sys_ms) {
		w->next_sys_ms = w->now_ms + (int64_t)b->conf->sys_interval * 1000;
		publish_sys(w);
	}
}
