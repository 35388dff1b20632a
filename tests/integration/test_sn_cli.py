"""viesti pub --sn and viesti sub --sn (libviesti's MQTT-SN client) against the broker's MQTT-SN
gateway, with paho MQTT clients on the same broker's TCP listener on the other side.

Every broker here has a TCP listener (b.port), a UDP listener with `protocol mqttsn` (b.sn_port)
with a short retry interval, and a predefined topic table (PREDEF), written to a file that the
tools read too (--sn-predefined). Spec sections cited are MQTT-SN 1.2's.
"""

import queue
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import wait_until
from helpers import uid
from test_cli_parity import VIESTI, needs_cli
from test_mqttsn import free_udp_port, udp_bound

# Mosquitto has no MQTT-SN gateway.
pytestmark = [pytest.mark.viesti_only, needs_cli]

PREDEF = {1: "snc/predef", 2: "snc/other"}
SANITIZER = (b"ERROR: AddressSanitizer", b"runtime error:", b"ERROR: LeakSanitizer")


@pytest.fixture
def sn_broker(broker, tmp_path):
	"""A started broker with an MQTT-SN listener: b.sn_port, b.predef_path."""
	udp = free_udp_port()
	path = tmp_path / "predefined.txt"
	path.write_text("# ID TOPIC\n" + "".join("%d %s\n" % kv for kv in sorted(PREDEF.items())))
	b = broker("listener %d 127.0.0.1" % udp, "protocol mqttsn", "mqttsn_retry_interval 0.5",
		"mqttsn_predefined_topics %s" % path, start=False)
	b.sn_port, b.predef_path = udp, str(path)
	b.start()
	wait_until(lambda: udp_bound("127.0.0.1", udp, socket.AF_INET), 5.0, what="the broker to bind UDP port %d" % udp)
	wait_until(lambda: "running with" in b.log_text(), 10.0, what="the broker's workers")
	return b


class Tool:
	"""A viesti command whose stdout is read line by line on a thread."""

	def __init__(self, args, stdin=None):
		self.args = args
		self.p = subprocess.Popen([VIESTI] + args, stdout=subprocess.PIPE,
			stderr=subprocess.PIPE, stdin=stdin)
		self.q = queue.Queue()
		self.lines = []
		self.t = threading.Thread(target=self._read, daemon=True)
		self.t.start()

	def _read(self):
		for line in self.p.stdout:
			line = line.decode("utf-8", "replace").rstrip("\n")
			self.lines.append(line)
			self.q.put(line)
		self.q.put(None)

	def wait_line(self, text, timeout=10.0):
		"""Waits for a line of stdout containing text; returns it."""
		deadline = time.monotonic() + timeout
		while True:
			left = deadline - time.monotonic()
			try:
				line = self.q.get(timeout=max(left, 0.01))
			except queue.Empty:
				line = False
			if line is None or line is False or left <= 0:
				raise AssertionError("no line with %r from viesti %s; stdout so far:\n%s" % (
					text, " ".join(self.args), "\n".join(self.lines)))
			if text in line:
				return line

	def finish(self, timeout=20.0):
		"""Waits for the exit; returns (exit status, stdout lines, stderr)."""
		try:
			err = self.p.stderr.read() if self.p.wait(timeout) is not None else b""
		except subprocess.TimeoutExpired:
			self.p.kill()
			self.p.wait()
			raise AssertionError("viesti %s did not exit within %.0fs; stdout:\n%s" % (
				" ".join(self.args), timeout, "\n".join(self.lines)))
		self.t.join(5)
		for pat in SANITIZER:
			assert pat not in err, err.decode("utf-8", "replace")
		return self.p.returncode, self.lines, err

	def close(self):
		if self.p.poll() is None:
			self.p.kill()
			self.p.wait()


@pytest.fixture
def tools():
	made = []

	def start(*args, stdin=None):
		t = Tool(list(args), stdin=stdin)
		made.append(t)
		return t

	yield start
	for t in made:
		t.close()


def run(*args, input=None, timeout=30):
	r = subprocess.run([VIESTI] + list(args), capture_output=True, input=input, timeout=timeout)
	for pat in SANITIZER:
		assert pat not in r.stderr, r.stderr.decode("utf-8", "replace")
	return r


def sn_pub(b, *args, **kw):
	return run("pub", "--sn", "-h", "127.0.0.1", "-p", str(b.sn_port), *args, **kw)


def sn_sub(tools, b, *args):
	return tools("sub", "--sn", "-h", "127.0.0.1", "-p", str(b.sn_port), *args)


# ---- viesti pub --sn -> MQTT -------------------------------------------------------------------

TOPICS = {"short": "s%d", "predefined": PREDEF[1], "normal": "snc/normal/%d"}


@pytest.mark.parametrize("qos", [-1, 0, 1, 2])
def test_pub_each_qos_and_topic_kind_reaches_mqtt(sn_broker, clients, qos):
	"""Short names and predefined ids at every QoS (-1 without a connection, section 6.8);
	normal topic names (REGISTER first, section 6.5) at 0, 1, 2."""
	b = sn_broker
	w = clients.paho(b.port)
	w.subscribe("#", 2)
	kinds = ["short", "predefined"] + (["normal"] if qos >= 0 else [])
	for kind in kinds:
		topic = TOPICS[kind] % (qos + 1) if "%" in TOPICS[kind] else TOPICS[kind]
		payload = "%s at qos %d" % (kind, qos)
		r = sn_pub(b, "--sn-predefined", b.predef_path, "-t", topic, "-m", payload,
			"-q", str(qos), "-d")
		assert r.returncode == 0, (kind, r.stdout, r.stderr)
		out = r.stdout.decode()
		assert ("sending CONNECT" in out) == (qos >= 0), out
		want = {"short": "short '%s'" % topic, "predefined": "predefined 1",
			"normal": "normal "}[kind]
		assert want in out, out
		if kind == "normal":
			assert "sending REGISTER" in out and "received REGACK" in out, out
		m = w.get(5)
		assert (m.topic, m.payload, m.qos, m.retain) == (topic, payload.encode(), max(qos, 0),
			False)
	w.no_message(0.3)


def test_pub_qos1_qos2_acknowledged_and_retained(sn_broker, clients):
	b = sn_broker
	t = "snc/%s/retained" % uid()
	r = sn_pub(b, "-t", t, "-m", "kept", "-q", "2", "-r", "-d")
	assert r.returncode == 0, r.stderr
	out = r.stdout.decode()
	for step in ("PUBLISH (d0, q2, r1", "received PUBREC", "sending PUBREL", "received PUBCOMP",
			"sending DISCONNECT", "received DISCONNECT"):
		assert step in out, out
	w = clients.paho(b.port)
	w.subscribe(t, 1)
	m = w.get(5)
	assert (m.topic, m.payload, m.retain) == (t, b"kept", True)
	r = sn_pub(b, "-t", t, "-n", "-q", "1", "-r")  # a null retained message clears it
	assert r.returncode == 0, r.stderr
	w2 = clients.paho(b.port)
	w2.subscribe(t, 1)
	w2.no_message(0.5)


def test_pub_lines_file_and_repeat(sn_broker, clients, tmp_path):
	b = sn_broker
	t = "snc/%s/lines" % uid()
	w = clients.paho(b.port)
	w.subscribe(t, 1)
	r = sn_pub(b, "-t", t, "-l", "-q", "1", input=b"one\ntwo\nthree\n")
	assert r.returncode == 0, r.stderr
	assert [m.payload for m in w.get_n(3, 5)] == [b"one", b"two", b"three"]
	f = tmp_path / "payload.bin"
	f.write_bytes(bytes(range(256)) * 8)
	r = sn_pub(b, "-t", t, "-f", str(f), "-q", "0", "--repeat", "2", "--repeat-delay", "0.2")
	assert r.returncode == 0, r.stderr
	assert [m.payload for m in w.get_n(2, 5)] == [f.read_bytes()] * 2
	w.no_message(0.3)


def test_pub_qos_minus1_needs_short_or_predefined_topic(sn_broker):
	b = sn_broker
	r = sn_pub(b, "-t", "snc/needs/register", "-m", "x", "-q", "-1")
	assert r.returncode == 1
	assert b"QoS -1 needs a predefined topic" in r.stderr


def test_pub_no_gateway_exits_1(sn_broker):
	port = free_udp_port()  # nobody there: ICMP port unreachable on the loopback
	t0 = time.monotonic()
	r = run("pub", "--sn", "-h", "127.0.0.1", "-p", str(port), "-t", "ab", "-m", "x", "-q", "1")
	assert r.returncode == 1, r.stderr
	assert b"Error" in r.stderr
	assert time.monotonic() - t0 < 10


def test_pub_default_port_is_1884():
	"""--sn without -p goes to 1884 (QoS -1: one datagram, caught here)."""
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	try:
		s.bind(("127.0.0.1", 1884))
	except OSError:
		s.close()
		pytest.skip("UDP port 1884 is in use")
	try:
		s.settimeout(5)
		r = run("pub", "--sn", "-h", "127.0.0.1", "-t", "zz", "-m", "hi", "-q", "-1")
		assert r.returncode == 0, r.stderr
		data = s.recv(100)
		# Length, PUBLISH, flags (QoS -1, short name), topic "zz", msg id 0, payload
		assert data == bytes([9, 0x0C, 0x62]) + b"zz" + b"\x00\x00" + b"hi"
	finally:
		s.close()


# ---- MQTT -> viesti sub --sn ------------------------------------------------------------------

def test_sub_receives_from_mqtt_by_name_short_and_predefined(sn_broker, clients, tools):
	b = sn_broker
	base = "snc/%s" % uid()
	sub = sn_sub(tools, b, "--sn-predefined", b.predef_path, "-t", base + "/+/x", "-t", "ab",
		"-t", PREDEF[2], "-q", "2", "-C", "9", "-v", "-W", "20", "-d")
	for what in ("SUBSCRIBE (m1, q2, '%s/+/x')" % base, "SUBSCRIBE (m2, q2, short 'ab')",
			"SUBSCRIBE (m3, q2, predefined 2)"):
		sub.wait_line(what)
	sub.wait_line("Subscribed to '%s'" % PREDEF[2])
	p = clients.paho(b.port)
	sent = []
	for qos in (0, 1, 2):
		for topic in (base + "/a/x", "ab", PREDEF[2]):
			payload = "q%d-%s" % (qos, topic)
			p.publish(topic, payload, qos=qos)
			sent.append("%s %s" % (topic, payload))
	code, lines, err = sub.finish()
	assert code == 0, err
	printed = [ln for ln in lines if not ln.startswith(("Client ", "Subscribed "))]
	assert sorted(printed) == sorted(sent), "\n".join(lines)
	out = "\n".join(lines)
	# [6.10] The wildcard's topic was REGISTERed by the gateway before its first PUBLISH.
	assert "received REGISTER" in out and "sending REGACK" in out
	assert "sending PUBREC" in out and "received PUBREL" in out and "sending PUBCOMP" in out


def test_sub_count_format_and_filters(sn_broker, clients, tools):
	b = sn_broker
	base = "snc/%s" % uid()
	p = clients.paho(b.port)
	p.publish(base + "/old", "stale", qos=1, retain=True)
	sub = sn_sub(tools, b, "-t", base + "/#", "-q", "1", "-C", "2", "-R", "-T", base + "/skip",
		"-F", "%t|%p|%q|%r", "-W", "20", "-d")
	sub.wait_line("Subscribed to")
	for t, m in (("skip", "no"), ("a", "first"), ("b", "second"), ("c", "third")):
		p.publish("%s/%s" % (base, t), m, qos=1)
	code, lines, err = sub.finish()
	assert code == 0, err
	printed = [ln for ln in lines if "|" in ln]
	assert printed == ["%s/a|first|1|0" % base, "%s/b|second|1|0" % base], lines


def test_sub_timeout_exit_27(sn_broker, tools):
	b = sn_broker
	sub = sn_sub(tools, b, "-t", "snc/%s/never" % uid(), "-W", "1")
	code, lines, err = sub.finish(10)
	assert code == 27
	assert b"Timed out" in err


def test_sub_sleeping_subscriber_gets_what_arrived_while_it_slept(sn_broker, clients, tools):
	"""[6.14] The subscriber subscribes, sleeps 2 s (DISCONNECT with a duration), and the
	messages published meanwhile come after its wake-up PINGREQ, before the PINGRESP."""
	b = sn_broker
	base = "snc/%s" % uid()
	cid = uid("sleepy")
	sub = sn_sub(tools, b, "-i", cid, "-c", "-t", base + "/#", "-q", "1", "-C", "4", "-v",
		"-W", "30", "--sn-sleep", "2", "-d")
	sub.wait_line("sending DISCONNECT (2 s)")
	sub.wait_line("received DISCONNECT")
	p = clients.paho(b.port)
	sent = []
	for i, qos in enumerate((1, 0, 2)):
		topic, payload = "%s/%d" % (base, i), "while asleep %d" % i
		p.publish(topic, payload, qos=qos)
		sent.append("%s %s" % (topic, payload))
	# Nothing went to the client yet: it had not woken up.
	assert not any("wake-up" in ln or "received PUBLISH" in ln for ln in sub.lines), sub.lines
	sub.wait_line("PINGREQ (wake-up: '%s')" % cid)
	sub.wait_line("received PINGRESP")
	sub.wait_line("Woke up: 3 messages kept")
	# The next nap, and one more message for it.
	sub.wait_line("sending DISCONNECT (2 s)")
	sub.wait_line("received DISCONNECT")
	p.publish(base + "/late", "second nap", qos=1)
	sent.append("%s/late second nap" % base)
	code, lines, err = sub.finish(30)
	assert code == 0, err
	printed = [ln for ln in lines if ln.startswith(base)]
	assert printed == sent, "\n".join(lines)
	out = "\n".join(lines)
	wake = out.index("PINGREQ (wake-up")
	assert out.index("received PUBLISH") > wake and out.index("received PINGRESP") > wake


def test_sub_will_published_when_the_client_dies(sn_broker, clients, tools):
	"""[6.3] The will dialogue (WILLTOPICREQ, WILLMSGREQ), then the gateway publishes the will
	when the client's keep-alive runs out."""
	b = sn_broker
	will = "snc/%s/will" % uid()
	w = clients.paho(b.port)
	w.subscribe(will, 1)
	sub = sn_sub(tools, b, "-t", "snc/nothing", "-k", "1", "--will-topic", will,
		"--will-payload", "gone", "--will-qos", "1", "-d")
	for what in ("received WILLTOPICREQ", "sending WILLTOPIC", "received WILLMSGREQ",
			"sending WILLMSG", "received CONNACK (rc0)", "Subscribed to"):
		sub.wait_line(what)
	sub.wait_line("sending PINGREQ")  # the keep-alive
	w.no_message(0.3)
	sub.p.send_signal(signal.SIGKILL)
	sub.p.wait()
	m = w.get(10)
	assert (m.topic, m.payload, m.qos) == (will, b"gone", 1)


def test_sub_clean_session_off_keeps_subscription(sn_broker, clients, tools):
	"""-c -i: a second run without -t... gets what was queued for the session meanwhile."""
	b = sn_broker
	base = "snc/%s" % uid()
	cid = uid("keep")
	sub = sn_sub(tools, b, "-i", cid, "-c", "-t", base + "/#", "-q", "1", "-E")
	code, _, err = sub.finish()
	assert code == 0, err
	p = clients.paho(b.port)
	p.publish(base + "/q", "queued", qos=1)
	sub = sn_sub(tools, b, "-i", cid, "-c", "-t", base + "/other", "-q", "1", "-C", "1", "-v",
		"-W", "10")
	code, lines, err = sub.finish()
	assert code == 0, err
	assert lines == ["%s/q queued" % base]


# ---- flags --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
	["pub", "--sn", "-t", "a", "-m", "x", "-u", "user"],
	["pub", "--sn", "-t", "a", "-m", "x", "-V", "5"],
	["pub", "--sn", "-t", "a", "-m", "x", "--cafile", "/nonexistent"],
	["pub", "--sn", "-t", "a", "-m", "x", "-D", "publish", "content-type", "x"],
	["sub", "--sn", "-t", "a", "-q", "-1"],
	["sub", "--sn", "-t", "a", "--retain-as-published"],
	["pub", "-t", "a", "-m", "x", "-q", "-1"],
	["sub", "-t", "a", "--sn-sleep", "5"],
	["pub", "-t", "a", "-m", "x", "--sn-predefined", "/nonexistent"],
	["sub", "--sn", "-t", "a", "--sn-sleep", "0"],
	["rr", "--sn", "-t", "a", "-e", "b", "-m", "x"],
])
def test_flags_that_do_not_go_with_sn(args):
	r = run(*args)
	assert r.returncode == 1, (args, r.stderr)
	assert b"Error" in r.stderr


def test_predefined_file_errors_name_the_line(tmp_path):
	f = tmp_path / "bad.txt"
	f.write_text("1 ok/topic\nseven bad\n")
	r = run("pub", "--sn", "--sn-predefined", str(f), "-t", "ab", "-m", "x", "-q", "-1")
	assert r.returncode == 1
	assert ("%s:2:" % f).encode() in r.stderr, r.stderr


def test_help_documents_sn():
	r = run("pub", "--help")
	assert r.returncode == 0
	for flag in (b"--sn ", b"--sn-predefined", b"-q -1"):
		assert flag in r.stdout, flag
	r = run("sub", "--help")
	assert r.returncode == 0
	for flag in (b"--sn ", b"--sn-predefined", b"--sn-sleep"):
		assert flag in r.stdout, flag
