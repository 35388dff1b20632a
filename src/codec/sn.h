/*
 * The MQTT-SN 1.2 wire codec: every message of the spec (section 5), both directions, and the
 * forwarder encapsulation (section 5.5).
 *
 * An MQTT-SN message is one datagram: a length (one byte, or 0x01 and two bytes for 256 and
 * more), a type, then fixed fields and at most one variable-length field at the end (a client
 * id, a topic name, a payload, a will). So a decoded message is a handful of integers and one
 * view, `data`, into the caller's datagram. As with the MQTT codec: no allocation, no I/O, and
 * the caller's buffer must outlive the views.
 *
 * What the codec checks: the length field against the datagram (a datagram is one message; bytes
 * after it are refused), each type's fixed size, the flags' reserved topic-id type 0b11 and a
 * QoS of -1 where the type uses those bits, the protocol id of CONNECT (0x01). What depends on
 * the gateway's state (a topic id that is registered, a message id in use) is the gateway's.
 */
#ifndef VS_CODEC_SN_H
#define VS_CODEC_SN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec/codec.h"

enum vs_sn_type {
	VS_SN_ADVERTISE = 0x00,
	VS_SN_SEARCHGW = 0x01,
	VS_SN_GWINFO = 0x02,
	VS_SN_CONNECT = 0x04,
	VS_SN_CONNACK = 0x05,
	VS_SN_WILLTOPICREQ = 0x06,
	VS_SN_WILLTOPIC = 0x07,
	VS_SN_WILLMSGREQ = 0x08,
	VS_SN_WILLMSG = 0x09,
	VS_SN_REGISTER = 0x0A,
	VS_SN_REGACK = 0x0B,
	VS_SN_PUBLISH = 0x0C,
	VS_SN_PUBACK = 0x0D,
	VS_SN_PUBCOMP = 0x0E,
	VS_SN_PUBREC = 0x0F,
	VS_SN_PUBREL = 0x10,
	VS_SN_SUBSCRIBE = 0x12,
	VS_SN_SUBACK = 0x13,
	VS_SN_UNSUBSCRIBE = 0x14,
	VS_SN_UNSUBACK = 0x15,
	VS_SN_PINGREQ = 0x16,
	VS_SN_PINGRESP = 0x17,
	VS_SN_DISCONNECT = 0x18,
	VS_SN_WILLTOPICUPD = 0x1A,
	VS_SN_WILLTOPICRESP = 0x1B,
	VS_SN_WILLMSGUPD = 0x1C,
	VS_SN_WILLMSGRESP = 0x1D,
	VS_SN_ENCAPSULATED = 0xFE,
};

/* The Flags field (section 5.3.4). */
enum {
	VS_SN_DUP = 0x80,
	VS_SN_QOS_MASK = 0x60, /* 0b00 QoS 0, 0b01 QoS 1, 0b10 QoS 2, 0b11 QoS -1 */
	VS_SN_RETAIN = 0x10,
	VS_SN_WILL = 0x08,
	VS_SN_CLEAN = 0x04,
	VS_SN_TID_MASK = 0x03,
};

/* TopicIdType (the flags' low two bits). */
enum vs_sn_tid_type {
	VS_SN_TID_NORMAL = 0,	  /* a registered id; in SUBSCRIBE/UNSUBSCRIBE, a topic name */
	VS_SN_TID_PREDEFINED = 1, /* an id both sides know beforehand */
	VS_SN_TID_SHORT = 2,	  /* two characters in the id field */
};

/* Return codes (section 5.3.10). */
enum vs_sn_rc {
	VS_SN_RC_ACCEPTED = 0x00,
	VS_SN_RC_CONGESTION = 0x01,
	VS_SN_RC_INVALID_TOPIC = 0x02,
	VS_SN_RC_NOT_SUPPORTED = 0x03,
};

/* The largest message: the three-byte length form's maximum. */
#define VS_SN_MAX_MESSAGE 65535

/*
 * One message. Fields a type does not have are 0. `data` is the type's variable part: the
 * client id (CONNECT, PINGREQ), topic name (REGISTER, WILLTOPIC, WILLTOPICUPD, and SUBSCRIBE /
 * UNSUBSCRIBE with topic-id type NORMAL), payload (PUBLISH), will message (WILLMSG, WILLMSGUPD),
 * gateway address (GWINFO). For SUBSCRIBE / UNSUBSCRIBE with a predefined id or a short name,
 * topic_id holds it and data is empty.
 */
struct vs_sn_packet {
	uint8_t type;	   /* enum vs_sn_type */
	uint8_t flags;	   /* the Flags byte, where the type has one */
	uint8_t rc;	   /* ReturnCode (CONNACK, REGACK, PUBACK, SUBACK, WILL*RESP) */
	uint8_t gw_id;	   /* ADVERTISE, GWINFO */
	uint8_t radius;	   /* SEARCHGW */
	uint8_t protocol;  /* CONNECT: ProtocolId (always 0x01 once decoded) */
	bool has_duration; /* DISCONNECT carries a sleep duration */
	bool empty_will;   /* WILLTOPIC / WILLTOPICUPD with no flags and no topic: delete it */
	uint16_t duration; /* ADVERTISE, CONNECT (keep-alive), DISCONNECT (sleep), seconds */
	uint16_t topic_id; /* REGISTER, REGACK, PUBLISH, PUBACK, SUBACK, SUBSCRIBE/UNSUBSCRIBE */
	uint16_t msg_id;
	struct vs_buf data;
};

/* The QoS in flags as MQTT-SN has it: 0, 1, 2, or -1. */
static inline int vs_sn_qos(uint8_t flags)
{
	int q = (flags & VS_SN_QOS_MASK) >> 5;
	return q == 3 ? -1 : q;
}

/* Flags bits for QoS q (-1..2). */
static inline uint8_t vs_sn_qos_flags(int q)
{
	return (uint8_t)((q < 0 ? 3 : q) << 5);
}

/*
 * Decodes the one message that fills buf[0..len). Returns 0, or VS_EPROTO when it is
 * malformed, with *why (if not NULL) naming what was wrong. An ENCAPSULATED message is not
 * decoded here: see vs_sn_unwrap().
 */
int vs_sn_decode(const uint8_t *buf, size_t len, struct vs_sn_packet *p, const char **why);

/* The encoded size of p (the length form included), VS_ETOOBIG past VS_SN_MAX_MESSAGE, or
 * VS_EPROTO for a type without a layout (ENCAPSULATED, unknown). The encoder writes what it is
 * given: the caller builds only messages the decoder accepts. */
ssize_t vs_sn_size(const struct vs_sn_packet *p);
/* Encodes p into out[0..cap). Returns its length, or VS_ETOOBIG when cap is too small. */
ssize_t vs_sn_encode(const struct vs_sn_packet *p, uint8_t *out, size_t cap);

/* The forwarder encapsulation (section 5.5): a message from or for one wireless node. */
struct vs_sn_encap {
	uint8_t ctrl;	     /* Ctrl: the broadcast radius in bits 0-1 */
	struct vs_buf node;  /* Wireless Node Id (may be empty) */
	struct vs_buf inner; /* the MQTT-SN message carried */
};

/* Splits an ENCAPSULATED datagram. Returns 0, or VS_EPROTO (not one, or malformed). The inner
 * message is then decoded with vs_sn_decode(). */
int vs_sn_unwrap(const uint8_t *buf, size_t len, struct vs_sn_encap *e);
/* Writes the encapsulation header for node id and ctrl (the inner message follows it).
 * Returns the header's length, or VS_ETOOBIG. */
ssize_t vs_sn_wrap_header(uint8_t ctrl, const struct vs_buf *node, uint8_t *out, size_t cap);

/* The message type's name ("PUBLISH"), or "?" */
const char *vs_sn_type_name(int type);

#endif
