"""libviesti's viesti_connect_wait(): retries per the reconnect settings, a refusal ends it (and is
reported to on_connect with its reason code), and after it returns an error nothing goes on in
the background.

A small C program (WAIT_C, compiled against the libviesti.a next to the viesti binary) makes one
client, calls viesti_connect_wait() and prints its result, then keeps the client's loop thread
running for a while and prints every on_connect; a Debian mosquitto plays the broker, started
late or refusing as each case needs.
"""

import os
import socket
import subprocess
import time

import pytest

import conftest
from test_cli_parity import MOSQUITTO, VIESTI

WAIT_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <viesti.h>

static void on_connect(struct viesti *v, void *ud, int reason, bool sp, const struct viesti_props *p)
{
	printf("on_connect %d\n", reason);
	fflush(stdout);
}

/* port timeout_ms retries(0/1) reconnect(0/1) linger_ms */
int main(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	struct viesti_options o;
	viesti_options_init(&o);
	o.host = "127.0.0.1";
	o.port = atoi(argv[1]);
	o.connect_wait_retries = atoi(argv[3]);
	o.reconnect = atoi(argv[4]);
	o.reconnect_min_ms = 100;
	o.reconnect_max_ms = 200;
	struct viesti_callbacks cb = {.on_connect = on_connect};
	int err;
	struct viesti *v = viesti_new(&o, &cb, NULL, &err);
	if (!v || viesti_loop_start(v) != 0)
		return 1;
	int rc = viesti_connect_wait(v, atoi(argv[2]));
	printf("wait %d%s\n", rc, rc == VIESTI_EREFUSED ? " refused" : rc == -ECONNREFUSED ?
	       " econnrefused" : rc == -ETIMEDOUT ? " etimedout" : "");
	if (rc == VIESTI_EREFUSED)
		printf("reason %d\n", viesti_connack_reason(v));
	fflush(stdout);
	usleep((useconds_t)atoi(argv[5]) * 1000);
	printf("connected %d\n", viesti_is_connected(v));
	fflush(stdout);
	viesti_loop_stop(v);
	viesti_free(v);
	return 0;
}
"""


@pytest.fixture(scope="module")
def wait_exe(tmp_path_factory):
	if VIESTI is None or not os.path.exists(os.path.join(os.path.dirname(VIESTI), "libviesti.a")):
		pytest.skip("no libviesti.a next to the viesti binary (set VIESTI_CLI / VIESTI_BIN)")
	if not os.access(MOSQUITTO, os.X_OK):
		pytest.skip("no %s" % MOSQUITTO)
	d = tmp_path_factory.mktemp("wait")
	src, exe = str(d / "wait.c"), str(d / "wait")
	with open(src, "w") as f:
		f.write(WAIT_C)
	lib = os.path.join(os.path.dirname(VIESTI), "libviesti.a")
	base = ["cc", "-std=c11", "-D_GNU_SOURCE", "-g", "-I", os.path.join(conftest.REPO, "include"),
		src, lib, "-o", exe, "-lpthread", "-lssl", "-lcrypto", "-lm"]
	for extra in (["-fsanitize=address,undefined"], []):
		r = subprocess.run(base + extra, capture_output=True, text=True)
		if r.returncode == 0:
			return exe
	raise AssertionError("wait.c did not compile:\n" + r.stderr)


class Broker:
	"""A Debian mosquitto on `port`, started when asked."""

	def __init__(self, tmp_path, port, lines=()):
		self.port = port
		self.conf = tmp_path / ("m-%d.conf" % port)
		self.conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\n%s\n" % (
			port, "\n".join(lines)))
		self.proc = None

	def start(self):
		self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
			stderr=subprocess.DEVNULL)

	def stop(self):
		if self.proc and self.proc.poll() is None:
			self.proc.terminate()
			self.proc.wait(10)


def held_port():
	"""A port bound here and not listening: connections are refused, and no other test's broker
	can take it until the socket is closed (just before our broker starts on it)."""
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	return s, s.getsockname()[1]


def run(exe, port, timeout_ms, retries, reconnect, linger_ms, during=None):
	"""Runs the program; `during(proc)` runs while it waits. Returns (lines, seconds until the
	`wait` line)."""
	p = subprocess.Popen([exe, str(port), str(timeout_ms), str(int(retries)), str(int(reconnect)),
		str(linger_ms)], stdout=subprocess.PIPE, text=True)
	t0 = time.monotonic()
	try:
		if during:
			during(p)
		lines, took = [], None
		for line in p.stdout:
			lines.append(line.strip())
			if line.startswith("wait ") and took is None:
				took = time.monotonic() - t0
		assert p.wait(30) == 0
		return lines, took
	finally:
		if p.poll() is None:
			p.kill()
			p.wait()


def test_retries_until_the_broker_comes(wait_exe, tmp_path):
	hold, port = held_port()
	b = Broker(tmp_path, port)
	try:
		lines, took = run(wait_exe, port, 15000, True, True, 0,
			during=lambda p: (time.sleep(1.0), hold.close(), b.start()))
		assert "wait 0" in lines and "on_connect 0" in lines, lines
		assert took >= 0.9, took  # the first attempts failed: it kept trying
	finally:
		b.stop()


@pytest.mark.parametrize("retries", [True, False], ids=["retries", "first-attempt"])
def test_failure_leaves_nothing_running(wait_exe, tmp_path, retries):
	"""The wait fails (no broker); a broker that appears afterwards sees no connection."""
	hold, port = held_port()
	b = Broker(tmp_path, port)
	got = {}

	def start_later(p):
		got["first"] = p.stdout.readline().strip()
		hold.close()
		b.start()
	try:
		lines, _ = run(wait_exe, port, 600, retries, True, 2500, during=start_later)
		first = got["first"]
		assert first == "wait %d econnrefused" % -111, (first, lines)
		assert lines == ["connected 0"], lines  # no on_connect, not connected
	finally:
		b.stop()


def test_first_attempt_mode_answers_at_once(wait_exe):
	hold, port = held_port()
	lines, took = run(wait_exe, port, 10000, False, True, 0)
	hold.close()
	assert lines[0] == "wait -111 econnrefused", lines
	assert took < 3, took


@pytest.mark.parametrize("retries", [True, False], ids=["retries", "first-attempt"])
def test_refusal_ends_the_wait_and_reaches_on_connect(wait_exe, tmp_path, retries):
	port = conftest.free_port()
	b = Broker(tmp_path, port, ["allow_anonymous false"] +
		(["user root"] if os.geteuid() == 0 else []))
	b.conf.write_text(b.conf.read_text().replace("allow_anonymous true\n", ""))
	b.start()
	try:
		conftest.wait_until(lambda: port_open(port), 10, what="mosquitto")
		lines, took = run(wait_exe, port, 15000, retries, True, 1500)
		# on_connect once, with the reason code (3.1.1: 5 not authorised); no retry afterwards
		assert lines == ["on_connect 5", "wait %d refused" % -1100, "reason 5", "connected 0"], lines
		assert took < 5, took
	finally:
		b.stop()


def port_open(port):
	import socket
	try:
		socket.create_connection(("127.0.0.1", port), 0.2).close()
		return True
	except OSError:
		return False
