"""viesti sub / viesti pub against mosquitto_sub / mosquitto_pub: same flags, same broker, same
bytes out.

Each sub case starts mosquitto_sub and viesti sub side by side with the same flags, waits until
both have printed a retained "barrier" message (so both subscriptions are live), publishes the
same live messages, and compares stdout byte for byte (timestamps of %I %U %j @-sequences are
normalised first) and the exit status. Each pub case publishes with mosquitto_pub and with viesti
pub and compares what one mosquitto_sub saw of each.

Runs against the `broker` fixture (viesti broker, or mosquitto with VIESTI_TARGET=mosquitto) and
against a Debian mosquitto started here. The viesti executable for the tools is $VIESTI_CLI, else
the broker binary under test, else <repo>/build-san/viesti.
"""

import os
import re
import signal
import socket
import subprocess
import time
import uuid

import pytest

import conftest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MOSQUITTO = "/usr/sbin/mosquitto"


def cli_binary():
	for cand in (os.environ.get("VIESTI_CLI"),
			conftest.TARGET_BIN if conftest.TARGET == "viesti" else None,
			os.path.join(REPO, "build-san", "viesti"), os.path.join(REPO, "build", "viesti")):
		if cand and os.access(cand, os.X_OK):
			r = subprocess.run([cand, "sub", "--help"], capture_output=True)
			if r.returncode == 0:
				return cand
	return None


VIESTI = cli_binary()
needs_cli = pytest.mark.skipif(VIESTI is None, reason="no viesti executable with 'sub' (set VIESTI_CLI)")


class Mosquitto:
	"""A Debian mosquitto on a free port, for running the tools against a second broker."""

	def __init__(self, tmp_path, lines=()):
		self.port = conftest.free_port()
		conf = tmp_path / ("mosq-%d.conf" % self.port)
		conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\n%s\n" % (
			self.port, "\n".join(lines)))
		self.log = open(str(tmp_path / ("mosq-%d.log" % self.port)), "wb")
		self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log,
			stderr=subprocess.STDOUT)

		def up():
			if self.proc.poll() is not None:
				raise AssertionError("mosquitto exited: %s" % self.proc.returncode)
			try:
				socket.create_connection(("127.0.0.1", self.port), 0.2).close()
				return True
			except OSError:
				return False
		conftest.wait_until(up, 10, what="mosquitto on port %d" % self.port)

	def stop(self):
		if self.proc.poll() is None:
			self.proc.terminate()
			self.proc.wait(10)
		self.log.close()


@pytest.fixture(params=["fixture", "mosquitto"])
def any_broker(request, broker, tmp_path):
	"""The port of a running broker: the suite's broker fixture, or a Debian mosquitto."""
	if request.param == "fixture":
		yield broker().port
		return
	if not os.access(MOSQUITTO, os.X_OK):
		pytest.skip("no %s" % MOSQUITTO)
	m = Mosquitto(tmp_path)
	yield m.port
	m.stop()


def viesti_cmd(tool, port, *args):
	return [VIESTI, tool, "-h", "127.0.0.1", "-p", str(port)] + list(args)


def mosq_cmd(tool, port, *args):
	return ["mosquitto_" + tool, "-h", "127.0.0.1", "-p", str(port)] + list(args)


def run_pub(port, *args, viesti=False, input=None):
	cmd = viesti_cmd("pub", port, *args) if viesti else mosq_cmd("pub", port, *args)
	r = subprocess.run(cmd, input=input, capture_output=True, timeout=20)
	return r


TS_PATTERNS = [
	(re.compile(rb'"tst":"[^"]*"'), b'"tst":"T"'),
	(re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"), b"ISO"),
	(re.compile(rb"\d{10}\.\d{9}"), b"UNIX"),
]


def normalise(b):
	for rx, rep in TS_PATTERNS:
		b = rx.sub(rep, b)
	return b


class SubPair:
	"""mosquitto_sub and viesti sub with the same flags, output to files."""

	def __init__(self, tmp_path, port, args, line_buffered=False):
		self.procs = []
		self.files = []
		# mosquitto_sub prints -d lines without flushing them: stdbuf -oL shows each line as
		# it is written (viesti sub flushes them; an ASan build refuses stdbuf's preload).
		pre = ["stdbuf", "-oL"] if line_buffered else []
		for name, cmd in (("mosq", pre + mosq_cmd("sub", port, *args)),
				("viesti", viesti_cmd("sub", port, *args))):
			out = tmp_path / ("%s-%s.out" % (name, uuid.uuid4().hex[:6]))
			err = tmp_path / ("%s-%s.err" % (name, uuid.uuid4().hex[:6]))
			self.files.append((out, err))
			self.procs.append(subprocess.Popen(cmd, stdout=open(str(out), "wb"),
				stderr=open(str(err), "wb")))

	def wait_output(self, timeout=10):
		conftest.wait_until(lambda: all(o.stat().st_size > 0 for o, _ in self.files), timeout,
			what="both subscribers to print the barrier")

	def finish(self, timeout=15):
		res = []
		for p, (o, e) in zip(self.procs, self.files):
			try:
				rc = p.wait(timeout)
			except subprocess.TimeoutExpired:
				p.kill()
				p.wait()
				rc = "timeout"
			res.append((rc, o.read_bytes(), e.read_bytes()))
		return res

	def kill(self):
		for p in self.procs:
			if p.poll() is None:
				p.kill()
				p.wait()


def pub_all(port, messages):
	for m in messages:
		r = run_pub(port, *m)
		assert r.returncode == 0, r.stderr


V5_PROPS = ["-D", "publish", "user-property", "k1", "v1", "-D", "publish", "user-property",
	"k2", "v 2", "-D", "publish", "content-type", "text/plain", "-D", "publish",
	"response-topic", "resp/x", "-D", "publish", "correlation-data", "c0rr", "-D", "publish",
	"message-expiry-interval", "300", "-D", "publish", "payload-format-indicator", "1"]

FORMAT_ALL = ("%t|%p|%q|%r|%l|%m|%x|%X|%%|%10t|%-10t|%.2t|%05l|%-5l|%5p|%05p|%8x|%08X"
	"|%3.5C|%-10.2R|%I|%U|@Y@@\\t|%A|%C|%D|%E|%F|%R|%S|%P|%04E|%4S")

# (id, sub flags, number of live messages the sub should print, live messages)
LIVE = [
	["-t", "{b}/a", "-m", "hello"],
	["-t", "{b}/b/c", "-m", "second message", "-q", "1"],
	["-t", "{b}/a", "-n"],
	["-t", "{b}/a", "-m", "tab\there \"quoted\" \\ back"],
	["-t", "{b}/z", "-m", "{\"a\": [1, 2.5, -1e3, true, null], \"s\": \"\\u00e4\"}"],
]

SUB_CASES = [
	("default", []),
	("verbose", ["-v"]),
	("no-eol", ["-N"]),
	("verbose-no-eol", ["-v", "-N"]),
	("format", ["-F", FORMAT_ALL]),
	("format-noeol", ["-N", "-F", "%t=%p;"]),
	("json", ["-F", "%j"]),
	("json-raw", ["-F", "x%Jy"]),
	("qos1", ["-q", "1", "-F", "%t %q %m %r %p"]),
	("qos2", ["-q", "2", "-v"]),
	("v5", ["-V", "5", "-F", FORMAT_ALL]),
	("v5-json", ["-V", "mqttv5", "-F", "%j"]),
	("v31", ["-V", "31", "-v"]),
	("filter-out", ["-v", "-T", "{b}/b/#"]),
]


@needs_cli
@pytest.mark.parametrize("name,flags", SUB_CASES, ids=[c[0] for c in SUB_CASES])
def test_sub_output_matches_mosquitto_sub(any_broker, tmp_path, name, flags):
	port = any_broker
	b = "par-" + uuid.uuid4().hex[:8]
	flags = [f.replace("{b}", b) for f in flags]
	live = [[a.replace("{b}", b) for a in m] for m in LIVE]
	if "-V" in flags and flags[flags.index("-V") + 1] in ("5", "mqttv5"):
		live = [m + ["-V", "5"] + V5_PROPS for m in live]
	run_pub(port, "-t", b + "/barrier", "-m", "barrier", "-r")
	expect = 1 + sum(1 for m in live if not ("-T" in flags and "/b/" in m[1]))
	pair = SubPair(tmp_path, port, ["-t", b + "/#", "-C", str(expect), "-W", "10"] + flags)
	try:
		pair.wait_output()
		pub_all(port, live)
		(mrc, mout, merr), (vrc, vout, verr) = pair.finish()
	finally:
		pair.kill()
		run_pub(port, "-t", b + "/barrier", "-n", "-r")
	assert mrc == 0, merr
	assert normalise(vout) == normalise(mout), "viesti:\n%r\nmosquitto:\n%r" % (vout, mout)
	assert vrc == mrc, verr


@needs_cli
@pytest.mark.parametrize("flags", [["-R"], ["--retained-only", "-v"]], ids=["R", "retained-only"])
def test_sub_retain_flags_match(any_broker, tmp_path, flags):
	port = any_broker
	b = "ret-" + uuid.uuid4().hex[:8]
	run_pub(port, "-t", b + "/r1", "-m", "old1", "-r")
	run_pub(port, "-t", b + "/r2", "-m", "old2", "-r")
	# -R prints nothing before live messages: -d's SUBACK line is the barrier, and debug lines
	# are left out of the comparison.
	count = ["-C", "2", "-d"] if "-R" in flags else []
	pair = SubPair(tmp_path, port, ["-t", b + "/#", "-W", "8"] + count + flags,
		line_buffered="-R" in flags)
	try:
		if "-R" in flags:
			conftest.wait_until(lambda: all(b"Subscribed (mid" in o.read_bytes()
				for o, _ in pair.files), 10, what="both subscriptions to be acknowledged")
		else:
			pair.wait_output()
		pub_all(port, [["-t", b + "/live", "-m", "new1"], ["-t", b + "/live", "-m", "new2"]])
		(mrc, mout, merr), (vrc, vout, verr) = pair.finish()
	finally:
		pair.kill()
		run_pub(port, "-t", b + "/r1", "-n", "-r")
		run_pub(port, "-t", b + "/r2", "-n", "-r")
	def data(out):
		return sorted(l for l in out.splitlines()
			if not l.startswith((b"Client ", b"Subscribed (mid")))
	assert data(vout) == data(mout), (vout, mout)
	assert vrc == mrc


PUB_CASES = [
	("message", ["-m", "hello world"]),
	("null", ["-n"]),
	("retain-qos1", ["-m", "kept", "-r", "-q", "1"]),
	("qos2", ["-m", "exactly once", "-q", "2"]),
	("repeat", ["-m", "again", "--repeat", "3", "--repeat-delay", "0.05"]),
	("v5-props", ["-m", "with props", "-V", "5", "-q", "1"] + V5_PROPS),
	("D-implies-v5", ["-m", "p", "-D", "publish", "content-type", "x/y"]),
	("v31", ["-m", "old protocol", "-V", "mqttv31"]),
]


def live_sub(tmp_path, port, topic, count, *fmt):
	"""Starts mosquitto_sub on topic, writing to a file, and returns (process, file) once its
	subscription is live: it also subscribes to topic/probe, where a retained probe waits, and
	the probe's line in the file is the barrier (strip it with drop_probe)."""
	out = tmp_path / ("cap-%s.out" % uuid.uuid4().hex[:6])
	probe = topic + "/probe"
	r = run_pub(port, "-t", probe, "-m", "probe", "-r")
	assert r.returncode == 0, r.stderr
	sub = subprocess.Popen(mosq_cmd("sub", port, "-V", "5", "-t", topic, "-t", probe, "-C",
		str(count + 1), "-W", "8", *fmt), stdout=open(str(out), "wb"))
	try:
		conftest.wait_until(lambda: out.read_bytes().count(b"\n") >= 1, 8,
			what="the subscriber's retained probe")
	except BaseException:
		sub.kill()
		sub.wait()
		raise
	return sub, out


def drop_probe(port, data, topic):
	"""The subscriber's output without the probe's line (the first one); clears the retained
	probe (once the subscriber is gone: it would see the clearing message)."""
	run_pub(port, "-t", topic + "/probe", "-n", "-r")
	first, _, rest = data.partition(b"\n")
	assert b"probe" in first, data
	return rest


def capture_pub(tmp_path, port, topic, pub_args, viesti, input=None, count=1):
	sub, out = live_sub(tmp_path, port, topic, count, "-F", "%t|%q|%r|%l|%p|%C|%R|%D|%E|%F|%P")
	try:
		r = run_pub(port, *(["-t", topic] + pub_args), viesti=viesti, input=input)
		assert r.returncode == 0, r.stderr
		sub.wait(10)
	finally:
		if sub.poll() is None:
			sub.kill()
			sub.wait()
	return drop_probe(port, out.read_bytes(), topic)


@needs_cli
@pytest.mark.parametrize("name,args", PUB_CASES, ids=[c[0] for c in PUB_CASES])
def test_pub_sends_what_mosquitto_pub_sends(any_broker, tmp_path, name, args):
	port = any_broker
	topic = "pp-" + uuid.uuid4().hex[:8]
	n = 3 if "--repeat" in args else 1
	want = capture_pub(tmp_path, port, topic, args, viesti=False, count=n)
	if "-r" in args:
		run_pub(port, "-t", topic, "-n", "-r")
	got = capture_pub(tmp_path, port, topic, args, viesti=True, count=n)
	if "-r" in args:
		run_pub(port, "-t", topic, "-n", "-r")
	assert got == want


@needs_cli
@pytest.mark.parametrize("mode", ["-s", "-l"])
def test_pub_stdin_modes_match(any_broker, tmp_path, mode):
	port = any_broker
	topic = "ps-" + uuid.uuid4().hex[:8]
	data = b"line one\nline two\n\nline four\n"
	n = 1 if mode == "-s" else 4
	want = capture_pub(tmp_path, port, topic, [mode], viesti=False, input=data, count=n)
	got = capture_pub(tmp_path, port, topic, [mode], viesti=True, input=data, count=n)
	assert got == want


@needs_cli
def test_pub_file_and_url(any_broker, tmp_path):
	port = any_broker
	topic = "pf-" + uuid.uuid4().hex[:8]
	f = tmp_path / "payload.bin"
	f.write_bytes(bytes(range(256)) * 4)
	want = capture_pub(tmp_path, port, topic, ["-f", str(f)], viesti=False)
	got = capture_pub(tmp_path, port, topic, ["-f", str(f)], viesti=True)
	assert got == want
	sub, out = live_sub(tmp_path, port, topic + "/u", 1)
	r = subprocess.run([VIESTI, "pub", "-L", "mqtt://127.0.0.1:%d/%s/u" % (port, topic), "-m", "via url"],
		capture_output=True, timeout=10)
	assert r.returncode == 0, r.stderr
	sub.wait(10)
	assert drop_probe(port, out.read_bytes(), topic + "/u") == b"via url\n"
