/*
 * The MQTT-SN gateway inside the broker: see gateway.h.
 *
 * Admission. MQTT-SN 1.2 carries no credentials, so a client is who its client id says. A
 * listener admits a CONNECT when its source is in mqttsn_allowed_sources (the client is then
 * admitted as if authenticated, and the ACL decides per topic with `pattern ... %c` rules), or,
 * without mqttsn_allowed_sources, when the listener allows anonymous clients. A source outside
 * the list gets CONNACK "rejected: not supported" and costs no connection.
 *
 * Malformed datagrams are counted ($SYS/broker/viesti/mqttsn/malformed), logged at most once per
 * 10 s, and dropped: they belong to no session, so no session is affected.
 */
#include "broker/gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/acl.h"
#include "base/error.h"
#include "broker/conn.h"
#include "broker/tls.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "net/dtls.h"
#include "net/listen.h"
#include "session/msg.h"
#include "session/session.h"
#include "sn/sn.h"

struct cidr {
	uint8_t family;
	uint8_t bits;
	uint8_t addr[16];
};

struct vs_sn_listener {
	struct vs_sn_conf conf;
	struct vs_sn_topics topics;
	struct cidr *sources;
	size_t n_sources;
	int64_t next_advertise_ms; /* worker 0's */
};

/* A DTLS handshake (or a session before its CONNECT). */
struct pending_dtls {
	struct vs_dtls *d;
	int64_t since_ms;
};

/* One worker's socket of an mqttsn listener. */
struct vs_sn_socket {
	struct vs_sn_table table;
	struct vs_map pending; /* DTLS listeners: key -> struct pending_dtls * */
	int64_t next_log_ms;   /* malformed datagrams are logged at most every 10 s */
	uint64_t unlogged;
	/* recvmmsg(2) takes up to RECV_BATCH datagrams per call. The buffers are 64 KiB each (a
	 * datagram may be that large) but cost the memory of what lands in them: calloc maps
	 * them untouched. */
	struct mmsghdr msgs[16];
	struct iovec iov[16];
	struct sockaddr_storage from[16];
	uint8_t bufs[16][65536];
};

enum {
	RECV_BATCH = 16,
	BATCH = 64, /* datagrams per wake-up at most: the loop's other sockets get their turn */
	LOG_EVERY_MS = 10000,
	MAX_PENDING = 4096, /* DTLS handshakes in progress per socket (cookies make each cost a
			     * reachable source address) */
};

/* ---- Settings ---------------------------------------------------------------------------- */

static int parse_cidr(const char *s, struct cidr *c)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "%s", s);
	char *slash = strchr(addr, '/');
	if (slash)
		*slash++ = '\0';
	c->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	int max = c->family == AF_INET ? 32 : 128;
	c->bits = (uint8_t)(slash ? atoi(slash) : max);
	return inet_pton(c->family, addr, c->addr) == 1 && c->bits <= max ? 0 : -1;
}

int vs_gateway_listener_init(struct vs_listener *l, char *err, size_t errlen)
{
	const struct vs_listener_conf *lc = l->conf;
	struct vs_sn_listener *sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	l->sn = sn;
	sn->conf.gw_id = (uint8_t)lc->mqttsn_gateway_id;
	sn->conf.retry_ms = lc->mqttsn_retry_ms;
	sn->conf.retry_count = lc->mqttsn_retry_count;
	sn->conf.predefined = &sn->topics;
	if (lc->mqttsn_predefined_topics) {
		char why[256];
		if (vs_sn_topics_load(&sn->topics, lc->mqttsn_predefined_topics, why, sizeof(why)) <
		    0) {
			snprintf(err, errlen, "listener %s: mqttsn_predefined_topics: %s", l->name,
				 why);
			return VS_ECONF;
		}
	}
	sn->n_sources = lc->mqttsn_allowed_sources.n;
	sn->sources = calloc(sn->n_sources ? sn->n_sources : 1, sizeof(*sn->sources));
	if (!sn->sources)
		return -ENOMEM;
	for (size_t i = 0; i < sn->n_sources; i++) {
		if (parse_cidr(lc->mqttsn_allowed_sources.v[i], &sn->sources[i]) < 0) {
			snprintf(err, errlen,
				 "listener %s: mqttsn_allowed_sources '%s' is not an "
				 "address or ADDRESS/PREFIX",
				 l->name, lc->mqttsn_allowed_sources.v[i]);
			return VS_ECONF;
		}
	}
	return 0;
}

void vs_gateway_listener_fini(struct vs_listener *l)
{
	if (!l->sn)
		return;
	vs_sn_topics_fini(&l->sn->topics);
	free(l->sn->sources);
	free(l->sn);
	l->sn = NULL;
}

/* Whether addr is in a block; an IPv4-mapped IPv6 address is compared as IPv4. */
static bool in_block(const struct cidr *c, const union vs_sn_addr *ss)
{
	const uint8_t *a;
	int family = ss->sa.sa_family;
	if (family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
	} else {
		a = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(a, mapped, 12) == 0) {
			a += 12;
			family = AF_INET;
		}
	}
	if (family != c->family)
		return false;
	int full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(a, c->addr, (size_t)full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return (a[full] & mask) == (c->addr[full] & mask);
}

/* 1: the source is listed (admitted as authenticated); 0: anonymous rules decide; -1: the
 * listener has a list and the source is not in it. */
static int source_allowed(const struct vs_sn_listener *sn, const union vs_sn_addr *ss)
{
	if (!sn->n_sources)
		return 0;
	for (size_t i = 0; i < sn->n_sources; i++)
		if (in_block(&sn->sources[i], ss))
			return 1;
	return -1;
}

/* ---- Sockets ----------------------------------------------------------------------------- */

static void on_datagram(struct vs_io *io, uint32_t events);

int vs_gateway_socket_open(struct vs_listen_io *li)
{
	li->sn = calloc(1, sizeof(*li->sn));
	if (!li->sn)
		return -ENOMEM;
	li->io.fn = on_datagram;
	if (li->listener->conf->mqttsn_advertise_interval) {
		int one = 1;
		setsockopt(li->io.fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
	}
	return 0;
}

void vs_gateway_socket_close(struct vs_listen_io *li)
{
	if (!li->sn)
		return;
	/* Its connections are closed by now (the worker closes them all at the end). */
	vs_map_fini(&li->sn->table.clients);
	size_t i = 0;
	const char *k;
	size_t kl;
	void *v;
	while (vs_map_next(&li->sn->pending, &i, &k, &kl, &v)) {
		struct pending_dtls *pd = v;
		vs_dtls_free(pd->d);
		free(pd);
	}
	vs_map_fini(&li->sn->pending);
	free(li->sn);
	li->sn = NULL;
}

/* ---- Datagrams --------------------------------------------------------------------------- */

static void malformed(struct vs_worker *w, struct vs_listen_io *li, const struct vs_sn_peer *pe,
		      const char *why)
{
	vs_stat_add(&w->stats.sn_malformed, 1);
	struct vs_sn_socket *s = li->sn;
	if (w->now_ms < s->next_log_ms) {
		s->unlogged++;
		return;
	}
	char addr[48];
	vs_addr_str((const struct sockaddr *)&pe->addr, addr, sizeof(addr));
	vs_log(w->b->log, VS_LOG_NOTICE, "MQTT-SN datagram from %s dropped: %s%s", addr, why,
	       s->unlogged ? " (and earlier ones not logged)" : "");
	s->unlogged = 0;
	s->next_log_ms = w->now_ms + LOG_EVERY_MS;
}

static void publish_as(struct vs_worker *w, struct vs_listener *l, const char *username,
		       const struct vs_sn_packet *p);

/* QoS -1 (section 6.8): a PUBLISH without a connection, to a predefined id or a short name.
 * Admitted as a CONNECT would be; checked against the ACL with an empty client id. */
static void publish_unconnected(struct vs_worker *w, struct vs_listen_io *li,
				const struct vs_sn_peer *pe, const struct vs_sn_packet *p)
{
	struct vs_listener *l = li->listener;
	const struct vs_listener_sec *sec = vs_listener_sec(l);
	int src = source_allowed(l->sn, &pe->addr);
	char *identity = NULL; /* over DTLS, as for a CONNECT */
	if (pe->dtls) {
		const char *why = "";
		identity = vs_tls_peer_username(vs_dtls_ssl(pe->dtls),
						l->conf->use_subject_as_username, &why);
	}
	if (!identity && (src < 0 || (src == 0 && !sec->allow_anonymous))) {
		vs_stat_add(&w->stats.sn_refused, 1);
		return;
	}
	publish_as(w, l, identity, p);
	free(identity);
}

static void publish_as(struct vs_worker *w, struct vs_listener *l, const char *username,
		       const struct vs_sn_packet *p)
{
	const struct vs_listener_sec *sec = vs_listener_sec(l);
	uint8_t tt = p->flags & VS_SN_TID_MASK;
	char shortname[3];
	const char *topic = NULL;
	size_t len = 0;
	if (tt == VS_SN_TID_SHORT) {
		shortname[0] = (char)(p->topic_id >> 8);
		shortname[1] = (char)p->topic_id;
		shortname[2] = '\0';
		topic = shortname;
		len = 2;
	} else if (tt == VS_SN_TID_PREDEFINED) {
		topic = vs_sn_topics_name(&l->sn->topics, p->topic_id);
		len = topic ? strlen(topic) : 0;
	}
	if (!len || !vs_topic_name_valid((const uint8_t *)topic, len) ||
	    (len >= 4 && memcmp(topic, "$SYS", 4) == 0))
		return; /* nobody to tell: QoS -1 has no answer */
	if (sec->acl && !vs_acl_check(sec->acl, "", username, topic, len, VS_ACL_WRITE))
		return;
	bool retain = (p->flags & VS_SN_RETAIN) && w->b->conf->retain_available;
	struct vs_msg *m =
	    vs_msg_make(topic, len, p->data.p, p->data.len, 0, retain, NULL, NULL, w->now_ms);
	if (!m)
		return;
	vs_stat_add(&w->stats.pub_received, 1);
	vs_stat_add(&w->stats.pub_bytes_received, p->data.len);
	vs_route(w, m, NULL);
	vs_msg_unref(m);
}

struct open_arg {
	struct vs_listen_io *li;
	const struct vs_sn_peer *peer;
};

static int open_client(struct vs_transport *tp, struct vs_conn *c, void *arg)
{
	struct open_arg *a = arg;
	return vs_sn_client_open(tp, &a->li->listener->sn->conf, &a->li->sn->table, a->peer, c);
}

static void feed(struct vs_conn *c, const struct vs_sn_packet *p);

/* A CONNECT from a peer without a connection: admission, then a new virtual connection. */
static void connect_new(struct vs_worker *w, struct vs_listen_io *li, struct vs_sn_peer *pe,
			const struct vs_sn_packet *p)
{
	struct vs_listener *l = li->listener;
	int src = source_allowed(l->sn, &pe->addr);
	int max = l->conf->max_connections;
	bool full = max >= 0 && atomic_load(&l->connections) >= max;
	char *identity = NULL;
	if (pe->dtls) {
		/* The handshake says who this is: a verified certificate's CN (or subject, with
		 * use_subject_as_username) or the PSK identity. The client takes the session. */
		const char *why = "";
		identity = vs_tls_peer_username(vs_dtls_ssl(pe->dtls),
						l->conf->use_subject_as_username, &why);
		uint8_t key[VS_SN_KEY_MAX];
		size_t kl = vs_sn_key(pe, key);
		free(vs_map_del(&li->sn->pending, key, kl));
		if (identity)
			src = src < 0 ? 1 : src; /* an identity admits wherever it comes from */
	}
	if (src < 0 || full) {
		if (src < 0)
			vs_stat_add(&w->stats.sn_refused, 1);
		struct vs_sn_packet r = {.type = VS_SN_CONNACK,
					 .rc = full ? VS_SN_RC_CONGESTION : VS_SN_RC_NOT_SUPPORTED};
		vs_sn_send_to(pe, &r);
		vs_dtls_free(pe->dtls);
		pe->dtls = NULL;
		free(identity);
		return;
	}
	char addr[48];
	vs_addr_str((const struct sockaddr *)&pe->addr, addr, sizeof(addr));
	if (pe->node_len) {
		/* Behind a forwarder: the node id tells its sensors apart. */
		size_t n = strlen(addr);
		snprintf(addr + n, sizeof(addr) - n, "/%02x%02x", pe->node[0],
			 pe->node_len > 1 ? pe->node[1] : 0);
	}
	struct open_arg a = {li, pe};
	struct vs_conn *c = vs_conn_virtual(w, l, addr, open_client, &a);
	if (!c) {
		pe->dtls = NULL; /* freed by the failed open */
		struct vs_sn_packet r = {.type = VS_SN_CONNACK, .rc = VS_SN_RC_CONGESTION};
		vs_sn_send_to(pe, &r);
		free(identity);
		return;
	}
	c->preauth = src > 0;
	if (identity) {
		c->username = identity;
		c->tls_user = true;
	}
	feed(c, p);
}

/* Whether anything for c waits on the broker's side (its output, its session's queue). */
static bool more_pending(struct vs_conn *c)
{
	if (vs_bytes_avail(&c->out))
		return true;
	struct vs_session *s = c->session;
	if (!s)
		return false;
	pthread_mutex_lock(&s->lock);
	bool more = s->queue.count > 0 || s->feed != NULL;
	pthread_mutex_unlock(&s->lock);
	return more;
}

static void apply_will(struct vs_conn *c)
{
	const struct vs_sn_will *u = vs_sn_will(&c->tp);
	struct vs_msg *will = NULL;
	if (u->topic_update && !u->remove) {
		/* A new topic keeps the message (section 6.4). */
		const struct vs_msg *old = c->will;
		will = vs_msg_make((const char *)u->topic.p, u->topic.len,
				   old ? old->payload.p : NULL, old ? old->payload.len : 0, u->qos,
				   u->retain, NULL, NULL, c->w->now_ms);
	} else if (!u->topic_update) {
		const struct vs_msg *old = c->will;
		if (!old) {
			vs_sn_will_done(&c->tp, VS_SN_RC_NOT_SUPPORTED); /* no will topic to use */
			return;
		}
		will = vs_msg_make((const char *)old->topic.p, old->topic.len, u->payload.p,
				   u->payload.len, old->qos, old->retain, NULL, NULL, c->w->now_ms);
	}
	if (!u->remove && !will) {
		vs_sn_will_done(&c->tp, VS_SN_RC_CONGESTION);
		return;
	}
	const char *why = "";
	int rc = vs_connect_update_will(c, will, &why);
	if (rc != VS_RC_SUCCESS)
		vs_logc(c->w->b->log, VS_LOG_NOTICE, c->client_id,
			"client %s (%s): will update refused: %s", c->client_id, c->addr, why);
	vs_sn_will_done(&c->tp, rc == VS_RC_SUCCESS ? VS_SN_RC_ACCEPTED : VS_SN_RC_NOT_SUPPORTED);
}

static void settle(struct vs_conn *c)
{
	if (c->state == VS_CONN_ACTIVE && vs_sn_awake(&c->tp))
		vs_sn_settle(&c->tp, more_pending(c));
}

/* What the transport's events ask of the broker. */
static void apply(struct vs_conn *c, int ev, const struct vs_sn_packet *p)
{
	struct vs_worker *w = c->w;
	if (ev & VS_SN_EV_RESTART) {
		/* The client started over (rebooted, or lost our CONNACK): this connection ends
		 * without its will, and a new one takes the CONNECT. */
		c->graceful = true;
		vs_conn_close(c, -1, "reconnected (a new MQTT-SN CONNECT)");
		return; /* the caller starts the new connection */
	}
	if (ev & VS_SN_EV_CLOSE) {
		vs_conn_close(c, -1, vs_transport_why(&c->tp));
		return;
	}
	if (ev & VS_SN_EV_WILL)
		apply_will(c);
	if (ev & (VS_SN_EV_SLEEP | VS_SN_EV_ACTIVE)) {
		bool sleeps = ev & VS_SN_EV_SLEEP;
		/* Asleep: lost after 1.5 times the sleep; its session counts as stalled, so what
		 * waits for it is bounded by the queue limits and slows no publisher (router.c). */
		c->keepalive = sleeps ? vs_sn_sleep_s(&c->tp) : vs_sn_keepalive(&c->tp);
		if (c->session)
			__atomic_store_n(&c->session->stalled, sleeps, __ATOMIC_RELAXED);
	}
	if (ev & VS_SN_EV_READ) {
		vs_conn_readable(c);
		if (c->state == VS_CONN_CLOSING)
			return;
	}
	if (ev & (VS_SN_EV_ROOM | VS_SN_EV_WAKE)) {
		if (c->session)
			vs_worker_want_drain(w, c->session);
		vs_worker_want_flush(w, c);
	}
	(void)p;
	settle(c);
}

static void feed(struct vs_conn *c, const struct vs_sn_packet *p)
{
	c->last_rx_ms = c->w->now_ms;
	int ev = vs_sn_input(&c->tp, p, c->w->now_ms);
	apply(c, ev, p);
}

/* One MQTT-SN message from a peer (unwrapped, decrypted). */
static void message(struct vs_worker *w, struct vs_listen_io *li, struct vs_sn_peer *pe,
		    const uint8_t *d, size_t len)
{
	struct vs_sn_packet p;
	const char *why = "";
	if (vs_sn_decode(d, len, &p, &why) < 0) {
		malformed(w, li, pe, why);
		return;
	}
	switch (p.type) {
	case VS_SN_SEARCHGW: {
		/* Section 6.1: a gateway answers with its id (and no address: it is the sender). */
		struct vs_sn_packet r = {.type = VS_SN_GWINFO,
					 .gw_id = li->listener->sn->conf.gw_id};
		vs_sn_send_to(pe, &r);
		return;
	}
	case VS_SN_ADVERTISE:
	case VS_SN_GWINFO:
		return; /* other gateways' */
	case VS_SN_PUBLISH:
		if (vs_sn_qos(p.flags) < 0) {
			publish_unconnected(w, li, pe, &p);
			return;
		}
		break;
	default:
		break;
	}
	uint8_t key[VS_SN_KEY_MAX];
	size_t kl = vs_sn_key(pe, key);
	struct vs_conn *c = vs_map_get(&li->sn->table.clients, key, kl);
	if (c && c->state != VS_CONN_CLOSING) {
		c->last_rx_ms = w->now_ms;
		int ev = vs_sn_input(&c->tp, &p, w->now_ms);
		if (ev & VS_SN_EV_RESTART) {
			/* The new connection keeps the DTLS session: the old one must not free it.
			 */
			pe->dtls = vs_sn_take_dtls(&c->tp);
		}
		apply(c, ev, &p);
		if (!(ev & VS_SN_EV_RESTART))
			return;
	}
	if (p.type == VS_SN_CONNECT) {
		connect_new(w, li, pe, &p);
		return;
	}
	/* A client the gateway does not know is told to connect again (section 6.14 and common
	 * practice); a DISCONNECT repeated after our answer was lost gets that answer again. */
	struct vs_sn_packet r = {.type = VS_SN_DISCONNECT};
	vs_sn_send_to(pe, &r);
}

/* The messages a DTLS datagram carried, copied out before any is handled (handling one may
 * close the connection and free the session that decrypted them). */
struct plain {
	size_t len;
	uint8_t buf[65536 + 64];
};

static void collect(void *arg, const uint8_t *msg, size_t len)
{
	struct plain *pl = arg;
	if (pl->len + 2 + len > sizeof(pl->buf))
		return;
	pl->buf[pl->len] = (uint8_t)(len >> 8);
	pl->buf[pl->len + 1] = (uint8_t)len;
	memcpy(pl->buf + pl->len + 2, msg, len);
	pl->len += 2 + len;
}

/* The DTLS session of a peer now: its connection's, or its handshake's, or NULL. */
static struct vs_dtls *session_of(struct vs_listen_io *li, const struct vs_sn_peer *pe)
{
	uint8_t key[VS_SN_KEY_MAX];
	size_t kl = vs_sn_key(pe, key);
	struct vs_conn *c = vs_map_get(&li->sn->table.clients, key, kl);
	if (c && c->state != VS_CONN_CLOSING)
		return vs_sn_dtls(&c->tp);
	struct pending_dtls *pd = vs_map_get(&li->sn->pending, key, kl);
	return pd ? pd->d : NULL;
}

static void dtls_datagram(struct vs_worker *w, struct vs_listen_io *li, struct vs_sn_peer *pe,
			  const uint8_t *d, size_t len)
{
	uint8_t key[VS_SN_KEY_MAX];
	size_t kl = vs_sn_key(pe, key);
	struct vs_conn *c = vs_map_get(&li->sn->table.clients, key, kl);
	struct pending_dtls *pd = NULL;
	struct vs_dtls *dt;
	if (c && c->state != VS_CONN_CLOSING) {
		dt = vs_sn_dtls(&c->tp);
	} else if ((pd = vs_map_get(&li->sn->pending, key, kl))) {
		dt = pd->d;
	} else {
		if (li->sn->pending.count >= MAX_PENDING) {
			vs_stat_add(&w->stats.sn_refused, 1);
			return;
		}
		SSL_CTX *ctx = vs_listener_tls_get(li->listener);
		dt = ctx ? vs_dtls_accept(ctx, li->io.fd, (const struct sockaddr *)&pe->addr,
					  pe->addr_len)
			 : NULL;
		SSL_CTX_free(ctx);
		pd = dt ? calloc(1, sizeof(*pd)) : NULL;
		if (!pd || vs_map_put(&li->sn->pending, key, kl, pd, NULL) < 0) {
			vs_dtls_free(dt);
			free(pd);
			return;
		}
		pd->d = dt;
		pd->since_ms = w->now_ms;
	}
	static __thread struct plain pl;
	pl.len = 0;
	int rc = vs_dtls_input(dt, d, len, collect, &pl);
	if (rc < 0) {
		char addr[48];
		vs_addr_str((const struct sockaddr *)&pe->addr, addr, sizeof(addr));
		if (pd) {
			vs_log(w->b->log, VS_LOG_NOTICE,
			       "MQTT-SN DTLS handshake with %s failed: %s", addr, vs_dtls_why(dt));
			vs_map_del(&li->sn->pending, key, kl);
			vs_dtls_free(dt);
			free(pd);
		} else {
			vs_conn_close(c, -1, vs_dtls_why(dt));
		}
		return;
	}
	for (size_t at = 0; at + 2 <= pl.len;) {
		size_t n = (size_t)pl.buf[at] << 8 | pl.buf[at + 1];
		pe->dtls = session_of(li, pe);
		if (!pe->dtls)
			return; /* its connection was refused and closed meanwhile */
		message(w, li, pe, pl.buf + at + 2, n);
		at += 2 + n;
	}
}

static void datagram(struct vs_worker *w, struct vs_listen_io *li, struct vs_sn_peer *pe,
		     const uint8_t *d, size_t len)
{
	if (li->listener->tls) {
		dtls_datagram(w, li, pe, d, len);
		return;
	}
	struct vs_sn_encap e;
	/* 0x01 starts a three-byte length, never an encapsulation (its length is >= 3). */
	if (len >= 2 && d[0] != 0x01 && d[1] == VS_SN_ENCAPSULATED) {
		if (vs_sn_unwrap(d, len, &e) < 0 || e.node.len > sizeof(pe->node)) {
			malformed(w, li, pe, "bad encapsulation");
			return;
		}
		pe->node_len = (uint8_t)e.node.len;
		memcpy(pe->node, e.node.p, e.node.len);
		pe->radius = e.ctrl;
		d = e.inner.p;
		len = e.inner.len;
	}
	message(w, li, pe, d, len);
}

static void on_datagram(struct vs_io *io, uint32_t events)
{
	(void)events;
	struct vs_listen_io *li = (struct vs_listen_io *)io;
	struct vs_worker *w = li->w;
	struct vs_sn_socket *s = li->sn;
	for (int got = 0; got < BATCH;) {
		for (int i = 0; i < RECV_BATCH; i++) {
			s->iov[i] = (struct iovec){s->bufs[i], sizeof(s->bufs[i])};
			s->msgs[i].msg_hdr = (struct msghdr){.msg_name = &s->from[i],
							     .msg_namelen = sizeof(s->from[i]),
							     .msg_iov = &s->iov[i],
							     .msg_iovlen = 1};
		}
		int n = recvmmsg(io->fd, s->msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			got++; /* an ICMP error of an earlier send (ECONNREFUSED): next */
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct vs_sn_peer pe = {.fd = io->fd};
			socklen_t al = s->msgs[i].msg_hdr.msg_namelen;
			pe.addr_len = al < sizeof(pe.addr) ? al : sizeof(pe.addr);
			memcpy(&pe.addr, &s->from[i], pe.addr_len);
			vs_stat_add(&w->stats.bytes_received, s->msgs[i].msg_len);
			datagram(w, li, &pe, s->bufs[i], s->msgs[i].msg_len);
		}
		got += n;
		if (n < RECV_BATCH)
			return; /* the socket is empty */
	}
}

/* ---- Timers ------------------------------------------------------------------------------ */

void vs_gateway_sweep(struct vs_conn *c)
{
	if (c->state == VS_CONN_CLOSING)
		return;
	int ev = vs_sn_tick(&c->tp, c->w->now_ms);
	if (ev & VS_SN_EV_CLOSE) {
		vs_conn_close(c, -1, vs_transport_why(&c->tp));
		return;
	}
	if (vs_sn_has_input(&c->tp) && !c->in_reread) {
		/* Left by a write (an acknowledgement for what cannot be delivered). */
		vs_conn_readable(c);
		if (c->state == VS_CONN_CLOSING)
			return;
	}
	settle(c);
	if (c->state == VS_CONN_ACTIVE && !vs_sn_sleeping(&c->tp))
		vs_conn_check_stall(c); /* a sleeping client's silence is no stall */
}

void vs_gateway_tick(struct vs_worker *w)
{
	int64_t limit = (int64_t)w->b->conf->connect_timeout * 1000;
	for (int k = 0; k < w->n_listens; k++) {
		struct vs_sn_socket *s = w->listens[k].sn;
		if (!s || !s->pending.count)
			continue;
		/* Handshakes that time out, fail, or never send a CONNECT go (a few per sweep: the
		 * map cannot change while it is walked). */
		enum { DROP_MAX = 64 };
		char *drop[DROP_MAX];
		size_t drop_len[DROP_MAX], n_drop = 0, i = 0, kl;
		const char *key;
		void *v;
		while (n_drop < DROP_MAX && vs_map_next(&s->pending, &i, &key, &kl, &v)) {
			struct pending_dtls *pd = v;
			if (w->now_ms - pd->since_ms > limit || vs_dtls_tick(pd->d) < 0) {
				drop[n_drop] = (char *)key;
				drop_len[n_drop++] = kl;
			}
		}
		for (size_t j = 0; j < n_drop; j++) {
			char copy[VS_SN_KEY_MAX];
			memcpy(copy, drop[j], drop_len[j]);
			struct pending_dtls *pd = vs_map_del(&s->pending, copy, drop_len[j]);
			if (pd) {
				vs_dtls_free(pd->d);
				free(pd);
			}
		}
	}
}

void vs_gateway_advertise(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	for (size_t i = 0, n = vs_broker_listeners(b); i < n; i++) {
		struct vs_listener *l = &b->listeners[i];
		int every = l->sn ? l->conf->mqttsn_advertise_interval : 0;
		if (!every || w->now_ms < l->sn->next_advertise_ms)
			continue;
		l->sn->next_advertise_ms = w->now_ms + (int64_t)every * 1000;
		/* Section 6.1: broadcast, with the time to the next one. */
		struct vs_sn_packet a = {.type = VS_SN_ADVERTISE,
					 .gw_id = l->sn->conf.gw_id,
					 .duration = (uint16_t)every};
		for (int k = 0; k < w->n_listens; k++) {
			struct vs_listen_io *li = &w->listens[k];
			if (li->listener != l)
				continue;
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			if (getsockname(li->io.fd, (struct sockaddr *)&ss, &sl) < 0)
				continue;
			struct vs_sn_peer pe = {.fd = li->io.fd, .addr_len = sl};
			if (ss.ss_family == AF_INET) {
				struct sockaddr_in *to = (struct sockaddr_in *)&pe.addr;
				to->sin_family = AF_INET;
				to->sin_port = ((struct sockaddr_in *)&ss)->sin_port;
				to->sin_addr.s_addr = htonl(INADDR_BROADCAST);
			} else {
				struct sockaddr_in6 *to = (struct sockaddr_in6 *)&pe.addr;
				to->sin6_family = AF_INET6;
				to->sin6_port = ((struct sockaddr_in6 *)&ss)->sin6_port;
				inet_pton(AF_INET6, "ff02::1", &to->sin6_addr);
			}
			vs_sn_send_to(&pe, &a);
		}
	}
}
