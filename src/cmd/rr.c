/*
 * viesti rr: MQTT 5.0 request/response from the command line, like mosquitto_rr. It subscribes
 * to the response topic (-e), and once the SUBACK is in, publishes the request (-t, payload from
 * -m/-f/-s/-n) carrying Response Topic = -e and, when given, Correlation Data. The first message
 * on the response topic is printed (with sub's formats: -v, -F, -N) and the tool exits. With
 * -V 311 no properties are sent: the responder must know where to answer.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli_common.h"
#include "cmd/cli_format.h"
#include "cmd/cmd.h"

struct rr {
	struct vs_cli *cli; /* first: cli_common's log callback finds it here */
	struct vs_cli c;
	const char *topic;
	const char *resp_topic;
	const char *message;
	const char *file;
	const char *corr;
	bool null_msg;
	bool stdin_msg;
	char *data;
	size_t len;
	struct vs_fmt fmt;
	long timeout;
	bool no_retain;
	bool requested;
	bool done;
	int code;
};

static void usage(void)
{
	printf(
	    "viesti rr publishes a request message and waits for a response (mosquitto_rr\n"
	    "compatible). Defaults to MQTT v5, where the Response Topic property is used.\n\n"
	    "Usage: viesti rr {[-h host] [-p port] [-u username] [-P password] -t topic | -L URL}\n"
	    "                 -e response-topic {-m message | -f file | -s | -n}\n"
	    "                 [--correlation-data data] [-c] [-k keepalive] [-q qos] [-R]\n"
	    "                 [-F format] [-W timeout_secs] [-i id] [-I id_prefix] [-d] [-N]\n"
	    "                 [--quiet] [-v] [-V protocol-version] [-D command identifier value]\n"
	    "                 [--unix path] [-A bind_address] [--nodelay] [-M max_inflight] [-S]\n"
	    "                 [--proxy socks-url] [--pretty]\n"
	    "                 [{--cafile file | --capath dir} [--cert file] [--key file]\n"
	    "                  [--insecure] [--tls-version version] [--tls-alpn protocol]\n"
	    "                  [--tls-use-os-certs]] [--psk hex-key --psk-identity identity]\n"
	    "                 [--auth-method SCRAM-SHA-256]\n"
	    "       viesti rr --help\n\n"
	    " -e : Response topic. The client subscribes to it to wait for a response.\n"
	    " -f : send the contents of a file as the request.\n"
	    " -F : output format (as viesti sub).\n"
	    " --pretty : print formatted output rather than minimised output when using the\n"
	    "            JSON output format option.\n"
	    " -m : request payload.\n"
	    " -n : send a null (zero length) request.\n"
	    " -N : do not add an end of line character when printing the payload.\n"
	    " -R : do not print stale messages (those with retain set).\n"
	    " -s : read the request from stdin.\n"
	    " -t : topic where the request message will be sent.\n"
	    " -v : print the response verbosely (topic and payload).\n"
	    " -W : timeout in seconds to wait for a response (exit 27 when it passes).\n"
	    " --correlation-data : Correlation Data for the request (same as\n"
	    "                      -D publish correlation-data DATA).\n");
	vs_cli_help_common(stdout);
}

static int parse_own(struct rr *r, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	/* The flags that take a value, and mosquitto_rr's words when it is missing. */
	static const char *const with_value[][3] = {
	    {"-t", "-t", "topic"},	    {"--topic", "-t", "topic"},
	    {"-e", "-e", "response topic"}, {"-m", "-m", "message"},
	    {"--message", "-m", "message"}, {"-f", "-f", "file"},
	    {"--file", "-f", "file"},	    {"-F", "-F", "format"},
	    {"-W", "-W", "timeout"},	    {"--correlation-data", "--correlation-data", "data"},
	};
	for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
		if (!strcmp(a, with_value[k][0]) && *i + 1 >= argc) {
			fprintf(stderr, "Error: %s argument given but no %s specified.\n\n",
				with_value[k][1], with_value[k][2]);
			return vs_cli_usage_hint(&r->c);
		}
	}
	if (!strcmp(a, "-t") || !strcmp(a, "--topic"))
		r->topic = argv[++*i];
	else if (!strcmp(a, "-e"))
		r->resp_topic = argv[++*i];
	else if (!strcmp(a, "-m") || !strcmp(a, "--message"))
		r->message = argv[++*i];
	else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
		r->file = argv[++*i];
	else if (!strcmp(a, "--correlation-data"))
		r->corr = argv[++*i];
	else if (!strcmp(a, "-n") || !strcmp(a, "--null-message"))
		r->null_msg = true;
	else if (!strcmp(a, "-s") || !strcmp(a, "--stdin-file"))
		r->stdin_msg = true;
	else if (!strcmp(a, "-F")) {
		r->fmt.format = argv[++*i];
		if (vs_fmt_check(r->fmt.format) < 0)
			return vs_cli_usage_hint(&r->c);
	} else if (!strcmp(a, "-W")) {
		r->timeout = strtol(argv[++*i], NULL, 10);
		if (r->timeout < 1 || r->timeout > 2147483647) {
			fprintf(stderr, "Error: Invalid timeout \"%ld\".\n\n", r->timeout);
			return vs_cli_usage_hint(&r->c);
		}
	} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
		r->fmt.verbose = true;
	else if (!strcmp(a, "-N"))
		r->fmt.eol = false;
	else if (!strcmp(a, "-R"))
		r->no_retain = true;
	else if (!strcmp(a, "--pretty"))
		r->fmt.pretty = true;
	else
		return 0;
	return 1;
}

static int parse_args(struct rr *r, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			usage();
			exit(0);
		}
		int rc = vs_cli_parse(&r->c, argc, argv, &i);
		if (rc == 0)
			rc = parse_own(r, argc, argv, &i);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			fprintf(stderr, "Error: Unknown option '%s'.\n", argv[i]);
			return vs_cli_usage_hint(&r->c);
		}
	}
	if (!r->topic)
		r->topic = r->c.url_topic;
	int sources = !!r->message + !!r->file + r->null_msg + r->stdin_msg;
	if (sources > 1) {
		fprintf(stderr, "Error: Only one type of message can be sent at once.\n\n");
		return vs_cli_usage_hint(&r->c);
	}
	if (!r->topic || !r->resp_topic || sources != 1) {
		fprintf(stderr,
			"Error: All of topic, message, and response topic must be supplied.\n");
		return vs_cli_usage_hint(&r->c);
	}
	if (!vs_cli_topic_valid(r->topic) || !vs_cli_topic_valid(r->resp_topic)) {
		fprintf(stderr, "Error: Invalid topic: wildcards are not allowed here.\n");
		return vs_cli_usage_hint(&r->c);
	}
	r->fmt.quiet = r->c.quiet;
	return vs_cli_check(&r->c);
}

static int load(struct rr *r)
{
	if (r->message) {
		r->len = strlen(r->message);
		return 0;
	}
	if (r->null_msg)
		return 0;
	FILE *f = r->file ? fopen(r->file, "rb") : stdin;
	if (!f)
		goto fail;
	size_t cap = 0;
	for (;;) {
		if (r->len == cap) {
			char *nb = realloc(r->data, cap = cap ? cap * 2 : 4096);
			if (!nb)
				break;
			r->data = nb;
		}
		size_t n = fread(r->data + r->len, 1, cap - r->len, f);
		r->len += n;
		if (n == 0)
			break;
	}
	bool bad = ferror(f);
	if (f != stdin)
		fclose(f);
	if (!bad)
		return 0;
fail:
	vs_cli_err(&r->c, "Error loading input %s.", r->file ? r->file : "from stdin");
	return -1;
}

static int add_request_props(struct rr *r)
{
	if (r->c.version != VIESTI_V5)
		return 0;
	struct viesti_props **p = &r->c.props[VS_PC_PUBLISH];
	if (!*p && !(*p = viesti_props_new()))
		return -1;
	if (viesti_props_set_string(*p, VIESTI_PROP_RESPONSE_TOPIC, r->resp_topic) < 0)
		return -1;
	if (r->corr &&
	    viesti_props_set_binary(*p, VIESTI_PROP_CORRELATION_DATA, r->corr, strlen(r->corr)) < 0)
		return -1;
	return 0;
}

static void on_connect(struct viesti *v, void *ud, int reason, bool sp,
		       const struct viesti_props *props)
{
	struct rr *r = ud;
	if (reason == 0)
		viesti_subscribe(v, r->resp_topic, r->c.qos, r->c.props[VS_PC_SUBSCRIBE]);
}

static void on_subscribe(struct viesti *v, void *ud, int mid, int count, const uint8_t *codes,
			 const struct viesti_props *props)
{
	struct rr *r = ud;
	if (count > 0 && codes[0] >= 0x80) {
		/* mosquitto_rr's line: the reason alone; the status is 0 */
		vs_cli_err(&r->c, "%s", vs_cli_reason_string(codes[0]));
		r->done = true;
		r->code = VS_EXIT_REJECTED;
		return;
	}
	if (r->requested)
		return;
	r->requested = true;
	int rc = viesti_publish(v, r->topic, r->message ? r->message : r->data, r->len, r->c.qos,
				false, r->c.props[VS_PC_PUBLISH]);
	if (rc < 0) {
		vs_cli_err(&r->c, "Error: Publish returned %d: %s.", rc, viesti_strerror(rc));
		r->done = true;
		r->code = VS_EXIT_USAGE;
	}
}

static void on_message(struct viesti *v, void *ud, const struct viesti_message *m)
{
	struct rr *r = ud;
	if (r->done || !r->requested || (m->retain && r->no_retain))
		return;
	vs_fmt_print(stdout, &r->fmt, m);
	r->done = true;
	r->code = VS_EXIT_OK;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int vs_cmd_rr(int argc, char **argv)
{
	struct rr r = {.code = VS_EXIT_OK};
	r.cli = &r.c;
	r.fmt.eol = true;
	vs_cli_init(&r.c, VS_TOOL_RR);
	int code = VS_EXIT_USAGE;
	if (parse_args(&r, argc, argv) < 0)
		goto out;
	if (load(&r) < 0) {
		code = VS_EXIT_INPUT;
		goto out;
	}
	if (add_request_props(&r) < 0)
		goto out;
	struct viesti_callbacks cb = {
	    .on_connect = on_connect,
	    .on_subscribe = on_subscribe,
	    .on_message = on_message,
	};
	struct viesti *v = vs_cli_connect(&r.c, &cb, &r, true, &code);
	if (!v)
		goto out;
	double end = r.timeout ? now_s() + (double)r.timeout : 0;
	while (!r.done) {
		if (end && now_s() >= end) {
			vs_cli_err(&r.c, "Timed out");
			r.code = VS_EXIT_TIMEOUT;
			break;
		}
		viesti_loop(v, end ? (int)((end - now_s()) * 1000) + 1 : 1000);
	}
	code = r.code;
	if (viesti_is_connected(v))
		vs_cli_disconnect(&r.c, v);
	viesti_free(v);
out:
	free(r.data);
	vs_cli_fini(&r.c);
	return code;
}
