/*
 * Authentication threads (see authq.h). A FIFO of jobs under one mutex: submitting and taking a
 * job are a few pointer moves; the work is the check itself, done with no lock held.
 */
#include "broker/authq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/passwd.h"
#include "broker/broker.h"
#include "broker/worker.h"

static void job_unref(struct vs_auth_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	if (j->pw) {
		OPENSSL_cleanse(j->pw, j->pwlen);
		free(j->pw);
	}
	free(j->user);
	free(j);
}

void vs_auth_job_cancel(struct vs_auth_job *j)
{
	atomic_store(&j->cancelled, true);
	job_unref(j);
}

/* Takes the next job, waiting (offline: this thread holds nothing shared meanwhile) while the
 * queue is empty. NULL when stopping. */
static struct vs_auth_job *take(struct vs_authq *q, struct vs_grace *g, struct vs_grace_reader *r)
{
	pthread_mutex_lock(&q->lock);
	while (!q->head && !q->stopping) {
		vs_grace_offline(r);
		pthread_cond_wait(&q->cond, &q->lock);
	}
	struct vs_auth_job *j = q->head;
	if (j && !q->stopping) {
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->pending--;
	} else {
		j = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	if (j)
		vs_grace_online(g, r);
	return j;
}

/* The check, against the listener's password file as of now. */
static bool check(const struct vs_auth_job *j)
{
	const struct vs_listener_sec *sec = vs_listener_sec(j->listener);
	return sec->passwd && vs_passwd_check(sec->passwd, j->user, j->pw, j->pwlen) == 1;
}

struct thread_arg {
	struct vs_broker *b;
	struct vs_grace_reader *r;
};

static void *auth_main(void *arg)
{
	struct vs_broker *b = ((struct thread_arg *)arg)->b;
	struct vs_grace_reader *r = ((struct thread_arg *)arg)->r;
	free(arg);
	/* Below the workers: a flood of checks delays logins, not connected clients. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	struct vs_authq *q = b->authq;
	struct vs_auth_job *j;
	while ((j = take(q, &b->grace, r)) != NULL) {
		if (!atomic_load(&j->cancelled)) {
			bool ok = check(j);
			struct vs_mail m = {.type = VS_MAIL_AUTH,
					    .reason = ok,
					    .slot = j->slot,
					    .conn_id = j->conn_id};
			vs_worker_post_now(&b->workers[j->worker], &m);
		}
		job_unref(j);
		vs_grace_quiescent(&b->grace, r);
	}
	vs_grace_offline(r);
	return NULL;
}

int vs_authq_start(struct vs_broker *b, int n)
{
	struct vs_authq *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->threads = calloc((size_t)n, sizeof(*q->threads));
	q->readers = calloc((size_t)n, sizeof(*q->readers));
	b->authq = q;
	if (!q->threads || !q->readers)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		struct thread_arg *a = malloc(sizeof(*a));
		if (!a || vs_grace_register(&b->grace, &q->readers[i]) < 0) {
			free(a);
			return -ENOMEM;
		}
		*a = (struct thread_arg){.b = b, .r = &q->readers[i]};
		int rc = pthread_create(&q->threads[i], NULL, auth_main, a);
		if (rc != 0) {
			free(a);
			return -rc;
		}
		q->n_threads++;
	}
	return 0;
}

void vs_authq_stop(struct vs_broker *b)
{
	struct vs_authq *q = b->authq;
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (int i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	while (q->head) {
		struct vs_auth_job *j = q->head;
		q->head = j->next;
		job_unref(j);
	}
	for (int i = 0; q->readers && i < q->n_threads; i++)
		vs_grace_unregister(&b->grace, &q->readers[i]);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->threads);
	free(q->readers);
	free(q);
	b->authq = NULL;
}

struct vs_auth_job *vs_authq_submit(struct vs_broker *b, int worker, uint32_t slot,
				    uint64_t conn_id, const struct vs_listener *l, const char *user,
				    const uint8_t *pw, size_t pwlen)
{
	struct vs_auth_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	atomic_init(&j->refs, 2); /* the queue's and the caller's */
	j->worker = worker;
	j->slot = slot;
	j->conn_id = conn_id;
	j->listener = l;
	j->user = strdup(user);
	j->pw = malloc(pwlen ? pwlen : 1);
	j->pwlen = pwlen;
	if (!j->user || !j->pw) {
		atomic_store(&j->refs, 1);
		job_unref(j);
		return NULL;
	}
	if (pwlen)
		memcpy(j->pw, pw, pwlen);
	struct vs_authq *q = b->authq;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->pending++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return j;
}
