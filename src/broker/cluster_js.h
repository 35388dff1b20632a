/*
 * What the cluster keeps in JetStream (docs/cluster.md): QoS 1/2 messages between nodes, node
 * leases, and the wills of connected clients, so that no acknowledged message and no will is
 * lost when a node dies.
 *
 * Messages. A QoS 1/2 message for other nodes is published to the stream VS_MSGS (subjects
 * "vs.q." + the core subject) with the message id "node:seq", so a republish is dropped by the
 * stream. The publishing worker sends it asynchronously and, at the end of its loop turn, waits
 * until JetStream has stored every message of the turn before writing the turn's PUBACK/PUBREC:
 * the same group commit as the local store (vs_bp_commit). Each node reads the stream with a
 * durable consumer named after it; a message is routed on a worker and acknowledged to
 * JetStream only after that worker's commit. A node skips its own messages and those it has
 * seen (origin node and sequence, which increase per origin in stream order).
 *
 * Leases and wills. A thread of its own renews this node's key in the bucket vs_nodes (its age
 * limit is the lease), and puts and deletes the will of each connected client that has one in
 * vs_wills (key "node.client", cluster/keys.h). It also looks for wills of nodes whose lease has
 * gone; one survivor wins the right to publish them (compare-and-set on "reap.<node>"),
 * publishes each to the stream (message id "will:key:revision") and to its own clients, and
 * deletes it.
 *
 * The NATS connection's threads never touch the broker: they post to workers (cluster.h).
 */
#ifndef VS_BROKER_CLUSTER_JS_H
#define VS_BROKER_CLUSTER_JS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_CJS_STREAM	    "VS_MSGS"
#define VS_CJS_SUBJECTS	    "vs.q.>"
#define VS_CJS_CONSUMER_FMT "vs_%s"    /* a node's durable consumer: "vs_" and its id's token */
#define VS_CJS_NODES_BUCKET "vs_nodes" /* leases: key a node id's token, gone when it lapsed */
/* The journal of the PUBRECs that clients gave for the stream's messages: subject the prefix
 * and the client id's token (cluster/keys.h), each entry stream sequences (8 bytes each,
 * big-endian); the last VS_CJS_RECS_KEEP entries per client are kept. */
#define VS_CJS_RECS		"VS_RECS"
#define VS_CJS_RECS_PREFIX	"vs.r."
#define VS_CJS_RECS_KEEP	10000
#define VS_CJS_RECS_SUBJECT_MAX 1024

struct vs_broker;
struct vs_cluster;
struct vs_cjs;
struct vs_worker;
struct vs_session;
struct vs_msg;

/* Creates the JetStream part of cl (*out): the stream, consumer and buckets are made now when
 * NATS is there, else by its thread once it is; until then vs_cjs_ready() is false and QoS 1/2
 * crosses on core NATS. Returns 0 or -1 with err. */
int vs_cjs_start(struct vs_cluster *cl, struct vs_broker *b, struct vs_cjs **out, char *err,
		 size_t errlen);
/* Tells the thread to stop, without waiting (vs_cluster_stop tells every thread first). */
void vs_cjs_stopping(struct vs_cjs *j);
/* Stops its thread (before the connection closes). */
void vs_cjs_stop(struct vs_cjs *j);
/* Frees it (after the connection closed). */
void vs_cjs_free(struct vs_cjs *j);

/* Whether QoS 1/2 messages go through JetStream. */
bool vs_cjs_ready(const struct vs_cjs *j);

/* Sends the frame buf[0..len) (its head of head bytes is rewritten here with the sequence
 * number) to JetStream on the QoS subject of subject, asynchronously; the acknowledgement of
 * the current client waits for vs_cjs_commit. On w's thread. Returns that sequence number
 * (this node's numbers grow in the stream's order), 0 when the publish failed at once. Its
 * message id for JetStream's duplicate window is this node's id and that number, or, when
 * again is not 0, the number an earlier copy of the same message was published with
 * (vs_cjs_unsure): JetStream then keeps one of the two. */
uint64_t vs_cjs_publish(struct vs_worker *w, struct vs_cjs *j, const char *subject, uint8_t *buf,
			size_t head, size_t len, uint64_t again);
/* Whether this node's consumer has received back its own message numbered stamp (by
 * vs_cjs_publish), or a later one; *sseq then the stream sequence of the latest it received,
 * at or after that message's. */
bool vs_cjs_own_back(struct vs_cjs *j, uint64_t stamp, uint64_t *sseq);

/* End of w's turn (vs_bp_commit): waits for JetStream's acknowledgements of this turn's
 * messages, then acknowledges (stored) or gives back (!stored) the messages of other nodes
 * routed this turn. Returns 0, or -EIO when a message was not taken by JetStream. */
int vs_cjs_commit(struct vs_worker *w, bool stored);
/*
 * A QoS 2 message from client s, packet id pid, published to JetStream this turn as number
 * stamp (vs_cjs_publish). Should this turn's commit fail, its PUBREC is withheld and the client
 * disconnected, and whether JetStream took it is unknown: its id stays held in the session
 * (this node's subscribers had it), so the client's resend is not routed here again
 * [MQTT-4.3.3-9], and vs_cjs_unsure then returns stamp, to offer the resend to JetStream under
 * the same message id. Returns 0, or -ENOMEM (nothing kept: the caller frees the id).
 */
int vs_cjs_q2_published(struct vs_worker *w, struct vs_session *s, uint16_t pid, uint64_t stamp);
/* The number of w's last publish to JetStream (vs_cjs_publish), whether it went or failed at
 * once (NATS away for a moment), or 0 when none since the last call; clears it. */
uint64_t vs_cjs_tried(struct vs_worker *w);
/* The number of session s's QoS 2 message pid whose commit failed (vs_cjs_q2_published),
 * forgotten here; 0 when there is none (or it was of an earlier session of its client id). */
uint64_t vs_cjs_unsure(struct vs_worker *w, struct vs_session *s, uint16_t pid);
/* Gives back what vs_cjs_unsure returned, the resend not offered after all. */
void vs_cjs_unsure_keep(struct vs_worker *w, struct vs_session *s, uint16_t pid, uint64_t stamp);
/* The client of w's current connection (client_id) acknowledged with PUBREC the stream's
 * message sseq (msg->sseq), sent at QoS 2 with packet id vs_cjs_packet_id(sseq): journaled in
 * VS_RECS before the connection's output of this turn (its PUBREL) is written (vs_cjs_commit).
 * Were this node to die, the node that rebuilds the session sends that PUBREL again instead of
 * the message (cluster_replay.c). Nothing when JetStream is not ready. */
void vs_cjs_received(struct vs_worker *w, const char *client_id, size_t len, uint64_t sseq);
/* The journal's subject for client_id (NUL-terminated in out); false when the id is too long
 * for one (its session goes without a journal). */
bool vs_cjs_recs_subject(const char *client_id, size_t len, char out[VS_CJS_RECS_SUBJECT_MAX]);
/* The packet id of the stream's message sseq sent at QoS 2, on any node: a node rebuilding a
 * session after its node's death sends what the client had not completed with the id it had,
 * so that the client takes it once [MQTT-4.3.3]. */
static inline uint16_t vs_cjs_packet_id(uint64_t sseq)
{
	return (uint16_t)(sseq % 65535 + 1);
}
/* A JetStream message (natsMsg) that w has just routed: acknowledged at w's next commit. */
void vs_cjs_routed(struct vs_worker *w, void *ack);
/* Frees a JetStream message without acknowledging it (JetStream sends it again). */
void vs_cjs_drop(void *ack);

/* A stream sequence this node has taken everything up to: every message of the stream after
 * it is still to come, or received and not yet routed and stored, or still held by a session
 * (b->stream_held: queued, or sent and not acknowledged by its client) (0: none taken yet). A
 * session that goes offline notes it, and the node writes it every second for its connected
 * sessions (cluster_session.h): were this node to die, another node rebuilding a session
 * reads the stream from there. */
uint64_t vs_cjs_floor(struct vs_cjs *j);
/* The same without what sessions hold: every message of the stream up to it has been routed
 * to this node's sessions (a hand-over waits for it, cluster_handover.c). */
uint64_t vs_cjs_taken(struct vs_cjs *j);

/* The JetStream message ack (natsMsg) is about to be posted to worker `worker`, which
 * acknowledges it at a commit (vs_cjs_routed): its stream sequence counts as not yet taken until
 * then (vs_cjs_floor). From this node's consumer (cluster.c) or a shared group's
 * (cluster_share.h). seq: its stream sequence; 0 for a shared group's copy, which holds a place
 * in the worker's order but not the floor (it may come again to another node). */
void vs_cjs_track(struct vs_cjs *j, int worker, void *ack, uint64_t seq);
/* A message of JetStream that w routed to nobody (a shared group's copy no member here took):
 * given back (another node takes it), or (never) refused for good. */
void vs_cjs_refuse(struct vs_worker *w, void *ack, bool never);

/* The will of client_id changed: will (encoded here, not kept) is stored in vs_wills, NULL
 * deletes it. On w's thread; the writes happen on the JetStream thread, in the order asked. */
void vs_cjs_will(struct vs_worker *w, const char *client_id, size_t len, struct vs_msg *will);

#endif
