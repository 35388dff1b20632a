/*
 * vs_store_check(): the report behind `viesti broker --check-store DIR`. Reads the same files
 * recovery would, in the same order, without changing or locking anything, and rebuilds a
 * summary of the state (sessions, subscriptions, retained topics, queued messages and the
 * bytes they hold) with small maps. Damage is reported as recovery would treat it.
 */
#include "persist/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/map.h"
#include "persist/format.h"

struct tally {
	struct vs_map sessions; /* client id -> 1 */
	struct vs_map subs;	/* client id \0 filter -> 1 */
	struct vs_map retained; /* topic -> msg id + 1 */
	struct vs_map queued;	/* client id \0 msg id -> msg id + 1 */
	struct vs_map wills;	/* client id -> msg id + 1 */
	struct vs_map msgs;	/* msg id -> payload bytes + 1 */
	uint64_t per_type[VS_REC_TYPE_MAX + 1];
	int err;
};

static void *idv(uint64_t v)
{
	return (void *)(uintptr_t)(v + 1);
}

/* Builds "a \0 b" into k (up to 65535 + 1 + 65535 bytes). Returns the key length. */
static size_t key2(uint8_t *k, struct vs_rec_str a, const void *b, size_t blen)
{
	if (a.len)
		memcpy(k, a.p, a.len);
	k[a.len] = 0;
	if (blen)
		memcpy(k + a.len + 1, b, blen);
	return a.len + 1 + blen;
}

static void put(struct tally *t, struct vs_map *m, const void *k, size_t n, void *v)
{
	if (vs_map_put(m, k, n, v, NULL) < 0)
		t->err = -ENOMEM;
}

/* Removes every key starting with prefix[0..n). */
static void drop_prefix(struct vs_map *m, const uint8_t *prefix, size_t n)
{
	size_t i = 0, klen;
	const char *key;
	void *val;

	while (vs_map_next(m, &i, &key, &klen, &val)) {
		if (klen >= n && memcmp(key, prefix, n) == 0) {
			vs_map_del(m, key, klen);
			i = 0; /* the table shifted: start over */
		}
	}
}

static int on_rec(void *ctx, const struct vs_rec *r)
{
	struct tally *t = ctx;
	static const uint8_t zero[1];
	uint8_t k[65535 * 2 + 2];
	size_t n;
	uint64_t id;

	t->per_type[r->type]++;
	switch (r->type) {
	case VS_REC_SESSION:
		put(t, &t->sessions,
		    r->u.session.client_id.p ? (const void *)r->u.session.client_id.p
					     : (const void *)zero,
		    r->u.session.client_id.len, idv(0));
		break;
	case VS_REC_SESSION_DEL:
		vs_map_del(&t->sessions, r->u.client_id.p, r->u.client_id.len);
		n = key2(k, r->u.client_id, NULL, 0);
		drop_prefix(&t->subs, k, n);
		drop_prefix(&t->queued, k, n);
		vs_map_del(&t->wills, r->u.client_id.p, r->u.client_id.len);
		break;
	case VS_REC_SUB:
	case VS_REC_UNSUB:
		n = key2(k, r->u.sub.client_id, r->u.sub.filter.p, r->u.sub.filter.len);
		if (r->type == VS_REC_SUB)
			put(t, &t->subs, k, n, idv(0));
		else
			vs_map_del(&t->subs, k, n);
		break;
	case VS_REC_MSG:
		id = r->u.msg.msg_id;
		put(t, &t->msgs, &id, 8, idv(r->u.msg.payload.len));
		break;
	case VS_REC_RETAIN:
		put(t, &t->retained,
		    r->u.retain.topic.p ? (const void *)r->u.retain.topic.p : (const void *)zero,
		    r->u.retain.topic.len, idv(r->u.retain.msg_id));
		break;
	case VS_REC_RETAIN_DEL:
		vs_map_del(&t->retained, r->u.retain.topic.p, r->u.retain.topic.len);
		break;
	case VS_REC_QUEUE:
	case VS_REC_DEQUEUE:
		id = r->type == VS_REC_QUEUE ? r->u.queue.msg_id : r->u.dequeue.msg_id;
		n = key2(k, r->u.queue.client_id, &id, 8); /* client_id first in both */
		if (r->type == VS_REC_QUEUE)
			put(t, &t->queued, k, n, idv(id));
		else
			vs_map_del(&t->queued, k, n);
		break;
	case VS_REC_WILL:
		put(t, &t->wills,
		    r->u.will.client_id.p ? (const void *)r->u.will.client_id.p
					  : (const void *)zero,
		    r->u.will.client_id.len, idv(r->u.will.msg_id));
		break;
	case VS_REC_WILL_DEL:
		vs_map_del(&t->wills, r->u.client_id.p, r->u.client_id.len);
		break;
	}
	return t->err;
}

/* Adds the payload bytes of the message a map value refers to; counts references. */
static void sum_refs(const struct tally *t, const struct vs_map *m, uint64_t *bytes,
		     uint64_t *missing, struct vs_map *live)
{
	size_t i = 0, klen;
	const char *key;
	void *val;

	while (vs_map_next(m, &i, &key, &klen, &val)) {
		uint64_t id = (uint64_t)(uintptr_t)val - 1;
		void *sz = vs_map_get(&t->msgs, &id, 8);
		if (!sz) {
			(*missing)++;
			continue;
		}
		*bytes += (uint64_t)(uintptr_t)sz - 1;
		vs_map_put(live, &id, 8, sz, NULL);
	}
}

static const char *end_name(const struct vs_scan *sc, char kind)
{
	switch (sc->end) {
	case VS_SCAN_CLEAN:
		return kind == VS_FILE_KIND_SNAP && !sc->sealed ? "INCOMPLETE (no end record)"
								: "ok";
	case VS_SCAN_TORN:
		return "torn tail (would be cut)";
	case VS_SCAN_CORRUPT:
		return "CORRUPT (rest of file would be set aside)";
	case VS_SCAN_BADHDR:
		return "DAMAGED HEADER (file would be set aside)";
	case VS_SCAN_NEWER:
		return "NEWER FORMAT (this build cannot read it)";
	}
	return "?";
}

/* Scans one file, printing its line. Returns 1 if damaged, 0 if clean, or -errno. */
static int check_file(int dirfd, const struct vs_store_file *f, bool used, struct tally *t,
		      FILE *out, struct vs_scan *sc)
{
	uint8_t *buf;
	size_t len;
	int rc = vs_store_read_file(dirfd, f->name, &buf, &len);

	if (rc) {
		fprintf(out, "  %-22s unreadable: %s\n", f->name, vs_strerror(rc));
		return rc;
	}
	rc = vs_scan_file(buf, len, f->kind == 'T' ? VS_FILE_KIND_SNAP : f->kind,
			  used ? on_rec : NULL, t, sc);
	/* The segment a broker with fsync batch writes to ends in zeros written ahead: not
	 * damage (recovery cuts them as it cuts a torn tail, with a notice). */
	bool ahead = rc >= 0 && sc->end == VS_SCAN_TORN && f->kind == VS_FILE_KIND_LOG &&
		     vs_scan_zero_tail(buf, sc);
	free(buf);
	if (rc < 0) { /* no memory: the scan stopped, *sc says nothing */
		fprintf(out, "  %-22s not checked: %s\n", f->name, vs_strerror(rc));
		return rc;
	}
	if (ahead) {
		fprintf(out,
			"  %-22s %10zu bytes %8llu records  ok, then %zu bytes of zeros (written "
			"ahead by fsync batch)\n",
			f->name, len, (unsigned long long)sc->records, len - sc->valid_end);
		return 0;
	}
	fprintf(out, "  %-22s %10zu bytes %8llu records  %s%s\n", f->name, len,
		(unsigned long long)sc->records, end_name(sc, f->kind),
		f->kind == 'T' ? " [unfinished snapshot: ignored]"
		: used	       ? ""
			       : " [obsolete]");
	if (sc->end == VS_SCAN_TORN || sc->end == VS_SCAN_CORRUPT)
		fprintf(out,
			"  %-22s damage at byte %zu: %zu bytes, %llu valid-looking records "
			"after it\n",
			"", sc->valid_end, len - sc->valid_end, (unsigned long long)sc->after);
	if (sc->unknown)
		fprintf(out, "  %-22s %llu records of unknown type/newer version\n", "",
			(unsigned long long)sc->unknown);
	return sc->end != VS_SCAN_CLEAN || (f->kind == VS_FILE_KIND_SNAP && !sc->sealed);
}

/* The snapshot recovery would start from: the newest one with a readable header. */
static uint64_t pick_snapshot(int dirfd, const struct vs_store_file *f, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		uint8_t *buf;
		size_t len;
		uint64_t epoch;
		unsigned format;
		if (f[i].kind != VS_FILE_KIND_SNAP ||
		    vs_store_read_file(dirfd, f[i].name, &buf, &len))
			continue;
		int rc = vs_file_hdr_check(buf, len, VS_FILE_KIND_SNAP, &epoch, &format);
		free(buf);
		if (rc == 0)
			return f[i].epoch;
	}
	return 0;
}

static void report(struct tally *t, FILE *out)
{
	uint64_t bytes = 0, missing = 0, rbytes = 0, wbytes = 0;
	struct vs_map live = {0};

	sum_refs(t, &t->queued, &bytes, &missing, &live);
	sum_refs(t, &t->retained, &rbytes, &missing, &live);
	sum_refs(t, &t->wills, &wbytes, &missing, &live);
	fprintf(out, "records by type:");
	for (int i = 1; i <= VS_REC_TYPE_MAX; i++)
		if (t->per_type[i])
			fprintf(out, " %s=%llu", vs_rec_type_name((unsigned)i),
				(unsigned long long)t->per_type[i]);
	fprintf(out, "\nstate after replay:\n");
	fprintf(out, "  sessions           %zu\n", t->sessions.count);
	fprintf(out, "  subscriptions      %zu\n", t->subs.count);
	fprintf(out, "  retained topics    %zu (%llu payload bytes)\n", t->retained.count,
		(unsigned long long)rbytes);
	fprintf(out, "  queued messages    %zu (%llu payload bytes)\n", t->queued.count,
		(unsigned long long)bytes);
	fprintf(out, "  wills              %zu\n", t->wills.count);
	fprintf(out, "  message bodies     %zu (%zu referenced, %zu garbage)\n", t->msgs.count,
		live.count, t->msgs.count - live.count);
	if (missing)
		fprintf(out, "  dangling refs      %llu (to messages not in the store)\n",
			(unsigned long long)missing);
	vs_map_fini(&live);
}

int vs_store_check(const char *dir, FILE *out)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct vs_store_file *f = NULL;
	struct tally t = {0};
	int n, damaged = 0;

	if (dirfd < 0) {
		int e = -errno;
		fprintf(out, "store %s: cannot open: %s\n", dir, vs_strerror(e));
		return e;
	}
	n = vs_store_list(dirfd, &f);
	if (n < 0) {
		fprintf(out, "store %s: cannot list: %s\n", dir, vs_strerror(n));
		close(dirfd);
		return n;
	}
	uint64_t snap = pick_snapshot(dirfd, f, n);
	fprintf(out, "store %s: %d files, recovery starts at %s %llu\n", dir, n,
		snap ? "snapshot" : "log epoch", (unsigned long long)snap);
	for (int i = 0; i < n; i++) {
		struct vs_scan sc;
		bool used = f[i].kind != 'T' && f[i].epoch >= snap &&
			    (f[i].kind == VS_FILE_KIND_LOG || f[i].epoch == snap);
		int rc = check_file(dirfd, &f[i], used, &t, out, &sc);
		if (rc < 0 || (rc > 0 && f[i].kind != 'T'))
			damaged = 1;
	}
	report(&t, out);
	fprintf(out, "%s\n",
		damaged ? "DAMAGE FOUND: recovery will repair it as described above"
			: "store is clean");
	vs_map_fini(&t.sessions);
	vs_map_fini(&t.subs);
	vs_map_fini(&t.retained);
	vs_map_fini(&t.queued);
	vs_map_fini(&t.wills);
	vs_map_fini(&t.msgs);
	free(f);
	close(dirfd);
	return damaged;
}
