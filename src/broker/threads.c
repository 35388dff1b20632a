/*
 * How threads run shards (worker.h): a thread's turn over its own shard, and thread
 * consolidation, where thread 0 runs the shards idle threads lend it ("Threads and shards"
 * below). What a turn does with a shard's events is worker.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "session/msg.h"

/*
 * Between loop turns a thread holds no pointer to what a reload may replace (the configuration,
 * a listener's ACL): a quiescent state (grace.h). A thread about to block is offline until it
 * wakes, so an idle thread never delays the freeing of an old configuration.
 */
static void wait_begins(struct vs_worker *t, bool blocking)
{
	if (blocking)
		vs_grace_offline(&t->th.gr);
	else
		vs_grace_quiescent(&t->b->grace, &t->th.gr);
}

static void wait_ends(struct vs_worker *t, bool blocking)
{
	if (blocking)
		vs_grace_online(&t->b->grace, &t->th.gr);
}

/* Handles the events of a wait of thread h, its readable connections read in one system call
 * where it can (conn.c vs_conn_prefetch). */
static void dispatch(struct vs_worker *h, const struct epoll_event *evs, int n)
{
	bool pre = vs_conn_prefetch(h, evs, n);
	vs_loop_dispatch(evs, n);
	if (pre)
		vs_conn_prefetch_end(h);
}

/* A turn of a thread running only its own shard. */
static void own_turn(struct vs_worker *w)
{
	int timeout = vs_worker_timeout(w);
	bool mail = vs_worker_before_sleep(w, timeout != 0);
	struct epoll_event evs[VS_LOOP_BATCH];
	wait_begins(w, !mail && timeout != 0);
	int n = vs_loop_wait(&w->loop, evs, VS_LOOP_BATCH, mail ? 0 : timeout);
	wait_ends(w, !mail && timeout != 0);
	atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
	w->now_ms = vs_now_ms();
	/* After wait_ends: handlers read what the grace period protects (a thread offline in
	 * it may not). */
	if (n > 0)
		dispatch(w, evs, n);
	vs_worker_after_events(w, mail);
	vs_msg_home_collect();
}

/*
 * Threads and shards. A worker is a shard (an epoll set, its connections, the deliveries to
 * their sessions, a mailbox), and thread i normally runs shard i. At low load, spreading work
 * over every core costs more CPU than the work itself: each thread sleeps and is woken for a
 * few packets at a time (an epoll_wait, a context switch, often an inter-processor interrupt),
 * where one busier thread would find them together; mail between shards adds wake-ups of its
 * own. So a thread whose load and thread 0's add up to less than LEND_BELOW of one core lends
 * its shard to thread 0 and parks. Thread 0 then moves the shard's descriptors into its own
 * epoll set (one set, not a set of sets: a nested set costs a second wake-up chain and a second
 * epoll_wait per turn), dispatches the events of every shard it runs from one wait, finishes
 * the turn of each shard, and gives the most recently lent shard back (its descriptors moved
 * back first) whenever it is busier than RETURN_ABOVE for RETURN_WINDOWS windows in a row.
 * A shard is run by one thread at a time: the hand-over is under b->park_lock, which orders the
 * shard's state for the next thread, and the descriptors move only while no thread waits on
 * either set for them. Load is the share of wall time a thread spends outside epoll_wait, over
 * windows of 100 ms.
 */
enum {
	WINDOW_MS = 100,
	LEND_BELOW = 950, /* per mille of one core: this thread's load plus thread 0's */
	LEND_WINDOWS = 5,
	BACKOFF_MS = 1000, /* a shard given back soon after its lend waits this long, doubling, */
	BACKOFF_MAX_MS = 64000, /* up to this, before it is lent again */
	STABLE_MS = 10000,	/* a lend that lasted this long resets the back-off */
	RETURN_ABOVE = 850,	/* per mille: thread 0's load while it runs other shards */
	RETURN_WINDOWS = 2,
};

/* Closes a load window of thread w when WINDOW_MS have passed; returns whether it did. */
static bool end_window(struct vs_worker *w)
{
	int64_t ms = w->now_ms - w->th.win_start_ms;
	if (ms < WINDOW_MS)
		return false;
	int64_t idle = (w->loop.waited_ns - w->th.win_waited_ns) / (ms * 1000);
	int load = idle >= 1000 ? 0 : (int)(1000 - idle);
	atomic_store_explicit(&w->th.load, load, memory_order_relaxed);
	w->th.win_start_ms = w->now_ms;
	w->th.win_waited_ns = w->loop.waited_ns;
	return true;
}

static bool consolidating(const struct vs_broker *b)
{
	return b->n_workers > 1 && b->conf->consolidate_threads;
}

/* Thread w (not 0) lends its shard to thread 0 and sleeps until it is given back. */
static void park(struct vs_worker *w)
{
	struct vs_broker *b = w->b;
	struct vs_worker *h = &b->workers[0];
	uint32_t n_conns = w->n_conns; /* read while this thread still runs the shard */
	int load = atomic_load(&w->th.load), host_load = atomic_load(&h->th.load);
	pthread_mutex_lock(&b->park_lock);
	bool ok = b->host_open && !atomic_load(&b->stopping);
	if (ok) {
		w->lent = true;
		/* Under the lock: thread 0 cannot have closed its side meanwhile. */
		uint64_t one = 1;
		ssize_t r = write(h->th.ctl_io.fd, &one, sizeof(one));
		(void)r;
	}
	pthread_mutex_unlock(&b->park_lock);
	if (!ok)
		return;
	vs_log(b->log, VS_LOG_DEBUG,
	       "thread %d: load %d+%d per mille, its %u connection(s) now "
	       "served by thread 0",
	       w->idx, load, host_load, n_conns);
	int64_t since = vs_now_ms();
	vs_grace_offline(&w->th.gr); /* thread 0 runs the shard meanwhile */
	vs_msg_home_leave();	     /* what it made is freed where it is let go of */
	pthread_mutex_lock(&b->park_lock);
	while (w->lent)
		pthread_cond_wait(&b->park_cond, &b->park_lock);
	pthread_mutex_unlock(&b->park_lock);
	vs_msg_home_enter();
	vs_grace_online(&b->grace, &w->th.gr);
	w->now_ms = vs_now_ms();
	/* Given back soon after the lend: the load did not fit one thread after all. Wait longer
	 * each time before the next try, so the shard does not go back and forth. */
	if (w->now_ms - since < STABLE_MS)
		w->th.backoff_ms = w->th.backoff_ms ? w->th.backoff_ms * 2 : BACKOFF_MS;
	else
		w->th.backoff_ms = 0;
	if (w->th.backoff_ms > BACKOFF_MAX_MS)
		w->th.backoff_ms = BACKOFF_MAX_MS;
	w->th.no_lend_until_ms = w->now_ms + w->th.backoff_ms;
	w->th.win_start_ms = w->now_ms;
	w->th.win_waited_ns = w->loop.waited_ns;
	w->th.quiet = 0;
}

/* The descriptors of shard w other than its connections: its mailbox (i == 0), its listeners. */
static struct vs_io *fixed_io(struct vs_worker *w, int i)
{
	return i == 0 ? &w->mbox.io : &w->listens[i - 1].io;
}

/*
 * Thread 0 takes shard w's descriptors into its own epoll set, or gives them back to the
 * shard's set; w's thread is parked meanwhile, and nobody waits on the shard's set. Afterwards
 * w->loop.epfd names the set they are in, so the shard's code registers and changes its
 * descriptors there. The kernel can refuse a move (ENOMEM, or ENOSPC at the per-user limit of
 * epoll watches, fs.epoll.max_user_watches), and no descriptor may be left in a set whose
 * thread does not run its shard:
 * - the mailbox and listeners move first; if one cannot, those moved go back (removed first,
 *   which frees the watch that adding them back needs) and the shard stays where it was
 *   (false);
 * - a connection that cannot move is closed (its client reconnects), so the rest still move.
 */
static bool rehome(struct vs_worker *h, struct vs_worker *w, bool take)
{
	struct vs_log *log = h->b->log;
	int from = take ? w->own_epfd : h->loop.epfd;
	int to = take ? h->loop.epfd : w->own_epfd;
	int64_t t0 = vs_now_ns();
	for (int i = 0; i < 1 + w->n_listens; i++) {
		int rc = vs_loop_move(fixed_io(w, i), from, to);
		if (rc == 0)
			continue;
		for (int k = 0; k < i; k++) {
			struct vs_io *io = fixed_io(w, k);
			if (!io->events)
				continue; /* a paused listener: in no set */
			epoll_ctl(to, EPOLL_CTL_DEL, io->fd, NULL);
			struct epoll_event ev = {.events = io->events, .data.ptr = io};
			if (epoll_ctl(from, EPOLL_CTL_ADD, io->fd, &ev) < 0)
				vs_log(log, VS_LOG_ERR,
				       "thread %d: its %s is watched by no thread: %s", w->idx,
				       k ? "listener" : "mailbox", strerror(errno));
		}
		vs_log(log, VS_LOG_WARN,
		       "thread %d: cannot move its sockets to %s (%s); they stay "
		       "with %s",
		       w->idx, take ? "thread 0" : "their own thread", strerror(-rc),
		       take ? "their own thread" : "thread 0");
		return false;
	}
	uint32_t closed = 0;
	int err = 0;
	for (uint32_t i = 0; i < w->n_slots; i++) {
		struct vs_conn *c = w->conns[i];
		int rc = c ? vs_loop_move(&c->io, from, to) : 0;
		if (rc < 0) {
			err = -rc;
			closed++;
			vs_conn_close(c, VS_RC_SERVER_BUSY,
				      "its socket cannot move to another thread");
		}
	}
	w->loop.epfd = to;
	if (closed)
		vs_log(log, VS_LOG_WARN,
		       "thread %d: %u connection(s) closed: their sockets could not "
		       "move to %s (%s)",
		       w->idx, closed, take ? "thread 0" : "their own thread", strerror(err));
	vs_log(log, VS_LOG_DEBUG, "thread 0: %s thread %d's %u connection(s) in %.1f ms",
	       take ? "took" : "gave back", w->idx, w->n_conns, (double)(vs_now_ns() - t0) / 1e6);
	return true;
}

/* Thread 0 gives back the shard it took last (it keeps it if the move fails, and tries again
 * when it is next found busy). */
static void give_back(struct vs_worker *h)
{
	struct vs_broker *b = h->b;
	struct vs_worker *w = h->th.run[h->th.n_run - 1];
	if (!rehome(h, w, false))
		return;
	uint32_t n_conns = w->n_conns; /* read while this thread still runs the shard */
	h->th.n_run--;
	atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
	pthread_mutex_lock(&b->park_lock);
	w->lent = false;
	pthread_mutex_unlock(&b->park_lock);
	pthread_cond_broadcast(&b->park_cond);
	vs_log(b->log, VS_LOG_DEBUG,
	       "thread 0: load %d per mille, thread %d serves its %u "
	       "connection(s) again",
	       atomic_load(&h->th.load), w->idx, n_conns);
}

static bool runs(const struct vs_worker *h, const struct vs_worker *w)
{
	for (int k = 0; k < h->th.n_run; k++)
		if (h->th.run[k] == w)
			return true;
	return false;
}

/* Thread 0 takes the shards lent since it last looked. Only thread 0 ends a lend, so the moves
 * need not hold the lock (and a lend's thread touches nothing until the lend ends). */
static void take_lent(struct vs_worker *h)
{
	struct vs_broker *b = h->b;
	for (int i = 1; i < b->n_workers; i++) {
		struct vs_worker *w = &b->workers[i];
		pthread_mutex_lock(&b->park_lock);
		bool take = w->lent && !runs(h, w);
		pthread_mutex_unlock(&b->park_lock);
		if (!take)
			continue;
		if (rehome(h, w, true)) {
			w->now_ms = h->now_ms;
			h->th.run[h->th.n_run++] = w;
			continue;
		}
		pthread_mutex_lock(&b->park_lock);
		w->lent = false; /* its thread runs it again */
		pthread_mutex_unlock(&b->park_lock);
		pthread_cond_broadcast(&b->park_cond);
	}
	h->th.hot = 0;
}

static void on_ctl(struct vs_io *io, uint32_t events)
{
	(void)events;
	((struct vs_thread *)((char *)io - offsetof(struct vs_thread, ctl_io)))->rescan = true;
}

/* A turn of thread 0 while it runs other shards too: one wait and one dispatch for all of
 * them (their descriptors are in its set), then the rest of each shard's turn. */
static void host_turn(struct vs_worker *h)
{
	int timeout = INT32_MAX;
	for (int k = 0; k < h->th.n_run; k++) {
		struct vs_worker *w = h->th.run[k];
		w->now_ms = h->now_ms;
		int t = vs_worker_timeout(w);
		timeout = t < timeout ? t : timeout;
	}
	bool mail = false;
	for (int k = 0; k < h->th.n_run; k++)
		mail |= h->th.run[k]->mail = vs_worker_before_sleep(h->th.run[k], timeout != 0);
	struct epoll_event evs[VS_LOOP_BATCH];
	wait_begins(h, !mail && timeout != 0);
	int n = vs_loop_wait(&h->loop, evs, VS_LOOP_BATCH, mail ? 0 : timeout);
	wait_ends(h, !mail && timeout != 0);
	int64_t now = vs_now_ms();
	h->now_ms = now;
	for (int k = 0; k < h->th.n_run; k++) {
		struct vs_worker *w = h->th.run[k];
		atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
		w->now_ms = now;
	}
	if (n > 0)
		dispatch(h, evs, n);
	for (int k = 0; k < h->th.n_run; k++)
		vs_worker_after_events(h->th.run[k], h->th.run[k]->mail);
	vs_msg_home_collect();
}

/* Thread 0: runs its own shard, and the lent ones. */
static void host_main(struct vs_worker *h)
{
	struct vs_broker *b = h->b;
	while (!atomic_load_explicit(&b->stopping, memory_order_relaxed)) {
		if (h->th.n_run > 1)
			host_turn(h);
		else
			own_turn(h);
		if (h->th.rescan) {
			h->th.rescan = false;
			take_lent(h);
		}
		if (!end_window(h) || h->th.n_run == 1)
			continue;
		h->th.hot = atomic_load_explicit(&h->th.load, memory_order_relaxed) > RETURN_ABOVE
				? h->th.hot + 1
				: 0;
		if (h->th.hot >= RETURN_WINDOWS) {
			give_back(h);
			h->th.hot = 0;
		}
	}
	/* Every thread closes its own shard's connections: give back every lent shard, including
	 * one lent since the last look. A descriptor that cannot move back is closed by its own
	 * thread all the same, which takes it out of every set. */
	pthread_mutex_lock(&b->park_lock);
	b->host_open = false;
	for (int i = 1; i < b->n_workers; i++) {
		struct vs_worker *w = &b->workers[i];
		if (!w->lent)
			continue;
		if (runs(h, w) && !rehome(h, w, false))
			w->loop.epfd = w->own_epfd;
		atomic_store_explicit(&w->sleeping, false, memory_order_relaxed);
		w->lent = false;
	}
	h->th.n_run = 1;
	pthread_mutex_unlock(&b->park_lock);
	pthread_cond_broadcast(&b->park_cond);
}

void *vs_worker_main(void *arg)
{
	struct vs_worker *w = arg;
	struct vs_broker *b = w->b;
	vs_grace_online(&b->grace, &w->th.gr);
	vs_msg_home_enter(); /* the messages it makes come back to it to be freed (msg.h) */
	w->now_ms = vs_now_ms();
	w->next_sweep_ms = w->now_ms + 100;
	w->th.win_start_ms = w->now_ms;
	if (w->idx == 0 && consolidating(b)) {
		host_main(w);
	} else {
		/* A broker starts idle: its threads lend their shards at once, and get them back
		 * as soon as thread 0 is busy. */
		if (consolidating(b))
			park(w);
		while (!atomic_load_explicit(&b->stopping, memory_order_relaxed)) {
			own_turn(w);
			if (!end_window(w) || !consolidating(b))
				continue;
			int sum =
			    atomic_load_explicit(&w->th.load, memory_order_relaxed) +
			    atomic_load_explicit(&b->workers[0].th.load, memory_order_relaxed);
			w->th.quiet = sum < LEND_BELOW ? w->th.quiet + 1 : 0;
			if (w->th.quiet >= LEND_WINDOWS && w->now_ms >= w->th.no_lend_until_ms)
				park(w);
		}
	}
	vs_worker_shutdown(w);
	vs_msg_home_leave();
	vs_grace_offline(&w->th.gr);
	return NULL;
}

/* Thread 0's side of consolidation, when it is on: the eventfd that tells it a shard was lent,
 * and its list of the shards it runs. */
int vs_worker_host_init(struct vs_worker *w, char *err, size_t errlen)
{
	struct vs_broker *b = w->b;
	if (w->idx != 0 || !consolidating(b))
		return 0;
	w->th.ctl_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->th.ctl_io.fn = on_ctl;
	w->th.run = calloc((size_t)b->n_workers, sizeof(*w->th.run));
	if (w->th.ctl_io.fd < 0 || !w->th.run ||
	    vs_loop_add(&w->loop, &w->th.ctl_io, EPOLLIN | EPOLLET) < 0) {
		snprintf(err, errlen, "thread consolidation: %s", strerror(errno));
		return -errno;
	}
	w->th.run[w->th.n_run++] = w;
	b->host_open = true;
	return 0;
}
