/*
 * Unit tests for src/auth/scram.c, SCRAM-SHA-256 in both roles. The RFC 7677 section 3 example
 * (user "user", password "pencil") is replayed with its nonces fixed through the test hooks,
 * and every message is compared with the RFC's byte for byte. Then the ways an exchange must
 * fail: malformed messages (VS_EPROTO), a wrong password (VS_EAUTH), a tampered nonce, a
 * tampered ServerSignature, steps out of order. Every input a parser reads sits right before a
 * guard page, so an over-read faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/scram.h"
#include "base/base64.h"
#include "base/error.h"
#include "guard.h"

/* RFC 7677 section 3. */
#define C_NONCE	     "rOprNGfwEbeRWgbNEkqO"
#define S_NONCE	     "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define SALT_B64     "W22ZaJ0SNY7soEsUEjb6gQ=="
#define CLIENT_FIRST "n,,n=user,r=" C_NONCE
#define SERVER_FIRST "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=4096"
#define CLIENT_FINAL "c=biws,r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static struct vs_scram_cred pencil; /* set up once: 4096 iterations of PBKDF2 */

static int setup(void **state)
{
	memset(&pencil, 0, sizeof(pencil));
	pencil.iterations = 4096;
	pencil.salt_len = (uint8_t)vs_b64_decode(SALT_B64, strlen(SALT_B64), pencil.salt,
						 sizeof(pencil.salt), VS_B64_PAD);
	return vs_scram_cred_make(&pencil, (const uint8_t *)"pencil", 6);
}

/* Calls into the module with msg copied before a guard page. */
static int srv_first(struct vs_scram_server *s, const char *msg, const char **why)
{
	size_t n = strlen(msg);
	uint8_t *g = guard_copy(msg, n);
	int rc = vs_scram_server_recv_first(s, g, n, why);
	guard_free(g, n);
	return rc;
}

static int srv_final(struct vs_scram_server *s, const char *msg, char *out, const char **why)
{
	size_t n = strlen(msg);
	uint8_t *g = guard_copy(msg, n);
	int rc = vs_scram_server_recv_final(s, g, n, (uint8_t *)out, VS_SCRAM_MSG_MAX, why);
	guard_free(g, n);
	if (rc > 0)
		out[rc] = '\0';
	return rc;
}

static int cli_final(struct vs_scram_client *c, const char *msg, const char *pw, char *out)
{
	size_t n = strlen(msg);
	uint8_t *g = guard_copy(msg, n);
	int rc = vs_scram_client_final(c, g, n, (const uint8_t *)pw, strlen(pw), (uint8_t *)out,
				       VS_SCRAM_MSG_MAX);
	guard_free(g, n);
	if (rc > 0)
		out[rc] = '\0';
	return rc;
}

static int cli_check(struct vs_scram_client *c, const char *msg)
{
	size_t n = strlen(msg);
	uint8_t *g = guard_copy(msg, n);
	int rc = vs_scram_client_check(c, g, n);
	guard_free(g, n);
	return rc;
}

static int cli_first(struct vs_scram_client *c, const char *user, char *out)
{
	int rc = vs_scram_client_first(c, user, strlen(user), (uint8_t *)out, VS_SCRAM_MSG_MAX);
	if (rc > 0)
		out[rc] = '\0';
	return rc;
}

/* A server that has read `first` and sent its server-first-message for pencil. */
static void server_at_final(struct vs_scram_server *s, const char *first)
{
	char out[VS_SCRAM_MSG_MAX];
	vs_scram_server_init(s);
	s->test_nonce = S_NONCE;
	assert_int_equal(srv_first(s, first, NULL), 0);
	assert_true(vs_scram_server_send_first(s, &pencil, (uint8_t *)out, sizeof(out)) > 0);
}

/* A client that has sent the RFC's client-first-message. */
static void client_at_first(struct vs_scram_client *c)
{
	char out[VS_SCRAM_MSG_MAX];
	vs_scram_client_init(c);
	c->test_nonce = C_NONCE;
	assert_int_equal(cli_first(c, "user", out), strlen(CLIENT_FIRST));
}

static void rfc_7677_example_both_roles_byte_for_byte(void **state)
{
	struct vs_scram_client c;
	struct vs_scram_server s;
	char msg[VS_SCRAM_MSG_MAX];
	const char *why = NULL;
	vs_scram_client_init(&c);
	vs_scram_server_init(&s);
	c.test_nonce = C_NONCE;
	s.test_nonce = S_NONCE;

	assert_int_equal(cli_first(&c, "user", msg), strlen(CLIENT_FIRST));
	assert_string_equal(msg, CLIENT_FIRST);
	assert_int_equal(srv_first(&s, msg, &why), 0);
	assert_string_equal(s.user, "user");

	int n = vs_scram_server_send_first(&s, &pencil, (uint8_t *)msg, sizeof(msg));
	assert_int_equal(n, strlen(SERVER_FIRST));
	msg[n] = '\0';
	assert_string_equal(msg, SERVER_FIRST);

	char final[VS_SCRAM_MSG_MAX];
	assert_int_equal(cli_final(&c, msg, "pencil", final), strlen(CLIENT_FINAL));
	assert_string_equal(final, CLIENT_FINAL);

	assert_int_equal(srv_final(&s, final, msg, &why), strlen(SERVER_FINAL));
	assert_string_equal(msg, SERVER_FINAL);
	assert_int_equal(cli_check(&c, msg), 0);
	vs_scram_client_fini(&c);
	vs_scram_server_fini(&s);
}

static void random_nonces_and_a_round_trip(void **state)
{
	struct vs_scram_client c;
	struct vs_scram_server s;
	char a[VS_SCRAM_MSG_MAX], b[VS_SCRAM_MSG_MAX];
	vs_scram_client_init(&c);
	vs_scram_server_init(&s);
	int n = cli_first(&c, "user", a);
	/* "n,,n=user,r=" and 24 characters of base64 */
	assert_int_equal(n, 12 + 24);
	assert_int_equal(srv_first(&s, a, NULL), 0);
	n = vs_scram_server_send_first(&s, &pencil, (uint8_t *)b, sizeof(b));
	assert_int_equal(n, 2 + 48 + 3 + 24 + 7);
	b[n] = '\0';
	assert_memory_equal(b + 2, a + 12, 24); /* the client's nonce comes first */
	assert_true(cli_final(&c, b, "pencil", a) > 0);
	assert_true(srv_final(&s, a, b, NULL) > 0);
	assert_int_equal(cli_check(&c, b), 0);
}

static void wrong_password_is_eauth(void **state)
{
	struct vs_scram_client c;
	struct vs_scram_server s;
	char final[VS_SCRAM_MSG_MAX], out[VS_SCRAM_MSG_MAX];
	const char *why = NULL;
	client_at_first(&c);
	assert_true(cli_final(&c, SERVER_FIRST, "pencil!", final) > 0);
	server_at_final(&s, CLIENT_FIRST);
	assert_int_equal(srv_final(&s, final, out, &why), VS_EAUTH);
	assert_string_equal(why, "invalid-proof");
	/* the exchange is over */
	assert_int_equal(srv_final(&s, CLIENT_FINAL, out, NULL), VS_ESTATE);
}

static void tampered_client_final_is_refused(void **state)
{
	static const struct {
		const char *final, *why;
		int rc;
	} cases[] = {
	    /* another nonce: a replay from another exchange */
	    {"c=biws,r=" C_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgs"
	     "qmmiz7AndVQ=",
	     "other-error", VS_EPROTO},
	    {"c=biws,r=" C_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "other-error",
	     VS_EPROTO},
	    /* one bit of the proof */
	    {"c=biws,r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=",
	     "invalid-proof", VS_EAUTH},
	    /* the client claims channel binding it did not announce */
	    {"c=eSws,r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	     "channel-bindings-dont-match", VS_EPROTO},
	    {"c=bi,r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	     "channel-bindings-dont-match", VS_EPROTO},
	    {"r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	     "invalid-encoding", VS_EPROTO},
	    {"c=biws,r=" C_NONCE S_NONCE, "invalid-encoding", VS_EPROTO},
	    {"c=biws,r=" C_NONCE S_NONCE ",p=", "invalid-encoding", VS_EPROTO},
	    {"c=biws,r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
	     "invalid-encoding", VS_EPROTO},
	    {"c=biws,r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,",
	     "invalid-encoding", VS_EPROTO},
	    {"c=biws,r=" C_NONCE S_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
	     "invalid-encoding", VS_EPROTO},
	    {"c=biws,r=" C_NONCE S_NONCE ",m=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	     "invalid-encoding", VS_EPROTO},
	    {"", "invalid-encoding", VS_EPROTO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_scram_server s;
		char out[VS_SCRAM_MSG_MAX];
		const char *why = NULL;
		server_at_final(&s, CLIENT_FIRST);
		int rc = srv_final(&s, cases[i].final, out, &why);
		if (rc != cases[i].rc || !why || strcmp(why, cases[i].why))
			print_error("case %zu: rc %d why %s\n", i, rc, why ? why : "(null)");
		assert_int_equal(rc, cases[i].rc);
		assert_string_equal(why, cases[i].why);
	}
}

static void extensions_in_client_final_are_ignored_but_signed(void **state)
{
	struct vs_scram_client c;
	struct vs_scram_server s;
	char out[VS_SCRAM_MSG_MAX];
	/* The proof covers the client-final-message without the proof, extensions included: the
	 * RFC's proof does not match a message with an extra attribute, so the check fails at the
	 * proof, not at the parser. */
	server_at_final(&s, CLIENT_FIRST);
	assert_int_equal(srv_final(&s,
				   "c=biws,r=" C_NONCE S_NONCE
				   ",x=ext,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
				   out, NULL),
			 VS_EAUTH);
	/* extensions in the client-first-message-bare are part of the AuthMessage too */
	client_at_first(&c);
	server_at_final(&s, CLIENT_FIRST ",x=ext");
	char final[VS_SCRAM_MSG_MAX];
	assert_true(cli_final(&c, SERVER_FIRST, "pencil", final) > 0);
	assert_int_equal(srv_final(&s, final, out, NULL), VS_EAUTH);
}

static void malformed_client_first_is_eproto(void **state)
{
	static const struct {
		const char *first, *why;
	} cases[] = {
	    {"p=tls-unique,,n=user,r=" C_NONCE, "channel-binding-not-supported"},
	    {"n,a=admin,n=user,r=" C_NONCE, "other-error"},
	    {"x,,n=user,r=" C_NONCE, "other-error"},
	    {"n,n=user,r=" C_NONCE, "other-error"},
	    {"n,,", "invalid-username-encoding"},
	    {"", "other-error"},
	    {"n,,m=ext,n=user,r=" C_NONCE, "extensions-not-supported"},
	    {"n,,n=,r=" C_NONCE, "invalid-username-encoding"},
	    {"n,,n=a=2,r=" C_NONCE, "invalid-username-encoding"},
	    {"n,,n=a=2D,r=" C_NONCE, "invalid-username-encoding"},
	    {"n,,n=a=,r=" C_NONCE, "invalid-username-encoding"},
	    {"n,,n=\xc3\x28,r=" C_NONCE, "invalid-username-encoding"}, /* not UTF-8 */
	    {"n,,n=user", "invalid-encoding"},
	    {"n,,n=user,r=", "invalid-encoding"},
	    {"n,,n=user,r=" C_NONCE ",", "invalid-encoding"},
	    {"n,,n=user,r=a b", "invalid-encoding"},
	    {"n,,n=user,r=\x7f", "invalid-encoding"},
	    {"n,,n=user,r=" C_NONCE ",1=x", "invalid-encoding"},
	    {"n,,n=user,r=" C_NONCE ",x=", "invalid-encoding"},
	    {"n,,n=user,r=" C_NONCE ",m=x", "invalid-encoding"},
	    {"n,,r=" C_NONCE ",n=user", "invalid-username-encoding"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_scram_server s;
		const char *why = NULL;
		vs_scram_server_init(&s);
		int rc = srv_first(&s, cases[i].first, &why);
		if (rc != VS_EPROTO || !why || strcmp(why, cases[i].why))
			print_error("case %zu: rc %d why %s\n", i, rc, why ? why : "(null)");
		assert_int_equal(rc, VS_EPROTO);
		assert_string_equal(why, cases[i].why);
		uint8_t out[VS_SCRAM_MSG_MAX];
		assert_int_equal(vs_scram_server_send_first(&s, &pencil, out, sizeof(out)),
				 VS_ESTATE);
	}
	/* a NUL inside is never valid */
	struct vs_scram_server s;
	vs_scram_server_init(&s);
	assert_int_equal(vs_scram_server_recv_first(&s, (const uint8_t *)"n,,n=u\0,r=x", 11, NULL),
			 VS_EPROTO);
	/* a bare message longer than the state keeps */
	char big[VS_SCRAM_BARE_MAX + 64];
	memset(big, 'u', sizeof(big));
	memcpy(big, "n,,n=", 5);
	snprintf(big + sizeof(big) - 10, 10, ",r=abcde");
	vs_scram_server_init(&s);
	assert_int_equal(srv_first(&s, big, NULL), VS_EPROTO);
}

static void gs2_y_flag_is_accepted_with_its_own_cbind(void **state)
{
	/* RFC 5802 section 6: "y" says the client could bind but thinks the server cannot; this
	 * server cannot, so there is no downgrade to detect, and c= must repeat "y,,". */
	struct vs_scram_server s;
	char out[VS_SCRAM_MSG_MAX];
	server_at_final(&s, "y,,n=user,r=" C_NONCE);
	assert_int_equal(srv_final(&s, CLIENT_FINAL, out, NULL), VS_EPROTO); /* c=biws is "n,," */
	server_at_final(&s, "y,,n=user,r=" C_NONCE);
	/* the proof is then over another message: the parser passes, the proof does not */
	assert_int_equal(srv_final(&s,
				   "c=eSws,r=" C_NONCE S_NONCE
				   ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
				   out, NULL),
			 VS_EAUTH);
}

static void user_names_are_escaped_and_unescaped(void **state)
{
	struct vs_scram_client c;
	struct vs_scram_server s;
	char msg[VS_SCRAM_MSG_MAX];
	vs_scram_client_init(&c);
	c.test_nonce = "abc";
	assert_true(cli_first(&c, "a,b=c\xc3\xa9", msg) > 0);
	assert_string_equal(msg, "n,,n=a=2Cb=3Dc\xc3\xa9,r=abc");
	vs_scram_server_init(&s);
	assert_int_equal(srv_first(&s, msg, NULL), 0);
	assert_string_equal(s.user, "a,b=c\xc3\xa9");
	/* names the client cannot send */
	vs_scram_client_init(&c);
	assert_int_equal(cli_first(&c, "", msg), VS_ECONF);
	vs_scram_client_init(&c);
	assert_int_equal(cli_first(&c, "\xff", msg), VS_ECONF);
	vs_scram_client_init(&c);
	assert_int_equal(vs_scram_client_first(&c, "a\0b", 3, (uint8_t *)msg, sizeof(msg)),
			 VS_ECONF);
}

static void malformed_server_first_is_eproto(void **state)
{
	static const char *const cases[] = {
	    "",
	    "r=" C_NONCE ",s=" SALT_B64 ",i=4096",		       /* no server part */
	    "r=xOprNGfwEbeRWgbNEkqO" S_NONCE ",s=" SALT_B64 ",i=4096", /* not our nonce */
	    "m=ext,r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=4096",
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=4095", /* RFC 7677 section 4 */
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=04096",
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=99999999999",
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=10000001", /* over VS_SCRAM_ITER_MAX */
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=",
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64,
	    "r=" C_NONCE S_NONCE ",s=,i=4096",
	    "r=" C_NONCE S_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
	    "r=" C_NONCE S_NONCE ",i=4096,s=" SALT_B64,
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=4096,",
	    "r=" C_NONCE S_NONCE ",s=" SALT_B64 ",i=4096,m=x",
	    "r=" C_NONCE "a b,s=" SALT_B64 ",i=4096",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_scram_client c;
		char out[VS_SCRAM_MSG_MAX];
		client_at_first(&c);
		int rc = cli_final(&c, cases[i], "pencil", out);
		if (rc != VS_EPROTO)
			print_error("case %zu: rc %d\n", i, rc);
		assert_int_equal(rc, VS_EPROTO);
		assert_int_equal(cli_check(&c, SERVER_FINAL), VS_ESTATE);
	}
	/* extensions after the iteration count are ignored (and signed) */
	struct vs_scram_client c;
	char out[VS_SCRAM_MSG_MAX];
	client_at_first(&c);
	assert_true(cli_final(&c, SERVER_FIRST ",x=y", "pencil", out) > 0);
}

static void iteration_floor_can_be_lowered_by_a_test(void **state)
{
	struct vs_scram_client c;
	char out[VS_SCRAM_MSG_MAX];
	client_at_first(&c);
	c.min_iterations = 1;
	assert_true(cli_final(&c, "r=" C_NONCE "x,s=" SALT_B64 ",i=2", "pencil", out) > 0);
}

static void tampered_server_final_fails_mutual_authentication(void **state)
{
	static const struct {
		const char *final;
		int rc;
	} cases[] = {
	    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G0=", VS_EAUTH},
	    {"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", VS_EAUTH},
	    {"e=invalid-proof", VS_EAUTH},
	    {"e=other-error,x=y", VS_EAUTH},
	    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", VS_EPROTO},
	    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,", VS_EPROTO},
	    {"v=", VS_EPROTO},
	    {"", VS_EPROTO},
	    {"x=1", VS_EPROTO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vs_scram_client c;
		char out[VS_SCRAM_MSG_MAX];
		client_at_first(&c);
		assert_true(cli_final(&c, SERVER_FIRST, "pencil", out) > 0);
		int rc = cli_check(&c, cases[i].final);
		if (rc != cases[i].rc)
			print_error("case %zu: rc %d\n", i, rc);
		assert_int_equal(rc, cases[i].rc);
	}
	/* the genuine one with an extension after it */
	struct vs_scram_client c;
	char out[VS_SCRAM_MSG_MAX];
	client_at_first(&c);
	assert_true(cli_final(&c, SERVER_FIRST, "pencil", out) > 0);
	assert_int_equal(cli_check(&c, SERVER_FINAL ",x=y"), 0);
}

static void steps_out_of_order_are_estate(void **state)
{
	struct vs_scram_client c;
	struct vs_scram_server s;
	char out[VS_SCRAM_MSG_MAX];
	vs_scram_client_init(&c);
	assert_int_equal(cli_final(&c, SERVER_FIRST, "pencil", out), VS_ESTATE);
	vs_scram_client_init(&c);
	assert_int_equal(cli_check(&c, SERVER_FINAL), VS_ESTATE);
	client_at_first(&c);
	assert_int_equal(cli_first(&c, "user", out), VS_ESTATE);
	vs_scram_server_init(&s);
	assert_int_equal(srv_final(&s, CLIENT_FINAL, out, NULL), VS_ESTATE);
	assert_int_equal(vs_scram_server_send_first(&s, &pencil, (uint8_t *)out, sizeof(out)),
			 VS_ESTATE);
	server_at_final(&s, CLIENT_FIRST);
	assert_int_equal(srv_first(&s, CLIENT_FIRST, NULL), VS_ESTATE);
}

static void short_output_buffers_are_etoobig(void **state)
{
	struct vs_scram_client c;
	struct vs_scram_server s;
	uint8_t out[16];
	vs_scram_client_init(&c);
	assert_int_equal(vs_scram_client_first(&c, "user", 4, out, sizeof(out)), VS_ETOOBIG);
	vs_scram_server_init(&s);
	assert_int_equal(srv_first(&s, CLIENT_FIRST, NULL), 0);
	assert_int_equal(vs_scram_server_send_first(&s, &pencil, out, sizeof(out)), VS_ETOOBIG);
}

static void credentials_verify_plain_passwords(void **state)
{
	assert_int_equal(vs_scram_cred_verify(&pencil, (const uint8_t *)"pencil", 6), 1);
	assert_int_equal(vs_scram_cred_verify(&pencil, (const uint8_t *)"pencil", 5), 0);
	assert_int_equal(vs_scram_cred_verify(&pencil, NULL, 0), 0);
	struct vs_scram_cred bad = pencil;
	bad.salt_len = 0;
	assert_int_equal(vs_scram_cred_make(&bad, (const uint8_t *)"x", 1), VS_ECONF);
	bad = pencil;
	bad.iterations = 0;
	assert_int_equal(vs_scram_cred_make(&bad, (const uint8_t *)"x", 1), VS_ECONF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rfc_7677_example_both_roles_byte_for_byte),
	    cmocka_unit_test(random_nonces_and_a_round_trip),
	    cmocka_unit_test(wrong_password_is_eauth),
	    cmocka_unit_test(tampered_client_final_is_refused),
	    cmocka_unit_test(extensions_in_client_final_are_ignored_but_signed),
	    cmocka_unit_test(malformed_client_first_is_eproto),
	    cmocka_unit_test(gs2_y_flag_is_accepted_with_its_own_cbind),
	    cmocka_unit_test(user_names_are_escaped_and_unescaped),
	    cmocka_unit_test(malformed_server_first_is_eproto),
	    cmocka_unit_test(iteration_floor_can_be_lowered_by_a_test),
	    cmocka_unit_test(tampered_server_final_fails_mutual_authentication),
	    cmocka_unit_test(steps_out_of_order_are_estate),
	    cmocka_unit_test(short_output_buffers_are_etoobig),
	    cmocka_unit_test(credentials_verify_plain_passwords),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
