/*
 * Which subjects other nodes subscribe to, so that a QoS 1/2 message goes through JetStream
 * (cluster_js.h: stored, acknowledged, at least once) only when another node wants it, and a
 * message whose subscribers are all on its own node costs no JetStream round trip.
 *
 * Each node keeps the NATS subjects of its local filters (cluster.c counts them) in the
 * key-value bucket vs_interest: key NODE.HASH (the node id escaped as cluster/keys.h does, 16 hex
 * digits of a hash of the subject), value the subject. Writes go in order on a thread of their
 * own; every node watches the bucket and keeps the other nodes' subjects.
 *
 * A node's entries stay while it is down (its persistent sessions still want their messages
 * when it comes back): they are removed only when its subscriptions go, not when it stops.
 * Until the watch has read the bucket once, every QoS 1/2 message is taken as wanted.
 *
 * The barrier. A subject this node adds reaches the other nodes through the bucket a few
 * milliseconds later; a QoS 1/2 message they route before their watch has it would travel on
 * core NATS, at most once. So a SUBACK that grants QoS 1/2 waits (subscribe.c holds it) until
 * every change noted before it is written and every other node heard from lately has said, on
 * vs.ib, that its watch has applied the bucket's revision of the last subject added. A node
 * that does not say so within a second is given up on (a warning); changes that cannot be
 * written for two seconds (NATS unreachable) release what waits behind them too.
 */
#ifndef VS_BROKER_CLUSTER_INTEREST_H
#define VS_BROKER_CLUSTER_INTEREST_H

#include <stdbool.h>
#include <stdint.h>

#define VS_INTEREST_BUCKET "vs_interest"

struct vs_broker;
struct vs_cluster_interest;

/* Starts the thread (binding or creating the bucket as soon as JetStream answers). NULL: no
 * memory. */
struct vs_cluster_interest *vs_cluster_interest_start(struct vs_broker *b);
/* Tells its threads to stop, without waiting for them. */
void vs_cluster_interest_stopping(struct vs_cluster_interest *ci);
/* Stops the thread (it is no longer watching or writing when this returns). */
void vs_cluster_interest_stop(struct vs_cluster_interest *ci);
/* Releases its NATS objects, after the connection closed and before the library's end (which
 * waits for them). */
void vs_cluster_interest_close(struct vs_cluster_interest *ci);
void vs_cluster_interest_free(struct vs_cluster_interest *ci);

/* This node's subject came (add) or went, for ordinary subscriptions (tag NULL) or for the
 * shared group whose queue is tag (cluster_share.h: its QoS 1/2 messages go through JetStream
 * too); under the caller's lock, without I/O. Returns the ticket of an add's write (the
 * changes queued so far when it did not need one), 0 for a delete or without a cluster. */
uint64_t vs_cluster_interest_note(struct vs_cluster_interest *ci, const char *subject,
				  const char *tag, bool add);

/* The ticket a reply that must wait for the changes noted so far waits for; 0 when they are
 * all confirmed (or without a cluster): nothing to wait for. Any thread. */
uint64_t vs_cluster_interest_ticket(struct vs_cluster_interest *ci);
/* Whether ticket is confirmed (true without a cluster). */
bool vs_cluster_interest_confirmed(struct vs_cluster_interest *ci, uint64_t ticket);
/* Worker `worker` waits for ticket: it gets a VS_MAIL_HELD once ticket (or the lowest ticket it
 * waits for) is confirmed, and true is returned; false when it already is (no mail). */
bool vs_cluster_interest_await(struct vs_cluster_interest *ci, int worker, uint64_t ticket);

/* Whether another node subscribes to a subject matching subject (true while unknown). */
bool vs_cluster_interest_remote(struct vs_cluster_interest *ci, const char *subject);

/* Subjects of other nodes known (for $SYS), or -1 before the bucket was read. */
int64_t vs_cluster_interest_count(struct vs_cluster_interest *ci);

#endif
