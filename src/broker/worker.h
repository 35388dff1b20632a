/*
 * Workers: one thread each, owning an epoll loop, its listening sockets (SO_REUSEPORT), the
 * connections the kernel hands it, and the sessions of those connections while they are
 * connected.
 *
 * Cross-worker traffic goes through each worker's mailbox: a mutex-protected array plus an
 * eventfd. A worker never posts one message at a time: during a loop turn it collects what it
 * has for each other worker in its outbox, and at the end of the turn hands each target its
 * batch with one lock and at most one eventfd write ("one wake-up per target worker per loop
 * turn"). The same holds for output: connections with bytes to send are flushed once at the end
 * of the turn, one write(2) each.
 */
#ifndef VS_BROKER_WORKER_H
#define VS_BROKER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "broker/broker.h"
#include "broker/grace.h"
#include "broker/iobatch.h"
#include "net/loop.h"
#include "persist/store.h"

struct vs_conn;
struct vs_session;
struct vs_msg;
struct vs_sn_socket;
struct vs_linger;

enum vs_mail_type {
	VS_MAIL_DRAIN,	    /* a session on this worker has queued messages */
	VS_MAIL_KICK,	    /* close connection (slot, conn_id) with reason: session taken over */
	VS_MAIL_TAKEOVER,   /* pump then close connection (slot, conn_id); then RESUME the reply */
	VS_MAIL_RESUME,	    /* unpark connection (slot, conn_id): its CONNECT may proceed */
	VS_MAIL_WAKE,	    /* nothing: re-check state (stop) */
	VS_MAIL_AUTH,	    /* the password check of connection (slot, conn_id): reason 1 = good */
	VS_MAIL_PING,	    /* the main thread's watchdog: store conn_id in pong */
	VS_MAIL_DUMP,	    /* SIGUSR2: log this shard's state */
	VS_MAIL_ADMIN_KICK, /* the HTTP API: close connection (slot, conn_id) with reason (5.0:
			     * DISCONNECT 0x98); end_session: its session ends with it */
	VS_MAIL_CLUSTER,    /* route msg, from another node of the cluster (one reference) */
	VS_MAIL_LISTEN,	    /* a reload added listener `slot`: open this shard's sockets */
	VS_MAIL_UNLISTEN,   /* a reload removed listener `slot`: close its sockets and clients */
	VS_MAIL_ROAMED,	    /* the cluster answered for connection (slot, conn_id): session, one
			     * reference, came from another node, or NULL (cluster_session.h) */
	VS_MAIL_HANDOVER,   /* another node wants session `share` (the client id, owned): reason
			     * 'R' hand it over, replying to ack (the request's natsMsg); 'D' end it
			     * (a clean start there); 'X' end it silently (another node has it);
			     * reply_to counts the workers it went through */
	VS_MAIL_HELD,	    /* replies held for the cluster's barrier may be due
			     * (cluster_interest.h, subscribe.c) */
	VS_MAIL_RESUME_PUBLISHERS, /* the queue of session conn_id (as a key) drained: read the
				    * publishers slowed for it again */
};

struct vs_mail {
	uint8_t type;
	uint8_t reason;
	bool end_session; /* VS_MAIL_ADMIN_KICK, VS_MAIL_TAKEOVER: its session ends with it */
	uint32_t slot;
	uint64_t conn_id;
	struct vs_session *session; /* one reference, for VS_MAIL_DRAIN and VS_MAIL_ROAMED */
	struct vs_session *other;   /* VS_MAIL_ROAMED: a copy of that session to end (one ref.) */
	struct vs_msg *msg;	    /* one reference, for VS_MAIL_CLUSTER */
	char *share; /* VS_MAIL_CLUSTER: NULL, or the one "$share/G/F" msg is for (owned) */
	void *
	    ack; /* VS_MAIL_CLUSTER from JetStream: its natsMsg, acked once stored (cluster_js.h) */
	int reply_to; /* VS_MAIL_TAKEOVER: the worker of the new connection (-1: none to resume);
		       * VS_MAIL_ROAMED: reply_slot / reply_conn_id count the session's queued and
		       * inflight messages that came with it */
	uint32_t reply_slot;
	uint64_t reply_conn_id;
	uint64_t seq;  /* persistence_fsync batch: the store write what this mail carries may
			* depend on (the sender's turn); output it causes waits for its sync */
	uint64_t upto; /* VS_MAIL_ROAMED: other's messages of the stream up to this sequence are
			* in session already (cluster_replay.c, vs_cs_merge()) */
};

#define VS_HELD_MAX_MS 5000
/* What connection (slot, conn_id) waits for the cluster's barrier (cluster_interest.h): its
 * held replies, all of them in one entry (they go out together, in order), or its CONNECT. */
struct vs_held_reply {
	uint64_t ticket;  /* the barrier's, or VS_HELD_GROUP */
	uint64_t after;	  /* with VS_HELD_GROUP: the ticket it waits for too, once bound */
	int64_t since_ms; /* held since: after VS_HELD_MAX_MS it goes out anyway */
	uint64_t conn_id;
	uint32_t slot;
	bool connect;	     /* a CONNECT (vs_hold_connect), not replies */
	struct vs_bytes out; /* the replies' bytes */
	char *share; /* ticket VS_HELD_GROUP: the shared group ("$share/G/F") whose JetStream
		      * consumers it waits for (cluster_share.h), owned */
};
#define VS_HELD_GROUP UINT64_MAX

struct vs_mail_vec {
	struct vs_mail *v;
	uint32_t n, cap;
};

struct vs_mailbox {
	pthread_mutex_t lock;
	struct vs_mail_vec items;
	struct vs_io io; /* the eventfd */
};

/* A connection not read for a while, and the queue it waits for (a session, as a key only), or
 * VS_QUEUES when it fed several full ones: only its pause's end resumes it then. */
struct vs_paused {
	struct vs_conn *c;
	const void *key;
};
#define VS_QUEUES ((const void *)1)

struct vs_listen_io {
	struct vs_io io;
	struct vs_listener *listener;
	struct vs_worker *w;
	int64_t paused_until_ms; /* not watched until then (out of descriptors); 0 = watched */
	uint64_t refused;	 /* connections refused since the last log line */
	int64_t next_log_ms;	 /* refusals are logged at most once per LOG_EVERY_MS */
	struct vs_sn_socket *sn; /* an mqttsn listener's UDP socket: its clients (gateway.c) */
};

/* A write of a worker's records, kept until it is synced (persist.c). */
struct vs_bp_flight {
	struct vs_store_buf buf;
	uint64_t seq;
};

/* One match of a PUBLISH against the trie, before merging per session. */
struct vs_match {
	struct vs_session *s;
	uint32_t sub_id;
	uint8_t qos;
	bool rap;
	bool no_local;	  /* through a No Local subscription: delivered when published, never
			   * through JetStream (which does not say who published) */
	bool from_stream; /* on a session's first match: it takes the stream's copy (router.c) */
	const char *share;
};

/* What thread idx owns, apart from the shard of the same index (see threads.c: threads and
 * shards). */
struct vs_thread {
	pthread_t thread;
	struct vs_io ctl_io;	/* thread 0: eventfd in its shard's set, written on a lend */
	bool rescan;		/* thread 0: look for newly lent shards */
	struct vs_worker **run; /* thread 0: the shards it runs, its own first */
	int n_run;
	atomic_int load;	   /* per mille of the last window spent outside epoll_wait */
	struct vs_grace_reader gr; /* a reader of what reloads replace (grace.h) */
	int64_t win_start_ms, win_waited_ns;
	int quiet, hot;			      /* consecutive windows under / over the thresholds */
	int64_t backoff_ms, no_lend_until_ms; /* after a lend that did not last */
};

/* One shard: an epoll loop, its connections and their sessions while they are connected. */
/* A read made for a connection before its event is handled (conn.c vs_conn_prefetch), at most
 * VS_PREFETCH_SLOTS per wait, of up to 64 KiB each. */
enum { VS_PREFETCH_SLOTS = 64 };
_Static_assert(VS_PREFETCH_SLOTS <= 255, "vs_conn.pre_slot holds a slot + 1 in a uint8_t");
struct vs_prefetch {
	struct vs_conn *c; /* NULL once taken */
	ssize_t n;	   /* the read's result */
	struct vs_bytes buf;
};

/* One write of the end of a turn (worker.c flush_all). */
struct vs_flushed {
	struct vs_conn *c; /* NULL: nothing was written (or made to wait) for this entry */
	size_t ready;	   /* bytes offered */
	ssize_t n;	   /* the write's result */
	bool batched;	   /* in the turn's batch of sends */
};

struct vs_worker {
	struct vs_broker *b;
	int idx;
	struct vs_loop loop;
	int64_t now_ms; /* monotonic time at the start of this loop turn */

	struct vs_listen_io *listens;
	int n_listens;
	int spare_fd;		  /* held open so that, out of descriptors, a pending connection
				   * can still be accepted and closed (as nginx and libuv do) */
	int64_t listen_resume_ms; /* earliest paused_until_ms of a listener, or 0 */

	struct vs_conn **conns; /* by slot; NULL = free */
	uint32_t n_slots, cap_slots;
	uint32_t *free_slots;
	uint32_t n_free;
	uint64_t next_conn_id;
	uint32_t n_conns;

	struct vs_mailbox mbox;
	struct vs_mail_vec mail_spare; /* swapped with mbox.items on each take: no allocation */
	uint8_t *cluster_buf;	       /* a message's frame for NATS (cluster.c), kept */
	size_t cluster_cap;
	struct vs_mail_vec *outbox; /* one per worker: mails to post at the end of the turn */

	struct vs_session **dirty; /* local sessions to drain at the end of the turn (refs held) */
	uint32_t n_dirty, cap_dirty;
	struct vs_conn **flush; /* connections with output to write at the end of the turn */
	uint32_t n_flush, cap_flush;
	struct vs_flushed *flushed; /* flush_all's results, one per entry of flush */
	uint32_t cap_flushed;

	struct vs_conn **reread; /* connections to read again next turn (see conn.c) */
	uint32_t n_reread, cap_reread;
	atomic_bool sleeping; /* in (or about to enter) a blocking epoll_wait: posters wake it */

	struct vs_paused *throttled; /* connections not read for a while (backpressure) */
	uint32_t n_throttled, cap_throttled;
	atomic_bool any_paused; /* n_throttled > 0, for other shards' vs_worker_resume_publishers */
	const void *congested_on; /* set by vs_deliver: the publisher should be throttled for this
				   * session's queue, or VS_QUEUES (several); NULL: not */
	bool commit_failed;	  /* a commit of this turn failed (conn.c, a connection closing) */
	struct vs_conn *cur;	  /* the connection whose packet is being handled, or NULL */

	struct vs_conn **graveyard; /* closed this turn, freed at its end */
	uint32_t n_graveyard, cap_graveyard;

	struct vs_held_reply *replies; /* SUBACKs waiting for the cluster's barrier (subscribe.c) */
	uint32_t n_replies, cap_replies;

	struct vs_linger **linger; /* closed sockets still drained (see conn.c) */
	uint32_t n_linger, cap_linger;

	struct vs_match *matches; /* scratch for routing */
	uint32_t n_matches, cap_matches;
	uint32_t *sub_ids; /* scratch for merging */
	uint32_t cap_sub_ids;

	struct vs_store_buf pbuf; /* persistence records of this turn */
	/* persistence_fsync batch (persist.c, worker.c: held output): */
	struct vs_bp_flight *flight; /* this worker's writes not yet known synced, oldest first */
	uint32_t n_flight, cap_flight;
	struct vs_store_buf pool[4]; /* buffers of synced writes, for the next turns */
	uint32_t n_pool;
	struct vs_conn **held; /* connections whose output waits for a sync (conn.h vs_hold) */
	uint32_t n_held, cap_held;
	uint64_t hold_min;		 /* the lowest sequence number they wait for (0: none) */
	atomic_uint_fast64_t hold_wait;	 /* hold_min, read by the sync thread's wake-up */
	uint64_t mail_seq;		 /* the highest vs_mail.seq taken this turn */
	uint64_t store_id, store_id_end; /* message ids for the store, a block taken at a time */
	struct vs_bytes rbuf;		 /* shared read buffer (see conn.c read_once) */
	struct vs_prefetch *pre;	 /* the reads of the wait being handled (this thread's) */
	uint32_t n_pre;
	bool pre_used;	      /* since the last sweep */
	struct vs_iobatch sb; /* the turn's sends in one system call (ring NULL: none) */
	bool rbuf_busy;

	int64_t next_sweep_ms;
	int64_t next_sys_ms;
	int64_t pre_log_window_ms; /* connections closed before CONNECT: rate-limited log */
	int64_t pre_summary_ms;
	uint32_t pre_logged;
	uint64_t pre_suppressed;
	char pre_last[160]; /* "ADDR: why" of the last one not logged */

	/* Threads and shards (threads.c): this struct is shard idx; `th` belongs to thread idx,
	 * which runs it (and, for thread 0, the shards lent to it). */
	bool lent;    /* run by thread 0 (changed under b->park_lock) */
	bool mail;    /* scratch of the thread running the shard */
	int own_epfd; /* the shard's own epoll set; loop.epfd is thread 0's while the
		       * shard's descriptors are there */
	struct vs_thread th;
	struct vs_stats stats;
	atomic_uint_fast64_t pong; /* the last VS_MAIL_PING's number: this shard runs its turns */
};

int vs_worker_init(struct vs_worker *w, struct vs_broker *b, int idx, char *err, size_t errlen);
void vs_worker_fini(struct vs_worker *w);
/* Gives back (unacknowledged: JetStream sends them again) the JetStream messages waiting in w's
 * mailbox; their natsMsg must go before the NATS library closes (vs_cluster_stop). */
void vs_worker_drop_acks(struct vs_worker *w);
void *vs_worker_main(void *arg);

/* Between worker.c (what a turn does with shard w) and threads.c (which thread runs it, when):
 * how long w may wait for events (0: work is left over); announcing a sleep (true: mail or
 * held output is waiting, do not block); the part of w's turn after its events; and thread 0's
 * consolidation set-up at start-up (0 or -errno, err filled). */
int vs_worker_timeout(struct vs_worker *w);
bool vs_worker_before_sleep(struct vs_worker *w, bool sleeping);
void vs_worker_after_events(struct vs_worker *w, bool mail);
int vs_worker_host_init(struct vs_worker *w, char *err, size_t errlen);

/* This shard's listening sockets (listeners.c): open them for l and watch them (0, or an
 * error that err names); a reload's new or removed listener (VS_MAIL_LISTEN / UNLISTEN:
 * failures logged); watch paused ones again once their pause is over; stop accepting (the
 * first step of a stop). */
int vs_worker_open_listener(struct vs_worker *w, struct vs_listener *l, char *err, size_t errlen);
void vs_worker_add_listener(struct vs_worker *w, struct vs_listener *l);
void vs_worker_remove_listener(struct vs_worker *w, struct vs_listener *l);
void vs_worker_resume_listeners(struct vs_worker *w);
void vs_worker_stop_accepting(struct vs_worker *w);

/* Runs w->sb (iobatch.h); logs when io_uring failed, and w then makes its calls one by one. */
void vs_worker_run_batch(struct vs_worker *w);

/* Queues a mail for worker `to` (sent at the end of this turn). */
int vs_worker_post(struct vs_worker *w, int to, const struct vs_mail *m);
/* Posts directly (outside a worker's turn, e.g. from the main thread): locks and wakes. */
void vs_worker_post_now(struct vs_worker *target, const struct vs_mail *m);
/* The store's sync thread progressed (vs_store_set_notify, ctx the broker): wakes the workers
 * whose held output can go. */
void vs_worker_synced(void *ctx);
/* Session s's queue, which publishers were slowed for (publish.c), is back within its limit:
 * every shard reads the publishers that wait for it again now (this one at once, the others by
 * mail). */
void vs_worker_resume_publishers(struct vs_worker *w, const struct vs_session *s);
/* Schedules a connection for output flushing at the end of the turn. */
void vs_worker_want_flush(struct vs_worker *w, struct vs_conn *c);
/* c's socket may hold more input than its last read took: read it again next turn. */
void vs_worker_want_reread(struct vs_worker *w, struct vs_conn *c);
/* Schedules a session owned by w for draining at the end of the turn (takes a reference). */
void vs_worker_want_drain(struct vs_worker *w, struct vs_session *s);
/* Frees a closed connection at the end of the loop turn. */
void vs_worker_bury(struct vs_worker *w, struct vs_conn *c);
/* The live connection at slot with conn_id, or NULL. */
struct vs_conn *vs_worker_conn(struct vs_worker *w, uint32_t slot, uint64_t conn_id);
/* One loop turn that does not wait (what is ready now, mail, the end of the turn): for
 * driving a worker without its thread (the server fuzzer). */
void vs_worker_poll(struct vs_worker *w);
/* Closes every connection of shard w and finishes the turn (at shutdown). */
void vs_worker_shutdown(struct vs_worker *w);
/* Pumps and closes a connection whose session another connection is taking over; resumes: the
 * new connection resumes the session (the old one's will is then not sent, see conn.c). */
void vs_worker_takeover(struct vs_worker *w, uint32_t slot, uint64_t conn_id, bool resumes);

#endif
