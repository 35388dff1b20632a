/*
 * viesti broker: argument parsing, configuration loading, signals, and the broker's lifetime.
 * Signals are handled synchronously by the main thread with sigwait(); workers block them.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/notify.h"
#include "broker/broker.h"
#include "broker/check.h"
#include "broker/persist.h"
#include "cmd/cmd.h"
#include "conf/conf.h"
#include "persist/store.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: viesti broker [-c FILE] [-p PORT] [-v] [-d] [--test-config]\n"
	    "       viesti broker --check-store DIR\n"
	    "       viesti broker [-c FILE] --import-mosquitto-db MOSQUITTO_DB\n\n"
	    "Runs the MQTT broker. Without -c: listens on localhost:1883 only and allows\n"
	    "anonymous clients (Mosquitto 2.0's safe default). The configuration file uses\n"
	    "mosquitto.conf's format and directives; see docs/configuration.md.\n\n"
	    "  -c, --config-file FILE  read the configuration from FILE\n"
	    "  -p, --port PORT         listen on PORT (replaces the default listener's port)\n"
	    "  -v, --verbose           log everything (log_type all)\n"
	    "  -d, --daemon            run in the background\n"
	    "      --test-config       check the configuration and exit\n"
	    "      --check-store DIR   report what a persistence directory holds and exit\n"
	    "      --import-mosquitto-db MOSQUITTO_DB\n"
	    "                          import Mosquitto's database file (retained messages,\n"
	    "                          persistent sessions, their subscriptions and queued\n"
	    "                          messages) into the store the configuration names\n"
	    "                          (persistence_location/persistence_file.d), say what was\n"
	    "                          imported and exit; the file itself is only read. The first\n"
	    "                          start with persistence on does this by itself\n"
	    "                          (docs/persistence.md)\n"
	    "  -h, --help              show this help\n\n"
	    "Signals: SIGINT/SIGTERM stop cleanly (5.0 clients get DISCONNECT 0x8B after what\n"
	    "was queued for them); SIGHUP reloads the configuration (password, ACL and PSK\n"
	    "files, TLS certificates, most directives; listeners added to the file open, those\n"
	    "removed close with their clients) and reopens the log file, without dropping\n"
	    "other clients (see docs/security.md#reload-sighup); SIGUSR1 writes a\n"
	    "persistence snapshot; SIGUSR2 logs the sessions, their subscriptions and each\n"
	    "worker's state. Under systemd (NOTIFY_SOCKET) it sends READY=1, RELOADING=1,\n"
	    "STOPPING=1 and, with WatchdogSec=, WATCHDOG=1.\n");
}

struct args {
	const char *config;
	int port;
	bool verbose;
	bool daemon;
	bool test_config;
	const char *check_store;
	const char *import_db; /* --import-mosquitto-db */
};

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"config-file", required_argument, NULL, 'c'},
	    {"port", required_argument, NULL, 'p'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"daemon", no_argument, NULL, 'd'},
	    {"test-config", no_argument, NULL, 't'},
	    {"check-store", required_argument, NULL, 's'},
	    {"import-mosquitto-db", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:p:vdh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			a->config = optarg;
			break;
		case 'p': {
			char *end;
			long p = strtol(optarg, &end, 10);
			if (*end || p < 1 || p > 65535) {
				fprintf(stderr,
					"viesti broker: invalid port '%s', expected 1..65535\n",
					optarg);
				return 2;
			}
			a->port = (int)p;
			break;
		}
		case 'v':
			a->verbose = true;
			break;
		case 'd':
			a->daemon = true;
			break;
		case 't':
			a->test_config = true;
			break;
		case 's':
			a->check_store = optarg;
			break;
		case 'm':
			a->import_db = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "viesti broker: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

/*
 * log_format's default: Mosquitto's line format when the file is Mosquitto's own (under
 * /etc/mosquitto/, as Debian's unit starts it), because whatever reads that deployment's log
 * (fail2ban or logwatch filters, scripts) was written for Mosquitto's lines; Viesti's otherwise.
 */
static bool mosquitto_lines(const struct vs_config *c, const char *path)
{
	if (c->log_format >= 0)
		return c->log_format == VS_CONF_LOG_MOSQUITTO;
	return path && strncmp(path, "/etc/mosquitto/", 15) == 0;
}

/* log_timestamp_format, log_facility and log_format, fixed at start-up (a reload keeps them). */
static void apply_log_format(struct vs_config *c, const char *path)
{
	c->log.json = c->log_format == VS_CONF_LOG_JSON;
	c->log.mosquitto = !c->log.json && mosquitto_lines(c, path);
	static const int local[8] = {LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
				     LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
	c->log.ts_format = c->log_timestamp_format; /* c outlives the broker and its log */
	if (c->log_facility >= 0 && c->log_facility < 8)
		c->log.facility = local[c->log_facility];
}

static int load_config(struct vs_config *c, const struct args *a)
{
	char err[512];
	if (a->config && vs_config_load(c, a->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "viesti broker: %s\n", err);
		return -1;
	}
	if (vs_config_finish(c, a->port) < 0)
		return -1;
	if (vs_config_validate(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "viesti broker: %s: %s\n", a->config ? a->config : "defaults", err);
		return -1;
	}
	if (a->verbose)
		c->log.types = VS_LOG_ALL;
	apply_log_format(c, a->config);
	if (c->log.file_path && vs_log_reopen(&c->log) < 0) {
		fprintf(stderr, "viesti broker: cannot open log file %s: %s\n", c->log.file_path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void print_problem(void *ud, const char *msg)
{
	fprintf(stderr, "viesti broker: %s\n", msg);
	(*(int *)ud)++;
}

/*
 * --test-config: every problem the start-up would stop at, short of binding the ports, each on
 * its own line (the configuration's bad lines, each listener's, the password and ACL files'
 * bad lines, TLS files...). Nothing is created or written. Returns the exit status: 0, or 3
 * (as a configuration refused at start-up).
 */
static int test_config(const struct args *a)
{
	struct vs_config c;
	vs_config_init(&c);
	int n = 0;
	const char *name = a->config ? a->config : "defaults";
	int rc = a->config ? vs_config_load_all(&c, a->config, print_problem, &n) : 0;
	if (rc >= 0 && vs_config_finish(&c, a->port) < 0)
		rc = -ENOMEM;
	if (rc >= 0) {
		vs_config_validate_all(&c, print_problem, &n);
		vs_broker_check(&c, print_problem, &n); /* counts through print_problem */
	}
	vs_config_fini(&c);
	if (rc == -ENOMEM)
		fprintf(stderr, "viesti broker: out of memory\n");
	if (rc < 0 || n > 0) {
		fprintf(stderr, "viesti broker: %s: %d error(s), the broker would not start\n",
			name, n);
		return 3;
	}
	printf("%s: configuration OK\n", name);
	return 0;
}

static int write_pid(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}

/*
 * `user NAME`: started as root, the broker becomes NAME (its primary group and supplementary
 * groups too) once everything that needs root is open: listeners, log file, pid file and
 * persistence. As Mosquitto, a user that does not exist or a failed switch stops the start-up;
 * started as another user, there is nothing to drop and the directive is only reported.
 * Returns 0 or -1 (logged).
 */
static int drop_privileges(const struct vs_config *c, struct vs_log *log)
{
	if (!c->user)
		return 0;
	if (geteuid() != 0) {
		vs_log(log, VS_LOG_NOTICE,
		       "user %s: not started as root, nothing to drop "
		       "(running as uid %ld)",
		       c->user, (long)geteuid());
		return 0;
	}
	if (strcmp(c->user, "root") == 0)
		return 0;
	errno = 0;
	struct passwd *pw = getpwnam(c->user);
	if (!pw) {
		vs_log(log, VS_LOG_ERR, "cannot drop privileges to user '%s': %s", c->user,
		       errno ? strerror(errno) : "no such user");
		return -1;
	}
	const char *step = NULL;
	if (initgroups(c->user, pw->pw_gid) < 0)
		step = "initgroups";
	else if (setgid(pw->pw_gid) < 0)
		step = "setgid";
	else if (setuid(pw->pw_uid) < 0)
		step = "setuid";
	if (step) {
		vs_log(log, VS_LOG_ERR, "cannot drop privileges to user '%s': %s: %s", c->user,
		       step, strerror(errno));
		return -1;
	}
	/* setuid(2) to a non-root uid as root also sets the saved uid: no way back. */
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		vs_log(log, VS_LOG_ERR, "cannot drop privileges to user '%s': root can be regained",
		       c->user);
		return -1;
	}
	vs_log(log, VS_LOG_NOTICE, "running as user %s (uid %ld, gid %ld)", c->user,
	       (long)pw->pw_uid, (long)pw->pw_gid);
	if (c->persistence && access(c->persistence_location ? c->persistence_location : ".",
				     R_OK | W_OK | X_OK) < 0) {
		vs_log(log, VS_LOG_ERR, "user %s cannot write persistence_location %s: %s", c->user,
		       c->persistence_location ? c->persistence_location : "(current directory)",
		       strerror(errno));
		return -1;
	}
	return 0;
}

/* SIGHUP: the configuration again; a file that fails keeps the running settings. systemd is
 * told RELOADING=1 before and READY=1 after, whatever the outcome (the old settings run on). */
static void reload(struct vs_broker *b, struct vs_log *log, const struct vs_notify *sd)
{
	char err[512] = "";
	vs_notify_reloading(sd);
	vs_log(log, VS_LOG_NOTICE, "SIGHUP: reloading %s",
	       b->conf_path ? b->conf_path : "the built-in defaults");
	int rc = vs_broker_reload(b, err, sizeof(err));
	if (rc < 0) {
		vs_log(log, VS_LOG_ERR, "reload failed, the running configuration stays: %s",
		       err[0] ? err : vs_strerror(rc));
		vs_log_reopen(log); /* log rotation still works */
		vs_notify_send(sd,
			       "READY=1\nSTATUS=Reload failed, the running configuration stays");
		return;
	}
	vs_log_reopen(log);
	vs_log(log, VS_LOG_NOTICE, "reload done: new connections use the new settings");
	vs_notify_send(sd, "READY=1\nSTATUS=Running (configuration reloaded)");
}

/*
 * systemd's watchdog (WatchdogSec=): WATCHDOG=1 every WATCHDOG_USEC/2, but only when every shard
 * has handled the ping posted one interval before, so that a stuck worker gets the broker
 * restarted instead of kept alive by a healthy main thread.
 */
struct watchdog {
	int64_t interval_ms; /* 0 = off */
	int64_t next_ms;
	uint64_t seq; /* the last ping posted */
	bool warned;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void watchdog_tick(struct watchdog *wd, struct vs_broker *b, const struct vs_notify *sd)
{
	if (!wd->interval_ms || mono_ms() < wd->next_ms)
		return;
	wd->next_ms = mono_ms() + wd->interval_ms;
	if (wd->seq && !vs_broker_pinged(b, wd->seq)) {
		if (!wd->warned)
			vs_log(b->log, VS_LOG_WARN,
			       "a worker thread has not run its loop for %lld ms: "
			       "no WATCHDOG=1 to systemd",
			       (long long)wd->interval_ms);
		wd->warned = true;
		return; /* the ping stays posted: the shard answers it when it runs again */
	}
	if (wd->seq)
		vs_notify_send(sd, "WATCHDOG=1");
	wd->warned = false;
	vs_broker_ping(b, ++wd->seq);
}

/* SIGUSR1, SIGUSR2 (as Mosquitto: save the database, dump the state) and SIGHUP; false for
 * the signals that stop the broker. */
static bool on_signal(int sig, struct vs_broker *b, struct vs_log *log, const struct vs_notify *sd)
{
	switch (sig) {
	case SIGHUP:
		reload(b, log, sd);
		return true;
	case SIGUSR1:
		vs_broker_snapshot(b);
		return true;
	case SIGUSR2:
		vs_broker_dump(b);
		return true;
	default:
		vs_log(log, VS_LOG_NOTICE, "%s: shutting down",
		       sig == SIGINT ? "SIGINT" : "SIGTERM");
		return false;
	}
}

static int serve(struct vs_config *conf, const struct args *a)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* workers inherit the mask */
	signal(SIGPIPE, SIG_IGN);

	struct vs_notify sd;
	if (vs_notify_init(&sd) < 0)
		vs_log(&conf->log, VS_LOG_WARN, "NOTIFY_SOCKET '%s' is not usable: %s",
		       getenv("NOTIFY_SOCKET"), strerror(errno));
	struct vs_broker b;
	char err[512] = "";
	int rc = vs_broker_init(&b, conf, &conf->log, err, sizeof(err));
	if (rc < 0) {
		vs_log(&conf->log, VS_LOG_ERR, "cannot start: %s", err[0] ? err : vs_strerror(rc));
		vs_broker_fini(&b);
		vs_notify_fini(&sd);
		return 1;
	}
	/* Once the listeners are open: a second broker started by mistake, which cannot bind,
	 * must not overwrite (or remove) the running one's pid file. */
	if (conf->pid_file && write_pid(conf->pid_file) < 0)
		vs_log(&conf->log, VS_LOG_WARN, "cannot write pid file %s", conf->pid_file);
	b.conf_path = a->config;
	b.conf_port = a->port;
	b.conf_verbose = a->verbose;
	if (drop_privileges(conf, &conf->log) < 0 || vs_broker_start(&b) < 0) {
		vs_broker_stop(&b);
		vs_broker_fini(&b);
		vs_notify_fini(&sd);
		if (conf->pid_file)
			unlink(conf->pid_file);
		return 1;
	}
	/* Listening, restored from persistence, serving: what Type=notify waits for. */
	vs_notify_send(&sd, "READY=1\nSTATUS=Running");
	struct watchdog wd = {.interval_ms = (int64_t)(sd.watchdog_usec / 2000)};
	if (sd.watchdog_usec && wd.interval_ms < 1)
		wd.interval_ms = 1;
	for (;;) {
		/* Wakes every 100 ms (or the watchdog's interval, if shorter) to free what reloads
		 * replaced, once no worker holds it. */
		int64_t tick_ms = wd.interval_ms && wd.interval_ms < 100 ? wd.interval_ms : 100;
		struct timespec tick = {.tv_nsec = tick_ms * 1000 * 1000};
		int sig = sigtimedwait(&set, NULL, &tick);
		vs_broker_reclaim(&b);
		watchdog_tick(&wd, &b, &sd);
		if (sig >= 0 && !on_signal(sig, &b, &conf->log, &sd))
			break;
	}
	vs_notify_send(&sd, "STOPPING=1\nSTATUS=Shutting down");
	vs_broker_stop(&b);
	vs_broker_fini(&b);
	vs_notify_fini(&sd);
	if (conf->pid_file)
		unlink(conf->pid_file);
	vs_log(&conf->log, VS_LOG_NOTICE, "stopped");
	return 0;
}

int vs_cmd_broker(int argc, char **argv)
{
	struct args a = {0};
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (a.check_store) {
		rc = vs_store_check(a.check_store, stdout);
		return rc < 0 ? 1 : rc;
	}
	if (a.test_config)
		return test_config(&a);
	struct vs_config conf;
	vs_config_init(&conf);
	if (load_config(&conf, &a) < 0) {
		vs_config_fini(&conf);
		return 3;
	}
	if (a.import_db) {
		rc = vs_bp_import_mosquitto(&conf, a.import_db, stdout);
		vs_config_fini(&conf);
		return rc < 0 ? 1 : 0;
	}
	if (a.daemon && daemon(1, 0) < 0) {
		fprintf(stderr, "viesti broker: cannot daemonize: %s\n", strerror(errno));
		vs_config_fini(&conf);
		return 1;
	}
	rc = serve(&conf, &a);
	vs_config_fini(&conf);
	return rc;
}
