/*
 * The dashboard at / (docs/dashboard.md): the files of src/broker/dashboard/, built into the
 * binary by cmake/embed.cmake (dashboard_files.c in the build directory), served from memory
 * with their content type, an ETag (their SHA-256) and Cache-Control: no-cache, so a browser
 * keeps them and asks again with If-None-Match (304) each time the page loads. The page reads
 * the JSON API (api.h); its live topic view connects to the broker's MQTT over WebSocket
 * listener, if there is one.
 */
#ifndef VS_BROKER_DASHBOARD_H
#define VS_BROKER_DASHBOARD_H

#include <stddef.h>

#include "broker/http_api.h"

/* One embedded file; the table ends with a NULL path. */
struct vs_dash_file {
	const char *path; /* the URL path: "/" for index.html, else "/" + name */
	const char *name; /* the file name (its extension gives the content type) */
	const unsigned char *data;
	size_t len;
	const char *etag; /* "\"<hex>\"" */
};

extern const struct vs_dash_file vs_dash_files[];

/* GET of a dashboard file: the file (200), 304 when If-None-Match has its ETag, or 404. */
int vs_dashboard_get(struct vs_worker *w, const struct vs_http_call *call,
		     struct vs_http_reply *reply);

#endif
