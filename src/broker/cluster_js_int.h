/*
 * The cluster's JetStream part, inside (cluster_js.h is its face): the state shared by its
 * files. cluster_js.c: the stream, this node's consumer, the JetStream thread, the group
 * commit of QoS 1/2 and the messages of other nodes; cluster_wills.c: leases and the wills of
 * dead nodes; cluster_floor.c: how far this node has taken the stream; cluster_qos2.c: the
 * PUBREC journal and the QoS 2 resends JetStream may not have taken.
 */
#ifndef VS_BROKER_CLUSTER_JS_INT_H
#define VS_BROKER_CLUSTER_JS_INT_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/map.h"
#include "broker/cluster_js.h"
#include "cluster/cluster.h"
#include "cluster/gaps.h"

#define STREAM	       VS_CJS_STREAM
#define QOS_PREFIX     "vs.q."
#define QOS_SUBJECTS   VS_CJS_SUBJECTS
#define DELIVER_PREFIX "vs.d."
#define NODES_BUCKET   VS_CJS_NODES_BUCKET
#define WILLS_BUCKET   "vs_wills"
#define REAP_PREFIX    "reap."
#define SUBJECT_MAX    1100
#define KEY_MAX	       1024
#define TOKEN_MAX      (3 * VS_CLUSTER_NODE_MAX + 1)
#define HEAD_MAX       (2 + VS_CLUSTER_NODE_MAX + 8)

enum {
	PUB_MAX_PENDING = 4096, /* asynchronous publishes in flight per worker */
	PUB_WAIT_MS = 5000,	/* JetStream's acknowledgement of one publish */
	MAX_ACK_PENDING = 8192, /* messages handed to this node and not yet acknowledged */
	OPS_MAX = 100000,	/* will writes waiting for JetStream */
	WARN_EVERY_MS = 10000,
	RETRY_MS = 500,	     /* a will write that failed for a moment */
	UNSURE_MAX = 100000, /* QoS 2 messages remembered for a resend (vs_cjs_unsure) */
};

/* One per worker: a JetStream context of its own for asynchronous publishes, so that the end of
 * its turn waits for its own messages only; and the messages of other nodes it has routed. */
struct wjs {
	jsCtx *js;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t sent;	 /* publishes accepted by the library (worker, under lock) */
	uint64_t done;	 /* of which acknowledged or failed (ack handler, under lock) */
	uint64_t failed; /* of which failed (ack handler, under lock) */
	uint64_t failed_seen;
	bool dirty;	 /* published this turn (worker only) */
	bool failed_now; /* a publish of this turn was refused at once (worker only) */
	natsMsg **acks;	 /* routed this turn, to acknowledge at the commit (worker only) */
	uint32_t n_acks, cap_acks;
	/* The stream sequences of the messages handed to this worker and not yet acknowledged,
	 * in the order they were handed (its mailbox's, then its acks'): vs_cjs_floor(). */
	pthread_mutex_t tlock;
	uint64_t *tq;
	uint32_t tq_head, tq_n, tq_cap;
	int64_t warned_ms; /* worker only */
	/* The PUBRECs of this turn's client being read, for messages of the stream
	 * (vs_cjs_received): its journal subject and their sequences (8 bytes each, big-endian),
	 * published as one message when another client's come, or at the commit (worker only). */
	char *rec_subj;
	uint8_t *recs;
	size_t n_recs, cap_recs;
	uint64_t tried; /* the number of the last publish, made or failed (vs_cjs_tried) */
	/* This turn's QoS 2 messages from clients (vs_cjs_q2_published; worker only). */
	struct q2 *q2;
	uint32_t n_q2, cap_q2;
};

struct q2 {
	struct vs_session *s; /* a reference */
	uint64_t stamp;
	uint16_t pid;
};

/* A write to vs_wills, done on the JetStream thread in the order asked. */
struct op {
	struct op *next;
	char *key;
	uint8_t *val; /* a frame; NULL: delete */
	size_t len;
};

struct vs_cjs {
	struct vs_cluster *cl;
	struct vs_broker *b;
	natsConnection *nc;
	jsCtx *js; /* the node's shared context: API, buckets, the thread's publishes */
	const char *node;
	char node_tok[TOKEN_MAX];
	char consumer[TOKEN_MAX + 4];
	char deliver[TOKEN_MAX + 8];
	int64_t lease_ms;
	atomic_bool ready;   /* stream, consumer and buckets there */
	atomic_bool journal; /* the stream VS_RECS is there (vs_cjs_received) */
	natsSubscription *sub;
	kvStore *nodes, *wills;
	/* Node tokens whose wills this node looks after should their lease go (reap(); the
	 * JetStream thread's): those with a lease in vs_nodes, and those with wills in vs_wills
	 * when this node started. Dropped once a dead node has no will left. */
	struct vs_map known;
	bool listed; /* vs_wills listed whole once (reap()) */
	/* The last revision of vs_wills written before the node being reaped was seen dead: a
	 * will written after it is of that node's next life, not published (reap()). */
	uint64_t reap_upto;

	pthread_mutex_t pub_lock; /* sequence numbers in the order of publication */
	uint64_t seq;

	struct vs_map seen; /* origin node -> last sequence routed (delivery thread only) */
	struct vs_cluster_gaps lost; /* deliveries that never came (delivery thread only) */
	/* How far this node has taken the stream (vs_cjs_floor): the highest stream sequence
	 * received; those given back (negative ack, or dropped) until they come again; and
	 * whether that bookkeeping failed (no memory: the floor then stays where it started). */
	atomic_uint_fast64_t recv_max;
	uint64_t start_floor;
	atomic_uint_fast64_t gap_low;	/* the lowest lost sequence still to come again (above
					 * start_floor), 0: none (delivery thread writes) */
	atomic_uint_fast64_t ack_floor; /* the consumer's, as JetStream said last (keep_lease) */
	/* This node's own messages received back: the highest number (vs_cjs_publish) and the
	 * stream sequence it came with (delivery thread writes; vs_cjs_own_back) */
	atomic_uint_fast64_t own_stamp, own_sseq;
	pthread_mutex_t nlock;
	uint64_t *naked;
	uint32_t n_naked, cap_naked;
	atomic_bool untracked;
	atomic_bool forget; /* a worker gave messages back: seen no longer says what was routed */
	/* QoS 2 messages of clients that JetStream may not have taken (their commit failed):
	 * client id and packet id (unsure_key) -> struct unsure. */
	pthread_mutex_t ulock;
	struct vs_map unsure;
	atomic_uint n_unsure;
	int64_t unsure_warned_ms; /* under ulock */

	struct wjs *w;
	int n_w;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cond;
	bool stop;
	struct op *head, **tail;
	uint32_t n_ops;
	bool ops_warned;
	int64_t warned_ms;  /* JetStream thread only */
	int64_t next_lease; /* when to renew the lease next (JetStream thread only) */
	int64_t next_reap;  /* when to look for dead nodes' wills next (JetStream thread only) */
	int64_t retry_ms;   /* a will write failed: when to try again (JetStream thread only) */
};

/* Logs a failed JetStream request, at most every WARN_EVERY_MS (JetStream thread). */
void vs_cjs_warn(struct vs_cjs *j, const char *what, natsStatus s);
/* Numbers the frame in buf and publishes it with the shared context, synchronously (the
 * JetStream thread's wills). */
natsStatus vs_cjs_publish_frame(struct vs_cjs *j, const char *subject, uint8_t *buf, size_t head,
				size_t len, const char *msg_id);

/* cluster_wills.c (JetStream thread) */
natsStatus vs_cjs_renew_lease(struct vs_cjs *j);
void vs_cjs_keep_lease(struct vs_cjs *j);
void vs_cjs_reap(struct vs_cjs *j, bool self);
void vs_cjs_run_ops(struct vs_cjs *j, int64_t until);

/* cluster_qos2.c (worker p's thread, at its commit) */
void vs_cjs_flush_recs(struct wjs *p, struct vs_cjs *j);
void vs_cjs_settle_q2(struct vs_cjs *j, struct wjs *p, bool failed, int64_t now_ms);
/* Frees what is remembered for resends (vs_cjs_free). */
void vs_cjs_unsure_fini(struct vs_cjs *j);

/* cluster_floor.c */
void vs_cjs_settle(struct vs_cjs *j, struct wjs *p, uint32_t n, bool back);
void vs_cjs_settle_at(struct vs_cjs *j, struct wjs *p, uint32_t at);
void vs_cjs_update_gap_low(struct vs_cjs *j);
bool vs_cjs_was_lost(struct vs_cjs *j, natsMsg *nm, uint64_t *seq, bool *again);
void vs_cjs_note_received(struct vs_cjs *j, uint64_t seq);
void vs_cjs_give_back(struct vs_cjs *j, uint64_t seq);
void vs_cjs_came_back(struct vs_cjs *j, uint64_t seq);

#endif
