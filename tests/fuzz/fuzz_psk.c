/*
 * Fuzzes the psk_file reader: any byte string must load or fail with a "NAME:LINE: why"
 * message, never crash, leak or read out of bounds; every identity of a loaded table must give
 * a key of 1 to VS_PSK_KEY_MAX bytes, and an unknown one none.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/psk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	struct vs_psk *t = vs_psk_parse((const char *)data, size, "fuzz.psk", err, sizeof(err));
	if (!t) {
		if (strncmp(err, "fuzz.psk:", 9) != 0)
			abort(); /* every failure names the file */
		return 0;
	}
	uint8_t key[VS_PSK_KEY_MAX];
	/* The first line's identity, if it is one, must be found. */
	const char *colon = memchr(data, ':', size);
	if (colon && (size_t)(colon - (const char *)data) <= VS_PSK_IDENTITY_MAX) {
		char id[VS_PSK_IDENTITY_MAX + 1];
		size_t n = (size_t)(colon - (const char *)data);
		memcpy(id, data, n);
		id[n] = '\0';
		size_t k = vs_psk_find(t, id, key, sizeof(key));
		if (k > VS_PSK_KEY_MAX)
			abort();
	}
	if (vs_psk_find(t, "\x01no such identity\x02", key, sizeof(key)) != 0 &&
	    !memchr(data, '\x01', size))
		abort();
	(void)vs_psk_count(t);
	vs_psk_free(t);
	return 0;
}
