/*
 * The persistence store: an append-only log of checksummed, versioned records plus periodic
 * snapshots, in one directory. It knows nothing of the broker: the broker turns its state
 * changes into struct vs_rec values, appends them to a per-thread struct vs_store_buf, and
 * commits the buffer once per loop turn (group commit). At start-up it replays every record
 * back through a callback and rebuilds its state from them.
 *
 * Records are idempotent state changes ("session X now has these settings", "message M is
 * queued for client C in state S", "M is no longer queued for C"). Replaying a record twice, or
 * replaying a snapshot that was taken while the log kept growing followed by that log, gives the
 * same state. That is what lets compaction run without stopping the writers.
 *
 * Guarantee: once vs_store_commit() returned 0, the records in that buffer survive a crash of
 * the process (policy never), or of the machine (policy batch; interval: all but the last
 * interval). A commit that failed keeps the records in the buffer; the caller must not
 * acknowledge anything in it and retries on its next commit. See docs/persistence.md.
 *
 * Threads: vs_store_append() touches only the caller's buffer. vs_store_commit(),
 * vs_store_rotate(), vs_store_sync() and the snapshot functions may be called from any thread
 * concurrently. vs_store_replay() must run once, before the first commit.
 */
#ifndef VS_PERSIST_STORE_H
#define VS_PERSIST_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct vs_log;

/* ---- Records ----------------------------------------------------------------------------- */

enum vs_rec_type {
	VS_REC_SESSION = 1,	/* create or replace a session's settings */
	VS_REC_SESSION_DEL = 2, /* session ended: drop it and everything it owns */
	VS_REC_SUB = 3,		/* add or replace a subscription */
	VS_REC_UNSUB = 4,	/* remove a subscription */
	VS_REC_MSG = 5,		/* a message body, shared by reference (msg_id) */
	VS_REC_RETAIN = 6,	/* topic's retained message is now msg_id */
	VS_REC_RETAIN_DEL = 7,	/* topic has no retained message */
	VS_REC_QUEUE = 8,	/* msg_id queued/inflight for a client, in this state */
	VS_REC_DEQUEUE = 9,	/* msg_id is done for a client */
	VS_REC_INQOS2 = 10,	/* incoming QoS 2 packet id received (add) or released (del) */
	VS_REC_WILL = 11,	/* client's will message, and when to publish it */
	VS_REC_WILL_DEL = 12,	/* client's will is gone (sent, cleared) */
	VS_REC_TYPE_MAX = 12,
};

/* The record layout version this build writes (and the newest it reads) for every type. A reader
 * meeting a newer version, or an unknown type, skips the record and reports it; newer writers
 * may also append fields at the end of a body without a version bump (readers ignore them). */
#define VS_REC_VERSION 1

/* A byte string view. In decoded records it points into the store's read buffer and lives until
 * the replay callback returns. For MSG's optional fields, p == NULL means "absent". */
struct vs_rec_str {
	const uint8_t *p;
	size_t len;
};

enum vs_queue_state {
	VS_QSTATE_QUEUED = 0,	    /* not yet sent */
	VS_QSTATE_WAIT_PUBACK = 1,  /* QoS 1 sent */
	VS_QSTATE_WAIT_PUBREC = 2,  /* QoS 2 sent */
	VS_QSTATE_WAIT_PUBCOMP = 3, /* QoS 2 PUBREL sent */
};

struct vs_rec_session {
	struct vs_rec_str client_id;
	uint32_t expiry_interval;   /* seconds; 0xFFFFFFFF never */
	uint8_t protocol_version;   /* 3, 4 or 5 */
	int64_t offline_since_wall; /* wall seconds the client went offline; 0 while connected */
	uint32_t flags;		    /* broker-defined bits, stored as given */
	/* Deliveries numbered before floor (vs_rec_queue.seq, in serial order: seq - floor < 0 as
	 * int32) that replay has not met by this record are over: later QUEUE records for them
	 * are ignored. Absent (has_floor false) in most SESSION records; written by a snapshot
	 * after the session's entries (a delivery that ended before the snapshot leaves no
	 * DEQUEUE behind once compaction drops the old log, and its QUEUE record may come later
	 * from another thread), and when a client id starts a new session over an old one. */
	bool has_floor;
	uint32_t floor;
};

struct vs_rec_sub {
	struct vs_rec_str client_id;
	struct vs_rec_str filter; /* as subscribed, including any $share/<group>/ prefix */
	uint8_t qos;
	uint8_t options; /* MQTT 5 subscription options byte (no-local, RAP, retain handling) */
	uint32_t sub_id; /* 0 = none */
};

struct vs_rec_msg {
	uint64_t msg_id; /* broker-assigned, unique for the store's lifetime */
	struct vs_rec_str topic;
	struct vs_rec_str payload;
	uint8_t qos;
	bool retain;
	int64_t created_wall; /* wall seconds: message expiry counts from here */
	bool has_expiry;
	uint32_t expiry_interval;
	bool has_payload_format;
	uint8_t payload_format;
	struct vs_rec_str content_type;	    /* optional (p == NULL: absent) */
	struct vs_rec_str response_topic;   /* optional */
	struct vs_rec_str correlation_data; /* optional */
	struct vs_rec_str user_props_raw;   /* optional: user properties as encoded on the wire */
	struct vs_rec_str origin_client_id; /* for no-local; may be empty */
	uint64_t sseq; /* a cluster's stream sequence of the message (0: none); appended field,
			* written only when set */
};

struct vs_rec_retain {
	struct vs_rec_str topic;
	uint64_t msg_id;  /* unused by RETAIN_DEL */
	uint64_t version; /* the writer's order of changes to this topic (0: unknown, older
			     files); replay keeps the highest. Appended field. */
};

struct vs_rec_queue {
	struct vs_rec_str client_id;
	uint64_t msg_id;
	uint8_t qos;	    /* the QoS granted to this subscriber */
	bool retain;	    /* send with RETAIN set */
	uint8_t state;	    /* enum vs_queue_state */
	uint16_t packet_id; /* 0 while queued */
	bool dup;
	const uint32_t *sub_ids; /* subscription identifiers to send with it */
	size_t n_sub_ids;	 /* at most 65535 */
	uint32_t seq; /* which delivery of msg_id to this client (the same message can be queued
			 again, e.g. retained on re-subscribe); appended field, 0 in older files */
};

struct vs_rec_dequeue {
	struct vs_rec_str client_id;
	uint64_t msg_id;
	uint32_t seq; /* the delivery it completes (see vs_rec_queue.seq); appended field */
};

struct vs_rec_inqos2 {
	struct vs_rec_str client_id;
	uint16_t packet_id;
	bool add; /* true: PUBREC sent, awaiting PUBREL; false: released */
};

struct vs_rec_will {
	struct vs_rec_str client_id;
	uint64_t msg_id;	 /* the will's MSG record; unused by WILL_DEL */
	int64_t publish_at_wall; /* wall seconds: connection loss + will delay */
};

/* One record. Set `type` and the matching union member; `version` is ignored by append (it
 * always writes VS_REC_VERSION) and filled in by replay. */
struct vs_rec {
	uint8_t type;	 /* enum vs_rec_type */
	uint8_t version; /* layout version read from disk */
	union {
		struct vs_rec_session session; /* SESSION */
		struct vs_rec_str client_id;   /* SESSION_DEL, WILL_DEL (same as will.client_id) */
		struct vs_rec_sub sub;	       /* SUB, UNSUB (only client_id and filter) */
		struct vs_rec_msg msg;	       /* MSG */
		struct vs_rec_retain retain;   /* RETAIN, RETAIN_DEL (only topic) */
		struct vs_rec_queue queue;     /* QUEUE */
		struct vs_rec_dequeue dequeue; /* DEQUEUE */
		struct vs_rec_inqos2 inqos2;   /* INQOS2 */
		struct vs_rec_will will;       /* WILL, WILL_DEL (only client_id) */
	} u;
};

/* "SESSION", "QUEUE", ... or "UNKNOWN". */
const char *vs_rec_type_name(unsigned type);

/* ---- Per-thread write buffers -------------------------------------------------------------- */

/* Encoded records waiting for a commit. Owned by one thread; the store never keeps a pointer to
 * it. Zero-initialised or vs_store_buf_init() storage is an empty buffer. */
struct vs_store_buf {
	uint8_t *data;
	size_t len; /* bytes of whole encoded records */
	size_t cap;
	size_t nrec; /* records in data[0..len) */
};

void vs_store_buf_init(struct vs_store_buf *b);
void vs_store_buf_fini(struct vs_store_buf *b);

/* Encodes r at the end of b: no lock, no syscall, no allocation once b has grown. Returns 0,
 * -ENOMEM (b unchanged), VS_ETOOBIG (a field over its limit: strings 65535 bytes, payload and
 * user properties 256 MiB) or VS_EPROTO (unknown type). */
int vs_store_append(struct vs_store_buf *b, const struct vs_rec *r);

/* Bytes r takes on disk (header included), or a negative error as vs_store_append. */
long vs_rec_encoded_size(const struct vs_rec *r);

/* ---- The store ----------------------------------------------------------------------------- */

enum vs_fsync_policy {
	VS_FSYNC_NEVER = 0,    /* write(2) only: survives kill -9, not power loss */
	VS_FSYNC_BATCH = 1,    /* fdatasync before commit returns (one per group of commits);
				* vs_store_write: by the sync thread, as soon as written */
	VS_FSYNC_INTERVAL = 2, /* fdatasync every interval_ms from a background thread */
};

struct vs_store;

/* Opens (creating if needed, mode 0700) the store directory and takes an exclusive flock on
 * DIR/lock; a second process on the same directory fails with -EWOULDBLOCK and a message naming
 * the directory. Does not read any records yet: call vs_store_replay() next. On failure, err
 * holds a one-line reason. log may be NULL (silent). Returns 0 or a negative error. */
int vs_store_open(const char *dir, enum vs_fsync_policy policy, unsigned interval_ms,
		  const struct vs_log *log, struct vs_store **out, char *err, size_t errlen);

/* Syncs (per policy, at least once), stops the sync thread, closes files, releases the lock
 * and frees the store. NULL is a no-op. Buffers are the callers' and stay untouched. */
void vs_store_close(struct vs_store *s);

/* What replay found. Everything lost is also written to the log with the file name. */
struct vs_store_replay_info {
	uint64_t records; /* passed to the callback */
	uint64_t per_type[VS_REC_TYPE_MAX + 1];
	uint64_t unknown;	  /* skipped: newer version or unknown type */
	uint64_t bytes;		  /* bytes of valid records read */
	uint64_t snapshot_epoch;  /* 0 if no snapshot was used */
	unsigned files;		  /* files read */
	unsigned truncated_tails; /* files cut back to their last valid record */
	unsigned corrupt_files;	  /* files moved aside (*.corrupt-<time>) */
	uint64_t lost_bytes;	  /* bytes after a tear or corruption, not replayed */
	uint64_t lost_records;	  /* records that looked valid after a corruption, not replayed */
};

/* Called for every valid record, in order. Return 0 to go on; a negative value stops replay
 * and is returned by vs_store_replay(). Views inside rec live until the callback returns. */
typedef int (*vs_store_replay_fn)(void *ctx, const struct vs_rec *rec);

/* Replays the newest complete snapshot, then every log segment with epoch >= the snapshot's, in
 * order. References between records are resolved by the caller at the end: a QUEUE may name a
 * MSG that comes later, and a MSG referenced by no RETAIN, QUEUE or WILL at the end is garbage.
 *
 * Damage is repaired, reported and survived, never a refusal to start: a torn tail (a record
 * running past the end of the file, or zeros to the end) is truncated at the last valid record;
 * a corrupt record with data after it makes the rest of that file untrusted: the file is
 * renamed to NAME.corrupt-<time> and NAME is rewritten holding only its valid prefix. Stale
 * snap-*.tmp files and files older than the snapshot are deleted. Returns the number of records
 * passed to fn, the callback's negative value, or -errno for an I/O error (with a log line).
 * info may be NULL. Must be called once, before the first commit; the first call also opens a
 * fresh log segment for writing. */
long vs_store_replay(struct vs_store *s, vs_store_replay_fn fn, void *ctx,
		     struct vs_store_replay_info *info);

/* Writes all of b with one write(2) to the current log segment (O_APPEND, a mutex held only
 * around the write) and, with policy batch, fdatasync()s before returning; commits that land
 * while another thread is syncing share its next fdatasync (group commit). On success b is
 * emptied (its memory kept) and 0 is returned: the records are durable per the policy. On error
 * (-ENOSPC, -EIO, -EFBIG, ...) a partial write is truncated away, b keeps all its records, the
 * store turns unhealthy, and the caller must not acknowledge them; the next commit writes them
 * again (records are idempotent, so a repeat is harmless). An empty b returns 0 at once. */
int vs_store_commit(struct vs_store *s, struct vs_store_buf *b);

/*
 * Group commit without waiting (policy batch; the broker's workers use it so that a loop turn
 * does not sleep in fdatasync). vs_store_write writes all of b with one write(2), as
 * vs_store_commit does, but returns at once with the write's sequence number (> 0; 0 for an
 * empty b), or an error as vs_store_commit (the store turns unhealthy). b is left as it is: the
 * caller empties it, or keeps it until the write is known durable, to write its records again
 * should the sync fail. With policy batch the store's sync thread then fdatasyncs everything
 * written so far (one fdatasync covers every write before it); with never and interval the
 * write is as durable as vs_store_commit would have made it.
 *
 * vs_store_durable reads, without a lock, how far the syncs got: every write with a sequence
 * number <= *synced is on stable storage, unless it is also <= *failed: an fdatasync failed
 * after it was written, and it may be lost (write its records again; never acknowledge them).
 * A write is pending while neither holds. Both only grow.
 *
 * vs_store_set_notify: fn(ctx) is called, from the sync thread or a thread that committed, each
 * time the marks moved (after they did). It must be quick and must not call into the store. Set
 * it before vs_store_replay.
 *
 * vs_store_sync_upto: waits until write seq is synced (fdatasync now if needed). Returns 0, or
 * the failure's -errno when seq was lost.
 */
int64_t vs_store_write(struct vs_store *s, const struct vs_store_buf *b);
void vs_store_durable(const struct vs_store *s, uint64_t *synced, uint64_t *failed);
void vs_store_set_notify(struct vs_store *s, void (*fn)(void *ctx), void *ctx);
int vs_store_sync_upto(struct vs_store *s, uint64_t seq);

/* False after a write or sync failed, until a later commit succeeds. */
bool vs_store_healthy(const struct vs_store *s);

/* fdatasync()s the current segment now, whatever the policy. Returns 0 or -errno. */
int vs_store_sync(struct vs_store *s);

/* ---- Compaction ---------------------------------------------------------------------------- */

/* Starts log segment epoch+1 for all writers at once (commits after this call returns land in
 * it). The previous segment is synced (unless policy never) and closed. Returns the new epoch
 * (> 0) or a negative error. */
int64_t vs_store_rotate(struct vs_store *s);

struct vs_store_snap;

/* Rotates (as vs_store_rotate) and opens DIR/snap-<new epoch>.tmp. The caller then writes its
 * whole state, as records, with vs_store_snapshot_write(); that state must include every change
 * committed before this call returned (later changes may or may not be in it: they are also in
 * the new segment). Returns 0 or a negative error; *out is NULL on error. */
int vs_store_snapshot_begin(struct vs_store *s, struct vs_store_snap **out);

/* Writes all of b to the snapshot and empties b. Returns 0 or -errno (the snapshot is then
 * doomed: call _end with commit false). */
int vs_store_snapshot_write(struct vs_store_snap *snap, struct vs_store_buf *b);

/* commit true: seals the file (an end record with the record count), fsyncs it, renames it to
 * snap-<epoch>.vdb, fsyncs the directory, then deletes older snapshots and log segments.
 * commit false: deletes the temporary file. Frees snap either way. Returns 0 or a negative
 * error (the old snapshot and logs then stay, so nothing is lost). */
int vs_store_snapshot_end(struct vs_store_snap *snap, bool commit);

/* ---- Inspection ---------------------------------------------------------------------------- */

struct vs_store_stats {
	int64_t epoch;		/* current log segment */
	uint64_t commits;	/* successful vs_store_commit() calls that wrote something */
	uint64_t records;	/* records written by them */
	uint64_t bytes;		/* bytes written by them */
	uint64_t fsyncs;	/* fdatasync() calls made */
	uint64_t write_errors;	/* failed commits */
	uint64_t segment_bytes; /* size of the current segment */
	bool healthy;
};

void vs_store_get_stats(struct vs_store *s, struct vs_store_stats *st);

/* Reads the store at dir without changing anything (no lock taken, safe beside a running
 * broker) and writes a report to out: files and their sizes, records per type, sessions,
 * subscriptions, retained topics, queued messages and their bytes, torn tails and corrupt
 * regions. Returns 0 if every file read cleanly, 1 if damage was found, or -errno. */
int vs_store_check(const char *dir, FILE *out);

/* ---- Decoding (for tests, the fuzzer and the check tool) ----------------------------------- */

/* Decodes the record at buf[0..len). Returns bytes consumed (> 0); 0 if buf holds no whole
 * record; VS_EPROTO for a bad header, CRC or body; -ENOMEM if *scratch could not grow (says
 * nothing about the record: never treat it as damage). A newer version or unknown type decodes
 * to out->type/version with an empty union and returns the consumed size: check with
 * vs_rec_known(). Sub ids are copied into *scratch (grown with realloc; free it when done). */
long vs_rec_decode(const uint8_t *buf, size_t len, struct vs_rec *out, uint32_t **scratch,
		   size_t *scratch_cap);

bool vs_rec_known(const struct vs_rec *r);

#endif
