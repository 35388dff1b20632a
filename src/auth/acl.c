/*
 * Mosquitto-compatible ACL files (see acl.h for the format and the decision order).
 *
 * Layout: one rule list for anonymous clients, a vs_map from username to that user's list, and
 * one list of patterns. Within each list the `deny` rules come first (a deny is inserted at the
 * front, a grant appended), so "a matching deny refuses" is just "first match decides".
 *
 * Patterns are matched without building the substituted filter: a cursor walks the pattern text
 * and splices the client id or username in when it meets %c or %u, so a check on the delivery
 * path allocates nothing. Substituted text is always literal: a client whose id or username holds
 * '+' or '#' never reaches the patterns. It may hold '/', and then spans levels, as in Mosquitto.
 *
 * The matcher is our own, small and separate from src/topic on purpose: the ACL must not change
 * meaning when the subscription trie is optimised.
 */
#include "base/vec.h"
#include "auth/acl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auth/text.h"
#include "base/error.h"
#include "base/map.h"

#define FILTER_MAX 65535 /* an MQTT UTF-8 string */

struct rule {
	char *filter; /* NUL-terminated copy, valid topic filter (before substitution) */
	size_t len;
	int access;  /* VS_ACL_READ | VS_ACL_WRITE mask; 0 = deny */
	bool uses_u; /* pattern containing %u: never applies to anonymous clients */
};

struct rule_list {
	struct rule *v;
	size_t n, cap;
};

struct vs_acl {
	struct rule_list anon;	   /* `topic` rules before the first `user` line */
	struct vs_map users;	   /* username -> struct rule_list * (owned) */
	struct rule_list patterns; /* every `pattern` rule */
	size_t count;		   /* rules in all lists */
};

/* ---- matching ---- */

/* A filter being read character by character, with %c / %u expanded on the fly. */
struct fcur {
	const char *p, *end; /* pattern text not yet read */
	const char *sub;     /* rest of the substitution being emitted */
	size_t subn;
	const char *cid, *user; /* NULL: not substituted (user NULL also disables %u) */
	size_t cidn, usern;
};

static void cur_init(struct fcur *c, const char *f, size_t n, const char *cid, const char *user)
{
	c->p = f;
	c->end = f + n;
	c->sub = NULL;
	c->subn = 0;
	c->cid = cid;
	c->user = user;
	c->cidn = cid ? strlen(cid) : 0;
	c->usern = user ? strlen(user) : 0;
}

/* Returns the next filter character (0..255) without consuming it, or -1 at the end. *text is
 * true when it comes from the pattern text itself, the only place a wildcard can be. */
static int cur_peek(struct fcur *c, bool *text)
{
	while (c->subn == 0 && c->end - c->p >= 2 && c->p[0] == '%') {
		if (c->p[1] == 'c' && c->cid) {
			c->sub = c->cid;
			c->subn = c->cidn;
		} else if (c->p[1] == 'u' && c->user) {
			c->sub = c->user;
			c->subn = c->usern;
		} else {
			break;
		}
		c->p += 2; /* an empty substitution simply vanishes: loop for the next one */
	}
	if (c->subn) {
		*text = false;
		return (unsigned char)*c->sub;
	}
	*text = true;
	return c->p < c->end ? (unsigned char)*c->p : -1;
}

static void cur_next(struct fcur *c)
{
	if (c->subn) {
		c->sub++;
		c->subn--;
	} else {
		c->p++;
	}
}

static int match_cur(struct fcur *f, const char *t, size_t tlen)
{
	bool text;
	int c = cur_peek(f, &text);
	if (c < 0 || tlen == 0)
		return 0;
	/* [MQTT-4.7.2-1] wildcards at the start never match '$' topics; like Mosquitto, a
	 * '$' topic needs a filter that starts with '$' too. */
	if ((t[0] == '$') != (c == '$'))
		return 0;
	size_t ti = 0;
	for (;;) {
		c = cur_peek(f, &text);
		if (c < 0)
			return ti == tlen;
		if (text && c == '#')
			return 1; /* [MQTT-4.7.1-2] the rest, whatever it is */
		if (text && c == '+') {
			while (ti < tlen && t[ti] != '/')
				ti++;
			cur_next(f);
			continue;
		}
		if (ti == tlen) {
			/* "sport/#" also matches "sport": only "/#" may be left over. */
			return text && c == '/' && f->end - f->p == 2 && f->p[1] == '#';
		}
		if ((unsigned char)t[ti] != c)
			return 0;
		ti++;
		cur_next(f);
	}
}

int vs_acl_match(const char *filter, size_t flen, const char *topic, size_t tlen)
{
	struct fcur c;
	cur_init(&c, filter, flen, NULL, NULL);
	return match_cur(&c, topic, tlen);
}

int vs_acl_filter_valid(const char *f, size_t n)
{
	if (n == 0 || n > FILTER_MAX || memchr(f, '\0', n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (f[i] != '+' && f[i] != '#')
			continue;
		/* [MQTT-4.7.1-2] [MQTT-4.7.1-3] alone in their level, '#' last */
		if ((i > 0 && f[i - 1] != '/') || (i + 1 < n && f[i + 1] != '/'))
			return 0;
		if (f[i] == '#' && i + 1 != n)
			return 0;
	}
	return 1;
}

/* 1 allow, 0 deny, -1 no rule matched. */
static int check_list(const struct rule_list *l, const char *cid, const char *user,
		      const char *topic, size_t tlen, int access)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct rule *r = &l->v[i];
		struct fcur c;
		if (r->uses_u && !user)
			continue;
		cur_init(&c, r->filter, r->len, cid, user);
		if (!match_cur(&c, topic, tlen))
			continue;
		if (r->access == 0)
			return 0;
		if (r->access & access)
			return 1;
	}
	return -1;
}

int vs_acl_check(const struct vs_acl *acl, const char *client_id, const char *username,
		 const char *topic, size_t topiclen, int access)
{
	if (access & VS_ACL_SUBSCRIBE)
		return 1; /* Mosquitto 2.0: the acl_file does not restrict subscriptions */
	if (!acl || !topic || topiclen == 0)
		return 0;
	const struct rule_list *own =
	    username ? vs_map_get(&acl->users, username, strlen(username)) : &acl->anon;
	if (own) {
		int r = check_list(own, NULL, NULL, topic, topiclen, access);
		if (r >= 0)
			return r;
	}
	if (acl->patterns.n == 0 || !client_id)
		return 0;
	/* A '+' or '#' spliced into a pattern would widen it: such clients get no pattern. */
	if (strpbrk(client_id, "+#") || (username && strpbrk(username, "+#")))
		return 0;
	return check_list(&acl->patterns, client_id, username, topic, topiclen, access) == 1;
}

size_t vs_acl_count(const struct vs_acl *acl)
{
	return acl ? acl->count : 0;
}

/* ---- loading ---- */

static void list_fini(struct rule_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].filter);
	free(l->v);
}

static void free_list(void *l)
{
	list_fini(l);
	free(l);
}

void vs_acl_free(struct vs_acl *acl)
{
	if (!acl)
		return;
	vs_map_fini_with(&acl->users, free_list);
	list_fini(&acl->anon);
	list_fini(&acl->patterns);
	free(acl);
}

/* Adds a rule: denies at the front, grants at the back. Returns 0 or -ENOMEM. */
static int list_add(struct rule_list *l, const char *f, size_t n, int access, bool pattern)
{
	if (VS_VEC_GROW(l->v, l->cap, l->n + 1, 8) < 0)
		return -ENOMEM;
	char *copy = malloc(n + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, f, n);
	copy[n] = '\0';
	struct rule r = {copy, n, access, false};
	if (pattern)
		for (size_t i = 0; i + 1 < n; i++)
			if (f[i] == '%' && f[i + 1] == 'u')
				r.uses_u = true;
	if (access == 0) {
		memmove(l->v + 1, l->v, l->n * sizeof(*l->v));
		l->v[0] = r;
	} else {
		l->v[l->n] = r;
	}
	l->n++;
	return 0;
}

/* Splits the first blank-separated word off [*s, *s + *n); the rest is trimmed. */
static void split_word(const char **s, size_t *n, const char **w, size_t *wn)
{
	size_t i = 0;
	while (i < *n && (*s)[i] != ' ' && (*s)[i] != '\t')
		i++;
	*w = *s;
	*wn = i;
	*s += i;
	*n -= i;
	vs_auth_trim(s, n);
}

static bool word_is(const char *w, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(w, lit, n) == 0;
}

struct parser {
	struct vs_acl *acl;
	struct rule_list *cur; /* where `topic` rules go: the anonymous list or a user's */
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
};

static int parse_access(struct parser *ps, const char *w, size_t n, int *access)
{
	if (word_is(w, n, "read"))
		*access = VS_ACL_READ;
	else if (word_is(w, n, "write"))
		*access = VS_ACL_WRITE;
	else if (word_is(w, n, "readwrite"))
		*access = VS_ACL_READ | VS_ACL_WRITE;
	else if (word_is(w, n, "deny"))
		*access = 0;
	else
		return vs_auth_err(ps->err, ps->errlen, ps->name, ps->line,
				   "unknown access '%.*s' (read, write, readwrite or deny)", (int)n,
				   w);
	return 0;
}

static int parse_rule(struct parser *ps, const char *rest, size_t n, bool pattern)
{
	const char *kw = pattern ? "pattern" : "topic";
	if (n == 0)
		return vs_auth_err(ps->err, ps->errlen, ps->name, ps->line, "'%s' needs a topic",
				   kw);
	const char *w;
	size_t wn;
	int access = VS_ACL_READ | VS_ACL_WRITE;
	split_word(&rest, &n, &w, &wn);
	if (n == 0) {
		rest = w; /* Mosquitto: a single word is the topic, with readwrite access */
		n = wn;
	} else if (parse_access(ps, w, wn, &access)) {
		return VS_ECONF;
	}
	if (!vs_acl_filter_valid(rest, n))
		return vs_auth_err(ps->err, ps->errlen, ps->name, ps->line,
				   "invalid topic filter '%.*s'", (int)(n > 200 ? 200 : n), rest);
	struct rule_list *l = pattern ? &ps->acl->patterns : ps->cur;
	if (list_add(l, rest, n, access, pattern))
		return -ENOMEM;
	ps->acl->count++;
	return 0;
}

static int parse_user(struct parser *ps, const char *name, size_t n)
{
	if (n == 0)
		return vs_auth_err(ps->err, ps->errlen, ps->name, ps->line, "'user' needs a name");
	struct rule_list *l = vs_map_get(&ps->acl->users, name, n);
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		if (vs_map_put(&ps->acl->users, name, n, l, NULL)) {
			free(l);
			return -ENOMEM;
		}
	}
	ps->cur = l;
	return 0;
}

static int parse_line(struct parser *ps, const char *s, size_t n)
{
	vs_auth_trim(&s, &n);
	if (n == 0 || s[0] == '#')
		return 0;
	if (memchr(s, '\0', n))
		return vs_auth_err(ps->err, ps->errlen, ps->name, ps->line, "NUL byte in line");
	const char *w;
	size_t wn;
	split_word(&s, &n, &w, &wn);
	if (word_is(w, wn, "topic"))
		return parse_rule(ps, s, n, false);
	if (word_is(w, wn, "pattern"))
		return parse_rule(ps, s, n, true);
	if (word_is(w, wn, "user"))
		return parse_user(ps, s, n);
	return vs_auth_err(ps->err, ps->errlen, ps->name, ps->line,
			   "unknown keyword '%.*s' (expected topic, pattern or user)",
			   (int)(wn > 64 ? 64 : wn), w);
}

struct vs_acl *vs_acl_parse(const char *text, size_t len, const char *name, char *err,
			    size_t errlen)
{
	struct parser ps = {.name = name, .err = err, .errlen = errlen};
	ps.acl = calloc(1, sizeof(*ps.acl));
	if (!ps.acl) {
		vs_auth_err(err, errlen, name, 0, "out of memory");
		return NULL;
	}
	ps.cur = &ps.acl->anon;
	struct vs_auth_lines it;
	const char *s;
	size_t n;
	vs_auth_lines_init(&it, text, len);
	while (vs_auth_lines_next(&it, &s, &n)) {
		ps.line = it.lineno;
		int rc = parse_line(&ps, s, n);
		if (rc) {
			if (rc == -ENOMEM)
				vs_auth_err(err, errlen, name, ps.line, "out of memory");
			vs_acl_free(ps.acl);
			return NULL;
		}
	}
	return ps.acl;
}

struct vs_acl *vs_acl_load(const char *path, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc = vs_auth_read_file(path, &text, &len);
	if (rc) {
		vs_auth_err(err, errlen, path, 0, "%s",
			    rc == -EFBIG ? "file too large" : strerror(-rc));
		return NULL;
	}
	struct vs_acl *acl = vs_acl_parse(text, len, path, err, errlen);
	free(text);
	return acl;
}
