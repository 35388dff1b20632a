/*
 * Worker threads: see worker.h. A loop turn is: wait for events (bounded by the next timer),
 * dispatch them, drain local sessions that received messages, hand outboxes to other workers,
 * flush every connection that has output.
 */
#include "broker/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/router.h"
#include "broker/sys.h"
#include "net/listen.h"
#include "session/session.h"

static int vec_push(struct vs_mail_vec *v, const struct vs_mail *m)
{
	if (v->n == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : 64;
		struct vs_mail *n = realloc(v->v, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = *m;
	return 0;
}

static void wake(struct vs_worker *t)
{
	uint64_t one = 1;
	ssize_t r = write(t->mbox.io.fd, &one, sizeof(one));
	(void)r; /* EAGAIN: the counter is already non-zero, the target will wake anyway. */
}

int vs_worker_post(struct vs_worker *w, int to, const struct vs_mail *m)
{
	return vec_push(&w->outbox[to], m);
}

void vs_worker_post_now(struct vs_worker *t, const struct vs_mail *m)
{
	pthread_mutex_lock(&t->mbox.lock);
	vec_push(&t->mbox.items, m);
	pthread_mutex_unlock(&t->mbox.lock);
	wake(t);
}

void vs_worker_want_flush(struct vs_worker *w, struct vs_conn *c)
{
	if (c->in_flush)
		return;
	if (w->n_flush == w->cap_flush) {
		uint32_t cap = w->cap_flush ? w->cap_flush * 2 : 64;
		struct vs_conn **n = realloc(w->flush, cap * sizeof(*n));
		if (!n)
			return; /* flushed anyway on its next event */
		w->flush = n;
		w->cap_flush = cap;
	}
	c->in_flush = true;
	w->flush[w->n_flush++] = c;
}

void vs_worker_want_drain(struct vs_worker *w, struct vs_session *s)
{
	if (w->n_dirty == w->cap_dirty) {
		uint32_t cap = w->cap_dirty ? w->cap_dirty * 2 : 64;
		struct vs_session **n = realloc(w->dirty, cap * sizeof(*n));
		if (!n)
			return;
		w->dirty = n;
		w->cap_dirty = cap;
	}
	w->dirty[w->n_dirty++] = vs_session_ref(s);
}

static void on_accept(struct vs_io *io, uint32_t events)
{
	struct vs_listen_io *li = (struct vs_listen_io *)io;
	struct vs_worker *w = li->w;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				vs_log(w->b->log, VS_LOG_WARN, "accept on %s: %s", li->listener->name,
				       strerror(errno));
			return;
		}
		char addr[56];
		vs_addr_str((struct sockaddr *)&ss, addr, sizeof(addr));
		int mc = li->listener->conf ? li->listener->conf->max_connections : -1;
		if (mc >= 0 && atomic_load(&li->listener->connections) >= mc) {
			vs_log(w->b->log, VS_LOG_NOTICE,
			       "refusing connection from %s on %s: max_connections (%d) reached", addr,
			       li->listener->name, mc);
			close(fd);
			continue;
		}
		if (ss.ss_family != AF_UNIX && w->b->conf->set_tcp_nodelay) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		vs_conn_accept(w, li->listener, fd, addr);
	}
}

void vs_worker_bury(struct vs_worker *w, struct vs_conn *c)
{
	if (w->n_graveyard == w->cap_graveyard) {
		uint32_t cap = w->cap_graveyard ? w->cap_graveyard * 2 : 16;
		struct vs_conn **n = realloc(w->graveyard, cap * sizeof(*n));
		if (!n) {
			/* Cannot defer: leak rather than risk a use after free. */
			return;
		}
		w->graveyard = n;
		w->cap_graveyard = cap;
	}
	w->graveyard[w->n_graveyard++] = c;
}

struct vs_conn *vs_worker_conn(struct vs_worker *w, uint32_t slot, uint64_t conn_id)
{
	struct vs_conn *c = slot < w->n_slots ? w->conns[slot] : NULL;
	return c && c->id == conn_id ? c : NULL;
}

void vs_worker_takeover(struct vs_worker *w, uint32_t slot, uint64_t conn_id)
{
	struct vs_conn *old = vs_worker_conn(w, slot, conn_id);
	/* Handle what the old connection already sent (a DISCONNECT, say) before it goes. */
	if (old && vs_conn_pump(old) == 0 && vs_worker_conn(w, slot, conn_id) == old)
		vs_conn_close(old, VS_RC_SESSION_TAKEN_OVER, "session taken over");
}

static void take_mail(struct vs_worker *w, const struct vs_mail *m)
{
	switch (m->type) {
	case VS_MAIL_DRAIN:
		vs_session_drain(w, m->session);
		vs_session_unref(m->session);
		break;
	case VS_MAIL_KICK:
		vs_worker_takeover(w, m->slot, m->conn_id);
		break;
	case VS_MAIL_TAKEOVER: {
		vs_worker_takeover(w, m->slot, m->conn_id);
		struct vs_mail r = {.type = VS_MAIL_RESUME, .slot = m->reply_slot,
				    .conn_id = m->reply_conn_id};
		vs_worker_post(w, m->reply_to, &r);
		break;
	}
	case VS_MAIL_RESUME: {
		struct vs_conn *c = vs_worker_conn(w, m->slot, m->conn_id);
		if (c)
			vs_conn_unpark(c);
		break;
	}
	default:
		break;
	}
}

static void on_mailbox(struct vs_io *io, uint32_t events)
{
	struct vs_worker *w = (struct vs_worker *)((char *)io - offsetof(struct vs_worker, mbox.io));
	uint64_t cnt;
	ssize_t r = read(io->fd, &cnt, sizeof(cnt));
	(void)r;
	/* Two vectors trade places, so neither posting nor taking allocates in the steady state. */
	pthread_mutex_lock(&w->mbox.lock);
	struct vs_mail_vec items = w->mbox.items;
	w->mbox.items = w->mail_spare;
	pthread_mutex_unlock(&w->mbox.lock);
	for (uint32_t i = 0; i < items.n; i++)
		take_mail(w, &items.v[i]);
	items.n = 0;
	w->mail_spare = items;
}

/* The commit of this turn failed: connections that were about to receive acknowledgements
 * lose that output and are closed, so nothing unstored is acknowledged; their clients resend. */
static void refuse_uncommitted(struct vs_worker *w)
{
	for (uint32_t i = 0; i < w->n_flush; i++) {
		struct vs_conn *c = w->flush[i];
		if (c && c->durable_pending) {
			/* No packet at all: a DISCONNECT could otherwise precede the CONNACK that was
			 * just dropped [MQTT-3.2.0-1]. */
			c->out.off = c->out.len = 0;
			c->durable_pending = false;
			vs_conn_close(c, -1, "persistence unavailable: acknowledgements withdrawn");
		}
	}
}

/* End of a loop turn: drain local sessions, post outboxes, flush connections. Draining may
 * produce output; flushing never produces mail. */
static void end_turn(struct vs_worker *w)
{
	for (uint32_t i = 0; i < w->n_dirty; i++) {
		vs_session_drain(w, w->dirty[i]);
		vs_session_unref(w->dirty[i]);
	}
	w->n_dirty = 0;
	if (vs_bp_commit(w) < 0)
		refuse_uncommitted(w);
	for (int t = 0; t < w->b->n_workers; t++) {
		struct vs_mail_vec *ob = &w->outbox[t];
		if (ob->n == 0)
			continue;
		struct vs_worker *tw = &w->b->workers[t];
		pthread_mutex_lock(&tw->mbox.lock);
		bool was_empty = tw->mbox.items.n == 0;
		for (uint32_t i = 0; i < ob->n; i++)
			vec_push(&tw->mbox.items, &ob->v[i]);
		pthread_mutex_unlock(&tw->mbox.lock);
		if (was_empty)
			wake(tw);
		ob->n = 0;
	}
	for (uint32_t i = 0; i < w->n_flush; i++) {
		struct vs_conn *c = w->flush[i];
		if (!c)
			continue; /* closed during the turn */
		c->in_flush = false;
		vs_conn_flush(c);
	}
	w->n_flush = 0;
	for (uint32_t i = 0; i < w->n_graveyard; i++)
		free(w->graveyard[i]);
	w->n_graveyard = 0;
}

static void sweep(struct vs_worker *w)
{
	int64_t now = w->now_ms;
	for (uint32_t i = 0; i < w->n_slots; i++) {
		struct vs_conn *c = w->conns[i];
		if (!c)
			continue;
		if (c->state == VS_CONN_NEW && now - c->last_rx_ms > 10000) {
			vs_conn_close(c, VS_RC_MAX_CONNECT_TIME, "no CONNECT within 10 s");
			continue;
		}
		/* Idle connections give their buffers back. */
		if (!c->in_flush) {
			vs_bytes_shrink(&c->out, 0);
			vs_bytes_shrink(&c->in, 0);
		}
		/* [MQTT-3.1.2-24] one and a half times the keep alive without a packet. */
		if (c->state == VS_CONN_ACTIVE && c->keepalive &&
		    now - c->last_rx_ms > (int64_t)c->keepalive * 1500)
			vs_conn_close(c, VS_RC_KEEPALIVE_TIMEOUT, "keep alive timeout");
	}
	if (w->idx == 0)
		vs_sys_tick(w);
}

/* Reads throttled connections again once their time is up; returns the next such time (or
 * INT64_MAX). */
static int64_t resume_throttled(struct vs_worker *w)
{
	int64_t next = INT64_MAX;
	uint32_t k = 0;
	for (uint32_t i = 0; i < w->n_throttled; i++) {
		struct vs_conn *c = w->throttled[i];
		if (!c)
			continue;
		if (c->throttle_until_ms <= w->now_ms) {
			c->throttled = false;
			vs_conn_update_events(c);
			continue;
		}
		if (c->throttle_until_ms < next)
			next = c->throttle_until_ms;
		w->throttled[k++] = c;
	}
	w->n_throttled = k;
	return next;
}

void *vs_worker_main(void *arg)
{
	struct vs_worker *w = arg;
	w->now_ms = vs_now_ms();
	w->next_sweep_ms = w->now_ms + 100;
	while (!atomic_load_explicit(&w->b->stopping, memory_order_relaxed)) {
		int64_t wake = w->next_sweep_ms;
		if (w->n_throttled) {
			int64_t t = resume_throttled(w);
			wake = t < wake ? t : wake;
		}
		int timeout = (int)(wake - w->now_ms);
		if (timeout < 0 || w->n_dirty || w->n_flush)
			timeout = 0; /* work left by the previous turn (a drained output buffer) */
		vs_loop_run_once(&w->loop, timeout);
		w->now_ms = vs_now_ms();
		end_turn(w);
		if (w->now_ms >= w->next_sweep_ms) {
			w->next_sweep_ms = w->now_ms + 100;
			sweep(w);
			end_turn(w);
		}
	}
	/* Shutdown: close every connection (5.0: DISCONNECT 0x8B). */
	for (uint32_t i = 0; i < w->n_slots; i++)
		if (w->conns[i])
			vs_conn_close(w->conns[i], VS_RC_SERVER_SHUTTING_DOWN, "broker shutting down");
	end_turn(w);
	return NULL;
}

int vs_worker_init(struct vs_worker *w, struct vs_broker *b, int idx, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
	w->idx = idx;
	w->loop.epfd = -1;
	int rc = vs_loop_init(&w->loop);
	if (rc < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(-rc));
		return rc;
	}
	pthread_mutex_init(&w->mbox.lock, NULL);
	w->mbox.io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->mbox.io.fn = on_mailbox;
	if (w->mbox.io.fd < 0 || vs_loop_add(&w->loop, &w->mbox.io, EPOLLIN) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -errno;
	}
	w->outbox = calloc((size_t)b->n_workers, sizeof(*w->outbox));
	if (!w->outbox || vs_bytes_reserve(&w->rbuf, 64 * 1024) < 0)
		return -ENOMEM;
	/* Every worker listens on every listener; the kernel spreads connections (SO_REUSEPORT). */
	w->listens = calloc(b->n_listeners * 4, sizeof(*w->listens));
	if (!w->listens)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_listeners; i++) {
		struct vs_listener *l = &b->listeners[i];
		int fds[4];
		const char *host = l->conf->bind_address;
		int n = vs_listen_tcp(host, l->conf->port, l->conf->socket_domain, true, fds, 4, err,
				      errlen);
		if (n < 0)
			return n;
		for (int k = 0; k < n; k++) {
			struct vs_listen_io *li = &w->listens[w->n_listens++];
			li->io.fd = fds[k];
			li->io.fn = on_accept;
			li->listener = l;
			li->w = w;
			vs_loop_add(&w->loop, &li->io, EPOLLIN);
		}
	}
	return 0;
}

void vs_worker_fini(struct vs_worker *w)
{
	for (int i = 0; i < w->n_listens; i++)
		close(w->listens[i].io.fd);
	free(w->listens);
	if (w->mbox.io.fd >= 0)
		close(w->mbox.io.fd);
	for (uint32_t i = 0; i < w->mbox.items.n; i++)
		if (w->mbox.items.v[i].session)
			vs_session_unref(w->mbox.items.v[i].session);
	free(w->mbox.items.v);
	free(w->mail_spare.v);
	pthread_mutex_destroy(&w->mbox.lock);
	if (w->outbox)
		for (int t = 0; t < w->b->n_workers; t++)
			free(w->outbox[t].v);
	free(w->outbox);
	free(w->conns);
	free(w->free_slots);
	free(w->dirty);
	free(w->flush);
	free(w->matches);
	free(w->sub_ids);
	free(w->graveyard);
	free(w->throttled);
	vs_bytes_fini(&w->rbuf);
	vs_store_buf_fini(&w->pbuf);
	vs_loop_fini(&w->loop);
}
