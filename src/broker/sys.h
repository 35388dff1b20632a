/*
 * Housekeeping run by worker 0: session expiry and delayed wills (every second), and the $SYS
 * topics with Mosquitto's names (every sys_interval seconds), published as retained messages.
 */
#ifndef VS_BROKER_SYS_H
#define VS_BROKER_SYS_H

#include <stddef.h>

struct vs_worker;
struct vs_broker;

/* Called by worker 0 on every sweep (about every 100 ms). */
void vs_sys_tick(struct vs_worker *w);

/*
 * log_dest topic, as Mosquitto: each log line (but debug ones) is published to
 * $SYS/broker/log/<E|W|N|I|M/subscribe|M/unsubscribe|WS> with QoS 2, not retained, a message
 * expiry of 20 s. vs_sys_log_sink() is the log's topic_sink (ud: the broker): any thread may
 * call it; it queues a copy (at most VS_SYS_LOGQ_MAX lines, then it drops and counts) for worker
 * 0, which publishes the queue on its next sweep, so that logging never routes a message from
 * inside the router or under its locks.
 */
#define VS_SYS_LOGQ_MAX 4096
void vs_sys_log_init(struct vs_broker *b);
void vs_sys_log_sink(void *ud, unsigned type, const char *text, size_t len);
/* Detaches the sink from the log and frees what is still queued. */
void vs_sys_log_fini(struct vs_broker *b);

#endif
