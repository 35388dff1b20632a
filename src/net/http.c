/*
 * HTTP/1.1 request heads: see http.h. Every byte of the head is looked at once, in order; the
 * outputs are views into the caller's buffer.
 */
#include "net/http.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"
#include "base/error.h"

/* tchar of RFC 9110 5.6.2: the characters of a method or a header name. */
static bool is_tchar(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return true;
	if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The end of the line that starts at p (the index of its LF), or -1 if it has not arrived.
 * *cr is set when the LF follows a CR, which is then not part of the line. */
static ssize_t line_end(const char *buf, size_t p, size_t len, bool *cr)
{
	const char *lf = memchr(buf + p, '\n', len - p);
	if (!lf)
		return -1;
	size_t e = (size_t)(lf - buf);
	*cr = e > p && buf[e - 1] == '\r';
	return (ssize_t)e;
}

/* "METHOD SP TARGET SP HTTP/1.x" in buf[0..n). */
static int parse_request_line(const char *buf, size_t n, struct vs_http_request *req)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)buf[i]))
		i++;
	if (i == 0 || i >= n || buf[i] != ' ')
		return VS_EPROTO;
	req->method = buf;
	req->method_len = i;
	size_t t = ++i;
	while (i < n && (unsigned char)buf[i] > ' ' && buf[i] != 0x7f)
		i++;
	if (i == t || i >= n || buf[i] != ' ')
		return VS_EPROTO;
	req->target = buf + t;
	req->target_len = i - t;
	i++;
	if (n - i != 8 || memcmp(buf + i, "HTTP/1.", 7) != 0 || buf[i + 7] < '0' ||
	    buf[i + 7] > '9')
		return VS_EPROTO;
	req->minor = buf[i + 7] - '0';
	return 0;
}

/* "HTTP/1.x SP 3DIGIT SP reason" in buf[0..n). */
static int parse_status_line(const char *buf, size_t n, struct vs_http_response *resp)
{
	if (n < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' ||
	    buf[8] != ' ' || (n > 12 && buf[12] != ' '))
		return VS_EPROTO;
	int status = 0;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return VS_EPROTO;
		status = status * 10 + buf[i] - '0';
	}
	resp->minor = buf[7] - '0';
	resp->status = status;
	return 0;
}

/* "Name: value" in buf[0..n), appended to headers[*n_headers]. */
static int parse_header(const char *buf, size_t n, struct vs_http_header *headers,
			size_t *n_headers)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)buf[i]))
		i++;
	/* No whitespace between the name and the colon (RFC 9112 5.1): a request smuggling
	 * vector, refused as RFC 9112 says a server must. */
	if (i == 0 || i >= n || buf[i] != ':')
		return VS_EPROTO;
	size_t vs = i + 1, ve = n;
	while (vs < ve && (buf[vs] == ' ' || buf[vs] == '\t'))
		vs++;
	while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
		ve--;
	for (size_t k = vs; k < ve; k++) {
		unsigned char ch = (unsigned char)buf[k];
		if ((ch < ' ' && ch != '\t') || ch == 0x7f)
			return VS_EPROTO;
	}
	if (*n_headers == VS_HTTP_MAX_HEADERS)
		return VS_ETOOBIG;
	struct vs_http_header *h = &headers[(*n_headers)++];
	h->name = buf;
	h->name_len = i;
	h->value = buf + vs;
	h->value_len = ve - vs;
	return 0;
}

/* The head at buf[0..len): the first line goes to first(buf, n, arg), the headers to headers[]. */
static ssize_t parse_head(const char *buf, size_t len,
			  int (*first_line)(const char *, size_t, void *), void *arg,
			  struct vs_http_header *headers, size_t *n_headers)
{
	*n_headers = 0;
	size_t p = 0;
	/* RFC 9112 2.2: empty lines before the request line are ignored. */
	while (p < len && (buf[p] == '\r' || buf[p] == '\n')) {
		if (buf[p] == '\r' && (p + 1 >= len || buf[p + 1] != '\n'))
			return p + 1 >= len ? 0 : VS_EPROTO;
		p += buf[p] == '\r' ? 2 : 1;
	}
	bool first = true;
	for (;;) {
		bool cr;
		ssize_t e = line_end(buf, p, len, &cr);
		if (e < 0)
			return 0;
		size_t n = (size_t)e - p - (cr ? 1 : 0);
		if (memchr(buf + p, '\r', n))
			return VS_EPROTO; /* a bare CR inside a line */
		if (n == 0)
			return first ? VS_EPROTO : (ssize_t)e + 1;
		int rc;
		if (first)
			rc = first_line(buf + p, n, arg);
		else if (buf[p] == ' ' || buf[p] == '\t')
			rc = VS_EPROTO; /* obsolete line folding */
		else
			rc = parse_header(buf + p, n, headers, n_headers);
		if (rc < 0)
			return rc;
		first = false;
		p = (size_t)e + 1;
	}
}

static int request_line(const char *buf, size_t n, void *arg)
{
	return parse_request_line(buf, n, arg);
}

static int status_line(const char *buf, size_t n, void *arg)
{
	return parse_status_line(buf, n, arg);
}

ssize_t vs_http_parse_request(const char *buf, size_t len, struct vs_http_request *req)
{
	return parse_head(buf, len, request_line, req, req->headers, &req->n_headers);
}

ssize_t vs_http_parse_response(const char *buf, size_t len, struct vs_http_response *resp)
{
	return parse_head(buf, len, status_line, resp, resp->headers, &resp->n_headers);
}

const struct vs_http_header *vs_http_find(const struct vs_http_header *headers, size_t nh,
					  const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < nh; i++) {
		const struct vs_http_header *h = &headers[i];
		if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
			return h;
	}
	return NULL;
}

bool vs_http_has_token(const struct vs_http_header *h, const char *token)
{
	if (!h)
		return false;
	size_t tn = strlen(token);
	const char *v = h->value, *end = h->value + h->value_len;
	while (v < end) {
		while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
			v++;
		const char *s = v;
		while (v < end && *v != ',')
			v++;
		const char *e = v;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tn && strncasecmp(s, token, tn) == 0)
			return true;
	}
	return false;
}

bool vs_http_method_is(const struct vs_http_request *req, const char *m)
{
	size_t n = strlen(m);
	return req->method_len == n && memcmp(req->method, m, n) == 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)(ch | 0x20);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

ssize_t vs_http_path(const char *target, size_t len, char *out, size_t cap)
{
	if (len == 0 || target[0] != '/')
		return VS_EPROTO;
	size_t o = 0;
	for (size_t i = 0; i < len && target[i] != '?' && target[i] != '#'; i++) {
		char ch = target[i];
		if (ch == '%') {
			int hi = i + 2 < len ? hexval(target[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(target[i + 2]) : -1;
			if (lo < 0)
				return VS_EPROTO;
			ch = (char)(hi << 4 | lo);
			i += 2;
		}
		/* No control characters either: the path goes into log lines ("%0a" would forge
		 * one, "%1b" reach a terminal). */
		if ((unsigned char)ch < 0x20 || ch == 0x7f || ch == '\\')
			return VS_EPROTO;
		if (o + 1 >= cap)
			return VS_ETOOBIG;
		out[o++] = ch;
	}
	out[o] = '\0';
	/* Segments "." and ".." (after decoding: "%2e%2e" too) could name a file outside. */
	for (const char *s = out; (s = strchr(s, '/')) != NULL; s++) {
		if (s[1] == '.' && (s[2] == '/' || s[2] == '\0'))
			return VS_EPROTO;
		if (s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
			return VS_EPROTO;
	}
	return (ssize_t)o;
}

/* Percent-decodes s[0..len) into out (cap bytes, NUL added); '+' is a space. */
static ssize_t query_decode(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i] == '+' ? ' ' : s[i];
		if (ch == '%') {
			int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
			if (lo < 0)
				return VS_EPROTO;
			ch = (char)(hi << 4 | lo);
			i += 2;
		}
		if (ch == '\0')
			return VS_EPROTO;
		if (o + 1 >= cap)
			return VS_ETOOBIG;
		out[o++] = ch;
	}
	if (cap == 0)
		return VS_ETOOBIG;
	out[o] = '\0';
	return (ssize_t)o;
}

ssize_t vs_http_query(const char *query, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	for (const char *p = query; *p;) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t klen = eq ? (size_t)(eq - p) : plen;
		if (klen == nlen && memcmp(p, name, nlen) == 0)
			return eq ? query_decode(eq + 1, plen - klen - 1, out, cap)
				  : query_decode("", 0, out, cap);
		p += plen + (amp != NULL);
	}
	return -ENOENT;
}

/* One Content-Length value: 1 to 16 digits (2^53 and more is refused: nobody sends that much
 * to a broker, and no accumulated value can overflow). */
static int content_length(const struct vs_http_header *h, uint64_t *out)
{
	if (h->value_len == 0 || h->value_len > 16)
		return VS_EPROTO;
	uint64_t v = 0;
	for (size_t i = 0; i < h->value_len; i++) {
		if (h->value[i] < '0' || h->value[i] > '9')
			return VS_EPROTO;
		v = v * 10 + (uint64_t)(h->value[i] - '0');
	}
	if (v >> 53)
		return VS_EPROTO;
	*out = v;
	return 0;
}

int vs_http_body(const struct vs_http_request *req, enum vs_http_body *kind, uint64_t *len)
{
	bool have_len = false, have_te = false, chunked_last = false;
	uint64_t n = 0;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct vs_http_header *h = &req->headers[i];
		if (h->name_len == 14 && strncasecmp(h->name, "Content-Length", 14) == 0) {
			uint64_t v;
			if (content_length(h, &v) < 0 || (have_len && v != n))
				return VS_EPROTO;
			have_len = true;
			n = v;
		} else if (h->name_len == 17 &&
			   strncasecmp(h->name, "Transfer-Encoding", 17) == 0) {
			/* The last coding of the last header is what frames the message. */
			const char *e = h->value + h->value_len, *s = e;
			while (s > h->value && s[-1] != ',')
				s--;
			while (s < e && (*s == ' ' || *s == '\t'))
				s++;
			have_te = true;
			chunked_last = e - s == 7 && strncasecmp(s, "chunked", 7) == 0;
		}
	}
	if (have_len && have_te)
		return VS_EPROTO;
	*kind = !have_te       ? VS_HTTP_BODY_LENGTH
		: chunked_last ? VS_HTTP_BODY_CHUNKED
			       : VS_HTTP_BODY_CODING;
	*len = n;
	return 0;
}

int vs_http_basic(const char *value, size_t len, char *buf, size_t cap, struct vs_http_basic *out)
{
	if (len < 6 || strncasecmp(value, "Basic ", 6) != 0 || cap < 1)
		return VS_EPROTO;
	size_t i = 6;
	while (i < len && value[i] == ' ')
		i++;
	size_t n4 = len - i, pad = 0;
	while (pad < 2 && pad < n4 && value[len - 1 - pad] == '=')
		pad++;
	if (n4 % 4 == 0 && n4 / 4 * 3 - pad > cap - 1)
		return VS_ETOOBIG;
	ssize_t n = vs_b64_decode(value + i, len - i, (uint8_t *)buf, cap - 1, VS_B64_PAD);
	if (n < 0)
		return VS_EPROTO;
	const char *colon = memchr(buf, ':', (size_t)n);
	if (!colon || colon == buf || memchr(buf, '\0', (size_t)n))
		return VS_EPROTO;
	size_t ul = (size_t)(colon - buf);
	for (size_t k = 0; k < ul; k++)
		if ((unsigned char)buf[k] < ' ' || buf[k] == 0x7f)
			return VS_EPROTO;
	buf[ul] = '\0'; /* the colon: the user becomes a C string */
	buf[n] = '\0';
	out->user = buf;
	out->user_len = ul;
	out->pw = (const uint8_t *)buf + ul + 1;
	out->pw_len = (size_t)n - ul - 1;
	return 0;
}

const char *vs_http_content_type(const char *name)
{
	static const char *const types[][2] = {
	    {"html", "text/html; charset=utf-8"},
	    {"htm", "text/html; charset=utf-8"},
	    {"js", "text/javascript; charset=utf-8"},
	    {"mjs", "text/javascript; charset=utf-8"},
	    {"css", "text/css; charset=utf-8"},
	    {"json", "application/json"},
	    {"map", "application/json"},
	    {"txt", "text/plain; charset=utf-8"},
	    {"svg", "image/svg+xml"},
	    {"png", "image/png"},
	    {"jpg", "image/jpeg"},
	    {"jpeg", "image/jpeg"},
	    {"gif", "image/gif"},
	    {"webp", "image/webp"},
	    {"ico", "image/x-icon"},
	    {"wasm", "application/wasm"},
	    {"woff", "font/woff"},
	    {"woff2", "font/woff2"},
	    {"xml", "application/xml"},
	    {"pdf", "application/pdf"},
	};
	const char *slash = strrchr(name, '/');
	const char *dot = strrchr(slash ? slash : name, '.');
	if (dot)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot + 1, types[i][0]) == 0)
				return types[i][1];
	return "application/octet-stream";
}

const char *vs_http_reason(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 301:
		return "Moved Permanently";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 426:
		return "Upgrade Required";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}
