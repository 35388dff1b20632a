/*
 * One error vocabulary for all of Viesti.
 *
 * Functions return int (or ssize_t): >= 0 is success or a count, negative is an error.
 * System errors are -errno (-ENOMEM, -EAGAIN, ...). Viesti's own errors are below -1000 so
 * they never collide with errno values. MQTT reason codes are a separate enum (codec/reason.h)
 * and are never returned through this channel.
 */
#ifndef VS_BASE_ERROR_H
#define VS_BASE_ERROR_H

enum {
	VS_OK = 0,
	VS_EPROTO = -1001,  /* malformed input or protocol violation; a reason code says which */
	VS_ETOOBIG = -1002, /* larger than a configured or protocol limit */
	VS_ECONF = -1003,   /* bad configuration */
	VS_ECLOSED = -1004, /* peer closed the connection */
	VS_ESTATE = -1005,  /* call not valid in the current state */
	VS_EAUTH = -1006,   /* authentication failed: a wrong password, proof or signature */
	VS_ETLS = -1102,    /* TLS: handshake or verification failed, or OpenSSL refused a file or
			     * setting (the same value as libviesti's VIESTI_ETLS) */
	VS_ELOOKUP = -1103, /* a host name did not resolve (libviesti's VIESTI_ELOOKUP) */
	VS_EPROXY = -1104,  /* a SOCKS5 proxy refused or broke the exchange (VIESTI_EPROXY) */
	VS_EPROXY_TARGET = -1105, /* the proxy could not reach the host: network or host
				   * unreachable, connection refused (VIESTI_EPROXY_TARGET) */
};

/* Returns a static, human-readable string for any negative return value. */
const char *vs_strerror(int err);

#endif
