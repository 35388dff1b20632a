/*
 * The store's write side: opening and locking the directory, group commit of per-thread
 * buffers into the current log segment, the fsync policies, segment rotation and snapshots.
 * Replay lives in recover.c, the record encoding in record.c.
 *
 * Group commit: a commit does one write(2) of its whole buffer under write_mu, takes a
 * sequence number, then (policy batch) asks for "everything up to my sequence number synced".
 * Whoever holds sync_mu syncs everything written so far; threads that queued behind it find
 * their sequence already covered and return without a syscall. With N threads committing at
 * once this costs about one fdatasync per round instead of N.
 *
 * Failure: a short or failed write is truncated back to the last whole record (ftruncate to
 * seg_size) so the segment never holds a torn record in its middle; the caller's buffer keeps
 * every record and the next commit writes them again. A failed fdatasync marks every write up
 * to that point as possibly lost (Linux may drop dirty pages after reporting EIO once, so a
 * later fdatasync returning 0 proves nothing about them): their committers get the error and
 * write their records again.
 */
#include "persist/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "persist/format.h"
#include "persist/store_int.h"

static int mkdir_p(const char *dir)
{
	char tmp[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int take_lock(struct vs_store *s, char *err, size_t errlen)
{
	s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		int e = -errno;
		snprintf(err, errlen, "persistence: cannot open %s/lock: %s", s->dir, strerror(-e));
		return e;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		int e = -errno;
		char pid[32] = "";
		ssize_t k = pread(s->lockfd, pid, sizeof(pid) - 1, 0);
		pid[k > 0 ? k : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		if (e == -EWOULDBLOCK)
			snprintf(err, errlen,
				 "persistence: store directory %s is in use by another process%s%s "
				 "(flock on %s/lock); two brokers cannot share one store",
				 s->dir, pid[0] ? " pid " : "", pid, s->dir);
		else
			snprintf(err, errlen, "persistence: cannot lock %s/lock: %s", s->dir,
				 strerror(-e));
		return e;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(s->lockfd, 0) == 0 && pwrite(s->lockfd, pid, (size_t)n, 0) < 0)
		vs_log(s->log, VS_LOG_WARN, "persistence: cannot write pid to %s/lock", s->dir);
	return 0;
}

static void *interval_main(void *arg);

int vs_store_open(const char *dir, enum vs_fsync_policy policy, unsigned interval_ms,
		  const struct vs_log *log, struct vs_store **out, char *err, size_t errlen)
{
	struct vs_store *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		snprintf(err, errlen, "persistence: out of memory");
		return -ENOMEM;
	}
	s->policy = policy;
	s->prealloc = policy == VS_FSYNC_BATCH;
	s->interval_ms = interval_ms ? interval_ms : 1000;
	s->log = log;
	s->fd = s->lockfd = s->dirfd = -1;
	atomic_init(&s->healthy, true);
	pthread_mutex_init(&s->rotate_mu, NULL);
	pthread_mutex_init(&s->sync_mu, NULL);
	pthread_mutex_init(&s->write_mu, NULL);
	pthread_mutex_init(&s->thr_mu, NULL);
	pthread_cond_init(&s->thr_cond, NULL);
	rc = mkdir_p(dir);
	if (rc) {
		snprintf(err, errlen, "persistence: cannot create store directory %s: %s", dir,
			 strerror(-rc));
		goto out_free;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "persistence: cannot open store directory %s: %s", dir,
			 strerror(errno));
		goto out_free;
	}
	rc = take_lock(s, err, errlen);
	if (rc)
		goto out_free;
	*out = s;
	return 0;
out_free:
	vs_store_close(s);
	return rc;
}

/* ---- segments ---- */

int vs_store_sync_dir(struct vs_store *s)
{
	return fsync(s->dirfd) < 0 ? -errno : 0;
}

/* Writes all of p[0..n) to fd: at offset at (pwrite), or where the file is (at < 0: write).
 * *done says how much went, also on an error. */
static int write_at(int fd, const uint8_t *p, size_t n, int64_t at, size_t *done)
{
	*done = 0;
	while (*done < n) {
		ssize_t k = at < 0 ? write(fd, p + *done, n - *done)
				   : pwrite(fd, p + *done, n - *done, (off_t)(at + (int64_t)*done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		*done += (size_t)k;
	}
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n, size_t *done)
{
	return write_at(fd, p, n, -1, done);
}

int vs_store_new_segment(struct vs_store *s, uint64_t epoch)
{
	char name[48];
	uint8_t hdr[VS_FILE_HDR_SIZE];
	size_t done;

	vs_store_file_name(name, sizeof(name), VS_FILE_KIND_LOG, epoch);
	int fd =
	    openat(s->dirfd, name,
		   O_WRONLY | O_CREAT | O_TRUNC | (s->prealloc ? 0 : O_APPEND) | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	vs_file_hdr_encode(hdr, VS_FILE_KIND_LOG, epoch);
	int rc = write_all(fd, hdr, sizeof(hdr), &done);
	if (!rc && fdatasync(fd) < 0)
		rc = -errno;
	if (!rc)
		rc = vs_store_sync_dir(s);
	if (rc) {
		close(fd);
		unlinkat(s->dirfd, name, 0);
		return rc;
	}
	return fd;
}

/* ---- commit ---- */

/* Publishes synced_seq and fail_upto for vs_store_durable (sync_mu held). */
static void publish_marks(struct vs_store *s)
{
	atomic_store(&s->pub_failed, s->fail_upto);
	atomic_store(&s->pub_synced, s->synced_seq);
}

static void notify(struct vs_store *s)
{
	if (s->notify)
		s->notify(s->notify_ctx);
}

/* Makes every write up to seq durable. Called without write_mu. */
static int sync_upto(struct vs_store *s, uint64_t seq)
{
	int rc = 0;
	bool moved = false;

	pthread_mutex_lock(&s->sync_mu);
	if (seq <= s->fail_upto) {
		rc = s->sync_err;
	} else if (seq > s->synced_seq) {
		pthread_mutex_lock(&s->write_mu);
		int fd = s->fd;
		uint64_t target = s->write_seq;
		pthread_mutex_unlock(&s->write_mu);
		if (fdatasync(fd) == 0) {
			s->synced_seq = target;
		} else {
			rc = -errno;
			s->fail_upto = target;
			s->sync_err = rc;
		}
		publish_marks(s);
		moved = true;
		pthread_mutex_lock(&s->write_mu);
		s->fsyncs++;
		pthread_mutex_unlock(&s->write_mu);
	}
	pthread_mutex_unlock(&s->sync_mu);
	if (moved)
		notify(s);
	return rc;
}

enum { PREALLOC = 1 << 20 };

/* Writes zeros ahead of seg_size so that `need` more bytes land inside the file. Best effort:
 * on a full disk the record is written all the same, extending the file as an append would. */
static void write_ahead(struct vs_store *s, size_t need)
{
	static const uint8_t zeros[1 << 16];
	uint64_t end = s->seg_size + need;
	if (end <= s->prealloc_end)
		return;
	end = (end + PREALLOC - 1) / PREALLOC * PREALLOC + PREALLOC;
	while (s->prealloc_end < end) {
		size_t n = end - s->prealloc_end < sizeof(zeros) ? (size_t)(end - s->prealloc_end)
								 : sizeof(zeros);
		ssize_t k = pwrite(s->fd, zeros, n, (off_t)s->prealloc_end);
		if (k <= 0)
			break;
		s->prealloc_end += (uint64_t)k;
	}
}

/* Cuts the segment back to seg_size (its zeros written ahead too). */
static int cut_segment(struct vs_store *s)
{
	if (ftruncate(s->fd, (off_t)s->seg_size) < 0)
		return -errno;
	s->prealloc_end = s->seg_size;
	return 0;
}

/* One write(2) of b under write_mu. Returns the write's sequence number (> 0) or -errno. */
static int64_t write_locked(struct vs_store *s, const struct vs_store_buf *b)
{
	size_t done;
	int rc;

	if (s->need_trunc) {
		rc = cut_segment(s);
		if (rc)
			return rc;
		s->need_trunc = false;
	}
	if (s->prealloc) {
		write_ahead(s, b->len);
		rc = write_at(s->fd, b->data, b->len, (int64_t)s->seg_size, &done);
	} else {
		rc = write_all(s->fd, b->data, b->len, &done);
	}
	if (rc) {
		/* Cut a torn record off so the segment stays a sequence of whole records. */
		if ((done || s->prealloc_end > s->seg_size) && cut_segment(s) < 0)
			s->need_trunc = true;
		return rc;
	}
	s->seg_size += b->len;
	if (s->prealloc_end < s->seg_size)
		s->prealloc_end = s->seg_size;
	s->commits++;
	s->records += b->nrec;
	s->bytes += b->len;
	return (int64_t)++s->write_seq;
}

/* Writes b (not emptied). Returns the write's sequence number or -errno, with the store's
 * health and log line on failure. */
static int64_t write_buf(struct vs_store *s, const struct vs_store_buf *b)
{
	pthread_mutex_lock(&s->write_mu);
	int64_t seq = s->fd >= 0 ? write_locked(s, b) : VS_ESTATE;
	if (seq < 0)
		s->write_errors++;
	s->write_failed = seq < 0;
	pthread_mutex_unlock(&s->write_mu);
	return seq;
}

static void set_unhealthy(struct vs_store *s, int rc)
{
	if (atomic_exchange(&s->healthy, false))
		vs_log(s->log, VS_LOG_ERR,
		       "persistence: writing to %s failed: %s; not acknowledging until a "
		       "write succeeds",
		       s->dir, vs_strerror(rc));
}

static void set_healthy(struct vs_store *s)
{
	if (!atomic_load_explicit(&s->healthy, memory_order_relaxed) &&
	    !atomic_exchange(&s->healthy, true))
		vs_log(s->log, VS_LOG_NOTICE, "persistence: writing to %s works again", s->dir);
}

int vs_store_commit(struct vs_store *s, struct vs_store_buf *b)
{
	int64_t seq;
	int rc = 0;

	if (b->len == 0)
		return 0;
	seq = write_buf(s, b);
	if (seq < 0) {
		rc = (int)seq;
	} else if (s->policy == VS_FSYNC_BATCH) {
		rc = sync_upto(s, (uint64_t)seq);
	}
	if (rc) {
		set_unhealthy(s, rc);
		return rc;
	}
	set_healthy(s);
	b->len = 0;
	b->nrec = 0;
	return 0;
}

int64_t vs_store_write(struct vs_store *s, const struct vs_store_buf *b)
{
	if (b->len == 0)
		return 0;
	int64_t seq = write_buf(s, b);
	if (seq < 0) {
		set_unhealthy(s, (int)seq);
		return seq;
	}
	if (s->policy != VS_FSYNC_BATCH) {
		set_healthy(s);
		return seq;
	}
	/* The sync thread takes it from here (batch_main). */
	pthread_mutex_lock(&s->thr_mu);
	if ((uint64_t)seq > s->thr_want)
		s->thr_want = (uint64_t)seq;
	bool idle = s->thr_idle;
	pthread_mutex_unlock(&s->thr_mu);
	if (idle)
		pthread_cond_signal(&s->thr_cond);
	return seq;
}

void vs_store_durable(const struct vs_store *s, uint64_t *synced, uint64_t *failed)
{
	struct vs_store *m = (struct vs_store *)s;
	/* synced first: a failure published before a later success is then seen too. */
	*synced = atomic_load(&m->pub_synced);
	*failed = atomic_load(&m->pub_failed);
}

int vs_store_sync_upto(struct vs_store *s, uint64_t seq)
{
	int rc = sync_upto(s, seq);
	if (rc)
		set_unhealthy(s, rc);
	return rc;
}

void vs_store_set_notify(struct vs_store *s, void (*fn)(void *ctx), void *ctx)
{
	s->notify = fn;
	s->notify_ctx = ctx;
}

bool vs_store_healthy(const struct vs_store *s)
{
	return atomic_load(&((struct vs_store *)s)->healthy);
}

int vs_store_sync(struct vs_store *s)
{
	pthread_mutex_lock(&s->write_mu);
	uint64_t seq = s->write_seq;
	bool open = s->fd >= 0;
	pthread_mutex_unlock(&s->write_mu);
	if (!open)
		return VS_ESTATE;
	/* seq + 1 > synced forces a sync even when nothing new was written. */
	pthread_mutex_lock(&s->sync_mu);
	int fd = s->fd, rc = fdatasync(fd) < 0 ? -errno : 0;
	bool moved = !rc && s->synced_seq < seq;
	if (moved) {
		s->synced_seq = seq;
		publish_marks(s);
	}
	pthread_mutex_unlock(&s->sync_mu);
	if (moved)
		notify(s);
	return rc;
}

/* ---- interval policy ---- */

static void *interval_main(void *arg)
{
	struct vs_store *s = arg;

	pthread_mutex_lock(&s->thr_mu);
	while (!s->thr_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += s->interval_ms / 1000;
		ts.tv_nsec += (long)(s->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->thr_cond, &s->thr_mu, &ts);
		if (s->thr_stop)
			break;
		pthread_mutex_unlock(&s->thr_mu);
		pthread_mutex_lock(&s->write_mu);
		uint64_t seq = s->write_seq;
		pthread_mutex_unlock(&s->write_mu);
		if (seq && sync_upto(s, seq) < 0 && atomic_exchange(&s->healthy, false))
			vs_log(s->log, VS_LOG_ERR, "persistence: fdatasync in %s failed", s->dir);
		pthread_mutex_lock(&s->thr_mu);
	}
	pthread_mutex_unlock(&s->thr_mu);
	return NULL;
}

/*
 * Policy batch, for vs_store_write: syncs whatever has been written, as soon as it has been
 * written; one fdatasync covers every write before it, so the writes made while one runs share
 * the next (group commit, as in sync_upto). Whoever waits for a write (vs_store_set_notify's
 * callback) learns when its sequence number is synced, or failed.
 */
static void *batch_main(void *arg)
{
	struct vs_store *s = arg;

	pthread_mutex_lock(&s->thr_mu);
	while (!s->thr_stop) {
		uint64_t want = s->thr_want;
		if (want <= atomic_load(&s->pub_synced) || want <= atomic_load(&s->pub_failed)) {
			s->thr_idle = true;
			pthread_cond_wait(&s->thr_cond, &s->thr_mu);
			s->thr_idle = false;
			continue;
		}
		pthread_mutex_unlock(&s->thr_mu);
		int rc = sync_upto(s, want);
		if (rc < 0) {
			set_unhealthy(s, rc);
		} else {
			pthread_mutex_lock(&s->write_mu);
			bool failed = s->write_failed;
			pthread_mutex_unlock(&s->write_mu);
			if (!failed)
				set_healthy(s);
		}
		pthread_mutex_lock(&s->thr_mu);
	}
	pthread_mutex_unlock(&s->thr_mu);
	return NULL;
}

int vs_store_start_writer(struct vs_store *s)
{
	if (s->policy == VS_FSYNC_NEVER || s->thr_running)
		return 0;
	int rc = pthread_create(&s->thr, NULL,
				s->policy == VS_FSYNC_BATCH ? batch_main : interval_main, s);
	if (rc)
		return -rc;
	s->thr_running = true;
	return 0;
}

void vs_store_close(struct vs_store *s)
{
	if (!s)
		return;
	if (s->thr_running) {
		pthread_mutex_lock(&s->thr_mu);
		s->thr_stop = true;
		pthread_cond_signal(&s->thr_cond);
		pthread_mutex_unlock(&s->thr_mu);
		pthread_join(s->thr, NULL);
	}
	if (s->fd >= 0) {
		if (s->prealloc_end > s->seg_size && cut_segment(s) < 0)
			vs_log(s->log, VS_LOG_WARN, "persistence: cannot cut %s's last segment: %s",
			       s->dir, strerror(errno));
		if (fdatasync(s->fd) < 0)
			vs_log(s->log, VS_LOG_ERR, "persistence: final fdatasync in %s failed: %s",
			       s->dir, strerror(errno));
		close(s->fd);
	}
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->rotate_mu);
	pthread_mutex_destroy(&s->sync_mu);
	pthread_mutex_destroy(&s->write_mu);
	pthread_mutex_destroy(&s->thr_mu);
	pthread_cond_destroy(&s->thr_cond);
	free(s->dir);
	free(s);
}

/* ---- rotation and snapshots ---- */

/* Switches writers to segment epoch+1. Called with rotate_mu held. */
static int64_t rotate_locked(struct vs_store *s)
{
	if (s->epoch == 0)
		return VS_ESTATE;
	int64_t epoch = s->epoch + 1;
	int fd = vs_store_new_segment(s, (uint64_t)epoch);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&s->sync_mu);
	pthread_mutex_lock(&s->write_mu);
	int old = s->fd;
	uint64_t seq = s->write_seq;
	if (s->prealloc_end > s->seg_size)
		cut_segment(s); /* its zeros written ahead; else cut at replay */
	s->fd = fd;
	s->seg_size = s->prealloc_end = VS_FILE_HDR_SIZE;
	s->need_trunc = false; /* a torn write in the old segment is cut at replay */
	pthread_mutex_unlock(&s->write_mu);
	if (s->policy == VS_FSYNC_NEVER || fdatasync(old) == 0) {
		if (s->synced_seq < seq && s->policy != VS_FSYNC_NEVER)
			s->synced_seq = seq;
	} else {
		s->fail_upto = seq;
		s->sync_err = -errno;
	}
	publish_marks(s);
	pthread_mutex_unlock(&s->sync_mu);
	notify(s);
	close(old);
	s->epoch = epoch;
	return epoch;
}

int64_t vs_store_rotate(struct vs_store *s)
{
	pthread_mutex_lock(&s->rotate_mu);
	int64_t rc = rotate_locked(s);
	pthread_mutex_unlock(&s->rotate_mu);
	return rc;
}

struct vs_store_snap {
	struct vs_store *s;
	int fd;
	uint64_t epoch;
	uint64_t records;
	int err; /* first write error: the snapshot is doomed */
};

int vs_store_snapshot_begin(struct vs_store *s, struct vs_store_snap **out)
{
	struct vs_store_snap *sn = calloc(1, sizeof(*sn));
	char name[48];
	uint8_t hdr[VS_FILE_HDR_SIZE];
	size_t done;
	int rc;

	*out = NULL;
	if (!sn)
		return -ENOMEM;
	pthread_mutex_lock(&s->rotate_mu);
	if (s->snapshotting) {
		pthread_mutex_unlock(&s->rotate_mu);
		free(sn);
		return VS_ESTATE;
	}
	int64_t epoch = rotate_locked(s);
	if (epoch > 0)
		s->snapshotting = true;
	pthread_mutex_unlock(&s->rotate_mu);
	if (epoch < 0) {
		free(sn);
		return (int)epoch;
	}
	sn->s = s;
	sn->epoch = (uint64_t)epoch;
	vs_store_file_name(name, sizeof(name), 'T', sn->epoch);
	sn->fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (sn->fd < 0) {
		rc = -errno;
		goto out_fail;
	}
	vs_file_hdr_encode(hdr, VS_FILE_KIND_SNAP, sn->epoch);
	rc = write_all(sn->fd, hdr, sizeof(hdr), &done);
	if (rc)
		goto out_fail;
	*out = sn;
	return 0;
out_fail:
	vs_log(s->log, VS_LOG_ERR, "persistence: cannot start snapshot %s in %s: %s", name, s->dir,
	       vs_strerror(rc));
	sn->err = rc;
	vs_store_snapshot_end(sn, false);
	return rc;
}

int vs_store_snapshot_write(struct vs_store_snap *sn, struct vs_store_buf *b)
{
	size_t done;

	if (sn->err)
		return sn->err;
	if (b->len) {
		sn->err = write_all(sn->fd, b->data, b->len, &done);
		if (sn->err)
			return sn->err;
	}
	sn->records += b->nrec;
	b->len = 0;
	b->nrec = 0;
	return 0;
}

static int seal_snapshot(struct vs_store_snap *sn, const char *tmp, const char *final)
{
	struct vs_store_buf b = {0};
	size_t done;
	int rc = vs_rec_append_snap_end(&b, sn->records);

	if (!rc)
		rc = write_all(sn->fd, b.data, b.len, &done);
	vs_store_buf_fini(&b);
	if (!rc && fsync(sn->fd) < 0)
		rc = -errno;
	if (!rc && renameat(sn->s->dirfd, tmp, sn->s->dirfd, final) < 0)
		rc = -errno;
	if (!rc)
		rc = vs_store_sync_dir(sn->s);
	return rc;
}

int vs_store_snapshot_end(struct vs_store_snap *sn, bool commit)
{
	struct vs_store *s = sn->s;
	char tmp[48], final[48];
	int rc = sn->err;

	vs_store_file_name(tmp, sizeof(tmp), 'T', sn->epoch);
	vs_store_file_name(final, sizeof(final), VS_FILE_KIND_SNAP, sn->epoch);
	if (commit && !rc)
		rc = seal_snapshot(sn, tmp, final);
	if (sn->fd >= 0)
		close(sn->fd);
	if (!commit || rc) {
		unlinkat(s->dirfd, tmp, 0);
		if (rc)
			vs_log(
			    s->log, VS_LOG_ERR,
			    "persistence: snapshot %s in %s failed (%s); the previous snapshot and "
			    "logs are kept",
			    final, s->dir, vs_strerror(rc));
	} else {
		vs_store_remove_old(s, sn->epoch, 0);
		vs_log(s->log, VS_LOG_INFO, "persistence: wrote %s (%llu records)", final,
		       (unsigned long long)sn->records);
	}
	pthread_mutex_lock(&s->rotate_mu);
	s->snapshotting = false;
	pthread_mutex_unlock(&s->rotate_mu);
	free(sn);
	return commit ? rc : 0;
}

void vs_store_remove_old(struct vs_store *s, uint64_t epoch, uint64_t keep_tmp)
{
	struct vs_store_file *f = NULL;
	int n = vs_store_list(s->dirfd, &f);
	bool removed = false;

	for (int i = 0; i < n; i++) {
		bool old = f[i].epoch < epoch && f[i].kind != 'T';
		bool tmp = f[i].kind == 'T' && f[i].epoch != keep_tmp && f[i].epoch <= epoch;
		if (!old && !tmp)
			continue;
		if (unlinkat(s->dirfd, f[i].name, 0) < 0)
			vs_log(s->log, VS_LOG_WARN, "persistence: cannot remove %s/%s: %s", s->dir,
			       f[i].name, strerror(errno));
		else
			removed = true;
	}
	free(f);
	if (removed)
		vs_store_sync_dir(s);
}

void vs_store_get_stats(struct vs_store *s, struct vs_store_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->rotate_mu);
	st->epoch = s->epoch;
	pthread_mutex_unlock(&s->rotate_mu);
	pthread_mutex_lock(&s->write_mu);
	st->commits = s->commits;
	st->records = s->records;
	st->bytes = s->bytes;
	st->fsyncs = s->fsyncs;
	st->write_errors = s->write_errors;
	st->segment_bytes = s->seg_size;
	pthread_mutex_unlock(&s->write_mu);
	st->healthy = atomic_load(&s->healthy);
}
