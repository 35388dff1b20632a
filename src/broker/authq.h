/*
 * Password checks off the event loops. Checking a CONNECT's password costs what the password
 * file makes it cost: $7$ PBKDF2 a fraction of a millisecond, $scram-sha-256$ a few, $argon2id$
 * with Mosquitto 2.1's parameters ~165 ms and 46 MiB. On a worker thread, a flood of
 * wrong-password CONNECTs would stop every client of that worker; here the worker hands the check
 * to an authentication thread, the connection waits without being read, and the answer comes
 * back through the worker's mailbox (VS_MAIL_AUTH).
 *
 * The threads run at a lower priority than the workers (nice +10), so a flood of checks slows
 * down new logins, not the traffic of connected clients. A connection that is closed while its
 * check waits (its client left, or the CONNECT deadline passed) cancels it: a check nobody waits
 * for is skipped, so a flood costs what it can keep open, not what it can send.
 *
 * The password file used is the listener's as of the check (authentication threads are readers
 * of the reloadable state, grace.h): a reload that removes a user applies to checks still
 * waiting.
 */
#ifndef VS_BROKER_AUTHQ_H
#define VS_BROKER_AUTHQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/grace.h"

struct vs_broker;
struct vs_listener;

/* One check, shared by the queue and the waiting connection (two references). */
struct vs_auth_job {
	atomic_int refs;
	atomic_bool cancelled;	  /* the connection is gone: skip it */
	struct vs_auth_job *next; /* in the queue */
	int worker;		  /* where the answer goes */
	uint32_t slot;
	uint64_t conn_id;
	const struct vs_listener *listener;
	char *user;
	uint8_t *pw;
	size_t pwlen;
};

struct vs_authq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vs_auth_job *head, *tail;
	size_t pending;
	bool stopping;
	pthread_t *threads;
	int n_threads;
	struct vs_grace_reader *readers; /* one per thread */
};

/* Starts n authentication threads for broker b. Returns 0 or -errno. */
int vs_authq_start(struct vs_broker *b, int n);
/* Stops and joins them; jobs still queued are dropped. */
void vs_authq_stop(struct vs_broker *b);

/* Queues a check of user's password pw[0..pwlen) (copied) for the connection (worker, slot,
 * conn_id) of listener l. Returns the job with a reference for the caller (who cancels and
 * unrefs it if the connection closes first), or NULL (no memory). */
struct vs_auth_job *vs_authq_submit(struct vs_broker *b, int worker, uint32_t slot,
				    uint64_t conn_id, const struct vs_listener *l, const char *user,
				    const uint8_t *pw, size_t pwlen);
/* The connection no longer waits for the job. */
void vs_auth_job_cancel(struct vs_auth_job *j);

#endif
