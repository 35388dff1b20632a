/*
 * Encoding MQTT 3.1, 3.1.1 and 5.0 control packets into caller memory.
 *
 * Two passes over the packet: measure() computes the body length (and the inner lengths of
 * property blocks, which prefix themselves with their length), then write_body() writes without
 * any check, since everything that can fail was checked while measuring. vs_codec_size() runs
 * only the first; vs_codec_encode() runs both.
 *
 * The encoder trusts the semantic content it is given (it does not validate topics or UTF-8:
 * the caller built them, usually from decoded, validated input) but refuses what cannot be
 * represented: strings over 65,535 bytes, QoS 3, a remaining length over 268,435,455, a
 * property not valid for the packet type, AUTH before 5.0.
 *
 * Shortest forms are chosen where 5.0 allows omission: an ack, DISCONNECT or AUTH with reason 0
 * and no properties has no reason code byte; with no properties, no property length.
 */
#include "codec/wire.h"

#include "base/error.h"

struct layout {
	size_t body; /* remaining length */
	size_t pin;  /* inner length of the packet's property block */
	size_t win;  /* inner length of the will property block (CONNECT) */
	size_t plen; /* encoded size of the property block, length included */
	bool reason; /* write the reason code byte (5.0 acks, DISCONNECT, AUTH) */
	bool props;  /* write the property block */
};

static bool str_ok(struct vs_buf b)
{
	return b.len <= 65535;
}

static int measure_props(const struct vs_props *p, int type, size_t *inner, size_t *out)
{
	ssize_t n = vs_props_size(p, type, inner);
	if (n < 0)
		return -1;
	*out = (size_t)n;
	return 0;
}

static int measure_connect(const struct vs_connect *c, int v, struct layout *l)
{
	size_t n = (v == VS_V31 ? 8 : 6) + 1 + 1 + 2, wl = 0;

	if (c->will && c->will_qos > 2)
		return -1;
	if (!str_ok(c->client_id) || !str_ok(c->will_topic) || !str_ok(c->will_payload) ||
	    !str_ok(c->username) || !str_ok(c->password))
		return -1;
	if (v == VS_V5) {
		if (measure_props(&c->props, VS_CONNECT, &l->pin, &l->plen))
			return -1;
		n += l->plen;
		if (c->will && measure_props(&c->will_props, VS_WILL_PROPS, &l->win, &wl))
			return -1;
	}
	n += 2 + c->client_id.len;
	if (c->will)
		n += wl + 2 + c->will_topic.len + 2 + c->will_payload.len;
	if (c->has_username)
		n += 2 + c->username.len;
	if (c->has_password)
		n += 2 + c->password.len;
	l->body = n;
	return 0;
}

/* A 5.0 reason code + property block that may be omitted from the end (acks, DISCONNECT, AUTH). */
static int measure_tail(uint8_t reason, const struct vs_props *p, int type, struct layout *l)
{
	if (measure_props(p, type, &l->pin, &l->plen))
		return -1;
	l->props = l->pin > 0;
	l->reason = l->props || reason != 0;
	return (l->reason ? 1 : 0) + (l->props ? (int)l->plen : 0);
}

static int measure_list(const struct vs_packet *p, int v, struct layout *l)
{
	const struct vs_subscribe *s = &p->subscribe;
	const struct vs_unsubscribe *u = &p->unsubscribe;
	size_t n = 2;
	uint32_t i;

	if (v == VS_V5) {
		const struct vs_props *pp = p->type == VS_SUBSCRIBE ? &s->props : &u->props;
		if (measure_props(pp, p->type, &l->pin, &l->plen))
			return -1;
		n += l->plen;
	}
	if (p->type == VS_SUBSCRIBE && s->entries) {
		for (i = 0; i < s->count; i++) {
			if (!str_ok(s->entries[i].filter) || s->entries[i].qos > 2 ||
			    s->entries[i].retain_handling > 2)
				return -1;
			n += 3 + s->entries[i].filter.len;
		}
		if (!s->count)
			return -1;
	} else if (p->type == VS_UNSUBSCRIBE && u->filters) {
		for (i = 0; i < u->count; i++) {
			if (!str_ok(u->filters[i]))
				return -1;
			n += 2 + u->filters[i].len;
		}
		if (!u->count)
			return -1;
	} else {
		/* Forwarding a decoded list verbatim (it was validated for the same version). */
		struct vs_buf raw = p->type == VS_SUBSCRIBE ? s->raw : u->raw;
		if (!raw.len)
			return -1;
		n += raw.len;
	}
	l->body = n;
	return 0;
}

static int measure(const struct vs_packet *p, int v, struct layout *l)
{
	int t;

	memset(l, 0, sizeof(*l));
	if (v != VS_V31 && v != VS_V311 && v != VS_V5)
		return -1;
	switch (p->type) {
	case VS_CONNECT:
		return measure_connect(&p->connect, v, l);
	case VS_CONNACK:
		l->body = 2;
		if (v == VS_V5) {
			if (measure_props(&p->connack.props, VS_CONNACK, &l->pin, &l->plen))
				return -1;
			l->body += l->plen;
		}
		return 0;
	case VS_PUBLISH:
		if (p->publish.qos > 2 || !str_ok(p->publish.topic))
			return -1;
		l->body =
		    2 + p->publish.topic.len + (p->publish.qos ? 2 : 0) + p->publish.payload.len;
		if (v == VS_V5) {
			if (measure_props(&p->publish.props, VS_PUBLISH, &l->pin, &l->plen))
				return -1;
			l->body += l->plen;
		}
		return 0;
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		l->body = 2;
		if (v == VS_V5) {
			if ((t = measure_tail(p->ack.reason, &p->ack.props, p->type, l)) < 0)
				return -1;
			l->body += (size_t)t;
		}
		return 0;
	case VS_SUBSCRIBE:
	case VS_UNSUBSCRIBE:
		return measure_list(p, v, l);
	case VS_SUBACK:
	case VS_UNSUBACK:
		l->body = 2;
		if (v != VS_V5 && p->type == VS_UNSUBACK)
			return 0;
		if (v == VS_V5) {
			if (measure_props(&p->suback.props, p->type, &l->pin, &l->plen))
				return -1;
			l->body += l->plen;
		}
		l->body += p->suback.count;
		return 0;
	case VS_PINGREQ:
	case VS_PINGRESP:
		return 0;
	case VS_AUTH:
		if (v != VS_V5)
			return -1;
		/* fall through */
	case VS_DISCONNECT:
		if (v == VS_V5) {
			t = measure_tail(p->disconnect.reason, &p->disconnect.props, p->type, l);
			if (t < 0)
				return -1;
			l->body = (size_t)t;
		}
		return 0;
	}
	return -1;
}

/* A CONNECT states its own version: version 0 means "take it from the packet". */
static int pick_version(const struct vs_packet *p, int version)
{
	if (version == 0 && p->type == VS_CONNECT)
		return p->connect.version;
	return version;
}

ssize_t vs_codec_size(const struct vs_packet *p, int version)
{
	struct layout l;

	version = pick_version(p, version);

	if (measure(p, version, &l) || l.body > VS_MAX_REMAINING)
		return VS_EPROTO;
	return (ssize_t)(1 + (size_t)vs_vbi_size((uint32_t)l.body) + l.body);
}

static uint8_t *write_connect(uint8_t *o, const struct vs_connect *c, int v, const struct layout *l)
{
	uint8_t fl = 0;

	if (v == VS_V31)
		o = wr_bytes(wr_u16(o, 6), "MQIsdp", 6);
	else
		o = wr_bytes(wr_u16(o, 4), "MQTT", 4);
	/* try_private: Mosquitto's bridges set the level's top bit (3.x only). */
	*o++ = (uint8_t)(v | (c->bridge && v != VS_V5 ? 0x80 : 0));
	if (c->clean)
		fl |= 0x02;
	if (c->will)
		fl |= (uint8_t)(0x04 | c->will_qos << 3 | (c->will_retain ? 0x20 : 0));
	if (c->has_password)
		fl |= 0x40;
	if (c->has_username)
		fl |= 0x80;
	*o++ = fl;
	o = wr_u16(o, c->keepalive);
	if (v == VS_V5)
		o = vs_props_write(o, &c->props, l->pin);
	o = wr_bin(o, c->client_id);
	if (c->will) {
		if (v == VS_V5)
			o = vs_props_write(o, &c->will_props, l->win);
		o = wr_bin(o, c->will_topic);
		o = wr_bin(o, c->will_payload);
	}
	if (c->has_username)
		o = wr_bin(o, c->username);
	if (c->has_password)
		o = wr_bin(o, c->password);
	return o;
}

static uint8_t *write_list(uint8_t *o, const struct vs_packet *p, int v, const struct layout *l)
{
	const struct vs_subscribe *s = &p->subscribe;
	const struct vs_unsubscribe *u = &p->unsubscribe;
	uint32_t i;

	o = wr_u16(o, p->type == VS_SUBSCRIBE ? s->packet_id : u->packet_id);
	if (v == VS_V5)
		o = vs_props_write(o, p->type == VS_SUBSCRIBE ? &s->props : &u->props, l->pin);
	if (p->type == VS_SUBSCRIBE && s->entries) {
		for (i = 0; i < s->count; i++) {
			const struct vs_sub_entry *e = &s->entries[i];
			uint8_t opt = e->qos;
			if (v == VS_V5)
				opt |= (uint8_t)((e->no_local ? 0x04 : 0) |
						 (e->retain_as_published ? 0x08 : 0) |
						 e->retain_handling << 4);
			o = wr_bin(o, e->filter);
			*o++ = opt;
		}
	} else if (p->type == VS_UNSUBSCRIBE && u->filters) {
		for (i = 0; i < u->count; i++)
			o = wr_bin(o, u->filters[i]);
	} else {
		struct vs_buf raw = p->type == VS_SUBSCRIBE ? s->raw : u->raw;
		o = wr_bytes(o, raw.p, raw.len);
	}
	return o;
}

static uint8_t *write_tail(uint8_t *o, uint8_t reason, const struct vs_props *pp,
			   const struct layout *l)
{
	if (l->reason)
		*o++ = reason;
	if (l->props)
		o = vs_props_write(o, pp, l->pin);
	return o;
}

static uint8_t first_byte(const struct vs_packet *p)
{
	uint8_t b = (uint8_t)(p->type << 4);

	switch (p->type) {
	case VS_PUBLISH:
		return b | (p->publish.dup ? 0x08 : 0) | (uint8_t)(p->publish.qos << 1) |
		       (p->publish.retain ? 0x01 : 0);
	case VS_PUBREL:
	case VS_SUBSCRIBE:
	case VS_UNSUBSCRIBE:
		return b | 0x02; /* [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1] */
	}
	return b;
}

static uint8_t *write_body(uint8_t *o, const struct vs_packet *p, int v, const struct layout *l)
{
	switch (p->type) {
	case VS_CONNECT:
		return write_connect(o, &p->connect, v, l);
	case VS_CONNACK:
		*o++ = v == VS_V31 ? 0 : (p->connack.session_present ? 1 : 0);
		*o++ = p->connack.reason;
		if (v == VS_V5)
			o = vs_props_write(o, &p->connack.props, l->pin);
		return o;
	case VS_PUBLISH:
		o = wr_bin(o, p->publish.topic);
		if (p->publish.qos)
			o = wr_u16(o, p->publish.packet_id);
		if (v == VS_V5)
			o = vs_props_write(o, &p->publish.props, l->pin);
		return wr_bytes(o, p->publish.payload.p, p->publish.payload.len);
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		o = wr_u16(o, p->ack.packet_id);
		return v == VS_V5 ? write_tail(o, p->ack.reason, &p->ack.props, l) : o;
	case VS_SUBSCRIBE:
	case VS_UNSUBSCRIBE:
		return write_list(o, p, v, l);
	case VS_SUBACK:
	case VS_UNSUBACK:
		o = wr_u16(o, p->suback.packet_id);
		if (v != VS_V5 && p->type == VS_UNSUBACK)
			return o;
		if (v == VS_V5)
			o = vs_props_write(o, &p->suback.props, l->pin);
		return wr_bytes(o, p->suback.codes, p->suback.count);
	case VS_DISCONNECT:
	case VS_AUTH:
		return v == VS_V5 ? write_tail(o, p->disconnect.reason, &p->disconnect.props, l)
				  : o;
	}
	return o;
}

ssize_t vs_codec_encode(const struct vs_packet *p, int version, uint8_t *out, size_t cap)
{
	struct layout l;
	size_t total;
	uint8_t *o;

	version = pick_version(p, version);
	if (measure(p, version, &l) || l.body > VS_MAX_REMAINING)
		return VS_EPROTO;
	total = 1 + (size_t)vs_vbi_size((uint32_t)l.body) + l.body;
	if (cap < total)
		return VS_ETOOBIG;
	out[0] = first_byte(p);
	o = wr_vbi(out + 1, (uint32_t)l.body);
	o = write_body(o, p, version, &l);
	return (ssize_t)(o - out);
}
