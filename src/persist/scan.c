/*
 * Reading store files: the record walk shared by recovery, the check tool and the fuzzer, and
 * the directory listing. Nothing here changes a file; deciding what to do about damage is the
 * caller's job (recover.c repairs, check.c reports).
 *
 * Damage classification at the first bad record: if no valid-looking record can be found
 * anywhere after it, the file was torn (a crash mid-write, or zeros from a file system that
 * extended the size before the data landed) and cutting it there loses only what was never
 * acknowledged. If valid records follow, the bytes rotted or were overwritten in the middle:
 * the rest of the file cannot be trusted in order, and the caller is told how much it loses.
 */
#include "base/vec.h"
#include "persist/format.h"

#include "base/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Resynchronising after damage looks for a valid record at every later offset; on garbage with
 * many plausible lengths that could be quadratic, so the CRC work is capped. */
#define RESYNC_BUDGET (64u << 20)

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Could a record start at p? Cheap checks before paying for the CRC. */
static int plausible(const uint8_t *p, size_t left)
{
	if (left < VS_REC_HDR_SIZE)
		return 0;
	uint32_t blen = le32(p);
	return blen <= left - VS_REC_HDR_SIZE && p[5] != 0 &&
	       ((p[4] >= 1 && p[4] <= VS_REC_TYPE_MAX) || p[4] == VS_REC_SNAP_END);
}

/* Counts valid-looking records in buf[from..len) into *count, walking on from each one found.
 * Returns 0, or -ENOMEM (a record could not be decoded for want of memory: no count). */
static int count_after(const uint8_t *buf, size_t len, size_t from, uint64_t *count)
{
	uint64_t n = 0, budget = RESYNC_BUDGET;
	uint32_t *scratch = NULL;
	size_t cap = 0, off = from;
	struct vs_rec rec;
	int rc = 0;

	while (off < len && budget > 0) {
		if (!plausible(buf + off, len - off)) {
			off++;
			continue;
		}
		uint32_t blen = le32(buf + off);
		budget = budget > blen ? budget - blen : 0;
		long k = vs_rec_decode(buf + off, len - off, &rec, &scratch, &cap);
		if (k == -ENOMEM) {
			rc = -ENOMEM;
			break;
		}
		if (k > 0) {
			n++;
			off += (size_t)k;
		} else {
			off++;
		}
	}
	free(scratch);
	*count = n;
	return rc;
}

static void note_unknown(struct vs_scan *out, const struct vs_rec *rec)
{
	out->unknown++;
	out->last_unknown_type = rec->type;
	out->last_unknown_version = rec->version;
}

int vs_scan_file(const uint8_t *buf, size_t len, char kind, vs_store_replay_fn fn, void *ctx,
		 struct vs_scan *out)
{
	memset(out, 0, sizeof(*out));
	out->size = len;
	int hrc = vs_file_hdr_check(buf, len, kind, &out->epoch, &out->format);
	if (hrc) {
		out->end = hrc == VS_ETOOBIG ? VS_SCAN_NEWER : VS_SCAN_BADHDR;
		return 0;
	}
	size_t off = VS_FILE_HDR_SIZE;
	uint32_t *scratch = NULL;
	size_t cap = 0;
	struct vs_rec rec;
	int rc = 0;

	out->valid_end = off;
	while (off < len && !out->sealed) {
		long n = vs_rec_decode(buf + off, len - off, &rec, &scratch, &cap);
		if (n == -ENOMEM)
			rc = -ENOMEM;
		if (n <= 0)
			break;
		if (rec.type == VS_REC_SNAP_END && kind == VS_FILE_KIND_SNAP && n >= 18) {
			uint32_t lo = le32(buf + off + 10), hi = le32(buf + off + 14);
			out->sealed = true;
			out->sealed_count = (uint64_t)hi << 32 | lo;
		} else if (!vs_rec_known(&rec)) {
			note_unknown(out, &rec);
		} else {
			rc = fn ? fn(ctx, &rec) : 0;
			if (rc < 0)
				break;
			out->records++;
			out->per_type[rec.type]++;
		}
		off += (size_t)n;
		out->valid_end = off;
	}
	free(scratch);
	if (rc < 0)
		return rc;
	if (off >= len) {
		out->end = VS_SCAN_CLEAN;
		return 0;
	}
	rc = count_after(buf, len, off + 1, &out->after);
	if (rc < 0)
		return rc;
	out->end = out->after ? VS_SCAN_CORRUPT : VS_SCAN_TORN;
	return 0;
}

bool vs_scan_zero_tail(const uint8_t *buf, const struct vs_scan *sc)
{
	for (size_t i = sc->valid_end; i < sc->size; i++)
		if (buf[i])
			return false;
	return sc->size > sc->valid_end;
}

/* ---- directory ---- */

void vs_store_file_name(char *out, size_t n, char kind, uint64_t epoch)
{
	const char *fmt = kind == VS_FILE_KIND_LOG    ? "log-%08llu.vlog"
			  : kind == VS_FILE_KIND_SNAP ? "snap-%08llu.vdb"
						      : "snap-%08llu.tmp";
	snprintf(out, n, fmt, (unsigned long long)epoch);
}

/* Parses "<prefix><digits><suffix>" exactly. */
static int parse_one(const char *name, const char *prefix, const char *suffix, uint64_t *epoch)
{
	size_t pl = strlen(prefix), sl = strlen(suffix), nl = strlen(name);
	if (nl <= pl + sl || strncmp(name, prefix, pl) != 0 || strcmp(name + nl - sl, suffix) != 0)
		return 0;
	uint64_t v = 0;
	for (size_t i = pl; i < nl - sl; i++) {
		if (name[i] < '0' || name[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*epoch = v;
	return 1;
}

static int parse_name(const char *name, char *kind, uint64_t *epoch)
{
	if (parse_one(name, "log-", ".vlog", epoch))
		*kind = VS_FILE_KIND_LOG;
	else if (parse_one(name, "snap-", ".vdb", epoch))
		*kind = VS_FILE_KIND_SNAP;
	else if (parse_one(name, "snap-", ".tmp", epoch))
		*kind = 'T';
	else
		return 0;
	return strlen(name) < sizeof(((struct vs_store_file *)0)->name);
}

static int cmp_file(const void *a, const void *b)
{
	const struct vs_store_file *x = a, *y = b;
	if (x->epoch != y->epoch)
		return x->epoch < y->epoch ? -1 : 1;
	/* At one epoch the snapshot comes before the log it starts. */
	return (x->kind == VS_FILE_KIND_LOG) - (y->kind == VS_FILE_KIND_LOG);
}

int vs_store_list(int dirfd, struct vs_store_file **out)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = -errno;
		close(fd);
		return e;
	}
	rewinddir(d);
	struct vs_store_file *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		struct vs_store_file f;
		if (!parse_name(de->d_name, &f.kind, &f.epoch))
			continue;
		memcpy(f.name, de->d_name, strlen(de->d_name) + 1); /* length checked by parse */
		if (VS_VEC_GROW(v, cap, n + 1, 16) < 0) {
			rc = -ENOMEM;
			break;
		}
		v[n++] = f;
	}
	closedir(d);
	if (rc) {
		free(v);
		return rc;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_file);
	*out = v;
	return (int)n;
}

int vs_store_read_file(int dirfd, const char *name, uint8_t **buf, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	uint8_t *b = NULL;
	size_t got = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	b = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (!b) {
		rc = -ENOMEM;
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, b + got, (size_t)st.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			free(b);
			goto out_close;
		}
		if (k == 0)
			break; /* shrank under us (check beside a running broker) */
		got += (size_t)k;
	}
	*buf = b;
	*len = got;
out_close:
	close(fd);
	return rc;
}
