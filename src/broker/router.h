/*
 * The router: from one message to every session that subscribed to its topic.
 *
 * vs_route() matches the topic in the shared trie, merges the matches per session (one copy per
 * session, at the highest granted QoS, with every matching Subscription Identifier
 * [MQTT-3.3.4-3..5], [MQTT-3.3.5-1]), picks one member per shared group (round robin, preferring
 * connected members), and delivers into each session. vs_router_drain_session() moves queued
 * messages of a connected session into its connection's output, within the inflight window.
 */
#ifndef VS_BROKER_ROUTER_H
#define VS_BROKER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_worker;
struct vs_session;
struct vs_msg;
struct vs_conn;

/* Routes msg (and stores it as retained when msg->retain). origin: the publisher's session
 * (for No Local), or NULL. Returns the number of sessions it was delivered to. */
int vs_route(struct vs_worker *w, struct vs_msg *msg, const struct vs_session *origin);

/* Delivers msg, which the cluster chose this node for, to one member of the one shared group
 * share ("$share/G/F") if its topic matches F: nothing else (no plain subscriber, no retained
 * store). Returns the number of sessions it was delivered to (0 or 1). */
int vs_route_shared(struct vs_worker *w, struct vs_msg *msg, const char *share);
/* (vs_route_shared: how many members took it; 0 when none here did; -1 when its topic is
 * not the group's filter's.) */

/* vs_tree_add / vs_tree_remove on the broker's trie, telling the cluster (cluster.h) when a
 * subscription appears or goes. Same returns. */
struct vs_broker;
struct vs_sub;
int vs_router_sub_add(struct vs_broker *b, const char *filter, size_t len,
		      const struct vs_sub *sub);
int vs_router_sub_remove(struct vs_broker *b, const char *filter, size_t len, const void *owner);
/* The cluster's barrier ticket (cluster.h) that the subscriptions added on this thread since the
 * last call wait for, 0 for none; and starts again from 0. */
uint64_t vs_router_sub_ticket(void);

/* Queues msg for session s at QoS qos (already capped) with the given retain flag and
 * subscription ids; wakes the owning worker. Returns 1 if queued, 0 if dropped (a limit), -1 if
 * the session has ended. The caller holds a reference to msg for the whole call: the store's
 * records are written after s's lock is let go of, when the queue's own reference may already
 * be gone. */
int vs_deliver(struct vs_worker *w, struct vs_session *s, struct vs_msg *msg, uint8_t qos,
	       bool retain, const uint32_t *sub_ids, uint32_t n_sub_ids, const char *share);

/* Retained messages for a new subscription of s [MQTT-3.3.1-9]: msgs[0..n) (one reference
 * each, which this takes) wait in s's feed and enter its queue as it drains, so none is lost to
 * the queue's limit. qos is the granted QoS. At most max_retained_feed wait; the rest are
 * dropped with a log line. Returns how many were taken. */
int vs_feed_retained(struct vs_worker *w, struct vs_session *s, struct vs_msg **msgs, size_t n,
		     uint8_t qos, uint32_t sub_id);

/* On the owning worker: sends what the window allows of s's queue to its connection. */
void vs_router_drain_session(struct vs_worker *w, struct vs_session *s);
/* Caller holds s->lock, after draining s: whether publishers were slowed for s's queue and it
 * is now back within its limits (max_queued_messages, max_queued_bytes); then the caller, once
 * s is unlocked, resumes them (vs_worker_resume_publishers). */
bool vs_router_unblocked(struct vs_worker *w, struct vs_session *s);

/* Re-sends a resumed session's inflight messages (DUP set, or PUBREL) [MQTT-4.4.0-1], then
 * drains. Called after CONNACK on the owning worker. Returns false when the connection was
 * closed because a PUBREL could not be sent. */
bool vs_router_resume_session(struct vs_worker *w, struct vs_session *s);

/* Ends a session: removes it from the registry (if still there) and its subscriptions from the
 * trie, drops its messages (those from shared subscriptions are re-routed to the group) and
 * publishes its delayed will. Takes reg_lock: the caller holds no lock. */
void vs_router_end_session(struct vs_worker *w, struct vs_session *s);

/* Drops from s's queue and inflight window every message its current user may not read
 * (the ACL of its listener), after a connection with possibly another username resumed it.
 * A QoS 2 message already acknowledged with PUBREC stays: only its PUBREL is left to send. */
void vs_router_recheck_session(struct vs_worker *w, struct vs_session *s);

/* Publishes a will message now (routing it; retained if flagged). */
void vs_publish_will(struct vs_worker *w, struct vs_msg *will);

#endif
