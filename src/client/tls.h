/*
 * The client's TLS context, built once per client (and per viesti bench run) from the public
 * struct viesti_tls: trust store, client certificate, minimum version, ALPN, PSK. The files are
 * read here, so a bad file fails before any connection is tried. Sessions and the TLS transport
 * that use it are in src/net/tls.h.
 */
#ifndef VS_CLIENT_TLS_H
#define VS_CLIENT_TLS_H

#include <stddef.h>

#include "net/tls.h"
#include "viesti.h"

/* Checks o without touching any file. Returns 0, or VIESTI_EINVAL with err saying why. */
int vs_tls_check(const struct viesti_tls *o, char *err, size_t errlen);
/* Builds a context from o (checked first). Returns 0 with *out set (free it with
 * vs_tls_ctx_free), or VIESTI_EINVAL, -errno (a file that cannot be read), -ENOMEM or
 * VIESTI_ETLS (OpenSSL refused a file or setting), with err filled. */
int vs_tls_ctx_new(const struct viesti_tls *o, struct vs_tls_ctx **out, char *err, size_t errlen);
void vs_tls_ctx_free(struct vs_tls_ctx *c);

#endif
