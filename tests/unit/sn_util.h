/*
 * Includes and small assertions shared by the MQTT-SN unit tests (test_sn_*.c).
 */
#ifndef VS_TESTS_SN_UTIL_H
#define VS_TESTS_SN_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "codec/codec.h"
#include "codec/sn.h"
#include "sn/sn.h"

#define N(a)   (sizeof(a) / sizeof((a)[0]))
#define BUF(s) ((struct vs_buf){(const uint8_t *)(s), sizeof(s) - 1})

static inline void assert_buf(struct vs_buf b, const char *s)
{
	size_t n = strlen(s);
	if (b.len != n || (n && memcmp(b.p, s, n) != 0))
		fail_msg("'%.*s' != '%s'", (int)b.len, (const char *)b.p, s);
}

#endif
