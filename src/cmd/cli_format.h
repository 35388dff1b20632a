/*
 * Printing received messages as mosquitto_sub does, byte for byte: payload only, -v (topic and
 * payload), or -F format strings with %-parameters (flags, width, max width), @-strftime
 * sequences and \-escapes. Shared by viesti sub and viesti rr.
 */
#ifndef VS_CMD_CLI_FORMAT_H
#define VS_CMD_CLI_FORMAT_H

#include <stdbool.h>
#include <stdio.h>

#include "viesti.h"

struct vs_fmt {
	const char *format; /* -F, or NULL */
	bool verbose;	    /* -v */
	bool eol;	    /* false with -N */
	bool quiet;	    /* --quiet: no error lines on stderr */
	bool pretty;	    /* --pretty: %j and %J laid out as cJSON_Print does */
};

/* Checks a -F string as mosquitto_sub does before connecting. Returns 0, or -1 after printing
 * "Error: ..." to stderr. */
int vs_fmt_check(const char *format);
/* Prints one message to out and flushes. */
void vs_fmt_print(FILE *out, const struct vs_fmt *f, const struct viesti_message *m);

#endif
