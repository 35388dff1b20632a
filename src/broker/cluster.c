/* The broker's side of the cluster (see cluster.h). */
#include "broker/cluster.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/map.h"
#include "broker/broker.h"
#include "broker/cluster_claim.h"
#include "broker/cluster_interest.h"
#include "broker/cluster_nats.h"
#include "broker/cluster_retain.h"
#include "broker/cluster_session.h"
#include "broker/cluster_share.h"
#include "broker/cluster_js.h"
#include "broker/router.h"
#include "broker/worker.h"
#include "cluster/cluster.h"
#include "session/msg.h"
#include "session/session.h"

/* Longest subject sent: NATS limits a protocol line (4 KiB by default); longer topics go to
 * LONG_SUBJECT, which every node takes, and filters whose subjects would be longer take every
 * subject. */
#define SUBJECT_MAX  1024
#define LONG_SUBJECT "vs.l"
#define ALL_SUBJECTS VS_CLUSTER_PREFIX ".>"
/* Each node says it is there every HEARTBEAT_MS ("GROUPS NODE": its shared groups, its id);
 * nodes not heard from for NODE_GONE_MS are no longer counted. */
#define HEARTBEAT    "vs.hb"
#define HEARTBEAT_MS 2000
#define NODE_GONE_MS 10000

struct interest {
	unsigned refs;
	natsSubscription *sub;
	uint64_t noted; /* the ticket of its write to vs_interest (cluster_interest.h) */
};

struct vs_cluster {
	struct vs_broker *b;
	natsOptions *opts;
	natsConnection *nc;
	char node[VS_CLUSTER_NODE_MAX + 1];
	atomic_uint_fast64_t seq;
	pthread_mutex_t lock;
	struct vs_map interest; /* subject -> struct interest * */
	struct vs_map last;	/* origin node -> last sequence number seen (as a pointer) */
	natsSubscription *long_sub;
	natsConnection *share_nc; /* publishes share copies (echo on: see cluster_share.h) */
	jsCtx *js;		  /* the connection's one JetStream context */
	struct vs_cjs *cjs;	  /* QoS 1/2 in JetStream, leases and wills (cluster_js.h) */
	struct vs_cluster_interest *remote; /* other nodes' subjects (cluster_interest.h) */
	struct vs_cluster_retain *retain;
	struct vs_cluster_share *share;
	struct vs_cluster_sessions *sessions; /* roaming sessions (cluster_session.h) */
	atomic_bool connected;
	atomic_uint_fast64_t sent, received;
	atomic_int_fast64_t rtt_us;
	natsSubscription *hb_sub;
	natsSubscription *claim_sub; /* client ids connected on other nodes (cluster_claim.h) */
	struct vs_map nodes;	     /* node id -> struct peer * (under lock) */
	pthread_t tick;		     /* heartbeats, RTT */
	bool tick_started;
	atomic_bool stop;
};

/* Another node, as its heartbeats tell. */
struct peer {
	int64_t seen_ms;
	uint32_t groups;
	bool gone; /* its absence was logged */
};

natsStatus vs_cluster_bucket(struct vs_broker *b, kvStore **kv, const char *name, const char *what,
			     int64_t ttl_ms)
{
	jsCtx *js = vs_cluster_js(b);
	natsStatus s = js_KeyValue(kv, js, name);
	if (s == NATS_OK)
		return s;
	kvConfig kc;
	kvConfig_Init(&kc);
	kc.Bucket = name;
	kc.Description = what;
	kc.History = 1;
	kc.TTL = ttl_ms * 1000000;
	kc.StorageType = js_FileStorage;
	kc.Replicas = b->conf->cluster_replicas;
	s = js_CreateKeyValue(kv, js, &kc);
	if (s != NATS_OK) /* made by another node meanwhile, maybe with other settings */
		s = js_KeyValue(kv, js, name);
	return s;
}

struct vs_cluster_interest *vs_cluster_interest_state(struct vs_broker *b)
{
	return b->cluster ? b->cluster->remote : NULL;
}

struct vs_cluster_sessions *vs_cluster_sessions_of(struct vs_broker *b)
{
	return b->cluster ? b->cluster->sessions : NULL;
}

struct vs_cjs *vs_cluster_cjs(struct vs_cluster *cl)
{
	return cl->cjs;
}

int vs_cluster_deliver(struct vs_cluster *cl, const struct vs_cluster_frame *f, void *ack,
		       uint64_t sseq, bool loop, bool again)
{
	struct vs_broker *b = cl->b;
	struct vs_buf origin = {(const uint8_t *)"", 0};
	struct vs_msg *m = vs_msg_new(&f->publish.topic, &f->publish, &origin, vs_now_ms());
	if (!m) {
		vs_log(b->log, VS_LOG_ERR, "cluster: no memory for a message from node %.*s",
		       (int)f->node.len, f->node.p);
		return -ENOMEM;
	}
	m->remote = true;
	m->loop = loop;
	m->again = again && sseq;
	if (sseq) { /* held by the entries of connected persistent sessions (vs_session_hold) */
		m->sseq = sseq;
		m->held = &b->stream_held;
	}
	if (!loop)
		atomic_fetch_add_explicit(&cl->received, 1, memory_order_relaxed);
	/* One worker per origin node: its messages are routed in the order they were sent. */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < f->node.len; i++)
		h = (h ^ f->node.p[i]) * 16777619u;
	int k = (int)(h % (uint32_t)b->n_workers);
	if (ack)
		vs_cjs_track(cl->cjs, k, ack, sseq); /* before the worker may have it */
	struct vs_mail mail = {.type = VS_MAIL_CLUSTER, .msg = m, .ack = ack};
	vs_worker_post_now(&b->workers[k], &mail);
	return 0;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cluster *cl = arg;
	struct vs_broker *b = cl->b;
	struct vs_cluster_frame f;
	const char *why;
	const uint8_t *data = (const uint8_t *)natsMsg_GetData(nm);
	int len = natsMsg_GetDataLength(nm);
	if (vs_cluster_frame_decode(data, (size_t)(len > 0 ? len : 0), &f, &why) < 0) {
		vs_log(b->log, VS_LOG_WARN, "cluster: a message on %s dropped: %s",
		       natsMsg_GetSubject(nm), why);
		goto out;
	}
	/* The same message comes once per NATS subscription of ours that matches it: a node's
	 * messages reach us in the order it sent them, so anything not newer was seen. */
	pthread_mutex_lock(&cl->lock);
	uint64_t last = (uintptr_t)vs_map_get(&cl->last, f.node.p, f.node.len);
	bool fresh = f.seq > last;
	if (fresh)
		vs_map_put(&cl->last, f.node.p, f.node.len, (void *)(uintptr_t)f.seq, NULL);
	pthread_mutex_unlock(&cl->lock);
	if (fresh)
		vs_cluster_deliver(cl, &f, NULL, 0, false, false);
out:
	natsMsg_Destroy(nm);
}

static void on_disconnected(natsConnection *nc, void *arg)
{
	(void)nc;
	struct vs_cluster *cl = arg;
	atomic_store(&cl->connected, false);
	vs_log(cl->b->log, VS_LOG_WARN, "cluster: NATS connection lost, reconnecting");
}

static void on_connected(natsConnection *nc, void *arg)
{
	struct vs_cluster *cl = arg;
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	atomic_store(&cl->connected, true);
	vs_log(cl->b->log, VS_LOG_NOTICE, "cluster: node %s connected to NATS at %s", cl->node,
	       url);
}

static int fail(char *err, size_t errlen, const char *what, natsStatus s)
{
	snprintf(err, errlen, "cluster: %s: %s", what, natsStatus_GetText(s));
	return -1;
}

static int set_options(struct vs_cluster *cl, const struct vs_config *c, char *err, size_t errlen)
{
	natsOptions *o = cl->opts;
	char *urls = strdup(c->cluster_url);
	const char *servers[64];
	int n = 0;
	for (char *save = NULL, *t = urls ? strtok_r(urls, ", ", &save) : NULL; t && n < 64;
	     t = strtok_r(NULL, ", ", &save))
		servers[n++] = t;
	natsStatus s = n ? natsOptions_SetServers(o, servers, n) : NATS_INVALID_ARG;
	free(urls);
	if (s != NATS_OK)
		return fail(err, errlen, "cluster_url", s);
	natsOptions_SetName(o, cl->node);
	natsOptions_SetNoEcho(o, true); /* our own messages are routed here already */
	natsOptions_SetMaxReconnect(o, -1);
	natsOptions_SetReconnectWait(o, 500);
	natsOptions_SetRetryOnFailedConnect(o, true, on_connected, cl);
	natsOptions_SetReconnectedCB(o, on_connected, cl);
	natsOptions_SetDisconnectedCB(o, on_disconnected, cl);
	/* One delivery thread for every subscription: a node's messages are taken in the order
	 * they arrive, which the duplicate check relies on. */
	natsOptions_UseGlobalMessageDelivery(o, true);
	if (c->cluster_credentials && (s = natsOptions_SetUserCredentialsFromFiles(
					   o, c->cluster_credentials, NULL)) != NATS_OK)
		return fail(err, errlen, "cluster_credentials", s);
	if (c->cluster_username &&
	    (s = natsOptions_SetUserInfo(o, c->cluster_username, c->cluster_password)) != NATS_OK)
		return fail(err, errlen, "cluster_username", s);
	if (c->cluster_cafile || c->cluster_certfile) {
		if ((s = natsOptions_SetSecure(o, true)) != NATS_OK)
			return fail(err, errlen, "TLS", s);
		if (c->cluster_cafile &&
		    (s = natsOptions_LoadCATrustedCertificates(o, c->cluster_cafile)) != NATS_OK)
			return fail(err, errlen, "cluster_cafile", s);
		if (c->cluster_certfile &&
		    (s = natsOptions_LoadCertificatesChain(o, c->cluster_certfile,
							   c->cluster_keyfile)) != NATS_OK)
			return fail(err, errlen, "cluster_certfile/cluster_keyfile", s);
	}
	return 0;
}

static void on_heartbeat(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg);
static void *tick_main(void *arg);

static void on_claim(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cluster *cl = arg;
	int len = natsMsg_GetDataLength(nm);
	vs_cluster_claim_received(cl->b, cl->node, natsMsg_GetData(nm), len > 0 ? (size_t)len : 0);
	natsMsg_Destroy(nm);
}

/* JetStream's asynchronous publish errors, to the file whose subject it was. */
static void on_js_error(jsCtx *js, jsPubAckErr *pae, void *arg)
{
	(void)js;
	struct vs_cluster *cl = arg;
	const char *subject = natsMsg_GetSubject(pae->Msg);
	static const char kv[] = "$KV." VS_RETAIN_BUCKET ".";
	if (subject && strncmp(subject, kv, sizeof(kv) - 1) == 0)
		vs_cluster_retain_failed(cl->b, pae);
}

static void on_share_connected(natsConnection *nc, void *arg)
{
	(void)nc;
	(void)arg;
}

/* The second connection, for share copies, and the JetStream context. */
static int connect_more(struct vs_cluster *cl, char *err, size_t errlen)
{
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 2000; /* API requests (binding the bucket): a stop waits for one at most */
	jo.PublishAsync.ErrHandler = on_js_error;
	jo.PublishAsync.ErrHandlerClosure = cl;
	natsStatus s = natsConnection_JetStream(&cl->js, cl->nc, &jo);
	if (s != NATS_OK)
		return fail(err, errlen, "JetStream context", s);
	char name[VS_CLUSTER_NODE_MAX + 8];
	snprintf(name, sizeof(name), "%s-share", cl->node);
	natsOptions *o = cl->opts; /* the main connection has its copy */
	natsOptions_SetName(o, name);
	natsOptions_SetNoEcho(o, false);
	natsOptions_SetRetryOnFailedConnect(o, true, on_share_connected, cl);
	natsOptions_SetReconnectedCB(o, NULL, NULL);
	natsOptions_SetDisconnectedCB(o, NULL, NULL);
	s = natsConnection_Connect(&cl->share_nc, o);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED)
		return fail(err, errlen, "connecting to NATS", s);
	if (!(cl->share = vs_cluster_share_new(cl->b, cl->share_nc)) ||
	    !(cl->retain = vs_cluster_retain_start(cl->b))) {
		snprintf(err, errlen, "cluster: no memory");
		return -1;
	}
	s = natsConnection_Subscribe(&cl->hb_sub, cl->nc, HEARTBEAT, on_heartbeat, cl);
	if (s != NATS_OK)
		return fail(err, errlen, "subscribing", s);
	s = natsConnection_Subscribe(&cl->claim_sub, cl->nc, VS_CLAIM_SUBJECT, on_claim, cl);
	if (s != NATS_OK)
		return fail(err, errlen, "subscribing", s);
	if (pthread_create(&cl->tick, NULL, tick_main, cl) != 0) {
		snprintf(err, errlen, "cluster: cannot start a thread");
		return -1;
	}
	cl->tick_started = true;
	return 0;
}

int vs_cluster_start(struct vs_broker *b, char *err, size_t errlen)
{
	const struct vs_config *c = b->conf;
	if (!c->cluster_url)
		return 0;
	struct vs_cluster *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		snprintf(err, errlen, "cluster: no memory");
		return -1;
	}
	cl->b = b;
	atomic_init(&cl->rtt_us, -1);
	pthread_mutex_init(&cl->lock, NULL);
	if (c->cluster_node_id)
		snprintf(cl->node, sizeof(cl->node), "%s", c->cluster_node_id);
	else if (gethostname(cl->node, sizeof(cl->node) - 1) < 0)
		snprintf(cl->node, sizeof(cl->node), "viesti");
	/* Sequence numbers start at the wall clock (ns): a restarted node's messages are newer than
	 * those of its previous life, which the other nodes' duplicate checks remember. */
	atomic_store(&cl->seq, (uint64_t)vs_wall_ns());
	b->cluster = cl;
	nats_SetMessageDeliveryPoolSize(1);
	natsStatus s = natsOptions_Create(&cl->opts);
	if (s != NATS_OK)
		return fail(err, errlen, "options", s);
	if (set_options(cl, c, err, errlen) < 0)
		return -1;
	s = natsConnection_Connect(&cl->nc, cl->opts);
	if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED)
		return fail(err, errlen, "connecting to NATS", s);
	if (s == NATS_NOT_YET_CONNECTED)
		vs_log(b->log, VS_LOG_WARN, "cluster: NATS at %s not reachable yet, retrying",
		       c->cluster_url);
	else
		on_connected(cl->nc, cl); /* the callback is for a connection made later */
	s = natsConnection_Subscribe(&cl->long_sub, cl->nc, LONG_SUBJECT, on_msg, cl);
	if (s != NATS_OK)
		return fail(err, errlen, "subscribing", s);
	if (connect_more(cl, err, errlen) < 0 || vs_cjs_start(cl, b, &cl->cjs, err, errlen) < 0)
		return -1;
	if (!(cl->remote = vs_cluster_interest_start(b)) ||
	    !(cl->sessions = vs_cluster_sessions_start(b))) {
		snprintf(err, errlen, "cluster: no memory");
		return -1;
	}
	/* The subscriptions restored from the store, added before this connection existed. */
	size_t it = 0;
	struct vs_session *ss;
	while (vs_registry_next(&b->sessions, &it, &ss)) {
		for (uint32_t i = 0; i < vs_session_n_subs(ss); i++)
			vs_cluster_interest(b, ss->subs->v[i].filter, ss->subs->v[i].len, 1);
	}
	return 0;
}

bool vs_cluster_transient(natsStatus s)
{
	return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || s == NATS_CONNECTION_DISCONNECTED ||
	       s == NATS_NOT_YET_CONNECTED || s == NATS_STALE_CONNECTION;
}

natsMsg *vs_cluster_kv_msg(const char *bucket, const char *key, const char *value)
{
	char subj[1280]; /* the longest keys: a will's, up to 1,024 bytes (cluster_js_int.h) */
	natsMsg *m = NULL;
	if ((size_t)snprintf(subj, sizeof(subj), "$KV.%s.%s", bucket, key) >= sizeof(subj) ||
	    natsMsg_Create(&m, subj, NULL, value, value ? (int)strlen(value) : 0) != NATS_OK)
		return NULL;
	if (!value && natsMsgHeader_Set(m, "KV-Operation", "DEL") != NATS_OK) {
		natsMsg_Destroy(m);
		return NULL;
	}
	return m;
}

void vs_cluster_stop(struct vs_broker *b)
{
	struct vs_cluster *cl = b->cluster;
	if (!cl)
		return;
	atomic_store(&cl->stop, true);
	/* Every thread told first, then each waited for: without NATS each may be in a request
	 * that waits out its timeout, and they then wait together, not one after the other. */
	vs_cjs_stopping(cl->cjs);
	vs_cluster_interest_stopping(cl->remote);
	vs_cluster_sessions_stopping(cl->sessions);
	if (cl->tick_started)
		pthread_join(cl->tick, NULL);
	vs_cjs_stop(cl->cjs); /* its thread, before the connection goes */
	vs_cluster_interest_stop(cl->remote);
	vs_cluster_sessions_stop(cl->sessions);
	vs_cluster_retain_stop(cl->retain); /* its thread waits on the connection */
	if (cl->share_nc)
		natsConnection_Close(cl->share_nc);
	/* Drained first: the subscriptions end, what waited for delivery is delivered (into
	 * mailboxes that nobody reads any more, freed with them), then the connection closes. A
	 * plain close could leave a message in the library's delivery queue, never freed. */
	if (cl->nc && natsConnection_DrainTimeout(cl->nc, 2000) == NATS_OK) {
		for (int i = 0; i < 300 && !natsConnection_IsClosed(cl->nc); i++)
			nats_Sleep(10);
	}
	if (cl->nc)
		natsConnection_Close(cl->nc);
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&cl->interest, &it, &key, &klen, &val)) {
		struct interest *in = val;
		natsSubscription_Destroy(in->sub);
		free(in);
	}
	vs_cluster_interest_close(cl->remote); /* before the library's end waits for them */
	vs_cluster_retain_close(cl->retain);
	vs_cluster_sessions_close(cl->sessions);
	natsSubscription_Destroy(cl->long_sub);
	natsSubscription_Destroy(cl->hb_sub);
	natsSubscription_Destroy(cl->claim_sub);
	vs_cluster_share_close(cl->share);
	vs_cjs_free(cl->cjs);
	jsCtx_Destroy(cl->js);
	natsConnection_Destroy(cl->share_nc);
	natsConnection_Destroy(cl->nc);
	natsOptions_Destroy(cl->opts);
	/* What the connection delivered into the workers' mailboxes (nobody reads them any more)
	 * holds natsMsgs, which cannot be freed once the library is closed. */
	for (int i = 0; cl->b->workers && i < cl->b->n_workers; i++)
		if (cl->b->workers[i].b)
			vs_worker_drop_acks(&cl->b->workers[i]);
	/* Waits for every library object to go: one still held (a subscription, a bucket) costs
	 * the whole timeout at every stop. */
	if (nats_CloseAndWait(2000) != NATS_OK)
		vs_log(cl->b->log, VS_LOG_WARN,
		       "cluster: the NATS library did not close within 2 s (an object of it "
		       "was still held)");
	/* The library's threads are gone: no callback after this. */
	vs_cluster_interest_free(cl->remote); /* its callback (vs.ib) is gone too */
	vs_cluster_retain_free(cl->retain);
	vs_cluster_share_free(cl->share);
	vs_cluster_sessions_free(cl->sessions);
	vs_map_fini(&cl->interest);
	vs_map_fini(&cl->last);
	vs_map_fini_with(&cl->nodes, free);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
	b->cluster = NULL;
}

/* m's frame in w's buffer (w->cluster_buf), numbered seq (0: by vs_cjs_publish): returns its
 * length, *head that of its head; -1 when it cannot be made (no memory). */
static ssize_t encode_frame(struct vs_worker *w, const struct vs_msg *m, uint64_t seq,
			    ssize_t *head)
{
	struct vs_cluster *cl = w->b->cluster;
	struct vs_delivery d = {.version = VS_V5, .qos = m->qos, .retain = m->retain};
	d.packet_id = m->qos ? 1 : 0;
	int64_t now = vs_now_ms();
	ssize_t plen = vs_msg_encoded_size((struct vs_msg *)m, &d, now);
	if (plen < 0)
		return -1;
	/* The worker's buffer, kept: no allocation per message once it has grown. */
	size_t need = 2 + VS_CLUSTER_NODE_MAX + 8 + (size_t)plen;
	if (need > w->cluster_cap) {
		uint8_t *nb = realloc(w->cluster_buf, need);
		if (!nb)
			return -1;
		w->cluster_buf = nb;
		w->cluster_cap = need;
	}
	ssize_t h =
	    vs_cluster_frame_head(cl->node, seq, w->cluster_buf, 2 + VS_CLUSTER_NODE_MAX + 8);
	ssize_t n =
	    h < 0 ? h
		  : vs_msg_encode((struct vs_msg *)m, &d, now, w->cluster_buf + h, (size_t)plen);
	if (n <= 0)
		return -1;
	*head = h;
	return h + n;
}

static void subject_of(const struct vs_msg *m, char subject[SUBJECT_MAX])
{
	if (vs_cluster_topic_subject(m->topic.p, m->topic.len, subject, SUBJECT_MAX) < 0)
		snprintf(subject, SUBJECT_MAX, LONG_SUBJECT);
}

uint64_t vs_cluster_forward(struct vs_worker *w, const struct vs_msg *m, bool mine, bool *loop)
{
	struct vs_cluster *cl = w->b->cluster;
	if (m->remote || (m->topic.len >= 4 && memcmp(m->topic.p, "$SYS", 4) == 0))
		return 0;
	char subject[SUBJECT_MAX];
	subject_of(m, subject);
	/* QoS 1/2 goes through JetStream, which numbers it itself (cluster_js.h), when another
	 * node or a shared group (any node's, this one's too) wants it. */
	/* Without NATS, this node's sessions take it now, as on a single broker. */
	mine = mine && atomic_load_explicit(&cl->connected, memory_order_relaxed);
	bool durable =
	    m->qos > 0 && vs_cjs_ready(cl->cjs) &&
	    (w->b->conf->cluster_durable_all || mine || strcmp(subject, LONG_SUBJECT) == 0 ||
	     vs_cluster_interest_remote(cl->remote, subject) ||
	     vs_cluster_share_wants(cl->share, subject));
	uint64_t seq = durable ? 0 : atomic_fetch_add(&cl->seq, 1) + 1;
	ssize_t h, len = encode_frame(w, m, seq, &h);
	if (len < 0)
		return 0;
	uint8_t *buf = w->cluster_buf;
	if (durable && mine) {
		buf[0] |= VS_CLUSTER_FRAME_LOOP; /* its copy comes back for them (router.c) */
		*loop = true;
	}
	uint64_t stamp = 0;
	if (durable)
		stamp = vs_cjs_publish(w, cl->cjs, subject, buf, (size_t)h, (size_t)len, 0);
	if (durable || natsConnection_Publish(cl->nc, subject, buf, (int)len) == NATS_OK)
		atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
	/* A durable message reaches shared groups through their JetStream consumers. */
	if (cl->share && !durable && vs_cluster_share_forward(cl->share, subject, buf, (int)len))
		atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
	return stamp;
}

int vs_cluster_republish(struct vs_worker *w, const struct vs_msg *m, uint64_t again)
{
	struct vs_cluster *cl = w->b->cluster;
	char subject[SUBJECT_MAX];
	subject_of(m, subject);
	ssize_t h, len = encode_frame(w, m, 0, &h);
	if (len < 0)
		return -1;
	/* This node's persistent sessions take its copy from the stream (the first one had not
	 * come back when JetStream had not taken it). */
	if (w->b->conf->cluster_durable_sessions)
		w->cluster_buf[0] |= VS_CLUSTER_FRAME_LOOP;
	vs_cjs_publish(w, cl->cjs, subject, w->cluster_buf, (size_t)h, (size_t)len, again);
	atomic_fetch_add_explicit(&cl->sent, 1, memory_order_relaxed);
	return 0;
}

/* Adds delta to subject's count, subscribing at the first and unsubscribing at the last
 * (delta 0: only looks). Returns the barrier's ticket of the subject's write to vs_interest
 * (cluster_interest.h), for a SUBACK to wait for; 0 when it went out already or none is due. */
static uint64_t count_subject(struct vs_cluster *cl, const char *subject, int delta)
{
	size_t len = strlen(subject);
	struct interest *in = vs_map_get(&cl->interest, subject, len);
	if (delta > 0 && !in) {
		in = calloc(1, sizeof(*in));
		if (!in ||
		    natsConnection_Subscribe(&in->sub, cl->nc, subject, on_msg, cl) != NATS_OK ||
		    vs_map_put(&cl->interest, subject, len, in, NULL) < 0) {
			vs_log(cl->b->log, VS_LOG_ERR,
			       "cluster: cannot subscribe to %s in NATS: messages of other "
			       "nodes for it will not arrive",
			       subject);
			if (in)
				natsSubscription_Destroy(in->sub);
			free(in);
			return 0;
		}
		in->refs = 1;
		in->noted = vs_cluster_interest_note(cl->remote, subject, NULL, true);
	} else if (delta > 0) {
		in->refs++;
	}
	if (delta >= 0)
		return in && !vs_cluster_interest_confirmed(cl->remote, in->noted) ? in->noted : 0;
	if (!in || --in->refs > 0)
		return 0;
	vs_cluster_interest_note(cl->remote, subject, NULL, false);
	vs_map_del(&cl->interest, subject, len);
	natsSubscription_Unsubscribe(in->sub);
	natsSubscription_Destroy(in->sub);
	free(in);
	return 0;
}

uint64_t vs_cluster_interest(struct vs_broker *b, const char *filter, size_t len, int delta)
{
	struct vs_cluster *cl = b->cluster;
	if (!cl)
		return 0;
	/* $share/GROUP/FILTER: the group's own queue subscriptions (cluster_share.h). */
	if (len > 7 && memcmp(filter, "$share/", 7) == 0) {
		if (cl->share && delta)
			vs_cluster_share_interest(cl->share, filter, len, delta);
		return 0;
	}
	char a[SUBJECT_MAX], s2[SUBJECT_MAX];
	int n = vs_cluster_filter_subjects((const uint8_t *)filter, len, a, s2, sizeof(a));
	uint64_t t = 0, t2 = 0;
	pthread_mutex_lock(&cl->lock);
	if (n < 0) {
		t = count_subject(cl, ALL_SUBJECTS, delta);
	} else {
		t = count_subject(cl, a, delta);
		if (n == 2)
			t2 = count_subject(cl, s2, delta);
	}
	pthread_mutex_unlock(&cl->lock);
	return t > t2 ? t : t2;
}

bool vs_cluster_connected(struct vs_broker *b)
{
	return atomic_load_explicit(&b->cluster->connected, memory_order_relaxed);
}

uint64_t vs_cluster_barrier_ticket(struct vs_broker *b)
{
	/* Without NATS there is nobody to wait for (and nothing to wait with). */
	return b->cluster && vs_cluster_connected(b) && vs_cjs_ready(b->cluster->cjs)
		   ? vs_cluster_interest_ticket(b->cluster->remote)
		   : 0;
}

uint64_t vs_cluster_share_wait(struct vs_broker *b, const char *share, size_t len)
{
	return b->cluster && vs_cluster_connected(b)
		   ? vs_cluster_share_pending(b->cluster->share, share, len)
		   : 0;
}

uint64_t vs_cluster_barrier_due(struct vs_broker *b, uint64_t ticket)
{
	/* Without JetStream QoS 1/2 goes on core NATS anyway: nothing to wait for. */
	return ticket && b->cluster && vs_cluster_connected(b) && vs_cjs_ready(b->cluster->cjs) &&
		       !vs_cluster_interest_confirmed(b->cluster->remote, ticket)
		   ? ticket
		   : 0;
}

bool vs_cluster_barrier_confirmed(struct vs_broker *b, uint64_t ticket)
{
	return !b->cluster || vs_cluster_interest_confirmed(b->cluster->remote, ticket);
}

bool vs_cluster_barrier_await(struct vs_broker *b, int worker, uint64_t ticket)
{
	return b->cluster && b->cluster->remote &&
	       vs_cluster_interest_await(b->cluster->remote, worker, ticket);
}

bool vs_cluster_shares_remote(struct vs_broker *b)
{
	struct vs_cluster *cl = b->cluster;
	return cl && cl->share && atomic_load_explicit(&cl->connected, memory_order_relaxed);
}

natsConnection *vs_cluster_nc(struct vs_broker *b)
{
	return b->cluster->nc;
}

jsCtx *vs_cluster_js(struct vs_broker *b)
{
	return b->cluster->js;
}

const char *vs_cluster_node(struct vs_broker *b)
{
	return b->cluster->node;
}

struct vs_cluster_retain *vs_cluster_retain_state(struct vs_broker *b)
{
	return b->cluster ? b->cluster->retain : NULL;
}

void vs_cluster_count(struct vs_broker *b, uint64_t sent, uint64_t received)
{
	struct vs_cluster *cl = b->cluster;
	atomic_fetch_add_explicit(&cl->sent, sent, memory_order_relaxed);
	atomic_fetch_add_explicit(&cl->received, received, memory_order_relaxed);
}

size_t vs_cluster_peers(struct vs_broker *b, int64_t within_ms, char **names)
{
	struct vs_cluster *cl = b->cluster;
	int64_t now = vs_now_ms();
	size_t n = 0, size = 0, it = 0, klen;
	const char *key;
	void *val;
	*names = NULL;
	pthread_mutex_lock(&cl->lock);
	while (vs_map_next(&cl->nodes, &it, &key, &klen, &val))
		if (now - ((const struct peer *)val)->seen_ms <= within_ms)
			size += klen + 1;
	char *out = size ? malloc(size) : NULL;
	for (it = 0, size = 0; out && vs_map_next(&cl->nodes, &it, &key, &klen, &val);) {
		if (now - ((const struct peer *)val)->seen_ms > within_ms)
			continue;
		memcpy(out + size, key, klen);
		out[size + klen] = '\0';
		size += klen + 1;
		n++;
	}
	pthread_mutex_unlock(&cl->lock);
	*names = out;
	return n;
}

void vs_cluster_peer_absent(struct vs_broker *b, const char *node)
{
	struct vs_cluster *cl = b->cluster;
	pthread_mutex_lock(&cl->lock);
	struct peer *p = vs_map_get(&cl->nodes, node, strlen(node));
	if (p)
		p->seen_ms = 0; /* a barrier does not wait for it (cluster_interest.h) */
	pthread_mutex_unlock(&cl->lock);
}

/* A heartbeat of another node: "GROUPS NODE". */
static void on_heartbeat(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	(void)nc;
	(void)sub;
	struct vs_cluster *cl = arg;
	const char *d = natsMsg_GetData(nm);
	int len = natsMsg_GetDataLength(nm);
	char *sp = len > 0 ? memchr(d, ' ', (size_t)len) : NULL;
	if (!sp || sp + 1 >= d + len) {
		natsMsg_Destroy(nm);
		return;
	}
	uint32_t groups = (uint32_t)strtoul(d, NULL, 10);
	const char *node = sp + 1;
	size_t nlen = (size_t)(d + len - node);
	int64_t now = vs_now_ms();
	pthread_mutex_lock(&cl->lock);
	struct peer *p = vs_map_get(&cl->nodes, node, nlen);
	if (!p && (p = calloc(1, sizeof(*p))) && vs_map_put(&cl->nodes, node, nlen, p, NULL) < 0) {
		free(p);
		p = NULL;
	}
	bool back = p && now - p->seen_ms > NODE_GONE_MS; /* new (seen_ms 0), or was gone */
	if (p) {
		p->seen_ms = now;
		p->groups = groups;
	}
	pthread_mutex_unlock(&cl->lock);
	if (back)
		vs_log(cl->b->log, VS_LOG_NOTICE, "cluster: node %.*s is there", (int)nlen, node);
	if (groups && cl->share)
		vs_cluster_share_remote(cl->share, true); /* at once: its members wait */
	natsMsg_Destroy(nm);
}

static void send_heartbeat(struct vs_cluster *cl)
{
	char hb[VS_CLUSTER_NODE_MAX + 32];
	int n = snprintf(hb, sizeof(hb), "%zu %s", vs_cluster_share_groups(cl->share), cl->node);
	natsConnection_Publish(cl->nc, HEARTBEAT, hb, n);
}

/* Forgets nodes not heard from for long, and says whether the others have shared groups. */
static void prune_nodes(struct vs_cluster *cl)
{
	int64_t now = vs_now_ms();
	bool groups = false;
	pthread_mutex_lock(&cl->lock);
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&cl->nodes, &it, &key, &klen, &val)) {
		struct peer *p = val;
		if (now - p->seen_ms <= NODE_GONE_MS)
			groups |= p->groups > 0;
		else if (!p->gone) /* logged once per absence */
			vs_log(cl->b->log, VS_LOG_NOTICE,
			       "cluster: node %.*s not heard from for %d s", (int)klen, key,
			       NODE_GONE_MS / 1000);
		p->gone = now - p->seen_ms > NODE_GONE_MS;
	}
	pthread_mutex_unlock(&cl->lock);
	if (cl->share)
		vs_cluster_share_remote(cl->share, groups);
}

/* Heartbeats (at once when this node's first shared group comes or its last goes), the NATS
 * round-trip time, and the list of nodes. */
static void *tick_main(void *arg)
{
	struct vs_cluster *cl = arg;
	int64_t last = 0;
	bool had_groups = false;
	while (!atomic_load(&cl->stop)) {
		int64_t now = vs_now_ms();
		bool groups = vs_cluster_share_groups(cl->share) > 0;
		if (now - last >= HEARTBEAT_MS || groups != had_groups) {
			send_heartbeat(cl);
			had_groups = groups;
		}
		if (now - last >= HEARTBEAT_MS) {
			last = now;
			/* A PING and its PONG, bounded (natsConnection_GetRTT is not): a stop never
			 * waits for a NATS server that does not answer for more than a second. */
			int64_t t0 = vs_now_ns();
			natsStatus s = natsConnection_FlushTimeout(cl->nc, 1000);
			atomic_store(&cl->rtt_us, s == NATS_OK ? (vs_now_ns() - t0) / 1000 : -1);
			prune_nodes(cl);
		}
		nats_Sleep(100);
	}
	return NULL;
}

void vs_cluster_stats(struct vs_broker *b, struct vs_cluster_stats *st)
{
	struct vs_cluster *cl = b->cluster;
	memset(st, 0, sizeof(*st));
	st->rtt_us = -1;
	if (!cl)
		return;
	st->connected = atomic_load(&cl->connected);
	st->rtt_us = st->connected ? atomic_load(&cl->rtt_us) : -1;
	st->sent = atomic_load(&cl->sent);
	st->received = atomic_load(&cl->received);
	st->retained_bucket = vs_cluster_retain_ready(cl->retain);
	st->retained_applied = vs_cluster_retain_applied(cl->retain);
	st->shared_groups = vs_cluster_share_groups(cl->share);
	vs_cluster_sessions_counts(cl->sessions, &st->sessions_taken, &st->sessions_given,
				   &st->sessions_rebuilt);
	int64_t now = vs_now_ms();
	st->nodes = 1;
	pthread_mutex_lock(&cl->lock);
	size_t it = 0;
	const char *key;
	size_t klen;
	void *val;
	while (vs_map_next(&cl->nodes, &it, &key, &klen, &val))
		st->nodes += now - ((const struct peer *)val)->seen_ms <= NODE_GONE_MS;
	pthread_mutex_unlock(&cl->lock);
}
