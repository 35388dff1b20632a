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
	if (log->fd >= 0)
		close(log->fd);
	log->fd = fd;
	return 0;
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

void vs_logv(const struct vs_log *log, unsigned type, const char *fmt, va_list ap)
{
	if (!vs_log_enabled(log, type))
		return;
	char line[2048];
	size_t n = 0;
	if (log->timestamps) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ", ts.tv_nsec / 1000000);
	}
	size_t body = n;
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
		syslog(syslog_priority(type), "%s", line + body);
}

void vs_log(const struct vs_log *log, unsigned type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vs_logv(log, type, fmt, ap);
	va_end(ap);
}
