/*
 * Shared subscriptions across the cluster (docs/cluster.md): each message to one member of a
 * $share/GROUP/FILTER group, whichever nodes its members are on.
 *
 * A node with local members of GROUP on FILTER subscribes, on its NATS connection, to FILTER's
 * subjects under "vs.s" (instead of "vs.m"), plus "vs.sl" for long topics, in the NATS queue
 * group vs_share_queue(GROUP, FILTER): NATS hands each message on those subjects to one member of
 * the queue group, that is to one node, which gives it to one of its local members (round robin,
 * connected members first, as for a single node). A node sends every message it routes (the
 * same frame as on "vs.m") to "vs.s" too, through a second connection of its own, so that its
 * own queue subscriptions may be chosen as well (the first one has "no echo"); it sends that
 * copy only while some node has shared subscriptions (each node says how many groups it has in
 * its heartbeat, cluster.c). While its NATS connection is up, a node never delivers a message to
 * a shared group by itself: only the copy NATS gives it does.
 */
#ifndef VS_BROKER_CLUSTER_SHARE_H
#define VS_BROKER_CLUSTER_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

struct vs_broker;
struct vs_cluster_share;

#define VS_SHARE_PREFIX "vs.s"
#define VS_SHARE_LONG	"vs.sl"

/* pub: the connection share copies are published on (owned by the caller). NULL on no memory. */
struct vs_cluster_share *vs_cluster_share_new(struct vs_broker *b, natsConnection *pub);
/* Destroys the subscriptions (after the connection closed). */
void vs_cluster_share_close(struct vs_cluster_share *s);
/* Frees s once no NATS callback can run any more (after nats_CloseAndWait). */
void vs_cluster_share_free(struct vs_cluster_share *s);

/* A local member of share ("$share/G/F") appeared (delta 1) or went (-1). */
void vs_cluster_share_interest(struct vs_cluster_share *s, const char *share, size_t len,
			       int delta);

/* Sends the frame f[0..len) that went to subject ("vs.m..." or "vs.l") to "vs.s" too, when some
 * node has shared groups. Returns whether it was sent. */
bool vs_cluster_share_forward(struct vs_cluster_share *s, const char *subject, const void *f,
			      int len);

/* Whether a local group's filter takes messages on subject ("vs.m..."): its QoS 1/2 messages then
 * go through JetStream even when no other node wants them, to reach the group's consumers. */
bool vs_cluster_share_wants(struct vs_cluster_share *s, const char *subject);

/* What a SUBACK granting a member of share ("$share/G/F", len bytes) QoS 1/2 waits for: 0
 * nothing (no such group, or its consumers are bound and the other nodes know its subjects),
 * the barrier's ticket of its subjects' writes (cluster_interest.h), or UINT64_MAX while its
 * consumers are not bound yet (every worker gets a VS_MAIL_HELD once they are). */
uint64_t vs_cluster_share_pending(struct vs_cluster_share *s, const char *share, size_t len);

/* Local groups (for the heartbeat). */
size_t vs_cluster_share_groups(struct vs_cluster_share *s);
/* Whether other nodes have groups (set by the heartbeats cluster.c hears). */
void vs_cluster_share_remote(struct vs_cluster_share *s, bool any);

#endif
