/*
 * Record encoding and decoding: struct vs_rec <-> bytes. Encoding runs in two passes over the
 * same code, one that only counts (w.p == NULL) and one that writes, so the size computation
 * and the layout can never disagree. Decoding produces views into the caller's bytes and never
 * allocates except to align subscription identifiers into the caller's scratch array.
 *
 * Bodies (see docs/persistence.md): strings are a u16 length and bytes ("s16"), payloads and
 * user properties a u32 length and bytes ("s32"). A reader ignores bytes after the fields it
 * knows, so a newer writer may append fields without changing the record version.
 */
#include "persist/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "persist/crc32c.h"
#include "persist/format.h"

#define MAX_S16 0xffffu
#define MAX_S32 (256u << 20)

/* MSG flag bits */
#define MF_RETAIN 0x01
#define MF_EXPIRY 0x02
#define MF_PFI	  0x04
#define MF_CTYPE  0x08
#define MF_RTOPIC 0x10
#define MF_CORR	  0x20
#define MF_UPROPS 0x40

/* ---- writer ---- */

struct wr {
	uint8_t *p; /* NULL: count only */
	size_t n;   /* bytes the fields take so far (written or not) */
	int err;
	size_t cap; /* bytes p has room for: fields past it are counted, not written */
};

/* Inlined: a record is a dozen small fields, and a call per field cost more than the field. */
#define PUT_INLINE static inline __attribute__((always_inline))

PUT_INLINE void put(struct wr *w, const void *src, size_t k)
{
	if (w->p && k && w->n <= w->cap && w->cap - w->n >= k)
		memcpy(w->p + w->n, src, k);
	w->n += k;
}

PUT_INLINE void put_u8(struct wr *w, uint8_t v)
{
	put(w, &v, 1);
}

PUT_INLINE void put_u16(struct wr *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	put(w, b, 2);
}

PUT_INLINE void put_u32(struct wr *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(w, b, 4);
}

PUT_INLINE void put_u64(struct wr *w, uint64_t v)
{
	put_u32(w, (uint32_t)v);
	put_u32(w, (uint32_t)(v >> 32));
}

PUT_INLINE void put_str(struct wr *w, struct vs_rec_str s, size_t max)
{
	if (s.len > max) {
		w->err = VS_ETOOBIG;
		return;
	}
	if (max == MAX_S16)
		put_u16(w, (uint16_t)s.len);
	else
		put_u32(w, (uint32_t)s.len);
	put(w, s.p, s.len);
}

static uint8_t msg_flags(const struct vs_rec_msg *m)
{
	return (m->retain ? MF_RETAIN : 0) | (m->has_expiry ? MF_EXPIRY : 0) |
	       (m->has_payload_format ? MF_PFI : 0) | (m->content_type.p ? MF_CTYPE : 0) |
	       (m->response_topic.p ? MF_RTOPIC : 0) | (m->correlation_data.p ? MF_CORR : 0) |
	       (m->user_props_raw.p ? MF_UPROPS : 0);
}

static void body_msg(struct wr *w, const struct vs_rec_msg *m)
{
	uint8_t f = msg_flags(m);

	put_u64(w, m->msg_id);
	put_u8(w, m->qos);
	put_u8(w, f);
	put_u64(w, (uint64_t)m->created_wall);
	put_u32(w, m->has_expiry ? m->expiry_interval : 0);
	put_u8(w, m->has_payload_format ? m->payload_format : 0);
	put_str(w, m->topic, MAX_S16);
	put_str(w, m->origin_client_id, MAX_S16);
	if (f & MF_CTYPE)
		put_str(w, m->content_type, MAX_S16);
	if (f & MF_RTOPIC)
		put_str(w, m->response_topic, MAX_S16);
	if (f & MF_CORR)
		put_str(w, m->correlation_data, MAX_S16);
	if (f & MF_UPROPS)
		put_str(w, m->user_props_raw, MAX_S32);
	put_str(w, m->payload, MAX_S32);
	if (m->sseq) /* appended after the first layout: optional for readers */
		put_u64(w, m->sseq);
}

static void body_queue(struct wr *w, const struct vs_rec_queue *q)
{
	put_str(w, q->client_id, MAX_S16);
	put_u64(w, q->msg_id);
	put_u8(w, (uint8_t)((q->qos & 3) | (q->retain ? 0x04 : 0) | (q->dup ? 0x08 : 0) |
			    ((q->state & 3) << 4)));
	put_u16(w, q->packet_id);
	if (q->n_sub_ids > 0xffff) {
		w->err = VS_ETOOBIG;
		return;
	}
	put_u16(w, (uint16_t)q->n_sub_ids);
	for (size_t i = 0; i < q->n_sub_ids; i++)
		put_u32(w, q->sub_ids[i]);
	put_u32(w, q->seq); /* appended after the first layout: optional for readers */
}

/* The body of r (no header). Sets w->err for an unknown type or an oversized field. */
static void body(struct wr *w, const struct vs_rec *r)
{
	const struct vs_rec_session *se = &r->u.session;

	switch (r->type) {
	case VS_REC_SESSION:
		put_str(w, se->client_id, MAX_S16);
		put_u32(w, se->expiry_interval);
		put_u8(w, se->protocol_version);
		put_u64(w, (uint64_t)se->offline_since_wall);
		put_u32(w, se->flags);
		if (se->has_floor)
			put_u32(w, se->floor); /* appended: older readers ignore it */
		break;
	case VS_REC_SESSION_DEL:
	case VS_REC_WILL_DEL:
		put_str(w, r->u.client_id, MAX_S16);
		break;
	case VS_REC_SUB:
	case VS_REC_UNSUB:
		put_str(w, r->u.sub.client_id, MAX_S16);
		put_str(w, r->u.sub.filter, MAX_S16);
		if (r->type == VS_REC_UNSUB)
			break;
		put_u8(w, r->u.sub.qos);
		put_u8(w, r->u.sub.options);
		put_u32(w, r->u.sub.sub_id);
		break;
	case VS_REC_MSG:
		body_msg(w, &r->u.msg);
		break;
	case VS_REC_RETAIN:
	case VS_REC_RETAIN_DEL:
		put_str(w, r->u.retain.topic, MAX_S16);
		put_u64(w, r->type == VS_REC_RETAIN ? r->u.retain.msg_id : 0);
		put_u64(w, r->u.retain.version); /* appended: optional for readers */
		break;
	case VS_REC_QUEUE:
		body_queue(w, &r->u.queue);
		break;
	case VS_REC_DEQUEUE:
		put_str(w, r->u.dequeue.client_id, MAX_S16);
		put_u64(w, r->u.dequeue.msg_id);
		put_u32(w, r->u.dequeue.seq); /* appended: optional for readers */
		break;
	case VS_REC_INQOS2:
		put_str(w, r->u.inqos2.client_id, MAX_S16);
		put_u16(w, r->u.inqos2.packet_id);
		put_u8(w, r->u.inqos2.add ? 1 : 0);
		break;
	case VS_REC_WILL:
		put_str(w, r->u.will.client_id, MAX_S16);
		put_u64(w, r->u.will.msg_id);
		put_u64(w, (uint64_t)r->u.will.publish_at_wall);
		break;
	default:
		w->err = VS_EPROTO;
	}
}

long vs_rec_encoded_size(const struct vs_rec *r)
{
	struct wr w = {0};

	body(&w, r);
	if (w.err)
		return w.err;
	return (long)(VS_REC_HDR_SIZE + w.n);
}

/* Fills the record header in front of a body of blen bytes at hdr + VS_REC_HDR_SIZE. */
static void seal(uint8_t *hdr, uint8_t type, size_t blen)
{
	struct wr w = {hdr, 0, 0, VS_REC_HDR_SIZE};

	put_u32(&w, (uint32_t)blen);
	put_u8(&w, type);
	put_u8(&w, VS_REC_VERSION);
	uint32_t crc = vs_crc32c(0, hdr, 6);
	crc = vs_crc32c(crc, hdr + VS_REC_HDR_SIZE, blen);
	put_u32(&w, crc);
}

static int buf_reserve(struct vs_store_buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < extra) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

int vs_store_append(struct vs_store_buf *b, const struct vs_rec *r)
{
	/* One pass when the buffer has room, which once it has grown is nearly always: fields
	 * that do not fit are only counted, and the record is written again once there is room. */
	for (;;) {
		size_t room = b->cap - b->len;
		uint8_t *hdr = room > VS_REC_HDR_SIZE ? b->data + b->len : NULL;
		struct wr w = {hdr ? hdr + VS_REC_HDR_SIZE : NULL, 0, 0,
			       hdr ? room - VS_REC_HDR_SIZE : 0};
		body(&w, r);
		if (w.err)
			return w.err;
		if (w.p && w.n <= w.cap) {
			seal(hdr, r->type, w.n);
			b->len += VS_REC_HDR_SIZE + w.n;
			b->nrec++;
			return 0;
		}
		int rc = buf_reserve(b, VS_REC_HDR_SIZE + w.n);
		if (rc)
			return rc;
	}
}

int vs_rec_append_snap_end(struct vs_store_buf *b, uint64_t count)
{
	int rc = buf_reserve(b, VS_REC_HDR_SIZE + 8);
	if (rc)
		return rc;
	uint8_t *hdr = b->data + b->len;
	struct wr w = {hdr + VS_REC_HDR_SIZE, 0, 0, 8};
	put_u64(&w, count);
	seal(hdr, VS_REC_SNAP_END, 8);
	b->len += VS_REC_HDR_SIZE + 8;
	b->nrec++;
	return 0;
}

void vs_store_buf_init(struct vs_store_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void vs_store_buf_fini(struct vs_store_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- file header ---- */

void vs_file_hdr_encode(uint8_t *out, char kind, uint64_t epoch)
{
	struct wr w = {out, 0, 0, VS_FILE_HDR_SIZE};

	put(&w, "VSDB", 4);
	put_u8(&w, (uint8_t)kind);
	put_u8(&w, VS_FILE_FORMAT);
	put_u16(&w, 0);
	put_u64(&w, epoch);
	put_u32(&w, vs_crc32c(0, out, 16));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

int vs_file_hdr_check(const uint8_t *p, size_t len, char kind, uint64_t *epoch, unsigned *format)
{
	if (len < VS_FILE_HDR_SIZE || memcmp(p, "VSDB", 4) != 0 || p[4] != (uint8_t)kind)
		return VS_EPROTO;
	if (get_u32(p + 16) != vs_crc32c(0, p, 16))
		return VS_EPROTO;
	*format = p[5];
	*epoch = get_u64(p + 8);
	return p[5] > VS_FILE_FORMAT ? VS_ETOOBIG : 0;
}

/* ---- reader ---- */

struct rd {
	const uint8_t *p, *end;
	int bad;
	bool nomem; /* the scratch array could not grow: the record itself may be fine */
};

static const uint8_t *take(struct rd *r, size_t k)
{
	if (r->bad || (size_t)(r->end - r->p) < k) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *q = r->p;
	r->p += k;
	return q;
}

/* Fields appended to a layout after its first version: read when the body has them. */
static bool has(const struct rd *r, size_t k)
{
	return !r->bad && (size_t)(r->end - r->p) >= k;
}

static uint8_t get8(struct rd *r)
{
	const uint8_t *q = take(r, 1);
	return q ? q[0] : 0;
}

static uint16_t get16(struct rd *r)
{
	const uint8_t *q = take(r, 2);
	return q ? (uint16_t)(q[0] | q[1] << 8) : 0;
}

static uint32_t get32(struct rd *r)
{
	const uint8_t *q = take(r, 4);
	return q ? get_u32(q) : 0;
}

static uint64_t get64(struct rd *r)
{
	const uint8_t *q = take(r, 8);
	return q ? get_u64(q) : 0;
}

/* A string view; never NULL when present, so "present but empty" survives. */
static struct vs_rec_str get_str(struct rd *r, int wide)
{
	struct vs_rec_str s = {NULL, 0};
	size_t n = wide ? get32(r) : get16(r);
	const uint8_t *q = take(r, n);

	if (q) {
		s.p = q;
		s.len = n;
	}
	return s;
}

static struct vs_rec_str get_opt(struct rd *r, uint8_t flags, uint8_t bit, int wide)
{
	struct vs_rec_str none = {NULL, 0};
	return (flags & bit) ? get_str(r, wide) : none;
}

static void dec_msg(struct rd *r, struct vs_rec_msg *m)
{
	m->msg_id = get64(r);
	m->qos = get8(r);
	uint8_t f = get8(r);
	m->retain = f & MF_RETAIN;
	m->has_expiry = f & MF_EXPIRY;
	m->has_payload_format = f & MF_PFI;
	m->created_wall = (int64_t)get64(r);
	m->expiry_interval = get32(r);
	m->payload_format = get8(r);
	m->topic = get_str(r, 0);
	m->origin_client_id = get_str(r, 0);
	m->content_type = get_opt(r, f, MF_CTYPE, 0);
	m->response_topic = get_opt(r, f, MF_RTOPIC, 0);
	m->correlation_data = get_opt(r, f, MF_CORR, 0);
	m->user_props_raw = get_opt(r, f, MF_UPROPS, 1);
	m->payload = get_str(r, 1);
	m->sseq = has(r, 8) ? get64(r) : 0;
	if (m->qos > 2)
		r->bad = 1;
}

static void dec_queue(struct rd *r, struct vs_rec_queue *q, uint32_t **scratch, size_t *cap)
{
	q->client_id = get_str(r, 0);
	q->msg_id = get64(r);
	uint8_t bits = get8(r);
	q->qos = bits & 3;
	q->retain = bits & 0x04;
	q->dup = bits & 0x08;
	q->state = (bits >> 4) & 3;
	q->packet_id = get16(r);
	size_t n = get16(r);
	const uint8_t *ids = take(r, n * 4);
	if (!ids || q->qos > 2)
		goto bad;
	if (n > *cap) {
		uint32_t *a = realloc(*scratch, n * sizeof(**scratch));
		if (!a) {
			r->nomem = true; /* not damage: the caller must not repair anything */
			goto bad;
		}
		*scratch = a;
		*cap = n;
	}
	for (size_t i = 0; i < n; i++)
		(*scratch)[i] = get_u32(ids + 4 * i);
	q->sub_ids = n ? *scratch : NULL;
	q->n_sub_ids = n;
	q->seq = has(r, 4) ? get32(r) : 0;
	return;
bad:
	r->bad = 1;
}

static void dec_body(struct rd *r, struct vs_rec *o, uint32_t **scratch, size_t *cap)
{
	switch (o->type) {
	case VS_REC_SESSION:
		o->u.session.client_id = get_str(r, 0);
		o->u.session.expiry_interval = get32(r);
		o->u.session.protocol_version = get8(r);
		o->u.session.offline_since_wall = (int64_t)get64(r);
		o->u.session.flags = get32(r);
		o->u.session.has_floor = has(r, 4);
		o->u.session.floor = o->u.session.has_floor ? get32(r) : 0;
		break;
	case VS_REC_SESSION_DEL:
	case VS_REC_WILL_DEL:
		o->u.client_id = get_str(r, 0);
		break;
	case VS_REC_SUB:
	case VS_REC_UNSUB:
		o->u.sub.client_id = get_str(r, 0);
		o->u.sub.filter = get_str(r, 0);
		if (o->type == VS_REC_UNSUB)
			break;
		o->u.sub.qos = get8(r);
		o->u.sub.options = get8(r);
		o->u.sub.sub_id = get32(r);
		break;
	case VS_REC_MSG:
		dec_msg(r, &o->u.msg);
		break;
	case VS_REC_RETAIN:
	case VS_REC_RETAIN_DEL:
		o->u.retain.topic = get_str(r, 0);
		/* The first layout had the id only in RETAIN; later ones always, then a version. */
		if (o->type == VS_REC_RETAIN || has(r, 8))
			o->u.retain.msg_id = get64(r);
		o->u.retain.version = has(r, 8) ? get64(r) : 0;
		break;
	case VS_REC_QUEUE:
		dec_queue(r, &o->u.queue, scratch, cap);
		break;
	case VS_REC_DEQUEUE:
		o->u.dequeue.client_id = get_str(r, 0);
		o->u.dequeue.msg_id = get64(r);
		o->u.dequeue.seq = has(r, 4) ? get32(r) : 0;
		break;
	case VS_REC_INQOS2:
		o->u.inqos2.client_id = get_str(r, 0);
		o->u.inqos2.packet_id = get16(r);
		o->u.inqos2.add = get8(r) != 0;
		break;
	case VS_REC_WILL:
		o->u.will.client_id = get_str(r, 0);
		o->u.will.msg_id = get64(r);
		o->u.will.publish_at_wall = (int64_t)get64(r);
		break;
	}
}

bool vs_rec_known(const struct vs_rec *r)
{
	return r->type >= 1 && r->type <= VS_REC_TYPE_MAX && r->version >= 1 &&
	       r->version <= VS_REC_VERSION;
}

long vs_rec_decode(const uint8_t *buf, size_t len, struct vs_rec *out, uint32_t **scratch,
		   size_t *scratch_cap)
{
	if (len < VS_REC_HDR_SIZE)
		return 0;
	uint32_t blen = get_u32(buf);
	if (blen > VS_REC_MAX_BODY || buf[5] == 0)
		return VS_EPROTO;
	if (len - VS_REC_HDR_SIZE < blen)
		return 0;
	uint32_t crc = vs_crc32c(0, buf, 6);
	if (vs_crc32c(crc, buf + VS_REC_HDR_SIZE, blen) != get_u32(buf + 6))
		return VS_EPROTO;
	memset(out, 0, sizeof(*out));
	out->type = buf[4];
	out->version = buf[5];
	if (vs_rec_known(out)) {
		struct rd r = {buf + VS_REC_HDR_SIZE, buf + VS_REC_HDR_SIZE + blen, 0, false};
		dec_body(&r, out, scratch, scratch_cap);
		if (r.nomem)
			return -ENOMEM;
		if (r.bad)
			return VS_EPROTO;
	}
	return (long)(VS_REC_HDR_SIZE + blen);
}

const char *vs_rec_type_name(unsigned type)
{
	static const char *const names[] = {
	    [VS_REC_SESSION] = "SESSION",
	    [VS_REC_SESSION_DEL] = "SESSION_DEL",
	    [VS_REC_SUB] = "SUB",
	    [VS_REC_UNSUB] = "UNSUB",
	    [VS_REC_MSG] = "MSG",
	    [VS_REC_RETAIN] = "RETAIN",
	    [VS_REC_RETAIN_DEL] = "RETAIN_DEL",
	    [VS_REC_QUEUE] = "QUEUE",
	    [VS_REC_DEQUEUE] = "DEQUEUE",
	    [VS_REC_INQOS2] = "INQOS2",
	    [VS_REC_WILL] = "WILL",
	    [VS_REC_WILL_DEL] = "WILL_DEL",
	};
	if (type >= 1 && type <= VS_REC_TYPE_MAX)
		return names[type];
	return type == VS_REC_SNAP_END ? "SNAP_END" : "UNKNOWN";
}
