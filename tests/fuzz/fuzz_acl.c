/*
 * Fuzzes the ACL file reader and the matcher: any byte string must load or fail with a
 * "NAME:LINE: why" message, never crash, leak or read out of bounds. A loaded ACL is asked about
 * a few clients and topics. The input is also split into a filter and a topic for the matcher,
 * with one property checked: a valid filter without wildcards matches itself as a topic.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_match(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	size_t flen = data[0] < size - 1 ? data[0] : size - 1;
	const char *f = (const char *)data + 1, *t = f + flen;
	size_t tlen = size - 1 - flen;
	if (!vs_acl_filter_valid(f, flen))
		return;
	(void)vs_acl_match(f, flen, t, tlen);
	if (!memchr(f, '+', flen) && !memchr(f, '#', flen) && vs_acl_match(f, flen, f, flen) != 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_match(data, size);
	char err[256] = "";
	struct vs_acl *acl = vs_acl_parse((const char *)data, size, "fuzz.acl", err, sizeof(err));
	if (!acl) {
		if (strncmp(err, "fuzz.acl:", 9) != 0)
			abort();
		return 0;
	}
	static const char *topics[] = {"a", "a/b", "$SYS/x", "/", "dev/c/x", "users/u/out"};
	static const char *users[] = {NULL, "u", "alice", "+"};
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
		for (size_t j = 0; j < sizeof(users) / sizeof(users[0]); j++)
			for (int access = 1; access <= 4; access *= 2)
				(void)vs_acl_check(acl, "c", users[j], topics[i], strlen(topics[i]),
						   access);
	(void)vs_acl_count(acl);
	vs_acl_free(acl);
	return 0;
}
