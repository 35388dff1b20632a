/*
 * Fuzzes the password file reader: any byte string must load or fail with a "NAME:LINE: why"
 * message, never crash, leak or read out of bounds; a loaded table must answer checks and SCRAM
 * look-ups (the same stand-in twice for the same unknown user). Each line is also fed to the hash
 * decoder alone: whatever it accepts must format and decode back to the same parameters, salt
 * and hash.
 *
 * Work is capped so that one input cannot spend seconds in a key derivation: hashes are verified
 * only when cheap ($7$ up to 1000 iterations, argon2id up to 64 KiB, 2 passes, 2 lanes; never
 * SCRAM, whose floor is 4096 iterations of PBKDF2), and a table holding a costlier entry is
 * loaded, looked up and freed but not checked, since its unknown-user check costs what its last
 * entry costs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int too_slow(const struct vs_passwd_hash *h)
{
	switch (h->type) {
	case VS_PASSWD_PBKDF2:
		return h->iterations > 1000;
	case VS_PASSWD_ARGON2ID:
		return h->memory_kib > 64 || h->iterations > 2 || h->lanes > 2;
	case VS_PASSWD_SCRAM:
		return 1;
	default:
		return 0;
	}
}

static void roundtrip_hash(const char *s, size_t n)
{
	struct vs_passwd_hash h, again;
	char text[VS_PASSWD_HASH_STRMAX];
	if (vs_passwd_hash_parse(&h, s, n, NULL) != 0)
		return;
	int k = vs_passwd_hash_format(&h, text, sizeof(text));
	if (k < 0 || vs_passwd_hash_parse(&again, text, (size_t)k, NULL) != 0)
		abort();
	if (memcmp(&h, &again, sizeof(h)) != 0)
		abort();
	if (!too_slow(&h) && vs_passwd_hash_verify(&h, (const uint8_t *)s, n) < 0)
		abort();
}

/* Whether any "$7$N" in the input has N > 1000 (or more digits than that), or the input names
 * argon2id or SCRAM at all: such a table is loaded and freed but not checked, since one check
 * could run for minutes. */
static int slow_input(const uint8_t *data, size_t size)
{
	if (memmem(data, size, "$argon2id$", 10) || memmem(data, size, "$scram-sha-256$", 15))
		return 1;
	for (size_t i = 0; i + 3 <= size; i++) {
		if (memcmp(data + i, "$7$", 3) != 0)
			continue;
		unsigned long v = 0;
		size_t k = i + 3, digits = 0;
		while (k < size && data[k] >= '0' && data[k] <= '9' && digits < 12) {
			v = v * 10 + (data[k++] - '0');
			digits++;
		}
		if (v > 1000)
			return 1;
	}
	return 0;
}

/* SCRAM credentials, real or stand-in, are well-formed and the same when asked twice. */
static void lookup_twice(const struct vs_passwd *pf, const char *user)
{
	struct vs_scram_cred a, b;
	int ra = vs_passwd_scram_lookup(pf, user, &a);
	int rb = vs_passwd_scram_lookup(pf, user, &b);
	if (ra < 0 || ra != rb || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	if (a.salt_len < 1 || a.salt_len > VS_SCRAM_SALT_MAX || a.iterations < VS_SCRAM_ITERATIONS)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	/* Per-line hash decoding. */
	for (size_t i = 0; i < size;) {
		const char *nl = memchr(text + i, '\n', size - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : size - i;
		const char *colon = memchr(text + i, ':', n);
		if (colon)
			roundtrip_hash(colon + 1, n - (size_t)(colon + 1 - (text + i)));
		else
			roundtrip_hash(text + i, n);
		i += n + 1;
	}
	char err[256] = "";
	struct vs_passwd *pf = vs_passwd_parse(text, size, "fuzz.pw", err, sizeof(err));
	if (!pf) {
		if (strncmp(err, "fuzz.pw:", 8) != 0)
			abort(); /* every failure names the file */
		return 0;
	}
	if (!slow_input(data, size)) {
		(void)vs_passwd_check(pf, "a", (const uint8_t *)"pw", 2);
		(void)vs_passwd_check(pf, "nobody", NULL, 0);
	}
	lookup_twice(pf, "a");
	lookup_twice(pf, "nobody");
	(void)vs_passwd_count(pf);
	vs_passwd_free(pf);
	return 0;
}
