/*
 * Mosquitto's psk_file: the pre-shared keys of TLS-PSK listeners, one `identity:key` per line,
 * the key in hexadecimal (as mosquitto_pub's --psk takes it). Blank lines and lines whose first
 * non-blank character is '#' are ignored; blanks around the identity and the key are trimmed.
 *
 * Stricter than Mosquitto, as the password file is: a line that is not a well-formed
 * `identity:hexkey`, an identity given twice, an identity or a key too long for TLS
 * (PSK_MAX_IDENTITY_LEN, PSK_MAX_PSK_LEN) fails the whole load with "FILE:LINE: why".
 *
 * A loaded table is immutable: any number of threads may look keys up at once.
 */
#ifndef VS_AUTH_PSK_H
#define VS_AUTH_PSK_H

#include <stddef.h>
#include <stdint.h>

#define VS_PSK_IDENTITY_MAX 127 /* bytes, without the NUL (OpenSSL's buffer is 128) */
#define VS_PSK_KEY_MAX	    256 /* bytes (OpenSSL's PSK_MAX_PSK_LEN is 512) */

struct vs_psk;

/* Reads a PSK file. Returns a new table (free with vs_psk_free), or NULL with "PATH: why" or
 * "PATH:LINE: why" in err. */
struct vs_psk *vs_psk_load(const char *path, char *err, size_t errlen);
/* The same from memory: text[0..len) named `name` in messages (tests, fuzzing). */
struct vs_psk *vs_psk_parse(const char *text, size_t len, const char *name, char *err,
			    size_t errlen);

/* Copies identity's key (NUL-terminated identity) into key[0..cap). Returns its length, or 0
 * when the identity is unknown or the key does not fit. */
size_t vs_psk_find(const struct vs_psk *t, const char *identity, uint8_t *key, size_t cap);
size_t vs_psk_count(const struct vs_psk *t);
/* Frees t, wiping the keys; NULL is a no-op. */
void vs_psk_free(struct vs_psk *t);

#endif
