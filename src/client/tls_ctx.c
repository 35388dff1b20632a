/*
 * The client's TLS context: everything decided once per client from struct viesti_tls.
 *
 *   trust       the server's chain is always verified (SSL_VERIFY_PEER): against cafile and/or
 *               capath, plus the system store when os_certs is set or nothing else is given.
 *               With a PSK the store stays empty, so a server that answers with a certificate
 *               instead of the key fails the handshake: PSK mode never trusts less.
 *   host check  per session (tls.c), unless insecure; insecure skips nothing else.
 *   client cert certfile (a PEM chain) + keyfile, checked against each other here.
 *   version     TLS 1.2 at least ("tlsv1.2", the default) or TLS 1.3 only ("tlsv1.3").
 *   PSK         the key is decoded here; the callback hands it to OpenSSL for TLS 1.2 PSK cipher
 *               suites (as mosquitto_pub does) and, through the same callback, for TLS 1.3.
 *   EOF         a broker that closes without close_notify is an end of stream, as over TCP:
 *               MQTT frames its own packets, so a truncated stream cannot pass as a whole one.
 *
 * Files are checked for readability first, so that a missing file is -ENOENT with its name
 * rather than a line from OpenSSL's error queue.
 */
#include "client/tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "base/bytes.h"

static int check_psk(const struct viesti_tls *o, char *err, size_t errlen)
{
	uint8_t key[PSK_MAX_PSK_LEN];
	if (o->cafile || o->capath || o->certfile || o->keyfile) {
		snprintf(err, errlen, "a PSK excludes cafile, capath, certfile and keyfile");
		return VIESTI_EINVAL;
	}
	if (vs_hex_decode(o->psk, key, sizeof(key)) < 0) { /* VS_ECONF */
		snprintf(err, errlen, "the PSK must be 1 to %d bytes in hex digits",
			 PSK_MAX_PSK_LEN);
		return VIESTI_EINVAL;
	}
	/* OpenSSL's identity buffer holds PSK_MAX_IDENTITY_LEN bytes with the NUL. */
	size_t id = o->psk_identity ? strlen(o->psk_identity) : 0;
	if (id == 0 || id >= PSK_MAX_IDENTITY_LEN) {
		snprintf(err, errlen, "a PSK needs an identity of 1 to %d bytes",
			 PSK_MAX_IDENTITY_LEN - 1);
		return VIESTI_EINVAL;
	}
	return 0;
}

int vs_tls_check(const struct viesti_tls *o, char *err, size_t errlen)
{
	if (!o->certfile != !o->keyfile) {
		snprintf(err, errlen, "certfile and keyfile go together");
		return VIESTI_EINVAL;
	}
	if (o->tls_version && strcmp(o->tls_version, "tlsv1.2") != 0 &&
	    strcmp(o->tls_version, "tlsv1.3") != 0) {
		snprintf(err, errlen, "TLS version '%s' not supported (tlsv1.2 or tlsv1.3)",
			 o->tls_version);
		return VIESTI_EINVAL;
	}
	if (o->alpn && (strlen(o->alpn) == 0 || strlen(o->alpn) > 255)) {
		snprintf(err, errlen, "an ALPN protocol name is 1 to 255 bytes");
		return VIESTI_EINVAL;
	}
	if (o->psk_identity && !o->psk) {
		snprintf(err, errlen, "a PSK identity without a PSK");
		return VIESTI_EINVAL;
	}
	return o->psk ? check_psk(o, err, errlen) : 0;
}

/* ---- the context ------------------------------------------------------------------------- */

static unsigned int psk_cb(SSL *s, const char *hint, char *identity, unsigned int max_identity,
			   unsigned char *psk, unsigned int max_psk)
{
	const struct vs_tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
	size_t id = strlen(c->psk_identity);
	if (id + 1 > max_identity || c->psk_len > max_psk)
		return 0;
	memcpy(identity, c->psk_identity, id + 1);
	memcpy(psk, c->psk, c->psk_len);
	return (unsigned int)c->psk_len;
}

/* Keys with a passphrase are refused instead of prompting on the process's terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
	return 0;
}

static int set_protocol(struct vs_tls_ctx *c, const struct viesti_tls *o, char *err, size_t errlen)
{
	bool v13 = o->tls_version && !strcmp(o->tls_version, "tlsv1.3");
	if (!SSL_CTX_set_min_proto_version(c->ssl, v13 ? TLS1_3_VERSION : TLS1_2_VERSION))
		return vs_tls_fail(err, errlen, "cannot set the TLS version");
	SSL_CTX_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
					SSL_OP_NO_COMPRESSION);
	/* Partial writes and a moving buffer: the client's output buffer grows (and moves) while
	 * a record waits for the socket. */
	SSL_CTX_set_mode(c->ssl,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_default_passwd_cb(c->ssl, no_passphrase);
	if (o->alpn) {
		uint8_t wire[256];
		size_t len = strlen(o->alpn);
		wire[0] = (uint8_t)len;
		memcpy(wire + 1, o->alpn, len);
		if (SSL_CTX_set_alpn_protos(c->ssl, wire, (unsigned)len + 1) != 0)
			return vs_tls_fail(err, errlen, "cannot set ALPN '%s'", o->alpn);
	}
	return 0;
}

static int set_trust(struct vs_tls_ctx *c, const struct viesti_tls *o, char *err, size_t errlen)
{
	int rc;
	SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	if (o->psk)
		return 0;
	if (o->cafile && (rc = vs_tls_access(o->cafile, R_OK, "CA file", err, errlen)) < 0)
		return rc;
	if (o->capath && (rc = vs_tls_access(o->capath, R_OK | X_OK, "CA path", err, errlen)) < 0)
		return rc;
	if ((o->cafile || o->capath) &&
	    !SSL_CTX_load_verify_locations(c->ssl, o->cafile, o->capath))
		return vs_tls_fail(err, errlen, "cannot load CA certificates from '%s'",
				   o->cafile ? o->cafile : o->capath);
	if ((o->os_certs || (!o->cafile && !o->capath)) &&
	    !SSL_CTX_set_default_verify_paths(c->ssl))
		return vs_tls_fail(err, errlen, "cannot load the system's CA certificates");
	return 0;
}

static int set_client_cert(struct vs_tls_ctx *c, const struct viesti_tls *o, char *err,
			   size_t errlen)
{
	int rc;
	if (!o->certfile)
		return 0;
	if ((rc = vs_tls_access(o->certfile, R_OK, "certificate file", err, errlen)) < 0 ||
	    (rc = vs_tls_access(o->keyfile, R_OK, "key file", err, errlen)) < 0)
		return rc;
	if (SSL_CTX_use_certificate_chain_file(c->ssl, o->certfile) != 1)
		return vs_tls_fail(err, errlen, "cannot load certificate file '%s'", o->certfile);
	if (SSL_CTX_use_PrivateKey_file(c->ssl, o->keyfile, SSL_FILETYPE_PEM) != 1)
		return vs_tls_fail(err, errlen,
				   "cannot use key file '%s' (PEM, unencrypted, the "
				   "certificate's key)",
				   o->keyfile);
	if (SSL_CTX_check_private_key(c->ssl) != 1)
		return vs_tls_fail(err, errlen,
				   "key file '%s' does not match certificate file '%s'", o->keyfile,
				   o->certfile);
	return 0;
}

static int set_psk(struct vs_tls_ctx *c, const struct viesti_tls *o, char *err, size_t errlen)
{
	if (!o->psk)
		return 0;
	c->psk_len = (size_t)vs_hex_decode(o->psk, c->psk, sizeof(c->psk));
	c->psk_identity = strdup(o->psk_identity);
	if (!c->psk_identity)
		return -ENOMEM;
	/* TLS 1.2 needs a PSK cipher suite. TLS 1.3 takes the key through the same callback but
	 * ties it to SHA-256 suites: offering only those keeps a server that also has a certificate
	 * (and prefers a SHA-384 suite) from going on with its certificate instead of the key. */
	if (!SSL_CTX_set_cipher_list(c->ssl, "PSK") ||
	    !SSL_CTX_set_ciphersuites(c->ssl,
				      "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"))
		return vs_tls_fail(err, errlen, "no PSK cipher suites");
	SSL_CTX_set_psk_client_callback(c->ssl, psk_cb);
	return 0;
}

int vs_tls_ctx_new(const struct viesti_tls *o, struct vs_tls_ctx **out, char *err, size_t errlen)
{
	err[0] = 0;
	int rc = vs_tls_check(o, err, errlen);
	if (rc < 0)
		return rc;
	struct vs_tls_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->check_host = !o->insecure;
	c->ssl = SSL_CTX_new(TLS_client_method());
	c->bio = vs_tls_bio_method_new();
	if (!c->ssl || !c->bio) {
		vs_tls_ctx_free(c);
		return vs_tls_fail(err, errlen, "cannot create a TLS context");
	}
	SSL_CTX_set_app_data(c->ssl, c);
	rc = set_protocol(c, o, err, errlen);
	if (rc == 0)
		rc = set_trust(c, o, err, errlen);
	if (rc == 0)
		rc = set_client_cert(c, o, err, errlen);
	if (rc == 0)
		rc = set_psk(c, o, err, errlen);
	if (rc < 0) {
		vs_tls_ctx_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void vs_tls_ctx_free(struct vs_tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ssl);
	BIO_meth_free(c->bio);
	OPENSSL_cleanse(c->psk, sizeof(c->psk));
	free(c->psk_identity);
	free(c);
}
