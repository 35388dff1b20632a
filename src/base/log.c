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

void vs_logv(const struct vs_log *log, unsigned type, const char *fmt, va_list ap)
{
	if (!vs_log_enabled(log, type))
		return;
	char line[2048];
	size_t n = 0;
	if (log->timestamps)
		n = log->mosquitto ? format_mosquitto_time(log, line, sizeof(line))
				   : format_time(log, line, sizeof(line));
	size_t body = n;
	if (!log->mosquitto)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s: ", type_name(type));
	if (n < sizeof(line)) {
		int k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		n = k < 0 ? n : n + (size_t)k;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	if (log->dests & VS_LOGD_STDERR)
		write_all(2, line, n);
	if (log->dests & VS_LOGD_STDOUT)
		write_all(1, line, n);
	if ((log->dests & VS_LOGD_FILE) && log->fd >= 0)
		write_all(log->fd, line, n);
	if (log->dests & VS_LOGD_SYSLOG)
		syslog(log->facility | syslog_priority(type), "%s", line + body);
}

void vs_log(const struct vs_log *log, unsigned type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vs_logv(log, type, fmt, ap);
	va_end(ap);
}
