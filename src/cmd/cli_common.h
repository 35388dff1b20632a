/*
 * What viesti pub, sub and rr share: the connection flags of mosquitto_pub/mosquitto_sub
 * (-h -p -i -I -u -P -k -V -q -c -d --quiet -D -x --will-* -L, and the TLS flags --cafile
 * --capath --cert --key --insecure --tls-version --tls-alpn --tls-use-os-certs --psk
 * --psk-identity), Viesti's own --auth-method (MQTT 5 enhanced authentication, SCRAM-SHA-256)
 * and --sn / --sn-predefined (MQTT-SN 1.2 over UDP instead of MQTT: see cli_sn.h), making and
 * connecting the client
 * with libviesti's public API, error messages, and the exit codes, which are mosquitto_pub's
 * and mosquitto_sub's (2.0) so that scripts switch by renaming the command:
 *
 *   0  success (also when the broker rejected a message or every subscription: a warning says
 *      so on stderr, as mosquitto_pub and mosquitto_sub do)
 *   1  bad arguments (a message on stderr says which; --help for usage), could not connect
 *      (network error, unknown host, TLS, SCRAM: the broker failed to authenticate itself),
 *      input could not be read (-f file, stdin)
 *   N  the broker refused the connection: N is the CONNACK's reason code (MQTT 3.1.1: 1-5, such
 *      as 5 not authorised; MQTT 5.0: 128-159, such as 135 Not authorized)
 *   7  the connection was lost before the work was done (MOSQ_ERR_CONN_LOST)
 *  27  timed out (-W), the same number as mosquitto_sub/mosquitto_rr
 */
#ifndef VS_CMD_CLI_COMMON_H
#define VS_CMD_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "viesti.h"

enum {
	VS_EXIT_OK = 0,
	VS_EXIT_USAGE = 1,
	VS_EXIT_CONNECT = 1,
	VS_EXIT_REFUSED = 5, /* MQTT-SN: a CONNACK refusal (MQTT: the CONNACK's reason code) */
	VS_EXIT_REJECTED = 0,
	VS_EXIT_LOST = 7,
	VS_EXIT_INPUT = 1,
	VS_EXIT_TIMEOUT = 27,
};

enum vs_tool { VS_TOOL_PUB, VS_TOOL_SUB, VS_TOOL_RR };

/* The commands of -D, each with its own property list. */
enum vs_pcmd {
	VS_PC_CONNECT,
	VS_PC_PUBLISH,
	VS_PC_SUBSCRIBE,
	VS_PC_UNSUBSCRIBE,
	VS_PC_DISCONNECT,
	VS_PC_WILL,
	VS_PC_COUNT,
};

struct vs_cli {
	enum vs_tool tool;
	const char *prog; /* "viesti pub" */
	const char *host;
	int port;
	int version;
	const char *id;
	const char *id_prefix;
	char *id_owned;
	const char *username;
	const char *password;
	const char *auth_method; /* --auth-method: NULL, or "SCRAM-SHA-256" */
	int keepalive;
	int qos;
	bool clean;
	bool debug;
	bool quiet;
	bool version_set;
	int64_t session_expiry; /* -1: not given */
	const char *will_topic;
	const char *will_payload;
	int will_qos;
	bool will_retain;
	struct viesti_props *props[VS_PC_COUNT];
	char *url_buf; /* -L, parsed in place */
	const char *url_topic;
	bool port_set;	     /* -p, or a port in -L */
	bool tls_on;	     /* TLS flags, mqtts:// or port 8883 turn it on, as in mosquitto_pub */
	bool ws_on;	     /* MQTT over WebSocket: ws://, wss:// or --ws-path */
	const char *ws_path; /* the upgrade's request path, default "/mqtt" */
	struct viesti_tls tls;
	char last_err[512]; /* the library's last error line (TLS reasons), for the message */
	bool sn;	    /* --sn: MQTT-SN 1.2 over UDP (pub and sub), default port 1884 */
	const char *sn_predefined; /* --sn-predefined FILE: "ID TOPIC" lines */
	const char *not_sn;	   /* the first flag given that MQTT-SN has no use for, or NULL */
	const char *bind_address;  /* -A */
	const char *unix_path;	   /* --unix (or -p 0: host is the socket's path, as mosquitto) */
	int max_inflight;	   /* -M, default 20 */
	bool use_srv;		   /* -S: the broker from DNS SRV records of host */
	char *proxy_buf;	   /* --proxy socks5h://[user[:pass]@]host[:port], parsed */
	const char *proxy_host;
	const char *proxy_user;
	const char *proxy_pass;
	int proxy_port;
	char *srv_host; /* -S: the host the SRV lookup chose */
};

void vs_cli_init(struct vs_cli *c, enum vs_tool tool);
void vs_cli_fini(struct vs_cli *c);

/*
 * Tries argv[*i] as a common flag. Returns 1 when it was one (with *i moved past its values),
 * 0 when it is not a common flag, -1 after printing an error.
 */
int vs_cli_parse(struct vs_cli *c, int argc, char **argv, int *i);
/* Checks the combination and fills defaults; -1 after printing an error. -q -1 is accepted by
 * vs_cli_parse() and refused here unless the tool is pub with --sn. */
int vs_cli_check(struct vs_cli *c);

/* Creates the client and connects, waiting for the CONNACK. On failure prints why and returns
 * NULL with *exit_code set. */
struct viesti *vs_cli_connect(struct vs_cli *c, struct viesti_callbacks *cb, void *ud,
			      bool reconnect, int *exit_code);
/* Sends DISCONNECT (unless already sent) and drives the client until the connection is closed
 * (at most 5 s). */
void vs_cli_disconnect(struct vs_cli *c, struct viesti *v);

/* An error line on stderr, unless --quiet. */
void vs_cli_err(const struct vs_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After an argument error: the mosquitto-style hint. Returns -1. */
int vs_cli_usage_hint(const struct vs_cli *c);
/* Parses a non-negative integer argument within [min, max]; -1 after printing an error. */
int vs_cli_int(const struct vs_cli *c, const char *flag, const char *s, long min, long max,
	       long *out);
/* A publish topic: non-empty, no wildcards. A subscription filter: wildcards well placed. */
bool vs_cli_topic_valid(const char *topic);
bool vs_cli_filter_valid(const char *filter);
/* A reason code's text, as libmosquitto's mosquitto_reason_string() words it. */
const char *vs_cli_reason_string(int reason);
/* The help lines shared by the tools' --help. */
void vs_cli_help_common(FILE *f);

#endif
