/*
 * The routes of the HTTP listener: see http_api.h.
 */
#include "broker/http_api.h"

#include <stdbool.h>
#include <string.h>

#include "base/prom.h"
#include "broker/api.h"
#include "broker/dashboard.h"
#include "broker/metrics.h"
#include "broker/worker.h"

static int get_metrics(struct vs_worker *w, const struct vs_http_call *call,
		       struct vs_http_reply *reply)
{
	(void)call;
	reply->content_type = VS_PROM_CONTENT_TYPE;
	return vs_metrics_write(w->b, &reply->body);
}

/* The JSON API (api.c) takes these methods under /api/v1/ and answers 405 itself for a method
 * an endpoint does not take; other methods get the router's 405. */
static const struct vs_http_route routes[] = {
    {"GET", "/metrics", get_metrics},
    {"GET", "/api/v1/", vs_api_handle},
    {"POST", "/api/v1/", vs_api_handle},
    {"DELETE", "/api/v1/", vs_api_handle},
    {"GET", "/", vs_dashboard_get},
    {"GET", "/dashboard.css", vs_dashboard_get},
    {"GET", "/dashboard.js", vs_dashboard_get},
};

static bool path_matches(const struct vs_http_route *r, const char *path)
{
	size_t n = strlen(r->path);
	if (n > 1 && r->path[n - 1] == '/')
		return strncmp(path, r->path, n) == 0;
	return strcmp(path, r->path) == 0;
}

/* Appends ", m" (or "m" first) to allow, unless it is there. */
static void allow_add(char *allow, size_t cap, const char *m)
{
	size_t len = strlen(allow), n = strlen(m);
	for (const char *p = allow; (p = strstr(p, m)) != NULL; p += n)
		if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
			return;
	if (len + n + 3 > cap)
		return;
	if (len) {
		memcpy(allow + len, ", ", 2);
		len += 2;
	}
	memcpy(allow + len, m, n + 1);
}

vs_http_handler vs_http_api_route(const char *method, const char *path, int *status, char *allow,
				  size_t cap)
{
	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
	bool found = false;
	if (cap)
		allow[0] = '\0';
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct vs_http_route *r = &routes[i];
		if (!path_matches(r, path))
			continue;
		if (strcmp(r->method, want) == 0)
			return r->fn;
		found = true;
		allow_add(allow, cap, r->method);
		if (strcmp(r->method, "GET") == 0)
			allow_add(allow, cap, "HEAD");
	}
	*status = found ? 405 : 404;
	return NULL;
}
