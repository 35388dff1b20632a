/*
 * Retained messages across the cluster (docs/cluster.md), in the JetStream key-value bucket
 * "vs_retained": one key per topic (cluster/kvkey.h), whose value is a cluster frame (origin
 * node, a per-node sequence number, the message as an MQTT 5.0 PUBLISH with its remaining
 * expiry; an empty payload clears the topic). The broker's retained store stays each node's
 * cache, the one SUBSCRIBE reads; this file keeps it equal to the bucket.
 *
 * Writes. A retained message published on this node is stored locally and put in the bucket
 * under one lock, so this node's puts reach the bucket in the order its store took them. The
 * topic is then "pending" (the sequence number of this node's last put) until the watcher sees
 * that put come back.
 *
 * Reads. A thread watches the whole bucket (kvStore_WatchAll: first every key's latest value,
 * which a node that starts or joins late needs, then each change in the bucket's order) and
 * applies it to the store, unless the topic is pending: then a later put of this node follows
 * in the bucket, and the last writer in the bucket wins. This node's own put coming back
 * clears the pending mark and is not stored again; nothing applied from the bucket is written
 * back to it, so there is no loop. A retained message that arrives in a forwarded frame is
 * delivered to current subscribers but not stored from the frame (the bucket brings it).
 *
 * Until the bucket is bound (no JetStream, NATS not reachable yet) retained messages are kept
 * as before: each node stores what it routes.
 */
#ifndef VS_BROKER_CLUSTER_RETAIN_H
#define VS_BROKER_CLUSTER_RETAIN_H

#include <stdbool.h>
#include <stdint.h>

#include <nats/nats.h>

struct vs_broker;
struct vs_msg;
struct vs_cluster_retain;

#define VS_RETAIN_BUCKET "vs_retained"

/* Starts the thread that binds (or creates) the bucket and watches it. NULL on no memory. */
struct vs_cluster_retain *vs_cluster_retain_start(struct vs_broker *b);
/* Stops and joins the thread, and ends the watch (before the connection closes). */
void vs_cluster_retain_stop(struct vs_cluster_retain *r);
/* Frees r once no NATS callback can run any more (after nats_CloseAndWait). */
/* Releases its NATS objects (after vs_cluster_retain_stop; before the library's end). */
void vs_cluster_retain_close(struct vs_cluster_retain *r);
void vs_cluster_retain_free(struct vs_cluster_retain *r);

/*
 * The router's step for a retained message m (retain set, retain_available): stores it in the
 * local store (or clears its topic when the payload is empty) and, when it was published on
 * this node, puts it in the bucket. Returns true if the local store changed (*version as
 * vs_retain_put() gives it, for persistence), false when m came from another node and the
 * bucket will bring it.
 */
bool vs_cluster_retain(struct vs_broker *b, struct vs_msg *m, uint64_t *version);

/* A put of ours that JetStream refused or did not acknowledge (the error handler). */
void vs_cluster_retain_failed(struct vs_broker *b, jsPubAckErr *pae);
/* A retained message this node publishes for another one (the will of a dead node,
 * cluster_wills.c), routed here as a remote message: stored here and put in the bucket as if
 * published here, since its own node cannot any more. */
struct vs_cluster_frame;
void vs_cluster_retain_on_behalf(struct vs_broker *b, const struct vs_cluster_frame *f);

/* Whether the bucket is bound, and how many of its changes this node applied. */
bool vs_cluster_retain_ready(struct vs_cluster_retain *r);
uint64_t vs_cluster_retain_applied(struct vs_cluster_retain *r);

#endif
