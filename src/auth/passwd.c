/*
 * Mosquitto-compatible password files (see passwd.h for the formats and the contracts).
 *
 * The table is a vs_map from username to a decoded struct vs_passwd_hash, built once by the
 * loader and never changed afterwards, which is what makes concurrent checks safe without a lock.
 * Each kind of hash has its own small parser; all of them decode base64 strictly (base/base64.h)
 * so that a damaged line is reported instead of locking its user out. argon2id is computed with
 * libargon2's raw function and compared here, in constant time, rather than with argon2_verify():
 * the parameters are then ours to check when loading, and the stand-in check for unknown users
 * runs the very same function.
 */
#include "auth/passwd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/text.h"
#include "base/base64.h"
#include "base/error.h"
#include "base/map.h"

struct vs_passwd {
	struct vs_map users;	     /* username -> struct vs_passwd_hash * (owned) */
	struct vs_passwd_hash dummy; /* hashed against for unknown users: same cost, no answer */
	unsigned scram_iterations;   /* of the last SCRAM entry, for stand-in credentials */
	uint8_t scram_salt_len;
	uint8_t standin_key[32]; /* SHA-256 of the file's text: keys the stand-ins */
};

/* ---- hashing ---- */

static int digest_sha512(const struct vs_passwd_hash *h, const uint8_t *pw, size_t pwlen,
			 uint8_t out[VS_PASSWD_HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned n = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) &&
		 EVP_DigestUpdate(ctx, pw, pwlen) && EVP_DigestUpdate(ctx, h->salt, h->salt_len) &&
		 EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
	return ok && n == VS_PASSWD_HASH_LEN ? 0 : VS_EPROTO;
}

static int digest_pbkdf2(const struct vs_passwd_hash *h, const char *pw, size_t pwlen,
			 uint8_t out[VS_PASSWD_HASH_LEN])
{
	if (!PKCS5_PBKDF2_HMAC(pw, (int)pwlen, h->salt, h->salt_len, (int)h->iterations,
			       EVP_sha512(), VS_PASSWD_HASH_LEN, out))
		return VS_EPROTO;
	return 0;
}

/* argon2id, version 19, raw: the tag libargon2's encoded string carries after the salt. */
static int digest_argon2id(const struct vs_passwd_hash *h, const char *pw, size_t pwlen,
			   uint8_t out[VS_PASSWD_HASH_LEN])
{
	int rc = argon2id_hash_raw(h->iterations, h->memory_kib, h->lanes, pw, pwlen, h->salt,
				   h->salt_len, out, h->hash_len);
	return rc == ARGON2_OK ? 0 : VS_EPROTO;
}

static void scram_cred_of(const struct vs_passwd_hash *h, struct vs_scram_cred *c)
{
	c->iterations = h->iterations;
	c->salt_len = h->salt_len;
	memcpy(c->salt, h->salt, h->salt_len);
	memcpy(c->stored_key, h->hash, VS_SCRAM_KEY_LEN);
	memcpy(c->server_key, h->hash + VS_SCRAM_KEY_LEN, VS_SCRAM_KEY_LEN);
}

/* h->hash for pw with h's parameters, into out. */
static int digest(const struct vs_passwd_hash *h, const uint8_t *pw, size_t pwlen,
		  uint8_t out[VS_PASSWD_HASH_LEN])
{
	/* OpenSSL and libargon2 want a non-NULL pointer even for an empty password. */
	const char *p = pw ? (const char *)pw : "";
	if (pwlen > INT_MAX)
		return VS_ETOOBIG;
	switch (h->type) {
	case VS_PASSWD_SHA512:
		return digest_sha512(h, (const uint8_t *)p, pwlen, out);
	case VS_PASSWD_PBKDF2:
		return digest_pbkdf2(h, p, pwlen, out);
	case VS_PASSWD_ARGON2ID:
		return digest_argon2id(h, p, pwlen, out);
	case VS_PASSWD_SCRAM: {
		struct vs_scram_cred c;
		scram_cred_of(h, &c);
		int rc = vs_scram_cred_make(&c, (const uint8_t *)p, pwlen);
		memcpy(out, c.stored_key, VS_SCRAM_KEY_LEN);
		memcpy(out + VS_SCRAM_KEY_LEN, c.server_key, VS_SCRAM_KEY_LEN);
		OPENSSL_cleanse(&c, sizeof(c));
		return rc;
	}
	}
	return VS_ECONF;
}

/* Whether h's parameters are ones this file can hold and libargon2/OpenSSL accept. */
static bool params_valid(const struct vs_passwd_hash *h)
{
	switch (h->type) {
	case VS_PASSWD_SHA512:
		return h->salt_len == VS_PASSWD_SALT_LEN || h->salt_len == VS_PASSWD_SALT_LONG;
	case VS_PASSWD_PBKDF2:
		return (h->salt_len == VS_PASSWD_SALT_LEN || h->salt_len == VS_PASSWD_SALT_LONG) &&
		       h->iterations >= 1 && h->iterations <= INT_MAX;
	case VS_PASSWD_ARGON2ID:
		return h->salt_len >= 8 && h->salt_len <= VS_PASSWD_SALT_MAX && h->hash_len >= 16 &&
		       h->hash_len <= VS_PASSWD_HASH_LEN && h->iterations >= 1 &&
		       h->iterations <= INT_MAX && h->lanes >= 1 &&
		       h->lanes <= VS_PASSWD_ARGON2_PMAX && h->memory_kib >= 8 * h->lanes &&
		       h->memory_kib <= VS_PASSWD_ARGON2_MMAX;
	case VS_PASSWD_SCRAM:
		return h->salt_len >= 1 && h->salt_len <= VS_SCRAM_SALT_MAX &&
		       h->iterations >= VS_SCRAM_ITERATIONS && h->iterations <= INT_MAX;
	}
	return false;
}

int vs_passwd_hash_init(struct vs_passwd_hash *h, enum vs_passwd_type type, unsigned iterations)
{
	memset(h, 0, sizeof(*h));
	h->type = type;
	h->hash_len = VS_PASSWD_HASH_LEN;
	h->salt_len = VS_PASSWD_SALT_LEN;
	switch (type) {
	case VS_PASSWD_SHA512:
		break;
	case VS_PASSWD_PBKDF2:
		h->iterations = iterations ? iterations : VS_PASSWD_ITERATIONS;
		break;
	case VS_PASSWD_ARGON2ID:
		h->iterations = iterations ? iterations : VS_PASSWD_ARGON2_T;
		h->memory_kib = VS_PASSWD_ARGON2_M;
		h->lanes = VS_PASSWD_ARGON2_P;
		h->salt_len = VS_PASSWD_SALT_LONG;
		break;
	case VS_PASSWD_SCRAM:
		h->iterations = iterations ? iterations : VS_SCRAM_ITERATIONS;
		h->salt_len = VS_SCRAM_SALT_LEN;
		break;
	default:
		return VS_ECONF;
	}
	return params_valid(h) ? 0 : VS_ECONF;
}

int vs_passwd_hash_make(struct vs_passwd_hash *h, bool new_salt, const uint8_t *pw, size_t pwlen)
{
	if (!params_valid(h))
		return VS_ECONF;
	if (new_salt && RAND_bytes(h->salt, h->salt_len) != 1)
		return VS_EPROTO;
	return digest(h, pw, pwlen, h->hash);
}

int vs_passwd_hash_verify(const struct vs_passwd_hash *h, const uint8_t *pw, size_t pwlen)
{
	uint8_t got[VS_PASSWD_HASH_LEN];
	/* SCRAM: only StoredKey depends on the ClientKey a password gives; comparing ServerKey
	 * too would add nothing. */
	size_t n = h->type == VS_PASSWD_SCRAM ? VS_SCRAM_KEY_LEN : h->hash_len;
	if (!params_valid(h) || digest(h, pw, pwlen, got))
		return 0;
	int same = CRYPTO_memcmp(got, h->hash, n) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return same;
}

/* ---- parsing ---- */

/* Splits off the next field of [*s, end) ending at `sep`; returns its length or -1 if none. */
static long next_field(const char **s, const char *end, char sep, const char **field)
{
	const char *d = memchr(*s, sep, (size_t)(end - *s));
	if (!d)
		return -1;
	*field = *s;
	*s = d + 1;
	return d - *field;
}

/* A decimal in [min, max] (leading zeros allowed, as Mosquitto's atoi does). */
static int parse_uint(const char *s, size_t n, unsigned long min, unsigned long max, unsigned *out)
{
	if (n == 0 || n > 10)
		return -1;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Decodes a base64 field of between min and max bytes into out; sets *len. */
static int b64_field(const char *s, size_t n, uint8_t *out, size_t min, size_t max,
		     enum vs_b64_pad pad, uint8_t *len)
{
	ssize_t k = vs_b64_decode(s, n, out, max, pad);
	if (k < (ssize_t)min)
		return -1;
	*len = (uint8_t)k;
	return 0;
}

#define FAIL(msg)                                                                                  \
	do {                                                                                       \
		if (why)                                                                           \
			*why = (msg);                                                              \
		return VS_EPROTO;                                                                  \
	} while (0)

/* "$6$SALT$HASH" and "$7$ITERATIONS$SALT$HASH", after the "$6$"/"$7$". */
static int parse_sha(struct vs_passwd_hash *h, const char *s, const char *end, const char **why)
{
	const char *f;
	long n;
	if (h->type == VS_PASSWD_PBKDF2) {
		if ((n = next_field(&s, end, '$', &f)) < 0)
			FAIL("truncated hash: expected $7$ITERATIONS$SALT$HASH");
		if (parse_uint(f, (size_t)n, 1, INT_MAX, &h->iterations))
			FAIL("bad iteration count (an integer from 1 to 2147483647)");
	}
	if ((n = next_field(&s, end, '$', &f)) < 0)
		FAIL("truncated hash: no '$' after the salt");
	if (b64_field(f, (size_t)n, h->salt, 1, VS_PASSWD_SALT_MAX, VS_B64_PAD, &h->salt_len) ||
	    (h->salt_len != VS_PASSWD_SALT_LEN && h->salt_len != VS_PASSWD_SALT_LONG))
		FAIL("bad salt: expected 12 or 64 bytes in base64 (16 or 88 characters)");
	if (memchr(s, '$', (size_t)(end - s)))
		FAIL("too many '$' fields in hash");
	if (b64_field(s, (size_t)(end - s), h->hash, VS_PASSWD_HASH_LEN, VS_PASSWD_HASH_LEN,
		      VS_B64_PAD, &h->hash_len))
		FAIL("bad hash: expected 64 bytes in base64 (88 characters)");
	return 0;
}

/* "m=M,t=T,p=P" of an argon2id string. */
static int parse_argon2_params(struct vs_passwd_hash *h, const char *s, const char *end,
			       const char **why)
{
	const char *f;
	long n;
	if (end - s < 2 || memcmp(s, "m=", 2) || (s += 2, n = next_field(&s, end, ',', &f)) < 0 ||
	    parse_uint(f, (size_t)n, 1, UINT32_MAX, &h->memory_kib) || end - s < 2 ||
	    memcmp(s, "t=", 2) || (s += 2, n = next_field(&s, end, ',', &f)) < 0 ||
	    parse_uint(f, (size_t)n, 0, UINT32_MAX, &h->iterations) || end - s < 2 ||
	    memcmp(s, "p=", 2) ||
	    parse_uint(s + 2, (size_t)(end - s - 2), 0, UINT32_MAX, &h->lanes))
		FAIL("bad argon2id parameters: expected m=MEMORY,t=TIME,p=LANES");
	if (h->iterations < 1 || h->iterations > INT_MAX)
		FAIL("argon2id time cost out of range (t from 1 to 2147483647)");
	if (h->lanes < 1 || h->lanes > VS_PASSWD_ARGON2_PMAX)
		FAIL("argon2id lanes out of range (p from 1 to 255)");
	if (h->memory_kib < 8 * h->lanes || h->memory_kib > VS_PASSWD_ARGON2_MMAX)
		FAIL("argon2id memory out of range (m from 8*p to 4194304 KiB)");
	return 0;
}

/* "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH", after the "$argon2id$" (libargon2's encoding:
 * base64 without padding). */
static int parse_argon2(struct vs_passwd_hash *h, const char *s, const char *end, const char **why)
{
	const char *f;
	long n;
	if (!memchr(s, '$', (size_t)(end - s)))
		FAIL("truncated hash: expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH");
	if ((n = next_field(&s, end, '$', &f)) != 4 || memcmp(f, "v=19", 4))
		FAIL("unsupported argon2id version (only v=19, as libargon2 writes)");
	if ((n = next_field(&s, end, '$', &f)) < 0)
		FAIL("truncated hash: expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH");
	int rc = parse_argon2_params(h, f, f + n, why);
	if (rc)
		return rc;
	if ((n = next_field(&s, end, '$', &f)) < 0)
		FAIL("truncated hash: no '$' after the salt");
	if (b64_field(f, (size_t)n, h->salt, 8, VS_PASSWD_SALT_MAX, VS_B64_NOPAD, &h->salt_len))
		FAIL("bad salt: expected 8 to 64 bytes in unpadded base64");
	if (memchr(s, '$', (size_t)(end - s)))
		FAIL("too many '$' fields in hash");
	if (b64_field(s, (size_t)(end - s), h->hash, 16, VS_PASSWD_HASH_LEN, VS_B64_NOPAD,
		      &h->hash_len))
		FAIL("bad hash: expected 16 to 64 bytes in unpadded base64");
	return 0;
}

/* "$scram-sha-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY", after the "$scram-sha-256$". */
static int parse_scram(struct vs_passwd_hash *h, const char *s, const char *end, const char **why)
{
	const char *f;
	uint8_t n1, n2;
	long n;
	if ((n = next_field(&s, end, ':', &f)) < 0 ||
	    parse_uint(f, (size_t)n, VS_SCRAM_ITERATIONS, INT_MAX, &h->iterations))
		FAIL("bad iteration count (an integer from 4096 to 2147483647, RFC 7677)");
	if ((n = next_field(&s, end, '$', &f)) < 0)
		FAIL("truncated hash: expected $scram-sha-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY");
	if (b64_field(f, (size_t)n, h->salt, 1, VS_SCRAM_SALT_MAX, VS_B64_PAD, &h->salt_len))
		FAIL("bad salt: expected 1 to 64 bytes in base64");
	h->hash_len = VS_PASSWD_HASH_LEN;
	if ((n = next_field(&s, end, ':', &f)) < 0 || memchr(s, '$', (size_t)(end - s)) ||
	    b64_field(f, (size_t)n, h->hash, VS_SCRAM_KEY_LEN, VS_SCRAM_KEY_LEN, VS_B64_PAD, &n1) ||
	    b64_field(s, (size_t)(end - s), h->hash + VS_SCRAM_KEY_LEN, VS_SCRAM_KEY_LEN,
		      VS_SCRAM_KEY_LEN, VS_B64_PAD, &n2))
		FAIL("bad keys: expected STOREDKEY:SERVERKEY, 32 bytes each in base64 (44 "
		     "characters)");
	return 0;
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

bool vs_passwd_hash_like(const char *s, size_t len)
{
	return has_prefix(s, len, "$6$") || has_prefix(s, len, "$7$") ||
	       has_prefix(s, len, "$argon2") || has_prefix(s, len, "$scram-sha-256$");
}

int vs_passwd_hash_parse(struct vs_passwd_hash *h, const char *s, size_t len, const char **why)
{
	const char *end = s + len;
	memset(h, 0, sizeof(*h));
	h->hash_len = VS_PASSWD_HASH_LEN;
	if (has_prefix(s, len, "$6$") || has_prefix(s, len, "$7$")) {
		h->type = s[1] == '6' ? VS_PASSWD_SHA512 : VS_PASSWD_PBKDF2;
		return parse_sha(h, s + 3, end, why);
	}
	if (has_prefix(s, len, "$argon2id$")) {
		h->type = VS_PASSWD_ARGON2ID;
		return parse_argon2(h, s + 10, end, why);
	}
	if (has_prefix(s, len, "$scram-sha-256$")) {
		h->type = VS_PASSWD_SCRAM;
		return parse_scram(h, s + 15, end, why);
	}
	if (has_prefix(s, len, "$argon2i$") || has_prefix(s, len, "$argon2d$"))
		FAIL("argon2i and argon2d hashes are not supported (only $argon2id$, as Mosquitto "
		     "2.1 writes)");
	if (len > 0 && s[0] == '$')
		FAIL("unknown hash type (only $6$, $7$, $argon2id$ and $scram-sha-256$ are "
		     "supported)");
	FAIL("password is not a $6$, $7$, $argon2id$ or $scram-sha-256$ hash (plain-text "
	     "passwords need `viesti passwd -U`)");
}

#undef FAIL

int vs_passwd_hash_format(const struct vs_passwd_hash *h, char *out, size_t outlen)
{
	char salt[VS_B64_LEN(VS_PASSWD_SALT_MAX) + 1], hash[VS_B64_LEN(VS_PASSWD_HASH_LEN) + 1];
	char key2[VS_B64_LEN(VS_SCRAM_KEY_LEN) + 1];
	enum vs_b64_pad pad = h->type == VS_PASSWD_ARGON2ID ? VS_B64_NOPAD : VS_B64_PAD;
	size_t hn = h->type == VS_PASSWD_SCRAM ? VS_SCRAM_KEY_LEN : h->hash_len;
	int k = -1;
	vs_b64_encode(h->salt, h->salt_len, salt, pad);
	vs_b64_encode(h->hash, hn, hash, pad);
	vs_b64_encode(h->hash + VS_SCRAM_KEY_LEN, VS_SCRAM_KEY_LEN, key2, pad);
	switch (h->type) {
	case VS_PASSWD_SHA512:
		k = snprintf(out, outlen, "$6$%s$%s", salt, hash);
		break;
	case VS_PASSWD_PBKDF2:
		k = snprintf(out, outlen, "$7$%u$%s$%s", h->iterations, salt, hash);
		break;
	case VS_PASSWD_ARGON2ID:
		k = snprintf(out, outlen, "$argon2id$v=19$m=%u,t=%u,p=%u$%s$%s", h->memory_kib,
			     h->iterations, h->lanes, salt, hash);
		break;
	case VS_PASSWD_SCRAM:
		k = snprintf(out, outlen, "$scram-sha-256$%u:%s$%s:%s", h->iterations, salt, hash,
			     key2);
		break;
	}
	if (k < 0 || (size_t)k >= outlen)
		return VS_ETOOBIG;
	return k;
}

int vs_passwd_user_valid(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > VS_PASSWD_USER_MAX || user[0] == '#' || user[0] == ' ' ||
	    user[0] == '\t' || user[n - 1] == ' ' || user[n - 1] == '\t')
		return 0;
	return strpbrk(user, ":\r\n") == NULL;
}

/* Parses one non-blank, non-comment line into the table. Returns 0 or VS_ECONF/-ENOMEM. */
static int parse_line(struct vs_passwd *pf, const char *s, size_t n, const char *name,
		      unsigned line, char *err, size_t errlen)
{
	if (memchr(s, '\0', n))
		return vs_auth_err(err, errlen, name, line, "NUL byte in line");
	const char *colon = memchr(s, ':', n);
	if (!colon)
		return vs_auth_err(err, errlen, name, line, "expected user:hash, found no ':'");
	const char *user = s, *pw = colon + 1;
	size_t ulen = (size_t)(colon - s), pwlen = n - ulen - 1;
	vs_auth_trim(&user, &ulen);
	vs_auth_trim(&pw, &pwlen);
	if (ulen == 0)
		return vs_auth_err(err, errlen, name, line, "empty username");
	if (ulen > VS_PASSWD_USER_MAX)
		return vs_auth_err(err, errlen, name, line, "username longer than 65535 bytes");
	if (pwlen == 0)
		return vs_auth_err(err, errlen, name, line, "no password hash for user '%.*s'",
				   (int)ulen, user);
	if (vs_map_get(&pf->users, user, ulen))
		return vs_auth_err(err, errlen, name, line, "user '%.*s' appears twice", (int)ulen,
				   user);
	struct vs_passwd_hash *h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	const char *why = NULL;
	if (vs_passwd_hash_parse(h, pw, pwlen, &why)) {
		free(h);
		return vs_auth_err(err, errlen, name, line, "user '%.*s': %s", (int)ulen, user,
				   why);
	}
	if (vs_map_put(&pf->users, user, ulen, h, NULL)) {
		free(h);
		return -ENOMEM;
	}
	/* The stand-ins take the parameters of the last entry: an unknown user costs what the
	 * users written last (usually by the current tool and policy) cost. */
	pf->dummy = *h;
	memset(pf->dummy.salt, 0, sizeof(pf->dummy.salt));
	memset(pf->dummy.hash, 0, sizeof(pf->dummy.hash));
	if (h->type == VS_PASSWD_SCRAM) {
		pf->scram_iterations = h->iterations;
		pf->scram_salt_len = h->salt_len;
	}
	return 0;
}

struct vs_passwd *vs_passwd_parse(const char *text, size_t len, const char *name, char *err,
				  size_t errlen)
{
	struct vs_passwd *pf = calloc(1, sizeof(*pf));
	if (!pf) {
		vs_auth_err(err, errlen, name, 0, "out of memory");
		return NULL;
	}
	vs_passwd_hash_init(&pf->dummy, VS_PASSWD_PBKDF2, 0);
	pf->scram_iterations = VS_SCRAM_ITERATIONS;
	pf->scram_salt_len = VS_SCRAM_SALT_LEN;
	if (!EVP_Digest(text, len, pf->standin_key, NULL, EVP_sha256(), NULL)) {
		vs_auth_err(err, errlen, name, 0, "cannot hash the file (OpenSSL)");
		free(pf);
		return NULL;
	}
	struct vs_auth_lines it;
	const char *s;
	size_t n;
	vs_auth_lines_init(&it, text, len);
	while (vs_auth_lines_next(&it, &s, &n)) {
		const char *t = s;
		size_t tn = n;
		vs_auth_trim(&t, &tn);
		if (tn == 0 || t[0] == '#')
			continue;
		int rc = parse_line(pf, s, n, name, it.lineno, err, errlen);
		if (rc) {
			if (rc == -ENOMEM)
				vs_auth_err(err, errlen, name, it.lineno, "out of memory");
			vs_passwd_free(pf);
			return NULL;
		}
	}
	return pf;
}

struct vs_passwd *vs_passwd_load(const char *path, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc = vs_auth_read_file(path, &text, &len);
	if (rc) {
		vs_auth_err(err, errlen, path, 0, "%s",
			    rc == -EFBIG ? "file too large" : strerror(-rc));
		return NULL;
	}
	struct vs_passwd *pf = vs_passwd_parse(text, len, path, err, errlen);
	OPENSSL_cleanse(text, len);
	free(text);
	return pf;
}

int vs_passwd_check(const struct vs_passwd *pf, const char *user, const uint8_t *pw, size_t pwlen)
{
	if (!pf || !user)
		return 0;
	const struct vs_passwd_hash *h = vs_map_get(&pf->users, user, strlen(user));
	if (!h) {
		/* Burn the same time as a real check, then refuse. */
		(void)vs_passwd_hash_verify(&pf->dummy, pw, pw ? pwlen : 0);
		return 0;
	}
	if (!pw) {
		(void)vs_passwd_hash_verify(h, (const uint8_t *)"", 0);
		return 0;
	}
	return vs_passwd_hash_verify(h, pw, pwlen);
}

/* n (<= 255 * 32) pseudo-random bytes for a stand-in: HMAC-SHA-256 under the file's key of
 * label || 0 || block || SHA-256(user), block counting 32-byte blocks. */
static int standin_bytes(const struct vs_passwd *pf, const char *label, const char *user,
			 uint8_t *out, size_t n)
{
	uint8_t msg[16 + 2 + 32], mac[32];
	size_t ln = strlen(label);
	memcpy(msg, label, ln);
	msg[ln] = 0;
	if (!EVP_Digest(user, strlen(user), msg + ln + 2, NULL, EVP_sha256(), NULL))
		return VS_EPROTO;
	for (uint8_t block = 0; n > 0; block++) {
		unsigned mlen = 0;
		msg[ln + 1] = block;
		if (!HMAC(EVP_sha256(), pf->standin_key, sizeof(pf->standin_key), msg, ln + 2 + 32,
			  mac, &mlen))
			return VS_EPROTO;
		size_t k = n < sizeof(mac) ? n : sizeof(mac);
		memcpy(out, mac, k);
		out += k;
		n -= k;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

int vs_passwd_scram_lookup(const struct vs_passwd *pf, const char *user, struct vs_scram_cred *cred)
{
	const struct vs_passwd_hash *h = user ? vs_map_get(&pf->users, user, strlen(user)) : NULL;
	memset(cred, 0, sizeof(*cred));
	if (h && h->type == VS_PASSWD_SCRAM) {
		scram_cred_of(h, cred);
		return 1;
	}
	cred->iterations = pf->scram_iterations;
	cred->salt_len = pf->scram_salt_len;
	const char *u = user ? user : "";
	if (standin_bytes(pf, "salt", u, cred->salt, cred->salt_len) ||
	    standin_bytes(pf, "stored", u, cred->stored_key, VS_SCRAM_KEY_LEN) ||
	    standin_bytes(pf, "server", u, cred->server_key, VS_SCRAM_KEY_LEN))
		return VS_EPROTO;
	return 0;
}

size_t vs_passwd_count(const struct vs_passwd *pf)
{
	return pf ? pf->users.count : 0;
}

void vs_passwd_free(struct vs_passwd *pf)
{
	if (!pf)
		return;
	vs_map_fini_with(&pf->users, free);
	free(pf);
}
