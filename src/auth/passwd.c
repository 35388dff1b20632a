/*
 * Mosquitto-compatible password files (see passwd.h for the format and the contracts).
 *
 * The table is a vs_map from username to a decoded struct vs_passwd_hash, built once by the
 * loader and never changed afterwards, which is what makes concurrent checks safe without a lock.
 * Base64 is written here rather than through OpenSSL's BIO chain: the decoder must be strict
 * (exact length, canonical padding) to report a damaged line, and it is twenty lines.
 */
#include "auth/passwd.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/text.h"
#include "base/error.h"
#include "base/map.h"

struct vs_passwd {
	struct vs_map users;	     /* username -> struct vs_passwd_hash * (owned) */
	struct vs_passwd_hash dummy; /* hashed against for unknown users: same cost, no answer */
};

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes in[0..n) with padding; out needs 4 * ((n + 2) / 3) + 1 bytes. Returns the length. */
static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

/* Decodes exactly `want` bytes from s[0..len), which must be their canonical padded encoding.
 * Returns 0 or -1. */
static int b64_decode_exact(const char *s, size_t len, uint8_t *out, size_t want)
{
	if (len != 4 * ((want + 2) / 3))
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			char c = s[i + k];
			int d;
			if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || s[i + 3] == '=')) {
				pad++;
				d = 0;
			} else if ((d = b64_value(c)) < 0 || pad) {
				return -1;
			}
			v = v << 6 | (uint32_t)d;
		}
		uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
		for (int k = 0; k < 3 - pad; k++) {
			if (o == want)
				return -1;
			out[o++] = b[k];
		}
		/* Canonical form: the bits the padding hides must be zero. */
		if ((pad == 1 && b[2]) || (pad == 2 && (b[1] || b[2])))
			return -1;
	}
	return o == want ? 0 : -1;
}

static int digest(enum vs_passwd_type type, unsigned iterations, const uint8_t *salt,
		  const uint8_t *pw, size_t pwlen, uint8_t out[VS_PASSWD_HASH_LEN])
{
	if (pwlen > INT_MAX)
		return VS_ETOOBIG;
	if (type == VS_PASSWD_PBKDF2) {
		/* OpenSSL wants a non-NULL pointer even for an empty password. */
		const char *p = pw ? (const char *)pw : "";
		if (!PKCS5_PBKDF2_HMAC(p, (int)pwlen, salt, VS_PASSWD_SALT_LEN, (int)iterations,
				       EVP_sha512(), VS_PASSWD_HASH_LEN, out))
			return VS_EPROTO;
		return 0;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned n = 0;
	int ok =
	    ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) && EVP_DigestUpdate(ctx, pw, pwlen) &&
	    EVP_DigestUpdate(ctx, salt, VS_PASSWD_SALT_LEN) && EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
	return ok && n == VS_PASSWD_HASH_LEN ? 0 : VS_EPROTO;
}

int vs_passwd_hash_make(struct vs_passwd_hash *h, enum vs_passwd_type type, unsigned iterations,
			const uint8_t *salt, const uint8_t *pw, size_t pwlen)
{
	if (type != VS_PASSWD_SHA512 && type != VS_PASSWD_PBKDF2)
		return VS_ECONF;
	if (type == VS_PASSWD_PBKDF2 && (iterations < 1 || iterations > INT_MAX))
		return VS_ECONF;
	memset(h, 0, sizeof(*h));
	h->type = type;
	h->iterations = type == VS_PASSWD_PBKDF2 ? iterations : 0;
	if (salt)
		memcpy(h->salt, salt, VS_PASSWD_SALT_LEN);
	else if (RAND_bytes(h->salt, VS_PASSWD_SALT_LEN) != 1)
		return VS_EPROTO;
	return digest(type, h->iterations, h->salt, pw, pwlen, h->hash);
}

/* Splits off the next '$'-terminated field of [*s, end); returns its length or -1 if none. */
static long next_field(const char **s, const char *end, const char **field)
{
	const char *d = memchr(*s, '$', (size_t)(end - *s));
	if (!d)
		return -1;
	*field = *s;
	*s = d + 1;
	return d - *field;
}

static int parse_iterations(const char *s, size_t n, unsigned *out)
{
	if (n == 0 || n > 10)
		return -1;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > INT_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

#define FAIL(msg)                                                                                  \
	do {                                                                                       \
		if (why)                                                                           \
			*why = (msg);                                                              \
		return VS_EPROTO;                                                                  \
	} while (0)

int vs_passwd_hash_parse(struct vs_passwd_hash *h, const char *s, size_t len, const char **why)
{
	const char *end = s + len, *f;
	memset(h, 0, sizeof(*h));
	if (len < 3 || s[0] != '$' || s[2] != '$')
		FAIL("password is not a $6$ or $7$ hash (plain-text passwords need `viesti passwd "
		     "-U`)");
	if (s[1] == '6')
		h->type = VS_PASSWD_SHA512;
	else if (s[1] == '7')
		h->type = VS_PASSWD_PBKDF2;
	else
		FAIL("unknown hash type (only $6$ and $7$ are supported)");
	s += 3;
	if (h->type == VS_PASSWD_PBKDF2) {
		long n = next_field(&s, end, &f);
		if (n < 0)
			FAIL("truncated hash: expected $7$ITERATIONS$SALT$HASH");
		if (parse_iterations(f, (size_t)n, &h->iterations))
			FAIL("bad iteration count (an integer from 1 to 2147483647)");
	}
	long n = next_field(&s, end, &f);
	if (n < 0)
		FAIL("truncated hash: no '$' after the salt");
	if (b64_decode_exact(f, (size_t)n, h->salt, VS_PASSWD_SALT_LEN))
		FAIL("bad salt: expected 12 bytes in base64 (16 characters)");
	if (memchr(s, '$', (size_t)(end - s)))
		FAIL("too many '$' fields in hash");
	if (b64_decode_exact(s, (size_t)(end - s), h->hash, VS_PASSWD_HASH_LEN))
		FAIL("bad hash: expected 64 bytes in base64 (88 characters)");
	return 0;
}

#undef FAIL

int vs_passwd_hash_format(const struct vs_passwd_hash *h, char *out, size_t outlen)
{
	char salt[4 * ((VS_PASSWD_SALT_LEN + 2) / 3) + 1];
	char hash[4 * ((VS_PASSWD_HASH_LEN + 2) / 3) + 1];
	b64_encode(h->salt, VS_PASSWD_SALT_LEN, salt);
	b64_encode(h->hash, VS_PASSWD_HASH_LEN, hash);
	int k;
	if (h->type == VS_PASSWD_PBKDF2)
		k = snprintf(out, outlen, "$7$%u$%s$%s", h->iterations, salt, hash);
	else
		k = snprintf(out, outlen, "$6$%s$%s", salt, hash);
	if (k < 0 || (size_t)k >= outlen)
		return VS_ETOOBIG;
	return k;
}

int vs_passwd_hash_verify(const struct vs_passwd_hash *h, const uint8_t *pw, size_t pwlen)
{
	uint8_t got[VS_PASSWD_HASH_LEN];
	if (digest(h->type, h->iterations, h->salt, pw, pwlen, got))
		return 0;
	int same = CRYPTO_memcmp(got, h->hash, VS_PASSWD_HASH_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return same;
}

int vs_passwd_user_valid(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > VS_PASSWD_USER_MAX || user[0] == '#' || user[0] == ' ' ||
	    user[0] == '\t' || user[n - 1] == ' ' || user[n - 1] == '\t')
		return 0;
	return strpbrk(user, ":\r\n") == NULL;
}

static void free_users(struct vs_map *m)
{
	size_t i = 0, klen;
	const char *key;
	void *val;
	while (vs_map_next(m, &i, &key, &klen, &val))
		free(val);
	vs_map_fini(m);
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
	pf->dummy.type = h->type;
	pf->dummy.iterations = h->iterations;
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
	pf->dummy.type = VS_PASSWD_PBKDF2;
	pf->dummy.iterations = VS_PASSWD_ITERATIONS;
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

size_t vs_passwd_count(const struct vs_passwd *pf)
{
	return pf ? pf->users.count : 0;
}

void vs_passwd_free(struct vs_passwd *pf)
{
	if (!pf)
		return;
	free_users(&pf->users);
	free(pf);
}
