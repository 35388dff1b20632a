/*
 * The debug packet trace (see trace.h). Each line is Mosquitto 2.0.11's, word for word (its
 * handle_*.c and send_*.c), whatever log_format is: only the line's prefix follows log_format.
 */
#include "broker/trace.h"

#include "broker/conn.h"
#include "broker/worker.h"
#include "codec/codec.h"
#include "session/msg.h"

static const char *cid(const struct vs_conn *c)
{
	return c->client_id ? c->client_id : c->addr;
}

static void trace_publish(struct vs_conn *c, const char *verb, const char *dir, bool dup, int qos,
			  bool retain, unsigned mid, const struct vs_buf *topic, size_t payload_len)
{
	vs_log(c->w->b->log, VS_LOG_DEBUG,
	       "%s PUBLISH %s %s (d%d, q%d, r%d, m%u, '%.*s', ... "
	       "(%zu bytes))",
	       verb, dir, cid(c), dup, qos, retain, mid, (int)topic->len,
	       topic->p ? (const char *)topic->p : "", payload_len);
}

static void trace_filters(struct vs_conn *c, const struct vs_packet *p)
{
	const struct vs_log *log = c->w->b->log;
	size_t pos = 0;
	if (p->type == VS_SUBSCRIBE) {
		struct vs_sub_entry e;
		while (vs_subscribe_next(&p->subscribe, c->version, &pos, &e) > 0)
			vs_log(log, VS_LOG_DEBUG, "\t%.*s (QoS %d)", (int)e.filter.len, e.filter.p,
			       e.qos);
		return;
	}
	struct vs_buf f;
	while (vs_unsubscribe_next(&p->unsubscribe, &pos, &f) > 0)
		vs_log(log, VS_LOG_DEBUG, "\t%.*s", (int)f.len, f.p);
}

void vs_trace_in(struct vs_conn *c, const struct vs_packet *p)
{
	const struct vs_log *log = c->w->b->log;
	const char *id = cid(c);
	switch (p->type) {
	case VS_PUBLISH:
		trace_publish(c, "Received", "from", p->publish.dup, p->publish.qos,
			      p->publish.retain, p->publish.packet_id, &p->publish.topic,
			      p->publish.payload.len);
		break;
	case VS_PUBACK:
	case VS_PUBCOMP:
		vs_log(log, VS_LOG_DEBUG, "Received %s from %s (Mid: %u, RC:%u)",
		       vs_packet_name(p->type), id, p->ack.packet_id, p->ack.reason);
		break;
	case VS_PUBREC:
	case VS_PUBREL:
		vs_log(log, VS_LOG_DEBUG, "Received %s from %s (Mid: %u)", vs_packet_name(p->type),
		       id, p->ack.packet_id);
		break;
	case VS_SUBSCRIBE:
	case VS_UNSUBSCRIBE:
	case VS_PINGREQ:
	case VS_DISCONNECT:
		vs_log(log, VS_LOG_DEBUG, "Received %s from %s", vs_packet_name(p->type), id);
		if (p->type == VS_SUBSCRIBE || p->type == VS_UNSUBSCRIBE)
			trace_filters(c, p);
		break;
	default:
		break; /* CONNECT: "New client connected ..." says it; AUTH: Mosquitto is silent */
	}
}

void vs_trace_out(struct vs_conn *c, const struct vs_packet *p)
{
	const struct vs_log *log = c->w->b->log;
	const char *id = cid(c);
	switch (p->type) {
	case VS_CONNACK:
		vs_log(log, VS_LOG_DEBUG, "Sending CONNACK to %s (%d, %u)", id,
		       p->connack.session_present, p->connack.reason);
		break;
	case VS_PUBACK:
	case VS_PUBREC:
		vs_log(log, VS_LOG_DEBUG, "Sending %s to %s (m%u, rc%u)", vs_packet_name(p->type),
		       id, p->ack.packet_id, p->ack.reason);
		break;
	case VS_PUBREL:
	case VS_PUBCOMP:
		vs_log(log, VS_LOG_DEBUG, "Sending %s to %s (m%u)", vs_packet_name(p->type), id,
		       p->ack.packet_id);
		break;
	case VS_SUBACK:
	case VS_UNSUBACK:
	case VS_PINGRESP:
		vs_log(log, VS_LOG_DEBUG, "Sending %s to %s", vs_packet_name(p->type), id);
		break;
	case VS_DISCONNECT:
		vs_log(log, VS_LOG_DEBUG, "Sending DISCONNECT to %s (rc%u)", id,
		       p->disconnect.reason);
		break;
	default:
		break;
	}
}

void vs_trace_publish_out(struct vs_conn *c, const struct vs_msg *m, bool dup, int qos, bool retain,
			  unsigned packet_id)
{
	trace_publish(c, "Sending", "to", dup, qos, retain, packet_id, &m->topic, m->payload.len);
}

void vs_trace_will(struct vs_conn *c)
{
	const struct vs_log *log = c->w->b->log;
	const struct vs_msg *w = c->will;
	if (!w) {
		vs_log(log, VS_LOG_DEBUG, "No will message specified.");
		return;
	}
	vs_log(log, VS_LOG_DEBUG, "Will message specified (%ld bytes) (r%d, q%d).",
	       (long)w->payload.len, w->retain, w->qos);
	vs_log(log, VS_LOG_DEBUG, "\t%.*s", (int)w->topic.len, (const char *)w->topic.p);
}
