/*
 * What Viesti nodes send each other over NATS (docs/cluster.md), without any I/O: the subject a
 * topic is published on, the subjects a filter needs, and the frame that carries a message.
 *
 * Subjects. Every message goes to "vs.m." followed by its topic's levels, each escaped into a
 * NATS token: bytes other than [A-Za-z0-9_-] become "%XX" (so '.', ' ', '*', '>' and '%'
 * survive), and an empty level is "%" alone. A filter maps level by level, '+' to '*' and a
 * final '#' to '>' plus the parent itself ("a/#" also matches "a" [MQTT-4.7.1-2]). A node
 * subscribes in NATS to what its local filters need; the MQTT match itself is done again by the
 * receiving node's own trie, so the subjects only need to cover the filter.
 *
 * Frames. A message travels as: version (1), the origin node's id (u8 length, bytes), a
 * sequence number (u64, big-endian, increasing per origin: duplicates from overlapping NATS
 * subscriptions are dropped by it), then the message as an MQTT 5.0 PUBLISH packet, decoded by
 * the same code as a client's.
 */
#ifndef VS_CLUSTER_CLUSTER_H
#define VS_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec/codec.h"

#define VS_CLUSTER_PREFIX	 "vs.m"
#define VS_CLUSTER_FRAME_VERSION 1
/* A flag in a frame's first byte, with the version: the sending node's own persistent
 * sessions wait for the stream's copy of this message (broker/cluster.h). */
#define VS_CLUSTER_FRAME_LOOP 0x80
#define VS_CLUSTER_NODE_MAX   255

/* The subject for topic (NUL-terminated in out). Returns its length, or VS_ETOOBIG. */
ssize_t vs_cluster_topic_subject(const uint8_t *topic, size_t len, char *out, size_t cap);

/*
 * The subjects filter needs (not a $share/ one: pass the filter after the group): one, or two
 * when it ends with "/#" (the parent level too). Writes them NUL-terminated into a and b.
 * Returns how many (1 or 2), or VS_ETOOBIG.
 */
int vs_cluster_filter_subjects(const uint8_t *filter, size_t len, char *a, char *b, size_t cap);

struct vs_cluster_frame {
	struct vs_buf node; /* origin node id */
	uint64_t seq;
	bool loop;		   /* VS_CLUSTER_FRAME_LOOP */
	struct vs_publish publish; /* views into the frame */
};

/* Writes the frame header (version, node, seq) into out; returns its length or VS_ETOOBIG.
 * The PUBLISH packet follows it. */
ssize_t vs_cluster_frame_head(const char *node, uint64_t seq, uint8_t *out, size_t cap);

/* Decodes a frame. Returns 0, or VS_EPROTO (with *why, for the log) when it is not one,
 * including a PUBLISH with an empty topic or a Topic Alias: a frame carries its whole topic. */
int vs_cluster_frame_decode(const uint8_t *buf, size_t len, struct vs_cluster_frame *f,
			    const char **why);

/* Whether NATS subject pattern (tokens separated by '.', '*' one token, '>' the rest: one token
 * or more) matches subject, as the NATS server decides which subscriptions get a message. */
bool vs_cluster_subject_match(const char *pattern, const char *subject);

#endif
