/*
 * SUBSCRIBE and UNSUBSCRIBE: the trie, the session's own list, SUBACK/UNSUBACK, and retained
 * messages for new subscriptions (after the SUBACK, per Retain Handling).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "auth/acl.h"
#include "broker/cluster.h"
#include "broker/cluster_session.h"
#include "broker/conn.h"
#include "broker/mount.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "session/session.h"
#include "topic/retain.h"
#include "topic/tree.h"

#define MAX_ENTRIES_ON_STACK 64

/* The retained messages matching a new subscription, collected (with a reference each) under
 * the store's lock and handed to the session's feed after it: the store's lock comes before a
 * session's, never inside it. */
struct retained_ctx {
	struct vs_msg **v;
	size_t n, cap;
	size_t max;	/* take no more than this (the feed's limit) */
	size_t skipped; /* matches over max, or that could not be stored */
};

static void collect_retained(void *ctx, void *msg)
{
	struct retained_ctx *r = ctx;
	if (r->n < r->max)
		VS_VEC_GROW(r->v, r->cap, r->n + 1, 64); /* on failure, skipped below */
	if (r->n == r->cap || r->n >= r->max) {
		r->skipped++;
		return;
	}
	r->v[r->n++] = vs_msg_ref(msg);
}

/* Subscribes one entry; returns the SUBACK code, and *is_new. */
static uint8_t subscribe_one(struct vs_conn *c, const struct vs_sub_entry *e, uint32_t sub_id,
			     bool *is_new)
{
	struct vs_broker *b = c->w->b;
	*is_new = false;
	uint8_t qos;
	enum vs_sub_verdict v =
	    vs_sproto_check_sub(c->version, e, vs_listener_sec(c->listener)->conf->max_qos,
				b->conf->max_topic_levels, &qos);
	if (v == VS_SUB_PROTOCOL)
		return 0xFF; /* [MQTT-3.8.3-4] protocol error, handled by the caller */
	if (v == VS_SUB_REFUSED) {
		if (vs_conn_log_ok(c))
			vs_logc(b->log, VS_LOG_NOTICE, c->client_id,
				"client %s: SUBSCRIBE to a filter of more than %d "
				"levels (max_topic_levels), refused",
				c->client_id, b->conf->max_topic_levels);
		return qos;
	}
	struct vs_sub sub = {.owner = c->session,
			     .sub_id = sub_id,
			     .qos = qos,
			     .no_local = e->no_local || c->bridge,
			     .retain_as_published = e->retain_as_published || c->bridge,
			     .retain_handling = e->retain_handling};
	int rc = vs_router_sub_add(b, (const char *)e->filter.p, e->filter.len, &sub);
	if (rc < 0)
		return VS_RC_UNSPECIFIED;
	*is_new = rc == 1;
	uint8_t opts =
	    (uint8_t)(e->qos | ((e->no_local || c->bridge) << 2) |
		      ((e->retain_as_published || c->bridge) << 3) | (e->retain_handling << 4));
	pthread_mutex_lock(&c->session->lock);
	if (c->session->ended) {
		/* Ended meanwhile by a clean-start take-over: vs_router_end_session() has (or will
		 * have) missed this subscription, so it is undone here. */
		pthread_mutex_unlock(&c->session->lock);
		vs_router_sub_remove(b, (const char *)e->filter.p, e->filter.len, c->session);
		return VS_RC_UNSPECIFIED;
	}
	rc = vs_session_sub_add(c->session, (const char *)e->filter.p, e->filter.len, qos, opts,
				sub_id);
	if (rc >= 0)
		vs_bp_sub(c->w, c->session, (const char *)e->filter.p, e->filter.len, qos, opts,
			  sub_id);
	pthread_mutex_unlock(&c->session->lock);
	if (rc < 0) {
		vs_router_sub_remove(b, (const char *)e->filter.p, e->filter.len, c->session);
		return VS_RC_UNSPECIFIED;
	}
	if (vs_log_enabled(b->log, VS_LOG_SUBSCRIBE) && b->log->mosquitto)
		vs_log(b->log, VS_LOG_SUBSCRIBE, "%s %u %.*s", c->client_id, qos,
		       (int)e->filter.len, e->filter.p); /* Mosquitto's line */
	else if (vs_log_enabled(b->log, VS_LOG_SUBSCRIBE))
		vs_logc(b->log, VS_LOG_SUBSCRIBE, c->client_id,
			"client %s subscribed to '%.*s' QoS %u", c->client_id, (int)e->filter.len,
			e->filter.p, qos);
	return qos;
}

/*
 * check_retain_source (Mosquitto): a retained message goes to a new subscriber only while its
 * publisher may still publish it, by the publisher's listener's ACL as of now (a reload may
 * have taken the right away), matched against the topic as the publisher saw it. A message
 * without a recorded source ($SYS, or restored from disk, whose records do not keep the
 * publisher's username) is not checked.
 */
static bool source_may_publish(const struct vs_broker *b, const struct vs_msg *m)
{
	const struct vs_msg_source *src = m->source;
	if (!b->conf->check_retain_source || !src || src->listener < 0 ||
	    (size_t)src->listener >= vs_broker_listeners(b))
		return true;
	const struct vs_listener *l = &b->listeners[src->listener];
	const struct vs_acl *acl = vs_listener_sec(l)->acl;
	if (!acl)
		return true;
	long skip = vs_mount_strip(l, m->topic.p, m->topic.len);
	if (skip < 0)
		skip = 0;
	return vs_acl_check(acl, src->client_id, src->username, (const char *)m->topic.p + skip,
			    m->topic.len - (size_t)skip, VS_ACL_WRITE);
}

/* Keeps the messages of r whose publishers may still publish them; returns how many went. */
static size_t keep_publishable(const struct vs_broker *b, struct retained_ctx *r)
{
	size_t kept = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (source_may_publish(b, r->v[i]))
			r->v[kept++] = r->v[i];
		else
			vs_msg_unref(r->v[i]);
	}
	size_t dropped = r->n - kept;
	r->n = kept;
	return dropped;
}

static void retained_for(struct vs_conn *c, const struct vs_sub_entry *e, uint8_t granted,
			 uint32_t sub_id, bool is_new)
{
	/* Retain Handling [MQTT-3.3.1-9..11]; none for shared ones (5.0 3.3.1.3: not numbered). */
	if (granted >= 0x80 || vs_sproto_is_shared(&e->filter) || e->retain_handling == 2 ||
	    (e->retain_handling == 1 && !is_new))
		return;
	struct vs_broker *b = c->w->b;
	int max = b->conf->max_retained_feed;
	struct retained_ctx r = {.max = max > 0 ? (size_t)max : SIZE_MAX};
	vs_retain_match(b->retain, (const char *)e->filter.p, e->filter.len, collect_retained, &r);
	size_t denied = keep_publishable(b, &r);
	if (denied && vs_conn_log_ok(c))
		vs_logc(b->log, VS_LOG_INFO, c->client_id,
			"client %s: %zu retained message(s) for '%.*s' not sent: "
			"their publishers may no longer publish them (check_retain_source)",
			c->client_id, denied, (int)e->filter.len, e->filter.p);
	if (r.n)
		vs_feed_retained(c->w, c->session, r.v, r.n, granted, sub_id);
	free(r.v);
	if (r.skipped && vs_conn_log_ok(c))
		vs_logc(b->log, VS_LOG_NOTICE, c->client_id,
			"client %s: %zu retained message(s) for '%.*s' not "
			"sent: more than max_retained_feed (%d)",
			c->client_id, r.skipped, (int)e->filter.len, e->filter.p, max);
}

/* e's filter under the connection's mount_point; m holds the bytes. Returns 0 or -ENOMEM. */
static int mount_entry(struct vs_conn *c, struct vs_sub_entry *e, struct vs_mounted *m)
{
	int rc = vs_mount(c->listener, &e->filter, true, m);
	e->filter = m->buf;
	return rc;
}

/* In a cluster, a session that outlives its connection has its subscriptions in its key, for
 * another node to rebuild it should this one die (cluster_session.h). */
static void note_cluster(struct vs_conn *c)
{
	if (c->w->b->cluster && c->session_expiry > 0 && !c->bridge)
		vs_cluster_session_note(c->w->b, c->client_id, strlen(c->client_id), false);
}

/* The entry of connection c's held replies, or NULL (scanned from the newest). */
static struct vs_held_reply *held_of(struct vs_worker *w, const struct vs_conn *c)
{
	for (uint32_t i = w->n_replies; c->acks_held && i-- > 0;)
		if (w->replies[i].slot == c->slot && w->replies[i].conn_id == c->id &&
		    !w->replies[i].connect)
			return &w->replies[i];
	return NULL;
}

/* Posts VS_MAIL_HELD to w itself when x may be due already: its ticket confirmed, or its group
 * bound before x was there to be told (the group's mail went out then). */
static void look_again(struct vs_worker *w, const struct vs_held_reply *x)
{
	bool due = x->ticket == VS_HELD_GROUP
		       ? vs_cluster_share_wait(w->b, x->share, strlen(x->share)) != VS_HELD_GROUP
		       : !vs_cluster_barrier_await(w->b, w->idx, x->ticket);
	if (due) { /* released with the others, after this packet */
		struct vs_mail m = {.type = VS_MAIL_HELD};
		vs_worker_post(w, w->idx, &m);
	}
}

/*
 * Sends reply p, or holds it for the cluster's barrier (cluster_interest.h): a SUBACK granting
 * QoS 1/2 waits until the other nodes know its subjects (ticket), or a shared group's
 * consumers are bound (share), so that a QoS 1/2 message published on another node after the
 * SUBACK goes through JetStream to it. A connection's held replies are one entry: a later
 * SUBACK or UNSUBACK joins it and they go out together, in order, once all they wait for is
 * there (a client that sends 100,000 SUBSCRIBEs costs one entry). The server is permitted to
 * send PUBLISH packets of the new subscription before its SUBACK (MQTT 3.1.1 and 5.0, section
 * 3.8.4): they, and its retained messages, may come first.
 */
static enum vs_handled reply_in_order(struct vs_conn *c, const struct vs_packet *p, uint64_t ticket,
				      const char *share)
{
	struct vs_worker *w = c->w;
	struct vs_held_reply *x = held_of(w, c);
	if (!x && !ticket && !share)
		return vs_conn_reply(c, p);
	size_t had = vs_bytes_avail(&c->out);
	enum vs_handled h = vs_conn_reply(c, p);
	if (h != VS_GO_ON)
		return h;
	if (!x) {
		if (VS_VEC_GROW(w->replies, w->cap_replies, w->n_replies + 1, 8) < 0)
			return VS_GO_ON; /* no memory: sent now */
		x = &w->replies[w->n_replies++];
		*x = (struct vs_held_reply){
		    .since_ms = w->now_ms, .conn_id = c->id, .slot = c->slot};
		c->acks_held = true;
	}
	/* The reply's bytes move from the end of the output to the entry. */
	size_t n = vs_bytes_avail(&c->out) - had;
	if (vs_bytes_append(&x->out, c->out.data + c->out.len - n, n) < 0) {
		vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
		return VS_CLOSED; /* its entry goes with the connection (vs_release_held) */
	}
	c->out.len -= n;
	if (ticket > x->after)
		x->after = ticket;
	if (share && !x->share)
		x->share = strdup(share); /* without memory: its subjects' ticket only */
	x->ticket = x->share ? VS_HELD_GROUP : x->after;
	look_again(w, x);
	return VS_GO_ON;
}

bool vs_hold_connect(struct vs_conn *c, uint64_t ticket)
{
	struct vs_worker *w = c->w;
	if (!ticket || VS_VEC_GROW(w->replies, w->cap_replies, w->n_replies + 1, 8) < 0)
		return false;
	w->replies[w->n_replies++] = (struct vs_held_reply){.ticket = ticket,
							    .since_ms = w->now_ms,
							    .conn_id = c->id,
							    .slot = c->slot,
							    .connect = true};
	c->connecting->step = VS_CS_BARRIER;
	c->parked = true;
	if (vs_cluster_barrier_await(w->b, w->idx, ticket))
		return true;
	w->n_replies--; /* confirmed meanwhile */
	return false;
}

/* Whether r may go: what it waits for is there, or it waited VS_HELD_MAX_MS (*late). */
static bool due(struct vs_worker *w, struct vs_held_reply *r, bool *late)
{
	if (r->ticket == VS_HELD_GROUP) { /* its group bound yet? */
		uint64_t t = vs_cluster_share_wait(w->b, r->share, strlen(r->share));
		if (t != VS_HELD_GROUP) {
			r->ticket = t > r->after ? t : r->after; /* 0: nothing more */
			free(r->share);
			r->share = NULL;
		}
	}
	*late = false;
	if (vs_cluster_barrier_confirmed(w->b, r->ticket))
		return true;
	*late = w->now_ms - r->since_ms >= VS_HELD_MAX_MS;
	return *late;
}

void vs_release_held(struct vs_worker *w)
{
	for (;;) {
		/* The due entries leave the list first: resuming a CONNECT reads its input, whose
		 * SUBSCRIBEs may hold more replies. */
		struct vs_held_reply *go = NULL;
		uint32_t n_go = 0, cap_go = 0, k = 0, n_late = 0;
		uint64_t low = 0; /* the lowest ticket still waited for (a group's: its mail) */
		for (uint32_t i = 0; i < w->n_replies; i++) {
			struct vs_held_reply *r = &w->replies[i];
			bool late;
			if (due(w, r, &late) && VS_VEC_GROW(go, cap_go, n_go + 1, 8) == 0) {
				n_late += late;
				go[n_go++] = *r;
				continue;
			}
			if (r->ticket != VS_HELD_GROUP && (!low || r->ticket < low))
				low = r->ticket;
			w->replies[k++] = *r;
		}
		w->n_replies = k;
		if (n_late)
			vs_log(w->b->log, VS_LOG_WARN,
			       "cluster: %u connection(s) held %d s for the other nodes to know "
			       "their subscriptions get their replies without it",
			       n_late, VS_HELD_MAX_MS / 1000);
		for (uint32_t i = 0; i < n_go; i++) {
			struct vs_held_reply *r = &go[i];
			struct vs_conn *c = vs_worker_conn(w, r->slot, r->conn_id);
			if (c && c->state == VS_CONN_CLOSING)
				c = NULL;
			if (c && r->connect) {
				if (c->connecting && c->connecting->step == VS_CS_BARRIER)
					vs_cluster_session_resume(c);
			} else if (c) {
				c->acks_held = false;
				if (vs_bytes_append(&c->out, vs_bytes_head(&r->out),
						    vs_bytes_avail(&r->out)) == 0)
					vs_worker_want_flush(w, c);
				else
					vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
			}
			vs_bytes_fini(&r->out);
			free(r->share);
		}
		free(go);
		if (!low || vs_cluster_barrier_await(w->b, w->idx, low))
			return;
		if (n_go == 0) { /* confirmed, yet nothing went (no memory): next turn */
			struct vs_mail m = {.type = VS_MAIL_HELD};
			vs_worker_post(w, w->idx, &m);
			return;
		}
	}
}

enum vs_handled vs_on_subscribe(struct vs_conn *c, const struct vs_subscribe *p)
{
	uint8_t stack_codes[MAX_ENTRIES_ON_STACK];
	uint8_t *codes = p->count <= MAX_ENTRIES_ON_STACK ? stack_codes : malloc(p->count);
	if (!codes) {
		vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
		return VS_CLOSED;
	}
	uint32_t sub_id = (p->props.present & (1ull << VS_PROP_SUB_ID)) ? p->props.sub_id : 0;
	size_t pos = 0;
	struct vs_sub_entry e;
	bool news[MAX_ENTRIES_ON_STACK] = {0};
	vs_router_sub_ticket(); /* from 0 */
	char *group = NULL;
	uint64_t group_ticket = 0;
	for (uint32_t i = 0; vs_subscribe_next(p, c->version, &pos, &e); i++) {
		bool is_new = false;
		struct vs_mounted m;
		codes[i] = mount_entry(c, &e, &m) < 0 ? VS_RC_UNSPECIFIED
						      : subscribe_one(c, &e, sub_id, &is_new);
		/* A shared group's QoS 1/2 goes through JetStream once its consumers are bound:
		 * its SUBACK waits for that, and for the other nodes to know (cluster_share.h). */
		if ((codes[i] == 1 || codes[i] == 2) && e.filter.len > 7 &&
		    memcmp(e.filter.p, "$share/", 7) == 0) {
			uint64_t t =
			    vs_cluster_share_wait(c->w->b, (const char *)e.filter.p, e.filter.len);
			if (t == VS_HELD_GROUP && !group)
				group = strndup((const char *)e.filter.p, e.filter.len);
			else if (t != VS_HELD_GROUP && t > group_ticket)
				group_ticket = t;
		}
		vs_mounted_fini(&m);
		if (codes[i] == 0xFF) {
			if (codes != stack_codes)
				free(codes);
			free(group);
			vs_conn_close(c, VS_RC_PROTOCOL_ERROR, "shared subscription with No Local");
			return VS_CLOSED;
		}
		if (i < MAX_ENTRIES_ON_STACK)
			news[i] = is_new;
	}
	note_cluster(c);
	struct vs_packet a = {.type = VS_SUBACK};
	a.suback.packet_id = p->packet_id; /* [MQTT-3.8.4-2] */
	a.suback.count = p->count;	   /* [MQTT-3.8.4-6] one code per filter */
	a.suback.codes = codes;
	bool durable = false;
	for (uint32_t i = 0; i < p->count; i++)
		durable |= codes[i] == 1 || codes[i] == 2;
	/* Its subjects' writes to vs_interest, if the other nodes may not know them yet. */
	uint64_t ticket = vs_cluster_barrier_due(c->w->b, vs_router_sub_ticket());
	if (!durable)
		ticket = 0;
	if (group_ticket > ticket)
		ticket = group_ticket;
	enum vs_handled h = reply_in_order(c, &a, ticket, group);
	free(group);
	pos = 0;
	for (uint32_t i = 0; h == VS_GO_ON && vs_subscribe_next(p, c->version, &pos, &e); i++) {
		struct vs_mounted m;
		if (mount_entry(c, &e, &m) == 0)
			retained_for(c, &e, codes[i], sub_id,
				     i < MAX_ENTRIES_ON_STACK ? news[i] : true);
		vs_mounted_fini(&m);
	}
	if (codes != stack_codes)
		free(codes);
	return h;
}

enum vs_handled vs_on_unsubscribe(struct vs_conn *c, const struct vs_unsubscribe *p)
{
	struct vs_broker *b = c->w->b;
	uint8_t stack_codes[MAX_ENTRIES_ON_STACK];
	uint8_t *codes = p->count <= MAX_ENTRIES_ON_STACK ? stack_codes : malloc(p->count);
	if (!codes) {
		vs_conn_close(c, VS_RC_SERVER_BUSY, "out of memory");
		return VS_CLOSED;
	}
	size_t pos = 0;
	struct vs_buf f;
	for (uint32_t i = 0; vs_unsubscribe_next(p, &pos, &f); i++) {
		struct vs_mounted m;
		if (vs_mount(c->listener, &f, true, &m) < 0) {
			vs_mounted_fini(&m);
			codes[i] = VS_RC_UNSPECIFIED;
			continue;
		}
		f = m.buf;
		int had = vs_router_sub_remove(b, (const char *)f.p, f.len, c->session);
		pthread_mutex_lock(&c->session->lock);
		if (vs_session_sub_del(c->session, (const char *)f.p, f.len))
			vs_bp_unsub(c->w, c->session, (const char *)f.p, f.len);
		pthread_mutex_unlock(&c->session->lock);
		codes[i] = had > 0 ? VS_RC_SUCCESS : VS_RC_NO_SUBSCRIPTION_EXISTED;
		if (vs_log_enabled(b->log, VS_LOG_UNSUBSCRIBE))
			vs_logc(b->log, VS_LOG_UNSUBSCRIBE, c->client_id,
				b->log->mosquitto ? "%s %.*s" /* Mosquitto's line */
						  : "client %s unsubscribed from '%.*s'",
				c->client_id, (int)f.len, f.p);
		vs_mounted_fini(&m);
	}
	note_cluster(c);
	struct vs_packet a = {.type = VS_UNSUBACK};
	a.suback.packet_id = p->packet_id; /* [MQTT-3.10.4-4] */
	a.suback.count = c->version == VS_V5 ? p->count : 0;
	a.suback.codes = codes;
	enum vs_handled h = reply_in_order(c, &a, 0, NULL);
	if (codes != stack_codes)
		free(codes);
	return h;
}
