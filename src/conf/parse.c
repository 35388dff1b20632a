/*
 * The mosquitto.conf reader (see conf.h).
 *
 * One table, directives[], says everything about each directive: its name, the setter that
 * parses its value, where the value goes (offsetof into struct vs_config or struct
 * vs_listener_conf), its scope and flags. The line loop finds the row and calls the setter; no
 * function knows more than one directive's syntax except the generic setters (string, bool,
 * integer in [min, max]) that most rows share.
 *
 * Scopes:
 *   GLOBAL    the value goes into struct vs_config wherever the line is;
 *   LISTENER  into the current listener: the last `listener` line's, or before any, the default
 *             listener (created on first use, always listeners[0]);
 *   SECURITY  allow_anonymous, password_file, ...: the current listener when
 *             per_listener_settings is true, else struct vs_config (as Mosquitto).
 *   BRIDGE    into the last `connection` section (struct vs_bridge_conf); an error before
 *             any `connection` line.
 *
 * File format, as Mosquitto's: one directive per line, a name then its value separated by
 * whitespace; '#' as the first non-blank character starts a comment line; string values take
 * the rest of the line, so paths may contain spaces. Unlike Mosquitto, numbers and booleans are
 * strict: garbage, out-of-range values and extra words are errors with "FILE:LINE: what,
 * expected what", never silently 0.
 *
 * Trailing comments follow Mosquitto's rule, which comes from how its reader splits a line: a
 * directive whose value is one or a few words (numbers, booleans, choices, `listener PORT
 * [ADDRESS]`, `log_dest stderr`) reads those words and ignores the rest of the line, so
 * "max_queued_messages 5000  # per client" works there; a directive whose value is the rest of
 * the line (paths, prefixes, formats, `log_dest file PATH`, and in Mosquitto also
 * `bind_address`, `tls_version` and `tls_keyform`) keeps the '#' in its value:
 * "password_file /a # b" names the file "/a # b", as in Mosquitto. Here a word starting with
 * '#' after the value is that comment (no_more()); other extra words stay errors.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"

/* State of one top-level parse; included files share it (the current listener carries over
 * into an included file, as in Mosquitto). */
struct parser {
	struct vs_config *c;
	const char *file; /* name used in messages */
	int line;
	int depth;	    /* 0 in the main file, 1 in a file read through include_dir */
	long cur;	    /* index of the last `listener`, -1 = the default listener */
	bool log_dest_seen; /* the first log_dest / log_type replaces the default set */
	bool log_type_seen;
	bool security_seen; /* a security directive or listener came before per_listener_settings */
	bool comment_ok;    /* this line's directive takes words: a trailing "# ..." is a comment */
	char *err;
	size_t errlen;
	vs_conf_report_fn report; /* set: a bad line is reported and the parse goes on */
	void *report_ud;
	int n_errors; /* reported so far */
};

struct directive;
typedef int (*setter_fn)(struct parser *p, const struct directive *d, void *field, char *args);

enum scope { S_GLOBAL, S_LISTENER, S_SECURITY, S_BRIDGE };

enum {
	F_UNSUPPORTED = 1 << 0, /* a Mosquitto directive Viesti does not implement yet */
	F_OBSOLETE = 1 << 1,	/* removed from Mosquitto 2.0, has no effect anywhere */
	F_PREFIX = 1 << 2,	/* name is a prefix: plugin_opt_*, bridge_* */
	F_REST = 1 << 3,	/* Mosquitto reads the rest of the line as the value, so a '#'
				 * after it is no comment (bind_address, tls_version, ...) */
};

struct directive {
	const char *name;
	setter_fn set;
	size_t
	    off; /* GLOBAL, SECURITY: offset in struct vs_config; LISTENER: in vs_listener_conf */
	size_t loff; /* SECURITY: offset in struct vs_listener_conf */
	unsigned char scope;
	unsigned char flags;
	int64_t min, max; /* integer setters: the accepted range */
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Formats "FILE:LINE: <message>" into p->err and returns VS_ECONF. */
static int perr(struct parser *p, const char *fmt, ...)
{
	if (!p->err || !p->errlen)
		return VS_ECONF;
	int n = snprintf(p->err, p->errlen, "%s:%d: ", p->file, p->line);
	if (n < 0 || (size_t)n >= p->errlen)
		return VS_ECONF;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return VS_ECONF;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

char *vs_conf_next_word(char **s)
{
	char *t = *s;
	while (is_blank(*t))
		t++;
	if (!*t) {
		*s = t;
		return NULL;
	}
	char *start = t;
	while (*t && !is_blank(*t))
		t++;
	if (*t)
		*t++ = '\0';
	*s = t;
	return start;
}

static int missing(struct parser *p, const struct directive *d, const char *expected)
{
	return perr(p, "missing value for '%s', expected %s", d->name, expected);
}

/* A word starting with '#' after a directive's words starts a comment, as in Mosquitto. */
static bool is_comment(const struct parser *p, const char *word)
{
	return p->comment_ok && word[0] == '#';
}

/* Checks that nothing follows the value(s) already taken from args, but a comment. */
static int no_more(struct parser *p, const struct directive *d, char *args)
{
	char *extra = vs_conf_next_word(&args);
	if (extra && !is_comment(p, extra))
		return perr(p, "unexpected '%s' after the value of '%s', expected end of line",
			    extra, d->name);
	return 0;
}

/* ---- listeners ---- */

static struct vs_listener_conf *grow_listeners(struct vs_config *c)
{
	struct vs_listener_conf *n = realloc(c->listeners, (c->n_listeners + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->listeners = n;
	return n;
}

static struct vs_listener_conf *add_listener(struct parser *p)
{
	struct vs_config *c = p->c;
	if (!grow_listeners(c))
		return NULL;
	struct vs_listener_conf *l = &c->listeners[c->n_listeners++];
	vs_listener_conf_init(l, c);
	return l;
}

/* The default listener, created as listeners[0] on first use. */
static struct vs_listener_conf *default_listener(struct parser *p)
{
	struct vs_config *c = p->c;
	if (c->has_default_listener)
		return &c->listeners[0];
	if (!grow_listeners(c))
		return NULL;
	memmove(&c->listeners[1], &c->listeners[0], c->n_listeners * sizeof(c->listeners[0]));
	c->n_listeners++;
	vs_listener_conf_init(&c->listeners[0], c);
	c->has_default_listener = true;
	if (p->cur >= 0)
		p->cur++;
	return &c->listeners[0];
}

static struct vs_listener_conf *current_listener(struct parser *p)
{
	return p->cur >= 0 ? &p->c->listeners[p->cur] : default_listener(p);
}

/* ---- generic setters ---- */

/* The rest of the line, spaces included (Mosquitto's conf__parse_string). */
static int set_string(struct parser *p, const struct directive *d, void *field, char *args)
{
	if (!*args)
		return missing(p, d, "a value");
	char *s = strdup(args);
	if (!s)
		return -ENOMEM;
	char **dst = field;
	free(*dst);
	*dst = s;
	return 0;
}

/* A repeatable directive: each line adds its value (one token) to a struct vs_strlist. */
static int set_strlist(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, "a value");
	int rc = no_more(p, d, args);
	return rc ? rc : vs_strlist_add(field, tok);
}

/* websockets_trusted_proxy: an IPv4 or IPv6 address, as the peer's address is compared. */
static int set_proxy(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, "an IP address");
	uint8_t bin[16];
	if (inet_pton(AF_INET, tok, bin) != 1 && inet_pton(AF_INET6, tok, bin) != 1)
		return perr(p, "bad value '%s' for '%s', expected an IPv4 or IPv6 address", tok,
			    d->name);
	int rc = no_more(p, d, args);
	return rc ? rc : vs_strlist_add(field, tok);
}

/* mqttsn_allowed_sources: ADDRESS[/PREFIX], IPv4 or IPv6 (checked again where it is used). */
static int set_cidr(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, "an address or ADDRESS/PREFIX");
	char addr[64];
	snprintf(addr, sizeof(addr), "%s", tok);
	char *slash = strchr(addr, '/');
	int max = strchr(addr, ':') ? 128 : 32;
	if (slash) {
		*slash = '\0';
		char *end;
		long bits = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || bits < 0 || bits > max)
			return perr(p, "bad prefix in '%s' for '%s', expected /0../%d", tok,
				    d->name, max);
	}
	uint8_t bin[16];
	if (inet_pton(max == 32 ? AF_INET : AF_INET6, addr, bin) != 1)
		return perr(p,
			    "bad value '%s' for '%s', expected an IPv4 or IPv6 address, "
			    "optionally with /PREFIX",
			    tok, d->name);
	int rc = no_more(p, d, args);
	return rc ? rc : vs_strlist_add(field, tok);
}

/* A duration in seconds with an optional fraction ("0.25"), stored in milliseconds. */
static int set_seconds_ms(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, "a number of seconds");
	char *end;
	double v = strtod(tok, &end);
	if (end == tok || *end || !(v >= 0.01 && v <= 3600))
		return perr(p, "bad value '%s' for '%s', expected seconds from 0.01 to 3600", tok,
			    d->name);
	*(int *)field = (int)(v * 1000 + 0.5);
	return no_more(p, d, args);
}

static int parse_bool(struct parser *p, const struct directive *d, char *args, bool *out)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, "true or false");
	if (strcmp(tok, "true") == 0)
		*out = true;
	else if (strcmp(tok, "false") == 0)
		*out = false;
	else
		return perr(p, "bad value '%s' for '%s', expected true or false", tok, d->name);
	return no_more(p, d, args);
}

static int set_bool(struct parser *p, const struct directive *d, void *field, char *args)
{
	return parse_bool(p, d, args, field);
}

/* A bool into an int field that also has an "unset" value (-1). */
static int set_tristate(struct parser *p, const struct directive *d, void *field, char *args)
{
	bool v;
	int rc = parse_bool(p, d, args, &v);
	if (rc == 0)
		*(int *)field = v;
	return rc;
}

/* A SECURITY bool whose global field is a bool and per-listener field a tristate int. */
static int set_bool_or_tristate(struct parser *p, const struct directive *d, void *field,
				char *args)
{
	if (p->c->per_listener_settings)
		return set_tristate(p, d, field, args);
	return set_bool(p, d, field, args);
}

/* Strict decimal: an optional '-', digits only, no overflow; within [d->min, d->max]. */
static int parse_int_token(struct parser *p, const struct directive *d, const char *tok,
			   int64_t *out)
{
	const char *s = tok;
	bool neg = *s == '-';
	if (neg)
		s++;
	uint64_t v = 0;
	bool ok = *s != '\0';
	for (; *s && ok; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			ok = false;
		else
			v = v * 10 + (uint64_t)(*s - '0');
	}
	if (ok && v > (uint64_t)INT64_MAX)
		ok = false;
	int64_t sv = neg ? -(int64_t)v : (int64_t)v;
	if (!ok || sv < d->min || sv > d->max)
		return perr(
		    p, "bad value '%s' for '%s', expected an integer from %" PRId64 " to %" PRId64,
		    tok, d->name, d->min, d->max);
	*out = sv;
	return 0;
}

static int parse_int(struct parser *p, const struct directive *d, char *args, int64_t *out)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return perr(
		    p, "missing value for '%s', expected an integer from %" PRId64 " to %" PRId64,
		    d->name, d->min, d->max);
	int rc = parse_int_token(p, d, tok, out);
	return rc ? rc : no_more(p, d, args);
}

static int set_int(struct parser *p, const struct directive *d, void *field, char *args)
{
	int64_t v;
	int rc = parse_int(p, d, args, &v);
	if (rc == 0)
		*(int *)field = (int)v;
	return rc;
}

static int set_u32(struct parser *p, const struct directive *d, void *field, char *args)
{
	int64_t v;
	int rc = parse_int(p, d, args, &v);
	if (rc == 0)
		*(uint32_t *)field = (uint32_t)v;
	return rc;
}

static int set_u64(struct parser *p, const struct directive *d, void *field, char *args)
{
	int64_t v;
	int rc = parse_int(p, d, args, &v);
	if (rc == 0)
		*(uint64_t *)field = (uint64_t)v;
	return rc;
}

/* ---- special setters ---- */

/* Mosquitto refuses packets under 20 bytes as a limit: no CONNECT would fit. */
static int set_max_packet_size(struct parser *p, const struct directive *d, void *field, char *args)
{
	int64_t v;
	int rc = parse_int(p, d, args, &v);
	if (rc)
		return rc;
	if (v != 0 && v < 20)
		return perr(p,
			    "bad value '%" PRId64 "' for '%s', expected 0 (no limit) or at "
			    "least 20",
			    v, d->name);
	*(uint32_t *)field = (uint32_t)v;
	return 0;
}

/* "<n><h|d|w|m|y>": hours, days, weeks, months (30 days), years (365 days), as Mosquitto; a
 * bare number has no unit and is refused, as Mosquitto does. */
static int set_expiration(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char expected[] = "a positive number followed by h, d, w, m or y "
				       "(hours, days, weeks, months, years), like 14d";
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, expected);
	size_t len = strlen(tok);
	int64_t unit;
	switch (tok[len - 1]) {
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	case 'm':
		unit = 30 * 86400;
		break;
	case 'y':
		unit = 365 * 86400;
		break;
	default:
		return perr(p, "bad value '%s' for '%s', expected %s", tok, d->name, expected);
	}
	int64_t n = 0;
	bool ok = len >= 2;
	for (size_t i = 0; i + 1 < len && ok; i++) {
		if (tok[i] < '0' || tok[i] > '9' || n > (INT64_MAX / unit - 9) / 10)
			ok = false;
		else
			n = n * 10 + (tok[i] - '0');
	}
	if (!ok || n == 0)
		return perr(p, "bad value '%s' for '%s', expected %s", tok, d->name, expected);
	*(int64_t *)field = n * unit;
	return no_more(p, d, args);
}

/* `listener PORT [ADDRESS]`; port 0 with a path is a unix socket (Mosquitto 2.0). */
static int set_listener(struct parser *p, const struct directive *d, void *field, char *args)
{
	const struct directive port_range = {.name = d->name, .min = 0, .max = 65535};
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, "a port from 0 to 65535 and an optional address");
	int64_t port;
	int rc = parse_int_token(p, &port_range, tok, &port);
	if (rc)
		return rc;
	char *addr = vs_conf_next_word(&args);
	if (addr && is_comment(p, addr))
		addr = NULL; /* "listener 1883 # public": no address (Mosquitto) */
	if (addr && (rc = no_more(p, d, args)) != 0)
		return rc;
	if (port == 0 && !addr)
		return perr(p,
			    "'listener 0' without a socket path, expected 'listener 0 PATH' or a "
			    "port from 1 to 65535");
	char *addr_copy = NULL;
	if (addr && !(addr_copy = strdup(addr)))
		return -ENOMEM;
	struct vs_listener_conf *l = add_listener(p);
	if (!l) {
		free(addr_copy);
		return -ENOMEM;
	}
	l->port = (int)port;
	l->bind_address = addr_copy;
	if (port == 0)
		l->socket_domain = AF_UNIX;
	p->cur = (long)(p->c->n_listeners - 1);
	p->security_seen = true;
	return 0;
}

/* `port N`: the default listener's port, wherever the line is. */
static int set_port(struct parser *p, const struct directive *d, void *field, char *args)
{
	int64_t v;
	int rc = parse_int(p, d, args, &v);
	if (rc)
		return rc;
	struct vs_listener_conf *l = default_listener(p);
	if (!l)
		return -ENOMEM;
	l->port = (int)v;
	return 0;
}

/* `bind_address HOST`: the default listener's address (deprecated in Mosquitto 2.0). */
static int set_bind_address(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, "a host name or address");
	int rc = no_more(p, d, args);
	if (rc)
		return rc;
	struct vs_listener_conf *l = default_listener(p);
	if (!l)
		return -ENOMEM;
	return set_string(p, d, &l->bind_address, tok);
}

/* A single word, one of names[] (NULL-terminated); returns its index via *out. */
static int parse_choice(struct parser *p, const struct directive *d, char *args,
			const char *const *names, const char *expected, int *out)
{
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, expected);
	for (int i = 0; names[i]; i++) {
		if (strcmp(tok, names[i]) == 0) {
			*out = i;
			return no_more(p, d, args);
		}
	}
	return perr(p, "bad value '%s' for '%s', expected %s", tok, d->name, expected);
}

static int set_protocol(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"mqtt", "websockets", "mqttsn", "http", NULL};
	static const enum vs_listener_protocol protos[] = {VS_LPROTO_MQTT, VS_LPROTO_WEBSOCKETS,
							   VS_LPROTO_MQTTSN, VS_LPROTO_HTTP};
	int i;
	int rc = parse_choice(p, d, args, names, "mqtt, websockets, mqttsn or http", &i);
	if (rc == 0)
		*(enum vs_listener_protocol *)field = protos[i];
	return rc;
}

static int set_socket_domain(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"ipv4", "ipv6", NULL};
	int i;
	int rc = parse_choice(p, d, args, names, "ipv4 or ipv6", &i);
	if (rc == 0)
		*(int *)field = i ? AF_INET6 : AF_INET;
	return rc;
}

static int set_tls_version(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"tlsv1.1", "tlsv1.2", "tlsv1.3", NULL};
	int i;
	int rc = parse_choice(p, d, args, names, "tlsv1.1, tlsv1.2 or tlsv1.3", &i);
	return rc ? rc : set_string(p, d, field, (char *)names[i]);
}

/* `log_format viesti | mosquitto | json` (Viesti): the shape of each log line. */
static int set_log_format(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"viesti", "mosquitto", "json", NULL};
	static const int formats[] = {VS_CONF_LOG_VIESTI, VS_CONF_LOG_MOSQUITTO, VS_CONF_LOG_JSON};
	int i;
	int rc = parse_choice(p, d, args, names, "viesti, mosquitto or json", &i);
	if (rc == 0)
		*(int *)field = formats[i];
	return rc;
}

/* `tls_keyform pem | engine`: where the listener's private key comes from. */
static int set_keyform(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"pem", "engine", NULL};
	int i;
	int rc = parse_choice(p, d, args, names, "pem or engine", &i);
	if (rc == 0)
		*(bool *)field = i == 1;
	return rc;
}

/* `persistence_fsync never | batch | interval MS` (Viesti extension). */
static int set_fsync(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char expected[] = "never, batch or interval MS";
	const struct directive ms = {.name = d->name, .min = 1, .max = 3600000};
	struct vs_config *c = p->c;
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, expected);
	if (strcmp(tok, "never") == 0 || strcmp(tok, "batch") == 0) {
		c->persistence_fsync = tok[0] == 'n' ? VS_CONF_FSYNC_NEVER : VS_CONF_FSYNC_BATCH;
		return no_more(p, d, args);
	}
	if (strcmp(tok, "interval") != 0)
		return perr(p, "bad value '%s' for '%s', expected %s", tok, d->name, expected);
	int64_t v;
	int rc = parse_int(p, &ms, args, &v);
	if (rc)
		return rc;
	c->persistence_fsync = VS_CONF_FSYNC_INTERVAL;
	c->persistence_fsync_interval_ms = (int)v;
	return 0;
}

/* log_dest: the first one replaces the default (stderr); later ones add. */
static int set_log_dest(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char expected[] = "stderr, stdout, syslog, topic, file PATH or none";
	static const struct {
		const char *name;
		unsigned dest;
	} dests[] = {{"stderr", VS_LOGD_STDERR},
		     {"stdout", VS_LOGD_STDOUT},
		     {"syslog", VS_LOGD_SYSLOG},
		     {"topic", VS_LOGD_TOPIC},
		     {"none", VS_LOGD_NONE}};
	struct vs_log *log = &p->c->log;
	char *tok = vs_conf_next_word(&args);
	if (!tok)
		return missing(p, d, expected);
	if (strcmp(tok, "dlt") == 0)
		return perr(p, "'log_dest %s' is not supported yet", tok);
	unsigned dest = 0;
	bool found = false;
	for (size_t i = 0; i < sizeof(dests) / sizeof(dests[0]) && !found; i++) {
		if (strcmp(tok, dests[i].name) == 0) {
			dest = dests[i].dest;
			found = true;
		}
	}
	if (!found && strcmp(tok, "file") != 0)
		return perr(p, "bad value '%s' for '%s', expected %s", tok, d->name, expected);
	if (found) {
		int rc = no_more(p, d, args);
		if (rc)
			return rc;
	} else {
		while (is_blank(*args))
			args++;
		if (!*args)
			return perr(p, "missing path for 'log_dest file', expected 'log_dest file "
				       "PATH'");
		if (log->file_path)
			return perr(p, "second 'log_dest file', expected one log file");
		if (!(log->file_path = strdup(args)))
			return -ENOMEM;
		dest = VS_LOGD_FILE;
	}
	if (!p->log_dest_seen)
		log->dests = 0;
	p->log_dest_seen = true;
	if (dest == VS_LOGD_NONE)
		log->dests = 0;
	log->dests |= dest;
	return 0;
}

/* log_type: the first one replaces the default set; later ones add. */
static int set_log_type(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"error", "warning",	  "notice",	 "information",
					    "debug", "subscribe", "unsubscribe", "websockets",
					    "none",  "all",	  NULL};
	static const unsigned types[] = {
	    VS_LOG_ERR,	      VS_LOG_WARN,	  VS_LOG_NOTICE,     VS_LOG_INFO, VS_LOG_DEBUG,
	    VS_LOG_SUBSCRIBE, VS_LOG_UNSUBSCRIBE, VS_LOG_WEBSOCKETS, 0,		  VS_LOG_ALL};
	int i;
	int rc = parse_choice(p, d, args, names,
			      "error, warning, notice, information, debug, subscribe, "
			      "unsubscribe, websockets, none or all",
			      &i);
	if (rc)
		return rc;
	struct vs_log *log = &p->c->log;
	if (!p->log_type_seen)
		log->types = 0;
	p->log_type_seen = true;
	if (types[i] == 0)
		log->types = 0;
	log->types |= types[i];
	return 0;
}

static int set_log_timestamp(struct parser *p, const struct directive *d, void *field, char *args)
{
	int rc = parse_bool(p, d, args, &p->c->log_timestamp);
	if (rc == 0)
		p->c->log.timestamps = p->c->log_timestamp;
	return rc;
}

/* Only "true" (Mosquitto's default) is accepted: we do not suppress duplicates yet. */
static int set_duplicates(struct parser *p, const struct directive *d, void *field, char *args)
{
	bool v;
	int rc = parse_bool(p, d, args, &v);
	if (rc == 0 && !v)
		return perr(p, "'allow_duplicate_messages false' is not supported yet");
	return rc;
}

/* Changing per_listener_settings after listeners or security options were read would make
 * their meaning depend on line order, so it must come first (Mosquitto's man page asks so). */
static int set_per_listener(struct parser *p, const struct directive *d, void *field, char *args)
{
	bool v;
	int rc = parse_bool(p, d, args, &v);
	if (rc)
		return rc;
	if (v != p->c->per_listener_settings && p->security_seen)
		return perr(p, "'per_listener_settings' after a listener or security directive, "
			       "expected it before them");
	p->c->per_listener_settings = v;
	return 0;
}

/* ---- bridges ---- */

/* `connection NAME` opens a bridge section: the bridge directives after it belong to it. */
static int set_connection(struct parser *p, const struct directive *d, void *field, char *args)
{
	struct vs_config *c = p->c;
	char *name = vs_conf_next_word(&args);
	if (!name)
		return missing(p, d, "a bridge name");
	int rc = no_more(p, d, args);
	if (rc)
		return rc;
	for (size_t i = 0; i < c->n_bridges; i++)
		if (strcmp(c->bridges[i].name, name) == 0)
			return perr(
			    p, "second bridge named '%s', expected a unique connection name", name);
	if (strpbrk(name, "+#/"))
		return perr(p, "bad bridge name '%s', expected a name without '+', '#' or '/'",
			    name);
	struct vs_bridge_conf *n = realloc(c->bridges, (c->n_bridges + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	c->bridges = n;
	rc = vs_bridge_conf_init(&n[c->n_bridges], name);
	if (rc) {
		vs_bridge_conf_fini(&n[c->n_bridges]);
		return rc;
	}
	c->n_bridges++;
	return 0;
}

/* One HOST[:PORT] or [V6]:PORT word; Mosquitto's default port is 1883. */
static bool address_ok(const char *w)
{
	const char *port = NULL;
	if (w[0] == '[') {
		const char *close = strchr(w, ']');
		if (!close || close == w + 1 || (close[1] && close[1] != ':'))
			return false;
		port = close[1] ? close + 2 : NULL;
	} else {
		const char *colon = strchr(w, ':');
		if (colon == w || (colon && strchr(colon + 1, ':')))
			return false;
		port = colon ? colon + 1 : NULL;
	}
	if (!port)
		return true;
	char *end;
	long v = strtol(port, &end, 10);
	return *port && !*end && v >= 1 && v <= 65535;
}

/* `address HOST[:PORT] [HOST[:PORT] ...]` (also `addresses`); repeated lines add. */
static int set_addresses(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *w = vs_conf_next_word(&args);
	if (!w)
		return missing(p, d, "HOST[:PORT], one or more");
	for (; w && !is_comment(p, w); w = vs_conf_next_word(&args)) {
		if (!address_ok(w))
			return perr(p,
				    "bad address '%s' for '%s', expected HOST[:PORT] with a port "
				    "from 1 to 65535 ([ADDRESS]:PORT for IPv6)",
				    w, d->name);
		int rc = vs_strlist_add(field, w);
		if (rc)
			return rc;
	}
	return 0;
}

static int set_topic(struct parser *p, const struct directive *d, void *field, char *args)
{
	struct vs_bridge_conf *b = (struct vs_bridge_conf *)((char *)field - d->off);
	struct vs_bridge_topic t;
	char why[256];
	int rc = vs_bridge_topic_parse(args, &t, why, sizeof(why));
	if (rc == VS_ECONF)
		return perr(p, "%s", why);
	if (rc)
		return rc;
	struct vs_bridge_topic *n = realloc(b->topics, (b->n_topics + 1) * sizeof(*n));
	if (!n) {
		vs_bridge_topic_fini(&t);
		return -ENOMEM;
	}
	b->topics = n;
	n[b->n_topics++] = t;
	return 0;
}

static int set_bridge_version(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"mqttv31", "mqttv311", "mqttv50", NULL};
	int i;
	int rc = parse_choice(p, d, args, names, "mqttv31, mqttv311 or mqttv50", &i);
	if (rc == 0)
		*(int *)field = i == 0 ? 3 : i == 1 ? 4 : 5;
	return rc;
}

static int set_start_type(struct parser *p, const struct directive *d, void *field, char *args)
{
	static const char *const names[] = {"automatic", "lazy", "once", NULL};
	int i;
	int rc = parse_choice(p, d, args, names, "automatic, lazy or once", &i);
	if (rc == 0)
		*(int *)field = i; /* enum vs_bridge_start, in the same order */
	return rc;
}

/* `restart_timeout SECONDS` (constant) or `restart_timeout BASE CAP` (backoff, Mosquitto). */
static int set_restart_timeout(struct parser *p, const struct directive *d, void *field, char *args)
{
	struct vs_bridge_conf *b = (struct vs_bridge_conf *)((char *)field - d->off);
	char *w = vs_conf_next_word(&args);
	if (!w)
		return missing(p, d, "SECONDS, or BASE CAP for a backoff");
	int64_t base, cap = 0;
	int rc = parse_int_token(p, d, w, &base);
	if (rc)
		return rc;
	char *w2 = vs_conf_next_word(&args);
	if (w2 && !is_comment(p, w2)) {
		if ((rc = parse_int_token(p, d, w2, &cap)) != 0)
			return rc;
		if (cap < base)
			return perr(p,
				    "restart_timeout cap %" PRId64 " below its base %" PRId64
				    ", expected BASE CAP with CAP >= BASE",
				    cap, base);
		if ((rc = no_more(p, d, args)) != 0)
			return rc;
	}
	b->restart_timeout = (int)base;
	b->restart_timeout_cap = (int)cap;
	return 0;
}

static int set_bridge_tls_version(struct parser *p, const struct directive *d, void *field,
				  char *args)
{
	static const char *const names[] = {"tlsv1.2", "tlsv1.3", NULL};
	int i;
	int rc = parse_choice(p, d, args, names, "tlsv1.2 or tlsv1.3", &i);
	return rc ? rc : set_string(p, d, field, (char *)names[i]);
}

/* bridge_psk: the key in hex, as Mosquitto (no "0x"). */
static int set_hex(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *w = vs_conf_next_word(&args);
	if (!w)
		return missing(p, d, "a key in hexadecimal");
	size_t n = strlen(w);
	bool ok = n > 0 && n % 2 == 0 && n <= 512 && strspn(w, "0123456789abcdefABCDEF") == n;
	if (!ok)
		return perr(p,
			    "bad value for '%s', expected an even number of hexadecimal digits "
			    "(no 0x, at most 256 bytes)",
			    d->name);
	int rc = no_more(p, d, args);
	return rc ? rc : set_string(p, d, field, w);
}

/* bridge_alpn: one protocol name, 1..255 bytes. */
static int set_alpn(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *w = vs_conf_next_word(&args);
	if (!w)
		return missing(p, d, "a protocol name such as mqtt");
	if (strlen(w) > 255)
		return perr(p, "'%s' longer than 255 bytes, expected one ALPN protocol name",
			    d->name);
	int rc = no_more(p, d, args);
	return rc ? rc : set_string(p, d, field, w);
}

/* A client id: one word, 1..65535 bytes (MQTT strings). */
static int set_word(struct parser *p, const struct directive *d, void *field, char *args)
{
	char *w = vs_conf_next_word(&args);
	if (!w)
		return missing(p, d, "one word");
	int rc = no_more(p, d, args);
	return rc ? rc : set_string(p, d, field, w);
}

static int parse_file(struct parser *p, const char *path);
static int set_include_dir(struct parser *p, const struct directive *d, void *field, char *args);

/* ---- the table ---- */

#define G(field) offsetof(struct vs_config, field)
#define L(field) offsetof(struct vs_listener_conf, field)
#define GLOBAL(n, fn, field, lo, hi)                                                               \
	{                                                                                          \
		n, fn, G(field), 0, S_GLOBAL, 0, lo, hi                                            \
	}
#define LISTENER(n, fn, field, lo, hi)                                                             \
	{                                                                                          \
		n, fn, L(field), 0, S_LISTENER, 0, lo, hi                                          \
	}
#define SECURITY(n, fn, gfield, lfield)                                                            \
	{                                                                                          \
		n, fn, G(gfield), L(lfield), S_SECURITY, 0, 0, 0                                   \
	}
#define SPECIAL(n, fn)                                                                             \
	{                                                                                          \
		n, fn, 0, 0, S_GLOBAL, 0, 0, 0                                                     \
	}
#define B(field) offsetof(struct vs_bridge_conf, field)
#define BRIDGE(n, fn, field, lo, hi)                                                               \
	{                                                                                          \
		n, fn, B(field), 0, S_BRIDGE, 0, lo, hi                                            \
	}
#define UNSUPPORTED(n)                                                                             \
	{                                                                                          \
		n, NULL, 0, 0, S_GLOBAL, F_UNSUPPORTED, 0, 0                                       \
	}
#define UNSUPPORTED_PREFIX(n)                                                                      \
	{                                                                                          \
		n, NULL, 0, 0, S_GLOBAL, F_UNSUPPORTED | F_PREFIX, 0, 0                            \
	}
#define OBSOLETE(n)                                                                                \
	{                                                                                          \
		n, NULL, 0, 0, S_GLOBAL, F_OBSOLETE, 0, 0                                          \
	}

static const struct directive directives[] = {
    /* General. */
    GLOBAL("threads", set_int, threads, 0, 1024),
    GLOBAL("auth_threads", set_int, auth_threads, 1, 64),
    GLOBAL("consolidate_threads", set_bool, consolidate_threads, 0, 0),
    GLOBAL("io_uring", set_bool, io_uring, 0, 0),
    SPECIAL("per_listener_settings", set_per_listener),
    SPECIAL("include_dir", set_include_dir),
    SPECIAL("allow_duplicate_messages", set_duplicates),
    GLOBAL("pid_file", set_string, pid_file, 0, 0),
    GLOBAL("cluster_url", set_string, cluster_url, 0, 0),
    GLOBAL("cluster_node_id", set_string, cluster_node_id, 0, 0),
    GLOBAL("cluster_credentials", set_string, cluster_credentials, 0, 0),
    GLOBAL("cluster_username", set_string, cluster_username, 0, 0),
    GLOBAL("cluster_password", set_string, cluster_password, 0, 0),
    GLOBAL("cluster_cafile", set_string, cluster_cafile, 0, 0),
    GLOBAL("cluster_certfile", set_string, cluster_certfile, 0, 0),
    GLOBAL("cluster_keyfile", set_string, cluster_keyfile, 0, 0),
    GLOBAL("cluster_stream_max_age", set_int, cluster_stream_max_age, 1, 31536000),
    GLOBAL("cluster_replicas", set_int, cluster_replicas, 1, 5),
    GLOBAL("cluster_lease", set_seconds_ms, cluster_lease_ms, 0, 0),
    GLOBAL("cluster_ack_wait", set_int, cluster_ack_wait, 1, 3600),
    GLOBAL("cluster_durable_all", set_bool, cluster_durable_all, 0, 0),
    GLOBAL("cluster_durable_sessions", set_bool, cluster_durable_sessions, 0, 0),
    GLOBAL("user", set_string, user, 0, 0),
    GLOBAL("sys_interval", set_int, sys_interval, 0, 65535),
    GLOBAL("clientid_prefixes", set_string, clientid_prefixes, 0, 0),
    GLOBAL("http_admin", set_strlist, http_admins, 0, 0),
    GLOBAL("set_tcp_nodelay", set_bool, set_tcp_nodelay, 0, 0),

    /* Security. */
    SECURITY("allow_anonymous", set_tristate, allow_anonymous, allow_anonymous),
    SECURITY("password_file", set_string, password_file, password_file),
    SECURITY("acl_file", set_string, acl_file, acl_file),
    SECURITY("allow_zero_length_clientid", set_bool_or_tristate, allow_zero_length_clientid,
	     allow_zero_length_clientid),
    SECURITY("auto_id_prefix", set_string, auto_id_prefix, auto_id_prefix),

    /* Limits and behaviour. */
    GLOBAL("max_keepalive", set_int, max_keepalive, 0, 65535),
    GLOBAL("connect_timeout", set_int, connect_timeout, 1, 3600),
    GLOBAL("http_timeout", set_int, http_timeout, 1, 3600),
    GLOBAL("http_headers_size", set_int, http_headers_size, 256, 1048576),
    GLOBAL("http_body_size", set_int, http_body_size, 0, 16777216),
    GLOBAL("websockets_headers_size", set_int, websockets_headers_size, 0, 1048576),
    GLOBAL("websockets_log_level", set_int, websockets_log_level, 0, 65535),
    GLOBAL("max_packet_size", set_max_packet_size, max_packet_size, 0, 268435460),
    GLOBAL("max_connect_packet_size", set_max_packet_size, max_connect_packet_size, 0, 268435460),
    GLOBAL("max_connecting_bytes", set_u64, max_connecting_bytes, 0, INT64_MAX),
    GLOBAL("max_topic_levels", set_int, max_topic_levels, 0, 65535),
    GLOBAL("max_retained_feed", set_int, max_retained_feed, 0, INT32_MAX),
    GLOBAL("message_size_limit", set_u32, message_size_limit, 0, 268435455),
    GLOBAL("max_inflight_messages", set_int, max_inflight_messages, 0, 65535),
    GLOBAL("max_inflight_bytes", set_u64, max_inflight_bytes, 0, INT64_MAX),
    GLOBAL("max_queued_messages", set_int, max_queued_messages, 0, INT32_MAX),
    GLOBAL("max_queued_bytes", set_u64, max_queued_bytes, 0, INT64_MAX),
    GLOBAL("memory_limit", set_u64, memory_limit, 0, INT64_MAX),
    GLOBAL("global_max_connections", set_int, global_max_connections, -1, INT32_MAX),
    GLOBAL("max_unsent_bytes", set_u64, max_unsent_bytes, 0, INT64_MAX),
    GLOBAL("queue_qos0_messages", set_bool, queue_qos0_messages, 0, 0),
    GLOBAL("retain_available", set_bool, retain_available, 0, 0),
    GLOBAL("upgrade_outgoing_qos", set_bool, upgrade_outgoing_qos, 0, 0),
    GLOBAL("check_retain_source", set_bool, check_retain_source, 0, 0),
    GLOBAL("persistent_client_expiration", set_expiration, persistent_client_expiration, 0, 0),

    /* Logging. */
    SPECIAL("log_dest", set_log_dest),
    SPECIAL("log_type", set_log_type),
    SPECIAL("log_timestamp", set_log_timestamp),
    GLOBAL("log_timestamp_format", set_string, log_timestamp_format, 0, 0),
    GLOBAL("log_facility", set_int, log_facility, 0, 7),
    GLOBAL("log_format", set_log_format, log_format, 0, 0),
    GLOBAL("connection_messages", set_bool, connection_messages, 0, 0),

    /* Persistence. */
    GLOBAL("persistence", set_bool, persistence, 0, 0),
    GLOBAL("persistence_location", set_string, persistence_location, 0, 0),
    GLOBAL("persistence_file", set_string, persistence_file, 0, 0),
    SPECIAL("persistence_fsync", set_fsync),
    GLOBAL("autosave_interval", set_int, autosave_interval, 0, INT32_MAX),
    GLOBAL("autosave_on_changes", set_bool, autosave_on_changes, 0, 0),

    /* Listeners. */
    SPECIAL("listener", set_listener),
    {"port", set_port, 0, 0, S_GLOBAL, 0, 1, 65535},
    {"bind_address", set_bind_address, 0, 0, S_GLOBAL, F_REST, 0, 0},
    LISTENER("bind_interface", set_string, bind_interface, 0, 0),
    LISTENER("socket_domain", set_socket_domain, socket_domain, 0, 0),
    LISTENER("protocol", set_protocol, protocol, 0, 0),
    LISTENER("http_dir", set_string, http_dir, 0, 0),
    LISTENER("websockets_path", set_string, websockets_path, 0, 0),
    LISTENER("websockets_origin", set_strlist, websockets_origins, 0, 0),
    LISTENER("websockets_trusted_proxy", set_proxy, websockets_trusted_proxies, 0, 0),
    LISTENER("mqttsn_gateway_id", set_int, mqttsn_gateway_id, 0, 255),
    LISTENER("mqttsn_advertise_interval", set_int, mqttsn_advertise_interval, 0, 65535),
    LISTENER("mqttsn_predefined_topics", set_string, mqttsn_predefined_topics, 0, 0),
    LISTENER("mqttsn_allowed_sources", set_cidr, mqttsn_allowed_sources, 0, 0),
    LISTENER("mqttsn_retry_interval", set_seconds_ms, mqttsn_retry_ms, 0, 0),
    LISTENER("mqttsn_retry_count", set_int, mqttsn_retry_count, 0, 100),
    LISTENER("max_connections", set_int, max_connections, -1, INT32_MAX),
    LISTENER("mount_point", set_string, mount_point, 0, 0),
    LISTENER("max_qos", set_int, max_qos, 0, 2),
    LISTENER("max_topic_alias", set_int, max_topic_alias, 0, 65535),
    LISTENER("use_username_as_clientid", set_bool, use_username_as_clientid, 0, 0),

    /* TLS (per listener). */
    LISTENER("cafile", set_string, cafile, 0, 0),
    LISTENER("capath", set_string, capath, 0, 0),
    LISTENER("certfile", set_string, certfile, 0, 0),
    LISTENER("keyfile", set_string, keyfile, 0, 0),
    LISTENER("ciphers", set_string, ciphers, 0, 0),
    LISTENER("ciphers_tls1.3", set_string, ciphers_tls13, 0, 0),
    LISTENER("dhparamfile", set_string, dhparamfile, 0, 0),
    {"tls_version", set_tls_version, L(tls_version), 0, S_LISTENER, F_REST, 0, 0},
    LISTENER("require_certificate", set_bool, require_certificate, 0, 0),
    LISTENER("use_identity_as_username", set_bool, use_identity_as_username, 0, 0),
    LISTENER("use_subject_as_username", set_bool, use_subject_as_username, 0, 0),
    LISTENER("crlfile", set_string, crlfile, 0, 0),
    LISTENER("psk_hint", set_string, psk_hint, 0, 0),
    SECURITY("psk_file", set_string, psk_file, psk_file),
    {"tls_keyform", set_keyform, L(tls_keyform_engine), 0, S_LISTENER, F_REST, 0, 0},
    LISTENER("tls_engine", set_string, tls_engine, 0, 0),
    LISTENER("tls_engine_kpass_sha1", set_string, tls_engine_kpass_sha1, 0, 0),

    /* Mosquitto directives not implemented yet: a clear error, never silently ignored. */
    UNSUPPORTED("auth_plugin"),
    UNSUPPORTED_PREFIX("auth_opt_"),
    UNSUPPORTED("auth_plugin_deny_special_chars"),
    UNSUPPORTED("plugin"),
    UNSUPPORTED_PREFIX("plugin_opt_"),
    UNSUPPORTED("plugin_load"),
    UNSUPPORTED("plugin_use"),
    UNSUPPORTED("global_plugin"),
    UNSUPPORTED("listener_allow_anonymous"),
    UNSUPPORTED("listener_auto_id_prefix"),
    UNSUPPORTED("accept_protocol_versions"),
    UNSUPPORTED("enable_proxy_protocol"),
    /* Bridges (docs/bridges.md). `connection` opens a section; the rest go into it. */
    SPECIAL("connection", set_connection),
    BRIDGE("address", set_addresses, addresses, 0, 0),
    BRIDGE("addresses", set_addresses, addresses, 0, 0),
    BRIDGE("round_robin", set_bool, round_robin, 0, 0),
    BRIDGE("topic", set_topic, topics, 0, 0),
    BRIDGE("bridge_protocol_version", set_bridge_version, protocol_version, 0, 0),
    BRIDGE("cleansession", set_bool, cleansession, 0, 0),
    BRIDGE("local_cleansession", set_tristate, local_cleansession, 0, 0),
    BRIDGE("remote_clientid", set_word, remote_clientid, 0, 0),
    BRIDGE("clientid", set_word, remote_clientid, 0, 0), /* Mosquitto's old name */
    BRIDGE("local_clientid", set_word, local_clientid, 0, 0),
    BRIDGE("remote_username", set_string, remote_username, 0, 0),
    BRIDGE("username", set_string, remote_username, 0, 0), /* old name */
    BRIDGE("remote_password", set_string, remote_password, 0, 0),
    BRIDGE("password", set_string, remote_password, 0, 0), /* old name */
    BRIDGE("local_username", set_string, local_username, 0, 0),
    BRIDGE("local_password", set_string, local_password, 0, 0),
    BRIDGE("try_private", set_bool, try_private, 0, 0),
    BRIDGE("notifications", set_bool, notifications, 0, 0),
    BRIDGE("notifications_local_only", set_bool, notifications_local_only, 0, 0),
    BRIDGE("notification_topic", set_string, notification_topic, 0, 0),
    BRIDGE("keepalive_interval", set_int, keepalive_interval, 5, 65535),
    BRIDGE("restart_timeout", set_restart_timeout, restart_timeout, 1, 86400),
    BRIDGE("start_type", set_start_type, start_type, 0, 0),
    BRIDGE("idle_timeout", set_int, idle_timeout, 1, INT32_MAX),
    BRIDGE("threshold", set_int, threshold, 1, INT32_MAX),
    BRIDGE("bridge_max_packet_size", set_max_packet_size, max_packet_size, 0, 268435460),
    BRIDGE("bridge_outgoing_retain", set_bool, outgoing_retain, 0, 0),
    BRIDGE("bridge_attempt_unsubscribe", set_bool, attempt_unsubscribe, 0, 0),
    BRIDGE("bridge_cafile", set_string, cafile, 0, 0),
    BRIDGE("bridge_capath", set_string, capath, 0, 0),
    BRIDGE("bridge_certfile", set_string, certfile, 0, 0),
    BRIDGE("bridge_keyfile", set_string, keyfile, 0, 0),
    BRIDGE("bridge_insecure", set_bool, insecure, 0, 0),
    BRIDGE("bridge_require_ocsp", set_bool, require_ocsp, 0, 0),
    {"bridge_tls_version", set_bridge_tls_version, B(tls_version), 0, S_BRIDGE, F_REST, 0, 0},
    BRIDGE("bridge_alpn", set_alpn, alpn, 0, 0),
    BRIDGE("bridge_identity", set_string, identity, 0, 0),
    BRIDGE("bridge_psk", set_hex, psk, 0, 0),
    UNSUPPORTED_PREFIX("bridge_"), /* bridge_bind_address, 2.1's bridge_receive_maximum, ... */
    /* Gone from Mosquitto 2.0. */
    OBSOLETE("retry_interval"),
    OBSOLETE("store_clean_interval"),
    OBSOLETE("max_inflight_messages_per_client"),
};

static const struct directive *lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++) {
		const struct directive *d = &directives[i];
		if (d->flags & F_PREFIX ? strncmp(name, d->name, strlen(d->name)) == 0
					: strcmp(name, d->name) == 0)
			return d;
	}
	return NULL;
}

/* Where a directive's value goes, or NULL after an allocation failure. */
static void *field_of(struct parser *p, const struct directive *d)
{
	struct vs_listener_conf *l;
	switch (d->scope) {
	case S_LISTENER:
		l = current_listener(p);
		return l ? (char *)l + d->off : NULL;
	case S_SECURITY:
		p->security_seen = true;
		if (!p->c->per_listener_settings)
			return (char *)p->c + d->off;
		l = current_listener(p);
		return l ? (char *)l + d->loff : NULL;
	case S_BRIDGE:
		return (char *)&p->c->bridges[p->c->n_bridges - 1] + d->off;
	default:
		return (char *)p->c + d->off;
	}
}

/* One line, without its '\n'. */
static int parse_line(struct parser *p, char *line)
{
	size_t len = strlen(line);
	while (len && is_blank(line[len - 1]))
		line[--len] = '\0';
	while (is_blank(*line))
		line++;
	if (!*line || *line == '#')
		return 0;
	char *args = line;
	char *name = vs_conf_next_word(&args);
	while (is_blank(*args))
		args++;
	const struct directive *d = lookup(name);
	if (!d)
		return perr(p,
			    "unknown directive '%s', expected a mosquitto.conf directive "
			    "(see docs/configuration.md)",
			    name);
	if (d->flags & F_UNSUPPORTED)
		return perr(p, "'%s' is not supported yet", name);
	if (d->flags & F_OBSOLETE)
		return perr(p,
			    "'%s' was removed in Mosquitto 2.0 and has no effect, expected the "
			    "line deleted",
			    name);
	if (d->scope == S_BRIDGE && p->c->n_bridges == 0)
		return perr(p,
			    "'%s' outside a bridge section, expected a 'connection NAME' line "
			    "before it",
			    name);
	/* String setters take the rest of the line themselves and never call no_more(). */
	p->comment_ok = !(d->flags & F_REST);
	void *field = field_of(p, d);
	if (!field)
		return -ENOMEM;
	return d->set(p, d, field, args);
}

/* Parses text (modified in place: each '\n' becomes '\0'), len bytes. */
static int parse_text(struct parser *p, char *text, size_t len)
{
	char *end = text + len;
	for (char *line = text; line < end;) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char *stop = nl ? nl : end;
		p->line++;
		if (memchr(line, '\0', (size_t)(stop - line)))
			return perr(p, "NUL byte in line, expected text");
		*stop = '\0';
		int rc = parse_line(p, line);
		if (rc == VS_ECONF && p->report) {
			p->report(p->report_ud, p->err);
			p->n_errors++;
			rc = 0;
		}
		if (rc)
			return rc;
		line = stop + 1;
	}
	return 0;
}

/* Reads a whole file; *len excludes the terminating NUL added after it. */
static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int rc = buf ? 0 : -ENOMEM;
	while (rc == 0) {
		if (cap - n < 2) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			rc = ferror(f) ? -EIO : 1;
	}
	fclose(f);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int parse_file(struct parser *p, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_file(path, &text, &len);
	if (rc)
		return rc;
	const char *saved_file = p->file;
	int saved_line = p->line;
	p->file = path;
	p->line = 0;
	rc = parse_text(p, text, len);
	p->file = saved_file;
	p->line = saved_line;
	free(text);
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_conf_name(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && name[0] != '.' && strcmp(name + n - 5, ".conf") == 0;
}

/* The DIR/ *.conf names, sorted (byte order, as Mosquitto 2.0: "case sensitive alphabetical"). */
static int list_conf_files(const char *dir, char ***out, size_t *count)
{
	DIR *dp = opendir(dir);
	if (!dp)
		return -errno;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(dp)) != NULL) {
		if (!is_conf_name(de->d_name))
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*nn));
		if (!nn || !(nn[n] = strdup(de->d_name))) {
			names = nn ? nn : names;
			rc = -ENOMEM;
			break;
		}
		names = nn;
		n++;
	}
	closedir(dp);
	if (rc == 0)
		qsort(names, n, sizeof(*names), cmp_names);
	*out = names;
	*count = n;
	return rc;
}

static int include_one(struct parser *p, const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *path = malloc(len);
	if (!path)
		return -ENOMEM;
	snprintf(path, len, "%s/%s", dir, name);
	struct stat st;
	int rc = 0;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		goto out_free_path;
	p->depth++;
	rc = parse_file(p, path);
	p->depth--;
	if (rc < 0 && rc != VS_ECONF) {
		rc = perr(p, "cannot read '%s': %s, expected a readable file", path, strerror(-rc));
		if (p->report) {
			p->report(p->report_ud, p->err);
			p->n_errors++;
			rc = 0;
		}
	}
out_free_path:
	free(path);
	return rc;
}

/* `include_dir DIR`: every DIR/ *.conf in sorted order, as if written at this line. */
static int set_include_dir(struct parser *p, const struct directive *d, void *field, char *args)
{
	if (!*args)
		return missing(p, d, "a directory");
	if (p->depth > 0)
		return perr(p, "'include_dir' in an included file, expected it in the main "
			       "configuration file only");
	char *dir = strdup(args);
	if (!dir)
		return -ENOMEM;
	char **names = NULL;
	size_t n = 0;
	int rc = list_conf_files(dir, &names, &n);
	if (rc < 0 && rc != -ENOMEM)
		rc = perr(p, "cannot open include_dir '%s': %s, expected a readable directory", dir,
			  strerror(-rc));
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = include_one(p, dir, names[i]);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(dir);
	return rc;
}

static void parser_init(struct parser *p, struct vs_config *c, const char *name, char *err,
			size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->c = c;
	p->file = name ? name : "<string>";
	p->cur = -1;
	p->err = err;
	p->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
}

int vs_config_parse_string(struct vs_config *c, const char *text, const char *name, char *err,
			   size_t errlen)
{
	struct parser p;
	parser_init(&p, c, name, err, errlen);
	char *copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	int rc = parse_text(&p, copy, strlen(copy));
	free(copy);
	return rc;
}

int vs_config_load(struct vs_config *c, const char *path, char *err, size_t errlen)
{
	struct parser p;
	parser_init(&p, c, path, err, errlen);
	int rc = parse_file(&p, path);
	if (rc < 0 && rc != VS_ECONF && err && errlen)
		snprintf(err, errlen, "%s: cannot read: %s, expected a readable file", path,
			 strerror(-rc));
	return rc;
}

int vs_config_load_all(struct vs_config *c, const char *path, vs_conf_report_fn report, void *ud)
{
	char err[512];
	struct parser p;
	parser_init(&p, c, path, err, sizeof(err));
	p.report = report;
	p.report_ud = ud;
	int rc = parse_file(&p, path);
	if (rc < 0 && rc != VS_ECONF) {
		snprintf(err, sizeof(err), "%s: cannot read: %s, expected a readable file", path,
			 strerror(-rc));
		report(ud, err);
		return rc;
	}
	if (rc == VS_ECONF) { /* an error that stops the parse (out of memory in a setter) */
		report(ud, err);
		p.n_errors++;
	}
	return p.n_errors;
}
