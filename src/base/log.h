/*
 * Logging. A struct vs_log is owned by whoever starts the program (the broker, a CLI tool) and
 * passed down; there is no process-wide logger. Writing is thread-safe: one line is formatted
 * into a stack buffer and written with one write(2) (or syslog(3)), so lines from different
 * threads never interleave.
 *
 * Types follow Mosquitto's log_type names so its configuration carries over.
 */
#ifndef VS_BASE_LOG_H
#define VS_BASE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum vs_log_type {
	VS_LOG_ERR = 1 << 0,
	VS_LOG_WARN = 1 << 1,
	VS_LOG_NOTICE = 1 << 2,
	VS_LOG_INFO = 1 << 3,
	VS_LOG_DEBUG = 1 << 4,
	VS_LOG_SUBSCRIBE = 1 << 5,
	VS_LOG_UNSUBSCRIBE = 1 << 6,
	VS_LOG_WEBSOCKETS = 1 << 7,
	VS_LOG_ALL = 0xff,
};

enum vs_log_dest {
	VS_LOGD_STDERR = 1 << 0,
	VS_LOGD_STDOUT = 1 << 1,
	VS_LOGD_FILE = 1 << 2,
	VS_LOGD_SYSLOG = 1 << 3,
	VS_LOGD_NONE = 0,
};

struct vs_log {
	unsigned types;	       /* enum vs_log_type mask of what is written */
	unsigned dests;	       /* enum vs_log_dest mask */
	int fd;		       /* for VS_LOGD_FILE, -1 otherwise */
	bool timestamps;       /* prefix lines with an ISO-8601 UTC time */
	char *file_path;       /* for VS_LOGD_FILE (owned), reopened by vs_log_reopen() */
	const char *ts_format; /* strftime(3) format of the timestamp, in local time (Mosquitto's
				* log_timestamp_format); not owned, must outlive the log. NULL =
				* ISO-8601 UTC with milliseconds */
	int facility;	/* syslog(3) facility (LOG_DAEMON, LOG_LOCAL0..7) of VS_LOGD_SYSLOG */
	bool mosquitto; /* Mosquitto's line format (log_format mosquitto): "SECONDS: message"
			 * (or "<ts_format>: message"), no type name; Viesti's otherwise:
			 * "<ISO-8601> type: message" */
};

/* Defaults: errors, warnings, notices and info to stderr with timestamps; syslog facility
 * LOG_DAEMON. */
void vs_log_init(struct vs_log *log);
/* Closes the file and frees the path. */
void vs_log_fini(struct vs_log *log);
/* Opens (or reopens, after log rotation) log->file_path for appending, in place of the open
 * descriptor (threads may be logging meanwhile). Returns 0 or -errno. */
int vs_log_reopen(struct vs_log *log);
/* A reload: log takes next's types, destinations, timestamps and file (reopened when its path
 * changed). Other threads may log meanwhile. Returns 0 or -errno (the file cannot be opened). */
int vs_log_apply(struct vs_log *log, const struct vs_log *next);

/* Writes one line when type is enabled. A NULL log writes nothing. */
void vs_log(const struct vs_log *log, unsigned type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vs_logv(const struct vs_log *log, unsigned type, const char *fmt, va_list ap);

/* Whether a line of this type would be written: skip expensive formatting when not. */
static inline bool vs_log_enabled(const struct vs_log *log, unsigned type)
{
	return log && (log->types & type) && log->dests;
}

#endif
