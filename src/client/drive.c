/*
 * Who drives the client: its own thread (viesti_loop_start), the caller's event loop
 * (viesti_fd + viesti_process), viesti_loop(), or a blocking *_wait call that drives the loop
 * itself when no thread does. The epoll set behind viesti_fd() holds the socket (when there is
 * one) and an eventfd that API calls use to wake the loop thread when timers change.
 *
 * The lock is never held across epoll_wait(): the socket handler takes it when it runs.
 */
#include "client/client.h"

#include <errno.h>
#include <time.h>

#include "base/clock.h"

static int run_once(struct viesti *v, int timeout_ms)
{
	int rc = vs_loop_run_once(&v->loop, timeout_ms);
	pthread_mutex_lock(&v->lock);
	vs_client_run_timers(v);
	pthread_mutex_unlock(&v->lock);
	return rc < 0 ? rc : 0;
}

static int pick_timeout(struct viesti *v, int timeout_ms)
{
	pthread_mutex_lock(&v->lock);
	int t = vs_client_next_timeout(v);
	pthread_mutex_unlock(&v->lock);
	if (t < 0 || (timeout_ms >= 0 && timeout_ms < t))
		t = timeout_ms;
	return t;
}

static void *thread_main(void *arg)
{
	struct viesti *v = arg;
	pthread_mutex_lock(&v->lock);
	while (!v->thread_stop) {
		int t = vs_client_next_timeout(v);
		pthread_mutex_unlock(&v->lock);
		run_once(v, t);
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int viesti_loop_start(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	int rc = 0;
	if (v->thread_on) {
		rc = VIESTI_ESTATE;
	} else {
		v->thread_stop = false;
		rc = -pthread_create(&v->thread, NULL, thread_main, v);
		v->thread_on = rc == 0;
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int viesti_loop_stop(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	if (!v->thread_on || pthread_equal(pthread_self(), v->thread)) {
		pthread_mutex_unlock(&v->lock);
		return VIESTI_ESTATE;
	}
	v->thread_stop = true;
	vs_client_wake(v);
	pthread_t t = v->thread;
	pthread_mutex_unlock(&v->lock);
	pthread_join(t, NULL);
	pthread_mutex_lock(&v->lock);
	v->thread_on = false;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int viesti_fd(struct viesti *v)
{
	return v->loop.epfd;
}

bool viesti_want_write(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	bool w = vs_bytes_avail(&v->cp.out) > 0;
	pthread_mutex_unlock(&v->lock);
	return w;
}

int viesti_next_timeout_ms(struct viesti *v)
{
	return pick_timeout(v, -1);
}

static bool may_drive(struct viesti *v)
{
	pthread_mutex_lock(&v->lock);
	bool ok = !v->thread_on && !v->busy;
	pthread_mutex_unlock(&v->lock);
	return ok;
}

int viesti_process(struct viesti *v, int events)
{
	if (!may_drive(v))
		return VIESTI_ESTATE;
	return run_once(v, 0);
}

int viesti_loop(struct viesti *v, int timeout_ms)
{
	if (!may_drive(v))
		return VIESTI_ESTATE;
	return run_once(v, pick_timeout(v, timeout_ms));
}

int vs_client_wait(struct viesti *v, bool (*pred)(struct viesti *v, void *arg), void *arg,
		   int timeout_ms)
{
	int64_t end = timeout_ms < 0 ? -1 : vs_now_ms() + timeout_ms;
	if (v->busy || (v->thread_on && pthread_equal(pthread_self(), v->thread)))
		return VIESTI_ESTATE; /* from a callback: waiting would deadlock */
	while (!pred(v, arg)) {
		int64_t left = end < 0 ? -1 : end - vs_now_ms();
		if (end >= 0 && left <= 0)
			return -ETIMEDOUT;
		if (v->thread_on) {
			if (left < 0) {
				pthread_cond_wait(&v->cond, &v->lock);
			} else {
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				ts.tv_sec += left / 1000;
				ts.tv_nsec += (left % 1000) * 1000000;
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&v->cond, &v->lock, &ts);
			}
			continue;
		}
		int t = vs_client_next_timeout(v);
		if (t < 0 || (left >= 0 && left < t))
			t = (int)left;
		pthread_mutex_unlock(&v->lock);
		vs_loop_run_once(&v->loop, t);
		pthread_mutex_lock(&v->lock);
		vs_client_run_timers(v);
	}
	return 0;
}
