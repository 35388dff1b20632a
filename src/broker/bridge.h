/*
 * Bridges: Mosquitto's `connection` sections (docs/bridges.md).
 *
 * A bridge is two things tied together on worker 0's loop:
 *   - its local side, a session of this broker's own (named local_clientid), whose
 *     subscriptions (the `out` topics, No Local) are in the shared trie like any client's: a
 *     matching message is queued there by whichever worker routes it, bounded by the queue
 *     limits and persisted with the session when persistence is on;
 *   - its remote side, a libviesti client driven by worker 0's epoll loop (viesti_fd() is
 *     registered there, viesti_process() runs on its events and on the worker's 100 ms tick):
 *     no thread of its own and no blocking I/O but for resolving the remote's host name.
 * Worker 0 drains the session's queue into the client while the remote is up; an entry leaves
 * the session (and the store) only when the remote acknowledged it (PUBACK, PUBCOMP). While
 * the remote is away the session is offline: QoS 1/2 messages wait in its queue, in order.
 * Messages from the remote (`in` topics) are routed here with the bridge's session as their
 * origin, so the bridge's own No Local subscriptions never send them back.
 */
#ifndef VS_BROKER_BRIDGE_H
#define VS_BROKER_BRIDGE_H

#include <stddef.h>

struct vs_broker;
struct vs_worker;
struct vs_session;
struct vs_bridge;

/* Creates every configured bridge on worker 0 (after the workers and the store are ready,
 * before the threads start): its local session (found again after a restart when it is
 * persistent) and subscriptions. Connections start on worker 0's first tick. Returns 0 or a
 * negative error with a message in err. */
int vs_bridges_init(struct vs_broker *b, char *err, size_t errlen);
/* After the workers have stopped: closes the remote connections and frees the bridges. */
void vs_bridges_fini(struct vs_broker *b);
/* Worker 0, every sweep: reconnects, lazy starts and idle stops, keep-alive, $SYS. */
void vs_bridges_tick(struct vs_worker *w);
/* Each bridge's state, queue and counters for GET /metrics (any thread). */
struct vs_prom;
void vs_bridges_metrics(struct vs_broker *b, struct vs_prom *p);
/* Worker 0: sends what the window allows of a bridge session's queue to the remote (called
 * by vs_router_drain_session for sessions with s->bridge set). */
void vs_bridge_drain(struct vs_worker *w, struct vs_session *s);

#endif
