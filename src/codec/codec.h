/*
 * The MQTT wire codec: every control packet of MQTT 3.1 (protocol level 3), 3.1.1 (level 4) and
 * 5.0 (level 5), in both directions.
 *
 * Decoding works in place, in the style of picohttpparser: no allocation, no I/O, no global
 * state. Every vs_buf in a decoded packet is a view into the caller's input buffer and is valid
 * only as long as that buffer is. Lists whose length is not bounded by the spec (subscription
 * entries, user properties, subscription identifiers, SUBACK codes) are returned as a raw view
 * plus a count, and walked with the iterators below.
 *
 * Encoding is two steps: vs_codec_size() computes the exact encoded size, then vs_codec_encode()
 * writes into caller memory. Neither allocates.
 *
 * The codec checks everything a single packet can be checked for on its own: fixed-header flags,
 * remaining length, string and UTF-8 rules, property ids valid for the packet type, duplicate
 * properties, value ranges, topic name and filter syntax, reserved bits. What depends on the
 * connection's state (topic alias ranges, receive maximum, packet-id reuse, direction-specific
 * rules like a client sending a Subscription Identifier in PUBLISH) is checked by src/proto/.
 * So is the optional check that a payload with Payload Format Indicator 1 is UTF-8 (0x99).
 *
 * Which reason code each rejection carries is tabled at the top of src/codec/decode.c and
 * src/codec/props.c. In short: unparseable -> 0x81 (including a property not valid for the
 * packet type, as 5.0 section 2.2.2.2 says); parseable but not allowed (duplicate property,
 * value out of range, packet id 0, no subscriptions) -> 0x82; wildcard or empty PUBLISH/Will
 * topic -> 0x90; bad SUBSCRIBE/UNSUBSCRIBE filter -> 0x8F; Topic Alias 0 -> 0x94.
 */
#ifndef VS_CODEC_CODEC_H
#define VS_CODEC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec/reason.h"

/* Protocol levels as they appear in CONNECT. */
enum vs_version {
	VS_V31 = 3,  /* MQTT 3.1, protocol name "MQIsdp" */
	VS_V311 = 4, /* MQTT 3.1.1, protocol name "MQTT" */
	VS_V5 = 5,   /* MQTT 5.0, protocol name "MQTT" */
};

enum vs_ptype {
	VS_CONNECT = 1,
	VS_CONNACK = 2,
	VS_PUBLISH = 3,
	VS_PUBACK = 4,
	VS_PUBREC = 5,
	VS_PUBREL = 6,
	VS_PUBCOMP = 7,
	VS_SUBSCRIBE = 8,
	VS_SUBACK = 9,
	VS_UNSUBSCRIBE = 10,
	VS_UNSUBACK = 11,
	VS_PINGREQ = 12,
	VS_PINGRESP = 13,
	VS_DISCONNECT = 14,
	VS_AUTH = 15,
};

/* MQTT 5.0 property identifiers (section 2.2.2.2). */
enum vs_prop_id {
	VS_PROP_PAYLOAD_FORMAT = 0x01,
	VS_PROP_MESSAGE_EXPIRY = 0x02,
	VS_PROP_CONTENT_TYPE = 0x03,
	VS_PROP_RESPONSE_TOPIC = 0x08,
	VS_PROP_CORRELATION_DATA = 0x09,
	VS_PROP_SUB_ID = 0x0B,
	VS_PROP_SESSION_EXPIRY = 0x11,
	VS_PROP_ASSIGNED_CLIENT_ID = 0x12,
	VS_PROP_SERVER_KEEPALIVE = 0x13,
	VS_PROP_AUTH_METHOD = 0x15,
	VS_PROP_AUTH_DATA = 0x16,
	VS_PROP_REQUEST_PROBLEM_INFO = 0x17,
	VS_PROP_WILL_DELAY = 0x18,
	VS_PROP_REQUEST_RESPONSE_INFO = 0x19,
	VS_PROP_RESPONSE_INFO = 0x1A,
	VS_PROP_SERVER_REFERENCE = 0x1C,
	VS_PROP_REASON_STRING = 0x1F,
	VS_PROP_RECEIVE_MAX = 0x21,
	VS_PROP_TOPIC_ALIAS_MAX = 0x22,
	VS_PROP_TOPIC_ALIAS = 0x23,
	VS_PROP_MAX_QOS = 0x24,
	VS_PROP_RETAIN_AVAILABLE = 0x25,
	VS_PROP_USER = 0x26,
	VS_PROP_MAX_PACKET_SIZE = 0x27,
	VS_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	VS_PROP_SUB_ID_AVAILABLE = 0x29,
	VS_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Pseudo packet type for the will properties inside CONNECT, for vs_prop_valid(). */
#define VS_WILL_PROPS 16

/* The largest remaining length a variable byte integer can express (268,435,455). */
#define VS_MAX_REMAINING 268435455u
/* The largest Subscription Identifier (a variable byte integer, 1..268,435,455). */
#define VS_MAX_SUB_ID 268435455u

/* A view of bytes: in decoded packets it points into the input buffer. */
struct vs_buf {
	const uint8_t *p;
	size_t len;
};

/* A user property as a pair of views (for encoding lists and for the iterator). */
struct vs_user_prop {
	struct vs_buf key;
	struct vs_buf val;
};

/*
 * MQTT 5.0 properties of one packet. `present` has bit (1ull << id) set for each property that
 * was decoded, or that the encoder should write. Fields are meaningful only when their bit is set
 * (the decoder does not clear the others, to keep PUBLISH decoding cheap). For 3.x packets the
 * decoder sets present = 0 and raw empty.
 *
 * Repeatable properties:
 * - User Property (0x26): decoding sets n_user and leaves them in `raw`; walk with
 *   vs_props_next_user(). Encoding writes `users[0..n_user)` when n_user > 0 (the bit need not
 *   be set), or, if `users` is NULL, copies `user_raw` verbatim (already encoded 0x26 entries, as
 *   produced by vs_props_copy_users(), to forward them in order without re-parsing).
 * - Subscription Identifier (0x0B): decoding sets n_sub_ids and sub_id (the first); walk all
 *   with vs_props_next_sub_id(). Encoding writes `sub_ids[0..n_sub_ids)`, or `sub_id` alone
 *   when sub_ids is NULL and the bit is set.
 */
struct vs_props {
	uint64_t present;
	struct vs_buf raw; /* decoded: the whole property block, without its length */

	uint8_t payload_format;		  /* 0x01: 0 unspecified bytes, 1 UTF-8 */
	uint8_t request_problem_info;	  /* 0x17: 0 or 1 */
	uint8_t request_response_info;	  /* 0x19: 0 or 1 */
	uint8_t max_qos;		  /* 0x24: 0 or 1 */
	uint8_t retain_available;	  /* 0x25: 0 or 1 */
	uint8_t wildcard_sub_available;	  /* 0x28 */
	uint8_t sub_id_available;	  /* 0x29 */
	uint8_t shared_sub_available;	  /* 0x2A */
	uint16_t server_keepalive;	  /* 0x13 */
	uint16_t receive_max;		  /* 0x21: never 0 */
	uint16_t topic_alias_max;	  /* 0x22 */
	uint16_t topic_alias;		  /* 0x23: never 0 */
	uint32_t message_expiry;	  /* 0x02 */
	uint32_t session_expiry;	  /* 0x11 */
	uint32_t will_delay;		  /* 0x18 */
	uint32_t max_packet_size;	  /* 0x27: never 0 */
	uint32_t sub_id;		  /* 0x0B: the first one; 1..VS_MAX_SUB_ID */
	struct vs_buf content_type;	  /* 0x03 */
	struct vs_buf response_topic;	  /* 0x08: a valid topic name, no wildcards */
	struct vs_buf correlation_data;	  /* 0x09: binary */
	struct vs_buf assigned_client_id; /* 0x12 */
	struct vs_buf auth_method;	  /* 0x15 */
	struct vs_buf auth_data;	  /* 0x16: binary */
	struct vs_buf response_info;	  /* 0x1A */
	struct vs_buf server_reference;	  /* 0x1C */
	struct vs_buf reason_string;	  /* 0x1F */

	uint32_t n_user;		  /* number of user properties */
	const struct vs_user_prop *users; /* encode only: n_user pairs */
	struct vs_buf user_raw;		  /* encode only: pre-encoded entries when users is NULL */
	uint32_t n_sub_ids;		  /* number of subscription identifiers */
	const uint32_t *sub_ids;	  /* encode only */
};

/* One entry of a SUBSCRIBE (or, with only `filter` used, of an UNSUBSCRIBE). */
struct vs_sub_entry {
	struct vs_buf filter;
	uint8_t qos;		  /* 0..2 */
	bool no_local;		  /* 5.0 */
	bool retain_as_published; /* 5.0 */
	uint8_t retain_handling;  /* 5.0: 0..2 */
};

struct vs_connect {
	uint8_t version;    /* enum vs_version */
	bool clean;	    /* Clean Session (3.x) / Clean Start (5.0) */
	uint16_t keepalive; /* seconds, 0 = off */
	struct vs_props props;
	struct vs_buf client_id;
	bool will;
	uint8_t will_qos;
	bool will_retain;
	struct vs_props will_props;
	struct vs_buf will_topic;
	struct vs_buf will_payload;
	bool has_username;
	bool has_password;
	struct vs_buf username;
	struct vs_buf password;
	bool bridge; /* 3.x protocol level with its 0x80 bit: a Mosquitto-style bridge
		      * (try_private), which must not be sent its own messages back */
};

struct vs_connack {
	bool session_present;
	uint8_t reason; /* 5.0 reason code, or 3.x return code (enum vs_connack3) */
	struct vs_props props;
};

struct vs_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	struct vs_buf topic; /* may be empty in 5.0 when a topic alias is set */
	uint16_t packet_id;  /* only when qos > 0 */
	struct vs_props props;
	struct vs_buf payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct vs_ack {
	uint16_t packet_id;
	uint8_t reason; /* 5.0; 0 (Success) when absent */
	struct vs_props props;
};

struct vs_subscribe {
	uint16_t packet_id;
	struct vs_props props;
	uint32_t count;	   /* number of entries, >= 1 [MQTT-3.8.3-3] */
	struct vs_buf raw; /* decoded: the payload; walk with vs_subscribe_next() */
	const struct vs_sub_entry *entries; /* encode only: count entries */
};

struct vs_unsubscribe {
	uint16_t packet_id;
	struct vs_props props;
	uint32_t count;		      /* >= 1 [MQTT-3.10.3-2] */
	struct vs_buf raw;	      /* decoded: walk with vs_unsubscribe_next() */
	const struct vs_buf *filters; /* encode only */
};

/* SUBACK and UNSUBACK (3.1.1 UNSUBACK has no codes: count is 0). */
struct vs_suback {
	uint16_t packet_id;
	struct vs_props props;
	uint32_t count;
	const uint8_t *codes;
};

/* DISCONNECT and AUTH. */
struct vs_disconnect {
	uint8_t reason;
	struct vs_props props;
};

struct vs_packet {
	uint8_t type;  /* enum vs_ptype */
	uint8_t flags; /* the low nibble of the fixed header, as decoded */
	union {
		struct vs_connect connect;
		struct vs_connack connack;
		struct vs_publish publish;
		struct vs_ack ack;
		struct vs_subscribe subscribe;
		struct vs_unsubscribe unsubscribe;
		struct vs_suback suback;
		struct vs_disconnect disconnect; /* also AUTH */
	};
};

/* Options for decoding: what the connection knows. */
struct vs_decode_opts {
	uint8_t version; /* 0 before CONNECT (only CONNECT is accepted), else enum vs_version */
	uint32_t max_packet_size; /* whole packet, fixed header included; 0 = protocol maximum */
};

/*
 * Reads the fixed header. Returns the header length (2..5) and sets *remaining, 0 if buf does
 * not yet hold the whole header, or VS_EPROTO with *why = VS_RC_MALFORMED for a variable byte
 * integer longer than 4 bytes [MQTT-1.5.5-1] (detected at the fourth byte's continuation bit).
 */
int vs_codec_frame(const uint8_t *buf, size_t len, uint32_t *remaining, enum vs_reason *why);

/*
 * Decodes one packet from the start of buf.
 * Returns the bytes consumed (> 0) and fills *out; 0 if buf does not hold a whole packet yet
 * (out is untouched); VS_EPROTO if the packet is malformed or violates the protocol, with *why
 * set to the reason code the spec requires (VS_RC_MALFORMED, VS_RC_PROTOCOL_ERROR,
 * VS_RC_PACKET_TOO_LARGE, VS_RC_UNSUPPORTED_VERSION for a CONNECT with an unknown protocol
 * level, VS_RC_TOPIC_NAME_INVALID, ...). A packet larger than opts->max_packet_size fails as soon
 * as its fixed header is readable, before the rest has arrived. A bad first byte (reserved
 * type, wrong flags, QoS 3, anything but CONNECT when opts->version is 0) fails from that byte
 * alone. On VS_RC_UNSUPPORTED_VERSION, out->type is VS_CONNECT and out->connect.version holds
 * the level the client asked for, so the caller can pick the CONNACK form. A CONNECT is always
 * decoded by its own protocol level, whatever opts->version says.
 */
ssize_t vs_codec_decode(const uint8_t *buf, size_t len, const struct vs_decode_opts *opts,
			struct vs_packet *out, enum vs_reason *why);

/*
 * Returns the exact encoded size of p for the protocol version, or VS_EPROTO if p cannot be
 * encoded (a string over 65,535 bytes, remaining length over the maximum, ...). Properties and
 * 5.0-only fields are ignored for 3.x.
 */
ssize_t vs_codec_size(const struct vs_packet *p, int version);

/*
 * Writes p into out, which must have room for vs_codec_size() bytes (cap). Returns the bytes
 * written, or VS_EPROTO / VS_ETOOBIG (cap too small). Does not read p->flags: the fixed-header
 * flags are derived from the packet fields.
 * For both functions: a CONNECT with version 0 is encoded at p->connect.version; a SUBSCRIBE or
 * UNSUBSCRIBE whose `entries`/`filters` is NULL copies its decoded `raw` list verbatim (for
 * forwarding, same version only); 5.0 acks, DISCONNECT and AUTH use the shortest form (no reason
 * byte when it is 0 and there are no properties). Property values are not range-checked, but a
 * property not valid for the packet type is VS_EPROTO.
 */
ssize_t vs_codec_encode(const struct vs_packet *p, int version, uint8_t *out, size_t cap);

/* Iterators over decoded lists. Start with *pos = 0; each returns 1 and fills the entry while
 * there is one, then 0. The lists were validated by vs_codec_decode(). */
int vs_subscribe_next(const struct vs_subscribe *s, int version, size_t *pos,
		      struct vs_sub_entry *e);
int vs_unsubscribe_next(const struct vs_unsubscribe *u, size_t *pos, struct vs_buf *filter);
int vs_props_next_user(const struct vs_props *p, size_t *pos, struct vs_user_prop *up);
int vs_props_next_sub_id(const struct vs_props *p, size_t *pos, uint32_t *id);

/*
 * Copies the encoded user-property entries of a decoded property block, in order, into out
 * (cap bytes). Returns the bytes needed (call with cap 0 to size), suitable for
 * vs_props.user_raw when forwarding.
 */
size_t vs_props_copy_users(const struct vs_props *p, uint8_t *out, size_t cap);

/* The packet type's name as the specification writes it ("PUBACK"); "reserved" for 0. */
const char *vs_packet_name(int type);

/* Whether property id may appear in packet type (or VS_WILL_PROPS) [MQTT-2.2.2-2]. */
bool vs_prop_valid(int id, int type);

/* Whether 5.0 reason code rc may appear in packet type (CONNACK, PUBACK..PUBCOMP, SUBACK codes,
 * UNSUBACK codes, DISCONNECT, AUTH). The decoder rejects others with VS_RC_PROTOCOL_ERROR. */
bool vs_reason_valid(int rc, int type);

/* Variable byte integer. encode returns bytes written (1..4) into out (4 bytes of room), or
 * VS_EPROTO if v > VS_MAX_REMAINING. decode returns bytes read, 0 if more are needed, or
 * VS_EPROTO. vbi_size returns 1..4. */
int vs_vbi_encode(uint32_t v, uint8_t *out);
int vs_vbi_decode(const uint8_t *buf, size_t len, uint32_t *v);
int vs_vbi_size(uint32_t v);

/* A well-formed UTF-8 string as MQTT requires: no U+0000 [MQTT-1.5.4-2], no surrogates
 * U+D800..U+DFFF, no overlong forms [MQTT-1.5.4-1]. */
bool vs_utf8_valid(const uint8_t *s, size_t len);

/* Topic name: at least one character, no '+' or '#' [MQTT-4.7.3-1], [MQTT-3.3.2-2], and valid
 * UTF-8 (both topic functions check vs_utf8_valid() too). */
bool vs_topic_name_valid(const uint8_t *s, size_t len);
/* Topic filter: at least one character; '#' only last and alone in its level [MQTT-4.7.1-2];
 * '+' alone in its level [MQTT-4.7.1-3]; a $share/{group}/{filter} has a non-empty group without
 * '+', '#' or '/' and a non-empty valid filter [MQTT-4.8.2-1], [MQTT-4.8.2-2]. */
bool vs_topic_filter_valid(const uint8_t *s, size_t len);

/* Whether topic name t matches filter f (both valid, NUL-terminated): '+' one level, a final
 * '#' any number including none ("a/#" matches "a") [MQTT-4.7.1-2], [MQTT-4.7.1-3]; a filter
 * starting with a wildcard does not match a '$' topic [MQTT-4.7.2-1]. For one filter at a time
 * (a tool's -T, a bridge's topic): the broker matches through its trie. */
bool vs_topic_match(const char *f, const char *t);
/* True when the topic name or filter s has more than max levels (max 0: never). The levels of a
 * $share/{group}/{filter} are its filter's. Costs nothing for names shorter than max bytes. */
bool vs_topic_too_deep(const uint8_t *s, size_t len, int max);

#endif
