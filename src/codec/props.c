/*
 * MQTT 5.0 properties [MQTT-2.2.2]: decoding a property block into struct vs_props, walking the
 * repeatable ones, and sizing/writing a block for the encoder.
 *
 * Two tables drive everything: `desc` gives each identifier its data type, its range rule and
 * where it lives in struct vs_props; `valid` gives each packet type the set of identifiers it
 * may carry (MQTT 5.0 table 2-4), as a 64-bit mask since every identifier is below 0x40.
 *
 * Reason codes, as the spec assigns them:
 * - an identifier that is unknown or not valid for the packet type, a value not of its data type
 *   (a truncated value, a string that is not UTF-8): Malformed Packet, 0x81. Section 2.2.2.2:
 *   "A Control Packet which contains an Identifier which is not valid for its packet type, or
 *   contains a value not of the specified data type, is a Malformed Packet."
 * - a property included twice when it may appear once, a value out of its range (Receive Maximum
 *   or Maximum Packet Size 0, a byte that must be 0 or 1, Subscription Identifier 0), a Response
 *   Topic with wildcards, Authentication Data without Authentication Method: Protocol Error,
 *   0x82. Each property's section says so in the same words, e.g. 3.1.2.11.3: "It is a Protocol
 *   Error to include the Receive Maximum value more than once or for it to have the value 0."
 * - Topic Alias 0 [MQTT-3.3.2-8]: Topic Alias invalid, 0x94, the code 3.3.2.3.4 names for an
 *   alias the receiver does not accept.
 */
#include "codec/wire.h"

#include <stddef.h>

#include "base/error.h"

enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VBI, PT_STR, PT_BIN, PT_PAIR };

#define PF_BOOL	   1 /* the byte must be 0 or 1 */
#define PF_NONZERO 2 /* 0 is a Protocol Error */
#define PF_TOPIC   4 /* a topic name: no wildcards [MQTT-3.3.2-14] */

struct pdesc {
	uint8_t type;  /* enum ptype */
	uint8_t flags; /* PF_* */
	uint16_t off;  /* offset of the field in struct vs_props */
};

#define D(id, t, f, field) [id] = {t, f, offsetof(struct vs_props, field)}
static const struct pdesc desc[64] = {
    D(VS_PROP_PAYLOAD_FORMAT, PT_BYTE, PF_BOOL, payload_format),
    D(VS_PROP_MESSAGE_EXPIRY, PT_U32, 0, message_expiry),
    D(VS_PROP_CONTENT_TYPE, PT_STR, 0, content_type),
    D(VS_PROP_RESPONSE_TOPIC, PT_STR, PF_TOPIC, response_topic),
    D(VS_PROP_CORRELATION_DATA, PT_BIN, 0, correlation_data),
    D(VS_PROP_SUB_ID, PT_VBI, PF_NONZERO, sub_id),
    D(VS_PROP_SESSION_EXPIRY, PT_U32, 0, session_expiry),
    D(VS_PROP_ASSIGNED_CLIENT_ID, PT_STR, 0, assigned_client_id),
    D(VS_PROP_SERVER_KEEPALIVE, PT_U16, 0, server_keepalive),
    D(VS_PROP_AUTH_METHOD, PT_STR, 0, auth_method),
    D(VS_PROP_AUTH_DATA, PT_BIN, 0, auth_data),
    D(VS_PROP_REQUEST_PROBLEM_INFO, PT_BYTE, PF_BOOL, request_problem_info),
    D(VS_PROP_WILL_DELAY, PT_U32, 0, will_delay),
    D(VS_PROP_REQUEST_RESPONSE_INFO, PT_BYTE, PF_BOOL, request_response_info),
    D(VS_PROP_RESPONSE_INFO, PT_STR, 0, response_info),
    D(VS_PROP_SERVER_REFERENCE, PT_STR, 0, server_reference),
    D(VS_PROP_REASON_STRING, PT_STR, 0, reason_string),
    D(VS_PROP_RECEIVE_MAX, PT_U16, PF_NONZERO, receive_max),
    D(VS_PROP_TOPIC_ALIAS_MAX, PT_U16, 0, topic_alias_max),
    D(VS_PROP_TOPIC_ALIAS, PT_U16, PF_NONZERO, topic_alias),
    D(VS_PROP_MAX_QOS, PT_BYTE, PF_BOOL, max_qos),
    D(VS_PROP_RETAIN_AVAILABLE, PT_BYTE, PF_BOOL, retain_available),
    D(VS_PROP_USER, PT_PAIR, 0, n_user),
    D(VS_PROP_MAX_PACKET_SIZE, PT_U32, PF_NONZERO, max_packet_size),
    D(VS_PROP_WILDCARD_SUB_AVAILABLE, PT_BYTE, PF_BOOL, wildcard_sub_available),
    D(VS_PROP_SUB_ID_AVAILABLE, PT_BYTE, PF_BOOL, sub_id_available),
    D(VS_PROP_SHARED_SUB_AVAILABLE, PT_BYTE, PF_BOOL, shared_sub_available),
};
#undef D

#define B(id) (1ull << (id))
#define WILL_MSG                                                                                   \
	(B(VS_PROP_PAYLOAD_FORMAT) | B(VS_PROP_MESSAGE_EXPIRY) | B(VS_PROP_CONTENT_TYPE) |         \
	 B(VS_PROP_RESPONSE_TOPIC) | B(VS_PROP_CORRELATION_DATA) | B(VS_PROP_USER))
#define ACK_PROPS (B(VS_PROP_REASON_STRING) | B(VS_PROP_USER))

/* MQTT 5.0 table 2-4: which identifiers each packet type may carry. */
static const uint64_t valid[17] = {
    [VS_CONNECT] = B(VS_PROP_SESSION_EXPIRY) | B(VS_PROP_AUTH_METHOD) | B(VS_PROP_AUTH_DATA) |
		   B(VS_PROP_REQUEST_PROBLEM_INFO) | B(VS_PROP_REQUEST_RESPONSE_INFO) |
		   B(VS_PROP_RECEIVE_MAX) | B(VS_PROP_TOPIC_ALIAS_MAX) | B(VS_PROP_USER) |
		   B(VS_PROP_MAX_PACKET_SIZE),
    [VS_CONNACK] = B(VS_PROP_SESSION_EXPIRY) | B(VS_PROP_ASSIGNED_CLIENT_ID) |
		   B(VS_PROP_SERVER_KEEPALIVE) | B(VS_PROP_AUTH_METHOD) | B(VS_PROP_AUTH_DATA) |
		   B(VS_PROP_RESPONSE_INFO) | B(VS_PROP_SERVER_REFERENCE) |
		   B(VS_PROP_REASON_STRING) | B(VS_PROP_RECEIVE_MAX) | B(VS_PROP_TOPIC_ALIAS_MAX) |
		   B(VS_PROP_MAX_QOS) | B(VS_PROP_RETAIN_AVAILABLE) | B(VS_PROP_USER) |
		   B(VS_PROP_MAX_PACKET_SIZE) | B(VS_PROP_WILDCARD_SUB_AVAILABLE) |
		   B(VS_PROP_SUB_ID_AVAILABLE) | B(VS_PROP_SHARED_SUB_AVAILABLE),
    [VS_PUBLISH] = WILL_MSG | B(VS_PROP_TOPIC_ALIAS) | B(VS_PROP_SUB_ID),
    [VS_PUBACK] = ACK_PROPS,
    [VS_PUBREC] = ACK_PROPS,
    [VS_PUBREL] = ACK_PROPS,
    [VS_PUBCOMP] = ACK_PROPS,
    [VS_SUBSCRIBE] = B(VS_PROP_SUB_ID) | B(VS_PROP_USER),
    [VS_SUBACK] = ACK_PROPS,
    [VS_UNSUBSCRIBE] = B(VS_PROP_USER),
    [VS_UNSUBACK] = ACK_PROPS,
    [VS_DISCONNECT] = B(VS_PROP_SESSION_EXPIRY) | B(VS_PROP_SERVER_REFERENCE) | ACK_PROPS,
    [VS_AUTH] = B(VS_PROP_AUTH_METHOD) | B(VS_PROP_AUTH_DATA) | ACK_PROPS,
    [VS_WILL_PROPS] = WILL_MSG | B(VS_PROP_WILL_DELAY),
};

bool vs_prop_valid(int id, int type)
{
	if (id < 0 || id >= 64 || type < 0 || type > VS_WILL_PROPS)
		return false;
	return (valid[type] >> id) & 1;
}

void vs_props_clear(struct vs_props *p)
{
	p->present = 0;
	p->raw.p = NULL;
	p->raw.len = 0;
	p->sub_id = 0;
	p->n_user = 0;
	p->users = NULL;
	p->user_raw.p = NULL;
	p->user_raw.len = 0;
	p->n_sub_ids = 0;
	p->sub_ids = NULL;
}

/* Reads one value of property id into p. Bounds and data type are checked by the rd_* calls. */
static enum vs_reason read_value(struct rd *r, int id, int type, struct vs_props *p)
{
	const struct pdesc *d = &desc[id];
	uint8_t *field = (uint8_t *)p + d->off;
	struct vs_buf b, v;
	uint32_t u32;
	uint16_t u16;
	uint8_t u8;

	switch (d->type) {
	case PT_BYTE:
		if (rd_u8(r, &u8))
			return VS_RC_MALFORMED;
		if ((d->flags & PF_BOOL) && u8 > 1)
			return VS_RC_PROTOCOL_ERROR;
		*field = u8;
		return VS_RC_SUCCESS;
	case PT_U16:
		if (rd_u16(r, &u16))
			return VS_RC_MALFORMED;
		if ((d->flags & PF_NONZERO) && u16 == 0)
			return id == VS_PROP_TOPIC_ALIAS ? VS_RC_TOPIC_ALIAS_INVALID
							 : VS_RC_PROTOCOL_ERROR;
		memcpy(field, &u16, 2);
		return VS_RC_SUCCESS;
	case PT_U32:
		if (rd_u32(r, &u32))
			return VS_RC_MALFORMED;
		if ((d->flags & PF_NONZERO) && u32 == 0)
			return VS_RC_PROTOCOL_ERROR;
		memcpy(field, &u32, 4);
		return VS_RC_SUCCESS;
	case PT_VBI: /* Subscription Identifier: 1..268,435,455 */
		if (rd_vbi(r, &u32))
			return VS_RC_MALFORMED;
		if (u32 == 0)
			return VS_RC_PROTOCOL_ERROR;
		if (p->n_sub_ids++ == 0)
			p->sub_id = u32;
		return VS_RC_SUCCESS;
	case PT_STR:
		if (rd_str(r, &b))
			return VS_RC_MALFORMED;
		if ((d->flags & PF_TOPIC) && !vs_topic_name_syntax(b.p, b.len))
			return VS_RC_PROTOCOL_ERROR;
		memcpy(field, &b, sizeof(b));
		return VS_RC_SUCCESS;
	case PT_BIN:
		if (rd_bin(r, &b))
			return VS_RC_MALFORMED;
		memcpy(field, &b, sizeof(b));
		return VS_RC_SUCCESS;
	case PT_PAIR:
		if (rd_str(r, &b) || rd_str(r, &v))
			return VS_RC_MALFORMED;
		p->n_user++;
		return VS_RC_SUCCESS;
	}
	return VS_RC_MALFORMED;
}

enum vs_reason vs_props_decode(struct rd *r, int type, struct vs_props *p)
{
	const uint64_t allowed = valid[type];
	const uint64_t repeatable = B(VS_PROP_USER) | (type == VS_PUBLISH ? B(VS_PROP_SUB_ID) : 0);
	uint32_t len;
	enum vs_reason rc;

	vs_props_clear(p);
	if (rd_vbi(r, &len) || len > rd_left(r))
		return VS_RC_MALFORMED;
	p->raw.p = r->cur;
	p->raw.len = len;
	struct rd pr = {r->cur, r->cur + len};
	r->cur += len;

	while (pr.cur < pr.end) {
		/* Identifiers are variable byte integers, but all defined ones fit in one byte:
		 * a byte >= 0x80 starts an identifier no packet may carry. */
		uint8_t id = *pr.cur++;
		if (id >= 64 || !((allowed >> id) & 1))
			return VS_RC_MALFORMED;
		if ((p->present & B(id)) && !(repeatable & B(id)))
			return VS_RC_PROTOCOL_ERROR;
		p->present |= B(id);
		rc = read_value(&pr, id, type, p);
		if (rc != VS_RC_SUCCESS)
			return rc;
	}
	/* 3.1.2.11.10: Authentication Data without Authentication Method is a Protocol Error. */
	if ((p->present & B(VS_PROP_AUTH_DATA)) && !(p->present & B(VS_PROP_AUTH_METHOD)))
		return VS_RC_PROTOCOL_ERROR;
	return VS_RC_SUCCESS;
}

/*
 * Walking a validated block. skip_value() steps over the value of `id` at r->cur; it still
 * checks bounds so that a block that was never validated cannot make it over-read.
 */
static bool skip_value(struct rd *r, int id)
{
	struct vs_buf b;
	uint32_t v;

	if (id >= 64)
		return false;
	switch (desc[id].type) {
	case PT_BYTE:
		return r->cur + 1 <= r->end && (r->cur += 1);
	case PT_U16:
		return r->cur + 2 <= r->end && (r->cur += 2);
	case PT_U32:
		return r->cur + 4 <= r->end && (r->cur += 4);
	case PT_VBI:
		return rd_vbi(r, &v) == VS_RC_SUCCESS;
	case PT_STR:
	case PT_BIN:
		return rd_bin(r, &b) == VS_RC_SUCCESS;
	case PT_PAIR:
		return rd_bin(r, &b) == VS_RC_SUCCESS && rd_bin(r, &b) == VS_RC_SUCCESS;
	}
	return false;
}

/* Advances *pos to the next property `want`, leaving r just after its identifier. */
static bool find_next(const struct vs_props *p, size_t *pos, int want, struct rd *r)
{
	if (*pos >= p->raw.len)
		return false;
	r->cur = p->raw.p + *pos;
	r->end = p->raw.p + p->raw.len;
	while (r->cur < r->end) {
		uint8_t id = *r->cur++;
		if (id == want)
			return true;
		if (!skip_value(r, id))
			return false;
	}
	return false;
}

int vs_props_next_user(const struct vs_props *p, size_t *pos, struct vs_user_prop *up)
{
	struct rd r;

	if (!find_next(p, pos, VS_PROP_USER, &r))
		return 0;
	if (rd_bin(&r, &up->key) || rd_bin(&r, &up->val))
		return 0;
	*pos = (size_t)(r.cur - p->raw.p);
	return 1;
}

int vs_props_next_sub_id(const struct vs_props *p, size_t *pos, uint32_t *id)
{
	struct rd r;

	if (!find_next(p, pos, VS_PROP_SUB_ID, &r))
		return 0;
	if (rd_vbi(&r, id))
		return 0;
	*pos = (size_t)(r.cur - p->raw.p);
	return 1;
}

size_t vs_props_copy_users(const struct vs_props *p, uint8_t *out, size_t cap)
{
	size_t pos = 0, total = 0;
	struct rd r;

	while (find_next(p, &pos, VS_PROP_USER, &r)) {
		const uint8_t *start = r.cur - 1;
		if (!skip_value(&r, VS_PROP_USER))
			break;
		size_t n = (size_t)(r.cur - start);
		if (total + n <= cap)
			memcpy(out + total, start, n);
		total += n;
		pos = (size_t)(r.cur - p->raw.p);
	}
	return total;
}

/* Encoded size of one scalar or string property (identifier included), or -1. */
static ssize_t value_size(const struct vs_props *p, int id)
{
	const struct pdesc *d = &desc[id];
	const struct vs_buf *b;

	switch (d->type) {
	case PT_BYTE:
		return 2;
	case PT_U16:
		return 3;
	case PT_U32:
		return 5;
	case PT_STR:
	case PT_BIN:
		b = (const struct vs_buf *)((const uint8_t *)p + d->off);
		return b->len > 65535 ? -1 : (ssize_t)(3 + b->len);
	}
	return -1;
}

ssize_t vs_props_size(const struct vs_props *p, int type, size_t *inner)
{
	const uint64_t special = B(VS_PROP_USER) | B(VS_PROP_SUB_ID);
	uint64_t bits = p->present & ~special;
	size_t n = 0;
	uint32_t i;

	if (bits & ~valid[type])
		return -1;
	while (bits) {
		int id = __builtin_ctzll(bits);
		ssize_t s = value_size(p, id);
		if (s < 0)
			return -1;
		n += (size_t)s;
		bits &= bits - 1;
	}
	if (p->sub_ids || (p->present & B(VS_PROP_SUB_ID))) {
		uint32_t cnt = p->sub_ids ? p->n_sub_ids : 1;
		for (i = 0; i < cnt; i++) {
			uint32_t v = p->sub_ids ? p->sub_ids[i] : p->sub_id;
			if (v > VS_MAX_SUB_ID)
				return -1;
			n += 1 + (size_t)vs_vbi_size(v);
		}
		if (cnt && !(valid[type] & B(VS_PROP_SUB_ID)))
			return -1;
	}
	if (p->users) {
		for (i = 0; i < p->n_user; i++) {
			if (p->users[i].key.len > 65535 || p->users[i].val.len > 65535)
				return -1;
			n += 5 + p->users[i].key.len + p->users[i].val.len;
		}
	} else {
		n += p->user_raw.len;
	}
	if ((p->users ? p->n_user : p->user_raw.len) && !(valid[type] & B(VS_PROP_USER)))
		return -1;
	if (n > VS_MAX_REMAINING)
		return -1;
	*inner = n;
	return vs_vbi_size((uint32_t)n) + (ssize_t)n;
}

uint8_t *vs_props_write(uint8_t *o, const struct vs_props *p, size_t inner)
{
	const uint64_t special = B(VS_PROP_USER) | B(VS_PROP_SUB_ID);
	uint64_t bits = p->present & ~special;
	uint32_t i;

	o = wr_vbi(o, (uint32_t)inner);
	while (bits) {
		int id = __builtin_ctzll(bits);
		const struct pdesc *d = &desc[id];
		const uint8_t *field = (const uint8_t *)p + d->off;
		uint16_t u16;
		uint32_t u32;
		struct vs_buf b;

		*o++ = (uint8_t)id;
		switch (d->type) {
		case PT_BYTE:
			*o++ = *field;
			break;
		case PT_U16:
			memcpy(&u16, field, 2);
			o = wr_u16(o, u16);
			break;
		case PT_U32:
			memcpy(&u32, field, 4);
			o = wr_u32(o, u32);
			break;
		default:
			memcpy(&b, field, sizeof(b));
			o = wr_bin(o, b);
			break;
		}
		bits &= bits - 1;
	}
	if (p->sub_ids) {
		for (i = 0; i < p->n_sub_ids; i++) {
			*o++ = VS_PROP_SUB_ID;
			o = wr_vbi(o, p->sub_ids[i]);
		}
	} else if (p->present & B(VS_PROP_SUB_ID)) {
		*o++ = VS_PROP_SUB_ID;
		o = wr_vbi(o, p->sub_id);
	}
	if (p->users) {
		for (i = 0; i < p->n_user; i++) {
			*o++ = VS_PROP_USER;
			o = wr_bin(o, p->users[i].key);
			o = wr_bin(o, p->users[i].val);
		}
	} else {
		o = wr_bytes(o, p->user_raw.p, p->user_raw.len);
	}
	return o;
}
