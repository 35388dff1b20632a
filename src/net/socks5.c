/*
 * SOCKS5 messages (RFC 1928, RFC 1929): encoders into caller memory and parsers of the
 * proxy's replies. No I/O, no allocation; see socks5.h for the exchange.
 */
#include "net/socks5.h"

#include <errno.h>
#include <string.h>

#include "base/error.h"

enum { VER = 5, AUTH_VER = 1, M_NONE = 0, M_USERPASS = 2, M_REFUSED = 0xff };

size_t vs_socks5_greeting(uint8_t *buf, int with_auth)
{
	buf[0] = VER;
	buf[1] = with_auth ? 2 : 1;
	buf[2] = M_NONE;
	if (!with_auth)
		return 3;
	buf[3] = M_USERPASS;
	return 4;
}

ssize_t vs_socks5_auth(uint8_t *buf, const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass);
	if (ul == 0 || ul > 255 || pl == 0 || pl > 255)
		return VS_ETOOBIG;
	buf[0] = AUTH_VER;
	buf[1] = (uint8_t)ul;
	memcpy(buf + 2, user, ul);
	buf[2 + ul] = (uint8_t)pl;
	memcpy(buf + 3 + ul, pass, pl);
	return (ssize_t)(3 + ul + pl);
}

ssize_t vs_socks5_connect(uint8_t *buf, const char *host, int port)
{
	size_t hl = strlen(host);
	if (hl == 0 || hl > 255 || port < 0 || port > 65535)
		return VS_ETOOBIG;
	buf[0] = VER;
	buf[1] = 1; /* CONNECT */
	buf[2] = 0; /* reserved */
	buf[3] = 3; /* a domain name: the proxy resolves it ("socks5h") */
	buf[4] = (uint8_t)hl;
	memcpy(buf + 5, host, hl);
	buf[5 + hl] = (uint8_t)(port >> 8);
	buf[6 + hl] = (uint8_t)port;
	return (ssize_t)(7 + hl);
}

ssize_t vs_socks5_parse_method(const uint8_t *buf, size_t len, int with_auth, int *method)
{
	if (len < 2)
		return 0;
	if (buf[0] != VER)
		return VS_EPROTO;
	if (buf[1] == M_REFUSED)
		return -ECONNREFUSED;
	if (buf[1] != M_NONE && !(with_auth && buf[1] == M_USERPASS))
		return VS_EPROTO; /* a method we did not offer */
	*method = buf[1];
	return 2;
}

ssize_t vs_socks5_parse_auth(const uint8_t *buf, size_t len)
{
	if (len < 2)
		return 0;
	if (buf[0] != AUTH_VER)
		return VS_EPROTO;
	return buf[1] == 0 ? 2 : -ECONNREFUSED;
}

/* The reply: VER REP RSV ATYP BND.ADDR BND.PORT, where the address is 4 (IPv4), 16 (IPv6) or
 * 1 + n (a name) bytes long. */
ssize_t vs_socks5_parse_connect(const uint8_t *buf, size_t len, int *code)
{
	if (len < 5)
		return 0;
	if (buf[0] != VER || buf[2] != 0)
		return VS_EPROTO;
	size_t addr;
	switch (buf[3]) {
	case 1:
		addr = 4;
		break;
	case 4:
		addr = 16;
		break;
	case 3:
		addr = 1 + (size_t)buf[4];
		break;
	default:
		return VS_EPROTO;
	}
	if (buf[1] != 0) {
		if (code)
			*code = buf[1];
		return -ECONNREFUSED;
	}
	size_t need = 4 + addr + 2;
	return len < need ? 0 : (ssize_t)need;
}
