/*
 * The MQTT-SN 1.2 gateway's per-client half, below the broker: each MQTT-SN client is a
 * virtual connection whose transport (this file's vs_sn_client) translates between MQTT-SN
 * datagrams and the MQTT 5.0 byte stream the broker's connections already speak. So a sensor
 * is an ordinary session of the broker (topics, retained messages, ACLs, persistence, limits,
 * $SYS), and the broker's connection code never knows MQTT-SN exists.
 *
 * Toward the broker the transport speaks a fixed profile of MQTT 5.0: CONNECT with Receive
 * Maximum 1 (MQTT-SN has one message in flight per direction, section 6.13), a Maximum
 * Packet Size that fits a datagram, no topic aliases; Session Expiry 0 for CleanSession 1 and
 * "never" for CleanSession 0, as MQTT 3.1.1 has it.
 *
 * What MQTT has no packet for is the transport's own: the will dialogue (WILLTOPICREQ ...),
 * topic ids (REGISTER both ways, predefined ids, short names), sleeping (DISCONNECT with a
 * duration; buffering; the wake-up PINGREQ and its PINGRESP after the buffered messages),
 * retransmission (Tretry/Nretry) of what the gateway sends. What needs the broker (a will
 * update, the keep-alive of a sleeping client, a flush) comes back to the caller as events.
 *
 * One thread owns a client: the worker that owns its connection. The datagram socket is the
 * listener's; a client sends on it with sendto(2) to its address, wrapped in the forwarder
 * encapsulation (section 5.5) when it came that way.
 */
#ifndef VS_SN_SN_H
#define VS_SN_SN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/map.h"
#include "codec/sn.h"
#include "net/dtls.h"
#include "net/transport.h"

/* ---- Predefined topic ids (mqttsn_predefined_topics) ------------------------------------ */

struct vs_sn_topics {
	struct vs_map by_name; /* topic -> id (as uintptr_t) */
	struct vs_map by_id;   /* 2-byte big-endian id -> topic (owned, NUL-terminated) */
	size_t count;
};

/*
 * Parses a predefined-topics file's text: one "ID TOPIC" per line (ID 1..65534, TOPIC a valid
 * topic name without wildcards, to the end of the line, surrounding blanks trimmed), blank
 * lines and lines starting with '#' ignored. Returns 0, or VS_ECONF with "line N: what" in
 * err. On failure t holds nothing to free.
 */
int vs_sn_topics_parse(struct vs_sn_topics *t, const char *text, size_t len, char *err,
		       size_t errlen);
/* Reads and parses the file at path; errors name it ("FILE:LINE: what"). */
int vs_sn_topics_load(struct vs_sn_topics *t, const char *path, char *err, size_t errlen);
void vs_sn_topics_fini(struct vs_sn_topics *t);
/* The topic of a predefined id, or NULL. */
const char *vs_sn_topics_name(const struct vs_sn_topics *t, uint16_t id);
/* The predefined id of a topic, or 0. */
uint16_t vs_sn_topics_id(const struct vs_sn_topics *t, const uint8_t *name, size_t len);

/* ---- The gateway's settings, per listener ------------------------------------------------ */

struct vs_sn_conf {
	const struct vs_sn_topics *predefined; /* may be empty */
	int retry_ms;			       /* Tretry */
	int retry_count; /* Nretry: sends after the first before the client counts as lost */
	uint8_t gw_id;
};

/* ---- Clients ----------------------------------------------------------------------------- */

/* Events for the owner (bits of what vs_sn_input and vs_sn_tick return). */
enum {
	VS_SN_EV_READ = 1,	/* MQTT bytes wait: read the connection */
	VS_SN_EV_ROOM = 2,	/* the send queue has room again, or is empty while awake: flush */
	VS_SN_EV_SLEEP = 4,	/* the client sleeps for vs_sn_sleep_s() seconds */
	VS_SN_EV_ACTIVE = 8,	/* the client is active again (keep-alive: vs_sn_keepalive()) */
	VS_SN_EV_WAKE = 16,	/* a sleeping client woke up to take what was kept for it */
	VS_SN_EV_WILL = 32,	/* WILLTOPICUPD / WILLMSGUPD: apply vs_sn_will(), then answer
				 * with vs_sn_will_done() */
	VS_SN_EV_CLOSE = 64,	/* the client is gone or broke the protocol: vs_sn_why() says */
	VS_SN_EV_RESTART = 128, /* a new CONNECT from an established client: close this one
				 * (gracefully) and start a new connection with the datagram */
};

/* An IPv4 or IPv6 address (28 bytes, where a sockaddr_storage takes 128 per client). */
union vs_sn_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* Where a client's datagrams go. */
struct vs_sn_peer {
	int fd; /* the listener's datagram socket (not owned) */
	union vs_sn_addr addr;
	socklen_t addr_len;
	uint8_t node_len; /* > 0: behind a forwarder, with this node id */
	uint8_t node[32];
	uint8_t radius;	      /* the encapsulation's Ctrl, echoed */
	struct vs_dtls *dtls; /* DTLS session, or NULL (a client owns its own) */
};

/* The will a WILLTOPICUPD / WILLMSGUPD asks for (views valid until the next call). */
struct vs_sn_will {
	bool topic_update; /* true: WILLTOPICUPD, false: WILLMSGUPD */
	bool remove;	   /* an empty WILLTOPICUPD: no will any more */
	uint8_t qos;
	bool retain;
	struct vs_buf topic;   /* WILLTOPICUPD */
	struct vs_buf payload; /* WILLMSGUPD */
};

/* The table that finds a client by address: one per datagram socket, owned by one thread. */
struct vs_sn_table {
	struct vs_map clients; /* key (vs_sn_key) -> the transport's owner (void *) */
};

/* The table's key for a peer: address family, port, address and node id. Returns its length
 * (at most VS_SN_KEY_MAX). */
enum { VS_SN_KEY_MAX = 64 };
size_t vs_sn_key(const struct vs_sn_peer *p, uint8_t *key);

/*
 * Makes t a new client's transport for peer, registered in table with `owner` (what
 * vs_map_get on the table returns: the caller's connection). conf and table must outlive it.
 * The client takes peer->dtls (freed when the transport closes, also on failure). Closing the
 * transport removes it from the table. Returns 0 or -ENOMEM.
 */
int vs_sn_client_open(struct vs_transport *t, const struct vs_sn_conf *conf,
		      struct vs_sn_table *table, const struct vs_sn_peer *peer, void *owner);

/* Handles one message from the client (already decoded; the datagram outlives the call).
 * Returns VS_SN_EV_* bits. */
int vs_sn_input(struct vs_transport *t, const struct vs_sn_packet *p, int64_t now_ms);
/* Retransmits what waits too long for its acknowledgement. Returns VS_SN_EV_* bits. */
int vs_sn_tick(struct vs_transport *t, int64_t now_ms);
/* A client that was woken up and has nothing more coming from the broker (more_pending is
 * false) gets its PINGRESP and sleeps again. Returns whether it went back to sleep. */
bool vs_sn_settle(struct vs_transport *t, bool more_pending);
/* Whether the client is awake (woken from sleep, taking what was kept). */
bool vs_sn_awake(const struct vs_transport *t);
/* The client's DTLS session, or NULL. */
struct vs_dtls *vs_sn_dtls(const struct vs_transport *t);
/* Takes the DTLS session away from the client (for the connection that replaces it). */
struct vs_dtls *vs_sn_take_dtls(struct vs_transport *t);
/* Whether the client sleeps (asleep, or awake only to take what was kept). */
bool vs_sn_sleeping(const struct vs_transport *t);
/* Whether MQTT bytes wait for the broker to read them (write() may leave some: an
 * acknowledgement for a message that cannot be delivered). */
bool vs_sn_has_input(const struct vs_transport *t);
/* Whether the client's send queue is empty. */
bool vs_sn_idle(const struct vs_transport *t);

uint16_t vs_sn_keepalive(const struct vs_transport *t);
uint16_t vs_sn_sleep_s(const struct vs_transport *t);
const struct vs_sn_will *vs_sn_will(const struct vs_transport *t);
/* Answers the pending will update with rc (enum vs_sn_rc). */
void vs_sn_will_done(struct vs_transport *t, uint8_t rc);
const char *vs_sn_client_id(const struct vs_transport *t);

/* Sends one message to a peer outside any client (GWINFO, a refusal, ADVERTISE), through its
 * DTLS session when it has one. Returns 0 or a negative error. */
int vs_sn_send_to(const struct vs_sn_peer *peer, const struct vs_sn_packet *p);

/* The largest MQTT packet the broker may send a client (its Maximum Packet Size). */
enum { VS_SN_MQTT_MAX_PACKET = 65000 };

#endif
