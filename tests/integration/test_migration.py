"""Switching from Mosquitto (issue 20): --test-config checks what the start-up checks and reports
every error; trailing comments where Mosquitto accepts them; SIGUSR1/SIGUSR2; systemd's
sd_notify protocol; Mosquitto's log line format and -v packet trace."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import Broker, TARGET_BIN, free_port, wait_until
from mqtt_raw import RawClient

pytestmark = pytest.mark.viesti_only

MOSQUITTO = "/usr/sbin/mosquitto"


def test_config(path, *extra):
	r = subprocess.run([TARGET_BIN, "broker", "-c", str(path), "--test-config", *extra],
		capture_output=True, text=True, timeout=30)
	return r.returncode, r.stdout, r.stderr


test_config.__test__ = False  # a helper, not a test


def write(path, text):
	path.write_text(text)
	return str(path)


# ---- --test-config -------------------------------------------------------------------------

def test_test_config_reports_every_startup_error(tmp_path):
	pw = write(tmp_path / "pw", "alice:plaintext\nbob:$7$101$bad$bad\n")
	acl = write(tmp_path / "acl", "topic reed x\nuser a\ntopic read a/#\ntopic foo bar\n")
	conf = write(tmp_path / "bad.conf", """
max_queued_messages 5000   # per client, as Mosquitto allows
frobnicate 1
password_file %s
acl_file %s
listener %d 127.0.0.1
certfile /nonexistent/cert.pem
keyfile /nonexistent/key.pem
cafile /nonexistent/ca.pem
listener %d 127.0.0.1
protocol websockets
http_dir /nonexistent/www
listener 0 /nonexistent/dir/viesti.sock
port abc
""" % (pw, acl, free_port(), free_port()))
	rc, out, err = test_config(conf)
	assert rc == 3, (out, err)
	assert "configuration OK" not in out
	want = [
		r"bad\.conf:3: unknown directive 'frobnicate'",
		r"bad\.conf:14: bad value 'abc' for 'port'",
		r"listener \d+ 127\.0\.0\.1: cannot read certfile '/nonexistent/cert\.pem'",
		r"listener \d+ 127\.0\.0\.1: cannot read keyfile '/nonexistent/key\.pem'",
		r"listener \d+ 127\.0\.0\.1: cannot read cafile '/nonexistent/ca\.pem'",
		r"listener \d+ 127\.0\.0\.1: http_dir '/nonexistent/www'",
		r"listener 0 /nonexistent/dir/viesti\.sock: unix socket directory '/nonexistent/dir'",
		re.escape(pw) + r":1: user 'alice': password is not a .*hash",
		re.escape(pw) + r":2: user 'bob'",
		re.escape(acl) + r":1: unknown access 'reed'",
		re.escape(acl) + r":4: unknown access 'foo'",
		r"11 error\(s\), the broker would not start",
	]
	for w in want:
		assert re.search(w, err), "missing %r in:\n%s" % (w, err)
	assert len(err.strip().splitlines()) == 12, err


def test_test_config_missing_files_and_unix_socket(tmp_path):
	(tmp_path / "notasocket").write_text("x")
	conf = write(tmp_path / "c.conf", """
password_file %s/nonexistent.pw
acl_file %s/nonexistent.acl
listener 0 %s/notasocket
listener 0 %s/ok.sock
""" % (tmp_path, tmp_path, tmp_path, tmp_path))
	rc, out, err = test_config(conf)
	assert rc == 3, err
	assert re.search(r"password_file \S*nonexistent\.pw: No such file", err), err
	assert re.search(r"acl_file \S*nonexistent\.acl: No such file", err), err
	assert re.search(r"notasocket' exists and is not a socket", err), err
	assert "ok.sock" not in err
	assert "3 error(s)" in err
	assert not (tmp_path / "ok.sock").exists()  # nothing is created


def test_test_config_unreadable_password_file(tmp_path):
	if os.geteuid() == 0:
		pytest.skip("root reads any file")
	pw = write(tmp_path / "pw", "")
	os.chmod(pw, 0)
	rc, _, err = test_config(write(tmp_path / "c.conf", "password_file %s\n" % pw))
	assert rc == 3 and "Permission denied" in err, err


def test_test_config_password_file_that_cannot_be_read(tmp_path):
	"""A directory where the password file should be: unreadable as a file, even for root."""
	(tmp_path / "pwdir").mkdir()
	rc, _, err = test_config(write(tmp_path / "c.conf", "password_file %s/pwdir\n" % tmp_path))
	assert rc == 3, err
	assert re.search(r"password_file \S*pwdir: .*expected a readable file", err), err


def test_test_config_tls_files_loaded_with_openssl(tmp_path):
	"""Files that exist but that OpenSSL refuses (a key that is not a key) fail as at start-up."""
	(tmp_path / "cert.pem").write_text("not a certificate\n")
	(tmp_path / "key.pem").write_text("not a key\n")
	conf = write(tmp_path / "c.conf", "listener %d\ncertfile %s/cert.pem\nkeyfile %s/key.pem\n"
		% (free_port(), tmp_path, tmp_path))
	rc, _, err = test_config(conf)
	assert rc == 3, err
	assert re.search(r"listener \d+: .*cert", err), err
	b = Broker(tmp_path, [], "same")  # the start-up refuses it for the same reason
	b.lines = open(conf).read().splitlines()
	b.write_conf()
	r = subprocess.run(b.command(), capture_output=True, text=True, timeout=30)
	assert r.returncode != 0
	first = [l for l in err.splitlines() if "listener" in l][0].split("viesti broker: ")[1]
	assert first in r.stderr + r.stdout, (first, r.stderr)


def test_test_config_good_file_is_ok(tmp_path):
	conf = write(tmp_path / "c.conf", "listener %d 127.0.0.1 # local\nallow_anonymous true\n"
		"listener 0 %s/b.sock\n" % (free_port(), tmp_path))
	rc, out, err = test_config(conf)
	assert rc == 0, err
	assert "configuration OK" in out


# ---- trailing comments ---------------------------------------------------------------------

COMMENTED = """
listener {port} 127.0.0.1   # the local listener
allow_anonymous false # nobody without a name
max_queued_messages 5000   # per client
persistence false # not here
log_type error # only errors
log_type warning
"""


def connack_rc(port, username=None):
	c = RawClient(port, version=4)
	try:
		return c.connect("cmt", expect_rc=None, username=username).rc
	finally:
		c.close()


@pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="no Debian mosquitto")
def test_trailing_comments_mean_what_they_mean_in_mosquitto(tmp_path):
	results = {}
	for target in ("mosquitto", "viesti"):
		port = free_port()
		conf = tmp_path / (target + ".conf")
		text = COMMENTED.format(port=port)
		if target == "mosquitto" and os.geteuid() == 0:
			text += "user root\n"
		conf.write_text(text)
		cmd = [MOSQUITTO, "-c", str(conf)] if target == "mosquitto" else \
			[TARGET_BIN, "broker", "-c", str(conf)]
		p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
		try:
			def up():
				assert p.poll() is None, p.stderr.read()
				try:
					socket.create_connection(("127.0.0.1", port), 0.2).close()
					return True
				except OSError:
					return False
			wait_until(up, 10, what=target + " listening")
			results[target] = connack_rc(port)
		finally:
			p.terminate()
			p.wait(10)
	assert results["viesti"] == results["mosquitto"] == 5, results


@pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="no Debian mosquitto")
def test_hash_in_a_string_value_is_no_comment_in_either(tmp_path):
	pw = tmp_path / "pw"
	pw.write_text("")
	conf = tmp_path / "c.conf"
	conf.write_text("listener %d 127.0.0.1\npassword_file %s # not a comment\n%s"
		% (free_port(), pw, "user root\n" if os.geteuid() == 0 else ""))
	m = subprocess.run([MOSQUITTO, "-c", str(conf)], capture_output=True, text=True, timeout=10)
	assert m.returncode != 0  # mosquitto looks for the file "PATH # not a comment"
	rc, _, err = test_config(conf)
	assert rc == 3 and "# not a comment: No such file" in err, err


# ---- SIGUSR1 / SIGUSR2 ---------------------------------------------------------------------

def test_sigusr1_snapshot_and_sigusr2_dump_keep_serving(broker, tmp_path):
	store = tmp_path / "store"
	store.mkdir()
	b = broker("persistence true", "persistence_location %s/" % store, "threads 2")
	sub = RawClient(b.port, version=4)
	sub.connect("usr-sub", clean=False)
	sub.subscribe([("usr/a/#", 1)])
	pub = RawClient(b.port, version=4)
	pub.connect("usr-pub")
	sdir = store / "mosquitto.db.d"
	before = set(os.listdir(sdir))

	b.proc.send_signal(signal.SIGUSR1)
	b.wait_log(r"SIGUSR1: writing a persistence snapshot")
	b.wait_log(r"persistence: snapshot written in \d+ ms")
	new = set(os.listdir(sdir)) - before
	assert any(n.startswith("snap") for n in new), (before, os.listdir(sdir))

	b.proc.send_signal(signal.SIGUSR2)
	b.wait_log(r"SIGUSR2: \d+ session\(s\), 2 worker thread\(s\)")
	b.wait_log(r"SIGUSR2: session usr-sub: 1 subscription\(s\): usr/a/# \(QoS 1\)")
	b.wait_log(r"SIGUSR2: session usr-pub: 0 subscription\(s\)")
	b.wait_log(r"SIGUSR2: worker 0: \d+ connection\(s\)")
	b.wait_log(r"SIGUSR2: worker 1: \d+ connection\(s\)")

	assert b.alive()
	pub.publish("usr/a/b", b"still here", qos=1, pid=1)
	p = sub.expect(3)  # PUBLISH
	assert p.payload == b"still here"
	sub.ping()
	sub.close()
	pub.close()


def test_sigusr1_without_persistence_says_so(broker):
	b = broker()
	b.proc.send_signal(signal.SIGUSR1)
	b.wait_log(r"SIGUSR1: persistence is off, no snapshot to write")
	c = RawClient(b.port, version=4)
	c.connect("after-usr1")
	c.ping()
	c.close()
	assert b.alive()


# ---- systemd's sd_notify -------------------------------------------------------------------

class NotifySocket:
	def __init__(self, path):
		self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
		self.sock.bind(path if path[0] != "@" else "\0" + path[1:])
		self.sock.setblocking(False)
		self.got = []

	def poll(self):
		"""What has arrived so far (never waits: wait_until paces the polling)."""
		try:
			while True:
				self.got.append(self.sock.recv(4096).decode())
		except BlockingIOError:
			pass
		return self.got

	def wait(self, pred, what, timeout=10):
		return wait_until(lambda: pred(self.poll()), timeout, what=what + " in %r" % self.got)


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_ready_reloading_stopping(broker, tmp_path, abstract):
	path = "@viesti-test-%d-%d" % (os.getpid(), time.monotonic_ns()) if abstract \
		else str(tmp_path / "notify.sock")
	ns = NotifySocket(path)
	b = broker(env={"NOTIFY_SOCKET": path})
	ns.wait(lambda g: any("READY=1" in m.split("\n") for m in g), "READY=1")
	b.proc.send_signal(signal.SIGHUP)
	ns.wait(lambda g: any(m.startswith("RELOADING=1") for m in g), "RELOADING=1")
	rel = [m for m in ns.got if m.startswith("RELOADING=1")][0]
	usec = int(re.search(r"MONOTONIC_USEC=(\d+)", rel).group(1))
	assert abs(usec / 1e6 - time.monotonic()) < 60  # the same clock as ours
	i = ns.got.index(rel)
	ns.wait(lambda g: any("READY=1" in m.split("\n") for m in g[i + 1:]), "READY=1 after reload")
	assert b.stop() is None
	ns.wait(lambda g: any(m.startswith("STOPPING=1") for m in g), "STOPPING=1")


def test_sd_notify_watchdog(broker, tmp_path):
	path = str(tmp_path / "wd.sock")
	ns = NotifySocket(path)
	broker("threads 2", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
	ns.wait(lambda g: sum(m == "WATCHDOG=1" for m in g) >= 3, "three WATCHDOG=1")


def test_sd_notify_watchdog_for_another_pid_is_not_ours(broker, tmp_path):
	path = str(tmp_path / "wd2.sock")
	ns = NotifySocket(path)
	broker(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
	ns.wait(lambda g: any("READY=1" in m for m in g), "READY=1")
	b2 = broker(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # a witness
	ns.wait(lambda g: any(m == "WATCHDOG=1" for m in g), "the witness's WATCHDOG=1")
	b2.stop()
	# Both sent to one socket; only the witness (its own WATCHDOG_PID unset) pings.
	assert sum("READY=1" in m for m in ns.got) == 2


# ---- log_format mosquitto and the -v packet trace -----------------------------------------

TRACE = re.compile(r"^(New connection from|New client connected|No will message|Will message|"
	r"Sending |Received |\t|Client \S+ disconnected|subX |pubX )")


def normalise(text):
	"""Mosquitto-format lines without their time, with addresses and ports replaced."""
	out = []
	for line in text.splitlines():
		m = re.match(r"^\d+: (.*)$", line)
		assert m or not line.strip(), "not Mosquitto's format: %r" % line
		if not m or not TRACE.match(m.group(1)):
			continue
		s = re.sub(r"127\.0\.0\.1:\d+", "ADDR", m.group(1))
		out.append(re.sub(r"on port \d+", "on port PORT", s))
	return out


def per_client(lines):
	"""Each client's lines in order ('\\t' lines belong to the line before)."""
	by, last = {}, None
	for line in lines:
		if not line.startswith("\t"):
			ids = re.findall(r"\b(subX|pubX)\b", line)
			last = ids[0] if ids else "ADDR"
		by.setdefault(last, []).append(line)
	return by


def client_actions(port):
	sub = RawClient(port, version=4)
	sub.connect("subX")
	sub.subscribe([("t/a", 1)])
	pub = RawClient(port, version=4)
	pub.connect("pubX")
	pub.publish("t/a", b"hello", qos=1, pid=1)  # waits for its PUBACK
	p = sub.expect(3)
	sub.puback(p.pid)
	pub.ping()
	pub.publish("t/b", b"x", qos=0)
	pub.disconnect()
	sub.unsubscribe(["t/a"])  # waits for its UNSUBACK
	sub.ping()
	sub.disconnect()


def run_and_log(cmd, log_path, port):
	p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
	try:
		def up():
			assert p.poll() is None
			try:
				socket.create_connection(("127.0.0.1", port), 0.2).close()
				return True
			except OSError:
				return False
		wait_until(up, 10, what="listening")
		client_actions(port)
		wait_until(lambda: "Client subX disconnected." in open(log_path).read(), 10,
			what="the last client's disconnection in the log")
	finally:
		p.send_signal(signal.SIGTERM)
		p.wait(10)
	return open(log_path).read()


@pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="no Debian mosquitto")
def test_log_format_mosquitto_matches_mosquittos_trace(tmp_path):
	logs = {}
	for target in ("mosquitto", "viesti"):
		port = free_port()
		conf = tmp_path / (target + ".conf")
		log_path = str(tmp_path / (target + ".log"))
		text = "listener %d 127.0.0.1\nallow_anonymous true\nlog_type all\nlog_dest file %s\n" \
			% (port, log_path)
		if target == "mosquitto":
			text += "user root\n" if os.geteuid() == 0 else ""
			cmd = [MOSQUITTO, "-c", str(conf)]
		else:
			text += "log_format mosquitto\nthreads 1\n"
			cmd = [TARGET_BIN, "broker", "-c", str(conf)]
		conf.write_text(text)
		logs[target] = normalise(run_and_log(cmd, log_path, port))
	m, v = logs["mosquitto"], logs["viesti"]
	assert "Client subX disconnected." in m and len(m) > 20, m
	assert sorted(v) == sorted(m), "\nmosquitto:\n%s\nviesti:\n%s" % ("\n".join(m), "\n".join(v))
	assert per_client(v) == per_client(m)


def test_log_format_viesti_is_the_default_and_trace_only_with_debug(broker):
	b = broker()
	c = RawClient(b.port, version=4)
	c.connect("quiet")
	c.ping()
	c.disconnect()
	b.wait_log(r"client quiet \(\S+\) disconnected")
	text = b.log_text()
	assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info: client quiet", text, re.M)
	assert "Received PINGREQ" not in text


def test_log_format_mosquitto_with_timestamp_format(broker):
	b = broker("log_format mosquitto", "log_timestamp_format %Y-%m-%dT%H:%M:%S", "log_type all")
	c = RawClient(b.port, version=4)
	c.connect("fmt")
	c.ping()
	c.disconnect()
	b.wait_log(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: Client fmt disconnected\.$")
	b.wait_log(r"^\S+: Received PINGREQ from fmt$")
	b.wait_log(r"^\S+: Sending PINGRESP to fmt$")
