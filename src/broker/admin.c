/*
 * What the main thread's signals ask of a running broker, besides reload and stop (see
 * broker.h): SIGUSR1's snapshot, SIGUSR2's state dump, and the systemd watchdog's ping. Where
 * Mosquitto saves its database on SIGUSR1 and prints its subscription tree on SIGUSR2, Viesti
 * does the same through its log, and neither signal stops the broker.
 *
 * Each shard's state is read only by the thread running it: the dump and the ping are mails,
 * handled in the shard's own turn. The sessions' subscriptions are copied out under each
 * session's lock and logged after it is released (no lock across a write).
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/worker.h"
#include "session/session.h"

void vs_broker_snapshot(struct vs_broker *b)
{
	if (!b->store) {
		vs_log(b->log, VS_LOG_NOTICE, "SIGUSR1: persistence is off, no snapshot to write");
		return;
	}
	vs_log(b->log, VS_LOG_NOTICE, "SIGUSR1: writing a persistence snapshot");
	atomic_store(&b->snapshot_asked, true);
	struct vs_mail m = {.type = VS_MAIL_WAKE};
	vs_worker_post_now(&b->workers[0], &m); /* its tick starts the snapshot thread */
}

/* The sessions, each with a reference, so that no lock is held while they are logged. */
static struct vs_session **all_sessions(struct vs_broker *b, size_t *n)
{
	pthread_mutex_lock(&b->reg_lock);
	size_t cap = b->sessions.count, k = 0;
	struct vs_session **v = malloc((cap ? cap : 1) * sizeof(*v));
	size_t it = 0;
	struct vs_session *val;
	while (v && k < cap && vs_registry_next(&b->sessions, &it, &val))
		v[k++] = vs_session_ref(val);
	pthread_mutex_unlock(&b->reg_lock);
	*n = k;
	return v;
}

/* One session's subscriptions as "FILTER (QoS n), ..." in out (truncated to cap). */
static uint32_t format_subs(struct vs_session *s, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	pthread_mutex_lock(&s->lock);
	uint32_t n = vs_session_n_subs(s);
	for (uint32_t i = 0; i < n && len < cap; i++) {
		const struct vs_session_sub *sub = &s->subs->v[i];
		int k = snprintf(out + len, cap - len, "%s%.*s (QoS %u)", i ? ", " : "",
				 (int)sub->len, sub->filter, sub->qos);
		len += k > 0 ? (size_t)k : 0;
	}
	bool connected = s->connected;
	pthread_mutex_unlock(&s->lock);
	if (!connected && len < cap)
		snprintf(out + len, cap - len, "%s", n ? " [offline]" : "[offline]");
	return n;
}

void vs_broker_dump(struct vs_broker *b)
{
	size_t n = 0;
	struct vs_session **v = all_sessions(b, &n);
	vs_log(b->log, VS_LOG_NOTICE, "SIGUSR2: %zu session(s), %d worker thread(s)", n,
	       b->n_workers);
	char subs[1536];
	for (size_t i = 0; v && i < n; i++) {
		uint32_t k = format_subs(v[i], subs, sizeof(subs));
		vs_log(b->log, VS_LOG_NOTICE, "SIGUSR2: session %.*s: %u subscription(s)%s%s",
		       (int)v[i]->id_len, v[i]->client_id, k, subs[0] ? ": " : "", subs);
		vs_session_unref(v[i]);
	}
	free(v);
	struct vs_mail m = {.type = VS_MAIL_DUMP};
	for (int i = 0; i < b->n_workers; i++)
		vs_worker_post_now(&b->workers[i], &m);
}

void vs_broker_dump_shard(struct vs_worker *w)
{
	struct vs_stats *st = &w->stats;
	vs_log(w->b->log, VS_LOG_NOTICE,
	       "SIGUSR2: worker %d: %u connection(s), %s, load %d per mille, received %llu "
	       "packets (%llu bytes), sent %llu packets (%llu bytes)",
	       w->idx, w->n_conns, w->lent ? "run by thread 0 (consolidated)" : "own thread",
	       atomic_load_explicit(&w->th.load, memory_order_relaxed),
	       (unsigned long long)atomic_load_explicit(&st->msgs_received, memory_order_relaxed),
	       (unsigned long long)atomic_load_explicit(&st->bytes_received, memory_order_relaxed),
	       (unsigned long long)atomic_load_explicit(&st->msgs_sent, memory_order_relaxed),
	       (unsigned long long)atomic_load_explicit(&st->bytes_sent, memory_order_relaxed));
}

void vs_broker_ping(struct vs_broker *b, uint64_t seq)
{
	struct vs_mail m = {.type = VS_MAIL_PING, .conn_id = seq};
	for (int i = 0; i < b->n_workers; i++)
		vs_worker_post_now(&b->workers[i], &m);
}

bool vs_broker_pinged(struct vs_broker *b, uint64_t seq)
{
	for (int i = 0; i < b->n_workers; i++)
		if (atomic_load_explicit(&b->workers[i].pong, memory_order_acquire) < seq)
			return false;
	return true;
}
