/*
 * The server side of the MQTT protocol rules, sans I/O: what a broker must check and decide for
 * one connection, as pure functions and small state machines. They never lock, log, allocate
 * (except the alias table), send or persist; the broker (src/broker) calls them with what it
 * knows of the connection and does what they return: acknowledge, route, refuse, disconnect with
 * a reason code. Each rule cites the conformance statement it implements, and each has a unit
 * test (tests/unit/test_proto_server.c).
 *
 * Reason codes are MQTT 5.0's (codec/reason.h); for 3.x the broker maps them (a CONNACK return
 * code, or closing the connection, as 3.1.1 has no reason codes).
 */
#ifndef VS_PROTO_SERVER_H
#define VS_PROTO_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/codec.h"

/* ---- CONNECT ------------------------------------------------------------------------------- */

/*
 * The checks of a CONNECT's client id that need nothing but the packet and the listener's
 * allow_zero_length_clientid [MQTT-3.1.3-7], [MQTT-3.1.3-8]; MQTT 3.1 ids are at most 23 bytes.
 * Returns VS_RC_SUCCESS or VS_RC_CLIENT_ID_INVALID with *why (*rc3: the 3.x return code).
 */
int vs_sproto_check_client_id(const struct vs_connect *p, bool allow_empty, uint8_t *rc3,
			      const char **why);

/*
 * The keep-alive the server uses for a client that asked for `asked` seconds, under
 * max_keepalive (65535: no limit). 5.0 is told another value in Server Keep Alive
 * [MQTT-3.2.2-21]; 3.x cannot be, so a keep-alive above the limit (or 0, "never") is refused,
 * as Mosquitto does: returns -1 then.
 */
int vs_sproto_keepalive(int version, uint16_t asked, uint32_t max_keepalive);

/* The Session Expiry Interval a CONNECT asks for: 5.0 says it (absent: 0 [MQTT-3.1.2-11]); for
 * 3.x a clean session ends with its connection and a persistent one lasts `persistent_expiry`
 * seconds (persistent_client_expiration; negative: for ever). */
uint32_t vs_sproto_session_expiry(const struct vs_connect *p, int64_t persistent_expiry);

/* ---- PUBLISH ------------------------------------------------------------------------------- */

/* What the checks of an incoming PUBLISH need to know of its connection. */
struct vs_sproto_pub {
	uint8_t version;
	uint8_t max_qos;       /* the listener's maximum QoS [MQTT-3.2.2-11] */
	bool retain_available; /* [MQTT-3.3.1-12] */
	uint16_t receive_max;  /* the server's Receive Maximum [MQTT-3.3.4-9] */
	uint32_t in_qos2;      /* incoming QoS 2 messages awaiting PUBREL */
	bool id_in_qos2;       /* this PUBLISH's packet id is one of them (a resend) */
};

/*
 * Checks an incoming PUBLISH against its connection's state, before its topic is resolved.
 * Returns 0, or the reason code to disconnect with, and *why.
 */
int vs_sproto_check_publish(const struct vs_sproto_pub *st, const struct vs_publish *p,
			    const char **why);

/* Incoming topic aliases of one 5.0 connection (3.3.2.3.4): alias 1..max -> topic. */
struct vs_alias_in {
	char **topic; /* [1..max], NULL when unset; the table itself NULL until an alias is set */
	uint16_t max; /* the server's Topic Alias Maximum in CONNACK; 0: none allowed */
};

/* Makes a table for `max` aliases (allocated when the first is set). Returns 0 or -ENOMEM. */
int vs_alias_in_init(struct vs_alias_in *a, uint16_t max);
void vs_alias_in_fini(struct vs_alias_in *a);

/*
 * Resolves the topic of a 5.0 PUBLISH [MQTT-3.3.2-12]: a topic with an alias sets it, an empty
 * topic with an alias uses it. *topic then points into the packet or the table (valid until the
 * alias is set again). Returns 0, or a reason code to disconnect with: VS_RC_PROTOCOL_ERROR for
 * no topic and no alias [MQTT-3.3.2-8] or an alias never set, VS_RC_TOPIC_ALIAS_INVALID for 0
 * or above the maximum [MQTT-3.3.2-9], [MQTT-3.3.2-10], VS_RC_SERVER_BUSY without memory.
 */
int vs_alias_in_resolve(struct vs_alias_in *a, const struct vs_publish *p, struct vs_buf *topic);

/* ---- Acknowledgements ---------------------------------------------------------------------- */

/* What the server does on an acknowledgement of a message it sent. */
enum vs_ack_action {
	VS_ACK_IGNORE,	/* not expected in this state: nothing changes */
	VS_ACK_DONE,	/* the message is delivered (or its flow failed): forget it */
	VS_ACK_RELEASE, /* PUBREC: now waiting for PUBCOMP; send PUBREL */
};

/*
 * The outgoing QoS 1/2 state machine (4.3.2, 4.3.3) for a message in *state (enum
 * vs_qstate: VS_Q_WAIT_PUBACK, VS_Q_WAIT_PUBREC, VS_Q_WAIT_PUBCOMP), on an acknowledgement
 * of `type` (VS_PUBACK, VS_PUBREC, VS_PUBCOMP) with `reason`. Updates *state.
 * - PUBACK ends QoS 1 [MQTT-4.3.2-4].
 * - PUBREC moves QoS 2 to PUBREL [MQTT-4.3.3-4]; a PUBREC with a reason >= 0x80 ends the flow
 *   ([MQTT-4.3.3-4]: no PUBREL then); a PUBREC again (the PUBREL was lost) sends PUBREL again.
 * - PUBCOMP ends QoS 2 [MQTT-4.3.3-5].
 */
enum vs_ack_action vs_sproto_outgoing_ack(uint8_t *state, int type, uint8_t reason);

/* The PUBCOMP reason for a PUBREL [MQTT-4.3.3-11]: success, or for 5.0 0x92 (Packet Identifier
 * not found) when the id awaited no PUBREL. */
uint8_t vs_sproto_pubcomp_reason(int version, bool known);

/* The reason code of a PUBACK or PUBREC for a message the broker decided `rc` about (0x00,
 * 0x10 no matching subscribers, or a refusal >= 0x80): 3.x has no codes and acknowledges
 * whatever was decided. */
uint8_t vs_sproto_ack_reason(int version, int rc);

/* ---- SUBSCRIBE ----------------------------------------------------------------------------- */

/* The result of one SUBSCRIBE entry's checks. */
enum vs_sub_verdict {
	VS_SUB_OK,	 /* subscribe at *granted */
	VS_SUB_REFUSED,	 /* answer the code in *granted, do not subscribe */
	VS_SUB_PROTOCOL, /* a protocol error: disconnect [MQTT-3.8.3-4] */
};

/*
 * Checks one SUBSCRIBE entry: a shared subscription with No Local is a protocol error
 * [MQTT-3.8.3-4]; a filter deeper than max_levels (0: no limit) is refused (5.0: 0x8F Topic
 * Filter invalid; 3.1.1 has one failure code, 0x80 [MQTT-3.9.3-2]); the QoS granted is at most
 * the listener's max_qos (3.8.4: the server may grant a lower QoS than asked).
 */
enum vs_sub_verdict vs_sproto_check_sub(int version, const struct vs_sub_entry *e, int max_qos,
					int max_levels, uint8_t *granted);

/* A filter of the form $share/{ShareName}/{filter} (4.8.2). */
bool vs_sproto_is_shared(const struct vs_buf *filter);

#endif
