/*
 * MQTT-SN 1.2 codec: see sn.h. Each message type is a row of a table: the size of its fixed
 * part, which fields that part holds in order, and whether a variable part follows. Decoding
 * and encoding walk the same row, so the two cannot disagree about a layout.
 */
#include "codec/sn.h"

#include <string.h>

#include "base/error.h"

/* Fixed fields, in wire order. */
enum field {
	F_END = 0,
	F_FLAGS,    /* 1 byte */
	F_RC,	    /* 1 byte */
	F_GWID,	    /* 1 byte */
	F_RADIUS,   /* 1 byte */
	F_PROTO,    /* 1 byte */
	F_DURATION, /* 2 bytes */
	F_TOPIC,    /* 2 bytes */
	F_MSGID,    /* 2 bytes */
};

/* The variable part. */
enum var {
	V_NONE,	     /* nothing may follow */
	V_DATA,	     /* bytes to the end (may be empty) */
	V_NAME,	     /* at least one byte to the end */
	V_OPTIONAL,  /* PINGREQ: client id or nothing; DISCONNECT: a duration or nothing */
	V_SUBTOPIC,  /* SUBSCRIBE/UNSUBSCRIBE: a name (type NORMAL) or a two-byte id */
	V_WILLTOPIC, /* WILLTOPIC(UPD): flags and a topic, or nothing at all */
};

struct layout {
	const char *name;
	uint8_t fields[5];
	uint8_t var;
};

static const struct layout layouts[256] = {
    [VS_SN_ADVERTISE] = {"ADVERTISE", {F_GWID, F_DURATION}, V_NONE},
    [VS_SN_SEARCHGW] = {"SEARCHGW", {F_RADIUS}, V_NONE},
    [VS_SN_GWINFO] = {"GWINFO", {F_GWID}, V_DATA},
    [VS_SN_CONNECT] = {"CONNECT", {F_FLAGS, F_PROTO, F_DURATION}, V_DATA},
    [VS_SN_CONNACK] = {"CONNACK", {F_RC}, V_NONE},
    [VS_SN_WILLTOPICREQ] = {"WILLTOPICREQ", {F_END}, V_NONE},
    [VS_SN_WILLTOPIC] = {"WILLTOPIC", {F_END}, V_WILLTOPIC},
    [VS_SN_WILLMSGREQ] = {"WILLMSGREQ", {F_END}, V_NONE},
    [VS_SN_WILLMSG] = {"WILLMSG", {F_END}, V_DATA},
    [VS_SN_REGISTER] = {"REGISTER", {F_TOPIC, F_MSGID}, V_NAME},
    [VS_SN_REGACK] = {"REGACK", {F_TOPIC, F_MSGID, F_RC}, V_NONE},
    [VS_SN_PUBLISH] = {"PUBLISH", {F_FLAGS, F_TOPIC, F_MSGID}, V_DATA},
    [VS_SN_PUBACK] = {"PUBACK", {F_TOPIC, F_MSGID, F_RC}, V_NONE},
    [VS_SN_PUBCOMP] = {"PUBCOMP", {F_MSGID}, V_NONE},
    [VS_SN_PUBREC] = {"PUBREC", {F_MSGID}, V_NONE},
    [VS_SN_PUBREL] = {"PUBREL", {F_MSGID}, V_NONE},
    [VS_SN_SUBSCRIBE] = {"SUBSCRIBE", {F_FLAGS, F_MSGID}, V_SUBTOPIC},
    [VS_SN_SUBACK] = {"SUBACK", {F_FLAGS, F_TOPIC, F_MSGID, F_RC}, V_NONE},
    [VS_SN_UNSUBSCRIBE] = {"UNSUBSCRIBE", {F_FLAGS, F_MSGID}, V_SUBTOPIC},
    [VS_SN_UNSUBACK] = {"UNSUBACK", {F_MSGID}, V_NONE},
    [VS_SN_PINGREQ] = {"PINGREQ", {F_END}, V_OPTIONAL},
    [VS_SN_PINGRESP] = {"PINGRESP", {F_END}, V_NONE},
    [VS_SN_DISCONNECT] = {"DISCONNECT", {F_END}, V_OPTIONAL},
    [VS_SN_WILLTOPICUPD] = {"WILLTOPICUPD", {F_END}, V_WILLTOPIC},
    [VS_SN_WILLTOPICRESP] = {"WILLTOPICRESP", {F_RC}, V_NONE},
    [VS_SN_WILLMSGUPD] = {"WILLMSGUPD", {F_END}, V_DATA},
    [VS_SN_WILLMSGRESP] = {"WILLMSGRESP", {F_RC}, V_NONE},
};

const char *vs_sn_type_name(int type)
{
	if (type == VS_SN_ENCAPSULATED)
		return "ENCAPSULATED";
	if (type < 0 || type > 255 || !layouts[type].name)
		return "?";
	return layouts[type].name;
}

static int field_size(int f)
{
	return f >= F_DURATION ? 2 : 1;
}

/* Where a field lives in the packet. */
static void *field_ptr(struct vs_sn_packet *p, int f)
{
	switch (f) {
	case F_FLAGS:
		return &p->flags;
	case F_RC:
		return &p->rc;
	case F_GWID:
		return &p->gw_id;
	case F_RADIUS:
		return &p->radius;
	case F_PROTO:
		return &p->protocol;
	case F_DURATION:
		return &p->duration;
	case F_TOPIC:
		return &p->topic_id;
	default:
		return &p->msg_id;
	}
}

static int fail(const char **why, const char *what)
{
	if (why)
		*why = what;
	return VS_EPROTO;
}

/* The header: the length form and the type. Returns the header's size, or VS_EPROTO. */
static int header(const uint8_t *buf, size_t len, size_t *total, const char **why)
{
	if (len < 2)
		return fail(why, "shorter than a header");
	if (buf[0] != 0x01) {
		*total = buf[0];
		if (*total < 2)
			return fail(why, "length below 2");
		return 1;
	}
	if (len < 4)
		return fail(why, "three-byte length cut short");
	*total = ((size_t)buf[1] << 8) | buf[2];
	/* The long form is for 256 and more; a shorter length in it is still one length, and
	 * some clients send it, so it is accepted as long as it covers its own header. */
	if (*total < 4)
		return fail(why, "length below 4");
	return 3;
}

int vs_sn_decode(const uint8_t *buf, size_t len, struct vs_sn_packet *p, const char **why)
{
	memset(p, 0, sizeof(*p));
	size_t total;
	int hl = header(buf, len, &total, why);
	if (hl < 0)
		return hl;
	if (total != len)
		return fail(why,
			    total > len ? "length beyond the datagram" : "bytes after the message");
	p->type = buf[hl];
	const struct layout *l = &layouts[p->type];
	if (!l->name)
		return fail(why, "unknown message type");
	size_t at = (size_t)hl + 1;
	for (int i = 0; i < 5 && l->fields[i] != F_END; i++) {
		int f = l->fields[i], n = field_size(f);
		if (at + (size_t)n > len)
			return fail(why, "shorter than its fixed fields");
		if (n == 1)
			*(uint8_t *)field_ptr(p, f) = buf[at];
		else
			*(uint16_t *)field_ptr(p, f) = (uint16_t)(buf[at] << 8 | buf[at + 1]);
		at += (size_t)n;
	}
	size_t rest = len - at;
	const uint8_t *tail = buf + at;
	switch (l->var) {
	case V_NONE:
		if (rest)
			return fail(why, "longer than its type");
		break;
	case V_NAME:
		if (!rest)
			return fail(why, "empty topic name");
		/* fall through */
	case V_DATA:
		p->data = (struct vs_buf){tail, rest};
		break;
	case V_OPTIONAL:
		if (p->type == VS_SN_DISCONNECT) {
			if (rest != 0 && rest != 2)
				return fail(why, "DISCONNECT duration is not two bytes");
			p->has_duration = rest == 2;
			if (rest)
				p->duration = (uint16_t)(tail[0] << 8 | tail[1]);
		} else {
			p->data = (struct vs_buf){tail, rest};
		}
		break;
	case V_SUBTOPIC:
		if ((p->flags & VS_SN_TID_MASK) == VS_SN_TID_NORMAL) {
			if (!rest)
				return fail(why, "empty topic name");
			p->data = (struct vs_buf){tail, rest};
		} else {
			if (rest != 2)
				return fail(why, "topic id is not two bytes");
			p->topic_id = (uint16_t)(tail[0] << 8 | tail[1]);
		}
		break;
	case V_WILLTOPIC:
		if (!rest) {
			p->empty_will = true;
			break;
		}
		p->flags = tail[0];
		if (rest < 2)
			return fail(why, "will flags without a topic");
		p->data = (struct vs_buf){tail + 1, rest - 1};
		break;
	}
	/* The flags' bits a type uses (section 5.3.4): the reserved topic-id type where the type
	 * has one (PUBLISH, SUBSCRIBE, UNSUBSCRIBE), QoS -1 where QoS means a subscription's or a
	 * will's (SUBSCRIBE, SUBACK, WILLTOPIC, WILLTOPICUPD). Bits a type does not use (CONNECT's
	 * QoS and topic-id type, UNSUBSCRIBE's QoS) are ignored, as the spec marks them. */
	bool tid =
	    p->type == VS_SN_PUBLISH || p->type == VS_SN_SUBSCRIBE || p->type == VS_SN_UNSUBSCRIBE;
	bool qos = p->type == VS_SN_SUBSCRIBE || p->type == VS_SN_SUBACK ||
		   (l->var == V_WILLTOPIC && !p->empty_will);
	if (tid && (p->flags & VS_SN_TID_MASK) == 3)
		return fail(why, "reserved topic id type");
	if (qos && vs_sn_qos(p->flags) < 0)
		return fail(why, "QoS -1 outside PUBLISH");
	if (p->type == VS_SN_CONNECT && p->protocol != 0x01)
		return fail(why, "unknown protocol id");
	return 0;
}

/* The size of the variable part as p would encode it. */
static size_t var_size(const struct vs_sn_packet *p, const struct layout *l)
{
	switch (l->var) {
	case V_OPTIONAL:
		if (p->type == VS_SN_DISCONNECT)
			return p->has_duration ? 2 : 0;
		return p->data.len;
	case V_SUBTOPIC:
		return (p->flags & VS_SN_TID_MASK) == VS_SN_TID_NORMAL ? p->data.len : 2;
	case V_WILLTOPIC:
		return p->empty_will ? 0 : 1 + p->data.len;
	case V_NONE:
		return 0;
	default:
		return p->data.len;
	}
}

ssize_t vs_sn_size(const struct vs_sn_packet *p)
{
	const struct layout *l = &layouts[p->type];
	if (!l->name)
		return VS_EPROTO;
	size_t n = 1;
	for (int i = 0; i < 5 && l->fields[i] != F_END; i++)
		n += (size_t)field_size(l->fields[i]);
	n += var_size(p, l);
	n += n + 1 <= 255 ? 1 : 3;
	return n > VS_SN_MAX_MESSAGE ? VS_ETOOBIG : (ssize_t)n;
}

ssize_t vs_sn_encode(const struct vs_sn_packet *p, uint8_t *out, size_t cap)
{
	ssize_t total = vs_sn_size(p);
	if (total < 0)
		return total;
	if ((size_t)total > cap)
		return VS_ETOOBIG;
	const struct layout *l = &layouts[p->type];
	struct vs_sn_packet q = *p; /* field_ptr takes a mutable packet */
	size_t at = 0;
	if (total <= 255) {
		out[at++] = (uint8_t)total;
	} else {
		out[at++] = 0x01;
		out[at++] = (uint8_t)(total >> 8);
		out[at++] = (uint8_t)total;
	}
	out[at++] = p->type;
	for (int i = 0; i < 5 && l->fields[i] != F_END; i++) {
		int f = l->fields[i];
		if (field_size(f) == 1) {
			out[at++] = *(uint8_t *)field_ptr(&q, f);
		} else {
			uint16_t v = *(uint16_t *)field_ptr(&q, f);
			out[at++] = (uint8_t)(v >> 8);
			out[at++] = (uint8_t)v;
		}
	}
	if (l->var == V_OPTIONAL && p->type == VS_SN_DISCONNECT) {
		if (p->has_duration) {
			out[at++] = (uint8_t)(p->duration >> 8);
			out[at++] = (uint8_t)p->duration;
		}
	} else if (l->var == V_SUBTOPIC && (p->flags & VS_SN_TID_MASK) != VS_SN_TID_NORMAL) {
		out[at++] = (uint8_t)(p->topic_id >> 8);
		out[at++] = (uint8_t)p->topic_id;
	} else if (l->var == V_WILLTOPIC) {
		if (!p->empty_will) {
			out[at++] = p->flags;
			if (p->data.len)
				memcpy(out + at, p->data.p, p->data.len);
			at += p->data.len;
		}
	} else if (l->var != V_NONE && p->data.len) {
		memcpy(out + at, p->data.p, p->data.len);
		at += p->data.len;
	}
	return (ssize_t)at;
}

int vs_sn_unwrap(const uint8_t *buf, size_t len, struct vs_sn_encap *e)
{
	memset(e, 0, sizeof(*e));
	/* Length (of this header, itself included), 0xFE, Ctrl, Wireless Node Id; then the
	 * message, which has its own length. */
	if (len < 3 || buf[1] != VS_SN_ENCAPSULATED || buf[0] < 3 || buf[0] >= len)
		return VS_EPROTO;
	e->ctrl = buf[2];
	e->node = (struct vs_buf){buf + 3, (size_t)buf[0] - 3};
	e->inner = (struct vs_buf){buf + buf[0], len - buf[0]};
	return 0;
}

ssize_t vs_sn_wrap_header(uint8_t ctrl, const struct vs_buf *node, uint8_t *out, size_t cap)
{
	size_t n = 3 + node->len;
	if (n > 255 || n > cap)
		return VS_ETOOBIG;
	out[0] = (uint8_t)n;
	out[1] = VS_SN_ENCAPSULATED;
	out[2] = ctrl;
	if (node->len)
		memcpy(out + 3, node->p, node->len);
	return (ssize_t)n;
}
