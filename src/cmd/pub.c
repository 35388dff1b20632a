/*
 * viesti pub: publish one message (-m, -f, -s, -n), a message repeated (--repeat), or one
 * message per line of stdin (-l), with mosquitto_pub's flags. It connects once, publishes,
 * waits until every QoS 1/2 message is acknowledged, then disconnects. Exit codes are listed in
 * cli_common.h and in docs/pub.md. With --sn it does the same over MQTT-SN (libviesti's
 * viesti_sn_* calls, one message at a time), and -q -1 publishes without connecting.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli_common.h"
#include "cmd/cli_sn.h"
#include "cmd/cmd.h"

enum mode { M_NONE, M_MSG, M_FILE, M_STDIN_ALL, M_LINES, M_NULL };

struct pub {
	struct vs_cli *cli; /* first: cli_common's log callback finds it here */
	struct vs_cli c;
	enum mode mode;
	const char *topic;
	const char *message;
	const char *file;
	bool retain;
	long repeat;
	double repeat_delay;
	int failed_reason; /* a negative acknowledgement, or -1 */
	bool lost;
};

static void usage(void)
{
	printf(
	    "viesti pub publishes a message on a topic and exits (mosquitto_pub compatible).\n\n"
	    "Usage: viesti pub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t "
	    "topic |\n"
	    "                   -L URL}\n"
	    "                  {-f file | -l | -n | -m message | -s}\n"
	    "                  [-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay "
	    "time]\n"
	    "                  [-x session-expiry] [-i id] [-I id_prefix] [-d] [--quiet]\n"
	    "                  [-A bind_address] [--nodelay] [-M max_inflight] [-S]\n"
	    "                  [--proxy socks-url]\n"
	    "                  [--will-topic [--will-payload payload] [--will-qos qos] "
	    "[--will-retain]]\n"
	    "                  [-V protocol-version] [-D command identifier value]\n"
	    "                  [{--cafile file | --capath dir} [--cert file] [--key file]\n"
	    "                   [--insecure] [--tls-version version] [--tls-alpn protocol]\n"
	    "                   [--tls-use-os-certs]] [--psk hex-key --psk-identity identity]\n"
	    "                  [--auth-method SCRAM-SHA-256]\n"
	    "       viesti pub --sn [-h host] [-p port] -t topic {-f file | -l | -n | -m message | "
	    "-s}\n"
	    "                  [-q -1|0|1|2] [-r] [-c] [-k keepalive] [-i id] [-I id_prefix]\n"
	    "                  [--sn-predefined file] [--repeat N] [--repeat-delay time] [-d]\n"
	    "                  [--quiet] [--will-topic [--will-payload payload] [--will-qos qos]\n"
	    "                   [--will-retain]]\n"
	    "       viesti pub --help\n\n"
	    " -f : send the contents of a file as the message.\n"
	    " -l : read messages from stdin, sending a separate message for each line.\n"
	    " -m : message payload to send.\n"
	    " -n : send a null (zero length) message.\n"
	    " -r : message should be retained.\n"
	    " -s : read message from stdin, sending the entire input as a message.\n"
	    " -t : mqtt topic to publish to.\n"
	    " --repeat : if publish mode is -f, -m, or -s, then repeat the publish N times.\n"
	    " --repeat-delay : if using --repeat, wait time seconds between publishes.\n"
	    " --sn : publish over MQTT-SN 1.2 (UDP) to an MQTT-SN gateway, default port 1884.\n"
	    "        The topic goes as a predefined id (--sn-predefined), as a short name (two\n"
	    "        characters), or is registered. -q -1 publishes without connecting (to a\n"
	    "        predefined or short topic only). A Viesti extension.\n"
	    " --sn-predefined : file of predefined topic ids, one \"ID TOPIC\" per line (the\n"
	    "                   format of the broker's mqttsn_predefined_topics).\n");
	vs_cli_help_common(stdout);
}

static int set_mode(struct pub *p, enum mode m)
{
	if (p->mode != M_NONE) {
		fprintf(stderr, "Error: Only one type of message can be sent at once.\n\n");
		return vs_cli_usage_hint(&p->c);
	}
	p->mode = m;
	return 1;
}

static int parse_own(struct pub *p, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	/* The flags that take a value, and mosquitto_pub's words when it is missing. */
	static const char *const with_value[][3] = {
	    {"-t", "-t", "topic"},
	    {"--topic", "-t", "topic"},
	    {"-m", "-m", "message"},
	    {"--message", "-m", "message"},
	    {"-f", "-f", "file"},
	    {"--file", "-f", "file"},
	    {"--repeat", "--repeat", "count"},
	    {"--repeat-delay", "--repeat-delay", "time"},
	};
	for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
		/* -m and -f check "only one message" first, as mosquitto_pub does */
		bool msg = with_value[k][1][1] == 'm' || with_value[k][1][1] == 'f';
		if (strcmp(a, with_value[k][0]) != 0 || *i + 1 < argc || (msg && p->mode != M_NONE))
			continue;
		fprintf(stderr, "Error: %s argument given but no %s specified.\n\n",
			with_value[k][1], with_value[k][2]);
		return vs_cli_usage_hint(&p->c);
	}
	if (!strcmp(a, "-t") || !strcmp(a, "--topic")) {
		p->topic = argv[++*i];
		if (!vs_cli_topic_valid(p->topic)) {
			fprintf(stderr,
				"Error: Invalid publish topic '%s', does it contain '+' or '#'?\n",
				p->topic);
			return vs_cli_usage_hint(&p->c);
		}
	} else if (!strcmp(a, "-m") || !strcmp(a, "--message")) {
		p->message = argv[++*i];
		return set_mode(p, M_MSG);
	} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
		p->file = argv[++*i];
		return set_mode(p, M_FILE);
	} else if (!strcmp(a, "-s") || !strcmp(a, "--stdin-file")) {
		return set_mode(p, M_STDIN_ALL);
	} else if (!strcmp(a, "-l") || !strcmp(a, "--stdin-line")) {
		return set_mode(p, M_LINES);
	} else if (!strcmp(a, "-n") || !strcmp(a, "--null-message")) {
		return set_mode(p, M_NULL);
	} else if (!strcmp(a, "-r") || !strcmp(a, "--retain")) {
		p->retain = true;
	} else if (!strcmp(a, "--repeat")) {
		p->repeat = strtol(argv[++*i], NULL, 10);
		if (p->repeat < 1 || p->repeat > 1000000000) {
			fprintf(stderr, "Error: --repeat argument must be >0.\n\n");
			return vs_cli_usage_hint(&p->c);
		}
	} else if (!strcmp(a, "--repeat-delay")) {
		p->repeat_delay = atof(argv[++*i]);
		if (p->repeat_delay < 0 || isnan(p->repeat_delay)) {
			fprintf(stderr, "Error: --repeat-delay argument must be >=0.0.\n\n");
			return vs_cli_usage_hint(&p->c);
		}
	} else {
		return 0;
	}
	return 1;
}

static int parse_args(struct pub *p, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			usage();
			exit(0);
		}
		int rc = vs_cli_parse(&p->c, argc, argv, &i);
		if (rc == 0)
			rc = parse_own(p, argc, argv, &i);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			fprintf(stderr, "Error: Unknown option '%s'.\n", argv[i]);
			return vs_cli_usage_hint(&p->c);
		}
	}
	if (!p->topic)
		p->topic = p->c.url_topic;
	if (!p->topic || p->mode == M_NONE) {
		/* mosquitto_pub prints its usage after this one, not the --help hint */
		fprintf(stderr, "Error: Both topic and message must be supplied.\n");
		usage();
		return -1;
	}
	if (p->repeat > 1 && p->mode == M_LINES) {
		fprintf(stderr, "Error: --repeat can only be used with -f, -m, -n or -s.\n");
		return vs_cli_usage_hint(&p->c);
	}
	return vs_cli_check(&p->c);
}

/* Reads all of f into *buf. Returns the length or -1. */
static ssize_t slurp(FILE *f, char **buf)
{
	size_t len = 0, cap = 4096;
	char *b = malloc(cap);
	if (!b)
		return -1;
	for (;;) {
		if (len == cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb) {
				free(b);
				return -1;
			}
			b = nb;
		}
		size_t n = fread(b + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(b);
		return -1;
	}
	*buf = b;
	return (ssize_t)len;
}

static void on_publish(struct viesti *v, void *ud, int mid, int reason,
		       const struct viesti_props *props)
{
	struct pub *p = ud;
	if (reason >= 0x80) {
		p->failed_reason = reason;
		vs_cli_err(&p->c, "Warning: Publish %d failed: %s.", mid,
			   vs_cli_reason_string(reason));
	}
}

static void on_disconnect(struct viesti *v, void *ud, int err, int reason,
			  const struct viesti_props *props)
{
	struct pub *p = ud;
	if (err != 0)
		p->lost = true;
}

/* Seconds since t0 (CLOCK_MONOTONIC). */
static double since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Drives the client for `seconds` (fractional), or until the connection is lost. */
static void drive_for(struct pub *p, struct viesti *v, double seconds)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		double left = seconds - since(&t0);
		if (left <= 0 || p->lost)
			return;
		viesti_loop(v, (int)(left * 1000) + 1);
	}
}

static int publish(struct pub *p, struct viesti *v, const void *data, size_t len)
{
	int rc =
	    viesti_publish(v, p->topic, data, len, p->c.qos, p->retain, p->c.props[VS_PC_PUBLISH]);
	if (rc < 0) {
		vs_cli_err(&p->c, "Error: Publish returned %d: %s.", rc, viesti_strerror(rc));
		return rc == -ENOTCONN ? VS_EXIT_LOST : VS_EXIT_USAGE;
	}
	return 0;
}

/* -l: one message per line, while keeping the connection serviced. */
static int publish_lines(struct pub *p, struct viesti *v)
{
	char *line = NULL;
	size_t cap = 0;
	for (;;) {
		struct pollfd fds[2] = {{.fd = 0, .events = POLLIN},
					{.fd = viesti_fd(v), .events = POLLIN}};
		int n = poll(fds, 2, viesti_next_timeout_ms(v));
		if (n < 0 && errno != EINTR)
			break;
		viesti_process(v, 0);
		if (p->lost)
			break;
		if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP))) {
			ssize_t len = getline(&line, &cap, stdin);
			if (len < 0)
				break;
			if (len > 0 && line[len - 1] == '\n')
				len--;
			int rc = publish(p, v, line, (size_t)len);
			if (rc) {
				free(line);
				return rc;
			}
		}
	}
	free(line);
	return 0;
}

/* Drives the client until every message is done or the connection is lost. */
static void wait_done(struct pub *p, struct viesti *v)
{
	while (!p->lost && (viesti_pending(v) > 0 || viesti_want_write(v)))
		viesti_loop(v, 1000);
}

static int run(struct pub *p, struct viesti *v, const char *data, size_t len)
{
	if (p->mode == M_LINES)
		return publish_lines(p, v);
	long n = p->repeat > 0 ? p->repeat : 1;
	for (long k = 0; k < n; k++) {
		int rc = publish(p, v, data, len);
		if (rc)
			return rc;
		/* As mosquitto_pub: the next copy goes once this one is done (written for QoS 0,
		 * acknowledged for QoS 1 and 2), then after --repeat-delay. */
		if (k + 1 < n)
			wait_done(p, v);
		if (k + 1 < n && p->repeat_delay > 0)
			drive_for(p, v, p->repeat_delay);
		else
			viesti_process(v, 0);
		if (p->lost)
			return VS_EXIT_LOST;
	}
	return 0;
}

/* Waits until every QoS 1/2 message is acknowledged and the socket has taken everything. */
static int finish(struct pub *p, struct viesti *v)
{
	wait_done(p, v);
	if (p->lost) {
		vs_cli_err(&p->c, "Error: The connection was lost.");
		return VS_EXIT_LOST;
	}
	return p->failed_reason >= 0 ? VS_EXIT_REJECTED : 0;
}

/* ---- --sn: MQTT-SN ------------------------------------------------------------------------- */

/* One message; a ReturnCode other than accepted is a warning (status 0, as for MQTT). */
static int sn_publish(struct pub *p, struct vs_cli_sn *s, const void *data, size_t len)
{
	int rc = viesti_sn_publish(s->c, p->topic, data, len, p->c.qos, p->retain, -1);
	if (rc < 0)
		return vs_cli_sn_error(&p->c, "Publish failed", rc);
	if (rc > 0) {
		p->failed_reason = rc;
		vs_cli_err(&p->c, "Warning: Publish failed: %s.", vs_cli_sn_rc_string(rc));
	}
	return 0;
}

/* Received messages are not pub's: dropped, so that the queue never fills. */
static void sn_drop_received(struct vs_cli_sn *s)
{
	struct viesti_sn_message m;
	while (viesti_sn_queued(s->c) > 0)
		viesti_sn_receive(s->c, &m, 0);
}

/* --repeat-delay: keeps the client served (keep-alive) while it waits. */
static int sn_wait(struct pub *p, struct vs_cli_sn *s, double seconds)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		double left = seconds - since(&t0);
		if (left <= 0)
			return 0;
		if (p->c.qos < 0) {
			struct timespec ts = {(time_t)left,
					      (long)((left - (double)(time_t)left) * 1e9)};
			nanosleep(&ts, NULL);
			continue;
		}
		struct viesti_sn_message m;
		int rc = viesti_sn_receive(s->c, &m, (int)(left * 1000) + 1);
		if (rc < 0 && rc != -ETIMEDOUT)
			return vs_cli_sn_error(&p->c, "Connection", rc);
		sn_drop_received(s);
	}
}

/* -l over MQTT-SN: a line, a message; the client is served while stdin is quiet. */
static int sn_publish_lines(struct pub *p, struct vs_cli_sn *s)
{
	char *line = NULL;
	size_t cap = 0;
	int code = 0;
	while (code == 0) {
		int fd = viesti_sn_fd(s->c);
		struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
		int n = poll(fds, fd >= 0 ? 2 : 1, viesti_sn_next_timeout_ms(s->c));
		if (n < 0 && errno != EINTR)
			break;
		int rc = viesti_sn_process(s->c);
		if (rc < 0) {
			code = vs_cli_sn_error(&p->c, "Connection", rc);
			break;
		}
		sn_drop_received(s);
		if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP))) {
			ssize_t len = getline(&line, &cap, stdin);
			if (len < 0)
				break;
			if (len > 0 && line[len - 1] == '\n')
				len--;
			code = sn_publish(p, s, line, (size_t)len);
		}
	}
	free(line);
	return code;
}

static int sn_publish_repeat(struct pub *p, struct vs_cli_sn *s, const char *data, size_t len)
{
	long n = p->repeat > 0 ? p->repeat : 1;
	for (long k = 0; k < n; k++) {
		int rc = sn_publish(p, s, data, len);
		if (rc == 0 && k + 1 < n && p->repeat_delay > 0)
			rc = sn_wait(p, s, p->repeat_delay);
		if (rc)
			return rc;
	}
	return 0;
}

static int run_sn(struct pub *p, const char *data, size_t len)
{
	struct vs_cli_sn s;
	int code = vs_cli_sn_open(&p->c, &s);
	if (code)
		goto out;
	if (p->c.qos < 0 && strlen(p->topic) != 2 && !vs_cli_sn_predefined(&s, p->topic)) {
		vs_cli_err(&p->c, "Error: QoS -1 needs a predefined topic (--sn-predefined) or a "
				  "two-character topic name.");
		code = VS_EXIT_USAGE;
		goto out;
	}
	if (p->c.qos >= 0 && (code = vs_cli_sn_connect(&p->c, &s)) != 0)
		goto out;
	if (p->mode == M_LINES)
		code = sn_publish_lines(p, &s);
	else
		code = sn_publish_repeat(p, &s, data, len);
	if (code == 0 && p->failed_reason >= 0)
		code = VS_EXIT_REJECTED;
	vs_cli_sn_disconnect(&s);
out:
	vs_cli_sn_close(&s);
	return code;
}

static int load_payload(struct pub *p, char **data, size_t *len)
{
	*data = NULL;
	*len = 0;
	if (p->mode == M_MSG) {
		*len = strlen(p->message);
		return 0;
	}
	if (p->mode != M_FILE && p->mode != M_STDIN_ALL)
		return 0;
	FILE *f = p->mode == M_FILE ? fopen(p->file, "rb") : stdin;
	ssize_t n = f ? slurp(f, data) : -1;
	if (f && f != stdin)
		fclose(f);
	if (n < 0) {
		if (p->mode == M_FILE)
			vs_cli_err(&p->c, "Error loading input file \"%s\".", p->file);
		else
			vs_cli_err(&p->c, "Error loading input from stdin.");
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

int vs_cmd_pub(int argc, char **argv)
{
	struct pub p = {.failed_reason = -1};
	p.cli = &p.c;
	vs_cli_init(&p.c, VS_TOOL_PUB);
	int code = VS_EXIT_USAGE;
	char *data = NULL;
	size_t len = 0;
	if (parse_args(&p, argc, argv) < 0)
		goto out;
	if (p.c.qos < 0 && p.mode == M_LINES) {
		fprintf(stderr, "Error: -l cannot be used with -q -1.\n");
		vs_cli_usage_hint(&p.c);
		goto out;
	}
	if (!vs_cli_topic_valid(p.topic)) {
		fprintf(stderr, "Error: Invalid publish topic '%s', does it contain '+' or '#'?\n",
			p.topic);
		vs_cli_usage_hint(&p.c);
		goto out;
	}
	if (load_payload(&p, &data, &len) < 0) {
		code = VS_EXIT_INPUT;
		goto out;
	}
	if (p.c.sn) {
		code = run_sn(&p, p.mode == M_MSG ? p.message : data, len);
		goto out;
	}
	struct viesti_callbacks cb = {.on_publish = on_publish, .on_disconnect = on_disconnect};
	struct viesti *v = vs_cli_connect(&p.c, &cb, &p, false, &code);
	if (!v)
		goto out;
	code = run(&p, v, p.mode == M_MSG ? p.message : data, len);
	if (code == 0)
		code = finish(&p, v);
	if (!p.lost)
		vs_cli_disconnect(&p.c, v);
	viesti_free(v);
out:
	free(data);
	vs_cli_fini(&p.c);
	return code;
}
