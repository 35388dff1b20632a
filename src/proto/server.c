/*
 * The server side of the protocol rules: see server.h.
 */
#include "proto/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/reason.h"
#include "session/session.h"

int vs_sproto_check_client_id(const struct vs_connect *p, bool allow_empty, uint8_t *rc3,
			      const char **why)
{
	*rc3 = VS_CONNACK3_ID_REJECTED;
	if (p->client_id.len == 0) {
		if (p->version < VS_V5 && !p->clean) {
			/* [MQTT-3.1.3-8] an empty id needs a clean session in 3.1.1. */
			*why = "empty client id without clean session";
			return VS_RC_CLIENT_ID_INVALID;
		}
		/* [MQTT-3.1.3-6] the server may assign one; MQTT 3.1 has no empty ids. */
		if (p->version == VS_V31 || !allow_empty) {
			*why = "empty client id not allowed";
			return VS_RC_CLIENT_ID_INVALID;
		}
	}
	if (p->version == VS_V31 && p->client_id.len > 23) {
		*why = "client id longer than 23 bytes (MQTT 3.1)";
		return VS_RC_CLIENT_ID_INVALID;
	}
	return VS_RC_SUCCESS;
}

int vs_sproto_keepalive(int version, uint16_t asked, uint32_t max_keepalive)
{
	if (max_keepalive >= 65535 || (asked != 0 && asked <= max_keepalive))
		return asked;
	if (version < VS_V5)
		return -1;
	return (int)max_keepalive; /* Server Keep Alive [MQTT-3.2.2-21] */
}

uint32_t vs_sproto_session_expiry(const struct vs_connect *p, int64_t persistent_expiry)
{
	if (p->version == VS_V5)
		return (p->props.present & (1ull << VS_PROP_SESSION_EXPIRY))
			   ? p->props.session_expiry
			   : 0;
	if (p->clean)
		return 0;
	return persistent_expiry < 0 || persistent_expiry > UINT32_MAX
		   ? UINT32_MAX
		   : (uint32_t)persistent_expiry;
}

int vs_sproto_check_publish(const struct vs_sproto_pub *st, const struct vs_publish *p,
			    const char **why)
{
	if (st->version == VS_V5 && (p->props.present & (1ull << VS_PROP_SUB_ID))) {
		*why = "PUBLISH with a Subscription Identifier"; /* [MQTT-3.3.4-6] */
		return VS_RC_PROTOCOL_ERROR;
	}
	if (p->qos > st->max_qos) {
		*why = "QoS above the maximum"; /* [MQTT-3.2.2-11] */
		return VS_RC_QOS_NOT_SUPPORTED;
	}
	if (p->retain && !st->retain_available) {
		*why = "retain not available"; /* [MQTT-3.3.1-12] */
		return VS_RC_RETAIN_NOT_SUPPORTED;
	}
	if (st->version == VS_V5 && p->qos == 2 && st->in_qos2 >= st->receive_max &&
	    !st->id_in_qos2) {
		*why = "more QoS 2 messages in flight than Receive Maximum"; /* [MQTT-3.3.4-9] */
		return VS_RC_RECEIVE_MAX_EXCEEDED;
	}
	return 0;
}

int vs_alias_in_init(struct vs_alias_in *a, uint16_t max)
{
	a->max = max;
	a->topic = NULL; /* made when the first alias is set: most clients set none */
	return 0;
}

void vs_alias_in_fini(struct vs_alias_in *a)
{
	if (a->topic)
		for (uint32_t i = 0; i <= a->max; i++)
			free(a->topic[i]);
	free(a->topic);
	a->topic = NULL;
	a->max = 0;
}

int vs_alias_in_resolve(struct vs_alias_in *a, const struct vs_publish *p, struct vs_buf *topic)
{
	*topic = p->topic;
	if (!(p->props.present & (1ull << VS_PROP_TOPIC_ALIAS)))
		return p->topic.len ? 0 : VS_RC_PROTOCOL_ERROR; /* [MQTT-3.3.2-8] */
	uint16_t n = p->props.topic_alias;
	if (n == 0 || n > a->max)
		return VS_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-9], [MQTT-3.3.2-10] */
	if (p->topic.len) {
		if (!a->topic && !(a->topic = calloc((size_t)a->max + 1, sizeof(*a->topic))))
			return VS_RC_SERVER_BUSY;
		char *t = malloc(p->topic.len + 1);
		if (!t)
			return VS_RC_SERVER_BUSY;
		memcpy(t, p->topic.p, p->topic.len);
		t[p->topic.len] = '\0';
		free(a->topic[n]);
		a->topic[n] = t;
		return 0;
	}
	if (!a->topic || !a->topic[n])
		return VS_RC_PROTOCOL_ERROR; /* an alias never set */
	topic->p = (const uint8_t *)a->topic[n];
	topic->len = strlen(a->topic[n]);
	return 0;
}

enum vs_ack_action vs_sproto_outgoing_ack(uint8_t *state, int type, uint8_t reason)
{
	switch (*state) {
	case VS_Q_WAIT_PUBACK:
		return type == VS_PUBACK ? VS_ACK_DONE : VS_ACK_IGNORE;
	case VS_Q_WAIT_PUBREC:
		if (type != VS_PUBREC)
			return VS_ACK_IGNORE;
		if (reason >= 0x80)
			return VS_ACK_DONE; /* [MQTT-4.3.3-4] the flow ends on an error */
		*state = VS_Q_WAIT_PUBCOMP;
		return VS_ACK_RELEASE;
	case VS_Q_WAIT_PUBCOMP:
		if (type == VS_PUBREC)
			return VS_ACK_RELEASE; /* the PUBREL was lost: again */
		return type == VS_PUBCOMP ? VS_ACK_DONE : VS_ACK_IGNORE;
	default:
		return VS_ACK_IGNORE;
	}
}

uint8_t vs_sproto_pubcomp_reason(int version, bool known)
{
	return known || version < VS_V5 ? VS_RC_SUCCESS : VS_RC_PACKET_ID_NOT_FOUND;
}

uint8_t vs_sproto_ack_reason(int version, int rc)
{
	return version < VS_V5 ? VS_RC_SUCCESS : (uint8_t)rc;
}

bool vs_sproto_is_shared(const struct vs_buf *f)
{
	return f->len > 7 && memcmp(f->p, "$share/", 7) == 0;
}

enum vs_sub_verdict vs_sproto_check_sub(int version, const struct vs_sub_entry *e, int max_qos,
					int max_levels, uint8_t *granted)
{
	if (vs_sproto_is_shared(&e->filter) && e->no_local)
		return VS_SUB_PROTOCOL; /* [MQTT-3.8.3-4] */
	if (vs_topic_too_deep(e->filter.p, e->filter.len, max_levels)) {
		/* 3.1.1 has one failure code for everything [MQTT-3.9.3-2]. */
		*granted = version == VS_V5 ? VS_RC_TOPIC_FILTER_INVALID : VS_RC_UNSPECIFIED;
		return VS_SUB_REFUSED;
	}
	*granted = e->qos > max_qos ? (uint8_t)max_qos : e->qos;
	return VS_SUB_OK;
}
