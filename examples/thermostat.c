/*
 * thermostat: subscribes to home/+/temperature and prints each room's reading, deciding whether
 * to heat. It drives libviesti from its own poll(2) loop (viesti_fd, viesti_next_timeout_ms,
 * viesti_process), the way a program with an existing event loop would. It subscribes in
 * on_connect, so subscriptions come back after a reconnect even if the broker lost the session.
 *
 *   ./thermostat [host] [port]
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viesti.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void on_connect(struct viesti *v, void *ud, int reason, bool session_present,
		       const struct viesti_props *props)
{
	if (reason != 0) {
		printf("thermostat: refused (%s)\n", viesti_reason_string(reason));
		return;
	}
	printf("thermostat: connected\n");
	viesti_subscribe(v, "home/+/temperature", 1, NULL);
}

static void on_subscribe(struct viesti *v, void *ud, int mid, int count, const uint8_t *codes,
			 const struct viesti_props *props)
{
	printf("thermostat: subscribed (granted QoS %d)\n", count ? codes[0] : -1);
	fflush(stdout);
}

static void on_message(struct viesti *v, void *ud, const struct viesti_message *m)
{
	const double target = *(const double *)ud;
	char room[64] = "?";
	const char *a = strchr(m->topic, '/'), *b = a ? strchr(a + 1, '/') : NULL;
	if (a && b && (size_t)(b - a - 1) < sizeof(room))
		snprintf(room, sizeof(room), "%.*s", (int)(b - a - 1), a + 1);
	char text[32];
	snprintf(text, sizeof(text), "%.*s", (int)m->payload_len, (const char *)m->payload);
	double t = atof(text);
	printf("%s: %.1f C -> %s\n", room, t, t < target ? "heat" : "idle");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	double target = 21.0;
	struct viesti_options o;
	viesti_options_init(&o);
	o.host = argc > 1 ? argv[1] : "localhost";
	o.port = argc > 2 ? atoi(argv[2]) : 1883;
	struct viesti_callbacks cb = {
	    .on_connect = on_connect,
	    .on_subscribe = on_subscribe,
	    .on_message = on_message,
	};
	int err;
	struct viesti *v = viesti_new(&o, &cb, &target, &err);
	if (!v) {
		fprintf(stderr, "thermostat: %s\n", viesti_strerror(err));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	viesti_connect(v);
	while (!stop) {
		struct pollfd pfd = {.fd = viesti_fd(v), .events = POLLIN};
		int n = poll(&pfd, 1, viesti_next_timeout_ms(v));
		if (n < 0)
			continue; /* EINTR: check stop */
		viesti_process(v, pfd.revents);
	}
	viesti_disconnect(v, 0, NULL);
	viesti_loop(v, 100);
	viesti_free(v);
	return 0;
}
