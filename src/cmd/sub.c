/*
 * viesti sub: subscribe to topics and print what arrives, with mosquitto_sub's flags and output
 * (see cli_format.c for the formats). The client reconnects by itself after a lost connection
 * and subscribes again in on_connect. The loop runs in this thread: viesti_loop() with the -W
 * deadline; SIGINT/SIGTERM end it cleanly.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli_common.h"
#include "cmd/cli_format.h"
#include "cmd/cmd.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

struct sub {
	struct vs_cli *cli; /* first: cli_common's log callback finds it here */
	struct vs_cli c;
	const char **topics;
	int *opts;
	size_t n_topics;
	const char **filter_out;
	size_t n_filter_out;
	const char **unsub;
	size_t n_unsub;
	struct vs_fmt fmt;
	long count;        /* -C */
	long received;
	long timeout;      /* -W seconds, 0: none */
	bool no_retain;    /* -R */
	bool exit_after_sub; /* -E */
	bool retained_only;
	bool remove_retained;
	bool rap;          /* --retain-as-published */
	bool done;
	int code;
};

static void usage(void)
{
	printf("viesti sub subscribes to topics and prints the messages it receives\n"
	       "(mosquitto_sub compatible).\n\n"
	       "Usage: viesti sub {[-h host] [-p port] [-u username] [-P password] -t topic ... | -L URL [-t topic]}\n"
	       "                  [-c] [-k keepalive] [-q qos] [-x session-expiry-interval]\n"
	       "                  [-C msg_count] [-E] [-R] [--retained-only] [--remove-retained]\n"
	       "                  [-T filter_out ...] [-U topic ...] [-F format] [-W timeout_secs]\n"
	       "                  [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v]\n"
	       "                  [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
	       "                  [-V protocol-version] [-D command identifier value]\n"
	       "                  [{--cafile file | --capath dir} [--cert file] [--key file]\n"
	       "                   [--insecure] [--tls-version version] [--tls-alpn protocol]\n"
	       "                   [--tls-use-os-certs]] [--psk hex-key --psk-identity identity]\n"
	       "                  [--auth-method SCRAM-SHA-256]\n"
	       "       viesti sub --help\n\n"
	       " -C : disconnect and exit after receiving the 'msg_count' messages.\n"
	       " -E : Exit once all subscriptions have been acknowledged by the broker.\n"
	       " -F : output format (as mosquitto_sub: %%t %%p %%q %%r %%l %%m %%x %%X %%I %%U %%j %%J\n"
	       "      %%A %%C %%D %%E %%F %%P %%R %%S %%%%, @strftime, \\escapes; see docs/sub.md).\n"
	       " -N : do not add an end of line character when printing the payload.\n"
	       " -R : do not print stale messages (those with retain set).\n"
	       " -t : mqtt topic to subscribe to. May be repeated multiple times.\n"
	       " -T : topic string to filter out of results. May be repeated.\n"
	       " -U : unsubscribe from a topic. May be repeated.\n"
	       " -v : print published messages verbosely.\n"
	       " -W : Specifies a timeout in seconds how long to process incoming MQTT messages.\n"
	       " --retained-only : only handle messages with the retained flag set, and exit when the\n"
	       "                   first non-retained message is received.\n"
	       " --remove-retained : clear any received retained messages (use -T to keep some).\n"
	       " --retain-as-published : set the Retain As Published subscription option (MQTT v5).\n");
	vs_cli_help_common(stdout);
}

static int push(const char ***list, size_t *n, const char *s)
{
	const char **l = realloc(*list, (*n + 1) * sizeof(*l));
	if (!l)
		return -1;
	l[(*n)++] = s;
	*list = l;
	return 0;
}

static int need_value(struct sub *s, int argc, char **argv, int i)
{
	if (i + 1 < argc)
		return 0;
	fprintf(stderr, "Error: %s argument given but no value specified.\n", argv[i]);
	return vs_cli_usage_hint(&s->c);
}

static int parse_own(struct sub *s, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	static const char *const with_value[] = {"-t", "--topic", "-T", "--filter-out", "-U",
						 "--unsubscribe", "-C", "-W", "-F", NULL};
	for (int k = 0; with_value[k]; k++)
		if (!strcmp(a, with_value[k]) && need_value(s, argc, argv, *i) < 0)
			return -1;
	if (!strcmp(a, "-t") || !strcmp(a, "--topic")) {
		const char *t = argv[++*i];
		if (!vs_cli_filter_valid(t)) {
			fprintf(stderr, "Error: Invalid subscription topic '%s', are all '+' and '#' "
					"wildcards correct?\n", t);
			return vs_cli_usage_hint(&s->c);
		}
		return push(&s->topics, &s->n_topics, t) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-T") || !strcmp(a, "--filter-out")) {
		const char *t = argv[++*i];
		if (!vs_cli_filter_valid(t)) {
			fprintf(stderr, "Error: Invalid filter topic '%s', are all '+' and '#' "
					"wildcards correct?\n", t);
			return vs_cli_usage_hint(&s->c);
		}
		return push(&s->filter_out, &s->n_filter_out, t) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-U") || !strcmp(a, "--unsubscribe")) {
		return push(&s->unsub, &s->n_unsub, argv[++*i]) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-C")) {
		return vs_cli_int(&s->c, a, argv[++*i], 1, 2147483647, &s->count) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-W")) {
		return vs_cli_int(&s->c, a, argv[++*i], 1, 2147483647, &s->timeout) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-F")) {
		s->fmt.format = argv[++*i];
		if (vs_fmt_check(s->fmt.format) < 0)
			return vs_cli_usage_hint(&s->c);
	} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
		s->fmt.verbose = true;
	} else if (!strcmp(a, "-N")) {
		s->fmt.eol = false;
	} else if (!strcmp(a, "-R")) {
		s->no_retain = true;
	} else if (!strcmp(a, "-E")) {
		s->exit_after_sub = true;
	} else if (!strcmp(a, "--retained-only")) {
		s->retained_only = true;
	} else if (!strcmp(a, "--remove-retained")) {
		s->remove_retained = true;
	} else if (!strcmp(a, "--retain-as-published")) {
		s->rap = true;
	} else if (!strcmp(a, "--pretty")) {
		/* accepted for compatibility: JSON is printed minimised */
	} else {
		return 0;
	}
	return 1;
}

static int parse_args(struct sub *s, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			usage();
			exit(0);
		}
		int rc = vs_cli_parse(&s->c, argc, argv, &i);
		if (rc == 0)
			rc = parse_own(s, argc, argv, &i);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			fprintf(stderr, "Error: Unknown option '%s'.\n", argv[i]);
			return vs_cli_usage_hint(&s->c);
		}
	}
	if (s->c.url_topic && *s->c.url_topic && push(&s->topics, &s->n_topics, s->c.url_topic) < 0)
		return -1;
	if (s->n_topics == 0) {
		fprintf(stderr, "Error: You must specify a topic to subscribe to.\n");
		return vs_cli_usage_hint(&s->c);
	}
	if (s->remove_retained && s->no_retain) {
		fprintf(stderr, "Error: --remove-retained and -R cannot be used together.\n");
		return vs_cli_usage_hint(&s->c);
	}
	s->opts = calloc(s->n_topics, sizeof(int));
	if (!s->opts)
		return -1;
	for (size_t k = 0; k < s->n_topics; k++)
		s->opts[k] = s->c.qos | (s->rap ? VIESTI_SUB_RETAIN_AS_PUBLISHED : 0);
	s->fmt.quiet = s->c.quiet;
	return vs_cli_check(&s->c);
}

static void finish_with(struct sub *s, int code)
{
	s->done = true;
	s->code = code;
}

static void on_connect(struct viesti *v, void *ud, int reason, bool session_present,
		       const struct viesti_props *props)
{
	struct sub *s = ud;
	if (reason != 0)
		return;
	viesti_subscribe_many(v, s->topics, s->opts, s->n_topics, s->c.props[VS_PC_SUBSCRIBE]);
	if (s->n_unsub)
		viesti_unsubscribe_many(v, s->unsub, s->n_unsub, s->c.props[VS_PC_UNSUBSCRIBE]);
}

static void on_subscribe(struct viesti *v, void *ud, int mid, int count, const uint8_t *codes,
			 const struct viesti_props *props)
{
	struct sub *s = ud;
	bool all_denied = count > 0;
	if (s->c.debug)
		printf("Subscribed (mid: %d): ", mid);
	for (int i = 0; i < count; i++) {
		if (s->c.debug)
			printf(i ? ", %d" : "%d", codes[i]);
		all_denied &= codes[i] >= 0x80;
	}
	if (s->c.debug) {
		printf("\n");
		fflush(stdout);
	}
	if (all_denied) {
		vs_cli_err(&s->c, "All subscription requests were denied.");
		finish_with(s, VS_EXIT_REJECTED);
	} else if (s->exit_after_sub) {
		finish_with(s, VS_EXIT_OK);
	}
}

static bool filtered_out(const struct sub *s, const char *topic)
{
	for (size_t k = 0; k < s->n_filter_out; k++)
		if (vs_cli_topic_matches(s->filter_out[k], topic))
			return true;
	return false;
}

static void on_message(struct viesti *v, void *ud, const struct viesti_message *m)
{
	struct sub *s = ud;
	if (s->done)
		return;
	if (s->retained_only && !m->retain) {
		finish_with(s, VS_EXIT_OK);
		return;
	}
	if (m->retain && s->no_retain)
		return;
	if (filtered_out(s, m->topic))
		return;
	if (s->remove_retained && m->retain)
		viesti_publish(v, m->topic, NULL, 0, 1, true, NULL);
	vs_fmt_print(stdout, &s->fmt, m);
	if (s->count > 0 && ++s->received >= s->count)
		finish_with(s, VS_EXIT_OK);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void run(struct sub *s, struct viesti *v)
{
	double end = s->timeout ? now_s() + (double)s->timeout : 0;
	while (!s->done && !stop_signal) {
		int wait = 1000;
		if (end) {
			double left = end - now_s();
			if (left <= 0) {
				vs_cli_err(&s->c, "Timed out");
				finish_with(s, VS_EXIT_TIMEOUT);
				break;
			}
			if (left * 1000 < wait)
				wait = (int)(left * 1000) + 1;
		}
		viesti_loop(v, wait);
	}
	/* --remove-retained: let the clearing publishes be acknowledged first */
	double drain_end = now_s() + 5;
	while (viesti_is_connected(v) && viesti_pending(v) > 0 && now_s() < drain_end)
		viesti_loop(v, 100);
}

int vs_cmd_sub(int argc, char **argv)
{
	struct sub s = {.code = VS_EXIT_OK};
	s.cli = &s.c;
	s.fmt.eol = true;
	vs_cli_init(&s.c, VS_TOOL_SUB);
	int code = VS_EXIT_USAGE;
	if (parse_args(&s, argc, argv) < 0)
		goto out;
	install_signals();
	struct viesti_callbacks cb = {
		.on_connect = on_connect,
		.on_subscribe = on_subscribe,
		.on_message = on_message,
	};
	struct viesti *v = vs_cli_connect(&s.c, &cb, &s, true, &code);
	if (!v)
		goto out;
	run(&s, v);
	code = s.code;
	if (viesti_is_connected(v))
		vs_cli_disconnect(&s.c, v);
	viesti_free(v);
out:
	free(s.topics);
	free(s.opts);
	free(s.filter_out);
	free(s.unsub);
	vs_cli_fini(&s.c);
	return code;
}
