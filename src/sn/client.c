/*
 * One MQTT-SN client as a transport: see sn.h for the contract.
 *
 * Toward the broker: what the client sends becomes MQTT 5.0 packets appended to `in`, which the
 * connection reads like any socket. What the broker writes (whole MQTT packets: the connection
 * only ever writes whole packets) is parsed at once and becomes MQTT-SN messages.
 *
 * Toward the client: answers (CONNACK, SUBACK, PUBACK for the client's PUBLISH, ...) go out at
 * once. Messages that the client must acknowledge (REGISTER, PUBLISH QoS 1/2, PUBREL) and the
 * QoS 0 PUBLISHes among them wait in a FIFO queue; its head is sent, and when it needs an
 * acknowledgement nothing behind it goes out until that arrives (section 6.13: one message in
 * flight), or it is sent again after Tretry, at most Nretry times, after which the client is
 * lost. A sleeping client's queue just waits. The queue holds at most QUEUE_MAX messages;
 * beyond, write() takes nothing and the broker keeps the rest in the session's queue, under
 * its limits.
 *
 * Topic ids of kind NORMAL are per client: one table for those the client REGISTERed and those
 * the gateway REGISTERed for it (or handed out in a SUBACK). Both directions share the id
 * space, 1..65534; the table is bounded (MAX_TOPICS, MAX_TOPIC_BYTES) because a client
 * chooses what fills it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/error.h"
#include "codec/codec.h"
#include "sn/sn.h"

enum {
	QUEUE_MAX = 64,
	MAX_TOPICS = 1024,
	MAX_TOPIC_BYTES = 64 * 1024,
	IN_MAX = 1024 * 1024, /* MQTT bytes waiting for the broker to read them */
	PENDING = 4,	      /* the client's publishes and subscribes awaiting the broker (one
			       * in flight is the protocol's; a few more are tolerated) */
};

enum state {
	S_NEW,	      /* no CONNECT yet */
	S_WILLTOPIC,  /* WILLTOPICREQ sent */
	S_WILLMSG,    /* WILLMSGREQ sent */
	S_CONNECTING, /* MQTT CONNECT handed to the broker, waiting for its CONNACK */
	S_ACTIVE,
	S_ASLEEP,
	S_AWAKE,
	S_GONE, /* DISCONNECT sent or received: nothing more goes out */
};

/* A message for the client, in the send queue. */
struct entry {
	struct entry *next;
	uint8_t ack;  /* the MQTT-SN type that acknowledges it, or 0 */
	uint8_t sent; /* times sent */
	uint8_t qos;  /* PUBLISH: its QoS (for an acknowledgement to the broker if dropped) */
	uint16_t msg_id;
	uint16_t topic_id; /* REGISTER / PUBLISH: the NORMAL id it registers or uses (0: other) */
	size_t len;
	uint8_t dgram[];
};

/* A client PUBLISH or SUBSCRIBE the broker has yet to answer: what its MQTT-SN answer needs. */
struct pending {
	uint16_t msg_id;
	uint16_t topic_id;
	uint8_t flags;	/* the request's topic id type (and 0xFF: unused slot) */
	bool name_only; /* SUBSCRIBE by a name without wildcards: gets a NORMAL id on success */
	char *name;
};

struct vs_sn_client {
	const struct vs_sn_conf *conf;
	struct vs_sn_table *table;
	void *owner;
	struct vs_sn_peer peer;
	uint8_t state;
	bool clean;
	bool blocked;	    /* write() refused bytes: say ROOM when the queue drains */
	uint16_t keepalive; /* CONNECT's Duration */
	uint16_t sleep_s;
	uint16_t next_tid;
	uint16_t next_msg_id;
	char *client_id;
	/* The will, from WILLTOPIC and WILLMSG during CONNECT. */
	uint8_t will_flags;
	bool has_will;
	struct vs_bytes will_topic;
	struct vs_bytes will_msg;
	struct vs_sn_will upd; /* a pending WILLTOPICUPD / WILLMSGUPD */
	struct vs_bytes upd_buf;
	/* MQTT bytes for the broker. */
	struct vs_bytes in;
	/* The send queue. */
	struct entry *head, *tail;
	uint32_t n_queue;
	int64_t sent_ms; /* when the head was last sent */
	/* NORMAL topic ids of this client. */
	struct vs_map by_name; /* topic -> id */
	struct vs_map by_id;   /* 2-byte id -> topic (owned string) */
	size_t topic_bytes;
	struct pending pubs[PENDING];
	struct pending subs[PENDING];
	bool failed; /* why_buf (of this thread) says why the last call failed */
};

/* Why a client failed: read by its owner right after the call that failed (before any other
 * client of the thread can fail), so one buffer per thread serves them all and an idle
 * client carries no text. */
static __thread char why_buf[128];

__attribute__((format(printf, 2, 3))) static void set_why(struct vs_sn_client *cl, const char *fmt,
							  ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	cl->failed = true;
}

static struct vs_sn_client *cl_of(const struct vs_transport *t)
{
	return t->state;
}

/* ---- Sending ----------------------------------------------------------------------------- */

int vs_sn_send_to(const struct vs_sn_peer *peer, const struct vs_sn_packet *p)
{
	uint8_t buf[VS_SN_MAX_MESSAGE + 64];
	size_t at = 0;
	if (peer->dtls) {
		ssize_t n = vs_sn_encode(p, buf, sizeof(buf));
		return n < 0 ? (int)n : vs_dtls_send(peer->dtls, buf, (size_t)n);
	}
	if (peer->node_len) {
		struct vs_buf node = {peer->node, peer->node_len};
		ssize_t h = vs_sn_wrap_header(peer->radius, &node, buf, sizeof(buf));
		if (h < 0)
			return (int)h;
		at = (size_t)h;
	}
	ssize_t n = vs_sn_encode(p, buf + at, sizeof(buf) - at);
	if (n < 0)
		return (int)n;
	ssize_t w = sendto(peer->fd, buf, at + (size_t)n, MSG_DONTWAIT,
			   (const struct sockaddr *)&peer->addr, peer->addr_len);
	return w < 0 ? -errno : 0;
}

static void send_raw(struct vs_sn_client *cl, const uint8_t *dgram, size_t len)
{
	uint8_t buf[VS_SN_MAX_MESSAGE + 64];
	const uint8_t *out = dgram;
	size_t n = len;
	if (cl->peer.dtls) {
		(void)vs_dtls_send(cl->peer.dtls, dgram, len);
		return;
	}
	if (cl->peer.node_len) {
		struct vs_buf node = {cl->peer.node, cl->peer.node_len};
		ssize_t h = vs_sn_wrap_header(cl->peer.radius, &node, buf, sizeof(buf));
		if (h < 0 || (size_t)h + len > sizeof(buf))
			return;
		memcpy(buf + h, dgram, len);
		out = buf;
		n = (size_t)h + len;
	}
	/* A full socket buffer loses the datagram, as the network may: what needs an
	 * acknowledgement is sent again. */
	(void)sendto(cl->peer.fd, out, n, MSG_DONTWAIT, (const struct sockaddr *)&cl->peer.addr,
		     cl->peer.addr_len);
}

static void reply(struct vs_sn_client *cl, const struct vs_sn_packet *p)
{
	(void)vs_sn_send_to(&cl->peer, p);
}

static void reply_ack(struct vs_sn_client *cl, uint8_t type, uint16_t topic_id, uint16_t msg_id,
		      uint8_t rc)
{
	struct vs_sn_packet p = {.type = type, .topic_id = topic_id, .msg_id = msg_id, .rc = rc};
	reply(cl, &p);
}

/* Queues p for the client (sent in turn by pump()). Returns 0 or -ENOMEM. */
static int enqueue(struct vs_sn_client *cl, const struct vs_sn_packet *p, uint8_t ack, uint8_t qos)
{
	ssize_t n = vs_sn_size(p);
	if (n < 0)
		return (int)n;
	struct entry *e = malloc(sizeof(*e) + (size_t)n);
	if (!e)
		return -ENOMEM;
	e->next = NULL;
	e->ack = ack;
	e->sent = 0;
	e->qos = qos;
	e->msg_id = p->msg_id;
	e->topic_id = 0;
	e->len = (size_t)vs_sn_encode(p, e->dgram, (size_t)n);
	if (cl->tail)
		cl->tail->next = e;
	else
		cl->head = e;
	cl->tail = e;
	cl->n_queue++;
	return 0;
}

static void pop(struct vs_sn_client *cl)
{
	struct entry *e = cl->head;
	cl->head = e->next;
	if (!cl->head)
		cl->tail = NULL;
	cl->n_queue--;
	free(e);
}

static bool may_send(const struct vs_sn_client *cl)
{
	return cl->state == S_ACTIVE || cl->state == S_AWAKE;
}

/* Sends the queue's head and whatever follows that needs no acknowledgement. */
static void pump(struct vs_sn_client *cl, int64_t now_ms)
{
	while (cl->head && may_send(cl)) {
		struct entry *e = cl->head;
		if (e->sent)
			return; /* waits for its acknowledgement */
		send_raw(cl, e->dgram, e->len);
		if (e->ack) {
			e->sent = 1;
			cl->sent_ms = now_ms;
			return;
		}
		pop(cl);
	}
}

/* ---- MQTT bytes for the broker ---------------------------------------------------------- */

static int to_broker(struct vs_sn_client *cl, const struct vs_packet *p)
{
	ssize_t n = vs_codec_size(p, VS_V5);
	if (n < 0)
		return (int)n;
	if (vs_bytes_reserve(&cl->in, (size_t)n) < 0)
		return -ENOMEM;
	n = vs_codec_encode(p, VS_V5, cl->in.data + cl->in.len, (size_t)n);
	if (n < 0)
		return (int)n;
	cl->in.len += (size_t)n;
	return VS_SN_EV_READ;
}

static int ack_to_broker(struct vs_sn_client *cl, uint8_t type, uint16_t id, uint8_t reason)
{
	struct vs_packet p = {.type = type};
	p.ack.packet_id = id;
	p.ack.reason = reason;
	return to_broker(cl, &p);
}

static int fail(struct vs_sn_client *cl, const char *why)
{
	set_why(cl, "%s", why);
	return VS_SN_EV_CLOSE;
}

/* ---- Topic ids --------------------------------------------------------------------------- */

static const char *normal_name(const struct vs_sn_client *cl, uint16_t id)
{
	uint8_t key[2] = {(uint8_t)(id >> 8), (uint8_t)id};
	return vs_map_get(&cl->by_id, key, 2);
}

/* The NORMAL id of name, registering it when new. Returns the id, 0 when the table is full. */
static uint16_t normal_id(struct vs_sn_client *cl, const uint8_t *name, size_t len, bool *fresh)
{
	*fresh = false;
	uint16_t id = (uint16_t)(uintptr_t)vs_map_get(&cl->by_name, name, len);
	if (id)
		return id;
	if (cl->by_name.count >= MAX_TOPICS || cl->topic_bytes + len > MAX_TOPIC_BYTES)
		return 0;
	do {
		id = cl->next_tid;
		cl->next_tid = cl->next_tid >= 65534 ? 1 : cl->next_tid + 1;
	} while (normal_name(cl, id));
	char *copy = malloc(len + 1);
	if (!copy)
		return 0;
	memcpy(copy, name, len);
	copy[len] = '\0';
	uint8_t key[2] = {(uint8_t)(id >> 8), (uint8_t)id};
	if (vs_map_put(&cl->by_id, key, 2, copy, NULL) < 0) {
		free(copy);
		return 0;
	}
	if (vs_map_put(&cl->by_name, name, len, (void *)(uintptr_t)id, NULL) < 0) {
		free(vs_map_del(&cl->by_id, key, 2));
		return 0;
	}
	cl->topic_bytes += len;
	*fresh = true;
	return id;
}

static void forget_id(struct vs_sn_client *cl, uint16_t id)
{
	uint8_t key[2] = {(uint8_t)(id >> 8), (uint8_t)id};
	char *name = vs_map_del(&cl->by_id, key, 2);
	if (!name)
		return;
	size_t len = strlen(name);
	vs_map_del(&cl->by_name, name, len);
	cl->topic_bytes -= len;
	free(name);
}

/* The topic a PUBLISH (or SUBSCRIBE by id) from the client names, into buf (3 bytes for a
 * short name). Returns its length, or 0 when the id is unknown. */
static size_t topic_of(const struct vs_sn_client *cl, uint8_t tid_type, uint16_t id,
		       const char **out, char *buf)
{
	if (tid_type == VS_SN_TID_SHORT) {
		buf[0] = (char)(id >> 8);
		buf[1] = (char)id;
		buf[2] = '\0';
		*out = buf;
		return 2;
	}
	const char *name = tid_type == VS_SN_TID_PREDEFINED
			       ? vs_sn_topics_name(cl->conf->predefined, id)
			       : normal_name(cl, id);
	*out = name;
	return name ? strlen(name) : 0;
}

/* ---- Pending requests -------------------------------------------------------------------- */

static struct pending *pending_put(struct pending *v, uint16_t msg_id)
{
	struct pending *free_slot = NULL;
	for (int i = 0; i < PENDING; i++) {
		if (v[i].flags != 0xFF && v[i].msg_id == msg_id) {
			free(v[i].name);
			v[i].name = NULL;
			return &v[i];
		}
		if (v[i].flags == 0xFF && !free_slot)
			free_slot = &v[i];
	}
	if (!free_slot) {
		/* More outstanding than MQTT-SN allows: the oldest is forgotten, and its answer
		 * goes out with topic id 0. */
		free_slot = &v[0];
		free(free_slot->name);
		free_slot->name = NULL;
	}
	return free_slot;
}

static struct pending *pending_find(struct pending *v, uint16_t msg_id)
{
	for (int i = 0; i < PENDING; i++)
		if (v[i].flags != 0xFF && v[i].msg_id == msg_id)
			return &v[i];
	return NULL;
}

static void pending_done(struct pending *p)
{
	free(p->name);
	memset(p, 0, sizeof(*p));
	p->flags = 0xFF;
}

/* ---- From the client --------------------------------------------------------------------- */

/* CONNECT: the will dialogue, then the MQTT CONNECT. */
static int emit_connect(struct vs_sn_client *cl)
{
	struct vs_packet p = {.type = VS_CONNECT};
	struct vs_connect *c = &p.connect;
	c->version = VS_V5;
	c->clean = cl->clean;
	c->keepalive = cl->keepalive;
	c->client_id = (struct vs_buf){(const uint8_t *)cl->client_id, strlen(cl->client_id)};
	c->props.present = 1ull << VS_PROP_SESSION_EXPIRY | 1ull << VS_PROP_RECEIVE_MAX |
			   1ull << VS_PROP_MAX_PACKET_SIZE;
	c->props.session_expiry = cl->clean ? 0 : 0xFFFFFFFFu;
	c->props.receive_max = 1;
	c->props.max_packet_size = VS_SN_MQTT_MAX_PACKET;
	if (cl->has_will) {
		c->will = true;
		c->will_qos = (uint8_t)vs_sn_qos(cl->will_flags);
		c->will_retain = (cl->will_flags & VS_SN_RETAIN) != 0;
		c->will_topic = (struct vs_buf){cl->will_topic.data, cl->will_topic.len};
		c->will_payload = (struct vs_buf){cl->will_msg.data, cl->will_msg.len};
	}
	cl->state = S_CONNECTING;
	return to_broker(cl, &p);
}

static int on_connect(struct vs_sn_client *cl, const struct vs_sn_packet *p, int64_t now_ms)
{
	if (cl->state != S_NEW && cl->state != S_WILLTOPIC && cl->state != S_WILLMSG) {
		if (cl->state == S_CONNECTING)
			return 0; /* sent again while the broker decides: its answer is coming */
		if ((cl->state == S_ASLEEP || cl->state == S_AWAKE) && !(p->flags & VS_SN_CLEAN) &&
		    !(p->flags & VS_SN_WILL)) {
			/* Back to active from sleep (section 6.14): the session goes on. */
			cl->keepalive = p->duration;
			cl->state = S_ACTIVE;
			reply_ack(cl, VS_SN_CONNACK, 0, 0, VS_SN_RC_ACCEPTED);
			pump(cl, now_ms); /* what was kept while it slept goes now */
			return VS_SN_EV_ACTIVE | VS_SN_EV_ROOM;
		}
		return VS_SN_EV_RESTART;
	}
	if (p->data.len == 0 || p->data.len > 1024)
		return fail(cl, "CONNECT without a client id, or one over 1024 bytes");
	free(cl->client_id);
	cl->client_id = malloc(p->data.len + 1);
	if (!cl->client_id)
		return fail(cl, "out of memory");
	memcpy(cl->client_id, p->data.p, p->data.len);
	cl->client_id[p->data.len] = '\0';
	cl->clean = (p->flags & VS_SN_CLEAN) != 0;
	cl->keepalive = p->duration;
	cl->has_will = false;
	if (p->flags & VS_SN_WILL) {
		cl->state = S_WILLTOPIC;
		struct vs_sn_packet q = {.type = VS_SN_WILLTOPICREQ};
		reply(cl, &q);
		return 0;
	}
	return emit_connect(cl);
}

static int set_buf(struct vs_bytes *b, const struct vs_buf *v)
{
	b->off = b->len = 0;
	return vs_bytes_append(b, v->p, v->len);
}

static int on_willtopic(struct vs_sn_client *cl, const struct vs_sn_packet *p)
{
	if (cl->state == S_WILLMSG) {
		/* Sent again: our WILLMSGREQ was lost (section 6.13). */
		struct vs_sn_packet q = {.type = VS_SN_WILLMSGREQ};
		reply(cl, &q);
		return 0;
	}
	if (cl->state != S_WILLTOPIC)
		return fail(cl, "WILLTOPIC not asked for");
	if (p->empty_will)
		return emit_connect(cl); /* no will after all */
	if (!vs_topic_name_valid(p->data.p, p->data.len))
		return fail(cl, "WILLTOPIC: not a valid topic name");
	if (set_buf(&cl->will_topic, &p->data) < 0)
		return fail(cl, "out of memory");
	cl->will_flags = p->flags;
	cl->state = S_WILLMSG;
	struct vs_sn_packet q = {.type = VS_SN_WILLMSGREQ};
	reply(cl, &q);
	return 0;
}

static int on_willmsg(struct vs_sn_client *cl, const struct vs_sn_packet *p)
{
	if (cl->state != S_WILLMSG)
		return cl->state == S_CONNECTING ? 0 : fail(cl, "WILLMSG not asked for");
	if (set_buf(&cl->will_msg, &p->data) < 0)
		return fail(cl, "out of memory");
	cl->has_will = true;
	return emit_connect(cl);
}

static int on_register(struct vs_sn_client *cl, const struct vs_sn_packet *p)
{
	if (!vs_topic_name_valid(p->data.p, p->data.len)) {
		reply_ack(cl, VS_SN_REGACK, 0, p->msg_id, VS_SN_RC_NOT_SUPPORTED);
		return 0;
	}
	bool fresh;
	uint16_t id = normal_id(cl, p->data.p, p->data.len, &fresh);
	reply_ack(cl, VS_SN_REGACK, id, p->msg_id, id ? VS_SN_RC_ACCEPTED : VS_SN_RC_CONGESTION);
	return 0;
}

static int on_publish(struct vs_sn_client *cl, const struct vs_sn_packet *p)
{
	int qos = vs_sn_qos(p->flags);
	uint8_t tt = p->flags & VS_SN_TID_MASK;
	char shortname[3];
	const char *topic = NULL;
	size_t tlen = topic_of(cl, tt, p->topic_id, &topic, shortname);
	if (qos > 0 && p->msg_id == 0) {
		reply_ack(cl, VS_SN_PUBACK, p->topic_id, 0, VS_SN_RC_NOT_SUPPORTED);
		return 0;
	}
	if (!tlen) {
		/* Section 6.5 / 5.4.13: an unknown topic id gets PUBACK "invalid topic ID", also
		 * for QoS 0. */
		reply_ack(cl, VS_SN_PUBACK, p->topic_id, p->msg_id, VS_SN_RC_INVALID_TOPIC);
		return 0;
	}
	if (qos > 0 && vs_bytes_avail(&cl->in) > IN_MAX) {
		/* The broker is not reading (it throttles this client): refuse, the client
		 * tries again later (section 5.3.10, "rejected: congestion"). */
		reply_ack(cl, VS_SN_PUBACK, p->topic_id, p->msg_id, VS_SN_RC_CONGESTION);
		return 0;
	}
	if (qos <= 0 && vs_bytes_avail(&cl->in) > IN_MAX)
		return 0; /* QoS 0 is dropped, as the network could have */
	struct vs_packet m = {.type = VS_PUBLISH};
	m.publish.qos = (uint8_t)(qos < 0 ? 0 : qos);
	m.publish.dup = qos > 0 && (p->flags & VS_SN_DUP);
	m.publish.retain = (p->flags & VS_SN_RETAIN) != 0;
	m.publish.topic = (struct vs_buf){(const uint8_t *)topic, tlen};
	m.publish.packet_id = qos > 0 ? p->msg_id : 0;
	m.publish.payload = p->data;
	if (qos > 0) {
		struct pending *pd = pending_put(cl->pubs, p->msg_id);
		pd->msg_id = p->msg_id;
		pd->topic_id = p->topic_id;
		pd->flags = tt;
	}
	return to_broker(cl, &m);
}

/* The client's acknowledgement of the queue's head. */
static int on_ack(struct vs_sn_client *cl, const struct vs_sn_packet *p, int64_t now_ms)
{
	struct entry *e = cl->head;
	/* Section 5.4.13: a PUBACK with a return code also refuses a QoS 2 PUBLISH. */
	bool refused =
	    e && e->ack == VS_SN_PUBREC && p->type == VS_SN_PUBACK && p->rc != VS_SN_RC_ACCEPTED;
	if (!e || !e->sent || (e->ack != p->type && !refused) || e->msg_id != p->msg_id) {
		/* Not for what we wait for: PUBREC/PUBCOMP repeated after a lost answer are
		 * passed on (the broker answers them again); the rest is stale. */
		if (p->type == VS_SN_PUBREC)
			return ack_to_broker(cl, VS_PUBREC, p->msg_id, 0);
		return 0;
	}
	int ev = 0;
	switch (p->type) {
	case VS_SN_REGACK:
		if (p->rc != VS_SN_RC_ACCEPTED) {
			/* The client refused the topic id: the PUBLISH that needed it cannot go;
			 * the broker is told it failed (5.0: a reason >= 0x80 ends its flow). */
			forget_id(cl, e->topic_id);
			uint16_t tid = e->topic_id;
			pop(cl);
			struct entry *n = cl->head;
			if (n && n->topic_id == tid && n->ack != VS_SN_REGACK) {
				if (n->qos == 1)
					ev |= ack_to_broker(cl, VS_PUBACK, n->msg_id,
							    VS_RC_UNSPECIFIED);
				else if (n->qos == 2)
					ev |= ack_to_broker(cl, VS_PUBREC, n->msg_id,
							    VS_RC_UNSPECIFIED);
				pop(cl);
			}
			break;
		}
		pop(cl);
		break;
	case VS_SN_PUBACK:
		if (p->rc == VS_SN_RC_INVALID_TOPIC && e->topic_id)
			forget_id(cl, e->topic_id); /* registered again next time */
		pop(cl);
		/* 5.0 ends a refused QoS 2 flow at PUBREC with a reason >= 0x80. */
		ev |= ack_to_broker(cl, refused ? VS_PUBREC : VS_PUBACK, p->msg_id,
				    p->rc == VS_SN_RC_ACCEPTED ? 0 : VS_RC_UNSPECIFIED);
		break;
	case VS_SN_PUBREC:
		pop(cl);
		ev |= ack_to_broker(cl, VS_PUBREC, p->msg_id, 0);
		break;
	case VS_SN_PUBCOMP:
		pop(cl);
		ev |= ack_to_broker(cl, VS_PUBCOMP, p->msg_id, 0);
		break;
	}
	pump(cl, now_ms);
	if (cl->blocked && cl->n_queue < QUEUE_MAX) {
		cl->blocked = false;
		ev |= VS_SN_EV_ROOM;
	}
	if (cl->state == S_AWAKE && !cl->head)
		ev |= VS_SN_EV_ROOM;
	return ev;
}

static int on_subscribe(struct vs_sn_client *cl, const struct vs_sn_packet *p, bool sub)
{
	uint8_t tt = p->flags & VS_SN_TID_MASK;
	int qos = vs_sn_qos(p->flags);
	char shortname[3];
	const char *name;
	size_t len;
	if (tt == VS_SN_TID_NORMAL) {
		name = (const char *)p->data.p;
		len = p->data.len;
	} else {
		len = topic_of(cl, tt, p->topic_id, &name, shortname);
	}
	if (!len || !vs_topic_filter_valid((const uint8_t *)name, len)) {
		if (sub) {
			struct vs_sn_packet a = {.type = VS_SN_SUBACK,
						 .msg_id = p->msg_id,
						 .rc = VS_SN_RC_INVALID_TOPIC};
			reply(cl, &a);
		} else {
			reply_ack(cl, VS_SN_UNSUBACK, 0, p->msg_id, 0);
		}
		return 0;
	}
	if (p->msg_id == 0)
		return fail(cl, "SUBSCRIBE or UNSUBSCRIBE with message id 0");
	struct pending *pd = pending_put(cl->subs, p->msg_id);
	pd->msg_id = p->msg_id;
	pd->flags = tt;
	pd->topic_id = tt == VS_SN_TID_PREDEFINED ? p->topic_id : 0;
	pd->name_only =
	    tt == VS_SN_TID_NORMAL && !memchr(name, '+', len) && !memchr(name, '#', len);
	if (pd->name_only) {
		pd->name = malloc(len + 1);
		if (!pd->name)
			return fail(cl, "out of memory");
		memcpy(pd->name, name, len);
		pd->name[len] = '\0';
	}
	struct vs_packet m = {.type = sub ? VS_SUBSCRIBE : VS_UNSUBSCRIBE};
	struct vs_buf filter = {(const uint8_t *)name, len};
	struct vs_sub_entry entry = {.filter = filter, .qos = (uint8_t)(qos < 0 ? 0 : qos)};
	if (sub) {
		m.subscribe.packet_id = p->msg_id;
		m.subscribe.count = 1;
		m.subscribe.entries = &entry;
	} else {
		m.unsubscribe.packet_id = p->msg_id;
		m.unsubscribe.count = 1;
		m.unsubscribe.filters = &filter;
	}
	return to_broker(cl, &m);
}

static int on_pingreq(struct vs_sn_client *cl, const struct vs_sn_packet *p, int64_t now_ms)
{
	if (cl->state == S_ASLEEP || cl->state == S_AWAKE) {
		/* Section 6.14: a sleeping client wakes to take what was kept for it; the
		 * PINGRESP comes once that is sent (vs_sn_settle). */
		if (p->data.len && (p->data.len != strlen(cl->client_id) ||
				    memcmp(p->data.p, cl->client_id, p->data.len) != 0))
			return 0;
		cl->state = S_AWAKE;
		if (cl->head && cl->head->sent)
			cl->head->sent = 0; /* sent while it slept? sent again now */
		pump(cl, now_ms);
		return VS_SN_EV_WAKE | VS_SN_EV_ROOM;
	}
	struct vs_packet m = {.type = VS_PINGREQ};
	return to_broker(cl, &m);
}

static int on_disconnect(struct vs_sn_client *cl, const struct vs_sn_packet *p)
{
	struct vs_sn_packet q = {.type = VS_SN_DISCONNECT};
	if (p->has_duration && p->duration > 0 && cl->state >= S_ACTIVE) {
		/* Section 6.14: asleep until its PINGREQ, or lost after the duration. */
		reply(cl, &q);
		cl->state = S_ASLEEP;
		cl->sleep_s = p->duration;
		return VS_SN_EV_SLEEP;
	}
	reply(cl, &q);
	cl->state = S_GONE;
	struct vs_packet m = {.type = VS_DISCONNECT};
	return to_broker(cl, &m);
}

static int on_will_update(struct vs_sn_client *cl, const struct vs_sn_packet *p)
{
	struct vs_sn_will *u = &cl->upd;
	memset(u, 0, sizeof(*u));
	u->topic_update = p->type == VS_SN_WILLTOPICUPD;
	if (u->topic_update) {
		u->remove = p->empty_will;
		if (!u->remove && !vs_topic_name_valid(p->data.p, p->data.len)) {
			struct vs_sn_packet r = {.type = VS_SN_WILLTOPICRESP,
						 .rc = VS_SN_RC_NOT_SUPPORTED};
			reply(cl, &r);
			return 0;
		}
		u->qos = (uint8_t)vs_sn_qos(p->flags);
		u->retain = (p->flags & VS_SN_RETAIN) != 0;
	}
	if (set_buf(&cl->upd_buf, &p->data) < 0)
		return fail(cl, "out of memory");
	struct vs_buf b = {cl->upd_buf.data, cl->upd_buf.len};
	if (u->topic_update)
		u->topic = b;
	else
		u->payload = b;
	return VS_SN_EV_WILL;
}

void vs_sn_will_done(struct vs_transport *t, uint8_t rc)
{
	struct vs_sn_client *cl = cl_of(t);
	struct vs_sn_packet r = {
	    .type = cl->upd.topic_update ? VS_SN_WILLTOPICRESP : VS_SN_WILLMSGRESP, .rc = rc};
	reply(cl, &r);
}

int vs_sn_input(struct vs_transport *t, const struct vs_sn_packet *p, int64_t now_ms)
{
	struct vs_sn_client *cl = cl_of(t);
	if (cl->state == S_GONE)
		return p->type == VS_SN_CONNECT ? VS_SN_EV_RESTART : 0;
	if (p->type == VS_SN_CONNECT)
		return on_connect(cl, p, now_ms);
	if (cl->state < S_CONNECTING) {
		if (p->type == VS_SN_WILLTOPIC)
			return on_willtopic(cl, p);
		if (p->type == VS_SN_WILLMSG)
			return on_willmsg(cl, p);
		return fail(cl, "no CONNECT");
	}
	switch (p->type) {
	case VS_SN_WILLTOPIC:
		return 0; /* repeated: the WILLMSG that followed it was answered */
	case VS_SN_WILLMSG:
		/* Repeated after the CONNACK was lost: the same answer again. */
		if (cl->state >= S_ACTIVE)
			reply_ack(cl, VS_SN_CONNACK, 0, 0, VS_SN_RC_ACCEPTED);
		return 0;
	case VS_SN_REGISTER:
		return on_register(cl, p);
	case VS_SN_PUBLISH:
		return on_publish(cl, p);
	case VS_SN_PUBREL:
		return ack_to_broker(cl, VS_PUBREL, p->msg_id, 0);
	case VS_SN_REGACK:
	case VS_SN_PUBACK:
	case VS_SN_PUBREC:
	case VS_SN_PUBCOMP:
		return on_ack(cl, p, now_ms);
	case VS_SN_SUBSCRIBE:
		return on_subscribe(cl, p, true);
	case VS_SN_UNSUBSCRIBE:
		return on_subscribe(cl, p, false);
	case VS_SN_PINGREQ:
		return on_pingreq(cl, p, now_ms);
	case VS_SN_PINGRESP:
		return 0;
	case VS_SN_DISCONNECT:
		return on_disconnect(cl, p);
	case VS_SN_WILLTOPICUPD:
	case VS_SN_WILLMSGUPD:
		return on_will_update(cl, p);
	default: {
		char why[64];
		snprintf(why, sizeof(why), "%s not expected from a client",
			 vs_sn_type_name(p->type));
		return fail(cl, why);
	}
	}
}

/* ---- From the broker --------------------------------------------------------------------- */

static uint8_t connack_rc(uint8_t reason)
{
	switch (reason) {
	case VS_RC_SUCCESS:
		return VS_SN_RC_ACCEPTED;
	case VS_RC_SERVER_BUSY:
	case VS_RC_QUOTA_EXCEEDED:
	case VS_RC_CONNECTION_RATE_EXCEEDED:
	case VS_RC_SERVER_UNAVAILABLE:
		return VS_SN_RC_CONGESTION;
	default:
		return VS_SN_RC_NOT_SUPPORTED;
	}
}

/* A PUBLISH for the client: its topic id (REGISTERing it first when needed), then the message.
 * Returns 0 or -ENOMEM. */
static int from_publish(struct vs_sn_client *cl, const struct vs_publish *m)
{
	struct vs_sn_packet p = {.type = VS_SN_PUBLISH, .msg_id = m->packet_id, .data = m->payload};
	p.flags =
	    vs_sn_qos_flags(m->qos) | (m->retain ? VS_SN_RETAIN : 0) | (m->dup ? VS_SN_DUP : 0);
	uint16_t pre = vs_sn_topics_id(cl->conf->predefined, m->topic.p, m->topic.len);
	uint16_t normal = 0;
	if (pre) {
		p.flags |= VS_SN_TID_PREDEFINED;
		p.topic_id = pre;
	} else if (m->topic.len == 2) {
		p.flags |= VS_SN_TID_SHORT;
		p.topic_id = (uint16_t)(m->topic.p[0] << 8 | m->topic.p[1]);
	} else {
		bool fresh;
		normal = normal_id(cl, m->topic.p, m->topic.len, &fresh);
		if (!normal) {
			/* No id to give: the message cannot be delivered (the broker is told). */
			if (m->qos == 1)
				ack_to_broker(cl, VS_PUBACK, m->packet_id, VS_RC_UNSPECIFIED);
			else if (m->qos == 2)
				ack_to_broker(cl, VS_PUBREC, m->packet_id, VS_RC_UNSPECIFIED);
			return 0;
		}
		p.topic_id = normal;
		if (fresh) {
			/* Section 6.10: the gateway REGISTERs a topic before it publishes on it. */
			struct vs_sn_packet r = {
			    .type = VS_SN_REGISTER, .topic_id = normal, .data = m->topic};
			r.msg_id = cl->next_msg_id =
			    cl->next_msg_id == 0xFFFF ? 1 : cl->next_msg_id + 1;
			if (enqueue(cl, &r, VS_SN_REGACK, 0) < 0)
				return -ENOMEM;
			cl->tail->topic_id = normal;
		}
	}
	static const uint8_t acks[3] = {0, VS_SN_PUBACK, VS_SN_PUBREC};
	ssize_t size = vs_sn_size(&p);
	if (size < 0 || size > 65507) {
		/* Larger than a datagram: cannot be delivered. */
		if (m->qos == 1)
			ack_to_broker(cl, VS_PUBACK, m->packet_id, VS_RC_UNSPECIFIED);
		else if (m->qos == 2)
			ack_to_broker(cl, VS_PUBREC, m->packet_id, VS_RC_UNSPECIFIED);
		return 0;
	}
	if (enqueue(cl, &p, acks[m->qos], m->qos) < 0)
		return -ENOMEM;
	cl->tail->topic_id = normal;
	return 0;
}

static int from_suback(struct vs_sn_client *cl, const struct vs_packet *m)
{
	bool sub = m->type == VS_SUBACK;
	uint16_t id = m->suback.packet_id;
	struct pending *pd = pending_find(cl->subs, id);
	if (!sub) {
		reply_ack(cl, VS_SN_UNSUBACK, 0, id, 0);
		if (pd)
			pending_done(pd);
		return 0;
	}
	uint8_t code = m->suback.count ? m->suback.codes[0] : VS_RC_UNSPECIFIED;
	struct vs_sn_packet a = {.type = VS_SN_SUBACK, .msg_id = id};
	if (code < 0x80) {
		a.flags = vs_sn_qos_flags(code);
		a.rc = VS_SN_RC_ACCEPTED;
		if (pd && pd->flags == VS_SN_TID_PREDEFINED) {
			a.topic_id = pd->topic_id;
		} else if (pd && pd->name_only) {
			/* A name without wildcards gets its id now (section 6.9). */
			size_t len = strlen(pd->name);
			uint16_t pre =
			    vs_sn_topics_id(cl->conf->predefined, (const uint8_t *)pd->name, len);
			bool fresh;
			a.topic_id = pre ? pre
				     : len == 2
					 ? 0
					 : normal_id(cl, (const uint8_t *)pd->name, len, &fresh);
		}
	} else {
		a.rc = code == VS_RC_QUOTA_EXCEEDED	    ? VS_SN_RC_CONGESTION
		       : code == VS_RC_TOPIC_FILTER_INVALID ? VS_SN_RC_INVALID_TOPIC
							    : VS_SN_RC_NOT_SUPPORTED;
	}
	if (pd)
		pending_done(pd);
	reply(cl, &a);
	return 0;
}

static uint8_t puback_rc(uint8_t reason)
{
	if (reason < 0x80)
		return VS_SN_RC_ACCEPTED;
	if (reason == VS_RC_QUOTA_EXCEEDED || reason == VS_RC_SERVER_BUSY ||
	    reason == VS_RC_MESSAGE_RATE_TOO_HIGH)
		return VS_SN_RC_CONGESTION;
	if (reason == VS_RC_TOPIC_NAME_INVALID)
		return VS_SN_RC_INVALID_TOPIC;
	return VS_SN_RC_NOT_SUPPORTED;
}

/* One whole MQTT packet from the broker. Returns 0, or a negative error. */
static int from_broker(struct vs_sn_client *cl, const struct vs_packet *m, int64_t now_ms)
{
	switch (m->type) {
	case VS_CONNACK: {
		uint8_t rc = connack_rc(m->connack.reason);
		reply_ack(cl, VS_SN_CONNACK, 0, 0, rc);
		if (rc == VS_SN_RC_ACCEPTED && cl->state == S_CONNECTING)
			cl->state = S_ACTIVE;
		return 0;
	}
	case VS_PUBLISH:
		return from_publish(cl, &m->publish);
	case VS_PUBACK: {
		struct pending *pd = pending_find(cl->pubs, m->ack.packet_id);
		struct vs_sn_packet a = {.type = VS_SN_PUBACK,
					 .msg_id = m->ack.packet_id,
					 .rc = puback_rc(m->ack.reason)};
		if (pd) {
			a.topic_id = pd->topic_id;
			pending_done(pd);
		}
		reply(cl, &a);
		return 0;
	}
	case VS_PUBREC: {
		struct pending *pd = pending_find(cl->pubs, m->ack.packet_id);
		if (m->ack.reason >= 0x80) {
			/* 5.0 ends a refused QoS 2 flow at PUBREC; MQTT-SN has only PUBACK with a
			 * return code for that. */
			struct vs_sn_packet a = {.type = VS_SN_PUBACK,
						 .msg_id = m->ack.packet_id,
						 .rc = puback_rc(m->ack.reason),
						 .topic_id = pd ? pd->topic_id : 0};
			reply(cl, &a);
		} else {
			reply_ack(cl, VS_SN_PUBREC, 0, m->ack.packet_id, 0);
		}
		if (pd)
			pending_done(pd);
		return 0;
	}
	case VS_PUBCOMP:
		reply_ack(cl, VS_SN_PUBCOMP, 0, m->ack.packet_id, 0);
		return 0;
	case VS_PUBREL: {
		struct vs_sn_packet r = {.type = VS_SN_PUBREL, .msg_id = m->ack.packet_id};
		return enqueue(cl, &r, VS_SN_PUBCOMP, 0);
	}
	case VS_SUBACK:
	case VS_UNSUBACK:
		return from_suback(cl, m);
	case VS_PINGRESP: {
		struct vs_sn_packet r = {.type = VS_SN_PINGRESP};
		reply(cl, &r);
		return 0;
	}
	case VS_DISCONNECT: {
		if (cl->state != S_GONE) {
			struct vs_sn_packet r = {.type = VS_SN_DISCONNECT};
			reply(cl, &r);
		}
		cl->state = S_GONE;
		return 0;
	}
	default:
		(void)now_ms;
		return 0; /* AUTH: not offered to MQTT-SN clients */
	}
}

/* ---- The transport ----------------------------------------------------------------------- */

static ssize_t sn_read(struct vs_transport *t, void *buf, size_t len)
{
	struct vs_sn_client *cl = cl_of(t);
	size_t n = vs_bytes_avail(&cl->in);
	if (n == 0)
		return -EAGAIN;
	if (n > len)
		n = len;
	memcpy(buf, vs_bytes_head(&cl->in), n);
	vs_bytes_consume(&cl->in, n);
	if (!vs_bytes_avail(&cl->in))
		vs_bytes_shrink(&cl->in, 0);
	return (ssize_t)n;
}

static ssize_t sn_write(struct vs_transport *t, const void *buf, size_t len)
{
	struct vs_sn_client *cl = cl_of(t);
	const uint8_t *b = buf;
	size_t at = 0;
	int64_t now_ms = vs_now_ms();
	while (at < len) {
		if (cl->n_queue >= QUEUE_MAX) {
			cl->blocked = true;
			break;
		}
		struct vs_decode_opts opts = {.version = VS_V5};
		struct vs_packet m;
		enum vs_reason why;
		ssize_t n = vs_codec_decode(b + at, len - at, &opts, &m, &why);
		if (n <= 0) {
			set_why(cl, "MQTT-SN gateway: unreadable packet from the broker");
			return -EPROTO;
		}
		int rc = from_broker(cl, &m, now_ms);
		if (rc < 0) {
			set_why(cl, "MQTT-SN gateway: out of memory");
			return rc;
		}
		at += (size_t)n;
	}
	pump(cl, now_ms);
	return at ? (ssize_t)at : -EAGAIN;
}

static void sn_close(struct vs_transport *t)
{
	struct vs_sn_client *cl = cl_of(t);
	if (!cl)
		return;
	uint8_t key[VS_SN_KEY_MAX];
	size_t kl = vs_sn_key(&cl->peer, key);
	if (vs_map_get(&cl->table->clients, key, kl) == cl->owner)
		vs_map_del(&cl->table->clients, key, kl);
	while (cl->head)
		pop(cl);
	size_t i = 0;
	const char *k;
	size_t klen;
	void *v;
	while (vs_map_next(&cl->by_id, &i, &k, &klen, &v))
		free(v);
	vs_map_fini(&cl->by_id);
	vs_map_fini(&cl->by_name);
	for (int j = 0; j < PENDING; j++) {
		free(cl->pubs[j].name);
		free(cl->subs[j].name);
	}
	vs_bytes_fini(&cl->in);
	vs_bytes_fini(&cl->will_topic);
	vs_bytes_fini(&cl->will_msg);
	vs_bytes_fini(&cl->upd_buf);
	vs_dtls_free(cl->peer.dtls);
	free(cl->client_id);
	free(cl);
	t->state = NULL;
	t->fd = -1;
}

static const char *sn_why(const struct vs_transport *t)
{
	const struct vs_sn_client *cl = cl_of(t);
	return cl && cl->failed ? why_buf : NULL;
}

static const struct vs_transport_ops sn_ops = {
    .name = "mqttsn",
    .read = sn_read,
    .write = sn_write,
    .close = sn_close,
    .why = sn_why,
};

size_t vs_sn_key(const struct vs_sn_peer *p, uint8_t *key)
{
	size_t n = 0;
	key[n++] = (uint8_t)p->addr.sa.sa_family;
	if (p->addr.sa.sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = &p->addr.in6;
		memcpy(key + n, &a->sin6_port, 2);
		memcpy(key + n + 2, &a->sin6_addr, 16);
		n += 18;
	} else {
		const struct sockaddr_in *a = &p->addr.in;
		memcpy(key + n, &a->sin_port, 2);
		memcpy(key + n + 2, &a->sin_addr, 4);
		n += 6;
	}
	size_t nl = p->node_len > VS_SN_KEY_MAX - n - 1 ? VS_SN_KEY_MAX - n - 1 : p->node_len;
	key[n++] = (uint8_t)nl;
	memcpy(key + n, p->node, nl);
	return n + nl;
}

int vs_sn_client_open(struct vs_transport *t, const struct vs_sn_conf *conf,
		      struct vs_sn_table *table, const struct vs_sn_peer *peer, void *owner)
{
	struct vs_sn_client *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		vs_dtls_free(peer->dtls);
		return -ENOMEM;
	}
	cl->conf = conf;
	cl->table = table;
	cl->owner = owner;
	cl->peer = *peer;
	cl->next_tid = 1;
	for (int i = 0; i < PENDING; i++)
		cl->pubs[i].flags = cl->subs[i].flags = 0xFF;
	uint8_t key[VS_SN_KEY_MAX];
	size_t kl = vs_sn_key(peer, key);
	if (vs_map_put(&table->clients, key, kl, owner, NULL) < 0) {
		vs_dtls_free(peer->dtls);
		free(cl);
		return -ENOMEM;
	}
	memset(t, 0, sizeof(*t));
	t->ops = &sn_ops;
	t->state = cl;
	t->fd = -1;
	return 0;
}

int vs_sn_tick(struct vs_transport *t, int64_t now_ms)
{
	struct vs_sn_client *cl = cl_of(t);
	struct entry *e = cl->head;
	if (!e || !e->sent || !may_send(cl) || now_ms - cl->sent_ms < cl->conf->retry_ms)
		return 0;
	if (e->sent > cl->conf->retry_count) {
		char why[96];
		snprintf(why, sizeof(why), "lost: %s not acknowledged after %d tries",
			 vs_sn_type_name(e->dgram[e->dgram[0] == 0x01 ? 3 : 1]), e->sent);
		return fail(cl, why);
	}
	/* Section 6.13: sent again, with DUP for a PUBLISH. */
	int type_at = e->dgram[0] == 0x01 ? 3 : 1;
	if (e->dgram[type_at] == VS_SN_PUBLISH)
		e->dgram[type_at + 1] |= VS_SN_DUP;
	send_raw(cl, e->dgram, e->len);
	e->sent++;
	cl->sent_ms = now_ms;
	return 0;
}

bool vs_sn_settle(struct vs_transport *t, bool more_pending)
{
	struct vs_sn_client *cl = cl_of(t);
	if (cl->state != S_AWAKE || cl->head || more_pending)
		return false;
	struct vs_sn_packet r = {.type = VS_SN_PINGRESP};
	reply(cl, &r);
	cl->state = S_ASLEEP;
	return true;
}

bool vs_sn_awake(const struct vs_transport *t)
{
	return cl_of(t)->state == S_AWAKE;
}

struct vs_dtls *vs_sn_dtls(const struct vs_transport *t)
{
	return cl_of(t)->peer.dtls;
}

struct vs_dtls *vs_sn_take_dtls(struct vs_transport *t)
{
	struct vs_dtls *d = cl_of(t)->peer.dtls;
	cl_of(t)->peer.dtls = NULL;
	return d;
}

bool vs_sn_sleeping(const struct vs_transport *t)
{
	return cl_of(t)->state == S_ASLEEP || cl_of(t)->state == S_AWAKE;
}

bool vs_sn_has_input(const struct vs_transport *t)
{
	return vs_bytes_avail(&cl_of(t)->in) > 0;
}

bool vs_sn_idle(const struct vs_transport *t)
{
	return cl_of(t)->head == NULL;
}

uint16_t vs_sn_keepalive(const struct vs_transport *t)
{
	return cl_of(t)->keepalive;
}

uint16_t vs_sn_sleep_s(const struct vs_transport *t)
{
	return cl_of(t)->sleep_s;
}

const struct vs_sn_will *vs_sn_will(const struct vs_transport *t)
{
	return &cl_of(t)->upd;
}

const char *vs_sn_client_id(const struct vs_transport *t)
{
	const struct vs_sn_client *cl = cl_of(t);
	return cl->client_id ? cl->client_id : "";
}
