/*
 * The broker side of persistence: turning state changes into store records (src/persist) and
 * rebuilding the broker's state from them at start-up.
 *
 * Every change a client is told about is appended to the worker's buffer while the packet is
 * handled; the buffer is committed once per loop turn, before any output of that turn is
 * written (worker.c's end_turn), so no acknowledgement leaves before what it acknowledges is
 * stored. With persistence_fsync batch the worker does not wait for the fdatasync: the output
 * waits instead (vs_bp_write below, worker.c's held output). Only persistent sessions (those that
 * outlive their connection) are recorded, and retained messages. With persistence off every
 * function here is a cheap no-op.
 *
 * Replay is order-independent across workers: queue states only move forward, and a DEQUEUE
 * leaves a tombstone so a late QUEUE record from another worker cannot resurrect the entry.
 */
#ifndef VS_BROKER_PERSIST_H
#define VS_BROKER_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct vs_broker;
struct vs_worker;
struct vs_session;
struct vs_msg;
struct vs_qentry;

/* Opens the store in persistence_location, replays it into the broker (sessions, subscriptions,
 * retained messages, queues, wills) and compacts it. Returns 0 or a negative error with err. */
int vs_bp_open(struct vs_broker *b, char *err, size_t errlen);
/* viesti broker --import-mosquitto-db FILE: imports the Mosquitto database FILE into the store
 * the configuration names (which must not be in use by a running broker), writing a report or
 * the reason it failed to out. Returns 0 or a negative error. */
struct vs_config;
int vs_bp_import_mosquitto(const struct vs_config *c, const char *file, FILE *out);
/* Writes a final snapshot, closes the store. */
void vs_bp_close(struct vs_broker *b);
/* Whether this node had queued the cluster stream's message sseq for a persistent session in
 * its previous life, as far as its store said at start-up (broker.h routed_before). */
#define VS_ROUTED_KEEP 65536
bool vs_bp_routed_before(const struct vs_broker *b, uint64_t sseq);

/* A snapshot is started (on its own thread) once the current log segment is this large. */
#define VS_BP_COMPACT_BYTES (64ull << 20)

/* Starts a snapshot when the log has grown past VS_BP_COMPACT_BYTES (worker 0's sweep). */
void vs_bp_maybe_compact(struct vs_broker *b);

/* Commits the worker's buffer (end of a loop turn) and, in a cluster, waits until JetStream has
 * taken this turn's QoS 1/2 messages for other nodes (cluster_js.h). Returns 0, or a negative
 * error: the caller must not send the acknowledgements of this turn. */
int vs_bp_commit(struct vs_worker *w);
/*
 * persistence_fsync batch without a cluster (b->store_async): a worker writes its turn's
 * records and goes on without waiting for their fdatasync; the output of the turn waits
 * instead (worker.c, held output), until the store's sync thread has synced the write.
 * vs_bp_start: decides store_async (after the cluster started) and gives the store `synced`,
 * called with b each time its syncs progressed (from the sync thread).
 * vs_bp_write: writes w's records of this turn without waiting: the write's sequence number,
 * 0 when there was nothing to write, or a negative error (as vs_bp_commit: acknowledge nothing
 * of this turn; the records are written again next turn). The buffer is kept until the write
 * is synced.
 * vs_bp_settle: w's writes synced (up to synced, see vs_store_durable) give their buffers back;
 * the records of writes whose sync failed (up to failed) are queued to be written again.
 */
void vs_bp_start(struct vs_broker *b, void (*synced)(void *ctx));
int64_t vs_bp_write(struct vs_worker *w);
void vs_bp_settle(struct vs_worker *w, uint64_t synced, uint64_t failed);
void vs_bp_worker_fini(struct vs_worker *w);

/* Whether new QoS 1/2 messages can be stored (false after a failed write, until one works). */
bool vs_bp_healthy(const struct vs_broker *b);

/* Hooks. `s` locked by the caller where noted. All are no-ops without a store.
 * vs_bp_session: a persisted session's settings changed (a session not yet in the store goes
 * in whole, with vs_bp_session_record). */
void vs_bp_session(struct vs_worker *w, struct vs_session *s);	   /* s locked */
void vs_bp_session_del(struct vs_worker *w, struct vs_session *s); /* s locked */
void vs_bp_sub(struct vs_worker *w, struct vs_session *s, const char *filter, size_t len,
	       uint8_t qos, uint8_t options, uint32_t sub_id); /* s locked */
void vs_bp_unsub(struct vs_worker *w, struct vs_session *s, const char *filter, size_t len);
void vs_bp_retain(struct vs_worker *w, struct vs_msg *m, bool set, uint64_t version);
void vs_bp_queue(struct vs_worker *w, struct vs_session *s, const struct vs_qentry *e); /* locked */
void vs_bp_dequeue(struct vs_worker *w, struct vs_session *s,
		   const struct vs_qentry *e); /* locked */
/* Records about a delivery encoded after s's lock was let go of, for a session the caller saw
 * persisted under it: records are encoded outside the lock that a message's publisher and
 * its subscriber both take. e is the caller's own copy (its subscription identifiers inline:
 * n_sub_ids <= 1 for a queued one); replay does not depend on the order in which records
 * about the same delivery reach the log (restore.c: a state only moves forward, a dequeue is
 * a tombstone).
 *
 * A queued entry: the message's store id must be given under the lock (vs_bp_give_id),
 * before any other thread can see the entry, since a DEQUEUE names the delivery by it (an
 * entry whose message has no id is not recorded, so a delivery that ended before the id was
 * given would come back after a restart). vs_bp_give_id returns the id it gave, or 0 if the
 * message had one; vs_bp_queue_written then writes the message's body for an id given (its
 * MSG record) and the QUEUE record. */
uint64_t vs_bp_give_id(struct vs_worker *w, struct vs_msg *m);
void vs_bp_queue_written(struct vs_worker *w, struct vs_session *s, const struct vs_qentry *e,
			 uint64_t given);
void vs_bp_dequeued(struct vs_worker *w, struct vs_session *s, const struct vs_qentry *e);
void vs_bp_inqos2(struct vs_worker *w, struct vs_session *s, uint16_t id, bool add); /* locked */
void vs_bp_will(struct vs_worker *w, struct vs_session *s, struct vs_msg *will, int64_t at_ms);
void vs_bp_will_del(struct vs_worker *w, struct vs_session *s);
/* The will of a connected client: published `delay` seconds after a restart (s locked). */
void vs_bp_will_connected(struct vs_worker *w, struct vs_session *s, struct vs_msg *will,
			  uint32_t delay);

/* A session as store records: between the nodes of a cluster (cluster_session.h), and a
 * session that goes into this node's store (vs_bp_session_record).
 * vs_bp_session_export: s's whole state (subscriptions, queue, inflight window, incoming QoS 2
 * ids), or (!whole) its settings and subscriptions only, appended to out; s locked. Returns 0
 * or a negative error.
 * vs_bp_session_import: the session client_id rebuilt from such records (!whole: its settings
 * and subscriptions only, whatever else they hold), with one reference,
 * in no registry or trie and not yet in this node's store; NULL with *why when buf is damaged or
 * holds no such session. Messages get this node's store ids when recorded.
 * vs_bp_session_record: s's whole state into w's records of this turn (no-op without a store),
 * ending with the floor of its delivery numbers (vs_rec_session.floor), past those of the
 * sessions that ended before (b->ended_seq): their QUEUE records that another thread writes
 * late are not replayed into it. For a session not yet in the store; s locked.
 * vs_bp_session_subscribe: s's subscriptions into the trie (start-up, and a session that came
 * from another node). */
struct vs_store_buf;
int vs_bp_session_export(struct vs_broker *b, struct vs_session *s, bool whole,
			 struct vs_store_buf *out);
struct vs_session *vs_bp_session_import(struct vs_broker *b, const char *client_id, size_t idlen,
					const uint8_t *buf, size_t len, bool whole,
					const char **why);
void vs_bp_session_record(struct vs_worker *w, struct vs_session *s);
void vs_bp_session_subscribe(struct vs_broker *b, struct vs_session *s);

/* Record builders shared by the hooks and the snapshot writer (restore.c). The records hold
 * views into m / s / e. */
struct vs_rec;
void vs_bp_msg_rec(const struct vs_msg *m, uint64_t id, int64_t now_ms, int64_t now_wall,
		   struct vs_rec *r);
void vs_bp_queue_rec(const struct vs_session *s, const struct vs_qentry *e, uint64_t msg_id,
		     struct vs_rec *r);

#endif
