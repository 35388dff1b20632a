/*
 * Bridges (see bridge.h): the local session, the remote libviesti client, and the two
 * directions between them, all on worker 0.
 *
 * Life of a connection: vs_bridges_tick() starts an attempt when one is due (automatic: at
 * start-up, then restart_timeout after each loss, constant or backoff; lazy: when `threshold`
 * messages wait; once: at start-up only). An attempt is a fresh libviesti client (its own
 * reconnect is off: the bridge chooses the next address and the delay) whose descriptor joins
 * worker 0's epoll set. When it ends (refused, lost, never reached), the client is freed
 * outside its callbacks, and whatever it had in flight goes back to the front of the
 * session's queue, in order, to be sent again on the next connection: the session, not the
 * client, is the record of what the remote has not acknowledged.
 *
 * Topic mapping is Mosquitto's: for `topic PATTERN DIR QOS LOCAL REMOTE` the local filter is
 * LOCAL+PATTERN and the remote one REMOTE+PATTERN; a message's topic keeps its part after the
 * prefix and changes the prefix (an empty PATTERN: the prefixes are the whole topics).
 */
#include "broker/bridge.h"
#include "codec/codec.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/prom.h"
#include "broker/broker.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "client/props.h"
#include "session/msg.h"
#include "session/session.h"
#include "topic/retain.h"
#include "topic/tree.h"
#include "viesti.h"

/* A `topic` line with its filters worked out. */
struct topic_rt {
	const struct vs_bridge_topic *t;
	char *local;  /* local filter: local_prefix + pattern */
	char *remote; /* remote filter: remote_prefix + pattern */
};

/* Retained messages with longer topics are not sent on connect (they still are when live). */
#define VS_BRIDGE_TOPIC_MAX 1024

enum bstate { B_IDLE, B_CONNECTING, B_UP, B_STOPPED };

struct vs_bridge {
	struct vs_broker *b;
	struct vs_worker *w; /* worker 0: owns everything below */
	const struct vs_bridge_conf *conf;
	char *remote_id, *local_id, *state_topic;
	struct topic_rt *topics;
	size_t n_topics;
	struct vs_session *s; /* the local side (one reference) */
	struct viesti *v;     /* the current attempt's client, or NULL */
	struct vs_io io;      /* viesti_fd(v) in worker 0's loop while v exists */
	int state;	      /* enum bstate */
	bool lost;	      /* v's attempt is over: free it after viesti_process() returns */
	bool kick;	      /* drain after viesti_process() returns */
	size_t addr;	      /* index of the address of the current or next attempt */
	int failures;	      /* attempts since the last success (backoff) */
	int64_t next_ms;      /* automatic: next attempt at; 0 = none due */
	int64_t active_ms;    /* last message either way (lazy idle_timeout) */
	int published_state;  /* the last notification payload sent locally: -1, 0, 1 */
	/* Read by GET /metrics on other threads: atomics (relaxed), written by worker 0 only. */
	atomic_uint_fast64_t sent, received, connects;
	int64_t next_sys_ms;
	uint32_t window; /* QoS 1/2 messages handed to the client and not yet acknowledged */
	bool reuse;	 /* one client for the bridge's life, reconnecting by itself (below) */
};

/* The global ACL as of the last (re)load: any listener's, without per_listener_settings. */
static const struct vs_acl *bridge_acl(const struct vs_bridge *br)
{
	const struct vs_broker *b = br->b;
	if (b->conf->per_listener_settings || !b->n_listeners)
		return NULL;
	return vs_listener_sec(&b->listeners[0])->acl;
}

static void set_state(struct vs_bridge *br, int state)
{
	__atomic_store_n(&br->state, state, __ATOMIC_RELAXED);
}

/* ---- topics ---- */

static char *concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

/* The topic on the other side for topic (NUL-terminated), or NULL (caller frees). out:
 * local -> remote. */
static char *map_topic(const struct vs_bridge *br, const char *topic, bool out)
{
	for (size_t i = 0; i < br->n_topics; i++) {
		const struct topic_rt *r = &br->topics[i];
		if (!(r->t->dir & (out ? VS_BRIDGE_OUT : VS_BRIDGE_IN)))
			continue;
		if (vs_topic_match(out ? r->local : r->remote, topic))
			return vs_bridge_topic_map(r->t, topic, out);
	}
	return NULL;
}

/* ---- local publications ---- */

static void publish_local(struct vs_bridge *br, const char *topic, const char *payload, int qos,
			  bool retain)
{
	struct vs_buf origin = {(const uint8_t *)br->local_id, strlen(br->local_id)};
	struct vs_msg *m = vs_msg_make(topic, strlen(topic), payload, strlen(payload), (uint8_t)qos,
				       retain, NULL, &origin, br->w->now_ms);
	if (!m)
		return;
	vs_route(br->w, m, br->s); /* origin: the bridge's No Local subscriptions skip it */
	vs_msg_unref(m);
}

/* $SYS/broker/connection/REMOTE_ID/state (or notification_topic): "1" up, "0" down, retained,
 * as Mosquitto publishes it. */
static void notify_local(struct vs_bridge *br, int up)
{
	if (!br->conf->notifications || br->published_state == up)
		return;
	br->published_state = up;
	publish_local(br, br->state_topic, up ? "1" : "0", 1, true);
	br->next_sys_ms = 0; /* the $SYS state follows at the next tick */
}

/* ---- the session ---- */

/* Moves the entries in flight back to the front of the queue, in order (s locked). */
static void requeue_inflight(struct vs_bridge *br)
{
	struct vs_session *s = br->s;
	if (!s->inflight.count)
		return;
	struct vs_ring r = {0};
	int64_t moved = 0;
	while (s->inflight.count || s->queue.count) {
		bool from_inflight = s->inflight.count > 0;
		struct vs_qentry e;
		vs_ring_pop(from_inflight ? &s->inflight : &s->queue, &e);
		if (from_inflight) {
			e.state = VS_Q_QUEUED;
			e.packet_id = 0;
			e.dup = true;
			s->queued_bytes += e.msg->payload.len;
			moved++;
		}
		if (vs_ring_push(&r, &e) < 0)
			vs_qentry_fini(&e);
	}
	free(s->queue.e);
	s->queue = r;
	vs_stat_gauge(&br->w->stats.inflight, -moved);
	vs_stat_gauge(&br->w->stats.queued, moved);
}

/* Removes the session's subscriptions from the trie and the store (s locked). */
static void drop_subs(struct vs_bridge *br)
{
	struct vs_session *s = br->s;
	while (s->subs && s->subs->n) {
		struct vs_session_sub *x = &s->subs->v[s->subs->n - 1];
		vs_router_sub_remove(br->b, x->filter, x->len, s);
		vs_bp_unsub(br->w, s, x->filter, x->len);
		vs_session_sub_del(s, x->filter, x->len);
	}
}

/* Subscribes the session to each `out` topic's local filter: No Local (what the bridge brings
 * in never goes back), Retain As Published (the remote gets the flag as published). */
static int add_subs(struct vs_bridge *br)
{
	struct vs_session *s = br->s;
	for (size_t i = 0; i < br->n_topics; i++) {
		const struct topic_rt *r = &br->topics[i];
		if (!(r->t->dir & VS_BRIDGE_OUT))
			continue;
		struct vs_sub sub = {.owner = s,
				     .qos = (uint8_t)r->t->qos,
				     .no_local = true,
				     .retain_as_published = true,
				     .retain_handling = 2};
		size_t len = strlen(r->local);
		if (vs_router_sub_add(br->b, r->local, len, &sub) < 0)
			return -ENOMEM;
		uint8_t opts = (uint8_t)(r->t->qos | 1 << 2 | 1 << 3 | 2 << 4);
		if (vs_session_sub_add(s, r->local, len, (uint8_t)r->t->qos, opts, 0) < 0)
			return -ENOMEM;
		vs_bp_sub(br->w, s, r->local, len, (uint8_t)r->t->qos, opts, 0);
	}
	return 0;
}

/* Finds (after a restart, with persistence) or creates the local session. */
static int open_session(struct vs_bridge *br)
{
	struct vs_broker *b = br->b;
	size_t len = strlen(br->local_id);
	bool clean = br->conf->local_cleansession >= 0 ? br->conf->local_cleansession
						       : br->conf->cleansession;
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, br->local_id, len);
	if (!s) {
		s = vs_session_new(br->local_id, len);
		if (!s || vs_registry_add(&b->sessions, s) < 0) {
			pthread_mutex_unlock(&b->reg_lock);
			vs_session_unref(s);
			return -ENOMEM;
		}
		vs_broker_sessions_changed(b);
	}
	br->s = vs_session_ref(s);
	pthread_mutex_lock(&s->lock);
	s->bridge = br;
	s->owner = br->w;
	s->connected = false;
	s->offline_since_ms = br->w->now_ms;
	s->version = 5;
	s->expiry = UINT32_MAX; /* it lasts as long as the bridge is configured */
	free(s->username);
	s->username = br->conf->local_username ? strdup(br->conf->local_username) : NULL;
	/* What the session may read is the ACL of the first listener, which is the global one
	 * without per_listener_settings; a mount point there would not apply to a bridge. */
	if (!b->conf->per_listener_settings && b->n_listeners && !b->listeners[0].conf->mount_point)
		s->listener = &b->listeners[0];
	if (clean) {
		vs_bp_session_del(br->w, s); /* local_cleansession: nothing from before */
		vs_ring_clear(&s->queue);
		vs_ring_clear(&s->inflight);
		s->queued_bytes = 0;
	} else {
		vs_bp_session(br->w, s);
		requeue_inflight(br);
	}
	drop_subs(br);
	int rc = add_subs(br);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&b->reg_lock);
	return rc;
}

/* ---- the remote side ---- */

static void on_io(struct vs_io *io, uint32_t events);

static void on_log(struct viesti *v, void *ud, int level, const char *line)
{
	(void)v;
	struct vs_bridge *br = ud;
	/* The client's own information lines repeat what the bridge logs itself: debug. */
	unsigned type = level <= VIESTI_LOG_ERR	   ? VS_LOG_ERR
			: level == VIESTI_LOG_WARN ? VS_LOG_WARN
						   : VS_LOG_DEBUG;
	vs_log(br->b->log, type, "bridge %s: %s", br->conf->name, line);
}

/* Sends the `in` subscriptions: No Local on 5.0 [MQTT-3.8.3-3] (on 3.x try_private asks the
 * remote for the same), Retain As Published so retained messages stay retained here. */
static void subscribe_remote(struct vs_bridge *br)
{
	bool v5 = br->conf->protocol_version == 5;
	for (size_t i = 0; i < br->n_topics; i++) {
		const struct topic_rt *r = &br->topics[i];
		if (!(r->t->dir & VS_BRIDGE_IN))
			continue;
		int opts =
		    r->t->qos | (v5 ? VIESTI_SUB_NO_LOCAL | VIESTI_SUB_RETAIN_AS_PUBLISHED : 0);
		if (viesti_subscribe(br->v, r->remote, opts, NULL) < 0)
			vs_log(br->b->log, VS_LOG_WARN, "bridge %s: cannot subscribe to '%s'",
			       br->conf->name, r->remote);
	}
}

/* bridge_attempt_unsubscribe: an `out`-only topic's remote filter may still be subscribed
 * from an earlier configuration in a persistent remote session, which would send our own
 * messages back: unsubscribe it (Mosquitto does the same on each connection). */
static void unsubscribe_remote(struct vs_bridge *br)
{
	if (!br->conf->attempt_unsubscribe || br->conf->cleansession)
		return;
	for (size_t i = 0; i < br->n_topics; i++) {
		const struct topic_rt *r = &br->topics[i];
		if (r->t->dir == VS_BRIDGE_OUT)
			viesti_unsubscribe(br->v, r->remote, NULL);
	}
}

/* Queues the local retained messages of the `out` topics for the remote (Mosquitto does so on
 * each connection). */
static void collect(void *ctx, void *msg)
{
	struct vs_bridge *br = ctx;
	struct vs_msg *m = msg;
	size_t idlen = strlen(br->local_id);
	if (m->origin.len == idlen && memcmp(m->origin.p, br->local_id, idlen) == 0)
		return; /* it came in over this bridge: it does not go back */
	char topic[VS_BRIDGE_TOPIC_MAX];
	if (m->topic.len >= sizeof(topic))
		return;
	memcpy(topic, m->topic.p, m->topic.len);
	topic[m->topic.len] = '\0';
	for (size_t i = 0; i < br->n_topics; i++) {
		const struct topic_rt *r = &br->topics[i];
		if ((r->t->dir & VS_BRIDGE_OUT) && vs_topic_match(r->local, topic)) {
			uint8_t qos = m->qos < r->t->qos ? m->qos : (uint8_t)r->t->qos;
			vs_deliver(br->w, br->s, m, qos, true, NULL, 0, NULL);
			return;
		}
	}
}

static void queue_retained(struct vs_bridge *br)
{
	for (size_t i = 0; i < br->n_topics; i++) {
		const struct topic_rt *r = &br->topics[i];
		if (r->t->dir & VS_BRIDGE_OUT)
			vs_retain_match(br->b->retain, r->local, strlen(r->local), collect, br);
	}
}

/* The name of a CONNACK code: 3.x return codes have their own (MQTT 3.1.1, 3.2.2.3). */
static const char *connack_name(const struct vs_bridge *br, int reason)
{
	static const char *const v3[] = {
	    "accepted",		  "unacceptable protocol version", "identifier rejected",
	    "server unavailable", "bad user name or password",	   "not authorized"};
	if (br->conf->protocol_version != 5)
		return reason >= 0 && reason <= 5 ? v3[reason] : "unknown return code";
	return viesti_reason_string(reason);
}

static void on_connect(struct viesti *v, void *ud, int reason, bool session_present,
		       const struct viesti_props *props)
{
	(void)session_present;
	(void)props;
	struct vs_bridge *br = ud;
	const char *addr = br->conf->addresses.v[br->addr];
	if (reason != 0) {
		vs_log(br->b->log, VS_LOG_ERR,
		       "bridge %s: %s refused the connection: %s (reason %d)", br->conf->name, addr,
		       connack_name(br, reason), reason);
		return; /* the client closes; the attempt ends (lost) */
	}
	vs_log(br->b->log, VS_LOG_NOTICE, "bridge %s: connected to %s as %s", br->conf->name, addr,
	       br->remote_id);
	set_state(br, B_UP);
	br->failures = 0;
	vs_stat_add(&br->connects, 1);
	br->active_ms = br->w->now_ms;
	unsubscribe_remote(br);
	subscribe_remote(br);
	if (br->conf->notifications && !br->conf->notifications_local_only)
		viesti_publish(v, br->state_topic, "1", 1, 1, true, NULL);
	notify_local(br, 1);
	pthread_mutex_lock(&br->s->lock);
	br->s->connected = true;
	br->s->last_drain_ms = br->w->now_ms;
	pthread_mutex_unlock(&br->s->lock);
	queue_retained(br);
	br->kick = true;
}

static void on_disconnect(struct viesti *v, void *ud, int err, int reason,
			  const struct viesti_props *props)
{
	(void)v;
	(void)props;
	struct vs_bridge *br = ud;
	vs_log(br->b->log, VS_LOG_NOTICE, "bridge %s: connection to %s lost: %s%s", br->conf->name,
	       br->conf->addresses.v[br->addr], err ? viesti_strerror(err) : "closed",
	       reason >= 0 ? " (DISCONNECT)" : "");
	if (!br->reuse || !err) {
		br->lost = true;
		return;
	}
	/* The client reconnects by itself and keeps what it has in flight. */
	set_state(br, B_CONNECTING);
	pthread_mutex_lock(&br->s->lock);
	br->s->connected = false;
	br->s->offline_since_ms = br->w->now_ms;
	pthread_mutex_unlock(&br->s->lock);
	notify_local(br, 0);
}

/* The remote acknowledged a message (PUBACK, PUBCOMP, or a 5.0 refusal): it leaves the
 * session and the store now, not before. */
static void on_publish(struct viesti *v, void *ud, int mid, int reason,
		       const struct viesti_props *props)
{
	(void)v;
	(void)props;
	struct vs_bridge *br = ud;
	struct vs_session *s = br->s;
	pthread_mutex_lock(&s->lock);
	int i = vs_session_find_inflight(s, (uint16_t)mid);
	if (i >= 0) {
		struct vs_qentry *e = vs_ring_at(&s->inflight, (uint32_t)i);
		if (reason >= 0x80)
			vs_log(br->b->log, VS_LOG_WARN,
			       "bridge %s: the remote refused a message to '%.*s': %s",
			       br->conf->name, (int)e->msg->topic.len, e->msg->topic.p,
			       viesti_reason_string(reason));
		vs_bp_dequeue(br->w, s, e);
		vs_qentry_fini(e);
		vs_ring_remove(&s->inflight, (uint32_t)i);
		vs_stat_gauge(&br->w->stats.inflight, -1);
	}
	pthread_mutex_unlock(&s->lock);
	br->kick = true;
}

static void on_message(struct viesti *v, void *ud, const struct viesti_message *msg)
{
	(void)v;
	struct vs_bridge *br = ud;
	char *topic = map_topic(br, msg->topic, false);
	if (!topic)
		return; /* not one of ours (a subscription of an earlier configuration) */
	const struct vs_acl *acl = bridge_acl(br);
	if (acl && !vs_acl_check(acl, br->local_id, br->conf->local_username, topic, strlen(topic),
				 VS_ACL_WRITE)) {
		vs_log(br->b->log, VS_LOG_INFO, "bridge %s: denied PUBLISH to '%s' (ACL, as %s)",
		       br->conf->name, topic,
		       br->conf->local_username ? br->conf->local_username : "anonymous");
		free(topic);
		return;
	}
	struct vs_buf origin = {(const uint8_t *)br->local_id, strlen(br->local_id)};
	/* 5.0 properties come along (vs_msg_make keeps the forwardable ones and the expiry). */
	const struct vs_props *props = br->conf->protocol_version == 5 ? &msg->props->p : NULL;
	struct vs_msg *m =
	    vs_msg_make(topic, strlen(topic), msg->payload, msg->payload_len, (uint8_t)msg->qos,
			msg->retain, props, &origin, br->w->now_ms);
	free(topic);
	if (!m)
		return;
	vs_stat_add(&br->received, 1);
	br->active_ms = br->w->now_ms;
	vs_stat_add(&br->w->stats.pub_received, 1);
	vs_route(br->w, m, br->s); /* origin: the bridge's own No Local subscriptions skip it */
	vs_msg_unref(m);
}

static const struct viesti_callbacks callbacks = {
    .on_connect = on_connect,
    .on_disconnect = on_disconnect,
    .on_message = on_message,
    .on_publish = on_publish,
    .on_log = on_log,
};

/* Splits "HOST[:PORT]" / "[V6]:PORT" into host (written to buf) and port. */
static void split_address(const char *a, char *host, size_t hostlen, int *port)
{
	*port = 1883;
	const char *colon;
	if (a[0] == '[') {
		const char *close = strchr(a, ']');
		snprintf(host, hostlen, "%.*s", (int)(close - a - 1), a + 1);
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strchr(a, ':');
		snprintf(host, hostlen, "%.*s", colon ? (int)(colon - a) : (int)strlen(a), a);
	}
	if (colon)
		*port = atoi(colon + 1);
}

static struct viesti *new_client(struct vs_bridge *br)
{
	const struct vs_bridge_conf *c = br->conf;
	char host[256];
	int port, err = 0;
	split_address(c->addresses.v[br->addr], host, sizeof(host), &port);
	struct viesti_options o;
	viesti_options_init(&o);
	o.host = host;
	o.port = port;
	o.version = c->protocol_version;
	o.client_id = br->remote_id;
	o.username = c->remote_username;
	o.password = c->remote_password;
	o.keepalive = c->keepalive_interval;
	o.clean = c->cleansession;
	/* A persistent remote session (one address, automatic start) keeps one client, which
	 * reconnects by itself and resends what it had in flight with the same packet ids
	 * [MQTT-4.4.0-1]: a new client could reuse an id the remote still holds for an
	 * unfinished QoS 2 message and see its message taken for a duplicate. */
	o.reconnect = br->reuse;
	o.reconnect_min_ms = c->restart_timeout * 1000;
	o.reconnect_max_ms =
	    (c->restart_timeout_cap ? c->restart_timeout_cap : c->restart_timeout) * 1000;
	o.bridge = c->try_private;
	o.max_inflight = (int)br->window;
	o.log_level = VIESTI_LOG_INFO;
	struct viesti_props *cp = NULL;
	if (c->protocol_version == 5 && !c->cleansession && (cp = viesti_props_new()))
		viesti_props_set_int(cp, VIESTI_PROP_SESSION_EXPIRY, UINT32_MAX);
	o.connect_props = cp;
	if (c->notifications && !c->notifications_local_only) {
		o.will_topic = br->state_topic; /* "0" when we vanish, as Mosquitto */
		o.will_payload = "0";
		o.will_payload_len = 1;
		o.will_qos = 1;
		o.will_retain = true;
	}
	struct viesti_tls tls = {.cafile = c->cafile,
				 .capath = c->capath,
				 .certfile = c->certfile,
				 .keyfile = c->keyfile,
				 .insecure = c->insecure,
				 .tls_version = c->tls_version,
				 .alpn = c->alpn,
				 .psk = c->psk,
				 .psk_identity = c->identity};
	if (c->cafile || c->capath || c->psk)
		o.tls = &tls;
	struct viesti *v = viesti_new(&o, &callbacks, br, &err);
	viesti_props_free(cp);
	if (!v)
		vs_log(br->b->log, VS_LOG_ERR, "bridge %s: cannot set up a client for %s: %s",
		       c->name, c->addresses.v[br->addr], viesti_strerror(err));
	return v;
}

/* Starts an attempt on the current address. */
static void start_attempt(struct vs_bridge *br)
{
	br->next_ms = 0;
	br->lost = false;
	br->v = new_client(br);
	if (!br->v) {
		br->lost = true;
		set_state(br, B_CONNECTING);
		return;
	}
	br->io.fd = viesti_fd(br->v);
	br->io.fn = on_io;
	if (vs_loop_add(&br->w->loop, &br->io, EPOLLIN) < 0) {
		viesti_free(br->v);
		br->v = NULL;
		br->lost = true;
		return;
	}
	set_state(br, B_CONNECTING);
	vs_log(br->b->log, VS_LOG_INFO, "bridge %s: connecting to %s", br->conf->name,
	       br->conf->addresses.v[br->addr]);
	viesti_connect(br->v);
}

/* Milliseconds before the next attempt: restart_timeout, constant or backoff (Mosquitto's
 * "base cap": doubling from base up to cap, jittered). */
static int64_t restart_delay(struct vs_bridge *br)
{
	const struct vs_bridge_conf *c = br->conf;
	int64_t base = (int64_t)c->restart_timeout * 1000;
	if (!c->restart_timeout_cap)
		return base;
	int64_t cap = (int64_t)c->restart_timeout_cap * 1000;
	int shift = br->failures < 16 ? br->failures : 16;
	int64_t d = base << shift;
	if (d > cap)
		d = cap;
	return d <= base ? d : base + rand() % (d - base + 1);
}

/* The attempt is over: free the client (never from its callbacks), put what it had in flight
 * back in the queue, and plan the next attempt. */
static void end_attempt(struct vs_bridge *br)
{
	bool was_up = br->state == B_UP;
	if (br->v) {
		vs_loop_del(&br->w->loop, &br->io);
		viesti_free(br->v);
		br->v = NULL;
	}
	br->lost = false;
	pthread_mutex_lock(&br->s->lock);
	br->s->connected = false;
	br->s->offline_since_ms = br->w->now_ms;
	requeue_inflight(br);
	pthread_mutex_unlock(&br->s->lock);
	notify_local(br, 0);
	/* The next address: round_robin moves on after any end; otherwise a lost connection
	 * goes back to the first (the primary), a failed attempt tries the next. */
	size_t n = br->conf->addresses.n;
	if (br->conf->round_robin || !was_up)
		br->addr = (br->addr + 1) % n;
	else
		br->addr = 0;
	if (!was_up)
		br->failures++;
	if (br->conf->start_type == VS_BRIDGE_ONCE) {
		set_state(br, B_STOPPED);
		vs_log(br->b->log, VS_LOG_NOTICE, "bridge %s: stopped (start_type once)",
		       br->conf->name);
		return;
	}
	set_state(br, B_IDLE);
	/* lazy: a connection closed for being idle may start again as soon as messages wait */
	bool idle_close = was_up && br->conf->start_type == VS_BRIDGE_LAZY;
	br->next_ms = br->w->now_ms + (idle_close ? 0 : restart_delay(br));
}

/* Runs the client, then what its callbacks asked for. */
static void run(struct vs_bridge *br, uint32_t events)
{
	if (br->v)
		viesti_process(br->v, (int)events);
	if (br->v && !br->lost && !viesti_is_connected(br->v) && viesti_next_timeout_ms(br->v) < 0)
		br->lost = true; /* an attempt that failed before CONNACK: no callback says so */
	if (br->lost)
		end_attempt(br);
	if (br->kick) {
		br->kick = false;
		vs_bridge_drain(br->w, br->s);
	}
}

static void on_io(struct vs_io *io, uint32_t events)
{
	struct vs_bridge *br = (struct vs_bridge *)((char *)io - offsetof(struct vs_bridge, io));
	run(br, events);
}

/* ---- draining ---- */

/* The delivery numbered seq of message m, out of the window where vs_bridge_drain held it into
 * *x; false if it is no longer there (s locked). */
static bool take_back(struct vs_worker *w, struct vs_session *s, const struct vs_msg *m,
		      uint32_t seq, struct vs_qentry *x)
{
	for (uint32_t i = s->inflight.count; i-- > 0;) {
		struct vs_qentry *e = vs_ring_at(&s->inflight, i);
		if (e->packet_id == 0 && e->seq == seq && e->msg == m) {
			*x = *e;
			vs_ring_remove(&s->inflight, i);
			vs_stat_gauge(&w->stats.inflight, -1);
			return true;
		}
	}
	return false;
}

void vs_bridge_drain(struct vs_worker *w, struct vs_session *s)
{
	struct vs_bridge *br = s->bridge;
	pthread_mutex_lock(&s->lock);
	s->notified = false;
	while (br->state == B_UP && br->v && !br->lost && s->queue.count &&
	       s->inflight.count < br->window) {
		struct vs_qentry x;
		vs_ring_pop(&s->queue, &x);
		vs_stat_gauge(&w->stats.queued, -1);
		s->queued_bytes -= x.msg->payload.len;
		char *local = strndup((const char *)x.msg->topic.p, x.msg->topic.len);
		uint32_t left = 0;
		char *topic = !local || vs_msg_expired(x.msg, w->now_ms, &left)
				  ? NULL
				  : map_topic(br, local, true);
		free(local);
		uint32_t maxp = br->conf->max_packet_size;
		if (topic && maxp && strlen(topic) + x.msg->payload.len + 16 > maxp) {
			vs_log(br->b->log, VS_LOG_NOTICE,
			       "bridge %s: a message to '%s' (%zu bytes) is larger than "
			       "bridge_max_packet_size %u: not sent",
			       br->conf->name, topic, (size_t)x.msg->payload.len, maxp);
			free(topic);
			topic = NULL;
		}
		if (!topic) {
			vs_bp_dequeue(w, s, &x); /* expired [MQTT-3.3.2-5], or no longer bridged */
			vs_qentry_fini(&x);
			continue;
		}
		/* The client's callbacks take s->lock: it is not held across its calls. A QoS 1/2
		 * delivery stays in the window meanwhile (no packet id yet: no acknowledgement
		 * names it), so that a snapshot taken then still holds it: the snapshot's floor
		 * covers its number (restore.c), and its QUEUE record, if written late, would not
		 * bring it back. The message keeps a reference of its own for the call. */
		struct vs_msg *m = vs_msg_ref(x.msg);
		uint32_t seq = x.seq;
		x.state = VS_Q_QUEUED;
		x.packet_id = 0;
		bool held = x.qos && vs_ring_push(&s->inflight, &x) == 0;
		if (held)
			vs_stat_gauge(&w->stats.inflight, 1);
		pthread_mutex_unlock(&s->lock);
		bool retain = br->conf->outgoing_retain && x.retain;
		/* 5.0: the message's own properties go along (views: the client encodes them
		 * before viesti_publish returns), its expiry as what is left of it. */
		struct viesti_props props = {0};
		vs_msg_props(m, &props.p);
		if (m->has_expiry) {
			props.p.present |= 1ull << VS_PROP_MESSAGE_EXPIRY;
			props.p.message_expiry = left;
		}
		int mid = viesti_publish(br->v, topic, m->payload.p, m->payload.len, x.qos, retain,
					 &props);
		free(topic);
		pthread_mutex_lock(&s->lock);
		if (held && !take_back(w, s, m, seq, &x)) {
			vs_msg_unref(m); /* requeued meanwhile (the connection ended): sent again */
			continue;
		}
		vs_msg_unref(m);
		vs_stat_add(&br->sent, 1);
		br->active_ms = w->now_ms;
		vs_stat_add(&w->stats.pub_sent, 1);
		if (x.qos == 0 || mid <= 0) {
			if (mid < 0 && x.qos)
				vs_log(br->b->log, VS_LOG_WARN,
				       "bridge %s: a message to '%.*s' could not be sent: %s",
				       br->conf->name, (int)x.msg->topic.len, x.msg->topic.p,
				       viesti_strerror(mid));
			vs_bp_dequeue(w, s, &x);
			vs_qentry_fini(&x);
			continue;
		}
		x.packet_id = (uint16_t)mid;
		x.state = x.qos == 1 ? VS_Q_WAIT_PUBACK : VS_Q_WAIT_PUBREC;
		if (vs_ring_push(&s->inflight, &x) < 0) {
			vs_bp_dequeue(w, s, &x);
			vs_qentry_fini(&x);
			continue;
		}
		vs_stat_gauge(&w->stats.inflight, 1);
	}
	s->last_drain_ms = w->now_ms;
	bool resume = vs_router_unblocked(w, s);
	pthread_mutex_unlock(&s->lock);
	if (resume)
		vs_worker_resume_publishers(w, s);
}

/* ---- ticks ---- */

static void publish_sys(struct vs_bridge *br)
{
	static const char *const names[] = {"idle", "connecting", "connected", "stopped"};
	char topic[256], val[32];
	const char *base = "$SYS/broker/viesti/bridge";
	pthread_mutex_lock(&br->s->lock);
	uint64_t queued = br->s->queue.count, inflight = br->s->inflight.count;
	uint32_t dropped = br->s->dropped;
	pthread_mutex_unlock(&br->s->lock);
	const struct {
		const char *name;
		uint64_t v;
	} counters[] = {{"queued", queued},
			{"inflight", inflight},
			{"dropped", dropped},
			{"messages/sent", atomic_load(&br->sent)},
			{"messages/received", atomic_load(&br->received)},
			{"connects", atomic_load(&br->connects)}};
	snprintf(topic, sizeof(topic), "%s/%s/state", base, br->conf->name);
	publish_local(br, topic, names[br->state], 0, true);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		snprintf(topic, sizeof(topic), "%s/%s/%s", base, br->conf->name, counters[i].name);
		snprintf(val, sizeof(val), "%llu", (unsigned long long)counters[i].v);
		publish_local(br, topic, val, 0, true);
	}
}

static void tick_one(struct vs_bridge *br)
{
	struct vs_worker *w = br->w;
	const struct vs_bridge_conf *c = br->conf;
	if (br->state == B_IDLE) {
		bool due = false;
		due = br->next_ms && w->now_ms >= br->next_ms;
		if (c->start_type == VS_BRIDGE_LAZY) {
			pthread_mutex_lock(&br->s->lock);
			due = w->now_ms >= br->next_ms &&
			      br->s->queue.count >= (uint32_t)c->threshold;
			pthread_mutex_unlock(&br->s->lock);
		}
		if (due)
			start_attempt(br);
	} else if (br->state == B_UP && c->start_type == VS_BRIDGE_LAZY && br->v &&
		   w->now_ms - br->active_ms > (int64_t)c->idle_timeout * 1000) {
		vs_log(br->b->log, VS_LOG_NOTICE, "bridge %s: idle for %d s, disconnecting (lazy)",
		       c->name, c->idle_timeout);
		viesti_disconnect(br->v, 0, NULL);
	}
	if (br->v) {
		/* Due (0), or no timer at all (-1): an attempt that ended without an event. */
		if (viesti_next_timeout_ms(br->v) <= 0 || br->lost)
			run(br, 0);
	} else if (br->lost) {
		end_attempt(br);
	}
	int every = br->b->conf->sys_interval;
	if (every > 0 && w->now_ms >= br->next_sys_ms) {
		br->next_sys_ms = w->now_ms + (int64_t)every * 1000;
		publish_sys(br);
	}
}

void vs_bridges_tick(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	for (size_t i = 0; i < b->n_bridges; i++)
		tick_one(&b->bridges[i]);
}

/* ---- metrics ---- */

void vs_bridges_metrics(struct vs_broker *b, struct vs_prom *p)
{
	if (!b->n_bridges)
		return;
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"viesti_bridge_up", "gauge", "1 while the bridge is connected to its remote"},
	    {"viesti_bridge_queued_messages", "gauge",
	     "Messages waiting in the bridge's local session for the remote"},
	    {"viesti_bridge_inflight_messages", "gauge",
	     "Messages sent to the remote and not acknowledged yet"},
	    {"viesti_bridge_messages_sent_total", "counter", "Messages sent to the remote"},
	    {"viesti_bridge_messages_received_total", "counter",
	     "Messages received from the remote"},
	    {"viesti_bridge_connects_total", "counter", "Connections made to the remote"},
	};
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		vs_prom_family(p, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < b->n_bridges; i++) {
			struct vs_bridge *br = &b->bridges[i];
			uint64_t v = 0;
			switch (f) {
			case 0:
				v = __atomic_load_n(&br->state, __ATOMIC_RELAXED) == B_UP;
				break;
			case 1:
			case 2:
				pthread_mutex_lock(&br->s->lock);
				v = f == 1 ? br->s->queue.count : br->s->inflight.count;
				pthread_mutex_unlock(&br->s->lock);
				break;
			case 3:
				v = atomic_load(&br->sent);
				break;
			case 4:
				v = atomic_load(&br->received);
				break;
			default:
				v = atomic_load(&br->connects);
			}
			vs_prom_u64(p, fam[f].name, "bridge", br->conf->name, v);
		}
	}
}

/* ---- set-up ---- */

static int setup_topics(struct vs_bridge *br)
{
	const struct vs_bridge_conf *c = br->conf;
	br->topics = calloc(c->n_topics ? c->n_topics : 1, sizeof(*br->topics));
	if (!br->topics)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_topics; i++) {
		const struct vs_bridge_topic *t = &c->topics[i];
		struct topic_rt *r = &br->topics[br->n_topics++];
		r->t = t;
		r->local = concat(t->local_prefix, t->pattern);
		r->remote = concat(t->remote_prefix, t->pattern);
		if (!r->local || !r->remote)
			return -ENOMEM;
	}
	return 0;
}

static int setup_names(struct vs_bridge *br)
{
	const struct vs_bridge_conf *c = br->conf;
	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	if (c->remote_clientid) {
		br->remote_id = strdup(c->remote_clientid);
	} else {
		/* Mosquitto's defaults: remote HOSTNAME.NAME, local "local." + that. */
		size_t n = strlen(host) + 1 + strlen(c->name) + 1;
		if ((br->remote_id = malloc(n)))
			snprintf(br->remote_id, n, "%s.%s", host, c->name);
	}
	if (!br->remote_id)
		return -ENOMEM;
	br->local_id =
	    c->local_clientid ? strdup(c->local_clientid) : concat("local.", br->remote_id);
	if (c->notification_topic)
		br->state_topic = strdup(c->notification_topic);
	else if (br->local_id) {
		size_t n = strlen(br->remote_id) + 40;
		if ((br->state_topic = malloc(n)))
			snprintf(br->state_topic, n, "$SYS/broker/connection/%s/state",
				 br->remote_id);
	}
	return br->local_id && br->state_topic ? 0 : -ENOMEM;
}

/*
 * local_username and local_password: the bridge's local side is inside the broker and needs no
 * login, but as in Mosquitto it acts as that user: the password file must accept the pair
 * (checked once, here), and the ACL applies to what it reads (`out`) and writes (`in`).
 */
static int check_local_user(struct vs_bridge *br, char *err, size_t errlen)
{
	const struct vs_config *c = br->b->conf;
	const struct vs_gen *g = br->b->gen;
	if (c->per_listener_settings)
		return 0; /* no global password file or ACL to go by */
	const char *user = br->conf->local_username, *pw = br->conf->local_password;
	if (!g->passwd || !user)
		return 0;
	if (vs_passwd_check(g->passwd, user, (const uint8_t *)pw, pw ? strlen(pw) : 0) == 1)
		return 0;
	snprintf(err, errlen,
		 "bridge %s: password_file refuses local_username '%s' with its local_password, "
		 "expected a user and password from %s",
		 br->conf->name, user, c->password_file);
	return VS_ECONF;
}

int vs_bridges_init(struct vs_broker *b, char *err, size_t errlen)
{
	const struct vs_config *conf = b->conf;
	if (!conf->n_bridges)
		return 0;
	b->bridges = calloc(conf->n_bridges, sizeof(*b->bridges));
	if (!b->bridges)
		return -ENOMEM;
	int mi = conf->max_inflight_messages;
	for (size_t i = 0; i < conf->n_bridges; i++) {
		struct vs_bridge *br = &b->bridges[i];
		br->b = b;
		br->w = &b->workers[0];
		br->conf = &conf->bridges[i];
		br->published_state = -1;
		br->window = mi > 0 && mi < 65535 ? (uint32_t)mi : 100;
		br->reuse = br->conf->addresses.n == 1 && !br->conf->cleansession &&
			    br->conf->start_type == VS_BRIDGE_AUTOMATIC;
		b->n_bridges++;
		int rc = check_local_user(br, err, errlen);
		if (rc)
			return rc;
		rc = setup_names(br);
		if (rc == 0)
			rc = setup_topics(br);
		if (rc == 0)
			rc = open_session(br);
		if (rc < 0) {
			snprintf(err, errlen, "bridge %s: %s", br->conf->name, strerror(-rc));
			return rc;
		}
		notify_local(br, 0);
		if (br->conf->start_type != VS_BRIDGE_LAZY)
			br->next_ms = br->w->now_ms; /* the first tick connects */
		vs_log(b->log, VS_LOG_NOTICE, "bridge %s: %zu topic(s), local session %s",
		       br->conf->name, br->n_topics, br->local_id);
	}
	return 0;
}

void vs_bridges_fini(struct vs_broker *b)
{
	for (size_t i = 0; i < b->n_bridges; i++) {
		struct vs_bridge *br = &b->bridges[i];
		if (br->v)
			viesti_free(br->v); /* the loop is gone with the workers */
		if (br->s) {
			pthread_mutex_lock(&br->s->lock);
			br->s->bridge = NULL;
			pthread_mutex_unlock(&br->s->lock);
			vs_session_unref(br->s);
		}
		for (size_t k = 0; k < br->n_topics; k++) {
			free(br->topics[k].local);
			free(br->topics[k].remote);
		}
		free(br->topics);
		free(br->remote_id);
		free(br->local_id);
		free(br->state_topic);
	}
	free(b->bridges);
	b->bridges = NULL;
	b->n_bridges = 0;
}
