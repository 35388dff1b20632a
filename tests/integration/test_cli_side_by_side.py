"""viesti pub / sub / rr and mosquitto_pub / mosquitto_sub / mosquitto_rr run with the same
arguments: the exit status and stderr must be the same (the program name aside), and stdout too
where mosquitto's is deterministic (-d debug lines with a fixed client id, --pretty JSON).

Covers the argument refusals (bad values, -i with -I, -P without -u, -D connect with -V 311,
...), the exit codes of a refused connection (the CONNACK's reason code) and of a failed one (1),
the connection flags --unix, -A, -M, --nodelay, --proxy (a SOCKS5 proxy written here), and
sub's --random-filter and --pretty. -S (SRV lookups) is a Viesti addition: Debian's mosquitto
clients are built without it.
"""

import os
import select
import socket
import struct
import subprocess
import threading
import uuid

import pytest

import conftest
from test_cli_parity import MOSQUITTO, VIESTI, Mosquitto, any_broker, needs_cli  # noqa: F401

MOSQ_TOOLS = {t: "/usr/bin/mosquitto_" + t for t in ("pub", "sub", "rr")}
needs_mosq = pytest.mark.skipif(not all(os.access(p, os.X_OK) for p in MOSQ_TOOLS.values()) or
	not os.access(MOSQUITTO, os.X_OK), reason="no Debian mosquitto and mosquitto-clients")


def both(tool, args, timeout=20, input=None):
	"""Runs mosquitto_<tool> and viesti <tool> with args: [(rc, stdout, stderr)] * 2, the
	program's name in stderr replaced by TOOL."""
	out = []
	for cmd, name in (([MOSQ_TOOLS[tool]], "mosquitto_" + tool), ([VIESTI, tool], "viesti " + tool)):
		r = subprocess.run(cmd + list(args), capture_output=True, timeout=timeout,
			input=input if input is not None else b"")
		out.append((r.returncode, r.stdout, r.stderr.replace(name.encode(), b"TOOL")))
	return out


def assert_same(tool, args, stdout=True, **kw):
	(mrc, mout, merr), (vrc, vout, verr) = both(tool, args, **kw)
	assert (vrc, verr) == (mrc, merr), (args, (vrc, verr), (mrc, merr))
	if stdout:
		assert vout == mout, (args, vout, mout)
	return mrc, merr


_HELD = []


def closed_port():
	"""A port where a connection is refused: bound here, never listening, held until the end of
	the run so that no broker started by another test meanwhile can take it."""
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	_HELD.append(s)
	return str(s.getsockname()[1])


# Argument errors and the checks made before connecting; the port has no broker, so a case that
# gets as far as connecting fails the same way in both tools ("Error: Connection refused").
ARG_CASES = [
	("pub", ["-t", "a", "-m", "x", "-i", "a", "-I", "b"]),
	("pub", ["-t", "a", "-m", "x", "-I", "b", "-i", "a"]),
	("sub", ["-t", "a", "--id-prefix", "b", "--id", "a"]),
	("pub", ["-t", "a", "-m", "x", "-P", "secret"]),
	("pub", ["-t", "a", "-m", "x", "-P", "secret", "-V", "31"]),
	("sub", ["-t", "a", "-P", "secret"]),
	("pub", ["-t", "a", "-m", "x", "-D", "connect", "session-expiry-interval", "5", "-V", "311"]),
	("sub", ["-t", "a", "-D", "connect", "receive-maximum", "5", "-V", "mqttv31"]),
	("pub", ["-t", "a", "-m", "x", "-k", "3"]),
	("pub", ["-t", "a", "-m", "x", "-k", "70000"]),
	("pub", ["-t", "a", "-m", "x", "-q", "3"]),
	("pub", ["-t", "a", "-m", "x", "--will-qos", "3", "--will-topic", "w"]),
	("pub", ["-t", "a", "-m", "x", "--will-payload", "p"]),
	("pub", ["-t", "a", "-m", "x", "--will-retain"]),
	("pub", ["-t", "a", "-m", "x", "--will-topic", "w/+"]),
	("pub", ["-t", "a", "-m", "x", "-c"]),
	("pub", ["-t", "a", "-m", "x", "-c", "-I", "pre"]),
	("pub", ["-t", "a", "-m", "x", "-c", "-V", "5"]),
	("pub", ["-t", "a", "-m", "x", "-x", "-1", "-V", "5"]),
	("pub", ["-t", "a", "-m", "x", "-x", "abc"]),
	("pub", ["-t", "a", "-m", "x", "-x", "5000000000"]),
	("pub", ["-t", "a", "-m", "x", "-p", "70000"]),
	("pub", ["-t", "a", "-m", "x", "-M", "0"]),
	("pub", ["-t", "a", "-m", "x", "-M"]),
	("pub", ["-t", "a", "-m", "x", "-m", "y"]),
	("pub", ["-t", "a/+", "-m", "x"]),
	("pub", ["-t", "a", "-m", "x", "--repeat", "0"]),
	("pub", ["-t", "a", "-m", "x", "--repeat-delay", "-1"]),
	("pub", ["-t", "a", "-m", "x", "-V", "4"]),
	("pub", ["-t", "a", "-m", "x", "-L", "foo://h/t"]),
	("pub", ["-t", "a", "-m", "x", "-h"]),
	("pub", ["-t", "a", "-m", "x", "-A"]),
	("pub", ["-t", "a", "-m", "x", "--unix"]),
	("pub", ["-t", "a", "-m", "x", "-D", "connect"]),
	("pub", ["-t", "a", "-m", "x", "-D", "bogus", "content-type", "x"]),
	("pub", ["-t", "a", "-m", "x", "-D", "connect", "bogus", "1"]),
	("pub", ["-t", "a", "-m", "x", "-D", "connect", "content-type", "x"]),
	("pub", ["-t", "a", "-m", "x", "--proxy", "socks5://127.0.0.1:1080"]),
	("pub", ["-t", "a", "-m", "x", "--proxy", "socks5h://"]),
	("pub", ["-t", "a", "-m", "x", "--proxy", "socks5h://host:0"]),
	("pub", ["-t", "a", "-m", "x", "--proxy"]),
	("pub", ["-t", "a", "-m", "x", "--bogus"]),
	("sub", ["-t", "a", "-C", "0"]),
	("sub", ["-t", "a", "-C"]),
	("sub", ["-t", "a", "-W", "0"]),
	("sub", ["-t", "a", "-R", "--retained-only"]),
	("sub", ["-t", "a", "-U", "a/#/b"]),
	("sub", ["-t", "a/#/b"]),
	("sub", ["-t", "a", "-T", "a/+b"]),
	("sub", ["-t", "a", "-F", "%z"]),
	("sub", ["-t", "a", "--random-filter", "0"]),
	("sub", ["-t", "a", "--random-filter", "100.1"]),
	("sub", ["-t", "a", "--random-filter"]),
	("sub", []),
	("rr", ["-t", "a", "-m", "x"]),
	("rr", ["-e", "a", "-m", "x"]),
	("rr", ["-t", "a", "-e", "b", "-m", "x", "-W", "0"]),
]


@needs_cli
@needs_mosq
@pytest.mark.parametrize("tool,args", ARG_CASES, ids=[" ".join([c[0]] + c[1]) for c in ARG_CASES])
def test_argument_errors_match(tool, args):
	rc, err = assert_same(tool, ["-h", "127.0.0.1", "-p", closed_port()] + args)
	assert rc != 0 and err, "a case that mosquitto accepts does not belong here"


@needs_cli
@needs_mosq
def test_both_topic_and_message_prints_usage():
	"""mosquitto_pub prints its usage (to stdout) after this error, not the --help hint."""
	(mrc, mout, merr), (vrc, vout, verr) = both("pub", ["-t", "a"])
	assert (vrc, verr) == (mrc, merr) == (1, b"Error: Both topic and message must be supplied.\n")
	assert mout.startswith(b"mosquitto_pub is") and vout.startswith(b"viesti pub ")


@needs_cli
@needs_mosq
@pytest.mark.parametrize("tool", ["pub", "sub", "rr"])
def test_connection_failed_exit_1(tool):
	extra = {"pub": ["-m", "x"], "sub": [], "rr": ["-e", "r", "-m", "x"]}[tool]
	rc, err = assert_same(tool, ["-h", "127.0.0.1", "-p", closed_port(), "-t", "a"] + extra)
	assert (rc, err) == (1, b"Error: Connection refused\n")
	rc, err = assert_same(tool, ["-h", "no-such-host.invalid", "-t", "a"] + extra)
	assert (rc, err) == (1, b"Unable to connect (Lookup error.).\n")
	assert_same(tool, ["-h", "127.0.0.1", "-p", closed_port(), "-t", "a", "--quiet"] + extra)


@pytest.fixture
def auth_broker(tmp_path):
	"""A Debian mosquitto that wants user u1 with password p1."""
	pw = tmp_path / "pw"
	pw.write_text("u1:p1\n")
	subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True)
	# As root, mosquitto drops to its own user, which may not read tmp_path.
	m = Mosquitto(tmp_path, ["allow_anonymous false", "password_file %s" % pw] +
		(["user root"] if os.geteuid() == 0 else []))
	yield str(m.port)
	m.stop()


# (tool, args, exit status): the status of a refused connection is the CONNACK's reason code.
REFUSALS = [
	("pub", ["-m", "x"], 5),
	("pub", ["-m", "x", "-V", "5"], 135),
	("pub", ["-m", "x", "-u", "u1", "-P", "bad"], 5),
	("pub", ["-m", "x", "-u", "u1", "-P", "bad", "-V", "mqttv5"], 135),
	("pub", ["-m", "x", "-P", "p1", "-V", "5"], 135),
	("sub", [], 5),
	("sub", ["-V", "5", "-u", "nobody", "-P", "x"], 135),
	("sub", ["-V", "31"], 5),
	("rr", ["-e", "r", "-m", "x"], 135),
	("rr", ["-e", "r", "-m", "x", "-V", "311"], 5),
	("pub", ["-m", "x", "--quiet"], 5),
]


@needs_cli
@needs_mosq
@pytest.mark.parametrize("tool,args,code", REFUSALS, ids=[" ".join([c[0]] + c[1]) for c in REFUSALS])
def test_refused_connection_exit_code_is_reason(auth_broker, tool, args, code):
	rc, err = assert_same(tool, ["-h", "127.0.0.1", "-p", auth_broker, "-t", "a"] + args)
	assert rc == code
	assert (err == b"") == ("--quiet" in args)


@needs_cli
@needs_mosq
def test_accepted_credentials(auth_broker):
	assert_same("pub", ["-h", "127.0.0.1", "-p", auth_broker, "-t", "a", "-m", "x", "-u", "u1",
		"-P", "p1", "-i", "ok1", "-d", "-q", "1"])


# -d: libmosquitto's debug lines, with a fixed client id so that they are deterministic.
DEBUG_CASES = [
	("pub", ["-m", "x"]),
	("pub", ["-m", "x", "-q", "1"]),
	("pub", ["-m", "x", "-q", "2", "-r"]),
	("pub", ["-m", "x", "-q", "1", "-V", "5"]),
	("pub", ["-m", "x", "-q", "2", "-V", "5"]),
	("pub", ["-m", "x", "-q", "1", "--repeat", "3"]),
	("pub", ["-m", "x", "--repeat", "2", "--repeat-delay", "0.05"]),
	("pub", ["-n", "-q", "1", "-M", "1", "--nodelay", "-A", "127.0.0.1"]),
	("sub", ["-E", "-q", "1"]),
	("sub", ["-E", "-q", "2", "-t", "{b}/other/#", "-U", "{b}/gone", "-U", "x/+"]),
	("sub", ["-E", "-V", "5", "-q", "1", "--retain-as-published"]),
	("sub", ["-E", "-R"]),
]


@needs_cli
@needs_mosq
@pytest.mark.parametrize("tool,args", DEBUG_CASES, ids=[" ".join([c[0]] + c[1]) for c in DEBUG_CASES])
def test_debug_lines_match(any_broker, tool, args):
	b = "dbg-" + uuid.uuid4().hex[:8]
	args = [a.replace("{b}", b) for a in args]
	rc, _ = assert_same(tool, ["-h", "127.0.0.1", "-p", str(any_broker), "-i", b, "-d",
		"-t", b + "/t"] + args)
	assert rc == 0


def wait_subscribed(proc):
	"""Reads a `-d` subscriber's stdout up to its SUBACK line."""
	line = b""
	while b"received SUBACK" not in line:
		line = proc.stdout.readline()
		assert line, "the subscriber ended before its SUBACK"


@needs_cli
@needs_mosq
def test_unix_socket(tmp_path):
	sock = str(tmp_path / "m.sock")
	# As root, mosquitto drops to its own user, which may not create the socket here.
	m = Mosquitto(tmp_path, ["listener 0 %s" % sock] + (["user root"] if os.geteuid() == 0 else []))
	try:
		conftest.wait_until(lambda: os.path.exists(sock), 10, what="the unix socket")
		t = "unix-" + uuid.uuid4().hex[:8]
		sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "--unix", sock, "-t", t, "-C", "2", "-W", "10",
			"-d"], stdout=subprocess.PIPE)
		try:
			wait_subscribed(sub)
			# Both tools, the same -d lines; the subscriber gets one message from each.
			rc, _ = assert_same("pub", ["--unix", sock, "-t", t, "-m", "x", "-q", "1", "-i", t,
				"-d"])
			assert rc == 0
			out, _ = sub.communicate(timeout=15)
		finally:
			if sub.poll() is None:
				sub.kill()
				sub.wait()
		assert sub.returncode == 0 and out.count(b"\nx\n") == 2, out
		rc, err = assert_same("pub", ["--unix", str(tmp_path / "none.sock"), "-t", t, "-m", "x"])
		assert (rc, err) == (1, b"Error: No such file or directory\n")
	finally:
		m.stop()


@needs_cli
@needs_mosq
def test_bind_address(any_broker):
	port = str(any_broker)
	assert assert_same("pub", ["-h", "127.0.0.1", "-p", port, "-t", "a", "-m", "x", "-A",
		"127.0.0.1"])[0] == 0
	# TEST-NET-3 (RFC 5737): assigned to no interface here.
	rc, err = assert_same("pub", ["-h", "127.0.0.1", "-p", port, "-t", "a", "-m", "x", "-A",
		"203.0.113.7"])
	assert (rc, err) == (1, b"Error: Cannot assign requested address\n")
	rc, err = assert_same("pub", ["-h", "127.0.0.1", "-p", port, "-t", "a", "-m", "x", "-A",
		"no-such-host.invalid"])
	assert (rc, err) == (1, b"Unable to connect (Lookup error.).\n")


class Socks5:
	"""A SOCKS5 proxy (RFC 1928, CONNECT only; RFC 1929 username/password when user is set) on
	a free port, relaying to the requested host and port; records each request."""

	def __init__(self, user=None, password=None):
		self.user, self.password = user, password
		self.requests = []
		self.srv = socket.socket()
		self.srv.bind(("127.0.0.1", 0))
		self.srv.listen(16)
		self.port = self.srv.getsockname()[1]
		self.stop = False
		self.t = threading.Thread(target=self.serve, daemon=True)
		self.t.start()

	def close(self):
		self.stop = True
		self.srv.close()
		self.t.join(5)

	def serve(self):
		while not self.stop:
			try:
				c, _ = self.srv.accept()
			except OSError:
				return
			threading.Thread(target=self.handle, args=(c,), daemon=True).start()

	def recv(self, c, n):
		b = b""
		while len(b) < n:
			d = c.recv(n - len(b))
			if not d:
				raise OSError("closed")
			b += d
		return b

	def handle(self, c):
		try:
			c.settimeout(10)
			ver, n = self.recv(c, 2)
			methods = self.recv(c, n)
			want = 2 if self.user else 0
			if ver != 5 or want not in methods:
				c.sendall(b"\x05\xff")
				return
			c.sendall(bytes([5, want]))
			if want == 2:
				_, ul = self.recv(c, 2)
				u = self.recv(c, ul)
				pl = self.recv(c, 1)[0]
				p = self.recv(c, pl)
				ok = (u.decode(), p.decode()) == (self.user, self.password)
				c.sendall(b"\x01\x00" if ok else b"\x01\x01")
				if not ok:
					return
			_, cmd, _, atyp = self.recv(c, 4)
			if atyp == 3:
				host = self.recv(c, self.recv(c, 1)[0]).decode()
			else:
				host = socket.inet_ntoa(self.recv(c, 4))
			port = struct.unpack("!H", self.recv(c, 2))[0]
			self.requests.append((cmd, atyp, host, port))
			try:
				up = socket.create_connection((host, port), 5)
			except OSError:
				c.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
				return
			c.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", 1080))
			self.relay(c, up)
		except OSError:
			pass
		finally:
			c.close()

	def relay(self, a, b):
		a.settimeout(None)
		b.settimeout(None)
		while True:
			r, _, _ = select.select([a, b], [], [], 10)
			if not r:
				return
			for s in r:
				d = s.recv(65536)
				if not d:
					b.close()
					return
				(b if s is a else a).sendall(d)


@needs_cli
@needs_mosq
@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "user-pass"])
def test_proxy_socks5(any_broker, auth):
	# (libmosquitto decodes %40 in the proxy's password to ':', not '@': none here)
	proxy = Socks5("pu", "p:w%d") if auth else Socks5()
	try:
		cred = "pu:p%3aw%25d@" if auth else ""
		url = "socks5h://%s127.0.0.1:%d" % (cred, proxy.port)
		t = "proxy-" + uuid.uuid4().hex[:8]
		rc, _ = assert_same("pub", ["-h", "localhost", "-p", str(any_broker), "-t", t, "-m", "x",
			"-q", "1", "-i", t, "-d", "--proxy", url])
		assert rc == 0
		# Both asked the proxy for the broker by name ("socks5h": the proxy resolves it).
		assert proxy.requests == [(1, 3, "localhost", any_broker)] * 2, proxy.requests
		if auth:  # a refused login
			bad = "socks5h://pu:wrong@127.0.0.1:%d" % proxy.port
			for tool, extra in (("pub", ["-m", "x"]), ("sub", []), ("rr", ["-e", "r", "-m", "x"])):
				wait = ["-W", "5"] if tool != "pub" else []
				rc, err = assert_same(tool, ["-h", "localhost", "-p", str(any_broker), "-t", t,
					"--proxy", bad] + wait + extra)
				assert (rc, err) == (16, b"Error: Proxy error.\n")
		else:  # the proxy cannot reach the broker
			rc, err = assert_same("pub", ["-h", "localhost", "-p", closed_port(), "-t", t, "-m",
				"x", "--proxy", url])
			assert (rc, err) == (4, b"Error: The client is not currently connected.\n")
	finally:
		proxy.close()
	rc, err = assert_same("pub", ["-h", "localhost", "-p", str(any_broker), "-t", "a", "-m", "x",
		"--proxy", "socks5h://127.0.0.1:" + closed_port()])
	assert (rc, err) == (1, b"Error: Connection refused\n")


def run_sub_pair(port, topic, args, publish):
	"""mosquitto_sub and viesti sub with args; once both are subscribed (-d shows the SUBACK),
	publish() runs; returns [(rc, stdout, stderr)] * 2."""
	# stdbuf: mosquitto_sub's lines are block-buffered into a pipe.
	procs = [subprocess.Popen(cmd + ["-h", "127.0.0.1", "-p", str(port), "-t", topic, "-d"] +
		args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for cmd in
		(["stdbuf", "-oL", MOSQ_TOOLS["sub"]], [VIESTI, "sub"])]
	try:
		for p in procs:
			wait_subscribed(p)
		publish()
		return [(p.wait(20), p.stdout.read(), p.stderr.read()) for p in procs]
	finally:
		for p in procs:
			if p.poll() is None:
				p.kill()
				p.wait()


@needs_cli
@needs_mosq
def test_random_filter(any_broker):
	"""--random-filter CHANCE prints CHANCE percent of the messages, as mosquitto_sub's --help
	says (its code prints a tenth of that: see docs/migration.md); left-out messages count
	towards -C, so viesti sub exits after the 40th either way."""
	t = "rnd-" + uuid.uuid4().hex[:8]

	def publish():
		for k in range(40):
			assert subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(any_broker), "-t",
				t, "-m", "m%d" % k, "-q", "1"]).returncode == 0

	for chance, check in (("100", lambda n: n == 40), ("0.1", lambda n: n < 5)):
		res = run_sub_pair(any_broker, t, ["-C", "40", "-W", "30", "-q", "1", "--random-filter",
			chance], publish)
		rc, out, _ = res[1]
		printed = [ln for ln in out.splitlines() if ln.startswith(b"m")]
		assert rc == 0 and check(len(printed)), (chance, rc, printed)
		assert res[0][0] == 0  # mosquitto_sub, too, exits after the 40th


@needs_cli
@needs_mosq
@pytest.mark.parametrize("fmt", ["%j", "%J", "x %j y"])
def test_pretty_json_matches(any_broker, fmt):
	t = "pretty-" + uuid.uuid4().hex[:8]
	payload = '{"a":[1,2.5,{"b":{}}],"c":"x\\ty","d":{},"e":[],"f":null}'
	r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(any_broker), "-t", t, "-r",
		"-q", "1", "-V", "5", "-D", "publish", "user-property", "k", "v", "-D", "publish",
		"content-type", "ct", "-m", payload])
	assert r.returncode == 0
	try:
		(mrc, mout, merr), (vrc, vout, verr) = both("sub", ["-h", "127.0.0.1", "-p",
			str(any_broker), "-t", t, "-C", "1", "-V", "5", "-F", fmt, "--pretty"])
		strip = lambda b: b"\n".join(ln for ln in b.split(b"\n") if b'"tst":' not in ln)
		assert (vrc, verr, strip(vout)) == (mrc, merr, strip(mout))
		assert b'\n\t"payloadlen":\t' in vout
	finally:
		subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(any_broker), "-t", t, "-r",
			"-n"])


@needs_cli
def test_srv_lookup_failure():
	"""-S asks DNS for _mqtt._tcp.HOST; a name without SRV records is a lookup error."""
	r = subprocess.run([VIESTI, "pub", "-S", "-h", "no-such-host.invalid", "-t", "a", "-m", "x"],
		capture_output=True, timeout=30)
	assert (r.returncode, r.stderr) == (1, b"Unable to connect (Lookup error.).\n")
