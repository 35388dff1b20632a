/*
 * libviesti's enhanced authentication methods (MQTT 5.0 section 4.12), as struct vs_cauth for
 * the protocol core: for now SCRAM-SHA-256, the client role of auth/scram.h. The state of one
 * exchange lives here and is started afresh by every CONNECT, so a reconnect authenticates anew.
 * The password is read at the client-final step and never leaves in any packet.
 */
#ifndef VS_CLIENT_AUTH_H
#define VS_CLIENT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "auth/scram.h"
#include "proto/client.h"

struct vs_client_scram {
	struct vs_cauth auth; /* what vs_cproto_set_auth() takes; ctx is this struct */
	struct vs_scram_client sc;
	const char *user; /* the caller's, not owned: must outlive the struct */
	const uint8_t *pw;
	size_t pwlen;
	const char *test_nonce;	       /* tests only: copied into sc at every start */
	unsigned min_iterations;       /* VS_SCRAM_ITERATIONS; tests may lower it */
	const char *why;	       /* why the last step failed, for the log; NULL if none did */
	uint8_t buf[VS_SCRAM_MSG_MAX]; /* the last message made */
};

/* Whether libviesti knows the Authentication Method `method`. */
int vs_client_auth_known(const char *method);

/* Whether user (NUL-terminated) fits in a SCRAM client-first-message: non-empty UTF-8, short
 * enough once escaped (VS_SCRAM_BARE_MAX). */
int vs_client_scram_user_ok(const char *user);

/* Prepares s for user (NUL-terminated UTF-8) and pw[0..pwlen). */
void vs_client_scram_init(struct vs_client_scram *s, const char *user, const uint8_t *pw,
			  size_t pwlen);
/* Wipes the exchange's keys. */
void vs_client_scram_fini(struct vs_client_scram *s);

#endif
