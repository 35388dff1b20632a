/*
 * JSON writer and reader: see json.h. The reader is a recursive descent bounded by
 * VS_JSON_MAX_DEPTH (so its stack is too), over a cursor that never passes the end.
 */
#include "base/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

/* ---- writer ---------------------------------------------------------------------------- */

void vs_json_init(struct vs_json *j, struct vs_bytes *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
}

static void put(struct vs_json *j, const void *p, size_t n)
{
	if (!j->err && vs_bytes_append(j->out, p, n) < 0)
		j->err = -ENOMEM;
}

static void put_c(struct vs_json *j, char c)
{
	put(j, &c, 1);
}

/* Decodes one UTF-8 sequence at s[0..len): its length, or 0 when invalid. */
static size_t utf8_seq(const uint8_t *s, size_t len)
{
	uint8_t c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static void put_string(struct vs_json *j, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s;
	put_c(j, '"');
	size_t run = 0; /* bytes copied as they are, written in one go */
	for (size_t i = 0; i < len;) {
		uint8_t c = p[i];
		size_t n = utf8_seq(p + i, len - i);
		const char *esc = NULL;
		char u[7];
		if (n == 1 && c != '"' && c != '\\' && c >= 0x20 && c != 0x7F) {
			run++, i++;
			continue;
		}
		if (n > 1) {
			run += n, i += n;
			continue;
		}
		put(j, p + i - run, run);
		run = 0;
		if (n == 0)
			esc = "\\ufffd"; /* not UTF-8: replaced */
		else if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else {
			memcpy(u, "\\u00", 4);
			u[4] = hex[c >> 4];
			u[5] = hex[c & 15];
			u[6] = '\0';
			esc = u;
		}
		put(j, esc, strlen(esc));
		i++;
	}
	put(j, p + len - run, run);
	put_c(j, '"');
}

/* The comma and key before a value. */
static void member(struct vs_json *j, const char *key)
{
	if (j->more[j->depth])
		put_c(j, ',');
	j->more[j->depth] = true;
	if (key) {
		put_string(j, key, strlen(key));
		put_c(j, ':');
	}
}

static void open(struct vs_json *j, const char *key, char c)
{
	member(j, key);
	if (j->depth >= VS_JSON_MAX_DEPTH) {
		j->err = j->err ? j->err : VS_ETOOBIG;
		return;
	}
	put_c(j, c);
	j->more[++j->depth] = false;
}

static void close_(struct vs_json *j, char c)
{
	if (j->depth > 0)
		j->depth--;
	put_c(j, c);
}

void vs_json_obj(struct vs_json *j, const char *key)
{
	open(j, key, '{');
}

void vs_json_obj_end(struct vs_json *j)
{
	close_(j, '}');
}

void vs_json_arr(struct vs_json *j, const char *key)
{
	open(j, key, '[');
}

void vs_json_arr_end(struct vs_json *j)
{
	close_(j, ']');
}

void vs_json_str(struct vs_json *j, const char *key, const char *s, size_t len)
{
	member(j, key);
	put_string(j, s, len);
}

void vs_json_cstr(struct vs_json *j, const char *key, const char *s)
{
	if (!s) {
		vs_json_null(j, key);
		return;
	}
	vs_json_str(j, key, s, strlen(s));
}

static void put_fmt(struct vs_json *j, const char *key, const char *buf, int n)
{
	member(j, key);
	if (n > 0)
		put(j, buf, (size_t)n);
}

void vs_json_u64(struct vs_json *j, const char *key, uint64_t v)
{
	char buf[24];
	put_fmt(j, key, buf, snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v));
}

void vs_json_i64(struct vs_json *j, const char *key, int64_t v)
{
	char buf[24];
	put_fmt(j, key, buf, snprintf(buf, sizeof(buf), "%lld", (long long)v));
}

void vs_json_double(struct vs_json *j, const char *key, double v)
{
	char buf[32];
	if (!isfinite(v)) {
		vs_json_null(j, key);
		return;
	}
	put_fmt(j, key, buf, snprintf(buf, sizeof(buf), "%.6g", v));
}

void vs_json_bool(struct vs_json *j, const char *key, bool v)
{
	member(j, key);
	put(j, v ? "true" : "false", v ? 4 : 5);
}

void vs_json_null(struct vs_json *j, const char *key)
{
	member(j, key);
	put(j, "null", 4);
}

/* ---- reader ---------------------------------------------------------------------------- */

struct reader {
	const char *buf;
	size_t len, pos;
	struct vs_json_tok *toks;
	size_t cap, n;
};

static void skip_ws(struct reader *r)
{
	while (r->pos < r->len && (r->buf[r->pos] == ' ' || r->buf[r->pos] == '\t' ||
				   r->buf[r->pos] == '\n' || r->buf[r->pos] == '\r'))
		r->pos++;
}

static int new_tok(struct reader *r, uint8_t type)
{
	if (r->n >= r->cap)
		return VS_ETOOBIG;
	struct vs_json_tok *t = &r->toks[r->n];
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->start = (uint32_t)r->pos;
	return (int)r->n++;
}

static int hex4(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

/*
 * One escape at s[0..len) (s[0] == '\\'): its length in the input, and the code point in *cp
 * (a surrogate pair as one). Returns 0 when malformed.
 */
static size_t escape_at(const char *s, size_t len, uint32_t *cp)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	if (len < 2)
		return 0;
	const char *e = memchr(from, s[1], sizeof(from) - 1);
	if (e && s[1] != '\0') {
		*cp = (uint8_t)to[e - from];
		return 2;
	}
	if (s[1] != 'u' || len < 6 || hex4(s + 2, cp) < 0)
		return 0;
	if (*cp >= 0xDC00 && *cp <= 0xDFFF)
		return 0; /* a low surrogate alone */
	if (*cp < 0xD800 || *cp > 0xDBFF)
		return 6;
	uint32_t lo;
	if (len < 12 || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, &lo) < 0 || lo < 0xDC00 ||
	    lo > 0xDFFF)
		return 0;
	*cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
	return 12;
}

static int parse_string(struct reader *r)
{
	int t = new_tok(r, VS_JSON_STRING);
	if (t < 0)
		return t;
	r->pos++; /* the quote */
	r->toks[t].start = (uint32_t)r->pos;
	while (r->pos < r->len) {
		uint8_t c = (uint8_t)r->buf[r->pos];
		if (c == '"') {
			r->toks[t].end = (uint32_t)r->pos++;
			r->toks[t].next = (uint32_t)r->n;
			return t;
		}
		size_t n;
		uint32_t cp;
		if (c < 0x20)
			return VS_EPROTO;
		if (c == '\\')
			n = escape_at(r->buf + r->pos, r->len - r->pos, &cp);
		else
			n = utf8_seq((const uint8_t *)r->buf + r->pos, r->len - r->pos);
		if (!n)
			return VS_EPROTO;
		r->pos += n;
	}
	return VS_EPROTO;
}

static bool digit(const struct reader *r)
{
	return r->pos < r->len && r->buf[r->pos] >= '0' && r->buf[r->pos] <= '9';
}

static int digits(struct reader *r)
{
	if (!digit(r))
		return VS_EPROTO;
	while (digit(r))
		r->pos++;
	return 0;
}

static int parse_number(struct reader *r)
{
	int t = new_tok(r, VS_JSON_NUMBER);
	if (t < 0)
		return t;
	if (r->buf[r->pos] == '-')
		r->pos++;
	if (r->pos < r->len && r->buf[r->pos] == '0')
		r->pos++;
	else if (digits(r) < 0)
		return VS_EPROTO;
	if (r->pos < r->len && r->buf[r->pos] == '.') {
		r->pos++;
		if (digits(r) < 0)
			return VS_EPROTO;
	}
	if (r->pos < r->len && (r->buf[r->pos] == 'e' || r->buf[r->pos] == 'E')) {
		r->pos++;
		if (r->pos < r->len && (r->buf[r->pos] == '+' || r->buf[r->pos] == '-'))
			r->pos++;
		if (digits(r) < 0)
			return VS_EPROTO;
	}
	r->toks[t].end = (uint32_t)r->pos;
	r->toks[t].next = (uint32_t)r->n;
	return t;
}

static int parse_word(struct reader *r, const char *w, uint8_t type)
{
	size_t n = strlen(w);
	if (r->len - r->pos < n || memcmp(r->buf + r->pos, w, n) != 0)
		return VS_EPROTO;
	int t = new_tok(r, type);
	if (t < 0)
		return t;
	r->pos += n;
	r->toks[t].end = (uint32_t)r->pos;
	r->toks[t].next = (uint32_t)r->n;
	return t;
}

static int parse_value(struct reader *r, int depth);

/* An array or object at r->pos (its opening bracket). */
static int parse_container(struct reader *r, int depth, bool obj)
{
	if (depth >= VS_JSON_MAX_DEPTH)
		return VS_EPROTO;
	int t = new_tok(r, obj ? VS_JSON_OBJECT : VS_JSON_ARRAY);
	if (t < 0)
		return t;
	char close = obj ? '}' : ']';
	r->pos++;
	skip_ws(r);
	if (r->pos < r->len && r->buf[r->pos] == close)
		goto done;
	for (;;) {
		skip_ws(r);
		if (obj) {
			if (r->pos >= r->len || r->buf[r->pos] != '"')
				return VS_EPROTO;
			int k = parse_string(r);
			if (k < 0)
				return k;
			skip_ws(r);
			if (r->pos >= r->len || r->buf[r->pos] != ':')
				return VS_EPROTO;
			r->pos++;
		}
		int v = parse_value(r, depth + 1);
		if (v < 0)
			return v;
		r->toks[t].size++;
		skip_ws(r);
		if (r->pos < r->len && r->buf[r->pos] == ',') {
			r->pos++;
			continue;
		}
		if (r->pos < r->len && r->buf[r->pos] == close)
			break;
		return VS_EPROTO;
	}
done:
	r->pos++;
	r->toks[t].end = (uint32_t)r->pos;
	r->toks[t].next = (uint32_t)r->n;
	return t;
}

static int parse_value(struct reader *r, int depth)
{
	skip_ws(r);
	if (r->pos >= r->len)
		return VS_EPROTO;
	char c = r->buf[r->pos];
	switch (c) {
	case '{':
		return parse_container(r, depth, true);
	case '[':
		return parse_container(r, depth, false);
	case '"':
		return parse_string(r);
	case 't':
		return parse_word(r, "true", VS_JSON_TRUE);
	case 'f':
		return parse_word(r, "false", VS_JSON_FALSE);
	case 'n':
		return parse_word(r, "null", VS_JSON_NULL);
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return parse_number(r);
		return VS_EPROTO;
	}
}

int vs_json_parse(const char *buf, size_t len, struct vs_json_tok *toks, size_t cap)
{
	if (len >= UINT32_MAX)
		return VS_ETOOBIG;
	struct reader r = {.buf = buf, .len = len, .toks = toks, .cap = cap};
	int rc = parse_value(&r, 0);
	if (rc < 0)
		return rc;
	skip_ws(&r);
	if (r.pos != len)
		return VS_EPROTO;
	return (int)r.n;
}

ssize_t vs_json_unescape(const char *buf, const struct vs_json_tok *t, char *out, size_t cap)
{
	if (t->type != VS_JSON_STRING)
		return VS_EPROTO;
	size_t o = 0;
	for (size_t i = t->start; i < t->end;) {
		uint32_t cp = (uint8_t)buf[i];
		size_t n = 1;
		if (buf[i] == '\\') {
			n = escape_at(buf + i, t->end - i, &cp);
			if (!n)
				return VS_EPROTO;
		} else {
			if (o + 1 >= cap)
				return VS_ETOOBIG;
			out[o++] = buf[i++];
			continue;
		}
		i += n;
		/* The code point as UTF-8. */
		uint8_t u[4];
		size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (k == 1)
			u[0] = (uint8_t)cp;
		else {
			for (size_t m = k - 1; m > 0; m--, cp >>= 6)
				u[m] = (uint8_t)(0x80 | (cp & 0x3F));
			u[0] = (uint8_t)((k == 2 ? 0xC0 : k == 3 ? 0xE0 : 0xF0) | cp);
		}
		if (o + k >= cap)
			return VS_ETOOBIG;
		memcpy(out + o, u, k);
		o += k;
	}
	if (cap == 0)
		return VS_ETOOBIG;
	out[o] = '\0';
	return (ssize_t)o;
}

int vs_json_get(const char *buf, const struct vs_json_tok *toks, int obj, const char *key)
{
	if (obj < 0 || toks[obj].type != VS_JSON_OBJECT)
		return -1;
	size_t klen = strlen(key);
	uint32_t i = (uint32_t)obj + 1;
	for (uint32_t m = 0; m < toks[obj].size; m++) {
		const struct vs_json_tok *k = &toks[i];
		char tmp[128];
		ssize_t n = k->end - k->start <= sizeof(tmp) - 1
				? vs_json_unescape(buf, k, tmp, sizeof(tmp))
				: VS_ETOOBIG;
		if (n == (ssize_t)klen && memcmp(tmp, key, klen) == 0)
			return (int)i + 1;
		i = toks[i + 1].next; /* past the value's subtree */
	}
	return -1;
}

int vs_json_uint(const char *buf, const struct vs_json_tok *t, uint64_t max, uint64_t *out)
{
	if (t->type != VS_JSON_NUMBER)
		return VS_EPROTO;
	uint64_t v = 0;
	for (uint32_t i = t->start; i < t->end; i++) {
		char c = buf[i];
		if (c < '0' || c > '9')
			return VS_EPROTO;
		if (v > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
			return VS_EPROTO;
		v = v * 10 + (uint64_t)(c - '0');
		if (v > max)
			return VS_EPROTO;
	}
	*out = v;
	return 0;
}
