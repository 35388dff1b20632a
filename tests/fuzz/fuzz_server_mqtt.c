/*
 * Fuzzes the server side of the protocol: a real broker and three connected clients, whose
 * bytes come from the input. Everything a worker does with what it reads runs: decoding, CONNECT
 * and its steps, PUBLISH in every QoS, subscriptions, retained messages, shared groups,
 * take-overs (two clients may use the same client id), topic aliases, AUTH, DISCONNECT; and
 * delivery to the other clients. Any input must leave the broker whole: no crash, no sanitizer
 * report, no leak once it is shut down.
 *
 * Input: one byte of set-up (bit k: client k speaks 5.0, else 3.1.1; bit 3: clients 0 and 2
 * share a client id), then operations: a byte (client = op % 3; op & 0x80: that client hangs
 * up) and, for writes, a length byte and that many bytes, written to the client's socket, after
 * which the worker takes a turn. Every client starts with a valid CONNECT, so the rest is spent
 * after CONNECT, where the state lives. tests/fuzz/make_seeds.py writes the seeds.
 */
#include "fuzz_server_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { CLIENTS = 3 };

/* Reads and drops what the broker sent a client, so its socket never fills. */
static void drain(int fd)
{
	uint8_t buf[4096];
	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct fuzz_server fs;
	fuzz_server_start(&fs, 0, "");
	int peer[CLIENTS];
	uint8_t setup = data[0];
	for (int k = 0; k < CLIENTS; k++) {
		peer[k] = fuzz_server_connect(&fs);
		char id[8];
		snprintf(id, sizeof(id), "c%d", k == 2 && (setup & 8) ? 0 : k);
		uint8_t pkt[80];
		size_t n = fuzz_connect_packet(pkt, (setup >> k) & 1 ? 5 : 4, id);
		if (write(peer[k], pkt, n) != (ssize_t)n)
			abort();
		vs_worker_poll(fs.w);
	}
	for (size_t i = 1; i < size;) {
		uint8_t op = data[i++];
		int k = op % CLIENTS;
		if (op & 0x80) {
			if (peer[k] >= 0)
				close(peer[k]);
			peer[k] = -1;
		} else if (i < size) {
			size_t len = data[i++];
			if (len > size - i)
				len = size - i;
			if (peer[k] >= 0 && len)
				(void)!write(peer[k], data + i, len);
			i += len;
		}
		vs_worker_poll(fs.w);
		for (int j = 0; j < CLIENTS; j++)
			drain(peer[j]);
	}
	fuzz_server_stop(&fs);
	for (int k = 0; k < CLIENTS; k++)
		if (peer[k] >= 0)
			close(peer[k]);
	return 0;
}
