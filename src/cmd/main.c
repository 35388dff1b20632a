/*
 * viesti: one executable, several commands (broker, pub, sub, rr, bench, passwd). This file only
 * dispatches; each command parses its own arguments in its own file.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
    {"broker", vs_cmd_broker, "run the MQTT broker"},
    {"pub", vs_cmd_pub, "publish a message (mosquitto_pub compatible)"},
    {"sub", vs_cmd_sub, "subscribe and print messages (mosquitto_sub compatible)"},
    {"rr", vs_cmd_rr, "send a request and wait for its response (mosquitto_rr compatible)"},
    {"passwd", vs_cmd_passwd, "manage a Mosquitto-compatible password file"},
    {"bench", vs_cmd_bench, "load-test an MQTT broker (latency, throughput, loss)"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: viesti <command> [options]\n"
		"       viesti --help | --version\n\n"
		"Viesti %s: an MQTT 3.1, 3.1.1 and 5.0 broker and toolset.\n\n"
		"Commands:\n",
		VS_VERSION);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'viesti <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("viesti %s\n", VS_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "viesti: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
