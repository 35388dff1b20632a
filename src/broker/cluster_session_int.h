/*
 * Internal to the cluster's session code: the session threads and their jobs
 * (cluster_session.c), reading the stream for a session and taking each message once
 * (cluster_replay.c), and the owner's side of a hand-over (cluster_handover.c). The public
 * interface is cluster_session.h.
 */
#ifndef VS_BROKER_CLUSTER_SESSION_INT_H
#define VS_BROKER_CLUSTER_SESSION_INT_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/map.h"
#include "broker/cluster_session.h"
#include "cluster/cluster.h"

struct vs_broker;
struct vs_session;

#define TOKEN_MAX      (3 * VS_CLUSTER_NODE_MAX + 1)
#define SUBJECT	       "vs.h."
#define WAIT_MS	       5000	    /* for each chunk of an answer */
#define ANSWER_MS      60000	    /* for a whole answer */
#define ANSWER_MAX     (1ull << 30) /* bytes of an answer */
#define REPLAY_MAX     100000	    /* messages a rebuild reads at most when queues have no limit */
#define CHUNK_HEAD     17 /* kind, chunk number, chunk count, routed (the giver; big-endian) */
#define HOPS_MAX       4 /* a handover follows a connection from worker to worker at most so often */
#define FLOOR_EVERY_MS 1000  /* this node's floor for its connected sessions (write_floor) */
#define REPLAY_MS      10000 /* reading the stream for a rebuilt session takes at most this long */
#define RETRY_READ_MS  100   /* between tries of a read of the stream that got nothing */
#define CLOSE_MS       1000  /* the owner closing the client's connection there ('C') */
#define SETTLE_MS      2500  /* the other nodes learning a placed session's subjects */
/* A request: kind, the length of the asking node's id, that id, a deadline and a stream
 * sequence (8 bytes each), the client id. */
#define REQ_HEAD       18
#define GIVE_WAIT_MS   1000 /* the owner waiting for its own routing before a hand-over */
#define GIVE_POLL_MS   5
#define ROUTED_UNKNOWN UINT64_MAX /* in an answer: the owner's JetStream is not ready */
#define WHOLE_MAX      1000  /* messages an offline session holds at most to have them in its key */
#define CHECK_WAIT_MS  30000 /* the start-up check waits at most this long for JetStream */

/* What the session thread does for one client id. */
enum job_kind {
	JOB_CONNECT, /* a CONNECT waits: take the id, fetch its session */
	JOB_NOTE,    /* write the session's subscriptions (and where the stream stood when it
		      * went offline) into its key, while this node owns it */
	JOB_CHECK,   /* at start-up: a session restored here that another node owns ends here */
	JOB_GIVE,    /* another node asks for a session: wait until this node has routed the
		      * stream up to where it says, then hand the session over (the giver) */
};

struct job {
	struct job *next;
	uint8_t kind; /* enum job_kind */
	bool clean;   /* JOB_CONNECT: Clean Start */
	bool keep;    /* JOB_NOTE: a CONNECT for the id came after it: the session its
		       * connection is about to have is not to lose its key to this note (a
		       * connection gone before its answer notes the id again, unkept) */
	int worker;   /* JOB_CONNECT: the connection's */
	uint32_t slot;
	uint64_t conn_id;
	uint64_t floor;	  /* JOB_NOTE: vs_cjs_floor() when it went offline; 0 while connected.
			   * JOB_GIVE: the stream sequence to have routed before the hand-over */
	void *req;	  /* JOB_GIVE: the request (natsMsg) */
	int64_t until_ms; /* JOB_GIVE: how long it waits at most (monotonic) */
	size_t idlen;
	char id[]; /* NUL-terminated */
};

/* One session thread and its queues. A client id's jobs all go to one shard (by its hash),
 * in order; a slow owner holds up one shard's CONNECTs, not every one's. */
struct shard {
	struct vs_cluster_sessions *cs;
	int idx;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* the queues: CONNECTs first, they wait */
	pthread_cond_t cond;
	struct job *head, **tail;
	struct job *notes, **notes_tail;
	uint32_t n_jobs, n_notes;
	struct vs_map queued_notes; /* client id -> its JOB_NOTE waiting in notes */
};

enum { SHARDS = 4 };

/*
 * The part of the stream read for rebuilt sessions, kept a while: when a node dies its clients
 * come back together, each to be rebuilt from about the same sequence, and one read of the
 * stream serves them all (reading it once per session made a reconnect storm last minutes).
 * Decoded QoS 1/2 messages in stream order, of sequences lo..hi; at most REPLAY_MAX messages
 * and WINDOW_BYTES of payload; dropped WINDOW_KEEP_MS after its last use.
 */
struct wmsg {
	uint64_t seq;
	struct vs_msg *msg; /* one reference */
	char *topic;	    /* msg's, NUL-terminated (vs_topic_match) */
};

struct window {
	pthread_mutex_t lock; /* held while reading and matching: a second rebuild waits for the
			       * first's read and then uses it */
	uint64_t lo, hi;      /* hi < lo: empty */
	struct wmsg *v;
	uint32_t n, cap;
	size_t bytes;
	int64_t used_ms;
};

struct vs_cluster_sessions {
	struct vs_broker *b;
	char tok[TOKEN_MAX]; /* this node's id as a token */
	kvStore *kv;	     /* set by shard 0 before ready */
	kvStore *nodes;	     /* leases (cluster_js.h), bound with kv, or NULL */
	atomic_bool ready;   /* the buckets are bound: CONNECTs ask */
	atomic_bool tried;   /* shard 0's first bind has ended (bound or not): until then a
			      * CONNECT waits for it rather than decide alone */
	int64_t bind_ms;     /* shard 0's next bind attempt (its thread only) */
	natsSubscription *sub;
	atomic_bool stop;
	atomic_uint_fast64_t taken, given, rebuilt; /* for $SYS and /metrics */
	int64_t floor_next_ms;			    /* write_floor (shard 0's thread) */
	uint64_t floor_written;			    /* what it wrote last */
	int64_t check_ms; /* check_restored() is due (shard 0's thread; 0: done) */
	pthread_mutex_t slow_lock;
	struct vs_map slow;   /* node id -> until when (ms, as a pointer) it is not asked again */
	struct window window; /* vs_cs_replay() */
	/* Requests for sessions waiting until this node has routed the stream far enough, on a
	 * thread of their own (a session thread may itself wait for the asking node). */
	pthread_t giver;
	bool giver_started;
	pthread_mutex_t give_lock;
	pthread_cond_t give_cond;
	struct job *gives;
	/* Sessions handed over to this node that skip the stream's messages up to cut, until this
	 * node has routed the stream that far itself (vs_cluster_session_skips). */
	pthread_mutex_t skip_lock;
	struct skip {
		struct vs_session *s; /* one reference */
		uint64_t cut;
		struct vs_map also; /* more stream sequences it has: taken from a copy of it that
				     * was in the trie with it (merge()) */
		uint64_t also_max;
	} * skips;
	uint32_t n_skips, cap_skips;
	struct shard shards[SHARDS];
};

enum { JOBS_MAX = 100000 };
#define WINDOW_BYTES   (64u << 20)
#define WINDOW_KEEP_MS 30000

static inline void vs_cs_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t vs_cs_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- cluster_session.c: the session threads ---- */
/* The worker that has client id's connection, or the one its id hashes to. */
int vs_cs_worker_of(struct vs_broker *b, const char *id, size_t idlen);
struct job *vs_cs_new_job(uint8_t kind, const char *id, size_t idlen);
/* Waits on c (m held) for at most ms milliseconds. */
void vs_cs_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, long ms);

/* ---- cluster_replay.c: the stream read for a session, each message taken once ---- */
void vs_cs_window_clear(struct window *w);
/* Queues in s the QoS 1/2 messages of the stream from floor that it wants (shared: through
 * the window rebuilt sessions share). Returns how many. */
uint32_t vs_cs_replay(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t floor,
		      bool shared);
/* Two copies of one session meet: what src holds joins dst (dst locked). */
uint32_t vs_cs_merge(struct vs_session *dst, struct vs_session *src, uint64_t upto, uint32_t *same,
		     struct vs_cluster_sessions *cs);
/* s came from a node that had routed the stream up to cut to it (not yet in the trie): it
 * skips those messages, and those it holds beyond cut, should they reach this node late. */
void vs_cs_skip_came(struct vs_cluster_sessions *cs, struct vs_session *s, uint64_t cut);
/* Forgets the skips this node has routed past. */
void vs_cs_prune_skips(struct vs_cluster_sessions *cs);

/* ---- cluster_handover.c: the owner's side ---- */
/* A request on this node's subject vs.h.NODE (NATS's delivery thread). */
void vs_cs_on_request(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg);
/* The thread that hands sessions over once this node has routed the stream far enough. */
void *vs_cs_giver(void *arg);

#endif
