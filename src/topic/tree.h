/*
 * The subscription trie: topic filters -> subscribers, shared by every worker thread.
 *
 * One level of the topic per node; each node has exact-name children in a hash table plus
 * dedicated '+' and '#' children. Ordinary subscriptions of a filter live in its node; shared
 * subscriptions ($share/{group}/{filter}) live in a per-node list of groups, keyed by group name,
 * each with its members and a round-robin cursor.
 *
 * Concurrency: read-mostly. vs_tree_match() takes a read lock for the whole walk; add and remove
 * take the write lock. Callbacks run under the read lock and must not call back into the tree.
 *
 * The tree does not validate filters or topics (the codec did): it trusts its input.
 * [MQTT-4.7.2-1] A filter starting with '+' or '#' does not match a topic starting with '$'.
 */
#ifndef VS_TOPIC_TREE_H
#define VS_TOPIC_TREE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_tree;

/* A subscription as the tree stores it; `owner` (a session) is opaque to the tree. */
struct vs_sub {
	void *owner;
	uint32_t sub_id;	  /* 5.0 Subscription Identifier, 0 = none */
	uint8_t qos;		  /* maximum QoS granted */
	bool no_local;		  /* 5.0 */
	bool retain_as_published; /* 5.0 */
	uint8_t retain_handling;  /* 5.0, 0..2 */
};

/*
 * Called once per matching ordinary subscription (n == 1, cursor NULL), and once per matching
 * shared group (members[0..n) with n >= 1, cursor the group's round-robin counter, which the
 * callee advances to pick one member, e.g. members[atomic_fetch_add(cursor, 1) % n]). The
 * filter itself is not passed: the callback gets the stored subscriptions only. members points
 * into the tree and is valid only during the call; members' order is unspecified and changes
 * when members leave.
 */
typedef void (*vs_tree_match_fn)(void *ctx, const struct vs_sub *members, size_t n,
				 atomic_uint *cursor);

struct vs_tree *vs_tree_new(void);
/* Frees the tree and every subscription in it (owners are not touched). */
void vs_tree_free(struct vs_tree *t);

/*
 * Adds or replaces the subscription of sub->owner to filter (which may be a
 * $share/group/filter). Returns 1 if it is new, 0 if it replaced an existing subscription of the
 * same owner to the same filter [MQTT-3.8.4-3], or -ENOMEM.
 */
int vs_tree_add(struct vs_tree *t, const char *filter, size_t len, const struct vs_sub *sub);

/* Removes owner's subscription to filter. Returns 1 if there was one, 0 if not. */
int vs_tree_remove(struct vs_tree *t, const char *filter, size_t len, const void *owner);

/* Calls fn for every subscription matching topic (see vs_tree_match_fn). Returns the number
 * of calls. */
size_t vs_tree_match(struct vs_tree *t, const char *topic, size_t len, vs_tree_match_fn fn,
		     void *ctx);

/*
 * Calls fn once, as vs_tree_match() would, for the group of share ("$share/{group}/{filter}")
 * if it has members: a message meant for that one group (the cluster chose this node for it).
 * The caller checks that the topic matches the filter. Returns 1 if called, 0 if not.
 */
int vs_tree_group(struct vs_tree *t, const char *share, size_t len, vs_tree_match_fn fn, void *ctx);

/* Number of subscriptions (ordinary plus shared members). */
size_t vs_tree_count(struct vs_tree *t);
/* Of those, members of $share groups (Mosquitto's $SYS/broker/shared_subscriptions/count). */
size_t vs_tree_shared_count(struct vs_tree *t);

/* Number of trie nodes below the root: zero again once every subscription is removed (empty
 * nodes are freed). For tests and metrics. */
size_t vs_tree_nodes(struct vs_tree *t);

#endif
