/*
 * Fuzzes the SCRAM-SHA-256 message parsers (src/auth/scram.c) that face the network:
 *   - the server's client-first-message parser, on a fresh exchange;
 *   - the server's client-final-message parser, on an exchange that has read RFC 7677's
 *     client-first-message and sent its server-first-message (RFC 7677's nonces, user "user",
 *     password "pencil"), so RFC 7677's client-final-message is the one input that succeeds;
 *   - the client's server-final-message check, on a client that has sent RFC 7677's
 *     client-final-message.
 * An input with a '\n' feeds the part before it to the first parser and the rest to the others;
 * otherwise all of it goes to each. Any input must give one of the documented results, never a
 * crash, leak or over-read; a success must come with a well-formed result (a user name that is
 * UTF-8 without NUL, a 46-byte "v=..." message). The two prepared states cost 4096 iterations of
 * PBKDF2 each, so they are made once and copied for every input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/scram.h"
#include "base/base64.h"
#include "base/error.h"
#include "codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define C_NONCE "rOprNGfwEbeRWgbNEkqO"
#define S_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define FIRST	"n,,n=user,r=" C_NONCE

static struct vs_scram_server at_final; /* read FIRST, sent server-first */
static struct vs_scram_client at_check; /* sent RFC 7677's client-final */

static void prepare(void)
{
	static const char salt[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
	uint8_t out[VS_SCRAM_MSG_MAX];
	struct vs_scram_cred cred = {.iterations = 4096};
	cred.salt_len =
	    (uint8_t)vs_b64_decode(salt, strlen(salt), cred.salt, sizeof(cred.salt), VS_B64_PAD);
	if (vs_scram_cred_make(&cred, (const uint8_t *)"pencil", 6))
		abort();
	vs_scram_server_init(&at_final);
	at_final.test_nonce = S_NONCE;
	if (vs_scram_server_recv_first(&at_final, (const uint8_t *)FIRST, strlen(FIRST), NULL) ||
	    vs_scram_server_send_first(&at_final, &cred, out, sizeof(out)) <= 0)
		abort();
	vs_scram_client_init(&at_check);
	at_check.test_nonce = C_NONCE;
	if (vs_scram_client_first(&at_check, "user", 4, out, sizeof(out)) <= 0)
		abort();
	const char *sf = "r=" C_NONCE S_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	if (vs_scram_client_final(&at_check, (const uint8_t *)sf, strlen(sf),
				  (const uint8_t *)"pencil", 6, out, sizeof(out)) <= 0)
		abort();
}

static void first(const uint8_t *m, size_t n)
{
	struct vs_scram_server s;
	const char *why = NULL;
	vs_scram_server_init(&s);
	int rc = vs_scram_server_recv_first(&s, m, n, &why);
	if (rc == 0) {
		size_t ulen = strnlen(s.user, sizeof(s.user));
		if (ulen == 0 || ulen == sizeof(s.user) ||
		    !vs_utf8_valid((const uint8_t *)s.user, ulen))
			abort();
	} else if (rc != VS_EPROTO || !why) {
		abort();
	}
	vs_scram_server_fini(&s);
}

static void final(const uint8_t *m, size_t n)
{
	struct vs_scram_server s = at_final;
	uint8_t out[VS_SCRAM_MSG_MAX];
	const char *why = NULL;
	int rc = vs_scram_server_recv_final(&s, m, n, out, sizeof(out), &why);
	if (rc > 0 && (rc != 46 || memcmp(out, "v=", 2) != 0))
		abort();
	if (rc <= 0 && ((rc != VS_EPROTO && rc != VS_EAUTH) || !why))
		abort();
}

static void check(const uint8_t *m, size_t n)
{
	struct vs_scram_client c = at_check;
	int rc = vs_scram_client_check(&c, m, n);
	if (rc != 0 && rc != VS_EPROTO && rc != VS_EAUTH)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		prepare();
		ready = 1;
	}
	const uint8_t *nl = memchr(data, '\n', size);
	const uint8_t *rest = nl ? nl + 1 : data;
	size_t n1 = nl ? (size_t)(nl - data) : size, n2 = size - (size_t)(rest - data);
	/* copies, so that an over-read of the exact length is seen by ASan */
	uint8_t *a = malloc(n1 ? n1 : 1), *b = malloc(n2 ? n2 : 1);
	if (!a || !b)
		abort();
	memcpy(a, data, n1);
	memcpy(b, rest, n2);
	first(a, n1);
	final(b, n2);
	check(b, n2);
	free(a);
	free(b);
	return 0;
}
