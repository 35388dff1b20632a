/*
 * PUBLISH from a client and the acknowledgement flows in both directions (QoS 1: PUBLISH/PUBACK;
 * QoS 2: PUBLISH/PUBREC/PUBREL/PUBCOMP).
 *
 * Incoming QoS 2 is exactly-once by the session's set of packet ids awaiting PUBREL: a PUBLISH
 * whose id is in the set is acknowledged again but not routed again [MQTT-4.3.3-9].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "base/error.h"
#include "broker/cluster.h"
#include "broker/cluster_js.h"
#include "broker/conn.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "session/session.h"

/* The protocol's checks of an incoming PUBLISH (proto/server.h) and its topic, through the
 * connection's alias table for 5.0. Returns 0, or a reason code to disconnect with. */
static int check_publish(struct vs_conn *c, const struct vs_publish *p, struct vs_buf *topic,
			 const char **why)
{
	struct vs_broker *b = c->w->b;
	struct vs_sproto_pub st = {
	    .version = c->version,
	    .max_qos = (uint8_t)vs_listener_sec(c->listener)->conf->max_qos,
	    .retain_available = b->conf->retain_available,
	    .receive_max = b->receive_max,
	    .in_qos2 = c->in_qos2,
	};
	if (c->version == VS_V5 && p->qos == 2 && c->in_qos2 >= b->receive_max)
		st.id_in_qos2 = vs_session_in_qos2_has(c->session, p->packet_id);
	int rc = vs_sproto_check_publish(&st, p, why);
	if (rc)
		return rc;
	if (c->version < VS_V5) {
		*topic = p->topic;
		return 0;
	}
	rc = vs_alias_in_resolve(&c->in_alias, p, topic);
	if (rc)
		*why = rc == VS_RC_TOPIC_ALIAS_INVALID ? "invalid topic alias"
		       : rc == VS_RC_SERVER_BUSY       ? "out of memory"
						       : "PUBLISH without topic or alias";
	return rc;
}

/* Routes p unless a broker policy drops it, or, when *stamp is not 0 (a QoS 2 resend that
 * JetStream may not have taken: vs_cjs_unsure), only offers it to JetStream again. *stamp: the
 * number a QoS 2 message went to JetStream with (vs_cjs_publish), 0 when it did not. Returns
 * the PUBACK/PUBREC reason code. */
static int route_publish(struct vs_conn *c, const struct vs_publish *p, const struct vs_buf *topic,
			 uint64_t *stamp)
{
	uint64_t again = *stamp;
	*stamp = 0;
	struct vs_broker *b = c->w->b;
	if (b->conf->message_size_limit && p->payload.len > b->conf->message_size_limit) {
		if (vs_conn_log_ok(c))
			vs_logc(b->log, VS_LOG_NOTICE, c->client_id,
				"client %s: dropped PUBLISH to '%.*s' of %zu bytes "
				"(message_size_limit %u)",
				c->client_id, (int)topic->len, topic->p, p->payload.len,
				b->conf->message_size_limit);
		return VS_RC_QUOTA_EXCEEDED;
	}
	if (c->version == VS_V5 && (p->props.present & (1ull << VS_PROP_PAYLOAD_FORMAT)) &&
	    p->props.payload_format == 1 && !vs_utf8_valid(p->payload.p, p->payload.len)) {
		/* [MQTT-3.3.2-4]: the broker may check; a bad payload is refused with 0x99. */
		if (vs_conn_log_ok(c))
			vs_logc(b->log, VS_LOG_NOTICE, c->client_id,
				"client %s: PUBLISH to '%.*s' says UTF-8 but is not", c->client_id,
				(int)topic->len, topic->p);
		return VS_RC_PAYLOAD_FORMAT_INVALID;
	}
	if (vs_sys_reserved(topic->p, topic->len))
		return VS_RC_NOT_AUTHORIZED; /* $SYS belongs to the broker */
	const struct vs_acl *acl = vs_listener_sec(c->listener)->acl;
	if (acl && !vs_acl_check(acl, c->client_id, c->username, (const char *)topic->p, topic->len,
				 VS_ACL_WRITE)) {
		if (vs_conn_log_ok(c))
			vs_logc(b->log, VS_LOG_INFO, c->client_id,
				"denied PUBLISH from client %s to '%.*s' (ACL)", c->client_id,
				(int)topic->len, topic->p);
		return VS_RC_NOT_AUTHORIZED;
	}
	struct vs_buf origin = {(const uint8_t *)c->client_id, strlen(c->client_id)};
	struct vs_mounted full; /* the topic under the listener's mount_point */
	struct vs_msg *m = NULL;
	if (vs_mount(c->listener, topic, false, &full) == 0)
		m = vs_msg_new(&full.buf, p, &origin, c->w->now_ms);
	vs_mounted_fini(&full);
	if (m && m->retain && b->conf->check_retain_source &&
	    vs_msg_set_source(m, (int)(c->listener - b->listeners), c->client_id, c->username) <
		0) {
		vs_msg_unref(m);
		m = NULL;
	}
	if (!m)
		return VS_RC_SERVER_BUSY;
	if (c->version < VS_V5)
		m->has_expiry = false;
	if (again) {
		int rc = vs_cluster_republish(c->w, m, again);
		vs_msg_unref(m);
		if (rc < 0)
			return VS_RC_SERVER_BUSY;
		*stamp = again;
		return VS_RC_SUCCESS;
	}
	c->w->congested_on = NULL;
	bool q2 = b->cluster && p->qos == 2;
	if (q2)
		vs_cjs_tried(c->w); /* cleared: set again should m go to JetStream */
	int n = vs_route(c->w, m, c->session);
	/* Also when the publish failed at once: the commit fails, and the resend must go. */
	*stamp = q2 ? vs_cjs_tried(c->w) : 0;
	vs_msg_unref(m);
	if (c->w->congested_on) {
		/* A subscriber's queue is full: read this publisher again when it drains, or in a
		 * moment, waiting longer each time it happens again (1, 2, 4 ... 256 ms), so many
		 * publishers feeding one slow subscriber settle at its pace. */
		c->throttle_ms = c->throttle_ms ? c->throttle_ms * 2 : 1;
		if (c->throttle_ms > 256)
			c->throttle_ms = 256;
		/* The back-off doubles for every message that finds the queue full, also those
		 * read before the pause begins: it climbs as fast as the publisher overruns. */
		if (vs_conn_throttle(c, c->w->now_ms + c->throttle_ms, c->w->congested_on))
			vs_stat_add(&c->w->stats.pub_slowed, 1);
		c->w->congested_on = NULL;
	} else if (c->throttle_ms) {
		c->throttle_ms /= 2;
	}
	return n > 0 || c->version < VS_V5 ? VS_RC_SUCCESS : VS_RC_NO_MATCHING_SUBSCRIBERS;
}

/*
 * A topic deeper than max_topic_levels: every level costs a node in the retained store and the
 * trie, so depth is bounded. 5.0 is told "Topic Name invalid" (0x90: well formed, but not
 * accepted by this server) in its acknowledgement; 3.x has no way to be told, so, as Mosquitto
 * does, the connection is closed rather than the message silently acknowledged and dropped.
 */
static enum vs_handled refuse_deep(struct vs_conn *c, const struct vs_publish *p,
				   const struct vs_buf *topic)
{
	struct vs_broker *b = c->w->b;
	char why[96];
	snprintf(why, sizeof(why), "PUBLISH to a topic of more than %d levels (max_topic_levels)",
		 b->conf->max_topic_levels);
	if (c->version < VS_V5) {
		vs_conn_close(c, -1, why);
		return VS_CLOSED;
	}
	if (vs_conn_log_ok(c))
		vs_logc(b->log, VS_LOG_NOTICE, c->client_id, "client %s: %s, refused", c->client_id,
			why);
	if (p->qos == 0)
		return VS_GO_ON;
	return vs_conn_reply_ack(c, p->qos == 1 ? VS_PUBACK : VS_PUBREC, p->packet_id,
				 VS_RC_TOPIC_NAME_INVALID);
}

/* An incoming QoS 2 exchange ends (its PUBREL, or a failure): its id is free again
 * [MQTT-4.3.3-9], and, in a cluster, not offered to JetStream again whatever JetStream did
 * with it (the client does not send it again). Returns whether the id was held. */
static bool end_in_qos2(struct vs_conn *c, uint16_t pid)
{
	pthread_mutex_lock(&c->session->lock);
	bool had = vs_session_in_qos2_del(c->session, pid);
	if (had)
		vs_bp_inqos2(c->w, c->session, pid, false);
	pthread_mutex_unlock(&c->session->lock);
	if (had && c->in_qos2)
		c->in_qos2--;
	if (had && c->w->b->cluster)
		vs_cjs_unsure(c->w, c->session, pid);
	return had;
}

enum vs_handled vs_on_publish(struct vs_conn *c, const struct vs_publish *p)
{
	struct vs_buf topic;
	const char *why = "";
	vs_stat_add(&c->w->stats.pub_received, 1);
	vs_stat_add(&c->w->stats.pub_bytes_received, p->payload.len);
	int rc = check_publish(c, p, &topic, &why);
	if (rc) {
		vs_conn_close(c, rc, why);
		return VS_CLOSED;
	}
	if (vs_topic_too_deep(topic.p, topic.len, c->w->b->conf->max_topic_levels))
		return refuse_deep(c, p, &topic);
	bool no_memory = atomic_load_explicit(&c->w->b->over_memory, memory_order_relaxed);
	if (p->qos > 0 && (no_memory || !vs_bp_healthy(c->w->b))) {
		/* The store cannot take it, or memory_limit is reached: do not acknowledge what
		 * would not be kept. 3.x cannot be told: the connection ends, and its client sends
		 * the message again after it reconnects. */
		const char *refusal = no_memory ? "memory_limit reached, QoS 1/2 refused"
						: "persistence unavailable, QoS 1/2 refused";
		if (c->version < VS_V5) {
			vs_conn_close(c, -1, refusal);
			return VS_CLOSED;
		}
		if (p->qos == 2)
			end_in_qos2(c, p->packet_id); /* held from an earlier try: free now */
		return vs_conn_reply_ack(c, p->qos == 1 ? VS_PUBACK : VS_PUBREC, p->packet_id,
					 VS_RC_QUOTA_EXCEEDED);
	}
	uint64_t stamp = 0;
	if (p->qos == 2) {
		struct vs_session *s = c->session;
		pthread_mutex_lock(&s->lock);
		int added = vs_session_in_qos2_add(s, p->packet_id);
		if (added > 0)
			vs_bp_inqos2(c->w, s, p->packet_id, true);
		pthread_mutex_unlock(&s->lock);
		if (added < 0) {
			vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
			return VS_CLOSED;
		}
		if (added == 0) {
			/* A resend before PUBREL: acknowledged, not routed again. In a cluster,
			 * unless JetStream may not have taken the first (cluster_js.h): offered to
			 * it again. */
			stamp = c->w->b->cluster ? vs_cjs_unsure(c->w, s, p->packet_id) : 0;
			if (!stamp)
				return vs_conn_reply_ack(c, VS_PUBREC, p->packet_id, 0);
		} else {
			c->in_qos2++;
		}
	}
	uint64_t again = stamp;
	rc = route_publish(c, p, &topic, &stamp);
	if (again && rc == VS_RC_SERVER_BUSY) {
		/* Not offered again (no memory, JetStream refused it again): kept for the next
		 * resend. A resend refused for good (its topic, size or the ACLs, say after a
		 * reload) is answered below with the reason, as a first send would be: kept, it
		 * would close the client at every reconnect. */
		vs_cjs_unsure_keep(c->w, c->session, p->packet_id, again);
		vs_conn_close(c, VS_RC_SERVER_BUSY, "cannot offer a QoS 2 resend to JetStream");
		return VS_CLOSED;
	}
	rc = vs_sproto_ack_reason(c->version, rc);
	if (p->qos == 1)
		return vs_conn_reply_ack(c, VS_PUBACK, p->packet_id, (uint8_t)rc);
	if (p->qos == 2) {
		if (rc < 0x80 && stamp &&
		    vs_cjs_q2_published(c->w, c->session, p->packet_id, stamp) < 0)
			rc = VS_RC_SERVER_BUSY; /* routed here: at least once, should it come again
						 */
		if (rc >= 0x80)
			end_in_qos2(c, p->packet_id);
		return vs_conn_reply_ack(c, VS_PUBREC, p->packet_id, (uint8_t)rc);
	}
	return VS_GO_ON;
}

static enum vs_handled on_pubrel(struct vs_conn *c, const struct vs_ack *a)
{
	bool had = end_in_qos2(c, a->packet_id);
	/* [MQTT-4.3.3-11] PUBCOMP with the same id; 5.0 says 0x92 when it was unknown. */
	return vs_conn_reply_ack(c, VS_PUBCOMP, a->packet_id,
				 vs_sproto_pubcomp_reason(c->version, had));
}

/* PUBACK, PUBREC, PUBCOMP: progress of a message we sent. */
static enum vs_handled on_outgoing_ack(struct vs_conn *c, int type, const struct vs_ack *a)
{
	struct vs_session *s = c->session;
	bool send_rel = false, more = false;
	uint64_t journal = 0; /* the stream sequence to journal (below), after the lock */
	struct vs_qentry done;
	bool finished = false, done_persisted = false;
	pthread_mutex_lock(&s->lock);
	int i = vs_session_find_inflight(s, a->packet_id);
	if (i >= 0 && s->conn == c) {
		struct vs_qentry *e = vs_ring_at(&s->inflight, (uint32_t)i);
		uint8_t was = e->state;
		enum vs_ack_action act = vs_sproto_outgoing_ack(&e->state, type, a->reason);
		if (act == VS_ACK_RELEASE && was != e->state) {
			/* Kept (not resent) after its PUBREC only so that the store can name it. */
			vs_bp_queue(c->w, s, e);
			/* In a cluster, a message of the stream to a session that a node could
			 * rebuild after this node's death: its PUBREL waits until the PUBREC is in
			 * JetStream's journal, so that the rebuild sends the PUBREL, not the
			 * message [MQTT-4.3.3]. */
			if (e->msg && e->msg->sseq && s->keyed)
				journal = e->msg->sseq;
		}
		send_rel = act == VS_ACK_RELEASE;
		if (act == VS_ACK_DONE) {
			done = *e;
			finished = true;
			done_persisted = s->persisted;
			vs_ring_remove(&s->inflight, (uint32_t)i);
			vs_stat_gauge(&c->w->stats.inflight, -1);
		}
		more = s->queue.count > 0 || vs_feed_len(s) > 0;
	}
	pthread_mutex_unlock(&s->lock);
	/* The delivery is done: its record and its release (the message's last reference, often
	 * freed into another thread's arena) wait for no lock the publisher's thread takes. */
	if (finished) {
		if (done_persisted)
			vs_bp_dequeued(c->w, s, &done);
		vs_qentry_fini(&done);
	}
	/* Not under the lock: a publish may wait for room among those in flight. */
	if (journal)
		vs_cjs_received(c->w, s->client_id, s->id_len, journal);
	if (send_rel && vs_conn_reply_ack(c, VS_PUBREL, a->packet_id, 0) == VS_CLOSED)
		return VS_CLOSED;
	if (more)
		vs_worker_want_drain(c->w, s);
	return VS_GO_ON;
}

enum vs_handled vs_on_ack(struct vs_conn *c, int type, const struct vs_ack *a)
{
	if (type == VS_PUBREL)
		return on_pubrel(c, a);
	return on_outgoing_ack(c, type, a);
}
