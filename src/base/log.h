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
#include <stddef.h>

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
	VS_LOGD_TOPIC = 1 << 4, /* handed to topic_sink (the broker publishes it under $SYS) */
	VS_LOGD_NONE = 0,
};

/*
 * Where VS_LOGD_TOPIC lines go: called on the logging thread with the line's type and its text
 * as Mosquitto publishes it ("SECONDS: message", or the bare message without timestamps). It
 * must not log, block or call back into the broker: it copies the line and returns.
 */
typedef void vs_log_sink_fn(void *ud, unsigned type, const char *text, size_t len);

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
	bool json;	/* log_format json: one JSON object per line (time, level, message and
			 * client_id when known); wins over mosquitto */
	vs_log_sink_fn *topic_sink; /* for VS_LOGD_TOPIC, or NULL (the line is dropped) */
	void *topic_ud;
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
/* The same, about one client: client_id (may be NULL) becomes the JSON line's "client_id"
 * field; the other formats show only the message. */
void vs_logc(const struct vs_log *log, unsigned type, const char *client_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void vs_logcv(const struct vs_log *log, unsigned type, const char *client_id, const char *fmt,
	      va_list ap);
/* Mosquitto's name for type as a $SYS/broker/log/ suffix ("E", "W", "N", "I", "M/subscribe",
 * "M/unsubscribe", "WS", "D"). */
const char *vs_log_topic_suffix(unsigned type);

/* Whether a line of this type would be written: skip expensive formatting when not. */
static inline bool vs_log_enabled(const struct vs_log *log, unsigned type)
{
	return log && (log->types & type) && log->dests;
}

#endif
