/*
 * mosquitto_sub's output formats, reimplemented from its manual and checked against its output
 * (tests/integration/test_cli_parity.py runs both against the same broker). The details that
 * matter for byte-for-byte parity:
 *   - payload-only and -v skip or mark empty payloads: nothing for payload-only, "topic (null)"
 *     for -v (nothing at all with -N);
 *   - -F output always ends with the end-of-line unless -N;
 *   - a width applies to %A %C %E %F %I %l %m %p %R %S %t %x %X; a max width to %C %I %R %t; the
 *     0 flag to %A %E %F %l %m %p %S %x %X; an absent property prints as an empty (padded) field;
 *   - %j/%J print tst (local time with microseconds, then "Z" and the UTC offset), topic, qos,
 *     retain, payloadlen, mid (QoS > 0), properties (in packet order, user properties gathered
 *     at the first one), then the payload; %J re-serialises the payload JSON minified.
 */
#include "cmd/cli_format.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct spec {
	bool left;
	bool zero;
	int width;
	int prec; /* -1: none */
	char conv;
};

static const char *const CONVS = "%ACDEFIjJlmPpqRrStUxX";

/* Parses "%[-0]*[width][.prec]conv" at s (after the '%'); returns the bytes used, 0 if the
 * string ends first, -1 for an unknown conversion (sp->conv holds it). */
static int parse_spec(const char *s, struct spec *sp)
{
	const char *p = s;
	memset(sp, 0, sizeof(*sp));
	sp->prec = -1;
	for (; *p == '-' || *p == '0'; p++) {
		if (*p == '-')
			sp->left = true;
		else
			sp->zero = true;
	}
	while (isdigit((unsigned char)*p))
		sp->width = sp->width * 10 + (*p++ - '0');
	if (*p == '.') {
		p++;
		sp->prec = 0;
		while (isdigit((unsigned char)*p))
			sp->prec = sp->prec * 10 + (*p++ - '0');
	}
	if (!*p)
		return 0;
	sp->conv = *p++;
	if (!strchr(CONVS, sp->conv))
		return -1;
	return (int)(p - s);
}

int vs_fmt_check(const char *f)
{
	for (const char *p = f; *p; p++) {
		if (*p == '%') {
			struct spec sp;
			int n = parse_spec(p + 1, &sp);
			if (n == 0) {
				fprintf(stderr, "Error: Incomplete format specifier.\n");
				return -1;
			}
			if (n < 0) {
				fprintf(stderr, "Error: Invalid format specifier '%c'.\n", sp.conv);
				return -1;
			}
			p += n;
		} else if (*p == '@') {
			if (!p[1]) {
				fprintf(stderr, "Error: Incomplete format specifier.\n");
				return -1;
			}
			p++;
		} else if (*p == '\\') {
			if (!p[1]) {
				fprintf(stderr, "Error: Incomplete escape specifier.\n");
				return -1;
			}
			if (!strchr("\\0aenrtv", p[1])) {
				fprintf(stderr, "Error: Invalid escape specifier '%c'.\n", p[1]);
				return -1;
			}
			p++;
		}
	}
	return 0;
}

/* ---- fields ---------------------------------------------------------------------------------- */

static void pad(FILE *o, char c, int n)
{
	while (n-- > 0)
		fputc(c, o);
}

/* Writes s with the spec's width (if width_ok), max width (if prec_ok) and 0 flag (if zero_ok). */
static void field(FILE *o, const struct spec *sp, const void *s, size_t len, bool width_ok,
		  bool prec_ok, bool zero_ok)
{
	if (prec_ok && sp->prec >= 0 && len > (size_t)sp->prec)
		len = (size_t)sp->prec;
	int w = width_ok ? sp->width : 0;
	int fill = w > (int)len ? w - (int)len : 0;
	if (!sp->left)
		pad(o, zero_ok && sp->zero ? '0' : ' ', fill);
	fwrite(s, 1, len, o);
	if (sp->left)
		pad(o, ' ', fill);
}

static void num_field(FILE *o, const struct spec *sp, const struct viesti_props *pr, int id)
{
	uint32_t v;
	char b[16];
	int n = 0;
	if (viesti_props_get_int(pr, id, &v) == 0)
		n = snprintf(b, sizeof(b), "%u", v);
	field(o, sp, b, (size_t)n, true, false, true);
}

static void bin_field(FILE *o, const struct spec *sp, const struct viesti_props *pr, int id,
		      bool width_ok)
{
	const void *d = "";
	size_t len = 0;
	viesti_props_get_binary(pr, id, &d, &len);
	field(o, sp, d, len, width_ok, width_ok, false);
}

/*
 * %p, %x, %X with a width: the payload is cut to `width` bytes first (for hex, then halved, so
 * the hex fits the width), then padded to the width. This is what mosquitto_sub 2.0 prints.
 */
static void payload_field(FILE *o, const struct spec *sp, const struct viesti_message *m, int hex)
{
	const uint8_t *p = m->payload;
	size_t len = m->payload_len;
	int fill;
	if (sp->width > 0 && len > (size_t)sp->width)
		len = (size_t)sp->width;
	if (sp->width > 0 && hex)
		len /= 2;
	fill = sp->width - (int)(hex ? len * 2 : len);
	if (!sp->left)
		pad(o, sp->zero ? '0' : ' ', fill);
	if (!hex)
		fwrite(p, 1, len, o);
	for (size_t i = 0; hex && i < len; i++)
		fprintf(o, hex == 1 ? "%02x" : "%02X", p[i]);
	if (sp->left)
		pad(o, ' ', fill);
}

static void user_props(FILE *o, const struct viesti_props *pr)
{
	size_t pos = 0;
	const char *k, *v;
	size_t kl, vl;
	bool first = true;
	while (viesti_props_next_user(pr, &pos, &k, &kl, &v, &vl)) {
		if (!first)
			fputc(' ', o);
		first = false;
		fwrite(k, 1, kl, o);
		fputc(':', o);
		fwrite(v, 1, vl, o);
	}
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static void json_str(FILE *o, const void *s, size_t len)
{
	const unsigned char *p = s;
	fputc('"', o);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		switch (c) {
		case '"':
			fputs("\\\"", o);
			break;
		case '\\':
			fputs("\\\\", o);
			break;
		case '\b':
			fputs("\\b", o);
			break;
		case '\f':
			fputs("\\f", o);
			break;
		case '\n':
			fputs("\\n", o);
			break;
		case '\r':
			fputs("\\r", o);
			break;
		case '\t':
			fputs("\\t", o);
			break;
		default:
			if (c < 0x20)
				fprintf(o, "\\u%04x", c);
			else
				fputc(c, o);
		}
	}
	fputc('"', o);
}

static const char *json_prop_name(int id)
{
	switch (id) {
	case VIESTI_PROP_PAYLOAD_FORMAT:
		return "payload-format-indicator";
	case VIESTI_PROP_MESSAGE_EXPIRY:
		return "message-expiry-interval";
	case VIESTI_PROP_CONTENT_TYPE:
		return "content-type";
	case VIESTI_PROP_RESPONSE_TOPIC:
		return "response-topic";
	case VIESTI_PROP_CORRELATION_DATA:
		return "correlation-data";
	case VIESTI_PROP_SUBSCRIPTION_ID:
		return "subscription-identifier";
	case VIESTI_PROP_TOPIC_ALIAS:
		return "topic-alias";
	}
	return NULL;
}

static void json_props(FILE *o, const struct viesti_props *pr)
{
	size_t pos = 0, sub_pos = 0;
	int id;
	bool any = false, users_done = false;
	while (viesti_props_next(pr, &pos, &id)) {
		const char *name = id == VIESTI_PROP_USER ? "user-properties" : json_prop_name(id);
		if (!name || (id == VIESTI_PROP_USER && users_done))
			continue;
		fputs(any ? "," : ",\"properties\":{", o);
		any = true;
		fprintf(o, "\"%s\":", name);
		uint32_t v;
		const void *d;
		size_t len;
		if (id == VIESTI_PROP_USER) {
			users_done = true;
			size_t up = 0;
			const char *k, *val;
			size_t kl, vl;
			bool first = true;
			fputc('{', o);
			while (viesti_props_next_user(pr, &up, &k, &kl, &val, &vl)) {
				if (!first)
					fputc(',', o);
				first = false;
				json_str(o, k, kl);
				fputc(':', o);
				json_str(o, val, vl);
			}
			fputc('}', o);
		} else if (id == VIESTI_PROP_SUBSCRIPTION_ID) {
			if (!viesti_props_next_sub_id(pr, &sub_pos, &v))
				v = 0;
			fprintf(o, "%u", v);
		} else if (viesti_props_get_int(pr, id, &v) == 0) {
			fprintf(o, "%u", v);
		} else if (viesti_props_get_binary(pr, id, &d, &len) == 0) {
			json_str(o, d, len);
		}
	}
	if (any)
		fputc('}', o);
}

/* Minimal JSON re-serialiser for %J: parses one value and prints it minified, as cJSON would
 * (numbers: integers as integers, others with 15 then 17 significant digits; strings with
 * escapes decoded and re-escaped). Returns the end of the value, or NULL if invalid. */
struct jout {
	char *buf;
	size_t len, cap;
};

static void jput(struct jout *j, const void *s, size_t n)
{
	if (j->len + n + 1 > j->cap) {
		size_t cap = (j->len + n + 1) * 2;
		char *b = realloc(j->buf, cap);
		if (!b)
			return;
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
}

static const char *jws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
	if (end - p < 4)
		return -1;
	*out = 0;
	for (int i = 0; i < 4; i++) {
		int c = p[i], d = isdigit(c)			       ? c - '0'
				  : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
								       : -1;
		if (d < 0)
			return -1;
		*out = *out << 4 | (unsigned)d;
	}
	return 0;
}

static void put_utf8(struct jout *j, unsigned cp)
{
	char b[4];
	int n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | cp >> 12);
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | cp >> 18);
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	jput(j, b, (size_t)n);
}

static const char *jstring(const char *p, const char *end, struct jout *j)
{
	struct jout raw = {0};
	p++; /* opening quote */
	while (p < end && *p != '"') {
		if ((unsigned char)*p < 0x20)
			goto fail;
		if (*p != '\\') {
			jput(&raw, p++, 1);
			continue;
		}
		if (++p >= end)
			goto fail;
		char c = *p++;
		unsigned cp;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			jput(&raw, &c, 1);
			break;
		case 'b':
			jput(&raw, "\b", 1);
			break;
		case 'f':
			jput(&raw, "\f", 1);
			break;
		case 'n':
			jput(&raw, "\n", 1);
			break;
		case 'r':
			jput(&raw, "\r", 1);
			break;
		case 't':
			jput(&raw, "\t", 1);
			break;
		case 'u':
			if (hex4(p, end, &cp) < 0)
				goto fail;
			p += 4;
			if (cp >= 0xD800 && cp < 0xDC00) {
				unsigned lo;
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				    hex4(p + 2, end, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
					goto fail;
				p += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			put_utf8(&raw, cp);
			break;
		default:
			goto fail;
		}
	}
	if (p >= end)
		goto fail;
	/* re-escape into j */
	FILE *m = NULL;
	char *mb = NULL;
	size_t ml = 0;
	m = open_memstream(&mb, &ml);
	if (m) {
		json_str(m, raw.buf ? raw.buf : "", raw.len);
		fclose(m);
		jput(j, mb, ml);
		free(mb);
	}
	free(raw.buf);
	return p + 1;
fail:
	free(raw.buf);
	return NULL;
}

static const char *jnumber(const char *p, const char *end, struct jout *j)
{
	const char *s = p;
	if (p < end && *p == '-')
		p++;
	if (p >= end || !isdigit((unsigned char)*p))
		return NULL;
	while (p < end && (isdigit((unsigned char)*p) || strchr(".eE+-", *p)))
		p++;
	char tmp[64];
	if ((size_t)(p - s) >= sizeof(tmp))
		return NULL;
	memcpy(tmp, s, (size_t)(p - s));
	tmp[p - s] = 0;
	char *e;
	double d = strtod(tmp, &e);
	if (*e)
		return NULL;
	char out[64];
	if (fabs(floor(d) - d) <= 1e-300 && fabs(d) < 2147483648.0)
		snprintf(out, sizeof(out), "%d", (int)d);
	else {
		snprintf(out, sizeof(out), "%1.15g", d);
		if (strtod(out, NULL) != d)
			snprintf(out, sizeof(out), "%1.17g", d);
	}
	jput(j, out, strlen(out));
	return p;
}

static const char *jvalue(const char *p, const char *end, struct jout *j, int depth)
{
	p = jws(p, end);
	if (p >= end || depth > 1000)
		return NULL;
	if (*p == '"')
		return jstring(p, end, j);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		bool obj = *p == '{';
		jput(j, p, 1);
		p = jws(p + 1, end);
		if (p < end && *p == close) {
			jput(j, p, 1);
			return p + 1;
		}
		for (;;) {
			if (obj) {
				p = jws(p, end);
				if (p >= end || *p != '"' || !(p = jstring(p, end, j)))
					return NULL;
				p = jws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				jput(j, ":", 1);
				p++;
			}
			if (!(p = jvalue(p, end, j, depth + 1)))
				return NULL;
			p = jws(p, end);
			if (p < end && *p == ',') {
				jput(j, ",", 1);
				p++;
				continue;
			}
			if (p < end && *p == close) {
				jput(j, p, 1);
				return p + 1;
			}
			return NULL;
		}
	}
	static const char *const lits[] = {"true", "false", "null"};
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(lits[i]);
		if ((size_t)(end - p) >= n && !memcmp(p, lits[i], n)) {
			jput(j, lits[i], n);
			return p + n;
		}
	}
	return jnumber(p, end, j);
}

static int json_reserialise(const struct viesti_message *m, struct jout *j)
{
	const char *p = m->payload, *end = p + m->payload_len;
	if (!m->payload_len)
		return -1;
	const char *e = jvalue(p, end, j, 0);
	if (!e || jws(e, end) != end)
		return -1;
	return 0;
}

static void timestamp(FILE *o, const struct timespec *ts, const char *fmt)
{
	struct tm tm;
	char b[64];
	localtime_r(&ts->tv_sec, &tm);
	strftime(b, sizeof(b), fmt, &tm);
	fputs(b, o);
}

static void tabs(FILE *o, int n)
{
	for (int i = 0; i < n; i++)
		fputc('\t', o);
}

/*
 * --pretty: re-lays out minified JSON (ours: valid, no whitespace outside strings) as cJSON_Print
 * does, which is what mosquitto_sub prints: an object's members one per line, indented by tabs,
 * with a tab after each colon; an array's elements on one line, separated by ", "; an empty
 * object is "{", a newline, the closing brace at the object's own depth.
 */
static void pretty_print(FILE *o, const char *s, size_t len)
{
	char kind[64]; /* '{' or '[' per open level; deeper levels print as they come */
	int depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			fputc(c, o);
			if (c == '\\' && i + 1 < len)
				fputc(s[++i], o);
			else if (c == '"')
				in_str = false;
			continue;
		}
		bool obj = depth > 0 && depth <= (int)sizeof(kind) && kind[depth - 1] == '{';
		switch (c) {
		case '"':
			in_str = true;
			fputc(c, o);
			break;
		case '{':
			fputs("{\n", o);
			if (depth < (int)sizeof(kind))
				kind[depth] = '{';
			depth++;
			if (i + 1 < len && s[i + 1] != '}')
				tabs(o, depth);
			break;
		case '[':
			if (depth < (int)sizeof(kind))
				kind[depth] = '[';
			depth++;
			fputc(c, o);
			break;
		case '}':
			if (i > 0 && s[i - 1] != '{')
				fputc('\n', o);
			depth--;
			tabs(o, depth);
			fputc(c, o);
			break;
		case ']':
			depth--;
			fputc(c, o);
			break;
		case ':':
			fputs(obj ? ":\t" : ":", o);
			break;
		case ',':
			if (obj) {
				fputs(",\n", o);
				tabs(o, depth);
			} else {
				fputs(", ", o);
			}
			break;
		default:
			fputc(c, o);
		}
	}
}

static int json_min(FILE *o, const struct vs_fmt *f, const struct viesti_message *m,
		    const struct timespec *ts, bool raw_payload);

static int json(FILE *o, const struct vs_fmt *f, const struct viesti_message *m,
		const struct timespec *ts, bool raw_payload)
{
	if (!f->pretty)
		return json_min(o, f, m, ts, raw_payload);
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	if (!mem)
		return -1;
	int rc = json_min(mem, f, m, ts, raw_payload);
	fclose(mem);
	if (rc == 0)
		pretty_print(o, buf, len);
	free(buf);
	return rc;
}

/* The message as mosquitto_sub's %j / %J print it, minified (cJSON_PrintUnformatted). */
static int json_min(FILE *o, const struct vs_fmt *f, const struct viesti_message *m,
		    const struct timespec *ts, bool raw_payload)
{
	struct jout j = {0};
	if (raw_payload && m->payload_len && json_reserialise(m, &j) < 0) {
		free(j.buf);
		if (!f->quiet)
			fprintf(stderr, "Error: Message payload is not valid JSON on topic %s.\n",
				m->topic);
		return -1;
	}
	fputs("{\"tst\":\"", o);
	timestamp(o, ts, "%Y-%m-%dT%H:%M:%S");
	fprintf(o, ".%06ld", ts->tv_nsec / 1000);
	timestamp(o, ts, "Z%z");
	fputs("\",\"topic\":", o);
	json_str(o, m->topic, m->topic_len);
	fprintf(o, ",\"qos\":%d,\"retain\":%d,\"payloadlen\":%zu", m->qos, m->retain,
		m->payload_len);
	if (m->qos > 0)
		fprintf(o, ",\"mid\":%d", m->mid);
	json_props(o, m->props);
	fputs(",\"payload\":", o);
	if (!m->payload_len)
		fputs("null", o); /* an empty payload is JSON null in both %j and %J */
	else if (raw_payload)
		fwrite(j.buf, 1, j.len, o);
	else
		json_str(o, m->payload, m->payload_len);
	fputc('}', o);
	free(j.buf);
	return 0;
}

/* ---- the format string ---------------------------------------------------------------------- */

static void conv(FILE *o, const struct vs_fmt *f, const struct spec *sp,
		 const struct viesti_message *m, const struct timespec *ts)
{
	char b[64];
	int n;
	switch (sp->conv) {
	case '%':
		fputc('%', o);
		break;
	case 'A':
		num_field(o, sp, m->props, VIESTI_PROP_TOPIC_ALIAS);
		break;
	case 'C':
		bin_field(o, sp, m->props, VIESTI_PROP_CONTENT_TYPE, true);
		break;
	case 'D':
		bin_field(o, sp, m->props, VIESTI_PROP_CORRELATION_DATA, false);
		break;
	case 'E':
		num_field(o, sp, m->props, VIESTI_PROP_MESSAGE_EXPIRY);
		break;
	case 'F':
		num_field(o, sp, m->props, VIESTI_PROP_PAYLOAD_FORMAT);
		break;
	case 'I': {
		struct tm tm;
		localtime_r(&ts->tv_sec, &tm);
		n = (int)strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S%z", &tm);
		field(o, sp, b, (size_t)n, true, true, false);
		break;
	}
	case 'j':
		json(o, f, m, ts, false);
		break;
	case 'J':
		json(o, f, m, ts, true);
		break;
	case 'l':
		n = snprintf(b, sizeof(b), "%zu", m->payload_len);
		field(o, sp, b, (size_t)n, true, false, true);
		break;
	case 'm':
		n = snprintf(b, sizeof(b), "%d", m->mid);
		field(o, sp, b, (size_t)n, true, false, true);
		break;
	case 'P':
		user_props(o, m->props);
		break;
	case 'p':
		payload_field(o, sp, m, 0);
		break;
	case 'q':
		fprintf(o, "%d", m->qos);
		break;
	case 'R': /* unlike %C, an absent response topic prints nothing, not even padding */
		if (viesti_props_has(m->props, VIESTI_PROP_RESPONSE_TOPIC))
			bin_field(o, sp, m->props, VIESTI_PROP_RESPONSE_TOPIC, true);
		break;
	case 'r':
		fprintf(o, "%d", m->retain);
		break;
	case 'S': {
		size_t pos = 0;
		uint32_t id;
		n = viesti_props_next_sub_id(m->props, &pos, &id) ? snprintf(b, sizeof(b), "%u", id)
								  : 0;
		field(o, sp, b, (size_t)n, true, false, true);
		break;
	}
	case 't':
		field(o, sp, m->topic, m->topic_len, true, true, false);
		break;
	case 'U':
		fprintf(o, "%lld.%09ld", (long long)ts->tv_sec, ts->tv_nsec);
		break;
	case 'x':
		payload_field(o, sp, m, 1);
		break;
	case 'X':
		payload_field(o, sp, m, 2);
		break;
	}
}

static void at_seq(FILE *o, char c, const struct timespec *ts)
{
	if (c == '@') {
		fputc('@', o);
	} else if (c == 'N') {
		fprintf(o, "%09ld", ts->tv_nsec);
	} else {
		char fmt[3] = {'%', c, 0}, b[128];
		struct tm tm;
		localtime_r(&ts->tv_sec, &tm);
		size_t n = strftime(b, sizeof(b), fmt, &tm);
		fwrite(b, 1, n, o);
	}
}

static void escape(FILE *o, char c)
{
	static const char from[] = "\\0aenrtv", to[] = "\\\0\a\033\n\r\t\v";
	const char *k = strchr(from, c);
	if (k)
		fputc(to[k - from], o);
}

static void formatted(FILE *o, const struct vs_fmt *f, const struct viesti_message *m)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	for (const char *p = f->format; *p; p++) {
		if (*p == '%') {
			struct spec sp;
			int n = parse_spec(p + 1, &sp);
			if (n <= 0)
				return; /* vs_fmt_check() rejected this already */
			conv(o, f, &sp, m, &ts);
			p += n;
		} else if (*p == '@' && p[1]) {
			at_seq(o, *++p, &ts);
		} else if (*p == '\\' && p[1]) {
			escape(o, *++p);
		} else {
			fputc(*p, o);
		}
	}
}

void vs_fmt_print(FILE *o, const struct vs_fmt *f, const struct viesti_message *m)
{
	if (f->format) {
		formatted(o, f, m);
		if (f->eol)
			fputc('\n', o);
	} else if (f->verbose) {
		if (m->payload_len) {
			fwrite(m->topic, 1, m->topic_len, o);
			fputc(' ', o);
			fwrite(m->payload, 1, m->payload_len, o);
			if (f->eol)
				fputc('\n', o);
		} else if (f->eol) {
			fprintf(o, "%s (null)\n", m->topic);
		}
	} else if (m->payload_len) {
		fwrite(m->payload, 1, m->payload_len, o);
		if (f->eol)
			fputc('\n', o);
	}
	fflush(o);
}
