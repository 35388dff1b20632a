/*
 * HTTP/1.1 on a 'protocol http' listener: what a connection of such a listener does instead of
 * MQTT. It is a struct vs_conn like any other (accepted, read, flushed, timed out, moved between
 * threads and closed by conn.c and worker.c, TLS included), whose input goes here instead of to
 * the MQTT codec, and whose state of its own hangs off c->http.
 *
 * A request is read whole (head, then a Content-Length body; no chunked bodies) before it is
 * answered; pipelined requests are answered in order, one at a time, and the next is read only
 * once the answer to the last is queued. Access on a listener without allow_anonymous: HTTP
 * Basic credentials, checked against the listener's password file on an authentication thread
 * (authq.h) while the connection waits unread, as a CONNECT's password is; a user who passes must
 * also be named by http_admin. The routes themselves are in http_api.c.
 *
 * Bounds: a head of at most http_headers_size bytes (431), a body of at most http_body_size (413),
 * http_timeout seconds between requests, reading stops while 1 MiB of answers wait to be sent,
 * and the listener's max_connections. An error after which the rest of the stream cannot be
 * trusted (400, 411, 413, 431, 501) is answered with Connection: close and the connection ends
 * once the answer is sent (a lingering close: conn.c).
 */
#ifndef VS_BROKER_HTTP_H
#define VS_BROKER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/bytes.h"

struct vs_conn;

/* Gives a new connection of an http listener its HTTP state. Returns 0 or -ENOMEM. */
int vs_http_conn_start(struct vs_conn *c);
/* Frees it (cancels a password check it waits for); from vs_conn_close. */
void vs_http_conn_free(struct vs_conn *c);

/* Answers every whole request at the head of src and consumes it. Returns 0 (the rest is an
 * incomplete request, or waits), or -1 when c was closed. */
int vs_http_input(struct vs_conn *c, struct vs_bytes *src);
/* Bytes still missing from the request at the head of c->in (0 when not known). */
size_t vs_http_missing(const struct vs_conn *c);
/* The password check of the request c waits for has answered (VS_MAIL_AUTH). May close c. */
void vs_http_authenticated(struct vs_conn *c, bool ok);
/* All output of c is written: ends the connection after a Connection: close answer, or reads
 * on after waiting for the output to drain. May close c. */
void vs_http_flushed(struct vs_conn *c);
/* Whether closing c now should linger (an error answer is on its way). */
bool vs_http_lingers(const struct vs_conn *c);
/* From the sweep: closes c past http_timeout without a request. Returns 0, or -1 when c was
 * closed. */
int vs_http_sweep(struct vs_conn *c);

#endif
