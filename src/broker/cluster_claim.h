/*
 * One connection per client id in the whole cluster [MQTT-3.1.4-3]: a node that accepts a
 * CONNECT tells the others ("claims" the id on subject vs.c), and a node that has that client
 * id connected closes its connection, as a take-over on one node does (reason 0x8E, "session
 * taken over"). Sessions themselves stay on the node that held them (docs/cluster.md).
 *
 * Two connections with one id on two nodes at once: the later CONNACK (wall-clock
 * milliseconds, then the greater node id) keeps its connection on both sides.
 */
#ifndef VS_BROKER_CLUSTER_CLAIM_H
#define VS_BROKER_CLUSTER_CLAIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_CLAIM_SUBJECT "vs.c"

struct vs_broker;
struct vs_conn;

/* On the connection's worker, after its CONNACK: tells the other nodes (without a cluster,
 * nothing). */
void vs_cluster_claim(struct vs_broker *b, const struct vs_conn *c, bool clean);

/* Called by cluster.c for each claim received from another node (a NATS thread). */
void vs_cluster_claim_received(struct vs_broker *b, const char *me, const char *data, size_t len);

#endif
