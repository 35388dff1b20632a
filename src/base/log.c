/*
 * Logging: see log.h. Each line is formatted once into a stack buffer and handed to each
 * destination with a single write, so concurrent writers never interleave within a line.
 */
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

void vs_log_init(struct vs_log *log)
{
	memset(log, 0, sizeof(*log));
	log->types = VS_LOG_ERR | VS_LOG_WARN | VS_LOG_NOTICE | VS_LOG_INFO;
	log->dests = VS_LOGD_STDERR;
	log->fd = -1;
	log->timestamps = true;
	log->facility = LOG_DAEMON;
}

void vs_log_fini(struct vs_log *log)
{
	if (log->fd >= 0)
		close(log->fd);
	log->fd = -1;
	free(log->file_path);
	log->file_path = NULL;
}

int vs_log_reopen(struct vs_log *log)
{
	if (!log->file_path)
		return 0;
	int fd = open(log->file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (log->fd < 0) {
		__atomic_store_n(&log->fd, fd, __ATOMIC_RELEASE);
		return 0;
	}
	/* In place: a thread writing a line meanwhile writes to the old file or the new one,
	 * never to a closed (or reused) descriptor. */
	int rc = dup3(fd, log->fd, O_CLOEXEC) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int vs_log_apply(struct vs_log *log, const struct vs_log *next)
{
	__atomic_store_n(&log->types, next->types, __ATOMIC_RELAXED);
	__atomic_store_n(&log->timestamps, next->timestamps, __ATOMIC_RELAXED);
	bool same = (!log->file_path && !next->file_path) ||
		    (log->file_path && next->file_path && !strcmp(log->file_path, next->file_path));
	int rc = 0;
	if (!same) {
		char *path = next->file_path ? strdup(next->file_path) : NULL;
		if (next->file_path && !path)
			return -ENOMEM;
		free(log->file_path);
		log->file_path = path;
		rc = vs_log_reopen(log);
	}
	__atomic_store_n(&log->dests, next->dests, __ATOMIC_RELAXED);
	return rc;
}

static const char *type_name(unsigned type)
{
	switch (type) {
	case VS_LOG_ERR:
		return "error";
	case VS_LOG_WARN:
		return "warning";
	case VS_LOG_NOTICE:
		return "notice";
	case VS_LOG_DEBUG:
		return "debug";
	case VS_LOG_SUBSCRIBE:
		return "subscribe";
	case VS_LOG_UNSUBSCRIBE:
		return "unsubscribe";
	case VS_LOG_WEBSOCKETS:
		return "websockets";
	default:
		return "info";
	}
}

static int syslog_priority(unsigned type)
{
	switch (type) {
	case VS_LOG_ERR:
		return LOG_ERR;
	case VS_LOG_WARN:
		return LOG_WARNING;
	case VS_LOG_NOTICE:
		return LOG_NOTICE;
	case VS_LOG_DEBUG:
		return LOG_DEBUG;
	default:
		return LOG_INFO;
	}
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* The timestamp and a space: log->ts_format in local time (as Mosquitto formats
 * log_timestamp_format), or ISO-8601 UTC with milliseconds. Returns its length. */
static size_t format_time(const struct vs_log *log, char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (log->ts_format) {
		localtime_r(&ts.tv_sec, &tm);
		size_t n = strftime(out, cap - 1, log->ts_format, &tm);
		out[n++] = ' '; /* strftime() gives 0 for an empty or too long result */
		return n;
	}
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	return n + (size_t)snprintf(out + n, cap - n, ".%03ldZ ", ts.tv_nsec / 1000000);
}

/* Mosquitto's prefix (its logging.c): the Unix time, or log_timestamp_format's local time, then
 * ": ". Returns its length. */
static size_t format_mosquitto_time(const struct vs_log *log, char *out, size_t cap)
{
	time_t now = time(NULL);
	size_t n;
	if (log->ts_format) {
		struct tm tm;
		localtime_r(&now, &tm);
		n = strftime(out, cap - 3, log->ts_format, &tm);
		if (n == 0)
			n = (size_t)snprintf(out, cap, "Time error");
	} else {
		n = (size_t)snprintf(out, cap, "%lld", (long long)now);
	}
	out[n++] = ':';
	out[n++] = ' ';
	return n;
}

const char *vs_log_topic_suffix(unsigned type)
{
	switch (type) {
	case VS_LOG_ERR:
		return "E";
	case VS_LOG_WARN:
		return "W";
	case VS_LOG_NOTICE:
		return "N";
	case VS_LOG_INFO:
		return "I";
	case VS_LOG_SUBSCRIBE:
		return "M/subscribe";
	case VS_LOG_UNSUBSCRIBE:
		return "M/unsubscribe";
	case VS_LOG_WEBSOCKETS:
		return "WS";
	case VS_LOG_DEBUG:
		return "D";
	default:
		return "E"; /* as Mosquitto, for a type it does not name */
	}
}

/* Length of the well-formed UTF-8 sequence at s (of n bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 0; /* overlong, a surrogate, or past U+10FFFF */
	return len;
}

/*
 * Appends s (n bytes) to out[*at..cap) as the inside of a JSON string: quotes, backslashes and
 * control characters escaped, a byte that is not well-formed UTF-8 written as U+FFFD. Stops
 * short rather than cut an escape when out is full (leaving room for the line's end).
 */
static void json_str(char *out, size_t *at, size_t cap, const char *s, size_t n)
{
	size_t o = *at;
	for (size_t i = 0; i < n;) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];
		const char *w = esc;
		size_t wl, step = 1;
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\', esc[1] = (char)ch, wl = 2;
		} else if (ch == '\n' || ch == '\t' || ch == '\r') {
			esc[0] = '\\', esc[1] = ch == '\n' ? 'n' : ch == '\t' ? 't' : 'r', wl = 2;
		} else if (ch < 0x20 || ch == 0x7f) {
			wl = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", ch);
		} else if (ch < 0x80) {
			esc[0] = (char)ch, wl = 1;
		} else if ((step = utf8_len((const unsigned char *)s + i, n - i)) > 0) {
			w = s + i, wl = step;
		} else {
			w = "\\ufffd", wl = 6, step = 1;
		}
		if (o + wl + 8 > cap)
			break;
		memcpy(out + o, w, wl);
		o += wl;
		i += step;
	}
	*at = o;
}

/* log_format json: {"time":"...","level":"...","message":"...","client_id":"..."} and a
 * newline into out (cap bytes). Returns its length. */
static size_t format_json(const struct vs_log *log, unsigned type, const char *client_id,
			  const char *msg, size_t mlen, char *out, size_t cap)
{
	size_t n = 0;
	out[n++] = '{';
	if (log->timestamps) {
		char ts[64];
		struct vs_log iso = *log;
		iso.ts_format = NULL; /* always ISO-8601 UTC: what log shippers parse */
		size_t tl = format_time(&iso, ts, sizeof(ts)) - 1;
		n += (size_t)snprintf(out + n, cap - n, "\"time\":\"%.*s\",", (int)tl, ts);
	}
	n += (size_t)snprintf(out + n, cap - n, "\"level\":\"%s\",\"message\":\"", type_name(type));
	json_str(out, &n, cap - 48 - (client_id ? 64 : 0), msg, mlen);
	out[n++] = '"';
	if (client_id) {
		memcpy(out + n, ",\"client_id\":\"", 14);
		n += 14;
		json_str(out, &n, cap, client_id, strlen(client_id));
		out[n++] = '"';
	}
	out[n++] = '}';
	out[n++] = '\n';
	return n;
}

/* VS_LOGD_TOPIC: Mosquitto's text ("SECONDS: message"), never for debug lines (as Mosquitto,
 * which would otherwise publish a line about every PUBLISH of its own log lines). */
static void to_topic(const struct vs_log *log, unsigned type, const char *msg, size_t mlen)
{
	if (type == VS_LOG_DEBUG || !log->topic_sink)
		return;
	char text[2100];
	size_t n = 0;
	if (log->timestamps)
		n = (size_t)snprintf(text, sizeof(text), "%lld: ", (long long)time(NULL));
	if (mlen > sizeof(text) - n)
		mlen = sizeof(text) - n;
	memcpy(text + n, msg, mlen);
	log->topic_sink(log->topic_ud, type, text, n + mlen);
}

/* The line in the chosen text format (viesti or mosquitto), newline-terminated. Sets *body to
 * where the part after the timestamp begins (what syslog(3) gets). Returns its length. */
static size_t format_text(const struct vs_log *log, unsigned type, const char *msg, size_t mlen,
			  char *line, size_t cap, size_t *body)
{
	size_t n = 0;
	if (log->timestamps)
		n = log->mosquitto ? format_mosquitto_time(log, line, cap)
				   : format_time(log, line, cap);
	*body = n;
	if (!log->mosquitto)
		n += (size_t)snprintf(line + n, cap - n, "%s: ", type_name(type));
	if (mlen > cap - 2 - n)
		mlen = cap - 2 - n;
	memcpy(line + n, msg, mlen);
	n += mlen;
	line[n++] = '\n';
	line[n] = '\0';
	return n;
}

void vs_logcv(const struct vs_log *log, unsigned type, const char *client_id, const char *fmt,
	      va_list ap)
{
	if (!vs_log_enabled(log, type))
		return;
	char msg[2048];
	int k = vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t mlen = k < 0 ? 0 : (size_t)k < sizeof(msg) ? (size_t)k : sizeof(msg) - 1;
	unsigned dests = __atomic_load_n(&log->dests, __ATOMIC_RELAXED);
	char line[2048 * 6 + 256]; /* a message escaped to JSON may grow up to six times */
	size_t body = 0, n;
	if (log->json)
		n = format_json(log, type, client_id, msg, mlen, line, sizeof(line));
	else
		n = format_text(log, type, msg, mlen, line, 2048, &body); /* as before json */
	if (dests & VS_LOGD_STDERR)
		write_all(2, line, n);
	if (dests & VS_LOGD_STDOUT)
		write_all(1, line, n);
	if ((dests & VS_LOGD_FILE) && log->fd >= 0)
		write_all(log->fd, line, n);
	if (dests & VS_LOGD_SYSLOG)
		syslog(log->facility | syslog_priority(type), "%.*s", (int)(n - 1 - body),
		       line + body);
	if (dests & VS_LOGD_TOPIC)
		to_topic(log, type, msg, mlen);
}

void vs_logv(const struct vs_log *log, unsigned type, const char *fmt, va_list ap)
{
	vs_logcv(log, type, NULL, fmt, ap);
}

void vs_log(const struct vs_log *log, unsigned type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vs_logv(log, type, fmt, ap);
	va_end(ap);
}

void vs_logc(const struct vs_log *log, unsigned type, const char *client_id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vs_logcv(log, type, client_id, fmt, ap);
	va_end(ap);
}
