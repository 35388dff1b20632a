/*
 * WebSocket framing and the WebSocket transport: see ws.h.
 *
 * The transport's state, for each connection, is small once the upgrade is done: the decoder
 * (about 300 bytes), and a send buffer that holds the frame in flight (its header and a copy of
 * its payload), allocated when there is something to send and given back by shrink() when the
 * connection idles. The upgrade's buffers (the request head, a file being served) exist only
 * until it is done.
 *
 * Writes follow the transport contract ("offer the same bytes first next time") without holding
 * the caller's memory: a frame is built from the first bytes offered (header and payload copied
 * into the send buffer, masked by a client), and the caller is told its bytes are taken only as
 * they reach the transport below, so a frame half sent is finished from the copy, and the bytes
 * the caller offers again in front are skipped. A control frame to send (a Pong, a Close) waits
 * for the frame in flight to end: frames are never interleaved inside one another.
 */
#include "net/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base64.h"
#include "base/error.h"
#include "codec/codec.h"
#include "net/http.h"

/* ---- framing ------------------------------------------------------------------------------- */

void vs_ws_dec_init(struct vs_ws_dec *d, bool server)
{
	memset(d, 0, sizeof(*d));
	d->server = server;
}

size_t vs_ws_carry(struct vs_ws_dec *d, uint8_t *buf)
{
	memcpy(buf, d->hdr, d->hdr_len);
	return d->hdr_len;
}

void vs_ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4], unsigned off)
{
	uint8_t m8[8];
	for (unsigned k = 0; k < 8; k++)
		m8[k] = mask[(off + k) & 3];
	uint64_t m;
	memcpy(&m, m8, 8);
	size_t i = 0;
	/* Eight bytes at a time; each word is loaded before its store, so dst below src is safe. */
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, src + i, 8);
		v ^= m;
		memcpy(dst + i, &v, 8);
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ mask[(off + i) & 3];
}

size_t vs_ws_header(uint8_t *out, enum vs_ws_opcode op, bool fin, uint64_t len, const uint8_t *mask)
{
	size_t n = 2;
	out[0] = (uint8_t)((fin ? 0x80 : 0) | op);
	uint8_t m = mask ? 0x80 : 0;
	if (len < 126) {
		out[1] = (uint8_t)(m | len);
	} else if (len <= 0xffff) {
		out[1] = m | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = m | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

static ssize_t fail(struct vs_ws_dec *d, uint16_t code, const char *why)
{
	d->fail_code = code;
	d->fail_why = why;
	return VS_EPROTO;
}

/* Validates the header at p[0..avail); returns its length, 0 if incomplete, or VS_EPROTO. */
static ssize_t read_header(struct vs_ws_dec *d, const uint8_t *p, size_t avail)
{
	if (avail < 2)
		return 0;
	bool fin = p[0] & 0x80, masked = p[1] & 0x80;
	unsigned op = p[0] & 0x0f, len7 = p[1] & 0x7f;
	if (p[0] & 0x70)
		return fail(d, VS_WS_PROTOCOL_ERROR, "reserved bits set (no extension was agreed)");
	if (op >= 3 && op <= 7)
		return fail(d, VS_WS_PROTOCOL_ERROR, "reserved data opcode");
	if (op > 0xa)
		return fail(d, VS_WS_PROTOCOL_ERROR, "reserved control opcode");
	if (op & 8) {
		if (!fin)
			return fail(d, VS_WS_PROTOCOL_ERROR, "fragmented control frame");
		if (len7 > 125)
			return fail(d, VS_WS_PROTOCOL_ERROR, "control frame longer than 125 bytes");
	} else if (op == VS_WS_TEXT) {
		/* [MQTT-6.0.0-1] MQTT packets travel in binary frames only. */
		return fail(d, VS_WS_UNSUPPORTED_DATA,
			    "text frame (MQTT is sent in binary frames)");
	} else if (op == VS_WS_CONT && !d->in_message) {
		return fail(d, VS_WS_PROTOCOL_ERROR, "continuation frame without a message");
	} else if (op == VS_WS_BINARY && d->in_message) {
		return fail(d, VS_WS_PROTOCOL_ERROR, "new message inside a fragmented one");
	}
	if (masked != d->server)
		return fail(d, VS_WS_PROTOCOL_ERROR,
			    d->server ? "unmasked frame from a client"
				      : "masked frame from a server");
	size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
	if (avail < need)
		return 0;
	uint64_t len = len7;
	size_t q = 2;
	if (len7 == 126) {
		len = (uint64_t)p[2] << 8 | p[3];
		q = 4;
		if (len < 126)
			return fail(d, VS_WS_PROTOCOL_ERROR, "length not in its shortest form");
	} else if (len7 == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		q = 10;
		if (len >> 63)
			return fail(d, VS_WS_PROTOCOL_ERROR, "length with its top bit set");
		if (len <= 0xffff)
			return fail(d, VS_WS_PROTOCOL_ERROR, "length not in its shortest form");
	}
	if (masked)
		memcpy(d->mask, p + q, 4);
	else
		memset(d->mask, 0, 4);
	d->opcode = (uint8_t)op;
	d->fin = fin;
	d->left = len;
	d->mask_off = 0;
	d->ctl_len = 0;
	if (!(op & 8))
		d->in_message = !fin;
	return (ssize_t)need;
}

static bool close_code_valid(unsigned c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* RFC 6455 7.1.6: a close reason is UTF-8, in which U+0000 is a valid character; vs_utf8_valid()
 * refuses it (as MQTT strings must), so the pieces between zero bytes are checked instead. A
 * zero byte is never inside a valid multi-byte sequence, so the split changes nothing else. */
static bool reason_valid(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	while (p < end) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));
		size_t k = z ? (size_t)(z - p) : (size_t)(end - p);
		if (!vs_utf8_valid(p, k))
			return false;
		p += k + (z != NULL);
	}
	return true;
}

/* A control frame's payload is all in d->ctl: acts on it. */
static ssize_t control_done(struct vs_ws_dec *d)
{
	if (d->opcode == VS_WS_PING) {
		d->pong_due = true;
		d->ping_len = d->ctl_len;
		memcpy(d->ping, d->ctl, d->ctl_len);
	} else if (d->opcode == VS_WS_CLOSE) {
		if (d->ctl_len == 1)
			return fail(d, VS_WS_PROTOCOL_ERROR, "close frame with a 1-byte body");
		if (d->ctl_len >= 2) {
			unsigned code = (unsigned)d->ctl[0] << 8 | d->ctl[1];
			if (!close_code_valid(code))
				return fail(d, VS_WS_PROTOCOL_ERROR,
					    "close frame with an invalid code");
			if (!reason_valid(d->ctl + 2, d->ctl_len - 2u))
				return fail(d, VS_WS_INVALID_DATA, "close reason is not UTF-8");
			d->close_code = (uint16_t)code;
		}
		d->closed = true;
	}
	return 0; /* a Pong needs nothing */
}

ssize_t vs_ws_unframe(struct vs_ws_dec *d, uint8_t *buf, size_t len)
{
	size_t in = 0, out = 0;
	d->hdr_len = 0; /* the caller put it in front of buf */
	while (in < len && !d->closed) {
		if (!d->in_frame) {
			ssize_t h = read_header(d, buf + in, len - in);
			if (h < 0)
				return h;
			if (h == 0) {
				d->hdr_len = (uint8_t)(len - in);
				memcpy(d->hdr, buf + in, d->hdr_len);
				break;
			}
			in += (size_t)h;
			d->in_frame = true;
		}
		size_t n = d->left < len - in ? (size_t)d->left : len - in;
		if (d->opcode & 8) {
			vs_ws_mask(d->ctl + d->ctl_len, buf + in, n, d->mask, d->mask_off);
			d->ctl_len = (uint8_t)(d->ctl_len + n);
		} else if (d->server) {
			vs_ws_mask(buf + out, buf + in, n, d->mask, d->mask_off);
			out += n;
		} else {
			memmove(buf + out, buf + in, n);
			out += n;
		}
		in += n;
		d->left -= n;
		d->mask_off = (uint8_t)((d->mask_off + n) & 3);
		if (d->left == 0) {
			d->in_frame = false;
			if ((d->opcode & 8) && control_done(d) < 0)
				return VS_EPROTO;
		}
	}
	return (ssize_t)out;
}

int vs_ws_accept_key(const char *key, size_t len, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t md[20];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
		 EVP_DigestUpdate(ctx, key, len) && EVP_DigestUpdate(ctx, guid, sizeof(guid) - 1) &&
		 EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -ENOMEM;
	vs_b64_encode(md, sizeof(md), out, VS_B64_PAD);
	return 0;
}

/* ---- the transport ------------------------------------------------------------------------ */

enum phase {
	PH_INNER,   /* the transport below is still in its own handshake (TLS) */
	PH_REQUEST, /* server: reading a request head */
	PH_RESPOND, /* server: sending a response (then a file's body, then `after`) */
	PH_CSEND,   /* client: sending the upgrade request */
	PH_CREAD,   /* client: reading the answer */
	PH_UP,	    /* frames flow */
};

/* What a server does once its response is sent. */
enum after { AFTER_NEXT, AFTER_UP, AFTER_CLOSE };

/* The largest payload one frame carries: larger writes become several frames. */
#define FRAME_MAX (64 * 1024)
/* The longest answer to an upgrade a client reads. */
#define RESPONSE_MAX 4096

struct ws_state {
	struct vs_transport inner;
	bool server;
	enum phase phase;
	struct vs_ws_dec dec;
	/* The head being read (request or response), and whatever followed it. */
	char *head;
	size_t head_len, head_cap;
	size_t head_limit; /* longest head taken */
	size_t head_seen;  /* bytes of head already searched for its end */
	/* Bytes to send: an HTTP head, or the frame in flight (header, then payload). */
	uint8_t *tx;
	size_t tx_len, tx_off, tx_cap;
	size_t tx_hdr; /* the frame's header bytes at the start of tx */
	/* A control frame waiting for the frame in flight to end. */
	uint8_t ctl[VS_WS_MAX_HEADER + 125];
	uint8_t ctl_len;
	bool close_sent;
	bool eof_next; /* a Close came after the payload just returned: next read is 0 */
	bool more;     /* the last read may have left bytes below */
	/* Raw bytes read with the head, unframed before anything else is read. */
	uint8_t *pre;
	size_t pre_len, pre_off;
	/* Server. */
	const struct vs_ws_server_conf *conf;
	enum after after;
	bool served; /* the response is a file (200): closing after it is no failure */
	int file_fd; /* a file being served, or -1 */
	off_t file_left;
	char fwd[48]; /* the client's address from X-Forwarded-For */
	/* Client. */
	char *host, *path;
	const char *subprotocol;
	int port;
	char key[25]; /* Sec-WebSocket-Key sent */
	uint64_t rng; /* masking keys */
	char err[200];
};

static int failf(struct ws_state *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failf(struct ws_state *st, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return code;
}

static int tx_reserve(struct ws_state *st, size_t n)
{
	if (st->tx_cap >= n)
		return 0;
	uint8_t *p = realloc(st->tx, n);
	if (!p)
		return -ENOMEM;
	st->tx = p;
	st->tx_cap = n;
	return 0;
}

/* Sends what tx holds; 0 when all of it went, -EAGAIN (wait for EPOLLOUT), or an error. */
static int send_tx(struct vs_transport *t, struct ws_state *st)
{
	while (st->tx_off < st->tx_len) {
		ssize_t n =
		    st->inner.ops->write(&st->inner, st->tx + st->tx_off, st->tx_len - st->tx_off);
		if (n == -EAGAIN) {
			t->wait = EPOLLOUT;
			return -EAGAIN;
		}
		if (n < 0)
			return (int)n;
		st->tx_off += (size_t)n;
	}
	st->tx_off = st->tx_len = 0;
	return 0;
}

static uint64_t next_rand(struct ws_state *st)
{
	st->rng ^= st->rng << 13;
	st->rng ^= st->rng >> 7;
	st->rng ^= st->rng << 17;
	return st->rng;
}

/* Writes a whole frame of payload p[0..n) into out (n + VS_WS_MAX_HEADER bytes), masked with
 * a fresh key by a client, as RFC 6455 5.3 requires. Returns the header's length. */
static size_t put_frame(struct ws_state *st, uint8_t *out, enum vs_ws_opcode op, const uint8_t *p,
			size_t n)
{
	if (st->server) {
		size_t h = vs_ws_header(out, op, true, n, NULL);
		memcpy(out + h, p, n);
		return h;
	}
	uint8_t key[4];
	uint32_t r = (uint32_t)next_rand(st);
	memcpy(key, &r, 4);
	size_t h = vs_ws_header(out, op, true, n, key);
	vs_ws_mask(out + h, p, n, key, 0);
	return h;
}

/* Queues a control frame (replacing one not yet sent). */
static void queue_control(struct ws_state *st, enum vs_ws_opcode op, const uint8_t *p, size_t n)
{
	st->ctl_len = (uint8_t)(put_frame(st, st->ctl, op, p, n) + n);
	if (op == VS_WS_CLOSE)
		st->close_sent = true;
}

/* Sends the queued control frame if no data frame is in flight. 0 sent (or nothing to send),
 * -EAGAIN, or an error. */
static int flush_control(struct ws_state *st)
{
	if (!st->ctl_len || st->tx_off < st->tx_len)
		return 0;
	ssize_t n = st->inner.ops->write(&st->inner, st->ctl, st->ctl_len);
	if (n < 0)
		return (int)n;
	if ((size_t)n < st->ctl_len) {
		/* Rare (the socket filled up inside 130 bytes): the rest goes as the frame in
		 * flight. */
		size_t rest = st->ctl_len - (size_t)n;
		if (tx_reserve(st, rest) < 0)
			return -ENOMEM;
		memcpy(st->tx, st->ctl + n, rest);
		st->tx_len = rest;
		st->tx_off = 0;
		st->tx_hdr = rest; /* none of it is the caller's */
	}
	st->ctl_len = 0;
	return 0;
}

static void send_close(struct ws_state *st, uint16_t code)
{
	if (st->close_sent || st->phase != PH_UP)
		return;
	uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
	queue_control(st, VS_WS_CLOSE, body, 2);
	flush_control(st);
}

/* ---- server: the upgrade and static files ------------------------------------------------- */

static void append(struct ws_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the response being built in tx (which has room: see respond()). */
static void append(struct ws_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf((char *)st->tx + st->tx_len, st->tx_cap - st->tx_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		st->tx_len +=
		    (size_t)n < st->tx_cap - st->tx_len ? (size_t)n : st->tx_cap - st->tx_len - 1;
}

#define HEAD_ROOM 1024
/* What a head buffer keeps free for the next read, and holds past the longest head. */
#define HEAD_SLACK 512

/* Starts a response: status line and the headers every response has. */
static int respond(struct ws_state *st, int status)
{
	if (tx_reserve(st, HEAD_ROOM) < 0)
		return -ENOMEM;
	st->tx_len = st->tx_off = 0;
	append(st, "HTTP/1.1 %d %s\r\n", status, vs_http_reason(status));
	if (status != 101)
		append(st, "Server: viesti\r\nX-Content-Type-Options: nosniff\r\n");
	return 0;
}

/* An error answer, then the connection is closed: st->err says why, for the broker's log. */
static int refuse(struct ws_state *st, int status, const char *extra, const char *why)
{
	if (respond(st, status) < 0)
		return -ENOMEM;
	char body[160];
	int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, vs_http_reason(status), why);
	append(st,
	       "%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
	       "Connection: close\r\n\r\n%s",
	       extra ? extra : "", n, body);
	snprintf(st->err, sizeof(st->err), "HTTP %d (%s)", status, why);
	st->after = AFTER_CLOSE;
	st->served = false;
	st->phase = PH_RESPOND;
	return 0;
}

/* Whether the peer of fd is one of the trusted proxies. */
static bool from_proxy(int fd, const struct vs_ws_server_conf *conf)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (!conf->n_proxies || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return false;
	for (size_t i = 0; i < conf->n_proxies; i++) {
		uint8_t a[16];
		if (ss.ss_family == AF_INET && inet_pton(AF_INET, conf->proxies[i], a) == 1 &&
		    memcmp(a, &((struct sockaddr_in *)&ss)->sin_addr, 4) == 0)
			return true;
		if (ss.ss_family == AF_INET6 && inet_pton(AF_INET6, conf->proxies[i], a) == 1 &&
		    memcmp(a, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16) == 0)
			return true;
	}
	return false;
}

/* The last address of X-Forwarded-For (the one our proxy saw), if it is an IP address. */
static void take_forwarded(struct ws_state *st, const struct vs_http_request *req)
{
	const struct vs_http_header *h = vs_http_header_get(req, "X-Forwarded-For");
	if (!h || !from_proxy(st->inner.fd, st->conf))
		return;
	const char *end = h->value + h->value_len, *s = end;
	while (s > h->value && s[-1] != ',')
		s--;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	char addr[48];
	size_t n = (size_t)(end - s);
	if (n == 0 || n >= sizeof(addr))
		return;
	memcpy(addr, s, n);
	addr[n] = '\0';
	uint8_t bin[16];
	if (inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1)
		snprintf(st->fwd, sizeof(st->fwd), "%s", addr);
}

static bool origin_allowed(const struct vs_ws_server_conf *conf, const struct vs_http_header *o)
{
	if (!conf->n_origins)
		return true;
	for (size_t i = 0; o && i < conf->n_origins; i++)
		if (strlen(conf->origins[i]) == o->value_len &&
		    strncasecmp(conf->origins[i], o->value, o->value_len) == 0)
			return true;
	return false;
}

/* The subprotocol to answer with: "mqtt" or "mqttv3.1" if offered; "" when the client offered
 * none (answered without the header); NULL when it offered only others. */
static const char *pick_subprotocol(const struct vs_http_request *req)
{
	const struct vs_http_header *h = vs_http_header_get(req, "Sec-WebSocket-Protocol");
	if (!h)
		return "";
	if (vs_http_has_token(h, "mqtt"))
		return "mqtt";
	if (vs_http_has_token(h, "mqttv3.1"))
		return "mqttv3.1";
	return NULL;
}

static int upgrade(struct ws_state *st, const struct vs_http_request *req, const char *path)
{
	const struct vs_ws_server_conf *conf = st->conf;
	if (!vs_http_method_is(req, "GET"))
		return refuse(st, 405, "Allow: GET\r\n", "a WebSocket upgrade must be a GET");
	if (req->minor < 1)
		return refuse(st, 400, NULL, "a WebSocket upgrade needs HTTP/1.1");
	if (!vs_http_header_get(req, "Host"))
		return refuse(st, 400, NULL, "no Host header");
	if (!vs_http_has_token(vs_http_header_get(req, "Connection"), "upgrade"))
		return refuse(st, 400, NULL, "Connection does not list Upgrade");
	const struct vs_http_header *v = vs_http_header_get(req, "Sec-WebSocket-Version");
	if (!v || v->value_len != 2 || memcmp(v->value, "13", 2) != 0)
		return refuse(st, 426, "Sec-WebSocket-Version: 13\r\n",
			      "only WebSocket version 13 is spoken");
	const struct vs_http_header *k = vs_http_header_get(req, "Sec-WebSocket-Key");
	uint8_t nonce[18];
	if (!k || vs_b64_decode(k->value, k->value_len, nonce, sizeof(nonce), VS_B64_PAD) != 16)
		return refuse(st, 400, NULL, "Sec-WebSocket-Key is not 16 bytes in base64");
	if (conf->path && strcmp(path, conf->path) != 0)
		return refuse(st, 404, NULL, "no WebSocket endpoint at this path");
	if (!origin_allowed(conf, vs_http_header_get(req, "Origin")))
		return refuse(st, 403, NULL, "Origin not allowed");
	const char *sub = pick_subprotocol(req);
	if (!sub)
		return refuse(st, 400, NULL, "no MQTT subprotocol offered (mqtt or mqttv3.1)");
	char accept[29];
	if (vs_ws_accept_key(k->value, k->value_len, accept) < 0 || respond(st, 101) < 0)
		return -ENOMEM;
	append(st, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
	       accept);
	if (*sub)
		append(st, "Sec-WebSocket-Protocol: %s\r\n", sub);
	append(st, "\r\n");
	take_forwarded(st, req);
	st->after = AFTER_UP;
	st->phase = PH_RESPOND;
	return 0;
}

/* Opens the file the path names under http_dir (index.html for a directory), refusing any that
 * resolves outside it (a symbolic link pointing out). Returns an fd, or -errno. */
static int open_file(const char *dir, const char *path, struct stat *sb)
{
	char full[PATH_MAX], real[PATH_MAX];
	size_t dl = strlen(dir);
	int n = snprintf(full, sizeof(full), "%s%s%s", dir, path,
			 path[strlen(path) - 1] == '/' ? "index.html" : "");
	if (n < 0 || (size_t)n >= sizeof(full))
		return -ENAMETOOLONG;
	if (!realpath(full, real))
		return -errno;
	if (strncmp(real, dir, dl) != 0 || (real[dl] != '/' && !(dl == 1 && dir[0] == '/')))
		return -EACCES;
	int fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, sb) == 0 && S_ISDIR(sb->st_mode) && path[strlen(path) - 1] != '/') {
		close(fd);
		return -EISDIR;
	}
	if (!S_ISREG(sb->st_mode)) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

static int serve_file(struct ws_state *st, const struct vs_http_request *req, const char *path)
{
	bool head = vs_http_method_is(req, "HEAD");
	if (!head && !vs_http_method_is(req, "GET"))
		return refuse(st, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD are served");
	const struct vs_http_header *cl = vs_http_header_get(req, "Content-Length");
	if (vs_http_header_get(req, "Transfer-Encoding") ||
	    (cl && !(cl->value_len == 1 && cl->value[0] == '0')))
		return refuse(st, 400, NULL, "a GET or HEAD with a body");
	struct stat sb;
	int fd = open_file(st->conf->http_dir, path, &sb);
	if (fd == -EISDIR) {
		/* The Location is the target's path as sent, then "/": the decoded path would lose
		 * what %3F, %23 or %25 stood for and could put control characters in the header;
		 * and room is made for it, as a long one does not fit in HEAD_ROOM. */
		size_t n = 0;
		while (n < req->target_len && req->target[n] != '?' && req->target[n] != '#')
			n++;
		if (respond(st, 301) < 0 || tx_reserve(st, HEAD_ROOM + n) < 0)
			return -ENOMEM;
		append(st, "Location: %.*s/\r\nContent-Length: 0\r\n\r\n", (int)n, req->target);
		st->after = AFTER_NEXT;
		st->phase = PH_RESPOND;
		return 0;
	}
	if (fd < 0)
		return refuse(st, 404, NULL, "no such file");
	bool keep =
	    req->minor >= 1 && !vs_http_has_token(vs_http_header_get(req, "Connection"), "close");
	if (respond(st, 200) < 0) {
		close(fd);
		return -ENOMEM;
	}
	const char *name = path[strlen(path) - 1] == '/' ? "index.html" : path;
	append(st,
	       "Content-Type: %s\r\nContent-Length: %lld\r\nCache-Control: no-cache\r\n"
	       "Connection: %s\r\n\r\n",
	       vs_http_content_type(name), (long long)sb.st_size, keep ? "keep-alive" : "close");
	if (head) {
		close(fd);
	} else {
		st->file_fd = fd;
		st->file_left = sb.st_size;
	}
	snprintf(st->err, sizeof(st->err), "HTTP %s %.150s: 200", head ? "HEAD" : "GET", path);
	st->served = true;
	st->after = keep ? AFTER_NEXT : AFTER_CLOSE;
	st->phase = PH_RESPOND;
	return 0;
}

/* Decides the answer to the request head just parsed. */
static int on_request(struct ws_state *st, const struct vs_http_request *req)
{
	char path[1024];
	ssize_t pl = vs_http_path(req->target, req->target_len, path, sizeof(path));
	if (pl == VS_ETOOBIG)
		return refuse(st, 414, NULL, "request target too long");
	if (pl < 0)
		return refuse(st, 400, NULL, "bad request target");
	if (vs_http_has_token(vs_http_header_get(req, "Upgrade"), "websocket"))
		return upgrade(st, req, path);
	if (st->conf->http_dir)
		return serve_file(st, req, path);
	return refuse(st, 426, "Upgrade: websocket\r\nConnection: Upgrade\r\n",
		      "this port speaks MQTT over WebSocket");
}

/* Whether the blank line that ends a head has arrived (looking only at new bytes). */
static bool head_complete(const char *buf, size_t len, size_t from)
{
	size_t s = from > 3 ? from - 3 : 0;
	for (size_t i = s; i < len; i++)
		if (buf[i] == '\n' && ((i + 1 < len && buf[i + 1] == '\n') ||
				       (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')))
			return true;
	return false;
}

/* Reads until a whole head is in st->head; returns its length, -EAGAIN, or an error. Each byte
 * is looked at once while the head trickles in (st->head_seen carries the position across
 * calls), and the buffer grows with what arrived, doubling from 1 KiB: a connection that sent
 * little holds little, as the broker's budget for connections before CONNECT assumes (a TLS
 * record larger than the room left is read in several calls). */
static ssize_t read_head(struct vs_transport *t, struct ws_state *st, void *parsed, bool request)
{
	for (;;) {
		if (head_complete(st->head, st->head_len, st->head_seen)) {
			ssize_t r = request
					? vs_http_parse_request(st->head, st->head_len, parsed)
					: vs_http_parse_response(st->head, st->head_len, parsed);
			if (r != 0)
				return r > 0 && (size_t)r > st->head_limit ? VS_ETOOBIG : r;
		}
		st->head_seen = st->head_len;
		if (st->head_len >= st->head_limit)
			return VS_ETOOBIG;
		size_t most = st->head_limit + HEAD_SLACK;
		if (st->head_cap - st->head_len < HEAD_SLACK && st->head_cap < most) {
			size_t cap = st->head_cap ? 2 * st->head_cap : 1024;
			char *p = realloc(st->head, cap < most ? cap : most);
			if (!p)
				return -ENOMEM;
			st->head = p;
			st->head_cap = cap < most ? cap : most;
		}
		ssize_t n = st->inner.ops->read(&st->inner, st->head + st->head_len,
						st->head_cap - st->head_len);
		if (n == -EAGAIN) {
			t->wait = EPOLLIN;
			return -EAGAIN;
		}
		if (n == 0)
			return failf(st, VS_ECLOSED, "connection closed by peer during the %s",
				     request ? "HTTP request" : "WebSocket upgrade");
		if (n < 0)
			return n;
		st->head_len += (size_t)n;
	}
}

/* Drops the first n bytes of the head buffer (a head handled); what follows moves to front. */
static void head_consume(struct ws_state *st, size_t n)
{
	memmove(st->head, st->head + n, st->head_len - n);
	st->head_len -= n;
	st->head_seen = 0;
}

/* Up: what followed the head is the first raw bytes of frames. */
static int go_up(struct vs_transport *t, struct ws_state *st)
{
	if (st->head_len) {
		st->pre = (uint8_t *)st->head;
		st->pre_len = st->head_len;
		st->pre_off = 0;
		st->head = NULL;
	}
	free(st->head);
	st->head = NULL;
	st->head_len = st->head_cap = 0;
	vs_ws_dec_init(&st->dec, st->server);
	st->phase = PH_UP;
	st->err[0] = '\0'; /* from now on, why() is about frames */
	t->wait = 0;
	return 0;
}

static int server_request(struct vs_transport *t, struct ws_state *st)
{
	struct vs_http_request req;
	ssize_t r = read_head(t, st, &req, true);
	if (r == VS_ETOOBIG)
		return refuse(st, 431, NULL, "request head larger than websockets_headers_size");
	if (r == VS_EPROTO)
		return refuse(st, 400, NULL, "malformed HTTP request");
	if (r < 0)
		return (int)r;
	int rc = on_request(st, &req);
	head_consume(st, (size_t)r);
	return rc;
}

/* Sends the response, then the file's body if any; then does what `after` says. */
static int server_respond(struct vs_transport *t, struct ws_state *st)
{
	for (;;) {
		int rc = send_tx(t, st);
		if (rc < 0)
			return rc;
		if (st->file_fd < 0 || st->file_left == 0)
			break;
		if (tx_reserve(st, 16384) < 0)
			return -ENOMEM;
		size_t want = st->file_left < 16384 ? (size_t)st->file_left : 16384;
		ssize_t n = read(st->file_fd, st->tx, want);
		if (n <= 0)
			return failf(st, n < 0 ? -errno : -EIO, "reading a served file failed");
		st->tx_len = (size_t)n;
		st->file_left -= n;
	}
	if (st->file_fd >= 0)
		close(st->file_fd);
	st->file_fd = -1;
	if (st->after == AFTER_CLOSE)
		return st->served ? VS_ECLOSED : VS_EPROTO; /* a file served, or a refusal */
	if (st->after == AFTER_UP)
		return go_up(t, st);
	st->err[0] = '\0';
	st->phase = PH_REQUEST;
	return 1;
}

/* ---- client: the upgrade request --------------------------------------------------------- */

static int client_request(struct ws_state *st)
{
	uint8_t nonce[16];
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return -ENOMEM;
	vs_b64_encode(nonce, sizeof(nonce), st->key, VS_B64_PAD);
	if (tx_reserve(st, HEAD_ROOM + strlen(st->path) + strlen(st->host)) < 0)
		return -ENOMEM;
	st->tx_len = st->tx_off = 0;
	bool v6 = strchr(st->host, ':') != NULL;
	append(st,
	       "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: websocket\r\n"
	       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
	       "Sec-WebSocket-Protocol: %s\r\nUser-Agent: libviesti\r\n\r\n",
	       st->path, v6 ? "[" : "", st->host, v6 ? "]" : "", st->port, st->key,
	       st->subprotocol);
	st->phase = PH_CSEND;
	return 1;
}

static int client_response(struct vs_transport *t, struct ws_state *st)
{
	struct vs_http_response resp;
	ssize_t r = read_head(t, st, &resp, false);
	if (r == VS_ETOOBIG || r == VS_EPROTO)
		return failf(st, VS_EPROTO, "WebSocket upgrade: malformed HTTP response");
	if (r < 0)
		return (int)r;
	if (resp.status != 101)
		return failf(st, VS_EPROTO, "WebSocket upgrade refused: HTTP %d", resp.status);
	const struct vs_http_header *hs = resp.headers;
	size_t nh = resp.n_headers;
	struct vs_http_header up = {0}, conn = {0};
	const struct vs_http_header *u = vs_http_find(hs, nh, "Upgrade");
	const struct vs_http_header *c = vs_http_find(hs, nh, "Connection");
	if (u)
		up = *u;
	if (c)
		conn = *c;
	if (!vs_http_has_token(u ? &up : NULL, "websocket") ||
	    !vs_http_has_token(c ? &conn : NULL, "upgrade"))
		return failf(st, VS_EPROTO,
			     "WebSocket upgrade: no Upgrade: websocket in the answer");
	char want[29];
	const struct vs_http_header *a = vs_http_find(hs, nh, "Sec-WebSocket-Accept");
	if (vs_ws_accept_key(st->key, strlen(st->key), want) < 0)
		return -ENOMEM;
	if (!a || a->value_len != 28 || memcmp(a->value, want, 28) != 0)
		return failf(st, VS_EPROTO, "WebSocket upgrade: wrong Sec-WebSocket-Accept");
	const struct vs_http_header *p = vs_http_find(hs, nh, "Sec-WebSocket-Protocol");
	if (p && (p->value_len != strlen(st->subprotocol) ||
		  memcmp(p->value, st->subprotocol, p->value_len) != 0))
		return failf(st, VS_EPROTO, "WebSocket upgrade: server chose subprotocol '%.*s'",
			     (int)p->value_len, p->value);
	head_consume(st, (size_t)r);
	return go_up(t, st);
}

/* ---- the transport's functions ----------------------------------------------------------- */

static struct ws_state *state_new(bool server)
{
	struct ws_state *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->server = server;
	st->file_fd = -1;
	st->inner.fd = -1;
	/* Masking keys, for a client only: a server never masks. */
	if (!server && (RAND_bytes((uint8_t *)&st->rng, sizeof(st->rng)) != 1 || !st->rng))
		st->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)st;
	return st;
}

/* A client's state around inner (being opened, or open), for host:port at path. */
static int client_init(struct vs_transport *t, struct ws_state *st, const char *host, int port,
		       const char *path, const char *subprotocol)
{
	t->ops = &vs_transport_ws;
	t->state = st;
	st->host = strdup(host);
	st->path = strdup(path && *path ? path : "/");
	st->subprotocol = subprotocol ? subprotocol : "mqtt";
	st->port = port;
	st->head_limit = RESPONSE_MAX;
	st->phase = PH_INNER;
	return st->host && st->path ? 0 : -ENOMEM;
}

static int ws_open(struct vs_transport *t, const void *conf, const char *host, int port)
{
	const struct vs_ws_client_conf *cc = conf;
	struct ws_state *st = state_new(false);
	t->fd = -1;
	t->wait = EPOLLOUT;
	if (!st)
		return -ENOMEM;
	int rc = client_init(t, st, host, port, cc->path, cc->subprotocol);
	if (rc < 0)
		return rc;
	st->inner.ops = cc->inner;
	st->inner.tcp = t->tcp;
	rc = cc->inner->open(&st->inner, cc->inner_conf, host, port);
	t->fd = st->inner.fd;
	return rc;
}

int vs_transport_ws_client(struct vs_transport *t, struct vs_transport *inner, const char *host,
			   int port, const char *path, const char *subprotocol)
{
	struct ws_state *st = state_new(false);
	if (!st)
		return -ENOMEM;
	if (client_init(t, st, host, port, path, subprotocol) < 0) {
		free(st->host);
		free(st->path);
		free(st);
		t->state = NULL;
		return -ENOMEM;
	}
	st->inner = *inner;
	t->fd = inner->fd;
	t->wait = inner->wait ? inner->wait : EPOLLOUT;
	return 0;
}

int vs_transport_ws_accept(struct vs_transport *t, struct vs_transport *inner,
			   const struct vs_ws_server_conf *conf)
{
	struct ws_state *st = state_new(true);
	if (!st)
		return -ENOMEM;
	st->inner = *inner;
	st->conf = conf;
	st->head_limit = conf->headers_max ? conf->headers_max : 4096;
	st->phase = inner->wait ? PH_INNER : PH_REQUEST;
	t->ops = &vs_transport_ws;
	t->state = st;
	t->fd = inner->fd;
	t->wait = inner->wait ? inner->wait : EPOLLIN;
	return 0;
}

/* One step of the handshake: 1 go on to the next phase, 0 up, -EAGAIN, or an error. */
static int step(struct vs_transport *t, struct ws_state *st)
{
	int rc;
	switch (st->phase) {
	case PH_INNER:
		rc = st->inner.ops->finish ? st->inner.ops->finish(&st->inner) : 0;
		t->fd = st->inner.fd;
		t->wait = st->inner.wait;
		if (rc < 0)
			return rc;
		return st->server ? (st->phase = PH_REQUEST, 1) : client_request(st);
	case PH_REQUEST:
		rc = server_request(t, st);
		return rc < 0 ? rc : 1;
	case PH_RESPOND:
		return server_respond(t, st);
	case PH_CSEND:
		rc = send_tx(t, st);
		if (rc < 0)
			return rc;
		st->phase = PH_CREAD;
		return 1;
	case PH_CREAD:
		return client_response(t, st);
	case PH_UP:
		return 0;
	}
	return VS_ESTATE;
}

static int ws_finish(struct vs_transport *t)
{
	struct ws_state *st = t->state;
	int rc;
	while ((rc = step(t, st)) == 1)
		;
	return rc;
}

/* Answers what the decoder saw: a Pong for a Ping, a Close for a Close. */
static void answer_controls(struct ws_state *st)
{
	struct vs_ws_dec *d = &st->dec;
	if (d->closed) {
		/* RFC 6455 5.5.1: echo the status code. */
		send_close(st, d->close_code ? d->close_code : VS_WS_NORMAL);
		return;
	}
	if (d->pong_due) {
		d->pong_due = false;
		queue_control(st, VS_WS_PONG, d->ping, d->ping_len);
		flush_control(st);
	}
}

static ssize_t ws_read(struct vs_transport *t, void *buf, size_t len)
{
	struct ws_state *st = t->state;
	uint8_t *b = buf;
	for (;;) {
		if (st->eof_next || st->dec.closed)
			return 0;
		size_t have = vs_ws_carry(&st->dec, b);
		ssize_t n;
		bool more;
		if (st->pre_off < st->pre_len) {
			n = (ssize_t)(st->pre_len - st->pre_off);
			if ((size_t)n > len - have)
				n = (ssize_t)(len - have);
			memcpy(b + have, st->pre + st->pre_off, (size_t)n);
			st->pre_off += (size_t)n;
			if (st->pre_off == st->pre_len) {
				free(st->pre);
				st->pre = NULL;
				st->pre_off = st->pre_len = 0;
			}
			more = true; /* the socket was not read: it may hold more */
		} else {
			n = st->inner.ops->read(&st->inner, b + have, len - have);
			if (n <= 0)
				return n; /* the kept header stays in the decoder */
			more = vs_transport_read_more(&st->inner, (size_t)n, len - have);
		}
		ssize_t p = vs_ws_unframe(&st->dec, b, have + (size_t)n);
		if (p < 0) {
			send_close(st, st->dec.fail_code);
			return failf(st, VS_EPROTO, "WebSocket: %s (close %u)", st->dec.fail_why,
				     st->dec.fail_code);
		}
		answer_controls(st);
		if (st->dec.closed) {
			if (st->dec.close_code)
				snprintf(st->err, sizeof(st->err), "WebSocket closed by peer (%u)",
					 st->dec.close_code);
			else
				snprintf(st->err, sizeof(st->err), "WebSocket closed by peer");
			st->eof_next = p > 0;
			st->more = true;
			return p;
		}
		if (p > 0) {
			st->more = more;
			return p;
		}
		if (!more)
			return -EAGAIN;
	}
}

static bool ws_more(const struct vs_transport *t)
{
	const struct ws_state *st = t->state;
	return st->more || st->pre_off < st->pre_len || st->eof_next;
}

/* Builds the next frame from buf[0..len) into tx. */
static int build_frame(struct ws_state *st, const uint8_t *buf, size_t len)
{
	size_t n = len < FRAME_MAX ? len : FRAME_MAX;
	if (tx_reserve(st, n + VS_WS_MAX_HEADER) < 0)
		return -ENOMEM;
	size_t h = put_frame(st, st->tx, VS_WS_BINARY, buf, n);
	st->tx_hdr = h;
	st->tx_len = h + n;
	st->tx_off = 0;
	return 0;
}

static ssize_t ws_write(struct vs_transport *t, const void *buf, size_t len)
{
	struct ws_state *st = t->state;
	size_t taken = 0;
	for (;;) {
		if (st->tx_off == st->tx_len) {
			int rc = flush_control(st);
			if (rc < 0)
				return rc == -EAGAIN && taken ? (ssize_t)taken : rc;
			if (taken == len)
				return (ssize_t)taken;
			if (st->tx_off == st->tx_len &&
			    build_frame(st, (const uint8_t *)buf + taken, len - taken) < 0)
				return taken ? (ssize_t)taken : -ENOMEM;
		}
		size_t before = st->tx_off;
		ssize_t n = st->inner.ops->write(&st->inner, st->tx + before, st->tx_len - before);
		if (n < 0)
			return n == -EAGAIN && taken ? (ssize_t)taken : n;
		st->tx_off += (size_t)n;
		/* The caller's bytes are those past the header. */
		size_t p0 = before > st->tx_hdr ? before - st->tx_hdr : 0;
		size_t p1 = st->tx_off > st->tx_hdr ? st->tx_off - st->tx_hdr : 0;
		taken += p1 - p0;
		if (st->tx_off < st->tx_len)
			return taken ? (ssize_t)taken : -EAGAIN;
		st->tx_off = st->tx_len = st->tx_hdr = 0;
	}
}

static void ws_close(struct vs_transport *t)
{
	struct ws_state *st = t->state;
	if (st) {
		send_close(st, VS_WS_NORMAL); /* best effort: one try, never waiting */
		if (st->inner.ops)
			st->inner.ops->close(&st->inner);
		if (st->file_fd >= 0)
			close(st->file_fd);
		free(st->head);
		free(st->tx);
		free(st->pre);
		free(st->host);
		free(st->path);
		free(st);
	}
	t->state = NULL;
	t->fd = -1;
}

static void ws_shrink(struct vs_transport *t)
{
	struct ws_state *st = t->state;
	if (st->phase == PH_UP && st->tx_off == st->tx_len && !st->ctl_len) {
		free(st->tx);
		st->tx = NULL;
		st->tx_cap = st->tx_len = st->tx_off = 0;
	}
	vs_transport_shrink(&st->inner);
}

static const char *ws_why(const struct vs_transport *t)
{
	const struct ws_state *st = t->state;
	if (!st)
		return NULL;
	if (st->err[0])
		return st->err;
	const char *w = vs_transport_why(&st->inner);
	return *w ? w : NULL;
}

const char *vs_transport_ws_forwarded(const struct vs_transport *t)
{
	if (t->ops != &vs_transport_ws || !t->state)
		return NULL;
	const struct ws_state *st = t->state;
	return st->fwd[0] ? st->fwd : NULL;
}

const struct vs_transport *vs_transport_ws_inner(const struct vs_transport *t)
{
	if (t->ops != &vs_transport_ws || !t->state)
		return t;
	return &((const struct ws_state *)t->state)->inner;
}

const struct vs_transport_ops vs_transport_ws = {
    .name = "ws",
    .open = ws_open,
    .finish = ws_finish,
    .read = ws_read,
    .write = ws_write,
    .close = ws_close,
    .why = ws_why,
    .more = ws_more,
    .shrink = ws_shrink,
};
