/*
 * Messages: one immutable, reference-counted copy of each PUBLISH the broker routes.
 *
 * A message is one allocation: the struct, then topic, payload and the 5.0 properties that are
 * forwarded unchanged (payload format, content type, response topic, correlation data and user
 * properties, the latter kept as their encoded bytes so order is preserved [MQTT-3.3.2-18]).
 * Subscribers share it; per-subscriber facts (QoS, packet id, subscription identifiers, topic
 * alias, the decremented expiry) live in the delivery, not here.
 *
 * MQTT 5.0 wire forms are cached per QoS 0 or not: the first subscriber that needs a form
 * encodes it, later subscribers copy those bytes and patch the packet id and flags. The cache
 * fills with a compare-and-swap, so any worker may fill it without a lock. A 3.x PUBLISH has no
 * properties and is written straight from the message (as cheap as the copy, no allocation).
 */
#ifndef VS_SESSION_MSG_H
#define VS_SESSION_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec/codec.h"

/* A cached encoding of a message as a PUBLISH with no per-subscriber properties. */
struct vs_msg_enc {
	uint32_t len;
	uint32_t id_off; /* offset of the packet id (0 when the form has none) */
	uint8_t bytes[];
};

/* Who published a retained message, for check_retain_source: the broker checks again, when it
 * delivers the message to a new subscriber, that this publisher may still publish it. One
 * allocation, both strings inside it. */
struct vs_msg_source {
	int listener; /* index of the publisher's listener (the broker's) */
	const char *client_id;
	const char *username; /* NULL: anonymous */
};

struct vs_minset;

struct vs_msg {
	atomic_uint refs;
	uint8_t qos; /* as published */
	bool retain; /* as published */
	bool remote; /* came from another node of the cluster: not sent back to it */
	bool loop;   /* this node's own, back from JetStream: for its persistent sessions only
		      * (cluster.h, router.c) */
	bool has_payload_format;
	uint8_t payload_format;
	bool has_expiry;
	/* In a cluster, JetStream sent this message of the stream before (to this node, in this
	 * life or an earlier one: its acknowledgement did not reach JetStream): a session that
	 * holds it already does not take it again (router.c vs_deliver). */
	bool again;
	uint32_t expiry_interval; /* seconds, as published */
	int64_t created_ms;	  /* monotonic, for expiry */
	struct vs_buf topic;
	struct vs_buf payload;
	struct vs_buf content_type; /* len 0 and p NULL when absent */
	struct vs_buf response_topic;
	struct vs_buf correlation_data;
	struct vs_buf user_raw; /* encoded 0x26 entries, in order */
	uint32_t n_user;
	uint16_t home;	      /* 1 + the home (below) of the thread that made it; 0: none */
	struct vs_buf origin; /* client id of the publisher, for No Local */
	union {
		struct vs_msg_source *source; /* owned; NULL unless set by vs_msg_set_source()
					       * (not for $SYS, nor for messages restored from
					       * disk) */
		struct vs_msg *back;	      /* once let go of, in its home's list */
	};
	_Atomic(struct vs_msg_enc *) enc[4]; /* 5.0 only: [2 + (qos > 0)] */
	_Atomic uint64_t store_id; /* persistence: id of its MSG record, 0 = not written yet */
	/* In a cluster, a message that came from JetStream: its stream sequence, and the node's
	 * set that the entries of connected persistent sessions hold it in (vs_session_hold). */
	uint64_t sseq;
	struct vs_minset *held;
	/* This node's own message of which a copy went into the stream while its sessions took
	 * it as published (No Local, cluster_durable_sessions false): the copy's number among
	 * this node's publishes (vs_cjs_publish), the copy's stream sequence unknown here; 0
	 * otherwise. Set before any session has it (atomic: a retained one is in the store by
	 * then). */
	_Atomic uint64_t stamp;
};

/*
 * Creates a message from a decoded PUBLISH (props may be NULL for 3.x) and the publisher's
 * client id. The topic is given separately since a 5.0 topic alias may have replaced it.
 * Returns NULL on allocation failure. The caller owns one reference.
 */
struct vs_msg *vs_msg_new(const struct vs_buf *topic, const struct vs_publish *p,
			  const struct vs_buf *origin, int64_t now_ms);

/* Creates a message from plain fields (wills, $SYS). props as in vs_msg_new or NULL. */
struct vs_msg *vs_msg_make(const char *topic, size_t topic_len, const void *payload,
			   size_t payload_len, uint8_t qos, bool retain,
			   const struct vs_props *props, const struct vs_buf *origin,
			   int64_t now_ms);

static inline struct vs_msg *vs_msg_ref(struct vs_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void vs_msg_unref(struct vs_msg *m);

/*
 * Homes. A worker thread makes the messages its publishers send, and the thread of their
 * subscriber lets go of most of them. A malloc'd block freed by a thread other than the one
 * that allocated it goes back to the allocating thread's arena under that arena's lock, which
 * the allocating thread takes for its next message: in fan-in with two threads, most futex
 * calls were that lock. So a thread that enters a home gets back the messages it made and
 * others let go of (a lock-free list), and frees them itself, in its arena, when it collects.
 * A thread without a home (start-up, the cluster's threads) makes messages freed wherever
 * their last reference goes. Homes are static: a message outlives the thread that made it.
 */
void vs_msg_home_enter(void);	  /* the calling thread takes a home (none left: it has none) */
size_t vs_msg_home_collect(void); /* frees what came back to the caller's home; how many */
void vs_msg_home_leave(void);	  /* collects and gives the home back */
/* Frees what came back to homes no thread has: for the end of the process (or of a test),
 * once no thread lets go of messages any more. */
void vs_msg_homes_fini(void);

/* Records who published m (before m is shared). username may be NULL. Returns 0 or -ENOMEM. */
int vs_msg_set_source(struct vs_msg *m, int listener, const char *client_id, const char *username);

/* Whether the message has expired; *remaining gets the seconds left (for forwarding). */
bool vs_msg_expired(const struct vs_msg *m, int64_t now_ms, uint32_t *remaining);

/* Fills props with the message's forwardable 5.0 properties (views into m). */
void vs_msg_props(const struct vs_msg *m, struct vs_props *props);

/* Per-delivery facts for encoding a message for one subscriber. */
struct vs_delivery {
	uint8_t version; /* enum vs_version */
	uint8_t qos;	 /* effective QoS */
	bool retain;
	bool dup;
	uint16_t packet_id;
	uint16_t topic_alias; /* 0 = none */
	bool alias_only;      /* send an empty topic with the alias */
	uint16_t topic_skip;  /* bytes cut from the front of the topic (a listener's
			       * mount_point), < topic.len */
	uint32_t n_sub_ids;
	const uint32_t *sub_ids;
};

/*
 * Returns the size of m encoded for delivery d, or VS_EPROTO. Writes it with
 * vs_msg_encode(), which uses the cached form when d has no per-subscriber properties.
 */
ssize_t vs_msg_encoded_size(struct vs_msg *m, const struct vs_delivery *d, int64_t now_ms);
ssize_t vs_msg_encode(struct vs_msg *m, const struct vs_delivery *d, int64_t now_ms, uint8_t *out,
		      size_t cap);

#endif
