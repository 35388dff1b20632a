"""viesti pub / sub / rr behaviour beyond output parity: exit codes, -E, -U, --remove-retained,
wills, -W, -c sessions, and viesti rr request/response (against viesti rr's own responder and
against mosquitto_rr for comparison)."""

import subprocess
import time
import uuid

import pytest

import conftest
from test_cli_parity import VIESTI, Mosquitto, any_broker, needs_cli, viesti_cmd  # noqa: F401


def run(args, timeout=20, input=None):
	return subprocess.run([VIESTI] + args, capture_output=True, timeout=timeout, input=input)


def uid(p):
	return "%s-%s" % (p, uuid.uuid4().hex[:8])


@needs_cli
def test_exit_code_connect_failed():
	"""As mosquitto_pub and mosquitto_sub (compared side by side in test_cli_side_by_side.py)."""
	port = conftest.free_port()  # nothing listens there
	r = run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", "a", "-m", "x"])
	assert r.returncode == 1
	assert b"Error: Connection refused" in r.stderr
	r = run(["sub", "-h", "127.0.0.1", "-p", str(port), "-t", "a"])
	assert r.returncode == 1


@needs_cli
def test_exit_code_bad_arguments(any_broker):
	for args in (["pub", "-t", "a"], ["pub", "-m", "x"], ["pub", "-t", "a/#", "-m", "x"],
			["pub", "-t", "a", "-m", "x", "-n"], ["sub"], ["sub", "-t", "a/#/b"],
			["sub", "-t", "a", "-F", "%z"], ["sub", "-t", "a", "-V", "7"],
			["pub", "-t", "a", "-m", "x", "-q", "3"], ["sub", "-t", "a", "-c"],
			["rr", "-t", "a", "-m", "x"], ["pub", "-t", "a", "-m", "x", "-D", "publish", "bogus", "1"]):
		r = run(args + ["-p", str(any_broker)])
		assert r.returncode == 1, (args, r.stderr)
		assert b"Error" in r.stderr, args


@needs_cli
def test_exit_code_refused_by_broker(tmp_path):
	m = Mosquitto(tmp_path, ["allow_anonymous false"])
	try:
		m_conf = tmp_path / ("mosq-%d.conf" % m.port)
		assert m_conf.exists()
		# The status is the CONNACK's reason code, as mosquitto_pub's.
		for v, text, code in (("311", b"not authorised", 5), ("5", b"Not authorized", 135)):
			r = run(["pub", "-h", "127.0.0.1", "-p", str(m.port), "-t", "a", "-m", "x", "-V", v])
			assert r.returncode == code, r.stderr
			assert text.lower() in r.stderr.lower(), r.stderr
	finally:
		m.stop()


@needs_cli
def test_sub_timeout_exit_27(any_broker):
	t0 = time.monotonic()
	r = run(["sub", "-h", "127.0.0.1", "-p", str(any_broker), "-t", uid("quiet"), "-W", "1"])
	assert r.returncode == 27
	assert b"Timed out" in r.stderr
	assert time.monotonic() - t0 < 5


@needs_cli
def test_sub_E_exits_after_suback(any_broker):
	r = run(["sub", "-h", "127.0.0.1", "-p", str(any_broker), "-t", "a", "-t", "b/#", "-E",
		"-W", "5"])
	assert r.returncode == 0, r.stderr
	assert r.stdout == b""


@needs_cli
def test_quiet_suppresses_errors():
	port = conftest.free_port()
	r = run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", "a", "-m", "x", "--quiet"])
	assert r.returncode == 1 and r.stderr == b""


@needs_cli
def test_help_for_each_tool():
	for tool in ("pub", "sub", "rr"):
		r = run([tool, "--help"])
		assert r.returncode == 0
		assert b"Usage: viesti " + tool.encode() in r.stdout
		assert b"Exit status" in r.stdout


@needs_cli
def test_remove_retained(any_broker):
	port = any_broker
	b = uid("rm")
	for t in ("x", "y"):
		assert run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", "%s/%s" % (b, t), "-m", t,
			"-r", "-q", "1"]).returncode == 0
	r = run(["sub", "-h", "127.0.0.1", "-p", str(port), "-t", b + "/#", "--remove-retained",
		"-T", b + "/y", "-C", "1", "-W", "15", "-v"])
	assert r.returncode == 0, r.stderr
	assert r.stdout == ("%s/x x\n" % b).encode()
	# x is gone, y was filtered out and kept
	r = run(["sub", "-h", "127.0.0.1", "-p", str(port), "-t", b + "/#", "-C", "1", "-W", "2", "-v"])
	assert r.stdout == ("%s/y y\n" % b).encode()
	run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", b + "/y", "-n", "-r"])


@needs_cli
def test_unsubscribe_U(any_broker):
	port = any_broker
	b = uid("un")
	ready = "ready-" + b  # a retained probe outside b/#: its line says the client is subscribed
	run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", ready, "-m", "probe", "-r"])
	p = subprocess.Popen(viesti_cmd("sub", port, "-t", b + "/#", "-U", b + "/#", "-t", b + "/keep",
		"-t", ready, "-C", "2", "-W", "30", "-v"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	try:
		assert p.stdout.readline() == ("%s probe\n" % ready).encode()
		run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", b + "/other", "-m", "no"])
		run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", b + "/keep", "-m", "yes"])
		out, err = p.communicate(timeout=40)  # -C 2 ends it as soon as "keep" arrives
		assert out == ("%s/keep yes\n" % b).encode(), (out, err)
	finally:
		if p.poll() is None:
			p.kill()
			p.wait()
		run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", ready, "-n", "-r"])


@needs_cli
@pytest.mark.parametrize("version", ["311", "5"])
def test_will_sent_when_client_dies(any_broker, version):
	port = any_broker
	b = uid("will")
	# A retained message on b/ready tells when each client has subscribed (its first line).
	run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", b + "/ready", "-m", "ready", "-r"])
	watcher = subprocess.Popen(viesti_cmd("sub", port, "-t", b + "/will", "-t", b + "/ready",
		"-C", "2", "-W", "10", "-v"), stdout=subprocess.PIPE)
	victim = None
	try:
		assert watcher.stdout.readline() == ("%s/ready ready\n" % b).encode()
		victim = subprocess.Popen(viesti_cmd("sub", port, "-t", b + "/ready", "-W", "10", "-V",
			version, "--will-topic", b + "/will", "--will-payload", "gone", "--will-qos", "1"),
			stdout=subprocess.PIPE)
		assert victim.stdout.readline() == b"ready\n"
		victim.kill()
		victim.wait()
		out, _ = watcher.communicate(timeout=10)
		assert out == ("%s/will gone\n" % b).encode()
	finally:
		for p in (watcher, victim):
			if p and p.poll() is None:
				p.kill()
				p.wait()
		run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", b + "/ready", "-n", "-r"])


@needs_cli
def test_persistent_session_c(any_broker):
	"""-c -i: messages for an offline persistent subscriber wait for it (QoS 1)."""
	port = any_broker
	b = uid("sess")
	cid = uid("cid")
	r = run(["sub", "-h", "127.0.0.1", "-p", str(port), "-t", b, "-q", "1", "-c", "-i", cid, "-E"])
	assert r.returncode == 0, r.stderr
	run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", b, "-m", "while away", "-q", "1"])
	r = run(["sub", "-h", "127.0.0.1", "-p", str(port), "-t", b, "-q", "1", "-c", "-i", cid, "-C",
		"1", "-W", "15"])
	assert r.stdout == b"while away\n", r.stderr
	run(["sub", "-h", "127.0.0.1", "-p", str(port), "-t", b, "-i", cid, "-E"])  # clean up


def responder(port, req_topic, version="5"):
	"""A responder built from viesti sub: answers one request on its response topic with the
	correlation data echoed, using -F to print what it got."""
	# A retained probe: its line says the responder is subscribed (the caller clears it, after
	# the responder is gone: it would see the clearing message).
	ready = req_topic + "/ready"
	run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", ready, "-m", "probe", "-r"])
	p = subprocess.Popen(viesti_cmd("sub", port, "-t", req_topic, "-t", ready, "-C", "2", "-W",
		"10", "-V", version, "-F", "%R|%D|%p"), stdout=subprocess.PIPE)
	assert p.stdout.readline() == b"||probe\n"
	return p


@needs_cli
@pytest.mark.parametrize("tool", ["viesti", "mosquitto"])
def test_rr_request_response(any_broker, tool):
	port = any_broker
	req = uid("req")
	resp = uid("resp")
	seen = responder(port, req)
	if tool == "viesti":
		cmd = viesti_cmd("rr", port, "-t", req, "-e", resp, "-m", "ping", "-W", "10",
			"--correlation-data", "c-42")
	else:
		cmd = ["mosquitto_rr", "-h", "127.0.0.1", "-p", str(port), "-t", req, "-e", resp, "-m",
			"ping", "-W", "10", "-D", "publish", "correlation-data", "c-42"]
	rr = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	line, _ = seen.communicate(timeout=10)
	r_topic, corr, payload = line.rstrip(b"\n").split(b"|")
	assert (r_topic, corr, payload) == (resp.encode(), b"c-42", b"ping")
	# answer it
	r = run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", r_topic.decode(), "-m", "pong",
		"-V", "5", "-D", "publish", "correlation-data", corr.decode()])
	assert r.returncode == 0
	out, err = rr.communicate(timeout=10)
	run(["pub", "-h", "127.0.0.1", "-p", str(port), "-t", req + "/ready", "-n", "-r"])
	assert rr.returncode == 0, err
	assert out == b"pong\n"


@needs_cli
def test_rr_timeout(any_broker):
	r = run(["rr", "-h", "127.0.0.1", "-p", str(any_broker), "-t", uid("req"), "-e", uid("resp"),
		"-m", "x", "-W", "1"])
	assert r.returncode == 27
	assert b"Timed out" in r.stderr
