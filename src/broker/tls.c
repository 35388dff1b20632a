/*
 * Server TLS contexts for the listeners (see tls.h).
 *
 * Defaults, where the configuration says nothing:
 *   version     TLS 1.2 at least (tls_version raises it to 1.3, or lowers it to 1.1, which
 *               OpenSSL 3 allows only at security level 0: that is then set too);
 *   options     no compression, no renegotiation, the server's cipher order, a peer that
 *               closes without close_notify is an end of stream (MQTT frames its packets, so a
 *               truncated stream cannot pass for a whole one);
 *   memory      a connection idle for a second gives its read and write buffers back
 *               (about 34 KiB; vs_transport_shrink from the worker's sweep). Releasing them
 *               after every record instead (SSL_MODE_RELEASE_BUFFERS) cost 16% of the
 *               throughput of 100 QoS 1 pairs;
 *   resumption  session tickets (TLS 1.3 and 1.2) and the session cache (TLS 1.2), with a
 *               session id context per listener, which client verification needs;
 *   ALPN        "mqtt" is chosen when the client offers it; a client that offers only other
 *               protocols goes on without ALPN rather than failing;
 *   clients     certificates are requested only with require_certificate (as Mosquitto), then
 *               verified against cafile/capath and, with crlfile, the revocation list.
 *
 * The ENGINE interface is deprecated in OpenSSL 3 but still there (tls_engine, tls_keyform
 * engine: hardware keys); this file opts in to it, and nothing else in Viesti uses it.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "broker/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "auth/psk.h"
#include "base/error.h"
#include "net/dtls.h"
#include "net/tls.h"

/* The ex_data slots where a context keeps its PSK table, freed with the context, and where a
 * session keeps the PSK identity its client was let in with, freed with the session (OpenSSL's
 * SSL_get_psk_identity() has it for TLS 1.2 only, not when TLS 1.3 uses the same callback).
 * Slot numbers are process-wide and never change once OpenSSL has handed them out. */
static pthread_once_t psk_slot_once = PTHREAD_ONCE_INIT;
static int psk_slot = -1, psk_id_slot = -1;

static void free_psk(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	vs_psk_free(ptr);
}

static void free_psk_id(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

static void make_psk_slot(void)
{
	psk_slot = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_psk);
	psk_id_slot = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_psk_id);
}

/* "listener PORT[ ADDRESS]: " before every message. */
static int where(const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	int n = snprintf(err, errlen, "listener %d%s%s: ", lc->port, lc->bind_address ? " " : "",
			 lc->bind_address ? lc->bind_address : "");
	return n < 0 || (size_t)n >= errlen ? 0 : n;
}

#define FAIL(lc, err, errlen, ...)                                                                 \
	({                                                                                         \
		int at_ = where(lc, err, errlen);                                                  \
		vs_tls_fail((err) + at_, (errlen) - (size_t)at_, __VA_ARGS__);                     \
	})

static int no_file(const struct vs_listener_conf *lc, const char *path, int mode, const char *what,
		   char *err, size_t errlen)
{
	int at = where(lc, err, errlen);
	return vs_tls_access(path, mode, what, err + at, errlen - (size_t)at);
}

/* Keys with a passphrase are refused instead of prompting on the broker's terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
	return 0;
}

static unsigned int psk_server_cb(SSL *s, const char *identity, unsigned char *psk,
				  unsigned int max)
{
	const struct vs_psk *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), psk_slot);
	if (!t || !identity)
		return 0; /* an unknown identity fails the handshake */
	size_t n = vs_psk_find(t, identity, psk, max);
	if (!n)
		return 0;
	/* The callback may run more than once (HelloRetryRequest): the last identity stands. */
	char *id = strdup(identity);
	free(SSL_get_ex_data(s, psk_id_slot));
	if (!id || !SSL_set_ex_data(s, psk_id_slot, id)) {
		free(id);
		SSL_set_ex_data(s, psk_id_slot, NULL);
		OPENSSL_cleanse(psk, max);
		return 0;
	}
	return (unsigned int)n;
}

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x04mqtt";
	unsigned char *chosen;
	if (SSL_select_next_proto(&chosen, outlen, ours, sizeof(ours) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = chosen;
	return SSL_TLSEXT_ERR_OK;
}

static int set_protocol(SSL_CTX *ctx, const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	int min = TLS1_2_VERSION;
	if (lc->protocol == VS_LPROTO_MQTTSN)
		min = DTLS1_2_VERSION; /* DTLS 1.2 is OpenSSL 3.0's newest; tls_version: not used */
	else if (lc->tls_version && strcmp(lc->tls_version, "tlsv1.3") == 0)
		min = TLS1_3_VERSION;
	else if (lc->tls_version && strcmp(lc->tls_version, "tlsv1.1") == 0)
		min = TLS1_1_VERSION;
	if (!SSL_CTX_set_min_proto_version(ctx, min))
		return FAIL(lc, err, errlen, "cannot set tls_version %s", lc->tls_version);
	if (min == TLS1_1_VERSION)
		SSL_CTX_set_security_level(ctx, 0); /* asked for explicitly */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* One read(2) for many records instead of two per record (header, then body); what is
	 * read ahead is found by the transport's more() (SSL_has_pending). */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	char sid[32];
	int n = snprintf(sid, sizeof(sid), "viesti:%d", lc->port);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid, (unsigned)n);
	if (lc->ciphers && !SSL_CTX_set_cipher_list(ctx, lc->ciphers))
		return FAIL(lc, err, errlen, "bad ciphers '%s'", lc->ciphers);
	if (lc->ciphers_tls13 && !SSL_CTX_set_ciphersuites(ctx, lc->ciphers_tls13))
		return FAIL(lc, err, errlen, "bad ciphers_tls1.3 '%s'", lc->ciphers_tls13);
	return 0;
}

static int set_dh(SSL_CTX *ctx, const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	if (!lc->dhparamfile) {
		SSL_CTX_set_dh_auto(ctx, 1);
		return 0;
	}
	int rc = no_file(lc, lc->dhparamfile, R_OK, "dhparamfile", err, errlen);
	if (rc < 0)
		return rc;
	BIO *b = BIO_new_file(lc->dhparamfile, "r");
	EVP_PKEY *dh = b ? PEM_read_bio_Parameters(b, NULL) : NULL;
	BIO_free(b);
	if (!dh || !SSL_CTX_set0_tmp_dh_pkey(ctx, dh)) {
		EVP_PKEY_free(dh);
		return FAIL(lc, err, errlen, "cannot use dhparamfile '%s' (PEM DH parameters)",
			    lc->dhparamfile);
	}
	return 0;
}

/* The private key from an OpenSSL engine (a TPM, an HSM): keyfile is the engine's key id. */
static int engine_key(SSL_CTX *ctx, const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	ENGINE *e = ENGINE_by_id(lc->tls_engine);
	if (!e)
		return FAIL(lc, err, errlen, "no OpenSSL engine '%s'", lc->tls_engine);
	int rc = 0;
	if (!ENGINE_init(e)) {
		rc = FAIL(lc, err, errlen, "cannot start OpenSSL engine '%s'", lc->tls_engine);
		goto out_free;
	}
	/* As Mosquitto: the engine takes the SHA-1 of the key's passphrase as its PIN. */
	if (lc->tls_engine_kpass_sha1 &&
	    (!ENGINE_ctrl_cmd(e, "SECRET_MODE", 0x1000, NULL, NULL, 0) ||
	     !ENGINE_ctrl_cmd(e, "PIN", 0, lc->tls_engine_kpass_sha1, NULL, 0))) {
		rc = FAIL(lc, err, errlen, "engine '%s' refused tls_engine_kpass_sha1",
			  lc->tls_engine);
		goto out_finish;
	}
	EVP_PKEY *key = ENGINE_load_private_key(e, lc->keyfile, NULL, NULL);
	if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1)
		rc = FAIL(lc, err, errlen, "engine '%s' cannot give key '%s'", lc->tls_engine,
			  lc->keyfile);
	EVP_PKEY_free(key);
out_finish:
	ENGINE_finish(e);
out_free:
	ENGINE_free(e);
	return rc;
}

static int set_identity(SSL_CTX *ctx, const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	int rc;
	if (!lc->certfile)
		return 0; /* a PSK-only listener */
	if ((rc = no_file(lc, lc->certfile, R_OK, "certfile", err, errlen)) < 0)
		return rc;
	if (SSL_CTX_use_certificate_chain_file(ctx, lc->certfile) != 1)
		return FAIL(lc, err, errlen, "cannot use certfile '%s' (PEM certificate chain)",
			    lc->certfile);
	if (lc->tls_keyform_engine) {
		if ((rc = engine_key(ctx, lc, err, errlen)) < 0)
			return rc;
	} else {
		if ((rc = no_file(lc, lc->keyfile, R_OK, "keyfile", err, errlen)) < 0)
			return rc;
		if (SSL_CTX_use_PrivateKey_file(ctx, lc->keyfile, SSL_FILETYPE_PEM) != 1)
			return FAIL(lc, err, errlen,
				    "cannot use keyfile '%s' (PEM, without a "
				    "passphrase)",
				    lc->keyfile);
	}
	if (SSL_CTX_check_private_key(ctx) != 1)
		return FAIL(lc, err, errlen, "keyfile '%s' does not match certfile '%s'",
			    lc->keyfile, lc->certfile);
	return 0;
}

static int set_crl(SSL_CTX *ctx, const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	int rc = no_file(lc, lc->crlfile, R_OK, "crlfile", err, errlen);
	if (rc < 0)
		return rc;
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	X509_LOOKUP *lk = X509_STORE_add_lookup(st, X509_LOOKUP_file());
	if (!lk || X509_load_crl_file(lk, lc->crlfile, X509_FILETYPE_PEM) < 1)
		return FAIL(lc, err, errlen, "cannot use crlfile '%s' (PEM revocation list)",
			    lc->crlfile);
	X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	return 0;
}

/* Client certificates: asked for with require_certificate, checked against cafile/capath. */
static int set_clients(SSL_CTX *ctx, const struct vs_listener_conf *lc, char *err, size_t errlen)
{
	int rc;
	if (lc->cafile && (rc = no_file(lc, lc->cafile, R_OK, "cafile", err, errlen)) < 0)
		return rc;
	if (lc->capath && (rc = no_file(lc, lc->capath, R_OK | X_OK, "capath", err, errlen)) < 0)
		return rc;
	if ((lc->cafile || lc->capath) &&
	    SSL_CTX_load_verify_locations(ctx, lc->cafile, lc->capath) != 1)
		return FAIL(lc, err, errlen, "cannot load CA certificates from '%s'",
			    lc->cafile ? lc->cafile : lc->capath);
	if (lc->cafile) {
		/* Tells clients which CAs are trusted, so one with several certificates picks. */
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(lc->cafile);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		ERR_clear_error();
	}
	if (lc->crlfile && (rc = set_crl(ctx, lc, err, errlen)) < 0)
		return rc;
	SSL_CTX_set_verify(ctx,
			   lc->require_certificate
			       ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
			       : SSL_VERIFY_NONE,
			   NULL);
	return 0;
}

static int set_psk(SSL_CTX *ctx, const struct vs_listener_conf *lc, const char *psk_file, char *err,
		   size_t errlen)
{
	if (!lc->psk_hint)
		return 0;
	int at = where(lc, err, errlen);
	struct vs_psk *t = vs_psk_load(psk_file, err + at, errlen - (size_t)at);
	if (!t)
		return VS_ECONF;
	pthread_once(&psk_slot_once, make_psk_slot);
	if (psk_slot < 0 || !SSL_CTX_set_ex_data(ctx, psk_slot, t)) {
		vs_psk_free(t);
		return FAIL(lc, err, errlen, "cannot keep the PSK table");
	}
	if (!SSL_CTX_use_psk_identity_hint(ctx, lc->psk_hint))
		return FAIL(lc, err, errlen, "bad psk_hint '%s'", lc->psk_hint);
	SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
	/* TLS 1.2 needs PSK cipher suites (TLS 1.3 takes the key through the same callback). */
	if (!lc->ciphers && !SSL_CTX_set_cipher_list(ctx, lc->certfile ? "DEFAULT:PSK" : "PSK"))
		return FAIL(lc, err, errlen, "no PSK cipher suites");
	return 0;
}

int vs_tls_server_ctx(const struct vs_listener_conf *lc, const char *psk_file, SSL_CTX **out,
		      char *err, size_t errlen)
{
	ERR_clear_error();
	bool dtls = lc->protocol == VS_LPROTO_MQTTSN;
	SSL_CTX *ctx = SSL_CTX_new(dtls ? DTLS_server_method() : TLS_server_method());
	if (!ctx)
		return FAIL(lc, err, errlen, "cannot create a TLS context");
	int rc = set_protocol(ctx, lc, err, errlen);
	if (rc == 0 && dtls && vs_dtls_server_ctx_setup(ctx) < 0)
		rc = FAIL(lc, err, errlen, "cannot set up DTLS");
	if (rc == 0)
		rc = set_dh(ctx, lc, err, errlen);
	if (rc == 0)
		rc = set_identity(ctx, lc, err, errlen);
	if (rc == 0)
		rc = set_clients(ctx, lc, err, errlen);
	if (rc == 0)
		rc = set_psk(ctx, lc, psk_file, err, errlen);
	if (rc < 0) {
		SSL_CTX_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

/* The certificate's Common Name, refused when it has a NUL byte (a name that would compare
 * equal to a shorter one). */
static char *common_name(X509 *cert, const char **why)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i < 0) {
		*why = "client certificate without a Common Name";
		return NULL;
	}
	ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(&utf8, cn);
	if (n < 0 || memchr(utf8, '\0', (size_t)n)) {
		OPENSSL_free(utf8);
		*why = "client certificate's Common Name is not a valid string";
		return NULL;
	}
	char *s = strndup((const char *)utf8, (size_t)n);
	OPENSSL_free(utf8);
	return s;
}

/* The whole subject, in RFC 2253 form ("CN=alice,O=Example"), as Mosquitto gives it. */
static char *subject(X509 *cert)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return NULL;
	X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = n >= 0 ? strndup(p, (size_t)n) : NULL;
	BIO_free(b);
	return s;
}

char *vs_tls_peer_username(SSL *s, bool subj, const char **why)
{
	const char *psk_id = psk_id_slot >= 0 ? SSL_get_ex_data(s, psk_id_slot) : NULL;
	if (psk_id)
		return strdup(psk_id);
	X509 *cert = SSL_get1_peer_certificate(s);
	if (!cert) {
		*why = "no client certificate";
		return NULL;
	}
	char *u = subj ? subject(cert) : common_name(cert, why);
	if (!u && subj)
		*why = "no memory";
	X509_free(cert);
	return u;
}
