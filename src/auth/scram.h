/*
 * SCRAM-SHA-256 (RFC 5802, with SHA-256 as RFC 7677 registers it) for MQTT 5.0 enhanced
 * authentication (section 4.12): the Authentication Method "SCRAM-SHA-256", the four messages
 * carried as Authentication Data in CONNECT, AUTH, AUTH and CONNACK:
 *
 *   client-first   n,,n=user,r=CNONCE                                   CONNECT
 *   server-first   r=CNONCE+SNONCE,s=SALT,i=ITERATIONS                  AUTH 0x18
 *   client-final   c=biws,r=CNONCE+SNONCE,p=ClientProof                 AUTH 0x18
 *   server-final   v=ServerSignature                                    CONNACK 0x00
 *
 * Both roles, as pure functions: no I/O, no allocation (OpenSSL's digests aside), outputs into
 * caller memory of VS_SCRAM_MSG_MAX bytes, which always suffices. The state of one exchange is a
 * struct the caller owns (a few kilobytes: keep it only while the exchange runs) and clears
 * with the _fini function, which wipes the keys. This file is compiled into libviesti as well as
 * the broker, so it depends on nothing above src/base, src/codec and OpenSSL's libcrypto.
 *
 * Not supported, on purpose:
 *   - Channel binding (SCRAM-SHA-256-PLUS). A client-first-message with gs2 flag "p=..." is
 *     refused ("channel-binding-not-supported"). Flag "y" means "I support channel binding but
 *     think the server does not" (RFC 5802 section 6); since this server indeed does not, "y" is
 *     no sign of a downgrade and is accepted, and c= must then carry "y,," ("eSws"). The client
 *     role always sends "n".
 *   - An authorization identity (gs2 "a="): the MQTT identity is the SCRAM user name. Refused.
 *   - SASLprep (RFC 4013). User names and passwords are used as the UTF-8 bytes they are, with
 *     no Unicode normalisation and no mapping of non-ASCII spaces. For ASCII names and passwords
 *     this is exactly SASLprep's result; otherwise a client that does apply SASLprep (or types
 *     the same text in another normal form, say a decomposed "é") derives different keys and
 *     fails. Both sides here agree, since both use the bytes; the password file's plain CONNECT
 *     check does the same.
 * User names are escaped as RFC 5802 section 5.1 requires: ',' as "=2C", '=' as "=3D".
 * Unknown attributes (extensions) are ignored, as RFC 5802 section 7 requires; "m=" (reserved
 * for mandatory extensions) fails the exchange, as section 5.1 requires.
 */
#ifndef VS_AUTH_SCRAM_H
#define VS_AUTH_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#define VS_SCRAM_METHOD	     "SCRAM-SHA-256" /* the MQTT Authentication Method */
#define VS_SCRAM_KEY_LEN     32		     /* SHA-256 */
#define VS_SCRAM_SALT_MAX    64
#define VS_SCRAM_SALT_LEN    16	  /* the salt `viesti passwd` writes (PostgreSQL's length too) */
#define VS_SCRAM_ITERATIONS  4096 /* RFC 7677 section 4: at least 4096; the default and floor */
#define VS_SCRAM_ITER_MAX    10000000 /* a client refuses more: seconds of PBKDF2 per connect */
#define VS_SCRAM_NONCE_BYTES 18	      /* random bytes in our nonce: 24 base64 characters */
#define VS_SCRAM_NONCE_MAX   255      /* longest nonce (one side's part) accepted from a peer */
#define VS_SCRAM_BARE_MAX                                                                          \
	1024		      /* longest client-first-message-bare: a user name of up to           \
			       * about 980 bytes (a third of that if every byte is escaped) */
#define VS_SCRAM_MSG_MAX 2048 /* every message this module writes fits */

/* A user's credentials as a SCRAM server stores them (RFC 5802 section 3). */
struct vs_scram_cred {
	unsigned iterations; /* PBKDF2 iterations, >= 1 */
	uint8_t salt_len;    /* 1..VS_SCRAM_SALT_MAX */
	uint8_t salt[VS_SCRAM_SALT_MAX];
	uint8_t stored_key[VS_SCRAM_KEY_LEN]; /* H(HMAC(SaltedPassword, "Client Key")) */
	uint8_t server_key[VS_SCRAM_KEY_LEN]; /* HMAC(SaltedPassword, "Server Key") */
};

/* Derives stored_key and server_key from pw[0..pwlen) with c's salt and iterations, which the
 * caller has set. Returns 0, VS_ECONF for a bad salt length or iteration count, VS_ETOOBIG, or
 * VS_EPROTO if OpenSSL failed. */
int vs_scram_cred_make(struct vs_scram_cred *c, const uint8_t *pw, size_t pwlen);

/* Whether pw[0..pwlen) is the password of c (a plain MQTT CONNECT password checked against
 * SCRAM credentials): 1 yes, 0 no. Costs one PBKDF2; the final comparison takes constant time. */
int vs_scram_cred_verify(const struct vs_scram_cred *c, const uint8_t *pw, size_t pwlen);

/* ---- Server role ---------------------------------------------------------------------------
 * The broker's steps, for a CONNECT with Authentication Method "SCRAM-SHA-256":
 *   1. vs_scram_server_init(&s);
 *   2. vs_scram_server_recv_first(&s, CONNECT's Authentication Data) -> s.user
 *   3. look up s.user's credentials (vs_passwd_scram_lookup() gives a deterministic stand-in
 *      for unknown users, so that step 4 looks the same for them), then
 *      vs_scram_server_send_first(&s, &cred, out) -> AUTH 0x18 with out as Authentication Data
 *   4. vs_scram_server_recv_final(&s, the client's AUTH Authentication Data, out)
 *      -> CONNACK 0x00 with out as Authentication Data;
 *   5. vs_scram_server_fini(&s).
 * Any error ends the exchange (later calls return VS_ESTATE): the broker refuses the CONNECT,
 * with CONNACK 0x87 Not authorized [MQTT-4.12.0-4] (VS_EPROTO from step 2 may also be 0x8C Bad
 * authentication method when the method is not what the client meant). Where it fails, *why
 * (when why is non-NULL) is set to RFC 5802's server-error-value for the case ("invalid-proof",
 * "channel-binding-not-supported", "invalid-encoding", "extensions-not-supported",
 * "channel-bindings-dont-match", "other-error"): for logs, or for "e=" if a broker wants to send
 * it; it never names a user.
 */
struct vs_scram_server {
	const char *test_nonce; /* tests only: our nonce part instead of a random one (printable
				 * ASCII, no ','); NULL in real use */
	uint8_t step;		/* next call expected; see scram.c */
	uint8_t gs2_len;	/* the gs2 header, "n,," or "y,,", that c= must repeat */
	char gs2[3];
	uint16_t bare_len;   /* client-first-message-bare, for the AuthMessage */
	uint16_t cnonce_off; /* the client's nonce inside bare */
	uint16_t cnonce_len;
	uint16_t first_len; /* server-first-message, for the AuthMessage */
	uint16_t nonce_len; /* client + server nonce: its first nonce_len bytes after "r=" */
	char bare[VS_SCRAM_BARE_MAX];
	char first[VS_SCRAM_MSG_MAX / 2];
	char user[VS_SCRAM_BARE_MAX]; /* the user name, unescaped, NUL-terminated (step 2 on) */
	uint8_t stored_key[VS_SCRAM_KEY_LEN];
	uint8_t server_key[VS_SCRAM_KEY_LEN];
};

void vs_scram_server_init(struct vs_scram_server *s);
/* Wipes the keys and the messages. */
void vs_scram_server_fini(struct vs_scram_server *s);

/* Parses the client-first-message msg[0..len). Returns 0 (s->user is the user name: valid UTF-8,
 * no NUL, non-empty), VS_EPROTO if malformed or asking for what is not supported, VS_ESTATE if
 * called out of order. */
int vs_scram_server_recv_first(struct vs_scram_server *s, const uint8_t *msg, size_t len,
			       const char **why);

/* Writes the server-first-message for cred (copied: it need not outlive the call) into out
 * (cap bytes). Returns its length, VS_ETOOBIG if cap is too small, VS_EPROTO if no random bytes
 * could be had, or VS_ESTATE. */
int vs_scram_server_send_first(struct vs_scram_server *s, const struct vs_scram_cred *cred,
			       uint8_t *out, size_t cap);

/* Verifies the client-final-message msg[0..len) and writes the server-final-message into out.
 * Returns its length (> 0): the client is authenticated as s->user. VS_EAUTH: the proof is
 * wrong (wrong password, or a stand-in credential for an unknown user). VS_EPROTO: malformed, or
 * c= / r= do not repeat the earlier messages (a replay or a tampered message). VS_ETOOBIG,
 * VS_ESTATE. */
int vs_scram_server_recv_final(struct vs_scram_server *s, const uint8_t *msg, size_t len,
			       uint8_t *out, size_t cap, const char **why);

/* ---- Client role --------------------------------------------------------------------------- */
struct vs_scram_client {
	const char *test_nonce;	 /* tests only: our nonce instead of a random one */
	unsigned min_iterations; /* VS_SCRAM_ITERATIONS by init; tests may lower it */
	uint8_t step;
	uint16_t bare_len;
	uint16_t cnonce_off;
	uint16_t cnonce_len;
	char bare[VS_SCRAM_BARE_MAX];
	uint8_t server_sig[VS_SCRAM_KEY_LEN]; /* the ServerSignature the server must send */
};

void vs_scram_client_init(struct vs_scram_client *c);
void vs_scram_client_fini(struct vs_scram_client *c);

/* Writes the client-first-message for user[0..ulen) (UTF-8, escaped here) into out. Returns its
 * length, VS_ECONF for an empty, non-UTF-8 or too long user name, VS_ETOOBIG, VS_EPROTO (no
 * random bytes), VS_ESTATE. */
int vs_scram_client_first(struct vs_scram_client *c, const char *user, size_t ulen, uint8_t *out,
			  size_t cap);

/* Reads the server-first-message msg[0..len) and writes the client-final-message, with the proof
 * of pw[0..pwlen), into out. Returns its length; VS_EPROTO if msg is malformed, its nonce does
 * not start with ours, or its iteration count is below min_iterations or above
 * VS_SCRAM_ITER_MAX; VS_ETOOBIG; VS_ESTATE. */
int vs_scram_client_final(struct vs_scram_client *c, const uint8_t *msg, size_t len,
			  const uint8_t *pw, size_t pwlen, uint8_t *out, size_t cap);

/* Checks the server-final-message msg[0..len): 0 when it proves the server knows our
 * credentials (mutual authentication); VS_EAUTH for a wrong ServerSignature or an "e=" error
 * from the server; VS_EPROTO if malformed; VS_ESTATE. */
int vs_scram_client_check(struct vs_scram_client *c, const uint8_t *msg, size_t len);

#endif
