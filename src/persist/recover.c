/*
 * Recovery: replay the newest complete snapshot and the log segments after it through the
 * caller's callback, repairing what a crash or a bad disk left behind, then open a fresh
 * segment for writing. Never refuses to start without a log line saying exactly why; the only
 * refusals are I/O errors reading a file and files written by a newer format version.
 *
 * Repairs, per file (see scan.c for how damage is classified):
 *  - torn tail of a log segment: truncated at the last whole record (a warning: normal after a
 *    crash); a header-less or empty segment (crash right after creating it) is removed;
 *  - corruption in the middle: the file is kept as NAME.corrupt-<time> for inspection and NAME
 *    is atomically replaced by its valid prefix (link + rename), so the next start sees a
 *    clean file and nothing valid is thrown away; an error line counts what was lost;
 *  - a snapshot without its end record is handled as corrupt (sealed after the repair);
 *  - a damaged file header: the whole file is moved aside; for a snapshot, the next older one
 *    (if any) is used instead.
 */
#include "persist/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "persist/format.h"
#include "persist/store_int.h"

struct replay {
	struct vs_store *s;
	vs_store_replay_fn fn;
	void *ctx;
	struct vs_store_replay_info *info;
};

/* Links name to name.corrupt-<UTC time>[-n]; fills aside. Returns 0 or -errno. */
static int keep_aside(struct vs_store *s, const char *name, char *aside, size_t n)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 0; i < 100; i++) {
		if (i == 0)
			snprintf(aside, n, "%s.corrupt-%s", name, ts);
		else
			snprintf(aside, n, "%s.corrupt-%s-%d", name, ts, i);
		if (linkat(s->dirfd, name, s->dirfd, aside, 0) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/* Replaces name by buf[0..len) (+ a seal record when seal_count >= 0) via a temporary file. */
static int rewrite(struct vs_store *s, const char *name, const uint8_t *buf, size_t len,
		   int64_t seal_count)
{
	char tmp[80];
	struct vs_store_buf b = {0};
	int rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.repair", name);
	int fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (seal_count >= 0)
		rc = vs_rec_append_snap_end(&b, (uint64_t)seal_count);
	if (!rc && (write(fd, buf, len) != (ssize_t)len ||
		    (b.len && write(fd, b.data, b.len) != (ssize_t)b.len)))
		rc = errno ? -errno : -EIO;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	vs_store_buf_fini(&b);
	if (!rc && renameat(s->dirfd, tmp, s->dirfd, name) < 0)
		rc = -errno;
	if (rc)
		unlinkat(s->dirfd, tmp, 0);
	return rc ? rc : vs_store_sync_dir(s);
}

/* Mid-file damage: keep the original aside, leave the valid prefix in place. */
static int repair_corrupt(struct replay *r, const struct vs_store_file *f, const uint8_t *buf,
			  const struct vs_scan *sc, const char *what)
{
	struct vs_store *s = r->s;
	char aside[128];
	int64_t seal = f->kind == VS_FILE_KIND_SNAP ? (int64_t)(sc->records + sc->unknown) : -1;
	int rc = keep_aside(s, f->name, aside, sizeof(aside));

	if (!rc)
		rc = rewrite(s, f->name, buf, sc->valid_end, seal);
	vs_log(s->log, VS_LOG_ERR,
	       "persistence: %s/%s is CORRUPT (%s) at byte %zu of %zu: the %zu bytes after it "
	       "(%llu records that still look valid) cannot be trusted and were NOT replayed; "
	       "%llu records before the damage were replayed",
	       s->dir, f->name, what, sc->valid_end, sc->size, sc->size - sc->valid_end,
	       (unsigned long long)sc->after, (unsigned long long)sc->records);
	if (rc)
		vs_log(s->log, VS_LOG_ERR, "persistence: could not set %s/%s aside: %s", s->dir,
		       f->name, vs_strerror(rc));
	else
		vs_log(s->log, VS_LOG_ERR,
		       "persistence: the damaged original is kept as %s/%s; %s now holds only the "
		       "valid records",
		       s->dir, aside, f->name);
	r->info->corrupt_files++;
	r->info->lost_bytes += sc->size - sc->valid_end;
	r->info->lost_records += sc->after;
	return rc;
}

static int cut_tail(struct replay *r, const struct vs_store_file *f, const uint8_t *buf,
		    const struct vs_scan *sc)
{
	struct vs_store *s = r->s;
	int fd = openat(s->dirfd, f->name, O_WRONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0 || ftruncate(fd, (off_t)sc->valid_end) < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (vs_scan_zero_tail(buf, sc))
		vs_log(s->log, rc ? VS_LOG_ERR : VS_LOG_NOTICE,
		       "persistence: %s/%s: %zu bytes of zeros after the last whole record (byte "
		       "%zu) %s: space persistence_fsync batch writes ahead, or a write that never "
		       "landed; %llu records replayed",
		       s->dir, f->name, sc->size - sc->valid_end, sc->valid_end,
		       rc ? "could not be cut" : "were cut", (unsigned long long)sc->records);
	else
		vs_log(s->log, rc ? VS_LOG_ERR : VS_LOG_WARN,
		       "persistence: %s/%s: torn tail (a write interrupted by a crash): %zu bytes "
		       "after the last whole record (byte %zu) %s; %llu records replayed",
		       s->dir, f->name, sc->size - sc->valid_end, sc->valid_end,
		       rc ? "could not be cut" : "were cut", (unsigned long long)sc->records);
	r->info->truncated_tails++;
	r->info->lost_bytes += sc->size - sc->valid_end;
	return rc;
}

/* A file whose header is damaged: nothing in it can be read. */
static void set_aside_whole(struct replay *r, const struct vs_store_file *f, size_t size)
{
	struct vs_store *s = r->s;
	char aside[128];

	if (f->kind == VS_FILE_KIND_LOG && size < VS_FILE_HDR_SIZE) {
		/* Created, then the crash came before its header landed: it never held records. */
		vs_log(s->log, VS_LOG_WARN,
		       "persistence: removing %s/%s: %zu bytes, no header "
		       "(created just before a crash)",
		       s->dir, f->name, size);
		unlinkat(s->dirfd, f->name, 0);
		return;
	}
	int rc = keep_aside(s, f->name, aside, sizeof(aside));
	if (!rc && unlinkat(s->dirfd, f->name, 0) < 0)
		rc = -errno;
	vs_log(s->log, VS_LOG_ERR,
	       "persistence: %s/%s has a damaged header: all %zu bytes of it were NOT replayed; "
	       "%s%s",
	       s->dir, f->name, size, rc ? "could not move it aside: " : "moved to ",
	       rc ? vs_strerror(rc) : aside);
	r->info->corrupt_files++;
	r->info->lost_bytes += size;
}

static void note_unknown(struct replay *r, const struct vs_store_file *f, const struct vs_scan *sc)
{
	if (!sc->unknown)
		return;
	vs_log(r->s->log, VS_LOG_WARN,
	       "persistence: %s/%s: skipped %llu records of a newer version or unknown type (last: "
	       "type %u version %u) written by a newer Viesti",
	       r->s->dir, f->name, (unsigned long long)sc->unknown, sc->last_unknown_type,
	       sc->last_unknown_version);
	r->info->unknown += sc->unknown;
}

/* Repairs after the scan of a file. Returns 0 or a negative error (I/O during repair). */
static int settle(struct replay *r, const struct vs_store_file *f, const uint8_t *buf,
		  const struct vs_scan *sc)
{
	bool snap = f->kind == VS_FILE_KIND_SNAP;

	if (sc->end == VS_SCAN_CORRUPT)
		return repair_corrupt(r, f, buf, sc,
				      snap && sc->sealed ? "data after the end "
							   "record"
							 : "bad record");
	if (snap && !sc->sealed)
		return repair_corrupt(r, f, buf, sc, "no end record: incomplete snapshot");
	if (sc->end == VS_SCAN_TORN)
		return cut_tail(r, f, buf, sc);
	if (snap && sc->sealed_count != sc->records + sc->unknown)
		vs_log(r->s->log, VS_LOG_ERR,
		       "persistence: %s/%s: end record counts %llu records, found %llu", r->s->dir,
		       f->name, (unsigned long long)sc->sealed_count,
		       (unsigned long long)(sc->records + sc->unknown));
	return 0;
}

/* Replays one file. Returns 1 if it was used, 0 if set aside (bad header), or < 0. */
static int replay_file(struct replay *r, const struct vs_store_file *f)
{
	struct vs_store *s = r->s;
	uint8_t *buf;
	size_t len;
	struct vs_scan sc;
	int rc = vs_store_read_file(s->dirfd, f->name, &buf, &len);

	if (rc) {
		vs_log(s->log, VS_LOG_ERR,
		       "persistence: cannot read %s/%s: %s; refusing to start "
		       "with part of the state missing (fix the file system or move the file away)",
		       s->dir, f->name, vs_strerror(rc));
		return rc;
	}
	rc = vs_scan_file(buf, len, f->kind, r->fn, r->ctx, &sc);
	if (rc < 0)
		goto out_free;
	if (sc.end == VS_SCAN_NEWER) {
		vs_log(
		    s->log, VS_LOG_ERR,
		    "persistence: %s/%s has format version %u; this Viesti "
		    "reads version %d: run a newer Viesti, or move the store away to start empty",
		    s->dir, f->name, sc.format, VS_FILE_FORMAT);
		rc = VS_EPROTO;
		goto out_free;
	}
	if (sc.end == VS_SCAN_BADHDR) {
		set_aside_whole(r, f, len);
		rc = 0;
		goto out_free;
	}
	if (sc.epoch != f->epoch)
		vs_log(s->log, VS_LOG_WARN, "persistence: %s/%s: header says epoch %llu", s->dir,
		       f->name, (unsigned long long)sc.epoch);
	note_unknown(r, f, &sc);
	r->info->files++;
	r->info->records += sc.records;
	r->info->bytes += sc.valid_end;
	for (int t = 0; t <= VS_REC_TYPE_MAX; t++)
		r->info->per_type[t] += sc.per_type[t];
	/* A failed repair is logged and retried at the next start; what was read stands. */
	settle(r, f, buf, &sc);
	if (f->kind == VS_FILE_KIND_LOG && sc.end == VS_SCAN_CLEAN &&
	    sc.valid_end == VS_FILE_HDR_SIZE)
		unlinkat(s->dirfd, f->name, 0); /* an empty segment from an idle run */
	rc = 1;
out_free:
	free(buf);
	return rc;
}

/* Replays the newest usable snapshot; returns its epoch (0: none), or < 0. */
static int64_t replay_snapshot(struct replay *r, const struct vs_store_file *f, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		if (f[i].kind != VS_FILE_KIND_SNAP)
			continue;
		int rc = replay_file(r, &f[i]);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return (int64_t)f[i].epoch;
	}
	return 0;
}

static int open_segment(struct vs_store *s, uint64_t epoch)
{
	int fd = vs_store_new_segment(s, epoch);
	if (fd < 0) {
		vs_log(s->log, VS_LOG_ERR, "persistence: cannot create log segment %llu in %s: %s",
		       (unsigned long long)epoch, s->dir, vs_strerror(fd));
		return fd;
	}
	pthread_mutex_lock(&s->write_mu);
	s->fd = fd;
	s->seg_size = s->prealloc_end = VS_FILE_HDR_SIZE;
	pthread_mutex_unlock(&s->write_mu);
	s->epoch = (int64_t)epoch;
	return vs_store_start_writer(s);
}

static long replay_all(struct replay *r)
{
	struct vs_store *s = r->s;
	struct vs_store_file *f = NULL;
	int n = vs_store_list(s->dirfd, &f);
	uint64_t max = 0;
	long rc = 0;

	if (n < 0) {
		vs_log(s->log, VS_LOG_ERR, "persistence: cannot list %s: %s", s->dir,
		       vs_strerror(n));
		return n;
	}
	for (int i = 0; i < n; i++)
		max = f[i].epoch > max ? f[i].epoch : max;
	int64_t snap = replay_snapshot(r, f, n);
	if (snap < 0) {
		rc = snap;
		goto out_free;
	}
	r->info->snapshot_epoch = (uint64_t)snap;
	for (int i = 0; i < n && rc >= 0; i++)
		if (f[i].kind == VS_FILE_KIND_LOG && f[i].epoch >= (uint64_t)snap)
			rc = replay_file(r, &f[i]);
	if (rc < 0)
		goto out_free;
	/* Older snapshots and logs, and unfinished snapshots, are no longer needed. */
	vs_store_remove_old(s, (uint64_t)snap, 0);
	for (int i = 0; i < n; i++)
		if (f[i].kind == 'T')
			unlinkat(s->dirfd, f[i].name, 0);
	rc = open_segment(s, max + 1);
	if (rc == 0)
		rc = (long)r->info->records;
out_free:
	free(f);
	return rc;
}

long vs_store_replay(struct vs_store *s, vs_store_replay_fn fn, void *ctx,
		     struct vs_store_replay_info *info)
{
	struct vs_store_replay_info local;
	struct replay r = {s, fn, ctx, info ? info : &local};
	long rc;

	memset(r.info, 0, sizeof(*r.info));
	pthread_mutex_lock(&s->rotate_mu);
	rc = s->epoch ? VS_ESTATE : replay_all(&r);
	pthread_mutex_unlock(&s->rotate_mu);
	if (rc >= 0)
		vs_log(s->log, VS_LOG_INFO,
		       "persistence: %s: replayed %llu records (%llu bytes) from %u files; writing "
		       "log segment %lld",
		       s->dir, (unsigned long long)r.info->records,
		       (unsigned long long)r.info->bytes, r.info->files, (long long)s->epoch);
	return rc;
}
