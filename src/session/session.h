/*
 * Sessions: the state MQTT keeps for a client id across connections [MQTT-4.1.0-1].
 *
 * A session owns its subscriptions list (the filters, mirrored in the shared trie), the queue of
 * messages waiting to be sent, the outgoing inflight window (QoS 1/2 sent, not yet completed), the
 * set of incoming QoS 2 packet ids (PUBREC sent, PUBREL not yet received), and a delayed will.
 *
 * Locking: every field is guarded by `lock`, except refs (atomic) and the client id (immutable).
 * Any worker may deliver into a session (it locks, appends, unlocks); the worker that owns the
 * session's connection drains the queue. The lock is per session, so unrelated publishers never
 * contend. No syscall is made under it.
 *
 * Lifetime: reference counted. The registry, a connection and every pending mailbox notification
 * each hold a reference.
 */
#ifndef VS_SESSION_SESSION_H
#define VS_SESSION_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "session/msg.h"

/* One message waiting for, or in, the outgoing window. */
struct vs_qentry {
	struct vs_msg *msg; /* one reference */
	uint8_t qos;	    /* effective QoS for this subscriber */
	bool retain;	    /* retain flag to send */
	uint8_t state;	    /* enum vs_qstate when inflight */
	bool dup;	    /* sent before: next send carries DUP [MQTT-4.4.0-1] */
	bool held; /* holds msg->sseq in msg->held (the cluster's stream floor, vs_session_hold) */
	uint16_t packet_id;
	uint32_t n_sub_ids;
	uint32_t sub_id;   /* when n_sub_ids == 1 */
	uint32_t *sub_ids; /* when n_sub_ids > 1 (owned) */
	const char *share; /* non-NULL when delivered through a shared subscription */
	uint32_t seq;	   /* the session's delivery number (persistence tells deliveries of the
			      same message apart with it) */
};

enum vs_qstate {
	VS_Q_QUEUED = 0,
	VS_Q_WAIT_PUBACK,  /* QoS 1 sent */
	VS_Q_WAIT_PUBREC,  /* QoS 2 sent */
	VS_Q_WAIT_PUBCOMP, /* QoS 2, PUBREL sent */
};

/* A ring of entries: used for the queue and for the inflight window (send order). */
struct vs_ring {
	struct vs_qentry *e;
	uint32_t head, count, cap; /* cap is a power of two or 0 */
};

/* A subscription as the session remembers it (for unsubscribe-on-end and persistence). */
struct vs_session_sub {
	char *filter;
	uint16_t len;
	uint8_t qos;
	uint8_t options; /* 5.0 subscription options byte */
	uint32_t sub_id;
};

/* Subscriptions scanned without an index up to this many. */
#define VS_SESSION_SUBS_SCAN 8

/*
 * A session's subscriptions: a dense array, allocated with the first one, plus an index by
 * filter (open addressing of positions, seeded hash) once there are more than
 * VS_SESSION_SUBS_SCAN. Without it, each SUBSCRIBE scanned every filter the session had:
 * 100,000 filters took 76 s of CPU. Removal moves the last entry into the hole.
 */
struct vs_session_subs {
	uint32_t n, cap;
	uint32_t *idx;	  /* position + 1, 0 = empty; NULL while n <= VS_SESSION_SUBS_SCAN */
	uint32_t idx_cap; /* 0 or a power of two, kept >= 2 * n */
	uint64_t seed;	  /* of the index's hash (base/hash.h) */
	struct vs_session_sub v[];
};

/*
 * Retained messages matched by a SUBSCRIBE, waiting for room in the session's queue: a
 * subscriber to '#' on a broker with 200,000 retained messages gets every one of them, fed into
 * its queue as the queue drains, instead of all at once over the queue's limit (where all but
 * the first few thousand were dropped). An entry is a reference to the stored message, not a
 * copy: 16 bytes. Not persisted: after a restart the subscriber gets what the queue held.
 */
struct vs_feed_entry {
	struct vs_msg *msg; /* one reference */
	uint32_t sub_id;    /* 5.0 Subscription Identifier, 0 = none */
	uint8_t qos;	    /* already capped by the granted QoS */
};

struct vs_feed {
	uint32_t head, n, cap; /* entries e[head..n) wait */
	struct vs_feed_entry e[];
};

/* Delivery numbers wrap: whether a comes before b in serial order (as RFC 1982 compares, on 32
 * bits), true within 2^31 of each other. */
static inline bool vs_seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

struct vs_session {
	/* Laid out without holes: idle connections are mostly this struct (with the client id,
	 * 256 + id bytes: 288 with malloc's header for ids of up to 23 bytes; keep it so). */
	atomic_uint refs;
	uint16_t id_len;
	uint16_t next_id;
	uint32_t next_seq;  /* numbers deliveries (vs_qentry.seq; vs_seq_before) */
	uint32_t conn_slot; /* where conn lives in its worker, for a take-over */
	uint32_t conn_gen;  /* bumped on each attach; stale connections compare it */
	uint32_t expiry;    /* session expiry interval, seconds; UINT32_MAX never */
	uint32_t dropped;   /* messages dropped because the queue was full */
	uint32_t live_will_delay;
	uint32_t offline_since_wall; /* wall-clock seconds when it went offline (to 2106) */
	uint8_t version;	     /* protocol of the last connection */
	bool connected;	    /* a connection is attached (read without the lock by $share) */
	bool notified : 1;  /* a drain notification is pending for the owner */
	bool ended : 1;	    /* removed from the registry; deliveries are dropped */
	bool persisted : 1; /* its SESSION record is in the store: changes are recorded */
	bool acl_stale : 1; /* a reload changed the ACLs: check what waits before sending it */
	bool keyed : 1;	    /* its client id may have a key in the cluster's vs_sessions: the
			     * session's end removes it (cluster_session.h) */
	bool congested : 1; /* publishers were slowed for its queue (router.c, overshoot): its
			     * next drain within the limit resumes them */
	bool stalled;	    /* its connection has not taken output for a while (atomic access:
			     * set by the owner, read by publishers' workers) */
	uint16_t
	    free_ids; /* next_id and the ids after it known not in flight (vs_session_next_id) */
	/* Of in_qos2 below: how many ids, and the array's capacity (at most VS_INQOS2_SCAN) or
	 * VS_INQOS2_BITMAP. */
	uint16_t n_in_qos2, cap_in_qos2;
	/* In a cluster: one of its QoS 2 messages was once kept in the node's table of those
	 * JetStream may not have taken (cluster_qos2.c); only then do its PUBRELs and resends
	 * look there, and take that table's lock. Set once, never cleared. */
	atomic_bool unsure;
	pthread_mutex_t lock;
	char *username;	      /* of the last connection (owned, NULL anonymous), for ACL checks */
	const void *listener; /* the last connection's listener (the broker's, opaque here: its
			       * ACL decides reads), or NULL */
	void *conn;	      /* the attached connection (opaque here) */
	void *owner;	      /* the worker owning conn */
	uint64_t conn_id;
	int64_t offline_since_ms; /* monotonic */

	struct vs_ring queue;	 /* waiting to be sent */
	struct vs_ring inflight; /* sent, awaiting acknowledgement, in send order */
	uint64_t queued_bytes;
	int64_t last_drain_ms; /* last time the owner sent something from the queue */

	/* Incoming QoS 2 packet ids awaiting PUBREL: a small array, or past VS_INQOS2_SCAN a
	 * bitmap of all 65536 ids (8 KiB), so that a client holding thousands of them open costs
	 * O(1) per packet, not a scan (cap_in_qos2 == VS_INQOS2_BITMAP then). */
	union {
		uint16_t *in_qos2;
		uint64_t *in_qos2_bits;
	};

	struct vs_session_subs *subs; /* NULL until the first subscription */

	struct vs_msg *will;	  /* delayed will (5.0 Will Delay Interval), or NULL */
	int64_t will_at_ms;	  /* monotonic time to publish it */
	struct vs_msg *live_will; /* the connected client's will, for snapshots (one reference) */
	struct vs_feed *feed;	  /* retained messages waiting for room in the queue, or NULL */
	void *bridge;		  /* the local side of a bridge (broker/bridge.c): its queue is
				   * drained to the remote broker, not to a connection; or NULL */
	/* NUL-terminated, allocated with the session (one allocation instead of two). A
	 * connection borrows it while attached (broker/connect.c). */
	char client_id[];
};

/* Creates a session with one reference. Returns NULL on allocation failure. */
struct vs_session *vs_session_new(const char *client_id, size_t len);
static inline struct vs_session *vs_session_ref(struct vs_session *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}
/* Drops a reference; the last one frees the session and everything it holds. */
void vs_session_unref(struct vs_session *s);

/* Ring helpers (caller holds s->lock). push returns 0 or -ENOMEM. */
int vs_ring_push(struct vs_ring *r, const struct vs_qentry *e);
struct vs_qentry *vs_ring_at(struct vs_ring *r, uint32_t i);
void vs_ring_pop(struct vs_ring *r, struct vs_qentry *out);
void vs_qentry_fini(struct vs_qentry *e);
/* Removes entry i (order kept). */
void vs_ring_remove(struct vs_ring *r, uint32_t i);
/* Drops every entry. */
void vs_ring_clear(struct vs_ring *r);

/* In a cluster, a connected persistent session's entries hold the stream sequences of their
 * messages that came from JetStream (msg->held): the node's stream floor stays below them, so
 * that a node rebuilding the session after this node's death reads them again. An offline
 * session's key says its own floor instead (cluster_session.h), so its entries let go.
 * vs_qentry_hold: entry e now holds (when its message can); vs_session_hold: every entry of s
 * holds (hold) or lets go (!hold). Caller holds s->lock. */
void vs_qentry_hold(struct vs_qentry *e);
void vs_session_hold(struct vs_session *s, bool hold);

/* Sets e's subscription ids (copies ids). Returns 0 or -ENOMEM. */
int vs_qentry_set_sub_ids(struct vs_qentry *e, const uint32_t *ids, uint32_t n);
static inline const uint32_t *vs_qentry_sub_ids(const struct vs_qentry *e)
{
	return e->n_sub_ids > 1 ? e->sub_ids : &e->sub_id;
}

/* Finds the inflight entry with packet id; returns its index or -1. */
int vs_session_find_inflight(struct vs_session *s, uint16_t packet_id);
/* Allocates a packet id not in the inflight window [MQTT-2.2.1-3]. Returns 0 when all 65,535
 * are in use. */
uint16_t vs_session_next_id(struct vs_session *s);

/* Incoming QoS 2 ids. add returns 1 if added, 0 if already present (or 0, never held), -ENOMEM. */
#define VS_INQOS2_SCAN	 32
#define VS_INQOS2_BITMAP UINT16_MAX
int vs_session_in_qos2_add(struct vs_session *s, uint16_t id);
bool vs_session_in_qos2_has(struct vs_session *s, uint16_t id);
bool vs_session_in_qos2_del(struct vs_session *s, uint16_t id);
/* Iterates the ids: start with *pos = 0; returns false when done. */
bool vs_session_in_qos2_next(const struct vs_session *s, uint32_t *pos, uint16_t *id);

/* Subscriptions list: add (replacing the same filter) returns 1 if new, 0 replaced, -ENOMEM;
 * del returns 1 if removed. Both O(1) on average, whatever the number of filters. */
int vs_session_sub_add(struct vs_session *s, const char *filter, size_t len, uint8_t qos,
		       uint8_t options, uint32_t sub_id);
int vs_session_sub_del(struct vs_session *s, const char *filter, size_t len);
static inline uint32_t vs_session_n_subs(const struct vs_session *s)
{
	return s->subs ? s->subs->n : 0;
}
/* Frees a subscription list (its filters too); NULL is fine. */
void vs_session_subs_free(struct vs_session_subs *subs);

/* The feed (caller holds s->lock). push takes msg's reference (it is dropped on failure);
 * returns 0 or -ENOMEM. A feed emptied by vs_feed_pop() is freed. */
static inline uint32_t vs_feed_len(const struct vs_session *s)
{
	return s->feed ? s->feed->n - s->feed->head : 0;
}
int vs_feed_push(struct vs_session *s, struct vs_msg *msg, uint8_t qos, uint32_t sub_id);
/* Takes the oldest entry (its reference passes to *out); the feed must not be empty. */
void vs_feed_pop(struct vs_session *s, struct vs_feed_entry *out);
/* Drops every entry. */
void vs_feed_clear(struct vs_session *s);

#endif
