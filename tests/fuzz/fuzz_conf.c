/*
 * Fuzzes the mosquitto.conf reader: any byte string must parse or fail with VS_ECONF and a
 * message, never crash, leak or read out of bounds; a parsed configuration must validate
 * without crashing and free cleanly.
 *
 * Inputs naming include_dir are skipped: that directive reads the real filesystem, which would
 * make runs depend on the machine (the unit tests cover it).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (strstr(text, "include_dir")) {
		free(text);
		return 0;
	}
	struct vs_config c;
	char err[256];
	vs_config_init(&c);
	int rc = vs_config_parse_string(&c, text, "fuzz.conf", err, sizeof(err));
	if (rc == 0)
		rc = vs_config_validate(&c, err, sizeof(err));
	if (rc != 0 && (rc != VS_ECONF || strlen(err) == 0))
		abort(); /* every failure but out-of-memory explains itself */
	vs_config_fini(&c);
	free(text);
	return 0;
}
