/*
 * TLS on the broker's listeners: one OpenSSL server context per TLS listener, built from its
 * configuration (Mosquitto's directives: certfile, keyfile, cafile, capath, crlfile,
 * require_certificate, tls_version, ciphers, ciphers_tls1.3, dhparamfile, tls_keyform,
 * tls_engine, psk_hint with psk_file), and what a connection learns from its handshake (the
 * identity that use_identity_as_username / use_subject_as_username make the username).
 *
 * A context is built whole or not at all: every file is read and checked when it is built, so
 * a bad certificate fails start-up (or a reload, which then keeps the old context) with the
 * listener, the file and OpenSSL's reason. Connections take a reference to the context they
 * start from, so a context replaced by a reload lives until its last session ends.
 */
#ifndef VS_BROKER_TLS_H
#define VS_BROKER_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "conf/conf.h"

struct vs_psk;

/*
 * Builds the server context of TLS listener lc. psk_file (NULL without PSK) is read into a
 * table the context owns: it is freed with the context's last reference, so a handshake still
 * running on a context that a reload replaced keeps its keys. Returns 0 with *out set, or
 * VS_ECONF / VS_ETLS / -errno with the file and the reason in err.
 */
int vs_tls_server_ctx(const struct vs_listener_conf *lc, const char *psk_file, SSL_CTX **out,
		      char *err, size_t errlen);

/*
 * The username a TLS connection's handshake gives it, when its listener says so: the client
 * certificate's Common Name (use_identity_as_username), its whole subject in RFC 2253 form
 * (use_subject_as_username), or for a PSK session the PSK identity. Returns a new string,
 * NULL with *why set when there is none (no certificate, no CN, a CN with a NUL byte).
 */
char *vs_tls_peer_username(SSL *s, bool subject, const char **why);

#endif
