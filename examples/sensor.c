/*
 * sensor: publishes a (simulated) temperature on home/livingroom/temperature every second, at
 * QoS 1, with libviesti driving itself on its own thread. If the broker goes away, readings are
 * queued and delivered when it comes back (the library reconnects and resends).
 *
 *   ./sensor [host] [port]
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <viesti.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void on_connect(struct viesti *v, void *ud, int reason, bool session_present,
		       const struct viesti_props *props)
{
	if (reason == 0)
		printf("sensor: connected\n");
	else
		printf("sensor: refused (%s)\n", viesti_reason_string(reason));
}

static void on_log(struct viesti *v, void *ud, int level, const char *line)
{
	if (level <= VIESTI_LOG_WARN)
		fprintf(stderr, "sensor: %s\n", line);
}

int main(int argc, char **argv)
{
	struct viesti_options o;
	viesti_options_init(&o);
	o.host = argc > 1 ? argv[1] : "localhost";
	o.port = argc > 2 ? atoi(argv[2]) : 1883;
	o.client_id = "sensor-livingroom";
	o.clean = false; /* keep our session across reconnects */
	o.will_topic = "home/livingroom/status";
	o.will_payload = "offline";
	o.will_payload_len = 7;
	o.will_retain = true;

	struct viesti_callbacks cb = {.on_connect = on_connect, .on_log = on_log};
	int err;
	struct viesti *v = viesti_new(&o, &cb, NULL, &err);
	if (!v) {
		fprintf(stderr, "sensor: %s\n", viesti_strerror(err));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	viesti_loop_start(v);
	if ((err = viesti_connect_wait(v, 5000)) != 0)
		fprintf(stderr, "sensor: %s (retrying in the background)\n", viesti_strerror(err));
	viesti_publish(v, "home/livingroom/status", "online", 6, 1, true, NULL);

	for (int t = 0; !stop; t++) {
		char reading[32];
		int len = snprintf(reading, sizeof(reading), "%.1f", 21.0 + 1.5 * sin(t / 30.0));
		int mid = viesti_publish(v, "home/livingroom/temperature", reading, (size_t)len, 1,
					 false, NULL);
		if (mid < 0)
			fprintf(stderr, "sensor: publish: %s\n", viesti_strerror(mid));
		sleep(1);
	}
	viesti_publish_wait(v, "home/livingroom/status", "offline", 7, 1, true, NULL, 2000);
	viesti_disconnect(v, 0, NULL);
	viesti_loop_stop(v);
	viesti_free(v);
	return 0;
}
