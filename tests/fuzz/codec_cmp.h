/*
 * Helpers shared by the codec fuzz targets and unit tests (header-only, static functions):
 * semantic equality of two decoded packets, and preparing a decoded packet for re-encoding.
 *
 * A decoded packet keeps its repeatable properties (User Property, Subscription Identifier) in
 * the raw property block; the encoder takes them from `users`/`user_raw` and `sub_ids`.
 * codec_prep_reencode() bridges the two with malloc'd scratch space (test code only; the codec
 * itself never allocates), freed by codec_prep_free().
 */
#ifndef VS_TESTS_CODEC_CMP_H
#define VS_TESTS_CODEC_CMP_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

static inline bool codec_buf_eq(struct vs_buf a, struct vs_buf b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool codec_props_eq(const struct vs_props *a, const struct vs_props *b)
{
	const uint64_t rep = (1ull << VS_PROP_USER) | (1ull << VS_PROP_SUB_ID);
	struct vs_user_prop ua, ub;
	uint32_t ia, ib;
	size_t pa = 0, pb = 0;
	int ra, rb;

	if ((a->present & ~rep) != (b->present & ~rep) || a->n_user != b->n_user ||
	    a->n_sub_ids != b->n_sub_ids)
		return false;
#define F(id, f)                                                                                   \
	if ((a->present & (1ull << (id))) && a->f != b->f)                                         \
		return false;
#define S(id, f)                                                                                   \
	if ((a->present & (1ull << (id))) && !codec_buf_eq(a->f, b->f))                            \
		return false;
	F(VS_PROP_PAYLOAD_FORMAT, payload_format)
	F(VS_PROP_REQUEST_PROBLEM_INFO, request_problem_info)
	F(VS_PROP_REQUEST_RESPONSE_INFO, request_response_info)
	F(VS_PROP_MAX_QOS, max_qos)
	F(VS_PROP_RETAIN_AVAILABLE, retain_available)
	F(VS_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available)
	F(VS_PROP_SUB_ID_AVAILABLE, sub_id_available)
	F(VS_PROP_SHARED_SUB_AVAILABLE, shared_sub_available)
	F(VS_PROP_SERVER_KEEPALIVE, server_keepalive)
	F(VS_PROP_RECEIVE_MAX, receive_max)
	F(VS_PROP_TOPIC_ALIAS_MAX, topic_alias_max)
	F(VS_PROP_TOPIC_ALIAS, topic_alias)
	F(VS_PROP_MESSAGE_EXPIRY, message_expiry)
	F(VS_PROP_SESSION_EXPIRY, session_expiry)
	F(VS_PROP_WILL_DELAY, will_delay)
	F(VS_PROP_MAX_PACKET_SIZE, max_packet_size)
	F(VS_PROP_SUB_ID, sub_id)
	S(VS_PROP_CONTENT_TYPE, content_type)
	S(VS_PROP_RESPONSE_TOPIC, response_topic)
	S(VS_PROP_CORRELATION_DATA, correlation_data)
	S(VS_PROP_ASSIGNED_CLIENT_ID, assigned_client_id)
	S(VS_PROP_AUTH_METHOD, auth_method)
	S(VS_PROP_AUTH_DATA, auth_data)
	S(VS_PROP_RESPONSE_INFO, response_info)
	S(VS_PROP_SERVER_REFERENCE, server_reference)
	S(VS_PROP_REASON_STRING, reason_string)
#undef F
#undef S
	for (;;) {
		ra = vs_props_next_user(a, &pa, &ua);
		rb = vs_props_next_user(b, &pb, &ub);
		if (ra != rb)
			return false;
		if (!ra)
			break;
		if (!codec_buf_eq(ua.key, ub.key) || !codec_buf_eq(ua.val, ub.val))
			return false;
	}
	pa = pb = 0;
	for (;;) {
		ra = vs_props_next_sub_id(a, &pa, &ia);
		rb = vs_props_next_sub_id(b, &pb, &ib);
		if (ra != rb)
			return false;
		if (!ra)
			break;
		if (ia != ib)
			return false;
	}
	return true;
}

static inline bool codec_packet_eq(const struct vs_packet *a, const struct vs_packet *b,
				   int version)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case VS_CONNECT: {
		const struct vs_connect *x = &a->connect, *y = &b->connect;
		if (x->version != y->version || x->clean != y->clean ||
		    x->keepalive != y->keepalive || !codec_props_eq(&x->props, &y->props) ||
		    !codec_buf_eq(x->client_id, y->client_id) || x->will != y->will ||
		    x->has_username != y->has_username || x->has_password != y->has_password ||
		    !codec_buf_eq(x->username, y->username) ||
		    !codec_buf_eq(x->password, y->password))
			return false;
		if (x->will && (x->will_qos != y->will_qos || x->will_retain != y->will_retain ||
				!codec_props_eq(&x->will_props, &y->will_props) ||
				!codec_buf_eq(x->will_topic, y->will_topic) ||
				!codec_buf_eq(x->will_payload, y->will_payload)))
			return false;
		return true;
	}
	case VS_CONNACK:
		return a->connack.session_present == b->connack.session_present &&
		       a->connack.reason == b->connack.reason &&
		       codec_props_eq(&a->connack.props, &b->connack.props);
	case VS_PUBLISH:
		return a->publish.qos == b->publish.qos && a->publish.dup == b->publish.dup &&
		       a->publish.retain == b->publish.retain &&
		       a->publish.packet_id == b->publish.packet_id &&
		       codec_buf_eq(a->publish.topic, b->publish.topic) &&
		       codec_buf_eq(a->publish.payload, b->publish.payload) &&
		       codec_props_eq(&a->publish.props, &b->publish.props);
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		return a->ack.packet_id == b->ack.packet_id && a->ack.reason == b->ack.reason &&
		       codec_props_eq(&a->ack.props, &b->ack.props);
	case VS_SUBSCRIBE: {
		struct vs_sub_entry ea, eb;
		size_t pa = 0, pb = 0;
		int ra, rb;
		if (a->subscribe.packet_id != b->subscribe.packet_id ||
		    a->subscribe.count != b->subscribe.count ||
		    !codec_props_eq(&a->subscribe.props, &b->subscribe.props))
			return false;
		for (;;) {
			ra = vs_subscribe_next(&a->subscribe, version, &pa, &ea);
			rb = vs_subscribe_next(&b->subscribe, version, &pb, &eb);
			if (ra != rb)
				return false;
			if (!ra)
				return true;
			if (!codec_buf_eq(ea.filter, eb.filter) || ea.qos != eb.qos ||
			    ea.no_local != eb.no_local ||
			    ea.retain_as_published != eb.retain_as_published ||
			    ea.retain_handling != eb.retain_handling)
				return false;
		}
	}
	case VS_UNSUBSCRIBE: {
		struct vs_buf fa, fb;
		size_t pa = 0, pb = 0;
		int ra, rb;
		if (a->unsubscribe.packet_id != b->unsubscribe.packet_id ||
		    a->unsubscribe.count != b->unsubscribe.count ||
		    !codec_props_eq(&a->unsubscribe.props, &b->unsubscribe.props))
			return false;
		for (;;) {
			ra = vs_unsubscribe_next(&a->unsubscribe, &pa, &fa);
			rb = vs_unsubscribe_next(&b->unsubscribe, &pb, &fb);
			if (ra != rb)
				return false;
			if (!ra)
				return true;
			if (!codec_buf_eq(fa, fb))
				return false;
		}
	}
	case VS_SUBACK:
	case VS_UNSUBACK:
		return a->suback.packet_id == b->suback.packet_id &&
		       a->suback.count == b->suback.count &&
		       (a->suback.count == 0 ||
			memcmp(a->suback.codes, b->suback.codes, a->suback.count) == 0) &&
		       codec_props_eq(&a->suback.props, &b->suback.props);
	case VS_DISCONNECT:
	case VS_AUTH:
		return a->disconnect.reason == b->disconnect.reason &&
		       codec_props_eq(&a->disconnect.props, &b->disconnect.props);
	}
	return true;
}

/* Scratch for re-encoding one property block. */
struct codec_prep {
	uint8_t *users;
	uint32_t *ids;
};

static inline void codec_prep_props(struct vs_props *p, struct codec_prep *s)
{
	size_t pos = 0, n;
	uint32_t i = 0, id;

	s->users = malloc(p->raw.len + 1);
	s->ids = malloc((p->raw.len + 1) * sizeof(uint32_t));
	if (!s->users || !s->ids)
		abort();
	n = vs_props_copy_users(p, s->users, p->raw.len);
	p->users = NULL;
	p->user_raw.p = s->users;
	p->user_raw.len = n;
	while (vs_props_next_sub_id(p, &pos, &id))
		s->ids[i++] = id;
	p->sub_ids = i ? s->ids : NULL;
}

static inline void codec_prep_free(struct codec_prep *s)
{
	free(s->users);
	free(s->ids);
}

/* Returns the props of p (and the will props of a CONNECT in *will), NULL if none. */
static inline struct vs_props *codec_packet_props(struct vs_packet *p, struct vs_props **will)
{
	*will = NULL;
	switch (p->type) {
	case VS_CONNECT:
		if (p->connect.will)
			*will = &p->connect.will_props;
		return &p->connect.props;
	case VS_CONNACK:
		return &p->connack.props;
	case VS_PUBLISH:
		return &p->publish.props;
	case VS_PUBACK:
	case VS_PUBREC:
	case VS_PUBREL:
	case VS_PUBCOMP:
		return &p->ack.props;
	case VS_SUBSCRIBE:
		return &p->subscribe.props;
	case VS_UNSUBSCRIBE:
		return &p->unsubscribe.props;
	case VS_SUBACK:
	case VS_UNSUBACK:
		return &p->suback.props;
	case VS_DISCONNECT:
	case VS_AUTH:
		return &p->disconnect.props;
	}
	return NULL;
}

#endif
