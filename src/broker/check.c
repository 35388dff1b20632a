/*
 * --test-config's checks (see check.h). Each one uses the code the start-up uses where that code
 * has no side effect (the password and ACL parsers, vs_tls_server_ctx(), the MQTT-SN topic
 * loader), and repeats the start-up's test where it would bind or create something (unix socket
 * paths, persistence and log directories). Nothing here keeps state between calls.
 */
#include "broker/check.h"

#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "auth/text.h"
#include "base/error.h"
#include "broker/tls.h"
#include "sn/sn.h"

/* Errors reported for one file at most: past that, the file is not what it should be. */
#define MAX_FILE_ERRORS 50

struct checker {
	vs_conf_report_fn report;
	void *ud;
	int n;
};

static void problem(struct checker *k, const struct vs_listener_conf *l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports "listener PORT[ ADDRESS]: <message>" (or just the message without l). */
static void problem(struct checker *k, const struct vs_listener_conf *l, const char *fmt, ...)
{
	char msg[768];
	int n = 0;
	if (l)
		n = snprintf(msg, sizeof(msg), "listener %d%s%s: ", l->port,
			     l->bind_address ? " " : "", l->bind_address ? l->bind_address : "");
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	k->report(k->ud, msg);
	k->n++;
}

/* The line number in "PATH:LINE: ...", or 0 when the message names no line. */
static unsigned error_line(const char *err, const char *path)
{
	size_t pl = strlen(path);
	if (strncmp(err, path, pl) != 0 || err[pl] != ':')
		return 0;
	char *end;
	unsigned long line = strtoul(err + pl + 1, &end, 10);
	return end != err + pl + 1 && *end == ':' && line <= UINT_MAX ? (unsigned)line : 0;
}

/* Blanks line `line` (1-based) of text, keeping the line count: the parser skips it next time. */
static void blank_line(char *text, size_t len, unsigned line)
{
	size_t i = 0;
	for (unsigned at = 1; at < line && i < len; i++)
		if (text[i] == '\n')
			at++;
	for (; i < len && text[i] != '\n'; i++)
		text[i] = ' ';
}

static bool is_dir(const char *path, const char **why);

enum auth_kind { AUTH_PASSWD, AUTH_ACL };

/* Parses text as the start-up does; returns 0 or VS_ECONF with the message in err. */
static int parse_auth(enum auth_kind kind, const char *text, size_t len, const char *path,
		      char *err, size_t errlen)
{
	if (kind == AUTH_PASSWD) {
		struct vs_passwd *pf = vs_passwd_parse(text, len, path, err, errlen);
		vs_passwd_free(pf);
		return pf ? 0 : VS_ECONF;
	}
	struct vs_acl *acl = vs_acl_parse(text, len, path, err, errlen);
	vs_acl_free(acl);
	return acl ? 0 : VS_ECONF;
}

/*
 * Every bad line of a password or ACL file: the start-up's parser stops at the first, so each
 * reported line is blanked and the file parsed again (the line numbers stay right).
 */
static void check_auth_file(struct checker *k, enum auth_kind kind, const char *path,
			    const char *directive)
{
	char *text;
	size_t len;
	int rc = vs_auth_read_file(path, &text, &len);
	if (rc) {
		problem(k, NULL, "%s %s: %s, expected a readable file", directive, path,
			rc == -EFBIG ? "file too large" : strerror(-rc));
		return;
	}
	char err[512];
	for (int i = 0; i < MAX_FILE_ERRORS; i++) {
		if (parse_auth(kind, text, len, path, err, sizeof(err)) == 0)
			break;
		problem(k, NULL, "%s", err);
		unsigned line = error_line(err, path);
		if (!line)
			break;
		blank_line(text, len, line);
	}
	OPENSSL_cleanse(text, len);
	free(text);
}

static void check_auth(struct checker *k, const struct vs_config *c)
{
	const char *seen_pw = NULL, *seen_acl = NULL; /* one report per file, however shared */
	for (size_t i = 0; i <= c->n_listeners; i++) {
		const char *pw, *acl;
		if (!c->per_listener_settings) {
			if (i > 0)
				break;
			pw = c->password_file;
			acl = c->acl_file;
		} else {
			if (i == c->n_listeners)
				break;
			pw = c->listeners[i].password_file;
			acl = c->listeners[i].acl_file;
		}
		if (pw && !(seen_pw && strcmp(seen_pw, pw) == 0))
			check_auth_file(k, AUTH_PASSWD, pw, "password_file");
		if (acl && !(seen_acl && strcmp(seen_acl, acl) == 0))
			check_auth_file(k, AUTH_ACL, acl, "acl_file");
		seen_pw = pw ? pw : seen_pw;
		seen_acl = acl ? acl : seen_acl;
	}
}

/* vs_listen_unix()'s conditions, without creating the socket. */
static void check_unix(struct checker *k, const struct vs_listener_conf *l)
{
	const char *path = l->bind_address;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		problem(k, l, "unix socket path '%s' is longer than %zu bytes", path,
			sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return;
	}
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		problem(k, l,
			"'%s' exists and is not a socket, expected a free path or a socket "
			"left by an earlier run",
			path);
		return;
	}
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	const char *why;
	if (!is_dir(dir, &why))
		problem(k, l, "unix socket directory '%s': %s, expected an existing directory", dir,
			why);
	else if (access(dir, W_OK | X_OK) < 0)
		problem(k, l, "cannot create the unix socket in '%s': %s", dir, strerror(errno));
}

/* The address resolves, and the interface exists (what the bind would fail on first). */
static void check_address(struct checker *k, const struct vs_listener_conf *l)
{
	if (l->bind_interface && if_nametoindex(l->bind_interface) == 0)
		problem(k, l, "bind_interface '%s': %s, expected a network interface",
			l->bind_interface, strerror(errno));
	if (!l->bind_address)
		return;
	struct addrinfo hints = {
	    .ai_flags = AI_PASSIVE, .ai_family = l->socket_domain, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(l->bind_address, NULL, &hints, &res);
	if (rc != 0)
		problem(k, l, "cannot resolve '%s': %s, expected a host name or address",
			l->bind_address, gai_strerror(rc));
	if (res)
		freeaddrinfo(res);
}

/* Each TLS file is readable (the OpenSSL context reports only the first that is not). */
static int check_tls_files(struct checker *k, const struct vs_config *c,
			   const struct vs_listener_conf *l)
{
	const struct {
		const char *name, *path;
	} files[] = {{"certfile", l->certfile},
		     {"keyfile", l->tls_keyform_engine ? NULL : l->keyfile},
		     {"cafile", l->cafile},
		     {"capath", l->capath},
		     {"dhparamfile", l->dhparamfile},
		     {"crlfile", l->crlfile},
		     {"psk_file", c->per_listener_settings ? l->psk_file : c->psk_file}};
	int bad = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].path && access(files[i].path, R_OK) < 0) {
			problem(k, l, "cannot read %s '%s': %s", files[i].name, files[i].path,
				strerror(errno));
			bad++;
		}
	}
	return bad;
}

static void check_listener(struct checker *k, const struct vs_config *c,
			   const struct vs_listener_conf *l)
{
	char err[768];
	if (l->socket_domain == AF_UNIX)
		check_unix(k, l);
	else
		check_address(k, l);
	if ((l->certfile || l->psk_hint) && check_tls_files(k, c, l) == 0) {
		SSL_CTX *ctx = NULL;
		const char *psk = c->per_listener_settings ? l->psk_file : c->psk_file;
		if (vs_tls_server_ctx(l, psk, &ctx, err, sizeof(err)) < 0)
			problem(k, NULL, "%s", err); /* already "listener PORT: ..." */
		SSL_CTX_free(ctx);
	}
	const char *why;
	if (l->protocol == VS_LPROTO_WEBSOCKETS && l->http_dir && !is_dir(l->http_dir, &why))
		problem(k, l, "http_dir '%s': %s, expected a directory", l->http_dir, why);
	if (l->protocol == VS_LPROTO_MQTTSN && l->mqttsn_predefined_topics) {
		struct vs_sn_topics t = {0};
		if (vs_sn_topics_load(&t, l->mqttsn_predefined_topics, err, sizeof(err)) < 0)
			problem(k, l, "mqttsn_predefined_topics: %s", err);
		vs_sn_topics_fini(&t);
	}
}

/* Whether path is a directory; *why says what it is instead. */
static bool is_dir(const char *path, const char **why)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		*why = strerror(errno);
		return false;
	}
	*why = "not a directory";
	return S_ISDIR(st.st_mode);
}

/* A file the broker will append to or create: it is writable, or its directory is. */
static void check_writable(struct checker *k, const char *directive, const char *path)
{
	if (access(path, W_OK) == 0)
		return;
	if (errno != ENOENT) {
		problem(k, NULL, "%s %s: %s, expected a writable file", directive, path,
			strerror(errno));
		return;
	}
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s",
		 !slash		 ? 1
		 : slash == path ? 1
				 : (int)(slash - path),
		 !slash ? "." : path);
	if (access(dir, W_OK | X_OK) < 0)
		problem(k, NULL, "%s %s: cannot create it in '%s': %s", directive, path, dir,
			strerror(errno));
}

static void check_process(struct checker *k, const struct vs_config *c)
{
	if (c->persistence) {
		const char *dir = c->persistence_location ? c->persistence_location : ".";
		const char *why;
		if (!is_dir(dir, &why))
			problem(k, NULL, "persistence_location %s: %s, expected a directory", dir,
				why);
		else if (access(dir, R_OK | W_OK | X_OK) < 0)
			problem(k, NULL,
				"persistence_location %s: %s, expected a writable directory", dir,
				strerror(errno));
	}
	if (c->log.file_path && (c->log.dests & VS_LOGD_FILE))
		check_writable(k, "log_dest file", c->log.file_path);
	if (c->user && geteuid() == 0 && strcmp(c->user, "root") != 0 && !getpwnam(c->user))
		problem(k, NULL, "user '%s': no such user, expected an existing user to run as",
			c->user);
}

/* A bridge's TLS files are readable (its address is resolved when it connects: a remote that
 * is away at start-up is normal for a bridge). */
static void check_bridge(struct checker *k, const struct vs_config *c,
			 const struct vs_bridge_conf *b)
{
	/* local_username / local_password: as bridge.c checks them at start-up. */
	if (!c->per_listener_settings && c->password_file && b->local_username) {
		char err[256];
		struct vs_passwd *pf = vs_passwd_load(c->password_file, err, sizeof(err));
		const char *pw = b->local_password;
		if (pf && vs_passwd_check(pf, b->local_username, (const uint8_t *)pw,
					  pw ? strlen(pw) : 0) != 1)
			problem(k, NULL,
				"bridge %s: password_file refuses local_username '%s' with its "
				"local_password",
				b->name, b->local_username);
		vs_passwd_free(pf);
	}
	const struct {
		const char *name, *path;
	} files[] = {{"bridge_cafile", b->cafile},
		     {"bridge_capath", b->capath},
		     {"bridge_certfile", b->certfile},
		     {"bridge_keyfile", b->keyfile}};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i].path && access(files[i].path, R_OK) < 0)
			problem(k, NULL, "bridge %s: cannot read %s '%s': %s", b->name,
				files[i].name, files[i].path, strerror(errno));
}

int vs_broker_check(const struct vs_config *c, vs_conf_report_fn report, void *ud)
{
	struct checker k = {.report = report, .ud = ud};
	for (size_t i = 0; i < c->n_bridges; i++)
		check_bridge(&k, c, &c->bridges[i]);
	for (size_t i = 0; i < c->n_listeners; i++)
		check_listener(&k, c, &c->listeners[i]);
	check_auth(&k, c);
	check_process(&k, c);
	return k.n;
}
