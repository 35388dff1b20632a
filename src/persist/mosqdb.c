/*
 * Mosquitto database reader: see mosqdb.h for the format in short. This file walks chunks and
 * decodes their bodies; it never trusts a length: each field is checked against the chunk's
 * end, and each chunk against the file's. Layouts below are the fixed parts as they sit on
 * disk (offsets from the start of the chunk body), padding included.
 */
#include "persist/mosqdb.h"

#include <stdio.h>
#include <string.h>

#include "base/error.h"

static const uint8_t magic[15] = {0x00, 0xB5, 0x00, 'm', 'o', 's', 'q', 'u',
				  'i',	't',  't',  'o', ' ', 'd', 'b'};

#define HDR_SIZE   (15 + 4 + 4) /* magic, crc (unused, zero), version */
#define CHUNK_HDR  8		/* u32 type, u32 length, big-endian */
#define CFG_SIZE   16		/* u64 last_db_id, u8 shutdown, u8 dbid_size, 6 padding */
#define MSG_FIXED  32		/* see parse_msg */
#define CMSG_FIXED 16		/* see parse_cmsg */
#define SUB_FIXED  12 /* u32 identifier, u16 id_len, u16 topic_len, u8 qos, u8 opts, 2 pad */
#define CLIENT_V5  16 /* i64 expiry time, u32 expiry interval, u16 last_mid, u16 id_len */
#define CLIENT_V6  24 /* v5 + u16 listener_port, u16 username_len, 4 padding */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 64-bit fields are in the writer's byte order: little-endian on every machine Mosquitto 2.0
 * ships for in practice. */
static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A cursor over one chunk body. Taking a field past the end marks it bad; callers check once. */
struct cur {
	const uint8_t *p;
	size_t len, at;
	bool bad;
};

static struct vs_mosqdb_str take(struct cur *c, size_t n)
{
	struct vs_mosqdb_str s = {NULL, 0};
	if (c->bad || n > c->len - c->at) {
		c->bad = true;
		return s;
	}
	if (n)
		s.p = c->p + c->at;
	s.len = n;
	c->at += n;
	return s;
}

/* The rest of the chunk. */
static struct vs_mosqdb_str rest(struct cur *c)
{
	return take(c, c->bad ? 0 : c->len - c->at);
}

static int fail(struct vs_mosqdb_info *info, const char *why)
{
	snprintf(info->why, sizeof(info->why), "%s", why);
	return VS_EPROTO;
}

/* A stored property block starts with its own length (a variable byte integer), which must
 * match the bytes that follow: narrows *props to the properties themselves. */
static int strip_prop_len(struct vs_mosqdb_str *props)
{
	if (!props->len)
		return 0;
	size_t pos = 0;
	uint32_t n = 0;
	for (int shift = 0;; shift += 7) {
		if (pos >= props->len || shift > 21)
			return VS_EPROTO;
		uint8_t b = props->p[pos++];
		n |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	if (n != props->len - pos)
		return VS_EPROTO;
	props->p = n ? props->p + pos : NULL;
	props->len = n;
	return 0;
}

static int parse_cfg(struct cur *c, struct vs_mosqdb_rec *r)
{
	if (c->len < CFG_SIZE)
		return VS_EPROTO;
	r->u.cfg.last_db_id = le64(c->p);
	r->u.cfg.shutdown = c->p[8];
	r->u.cfg.dbid_size = c->p[9];
	return r->u.cfg.dbid_size == 8 ? 0 : VS_EPROTO;
}

/* u64 store_id, i64 expiry_time, u32 payloadlen, u16 source_mid, u16 source_id_len,
 * u16 source_username_len, u16 topic_len, u16 source_port, u8 qos, u8 retain; then source id,
 * source username, topic, payload, and properties to the end of the chunk. */
static int parse_msg(struct cur *c, struct vs_mosqdb_rec *r)
{
	struct vs_mosqdb_msg *m = &r->u.msg;
	if (c->len < MSG_FIXED)
		return VS_EPROTO;
	const uint8_t *f = c->p;
	m->store_id = le64(f);
	m->expiry_time = (int64_t)le64(f + 8);
	uint32_t payloadlen = be32(f + 16);
	m->source_mid = be16(f + 20);
	uint16_t id_len = be16(f + 22), user_len = be16(f + 24), topic_len = be16(f + 26);
	m->source_port = be16(f + 28);
	m->qos = f[30];
	m->retain = f[31] != 0;
	c->at = MSG_FIXED;
	m->source_id = take(c, id_len);
	m->source_username = take(c, user_len);
	m->topic = take(c, topic_len);
	m->payload = take(c, payloadlen);
	m->props = rest(c);
	if (c->bad || topic_len == 0)
		return VS_EPROTO;
	return strip_prop_len(&m->props);
}

/* u64 store_id, u16 mid, u16 id_len, u8 qos, u8 state, u8 retain<<4|dup, u8 direction; then the
 * client id and properties (with their length prefix) to the end of the chunk. */
static int parse_cmsg(struct cur *c, struct vs_mosqdb_rec *r)
{
	struct vs_mosqdb_client_msg *m = &r->u.cmsg;
	if (c->len < CMSG_FIXED)
		return VS_EPROTO;
	const uint8_t *f = c->p;
	m->store_id = le64(f);
	m->mid = be16(f + 8);
	uint16_t id_len = be16(f + 10);
	m->qos = f[12];
	m->state = f[13];
	m->retain = (f[14] & 0xf0) != 0;
	m->dup = (f[14] & 0x0f) != 0;
	m->direction = f[15];
	c->at = CMSG_FIXED;
	m->client_id = take(c, id_len);
	m->props = rest(c);
	if (c->bad || id_len == 0)
		return VS_EPROTO;
	return strip_prop_len(&m->props);
}

static int parse_sub(struct cur *c, struct vs_mosqdb_rec *r)
{
	struct vs_mosqdb_sub *s = &r->u.sub;
	if (c->len < SUB_FIXED)
		return VS_EPROTO;
	const uint8_t *f = c->p;
	s->identifier = be32(f);
	uint16_t id_len = be16(f + 4), topic_len = be16(f + 6);
	s->qos = f[8];
	s->options = f[9];
	c->at = SUB_FIXED;
	s->client_id = take(c, id_len);
	s->topic = take(c, topic_len);
	return c->bad || id_len == 0 || topic_len == 0 ? VS_EPROTO : 0;
}

static int parse_client(struct cur *c, struct vs_mosqdb_rec *r, uint32_t version)
{
	struct vs_mosqdb_client *x = &r->u.client;
	size_t fixed = version >= 6 ? CLIENT_V6 : CLIENT_V5;
	if (c->len < fixed)
		return VS_EPROTO;
	const uint8_t *f = c->p;
	x->session_expiry_time = (int64_t)le64(f);
	x->session_expiry_interval = be32(f + 8);
	x->last_mid = be16(f + 12);
	uint16_t id_len = be16(f + 14), user_len = 0;
	if (version >= 6) {
		x->listener_port = be16(f + 16);
		user_len = be16(f + 18);
	}
	c->at = fixed;
	x->client_id = take(c, id_len);
	x->username = take(c, user_len);
	return c->bad || id_len == 0 ? VS_EPROTO : 0;
}

static int parse_chunk(uint32_t type, struct cur *c, uint32_t version, struct vs_mosqdb_rec *r)
{
	switch (type) {
	case VS_MOSQDB_CFG:
		return parse_cfg(c, r);
	case VS_MOSQDB_MSG_STORE:
		return parse_msg(c, r);
	case VS_MOSQDB_CLIENT_MSG:
		return parse_cmsg(c, r);
	case VS_MOSQDB_RETAIN:
		if (c->len < 8)
			return VS_EPROTO;
		r->u.retain_store_id = le64(c->p);
		return 0;
	case VS_MOSQDB_SUB:
		return parse_sub(c, r);
	case VS_MOSQDB_CLIENT:
		return parse_client(c, r, version);
	default:
		return 1; /* unknown: skipped */
	}
}

static const char *chunk_name(uint32_t type)
{
	static const char *names[] = {"?",	  "configuration", "message", "client message",
				      "retained", "subscription",  "client"};
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "unknown";
}

bool vs_mosqdb_is_mosqdb(const uint8_t *buf, size_t len)
{
	return len >= sizeof(magic) && memcmp(buf, magic, sizeof(magic)) == 0;
}

int vs_mosqdb_parse(const uint8_t *buf, size_t len, vs_mosqdb_fn fn, void *ctx,
		    struct vs_mosqdb_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = len;
	if (!vs_mosqdb_is_mosqdb(buf, len))
		return fail(info, "not a Mosquitto database (no magic)");
	if (len < HDR_SIZE)
		return fail(info, "header truncated");
	info->version = be32(buf + 19);
	if (info->version < VS_MOSQDB_VERSION_MIN || info->version > VS_MOSQDB_VERSION_MAX) {
		snprintf(info->why, sizeof(info->why),
			 "format version %u is not supported (versions %d-%d: Mosquitto 1.6, 2.0)",
			 info->version, VS_MOSQDB_VERSION_MIN, VS_MOSQDB_VERSION_MAX);
		return VS_EPROTO;
	}
	size_t at = HDR_SIZE;
	info->valid_end = at;
	while (at < len) {
		if (len - at < CHUNK_HDR) {
			snprintf(info->why, sizeof(info->why), "chunk header truncated");
			break;
		}
		uint32_t type = be32(buf + at), clen = be32(buf + at + 4);
		if (clen > len - at - CHUNK_HDR) {
			snprintf(info->why, sizeof(info->why),
				 "%s chunk of %u bytes runs past the end of the file",
				 chunk_name(type), clen);
			break;
		}
		struct cur c = {.p = buf + at + CHUNK_HDR, .len = clen};
		struct vs_mosqdb_rec r;
		memset(&r, 0, sizeof(r));
		r.type = type;
		r.offset = at;
		int rc = parse_chunk(type, &c, info->version, &r);
		if (rc < 0) {
			snprintf(info->why, sizeof(info->why), "%s chunk of %u bytes is malformed",
				 chunk_name(type), clen);
			break;
		}
		at += CHUNK_HDR + clen;
		info->valid_end = at;
		if (rc > 0) {
			info->unknown++;
			continue;
		}
		info->chunks++;
		rc = fn(ctx, &r);
		if (rc < 0)
			return rc;
	}
	info->damaged = info->valid_end < len;
	return info->damaged ? 1 : 0;
}

/* ---- Properties ---------------------------------------------------------------------------- */

/* The value type of each property identifier (MQTT 5.0 section 2.2.2.2). */
enum ptype { P_NONE, P_BYTE, P_U16, P_U32, P_VBI, P_STR, P_PAIR };

static enum ptype prop_type(uint8_t id)
{
	switch (id) {
	case 0x01:
	case 0x17:
	case 0x19:
	case 0x24:
	case 0x25:
	case 0x28:
	case 0x29:
	case 0x2A:
		return P_BYTE;
	case 0x13:
	case 0x21:
	case 0x22:
	case 0x23:
		return P_U16;
	case 0x02:
	case 0x11:
	case 0x18:
	case 0x27:
		return P_U32;
	case 0x0B:
		return P_VBI;
	case 0x03:
	case 0x08:
	case 0x09:
	case 0x12:
	case 0x15:
	case 0x16:
	case 0x1A:
	case 0x1C:
	case 0x1F:
		return P_STR;
	case 0x26:
		return P_PAIR;
	default:
		return P_NONE;
	}
}

static bool take_str(struct cur *c, struct vs_mosqdb_str *out)
{
	struct vs_mosqdb_str l = take(c, 2);
	if (c->bad)
		return false;
	*out = take(c, be16(l.p));
	return !c->bad;
}

int vs_mosqdb_prop_next(struct vs_mosqdb_str props, size_t *pos, struct vs_mosqdb_prop *out)
{
	if (*pos >= props.len)
		return 0;
	struct cur c = {.p = props.p, .len = props.len, .at = *pos};
	memset(out, 0, sizeof(*out));
	out->id = c.p[c.at++];
	struct vs_mosqdb_str v;
	switch (prop_type(out->id)) {
	case P_BYTE:
		v = take(&c, 1);
		out->num = c.bad ? 0 : v.p[0];
		break;
	case P_U16:
		v = take(&c, 2);
		out->num = c.bad ? 0 : be16(v.p);
		break;
	case P_U32:
		v = take(&c, 4);
		out->num = c.bad ? 0 : be32(v.p);
		break;
	case P_VBI:
		for (int shift = 0;; shift += 7) {
			v = take(&c, 1);
			if (c.bad || shift > 21)
				return VS_EPROTO;
			out->num |= (uint32_t)(v.p[0] & 0x7f) << shift;
			if (!(v.p[0] & 0x80))
				break;
		}
		break;
	case P_STR:
		take_str(&c, &out->str);
		break;
	case P_PAIR:
		if (take_str(&c, &out->str))
			take_str(&c, &out->value);
		break;
	default:
		return VS_EPROTO;
	}
	if (c.bad)
		return VS_EPROTO;
	out->raw.p = props.p + *pos;
	out->raw.len = c.at - *pos;
	*pos = c.at;
	return 1;
}
