/*
 * Fuzzes the retained-message key decoder (cluster/kvkey.h): keys come from the JetStream
 * bucket, which anyone with access to NATS can write. Any bytes must decode or be refused; a
 * decoded topic encodes back to the same key.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/kvkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t topic[VS_KVKEY_MAX + 1];
	ssize_t n = vs_kvkey_decode((const char *)data, size, topic, sizeof(topic));
	if (n < 0)
		return 0;
	if ((size_t)n > sizeof(topic))
		abort();
	char key[VS_KVKEY_MAX + 1];
	ssize_t k = vs_kvkey_encode(topic, (size_t)n, key, sizeof(key));
	if (k < 0 || (size_t)k != size || memcmp(key, data, size) != 0)
		abort();
	return 0;
}
