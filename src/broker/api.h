/*
 * The JSON API under /api/v1 (docs/http-api.md): clients, their subscriptions, retained
 * messages, publishing, stats and reload. http_api.c routes every GET, POST and DELETE under
 * /api/v1/ here; vs_api_handle() finds the endpoint, checks its method, and answers JSON, errors
 * included ({"error": {"code": "...", "message": "..."}}).
 *
 * It runs on the worker that owns the HTTP connection and touches no other worker's
 * connection: it reads the session registry and each session under its own lock (a session's
 * attached connection only for the fields conn.h lists as readable so), the retained store and
 * the broker's atomics. Disconnecting a client is a mail to the worker that owns it
 * (VS_MAIL_ADMIN_KICK): the answer (202) says it was asked, and the client is gone within that
 * worker's next loop turn. Reload raises SIGHUP, which the main thread handles as the signal.
 */
#ifndef VS_BROKER_API_H
#define VS_BROKER_API_H

#include "broker/http_api.h"

int vs_api_handle(struct vs_worker *w, const struct vs_http_call *call,
		  struct vs_http_reply *reply);

#endif
