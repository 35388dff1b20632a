/*
 * The MQTT-SN gateway inside the broker: a listener with `protocol mqttsn` is a UDP socket per
 * worker (SO_REUSEPORT: the kernel keeps each client's datagrams on one worker), and each
 * MQTT-SN client is a virtual connection of that worker (conn.h, vs_conn_virtual) whose
 * transport translates to MQTT (src/sn). This file finds the client of each datagram, creates
 * connections, answers what needs no client (SEARCHGW, QoS -1 PUBLISH), and turns the
 * transport's events into what the broker does (a read, a flush, a will update, the keep-alive
 * of a sleeping client).
 */
#ifndef VS_BROKER_GATEWAY_H
#define VS_BROKER_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_listener;
struct vs_listen_io;
struct vs_conn;
struct vs_worker;

/* Reads the listener's MQTT-SN settings (predefined topics file, allowed sources) into
 * l->sn. Returns 0, or VS_ECONF with err. */
int vs_gateway_listener_init(struct vs_listener *l, char *err, size_t errlen);
void vs_gateway_listener_fini(struct vs_listener *l);

/* Makes li (a bound UDP socket of an mqttsn listener) a gateway socket. Returns 0 or -ENOMEM. */
int vs_gateway_socket_open(struct vs_listen_io *li);
void vs_gateway_socket_close(struct vs_listen_io *li);

/* From the worker's sweep, for a connection of an mqttsn listener: retransmissions, and a
 * woken client's PINGRESP. May close c. */
void vs_gateway_sweep(struct vs_conn *c);
/* From every worker's sweep: DTLS handshakes' retransmissions and time-outs. */
void vs_gateway_tick(struct vs_worker *w);
/* From worker 0's sweep: ADVERTISE on the listeners that want it, when due. */
void vs_gateway_advertise(struct vs_worker *w);

#endif
