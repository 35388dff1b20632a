/*
 * One connection's life, and the gaps between connections:
 *
 *   IDLE -connect-> TCP -writable-> MQTT -CONNACK 0-> UP -disconnect-> CLOSING -flushed-> IDLE
 *                    |               |                |
 *                    +---------------+-- lost --------+--> WAIT -timer-> TCP ...  (reconnect)
 *                                                          or IDLE (reconnect off, user stop)
 *
 * Every function here runs with v->lock held. Reconnect delays start at reconnect_min_ms and
 * double per failed attempt up to reconnect_max_ms; each is jittered to [d/2, d] so that clients
 * dropped together do not come back together. A successful CONNACK resets the delay.
 */
#include "client/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"

static void lost(struct viesti *v, int err);

static void set_events(struct viesti *v, uint32_t events)
{
	if (!v->sock_on) {
		v->sock_io.fd = v->tr.fd;
		if (vs_loop_add(&v->loop, &v->sock_io, events) == 0)
			v->sock_on = true;
		return;
	}
	vs_loop_mod(&v->loop, &v->sock_io, events);
}

void vs_client_close_sock(struct viesti *v)
{
	if (v->sock_on)
		vs_loop_del(&v->loop, &v->sock_io);
	v->sock_on = false;
	if (v->tr.ops)
		v->tr.ops->close(&v->tr);
	v->tr.fd = -1;
	v->in.off = v->in.len = 0;
}

void vs_client_record_done(struct viesti *v, uint16_t id, int reason)
{
	unsigned i = v->done_n++ % VS_DONE_RING;
	v->done[i].id = id;
	v->done[i].reason = (int16_t)reason;
}

int vs_client_done_reason(struct viesti *v, uint16_t id)
{
	for (unsigned k = 0; k < VS_DONE_RING && k < v->done_n; k++) {
		unsigned i = (v->done_n - 1 - k) % VS_DONE_RING;
		if (v->done[i].id == id)
			return v->done[i].reason;
	}
	return 0;
}

static uint64_t next_rand(struct viesti *v)
{
	v->rng ^= v->rng << 13;
	v->rng ^= v->rng >> 7;
	v->rng ^= v->rng << 17;
	return v->rng;
}

static void schedule_retry(struct viesti *v)
{
	int d = v->backoff_ms;
	int delay = d / 2 + (int)(next_rand(v) % (uint64_t)(d / 2 + 1));
	v->state = VS_ST_WAIT;
	v->deadline_ms = vs_now_ms() + delay;
	v->backoff_ms = d >= v->reconnect_max_ms / 2 ? v->reconnect_max_ms : d * 2;
	vs_client_log(v, VIESTI_LOG_INFO, "reconnecting in %d ms", delay);
}

/* The connection (or attempt) is over: close, tell, and maybe schedule a retry. */
static void lost(struct viesti *v, int err)
{
	int was = v->state;
	/* The transport's own words (a TLS alert, a certificate check) say more than the code:
	 * they are an error line, which the tools print. Taken before the transport is closed. */
	char said[160];
	snprintf(said, sizeof(said), "%s", vs_transport_why(&v->tr));
	vs_client_close_sock(v);
	vs_cproto_lost(&v->cp);
	v->last_err = err;
	v->state = VS_ST_IDLE;
	const char *why = said[0] ? said : viesti_strerror(err);
	int level = said[0] ? VIESTI_LOG_ERR : VIESTI_LOG_WARN;
	if (was == VS_ST_UP || was == VS_ST_CLOSING) {
		vs_client_log(v, level, "connection lost: %s", why);
		if (v->cb.on_disconnect)
			v->cb.on_disconnect(v, v->ud, err, v->disc_reason, NULL);
	} else {
		vs_client_log(v, level, "connecting to %s:%d failed: %s", v->host, v->port, why);
		if (v->first_result == VS_PENDING)
			v->first_result = err;
		v->attempt_result = err;
	}
	v->disc_reason = -1;
	/* The callback may have called viesti_connect() or viesti_disconnect(). */
	if (v->state == VS_ST_IDLE && !v->user_stop && v->reconnect)
		schedule_retry(v);
	pthread_cond_broadcast(&v->cond);
}

void vs_client_start_attempt(struct viesti *v)
{
	v->state = VS_ST_TCP;
	v->deadline_ms = vs_now_ms() + v->connect_timeout_ms;
	const struct vs_transport_ops *ops = v->tls ? &vs_transport_tls : &vs_transport_tcp;
	const void *conf = v->tls;
	if (v->ws_path) {
		v->ws = (struct vs_ws_client_conf){
		    .inner = ops,
		    .inner_conf = v->tls,
		    .path = v->ws_path,
		    .subprotocol = v->version == VS_V31 ? "mqttv3.1" : "mqtt",
		};
		ops = &vs_transport_ws;
		conf = &v->ws;
	}
	v->tr.ops = ops;
	v->tr.tcp = &v->tcp;
	v->tr.fd = -1;
	vs_client_log(v, VIESTI_LOG_DEBUG, "connecting to %s:%d%s%s", v->host, v->port,
		      v->ws_path ? " over WebSocket at " : "", v->ws_path ? v->ws_path : "");
	int rc = v->tr.ops->open(&v->tr, conf, v->host, v->port);
	if (rc < 0) {
		lost(v, rc);
		return;
	}
	set_events(v, EPOLLOUT);
}

static void build_connect(struct viesti *v, struct vs_connect *c)
{
	memset(c, 0, sizeof(*c));
	c->version = (uint8_t)v->version;
	/* Resuming: Clean Start 0 in 5.0 (the session expiry decides what the broker kept); in 3.x
	 * a clean first session cannot be resumed, so the flag stays as the user chose. */
	c->clean = v->session_started ? (v->version == VS_V5 ? false : v->clean) : v->clean;
	c->keepalive = (uint16_t)v->keepalive;
	if (v->connect_props)
		c->props = v->connect_props->p;
	c->client_id.p = (const uint8_t *)v->client_id;
	c->client_id.len = strlen(v->client_id);
	c->bridge = v->bridge;
	if (v->will_topic) {
		c->will = true;
		c->will_qos = (uint8_t)v->will_qos;
		c->will_retain = v->will_retain;
		c->will_topic.p = (const uint8_t *)v->will_topic;
		c->will_topic.len = strlen(v->will_topic);
		c->will_payload.p = v->will_payload;
		c->will_payload.len = v->will_len;
		if (v->will_props)
			c->will_props = v->will_props->p;
	}
	if (v->scram)
		return; /* the user name travels in SCRAM's messages; the password never does */
	if (v->username) {
		c->has_username = true;
		c->username.p = (const uint8_t *)v->username;
		c->username.len = strlen(v->username);
	}
	if (v->password) {
		c->has_password = true;
		c->password.p = (const uint8_t *)v->password;
		c->password.len = v->password_len;
	}
}

static void start_mqtt(struct viesti *v)
{
	struct vs_connect c;
	build_connect(v, &c);
	v->state = VS_ST_MQTT;
	int rc = vs_cproto_start(&v->cp, &c, vs_now_ms());
	if (rc < 0) {
		lost(v, rc == VS_EPROTO ? VIESTI_EINVAL : rc);
		return;
	}
	vs_client_flush(v);
}

void vs_client_flush(struct viesti *v)
{
	if (v->tr.fd < 0 || v->state == VS_ST_TCP || v->state == VS_ST_IDLE ||
	    v->state == VS_ST_WAIT)
		return;
	struct vs_bytes *o = &v->cp.out;
	while (vs_bytes_avail(o) > 0) {
		ssize_t n = v->tr.ops->write(&v->tr, vs_bytes_head(o), vs_bytes_avail(o));
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			lost(v, (int)n);
			return;
		}
		vs_bytes_consume(o, (size_t)n);
	}
	bool pending = vs_bytes_avail(o) > 0;
	if (!pending)
		pthread_cond_broadcast(&v->cond); /* QoS 0 publish_wait */
	if (v->state == VS_ST_CLOSING && !pending) {
		vs_client_close_sock(v);
		vs_cproto_lost(&v->cp);
		v->state = VS_ST_IDLE;
		v->disc_cb_pending = true;
		vs_client_wake(v);
		pthread_cond_broadcast(&v->cond);
		return;
	}
	set_events(v, EPOLLIN | (pending ? EPOLLOUT : 0));
}

static int map_input_error(struct viesti *v, ssize_t rc)
{
	if (rc == VS_ECLOSED)
		return v->cp.state == VS_CS_IDLE && v->connack_reason > 0 && v->state == VS_ST_MQTT
			   ? VIESTI_EREFUSED
			   : VIESTI_ECLOSED;
	return (int)rc;
}

static void do_read(struct viesti *v)
{
	for (int round = 0; round < 8; round++) {
		if (vs_bytes_reserve(&v->in, VS_TRANSPORT_MIN_READ) < 0) {
			lost(v, -ENOMEM);
			return;
		}
		ssize_t n = v->tr.ops->read(&v->tr, v->in.data + v->in.len, v->in.cap - v->in.len);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			lost(v, n == 0 ? VIESTI_ECLOSED : (int)n);
			return;
		}
		v->in.len += (size_t)n;
		enum vs_reason why = VS_RC_SUCCESS;
		int st = v->state;
		ssize_t used = vs_cproto_input(&v->cp, vs_bytes_head(&v->in),
					       vs_bytes_avail(&v->in), vs_now_ms(), &why);
		if (v->state != st && v->state != VS_ST_UP && v->state != VS_ST_CLOSING)
			return; /* a callback tore the connection down */
		if (used < 0) {
			if (v->scram && v->scram->why)
				vs_client_log(v, VIESTI_LOG_ERR, "%s", v->scram->why);
			else if (used == VS_EPROTO)
				vs_client_log(v, VIESTI_LOG_ERR, "protocol error from broker: %s",
					      vs_reason_str(why));
			lost(v, map_input_error(v, used));
			return;
		}
		vs_bytes_consume(&v->in, (size_t)used);
		vs_client_flush(v);
		if (v->tr.fd < 0)
			return;
	}
}

void vs_client_on_sock(struct vs_io *io, uint32_t events)
{
	struct viesti *v = (struct viesti *)((char *)io - offsetof(struct viesti, sock_io));
	pthread_mutex_lock(&v->lock);
	v->busy++;
	if (v->state == VS_ST_TCP) {
		int old = v->tr.fd;
		int rc = v->tr.ops->finish(&v->tr);
		if (rc == -EAGAIN) {
			if (v->tr.fd != old)
				v->sock_on = false; /* the old fd left epoll when it was closed */
			set_events(v, v->tr.wait);  /* a no-op when unchanged */
		} else if (rc < 0) {
			lost(v, rc);
		} else {
			start_mqtt(v);
		}
	} else if (v->tr.fd >= 0) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			do_read(v);
		if (v->tr.fd >= 0 && (events & EPOLLOUT))
			vs_client_flush(v);
	}
	v->busy--;
	pthread_mutex_unlock(&v->lock);
}

void vs_client_run_timers(struct viesti *v)
{
	int64_t now = vs_now_ms();
	v->busy++;
	switch (v->state) {
	case VS_ST_WAIT:
		if (now >= v->deadline_ms)
			vs_client_start_attempt(v);
		break;
	case VS_ST_TCP:
	case VS_ST_MQTT:
	case VS_ST_CLOSING:
		if (now >= v->deadline_ms)
			lost(v, -ETIMEDOUT);
		break;
	case VS_ST_UP: {
		int rc = vs_cproto_tick(&v->cp, now);
		if (rc < 0) {
			vs_client_log(v, VIESTI_LOG_WARN,
				      "no PINGRESP within keep-alive: broker dead");
			lost(v, rc);
		} else {
			vs_client_flush(v);
		}
		break;
	}
	default:
		break;
	}
	if (v->disc_cb_pending) {
		v->disc_cb_pending = false;
		if (v->cb.on_disconnect)
			v->cb.on_disconnect(v, v->ud, 0, -1, NULL);
	}
	v->busy--;
}

int vs_client_next_timeout(struct viesti *v)
{
	int64_t at = -1;
	if (v->disc_cb_pending)
		return 0;
	switch (v->state) {
	case VS_ST_WAIT:
	case VS_ST_TCP:
	case VS_ST_MQTT:
	case VS_ST_CLOSING:
		at = v->deadline_ms;
		break;
	case VS_ST_UP:
		at = vs_cproto_deadline(&v->cp);
		break;
	}
	if (at < 0)
		return -1;
	int64_t d = at - vs_now_ms();
	return d < 0 ? 0 : d > 3600000 ? 3600000 : (int)d;
}

/* ---- events from the protocol core ---------------------------------------------------- */

static void ev_connack(void *ctx, const struct vs_connack *ca)
{
	struct viesti *v = ctx;
	struct viesti_props pv;
	vs_cprops_view(&pv, &ca->props);
	v->connack_reason = ca->reason;
	if (ca->reason == 0) {
		v->state = VS_ST_UP;
		v->backoff_ms = v->reconnect_min_ms;
		v->session_started = true;
		if (v->first_result == VS_PENDING)
			v->first_result = 0;
		v->attempt_result = 0;
		const struct vs_props *p = &ca->props;
		if ((p->present & (1ull << VS_PROP_ASSIGNED_CLIENT_ID)) && !v->client_id[0]) {
			char *id = strndup((const char *)p->assigned_client_id.p,
					   p->assigned_client_id.len);
			if (id) {
				free(v->client_id);
				v->client_id = id;
			}
		}
		vs_client_log(v, VIESTI_LOG_INFO, "connected to %s:%d (session present %d)",
			      v->host, v->port, ca->session_present);
	} else {
		vs_client_log(v, VIESTI_LOG_ERR, "connection refused: %s",
			      v->version == VS_V5 ? vs_reason_str(ca->reason)
						  : "CONNACK return code");
		if (v->first_result == VS_PENDING)
			v->first_result = VIESTI_EREFUSED;
		v->attempt_result = VIESTI_EREFUSED;
	}
	pthread_cond_broadcast(&v->cond);
	if (v->cb.on_connect)
		v->cb.on_connect(v, v->ud, ca->reason, ca->session_present, &pv);
}

static const char *ensure_topic(struct viesti *v, const struct vs_buf *t)
{
	if (t->len + 1 > v->topic_cap) {
		char *b = realloc(v->topic_buf, t->len + 1);
		if (!b)
			return NULL;
		v->topic_buf = b;
		v->topic_cap = t->len + 1;
	}
	memcpy(v->topic_buf, t->p, t->len);
	v->topic_buf[t->len] = 0;
	return v->topic_buf;
}

static void ev_message(void *ctx, const struct vs_publish *p)
{
	struct viesti *v = ctx;
	struct viesti_props pv;
	vs_cprops_view(&pv, &p->props);
	struct viesti_message m = {
	    .topic = ensure_topic(v, &p->topic),
	    .topic_len = p->topic.len,
	    .payload = p->payload.p,
	    .payload_len = p->payload.len,
	    .qos = p->qos,
	    .retain = p->retain,
	    .dup = p->dup,
	    .mid = p->packet_id,
	    .props = &pv,
	};
	if (m.topic && v->cb.on_message)
		v->cb.on_message(v, v->ud, &m);
}

static void ev_published(void *ctx, uint16_t id, int reason, const struct vs_props *props)
{
	struct viesti *v = ctx;
	struct viesti_props pv;
	vs_cprops_view(&pv, props);
	vs_client_record_done(v, id, reason);
	pthread_cond_broadcast(&v->cond);
	if (v->cb.on_publish)
		v->cb.on_publish(v, v->ud, id, reason, &pv);
}

static void ev_suback(void *ctx, uint16_t id, const struct vs_suback *sa)
{
	struct viesti *v = ctx;
	struct viesti_props pv;
	vs_cprops_view(&pv, &sa->props);
	vs_client_record_done(v, id, sa->count ? sa->codes[0] : 0);
	pthread_cond_broadcast(&v->cond);
	if (v->cb.on_subscribe)
		v->cb.on_subscribe(v, v->ud, id, (int)sa->count, sa->codes, &pv);
}

static void ev_unsuback(void *ctx, uint16_t id, const struct vs_suback *ua)
{
	struct viesti *v = ctx;
	struct viesti_props pv;
	vs_cprops_view(&pv, &ua->props);
	vs_client_record_done(v, id, ua->count ? ua->codes[0] : 0);
	pthread_cond_broadcast(&v->cond);
	if (v->cb.on_unsubscribe)
		v->cb.on_unsubscribe(v, v->ud, id, (int)ua->count, ua->codes, &pv);
}

static void ev_disconnect(void *ctx, const struct vs_disconnect *d)
{
	struct viesti *v = ctx;
	v->disc_reason = d->reason;
	vs_client_log(v, VIESTI_LOG_WARN, "broker sent DISCONNECT: %s", vs_reason_str(d->reason));
}

static const char *const type_names[] = {
    "RESERVED", "CONNECT",  "CONNACK",	  "PUBLISH", "PUBACK",	    "PUBREC",
    "PUBREL",	"PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
    "PINGREQ",	"PINGRESP", "DISCONNECT", "AUTH",
};

/* One SUBSCRIBE line per filter, as libmosquitto logs them. A packet being sent has its
 * entries in the encode form, or (a resent one) only its bytes. */
static void trace_subscribe(struct viesti *v, const char *id, const struct vs_subscribe *s)
{
	struct vs_sub_entry e;
	size_t pos = 0;
	for (uint32_t k = 0; s->entries ? k < s->count : vs_subscribe_next(s, v->version, &pos, &e);
	     k++) {
		if (s->entries)
			e = s->entries[k];
		int opts = (e.no_local ? 0x04 : 0) | (e.retain_as_published ? 0x08 : 0) |
			   (e.retain_handling << 4);
		vs_client_log(
		    v, VIESTI_LOG_DEBUG,
		    "Client %s sending SUBSCRIBE (Mid: %u, Topic: %.*s, QoS: %d, Options: "
		    "0x%02x)",
		    id, s->packet_id, (int)e.filter.len, (const char *)e.filter.p, e.qos, opts);
	}
}

static void trace_unsubscribe(struct viesti *v, const char *id, const struct vs_unsubscribe *u)
{
	struct vs_buf f;
	size_t pos = 0;
	for (uint32_t k = 0; u->filters ? k < u->count : vs_unsubscribe_next(u, &pos, &f); k++) {
		if (u->filters)
			f = u->filters[k];
		vs_client_log(v, VIESTI_LOG_DEBUG,
			      "Client %s sending UNSUBSCRIBE (Mid: %u, Topic: %.*s)", id,
			      u->packet_id, (int)f.len, (const char *)f.p);
	}
}

/* An acknowledgement, in libmosquitto's words, which differ between the directions. */
static void trace_ack(struct viesti *v, const char *id, bool sent, const char *name,
		      const struct vs_packet *p)
{
	unsigned mid = p->ack.packet_id;
	int rc = p->ack.reason;
	if (!sent && (p->type == VS_PUBACK || p->type == VS_PUBCOMP))
		vs_client_log(v, VIESTI_LOG_DEBUG, "Client %s received %s (Mid: %u, RC:%d)", id,
			      name, mid, rc);
	else if (!sent)
		vs_client_log(v, VIESTI_LOG_DEBUG, "Client %s received %s (Mid: %u)", id, name,
			      mid);
	else if (p->type == VS_PUBACK || p->type == VS_PUBREC)
		vs_client_log(v, VIESTI_LOG_DEBUG, "Client %s sending %s (m%u, rc%d)", id, name,
			      mid, rc);
	else
		vs_client_log(v, VIESTI_LOG_DEBUG, "Client %s sending %s (m%u)", id, name, mid);
}

/*
 * Debug lines in libmosquitto 2.0's wording, which scripts around mosquitto_pub -d already
 * parse. libmosquitto numbers QoS 0 messages too (its message ids count every PUBLISH sent):
 * a QoS 0 PUBLISH is shown with the count of QoS 0 messages sent, which is the same number
 * while a client sends one QoS.
 */
static void ev_trace(void *ctx, bool sent, const struct vs_packet *p)
{
	struct viesti *v = ctx;
	if (v->log_level < VIESTI_LOG_DEBUG || !v->cb.on_log)
		return;
	const char *dir = sent ? "sending" : "received";
	const char *id = v->client_id[0] ? v->client_id : "(null)";
	const char *name = type_names[p->type & 15];
	switch (p->type) {
	case VS_PUBLISH: {
		unsigned mid = p->publish.packet_id;
		if (sent && p->publish.qos == 0)
			mid = ++v->trace_qos0_mid;
		vs_client_log(v, VIESTI_LOG_DEBUG,
			      "Client %s %s PUBLISH (d%d, q%d, r%d, m%u, '%.*s', ... (%zu bytes))",
			      id, dir, p->publish.dup, p->publish.qos, p->publish.retain, mid,
			      (int)p->publish.topic.len, (const char *)p->publish.topic.p,
			      p->publish.payload.len);
		break;
	}
	case VS_CONNACK:
		vs_client_log(v, VIESTI_LOG_DEBUG, "Client %s %s CONNACK (%d)", id, dir,
			      p->connack.reason);
		break;
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		trace_ack(v, id, sent, name, p);
		break;
	case VS_SUBSCRIBE:
		trace_subscribe(v, id, &p->subscribe);
		break;
	case VS_UNSUBSCRIBE:
		trace_unsubscribe(v, id, &p->unsubscribe);
		break;
	case VS_DISCONNECT:
		if (!sent) {
			vs_client_log(v, VIESTI_LOG_DEBUG, "Received DISCONNECT (%d)",
				      p->disconnect.reason);
			break;
		}
		/* fall through */
	default:
		vs_client_log(v, VIESTI_LOG_DEBUG, "Client %s %s %s", id, dir, name);
	}
}

const struct vs_cproto_events vs_client_events = {
    .connack = ev_connack,
    .message = ev_message,
    .published = ev_published,
    .suback = ev_suback,
    .unsuback = ev_unsuback,
    .disconnect = ev_disconnect,
    .trace = ev_trace,
};
