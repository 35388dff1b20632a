/*
 * Mosquitto password files: one `user:hash` per line, hashes as Mosquitto writes them, plus the
 * SCRAM credentials that MQTT 5.0 enhanced authentication needs:
 *
 *   $6$<base64 salt>$<base64 SHA-512(password || salt)>                 (Mosquitto <= 1.6)
 *   $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations, 64)>
 *   $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>            (Mosquitto 2.1)
 *   $scram-sha-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
 *
 * $6$ and $7$: standard base64 with padding, a 12-byte salt (Mosquitto 2.0, which reads no
 * other) or a 64-byte one (Mosquitto 2.1), and a 64-byte hash. mosquitto_passwd 2.0 writes $7$
 * with 101 iterations unless told otherwise; so does `viesti passwd`.
 * $argon2id$: libargon2's encoded string (unpadded base64), version 19 only; Mosquitto 2.1
 * writes m=47104 (46 MiB), t=1, p=1 with a 64-byte salt and a 64-byte hash. argon2i and argon2d
 * are refused: Mosquitto reads neither.
 * $scram-sha-256$: RFC 5803's layout (as PostgreSQL stores it), the credentials of RFC 5802
 * section 3 for SCRAM-SHA-256 (auth/scram.h); at least 4096 iterations (RFC 7677 section 4).
 * Such a line also checks a plain CONNECT password (PBKDF2 -> ClientKey -> StoredKey), so one
 * line serves both kinds of client. Mosquitto does not read it.
 *
 * Reading is stricter than Mosquitto, which logs and drops entries it cannot decode: here any
 * line that is not blank, a comment ('#' as first non-blank) or a well-formed `user:hash` fails
 * the whole load with "FILE:LINE: why", so a typo never locks a user out silently. A duplicate
 * user is an error too (Mosquitto keeps one of them, unspecified which).
 *
 * A loaded struct vs_passwd is immutable: any number of threads may call vs_passwd_check() and
 * vs_passwd_scram_lookup() on it at once. Reloading means loading a new one and swapping the
 * pointer (the broker's business). Checks are slow on purpose (an argon2id check with
 * Mosquitto's parameters takes tens of milliseconds and 46 MiB): call them off event loops.
 */
#ifndef VS_AUTH_PASSWD_H
#define VS_AUTH_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/scram.h"

#define VS_PASSWD_SALT_LEN   12 /* the $6$/$7$ salt we write: Mosquitto 2.0 reads no other */
#define VS_PASSWD_SALT_LONG  64 /* Mosquitto 2.1's salt for $6$, $7$ and $argon2id$ */
#define VS_PASSWD_SALT_MAX   64
#define VS_PASSWD_HASH_LEN   64	   /* SHA-512; Mosquitto's argon2id tag; StoredKey + ServerKey */
#define VS_PASSWD_ITERATIONS 101   /* mosquitto_passwd 2.0's default for $7$ */
#define VS_PASSWD_ARGON2_T   1	   /* Mosquitto 2.1's argon2id parameters */
#define VS_PASSWD_ARGON2_M   47104 /* KiB */
#define VS_PASSWD_ARGON2_P   1
#define VS_PASSWD_ARGON2_MMAX                                                                      \
	4194304 /* KiB (4 GiB): more is a typo that would fail every check                         \
		 */
#define VS_PASSWD_ARGON2_PMAX 255
#define VS_PASSWD_USER_MAX    65535 /* an MQTT UTF-8 string */
/* Longest formatted hash (argon2id with 64-byte salt and tag and the largest parameters: 230),
 * plus NUL. */
#define VS_PASSWD_HASH_STRMAX 256

enum vs_passwd_type {
	VS_PASSWD_SHA512 = 6,	/* "$6$": one SHA-512 over password then salt */
	VS_PASSWD_PBKDF2 = 7,	/* "$7$": PBKDF2-HMAC-SHA512 */
	VS_PASSWD_ARGON2ID = 8, /* "$argon2id$" */
	VS_PASSWD_SCRAM = 9,	/* "$scram-sha-256$": SCRAM-SHA-256 StoredKey and ServerKey */
};

/* One decoded hash. */
struct vs_passwd_hash {
	enum vs_passwd_type type;
	unsigned iterations; /* $7$ and SCRAM: PBKDF2 iterations (>= 1); argon2id: t; $6$: 0 */
	uint32_t memory_kib; /* argon2id: m; else 0 */
	uint32_t lanes;	     /* argon2id: p; else 0 */
	uint8_t salt_len;    /* $6$/$7$: 12 or 64; argon2id: 8..64; SCRAM: 1..64 */
	uint8_t hash_len;    /* argon2id: 16..64; else 64 (SCRAM: StoredKey then ServerKey) */
	uint8_t salt[VS_PASSWD_SALT_MAX];
	uint8_t hash[VS_PASSWD_HASH_LEN];
};

/* Sets h's parameters for a new hash of `type` as `viesti passwd` writes it: iterations (0 for
 * the type's default: 101 for $7$, 4096 for SCRAM, Mosquitto's t=1 for argon2id; ignored for
 * $6$), the salt length (12 for $6$/$7$, 64 for argon2id, 16 for SCRAM), argon2id's m and p.
 * The caller may change them before vs_passwd_hash_make(). Returns 0, or VS_ECONF for a bad
 * type or an iteration count out of range (SCRAM needs at least 4096). */
int vs_passwd_hash_init(struct vs_passwd_hash *h, enum vs_passwd_type type, unsigned iterations);

/* Hashes pw[0..pwlen) (any bytes, NULs included) into h->hash with h's parameters, after
 * drawing a fresh random salt (RAND_bytes) when new_salt. Returns 0, VS_ECONF for parameters
 * out of range, or VS_EPROTO if OpenSSL or libargon2 failed (as for memory). */
int vs_passwd_hash_make(struct vs_passwd_hash *h, bool new_salt, const uint8_t *pw, size_t pwlen);

/* Decodes s[0..len) ("$7$101$...$...") into h. Returns 0, or VS_EPROTO with *why (if non-NULL)
 * set to a static explanation. */
int vs_passwd_hash_parse(struct vs_passwd_hash *h, const char *s, size_t len, const char **why);

/* Whether s[0..len) starts like a hash ("$6$", "$7$", "$argon2", "$scram-sha-256$"), however
 * damaged the rest: such a value is never a plain-text password to be hashed (-U). */
bool vs_passwd_hash_like(const char *s, size_t len);

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

/*
 * The SCRAM-SHA-256 credentials of user (NUL-terminated) for the server side of the exchange
 * (auth/scram.h, step 3), into cred. Returns 1 when they are the user's own ($scram-sha-256$
 * entry), 0 when they are a stand-in: for a user who does not exist, or whose entry is another
 * kind of hash (which cannot answer SCRAM). Either way the exchange goes on, and a stand-in
 * fails at the proof (VS_EAUTH), as a wrong password does: the broker must treat 1 and 0 alike
 * until then. A stand-in is deterministic per file content and user name (its salt and keys are
 * HMAC-SHA-256 of the name under a key hashed from the file's text, which holds secrets), with
 * the iteration count and salt length of the file's last SCRAM entry (4096 and 16 without one),
 * so asking twice gives the same salt and the server-first-message does not tell a missing user
 * from a real one. What it cannot hide: after the file changes, every stand-in's salt changes
 * while unchanged users keep theirs. pf must not be NULL.
 */
int vs_passwd_scram_lookup(const struct vs_passwd *pf, const char *user,
			   struct vs_scram_cred *cred);

/* Number of users in the table. */
size_t vs_passwd_count(const struct vs_passwd *pf);

void vs_passwd_free(struct vs_passwd *pf);

#endif
