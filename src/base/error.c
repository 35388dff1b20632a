#include "base/error.h"

#include <limits.h>
#include <string.h>

const char *vs_strerror(int err)
{
	switch (err) {
	case VS_OK:
		return "success";
	case VS_EPROTO:
		return "protocol error";
	case VS_ETOOBIG:
		return "too large";
	case VS_ECONF:
		return "bad configuration";
	case VS_ECLOSED:
		return "connection closed";
	case VS_ESTATE:
		return "invalid state";
	case VS_ETLS:
		return "TLS failure";
	case VS_EAUTH:
		return "authentication failed";
	case VS_ELOOKUP:
		return "Lookup error";
	case VS_EPROXY:
		return "Proxy error";
	case VS_EPROXY_TARGET:
		return "The proxy could not reach the host";
	}
	/* INT_MIN has no positive counterpart: negating it is undefined. */
	return err < 0 && err != INT_MIN ? strerror(-err) : "unknown";
}
