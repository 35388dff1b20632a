/*
 * SCRAM-SHA-256 as a struct vs_cauth (see auth.h). Each function is one step of
 * auth/scram.h's client role; errors are kept in `why` in words for the log, since the core
 * reports only a code.
 */
#include "client/auth.h"

#include <string.h>

#include "base/error.h"

int vs_client_auth_known(const char *method)
{
	return method && strcmp(method, VS_SCRAM_METHOD) == 0;
}

int vs_client_scram_user_ok(const char *user)
{
	struct vs_scram_client c;
	uint8_t out[VS_SCRAM_MSG_MAX];
	vs_scram_client_init(&c);
	c.test_nonce = "012345678901234567890123"; /* as long as a real one */
	int n = vs_scram_client_first(&c, user, strlen(user), out, sizeof(out));
	vs_scram_client_fini(&c);
	return n > 0;
}

static int scram_start(void *ctx, struct vs_buf *out)
{
	struct vs_client_scram *s = ctx;
	vs_scram_client_fini(&s->sc);
	vs_scram_client_init(&s->sc);
	s->sc.test_nonce = s->test_nonce;
	s->sc.min_iterations = s->min_iterations;
	s->why = NULL;
	int n = vs_scram_client_first(&s->sc, s->user, strlen(s->user), s->buf, sizeof(s->buf));
	if (n < 0) {
		s->why = "SCRAM: the user name cannot be sent (empty, not UTF-8, or too long)";
		return n;
	}
	out->p = s->buf;
	out->len = (size_t)n;
	return 0;
}

static int scram_step(void *ctx, const struct vs_buf *in, struct vs_buf *out)
{
	struct vs_client_scram *s = ctx;
	int n =
	    vs_scram_client_final(&s->sc, in->p, in->len, s->pw, s->pwlen, s->buf, sizeof(s->buf));
	if (n < 0) {
		s->why = "SCRAM: the broker's server-first-message is malformed, does not repeat "
			 "our nonce, or asks for fewer than 4096 iterations";
		return n == VS_ESTATE ? VS_EPROTO : n; /* a second AUTH 0x18: out of protocol */
	}
	out->p = s->buf;
	out->len = (size_t)n;
	return 0;
}

static int scram_finish(void *ctx, const struct vs_buf *in)
{
	struct vs_client_scram *s = ctx;
	int rc = vs_scram_client_check(&s->sc, in->p, in->len);
	if (rc == VS_EAUTH || (rc < 0 && in->len == 0)) {
		/* No ServerSignature at all is as bad as a wrong one: mutual authentication is
		 * the point of the exchange. */
		s->why = "SCRAM: the broker did not prove that it knows the credentials (wrong or "
			 "missing ServerSignature)";
		rc = VS_EAUTH;
	} else if (rc < 0) {
		s->why = "SCRAM: the broker's server-final-message is malformed";
		rc = rc == VS_ESTATE ? VS_EPROTO : rc;
	}
	vs_scram_client_fini(&s->sc);
	return rc;
}

static const struct vs_cauth_ops scram_ops = {
    .start = scram_start,
    .step = scram_step,
    .finish = scram_finish,
};

void vs_client_scram_init(struct vs_client_scram *s, const char *user, const uint8_t *pw,
			  size_t pwlen)
{
	memset(s, 0, sizeof(*s));
	s->auth.method = VS_SCRAM_METHOD;
	s->auth.ops = &scram_ops;
	s->auth.ctx = s;
	s->user = user;
	s->pw = pw;
	s->pwlen = pwlen;
	s->min_iterations = VS_SCRAM_ITERATIONS;
}

void vs_client_scram_fini(struct vs_client_scram *s)
{
	vs_scram_client_fini(&s->sc);
	memset(s->buf, 0, sizeof(s->buf));
}
