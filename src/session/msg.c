/*
 * Messages: see msg.h. One allocation per message; encoded forms cached lock-free.
 */
#include "session/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* ---- homes (msg.h) ---- */

enum { HOMES = 256 };

struct home {
	_Atomic(struct vs_msg *) back; /* let go of by other threads, to be freed here */
	atomic_bool taken;
} __attribute__((aligned(64))); /* pushed to by other threads: a cache line each */

static struct home homes[HOMES];
static _Thread_local struct home *mine;

static size_t free_list(struct vs_msg *m)
{
	size_t n = 0;
	while (m) {
		struct vs_msg *next = m->back;
		free(m);
		m = next;
		n++;
	}
	return n;
}

void vs_msg_home_enter(void)
{
	if (mine)
		return;
	for (int i = 0; i < HOMES; i++)
		if (!atomic_exchange_explicit(&homes[i].taken, true, memory_order_acq_rel)) {
			mine = &homes[i];
			vs_msg_home_collect(); /* what came back after its last thread left */
			return;
		}
}

size_t vs_msg_home_collect(void)
{
	if (!mine || !atomic_load_explicit(&mine->back, memory_order_relaxed))
		return 0;
	return free_list(atomic_exchange_explicit(&mine->back, NULL, memory_order_acquire));
}

void vs_msg_home_leave(void)
{
	if (!mine)
		return;
	/* Given back first, then collected: a thread that pushed before it saw the home given
	 * back has its message collected here, and one that sees it given back frees the list
	 * itself (release). Both orders are sequentially consistent with release's. */
	atomic_store_explicit(&mine->taken, false, memory_order_seq_cst);
	free_list(atomic_exchange_explicit(&mine->back, NULL, memory_order_acquire));
	mine = NULL;
}

void vs_msg_homes_fini(void)
{
	for (int i = 0; i < HOMES; i++)
		if (!atomic_load_explicit(&homes[i].taken, memory_order_acquire))
			free_list(
			    atomic_exchange_explicit(&homes[i].back, NULL, memory_order_acquire));
}

/* Gives m (let go of: no reference left) back to the thread that made it, or frees it. */
static void release(struct vs_msg *m)
{
	struct home *h = m->home ? &homes[m->home - 1] : NULL;
	/* A home no thread has (its thread parked or gone) is not collected: freed here. */
	if (!h || h == mine || !atomic_load_explicit(&h->taken, memory_order_relaxed)) {
		free(m);
		return;
	}
	struct vs_msg *head = atomic_load_explicit(&h->back, memory_order_relaxed);
	do
		m->back = head;
	while (!atomic_compare_exchange_weak_explicit(&h->back, &head, m, memory_order_seq_cst,
						      memory_order_relaxed));
	/* Given back meanwhile (vs_msg_home_leave): its thread may have collected before the push,
	 * so the list is freed here. An exchange hands each message to one thread only. */
	if (!atomic_load_explicit(&h->taken, memory_order_seq_cst))
		free_list(atomic_exchange_explicit(&h->back, NULL, memory_order_acquire));
}

static uint8_t *put(uint8_t *dst, struct vs_buf *view, const void *src, size_t n)
{
	view->p = n ? dst : NULL;
	view->len = n;
	if (n)
		memcpy(dst, src, n);
	return dst + n;
}

struct vs_msg *vs_msg_make(const char *topic, size_t topic_len, const void *payload,
			   size_t payload_len, uint8_t qos, bool retain,
			   const struct vs_props *props, const struct vs_buf *origin,
			   int64_t now_ms)
{
	size_t users = props ? vs_props_copy_users(props, NULL, 0) : 0;
	if (props && props->users == NULL && props->user_raw.len)
		users = props->user_raw.len;
	size_t ct = 0, rt = 0, cd = 0;
	if (props && (props->present & (1ull << VS_PROP_CONTENT_TYPE)))
		ct = props->content_type.len;
	if (props && (props->present & (1ull << VS_PROP_RESPONSE_TOPIC)))
		rt = props->response_topic.len;
	if (props && (props->present & (1ull << VS_PROP_CORRELATION_DATA)))
		cd = props->correlation_data.len;
	size_t olen = origin ? origin->len : 0;
	size_t total =
	    sizeof(struct vs_msg) + topic_len + payload_len + ct + rt + cd + users + olen;
	struct vs_msg *m = malloc(total);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	atomic_init(&m->refs, 1);
	m->home = mine ? (uint16_t)(mine - homes + 1) : 0;
	m->qos = qos;
	m->retain = retain;
	m->created_ms = now_ms;
	for (int i = 0; i < 4; i++)
		atomic_init(&m->enc[i], NULL);
	atomic_init(&m->store_id, 0);
	uint8_t *d = (uint8_t *)(m + 1);
	d = put(d, &m->topic, topic, topic_len);
	d = put(d, &m->payload, payload, payload_len);
	d = put(d, &m->origin, origin ? origin->p : NULL, olen);
	if (props) {
		uint64_t pr = props->present;
		if (pr & (1ull << VS_PROP_PAYLOAD_FORMAT)) {
			m->has_payload_format = true;
			m->payload_format = props->payload_format;
		}
		if (pr & (1ull << VS_PROP_MESSAGE_EXPIRY)) {
			m->has_expiry = true;
			m->expiry_interval = props->message_expiry;
		}
		if (pr & (1ull << VS_PROP_CONTENT_TYPE)) {
			d = put(d, &m->content_type, props->content_type.p, ct);
			m->content_type.p = d - ct; /* present even when empty */
		}
		if (pr & (1ull << VS_PROP_RESPONSE_TOPIC))
			d = put(d, &m->response_topic, props->response_topic.p, rt);
		if (pr & (1ull << VS_PROP_CORRELATION_DATA)) {
			d = put(d, &m->correlation_data, props->correlation_data.p, cd);
			m->correlation_data.p = d - cd;
		}
		if (users) {
			if (props->users == NULL && props->user_raw.len) {
				d = put(d, &m->user_raw, props->user_raw.p, users);
				m->n_user = props->n_user;
			} else {
				vs_props_copy_users(props, d, users);
				m->user_raw.p = d;
				m->user_raw.len = users;
				m->n_user = props->n_user;
				d += users;
			}
		}
	}
	return m;
}

struct vs_msg *vs_msg_new(const struct vs_buf *topic, const struct vs_publish *p,
			  const struct vs_buf *origin, int64_t now_ms)
{
	return vs_msg_make((const char *)topic->p, topic->len, p->payload.p, p->payload.len, p->qos,
			   p->retain, &p->props, origin, now_ms);
}

void vs_msg_unref(struct vs_msg *m)
{
	if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (int i = 0; i < 4; i++)
		free(atomic_load_explicit(&m->enc[i], memory_order_relaxed));
	free(m->source);
	release(m);
}

int vs_msg_set_source(struct vs_msg *m, int listener, const char *client_id, const char *username)
{
	size_t il = strlen(client_id) + 1, ul = username ? strlen(username) + 1 : 0;
	struct vs_msg_source *src = malloc(sizeof(*src) + il + ul);
	if (!src)
		return -ENOMEM;
	char *d = (char *)(src + 1);
	src->listener = listener;
	src->client_id = memcpy(d, client_id, il);
	src->username = username ? memcpy(d + il, username, ul) : NULL;
	free(m->source);
	m->source = src;
	return 0;
}

bool vs_msg_expired(const struct vs_msg *m, int64_t now_ms, uint32_t *remaining)
{
	if (!m->has_expiry) {
		if (remaining)
			*remaining = 0;
		return false;
	}
	int64_t age_s = (now_ms - m->created_ms) / 1000;
	if (age_s >= (int64_t)m->expiry_interval)
		return true;
	if (remaining)
		*remaining = m->expiry_interval - (uint32_t)age_s;
	return false;
}

void vs_msg_props(const struct vs_msg *m, struct vs_props *props)
{
	memset(props, 0, sizeof(*props));
	if (m->has_payload_format) {
		props->present |= 1ull << VS_PROP_PAYLOAD_FORMAT;
		props->payload_format = m->payload_format;
	}
	if (m->content_type.p) {
		props->present |= 1ull << VS_PROP_CONTENT_TYPE;
		props->content_type = m->content_type;
	}
	if (m->response_topic.p) {
		props->present |= 1ull << VS_PROP_RESPONSE_TOPIC;
		props->response_topic = m->response_topic;
	}
	if (m->correlation_data.p) {
		props->present |= 1ull << VS_PROP_CORRELATION_DATA;
		props->correlation_data = m->correlation_data;
	}
	if (m->user_raw.len) {
		props->user_raw = m->user_raw;
		props->n_user = m->n_user;
	}
}

/* 5.0 forms without per-delivery properties are encoded once and shared (3.x: see v3_size). */
static bool cacheable(const struct vs_msg *m, const struct vs_delivery *d)
{
	return !m->has_expiry && d->n_sub_ids == 0 && d->topic_alias == 0 && d->topic_skip == 0;
}

/* The topic as this subscriber sees it (without its listener's mount point). */
static struct vs_buf out_topic(const struct vs_msg *m, const struct vs_delivery *d)
{
	struct vs_buf t = m->topic;
	if (d->topic_skip < t.len) {
		t.p += d->topic_skip;
		t.len -= d->topic_skip;
	}
	return t;
}

static void fill_packet(const struct vs_msg *m, const struct vs_delivery *d, int64_t now_ms,
			struct vs_packet *pk)
{
	memset(pk, 0, sizeof(*pk));
	pk->type = VS_PUBLISH;
	struct vs_publish *p = &pk->publish;
	p->qos = d->qos;
	p->dup = d->dup;
	p->retain = d->retain;
	p->topic = out_topic(m, d);
	if (d->alias_only)
		p->topic.len = 0;
	p->packet_id = d->qos ? (d->packet_id ? d->packet_id : 1) : 0;
	p->payload = m->payload;
	if (d->version >= VS_V5) {
		vs_msg_props(m, &p->props);
		uint32_t left = 0;
		if (m->has_expiry) {
			vs_msg_expired(m, now_ms, &left);
			/* [MQTT-3.3.2-6] forward the interval minus the time spent waiting. */
			p->props.present |= 1ull << VS_PROP_MESSAGE_EXPIRY;
			p->props.message_expiry = left;
		}
		if (d->topic_alias) {
			p->props.present |= 1ull << VS_PROP_TOPIC_ALIAS;
			p->props.topic_alias = d->topic_alias;
		}
		if (d->n_sub_ids) {
			p->props.present |= 1ull << VS_PROP_SUB_ID;
			p->props.n_sub_ids = d->n_sub_ids;
			p->props.sub_ids = d->sub_ids;
			p->props.sub_id = d->sub_ids[0];
		}
	}
}

/* The shared encoding for d's form, made on first use; NULL if it cannot be made (no memory, or
 * a packet the codec refuses): the callers then encode for d directly, which gives the same
 * bytes, or the codec's error. */
static struct vs_msg_enc *cached(struct vs_msg *m, const struct vs_delivery *d)
{
	int slot = (d->version >= VS_V5 ? 2 : 0) + (d->qos > 0);
	struct vs_msg_enc *e = atomic_load_explicit(&m->enc[slot], memory_order_acquire);
	if (e)
		return e;
	struct vs_delivery base = *d;
	base.dup = false;
	base.retain = false;
	base.packet_id = 1;
	struct vs_packet pk;
	fill_packet(m, &base, 0, &pk);
	ssize_t n = vs_codec_size(&pk, d->version);
	if (n < 0)
		return NULL;
	e = malloc(sizeof(*e) + (size_t)n);
	if (!e)
		return NULL;
	if (vs_codec_encode(&pk, d->version, e->bytes, (size_t)n) != n) {
		free(e);
		return NULL;
	}
	e->len = (uint32_t)n;
	e->id_off = 0;
	if (d->qos) {
		int hl = 1;
		while (e->bytes[hl] & 0x80)
			hl++;
		e->id_off = (uint32_t)(hl + 1 + 2 + m->topic.len);
	}
	struct vs_msg_enc *expect = NULL;
	if (!atomic_compare_exchange_strong_explicit(&m->enc[slot], &expect, e,
						     memory_order_acq_rel, memory_order_acquire)) {
		free(e);
		e = expect;
	}
	return e;
}

/*
 * MQTT 3.1 and 3.1.1: a PUBLISH has no properties, so it is written directly (fixed header,
 * topic, packet id, payload): a cached encoding would cost an allocation per message and copy
 * as much. Returns the size and sets *rem to the Remaining Length, or VS_ETOOBIG.
 */
#define V3_MAX_REMAINING 268435455u /* [MQTT-2.2.3] four bytes of Remaining Length */

static ssize_t v3_size(const struct vs_msg *m, const struct vs_delivery *d, size_t *rem)
{
	*rem = 2 + out_topic(m, d).len + (d->qos ? 2 : 0) + m->payload.len;
	if (*rem > V3_MAX_REMAINING)
		return VS_ETOOBIG;
	size_t hl = 2;
	for (size_t r = *rem; r >= 128; r >>= 7)
		hl++;
	return (ssize_t)(hl + *rem);
}

static ssize_t v3_encode(const struct vs_msg *m, const struct vs_delivery *d, uint8_t *out,
			 size_t cap)
{
	size_t rem;
	ssize_t n = v3_size(m, d, &rem);
	if (n < 0)
		return n;
	if (cap < (size_t)n)
		return VS_ETOOBIG;
	uint8_t *o = out;
	*o++ = (uint8_t)((VS_PUBLISH << 4) | (d->dup ? 0x08 : 0) | (d->qos << 1) |
			 (d->retain ? 1 : 0));
	do {
		uint8_t b = rem & 0x7f;
		rem >>= 7;
		*o++ = rem ? (uint8_t)(b | 0x80) : b;
	} while (rem);
	struct vs_buf t = out_topic(m, d);
	*o++ = (uint8_t)(t.len >> 8);
	*o++ = (uint8_t)t.len;
	if (t.len)
		memcpy(o, t.p, t.len);
	o += t.len;
	if (d->qos) {
		*o++ = (uint8_t)(d->packet_id >> 8);
		*o++ = (uint8_t)d->packet_id;
	}
	if (m->payload.len)
		memcpy(o, m->payload.p, m->payload.len);
	return n;
}

ssize_t vs_msg_encoded_size(struct vs_msg *m, const struct vs_delivery *d, int64_t now_ms)
{
	if (d->version < VS_V5) {
		size_t rem;
		return v3_size(m, d, &rem);
	}
	struct vs_msg_enc *e = cacheable(m, d) ? cached(m, d) : NULL;
	if (e)
		return (ssize_t)e->len;
	/* Not cacheable, or the cache could not be filled (no memory): encode directly. */
	struct vs_packet pk;
	fill_packet(m, d, now_ms, &pk);
	return vs_codec_size(&pk, d->version);
}

ssize_t vs_msg_encode(struct vs_msg *m, const struct vs_delivery *d, int64_t now_ms, uint8_t *out,
		      size_t cap)
{
	if (d->version < VS_V5)
		return v3_encode(m, d, out, cap);
	struct vs_msg_enc *e = cacheable(m, d) ? cached(m, d) : NULL;
	if (e) {
		if (cap < e->len)
			return VS_ETOOBIG;
		memcpy(out, e->bytes, e->len);
		out[0] = (uint8_t)((VS_PUBLISH << 4) | (d->dup ? 0x08 : 0) | (d->qos << 1) |
				   (d->retain ? 1 : 0));
		if (d->qos) {
			out[e->id_off] = (uint8_t)(d->packet_id >> 8);
			out[e->id_off + 1] = (uint8_t)d->packet_id;
		}
		return e->len;
	}
	struct vs_packet pk;
	fill_packet(m, d, now_ms, &pk);
	return vs_codec_encode(&pk, d->version, out, cap);
}
