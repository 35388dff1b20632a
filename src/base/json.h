/*
 * JSON (RFC 8259), small and strict: a writer that appends to a vs_bytes, and a reader for the
 * small request bodies of the HTTP API.
 *
 * No Debian JSON library is a dependency, and the API needs little: the writer escapes strings
 * (invalid UTF-8 becomes U+FFFD, so any bytes make valid JSON) and formats numbers; the reader
 * is shaped like picohttpparser and jsmn: no allocation, no global state, the caller gives an
 * array of tokens, each a view into the input. Strings are checked (escapes, UTF-8, no control
 * characters) at parse time, so vs_json_unescape() of a parsed string cannot fail but for room.
 *
 * Writer: every call takes the key of the member it writes inside an object (NULL in an array
 * or at the top); commas are placed by the writer. An allocation failure is kept in j->err and
 * makes later calls do nothing.
 */
#ifndef VS_BASE_JSON_H
#define VS_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"

#define VS_JSON_MAX_DEPTH 16

struct vs_json {
	struct vs_bytes *out;
	int err;			  /* 0, or -ENOMEM / VS_ETOOBIG (nested too deep) */
	int depth;			  /* open objects and arrays */
	bool more[VS_JSON_MAX_DEPTH + 1]; /* a member was written at this depth: comma next */
};

void vs_json_init(struct vs_json *j, struct vs_bytes *out);
void vs_json_obj(struct vs_json *j, const char *key);
void vs_json_obj_end(struct vs_json *j);
void vs_json_arr(struct vs_json *j, const char *key);
void vs_json_arr_end(struct vs_json *j);
/* s[0..len) as a string (escaped; invalid UTF-8 as U+FFFD). */
void vs_json_str(struct vs_json *j, const char *key, const char *s, size_t len);
/* A NUL-terminated string, or null when s is NULL. */
void vs_json_cstr(struct vs_json *j, const char *key, const char *s);
void vs_json_u64(struct vs_json *j, const char *key, uint64_t v);
void vs_json_i64(struct vs_json *j, const char *key, int64_t v);
/* A finite double (%.6g); NaN and infinities are written as null. */
void vs_json_double(struct vs_json *j, const char *key, double v);
void vs_json_bool(struct vs_json *j, const char *key, bool v);
void vs_json_null(struct vs_json *j, const char *key);

/* ---- reader ---------------------------------------------------------------------------- */

enum vs_json_type {
	VS_JSON_NULL,
	VS_JSON_FALSE,
	VS_JSON_TRUE,
	VS_JSON_NUMBER,
	VS_JSON_STRING, /* start/end: between the quotes, still escaped */
	VS_JSON_ARRAY,
	VS_JSON_OBJECT, /* children: key (a STRING), value, key, value, ... */
};

struct vs_json_tok {
	uint8_t type;	/* enum vs_json_type */
	uint32_t start; /* offsets into the input */
	uint32_t end;
	uint32_t size; /* ARRAY: elements; OBJECT: members */
	uint32_t next; /* index of the token after this one's subtree */
};

/*
 * Parses one JSON value (with whitespace around it) from buf[0..len) into toks, depth first.
 * Returns the number of tokens (toks[0] is the value), VS_EPROTO when buf is not exactly one
 * valid JSON text (or nests deeper than VS_JSON_MAX_DEPTH), VS_ETOOBIG when it needs more than
 * cap tokens or len is 4 GiB or more. Reads nothing past buf + len.
 */
int vs_json_parse(const char *buf, size_t len, struct vs_json_tok *toks, size_t cap);

/* The index of the value of member key in the object toks[obj], or -1 (not an object, or no
 * such member; the first one when the key repeats). Keys are compared unescaped. */
int vs_json_get(const char *buf, const struct vs_json_tok *toks, int obj, const char *key);

/* Unescapes the string toks[i] into out (cap bytes, NUL added). Returns its length (it may hold
 * NULs from \u0000), VS_EPROTO if toks[i] is not a string, VS_ETOOBIG without room. */
ssize_t vs_json_unescape(const char *buf, const struct vs_json_tok *t, char *out, size_t cap);

/* The number toks[i] as an unsigned integer: VS_EPROTO unless it is a whole number written
 * without fraction or exponent and at most max. */
int vs_json_uint(const char *buf, const struct vs_json_tok *t, uint64_t max, uint64_t *out);

#endif
