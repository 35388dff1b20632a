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
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&b->sessions, &it, &key, &klen, &val)) {
		struct vs_session *s = val;
		pthread_mutex_lock(&s->lock);
		bool expired = !s->connected && s->expiry != UINT32_MAX &&
			       now - s->offline_since_ms >= (int64_t)s->expiry * 1000;
		bool will_due = !s->connected && s->will && now >= s->will_at_ms;
		pthread_mutex_unlock(&s->lock);
		if (!expired && !will_due)
			continue;
		if (VS_VEC_GROW(due, cap, n + 1, 16) < 0)
			break;
		due[n++] = (struct due){vs_session_ref(s), expired};
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
			vs_logc(b->log, VS_LOG_INFO, s->client_id, "session of client %s expired",
				s->client_id);
			vs_router_end_session(w, s);
		}
		vs_session_unref(s);
	}
	free(due);
}

static void publish(struct vs_worker *w, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void publish(struct vs_worker *w, const char *topic, const char *fmt, ...)
{
	char val[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	struct vs_msg *m =
	    vs_msg_make(topic, strlen(topic), val, (size_t)n, 0, true, NULL, NULL, w->now_ms);
	if (!m)
		return;
	vs_route(w, m, NULL);
	vs_msg_unref(m);
}

/* Exponentially-weighted load averages per minute, as Mosquitto computes them. */
struct load {
	double v[3];
};

static bool has_mqttsn(const struct vs_broker *b)
{
	for (size_t i = 0, n = vs_broker_listeners(b); i < n; i++)
		if (b->listeners[i].sn)
			return true;
	return false;
}

static void publish_sys(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	struct vs_stats st;
	vs_broker_stats(b, &st);
	int64_t up = vs_wall_s() - b->start_wall;
	int connected = atomic_load(&b->clients_connected);
	pthread_mutex_lock(&b->reg_lock);
	size_t total = b->sessions.count;
	pthread_mutex_unlock(&b->reg_lock);
	size_t disconnected = total > (size_t)connected ? total - (size_t)connected : 0;

	publish(w, "$SYS/broker/version", "viesti version %s", VS_VERSION);
	publish(w, "$SYS/broker/uptime", "%lld seconds", (long long)up);
	publish(w, "$SYS/broker/clients/connected", "%d", connected);
	publish(w, "$SYS/broker/clients/active", "%d", connected);
	publish(w, "$SYS/broker/clients/disconnected", "%zu", disconnected);
	publish(w, "$SYS/broker/clients/inactive", "%zu", disconnected);
	publish(w, "$SYS/broker/clients/total", "%zu",
		total > (size_t)connected ? total : (size_t)connected);
	publish(w, "$SYS/broker/clients/maximum", "%d", atomic_load(&b->clients_max));
	publish(w, "$SYS/broker/messages/received", "%llu", (unsigned long long)st.msgs_received);
	publish(w, "$SYS/broker/messages/sent", "%llu", (unsigned long long)st.msgs_sent);
	publish(w, "$SYS/broker/publish/messages/received", "%llu",
		(unsigned long long)st.pub_received);
	publish(w, "$SYS/broker/publish/messages/sent", "%llu", (unsigned long long)st.pub_sent);
	publish(w, "$SYS/broker/publish/messages/dropped", "%llu",
		(unsigned long long)st.pub_dropped);
	publish(w, "$SYS/broker/bytes/received", "%llu", (unsigned long long)st.bytes_received);
	publish(w, "$SYS/broker/bytes/sent", "%llu", (unsigned long long)st.bytes_sent);
	publish(w, "$SYS/broker/subscriptions/count", "%zu", vs_tree_count(b->tree));
	publish(w, "$SYS/broker/retained messages/count", "%zu", vs_retain_count(b->retain));
	if (has_mqttsn(b)) {
		publish(w, "$SYS/broker/mqttsn/malformed", "%llu",
			(unsigned long long)st.sn_malformed);
		publish(w, "$SYS/broker/mqttsn/refused", "%llu", (unsigned long long)st.sn_refused);
	}

	/* Load averages: rates over the last interval, smoothed over 1, 5 and 15 minutes. */
	static const char *names[] = {"1min", "5min", "15min"};
	static const double mins[] = {1, 5, 15};
	struct {
		const char *topic;
		uint64_t now;
	} series[] = {
	    {"messages/received", st.msgs_received},
	    {"messages/sent", st.msgs_sent},
	    {"publish/received", st.pub_received},
	    {"publish/sent", st.pub_sent},
	    {"bytes/received", st.bytes_received},
	    {"bytes/sent", st.bytes_sent},
	    {"connections", st.connects},
	};
	double interval = b->conf->sys_interval;
	for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
		double rate = (double)(series[i].now - b->sys_last[i]) * 60.0 / interval;
		b->sys_last[i] = series[i].now;
		for (int k = 0; k < 3; k++) {
			double a = 1.0 - __builtin_exp(-interval / (60.0 * mins[k]));
			b->sys_load[i][k] += a * (rate - b->sys_load[i][k]);
			char topic[96];
			snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", series[i].topic,
				 names[k]);
			publish(w, topic, "%.2f", b->sys_load[i][k]);
		}
	}
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
		vs_bp_maybe_compact(b);
	}
	if (b->conf->sys_interval > 0 && w->now_ms >= w->next_sys_ms) {
		w->next_sys_ms = w->now_ms + (int64_t)b->conf->sys_interval * 1000;
		publish_sys(w);
	}
}
