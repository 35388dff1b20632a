"""`viesti passwd` and the password / ACL file formats, checked against Mosquitto itself.

- Files written by `viesti passwd` are loaded by /usr/sbin/mosquitto (password_file, allow_anonymous
  false): the right password connects, a wrong one is refused.
- The command behaves like mosquitto_passwd (options, exit codes) and keeps what it does not manage.
- The ACL decision table of tests/unit/test_auth_acl.c is replayed against Mosquitto 2.0, so the
  unit table states Mosquitto's behaviour, not our reading of it.
- The broker's password_file / acl_file (viesti, or Mosquitto with VIESTI_TARGET=mosquitto) pass
  the same checks through the `broker` fixture.

These tests need the viesti binary (VIESTI_BIN, else build-san/viesti or build/viesti) and
mosquitto + mosquitto_passwd + mosquitto_pub; each skips without what it needs.
"""

import os
import select
import shutil
import socket
import stat
import subprocess
import time

import pytest

from conftest import REPO, TARGET, free_port, wait_until
from helpers import PahoClient, uid

MOSQUITTO = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def _viesti_bin():
	for p in (os.environ.get("VIESTI_BIN"), os.path.join(REPO, "build-san", "viesti"),
			os.path.join(REPO, "build", "viesti")):
		if p and os.access(p, os.X_OK):
			return p
	return None


VIESTI = _viesti_bin()
need_viesti = pytest.mark.skipif(VIESTI is None, reason="no viesti binary (set VIESTI_BIN)")
need_mosquitto = pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK),
	reason="no mosquitto broker at %s" % MOSQUITTO)
need_mosquitto_passwd = pytest.mark.skipif(not os.access(MOSQUITTO_PASSWD, os.X_OK),
	reason="no mosquitto_passwd")


@pytest.fixture(autouse=True)
def _no_viesti_broker_needed():
	"""conftest skips every test when the *broker* binary is missing; these tests decide
	for themselves what they need (see the marks)."""
	yield


def vp(*args, stdin=None, check=None):
	"""Runs `viesti passwd ARGS`; returns CompletedProcess (text)."""
	r = subprocess.run([VIESTI, "passwd"] + [str(a) for a in args], input=stdin,
		capture_output=True, text=True, timeout=30)
	if check is not None:
		assert r.returncode == check, "exit %d, stderr: %s" % (r.returncode, r.stderr)
	return r


def lines(path):
	with open(path) as f:
		return f.read().splitlines()


class Mosquitto:
	"""A real Mosquitto with our password / ACL files, on a free port."""

	def __init__(self, tmp_path, *conf_lines, anonymous=False):
		self.port = free_port()
		self.conf = tmp_path / ("mosq-%d.conf" % self.port)
		self.log = tmp_path / ("mosq-%d.log" % self.port)
		with open(self.conf, "w") as f:
			# As root, Mosquitto drops to the `mosquitto` user and then cannot read pytest's
			# private tmp dir; `user root` keeps it (ignored when not root).
			f.write("user root\nlistener %d 127.0.0.1\nallow_anonymous %s\n" % (
				self.port, "true" if anonymous else "false"))
			for line in conf_lines:
				f.write(line + "\n")
		self.logf = open(self.log, "wb")
		self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=self.logf,
			stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

		def ready():
			if self.proc.poll() is not None:
				raise AssertionError("mosquitto exited: %s" % self.log.read_text())
			try:
				socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
				return True
			except OSError:
				return False

		wait_until(ready, 10, what="mosquitto to listen")

	def stop(self):
		if self.proc.poll() is None:
			self.proc.terminate()
			self.proc.wait(10)
		self.logf.close()


@pytest.fixture
def mosquitto(tmp_path):
	made = []

	def make(*conf_lines, anonymous=False):
		m = Mosquitto(tmp_path, *conf_lines, anonymous=anonymous)
		made.append(m)
		return m

	yield make
	for m in made:
		m.stop()


def mosq_pub(port, user, password):
	"""Connects with mosquitto_pub -u/-P and publishes; returns its exit status."""
	r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P",
		password, "-t", "auth/test", "-m", "x"], capture_output=True, timeout=10)
	return r.returncode


# ---- viesti passwd files, verified by Mosquitto ----

@need_viesti
@need_mosquitto
def test_mosquitto_accepts_viesti_passwd_files(tmp_path, mosquitto):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "alice", "secret", check=0)
	vp("-b", pw, "bob", "p@ss:word with spaces", check=0)
	vp("-H", "sha512", "-b", pw, "carol", "hunter2", check=0)
	vp("-I", "1000", "-b", pw, "dave", "x", check=0)
	vp("-b", pw, "erin", "", check=0)  # mosquitto_passwd -b accepts an empty password too
	m = mosquitto("password_file %s" % pw)
	assert mosq_pub(m.port, "alice", "secret") == 0
	assert mosq_pub(m.port, "bob", "p@ss:word with spaces") == 0
	assert mosq_pub(m.port, "carol", "hunter2") == 0
	assert mosq_pub(m.port, "dave", "x") == 0
	assert mosq_pub(m.port, "alice", "wrong") != 0
	assert mosq_pub(m.port, "alice", "secret ") != 0
	assert mosq_pub(m.port, "carol", "secret") != 0
	assert mosq_pub(m.port, "nobody", "secret") != 0


@need_viesti
@need_mosquitto
def test_mosquitto_sees_updates_and_deletes(tmp_path, mosquitto):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "alice", "one", check=0)
	vp("-b", pw, "bob", "b", check=0)
	vp("-b", pw, "alice", "two", check=0)  # replaces alice's line in place
	vp("-D", pw, "bob", check=0)
	assert [l.split(":")[0] for l in lines(pw)] == ["alice"]
	m = mosquitto("password_file %s" % pw)
	assert mosq_pub(m.port, "alice", "two") == 0
	assert mosq_pub(m.port, "alice", "one") != 0
	assert mosq_pub(m.port, "bob", "b") != 0


@need_viesti
@need_mosquitto
def test_mosquitto_accepts_u_converted_file(tmp_path, mosquitto):
	pw = tmp_path / "pw"
	pw.write_text("# plain\nalice:secret\nbob:b:with:colons\r\n")
	vp("-U", pw, check=0)
	assert lines(pw)[0] == "# plain"
	assert all(l.split(":", 1)[1].startswith("$7$101$") for l in lines(pw)[1:])
	m = mosquitto("password_file %s" % pw)
	assert mosq_pub(m.port, "alice", "secret") == 0
	assert mosq_pub(m.port, "bob", "b:with:colons") == 0


# ---- the command itself ----

@need_viesti
def test_hash_formats(tmp_path):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "a", "x", check=0)
	vp("-H", "sha512", "-b", pw, "b", "x", check=0)
	vp("-H", "sha512-pbkdf2", "-I", "7", "-b", pw, "c", "x", check=0)
	a, b, c = [l.split(":", 1)[1] for l in lines(pw)]
	assert a.startswith("$7$101$") and len(a) == len("$7$101$") + 16 + 1 + 88
	assert b.startswith("$6$") and len(b) == 3 + 16 + 1 + 88 and b.count("$") == 3
	assert c.startswith("$7$7$")


@need_viesti
def test_create_reads_stdin_once_or_twice(tmp_path):
	pw = tmp_path / "pw"
	vp("-c", pw, "alice", stdin="secret\n", check=0)
	vp(pw, "bob", stdin="same\nsame\n", check=0)
	assert [l.split(":")[0] for l in lines(pw)] == ["alice", "bob"]
	r = vp(pw, "carol", stdin="one\ntwo\n", check=2)
	assert "Passwords do not match" in r.stderr
	r = vp("-c", tmp_path / "new", "u", stdin="", check=1)
	assert "Empty password" in r.stderr
	r = vp("-c", tmp_path / "new", "u", stdin="\n", check=1)
	assert not (tmp_path / "new").exists()
	assert [l.split(":")[0] for l in lines(pw)] == ["alice", "bob"]


@need_viesti
def test_create_overwrites(tmp_path):
	pw = tmp_path / "pw"
	pw.write_text("old:stuff\n# gone\n")
	vp("-c", "-b", pw, "new", "x", check=0)
	assert [l.split(":")[0] for l in lines(pw)] == ["new"]


@need_viesti
def test_other_lines_are_kept_byte_for_byte(tmp_path):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "a", "x", check=0)
	original = (b"# users of the plant\n\n" + pw.read_bytes() +
		b"  # indented\r\nb:$6$kept$as-is\n")
	pw.write_bytes(original)
	vp("-b", pw, "c", "y", check=0)
	data = pw.read_bytes()
	assert data.startswith(original)
	assert data[len(original):].startswith(b"c:$7$101$")
	vp("-D", pw, "c", check=0)
	assert pw.read_bytes() == original


@need_viesti
def test_missing_final_newline_gets_one_before_append(tmp_path):
	pw = tmp_path / "pw"
	pw.write_text("# no newline at end")
	vp("-b", pw, "u", "p", check=0)
	assert lines(pw)[0] == "# no newline at end"
	assert lines(pw)[1].startswith("u:$7$")


@need_viesti
def test_errors_and_exit_codes_match_mosquitto_passwd(tmp_path):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "a", "x", check=0)
	before = pw.read_text()
	r = vp("-D", pw, "nobody", check=1)
	assert "Warning: User nobody not found in password file." in r.stderr
	r = vp("-b", tmp_path / "missing", "u", "p", check=1)
	assert "Unable to open password file" in r.stderr
	assert "Username must not contain the ':' character" in vp("-b", pw, "a:b", "p", check=1).stderr
	assert "Unknown hash type 'md5'" in vp("-H", "md5", "-b", pw, "u", "p", check=1).stderr
	assert "Number of iterations must be > 0" in vp("-I", "0", "-b", pw, "u", "p", check=1).stderr
	assert "Number of iterations must be > 0" in vp("-I", "x", "-b", pw, "u", "p", check=1).stderr
	assert "cannot be used together" in vp("-c", "-D", pw, "u", check=1).stderr
	vp("-U", "-b", pw, "u", "p", check=1)
	assert "usage:" in vp("-b", pw, "u", check=1).stderr
	assert "usage:" in vp("-b", pw, "u", "p", "extra", check=1).stderr
	assert "usage:" in vp(check=1).stderr
	assert "Unknown option" in vp("-x", pw, "u", check=1).stderr
	assert pw.read_text() == before
	r = vp("--help", check=0)
	assert "usage: viesti passwd" in r.stdout
	assert vp("-h", check=0).stdout == r.stdout


@need_viesti
def test_u_leaves_hashes_and_refuses_damaged_ones(tmp_path):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "a", "x", check=0)
	pw.write_text(pw.read_text() + "b:plain\n")
	vp("-U", pw, check=0)
	first = lines(pw)
	vp("-U", pw, check=0)
	assert lines(pw) == first  # no hash of a hash
	pw.write_text("a:$7$101$damaged\nb:plain\n")
	r = vp("-U", pw, check=1)
	assert "line 1" in r.stderr
	assert pw.read_text() == "a:$7$101$damaged\nb:plain\n"
	pw.write_text("a:plain\nnot a user line\n")
	r = vp("-U", pw, check=1)
	assert "Corrupt password file at line 2" in r.stderr


@need_viesti
def test_writes_are_atomic_and_keep_the_mode(tmp_path):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "a", "x", check=0)
	os.chmod(pw, 0o640)
	ino = os.stat(pw).st_ino
	vp("-b", pw, "b", "y", check=0)
	st = os.stat(pw)
	assert stat.S_IMODE(st.st_mode) == 0o640
	assert st.st_ino != ino  # a new file renamed over the old one
	assert sorted(os.listdir(tmp_path)) == ["pw"]  # no temporary left behind
	link = tmp_path / "link"
	os.symlink("pw", link)
	vp("-b", link, "c", "z", check=0)
	assert os.path.islink(link)
	assert [l.split(":")[0] for l in lines(pw)] == ["a", "b", "c"]


@need_viesti
@need_mosquitto_passwd
def test_mosquitto_passwd_edits_viesti_files_and_back(tmp_path):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "a", "x", check=0)
	subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), "b", "y"], check=True, timeout=10)
	vp("-b", pw, "c", "z", check=0)
	subprocess.run([MOSQUITTO_PASSWD, "-D", str(pw), "a"], check=True, timeout=10)
	assert [l.split(":")[0] for l in lines(pw)] == ["b", "c"]


# ---- the ACL decision table, replayed against Mosquitto ----

# The ACL of tests/unit/test_auth_acl.c (table_acl), plus helpers: `observer` reads everything,
# `writer` writes everything, and sentinel/%c lets each client prove its turn has passed.
TABLE_ACL = """# anonymous clients
topic read public/#
topic deny public/secret
topic write anon/in

user alice
topic readwrite alice/#
topic deny alice/private/#
topic read $SYS/#
topic read shared/+/status
pattern readwrite both/%u/%c

user bob
topic #

user alice
topic write extra/alice

pattern read devices/%c/#
pattern write users/%u/out
pattern deny devices/%c/locked

user observer
topic read #
user writer
topic write #
pattern readwrite sentinel/%c
"""

R, W = "read", "write"
# Rows of the unit table that a real broker can show (no '$' topics, which Mosquitto's broker
# refuses to publish, no topic names holding wildcards, no missing client id):
# (client id, username, topic, access, allowed).
TABLE_ROWS = [
	("c1", None, "public/x", R, True),
	("c1", None, "public", R, True),
	("c1", None, "public/secret", R, False),
	("c1", None, "public/x", W, False),
	("c1", None, "anon/in", W, True),
	("c1", None, "anon/in", R, False),
	("c1", None, "devices/c1/temp", R, True),
	("c1", None, "devices/c1", R, True),
	("c1", None, "devices/c2/temp", R, False),
	("c1", None, "devices/c1/temp", W, False),
	("c1", None, "devices/c1/locked", R, False),
	("c1", None, "users/c1/out", W, False),
	("c1", "alice", "alice/x", R, True),
	("c1", "alice", "alice/x", W, True),
	("c1", "alice", "alice", W, True),
	("c1", "alice", "alice/private/x", R, False),
	("c1", "alice", "alice/private", R, False),
	("c1", "alice", "extra/alice", W, True),
	("c1", "alice", "extra/alice", R, False),
	("c1", "alice", "public/x", R, False),
	("c1", "alice", "shared/a/status", R, True),
	("c1", "alice", "shared/a/b/status", R, False),
	("c1", "alice", "users/alice/out", W, True),
	("c1", "alice", "users/bob/out", W, False),
	("c1", "alice", "devices/c1/x", R, True),
	("c1", "alice", "both/alice/c1", R, True),
	("c1", "alice", "both/alice/c2", R, False),
	("c1", "bob", "anything/at/all", R, True),
	("c1", "bob", "a", W, True),
	("c1", "bob", "devices/c1/locked", R, True),
	("k", "carl", "devices/k/a", R, True),
	("k", "carl", "public/x", R, False),
	("k", "carl", "users/carl/out", W, True),
	("k", "carl", "devices/k/locked", R, False),
	("a+b", None, "public/x", R, True),
	("+", None, "devices/zz/x", R, False),
	("c", "+", "users/zz/out", W, False),
	("a/b", None, "devices/a/b/x", R, True),
]


def _client(port, cid, user):
	return PahoClient(port, client_id=cid, username=user, password="pw" if user else None)


def _delivered(receiver, topic, sentinel, timeout):
	"""Collects messages until `sentinel` arrives (or timeout); whether `topic` came first."""
	seen = False
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		try:
			m = receiver.messages.get(timeout=max(0.01, deadline - time.monotonic()))
		except Exception:
			break
		if m.topic == topic:
			seen = True
		if sentinel and m.topic == sentinel:
			break
	return seen


def _decide(port, cid, user, topic, access):
	# Clients whose id holds '+' or '#' get no pattern, so no sentinel: wait instead.
	sentinel = None if any(ch in cid for ch in "+#") else "sentinel/" + cid
	timeout = 5.0 if sentinel else 0.7
	if access == R:
		reader = _client(port, cid, user)
		writer = _client(port, uid("w"), "writer")
		try:
			reader.subscribe("#", qos=1)
			writer.publish(topic, b"t", qos=1)
			if sentinel:
				writer.publish(sentinel, b"s", qos=1)
			return _delivered(reader, topic, sentinel, timeout)
		finally:
			reader.close()
			writer.close()
	observer = _client(port, uid("o"), "observer")
	pub = _client(port, cid, user)
	try:
		observer.subscribe("#", qos=1)
		pub.publish(topic, b"t", qos=1)
		if sentinel:
			pub.publish(sentinel, b"s", qos=1)
		return _delivered(observer, topic, sentinel, timeout)
	finally:
		observer.close()
		pub.close()


def _acl_setup(tmp_path):
	acl = tmp_path / "acl"
	acl.write_text(TABLE_ACL)
	pw = tmp_path / "pw"
	pw.write_text("")
	return acl, pw


@need_mosquitto
@need_mosquitto_passwd
def test_acl_table_is_mosquittos_behaviour(tmp_path, mosquitto):
	acl, pw = _acl_setup(tmp_path)
	for user in ("alice", "bob", "carl", "+", "observer", "writer"):
		subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), user, "pw"], check=True, timeout=10)
	m = mosquitto("password_file %s" % pw, "acl_file %s" % acl, anonymous=True)
	wrong = []
	for cid, user, topic, access, want in TABLE_ROWS:
		got = _decide(m.port, cid, user, topic, access)
		if got != want:
			wrong.append((cid, user, topic, access, want, got))
	assert not wrong, "Mosquitto disagrees with the unit table on: %r" % (wrong,)


@need_mosquitto
def test_mosquitto_acl_file_allows_every_subscribe(tmp_path, mosquitto):
	"""Why vs_acl_check(..., VS_ACL_SUBSCRIBE) is always 1: Mosquitto 2.0 grants the SUBACK and
	filters each delivered message by read access instead."""
	acl, _ = _acl_setup(tmp_path)
	m = mosquitto("acl_file %s" % acl, anonymous=True)
	c = _client(m.port, "c1", None)
	try:
		granted = c.subscribe("nothing/#", qos=1)
		assert tuple(granted) == (1, )
	finally:
		c.close()


# ---- the broker's password_file / acl_file (through the conftest `broker` fixture) ----

def _broker_auth_lines(*lines):
	extra = ["user root"] if TARGET == "mosquitto" else []
	return extra + ["allow_anonymous false"] + list(lines)


@need_viesti
def test_broker_password_file(tmp_path, broker):
	pw = tmp_path / "pw"
	vp("-c", "-b", pw, "alice", "secret", check=0)
	b = broker(*_broker_auth_lines("password_file %s" % pw))
	assert mosq_pub(b.port, "alice", "secret") == 0
	assert mosq_pub(b.port, "alice", "wrong") != 0
	assert mosq_pub(b.port, "bob", "secret") != 0


@need_viesti
def test_broker_acl_file(tmp_path, broker):
	acl, pw = _acl_setup(tmp_path)
	for user in ("alice", "bob", "carl", "+", "observer", "writer"):
		vp("-b", pw, user, "pw", check=0)
	b = broker(*_broker_auth_lines("password_file %s" % pw, "acl_file %s" % acl,
		"allow_anonymous true"))
	wrong = []
	for cid, user, topic, access, want in TABLE_ROWS:
		got = _decide(b.port, cid, user, topic, access)
		if got != want:
			wrong.append((cid, user, topic, access, want, got))
	assert not wrong, "broker disagrees with the ACL table on: %r" % (wrong,)


@need_viesti
def test_terminal_prompts_twice_without_echo(tmp_path):
	import pty
	pw = tmp_path / "pw"
	pid, fd = pty.fork()
	if pid == 0:
		os.execv(VIESTI, [VIESTI, "passwd", "-c", str(pw), "tty"])
	out = b""

	def read_until(token, timeout=5.0):
		nonlocal out
		deadline = time.monotonic() + timeout
		while token not in out and time.monotonic() < deadline:
			ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
			if not ready:
				break
			try:
				out += os.read(fd, 1000)
			except OSError:
				break
		assert token in out, out

	reaped = False
	try:
		read_until(b"Password: ")
		os.write(fd, b"s3cret\n")
		read_until(b"Reenter password: ")
		os.write(fd, b"s3cret\n")
		read_until(b"\n", timeout=5.0)
		deadline = time.monotonic() + 10
		while True:
			done, status = os.waitpid(pid, os.WNOHANG)
			if done:
				reaped = True
				break
			assert time.monotonic() < deadline, "viesti passwd did not exit: %r" % out
			time.sleep(0.02)
	finally:
		if not reaped:
			os.kill(pid, 9)
			os.waitpid(pid, 0)
		os.close(fd)
	assert os.waitstatus_to_exitcode(status) == 0
	assert b"s3cret" not in out  # echo was off
	assert lines(pw)[0].startswith("tty:$7$101$")
