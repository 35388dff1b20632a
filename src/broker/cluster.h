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

#include <nats/nats.h>
#include <stddef.h>

struct vs_broker;
struct vs_msg;

/* Connects when cluster_url is set (b->cluster stays NULL otherwise). A NATS server that is not
 * there yet is retried in the background. Returns 0 or -1 with err filled. */
int vs_cluster_start(struct vs_broker *b, char *err, size_t errlen);
/* Closes the connection; no callback runs after it returns. */
void vs_cluster_stop(struct vs_broker *b);

/* Sends m to the other nodes (unless it came from one, or is node-local: $SYS). On worker w's
 * thread (its buffer holds the frame). */
struct vs_worker;
void vs_cluster_forward(struct vs_worker *w, const struct vs_msg *m);

/* A local subscription to filter appeared (delta 1) or went (-1). */
void vs_cluster_interest(struct vs_broker *b, const char *filter, size_t len, int delta);

/* For the other cluster files (cluster_js.c): the connection, the node's one JetStream context
 * (shared: make no second one for the API or buckets), this node's id, the JetStream part. */
struct vs_cluster;
struct vs_cjs;
natsConnection *vs_cluster_nc(struct vs_cluster *cl);
jsCtx *vs_cluster_jsctx(struct vs_cluster *cl);
const char *vs_cluster_node(const struct vs_cluster *cl);
struct vs_cjs *vs_cluster_cjs(struct vs_cluster *cl);

/* Routes the message of frame f on a worker (one per origin node: in the order it came) as a
 * message from another node. ack, when not NULL, is the JetStream message (natsMsg) to
 * acknowledge once the worker has routed and stored it: the worker owns it from here on
 * success. Returns 0, or -ENOMEM (ack still the caller's). */
struct vs_cluster_frame;
int vs_cluster_deliver(struct vs_cluster *cl, const struct vs_cluster_frame *f, void *ack);

#endif
