/*
 * What the cluster's own files (cluster.c, cluster_retain.c, cluster_share.c, ...) share about
 * the NATS connection; the rest of the broker sees only cluster.h. Every pointer returned stays
 * valid until vs_cluster_stop().
 */
#ifndef VS_BROKER_CLUSTER_NATS_H
#define VS_BROKER_CLUSTER_NATS_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_broker;

/* The connection (core NATS: frames, shared-group queues' publishes). */
natsConnection *vs_cluster_nc(struct vs_broker *b);
/* The connection's one JetStream context (its asynchronous publish errors are dispatched by
 * subject to the file that published). */
jsCtx *vs_cluster_js(struct vs_broker *b);
/* Binds the key-value bucket name (history 1, file storage, cluster_replicas, entries aged out
 * after ttl_ms, 0: never), creating it when no node has; described as what. Blocks on
 * JetStream's API (2 s at most): for the cluster's own threads, never a worker. */
natsStatus vs_cluster_bucket(struct vs_broker *b, kvStore **kv, const char *name, const char *what,
			     int64_t ttl_ms);
/* This node's id (cluster_node_id, or the host name). */
const char *vs_cluster_node(struct vs_broker *b);
struct vs_cluster_retain;
/* The retained-message side (cluster_retain.h), NULL until started. */
struct vs_cluster_retain *vs_cluster_retain_state(struct vs_broker *b);
/* Other nodes' subjects (cluster_interest.h), NULL until started. */
struct vs_cluster_interest;
struct vs_cluster_interest *vs_cluster_interest_state(struct vs_broker *b);
/* Sessions between nodes (cluster_session.h), NULL until started. */
struct vs_cluster_sessions;
struct vs_cluster_sessions *vs_cluster_sessions_of(struct vs_broker *b);
/* The JetStream part (cluster_js.h). */
struct vs_cluster;
struct vs_cjs;
struct vs_cjs *vs_cluster_cjs(struct vs_cluster *cl);
/* Routes the message of frame f on a worker (one per origin node: in the order it came) as a
 * message from another node (loop: this node's own, for its persistent sessions only). ack, when
 * not NULL, is the JetStream message (natsMsg) to acknowledge once the worker has routed and stored
 * it (sseq: its stream sequence, 0 when unknown): the worker owns it from here on success; again:
 * JetStream sent it before (msg.h). Returns 0, or -ENOMEM (ack still the caller's). */
struct vs_cluster_frame;
int vs_cluster_deliver(struct vs_cluster *cl, const struct vs_cluster_frame *f, void *ack,
		       uint64_t sseq, bool loop, bool again);
/* Whether a JetStream request that failed with s may succeed when tried again: no answer yet
 * (a stream or bucket with no leader for a moment: just made, or its server died) or no
 * connection for the moment. Not so for a refusal (too big, wrong key). */
bool vs_cluster_transient(natsStatus s);
/* The message the key-value API publishes to set key of bucket to value (NUL-terminated), or,
 * with value NULL, to delete it (a KV-Operation: DEL marker). NULL when out of memory or the
 * subject is too long. The caller destroys it. */
natsMsg *vs_cluster_kv_msg(const char *bucket, const char *key, const char *value);
/* Whether the connection to NATS is up now. */
bool vs_cluster_connected(struct vs_broker *b);
/* The ids of the other nodes heard from within the last within_ms, NUL-terminated one after
 * the other in one allocation (*names, the caller frees it). Returns how many (0: *names is
 * NULL). */
size_t vs_cluster_peers(struct vs_broker *b, int64_t within_ms, char **names);
/* Node is gone (nothing listens on its subjects): no longer counted among those heard from,
 * until its next heartbeat. */
void vs_cluster_peer_absent(struct vs_broker *b, const char *node);
/* Counts a message sent to (or received from) the other nodes, for $SYS and /metrics. */
void vs_cluster_count(struct vs_broker *b, uint64_t sent, uint64_t received);

#endif
