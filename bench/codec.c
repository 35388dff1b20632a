/*
 * Micro-benchmark of the MQTT codec: nanoseconds per packet to decode and to encode a PUBLISH
 * with a 64 B and a 1 KiB payload (MQTT 3.1.1 and 5.0), and a SUBSCRIBE with 10 filters.
 * Each figure is the median of 7 runs of `iters` operations. Decoding includes full validation
 * (UTF-8 of the topic, properties); the SUBSCRIBE decode also walks the entries as a broker
 * would. Usage: bench_codec [iterations per run, default 2000000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec.h"

#define RUNS 7

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v)
{
	qsort(v, RUNS, sizeof(*v), cmp_double);
	return v[RUNS / 2];
}

/* A sink the compiler cannot see through, so decoded results are not optimised away. */
static volatile size_t sink;

static void bench(const char *name, const struct vs_packet *p, int version, long iters)
{
	double enc[RUNS], dec[RUNS];
	struct vs_decode_opts o = {.version = (uint8_t)version};
	ssize_t size = vs_codec_size(p, version);
	uint8_t *buf = malloc((size_t)size);
	struct vs_packet out;
	enum vs_reason why;
	long i;
	int r;

	if (size <= 0 || !buf || vs_codec_encode(p, version, buf, (size_t)size) != size) {
		fprintf(stderr, "%s: cannot encode\n", name);
		exit(1);
	}
	for (r = 0; r < RUNS; r++) {
		double t0 = now_ns();
		for (i = 0; i < iters; i++)
			sink += (size_t)vs_codec_encode(p, version, buf, (size_t)size);
		double t1 = now_ns();
		for (i = 0; i < iters; i++) {
			ssize_t n = vs_codec_decode(buf, (size_t)size, &o, &out, &why);
			if (n != size) {
				fprintf(stderr, "%s: decode failed (0x%02x)\n", name, why);
				exit(1);
			}
			if (out.type == VS_SUBSCRIBE) {
				struct vs_sub_entry e;
				size_t pos = 0;
				while (vs_subscribe_next(&out.subscribe, version, &pos, &e))
					sink += e.filter.len;
			}
			sink += out.publish.payload.len;
		}
		double t2 = now_ns();
		enc[r] = (t1 - t0) / (double)iters;
		dec[r] = (t2 - t1) / (double)iters;
	}
	printf("%-34s %6zd B   decode %7.1f ns   encode %7.1f ns\n", name, size, median(dec),
	       median(enc));
	free(buf);
}

int main(int argc, char **argv)
{
	static uint8_t payload[1024];
	static const struct vs_user_prop user = {{(const uint8_t *)"trace", 5},
						 {(const uint8_t *)"abc123", 6}};
	static const char *filters[10] = {
	    "sensors/+/temperature",
	    "sensors/+/humidity",
	    "home/kitchen/#",
	    "home/+/lights/+",
	    "alerts/#",
	    "$share/workers/jobs/+",
	    "devices/abc/cmd",
	    "devices/abc/cfg/#",
	    "telemetry/+/+/raw",
	    "status",
	};
	struct vs_sub_entry entries[10];
	long iters = argc > 1 ? atol(argv[1]) : 2000000;
	struct vs_packet p;
	int i;

	memset(payload, 'x', sizeof(payload));
	printf("codec micro-benchmark: median of %d runs x %ld packets\n", RUNS, iters);

	for (int v = VS_V311; v <= VS_V5; v++) {
		const char *vn = v == VS_V5 ? "5.0" : "3.1.1";
		char name[64];
		size_t sizes[2] = {64, 1024};

		for (i = 0; i < 2; i++) {
			memset(&p, 0, sizeof(p));
			p.type = VS_PUBLISH;
			p.publish.qos = 1;
			p.publish.packet_id = 4242;
			p.publish.topic.p =
			    (const uint8_t *)"sensors/building-7/floor-3/room-12/temp";
			p.publish.topic.len = strlen((const char *)p.publish.topic.p);
			p.publish.payload.p = payload;
			p.publish.payload.len = sizes[i];
			if (v == VS_V5) {
				p.publish.props.present = 1ull << VS_PROP_MESSAGE_EXPIRY;
				p.publish.props.message_expiry = 3600;
				p.publish.props.users = &user;
				p.publish.props.n_user = 1;
			}
			snprintf(name, sizeof(name), "PUBLISH %zu B payload, %s", sizes[i], vn);
			bench(name, &p, v, iters);
		}
		memset(&p, 0, sizeof(p));
		p.type = VS_SUBSCRIBE;
		p.subscribe.packet_id = 7;
		p.subscribe.count = 10;
		p.subscribe.entries = entries;
		for (i = 0; i < 10; i++) {
			memset(&entries[i], 0, sizeof(entries[i]));
			entries[i].filter.p = (const uint8_t *)filters[i];
			entries[i].filter.len = strlen(filters[i]);
			entries[i].qos = (uint8_t)(i % 3);
		}
		snprintf(name, sizeof(name), "SUBSCRIBE 10 filters, %s", vn);
		bench(name, &p, v, iters / 4);
	}
	return 0;
}
