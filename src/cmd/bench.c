/*
 * viesti bench: a load generator for MQTT brokers (issue 5). This file parses arguments, raises
 * the descriptor limit, resolves the broker's address, and prints the report (text or one JSON
 * object); bench_run.c drives the connections and bench_stats.c counts. docs/bench.md is the
 * user's guide; bench/compare runs it against Viesti and Mosquitto side by side.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/error.h"
#include "base/vec.h"
#include "cmd/bench_run.h"
#include "cmd/cmd.h"
#include "codec/codec.h"

static const char *const scenario_names[] = {
    [VS_BENCH_CONN] = "conn",	  [VS_BENCH_PUB] = "pub",     [VS_BENCH_SUB] = "sub",
    [VS_BENCH_PAIRS] = "pairs",	  [VS_BENCH_FANIN] = "fanin", [VS_BENCH_FANOUT] = "fanout",
    [VS_BENCH_SHARED] = "shared",
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: viesti bench SCENARIO [options]\n\n"
	    "Scenarios:\n"
	    "  conn     open -n idle connections as fast as possible, hold them for -d seconds\n"
	    "  pub      -P publishers (default -n) to PREFIX/<i>, no subscribers\n"
	    "  sub      -n subscribers on PREFIX/# (publish from elsewhere, e.g. 'viesti bench "
	    "pub')\n"
	    "  pairs    -n publisher/subscriber pairs, one topic each (PREFIX/<i>)\n"
	    "  fanin    -P publishers to PREFIX/<i>, 1 subscriber on PREFIX/+\n"
	    "  fanout   1 publisher to PREFIX/0, -n subscribers\n"
	    "  shared   -P publishers to PREFIX/<i>, -n subscribers in $share/bench/PREFIX/+\n\n"
	    "Options:\n"
	    "  -h, --host HOST       broker host (default 127.0.0.1)\n"
	    "  -p, --port PORT       broker port (default 1883)\n"
	    "      --sub-port PORT   subscribers connect to this port instead (another node)\n"
	    "  -V, --protocol 311|5  MQTT version (default 311)\n"
	    "  -q, --qos 0|1|2       QoS of publications and subscriptions (default 0)\n"
	    "  -s, --size BYTES      payload size, >= 16 (default 64)\n"
	    "  -n, --clients N       connections (conn), pairs, or subscribers\n"
	    "  -P, --publishers N    publishers (pub, fanin, shared)\n"
	    "  -r, --rate MSG/S      per publisher; 0 = as fast as possible (default 0)\n"
	    "      --window N        outstanding QoS 1/2 messages per publisher (default 64)\n"
	    "      --out-bound BYTES QoS 0 full speed: pause above this much unsent output\n"
	    "                        per publisher (default 65536)\n"
	    "  -d, --duration SEC    measured seconds (default 10)\n"
	    "      --warmup SEC      seconds before measuring (default 1)\n"
	    "      --drain SEC       at the end, wait up to SEC for in-flight messages (default "
	    "2)\n"
	    "  -T, --threads N       generator threads (default 1)\n"
	    "      --burst N         connection handshakes in flight at once (default 64:\n"
	    "                        below Mosquitto's listen backlog of 100)\n"
	    "      --prefix TOPIC    topic prefix (default 'bench')\n"
	    "  -c, --persistent      persistent sessions: clean session off (3.1.1), or a\n"
	    "                        session expiry of an hour (5.0), as mosquitto_sub -c\n"
	    "      --by-publisher    also latency per publisher (p50, p99, mean of each):\n"
	    "                        shows whether some publishers' messages wait longer\n"
	    "                        (at most 1000 publishers; not with sub, pub or conn)\n"
	    "      --json            print one JSON object instead of the report\n"
	    "TLS (as viesti pub; any of --cafile, --capath, --cert, --psk, --tls-use-os-certs\n"
	    "turns it on, and the default port becomes 8883):\n"
	    "      --cafile FILE     trusted CA certificates (PEM)\n"
	    "      --capath DIR      directory of trusted CA certificates\n"
	    "      --cert FILE       client certificate (PEM), with --key FILE\n"
	    "      --key FILE        client private key (PEM)\n"
	    "      --insecure        do not check the server certificate's host name\n"
	    "      --tls-version V   minimum TLS version: tlsv1.2 (default) or tlsv1.3\n"
	    "      --tls-alpn PROTO  ALPN protocol to offer\n"
	    "      --tls-use-os-certs  trust the system's CA certificates\n"
	    "      --psk HEX         TLS-PSK key in hex, with --psk-identity ID\n"
	    "      --psk-identity ID TLS-PSK identity\n"
	    "      --tls-resume      resume the first connection's TLS session in every later\n"
	    "                        one (measures resumed handshakes: conn scenario)\n"
	    "WebSocket (a Viesti listener with 'protocol websockets'; with the TLS flags, wss):\n"
	    "      --ws-path PATH    MQTT over WebSocket, upgrading at PATH (\"/mqtt\")\n"
	    "      --no-progress     no progress line (printed each second on a terminal)\n"
	    "      --help            show this help\n\n"
	    "Payloads carry the send time, publisher id and sequence number, so subscribers\n"
	    "measure end-to-end latency, loss and duplicates. See docs/bench.md.\n");
}

static int parse_scenario(const char *s, enum vs_bench_scenario *out)
{
	for (size_t i = 0; i < sizeof(scenario_names) / sizeof(scenario_names[0]); i++)
		if (!strcmp(s, scenario_names[i])) {
			*out = (enum vs_bench_scenario)i;
			return 0;
		}
	return -1;
}

static int num(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "viesti bench: invalid %s '%s' (expected %g..%g)\n", opt, s, lo,
			hi);
		return -1;
	}
	*out = v;
	return 0;
}

struct args {
	struct vs_bench_conf c;
	const char *host;
	const char *port;     /* NULL: 1883, or 8883 over TLS */
	const char *sub_port; /* subscribers' port (another node of a cluster), NULL: port */
	double n, pubs;	      /* -1 when not given */
	bool json;
	bool no_progress;
	bool tls_on;
	struct viesti_tls tls;
};

enum {
	O_WINDOW = 256,
	O_WARMUP,
	O_DRAIN,
	O_BURST,
	O_PREFIX,
	O_JSON,
	O_NOPROG,
	O_HELP,
	O_OUTB,
	O_CAFILE,
	O_CAPATH,
	O_CERT,
	O_KEY,
	O_INSECURE,
	O_TLSVER,
	O_ALPN,
	O_OSCERTS,
	O_PSK,
	O_PSKID,
	O_RESUME,
	O_WSPATH,
	O_SUBPORT,
	O_BYPUB,
};

/* The TLS flags of viesti pub; a CA, a certificate, a PSK or the OS store turns TLS on. */
static int parse_tls_opt(struct args *a, int ch)
{
	struct viesti_tls *t = &a->tls;
	switch (ch) {
	case O_CAFILE:
		t->cafile = optarg;
		break;
	case O_CAPATH:
		t->capath = optarg;
		break;
	case O_CERT:
		t->certfile = optarg;
		break;
	case O_KEY:
		t->keyfile = optarg;
		return 0;
	case O_INSECURE:
		t->insecure = true;
		return 0;
	case O_TLSVER:
		t->tls_version = optarg;
		return 0;
	case O_ALPN:
		t->alpn = optarg;
		return 0;
	case O_OSCERTS:
		t->os_certs = true;
		break;
	case O_PSK:
		t->psk = optarg;
		break;
	case O_PSKID:
		t->psk_identity = optarg;
		return 0;
	case O_RESUME:
		a->c.tls_resume = true;
		return 0;
	default:
		usage(stderr);
		return -1;
	}
	a->tls_on = true;
	return 0;
}

static int parse_opt(struct args *a, int ch)
{
	struct vs_bench_conf *c = &a->c;
	double v;
	switch (ch) {
	case 'h':
		a->host = optarg;
		return 0;
	case 'p':
		return num("port", optarg, 1, 65535, &v) ? -1 : (a->port = optarg, 0);
	case O_SUBPORT:
		return num("sub-port", optarg, 1, 65535, &v) ? -1 : (a->sub_port = optarg, 0);
	case 'V':
		if (!strcmp(optarg, "311") || !strcmp(optarg, "4"))
			c->version = VS_V311;
		else if (!strcmp(optarg, "5"))
			c->version = VS_V5;
		else
			return fprintf(stderr, "viesti bench: -V takes 311 or 5\n"), -1;
		return 0;
	case 'q':
		return num("QoS", optarg, 0, 2, &v) ? -1 : (c->qos = (int)v, 0);
	case 's':
		return num("size", optarg, 16, 256 << 20, &v) ? -1 : (c->payload = (uint32_t)v, 0);
	case 'n':
		return num("-n", optarg, 1, 1 << 20, &a->n);
	case 'P':
		return num("-P", optarg, 1, 1 << 20, &a->pubs);
	case 'r':
		return num("rate", optarg, 0, 1e9, &c->rate);
	case 'd':
		return num("duration", optarg, 0.01, 1e6, &c->duration);
	case 'T':
		return num("threads", optarg, 1, 256, &v) ? -1 : (c->threads = (uint32_t)v, 0);
	case O_WINDOW:
		return num("window", optarg, 1, 65535, &v) ? -1 : (c->window = (uint32_t)v, 0);
	case O_OUTB:
		return num("out-bound", optarg, 256, 1 << 30, &v) ? -1
								  : (c->out_bound = (uint32_t)v, 0);
	case O_WARMUP:
		return num("warmup", optarg, 0, 1e6, &c->warmup);
	case O_DRAIN:
		return num("drain", optarg, 0, 3600, &c->drain);
	case O_BURST:
		return num("burst", optarg, 1, 1 << 20, &v) ? -1 : (c->burst = (uint32_t)v, 0);
	case O_PREFIX:
		c->prefix = optarg;
		return 0;
	case 'c':
		c->persistent = true;
		return 0;
	case O_WSPATH:
		if (optarg[0] != '/') {
			fprintf(stderr, "viesti bench: --ws-path must start with '/'\n");
			return -1;
		}
		c->ws_path = optarg;
		return 0;
	case O_JSON:
		a->json = true;
		return 0;
	case O_BYPUB:
		c->by_publisher = true;
		return 0;
	case O_NOPROG:
		a->no_progress = true;
		return 0;
	case O_HELP:
		usage(stdout);
		return 1;
	default:
		return parse_tls_opt(a, ch);
	}
}

/* Who is who: the counts each scenario takes from -n and -P. */
static int apply_counts(struct args *a)
{
	struct vs_bench_conf *c = &a->c;
	uint32_t n = a->n > 0 ? (uint32_t)a->n : 0, p = a->pubs > 0 ? (uint32_t)a->pubs : 0;
	switch (c->scenario) {
	case VS_BENCH_CONN:
		c->subs = n ? n : 1000;
		c->pubs = 0;
		break;
	case VS_BENCH_PUB:
		c->pubs = p ? p : n ? n : 10;
		c->subs = 0;
		break;
	case VS_BENCH_SUB:
		c->subs = n ? n : 1;
		c->pubs = 0;
		break;
	case VS_BENCH_PAIRS:
		c->subs = c->pubs = n ? n : 10;
		break;
	case VS_BENCH_FANIN:
		c->pubs = p ? p : n ? n : 10;
		c->subs = 1;
		break;
	case VS_BENCH_FANOUT:
		c->subs = n ? n : 10;
		c->pubs = 1;
		break;
	case VS_BENCH_SHARED:
		c->pubs = p ? p : 10;
		c->subs = n ? n : 4;
		break;
	}
	if ((uint64_t)c->subs + c->pubs > 1000000) {
		fprintf(stderr, "viesti bench: too many clients\n");
		return -1;
	}
	if (c->by_publisher && (c->pubs == 0 || c->subs == 0)) {
		/* A subscriber knows a publisher's messages by an id this run handed out. */
		fprintf(stderr,
			"viesti bench: --by-publisher needs the run's own publishers and "
			"subscribers (not with %s)\n",
			c->scenario == VS_BENCH_CONN ? "conn"
			: c->pubs		     ? "pub"
						     : "sub");
		return -1;
	}
	if (c->by_publisher && c->pubs > 1000) {
		/* A histogram is 61 KB per publisher and generator thread. */
		fprintf(stderr, "viesti bench: --by-publisher takes at most 1000 publishers\n");
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"protocol", required_argument, NULL, 'V'},
	    {"qos", required_argument, NULL, 'q'},
	    {"size", required_argument, NULL, 's'},
	    {"clients", required_argument, NULL, 'n'},
	    {"publishers", required_argument, NULL, 'P'},
	    {"rate", required_argument, NULL, 'r'},
	    {"duration", required_argument, NULL, 'd'},
	    {"threads", required_argument, NULL, 'T'},
	    {"window", required_argument, NULL, O_WINDOW},
	    {"out-bound", required_argument, NULL, O_OUTB},
	    {"warmup", required_argument, NULL, O_WARMUP},
	    {"drain", required_argument, NULL, O_DRAIN},
	    {"burst", required_argument, NULL, O_BURST},
	    {"prefix", required_argument, NULL, O_PREFIX},
	    {"persistent", no_argument, NULL, 'c'},
	    {"json", no_argument, NULL, O_JSON},
	    {"by-publisher", no_argument, NULL, O_BYPUB},
	    {"no-progress", no_argument, NULL, O_NOPROG},
	    {"help", no_argument, NULL, O_HELP},
	    {"cafile", required_argument, NULL, O_CAFILE},
	    {"capath", required_argument, NULL, O_CAPATH},
	    {"cert", required_argument, NULL, O_CERT},
	    {"key", required_argument, NULL, O_KEY},
	    {"insecure", no_argument, NULL, O_INSECURE},
	    {"tls-version", required_argument, NULL, O_TLSVER},
	    {"tls-alpn", required_argument, NULL, O_ALPN},
	    {"tls-use-os-certs", no_argument, NULL, O_OSCERTS},
	    {"psk", required_argument, NULL, O_PSK},
	    {"psk-identity", required_argument, NULL, O_PSKID},
	    {"tls-resume", no_argument, NULL, O_RESUME},
	    {"ws-path", required_argument, NULL, O_WSPATH},
	    {"sub-port", required_argument, NULL, O_SUBPORT},
	    {0},
	};
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? -1 : 1;
	}
	if (parse_scenario(argv[1], &a->c.scenario) < 0) {
		fprintf(stderr, "viesti bench: unknown scenario '%s'\n\n", argv[1]);
		usage(stderr);
		return -1;
	}
	int ch;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "h:p:V:q:s:n:P:r:d:T:c", opts, NULL)) != -1) {
		int rc = parse_opt(a, ch);
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "viesti bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return apply_counts(a);
}

/* Reads the TLS files once for every connection. Returns 0, or -1 after printing why. */
static int make_tls(struct args *a, struct vs_tls_ctx **out)
{
	*out = NULL;
	if (!a->port)
		a->port = a->tls_on ? "8883" : "1883";
	a->c.host = a->host;
	if (!a->tls_on)
		return 0;
	char err[256];
	int rc = vs_tls_ctx_new(&a->tls, out, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "viesti bench: TLS: %s\n", err[0] ? err : vs_strerror(rc));
		return -1;
	}
	a->c.tls = *out;
	return 0;
}

static int resolve(struct args *a)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	int rc = getaddrinfo(a->host, a->port, &hints, &res);
	if (rc) {
		fprintf(stderr, "viesti bench: %s:%s: %s\n", a->host, a->port, gai_strerror(rc));
		return -1;
	}
	memcpy(&a->c.addr, res->ai_addr, res->ai_addrlen);
	a->c.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (!a->sub_port)
		return 0;
	if ((rc = getaddrinfo(a->host, a->sub_port, &hints, &res))) {
		fprintf(stderr, "viesti bench: %s:%s: %s\n", a->host, a->sub_port,
			gai_strerror(rc));
		return -1;
	}
	memcpy(&a->c.sub_addr, res->ai_addr, res->ai_addrlen);
	a->c.sub_addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Ten thousand connections need ten thousand descriptors: take all the hard limit allows. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* A histogram's mean in microseconds (0 when it is empty). */
static double mean_us(const struct vs_hist *h)
{
	return h->count ? h->sum / (double)h->count / 1000.0 : 0.0;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

static void print_json(const struct args *a, const struct vs_bench_result *r, int rc)
{
	const struct vs_bench_conf *c = &a->c;
	const struct vs_hist *h = &r->lat;
	double m = r->m_seconds > 0 ? r->m_seconds : 1;
	printf("{\"scenario\":\"%s\",\"ok\":%s,\"host\":\"%s\",\"port\":%s,\"tls\":%s,"
	       "\"websocket\":%s,\"protocol\":%s,"
	       "\"qos\":%d,\"payload\":%u,\"publishers\":%u,\"subscribers\":%u,\"threads\":%u,"
	       "\"rate\":%g,\"window\":%u,\"persistent\":%s,\"duration_s\":%g,\"warmup_s\":%g,",
	       scenario_names[c->scenario], rc == 0 ? "true" : "false", a->host, a->port,
	       c->tls ? "true" : "false", c->ws_path ? "true" : "false",
	       c->version == VS_V5 ? "5" : "311", c->qos, c->payload, c->pubs, c->subs, c->threads,
	       c->rate, c->window, c->persistent ? "true" : "false", c->duration, c->warmup);
	printf("\"connections\":%u,\"connected\":%llu,\"connect_failed\":%llu,\"connect_s\":%.6f,"
	       "\"connect_per_s\":%.1f,",
	       c->pubs + c->subs, (unsigned long long)r->connected,
	       (unsigned long long)r->connect_failed, r->connect_s,
	       r->connect_s > 0 ? (double)r->connected / r->connect_s : 0.0);
	printf("\"sent\":%llu,\"acked\":%llu,\"received\":%llu,\"unique\":%llu,\"expected\":%llu,"
	       "\"lost\":%llu,\"duplicates\":%llu,\"rejected\":%llu,\"foreign\":%llu,"
	       "\"errors\":%llu,",
	       (unsigned long long)r->sent, (unsigned long long)r->acked,
	       (unsigned long long)r->received, (unsigned long long)r->unique,
	       (unsigned long long)r->expected, (unsigned long long)r->lost,
	       (unsigned long long)r->dups, (unsigned long long)r->rejected,
	       (unsigned long long)r->foreign, (unsigned long long)r->errors);
	printf("\"measured_sent\":%llu,\"measured_received\":%llu,\"sent_per_s\":%.1f,"
	       "\"received_per_s\":%.1f,",
	       (unsigned long long)r->m_sent, (unsigned long long)r->m_received,
	       (double)r->m_sent / m, (double)r->m_received / m);
	printf("\"latency_us\":{\"count\":%llu,\"min\":%.1f,\"mean\":%.1f,\"p50\":%.1f,"
	       "\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f},",
	       (unsigned long long)h->count, h->count ? us(h->min) : 0.0, mean_us(h),
	       us(vs_hist_quantile(h, 0.5)), us(vs_hist_quantile(h, 0.9)),
	       us(vs_hist_quantile(h, 0.99)), us(vs_hist_quantile(h, 0.999)), us(h->max));
	if (r->by_pub) {
		printf("\"by_publisher\":[");
		for (uint32_t i = 0; i < c->pubs; i++) {
			const struct vs_hist *p = &r->by_pub[i];
			printf(
			    "%s{\"id\":%u,\"count\":%llu,\"p50\":%.1f,\"p99\":%.1f,\"mean\":%.1f}",
			    i ? "," : "", i, (unsigned long long)p->count,
			    us(vs_hist_quantile(p, 0.5)), us(vs_hist_quantile(p, 0.99)),
			    mean_us(p));
		}
		printf("],");
	}
	printf("\"tls_resumed\":%llu,", (unsigned long long)r->tls_resumed);
	printf("\"cpu_s\":{\"user\":%.3f,\"system\":%.3f,\"total\":%.3f},\"drain_s\":%.3f,"
	       "\"elapsed_s\":%.3f}\n",
	       r->cpu_user_s, r->cpu_sys_s, r->cpu_user_s + r->cpu_sys_s, r->drain_s, r->elapsed_s);
}

static void print_header(const struct args *a)
{
	const struct vs_bench_conf *c = &a->c;
	printf("viesti bench %s: %u publisher%s, %u %s, MQTT %s, QoS %d, %u-byte payload, ",
	       scenario_names[c->scenario], c->pubs, c->pubs == 1 ? "" : "s", c->subs,
	       c->scenario == VS_BENCH_CONN ? "idle connections" : "subscribers",
	       c->version == VS_V5 ? "5.0" : "3.1.1", c->qos, c->payload);
	if (c->rate > 0)
		printf("%g msg/s per publisher", c->rate);
	else
		printf("full speed (%s)", c->qos ? "window" : "output bound");
	printf(", %u thread%s, %s:%s%s%s%s\n", c->threads, c->threads == 1 ? "" : "s", a->host,
	       a->port, c->ws_path ? " over WebSocket at " : "", c->ws_path ? c->ws_path : "",
	       c->tls ? " over TLS" : "");
}

/* --by-publisher: the spread of the publishers' p99s, then a line per publisher. */
static void print_by_publisher(const struct args *a, const struct vs_bench_result *r)
{
	uint32_t n = a->c.pubs;
	uint64_t *p99 = malloc(n * sizeof(*p99));
	if (p99) {
		for (uint32_t i = 0; i < n; i++)
			p99[i] = vs_hist_quantile(&r->by_pub[i], 0.99);
		qsort(p99, n, sizeof(*p99), vs_cmp_u64);
		printf("  publishers' p99  lowest %.0f  median %.0f  highest %.0f us\n", us(p99[0]),
		       us(p99[n / 2]), us(p99[n - 1]));
		free(p99);
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct vs_hist *h = &r->by_pub[i];
		printf("    publisher %-5u p50 %6.0f  p99 %6.0f  mean %6.0f us  (%llu samples)\n",
		       i, us(vs_hist_quantile(h, 0.5)), us(vs_hist_quantile(h, 0.99)), mean_us(h),
		       (unsigned long long)h->count);
	}
}

static void print_text(const struct args *a, const struct vs_bench_result *r)
{
	const struct vs_hist *h = &r->lat;
	double m = r->m_seconds > 0 ? r->m_seconds : 1;
	print_header(a);
	printf("  connect    %llu connected, %llu failed, in %.3f s (%.0f conn/s)\n",
	       (unsigned long long)r->connected, (unsigned long long)r->connect_failed,
	       r->connect_s, r->connect_s > 0 ? (double)r->connected / r->connect_s : 0.0);
	if (a->c.tls_resume)
		printf("  resumed    %llu TLS handshakes resumed a session\n",
		       (unsigned long long)r->tls_resumed);
	bool pubs = a->c.pubs > 0, subs = a->c.subs > 0 && a->c.scenario != VS_BENCH_CONN;
	if (pubs)
		printf(
		    "  sent       %12.0f msg/s  (%llu in %g s measured, %llu in all, %llu acked)\n",
		    (double)r->m_sent / m, (unsigned long long)r->m_sent, r->m_seconds,
		    (unsigned long long)r->sent, (unsigned long long)r->acked);
	if (subs) {
		printf("  received   %12.0f msg/s  (%llu in %g s, %llu in all)\n",
		       (double)r->m_received / m, (unsigned long long)r->m_received, r->m_seconds,
		       (unsigned long long)r->received);
		printf("  delivery   expected %llu, unique %llu, lost %llu (%.3f%%), duplicates "
		       "%llu\n",
		       (unsigned long long)r->expected, (unsigned long long)r->unique,
		       (unsigned long long)r->lost, 100.0 * ratio(r->lost, r->expected),
		       (unsigned long long)r->dups);
		printf(
		    "  latency    p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  mean %.0f us"
		    "  (%llu samples)\n",
		    us(vs_hist_quantile(h, 0.5)), us(vs_hist_quantile(h, 0.9)),
		    us(vs_hist_quantile(h, 0.99)), us(vs_hist_quantile(h, 0.999)), us(h->max),
		    mean_us(h), (unsigned long long)h->count);
		if (r->by_pub)
			print_by_publisher(a, r);
	}
	if (r->errors || r->rejected || r->foreign)
		printf("  problems   %llu errors, %llu rejected, %llu foreign payloads\n",
		       (unsigned long long)r->errors, (unsigned long long)r->rejected,
		       (unsigned long long)r->foreign);
	printf("  generator  %.2f CPU s (user %.2f, system %.2f) over %.1f s\n",
	       r->cpu_user_s + r->cpu_sys_s, r->cpu_user_s, r->cpu_sys_s, r->elapsed_s);
}

int vs_cmd_bench(int argc, char **argv)
{
	struct args a = {
	    .c = {.version = VS_V311,
		  .payload = 64,
		  .window = 64,
		  .out_bound = 65536,
		  .duration = 10,
		  .warmup = 1,
		  .drain = 2,
		  .threads = 1,
		  .burst = 64,
		  .prefix = "bench"},
	    .host = "127.0.0.1",
	    .n = -1,
	    .pubs = -1,
	};
	struct vs_tls_ctx *tls;
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (make_tls(&a, &tls) < 0)
		return 2;
	if (resolve(&a) < 0) {
		vs_tls_ctx_free(tls);
		return 1;
	}
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	a.c.progress = !a.no_progress && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
	struct vs_bench_result *r = calloc(1, sizeof(*r));
	if (!r) {
		vs_tls_ctx_free(tls);
		return 1;
	}
	char err[256];
	rc = vs_bench_run(&a.c, r, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "viesti bench: %s\n", err);
	if (a.json)
		print_json(&a, r, rc);
	else
		print_text(&a, r);
	int status = rc < 0 ? 1 : 0;
	vs_bench_result_fini(r);
	free(r);
	vs_tls_ctx_free(tls);
	return status;
}
