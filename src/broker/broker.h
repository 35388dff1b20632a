/*
 * The broker: what every worker shares. Owned by `viesti broker` (src/cmd), created from a
 * loaded configuration, run until a signal asks it to stop.
 *
 * Shared state and its locks, in the only order they may be taken:
 *   reg_lock (session registry) -> the subscription trie's lock -> a session's lock ->
 *   a mailbox lock.
 * The trie and retained store are read-mostly (see src/topic/). No lock is held across a syscall.
 */
#ifndef VS_BROKER_BROKER_H
#define VS_BROKER_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/log.h"
#include "base/map.h"
#include "base/minset.h"
#include "base/prom.h"
#include "broker/grace.h"
#include "conf/conf.h"
#include "net/ws.h"
#include "session/registry.h"

#include <openssl/ssl.h>

struct vs_worker;
struct vs_tree;
struct vs_retain;
struct vs_session;
struct vs_passwd;
struct vs_acl;
struct vs_store;
struct vs_authq;
struct vs_sn_listener;
struct vs_bridge;

/*
 * What a listener decides about its clients as of the last (re)load: immutable, replaced whole
 * by a reload. Workers read it through vs_listener_sec() and may hold it for the rest of their
 * loop turn (grace.h): the generation that owns it is freed only after that.
 */
struct vs_listener_sec {
	const struct vs_listener_conf *conf; /* this listener in the configuration of that load */
	bool allow_anonymous;		     /* effective */
	bool allow_zero_length_clientid;
	const char *auto_id_prefix;
	struct vs_passwd *passwd; /* password file of this listener (or the global one), or NULL */
	struct vs_acl *acl;	  /* ACL of this listener (or the global one), or NULL */
	uint64_t serial;	  /* of the load that made it: a new one at every reload, never
				   * reused (an address can be, once the old settings are freed) */
};

/* A configured listener, resolved: what each worker opens a socket for. Lives as long as the
 * broker (a slot of b->listeners is never reused, so pointers to it stay valid); what a reload
 * may change is in its sec. A reload may add listeners (new slots) and remove them (removed). */
struct vs_listener {
	const struct vs_listener_conf *conf; /* as when it was opened: address, port, protocol (a
					      * reload cannot change those); the configuration
					      * it points into lives as long as the broker */
	struct vs_listener_sec *sec;	     /* current; see vs_listener_sec() */
	char name[112];		  /* "127.0.0.1:1883", "unix:/run/viesti.sock" for logs */
	int unix_fd;		  /* a unix listener's socket (each worker polls a dup), or -1 */
	bool tls;		  /* TLS (or TLS-PSK) listener: tls_ctx is set */
	pthread_mutex_t tls_lock; /* guards tls_ctx, which a reload replaces */
	SSL_CTX *tls_ctx;	  /* one reference; connections take their own */
	atomic_int connections;	  /* current, for max_connections */
	atomic_uint_fast64_t accepted;	  /* connections since start-up (GET /metrics) */
	bool http;			  /* protocol http (http.c) */
	bool ws;			  /* protocol websockets: ws_conf applies */
	struct vs_ws_server_conf ws_conf; /* from conf, fixed at start-up (strings borrowed but
					   * http_dir, the real path, owned) */
	struct vs_sn_listener *sn;   /* protocol mqttsn: the gateway's settings (broker/sn.c) */
	atomic_bool removed;	     /* a reload took it out: its sockets close, its clients go */
	atomic_int unlisten_pending; /* removed: workers yet to close their sockets and clients */
	atomic_int listen_pending;   /* added by a reload: workers yet to open their sockets */
	struct vs_listener_sec closed_sec; /* removed, once its clients are gone: what sec points
					    * to (no password file, no ACL) */
};

static inline const struct vs_listener_sec *vs_listener_sec(const struct vs_listener *l)
{
	return __atomic_load_n(&l->sec, __ATOMIC_ACQUIRE);
}

/* One load of the reloadable state: a configuration and what was built from it (password files,
 * ACLs, each listener's sec). Retired whole when a reload replaces it. */
struct vs_gen {
	struct vs_config *conf; /* owned, except the start-up configuration (the caller's) */
	bool owns_conf;
	struct vs_listener_sec *secs; /* one per listener */
	size_t n;
	struct vs_passwd *passwd;    /* global password_file, or NULL */
	struct vs_acl *acl;	     /* global acl_file, or NULL */
	struct vs_passwd **l_passwd; /* per_listener_settings: each listener's own, or NULL */
	struct vs_acl **l_acl;
};

/* Counters: each worker bumps its own with relaxed atomics; $SYS sums them. */
struct vs_stats {
	atomic_uint_fast64_t msgs_received; /* every control packet */
	atomic_uint_fast64_t msgs_sent;
	atomic_uint_fast64_t pub_received; /* PUBLISH packets */
	atomic_uint_fast64_t pub_sent;
	atomic_uint_fast64_t pub_dropped;
	atomic_uint_fast64_t pub_bytes_received; /* PUBLISH payload bytes */
	atomic_uint_fast64_t pub_bytes_sent;
	atomic_uint_fast64_t bytes_received;
	atomic_uint_fast64_t bytes_sent;
	atomic_uint_fast64_t connects;
	atomic_uint_fast64_t sn_malformed;	/* MQTT-SN datagrams dropped as malformed */
	atomic_uint_fast64_t sn_refused;	/* MQTT-SN datagrams from sources not admitted */
	atomic_uint_fast64_t auth_failures;	/* CONNECTs refused for their credentials, HTTP
						 * requests with wrong ones */
	atomic_uint_fast64_t pub_slowed;	/* publishers paused for a full queue */
	atomic_uint_fast64_t pub_resumed_drain; /* ... resumed as the queue drained */
	atomic_uint_fast64_t pub_resumed_timer; /* ... resumed when their pause ended */
	atomic_uint_fast64_t writes_batched;	/* writes that went in a batch (iobatch.h) */
	atomic_uint_fast64_t write_batches;	/* the batches: one system call each */
	atomic_uint_fast64_t reads_batched;	/* reads that went in a batch (conn.c prefetch) */
	atomic_uint_fast64_t read_batches;
	/* Gauges as the sum over workers of what each added and took away (one worker's may be
	 * negative: a message queued by one is sent by another): messages in sessions' queues
	 * and inflight windows. */
	atomic_int_fast64_t queued;
	atomic_int_fast64_t inflight;
};

struct vs_broker {
	struct vs_config *conf; /* owned by the caller, outlives the broker */
	struct vs_log *log;
	struct vs_tree *tree;
	struct vs_retain *retain;

	pthread_mutex_t reg_lock;
	struct vs_registry sessions; /* client id -> struct vs_session * (one reference) */
	uint64_t next_auto_id;	     /* under reg_lock */
	_Atomic uint32_t ended_seq;  /* the delivery numbers of ended sessions go up to here
				      * (serial order), written under reg_lock; a session
				      * going into the store goes on from it
				      * (vs_bp_session_record) */

	struct vs_listener *listeners; /* cap_listeners slots, n_listeners used (never moved) */
	size_t n_listeners;   /* grows at a reload (release store; see vs_broker_listeners) */
	size_t cap_listeners; /* at start-up: n_listeners + VS_RELOAD_LISTENERS_MAX */
	struct vs_config **kept_confs; /* reloads' configurations that listeners point into */
	size_t n_kept;
	struct vs_pinned *pinned; /* generations held by removed listeners' clients (reclaim) */
	size_t n_pinned;
	struct vs_store *store;		    /* persistence, or NULL when off */
	atomic_uint_fast64_t next_store_id; /* message ids for the store */
	atomic_bool store_warned; /* a storage failure was logged (reset when it recovers) */
	bool store_async; /* persistence_fsync batch without a cluster: workers do not wait for
			   * fdatasync, their output does (worker.c, held output) */
	atomic_bool snapshot_running;
	atomic_bool snapshot_asked; /* SIGUSR1: worker 0 starts a snapshot whatever the log size */
	bool snapshot_thread_started;
	pthread_t snapshot_thread;
	struct vs_gen *gen;	/* the current load (written only by reload, under grace) */
	struct vs_grace grace;	/* readers: the worker threads, the authentication threads */
	struct vs_authq *authq; /* password checks off the loops (authq.h) */
	const char *conf_path;	/* the file a reload reads again, or NULL (built-in defaults) */
	int conf_port;		/* -p on the command line, re-applied at reload, or 0 */
	bool conf_verbose;	/* -v: log everything, whatever the file says */

	struct vs_worker *workers;
	int n_workers;
	struct vs_bridge *bridges; /* one per `connection` section, run by worker 0 (bridge.c) */
	size_t n_bridges;
	struct vs_cluster *cluster; /* NATS (cluster.h), or NULL: a single node */
	/* Shards lent to thread 0 at low load (threads.c, "Threads and shards"). */
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	bool host_open; /* thread 0 takes lent shards (under park_lock) */

	atomic_bool stopping;
	atomic_int drained; /* threads past the first round of the stop's drain (worker.c) */
	atomic_uint_fast64_t connecting_bytes; /* input held for connections before CONNECT */
	atomic_int connections;	   /* open connections, all listeners (global_max_connections) */
	atomic_bool over_memory;   /* resident memory is past memory_limit (sys.c) */
	int statm_fd;		   /* /proc/self/statm, read for memory_limit, or -1 */
	int64_t trimmed_ms;	   /* worker 0: last malloc_trim while over memory_limit */
	atomic_size_t n_sessions;  /* sessions.count, stored under reg_lock at each change, so
				    * that GET /metrics reads it without the lock */
	int64_t restored_queued;   /* messages queued and inflight by replay at start-up (the */
	int64_t restored_inflight; /* workers' gauges count from there) */
	struct vs_prom_hist commit_hist; /* time a worker's commit to the store takes (persist.c) */
	atomic_int clients_connected;
	atomic_int clients_max;
	int64_t start_wall;
	int64_t start_ms;
	uint16_t receive_max; /* the broker's Receive Maximum (from max_inflight_messages) */
	uint16_t out_window;  /* the broker's own limit of outgoing inflight messages */

	/* log_dest topic: lines any thread logged, published by worker 0's next sweep (sys.c).
	 * logq_lock is a leaf: taken with any other lock held, nothing taken under it. */
	pthread_mutex_t logq_lock;
	struct vs_logq_line *logq; /* logq_n lines, oldest first */
	size_t logq_n, logq_cap;
	uint64_t logq_dropped; /* lines dropped because the queue was full (under logq_lock) */

	/* Worker 0's housekeeping state (sys.c). */
	int64_t last_session_sweep_ms;
	uint64_t rate_last[4]; /* PUBLISH in/out, bytes in/out at the last rate sample */
	int64_t rate_last_ms;
	atomic_uint_fast64_t rate[4]; /* the same per second over the last sample (GET
				       * /api/v1/stats): written by worker 0 once a second */
	uint64_t sys_last[9];	      /* counters at the previous $SYS publication */
	double sys_load[9][3];	      /* 1, 5, 15 minute load averages */
	int64_t sys_last_ms;	      /* when they were published, 0 = never */
	struct vs_map sys_values;     /* $SYS topic -> its last published value (char *, owned) */
	/* Cluster: the stream sequences of JetStream's messages still held here (in a queue, a
	 * window, a mailbox): vs_cjs_floor() stays below them. Lives until the last message. */
	struct vs_minset stream_held;
	/* Cluster: the highest stream sequence that some session that came from another node
	 * must not take again (vs_cluster_session_skips); 0: none. */
	atomic_uint_fast64_t roam_cut;
	/* Cluster: the stream sequences that this node had queued for its persistent sessions in
	 * its previous life (its store's records at start-up; the highest VS_ROUTED_KEEP,
	 * ascending). JetStream sends again what it got no acknowledgement of, also what this
	 * node had routed and stored just before it died: not routed twice (vs_bp_routed_before).
	 * Read-only once the workers run. */
	uint64_t *routed_before;
	size_t n_routed_before;
	uint64_t sessions_expired; /* $SYS/broker/clients/expired */
	size_t sys_heap_max;	   /* $SYS/broker/heap/maximum: the most heap/current has been */
};

/*
 * Creates the broker from conf (kept by pointer) and opens every listener on every worker.
 * Returns 0 or a negative error, with a message in err.
 */
/* Listeners that reloads may add over the broker's life, beyond those it started with. */
#define VS_RELOAD_LISTENERS_MAX 64

/* How many slots of b->listeners are in use (any thread). Slots below it are initialised; some
 * may be removed. */
static inline size_t vs_broker_listeners(const struct vs_broker *b)
{
	return __atomic_load_n(&b->n_listeners, __ATOMIC_ACQUIRE);
}

int vs_broker_init(struct vs_broker *b, struct vs_config *conf, struct vs_log *log, char *err,
		   size_t errlen);
/* Starts the worker threads; returns 0 or -errno. */
int vs_broker_start(struct vs_broker *b);
/* Asks every worker to stop (async-signal-unsafe: call from a normal thread). */
void vs_broker_stop(struct vs_broker *b);
/* Waits for the workers, then frees everything. */
void vs_broker_fini(struct vs_broker *b);

/* The TLS context new connections of l start from, with a reference for the caller (who
 * frees it with SSL_CTX_free once its session holds its own), or NULL for a plain listener. */
SSL_CTX *vs_listener_tls_get(struct vs_listener *l);

/*
 * Reloads the configuration file (SIGHUP), as Mosquitto does and more: password files, ACL
 * files, PSK files and TLS certificates are read again, and every directive takes its new value
 * except those a running broker cannot change (threads, persistence, pid_file, user...), which
 * keep theirs with a warning. Listeners are matched by port, address and address family: a new
 * one starts listening (every worker opens its sockets), one no longer in the file stops
 * accepting and its clients are disconnected (5.0: 0x98 Administrative action), the others keep
 * their clients. A kept listener cannot change its protocol or TLS, and MQTT-SN listeners cannot
 * be added or removed (a restart can). Connected clients stay; new connections and their
 * handshakes use the new settings; a connected client is checked against the new ACL on its
 * next publish and delivery. All or nothing: a file that fails to load keeps the old settings,
 * and the error (FILE:LINE) goes to err. Main thread only. Returns 0 or an error.
 */
int vs_broker_reload(struct vs_broker *b, char *err, size_t errlen);
/* Main thread: frees what reloads replaced once no worker can hold it (call now and then). */
void vs_broker_reclaim(struct vs_broker *b);

/*
 * What signals ask of a running broker (admin.c), from the main thread. None stops it.
 * vs_broker_snapshot(): SIGUSR1, a persistence snapshot now (on worker 0's next tick, within a
 * second), or a log line saying persistence is off. vs_broker_dump(): SIGUSR2, logs every
 * session's subscriptions, then asks each shard to log its own state (vs_broker_dump_shard(),
 * on its thread). vs_broker_ping() posts ping number seq to every shard; vs_broker_pinged()
 * says whether all have handled it: the watchdog's proof that every loop turns.
 */
void vs_broker_snapshot(struct vs_broker *b);
void vs_broker_dump(struct vs_broker *b);
void vs_broker_dump_shard(struct vs_worker *w);
void vs_broker_ping(struct vs_broker *b, uint64_t seq);
bool vs_broker_pinged(struct vs_broker *b, uint64_t seq);

/* The registry's size changed: called under reg_lock. */
/* Whether a client may not publish to topic (nor name it in a will): $SYS belongs to the
 * broker, except $SYS/broker/connection/, where bridges publish their state notifications
 * (Mosquitto's, which its own bridges send to their remote). */
static inline bool vs_sys_reserved(const void *topic, size_t len)
{
	static const char bridges[] = "$SYS/broker/connection/";
	return len >= 4 && memcmp(topic, "$SYS", 4) == 0 &&
	       !(len > sizeof(bridges) - 1 && memcmp(topic, bridges, sizeof(bridges) - 1) == 0);
}

static inline void vs_broker_sessions_changed(struct vs_broker *b)
{
	atomic_store_explicit(&b->n_sessions, b->sessions.count, memory_order_relaxed);
}

/* Sums every worker's counters into out (racy but monotonic reads). */
void vs_broker_stats(struct vs_broker *b, struct vs_stats *out);

/* Adds to a counter of the calling worker's stats. Only the owning worker writes its counters,
 * so a relaxed load and store suffice (readers on other threads load atomically): no locked
 * read-modify-write, of which a QoS 1 message used to cost seven. */
static inline void vs_stat_add(atomic_uint_fast64_t *x, uint64_t n)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* The same for a gauge: n may be negative. */
static inline void vs_stat_gauge(atomic_int_fast64_t *x, int64_t n)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

#endif
