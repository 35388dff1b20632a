/*
 * MQTT-SN for viesti pub and sub: see cli_sn.h.
 */
#include "cmd/cli_sn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* -d prints the client's message lines; warnings (a lost gateway, a full queue) go to stderr
 * with -d too. */
static void on_log(struct viesti_sn *c, void *ud, int level, const char *line)
{
	struct vs_cli *cli = ud;
	if (!cli->debug)
		return;
	if (level == VIESTI_LOG_DEBUG) {
		printf("%s\n", line);
		fflush(stdout);
	} else if (!cli->quiet) {
		fprintf(stderr, "%s\n", line);
	}
}

/* Gives the client the file's table. */
static int predefine_all(struct vs_cli *cli, struct vs_cli_sn *s)
{
	size_t i = 0;
	const char *key;
	size_t kl;
	void *val;
	while (vs_map_next(&s->topics.by_id, &i, &key, &kl, &val)) {
		uint16_t id = (uint16_t)((uint8_t)key[0] << 8 | (uint8_t)key[1]);
		int rc = viesti_sn_predefine(s->c, id, val);
		if (rc < 0) {
			vs_cli_err(cli, "Error: --sn-predefined: %s", viesti_strerror(rc));
			return VS_EXIT_USAGE;
		}
	}
	return 0;
}

int vs_cli_sn_open(struct vs_cli *cli, struct vs_cli_sn *s)
{
	memset(s, 0, sizeof(*s));
	if (cli->sn_predefined) {
		char why[300];
		if (vs_sn_topics_load(&s->topics, cli->sn_predefined, why, sizeof(why)) < 0) {
			vs_cli_err(cli, "Error: --sn-predefined %s", why);
			return VS_EXIT_USAGE;
		}
	}
	struct viesti_sn_options o;
	viesti_sn_options_init(&o);
	o.host = cli->host;
	o.port = cli->port;
	o.client_id = cli->id;
	o.keepalive = cli->keepalive;
	o.clean = cli->clean;
	if (cli->will_topic) {
		o.will_topic = cli->will_topic;
		o.will_payload = cli->will_payload;
		o.will_payload_len = cli->will_payload ? strlen(cli->will_payload) : 0;
		o.will_qos = cli->will_qos;
		o.will_retain = cli->will_retain;
	}
	o.log_level = cli->debug ? VIESTI_LOG_DEBUG : VIESTI_LOG_ERR;
	o.on_log = on_log;
	o.ud = cli;
	int err;
	s->c = viesti_sn_new(&o, &err);
	if (!s->c) {
		if (err == -ENOENT)
			vs_cli_err(cli, "Error: unknown host %s", cli->host);
		else
			vs_cli_err(cli, "Error: %s", viesti_strerror(err));
		return err == -ENOENT ? VS_EXIT_CONNECT : VS_EXIT_USAGE;
	}
	return predefine_all(cli, s);
}

void vs_cli_sn_close(struct vs_cli_sn *s)
{
	viesti_sn_free(s->c);
	s->c = NULL;
	vs_sn_topics_fini(&s->topics);
}

const char *vs_cli_sn_rc_string(int rc)
{
	switch (rc) {
	case VIESTI_SN_ACCEPTED:
		return "accepted";
	case VIESTI_SN_CONGESTION:
		return "rejected: congestion";
	case VIESTI_SN_INVALID_TOPIC:
		return "rejected: invalid topic ID";
	case VIESTI_SN_NOT_SUPPORTED:
		return "rejected: not supported";
	default:
		return "rejected: unknown return code";
	}
}

int vs_cli_sn_error(const struct vs_cli *cli, const char *what, int err)
{
	if (err == -ETIMEDOUT)
		vs_cli_err(cli, "Error: %s: no answer from the MQTT-SN gateway", what);
	else if (err == VIESTI_ECLOSED)
		vs_cli_err(cli, "Error: %s: the gateway disconnected the client", what);
	else
		vs_cli_err(cli, "Error: %s: %s", what, viesti_strerror(err));
	if (err == VIESTI_EINVAL || err == VIESTI_ETOOBIG)
		return VS_EXIT_USAGE;
	return err == -EINTR ? VS_EXIT_OK : VS_EXIT_LOST;
}

int vs_cli_sn_connect(struct vs_cli *cli, struct vs_cli_sn *s)
{
	int rc = viesti_sn_connect(s->c, -1);
	if (rc == 0)
		return 0;
	if (rc > 0) {
		vs_cli_err(cli, "Connection error: Connection Refused: %s",
			   vs_cli_sn_rc_string(rc));
		return VS_EXIT_REFUSED;
	}
	if (rc == -ETIMEDOUT)
		vs_cli_err(cli, "Error: no answer from the MQTT-SN gateway at %s:%d", cli->host,
			   cli->port);
	else
		vs_cli_err(cli, "Error: %s", viesti_strerror(rc));
	return rc == -EINTR ? VS_EXIT_OK : VS_EXIT_CONNECT;
}

void vs_cli_sn_disconnect(struct vs_cli_sn *s)
{
	if (viesti_sn_state(s->c) != VIESTI_SN_DISCONNECTED)
		viesti_sn_disconnect(s->c, 2000);
}

uint16_t vs_cli_sn_predefined(const struct vs_cli_sn *s, const char *topic)
{
	return vs_sn_topics_id(&s->topics, (const uint8_t *)topic, strlen(topic));
}
