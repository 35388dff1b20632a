/*
 * Mosquitto password files: one `user:hash` per line, hashes as Mosquitto 2.0 writes them:
 *
 *   $6$<base64 salt>$<base64 SHA-512(password || salt)>                 (Mosquitto <= 1.6)
 *   $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations, 64)>
 *
 * with a 12-byte salt, a 64-byte hash and standard base64 with padding (16 and 88 characters).
 * mosquitto_passwd 2.0 writes $7$ with 101 iterations unless told otherwise.
 *
 * Reading is stricter than Mosquitto, which logs and drops entries it cannot decode: here any
 * line that is not blank, a comment ('#' as first non-blank) or a well-formed `user:hash` fails
 * the whole load with "FILE:LINE: why", so a typo never locks a user out silently. A duplicate
 * user is an error too (Mosquitto keeps one of them, unspecified which).
 *
 * A loaded struct vs_passwd is immutable: any number of threads may call vs_passwd_check() on it
 * at once. Reloading means loading a new one and swapping the pointer (the broker's business).
 */
#ifndef VS_AUTH_PASSWD_H
#define VS_AUTH_PASSWD_H

#include <stddef.h>
#include <stdint.h>

#define VS_PASSWD_SALT_LEN   12
#define VS_PASSWD_HASH_LEN   64
#define VS_PASSWD_ITERATIONS 101   /* mosquitto_passwd's default for $7$ */
#define VS_PASSWD_USER_MAX   65535 /* an MQTT UTF-8 string */
/* Longest formatted hash: "$7$" + 10 digits + "$" + 16 + "$" + 88, plus NUL. */
#define VS_PASSWD_HASH_STRMAX 128

enum vs_passwd_type {
	VS_PASSWD_SHA512 = 6, /* "$6$": one SHA-512 over password then salt */
	VS_PASSWD_PBKDF2 = 7, /* "$7$": PBKDF2-HMAC-SHA512 */
};

/* One decoded hash. */
struct vs_passwd_hash {
	enum vs_passwd_type type;
	unsigned iterations; /* for VS_PASSWD_PBKDF2, >= 1; 0 for VS_PASSWD_SHA512 */
	uint8_t salt[VS_PASSWD_SALT_LEN];
	uint8_t hash[VS_PASSWD_HASH_LEN];
};

/* Hashes pw[0..pwlen) (any bytes, NULs included) into h. salt may be NULL for a fresh random
 * one (RAND_bytes). iterations is ignored for VS_PASSWD_SHA512 and must be >= 1 otherwise.
 * Returns 0, VS_ECONF for a bad type or iteration count, or VS_EPROTO if OpenSSL failed. */
int vs_passwd_hash_make(struct vs_passwd_hash *h, enum vs_passwd_type type, unsigned iterations,
			const uint8_t *salt, const uint8_t *pw, size_t pwlen);

/* Decodes s[0..len) ("$7$101$...$...") into h. Returns 0, or VS_EPROTO with *why (if non-NULL)
 * set to a static explanation. */
int vs_passwd_hash_parse(struct vs_passwd_hash *h, const char *s, size_t len, const char **why);

/* Writes h as text with a NUL into out. Returns the length (without the NUL) or VS_ETOOBIG when
 * outlen is too small (VS_PASSWD_HASH_STRMAX always suffices). */
int vs_passwd_hash_format(const struct vs_passwd_hash *h, char *out, size_t outlen);

/* Whether pw[0..pwlen) hashes to h: 1 yes, 0 no. The final comparison takes constant time. */
int vs_passwd_hash_verify(const struct vs_passwd_hash *h, const uint8_t *pw, size_t pwlen);

/* Whether user can be written to a password file: non-empty, at most VS_PASSWD_USER_MAX bytes,
 * no ':' (the separator), no '\n' or '\r', no NUL, and not starting with '#' or a blank. */
int vs_passwd_user_valid(const char *user);

struct vs_passwd;

/* Reads a password file. Returns a new table (free with vs_passwd_free), or NULL with a message
 * in err: "PATH: <strerror>" or "PATH:LINE: why". */
struct vs_passwd *vs_passwd_load(const char *path, char *err, size_t errlen);

/* The same from memory: text[0..len) named `name` in messages (tests, fuzzing). */
struct vs_passwd *vs_passwd_parse(const char *text, size_t len, const char *name, char *err,
				  size_t errlen);

/* Whether user (a NUL-terminated username) exists and pw[0..pwlen) is its password: 1 yes,
 * 0 no. pw == NULL means the client sent no password, which never matches (as Mosquitto); an
 * empty password (pw != NULL, pwlen 0) is hashed like any other. An unknown user costs the same
 * hashing work as a known one, so timing does not reveal which usernames exist. */
int vs_passwd_check(const struct vs_passwd *pf, const char *user, const uint8_t *pw, size_t pwlen);

/* Number of users in the table. */
size_t vs_passwd_count(const struct vs_passwd *pf);

void vs_passwd_free(struct vs_passwd *pf);

#endif
