/* Client ids claimed across the cluster (see cluster_claim.h). */
#include "broker/cluster_claim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/cluster_nats.h"
#include "broker/cluster_session.h"
#include "cluster/claim.h"
#include "cluster/cluster.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "session/session.h"

void vs_cluster_claim(struct vs_broker *b, const struct vs_conn *c, bool clean)
{
	if (!b->cluster || !c->client_id)
		return;
	natsConnection *nc = vs_cluster_nc(b);
	if (!nc)
		return;
	char buf[VS_CLUSTER_NODE_MAX + 48 + 65536];
	size_t idlen = strlen(c->client_id);
	int64_t ms = c->connected_wall * 1000 + c->connected_msec;
	int n =
	    vs_claim_encode(buf, sizeof(buf), vs_cluster_node(b), clean, ms, c->client_id, idlen);
	/* Not connected to NATS: the claim is lost, and a connection elsewhere with this id
	 * stays until its client goes (docs/cluster.md). */
	if (n > 0)
		natsConnection_Publish(nc, VS_CLAIM_SUBJECT, buf, n);
}

void vs_cluster_claim_received(struct vs_broker *b, const char *me, const char *data, size_t len)
{
	struct vs_claim cm;
	if (vs_claim_decode(data, len, &cm) < 0) {
		vs_log(b->log, VS_LOG_WARN, "cluster: a malformed client-id claim dropped");
		return;
	}
	if (cm.node_len == strlen(me) && memcmp(cm.node, me, cm.node_len) == 0)
		return;
	struct vs_worker *ow = NULL;
	uint32_t slot = 0;
	uint64_t id = 0;
	bool end_here = false;
	pthread_mutex_lock(&b->reg_lock);
	struct vs_session *s = vs_registry_get(&b->sessions, cm.client_id, cm.id_len);
	if (s) {
		pthread_mutex_lock(&s->lock);
		const struct vs_conn *c = s->conn;
		/* connected_wall and connected_msec are read under the session's lock (conn.h). */
		if (s->connected && !s->bridge && c &&
		    vs_claim_wins(cm.wall_ms, cm.node, cm.node_len,
				  c->connected_wall * 1000 + c->connected_msec, me)) {
			ow = s->owner;
			slot = s->conn_slot;
			id = s->conn_id;
		}
		/* A clean start elsewhere ends the session an earlier connection left here
		 * [MQTT-3.1.2-4], as one node would (its will, if delayed, goes now). */
		end_here = !s->connected && !s->bridge && cm.clean;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&b->reg_lock);
	if (end_here)
		vs_cluster_session_end(b, cm.client_id, cm.id_len);
	if (!ow)
		return;
	vs_log(b->log, VS_LOG_INFO, "cluster: client %.*s connected on node %.*s: closing it here",
	       (int)cm.id_len, cm.client_id, (int)cm.node_len, cm.node);
	/* A new connection that resumes its session is a reconnection: no will, as on one node
	 * (connect.c takeover_first); one that starts clean ends the session here. */
	struct vs_mail m = {.type = VS_MAIL_TAKEOVER,
			    .reason = !cm.clean,
			    .end_session = cm.clean, /* [MQTT-3.1.2-4]: its will goes */
			    .slot = slot,
			    .conn_id = id,
			    .reply_to = -1};
	vs_worker_post_now(ow, &m);
}
