/*
 * libviesti's MQTT-SN 1.2 client (the viesti_sn_* calls of include/viesti.h): one UDP socket,
 * blocking calls, no thread. The wire format is src/codec/sn.c's; nothing here knows the
 * gateway's insides (src/sn is above this layer and not linked into the library).
 *
 * What it owns: the socket (connected to one of the gateway's addresses, so only the gateway's
 * datagrams arrive and an ICMP "port unreachable" shows as ECONNREFUSED), the one request in
 * flight with its datagram (kept for retransmission), the keep-alive PINGREQ, the topic-id
 * tables (NORMAL ids of this connection, both directions, and the predefined ids), the
 * message ids of incoming QoS 2 messages not yet released, and the queue of received messages.
 *
 * How a call runs: it sends its request, then serve() reads and handles every datagram that
 * arrives (handle(): answers to the request complete it; what the gateway sends on its own is
 * answered at once) and fires the timers (retransmission, keep-alive) until the request is
 * done, the call's deadline passes, or the gateway is lost. Every request goes through the
 * same `struct req`, so the retransmission rules (section 6.13) live in one place: resend().
 *
 * Invariants: at most one request in flight (req.wait != 0); c->out holds its datagram;
 * `state` changes only on an answer (CONNACK, the DISCONNECT that answers a sleep or a
 * disconnect, a wake-up's PINGRESP) or on losing the gateway.
 */
#include "viesti.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/map.h"
#include "codec/codec.h"
#include "codec/sn.h"

enum {
	IN_CAP = 65536,	      /* any UDP datagram */
	CLIENT_ID_MAX = 1024, /* what Viesti's gateway accepts; the spec says 23 */
};

/* A received message waiting for viesti_sn_receive(). */
struct rx {
	struct rx *next;
	char *topic; /* owned, NUL-terminated */
	size_t topic_len;
	int topic_type;
	uint16_t topic_id;
	uint8_t qos;
	bool retain;
	bool dup;
	uint16_t msg_id;
	size_t len;
	uint8_t payload[];
};

/* The request in flight: what it waits for and what came. */
struct req {
	uint8_t wait; /* the message type that answers it; 0: no request */
	bool has_id;  /* the answer must carry msg_id */
	bool connect; /* CONNECT: the will dialogue may come first; resends go to the next
		       * address */
	bool wake;    /* a wake-up's PINGREQ: messages arriving count as progress */
	bool done;
	uint16_t msg_id;
	int sent;		 /* times sent */
	int64_t sent_ms;	 /* when last sent, or when the gateway last made progress */
	size_t len;		 /* of the datagram in c->out */
	struct vs_sn_packet ans; /* the answer's fixed fields (its data view is not kept) */
};

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct viesti_sn {
	/* options, owned copies */
	char *client_id;
	char *host;
	int keepalive;
	bool clean;
	char *will_topic;
	uint8_t *will_payload;
	size_t will_len;
	int will_qos;
	bool will_retain;
	int retry_ms;
	int retry_count;
	size_t max_queued;
	int log_level;
	void (*on_log)(struct viesti_sn *c, void *ud, int level, const char *line);
	void *ud;

	struct addr *addrs; /* the host's addresses, in getaddrinfo's order */
	size_t n_addrs;
	size_t cur; /* the one the socket is connected to */
	int fd;	    /* -1 until the first send */
	int family;

	int state;	 /* enum viesti_sn_state */
	int pending_err; /* the gateway was lost (VIESTI_ECLOSED, ...): for the waiting call */
	uint16_t last_msg_id;
	struct req req;
	uint8_t *out; /* the request's datagram */
	size_t out_cap;
	uint8_t *in; /* IN_CAP bytes: the datagram being handled */

	bool ka_out; /* a keep-alive PINGREQ awaits its PINGRESP */
	int ka_sent;
	int64_t ka_sent_ms;
	int64_t last_tx_ms; /* for keep-alive: when we last sent anything */

	struct vs_map by_name;	   /* NORMAL ids of this connection: topic -> id */
	struct vs_map by_id;	   /* 2-byte id -> topic (owned) */
	struct vs_map pre_by_name; /* predefined: topic -> id */
	struct vs_map pre_by_id;   /* 2-byte id -> topic (owned) */
	uint8_t qos2[65536 / 8];   /* incoming QoS 2 msg ids: PUBREC sent, PUBREL not yet seen */

	struct rx *head, *tail;
	size_t n_rx;
	struct rx *taken;  /* handed out by viesti_sn_receive(), freed on the next */
	unsigned wake_got; /* messages queued during the current wake-up */
	bool wake_full;	   /* a message was refused for lack of room during it */
};

/* ---- Logging ------------------------------------------------------------------------------ */

static void logf_(struct viesti_sn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void logf_(struct viesti_sn *c, int level, const char *fmt, ...)
{
	if (!c->on_log || level > c->log_level)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->on_log(c, c->ud, level, line);
}

static const char *const tid_names[4] = {"normal", "predefined", "short", "?"};

/* "normal 7", "predefined 1", "short 'ab'" */
static const char *topic_str(uint8_t flags, uint16_t id, char *buf, size_t cap)
{
	int tt = flags & VS_SN_TID_MASK;
	if (tt == VS_SN_TID_SHORT)
		snprintf(buf, cap, "short '%c%c'",
			 (id >> 8) >= 0x20 && (id >> 8) < 0x7F ? id >> 8 : '?',
			 (id & 0xFF) >= 0x20 && (id & 0xFF) < 0x7F ? id & 0xFF : '?');
	else
		snprintf(buf, cap, "%s %u", tid_names[tt], id);
	return buf;
}

/* A debug line per message, in the shape of libviesti's MQTT lines ("Client ID sending ..."). */
static void trace(struct viesti_sn *c, bool sent, const struct vs_sn_packet *p)
{
	if (!c->on_log || c->log_level < VIESTI_LOG_DEBUG)
		return;
	const char *dir = sent ? "sending" : "received";
	const char *name = vs_sn_type_name(p->type);
	int tt = p->flags & VS_SN_TID_MASK;
	char ts[32];
	switch (p->type) {
	case VS_SN_PUBLISH:
		logf_(c, VIESTI_LOG_DEBUG,
		      "Client %s %s PUBLISH (d%d, q%d, r%d, m%u, %s, ... (%zu bytes))",
		      c->client_id, dir, !!(p->flags & VS_SN_DUP), vs_sn_qos(p->flags),
		      !!(p->flags & VS_SN_RETAIN), p->msg_id,
		      topic_str(p->flags, p->topic_id, ts, sizeof(ts)), p->data.len);
		break;
	case VS_SN_REGISTER:
		logf_(c, VIESTI_LOG_DEBUG, "Client %s %s REGISTER (t%u, m%u, '%.*s')", c->client_id,
		      dir, p->topic_id, p->msg_id, (int)p->data.len, (const char *)p->data.p);
		break;
	case VS_SN_REGACK:
	case VS_SN_PUBACK:
	case VS_SN_SUBACK:
		logf_(c, VIESTI_LOG_DEBUG, "Client %s %s %s (t%u, m%u, rc%d)", c->client_id, dir,
		      name, p->topic_id, p->msg_id, p->rc);
		break;
	case VS_SN_PUBREC:
	case VS_SN_PUBREL:
	case VS_SN_PUBCOMP:
	case VS_SN_UNSUBACK:
		logf_(c, VIESTI_LOG_DEBUG, "Client %s %s %s (m%u)", c->client_id, dir, name,
		      p->msg_id);
		break;
	case VS_SN_SUBSCRIBE:
	case VS_SN_UNSUBSCRIBE:
		if (tt == VS_SN_TID_NORMAL)
			logf_(c, VIESTI_LOG_DEBUG, "Client %s %s %s (m%u, q%d, '%.*s')",
			      c->client_id, dir, name, p->msg_id, vs_sn_qos(p->flags),
			      (int)p->data.len, (const char *)p->data.p);
		else
			logf_(c, VIESTI_LOG_DEBUG, "Client %s %s %s (m%u, q%d, %s)", c->client_id,
			      dir, name, p->msg_id, vs_sn_qos(p->flags),
			      topic_str(p->flags, p->topic_id, ts, sizeof(ts)));
		break;
	case VS_SN_PINGREQ:
		if (p->data.len)
			logf_(c, VIESTI_LOG_DEBUG, "Client %s %s PINGREQ (wake-up: '%.*s')",
			      c->client_id, dir, (int)p->data.len, (const char *)p->data.p);
		else
			logf_(c, VIESTI_LOG_DEBUG, "Client %s %s PINGREQ", c->client_id, dir);
		break;
	case VS_SN_CONNACK:
	case VS_SN_WILLTOPICRESP:
	case VS_SN_WILLMSGRESP:
		logf_(c, VIESTI_LOG_DEBUG, "Client %s %s %s (rc%d)", c->client_id, dir, name,
		      p->rc);
		break;
	case VS_SN_DISCONNECT:
		if (p->has_duration) {
			logf_(c, VIESTI_LOG_DEBUG, "Client %s %s DISCONNECT (%u s)", c->client_id,
			      dir, p->duration);
			break;
		}
		/* fall through */
	default:
		logf_(c, VIESTI_LOG_DEBUG, "Client %s %s %s", c->client_id, dir, name);
	}
}

/* ---- Topic-id tables ---------------------------------------------------------------------- */

static void id_key(uint16_t id, uint8_t key[2])
{
	key[0] = (uint8_t)(id >> 8);
	key[1] = (uint8_t)id;
}

static const char *table_name(const struct vs_map *by_id, uint16_t id)
{
	uint8_t key[2];
	id_key(id, key);
	return vs_map_get(by_id, key, 2);
}

static uint16_t table_id(const struct vs_map *by_name, const char *name, size_t len)
{
	return (uint16_t)(uintptr_t)vs_map_get(by_name, name, len);
}

static void table_forget_id(struct vs_map *by_name, struct vs_map *by_id, uint16_t id)
{
	uint8_t key[2];
	id_key(id, key);
	char *name = vs_map_del(by_id, key, 2);
	if (name) {
		vs_map_del(by_name, name, strlen(name));
		free(name);
	}
}

/* id <-> name, replacing whatever either was mapped to. Returns 0 or -ENOMEM. */
static int table_set(struct vs_map *by_name, struct vs_map *by_id, uint16_t id, const char *name,
		     size_t len)
{
	table_forget_id(by_name, by_id, id);
	uint16_t old = table_id(by_name, name, len);
	if (old)
		table_forget_id(by_name, by_id, old);
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, name, len);
	copy[len] = '\0';
	uint8_t key[2];
	id_key(id, key);
	if (vs_map_put(by_id, key, 2, copy, NULL) < 0) {
		free(copy);
		return -ENOMEM;
	}
	if (vs_map_put(by_name, copy, len, (void *)(uintptr_t)id, NULL) < 0) {
		free(vs_map_del(by_id, key, 2));
		return -ENOMEM;
	}
	return 0;
}

static void table_fini(struct vs_map *by_name, struct vs_map *by_id)
{
	size_t i = 0;
	const char *k;
	size_t kl;
	void *v;
	while (vs_map_next(by_id, &i, &k, &kl, &v))
		free(v);
	vs_map_fini(by_id);
	vs_map_fini(by_name);
}

/* ---- Options and life --------------------------------------------------------------------- */

void viesti_sn_options_init(struct viesti_sn_options *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "localhost";
	o->port = 1884;
	o->keepalive = 60;
	o->clean = true;
	o->retry_ms = 10000;
	o->retry_count = 5;
	o->max_queued = 1000;
	o->log_level = VIESTI_LOG_INFO;
}

static bool options_ok(const struct viesti_sn_options *o)
{
	if (!o->host || !*o->host || o->port < 1 || o->port > 65535 || o->keepalive < 0 ||
	    o->keepalive > 65535 || o->retry_ms < 1 || o->retry_count < 0 ||
	    o->retry_count > 1000 || o->max_queued < 1)
		return false;
	if (o->client_id && (!*o->client_id || strlen(o->client_id) > CLIENT_ID_MAX))
		return false;
	if (!o->will_topic)
		return true;
	return o->will_qos >= 0 && o->will_qos <= 2 && o->will_payload_len <= 65000 &&
	       (o->will_payload || !o->will_payload_len) &&
	       vs_topic_name_valid((const uint8_t *)o->will_topic, strlen(o->will_topic));
}

static char *make_client_id(void)
{
	uint64_t r;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid() << 40;
	}
	char *id = malloc(24);
	if (id)
		snprintf(id, 24, "viesti-sn-%012llx", (unsigned long long)(r & 0xFFFFFFFFFFFFull));
	return id;
}

static int resolve(struct viesti_sn *c, const char *host, int port)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_ADDRCONFIG};
	char service[8];
	snprintf(service, sizeof(service), "%d", port);
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME) {
		hints.ai_flags = 0; /* AI_ADDRCONFIG hides ::1 and 127.0.0.1 without a route */
		rc = getaddrinfo(host, service, &hints, &res);
	}
	if (rc != 0)
		return rc == EAI_MEMORY ? -ENOMEM : rc == EAI_SYSTEM ? -errno : -ENOENT;
	size_t n = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		n++;
	c->addrs = calloc(n ? n : 1, sizeof(*c->addrs));
	if (!c->addrs) {
		freeaddrinfo(res);
		return -ENOMEM;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(c->addrs[0].ss))
			continue;
		memcpy(&c->addrs[c->n_addrs].ss, ai->ai_addr, ai->ai_addrlen);
		c->addrs[c->n_addrs++].len = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	return c->n_addrs ? 0 : -ENOENT;
}

static int copy_options(struct viesti_sn *c, const struct viesti_sn_options *o)
{
	c->client_id = o->client_id ? strdup(o->client_id) : make_client_id();
	c->host = strdup(o->host);
	if (!c->client_id || !c->host)
		return -ENOMEM;
	c->keepalive = o->keepalive;
	c->clean = o->clean;
	c->retry_ms = o->retry_ms;
	c->retry_count = o->retry_count;
	c->max_queued = o->max_queued;
	c->log_level = o->log_level;
	c->on_log = o->on_log;
	c->ud = o->ud;
	if (o->will_topic) {
		c->will_topic = strdup(o->will_topic);
		c->will_payload = malloc(o->will_payload_len + 1);
		if (!c->will_topic || !c->will_payload)
			return -ENOMEM;
		if (o->will_payload_len)
			memcpy(c->will_payload, o->will_payload, o->will_payload_len);
		c->will_len = o->will_payload_len;
		c->will_qos = o->will_qos;
		c->will_retain = o->will_retain;
	}
	return 0;
}

struct viesti_sn *viesti_sn_new(const struct viesti_sn_options *o, int *err)
{
	int rc = VIESTI_EINVAL;
	struct viesti_sn *c = NULL;
	if (!o || !options_ok(o))
		goto out_err;
	rc = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out_err;
	c->fd = -1;
	c->in = malloc(IN_CAP);
	if (!c->in || (rc = copy_options(c, o)) < 0 || (rc = resolve(c, o->host, o->port)) < 0)
		goto out_free;
	if (err)
		*err = 0;
	return c;
out_free:
	viesti_sn_free(c);
	c = NULL;
out_err:
	if (err)
		*err = rc;
	return NULL;
}

static void drop_queue(struct viesti_sn *c)
{
	while (c->head) {
		struct rx *r = c->head;
		c->head = r->next;
		free(r->topic);
		free(r);
	}
	c->tail = NULL;
	c->n_rx = 0;
}

void viesti_sn_free(struct viesti_sn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	drop_queue(c);
	if (c->taken) {
		free(c->taken->topic);
		free(c->taken);
	}
	table_fini(&c->by_name, &c->by_id);
	table_fini(&c->pre_by_name, &c->pre_by_id);
	free(c->addrs);
	free(c->in);
	free(c->out);
	free(c->client_id);
	free(c->host);
	free(c->will_topic);
	free(c->will_payload);
	free(c);
}

int viesti_sn_predefine(struct viesti_sn *c, uint16_t id, const char *topic)
{
	size_t len = topic ? strlen(topic) : 0;
	if (id == 0 || id == 0xFFFF || !vs_topic_name_valid((const uint8_t *)topic, len))
		return VIESTI_EINVAL;
	if (table_name(&c->pre_by_id, id) || table_id(&c->pre_by_name, topic, len))
		return VIESTI_EINVAL;
	return table_set(&c->pre_by_name, &c->pre_by_id, id, topic, len);
}

enum viesti_sn_state viesti_sn_state(const struct viesti_sn *c)
{
	return (enum viesti_sn_state)c->state;
}

const char *viesti_sn_client_id(const struct viesti_sn *c)
{
	return c->client_id;
}

size_t viesti_sn_queued(const struct viesti_sn *c)
{
	return c->n_rx;
}

int viesti_sn_fd(const struct viesti_sn *c)
{
	return c->fd;
}

/* ---- The socket --------------------------------------------------------------------------- */

/* Points the socket at address i (a new socket when the family changes). Returns 0 or -errno. */
static int use_addr(struct viesti_sn *c, size_t i)
{
	const struct addr *a = &c->addrs[i];
	if (c->fd >= 0 && c->family != a->ss.ss_family) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->fd < 0) {
		c->fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			return -errno;
		c->family = a->ss.ss_family;
	}
	if (connect(c->fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		return -errno;
	c->cur = i;
	return 0;
}

static int ensure_socket(struct viesti_sn *c)
{
	return c->fd >= 0 ? 0 : use_addr(c, c->cur);
}

/* The gateway is lost (retries used up, its DISCONNECT, an ICMP refusal): the client is
 * disconnected. The call that waits returns the error that said so. */
static void lose(struct viesti_sn *c, const char *why)
{
	if (c->state != VIESTI_SN_DISCONNECTED)
		logf_(c, VIESTI_LOG_WARN, "MQTT-SN gateway lost: %s", why);
	c->state = VIESTI_SN_DISCONNECTED;
	c->ka_out = false;
}

static int send_dgram(struct viesti_sn *c, const uint8_t *d, size_t len)
{
	int rc = ensure_socket(c);
	if (rc < 0)
		return rc;
	if (send(c->fd, d, len, MSG_DONTWAIT) < 0) {
		/* A full socket buffer loses the datagram as the network may: what needs an
		 * answer is sent again. */
		if (errno == ECONNREFUSED)
			lose(c, "nobody listens on its port");
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
			return -errno;
	}
	c->last_tx_ms = vs_now_ms();
	return 0;
}

/* Encodes and sends a message that is not a request (an answer, a QoS 0 or -1 PUBLISH). */
static int send_pkt(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	uint8_t small[64];
	ssize_t n = vs_sn_size(p);
	if (n < 0)
		return (int)n;
	uint8_t *buf = (size_t)n <= sizeof(small) ? small : malloc((size_t)n);
	if (!buf)
		return -ENOMEM;
	vs_sn_encode(p, buf, (size_t)n);
	trace(c, true, p);
	int rc = send_dgram(c, buf, (size_t)n);
	if (buf != small)
		free(buf);
	return rc;
}

static void ack(struct viesti_sn *c, uint8_t type, uint16_t topic_id, uint16_t msg_id, uint8_t rc)
{
	struct vs_sn_packet p = {.type = type, .topic_id = topic_id, .msg_id = msg_id, .rc = rc};
	(void)send_pkt(c, &p);
}

static uint16_t next_msg_id(struct viesti_sn *c)
{
	c->last_msg_id = c->last_msg_id == 0xFFFF ? 1 : c->last_msg_id + 1;
	return c->last_msg_id;
}

/* ---- Requests ----------------------------------------------------------------------------- */

/* Encodes p as the request's datagram. Returns 0, VIESTI_ETOOBIG or -ENOMEM. */
static int set_out(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	ssize_t n = vs_sn_size(p);
	if (n < 0)
		return n == VS_ETOOBIG ? VIESTI_ETOOBIG : VIESTI_EINVAL;
	if ((size_t)n > c->out_cap) {
		uint8_t *o = realloc(c->out, (size_t)n);
		if (!o)
			return -ENOMEM;
		c->out = o;
		c->out_cap = (size_t)n;
	}
	c->req.len = (size_t)vs_sn_encode(p, c->out, c->out_cap);
	return 0;
}

static int send_out(struct viesti_sn *c)
{
	c->req.sent++;
	c->req.sent_ms = vs_now_ms();
	if (c->log_level >= VIESTI_LOG_DEBUG) {
		struct vs_sn_packet p;
		if (vs_sn_decode(c->out, c->req.len, &p, NULL) == 0)
			trace(c, true, &p);
	}
	return send_dgram(c, c->out, c->req.len);
}

/* Makes p the request in flight, waiting for `wait`, and sends it. */
static int start(struct viesti_sn *c, const struct vs_sn_packet *p, uint8_t wait, bool has_id)
{
	int rc = set_out(c, p);
	if (rc < 0)
		return rc;
	c->req.wait = wait;
	c->req.has_id = has_id;
	c->req.msg_id = p->msg_id;
	c->req.connect = p->type == VS_SN_CONNECT;
	c->req.wake = false;
	c->req.done = false;
	c->req.sent = 0;
	memset(&c->req.ans, 0, sizeof(c->req.ans));
	return send_out(c);
}

/* Section 6.13: sends the request again (a PUBLISH with DUP), or gives up. */
static int resend(struct viesti_sn *c)
{
	if (c->req.sent > c->retry_count) {
		lose(c, "no answer after the retries");
		return -ETIMEDOUT;
	}
	if (c->req.connect && c->n_addrs > 1) {
		int rc = use_addr(c, (c->cur + 1) % c->n_addrs);
		if (rc < 0)
			return rc;
	}
	size_t at = c->out[0] == 0x01 ? 3 : 1;
	if (c->out[at] == VS_SN_PUBLISH)
		c->out[at + 1] |= VS_SN_DUP;
	return send_out(c);
}

/* ---- Handling what arrives ---------------------------------------------------------------- */

/* Whether p answers the request in flight. */
static bool answers(const struct viesti_sn *c, const struct vs_sn_packet *p)
{
	if (!c->req.wait || c->req.done)
		return false;
	if (p->type == VS_SN_PUBACK && c->req.wait == VS_SN_PUBREC)
		return p->msg_id == c->req.msg_id; /* a QoS 2 PUBLISH refused */
	if (p->type != c->req.wait)
		return false;
	return !c->req.has_id || p->msg_id == c->req.msg_id;
}

static void complete(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	c->req.done = true;
	c->req.ans = *p;
	c->req.ans.data = (struct vs_buf){NULL, 0};
}

/* The will dialogue (section 6.3): the gateway asks for the will topic, then the message. */
static void on_will_request(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	if (!c->req.connect || c->req.done)
		return;
	struct vs_sn_packet w = {.type = p->type == VS_SN_WILLTOPICREQ ? VS_SN_WILLTOPIC
								       : VS_SN_WILLMSG};
	if (!c->will_topic) {
		w.empty_will = true; /* asked without a will: an empty WILLTOPIC says "none" */
		if (w.type == VS_SN_WILLMSG)
			return;
	} else if (w.type == VS_SN_WILLTOPIC) {
		w.flags = vs_sn_qos_flags(c->will_qos) | (c->will_retain ? VS_SN_RETAIN : 0);
		w.data = (struct vs_buf){(const uint8_t *)c->will_topic, strlen(c->will_topic)};
	} else {
		w.data = (struct vs_buf){c->will_payload, c->will_len};
	}
	/* Progress: the retransmission clock starts again. A resend is the CONNECT, which starts
	 * the dialogue over wherever it broke off (a gateway need not answer a repeated WILLTOPIC
	 * or WILLMSG). */
	c->req.sent_ms = vs_now_ms();
	(void)send_pkt(c, &w);
}

static void on_register(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	uint8_t rc = VS_SN_RC_ACCEPTED;
	if (p->topic_id == 0 || p->topic_id == 0xFFFF ||
	    !vs_topic_name_valid(p->data.p, p->data.len))
		rc = VS_SN_RC_NOT_SUPPORTED;
	else if (table_set(&c->by_name, &c->by_id, p->topic_id, (const char *)p->data.p,
			   p->data.len) < 0)
		rc = VS_SN_RC_CONGESTION;
	ack(c, VS_SN_REGACK, p->topic_id, p->msg_id, rc);
}

/* The topic a PUBLISH names, or NULL (buf holds a short name). */
static const char *topic_of(const struct viesti_sn *c, const struct vs_sn_packet *p, char buf[3])
{
	switch (p->flags & VS_SN_TID_MASK) {
	case VS_SN_TID_SHORT:
		buf[0] = (char)(p->topic_id >> 8);
		buf[1] = (char)p->topic_id;
		buf[2] = '\0';
		return buf[0] && buf[1] ? buf : NULL;
	case VS_SN_TID_PREDEFINED:
		return table_name(&c->pre_by_id, p->topic_id);
	default:
		return table_name(&c->by_id, p->topic_id);
	}
}

static bool qos2_seen(const struct viesti_sn *c, uint16_t id)
{
	return c->qos2[id >> 3] & (1u << (id & 7));
}

static void qos2_mark(struct viesti_sn *c, uint16_t id, bool on)
{
	if (on)
		c->qos2[id >> 3] |= (uint8_t)(1u << (id & 7));
	else
		c->qos2[id >> 3] &= (uint8_t) ~(1u << (id & 7));
}

/* Queues a message for viesti_sn_receive(). Returns false when there is no room. */
static bool enqueue(struct viesti_sn *c, const struct vs_sn_packet *p, const char *topic)
{
	if (c->n_rx >= c->max_queued)
		return false;
	struct rx *r = malloc(sizeof(*r) + p->data.len + 1);
	if (!r)
		return false;
	r->topic = strdup(topic);
	if (!r->topic) {
		free(r);
		return false;
	}
	r->next = NULL;
	r->topic_len = strlen(topic);
	r->topic_type = p->flags & VS_SN_TID_MASK;
	r->topic_id = p->topic_id;
	r->qos = (uint8_t)vs_sn_qos(p->flags);
	r->retain = (p->flags & VS_SN_RETAIN) != 0;
	r->dup = (p->flags & VS_SN_DUP) != 0;
	r->msg_id = p->msg_id;
	r->len = p->data.len;
	if (p->data.len)
		memcpy(r->payload, p->data.p, p->data.len);
	r->payload[p->data.len] = 0;
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->n_rx++;
	if (c->state == VIESTI_SN_AWAKE)
		c->wake_got++;
	return true;
}

/* A PUBLISH from the gateway: delivered once, acknowledged by its QoS (sections 6.6, 6.7). */
static void on_publish(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	int qos = vs_sn_qos(p->flags);
	char buf[3];
	const char *topic = topic_of(c, p, buf);
	if (!topic) {
		logf_(c, VIESTI_LOG_WARN, "PUBLISH on unknown %s topic id %u refused",
		      tid_names[p->flags & VS_SN_TID_MASK], p->topic_id);
		ack(c, VS_SN_PUBACK, p->topic_id, p->msg_id, VS_SN_RC_INVALID_TOPIC);
		return;
	}
	if (qos == 2 && qos2_seen(c, p->msg_id)) {
		ack(c, VS_SN_PUBREC, 0, p->msg_id, 0); /* sent again: delivered already */
		return;
	}
	if (!enqueue(c, p, topic)) {
		/* No room: QoS 1 and 2 go unacknowledged and come again; QoS 0 is lost. */
		if (c->state == VIESTI_SN_AWAKE)
			c->wake_full = true;
		logf_(c, VIESTI_LOG_WARN, "receive queue full: QoS %d message on %s %s", qos, topic,
		      qos > 0 ? "left unacknowledged" : "dropped");
		return;
	}
	if (qos == 1) {
		ack(c, VS_SN_PUBACK, p->topic_id, p->msg_id, VS_SN_RC_ACCEPTED);
	} else if (qos == 2) {
		qos2_mark(c, p->msg_id, true);
		ack(c, VS_SN_PUBREC, 0, p->msg_id, 0);
	}
}

/* A PUBACK that answers nothing in flight: the gateway forgot a topic id used at QoS 0. */
static void on_stray_puback(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	if (p->rc == VS_SN_RC_INVALID_TOPIC && table_name(&c->by_id, p->topic_id)) {
		logf_(c, VIESTI_LOG_WARN, "gateway does not know topic id %u: registering it again",
		      p->topic_id);
		table_forget_id(&c->by_name, &c->by_id, p->topic_id);
	}
}

/* PUBREC of our QoS 2 PUBLISH: PUBREL becomes the request, waiting for PUBCOMP. */
static void on_pubrec(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	struct vs_sn_packet rel = {.type = VS_SN_PUBREL, .msg_id = p->msg_id};
	bool ours = answers(c, p) ||
		    (c->req.wait == VS_SN_PUBCOMP && c->req.msg_id == p->msg_id && !c->req.done);
	if (!ours) {
		(void)send_pkt(c, &rel); /* a repeated PUBREC, after the PUBCOMP came */
		return;
	}
	if (set_out(c, &rel) < 0)
		return;
	c->req.wait = VS_SN_PUBCOMP;
	c->req.sent = 0;
	(void)send_out(c);
}

static void on_pingresp(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	c->ka_out = false;
	if (c->state == VIESTI_SN_AWAKE)
		c->state = VIESTI_SN_ASLEEP; /* section 6.14: all that was kept has come */
	if (answers(c, p))
		complete(c, p);
}

static void on_disconnect(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	if (answers(c, p)) {
		complete(c, p);
		return;
	}
	lose(c, "the gateway sent DISCONNECT");
	c->pending_err = VIESTI_ECLOSED;
}

/* Progress of a wake-up: the gateway is sending; the PINGREQ need not go again yet. */
static void wake_progress(struct viesti_sn *c)
{
	if (c->req.wake && !c->req.done) {
		c->req.sent = 1;
		c->req.sent_ms = vs_now_ms();
	}
}

static void handle(struct viesti_sn *c, const uint8_t *d, size_t len)
{
	struct vs_sn_packet p;
	const char *why = "";
	if (vs_sn_decode(d, len, &p, &why) < 0) {
		logf_(c, VIESTI_LOG_WARN, "malformed MQTT-SN datagram from the gateway dropped: %s",
		      why);
		return;
	}
	trace(c, false, &p);
	switch (p.type) {
	case VS_SN_WILLTOPICREQ:
	case VS_SN_WILLMSGREQ:
		on_will_request(c, &p);
		return;
	case VS_SN_REGISTER:
		wake_progress(c);
		on_register(c, &p);
		return;
	case VS_SN_PUBLISH:
		wake_progress(c);
		on_publish(c, &p);
		return;
	case VS_SN_PUBREL:
		wake_progress(c);
		qos2_mark(c, p.msg_id, false);
		ack(c, VS_SN_PUBCOMP, 0, p.msg_id, 0);
		return;
	case VS_SN_PUBREC:
		on_pubrec(c, &p);
		return;
	case VS_SN_PINGREQ:
		ack(c, VS_SN_PINGRESP, 0, 0, 0);
		return;
	case VS_SN_PINGRESP:
		on_pingresp(c, &p);
		return;
	case VS_SN_DISCONNECT:
		on_disconnect(c, &p);
		return;
	case VS_SN_PUBACK:
		if (!answers(c, &p))
			on_stray_puback(c, &p);
		break;
	default:
		break;
	}
	if (answers(c, &p))
		complete(c, &p);
}

/* Reads and handles every datagram waiting. Returns 0 or -errno (-ECONNREFUSED). */
static int read_all(struct viesti_sn *c)
{
	if (c->fd < 0)
		return 0;
	for (;;) {
		ssize_t n = recv(c->fd, c->in, IN_CAP, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			if (errno == ECONNREFUSED)
				lose(c, "nobody listens on its port");
			return -errno;
		}
		if (n > IN_CAP) {
			logf_(c, VIESTI_LOG_WARN, "datagram of %zd bytes dropped", n);
			continue;
		}
		handle(c, c->in, (size_t)n);
	}
}

/* ---- Timers and waiting ------------------------------------------------------------------- */

static int64_t ka_due(const struct viesti_sn *c)
{
	if (c->state != VIESTI_SN_ACTIVE || c->keepalive == 0)
		return -1;
	if (c->ka_out)
		return c->ka_sent_ms + c->retry_ms;
	return c->last_tx_ms + (int64_t)c->keepalive * 1000;
}

static int64_t req_due(const struct viesti_sn *c)
{
	return c->req.wait && !c->req.done ? c->req.sent_ms + c->retry_ms : -1;
}

/* The keep-alive: a PINGREQ when nothing was sent for `keepalive` seconds (section 6.15),
 * sent again like a request, the gateway lost when no PINGRESP comes. */
static int keepalive(struct viesti_sn *c, int64_t now)
{
	int64_t due = ka_due(c);
	if (due < 0 || now < due)
		return 0;
	if (c->ka_out && c->ka_sent > c->retry_count) {
		lose(c, "no PINGRESP to the keep-alive");
		return -ETIMEDOUT;
	}
	struct vs_sn_packet p = {.type = VS_SN_PINGREQ};
	c->ka_sent = c->ka_out ? c->ka_sent + 1 : 1;
	c->ka_out = true;
	c->ka_sent_ms = now;
	return send_pkt(c, &p);
}

static int timers(struct viesti_sn *c, int64_t now)
{
	int64_t due = req_due(c);
	if (due >= 0 && now >= due) {
		int rc = resend(c);
		if (rc < 0)
			return rc;
	}
	return keepalive(c, now);
}

int viesti_sn_next_timeout_ms(const struct viesti_sn *c)
{
	int64_t a = req_due(c), b = ka_due(c);
	int64_t due = a < 0 ? b : b < 0 ? a : a < b ? a : b;
	if (due < 0)
		return -1;
	int64_t left = due - vs_now_ms();
	return left < 0 ? 0 : left > 86400000 ? 86400000 : (int)left;
}

/* The error that lost the gateway (its DISCONNECT), once: for the call that comes next. */
static int take_pending(struct viesti_sn *c)
{
	int rc = c->pending_err;
	c->pending_err = 0;
	return rc;
}

int viesti_sn_process(struct viesti_sn *c)
{
	int rc = read_all(c);
	if (rc == 0)
		rc = take_pending(c);
	return rc < 0 ? rc : timers(c, vs_now_ms());
}

/* Serves the client until done(c), the deadline (-1: none) or an error. What is done counts
 * first: a DISCONNECT read in the same batch as the answer is for the next call. */
static int serve(struct viesti_sn *c, bool (*done)(const struct viesti_sn *c), int64_t deadline)
{
	for (;;) {
		int rc = read_all(c);
		if (rc < 0)
			return rc;
		if (done(c))
			return 0;
		if ((rc = take_pending(c)) < 0)
			return rc;
		int64_t now = vs_now_ms();
		if ((rc = timers(c, now)) < 0)
			return rc;
		now = vs_now_ms();
		if (deadline >= 0 && now >= deadline)
			return -ETIMEDOUT;
		int t = viesti_sn_next_timeout_ms(c);
		if (deadline >= 0 && (t < 0 || deadline - now < t))
			t = (int)(deadline - now);
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		if (poll(&pfd, c->fd >= 0 ? 1 : 0, t) < 0 && errno == EINTR)
			return -EINTR;
	}
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : vs_now_ms() + timeout_ms;
}

static bool req_done(const struct viesti_sn *c)
{
	return c->req.done;
}

/* Sends p as the request, waiting for `wait` (with p's msg id when has_id), and serves the
 * client until the answer (0, in c->req.ans), the deadline or the gateway is lost. */
static int request(struct viesti_sn *c, const struct vs_sn_packet *p, uint8_t wait, bool has_id,
		   int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	int rc = start(c, p, wait, has_id);
	if (rc == 0)
		rc = serve(c, req_done, deadline);
	if (rc < 0)
		c->req.wait = 0; /* abandoned: a late answer is ignored */
	return rc;
}

static bool connected(const struct viesti_sn *c)
{
	return c->state == VIESTI_SN_ACTIVE;
}

/* ---- Connecting --------------------------------------------------------------------------- */

/* Whether the gateway keeps this client's topic ids across the CONNECT: only a sleeping
 * client coming back without CleanSession and without a will keeps its connection there. */
static bool keeps_ids(const struct viesti_sn *c)
{
	return (c->state == VIESTI_SN_ASLEEP || c->state == VIESTI_SN_AWAKE) && !c->clean &&
	       !c->will_topic;
}

static void reset_for_connect(struct viesti_sn *c)
{
	if (!keeps_ids(c)) {
		table_fini(&c->by_name, &c->by_id);
		memset(&c->by_name, 0, sizeof(c->by_name));
		memset(&c->by_id, 0, sizeof(c->by_id));
	}
	if (c->clean)
		memset(c->qos2, 0, sizeof(c->qos2));
	c->ka_out = false;
	c->pending_err = 0;
	c->state = VIESTI_SN_DISCONNECTED;
}

int viesti_sn_connect(struct viesti_sn *c, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	reset_for_connect(c);
	struct vs_sn_packet p = {
	    .type = VS_SN_CONNECT, .protocol = 0x01, .duration = (uint16_t)c->keepalive};
	p.flags = (c->will_topic ? VS_SN_WILL : 0) | (c->clean ? VS_SN_CLEAN : 0);
	p.data = (struct vs_buf){(const uint8_t *)c->client_id, strlen(c->client_id)};
	int rc = ensure_socket(c);
	size_t refused = 0;
	if (rc == 0)
		rc = start(c, &p, VS_SN_CONNACK, false);
	for (;;) {
		if (rc == 0)
			rc = serve(c, req_done, deadline);
		if (rc != -ECONNREFUSED || ++refused >= c->n_addrs)
			break;
		/* Nobody there: the next address, at once. */
		if ((rc = use_addr(c, (c->cur + 1) % c->n_addrs)) == 0) {
			c->req.sent = 0;
			rc = send_out(c);
		}
	}
	c->req.wait = 0;
	if (rc < 0)
		return rc;
	if (c->req.ans.rc == VS_SN_RC_ACCEPTED)
		c->state = VIESTI_SN_ACTIVE;
	else
		logf_(c, VIESTI_LOG_ERR, "CONNACK: rejected (return code %d)", c->req.ans.rc);
	return c->req.ans.rc;
}

int viesti_sn_disconnect(struct viesti_sn *c, int timeout_ms)
{
	if (c->state == VIESTI_SN_DISCONNECTED)
		return VIESTI_ESTATE;
	struct vs_sn_packet p = {.type = VS_SN_DISCONNECT};
	int rc = request(c, &p, VS_SN_DISCONNECT, false, timeout_ms);
	c->state = VIESTI_SN_DISCONNECTED;
	c->ka_out = false;
	return rc;
}

/* ---- Topics and publishing ---------------------------------------------------------------- */

static int register_name(struct viesti_sn *c, const char *topic, size_t len, uint16_t *id,
			 int timeout_ms)
{
	struct vs_sn_packet p = {.type = VS_SN_REGISTER, .msg_id = next_msg_id(c)};
	p.data = (struct vs_buf){(const uint8_t *)topic, len};
	int rc = request(c, &p, VS_SN_REGACK, true, timeout_ms);
	if (rc < 0)
		return rc;
	rc = c->req.ans.rc;
	if (rc == VS_SN_RC_ACCEPTED) {
		if (c->req.ans.topic_id == 0 || c->req.ans.topic_id == 0xFFFF)
			return VIESTI_EPROTO;
		if (table_set(&c->by_name, &c->by_id, c->req.ans.topic_id, topic, len) < 0)
			return -ENOMEM;
		*id = c->req.ans.topic_id;
	}
	return rc;
}

int viesti_sn_register(struct viesti_sn *c, const char *topic, uint16_t *topic_id, int timeout_ms)
{
	size_t len = topic ? strlen(topic) : 0;
	if (!vs_topic_name_valid((const uint8_t *)topic, len))
		return VIESTI_EINVAL;
	if (!connected(c))
		return VIESTI_ESTATE;
	uint16_t id = table_id(&c->by_name, topic, len);
	int rc = id ? 0 : register_name(c, topic, len, &id, timeout_ms);
	if (rc == 0 && topic_id)
		*topic_id = id;
	return rc;
}

/* The kind and id for a topic name; a NORMAL name not yet registered gets id 0. */
static uint8_t topic_kind(const struct viesti_sn *c, const char *topic, size_t len, uint16_t *id)
{
	if ((*id = table_id(&c->pre_by_name, topic, len)))
		return VS_SN_TID_PREDEFINED;
	if (len == 2) {
		*id = VIESTI_SN_SHORT(topic[0], topic[1]);
		return VS_SN_TID_SHORT;
	}
	*id = table_id(&c->by_name, topic, len);
	return VS_SN_TID_NORMAL;
}

/* QoS -1 (section 6.8): one datagram, no connection, no answer. Over several addresses, on to
 * the next while one refuses at once (an ICMP error the kernel has by the time send returns,
 * as on the loopback). */
static int publish_unconnected(struct viesti_sn *c, const struct vs_sn_packet *p)
{
	int rc = ensure_socket(c);
	for (size_t tried = 0; rc == 0 && tried < c->n_addrs; tried++) {
		rc = send_pkt(c, p);
		int err = 0;
		socklen_t el = sizeof(err);
		if (rc == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err)
			rc = -err;
		if (rc != -ECONNREFUSED || tried + 1 >= c->n_addrs)
			break;
		rc = use_addr(c, (c->cur + 1) % c->n_addrs);
	}
	return rc;
}

int viesti_sn_publish(struct viesti_sn *c, const char *topic, const void *payload, size_t len,
		      int qos, bool retain, int timeout_ms)
{
	size_t tlen = topic ? strlen(topic) : 0;
	if (qos < -1 || qos > 2 || !vs_topic_name_valid((const uint8_t *)topic, tlen) ||
	    (len && !payload))
		return VIESTI_EINVAL;
	uint16_t id;
	uint8_t kind = topic_kind(c, topic, tlen, &id);
	struct vs_sn_packet p = {.type = VS_SN_PUBLISH, .data = {payload, len}};
	if (qos == -1) {
		if (kind == VS_SN_TID_NORMAL)
			return VIESTI_EINVAL;
	} else if (!connected(c)) {
		return VIESTI_ESTATE;
	}
	int64_t deadline = deadline_of(timeout_ms);
	if (kind == VS_SN_TID_NORMAL && !id) {
		int rc = register_name(c, topic, tlen, &id, timeout_ms);
		if (rc != 0)
			return rc;
		if (deadline >= 0)
			timeout_ms = (int)(deadline > vs_now_ms() ? deadline - vs_now_ms() : 0);
	}
	p.flags = vs_sn_qos_flags(qos) | (retain ? VS_SN_RETAIN : 0) | kind;
	p.topic_id = id;
	if (vs_sn_size(&p) < 0)
		return VIESTI_ETOOBIG;
	if (qos == -1)
		return publish_unconnected(c, &p);
	if (qos == 0)
		return send_pkt(c, &p);
	p.msg_id = next_msg_id(c);
	int rc = request(c, &p, qos == 1 ? VS_SN_PUBACK : VS_SN_PUBREC, true, timeout_ms);
	if (rc < 0)
		return rc;
	rc = c->req.ans.type == VS_SN_PUBCOMP ? VS_SN_RC_ACCEPTED : c->req.ans.rc;
	if (rc == VS_SN_RC_INVALID_TOPIC && kind == VS_SN_TID_NORMAL)
		table_forget_id(&c->by_name, &c->by_id, id); /* registered again next time */
	return rc;
}

/* ---- Subscribing -------------------------------------------------------------------------- */

static int subscribe(struct viesti_sn *c, bool sub, struct vs_sn_packet *p, int qos,
		     struct viesti_sn_granted *granted, int timeout_ms)
{
	if (!connected(c))
		return VIESTI_ESTATE;
	p->type = sub ? VS_SN_SUBSCRIBE : VS_SN_UNSUBSCRIBE;
	p->msg_id = next_msg_id(c);
	if (sub)
		p->flags |= vs_sn_qos_flags(qos);
	int rc = request(c, p, sub ? VS_SN_SUBACK : VS_SN_UNSUBACK, true, timeout_ms);
	if (rc < 0 || !sub)
		return rc;
	if (c->req.ans.rc == VS_SN_RC_ACCEPTED && granted) {
		granted->qos = vs_sn_qos(c->req.ans.flags);
		granted->topic_id = c->req.ans.topic_id;
	}
	return c->req.ans.rc;
}

/* A SUBACK's id for a name without wildcards: the gateway publishes with it unannounced. */
static void learn_suback_id(struct viesti_sn *c, const char *filter, size_t len, uint16_t id)
{
	if (id == 0 || id == 0xFFFF || strpbrk(filter, "+#") ||
	    table_id(&c->pre_by_name, filter, len))
		return;
	(void)table_set(&c->by_name, &c->by_id, id, filter, len);
}

int viesti_sn_subscribe(struct viesti_sn *c, const char *filter, int qos,
			struct viesti_sn_granted *granted, int timeout_ms)
{
	size_t len = filter ? strlen(filter) : 0;
	if (qos < 0 || qos > 2 || !vs_topic_filter_valid((const uint8_t *)filter, len))
		return VIESTI_EINVAL;
	struct vs_sn_packet p = {.flags = VS_SN_TID_NORMAL, .data = {(const uint8_t *)filter, len}};
	struct viesti_sn_granted g = {0};
	int rc = subscribe(c, true, &p, qos, &g, timeout_ms);
	if (rc == VS_SN_RC_ACCEPTED)
		learn_suback_id(c, filter, len, g.topic_id);
	if (rc == VS_SN_RC_ACCEPTED && granted)
		*granted = g;
	return rc;
}

static bool id_kind_ok(int type, uint16_t id)
{
	return (type == VIESTI_SN_TOPIC_PREDEFINED && id != 0 && id != 0xFFFF) ||
	       (type == VIESTI_SN_TOPIC_SHORT && (id >> 8) && (id & 0xFF));
}

int viesti_sn_subscribe_id(struct viesti_sn *c, int type, uint16_t topic_id, int qos,
			   struct viesti_sn_granted *granted, int timeout_ms)
{
	if (qos < 0 || qos > 2 || !id_kind_ok(type, topic_id))
		return VIESTI_EINVAL;
	struct vs_sn_packet p = {.flags = (uint8_t)type, .topic_id = topic_id};
	return subscribe(c, true, &p, qos, granted, timeout_ms);
}

int viesti_sn_unsubscribe(struct viesti_sn *c, const char *filter, int timeout_ms)
{
	size_t len = filter ? strlen(filter) : 0;
	if (!vs_topic_filter_valid((const uint8_t *)filter, len))
		return VIESTI_EINVAL;
	struct vs_sn_packet p = {.flags = VS_SN_TID_NORMAL, .data = {(const uint8_t *)filter, len}};
	return subscribe(c, false, &p, 0, NULL, timeout_ms);
}

int viesti_sn_unsubscribe_id(struct viesti_sn *c, int type, uint16_t topic_id, int timeout_ms)
{
	if (!id_kind_ok(type, topic_id))
		return VIESTI_EINVAL;
	struct vs_sn_packet p = {.flags = (uint8_t)type, .topic_id = topic_id};
	return subscribe(c, false, &p, 0, NULL, timeout_ms);
}

/* ---- Receiving, pinging, sleeping --------------------------------------------------------- */

static bool have_message(const struct viesti_sn *c)
{
	return c->head != NULL;
}

int viesti_sn_receive(struct viesti_sn *c, struct viesti_sn_message *msg, int timeout_ms)
{
	if (c->taken) {
		free(c->taken->topic);
		free(c->taken);
		c->taken = NULL;
	}
	if (!c->head) {
		int rc = take_pending(c);
		if (rc < 0 || c->state == VIESTI_SN_DISCONNECTED)
			return rc < 0 ? rc : VIESTI_ESTATE;
		rc = serve(c, have_message, deadline_of(timeout_ms));
		if (rc < 0 && !c->head)
			return rc;
	}
	struct rx *r = c->taken = c->head;
	c->head = r->next;
	if (!c->head)
		c->tail = NULL;
	c->n_rx--;
	*msg = (struct viesti_sn_message){
	    .topic = r->topic,
	    .topic_len = r->topic_len,
	    .topic_type = r->topic_type,
	    .topic_id = r->topic_id,
	    .payload = r->payload,
	    .payload_len = r->len,
	    .qos = r->qos,
	    .retain = r->retain,
	    .dup = r->dup,
	    .msg_id = r->msg_id,
	};
	return 0;
}

int viesti_sn_ping(struct viesti_sn *c, int timeout_ms)
{
	if (!connected(c))
		return VIESTI_ESTATE;
	struct vs_sn_packet p = {.type = VS_SN_PINGREQ};
	return request(c, &p, VS_SN_PINGRESP, false, timeout_ms);
}

int viesti_sn_sleep(struct viesti_sn *c, unsigned duration_s, int timeout_ms)
{
	if (duration_s < 1 || duration_s > 65535)
		return VIESTI_EINVAL;
	if (c->state == VIESTI_SN_DISCONNECTED)
		return VIESTI_ESTATE;
	struct vs_sn_packet p = {
	    .type = VS_SN_DISCONNECT, .has_duration = true, .duration = (uint16_t)duration_s};
	int rc = request(c, &p, VS_SN_DISCONNECT, false, timeout_ms);
	if (rc == 0) {
		c->state = VIESTI_SN_ASLEEP;
		c->ka_out = false;
	}
	return rc;
}

static bool wake_over(const struct viesti_sn *c)
{
	return c->req.done || c->wake_full;
}

int viesti_sn_wake(struct viesti_sn *c, int timeout_ms)
{
	if (c->state != VIESTI_SN_ASLEEP && c->state != VIESTI_SN_AWAKE)
		return VIESTI_ESTATE;
	struct vs_sn_packet p = {.type = VS_SN_PINGREQ};
	p.data = (struct vs_buf){(const uint8_t *)c->client_id, strlen(c->client_id)};
	c->wake_got = 0;
	c->wake_full = false;
	c->state = VIESTI_SN_AWAKE;
	int64_t deadline = deadline_of(timeout_ms);
	int rc = start(c, &p, VS_SN_PINGRESP, false);
	c->req.wake = true;
	if (rc == 0)
		rc = serve(c, wake_over, deadline);
	bool done = c->req.done;
	c->req.wait = 0;
	if (rc < 0)
		return rc;
	return done ? (int)c->wake_got : -ENOBUFS;
}

/* ---- Will updates ------------------------------------------------------------------------- */

int viesti_sn_will_topic_update(struct viesti_sn *c, const char *topic, int qos, bool retain,
				int timeout_ms)
{
	size_t len = topic ? strlen(topic) : 0;
	if (topic && (qos < 0 || qos > 2 || !vs_topic_name_valid((const uint8_t *)topic, len)))
		return VIESTI_EINVAL;
	if (!connected(c))
		return VIESTI_ESTATE;
	struct vs_sn_packet p = {.type = VS_SN_WILLTOPICUPD, .empty_will = !topic};
	if (topic) {
		p.flags = vs_sn_qos_flags(qos) | (retain ? VS_SN_RETAIN : 0);
		p.data = (struct vs_buf){(const uint8_t *)topic, len};
	}
	int rc = request(c, &p, VS_SN_WILLTOPICRESP, false, timeout_ms);
	return rc < 0 ? rc : c->req.ans.rc;
}

int viesti_sn_will_msg_update(struct viesti_sn *c, const void *payload, size_t len, int timeout_ms)
{
	if (len && !payload)
		return VIESTI_EINVAL;
	if (!connected(c))
		return VIESTI_ESTATE;
	struct vs_sn_packet p = {.type = VS_SN_WILLMSGUPD, .data = {payload, len}};
	int rc = request(c, &p, VS_SN_WILLMSGRESP, false, timeout_ms);
	return rc < 0 ? rc : c->req.ans.rc;
}
