/*
 * SCRAM-SHA-256, both roles (see scram.h for the contracts and what is not supported).
 *
 * The messages are short comma-separated lists of "x=value" attributes in a fixed order
 * (RFC 5802 section 7); a small cursor walks them, and each message has one parse function that
 * reads as its grammar. The AuthMessage, over which both proofs are computed, is
 *
 *   client-first-message-bare + "," + server-first-message + "," + client-final-without-proof
 *
 * so each side keeps the earlier messages (bounded by VS_SCRAM_BARE_MAX) until the last step.
 * The keys (RFC 5802 section 3):
 *
 *   SaltedPassword  = PBKDF2-HMAC-SHA-256(password, salt, i)
 *   ClientKey       = HMAC(SaltedPassword, "Client Key")      StoredKey = H(ClientKey)
 *   ServerKey       = HMAC(SaltedPassword, "Server Key")
 *   ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 *
 * Secrets on the stack are wiped before returning; comparisons of secrets take constant time.
 */
#include "auth/scram.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base/base64.h"
#include "base/error.h"
#include "codec/codec.h"

/* Steps of an exchange, per role; FAILED once any step failed. */
enum { S_START, S_FIRST_READ, S_FIRST_SENT, S_DONE, S_FAILED };
enum { C_START, C_FIRST_SENT, C_FINAL_SENT, C_DONE, C_FAILED };

#define AUTHMSG_MAX (VS_SCRAM_BARE_MAX + VS_SCRAM_MSG_MAX)

/* ---- keys ---- */

static int hmac(const uint8_t *key, size_t klen, const void *msg, size_t n,
		uint8_t out[VS_SCRAM_KEY_LEN])
{
	unsigned olen = 0;
	if (!HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &olen) || olen != VS_SCRAM_KEY_LEN)
		return VS_EPROTO;
	return 0;
}

/* ClientKey, StoredKey and ServerKey of a password (any of the outputs may be NULL). */
static int derive(const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t salt_len,
		  unsigned iterations, uint8_t *client_key, uint8_t *stored_key,
		  uint8_t *server_key)
{
	uint8_t salted[VS_SCRAM_KEY_LEN], ck[VS_SCRAM_KEY_LEN];
	if (pwlen > INT_MAX || iterations < 1 || iterations > INT_MAX)
		return VS_ETOOBIG;
	/* OpenSSL wants a non-NULL pointer even for an empty password. */
	const char *p = pw ? (const char *)pw : "";
	int rc = VS_EPROTO;
	if (!PKCS5_PBKDF2_HMAC(p, (int)pwlen, salt, (int)salt_len, (int)iterations, EVP_sha256(),
			       VS_SCRAM_KEY_LEN, salted))
		goto out;
	if (hmac(salted, sizeof(salted), "Client Key", 10, ck) ||
	    (server_key && hmac(salted, sizeof(salted), "Server Key", 10, server_key)))
		goto out;
	if (stored_key && !EVP_Digest(ck, sizeof(ck), stored_key, NULL, EVP_sha256(), NULL))
		goto out;
	if (client_key)
		memcpy(client_key, ck, sizeof(ck));
	rc = 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(ck, sizeof(ck));
	return rc;
}

int vs_scram_cred_make(struct vs_scram_cred *c, const uint8_t *pw, size_t pwlen)
{
	if (c->salt_len < 1 || c->salt_len > VS_SCRAM_SALT_MAX || c->iterations < 1 ||
	    c->iterations > INT_MAX)
		return VS_ECONF;
	return derive(pw, pwlen, c->salt, c->salt_len, c->iterations, NULL, c->stored_key,
		      c->server_key);
}

int vs_scram_cred_verify(const struct vs_scram_cred *c, const uint8_t *pw, size_t pwlen)
{
	uint8_t stored[VS_SCRAM_KEY_LEN];
	if (c->salt_len > VS_SCRAM_SALT_MAX ||
	    derive(pw, pwlen, c->salt, c->salt_len, c->iterations, NULL, stored, NULL))
		return 0;
	int same = CRYPTO_memcmp(stored, c->stored_key, sizeof(stored)) == 0;
	OPENSSL_cleanse(stored, sizeof(stored));
	return same;
}

/* The AuthMessage of an exchange into am (AUTHMSG_MAX bytes). Returns its length or -1. */
static long auth_message(char *am, const char *bare, size_t bare_len, const char *first,
			 size_t first_len, const char *final, size_t final_len)
{
	if (bare_len + first_len + final_len + 2 > AUTHMSG_MAX)
		return -1;
	size_t n = 0;
	memcpy(am + n, bare, bare_len);
	n += bare_len;
	am[n++] = ',';
	memcpy(am + n, first, first_len);
	n += first_len;
	am[n++] = ',';
	memcpy(am + n, final, final_len);
	return (long)(n + final_len);
}

/* ---- parsing ---- */

/* A cursor over the attributes of one message. */
struct cur {
	const char *p;
	const char *end;
};

/* Whether the next attribute is `name`; if so, takes it: *v and *n are its value, up to the next
 * ',', and moves past that ','. A ',' that ends the message is never valid, so it fails here. */
static bool take(struct cur *c, char name, const char **v, size_t *n)
{
	if (c->end - c->p < 2 || c->p[0] != name || c->p[1] != '=')
		return false;
	const char *s = c->p + 2;
	const char *comma = memchr(s, ',', (size_t)(c->end - s));
	if (comma && comma + 1 == c->end)
		return false;
	const char *e = comma ? comma : c->end;
	*v = s;
	*n = (size_t)(e - s);
	c->p = comma ? comma + 1 : c->end;
	return true;
}

/* Whether the cursor stands at the end, or only before extensions (attr-val: ALPHA "=" 1*value
 * with no NUL), which RFC 5802 section 7 says to ignore. `stop` ends the walk early: an
 * attribute that must come after the extensions (the proof). */
static bool only_extensions(struct cur *c, char stop)
{
	while (c->p < c->end) {
		char a = c->p[0];
		if (a == stop)
			return true;
		if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')) || a == 'm')
			return false;
		const char *v;
		size_t n;
		if (!take(c, a, &v, &n) || n == 0 || memchr(v, '\0', n))
			return false;
	}
	return true;
}

/* printable = %x21-2B / %x2D-7E: a nonce, RFC 5802 section 7. */
static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7E || s[i] == ',')
			return false;
	return n > 0;
}

/* Unescapes a saslname (",=" as "=2C" and "=3D") into out (room for n + 1), NUL-terminated.
 * Returns its length, or -1 for a bad escape, an empty name or one that is not UTF-8. */
static long unescape_name(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '=') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 < n && s[i + 1] == '2' && s[i + 2] == 'C')
			out[o++] = ',';
		else if (i + 2 < n && s[i + 1] == '3' && s[i + 2] == 'D')
			out[o++] = '=';
		else
			return -1;
		i += 2;
	}
	out[o] = '\0';
	if (o == 0 || memchr(out, '\0', o) || !vs_utf8_valid((const uint8_t *)out, o))
		return -1;
	return (long)o;
}

/* Escapes user[0..ulen) as a saslname into out (cap bytes). Returns the length or -1. */
static long escape_name(const char *user, size_t ulen, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < ulen; i++) {
		const char *rep = user[i] == ',' ? "=2C" : user[i] == '=' ? "=3D" : NULL;
		size_t k = rep ? 3 : 1;
		if (o + k > cap)
			return -1;
		memcpy(out + o, rep ? rep : user + i, k);
		o += k;
	}
	return (long)o;
}

/* A positive decimal without leading zeros (posit-number) within [1, max]. */
static bool posit_number(const char *s, size_t n, unsigned long max, unsigned long *out)
{
	if (n == 0 || n > 10 || s[0] == '0')
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* A fresh nonce (or the test's) into out (room for VS_SCRAM_NONCE_MAX + 1). Returns its length
 * or VS_EPROTO. */
static long make_nonce(const char *test_nonce, char *out)
{
	if (test_nonce) {
		size_t n = strlen(test_nonce);
		if (n > VS_SCRAM_NONCE_MAX || !printable(test_nonce, n))
			return VS_EPROTO;
		memcpy(out, test_nonce, n + 1);
		return (long)n;
	}
	uint8_t r[VS_SCRAM_NONCE_BYTES];
	if (RAND_bytes(r, sizeof(r)) != 1)
		return VS_EPROTO;
	/* 18 bytes encode to 24 characters without padding: all printable, none a ','. */
	return (long)vs_b64_encode(r, sizeof(r), out, VS_B64_PAD);
}

#define FAIL(rc, msg)                                                                              \
	do {                                                                                       \
		if (why)                                                                           \
			*why = (msg);                                                              \
		return (rc);                                                                       \
	} while (0)

/* ---- server ---- */

void vs_scram_server_init(struct vs_scram_server *s)
{
	memset(s, 0, sizeof(*s));
}

void vs_scram_server_fini(struct vs_scram_server *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

/* gs2-header = gs2-cbind-flag "," [authzid] ",". Sets s->gs2; returns the bytes taken or -1. */
static int parse_gs2(struct vs_scram_server *s, const char *m, size_t n, const char **why)
{
	if (n >= 1 && m[0] == 'p')
		FAIL(-1, "channel-binding-not-supported");
	if (n < 3 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',')
		FAIL(-1, "other-error");
	/* An authorization identity other than the user is not supported. */
	if (m[2] != ',')
		FAIL(-1, "other-error");
	memcpy(s->gs2, m, 3);
	s->gs2_len = 3;
	return 3;
}

/* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
static int parse_bare(struct vs_scram_server *s, const char *m, size_t n, const char **why)
{
	struct cur c = {m, m + n};
	const char *v;
	size_t vn;
	if (n > VS_SCRAM_BARE_MAX)
		FAIL(VS_EPROTO, "other-error");
	if (n >= 2 && m[0] == 'm' && m[1] == '=')
		FAIL(VS_EPROTO, "extensions-not-supported"); /* RFC 5802 section 5.1, "m" */
	if (!take(&c, 'n', &v, &vn) || unescape_name(v, vn, s->user) < 0)
		FAIL(VS_EPROTO, "invalid-username-encoding");
	if (!take(&c, 'r', &v, &vn) || vn > VS_SCRAM_NONCE_MAX || !printable(v, vn))
		FAIL(VS_EPROTO, "invalid-encoding");
	s->cnonce_off = (uint16_t)(v - m);
	s->cnonce_len = (uint16_t)vn;
	if (!only_extensions(&c, 0))
		FAIL(VS_EPROTO, "invalid-encoding");
	memcpy(s->bare, m, n);
	s->bare_len = (uint16_t)n;
	return 0;
}

int vs_scram_server_recv_first(struct vs_scram_server *s, const uint8_t *msg, size_t len,
			       const char **why)
{
	if (s->step != S_START)
		FAIL(VS_ESTATE, "other-error");
	s->step = S_FAILED;
	const char *m = (const char *)msg;
	if (!msg || memchr(m, '\0', len))
		FAIL(VS_EPROTO, "invalid-encoding");
	int k = parse_gs2(s, m, len, why);
	if (k < 0)
		return VS_EPROTO;
	int rc = parse_bare(s, m + k, len - (size_t)k, why);
	if (rc == 0)
		s->step = S_FIRST_READ;
	return rc;
}

int vs_scram_server_send_first(struct vs_scram_server *s, const struct vs_scram_cred *cred,
			       uint8_t *out, size_t cap)
{
	if (s->step != S_FIRST_READ)
		return VS_ESTATE;
	s->step = S_FAILED;
	if (cred->salt_len < 1 || cred->salt_len > VS_SCRAM_SALT_MAX || cred->iterations < 1)
		return VS_ECONF;
	char nonce[VS_SCRAM_NONCE_MAX + 1], salt[VS_B64_LEN(VS_SCRAM_SALT_MAX) + 1];
	long nn = make_nonce(s->test_nonce, nonce);
	if (nn < 0)
		return (int)nn;
	vs_b64_encode(cred->salt, cred->salt_len, salt, VS_B64_PAD);
	int k = snprintf(s->first, sizeof(s->first), "r=%.*s%s,s=%s,i=%u", (int)s->cnonce_len,
			 s->bare + s->cnonce_off, nonce, salt, cred->iterations);
	if (k < 0 || (size_t)k >= sizeof(s->first))
		return VS_ETOOBIG;
	if ((size_t)k > cap)
		return VS_ETOOBIG;
	s->first_len = (uint16_t)k;
	s->nonce_len = (uint16_t)(s->cnonce_len + (size_t)nn);
	memcpy(s->stored_key, cred->stored_key, VS_SCRAM_KEY_LEN);
	memcpy(s->server_key, cred->server_key, VS_SCRAM_KEY_LEN);
	memcpy(out, s->first, (size_t)k);
	s->step = S_FIRST_SENT;
	return k;
}

/* Whether c= carries our gs2 header: base64 of "n,," is "biws", of "y,," "eSws". */
static bool cbind_matches(const struct vs_scram_server *s, const char *v, size_t n)
{
	uint8_t got[8];
	ssize_t k = vs_b64_decode(v, n, got, sizeof(got), VS_B64_PAD);
	return k == s->gs2_len && memcmp(got, s->gs2, s->gs2_len) == 0;
}

/* client-final-message = channel-binding "," nonce ["," extensions] "," proof. Sets *wp_len
 * (the length of client-final-message-without-proof) and proof. */
static int parse_final(const struct vs_scram_server *s, const char *m, size_t n, size_t *wp_len,
		       uint8_t proof[VS_SCRAM_KEY_LEN], const char **why)
{
	struct cur c = {m, m + n};
	const char *v;
	size_t vn;
	if (!take(&c, 'c', &v, &vn))
		FAIL(VS_EPROTO, "invalid-encoding");
	if (!cbind_matches(s, v, vn))
		FAIL(VS_EPROTO, "channel-bindings-dont-match");
	if (!take(&c, 'r', &v, &vn))
		FAIL(VS_EPROTO, "invalid-encoding");
	/* The nonce of this exchange and no other: a replayed or tampered message fails here. */
	if (vn != s->nonce_len || memcmp(v, s->first + 2, vn) != 0)
		FAIL(VS_EPROTO, "other-error");
	if (!only_extensions(&c, 'p'))
		FAIL(VS_EPROTO, "invalid-encoding");
	*wp_len = (size_t)(c.p - m) - 1; /* without the ',' before "p=" */
	if (!take(&c, 'p', &v, &vn) || c.p != c.end ||
	    vs_b64_decode(v, vn, proof, VS_SCRAM_KEY_LEN, VS_B64_PAD) != VS_SCRAM_KEY_LEN)
		FAIL(VS_EPROTO, "invalid-encoding");
	return 0;
}

/* Checks proof against StoredKey over am; writes the ServerSignature into sig. */
static int check_proof(const struct vs_scram_server *s, const char *am, size_t amlen,
		       const uint8_t proof[VS_SCRAM_KEY_LEN], uint8_t sig[VS_SCRAM_KEY_LEN])
{
	uint8_t csig[VS_SCRAM_KEY_LEN], ck[VS_SCRAM_KEY_LEN], stored[VS_SCRAM_KEY_LEN];
	int rc = VS_EPROTO;
	if (hmac(s->stored_key, VS_SCRAM_KEY_LEN, am, amlen, csig) ||
	    hmac(s->server_key, VS_SCRAM_KEY_LEN, am, amlen, sig))
		goto out;
	for (size_t i = 0; i < VS_SCRAM_KEY_LEN; i++)
		ck[i] = proof[i] ^ csig[i];
	if (!EVP_Digest(ck, sizeof(ck), stored, NULL, EVP_sha256(), NULL))
		goto out;
	rc = CRYPTO_memcmp(stored, s->stored_key, VS_SCRAM_KEY_LEN) == 0 ? 0 : VS_EAUTH;
out:
	OPENSSL_cleanse(csig, sizeof(csig));
	OPENSSL_cleanse(ck, sizeof(ck));
	return rc;
}

int vs_scram_server_recv_final(struct vs_scram_server *s, const uint8_t *msg, size_t len,
			       uint8_t *out, size_t cap, const char **why)
{
	if (s->step != S_FIRST_SENT)
		FAIL(VS_ESTATE, "other-error");
	s->step = S_FAILED;
	const char *m = (const char *)msg;
	uint8_t proof[VS_SCRAM_KEY_LEN], sig[VS_SCRAM_KEY_LEN];
	char am[AUTHMSG_MAX];
	size_t wp_len;
	if (!msg || len > VS_SCRAM_MSG_MAX || memchr(m, '\0', len))
		FAIL(VS_EPROTO, "invalid-encoding");
	int rc = parse_final(s, m, len, &wp_len, proof, why);
	if (rc < 0)
		return rc;
	long amlen = auth_message(am, s->bare, s->bare_len, s->first, s->first_len, m, wp_len);
	if (amlen < 0)
		FAIL(VS_EPROTO, "other-error");
	rc = check_proof(s, am, (size_t)amlen, proof, sig);
	if (rc == 0 && cap < 2 + VS_B64_LEN(VS_SCRAM_KEY_LEN))
		rc = VS_ETOOBIG;
	if (rc == 0) {
		char text[3 + VS_B64_LEN(VS_SCRAM_KEY_LEN)] = "v=";
		rc = 2 + (int)vs_b64_encode(sig, sizeof(sig), text + 2, VS_B64_PAD);
		memcpy(out, text, (size_t)rc);
		s->step = S_DONE;
	} else if (rc == VS_EAUTH && why) {
		*why = "invalid-proof";
	}
	OPENSSL_cleanse(sig, sizeof(sig));
	return rc;
}

/* ---- client ---- */

void vs_scram_client_init(struct vs_scram_client *c)
{
	memset(c, 0, sizeof(*c));
	c->min_iterations = VS_SCRAM_ITERATIONS;
}

void vs_scram_client_fini(struct vs_scram_client *c)
{
	OPENSSL_cleanse(c, sizeof(*c));
}

int vs_scram_client_first(struct vs_scram_client *c, const char *user, size_t ulen, uint8_t *out,
			  size_t cap)
{
	if (c->step != C_START)
		return VS_ESTATE;
	c->step = C_FAILED;
	if (ulen == 0 || memchr(user, '\0', ulen) || !vs_utf8_valid((const uint8_t *)user, ulen))
		return VS_ECONF;
	char nonce[VS_SCRAM_NONCE_MAX + 1];
	long nn = make_nonce(c->test_nonce, nonce);
	if (nn < 0)
		return (int)nn;
	/* "n=" name ",r=" nonce */
	long en = escape_name(user, ulen, c->bare + 2, sizeof(c->bare) - 2);
	if (en < 0 || (size_t)en + 2 + 3 + (size_t)nn > sizeof(c->bare))
		return VS_ECONF;
	memcpy(c->bare, "n=", 2);
	size_t n = 2 + (size_t)en;
	memcpy(c->bare + n, ",r=", 3);
	c->cnonce_off = (uint16_t)(n + 3);
	c->cnonce_len = (uint16_t)nn;
	memcpy(c->bare + n + 3, nonce, (size_t)nn);
	c->bare_len = (uint16_t)(n + 3 + (size_t)nn);
	if (3 + (size_t)c->bare_len > cap)
		return VS_ETOOBIG;
	memcpy(out, "n,,", 3); /* no channel binding, no authorization identity */
	memcpy(out + 3, c->bare, c->bare_len);
	c->step = C_FIRST_SENT;
	return 3 + c->bare_len;
}

/* server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
 *                        ["," extensions] */
static int parse_server_first(const struct vs_scram_client *c, const char *m, size_t n,
			      struct vs_scram_cred *cred, const char **nonce, size_t *nonce_len)
{
	struct cur k = {m, m + n};
	const char *v;
	size_t vn;
	unsigned long it;
	if (!take(&k, 'r', &v, &vn) || vn <= c->cnonce_len || vn > 2 * VS_SCRAM_NONCE_MAX ||
	    !printable(v, vn) || memcmp(v, c->bare + c->cnonce_off, c->cnonce_len) != 0)
		return VS_EPROTO; /* also "m=": a mandatory extension we do not know */
	*nonce = v;
	*nonce_len = vn;
	if (!take(&k, 's', &v, &vn))
		return VS_EPROTO;
	ssize_t sl = vs_b64_decode(v, vn, cred->salt, sizeof(cred->salt), VS_B64_PAD);
	if (sl < 1)
		return VS_EPROTO;
	cred->salt_len = (uint8_t)sl;
	if (!take(&k, 'i', &v, &vn) || !posit_number(v, vn, VS_SCRAM_ITER_MAX, &it) ||
	    it < c->min_iterations)
		return VS_EPROTO; /* a weak count is a downgrade; RFC 7677 section 4 */
	cred->iterations = (unsigned)it;
	return only_extensions(&k, 0) ? 0 : VS_EPROTO;
}

/* Computes the proof and the expected ServerSignature for the AuthMessage am. */
static int make_proof(struct vs_scram_client *c, const struct vs_scram_cred *cred,
		      const uint8_t *pw, size_t pwlen, const char *am, size_t amlen,
		      uint8_t proof[VS_SCRAM_KEY_LEN])
{
	uint8_t ck[VS_SCRAM_KEY_LEN], stored[VS_SCRAM_KEY_LEN], server[VS_SCRAM_KEY_LEN];
	uint8_t csig[VS_SCRAM_KEY_LEN];
	int rc =
	    derive(pw, pwlen, cred->salt, cred->salt_len, cred->iterations, ck, stored, server);
	if (rc == 0 && (hmac(stored, sizeof(stored), am, amlen, csig) ||
			hmac(server, sizeof(server), am, amlen, c->server_sig)))
		rc = VS_EPROTO;
	for (size_t i = 0; rc == 0 && i < VS_SCRAM_KEY_LEN; i++)
		proof[i] = ck[i] ^ csig[i];
	OPENSSL_cleanse(ck, sizeof(ck));
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(server, sizeof(server));
	OPENSSL_cleanse(csig, sizeof(csig));
	return rc;
}

int vs_scram_client_final(struct vs_scram_client *c, const uint8_t *msg, size_t len,
			  const uint8_t *pw, size_t pwlen, uint8_t *out, size_t cap)
{
	if (c->step != C_FIRST_SENT)
		return VS_ESTATE;
	c->step = C_FAILED;
	const char *m = (const char *)msg, *nonce;
	size_t nonce_len;
	struct vs_scram_cred cred;
	if (!msg || len > VS_SCRAM_MSG_MAX / 2 || memchr(m, '\0', len) ||
	    parse_server_first(c, m, len, &cred, &nonce, &nonce_len))
		return VS_EPROTO;
	/* client-final-message-without-proof = "c=biws,r=" nonce; then ",p=" proof */
	char final[VS_SCRAM_MSG_MAX], am[AUTHMSG_MAX];
	int k = snprintf(final, sizeof(final), "c=biws,r=%.*s", (int)nonce_len, nonce);
	long amlen = auth_message(am, c->bare, c->bare_len, m, len, final, (size_t)k);
	uint8_t proof[VS_SCRAM_KEY_LEN];
	if (amlen < 0)
		return VS_ETOOBIG;
	int rc = make_proof(c, &cred, pw, pwlen, am, (size_t)amlen, proof);
	if (rc < 0)
		return rc;
	memcpy(final + k, ",p=", 3);
	k += 3 + (int)vs_b64_encode(proof, sizeof(proof), final + k + 3, VS_B64_PAD);
	OPENSSL_cleanse(proof, sizeof(proof));
	if ((size_t)k > cap)
		return VS_ETOOBIG;
	memcpy(out, final, (size_t)k);
	c->step = C_FINAL_SENT;
	return k;
}

int vs_scram_client_check(struct vs_scram_client *c, const uint8_t *msg, size_t len)
{
	if (c->step != C_FINAL_SENT)
		return VS_ESTATE;
	c->step = C_FAILED;
	const char *m = (const char *)msg;
	struct cur k = {m, m + len};
	const char *v;
	size_t vn;
	uint8_t sig[VS_SCRAM_KEY_LEN];
	if (!msg || memchr(m, '\0', len))
		return VS_EPROTO;
	if (take(&k, 'e', &v, &vn))
		return VS_EAUTH; /* server-error: the server refused us */
	if (!take(&k, 'v', &v, &vn) ||
	    vs_b64_decode(v, vn, sig, sizeof(sig), VS_B64_PAD) != VS_SCRAM_KEY_LEN ||
	    !only_extensions(&k, 0))
		return VS_EPROTO;
	if (CRYPTO_memcmp(sig, c->server_sig, sizeof(sig)) != 0)
		return VS_EAUTH;
	c->step = C_DONE;
	return 0;
}
