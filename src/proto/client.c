/*
 * The client-side MQTT state machine (see client.h for what it owns). Each incoming packet type
 * has its own small handler; outgoing packets are encoded once, straight into `out` (acks,
 * pings) or into a struct vs_cmsg kept until acknowledged (PUBLISH QoS > 0, SUBSCRIBE,
 * UNSUBSCRIBE), whose bytes are copied to `out` when sent and again when resent.
 */
#include "proto/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static bool bit_get(const uint64_t *map, uint16_t id)
{
	return map[id >> 6] & (1ull << (id & 63));
}

static void bit_set(uint64_t *map, uint16_t id, bool on)
{
	if (on)
		map[id >> 6] |= 1ull << (id & 63);
	else
		map[id >> 6] &= ~(1ull << (id & 63));
}

void vs_cproto_init(struct vs_cproto *cp, int version, int max_inflight,
		    const struct vs_cproto_events *ev, void *ctx)
{
	memset(cp, 0, sizeof(*cp));
	cp->version = (uint8_t)version;
	if (max_inflight < 1)
		max_inflight = 1;
	if (max_inflight > 65535)
		max_inflight = 65535;
	cp->max_inflight = (uint16_t)max_inflight;
	cp->window = cp->max_inflight;
	cp->ev = ev;
	cp->ctx = ctx;
}

/* The aliases belong to one connection [MQTT-3.3.2-7]: forgotten when it ends. */
static void aliases_reset(struct vs_cproto *cp)
{
	for (uint16_t k = 0; k < cp->n_aliases; k++)
		free(cp->aliases[k]);
	free(cp->aliases);
	cp->aliases = NULL;
	cp->n_aliases = 0;
	cp->alias_max = 0;
}

void vs_cproto_fini(struct vs_cproto *cp)
{
	aliases_reset(cp);
	vs_alias_in_fini(&cp->alias_in);
	struct vs_cmsg *m = cp->head;
	while (m) {
		struct vs_cmsg *next = m->next;
		free(m);
		m = next;
	}
	cp->head = cp->tail = NULL;
	cp->count = 0;
	vs_bytes_fini(&cp->out);
}

/* Encodes p at the end of out; the trace shows `shown` (a PUBLISH sent with a known topic
 * alias is shown with its topic). */
static int emit_as(struct vs_cproto *cp, const struct vs_packet *p, const struct vs_packet *shown,
		   int64_t now_ms)
{
	ssize_t n = vs_codec_size(p, cp->version);
	if (n < 0)
		return (int)n;
	int rc = vs_bytes_reserve(&cp->out, (size_t)n);
	if (rc < 0)
		return rc;
	n = vs_codec_encode(p, cp->version, cp->out.data + cp->out.len, (size_t)n);
	if (n < 0)
		return (int)n;
	cp->out.len += (size_t)n;
	cp->last_out_ms = now_ms;
	if (cp->ev->trace)
		cp->ev->trace(cp->ctx, true, shown);
	return 0;
}

static int emit(struct vs_cproto *cp, const struct vs_packet *p, int64_t now_ms)
{
	return emit_as(cp, p, p, now_ms);
}

/*
 * The Topic Alias for a topic about to be sent, and whether the topic may then be left out:
 * 0 when none (aliases off, or all taken by other topics); k with *known false when k is newly
 * given to it (this PUBLISH carries topic and alias, which sets the mapping); k with *known true
 * when the broker already has it (this PUBLISH carries an empty topic) [MQTT-3.3.2-12].
 */
static uint16_t alias_for(struct vs_cproto *cp, const uint8_t *topic, size_t len, bool *known)
{
	*known = false;
	if (!cp->alias_max || len == 0)
		return 0;
	for (uint16_t k = 0; k < cp->n_aliases; k++) {
		const char *a = cp->aliases[k];
		if (strlen(a) == len && !memcmp(a, topic, len)) {
			*known = true;
			return (uint16_t)(k + 1);
		}
	}
	if (cp->n_aliases >= cp->alias_max)
		return 0;
	if (!cp->aliases && !(cp->aliases = calloc(cp->alias_max, sizeof(*cp->aliases))))
		return 0;
	char *copy = strndup((const char *)topic, len);
	if (!copy)
		return 0;
	cp->aliases[cp->n_aliases++] = copy;
	return cp->n_aliases;
}

/*
 * Appends a stored PUBLISH to out with Topic Alias k: the property goes first in the property
 * block, and the topic is left out when known. Works on the encoded bytes (fixed header, topic,
 * packet id, property length, properties, payload), so that what the message carries (user
 * properties, correlation data) is copied as it is. The stored bytes keep the full topic: a
 * resend on the next connection names it again.
 */
static int append_aliased(struct vs_cproto *cp, const uint8_t *w, size_t len, uint16_t k,
			  bool known)
{
	uint32_t rem, plen;
	int h = vs_vbi_decode(w + 1, len - 1, &rem);
	if (h <= 0)
		return VS_EPROTO;
	size_t t = 1 + (size_t)h; /* the topic's length field */
	size_t tlen = (size_t)w[t] << 8 | w[t + 1];
	size_t pid = t + 2 + tlen;
	size_t props = pid + (((w[0] >> 1) & 3) ? 2 : 0);
	int pl = vs_vbi_decode(w + props, len - props, &plen);
	if (pl <= 0)
		return VS_EPROTO;
	size_t body = props + (size_t)pl; /* the properties themselves */
	uint32_t nrem = rem - (known ? (uint32_t)tlen : 0) + 3 +
			(uint32_t)(vs_vbi_size(plen + 3) - vs_vbi_size(plen));
	uint8_t hdr[5], ph[4];
	int nh = vs_vbi_encode(nrem, hdr + 1);
	int np = vs_vbi_encode(plen + 3, ph);
	if (nh < 0 || np < 0)
		return VS_ETOOBIG;
	hdr[0] = w[0];
	uint8_t tl[2] = {known ? 0 : w[t], known ? 0 : w[t + 1]};
	uint8_t alias[3] = {VS_PROP_TOPIC_ALIAS, (uint8_t)(k >> 8), (uint8_t)k};
	int rc = vs_bytes_append(&cp->out, hdr, (size_t)nh + 1);
	if (!rc)
		rc = vs_bytes_append(&cp->out, tl, 2);
	if (!rc && !known)
		rc = vs_bytes_append(&cp->out, w + t + 2, tlen);
	if (!rc)
		rc = vs_bytes_append(&cp->out, w + pid, props - pid);
	if (!rc)
		rc = vs_bytes_append(&cp->out, ph, (size_t)np);
	if (!rc)
		rc = vs_bytes_append(&cp->out, alias, 3);
	if (!rc)
		rc = vs_bytes_append(&cp->out, w + body, len - body);
	return rc;
}

static int emit_ack(struct vs_cproto *cp, int type, uint16_t id, int64_t now_ms)
{
	struct vs_packet p = {.type = (uint8_t)type};
	p.ack.packet_id = id;
	return emit(cp, &p, now_ms);
}

/* Copies a stored packet to out; for a resent PUBLISH sets DUP [MQTT-3.3.1-1]. */
static int send_msg(struct vs_cproto *cp, struct vs_cmsg *m, bool resend, int64_t now_ms)
{
	if (m->type == VS_PUBLISH && m->state == VS_CM_RELEASED)
		return emit_ack(cp, VS_PUBREL, m->id, now_ms);
	if (resend && m->type == VS_PUBLISH)
		m->wire[0] |= 0x08;
	size_t at = cp->out.len;
	bool known = false;
	uint16_t k = 0;
	if (m->type == VS_PUBLISH && m->own_alias)
		aliases_reset(cp); /* the user maps aliases on this connection: ours would clash */
	if (m->type == VS_PUBLISH && !m->own_alias) {
		uint32_t rem;
		int h = vs_vbi_decode(m->wire + 1, m->len - 1, &rem);
		size_t t = 1 + (size_t)(h > 0 ? h : 0); /* the topic's length field */
		if (h > 0 && cp->alias_max)
			k = alias_for(cp, m->wire + t + 2, (size_t)m->wire[t] << 8 | m->wire[t + 1],
				      &known);
	}
	int rc = k ? append_aliased(cp, m->wire, m->len, k, known)
		   : vs_bytes_append(&cp->out, m->wire, m->len);
	if (rc < 0)
		return rc;
	cp->last_out_ms = now_ms;
	if (cp->ev->trace) {
		struct vs_packet p;
		struct vs_decode_opts o = {.version = cp->version};
		enum vs_reason why;
		if (vs_codec_decode(cp->out.data + at, cp->out.len - at, &o, &p, &why) > 0) {
			if (known) { /* shown with its topic, which the stored bytes keep */
				uint32_t rem;
				size_t t = 1 + (size_t)vs_vbi_decode(m->wire + 1, m->len - 1, &rem);
				p.publish.topic.p = m->wire + t + 2;
				p.publish.topic.len = (size_t)m->wire[t] << 8 | m->wire[t + 1];
			}
			cp->ev->trace(cp->ctx, true, &p);
		}
	}
	return 0;
}

/* Sends queued PUBLISHes (and any unsent SUBSCRIBE/UNSUBSCRIBE) while the window allows. */
static int fill_window(struct vs_cproto *cp, int64_t now_ms)
{
	if (cp->state != VS_CS_CONNECTED)
		return 0;
	for (struct vs_cmsg *m = cp->head; m; m = m->next) {
		if (m->state != VS_CM_QUEUED)
			continue;
		if (m->type == VS_PUBLISH) {
			if (cp->inflight >= cp->window)
				continue;
			cp->inflight++;
		}
		m->state = VS_CM_SENT;
		int rc = send_msg(cp, m, false, now_ms);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int alloc_id(struct vs_cproto *cp)
{
	for (int i = 0; i < 65535; i++) {
		cp->next_id = cp->next_id == 65535 ? 1 : cp->next_id + 1;
		if (!bit_get(cp->used, cp->next_id))
			return cp->next_id;
	}
	return -EAGAIN;
}

static void link_msg(struct vs_cproto *cp, struct vs_cmsg *m)
{
	m->next = NULL;
	m->prev = cp->tail;
	if (cp->tail)
		cp->tail->next = m;
	else
		cp->head = m;
	cp->tail = m;
	cp->count++;
	bit_set(cp->used, m->id, true);
}

static void unlink_msg(struct vs_cproto *cp, struct vs_cmsg *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		cp->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		cp->tail = m->prev;
	cp->count--;
	bit_set(cp->used, m->id, false);
	if (m->type == VS_PUBLISH && m->state != VS_CM_QUEUED)
		cp->inflight--;
	free(m);
}

static struct vs_cmsg *find_msg(const struct vs_cproto *cp, uint16_t id, int type)
{
	if (!bit_get(cp->used, id))
		return NULL;
	for (struct vs_cmsg *m = cp->head; m; m = m->next)
		if (m->id == id)
			return m->type == type ? m : NULL;
	return NULL;
}

/* Encodes p (whose packet id is set) into a new message and queues it. */
static int store(struct vs_cproto *cp, const struct vs_packet *p, uint16_t id, uint8_t qos,
		 int64_t now_ms)
{
	ssize_t n = vs_codec_size(p, cp->version);
	if (n < 0)
		return (int)n;
	struct vs_cmsg *m = malloc(sizeof(*m) + (size_t)n);
	if (!m)
		return -ENOMEM;
	m->id = id;
	m->type = p->type;
	m->qos = qos;
	m->state = VS_CM_QUEUED;
	m->own_alias =
	    p->type == VS_PUBLISH && (p->publish.props.present & (1ull << VS_PROP_TOPIC_ALIAS));
	m->len = (size_t)vs_codec_encode(p, cp->version, m->wire, (size_t)n);
	link_msg(cp, m);
	int rc = fill_window(cp, now_ms);
	return rc < 0 ? rc : id;
}

int vs_cproto_publish(struct vs_cproto *cp, const struct vs_publish *pub, int64_t now_ms)
{
	struct vs_packet p = {.type = VS_PUBLISH, .publish = *pub};
	if (pub->qos > 2)
		return VS_EPROTO;
	if (pub->qos == 0) {
		if (cp->state != VS_CS_CONNECTED)
			return -ENOTCONN;
		p.publish.packet_id = 0;
		bool known = false;
		bool own = pub->props.present & (1ull << VS_PROP_TOPIC_ALIAS);
		if (own)
			aliases_reset(cp); /* the user maps aliases here: ours would clash */
		uint16_t k = own ? 0 : alias_for(cp, pub->topic.p, pub->topic.len, &known);
		struct vs_packet shown = p;
		if (k) {
			p.publish.props.present |= 1ull << VS_PROP_TOPIC_ALIAS;
			p.publish.props.topic_alias = k;
			if (known)
				p.publish.topic.len = 0;
		}
		int rc = emit_as(cp, &p, &shown, now_ms);
		return rc < 0 ? rc : 0;
	}
	int id = alloc_id(cp);
	if (id < 0)
		return id;
	p.publish.packet_id = (uint16_t)id;
	p.publish.dup = false;
	return store(cp, &p, (uint16_t)id, pub->qos, now_ms);
}

int vs_cproto_subscribe(struct vs_cproto *cp, struct vs_subscribe *s, int64_t now_ms)
{
	int id = alloc_id(cp);
	if (id < 0)
		return id;
	s->packet_id = (uint16_t)id;
	struct vs_packet p = {.type = VS_SUBSCRIBE, .subscribe = *s};
	return store(cp, &p, (uint16_t)id, 0, now_ms);
}

int vs_cproto_unsubscribe(struct vs_cproto *cp, struct vs_unsubscribe *u, int64_t now_ms)
{
	int id = alloc_id(cp);
	if (id < 0)
		return id;
	u->packet_id = (uint16_t)id;
	struct vs_packet p = {.type = VS_UNSUBSCRIBE, .unsubscribe = *u};
	return store(cp, &p, (uint16_t)id, 0, now_ms);
}

int vs_cproto_disconnect(struct vs_cproto *cp, const struct vs_disconnect *d, int64_t now_ms)
{
	struct vs_packet p = {.type = VS_DISCONNECT, .disconnect = *d};
	int rc = cp->state == VS_CS_IDLE ? 0 : emit(cp, &p, now_ms);
	cp->state = VS_CS_IDLE;
	return rc;
}

void vs_cproto_set_auth(struct vs_cproto *cp, const struct vs_cauth *auth)
{
	cp->auth = auth;
}

/* Sets the Authentication Method and Data properties. */
static void set_auth_props(const struct vs_cproto *cp, struct vs_props *pr,
			   const struct vs_buf *data)
{
	pr->present |= 1ull << VS_PROP_AUTH_METHOD;
	pr->auth_method.p = (const uint8_t *)cp->auth->method;
	pr->auth_method.len = strlen(cp->auth->method);
	pr->present &= ~(1ull << VS_PROP_AUTH_DATA);
	if (data->len) {
		pr->present |= 1ull << VS_PROP_AUTH_DATA;
		pr->auth_data = *data;
	}
}

int vs_cproto_start(struct vs_cproto *cp, const struct vs_connect *c, int64_t now_ms)
{
	vs_cproto_lost(cp);
	cp->state = VS_CS_CONNECTING;
	cp->keepalive = c->keepalive;
	cp->ping_sent_ms = 0;
	/* A Topic Alias Maximum we announce is one the broker may use [MQTT-3.1.2-26]. */
	if (cp->version == VS_V5 && (c->props.present & (1ull << VS_PROP_TOPIC_ALIAS_MAX)) &&
	    c->props.topic_alias_max &&
	    vs_alias_in_init(&cp->alias_in, c->props.topic_alias_max) < 0) {
		cp->state = VS_CS_IDLE;
		return -ENOMEM;
	}
	struct vs_packet p = {.type = VS_CONNECT, .connect = *c};
	p.connect.version = cp->version;
	if (cp->auth) {
		struct vs_buf data = {0};
		int rc = cp->auth->ops->start(cp->auth->ctx, &data);
		if (rc < 0) {
			cp->state = VS_CS_IDLE;
			return rc;
		}
		set_auth_props(cp, &p.connect.props, &data);
	}
	return emit(cp, &p, now_ms);
}

void vs_cproto_lost(struct vs_cproto *cp)
{
	aliases_reset(cp);
	vs_alias_in_fini(&cp->alias_in);
	cp->out.off = cp->out.len = 0;
	cp->state = VS_CS_IDLE;
	cp->ping_sent_ms = 0;
}

/* After CONNACK: resend what was in flight, in order [MQTT-4.4.0-1], then refill. A message
 * queued but never sent stays QUEUED and goes out through fill_window(). */
static int resume(struct vs_cproto *cp, int64_t now_ms)
{
	cp->inflight = 0;
	for (struct vs_cmsg *m = cp->head; m; m = m->next) {
		if (m->state == VS_CM_QUEUED)
			continue;
		if (m->type == VS_PUBLISH) {
			if (cp->inflight >= cp->window && m->state == VS_CM_SENT) {
				m->state = VS_CM_QUEUED; /* the broker shrank its window */
				continue;
			}
			cp->inflight++;
		}
		int rc = send_msg(cp, m, true, now_ms);
		if (rc < 0)
			return rc;
	}
	return fill_window(cp, now_ms);
}

/* [MQTT-4.12.0-5] every AUTH and a successful CONNACK repeat the CONNECT's method. */
static bool same_method(const struct vs_cproto *cp, const struct vs_props *pr)
{
	size_t n = strlen(cp->auth->method);
	return (pr->present & (1ull << VS_PROP_AUTH_METHOD)) && pr->auth_method.len == n &&
	       memcmp(pr->auth_method.p, cp->auth->method, n) == 0;
}

static struct vs_buf auth_data(const struct vs_props *pr)
{
	struct vs_buf none = {0};
	return pr->present & (1ull << VS_PROP_AUTH_DATA) ? pr->auth_data : none;
}

/* An AUTH from the server during the CONNECT exchange: answer it. */
static int on_auth(struct vs_cproto *cp, const struct vs_disconnect *a, int64_t now_ms)
{
	/* [MQTT-4.12.0-6] no AUTH unless the CONNECT named a method; none after the CONNACK
	 * either, since we never start re-authentication (4.12.1). */
	if (!cp->auth || cp->state != VS_CS_CONNECTING)
		return VS_EPROTO;
	/* [MQTT-4.12.0-2] the server asks for more with 0x18 Continue authentication. */
	if (a->reason != VS_RC_CONTINUE_AUTH || !same_method(cp, &a->props))
		return VS_EPROTO;
	struct vs_buf in = auth_data(&a->props), out = {0};
	int rc = cp->auth->ops->step(cp->auth->ctx, &in, &out);
	if (rc < 0)
		return rc;
	/* [MQTT-4.12.0-3] and the client answers with 0x18 too. */
	struct vs_packet p = {.type = VS_AUTH};
	p.disconnect.reason = VS_RC_CONTINUE_AUTH;
	set_auth_props(cp, &p.disconnect.props, &out);
	return emit(cp, &p, now_ms);
}

/* A CONNACK 0x00 after enhanced authentication: the method must accept its data (for SCRAM,
 * the server's signature) before the connection counts. */
static int finish_auth(struct vs_cproto *cp, const struct vs_connack *ca)
{
	if (!same_method(cp, &ca->props))
		return VS_EPROTO;
	struct vs_buf in = auth_data(&ca->props);
	return cp->auth->ops->finish(cp->auth->ctx, &in);
}

static int on_connack(struct vs_cproto *cp, const struct vs_connack *ca, int64_t now_ms)
{
	if (cp->state != VS_CS_CONNECTING)
		return VS_EPROTO; /* [MQTT-3.2.0-1] only one, the first packet */
	if (ca->reason != 0) {
		/* [MQTT-4.12.0-1], [MQTT-4.12.0-4]: a refusal (0x87, 0x8C, ...) ends it */
		cp->state = VS_CS_IDLE;
		cp->ev->connack(cp->ctx, ca);
		return VS_ECLOSED;
	}
	if (cp->auth) {
		int rc = finish_auth(cp, ca);
		if (rc < 0) {
			cp->state = VS_CS_IDLE;
			return rc;
		}
	}
	cp->state = VS_CS_CONNECTED;
	cp->window = cp->max_inflight;
	if (cp->version == VS_V5) {
		const struct vs_props *pr = &ca->props;
		if ((pr->present & (1ull << VS_PROP_RECEIVE_MAX)) && pr->receive_max < cp->window)
			cp->window = pr->receive_max;
		if (pr->present & (1ull << VS_PROP_SERVER_KEEPALIVE))
			cp->keepalive = pr->server_keepalive; /* [MQTT-3.2.2-21] */
		/* Topic aliases up to the broker's maximum [MQTT-3.3.2-9]; none when it has none.
		 */
		aliases_reset(cp);
		if (pr->present & (1ull << VS_PROP_TOPIC_ALIAS_MAX))
			cp->alias_max = pr->topic_alias_max < VS_CPROTO_ALIASES
					    ? pr->topic_alias_max
					    : VS_CPROTO_ALIASES;
	}
	if (!ca->session_present)
		memset(cp->qos2_in, 0, sizeof(cp->qos2_in));
	int rc = resume(cp, now_ms);
	cp->ev->connack(cp->ctx, ca);
	return rc;
}

static int on_publish(struct vs_cproto *cp, const struct vs_publish *p, int64_t now_ms)
{
	/* Aliases only as the CONNECT allowed them [MQTT-3.3.2-8], [MQTT-3.3.2-9], [MQTT-3.3.2-12];
	 * the events see the resolved topic. */
	struct vs_publish rp = *p;
	if (vs_alias_in_resolve(&cp->alias_in, p, &rp.topic) != 0)
		return VS_EPROTO;
	p = &rp;
	switch (p->qos) {
	case 0:
		cp->ev->message(cp->ctx, p);
		return 0;
	case 1:
		cp->ev->message(cp->ctx, p);
		return emit_ack(cp, VS_PUBACK, p->packet_id, now_ms);
	default:
		/* Delivered once, at the first PUBLISH; a resent one is only acknowledged. */
		if (!bit_get(cp->qos2_in, p->packet_id)) {
			bit_set(cp->qos2_in, p->packet_id, true);
			cp->ev->message(cp->ctx, p);
		}
		return emit_ack(cp, VS_PUBREC, p->packet_id, now_ms);
	}
}

static int complete(struct vs_cproto *cp, struct vs_cmsg *m, const struct vs_ack *a, int64_t now_ms)
{
	uint16_t id = m->id;
	unlink_msg(cp, m);
	cp->ev->published(cp->ctx, id, a->reason, &a->props);
	return fill_window(cp, now_ms);
}

static int on_ack(struct vs_cproto *cp, int type, const struct vs_ack *a, int64_t now_ms)
{
	struct vs_cmsg *m = find_msg(cp, a->packet_id, VS_PUBLISH);
	switch (type) {
	case VS_PUBACK:
		if (!m || m->qos != 1 || m->state != VS_CM_SENT)
			return 0; /* stale ack after a resend: ignore */
		return complete(cp, m, a, now_ms);
	case VS_PUBREC:
		if (!m || m->qos != 2)
			return 0;
		if (a->reason >= 0x80)
			return complete(cp, m, a, now_ms);
		m->state = VS_CM_RELEASED;
		return emit_ack(cp, VS_PUBREL, m->id, now_ms);
	case VS_PUBCOMP:
		if (!m || m->state != VS_CM_RELEASED)
			return 0;
		return complete(cp, m, a, now_ms);
	default: /* PUBREL */
		bit_set(cp->qos2_in, a->packet_id, false);
		return emit_ack(cp, VS_PUBCOMP, a->packet_id, now_ms);
	}
}

static int on_suback(struct vs_cproto *cp, int type, const struct vs_suback *sa)
{
	int want = type == VS_SUBACK ? VS_SUBSCRIBE : VS_UNSUBSCRIBE;
	struct vs_cmsg *m = find_msg(cp, sa->packet_id, want);
	if (!m)
		return 0;
	unlink_msg(cp, m);
	if (type == VS_SUBACK)
		cp->ev->suback(cp->ctx, sa->packet_id, sa);
	else
		cp->ev->unsuback(cp->ctx, sa->packet_id, sa);
	return 0;
}

static int dispatch(struct vs_cproto *cp, const struct vs_packet *p, int64_t now_ms)
{
	if (cp->state == VS_CS_CONNECTING && p->type != VS_CONNACK && p->type != VS_AUTH)
		return VS_EPROTO;
	switch (p->type) {
	case VS_CONNACK:
		return on_connack(cp, &p->connack, now_ms);
	case VS_AUTH:
		return on_auth(cp, &p->disconnect, now_ms);
	case VS_PUBLISH:
		return on_publish(cp, &p->publish, now_ms);
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		return on_ack(cp, p->type, &p->ack, now_ms);
	case VS_SUBACK:
	case VS_UNSUBACK:
		return on_suback(cp, p->type, &p->suback);
	case VS_PINGRESP:
		cp->ping_sent_ms = 0;
		return 0;
	case VS_DISCONNECT:
		cp->state = VS_CS_IDLE;
		if (cp->ev->disconnect)
			cp->ev->disconnect(cp->ctx, &p->disconnect);
		return VS_ECLOSED;
	default: /* CONNECT, SUBSCRIBE, ... from a server */
		return VS_EPROTO;
	}
}

ssize_t vs_cproto_input(struct vs_cproto *cp, const uint8_t *buf, size_t len, int64_t now_ms,
			enum vs_reason *why)
{
	size_t used = 0;
	struct vs_decode_opts o = {.version = cp->version};
	while (used < len && cp->state != VS_CS_IDLE) {
		struct vs_packet p;
		ssize_t n = vs_codec_decode(buf + used, len - used, &o, &p, why);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		used += (size_t)n;
		if (cp->ev->trace)
			cp->ev->trace(cp->ctx, false, &p);
		int rc = dispatch(cp, &p, now_ms);
		if (rc < 0) {
			if (rc == VS_EPROTO)
				*why = VS_RC_PROTOCOL_ERROR;
			return rc;
		}
	}
	return (ssize_t)used;
}

int vs_cproto_tick(struct vs_cproto *cp, int64_t now_ms)
{
	if (cp->state != VS_CS_CONNECTED || cp->keepalive == 0)
		return 0;
	int64_t ka = (int64_t)cp->keepalive * 1000;
	if (cp->ping_sent_ms)
		return now_ms - cp->ping_sent_ms >= ka ? -ETIMEDOUT : 0;
	if (now_ms - cp->last_out_ms >= ka) {
		struct vs_packet p = {.type = VS_PINGREQ};
		int rc = emit(cp, &p, now_ms);
		if (rc < 0)
			return rc;
		cp->ping_sent_ms = now_ms;
	}
	return 0;
}

int64_t vs_cproto_deadline(const struct vs_cproto *cp)
{
	if (cp->state != VS_CS_CONNECTED || cp->keepalive == 0)
		return -1;
	int64_t ka = (int64_t)cp->keepalive * 1000;
	return cp->ping_sent_ms ? cp->ping_sent_ms + ka : cp->last_out_ms + ka;
}

size_t vs_cproto_pending(const struct vs_cproto *cp)
{
	size_t n = 0;
	for (const struct vs_cmsg *m = cp->head; m; m = m->next)
		n += m->type == VS_PUBLISH;
	return n;
}

bool vs_cproto_has(const struct vs_cproto *cp, uint16_t id)
{
	return bit_get(cp->used, id);
}
