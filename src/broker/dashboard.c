/*
 * The dashboard's files: see dashboard.h.
 */
#include "broker/dashboard.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "net/http.h"

/* The page loads only its own files and talks only to this listener and WebSocket listeners;
 * no other site may frame it. */
#define DASH_HEADERS                                                                               \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "       \
	"img-src 'self' data:; connect-src 'self' ws: wss:; form-action 'self'; "                  \
	"frame-ancestors 'none'; base-uri 'none'\r\n"                                              \
	"Referrer-Policy: no-referrer\r\n"

/* Whether the If-None-Match list holds etag (or is "*"). */
static bool matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);
	for (const char *p = inm; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return true;
		while (*p && *p != ',')
			p++;
	}
	return false;
}

int vs_dashboard_get(struct vs_worker *w, const struct vs_http_call *call,
		     struct vs_http_reply *reply)
{
	(void)w;
	const struct vs_dash_file *f = vs_dash_files;
	while (f->path && strcmp(f->path, call->path) != 0)
		f++;
	if (!f->path) {
		reply->status = 404;
		return vs_bytes_append(&reply->body, "404 Not Found\n", 14) < 0 ? -ENOMEM : 0;
	}
	reply->content_type = vs_http_content_type(f->name);
	reply->cache = "no-cache";
	reply->etag = f->etag;
	reply->headers = DASH_HEADERS;
	if (call->if_none_match && matches(call->if_none_match, f->etag)) {
		reply->status = 304;
		return 0;
	}
	return vs_bytes_append(&reply->body, f->data, f->len) < 0 ? -ENOMEM : 0;
}
