/*
 * The store's internals, shared by store.c (writing, compaction) and recover.c (replay).
 * Internal to src/persist.
 *
 * Locks, always taken in this order: rotate_mu (epoch changes, snapshots), sync_mu (fdatasync
 * and the synced/failed marks; the segment fd cannot change while it is held), write_mu (fd,
 * write(2), sizes, sequence numbers). write_mu is held only around write(2) and ftruncate(2);
 * fdatasync runs without it, so writers keep appending while a sync is in flight.
 */
#ifndef VS_PERSIST_STORE_INT_H
#define VS_PERSIST_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "persist/store.h"

struct vs_store {
	char *dir;  /* as given to open, for messages */
	int dirfd;  /* the directory, for *at() calls and directory fsync */
	int lockfd; /* DIR/lock, holding the flock */
	enum vs_fsync_policy policy;
	unsigned interval_ms;
	const struct vs_log *log; /* may be NULL */

	pthread_mutex_t rotate_mu;
	int64_t epoch;	   /* current segment; 0 until replay opened one */
	bool snapshotting; /* one snapshot at a time */

	pthread_mutex_t sync_mu;
	uint64_t synced_seq; /* every write with seq <= this is on stable storage */
	uint64_t fail_upto;  /* every write with seq <= this may be lost (sync failed) */
	int sync_err;	     /* the -errno of that failure */
	/* synced_seq and fail_upto as other threads read them without a lock (vs_store_durable):
	 * stored under sync_mu, fail_upto before synced_seq. */
	atomic_uint_fast64_t pub_synced, pub_failed;
	void (*notify)(void *ctx); /* called when they moved (vs_store_set_notify) */
	void *notify_ctx;

	pthread_mutex_t write_mu;
	int fd;		   /* current segment (O_APPEND unless prealloc); -1 before replay */
	uint64_t seg_size; /* bytes of whole records in it (ftruncate target on error) */
	/* Policy batch: the segment is written ahead with zeros, PREALLOC bytes at a time, and
	 * records are written over them (pwrite at seg_size): an fdatasync that does not change
	 * the file's size needs no journal commit, which halves its cost (store.c). The zeros are
	 * cut at rotation and close; after a crash, replay cuts them as a torn tail. */
	bool prealloc;
	uint64_t prealloc_end; /* the file's size: seg_size, then zeros up to here */
	bool need_trunc;       /* a torn write could not be truncated yet */
	bool write_failed;     /* the last write failed */
	uint64_t write_seq;    /* count of successful writes */
	uint64_t commits, records, bytes, fsyncs, write_errors;

	atomic_bool healthy;

	/* interval and batch policies: background sync thread */
	pthread_mutex_t thr_mu;
	pthread_cond_t thr_cond;
	bool thr_stop, thr_running;
	bool thr_idle;	   /* batch: the thread waits for thr_want to grow */
	uint64_t thr_want; /* batch: the newest write vs_store_write asked to have synced */
	pthread_t thr;
};

/* Creates segment `epoch` (header written and synced, directory synced) and returns its fd
 * (O_APPEND unless s->prealloc), or -errno. */
int vs_store_new_segment(struct vs_store *s, uint64_t epoch);

/* fsync of the directory, so renames, creations and deletions are durable. */
int vs_store_sync_dir(struct vs_store *s);

/* Removes snapshots older than epoch and log segments older than epoch, and any snap-*.tmp
 * other than keep_tmp (0: none kept). Failures are logged, not returned. */
void vs_store_remove_old(struct vs_store *s, uint64_t epoch, uint64_t keep_tmp);

/* Starts the sync thread of policies interval and batch (no-op for never). Returns 0 or
 * -errno. */
int vs_store_start_writer(struct vs_store *s);

#endif
