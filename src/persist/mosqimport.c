/*
 * Mosquitto database import: turns the chunks vs_mosqdb_parse() reads into Viesti store records
 * (see mosqdb.h). Two passes over the file image: the first indexes the message bodies and the
 * clients (retained and client-message chunks name messages by id, and subscriptions name
 * clients), the second emits records in file order, writing each message's MSG record just
 * before the first record that refers to it. Nothing here does I/O.
 *
 * What maps to what:
 *   client          -> SESSION (offline since its expiry time minus its interval; expired: left
 * out) subscription    -> SUB (QoS, no-local and retain-as-published bits, identifier) message
 * store   -> MSG (topic, payload, QoS, retain, origin client id, MQTT 5 properties; message expiry:
 * the time left from now; expired: left out) client message  -> QUEUE, outgoing only; Mosquitto's
 * states map to queued / waiting for PUBACK / PUBREC / PUBCOMP with its packet id kept retained ->
 * RETAIN (not $SYS topics) Incoming QoS 2 messages that Mosquitto held until the client's PUBREL
 * are left out and counted: Viesti routes a QoS 2 message when it arrives, so it has no state to
 * put them in.
 */
#include "persist/mosqdb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "codec/codec.h"

struct msg_ix {
	uint64_t store_id;
	struct vs_mosqdb_msg m; /* views into the file image */
	bool emitted;		/* its MSG record was passed on */
	bool dead;		/* expired or unusable: records naming it are skipped */
};

struct client_ix {
	struct vs_mosqdb_str id;
	bool expired;
	uint8_t *mids; /* packet ids of its in-flight messages so far (a 65,536-bit set), made
			* at its first one: a second with the same id is left out */
};

struct imp {
	const uint8_t *buf;
	uint64_t id_base;
	int64_t now;
	vs_store_replay_fn fn;
	void *ctx;
	struct vs_mosqdb_import_info *info;
	struct msg_ix *msgs;
	size_t n_msgs, cap_msgs;
	struct client_ix *clients;
	size_t n_clients, cap_clients;
	uint8_t *users; /* scratch: a message's user properties, re-encoded contiguously */
	size_t cap_users;
	uint32_t sub_ids[64]; /* a delivery's subscription identifiers (Mosquitto keeps few) */
	uint32_t seq;	      /* delivery numbers, unique across the import */
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static int cmp_str(struct vs_mosqdb_str a, struct vs_mosqdb_str b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int c = n ? memcmp(a.p, b.p, n) : 0;
	return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int cmp_msg(const void *a, const void *b)
{
	const struct msg_ix *x = a, *y = b;
	return (x->store_id > y->store_id) - (x->store_id < y->store_id);
}

static int cmp_client(const void *a, const void *b)
{
	return cmp_str(((const struct client_ix *)a)->id, ((const struct client_ix *)b)->id);
}

static bool expired(int64_t at, int64_t now)
{
	return at > 0 && at <= now;
}

/* ---- Pass 1: the index ---- */

static int index_chunk(void *ctx, const struct vs_mosqdb_rec *r)
{
	struct imp *x = ctx;
	if (r->type == VS_MOSQDB_MSG_STORE) {
		if (grow((void **)&x->msgs, &x->cap_msgs, x->n_msgs + 1, sizeof(*x->msgs)) < 0)
			return -ENOMEM;
		struct msg_ix *e = &x->msgs[x->n_msgs++];
		memset(e, 0, sizeof(*e));
		e->store_id = r->u.msg.store_id;
		e->m = r->u.msg;
	} else if (r->type == VS_MOSQDB_CLIENT) {
		if (grow((void **)&x->clients, &x->cap_clients, x->n_clients + 1,
			 sizeof(*x->clients)) < 0)
			return -ENOMEM;
		struct client_ix *e = &x->clients[x->n_clients++];
		e->id = r->u.client.client_id;
		e->expired = expired(r->u.client.session_expiry_time, x->now);
		e->mids = NULL;
	}
	return 0;
}

static struct msg_ix *find_msg(struct imp *x, uint64_t id)
{
	struct msg_ix key = {.store_id = id};
	if (!x->n_msgs)
		return NULL;
	return bsearch(&key, x->msgs, x->n_msgs, sizeof(*x->msgs), cmp_msg);
}

static struct client_ix *find_client(struct imp *x, struct vs_mosqdb_str id)
{
	struct client_ix key = {.id = id};
	if (!x->n_clients)
		return NULL;
	return bsearch(&key, x->clients, x->n_clients, sizeof(*x->clients), cmp_client);
}

/* ---- Pass 2: records ---- */

static struct vs_rec_str rstr(struct vs_mosqdb_str s)
{
	struct vs_rec_str r = {s.p ? s.p : (const uint8_t *)"", s.len};
	return r;
}

/* Fills the MQTT 5 fields of a MSG record from Mosquitto's property block. Returns false if the
 * block is unreadable (the record then carries none of them). */
static bool msg_props(struct imp *x, struct vs_mosqdb_str props, struct vs_rec_msg *o)
{
	size_t pos = 0, users = 0;
	struct vs_mosqdb_prop p;
	int rc;
	while ((rc = vs_mosqdb_prop_next(props, &pos, &p)) > 0) {
		switch (p.id) {
		case 0x01: /* payload format indicator */
			o->has_payload_format = true;
			o->payload_format = (uint8_t)p.num;
			break;
		case 0x03: /* content type */
			o->content_type = rstr(p.str);
			break;
		case 0x08: /* response topic */
			o->response_topic = rstr(p.str);
			break;
		case 0x09: /* correlation data */
			o->correlation_data = rstr(p.str);
			break;
		case 0x26: /* user property: kept as encoded, in order */
			if (grow((void **)&x->users, &x->cap_users, users + p.raw.len, 1) < 0)
				return false;
			memcpy(x->users + users, p.raw.p, p.raw.len);
			users += p.raw.len;
			break;
		default: /* expiry is the chunk's own field; aliases and ids are per delivery */
			break;
		}
	}
	if (rc < 0) {
		o->has_payload_format = false;
		o->content_type = o->response_topic = o->correlation_data =
		    (struct vs_rec_str){NULL, 0};
		return false;
	}
	if (users)
		o->user_props_raw = (struct vs_rec_str){x->users, users};
	return true;
}

/* The id e's message gets in our store: numbered densely after id_base, whatever its store
 * id in the file was (an id near 2^64 would make the store's next ids wrap onto these). */
static uint64_t new_id(const struct imp *x, const struct msg_ix *e)
{
	return x->id_base + 1 + (uint64_t)(e - x->msgs);
}

/* Passes the MSG record of e on, once. Returns 0, or fn's negative value. */
static int emit_msg(struct imp *x, struct msg_ix *e)
{
	if (e->emitted)
		return 0;
	e->emitted = true;
	struct vs_rec r;
	memset(&r, 0, sizeof(r));
	r.type = VS_REC_MSG;
	r.version = VS_REC_VERSION;
	struct vs_rec_msg *o = &r.u.msg;
	o->msg_id = new_id(x, e);
	o->topic = rstr(e->m.topic);
	o->payload = rstr(e->m.payload);
	o->qos = e->m.qos;
	o->retain = e->m.retain;
	o->created_wall = x->now;
	if (e->m.expiry_time > 0) {
		o->has_expiry = true;
		int64_t left = e->m.expiry_time - x->now;
		o->expiry_interval = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
	}
	o->origin_client_id = rstr(e->m.source_id);
	if (!msg_props(x, e->m.props, o))
		x->info->props_dropped++;
	x->info->msgs++;
	return x->fn(x->ctx, &r);
}

/* The message a retained or client-message chunk names, or NULL (counted) if none is usable. */
static struct msg_ix *usable_msg(struct imp *x, uint64_t id)
{
	struct msg_ix *e = find_msg(x, id);
	if (!e) {
		x->info->orphans++;
		return NULL;
	}
	if (e->dead || expired(e->m.expiry_time, x->now)) {
		if (!e->dead)
			x->info->expired_msgs++;
		e->dead = true;
		return NULL;
	}
	/* The topic tree trusts its input: only valid topic names get in. */
	if (e->m.qos > 2 || e->m.payload.len > VS_MAX_REMAINING ||
	    !vs_topic_name_valid(e->m.topic.p, e->m.topic.len)) {
		x->info->bad++;
		e->dead = true;
		return NULL;
	}
	return e;
}

static int on_client(struct imp *x, const struct vs_mosqdb_client *c)
{
	struct client_ix *e = find_client(x, c->client_id);
	if (!e || e->expired) {
		x->info->expired_sessions += e != NULL;
		return 0;
	}
	struct vs_rec r;
	memset(&r, 0, sizeof(r));
	r.type = VS_REC_SESSION;
	r.version = VS_REC_VERSION;
	r.u.session.client_id = rstr(c->client_id);
	r.u.session.expiry_interval = c->session_expiry_interval;
	/* Mosquitto does not record the protocol version; an interval other than "never" can only
	 * come from an MQTT 5 client (3.x sessions never expire by themselves). */
	r.u.session.protocol_version = c->session_expiry_interval == UINT32_MAX ? 4 : 5;
	int64_t since = x->now;
	if (c->session_expiry_time > 0 && c->session_expiry_interval != UINT32_MAX)
		since = c->session_expiry_time - c->session_expiry_interval;
	r.u.session.offline_since_wall = since;
	x->info->sessions++;
	return x->fn(x->ctx, &r);
}

/* Mosquitto's outgoing state -> Viesti's queue state, or -1 for a state not valid outgoing. */
static int out_state(const struct vs_mosqdb_client_msg *m)
{
	switch (m->state) {
	case VS_MOSQDB_MS_QUEUED:
	case VS_MOSQDB_MS_PUBLISH_QOS0:
		return VS_QSTATE_QUEUED;
	case VS_MOSQDB_MS_PUBLISH_QOS1: /* given a packet id; maybe sent before a reconnect */
	case VS_MOSQDB_MS_WAIT_PUBACK:
		return m->qos == 1 && m->mid ? VS_QSTATE_WAIT_PUBACK : VS_QSTATE_QUEUED;
	case VS_MOSQDB_MS_PUBLISH_QOS2:
	case VS_MOSQDB_MS_WAIT_PUBREC:
		return m->qos == 2 && m->mid ? VS_QSTATE_WAIT_PUBREC : VS_QSTATE_QUEUED;
	case VS_MOSQDB_MS_RESEND_PUBREL:
	case VS_MOSQDB_MS_WAIT_PUBCOMP:
		return m->qos == 2 && m->mid ? VS_QSTATE_WAIT_PUBCOMP : -1;
	default:
		return -1;
	}
}

static int on_cmsg(struct imp *x, const struct vs_mosqdb_client_msg *m)
{
	struct client_ix *c = find_client(x, m->client_id);
	if (!c || c->expired) {
		x->info->orphans += c == NULL;
		return 0; /* an expired session's messages go with it */
	}
	if (m->direction == 0) {
		x->info->incoming_qos2++;
		return 0;
	}
	int state = out_state(m);
	if (state < 0 || m->qos > 2 || m->direction != 1) {
		x->info->bad++;
		return 0;
	}
	if (state != VS_QSTATE_QUEUED) {
		/* Two in flight with one packet id: both would be resent, and the client's
		 * acknowledgement would settle only one of them. */
		if (!c->mids && !(c->mids = calloc(65536 / 8, 1)))
			return -ENOMEM;
		if (c->mids[m->mid >> 3] & (1u << (m->mid & 7))) {
			x->info->bad++;
			return 0;
		}
		c->mids[m->mid >> 3] |= (uint8_t)(1u << (m->mid & 7));
	}
	struct msg_ix *e = usable_msg(x, m->store_id);
	if (!e)
		return 0;
	int rc = emit_msg(x, e);
	if (rc < 0)
		return rc;
	struct vs_rec r;
	memset(&r, 0, sizeof(r));
	r.type = VS_REC_QUEUE;
	r.version = VS_REC_VERSION;
	struct vs_rec_queue *q = &r.u.queue;
	q->client_id = rstr(m->client_id);
	q->msg_id = new_id(x, e);
	q->qos = m->qos;
	q->retain = m->retain;
	q->state = (uint8_t)state;
	q->packet_id = state == VS_QSTATE_QUEUED ? 0 : m->mid;
	q->dup = state != VS_QSTATE_QUEUED;
	q->seq = ++x->seq;
	size_t pos = 0;
	struct vs_mosqdb_prop p;
	while (vs_mosqdb_prop_next(m->props, &pos, &p) > 0)
		if (p.id == 0x0B && p.num && p.num <= VS_MAX_SUB_ID &&
		    q->n_sub_ids < sizeof(x->sub_ids) / sizeof(x->sub_ids[0]))
			x->sub_ids[q->n_sub_ids++] = p.num;
	q->sub_ids = q->n_sub_ids ? x->sub_ids : NULL;
	if (state == VS_QSTATE_QUEUED)
		x->info->queued++;
	else
		x->info->inflight++;
	return x->fn(x->ctx, &r);
}

static int on_sub(struct imp *x, const struct vs_mosqdb_sub *s)
{
	struct client_ix *c = find_client(x, s->client_id);
	if (!c || c->expired) {
		x->info->orphans += c == NULL;
		return 0;
	}
	if (s->qos > 2 || !vs_topic_filter_valid(s->topic.p, s->topic.len)) {
		x->info->bad++;
		return 0;
	}
	struct vs_rec r;
	memset(&r, 0, sizeof(r));
	r.type = VS_REC_SUB;
	r.version = VS_REC_VERSION;
	r.u.sub.client_id = rstr(s->client_id);
	r.u.sub.filter = rstr(s->topic);
	r.u.sub.qos = s->qos;
	r.u.sub.options = s->options & 0x3c; /* no-local, retain-as-published, retain handling */
	/* Out of range, it could not be sent [MQTT-3.8.2.1.2]: imported without it. */
	r.u.sub.sub_id = s->identifier <= VS_MAX_SUB_ID ? s->identifier : 0;
	x->info->subs++;
	return x->fn(x->ctx, &r);
}

static int on_retain(struct imp *x, uint64_t id)
{
	struct msg_ix *e = usable_msg(x, id);
	if (!e)
		return 0;
	if (e->m.topic.len >= 4 && memcmp(e->m.topic.p, "$SYS", 4) == 0) {
		x->info->sys_msgs++;
		return 0;
	}
	int rc = emit_msg(x, e);
	if (rc < 0)
		return rc;
	struct vs_rec r;
	memset(&r, 0, sizeof(r));
	r.type = VS_REC_RETAIN;
	r.version = VS_REC_VERSION;
	r.u.retain.topic = rstr(e->m.topic);
	r.u.retain.msg_id = new_id(x, e);
	x->info->retained++;
	return x->fn(x->ctx, &r);
}

static int emit_chunk(void *ctx, const struct vs_mosqdb_rec *r)
{
	struct imp *x = ctx;
	switch (r->type) {
	case VS_MOSQDB_CLIENT:
		return on_client(x, &r->u.client);
	case VS_MOSQDB_CLIENT_MSG:
		return on_cmsg(x, &r->u.cmsg);
	case VS_MOSQDB_SUB:
		return on_sub(x, &r->u.sub);
	case VS_MOSQDB_RETAIN:
		return on_retain(x, r->u.retain_store_id);
	default:
		return 0; /* configuration; messages are written when first referred to */
	}
}

/* Keeps the first of duplicate keys (a damaged or hand-edited file): later ones are orphans. */
static void dedup_clients(struct imp *x)
{
	size_t n = 0;
	for (size_t i = 0; i < x->n_clients; i++)
		if (!n || cmp_client(&x->clients[n - 1], &x->clients[i]) != 0)
			x->clients[n++] = x->clients[i];
	x->n_clients = n;
}

static void dedup_msgs(struct imp *x)
{
	size_t n = 0;
	for (size_t i = 0; i < x->n_msgs; i++)
		if (!n || x->msgs[n - 1].store_id != x->msgs[i].store_id)
			x->msgs[n++] = x->msgs[i];
	x->n_msgs = n;
}

int vs_mosqdb_import(const uint8_t *buf, size_t len, uint64_t id_base, int64_t now_wall,
		     vs_store_replay_fn fn, void *ctx, struct vs_mosqdb_import_info *info)
{
	memset(info, 0, sizeof(*info));
	struct imp x = {
	    .buf = buf, .id_base = id_base, .now = now_wall, .fn = fn, .ctx = ctx, .info = info};
	int rc = vs_mosqdb_parse(buf, len, index_chunk, &x, &info->parse);
	if (rc < 0)
		goto out;
	/* Stable order for duplicates: qsort is not stable, but which duplicate wins only matters
	 * for damaged files, and any one of them is as good. */
	if (x.n_msgs > 1)
		qsort(x.msgs, x.n_msgs, sizeof(*x.msgs), cmp_msg);
	if (x.n_clients > 1)
		qsort(x.clients, x.n_clients, sizeof(*x.clients), cmp_client);
	dedup_msgs(&x);
	dedup_clients(&x);
	struct vs_mosqdb_info second;
	rc = vs_mosqdb_parse(buf, len, emit_chunk, &x, &second);
	if (rc > 0)
		rc = 0;
out:
	for (size_t i = 0; i < x.n_clients; i++)
		free(x.clients[i].mids);
	free(x.msgs);
	free(x.clients);
	free(x.users);
	return rc;
}

void vs_mosqdb_import_summary(const struct vs_mosqdb_import_info *i, char *out, size_t n)
{
	int k = snprintf(out, n,
			 "%llu retained messages, %llu sessions, %llu subscriptions, %llu queued "
			 "messages, %llu in-flight messages",
			 (unsigned long long)i->retained, (unsigned long long)i->sessions,
			 (unsigned long long)i->subs, (unsigned long long)i->queued,
			 (unsigned long long)i->inflight);
	uint64_t skipped = i->expired_sessions + i->expired_msgs + i->incoming_qos2 + i->sys_msgs +
			   i->orphans + i->bad;
	if (k < 0 || (size_t)k >= n || !skipped)
		goto props;
	k += snprintf(
	    out + k, n - (size_t)k,
	    "; left out: %llu expired sessions, %llu expired messages, %llu incoming QoS 2 "
	    "messages awaiting PUBREL, %llu $SYS messages, %llu entries naming a missing "
	    "client or message, %llu invalid entries",
	    (unsigned long long)i->expired_sessions, (unsigned long long)i->expired_msgs,
	    (unsigned long long)i->incoming_qos2, (unsigned long long)i->sys_msgs,
	    (unsigned long long)i->orphans, (unsigned long long)i->bad);
props:
	if (k >= 0 && (size_t)k < n && i->props_dropped)
		snprintf(out + k, n - (size_t)k,
			 "; %llu messages imported without their unreadable MQTT 5 properties",
			 (unsigned long long)i->props_dropped);
}
