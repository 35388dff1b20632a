/*
 * The client side of one MQTT session, sans I/O: it turns API calls into bytes in `out`, bytes
 * from the broker into events, and the passing of time into PINGREQs or a verdict that the broker
 * is dead. It never touches a socket, a clock or a thread; the caller (src/client) feeds it input,
 * writes `out` to the transport, passes the time in, and locks.
 *
 * What it owns and keeps across connections (the session, [MQTT-4.4.0-1]):
 *   - `msgs`: outgoing QoS 1/2 PUBLISHes and SUBSCRIBE/UNSUBSCRIBEs, in the order they were
 *     made, each with its packet id and encoded packet. A PUBLISH is QUEUED (not sent), SENT
 *     (awaiting PUBACK/PUBREC) or RELEASED (PUBREL sent, awaiting PUBCOMP). At most `window`
 *     PUBLISHes are SENT or RELEASED; the rest wait, in order.
 *   - `used`: a bitmap of packet ids in use by `msgs`.
 *   - `qos2_in`: a bitmap of incoming QoS 2 packet ids received but not yet released, so a
 *     resent PUBLISH (DUP) is acknowledged but not delivered twice.
 * On vs_cproto_start() (a new connection) the CONNECT goes first; after a successful CONNACK
 * every SENT PUBLISH is resent with DUP set, every RELEASED one as PUBREL, then the window is
 * refilled. If the broker has no session (session present 0), qos2_in is cleared.
 *
 * MQTT 5.0 enhanced authentication (section 4.12), when a method is plugged in with
 * vs_cproto_set_auth(): the CONNECT carries its Authentication Method and first data, each
 * AUTH 0x18 from the server is answered with an AUTH 0x18, and a successful CONNACK counts only
 * once the method accepts its data (for SCRAM, the server's proof): until then nothing from the
 * session is sent [MQTT-3.1.2-30], so a server that fails to authenticate itself never sees it.
 */
#ifndef VS_PROTO_CLIENT_H
#define VS_PROTO_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/bytes.h"
#include "codec/codec.h"
#include "proto/server.h" /* struct vs_alias_in */

enum vs_cstate {
	VS_CS_IDLE,	  /* no connection */
	VS_CS_CONNECTING, /* CONNECT queued, awaiting CONNACK */
	VS_CS_CONNECTED,
};

enum vs_cmsg_state {
	VS_CM_QUEUED,
	VS_CM_SENT,
	VS_CM_RELEASED,
};

/* One outgoing packet awaiting acknowledgement. */
struct vs_cmsg {
	struct vs_cmsg *next;
	struct vs_cmsg *prev;
	uint16_t id;
	uint8_t type;	/* VS_PUBLISH, VS_SUBSCRIBE or VS_UNSUBSCRIBE */
	uint8_t qos;	/* PUBLISH only */
	uint8_t state;	/* enum vs_cmsg_state */
	bool own_alias; /* PUBLISH: the user set a Topic Alias (no automatic one then) */
	size_t len;
	uint8_t wire[]; /* the encoded packet; byte 0 gets the DUP bit on resend */
};

/* What the core reports while consuming input. Pointers are valid during the call only. */
struct vs_cproto_events {
	void (*connack)(void *ctx, const struct vs_connack *ca);
	void (*message)(void *ctx, const struct vs_publish *p);
	/* an outgoing QoS 1/2 PUBLISH completed (reason < 0x80) or was refused */
	void (*published)(void *ctx, uint16_t id, int reason, const struct vs_props *props);
	void (*suback)(void *ctx, uint16_t id, const struct vs_suback *sa);
	void (*unsuback)(void *ctx, uint16_t id, const struct vs_suback *ua);
	void (*disconnect)(void *ctx, const struct vs_disconnect *d);
	/* every packet in both directions, for debug logs (may be NULL) */
	void (*trace)(void *ctx, bool sent, const struct vs_packet *p);
};

/*
 * A client-side enhanced authentication method. The core carries its data and keeps the packet
 * rules; the method computes the data. Each function returns 0 or a negative error, which ends
 * the connection attempt (VS_EAUTH: the server failed to authenticate itself). An output points
 * into the method's own memory, valid until its next call.
 */
struct vs_cauth_ops {
	/* The Authentication Data of the CONNECT (len 0: none); starts a new exchange. */
	int (*start)(void *ctx, struct vs_buf *out);
	/* An AUTH 0x18 carried `in`: the data of the AUTH 0x18 that answers it. */
	int (*step)(void *ctx, const struct vs_buf *in, struct vs_buf *out);
	/* A CONNACK 0x00 carried `in` (len 0: none): 0 if that completes the exchange. */
	int (*finish)(void *ctx, const struct vs_buf *in);
};

struct vs_cauth {
	const char *method; /* the Authentication Method, "SCRAM-SHA-256" */
	const struct vs_cauth_ops *ops;
	void *ctx;
};

struct vs_cproto {
	uint8_t version;       /* enum vs_version */
	uint8_t state;	       /* enum vs_cstate */
	uint16_t keepalive;    /* seconds in effect (the server's Server Keep Alive wins) */
	uint16_t max_inflight; /* our limit */
	uint16_t window;       /* min(max_inflight, the broker's Receive Maximum) */
	uint16_t inflight;     /* PUBLISHes SENT or RELEASED */
	uint16_t next_id;      /* last packet id handed out */
	uint32_t count;	       /* entries in msgs */
	struct vs_cmsg *head;
	struct vs_cmsg *tail;
	uint64_t used[65536 / 64];
	uint64_t qos2_in[65536 / 64];
	struct vs_bytes out;  /* bytes for the transport, in order */
	int64_t last_out_ms;  /* when the last packet was queued for sending */
	int64_t ping_sent_ms; /* PINGREQ outstanding since, or 0 */
	const struct vs_cproto_events *ev;
	void *ctx;
	const struct vs_cauth *auth; /* enhanced authentication (5.0), or NULL */
	/* Outgoing topic aliases (5.0): the topics given one on this connection, alias k naming
	 * aliases[k - 1]; at most the broker's Topic Alias Maximum, and VS_CPROTO_ALIASES. */
	char **aliases;
	uint16_t n_aliases;
	uint16_t alias_max; /* min(the CONNACK's Topic Alias Maximum, VS_CPROTO_ALIASES); 0: none */
	/* Incoming topic aliases (5.0), when the CONNECT announced a Topic Alias Maximum. */
	struct vs_alias_in alias_in;
};

/* The most outgoing topic aliases a client uses on one connection (a linear search each
 * PUBLISH: cheap at this size, and a client rarely publishes to more topics at a high rate). */
#define VS_CPROTO_ALIASES 64

void vs_cproto_init(struct vs_cproto *cp, int version, int max_inflight,
		    const struct vs_cproto_events *ev, void *ctx);
/* Frees the session (queued messages) and the output buffer. */
void vs_cproto_fini(struct vs_cproto *cp);

/* Plugs in an enhanced authentication method (5.0 only) for the connections that follow, or
 * removes it (NULL). auth must outlive its use. */
void vs_cproto_set_auth(struct vs_cproto *cp, const struct vs_cauth *auth);

/* A new connection: drops unsent output, queues the CONNECT (with the authentication method's
 * first data, when one is set). Returns 0, an encode error, or the method's error. */
int vs_cproto_start(struct vs_cproto *cp, const struct vs_connect *c, int64_t now_ms);
/* The connection is gone: drops unsent output; the session stays. */
void vs_cproto_lost(struct vs_cproto *cp);

/*
 * Consumes whole packets from buf. Returns the bytes consumed (0: need more), or an error that
 * ends the connection: VS_EPROTO (malformed/out of protocol, *why says which), VS_ECLOSED (the
 * broker sent DISCONNECT, or refused the CONNACK: check the events), or an error of the
 * authentication method (VS_EAUTH: a CONNACK 0x00 whose data the method refused; no connack
 * event then). Events fire as packets go.
 */
ssize_t vs_cproto_input(struct vs_cproto *cp, const uint8_t *buf, size_t len, int64_t now_ms,
			enum vs_reason *why);

/* Queues a PUBLISH. Returns the packet id for QoS 1/2, 0 for QoS 0, VS_EPROTO for something the
 * codec cannot encode, -EAGAIN when no packet id is free, -ENOTCONN for QoS 0 while not
 * connected, -ENOMEM. */
int vs_cproto_publish(struct vs_cproto *cp, const struct vs_publish *p, int64_t now_ms);
/* Queues a SUBSCRIBE / UNSUBSCRIBE (packet_id is assigned here). Returns the id or an error. */
int vs_cproto_subscribe(struct vs_cproto *cp, struct vs_subscribe *s, int64_t now_ms);
int vs_cproto_unsubscribe(struct vs_cproto *cp, struct vs_unsubscribe *u, int64_t now_ms);
/* Queues a DISCONNECT; the state becomes IDLE. */
int vs_cproto_disconnect(struct vs_cproto *cp, const struct vs_disconnect *d, int64_t now_ms);

/* Keep-alive: queues a PINGREQ when nothing was sent for keepalive seconds. Returns 0, or
 * -ETIMEDOUT when a PINGREQ went unanswered for keepalive seconds (the broker is dead). */
int vs_cproto_tick(struct vs_cproto *cp, int64_t now_ms);
/* The time vs_cproto_tick() next has something to do, or -1. */
int64_t vs_cproto_deadline(const struct vs_cproto *cp);

/* Outgoing PUBLISHes not yet completed. */
size_t vs_cproto_pending(const struct vs_cproto *cp);
/* Whether a message with this packet id is still in the session. */
bool vs_cproto_has(const struct vs_cproto *cp, uint16_t id);

#endif
