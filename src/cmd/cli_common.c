/*
 * Shared flag parsing and connection set-up for viesti pub, sub and rr. Flags, defaults and
 * error wording follow mosquitto_pub/mosquitto_sub 2.0 so scripts carry over; the tools use
 * nothing but libviesti's public API (include/viesti.h) to talk to the broker.
 */
#include "cmd/cli_common.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/nameser.h>
#include <resolv.h>

static const char *const tool_names[] = {"pub", "sub", "rr"};

void vs_cli_init(struct vs_cli *c, enum vs_tool tool)
{
	memset(c, 0, sizeof(*c));
	c->tool = tool;
	c->prog = tool == VS_TOOL_PUB	? "viesti pub"
		  : tool == VS_TOOL_SUB ? "viesti sub"
					: "viesti rr";
	c->host = "localhost";
	c->port = 1883;
	c->version = tool == VS_TOOL_RR ? VIESTI_V5 : VIESTI_V311;
	c->keepalive = 60;
	c->clean = true;
	c->session_expiry = -1;
	c->max_inflight = 20;
}

void vs_cli_fini(struct vs_cli *c)
{
	for (int i = 0; i < VS_PC_COUNT; i++)
		viesti_props_free(c->props[i]);
	free(c->url_buf);
	free(c->id_owned);
	free(c->proxy_buf);
	free(c->srv_host);
}

void vs_cli_err(const struct vs_cli *c, const char *fmt, ...)
{
	if (c->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int vs_cli_usage_hint(const struct vs_cli *c)
{
	fprintf(stderr, "\nUse '%s --help' to see usage.\n", c->prog);
	return -1;
}

int vs_cli_int(const struct vs_cli *c, const char *flag, const char *s, long min, long max,
	       long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "Error: Invalid value '%s' for %s.\n", s, flag);
		return vs_cli_usage_hint(c);
	}
	*out = v;
	return 0;
}

/* ---- -D command identifier value ------------------------------------------------------------ */

static const struct {
	const char *name;
	int id;
} prop_names[] = {
    {"payload-format-indicator", VIESTI_PROP_PAYLOAD_FORMAT},
    {"message-expiry-interval", VIESTI_PROP_MESSAGE_EXPIRY},
    {"content-type", VIESTI_PROP_CONTENT_TYPE},
    {"response-topic", VIESTI_PROP_RESPONSE_TOPIC},
    {"correlation-data", VIESTI_PROP_CORRELATION_DATA},
    {"subscription-identifier", VIESTI_PROP_SUBSCRIPTION_ID},
    {"session-expiry-interval", VIESTI_PROP_SESSION_EXPIRY},
    {"authentication-method", VIESTI_PROP_AUTH_METHOD},
    {"authentication-data", VIESTI_PROP_AUTH_DATA},
    {"request-problem-information", VIESTI_PROP_REQUEST_PROBLEM_INFO},
    {"will-delay-interval", VIESTI_PROP_WILL_DELAY},
    {"request-response-information", VIESTI_PROP_REQUEST_RESPONSE_INFO},
    {"reason-string", VIESTI_PROP_REASON_STRING},
    {"receive-maximum", VIESTI_PROP_RECEIVE_MAX},
    {"topic-alias-maximum", VIESTI_PROP_TOPIC_ALIAS_MAX},
    {"topic-alias", VIESTI_PROP_TOPIC_ALIAS},
    {"user-property", VIESTI_PROP_USER},
    {"maximum-packet-size", VIESTI_PROP_MAX_PACKET_SIZE},
};

static const char *const pcmd_names[VS_PC_COUNT] = {
    "connect", "publish", "subscribe", "unsubscribe", "disconnect", "will",
};

/* Which properties each -D command takes (MQTT 5.0 section 2.2.2.2). */
static bool prop_allowed(int cmd, int id)
{
	switch (cmd) {
	case VS_PC_CONNECT:
		return id == VIESTI_PROP_SESSION_EXPIRY || id == VIESTI_PROP_AUTH_METHOD ||
		       id == VIESTI_PROP_AUTH_DATA || id == VIESTI_PROP_REQUEST_PROBLEM_INFO ||
		       id == VIESTI_PROP_REQUEST_RESPONSE_INFO || id == VIESTI_PROP_RECEIVE_MAX ||
		       id == VIESTI_PROP_TOPIC_ALIAS_MAX || id == VIESTI_PROP_USER ||
		       id == VIESTI_PROP_MAX_PACKET_SIZE;
	case VS_PC_PUBLISH:
		return id == VIESTI_PROP_PAYLOAD_FORMAT || id == VIESTI_PROP_MESSAGE_EXPIRY ||
		       id == VIESTI_PROP_CONTENT_TYPE || id == VIESTI_PROP_RESPONSE_TOPIC ||
		       id == VIESTI_PROP_CORRELATION_DATA || id == VIESTI_PROP_TOPIC_ALIAS ||
		       id == VIESTI_PROP_USER;
	case VS_PC_SUBSCRIBE:
		return id == VIESTI_PROP_SUBSCRIPTION_ID || id == VIESTI_PROP_USER;
	case VS_PC_UNSUBSCRIBE:
		return id == VIESTI_PROP_USER;
	case VS_PC_DISCONNECT:
		return id == VIESTI_PROP_SESSION_EXPIRY || id == VIESTI_PROP_REASON_STRING ||
		       id == VIESTI_PROP_USER;
	case VS_PC_WILL:
		return id == VIESTI_PROP_PAYLOAD_FORMAT || id == VIESTI_PROP_MESSAGE_EXPIRY ||
		       id == VIESTI_PROP_CONTENT_TYPE || id == VIESTI_PROP_RESPONSE_TOPIC ||
		       id == VIESTI_PROP_CORRELATION_DATA || id == VIESTI_PROP_WILL_DELAY ||
		       id == VIESTI_PROP_USER;
	}
	return false;
}

static int set_prop(struct viesti_props *p, int id, const char *val)
{
	switch (id) {
	case VIESTI_PROP_CONTENT_TYPE:
	case VIESTI_PROP_RESPONSE_TOPIC:
	case VIESTI_PROP_AUTH_METHOD:
	case VIESTI_PROP_REASON_STRING:
		return viesti_props_set_string(p, id, val);
	case VIESTI_PROP_CORRELATION_DATA:
	case VIESTI_PROP_AUTH_DATA:
		return viesti_props_set_binary(p, id, val, strlen(val));
	default: {
		char *end;
		errno = 0;
		unsigned long v = strtoul(val, &end, 10);
		if (errno || end == val || *end || *val == '-' || v > UINT32_MAX)
			return VIESTI_EINVAL;
		return viesti_props_set_int(p, id, (uint32_t)v);
	}
	}
}

static int parse_property(struct vs_cli *c, int argc, char **argv, int *i)
{
	if (*i + 3 >= argc) {
		fprintf(stderr, "Error: --property argument given but not enough arguments "
				"specified.\n\n");
		return vs_cli_usage_hint(c);
	}
	const char *cmd = argv[*i + 1], *name = argv[*i + 2];
	int pc = -1, id = -1;
	for (int k = 0; k < VS_PC_COUNT; k++)
		if (!strcasecmp(cmd, pcmd_names[k]))
			pc = k;
	if (pc < 0) {
		fprintf(stderr, "Error: Invalid command given in --property argument.\n\n");
		return vs_cli_usage_hint(c);
	}
	for (size_t k = 0; k < sizeof(prop_names) / sizeof(prop_names[0]); k++)
		if (!strcasecmp(name, prop_names[k].name))
			id = prop_names[k].id;
	if (id < 0) {
		fprintf(stderr, "Error: Invalid property name given in --property argument.\n\n");
		return vs_cli_usage_hint(c);
	}
	if (!prop_allowed(pc, id)) {
		fprintf(stderr, "Error: %s property not allowed for %s in --property argument.\n\n",
			name, cmd);
		return vs_cli_usage_hint(c);
	}
	int need = id == VIESTI_PROP_USER ? 4 : 3;
	if (*i + need >= argc) {
		fprintf(stderr, "Error: --property argument given but not enough arguments "
				"specified.\n\n");
		return vs_cli_usage_hint(c);
	}
	if (!c->props[pc] && !(c->props[pc] = viesti_props_new())) {
		fprintf(stderr, "Error: Out of memory.\n");
		return -1;
	}
	int rc = id == VIESTI_PROP_USER
		     ? viesti_props_add_user(c->props[pc], argv[*i + 3], argv[*i + 4])
		     : set_prop(c->props[pc], id, argv[*i + 3]);
	if (rc < 0) {
		fprintf(stderr, "Error: Invalid value for property %s in --property argument.\n\n",
			name);
		return vs_cli_usage_hint(c);
	}
	if (!c->version_set)
		c->version = VIESTI_V5; /* as mosquitto_pub: -D implies MQTT 5.0 */
	*i += need;
	return 1;
}

/* ---- -L mqtt(s)|ws(s)://[user[:pass]@]host[:port]/topic ----------------------------------- */

static int parse_url(struct vs_cli *c, const char *url)
{
	free(c->url_buf);
	c->url_buf = NULL;
	size_t skip = 0;
	if (!strncasecmp(url, "mqtt://", 7)) {
		skip = 7;
	} else if (!strncasecmp(url, "mqtts://", 8) || !strncasecmp(url, "wss://", 6)) {
		/* As mosquitto_pub: TLS, trusting the system's CAs (and --cafile/--capath). */
		skip = url[0] == 'w' || url[0] == 'W' ? 6 : 8;
		c->tls_on = true;
		c->tls.os_certs = true;
		c->ws_on = skip == 6;
	} else if (!strncasecmp(url, "ws://", 5)) {
		/* MQTT over WebSocket (a Viesti extension): the URL's path is still the topic; the
		 * upgrade goes to --ws-path (default /mqtt). */
		skip = 5;
		c->ws_on = true;
	} else {
		fprintf(stderr, "Error: unsupported URL scheme.\n\n");
		return vs_cli_usage_hint(c);
	}
	char *s = c->url_buf = strdup(url + skip);
	if (!s)
		return -1;
	char *slash = strchr(s, '/');
	if (!slash) {
		fprintf(stderr, "Error: Invalid URL for -L argument specified - topic missing.\n");
		return vs_cli_usage_hint(c);
	}
	*slash = 0;
	c->url_topic = slash + 1;
	char *at = strrchr(s, '@');
	if (at) {
		*at = 0;
		char *colon = strchr(s, ':');
		if (colon) {
			*colon = 0;
			c->password = colon + 1;
		}
		c->username = s;
		s = at + 1;
	}
	char *colon = strrchr(s, ':');
	if (colon && !strchr(colon, ']')) {
		*colon = 0;
		long port;
		if (vs_cli_int(c, "-L port", colon + 1, 1, 65535, &port) < 0)
			return -1;
		c->port = (int)port;
		c->port_set = true;
	}
	if (*s)
		c->host = s;
	return 1;
}

/* ---- the flags --------------------------------------------------------------------------- */

static bool is(const char *a, const char *s, const char *l)
{
	return (s && !strcmp(a, s)) || (l && !strcmp(a, l));
}

/* The flag's value, or NULL after mosquitto's "Error: -h argument given but no host specified."
 * (name: the flag as mosquitto names it in that message, whichever spelling was given). */
static const char *value_named(const struct vs_cli *c, int argc, char **argv, int *i,
			       const char *name, const char *what)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "Error: %s argument given but no %s specified.\n\n",
			name ? name : argv[*i], what);
		vs_cli_usage_hint(c);
		return NULL;
	}
	return argv[++*i];
}

static const char *value(const struct vs_cli *c, int argc, char **argv, int *i, const char *what)
{
	return value_named(c, argc, argv, i, NULL, what);
}

static int parse_version(struct vs_cli *c, const char *s)
{
	if (!strcmp(s, "31") || !strcmp(s, "mqttv31"))
		c->version = VIESTI_V31;
	else if (!strcmp(s, "311") || !strcmp(s, "mqttv311"))
		c->version = VIESTI_V311;
	else if (!strcmp(s, "5") || !strcmp(s, "mqttv5"))
		c->version = VIESTI_V5;
	else {
		fprintf(stderr, "Error: Invalid protocol version argument given.\n\n");
		return vs_cli_usage_hint(c);
	}
	c->version_set = true;
	return 1;
}

/* -x as mosquitto_pub reads it: strtol in any base, -1 and the infinity sign for "never". */
static int parse_expiry(struct vs_cli *c, const char *s)
{
	if (!strcmp(s, "\xe2\x88\x9e")) {
		c->session_expiry = UINT32_MAX;
		return 1;
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (end == s || *end) {
		fprintf(stderr, "Error: session-expiry-interval not a number.\n\n");
		return vs_cli_usage_hint(c);
	}
	if (errno || v > UINT32_MAX || v < -1) {
		fprintf(stderr, "Error: session-expiry-interval out of range.\n\n");
		return vs_cli_usage_hint(c);
	}
	c->session_expiry = v == -1 ? UINT32_MAX : v;
	return 1;
}

/* A number as mosquitto_pub reads one (atoi: "12abc" is 12, "abc" is 0), for its range checks
 * and their messages. */
static long atoi_like(const char *s)
{
	long v = strtol(s, NULL, 10);
	return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : v;
}

/* mosquitto's --proxy URL: socks5h://[username[:password]@]host[:port], %25 %3a %40 decoded
 * in the user name and password. */
static bool url_decode(char *s)
{
	char *o = s;
	for (; s && *s; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		if (!strncmp(s + 1, "25", 2))
			*o++ = '%';
		else if (!strncasecmp(s + 1, "3a", 2))
			*o++ = ':';
		else if (!strncmp(s + 1, "40", 2))
			*o++ = '@';
		else
			return false;
		s += 2;
	}
	if (o)
		*o = 0;
	return true;
}

static int parse_proxy(struct vs_cli *c, const char *url)
{
	if (strncmp(url, "socks5h://", 10) != 0) {
		vs_cli_err(c, "Error: Unsupported proxy protocol: %s", url);
		return vs_cli_usage_hint(c);
	}
	free(c->proxy_buf);
	char *s = c->proxy_buf = strdup(url + 10);
	if (!s)
		return -1;
	c->proxy_user = c->proxy_pass = NULL;
	char *at = strrchr(s, '@');
	if (at) {
		*at = 0;
		char *colon = strchr(s, ':');
		if (colon) {
			*colon = 0;
			c->proxy_pass = colon + 1;
		}
		c->proxy_user = s;
		s = at + 1;
		if (!*c->proxy_user || !url_decode((char *)c->proxy_user) ||
		    !url_decode((char *)c->proxy_pass))
			return vs_cli_usage_hint(c);
	}
	char *colon = strchr(s, ':');
	c->proxy_port = 1080;
	if (colon) {
		*colon = 0;
		long port = atoi_like(colon + 1);
		if (port < 1 || port > 65535) {
			vs_cli_err(c, "Error: Invalid proxy port %ld", port);
			return vs_cli_usage_hint(c);
		}
		c->proxy_port = (int)port;
	}
	if (!*s) {
		vs_cli_err(c, "Error: Invalid proxy.");
		return vs_cli_usage_hint(c);
	}
	c->proxy_host = s;
	return 1;
}

/* The flags that take a number, with mosquitto_pub's checks and messages. */
static int parse_numeric(struct vs_cli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *s;
	long n;
	if (is(a, "-p", "--port")) {
		if (!(s = value_named(c, argc, argv, i, "-p", "port")))
			return -1;
		n = atoi_like(s);
		if (n < 0 || n > 65535) {
			fprintf(stderr, "Error: Invalid port given: %ld\n", n);
			return vs_cli_usage_hint(c);
		}
		c->port = (int)n;
		c->port_set = true;
	} else if (is(a, "-k", "--keepalive")) {
		if (!(s = value_named(c, argc, argv, i, "-k", "keepalive")))
			return -1;
		/* mosquitto refuses below 5; MQTT-SN sensors may want less (checked later). */
		n = atoi_like(s);
		if (n < 0 || n > 65535) {
			fprintf(stderr, "Error: Invalid keepalive given, it must be between 5 and "
					"65535 inclusive.\n\n");
			return vs_cli_usage_hint(c);
		}
		c->keepalive = (int)n;
	} else if (is(a, "-q", "--qos")) {
		if (!(s = value_named(c, argc, argv, i, "-q", "QoS")))
			return -1;
		n = atoi_like(s);
		if (n < -1 || n > 2 || (n == -1 && strcmp(s, "-1") != 0)) {
			fprintf(stderr, "Error: Invalid QoS given: %ld\n", n);
			return vs_cli_usage_hint(c);
		}
		c->qos = (int)n; /* -1: MQTT-SN only, checked in check_sn() */
	} else if (is(a, NULL, "--will-qos")) {
		if (!(s = value(c, argc, argv, i, "will QoS")))
			return -1;
		n = atoi_like(s);
		if (n < 0 || n > 2) {
			fprintf(stderr, "Error: Invalid will QoS %ld.\n\n", n);
			return vs_cli_usage_hint(c);
		}
		c->will_qos = (int)n;
	} else if (is(a, "-M", NULL)) {
		if (*i + 1 >= argc) {
			fprintf(stderr,
				"Error: -M argument given but max_inflight not specified.\n\n");
			return vs_cli_usage_hint(c);
		}
		n = atoi_like(argv[++*i]);
		if (n < 1) {
			fprintf(stderr,
				"Error: Maximum inflight messages must be greater than 0.\n\n");
			return vs_cli_usage_hint(c);
		}
		c->max_inflight = n > 65535 ? 65535 : (int)n;
	} else {
		return 0;
	}
	return 1;
}

/* The TLS flags, as mosquitto_pub spells them. A CA, a client certificate, a PSK or the OS
 * store turns TLS on; --key, --insecure, --tls-version and --tls-alpn only shape it. */
static int parse_tls(struct vs_cli *c, int argc, char **argv, int *i)
{
	static const struct {
		const char *flag;
		const char *what; /* for "no <what> specified" */
		size_t off;	  /* of the string in struct viesti_tls */
		bool turns_on;
	} strs[] = {
	    {"--cafile", "file", offsetof(struct viesti_tls, cafile), true},
	    {"--capath", "directory", offsetof(struct viesti_tls, capath), true},
	    {"--cert", "file", offsetof(struct viesti_tls, certfile), true},
	    {"--key", "file", offsetof(struct viesti_tls, keyfile), false},
	    {"--tls-version", "version", offsetof(struct viesti_tls, tls_version), false},
	    {"--tls-alpn", "protocol", offsetof(struct viesti_tls, alpn), false},
	    {"--psk", "key", offsetof(struct viesti_tls, psk), true},
	    {"--psk-identity", "identity", offsetof(struct viesti_tls, psk_identity), false},
	};
	const char *a = argv[*i];
	for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
		if (strcmp(a, strs[k].flag) != 0)
			continue;
		const char *s = value(c, argc, argv, i, strs[k].what);
		if (!s)
			return -1;
		*(const char **)((char *)&c->tls + strs[k].off) = s;
		c->tls_on |= strs[k].turns_on;
		return 1;
	}
	if (is(a, NULL, "--insecure")) {
		c->tls.insecure = true;
	} else if (is(a, NULL, "--tls-use-os-certs")) {
		c->tls.os_certs = true;
		c->tls_on = true;
	} else {
		return 0;
	}
	return 1;
}

/* Flags that MQTT-SN 1.2 has no use for: no user names or passwords, no MQTT 5 properties or
 * versions, no URLs, TLS or WebSocket. */
static bool mqtt_only(const char *a)
{
	static const char *const flags[] = {
	    "-u",
	    "--username",
	    "-P",
	    "--pw",
	    "--auth-method",
	    "-V",
	    "--protocol-version",
	    "-x",
	    "--session-expiry-interval",
	    "-D",
	    "--property",
	    "-L",
	    "--url",
	    "--ws-path",
	    "--cafile",
	    "--capath",
	    "--cert",
	    "--key",
	    "--tls-version",
	    "--tls-alpn",
	    "--psk",
	    "--psk-identity",
	    "--insecure",
	    "--tls-use-os-certs",
	    NULL,
	};
	for (int k = 0; flags[k]; k++)
		if (!strcmp(a, flags[k]))
			return true;
	return false;
}

static int parse_one(struct vs_cli *c, int argc, char **argv, int *i);

int vs_cli_parse(struct vs_cli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	int rc = parse_one(c, argc, argv, i);
	if (rc > 0 && !c->not_sn && mqtt_only(a))
		c->not_sn = a;
	return rc;
}

static int parse_one(struct vs_cli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *s;
	int rc = parse_numeric(c, argc, argv, i);
	if (rc != 0)
		return rc;
	if (is(a, "-h", "--host")) {
		if (!(s = value_named(c, argc, argv, i, "-h", "host")))
			return -1;
		c->host = s;
	} else if (is(a, NULL, "--unix")) {
		if (!(s = value(c, argc, argv, i, "socket path")))
			return -1;
		c->unix_path = s;
	} else if (is(a, "-A", NULL)) {
		if (!(c->bind_address = value(c, argc, argv, i, "address")))
			return -1;
	} else if (is(a, NULL, "--nodelay")) {
		/* Viesti's sockets always have TCP_NODELAY. */
	} else if (is(a, "-S", NULL)) {
		c->use_srv = true;
	} else if (is(a, NULL, "--proxy")) {
		if (!(s = value_named(c, argc, argv, i, "--proxy", "proxy url")))
			return -1;
		return parse_proxy(c, s);
	} else if (is(a, NULL, "--ws-path")) {
		if (!(c->ws_path = value(c, argc, argv, i, "path")))
			return -1;
		c->ws_on = true;
	} else if (is(a, "-i", "--id") || is(a, "-I", "--id-prefix")) {
		bool prefix = is(a, "-I", "--id-prefix");
		if (prefix ? c->id != NULL : c->id_prefix != NULL) {
			fprintf(stderr, "Error: -i and -I argument cannot be used together.\n\n");
			return vs_cli_usage_hint(c);
		}
		if (!(s = value_named(c, argc, argv, i, prefix ? "-I" : "-i",
				      prefix ? "id prefix" : "id")))
			return -1;
		*(prefix ? &c->id_prefix : &c->id) = s;
	} else if (is(a, "-u", "--username")) {
		if (!(c->username = value_named(c, argc, argv, i, "-u", "username")))
			return -1;
	} else if (is(a, "-P", "--pw")) {
		if (!(c->password = value_named(c, argc, argv, i, "-P", "password")))
			return -1;
	} else if (is(a, NULL, "--auth-method")) {
		if (!(c->auth_method = value(c, argc, argv, i, "authentication method")))
			return -1;
	} else if (is(a, NULL, "--sn")) {
		c->sn = true;
	} else if (is(a, NULL, "--sn-predefined")) {
		if (!(c->sn_predefined = value(c, argc, argv, i, "file")))
			return -1;
	} else if (is(a, "-c", "--disable-clean-session")) {
		c->clean = false;
	} else if (is(a, "-d", "--debug")) {
		c->debug = true;
	} else if (is(a, NULL, "--quiet")) {
		c->quiet = true;
	} else if (is(a, "-V", "--protocol-version")) {
		if (!(s = value_named(c, argc, argv, i, "--protocol-version", "version")))
			return -1;
		return parse_version(c, s);
	} else if (is(a, "-x", "--session-expiry-interval")) {
		if (!(s = value_named(c, argc, argv, i, "-x", "session expiry interval")))
			return -1;
		return parse_expiry(c, s);
	} else if (is(a, "-D", "--property")) {
		return parse_property(c, argc, argv, i);
	} else if (is(a, "-L", "--url")) {
		if (!(s = value_named(c, argc, argv, i, "-L", "URL")))
			return -1;
		return parse_url(c, s);
	} else if (is(a, NULL, "--will-topic")) {
		if (!(c->will_topic = value(c, argc, argv, i, "will topic")))
			return -1;
		if (!vs_cli_topic_valid(c->will_topic)) {
			fprintf(stderr,
				"Error: Invalid will topic '%s', does it contain '+' or '#'?\n",
				c->will_topic);
			return vs_cli_usage_hint(c);
		}
	} else if (is(a, NULL, "--will-payload")) {
		if (!(c->will_payload = value(c, argc, argv, i, "will payload")))
			return -1;
	} else if (is(a, NULL, "--will-retain")) {
		c->will_retain = true;
	} else {
		return parse_tls(c, argc, argv, i);
	}
	return 1;
}

/* mosquitto_pub's checks and wording; the library checks the rest (hex, version names). */
static int check_tls(struct vs_cli *c)
{
	const struct viesti_tls *t = &c->tls;
	if (!t->certfile != !t->keyfile) {
		fprintf(stderr,
			"Error: Both certfile and keyfile must be provided if one of them is "
			"set.\n");
		return vs_cli_usage_hint(c);
	}
	if (t->psk && (t->cafile || t->capath)) {
		fprintf(stderr,
			"Error: Only one of --psk or --cafile/--capath may be used at once.\n");
		return vs_cli_usage_hint(c);
	}
	if (t->psk && t->certfile) {
		fprintf(stderr, "Error: Only one of --psk or --cert may be used at once.\n");
		return vs_cli_usage_hint(c);
	}
	if (t->psk && !t->psk_identity) {
		fprintf(stderr, "Error: --psk-identity required if --psk used.\n");
		return vs_cli_usage_hint(c);
	}
	if (c->ws_on && !c->ws_path)
		c->ws_path = "/mqtt";
	if (c->ws_on && c->ws_path[0] != '/') {
		fprintf(stderr, "Error: --ws-path must start with '/'.\n");
		return vs_cli_usage_hint(c);
	}
	if (c->ws_on && !c->port_set)
		c->port = c->tls_on ? 443 : 80; /* RFC 6455's defaults for ws:// and wss:// */
	/* As mosquitto_pub: port 8883 with no TLS flag is MQTT over TLS with the OS's CAs. */
	if (c->port_set && c->port == 8883 && !c->tls_on) {
		c->tls_on = true;
		c->tls.os_certs = true;
	}
	if (!c->port_set)
		c->port = c->tls_on ? 8883 : 1883;
	return 0;
}

/* --auth-method: a Viesti extension (mosquitto_pub has none). MQTT 5 only, so it implies -V 5
 * as -D does; SCRAM needs both a username and a password. */
static int check_auth(struct vs_cli *c)
{
	if (!c->auth_method)
		return 0;
	if (strcmp(c->auth_method, "SCRAM-SHA-256") != 0) {
		fprintf(stderr,
			"Error: Unknown authentication method '%s' (SCRAM-SHA-256 is "
			"supported).\n",
			c->auth_method);
		return vs_cli_usage_hint(c);
	}
	if (c->version_set && c->version != VIESTI_V5) {
		fprintf(stderr, "Error: --auth-method needs MQTT v5 (-V 5).\n");
		return vs_cli_usage_hint(c);
	}
	c->version = VIESTI_V5;
	if (!c->username || !c->password) {
		fprintf(stderr,
			"Error: --auth-method %s needs a username (-u) and a password "
			"(-P).\n",
			c->auth_method);
		return vs_cli_usage_hint(c);
	}
	return 0;
}

/* --sn: MQTT-SN's flags and defaults (port 1884); QoS -1 for viesti pub only. */
static int check_sn(struct vs_cli *c)
{
	if (!c->sn) {
		if (c->sn_predefined) {
			fprintf(stderr, "Error: --sn-predefined needs --sn.\n");
			return vs_cli_usage_hint(c);
		}
		if (c->qos < 0) {
			fprintf(stderr, "Error: Invalid value '-1' for -q (QoS -1 needs --sn).\n");
			return vs_cli_usage_hint(c);
		}
		return 0;
	}
	if (c->tool == VS_TOOL_RR) {
		fprintf(stderr, "Error: --sn is for viesti pub and viesti sub.\n");
		return vs_cli_usage_hint(c);
	}
	if (c->not_sn) {
		fprintf(stderr,
			"Error: %s cannot be used with --sn (MQTT-SN 1.2 has no user names, "
			"passwords, MQTT v5 properties, URLs, TLS or WebSocket).\n",
			c->not_sn);
		return vs_cli_usage_hint(c);
	}
	if (c->qos < 0 && c->tool != VS_TOOL_PUB) {
		fprintf(stderr, "Error: Invalid value '-1' for -q (QoS -1 is for publishing).\n");
		return vs_cli_usage_hint(c);
	}
	if (!c->port_set)
		c->port = 1884;
	return 0;
}

/* mosquitto's rules for a session that outlives the connection: it needs a known client id
 * (-i; with -I the id changes from run to run). */
static int check_session(struct vs_cli *c)
{
	if (c->version == VIESTI_V5 && !c->sn) {
		int64_t x = c->session_expiry;
		if (!c->clean && x < 0)
			x = UINT32_MAX;
		if (x == UINT32_MAX && (c->id_prefix || !c->id)) {
			fprintf(stderr, "Error: You must provide a client id if you are using an "
					"infinite session expiry interval.\n");
			return vs_cli_usage_hint(c);
		}
	} else if (!c->clean && (c->id_prefix || !c->id)) {
		fprintf(stderr,
			"Error: You must provide a client id if you are using the -c option.\n");
		return vs_cli_usage_hint(c);
	}
	return 0;
}

/* What the transport flags allow together: --unix, -A, --proxy and -S. */
static int check_transport(struct vs_cli *c)
{
	if (c->sn && (c->unix_path || c->proxy_host || c->use_srv || c->bind_address)) {
		fprintf(stderr, "Error: --unix, -A, --proxy and -S cannot be used with --sn.\n");
		return vs_cli_usage_hint(c);
	}
	if (c->unix_path && (c->proxy_host || c->use_srv)) {
		fprintf(stderr, "Error: --unix cannot be used with --proxy or -S.\n");
		return vs_cli_usage_hint(c);
	}
	if (!c->sn && c->keepalive < 5) {
		fprintf(stderr, "Error: Invalid keepalive given, it must be between 5 and 65535 "
				"inclusive.\n\n");
		return vs_cli_usage_hint(c);
	}
	return 0;
}

int vs_cli_check(struct vs_cli *c)
{
	if (c->will_payload && !c->will_topic) {
		fprintf(stderr, "Error: Will payload given, but no will topic given.\n");
		return vs_cli_usage_hint(c);
	}
	if (c->will_retain && !c->will_topic) {
		fprintf(stderr, "Error: Will retain given, but no will topic given.\n");
		return vs_cli_usage_hint(c);
	}
	if (check_sn(c) < 0 || check_transport(c) < 0)
		return -1;
	if (!c->sn && (check_tls(c) < 0 || check_auth(c) < 0))
		return -1;
	if (check_session(c) < 0)
		return -1;
	if (c->id_prefix && !c->id) {
		size_t len = strlen(c->id_prefix) + 24;
		c->id_owned = malloc(len);
		if (!c->id_owned)
			return -1;
		snprintf(c->id_owned, len, "%s%d", c->id_prefix, (int)getpid());
		c->id = c->id_owned;
	}
	if (c->id && strlen(c->id) > 65535) {
		fprintf(stderr, "Error: Client id too long.\n");
		return vs_cli_usage_hint(c);
	}
	return 0;
}

/* ---- connecting ----------------------------------------------------------------------------- */

/* Prints the packet lines of -d; keeps the last error line, whose reason (a TLS alert, a
 * certificate check, an unreadable file) the message for a failed connection quotes. */
static void on_log(struct viesti *v, void *ud, int level, const char *line)
{
	struct vs_cli *c = ud ? *(struct vs_cli **)ud : NULL;
	if (c && level == VIESTI_LOG_ERR)
		snprintf(c->last_err, sizeof(c->last_err), "%s", line);
	if (level == VIESTI_LOG_DEBUG && c && c->debug && !strncmp(line, "Client ", 7)) {
		printf("%s\n", line);
		fflush(stdout);
	}
}

static int set_session_expiry(struct vs_cli *c)
{
	if (c->version != VIESTI_V5)
		return 0;
	int64_t x = c->session_expiry;
	if (x < 0)
		x = c->clean ? 0 : UINT32_MAX;
	if (x == 0 && !viesti_props_has(c->props[VS_PC_CONNECT], VIESTI_PROP_SESSION_EXPIRY))
		return 0;
	if (!c->props[VS_PC_CONNECT] && !(c->props[VS_PC_CONNECT] = viesti_props_new()))
		return -ENOMEM;
	return viesti_props_set_int(c->props[VS_PC_CONNECT], VIESTI_PROP_SESSION_EXPIRY,
				    (uint32_t)x);
}

const char *vs_cli_reason_string(int reason)
{
	/* libmosquitto's mosquitto_reason_string() words two of them differently. */
	if (reason == 0xA1)
		return "Subscription identifiers not supported";
	const char *s = viesti_reason_string(reason);
	return strcmp(s, "Unknown") == 0 ? "Unknown reason" : s;
}

/* The text Mosquitto prints for a refused CONNACK, so scripts matching it keep working. */
static const char *connack_text(int version, int reason)
{
	if (version != VIESTI_V5) {
		switch (reason) {
		case 1:
			return "Connection Refused: unacceptable protocol version.";
		case 2:
			return "Connection Refused: identifier rejected.";
		case 3:
			return "Connection Refused: broker unavailable.";
		case 4:
			return "Connection Refused: bad user name or password.";
		case 5:
			return "Connection Refused: not authorised.";
		default:
			return "Connection Refused: unknown reason.";
		}
	}
	return vs_cli_reason_string(reason);
}

/* -S: the broker named by the host's SRV records (_mqtt._tcp.HOST, or _secure-mqtt._tcp.HOST
 * with TLS; RFC 2782): the lowest priority, then the highest weight. Sets host and port. */
static int srv_lookup(struct vs_cli *c)
{
	char name[NS_MAXDNAME], target[NS_MAXDNAME];
	snprintf(name, sizeof(name), "_%s._tcp.%s", c->tls_on ? "secure-mqtt" : "mqtt", c->host);
	unsigned char ans[NS_PACKETSZ * 4];
	int len = res_query(name, ns_c_in, ns_t_srv, ans, sizeof(ans));
	ns_msg msg;
	if (len < 0 || ns_initparse(ans, len, &msg) < 0)
		return -1;
	int best_prio = -1, best_weight = -1;
	for (int k = 0; k < ns_msg_count(msg, ns_s_an); k++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, k, &rr) < 0 || ns_rr_type(rr) != ns_t_srv ||
		    ns_rr_rdlen(rr) < 7)
			continue;
		const unsigned char *d = ns_rr_rdata(rr);
		int prio = ns_get16(d), weight = ns_get16(d + 2), port = ns_get16(d + 4);
		if (best_prio >= 0 &&
		    (prio > best_prio || (prio == best_prio && weight <= best_weight)))
			continue;
		if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), d + 6, target, sizeof(target)) < 0)
			continue;
		char *t = strdup(target);
		if (!t)
			return -1;
		free(c->srv_host);
		c->host = c->srv_host = t;
		c->port = port;
		best_prio = prio;
		best_weight = weight;
	}
	return best_prio >= 0 ? 0 : -1;
}

/* What libmosquitto refuses before connecting, with mosquitto_pub's words: a password without
 * a user name in MQTT 3.x [MQTT-3.1.2-22], CONNECT properties without MQTT 5. */
static int check_before_connect(struct vs_cli *c)
{
	if (c->version != VIESTI_V5 && c->password && !c->username) {
		vs_cli_err(c, "Error: Problem setting username and/or password.");
		return -1;
	}
	if (c->version != VIESTI_V5 && c->props[VS_PC_CONNECT]) {
		vs_cli_err(c, "Unable to connect (This feature is not supported.).");
		return -1;
	}
	if (c->use_srv && srv_lookup(c) < 0) {
		vs_cli_err(c, "Unable to connect (Lookup error.).");
		return -1;
	}
	return 0;
}

static void set_transport(struct vs_cli *c, struct viesti_options *o)
{
	/* -p 0 is a unix socket at the host's path, as in mosquitto_pub. */
	o->unix_path = c->unix_path ? c->unix_path : c->port == 0 ? c->host : NULL;
	o->bind_address = c->bind_address;
	o->proxy_host = c->proxy_host;
	o->proxy_port = c->proxy_port;
	o->proxy_username = c->proxy_user;
	o->proxy_password = c->proxy_user ? c->proxy_pass : NULL;
	o->max_inflight = c->max_inflight;
	o->tls = c->tls_on ? &c->tls : NULL;
	o->ws_path = c->ws_on ? c->ws_path : NULL;
}

/* Why the first attempt failed, in mosquitto_pub's words where it has some; returns the exit
 * status. */
static int report_failure(struct vs_cli *c, int err)
{
	if (err == VIESTI_ELOOKUP) {
		vs_cli_err(c, "Unable to connect (Lookup error.).");
		return VS_EXIT_CONNECT;
	}
	/* libmosquitto meets the proxy's answers in its loop: its errors end the tools with
	 * MOSQ_ERR_PROXY (16), or MOSQ_ERR_NO_CONN (4) when the proxy could not reach the broker.
	 */
	if (err == VIESTI_EPROXY) {
		vs_cli_err(c, "Error: Proxy error.");
		return 16;
	}
	if (err == VIESTI_EPROXY_TARGET) {
		vs_cli_err(c, "Error: The client is not currently connected.");
		return 4;
	}
	/* The library's line says more than the code for TLS and for SCRAM. */
	bool detail = (err == VIESTI_ETLS || err == VIESTI_EAUTH ||
		       (err == VIESTI_EPROTO && c->auth_method)) &&
		      c->last_err[0];
	vs_cli_err(c, "Error: %s", detail ? c->last_err : viesti_strerror(err));
	return VS_EXIT_CONNECT;
}

/* A refused CONNACK: mosquitto's line, and the reason code as the exit status. */
static int report_refusal(struct vs_cli *c, int reason)
{
	/* mosquitto_rr words every refusal with the MQTT 5 table, whatever the version. */
	if (c->version != VIESTI_V5 && c->tool != VS_TOOL_RR)
		vs_cli_err(c, "Connection error: %s", connack_text(c->version, reason));
	else if (reason == 0x84 && c->tool == VS_TOOL_RR)
		vs_cli_err(c,
			   "Connection error: %s. %s only supports connecting to an MQTT v5 broker",
			   vs_cli_reason_string(reason), c->prog);
	else if (reason == 0x84)
		vs_cli_err(c,
			   "Connection error: %s. Try connecting to an MQTT v5 broker, or use MQTT "
			   "v3.x mode.",
			   vs_cli_reason_string(reason));
	else
		vs_cli_err(c, "Connection error: %s", vs_cli_reason_string(reason));
	/* mosquitto_pub's loop then ends with an error of its own. */
	if (c->tool == VS_TOOL_PUB)
		vs_cli_err(c, "Error: %s",
			   c->version != VIESTI_V5 ? "The connection was refused."
						   : "A network protocol error occurred when "
						     "communicating with the broker.");
	return reason > 0 ? reason : VS_EXIT_CONNECT;
}

struct viesti *vs_cli_connect(struct vs_cli *c, struct viesti_callbacks *cb, void *ud,
			      bool reconnect, int *exit_code)
{
	*exit_code = VS_EXIT_USAGE;
	if (check_before_connect(c) < 0)
		return NULL;
	struct viesti_options o;
	viesti_options_init(&o);
	o.host = c->host;
	o.port = c->port;
	o.version = c->version;
	char gen[40];
	o.client_id = c->id;
	if (!c->id) {
		/* 3.1 forbids an empty id; 3.1.1 and 5.0 let the broker assign one. */
		snprintf(gen, sizeof(gen), "viesti_%s_%d", tool_names[c->tool], (int)getpid());
		o.client_id = c->version == VIESTI_V31 ? gen : "";
	}
	o.username = c->username;
	o.password = c->password;
	o.auth_method = c->auth_method;
	o.keepalive = c->keepalive;
	o.clean = c->clean;
	o.reconnect = reconnect;
	o.connect_wait_retries = false; /* as mosquitto's tools: the first attempt decides */
	o.reconnect_min_ms = 1000;
	o.log_level = c->debug ? VIESTI_LOG_DEBUG : VIESTI_LOG_INFO;
	if (set_session_expiry(c) < 0)
		return NULL;
	o.connect_props = c->props[VS_PC_CONNECT];
	if (c->will_topic) {
		o.will_topic = c->will_topic;
		o.will_payload = c->will_payload;
		o.will_payload_len = c->will_payload ? strlen(c->will_payload) : 0;
		o.will_qos = c->will_qos;
		o.will_retain = c->will_retain;
		o.will_props = c->props[VS_PC_WILL];
	}
	set_transport(c, &o);
	if (!cb->on_log)
		cb->on_log = on_log;
	int err;
	c->last_err[0] = 0;
	struct viesti *v = viesti_new(&o, cb, ud, &err);
	if (!v) {
		vs_cli_err(c, "Error: %s", c->last_err[0] ? c->last_err : viesti_strerror(err));
		return NULL;
	}
	err = viesti_connect_wait(v, -1);
	if (err == 0)
		return v;
	if (err == VIESTI_EREFUSED) {
		*exit_code = report_refusal(c, viesti_connack_reason(v));
	} else {
		*exit_code = report_failure(c, err);
	}
	viesti_free(v);
	return NULL;
}

void vs_cli_disconnect(struct vs_cli *c, struct viesti *v)
{
	/* Already disconnecting (a tool may start it from a callback): flush what is queued. */
	viesti_disconnect(v, 0, c->props[VS_PC_DISCONNECT]);
	for (int k = 0; k < 50 && viesti_want_write(v); k++)
		viesti_loop(v, 100);
	viesti_loop(v, 0);
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

bool vs_cli_topic_valid(const char *t)
{
	return *t && !strpbrk(t, "+#");
}

bool vs_cli_filter_valid(const char *f)
{
	if (!*f)
		return false;
	for (const char *p = f; *p; p++) {
		bool start = p == f || p[-1] == '/';
		bool end = !p[1] || p[1] == '/';
		if (*p == '+' && !(start && end))
			return false;
		if (*p == '#' && !(start && !p[1]))
			return false;
	}
	return true;
}

void vs_cli_help_common(FILE *f)
{
	fprintf(
	    f,
	    " -A : bind the outgoing socket to this host/ip address. Use to control which "
	    "interface\n"
	    "      the client communicates over.\n"
	    " -c : disable clean session/enable persistent client mode.\n"
	    " -d : enable debug messages.\n"
	    " -D : define MQTT v5 properties: -D command identifier value (user-property takes\n"
	    "      name value). Commands: connect, publish, subscribe, unsubscribe, disconnect,\n"
	    "      will. Implies -V 5 unless -V is given.\n"
	    " -h : mqtt host to connect to. Defaults to localhost.\n"
	    " -i : id to use for this client. Defaults to one the broker assigns (3.1: "
	    "generated).\n"
	    " -I : define the client id as id_prefix appended with the process id.\n"
	    " -k : keep alive in seconds for this client (5-65535). Defaults to 60.\n"
	    " -L : specify user, password, hostname, port and topic as a URL in the form:\n"
	    "      mqtt(s)://[username[:password]@]host[:port]/topic, or ws(s):// for MQTT over\n"
	    "      WebSocket (default ports 80 and 443; the upgrade goes to --ws-path).\n"
	    " -M : the maximum inflight messages for QoS 1/2. Defaults to 20.\n"
	    " -p : network port to connect to. Defaults to 1883 for plain MQTT and 8883 for MQTT\n"
	    "      over TLS. 0: the host is the path of a unix socket.\n"
	    " -P : provide a password\n"
	    " -q : quality of service level to use. Defaults to 0.\n"
	    " -S : use SRV lookups (_mqtt._tcp.HOST, _secure-mqtt._tcp.HOST with TLS) to\n"
	    "      determine which host and port to connect to.\n"
	    " -u : provide a username\n"
	    " -V : specify the version of the MQTT protocol to use when connecting.\n"
	    "      Can be mqttv5 (5), mqttv311 (311) or mqttv31 (31).\n"
	    " -x : Set the session-expiry-interval property on the CONNECT packet (MQTT v5).\n"
	    "      0-4294967294 seconds, or -1 / 4294967295 for no expiry. Defaults to -1 with "
	    "-c,\n"
	    "      else 0.\n"
	    " --help : display this message.\n"
	    " --nodelay : disable Nagle's algorithm (Viesti's sockets always do: accepted for\n"
	    "             compatibility).\n"
	    " --proxy : SOCKS5 proxy URL of the form:\n"
	    "           socks5h://[username[:password]@]hostname[:port]\n"
	    "           Only \"none\" and \"username\" authentication is supported.\n"
	    " --quiet : don't print error messages.\n"
	    " --unix : connect to a broker through a unix domain socket instead of a TCP socket,\n"
	    "          e.g. /tmp/mosquitto.sock\n"
	    " --will-payload : payload for the client Will.\n"
	    " --will-qos : QoS level for the client Will.\n"
	    " --will-retain : if given, make the client Will retained.\n"
	    " --will-topic : the topic on which to publish the client Will.\n"
	    " --cafile : path to a file containing trusted CA certificates to enable encrypted\n"
	    "            communication.\n"
	    " --capath : path to a directory containing trusted CA certificates to enable\n"
	    "            encrypted communication.\n"
	    " --cert : client certificate for authentication, if required by server (PEM).\n"
	    " --key : client private key for authentication, if required by server (PEM).\n"
	    " --tls-version : minimum TLS protocol version, can be one of tlsv1.3 tlsv1.2.\n"
	    "                 Defaults to tlsv1.2.\n"
	    " --tls-alpn : TLS application layer protocol to offer (ALPN).\n"
	    " --tls-use-os-certs : Load and trust OS provided CA certificates.\n"
	    " --insecure : do not check that the server certificate hostname matches the remote\n"
	    "              hostname. Using this option means that you cannot be sure that the\n"
	    "              remote host is the server you wish to connect to and so is insecure.\n"
	    "              Do not use this option in a production environment.\n"
	    " --psk : pre-shared-key in hexadecimal (no leading 0x) to enable TLS-PSK mode.\n"
	    " --psk-identity : client identity string for TLS-PSK mode.\n"
	    " --ws-path : MQTT over WebSocket, upgrading at this request path (default /mqtt\n"
	    "             with ws:// or wss:// URLs). A Viesti extension.\n"
	    " --auth-method : SCRAM-SHA-256, MQTT v5 enhanced authentication with -u and -P:\n"
	    "                 the password never goes on the wire, and the broker must prove\n"
	    "                 it knows the credentials. Implies -V 5. A Viesti extension:\n"
	    "                 mosquitto_pub and mosquitto_sub have no such option.\n"
	    "\nExit status, as mosquitto_pub's and mosquitto_sub's: 0 success (a message or\n"
	    "subscription the broker rejected is a warning on stderr), 1 bad arguments, could not\n"
	    "connect or input unreadable, N the broker refused the connection with CONNACK reason\n"
	    "code N (5 not authorised in MQTT 3.1.1, 135 in MQTT 5.0, ...), 7 connection lost,\n"
	    "4 or 16 the --proxy could not reach the broker or refused us, 27 timed out (-W).\n");
}
