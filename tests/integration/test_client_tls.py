"""viesti pub / sub / rr over TLS, against Debian's mosquitto as the TLS server.

The test makes its own PKI with the openssl command: a CA, a server certificate for localhost and
127.0.0.1 (subjectAltName), a server certificate for another name, a client certificate, and a
second, unrelated CA with a client certificate of its own. Each test starts mosquitto on a free
ephemeral port from a config it writes, and stops it at teardown.

What must hold: the right CA works end to end (pub -> broker -> sub); a wrong CA is refused with
the reason; --insecure skips the host-name check and nothing else; mutual TLS works with
--cert/--key and fails without; TLS-PSK works with --psk/--psk-identity; -L mqtts:// URLs turn
TLS on. What Debian's mosquitto 2.0.11 cannot show (a TLS 1.2-only server, TLS 1.2 PSK cipher
suites, ALPN) is checked against `openssl s_server`, which prints what it negotiated and sends
the CONNACK that the test writes to its standard input.
"""

import json
import os
import shutil
import subprocess
import uuid

import pytest

import conftest
from pki import OPENSSL, PSK_IDENTITY, PSK_KEY, openssl
from test_cli_parity import VIESTI, needs_cli

MOSQUITTO = "/usr/sbin/mosquitto"

pytestmark = [
	needs_cli,
	pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="no %s" % MOSQUITTO),
	pytest.mark.skipif(OPENSSL is None, reason="no openssl command"),
]

class TlsMosquitto:
	"""mosquitto with one TLS listener on a free port, configured by `lines`."""

	def __init__(self, tmp_path, lines):
		self.port = conftest.free_port()
		conf = tmp_path / ("mosq-tls-%d.conf" % self.port)
		head = ["listener %d 127.0.0.1" % self.port, "allow_anonymous true"]
		if os.geteuid() == 0:
			head.append("user root")  # else mosquitto drops to a user that cannot read tmp_path
		conf.write_text("\n".join(head + list(lines)) + "\n")
		self.log_path = str(tmp_path / ("mosq-tls-%d.log" % self.port))
		self.log = open(self.log_path, "wb")
		self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log,
			stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
		conftest.wait_until(self._listening, 10, what="mosquitto TLS on port %d" % self.port)

	def _listening(self):
		if self.proc.poll() is not None:
			raise AssertionError("mosquitto exited %s:\n%s" % (self.proc.returncode,
				open(self.log_path, "rb").read().decode("utf-8", "replace")))
		with open(self.log_path, "rb") as f:
			return b"Opening ipv4 listen socket on port %d" % self.port in f.read()

	def stop(self):
		if self.proc.poll() is None:
			self.proc.terminate()
			self.proc.wait(10)
		self.log.close()


@pytest.fixture
def mosq(tmp_path):
	"""mosq(*config_lines) -> a running TlsMosquitto; all are stopped at teardown."""
	made = []

	def make(*lines):
		m = TlsMosquitto(tmp_path, lines)
		made.append(m)
		return m

	yield make
	for m in made:
		m.stop()


def cert_server(pki, *extra, cert="server"):
	crt, key = pki[cert]
	return ("cafile " + pki["ca"], "certfile " + crt, "keyfile " + key) + extra


def psk_server(pki):
	return ("psk_hint viesti-hint", "psk_file " + pki["psk_file"])


def run(args, timeout=30):
	return subprocess.run([VIESTI] + list(args), capture_output=True, timeout=timeout,
		stdin=subprocess.DEVNULL)


def pub(port, *tls, host="127.0.0.1", topic="t", msg="x"):
	return run(["pub", "-h", host, "-p", str(port), "-t", topic, "-m", msg] + list(tls))


class Sub:
	"""viesti sub -d -C 1 with the given TLS flags; output goes to a file that the test polls."""

	def __init__(self, tmp_path, port, topic, *tls):
		self.out_path = str(tmp_path / ("sub-%s.out" % uuid.uuid4().hex[:8]))
		self.err_path = self.out_path + ".err"
		self.proc = subprocess.Popen([VIESTI, "sub", "-h", "127.0.0.1", "-p", str(port), "-t",
			topic, "-C", "1", "-W", "20", "-d"] + list(tls), stdout=open(self.out_path, "wb"),
			stderr=open(self.err_path, "wb"), stdin=subprocess.DEVNULL)

	def text(self):
		with open(self.out_path, "rb") as f:
			return f.read().decode("utf-8", "replace")

	def wait_subscribed(self):
		def ok():
			if self.proc.poll() is not None:
				raise AssertionError("viesti sub exited %s: %s" % (self.proc.returncode,
					open(self.err_path, "rb").read()))
			return "received SUBACK" in self.text()
		conftest.wait_until(ok, 15, what="viesti sub's SUBACK over TLS")

	def finish(self):
		try:
			rc = self.proc.wait(20)
		finally:
			if self.proc.poll() is None:
				self.proc.kill()
				self.proc.wait()
		return rc, self.text()


def through_sub(tmp_path, port, sub_tls, args, rc=0):
	"""Runs `viesti ARGS` (with {topic} filled in) while a viesti sub with the TLS flags sub_tls
	listens on the topic; checks its exit status and returns what the sub printed."""
	topic = "tls/" + uuid.uuid4().hex[:8]
	s = Sub(tmp_path, port, topic, *sub_tls)
	try:
		s.wait_subscribed()
		r = run([a.format(topic=topic) for a in args])
		assert r.returncode == rc, r.stderr
	finally:
		sub_rc, out = s.finish()
	assert sub_rc == 0, out
	return out


def roundtrip(tmp_path, port, *tls):
	"""viesti sub and viesti pub, both with the TLS flags `tls`: the message gets through."""
	payload = "hello-" + uuid.uuid4().hex[:8]
	out = through_sub(tmp_path, port, tls, ["pub", "-h", "127.0.0.1", "-p", str(port), "-t",
		"{topic}", "-m", payload] + list(tls))
	assert payload + "\n" in out


def refused(r, *reasons):
	"""A connection that TLS refused: exit 1 (as mosquitto_pub) and the reason on stderr."""
	err = r.stderr.decode("utf-8", "replace")
	assert r.returncode == 1, (r.returncode, err)
	assert any(why in err for why in reasons), err
	return err


def test_pub_to_sub_with_the_right_ca(pki, mosq, tmp_path):
	m = mosq(*cert_server(pki))
	roundtrip(tmp_path, m.port, "--cafile", pki["ca"])
	capath = os.path.join(pki["dir"], "capath")
	os.makedirs(capath, exist_ok=True)
	shutil.copy(pki["ca"], capath)
	openssl(capath, "rehash", ".")
	assert pub(m.port, "--capath", capath).returncode == 0


def test_wrong_ca_is_refused_with_the_reason(pki, mosq):
	m = mosq(*cert_server(pki))
	r = pub(m.port, "--cafile", pki["otherca"])
	err = refused(r, "certificate verify failed")
	assert "TLS handshake failed" in err, err
	# The system store alone does not know the test CA either.
	refused(pub(m.port, "--tls-use-os-certs"), "certificate verify failed")
	# --insecure skips the host-name check only, never the chain.
	refused(pub(m.port, "--cafile", pki["otherca"], "--insecure"), "certificate verify failed")
	# Plain MQTT to a TLS port is a connection error, not a hang.
	assert pub(m.port).returncode == 1


def test_host_name_mismatch_only_with_insecure(pki, mosq, tmp_path):
	m = mosq(*cert_server(pki, cert="wrongname"))
	refused(pub(m.port, "--cafile", pki["ca"]), "IP address mismatch")
	refused(pub(m.port, "--cafile", pki["ca"], host="localhost"), "hostname mismatch",
		"Connection refused")
	roundtrip(tmp_path, m.port, "--cafile", pki["ca"], "--insecure")
	# The right name passes without --insecure.
	m2 = mosq(*cert_server(pki))
	assert pub(m2.port, "--cafile", pki["ca"], host="localhost").returncode == 0


def test_mutual_tls(pki, mosq, tmp_path):
	m = mosq(*cert_server(pki, "require_certificate true"))
	crt, key = pki["client"]
	roundtrip(tmp_path, m.port, "--cafile", pki["ca"], "--cert", crt, "--key", key)
	# Without a certificate (TLS 1.3 reports the server's alert after the handshake, on the
	# first read), and with one from an unknown CA.
	# Either way the broker's alert may lose the race with its RST (it closes with our CONNECT
	# unread).
	refused(pub(m.port, "--cafile", pki["ca"]), "certificate required", "handshake failure",
		"Connection reset by peer")
	ocrt, okey = pki["otherclient"]
	refused(pub(m.port, "--cafile", pki["ca"], "--cert", ocrt, "--key", okey), "unknown ca",
		"Connection reset by peer")
	# A certificate with the wrong key is caught before connecting.
	r = pub(m.port, "--cafile", pki["ca"], "--cert", crt, "--key", okey)
	assert r.returncode == 1 and b"key values mismatch" in r.stderr, r.stderr
	r = pub(m.port, "--cafile", pki["ca"], "--cert", crt)
	assert r.returncode == 1 and b"Both certfile and keyfile" in r.stderr, r.stderr


def test_psk(pki, mosq, tmp_path):
	m = mosq(*psk_server(pki))
	roundtrip(tmp_path, m.port, "--psk", PSK_KEY, "--psk-identity", PSK_IDENTITY)
	assert pub(m.port, "--psk", PSK_KEY, "--psk-identity", PSK_IDENTITY, "--tls-version",
		"tlsv1.3").returncode == 0
	r = pub(m.port, "--psk", "ffff" + PSK_KEY[4:], "--psk-identity", PSK_IDENTITY)
	assert r.returncode == 1 and b"Error" in r.stderr, r.stderr
	r = pub(m.port, "--psk", PSK_KEY)
	assert r.returncode == 1 and b"--psk-identity required" in r.stderr, r.stderr
	r = pub(m.port, "--psk", "xyz", "--psk-identity", PSK_IDENTITY)
	assert r.returncode == 1 and b"PSK" in r.stderr, r.stderr


def test_mqtts_url(pki, mosq, tmp_path):
	m = mosq(*cert_server(pki))
	url = "mqtts://127.0.0.1:%d/{topic}" % m.port
	out = through_sub(tmp_path, m.port, ["--cafile", pki["ca"]],
		["pub", "-L", url, "--cafile", pki["ca"], "-m", "via mqtts"])
	assert "via mqtts\n" in out, out
	# mqtts:// alone trusts the system store, which does not know the test CA: TLS is on.
	r = run(["pub", "-L", url.format(topic="t"), "-m", "x"])
	refused(r, "certificate verify failed")
	# mqtt:// to the same port is plain MQTT.
	r = run(["pub", "-L", "mqtt://127.0.0.1:%d/t" % m.port, "-m", "x"])
	assert r.returncode == 1


def test_rr_over_tls(pki, mosq, tmp_path):
	"""viesti rr shares the flags: its request reaches a subscriber over TLS (nobody answers:
	exit 27 after -W 1)."""
	m = mosq(*cert_server(pki))
	out = through_sub(tmp_path, m.port, ["--cafile", pki["ca"]],
		["rr", "-h", "127.0.0.1", "-p", str(m.port), "--cafile", pki["ca"], "-t", "{topic}",
		"-e", "{topic}/reply", "-m", "request", "-W", "1"], rc=27)
	assert "request\n" in out, out


def test_missing_tls_files(pki, tmp_path):
	port = conftest.free_port()
	r = pub(port, "--cafile", str(tmp_path / "nope.crt"))
	assert r.returncode == 1 and b"cannot read CA file" in r.stderr, r.stderr
	crt, key = pki["client"]
	r = pub(port, "--cafile", pki["ca"], "--cert", crt, "--key", str(tmp_path / "nope.key"))
	assert r.returncode == 1 and b"cannot read key file" in r.stderr, r.stderr


def test_help_lists_the_tls_flags():
	flags = [b"--cafile", b"--capath", b"--cert", b"--key", b"--insecure", b"--tls-version",
		b"--tls-alpn", b"--psk", b"--psk-identity", b"mqtt(s)://"]
	for tool in ("pub", "sub", "rr"):
		out = run([tool, "--help"]).stdout
		for f in flags:
			assert f in out, (tool, f)
	out = run(["bench", "--help"]).stdout
	for f in flags[:-1]:
		assert f in out, ("bench", f)


def bench(port, *args):
	r = run(["bench", "pairs", "-n", "2", "-q", "1", "-r", "100", "-d", "0.5", "--warmup", "0.2",
		"--no-progress", "--json", "-h", "127.0.0.1", "-p", str(port)] + list(args))
	assert r.returncode == 0, r.stderr
	return json.loads(r.stdout), r.stderr.decode("utf-8", "replace")


def test_bench_over_tls(pki, mosq):
	"""A short, rate-limited functional run of viesti bench (not a measurement)."""
	m = mosq(*cert_server(pki, "require_certificate true"))
	crt, key = pki["client"]
	res, _ = bench(m.port, "--cafile", pki["ca"], "--cert", crt, "--key", key)
	assert res["tls"] is True and res["connected"] == 4 and res["errors"] == 0, res
	assert res["sent"] > 0 and res["received"] == res["sent"] and res["lost"] == 0, res
	res, err = bench(m.port, "--cafile", pki["otherca"], "--cert", crt, "--key", key)
	assert res["connected"] == 0 and res["connect_failed"] == 4, res
	assert "TLS handshake: certificate verify failed" in err, err


class SServer:
	"""openssl s_server as a stand-in broker for what mosquitto cannot do (TLS 1.3 PSK): it
	prints what it sees, and sends what the test writes to its stdin (a CONNACK)."""

	def __init__(self, tmp_path, *args):
		self.port = conftest.free_port()
		self.log_path = str(tmp_path / ("s_server-%d.log" % self.port))
		self.proc = subprocess.Popen([OPENSSL, "s_server", "-accept", "127.0.0.1:%d" % self.port,
			"-naccept", "1"] + list(args), stdin=subprocess.PIPE,
			stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)
		conftest.wait_until(lambda: b"ACCEPT" in self.log(), 10, what="s_server to listen")

	def log(self):
		with open(self.log_path, "rb") as f:
			return f.read()

	def wait_log(self, text):
		conftest.wait_until(lambda: text in self.log(), 15,
			what="%r in s_server output:\n%r" % (text, self.log()))

	def stop(self):
		if self.proc.poll() is None:
			self.proc.kill()
		self.proc.wait(5)


def pub_to_s_server(s, *tls, msg="via s_server"):
	"""viesti pub against an SServer: waits for the CONNECT, answers CONNACK, returns the
	finished pub."""
	p = subprocess.Popen([VIESTI, "pub", "-h", "127.0.0.1", "-p", str(s.port), "-t", "t", "-m",
		msg] + list(tls), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
		stdin=subprocess.DEVNULL)
	try:
		s.wait_log(b"MQTT")  # the CONNECT arrived through TLS
		s.proc.stdin.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
		s.proc.stdin.flush()
		p.communicate(timeout=15)
	finally:
		if p.poll() is None:
			p.kill()
			p.wait()
	s.wait_log(msg.encode())
	return p


PSK = ["--psk", PSK_KEY, "--psk-identity", PSK_IDENTITY]
S_PSK = ["-nocert", "-psk", PSK_KEY, "-psk_identity", PSK_IDENTITY, "-psk_hint", "hint"]


def test_tls13_psk_and_alpn(tmp_path):
	s = SServer(tmp_path, "-tls1_3", "-alpn", "mqtt", *S_PSK)
	try:
		p = pub_to_s_server(s, *PSK, "--tls-alpn", "mqtt")
		assert p.returncode == 0
		log = s.log()
		assert b"CIPHER is TLS_" in log, log  # a TLS 1.3 suite
		assert b"ALPN protocols advertised by the client: mqtt" in log, log
	finally:
		s.stop()


def test_tls12_psk_cipher_suites(tmp_path):
	s = SServer(tmp_path, "-tls1_2", *S_PSK)
	try:
		p = pub_to_s_server(s, *PSK)
		assert p.returncode == 0
		log = s.log()
		assert b"CIPHER is " in log and b"PSK-" in log.split(b"CIPHER is ")[1], log
	finally:
		s.stop()


def test_tls13_refused_by_a_tls12_server(tmp_path):
	"""Debian's mosquitto 2.0.11 has no maximum TLS version, so openssl s_server plays the
	TLS 1.2-only server."""
	s = SServer(tmp_path, "-tls1_2", *S_PSK)
	try:
		r = run(["pub", "-h", "127.0.0.1", "-p", str(s.port), "-t", "t", "-m", "x",
			"--tls-version", "tlsv1.3"] + PSK)
		refused(r, "protocol version", "unsupported protocol", "no protocols available")
	finally:
		s.stop()
	r = run(["pub", "-h", "127.0.0.1", "-p", str(s.port), "-t", "t", "-m", "x",
		"--tls-version", "tlsv1.1"] + PSK)
	assert r.returncode == 1 and b"tlsv1.2 or tlsv1.3" in r.stderr, r.stderr
