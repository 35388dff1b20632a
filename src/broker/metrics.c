/*
 * GET /metrics: see metrics.h. Names follow Prometheus's conventions: a unit suffix, _total on
 * counters, and the process_* metrics its client libraries export.
 */
#include "broker/metrics.h"

#include "broker/bridge.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/prom.h"
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/worker.h"
#include "topic/retain.h"
#include "topic/tree.h"

static void gauge(struct vs_prom *p, const char *name, const char *help, double v)
{
	vs_prom_family(p, name, "gauge", help);
	vs_prom_double(p, name, NULL, NULL, v);
}

static void counter(struct vs_prom *p, const char *name, const char *help, uint64_t v)
{
	vs_prom_family(p, name, "counter", help);
	vs_prom_u64(p, name, NULL, NULL, v);
}

/* A gauge summed over the workers, from where replay left it. */
static int64_t sum_gauge(const struct vs_stats *st, int64_t base, bool queued)
{
	int64_t v = base + (int64_t)(queued ? st->queued : st->inflight);
	return v > 0 ? v : 0; /* summed while workers change them: may be a moment off */
}

static void write_broker(struct vs_prom *p, struct vs_broker *b)
{
	struct vs_stats st;
	vs_broker_stats(b, &st);
	gauge(p, "viesti_clients_connected", "Clients connected (CONNECT accepted).",
	      atomic_load_explicit(&b->clients_connected, memory_order_relaxed));
	gauge(p, "viesti_sessions", "Sessions, of connected and disconnected clients.",
	      (double)atomic_load_explicit(&b->n_sessions, memory_order_relaxed));
	gauge(p, "viesti_subscriptions", "Subscriptions in the subscription tree.",
	      (double)vs_tree_count(b->tree));
	gauge(p, "viesti_retained_messages", "Retained messages.",
	      (double)vs_retain_count(b->retain));
	gauge(p, "viesti_queued_messages", "Messages waiting in sessions' queues to be sent.",
	      (double)sum_gauge(&st, b->restored_queued, true));
	gauge(p, "viesti_inflight_messages",
	      "QoS 1 and 2 messages sent and not yet acknowledged by their clients.",
	      (double)sum_gauge(&st, b->restored_inflight, false));
	counter(p, "viesti_messages_received_total", "PUBLISH packets received from clients.",
		st.pub_received);
	counter(p, "viesti_messages_sent_total", "PUBLISH packets sent to clients.", st.pub_sent);
	vs_prom_family(p, "viesti_messages_dropped_total", "counter",
		       "Messages not delivered to a subscriber, by reason (queue_full: its queue "
		       "was at max_queued_messages or max_queued_bytes).");
	vs_prom_u64(p, "viesti_messages_dropped_total", "reason", "queue_full", st.pub_dropped);
	counter(p, "viesti_publishers_slowed_total",
		"Times a publisher's input was paused because a connected subscriber's queue was "
		"past four times max_queued_messages, or past max_queued_bytes when "
		"max_queued_messages is 0, or a message was dropped at that queue's hard cap "
		"(backpressure).",
		st.pub_slowed);
	vs_prom_family(p, "viesti_publishers_resumed_total", "counter",
		       "Paused publishers read again, by why (drain: the queue they waited for "
		       "drained back within its limit; timer: their pause ended first).");
	vs_prom_u64(p, "viesti_publishers_resumed_total", "by", "drain", st.pub_resumed_drain);
	vs_prom_u64(p, "viesti_publishers_resumed_total", "by", "timer", st.pub_resumed_timer);
	counter(p, "viesti_bytes_received_total", "Bytes received on all connections.",
		st.bytes_received);
	counter(p, "viesti_bytes_sent_total", "Bytes sent on all connections.", st.bytes_sent);
	counter(p, "viesti_batched_writes_total",
		"Writes to plain TCP connections made together with others at the end of a loop "
		"turn, in one io_uring system call (io_uring true).",
		st.writes_batched);
	counter(p, "viesti_write_batches_total",
		"The io_uring system calls that made those writes.", st.write_batches);
	counter(p, "viesti_batched_reads_total",
		"Reads of plain TCP connections made together with the others readable at the "
		"same time, in one io_uring system call (io_uring true).",
		st.reads_batched);
	counter(p, "viesti_read_batches_total", "The io_uring system calls that made those reads.",
		st.read_batches);
	vs_prom_family(p, "viesti_connections_total", "counter",
		       "Connections accepted since start-up, by listener.");
	for (size_t i = 0, n = vs_broker_listeners(b); i < n; i++)
		vs_prom_u64(p, "viesti_connections_total", "listener", b->listeners[i].name,
			    atomic_load_explicit(&b->listeners[i].accepted, memory_order_relaxed));
	counter(p, "viesti_auth_failures_total",
		"CONNECTs refused for their credentials, and HTTP requests with wrong ones.",
		st.auth_failures);
	vs_prom_hist_write(p, &b->commit_hist, "viesti_persist_commit_seconds",
			   "Time a worker's commit of its loop turn's records to the store took.",
			   1e-9);
	vs_prom_family(p, "viesti_thread_load", "gauge",
		       "Share of the last window a worker thread spent outside epoll_wait (0..1).");
	for (int i = 0; i < b->n_workers; i++) {
		char id[16];
		snprintf(id, sizeof(id), "%d", i);
		vs_prom_double(p, "viesti_thread_load", "thread", id,
			       atomic_load_explicit(&b->workers[i].th.load, memory_order_relaxed) /
				   1000.0);
	}
}

/* Descriptors open, counted in /proc/self/fd (without the one reading it). */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	const struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

static void write_process(struct vs_prom *p, struct vs_broker *b)
{
	char buf[128];
	unsigned long long size = 0, resident = 0;
	ssize_t n = b->statm_fd >= 0 ? pread(b->statm_fd, buf, sizeof(buf) - 1, 0) : -1;
	if (n > 0) {
		buf[n] = '\0';
		if (sscanf(buf, "%llu %llu", &size, &resident) == 2) {
			double page = (double)sysconf(_SC_PAGESIZE);
			gauge(p, "process_resident_memory_bytes", "Resident memory size in bytes.",
			      (double)resident * page);
			gauge(p, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
			      (double)size * page);
		}
	}
	struct timespec ts;
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0) {
		vs_prom_family(p, "process_cpu_seconds_total", "counter",
			       "Total user and system CPU time spent in seconds.");
		vs_prom_double(p, "process_cpu_seconds_total", NULL, NULL,
			       (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	}
	long fds = open_fds();
	if (fds >= 0)
		gauge(p, "process_open_fds", "Number of open file descriptors.", (double)fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		gauge(p, "process_max_fds", "Maximum number of open file descriptors.",
		      rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
	gauge(p, "process_start_time_seconds",
	      "Start time of the process since unix epoch in seconds.", (double)b->start_wall);
}

/* The cluster (docs/cluster.md), when there is one. */
static void write_cluster(struct vs_prom *p, struct vs_broker *b)
{
	struct vs_cluster_stats cs;
	if (!b->cluster)
		return;
	vs_cluster_stats(b, &cs);
	gauge(p, "viesti_cluster_connected", "1 while connected to NATS, else 0.",
	      cs.connected ? 1 : 0);
	gauge(p, "viesti_cluster_nodes", "Nodes heard from in the last 10 s, this one included.",
	      cs.nodes);
	if (cs.rtt_us >= 0)
		gauge(p, "viesti_cluster_rtt_seconds",
		      "Round-trip time to the NATS server, measured every 2 s.", cs.rtt_us / 1e6);
	counter(p, "viesti_cluster_messages_sent_total",
		"Messages sent to the other nodes through NATS (shared-group copies included).",
		cs.sent);
	counter(p, "viesti_cluster_messages_received_total",
		"Messages received from the other nodes (duplicates not counted).", cs.received);
	gauge(p, "viesti_cluster_retained_bucket",
	      "1 when the JetStream bucket of retained messages is bound, else 0.",
	      cs.retained_bucket ? 1 : 0);
	counter(p, "viesti_cluster_retained_applied_total",
		"Changes of the bucket of retained messages stored on this node.",
		cs.retained_applied);
	gauge(p, "viesti_cluster_shared_groups",
	      "Shared subscription groups with members on this node (NATS queue groups).",
	      (double)cs.shared_groups);
	counter(p, "viesti_cluster_sessions_taken_total",
		"Persistent sessions that came here from another node.", cs.sessions_taken);
	counter(p, "viesti_cluster_sessions_given_total",
		"Persistent sessions this node handed over to another.", cs.sessions_given);
	counter(p, "viesti_cluster_sessions_rebuilt_total",
		"Sessions of a node that did not answer, rebuilt here from JetStream.",
		cs.sessions_rebuilt);
}

int vs_metrics_write(struct vs_broker *b, struct vs_bytes *out)
{
	struct vs_prom p = {.out = out};
	write_broker(&p, b);
	write_cluster(&p, b);
	vs_bridges_metrics(b, &p);
	write_process(&p, b);
	return p.err;
}
