/*
 * Decoding MQTT 3.1, 3.1.1 and 5.0 control packets in place.
 *
 * vs_codec_decode() checks the first byte (type and flags) as soon as it has it, the packet
 * size as soon as the fixed header is readable, and parses the body only once all of it is in
 * the buffer: a body parser therefore never sees a partial packet, and running out of bytes
 * inside one is always malformed. After the parser, the body must be used exactly
 * [MQTT-2.1.4]; leftover bytes are malformed too.
 *
 * Which reason code (`why`) each failure gets, following MQTT 5.0 section 4.13 and the wording
 * of each field's section:
 * - 0x81 Malformed Packet: anything that cannot be parsed by the packet's grammar - bad
 *   fixed-header flags [MQTT-2.1.3-1], QoS 3 [MQTT-3.3.1-4], reserved bits [MQTT-3.1.2-3],
 *   [MQTT-3.8.3-5], truncated fields, bad UTF-8 [MQTT-1.5.4-1], a variable byte integer over
 *   four bytes [MQTT-1.5.5-1], a property identifier not valid for the packet (section 2.2.2.2),
 *   Will QoS/Retain set without the Will Flag [MQTT-3.1.2-11], [MQTT-3.1.2-13], a password
 *   without a user name before 5.0 [MQTT-3.1.2-22].
 * - 0x82 Protocol Error: well-formed but not allowed - a duplicated property or a value out of
 *   range (see props.c), packet identifier 0 [MQTT-2.2.1-3], SUBSCRIBE or UNSUBSCRIBE without
 *   entries [MQTT-3.8.3-3], [MQTT-3.10.3-2], a 5.0 subscription option value out of range
 *   (QoS 3, Retain Handling 3, No Local on a shared subscription [MQTT-3.8.3-4]), a reason code
 *   not allowed in the packet, any packet but CONNECT before the version is known.
 * - 0x84 Unsupported Protocol Version: a CONNECT whose protocol name and level are not one of
 *   ("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5) [MQTT-3.1.2-1], [MQTT-3.1.2-2]. out->type and
 *   out->connect.version are set even then, so the caller can answer in the right CONNACK form.
 * - 0x90 Topic Name invalid: a PUBLISH or Will topic with '+' or '#' [MQTT-3.3.2-2] or an empty
 *   one before 5.0 [MQTT-4.7.3-1]. The spec does not name a code for this; 0x90 is the one the
 *   5.0 DISCONNECT table offers for an unacceptable topic name, and it tells the operator more
 *   than 0x81. A 5.0 empty topic without a Topic Alias is a Protocol Error (3.3.2.1).
 * - 0x8F Topic Filter invalid: a SUBSCRIBE or UNSUBSCRIBE filter that breaks [MQTT-4.7.1-2],
 *   [MQTT-4.7.1-3] or [MQTT-4.8.2-1]/[MQTT-4.8.2-2]. It is valid in a 5.0 DISCONNECT.
 * - 0x95 Packet too large: over opts->max_packet_size, reported from the fixed header alone.
 *
 * MQTT 3.1 (level 3) predates strict fixed-header flags: its PUBREL, SUBSCRIBE and UNSUBSCRIBE
 * carry QoS 1 with DUP possibly set, and other packets' flags were never checked by brokers, so
 * for 3.1 only the QoS bits of those three are checked.
 */
#include "codec/wire.h"

#include "base/error.h"

static bool name_is(struct vs_buf b, const char *s, size_t n)
{
	return b.len == n && memcmp(b.p, s, n) == 0;
}

/* Checks the first byte against the packet type's rules [MQTT-2.1.3-1]. */
static enum vs_reason check_first_byte(uint8_t b0, int version)
{
	int type = b0 >> 4, flags = b0 & 0x0f;

	if (type == 0 || (type == VS_AUTH && version != VS_V5 && version != 0))
		return VS_RC_MALFORMED; /* reserved types */
	if (version == 0 && type != VS_CONNECT)
		return VS_RC_PROTOCOL_ERROR; /* [MQTT-3.1.0-1] CONNECT comes first */
	switch (type) {
	case VS_PUBLISH:
		if ((flags & 0x06) == 0x06) /* [MQTT-3.3.1-4] QoS 3 */
			return VS_RC_MALFORMED;
		if ((flags & 0x08) && !(flags & 0x06)) /* [MQTT-3.3.1-2] DUP with QoS 0 */
			return VS_RC_MALFORMED;
		return VS_RC_SUCCESS;
	case VS_PUBREL:
	case VS_SUBSCRIBE:
	case VS_UNSUBSCRIBE:
		if (version == VS_V31)
			return (flags & 0x06) == 0x02 ? VS_RC_SUCCESS : VS_RC_MALFORMED;
		return flags == 0x02 ? VS_RC_SUCCESS : VS_RC_MALFORMED;
	case VS_CONNECT:
		return flags == 0 ? VS_RC_SUCCESS : VS_RC_MALFORMED;
	default:
		return (flags == 0 || version == VS_V31) ? VS_RC_SUCCESS : VS_RC_MALFORMED;
	}
}

static enum vs_reason rd_packet_id(struct rd *r, uint16_t *id)
{
	if (rd_u16(r, id))
		return VS_RC_MALFORMED;
	return *id ? VS_RC_SUCCESS : VS_RC_PROTOCOL_ERROR; /* [MQTT-2.2.1-3] */
}

static enum vs_reason dec_will(struct rd *r, struct vs_connect *c)
{
	enum vs_reason rc;

	if (c->version == VS_V5) {
		rc = vs_props_decode(r, VS_WILL_PROPS, &c->will_props);
		if (rc)
			return rc;
	}
	if (rd_str(r, &c->will_topic) || rd_bin(r, &c->will_payload))
		return VS_RC_MALFORMED;
	/* [MQTT-3.1.3-11] a UTF-8 topic name, and as a PUBLISH topic no wildcards. */
	if (!vs_topic_name_syntax(c->will_topic.p, c->will_topic.len))
		return VS_RC_TOPIC_NAME_INVALID;
	return VS_RC_SUCCESS;
}

static enum vs_reason dec_connect(struct rd *r, struct vs_packet *out)
{
	struct vs_connect *c = &out->connect;
	struct vs_buf name;
	uint8_t level, fl;
	enum vs_reason rc;

	memset(c, 0, sizeof(*c));
	if (rd_bin(r, &name) || rd_u8(r, &level))
		return VS_RC_MALFORMED;
	/* A bridge (Mosquitto's try_private) sends 0x83 or 0x84: not in the specification, but
	 * every Mosquitto bridge does it, and its meaning is "do not echo my messages back". */
	if ((level == (0x80 | VS_V31) || level == (0x80 | VS_V311))) {
		c->bridge = true;
		level &= 0x7f;
	}
	c->version = level;
	if (!((level == VS_V31 && name_is(name, "MQIsdp", 6)) ||
	      ((level == VS_V311 || level == VS_V5) && name_is(name, "MQTT", 4))))
		return VS_RC_UNSUPPORTED_VERSION; /* [MQTT-3.1.2-1], [MQTT-3.1.2-2] */
	if (rd_u8(r, &fl) || rd_u16(r, &c->keepalive))
		return VS_RC_MALFORMED;
	if (fl & 0x01) /* [MQTT-3.1.2-3] reserved flag */
		return VS_RC_MALFORMED;
	c->clean = fl & 0x02;
	c->will = fl & 0x04;
	c->will_qos = (fl >> 3) & 3;
	c->will_retain = fl & 0x20;
	c->has_password = fl & 0x40;
	c->has_username = fl & 0x80;
	if (!c->will && (c->will_qos || c->will_retain)) /* [MQTT-3.1.2-11], [MQTT-3.1.2-13] */
		return VS_RC_MALFORMED;
	if (c->will_qos == 3) /* [MQTT-3.1.2-12] */
		return VS_RC_MALFORMED;
	if (level != VS_V5 && c->has_password && !c->has_username) /* [MQTT-3.1.2-22] */
		return VS_RC_MALFORMED;
	if (level == VS_V5 && (rc = vs_props_decode(r, VS_CONNECT, &c->props)))
		return rc;
	if (rd_str(r, &c->client_id)) /* [MQTT-3.1.3-4] */
		return VS_RC_MALFORMED;
	if (c->will && (rc = dec_will(r, c)))
		return rc;
	if (c->has_username && rd_str(r, &c->username)) /* [MQTT-3.1.3-12] */
		return VS_RC_MALFORMED;
	if (c->has_password && rd_bin(r, &c->password))
		return VS_RC_MALFORMED;
	return VS_RC_SUCCESS;
}

static enum vs_reason dec_connack(struct rd *r, int v, struct vs_connack *c)
{
	uint8_t fl;

	memset(c, 0, sizeof(*c));
	if (rd_u8(r, &fl) || rd_u8(r, &c->reason))
		return VS_RC_MALFORMED;
	if (v == VS_V31) /* 3.1: the first byte was reserved and unused */
		fl = 0;
	if (fl & 0xfe) /* [MQTT-3.2.2-1] */
		return VS_RC_MALFORMED;
	c->session_present = fl & 1;
	if (v != VS_V5) {
		if (c->reason > VS_CONNACK3_NOT_AUTHORIZED)
			return VS_RC_MALFORMED; /* 3.1.1 section 3.2.2.3: 6-255 reserved */
	} else {
		if (!vs_reason_valid(c->reason, VS_CONNACK))
			return VS_RC_PROTOCOL_ERROR;
		/* Some servers omit an empty property block; accept that. */
		if (rd_left(r)) {
			enum vs_reason rc = vs_props_decode(r, VS_CONNACK, &c->props);
			if (rc)
				return rc;
		}
	}
	/* [MQTT-3.2.2-4] (3.1.1), [MQTT-3.2.2-6] (5.0): no session with a refusal. */
	if (c->session_present && c->reason)
		return VS_RC_PROTOCOL_ERROR;
	return VS_RC_SUCCESS;
}

static enum vs_reason dec_publish(struct rd *r, uint8_t flags, int v, struct vs_publish *p)
{
	enum vs_reason rc;

	p->qos = (flags >> 1) & 3;
	p->dup = flags & 0x08;
	p->retain = flags & 0x01;
	p->packet_id = 0;
	if (rd_str(r, &p->topic)) /* [MQTT-3.3.2-1] */
		return VS_RC_MALFORMED;
	if (p->qos && (rc = rd_packet_id(r, &p->packet_id)))
		return rc;
	if (v == VS_V5) {
		if ((rc = vs_props_decode(r, VS_PUBLISH, &p->props)))
			return rc;
	} else {
		vs_props_clear(&p->props);
	}
	if (p->topic.len == 0) {
		/* 3.3.2.1: an empty topic needs a Topic Alias in 5.0; before, [MQTT-4.7.3-1]. */
		if (v != VS_V5)
			return VS_RC_TOPIC_NAME_INVALID;
		if (!(p->props.present & (1ull << VS_PROP_TOPIC_ALIAS)))
			return VS_RC_PROTOCOL_ERROR;
	} else if (!vs_topic_name_syntax(p->topic.p, p->topic.len)) {
		return VS_RC_TOPIC_NAME_INVALID; /* [MQTT-3.3.2-2] */
	}
	p->payload.p = r->cur;
	p->payload.len = rd_left(r);
	r->cur = r->end;
	return VS_RC_SUCCESS;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. In 5.0 the reason code and properties may be omitted. */
static enum vs_reason dec_ack(struct rd *r, int type, int v, struct vs_ack *a)
{
	enum vs_reason rc;

	a->reason = 0;
	vs_props_clear(&a->props);
	if ((rc = rd_packet_id(r, &a->packet_id)))
		return rc;
	if (v != VS_V5 || !rd_left(r))
		return VS_RC_SUCCESS;
	(void)rd_u8(r, &a->reason);
	if (!vs_reason_valid(a->reason, type))
		return VS_RC_PROTOCOL_ERROR;
	if (rd_left(r))
		return vs_props_decode(r, type, &a->props);
	return VS_RC_SUCCESS;
}

/* One subscription options byte (3.1.1 section 3.8.3.1, 5.0 section 3.8.3.1). */
static enum vs_reason check_sub_options(uint8_t o, int v, struct vs_buf filter)
{
	if (v != VS_V5)
		return (o & 0xfc) || (o & 3) == 3 ? VS_RC_MALFORMED
						  : VS_RC_SUCCESS; /* [MQTT-3-8.3-4] */
	if (o & 0xc0) /* [MQTT-3.8.3-5] reserved bits */
		return VS_RC_MALFORMED;
	if ((o & 3) == 3 || ((o >> 4) & 3) == 3) /* QoS 3, Retain Handling 3 */
		return VS_RC_PROTOCOL_ERROR;
	if ((o & 0x04) && filter.len >= 7 && memcmp(filter.p, "$share/", 7) == 0)
		return VS_RC_PROTOCOL_ERROR; /* [MQTT-3.8.3-4] No Local on a shared subscription */
	return VS_RC_SUCCESS;
}

static enum vs_reason dec_subscribe(struct rd *r, int v, struct vs_subscribe *s)
{
	enum vs_reason rc;
	struct vs_buf f;
	uint8_t o;

	memset(s, 0, sizeof(*s));
	if ((rc = rd_packet_id(r, &s->packet_id)))
		return rc;
	if (v == VS_V5 && (rc = vs_props_decode(r, VS_SUBSCRIBE, &s->props)))
		return rc;
	s->raw.p = r->cur;
	s->raw.len = rd_left(r);
	while (rd_left(r)) {
		if (rd_str(r, &f) || rd_u8(r, &o))
			return VS_RC_MALFORMED;
		if (!vs_topic_filter_syntax(f.p, f.len))
			return VS_RC_TOPIC_FILTER_INVALID;
		if ((rc = check_sub_options(o, v, f)))
			return rc;
		s->count++;
	}
	return s->count ? VS_RC_SUCCESS : VS_RC_PROTOCOL_ERROR; /* [MQTT-3.8.3-3] */
}

static enum vs_reason dec_unsubscribe(struct rd *r, int v, struct vs_unsubscribe *u)
{
	enum vs_reason rc;
	struct vs_buf f;

	memset(u, 0, sizeof(*u));
	if ((rc = rd_packet_id(r, &u->packet_id)))
		return rc;
	if (v == VS_V5 && (rc = vs_props_decode(r, VS_UNSUBSCRIBE, &u->props)))
		return rc;
	u->raw.p = r->cur;
	u->raw.len = rd_left(r);
	while (rd_left(r)) {
		if (rd_str(r, &f))
			return VS_RC_MALFORMED;
		if (!vs_topic_filter_syntax(f.p, f.len))
			return VS_RC_TOPIC_FILTER_INVALID;
		u->count++;
	}
	return u->count ? VS_RC_SUCCESS : VS_RC_PROTOCOL_ERROR; /* [MQTT-3.10.3-2] */
}

/* SUBACK and UNSUBACK: a packet id, 5.0 properties, one code per filter (none in 3.x UNSUBACK). */
static enum vs_reason dec_suback(struct rd *r, int type, int v, struct vs_suback *s)
{
	enum vs_reason rc;
	uint32_t i;

	memset(s, 0, sizeof(*s));
	if ((rc = rd_packet_id(r, &s->packet_id)))
		return rc;
	if (v != VS_V5 && type == VS_UNSUBACK)
		return VS_RC_SUCCESS;
	if (v == VS_V5 && (rc = vs_props_decode(r, type, &s->props)))
		return rc;
	s->codes = r->cur;
	s->count = (uint32_t)rd_left(r);
	r->cur = r->end;
	if (!s->count) /* one code per filter, and there is at least one filter */
		return VS_RC_PROTOCOL_ERROR;
	for (i = 0; i < s->count; i++) {
		uint8_t c = s->codes[i];
		bool ok = v == VS_V5 ? vs_reason_valid(c, type) : (c <= 2 || c == 0x80);
		if (!ok) /* 3.1.1 [MQTT-3.9.3-2] */
			return VS_RC_PROTOCOL_ERROR;
	}
	return VS_RC_SUCCESS;
}

/* DISCONNECT and AUTH (5.0): reason code and properties may be omitted. */
static enum vs_reason dec_disconnect(struct rd *r, int type, int v, struct vs_disconnect *d)
{
	d->reason = 0;
	vs_props_clear(&d->props);
	if (v != VS_V5 || !rd_left(r))
		return VS_RC_SUCCESS;
	(void)rd_u8(r, &d->reason);
	if (!vs_reason_valid(d->reason, type))
		return VS_RC_PROTOCOL_ERROR;
	if (rd_left(r))
		return vs_props_decode(r, type, &d->props);
	return VS_RC_SUCCESS;
}

static enum vs_reason dec_body(struct rd *r, uint8_t b0, int v, struct vs_packet *out)
{
	int type = b0 >> 4;

	switch (type) {
	case VS_CONNECT:
		return dec_connect(r, out);
	case VS_CONNACK:
		return dec_connack(r, v, &out->connack);
	case VS_PUBLISH:
		return dec_publish(r, b0 & 0x0f, v, &out->publish);
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		return dec_ack(r, type, v, &out->ack);
	case VS_SUBSCRIBE:
		return dec_subscribe(r, v, &out->subscribe);
	case VS_SUBACK:
	case VS_UNSUBACK:
		return dec_suback(r, type, v, &out->suback);
	case VS_UNSUBSCRIBE:
		return dec_unsubscribe(r, v, &out->unsubscribe);
	case VS_PINGREQ:
	case VS_PINGRESP:
		return VS_RC_SUCCESS;
	case VS_DISCONNECT:
	case VS_AUTH:
		return dec_disconnect(r, type, v, &out->disconnect);
	}
	return VS_RC_MALFORMED;
}

ssize_t vs_codec_decode(const uint8_t *buf, size_t len, const struct vs_decode_opts *opts,
			struct vs_packet *out, enum vs_reason *why)
{
	enum vs_reason rc;
	uint32_t remaining;
	size_t total;
	int hl;

	if (len == 0)
		return 0;
	rc = check_first_byte(buf[0], opts->version);
	if (rc != VS_RC_SUCCESS)
		goto fail;
	hl = vs_codec_frame(buf, len, &remaining, why);
	if (hl <= 0)
		return hl;
	total = (size_t)hl + remaining;
	if (opts->max_packet_size && total > opts->max_packet_size) {
		rc = VS_RC_PACKET_TOO_LARGE; /* [MQTT-3.1.2-24] measured with the fixed header */
		goto fail;
	}
	if (len < total)
		return 0;

	struct rd r = {buf + hl, buf + total};
	out->type = buf[0] >> 4;
	out->flags = buf[0] & 0x0f;
	rc = dec_body(&r, buf[0], opts->version, out);
	if (rc == VS_RC_SUCCESS && r.cur != r.end)
		rc = VS_RC_MALFORMED; /* bytes left over inside the remaining length */
	if (rc != VS_RC_SUCCESS)
		goto fail;
	return (ssize_t)total;
fail:
	*why = rc;
	return VS_EPROTO;
}

int vs_subscribe_next(const struct vs_subscribe *s, int version, size_t *pos,
		      struct vs_sub_entry *e)
{
	struct rd r;
	uint8_t o;

	if (*pos >= s->raw.len)
		return 0;
	r.cur = s->raw.p + *pos;
	r.end = s->raw.p + s->raw.len;
	if (rd_bin(&r, &e->filter) || rd_u8(&r, &o))
		return 0;
	e->qos = o & 3;
	e->no_local = version == VS_V5 && (o & 0x04);
	e->retain_as_published = version == VS_V5 && (o & 0x08);
	e->retain_handling = version == VS_V5 ? (o >> 4) & 3 : 0;
	*pos = (size_t)(r.cur - s->raw.p);
	return 1;
}

int vs_unsubscribe_next(const struct vs_unsubscribe *u, size_t *pos, struct vs_buf *filter)
{
	struct rd r;

	if (*pos >= u->raw.len)
		return 0;
	r.cur = u->raw.p + *pos;
	r.end = u->raw.p + u->raw.len;
	if (rd_bin(&r, filter))
		return 0;
	*pos = (size_t)(r.cur - u->raw.p);
	return 1;
}
