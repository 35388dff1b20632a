/*
 * Sessions: see session.h. Rings, packet ids, incoming QoS 2 ids, subscription list.
 */
#include "session/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vs_session *vs_session_new(const char *client_id, size_t len)
{
	struct vs_session *s = calloc(1, sizeof(*s) + len + 1);
	if (!s)
		return NULL;
	memcpy(s->client_id, client_id, len);
	s->client_id[len] = '\0';
	s->id_len = (uint16_t)len;
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->lock, NULL);
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
	free(s->in_qos2);
	for (uint32_t i = 0; i < s->n_subs; i++)
		free(s->subs[i].filter);
	free(s->subs);
	vs_msg_unref(s->will);
	vs_msg_unref(s->live_will);
	pthread_mutex_destroy(&s->lock);
	free(s->username);
	free(s);
}

void vs_qentry_fini(struct vs_qentry *e)
{
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

uint16_t vs_session_next_id(struct vs_session *s)
{
	if (s->inflight.count >= 65535)
		return 0;
	for (;;) {
		uint16_t id = s->next_id++;
		if (s->next_id == 0)
			s->next_id = 1;
		if (id && vs_session_find_inflight(s, id) < 0)
			return id;
	}
}

int vs_session_in_qos2_add(struct vs_session *s, uint16_t id)
{
	if (vs_session_in_qos2_has(s, id))
		return 0;
	if (s->n_in_qos2 == s->cap_in_qos2) {
		uint32_t cap = s->cap_in_qos2 ? s->cap_in_qos2 * 2 : 8;
		uint16_t *n = realloc(s->in_qos2, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->in_qos2 = n;
		s->cap_in_qos2 = cap;
	}
	s->in_qos2[s->n_in_qos2++] = id;
	return 1;
}

bool vs_session_in_qos2_has(struct vs_session *s, uint16_t id)
{
	for (uint32_t i = 0; i < s->n_in_qos2; i++)
		if (s->in_qos2[i] == id)
			return true;
	return false;
}

bool vs_session_in_qos2_del(struct vs_session *s, uint16_t id)
{
	for (uint32_t i = 0; i < s->n_in_qos2; i++) {
		if (s->in_qos2[i] == id) {
			s->in_qos2[i] = s->in_qos2[--s->n_in_qos2];
			return true;
		}
	}
	return false;
}

int vs_session_sub_add(struct vs_session *s, const char *filter, size_t len, uint8_t qos,
		       uint8_t options, uint32_t sub_id)
{
	for (uint32_t i = 0; i < s->n_subs; i++) {
		struct vs_session_sub *x = &s->subs[i];
		if (x->len == len && memcmp(x->filter, filter, len) == 0) {
			x->qos = qos;
			x->options = options;
			x->sub_id = sub_id;
			return 0;
		}
	}
	if (s->n_subs == s->cap_subs) {
		uint32_t cap = s->cap_subs ? s->cap_subs * 2 : 4;
		struct vs_session_sub *n = realloc(s->subs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->subs = n;
		s->cap_subs = cap;
	}
	char *f = malloc(len + 1);
	if (!f)
		return -ENOMEM;
	memcpy(f, filter, len);
	f[len] = '\0';
	s->subs[s->n_subs++] = (struct vs_session_sub){
		.filter = f, .len = (uint16_t)len, .qos = qos, .options = options, .sub_id = sub_id};
	return 1;
}

int vs_session_sub_del(struct vs_session *s, const char *filter, size_t len)
{
	for (uint32_t i = 0; i < s->n_subs; i++) {
		if (s->subs[i].len == len && memcmp(s->subs[i].filter, filter, len) == 0) {
			free(s->subs[i].filter);
			s->subs[i] = s->subs[--s->n_subs];
			return 1;
		}
	}
	return 0;
}
