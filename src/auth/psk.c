/*
 * The psk_file reader (see psk.h). Lines come from the auth layer's line cursor (text.h), so it
 * agrees with the password and ACL files on what a line is.
 */
#include "auth/psk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/text.h"
#include "base/bytes.h"
#include "base/error.h"
#include "base/map.h"

struct vs_psk {
	struct vs_map keys; /* identity -> struct key */
};

struct key {
	size_t len;
	uint8_t k[VS_PSK_KEY_MAX];
};

static void free_key(void *val)
{
	OPENSSL_cleanse(val, sizeof(struct key));
	free(val);
}

struct parse_ctx {
	struct vs_psk *t;
	const char *name;
	char *err;
	size_t errlen;
};

/* Parses one non-blank, non-comment line into the table. Returns 0 or VS_ECONF/-ENOMEM. */
static int parse_line(void *ctx, const char *s, size_t n, unsigned line)
{
	struct parse_ctx *pc = ctx;
	const char *name = pc->name;
	char *err = pc->err;
	size_t errlen = pc->errlen;
	if (memchr(s, '\0', n))
		return vs_auth_err(err, errlen, name, line, "NUL byte in line");
	const char *colon = memchr(s, ':', n);
	if (!colon)
		return vs_auth_err(err, errlen, name, line, "expected identity:key, found no ':'");
	const char *id = s, *hex = colon + 1;
	size_t idlen = (size_t)(colon - s), hexlen = n - idlen - 1;
	vs_auth_trim(&id, &idlen);
	vs_auth_trim(&hex, &hexlen);
	if (idlen == 0)
		return vs_auth_err(err, errlen, name, line, "empty identity");
	if (idlen > VS_PSK_IDENTITY_MAX)
		return vs_auth_err(err, errlen, name, line, "identity longer than %d bytes",
				   VS_PSK_IDENTITY_MAX);
	if (vs_map_get(&pc->t->keys, id, idlen))
		return vs_auth_err(err, errlen, name, line, "identity '%.*s' appears twice",
				   (int)idlen, id);
	if (hexlen == 0 || hexlen > 2 * VS_PSK_KEY_MAX)
		return vs_auth_err(err, errlen, name, line,
				   "identity '%.*s': expected a key of 1 to "
				   "%d bytes in hex digits",
				   (int)idlen, id, VS_PSK_KEY_MAX);
	char digits[2 * VS_PSK_KEY_MAX + 1];
	memcpy(digits, hex, hexlen);
	digits[hexlen] = '\0';
	struct key *k = malloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	int kl = vs_hex_decode(digits, k->k, sizeof(k->k));
	OPENSSL_cleanse(digits, sizeof(digits));
	if (kl <= 0) {
		free(k);
		return vs_auth_err(err, errlen, name, line,
				   "identity '%.*s': the key is not hex "
				   "digits",
				   (int)idlen, id);
	}
	k->len = (size_t)kl;
	if (vs_map_put(&pc->t->keys, id, idlen, k, NULL) < 0) {
		OPENSSL_cleanse(k, sizeof(*k));
		free(k);
		return -ENOMEM;
	}
	return 0;
}

struct vs_psk *vs_psk_parse(const char *text, size_t len, const char *name, char *err,
			    size_t errlen)
{
	struct parse_ctx pc = {
	    .t = calloc(1, sizeof(*pc.t)), .name = name, .err = err, .errlen = errlen};
	if (!pc.t) {
		vs_auth_err(err, errlen, name, 0, "out of memory");
		return NULL;
	}
	if (vs_auth_each_line(text, len, name, parse_line, &pc, err, errlen)) {
		vs_psk_free(pc.t);
		return NULL;
	}
	return pc.t;
}

static void *parse_any(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
	return vs_psk_parse(text, len, name, err, errlen);
}

struct vs_psk *vs_psk_load(const char *path, char *err, size_t errlen)
{
	return vs_auth_load(path, parse_any, err, errlen);
}

size_t vs_psk_find(const struct vs_psk *t, const char *identity, uint8_t *key, size_t cap)
{
	const struct key *k = vs_map_get(&t->keys, identity, strlen(identity));
	if (!k || k->len > cap)
		return 0;
	memcpy(key, k->k, k->len);
	return k->len;
}

size_t vs_psk_count(const struct vs_psk *t)
{
	return t->keys.count;
}

void vs_psk_free(struct vs_psk *t)
{
	if (!t)
		return;
	vs_map_fini_with(&t->keys, free_key);
	free(t);
}
