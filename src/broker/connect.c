/*
 * CONNECT, AUTH and DISCONNECT: checking the request, authenticating the client, finding or
 * creating the session (take-over, clean start, session present), the CONNACK and its 5.0
 * properties.
 *
 * A CONNECT goes through steps, and may wait between them without holding the event loop:
 *   1. read       what the CONNECT asks is copied into the connection (the packet is consumed
 *                 after this step); protocol checks of the client id;
 *   2. authenticate: a TLS identity, the anonymous rules, a password checked by an
 *                 authentication thread (the connection waits unread, authq.h), or
 *                 SCRAM-SHA-256 over AUTH packets (the connection waits for the client's AUTH);
 *   3. authorize  keep-alive, will topic, QoS, retain;
 *   4. take over  a connected session of the same client id is closed first (on another
 *                 worker: the connection waits unread for that worker's answer);
 *   5. attach     the session, the CONNACK.
 * Authentication and authorization come before the take-over [MQTT-3.1.4-2 then -3]: a CONNECT
 * with someone else's client id and a wrong password must not disconnect them, publish their
 * will or end their session. c->connecting holds what the later steps need, until the CONNACK.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "auth/scram.h"
#include "base/clock.h"
#include "broker/authq.h"
#include "broker/cluster_claim.h"
#include "broker/cluster_js.h"
#include "broker/cluster_session.h"
#include "broker/conn.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/tls.h"
#include "broker/trace.h"
#include "broker/worker.h"
#include "net/tls.h"
#include "net/ws.h"
#include "session/session.h"

static char *dup_buf(const struct vs_buf *b)
{
	char *s = malloc(b->len + 1);
	if (s) {
		if (b->len)
			memcpy(s, b->p, b->len);
		s[b->len] = '\0';
	}
	return s;
}

static enum vs_handled refuse(struct vs_conn *c, uint8_t rc5, uint8_t rc3, const char *why)
{
	struct vs_packet a = {.type = VS_CONNACK};
	a.connack.reason = c->version == VS_V5 ? rc5 : rc3;
	if (rc5 == VS_RC_BAD_USER_OR_PASSWORD || rc5 == VS_RC_NOT_AUTHORIZED ||
	    rc5 == VS_RC_BAD_AUTH_METHOD)
		vs_stat_add(&c->w->stats.auth_failures, 1);
	vs_conn_send(c, &a);
	c->graceful = true; /* a refused connection has no will */
	vs_conn_close(c, -1, why);
	return VS_CLOSED;
}

static int check_will(struct vs_conn *c, const struct vs_msg *will, const char **why);

/* Step 3: the broker's policies, once the client is known. Returns a 5.0 reason code. */
static int check_policy(struct vs_conn *c, uint8_t *rc3, const char **why)
{
	struct vs_broker *b = c->w->b;
	const struct vs_msg *will = c->will;
	*rc3 = VS_CONNACK3_NOT_AUTHORIZED;
	if (vs_sproto_keepalive(c->version, c->connecting->keepalive,
				(uint32_t)b->conf->max_keepalive) < 0) {
		/* 3.x cannot be told another keep-alive: refuse, as Mosquitto does. */
		*rc3 = VS_CONNACK3_ID_REJECTED;
		*why = "keep alive above max_keepalive";
		return VS_RC_CLIENT_ID_INVALID;
	}
	return check_will(c, will, why);
}

/* A will's topic, QoS and retain flag against the listener's rules. Returns a 5.0 reason code. */
static int check_will(struct vs_conn *c, const struct vs_msg *will, const char **why)
{
	struct vs_broker *b = c->w->b;
	const struct vs_listener_sec *l = vs_listener_sec(c->listener);
	if (!will)
		return VS_RC_SUCCESS;
	/* The will was made under the listener's mount_point: rules see the client's topic. */
	long skip = vs_mount_strip(c->listener, will->topic.p, will->topic.len);
	const char *topic = (const char *)will->topic.p + (skip > 0 ? skip : 0);
	size_t len = will->topic.len - (size_t)(skip > 0 ? skip : 0);
	if (l->acl && !vs_acl_check(l->acl, c->client_id, c->username, topic, len, VS_ACL_WRITE)) {
		*why = "will topic not allowed by the ACL";
		return VS_RC_NOT_AUTHORIZED;
	}
	if (vs_sys_reserved(topic, len)) {
		*why = "will topic in $SYS"; /* $SYS belongs to the broker, as for PUBLISH */
		return VS_RC_TOPIC_NAME_INVALID;
	}
	if (vs_topic_too_deep(will->topic.p, will->topic.len, b->conf->max_topic_levels)) {
		*why = "will topic deeper than max_topic_levels";
		return VS_RC_TOPIC_NAME_INVALID;
	}
	if (will->qos > l->conf->max_qos) {
		*why = "will QoS above the maximum";
		return VS_RC_QOS_NOT_SUPPORTED; /* [MQTT-3.2.2-12] */
	}
	if (will->retain && !b->conf->retain_available) {
		*why = "retained will but retain not available";
		return VS_RC_RETAIN_NOT_SUPPORTED; /* [MQTT-3.2.2-13] */
	}
	return VS_RC_SUCCESS;
}

static char *assign_id(struct vs_broker *b, const struct vs_listener_sec *l)
{
	char buf[96];
	pthread_mutex_lock(&b->reg_lock);
	uint64_t n = ++b->next_auto_id;
	pthread_mutex_unlock(&b->reg_lock);
	snprintf(buf, sizeof(buf), "%s%016llx-%04x",
		 l->auto_id_prefix ? l->auto_id_prefix : "auto-", (unsigned long long)n,
		 (unsigned)(vs_now_ns() & 0xffff));
	return strdup(buf);
}

/*
 * Finds or creates the session for c->client_id and attaches c [MQTT-3.1.2-4..6]. Returns the
 * attached session (one reference, stored in c) with *present set, or NULL on allocation failure.
 */
static struct vs_session *attach_session(struct vs_conn *c, bool clean, bool *present)
{
	struct vs_worker *w = c->w;
	struct vs_broker *b = w->b;
	size_t idlen = strlen(c->client_id);
	struct vs_session *old_to_end = NULL;
	struct vs_mail kick = {.type = VS_MAIL_KICK};
	int kick_to = -1;
	*present = false;

	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, c->client_id, idlen);
	if (s && s->bridge) {
		/* A bridge's local session is not for a client to take over. */
		pthread_mutex_unlock(&b->reg_lock);
		vs_log(b->log, VS_LOG_NOTICE,
		       "client id %s is a bridge's local_clientid: connection refused",
		       c->client_id);
		return NULL;
	}
	if (s) {
		pthread_mutex_lock(&s->lock);
		/* An offline session whose expiry passed is gone, even if the once-a-second sweep
		 * has not removed it yet [MQTT-3.1.2-23]. */
		bool expired = !s->connected && s->expiry != UINT32_MAX &&
			       w->now_ms - s->offline_since_ms >= (int64_t)s->expiry * 1000;
		clean = clean || expired;
		if (s->connected) {
			/* [MQTT-3.1.4-3] take-over: the old connection is closed. */
			struct vs_worker *ow = s->owner;
			kick.slot = s->conn_slot;
			kick.conn_id = s->conn_id;
			kick.reason = VS_RC_SESSION_TAKEN_OVER;
			kick_to = ow->idx;
		}
		if (clean) {
			/* Its end is recorded now, before the new session's SESSION record: replay
			 * goes by client id, and a later SESSION_DEL would delete the new one. */
			vs_bp_session_del(w, s);
			s->ended = true;
			s->connected = false;
			s->conn = NULL;
			s->owner = NULL;
			pthread_mutex_unlock(&s->lock);
			vs_registry_del(&b->sessions, c->client_id, idlen);
			vs_broker_sessions_changed(b);
			old_to_end = s; /* the registry's reference moves here */
			s = NULL;
		} else {
			*present = true;
		}
	}
	if (!s) {
		s = vs_session_new(c->client_id, idlen);
		if (!s || vs_registry_add(&b->sessions, s) < 0) {
			pthread_mutex_unlock(&b->reg_lock);
			vs_session_unref(s);
			vs_session_unref(old_to_end);
			return NULL;
		}
		vs_broker_sessions_changed(b);
		pthread_mutex_lock(&s->lock);
		/* Delivery numbers go on from the session this one replaces, which takes no more
		 * (ended, under its lock): its QUEUE records that another thread writes late fall
		 * below the new session's floor (vs_bp_session_record). */
		if (old_to_end)
			s->next_seq = old_to_end->next_seq;
	}
	s->connected = true;
	__atomic_store_n(&s->stalled, false, __ATOMIC_RELAXED);
	s->last_drain_ms = w->now_ms;
	int64_t wall_ms = vs_wall_ms();
	c->connected_wall = wall_ms / 1000;
	c->connected_msec = (uint16_t)(wall_ms % 1000);
	s->conn = c;
	s->owner = w;
	s->conn_gen++;
	s->conn_slot = c->slot;
	s->conn_id = c->id;
	s->version = c->version;
	s->expiry = c->session_expiry;
	/* A CONNECT that resumes, or starts a session that outlives it, took the client id's key
	 * in the cluster (vs_cluster_session_ask). */
	if (b->cluster && !c->bridge && (!clean || s->expiry > 0))
		s->keyed = true;
	if (s->expiry > 0)
		vs_session_hold(s, true); /* its floor is the node's again while connected */
	s->listener = c->listener;
	free(s->username);
	s->username = c->username ? strdup(c->username) : NULL;
	/* [MQTT-3.1.3-9] a delayed will of the resumed session is not sent. */
	struct vs_msg *dropped_will = s->will;
	s->will = NULL;
	if (dropped_will)
		vs_bp_will_del(w, s);
	/* The records below need s's lock only: no CONNECT waits while a session is encoded. */
	pthread_mutex_unlock(&b->reg_lock);
	/* Before CONNACK: the session exists once it is told so. One not in the store yet goes
	 * in whole: a session taken over from a connection without expiry holds deliveries and
	 * subscriptions that were never recorded. */
	if (s->persisted)
		vs_bp_session(w, s);
	else if (s->expiry > 0)
		vs_bp_session_record(w, s);
	c->session_gen = s->conn_gen;
	c->session = vs_session_ref(s);
	/* The session's copy of the client id serves the connection too (it holds a reference). */
	free(c->client_id);
	c->client_id = s->client_id;
	pthread_mutex_unlock(&s->lock);

	vs_msg_unref(dropped_will);
	if (kick_to == w->idx)
		vs_worker_takeover(w, kick.slot, kick.conn_id, false);
	else if (kick_to >= 0)
		vs_worker_post(w, kick_to, &kick);
	if (old_to_end) {
		vs_router_end_session(w, old_to_end);
		vs_session_unref(old_to_end);
	}
	return s;
}

static void connack_props(struct vs_conn *c, bool assigned, struct vs_props *pr)
{
	struct vs_broker *b = c->w->b;
	if (b->receive_max < 65535) {
		pr->present |= 1ull << VS_PROP_RECEIVE_MAX;
		pr->receive_max = b->receive_max;
	}
	const struct vs_listener_conf *lc = vs_listener_sec(c->listener)->conf;
	if (lc->max_qos < 2) {
		pr->present |= 1ull << VS_PROP_MAX_QOS;
		pr->max_qos = (uint8_t)lc->max_qos;
	}
	if (!b->conf->retain_available) {
		pr->present |= 1ull << VS_PROP_RETAIN_AVAILABLE;
		pr->retain_available = 0;
	}
	if (b->conf->max_packet_size) {
		pr->present |= 1ull << VS_PROP_MAX_PACKET_SIZE;
		pr->max_packet_size = b->conf->max_packet_size;
	}
	if (assigned) {
		pr->present |= 1ull << VS_PROP_ASSIGNED_CLIENT_ID;
		pr->assigned_client_id.p = (const uint8_t *)c->client_id;
		pr->assigned_client_id.len = strlen(c->client_id);
	}
	pr->present |= 1ull << VS_PROP_TOPIC_ALIAS_MAX;
	pr->topic_alias_max = c->in_alias.max;
	if (c->keepalive != c->connecting->keepalive) {
		pr->present |= 1ull << VS_PROP_SERVER_KEEPALIVE;
		pr->server_keepalive = c->keepalive;
	}
	if (c->connecting->scram) { /* [MQTT-4.12.0-5] the method, and the server's proof */
		pr->present |= 1ull << VS_PROP_AUTH_METHOD | 1ull << VS_PROP_AUTH_DATA;
		pr->auth_method.p = (const uint8_t *)VS_SCRAM_METHOD;
		pr->auth_method.len = strlen(VS_SCRAM_METHOD);
		pr->auth_data.p = c->connecting->final;
		pr->auth_data.len = c->connecting->final_len;
	}
}

/* Applies what CONNECT asks of the connection: limits, keep-alive, will. */
static int setup_conn(struct vs_conn *c, const struct vs_connect *p)
{
	struct vs_broker *b = c->w->b;
	const struct vs_props *pr = &p->props;
	int ka = vs_sproto_keepalive(p->version, p->keepalive, (uint32_t)b->conf->max_keepalive);
	c->keepalive = ka < 0 ? p->keepalive : (uint16_t)ka; /* 3.x: refused in check_policy */
	c->client_receive_max = 65535;
	if (pr->present & (1ull << VS_PROP_RECEIVE_MAX))
		c->client_receive_max = pr->receive_max;
	if (pr->present & (1ull << VS_PROP_MAX_PACKET_SIZE))
		c->client_max_packet = pr->max_packet_size;
	if (pr->present & (1ull << VS_PROP_TOPIC_ALIAS_MAX))
		c->client_alias_max = pr->topic_alias_max;
	if (pr->present & (1ull << VS_PROP_REQUEST_PROBLEM_INFO))
		c->request_problem_info = pr->request_problem_info;
	if (p->version == VS_V5) {
		uint16_t max = (uint16_t)vs_listener_sec(c->listener)->conf->max_topic_alias;
		if (vs_alias_in_init(&c->in_alias, max) < 0)
			return -ENOMEM;
	}
	c->session_expiry = vs_sproto_session_expiry(p, b->conf->persistent_client_expiration);
	if (p->will) {
		struct vs_buf origin = {(const uint8_t *)c->client_id, strlen(c->client_id)};
		struct vs_mounted topic; /* the will's topic under the listener's mount_point */
		if (vs_mount(c->listener, &p->will_topic, false, &topic) == 0)
			c->will = vs_msg_make(
			    (const char *)topic.buf.p, topic.buf.len, p->will_payload.p,
			    p->will_payload.len, p->will_qos, p->will_retain,
			    p->version == VS_V5 ? &p->will_props : NULL, &origin, c->w->now_ms);
		vs_mounted_fini(&topic);
		/* A retained will is a retained message like any other (check_retain_source). */
		if (c->will && p->will_retain && b->conf->check_retain_source &&
		    vs_msg_set_source(c->will, (int)(c->listener - b->listeners), c->client_id,
				      c->username) < 0) {
			vs_msg_unref(c->will);
			c->will = NULL;
		}
		if (!c->will)
			return -ENOMEM;
		if (p->will_props.present & (1ull << VS_PROP_WILL_DELAY))
			c->will_delay = p->will_props.will_delay;
	}
	return 0;
}

/*
 * [MQTT-3.1.4-3] take-over, first step: when the client id's session is connected, the old
 * connection must be gone before the new one attaches, and whatever it already sent (a
 * DISCONNECT that ends a clean session, say) must be handled first. On this worker that happens
 * now; on another, this connection parks (reading stops) until that worker has closed the old
 * one and answers (VS_MAIL_RESUME: vs_connect_resume). Returns 1 when parked.
 */
static int takeover_first(struct vs_conn *c)
{
	struct vs_worker *w = c->w;
	struct vs_broker *b = w->b;
	if (c->id_assigned)
		return 0; /* an assigned id is new */
	struct vs_worker *ow = NULL;
	uint32_t slot = 0;
	uint64_t id = 0;
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, c->client_id, strlen(c->client_id));
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (s->connected && !s->bridge) { /* a bridge's session has no connection to take */
			ow = s->owner;
			slot = s->conn_slot;
			id = s->conn_id;
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	if (!ow)
		return 0;
	/* A take-over that resumes the session is a reconnection: the old connection's will is
	 * not sent (as Mosquitto; for 5.0 [MQTT-3.1.2-8]: a new connection came before it was
	 * due). One that starts clean ends the session, and the will goes as the session ends. */
	bool resumes = !c->connecting->clean;
	if (ow == w) {
		vs_worker_takeover(w, slot, id, resumes);
		return 0;
	}
	struct vs_mail m = {.type = VS_MAIL_TAKEOVER,
			    .reason = resumes,
			    .slot = slot,
			    .conn_id = id,
			    .reply_to = w->idx,
			    .reply_slot = c->slot,
			    .reply_conn_id = c->id};
	vs_worker_post(w, ow->idx, &m);
	c->connecting->step = VS_CS_TAKEOVER;
	vs_conn_park(c);
	return 1;
}

/*
 * The will is session state [MQTT-3.1.3-9]: for a persistent session it is stored while the
 * client is connected, so a broker killed meanwhile publishes it after the restart (its will
 * delay after the restart). A negative publish time in the record means "connected then".
 */
static void record_will(struct vs_conn *c, struct vs_session *s)
{
	/* In a cluster, the other nodes publish it if this node dies (cluster_js.h). */
	if (c->w->b->cluster && (c->will || c->will_in_cluster)) {
		vs_cjs_will(c->w, c->client_id, strlen(c->client_id), c->will);
		c->will_in_cluster = c->will != NULL;
	}
	pthread_mutex_lock(&s->lock);
	if (s->persisted && c->will) {
		vs_bp_will_connected(c->w, s, c->will, c->will_delay);
		c->will_recorded = true;
		vs_msg_unref(s->live_will);
		s->live_will = vs_msg_ref(c->will);
		s->live_will_delay = c->will_delay;
	} else if (s->persisted) {
		vs_bp_will_del(c->w, s); /* a will of an earlier connection is not this one's */
	}
	pthread_mutex_unlock(&s->lock);
}

/*
 * use_identity_as_username / use_subject_as_username: the TLS handshake says who the client is
 * (the certificate's CN or subject, or the PSK identity), and the CONNECT's username and
 * password are ignored. Returns 0 (not such a listener, or the username is set), or -1 with
 * *why when the handshake gave no identity.
 */
static int tls_username(struct vs_conn *c, const char **why)
{
	const struct vs_listener_conf *lc = vs_listener_sec(c->listener)->conf;
	if (c->tls_user)
		return 0; /* set by its listener (an MQTT-SN client's DTLS identity) */
	if (!lc->use_identity_as_username && !lc->use_subject_as_username)
		return 0;
	SSL *ssl = vs_transport_tls_session(vs_transport_ws_inner(&c->tp));
	char *u = ssl ? vs_tls_peer_username(ssl, lc->use_subject_as_username, why) : NULL;
	if (!u)
		return -1;
	free(c->username);
	c->username = u;
	c->tls_user = true;
	return 0;
}

/* The client id the connection goes by: its own, the username (use_username_as_clientid), or
 * one the broker assigns [MQTT-3.1.3-6]. Returns 0, or -1 when c was refused. */
static enum vs_handled choose_id(struct vs_conn *c, const struct vs_connect *p)
{
	struct vs_broker *b = c->w->b;
	if (vs_listener_sec(c->listener)->conf->use_username_as_clientid) {
		/* As Mosquitto: the username is the client id, so one user cannot take over
		 * another's session; without a username there is no id to use. */
		if (!c->username)
			return refuse(c, VS_RC_NOT_AUTHORIZED, VS_CONNACK3_NOT_AUTHORIZED,
				      "use_username_as_clientid and no username");
		free(c->client_id);
		c->client_id = strdup(c->username);
	} else if (p->client_id.len == 0) {
		free(c->client_id);
		c->client_id = assign_id(b, vs_listener_sec(c->listener));
		c->id_assigned = true;
	}
	if (!c->client_id)
		return refuse(c, VS_RC_SERVER_UNAVAILABLE, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "no memory");
	const char *prefix = b->conf->clientid_prefixes;
	if (prefix && strncmp(c->client_id, prefix, strlen(prefix)) != 0)
		return refuse(c, VS_RC_NOT_AUTHORIZED, VS_CONNACK3_NOT_AUTHORIZED,
			      "client id without a prefix of clientid_prefixes");
	return VS_GO_ON;
}

/* Step 1: copies what the later steps need out of the packet. Returns 0, or -1 when c was
 * refused (and closed). */
static enum vs_handled read_connect(struct vs_conn *c, const struct vs_connect *p)
{
	c->version = p->version;
	c->bridge = p->bridge;
	c->connecting = calloc(1, sizeof(*c->connecting));
	c->client_id = dup_buf(&p->client_id);
	if (p->has_username)
		c->username = dup_buf(&p->username);
	if (!c->connecting || !c->client_id || (p->has_username && !c->username))
		return refuse(c, VS_RC_SERVER_UNAVAILABLE, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "no memory");
	c->connecting->clean = p->clean;
	c->connecting->keepalive = p->keepalive;
	uint8_t rc3;
	const char *why = "no TLS identity";
	if (tls_username(c, &why) < 0)
		return refuse(c, VS_RC_NOT_AUTHORIZED, VS_CONNACK3_NOT_AUTHORIZED, why);
	int rc = vs_sproto_check_client_id(
	    p, vs_listener_sec(c->listener)->allow_zero_length_clientid, &rc3, &why);
	if (rc != VS_RC_SUCCESS)
		return refuse(c, (uint8_t)rc, rc3, why);
	if (choose_id(c, p) == VS_CLOSED)
		return VS_CLOSED;
	if (setup_conn(c, p) < 0)
		return refuse(c, VS_RC_SERVER_UNAVAILABLE, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "no memory");
	return VS_GO_ON;
}

/* Step 5: the session, the CONNACK. */
/* Mosquitto's "New client connected" line (log_format mosquitto) and the will's debug trace:
 * p is its protocol number (1: 3.1, 2: 3.1.1, 5: 5.0), c clean start, k the keep-alive. */
static void log_connected_mosquitto(struct vs_conn *c)
{
	const struct vs_broker *b = c->w->b;
	int p = c->version == VS_V31 ? 1 : c->version == VS_V311 ? 2 : 5;
	if (b->conf->connection_messages && c->username)
		vs_log(b->log, VS_LOG_NOTICE,
		       "New client connected from %s as %s (p%d, c%d, k%u, "
		       "u'%s').",
		       c->addr, c->client_id, p, c->connecting->clean, c->keepalive, c->username);
	else if (b->conf->connection_messages)
		vs_log(b->log, VS_LOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%u).",
		       c->addr, c->client_id, p, c->connecting->clean, c->keepalive);
	if (vs_trace_on(b->log))
		vs_trace_will(c);
}

static enum vs_handled attach(struct vs_conn *c)
{
	struct vs_broker *b = c->w->b;
	bool present;
	struct vs_session *s = attach_session(c, c->connecting->clean, &present);
	if (!s)
		return refuse(c, VS_RC_SERVER_UNAVAILABLE, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "no memory");
	/* What the session holds was checked against its previous user's rights: whoever resumes
	 * it gets only what they may read (as Mosquitto re-checks at every connect). */
	if (present)
		vs_router_recheck_session(c->w, s);
	struct vs_packet a = {.type = VS_CONNACK};
	a.connack.session_present = present; /* [MQTT-3.2.2-2], [MQTT-3.2.2-3] */
	a.connack.reason = 0;
	if (c->version == VS_V5)
		connack_props(c, c->id_assigned, &a.connack.props);
	/* A client that cannot take its CONNACK (larger than its Maximum Packet Size
	 * [MQTT-3.1.2-24]) is refused, and was never connected: it has no will. */
	if (b->log->mosquitto)
		log_connected_mosquitto(c); /* before its CONNACK, in Mosquitto's order */
	c->graceful = true;
	if (vs_conn_reply(c, &a) == VS_CLOSED)
		return VS_CLOSED;
	c->graceful = false;
	c->state = VS_CONN_ACTIVE;
	int now = atomic_fetch_add(&b->clients_connected, 1) + 1;
	int max = atomic_load(&b->clients_max);
	while (now > max && !atomic_compare_exchange_weak(&b->clients_max, &max, now))
		;
	vs_stat_add(&c->w->stats.connects, 1);
	if (b->conf->connection_messages && !b->log->mosquitto)
		vs_logc(b->log, VS_LOG_INFO, c->client_id,
			"client %s connected from %s on %s (%s, clean %d, keepalive %u%s%s%s)",
			c->client_id, c->addr, c->listener->name,
			c->listener->sn		? "MQTT-SN 1.2"
			: c->version == VS_V5	? "MQTT 5.0"
			: c->version == VS_V311 ? "MQTT 3.1.1"
						: "MQTT 3.1",
			c->connecting->clean, c->keepalive, c->username ? ", user " : "",
			c->username ? c->username : "", c->connecting->scram ? ", SCRAM" : "");
	vs_cluster_claim(b, c, c->connecting->clean);
	if (b->cluster && c->session_expiry > 0 && !c->bridge)
		vs_cluster_session_note(b, c->client_id, strlen(c->client_id), false);
	vs_connecting_free(c);
	record_will(c, s);
	if (present && !vs_router_resume_session(c->w, s))
		return VS_CLOSED;
	return VS_GO_ON;
}

/* Steps 3 to 5, once the client is authenticated. Returns 0 (connected, or waiting for a
 * take-over), or -1 when c was refused. */
static enum vs_handled authorized(struct vs_conn *c)
{
	uint8_t rc3;
	const char *why = "";
	int rc = check_policy(c, &rc3, &why);
	if (rc != VS_RC_SUCCESS)
		return refuse(c, (uint8_t)rc, rc3, why);
	return vs_connect_resume(c);
}

enum vs_handled vs_connect_resume(struct vs_conn *c)
{
	if (vs_cluster_session_ask(c))
		return VS_GO_ON; /* the session may be on another node (cluster_session.h) */
	if (takeover_first(c))
		return VS_GO_ON;
	return attach(c);
}

/*
 * Step 2 for a username and password, as Mosquitto decides: without a username, or without a
 * password file, allow_anonymous decides; otherwise the password must match, which an
 * authentication thread checks while the connection waits. Returns 0 (done or waiting), or -1
 * when c was refused.
 */
static enum vs_handled authenticate(struct vs_conn *c, const struct vs_connect *p)
{
	const struct vs_listener_sec *l = vs_listener_sec(c->listener);
	if (c->tls_user)
		return authorized(c); /* the handshake proved who this is (as Mosquitto) */
	if (c->preauth)
		return authorized(c); /* its listener vouches for its source (MQTT-SN) */
	if (!c->username || !l->passwd) {
		if (l->allow_anonymous)
			return authorized(c);
		return refuse(c, VS_RC_NOT_AUTHORIZED, VS_CONNACK3_NOT_AUTHORIZED,
			      c->username ? "no password file, anonymous clients not allowed"
					  : "anonymous clients not allowed");
	}
	if (!p->has_password) /* no password never matches */
		return refuse(c, VS_RC_BAD_USER_OR_PASSWORD, VS_CONNACK3_BAD_USER_OR_PASSWORD,
			      "bad username or password");
	struct vs_auth_job *j = vs_authq_submit(c->w->b, c->w->idx, c->slot, c->id, c->listener,
						c->username, p->password.p, p->password.len);
	if (!j)
		return refuse(c, VS_RC_SERVER_UNAVAILABLE, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "no memory");
	c->connecting->job = j;
	c->connecting->step = VS_CS_AUTH;
	vs_conn_park(c);
	return VS_GO_ON;
}

int vs_connect_update_will(struct vs_conn *c, struct vs_msg *will, const char **why)
{
	int rc = check_will(c, will, why);
	if (rc != VS_RC_SUCCESS) {
		vs_msg_unref(will);
		return rc;
	}
	vs_msg_unref(c->will);
	c->will = will;
	c->will_delay = 0;
	if (c->session)
		record_will(c, c->session);
	return VS_RC_SUCCESS;
}

void vs_connect_authenticated(struct vs_conn *c, bool ok)
{
	if (!c->connecting || c->connecting->step != VS_CS_AUTH)
		return;
	vs_auth_job_cancel(c->connecting->job); /* done: drops our reference */
	c->connecting->job = NULL;
	c->connecting->step = VS_CS_NONE;
	c->parked = false;
	enum vs_handled h =
	    ok ? authorized(c)
	       : refuse(c, VS_RC_BAD_USER_OR_PASSWORD, VS_CONNACK3_BAD_USER_OR_PASSWORD,
			"bad username or password");
	if (h == VS_GO_ON && !c->parked)
		vs_conn_unpark(c);
}

/* ---- SCRAM-SHA-256 (MQTT 5.0 enhanced authentication, section 4.12) ---------------------- */

/* Refuses an enhanced authentication: CONNACK 0x87 [MQTT-4.12.0-4]. */
static enum vs_handled scram_refuse(struct vs_conn *c, const char *why)
{
	char msg[96];
	snprintf(msg, sizeof(msg), "SCRAM-SHA-256: %s", why ? why : "refused");
	return refuse(c, VS_RC_NOT_AUTHORIZED, VS_CONNACK3_NOT_AUTHORIZED, msg);
}

/* An AUTH packet with the method, reason and data [MQTT-4.12.0-2], [MQTT-4.12.0-5]. */
static enum vs_handled send_auth(struct vs_conn *c, uint8_t reason, const uint8_t *data, size_t len)
{
	struct vs_packet a = {.type = VS_AUTH};
	a.disconnect.reason = reason;
	struct vs_props *pr = &a.disconnect.props;
	pr->present = 1ull << VS_PROP_AUTH_METHOD | 1ull << VS_PROP_AUTH_DATA;
	pr->auth_method.p = (const uint8_t *)VS_SCRAM_METHOD;
	pr->auth_method.len = strlen(VS_SCRAM_METHOD);
	pr->auth_data.p = data;
	pr->auth_data.len = len;
	return vs_conn_reply(c, &a);
}

/*
 * The first SCRAM step, from the CONNECT's Authentication Data: the server-first-message goes
 * out in AUTH 0x18 and the connection waits for the client's AUTH. The credentials come from the
 * listener's password file ($scram-sha-256$ entries); an unknown user gets a stand-in, so that
 * the exchange looks the same and fails only at the proof. Cheap (a few hashes): on the loop.
 */
static enum vs_handled scram_start(struct vs_conn *c, const struct vs_props *pr)
{
	const struct vs_listener_sec *l = vs_listener_sec(c->listener);
	if (!l->passwd)
		return refuse(c, VS_RC_BAD_AUTH_METHOD, VS_CONNACK3_NOT_AUTHORIZED,
			      "SCRAM-SHA-256 without a password file");
	struct vs_scram_server *sc = malloc(sizeof(*sc));
	if (!sc)
		return refuse(c, VS_RC_SERVER_UNAVAILABLE, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "no memory");
	c->connecting->scram = sc;
	vs_scram_server_init(sc);
	const char *why = NULL;
	if (vs_scram_server_recv_first(sc, pr->auth_data.p, pr->auth_data.len, &why) < 0)
		return scram_refuse(c, why);
	struct vs_scram_cred cred;
	vs_passwd_scram_lookup(l->passwd, sc->user, &cred);
	uint8_t out[VS_SCRAM_MSG_MAX];
	int n = vs_scram_server_send_first(sc, &cred, out, sizeof(out));
	OPENSSL_cleanse(&cred, sizeof(cred));
	if (n < 0)
		return scram_refuse(c, "other-error");
	c->connecting->step = VS_CS_SCRAM;
	return send_auth(c, VS_RC_CONTINUE_AUTH, out, (size_t)n);
}

/* The client-final-message: a right proof authenticates the client as the SCRAM user. */
static enum vs_handled scram_finish(struct vs_conn *c, const struct vs_disconnect *p)
{
	struct vs_connecting *cg = c->connecting;
	if (p->reason != VS_RC_CONTINUE_AUTH) /* [MQTT-4.12.0-3] */
		return scram_refuse(c, "AUTH without reason 0x18");
	const char *why = NULL;
	int n = vs_scram_server_recv_final(cg->scram, p->props.auth_data.p, p->props.auth_data.len,
					   cg->final, sizeof(cg->final), &why);
	if (n < 0)
		return scram_refuse(c, why ? why : "invalid-proof");
	cg->final_len = (uint8_t)n;
	free(c->username);
	c->username = strdup(cg->scram->user); /* who SCRAM proved this is */
	vs_scram_server_fini(cg->scram);
	cg->step = VS_CS_NONE;
	if (!c->username)
		return refuse(c, VS_RC_SERVER_UNAVAILABLE, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "no memory");
	return authorized(c);
}

static bool same_method(const struct vs_props *pr)
{
	return (pr->present & (1ull << VS_PROP_AUTH_METHOD)) &&
	       pr->auth_method.len == strlen(VS_SCRAM_METHOD) &&
	       memcmp(pr->auth_method.p, VS_SCRAM_METHOD, pr->auth_method.len) == 0;
}

enum vs_handled vs_on_auth(struct vs_conn *c, const struct vs_disconnect *p)
{
	if (c->state == VS_CONN_NEW && c->connecting && c->connecting->step == VS_CS_SCRAM) {
		if (!same_method(&p->props)) /* [MQTT-4.12.0-5] */
			return scram_refuse(c, "AUTH with another method");
		return scram_finish(c, p);
	}
	/* A client that authenticated without a method may send no AUTH [MQTT-4.12.0-7];
	 * re-authentication (0x19) is not offered: the connection ends [MQTT-4.12.1-2]. */
	vs_conn_close(c, c->state == VS_CONN_ACTIVE ? VS_RC_BAD_AUTH_METHOD : VS_RC_PROTOCOL_ERROR,
		      "AUTH not expected (re-authentication is not supported)");
	return VS_CLOSED;
}

enum vs_handled vs_on_connect(struct vs_conn *c, const struct vs_connect *p)
{
	if (read_connect(c, p) == VS_CLOSED)
		return VS_CLOSED;
	if (atomic_load_explicit(&c->w->b->over_memory, memory_order_relaxed))
		return refuse(c, VS_RC_QUOTA_EXCEEDED, VS_CONNACK3_SERVER_UNAVAILABLE,
			      "memory_limit reached, new connections refused");
	const struct vs_props *pr = &p->props;
	if (pr->present & (1ull << VS_PROP_AUTH_METHOD)) {
		if (!same_method(pr)) /* [MQTT-4.12.0-1] */
			return refuse(c, VS_RC_BAD_AUTH_METHOD, VS_CONNACK3_NOT_AUTHORIZED,
				      "unsupported authentication method");
		return scram_start(c, pr);
	}
	return authenticate(c, p);
}

void vs_connecting_free(struct vs_conn *c)
{
	struct vs_connecting *cg = c->connecting;
	if (!cg)
		return;
	if (cg->job)
		vs_auth_job_cancel(cg->job);
	if (cg->scram) {
		vs_scram_server_fini(cg->scram);
		free(cg->scram);
	}
	free(cg);
	c->connecting = NULL;
}

enum vs_handled vs_on_disconnect(struct vs_conn *c, const struct vs_disconnect *p)
{
	if (c->version == VS_V5 && (p->props.present & (1ull << VS_PROP_SESSION_EXPIRY))) {
		/* [MQTT-3.14.2-2] a session expiry of 0 at CONNECT cannot be raised here. */
		if (c->session_expiry == 0 && p->props.session_expiry != 0) {
			vs_conn_close(c, VS_RC_PROTOCOL_ERROR,
				      "session expiry raised from 0 at DISCONNECT");
			return VS_CLOSED;
		}
		c->session_expiry = p->props.session_expiry;
	}
	/* [MQTT-3.14.4-3] a normal DISCONNECT discards the will; 0x04 keeps it. */
	c->graceful = !(c->version == VS_V5 && p->reason == VS_RC_DISCONNECT_WITH_WILL);
	char why[64];
	snprintf(why, sizeof(why), "client sent DISCONNECT (0x%02X)", p->reason);
	vs_conn_close(c, -1, why);
	return VS_CLOSED;
}
