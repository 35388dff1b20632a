/*
 * What viesti pub --sn and viesti sub --sn share: the MQTT-SN client made from the common
 * flags (-h, -p, -i, -k, -c, --will-*, -d) with libviesti's viesti_sn_* calls, the predefined
 * topic ids of --sn-predefined (read with the broker's own parser, src/sn/topics.c, so the
 * file means the same to both), connecting and disconnecting, and the error messages and exit
 * codes of cli_common.h for MQTT-SN's outcomes.
 */
#ifndef VS_CMD_CLI_SN_H
#define VS_CMD_CLI_SN_H

#include "cmd/cli_common.h"
#include "sn/sn.h"
#include "viesti.h"

struct vs_cli_sn {
	struct viesti_sn *c;
	struct vs_sn_topics topics; /* --sn-predefined, also given to the client */
};

/* Makes the client and loads --sn-predefined. Returns 0, or an exit code after printing why. */
int vs_cli_sn_open(struct vs_cli *cli, struct vs_cli_sn *s);
void vs_cli_sn_close(struct vs_cli_sn *s);
/* Connects (the retries bound the wait). Returns 0, or an exit code after printing why. */
int vs_cli_sn_connect(struct vs_cli *cli, struct vs_cli_sn *s);
/* DISCONNECT, waiting up to 2 s for the answer; nothing when already disconnected. */
void vs_cli_sn_disconnect(struct vs_cli_sn *s);
/* The predefined id of a topic in --sn-predefined, or 0. */
uint16_t vs_cli_sn_predefined(const struct vs_cli_sn *s, const char *topic);
/* "rejected: congestion", ... for an MQTT-SN ReturnCode. */
const char *vs_cli_sn_rc_string(int rc);
/* The exit code for a call's negative result (after printing "Error: <what>: <why>"). */
int vs_cli_sn_error(const struct vs_cli *cli, const char *what, int err);

#endif
