/*
 * Reading Mosquitto's persistence file (mosquitto.db), so that a Mosquitto user's retained
 * messages and persistent sessions survive the switch to Viesti (docs/persistence.md, "Importing
 * mosquitto.db").
 *
 * Two layers, both pure (bytes in, records out through a callback; no I/O, no global state):
 * - vs_mosqdb_parse() walks the file's chunks and hands each one, decoded into views of the
 *   caller's buffer, to a callback. Every length is checked against the chunk and the file; the
 *   walk stops at the first chunk that does not hold together and says where and why.
 * - vs_mosqdb_import() turns those chunks into Viesti store records (struct vs_rec): SESSION,
 *   SUB, MSG, QUEUE and RETAIN, in an order vs_store_replay() callbacks accept, and counts what
 *   it took and what it left out.
 *
 * The format (Mosquitto 1.6 and 2.0 write versions 5 and 6): a 15-byte magic, a 4-byte CRC field
 * (always zero), the format version (u32 big-endian), then chunks of {u32 type, u32 length}
 * (big-endian) followed by `length` bytes. Chunk bodies start with a fixed part that Mosquitto
 * writes straight from a C struct: its 16- and 32-bit fields are big-endian, but 64-bit fields
 * (message store ids, expiry times) are in the writer's byte order, and the struct's padding is
 * on disk too. Files written on little-endian machines (x86, ARM) are read as such.
 */
#ifndef VS_PERSIST_MOSQDB_H
#define VS_PERSIST_MOSQDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "persist/store.h"

/* Chunk types. */
enum vs_mosqdb_chunk {
	VS_MOSQDB_CFG = 1,
	VS_MOSQDB_MSG_STORE = 2,
	VS_MOSQDB_CLIENT_MSG = 3,
	VS_MOSQDB_RETAIN = 4,
	VS_MOSQDB_SUB = 5,
	VS_MOSQDB_CLIENT = 6,
};

/* Mosquitto's message states (for vs_mosqdb_client_msg.state). */
enum vs_mosqdb_state {
	VS_MOSQDB_MS_PUBLISH_QOS0 = 1,
	VS_MOSQDB_MS_PUBLISH_QOS1 = 2,
	VS_MOSQDB_MS_WAIT_PUBACK = 3,
	VS_MOSQDB_MS_PUBLISH_QOS2 = 4,
	VS_MOSQDB_MS_WAIT_PUBREC = 5,
	VS_MOSQDB_MS_RESEND_PUBREL = 6,
	VS_MOSQDB_MS_WAIT_PUBREL = 7,
	VS_MOSQDB_MS_RESEND_PUBCOMP = 8,
	VS_MOSQDB_MS_WAIT_PUBCOMP = 9,
	VS_MOSQDB_MS_SEND_PUBREC = 10,
	VS_MOSQDB_MS_QUEUED = 11,
};

/* The file format versions this reader understands. Older ones (Mosquitto 1.5 and before wrote
 * 2 to 4) have a different chunk header and layouts. */
#define VS_MOSQDB_VERSION_MIN 5
#define VS_MOSQDB_VERSION_MAX 6

/* A view into the caller's buffer; p is NULL when len is 0. */
struct vs_mosqdb_str {
	const uint8_t *p;
	size_t len;
};

struct vs_mosqdb_cfg {
	uint64_t last_db_id;
	uint8_t shutdown;  /* 1: written at a clean shutdown */
	uint8_t dbid_size; /* bytes of a store id: 8 */
};

/* A message body, shared by the retained and client-message chunks that name its store_id. */
struct vs_mosqdb_msg {
	uint64_t store_id;
	int64_t expiry_time; /* wall seconds at which it expires; 0: never */
	uint16_t source_mid;
	uint16_t source_port;
	uint8_t qos;
	bool retain;
	struct vs_mosqdb_str source_id; /* the publisher's client id (may be empty) */
	struct vs_mosqdb_str source_username;
	struct vs_mosqdb_str topic;
	struct vs_mosqdb_str payload;
	struct vs_mosqdb_str props; /* MQTT 5 PUBLISH properties, without their length prefix */
};

/* A persistent session. */
struct vs_mosqdb_client {
	int64_t session_expiry_time;	  /* wall seconds when it expires; 0 none (was connected) */
	uint32_t session_expiry_interval; /* 0xFFFFFFFF: never */
	uint16_t last_mid;
	uint16_t listener_port; /* version 6 only */
	struct vs_mosqdb_str client_id;
	struct vs_mosqdb_str username; /* version 6 only */
};

/* A message queued for or in flight with a client. */
struct vs_mosqdb_client_msg {
	uint64_t store_id;
	uint16_t mid;
	uint8_t qos;
	uint8_t state;	   /* enum vs_mosqdb_state */
	uint8_t direction; /* 0 incoming (from the client), 1 outgoing (to it) */
	bool retain;
	bool dup;
	struct vs_mosqdb_str client_id;
	struct vs_mosqdb_str props; /* properties for this delivery (subscription ids) */
};

struct vs_mosqdb_sub {
	uint32_t identifier; /* 0: none */
	uint8_t qos;
	uint8_t options; /* MQTT 5 subscription options bits: 0x04 no-local, 0x08 RAP */
	struct vs_mosqdb_str client_id;
	struct vs_mosqdb_str topic;
};

struct vs_mosqdb_rec {
	uint32_t type; /* enum vs_mosqdb_chunk */
	size_t offset; /* of the chunk header in the file */
	union {
		struct vs_mosqdb_cfg cfg;
		struct vs_mosqdb_msg msg;
		struct vs_mosqdb_client client;
		struct vs_mosqdb_client_msg cmsg;
		struct vs_mosqdb_sub sub;
		uint64_t retain_store_id; /* RETAIN */
	} u;
};

/* Called for each valid chunk in file order; views live as long as the caller's buffer. Return
 * 0 to go on, a negative value to stop (returned by vs_mosqdb_parse). */
typedef int (*vs_mosqdb_fn)(void *ctx, const struct vs_mosqdb_rec *r);

/* What a parse found. */
struct vs_mosqdb_info {
	uint32_t version; /* format version from the header (0 if unreadable) */
	uint64_t chunks;  /* valid chunks passed to fn */
	uint64_t unknown; /* valid chunks of a type this reader does not know, skipped */
	size_t valid_end; /* offset just after the last valid chunk */
	size_t size;	  /* bytes given */
	bool damaged;	  /* stopped before the end: [valid_end, size) was not read */
	char why[96];	  /* for damage or refusal: what was wrong at valid_end */
};

/* Whether buf starts with Mosquitto's magic. */
bool vs_mosqdb_is_mosqdb(const uint8_t *buf, size_t len);

/*
 * Walks the file image buf[0..len) and calls fn for every valid chunk up to the first damage
 * (a chunk running past the end of the file, a field running past the end of its chunk, a
 * length of zero where one is required). Returns 0 if the whole file was read (info->damaged
 * then false), 1 if it stopped at damage (info says where and why), VS_EPROTO if buf is not a
 * Mosquitto database or has an unsupported format version (info->why says which), or fn's
 * negative value. info is required.
 */
int vs_mosqdb_parse(const uint8_t *buf, size_t len, vs_mosqdb_fn fn, void *ctx,
		    struct vs_mosqdb_info *info);

/* One MQTT 5 property from a property block (for vs_mosqdb_msg.props / .cmsg.props). */
struct vs_mosqdb_prop {
	uint8_t id;
	uint32_t num;		    /* byte, two-byte, four-byte and variable integers */
	struct vs_mosqdb_str str;   /* strings and binary data; a user property's name */
	struct vs_mosqdb_str value; /* a user property's value */
	struct vs_mosqdb_str raw;   /* the whole encoded property, identifier included */
};

/* Reads the property at props[*pos] and advances *pos. Returns 1 with *out filled, 0 at the end
 * of the block, VS_EPROTO for an unknown identifier or a value running past the block. */
int vs_mosqdb_prop_next(struct vs_mosqdb_str props, size_t *pos, struct vs_mosqdb_prop *out);

/* ---- Import into Viesti records ------------------------------------------------------------ */

struct vs_mosqdb_import_info {
	struct vs_mosqdb_info parse;
	uint64_t sessions; /* SESSION records */
	uint64_t subs;	   /* SUB records */
	uint64_t retained; /* RETAIN records */
	uint64_t queued;   /* QUEUE records for messages not yet sent */
	uint64_t inflight; /* QUEUE records for messages sent, awaiting an acknowledgement */
	uint64_t msgs;	   /* MSG records (distinct message bodies) */
	uint64_t expired_sessions; /* skipped: their session expiry had passed */
	uint64_t expired_msgs;	/* skipped: message expiry had passed (and what referred to them) */
	uint64_t incoming_qos2; /* skipped: QoS 2 messages from clients, awaiting PUBREL */
	uint64_t sys_msgs;	/* skipped: $SYS retained messages (the broker's own) */
	uint64_t orphans;	/* skipped: naming a client or message the file does not hold */
	uint64_t bad;		/* skipped: invalid field values (QoS 3, unknown state, ...) */
	uint64_t props_dropped; /* messages imported without their unreadable properties */
};

/*
 * Converts the Mosquitto database buf[0..len) into Viesti store records passed to fn, as if
 * replayed from a store: SESSION before the SUB and QUEUE records of that client, a message's MSG
 * before the first QUEUE or RETAIN naming it. Message ids are id_base + Mosquitto's store id
 * (id_base: the highest id already in use). Expiry times are judged against now_wall (wall
 * seconds); a message's remaining expiry interval counts from now_wall. Allocates working
 * memory (an index of messages and clients), freed before returning. Returns 0 (info->parse
 * tells whether the file was damaged: the valid part is imported), VS_EPROTO for a file that is
 * not a supported Mosquitto database, -ENOMEM, or fn's negative value.
 */
int vs_mosqdb_import(const uint8_t *buf, size_t len, uint64_t id_base, int64_t now_wall,
		     vs_store_replay_fn fn, void *ctx, struct vs_mosqdb_import_info *info);

/* Writes a one-line summary of info ("N retained messages, M sessions, ...") into out. */
void vs_mosqdb_import_summary(const struct vs_mosqdb_import_info *info, char *out, size_t n);

#endif
