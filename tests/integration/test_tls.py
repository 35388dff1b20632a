"""TLS, mutual TLS and TLS-PSK on the broker's listeners, with clients we do not control:
Debian's mosquitto_pub / mosquitto_sub, paho-mqtt, MQTT.js and `openssl s_client`, and our own
viesti pub. Certificates come from pki.py (made by the openssl command for this run).

What must hold (issue 12): the right CA works end to end; a wrong CA, an expired or revoked
client certificate, or none where one is required, are refused, and the broker logs why; plain
MQTT sent to a TLS port is refused with a plain reason; tls_version tlsv1.3 refuses TLS 1.2;
use_identity_as_username / use_subject_as_username feed the ACL; PSK works with the right key
only; ALPN "mqtt" is chosen; sessions resume; a handshake that never finishes is cut at the
CONNECT deadline; unix socket listeners work.
"""

import os
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import TARGET_BIN, wait_until
from helpers import run_mqttjs, uid
from mqtt_raw import RawClient
from pki import OPENSSL, PSK_IDENTITY, PSK_KEY

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="no openssl command")


def tls_lines(pki, *more):
	return ["certfile %s" % pki["server"][0], "keyfile %s" % pki["server"][1]] + list(more)


def mosq(tool, port, *args, timeout=10):
	return subprocess.run([tool, "-h", "127.0.0.1", "-p", str(port)] + list(args),
		capture_output=True, timeout=timeout)


def roundtrip(port, *tls, topic=None, user=None):
	"""mosquitto_sub waits for one message, mosquitto_pub sends it; returns the output."""
	topic = topic or uid("tls")
	auth = ["-u", user] if user else []
	sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
		"-C", "1", "-W", "30"] + auth + list(tls), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	try:
		deadline = time.monotonic() + 30  # TLS handshakes with an ASan broker on a busy machine
		while True:  # until the subscription is in place: a retained probe comes back
			r = mosq("mosquitto_pub", port, "-t", topic, "-m", "hello", "-q", "1", *auth, *tls)
			assert r.returncode == 0, r.stderr
			try:
				out, err = sub.communicate(timeout=0.5)
				return out.decode()
			except subprocess.TimeoutExpired:
				assert time.monotonic() < deadline, "no message through TLS"
	finally:
		if sub.poll() is None:
			sub.kill()
			sub.wait()


def s_client(port, *args, stdin=b"", timeout=10):
	return subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
		"-servername", "localhost"] + list(args), input=stdin, capture_output=True,
		timeout=timeout)


def test_tls_with_the_right_ca(broker, pki):
	b = broker(*tls_lines(pki))
	assert roundtrip(b.port, "--cafile", pki["ca"]) == "hello\n"
	if b.target == "viesti":
		b.wait_log(r"listening on 127\.0\.0\.1:%d \(TLS\)" % b.port)


def test_paho_and_mqttjs_and_viesti_pub_over_tls(broker, pki):
	b = broker(*tls_lines(pki))
	got = []
	c = mqtt.Client(uid("paho-tls"))
	c.tls_set(ca_certs=pki["ca"])
	c.on_message = lambda cl, ud, m: got.append(m.payload)
	c.connect("localhost", b.port)
	c.loop_start()
	try:
		wait_until(lambda: c.is_connected(), 10, what="paho over TLS")
		sub_done = threading.Event()
		c.on_subscribe = lambda *a: sub_done.set()  # before subscribe(): SUBACK may be quick
		c.subscribe("tls/all", 1)
		assert sub_done.wait(20)
		if b.target == "viesti":
			r = subprocess.run([TARGET_BIN, "pub", "-h", "localhost", "-p", str(b.port),
				"--cafile", pki["ca"], "-t", "tls/all", "-m", "from-viesti", "-q", "1"],
				capture_output=True, timeout=10)
			assert r.returncode == 0, r.stderr
			wait_until(lambda: b"from-viesti" in got, 5, what="viesti pub over TLS")
		res = run_mqttjs({"url": "mqtts://localhost:%d" % b.port, "ca": pki["ca"],
			"pub": {"messages": [{"topic": "tls/all", "payload": "from-mqttjs", "qos": 1}]}})
		assert not res["errors"], res
		wait_until(lambda: b"from-mqttjs" in got, 5, what="MQTT.js over TLS")
	finally:
		c.loop_stop()
		c.disconnect()


def test_wrong_ca_is_refused(broker, pki):
	b = broker(*tls_lines(pki))
	r = mosq("mosquitto_pub", b.port, "--cafile", pki["otherca"], "-t", "x", "-m", "y")
	assert r.returncode != 0
	if b.target == "viesti":
		b.wait_log(r"closed before CONNECT: TLS handshake failed")


def test_plain_mqtt_to_a_tls_port(broker, pki):
	b = broker(*tls_lines(pki))
	with RawClient(b.port) as c:
		c.send(c.connect_packet("plain"))
		assert c.wait_closed(5) == []
	if b.target == "viesti":
		b.wait_log(r"TLS handshake failed: plain MQTT \(a CONNECT\) sent to a TLS listener")


def mtls(pki, *more):
	return tls_lines(pki, "cafile %s" % pki["ca"], "require_certificate true", *more)


@pytest.mark.parametrize("which,ok", [("client", True), (None, False), ("otherclient", False),
	("expired", False), ("revoked", False)])
def test_client_certificates(broker, pki, which, ok):
	b = broker(*mtls(pki, "crlfile %s" % pki["crl"]))
	args = ["--cafile", pki["ca"]]
	if which:
		args += ["--cert", pki[which][0], "--key", pki[which][1]]
	r = mosq("mosquitto_pub", b.port, "-t", "m/tls", "-m", "x", "-q", "1", *args)
	assert (r.returncode == 0) == ok, (which, r.stderr)
	if not ok and b.target == "viesti":
		b.wait_log(r"TLS handshake failed: .*(certificate|alert)")


def test_tls_version_13_refuses_12(broker, pki):
	b = broker(*tls_lines(pki, "tls_version tlsv1.3"))
	r = s_client(b.port, "-tls1_2", "-CAfile", pki["ca"])
	assert r.returncode != 0 and b"alert protocol version" in r.stderr, r.stderr[-500:]
	r = s_client(b.port, "-tls1_3", "-CAfile", pki["ca"])
	assert b"New, TLSv1.3" in r.stdout, r.stdout[-500:]


@pytest.mark.viesti_only
def test_alpn_mqtt_and_session_resumption(broker, pki, tmp_path):
	b = broker(*tls_lines(pki))
	r = s_client(b.port, "-alpn", "mqtt", "-CAfile", pki["ca"])
	assert b"ALPN protocol: mqtt" in r.stdout, r.stdout[-800:]
	r = s_client(b.port, "-alpn", "h2,x-other", "-CAfile", pki["ca"])
	assert b"No ALPN negotiated" in r.stdout  # a client that offers others goes on
	sess = str(tmp_path / "sess.pem")
	for version in ("-tls1_2", "-tls1_3"):
		# The TLS 1.3 ticket arrives after the handshake: s_client stays (-ign_eof) until the
		# broker closes, after the CONNECT, its CONNACK and the DISCONNECT sent here.
		r = s_client(b.port, version, "-CAfile", pki["ca"], "-sess_out", sess, "-ign_eof",
			stdin=b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\xe0\x00", timeout=10)
		assert os.path.getsize(sess) > 0, r.stdout[-500:]
		r = s_client(b.port, version, "-CAfile", pki["ca"], "-sess_in", sess)
		assert b"Reused," in r.stdout, (version, r.stdout[-800:])


def test_use_identity_as_username_feeds_the_acl(broker, pki, tmp_path):
	acl = tmp_path / "acl"
	acl.write_text("user alice\ntopic readwrite alice/#\n")
	b = broker(*mtls(pki, "use_identity_as_username true"), "acl_file %s" % acl)
	cert = ["--cafile", pki["ca"], "--cert", pki["client"][0], "--key", pki["client"][1]]
	assert roundtrip(b.port, *cert, topic="alice/t") == "hello\n"
	# the username in CONNECT is ignored: the certificate says who this is
	assert roundtrip(b.port, *cert, topic="alice/u", user="mallory") == "hello\n"
	if b.target == "viesti":
		b.wait_log(r"connected from .* user alice\)")


def test_use_subject_as_username(broker, pki, tmp_path):
	acl = tmp_path / "acl"
	# RFC 2253 writes the subject's names last first (as Mosquitto gives it)
	acl.write_text("user O=Example,CN=bob\ntopic readwrite bob/#\n")
	b = broker(*mtls(pki, "use_subject_as_username true"), "acl_file %s" % acl)
	cert = ["--cafile", pki["ca"], "--cert", pki["client_bob"][0], "--key", pki["client_bob"][1]]
	assert roundtrip(b.port, *cert, topic="bob/t") == "hello\n"


def test_psk(broker, pki):
	b = broker("psk_hint viesti-hint", "psk_file %s" % pki["psk_file"])
	ok = ["--psk", PSK_KEY, "--psk-identity", PSK_IDENTITY]
	assert roundtrip(b.port, *ok) == "hello\n"
	r = mosq("mosquitto_pub", b.port, "-t", "x", "-m", "y", "--psk", "00ff",
		"--psk-identity", PSK_IDENTITY)
	assert r.returncode != 0
	r = mosq("mosquitto_pub", b.port, "-t", "x", "-m", "y", "--psk", PSK_KEY,
		"--psk-identity", "nobody")
	assert r.returncode != 0


def test_psk_beside_a_certificate_names_the_user_over_tls13(broker, pki, tmp_path):
	"""A listener with a certificate and a PSK file: PSK clients get in with their key (not the
	certificate), over TLS 1.3 as over 1.2, and use_identity_as_username makes the PSK identity
	their username, which the ACL then sees. (OpenSSL does not report the identity of a TLS 1.3
	PSK handshake by itself, and a client offering SHA-384 suites was given the certificate.)"""
	acl = tmp_path / "acl"
	acl.write_text("user %s\ntopic readwrite %s/#\n" % (PSK_IDENTITY, PSK_IDENTITY))
	b = broker(*tls_lines(pki, "psk_hint viesti-hint", "use_identity_as_username true"),
		"psk_file %s" % pki["psk_file"], "acl_file %s" % acl)
	for version in ("tlsv1.3", "tlsv1.2"):
		psk = ["--psk", PSK_KEY, "--psk-identity", PSK_IDENTITY, "--tls-version", version]
		topic = "%s/%s" % (PSK_IDENTITY, uid("t"))
		assert roundtrip(b.port, *psk, topic=topic) == "hello\n"
		if b.target == "viesti":
			b.wait_log(r"client \S+ connected .*user %s" % PSK_IDENTITY)
	if b.target != "viesti":
		return
	# our own client, same key, TLS 1.3 (its default): a retained message comes back
	topic = "%s/%s" % (PSK_IDENTITY, uid("v"))
	psk = ["--psk", PSK_KEY, "--psk-identity", PSK_IDENTITY]
	r = subprocess.run([TARGET_BIN, "pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", topic,
		"-m", "kept", "-r", "-q", "1"] + psk, capture_output=True, timeout=10)
	assert r.returncode == 0, r.stderr
	r = mosq("mosquitto_sub", b.port, "-t", topic, "-C", "1", "-W", "15", *psk, timeout=20)
	assert r.stdout == b"kept\n", r.stderr
	# the identity is the username: outside its tree, the ACL says no
	r = subprocess.run([TARGET_BIN, "pub", "-h", "127.0.0.1", "-p", str(b.port), "-t",
		"elsewhere/x", "-m", "no", "-q", "1", "-V", "5"] + psk, capture_output=True, timeout=10)
	b.wait_log(r"(denied|not authorized).*elsewhere/x|elsewhere/x.*(denied|not authorized)")


@pytest.mark.viesti_only
def test_a_handshake_that_never_finishes_is_cut(broker, pki):
	b = broker(*tls_lines(pki), "connect_timeout 1")
	with socket.create_connection(("127.0.0.1", b.port)) as s:
		s.sendall(b"\x16\x03\x01\x00\x05\x01")  # the start of a ClientHello, never finished
		s.settimeout(5)
		t0 = time.monotonic()
		assert s.recv(100) == b""  # closed by the broker
		assert time.monotonic() - t0 < 4
	b.wait_log(r"closed before CONNECT: no CONNECT within 1 s")


@pytest.mark.viesti_only
def test_unix_socket_listener(broker, tmp_path):
	path = str(tmp_path / "v.sock")
	b = broker("listener 0 %s" % path)
	assert oct(os.stat(path).st_mode & 0o777) == "0o770"
	topic = uid("unix")
	# Retained, so that it arrives whether the subscription comes first or not.
	r = subprocess.run(["mosquitto_pub", "--unix", path, "-t", topic, "-m", "over-unix", "-r"],
		capture_output=True, timeout=10)
	assert r.returncode == 0, r.stderr
	sub = subprocess.Popen(["mosquitto_sub", "--unix", path, "-t", topic, "-C", "1", "-W", "10"],
		stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	try:
		b.wait_log(r"connected from unix:pid=\d+,uid=\d+ on unix:%s" % path)
		out, _ = sub.communicate(timeout=10)
		assert out == b"over-unix\n"
	finally:
		if sub.poll() is None:
			sub.kill()
			sub.wait()
	b.stop()
	assert not os.path.exists(path), "the socket file is removed at shutdown"


@pytest.mark.viesti_only
def test_unix_socket_path_that_is_not_a_socket_is_not_removed(broker, tmp_path):
	path = tmp_path / "precious"
	path.write_text("data")
	b = broker("listener 0 %s" % path, start=False)
	with pytest.raises(AssertionError, match="exists and is not a socket"):
		b.start()
	assert path.read_text() == "data"
