/*
 * The broker's side of a cluster over NATS (docs/cluster.md): its connection, the NATS
 * subscriptions its local filters need (counted, so that two filters with one subject cost one
 * subscription), what it sends (every message routed here that did not come from another
 * node), and what it receives (routed on a worker thread as if published here).
 *
 * The NATS client (Debian's libnats) runs its own threads: its callbacks hand messages to a
 * worker through the worker's mailbox, never touching the broker's state themselves.
 */
#ifndef VS_BROKER_CLUSTER_H
#define VS_BROKER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_broker;
struct vs_msg;

/* Connects when cluster_url is set (b->cluster stays NULL otherwise). A NATS server that is not
 * there yet is retried in the background. Returns 0 or -1 with err filled. */
int vs_cluster_start(struct vs_broker *b, char *err, size_t errlen);
/* Closes the connection; no callback runs after it returns. */
void vs_cluster_stop(struct vs_broker *b);

/* Sends m to the other nodes (unless it came from one, or is node-local: $SYS). On worker w's
 * thread (its buffer holds the frame). A QoS 1/2 message goes through JetStream when another
 * node or a shared group wants it, with cluster_durable_all, or when mine (a persistent session
 * of this node takes it); returns then the copy's number among this node's publishes
 * (vs_cjs_publish), else 0. *loop (left as it is otherwise) is set when
 * mine and its copy will come back here: then this node's persistent sessions get it when it
 * comes back from the stream (msg->loop), as another node's would: a node that dies after the
 * PUBACK leaves it in the stream, where the session, rebuilt elsewhere, finds it. */
struct vs_worker;
uint64_t vs_cluster_forward(struct vs_worker *w, const struct vs_msg *m, bool mine, bool *loop);
/* Offers m, a QoS 2 message published before as this node's number again (vs_cjs_unsure), to
 * JetStream again, under that number's message id: JetStream keeps one copy, whichever it took.
 * The other nodes get it from the stream when this is the copy it keeps, and this node's
 * persistent sessions too; not its other sessions, which had it. Returns 0, or -1 (no
 * memory). */
int vs_cluster_republish(struct vs_worker *w, const struct vs_msg *m, uint64_t again);

/* A local subscription to filter appeared (delta 1) or went (-1), or another subscription to
 * it came (0). Returns the ticket a SUBACK granting QoS 1/2 waits for (vs_cluster_barrier_*):
 * that of the write that tells the other nodes of its subjects, while it is not confirmed;
 * 0 otherwise (and for shared subscriptions). */
uint64_t vs_cluster_interest(struct vs_broker *b, const char *filter, size_t len, int delta);

/* The barrier of cluster_interest.h, for replies that must wait until the other nodes know
 * this node's new subjects (subscribe.c): the ticket to wait for (0: none, or no cluster),
 * whether a ticket is confirmed, and waiting for one (false: it already is; true: worker
 * `worker` gets a VS_MAIL_HELD once it is). */
uint64_t vs_cluster_barrier_ticket(struct vs_broker *b);
/* What a SUBACK granting QoS 1/2 to a member of shared group share ("$share/G/F", len bytes)
 * waits for: 0, a ticket, or VS_HELD_GROUP (worker.h) until the group's JetStream consumers
 * are bound (cluster_share.h vs_cluster_share_pending). 0 without NATS. */
uint64_t vs_cluster_share_wait(struct vs_broker *b, const char *share, size_t len);
/* ticket, or 0 when there is nothing to wait for: no cluster, no NATS, or confirmed. */
uint64_t vs_cluster_barrier_due(struct vs_broker *b, uint64_t ticket);
bool vs_cluster_barrier_confirmed(struct vs_broker *b, uint64_t ticket);
bool vs_cluster_barrier_await(struct vs_broker *b, int worker, uint64_t ticket);

/* Whether the cluster chooses the node of each shared-group delivery (cluster_share.h): while
 * connected to NATS. The router then leaves shared groups out of its own deliveries. */
bool vs_cluster_shares_remote(struct vs_broker *b);

/* The cluster's figures, for $SYS and /metrics (docs/cluster.md). */
struct vs_cluster_stats {
	bool connected;		   /* to NATS, now */
	int64_t rtt_us;		   /* NATS round-trip time, last measured (every 2 s); -1 unknown */
	uint64_t sent;		   /* messages sent to the other nodes (share copies included) */
	uint64_t received;	   /* messages received from them (duplicates not counted) */
	uint32_t nodes;		   /* nodes heard from in the last 10 s, this one included */
	bool retained_bucket;	   /* the bucket of retained messages is bound */
	uint64_t retained_applied; /* changes of that bucket stored here */
	size_t shared_groups;	   /* local shared groups subscribed in NATS */
	uint64_t sessions_taken;   /* sessions that came here from another node */
	uint64_t sessions_given;   /* sessions this node handed over to another */
	uint64_t sessions_rebuilt; /* sessions of a node that did not answer, rebuilt here */
};
/* Fills st (all zero, rtt_us -1, without a cluster). */
void vs_cluster_stats(struct vs_broker *b, struct vs_cluster_stats *st);

#endif
