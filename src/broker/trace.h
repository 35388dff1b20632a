/*
 * The packet trace of log_type debug (and -v), in Mosquitto 2.0's words, so that what users and
 * their tools know from `mosquitto -v` reads the same here:
 *   Received PUBLISH from X (d0, q1, r0, m1, 't', ... (5 bytes))
 *   Sending PUBACK to X (m1, rc0)
 * Callers test vs_log_enabled(log, VS_LOG_DEBUG) first (vs_trace_on()): with debug logging off
 * a packet costs one predictable branch, and nothing here runs.
 */
#ifndef VS_BROKER_TRACE_H
#define VS_BROKER_TRACE_H

#include <stdbool.h>

#include "base/log.h"
#include "broker/broker.h"

struct vs_conn;
struct vs_packet;
struct vs_msg;

static inline bool vs_trace_on(const struct vs_log *log)
{
	return __builtin_expect(vs_log_enabled(log, VS_LOG_DEBUG), 0);
}

/* A packet received from c, before it is handled (SUBSCRIBE and UNSUBSCRIBE with a line per
 * filter). */
void vs_trace_in(struct vs_conn *c, const struct vs_packet *p);
/* A packet the broker sends to c (acknowledgements, CONNACK, PINGRESP, DISCONNECT). */
void vs_trace_out(struct vs_conn *c, const struct vs_packet *p);
/* A PUBLISH the broker sends to c: the message, and what this delivery sets. */
void vs_trace_publish_out(struct vs_conn *c, const struct vs_msg *m, bool dup, int qos, bool retain,
			  unsigned packet_id);
/* "No will message specified." or "Will message specified (N bytes) (rR, qQ)." and its topic. */
void vs_trace_will(struct vs_conn *c);

#endif
