/*
 * Sessions: see session.h. Rings, packet ids, incoming QoS 2 ids, subscription list.
 */
#include "base/vec.h"
#include "session/session.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/minset.h"

/*
 * A session's lock is held for a few hundred nanoseconds (a queue push), and when many
 * publishers on several threads deliver into one subscriber's session, they meet on it. A
 * normal mutex then puts the loser to sleep and wakes it with two futex calls, which on a
 * machine where system calls are expensive cost more than the wait: 50 -> 1 fan-in with two
 * threads made 0.14 futex calls per message. An adaptive mutex spins briefly first (glibc's
 * PTHREAD_MUTEX_ADAPTIVE_NP); the same run made 0.17 system calls per message in all instead of
 * 0.38 (bench/README.md).
 */
static pthread_mutexattr_t adaptive_attr;

static void init_adaptive(void)
{
	pthread_mutexattr_init(&adaptive_attr);
	pthread_mutexattr_settype(&adaptive_attr, PTHREAD_MUTEX_ADAPTIVE_NP);
}

/* An idle connection's budget (bench/idle-conn): with a client id of up to 23 bytes, a session
 * is one malloc chunk of 288 bytes. */
_Static_assert(offsetof(struct vs_session, client_id) <= 256, "struct vs_session grew");

struct vs_session *vs_session_new(const char *client_id, size_t len)
{
	struct vs_session *s = calloc(1, offsetof(struct vs_session, client_id) + len + 1);
	if (!s)
		return NULL;
	memcpy(s->client_id, client_id, len);
	s->client_id[len] = '\0';
	s->id_len = (uint16_t)len;
	atomic_init(&s->refs, 1);
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_adaptive);
	pthread_mutex_init(&s->lock, &adaptive_attr);
	s->next_id = 1;
	return s;
}

void vs_session_unref(struct vs_session *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	vs_ring_clear(&s->queue);
	vs_ring_clear(&s->inflight);
	free(s->queue.e);
	free(s->inflight.e);
	free(s->in_qos2); /* or the bitmap: the same pointer */
	vs_session_subs_free(s->subs);
	vs_feed_clear(s);
	vs_msg_unref(s->will);
	vs_msg_unref(s->live_will);
	pthread_mutex_destroy(&s->lock);
	free(s->username);
	free(s);
}

static void let_go(struct vs_qentry *e)
{
	if (e->held) {
		vs_minset_del(e->msg->held, e->msg->sseq);
		e->held = false;
	}
}

void vs_qentry_hold(struct vs_qentry *e)
{
	if (!e->held && e->msg && e->msg->held && vs_minset_add(e->msg->held, e->msg->sseq) == 0)
		e->held = true;
}

void vs_session_hold(struct vs_session *s, bool hold)
{
	struct vs_ring *rings[2] = {&s->inflight, &s->queue};
	for (int r = 0; r < 2; r++)
		for (uint32_t i = 0; i < rings[r]->count; i++) {
			struct vs_qentry *e = vs_ring_at(rings[r], i);
			if (hold)
				vs_qentry_hold(e);
			else
				let_go(e);
		}
}

void vs_qentry_fini(struct vs_qentry *e)
{
	if (e->msg)
		let_go(e);
	vs_msg_unref(e->msg);
	if (e->n_sub_ids > 1)
		free(e->sub_ids);
	e->msg = NULL;
	e->n_sub_ids = 0;
}

int vs_qentry_set_sub_ids(struct vs_qentry *e, const uint32_t *ids, uint32_t n)
{
	e->n_sub_ids = n;
	if (n == 1)
		e->sub_id = ids[0];
	if (n <= 1)
		return 0;
	e->sub_ids = malloc(n * sizeof(*ids));
	if (!e->sub_ids) {
		e->n_sub_ids = 0;
		return -ENOMEM;
	}
	memcpy(e->sub_ids, ids, n * sizeof(*ids));
	return 0;
}

int vs_ring_push(struct vs_ring *r, const struct vs_qentry *e)
{
	if (r->count == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 8;
		struct vs_qentry *n = malloc(cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (uint32_t i = 0; i < r->count; i++)
			n[i] = r->e[(r->head + i) & (r->cap - 1)];
		free(r->e);
		r->e = n;
		r->cap = cap;
		r->head = 0;
	}
	r->e[(r->head + r->count) & (r->cap - 1)] = *e;
	r->count++;
	return 0;
}

struct vs_qentry *vs_ring_at(struct vs_ring *r, uint32_t i)
{
	return &r->e[(r->head + i) & (r->cap - 1)];
}

void vs_ring_pop(struct vs_ring *r, struct vs_qentry *out)
{
	*out = r->e[r->head];
	r->head = (r->head + 1) & (r->cap - 1);
	r->count--;
	if (r->count == 0)
		r->head = 0;
}

void vs_ring_remove(struct vs_ring *r, uint32_t i)
{
	if (i == 0) {
		struct vs_qentry dummy;
		vs_ring_pop(r, &dummy);
		return;
	}
	for (uint32_t j = i; j + 1 < r->count; j++)
		*vs_ring_at(r, j) = *vs_ring_at(r, j + 1);
	r->count--;
}

void vs_ring_clear(struct vs_ring *r)
{
	while (r->count) {
		struct vs_qentry e;
		vs_ring_pop(r, &e);
		vs_qentry_fini(&e);
	}
}

int vs_session_find_inflight(struct vs_session *s, uint16_t packet_id)
{
	for (uint32_t i = 0; i < s->inflight.count; i++)
		if (vs_ring_at(&s->inflight, i)->packet_id == packet_id)
			return (int)i;
	return -1;
}

/* A window this small is scanned for each id. */
#define ID_SCAN 16

/*
 * Ids are handed out in order, and a window of thousands (MQTT 5's Receive Maximum defaults to
 * 65,535 [MQTT-3.3.4-9]) would cost a scan of the window per message. So past ID_SCAN one pass
 * over the window marks the ids in flight, and the run of free ids from next_id on is counted:
 * those are handed out without looking again. Ids enter the window only from here (and from a
 * restore, before any is handed out), and leaving it only frees more, so the run stays free.
 */
uint16_t vs_session_next_id(struct vs_session *s)
{
	if (s->inflight.count >= 65535)
		return 0;
	if (s->inflight.count >= ID_SCAN && s->free_ids == 0) {
		uint64_t used[65536 / 64] = {0};
		for (uint32_t i = 0; i < s->inflight.count; i++) {
			uint16_t id = vs_ring_at(&s->inflight, i)->packet_id;
			used[id >> 6] |= 1ull << (id & 63);
		}
		used[0] |= 1; /* 0 is not an id [MQTT-2.2.1-3] */
		while ((used[s->next_id >> 6] >> (s->next_id & 63)) & 1)
			s->next_id++; /* stops: fewer than 65,535 are in use */
		uint16_t id = s->next_id;
		while (s->free_ids < UINT16_MAX && !((used[id >> 6] >> (id & 63)) & 1)) {
			s->free_ids++;
			id++;
		}
	}
	if (s->free_ids) {
		s->free_ids--;
		uint16_t id = s->next_id++;
		if (s->next_id == 0)
			s->next_id = 1;
		return id;
	}
	for (;;) {
		uint16_t id = s->next_id++;
		if (s->next_id == 0)
			s->next_id = 1;
		if (id && vs_session_find_inflight(s, id) < 0)
			return id;
	}
}

static bool bit_has(const uint64_t *bits, uint16_t id)
{
	return (bits[id >> 6] >> (id & 63)) & 1;
}

/* Moves the array's ids into a bitmap of every id. */
static int in_qos2_to_bitmap(struct vs_session *s)
{
	uint64_t *bits = calloc(65536 / 64, sizeof(*bits));
	if (!bits)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->n_in_qos2; i++)
		bits[s->in_qos2[i] >> 6] |= 1ull << (s->in_qos2[i] & 63);
	free(s->in_qos2);
	s->in_qos2_bits = bits;
	s->cap_in_qos2 = VS_INQOS2_BITMAP;
	return 0;
}

int vs_session_in_qos2_add(struct vs_session *s, uint16_t id)
{
	/* 0 is no packet id [MQTT-2.2.1-3] (the codec refuses it; a damaged store might not):
	 * never held, so that the count of 1..65535 fits n_in_qos2. */
	if (id == 0 || vs_session_in_qos2_has(s, id))
		return 0;
	if (s->cap_in_qos2 != VS_INQOS2_BITMAP && s->n_in_qos2 == s->cap_in_qos2 &&
	    s->cap_in_qos2 >= VS_INQOS2_SCAN && in_qos2_to_bitmap(s) < 0)
		return -ENOMEM;
	if (s->cap_in_qos2 == VS_INQOS2_BITMAP) {
		s->in_qos2_bits[id >> 6] |= 1ull << (id & 63);
		s->n_in_qos2++;
		return 1;
	}
	uint32_t cap = s->cap_in_qos2; /* at most VS_INQOS2_SCAN */
	if (VS_VEC_GROW(s->in_qos2, cap, s->n_in_qos2 + 1, 8) < 0)
		return -ENOMEM;
	s->cap_in_qos2 = (uint16_t)cap;
	s->in_qos2[s->n_in_qos2++] = id;
	return 1;
}

bool vs_session_in_qos2_has(struct vs_session *s, uint16_t id)
{
	if (s->cap_in_qos2 == VS_INQOS2_BITMAP)
		return bit_has(s->in_qos2_bits, id);
	for (uint32_t i = 0; i < s->n_in_qos2; i++)
		if (s->in_qos2[i] == id)
			return true;
	return false;
}

bool vs_session_in_qos2_del(struct vs_session *s, uint16_t id)
{
	if (s->cap_in_qos2 == VS_INQOS2_BITMAP) {
		if (!bit_has(s->in_qos2_bits, id))
			return false;
		s->in_qos2_bits[id >> 6] &= ~(1ull << (id & 63));
		if (--s->n_in_qos2 == 0) { /* back to the array: memory follows use */
			free(s->in_qos2_bits);
			s->in_qos2 = NULL;
			s->cap_in_qos2 = 0;
		}
		return true;
	}
	for (uint32_t i = 0; i < s->n_in_qos2; i++) {
		if (s->in_qos2[i] == id) {
			s->in_qos2[i] = s->in_qos2[--s->n_in_qos2];
			return true;
		}
	}
	return false;
}

bool vs_session_in_qos2_next(const struct vs_session *s, uint32_t *pos, uint16_t *id)
{
	if (s->cap_in_qos2 != VS_INQOS2_BITMAP) {
		if (*pos >= s->n_in_qos2)
			return false;
		*id = s->in_qos2[(*pos)++];
		return true;
	}
	for (; *pos < 65536; (*pos)++) {
		if (bit_has(s->in_qos2_bits, (uint16_t)*pos)) {
			*id = (uint16_t)(*pos)++;
			return true;
		}
	}
	return false;
}

void vs_session_subs_free(struct vs_session_subs *subs)
{
	if (!subs)
		return;
	for (uint32_t i = 0; i < subs->n; i++)
		free(subs->v[i].filter);
	free(subs->idx);
	free(subs);
}

static uint32_t sub_home(const struct vs_session_subs *x, const char *filter, size_t len)
{
	return (uint32_t)vs_hash64(x->seed, filter, len) & (x->idx_cap - 1);
}

static bool sub_is(const struct vs_session_sub *e, const char *filter, size_t len)
{
	return e->len == len && memcmp(e->filter, filter, len) == 0;
}

/* The index slot holding filter, or the empty slot where it would go. */
static uint32_t idx_slot(const struct vs_session_subs *x, const char *filter, size_t len)
{
	uint32_t mask = x->idx_cap - 1;
	for (uint32_t i = sub_home(x, filter, len);; i = (i + 1) & mask)
		if (!x->idx[i] || sub_is(&x->v[x->idx[i] - 1], filter, len))
			return i;
}

/* Position of filter in x->v, or -1. */
static int64_t sub_find(const struct vs_session_subs *x, const char *filter, size_t len)
{
	if (!x)
		return -1;
	if (x->idx) {
		uint32_t k = x->idx[idx_slot(x, filter, len)];
		return k ? (int64_t)k - 1 : -1;
	}
	for (uint32_t i = 0; i < x->n; i++)
		if (sub_is(&x->v[i], filter, len))
			return i;
	return -1;
}

/* (Re)builds the index for at least n entries, or drops it when n is small. */
static int idx_build(struct vs_session_subs *x, uint32_t n)
{
	if (n <= VS_SESSION_SUBS_SCAN) {
		free(x->idx);
		x->idx = NULL;
		x->idx_cap = 0;
		return 0;
	}
	if (x->idx && x->idx_cap >= 2 * n)
		return 0;
	uint32_t cap = x->idx_cap ? x->idx_cap : 32;
	while (cap < 2 * n)
		cap *= 2;
	uint32_t *idx = calloc(cap, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	free(x->idx);
	x->idx = idx;
	x->idx_cap = cap;
	if (!x->seed)
		x->seed = vs_hash_seed();
	for (uint32_t i = 0; i < x->n; i++)
		x->idx[idx_slot(x, x->v[i].filter, x->v[i].len)] = i + 1;
	return 0;
}

/* Removes the index entry at slot i, shifting later entries of its probe run back. */
static void idx_remove(struct vs_session_subs *x, uint32_t i)
{
	uint32_t mask = x->idx_cap - 1;
	x->idx[i] = 0;
	for (uint32_t j = (i + 1) & mask; x->idx[j]; j = (j + 1) & mask) {
		const struct vs_session_sub *e = &x->v[x->idx[j] - 1];
		uint32_t home = sub_home(x, e->filter, e->len);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			x->idx[i] = x->idx[j];
			x->idx[j] = 0;
			i = j;
		}
	}
}

/* Room for one more entry (array and index). */
static int subs_reserve(struct vs_session *s)
{
	struct vs_session_subs *x = s->subs;
	uint32_t n = x ? x->n : 0, cap = x ? x->cap : 0;
	if (n == cap) {
		cap = cap ? cap * 2 : 4;
		x = realloc(x, sizeof(*x) + (size_t)cap * sizeof(x->v[0]));
		if (!x)
			return -ENOMEM;
		if (!s->subs)
			*x = (struct vs_session_subs){0};
		x->cap = cap;
		s->subs = x;
	}
	return idx_build(x, n + 1);
}

/* After removals: memory follows the subscriptions left (array and index at most 1/8 used
 * are halved or rebuilt smaller; at VS_SESSION_SUBS_SCAN entries the index goes). */
static void subs_shrink(struct vs_session *s)
{
	struct vs_session_subs *x = s->subs;
	if (x->idx &&
	    (x->n <= VS_SESSION_SUBS_SCAN || (x->n * 8 < x->idx_cap && x->idx_cap > 32))) {
		uint32_t *old = x->idx;
		uint32_t old_cap = x->idx_cap;
		x->idx = NULL;
		x->idx_cap = 0;
		if (idx_build(x, x->n) < 0) { /* keep the larger one */
			x->idx = old;
			x->idx_cap = old_cap;
		} else {
			free(old);
		}
	}
	if (x->cap > 16 && x->n * 8 < x->cap) {
		struct vs_session_subs *n =
		    realloc(x, sizeof(*x) + (size_t)(x->cap / 2) * sizeof(x->v[0]));
		if (n) {
			n->cap /= 2;
			s->subs = n;
		}
	}
}

int vs_session_sub_add(struct vs_session *s, const char *filter, size_t len, uint8_t qos,
		       uint8_t options, uint32_t sub_id)
{
	int64_t at = sub_find(s->subs, filter, len);
	if (at >= 0) {
		struct vs_session_sub *x = &s->subs->v[at];
		x->qos = qos;
		x->options = options;
		x->sub_id = sub_id;
		return 0;
	}
	/* The copy first: a failure after subs_reserve() would leave a first subscription's
	 * array allocated and empty, where the list is NULL until there is one. */
	char *f = malloc(len + 1);
	if (!f)
		return -ENOMEM;
	if (subs_reserve(s) < 0) {
		free(f);
		return -ENOMEM;
	}
	memcpy(f, filter, len);
	f[len] = '\0';
	struct vs_session_subs *x = s->subs;
	x->v[x->n] = (struct vs_session_sub){
	    .filter = f, .len = (uint16_t)len, .qos = qos, .options = options, .sub_id = sub_id};
	x->n++;
	if (x->idx)
		x->idx[idx_slot(x, f, len)] = x->n;
	return 1;
}

int vs_session_sub_del(struct vs_session *s, const char *filter, size_t len)
{
	struct vs_session_subs *x = s->subs;
	int64_t at = sub_find(x, filter, len);
	if (at < 0)
		return 0;
	uint32_t last = x->n - 1;
	if (x->idx) {
		idx_remove(x, idx_slot(x, filter, len));
		if ((uint32_t)at != last) /* the last entry moves into the hole */
			x->idx[idx_slot(x, x->v[last].filter, x->v[last].len)] = (uint32_t)at + 1;
	}
	free(x->v[at].filter);
	x->v[at] = x->v[last];
	x->n--;
	if (x->n == 0) {
		vs_session_subs_free(x);
		s->subs = NULL;
		return 1;
	}
	subs_shrink(s);
	return 1;
}

int vs_feed_push(struct vs_session *s, struct vs_msg *msg, uint8_t qos, uint32_t sub_id)
{
	struct vs_feed *f = s->feed;
	if (f && f->head && f->n == f->cap) {
		/* Taken entries leave room at the front: move the waiting ones there. */
		memmove(f->e, f->e + f->head, (size_t)(f->n - f->head) * sizeof(f->e[0]));
		f->n -= f->head;
		f->head = 0;
	}
	if (!f || f->n == f->cap) {
		uint32_t cap = f ? f->cap * 2 : 64;
		struct vs_feed *nf = realloc(f, sizeof(*f) + (size_t)cap * sizeof(f->e[0]));
		if (!nf) {
			vs_msg_unref(msg);
			return -ENOMEM;
		}
		if (!f)
			nf->head = nf->n = 0;
		nf->cap = cap;
		s->feed = f = nf;
	}
	f->e[f->n++] = (struct vs_feed_entry){.msg = msg, .sub_id = sub_id, .qos = qos};
	return 0;
}

void vs_feed_pop(struct vs_session *s, struct vs_feed_entry *out)
{
	struct vs_feed *f = s->feed;
	*out = f->e[f->head++];
	if (f->head == f->n) {
		free(f);
		s->feed = NULL;
	}
}

void vs_feed_clear(struct vs_session *s)
{
	struct vs_feed_entry e;
	while (vs_feed_len(s)) {
		vs_feed_pop(s, &e);
		vs_msg_unref(e.msg);
	}
}
