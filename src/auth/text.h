/*
 * Text files for the authentication layer: the password file and the ACL file are read whole
 * into memory and walked line by line. Both parsers share this so they agree on what a line is:
 * '\n' ends a line, a '\r' before it is dropped (files edited on Windows), and the last line
 * needs no '\n'. A NUL byte inside a line is reported by the parsers, not silently cut.
 */
#ifndef VS_AUTH_TEXT_H
#define VS_AUTH_TEXT_H

#include <stdarg.h>
#include <stddef.h>

/* Largest file either parser reads: far beyond any real password or ACL file, small enough that
 * a wrong path (a log, a device) fails quickly instead of filling memory. */
#define VS_AUTH_FILE_MAX (64u << 20)

/* Reads path into a heap buffer with a NUL after the last byte. Returns 0 and sets *out (owned
 * by the caller) and *len, or -errno (-EFBIG beyond VS_AUTH_FILE_MAX). */
int vs_auth_read_file(const char *path, char **out, size_t *len);

/* A cursor over the lines of text[0..len). */
struct vs_auth_lines {
	const char *p;	 /* next unread byte */
	const char *end; /* one past the last byte */
	unsigned lineno; /* number of the line last returned, from 1 */
};

void vs_auth_lines_init(struct vs_auth_lines *it, const char *text, size_t len);
/* Returns 1 and the next line as [*s, *s + *n) without its "\n" or "\r\n", or 0 at the end. */
int vs_auth_lines_next(struct vs_auth_lines *it, const char **s, size_t *n);

/* Trims blanks (space, tab) from both ends of [*s, *s + *n). */
void vs_auth_trim(const char **s, size_t *n);

/*
 * Calls fn(ctx, line, n, lineno) for every line of text[0..len) that is not blank and not a
 * comment ('#' as its first non-blank character). Stops at the first non-zero return: VS_ECONF
 * (fn wrote err), or -ENOMEM ("NAME:LINE: out of memory" is written here). Returns 0 or that.
 */
int vs_auth_each_line(const char *text, size_t len, const char *name,
		      int (*fn)(void *ctx, const char *s, size_t n, unsigned lineno), void *ctx,
		      char *err, size_t errlen);

/* Reads the file at path and returns parse(text, len, path, err, errlen); the text is wiped
 * (it may hold secrets) and freed afterwards. A file that cannot be read gives NULL with
 * "PATH: why" in err. */
void *vs_auth_load(const char *path,
		   void *(*parse)(const char *text, size_t len, const char *name, char *err,
				  size_t errlen),
		   char *err, size_t errlen);

/* Writes "NAME:LINE: message" into err (when err is non-NULL); always returns VS_ECONF. */
int vs_auth_err(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
