/*
 * viesti sub: subscribe to topics and print what arrives, with mosquitto_sub's flags and output
 * (see cli_format.c for the formats). The client reconnects by itself after a lost connection
 * and subscribes again in on_connect. The loop runs in this thread: viesti_loop() with the -W
 * deadline; SIGINT/SIGTERM end it cleanly.
 *
 * With --sn the same over MQTT-SN (libviesti's viesti_sn_* calls): the loop is
 * viesti_sn_receive() with the -W deadline, and a lost gateway is connected to again once a
 * second. With --sn-sleep S the subscriber sleeps (section 6.14 of MQTT-SN 1.2): after
 * subscribing it goes to sleep for S seconds, wakes, prints what the gateway kept, and sleeps
 * again.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli_common.h"
#include "cmd/cli_format.h"
#include "cmd/cli_sn.h"
#include "cmd/cmd.h"
#include "codec/codec.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

struct sub {
	struct vs_cli *cli; /* first: cli_common's log callback finds it here */
	struct vs_cli c;
	struct viesti *v; /* MQTT: the client, once connected */
	const char **topics;
	int *opts;
	size_t n_topics;
	const char **filter_out;
	size_t n_filter_out;
	const char **unsub;
	size_t n_unsub;
	struct vs_fmt fmt;
	long count; /* -C */
	long received;
	long timeout;	     /* -W seconds, 0: none */
	bool no_retain;	     /* -R */
	bool exit_after_sub; /* -E */
	bool retained_only;
	bool remove_retained;
	bool rap;	   /* --retain-as-published */
	int random_filter; /* --random-filter: messages printed per 10,000, 10000 all */
	long sn_sleep;	   /* --sn-sleep seconds, 0: awake */
	bool done;
	int code;
	struct viesti_props *no_props; /* --sn: a message's (empty) properties */
};

static void usage(void)
{
	printf(
	    "viesti sub subscribes to topics and prints the messages it receives\n"
	    "(mosquitto_sub compatible).\n\n"
	    "Usage: viesti sub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t "
	    "topic ... |\n"
	    "                   -L URL [-t topic]}\n"
	    "                  [-c] [-k keepalive] [-q qos] [-x session-expiry-interval]\n"
	    "                  [-C msg_count] [-E] [-R] [--retained-only] [--remove-retained]\n"
	    "                  [-T filter_out ...] [-U topic ...] [-F format] [-W timeout_secs]\n"
	    "                  [-A bind_address] [--nodelay] [-M max_inflight] [-S]\n"
	    "                  [--proxy socks-url] [--pretty] [--random-filter chance]\n"
	    "                  [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v]\n"
	    "                  [--will-topic [--will-payload payload] [--will-qos qos] "
	    "[--will-retain]]\n"
	    "                  [-V protocol-version] [-D command identifier value]\n"
	    "                  [{--cafile file | --capath dir} [--cert file] [--key file]\n"
	    "                   [--insecure] [--tls-version version] [--tls-alpn protocol]\n"
	    "                   [--tls-use-os-certs]] [--psk hex-key --psk-identity identity]\n"
	    "                  [--auth-method SCRAM-SHA-256]\n"
	    "       viesti sub --sn [-h host] [-p port] -t topic ... [-c] [-k keepalive] [-q qos]\n"
	    "                  [-C msg_count] [-E] [-R] [--retained-only] [--remove-retained]\n"
	    "                  [-T filter_out ...] [-U topic ...] [-F format] [-W timeout_secs]\n"
	    "                  [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v]\n"
	    "                  [--sn-predefined file] [--sn-sleep seconds]\n"
	    "                  [--will-topic [--will-payload payload] [--will-qos qos] "
	    "[--will-retain]]\n"
	    "       viesti sub --help\n\n"
	    " -C : disconnect and exit after receiving the 'msg_count' messages.\n"
	    " -E : Exit once all subscriptions have been acknowledged by the broker.\n"
	    " -F : output format (as mosquitto_sub: %%t %%p %%q %%r %%l %%m %%x %%X %%I %%U %%j "
	    "%%J\n"
	    "      %%A %%C %%D %%E %%F %%P %%R %%S %%%%, @strftime, \\escapes; see docs/sub.md).\n"
	    " -N : do not add an end of line character when printing the payload.\n"
	    " -R : do not print stale messages (those with retain set).\n"
	    " -t : mqtt topic to subscribe to. May be repeated multiple times.\n"
	    " -T : topic string to filter out of results. May be repeated.\n"
	    " -U : unsubscribe from a topic. May be repeated.\n"
	    " -v : print published messages verbosely.\n"
	    " -W : Specifies a timeout in seconds how long to process incoming MQTT messages.\n"
	    " --retained-only : only handle messages with the retained flag set, and exit when "
	    "the\n"
	    "                   first non-retained message is received.\n"
	    " --remove-retained : clear any received retained messages (use -T to keep some).\n"
	    " --retain-as-published : set the Retain As Published subscription option (MQTT v5).\n"
	    " --pretty : print formatted output rather than minimised output when using the\n"
	    "            JSON output format option.\n"
	    " --random-filter : only print a percentage of received messages. Set to 100 to have\n"
	    "                   all messages printed, 50.0 to have half of the messages received\n"
	    "                   on average printed, and so on.\n"
	    " --sn : subscribe over MQTT-SN 1.2 (UDP) at an MQTT-SN gateway, default port 1884.\n"
	    "        A topic in --sn-predefined is subscribed by its id, a two-character topic\n"
	    "        by short name, any other filter (wildcards too) by name. A Viesti extension.\n"
	    " --sn-predefined : file of predefined topic ids, one \"ID TOPIC\" per line (the\n"
	    "                   format of the broker's mqttsn_predefined_topics).\n"
	    " --sn-sleep : with --sn, a sleeping subscriber: subscribe, then repeatedly sleep\n"
	    "              this many seconds, wake up, print what the gateway kept meanwhile.\n");
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

/* The flags that take a value, and mosquitto_sub's message when it is missing. */
static const struct {
	const char *flag, *alias, *name, *what;
} with_value[] = {
    {"-t", "--topic", "-t", "topic"},
    {"-T", "--filter-out", "-T", "topic filter"},
    {"-U", "--unsubscribe", "-U", "unsubscribe topic"},
    {"-C", NULL, "-C", "count"},
    {"-W", NULL, "-W", "timeout"},
    {"-F", NULL, "-F", "format"},
    {"--random-filter", NULL, "--random-filter", "chance"},
    {"--sn-sleep", NULL, "--sn-sleep", "value"},
};

static int need_value(struct sub *s, int argc, char **argv, int i)
{
	const char *a = argv[i];
	for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
		if (strcmp(a, with_value[k].flag) != 0 &&
		    !(with_value[k].alias && !strcmp(a, with_value[k].alias)))
			continue;
		if (i + 1 < argc)
			return 0;
		fprintf(stderr, "Error: %s argument given but no %s specified.\n\n",
			with_value[k].name, with_value[k].what);
		return vs_cli_usage_hint(&s->c);
	}
	return 0;
}

static int check_filter(struct sub *s, const char *kind, const char *t)
{
	if (vs_cli_filter_valid(t))
		return 0;
	fprintf(stderr, "Error: Invalid %s topic '%s', are all '+' and '#' wildcards correct?\n",
		kind, t);
	return vs_cli_usage_hint(&s->c);
}

/* -C and -W as mosquitto_sub reads them (atoi), with its messages. */
static int parse_count(struct sub *s, const char *a, const char *v)
{
	long n = strtol(v, NULL, 10);
	if (n < 1 || n > 2147483647) {
		fprintf(stderr, "Error: Invalid %s \"%ld\".\n\n",
			!strcmp(a, "-C") ? "message count" : "timeout", n);
		return vs_cli_usage_hint(&s->c);
	}
	*(!strcmp(a, "-C") ? &s->count : &s->timeout) = n;
	return 1;
}

static int parse_own(struct sub *s, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (need_value(s, argc, argv, *i) < 0)
		return -1;
	if (!strcmp(a, "-t") || !strcmp(a, "--topic")) {
		const char *t = argv[++*i];
		if (check_filter(s, "subscription", t) < 0)
			return -1;
		return push(&s->topics, &s->n_topics, t) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-T") || !strcmp(a, "--filter-out")) {
		const char *t = argv[++*i];
		if (check_filter(s, "filter", t) < 0)
			return -1;
		return push(&s->filter_out, &s->n_filter_out, t) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-U") || !strcmp(a, "--unsubscribe")) {
		const char *t = argv[++*i];
		if (check_filter(s, "unsubscribe", t) < 0)
			return -1;
		return push(&s->unsub, &s->n_unsub, t) < 0 ? -1 : 1;
	} else if (!strcmp(a, "-C") || !strcmp(a, "-W")) {
		return parse_count(s, a, argv[++*i]);
	} else if (!strcmp(a, "--sn-sleep")) {
		return vs_cli_int(&s->c, a, argv[++*i], 1, 65535, &s->sn_sleep) < 0 ? -1 : 1;
	} else if (!strcmp(a, "--random-filter")) {
		/* mosquitto_sub accepts what makes 10 * chance 1..10000, and then prints chance /
		 * 10 percent of the messages: a tenth of what its --help says. Viesti accepts the
		 * same values and prints the percentage --help promises (100: all). */
		double chance = atof(argv[++*i]);
		int tenths = (int)(10.0 * chance);
		if (tenths > 10000 || tenths < 1) {
			fprintf(stderr,
				"Error: --random-filter chance must be between 0.1-100.0\n\n");
			return vs_cli_usage_hint(&s->c);
		}
		s->random_filter = chance >= 100.0 ? 10000 : (int)(chance * 100.0);
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
		s->fmt.pretty = true;
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
	if (s->sn_sleep && !s->c.sn) {
		fprintf(stderr, "Error: --sn-sleep needs --sn.\n");
		return vs_cli_usage_hint(&s->c);
	}
	if (s->c.sn && s->rap) {
		fprintf(stderr, "Error: --retain-as-published cannot be used with --sn.\n");
		return vs_cli_usage_hint(&s->c);
	}
	s->opts = calloc(s->n_topics, sizeof(int));
	if (!s->opts)
		return -1;
	for (size_t k = 0; k < s->n_topics; k++)
		s->opts[k] = s->c.qos | (s->rap ? VIESTI_SUB_RETAIN_AS_PUBLISHED : 0);
	s->fmt.quiet = s->c.quiet;
	if (vs_cli_check(&s->c) < 0)
		return -1;
	if (s->no_retain && s->retained_only) {
		fprintf(stderr, "\nError: Combining '-R' and '--retained-only' makes no sense.\n");
		return -1;
	}
	return 0;
}

/* The run is over. As mosquitto_sub, an MQTT client disconnects at once (packets already read
 * after this one are left alone) unless --remove-retained publishes are still unacknowledged. */
static void finish_with(struct sub *s, int code)
{
	s->done = true;
	s->code = code;
	if (s->v && viesti_pending(s->v) == 0)
		viesti_disconnect(s->v, 0, s->c.props[VS_PC_DISCONNECT]);
}

static void on_connect(struct viesti *v, void *ud, int reason, bool session_present,
		       const struct viesti_props *props)
{
	struct sub *s = ud;
	if (reason != 0)
		return;
	s->v = v; /* the SUBACK may come before viesti_connect_wait() returns */
	viesti_subscribe_many(v, s->topics, s->opts, s->n_topics, s->c.props[VS_PC_SUBSCRIBE]);
	/* One UNSUBSCRIBE per -U, as mosquitto_sub sends them (and numbers them in -d). */
	for (size_t k = 0; k < s->n_unsub; k++)
		viesti_unsubscribe(v, s->unsub[k], s->c.props[VS_PC_UNSUBSCRIBE]);
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
		finish_with(s, VS_EXIT_OK); /* mosquitto_sub's status too */
	} else if (s->exit_after_sub) {
		finish_with(s, VS_EXIT_OK);
	}
}

static bool filtered_out(const struct sub *s, const char *topic)
{
	for (size_t k = 0; k < s->n_filter_out; k++)
		if (vs_topic_match(s->filter_out[k], topic))
			return true;
	return false;
}

/* Whether m is to be printed: -R, -T, --retained-only (whose first live message ends it). */
static bool wanted(struct sub *s, const struct viesti_message *m)
{
	if (s->done)
		return false;
	if (s->retained_only && !m->retain) {
		finish_with(s, VS_EXIT_OK);
		return false;
	}
	if (m->retain && s->no_retain)
		return false;
	return !filtered_out(s, m->topic);
}

/* --random-filter: as mosquitto_sub, a message left out still counts towards -C. */
static void print_message(struct sub *s, const struct viesti_message *m)
{
	if (s->random_filter >= 10000 || random() % 10000 < s->random_filter)
		vs_fmt_print(stdout, &s->fmt, m);
	if (s->count > 0 && ++s->received >= s->count)
		finish_with(s, VS_EXIT_OK);
}

static void on_message(struct viesti *v, void *ud, const struct viesti_message *m)
{
	struct sub *s = ud;
	if (!wanted(s, m))
		return;
	if (s->remove_retained && m->retain)
		viesti_publish(v, m->topic, NULL, 0, 1, true, NULL);
	print_message(s, m);
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

/* ---- --sn: MQTT-SN ------------------------------------------------------------------------- */

/* How a topic is subscribed: a predefined id, a short name, or by name. */
static int sn_sub_one(struct sub *s, struct vs_cli_sn *sn, const char *t, bool sub,
		      struct viesti_sn_granted *g)
{
	bool wild = strpbrk(t, "+#") != NULL;
	uint16_t pre = wild ? 0 : vs_cli_sn_predefined(sn, t);
	int type = pre ? VIESTI_SN_TOPIC_PREDEFINED : VIESTI_SN_TOPIC_SHORT;
	uint16_t id = pre ? pre : strlen(t) == 2 ? VIESTI_SN_SHORT(t[0], t[1]) : 0;
	if (wild || !id)
		return sub ? viesti_sn_subscribe(sn->c, t, s->c.qos, g, -1)
			   : viesti_sn_unsubscribe(sn->c, t, -1);
	return sub ? viesti_sn_subscribe_id(sn->c, type, id, s->c.qos, g, -1)
		   : viesti_sn_unsubscribe_id(sn->c, type, id, -1);
}

/* sn_subscribe_all()'s result when the gateway refused every topic: the run ends with status 0,
 * as mosquitto_sub's does. */
#define SN_ALL_DENIED (-2)

/* Subscribes to every -t, then unsubscribes every -U. Returns 0, SN_ALL_DENIED or an exit
 * code. */
static int sn_subscribe_all(struct sub *s, struct vs_cli_sn *sn)
{
	size_t denied = 0;
	for (size_t k = 0; k < s->n_topics; k++) {
		struct viesti_sn_granted g = {0};
		int rc = sn_sub_one(s, sn, s->topics[k], true, &g);
		if (rc < 0)
			return vs_cli_sn_error(&s->c, "Subscribe failed", rc);
		if (rc > 0) {
			vs_cli_err(&s->c, "Warning: Subscription to '%s' %s.", s->topics[k],
				   vs_cli_sn_rc_string(rc));
			denied++;
		} else if (s->c.debug) {
			printf("Subscribed to '%s' (granted QoS %d, topic id %u)\n", s->topics[k],
			       g.qos, g.topic_id);
			fflush(stdout);
		}
	}
	if (denied == s->n_topics) {
		vs_cli_err(&s->c, "All subscription requests were denied.");
		return SN_ALL_DENIED;
	}
	for (size_t k = 0; k < s->n_unsub; k++) {
		int rc = sn_sub_one(s, sn, s->unsub[k], false, NULL);
		if (rc < 0)
			return vs_cli_sn_error(&s->c, "Unsubscribe failed", rc);
	}
	return 0;
}

/* Takes one received message (waiting up to timeout_ms) and prints it. */
static int sn_take(struct sub *s, struct vs_cli_sn *sn, int timeout_ms)
{
	struct viesti_sn_message m;
	int rc = viesti_sn_receive(sn->c, &m, timeout_ms);
	if (rc < 0)
		return rc;
	struct viesti_message vm = {
	    .topic = m.topic,
	    .topic_len = m.topic_len,
	    .payload = m.payload,
	    .payload_len = m.payload_len,
	    .qos = m.qos,
	    .retain = m.retain,
	    .dup = m.dup,
	    .mid = m.msg_id,
	    .props = s->no_props,
	};
	if (!wanted(s, &vm))
		return 0;
	print_message(s, &vm);
	if (s->remove_retained && m.retain && viesti_sn_state(sn->c) == VIESTI_SN_ACTIVE)
		viesti_sn_publish(sn->c, m.topic, NULL, 0, 1, true, -1);
	return 0;
}

/* Milliseconds left before -W (at most cap), 0 when it has passed (reported), -1 without -W. */
static int left_ms(struct sub *s, double end, int cap)
{
	if (!end)
		return cap;
	double left = end - now_s();
	if (left <= 0) {
		vs_cli_err(&s->c, "Timed out");
		finish_with(s, VS_EXIT_TIMEOUT);
		return 0;
	}
	return left * 1000 < cap ? (int)(left * 1000) + 1 : cap;
}

/* Connects and subscribes again after the gateway was lost, once a second until it works. */
static void sn_reconnect(struct sub *s, struct vs_cli_sn *sn, double end)
{
	while (!s->done && !stop_signal) {
		int wait = left_ms(s, end, 1000);
		if (wait == 0)
			return;
		struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		if (s->c.debug)
			printf("Reconnecting to the MQTT-SN gateway\n");
		if (viesti_sn_connect(sn->c, -1) != 0)
			continue;
		int code = sn_subscribe_all(s, sn);
		if (code == 0)
			return;
		if (code == SN_ALL_DENIED)
			finish_with(s, VS_EXIT_OK);
	}
}

static void sn_run_awake(struct sub *s, struct vs_cli_sn *sn, double end)
{
	while (!s->done && !stop_signal) {
		int wait = left_ms(s, end, 1000);
		if (wait == 0)
			break;
		int rc = sn_take(s, sn, wait);
		if (rc < 0 && viesti_sn_state(sn->c) == VIESTI_SN_DISCONNECTED) {
			while (viesti_sn_queued(sn->c) > 0 && !s->done)
				sn_take(s, sn, 0);
			sn_reconnect(s, sn, end);
		}
	}
}

/* Sleeps `seconds` (not past -W). Returns false when -W or a signal ended it. */
static bool sn_doze(struct sub *s, double seconds, double end)
{
	double until = now_s() + seconds;
	while (!stop_signal) {
		double left = until - now_s();
		if (left <= 0)
			return true;
		int ms = left_ms(s, end, (int)(left * 1000) + 1);
		if (ms == 0)
			return false;
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* --sn-sleep: sleep, wake, print what was kept, again. */
static void sn_run_sleeping(struct sub *s, struct vs_cli_sn *sn, double end)
{
	while (!s->done && !stop_signal) {
		int rc = viesti_sn_sleep(sn->c, (unsigned)s->sn_sleep, -1);
		if (rc < 0) {
			finish_with(s, vs_cli_sn_error(&s->c, "Sleep failed", rc));
			return;
		}
		if (!sn_doze(s, (double)s->sn_sleep, end))
			return;
		do {
			rc = viesti_sn_wake(sn->c, -1);
			while (viesti_sn_queued(sn->c) > 0 && !s->done)
				sn_take(s, sn, 0);
		} while (rc == -ENOBUFS && !s->done);
		if (rc < 0 && !s->done) {
			finish_with(s, vs_cli_sn_error(&s->c, "Wake-up failed", rc));
			return;
		}
		if (s->c.debug) {
			printf("Woke up: %d message%s kept\n", rc, rc == 1 ? "" : "s");
			fflush(stdout);
		}
	}
}

static int run_sn(struct sub *s)
{
	struct vs_cli_sn sn;
	int code = vs_cli_sn_open(&s->c, &sn);
	if (code)
		goto out;
	s->no_props = viesti_props_new();
	if (!s->no_props) {
		code = VS_EXIT_USAGE;
		goto out;
	}
	if ((code = vs_cli_sn_connect(&s->c, &sn)) != 0)
		goto out;
	code = sn_subscribe_all(s, &sn);
	if (code == SN_ALL_DENIED)
		code = VS_EXIT_OK;
	else if (code == 0 && !s->exit_after_sub) {
		double end = s->timeout ? now_s() + (double)s->timeout : 0;
		if (s->sn_sleep)
			sn_run_sleeping(s, &sn, end);
		else
			sn_run_awake(s, &sn, end);
		code = s->code;
	}
	vs_cli_sn_disconnect(&sn);
out:
	vs_cli_sn_close(&sn);
	viesti_props_free(s->no_props);
	return code;
}

int vs_cmd_sub(int argc, char **argv)
{
	struct sub s = {.code = VS_EXIT_OK, .random_filter = 10000};
	s.cli = &s.c;
	s.fmt.eol = true;
	vs_cli_init(&s.c, VS_TOOL_SUB);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid()); /* --random-filter */
	int code = VS_EXIT_USAGE;
	if (parse_args(&s, argc, argv) < 0)
		goto out;
	install_signals();
	if (s.c.sn) {
		code = run_sn(&s);
		goto out;
	}
	struct viesti_callbacks cb = {
	    .on_connect = on_connect,
	    .on_subscribe = on_subscribe,
	    .on_message = on_message,
	};
	struct viesti *v = vs_cli_connect(&s.c, &cb, &s, true, &code);
	if (!v)
		goto out;
	s.v = v;
	run(&s, v);
	code = s.code;
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
